/* open_pg.c: a registry on PostgreSQL (db.h). Connects, then creates or migrates the
 * schema from the one description, schema.c's migrations, each through
 * rdb_translate_schema, in one transaction under an advisory lock, so two processes opening
 * the same database migrate it once. The version lives in moat_schema (PostgreSQL has no
 * user_version). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry_internal.h"

#define MIGRATION_SQL_MAX (64 * 1024)

/* "postgresql://host[:port]/dbname" of url: no user, password or parameters, so it can name
 * the registry in messages and logs. */
static char *url_for_messages(const char *url)
{
	const char *p = strstr(url, "://");
	p = p ? p + 3 : url;
	const char *slash = strchr(p, '/');
	const char *at = memchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
	if (at) {
		p = at + 1;
	}
	size_t n = strcspn(p, "?");
	size_t size = n + sizeof("postgresql://");
	char *out = malloc(size);
	if (out) {
		snprintf(out, size, "postgresql://%.*s", (int)n, p);
	}
	return out;
}

static int pg_fail(struct moat_registry *reg, struct moat_err *err, const char *what)
{
	return moat_err_set(err, MOAT_EDB, "%s: %s: %s", reg->path, what, rdb_errmsg(&reg->conn));
}

/* The applied version, 0 for a database without a registry; refuses one that holds other
 * tables. Reads only: moat_schema may not exist yet. */
static int schema_version(struct moat_registry *reg, int *out, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	*out = 0;
	if (rdb_prepare(&reg->conn,
			"SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = "
			"current_schema() AND tablename = 'moat_schema'",
			&st) != 0) {
		return pg_fail(reg, err, "schema version");
	}
	int s = rdb_step(st);
	bool has_table = s == RDB_ROW && rdb_column_int64(st, 0) > 0;
	rdb_finalize(st);
	if (s != RDB_ROW) {
		return pg_fail(reg, err, "schema version");
	}
	int rc = 0;
	if (has_table) {
		if (rdb_prepare(&reg->conn, "SELECT version, application_id FROM moat_schema",
				&st) != 0) {
			return pg_fail(reg, err, "schema version");
		}
		s = rdb_step(st);
		if (s == RDB_ROW) {
			*out = (int)rdb_column_int64(st, 0);
			if (rdb_column_int64(st, 1) != MOAT_REGISTRY_APP_ID) {
				rc = moat_err_set(err, MOAT_EINVAL, "%s: not a moat registry",
						  reg->path);
			}
		} else if (s != RDB_DONE) {
			rc = pg_fail(reg, err, "schema version");
		}
		rdb_finalize(st);
		if (rc != 0 || *out > 0) {
			return rc;
		}
	}
	/* no version: only an empty database becomes a registry */
	if (rdb_prepare(&reg->conn,
			"SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = "
			"current_schema() AND tablename <> 'moat_schema'",
			&st) != 0) {
		return pg_fail(reg, err, "schema version");
	}
	s = rdb_step(st);
	if (s != RDB_ROW) {
		rc = pg_fail(reg, err, "schema version");
	} else if (rdb_column_int64(st, 0) != 0) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "%s: not a moat registry (the database holds other tables)",
				  reg->path);
	}
	rdb_finalize(st);
	return rc;
}

/* What mode wants of the version found: 0, or the refusal. */
static int version_check(struct moat_registry *reg, enum reg_pg_mode mode, int version,
			 struct moat_err *err)
{
	if (version > moat_registry_migration_count) {
		return moat_err_set(
			err, MOAT_ESTATE,
			"%s: schema version %d is newer than this moat (%d): upgrade moat",
			reg->path, version, moat_registry_migration_count);
	}
	if (mode == REG_PG_CREATE && version > 0) {
		return moat_err_set(err, MOAT_EEXIST, "%s: already holds a moat registry",
				    reg->path);
	}
	if (mode != REG_PG_CREATE && version == 0) {
		return moat_err_set(err, MOAT_ENOENT,
				    "%s: no registry (the database is empty: moat init "
				    "--registry-url makes one)",
				    reg->path);
	}
	if (mode == REG_PG_READONLY && version != moat_registry_migration_count) {
		return moat_err_set(err, MOAT_ESTATE,
				    "%s: schema version %d, this moat reads %d, and the registry "
				    "is opened read-only: open it once writable to migrate it",
				    reg->path, version, moat_registry_migration_count);
	}
	return 0;
}

/* Inside the caller's transaction: takes the migrators' lock, checks the version mode wants
 * and applies the pending migrations. *out_changed: whether it wrote anything. */
static int migrate_tx(struct moat_registry *reg, enum reg_pg_mode mode, bool *out_changed,
		      struct moat_err *err)
{
	struct rdb *c = &reg->conn;
	int version = 0;
	int rc;
	*out_changed = false;
	/* one migrator at a time: "moat" in ASCII, as SQLite's application_id */
	if (rdb_exec(c, "SELECT pg_advisory_xact_lock(1836019060)") != 0) {
		return pg_fail(reg, err, "migrate");
	}
	if ((rc = schema_version(reg, &version, err)) != 0 ||
	    (rc = version_check(reg, mode, version, err)) != 0) {
		return rc;
	}
	if (version == moat_registry_migration_count) {
		return 0;
	}
	if (rdb_exec(c, "CREATE TABLE IF NOT EXISTS moat_schema (version BIGINT NOT NULL, "
			"application_id BIGINT NOT NULL)") != 0) {
		return pg_fail(reg, err, "migrate");
	}
	char *sql = malloc(MIGRATION_SQL_MAX);
	if (!sql) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	for (int i = version; i < moat_registry_migration_count; i++) {
		if (rdb_translate_schema(moat_registry_migrations[i], sql, MIGRATION_SQL_MAX) !=
		    0) {
			rc = moat_err_set(err, MOAT_EDB, "%s: migration %d: cannot translate",
					  reg->path, i + 1);
			break;
		}
		if (rdb_exec(c, sql) != 0) {
			rc = pg_fail(reg, err, "migrate");
			moat_err_prefix(err, "migration %d", i + 1);
			break;
		}
	}
	free(sql);
	if (rc != 0) {
		return rc;
	}
	char up[160];
	snprintf(up, sizeof(up),
		 "DELETE FROM moat_schema; INSERT INTO moat_schema(version, application_id) "
		 "VALUES (%d, %d)",
		 moat_registry_migration_count, MOAT_REGISTRY_APP_ID);
	if (rdb_exec(c, up) != 0) {
		return pg_fail(reg, err, "migrate");
	}
	*out_changed = true;
	return 0;
}

static int migrate(struct moat_registry *reg, enum reg_pg_mode mode, struct moat_err *err)
{
	struct rdb *c = &reg->conn;
	bool changed = false;
	int rc;
	if (rdb_begin(c) != 0) {
		return pg_fail(reg, err, "migrate");
	}
	if ((rc = migrate_tx(reg, mode, &changed, err)) != 0) {
		rdb_rollback(c);
		return rc;
	}
	if (!changed) {
		rdb_rollback(c); /* nothing to do: the lock goes with the transaction */
		return 0;
	}
	if (rdb_commit(c) != 0) {
		rc = pg_fail(reg, err, "migrate");
		rdb_rollback(c);
		return rc;
	}
	return 0;
}

/* Read-only: every transaction of the session refuses writes; the version must be this
 * moat's (nothing migrates through a read-only open). */
static int open_readonly(struct moat_registry *reg, struct moat_err *err)
{
	int version = 0;
	int rc;
	if (rdb_exec(&reg->conn, "SET default_transaction_read_only = on") != 0) {
		return pg_fail(reg, err, "read-only");
	}
	if ((rc = schema_version(reg, &version, err)) != 0) {
		return rc;
	}
	return version_check(reg, REG_PG_READONLY, version, err);
}

static int connect_url(const char *url, struct moat_registry **out_reg, struct moat_err *err)
{
	const char *why = NULL;
	if (rdb_url_check(url, &why) != 0) {
		return moat_err_set(err, MOAT_EINVAL, "registry URL %s", why);
	}
	struct moat_registry *reg = calloc(1, sizeof(*reg));
	if (!reg || !(reg->path = url_for_messages(url))) {
		free(reg);
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	if (rdb_connect_pg(&reg->conn, url) != 0) {
		int rc = moat_err_set(err, MOAT_EDB, "%s: %s", reg->path, rdb_errmsg(&reg->conn));
		moat_registry_close(reg);
		return rc;
	}
	*out_reg = reg;
	return 0;
}

int reg_open_postgres(const char *url, enum reg_pg_mode mode, struct moat_registry **out_reg,
		      struct moat_err *err)
{
	struct moat_registry *reg = NULL;
	int rc = connect_url(url, &reg, err);
	if (rc != 0) {
		return rc;
	}
	rc = mode == REG_PG_READONLY ? open_readonly(reg, err) : migrate(reg, mode, err);
	if (rc != 0) {
		moat_registry_close(reg);
		return rc;
	}
	*out_reg = reg;
	return 0;
}

int reg_open_postgres_create_tx(const char *url, struct moat_registry **out_reg,
				struct moat_err *err)
{
	struct moat_registry *reg = NULL;
	bool changed = false;
	int rc = connect_url(url, &reg, err);
	if (rc != 0) {
		return rc;
	}
	if (rdb_begin(&reg->conn) != 0) {
		rc = pg_fail(reg, err, "migrate");
	} else if ((rc = migrate_tx(reg, REG_PG_CREATE, &changed, err)) != 0) {
		rdb_rollback(&reg->conn);
	}
	if (rc != 0) {
		moat_registry_close(reg);
		return rc;
	}
	*out_reg = reg;
	return 0;
}

int moat_registry_url_check(const char *url, struct moat_err *err)
{
	/* a password first, whatever else is wrong: it must not stay in moat.conf */
	const char *p = strstr(url, "://");
	if (p) {
		p += 3;
		const char *slash = strchr(p, '/');
		const char *at = memchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
		if (at && memchr(p, ':', (size_t)(at - p))) {
			return moat_err_set(err, MOAT_EINVAL,
					    "holds a password: put it in ~/.pgpass (or PGPASSFILE) "
					    "of the account moat runs as, not in moat.conf");
		}
	}
	const char *why = NULL; /* password= parameters too, however encoded */
	if (rdb_url_check(url, &why) != 0) {
		return moat_err_set(err, MOAT_EINVAL, "%s", why);
	}
	if (!rdb_pg_available()) {
		return moat_err_set(
			err, MOAT_EINVAL,
			"this moat was built without PostgreSQL support (libpq): use the "
			"SQLite registry (remove the key), or rebuild with libpq-dev "
			"installed");
	}
	return 0;
}
