/* text.h: text that came from outside (a device, the network, a file) shown to people: the
 * one UTF-8 decoder, the one list of code points that control a terminal, and the one
 * escaping function every log line and every operator's output goes through
 * (src/util/text.c).
 *
 * What a device wrote is data, never terminal control: C0 controls and DEL (ESC starts a
 * terminal sequence, a newline forges a log line), C1 controls (U+0080..U+009F: U+009B is
 * CSI, U+009D is OSC on terminals that read C1) and the bidi overrides and isolates
 * (U+202A..U+202E, U+2066..U+2069), which reorder what a reader sees ("Trojan Source").
 *
 * Contract: pure; nothing allocates, nothing reads past the length it is given, and a
 * NUL byte inside that length is just another control character.
 */
#ifndef MOAT_TEXT_H
#define MOAT_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most bytes moat_text_escape writes for one input byte ("\xff" for 0xff; "\u009b"
 * for the two bytes of U+009B), so (len * MOAT_TEXT_ESCAPE_GROWTH + 1) bytes always hold
 * the escaped form of len bytes, its NUL included. */
#define MOAT_TEXT_ESCAPE_GROWTH 4

/* moat_text_escape flags */
enum moat_text_flag {
	MOAT_TEXT_QUOTED = 1u << 0, /* also '"' -> \" and '\' -> \\: the text goes between
				       double quotes (a key="value" log field) */
};

/* Length (1..4) of the valid UTF-8 sequence at p (avail >= 1 bytes) and its code point in
 * *out_cp (may be NULL), or 0: no overlong forms, no surrogates, nothing above U+10FFFF,
 * nothing cut short. ASCII is a sequence of 1. */
size_t moat_utf8_decode(const unsigned char *p, size_t avail, uint32_t *out_cp);

/* true for the code points that control a terminal or the order of what it shows: C0,
 * DEL, C1, U+202A..U+202E and U+2066..U+2069. */
bool moat_text_cp_is_control(uint32_t cp);

/* true when len bytes at s are valid UTF-8 with no code point moat_text_cp_is_control
 * names: text fit to be shown as it is. */
bool moat_text_display_ok(const char *s, size_t len);

/* Writes len bytes at in into out (size >= 1 bytes, always NUL-terminated) with every
 * control code point escaped: \n, \r, \t; other C0 and DEL as \xHH; C1 and the bidi
 * controls as \uHHHH; each byte of invalid UTF-8 as \xHH; with MOAT_TEXT_QUOTED '"' and
 * '\' as \" and \\. Everything else is copied. Stops before the first unit that does not
 * fit, never inside one. Returns the bytes written (NUL excluded); *out_used (may be
 * NULL) receives the input bytes consumed: len unless out was too small. */
size_t moat_text_escape(char *out, size_t size, const char *in, size_t len, unsigned flags,
			size_t *out_used);

#endif
