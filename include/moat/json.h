/* json.h: the one strict JSON reader every JSON input of moat goes through (src/core/json.c):
 * MQTT payloads (messages.h), the broker plugin's payload check, firmware manifests,
 * envelopes and trust files (manifest.h), update events and report lines (update_schema.h).
 *
 * cJSON accepts more than an interoperable reader should: duplicate keys (it keeps both and
 * returns the first, so one message could say two things to two parsers), a second document
 * after the first, "\u0000" and \u escapes without 4 hex digits ("\uZZZZ" reads as U+0000:
 * both cut the string there), raw control characters and invalid UTF-8 in strings, any
 * control byte as whitespace between tokens ({\x01"a":1}), numbers like 01, 1. or -.5, a
 * leading byte-order mark, and nesting up to 1000 levels. moat_json_parse refuses all of
 * these before or after cJSON builds the tree,
 * so a caller only ever sees a document every strict JSON parser reads the same way.
 *
 * Numbers are checked for their syntax (RFC 8259), not their range: 1e999 reads as inf and
 * every field check refuses it with its own message (each schema knows its ranges).
 */
#ifndef MOAT_JSON_H
#define MOAT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "moat/err.h"

/* Levels of objects and arrays allowed below the top-level object. */
#define MOAT_JSON_DEPTH_MAX 8
/* MOAT_JSON_UINTS: the most digits a number may have (2^53-1 has 16). */
#define MOAT_JSON_UINT_MAX_DIGITS 16
/* How much of a duplicate key struct moat_json_fault keeps (bytes, raw). */
#define MOAT_JSON_KEY_KEEP_MAX 64

/* Stricter byte rules for inputs whose fields need no more (struct moat_json_limits.flags). */
enum moat_json_flag {
	MOAT_JSON_ASCII = 1u << 0,	 /* printable ASCII and JSON whitespace only */
	MOAT_JSON_NO_ESCAPES = 1u << 1,	 /* no backslash escape anywhere */
	MOAT_JSON_NO_CONTROLS = 1u << 2, /* no control byte or DEL at all, whitespace included:
					    one-line formats */
	MOAT_JSON_UINTS = 1u << 3,	 /* numbers are non-negative integers of at most
					    MOAT_JSON_UINT_MAX_DIGITS digits */
};

struct moat_json_limits {
	size_t max_bytes;   /* 1..max_bytes bytes are read; more is MOAT_JSON_TOO_BIG */
	unsigned max_depth; /* levels below the top-level object, at most MOAT_JSON_DEPTH_MAX */
	unsigned flags;	    /* enum moat_json_flag */
};

/* Why moat_json_parse refused: every refusal has its own kind, so a format whose messages
 * predate this reader (or the broker plugin, which reports a reason word) can say it in
 * its own words. */
enum moat_json_fault_kind {
	MOAT_JSON_OK = 0,
	MOAT_JSON_EMPTY,       /* no bytes */
	MOAT_JSON_TOO_BIG,     /* more than max_bytes */
	MOAT_JSON_NUL,	       /* a NUL byte */
	MOAT_JSON_NOT_ASCII,   /* MOAT_JSON_ASCII: a byte outside printable ASCII */
	MOAT_JSON_ESCAPE,      /* MOAT_JSON_NO_ESCAPES: a backslash */
	MOAT_JSON_CONTROL,     /* MOAT_JSON_NO_CONTROLS: a control byte or DEL */
	MOAT_JSON_ESCAPED_NUL, /* the escape \u0000 */
	MOAT_JSON_BAD_ESCAPE,  /* an escape JSON has not: \u without 4 hex digits, a lone or
				  misordered surrogate, an unknown letter (\x) */
	MOAT_JSON_BAD_TEXT,    /* a control character or invalid UTF-8 inside a string */
	MOAT_JSON_BAD_NUMBER,  /* a number outside RFC 8259's syntax (or MOAT_JSON_UINTS) */
	MOAT_JSON_TOO_DEEP,    /* nested deeper than max_depth */
	MOAT_JSON_SYNTAX,      /* not JSON (what cJSON refuses, and outside strings any byte
				  >= 0x80, a byte-order mark too, or control byte other than
				  space, tab, LF, CR: offset says where) */
	MOAT_JSON_TRAILING,    /* something other than whitespace after the value */
	MOAT_JSON_NOT_OBJECT,  /* a value other than an object */
	MOAT_JSON_DUPLICATE,   /* a key twice in one object, at any depth */
	MOAT_JSON_NO_MEMORY,
};

struct moat_json_fault {
	enum moat_json_fault_kind kind;
	size_t offset; /* where in the input (NOT_ASCII, ESCAPE, CONTROL, BAD_ESCAPE, BAD_TEXT,
			  BAD_NUMBER; SYNTAX when a byte outside strings is at fault, else 0) */
	char key[MOAT_JSON_KEY_KEEP_MAX + 1]; /* DUPLICATE: the key's first bytes, raw: a
						 caller escapes it before showing it */
};

/* Reads len bytes of text (need not be NUL-terminated; never read past len) as one JSON
 * object within lim. On success *out_root is the object, which the caller MUST free with
 * cJSON_Delete, and whose objects hold each key once. On refusal *out_root is NULL,
 * out_fault (may be NULL) says why and err says it as "<what>: <cause>"; MOAT_EINVAL, or
 * MOAT_ENOMEM when cJSON or the duplicate check ran out of memory. Cost: one pass over the
 * bytes, cJSON's parse, and O(k) per object of k keys for the duplicate check. */
MOAT_MUST_CHECK int moat_json_parse(const char *what, const void *text, size_t len,
				    const struct moat_json_limits *lim, cJSON **out_root,
				    struct moat_json_fault *out_fault, struct moat_err *err);

/* A top-level key moat_json_object_quick looks up in the same pass. */
struct moat_json_quick_field {
	const char *key;   /* in: the key, NUL-terminated; compared with the raw key bytes */
	bool found;	   /* out: the object has it */
	bool is_string;	   /* out: its value is a string, whose bytes between the quotes, */
	const char *value; /* out: free of escapes (so raw and decoded are the same), */
	size_t value_len;  /* out: are value[0..value_len) */
};

/* The common case of moat_json_parse, in one pass over the text, without a tree and without
 * allocating: true only when moat_json_parse would accept text under lim (and then field,
 * if not NULL, says what the object holds under field->key). false means undecided, not
 * refused: the caller asks moat_json_parse, which accepts or refuses with its fault.
 * Undecided are every refusal and whatever this pass does not read itself: lim->flags other
 * than 0, keys with escapes, \u escapes of surrogates or of U+0000, a string value of
 * field->key with escapes, numbers over 32 characters, whitespace other than space, tab,
 * CR and LF, objects of more than MOAT_JSON_QUICK_KEYS keys, and more than 72 keys in the
 * objects open at one time (nested). So it never accepts what
 * moat_json_parse refuses (tests/fuzz/fuzz_json_quick checks both agree). */
#define MOAT_JSON_QUICK_KEYS 32
bool moat_json_object_quick(const void *text, size_t len, const struct moat_json_limits *lim,
			    struct moat_json_quick_field *field);

/* Whether len bytes at s are valid UTF-8 (shortest forms, no surrogates, at most
 * U+10FFFF) without C0 control characters or DEL; strict also refuses C1 controls
 * (U+0080..U+009F) and the bidi overrides and isolates (moat_text_display_ok, text.h):
 * text any log line, JSON reader and terminal take as it is. The reader's own check of
 * strings is the same decoder (moat_utf8_decode) without the rule on DEL, C1 and bidi. */
bool moat_json_text_ok(const char *s, size_t len, bool strict);

/* ---- members of fixed-shape objects ----
 * Messages name what and the field: "<what>: '<field>' is not a number". */

/* Matches obj's members against names[0..n): out_items[i] is the member called names[i].
 * A member not in names, or a name with no member, is MOAT_EINVAL. obj comes from
 * moat_json_parse, so no key appears twice. */
MOAT_MUST_CHECK int moat_json_fields(const char *what, const cJSON *obj, const char *const *names,
				     size_t n, const cJSON **out_items, struct moat_err *err);

/* A whole number in [min, max] (both within +-2^53). */
MOAT_MUST_CHECK int moat_json_int(const char *what, const char *field, const cJSON *item,
				  int64_t min, int64_t max, int64_t *out, struct moat_err *err);

/* A string of 1..max_len bytes; *out points into item (valid while the tree lives). */
MOAT_MUST_CHECK int moat_json_str(const char *what, const char *field, const cJSON *item,
				  size_t max_len, const char **out, size_t *out_len,
				  struct moat_err *err);

#endif
