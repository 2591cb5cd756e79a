/* schema.c: the registry's schema as an ordered list of migrations. PRAGMA user_version
 * holds how many have been applied; opening a registry applies the rest in one
 * transaction. Append new migrations at the end; never edit an applied one. */
#include "registry_internal.h"

const char *const moat_registry_migrations[] = {
	/* 1: identities, certificates, counters */
	"CREATE TABLE identities ("
	"  id TEXT PRIMARY KEY,"
	"  role TEXT NOT NULL CHECK (role IN ('device','service','operator')),"
	"  device_type TEXT NOT NULL DEFAULT '',"
	"  status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active','revoked','disabled')),"
	"  created_at INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE certificates ("
	"  serial TEXT PRIMARY KEY,"
	"  identity TEXT NOT NULL REFERENCES identities(id),"
	"  not_before INTEGER NOT NULL,"
	"  not_after INTEGER NOT NULL,"
	"  revoked_at INTEGER,"
	"  reason INTEGER NOT NULL DEFAULT 0,"
	"  pem TEXT NOT NULL"
	");"
	"CREATE INDEX certificates_identity ON certificates(identity);"
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
	"INSERT INTO meta(key, value) VALUES ('crl_number', 0);",
};

const int moat_registry_migration_count =
	(int)(sizeof(moat_registry_migrations) / sizeof(moat_registry_migrations[0]));
