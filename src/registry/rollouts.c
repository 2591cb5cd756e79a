/* rollouts.c: the rollout tables of migration 6: rollouts (one per release at most: its
 * group, rules, state and current phase), rollout_phases (each phase's percentage and when
 * it started), rollout_devices (every device the rollout took, at its creation or when it
 * joined the group later (migration 9), and the phase that took it); a device's security signals
 * are read from migration 7's security_events (moatd's ingest records the plugin's events there).
 * Deciding anything is src/core/rollout.c's and src/server/rollouts.c's; this file stores and reads
 * rows, with bound parameters only. On the statement layer (db.h): the same SQL on SQLite and
 * PostgreSQL.
 */
#include <stdio.h>
#include <string.h>

#include "registry_internal.h"

#define ROLLOUT_COLS                                                                            \
	"SELECT r.id, r.sha256, r.group_name, r.soak_s, r.halt_failure_pct, r.halt_on_events, " \
	"r.rank_key, r.state, r.phase, r.created_at, r.updated_at, r.cause, "                   \
	"(SELECT count(*) FROM rollout_devices d WHERE d.rollout = r.id), r.silent_s, "         \
	"r.resumed_at, r.accepted_at FROM rollouts r "

static int read_phases(struct moat_registry *reg, struct moat_rollout_row *r, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"SELECT phase, percent, COALESCE(started_at, 0) FROM rollout_phases "
			"WHERE rollout = ?1 ORDER BY phase",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "rollout phases");
	}
	rdb_bind_int64(st, 1, r->id);
	int s;
	r->phase_count = 0;
	while ((s = rdb_step(st)) == RDB_ROW && r->phase_count < MOAT_ROLLOUT_PHASES_MAX) {
		r->percent[r->phase_count] = (int)rdb_column_int64(st, 1);
		r->started_at[r->phase_count] = rdb_column_int64(st, 2);
		r->phase_count++;
	}
	rdb_finalize(st);
	if ((s != RDB_DONE && s != RDB_ROW) || r->phase_count == 0 || r->phase >= r->phase_count) {
		return moat_err_set(err, MOAT_EDB, "registry: rollout %lld: bad phases",
				    (long long)r->id);
	}
	return 0;
}

static int row_to_rollout(struct rdb_stmt *st, struct moat_rollout_row *r, struct moat_err *err)
{
	memset(r, 0, sizeof(*r));
	r->id = rdb_column_int64(st, 0);
	rdb_column_copy(st, 1, r->sha256_hex, sizeof(r->sha256_hex));
	rdb_column_copy(st, 2, r->group, sizeof(r->group));
	r->soak_s = rdb_column_int64(st, 3);
	r->halt_failure_pct = (int)rdb_column_int64(st, 4);
	r->halt_on_events = rdb_column_int64(st, 5) != 0;
	rdb_column_copy(st, 6, r->rank_key_hex, sizeof(r->rank_key_hex));
	char state[16];
	rdb_column_copy(st, 7, state, sizeof(state));
	if (moat_rollout_state_parse(state, &r->state) != 0) {
		return moat_err_set(err, MOAT_EDB, "registry: rollouts: bad state");
	}
	r->phase = (int)rdb_column_int64(st, 8);
	r->created_at = rdb_column_int64(st, 9);
	r->updated_at = rdb_column_int64(st, 10);
	rdb_column_copy(st, 11, r->cause, sizeof(r->cause));
	r->device_count = (size_t)rdb_column_int64(st, 12);
	r->silent_s = rdb_column_int64(st, 13);
	r->resumed_at = rdb_column_int64(st, 14);
	r->accepted_at = rdb_column_int64(st, 15);
	return 0;
}

static int exec_bound(struct moat_registry *reg, const char *sql, const char *what,
		      struct moat_err *err, struct rdb_stmt **out)
{
	if (rdb_prepare(reg_db(reg), sql, out) != 0) {
		return reg_db_fail_table(reg, err, what);
	}
	return 0;
}

/* Why the rollout row was refused (a constraint): read after the rollback, since on
 * PostgreSQL the failed insert aborted the transaction. */
static int insert_refused(struct moat_registry *reg, const struct moat_rollout_row *r,
			  struct moat_err *err)
{
	/* the release is unknown (foreign key), has its rollout (unique), or a value is out
	 * of the table's range (a check: the callers validate first, so a bug) */
	struct moat_release rel;
	struct moat_rollout_row other;
	bool found = false;
	struct moat_err e2 = {0};
	if (moat_registry_release_get(reg, r->sha256_hex, &rel, &e2) != 0) {
		return moat_err_set(err, MOAT_ENOENT, "release %.12s... is not published",
				    r->sha256_hex);
	}
	if (moat_registry_rollout_of_release(reg, r->sha256_hex, &other, &found, &e2) != 0 ||
	    found) {
		return moat_err_set(err, MOAT_EEXIST, "release %s %s has a rollout already",
				    rel.device_type, rel.version);
	}
	return moat_err_set(err, MOAT_EINVAL,
			    "rollout of %s %s refused by the registry: soak %llds, halt at %d%%, "
			    "or a phase's percent out of range",
			    rel.device_type, rel.version, (long long)r->soak_s,
			    r->halt_failure_pct);
}

/* *refused: the rollout row broke a constraint (insert_refused says which). */
static int insert_rows(struct moat_registry *reg, struct moat_rollout_row *r,
		       const struct moat_rollout_member *members, size_t count, bool *refused,
		       struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc;
	if ((rc = exec_bound(reg,
			     "INSERT INTO rollouts(sha256, group_name, soak_s, halt_failure_pct, "
			     "halt_on_events, rank_key, state, phase, created_at, updated_at, "
			     "silent_s) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', 0, ?7, ?7, ?8) "
			     "RETURNING id",
			     "insert rollout", err, &st)) != 0) {
		return rc;
	}
	rdb_bind_text(st, 1, r->sha256_hex);
	rdb_bind_text(st, 2, r->group);
	rdb_bind_int64(st, 3, r->soak_s);
	rdb_bind_int64(st, 4, r->halt_failure_pct);
	rdb_bind_int64(st, 5, r->halt_on_events ? 1 : 0);
	rdb_bind_text(st, 6, r->rank_key_hex);
	rdb_bind_int64(st, 7, r->created_at);
	rdb_bind_int64(st, 8, r->silent_s);
	int s = rdb_step(st);
	if (s == RDB_ROW) {
		r->id = rdb_column_int64(st, 0);
	}
	rdb_finalize(st);
	if (rdb_is_constraint(s)) {
		*refused = true;
		return MOAT_EEXIST;
	}
	if (s != RDB_ROW) {
		return reg_db_fail_table(reg, err, "insert rollout");
	}
	if ((rc = exec_bound(reg,
			     "INSERT INTO rollout_phases(rollout, phase, percent, started_at) "
			     "VALUES (?1, ?2, ?3, ?4)",
			     "insert rollout phase", err, &st)) != 0) {
		return rc;
	}
	for (int k = 0; k < r->phase_count && rc == 0; k++) {
		rdb_reset(st);
		rdb_bind_int64(st, 1, r->id);
		rdb_bind_int64(st, 2, k);
		rdb_bind_int64(st, 3, r->percent[k]);
		if (k == 0) {
			rdb_bind_int64(st, 4, r->created_at);
		} else {
			rdb_bind_null(st, 4);
		}
		if (rdb_step(st) != RDB_DONE) {
			rc = reg_db_fail_table(reg, err, "insert rollout phase");
		}
	}
	rdb_finalize(st);
	if (rc != 0) {
		return rc;
	}
	if ((rc = exec_bound(
		     reg, "INSERT INTO rollout_devices(rollout, device, phase) VALUES (?1, ?2, ?3)",
		     "insert rollout device", err, &st)) != 0) {
		return rc;
	}
	for (size_t i = 0; i < count && rc == 0; i++) {
		rdb_reset(st);
		rdb_bind_int64(st, 1, r->id);
		rdb_bind_text(st, 2, members[i].device);
		rdb_bind_int64(st, 3, members[i].phase);
		s = rdb_step(st);
		if (rdb_is_constraint(s)) {
			rc = moat_err_set(err, MOAT_EINVAL, "rollout: device %s twice or unknown",
					  members[i].device);
		} else if (s != RDB_DONE) {
			rc = reg_db_fail_table(reg, err, "insert rollout device");
		}
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_rollout_insert(struct moat_registry *reg, struct moat_rollout_row *r,
				 const struct moat_rollout_member *members, size_t count,
				 struct moat_err *err)
{
	int rc;
	if (r->phase_count < 1 || r->phase_count > MOAT_ROLLOUT_PHASES_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "rollout: 1 to %d phases",
				    MOAT_ROLLOUT_PHASES_MAX);
	}
	if ((rc = moat_registry_begin(reg, err)) != 0) {
		return rc;
	}
	bool refused = false;
	if ((rc = insert_rows(reg, r, members, count, &refused, err)) != 0) {
		moat_registry_rollback(reg);
		return refused ? insert_refused(reg, r, err) : rc;
	}
	return moat_registry_commit(reg, err);
}

static int get_where(struct moat_registry *reg, const char *where, int64_t id, const char *sha,
		     struct moat_rollout_row *out, bool *found, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	char sql[512];
	*found = false;
	/* where is one of this file's two constant conditions, never outside text */
	int n = snprintf(sql, sizeof(sql), "%s%s", ROLLOUT_COLS, where);
	if (n < 0 || (size_t)n >= sizeof(sql)) {
		return moat_err_set(err, MOAT_EDB, "registry: rollout query too long");
	}
	int rc = exec_bound(reg, sql, "rollout lookup", err, &st);
	if (rc != 0) {
		return rc;
	}
	if (sha) {
		rdb_bind_text(st, 1, sha);
	} else {
		rdb_bind_int64(st, 1, id);
	}
	int s = rdb_step(st);
	if (s == RDB_ROW) {
		rc = row_to_rollout(st, out, err);
		*found = rc == 0;
	} else if (s != RDB_DONE) {
		rc = reg_db_fail_table(reg, err, "rollout lookup");
	}
	rdb_finalize(st);
	if (rc == 0 && *found) {
		rc = read_phases(reg, out, err);
	}
	return rc;
}

int moat_registry_rollout_get(struct moat_registry *reg, int64_t id, struct moat_rollout_row *out,
			      struct moat_err *err)
{
	bool found = false;
	int rc = get_where(reg, "WHERE r.id = ?1", id, NULL, out, &found, err);
	if (rc == 0 && !found) {
		rc = moat_err_set(err, MOAT_ENOENT, "no rollout %lld", (long long)id);
	}
	return rc;
}

int moat_registry_rollout_of_release(struct moat_registry *reg, const char *sha256_hex,
				     struct moat_rollout_row *out, bool *found,
				     struct moat_err *err)
{
	return get_where(reg, "WHERE r.sha256 = ?1", 0, sha256_hex, out, found, err);
}

int moat_registry_rollout_foreach(struct moat_registry *reg, moat_rollout_cb cb, void *ctx,
				  struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int64_t ids[256];
	size_t n = 0;
	int rc = exec_bound(reg, "SELECT id FROM rollouts ORDER BY id DESC LIMIT 256",
			    "list rollouts", err, &st);
	if (rc != 0) {
		return rc;
	}
	int s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		ids[n++] = rdb_column_int64(st, 0);
	}
	rdb_finalize(st);
	if (s != RDB_DONE) {
		return reg_db_fail_table(reg, err, "list rollouts");
	}
	/* oldest first among the newest 256 */
	for (size_t i = n; i-- > 0 && rc == 0;) {
		struct moat_rollout_row r;
		if ((rc = moat_registry_rollout_get(reg, ids[i], &r, err)) == 0) {
			rc = cb(&r, ctx);
		}
	}
	return rc;
}

/* The move of moat_registry_rollout_move inside the caller's transaction. */
static int move_rows(struct moat_registry *reg, int64_t id, enum moat_rollout_state from_state,
		     int from_phase, enum moat_rollout_state state, int phase, const char *cause,
		     int64_t now, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc;
	bool runs_again = from_state != MOAT_ROLLOUT_RUNNING && state == MOAT_ROLLOUT_RUNNING;
	if ((rc = exec_bound(
		     reg,
		     "UPDATE rollouts SET state = ?4, phase = ?5, cause = ?6, "
		     "updated_at = ?7, resumed_at = CASE WHEN ?8 = 1 THEN ?7 ELSE resumed_at "
		     "END WHERE id = ?1 AND state = ?2 AND phase = ?3",
		     "update rollout", err, &st)) != 0) {
		return rc;
	}
	rdb_bind_int64(st, 1, id);
	rdb_bind_text(st, 2, moat_rollout_state_name(from_state));
	rdb_bind_int64(st, 3, from_phase);
	rdb_bind_text(st, 4, moat_rollout_state_name(state));
	rdb_bind_int64(st, 5, phase);
	rdb_bind_text(st, 6, cause ? cause : "");
	rdb_bind_int64(st, 7, now);
	rdb_bind_int64(st, 8, runs_again ? 1 : 0);
	int s = rdb_step(st);
	int64_t changed = s == RDB_DONE ? rdb_changes(st) : 0;
	rdb_finalize(st);
	if (s != RDB_DONE) {
		return reg_db_fail_table(reg, err, "update rollout");
	}
	if (changed == 0) {
		return moat_err_set(err, MOAT_ESTATE, "rollout %lld changed meanwhile",
				    (long long)id);
	}
	/* a new phase starts now: its devices are offered from now on */
	if (phase != from_phase) {
		if ((rc = exec_bound(reg,
				     "UPDATE rollout_phases SET started_at = ?3 WHERE rollout = ?1 "
				     "AND phase = ?2",
				     "update rollout phase", err, &st)) != 0) {
			return rc;
		}
		rdb_bind_int64(st, 1, id);
		rdb_bind_int64(st, 2, phase);
		rdb_bind_int64(st, 3, now);
		s = rdb_step(st);
		rdb_finalize(st);
		if (s != RDB_DONE) {
			return reg_db_fail_table(reg, err, "update rollout phase");
		}
	}
	return 0;
}

int moat_registry_rollout_move(struct moat_registry *reg, int64_t id,
			       enum moat_rollout_state from_state, int from_phase,
			       enum moat_rollout_state state, int phase, const char *cause,
			       int64_t now, struct moat_err *err)
{
	int rc;
	if ((rc = moat_registry_begin(reg, err)) != 0) {
		return rc;
	}
	if ((rc = move_rows(reg, id, from_state, from_phase, state, phase, cause, now, err)) != 0) {
		moat_registry_rollback(reg);
		return rc;
	}
	return moat_registry_commit(reg, err);
}

static int accept_rows(struct moat_registry *reg, int64_t id, const char *const *failed,
		       size_t count, int64_t now, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc = exec_bound(reg, "UPDATE rollouts SET accepted_at = ?2 WHERE id = ?1",
			    "accept rollout failures", err, &st);
	if (rc != 0) {
		return rc;
	}
	rdb_bind_int64(st, 1, id);
	rdb_bind_int64(st, 2, now);
	int s = rdb_step(st);
	rdb_finalize(st);
	if (s != RDB_DONE) {
		return reg_db_fail_table(reg, err, "accept rollout failures");
	}
	if ((rc = exec_bound(reg,
			     "UPDATE rollout_devices SET accepted = 1 WHERE rollout = ?1 AND "
			     "device = ?2",
			     "accept rollout failures", err, &st)) != 0) {
		return rc;
	}
	for (size_t i = 0; i < count && rc == 0; i++) {
		rdb_reset(st);
		rdb_bind_int64(st, 1, id);
		rdb_bind_text(st, 2, failed[i]);
		if (rdb_step(st) != RDB_DONE) {
			rc = reg_db_fail_table(reg, err, "accept rollout failures");
		}
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_rollout_resume_accepting(struct moat_registry *reg, int64_t id,
					   enum moat_rollout_state from_state, int phase,
					   const char *const *failed, size_t count, int64_t now,
					   struct moat_err *err)
{
	int rc;
	if ((rc = moat_registry_begin(reg, err)) != 0) {
		return rc;
	}
	if ((rc = move_rows(reg, id, from_state, phase, MOAT_ROLLOUT_RUNNING, phase, "", now,
			    err)) != 0 ||
	    (rc = accept_rows(reg, id, failed, count, now, err)) != 0) {
		moat_registry_rollback(reg);
		return rc;
	}
	return moat_registry_commit(reg, err);
}

int moat_registry_rollout_join(struct moat_registry *reg, int64_t id,
			       const struct moat_rollout_member *members, size_t count, int64_t now,
			       struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc;
	if (count == 0) {
		return 0;
	}
	if ((rc = moat_registry_begin(reg, err)) != 0) {
		return rc;
	}
	if ((rc = exec_bound(reg,
			     "INSERT OR IGNORE INTO rollout_devices(rollout, device, phase, "
			     "joined_at) VALUES (?1, ?2, ?3, ?4)",
			     "rollout join", err, &st)) != 0) {
		moat_registry_rollback(reg);
		return rc;
	}
	for (size_t i = 0; i < count && rc == 0; i++) {
		rdb_reset(st);
		rdb_bind_int64(st, 1, id);
		rdb_bind_text(st, 2, members[i].device);
		rdb_bind_int64(st, 3, members[i].phase);
		rdb_bind_int64(st, 4, now);
		if (rdb_step(st) != RDB_DONE) {
			rc = reg_db_fail_table(reg, err, "rollout join");
		}
	}
	rdb_finalize(st);
	if (rc != 0) {
		moat_registry_rollback(reg);
		return rc;
	}
	return moat_registry_commit(reg, err);
}

int moat_registry_rollout_members(struct moat_registry *reg, int64_t id,
				  int (*cb)(const char *device, int phase, void *ctx), void *ctx,
				  struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc = exec_bound(reg,
			    "SELECT device, phase FROM rollout_devices WHERE rollout = ?1 "
			    "ORDER BY device",
			    "rollout members", err, &st);
	if (rc != 0) {
		return rc;
	}
	rdb_bind_int64(st, 1, id);
	int s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		char dev[MOAT_ID_BUF_LEN];
		rdb_column_copy(st, 0, dev, sizeof(dev));
		if ((rc = cb(dev, (int)rdb_column_int64(st, 1), ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != RDB_DONE) {
		rc = reg_db_fail_table(reg, err, "rollout members");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_rollout_member(struct moat_registry *reg, int64_t id, const char *device,
				 int *out_phase, bool *found, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	*found = false;
	*out_phase = -1;
	int rc = exec_bound(reg,
			    "SELECT phase FROM rollout_devices WHERE rollout = ?1 AND device = ?2",
			    "rollout lookup", err, &st);
	if (rc != 0) {
		return rc;
	}
	rdb_bind_int64(st, 1, id);
	rdb_bind_text(st, 2, device);
	int s = rdb_step(st);
	if (s == RDB_ROW) {
		*found = true;
		*out_phase = (int)rdb_column_int64(st, 0);
	} else if (s != RDB_DONE) {
		rc = reg_db_fail_table(reg, err, "rollout lookup");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_rollout_devices(struct moat_registry *reg, const struct moat_rollout_row *r,
				  const char *version, moat_rollout_device_cb cb, void *ctx,
				  struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc = exec_bound(
		reg,
		/* offered since its phase started, or since it joined when later; signals
		 * count from then and from the last acceptance */
		"SELECT d.device, d.phase, "
		/* its newest stage other than "checked" (a device that reverted, or confirmed,
		 * checks again at its next start and reports "checked" for the same version:
		 * that must not undo its outcome), else "checked" */
		"(SELECT e.stage FROM update_events e WHERE e.device = d.device AND "
		"e.version = ?2 AND e.at >= MAX(COALESCE(p.started_at, r.created_at), "
		"COALESCE(d.joined_at, 0)) ORDER BY e.stage = 'checked', e.seq DESC LIMIT 1), "
		"COALESCE((SELECT f.version FROM device_firmware f WHERE f.device = d.device), '') "
		"= ?2, "
		/* what the newest event after that stage's event says the device runs */
		"(SELECT CASE WHEN l.running = ?2 THEN 1 ELSE -1 END FROM update_events l "
		"WHERE l.device = d.device AND l.running <> '' AND l.seq > "
		"(SELECT e.seq FROM update_events e WHERE e.device = d.device AND "
		"e.version = ?2 AND e.at >= MAX(COALESCE(p.started_at, r.created_at), "
		"COALESCE(d.joined_at, 0)) ORDER BY e.stage = 'checked', e.seq DESC LIMIT 1) "
		"ORDER BY l.seq DESC LIMIT 1), "
		/* its newest signal, an anomaly with its rule */
		"(SELECT CASE WHEN s.kind = 'anomaly' THEN 'anomaly ' || s.rule ELSE s.kind END "
		"FROM security_events s WHERE s.identity = d.device AND "
		"s.kind IN " MOAT_ROLLOUT_SIGNAL_KINDS_SQL " AND "
		"s.at_ms >= 1000 * MAX(COALESCE(p.started_at, r.created_at), "
		"COALESCE(d.joined_at, 0), r.accepted_at) ORDER BY s.seq DESC LIMIT 1), "
		"d.accepted, COALESCE(d.joined_at, 0) "
		"FROM rollout_devices d JOIN rollouts r ON r.id = d.rollout "
		"LEFT JOIN rollout_phases p ON p.rollout = d.rollout AND p.phase = d.phase "
		"WHERE d.rollout = ?1 ORDER BY d.phase, d.device",
		"rollout devices", err, &st);
	if (rc != 0) {
		return rc;
	}
	rdb_bind_int64(st, 1, r->id);
	rdb_bind_text(st, 2, version);
	int s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		char id[MOAT_ID_BUF_LEN];
		char stage[32];
		char signal[MOAT_EVENT_KIND_MAX_LEN + MOAT_EVENT_RULE_MAX_LEN + 2];
		rdb_column_copy(st, 0, id, sizeof(id));
		bool signalled = !rdb_column_is_null(st, 5);
		rdb_column_copy(st, 5, signal, sizeof(signal));
		bool has_stage = !rdb_column_is_null(st, 2);
		rdb_column_copy(st, 2, stage, sizeof(stage));
		struct moat_rollout_device dev = {
			.device = id,
			.phase = (int)rdb_column_int64(st, 1),
			.stage = has_stage ? stage : NULL,
			.running_new = rdb_column_int64(st, 3) != 0,
			.later_running = (int)rdb_column_int64(st, 4),
			.signalled = signalled,
			.signal = signalled ? signal : NULL,
			.accepted = rdb_column_int64(st, 6) != 0,
			.joined_at = rdb_column_int64(st, 7),
		};
		if ((rc = cb(&dev, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != RDB_DONE) {
		rc = reg_db_fail_table(reg, err, "rollout devices");
	}
	rdb_finalize(st);
	return rc;
}
