/* fw_internal.h: what the firmware files of src/core share among themselves (not public):
 * raw signing and verification with the one scheme each key type allows, and the strict
 * reader (json.h) in the words the firmware files' messages have always used. */
#ifndef MOAT_CORE_FW_INTERNAL_H
#define MOAT_CORE_FW_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/types.h>

#include "moat/err.h"
#include "moat/json.h"

/* Signs msg with key (ECDSA SHA-256 DER, Ed25519, or RSA-PSS SHA-256 salt 32) into sig
 * (size bytes). The key must pass moat_fw_key_check. */
int fw_sig_sign(EVP_PKEY *key, const unsigned char *msg, size_t len, unsigned char *sig,
		size_t size, size_t *out_len, struct moat_err *err);
/* true only when sig is a valid signature of msg by key under the same scheme. */
bool fw_sig_verify(EVP_PKEY *key, const unsigned char *msg, size_t len, const unsigned char *sig,
		   size_t sig_len);

/* moat_json_parse for a manifest, an envelope or a trust file (what names it): at most
 * max bytes of printable ASCII, no escapes unless allow_escapes. Its refusals read as they
 * did before the one reader ("%zu bytes, more than the limit", "not valid JSON",
 * "duplicate field 'x'"), which the tests and `moat fw` users know. *out is freed with
 * cJSON_Delete. */
int fw_json_parse(const char *what, const void *json, size_t len, size_t max, bool allow_escapes,
		  cJSON **out, struct moat_err *err);

#endif
