/* regdb.c: the registry's error messages over the statement layer (db.h): the words the
 * files used on raw SQLite, so a converted file fails as it did. */
#include <stdio.h>

#include "registry_internal.h"

int reg_db_fail(struct moat_registry *reg, struct moat_err *err, const char *what)
{
	struct rdb *c = reg_db(reg);
	int rc = rdb_errcode(c) == RDB_E_FULL ? MOAT_ENOSPC : MOAT_EDB;
	return moat_err_set(err, rc, "%s: %s: %s", reg->path, what, rdb_errmsg(c));
}

int reg_db_fail_table(struct moat_registry *reg, struct moat_err *err, const char *what)
{
	return moat_err_set(err, MOAT_EDB, "registry: %s: %s", what, rdb_errmsg(reg_db(reg)));
}

int reg_db_exec(struct moat_registry *reg, const char *sql, struct moat_err *err)
{
	struct rdb *c = reg_db(reg);
	int rc = rdb_exec(c, sql);
	if (rc != 0) {
		return moat_err_set(err, rc == RDB_E_FULL ? MOAT_ENOSPC : MOAT_EDB, "%s: %s",
				    reg->path, rdb_errmsg(c));
	}
	return 0;
}
