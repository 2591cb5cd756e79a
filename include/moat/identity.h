/* identity.h: identity names and roles, the rules every part shares (src/core).
 *
 * An identity name is [a-z0-9][a-z0-9._-]{0,63}: never '/', '+', '#', upper case or spaces,
 * so it can be embedded in a topic, a path and a certificate CN without escaping.
 *
 * MQTT client ids (moat_client_id_check): a device has exactly one session, its client id
 * is its identity. A service or an operator may hold several at once (moatd's ingest,
 * `moat watch`, `moat cmd`, a customer's backend workers), each with the client id
 * "<identity>" or "<identity>:<suffix>", suffix [a-z0-9._-]{1,MOAT_CLIENT_SUFFIX_MAX_LEN}.
 * The part before ':' MUST be the identity of the certificate, so no suffix ever reaches
 * another identity's session.
 */
#ifndef MOAT_IDENTITY_H
#define MOAT_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#include "moat/err.h"

#define MOAT_ID_MAX_LEN 64
#define MOAT_ID_BUF_LEN (MOAT_ID_MAX_LEN + 1)
#define MOAT_DEVICE_TYPE_MAX_LEN 64

enum moat_role {
	MOAT_ROLE_DEVICE = 0,
	MOAT_ROLE_SERVICE = 1,
	MOAT_ROLE_OPERATOR = 2,
};
#define MOAT_ROLE_COUNT 3

/* true when name is a valid identity name. */
bool moat_identity_name_ok(const char *name);
/* Like moat_identity_name_ok, with a message saying what is wrong with name. */
MOAT_MUST_CHECK int moat_identity_name_check(const char *name, struct moat_err *err);
/* Names that start with MOAT_AUDIT_ID_PREFIX belong to `moat audit --live`: its throwaway
 * identities audit-<run>[-v|-r]. The broker plugin marks their events with the run id, so
 * monitoring can tell an audit from an attack; an ordinary identity with such a name could
 * pass its own attacks off as an audit. Only the audit may create them (struct
 * moat_provision_req.audit); everything else refuses them (moat_identity_new_name_check). */
#define MOAT_AUDIT_ID_PREFIX "audit-"
/* true when name starts with MOAT_AUDIT_ID_PREFIX. */
bool moat_identity_reserved(const char *name);
/* moat_identity_name_check, and MOAT_EINVAL for a reserved name: the one-line refusal of a
 * new identity's name. */
MOAT_MUST_CHECK int moat_identity_new_name_check(const char *name, struct moat_err *err);
/* Device types share the identity alphabet ("temperature_sensor" is valid). */
MOAT_MUST_CHECK int moat_device_type_check(const char *type, struct moat_err *err);

/* A local account a moat daemon switches to ([server] user, [agent] user). */
#define MOAT_ACCOUNT_NAME_MAX_LEN 32
/* 0 when name may be such an account: 1 to MOAT_ACCOUNT_NAME_MAX_LEN characters of
 * [a-z0-9_.-], not starting with '-' (an option to useradd), not all digits (tools read it
 * as a uid), not "." or "..", not "root" (the daemon would keep every privilege).
 * MOAT_EINVAL otherwise, the message saying which rule (name quoted, control characters
 * shown as '?'); the caller prefixes where the name came from. */
MOAT_MUST_CHECK int moat_account_name_check(const char *name, struct moat_err *err);

#define MOAT_CLIENT_SUFFIX_MAX_LEN 32
#define MOAT_CLIENT_ID_MAX_LEN (MOAT_ID_MAX_LEN + 1 + MOAT_CLIENT_SUFFIX_MAX_LEN)
#define MOAT_CLIENT_ID_BUF_LEN (MOAT_CLIENT_ID_MAX_LEN + 1)

enum moat_client_id_verdict {
	MOAT_CLIENT_ID_OK = 0,
	MOAT_CLIENT_ID_MISMATCH,       /* missing, or the part before ':' is not the identity */
	MOAT_CLIENT_ID_SUFFIX_REFUSED, /* a device with a suffix: devices have one session */
	MOAT_CLIENT_ID_BAD_SUFFIX,     /* empty, too long, or outside [a-z0-9._-] */
};
#define MOAT_CLIENT_ID_VERDICT_COUNT 4

/* May a client of identity (role) use client_id? Pure; NULLs and an invalid identity are
 * MOAT_CLIENT_ID_MISMATCH. */
enum moat_client_id_verdict moat_client_id_check(enum moat_role role, const char *identity,
						 const char *client_id);
/* "ok", "client_id_mismatch", "client_id_suffix_refused", "bad_client_id_suffix". */
const char *moat_client_id_verdict_name(enum moat_client_id_verdict v);
/* "<identity>:<suffix>" into buf (size bytes); suffix NULL or "" gives "<identity>".
 * MOAT_EINVAL for an invalid identity or suffix, or a buffer too small. */
MOAT_MUST_CHECK int moat_client_id_build(const char *identity, const char *suffix, char *buf,
					 size_t size, struct moat_err *err);

const char *moat_role_name(enum moat_role role);
MOAT_MUST_CHECK int moat_role_parse(const char *text, enum moat_role *out_role,
				    struct moat_err *err);

#endif
