/* dash_parse.c: the dashboard's parsers (dashboard.h): Cookie headers and urlencoded forms.
 * Both refuse rather than guess: a name given twice is malformed, so a second copy smuggled
 * in cannot override what a check read first. */
#include <string.h>

#include "moat/dashboard.h"
#include "moat/http_parse.h"

bool moat_dash_token_ok(const char *s)
{
	if (!s) {
		return false;
	}
	size_t i = 0;
	for (; s[i]; i++) {
		bool hex = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');
		if (!hex || i >= MOAT_DASH_TOKEN_HEX_LEN) {
			return false;
		}
	}
	return i == MOAT_DASH_TOKEN_HEX_LEN;
}

static bool ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

int moat_dash_cookie_get(const char *header, const char *name, char *out, size_t size)
{
	if (!header || !name || !out || size == 0) {
		return MOAT_EINVAL;
	}
	out[0] = '\0';
	size_t nlen = strlen(name);
	bool found = false;
	const char *p = header;
	while (*p) {
		while (*p == ' ' || *p == '\t') {
			p++;
		}
		const char *start = p;
		while (*p && *p != ';') {
			if (ctl((unsigned char)*p)) {
				return MOAT_EINVAL;
			}
			p++;
		}
		const char *end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
			end--;
		}
		if (*p == ';') {
			p++;
		}
		if (end == start) {
			continue; /* "a=1;" or ";;": an empty pair */
		}
		const char *eq = memchr(start, '=', (size_t)(end - start));
		if (!eq || eq == start) {
			return MOAT_EINVAL;
		}
		if ((size_t)(eq - start) != nlen || memcmp(start, name, nlen) != 0) {
			continue;
		}
		if (found) {
			return MOAT_EINVAL;
		}
		const char *v = eq + 1;
		size_t vlen = (size_t)(end - v);
		if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
			v++;
			vlen -= 2;
		}
		if (vlen >= size) {
			return MOAT_EINVAL;
		}
		memcpy(out, v, vlen);
		out[vlen] = '\0';
		found = true;
	}
	return found ? 0 : MOAT_ENOENT;
}

/* Decodes [s, s + len) into out (size bytes); -1 when malformed or too long. */
static int form_decode(const char *s, size_t len, char *out, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			if (i + 2 >= len) {
				return -1;
			}
			int hi = moat_http_hex_value(s[i + 1]);
			int lo = moat_http_hex_value(s[i + 2]);
			if (hi < 0 || lo < 0) {
				return -1;
			}
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		}
		if (ctl(c)) {
			return -1;
		}
		if (o + 1 >= size) {
			return -1;
		}
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (int)o;
}

int moat_dash_form_get(const char *body, size_t len, const char *name, char *out, size_t size)
{
	if (!body || !name || !out || size == 0) {
		return MOAT_EINVAL;
	}
	out[0] = '\0';
	bool found = false;
	size_t i = 0;
	char key[MOAT_DASH_FIELD_MAX_LEN + 1];
	char val[MOAT_DASH_FIELD_MAX_LEN + 1];
	while (i < len) {
		size_t start = i;
		while (i < len && body[i] != '&') {
			i++;
		}
		size_t end = i;
		if (i < len) {
			i++; /* the '&' */
		}
		if (end == start) {
			continue;
		}
		const char *pair = body + start;
		const char *eq = memchr(pair, '=', end - start);
		if (!eq) {
			return MOAT_EINVAL;
		}
		if (form_decode(pair, (size_t)(eq - pair), key, sizeof(key)) < 1 ||
		    form_decode(eq + 1, (size_t)(body + end - (eq + 1)), val, sizeof(val)) < 0) {
			return MOAT_EINVAL;
		}
		if (strcmp(key, name) != 0) {
			continue;
		}
		if (found || strlen(val) >= size) {
			return MOAT_EINVAL;
		}
		memcpy(out, val, strlen(val) + 1);
		found = true;
	}
	return found ? 0 : MOAT_ENOENT;
}

bool moat_dash_value_ok(const char *v)
{
	if (!v) {
		return true;
	}
	size_t n = 0;
	for (; v[n]; n++) {
		unsigned char c = (unsigned char)v[n];
		if (c < 0x20 || c > 0x7e || n >= MOAT_DASH_FIELD_MAX_LEN) {
			return false;
		}
	}
	return true;
}

int64_t moat_dash_window_ms(const char *w)
{
	if (!w) {
		return 0;
	}
	if (strcmp(w, "1h") == 0) {
		return 3600LL * 1000;
	}
	if (strcmp(w, "24h") == 0) {
		return 24LL * 3600 * 1000;
	}
	if (strcmp(w, "7d") == 0) {
		return 7LL * 24 * 3600 * 1000;
	}
	return 0;
}
