/* fw_json.h: strict, bounded JSON helpers shared by the manifest, envelope and trust-file
 * parsers of src/core (internal to the core module).
 *
 * cJSON accepts more than we want (duplicate keys, any number syntax, escapes), so every
 * parser goes through these: the input is size-checked and byte-checked before cJSON sees
 * it, objects are matched field by field against a fixed list (unknown, duplicate and
 * missing fields are refused by name), and integers must be whole and within bounds.
 */
#ifndef MOAT_CORE_FW_JSON_H
#define MOAT_CORE_FW_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "moat/err.h"

/* Parses len bytes into an object. Refuses more than max bytes, bytes outside printable
 * ASCII and JSON whitespace, backslash escapes unless allow_escapes, anything but a single
 * top-level object. what names the input in messages. *out is freed with cJSON_Delete. */
int fwj_parse(const char *what, const void *json, size_t len, size_t max, bool allow_escapes,
	      cJSON **out, struct moat_err *err);

/* Matches obj's members against names[0..n): out_items[i] is the member called names[i]. */
int fwj_fields(const char *what, const cJSON *obj, const char *const *names, size_t n,
	       const cJSON **out_items, struct moat_err *err);

/* A whole number in [min, max] (max at most MOAT_FW_INT_MAX). */
int fwj_int(const char *what, const char *field, const cJSON *item, int64_t min, int64_t max,
	    int64_t *out, struct moat_err *err);

/* A string of 1..max_len bytes. */
int fwj_str(const char *what, const char *field, const cJSON *item, size_t max_len,
	    const char **out, size_t *out_len, struct moat_err *err);

#endif
