/* identity.c: identity names, roles and the client-id rule (identity.h). Pure: no I/O. */
#include "moat/identity.h"

#include <stdio.h>
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
					    "%s '%s' is invalid: use [a-z0-9][a-z0-9._-]{0,%zu}",
					    what, shown, max - 1);
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

bool moat_identity_reserved(const char *name)
{
	return name && strncmp(name, MOAT_AUDIT_ID_PREFIX, strlen(MOAT_AUDIT_ID_PREFIX)) == 0;
}

int moat_identity_new_name_check(const char *name, struct moat_err *err)
{
	int rc = moat_identity_name_check(name, err);
	if (rc == 0 && moat_identity_reserved(name)) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "identity name '%s': the prefix '" MOAT_AUDIT_ID_PREFIX
				  "' is reserved for moat audit --live's throwaway identities",
				  name);
	}
	return rc;
}

int moat_device_type_check(const char *type, struct moat_err *err)
{
	return check("device type", type, MOAT_DEVICE_TYPE_MAX_LEN, err);
}

int moat_account_name_check(const char *name, struct moat_err *err)
{
	size_t len = strnlen(name, MOAT_ACCOUNT_NAME_MAX_LEN + 1);
	bool digits = true;
	char shown[48];
	printable(shown, sizeof(shown), name);
	if (len == 0 || len > MOAT_ACCOUNT_NAME_MAX_LEN) {
		return moat_err_set(err, MOAT_EINVAL,
				    "'%s': an account name has 1 to %d characters", shown,
				    MOAT_ACCOUNT_NAME_MAX_LEN);
	}
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
		      c == '.')) {
			return moat_err_set(err, MOAT_EINVAL,
					    "'%s': not an account name (only [a-z0-9_.-])", shown);
		}
		digits = digits && c >= '0' && c <= '9';
	}
	if (name[0] == '-') {
		return moat_err_set(err, MOAT_EINVAL, "'%s': an account name cannot start with '-'",
				    shown);
	}
	if (digits) {
		return moat_err_set(err, MOAT_EINVAL,
				    "'%s': an account name cannot be all digits (read as a uid)",
				    shown);
	}
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		return moat_err_set(err, MOAT_EINVAL, "'%s': not an account name", shown);
	}
	if (strcmp(name, "root") == 0) {
		return moat_err_set(err, MOAT_EINVAL, "'root': a daemon must not run as root");
	}
	return 0;
}

/* The suffix alphabet is the identity alphabet without the first-character rule. */
static bool suffix_ok(const char *s)
{
	size_t len = strnlen(s, MOAT_CLIENT_SUFFIX_MAX_LEN + 1);
	if (len == 0 || len > MOAT_CLIENT_SUFFIX_MAX_LEN) {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		if (!name_char(s[i], false)) {
			return false;
		}
	}
	return true;
}

enum moat_client_id_verdict moat_client_id_check(enum moat_role role, const char *identity,
						 const char *client_id)
{
	if (!identity || !client_id || !moat_identity_name_ok(identity)) {
		return MOAT_CLIENT_ID_MISMATCH;
	}
	size_t id_len = strlen(identity);
	if (strncmp(client_id, identity, id_len) != 0) {
		return MOAT_CLIENT_ID_MISMATCH;
	}
	if (client_id[id_len] == '\0') {
		return MOAT_CLIENT_ID_OK;
	}
	if (client_id[id_len] != ':') {
		return MOAT_CLIENT_ID_MISMATCH; /* "sensor-10" is not a session of "sensor-1" */
	}
	if (role != MOAT_ROLE_SERVICE && role != MOAT_ROLE_OPERATOR) {
		return MOAT_CLIENT_ID_SUFFIX_REFUSED;
	}
	return suffix_ok(client_id + id_len + 1) ? MOAT_CLIENT_ID_OK : MOAT_CLIENT_ID_BAD_SUFFIX;
}

static const char *const verdict_names[MOAT_CLIENT_ID_VERDICT_COUNT] = {"ok", "client_id_mismatch",
									"client_id_suffix_refused",
									"bad_client_id_suffix"};

const char *moat_client_id_verdict_name(enum moat_client_id_verdict v)
{
	return (unsigned)v < MOAT_CLIENT_ID_VERDICT_COUNT ? verdict_names[v] : "unknown";
}

int moat_client_id_build(const char *identity, const char *suffix, char *buf, size_t size,
			 struct moat_err *err)
{
	if (buf && size > 0) {
		buf[0] = '\0';
	}
	int rc = moat_identity_name_check(identity, err);
	if (rc < 0) {
		return rc;
	}
	bool has_suffix = suffix && *suffix;
	if (has_suffix && !suffix_ok(suffix)) {
		return moat_err_set(err, MOAT_EINVAL,
				    "client id suffix is invalid: use [a-z0-9._-]{1,%d}",
				    MOAT_CLIENT_SUFFIX_MAX_LEN);
	}
	int n = buf ? snprintf(buf, size, "%s%s%s", identity, has_suffix ? ":" : "",
			       has_suffix ? suffix : "")
		    : -1;
	if (n < 0 || (size_t)n >= size) {
		if (buf && size > 0) {
			buf[0] = '\0';
		}
		return moat_err_set(err, MOAT_EINVAL, "client id of %s: buffer too small",
				    identity);
	}
	return 0;
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
