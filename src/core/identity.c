/* identity.c: identity names and roles. Pure: no I/O. */
#include "moat/identity.h"

#include <string.h>

static bool name_char(char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
		return true;
	}
	return !first && (c == '.' || c == '_' || c == '-');
}

/* A copy of at most size - 1 bytes of name fit for a one-line message: the name is the
 * invalid input being reported, so control characters in it become '?'. */
static void printable(char *out, size_t size, const char *name)
{
	size_t i = 0;
	for (; name[i] && i + 1 < size; i++) {
		unsigned char c = (unsigned char)name[i];
		out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	out[i] = '\0';
}

static int check(const char *what, const char *name, size_t max, struct moat_err *err)
{
	char shown[MOAT_ID_BUF_LEN > MOAT_DEVICE_TYPE_MAX_LEN ? MOAT_ID_BUF_LEN
							       : MOAT_DEVICE_TYPE_MAX_LEN + 1];
	if (!name || !*name) {
		return moat_err_set(err, MOAT_EINVAL, "%s is empty", what);
	}
	size_t len = strnlen(name, max + 1);
	if (len > max) {
		printable(shown, 21, name);
		return moat_err_set(err, MOAT_EINVAL, "%s '%s...' is longer than %zu characters",
				    what, shown, max);
	}
	for (size_t i = 0; i < len; i++) {
		if (!name_char(name[i], i == 0)) {
			printable(shown, sizeof(shown), name);
			return moat_err_set(err, MOAT_EINVAL,
					    "%s '%s' is invalid: use [a-z0-9][a-z0-9._-]{0,%zu}", what,
					    shown, max - 1);
		}
	}
	return 0;
}

bool moat_identity_name_ok(const char *name)
{
	return check("identity", name, MOAT_ID_MAX_LEN, NULL) == 0;
}

int moat_identity_name_check(const char *name, struct moat_err *err)
{
	return check("identity name", name, MOAT_ID_MAX_LEN, err);
}

int moat_device_type_check(const char *type, struct moat_err *err)
{
	return check("device type", type, MOAT_DEVICE_TYPE_MAX_LEN, err);
}

static const char *const role_names[MOAT_ROLE_COUNT] = {"device", "service", "operator"};

const char *moat_role_name(enum moat_role role)
{
	return (unsigned)role < MOAT_ROLE_COUNT ? role_names[role] : "unknown";
}

int moat_role_parse(const char *text, enum moat_role *out_role, struct moat_err *err)
{
	for (int i = 0; i < MOAT_ROLE_COUNT; i++) {
		if (text && strcmp(text, role_names[i]) == 0) {
			*out_role = (enum moat_role)i;
			return 0;
		}
	}
	return moat_err_set(err, MOAT_EINVAL, "unknown role '%s' (device, service or operator)",
			    text ? text : "");
}
