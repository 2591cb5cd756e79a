/* registry.c: opening the SQLite registry, migrations, transactions, and the queries on
 * identities, certificates and meta (releases.c and update_events.c hold the other tables').
 * Every query is a prepared statement with bound parameters, prepared on each call. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moat/fsutil.h"
#include "registry_internal.h"

int reg_fail(struct moat_registry *reg, struct moat_err *err, const char *what)
{
	int code = sqlite3_errcode(reg->db);
	int rc = (code == SQLITE_FULL) ? MOAT_ENOSPC : MOAT_EDB;
	return moat_err_set(err, rc, "%s: %s: %s", reg->path, what, sqlite3_errmsg(reg->db));
}

int reg_fail_table(struct moat_registry *reg, struct moat_err *err, const char *what)
{
	return moat_err_set(err, MOAT_EDB, "registry: %s: %s", what, sqlite3_errmsg(reg->db));
}

void reg_column_text(sqlite3_stmt *st, int col, char *buf, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	snprintf(buf, size, "%s", t ? (const char *)t : "");
}

static int exec(struct moat_registry *reg, const char *sql, struct moat_err *err)
{
	char *msg = NULL;
	if (sqlite3_exec(reg->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int rc = moat_err_set(err,
				      sqlite3_errcode(reg->db) == SQLITE_FULL ? MOAT_ENOSPC
									      : MOAT_EDB,
				      "%s: %s", reg->path, msg ? msg : "error");
		sqlite3_free(msg);
		return rc;
	}
	return 0;
}

static int pragma_int(struct moat_registry *reg, const char *sql, int *out, struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db, sql, -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, sql);
	}
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return moat_err_set(err, MOAT_EDB, "%s: not a moat registry (%s)", reg->path,
				    sqlite3_errmsg(reg->db));
	}
	*out = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return 0;
}

/* Reads the header only: a file that is not ours is refused before anything (the switch
 * to WAL included) writes to it. */
static int check_ours(struct moat_registry *reg, bool create, int *out_version,
		      struct moat_err *err)
{
	int app_id = 0;
	int rc;
	if ((rc = pragma_int(reg, "PRAGMA application_id", &app_id, err)) != 0 ||
	    (rc = pragma_int(reg, "PRAGMA user_version", out_version, err)) != 0) {
		return rc;
	}
	if (!create && app_id != MOAT_REGISTRY_APP_ID) {
		return moat_err_set(err, MOAT_EINVAL, "%s: not a moat registry", reg->path);
	}
	return 0;
}

static int migrate(struct moat_registry *reg, int version, struct moat_err *err)
{
	int rc;
	if (version > moat_registry_migration_count) {
		return moat_err_set(
			err, MOAT_ESTATE,
			"%s: schema version %d is newer than this moat (%d): upgrade moat",
			reg->path, version, moat_registry_migration_count);
	}
	if (version == moat_registry_migration_count) {
		return 0;
	}
	if ((rc = exec(reg, "BEGIN IMMEDIATE", err)) != 0) {
		return rc;
	}
	for (int i = version; i < moat_registry_migration_count; i++) {
		if ((rc = exec(reg, moat_registry_migrations[i], err)) != 0) {
			moat_err_prefix(err, "migration %d", i + 1);
			goto fail;
		}
	}
	char sql[96];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d; PRAGMA application_id = %d",
		 moat_registry_migration_count, MOAT_REGISTRY_APP_ID);
	if ((rc = exec(reg, sql, err)) != 0 || (rc = exec(reg, "COMMIT", err)) != 0) {
		goto fail;
	}
	return 0;
fail:
	sqlite3_exec(reg->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int moat_registry_open(const char *path, bool create, struct moat_registry **out_reg,
		       struct moat_err *err)
{
	int rc = MOAT_EDB;
	struct moat_registry *reg = calloc(1, sizeof(*reg));
	if (!reg || !(reg->path = strdup(path))) {
		free(reg);
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	if (create && moat_fs_exists(path)) {
		rc = moat_err_set(err, MOAT_EEXIST, "%s: already exists", path);
		goto fail;
	}
	if (!create && !moat_fs_exists(path)) {
		rc = moat_err_set(err, MOAT_ENOENT, "%s: no registry", path);
		goto fail;
	}
	/* NOFOLLOW: moatd's account owns registry.db and may write in its directory; root
	 * must never open a symbolic link it left there in the registry's place. */
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW |
		    (create ? SQLITE_OPEN_CREATE : 0);
	if (create) {
		/* the registry holds certificates and later telemetry: owner only */
		mode_t old = umask(077);
		rc = sqlite3_open_v2(path, &reg->db, flags, NULL);
		umask(old);
	} else {
		rc = sqlite3_open_v2(path, &reg->db, flags, NULL);
	}
	if (rc != SQLITE_OK) {
		rc = moat_err_set(err, MOAT_EDB, "%s: %s", path,
				  reg->db ? sqlite3_errmsg(reg->db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(reg->db, 10000);
	sqlite3_extended_result_codes(reg->db, 0);
	int version = 0;
	if ((rc = check_ours(reg, create, &version, err)) != 0) {
		goto fail;
	}
	if ((rc = exec(reg,
		       "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
		       "PRAGMA foreign_keys=ON",
		       err)) != 0) {
		moat_err_prefix(err, "not a moat registry");
		goto fail;
	}
	if ((rc = migrate(reg, version, err)) != 0) {
		goto fail;
	}
	*out_reg = reg;
	return 0;
fail:
	moat_registry_close(reg);
	return rc;
}

/* "file:" URI of path with the characters a URI gives meaning to percent-encoded. */
static int file_uri(const char *path, const char *query, char *buf, size_t size)
{
	size_t n = (size_t)snprintf(buf, size, "file:");
	for (const unsigned char *p = (const unsigned char *)path; *p && n + 4 < size; p++) {
		if (*p == '%' || *p == '?' || *p == '#' || *p <= ' ' || *p >= 0x7f) {
			n += (size_t)snprintf(buf + n, size - n, "%%%02X", *p);
		} else {
			buf[n++] = (char)*p;
		}
	}
	if (n + strlen(query) + 1 > size) {
		return -1;
	}
	snprintf(buf + n, size - n, "%s", query);
	return 0;
}

/* Whether path-wal holds transactions not yet in the database file. */
static bool wal_pending(const char *path)
{
	char wal[PATH_MAX];
	struct stat st;
	return snprintf(wal, sizeof(wal), "%s-wal", path) < (int)sizeof(wal) &&
	       stat(wal, &st) == 0 && st.st_size > 0;
}

int moat_registry_open_readonly(const char *path, struct moat_registry **out_reg,
				struct moat_err *err)
{
	int rc = MOAT_EDB;
	char uri[PATH_MAX * 3 + 32];
	struct moat_registry *reg = calloc(1, sizeof(*reg));
	if (!reg || !(reg->path = strdup(path))) {
		free(reg);
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	if (!moat_fs_exists(path)) {
		rc = moat_err_set(err, MOAT_ENOENT, "%s: no registry", path);
		goto fail;
	}
	/* With no pending WAL, nothing can change a file on a read-only file system: immutable
	 * reads it without the -shm file it could not create. With a WAL left by a writer that
	 * stopped, SQLite reads the WAL's transactions too (it keeps the index in memory). */
	bool pending = wal_pending(path);
	if (file_uri(path, pending ? "?mode=ro" : "?mode=ro&immutable=1", uri, sizeof(uri)) != 0) {
		rc = moat_err_set(err, MOAT_EINVAL, "%s: path too long", path);
		goto fail;
	}
	rc = sqlite3_open_v2(uri, &reg->db,
			     SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX |
				     SQLITE_OPEN_NOFOLLOW,
			     NULL);
	if (rc != SQLITE_OK) {
		rc = moat_err_set(err, MOAT_EDB, "%s: %s", path,
				  reg->db ? sqlite3_errmsg(reg->db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(reg->db, 10000);
	sqlite3_extended_result_codes(reg->db, 0);
	int version = 0;
	if ((rc = check_ours(reg, false, &version, err)) != 0) {
		goto fail;
	}
	if (version != moat_registry_migration_count) {
		rc = moat_err_set(err, MOAT_ESTATE,
				  "%s: schema version %d, this moat reads %d, and the file is "
				  "read-only: %s",
				  path, version, moat_registry_migration_count,
				  version > moat_registry_migration_count
					  ? "upgrade moat"
					  : "open it once where it is writable to migrate it");
		goto fail;
	}
	*out_reg = reg;
	return 0;
fail:
	moat_registry_close(reg);
	return rc;
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
	return exec(reg, "SAVEPOINT moat_point", err);
}

int moat_registry_release_point(struct moat_registry *reg, struct moat_err *err)
{
	return exec(reg, "RELEASE moat_point", err);
}

void moat_registry_rollback_point(struct moat_registry *reg)
{
	/* ROLLBACK TO keeps the savepoint open: RELEASE ends it, keeping nothing after it */
	sqlite3_exec(reg->db, "ROLLBACK TO moat_point; RELEASE moat_point", NULL, NULL, NULL);
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

/* Only a primary-key clash is "already exists": a failed CHECK or foreign key (a bad role,
 * an unknown identity) must not send the caller drawing new serials forever. */
static bool is_duplicate(struct moat_registry *reg, int step_rc)
{
	if (step_rc != SQLITE_CONSTRAINT) {
		return false;
	}
	int ext = sqlite3_extended_errcode(reg->db);
	return ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE;
}

int moat_registry_identity_insert(struct moat_registry *reg, const char *id, enum moat_role role,
				  const char *device_type, int64_t now, struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(reg->db,
			       "INSERT INTO identities(id, role, device_type, created_at) "
			       "VALUES (?1, ?2, ?3, ?4)",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "insert identity");
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, moat_role_name(role), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, device_type ? device_type : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	int s = sqlite3_step(st);
	if (is_duplicate(reg, s)) {
		rc = moat_err_set(err, MOAT_EEXIST, "identity '%s' already exists", id);
	} else if (s != SQLITE_DONE) {
		rc = reg_fail(reg, err, "insert identity");
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_identity_set_simulated(struct moat_registry *reg, const char *id,
					 struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db, "UPDATE identities SET simulated = 1 WHERE id = ?1", -1,
			       &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "mark simulated");
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	int rc = 0;
	if (s != SQLITE_DONE) {
		rc = reg_fail(reg, err, "mark simulated");
	} else if (sqlite3_changes(reg->db) != 1) {
		rc = moat_err_set(err, MOAT_ENOENT, "no identity '%s'", id);
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_cert_insert(struct moat_registry *reg, const char *serial_hex,
			      const char *identity, int64_t not_before, int64_t not_after,
			      const char *pem, struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(
		    reg->db,
		    "INSERT INTO certificates(serial, identity, not_before, not_after, pem) "
		    "VALUES (?1, ?2, ?3, ?4, ?5)",
		    -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "insert certificate");
	}
	sqlite3_bind_text(st, 1, serial_hex, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, identity, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, not_before);
	sqlite3_bind_int64(st, 4, not_after);
	sqlite3_bind_text(st, 5, pem, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (is_duplicate(reg, s)) {
		rc = moat_err_set(err, MOAT_EEXIST, "certificate serial %s already exists",
				  serial_hex);
	} else if (s != SQLITE_DONE) {
		rc = reg_fail(reg, err, "insert certificate");
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_serial_exists(struct moat_registry *reg, const char *serial_hex, bool *out_exists,
				struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	/* a deleted identity's serial is still in the CRL: never issue it again */
	if (sqlite3_prepare_v2(reg->db,
			       "SELECT 1 FROM certificates WHERE serial = ?1 UNION ALL "
			       "SELECT 1 FROM deleted_certificates WHERE serial = ?1",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "serial lookup");
	}
	sqlite3_bind_text(st, 1, serial_hex, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	sqlite3_finalize(st);
	if (s != SQLITE_ROW && s != SQLITE_DONE) {
		return reg_fail(reg, err, "serial lookup");
	}
	*out_exists = s == SQLITE_ROW;
	return 0;
}

/* The identity joined with its current certificate: the newest unrevoked one, else the
 * newest. */
#define IDENTITY_SELECT \
	"SELECT i.id, i.role, i.device_type, i.status, i.created_at, c.serial, c.not_before,  \
	 c.not_after, c.revoked_at, c.reason, i.simulated FROM identities i LEFT JOIN certificates c ON c.serial = ( \
	 SELECT serial FROM certificates WHERE identity = i.id                                \
	 ORDER BY (revoked_at IS NULL) DESC, not_before DESC, rowid DESC LIMIT 1) "

static void row_identity(sqlite3_stmt *st, struct moat_identity *out)
{
	memset(out, 0, sizeof(*out));
	reg_column_text(st, 0, out->id, sizeof(out->id));
	enum moat_role role = MOAT_ROLE_DEVICE;
	if (moat_role_parse((const char *)sqlite3_column_text(st, 1), &role, NULL) != 0) {
		role = MOAT_ROLE_DEVICE;
	}
	out->role = role;
	reg_column_text(st, 2, out->device_type, sizeof(out->device_type));
	out->status = status_parse((const char *)sqlite3_column_text(st, 3));
	out->created_at = sqlite3_column_int64(st, 4);
	reg_column_text(st, 5, out->serial_hex, sizeof(out->serial_hex));
	out->not_before = sqlite3_column_int64(st, 6);
	out->not_after = sqlite3_column_int64(st, 7);
	out->cert_revoked = sqlite3_column_type(st, 8) != SQLITE_NULL;
	out->revoked_reason = out->cert_revoked ? sqlite3_column_int(st, 9) : 0;
	out->simulated = sqlite3_column_int(st, 10) != 0;
}

int moat_registry_identity_get(struct moat_registry *reg, const char *id, struct moat_identity *out,
			       struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db, IDENTITY_SELECT "WHERE i.id = ?1", -1, &st, NULL) !=
	    SQLITE_OK) {
		return reg_fail(reg, err, "identity lookup");
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	int rc = 0;
	if (s == SQLITE_ROW) {
		row_identity(st, out);
	} else if (s == SQLITE_DONE) {
		rc = moat_err_set(err, MOAT_ENOENT, "no identity '%s'", id);
	} else {
		rc = reg_fail(reg, err, "identity lookup");
	}
	sqlite3_finalize(st);
	return rc;
}

/* On the statement layer (db.h): deletions.c and groups.c, converted, call it. */
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
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db, "UPDATE identities SET status = ?2 WHERE id = ?1", -1, &st,
			       NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "identity status");
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, moat_identity_status_name(status), -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	int rc = 0;
	if (s != SQLITE_DONE) {
		rc = reg_fail(reg, err, "identity status");
	} else if (sqlite3_changes(reg->db) == 0) {
		rc = moat_err_set(err, MOAT_ENOENT, "no identity '%s'", id);
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_identity_foreach(struct moat_registry *reg, int role, moat_identity_cb cb,
				   void *ctx, struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db, IDENTITY_SELECT "WHERE ?1 < 0 OR i.role = ?2 ORDER BY i.id",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "identity list");
	}
	sqlite3_bind_int(st, 1, role);
	sqlite3_bind_text(st, 2, role >= 0 ? moat_role_name((enum moat_role)role) : "", -1,
			  SQLITE_STATIC);
	int rc = 0;
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		struct moat_identity ident;
		row_identity(st, &ident);
		if ((rc = cb(&ident, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != SQLITE_DONE) {
		rc = reg_fail(reg, err, "identity list");
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_cert_revoke(struct moat_registry *reg, const char *serial_hex, int reason,
			      int64_t at, struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db,
			       "UPDATE certificates SET revoked_at = ?2, reason = ?3 "
			       "WHERE serial = ?1 AND revoked_at IS NULL",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "revoke");
	}
	sqlite3_bind_text(st, 1, serial_hex, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, at);
	sqlite3_bind_int(st, 3, reason);
	int s = sqlite3_step(st);
	int rc = 0;
	if (s != SQLITE_DONE) {
		rc = reg_fail(reg, err, "revoke");
	} else if (sqlite3_changes(reg->db) == 0) {
		bool exists = false;
		rc = moat_registry_serial_exists(reg, serial_hex, &exists, err);
		if (rc == 0) {
			rc = exists ? moat_err_set(err, MOAT_ESTATE,
						   "certificate %s is already revoked", serial_hex)
				    : moat_err_set(err, MOAT_ENOENT, "no certificate %s",
						   serial_hex);
		}
	}
	sqlite3_finalize(st);
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
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db, "SELECT pem FROM certificates WHERE serial = ?1", -1, &st,
			       NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "certificate lookup");
	}
	sqlite3_bind_text(st, 1, serial_hex, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	int rc = 0;
	if (s == SQLITE_ROW) {
		const unsigned char *pem = sqlite3_column_text(st, 0);
		*out_pem = strdup(pem ? (const char *)pem : "");
		if (!*out_pem) {
			rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		}
	} else if (s == SQLITE_DONE) {
		rc = moat_err_set(err, MOAT_ENOENT, "no certificate %s", serial_hex);
	} else {
		rc = reg_fail(reg, err, "certificate lookup");
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_meta_get_int(struct moat_registry *reg, const char *key, int64_t *out,
			       struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL) !=
	    SQLITE_OK) {
		return reg_fail(reg, err, "meta");
	}
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	int rc = 0;
	if (s == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
	} else if (s == SQLITE_DONE) {
		rc = moat_err_set(err, MOAT_ENOENT, "no setting '%s'", key);
	} else {
		rc = reg_fail(reg, err, "meta");
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_meta_set_int(struct moat_registry *reg, const char *key, int64_t value,
			       struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db,
			       "INSERT INTO meta(key, value) VALUES (?1, ?2) "
			       "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "meta");
	}
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, value);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : reg_fail(reg, err, "meta");
	sqlite3_finalize(st);
	return rc;
}
