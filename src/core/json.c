/* json.c: the strict JSON reader (json.h) and the member helpers of fixed-shape objects.
 *
 * moat_json_parse works in four steps, each refusing with its own fault kind:
 *   1. bytes: size, NUL bytes, and the caller's stricter byte rules (ASCII, no escapes, no
 *      control bytes);
 *   2. one pass over the text that follows strings and brackets: nesting depth, escapes
 *      ("\u0000", \u without 4 hex digits, unpaired surrogates, unknown letters), control
 *      characters and invalid UTF-8 inside strings, the RFC 8259 number syntax (and
 *      MOAT_JSON_UINTS), and outside strings non-ASCII bytes (no JSON token has any) and
 *      control bytes other than RFC 8259's whitespace (cJSON skips them all);
 *   3. cJSON's parse, bounded by len (cJSON_ParseWithLengthOpts never reads past it), then
 *      nothing but whitespace after the value, and an object at the top;
 *   4. duplicate keys in every object: pairwise for small objects, through a hash table for
 *      large ones, so a 64 KiB payload of short keys (the broker plugin's bound) stays O(k).
 * Step 2 is cheap next to cJSON's allocation per node, and it bounds the depth before cJSON
 * recurses. The text is read in place: no copy, however large the limit.
 *
 * moat_json_object_quick (at the end) is the common case of all four steps in one pass
 * without a tree, for callers that only need to know the object is valid (the broker
 * plugin's payload check, for every message): it accepts only what it is sure the reader
 * accepts, and leaves everything else to the reader.
 *
 * Pure: no I/O, no clock, no globals. cJSON and the duplicate check of large objects
 * allocate.
 */
#include "moat/json.h"

#include <stdlib.h>
#include <string.h>

#include "moat/text.h"

/* Objects of up to this many keys are checked pairwise, without allocating. */
#define DUP_PAIRWISE_MAX 16
/* How much of an untrusted key a message shows. */
#define KEY_SHOW_MAX 40

/* ---- step 2: the pass over the text ---- */

struct scan {
	const unsigned char *p;
	size_t len;
	size_t i;
	unsigned depth; /* open objects and arrays */
	unsigned max_open;
	bool uints; /* MOAT_JSON_UINTS */
	struct moat_json_fault *f;
};

/* RFC 8259's whitespace: the only bytes allowed between tokens. */
static bool json_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int fault_at(struct scan *s, enum moat_json_fault_kind kind, size_t offset)
{
	s->f->kind = kind;
	s->f->offset = offset;
	return MOAT_EINVAL;
}

/* 1 for the bytes that end the fast path inside a string: control bytes, '"', '\\' and
 * every byte of a multi-byte sequence. */
/* clang-format off */
static const unsigned char string_stop[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x00 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x10 */
	0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x30 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x40 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x60 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x70 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x80 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x90 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xa0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xb0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xc0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xd0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xe0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xf0 */
};
/* clang-format on */

bool moat_json_text_ok(const char *s, size_t len, bool strict)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t cp = 0;

	if (strict) {
		return moat_text_display_ok(s, len);
	}
	for (size_t i = 0; i < len;) {
		size_t n = moat_utf8_decode(p + i, len - i, &cp);
		if (n == 0 || cp < 0x20 || cp == 0x7f) {
			return false;
		}
		i += n;
	}
	return true;
}

/* The 4 hex digits of a \u escape at at (the backslash); -1 when they are not 4 hex digits. */
static long escape_u(const struct scan *s, size_t at)
{
	long cp = 0;

	if (s->len - at < 6 || s->p[at + 1] != 'u') {
		return -1;
	}
	for (size_t k = 2; k < 6; k++) {
		unsigned char c = s->p[at + k];
		unsigned char lc = (unsigned char)(c | 0x20);
		if (c >= '0' && c <= '9') {
			cp = cp << 4 | (c - '0');
		} else if (lc >= 'a' && lc <= 'f') {
			cp = cp << 4 | (lc - 'a' + 10);
		} else {
			return -1;
		}
	}
	return cp;
}

/* The escape at s->i (a backslash, not the last byte), which is skipped. cJSON 1.7.15 reads
 * a \u escape whose digits are not hex as U+0000 ("\uZZZZ", "\u12G4") and so cuts the
 * string like \u0000 itself: "reboot\u0000x" would read as "reboot" to us and as
 * something else elsewhere. So \u needs 4 hex digits and must not be U+0000, a high
 * surrogate must be followed at once by a low one, and a low one must follow a high one. */
static int scan_escape(struct scan *s)
{
	size_t at = s->i;
	unsigned char e;
	long cp, low;

	if (at + 1 >= s->len) {
		s->i = s->len; /* an unterminated string: cJSON's to refuse */
		return 0;
	}
	e = s->p[at + 1];
	if (e != 'u') {
		if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' &&
		    e != 'r' && e != 't') {
			return fault_at(s, MOAT_JSON_BAD_ESCAPE, at);
		}
		s->i += 2;
		return 0;
	}
	cp = escape_u(s, at);
	if (cp == 0) {
		return fault_at(s, MOAT_JSON_ESCAPED_NUL, at);
	}
	if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) {
		return fault_at(s, MOAT_JSON_BAD_ESCAPE, at);
	}
	s->i += 6;
	if (cp >= 0xD800 && cp <= 0xDBFF) {
		low = s->i < s->len && s->p[s->i] == '\\' ? escape_u(s, s->i) : -1;
		if (low < 0xDC00 || low > 0xDFFF) {
			return fault_at(s, MOAT_JSON_BAD_ESCAPE, at);
		}
		s->i += 6;
	}
	return 0;
}

/* A string from its opening quote. An unterminated one is left to cJSON to refuse. */
static int scan_string(struct scan *s)
{
	s->i++;
	while (s->i < s->len) {
		unsigned char c = s->p[s->i];

		/* the common case first, in a loop of its own: plain printable ASCII */
		while (!string_stop[c]) {
			if (++s->i == s->len) {
				return 0;
			}
			c = s->p[s->i];
		}
		if (c == '"') {
			s->i++;
			return 0;
		}
		if (c < 0x20) {
			return fault_at(s, MOAT_JSON_BAD_TEXT, s->i);
		}
		if (c == '\\') {
			int rc = scan_escape(s);
			if (rc != 0) {
				return rc;
			}
			continue;
		}
		if (c >= 0x80) {
			size_t n = moat_utf8_decode(s->p + s->i, s->len - s->i, NULL);
			if (n == 0) {
				return fault_at(s, MOAT_JSON_BAD_TEXT, s->i);
			}
			s->i += n;
			continue;
		}
		s->i++;
	}
	return 0;
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* Skips the digits at s->i; false when there is none. */
static bool digits(struct scan *s)
{
	size_t start = s->i;

	while (s->i < s->len && is_digit(s->p[s->i])) {
		s->i++;
	}
	return s->i > start;
}

/* MOAT_JSON_UINTS: the number text at start..end is digits only, and not too many. */
static bool plain_uint(const unsigned char *p, size_t start, size_t end)
{
	for (size_t i = start; i < end; i++) {
		if (!is_digit(p[i])) {
			return false;
		}
	}
	return end - start <= MOAT_JSON_UINT_MAX_DIGITS;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and then no further number character,
 * which refuses 01, 1., -.5, 1.2.3 and the like that cJSON (strtod) would take. */
static int scan_number(struct scan *s)
{
	size_t start = s->i;
	bool ok;

	if (s->p[s->i] == '-') {
		s->i++;
	}
	if (s->i < s->len && s->p[s->i] == '0') {
		s->i++;
		ok = true;
	} else {
		ok = digits(s);
	}
	if (ok && s->i < s->len && s->p[s->i] == '.') {
		s->i++;
		ok = digits(s);
	}
	if (ok && s->i < s->len && (s->p[s->i] == 'e' || s->p[s->i] == 'E')) {
		s->i++;
		if (s->i < s->len && (s->p[s->i] == '+' || s->p[s->i] == '-')) {
			s->i++;
		}
		ok = digits(s);
	}
	if (ok && s->i < s->len &&
	    (is_digit(s->p[s->i]) || s->p[s->i] == '.' || s->p[s->i] == 'e' || s->p[s->i] == 'E' ||
	     s->p[s->i] == '+' || s->p[s->i] == '-')) {
		ok = false;
	}
	if (ok && s->uints) {
		ok = plain_uint(s->p, start, s->i);
	}
	return ok ? 0 : fault_at(s, MOAT_JSON_BAD_NUMBER, start);
}

static int scan_text(struct scan *s)
{
	int rc = 0;

	while (rc == 0 && s->i < s->len) {
		unsigned char c = s->p[s->i];

		if (c == '"') {
			rc = scan_string(s);
		} else if (c == '-' || is_digit(c)) {
			rc = scan_number(s);
		} else if (c == '{' || c == '[') {
			if (++s->depth > s->max_open) {
				rc = fault_at(s, MOAT_JSON_TOO_DEEP, s->i);
			}
			s->i++;
		} else if (c == '}' || c == ']') {
			if (s->depth > 0) {
				s->depth--;
			}
			s->i++;
		} else if (c >= 0x80) {
			rc = fault_at(s, MOAT_JSON_SYNTAX, s->i);
		} else if (c < 0x20 && !json_space(c)) {
			/* cJSON skips every byte up to 0x20 as whitespace; RFC 8259 has only
			 * these four, so {\x01"a":1} is no JSON to any other reader */
			rc = fault_at(s, MOAT_JSON_SYNTAX, s->i);
		} else {
			s->i++; /* structure, literals, whitespace: cJSON's to judge */
		}
	}
	return rc;
}

/* ---- step 1: bytes ---- */

static int check_bytes(const unsigned char *p, size_t len, unsigned flags,
		       struct moat_json_fault *f)
{
	for (size_t i = 0; flags != 0 && i < len; i++) {
		unsigned char c = p[i];
		bool ws = c == ' ' || c == '\t' || c == '\n' || c == '\r';

		if ((flags & MOAT_JSON_ASCII) && !ws && (c < 0x20 || c > 0x7e)) {
			f->kind = MOAT_JSON_NOT_ASCII;
			f->offset = i;
			return MOAT_EINVAL;
		}
		if ((flags & MOAT_JSON_NO_ESCAPES) && c == '\\') {
			f->kind = MOAT_JSON_ESCAPE;
			f->offset = i;
			return MOAT_EINVAL;
		}
		if ((flags & MOAT_JSON_NO_CONTROLS) && (c < 0x20 || c == 0x7f)) {
			f->kind = MOAT_JSON_CONTROL;
			f->offset = i;
			return MOAT_EINVAL;
		}
	}
	if (memchr(p, '\0', len) != NULL) {
		f->kind = MOAT_JSON_NUL;
		return MOAT_EINVAL;
	}
	return 0;
}

/* ---- step 4: duplicate keys ---- */

/* FNV-1a: the slot of a key in object_duplicate's table. */
static uint32_t key_hash(const char *key)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h = (h ^ *p) * 16777619u;
	}
	return h;
}

struct key_slot {
	const char *key;
	uint32_t hash;
};

/* The first key of obj that appears twice, or NULL; *out_nomem when the table for a large
 * object could not be allocated. Large objects go through an open-addressing table at
 * most half full, so the check is O(k) for k keys. */
static const char *object_duplicate(const cJSON *obj, bool *out_nomem)
{
	size_t k = 0, cap = 1;
	struct key_slot *slots;
	const char *dup = NULL;

	for (const cJSON *a = obj->child; a; a = a->next) {
		k++;
	}
	if (k <= DUP_PAIRWISE_MAX) {
		for (const cJSON *a = obj->child; a; a = a->next) {
			for (const cJSON *b = a->next; b; b = b->next) {
				if (strcmp(a->string, b->string) == 0) {
					return a->string;
				}
			}
		}
		return NULL;
	}
	while (cap < 2 * k) {
		cap *= 2;
	}
	slots = calloc(cap, sizeof(*slots));
	if (!slots) {
		*out_nomem = true;
		return NULL;
	}
	for (const cJSON *a = obj->child; a && !dup; a = a->next) {
		uint32_t h = key_hash(a->string);
		size_t at = h & (cap - 1);

		while (slots[at].key && !dup) {
			if (slots[at].hash == h && strcmp(slots[at].key, a->string) == 0) {
				dup = a->string;
			}
			at = (at + 1) & (cap - 1);
		}
		slots[at].key = a->string;
		slots[at].hash = h;
	}
	free(slots);
	return dup;
}

/* Walks node's containers (their depth is bounded by step 2). */
static const char *find_duplicate(const cJSON *node, bool *out_nomem)
{
	const char *dup = NULL;

	if (cJSON_IsObject(node)) {
		dup = object_duplicate(node, out_nomem);
	}
	for (const cJSON *c = node->child; c && !dup && !*out_nomem; c = c->next) {
		if (cJSON_IsObject(c) || cJSON_IsArray(c)) {
			dup = find_duplicate(c, out_nomem);
		}
	}
	return dup;
}

/* ---- the reader ---- */

/* Copies at most KEY_SHOW_MAX printable ASCII characters of untrusted s for a message. */
static const char *shown(const char *s, char *buf, size_t size)
{
	size_t i = 0;

	for (; s[i] && i + 1 < size && i < KEY_SHOW_MAX; i++) {
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	}
	buf[i] = '\0';
	return buf;
}

/* err for f, in the words of messages.c, the first strict reader. */
static int explain(const char *what, const unsigned char *text, size_t len,
		   const struct moat_json_limits *lim, const struct moat_json_fault *f,
		   struct moat_err *err)
{
	char show[KEY_SHOW_MAX + 8];

	switch (f->kind) {
	case MOAT_JSON_OK:
		break;
	case MOAT_JSON_EMPTY:
		return moat_err_set(err, MOAT_EINVAL, "%s: empty message", what);
	case MOAT_JSON_TOO_BIG:
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: message of %zu bytes is over the limit of %zu", what, len,
				    lim->max_bytes);
	case MOAT_JSON_NUL:
		return moat_err_set(err, MOAT_EINVAL, "%s: message contains a NUL byte", what);
	case MOAT_JSON_NOT_ASCII:
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: byte 0x%02x at offset %zu is not printable ASCII", what,
				    text[f->offset], f->offset);
	case MOAT_JSON_ESCAPE:
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: escape at offset %zu (no field needs one)", what,
				    f->offset);
	case MOAT_JSON_CONTROL:
		return moat_err_set(err, MOAT_EINVAL, "%s: control character at byte %zu", what,
				    f->offset);
	case MOAT_JSON_ESCAPED_NUL:
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: message contains an escaped NUL (\\u0000)", what);
	case MOAT_JSON_BAD_ESCAPE:
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: invalid escape at offset %zu (\\u needs 4 hex digits, "
				    "surrogates a high and low pair)",
				    what, f->offset);
	case MOAT_JSON_BAD_TEXT:
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: string at offset %zu is not printable text (control "
				    "character or invalid UTF-8)",
				    what, f->offset);
	case MOAT_JSON_BAD_NUMBER:
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: the number at offset %zu is not in JSON number syntax",
				    what, f->offset);
	case MOAT_JSON_TOO_DEEP:
		return moat_err_set(err, MOAT_EINVAL, "%s: nested deeper than %u levels", what,
				    lim->max_depth);
	case MOAT_JSON_SYNTAX:
		/* step 2's refusals name the byte; cJSON's have offset 0, whose byte step 2
		 * would have refused were it one of these */
		if (f->offset < len && (text[f->offset] >= 0x80 ||
					(text[f->offset] < 0x20 && !json_space(text[f->offset])))) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: invalid JSON (byte 0x%02x at offset %zu)", what,
					    text[f->offset], f->offset);
		}
		return moat_err_set(err, MOAT_EINVAL, "%s: invalid JSON", what);
	case MOAT_JSON_TRAILING:
		return moat_err_set(err, MOAT_EINVAL, "%s: data after the object", what);
	case MOAT_JSON_NOT_OBJECT:
		return moat_err_set(err, MOAT_EINVAL, "%s: not a JSON object", what);
	case MOAT_JSON_DUPLICATE:
		return moat_err_set(err, MOAT_EINVAL, "%s: duplicate key \"%s\"", what,
				    shown(f->key, show, sizeof(show)));
	case MOAT_JSON_NO_MEMORY:
		return moat_err_set(err, MOAT_ENOMEM, "%s: out of memory", what);
	}
	return moat_err_set(err, MOAT_EINVAL, "%s: refused", what);
}

/* Steps 3 and 4 on text that passed 1 and 2. */
static cJSON *parse_checked(const char *text, size_t len, struct moat_json_fault *f)
{
	const char *end = NULL;
	bool nomem = false;
	const char *dup;
	cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);

	if (!root) {
		f->kind = MOAT_JSON_SYNTAX;
		return NULL;
	}
	while (end && end < text + len &&
	       (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')) {
		end++;
	}
	if (!end || end != text + len) {
		f->kind = MOAT_JSON_TRAILING;
		goto fail;
	}
	if (!cJSON_IsObject(root)) {
		f->kind = MOAT_JSON_NOT_OBJECT;
		goto fail;
	}
	dup = find_duplicate(root, &nomem);
	if (nomem) {
		f->kind = MOAT_JSON_NO_MEMORY;
		goto fail;
	}
	if (dup) {
		size_t n = strnlen(dup, MOAT_JSON_KEY_KEEP_MAX);
		memcpy(f->key, dup, n);
		f->key[n] = '\0';
		f->kind = MOAT_JSON_DUPLICATE;
		goto fail;
	}
	return root;
fail:
	cJSON_Delete(root);
	return NULL;
}

int moat_json_parse(const char *what, const void *text, size_t len,
		    const struct moat_json_limits *lim, cJSON **out_root,
		    struct moat_json_fault *out_fault, struct moat_err *err)
{
	struct moat_json_fault local;
	struct moat_json_fault *f = out_fault ? out_fault : &local;
	struct scan s;

	memset(f, 0, sizeof(*f));
	*out_root = NULL;
	if (!text || len == 0) {
		f->kind = MOAT_JSON_EMPTY;
	} else if (len > lim->max_bytes) {
		f->kind = MOAT_JSON_TOO_BIG;
	} else if (check_bytes(text, len, lim->flags, f) == 0) {
		memset(&s, 0, sizeof(s));
		s.p = text;
		s.len = len;
		s.max_open = (lim->max_depth < MOAT_JSON_DEPTH_MAX ? lim->max_depth
								   : MOAT_JSON_DEPTH_MAX) +
			     1;
		s.uints = (lim->flags & MOAT_JSON_UINTS) != 0;
		s.f = f;
		if (scan_text(&s) == 0) {
			*out_root = parse_checked(text, len, f);
		}
	}
	if (*out_root) {
		return 0;
	}
	return explain(what, text, len, lim, f, err);
}

/* ---- members of fixed-shape objects ---- */

int moat_json_fields(const char *what, const cJSON *obj, const char *const *names, size_t n,
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

int moat_json_int(const char *what, const char *field, const cJSON *item, int64_t min, int64_t max,
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

int moat_json_str(const char *what, const char *field, const cJSON *item, size_t max_len,
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

/* ---- the quick pass (moat_json_object_quick) ----
 * A recursive descent over strict RFC 8259 JSON that gives up (false) on anything it does
 * not decide itself; its recursion is bounded by the depth limit (at most
 * MOAT_JSON_DEPTH_MAX + 1 levels). Keys of the open objects are kept as spans of the text
 * (they have no escapes, so raw bytes are what cJSON would compare) on one fixed stack. */

/* Numbers longer than this are left to the reader (cJSON reads at most 63 characters). */
#define QUICK_NUMBER_MAX 32
#define QUICK_STACK_KEYS ((MOAT_JSON_DEPTH_MAX + 1) * 8)

struct quick_key {
	uint32_t off;
	uint32_t len;
};

struct quick {
	const unsigned char *p;
	size_t len;
	size_t i;
	unsigned depth;
	unsigned max_open;
	struct quick_key keys[QUICK_STACK_KEYS];
	size_t nkeys;
	struct moat_json_quick_field *field;
};

static void quick_ws(struct quick *q)
{
	while (q->i < q->len && (q->p[q->i] == ' ' || q->p[q->i] == '\t' || q->p[q->i] == '\n' ||
				 q->p[q->i] == '\r')) {
		q->i++;
	}
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	c = (unsigned char)(c | 0x20);
	return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* A string from its opening quote; *out_escaped says whether it had an escape. Gives up on
 * what step 2 or cJSON would refuse and on \u escapes of surrogates or of U+0000. */
static bool quick_string(struct quick *q, bool *out_escaped)
{
	const unsigned char *p = q->p;
	size_t i = q->i + 1;
	size_t end = q->len;

	*out_escaped = false;
	q->i = i;
	while (q->i < q->len) {
		/* the common case in registers: a run of plain printable ASCII */
		for (i = q->i; i < end && !string_stop[p[i]]; i++) {
		}
		q->i = i;
		if (i == end) {
			break;
		}
		unsigned char c = p[i];
		if (c == '"') {
			q->i++;
			return true;
		}
		if (c < 0x20 || q->i + 1 >= q->len) {
			return false;
		}
		if (c >= 0x80) {
			size_t n = moat_utf8_decode(q->p + q->i, q->len - q->i, NULL);
			if (n == 0) {
				return false;
			}
			q->i += n;
			continue;
		}
		/* a backslash */
		*out_escaped = true;
		c = q->p[q->i + 1];
		if (c == 'u') {
			unsigned cp = 0;
			if (q->len - q->i < 6) {
				return false;
			}
			for (size_t k = 2; k < 6; k++) {
				int h = hex_value(q->p[q->i + k]);
				if (h < 0) {
					return false;
				}
				cp = cp << 4 | (unsigned)h;
			}
			if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) {
				return false;
			}
			q->i += 6;
		} else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
			   c == 'r' || c == 't') {
			q->i += 2;
		} else {
			return false;
		}
	}
	return false;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? of at most QUICK_NUMBER_MAX characters. */
static bool quick_number(struct quick *q)
{
	size_t start = q->i;
	struct scan s = {.p = q->p, .len = q->len, .i = q->i};
	bool ok;

	if (s.p[s.i] == '-') {
		s.i++;
	}
	if (s.i < s.len && s.p[s.i] == '0') {
		s.i++;
		ok = true;
	} else {
		ok = digits(&s);
	}
	if (ok && s.i < s.len && s.p[s.i] == '.') {
		s.i++;
		ok = digits(&s);
	}
	if (ok && s.i < s.len && (s.p[s.i] == 'e' || s.p[s.i] == 'E')) {
		s.i++;
		if (s.i < s.len && (s.p[s.i] == '+' || s.p[s.i] == '-')) {
			s.i++;
		}
		ok = digits(&s);
	}
	q->i = s.i;
	return ok && s.i - start <= QUICK_NUMBER_MAX;
}

static bool quick_literal(struct quick *q, const char *word, size_t n)
{
	if (q->len - q->i < n || memcmp(q->p + q->i, word, n) != 0) {
		return false;
	}
	q->i += n;
	return true;
}

static bool quick_value(struct quick *q, bool top);

/* Records the key at off..off+len of the object whose keys start at base; false when it is
 * there already (a duplicate: the reader's to refuse) or there is no room. */
static bool quick_key_add(struct quick *q, size_t base, uint32_t off, uint32_t len)
{
	if (q->nkeys - base >= MOAT_JSON_QUICK_KEYS || q->nkeys >= QUICK_STACK_KEYS) {
		return false;
	}
	for (size_t k = base; k < q->nkeys; k++) {
		if (q->keys[k].len == len && memcmp(q->p + q->keys[k].off, q->p + off, len) == 0) {
			return false;
		}
	}
	q->keys[q->nkeys].off = off;
	q->keys[q->nkeys].len = len;
	q->nkeys++;
	return true;
}

/* A member's value; at the top, the one of field->key is recorded. */
static bool quick_member_value(struct quick *q, bool top, uint32_t koff, uint32_t klen)
{
	struct moat_json_quick_field *f = q->field;
	if (!top || !f || strlen(f->key) != klen || memcmp(q->p + koff, f->key, klen) != 0) {
		return quick_value(q, false);
	}
	f->found = true;
	if (q->p[q->i] != '"') {
		return quick_value(q, false);
	}
	size_t start = q->i + 1;
	bool escaped;
	if (!quick_string(q, &escaped) || escaped) {
		return false;
	}
	f->is_string = true;
	f->value = (const char *)q->p + start;
	f->value_len = q->i - 1 - start;
	return true;
}

static bool quick_object(struct quick *q, bool top)
{
	size_t base = q->nkeys;
	q->i++;
	quick_ws(q);
	if (q->i < q->len && q->p[q->i] == '}') {
		q->i++;
		return true;
	}
	for (;;) {
		bool escaped;
		if (q->i >= q->len || q->p[q->i] != '"') {
			return false;
		}
		uint32_t koff = (uint32_t)(q->i + 1);
		if (!quick_string(q, &escaped) || escaped) {
			return false;
		}
		uint32_t klen = (uint32_t)(q->i - 1 - koff);
		if (!quick_key_add(q, base, koff, klen)) {
			return false;
		}
		quick_ws(q);
		if (q->i >= q->len || q->p[q->i] != ':') {
			return false;
		}
		q->i++;
		quick_ws(q);
		if (q->i >= q->len || !quick_member_value(q, top, koff, klen)) {
			return false;
		}
		quick_ws(q);
		if (q->i >= q->len) {
			return false;
		}
		if (q->p[q->i] == '}') {
			q->i++;
			q->nkeys = base;
			return true;
		}
		if (q->p[q->i] != ',') {
			return false;
		}
		q->i++;
		quick_ws(q);
	}
}

static bool quick_array(struct quick *q)
{
	q->i++;
	quick_ws(q);
	if (q->i < q->len && q->p[q->i] == ']') {
		q->i++;
		return true;
	}
	for (;;) {
		if (q->i >= q->len || !quick_value(q, false)) {
			return false;
		}
		quick_ws(q);
		if (q->i >= q->len) {
			return false;
		}
		if (q->p[q->i] == ']') {
			q->i++;
			return true;
		}
		if (q->p[q->i] != ',') {
			return false;
		}
		q->i++;
		quick_ws(q);
	}
}

/* The value at q->i (q->i < q->len). */
static bool quick_value(struct quick *q, bool top)
{
	unsigned char c = q->p[q->i];
	bool escaped, ok;

	if (c == '{' || c == '[') {
		if (++q->depth > q->max_open) {
			return false;
		}
		ok = c == '{' ? quick_object(q, top) : quick_array(q);
		q->depth--;
		return ok;
	}
	if (c == '"') {
		return quick_string(q, &escaped);
	}
	if (c == '-' || is_digit(c)) {
		return quick_number(q);
	}
	if (c == 't') {
		return quick_literal(q, "true", 4);
	}
	if (c == 'f') {
		return quick_literal(q, "false", 5);
	}
	return c == 'n' && quick_literal(q, "null", 4);
}

bool moat_json_object_quick(const void *text, size_t len, const struct moat_json_limits *lim,
			    struct moat_json_quick_field *field)
{
	struct quick q;

	if (field) {
		field->found = false;
		field->is_string = false;
		field->value = NULL;
		field->value_len = 0;
	}
	if (!text || len == 0 || len > lim->max_bytes || len > UINT32_MAX || lim->flags != 0) {
		return false;
	}
	q.p = text;
	q.len = len;
	q.i = 0;
	q.depth = 0;
	q.max_open =
		(lim->max_depth < MOAT_JSON_DEPTH_MAX ? lim->max_depth : MOAT_JSON_DEPTH_MAX) + 1;
	q.nkeys = 0;
	q.field = field;
	/* Whitespace before the value: the reader skips it too. */
	quick_ws(&q);
	if (q.i >= q.len || q.p[q.i] != '{' || !quick_value(&q, true)) {
		return false;
	}
	quick_ws(&q);
	return q.i == q.len;
}
