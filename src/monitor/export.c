/* export.c: moatd's exporter thread. In moatd with its ingest the thread follows the
 * registry's security_events by seq (the ingest's hook only wakes it), from a cursor kept
 * in MOAT_EXPORT_CURSOR_FILE, so no event recorded is lost to a crash; one moatd of a
 * deployment directory does so at a time (MOAT_EXPORT_LOCK_FILE), the others stand by.
 * Without the ingest, events come in through moat_export_submit (the thread's own MQTT
 * session on moat/events/# as the service identity). Either way each is counted, queued
 * for the SIEM collector (a bounded ring, kept on disk in MOAT_SIEM_QUEUE_FILE: when the
 * collector is away the oldest are dropped and counted) and, if it is an alert kind, added
 * to the webhook's deduplicated queue, which is written to MOAT_ALERT_QUEUE_FILE after
 * every change. The thread delivers both with back-off. Peers are verified with OpenSSL:
 * the configured CA (siem_ca, webhook_ca) or the deployment's root, and the URL's host
 * name or address; TLS 1.2 or newer with the suites of tlspolicy.h.
 *
 * The cursor is written only after the queue files that hold what it covers: each queue's
 * persist notes the highest seq it covers (covered_locked: every event submitted, less
 * those folded by dedup and not said yet), and the cursor is the lower of the two.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "moat/deploy.h"
#include "moat/fsutil.h"
#include "moat/log.h"
#include "moat/monitor.h"
#include "moat/opclient.h"
#include "moat/registry.h"
#include "moat/timeutil.h"
#include "moat/tlspolicy.h"
#include "moat/topic.h"
#include "monitor_internal.h"

#define EXPORT_TOPIC "moat/events/#"
#define EXPORT_CLIENT_WHAT "export" /* "<as>:export-<host>-<port>" */
#define EXPORT_SHARE_NAME "moatd-export"
#define EXPORT_POLL_MS 200
#define EXPORT_IO_TIMEOUT_MS 5000
#define EXPORT_SIEM_BACKOFF_MIN_MS 500
#define EXPORT_SIEM_BACKOFF_MAX_MS 30000
#define EXPORT_MQTT_BACKOFF_MAX_MS 30000
#define EXPORT_BATCH 512 /* SIEM records per turn of the loop */
#define EXPORT_RESPONSE_MAX 4096
#define EXPORT_SIEM_STATUS_EVERY_MS 5000 /* state/siem.status rewritten at most this often */
#define EXPORT_SIEM_QUEUE_EVERY_MS 1000	 /* state/siem.queue likewise, while it changes */
#define EXPORT_DEDUP_MAX 1024		 /* distinct events in their dedup_window at once */
#define EXPORT_FOLLOW_TURN 4096		 /* registry events read per turn of the loop */
#define EXPORT_CURSOR_EVERY_MS 1000	 /* state/export.cursor at most this often */
#define EXPORT_LEAD_RETRY_MS 2000	 /* a standing-by moatd tries the lock this often */
#define EXPORT_READ_ERROR_EVERY_MS 60000 /* a failing registry read logged this often */

struct peer {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
};

/* One event sent less than dedup_window ago, and its identical repeats since. */
struct dedup {
	struct moat_sec_event last; /* the newest of them */
	int64_t until_ms;	    /* monotonic: the window's end */
	uint64_t repeats;	    /* folded, not sent yet */
	int64_t first_unsaid_seq;   /* the registry seq of the first of them (0: none) */
};

struct moat_export {
	pthread_t thread;
	bool started;
	bool hooked; /* subscribed to moatd's ingest (monitor.h) */
	volatile int stop;
	pthread_mutex_t mu;
	struct moat_export_settings s;
	char dir[PATH_MAX];
	char as[MOAT_ID_BUF_LEN];
	char client_suffix[MOAT_CLIENT_SUFFIX_MAX_LEN + 1];
	char deployment[MOAT_ID_BUF_LEN];
	char host[256];
	char siem_ca[PATH_MAX];
	char webhook_ca[PATH_MAX];
	char queue_path[PATH_MAX];
	char siem_status_path[PATH_MAX];
	char siem_queue_path[PATH_MAX];
	char cursor_path[PATH_MAX];
	char lock_path[PATH_MAX];
	bool follow;	   /* follows the registry (moatd with its ingest), else submit */
	int64_t start_seq; /* the registry's last seq at start: a first cursor */
	atomic_int wake;   /* the ingest's hook: an event was recorded */
	/* under mu */
	struct moat_sec_event *ring;
	size_t ring_cap, ring_head, ring_len;
	struct moat_alert_queue alerts;
	bool alerts_dirty;
	bool siem_queue_dirty;	       /* the ring changed since siem_queue_path was written */
	bool siem_queue_empty_on_disk; /* what siem_queue_path holds is no event */
	struct dedup *dedup;	       /* EXPORT_DEDUP_MAX when dedup_window is set */
	size_t dedup_len;
	struct export_counters c;
	int64_t submitted_seq;		      /* the highest registry seq submitted */
	int64_t siem_covered, alerts_covered; /* what each queue file covers (the header) */
	/* the thread's own */
	struct peer siem;
	int64_t siem_next_ms, siem_backoff_ms;
	struct moat_siem_status siem_status; /* as last written to siem_status_path */
	bool siem_status_dirty;
	int64_t siem_status_saved_ms;
	int64_t siem_queue_saved_ms;
	int64_t siem_queue_every_ms; /* EXPORT_SIEM_QUEUE_EVERY_MS; test builds may hold it */
	/* opts->security_event; whether a refusal of the SIEM's / the webhook's certificate
	 * was said since it was last accepted (one event per episode, not per retry) */
	moat_export_security_event_fn security_event;
	bool siem_refusal_said, webhook_refusal_said;
	/* following the registry */
	int lock_fd;		 /* MOAT_EXPORT_LOCK_FILE held: this moatd exports; -1: not */
	int64_t lead_next_ms;	 /* when a standing-by exporter tries the lock again */
	bool standby_said;	 /* event=export_standby logged */
	struct moat_deploy *reg; /* the thread's registry connection */
	int64_t cursor;		 /* the highest seq read from the registry */
	int64_t cursor_saved;	 /* as in cursor_path */
	int64_t cursor_saved_ms; /* when (monotonic) */
	int64_t read_error_ms;	 /* a failing read last logged (monotonic) */
};

/* Whether this exporter may touch the files of state/: only while it holds the export
 * lock (another moatd of the directory may be exporting). */
static bool owns_state(const struct moat_export *x)
{
	return x->lock_fd >= 0;
}

/* The highest seq whose events, and every one before, are in the queues or delivered
 * (x->mu held): what was submitted, less the repeats dedup folded and has not said yet. */
static int64_t covered_locked(const struct moat_export *x)
{
	int64_t c = x->submitted_seq;
	for (size_t i = 0; x->dedup && i < x->dedup_len; i++) {
		const struct dedup *d = &x->dedup[i];
		if (d->repeats && d->first_unsaid_seq > 0 && d->first_unsaid_seq - 1 < c) {
			c = d->first_unsaid_seq - 1;
		}
	}
	return c;
}

/* ---- connections ---- */

static void peer_close(struct peer *p)
{
	if (p->ssl) {
		SSL_free(p->ssl);
	}
	if (p->ctx) {
		SSL_CTX_free(p->ctx);
	}
	if (p->fd >= 0) {
		close(p->fd);
	}
	p->ssl = NULL;
	p->ctx = NULL;
	p->fd = -1;
}

static int tcp_connect(const struct moat_export_url *u, int timeout_ms, struct moat_err *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
	struct addrinfo *res = NULL;
	char port[8];
	snprintf(port, sizeof(port), "%d", u->port);
	if (u->host_is_ip) {
		hints.ai_flags = AI_NUMERICHOST;
	}
	int gai = getaddrinfo(u->host, port, &hints, &res);
	if (gai != 0) {
		return moat_err_set(err, MOAT_EIO, "%s: %s", u->host, gai_strerror(gai));
	}
	int fd = -1;
	int last = ECONNREFUSED;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			last = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			break;
		}
		if (errno == EINPROGRESS) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			if (poll(&pfd, 1, timeout_ms) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0) {
				break;
			}
			last = soerr ? soerr : ETIMEDOUT;
		} else {
			last = errno;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		return moat_err_errno(err, MOAT_EIO, last, "connect %s port %d", u->host, u->port);
	}
	/* blocking from here, every read and write bounded */
	int fl = fcntl(fd, F_GETFL);
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
		close(fd);
		return moat_err_errno(err, MOAT_EIO, errno, "socket options");
	}
	return fd;
}

/* TCP, then TLS unless the URL is tcp://: the peer verified against cafile and the URL's
 * host (a name through SNI and the certificate's DNS names, an address through its IP
 * addresses). */
static int peer_open(struct peer *p, const struct moat_export_url *u, const char *cafile,
		     struct moat_err *err)
{
	p->fd = -1;
	int fd = tcp_connect(u, EXPORT_IO_TIMEOUT_MS, err);
	if (fd < 0) {
		return fd;
	}
	p->fd = fd;
	if (u->scheme == MOAT_EXPORT_TCP) {
		return 0;
	}
	int rc = MOAT_ECRYPTO;
	p->ctx = SSL_CTX_new(TLS_client_method());
	if (!p->ctx || !SSL_CTX_set_min_proto_version(p->ctx, MOAT_TLS_MIN_VERSION_OPENSSL) ||
	    !SSL_CTX_set_cipher_list(p->ctx, MOAT_TLS12_CIPHERS)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "TLS context");
		goto fail;
	}
	if (SSL_CTX_load_verify_locations(p->ctx, cafile, NULL) != 1) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "%s: cannot load the CA", cafile);
		goto fail;
	}
	SSL_CTX_set_verify(p->ctx, SSL_VERIFY_PEER, NULL);
	p->ssl = SSL_new(p->ctx);
	if (!p->ssl || SSL_set_fd(p->ssl, fd) != 1) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "TLS session");
		goto fail;
	}
	X509_VERIFY_PARAM *vp = SSL_get0_param(p->ssl);
	if (u->host_is_ip) {
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, u->host) != 1) {
			rc = moat_err_ssl(err, MOAT_ECRYPTO, "verify address");
			goto fail;
		}
	} else if (SSL_set1_host(p->ssl, u->host) != 1 ||
		   SSL_set_tlsext_host_name(p->ssl, u->host) != 1) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "verify name");
		goto fail;
	}
	if (SSL_connect(p->ssl) != 1) {
		long vr = SSL_get_verify_result(p->ssl);
		if (vr != X509_V_OK) {
			rc = moat_err_set(err, MOAT_EVERIFY, "%s port %d: certificate refused: %s",
					  u->host, u->port, X509_verify_cert_error_string(vr));
			ERR_clear_error();
		} else {
			rc = moat_err_ssl(err, MOAT_ECRYPTO, "%s port %d: TLS handshake", u->host,
					  u->port);
		}
		goto fail;
	}
	return 0;
fail:
	peer_close(p);
	return rc;
}

static int peer_write(struct peer *p, const void *buf, size_t len)
{
	if (p->ssl) {
		size_t done = 0;
		return SSL_write_ex(p->ssl, buf, len, &done) == 1 && done == len ? 0 : -1;
	}
	return moat_fs_write_fd(p->fd, buf, len);
}

static ssize_t peer_read(struct peer *p, void *buf, size_t len)
{
	if (p->ssl) {
		size_t got = 0;
		return SSL_read_ex(p->ssl, buf, len, &got) == 1 ? (ssize_t)got : -1;
	}
	return read(p->fd, buf, len);
}

/* After a connection to a sink: a certificate (or name) the sink presented and moatd refused
 * is a security event (someone may stand between moatd and its collector), said once until
 * the sink is accepted again. */
static void peer_verdict(struct moat_export *x, const char *sink, const struct moat_export_url *u,
			 int rc, const struct moat_err *err, bool *said)
{
	if (rc == 0) {
		*said = false;
		return;
	}
	if (err->code != MOAT_EVERIFY || *said) {
		return;
	}
	*said = true;
	char ev[MOAT_EVENT_EVIDENCE_MAX_LEN + 1];
	snprintf(ev, sizeof(ev), "sink=%s port=%d error=\"%.300s\"", sink, u->port, err->msg);
	if (x->security_event) {
		x->security_event(MOAT_EVENT_KIND_PEER_REFUSED, MOAT_SEV_HIGH, NULL, u->host, ev);
	}
}

/* ---- the SIEM ---- */

static void siem_flush(struct moat_export *x)
{
	if (!x->s.siem || moat_time_mono_ms() < x->siem_next_ms) {
		return;
	}
	for (int n = 0; n < EXPORT_BATCH && !x->stop; n++) {
		struct moat_sec_event ev;
		pthread_mutex_lock(&x->mu);
		bool have = x->ring_len > 0;
		if (have) {
			ev = x->ring[x->ring_head];
		}
		pthread_mutex_unlock(&x->mu);
		if (!have) {
			return;
		}
		struct moat_err err = {0};
		if (x->siem.fd < 0) {
			int orc = peer_open(&x->siem, &x->s.siem_url, x->siem_ca, &err);
			peer_verdict(x, "siem", &x->s.siem_url, orc, &err, &x->siem_refusal_said);
			if (orc != 0) {
				goto failed;
			}
			moat_log(MOAT_LOG_INFO, "event=siem_connected host=%s port=%d tls=%s",
				 x->s.siem_url.host, x->s.siem_url.port,
				 x->siem.ssl ? "yes" : "no");
		}
		char frame[MOAT_SIEM_FRAME_MAX + 16];
		size_t len = moat_siem_frame(x->s.siem_format, &ev, x->host, frame, sizeof(frame));
		if (len > 0 && peer_write(&x->siem, frame, len) != 0) {
			moat_err_set(&err, MOAT_EIO, "write to the collector failed");
			goto failed;
		}
		pthread_mutex_lock(&x->mu);
		x->ring_head = (x->ring_head + 1) % x->ring_cap;
		x->ring_len--;
		x->c.siem_sent++;
		x->siem_queue_dirty = true;
		pthread_mutex_unlock(&x->mu);
		x->siem_backoff_ms = 0;
		x->siem_status.last_ok = moat_time_now();
		x->siem_status_dirty = true;
		continue;
failed:
		peer_close(&x->siem);
		x->siem_backoff_ms = x->siem_backoff_ms ? x->siem_backoff_ms * 2
							: EXPORT_SIEM_BACKOFF_MIN_MS;
		if (x->siem_backoff_ms > EXPORT_SIEM_BACKOFF_MAX_MS) {
			x->siem_backoff_ms = EXPORT_SIEM_BACKOFF_MAX_MS;
		}
		x->siem_next_ms = moat_time_mono_ms() + x->siem_backoff_ms;
		pthread_mutex_lock(&x->mu);
		x->c.siem_failures++;
		pthread_mutex_unlock(&x->mu);
		moat_log(MOAT_LOG_WARN, "event=siem_unreachable error=\"%s\" retry_ms=%lld",
			 err.msg, (long long)x->siem_backoff_ms);
		x->siem_status.last_error = moat_time_now();
		snprintf(x->siem_status.error, sizeof(x->siem_status.error), "%s", err.msg);
		x->siem_status_dirty = true;
		return;
	}
}

/* ---- webhooks ---- */

/* One POST; 0 for a 2xx answer. */
static int webhook_post(struct moat_export *x, const char *body, size_t len, int *status,
			struct moat_err *err)
{
	struct peer p = {.fd = -1};
	int rc = peer_open(&p, &x->s.webhook_url, x->webhook_ca, err);
	peer_verdict(x, "webhook", &x->s.webhook_url, rc, err, &x->webhook_refusal_said);
	if (rc != 0) {
		return rc;
	}
	char head[MOAT_EXPORT_URL_MAX_LEN + MOAT_EXPORT_HOST_MAX_LEN + 256];
	const char *lb = x->s.webhook_url.host_is_ip && strchr(x->s.webhook_url.host, ':') ? "["
											   : "";
	const char *rb = lb[0] ? "]" : "";
	int n = snprintf(head, sizeof(head),
			 "POST %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUser-Agent: moatd/" MOAT_VERSION
			 "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n",
			 x->s.webhook_url.path, lb, x->s.webhook_url.host, rb,
			 x->s.webhook_url.port, len);
	if (n < 0 || (size_t)n >= sizeof(head) || peer_write(&p, head, (size_t)n) != 0 ||
	    peer_write(&p, body, len) != 0) {
		peer_close(&p);
		return moat_err_set(err, MOAT_EIO, "webhook: request not sent");
	}
	char resp[EXPORT_RESPONSE_MAX];
	size_t got = 0;
	while (got < sizeof(resp) && !memchr(resp, '\n', got)) {
		ssize_t r = peer_read(&p, resp + got, sizeof(resp) - got);
		if (r <= 0) {
			break;
		}
		got += (size_t)r;
	}
	peer_close(&p);
	if (moat_http_status_line_parse(resp, got, status) != 0) {
		return moat_err_set(err, MOAT_EIO, "webhook: no HTTP status line in the answer");
	}
	if (*status < 200 || *status > 299) {
		return moat_err_set(err, MOAT_EIO, "webhook: HTTP status %d", *status);
	}
	return 0;
}

static void alerts_persist(struct moat_export *x)
{
	char *text = NULL;
	size_t len = 0;
	struct moat_err err = {0};
	if (!owns_state(x)) {
		return;
	}
	pthread_mutex_lock(&x->mu);
	bool dirty = x->alerts_dirty;
	int64_t covered = covered_locked(x);
	int rc = dirty ? moat_alert_queue_encode(&x->alerts, &text, &len, &err) : 0;
	x->alerts_dirty = false;
	if (!dirty) {
		x->alerts_covered = covered;
	}
	pthread_mutex_unlock(&x->mu);
	if (!dirty) {
		return;
	}
	if (rc != 0 || moat_fs_write_atomic(x->queue_path, text, len, 0600, &err) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=alert_queue_not_saved error=\"%s\"", err.msg);
		pthread_mutex_lock(&x->mu);
		x->alerts_dirty = true; /* try again on the next turn */
		pthread_mutex_unlock(&x->mu);
	} else {
		pthread_mutex_lock(&x->mu);
		x->alerts_covered = covered;
		pthread_mutex_unlock(&x->mu);
	}
	free(text);
}

static void webhook_deliver(struct moat_export *x)
{
	if (!x->s.webhook) {
		return;
	}
	int64_t now = (int64_t)moat_time_now() * 1000;
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) == 0) {
		now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	}
	/* the due alerts, oldest first: one POST each, or one summary when many are due */
	pthread_mutex_lock(&x->mu);
	size_t due = 0;
	for (size_t i = 0; i < x->alerts.len; i++) {
		due += x->alerts.items[i].next_ms <= now;
	}
	if (due == 0) {
		pthread_mutex_unlock(&x->mu);
		return;
	}
	struct moat_alert *batch = calloc(due, sizeof(*batch));
	size_t n = 0;
	for (size_t i = 0; batch && i < x->alerts.len; i++) {
		if (x->alerts.items[i].next_ms <= now) {
			batch[n++] = x->alerts.items[i];
		}
	}
	uint64_t dropped = x->alerts.dropped;
	pthread_mutex_unlock(&x->mu);
	if (!batch) {
		return;
	}
	bool summary = (int64_t)n > x->s.webhook_summary_threshold;
	size_t send_n = summary ? n : 1;
	char *body = NULL;
	size_t len = 0;
	int status = 0;
	struct moat_err err = {0};
	int rc = moat_alert_body(batch, send_n, dropped, x->deployment, &body, &len, &err);
	if (rc == 0) {
		rc = webhook_post(x, body, len, &status, &err);
	}
	free(body);
	pthread_mutex_lock(&x->mu);
	/* match by key: the queue may have changed while the POST ran */
	for (size_t k = 0; k < send_n; k++) {
		for (size_t i = 0; i < x->alerts.len; i++) {
			struct moat_alert *a = &x->alerts.items[i];
			if (strcmp(a->kind, batch[k].kind) != 0 ||
			    strcmp(a->identity, batch[k].identity) != 0 ||
			    strcmp(a->reason, batch[k].reason) != 0) {
				continue;
			}
			if (rc == 0) {
				if (a->count > batch[k].count) {
					/* fired again during the POST: the rest goes next */
					a->count -= batch[k].count;
					a->first_ms = batch[k].last_ms;
					a->attempts = 0;
				} else {
					moat_alert_queue_remove(&x->alerts, i);
				}
			} else {
				a->attempts++;
				int64_t delay = x->s.webhook_retry_min_ms;
				for (uint32_t t = 1;
				     t < a->attempts && delay < x->s.webhook_retry_max_ms; t++) {
					delay *= 2;
				}
				if (delay > x->s.webhook_retry_max_ms) {
					delay = x->s.webhook_retry_max_ms;
				}
				a->next_ms = now + delay;
			}
			break;
		}
	}
	if (rc == 0) {
		x->alerts.dropped -= dropped <= x->alerts.dropped ? dropped : x->alerts.dropped;
		x->c.webhook_sent += send_n;
		x->c.webhook_summaries += summary;
	} else {
		x->c.webhook_failures++;
	}
	x->alerts_dirty = true;
	pthread_mutex_unlock(&x->mu);
	if (rc == 0) {
		moat_log(MOAT_LOG_INFO, "event=webhook_sent alerts=%zu summary=%s status=%d",
			 send_n, summary ? "yes" : "no", status);
	} else {
		moat_log(MOAT_LOG_WARN, "event=webhook_failed alerts=%zu error=\"%s\"", send_n,
			 err.msg);
	}
	free(batch);
	alerts_persist(x);
}

/* ---- events in ---- */

static int64_t wall_ms(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
		return (int64_t)moat_time_now() * 1000;
	}
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Queues ev for the sinks (x->mu held). */
static void emit_locked(struct moat_export *x, const struct moat_sec_event *ev, int64_t now)
{
	if (x->s.siem) {
		if (x->ring_len == x->ring_cap) {
			x->ring_head = (x->ring_head + 1) % x->ring_cap; /* drop the oldest */
			x->ring_len--;
			x->c.siem_dropped++;
		}
		x->ring[(x->ring_head + x->ring_len) % x->ring_cap] = *ev;
		x->ring_len++;
		x->siem_queue_dirty = true;
	}
	if (x->s.webhook && moat_sec_event_alerts(ev->kind)) {
		uint64_t before = x->alerts.dropped;
		/* a new alert joins the batch already gathering, if any, so a burst goes out
		 * together (as one summary when it is large) */
		int64_t due = now + x->s.webhook_gather_ms;
		for (size_t i = 0; i < x->alerts.len; i++) {
			const struct moat_alert *a = &x->alerts.items[i];
			if (a->attempts == 0 && a->next_ms > now && a->next_ms < due) {
				due = a->next_ms;
			}
		}
		struct moat_sec_event a = *ev;
		if (ev->repeats) {
			a.count = ev->repeats; /* the alert counts the repeats it had not said */
		}
		(void)moat_alert_queue_add(&x->alerts, &a, due);
		x->c.webhook_dropped += x->alerts.dropped - before;
		x->alerts_dirty = true;
	}
}

static bool identical(const struct moat_sec_event *a, const struct moat_sec_event *b)
{
	return strcmp(a->kind, b->kind) == 0 && strcmp(a->identity, b->identity) == 0 &&
	       strcmp(a->client_id, b->client_id) == 0 && strcmp(a->address, b->address) == 0 &&
	       strcmp(a->reason, b->reason) == 0 && strcmp(a->detail, b->detail) == 0;
}

/* The last repeat of d, with its count, as one record (x->mu held); a new window opens. */
static void dedup_say_locked(struct moat_export *x, struct dedup *d, int64_t mono, int64_t now)
{
	d->last.repeats = d->repeats;
	emit_locked(x, &d->last, now);
	d->last.repeats = 0;
	d->repeats = 0;
	d->first_unsaid_seq = 0;
	d->until_ms = mono + x->s.dedup_window_ms;
}

/* Whether ev (registry seq, 0 when it has none) is a repeat within its window (then
 * folded, x->mu held); else it is tracked for the window it opens, when there is room. */
static bool dedup_fold_locked(struct moat_export *x, const struct moat_sec_event *ev, int64_t seq,
			      int64_t mono, int64_t now)
{
	if (!x->dedup) {
		return false;
	}
	for (size_t i = 0; i < x->dedup_len; i++) {
		struct dedup *d = &x->dedup[i];
		if (!identical(&d->last, ev)) {
			continue;
		}
		if (mono < d->until_ms) {
			d->last = *ev;
			if (d->repeats++ == 0) {
				d->first_unsaid_seq = seq;
			}
			x->c.deduplicated++;
			return true;
		}
		if (d->repeats) {
			dedup_say_locked(x, d, mono, now);
		}
		d->last = *ev;
		d->until_ms = mono + x->s.dedup_window_ms;
		return false;
	}
	if (x->dedup_len < EXPORT_DEDUP_MAX) { /* else sent, untracked */
		struct dedup *d = &x->dedup[x->dedup_len++];
		memset(d, 0, sizeof(*d));
		d->last = *ev;
		d->until_ms = mono + x->s.dedup_window_ms;
	}
	return false;
}

/* Windows that ended: their repeats said, untouched ones forgotten. */
static void dedup_expire(struct moat_export *x)
{
	if (!x->dedup) {
		return;
	}
	int64_t mono = moat_time_mono_ms(), now = wall_ms();
	pthread_mutex_lock(&x->mu);
	for (size_t i = 0; i < x->dedup_len;) {
		struct dedup *d = &x->dedup[i];
		if (mono < d->until_ms) {
			i++;
		} else if (d->repeats) {
			dedup_say_locked(x, d, mono, now);
			i++;
		} else {
			*d = x->dedup[--x->dedup_len];
		}
	}
	pthread_mutex_unlock(&x->mu);
}

/* Counts ev and queues it for the sinks; seq: its registry seq (0: none). */
static void submit(struct moat_export *x, const struct moat_sec_event *ev, int64_t seq)
{
	int64_t now = wall_ms(), mono = moat_time_mono_ms();
	pthread_mutex_lock(&x->mu);
	if (seq > x->submitted_seq) {
		x->submitted_seq = seq;
	}
	size_t k = 0;
	while (k < x->c.kinds && strcmp(x->c.kind[k], ev->kind) != 0) {
		k++;
	}
	if (k == x->c.kinds && k < EXPORT_KINDS_MAX) {
		snprintf(x->c.kind[k], sizeof(x->c.kind[k]), "%s", ev->kind);
		x->c.kinds++;
	}
	if (k < x->c.kinds) {
		x->c.events[k]++;
	}
	x->c.last_event_ms = ev->time_ms;
	if ((x->s.siem || x->s.webhook) && !dedup_fold_locked(x, ev, seq, mono, now)) {
		emit_locked(x, ev, now);
	}
	pthread_mutex_unlock(&x->mu);
}

void moat_export_submit(struct moat_export *x, const struct moat_sec_event *ev)
{
	if (x) {
		submit(x, ev, 0);
	}
}

void export_counters_get(struct moat_export *x, struct export_counters *out)
{
	pthread_mutex_lock(&x->mu);
	*out = x->c;
	out->siem_queue = x->ring_len;
	out->alert_queue = x->alerts.len;
	pthread_mutex_unlock(&x->mu);
}

/* ---- events from moatd's ingest (monitor.h's hook) ---- */

/* The text of evidence between start and end (both literal), into dst; false when absent. */
static bool between(const char *evidence, const char *start, const char *end, char *dst,
		    size_t size)
{
	const char *a = strstr(evidence, start);
	if (!a) {
		return false;
	}
	a += strlen(start);
	const char *b = end[0] ? strstr(a, end) : a + strlen(a);
	if (!b) {
		return false;
	}
	snprintf(dst, size, "%.*s", (int)(b - a), a);
	return true;
}

/* src cut to size - 1 bytes */
static void copy_cut(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* The one adapter from the ingest's record (secevent.h) to the export's: a plugin event's
 * evidence (reason="..." client_id="..." detail="..." suppressed=N) back into its fields;
 * anything else (moatd's own events, anomalies: rule) keeps its evidence as the detail. */
void export_from_security_event(const struct moat_security_event *in, struct moat_sec_event *out)
{
	memset(out, 0, sizeof(*out));
	out->time_ms = in->time_ms;
	copy_cut(out->kind, sizeof(out->kind), in->kind);
	copy_cut(out->identity, sizeof(out->identity), in->identity);
	copy_cut(out->address, sizeof(out->address), in->address);
	out->count = 1;
	char supp[24] = "";
	if (strcmp(in->source, "broker") == 0 &&
	    between(in->evidence, "reason=\"", "\" client_id=\"", out->reason,
		    sizeof(out->reason)) &&
	    between(in->evidence, "client_id=\"", "\" detail=\"", out->client_id,
		    sizeof(out->client_id)) &&
	    between(in->evidence, "detail=\"", "\" suppressed=", out->detail,
		    sizeof(out->detail)) &&
	    between(in->evidence, "\" suppressed=", "", supp, sizeof(supp))) {
		out->suppressed = strtoull(supp, NULL, 10);
		return;
	}
	copy_cut(out->reason, sizeof(out->reason), in->rule);
	copy_cut(out->detail, sizeof(out->detail), in->evidence);
}

/* The ingest's hook: an event was recorded and committed; the thread reads it from the
 * registry (so the hook never waits, and a crash loses nothing the registry has). */
static void on_security_event(const struct moat_security_event *ev, void *ctx)
{
	struct moat_export *x = ctx;
	if (x->follow) {
		atomic_store(&x->wake, 1);
		return;
	}
	/* no sink: only /metrics' counters */
	struct moat_sec_event e;
	export_from_security_event(ev, &e);
	if (moat_sec_event_kind_ok(e.kind)) {
		submit(x, &e, 0);
	}
}

/* ---- the thread ---- */

static void nap(struct moat_export *x, int64_t ms)
{
	int64_t end = moat_time_mono_ms() + ms;
	while (!x->stop && !atomic_exchange(&x->wake, 0) && moat_time_mono_ms() < end) {
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

/* Records the SIEM's delivery in state/siem.status for `moat audit`: when it changed, at
 * most every EXPORT_SIEM_STATUS_EVERY_MS (force: now, as the exporter stops). */
static void siem_status_persist(struct moat_export *x, bool force)
{
	if (!x->s.siem || !owns_state(x)) {
		return;
	}
	pthread_mutex_lock(&x->mu);
	uint64_t pending = x->ring_len;
	int64_t oldest = x->ring_len ? x->ring[x->ring_head].time_ms / 1000 : 0;
	pthread_mutex_unlock(&x->mu);
	if (pending != x->siem_status.pending || oldest != x->siem_status.oldest_pending) {
		x->siem_status.pending = pending;
		x->siem_status.oldest_pending = oldest;
		x->siem_status_dirty = true;
	}
	int64_t now = moat_time_mono_ms();
	if (!x->siem_status_dirty ||
	    (!force && x->siem_status_saved_ms &&
	     now - x->siem_status_saved_ms < EXPORT_SIEM_STATUS_EVERY_MS)) {
		return;
	}
	char text[MOAT_SIEM_STATUS_MAX_BYTES];
	struct moat_err err = {0};
	int len = moat_siem_status_encode(&x->siem_status, text, sizeof(text));
	x->siem_status_saved_ms = now;
	if (len < 0 ||
	    moat_fs_write_atomic(x->siem_status_path, text, (size_t)len, 0640, &err) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=siem_status_not_saved error=\"%s\"",
			 len < 0 ? "too long" : err.msg);
		return;
	}
	x->siem_status_dirty = false;
}

/* Writes the SIEM's queue to state/siem.queue when it changed: at most every
 * EXPORT_SIEM_QUEUE_EVERY_MS (force: now, as the exporter stops), never while it is empty
 * both in memory and on disk (a collector that keeps up costs no write). */
static void siem_queue_persist(struct moat_export *x, bool force)
{
	if (!x->s.siem || !owns_state(x)) {
		return;
	}
	int64_t now = moat_time_mono_ms();
	char *text = NULL;
	size_t len = 0, left_out = 0, n = 0;
	struct moat_err err = {0};
	pthread_mutex_lock(&x->mu);
	int64_t covered = covered_locked(x);
	if (!x->siem_queue_dirty || (x->ring_len == 0 && x->siem_queue_empty_on_disk)) {
		/* the file already holds what the ring holds */
		x->siem_queue_dirty = false;
		x->siem_covered = covered;
		pthread_mutex_unlock(&x->mu);
		return;
	}
	if (!force && now - x->siem_queue_saved_ms < x->siem_queue_every_ms) {
		pthread_mutex_unlock(&x->mu);
		return;
	}
	n = x->ring_len;
	int rc = moat_siem_queue_encode(x->ring, x->ring_cap, x->ring_head, x->ring_len, &text,
					&len, &left_out, &err);
	x->siem_queue_dirty = false;
	pthread_mutex_unlock(&x->mu);
	x->siem_queue_saved_ms = now;
	if (rc != 0 || moat_fs_write_atomic(x->siem_queue_path, text, len, 0600, &err) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=siem_queue_not_saved error=\"%s\"", err.msg);
		pthread_mutex_lock(&x->mu);
		x->siem_queue_dirty = true; /* try again on a later turn */
		pthread_mutex_unlock(&x->mu);
	} else {
		if (!left_out) { /* else the oldest are in memory only: the cursor stays */
			pthread_mutex_lock(&x->mu);
			x->siem_covered = covered;
			pthread_mutex_unlock(&x->mu);
		}
		x->siem_queue_empty_on_disk = n == 0;
		if (left_out) {
			moat_log(MOAT_LOG_WARN, "event=siem_queue_cut left_out=%zu", left_out);
		}
	}
	free(text);
}

static void deliver(struct moat_export *x)
{
	dedup_expire(x);
	siem_flush(x);
	siem_queue_persist(x, false);
	webhook_deliver(x);
	alerts_persist(x);
	siem_status_persist(x, false);
}

static void take_message(struct moat_export *x, const char *topic, const void *payload, size_t len)
{
	struct moat_sec_event ev;
	struct moat_err err = {0};
	if (moat_sec_event_parse(payload, len, &ev, &err) != 0) {
		moat_log(MOAT_LOG_WARN, "event=security_event_refused topic=%s error=\"%s\"", topic,
			 err.msg);
		return;
	}
	moat_export_submit(x, &ev);
}

/* ---- following the registry ---- */

static void load_queue(struct moat_export *x);
static void load_siem_queue(struct moat_export *x);

/* Writes the cursor when the queue files cover more than it says: at most every
 * EXPORT_CURSOR_EVERY_MS (force: now, as the exporter stops). */
static void cursor_persist(struct moat_export *x, bool force)
{
	if (!x->follow || !owns_state(x)) {
		return;
	}
	pthread_mutex_lock(&x->mu);
	int64_t safe = x->submitted_seq;
	if (x->s.siem && x->siem_covered < safe) {
		safe = x->siem_covered;
	}
	if (x->s.webhook && x->alerts_covered < safe) {
		safe = x->alerts_covered;
	}
	pthread_mutex_unlock(&x->mu);
	int64_t now = moat_time_mono_ms();
	if (safe <= x->cursor_saved ||
	    (!force && now - x->cursor_saved_ms < EXPORT_CURSOR_EVERY_MS)) {
		return;
	}
	char text[MOAT_EXPORT_CURSOR_MAX_BYTES];
	struct moat_err err = {0};
	int len = moat_export_cursor_encode(safe, text, sizeof(text));
	x->cursor_saved_ms = now;
	if (len < 0 || moat_fs_write_atomic(x->cursor_path, text, (size_t)len, 0600, &err) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=export_cursor_not_saved error=\"%s\"",
			 len < 0 ? "out of range" : err.msg);
		return;
	}
	x->cursor_saved = safe;
}

/* Where the last exporter stopped: the cursor file's seq, else (a first start with these
 * sinks, or a file that does not read, moved aside) the registry's last seq when moatd
 * started; never beyond the registry's newest event (a registry restored from an older
 * copy numbers its new events from there; after retention emptied the table the reset to
 * 0 passes over nothing either). */
static int64_t cursor_load(struct moat_export *x)
{
	char *text = NULL;
	size_t len = 0;
	int64_t seq = x->start_seq, last = 0;
	struct moat_err err = {0};
	if (!moat_fs_exists(x->cursor_path)) {
		moat_log(MOAT_LOG_INFO, "event=export_cursor_new seq=%" PRId64, seq);
	} else if (moat_fs_read_all(x->cursor_path, MOAT_EXPORT_CURSOR_MAX_BYTES, &text, &len,
				    &err) != 0 ||
		   moat_export_cursor_decode(text, len, &seq, &err) != 0) {
		char aside[PATH_MAX + 32];
		snprintf(aside, sizeof(aside), "%s.bad.%lld", x->cursor_path,
			 (long long)moat_time_now());
		int r = rename(x->cursor_path, aside);
		moat_log(MOAT_LOG_ERROR,
			 "event=export_cursor_refused error=\"%s\" moved_to=%s seq=%" PRId64,
			 err.msg, r == 0 ? aside : NULL, x->start_seq);
		seq = x->start_seq;
	}
	free(text);
	err = (struct moat_err){0};
	if (moat_registry_security_event_last_seq(moat_deploy_registry(x->reg), &last, &err) == 0 &&
	    seq > last) {
		moat_log(MOAT_LOG_WARN,
			 "event=export_cursor_reset from=%" PRId64 " to=%" PRId64
			 " reason=\"beyond the registry's newest event\"",
			 seq, last);
		seq = last;
	}
	return seq;
}

/* The thread's registry connection, (re)opened when needed; a failure logged once a
 * minute. */
static bool registry_ready(struct moat_export *x)
{
	if (x->reg) {
		return true;
	}
	struct moat_err err = {0};
	if (moat_deploy_open(x->dir, MOAT_DEPLOY_READ, &x->reg, &err) == 0) {
		return true;
	}
	x->reg = NULL;
	int64_t now = moat_time_mono_ms();
	if (!x->read_error_ms || now - x->read_error_ms >= EXPORT_READ_ERROR_EVERY_MS) {
		moat_log(MOAT_LOG_ERROR, "event=export_registry_unavailable error=\"%s\"", err.msg);
		x->read_error_ms = now;
	}
	return false;
}

/* Takes the export lock (when a sink is configured), or says once that another moatd of
 * this directory holds it; on taking it, loads what the last exporter left: its queues
 * and, following the registry, its cursor. */
static bool take_lead(struct moat_export *x)
{
	if (x->lock_fd >= 0) {
		return true;
	}
	int64_t now = moat_time_mono_ms();
	if (!(x->s.siem || x->s.webhook) || now < x->lead_next_ms) {
		return false;
	}
	x->lead_next_ms = now + EXPORT_LEAD_RETRY_MS;
	if (x->follow && !registry_ready(x)) {
		return false;
	}
	int fd = open(x->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		if (fd >= 0) {
			close(fd);
		}
		if (!x->standby_said) {
			moat_log(MOAT_LOG_INFO, "event=export_standby reason=\"%s\"",
				 e == EWOULDBLOCK ? "another moatd of this deployment exports"
						  : strerror(e));
			x->standby_said = true;
		}
		return false;
	}
	x->lock_fd = fd;
	if (x->s.siem) {
		load_siem_queue(x);
	}
	if (x->s.webhook) {
		load_queue(x);
	}
	if (!x->follow) {
		moat_log(MOAT_LOG_INFO, "event=export_leading took_over=%s",
			 x->standby_said ? "yes" : "no");
		return true;
	}
	x->cursor = cursor_load(x);
	pthread_mutex_lock(&x->mu);
	x->submitted_seq = x->siem_covered = x->alerts_covered = x->cursor;
	pthread_mutex_unlock(&x->mu);
	x->cursor_saved = -1; /* written now, so a crash from here starts from it */
	x->cursor_saved_ms = 0;
	cursor_persist(x, true);
	moat_log(MOAT_LOG_INFO, "event=export_leading seq=%" PRId64 " took_over=%s", x->cursor,
		 x->standby_said ? "yes" : "no");
	return true;
}

static int on_recorded(const struct moat_security_event *ev, void *ctx)
{
	struct moat_export *x = ctx;
	struct moat_sec_event e;
	export_from_security_event(ev, &e);
	if (moat_sec_event_kind_ok(e.kind)) {
		submit(x, &e, ev->seq);
	} else {
		pthread_mutex_lock(&x->mu); /* covered all the same: nothing to send */
		x->submitted_seq = ev->seq;
		pthread_mutex_unlock(&x->mu);
	}
	x->cursor = ev->seq;
	return 0;
}

/* Reads what the registry recorded after the cursor, up to EXPORT_FOLLOW_TURN events and,
 * while the collector takes what it is sent, no more than the SIEM's ring has room for
 * (the registry holds the rest: a burst is not cut to the ring's size while the collector
 * is there; while it is away the ring keeps the newest, the oldest dropped and counted, so
 * the webhook's alerts still go). True when there may be more. */
static bool follow_registry(struct moat_export *x)
{
	if (!x->follow || !take_lead(x) || !registry_ready(x)) {
		return false;
	}
	int64_t limit = EXPORT_FOLLOW_TURN;
	if (x->s.siem && x->siem_backoff_ms == 0) {
		pthread_mutex_lock(&x->mu);
		int64_t room = (int64_t)(x->ring_cap - x->ring_len);
		pthread_mutex_unlock(&x->mu);
		if (room == 0) {
			return true; /* the turn's delivery makes room */
		}
		limit = room < limit ? room : limit;
	}
	int64_t before = x->cursor;
	struct moat_event_filter f = {.after_seq = x->cursor, .limit = limit, .oldest = true};
	struct moat_err err = {0};
	if (moat_registry_security_event_foreach(moat_deploy_registry(x->reg), &f, on_recorded, x,
						 &err) != 0) {
		int64_t now = moat_time_mono_ms();
		if (!x->read_error_ms || now - x->read_error_ms >= EXPORT_READ_ERROR_EVERY_MS) {
			moat_log(MOAT_LOG_ERROR,
				 "event=export_read_failed after_seq=%" PRId64 " error=\"%s\"",
				 x->cursor, err.msg);
			x->read_error_ms = now;
		}
		moat_deploy_close(x->reg); /* opened again on a later turn */
		x->reg = NULL;
		return false;
	}
	return x->cursor - before >= limit;
}

static void *run(void *arg)
{
	struct moat_export *x = arg;
	struct moat_deploy *d = NULL;
	struct moat_opclient *c = NULL;
	int64_t backoff = 1000, next_connect = 0;
	bool more = false; /* the registry holds more than one turn read */
	x->siem_queue_saved_ms = moat_time_mono_ms(); /* the first write a period from now */
	while (!x->stop) {
		struct moat_err err = {0};
		if (x->as[0] && !c && moat_time_mono_ms() >= next_connect && take_lead(x)) {
			const char *filters[] = {EXPORT_TOPIC};
			if (!d && moat_deploy_open(x->dir, MOAT_DEPLOY_READ, &d, &err) != 0) {
				d = NULL;
			} else if (moat_opclient_connect(d, x->as, x->client_suffix, NULL,
							 EXPORT_IO_TIMEOUT_MS, &c, NULL,
							 &err) == 0) {
				if (moat_opclient_role(c) == MOAT_ROLE_SERVICE) {
					filters[0] = MOAT_SHARE_PREFIX EXPORT_SHARE_NAME
						"/" EXPORT_TOPIC;
				}
				if (moat_opclient_subscribe(c, filters, 1, EXPORT_IO_TIMEOUT_MS,
							    &err) != 0) {
					moat_opclient_close(c);
					c = NULL;
				}
			}
			if (!c) {
				moat_log(
					MOAT_LOG_WARN,
					"event=export_disconnected as=%s error=\"%s\" retry_ms=%lld",
					x->as, err.msg, (long long)backoff);
				next_connect = moat_time_mono_ms() + backoff;
				backoff = backoff * 2 > EXPORT_MQTT_BACKOFF_MAX_MS
						  ? EXPORT_MQTT_BACKOFF_MAX_MS
						  : backoff * 2;
			} else {
				backoff = 1000;
				moat_log(MOAT_LOG_INFO, "event=export_subscribed as=%s topic=%s",
					 x->as, EXPORT_TOPIC);
			}
		}
		if (c) {
			/* drain what arrived, then deliver */
			for (int i = 0; i < EXPORT_BATCH; i++) {
				const char *topic = NULL;
				const void *payload = NULL;
				size_t len = 0;
				int rc = moat_opclient_next(c, i == 0 ? EXPORT_POLL_MS : 0,
							    &x->stop, &topic, &payload, &len, &err);
				if (rc == 0) {
					take_message(x, topic, payload, len);
					continue;
				}
				if (rc != MOAT_ETIMEOUT && rc != MOAT_EINTR) {
					moat_log(MOAT_LOG_WARN,
						 "event=export_disconnected as=%s error=\"%s\"",
						 x->as, err.msg);
					moat_opclient_close(c);
					c = NULL;
					next_connect = moat_time_mono_ms() + backoff;
				}
				break;
			}
		} else {
			if (!more) {
				nap(x, EXPORT_POLL_MS); /* the ingest's hook cuts it short */
			}
			more = follow_registry(x);
		}
		deliver(x);
		cursor_persist(x, false);
	}
	moat_opclient_close(c);
	moat_deploy_close(d);
	/* the repeats still folded are said before the queues are kept */
	pthread_mutex_lock(&x->mu);
	for (size_t i = 0; i < x->dedup_len; i++) {
		if (x->dedup[i].repeats) {
			dedup_say_locked(x, &x->dedup[i], moat_time_mono_ms(), wall_ms());
		}
	}
	pthread_mutex_unlock(&x->mu);
	alerts_persist(x);
	siem_queue_persist(x, true);
	siem_status_persist(x, true);
	cursor_persist(x, true);
	return NULL;
}

static void load_queue(struct moat_export *x)
{
	char *text = NULL;
	size_t len = 0;
	struct moat_err err = {0};
	if (!moat_fs_exists(x->queue_path)) {
		return;
	}
	int rc =
		moat_fs_read_all(x->queue_path, MOAT_ALERT_QUEUE_FILE_MAX_BYTES, &text, &len, &err);
	pthread_mutex_lock(&x->mu); /* /metrics may be reading the counters */
	if (rc == 0) {
		rc = moat_alert_queue_decode(text, len, &x->alerts, &err);
	}
	size_t loaded = x->alerts.len;
	pthread_mutex_unlock(&x->mu);
	if (rc == 0) {
		free(text);
		moat_log(MOAT_LOG_INFO, "event=alert_queue_loaded alerts=%zu", loaded);
		return;
	}
	free(text);
	/* never reuse nor silently lose a file that does not read: keep it aside */
	char aside[PATH_MAX + 32];
	snprintf(aside, sizeof(aside), "%s.bad.%lld", x->queue_path, (long long)moat_time_now());
	int r = rename(x->queue_path, aside);
	moat_log(MOAT_LOG_ERROR, "event=alert_queue_refused error=\"%s\" moved_to=%s", err.msg,
		 r == 0 ? aside : NULL);
}

/* The SIEM's queue as the last moatd left it (x->ring is empty and allocated). */
static void load_siem_queue(struct moat_export *x)
{
	char *text = NULL;
	size_t len = 0, n = 0;
	uint64_t left_out = 0;
	struct moat_err err = {0};
	if (!moat_fs_exists(x->siem_queue_path)) {
		x->siem_queue_empty_on_disk = true;
		return;
	}
	int rc = moat_fs_read_all(x->siem_queue_path, MOAT_SIEM_QUEUE_FILE_MAX_BYTES, &text, &len,
				  &err);
	pthread_mutex_lock(&x->mu); /* /metrics may be reading the counters */
	if (rc == 0 && (rc = moat_siem_queue_decode(text, len, x->ring, x->ring_cap, &n, &left_out,
						    &err)) == 0) {
		x->ring_head = 0;
		x->ring_len = n;
		x->c.siem_dropped += left_out;
		x->siem_queue_empty_on_disk = n == 0 && left_out == 0;
		x->siem_queue_dirty = left_out > 0; /* rewrite it without what siem_queue_max cut */
	}
	pthread_mutex_unlock(&x->mu);
	if (rc == 0) {
		free(text);
		moat_log(MOAT_LOG_INFO, "event=siem_queue_loaded events=%zu dropped=%llu", n,
			 (unsigned long long)left_out);
		return;
	}
	free(text);
	/* never reuse nor silently lose a file that does not read: keep it aside */
	char aside[PATH_MAX + 32];
	snprintf(aside, sizeof(aside), "%s.bad.%lld", x->siem_queue_path,
		 (long long)moat_time_now());
	int r = rename(x->siem_queue_path, aside);
	x->siem_queue_empty_on_disk = r == 0;
	moat_log(MOAT_LOG_ERROR, "event=siem_queue_refused error=\"%s\" moved_to=%s", err.msg,
		 r == 0 ? aside : NULL);
}

/* No sink any more: the cursor of an earlier configuration is removed, so a sink
 * configured later starts from then; only under the export lock (a moatd of this
 * directory that still has a sink may be exporting from it). */
static void forget_cursor(struct moat_export *x)
{
	int fd = open(x->lock_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		return; /* no lock file: no exporter ever ran here */
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 && unlink(x->cursor_path) != 0 && errno != ENOENT) {
		moat_log(MOAT_LOG_WARN, "event=export_cursor_not_removed error=\"%s\"",
			 strerror(errno));
	}
	close(fd);
}

int moat_export_start(const struct moat_export_opts *opts, struct moat_export **out,
		      struct moat_err *err)
{
	int rc;
	struct moat_deploy *d = NULL;
	*out = NULL;
	struct moat_export *x = calloc(1, sizeof(*x));
	if (!x) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&x->mu, NULL);
	x->siem.fd = -1;
	x->lock_fd = -1;
	x->siem_queue_every_ms = EXPORT_SIEM_QUEUE_EVERY_MS;
#if defined(MOAT_FAILPOINTS)
	/* test builds: the SIEM's queue file rewritten this rarely, so a test can kill moatd
	 * with events queued that the file does not hold */
	const char *every = getenv("MOAT_EXPORT_SIEM_QUEUE_EVERY");
	struct moat_err every_err = {0};
	if (every && moat_duration_ms_parse(every, &x->siem_queue_every_ms, &every_err) == 0) {
		moat_log(MOAT_LOG_WARN, "event=failpoint name=MOAT_EXPORT_SIEM_QUEUE_EVERY ms=%lld",
			 (long long)x->siem_queue_every_ms);
	}
#endif
	x->security_event = opts->security_event;
	if ((rc = moat_deploy_open(opts->dir, MOAT_DEPLOY_READ, &d, err)) != 0 ||
	    (rc = moat_export_settings_load(moat_deploy_config(d), &x->s, err)) != 0) {
		goto out;
	}
	snprintf(x->deployment, sizeof(x->deployment), "%s", moat_deploy_settings(d)->name);
	if ((rc = moat_path_join(x->dir, sizeof(x->dir), err, "%s", moat_deploy_dir(d))) != 0 ||
	    (rc = moat_path_join(x->queue_path, sizeof(x->queue_path), err, "%s/%s", x->dir,
				 MOAT_ALERT_QUEUE_FILE)) != 0 ||
	    (rc = moat_path_join(x->siem_status_path, sizeof(x->siem_status_path), err, "%s/%s",
				 x->dir, MOAT_SIEM_STATUS_FILE)) != 0 ||
	    (rc = moat_path_join(x->siem_queue_path, sizeof(x->siem_queue_path), err, "%s/%s",
				 x->dir, MOAT_SIEM_QUEUE_FILE)) != 0 ||
	    (rc = moat_path_join(x->cursor_path, sizeof(x->cursor_path), err, "%s/%s", x->dir,
				 MOAT_EXPORT_CURSOR_FILE)) != 0 ||
	    (rc = moat_path_join(x->lock_path, sizeof(x->lock_path), err, "%s/%s", x->dir,
				 MOAT_EXPORT_LOCK_FILE)) != 0 ||
	    (rc = moat_path_join(x->siem_ca, sizeof(x->siem_ca), err, "%s",
				 x->s.siem_ca[0] ? x->s.siem_ca : "")) != 0 ||
	    (rc = moat_path_join(x->webhook_ca, sizeof(x->webhook_ca), err, "%s",
				 x->s.webhook_ca[0] ? x->s.webhook_ca : "")) != 0) {
		goto out;
	}
	if (!x->siem_ca[0] && (rc = moat_path_join(x->siem_ca, sizeof(x->siem_ca), err,
						   "%s/pki/ca.crt", x->dir)) != 0) {
		goto out;
	}
	if (!x->webhook_ca[0] && (rc = moat_path_join(x->webhook_ca, sizeof(x->webhook_ca), err,
						      "%s/pki/ca.crt", x->dir)) != 0) {
		goto out;
	}
	/* with no sink there is nothing to subscribe for (and no second MQTT session) */
	if (opts->subscribe && (x->s.siem || x->s.webhook)) {
		const char *as = opts->as;
		if (!as) {
			as = moat_config_get(moat_deploy_config(d), "server", "service_identity");
		}
		if (!as) {
			as = "backend-service"; /* server.h's default; monitor may not use server */
		}
		if ((rc = moat_identity_name_check(as, err)) != 0) {
			moat_err_prefix(err, "service identity");
			goto out;
		}
		snprintf(x->as, sizeof(x->as), "%s", as);
		moat_opclient_instance_suffix(EXPORT_CLIENT_WHAT,
					      opts->port > 0 ? opts->port
							     : moat_deploy_settings(d)->server_port,
					      x->client_suffix, sizeof(x->client_suffix));
	}
	if (gethostname(x->host, sizeof(x->host) - 1) != 0) {
		x->host[0] = '\0';
	}
	x->ring_cap = x->s.siem ? (size_t)x->s.siem_queue_max : 1;
	x->ring = calloc(x->ring_cap, sizeof(*x->ring));
	if (!x->ring) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	moat_alert_queue_init(&x->alerts, (size_t)x->s.webhook_queue_max);
	if (x->s.dedup_window_ms > 0 && (x->s.siem || x->s.webhook)) {
		x->dedup = calloc(EXPORT_DEDUP_MAX, sizeof(*x->dedup));
		if (!x->dedup) {
			rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
			goto out;
		}
	}
	/* with the ingest and a sink, the thread follows the registry from a cursor (and
	 * loads the queues once it holds the export lock); with no sink a cursor left by an
	 * earlier configuration is forgotten, so a sink configured later starts from then */
	x->follow = !opts->subscribe && (x->s.siem || x->s.webhook);
	if (!opts->subscribe && !x->follow) {
		forget_cursor(x);
	}
	if (x->s.siem || x->s.webhook) {
		char state[PATH_MAX];
		if ((rc = moat_path_join(state, sizeof(state), err, "%s/state", x->dir)) != 0 ||
		    (rc = moat_fs_mkdirs(state, 0700, err)) != 0) {
			goto out;
		}
	}
	if (x->follow && (rc = moat_registry_security_event_last_seq(moat_deploy_registry(d),
								     &x->start_seq, err)) != 0) {
		goto out;
	}
	if (pthread_create(&x->thread, NULL, run, x) != 0) {
		rc = moat_err_set(err, MOAT_EIO, "cannot start the export thread");
		goto out;
	}
	x->started = true;
	if (!x->as[0] && (rc = moat_monitor_subscribe(on_security_event, x, err)) != 0) {
		goto out;
	}
	x->hooked = !x->as[0];
	if (x->s.siem || x->s.webhook) {
		moat_log(MOAT_LOG_INFO, "event=export_started siem=%s siem_format=%s webhook=%s",
			 x->s.siem ? x->s.siem_url.host : "none",
			 moat_siem_format_name(x->s.siem_format),
			 x->s.webhook ? x->s.webhook_url.host : "none");
	}
	*out = x;
	x = NULL;
	rc = 0;
out:
	moat_deploy_close(d);
	if (x) {
		moat_export_stop(x);
	}
	return rc;
}

void moat_export_stop(struct moat_export *x)
{
	if (!x) {
		return;
	}
	if (x->hooked) {
		moat_monitor_unsubscribe(on_security_event, x);
	}
	if (x->started) {
		x->stop = 1;
		pthread_join(x->thread, NULL);
	}
	peer_close(&x->siem);
	if (x->lock_fd >= 0) {
		close(x->lock_fd); /* a standing-by moatd takes over */
	}
	moat_deploy_close(x->reg);
	free(x->dedup);
	free(x->ring);
	moat_alert_queue_free(&x->alerts);
	pthread_mutex_destroy(&x->mu);
	free(x);
}
