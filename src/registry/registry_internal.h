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
	int tx_depth; /* >0 while the caller holds a transaction */
};

int reg_fail(struct moat_registry *reg, struct moat_err *err, const char *what);

#endif
