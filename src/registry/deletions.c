/* deletions.c: deleting an identity (tables deleted_certificates and identity_deletions,
 * migration 3). The identity's rows go; its certificates, every one revoked, move to
 * deleted_certificates, which the CRL keeps listing and no new serial may repeat; the
 * deletion itself is recorded in identity_deletions, so the history outlives the rows. */
#include <stdio.h>
#include <string.h>

#include "registry_internal.h"

/* Runs one statement binding ?1 to id and ?2 to at. */
static int run_id(struct moat_registry *reg, const char *sql, const char *id, int64_t at,
		  const char *what, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), sql, &st) != 0) {
		return reg_db_fail(reg, err, what);
	}
	rdb_bind_text(st, 1, id);
	if (rdb_param_count(st) >= 2) {
		rdb_bind_int64(st, 2, at);
	}
	int rc = rdb_step(st) == RDB_DONE ? 0 : reg_db_fail(reg, err, what);
	rdb_finalize(st);
	return rc;
}

/* The statements of a deletion, in order; ?1 is the identity, ?2 the time. */
static const struct {
	const char *sql;
	const char *what;
} delete_steps[] = {
	{"INSERT INTO identity_deletions(id, role, device_type, created_at, deleted_at, "
	 "last_serial, certificates) "
	 "SELECT i.id, i.role, i.device_type, i.created_at, ?2, "
	 "COALESCE((SELECT serial FROM certificates WHERE identity = i.id "
	 "ORDER BY not_before DESC, rowid DESC LIMIT 1), ''), "
	 "(SELECT COUNT(*) FROM certificates WHERE identity = i.id) "
	 "FROM identities i WHERE i.id = ?1",
	 "record the deletion"},
	{"INSERT INTO deleted_certificates(serial, identity, not_before, not_after, revoked_at, "
	 "reason, pem, deleted_at) "
	 "SELECT serial, identity, not_before, not_after, revoked_at, reason, pem, ?2 "
	 "FROM certificates WHERE identity = ?1",
	 "keep the certificates"},
	{"DELETE FROM certificates WHERE identity = ?1", "delete certificates"},
	{"DELETE FROM update_events WHERE device = ?1", "delete update events"},
	{"DELETE FROM device_firmware WHERE device = ?1", "delete running firmware"},
	{"DELETE FROM release_devices WHERE device = ?1", "delete rollout lists"},
	{"DELETE FROM enrollments WHERE identity = ?1", "delete enrollment"},
	{"DELETE FROM device_tags WHERE device = ?1", "delete tags"},
	{"DELETE FROM rollout_devices WHERE device = ?1", "delete rollout entries"},
	{"DELETE FROM job_results WHERE device = ?1", "delete job results"},
	{"DELETE FROM device_state WHERE device = ?1", "delete its last state"},
	{"DELETE FROM device_diagnostics WHERE device = ?1", "delete its last diagnostics"},
	{"DELETE FROM identities WHERE id = ?1", "delete identity"},
};

int moat_registry_identity_delete(struct moat_registry *reg, const char *id, int64_t at,
				  struct moat_err *err)
{
	bool exists = false;
	int rc = moat_registry_identity_exists(reg, id, &exists, err);
	if (rc != 0) {
		return rc;
	}
	if (!exists) {
		return moat_err_set(err, MOAT_ENOENT, "no identity '%s'", id);
	}
	/* every certificate must be revoked first: a deleted identity's certificate that the
	 * CRL did not list would stay valid with nobody to answer for it */
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"SELECT serial FROM certificates WHERE identity = ?1 AND "
			"revoked_at IS NULL LIMIT 1",
			&st) != 0) {
		return reg_db_fail(reg, err, "identity delete");
	}
	rdb_bind_text(st, 1, id);
	int s = rdb_step(st);
	char serial[MOAT_SERIAL_HEX_LEN] = "";
	if (s == RDB_ROW) {
		rdb_column_copy(st, 0, serial, sizeof(serial));
	}
	rdb_finalize(st);
	if (s == RDB_ROW) {
		return moat_err_set(err, MOAT_ESTATE,
				    "%s: certificate %s is not revoked; revoke it before deleting",
				    id, serial);
	}
	if (s != RDB_DONE) {
		return reg_db_fail(reg, err, "identity delete");
	}
	/* a savepoint: all or nothing, inside the caller's transaction or on its own */
	if (rdb_savepoint(reg_db(reg), "identity_delete") != 0) {
		return reg_db_fail(reg, err, "identity delete");
	}
	for (size_t i = 0; i < sizeof(delete_steps) / sizeof(delete_steps[0]); i++) {
		if ((rc = run_id(reg, delete_steps[i].sql, id, at, delete_steps[i].what, err)) !=
		    0) {
			rdb_rollback_to(reg_db(reg), "identity_delete");
			return rc;
		}
	}
	return rdb_release(reg_db(reg), "identity_delete") == 0
		       ? 0
		       : reg_db_fail(reg, err, "identity delete");
}

int moat_registry_deletion_last(struct moat_registry *reg, const char *id,
				struct moat_deletion *out, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"SELECT id, role, device_type, created_at, deleted_at, last_serial, "
			"certificates, (SELECT COUNT(*) FROM identity_deletions WHERE id = "
			"?1) FROM identity_deletions WHERE id = ?1 ORDER BY seq DESC LIMIT 1",
			&st) != 0) {
		return reg_db_fail(reg, err, "deletion lookup");
	}
	rdb_bind_text(st, 1, id);
	int s = rdb_step(st);
	int rc = 0;
	if (s == RDB_ROW) {
		memset(out, 0, sizeof(*out));
		rdb_column_copy(st, 0, out->id, sizeof(out->id));
		enum moat_role role = MOAT_ROLE_DEVICE;
		if (moat_role_parse(rdb_column_text(st, 1), &role, NULL) != 0) {
			role = MOAT_ROLE_DEVICE;
		}
		out->role = role;
		rdb_column_copy(st, 2, out->device_type, sizeof(out->device_type));
		out->created_at = rdb_column_int64(st, 3);
		out->deleted_at = rdb_column_int64(st, 4);
		rdb_column_copy(st, 5, out->last_serial_hex, sizeof(out->last_serial_hex));
		out->certificates = rdb_column_int64(st, 6);
		out->times = rdb_column_int64(st, 7);
	} else if (s == RDB_DONE) {
		rc = moat_err_set(err, MOAT_ENOENT, "'%s' was never deleted", id);
	} else {
		rc = reg_db_fail(reg, err, "deletion lookup");
	}
	rdb_finalize(st);
	return rc;
}
