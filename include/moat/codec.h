/* codec.h: lower-case hex and strict base64, pure (src/core/codec.c). One spelling per
 * value on input: upper-case hex, unpadded or non-canonical base64 are refused, so a digest
 * or a signature has exactly one text form wherever it is compared.
 */
#ifndef MOAT_CODEC_H
#define MOAT_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"

/* Writes 2*len lower-case hex digits and a NUL: out MUST hold 2*len + 1 bytes. */
void moat_hex_encode(const uint8_t *in, size_t len, char *out);
/* Reads exactly 2*len lower-case hex digits into out (len bytes); MOAT_EINVAL otherwise,
 * with out zeroed when a digit was bad. */
MOAT_MUST_CHECK int moat_hex_decode(const char *hex, uint8_t *out, size_t len);

/* Strict standard base64 (RFC 4648 §4, padded, canonical) of in_len bytes into out
 * (out_size bytes); *out_len the decoded length. MOAT_EINVAL on any other text, or when
 * the result does not fit. */
MOAT_MUST_CHECK int moat_b64_decode(const char *in, size_t in_len, unsigned char *out,
				    size_t out_size, size_t *out_len);
/* out MUST hold 4 * ((len + 2) / 3) + 1 bytes. */
void moat_b64_encode(const unsigned char *in, size_t len, char *out);

#endif
