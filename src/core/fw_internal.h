/* fw_internal.h: what the firmware files of src/core share among themselves (not public):
 * raw signing and verification with the one scheme each key type allows. */
#ifndef MOAT_CORE_FW_INTERNAL_H
#define MOAT_CORE_FW_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/types.h>

#include "fw_json.h"
#include "moat/err.h"

/* Signs msg with key (ECDSA SHA-256 DER, Ed25519, or RSA-PSS SHA-256 salt 32) into sig
 * (size bytes). The key must pass moat_fw_key_check. */
int fw_sig_sign(EVP_PKEY *key, const unsigned char *msg, size_t len, unsigned char *sig,
		size_t size, size_t *out_len, struct moat_err *err);
/* true only when sig is a valid signature of msg by key under the same scheme. */
bool fw_sig_verify(EVP_PKEY *key, const unsigned char *msg, size_t len, const unsigned char *sig,
		   size_t sig_len);

#endif
