/* registry_internal.h: shared by the files of src/registry; not part of the contract. */
#ifndef MOAT_REGISTRY_INTERNAL_H
#define MOAT_REGISTRY_INTERNAL_H

#include <sqlite3.h>

#include "moat/registry.h"

/* "moat" in ASCII: PRAGMA application_id of every registry.db */
#define MOAT_REGISTRY_APP_ID 0x6d6f6174

extern const char *const moat_registry_migrations[];
extern const int moat_registry_migration_count;

struct moat_registry {
	sqlite3 *db;
	char *path;
	int tx_depth;			/* >0 while the caller holds a transaction */
	sqlite3_stmt *telemetry_insert; /* ingest's hot path (monitor.c), prepared once */
};

/* "<path>: <what>: <SQLite's message>", MOAT_ENOSPC when the disk is full, else MOAT_EDB. */
int reg_fail(struct moat_registry *reg, struct moat_err *err, const char *what);
/* "registry: <what>: <SQLite's message>", MOAT_EDB: how failures of the release and update
 * event tables read (moatd logs them, tests match them). */
int reg_fail_table(struct moat_registry *reg, struct moat_err *err, const char *what);
/* Copies column col of the current row of st into buf (size bytes), "" for NULL,
 * truncated to fit. */
void reg_column_text(sqlite3_stmt *st, int col, char *buf, size_t size);
/* Steps st (columns: serial, identity, not_before, not_after, revoked_at, reason) and
 * hands each row to cb until it returns non-zero; finalizes st. The one reader of
 * certificate rows (moat_registry_cert_foreach and _foreach_of). */
int reg_cert_rows(struct moat_registry *reg, sqlite3_stmt *st, moat_cert_cb cb, void *ctx,
		  struct moat_err *err);

#endif
