/* fw_json.c: the strict reader (moat/json.h) in the words the firmware files' messages have
 * always used, shared by manifests and envelopes (manifest.c) and trust files (fw_keys.c):
 * printable ASCII only, a size limit per kind, escapes only where a kind allows them.
 */
#include "moat/json.h"

#include "fw_internal.h"

int fw_json_parse(const char *what, const void *json, size_t len, size_t max, bool allow_escapes,
		  cJSON **out, struct moat_err *err)
{
	const struct moat_json_limits lim = {
		.max_bytes = max,
		.max_depth = MOAT_JSON_DEPTH_MAX,
		.flags = MOAT_JSON_ASCII | (allow_escapes ? 0u : MOAT_JSON_NO_ESCAPES),
	};
	struct moat_json_fault f;
	int rc = moat_json_parse(what, json, len, &lim, out, &f, err);

	switch (rc != 0 ? f.kind : MOAT_JSON_OK) {
	case MOAT_JSON_EMPTY:
		return moat_err_set(err, MOAT_EINVAL, "%s: empty", what);
	case MOAT_JSON_TOO_BIG:
		return moat_err_set(err, MOAT_EINVAL, "%s: %zu bytes, more than the limit of %zu",
				    what, len, max);
	case MOAT_JSON_SYNTAX:
		return moat_err_set(err, MOAT_EINVAL, "%s: not valid JSON", what);
	case MOAT_JSON_DUPLICATE: /* the key is printable ASCII: MOAT_JSON_ASCII */
		return moat_err_set(err, MOAT_EINVAL, "%s: duplicate field '%s'", what, f.key);
	default:
		return rc;
	}
}
