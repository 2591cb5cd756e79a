/* keys.h: the key types moat knows and the one key generator (src/core/keys.c), shared by
 * the PKI (identity and CA keys), firmware signing keys and the device side's checks.
 *
 * One enum names every type; each use allows its own subset and refuses the rest with its
 * own message: identities and the CA take ec-p256 and rsa-2048/3072/4096
 * (moat_key_type_parse, pki.h), firmware signing takes ec-p256, ed25519 and rsa-3072
 * (moat_fw_key_type_parse, manifest.h). Pure: no files, no sockets, no clock.
 *
 * Ownership: a generated key belongs to the caller (EVP_PKEY_free). P-256 keys are
 * built-in EC keys on one process-wide group (see moat_key_p256_group), which OpenSSL's
 * encoders and every EVP_PKEY operation accept like any other key.
 */
#ifndef MOAT_KEYS_H
#define MOAT_KEYS_H

#include <stdbool.h>

#include <openssl/ec.h>
#include <openssl/types.h>

#include "moat/err.h"

enum moat_key_type {
	MOAT_KEY_EC_P256 = 0,
	MOAT_KEY_RSA_2048,
	MOAT_KEY_RSA_3072,
	MOAT_KEY_RSA_4096,
	MOAT_KEY_ED25519,
};

/* "ec-p256", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519"; "unknown" for anything else. */
const char *moat_key_type_name(enum moat_key_type type);
/* The type with that exact name (case matters); false, *out untouched, for any other text
 * or NULL. Callers refuse the types their use does not allow. */
bool moat_key_type_lookup(const char *text, enum moat_key_type *out);

/* A new key of that type; MOAT_EINVAL for a value outside the enum, *out_key NULL on any
 * failure. */
MOAT_MUST_CHECK int moat_key_generate(enum moat_key_type type, EVP_PKEY **out_key,
				      struct moat_err *err);

/* true when key is an EC key on prime256v1 (P-256). */
bool moat_key_is_p256(EVP_PKEY *key);

/* The P-256 group, built once per process and never freed (NULL only when building it
 * failed). Building a group costs far more than copying one (EC_KEY_set_group), so the
 * generator and the PKI's encoder-free P-256 path (src/pki/p256.c) both take copies. */
const EC_GROUP *moat_key_p256_group(void);

#endif
