/* registry.c: which backend a registry's location opens (a SQLite file: open_sqlite.c; a
 * postgresql:// URL: open_pg.c), transactions, and the queries on identities, certificates
 * and meta (the other files hold the other tables'). Every query is a prepared statement of
 * the statement layer (db.h) with bound parameters, prepared on each call: one text of SQL
 * for both backends. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry_internal.h"

/* A postgresql:// (or postgres://) URL names a registry on PostgreSQL; anything else is
 * the path of a SQLite file. */
bool moat_registry_is_url(const char *location)
{
	return strncmp(location, "postgresql://", 13) == 0 ||
	       strncmp(location, "postgres://", 11) == 0;
}

int moat_registry_open(const char *location, bool create, struct moat_registry **out_reg,
		       struct moat_err *err)
{
	if (moat_registry_is_url(location)) {
		return reg_open_postgres(location, create ? REG_PG_CREATE : REG_PG_OPEN, out_reg,
					 err);
	}
	return reg_open_sqlite(location, create, out_reg, err);
}

int moat_registry_open_readonly(const char *location, struct moat_registry **out_reg,
				struct moat_err *err)
{
	if (moat_registry_is_url(location)) {
		return reg_open_postgres(location, REG_PG_READONLY, out_reg, err);
	}
	return reg_open_sqlite_readonly(location, out_reg, err);
}

void moat_registry_close(struct moat_registry *reg)
{
	if (!reg) {
		return;
	}
	rdb_finalize(reg->telemetry_insert);
	rdb_disconnect(&reg->conn);
	sqlite3_close(reg->db);
	free(reg->path);
	free(reg);
}

/* Transactions go through the statement layer (db.h), so the files converted to it run in
 * them on either backend. */
static int tx_fail(struct moat_registry *reg, struct moat_err *err)
{
	struct rdb *c = reg_db(reg);
	return moat_err_set(err, rdb_errcode(c) == RDB_E_FULL ? MOAT_ENOSPC : MOAT_EDB, "%s: %s",
			    reg->path, rdb_errmsg(c));
}

int moat_registry_begin(struct moat_registry *reg, struct moat_err *err)
{
	if (rdb_begin(reg_db(reg)) != 0) {
		return tx_fail(reg, err);
	}
	reg->tx_depth = 1;
	return 0;
}

int moat_registry_commit(struct moat_registry *reg, struct moat_err *err)
{
	if (rdb_commit(reg_db(reg)) != 0) {
		return tx_fail(reg, err);
	}
	reg->tx_depth = 0;
	return 0;
}

void moat_registry_rollback(struct moat_registry *reg)
{
	if (reg->tx_depth) {
		rdb_rollback(reg_db(reg));
		reg->tx_depth = 0;
	}
}

int moat_registry_point(struct moat_registry *reg, struct moat_err *err)
{
	if (!reg->tx_depth) {
		return moat_err_set(err, MOAT_ESTATE, "registry: a point needs a transaction");
	}
	if (rdb_savepoint(reg_db(reg), "moat_point") != 0) {
		return tx_fail(reg, err);
	}
	return 0;
}

int moat_registry_release_point(struct moat_registry *reg, struct moat_err *err)
{
	if (rdb_release(reg_db(reg), "moat_point") != 0) {
		return tx_fail(reg, err);
	}
	return 0;
}

void moat_registry_rollback_point(struct moat_registry *reg)
{
	/* ROLLBACK TO keeps the savepoint open: RELEASE ends it, keeping nothing after it */
	rdb_rollback_to(reg_db(reg), "moat_point");
}

const char *moat_identity_status_name(enum moat_identity_status st)
{
	switch (st) {
	case MOAT_ID_ACTIVE:
		return "active";
	case MOAT_ID_REVOKED:
		return "revoked";
	case MOAT_ID_DISABLED:
		return "disabled";
	}
	return "unknown";
}

static enum moat_identity_status status_parse(const char *s)
{
	if (s && strcmp(s, "revoked") == 0) {
		return MOAT_ID_REVOKED;
	}
	if (s && strcmp(s, "disabled") == 0) {
		return MOAT_ID_DISABLED;
	}
	return MOAT_ID_ACTIVE;
}

/* Steps a write that may be refused (a duplicate) while the caller goes on: provisioning
 * draws another serial, a test inserts again. On PostgreSQL a failed statement aborts the
 * whole transaction, where SQLite undoes that statement alone: inside a transaction it runs
 * there in a savepoint, so a refusal leaves the caller's transaction as SQLite leaves it. */
static int step_refusable(struct moat_registry *reg, struct rdb_stmt *st)
{
	struct rdb *c = reg_db(reg);
	bool guard = c->backend == RDB_POSTGRES && (c->pg_in_tx || c->pg_savepoints > 0);
	int rc;
	if (guard && (rc = rdb_savepoint(c, "moat_write")) != 0) {
		return rc;
	}
	int s = rdb_step(st);
	if (!guard) {
		return s;
	}
	if (s == RDB_ROW || s == RDB_DONE) {
		if ((rc = rdb_release(c, "moat_write")) == 0) {
			return s;
		}
		/* the transaction stays usable (rdb_release already counted the savepoint out) */
		(void)rdb_exec(c, "ROLLBACK TO moat_write; RELEASE moat_write");
		return rc;
	}
	/* the step's code and message outlive a rollback that succeeds (db.c) */
	rdb_rollback_to(c, "moat_write");
	return s;
}

int moat_registry_identity_insert(struct moat_registry *reg, const char *id, enum moat_role role,
				  const char *device_type, int64_t now, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc = 0;
	if (rdb_prepare(reg_db(reg),
			"INSERT INTO identities(id, role, device_type, created_at) "
			"VALUES (?1, ?2, ?3, ?4)",
			&st) != 0) {
		return reg_db_fail(reg, err, "insert identity");
	}
	rdb_bind_text(st, 1, id);
	rdb_bind_text(st, 2, moat_role_name(role));
	rdb_bind_text(st, 3, device_type ? device_type : "");
	rdb_bind_int64(st, 4, now);
	/* only a primary-key clash is "already exists": a failed CHECK (a bad role) must not
	 * read as a duplicate */
	int s = step_refusable(reg, st);
	if (rdb_is_duplicate(s)) {
		rc = moat_err_set(err, MOAT_EEXIST, "identity '%s' already exists", id);
	} else if (s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "insert identity");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_identity_set_simulated(struct moat_registry *reg, const char *id,
					 struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), "UPDATE identities SET simulated = 1 WHERE id = ?1", &st) !=
	    0) {
		return reg_db_fail(reg, err, "mark simulated");
	}
	rdb_bind_text(st, 1, id);
	int s = rdb_step(st);
	int rc = 0;
	if (s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "mark simulated");
	} else if (rdb_changes(st) != 1) {
		rc = moat_err_set(err, MOAT_ENOENT, "no identity '%s'", id);
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_cert_insert(struct moat_registry *reg, const char *serial_hex,
			      const char *identity, int64_t not_before, int64_t not_after,
			      const char *pem, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc = 0;
	if (rdb_prepare(reg_db(reg),
			"INSERT INTO certificates(serial, identity, not_before, not_after, pem) "
			"VALUES (?1, ?2, ?3, ?4, ?5)",
			&st) != 0) {
		return reg_db_fail(reg, err, "insert certificate");
	}
	rdb_bind_text(st, 1, serial_hex);
	rdb_bind_text(st, 2, identity);
	rdb_bind_int64(st, 3, not_before);
	rdb_bind_int64(st, 4, not_after);
	rdb_bind_text(st, 5, pem);
	/* a failed foreign key (an unknown identity) is not a duplicate: the caller would
	 * draw new serials forever */
	int s = step_refusable(reg, st);
	if (rdb_is_duplicate(s)) {
		rc = moat_err_set(err, MOAT_EEXIST, "certificate serial %s already exists",
				  serial_hex);
	} else if (s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "insert certificate");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_serial_exists(struct moat_registry *reg, const char *serial_hex, bool *out_exists,
				struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	/* a deleted identity's serial is still in the CRL: never issue it again */
	if (rdb_prepare(reg_db(reg),
			"SELECT 1 FROM certificates WHERE serial = ?1 UNION ALL "
			"SELECT 1 FROM deleted_certificates WHERE serial = ?1",
			&st) != 0) {
		return reg_db_fail(reg, err, "serial lookup");
	}
	rdb_bind_text(st, 1, serial_hex);
	int s = rdb_step(st);
	rdb_finalize(st);
	if (s != RDB_ROW && s != RDB_DONE) {
		return reg_db_fail(reg, err, "serial lookup");
	}
	*out_exists = s == RDB_ROW;
	return 0;
}

/* The identity joined with its current certificate: the newest unrevoked one, else the
 * newest (rowid, ctid on PostgreSQL, breaks a tie of not_before: db.h, "Known gaps"). */
#define IDENTITY_SELECT \
	"SELECT i.id, i.role, i.device_type, i.status, i.created_at, c.serial, c.not_before,  \
	 c.not_after, c.revoked_at, c.reason, i.simulated FROM identities i LEFT JOIN certificates c ON c.serial = ( \
	 SELECT serial FROM certificates WHERE identity = i.id                                \
	 ORDER BY (revoked_at IS NULL) DESC, not_before DESC, rowid DESC LIMIT 1) "

static void row_identity(struct rdb_stmt *st, struct moat_identity *out)
{
	memset(out, 0, sizeof(*out));
	rdb_column_copy(st, 0, out->id, sizeof(out->id));
	enum moat_role role = MOAT_ROLE_DEVICE;
	if (moat_role_parse(rdb_column_text(st, 1), &role, NULL) != 0) {
		role = MOAT_ROLE_DEVICE;
	}
	out->role = role;
	rdb_column_copy(st, 2, out->device_type, sizeof(out->device_type));
	out->status = status_parse(rdb_column_text(st, 3));
	out->created_at = rdb_column_int64(st, 4);
	rdb_column_copy(st, 5, out->serial_hex, sizeof(out->serial_hex));
	out->not_before = rdb_column_int64(st, 6);
	out->not_after = rdb_column_int64(st, 7);
	out->cert_revoked = !rdb_column_is_null(st, 8);
	out->revoked_reason = out->cert_revoked ? (int)rdb_column_int64(st, 9) : 0;
	out->simulated = rdb_column_int64(st, 10) != 0;
}

int moat_registry_identity_get(struct moat_registry *reg, const char *id, struct moat_identity *out,
			       struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), IDENTITY_SELECT "WHERE i.id = ?1", &st) != 0) {
		return reg_db_fail(reg, err, "identity lookup");
	}
	rdb_bind_text(st, 1, id);
	int s = rdb_step(st);
	int rc = 0;
	if (s == RDB_ROW) {
		row_identity(st, out);
	} else if (s == RDB_DONE) {
		rc = moat_err_set(err, MOAT_ENOENT, "no identity '%s'", id);
	} else {
		rc = reg_db_fail(reg, err, "identity lookup");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_identity_exists(struct moat_registry *reg, const char *id, bool *out_exists,
				  struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), "SELECT 1 FROM identities WHERE id = ?1", &st) != 0) {
		return reg_db_fail(reg, err, "identity lookup");
	}
	rdb_bind_text(st, 1, id);
	int s = rdb_step(st);
	rdb_finalize(st);
	if (s != RDB_ROW && s != RDB_DONE) {
		return reg_db_fail(reg, err, "identity lookup");
	}
	*out_exists = s == RDB_ROW;
	return 0;
}

int moat_registry_identity_set_status(struct moat_registry *reg, const char *id,
				      enum moat_identity_status status, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), "UPDATE identities SET status = ?2 WHERE id = ?1", &st) != 0) {
		return reg_db_fail(reg, err, "identity status");
	}
	rdb_bind_text(st, 1, id);
	rdb_bind_text(st, 2, moat_identity_status_name(status));
	int s = rdb_step(st);
	int rc = 0;
	if (s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "identity status");
	} else if (rdb_changes(st) == 0) {
		rc = moat_err_set(err, MOAT_ENOENT, "no identity '%s'", id);
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_identity_foreach(struct moat_registry *reg, int role, moat_identity_cb cb,
				   void *ctx, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), IDENTITY_SELECT "WHERE ?1 < 0 OR i.role = ?2 ORDER BY i.id",
			&st) != 0) {
		return reg_db_fail(reg, err, "identity list");
	}
	rdb_bind_int64(st, 1, role);
	rdb_bind_text(st, 2, role >= 0 ? moat_role_name((enum moat_role)role) : "");
	int rc = 0;
	int s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		struct moat_identity ident;
		row_identity(st, &ident);
		if ((rc = cb(&ident, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "identity list");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_cert_revoke(struct moat_registry *reg, const char *serial_hex, int reason,
			      int64_t at, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"UPDATE certificates SET revoked_at = ?2, reason = ?3 "
			"WHERE serial = ?1 AND revoked_at IS NULL",
			&st) != 0) {
		return reg_db_fail(reg, err, "revoke");
	}
	rdb_bind_text(st, 1, serial_hex);
	rdb_bind_int64(st, 2, at);
	rdb_bind_int64(st, 3, reason);
	int s = rdb_step(st);
	int rc = 0;
	if (s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "revoke");
	} else if (rdb_changes(st) == 0) {
		bool exists = false;
		rc = moat_registry_serial_exists(reg, serial_hex, &exists, err);
		if (rc == 0) {
			rc = exists ? moat_err_set(err, MOAT_ESTATE,
						   "certificate %s is already revoked", serial_hex)
				    : moat_err_set(err, MOAT_ENOENT, "no certificate %s",
						   serial_hex);
		}
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_cert_foreach(struct moat_registry *reg, bool revoked_only, moat_cert_cb cb,
			       void *ctx, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	const char *sql =
		revoked_only ? "SELECT serial, identity, not_before, not_after, revoked_at, reason "
			       "FROM certificates WHERE revoked_at IS NOT NULL UNION ALL "
			       "SELECT serial, identity, not_before, not_after, revoked_at, reason "
			       "FROM deleted_certificates ORDER BY serial"
			     : "SELECT serial, identity, not_before, not_after, revoked_at, reason "
			       "FROM certificates ORDER BY serial";
	if (rdb_prepare(reg_db(reg), sql, &st) != 0) {
		return reg_db_fail(reg, err, "certificate list");
	}
	return reg_cert_rows(reg, st, cb, ctx, err);
}

int reg_cert_rows(struct moat_registry *reg, struct rdb_stmt *st, moat_cert_cb cb, void *ctx,
		  struct moat_err *err)
{
	int rc = 0;
	int s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		struct moat_cert_row row;
		memset(&row, 0, sizeof(row));
		rdb_column_copy(st, 0, row.serial_hex, sizeof(row.serial_hex));
		rdb_column_copy(st, 1, row.identity, sizeof(row.identity));
		row.not_before = rdb_column_int64(st, 2);
		row.not_after = rdb_column_int64(st, 3);
		row.revoked = !rdb_column_is_null(st, 4);
		row.revoked_at = rdb_column_int64(st, 4);
		row.reason = (int)rdb_column_int64(st, 5);
		if ((rc = cb(&row, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "certificate list");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_cert_pem(struct moat_registry *reg, const char *serial_hex, char **out_pem,
			   struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), "SELECT pem FROM certificates WHERE serial = ?1", &st) != 0) {
		return reg_db_fail(reg, err, "certificate lookup");
	}
	rdb_bind_text(st, 1, serial_hex);
	int s = rdb_step(st);
	int rc = 0;
	if (s == RDB_ROW) {
		const char *pem = rdb_column_text(st, 0);
		*out_pem = strdup(pem ? pem : "");
		if (!*out_pem) {
			rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		}
	} else if (s == RDB_DONE) {
		rc = moat_err_set(err, MOAT_ENOENT, "no certificate %s", serial_hex);
	} else {
		rc = reg_db_fail(reg, err, "certificate lookup");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_meta_get_int(struct moat_registry *reg, const char *key, int64_t *out,
			       struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), "SELECT value FROM meta WHERE key = ?1", &st) != 0) {
		return reg_db_fail(reg, err, "meta");
	}
	rdb_bind_text(st, 1, key);
	int s = rdb_step(st);
	int rc = 0;
	if (s == RDB_ROW) {
		*out = rdb_column_int64(st, 0);
	} else if (s == RDB_DONE) {
		rc = moat_err_set(err, MOAT_ENOENT, "no setting '%s'", key);
	} else {
		rc = reg_db_fail(reg, err, "meta");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_meta_next(struct moat_registry *reg, const char *key, int64_t *out,
			    struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"UPDATE meta SET value = value + 1 WHERE key = ?1 RETURNING value",
			&st) != 0) {
		return reg_db_fail(reg, err, "meta");
	}
	rdb_bind_text(st, 1, key);
	int s = rdb_step(st);
	int rc = 0;
	if (s == RDB_ROW) {
		*out = rdb_column_int64(st, 0);
		s = rdb_step(st);
	}
	if (s == RDB_DONE && rc == 0 && rdb_changes(st) == 0) {
		rc = moat_err_set(err, MOAT_ENOENT, "no setting '%s'", key);
	} else if (s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "meta");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_meta_set_int(struct moat_registry *reg, const char *key, int64_t value,
			       struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"INSERT INTO meta(key, value) VALUES (?1, ?2) "
			"ON CONFLICT(key) DO UPDATE SET value = excluded.value",
			&st) != 0) {
		return reg_db_fail(reg, err, "meta");
	}
	rdb_bind_text(st, 1, key);
	rdb_bind_int64(st, 2, value);
	int rc = rdb_step(st) == RDB_DONE ? 0 : reg_db_fail(reg, err, "meta");
	rdb_finalize(st);
	return rc;
}
