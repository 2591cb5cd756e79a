/* enroll.c: the tables of migration 3: enrollments (a device that enrolls itself over EST:
 * its token's SHA-256, never the token, the token's expiry, the CN of its claim
 * certificate, and when it enrolled), claim_cas (the CAs whose certificates may claim a
 * device) and certificates.supersede_at (a revocation deferred until a re-enrollment's
 * grace period ends). */
#include <stdio.h>
#include <string.h>

#include "registry_internal.h"

#define ENROLLMENT_COLUMNS \
	"SELECT identity, token_sha256, claim_cn, created_at, expires_at, used_at FROM enrollments "

int moat_registry_enrollment_insert(struct moat_registry *reg, const struct moat_enrollment *e,
				    struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"INSERT INTO enrollments(identity, token_sha256, claim_cn, "
			"created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
			&st) != 0) {
		return reg_db_fail(reg, err, "insert enrollment");
	}
	rdb_bind_text(st, 1, e->identity);
	if (e->has_token) {
		rdb_bind_text(st, 2, e->token_sha256_hex);
	}
	if (e->claim_cn[0]) {
		rdb_bind_text(st, 3, e->claim_cn);
	}
	rdb_bind_int64(st, 4, e->created_at);
	rdb_bind_int64(st, 5, e->expires_at);
	int s = rdb_step(st);
	int rc = 0;
	if (s == RDB_E_UNIQUE) {
		rc = moat_err_set(err, MOAT_EEXIST, "claim CN '%s' already names a device",
				  e->claim_cn);
	} else if (s == RDB_E_PRIMARYKEY) {
		rc = moat_err_set(err, MOAT_EEXIST, "'%s' already has an enrollment", e->identity);
	} else if (s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "insert enrollment");
	}
	rdb_finalize(st);
	return rc;
}

static void row_enrollment(struct rdb_stmt *st, struct moat_enrollment *out)
{
	memset(out, 0, sizeof(*out));
	rdb_column_copy(st, 0, out->identity, sizeof(out->identity));
	out->has_token = !rdb_column_is_null(st, 1);
	rdb_column_copy(st, 1, out->token_sha256_hex, sizeof(out->token_sha256_hex));
	rdb_column_copy(st, 2, out->claim_cn, sizeof(out->claim_cn));
	out->created_at = rdb_column_int64(st, 3);
	out->expires_at = rdb_column_int64(st, 4);
	out->used = !rdb_column_is_null(st, 5);
	out->used_at = rdb_column_int64(st, 5);
}

static int enrollment_one(struct moat_registry *reg, const char *sql, const char *key,
			  struct moat_enrollment *out, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), sql, &st) != 0) {
		return reg_db_fail(reg, err, "enrollment lookup");
	}
	rdb_bind_text(st, 1, key);
	int s = rdb_step(st);
	int rc = 0;
	if (s == RDB_ROW) {
		row_enrollment(st, out);
	} else if (s == RDB_DONE) {
		rc = moat_err_set(err, MOAT_ENOENT, "no enrollment");
	} else {
		rc = reg_db_fail(reg, err, "enrollment lookup");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_enrollment_get(struct moat_registry *reg, const char *id,
				 struct moat_enrollment *out, struct moat_err *err)
{
	return enrollment_one(reg, ENROLLMENT_COLUMNS "WHERE identity = ?1", id, out, err);
}

int moat_registry_enrollment_by_claim(struct moat_registry *reg, const char *claim_cn,
				      struct moat_enrollment *out, struct moat_err *err)
{
	return enrollment_one(reg, ENROLLMENT_COLUMNS "WHERE claim_cn = ?1", claim_cn, out, err);
}

int moat_registry_enrollment_use(struct moat_registry *reg, const char *id, int64_t now,
				 struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	/* single use: only an unused enrollment changes, whoever else holds the registry */
	if (rdb_prepare(reg_db(reg),
			"UPDATE enrollments SET used_at = ?2 "
			"WHERE identity = ?1 AND used_at IS NULL",
			&st) != 0) {
		return reg_db_fail(reg, err, "use enrollment");
	}
	rdb_bind_text(st, 1, id);
	rdb_bind_int64(st, 2, now);
	int s = rdb_step(st);
	int rc = 0;
	if (s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "use enrollment");
	} else if (rdb_changes(st) != 1) {
		rc = moat_err_set(err, MOAT_ESTATE, "%s: enrollment already used or absent", id);
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_claim_ca_insert(struct moat_registry *reg, const char *sha256_hex,
				  const char *subject, const char *pem, int64_t now,
				  struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"INSERT INTO claim_cas(sha256, subject, pem, added_at) "
			"VALUES (?1, ?2, ?3, ?4)",
			&st) != 0) {
		return reg_db_fail(reg, err, "insert claim CA");
	}
	rdb_bind_text(st, 1, sha256_hex);
	rdb_bind_text(st, 2, subject);
	rdb_bind_text(st, 3, pem);
	rdb_bind_int64(st, 4, now);
	int s = rdb_step(st);
	int rc = 0;
	if (rdb_is_constraint(s)) {
		rc = moat_err_set(err, MOAT_EEXIST, "claim CA %.16s… is already registered",
				  sha256_hex);
	} else if (s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "insert claim CA");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_claim_ca_remove(struct moat_registry *reg, const char *sha256_hex,
				  struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), "DELETE FROM claim_cas WHERE sha256 = ?1", &st) != 0) {
		return reg_db_fail(reg, err, "remove claim CA");
	}
	rdb_bind_text(st, 1, sha256_hex);
	int s = rdb_step(st);
	int rc = 0;
	if (s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "remove claim CA");
	} else if (rdb_changes(st) == 0) {
		rc = moat_err_set(err, MOAT_ENOENT, "no claim CA %.64s", sha256_hex);
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_claim_ca_foreach(struct moat_registry *reg, moat_claim_ca_cb cb, void *ctx,
				   struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"SELECT sha256, subject, pem, added_at FROM claim_cas ORDER BY sha256",
			&st) != 0) {
		return reg_db_fail(reg, err, "claim CA list");
	}
	int rc = 0;
	int s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		struct moat_claim_ca ca;
		memset(&ca, 0, sizeof(ca));
		rdb_column_copy(st, 0, ca.sha256_hex, sizeof(ca.sha256_hex));
		rdb_column_copy(st, 1, ca.subject, sizeof(ca.subject));
		const char *pem = rdb_column_text(st, 2);
		ca.pem = pem ? pem : "";
		ca.added_at = rdb_column_int64(st, 3);
		if ((rc = cb(&ca, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "claim CA list");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_cert_supersede_at(struct moat_registry *reg, const char *serial_hex, int64_t at,
				    struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"UPDATE certificates SET supersede_at = ?2 "
			"WHERE serial = ?1 AND revoked_at IS NULL",
			&st) != 0) {
		return reg_db_fail(reg, err, "supersede");
	}
	rdb_bind_text(st, 1, serial_hex);
	rdb_bind_int64(st, 2, at);
	int s = rdb_step(st);
	int rc = 0;
	if (s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "supersede");
	} else if (rdb_changes(st) == 0) {
		rc = moat_err_set(err, MOAT_ENOENT, "no unrevoked certificate %s", serial_hex);
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_cert_supersede_due(struct moat_registry *reg, int64_t now, moat_cert_cb cb,
				     void *ctx, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"SELECT serial, identity, not_before, not_after FROM certificates "
			"WHERE supersede_at IS NOT NULL AND supersede_at <= ?1 "
			"AND revoked_at IS NULL ORDER BY serial",
			&st) != 0) {
		return reg_db_fail(reg, err, "superseded certificates");
	}
	rdb_bind_int64(st, 1, now);
	int rc = 0;
	int s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		struct moat_cert_row row;
		memset(&row, 0, sizeof(row));
		rdb_column_copy(st, 0, row.serial_hex, sizeof(row.serial_hex));
		rdb_column_copy(st, 1, row.identity, sizeof(row.identity));
		row.not_before = rdb_column_int64(st, 2);
		row.not_after = rdb_column_int64(st, 3);
		if ((rc = cb(&row, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "superseded certificates");
	}
	rdb_finalize(st);
	return rc;
}
