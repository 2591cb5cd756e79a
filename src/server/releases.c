/* releases.c: the release store in the registry (tables releases, release_devices,
 * update_events, device_firmware of migration 2): insert and look up releases, decide
 * whether a rollout includes a device, pick the newest release by semantic version, and
 * record and list devices' update events. Statements run on moat_registry_db(); writes of
 * more than one row run inside a registry transaction.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "moat/server.h"

#define RELEASE_COLS                                                                           \
	"SELECT r.sha256, r.device_type, r.version, r.security_version, r.size, r.issued_at, " \
	"r.expires_at, r.published_at, r.rollout_percent, "                                    \
	"(SELECT count(*) FROM release_devices d WHERE d.sha256 = r.sha256) FROM releases r "

static int db_fail(struct moat_registry *reg, struct moat_err *err, const char *what)
{
	return moat_err_set(err, MOAT_EDB, "registry: %s: %s", what,
			    sqlite3_errmsg(moat_registry_db(reg)));
}

static void copy_text(sqlite3_stmt *st, int col, char *buf, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	snprintf(buf, size, "%s", t ? (const char *)t : "");
}

static void row_to_release(sqlite3_stmt *st, struct moat_release *r)
{
	memset(r, 0, sizeof(*r));
	copy_text(st, 0, r->sha256_hex, sizeof(r->sha256_hex));
	copy_text(st, 1, r->device_type, sizeof(r->device_type));
	copy_text(st, 2, r->version, sizeof(r->version));
	r->security_version = sqlite3_column_int64(st, 3);
	r->size = (uint64_t)sqlite3_column_int64(st, 4);
	r->issued_at = sqlite3_column_int64(st, 5);
	r->expires_at = sqlite3_column_int64(st, 6);
	r->published_at = sqlite3_column_int64(st, 7);
	r->rollout_percent = sqlite3_column_int(st, 8);
	r->device_count = (size_t)sqlite3_column_int64(st, 9);
}

int moat_release_insert(struct moat_registry *reg, const struct moat_release *r,
			char *const *devices, size_t device_count, struct moat_err *err)
{
	sqlite3 *db = moat_registry_db(reg);
	sqlite3_stmt *st = NULL;
	int rc;
	if (r->rollout_percent < -1 || r->rollout_percent > MOAT_ROLLOUT_PERCENT_MAX ||
	    (r->rollout_percent == -1) != (device_count > 0) ||
	    device_count > MOAT_ROLLOUT_DEVICES_MAX || r->size > (uint64_t)INT64_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "release: invalid rollout or size");
	}
	if ((rc = moat_registry_begin(reg, err)) != 0) {
		return rc;
	}
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO releases(sha256, device_type, version, security_version,"
			       " size, issued_at, expires_at, published_at, rollout_percent)"
			       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = db_fail(reg, err, "insert release");
		goto out;
	}
	sqlite3_bind_text(st, 1, r->sha256_hex, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->device_type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->version, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, r->security_version);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)r->size);
	sqlite3_bind_int64(st, 6, r->issued_at);
	sqlite3_bind_int64(st, 7, r->expires_at);
	sqlite3_bind_int64(st, 8, r->published_at);
	sqlite3_bind_int(st, 9, r->rollout_percent);
	int s = sqlite3_step(st);
	if (s == SQLITE_CONSTRAINT) {
		rc = moat_err_set(err, MOAT_EEXIST,
				  "release %s %s (sha256 %.12s...) already published",
				  r->device_type, r->version, r->sha256_hex);
		goto out;
	}
	if (s != SQLITE_DONE) {
		rc = db_fail(reg, err, "insert release");
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(db, "INSERT INTO release_devices(sha256, device) VALUES (?1, ?2)",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = db_fail(reg, err, "insert release device");
		goto out;
	}
	for (size_t i = 0; i < device_count; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, r->sha256_hex, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, devices[i], -1, SQLITE_STATIC);
		s = sqlite3_step(st);
		if (s == SQLITE_CONSTRAINT) {
			rc = moat_err_set(err, MOAT_EINVAL,
					  "--devices: %s listed twice or not registered",
					  devices[i]);
			goto out;
		}
		if (s != SQLITE_DONE) {
			rc = db_fail(reg, err, "insert release device");
			goto out;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	rc = moat_registry_commit(reg, err);
	return rc;
out:
	sqlite3_finalize(st);
	moat_registry_rollback(reg);
	return rc;
}

int moat_release_get(struct moat_registry *reg, const char *sha256_hex, struct moat_release *out,
		     struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;
	memset(out, 0, sizeof(*out));
	if (sqlite3_prepare_v2(moat_registry_db(reg), RELEASE_COLS "WHERE r.sha256 = ?1", -1, &st,
			       NULL) != SQLITE_OK) {
		return db_fail(reg, err, "release lookup");
	}
	sqlite3_bind_text(st, 1, sha256_hex, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		row_to_release(st, out);
		rc = 0;
	} else if (s == SQLITE_DONE) {
		rc = moat_err_set(err, MOAT_ENOENT, "no release with sha256 %.64s", sha256_hex);
	} else {
		rc = db_fail(reg, err, "release lookup");
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_release_foreach(struct moat_registry *reg, const char *device_type, moat_release_cb cb,
			 void *ctx, struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(moat_registry_db(reg),
			       RELEASE_COLS "WHERE ?1 IS NULL OR r.device_type = ?1 "
					    "ORDER BY r.device_type, r.published_at, r.version",
			       -1, &st, NULL) != SQLITE_OK) {
		return db_fail(reg, err, "list releases");
	}
	if (device_type) {
		sqlite3_bind_text(st, 1, device_type, -1, SQLITE_STATIC);
	}
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		struct moat_release r;
		row_to_release(st, &r);
		if ((rc = cb(&r, ctx)) != 0) {
			goto out;
		}
	}
	if (s != SQLITE_DONE) {
		rc = db_fail(reg, err, "list releases");
	}
out:
	sqlite3_finalize(st);
	return rc;
}

int moat_release_includes(struct moat_registry *reg, const struct moat_release *r,
			  const char *device_id, bool *out, struct moat_err *err)
{
	*out = false;
	if (r->rollout_percent >= 0) {
		uint8_t digest[MOAT_SHA256_BYTES];
		if (moat_hex_decode(r->sha256_hex, digest, sizeof(digest)) != 0) {
			return moat_err_set(err, MOAT_EDB, "registry: release %.64s: bad sha256",
					    r->sha256_hex);
		}
		*out = moat_rollout_bucket(digest, device_id) < (unsigned)r->rollout_percent;
		return 0;
	}
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(moat_registry_db(reg),
			       "SELECT 1 FROM release_devices WHERE sha256 = ?1 AND device = ?2",
			       -1, &st, NULL) != SQLITE_OK) {
		return db_fail(reg, err, "rollout lookup");
	}
	sqlite3_bind_text(st, 1, r->sha256_hex, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, device_id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	int rc = 0;
	if (s == SQLITE_ROW) {
		*out = true;
	} else if (s != SQLITE_DONE) {
		rc = db_fail(reg, err, "rollout lookup");
	}
	sqlite3_finalize(st);
	return rc;
}

struct newest_ctx {
	struct moat_registry *reg;
	const char *device_id;
	struct moat_release *best;
	bool found;
	struct moat_err *err;
};

static int newest_cb(const struct moat_release *r, void *vctx)
{
	struct newest_ctx *c = vctx;
	int rc;
	if (c->device_id) {
		bool inc = false;
		if ((rc = moat_release_includes(c->reg, r, c->device_id, &inc, c->err)) != 0) {
			return rc;
		}
		if (!inc) {
			return 0;
		}
	}
	if (c->found) {
		int cmp = 0;
		if ((rc = moat_semver_compare(r->version, c->best->version, &cmp, c->err)) != 0) {
			return rc;
		}
		if (cmp <= 0) {
			return 0;
		}
	}
	*c->best = *r;
	c->found = true;
	return 0;
}

int moat_release_newest(struct moat_registry *reg, const char *device_type, const char *device_id,
			struct moat_release *out, bool *out_found, struct moat_err *err)
{
	struct newest_ctx c = {reg, device_id, out, false, err};
	memset(out, 0, sizeof(*out));
	*out_found = false;
	int rc = moat_release_foreach(reg, device_type, newest_cb, &c, err);
	if (rc != 0) {
		memset(out, 0, sizeof(*out));
		return rc;
	}
	*out_found = c.found;
	return 0;
}

int moat_update_event_record(struct moat_registry *reg, const struct moat_update_event *ev,
			     struct moat_err *err)
{
	sqlite3 *db = moat_registry_db(reg);
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = moat_registry_begin(reg, err)) != 0) {
		return rc;
	}
	if (sqlite3_prepare_v2(
		    db,
		    "INSERT INTO update_events(device, at, stage, version, running, reason)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
		    -1, &st, NULL) != SQLITE_OK) {
		rc = db_fail(reg, err, "record update event");
		goto out;
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
		goto out;
	}
	if (s != SQLITE_DONE) {
		rc = db_fail(reg, err, "record update event");
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(db,
			       "DELETE FROM update_events WHERE device = ?1 AND seq <= "
			       "(SELECT seq FROM update_events WHERE device = ?1 "
			       "ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = db_fail(reg, err, "prune update events");
		goto out;
	}
	sqlite3_bind_text(st, 1, ev->device, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = db_fail(reg, err, "prune update events");
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (ev->running[0]) {
		if (sqlite3_prepare_v2(
			    db,
			    "INSERT INTO device_firmware(device, version, reported_at) "
			    "VALUES (?1, ?2, ?3) ON CONFLICT(device) DO UPDATE SET "
			    "version = excluded.version, reported_at = excluded.reported_at",
			    -1, &st, NULL) != SQLITE_OK) {
			rc = db_fail(reg, err, "record running version");
			goto out;
		}
		sqlite3_bind_text(st, 1, ev->device, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, ev->running, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, ev->at);
		if (sqlite3_step(st) != SQLITE_DONE) {
			rc = db_fail(reg, err, "record running version");
			goto out;
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	return moat_registry_commit(reg, err);
out:
	sqlite3_finalize(st);
	moat_registry_rollback(reg);
	return rc;
}

int moat_device_running_version(struct moat_registry *reg, const char *device_id,
				char out[MOAT_FW_VERSION_MAX_LEN + 1], struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	out[0] = '\0';
	if (sqlite3_prepare_v2(moat_registry_db(reg),
			       "SELECT version FROM device_firmware WHERE device = ?1", -1, &st,
			       NULL) != SQLITE_OK) {
		return db_fail(reg, err, "running version");
	}
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	int rc = 0;
	if (s == SQLITE_ROW) {
		copy_text(st, 0, out, MOAT_FW_VERSION_MAX_LEN + 1);
	} else if (s != SQLITE_DONE) {
		rc = db_fail(reg, err, "running version");
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_update_event_foreach(struct moat_registry *reg, const char *device_id, int limit,
			      moat_update_event_cb cb, void *ctx, struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(
		    moat_registry_db(reg),
		    "SELECT device, at, stage, version, running, reason FROM update_events"
		    " WHERE device = ?1 ORDER BY seq DESC LIMIT ?2",
		    -1, &st, NULL) != SQLITE_OK) {
		return db_fail(reg, err, "list update events");
	}
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, limit);
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		struct moat_update_event ev;
		memset(&ev, 0, sizeof(ev));
		copy_text(st, 0, ev.device, sizeof(ev.device));
		ev.at = sqlite3_column_int64(st, 1);
		const unsigned char *stage = sqlite3_column_text(st, 2);
		if (moat_update_stage_parse(stage ? (const char *)stage : "", &ev.stage, err) !=
		    0) {
			rc = moat_err_set(err, MOAT_EDB, "registry: update_events: bad stage");
			goto out;
		}
		copy_text(st, 3, ev.version, sizeof(ev.version));
		copy_text(st, 4, ev.running, sizeof(ev.running));
		copy_text(st, 5, ev.reason, sizeof(ev.reason));
		if ((rc = cb(&ev, ctx)) != 0) {
			goto out;
		}
	}
	if (s != SQLITE_DONE) {
		rc = db_fail(reg, err, "list update events");
	}
out:
	sqlite3_finalize(st);
	return rc;
}
