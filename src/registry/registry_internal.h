/* registry_internal.h: shared by the files of src/registry; not part of the contract. */
#ifndef MOAT_REGISTRY_INTERNAL_H
#define MOAT_REGISTRY_INTERNAL_H

#include <sqlite3.h>

#include "db.h"
#include "moat/registry.h"

/* "moat" in ASCII: PRAGMA application_id of every registry.db */
#define MOAT_REGISTRY_APP_ID 0x6d6f6174

extern const char *const moat_registry_migrations[];
extern const int moat_registry_migration_count;

struct moat_registry {
	sqlite3 *db;
	char *path;
	int tx_depth;			   /* >0 while the caller holds a transaction */
	struct rdb_stmt *telemetry_insert; /* ingest's hot path (monitor.c), prepared once */
	struct rdb conn; /* the statement layer (db.h): the files converted to it */
};

/* The registry's connection in the statement layer; a SQLite registry's is attached to
 * reg->db at first use. */
static inline struct rdb *reg_db(struct moat_registry *reg)
{
	if (reg->conn.backend == RDB_NONE) {
		rdb_attach_sqlite(&reg->conn, reg->db);
	}
	return &reg->conn;
}

/* "<path>: <what>: <message>" (MOAT_ENOSPC when the disk is full, else MOAT_EDB) and
 * "registry: <what>: <message>" (MOAT_EDB: how failures of the release and update event
 * tables read; moatd logs them, tests match them), from either backend. */
int reg_db_fail(struct moat_registry *reg, struct moat_err *err, const char *what);
int reg_db_fail_table(struct moat_registry *reg, struct moat_err *err, const char *what);
/* Runs sql (no parameters, no rows): "<path>: <message>" on failure, as registry.c's. */
int reg_db_exec(struct moat_registry *reg, const char *sql, struct moat_err *err);
/* How a registry on PostgreSQL is opened: CREATE wants a database without a registry (an
 * empty one, or one holding nothing but an unversioned moat_schema) and makes the schema;
 * OPEN wants a registry there and applies pending migrations; READONLY wants this moat's
 * schema version and makes every transaction of the connection read-only. */
enum reg_pg_mode { REG_PG_CREATE, REG_PG_OPEN, REG_PG_READONLY };
/* A registry on PostgreSQL (open_pg.c): connects to url, then as mode says (schema.c's
 * migrations through rdb_translate_schema). */
int reg_open_postgres(const char *url, enum reg_pg_mode mode, struct moat_registry **out_reg,
		      struct moat_err *err);
/* REG_PG_CREATE inside a transaction left open: the schema made (and the migrators' lock
 * held) but nothing committed, so the caller's writes and the schema commit together or
 * not at all (copy.c: moat_registry_copy). The caller ends it with rdb_commit or
 * rdb_rollback; closing the registry with it open rolls everything back. */
int reg_open_postgres_create_tx(const char *url, struct moat_registry **out_reg,
				struct moat_err *err);
/* A registry in a SQLite file (open_sqlite.c): moat_registry_open and _open_readonly of a
 * path. */
int reg_open_sqlite(const char *path, bool create, struct moat_registry **out_reg,
		    struct moat_err *err);
int reg_open_sqlite_readonly(const char *path, struct moat_registry **out_reg,
			     struct moat_err *err);

/* Steps st (columns: serial, identity, not_before, not_after, revoked_at, reason) and
 * hands each row to cb until it returns non-zero; finalizes st. The one reader of
 * certificate rows (moat_registry_cert_foreach and _foreach_of). */
int reg_cert_rows(struct moat_registry *reg, struct rdb_stmt *st, moat_cert_cb cb, void *ctx,
		  struct moat_err *err);

#endif
