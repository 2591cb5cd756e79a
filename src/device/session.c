/* session.c: one device's MQTT session on libmosquitto, and the single-threaded poll()
 * loop that drives any number of them (moat-agent runs one, moat sim thousands).
 *
 * libmosquitto is used with external polling: mosquitto_socket, mosquitto_want_write,
 * mosquitto_loop_read/write/misc; nothing here blocks except name resolution in
 * mosquitto_connect_async. TLS is always moat_mqtt_tls_setup (mqtt_tls.h): the deployment
 * CA, SSL_VERIFY_PEER and moat's TLS policy, so libmosquitto verifies the chain and the
 * broker's host name (SAN) on every handshake; mosquitto_tls_insecure_set is never
 * called. Every connection attempt gets a fresh struct mosquitto, so libmosquitto holds no
 * messages of its own across connections: the device's queue is the only copy, which is
 * what makes redelivery after a broker restart ordered and complete.
 *
 * Reconnection: exponential backoff from reconnect_min to reconnect_max with jitter (the
 * delay is uniform in [d/2, d]) so a fleet does not reconnect in lockstep; forever.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <mosquitto.h>

#include "moat/agent_update.h"
#include "moat/log.h"
#include "moat/mqtt_tls.h"
#include "moat/session.h"
#include "moat/timeutil.h"

#include "device_internal.h"
#include "enroll_internal.h"

#define CONNECT_TIMEOUT_MS 30000
#define CLOSE_TIMEOUT_MS 3000
/* A clean close waits this long for the broker to acknowledge the offline status (and so
 * everything published before it) before it sends DISCONNECT: libmosquitto closes the
 * socket as soon as DISCONNECT is written, and the broker may then drop what it had not
 * read yet. */
#define CLOSE_ACK_WAIT_MS 2000
#define TICK_MS 200
/* New connection attempts per pass of the loop: creating a TLS context and starting a
 * handshake costs milliseconds, and handshakes already under way must keep moving, or a
 * large fleet starting at once would time all of them out. */
#define ATTEMPTS_PER_PASS 8

enum moat_session_state {
	MOAT_SESSION_IDLE = 0,	 /* waiting for the next attempt (backoff) */
	MOAT_SESSION_CONNECTING, /* TCP/TLS/MQTT handshake under way */
	MOAT_SESSION_UP,	 /* CONNACK accepted */
	MOAT_SESSION_CLOSING,	 /* offline published, DISCONNECT queued */
	MOAT_SESSION_DONE,	 /* closed for good (shutdown) */
};

struct moat_session {
	struct moat_device dev;
	struct mosquitto *mosq;
	enum moat_session_state state;
	int64_t next_attempt_ms; /* monotonic */
	int64_t attempt_started_ms;
	int64_t connected_at_ms;
	unsigned failures; /* consecutive, for the backoff */
	uint64_t rng;
	char last_error[256];	    /* the last TLS/connection error, for the log */
	char failure[256];	    /* why the last attempt failed, kept for the caller */
	bool ever_up;		    /* connected at least once */
	bool fail_pending;	    /* a callback saw the connection fail */
	bool restart_after_close;   /* CLOSING because of a reboot command */
	bool switching;		    /* CLOSING to reconnect with a renewed identity */
	struct moat_enroll *enroll; /* owned; NULL when the identity is not enrolled here */
	int offline_mid;	   /* CLOSING: the offline status, acknowledged before DISCONNECT */
	int64_t ack_wait_until_ms; /* CLOSING: DISCONNECT goes out by then even without it */
	bool disconnect_sent;	   /* CLOSING: DISCONNECT queued */
	struct moat_agent_update *update; /* owned, freed with the session */
	int64_t close_deadline_ms;
};

void moat_session_lib_init(void)
{
	mosquitto_lib_init();
}

void moat_session_lib_cleanup(void)
{
	mosquitto_lib_cleanup();
}

static int io_publish(void *ctx, const char *topic, const void *payload, size_t len, int qos,
		      bool retain, int *out_mid)
{
	struct moat_session *s = ctx;
	int mid = 0;
	if (!s->mosq || (s->state != MOAT_SESSION_UP && s->state != MOAT_SESSION_CLOSING)) {
		return MOAT_EIO;
	}
	if (mosquitto_publish(s->mosq, &mid, topic, (int)len, payload, qos, retain) !=
	    MOSQ_ERR_SUCCESS) {
		return MOAT_EIO;
	}
	*out_mid = mid;
	return 0;
}

static int io_subscribe(void *ctx, const char *filter, int qos)
{
	struct moat_session *s = ctx;
	if (!s->mosq || mosquitto_subscribe(s->mosq, NULL, filter, qos) != MOSQ_ERR_SUCCESS) {
		return MOAT_EIO;
	}
	return 0;
}

static void io_local_addr(void *ctx, char *buf, size_t size)
{
	struct moat_session *s = ctx;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	buf[0] = '\0';
	int fd = s->mosq ? mosquitto_socket(s->mosq) : -1;
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		return;
	}
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, (socklen_t)size);
	} else if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, (socklen_t)size);
	}
}

int moat_session_new(const struct moat_agent_conf *conf, int64_t now_mono_ms,
		     struct moat_session **out, struct moat_err *err)
{
	struct moat_session *s = NULL;
	int rc;
	int64_t not_after = 0;
	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	struct moat_device_io io = {
		.publish = io_publish,
		.subscribe = io_subscribe,
		.local_addr = io_local_addr,
		.ctx = s,
	};
	if (conf->enroll) {
		/* the identity is enrolled and renewed here; none may exist yet */
		if ((rc = moat_enroll_open(conf, &s->enroll, err)) != 0) {
			goto out;
		}
		not_after = moat_enroll_not_after(s->enroll);
	} else if ((rc = moat_agent_check_cert(conf->cert_file, moat_time_now(), &not_after,
					       err)) != 0) {
		/* refuse a certificate the broker would refuse, with a reason a field
		 * technician can act on */
		goto out;
	}
	if ((rc = moat_device_init(&s->dev, conf, &io, now_mono_ms, err)) != 0) {
		goto out;
	}
	s->dev.cert_not_after = not_after;
	s->state = MOAT_SESSION_IDLE;
	s->next_attempt_ms = now_mono_ms;
	s->rng = (uint64_t)now_mono_ms * 6364136223846793005ULL + (uintptr_t)s;
	*out = s;
	s = NULL;
out:
	if (s) {
		moat_enroll_free(s->enroll);
	}
	free(s);
	return rc;
}

void moat_session_free(struct moat_session *s)
{
	if (!s) {
		return;
	}
	moat_agent_update_free(s->update);
	s->update = NULL;
	if (s->mosq) {
		mosquitto_destroy(s->mosq);
		s->mosq = NULL;
	}
	moat_device_free(&s->dev);
	moat_enroll_free(s->enroll);
	free(s);
}

void moat_session_set_enroll_pool(struct moat_session *s, struct moat_enroll_pool *pool)
{
	if (s->enroll) {
		moat_enroll_set_pool(s->enroll, pool);
	}
}

int moat_session_enroll_prepare(struct moat_session *s, struct moat_err *err)
{
	return s->enroll ? moat_enroll_prepare(s->enroll, err) : 0;
}

bool moat_session_enrolled(const struct moat_session *s)
{
	return !s->enroll || moat_enroll_ready(s->enroll);
}

void moat_session_set_update(struct moat_session *s, struct moat_agent_update *u)
{
	s->update = u;
	moat_agent_update_attach(u, &s->dev);
}

struct moat_agent_update *moat_session_update(struct moat_session *s)
{
	return s->update;
}

struct moat_device *moat_session_device(struct moat_session *s)
{
	return &s->dev;
}

void moat_session_schedule(struct moat_session *s, int64_t first_attempt_ms,
			   int64_t first_telemetry_ms)
{
	s->next_attempt_ms = first_attempt_ms;
	s->dev.next_telemetry_ms = first_telemetry_ms;
}

const struct moat_device_stats *moat_session_device_stats(const struct moat_session *s)
{
	return &s->dev.stats;
}

unsigned moat_session_failures(const struct moat_session *s)
{
	return s->failures;
}

bool moat_session_ever_up(const struct moat_session *s)
{
	return s->ever_up;
}

const char *moat_session_failure(const struct moat_session *s)
{
	return s->failure;
}

static uint64_t rnd(struct moat_session *s)
{
	uint64_t x = s->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	s->rng = x ? x : 88172645463325252ULL;
	return x * 0x2545F4914F6CDD1DULL;
}

static void slog(struct moat_session *s, enum moat_log_level level, const char *fmt, ...)
	MOAT_PRINTF(3, 4);
static void slog(struct moat_session *s, enum moat_log_level level, const char *fmt, ...)
{
	va_list ap;
	/* the simulator logs only the first failure of a device, not every retry */
	if (s->dev.quiet && level < MOAT_LOG_ERROR) {
		return;
	}
	va_start(ap, fmt);
	moat_vlog(level, s->dev.conf.id, fmt, ap);
	va_end(ap);
}

/* Sets the reason of the current failure (cut to fit: it is for the log). */
static void set_error(struct moat_session *s, const char *fmt, ...) MOAT_PRINTF(2, 3);
static void set_error(struct moat_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->last_error, sizeof(s->last_error), fmt, ap);
	va_end(ap);
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
	struct moat_session *s = obj;
	struct moat_err err;
	(void)mosq;
	if (rc != 0) {
		/* MQTT 5: rc is a CONNACK reason code */
		set_error(s, "broker refused the connection: %s", mosquitto_reason_string(rc));
		s->fail_pending = true;
		return;
	}
	s->state = MOAT_SESSION_UP;
	s->ever_up = true;
	s->connected_at_ms = moat_time_mono_ms();
	if (s->enroll) {
		moat_enroll_on_connected(s->enroll);
		s->dev.cert_not_after = moat_enroll_not_after(s->enroll);
	}
	s->last_error[0] = '\0';
	if (s->failures > 0) {
		slog(s, MOAT_LOG_INFO, "event=reconnected attempts=%u", s->failures + 1);
	} else {
		slog(s, MOAT_LOG_INFO, "event=connected");
	}
	s->failures = 0;
	if (moat_device_on_connect(&s->dev, s->connected_at_ms, &err) != 0) {
		set_error(s, "%s", err.msg);
		s->fail_pending = true;
	}
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
	struct moat_session *s = obj;
	(void)mosq;
	if (s->state == MOAT_SESSION_CLOSING) {
		s->fail_pending = true; /* the close is complete */
		return;
	}
	if (!s->last_error[0]) {
		set_error(s, "connection lost: %s", mosquitto_strerror(rc));
	}
	s->fail_pending = true;
}

/* MQTT 5, so that a PUBACK says whether the broker took the message: the moat plugin
 * refuses (0x87) what exceeds an identity's rate, and with MQTT 3.1.1 that refusal looks
 * exactly like a delivery, so queued telemetry would be lost. */
static void on_publish_v5(struct mosquitto *mosq, void *obj, int mid, int reason_code,
			  const mosquitto_property *props)
{
	struct moat_session *s = obj;
	(void)mosq;
	(void)props;
	if (s->state == MOAT_SESSION_CLOSING && mid == s->offline_mid) {
		s->offline_mid = 0; /* acknowledged: the loop sends DISCONNECT */
		return;
	}
	if (reason_code >= 0x80) {
		moat_device_on_publish_refused(&s->dev, mid, reason_code);
	} else {
		moat_device_on_publish(&s->dev, mid);
	}
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m)
{
	struct moat_session *s = obj;
	(void)mosq;
	if (!m->topic || m->payloadlen < 0) {
		return;
	}
	moat_device_on_message(&s->dev, m->topic, m->payload ? m->payload : "",
			       (size_t)m->payloadlen);
}

/* libmosquitto reports TLS failures (chain, host name, alerts) only through its log. */
static void on_log(struct mosquitto *mosq, void *obj, int level, const char *str)
{
	struct moat_session *s = obj;
	(void)mosq;
	if (level != MOSQ_LOG_ERR || !str) {
		return;
	}
	size_t n = strlen(s->last_error);
	if (n == 0) {
		set_error(s, "%s", str);
	} else if (n + 3 < sizeof(s->last_error) && !strstr(s->last_error, str)) {
		snprintf(s->last_error + n, sizeof(s->last_error) - n, "; %s", str);
	}
}

static void drop_mosq(struct moat_session *s)
{
	if (s->mosq) {
		mosquitto_destroy(s->mosq);
		s->mosq = NULL;
	}
}

static void schedule_retry(struct moat_session *s, int64_t now)
{
	int64_t min = s->dev.conf.reconnect_min_ms, max = s->dev.conf.reconnect_max_ms;
	int64_t d = min;
	for (unsigned i = 1; i < s->failures && d < max; i++) {
		d *= 2;
	}
	if (d > max) {
		d = max;
	}
	int64_t delay = d / 2 + (int64_t)(rnd(s) % (uint64_t)(d / 2 + 1));
	s->next_attempt_ms = now + delay;
}

static void session_fail(struct moat_session *s, int64_t now, const char *why)
{
	bool was_up = s->state == MOAT_SESSION_UP;
	drop_mosq(s);
	s->fail_pending = false;
	if (was_up) {
		moat_device_on_disconnect(&s->dev, false);
	}
	s->state = MOAT_SESSION_IDLE;
	s->failures++;
	if (!was_up && s->enroll) {
		moat_enroll_on_failed(s->enroll);
	}
	schedule_retry(s, now);
	const char *reason = s->last_error[0] ? s->last_error : why;
	snprintf(s->failure, sizeof(s->failure), "%s", reason);
	/* one line per event; a long outage logs each attempt, spaced by the backoff */
	slog(s, MOAT_LOG_WARN, "event=%s host=%s port=%d attempt=%u retry_in_ms=%lld error=\"%s\"",
	     was_up ? "connection_lost" : "connect_failed", s->dev.conf.host, s->dev.conf.port,
	     s->failures, (long long)(s->next_attempt_ms - now), reason);
	s->last_error[0] = '\0';
}

static void attempt(struct moat_session *s, int64_t now)
{
	char topic[128], will[MOAT_MSG_STATUS_MAX_BYTES];
	size_t wlen = 0;
	struct moat_err err;
	const struct moat_agent_conf *c = &s->dev.conf;
	int rc;
	s->last_error[0] = '\0';
	s->fail_pending = false;
	s->attempt_started_ms = now;
	s->mosq = mosquitto_new(c->id, true, s);
	if (!s->mosq) {
		session_fail(s, now, "out of memory");
		return;
	}
	mosquitto_int_option(s->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_connect_callback_set(s->mosq, on_connect);
	mosquitto_disconnect_callback_set(s->mosq, on_disconnect);
	mosquitto_publish_v5_callback_set(s->mosq, on_publish_v5);
	mosquitto_message_callback_set(s->mosq, on_message);
	mosquitto_log_callback_set(s->mosq, on_log);
	const char *cert = c->cert_file, *key = c->key_file;
	if (s->enroll && moat_enroll_attempt(s->enroll, &cert, &key) != 0) {
		set_error(s, "no enrolled identity");
		session_fail(s, now, "no identity");
		return;
	}
	if (moat_mqtt_tls_setup(s->mosq, c->ca_file, cert, key, &err) != 0) {
		set_error(s, "%s", err.msg);
		session_fail(s, now, "TLS setup");
		return;
	}
	if (moat_device_will(&s->dev, topic, sizeof(topic), will, sizeof(will), &wlen, &err) != 0 ||
	    mosquitto_will_set(s->mosq, topic, (int)wlen, will, 1, true) != MOSQ_ERR_SUCCESS) {
		set_error(s, "last will: %s", err.msg);
		session_fail(s, now, "last will");
		return;
	}
	rc = mosquitto_connect_async(s->mosq, c->host, c->port, (int)c->keepalive_s);
	if (rc != MOSQ_ERR_SUCCESS) {
		if (!s->last_error[0]) {
			set_error(s, "%s",
				  rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
		}
		session_fail(s, now, "connect");
		return;
	}
	s->state = MOAT_SESSION_CONNECTING;
}

static void send_disconnect_when_acked(struct moat_session *s, int64_t now);

/* Publishes offline and, once the broker acknowledged it, queues DISCONNECT; the loop
 * waits for it to be written. */
static void begin_close(struct moat_session *s, int64_t now, bool restart)
{
	struct moat_err err;
	s->restart_after_close = restart;
	if (s->state != MOAT_SESSION_UP) {
		drop_mosq(s);
		s->state = restart ? MOAT_SESSION_IDLE : MOAT_SESSION_DONE;
		s->next_attempt_ms = now;
		return;
	}
	s->offline_mid = 0;
	s->disconnect_sent = false;
	if (moat_device_publish_offline(&s->dev, &s->offline_mid, &err) != 0) {
		slog(s, MOAT_LOG_WARN, "event=offline_failed error=\"%s\"", err.msg);
		s->offline_mid = 0;
	}
	s->state = MOAT_SESSION_CLOSING;
	s->ack_wait_until_ms = now + CLOSE_ACK_WAIT_MS;
	s->close_deadline_ms = now + CLOSE_TIMEOUT_MS;
	send_disconnect_when_acked(s, now);
}

/* CLOSING: DISCONNECT once the offline status is acknowledged (or after
 * CLOSE_ACK_WAIT_MS). */
static void send_disconnect_when_acked(struct moat_session *s, int64_t now)
{
	if (s->disconnect_sent || (s->offline_mid != 0 && now < s->ack_wait_until_ms)) {
		return;
	}
	s->disconnect_sent = true;
	if (mosquitto_disconnect(s->mosq) != MOSQ_ERR_SUCCESS) {
		s->fail_pending = true;
	}
}

/* A renewed identity landed: DISCONNECT (no offline status: the device is not going
 * away) and connect again at once with it. What was in flight stays queued and is sent
 * again on the new connection. */
static void begin_switch(struct moat_session *s, int64_t now)
{
	s->switching = true;
	s->restart_after_close = false;
	s->offline_mid = 0;
	s->disconnect_sent = false;
	s->state = MOAT_SESSION_CLOSING;
	s->ack_wait_until_ms = now;
	s->close_deadline_ms = now + CLOSE_TIMEOUT_MS;
	send_disconnect_when_acked(s, now);
}

static void finish_close(struct moat_session *s, int64_t now)
{
	drop_mosq(s);
	s->fail_pending = false;
	moat_device_on_disconnect(&s->dev, true);
	moat_device_persist(&s->dev);
	if (s->switching) {
		s->switching = false;
		s->state = MOAT_SESSION_IDLE;
		s->failures = 0;
		s->next_attempt_ms = now;
		slog(s, MOAT_LOG_INFO, "event=reconnecting reason=renewed_identity");
	} else if (s->restart_after_close) {
		/* a simulated reboot: a fresh device uptime, the (virtual) boot stage, and a
		 * new connection at once */
		s->dev.reboot_requested = false;
		s->dev.start_mono_ms = now;
		s->failures = 0;
		if (s->dev.update_reboot && !s->dev.update_reboot(&s->dev, s->dev.update_ctx)) {
			s->state = MOAT_SESSION_DONE;
			slog(s, MOAT_LOG_ERROR, "event=halted reason=\"no bootable slot\"");
			return;
		}
		s->state = MOAT_SESSION_IDLE;
		s->next_attempt_ms = now;
		slog(s, MOAT_LOG_INFO, "event=rebooted");
	} else {
		s->state = MOAT_SESSION_DONE;
		slog(s, MOAT_LOG_INFO, "event=offline");
	}
}

static void collect(struct moat_session **ss, size_t count, size_t up_peak,
		    struct moat_loop_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->sessions = count;
	st->up_peak = up_peak;
	for (size_t i = 0; i < count; i++) {
		if (ss[i]->state == MOAT_SESSION_UP) {
			st->up++;
		}
		st->telemetry_sent += ss[i]->dev.stats.telemetry_sent;
		if (ss[i]->dev.stats.telemetry_sent > 0) {
			st->published++;
		}
		st->errors += ss[i]->dev.stats.errors + ss[i]->failures;
	}
}

/* A failure seen by a callback or the socket: a closing session is done closing, any
 * other has lost its connection. */
static void settle_failure(struct moat_session *s, int64_t now)
{
	if (!s->fail_pending) {
		return;
	}
	if (s->state == MOAT_SESSION_CLOSING) {
		finish_close(s, now);
	} else {
		session_fail(s, now, "connection lost");
	}
}

/* One pass of the loop over the sessions, before poll(). */
struct pass {
	struct pollfd *pfd;
	size_t *owner;	/* pfd[k] is the socket of session owner[k] */
	size_t n;	/* entries in pfd */
	size_t started; /* connection attempts started in this pass */
	size_t up;	/* sessions up now, kept by count_up after every step */
	size_t up_peak; /* the most up at once since the loop started */
	int64_t wait;	/* how long poll() may sleep */
	bool stopping;	/* the loop is closing every session */
};

/* Keeps p->up and p->up_peak exact: called after every step of the loop that may change a
 * session's state (begin_close, prepare_session, service_session: the callbacks that set
 * UP run inside libmosquitto calls made by the last two). */
static void count_up(struct pass *p, bool was_up, const struct moat_session *s)
{
	bool is_up = s->state == MOAT_SESSION_UP;
	if (is_up && !was_up) {
		p->up++;
		if (p->up > p->up_peak) {
			p->up_peak = p->up;
		}
	} else if (was_up && !is_up) {
		p->up--;
	}
}

/* Session i before poll(): starts a due connection attempt, ticks the device, acts on a
 * reboot request, times out a handshake, moves a close along, runs libmosquitto's timers
 * and adds the socket to the poll set. */
static void prepare_session(struct moat_session *s, size_t i, int64_t now, struct pass *p,
			    volatile int *stop, bool *out_reboot)
{
	if (s->enroll && !p->stopping) {
		moat_enroll_tick(s->enroll, now, moat_time_wall_ms());
		if (moat_enroll_take_switch(s->enroll)) {
			if (s->state == MOAT_SESSION_UP) {
				begin_switch(s, now);
			} else if (s->state == MOAT_SESSION_IDLE) {
				s->next_attempt_ms = now;
			}
		}
	}
	if (s->state == MOAT_SESSION_IDLE && !p->stopping && now >= s->next_attempt_ms &&
	    p->started < ATTEMPTS_PER_PASS && moat_session_enrolled(s)) {
		p->started++;
		attempt(s, now);
	}
	if (!p->stopping) {
		moat_device_tick(&s->dev, now);
		int64_t d = moat_device_next_ms(&s->dev, now);
		if (d < p->wait) {
			p->wait = d;
		}
	}
	if (s->state == MOAT_SESSION_UP && s->dev.reboot_requested) {
		if (out_reboot) {
			*out_reboot = true;
			p->stopping = true;
			*stop = 1;
		}
		begin_close(s, now, out_reboot == NULL);
	}
	if (s->state == MOAT_SESSION_IDLE && !p->stopping) {
		int64_t d = p->started >= ATTEMPTS_PER_PASS ? 0 : s->next_attempt_ms - now;
		if (d < p->wait) {
			p->wait = d < 0 ? 0 : d;
		}
	}
	if (s->state == MOAT_SESSION_CONNECTING &&
	    now - s->attempt_started_ms > CONNECT_TIMEOUT_MS) {
		session_fail(s, now, "connect timed out");
	}
	if (s->state == MOAT_SESSION_CLOSING && s->mosq) {
		send_disconnect_when_acked(s, now);
	}
	if (s->state == MOAT_SESSION_CLOSING && now > s->close_deadline_ms) {
		finish_close(s, now);
	}
	if (s->mosq) {
		if (mosquitto_loop_misc(s->mosq) != MOSQ_ERR_SUCCESS && !s->fail_pending &&
		    s->state != MOAT_SESSION_CLOSING) {
			s->fail_pending = true;
		}
	}
	settle_failure(s, now);
	short eev = 0;
	int efd = s->enroll && !p->stopping ? moat_enroll_fd(s->enroll, &eev) : -1;
	if (efd >= 0) {
		struct pollfd *e = &p->pfd[p->n];
		e->fd = efd;
		e->events = eev;
		e->revents = 0;
		p->owner[p->n] = SIZE_MAX; /* stepped on the next pass by moat_enroll_tick */
		p->n++;
	}
	int fd = s->mosq ? mosquitto_socket(s->mosq) : -1;
	if (fd >= 0) {
		struct pollfd *e = &p->pfd[p->n];
		e->fd = fd;
		e->events = POLLIN;
		if (mosquitto_want_write(s->mosq)) {
			e->events |= POLLOUT;
		}
		e->revents = 0;
		p->owner[p->n] = i;
		p->n++;
	}
}

/* A session's socket is ready (ev): reads and writes what libmosquitto has. */
static void service_session(struct moat_session *s, short ev, int64_t now)
{
	int lrc = MOSQ_ERR_SUCCESS;
	if (s->state == MOAT_SESSION_CONNECTING) {
		/* During the TLS handshake libmosquitto continues it from
		 * loop_read only (loop_write skips it), whichever way the socket
		 * is ready; it reports a refused or reset connection as "try
		 * again", so errors on the socket are taken from SO_ERROR. */
		lrc = mosquitto_loop_read(s->mosq, 1);
		if (lrc == MOSQ_ERR_SUCCESS && s->mosq && mosquitto_want_write(s->mosq)) {
			lrc = mosquitto_loop_write(s->mosq, 1);
		}
		if (lrc == MOSQ_ERR_SUCCESS && (ev & (POLLERR | POLLHUP)) &&
		    s->state == MOAT_SESSION_CONNECTING && !s->fail_pending) {
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			int sfd = s->mosq ? mosquitto_socket(s->mosq) : -1;
			if (sfd >= 0) {
				getsockopt(sfd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
			}
			if (!s->last_error[0]) {
				set_error(
					s, "%s",
					soerr ? strerror(soerr)
					      : "connection refused or closed during the handshake");
			}
			s->fail_pending = true;
		}
	} else {
		if (ev & (POLLIN | POLLHUP | POLLERR)) {
			lrc = mosquitto_loop_read(s->mosq, 1);
		}
		if (lrc == MOSQ_ERR_SUCCESS && s->mosq && (ev & POLLOUT)) {
			lrc = mosquitto_loop_write(s->mosq, 1);
		}
	}
	if (lrc != MOSQ_ERR_SUCCESS && !s->fail_pending) {
		if (!s->last_error[0]) {
			set_error(s, "%s",
				  lrc == MOSQ_ERR_ERRNO ? strerror(errno)
							: mosquitto_strerror(lrc));
		}
		s->fail_pending = true;
	}
	settle_failure(s, now);
}

/* After the loop: every session not yet closed is dropped and its queue persisted. */
static void drop_all(struct moat_session **ss, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (ss[i]->state != MOAT_SESSION_DONE) {
			drop_mosq(ss[i]);
			moat_device_on_disconnect(&ss[i]->dev, false);
			moat_device_persist(&ss[i]->dev);
			ss[i]->state = MOAT_SESSION_DONE;
		}
	}
}

int moat_loop_run(struct moat_session **ss, size_t count, volatile int *stop,
		  moat_loop_tick_cb on_tick, void *ctx, bool *out_reboot, struct moat_err *err)
{
	struct pass p = {
		/* a session's MQTT socket and its EST call's */
		.pfd = calloc(count ? 2 * count : 1, sizeof(*p.pfd)),
		.owner = calloc(count ? 2 * count : 1, sizeof(*p.owner)),
	};
	int64_t last_tick = 0;
	int rc = 0;
	if (out_reboot) {
		*out_reboot = false;
	}
	if (!p.pfd || !p.owner) {
		free(p.pfd);
		free(p.owner);
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	for (;;) {
		int64_t now = moat_time_mono_ms();
		if (*stop && !p.stopping) {
			p.stopping = true;
			for (size_t i = 0; i < count; i++) {
				bool was_up = ss[i]->state == MOAT_SESSION_UP;
				begin_close(ss[i], now, false);
				count_up(&p, was_up, ss[i]);
			}
		}
		bool active = false;
		p.started = 0;
		p.wait = TICK_MS;
		p.n = 0;
		for (size_t i = 0; i < count; i++) {
			if (ss[i]->state == MOAT_SESSION_DONE) {
				continue;
			}
			active = true;
			bool was_up = ss[i]->state == MOAT_SESSION_UP;
			prepare_session(ss[i], i, now, &p, stop, out_reboot);
			count_up(&p, was_up, ss[i]);
		}
		if (!active) {
			break;
		}
		if (on_tick && now - last_tick >= TICK_MS) {
			struct moat_loop_stats st;
			last_tick = now;
			collect(ss, count, p.up_peak, &st);
			if (!on_tick(&st, ctx)) {
				*stop = 1;
			}
		}
		if (p.wait > TICK_MS) {
			p.wait = TICK_MS;
		}
		int pr = poll(p.pfd, p.n, (int)p.wait);
		if (pr < 0) {
			if (errno == EINTR) {
				continue;
			}
			rc = moat_err_errno(err, MOAT_EIO, errno, "poll");
			break;
		}
		now = moat_time_mono_ms();
		for (size_t k = 0; k < p.n && pr > 0; k++) {
			if (p.owner[k] == SIZE_MAX) {
				continue;
			}
			struct moat_session *s = ss[p.owner[k]];
			if (p.pfd[k].revents && s->mosq) {
				bool was_up = s->state == MOAT_SESSION_UP;
				service_session(s, p.pfd[k].revents, now);
				count_up(&p, was_up, s);
			}
		}
	}
	drop_all(ss, count);
	if (on_tick) {
		/* the final figures: the peak may have been reached after the last tick */
		struct moat_loop_stats st;
		collect(ss, count, p.up_peak, &st);
		(void)on_tick(&st, ctx);
	}
	free(p.pfd);
	free(p.owner);
	return rc;
}
