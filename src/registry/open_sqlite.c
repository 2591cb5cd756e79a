/* open_sqlite.c: a registry in a SQLite file (registry.db): opening it (never through a
 * symbolic link; created 0600), refusing a file that is not moat's before anything writes to
 * it, WAL, and the migrations of schema.c as written, with the version in PRAGMA
 * user_version. Opening a file is SQLite's alone (the PRAGMAs too, db.h); the statements
 * after it go through the statement layer like every other file's. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moat/fsutil.h"
#include "registry_internal.h"

static int pragma_int(struct moat_registry *reg, const char *sql, int *out, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), sql, &st) != 0) {
		return reg_db_fail(reg, err, sql);
	}
	if (rdb_step(st) != RDB_ROW) {
		rdb_finalize(st);
		return moat_err_set(err, MOAT_EDB, "%s: not a moat registry (%s)", reg->path,
				    rdb_errmsg(reg_db(reg)));
	}
	*out = (int)rdb_column_int64(st, 0);
	rdb_finalize(st);
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
	if ((rc = reg_db_exec(reg, "BEGIN IMMEDIATE", err)) != 0) {
		return rc;
	}
	for (int i = version; i < moat_registry_migration_count; i++) {
		if ((rc = reg_db_exec(reg, moat_registry_migrations[i], err)) != 0) {
			moat_err_prefix(err, "migration %d", i + 1);
			goto fail;
		}
	}
	char sql[96];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d; PRAGMA application_id = %d",
		 moat_registry_migration_count, MOAT_REGISTRY_APP_ID);
	if ((rc = reg_db_exec(reg, sql, err)) != 0 || (rc = reg_db_exec(reg, "COMMIT", err)) != 0) {
		goto fail;
	}
	return 0;
fail:
	rdb_exec(reg_db(reg), "ROLLBACK");
	return rc;
}

int reg_open_sqlite(const char *path, bool create, struct moat_registry **out_reg,
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
	rdb_attach_sqlite(&reg->conn, reg->db);
	int version = 0;
	if ((rc = check_ours(reg, create, &version, err)) != 0) {
		goto fail;
	}
	if ((rc = reg_db_exec(reg,
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

int reg_open_sqlite_readonly(const char *path, struct moat_registry **out_reg, struct moat_err *err)
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
	rdb_attach_sqlite(&reg->conn, reg->db);
	rdb_attach_sqlite(&reg->conn, reg->db);
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
