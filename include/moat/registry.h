/* registry.h: the registry, the deployment's source of truth, and the only code that speaks
 * SQL: every table is read and written through the functions below. It lives in a SQLite
 * file (registry.db, the default) or in a PostgreSQL database (moat.conf's [registry] url);
 * the functions behave alike on both (src/registry/db.h says where the engines differ).
 *
 * Tables (see src/registry/schema.c, migrations applied on open; the version in PRAGMA
 * user_version, on PostgreSQL in a table moat_schema):
 *   identities(id, role, device_type, status, created_at)
 *   certificates(serial, identity, not_before, not_after, status, revoked_at, reason, pem)
 *   meta(key, value)                 crl_number and other counters
 *   deleted_certificates, identity_deletions   what deleted identities leave (deletions.c)
 *   releases, release_devices        published firmware and the devices a list rollout names
 *   update_events, device_firmware   what devices reported of their updates, what they run
 *   enrollments, claim_cas            devices that enroll themselves over EST (enroll.c)
 *   device_tags, device_groups        tags and named groups (groups.c)
 *   rollouts, rollout_phases, rollout_devices
 *                                     phased rollouts of a release over a group (rollouts.c)
 *   jobs, job_results                 a command sent to many devices, per device (jobs.c)
 *   device_state, security_events,   what moatd's ingest saw of each device, the security
 *   telemetry, telemetry_agg         events, raw telemetry and its minute/hour aggregates
 *                                    (monitor.c)
 * A new table comes with a migration appended to schema.c and its functions here, in a
 * file of src/registry of its own; no caller ever sees an SQL handle or statement.
 *
 * Contract: every function runs inside the caller's transaction when one is open
 * (moat_registry_begin), otherwise in its own. The registry never touches files other than
 * registry.db (none on PostgreSQL). Strings copied into out structs are NUL-terminated and bounded.
 */
#ifndef MOAT_REGISTRY_H
#define MOAT_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"
#include "moat/identity.h"
#include "moat/manifest.h"
#include "moat/messages.h"
#include "moat/pki.h"
#include "moat/secevent.h"
#include "moat/update_schema.h"

struct moat_registry;

enum moat_identity_status {
	MOAT_ID_ACTIVE = 0,
	MOAT_ID_REVOKED = 1,  /* its certificate was revoked and none replaced it */
	MOAT_ID_DISABLED = 2, /* refused by the broker plugin although its certificate is valid */
};
const char *moat_identity_status_name(enum moat_identity_status st);

struct moat_identity {
	char id[MOAT_ID_BUF_LEN];
	enum moat_role role;
	char device_type[MOAT_DEVICE_TYPE_MAX_LEN + 1];
	enum moat_identity_status status;
	int64_t created_at;
	/* the identity's current (newest unrevoked, else newest) certificate */
	char serial_hex[MOAT_SERIAL_HEX_LEN];
	int64_t not_before;
	int64_t not_after;
	bool cert_revoked;
	int revoked_reason; /* RFC 5280 reason code of that certificate when cert_revoked */
	bool simulated;	    /* a device made by `moat sim --create` */
};

struct moat_cert_row {
	char serial_hex[MOAT_SERIAL_HEX_LEN];
	char identity[MOAT_ID_BUF_LEN];
	int64_t not_before;
	int64_t not_after;
	bool revoked;
	int64_t revoked_at;
	int reason;
};

/* Whether location is a registry URL (postgresql:// or postgres://) rather than a file. */
bool moat_registry_is_url(const char *location);
/* location: the path of a SQLite file, or a postgresql:// URL (moat_registry_url_check'd by
 * the caller: moat.conf's [registry] url). create: make a new registry (the file must not
 * exist; the database must hold no registry and no other table: MOAT_EEXIST, MOAT_EINVAL);
 * else open an existing one, which must carry moat's application_id (an empty database is
 * MOAT_ENOENT, as a missing file). Applies pending migrations. */
MOAT_MUST_CHECK int moat_registry_open(const char *location, bool create,
				       struct moat_registry **out_reg, struct moat_err *err);
/* Opens an existing registry for reading only, where its directory cannot be written (a
 * read-only file system, a copy owned by another account): no WAL switch, no migration, no
 * -shm file created (SQLite's immutable mode, unless a -wal file holds transactions, which
 * are then read too). Refuses a schema other than this moat's (MOAT_ESTATE: it cannot be
 * migrated here). Every write through it fails. On PostgreSQL: a connection whose every
 * transaction is read-only (default_transaction_read_only). */
MOAT_MUST_CHECK int moat_registry_open_readonly(const char *location,
						struct moat_registry **out_reg,
						struct moat_err *err);
/* The URL of a registry on PostgreSQL (moat.conf's [registry] url):
 * postgresql://[user@]host[:port]/dbname[?params]. MOAT_EINVAL saying what is wrong: a
 * malformed URL, a password in it (it belongs in the account's ~/.pgpass or PGPASSFILE,
 * not in moat.conf), or a moat built without libpq. */
MOAT_MUST_CHECK int moat_registry_url_check(const char *url, struct moat_err *err);
void moat_registry_close(struct moat_registry *reg);

/* Copies reg's database, as of one moment, into a new file dest_path (created 0600, must
 * not exist; a standalone database, no -wal) with SQLite's online backup API, while other
 * connections keep reading and writing. Waits at most about 10 s for a writer. On failure
 * dest_path is removed. */
MOAT_MUST_CHECK int moat_registry_backup(struct moat_registry *reg, const char *dest_path,
					 struct moat_err *err);

/* ---- Copying a SQLite registry into PostgreSQL (copy.c: `moat registry migrate`) ---- */

#define MOAT_REGISTRY_TABLES_MAX 64
#define MOAT_REGISTRY_TABLE_NAME_MAX 63

/* One table's proof: its rows, a SHA-256 over them in primary-key order (then the other
 * columns; every value rendered by its declared type, alike on both engines) and, for a
 * table whose integer key hands out ids (AUTOINCREMENT, an identity column), the highest
 * id handed out: a new row gets a larger one. */
struct moat_registry_table_sum {
	char table[MOAT_REGISTRY_TABLE_NAME_MAX + 1];
	int64_t rows;
	uint8_t sha256[32];
	bool has_seq;
	int64_t seq;
};
struct moat_registry_sums {
	size_t count; /* tables, sorted by name */
	struct moat_registry_table_sum tables[MOAT_REGISTRY_TABLES_MAX];
};
/* Every table of reg (either backend) summed as above. */
MOAT_MUST_CHECK int moat_registry_sums(struct moat_registry *reg, struct moat_registry_sums *out,
				       struct moat_err *err);
/* The index of the first table whose sums differ (or that only one side has), -1 when
 * they are equal. */
int moat_registry_sums_diff(const struct moat_registry_sums *a, const struct moat_registry_sums *b);

struct moat_registry_copy_report {
	struct moat_registry_sums src; /* the SQLite registry's */
	struct moat_registry_sums dst; /* the copy's, equal when the copy succeeded */
};
/* Copies src, a SQLite registry (opened read-only is enough), into a new registry at url, a
 * PostgreSQL database that must hold no table (MOAT_EEXIST for a registry, MOAT_EINVAL for
 * other tables). In one PostgreSQL transaction: the schema by the migrations, every row,
 * each sequence continued from the source's, then the proof: both schemas described from
 * their catalogs must agree, and every table's sums (above) on both sides must be equal
 * (MOAT_EVERIFY naming the first table that differs). Only then does it commit: on any
 * failure the target holds nothing. A SQLite value of another type than its column's is
 * refused (MOAT_EINVAL). out holds both sides' sums whenever the proof ran. */
MOAT_MUST_CHECK int moat_registry_copy(struct moat_registry *src, const char *url,
				       struct moat_registry_copy_report *out, struct moat_err *err);

MOAT_MUST_CHECK int moat_registry_begin(struct moat_registry *reg, struct moat_err *err);
MOAT_MUST_CHECK int moat_registry_commit(struct moat_registry *reg, struct moat_err *err);
void moat_registry_rollback(struct moat_registry *reg);
/* Inside a transaction: marks a point that moat_registry_rollback_point undoes back to
 * (the changes since, and nothing before) and moat_registry_release_point keeps; one
 * point at a time. Lets one transaction hold several independent changes, each refused
 * alone (moatd commits the enrollments that arrive together at once). */
MOAT_MUST_CHECK int moat_registry_point(struct moat_registry *reg, struct moat_err *err);
MOAT_MUST_CHECK int moat_registry_release_point(struct moat_registry *reg, struct moat_err *err);
void moat_registry_rollback_point(struct moat_registry *reg);

/* MOAT_EEXIST when id exists. */
MOAT_MUST_CHECK int moat_registry_identity_insert(struct moat_registry *reg, const char *id,
						  enum moat_role role, const char *device_type,
						  int64_t now, struct moat_err *err);
/* Marks id as a simulated device (moat sim --create); callers do it in the transaction
 * that inserts it. MOAT_ENOENT when there is no such identity. */
MOAT_MUST_CHECK int moat_registry_identity_set_simulated(struct moat_registry *reg, const char *id,
							 struct moat_err *err);
/* MOAT_EEXIST when the serial exists (the caller draws another). */
MOAT_MUST_CHECK int moat_registry_cert_insert(struct moat_registry *reg, const char *serial_hex,
					      const char *identity, int64_t not_before,
					      int64_t not_after, const char *pem,
					      struct moat_err *err);
/* Whether serial_hex was ever issued, by a registered or a deleted identity: callers draw
 * new serials through it (cert_insert itself only knows the registered ones). */
MOAT_MUST_CHECK int moat_registry_serial_exists(struct moat_registry *reg, const char *serial_hex,
						bool *out_exists, struct moat_err *err);
/* MOAT_ENOENT when id is unknown. */
MOAT_MUST_CHECK int moat_registry_identity_get(struct moat_registry *reg, const char *id,
					       struct moat_identity *out, struct moat_err *err);
MOAT_MUST_CHECK int moat_registry_identity_exists(struct moat_registry *reg, const char *id,
						  bool *out_exists, struct moat_err *err);
MOAT_MUST_CHECK int moat_registry_identity_set_status(struct moat_registry *reg, const char *id,
						      enum moat_identity_status st,
						      struct moat_err *err);

/* Calls cb for each identity ordered by id; role < 0 means all roles. A non-zero return
 * from cb stops the walk and is returned. */
typedef int (*moat_identity_cb)(const struct moat_identity *ident, void *ctx);
MOAT_MUST_CHECK int moat_registry_identity_foreach(struct moat_registry *reg, int role,
						   moat_identity_cb cb, void *ctx,
						   struct moat_err *err);

/* Marks a certificate revoked (MOAT_ENOENT if unknown; revoking twice is MOAT_ESTATE). */
MOAT_MUST_CHECK int moat_registry_cert_revoke(struct moat_registry *reg, const char *serial_hex,
					      int reason, int64_t at, struct moat_err *err);
typedef int (*moat_cert_cb)(const struct moat_cert_row *row, void *ctx);
/* Every certificate of the registered identities, ordered by serial; revoked_only: every
 * revoked certificate, those of deleted identities included (what the CRL lists). */
MOAT_MUST_CHECK int moat_registry_cert_foreach(struct moat_registry *reg, bool revoked_only,
					       moat_cert_cb cb, void *ctx, struct moat_err *err);
/* The PEM of a certificate; caller frees. */
MOAT_MUST_CHECK int moat_registry_cert_pem(struct moat_registry *reg, const char *serial_hex,
					   char **out_pem, struct moat_err *err);

/* ---- deleted identities (src/registry/deletions.c) ---- */

/* What is kept of a deleted identity. */
struct moat_deletion {
	char id[MOAT_ID_BUF_LEN];
	enum moat_role role;
	char device_type[MOAT_DEVICE_TYPE_MAX_LEN + 1];
	int64_t created_at;
	int64_t deleted_at;
	char last_serial_hex[MOAT_SERIAL_HEX_LEN]; /* its newest certificate; "" when none */
	int64_t certificates;			   /* how many it had, all revoked */
	int64_t times;				   /* how often this name was deleted */
};

/* Deletes identity id: its certificates move to deleted_certificates (still listed by
 * moat_registry_cert_foreach(revoked_only), still taken for moat_registry_serial_exists),
 * its update events, running firmware and rollout-list entries and its row go, and the
 * deletion is recorded (moat_registry_deletion_last). All or nothing, within the caller's
 * transaction when one is open. MOAT_ENOENT when id is unknown; MOAT_ESTATE when one of its
 * certificates is not revoked (revoke first). The name may be registered again afterwards,
 * as a new identity. */
MOAT_MUST_CHECK int moat_registry_identity_delete(struct moat_registry *reg, const char *id,
						  int64_t at, struct moat_err *err);
/* The newest deletion of id; MOAT_ENOENT when it was never deleted. */
MOAT_MUST_CHECK int moat_registry_deletion_last(struct moat_registry *reg, const char *id,
						struct moat_deletion *out, struct moat_err *err);

/* Counters and small settings. get: MOAT_ENOENT when absent. */
MOAT_MUST_CHECK int moat_registry_meta_get_int(struct moat_registry *reg, const char *key,
					       int64_t *out, struct moat_err *err);
MOAT_MUST_CHECK int moat_registry_meta_set_int(struct moat_registry *reg, const char *key,
					       int64_t value, struct moat_err *err);
/* Adds 1 to key's value and returns the new one, in one statement: two writers never get
 * the same number. On PostgreSQL the row stays locked until the caller's transaction ends,
 * so a second writer of the same counter waits there and then reads what the first
 * committed (on SQLite the transaction's write lock does the same). MOAT_ENOENT when absent. */
MOAT_MUST_CHECK int moat_registry_meta_next(struct moat_registry *reg, const char *key,
					    int64_t *out, struct moat_err *err);

/* ---- firmware releases (src/registry/releases.c) ---- */

#define MOAT_ROLLOUT_PERCENT_MAX 100
#define MOAT_ROLLOUT_DEVICES_MAX 10000

struct moat_release {
	char sha256_hex[MOAT_SHA256_HEX_LEN + 1];
	char device_type[MOAT_DEVICE_TYPE_MAX_LEN + 1];
	char version[MOAT_FW_VERSION_MAX_LEN + 1];
	int64_t security_version;
	uint64_t size;
	int64_t issued_at;
	int64_t expires_at;
	int64_t published_at;
	int rollout_percent; /* 0..100; -1: only the devices listed for it */
	size_t device_count; /* listed devices (rollout_percent == -1) */
};

/* Records a release and, for rollout_percent == -1, its devices (each an identity name),
 * all in one transaction of its own (the caller MUST NOT hold one open): on failure no row
 * is written. MOAT_EINVAL for a rollout that does not fit the device list, a size past
 * INT64_MAX, or a listed device named twice or not registered; MOAT_EEXIST when the
 * sha256 or (type, version) is already published. */
MOAT_MUST_CHECK int moat_registry_release_insert(struct moat_registry *reg,
						 const struct moat_release *r, char *const *devices,
						 size_t device_count, struct moat_err *err);
/* MOAT_ENOENT when no release has this digest. */
MOAT_MUST_CHECK int moat_registry_release_get(struct moat_registry *reg, const char *sha256_hex,
					      struct moat_release *out, struct moat_err *err);
typedef int (*moat_release_cb)(const struct moat_release *r, void *ctx);
/* Every release (device_type NULL) or those of one type, by type then publication. A
 * non-zero return from cb stops the walk and is returned. */
MOAT_MUST_CHECK int moat_registry_release_foreach(struct moat_registry *reg,
						  const char *device_type, moat_release_cb cb,
						  void *ctx, struct moat_err *err);
/* Is device_id on the device list of the release sha256_hex? (false for a release without
 * a list, or none with that digest.) */
MOAT_MUST_CHECK int moat_registry_release_lists(struct moat_registry *reg, const char *sha256_hex,
						const char *device_id, bool *out_listed,
						struct moat_err *err);

/* ---- devices' update events (src/registry/update_events.c) ---- */

#define MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE 100 /* older events of a device are pruned */

/* struct moat_update_event and the stage names (what update_events.stage holds) are the
 * schema's: moat/update_schema.h. */

/* Records an event and, when ev->running is set, the version the device runs, in one
 * transaction of its own (the caller MUST NOT hold one open). Keeps the last
 * MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE events of each device, so a chatty device cannot grow
 * the registry without bound. MOAT_ENOENT when ev->device is not a registered identity. */
MOAT_MUST_CHECK int moat_registry_update_event_record(struct moat_registry *reg,
						      const struct moat_update_event *ev,
						      struct moat_err *err);
typedef int (*moat_update_event_cb)(const struct moat_update_event *ev, void *ctx);
/* The last `limit` events of a device, newest first. A non-zero return from cb stops the
 * walk and is returned. */
MOAT_MUST_CHECK int moat_registry_update_event_foreach(struct moat_registry *reg,
						       const char *device_id, int limit,
						       moat_update_event_cb cb, void *ctx,
						       struct moat_err *err);
/* The version a device last reported running; "" when never. */
MOAT_MUST_CHECK int moat_registry_running_version(struct moat_registry *reg, const char *device_id,
						  char out[MOAT_FW_VERSION_MAX_LEN + 1],
						  struct moat_err *err);

/* ---- enrollment over EST (src/registry/enroll.c) ---- */

#define MOAT_CLAIM_CN_MAX_LEN 64
#define MOAT_CLAIM_SUBJECT_MAX_LEN 256

/* A device registered to enroll itself: by a one-time token (only its SHA-256 is kept),
 * by a claim certificate whose CN is claim_cn, or both. */
struct moat_enrollment {
	char identity[MOAT_ID_BUF_LEN];
	bool has_token;
	char token_sha256_hex[MOAT_SHA256_HEX_LEN + 1];
	char claim_cn[MOAT_CLAIM_CN_MAX_LEN + 1]; /* "" when none */
	int64_t created_at;
	int64_t expires_at; /* the token's expiry (0 without a token) */
	bool used;	    /* it enrolled: neither token nor claim works again */
	int64_t used_at;
};

/* MOAT_EEXIST when the identity already has one, or claim_cn names another device. The
 * identity row must exist. */
MOAT_MUST_CHECK int moat_registry_enrollment_insert(struct moat_registry *reg,
						    const struct moat_enrollment *e,
						    struct moat_err *err);
/* MOAT_ENOENT when id (claim_cn) has no enrollment. */
MOAT_MUST_CHECK int moat_registry_enrollment_get(struct moat_registry *reg, const char *id,
						 struct moat_enrollment *out, struct moat_err *err);
MOAT_MUST_CHECK int moat_registry_enrollment_by_claim(struct moat_registry *reg,
						      const char *claim_cn,
						      struct moat_enrollment *out,
						      struct moat_err *err);
/* Marks id's enrollment used at now, once: MOAT_ESTATE when it was used already (or there
 * is none), whoever else writes the registry. */
MOAT_MUST_CHECK int moat_registry_enrollment_use(struct moat_registry *reg, const char *id,
						 int64_t now, struct moat_err *err);

struct moat_claim_ca {
	char sha256_hex[MOAT_SHA256_HEX_LEN + 1]; /* of the certificate's DER */
	char subject[MOAT_CLAIM_SUBJECT_MAX_LEN + 1];
	const char *pem; /* valid during the callback only */
	int64_t added_at;
};
/* MOAT_EEXIST when that certificate is registered already. */
MOAT_MUST_CHECK int moat_registry_claim_ca_insert(struct moat_registry *reg, const char *sha256_hex,
						  const char *subject, const char *pem, int64_t now,
						  struct moat_err *err);
/* MOAT_ENOENT when none has that digest. */
MOAT_MUST_CHECK int moat_registry_claim_ca_remove(struct moat_registry *reg, const char *sha256_hex,
						  struct moat_err *err);
typedef int (*moat_claim_ca_cb)(const struct moat_claim_ca *ca, void *ctx);
/* Every claim CA by digest; a non-zero return from cb stops the walk and is returned. */
MOAT_MUST_CHECK int moat_registry_claim_ca_foreach(struct moat_registry *reg, moat_claim_ca_cb cb,
						   void *ctx, struct moat_err *err);

/* The unrevoked certificate serial_hex is to be revoked (superseded) at `at`: a
 * re-enrollment's grace period. MOAT_ENOENT when there is no such unrevoked certificate. */
MOAT_MUST_CHECK int moat_registry_cert_supersede_at(struct moat_registry *reg,
						    const char *serial_hex, int64_t at,
						    struct moat_err *err);
/* The unrevoked certificates whose supersede_at is at or before now (row.revoked false). */
MOAT_MUST_CHECK int moat_registry_cert_supersede_due(struct moat_registry *reg, int64_t now,
						     moat_cert_cb cb, void *ctx,
						     struct moat_err *err);

/* ---- tags and groups (src/registry/groups.c) ---- */

#include "moat/rollout.h"

/* Adds tag to device (already there: nothing changes). MOAT_ENOENT when the identity is
 * unknown, MOAT_EINVAL past MOAT_TAGS_PER_DEVICE_MAX tags. Tags are checked by the caller
 * (moat_tag_check). */
MOAT_MUST_CHECK int moat_registry_tag_add(struct moat_registry *reg, const char *device,
					  const char *tag, struct moat_err *err);
/* MOAT_ENOENT when the device does not carry tag. */
MOAT_MUST_CHECK int moat_registry_tag_remove(struct moat_registry *reg, const char *device,
					     const char *tag, struct moat_err *err);

struct moat_group {
	char name[MOAT_ID_BUF_LEN];
	char where[MOAT_WHERE_MAX_LEN + 1];
	int64_t created_at;
};
/* MOAT_EEXIST when the name is taken. The filter is stored as given (checked by the
 * caller with moat_where_parse). */
MOAT_MUST_CHECK int moat_registry_group_insert(struct moat_registry *reg,
					       const struct moat_group *g, struct moat_err *err);
/* MOAT_ENOENT when there is no such group. */
MOAT_MUST_CHECK int moat_registry_group_get(struct moat_registry *reg, const char *name,
					    struct moat_group *out, struct moat_err *err);
MOAT_MUST_CHECK int moat_registry_group_remove(struct moat_registry *reg, const char *name,
					       struct moat_err *err);
typedef int (*moat_group_cb)(const struct moat_group *g, void *ctx);
MOAT_MUST_CHECK int moat_registry_group_foreach(struct moat_registry *reg, moat_group_cb cb,
						void *ctx, struct moat_err *err);

/* One active device as a group filter sees it. Pointers valid during the callback. */
struct moat_device_row {
	const char *id;
	const char *type;
	const char *release;	 /* the version it last reported running, "" when none */
	int64_t cert_not_before; /* of its newest unrevoked certificate; -1 when none */
	const char *const *tags;
	size_t tag_count;
};
typedef int (*moat_device_row_cb)(const struct moat_device_row *row, void *ctx);
/* Every active device ordered by id, or only `only` when non-NULL (whatever its status). */
MOAT_MUST_CHECK int moat_registry_device_rows(struct moat_registry *reg, const char *only,
					      moat_device_row_cb cb, void *ctx,
					      struct moat_err *err);

/* ---- phased rollouts (src/registry/rollouts.c) ---- */

struct moat_rollout_row {
	int64_t id;
	char sha256_hex[MOAT_SHA256_HEX_LEN + 1];
	char group[MOAT_ID_BUF_LEN];
	int64_t soak_s;
	int64_t silent_s;     /* > 0: a device that reported nothing this long is silent */
	int halt_failure_pct; /* -1: none */
	bool halt_on_events;
	char rank_key_hex[MOAT_ROLLOUT_KEY_BYTES * 2 + 1];
	enum moat_rollout_state state;
	int phase; /* the current phase, 0-based */
	int phase_count;
	int percent[MOAT_ROLLOUT_PHASES_MAX];
	int64_t started_at[MOAT_ROLLOUT_PHASES_MAX]; /* 0: not started */
	int64_t created_at, updated_at;
	int64_t resumed_at;  /* last paused or halted -> running; 0: never */
	int64_t accepted_at; /* security signals before it are accepted; 0: none */
	char cause[MOAT_ERR_MSG_MAX];
	size_t device_count;
};
struct moat_rollout_member {
	const char *device;
	int phase;
};
/* Records a rollout in state running at phase 0 (started at created_at) with its phases
 * and its devices, in one transaction of its own. Sets r->id. MOAT_EEXIST when the release
 * has a rollout already; MOAT_ENOENT when the release is unknown. */
MOAT_MUST_CHECK int moat_registry_rollout_insert(struct moat_registry *reg,
						 struct moat_rollout_row *r,
						 const struct moat_rollout_member *members,
						 size_t count, struct moat_err *err);
/* MOAT_ENOENT when there is none. */
MOAT_MUST_CHECK int moat_registry_rollout_get(struct moat_registry *reg, int64_t id,
					      struct moat_rollout_row *out, struct moat_err *err);
/* The rollout of a release: *found false when it has none. */
MOAT_MUST_CHECK int moat_registry_rollout_of_release(struct moat_registry *reg,
						     const char *sha256_hex,
						     struct moat_rollout_row *out, bool *found,
						     struct moat_err *err);
typedef int (*moat_rollout_cb)(const struct moat_rollout_row *r, void *ctx);
/* Every rollout by id. */
MOAT_MUST_CHECK int moat_registry_rollout_foreach(struct moat_registry *reg, moat_rollout_cb cb,
						  void *ctx, struct moat_err *err);
/* Moves rollout id from (from_state, from_phase) to (state, phase), with cause; a new phase
 * starts at now; a paused or halted rollout that runs again records now as resumed_at (the
 * soak and silence clocks restart there; what devices reported since their phase started
 * still counts). Only when the row still is in from_state at from_phase (MOAT_ESTATE
 * otherwise): the CLI and moatd never overwrite each other. */
MOAT_MUST_CHECK int moat_registry_rollout_move(struct moat_registry *reg, int64_t id,
					       enum moat_rollout_state from_state, int from_phase,
					       enum moat_rollout_state state, int phase,
					       const char *cause, int64_t now,
					       struct moat_err *err);
/* moat_registry_rollout_move to running, and in the same transaction the operator's
 * acceptance of what failed so far: the failures of the `count` devices named (marked
 * accepted) and security signals before now (accepted_at = now). */
MOAT_MUST_CHECK int moat_registry_rollout_resume_accepting(struct moat_registry *reg, int64_t id,
							   enum moat_rollout_state from_state,
							   int phase, const char *const *failed,
							   size_t count, int64_t now,
							   struct moat_err *err);
/* Takes devices that joined the rollout's group after its creation, each in the phase given,
 * joined at now; a device the rollout has already is left as it is. */
MOAT_MUST_CHECK int moat_registry_rollout_join(struct moat_registry *reg, int64_t id,
					       const struct moat_rollout_member *members,
					       size_t count, int64_t now, struct moat_err *err);
/* Every device of rollout id with its phase (no update state: cheap), by device. */
MOAT_MUST_CHECK int moat_registry_rollout_members(struct moat_registry *reg, int64_t id,
						  int (*cb)(const char *device, int phase,
							    void *ctx),
						  void *ctx, struct moat_err *err);
/* The phase device has in rollout id: *found false when the rollout did not take it. */
MOAT_MUST_CHECK int moat_registry_rollout_member(struct moat_registry *reg, int64_t id,
						 const char *device, int *out_phase, bool *found,
						 struct moat_err *err);

/* A device of a rollout and what it reported of the release's version since it was
 * offered it: since its phase started, or since it joined when that is later. */
struct moat_rollout_device {
	const char *device;
	int phase;
	const char *stage;  /* its newest update stage for the version since then, or NULL */
	bool running_new;   /* it reports running the release's version */
	int later_running;  /* the newest event after the stage's event that says what the device
			       runs: 1 the release, -1 another version, 0 none */
	bool signalled;	    /* a security event since then (or, for a device of a phase not
			       started, since the rollout began), and since accepted_at */
	const char *signal; /* signalled: its newest such event, "acl_denied" or "anomaly
			       <rule>" (an anomaly names its rule); else NULL */
	bool accepted;	    /* the operator accepted its failure at a resume */
	int64_t joined_at;  /* when it joined the group after the creation; 0: at creation */
};
typedef int (*moat_rollout_device_cb)(const struct moat_rollout_device *d, void *ctx);
/* Every device of rollout r (as read by _get), by phase then id. */
MOAT_MUST_CHECK int moat_registry_rollout_devices(struct moat_registry *reg,
						  const struct moat_rollout_row *r,
						  const char *version, moat_rollout_device_cb cb,
						  void *ctx, struct moat_err *err);

/* ---- jobs (src/registry/jobs.c) ---- */

#include "moat/job.h"

struct moat_job_row {
	int64_t id;
	char command[64];
	char target[256];
	char as[MOAT_ID_BUF_LEN];
	int64_t created_at;
	int64_t finished_at; /* 0 while it runs (or when its run was killed) */
	size_t counts[MOAT_JOB_RESULT_COUNT];
	size_t devices;
};
/* Records a job and every device as pending, in one transaction of its own. Sets j->id. */
MOAT_MUST_CHECK int moat_registry_job_insert(struct moat_registry *reg, struct moat_job_row *j,
					     char *const *devices, size_t count,
					     struct moat_err *err);
struct moat_job_result_row {
	const char *device;
	enum moat_job_result result;
	const char *detail;
	int64_t at;
};
/* Sets the results of count devices of job id, in one transaction of its own. */
MOAT_MUST_CHECK int moat_registry_job_results_set(struct moat_registry *reg, int64_t id,
						  const struct moat_job_result_row *rows,
						  size_t count, struct moat_err *err);
MOAT_MUST_CHECK int moat_registry_job_finish(struct moat_registry *reg, int64_t id, int64_t at,
					     struct moat_err *err);
/* MOAT_ENOENT when there is none. */
MOAT_MUST_CHECK int moat_registry_job_get(struct moat_registry *reg, int64_t id,
					  struct moat_job_row *out, struct moat_err *err);
typedef int (*moat_job_cb)(const struct moat_job_row *j, void *ctx);
/* The newest 100 jobs, oldest first. */
MOAT_MUST_CHECK int moat_registry_job_foreach(struct moat_registry *reg, moat_job_cb cb, void *ctx,
					      struct moat_err *err);
typedef int (*moat_job_result_cb)(const struct moat_job_result_row *r, void *ctx);
/* Every device of job id by device id. */
MOAT_MUST_CHECK int moat_registry_job_results_foreach(struct moat_registry *reg, int64_t id,
						      moat_job_result_cb cb, void *ctx,
						      struct moat_err *err);

/* ---- monitoring (migration 7, src/registry/monitor.c) ---- */

enum moat_conn_state {
	MOAT_CONN_UNKNOWN = 0, /* never seen */
	MOAT_CONN_ONLINE = 1,
	MOAT_CONN_OFFLINE = 2,
};
const char *moat_conn_state_name(enum moat_conn_state s); /* unknown, online, offline */

#define MOAT_AGENT_VERSION_MAX_LEN 31
#define MOAT_CMD_WORD_MAX_LEN 32

/* What moatd's ingest last saw of a device. Times are ms since the epoch, 0: never. */
struct moat_device_state {
	char device[MOAT_ID_BUF_LEN];
	enum moat_conn_state state;
	int64_t state_at_ms;
	bool offline_by_will; /* the offline came from its last will (the broker saw it go) */
	int64_t last_seen_ms; /* its last message of any kind */
	char address[MOAT_EVENT_ADDR_MAX_LEN + 1]; /* its source address (the broker's connect
						      events) */
	char agent_version[MOAT_AGENT_VERSION_MAX_LEN + 1];
	char running[MOAT_FW_VERSION_MAX_LEN + 1]; /* the release it reports running */
	bool has_cert_days;
	int64_t cert_days_left; /* from its diagnostics */
	int64_t interval_s; /* its telemetry interval (diagnostics, update_interval); 0 unknown */
	char last_command[MOAT_CMD_WORD_MAX_LEN + 1];
	char last_command_status[MOAT_CMD_WORD_MAX_LEN + 1];
	int64_t last_command_at_ms;
	int64_t telemetry_messages; /* telemetry messages recorded, ever */
};
/* The fields a writer changed (moat_registry_device_state_merge's changed). */
enum {
	MOAT_DEVICE_STATE_ADDRESS = 1u << 0,
	MOAT_DEVICE_STATE_AGENT_VERSION = 1u << 1,
	MOAT_DEVICE_STATE_RUNNING = 1u << 2,
	MOAT_DEVICE_STATE_CERT_DAYS = 1u << 3, /* has_cert_days and cert_days_left */
	MOAT_DEVICE_STATE_INTERVAL = 1u << 4,
};
/* Merges what one writer saw of a device (moatd's ingest; several moatds split the
 * broker's messages between them, each with its own copy of the row) into its row, and
 * reads the merged row back into *s. A row that does not exist is written as s has it,
 * telemetry_messages = telemetry_added. Otherwise: state and offline_by_will as of the
 * newer state_at_ms, last_command and its status as of the newer last_command_at_ms
 * (s's on a tie), last_seen_ms the later, the fields named in changed as s has them
 * and the others as the row has them, and telemetry_added added to telemetry_messages
 * (s->telemetry_messages is not read). */
MOAT_MUST_CHECK int moat_registry_device_state_merge(struct moat_registry *reg,
						     struct moat_device_state *s, unsigned changed,
						     int64_t telemetry_added, struct moat_err *err);
/* MOAT_ENOENT when ingest never saw the device. */
MOAT_MUST_CHECK int moat_registry_device_state_get(struct moat_registry *reg, const char *device,
						   struct moat_device_state *out,
						   struct moat_err *err);
typedef int (*moat_device_state_cb)(const struct moat_device_state *s, void *ctx);
/* Every row by device; a non-zero return from cb stops the walk and is returned. */
MOAT_MUST_CHECK int moat_registry_device_state_foreach(struct moat_registry *reg,
						       moat_device_state_cb cb, void *ctx,
						       struct moat_err *err);

/* Keeps device's last diagnostics report, received at at_ms (moatd's clock), replacing the
 * one before: payload is the device's JSON, already accepted by moat_diag_summary_parse
 * (secevent.h), at most MOAT_REGISTRY_DIAGNOSTICS_MAX_BYTES. */
#define MOAT_REGISTRY_DIAGNOSTICS_MAX_BYTES 2048
MOAT_MUST_CHECK int moat_registry_diagnostics_put(struct moat_registry *reg, const char *device,
						  int64_t at_ms, const void *payload, size_t len,
						  struct moat_err *err);
/* The last report of device into buf (NUL-terminated; *out_len its length) and when moatd
 * received it. MOAT_ENOENT when the device never sent one; MOAT_EINVAL when it does not fit
 * in size bytes. */
MOAT_MUST_CHECK int moat_registry_diagnostics_get(struct moat_registry *reg, const char *device,
						  int64_t *out_at_ms, char *buf, size_t size,
						  size_t *out_len, struct moat_err *err);

/* Records ev and sets ev->seq. origin (NULL for none) names where an event came from so
 * that it is recorded once however often it is read ("<run_id>/<kind>/<count>" of a broker
 * event, read from MQTT and from its file): an origin already recorded leaves everything
 * as it is and sets *out_new (may be NULL) false. */
MOAT_MUST_CHECK int moat_registry_security_event_add(struct moat_registry *reg,
						     struct moat_security_event *ev,
						     const char *origin, bool *out_new,
						     struct moat_err *err);
struct moat_event_filter {
	int64_t after_seq;    /* only seq > after_seq */
	int64_t since_ms;     /* only time_ms >= since_ms (0: all) */
	int64_t until_ms;     /* only time_ms < until_ms (0: no bound) */
	const char *kind;     /* NULL: every kind */
	const char *identity; /* NULL: every identity */
	const char *rule;     /* NULL: every rule */
	int min_severity;     /* only severity >= it (enum moat_severity) */
	int64_t limit;	      /* the newest limit of them (0: all), still in seq order */
	bool oldest;	      /* limit takes the oldest instead: the first limit after
				 after_seq (a reader following the table by seq) */
};
typedef int (*moat_security_event_cb)(const struct moat_security_event *ev, void *ctx);
/* The events matching f in seq order; a non-zero return from cb stops the walk and is
 * returned. */
MOAT_MUST_CHECK int moat_registry_security_event_foreach(struct moat_registry *reg,
							 const struct moat_event_filter *f,
							 moat_security_event_cb cb, void *ctx,
							 struct moat_err *err);
/* The highest seq of the events kept (0 for none). seq only grows (it is never reused, not
 * even after every row is deleted), so a reader that remembers the seq it read last misses
 * nothing newer; after retention deleted every row this is 0, not the last seq given. */
MOAT_MUST_CHECK int moat_registry_security_event_last_seq(struct moat_registry *reg, int64_t *out,
							  struct moat_err *err);
/* How many events match f (limit ignored). */
MOAT_MUST_CHECK int moat_registry_security_event_count(struct moat_registry *reg,
						       const struct moat_event_filter *f,
						       int64_t *out, struct moat_err *err);

/* Keeps one telemetry message of device as received at at_ms (moatd's clock): payload is
 * the device's JSON, already accepted by moat_msg_telemetry_parse. */
MOAT_MUST_CHECK int moat_registry_telemetry_add(struct moat_registry *reg, const char *device,
						int64_t at_ms, const void *payload, size_t len,
						struct moat_err *err);
struct moat_retention {
	int64_t raw_ms;	   /* raw messages are kept this long */
	int64_t minute_ms; /* minute aggregates */
	int64_t hour_ms;   /* hour aggregates */
	int64_t event_ms;  /* security events */
};
struct moat_compact_stats {
	int64_t raw_folded;	 /* raw messages turned into aggregates and deleted */
	int64_t minutes_dropped; /* minute aggregates past their retention */
	int64_t hours_dropped;
	int64_t events_dropped;
};
/* One pass of retention at now_ms, in one transaction: raw messages older than raw_ms
 * are folded into per-(device, metric) minute and hour aggregates (count, min, max, sum:
 * an aggregate that exists already is merged) and deleted; aggregates and events past
 * their retention are deleted. At most max_rows raw messages per call (0: no bound), the
 * oldest first, so a long backlog is worked off in bounded transactions. */
MOAT_MUST_CHECK int moat_registry_telemetry_compact(struct moat_registry *reg, int64_t now_ms,
						    const struct moat_retention *r,
						    int64_t max_rows,
						    struct moat_compact_stats *out,
						    struct moat_err *err);
struct moat_telemetry_agg {
	char device[MOAT_ID_BUF_LEN];
	char metric[MOAT_MSG_READING_NAME_MAX_LEN + 1];
	int period_s;	   /* 60 or 3600 */
	int64_t bucket_ms; /* the start of the minute or hour */
	int64_t count;
	double min, max, mean;
};
typedef int (*moat_telemetry_agg_cb)(const struct moat_telemetry_agg *a, void *ctx);
/* The aggregates of device (NULL: all) with period_s (0: both), by device, metric,
 * period, bucket. */
MOAT_MUST_CHECK int moat_registry_telemetry_agg_foreach(struct moat_registry *reg,
							const char *device, int period_s,
							moat_telemetry_agg_cb cb, void *ctx,
							struct moat_err *err);
/* Raw messages kept, of device (NULL: all). */
MOAT_MUST_CHECK int moat_registry_telemetry_count(struct moat_registry *reg, const char *device,
						  int64_t *out, struct moat_err *err);

/* ---- counts for moatd's /metrics (stats.c) ---- */

enum moat_registry_stat {
	MOAT_STAT_DEVICES,	    /* a = status, b = device type: identities of role device */
	MOAT_STAT_IDENTITIES,	    /* a = role, b = status */
	MOAT_STAT_CERT_NEXT_EXPIRY, /* a = role: the earliest not_after of an unrevoked
				       certificate of an active identity, seconds since the epoch */
	MOAT_STAT_CERTS_EXPIRING,   /* a = window ("7d", "30d"): unrevoked certificates of
				       active identities expiring within it */
	MOAT_STAT_ENROLLMENTS,	    /* a = state: enrolled, pending, expired */
	MOAT_STAT_ROLLOUT_TARGETS,  /* a = device type, b = version: devices of the type
				       (or on the release's list) the release is offered to */
	MOAT_STAT_ROLLOUT_RUNNING,  /* a = device type, b = version: devices that report
				       running it */
	MOAT_STAT_UPDATE_EVENTS,    /* a = stage: update events recorded */
	/* what moatd's ingest recorded (migration 6) */
	MOAT_STAT_CONN_STATE,	      /* a = online, offline, unknown: devices ingest has seen */
	MOAT_STAT_TELEMETRY_MESSAGES, /* telemetry messages recorded, all devices */
	MOAT_STAT_LAST_MESSAGE,	      /* the newest message of any device, seconds since epoch */
	MOAT_STAT_SECURITY_EVENTS,    /* a = kind, b = severity: security events kept */
	MOAT_STAT_ANOMALIES,	      /* a = rule: anomalies kept */
};
typedef void (*moat_registry_stat_cb)(void *ctx, enum moat_registry_stat stat, const char *a,
				      const char *b, double value);
/* Calls cb once per row of every count above (now: seconds since the epoch), in the
 * order of the enum; a and b are "" when the count has no such label. Read-only. */
MOAT_MUST_CHECK int moat_registry_stats(struct moat_registry *reg, int64_t now,
					moat_registry_stat_cb cb, void *ctx, struct moat_err *err);

/* ---- the dashboard (migration 9, src/registry/dashboard.c) ----
 * Sign-in links and browser sessions are kept only as the SHA-256 (hex) of their token, so a
 * copy of the registry signs nobody in. Times are ms since the epoch. */

enum moat_dash_token {
	MOAT_DASH_TOKEN_OK = 0,
	MOAT_DASH_TOKEN_UNKNOWN, /* no such token */
	MOAT_DASH_TOKEN_USED,	 /* a link used already (links are single-use) */
	MOAT_DASH_TOKEN_EXPIRED,
};
const char *moat_dash_token_name(enum moat_dash_token t); /* ok, unknown, used, expired */

/* Records a sign-in link for operator, valid until expires_ms, that opens a session of
 * session_ms. Links and sessions expired more than a day ago are pruned. */
MOAT_MUST_CHECK int moat_registry_dash_link_add(struct moat_registry *reg, const char *token_sha256,
						const char *operator_id, int64_t now_ms,
						int64_t expires_ms, int64_t session_ms,
						struct moat_err *err);
/* Spends a link: only an unused, unexpired one changes (whoever else holds the registry),
 * and *out says which; on MOAT_DASH_TOKEN_OK operator_id and *session_ms are set. */
MOAT_MUST_CHECK int moat_registry_dash_link_use(struct moat_registry *reg, const char *token_sha256,
						int64_t now_ms, char operator_id[MOAT_ID_BUF_LEN],
						int64_t *session_ms, enum moat_dash_token *out,
						struct moat_err *err);
MOAT_MUST_CHECK int moat_registry_dash_session_add(struct moat_registry *reg,
						   const char *token_sha256,
						   const char *operator_id, int64_t now_ms,
						   int64_t expires_ms, struct moat_err *err);
/* The session's operator when it is known and unexpired (*out: ok, unknown or expired). */
MOAT_MUST_CHECK int moat_registry_dash_session_get(struct moat_registry *reg,
						   const char *token_sha256, int64_t now_ms,
						   char operator_id[MOAT_ID_BUF_LEN],
						   enum moat_dash_token *out, struct moat_err *err);
/* Ends a session (sign out); an unknown one is no error. */
MOAT_MUST_CHECK int moat_registry_dash_session_end(struct moat_registry *reg,
						   const char *token_sha256, struct moat_err *err);

/* The device table: every filter NULL or "" matches all. */
struct moat_dash_device_filter {
	const char *search;  /* a substring of the id */
	const char *type;    /* device type */
	const char *status;  /* active, disabled or revoked */
	const char *conn;    /* online, offline or unknown (what ingest saw) */
	const char *release; /* the version it reports running */
	const char *tag;
	/* only_json: a JSON array of identity names the device must be among (a group's
	 * members, found in C), NULL: any */
	const char *only_json;
	int64_t offset, limit; /* limit 0: no bound */
};
/* One device row; pointers valid during the callback. */
struct moat_dash_device {
	const char *id, *type, *status, *release;
	enum moat_conn_state conn;
	int64_t last_seen_ms;	/* 0: never */
	int64_t cert_not_after; /* of its newest unrevoked certificate; 0: none */
};
typedef int (*moat_dash_device_cb)(const struct moat_dash_device *d, void *ctx);
/* The devices matching f ordered by id, one page (offset, limit) of them (cb NULL: none),
 * and how many match in all (*out_total, may be NULL). */
MOAT_MUST_CHECK int moat_registry_dash_devices(struct moat_registry *reg,
					       const struct moat_dash_device_filter *f,
					       moat_dash_device_cb cb, void *ctx,
					       int64_t *out_total, struct moat_err *err);
/* The certificates of one identity (registered, not deleted), oldest first. */
MOAT_MUST_CHECK int moat_registry_cert_foreach_of(struct moat_registry *reg, const char *identity,
						  moat_cert_cb cb, void *ctx, struct moat_err *err);
/* The tags of device, by name. */
typedef int (*moat_tag_cb)(const char *tag, void *ctx);
MOAT_MUST_CHECK int moat_registry_tag_foreach(struct moat_registry *reg, const char *device,
					      moat_tag_cb cb, void *ctx, struct moat_err *err);
/* Raw telemetry messages of device received at or after since_ms, oldest first, at most
 * limit of them (the newest, 0: all). */
typedef int (*moat_telemetry_raw_cb)(int64_t at_ms, const char *payload, size_t len, void *ctx);
MOAT_MUST_CHECK int moat_registry_telemetry_foreach(struct moat_registry *reg, const char *device,
						    int64_t since_ms, int64_t limit,
						    moat_telemetry_raw_cb cb, void *ctx,
						    struct moat_err *err);

#endif
