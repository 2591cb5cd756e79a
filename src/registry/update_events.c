/* update_events.c: the update-event tables of migration 2: update_events (what each
 * device reported of its updates, the last MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE per device)
 * and device_firmware (the version each device last reported running). Recording an event
 * inserts it (a "checked" that repeats the device's newest event, same version, running
 * and reason, only moves that event's time: a device that checks often must not push its
 * outcomes, installed, confirmed, reverted, out of the kept events, which rollouts and the
 * audit read), prunes the device's older events and updates device_firmware, all or
 * nothing: in its own transaction, or in a savepoint of the caller's (moatd's ingest
 * batches), so a refused event leaves the batch as it was (on PostgreSQL a failed statement
 * would otherwise abort the caller's whole transaction). The stage names the stage column
 * holds are the update-event schema's (moat/update_schema.h, src/core/update_event.c).
 * On the statement layer (db.h): the same SQL on SQLite and PostgreSQL.
 */
#include <stdio.h>
#include <string.h>

#include "registry_internal.h"

/* ?1 device, ?2 at, ?3 stage, ?4 version, ?5 running, ?6 reason: both statements below. */
static void bind_event(struct rdb_stmt *st, const struct moat_update_event *ev)
{
	rdb_bind_text(st, 1, ev->device);
	rdb_bind_int64(st, 2, ev->at);
	rdb_bind_text(st, 3, moat_update_stage_name(ev->stage));
	rdb_bind_text(st, 4, ev->version);
	rdb_bind_text(st, 5, ev->running);
	rdb_bind_text(st, 6, ev->reason);
}

/* A "checked" the same as the device's newest event: moves that event's time. *folded says
 * whether it did. */
static int fold_check(struct moat_registry *reg, const struct moat_update_event *ev, bool *folded,
		      struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	*folded = false;
	if (ev->stage != MOAT_UPD_CHECKED) {
		return 0;
	}
	if (rdb_prepare(
		    reg_db(reg),
		    "UPDATE update_events SET at = ?2 WHERE seq = "
		    "(SELECT seq FROM update_events WHERE device = ?1 ORDER BY seq DESC LIMIT 1) "
		    "AND stage = ?3 AND version = ?4 AND running = ?5 AND reason = ?6",
		    &st) != 0) {
		return reg_db_fail_table(reg, err, "record update event");
	}
	bind_event(st, ev);
	int rc = 0;
	if (rdb_step(st) != RDB_DONE) {
		rc = reg_db_fail_table(reg, err, "record update event");
	} else {
		*folded = rdb_changes(st) > 0;
	}
	rdb_finalize(st);
	return rc;
}

static int insert_event(struct moat_registry *reg, const struct moat_update_event *ev,
			struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc = 0;
	if (rdb_prepare(reg_db(reg),
			"INSERT INTO update_events(device, at, stage, version, running, reason)"
			" VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "record update event");
	}
	bind_event(st, ev);
	int s = rdb_step(st);
	if (rdb_is_constraint(s)) {
		rc = moat_err_set(err, MOAT_ENOENT, "update event: unknown device %s", ev->device);
	} else if (s != RDB_DONE) {
		rc = reg_db_fail_table(reg, err, "record update event");
	}
	rdb_finalize(st);
	return rc;
}

static int prune_events(struct moat_registry *reg, const char *device, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"DELETE FROM update_events WHERE device = ?1 AND seq <= "
			"(SELECT seq FROM update_events WHERE device = ?1 "
			"ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "prune update events");
	}
	rdb_bind_text(st, 1, device);
	rdb_bind_int64(st, 2, MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE);
	int rc = rdb_step(st) == RDB_DONE ? 0 : reg_db_fail_table(reg, err, "prune update events");
	rdb_finalize(st);
	return rc;
}

static int set_running(struct moat_registry *reg, const struct moat_update_event *ev,
		       struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"INSERT INTO device_firmware(device, version, reported_at) "
			"VALUES (?1, ?2, ?3) ON CONFLICT(device) DO UPDATE SET "
			"version = excluded.version, reported_at = excluded.reported_at",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "record running version");
	}
	rdb_bind_text(st, 1, ev->device);
	rdb_bind_text(st, 2, ev->running);
	rdb_bind_int64(st, 3, ev->at);
	int rc = rdb_step(st) == RDB_DONE ? 0
					  : reg_db_fail_table(reg, err, "record running version");
	rdb_finalize(st);
	return rc;
}

int moat_registry_update_event_record(struct moat_registry *reg, const struct moat_update_event *ev,
				      struct moat_err *err)
{
	int rc;
	/* inside the caller's transaction (moatd's ingest batches) in a savepoint, else in its
	 * own transaction */
	bool own_tx = reg->tx_depth == 0;
	if (own_tx) {
		if ((rc = moat_registry_begin(reg, err)) != 0) {
			return rc;
		}
	} else if (rdb_savepoint(reg_db(reg), "update_event") != 0) {
		return reg_db_fail_table(reg, err, "record update event");
	}
	bool folded = false;
	if ((rc = fold_check(reg, ev, &folded, err)) != 0 ||
	    (!folded && (rc = insert_event(reg, ev, err)) != 0) ||
	    (!folded && (rc = prune_events(reg, ev->device, err)) != 0) ||
	    (ev->running[0] && (rc = set_running(reg, ev, err)) != 0)) {
		if (own_tx) {
			moat_registry_rollback(reg);
		} else {
			rdb_rollback_to(reg_db(reg), "update_event");
		}
		return rc;
	}
	if (own_tx) {
		return moat_registry_commit(reg, err);
	}
	return rdb_release(reg_db(reg), "update_event") == 0
		       ? 0
		       : reg_db_fail_table(reg, err, "record update event");
}

int moat_registry_running_version(struct moat_registry *reg, const char *device_id,
				  char out[MOAT_FW_VERSION_MAX_LEN + 1], struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	out[0] = '\0';
	if (rdb_prepare(reg_db(reg), "SELECT version FROM device_firmware WHERE device = ?1",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "running version");
	}
	rdb_bind_text(st, 1, device_id);
	int s = rdb_step(st);
	int rc = 0;
	if (s == RDB_ROW) {
		rdb_column_copy(st, 0, out, MOAT_FW_VERSION_MAX_LEN + 1);
	} else if (s != RDB_DONE) {
		rc = reg_db_fail_table(reg, err, "running version");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_update_event_foreach(struct moat_registry *reg, const char *device_id, int limit,
				       moat_update_event_cb cb, void *ctx, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc = 0;
	if (rdb_prepare(reg_db(reg),
			"SELECT device, at, stage, version, running, reason FROM update_events"
			" WHERE device = ?1 ORDER BY seq DESC LIMIT ?2",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "list update events");
	}
	rdb_bind_text(st, 1, device_id);
	rdb_bind_int64(st, 2, limit);
	int s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		struct moat_update_event ev;
		memset(&ev, 0, sizeof(ev));
		rdb_column_copy(st, 0, ev.device, sizeof(ev.device));
		ev.at = rdb_column_int64(st, 1);
		const char *stage = rdb_column_text(st, 2);
		if (moat_update_stage_parse(stage ? stage : "", &ev.stage, err) != 0) {
			rc = moat_err_set(err, MOAT_EDB, "registry: update_events: bad stage");
			goto out;
		}
		rdb_column_copy(st, 3, ev.version, sizeof(ev.version));
		rdb_column_copy(st, 4, ev.running, sizeof(ev.running));
		rdb_column_copy(st, 5, ev.reason, sizeof(ev.reason));
		if ((rc = cb(&ev, ctx)) != 0) {
			goto out;
		}
	}
	if (s != RDB_DONE) {
		rc = reg_db_fail_table(reg, err, "list update events");
	}
out:
	rdb_finalize(st);
	return rc;
}
