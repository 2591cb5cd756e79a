/* ingest_store.c: ingest's writer thread. It takes the queue in batches, one registry
 * transaction each, keeps what it knows of each device in memory (loaded from
 * device_state on first sight, written back once per batch when changed), feeds the
 * anomaly rules of monitor.h with counts and times, and publishes every event it recorded
 * to the monitor hooks, and logs what it recorded, once its batch committed (a test or an
 * operator who sees the line finds the row). Once a second it runs the rules that
 * depend on time passing (silence, an event jump after a rollout) and says when ingest is
 * behind; once a minute it applies retention (moat_registry_telemetry_compact).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ingest_internal.h"
#include "moat/auditrun.h"
#include "moat/broker.h"
#include "moat/deploy.h"
#include "moat/fsutil.h"
#include "moat/log.h"
#include "moat/messages.h"
#include "moat/policy.h"
#include "moat/registry.h"
#include "moat/release.h"
#include "moat/timeutil.h"
#include "moat/topic.h"
#include "moat/update_schema.h"

#define TICK_MS 1000
#define COMPACT_EVERY_MS 60000
#define COMPACT_MAX_ROWS 200000
#define BEHIND_REPEAT_MS 10000
/* How much of the end of the plugin's events file is read back at start. */
#define CATCHUP_BYTES (8 * 1024 * 1024)
/* The broker's log read per tick at most (the rest on the next). */
#define BROKER_LOG_READ_MAX (1024 * 1024)
/* Distinct source addresses tracked for auth_burst_addr before the table starts over. */
#define ADDR_TRACK_MAX 50000
#define TYPES_MAX 64

enum rule_slot {
	R_RATE,
	R_SILENCE,
	R_PAYLOAD,
	R_AUTH,
	R_ACL,
	R_CLONE_ADDR,
	R_CLONE_SESSION,
	R_ZONE,
	R_RELEASE,
	R_EVENT_JUMP,
	R_REFUSED, /* payload_refused events: one per anomaly_open per device */
	R_COUNT
};

struct dev {
	char key[MOAT_ID_BUF_LEN];
	bool is_device; /* a device identity of the registry */
	char type[MOAT_DEVICE_TYPE_MAX_LEN + 1];
	struct moat_device_state st; /* as merged at the last flush, and this batch's changes */
	bool dirty;
	unsigned changed;	 /* MOAT_DEVICE_STATE_* this batch set (registry.h) */
	int64_t telemetry_added; /* telemetry messages recorded this batch */
	struct moat_window rate, auth, acl;
	struct moat_clone_track clone;
	int64_t open_until[R_COUNT];
	int64_t rollout_at_ms; /* its release changed; 0: none being watched */
	int64_t events_before;
};

struct addr {
	char key[MOAT_EVENT_ADDR_MAX_LEN + 1];
	struct moat_window auth;
	int64_t open_until;
};

/* Open addressing over pointers to structs whose first member is the key. */
struct map {
	void **slots;
	size_t cap, count;
};

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	}
	return h;
}

static void *map_get(const struct map *m, const char *key)
{
	if (!m->cap) {
		return NULL;
	}
	for (size_t i = hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->slots[i]) {
			return NULL;
		}
		if (strcmp((const char *)m->slots[i], key) == 0) {
			return m->slots[i];
		}
	}
}

static bool map_put(struct map *m, void *item)
{
	if ((m->count + 1) * 10 > m->cap * 7) {
		size_t cap = m->cap ? m->cap * 2 : 1024;
		void **slots = calloc(cap, sizeof(*slots));
		if (!slots) {
			return false;
		}
		for (size_t j = 0; j < m->cap; j++) {
			if (m->slots[j]) {
				size_t i = hash((const char *)m->slots[j]) & (cap - 1);
				while (slots[i]) {
					i = (i + 1) & (cap - 1);
				}
				slots[i] = m->slots[j];
			}
		}
		free(m->slots);
		m->slots = slots;
		m->cap = cap;
	}
	size_t i = hash((const char *)item) & (m->cap - 1);
	while (m->slots[i]) {
		i = (i + 1) & (m->cap - 1);
	}
	m->slots[i] = item;
	m->count++;
	return true;
}

static void map_clear(struct map *m)
{
	for (size_t i = 0; i < m->cap; i++) {
		free(m->slots[i]);
	}
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

struct type_stat {
	char type[MOAT_DEVICE_TYPE_MAX_LEN + 1];
	double mean;
	int64_t samples;
};

struct writer {
	struct moat_ingest *ing;
	struct moat_deploy *d;
	struct moat_registry *reg;
	const struct moat_monitor_settings *set;
	struct map devs, addrs;
	struct type_stat types[TYPES_MAX];
	size_t type_count;
	/* recorded in the open batch, published once it commits */
	struct moat_security_event *pending;
	size_t pending_count, pending_cap;
	/* log lines saying what the open batch recorded, said once it commits (never for a
	 * batch rolled back): each a level byte, the line's fields and a NUL */
	char *said;
	size_t said_len, said_cap;
	uint64_t batch_anomalies;
	int64_t events_refused_until; /* broker events refused: one event per anomaly_open */
	uint64_t dropped_reported;
	int64_t last_behind_ms; /* mono */
	/* the broker's log, followed for TLS refusals */
	int blog_fd;
	off_t blog_off;
	char blog_line[MOAT_BROKER_LOG_LINE_MAX + 1]; /* the line being read */
	size_t blog_len;
	bool blog_skip;	       /* in a line too long: skipped up to its end */
	bool blog_unreadable;  /* said once */
	uint64_t blog_refused; /* lines refused, said in the next tls_refused's log line */
	struct moat_tls_refusal_track blog_track;
	/* run/audit-runs: the live audit's declared runs, read again when it changes */
	struct moat_audit_runs audit_runs;
	struct timespec audit_runs_mtime;
	off_t audit_runs_size;
#if defined(MOAT_FAILPOINTS)
	int64_t delay_ms; /* MOAT_INGEST_WRITER_DELAY: test builds only */
#endif
};

/* MOAT_INGEST_CLOCK_OFFSET (test builds only): the writer's clock (time-driven rules and
 * retention) runs this far ahead of the wall clock, so a test sees retention act on what
 * it recorded without waiting days. */
static int64_t clock_offset_ms;

static int64_t now_wall(void)
{
	return moat_time_wall_ms() + clock_offset_ms;
}

/* ---- the live audit's runs (auditrun.h) ---- */

/* The run of `moat audit --live` that declared a refused handshake from address at t_ms
 * (wall clock), or NULL: a refusal of an audit's TLS probe names no identity, so its address and
 * time are all that tell it from an attack. */
static const char *audit_run_of(struct writer *w, const char *address, int64_t t_ms)
{
	char path[PATH_MAX];
	struct stat st;
	if (!address || !address[0] ||
	    moat_deploy_path(w->d, path, sizeof(path), MOAT_AUDIT_RUNS_FILE, NULL) != 0 ||
	    stat(path, &st) != 0) {
		return NULL;
	}
	if (st.st_mtim.tv_sec != w->audit_runs_mtime.tv_sec ||
	    st.st_mtim.tv_nsec != w->audit_runs_mtime.tv_nsec || st.st_size != w->audit_runs_size) {
		char *text = NULL;
		size_t len = 0;
		struct moat_err err = {0};
		w->audit_runs_mtime = st.st_mtim;
		w->audit_runs_size = st.st_size;
		if (moat_fs_read_all(path, MOAT_AUDIT_RUNS_MAX_BYTES + 1, &text, &len, &err) != 0 ||
		    moat_audit_runs_parse(text, len, &w->audit_runs, &err) != 0) {
			memset(&w->audit_runs, 0, sizeof(w->audit_runs));
			moat_log(MOAT_LOG_WARN,
				 "event=audit_runs_refused error=\"%s\" (no refusal is marked as an "
				 "audit's until it is fixed)",
				 err.msg);
		}
		free(text);
	}
	const struct moat_audit_run *r = moat_audit_runs_match(&w->audit_runs, address, t_ms);
	return r ? r->run : NULL;
}

/* "audit_run=<run> " (run: 8 hex digits) put before the evidence (size bytes); its end is
 * cut when it no longer fits. */
static void prefix_run(char *evidence, size_t size, const char *run)
{
	char head[32];
	int hn = snprintf(head, sizeof(head), "audit_run=%.8s ", run);
	size_t n = strlen(evidence);
	if (hn <= 0 || (size_t)hn >= size) {
		return;
	}
	if (n + (size_t)hn >= size) {
		n = size - 1 - (size_t)hn;
	}
	memmove(evidence + hn, evidence, n);
	memcpy(evidence, head, (size_t)hn);
	evidence[(size_t)hn + n] = '\0';
}

/* Puts "audit_run=<run> " at the head of the evidence of a refused handshake a declared
 * run made (where the ingest puts the run of the audit's identities' events). */
static void mark_audit_run(struct writer *w, const char *address, int64_t t_ms, char *evidence,
			   size_t size)
{
	if (strncmp(evidence, "audit_run=", 10) == 0) {
		return; /* marked by the plugin: one of the run's identities */
	}
	const char *run = audit_run_of(w, address, t_ms);
	if (run) {
		prefix_run(evidence, size, run);
	}
}

/* moatd's own refusal of a request (auth_refused): one of the live audit's identities
 * names its run; a request without a certificate, or with one of another CA, names none
 * ("-"), so the run that declared its address and time does. */
static void mark_audit_refusal(struct writer *w, struct moat_security_event *ev)
{
	static const char prefix[] = "audit-";
	const char *id = ev->identity;
	if (strncmp(id, prefix, sizeof(prefix) - 1) == 0 &&
	    strspn(id + sizeof(prefix) - 1, "0123456789abcdef") >= MOAT_AUDIT_RUN_ID_LEN &&
	    (id[sizeof(prefix) - 1 + MOAT_AUDIT_RUN_ID_LEN] == '\0' ||
	     id[sizeof(prefix) - 1 + MOAT_AUDIT_RUN_ID_LEN] == '-')) {
		if (strncmp(ev->evidence, "audit_run=", 10) != 0) {
			prefix_run(ev->evidence, sizeof(ev->evidence), id + sizeof(prefix) - 1);
		}
		return;
	}
	if (!id[0] || strcmp(id, "-") == 0) {
		mark_audit_run(w, ev->address, ev->time_ms, ev->evidence, sizeof(ev->evidence));
	}
}

/* ---- events ---- */

static void say_recorded(struct writer *w, enum moat_log_level level, const char *fmt, ...)
	MOAT_PRINTF(3, 4);
static void say_recorded(struct writer *w, enum moat_log_level level, const char *fmt, ...)
{
	char line[MOAT_LOG_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	size_t n = moat_log_vformat(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (w->said_cap - w->said_len < n + 2) {
		size_t cap = w->said_cap ? w->said_cap : 4096;
		while (cap - w->said_len < n + 2) {
			cap *= 2;
		}
		char *p = realloc(w->said, cap);
		if (!p) {
			moat_log_formatted(level, line); /* said before its commit, not never */
			return;
		}
		w->said = p;
		w->said_cap = cap;
	}
	w->said[w->said_len++] = (char)level;
	memcpy(w->said + w->said_len, line, n + 1);
	w->said_len += n + 1;
}

/* After the open transaction ended (committed or not): counts what it recorded, says its
 * log lines and publishes its events to the monitor hooks, only if it committed. */
static void settle(struct writer *w, bool committed)
{
	pthread_mutex_lock(&w->ing->lock);
	if (committed) {
		w->ing->events += w->pending_count;
		w->ing->anomalies += w->batch_anomalies;
	}
	pthread_mutex_unlock(&w->ing->lock);
	for (size_t off = 0; committed && off < w->said_len;) {
		const char *line = w->said + off + 1;
		moat_log_formatted((enum moat_log_level)w->said[off], line);
		off += strlen(line) + 2;
	}
	for (size_t i = 0; committed && i < w->pending_count; i++) {
		moat_monitor_publish(&w->pending[i]);
	}
	w->said_len = 0;
	w->pending_count = 0;
	w->batch_anomalies = 0;
}

static void record(struct writer *w, struct moat_security_event *ev, const char *origin)
{
	struct moat_err err = {0};
	bool fresh = false;
	if (moat_registry_security_event_add(w->reg, ev, origin, &fresh, &err) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=security_event_not_recorded kind=%s error=\"%s\"",
			 ev->kind, err.msg);
		return;
	}
	if (!fresh) {
		return;
	}
	if (w->pending_count == w->pending_cap) {
		size_t cap = w->pending_cap ? w->pending_cap * 2 : 64;
		struct moat_security_event *p = realloc(w->pending, cap * sizeof(*p));
		if (!p) {
			return; /* recorded all the same; only the hooks miss it */
		}
		w->pending = p;
		w->pending_cap = cap;
	}
	w->pending[w->pending_count++] = *ev;
	if (strcmp(ev->kind, MOAT_EVENT_KIND_ANOMALY) == 0) {
		w->batch_anomalies++;
		say_recorded(
			w, MOAT_LOG_WARN,
			"event=security kind=anomaly rule=%s severity=%s identity=%s address=%s "
			"evidence=\"%s\"",
			ev->rule, moat_severity_name(ev->severity), ev->identity, ev->address,
			ev->evidence);
	}
}

static void own_event(struct writer *w, int64_t at_ms, const char *kind, const char *rule,
		      enum moat_severity sev, const char *identity, const char *address,
		      const char *evidence)
{
	struct moat_security_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.time_ms = at_ms;
	snprintf(ev.kind, sizeof(ev.kind), "%s", kind);
	snprintf(ev.rule, sizeof(ev.rule), "%s", rule ? rule : "");
	ev.severity = sev;
	snprintf(ev.source, sizeof(ev.source), "moatd");
	snprintf(ev.identity, sizeof(ev.identity), "%s", identity ? identity : "");
	snprintf(ev.address, sizeof(ev.address), "%s", address ? address : "");
	snprintf(ev.evidence, sizeof(ev.evidence), "%s", evidence ? evidence : "");
	snprintf(ev.run_id, sizeof(ev.run_id), "%s", w->ing->run_id);
	record(w, &ev, NULL);
}

/* Fires rule for a subject unless one of its anomalies is still open. */
static void fire(struct writer *w, int64_t *open_until, int64_t now, const char *rule,
		 enum moat_severity sev, const char *identity, const char *address,
		 const char *evidence)
{
	if (*open_until > now) {
		return;
	}
	*open_until = now + w->set->anomaly_open_ms;
	own_event(w, now, MOAT_EVENT_KIND_ANOMALY, rule, sev, identity, address, evidence);
}

/* ---- devices ---- */

static struct dev *dev_get(struct writer *w, const char *id)
{
	struct dev *dv = map_get(&w->devs, id);
	if (dv) {
		return dv;
	}
	dv = calloc(1, sizeof(*dv));
	if (!dv) {
		return NULL;
	}
	snprintf(dv->key, sizeof(dv->key), "%s", id);
	struct moat_err err = {0};
	struct moat_identity ident;
	if (moat_registry_identity_get(w->reg, id, &ident, &err) == 0) {
		dv->is_device = ident.role == MOAT_ROLE_DEVICE;
		snprintf(dv->type, sizeof(dv->type), "%s", ident.device_type);
	}
	if (moat_registry_device_state_get(w->reg, id, &dv->st, &err) != 0) {
		memset(&dv->st, 0, sizeof(dv->st));
		snprintf(dv->st.device, sizeof(dv->st.device), "%s", id);
	}
	if (!map_put(&w->devs, dv)) {
		free(dv);
		return NULL;
	}
	return dv;
}

static struct addr *addr_get(struct writer *w, const char *a)
{
	struct addr *ad = map_get(&w->addrs, a);
	if (ad) {
		return ad;
	}
	if (w->addrs.count >= ADDR_TRACK_MAX) {
		map_clear(&w->addrs); /* a spray of addresses: start over rather than grow */
	}
	ad = calloc(1, sizeof(*ad));
	if (!ad) {
		return NULL;
	}
	snprintf(ad->key, sizeof(ad->key), "%s", a);
	if (!map_put(&w->addrs, ad)) {
		free(ad);
		return NULL;
	}
	return ad;
}

static struct type_stat *type_get(struct writer *w, const char *type)
{
	for (size_t i = 0; i < w->type_count; i++) {
		if (strcmp(w->types[i].type, type) == 0) {
			return &w->types[i];
		}
	}
	if (w->type_count == TYPES_MAX) {
		return NULL;
	}
	struct type_stat *t = &w->types[w->type_count++];
	snprintf(t->type, sizeof(t->type), "%s", type);
	return t;
}

/* ---- messages ---- */

/* A message moatd's schema refused (the broker's payload rule had let it through): always
 * logged whole, and a payload_refused security event (the error cut to fit) at most once per
 * anomaly_open per device, so one device's flood neither fills the events table nor hides
 * another's. dv NULL: a broker event, counted against the writer's own window. */
static void refused(struct writer *w, struct dev *dv, const char *topic, int64_t now, size_t len,
		    const char *error)
{
	if (dv) {
		moat_log(MOAT_LOG_WARN,
			 "event=payload_refused id=%s topic=%s bytes=%zu error=\"%s\"", dv->key,
			 topic, len, error);
	} else {
		moat_log(MOAT_LOG_WARN, "event=payload_refused topic=%s bytes=%zu error=\"%s\"",
			 topic, len, error);
	}
	int64_t *open_until = dv ? &dv->open_until[R_REFUSED] : &w->events_refused_until;
	if (*open_until > now) {
		return;
	}
	*open_until = now + w->set->anomaly_open_ms;
	char ev[MOAT_EVENT_EVIDENCE_MAX_LEN + 1];
	snprintf(ev, sizeof(ev), "topic=%s bytes=%zu error=\"%.300s\"", topic, len, error);
	own_event(w, now, MOAT_EVENT_KIND_PAYLOAD_REFUSED, NULL, MOAT_SEV_LOW, dv ? dv->key : NULL,
		  dv ? dv->st.address : NULL, ev);
}

static void on_telemetry(struct writer *w, struct dev *dv, const struct ingest_item *it)
{
	struct moat_err err = {0};
	struct moat_msg_telemetry t;
	char ev[MOAT_EVENT_EVIDENCE_MAX_LEN + 1];
	int64_t now = it->at_ms;
	if (moat_msg_telemetry_parse(it->payload, it->len, &t, &err) != 0) {
		refused(w, dv, "telemetry", it->at_ms, it->len, err.msg);
		return;
	}
	if (moat_registry_telemetry_add(w->reg, dv->key, now, it->payload, it->len, &err) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=telemetry_not_recorded id=%s error=\"%s\"", dv->key,
			 err.msg);
		return;
	}
	dv->telemetry_added++;
	/* a backlog replayed at once after moatd was away is not the device's rate: stamped
	 * with the arrival time, minutes of messages would look like a flood */
	int64_t n = it->replayed ? 0 : moat_window_add(&dv->rate, now, w->set->rate_window_ms);
	if (!it->replayed &&
	    moat_rule_rate(w->set, n, w->set->rate_window_ms, dv->st.interval_s, ev, sizeof(ev))) {
		fire(w, &dv->open_until[R_RATE], now, MOAT_RULE_RATE, MOAT_SEV_HIGH, dv->key,
		     dv->st.address, ev);
	}
	struct type_stat *ts = dv->type[0] ? type_get(w, dv->type) : NULL;
	if (ts) {
		if (moat_rule_payload_size(w->set, it->len, ts->mean, ts->samples, ev,
					   sizeof(ev))) {
			fire(w, &dv->open_until[R_PAYLOAD], now, MOAT_RULE_PAYLOAD_SIZE,
			     MOAT_SEV_HIGH, dv->key, dv->st.address, ev);
		} else {
			/* the usual size: a running mean, the newest weighing at least 1/1000 */
			int64_t k = ts->samples < 1000 ? ts->samples + 1 : 1000;
			ts->mean += ((double)it->len - ts->mean) / (double)k;
			ts->samples++;
		}
	}
}

struct offered {
	struct moat_registry *reg;
	const char *device, *version;
	bool offered;
};

static int offered_cb(const struct moat_release *r, void *ctx)
{
	struct offered *o = ctx;
	struct moat_err err = {0};
	bool in = false;
	if (strcmp(r->version, o->version) == 0 &&
	    moat_release_includes(o->reg, r, o->device, &in, &err) == 0 && in) {
		o->offered = true;
		return 1;
	}
	return 0;
}

static void release_changed(struct writer *w, struct dev *dv, const char *prev, const char *now_v,
			    int64_t now)
{
	if (!prev[0] || strcmp(prev, now_v) == 0) {
		return;
	}
	/* offered: a published release of its type with that version whose rollout
	 * includes it (what moatd's /api/firmware/version may have offered it) */
	struct moat_err err = {0};
	struct offered o = {.reg = w->reg, .device = dv->key, .version = now_v};
	if (moat_registry_release_foreach(w->reg, dv->type, offered_cb, &o, &err) < 0) {
		moat_log(MOAT_LOG_WARN, "event=release_check_failed id=%s error=\"%s\"", dv->key,
			 err.msg);
		return;
	}
	bool offered = o.offered;
	char ev[MOAT_EVENT_EVIDENCE_MAX_LEN + 1];
	if (moat_rule_release(prev, now_v, offered, ev, sizeof(ev))) {
		fire(w, &dv->open_until[R_RELEASE], now, MOAT_RULE_RELEASE, MOAT_SEV_CRITICAL,
		     dv->key, dv->st.address, ev);
	}
	/* watch its security events for a jump: count those of the window before */
	struct moat_event_filter f = {.since_ms = now - w->set->event_jump_window_ms,
				      .until_ms = now,
				      .identity = dv->key,
				      .min_severity = MOAT_SEV_LOW};
	if (moat_registry_security_event_count(w->reg, &f, &dv->events_before, &err) == 0) {
		dv->rollout_at_ms = now;
	}
}

static void on_diagnostics(struct writer *w, struct dev *dv, const struct ingest_item *it)
{
	struct moat_err err = {0};
	struct moat_update_event ue;
	memset(&ue, 0, sizeof(ue));
	snprintf(ue.device, sizeof(ue.device), "%s", dv->key);
	ue.at = it->at_ms / 1000;
	int rc = moat_update_event_parse(it->payload, it->len, &ue, &err);
	if (rc == 0) {
		if (moat_registry_update_event_record(w->reg, &ue, &err) != 0) {
			moat_log(MOAT_LOG_WARN,
				 "event=update_event_not_recorded id=%s error=\"%s\"", dv->key,
				 err.msg);
			return;
		}
		say_recorded(w, MOAT_LOG_INFO,
			     "event=update_event id=%s stage=%s version=%s running=%s reason=%s",
			     ue.device, moat_update_stage_name(ue.stage),
			     ue.version[0] ? ue.version : "-", ue.running[0] ? ue.running : "-",
			     ue.reason[0] ? ue.reason : NULL);
		if (ue.running[0]) {
			char prev[sizeof(dv->st.running)];
			snprintf(prev, sizeof(prev), "%s", dv->st.running);
			snprintf(dv->st.running, sizeof(dv->st.running), "%s", ue.running);
			dv->changed |= MOAT_DEVICE_STATE_RUNNING;
			dv->dirty = true;
			release_changed(w, dv, prev, ue.running, it->at_ms);
		}
		return;
	}
	if (rc != MOAT_ENOENT) {
		refused(w, dv, "diagnostics", it->at_ms, it->len, err.msg); /* an update report */
		return;
	}
	struct moat_diag_summary ds;
	if (moat_diag_summary_parse(it->payload, it->len, &ds, &err) != 0) {
		refused(w, dv, "diagnostics", it->at_ms, it->len, err.msg);
		return;
	}
	/* kept whole for moat doctor, moat device show and the dashboard's device page */
	if (moat_registry_diagnostics_put(w->reg, dv->key, it->at_ms, it->payload, it->len, &err) !=
	    0) {
		moat_log(MOAT_LOG_WARN, "event=diagnostics_not_recorded id=%s error=\"%s\"",
			 dv->key, err.msg);
	}
	if (ds.agent_version[0]) {
		snprintf(dv->st.agent_version, sizeof(dv->st.agent_version), "%s",
			 ds.agent_version);
		dv->changed |= MOAT_DEVICE_STATE_AGENT_VERSION;
	}
	if (ds.has_cert_days) {
		dv->st.has_cert_days = true;
		dv->st.cert_days_left = ds.cert_days_left;
		dv->changed |= MOAT_DEVICE_STATE_CERT_DAYS;
	}
	if (ds.interval_s > 0) {
		dv->st.interval_s = ds.interval_s;
		dv->changed |= MOAT_DEVICE_STATE_INTERVAL;
	}
	dv->dirty = true;
}

static void on_status(struct writer *w, struct dev *dv, const struct ingest_item *it)
{
	struct moat_err err = {0};
	struct moat_msg_status s;
	if (it->len == 0) {
		return; /* the device cleared its retained status: nothing to record */
	}
	if (moat_msg_status_parse(it->payload, it->len, &s, &err) != 0) {
		refused(w, dv, "status", it->at_ms, it->len, err.msg);
		return;
	}
	dv->st.state = s.online ? MOAT_CONN_ONLINE : MOAT_CONN_OFFLINE;
	dv->st.state_at_ms = it->at_ms;
	/* the last will is fixed at connect time: it has no timestamp */
	dv->st.offline_by_will = !s.online && !s.has_timestamp;
	if (s.agent_version[0]) {
		snprintf(dv->st.agent_version, sizeof(dv->st.agent_version), "%s", s.agent_version);
		dv->changed |= MOAT_DEVICE_STATE_AGENT_VERSION;
	}
	dv->dirty = true;
}

static void on_response(struct writer *w, struct dev *dv, const struct ingest_item *it)
{
	struct moat_err err = {0};
	struct moat_msg_response r;
	if (moat_msg_response_parse(it->payload, it->len, &r, &err) != 0) {
		refused(w, dv, "command_responses", it->at_ms, it->len, err.msg);
		return;
	}
	snprintf(dv->st.last_command, sizeof(dv->st.last_command), "%s", r.command);
	snprintf(dv->st.last_command_status, sizeof(dv->st.last_command_status), "%s", r.status);
	dv->st.last_command_at_ms = it->at_ms;
	if (r.has_interval && r.interval > 0) {
		dv->st.interval_s = r.interval;
		dv->changed |= MOAT_DEVICE_STATE_INTERVAL;
	}
	dv->dirty = true;
}

/* A broker event: recorded, then fed to the rules (live events only: catch-up from the
 * file records what moatd missed without judging it late). */
static void on_broker_event(struct writer *w, const char *payload, size_t len, int64_t now,
			    bool live)
{
	struct moat_err err = {0};
	struct moat_security_event ev;
	int64_t count = 0;
	if (moat_monitor_plugin_event_parse(payload, len, &ev, &count, &err) != 0) {
		refused(w, NULL, live ? "moat/events" : MOAT_PLUGIN_EVENTS_FILE_NAME,
			live ? now : now_wall(), len, err.msg);
		return;
	}
	if (strcmp(ev.kind, "auth_refused") == 0 &&
	    strstr(ev.evidence, "reason=\"tls_handshake_failed\"")) {
		mark_audit_run(w, ev.address, ev.time_ms, ev.evidence, sizeof(ev.evidence));
	}
	char origin[MOAT_EVENT_RUN_ID_MAX_LEN + MOAT_EVENT_KIND_MAX_LEN + 32];
	snprintf(origin, sizeof(origin), "%s/%s/%lld", ev.run_id, ev.kind, (long long)count);
	size_t before = w->pending_count;
	record(w, &ev, ev.run_id[0] ? origin : NULL);
	if (!live || w->pending_count == before) {
		return; /* recorded before (read twice): judged then */
	}
	char evid[MOAT_EVENT_EVIDENCE_MAX_LEN + 1];
	struct dev *dv = ev.identity[0] ? dev_get(w, ev.identity) : NULL;
	if (strcmp(ev.kind, "auth_refused") == 0) {
		if (dv && moat_rule_burst(moat_window_add(&dv->auth, now, w->set->burst_window_ms),
					  w->set->auth_burst, "refusals", evid, sizeof(evid))) {
			fire(w, &dv->open_until[R_AUTH], now, MOAT_RULE_AUTH_BURST, MOAT_SEV_HIGH,
			     ev.identity, ev.address, evid);
		}
		struct addr *ad = ev.address[0] ? addr_get(w, ev.address) : NULL;
		if (ad && moat_rule_burst(moat_window_add(&ad->auth, now, w->set->burst_window_ms),
					  w->set->auth_burst, "refusals", evid, sizeof(evid))) {
			fire(w, &ad->open_until, now, MOAT_RULE_AUTH_BURST_ADDR, MOAT_SEV_HIGH,
			     ev.identity, ev.address, evid);
		}
	} else if (strcmp(ev.kind, "acl_denied") == 0 && dv && dv->is_device) {
		if (moat_rule_burst(moat_window_add(&dv->acl, now, w->set->burst_window_ms),
				    w->set->acl_burst, "denials", evid, sizeof(evid))) {
			fire(w, &dv->open_until[R_ACL], now, MOAT_RULE_ACL_BURST, MOAT_SEV_HIGH,
			     ev.identity, ev.address, evid);
		}
	} else if (strcmp(ev.kind, "connected") == 0 && dv && dv->is_device) {
		snprintf(dv->st.address, sizeof(dv->st.address), "%s", ev.address);
		dv->changed |= MOAT_DEVICE_STATE_ADDRESS;
		dv->st.last_seen_ms = now;
		dv->dirty = true;
		const char *rule = moat_clone_connected(&dv->clone, w->set, ev.address, now, evid,
							sizeof(evid));
		if (rule) {
			fire(w,
			     &dv->open_until[strcmp(rule, MOAT_RULE_CLONE_ADDR) == 0
						     ? R_CLONE_ADDR
						     : R_CLONE_SESSION],
			     now, rule, MOAT_SEV_CRITICAL, ev.identity, ev.address, evid);
		}
		if (w->ing->net && ev.address[0] &&
		    moat_rule_zone(w->ing->net, ev.address, evid, sizeof(evid))) {
			fire(w, &dv->open_until[R_ZONE], now, MOAT_RULE_ZONE, MOAT_SEV_HIGH,
			     ev.identity, ev.address, evid);
		}
	} else if (strcmp(ev.kind, "disconnected") == 0 && dv && dv->is_device) {
		moat_clone_disconnected(&dv->clone);
	}
}

static void process(struct writer *w, const struct ingest_item *it)
{
	if (it->ev) {
		struct moat_security_event ev = *it->ev;
		if (strcmp(ev.kind, "auth_refused") == 0) {
			mark_audit_refusal(w, &ev);
		}
		record(w, &ev, NULL);
		return;
	}
	struct moat_topic t;
	struct moat_err err = {0};
	if (moat_topic_parse(it->topic, &t, &err) != 0) {
		return;
	}
	if (t.kind == MOAT_TOPIC_EVENT) {
		on_broker_event(w, it->payload, it->len, it->at_ms, true);
		return;
	}
	struct dev *dv = dev_get(w, t.id);
	if (!dv) {
		return;
	}
	dv->st.last_seen_ms = it->at_ms;
	dv->dirty = true;
	switch (t.kind) {
	case MOAT_TOPIC_TELEMETRY:
		on_telemetry(w, dv, it);
		break;
	case MOAT_TOPIC_STATUS:
		on_status(w, dv, it);
		break;
	case MOAT_TOPIC_DIAGNOSTICS:
		on_diagnostics(w, dv, it);
		break;
	case MOAT_TOPIC_COMMAND_RESPONSES:
		on_response(w, dv, it);
		break;
	default:
		break;
	}
}

static void flush_states(struct writer *w)
{
	for (size_t i = 0; i < w->devs.cap; i++) {
		struct dev *dv = w->devs.slots[i];
		if (dv && dv->dirty && dv->is_device) {
			struct moat_err err = {0};
			/* merged with what other moatds recorded, read back */
			if (moat_registry_device_state_merge(w->reg, &dv->st, dv->changed,
							     dv->telemetry_added, &err) != 0) {
				moat_log(MOAT_LOG_ERROR,
					 "event=device_state_not_recorded id=%s "
					 "error=\"%s\"",
					 dv->key, err.msg);
			}
		}
		if (dv) {
			dv->dirty = false;
			dv->changed = 0;
			dv->telemetry_added = 0;
		}
	}
}

/* ---- time-driven rules ---- */

static void tick(struct writer *w, int64_t now)
{
	char ev[MOAT_EVENT_EVIDENCE_MAX_LEN + 1];
	for (size_t i = 0; i < w->devs.cap; i++) {
		struct dev *dv = w->devs.slots[i];
		if (!dv || !dv->is_device) {
			continue;
		}
		if (dv->st.state == MOAT_CONN_ONLINE &&
		    moat_rule_silence(w->set, dv->st.last_seen_ms, now, dv->st.interval_s,
				      dv->st.offline_by_will, ev, sizeof(ev))) {
			fire(w, &dv->open_until[R_SILENCE], now, MOAT_RULE_SILENCE, MOAT_SEV_HIGH,
			     dv->key, dv->st.address, ev);
		}
		if (dv->rollout_at_ms) {
			struct moat_err err = {0};
			struct moat_event_filter f = {.since_ms = dv->rollout_at_ms,
						      .identity = dv->key,
						      .min_severity = MOAT_SEV_LOW};
			int64_t after = 0;
			if (moat_registry_security_event_count(w->reg, &f, &after, &err) == 0 &&
			    moat_rule_event_jump(w->set, dv->events_before, after, ev,
						 sizeof(ev))) {
				fire(w, &dv->open_until[R_EVENT_JUMP], now, MOAT_RULE_EVENT_JUMP,
				     MOAT_SEV_HIGH, dv->key, dv->st.address, ev);
				dv->rollout_at_ms = 0;
			} else if (now - dv->rollout_at_ms > w->set->event_jump_window_ms) {
				dv->rollout_at_ms = 0;
			}
		}
	}
	/* behind: messages lost, or the oldest waiting too long */
	struct moat_ingest_stats s;
	moat_ingest_stats(w->ing, &s);
	int64_t mono = moat_time_mono_ms();
	bool lost = s.dropped > w->dropped_reported;
	bool lagging = s.lag_ms > w->set->lag_alert_ms &&
		       (w->last_behind_ms == 0 || mono - w->last_behind_ms >= BEHIND_REPEAT_MS);
	if (lost || lagging) {
		snprintf(ev, sizeof(ev),
			 "dropped=%llu dropped_total=%llu queued=%llu lag_ms=%lld queue_max=%lld",
			 (unsigned long long)(s.dropped - w->dropped_reported),
			 (unsigned long long)s.dropped, (unsigned long long)s.queued,
			 (long long)s.lag_ms, (long long)w->set->queue_max);
		own_event(w, now, MOAT_EVENT_KIND_INGEST_BEHIND, NULL,
			  lost ? MOAT_SEV_HIGH : MOAT_SEV_MEDIUM, NULL, NULL, ev);
		moat_log(MOAT_LOG_WARN, "event=ingest_behind %s", ev);
		w->dropped_reported = s.dropped;
		w->last_behind_ms = mono;
	}
}

/* ---- TLS refusals: the broker's log (monitor.h) ---- */

static void blog_line(struct writer *w, int64_t now, const char *line, size_t len)
{
	struct moat_broker_log_line l;
	struct moat_tls_refusal r[2];
	struct moat_err err = {0};
	bool ok = moat_broker_log_line_parse(line, len, &l, &err) == 0;
	if (!ok) {
		w->blog_refused++;
	}
	size_t n = moat_tls_refusal_feed(&w->blog_track, ok ? &l : NULL, r);
	for (size_t i = 0; i < n; i++) {
		char ev[MOAT_EVENT_EVIDENCE_MAX_LEN + 1];
		snprintf(ev, sizeof(ev), "reason=%s openssl=\"%s\"", r[i].reason, r[i].openssl);
		/* when Mosquitto logged it, to the second (its last millisecond: a run declared
		 * within that second covers it); unknown: now, moatd follows the log as it
		 * grows */
		mark_audit_run(w, r[i].address,
			       r[i].time_s >= 0 ? r[i].time_s * 1000 + 999 : moat_time_wall_ms(),
			       ev, sizeof(ev));
		/* recorded at the second Mosquitto logged it, not when moatd read it: a
		 * refusal read late must not look newer than the device's next connection
		 * (moat doctor blamed a device that had connected since, once, in a loop) */
		own_event(w, r[i].time_s >= 0 ? r[i].time_s * 1000 : now,
			  MOAT_EVENT_KIND_TLS_REFUSED, NULL, MOAT_SEV_MEDIUM, NULL, r[i].address,
			  ev);
		say_recorded(w, MOAT_LOG_WARN,
			     "event=security kind=tls_refused address=%s %s refused_lines=%llu",
			     r[i].address[0] ? r[i].address : NULL, ev,
			     (unsigned long long)w->blog_refused);
	}
}

/* Opens the broker's log by name; at_end: from its end (what came before moatd started
 * is not judged late: the plugin's events of it are read back by catch_up). */
static void blog_open(struct writer *w, bool at_end)
{
	char path[PATH_MAX];
	if (moat_deploy_path(w->d, path, sizeof(path), MOAT_BROKER_LOG_FILE, NULL) != 0) {
		return;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) != 0) {
		if (fd >= 0) {
			close(fd);
		}
		if (!w->blog_unreadable && errno != ENOENT) {
			moat_log(MOAT_LOG_WARN,
				 "event=broker_log_unreadable file=%s error=\"%s\" "
				 "(TLS refusals come only as the plugin's auth_refused)",
				 path, strerror(errno));
			w->blog_unreadable = true;
		}
		return;
	}
	w->blog_fd = fd;
	w->blog_off = at_end ? sb.st_size : 0;
	w->blog_len = 0;
	w->blog_skip = false;
}

/* Reads what the broker logged since the last call, line by line. */
static void blog_follow(struct writer *w, int64_t now)
{
	if (w->blog_fd < 0) {
		blog_open(w, false); /* it did not exist at start: all of it is new */
		if (w->blog_fd < 0) {
			return;
		}
	}
	struct stat fsb, psb;
	char path[PATH_MAX];
	bool rotated = false;
	if (fstat(w->blog_fd, &fsb) == 0) {
		if (fsb.st_size < w->blog_off) { /* truncated in place */
			w->blog_off = 0;
			w->blog_len = 0;
		}
		rotated = moat_deploy_path(w->d, path, sizeof(path), MOAT_BROKER_LOG_FILE, NULL) ==
				  0 &&
			  stat(path, &psb) == 0 &&
			  (psb.st_ino != fsb.st_ino || psb.st_dev != fsb.st_dev);
	}
	char buf[65536];
	size_t total = 0;
	while (total < BROKER_LOG_READ_MAX) {
		ssize_t got = pread(w->blog_fd, buf, sizeof(buf), w->blog_off);
		if (got <= 0) {
			break;
		}
		w->blog_off += got;
		total += (size_t)got;
		for (ssize_t i = 0; i < got; i++) {
			if (buf[i] == '\n') {
				if (!w->blog_skip) {
					blog_line(w, now, w->blog_line, w->blog_len);
				}
				w->blog_len = 0;
				w->blog_skip = false;
			} else if (w->blog_len < MOAT_BROKER_LOG_LINE_MAX) {
				w->blog_line[w->blog_len++] = buf[i];
			} else if (!w->blog_skip) {
				w->blog_skip = true; /* too long: refused, read to its end */
				blog_line(w, now, w->blog_line, MOAT_BROKER_LOG_LINE_MAX + 1);
			}
		}
	}
	if (rotated && total < BROKER_LOG_READ_MAX) {
		/* the old file read to its end: on to the new one, from its start */
		int old = w->blog_fd;
		w->blog_fd = -1;
		blog_open(w, false);
		if (w->blog_fd < 0) {
			w->blog_fd = old; /* not readable by name: keep what we have */
		} else {
			close(old);
		}
	}
}

/* ---- catch-up: the plugin's events file ---- */

static void catch_up(struct writer *w)
{
	char path[PATH_MAX];
	struct moat_err err = {0};
	int fd = w->ing->events_fd;
	w->ing->events_fd = -1;
	if (fd < 0) {
		if (moat_deploy_path(w->d, path, sizeof(path), MOAT_PLUGIN_EVENTS_FILE_NAME,
				     NULL) != 0) {
			return;
		}
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			if (errno != ENOENT) {
				moat_log(MOAT_LOG_WARN,
					 "event=ingest_catchup_skipped file=%s error=\"%s\"", path,
					 strerror(errno));
			}
			return;
		}
	}
	struct stat sb;
	char *buf = NULL;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return;
	}
	off_t start = sb.st_size > CATCHUP_BYTES ? sb.st_size - CATCHUP_BYTES : 0;
	size_t size = (size_t)(sb.st_size - start);
	buf = malloc(size + 1);
	ssize_t got = buf ? pread(fd, buf, size, start) : -1;
	close(fd);
	if (got < 0) {
		free(buf);
		return;
	}
	buf[got] = '\0';
	if (moat_registry_begin(w->reg, &err) != 0) {
		free(buf);
		return;
	}
	char *line = buf;
	if (start > 0) { /* the first line may be cut */
		char *nl = strchr(line, '\n');
		line = nl ? nl + 1 : buf + got;
	}
	size_t n = 0;
	while (line < buf + got) {
		char *nl = memchr(line, '\n', (size_t)(buf + got - line));
		if (!nl) {
			break; /* the plugin is still writing it: MQTT brings it */
		}
		if (nl > line) {
			on_broker_event(w, line, (size_t)(nl - line), 0, false);
			n++;
		}
		line = nl + 1;
	}
	free(buf);
	size_t fresh = w->pending_count;
	if (moat_registry_commit(w->reg, &err) != 0) {
		moat_registry_rollback(w->reg);
		settle(w, false);
		moat_log(MOAT_LOG_ERROR, "event=ingest_catchup_failed error=\"%s\"", err.msg);
		return;
	}
	settle(w, true);
	moat_log(MOAT_LOG_INFO, "event=ingest_catchup lines=%zu recorded=%zu", n, fresh);
}

/* ---- the thread ---- */

static void compact(struct writer *w, int64_t now)
{
	struct moat_err err = {0};
	struct moat_retention r = {.raw_ms = w->set->telemetry_retention_ms,
				   .minute_ms = w->set->minute_retention_ms,
				   .hour_ms = w->set->hour_retention_ms,
				   .event_ms = w->set->event_retention_ms};
	struct moat_compact_stats cs;
	if (moat_registry_telemetry_compact(w->reg, now, &r, COMPACT_MAX_ROWS, &cs, &err) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=retention_failed error=\"%s\"", err.msg);
	} else if (cs.raw_folded || cs.minutes_dropped || cs.hours_dropped || cs.events_dropped) {
		moat_log(MOAT_LOG_INFO,
			 "event=retention folded=%lld minutes_dropped=%lld hours_dropped=%lld "
			 "events_dropped=%lld",
			 (long long)cs.raw_folded, (long long)cs.minutes_dropped,
			 (long long)cs.hours_dropped, (long long)cs.events_dropped);
	}
}

/* A batch that is not full waits this long for more messages: each batch is one commit,
 * and each commit a sync of the WAL, so a trickle of one message at a time would cost a
 * sync per message (the messages are already acknowledged to the broker either way). */
#define INGEST_LINGER_MS 50

/* Takes up to max items off the queue, waiting up to wait_ms for the first and then
 * INGEST_LINGER_MS for the batch to fill. */
static struct ingest_item *take(struct moat_ingest *ing, int64_t max, int64_t wait_ms, bool *stop,
				size_t *out_n)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (wait_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&ing->lock);
	while (!ing->head && !ing->writer_stop) {
		if (pthread_cond_timedwait(&ing->cond, &ing->lock, &until) != 0) {
			break;
		}
	}
	if (ing->head && !ing->writer_stop && ing->queued < (uint64_t)max) {
		/* a sleep, not a wait on the condition: each push signals it */
		pthread_mutex_unlock(&ing->lock);
		struct timespec linger = {0, INGEST_LINGER_MS * 1000000L};
		nanosleep(&linger, NULL);
		pthread_mutex_lock(&ing->lock);
	}
	struct ingest_item *first = ing->head, *last = NULL;
	size_t n = 0;
	for (struct ingest_item *it = ing->head; it && (int64_t)n < max; it = it->next) {
		last = it;
		n++;
	}
	if (last) {
		ing->head = last->next;
		if (!ing->head) {
			ing->tail = NULL;
		}
		last->next = NULL;
		ing->queued -= n;
	}
	*stop = ing->writer_stop && !ing->head;
	pthread_mutex_unlock(&ing->lock);
	*out_n = n;
	return first;
}

static void batch(struct writer *w, struct ingest_item *items, size_t n)
{
	struct moat_err err = {0};
#if defined(MOAT_FAILPOINTS)
	if (w->delay_ms > 0) {
		struct timespec ts = {w->delay_ms / 1000, (w->delay_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
#endif
	bool ok = moat_registry_begin(w->reg, &err) == 0;
	if (ok) {
		for (struct ingest_item *it = items; it; it = it->next) {
			process(w, it);
		}
		flush_states(w);
		ok = moat_registry_commit(w->reg, &err) == 0;
		if (!ok) {
			moat_registry_rollback(w->reg);
		}
	}
	pthread_mutex_lock(&w->ing->lock);
	if (ok) {
		w->ing->recorded += n;
		w->ing->batches++;
	} else {
		w->ing->dropped += n; /* said by the next ingest_behind event */
	}
	pthread_mutex_unlock(&w->ing->lock);
	if (!ok) {
		moat_log(MOAT_LOG_ERROR, "event=ingest_batch_failed messages=%zu error=\"%s\"", n,
			 err.msg);
	}
	settle(w, ok);
	while (items) {
		struct ingest_item *next = items->next;
		ingest_item_free(items);
		items = next;
	}
}

void *ingest_writer_run(void *arg)
{
	struct moat_ingest *ing = arg;
	struct writer w = {.ing = ing, .set = &ing->set, .blog_fd = -1};
	struct moat_err err = {0};
	/* its own deployment handle, so its own registry connection (SQLite serializes it
	 * against the HTTPS threads and the CLI) */
	while (moat_deploy_open(ing->dir, MOAT_DEPLOY_READ, &w.d, &err) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=ingest_error error=\"%s\"", err.msg);
		struct timespec ts = {1, 0};
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&ing->lock);
		bool stop = ing->writer_stop;
		pthread_mutex_unlock(&ing->lock);
		if (stop) {
			return NULL;
		}
	}
	w.reg = moat_deploy_registry(w.d);
#if defined(MOAT_FAILPOINTS)
	const char *delay = getenv("MOAT_INGEST_WRITER_DELAY");
	if (delay && moat_duration_ms_parse(delay, &w.delay_ms, &err) == 0) {
		moat_log(MOAT_LOG_WARN, "event=failpoint name=MOAT_INGEST_WRITER_DELAY ms=%lld",
			 (long long)w.delay_ms);
	}
	const char *offset = getenv("MOAT_INGEST_CLOCK_OFFSET");
	if (offset && moat_duration_ms_parse(offset, &clock_offset_ms, &err) == 0) {
		moat_log(MOAT_LOG_WARN, "event=failpoint name=MOAT_INGEST_CLOCK_OFFSET ms=%lld",
			 (long long)clock_offset_ms);
	}
#endif
	catch_up(&w);
	w.blog_fd = ing->broker_log_fd;
	ing->broker_log_fd = -1;
	if (w.blog_fd >= 0) {
		struct stat sb;
		w.blog_off = fstat(w.blog_fd, &sb) == 0 ? sb.st_size : 0;
	} else {
		blog_open(&w, true);
	}
	compact(&w, now_wall());
	int64_t next_tick = moat_time_mono_ms() + TICK_MS;
	int64_t next_compact = moat_time_mono_ms() + COMPACT_EVERY_MS;
	for (;;) {
		bool stop = false;
		size_t n = 0;
		struct ingest_item *items = take(ing, ing->set.batch_max, 200, &stop, &n);
		if (items) {
			batch(&w, items, n);
		}
		int64_t mono = moat_time_mono_ms();
		if (mono >= next_tick) {
			next_tick = mono + TICK_MS;
			if (moat_registry_begin(w.reg, &err) == 0) {
				tick(&w, now_wall());
				blog_follow(&w, moat_time_wall_ms());
				bool committed = moat_registry_commit(w.reg, &err) == 0;
				if (!committed) {
					moat_registry_rollback(w.reg);
				}
				settle(&w, committed);
			}
		}
		if (mono >= next_compact) {
			next_compact = mono + COMPACT_EVERY_MS;
			compact(&w, now_wall());
		}
		if (stop) {
			break;
		}
	}
	if (w.blog_fd >= 0) {
		close(w.blog_fd);
	}
	map_clear(&w.devs);
	map_clear(&w.addrs);
	free(w.pending);
	free(w.said);
	moat_deploy_close(w.d);
	return NULL;
}
