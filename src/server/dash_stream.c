/* dash_stream.c: the live security events of the dashboard, as server-sent events
 * (server_internal.h, docs/DASHBOARD.md "Security events").
 *
 * GET /dashboard/events/stream answers text/event-stream from a libmicrohttpd content
 * callback: each call reads the events after the last one sent (the page's filters: kind,
 * device, minimum severity) from a registry handle of the stream's own, used only to read (the
 * callback runs on any of MHD's threads, outside the request that lent one), and writes
 * them as "id: SEQ / event: security / data: JSON" blocks. With nothing to send, the
 * connection is suspended (no busy wait: MHD calls a reader that returned 0 again at once)
 * and a ticker thread resumes every suspended stream once a second. Bounds: at most
 * DASH_STREAMS_PER_SESSION streams per session (or operator certificate) and
 * DASH_STREAMS_MAX in all (429 beyond); a heartbeat comment every DASH_STREAM_HEARTBEAT_MS;
 * the session (or the operator) is checked again every second, and the stream ends (an
 * "ended" event) when it expired, was signed out or the operator is no longer active;
 * a stream lives at
 * most DASH_STREAM_LIFETIME_MS (the browser's EventSource reconnects with Last-Event-ID).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moat/log.h"
#include "moat/registry.h"
#include "moat/secevent.h"
#include "moat/timeutil.h"
#include "server_internal.h"

#define DASH_STREAMS_PER_SESSION 2
#define DASH_STREAMS_MAX 32
/* also how soon a stream whose client went away is noticed (a write fails) and freed */
#define DASH_STREAM_HEARTBEAT_MS 5000
#define DASH_STREAM_LIFETIME_MS (10 * 60 * 1000)
#define DASH_STREAM_TICK_MS 1000
#define DASH_STREAM_CHECK_MS 1000 /* the session and the operator, checked again */
#define DASH_STREAM_BUF (64 * 1024)

struct dash_stream {
	struct dash_streams *owner;
	struct MHD_Connection *conn;
	struct moat_registry *reg;
	char key[MOAT_ID_BUF_LEN + 72]; /* "s:" session hash, or "c:" operator: the limit's */
	char session_hash[65];		/* "" for an operator certificate */
	char op[MOAT_ID_BUF_LEN];
	char kind[64];
	char device[MOAT_ID_BUF_LEN];
	int min_severity;
	int64_t last_seq;
	int64_t started_ms, checked_ms, sent_ms;
	bool suspended, ending;
	char *out; /* what the last read produced and MHD has not taken yet */
	size_t out_len, out_off;
	struct dash_stream *next;
};

struct dash_streams {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t ticker;
	bool ticker_started, stop;
	struct dash_stream *list;
	size_t count;
};

static void *ticker(void *arg)
{
	struct dash_streams *s = arg;
	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += DASH_STREAM_TICK_MS / 1000;
		pthread_cond_timedwait(&s->cv, &s->mu, &until);
		for (struct dash_stream *st = s->list; st && !s->stop; st = st->next) {
			if (st->suspended) {
				st->suspended = false;
				MHD_resume_connection(st->conn);
			}
		}
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int dash_streams_open(struct dash_streams **out, struct moat_err *err)
{
	struct dash_streams *s = calloc(1, sizeof(*s));
	if (!s) {
		return moat_err_set(err, MOAT_ENOMEM, "dashboard: out of memory");
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (pthread_create(&s->ticker, NULL, ticker, s) != 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		free(s);
		return moat_err_set(err, MOAT_EIO,
				    "dashboard: cannot start the event streams' ticker");
	}
	s->ticker_started = true;
	*out = s;
	return 0;
}

static void dash_streams_stop(struct dash_streams *s)
{
	if (!s || !s->ticker_started) {
		return;
	}
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->ticker, NULL);
	s->ticker_started = false;
}

void dash_streams_close(struct dash_streams *s)
{
	if (!s) {
		return;
	}
	dash_streams_stop(s);
	/* MHD_stop_daemon ran first: every stream's free callback has been called */
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static void stream_free(void *cls)
{
	struct dash_stream *st = cls;
	struct dash_streams *s = st->owner;
	pthread_mutex_lock(&s->mu);
	for (struct dash_stream **p = &s->list; *p; p = &(*p)->next) {
		if (*p == st) {
			*p = st->next;
			s->count--;
			break;
		}
	}
	pthread_mutex_unlock(&s->mu);
	moat_registry_close(st->reg);
	free(st->out);
	free(st);
}

struct fill {
	struct dash_stream *st;
	char *buf;
	size_t len, size;
};

static int add_event(const struct moat_security_event *ev, void *ctx)
{
	struct fill *f = ctx;
	char json[MOAT_EVENT_EVIDENCE_MAX_LEN + 1024];
	struct moat_err err = {0};
	if (moat_security_event_json(ev, json, sizeof(json), &err) != 0) {
		f->st->last_seq = ev->seq; /* skip it rather than stall the stream */
		return 0;
	}
	int n = snprintf(f->buf + f->len, f->size - f->len,
			 "id: %lld\nevent: security\ndata: %s\n\n", (long long)ev->seq, json);
	if (n < 0 || (size_t)n >= f->size - f->len) {
		return 1; /* full: the rest on the next call */
	}
	f->len += (size_t)n;
	f->st->last_seq = ev->seq;
	return 0;
}

/* Is the stream's operator still allowed to watch? */
static bool still_allowed(struct dash_stream *st, int64_t now_ms)
{
	struct moat_err err = {0};
	if (st->session_hash[0]) {
		char op[MOAT_ID_BUF_LEN];
		enum moat_dash_token t = MOAT_DASH_TOKEN_UNKNOWN;
		if (moat_registry_dash_session_get(st->reg, st->session_hash, now_ms, op, &t,
						   &err) != 0 ||
		    t != MOAT_DASH_TOKEN_OK) {
			return false;
		}
	}
	struct moat_identity ident;
	return moat_registry_identity_get(st->reg, st->op, &ident, &err) == 0 &&
	       ident.role == MOAT_ROLE_OPERATOR && ident.status == MOAT_ID_ACTIVE;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct dash_stream *st = cls;
	if (st->out_off < st->out_len) {
		size_t n = st->out_len - st->out_off < max ? st->out_len - st->out_off : max;
		memcpy(buf, st->out + st->out_off, n);
		st->out_off += n;
		return (ssize_t)n;
	}
	if (st->ending) {
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	int64_t now = moat_time_wall_ms();
	if (now - st->started_ms > DASH_STREAM_LIFETIME_MS) {
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	struct fill f = {.st = st, .buf = st->out, .size = DASH_STREAM_BUF};
	if (now - st->checked_ms >= DASH_STREAM_CHECK_MS) {
		st->checked_ms = now;
		if (!still_allowed(st, now)) {
			/* the page's script stops on this event: the session is over */
			f.len = (size_t)snprintf(f.buf, f.size, "event: ended\ndata: session\n\n");
			st->ending = true;
		}
	}
	if (!st->ending) {
		struct moat_event_filter flt = {.after_seq = st->last_seq,
						.kind = st->kind[0] ? st->kind : NULL,
						.identity = st->device[0] ? st->device : NULL,
						.min_severity = st->min_severity};
		struct moat_err err = {0};
		/* oldest first; add_event stops the walk when the buffer is full (rc 1) */
		int rc = moat_registry_security_event_foreach(st->reg, &flt, add_event, &f, &err);
		if (rc < 0) {
			moat_log(MOAT_LOG_ERROR, "event=registry_error msg=\"%s\"", err.msg);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (f.len == 0 && now - st->sent_ms >= DASH_STREAM_HEARTBEAT_MS) {
			f.len = (size_t)snprintf(f.buf, f.size, ": heartbeat\n\n");
		}
	}
	if (f.len == 0) {
		pthread_mutex_lock(&st->owner->mu);
		st->suspended = true;
		MHD_suspend_connection(st->conn);
		pthread_mutex_unlock(&st->owner->mu);
		return 0;
	}
	st->sent_ms = now;
	st->out_len = f.len;
	st->out_off = 0;
	return stream_read(cls, pos, buf, max);
}

enum MHD_Result dash_stream_serve(struct dash_streams *s, struct MHD_Connection *conn,
				  const char *registry_location, const struct dash_stream_req *rq,
				  unsigned *status)
{
	char key[sizeof(((struct dash_stream *)0)->key)];
	snprintf(key, sizeof(key), "%s%s", rq->session_hash[0] ? "s:" : "c:",
		 rq->session_hash[0] ? rq->session_hash : rq->op);
	pthread_mutex_lock(&s->mu);
	size_t mine = 0;
	for (const struct dash_stream *st = s->list; st; st = st->next) {
		mine += strcmp(st->key, key) == 0;
	}
	bool full = mine >= DASH_STREAMS_PER_SESSION || s->count >= DASH_STREAMS_MAX;
	pthread_mutex_unlock(&s->mu);
	if (full) {
		*status = MHD_HTTP_TOO_MANY_REQUESTS;
		return MHD_NO; /* the caller answers */
	}
	struct dash_stream *st = calloc(1, sizeof(*st));
	char *out = malloc(DASH_STREAM_BUF);
	struct moat_err err = {0};
	if (!st || !out || moat_registry_open(registry_location, false, &st->reg, &err) != 0) {
		if (st && !st->reg && err.msg[0]) {
			moat_log(MOAT_LOG_ERROR, "event=registry_error msg=\"%s\"", err.msg);
		}
		free(st);
		free(out);
		*status = MHD_HTTP_SERVICE_UNAVAILABLE;
		return MHD_NO;
	}
	st->owner = s;
	st->conn = conn;
	st->out = out;
	snprintf(st->key, sizeof(st->key), "%s", key);
	snprintf(st->session_hash, sizeof(st->session_hash), "%s", rq->session_hash);
	snprintf(st->op, sizeof(st->op), "%s", rq->op);
	snprintf(st->kind, sizeof(st->kind), "%s", rq->kind ? rq->kind : "");
	snprintf(st->device, sizeof(st->device), "%s", rq->device ? rq->device : "");
	st->min_severity = rq->min_severity;
	st->last_seq = rq->after_seq;
	st->started_ms = st->checked_ms = moat_time_wall_ms();
	st->sent_ms = 0; /* a heartbeat at once: the client sees the stream open */
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
								      stream_read, st, stream_free);
	if (!resp) {
		moat_registry_close(st->reg);
		free(st->out);
		free(st);
		*status = MHD_HTTP_SERVICE_UNAVAILABLE;
		return MHD_NO;
	}
	/* counted again under the lock: two requests may have passed the first count */
	pthread_mutex_lock(&s->mu);
	mine = 0;
	for (const struct dash_stream *o = s->list; o; o = o->next) {
		mine += strcmp(o->key, key) == 0;
	}
	full = mine >= DASH_STREAMS_PER_SESSION || s->count >= DASH_STREAMS_MAX;
	if (!full) {
		st->next = s->list;
		s->list = st;
		s->count++;
	}
	pthread_mutex_unlock(&s->mu);
	if (full) {
		MHD_destroy_response(resp); /* stream_free runs: not in the list, nothing removed */
		*status = MHD_HTTP_TOO_MANY_REQUESTS;
		return MHD_NO;
	}
	rq->headers(resp);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	*status = MHD_HTTP_OK;
	enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp); /* the connection holds it; stream_free runs with it */
	return r;
}
