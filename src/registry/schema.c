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
	/* 2: firmware releases, their rollouts (releases.c), devices' update events and
	 * running versions (update_events.c) */
	"CREATE TABLE releases ("
	"  sha256 TEXT PRIMARY KEY,"
	"  device_type TEXT NOT NULL,"
	"  version TEXT NOT NULL,"
	"  security_version INTEGER NOT NULL CHECK (security_version >= 0),"
	"  size INTEGER NOT NULL CHECK (size > 0),"
	"  issued_at INTEGER NOT NULL,"
	"  expires_at INTEGER NOT NULL,"
	"  published_at INTEGER NOT NULL,"
	"  rollout_percent INTEGER NOT NULL CHECK (rollout_percent BETWEEN -1 AND 100),"
	"  UNIQUE (device_type, version)"
	") WITHOUT ROWID;"
	"CREATE TABLE release_devices ("
	"  sha256 TEXT NOT NULL REFERENCES releases(sha256),"
	"  device TEXT NOT NULL REFERENCES identities(id),"
	"  PRIMARY KEY (sha256, device)"
	") WITHOUT ROWID;"
	"CREATE TABLE update_events ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  device TEXT NOT NULL REFERENCES identities(id),"
	"  at INTEGER NOT NULL,"
	"  stage TEXT NOT NULL CHECK (stage IN ('checked','downloading','verified','installed',"
	"'confirmed','reverted','refused')),"
	"  version TEXT NOT NULL DEFAULT '',"
	"  running TEXT NOT NULL DEFAULT '',"
	"  reason TEXT NOT NULL DEFAULT ''"
	");"
	"CREATE INDEX update_events_device ON update_events(device, seq);"
	"CREATE TABLE device_firmware ("
	"  device TEXT PRIMARY KEY REFERENCES identities(id),"
	"  version TEXT NOT NULL,"
	"  reported_at INTEGER NOT NULL"
	") WITHOUT ROWID;",
	/* 3: deleted identities (registry.c, moat_registry_identity_delete): their
	 * certificates, all revoked, stay listed in the CRL, and the deletion is recorded */
	"CREATE TABLE deleted_certificates ("
	"  serial TEXT PRIMARY KEY,"
	"  identity TEXT NOT NULL,"
	"  not_before INTEGER NOT NULL,"
	"  not_after INTEGER NOT NULL,"
	"  revoked_at INTEGER NOT NULL,"
	"  reason INTEGER NOT NULL,"
	"  pem TEXT NOT NULL,"
	"  deleted_at INTEGER NOT NULL"
	");"
	"CREATE TABLE identity_deletions ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  id TEXT NOT NULL,"
	"  role TEXT NOT NULL,"
	"  device_type TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  deleted_at INTEGER NOT NULL,"
	"  last_serial TEXT NOT NULL,"
	"  certificates INTEGER NOT NULL"
	");"
	"CREATE INDEX identity_deletions_id ON identity_deletions(id, seq);",
	/* 4: enrollment over EST (enroll.c): devices that enroll themselves (a token's hash
	 * and expiry, or the CN of their claim certificate), the claim CAs, and a
	 * certificate's revocation deferred until a re-enrollment's grace period ends */
	"CREATE TABLE enrollments ("
	"  identity TEXT PRIMARY KEY REFERENCES identities(id),"
	"  token_sha256 TEXT,"
	"  claim_cn TEXT UNIQUE,"
	"  created_at INTEGER NOT NULL,"
	"  expires_at INTEGER NOT NULL,"
	"  used_at INTEGER,"
	"  CHECK (token_sha256 IS NOT NULL OR claim_cn IS NOT NULL)"
	") WITHOUT ROWID;"
	"CREATE TABLE claim_cas ("
	"  sha256 TEXT PRIMARY KEY,"
	"  subject TEXT NOT NULL,"
	"  pem TEXT NOT NULL,"
	"  added_at INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"ALTER TABLE certificates ADD COLUMN supersede_at INTEGER;",
	/* 5: devices made by `moat sim --create`, told apart from real ones (device list) */
	"ALTER TABLE identities ADD COLUMN simulated INTEGER NOT NULL DEFAULT 0 CHECK (simulated IN "
	"(0, 1));",
};

const int moat_registry_migration_count =
	(int)(sizeof(moat_registry_migrations) / sizeof(moat_registry_migrations[0]));
