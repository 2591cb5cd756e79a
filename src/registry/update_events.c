/* update_events.c: the update-event tables of migration 2: update_events (what each
 * device reported of its updates, the last MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE per device)
 * and device_firmware (the version each device last reported running). Recording an event
 * inserts it, prunes the device's older events and updates device_firmware in one
 * transaction. The stage names the stage column
 * holds are the update-event schema's (moat/update_schema.h, src/core/update_event.c).
 */
#include <stdio.h>
#include <string.h>

#include "registry_internal.h"

static int insert_event(struct moat_registry *reg, const struct moat_update_event *ev,
			struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(
		    reg->db,
		    "INSERT INTO update_events(device, at, stage, version, running, reason)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
		    -1, &st, NULL) != SQLITE_OK) {
		return reg_fail_table(reg, err, "record update event");
	}
	sqlite3_bind_text(st, 1, ev->device, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, ev->at);
	sqlite3_bind_text(st, 3, moat_update_stage_name(ev->stage), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, ev->version, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, ev->running, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, ev->reason, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_CONSTRAINT) {
		rc = moat_err_set(err, MOAT_ENOENT, "update event: unknown device %s", ev->device);
	} else if (s != SQLITE_DONE) {
		rc = reg_fail_table(reg, err, "record update event");
	}
	sqlite3_finalize(st);
	return rc;
}

static int prune_events(struct moat_registry *reg, const char *device, struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db,
			       "DELETE FROM update_events WHERE device = ?1 AND seq <= "
			       "(SELECT seq FROM update_events WHERE device = ?1 "
			       "ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail_table(reg, err, "prune update events");
	}
	sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0
						 : reg_fail_table(reg, err, "prune update events");
	sqlite3_finalize(st);
	return rc;
}

static int set_running(struct moat_registry *reg, const struct moat_update_event *ev,
		       struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db,
			       "INSERT INTO device_firmware(device, version, reported_at) "
			       "VALUES (?1, ?2, ?3) ON CONFLICT(device) DO UPDATE SET "
			       "version = excluded.version, reported_at = excluded.reported_at",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail_table(reg, err, "record running version");
	}
	sqlite3_bind_text(st, 1, ev->device, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, ev->running, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, ev->at);
	int rc = sqlite3_step(st) == SQLITE_DONE
			 ? 0
			 : reg_fail_table(reg, err, "record running version");
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_update_event_record(struct moat_registry *reg, const struct moat_update_event *ev,
				      struct moat_err *err)
{
	int rc;
	/* inside the caller's transaction (moatd's ingest batches) or in its own */
	bool own_tx = reg->tx_depth == 0;
	if (own_tx && (rc = moat_registry_begin(reg, err)) != 0) {
		return rc;
	}
	if ((rc = insert_event(reg, ev, err)) != 0 ||
	    (rc = prune_events(reg, ev->device, err)) != 0 ||
	    (ev->running[0] && (rc = set_running(reg, ev, err)) != 0)) {
		if (own_tx) {
			moat_registry_rollback(reg);
		}
		return rc;
	}
	return own_tx ? moat_registry_commit(reg, err) : 0;
}

int moat_registry_running_version(struct moat_registry *reg, const char *device_id,
				  char out[MOAT_FW_VERSION_MAX_LEN + 1], struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	out[0] = '\0';
	if (sqlite3_prepare_v2(reg->db, "SELECT version FROM device_firmware WHERE device = ?1", -1,
			       &st, NULL) != SQLITE_OK) {
		return reg_fail_table(reg, err, "running version");
	}
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	int rc = 0;
	if (s == SQLITE_ROW) {
		reg_column_text(st, 0, out, MOAT_FW_VERSION_MAX_LEN + 1);
	} else if (s != SQLITE_DONE) {
		rc = reg_fail_table(reg, err, "running version");
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_update_event_foreach(struct moat_registry *reg, const char *device_id, int limit,
				       moat_update_event_cb cb, void *ctx, struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(
		    reg->db,
		    "SELECT device, at, stage, version, running, reason FROM update_events"
		    " WHERE device = ?1 ORDER BY seq DESC LIMIT ?2",
		    -1, &st, NULL) != SQLITE_OK) {
		return reg_fail_table(reg, err, "list update events");
	}
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, limit);
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		struct moat_update_event ev;
		memset(&ev, 0, sizeof(ev));
		reg_column_text(st, 0, ev.device, sizeof(ev.device));
		ev.at = sqlite3_column_int64(st, 1);
		const unsigned char *stage = sqlite3_column_text(st, 2);
		if (moat_update_stage_parse(stage ? (const char *)stage : "", &ev.stage, err) !=
		    0) {
			rc = moat_err_set(err, MOAT_EDB, "registry: update_events: bad stage");
			goto out;
		}
		reg_column_text(st, 3, ev.version, sizeof(ev.version));
		reg_column_text(st, 4, ev.running, sizeof(ev.running));
		reg_column_text(st, 5, ev.reason, sizeof(ev.reason));
		if ((rc = cb(&ev, ctx)) != 0) {
			goto out;
		}
	}
	if (s != SQLITE_DONE) {
		rc = reg_fail_table(reg, err, "list update events");
	}
out:
	sqlite3_finalize(st);
	return rc;
}
