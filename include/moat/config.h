/* config.h: moat.conf, an INI file read with inih.
 *
 * The parser keeps every (section, key, value, line) it read; each module validates its own
 * section with moat_config_check_keys and reads typed values with the getters, so a new
 * section needs no change here. Values are bounded (MOAT_CONFIG_VALUE_MAX) and a duplicate
 * key in a section is an error. Lines are at most 198 bytes (Debian's inih); a longer value
 * continues on indented lines, joined with one space ("iot = 10.0.0.0/24,\n  10.1.0.0/24"). The
 * struct is owned by the caller; free with moat_config_free.
 */
#ifndef MOAT_CONFIG_H
#define MOAT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"

#define MOAT_CONFIG_VALUE_MAX 1024
#define MOAT_CONFIG_MAX_ENTRIES 4096

struct moat_config_entry {
	char *section;
	char *key;
	char *value;
	int line;
};

struct moat_config {
	char *path; /* for messages: "moat.conf:12: ..." */
	struct moat_config_entry *entries;
	size_t count;
};

/* Parses text (len bytes, need not be NUL-terminated); name is used in messages. */
MOAT_MUST_CHECK int moat_config_parse(const char *name, const char *text, size_t len,
				      struct moat_config **out_cfg, struct moat_err *err);
MOAT_MUST_CHECK int moat_config_load(const char *path, struct moat_config **out_cfg,
				     struct moat_err *err);
void moat_config_free(struct moat_config *cfg);

/* The value, or NULL when absent. The pointer lives as long as cfg. */
const char *moat_config_get(const struct moat_config *cfg, const char *section, const char *key);
const struct moat_config_entry *moat_config_find(const struct moat_config *cfg, const char *section,
						 const char *key);

/* Integer in [min, max]; absent → def. Error names file, line, section and key. */
MOAT_MUST_CHECK int moat_config_get_int(const struct moat_config *cfg, const char *section,
					const char *key, int64_t def, int64_t min, int64_t max,
					int64_t *out, struct moat_err *err);
/* "true/false/yes/no/on/off/1/0"; absent → def. */
MOAT_MUST_CHECK int moat_config_get_bool(const struct moat_config *cfg, const char *section,
					 const char *key, bool def, bool *out,
					 struct moat_err *err);
/* Duration via moat_duration_parse, in seconds; absent → def. A bare number other than 0 is
 * refused: the unit is required, as on the command line. */
MOAT_MUST_CHECK int moat_config_get_duration(const struct moat_config *cfg, const char *section,
					     const char *key, int64_t def, int64_t min, int64_t max,
					     int64_t *out, struct moat_err *err);

/* Fails naming the first key of section that is not in allowed (NULL-terminated). */
MOAT_MUST_CHECK int moat_config_check_keys(const struct moat_config *cfg, const char *section,
					   const char *const *allowed, struct moat_err *err);
/* Fails naming the first section not in allowed (NULL-terminated). */
MOAT_MUST_CHECK int moat_config_check_sections(const struct moat_config *cfg,
					       const char *const *allowed, struct moat_err *err);

/* An error message about cfg (msg), rewritten as "<path>:<line>: <message>" into out (size
 * bytes, truncated to fit, always NUL-terminated), so that every mistake names its line:
 * a message already in that form is kept; else a leading "<path>: " is dropped and the
 * line is that of the entry the message names as "[section] key" (the longest such
 * match), else of the first entry of a "[section]" it names; with none, "<path>: <message>".
 * Returns the line, or 0 when none was found. */
int moat_config_error_where(const struct moat_config *cfg, const char *msg, char *out, size_t size);

/* Splits a comma-separated list value into trimmed items; caller frees with
 * moat_config_list_free. Empty items are an error. */
MOAT_MUST_CHECK int moat_config_split_list(const char *value, char ***out_items, size_t *out_count,
					   struct moat_err *err);
void moat_config_list_free(char **items, size_t count);

#endif
