/* probe.c: "is the broker up?" answered by a real TLS handshake that verifies the broker's
 * certificate against the deployment CA and the name clients use, as a device would, under
 * moat's TLS policy (tlspolicy.h).
 *
 * The probe presents a client identity of the deployment when it has one (a service, else
 * an operator: moat_broker_endpoint_get picks it), completes the handshake, closes the TLS
 * session and drains the socket before closing it, so the broker sees a client that left
 * before MQTT CONNECT with a verified certificate (a health check, which the plugin does not
 * report) rather than a failed handshake. Without one it goes anonymous and the broker
 * refuses it right after its own certificate has been sent. Either way a verified server
 * certificate is what proves that this deployment's broker listens there. Sockets are
 * blocking with send/receive timeouts, and the connect itself is bounded with a
 * non-blocking connect and poll.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "moat/broker.h"
#include "moat/certinfo.h"
#include "moat/registry.h"
#include "moat/timeutil.h"
#include "moat/tlspolicy.h"

#define PROBE_DRAIN_MS 500	 /* how long the probe waits for the goodbye of the broker */
#define PROBE_DRAIN_READS_MAX 16 /* reads of what the broker still sends (tickets) */

void moat_broker_probe_target(const struct moat_broker_settings *s,
			      const struct moat_deploy_conf *conf, const char **out_addr,
			      const char **out_verify_name)
{
	const char *addr = s->listen_count ? s->listen[0] : "127.0.0.1";
	const char *name = conf->broker_host_count ? conf->broker_hosts[0] : addr;
	for (size_t i = 0; i < conf->broker_host_count; i++) {
		if (strcmp(conf->broker_hosts[i], addr) == 0) {
			name = addr;
		}
	}
	*out_addr = addr;
	*out_verify_name = name;
}

/* The probe's identity: the first usable one of a role (moat_broker_endpoint_get). */
struct pick {
	const struct moat_deploy *d;
	struct moat_broker_endpoint *e;
	int64_t now;
};

static int pick_cb(const struct moat_identity *ident, void *ctx)
{
	struct pick *p = ctx;
	struct moat_broker_endpoint *e = p->e;
	if (ident->status != MOAT_ID_ACTIVE || ident->cert_revoked || ident->not_after <= p->now ||
	    moat_deploy_identity_path(p->d, ident->id, "cert.pem", e->cert, sizeof(e->cert),
				      NULL) != 0 ||
	    moat_deploy_identity_path(p->d, ident->id, "key.pem", e->key, sizeof(e->key), NULL) !=
		    0 ||
	    access(e->cert, R_OK) != 0 || access(e->key, R_OK) != 0) {
		e->cert[0] = e->key[0] = '\0';
		return 0;
	}
	snprintf(e->identity, sizeof(e->identity), "%s", ident->id);
	return 1; /* stop at the first */
}

int moat_broker_endpoint_get(const struct moat_deploy *d, const struct moat_broker_settings *s,
			     struct moat_broker_endpoint *out, struct moat_err *err)
{
	static const enum moat_role roles[] = {MOAT_ROLE_SERVICE, MOAT_ROLE_OPERATOR};
	const char *addr = NULL;
	const char *name = NULL;
	moat_broker_probe_target(s, moat_deploy_settings(d), &addr, &name);
	memset(out, 0, sizeof(*out));
	snprintf(out->addr, sizeof(out->addr), "%s", addr);
	snprintf(out->verify_name, sizeof(out->verify_name), "%s", name);
	out->port = s->port;
	struct pick p = {.d = d, .e = out, .now = moat_time_now()};
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]) && !out->identity[0]; i++) {
		int rc = moat_registry_identity_foreach(moat_deploy_registry(d), roles[i], pick_cb,
							&p, err);
		if (rc < 0) {
			return rc;
		}
	}
	return moat_deploy_path(d, out->cafile, sizeof(out->cafile), "pki/ca.crt", err);
}

static int tcp_connect(const char *addr, int port, int timeout_ms, struct moat_err *err)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		sslen = sizeof(*v4);
	} else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		sslen = sizeof(*v6);
	} else {
		return moat_err_set(err, MOAT_EINVAL, "'%s': not an IP address", addr);
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "socket");
	}
	if (connect(fd, (struct sockaddr *)&ss, sslen) != 0) {
		if (errno != EINPROGRESS) {
			int e = errno;
			close(fd);
			return moat_err_errno(err, MOAT_EIO, e, "connect %s:%d", addr, port);
		}
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		int n = poll(&pfd, 1, timeout_ms);
		int soerr = 0;
		socklen_t len = sizeof(soerr);
		if (n == 0) {
			close(fd);
			return moat_err_set(err, MOAT_ETIMEOUT, "connect %s:%d: timed out", addr,
					    port);
		}
		if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 ||
		    soerr != 0) {
			int e = n < 0 ? errno : soerr;
			close(fd);
			return moat_err_errno(err, MOAT_EIO, e, "connect %s:%d", addr, port);
		}
	}
	int fl = fcntl(fd, F_GETFL);
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
		int e = errno;
		close(fd);
		return moat_err_errno(err, MOAT_EIO, e, "socket options");
	}
	return fd;
}

/* After a handshake with a client certificate: close_notify, then read until the broker
 * closes too (or a short while), so the socket closes with nothing unread and the broker
 * sees an orderly goodbye, not a reset. */
static void goodbye(SSL *ssl, int fd)
{
	struct timeval tv = {.tv_sec = 0, .tv_usec = PROBE_DRAIN_MS * 1000};
	char buf[512];
	(void)SSL_shutdown(ssl);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
		return;
	}
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < PROBE_DRAIN_READS_MAX; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0) {
			break;
		}
	}
}

/* The client side of the probe's TLS: policy, the CA, the name to verify and, when cert is
 * not empty, the client identity. */
static int probe_ctx(const char *cafile, const char *verify_name, bool is_ip, const char *cert,
		     const char *key, SSL_CTX **out, struct moat_err *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int rc = 0;
	if (!ctx) {
		return moat_err_ssl(err, MOAT_ECRYPTO, "TLS context");
	}
	if (SSL_CTX_set_min_proto_version(ctx, MOAT_TLS_MIN_VERSION_OPENSSL) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, MOAT_TLS12_CIPHERS) != 1) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "TLS policy");
		goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "%s", cafile);
		goto out;
	}
	X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
	if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, verify_name)
		   : X509_VERIFY_PARAM_set1_host(param, verify_name, 0)) != 1) {
		rc = moat_err_ssl(err, MOAT_EINVAL, "verify name %s", verify_name);
		goto out;
	}
	if (cert && cert[0]) {
		SSL_CTX_set_default_passwd_cb(ctx, moat_pem_no_passphrase);
		if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			rc = moat_err_ssl(err, MOAT_ECRYPTO, "%s: client identity", cert);
			goto out;
		}
	}
	*out = ctx;
	ctx = NULL;
out:
	SSL_CTX_free(ctx);
	return rc;
}

static int probe(const char *addr, int port, const char *cafile, const char *verify_name,
		 const char *cert, const char *key, int timeout_ms, struct moat_err *err)
{
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	int fd = -1;
	int rc;
	unsigned char ipbuf[sizeof(struct in6_addr)];
	bool is_ip = inet_pton(AF_INET, verify_name, ipbuf) == 1 ||
		     inet_pton(AF_INET6, verify_name, ipbuf) == 1;

	if ((rc = probe_ctx(cafile, verify_name, is_ip, cert, key, &ctx, err)) != 0) {
		goto out;
	}
	if ((rc = fd = tcp_connect(addr, port, timeout_ms, err)) < 0) {
		goto out;
	}
	ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1 ||
	    (!is_ip && SSL_set_tlsext_host_name(ssl, verify_name) != 1)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "TLS session");
		goto out;
	}
	int ok = SSL_connect(ssl);
	long vr = SSL_get_verify_result(ssl);
	bool peer = SSL_get0_peer_certificate(ssl) != NULL;
	if (ok == 1 && cert && cert[0]) {
		goodbye(ssl, fd);
	}
	ERR_clear_error();
	if (peer && vr == X509_V_OK) {
		rc = 0; /* verified; what the broker thinks of our client certificate, or of its
			   absence, is not what the probe asks */
	} else if (peer) {
		rc = moat_err_set(err, MOAT_EVERIFY, "broker %s:%d: certificate not verified: %s",
				  addr, port, X509_verify_cert_error_string(vr));
	} else if (ok != 1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		rc = moat_err_set(err, MOAT_ETIMEOUT, "broker %s:%d: TLS handshake timed out", addr,
				  port);
	} else {
		rc = moat_err_set(err, MOAT_EIO, "broker %s:%d: no TLS handshake", addr, port);
	}
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd >= 0) {
		close(fd);
	}
	return rc;
}

int moat_broker_probe(const char *addr, int port, const char *cafile, const char *verify_name,
		      int timeout_ms, struct moat_err *err)
{
	return probe(addr, port, cafile, verify_name, NULL, NULL, timeout_ms, err);
}

int moat_broker_probe_endpoint(const struct moat_broker_endpoint *e, int timeout_ms,
			       struct moat_err *err)
{
	return probe(e->addr, e->port, e->cafile, e->verify_name, e->cert, e->key, timeout_ms, err);
}
