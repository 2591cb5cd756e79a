/* registry.h: the SQLite registry, the deployment's source of truth.
 *
 * Tables (see src/registry/schema.c, migrations applied on open, PRAGMA user_version):
 *   identities(id, role, device_type, status, created_at)
 *   certificates(serial, identity, not_before, not_after, status, revoked_at, reason, pem)
 *   meta(key, value)                 crl_number and other counters
 * Later modules add their own tables by appending a migration to schema.c; they may run
 * their own statements on moat_registry_db().
 *
 * Contract: every function runs inside the caller's transaction when one is open
 * (moat_registry_begin), otherwise in its own. The registry never touches files other than
 * registry.db. Strings copied into out structs are NUL-terminated and bounded.
 */
#ifndef MOAT_REGISTRY_H
#define MOAT_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"
#include "moat/identity.h"
#include "moat/pki.h"

struct moat_registry;
struct sqlite3;

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

/* create: make a new registry (the file must not exist); else open an existing one, which
 * must carry moat's application_id. Applies pending migrations. */
MOAT_MUST_CHECK int moat_registry_open(const char *path, bool create,
				       struct moat_registry **out_reg, struct moat_err *err);
void moat_registry_close(struct moat_registry *reg);
struct sqlite3 *moat_registry_db(struct moat_registry *reg);

MOAT_MUST_CHECK int moat_registry_begin(struct moat_registry *reg, struct moat_err *err);
MOAT_MUST_CHECK int moat_registry_commit(struct moat_registry *reg, struct moat_err *err);
void moat_registry_rollback(struct moat_registry *reg);

/* MOAT_EEXIST when id exists. */
MOAT_MUST_CHECK int moat_registry_identity_insert(struct moat_registry *reg, const char *id,
						  enum moat_role role, const char *device_type,
						  int64_t now, struct moat_err *err);
/* MOAT_EEXIST when the serial exists (the caller draws another). */
MOAT_MUST_CHECK int moat_registry_cert_insert(struct moat_registry *reg, const char *serial_hex,
					      const char *identity, int64_t not_before,
					      int64_t not_after, const char *pem,
					      struct moat_err *err);
MOAT_MUST_CHECK int moat_registry_serial_exists(struct moat_registry *reg,
						const char *serial_hex, bool *out_exists,
						struct moat_err *err);
/* MOAT_ENOENT when id is unknown. */
MOAT_MUST_CHECK int moat_registry_identity_get(struct moat_registry *reg, const char *id,
					       struct moat_identity *out, struct moat_err *err);
MOAT_MUST_CHECK int moat_registry_identity_exists(struct moat_registry *reg, const char *id,
						  bool *out_exists, struct moat_err *err);
MOAT_MUST_CHECK int moat_registry_identity_set_status(struct moat_registry *reg,
						      const char *id,
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
/* Every certificate (revoked_only: only revoked ones), ordered by serial. */
MOAT_MUST_CHECK int moat_registry_cert_foreach(struct moat_registry *reg, bool revoked_only,
					       moat_cert_cb cb, void *ctx, struct moat_err *err);
/* The PEM of a certificate; caller frees. */
MOAT_MUST_CHECK int moat_registry_cert_pem(struct moat_registry *reg, const char *serial_hex,
					   char **out_pem, struct moat_err *err);

/* Counters and small settings. get: MOAT_ENOENT when absent. */
MOAT_MUST_CHECK int moat_registry_meta_get_int(struct moat_registry *reg, const char *key,
					       int64_t *out, struct moat_err *err);
MOAT_MUST_CHECK int moat_registry_meta_set_int(struct moat_registry *reg, const char *key,
					       int64_t value, struct moat_err *err);

#endif
