/* uri.c: RFC 7512 PKCS#11 URIs, the subset moat uses (see moat/pkcs11.h). Pure: text in,
 * struct out. Strict on purpose: a URI names a signing key, and one that silently matched
 * more, or other, objects than its writer meant would sign with the wrong key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "moat/pkcs11.h"

#define SCHEME "pkcs11:"
#define SCHEME_LEN (sizeof(SCHEME) - 1)

/* RFC 7512 section 2.3: what may stand unescaped in a path or a query value. */
static bool unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static bool path_char(unsigned char c)
{
	return unreserved(c) || (c != '\0' && strchr(":[]@!$'()*+,=&", c) != NULL);
}

static bool query_char(unsigned char c)
{
	return unreserved(c) || (c != '\0' && strchr(":[]@!$'()*+,=/?|", c) != NULL);
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

/* Percent-decodes value[0..len) into out (at most max bytes). text: the value is text, so a
 * NUL or control character (escaped or not) is refused. */
static int decode(const char *name, const char *value, size_t len, bool query, bool text,
		  unsigned char *out, size_t max, size_t *out_len, struct moat_err *err)
{
	size_t n = 0;
	if (len == 0) {
		return moat_err_set(err, MOAT_EINVAL, "pkcs11 URI: %s is empty", name);
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c == '%') {
			int hi = i + 2 < len ? hexval((unsigned char)value[i + 1]) : -1;
			int lo = i + 2 < len ? hexval((unsigned char)value[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				return moat_err_set(err, MOAT_EINVAL,
						    "pkcs11 URI: %s: '%%' must be followed by two "
						    "hex digits",
						    name);
			}
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		} else if (!(query ? query_char(c) : path_char(c))) {
			return moat_err_set(err, MOAT_EINVAL,
					    "pkcs11 URI: %s: character 0x%02x must be "
					    "percent-encoded",
					    name, c);
		}
		if (text && (c < 0x20 || c == 0x7f)) {
			return moat_err_set(err, MOAT_EINVAL,
					    "pkcs11 URI: %s: control character 0x%02x", name, c);
		}
		if (n == max) {
			return moat_err_set(err, MOAT_EINVAL,
					    "pkcs11 URI: %s longer than %zu bytes", name, max);
		}
		out[n++] = c;
	}
	*out_len = n;
	return 0;
}

static int decode_text(const char *name, const char *value, size_t len, bool query, char *out,
		       size_t max, bool *seen, struct moat_err *err)
{
	size_t n = 0;
	if (*seen) {
		return moat_err_set(err, MOAT_EINVAL, "pkcs11 URI: %s given twice", name);
	}
	int rc = decode(name, value, len, query, true, (unsigned char *)out, max, &n, err);
	if (rc != 0) {
		return rc;
	}
	out[n] = '\0';
	*seen = true;
	return 0;
}

static int parse_type(const char *value, size_t len, bool *seen, struct moat_pkcs11_uri *out,
		      struct moat_err *err)
{
	static const struct {
		const char *name;
		enum moat_pkcs11_type type;
	} types[] = {
		{"private", MOAT_PKCS11_TYPE_PRIVATE}, {"public", MOAT_PKCS11_TYPE_PUBLIC},
		{"cert", MOAT_PKCS11_TYPE_CERT},       {"secret-key", MOAT_PKCS11_TYPE_SECRET_KEY},
		{"data", MOAT_PKCS11_TYPE_DATA},
	};
	char text[16];
	int rc = decode_text("type", value, len, false, text, sizeof(text) - 1, seen, err);
	if (rc != 0) {
		return rc;
	}
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (strcmp(text, types[i].name) == 0) {
			out->type = types[i].type;
			return 0;
		}
	}
	return moat_err_set(err, MOAT_EINVAL,
			    "pkcs11 URI: type '%s' unknown (private, public, cert, secret-key, "
			    "data)",
			    text);
}

/* One attribute "name=value" of the path (query false) or the query. */
static int parse_attr(const char *attr, size_t len, bool query, struct moat_pkcs11_uri *out,
		      bool *type_seen, struct moat_err *err)
{
	const char *eq = memchr(attr, '=', len);
	size_t nlen = eq ? (size_t)(eq - attr) : len;
	char name[32];
	if (nlen == 0) {
		return moat_err_set(err, MOAT_EINVAL, "pkcs11 URI: an attribute has no name");
	}
	if (nlen >= sizeof(name) || strspn(attr, "abcdefghijklmnopqrstuvwxyz-") < nlen) {
		return moat_err_set(err, MOAT_EINVAL,
				    "pkcs11 URI: attribute name '%.*s' is not one RFC 7512 defines",
				    (int)(nlen < 32 ? nlen : 32), attr);
	}
	memcpy(name, attr, nlen);
	name[nlen] = '\0';
	if (!eq) {
		return moat_err_set(err, MOAT_EINVAL, "pkcs11 URI: %s has no '=value'", name);
	}
	const char *value = eq + 1;
	size_t vlen = len - nlen - 1;
	if (!query) {
		if (strcmp(name, "token") == 0) {
			return decode_text(name, value, vlen, false, out->token,
					   MOAT_PKCS11_TOKEN_LABEL_MAX, &out->has_token, err);
		}
		if (strcmp(name, "manufacturer") == 0) {
			return decode_text(name, value, vlen, false, out->manufacturer,
					   MOAT_PKCS11_MANUFACTURER_MAX, &out->has_manufacturer,
					   err);
		}
		if (strcmp(name, "model") == 0) {
			return decode_text(name, value, vlen, false, out->model,
					   MOAT_PKCS11_MODEL_MAX, &out->has_model, err);
		}
		if (strcmp(name, "serial") == 0) {
			return decode_text(name, value, vlen, false, out->serial,
					   MOAT_PKCS11_SERIAL_MAX, &out->has_serial, err);
		}
		if (strcmp(name, "object") == 0) {
			return decode_text(name, value, vlen, false, out->object,
					   MOAT_PKCS11_OBJECT_MAX, &out->has_object, err);
		}
		if (strcmp(name, "id") == 0) {
			if (out->has_id) {
				return moat_err_set(err, MOAT_EINVAL, "pkcs11 URI: id given twice");
			}
			out->has_id = true;
			return decode(name, value, vlen, false, false, out->id, sizeof(out->id),
				      &out->id_len, err);
		}
		if (strcmp(name, "type") == 0) {
			return parse_type(value, vlen, type_seen, out, err);
		}
		if (strncmp(name, "library-", 8) == 0 || strncmp(name, "slot-", 5) == 0) {
			return moat_err_set(err, MOAT_EINVAL,
					    "pkcs11 URI: %s is not supported (name the token by "
					    "token, manufacturer, model or serial)",
					    name);
		}
	} else {
		if (strcmp(name, "module-path") == 0) {
			return decode_text(name, value, vlen, true, out->module_path,
					   MOAT_PKCS11_PATH_MAX, &out->has_module_path, err);
		}
		if (strcmp(name, "pin-value") == 0 || strcmp(name, "pin-source") == 0) {
			return moat_err_set(err, MOAT_EINVAL,
					    "pkcs11 URI: %s refused: moat keeps URIs in files, so "
					    "the PIN goes in a PIN file (--pin-file) or $%s",
					    name, MOAT_PKCS11_PIN_ENV);
		}
		if (strcmp(name, "module-name") == 0) {
			return moat_err_set(err, MOAT_EINVAL,
					    "pkcs11 URI: module-name is not supported (give "
					    "module-path or --pkcs11-module)");
		}
	}
	return moat_err_set(err, MOAT_EINVAL, "pkcs11 URI: unknown %s attribute '%s'",
			    query ? "query" : "path", name);
}

/* Splits s[0..len) at sep and parses each attribute. */
static int parse_list(const char *s, size_t len, char sep, bool query, struct moat_pkcs11_uri *out,
		      bool *type_seen, struct moat_err *err)
{
	size_t start = 0;
	if (len == 0) {
		return 0;
	}
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == sep) {
			if (i == start) {
				return moat_err_set(err, MOAT_EINVAL,
						    "pkcs11 URI: empty attribute (a stray '%c')",
						    sep);
			}
			int rc = parse_attr(s + start, i - start, query, out, type_seen, err);
			if (rc != 0) {
				return rc;
			}
			start = i + 1;
		}
	}
	return 0;
}

int moat_pkcs11_uri_parse(const char *text, struct moat_pkcs11_uri *out, struct moat_err *err)
{
	memset(out, 0, sizeof(*out));
	if (!text) {
		return moat_err_set(err, MOAT_EINVAL, "pkcs11 URI: none given");
	}
	size_t len = strnlen(text, MOAT_PKCS11_URI_MAX + 1);
	if (len > MOAT_PKCS11_URI_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "pkcs11 URI: longer than %d characters",
				    MOAT_PKCS11_URI_MAX);
	}
	if (len < SCHEME_LEN || strncasecmp(text, SCHEME, SCHEME_LEN) != 0) {
		return moat_err_set(err, MOAT_EINVAL, "pkcs11 URI: must start with '%s'", SCHEME);
	}
	const char *path = text + SCHEME_LEN;
	const char *q = strchr(path, '?');
	const char *frag = strchr(path, '#');
	if (frag) {
		memset(out, 0, sizeof(*out));
		return moat_err_set(err, MOAT_EINVAL, "pkcs11 URI: '#' must be percent-encoded");
	}
	size_t plen = q ? (size_t)(q - path) : strlen(path);
	bool type_seen = false;
	int rc = parse_list(path, plen, ';', false, out, &type_seen, err);
	if (rc == 0 && q) {
		if (q[1] == '\0') {
			rc = moat_err_set(err, MOAT_EINVAL, "pkcs11 URI: empty query after '?'");
		} else {
			rc = parse_list(q + 1, strlen(q + 1), '&', true, out, &type_seen, err);
		}
	}
	if (rc != 0) {
		memset(out, 0, sizeof(*out));
	}
	return rc;
}

int moat_pkcs11_uri_with_module(const char *uri, const char *module, char **out,
				struct moat_err *err)
{
	struct moat_pkcs11_uri parsed;
	*out = NULL;
	int rc = moat_pkcs11_uri_parse(uri, &parsed, err);
	if (rc != 0) {
		return rc;
	}
	if (parsed.has_module_path) {
		return moat_err_set(err, MOAT_EINVAL, "pkcs11 URI: already has a module-path");
	}
	size_t mlen = module ? strlen(module) : 0;
	if (mlen == 0 || mlen > MOAT_PKCS11_PATH_MAX) {
		return moat_err_set(err, MOAT_EINVAL,
				    "PKCS#11 module path: empty or longer than %d",
				    MOAT_PKCS11_PATH_MAX);
	}
	size_t size = strlen(uri) + sizeof("?module-path=") + 3 * mlen;
	char *s = malloc(size);
	if (!s) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	int n = snprintf(s, size, "%s%cmodule-path=", uri, strchr(uri, '?') ? '&' : '?');
	size_t pos = n > 0 ? (size_t)n : 0;
	for (size_t i = 0; i < mlen; i++) {
		unsigned char c = (unsigned char)module[i];
		if (unreserved(c) || c == '/') {
			s[pos++] = (char)c;
		} else {
			pos += (size_t)snprintf(s + pos, size - pos, "%%%02X", c);
		}
	}
	s[pos] = '\0';
	/* What we write must read back as the same module. */
	rc = moat_pkcs11_uri_parse(s, &parsed, err);
	if (rc == 0 && strcmp(parsed.module_path, module) != 0) {
		rc = moat_err_set(err, MOAT_EINVAL, "PKCS#11 module path: cannot be put in a URI");
	}
	if (rc != 0) {
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}
