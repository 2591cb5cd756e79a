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
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db,
			       "INSERT INTO enrollments(identity, token_sha256, claim_cn, "
			       "created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "insert enrollment");
	}
	sqlite3_bind_text(st, 1, e->identity, -1, SQLITE_STATIC);
	if (e->has_token) {
		sqlite3_bind_text(st, 2, e->token_sha256_hex, -1, SQLITE_STATIC);
	}
	if (e->claim_cn[0]) {
		sqlite3_bind_text(st, 3, e->claim_cn, -1, SQLITE_STATIC);
	}
	sqlite3_bind_int64(st, 4, e->created_at);
	sqlite3_bind_int64(st, 5, e->expires_at);
	int s = sqlite3_step(st);
	int rc = 0;
	if (s == SQLITE_CONSTRAINT &&
	    sqlite3_extended_errcode(reg->db) == SQLITE_CONSTRAINT_UNIQUE) {
		rc = moat_err_set(err, MOAT_EEXIST, "claim CN '%s' already names a device",
				  e->claim_cn);
	} else if (s == SQLITE_CONSTRAINT &&
		   sqlite3_extended_errcode(reg->db) == SQLITE_CONSTRAINT_PRIMARYKEY) {
		rc = moat_err_set(err, MOAT_EEXIST, "'%s' already has an enrollment", e->identity);
	} else if (s != SQLITE_DONE) {
		rc = reg_fail(reg, err, "insert enrollment");
	}
	sqlite3_finalize(st);
	return rc;
}

static void row_enrollment(sqlite3_stmt *st, struct moat_enrollment *out)
{
	memset(out, 0, sizeof(*out));
	reg_column_text(st, 0, out->identity, sizeof(out->identity));
	out->has_token = sqlite3_column_type(st, 1) != SQLITE_NULL;
	reg_column_text(st, 1, out->token_sha256_hex, sizeof(out->token_sha256_hex));
	reg_column_text(st, 2, out->claim_cn, sizeof(out->claim_cn));
	out->created_at = sqlite3_column_int64(st, 3);
	out->expires_at = sqlite3_column_int64(st, 4);
	out->used = sqlite3_column_type(st, 5) != SQLITE_NULL;
	out->used_at = sqlite3_column_int64(st, 5);
}

static int enrollment_one(struct moat_registry *reg, const char *sql, const char *key,
			  struct moat_enrollment *out, struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db, sql, -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "enrollment lookup");
	}
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	int rc = 0;
	if (s == SQLITE_ROW) {
		row_enrollment(st, out);
	} else if (s == SQLITE_DONE) {
		rc = moat_err_set(err, MOAT_ENOENT, "no enrollment");
	} else {
		rc = reg_fail(reg, err, "enrollment lookup");
	}
	sqlite3_finalize(st);
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
	sqlite3_stmt *st = NULL;
	/* single use: only an unused enrollment changes, whoever else holds the registry */
	if (sqlite3_prepare_v2(reg->db,
			       "UPDATE enrollments SET used_at = ?2 "
			       "WHERE identity = ?1 AND used_at IS NULL",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "use enrollment");
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	int s = sqlite3_step(st);
	int rc = 0;
	if (s != SQLITE_DONE) {
		rc = reg_fail(reg, err, "use enrollment");
	} else if (sqlite3_changes(reg->db) != 1) {
		rc = moat_err_set(err, MOAT_ESTATE, "%s: enrollment already used or absent", id);
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_claim_ca_insert(struct moat_registry *reg, const char *sha256_hex,
				  const char *subject, const char *pem, int64_t now,
				  struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db,
			       "INSERT INTO claim_cas(sha256, subject, pem, added_at) "
			       "VALUES (?1, ?2, ?3, ?4)",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "insert claim CA");
	}
	sqlite3_bind_text(st, 1, sha256_hex, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, subject, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, pem, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	int s = sqlite3_step(st);
	int rc = 0;
	if (s == SQLITE_CONSTRAINT) {
		rc = moat_err_set(err, MOAT_EEXIST, "claim CA %.16s… is already registered",
				  sha256_hex);
	} else if (s != SQLITE_DONE) {
		rc = reg_fail(reg, err, "insert claim CA");
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_claim_ca_remove(struct moat_registry *reg, const char *sha256_hex,
				  struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db, "DELETE FROM claim_cas WHERE sha256 = ?1", -1, &st, NULL) !=
	    SQLITE_OK) {
		return reg_fail(reg, err, "remove claim CA");
	}
	sqlite3_bind_text(st, 1, sha256_hex, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	int rc = 0;
	if (s != SQLITE_DONE) {
		rc = reg_fail(reg, err, "remove claim CA");
	} else if (sqlite3_changes(reg->db) == 0) {
		rc = moat_err_set(err, MOAT_ENOENT, "no claim CA %.64s", sha256_hex);
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_claim_ca_foreach(struct moat_registry *reg, moat_claim_ca_cb cb, void *ctx,
				   struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(
		    reg->db, "SELECT sha256, subject, pem, added_at FROM claim_cas ORDER BY sha256",
		    -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "claim CA list");
	}
	int rc = 0;
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		struct moat_claim_ca ca;
		memset(&ca, 0, sizeof(ca));
		reg_column_text(st, 0, ca.sha256_hex, sizeof(ca.sha256_hex));
		reg_column_text(st, 1, ca.subject, sizeof(ca.subject));
		const unsigned char *pem = sqlite3_column_text(st, 2);
		ca.pem = pem ? (const char *)pem : "";
		ca.added_at = sqlite3_column_int64(st, 3);
		if ((rc = cb(&ca, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != SQLITE_DONE) {
		rc = reg_fail(reg, err, "claim CA list");
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_cert_supersede_at(struct moat_registry *reg, const char *serial_hex, int64_t at,
				    struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db,
			       "UPDATE certificates SET supersede_at = ?2 "
			       "WHERE serial = ?1 AND revoked_at IS NULL",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "supersede");
	}
	sqlite3_bind_text(st, 1, serial_hex, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, at);
	int s = sqlite3_step(st);
	int rc = 0;
	if (s != SQLITE_DONE) {
		rc = reg_fail(reg, err, "supersede");
	} else if (sqlite3_changes(reg->db) == 0) {
		rc = moat_err_set(err, MOAT_ENOENT, "no unrevoked certificate %s", serial_hex);
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_cert_supersede_due(struct moat_registry *reg, int64_t now, moat_cert_cb cb,
				     void *ctx, struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db,
			       "SELECT serial, identity, not_before, not_after FROM certificates "
			       "WHERE supersede_at IS NOT NULL AND supersede_at <= ?1 "
			       "AND revoked_at IS NULL ORDER BY serial",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "superseded certificates");
	}
	sqlite3_bind_int64(st, 1, now);
	int rc = 0;
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		struct moat_cert_row row;
		memset(&row, 0, sizeof(row));
		reg_column_text(st, 0, row.serial_hex, sizeof(row.serial_hex));
		reg_column_text(st, 1, row.identity, sizeof(row.identity));
		row.not_before = sqlite3_column_int64(st, 2);
		row.not_after = sqlite3_column_int64(st, 3);
		if ((rc = cb(&row, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != SQLITE_DONE) {
		rc = reg_fail(reg, err, "superseded certificates");
	}
	sqlite3_finalize(st);
	return rc;
}
