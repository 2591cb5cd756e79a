/* identity.h: identity names and roles, the rules every part shares (src/core).
 *
 * An identity name is [a-z0-9][a-z0-9._-]{0,63}: never '/', '+', '#', upper case or spaces,
 * so it can be embedded in a topic, a path and a certificate CN without escaping.
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
/* Device types share the identity alphabet ("temperature_sensor" is valid). */
MOAT_MUST_CHECK int moat_device_type_check(const char *type, struct moat_err *err);

const char *moat_role_name(enum moat_role role);
MOAT_MUST_CHECK int moat_role_parse(const char *text, enum moat_role *out_role,
				    struct moat_err *err);

#endif
