/* est_call.c: one EST request on one non-blocking TLS connection (est_client.h), on
 * OpenSSL directly: moat-agent links no libcurl, and `moat sim --enroll` runs thousands of
 * these on one poll() loop. The server is verified against the pinned root CA alone, by
 * host name (or address), under moat's TLS policy; SSL_VERIFY_PEER is always set and
 * nothing here can clear it.
 *
 * The TLS context for a CA file is built once per process and shared (building one and
 * parsing the CA costs more than a handshake's client side); a client certificate, when
 * the call has one, is set on the connection, not on the shared context.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "moat/certinfo.h"
#include "moat/est_client.h"
#include "moat/timeutil.h"
#include "moat/tlspolicy.h"

#define DEFAULT_TIMEOUT_MS 30000
#define READ_CHUNK 4096

enum call_state { ST_CONNECT, ST_HANDSHAKE, ST_WRITE, ST_READ, ST_DONE };

struct moat_est_call {
	enum call_state state;
	int fd;
	SSL *ssl;
	struct addrinfo *ai_list, *ai_next;
	char host[256];
	char op[32];
	int64_t deadline_ms;
	short events;
	char *req;
	size_t req_len, req_off;
	unsigned char *resp;
	size_t resp_len, resp_cap;
	struct moat_http_response result;
};

/* The one shared context: the CA file it trusts and that file's identity on disk. */
static struct {
	SSL_CTX *ctx;
	char ca_file[PATH_MAX];
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
} shared;

static int ctx_for(const char *ca_file, SSL_CTX **out, struct moat_err *err)
{
	struct stat st;
	if (stat(ca_file, &st) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", ca_file);
	}
	if (shared.ctx && strcmp(shared.ca_file, ca_file) == 0 && shared.dev == st.st_dev &&
	    shared.ino == st.st_ino && shared.mtime.tv_sec == st.st_mtim.tv_sec &&
	    shared.mtime.tv_nsec == st.st_mtim.tv_nsec) {
		*out = shared.ctx;
		return 0;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		return moat_err_ssl(err, MOAT_ECRYPTO, "TLS context");
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_default_passwd_cb(ctx, moat_pem_no_passphrase);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	if (SSL_CTX_set_min_proto_version(ctx, MOAT_TLS_MIN_VERSION_OPENSSL) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, MOAT_TLS12_CIPHERS) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		SSL_CTX_free(ctx);
		return moat_err_ssl(err, MOAT_ECRYPTO, "TLS setup with ca=%s", ca_file);
	}
	if (strlen(ca_file) >= sizeof(shared.ca_file)) {
		SSL_CTX_free(ctx);
		return moat_err_set(err, MOAT_EINVAL, "CA path too long");
	}
	SSL_CTX_free(shared.ctx); /* calls still running hold their own reference */
	shared.ctx = ctx;
	snprintf(shared.ca_file, sizeof(shared.ca_file), "%s", ca_file);
	shared.dev = st.st_dev;
	shared.ino = st.st_ino;
	shared.mtime = st.st_mtim;
	*out = ctx;
	return 0;
}

void moat_est_cleanup(void)
{
	SSL_CTX_free(shared.ctx);
	memset(&shared, 0, sizeof(shared));
}

static void close_fd(struct moat_est_call *c)
{
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

/* Starts a non-blocking connect to the next address; MOAT_EIO when none is left. */
static int connect_next(struct moat_est_call *c, struct moat_err *err)
{
	int last = ECONNREFUSED;
	close_fd(c);
	while (c->ai_next) {
		struct addrinfo *ai = c->ai_next;
		c->ai_next = ai->ai_next;
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				ai->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
			c->fd = fd;
			c->state = ST_CONNECT;
			c->events = POLLOUT;
			return 0;
		}
		last = errno;
		close(fd);
	}
	return moat_err_errno(err, MOAT_EIO, last, "EST %s: connecting to %s", c->op, c->host);
}

int moat_est_call_start(const struct moat_est_call_params *p, int64_t now_mono_ms,
			struct moat_est_call **out, struct moat_err *err)
{
	struct moat_est_call *c = calloc(1, sizeof(*c));
	SSL_CTX *ctx = NULL;
	char port[16], hosthdr[300];
	int rc;
	*out = NULL;
	if (!c) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	c->fd = -1;
	c->result.retry_after_s = -1;
	snprintf(c->op, sizeof(c->op), "%s", p->op);
	if (strlen(p->host) >= sizeof(c->host)) {
		rc = moat_err_set(err, MOAT_EINVAL, "EST server host name too long");
		goto fail;
	}
	snprintf(c->host, sizeof(c->host), "%s", p->host);
	c->deadline_ms = now_mono_ms + (p->timeout_ms > 0 ? p->timeout_ms : DEFAULT_TIMEOUT_MS);
	if ((rc = ctx_for(p->ca_file, &ctx, err)) != 0) {
		goto fail;
	}
	c->ssl = SSL_new(ctx);
	if (!c->ssl) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "TLS connection");
		goto fail;
	}
	/* the server's name or address must be in its certificate */
	unsigned char addr[16];
	bool is_ip = inet_pton(AF_INET, p->host, addr) == 1 ||
		     inet_pton(AF_INET6, p->host, addr) == 1;
	if (is_ip) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), p->host) != 1) {
			rc = moat_err_ssl(err, MOAT_ECRYPTO, "TLS peer address %s", p->host);
			goto fail;
		}
	} else if (SSL_set1_host(c->ssl, p->host) != 1 ||
		   SSL_set_tlsext_host_name(c->ssl, p->host) != 1) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "TLS peer name %s", p->host);
		goto fail;
	}
	if (p->cert_file && p->key_file &&
	    (SSL_use_certificate_chain_file(c->ssl, p->cert_file) != 1 ||
	     SSL_use_PrivateKey_file(c->ssl, p->key_file, SSL_FILETYPE_PEM) != 1 ||
	     SSL_check_private_key(c->ssl) != 1)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "EST %s: client certificate %s with key %s",
				  p->op, p->cert_file, p->key_file);
		goto fail;
	}
	snprintf(hosthdr, sizeof(hosthdr), strchr(p->host, ':') ? "[%s]:%d" : "%s:%d", p->host,
		 p->port);
	if ((rc = moat_est_request(hosthdr, p->op, p->user, p->password, p->csr, p->csr_len,
				   &c->req, &c->req_len, err)) != 0) {
		goto fail;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	snprintf(port, sizeof(port), "%d", p->port);
	int g = getaddrinfo(p->host, port, &hints, &c->ai_list);
	if (g != 0) {
		rc = moat_err_set(err, MOAT_EIO, "EST %s: resolving %s: %s", p->op, p->host,
				  gai_strerror(g));
		goto fail;
	}
	c->ai_next = c->ai_list;
	/* the SSL object is kept for the handshake: connect_next closes only the socket */
	SSL *ssl = c->ssl;
	c->ssl = NULL;
	rc = connect_next(c, err);
	c->ssl = ssl;
	if (rc != 0) {
		goto fail;
	}
	*out = c;
	return 0;
fail:
	moat_est_call_free(c);
	return rc;
}

int moat_est_call_fd(const struct moat_est_call *c)
{
	return c->fd;
}

short moat_est_call_events(const struct moat_est_call *c)
{
	return c->events;
}

const struct moat_http_response *moat_est_call_response(const struct moat_est_call *c)
{
	return c->state == ST_DONE ? &c->result : NULL;
}

void moat_est_call_free(struct moat_est_call *c)
{
	if (!c) {
		return;
	}
	close_fd(c);
	if (c->ai_list) {
		freeaddrinfo(c->ai_list);
	}
	if (c->req) {
		OPENSSL_cleanse(c->req, c->req_len);
		free(c->req);
	}
	free(c->resp);
	moat_http_response_free(&c->result);
	free(c);
}

/* What an SSL call that did not finish waits for; or the error. */
static int ssl_wait(struct moat_est_call *c, int ret, const char *what, struct moat_err *err)
{
	int e = SSL_get_error(c->ssl, ret);
	if (e == SSL_ERROR_WANT_READ) {
		c->events = POLLIN;
		return MOAT_HTTP_INCOMPLETE;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		c->events = POLLOUT;
		return MOAT_HTTP_INCOMPLETE;
	}
	long vr = SSL_get_verify_result(c->ssl);
	if (c->state == ST_HANDSHAKE && vr != X509_V_OK) {
		ERR_clear_error();
		return moat_err_set(err, MOAT_EVERIFY,
				    "EST %s: %s: the server's certificate does not verify for %s: "
				    "%s",
				    c->op, what, c->host, X509_verify_cert_error_string(vr));
	}
	if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
		return moat_err_errno(err, MOAT_EIO, errno ? errno : ECONNRESET,
				      "EST %s: %s with %s", c->op, what, c->host);
	}
	return moat_err_ssl(err, MOAT_EIO, "EST %s: %s with %s", c->op, what, c->host);
}

static int step_read(struct moat_est_call *c, struct moat_err *err)
{
	for (;;) {
		if (c->resp_cap - c->resp_len < READ_CHUNK) {
			size_t cap = c->resp_cap ? c->resp_cap * 2 : 2 * READ_CHUNK;
			if (cap > MOAT_EST_RESPONSE_MAX_BYTES + READ_CHUNK) {
				cap = MOAT_EST_RESPONSE_MAX_BYTES + READ_CHUNK;
			}
			if (cap <= c->resp_cap) {
				return moat_err_set(err, MOAT_EINVAL,
						    "EST %s: the response is larger than %u bytes",
						    c->op, MOAT_EST_RESPONSE_MAX_BYTES);
			}
			unsigned char *n = realloc(c->resp, cap);
			if (!n) {
				return moat_err_set(err, MOAT_ENOMEM, "out of memory");
			}
			c->resp = n;
			c->resp_cap = cap;
		}
		size_t got = 0;
		int r = SSL_read_ex(c->ssl, c->resp + c->resp_len, c->resp_cap - c->resp_len, &got);
		bool eof = false;
		if (r != 1) {
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_ZERO_RETURN ||
			    (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0)) {
				eof = true;
			} else {
				return ssl_wait(c, r, "reading the response", err);
			}
		}
		c->resp_len += got;
		if (c->resp_len > MOAT_EST_RESPONSE_MAX_BYTES) {
			return moat_err_set(err, MOAT_EINVAL,
					    "EST %s: the response is larger than %u bytes", c->op,
					    MOAT_EST_RESPONSE_MAX_BYTES);
		}
		int pr = moat_http_response_parse(c->resp, c->resp_len, eof, &c->result, err);
		if (pr == 0) {
			c->state = ST_DONE;
			c->events = 0;
			return 0;
		}
		if (pr != MOAT_HTTP_INCOMPLETE) {
			moat_err_prefix(err, "EST %s", c->op);
			return pr;
		}
		if (eof) {
			return moat_err_set(err, MOAT_EIO,
					    "EST %s: the server closed the connection", c->op);
		}
	}
}

int moat_est_call_step(struct moat_est_call *c, int64_t now_mono_ms, struct moat_err *err)
{
	int r;
	if (c->state == ST_DONE) {
		return 0;
	}
	if (now_mono_ms > c->deadline_ms) {
		return moat_err_set(err, MOAT_ETIMEOUT, "EST %s: %s did not answer in time", c->op,
				    c->host);
	}
	switch (c->state) {
	case ST_CONNECT: {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
		if (poll(&pf, 1, 0) == 0) {
			return MOAT_HTTP_INCOMPLETE;
		}
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
			soerr = errno;
		}
		if (soerr != 0) {
			SSL *ssl = c->ssl;
			c->ssl = NULL;
			int rc = c->ai_next ? connect_next(c, err)
					    : moat_err_errno(err, MOAT_EIO, soerr,
							     "EST %s: connecting to %s", c->op,
							     c->host);
			c->ssl = ssl;
			return rc == 0 ? MOAT_HTTP_INCOMPLETE : rc;
		}
		if (SSL_set_fd(c->ssl, c->fd) != 1) {
			return moat_err_ssl(err, MOAT_ECRYPTO, "TLS connection");
		}
		SSL_set_connect_state(c->ssl);
		c->state = ST_HANDSHAKE;
	}
		/* fall through */
	case ST_HANDSHAKE:
		ERR_clear_error();
		errno = 0;
		r = SSL_do_handshake(c->ssl);
		if (r != 1) {
			return ssl_wait(c, r, "TLS handshake", err);
		}
		c->state = ST_WRITE;
		/* fall through */
	case ST_WRITE:
		while (c->req_off < c->req_len) {
			size_t w = 0;
			ERR_clear_error();
			errno = 0;
			r = SSL_write_ex(c->ssl, c->req + c->req_off, c->req_len - c->req_off, &w);
			if (r != 1) {
				return ssl_wait(c, r, "sending the request", err);
			}
			c->req_off += w;
		}
		c->state = ST_READ;
		c->events = POLLIN;
		/* fall through */
	case ST_READ:
		ERR_clear_error();
		errno = 0;
		r = step_read(c, err);
		if (r == 0) {
			close_fd(c);
		}
		return r;
	case ST_DONE:
	default:
		return 0;
	}
}

int moat_est_call_run(const struct moat_est_call_params *p, struct moat_http_response *out,
		      struct moat_err *err)
{
	struct moat_est_call *c = NULL;
	memset(out, 0, sizeof(*out));
	out->retry_after_s = -1;
	int rc = moat_est_call_start(p, moat_time_mono_ms(), &c, err);
	while (rc == 0) {
		rc = moat_est_call_step(c, moat_time_mono_ms(), err);
		if (rc != MOAT_HTTP_INCOMPLETE) {
			break;
		}
		rc = 0;
		struct pollfd pf = {.fd = c->fd, .events = c->events};
		int64_t left = c->deadline_ms - moat_time_mono_ms();
		if (poll(&pf, 1,
			 left < 0      ? 0
			 : left > 1000 ? 1000
				       : (int)left) < 0 &&
		    errno != EINTR) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "poll");
		}
	}
	if (rc == 0) {
		*out = c->result; /* the body moves to the caller */
		memset(&c->result, 0, sizeof(c->result));
	}
	moat_est_call_free(c);
	return rc;
}
