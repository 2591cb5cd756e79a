/* rollouts.c: groups and phased rollouts as moat and moatd handle them (moat/release.h):
 * a group's members (its stored filter parsed again and evaluated per device, never turned
 * into SQL), creating a rollout (ranking the group by a keyed hash), its progress, the
 * operator's pause, resume and abort, and moatd's tick that advances or halts it. The
 * decisions are src/core/rollout.c's pure functions; the rows the registry's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "moat/codec.h"
#include "moat/monitor_export.h"
#include "moat/release.h"

struct members_ctx {
	const struct moat_where *where;
	const char *device_type;
	int64_t now;
	moat_device_row_cb cb;
	void *ctx;
};

static void row_attrs(const struct moat_device_row *row, int64_t now, struct moat_device_attrs *a)
{
	a->id = row->id;
	a->type = row->type;
	a->release = row->release;
	a->tags = row->tags;
	a->tag_count = row->tag_count;
	a->cert_age_s = row->cert_not_before < 0 ? -1 : now - row->cert_not_before;
}

static int members_cb(const struct moat_device_row *row, void *vctx)
{
	struct members_ctx *c = vctx;
	struct moat_device_attrs a;
	row_attrs(row, c->now, &a);
	if (c->device_type && strcmp(row->type, c->device_type) != 0) {
		return 0;
	}
	return moat_where_match(c->where, &a) ? c->cb(row, c->ctx) : 0;
}

int moat_group_members(struct moat_registry *reg, const char *group, const char *device_type,
		       int64_t now, moat_device_row_cb cb, void *ctx, struct moat_err *err)
{
	struct moat_group g;
	struct moat_where *w = malloc(sizeof(*w));
	if (!w) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	int rc = moat_registry_group_get(reg, group, &g, err);
	if (rc == 0 && (rc = moat_where_parse(g.where, w, err)) != 0) {
		moat_err_prefix(err, "group %s", group);
	}
	if (rc == 0) {
		struct members_ctx c = {w, device_type, now, cb, ctx};
		rc = moat_registry_device_rows(reg, NULL, members_cb, &c, err);
	}
	free(w);
	return rc;
}

struct names_ctx {
	struct moat_registry *reg;
	const char *device;
	int64_t now;
	char *buf;
	size_t size;
	size_t off;
	struct moat_where where;
	struct moat_err *err;
};

static int names_dev_cb(const struct moat_device_row *row, void *vctx)
{
	struct names_ctx *c = vctx;
	struct moat_device_attrs a;
	row_attrs(row, c->now, &a);
	return moat_where_match(&c->where, &a) ? 1 : 0; /* 1: it is a member */
}

static int names_group_cb(const struct moat_group *g, void *vctx)
{
	struct names_ctx *c = vctx;
	struct moat_err e = {0};
	if (moat_where_parse(g->where, &c->where, &e) != 0) {
		return 0; /* stored filters were checked when added */
	}
	int rc = moat_registry_device_rows(c->reg, c->device, names_dev_cb, c, c->err);
	if (rc < 0) {
		return rc;
	}
	if (rc == 1 && c->off < c->size) {
		int n = snprintf(c->buf + c->off, c->size - c->off, "%s%s", c->off ? ", " : "",
				 g->name);
		if (n > 0) {
			c->off += (size_t)n < c->size - c->off ? (size_t)n : c->size - c->off - 1;
		}
	}
	return 0;
}

int moat_group_names_of(struct moat_registry *reg, const char *device_id, int64_t now, char *buf,
			size_t size, struct moat_err *err)
{
	if (size == 0) {
		return moat_err_set(err, MOAT_EINVAL, "group names: no buffer");
	}
	buf[0] = '\0';
	struct names_ctx *c = calloc(1, sizeof(*c));
	if (!c) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	c->reg = reg;
	c->device = device_id;
	c->now = now;
	c->buf = buf;
	c->size = size;
	c->err = err;
	int rc = moat_registry_group_foreach(reg, names_group_cb, c, err);
	free(c);
	return rc;
}

/* ---- creating a rollout ---- */

struct ranked {
	uint64_t rank;
	char id[MOAT_ID_BUF_LEN];
};

struct collect_ctx {
	struct ranked *v;
	size_t n, cap;
	const uint8_t *key;
};

static int collect_cb(const struct moat_device_row *row, void *vctx)
{
	struct collect_ctx *c = vctx;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct ranked *v = realloc(c->v, cap * sizeof(*v));
		if (!v) {
			return MOAT_ENOMEM;
		}
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n].rank = moat_rollout_rank(c->key, row->id);
	snprintf(c->v[c->n].id, sizeof(c->v[c->n].id), "%s", row->id);
	c->n++;
	return 0;
}

static int rank_cmp(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;
	if (x->rank != y->rank) {
		return x->rank < y->rank ? -1 : 1;
	}
	return strcmp(x->id, y->id);
}

int moat_rollout_create(struct moat_registry *reg, const struct moat_rollout_req *req,
			struct moat_rollout_row *out, struct moat_err *err)
{
	struct moat_release rel;
	uint8_t key[MOAT_ROLLOUT_KEY_BYTES];
	struct collect_ctx c = {0};
	struct moat_rollout_member *members = NULL;
	memset(out, 0, sizeof(*out));
	int rc = moat_registry_release_get(reg, req->sha256_hex, &rel, err);
	if (rc != 0) {
		return rc;
	}
	if (req->phase_count < 1 || req->phase_count > MOAT_ROLLOUT_PHASES_MAX || req->soak_s < 0 ||
	    req->silent_s <= 0 || req->halt_failure_pct < -1 || req->halt_failure_pct > 100) {
		return moat_err_set(err, MOAT_EINVAL,
				    "rollout: bad phases, soak, silence bound or threshold");
	}
	if (RAND_bytes(key, sizeof(key)) != 1) {
		return moat_err_set(err, MOAT_ECRYPTO, "rollout: no random key");
	}
	c.key = key;
	rc = moat_group_members(reg, req->group, rel.device_type, req->now, collect_cb, &c, err);
	if (rc == MOAT_ENOMEM) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	if (rc != 0) {
		goto out;
	}
	if (c.n == 0) {
		rc = moat_err_set(err, MOAT_EINVAL, "group %s has no active device of type %s",
				  req->group, rel.device_type);
		goto out;
	}
	qsort(c.v, c.n, sizeof(c.v[0]), rank_cmp);
	members = calloc(c.n, sizeof(*members));
	if (!members) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < c.n; i++) {
		members[i].device = c.v[i].id;
		members[i].phase = moat_rollout_phase_of(i, c.n, req->percent, req->phase_count);
	}
	snprintf(out->sha256_hex, sizeof(out->sha256_hex), "%s", rel.sha256_hex);
	snprintf(out->group, sizeof(out->group), "%s", req->group);
	out->soak_s = req->soak_s;
	out->silent_s = req->silent_s;
	out->halt_failure_pct = req->halt_failure_pct;
	out->halt_on_events = req->halt_on_events;
	moat_hex_encode(key, sizeof(key), out->rank_key_hex);
	out->phase_count = req->phase_count;
	memcpy(out->percent, req->percent, sizeof(int) * (size_t)req->phase_count);
	out->created_at = req->now;
	if ((rc = moat_registry_rollout_insert(reg, out, members, c.n, err)) == 0) {
		int64_t id = out->id;
		rc = moat_registry_rollout_get(reg, id, out, err);
	}
out:
	free(members);
	free(c.v);
	return rc;
}

/* ---- progress ---- */

struct progress_ctx {
	struct moat_rollout_progress *p;
	int64_t now;
	/* when set, called with every device that failed (resume --accept-failures) */
	int (*failed)(const char *device, void *ctx);
	void *failed_ctx;
};

static bool moat_rollout_dev_failed(enum moat_rollout_dev_state s)
{
	return s == MOAT_RD_REVERTED || s == MOAT_RD_REFUSED || s == MOAT_RD_SILENT;
}

static int progress_cb(const struct moat_rollout_device *d, void *vctx)
{
	struct progress_ctx *c = vctx;
	struct moat_rollout_progress *p = c->p;
	if (d->phase < 0 || d->phase >= p->row.phase_count) {
		return 0;
	}
	struct moat_rollout_phase_counts *pc = &p->phases[d->phase];
	pc->devices++;
	bool offered = d->phase <= p->row.phase && p->row.state != MOAT_ROLLOUT_ABORTED;
	int64_t offered_at = p->row.started_at[d->phase] ? p->row.started_at[d->phase]
							 : p->row.created_at;
	/* silence counts from its offer (its phase's start, or its joining), and again from
	 * the last resume: nothing was offered while the rollout was paused or halted */
	int64_t silent_from = offered_at;
	silent_from = d->joined_at > silent_from ? d->joined_at : silent_from;
	silent_from = p->row.resumed_at > silent_from ? p->row.resumed_at : silent_from;
	enum moat_rollout_dev_state s = moat_rollout_dev_state(d->stage, d->running_new,
							       d->later_running, silent_from,
							       p->row.silent_s, c->now);
	/* the group's devices not (yet) on the new release are the comparison */
	if (d->running_new || s == MOAT_RD_INSTALLED) {
		p->new_total++;
		p->new_signalled += d->signalled;
		if (d->signalled && d->signal && !p->new_signal[0]) {
			snprintf(p->new_signal, sizeof(p->new_signal), "%s: %s", d->device,
				 d->signal);
		}
	} else {
		p->old_total++;
		p->old_signalled += d->signalled;
	}
	if (offered || d->stage || d->running_new) {
		pc->by_state[s]++; /* a phase not started yet counts its devices only */
		if (d->accepted && moat_rollout_dev_failed(s)) {
			pc->accepted++;
		}
	}
	if (c->failed && (offered || d->stage || d->running_new) && moat_rollout_dev_failed(s)) {
		return c->failed(d->device, c->failed_ctx);
	}
	return 0;
}

static int progress_with(struct moat_registry *reg, int64_t id, int64_t now,
			 struct moat_rollout_progress *out, struct progress_ctx *c,
			 struct moat_err *err)
{
	memset(out, 0, sizeof(*out));
	int rc = moat_registry_rollout_get(reg, id, &out->row, err);
	if (rc == 0) {
		rc = moat_registry_release_get(reg, out->row.sha256_hex, &out->release, err);
	}
	if (rc == 0) {
		c->p = out;
		c->now = now;
		rc = moat_registry_rollout_devices(reg, &out->row, out->release.version,
						   progress_cb, c, err);
	}
	return rc;
}

int moat_rollout_progress(struct moat_registry *reg, int64_t id, int64_t now,
			  struct moat_rollout_progress *out, struct moat_err *err)
{
	struct progress_ctx c = {0};
	return progress_with(reg, id, now, out, &c, err);
}

struct metrics_ctx {
	struct moat_registry *reg;
	int64_t now;
	struct moat_metrics_rollouts *out;
	struct moat_rollout_progress *p; /* scratch: one rollout at a time */
	struct moat_err *err;
};

static int metrics_one(const struct moat_rollout_row *r, void *vctx)
{
	struct metrics_ctx *c = vctx;
	struct moat_metrics_rollouts *o = c->out;
	if ((unsigned)r->state < MOAT_METRICS_ROLLOUT_STATES) {
		o->by_state[r->state]++;
	}
	if (r->state != MOAT_ROLLOUT_RUNNING && r->state != MOAT_ROLLOUT_PAUSED &&
	    r->state != MOAT_ROLLOUT_HALTED) {
		return 0;
	}
	int rc = moat_rollout_progress(c->reg, r->id, c->now, c->p, c->err);
	if (rc != 0) {
		return rc;
	}
	if (o->active_count == MOAT_METRICS_ROLLOUTS_MAX) {
		/* by id, so the oldest goes */
		memmove(&o->active[0], &o->active[1], (o->active_count - 1) * sizeof(o->active[0]));
		o->active_count--;
	}
	struct moat_metrics_rollout *m = &o->active[o->active_count++];
	memset(m, 0, sizeof(*m));
	m->id = r->id;
	snprintf(m->version, sizeof(m->version), "%s", c->p->release.version);
	m->state = c->p->row.state;
	m->phase = c->p->row.phase + 1;
	m->phase_count = c->p->row.phase_count;
	size_t devices = 0, counted = 0;
	for (int k = 0; k < c->p->row.phase_count; k++) {
		devices += c->p->phases[k].devices;
		for (int s = 0; s < MOAT_RD_STATE_COUNT; s++) {
			m->by_state[s] += c->p->phases[k].by_state[s];
			counted += c->p->phases[k].by_state[s];
		}
	}
	m->waiting = devices > counted ? devices - counted : 0;
	return 0;
}

int moat_rollout_metrics(struct moat_registry *reg, int64_t now, struct moat_metrics_rollouts *out,
			 struct moat_err *err)
{
	memset(out, 0, sizeof(*out));
	struct metrics_ctx c = {reg, now, out, malloc(sizeof(struct moat_rollout_progress)), err};
	if (!c.p) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	int rc = moat_registry_rollout_foreach(reg, metrics_one, &c, err);
	free(c.p);
	return rc;
}

/* ---- the operator's actions and moatd's tick ---- */

struct failed_list {
	char **v;
	size_t n, cap;
};

static int failed_push(const char *device, void *vctx)
{
	struct failed_list *l = vctx;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			return MOAT_ENOMEM;
		}
		l->v = v;
		l->cap = cap;
	}
	if (!(l->v[l->n] = strdup(device))) {
		return MOAT_ENOMEM;
	}
	l->n++;
	return 0;
}

/* resume --accept-failures: the devices failed now are accepted with the move. */
static int resume_accepting(struct moat_registry *reg, const struct moat_rollout_row *r,
			    int64_t now, struct moat_err *err)
{
	struct failed_list l = {0};
	struct progress_ctx c = {.failed = failed_push, .failed_ctx = &l};
	struct moat_rollout_progress *p = malloc(sizeof(*p));
	int rc = p ? progress_with(reg, r->id, now, p, &c, err)
		   : moat_err_set(err, MOAT_ENOMEM, "out of memory");
	if (rc == MOAT_ENOMEM) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	if (rc == 0) {
		rc = moat_registry_rollout_resume_accepting(reg, r->id, r->state, r->phase,
							    (const char *const *)l.v, l.n, now,
							    err);
	}
	for (size_t i = 0; i < l.n; i++) {
		free(l.v[i]);
	}
	free(l.v);
	free(p);
	return rc;
}

int moat_rollout_act(struct moat_registry *reg, int64_t id, enum moat_rollout_action action,
		     bool accept_failures, int64_t now, struct moat_rollout_row *out,
		     struct moat_err *err)
{
	int rc = moat_registry_rollout_get(reg, id, out, err);
	if (rc != 0) {
		return rc;
	}
	enum moat_rollout_state from = out->state;
	enum moat_rollout_state to;
	bool ok;
	const char *cause = out->cause;
	if (accept_failures && action != MOAT_ROLLOUT_RESUME) {
		return moat_err_set(err, MOAT_EINVAL, "--accept-failures is an option of resume");
	}
	switch (action) {
	case MOAT_ROLLOUT_PAUSE:
		ok = from == MOAT_ROLLOUT_RUNNING;
		to = MOAT_ROLLOUT_PAUSED;
		cause = "paused by the operator";
		break;
	case MOAT_ROLLOUT_RESUME:
		ok = from == MOAT_ROLLOUT_PAUSED || from == MOAT_ROLLOUT_HALTED;
		to = MOAT_ROLLOUT_RUNNING;
		cause = "";
		break;
	default:
		ok = from != MOAT_ROLLOUT_COMPLETED && from != MOAT_ROLLOUT_ABORTED;
		to = MOAT_ROLLOUT_ABORTED;
		cause = "aborted by the operator";
		break;
	}
	if (!ok) {
		return moat_err_set(err, MOAT_ESTATE, "rollout %lld is %s", (long long)id,
				    moat_rollout_state_name(from));
	}
	/* what halted it would halt it again at once: the operator accepts it explicitly */
	if (action == MOAT_ROLLOUT_RESUME && from == MOAT_ROLLOUT_HALTED && !accept_failures) {
		return moat_err_set(
			err, MOAT_ESTATE,
			"rollout %lld halted (%s): resume --accept-failures accepts the "
			"failures and security events so far, then only new ones halt it",
			(long long)id, out->cause);
	}
	if (accept_failures) {
		rc = resume_accepting(reg, out, now, err);
	} else {
		char cause_copy[MOAT_ERR_MSG_MAX];
		snprintf(cause_copy, sizeof(cause_copy), "%s", cause);
		/* resume restarts the soak and silence clocks (moat_registry_rollout_move) */
		rc = moat_registry_rollout_move(reg, id, from, out->phase, to, out->phase,
						cause_copy, now, err);
	}
	if (rc != 0) {
		return rc;
	}
	return moat_registry_rollout_get(reg, id, out, err);
}

struct tick_ctx {
	struct moat_registry *reg;
	int64_t now;
	moat_rollout_change_cb cb;
	void *cb_ctx;
	struct moat_err *err;
};

/* ---- devices that join the group of a running rollout ---- */

struct taken {
	struct ranked r; /* first: rank_cmp compares it */
	int phase;
};

struct join_ctx {
	const uint8_t *key;
	struct taken *taken; /* the rollout's devices, by id as read, then by rank */
	size_t n_taken, cap_taken;
	struct ranked *fresh; /* group members it does not have */
	size_t n_fresh, cap_fresh;
};

static int grow(void **v, size_t elem, size_t n, size_t *cap)
{
	if (n < *cap) {
		return 0;
	}
	size_t c = *cap ? *cap * 2 : 64;
	void *nv = realloc(*v, c * elem);
	if (!nv) {
		return MOAT_ENOMEM;
	}
	*v = nv;
	*cap = c;
	return 0;
}

static int join_taken_cb(const char *device, int phase, void *vctx)
{
	struct join_ctx *j = vctx;
	if (grow((void **)&j->taken, sizeof(*j->taken), j->n_taken, &j->cap_taken) != 0) {
		return MOAT_ENOMEM;
	}
	struct taken *t = &j->taken[j->n_taken++];
	t->r.rank = moat_rollout_rank(j->key, device);
	snprintf(t->r.id, sizeof(t->r.id), "%s", device);
	t->phase = phase;
	return 0;
}

static int taken_by_id(const void *a, const void *b)
{
	return strcmp(((const struct taken *)a)->r.id, ((const struct taken *)b)->r.id);
}

static int join_member_cb(const struct moat_device_row *row, void *vctx)
{
	struct join_ctx *j = vctx;
	struct taken key;
	snprintf(key.r.id, sizeof(key.r.id), "%s", row->id);
	if (bsearch(&key, j->taken, j->n_taken, sizeof(key), taken_by_id)) {
		return 0;
	}
	if (grow((void **)&j->fresh, sizeof(*j->fresh), j->n_fresh, &j->cap_fresh) != 0) {
		return MOAT_ENOMEM;
	}
	j->fresh[j->n_fresh].rank = moat_rollout_rank(j->key, row->id);
	snprintf(j->fresh[j->n_fresh].id, sizeof(j->fresh[0].id), "%s", row->id);
	j->n_fresh++;
	return 0;
}

/* The phase of a device that joins: that of the first device the rollout has that ranks
 * after it (taken sorted by rank; the last phase when none does). Phases stay prefixes of
 * one rank order, so the pick stays spread, and no device already taken moves. */
static int join_phase(const struct join_ctx *j, const struct ranked *fresh, int phase_count)
{
	size_t lo = 0, hi = j->n_taken;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (rank_cmp(&j->taken[mid].r, fresh) < 0) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo < j->n_taken ? j->taken[lo].phase : phase_count - 1;
}

/* Takes the active devices of r's group (of the release's type) that it does not have. */
static int join_new_members(struct tick_ctx *t, const struct moat_rollout_row *r,
			    size_t *out_joined)
{
	uint8_t key[MOAT_ROLLOUT_KEY_BYTES];
	struct moat_release rel;
	struct join_ctx j = {.key = key};
	struct moat_rollout_member *members = NULL;
	*out_joined = 0;
	if (moat_hex_decode(r->rank_key_hex, key, sizeof(key)) != 0) {
		return moat_err_set(t->err, MOAT_EDB, "rollout %lld: bad rank key",
				    (long long)r->id);
	}
	int rc = moat_registry_release_get(t->reg, r->sha256_hex, &rel, t->err);
	if (rc == 0) {
		/* read by device id: join_member_cb looks them up */
		rc = moat_registry_rollout_members(t->reg, r->id, join_taken_cb, &j, t->err);
	}
	if (rc == 0) {
		rc = moat_group_members(t->reg, r->group, rel.device_type, t->now, join_member_cb,
					&j, t->err);
		if (rc == MOAT_ENOENT) {
			rc = 0; /* the group was removed: nobody joins */
			j.n_fresh = 0;
		}
	}
	if (rc == 0 && j.n_fresh > 0 && !(members = calloc(j.n_fresh, sizeof(*members)))) {
		rc = MOAT_ENOMEM;
	}
	if (rc == 0 && j.n_fresh > 0) {
		qsort(j.taken, j.n_taken, sizeof(*j.taken), rank_cmp);
		for (size_t i = 0; i < j.n_fresh; i++) {
			members[i].device = j.fresh[i].id;
			members[i].phase = join_phase(&j, &j.fresh[i], r->phase_count);
		}
		rc = moat_registry_rollout_join(t->reg, r->id, members, j.n_fresh, t->now, t->err);
		if (rc == 0) {
			*out_joined = j.n_fresh;
		}
	}
	if (rc == MOAT_ENOMEM) {
		rc = moat_err_set(t->err, MOAT_ENOMEM, "out of memory");
	}
	free(members);
	free(j.taken);
	free(j.fresh);
	return rc;
}

static int tick_one(const struct moat_rollout_row *r, void *vctx)
{
	struct tick_ctx *t = vctx;
	if (r->state != MOAT_ROLLOUT_RUNNING) {
		return 0;
	}
	size_t joined = 0;
	int rc = join_new_members(t, r, &joined);
	if (rc != 0) {
		return rc;
	}
	if (joined > 0 && t->cb) {
		struct moat_rollout_change ch = {r->id, MOAT_ROLLOUT_WAIT, r->phase, "", joined};
		t->cb(&ch, t->cb_ctx);
	}
	struct moat_rollout_progress *p = malloc(sizeof(*p));
	if (!p) {
		return moat_err_set(t->err, MOAT_ENOMEM, "out of memory");
	}
	rc = moat_rollout_progress(t->reg, r->id, t->now, p, t->err);
	if (rc != 0) {
		free(p);
		return rc;
	}
	/* the soak restarts when a paused or halted rollout runs again */
	int64_t soak_from = r->started_at[r->phase];
	soak_from = r->resumed_at > soak_from ? r->resumed_at : soak_from;
	struct moat_rollout_view v = {
		.phase = r->phase,
		.phase_count = r->phase_count,
		.phase_started_at = soak_from,
		.soak_s = r->soak_s,
		.halt_failure_pct = r->halt_failure_pct,
		.halt_on_events = r->halt_on_events,
		.phases = p->phases,
		.new_signalled = p->new_signalled,
		.new_total = p->new_total,
		.old_signalled = p->old_signalled,
		.old_total = p->old_total,
	};
	enum moat_rollout_decision dec = moat_rollout_decide(&v, t->now);
	char cause[MOAT_ERR_MSG_MAX] = "";
	enum moat_rollout_state to = MOAT_ROLLOUT_RUNNING;
	int phase = r->phase;
	switch (dec) {
	case MOAT_ROLLOUT_WAIT:
		free(p);
		return 0;
	case MOAT_ROLLOUT_ADVANCE:
		phase++;
		break;
	case MOAT_ROLLOUT_COMPLETE:
		to = MOAT_ROLLOUT_COMPLETED;
		break;
	case MOAT_ROLLOUT_HALT_FAILURES: {
		size_t failed = 0, devices = 0, accepted = 0;
		for (int k = 0; k <= r->phase; k++) {
			failed += p->phases[k].by_state[MOAT_RD_REVERTED] +
				  p->phases[k].by_state[MOAT_RD_REFUSED] +
				  p->phases[k].by_state[MOAT_RD_SILENT];
			devices += p->phases[k].devices;
			accepted += p->phases[k].accepted;
		}
		char acc[64] = "";
		if (accepted > 0) {
			snprintf(acc, sizeof(acc), ", %zu of them accepted before", accepted);
		}
		snprintf(cause, sizeof(cause),
			 "failures: %zu of %zu devices reverted, refused or silent%s (threshold "
			 "%d%%)",
			 failed, devices, acc, r->halt_failure_pct);
		to = MOAT_ROLLOUT_HALTED;
		break;
	}
	default:
		snprintf(cause, sizeof(cause),
			 "security events: %zu of %zu devices on %s (%s), %zu of %zu on older "
			 "releases",
			 p->new_signalled, p->new_total, p->release.version, p->new_signal,
			 p->old_signalled, p->old_total);
		to = MOAT_ROLLOUT_HALTED;
		break;
	}
	free(p);
	rc = moat_registry_rollout_move(t->reg, r->id, MOAT_ROLLOUT_RUNNING, r->phase, to, phase,
					cause, t->now, t->err);
	if (rc == MOAT_ESTATE) {
		return 0; /* the operator acted meanwhile */
	}
	if (rc == 0 && t->cb) {
		struct moat_rollout_change ch = {r->id, dec, phase, cause, 0};
		t->cb(&ch, t->cb_ctx);
	}
	return rc;
}

int moat_rollout_tick(struct moat_registry *reg, int64_t now, moat_rollout_change_cb cb, void *ctx,
		      struct moat_err *err)
{
	struct tick_ctx t = {reg, now, cb, ctx, err};
	return moat_registry_rollout_foreach(reg, tick_one, &t, err);
}
