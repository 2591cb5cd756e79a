/* liveprobe.h: one connection as a device or an attacker makes it, for `moat audit --live`
 * and `moat doctor --connect` (src/audit/liveprobe.c): TCP, then TLS on OpenSSL with the
 * server's chain verified against a CA file and its name checked (always; a probe never
 * turns verification off), with whatever client certificate, protocol versions and suites
 * the probe wants to offer; then MQTT 5 packets written and read by hand, so a probe can
 * send what no well-behaved client library would (a last will aimed elsewhere, too many
 * filters in one SUBSCRIBE, an oversized PUBLISH) and read the broker's exact answer.
 *
 * Everything is bounded: connect, handshake and every read have a deadline, packets read
 * are at most LP_PACKET_MAX bytes (larger ones end the connection as a protocol error).
 */
#ifndef MOAT_LIVEPROBE_H
#define MOAT_LIVEPROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#define LP_PACKET_MAX 65536u
#define LP_ERROR_LEN 256

struct lp_tls_opts {
	const char *addr; /* IP address or host name to connect to */
	int port;
	bool plaintext;		 /* no TLS at all */
	const char *verify_name; /* name or IP the server certificate must carry; NULL: addr */
	const char *cafile;	 /* the only trust anchors */
	const char *cert;	 /* client certificate (and chain), or NULL */
	const char *key;	 /* its key, or NULL */
	int min_version;	 /* TLS1_VERSION...; 0: TLS 1.2 */
	int max_version;	 /* 0: the newest */
	const char *ciphers;	 /* TLS 1.2 suites, or NULL for OpenSSL's default */
	bool legacy;		 /* security level 0, so old versions and weak suites are offered */
	int timeout_ms;
};

enum lp_stage {
	LP_STAGE_TCP = 0, /* connect failed: *.error */
	LP_STAGE_TLS,	  /* the handshake failed */
	LP_STAGE_OPEN,	  /* connected (and TLS up) */
};

struct lp_conn {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	int timeout_ms;
	enum lp_stage stage;
	long verify_result;	  /* of the server's certificate (X509_V_OK when it verified) */
	bool peer_closed;	  /* the peer ended the connection (EOF or close_notify) */
	char error[LP_ERROR_LEN]; /* the last failure, as OpenSSL or the system says it */
	char version[16];	  /* negotiated TLS version */
	X509 *server_leaf; /* the server certificate as offered (verified or not), to explain a
			     failure; NULL when none came */
};

/* Opens c (always: close it with lp_close). 0 when connected; -1 otherwise with c->stage
 * and c->error saying where and why. */
int lp_open(const struct lp_tls_opts *o, struct lp_conn *c);
void lp_close(struct lp_conn *c);
/* Writes all of buf; -1 on failure (c->error). */
int lp_write(struct lp_conn *c, const void *buf, size_t len);
/* Reads up to size bytes, waiting at most timeout_ms: bytes read, 0 when the peer closed,
 * -1 on failure (c->error; an alert the peer sent is named there), -2 on timeout. */
int lp_read(struct lp_conn *c, void *buf, size_t size, int timeout_ms);

/* ---- MQTT 5, by hand ---- */

enum {
	LP_MQTT_CONNACK = 2,
	LP_MQTT_PUBLISH = 3,
	LP_MQTT_PUBACK = 4,
	LP_MQTT_SUBACK = 9,
	LP_MQTT_DISCONNECT = 14,
};

struct lp_packet {
	uint8_t type; /* high nibble of the fixed header */
	uint8_t flags;
	uint8_t *body; /* malloc'd, len bytes */
	size_t len;
};

struct lp_will {
	const char *topic;
	const char *payload;
	bool retain;
};

/* CONNECT (clean start, keepalive 30 s) with client_id and an optional will. */
int lp_mqtt_connect(struct lp_conn *c, const char *client_id, const struct lp_will *will);
/* SUBSCRIBE of n filters at QoS 1 with packet id pid. */
int lp_mqtt_subscribe(struct lp_conn *c, uint16_t pid, const char *const *filters, size_t n);
/* PUBLISH at qos (0 or 1; pid used for 1). */
int lp_mqtt_publish(struct lp_conn *c, uint16_t pid, const char *topic, const void *payload,
		    size_t len, int qos, bool retain);
/* DISCONNECT with a reason code (0 normal, 4 "disconnect with will message"). */
int lp_mqtt_disconnect(struct lp_conn *c, uint8_t reason);
/* Reads the next packet within timeout_ms: 0, -1 failure or close (c->error,
 * c->peer_closed), -2 timeout. Free p->body. */
int lp_mqtt_read(struct lp_conn *c, struct lp_packet *p, int timeout_ms);
/* Reads packets until one of type arrives (others are dropped, PUBLISHes counted into
 * *publishes when not NULL, their topic kept in leak (size bytes) when it is not own):
 * its first reason code (CONNACK: the connect reason; SUBACK: the first filter's;
 * PUBACK: the reason, 0 when the packet has none) in *rc; 0, -1, -2 as lp_mqtt_read. */
int lp_mqtt_expect(struct lp_conn *c, uint8_t type, int timeout_ms, int *rc, char *leak,
		   size_t size);
/* Every reason code of a SUBACK body (after packet id and properties) into rcs (at most
 * max); how many. */
size_t lp_mqtt_suback_codes(const struct lp_packet *p, uint8_t *rcs, size_t max);

/* An MQTT 5 reason code in words ("not authorized"). */
const char *lp_mqtt_reason_name(int rc);

#endif
