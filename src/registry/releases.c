/* releases.c: the firmware release tables of migration 2: releases (one row per published
 * image) and release_devices (the devices a list rollout names). A release and its device
 * list are written in one transaction, so a refused list leaves no release behind. Deciding
 * which release a device is offered is the server's business (src/server/releases.c); this
 * file only stores and reads rows. On the statement layer (db.h): the same SQL on SQLite and
 * PostgreSQL.
 */
#include <stdio.h>
#include <string.h>

#include "registry_internal.h"

#define RELEASE_COLS                                                                           \
	"SELECT r.sha256, r.device_type, r.version, r.security_version, r.size, r.issued_at, " \
	"r.expires_at, r.published_at, r.rollout_percent, "                                    \
	"(SELECT count(*) FROM release_devices d WHERE d.sha256 = r.sha256) FROM releases r "

static void row_to_release(struct rdb_stmt *st, struct moat_release *r)
{
	memset(r, 0, sizeof(*r));
	rdb_column_copy(st, 0, r->sha256_hex, sizeof(r->sha256_hex));
	rdb_column_copy(st, 1, r->device_type, sizeof(r->device_type));
	rdb_column_copy(st, 2, r->version, sizeof(r->version));
	r->security_version = rdb_column_int64(st, 3);
	r->size = (uint64_t)rdb_column_int64(st, 4);
	r->issued_at = rdb_column_int64(st, 5);
	r->expires_at = rdb_column_int64(st, 6);
	r->published_at = rdb_column_int64(st, 7);
	r->rollout_percent = (int)rdb_column_int64(st, 8);
	r->device_count = (size_t)rdb_column_int64(st, 9);
}

static int insert_release_row(struct moat_registry *reg, const struct moat_release *r,
			      struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc = 0;
	if (rdb_prepare(reg_db(reg),
			"INSERT INTO releases(sha256, device_type, version, security_version,"
			" size, issued_at, expires_at, published_at, rollout_percent)"
			" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "insert release");
	}
	rdb_bind_text(st, 1, r->sha256_hex);
	rdb_bind_text(st, 2, r->device_type);
	rdb_bind_text(st, 3, r->version);
	rdb_bind_int64(st, 4, r->security_version);
	rdb_bind_int64(st, 5, (int64_t)r->size);
	rdb_bind_int64(st, 6, r->issued_at);
	rdb_bind_int64(st, 7, r->expires_at);
	rdb_bind_int64(st, 8, r->published_at);
	rdb_bind_int64(st, 9, r->rollout_percent);
	int s = rdb_step(st);
	if (rdb_is_constraint(s)) {
		rc = moat_err_set(err, MOAT_EEXIST,
				  "release %s %s (sha256 %.12s...) already published",
				  r->device_type, r->version, r->sha256_hex);
	} else if (s != RDB_DONE) {
		rc = reg_db_fail_table(reg, err, "insert release");
	}
	rdb_finalize(st);
	return rc;
}

static int insert_release_devices(struct moat_registry *reg, const char *sha256_hex,
				  char *const *devices, size_t device_count, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc = 0;
	if (rdb_prepare(reg_db(reg), "INSERT INTO release_devices(sha256, device) VALUES (?1, ?2)",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "insert release device");
	}
	for (size_t i = 0; i < device_count; i++) {
		rdb_reset(st);
		rdb_bind_text(st, 1, sha256_hex);
		rdb_bind_text(st, 2, devices[i]);
		int s = rdb_step(st);
		if (rdb_is_constraint(s)) {
			rc = moat_err_set(err, MOAT_EINVAL,
					  "--devices: %s listed twice or not registered",
					  devices[i]);
			break;
		}
		if (s != RDB_DONE) {
			rc = reg_db_fail_table(reg, err, "insert release device");
			break;
		}
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_release_insert(struct moat_registry *reg, const struct moat_release *r,
				 char *const *devices, size_t device_count, struct moat_err *err)
{
	int rc;
	if (r->rollout_percent < -1 || r->rollout_percent > MOAT_ROLLOUT_PERCENT_MAX ||
	    (r->rollout_percent == -1) != (device_count > 0) ||
	    device_count > MOAT_ROLLOUT_DEVICES_MAX || r->size > (uint64_t)INT64_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "release: invalid rollout or size");
	}
	if ((rc = moat_registry_begin(reg, err)) != 0) {
		return rc;
	}
	if ((rc = insert_release_row(reg, r, err)) != 0 ||
	    (rc = insert_release_devices(reg, r->sha256_hex, devices, device_count, err)) != 0) {
		moat_registry_rollback(reg);
		return rc;
	}
	return moat_registry_commit(reg, err);
}

int moat_registry_release_get(struct moat_registry *reg, const char *sha256_hex,
			      struct moat_release *out, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc;
	memset(out, 0, sizeof(*out));
	if (rdb_prepare(reg_db(reg), RELEASE_COLS "WHERE r.sha256 = ?1", &st) != 0) {
		return reg_db_fail_table(reg, err, "release lookup");
	}
	rdb_bind_text(st, 1, sha256_hex);
	int s = rdb_step(st);
	if (s == RDB_ROW) {
		row_to_release(st, out);
		rc = 0;
	} else if (s == RDB_DONE) {
		rc = moat_err_set(err, MOAT_ENOENT, "no release with sha256 %.64s", sha256_hex);
	} else {
		rc = reg_db_fail_table(reg, err, "release lookup");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_release_foreach(struct moat_registry *reg, const char *device_type,
				  moat_release_cb cb, void *ctx, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc = 0;
	if (rdb_prepare(reg_db(reg),
			RELEASE_COLS "WHERE CAST(?1 AS TEXT) IS NULL OR r.device_type = ?1 "
				     "ORDER BY r.device_type, r.published_at, r.version",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "list releases");
	}
	rdb_bind_text(st, 1, device_type); /* NULL: every type */
	int s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		struct moat_release r;
		row_to_release(st, &r);
		if ((rc = cb(&r, ctx)) != 0) {
			goto out;
		}
	}
	if (s != RDB_DONE) {
		rc = reg_db_fail_table(reg, err, "list releases");
	}
out:
	rdb_finalize(st);
	return rc;
}

int moat_registry_release_lists(struct moat_registry *reg, const char *sha256_hex,
				const char *device_id, bool *out_listed, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	*out_listed = false;
	if (rdb_prepare(reg_db(reg),
			"SELECT 1 FROM release_devices WHERE sha256 = ?1 AND device = ?2",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "rollout lookup");
	}
	rdb_bind_text(st, 1, sha256_hex);
	rdb_bind_text(st, 2, device_id);
	int s = rdb_step(st);
	int rc = 0;
	if (s == RDB_ROW) {
		*out_listed = true;
	} else if (s != RDB_DONE) {
		rc = reg_db_fail_table(reg, err, "rollout lookup");
	}
	rdb_finalize(st);
	return rc;
}
