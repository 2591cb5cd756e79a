/* probe.c: "is the broker up?" answered by a real TLS handshake that verifies the broker's
 * certificate against the deployment CA and the name clients use, as a device would, under
 * moat's TLS policy (tlspolicy.h).
 *
 * The probe carries no client certificate, so the broker refuses it right after its own
 * certificate has been sent; a verified server certificate is what proves that this
 * deployment's broker listens there. Sockets are blocking with send/receive timeouts, and
 * the connect itself is bounded with a non-blocking connect and poll.
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
#include "moat/tlspolicy.h"

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

int moat_broker_endpoint_get(const struct moat_deploy *d, const struct moat_broker_settings *s,
			     struct moat_broker_endpoint *out, struct moat_err *err)
{
	const char *addr = NULL;
	const char *name = NULL;
	moat_broker_probe_target(s, moat_deploy_settings(d), &addr, &name);
	snprintf(out->addr, sizeof(out->addr), "%s", addr);
	snprintf(out->verify_name, sizeof(out->verify_name), "%s", name);
	out->port = s->port;
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

int moat_broker_probe(const char *addr, int port, const char *cafile, const char *verify_name,
		      int timeout_ms, struct moat_err *err)
{
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	int fd = -1;
	int rc;
	unsigned char ipbuf[sizeof(struct in6_addr)];

	ctx = SSL_CTX_new(TLS_client_method());
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
	bool is_ip = inet_pton(AF_INET, verify_name, ipbuf) == 1 ||
		     inet_pton(AF_INET6, verify_name, ipbuf) == 1;
	if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, verify_name)
		   : X509_VERIFY_PARAM_set1_host(param, verify_name, 0)) != 1) {
		rc = moat_err_ssl(err, MOAT_EINVAL, "verify name %s", verify_name);
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
	ERR_clear_error();
	if (peer && vr == X509_V_OK) {
		rc = 0; /* verified; a refusal of our missing client certificate is expected */
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
