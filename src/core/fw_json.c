/* fw_json.c: the strict JSON layer under the firmware parsers (see fw_json.h). Pure. */
#include "fw_json.h"

#include <string.h>

#include "moat/manifest.h"

int fwj_parse(const char *what, const void *json, size_t len, size_t max, bool allow_escapes,
	      cJSON **out, struct moat_err *err)
{
	*out = NULL;
	if (!json || len == 0) {
		return moat_err_set(err, MOAT_EINVAL, "%s: empty", what);
	}
	if (len > max) {
		return moat_err_set(err, MOAT_EINVAL, "%s: %zu bytes, more than the limit of %zu",
				    what, len, max);
	}
	const unsigned char *p = json;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		bool ws = c == ' ' || c == '\t' || c == '\n' || c == '\r';
		if (!ws && (c < 0x20 || c > 0x7e)) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: byte 0x%02x at offset %zu is not printable ASCII",
					    what, c, i);
		}
		if (c == '\\' && !allow_escapes) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: escape at offset %zu (no field needs one)", what,
					    i);
		}
	}
	/* cJSON would cut a string at an escaped NUL, hiding what follows from every check. */
	if (allow_escapes && memmem(json, len, "\\u0000", 6)) {
		return moat_err_set(err, MOAT_EINVAL, "%s: escaped NUL character", what);
	}
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
	if (!root) {
		return moat_err_set(err, MOAT_EINVAL, "%s: not valid JSON", what);
	}
	/* Trailing whitespace only: a second document is not ignored silently. */
	if (end) {
		const char *stop = (const char *)json + len;
		for (const char *q = end; q < stop; q++) {
			if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
				cJSON_Delete(root);
				return moat_err_set(err, MOAT_EINVAL,
						    "%s: data after the JSON object", what);
			}
		}
	}
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return moat_err_set(err, MOAT_EINVAL, "%s: not a JSON object", what);
	}
	*out = root;
	return 0;
}

int fwj_fields(const char *what, const cJSON *obj, const char *const *names, size_t n,
	       const cJSON **out_items, struct moat_err *err)
{
	for (size_t i = 0; i < n; i++) {
		out_items[i] = NULL;
	}
	for (const cJSON *c = obj->child; c; c = c->next) {
		const char *key = c->string ? c->string : "";
		size_t i = 0;
		while (i < n && strcmp(key, names[i]) != 0) {
			i++;
		}
		if (i == n) {
			return moat_err_set(err, MOAT_EINVAL, "%s: unknown field '%.40s'", what,
					    key);
		}
		if (out_items[i]) {
			return moat_err_set(err, MOAT_EINVAL, "%s: duplicate field '%s'", what,
					    names[i]);
		}
		out_items[i] = c;
	}
	for (size_t i = 0; i < n; i++) {
		if (!out_items[i]) {
			return moat_err_set(err, MOAT_EINVAL, "%s: missing field '%s'", what,
					    names[i]);
		}
	}
	return 0;
}

int fwj_int(const char *what, const char *field, const cJSON *item, int64_t min, int64_t max,
	    int64_t *out, struct moat_err *err)
{
	if (!cJSON_IsNumber(item)) {
		return moat_err_set(err, MOAT_EINVAL, "%s: '%s' is not a number", what, field);
	}
	double d = item->valuedouble;
	/* Range first (NaN fails both), so the cast below is defined. */
	if (!(d >= (double)min && d <= (double)max)) {
		return moat_err_set(err, MOAT_EINVAL, "%s: '%s' is outside %lld..%lld", what, field,
				    (long long)min, (long long)max);
	}
	int64_t v = (int64_t)d;
	if ((double)v != d) {
		return moat_err_set(err, MOAT_EINVAL, "%s: '%s' is not a whole number", what,
				    field);
	}
	*out = v;
	return 0;
}

int fwj_str(const char *what, const char *field, const cJSON *item, size_t max_len,
	    const char **out, size_t *out_len, struct moat_err *err)
{
	if (!cJSON_IsString(item) || !item->valuestring) {
		return moat_err_set(err, MOAT_EINVAL, "%s: '%s' is not a string", what, field);
	}
	size_t len = strnlen(item->valuestring, max_len + 1);
	if (len == 0) {
		return moat_err_set(err, MOAT_EINVAL, "%s: '%s' is empty", what, field);
	}
	if (len > max_len) {
		return moat_err_set(err, MOAT_EINVAL, "%s: '%s' is longer than %zu bytes", what,
				    field, max_len);
	}
	*out = item->valuestring;
	if (out_len) {
		*out_len = len;
	}
	return 0;
}
