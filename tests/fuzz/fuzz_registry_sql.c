/* fuzz_registry_sql.c: the statement layer's text parsers (src/registry/db.h): the
 * SQLite-to-PostgreSQL translation of statements and of schema text, and the registry URL
 * check. The first byte picks the parser; the rest is the input. Besides crashes it checks
 * invariants: a translation fits its buffer and is NUL-terminated, a buffer too small is
 * refused rather than overrun, a statement without '?' has no parameters and one with
 * parameters names 1..999, no rewrite adds or drops a parenthesis, GREATEST/LEAST come only
 * from a MAX/MIN (or were there), strpos only from an instr (or was there); an accepted URL starts
 * with postgresql:// or postgres:// and a refused one says why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t count_char(const char *s, char c)
{
	size_t n = 0;
	for (; *s; s++) {
		n += *s == c;
	}
	return n;
}

/* Whether word occurs in s, ASCII case ignored. */
static bool has_word(const char *s, const char *word)
{
	size_t n = strlen(word);
	for (; *s; s++) {
		size_t i = 0;
		while (i < n && s[i] && (s[i] | 0x20) == word[i]) {
			i++;
		}
		if (i == n) {
			return true;
		}
	}
	return false;
}

static void check_translate(const char *text, size_t len, bool schema)
{
	size_t cap = len * 4 + 64;
	char *out = malloc(cap);
	char small[16];
	if (!out) {
		return;
	}
	int params = -1;
	int rc = schema ? rdb_translate_schema(text, out, cap)
			: rdb_translate(text, out, cap, &params);
	if (rc == 0) {
		if (strlen(out) >= cap) {
			abort();
		}
		if (!schema && (params < 0 || params > 999)) {
			abort();
		}
		if (!schema && !strchr(text, '?') && params != 0) {
			abort();
		}
		if (count_char(out, '(') != count_char(text, '(') ||
		    count_char(out, ')') != count_char(text, ')')) {
			abort();
		}
		if ((strstr(out, "GREATEST") && !has_word(text, "max") &&
		     !has_word(text, "greatest")) ||
		    (strstr(out, "LEAST") && !has_word(text, "min") && !has_word(text, "least"))) {
			abort();
		}
		if (has_word(out, "strpos") && !has_word(text, "instr") &&
		    !has_word(text, "strpos")) {
			abort();
		}
		if (schema && has_word(out, "strpos") && !has_word(text, "strpos")) {
			abort(); /* schema text is never rewritten so */
		}
	}
	/* the same text into a buffer that may be too small: refused or complete, never over */
	int rs = schema ? rdb_translate_schema(text, small, sizeof(small))
			: rdb_translate(text, small, sizeof(small), &params);
	if (rs == 0 && (rc != 0 || strcmp(small, out) != 0)) {
		abort();
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 8192) {
		return 0;
	}
	char *text = malloc(size);
	if (!text) {
		return 0;
	}
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	size_t len = strlen(text);
	switch (data[0] % 3) {
	case 0:
		check_translate(text, len, false);
		break;
	case 1:
		check_translate(text, len, true);
		break;
	default: {
		const char *why = NULL;
		if (rdb_url_check(text, &why) == 0) {
			if (why || (strncmp(text, "postgresql://", 13) != 0 &&
				    strncmp(text, "postgres://", 11) != 0)) {
				abort();
			}
		} else if (!why) {
			abort();
		}
		break;
	}
	}
	free(text);
	return 0;
}
