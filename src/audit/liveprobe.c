/* liveprobe.c: see moat/liveprobe.h. */
#include "moat/liveprobe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "<stage>: <what>" as c's error. */
static void set_error(struct lp_conn *c, const char *stage, const char *what)
{
	snprintf(c->error, sizeof(c->error), "%s: %s", stage, what);
}

/* The first reason on OpenSSL's queue (the alert the peer sent, a verify failure...). */
static void ssl_error(struct lp_conn *c, const char *stage)
{
	unsigned long e = ERR_get_error();
	unsigned long last = e;
	while (last) { /* the first is the most specific for alerts; keep it, drain the rest */
		last = ERR_get_error();
	}
	const char *reason = e ? ERR_reason_error_string(e) : NULL;
	if (reason) {
		snprintf(c->error, sizeof(c->error), "%s: %s", stage, reason);
	} else if (errno) {
		snprintf(c->error, sizeof(c->error), "%s: %s", stage, strerror(errno));
	} else {
		snprintf(c->error, sizeof(c->error), "%s: connection closed by the peer", stage);
	}
}

static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			return -2;
		}
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, (int)left);
		if (n > 0) {
			return 0;
		}
		if (n < 0 && errno != EINTR) {
			return -1;
		}
	}
}

static int tcp_connect(const struct lp_tls_opts *o, struct lp_conn *c)
{
	char port[16];
	snprintf(port, sizeof(port), "%d", o->port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	int g = getaddrinfo(o->addr, port, &hints, &ai);
	if (g != 0) {
		snprintf(c->error, sizeof(c->error), "cannot resolve %s: %s", o->addr,
			 gai_strerror(g));
		return -1;
	}
	int64_t deadline = now_ms() + c->timeout_ms;
	int rc = -1;
	for (struct addrinfo *a = ai; a && rc != 0; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			set_error(c, "socket", strerror(errno));
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
			set_error(c, "connect", strerror(errno));
			close(fd);
			continue;
		}
		int w = wait_fd(fd, POLLOUT, deadline);
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (w == -2) {
			set_error(c, "connect", "no answer in time");
		} else if (w < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
			set_error(c, "connect", strerror(errno));
		} else if (soerr != 0) {
			set_error(c, "connect", strerror(soerr));
		} else {
			c->fd = fd;
			rc = 0;
			break;
		}
		close(fd);
	}
	freeaddrinfo(ai);
	return rc;
}

/* Drives one non-blocking SSL operation (ret) to completion or the deadline. */
static int ssl_wait(struct lp_conn *c, int ret, int64_t deadline)
{
	int e = SSL_get_error(c->ssl, ret);
	if (e == SSL_ERROR_WANT_READ) {
		return wait_fd(c->fd, POLLIN, deadline) == 0 ? 1 : -2;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		return wait_fd(c->fd, POLLOUT, deadline) == 0 ? 1 : -2;
	}
	if (e == SSL_ERROR_ZERO_RETURN) {
		c->peer_closed = true;
		return 0;
	}
	return -1;
}

/* Verification stays OpenSSL's (ok is returned unchanged); this only keeps the server's
 * leaf, so a failure can say which names it carries. */
static int keep_leaf(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct lp_conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
	X509 *cert = X509_STORE_CTX_get_current_cert(x);
	if (c && !c->server_leaf && cert && X509_STORE_CTX_get_error_depth(x) == 0) {
		c->server_leaf = X509_dup(cert);
	}
	return ok;
}

int lp_open(const struct lp_tls_opts *o, struct lp_conn *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
	c->verify_result = X509_V_OK;
	c->stage = LP_STAGE_TCP;
	if (tcp_connect(o, c) != 0) {
		return -1;
	}
	c->stage = LP_STAGE_TLS;
	if (o->plaintext) {
		c->stage = LP_STAGE_OPEN;
		return 0;
	}
	ERR_clear_error();
	c->ctx = SSL_CTX_new(TLS_client_method());
	if (!c->ctx) {
		ssl_error(c, "TLS setup");
		return -1;
	}
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, keep_leaf);
	if (o->legacy) {
		SSL_CTX_set_security_level(c->ctx, 0);
	}
	if (SSL_CTX_set_min_proto_version(c->ctx,
					  o->min_version ? o->min_version : TLS1_2_VERSION) != 1 ||
	    (o->max_version && SSL_CTX_set_max_proto_version(c->ctx, o->max_version) != 1) ||
	    (o->ciphers && SSL_CTX_set_cipher_list(c->ctx, o->ciphers) != 1) ||
	    SSL_CTX_load_verify_locations(c->ctx, o->cafile, NULL) != 1) {
		ssl_error(c, "TLS setup");
		return -1;
	}
	if (o->cert && (SSL_CTX_use_certificate_chain_file(c->ctx, o->cert) != 1 ||
			SSL_CTX_use_PrivateKey_file(c->ctx, o->key, SSL_FILETYPE_PEM) != 1 ||
			SSL_CTX_check_private_key(c->ctx) != 1)) {
		ssl_error(c, "client certificate");
		return -1;
	}
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl) {
		ssl_error(c, "TLS setup");
		return -1;
	}
	const char *name = o->verify_name ? o->verify_name : o->addr;
	X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
	unsigned char ipbuf[16];
	bool is_ip = inet_pton(AF_INET, name, ipbuf) == 1 || inet_pton(AF_INET6, name, ipbuf) == 1;
	SSL_set_app_data(c->ssl, c);
	if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, name)
		   : X509_VERIFY_PARAM_set1_host(vp, name, 0)) != 1 ||
	    (!is_ip && SSL_set_tlsext_host_name(c->ssl, name) != 1) ||
	    SSL_set_fd(c->ssl, c->fd) != 1) {
		ssl_error(c, "TLS setup");
		return -1;
	}
	int64_t deadline = now_ms() + c->timeout_ms;
	for (;;) {
		errno = 0;
		int r = SSL_connect(c->ssl);
		if (r == 1) {
			break;
		}
		int w = ssl_wait(c, r, deadline);
		if (w == 1) {
			continue;
		}
		c->verify_result = SSL_get_verify_result(c->ssl);
		if (w == -2) {
			set_error(c, "TLS handshake", "no answer in time");
		} else if (c->verify_result != X509_V_OK) {
			ERR_clear_error();
			snprintf(c->error, sizeof(c->error),
				 "TLS handshake: server certificate: %s",
				 X509_verify_cert_error_string(c->verify_result));
		} else {
			ssl_error(c, "TLS handshake");
		}
		return -1;
	}
	snprintf(c->version, sizeof(c->version), "%s", SSL_get_version(c->ssl));
	c->stage = LP_STAGE_OPEN;
	return 0;
}

void lp_close(struct lp_conn *c)
{
	X509_free(c->server_leaf);
	c->server_leaf = NULL;
	if (c->ssl) {
		SSL_free(c->ssl);
	}
	if (c->ctx) {
		SSL_CTX_free(c->ctx);
	}
	if (c->fd >= 0) {
		close(c->fd);
	}
	c->ssl = NULL;
	c->ctx = NULL;
	c->fd = -1;
	ERR_clear_error();
}

int lp_write(struct lp_conn *c, const void *buf, size_t len)
{
	int64_t deadline = now_ms() + c->timeout_ms;
	const uint8_t *p = buf;
	while (len > 0) {
		if (!c->ssl) {
			ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				if (wait_fd(c->fd, POLLOUT, deadline) != 0) {
					set_error(c, "write", "no progress in time");
					return -1;
				}
				continue;
			}
			if (n <= 0) {
				set_error(c, "write", strerror(errno));
				return -1;
			}
			p += n;
			len -= (size_t)n;
			continue;
		}
		errno = 0;
		int n = SSL_write(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		int w = ssl_wait(c, n, deadline);
		if (w != 1) {
			if (w == -2) {
				set_error(c, "write", "no progress in time");
			} else {
				ssl_error(c, "write");
			}
			return -1;
		}
	}
	return 0;
}

int lp_read(struct lp_conn *c, void *buf, size_t size, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		if (!c->ssl) {
			ssize_t n = recv(c->fd, buf, size, 0);
			if (n > 0) {
				return (int)n;
			}
			if (n == 0) {
				c->peer_closed = true;
				return 0;
			}
			if (errno != EAGAIN && errno != EINTR) {
				set_error(c, "read", strerror(errno));
				return -1;
			}
			if (wait_fd(c->fd, POLLIN, deadline) != 0) {
				return -2;
			}
			continue;
		}
		errno = 0;
		int n = SSL_read(c->ssl, buf, size > INT32_MAX ? INT32_MAX : (int)size);
		if (n > 0) {
			return n;
		}
		int w = ssl_wait(c, n, deadline);
		if (w == 1) {
			continue;
		}
		if (w == 0) {
			return 0;
		}
		if (w == -2) {
			return -2;
		}
		ssl_error(c, "read");
		if (strstr(c->error, "unexpected eof") || strstr(c->error, "connection closed")) {
			c->peer_closed = true;
		}
		return -1;
	}
}

/* ---- MQTT 5 ---- */

struct pk {
	uint8_t buf[LP_PACKET_MAX + 16];
	size_t len;
	bool overflow;
};

static void put(struct pk *b, const void *p, size_t n)
{
	if (b->len + n > sizeof(b->buf)) {
		b->overflow = true;
		return;
	}
	memcpy(b->buf + b->len, p, n);
	b->len += n;
}
static void put8(struct pk *b, uint8_t v)
{
	put(b, &v, 1);
}
static void put16(struct pk *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	put(b, x, 2);
}
static void putstr(struct pk *b, const char *s, size_t n)
{
	put16(b, (uint16_t)n);
	put(b, s, n);
}

/* Sends fixed header byte h with body b (remaining length encoded here). */
static int send_packet(struct lp_conn *c, uint8_t h, const struct pk *b)
{
	if (b->overflow) {
		set_error(c, "packet", "too large");
		return -1;
	}
	uint8_t hdr[5];
	size_t n = 0;
	hdr[n++] = h;
	size_t rl = b->len;
	do {
		uint8_t d = rl % 128;
		rl /= 128;
		hdr[n++] = (uint8_t)(d | (rl ? 0x80 : 0));
	} while (rl && n < sizeof(hdr));
	if (lp_write(c, hdr, n) != 0) {
		return -1;
	}
	return b->len ? lp_write(c, b->buf, b->len) : 0;
}

int lp_mqtt_connect(struct lp_conn *c, const char *client_id, const struct lp_will *will)
{
	static struct pk b;
	b.len = 0;
	b.overflow = false;
	putstr(&b, "MQTT", 4);
	put8(&b, 5);
	uint8_t flags = 0x02; /* clean start */
	if (will) {
		flags |= 0x04 | (will->retain ? 0x20 : 0);
	}
	put8(&b, flags);
	put16(&b, 30);
	put8(&b, 0); /* no properties */
	putstr(&b, client_id, strlen(client_id));
	if (will) {
		put8(&b, 0); /* will properties */
		putstr(&b, will->topic, strlen(will->topic));
		putstr(&b, will->payload, strlen(will->payload));
	}
	return send_packet(c, 0x10, &b);
}

int lp_mqtt_subscribe(struct lp_conn *c, uint16_t pid, const char *const *filters, size_t n)
{
	static struct pk b;
	b.len = 0;
	b.overflow = false;
	put16(&b, pid);
	put8(&b, 0);
	for (size_t i = 0; i < n; i++) {
		putstr(&b, filters[i], strlen(filters[i]));
		put8(&b, 1);
	}
	return send_packet(c, 0x82, &b);
}

int lp_mqtt_publish(struct lp_conn *c, uint16_t pid, const char *topic, const void *payload,
		    size_t len, int qos, bool retain)
{
	static struct pk b;
	b.len = 0;
	b.overflow = false;
	putstr(&b, topic, strlen(topic));
	if (qos > 0) {
		put16(&b, pid);
	}
	put8(&b, 0);
	put(&b, payload, len);
	return send_packet(c, (uint8_t)(0x30 | (qos > 0 ? 0x02 : 0) | (retain ? 1 : 0)), &b);
}

int lp_mqtt_disconnect(struct lp_conn *c, uint8_t reason)
{
	struct pk b = {.len = 0};
	put8(&b, reason);
	put8(&b, 0);
	return send_packet(c, 0xE0, &b);
}

static int read_exact(struct lp_conn *c, uint8_t *p, size_t n, int64_t deadline)
{
	while (n > 0) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			return -2;
		}
		int r = lp_read(c, p, n, (int)left);
		if (r == 0) {
			set_error(c, "read", "connection closed by the broker");
			return -1;
		}
		if (r < 0) {
			return r;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int lp_mqtt_read(struct lp_conn *c, struct lp_packet *p, int timeout_ms)
{
	memset(p, 0, sizeof(*p));
	int64_t deadline = now_ms() + timeout_ms;
	uint8_t h;
	int r = read_exact(c, &h, 1, deadline);
	if (r != 0) {
		return r;
	}
	size_t len = 0;
	for (int i = 0, mult = 1; i < 4; i++, mult *= 128) {
		uint8_t d;
		if ((r = read_exact(c, &d, 1, deadline)) != 0) {
			return r;
		}
		len += (size_t)(d & 0x7f) * (size_t)mult;
		if (!(d & 0x80)) {
			break;
		}
	}
	if (len > LP_PACKET_MAX) {
		set_error(c, "read", "packet too large");
		return -1;
	}
	p->type = h >> 4;
	p->flags = h & 0x0f;
	p->body = malloc(len ? len : 1);
	if (!p->body) {
		set_error(c, "read", "out of memory");
		return -1;
	}
	p->len = len;
	if ((r = read_exact(c, p->body, len, deadline)) != 0) {
		free(p->body);
		p->body = NULL;
		return r;
	}
	return 0;
}

static int first_reason(const struct lp_packet *p)
{
	switch (p->type) {
	case LP_MQTT_CONNACK:
		return p->len >= 2 ? p->body[1] : -1;
	case LP_MQTT_PUBACK:
		return p->len >= 3 ? p->body[2] : 0;
	case LP_MQTT_SUBACK: {
		uint8_t rc;
		return lp_mqtt_suback_codes(p, &rc, 1) == 1 ? rc : -1;
	}
	case LP_MQTT_DISCONNECT:
		return p->len >= 1 ? p->body[0] : 0;
	default:
		return -1;
	}
}

size_t lp_mqtt_suback_codes(const struct lp_packet *p, uint8_t *rcs, size_t max)
{
	if (p->len < 3) {
		return 0;
	}
	size_t off = 2, plen = 0;
	for (int i = 0, mult = 1; i < 4 && off < p->len; i++, mult *= 128) {
		uint8_t d = p->body[off++];
		plen += (size_t)(d & 0x7f) * (size_t)mult;
		if (!(d & 0x80)) {
			break;
		}
	}
	off += plen;
	size_t n = 0;
	while (off < p->len && n < max) {
		rcs[n++] = p->body[off++];
	}
	return n;
}

int lp_mqtt_expect(struct lp_conn *c, uint8_t type, int timeout_ms, int *rc, char *leak,
		   size_t size)
{
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			return -2;
		}
		struct lp_packet p;
		int r = lp_mqtt_read(c, &p, (int)left);
		if (r != 0) {
			return r;
		}
		if (p.type == LP_MQTT_PUBLISH && leak && size && !leak[0] && p.len >= 2) {
			size_t tl = ((size_t)p.body[0] << 8) | p.body[1];
			if (tl + 2 <= p.len) {
				snprintf(leak, size, "%.*s", (int)tl, (const char *)p.body + 2);
			}
		}
		if (p.type == type || p.type == LP_MQTT_DISCONNECT) {
			*rc = first_reason(&p);
			uint8_t got = p.type;
			free(p.body);
			if (got == LP_MQTT_DISCONNECT && type != LP_MQTT_DISCONNECT) {
				snprintf(c->error, sizeof(c->error),
					 "the broker disconnected the client: %s",
					 lp_mqtt_reason_name(*rc));
				c->peer_closed = true;
				return -1;
			}
			return 0;
		}
		free(p.body);
	}
}

const char *lp_mqtt_reason_name(int rc)
{
	switch (rc) {
	case 0x00:
		return "success";
	case 0x01:
		return "granted QoS 1";
	case 0x02:
		return "granted QoS 2";
	case 0x04:
		return "disconnect with will";
	case 0x80:
		return "unspecified error";
	case 0x81:
		return "malformed packet";
	case 0x82:
		return "protocol error";
	case 0x83:
		return "implementation specific error";
	case 0x85:
		return "client identifier not valid";
	case 0x86:
		return "bad user name or password";
	case 0x87:
		return "not authorized";
	case 0x89:
		return "server busy";
	case 0x8A:
		return "banned";
	case 0x8F:
		return "topic filter invalid";
	case 0x90:
		return "topic name invalid";
	case 0x95:
		return "packet too large";
	case 0x96:
		return "message rate too high";
	case 0x97:
		return "quota exceeded";
	case 0x99:
		return "payload format invalid";
	case 0x9E:
		return "shared subscriptions not supported";
	case 0xA2:
		return "wildcard subscriptions not supported";
	default:
		return "other reason";
	}
}
