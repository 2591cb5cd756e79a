/* text.c: the one UTF-8 decoder and the one escaping of text from outside (text.h).
 *
 * moat_text_escape walks the input one unit at a time: a valid UTF-8 sequence that is not
 * a control code point is copied as it is, anything else becomes a backslash escape that
 * names the bytes or the code point. Escapes are written whole or not at all, so a cut
 * output never ends in half an escape (or in half a UTF-8 sequence).
 */
#include "moat/text.h"

#include <stdio.h>
#include <string.h>

size_t moat_utf8_decode(const unsigned char *p, size_t avail, uint32_t *out_cp)
{
	unsigned c = p[0];
	uint32_t cp;
	size_t n;

	if (c < 0x80) {
		n = 1;
		cp = c;
	} else if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n > avail) {
		return 0;
	}
	for (size_t k = 1; k < n; k++) {
		if ((p[k] & 0xc0) != 0x80) {
			return 0;
		}
		cp = (cp << 6) | (p[k] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff)) {
		return 0;
	}
	if (out_cp) {
		*out_cp = cp;
	}
	return n;
}

bool moat_text_cp_is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069);
}

bool moat_text_display_ok(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t cp = 0;

	for (size_t i = 0; i < len;) {
		size_t n = moat_utf8_decode(p + i, len - i, &cp);
		if (n == 0 || moat_text_cp_is_control(cp)) {
			return false;
		}
		i += n;
	}
	return true;
}

/* The escape for one unit of n bytes at p (code point cp, or n == 0: invalid byte p[0])
 * into esc; its length, or 0 when the unit is copied as it is. */
static size_t escape_unit(const unsigned char *p, size_t n, uint32_t cp, unsigned flags,
			  char esc[8])
{
	if (n == 0) {
		return (size_t)snprintf(esc, 8, "\\x%02x", p[0]);
	}
	if ((flags & MOAT_TEXT_QUOTED) && (cp == '"' || cp == '\\')) {
		esc[0] = '\\';
		esc[1] = (char)cp;
		esc[2] = '\0';
		return 2;
	}
	if (!moat_text_cp_is_control(cp)) {
		return 0;
	}
	switch (cp) {
	case '\n':
		return (size_t)snprintf(esc, 8, "\\n");
	case '\r':
		return (size_t)snprintf(esc, 8, "\\r");
	case '\t':
		return (size_t)snprintf(esc, 8, "\\t");
	default:
		break;
	}
	if (cp < 0x80) {
		return (size_t)snprintf(esc, 8, "\\x%02x", (unsigned)cp);
	}
	return (size_t)snprintf(esc, 8, "\\u%04x", (unsigned)cp);
}

size_t moat_text_escape(char *out, size_t size, const char *in, size_t len, unsigned flags,
			size_t *out_used)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0;
	size_t i = 0;

	while (i < len) {
		uint32_t cp = 0;
		size_t n = moat_utf8_decode(p + i, len - i, &cp);
		char esc[8];
		size_t elen = escape_unit(p + i, n, cp, flags, esc);
		const char *src = elen ? esc : (const char *)p + i;
		size_t slen = elen ? elen : n;

		if (o + slen + 1 > size) {
			break;
		}
		memcpy(out + o, src, slen);
		o += slen;
		i += n ? n : 1;
	}
	if (size > 0) {
		out[o] = '\0';
	}
	if (out_used) {
		*out_used = i;
	}
	return o;
}
