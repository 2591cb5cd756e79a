/* codec.c: lower-case hex and strict base64 (codec.h), the one copy every module uses:
 * digests and key ids in manifests and the release store, certificate serials, signatures
 * and payloads in envelopes. Pure: caller buffers, no allocation.
 */
#include "moat/codec.h"

#include <stdbool.h>
#include <string.h>

void moat_hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	return -1; /* upper case too: one spelling per value */
}

int moat_hex_decode(const char *hex, uint8_t *out, size_t len)
{
	if (!hex || strnlen(hex, 2 * len + 1) != 2 * len) {
		return MOAT_EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		int hi = hex_value(hex[2 * i]);
		int lo = hex_value(hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			memset(out, 0, len);
			return MOAT_EINVAL;
		}
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void moat_b64_encode(const unsigned char *in, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t n = len - i < 3 ? len - i : 3;
		if (n > 1) {
			v |= (uint32_t)in[i + 1] << 8;
		}
		if (n > 2) {
			v |= in[i + 2];
		}
		out[o++] = b64_alphabet[(v >> 18) & 63];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = n > 1 ? b64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = n > 2 ? b64_alphabet[v & 63] : '=';
	}
	out[o] = '\0';
}

static int b64_value(char c)
{
	const char *p = c ? strchr(b64_alphabet, c) : NULL;
	return p ? (int)(p - b64_alphabet) : -1;
}

int moat_b64_decode(const char *in, size_t in_len, unsigned char *out, size_t out_size,
		    size_t *out_len)
{
	*out_len = 0;
	if (in_len % 4 != 0) {
		return MOAT_EINVAL;
	}
	size_t o = 0;
	for (size_t i = 0; i < in_len; i += 4) {
		bool last = i + 4 == in_len;
		int pad = 0;
		if (last && in[i + 3] == '=') {
			pad = in[i + 2] == '=' ? 2 : 1;
		}
		int v[4] = {0, 0, 0, 0};
		for (int j = 0; j < 4 - pad; j++) {
			v[j] = b64_value(in[i + j]);
			if (v[j] < 0) {
				goto bad;
			}
		}
		/* Canonical: the bits a padded group does not use must be zero. */
		if ((pad == 1 && (v[2] & 0x03) != 0) || (pad == 2 && (v[1] & 0x0f) != 0)) {
			goto bad;
		}
		size_t n = 3 - (size_t)pad;
		if (o + n > out_size) {
			goto bad;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
			     (uint32_t)v[3];
		out[o++] = (unsigned char)(w >> 16);
		if (n > 1) {
			out[o++] = (unsigned char)(w >> 8);
		}
		if (n > 2) {
			out[o++] = (unsigned char)w;
		}
	}
	*out_len = o;
	return 0;
bad:
	if (out_size > 0) {
		memset(out, 0, o < out_size ? o : out_size);
	}
	return MOAT_EINVAL;
}
