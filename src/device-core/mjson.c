/* mjson.c: strict JSON reading for moat-device over jsmn (mjson.h). */
#define MJSON_IMPL
#include "mjson.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "moat_device.h"

void mdev_msgf(char *msg, const char *fmt, ...)
{
	if (msg == NULL) {
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, MDEV_MSG_MAX, fmt, ap);
	va_end(ap);
}

static bool space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* jsmn's strict mode still takes trailing or doubled commas, a string followed by ':' as a
 * value, and any printable run as a primitive. So the text between tokens is checked here:
 * only whitespace and exactly the separator JSON requires, and every primitive is true,
 * false, null or a number by JSON's grammar. Nesting is bounded (MJ_MAX_DEPTH). */
#define MJ_MAX_DEPTH 8

static int ext_start(const jsmntok_t *t)
{
	return t->type == JSMN_STRING ? t->start - 1 : t->start;
}

static int ext_end(const jsmntok_t *t)
{
	return t->type == JSMN_STRING ? t->end + 1 : t->end;
}

/* [from, to) holds whitespace and, when sep is not 0, exactly one sep. */
static bool gap_ok(const char *js, int from, int to, char sep)
{
	int seen = 0;
	if (from < 0 || to < from) {
		return false;
	}
	for (int i = from; i < to; i++) {
		if (sep != 0 && js[i] == sep) {
			seen++;
		} else if (!space(js[i])) {
			return false;
		}
	}
	return seen == (sep != 0 ? 1 : 0);
}

static bool digits(const char *p, int n, int *i)
{
	int start = *i;
	while (*i < n && p[*i] >= '0' && p[*i] <= '9') {
		(*i)++;
	}
	return *i > start;
}

static bool primitive_ok(const char *p, int n)
{
	int i = 0;
	if ((n == 4 && memcmp(p, "true", 4) == 0) || (n == 5 && memcmp(p, "false", 5) == 0) ||
	    (n == 4 && memcmp(p, "null", 4) == 0)) {
		return true;
	}
	if (i < n && p[i] == '-') {
		i++;
	}
	if (i < n && p[i] == '0') {
		i++;
	} else if (!digits(p, n, &i)) {
		return false;
	}
	if (i < n && p[i] == '.') {
		i++;
		if (!digits(p, n, &i)) {
			return false;
		}
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		i++;
		if (i < n && (p[i] == '+' || p[i] == '-')) {
			i++;
		}
		if (!digits(p, n, &i)) {
			return false;
		}
	}
	return i == n;
}

/* The token after the subtree at i when it is well-formed, else -1. */
static int structure(const struct mjson *j, int i, int depth)
{
	const jsmntok_t *t = &j->tok[i];
	if (t->type == JSMN_PRIMITIVE) {
		return primitive_ok(j->js + t->start, t->end - t->start) ? i + 1 : -1;
	}
	if (t->type == JSMN_STRING) {
		return t->size == 0 ? i + 1 : -1;
	}
	if ((t->type != JSMN_OBJECT && t->type != JSMN_ARRAY) || depth >= MJ_MAX_DEPTH) {
		return -1;
	}
	bool object = t->type == JSMN_OBJECT;
	int pos = t->start + 1;
	int k = i + 1;
	for (int m = 0; m < t->size; m++) {
		if (k >= j->ntok || !gap_ok(j->js, pos, ext_start(&j->tok[k]), m == 0 ? 0 : ',')) {
			return -1;
		}
		if (object) {
			const jsmntok_t *key = &j->tok[k];
			if (key->type != JSMN_STRING || key->size != 1 || k + 1 >= j->ntok ||
			    !gap_ok(j->js, ext_end(key), ext_start(&j->tok[k + 1]), ':')) {
				return -1;
			}
			k++;
		}
		int v = k;
		k = structure(j, v, depth + 1);
		if (k < 0) {
			return -1;
		}
		pos = ext_end(&j->tok[v]);
	}
	return gap_ok(j->js, pos, t->end - 1, 0) ? k : -1;
}

int mj_parse(struct mjson *j, const char *what, const void *js, size_t len, size_t max,
	     jsmntok_t *tok, int ntok, char *msg)
{
	jsmn_parser p;
	memset(j, 0, sizeof(*j));
	j->js = js;
	j->len = len;
	j->tok = tok;
	j->what = what;
	j->msg = msg;
	if (len == 0) {
		mdev_msgf(msg, "%s: empty message", what);
		return -1;
	}
	if (len > max) {
		mdev_msgf(msg, "%s: larger than %lu bytes", what, (unsigned long)max);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)j->js[i];
		if (c == 0) {
			mdev_msgf(msg, "%s: message contains a NUL byte", what);
			return -1;
		}
		if (c < 0x20 && !space((char)c)) {
			mdev_msgf(msg, "%s: control character at byte %lu", what, (unsigned long)i);
			return -1;
		}
	}
	jsmn_init(&p);
	int n = jsmn_parse(&p, j->js, len, tok, (unsigned)ntok);
	if (n == JSMN_ERROR_NOMEM) {
		mdev_msgf(msg, "%s: more than %d JSON tokens", what, ntok);
		return -1;
	}
	if (n < 1) {
		mdev_msgf(msg, "%s: invalid JSON", what);
		return -1;
	}
	if (tok[0].type != JSMN_OBJECT) {
		mdev_msgf(msg, "%s: not a JSON object", what);
		return -1;
	}
	for (size_t i = (size_t)tok[0].end; i < len; i++) {
		if (!space(j->js[i])) {
			mdev_msgf(msg, "%s: data after the object", what);
			return -1;
		}
	}
	for (size_t i = 0; i < (size_t)tok[0].start; i++) {
		if (!space(j->js[i])) {
			mdev_msgf(msg, "%s: invalid JSON", what);
			return -1;
		}
	}
	j->ntok = n;
	/* Structure jsmn's strict mode leaves to us: every key a string with one value,
	 * every value a leaf or container, nothing after the root. */
	for (int i = 0; i < n; i++) {
		if (tok[i].start < 0 || tok[i].end < tok[i].start || (size_t)tok[i].end > len) {
			mdev_msgf(msg, "%s: invalid JSON", what);
			return -1;
		}
	}
	if (structure(j, 0, 0) != n) {
		mdev_msgf(msg, "%s: invalid JSON (or nested deeper than %d levels)", what,
			  MJ_MAX_DEPTH);
		return -1;
	}
	return 0;
}

int mj_next(const struct mjson *j, int i)
{
	int end = j->tok[i].end;
	int k = i + 1;
	while (k < j->ntok && j->tok[k].start < end) {
		k++;
	}
	return k;
}

static bool key_is(const struct mjson *j, int k, const char *name)
{
	size_t n = (size_t)(j->tok[k].end - j->tok[k].start);
	return strlen(name) == n && memcmp(j->js + j->tok[k].start, name, n) == 0;
}

int mj_fields(struct mjson *j, int obj, const char *const *names, const bool *required, int n,
	      bool allow_unknown, int *out)
{
	if (obj >= j->ntok || j->tok[obj].type != JSMN_OBJECT) {
		mdev_msgf(j->msg, "%s: not a JSON object", j->what);
		return -1;
	}
	for (int f = 0; f < n; f++) {
		out[f] = -1;
	}
	int k = obj + 1;
	for (int m = 0; m < j->tok[obj].size; m++) {
		if (k >= j->ntok || j->tok[k].type != JSMN_STRING || j->tok[k].size != 1 ||
		    k + 1 >= j->ntok) {
			mdev_msgf(j->msg, "%s: invalid JSON", j->what);
			return -1;
		}
		int v = k + 1;
		if (j->tok[v].type == JSMN_STRING && j->tok[v].size != 0) {
			mdev_msgf(j->msg, "%s: invalid JSON", j->what);
			return -1;
		}
		int f = 0;
		while (f < n && !key_is(j, k, names[f])) {
			f++;
		}
		if (f == n) {
			/* A key with an escape or odd bytes is still reported safely. */
			int shown = j->tok[k].end - j->tok[k].start;
			const char *s = j->js + j->tok[k].start;
			bool plain = true;
			for (int c = 0; c < shown; c++) {
				plain = plain && s[c] >= 0x20 && s[c] < 0x7f && s[c] != '\\';
			}
			/* A duplicate of an unknown key is as refused as the key itself. */
			if (!allow_unknown) {
				mdev_msgf(j->msg, "%s: unknown field '%.*s'", j->what,
					  plain ? (shown > 40 ? 40 : shown) : 1, plain ? s : "?");
				return -1;
			}
		} else if (out[f] >= 0) {
			mdev_msgf(j->msg, "%s: duplicate field '%s'", j->what, names[f]);
			return -1;
		} else {
			out[f] = v;
		}
		k = mj_next(j, v);
	}
	for (int f = 0; f < n; f++) {
		if (out[f] < 0 && (required == NULL || required[f])) {
			mdev_msgf(j->msg, "%s: missing field '%s'", j->what, names[f]);
			return -1;
		}
	}
	return 0;
}

int mj_str(struct mjson *j, int i, const char *field, size_t max, const char **s, size_t *slen)
{
	const jsmntok_t *t = &j->tok[i];
	if (t->type != JSMN_STRING) {
		mdev_msgf(j->msg, "%s: '%s' is not a string", j->what, field);
		return -1;
	}
	size_t n = (size_t)(t->end - t->start);
	const char *p = j->js + t->start;
	if (n == 0) {
		mdev_msgf(j->msg, "%s: '%s' is empty", j->what, field);
		return -1;
	}
	if (n > max) {
		mdev_msgf(j->msg, "%s: '%s' is longer than %lu bytes", j->what, field,
			  (unsigned long)max);
		return -1;
	}
	for (size_t c = 0; c < n; c++) {
		if (p[c] < 0x20 || p[c] > 0x7e || p[c] == '\\') {
			mdev_msgf(j->msg,
				  "%s: '%s' has an escape or a character that is not allowed",
				  j->what, field);
			return -1;
		}
	}
	*s = p;
	*slen = n;
	return 0;
}

int mj_int(struct mjson *j, int i, const char *field, int64_t min, int64_t max, int64_t *out)
{
	const jsmntok_t *t = &j->tok[i];
	const char *p = j->js + t->start;
	size_t n = (size_t)(t->end - t->start);
	bool neg = n > 0 && p[0] == '-';
	size_t d = neg ? 1 : 0;
	if (t->type != JSMN_PRIMITIVE || n == d || p[d] < '0' || p[d] > '9') {
		mdev_msgf(j->msg, "%s: '%s' is not a number", j->what, field);
		return -1;
	}
	if (n - d > 16 || (n - d > 1 && p[d] == '0')) {
		mdev_msgf(j->msg, "%s: '%s' is outside %lld..%lld", j->what, field, (long long)min,
			  (long long)max);
		return -1;
	}
	int64_t v = 0;
	for (size_t c = d; c < n; c++) {
		if (p[c] < '0' || p[c] > '9') {
			mdev_msgf(j->msg, "%s: '%s' is not a whole number", j->what, field);
			return -1;
		}
		v = v * 10 + (p[c] - '0');
	}
	v = neg ? -v : v;
	if (v < min || v > max) {
		mdev_msgf(j->msg, "%s: '%s' is outside %lld..%lld", j->what, field, (long long)min,
			  (long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

bool mj_is(const struct mjson *j, int i, const char *lit)
{
	size_t n = (size_t)(j->tok[i].end - j->tok[i].start);
	return j->tok[i].type == JSMN_PRIMITIVE && strlen(lit) == n &&
	       memcmp(j->js + j->tok[i].start, lit, n) == 0;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z') {
		return c - 'A';
	}
	if (c >= 'a' && c <= 'z') {
		return c - 'a' + 26;
	}
	if (c >= '0' && c <= '9') {
		return c - '0' + 52;
	}
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

int mdev_b64_decode(const char *in, size_t in_len, unsigned char *out, size_t out_size,
		    size_t *out_len)
{
	size_t o = 0;
	*out_len = 0;
	if (in_len % 4 != 0) {
		return -1;
	}
	for (size_t i = 0; i < in_len; i += 4) {
		bool last = i + 4 == in_len;
		int pad = 0;
		if (last && in[i + 3] == '=') {
			pad = in[i + 2] == '=' ? 2 : 1;
		}
		int v[4] = {0, 0, 0, 0};
		for (int k = 0; k < 4 - pad; k++) {
			v[k] = b64_value(in[i + k]);
			if (v[k] < 0) {
				return -1;
			}
		}
		if ((pad == 1 && (v[2] & 0x03) != 0) || (pad == 2 && (v[1] & 0x0f) != 0)) {
			return -1;
		}
		size_t n = 3 - (size_t)pad;
		if (o + n > out_size) {
			return -1;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
			     (uint32_t)v[3];
		if (out != NULL) {
			out[o] = (unsigned char)(w >> 16);
			if (n > 1) {
				out[o + 1] = (unsigned char)(w >> 8);
			}
			if (n > 2) {
				out[o + 2] = (unsigned char)w;
			}
		}
		o += n;
	}
	*out_len = o;
	return 0;
}

int mdev_hex_decode(const char *in, size_t in_len, uint8_t *out, size_t n)
{
	if (in_len != 2 * n) {
		return -1;
	}
	for (size_t i = 0; i < in_len; i++) {
		char c = in[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0) {
			return -1;
		}
		if (i % 2 == 0) {
			out[i / 2] = (uint8_t)(v << 4);
		} else {
			out[i / 2] |= (uint8_t)v;
		}
	}
	return 0;
}
