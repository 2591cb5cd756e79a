/* keys.c: the key types identities and the CA may have. RSA below 2048 bits is refused by
 * construction: there is no such key type, and pki_key_check refuses such a key handed in.
 * Generation is keys.h's moat_key_generate (src/core), shared with firmware keys. */
#include <string.h>

#include <openssl/evp.h>

#include "pki_internal.h"

int moat_key_type_parse(const char *text, enum moat_key_type *out, struct moat_err *err)
{
	enum moat_key_type type;
	if (moat_key_type_lookup(text, &type) && type != MOAT_KEY_ED25519) {
		*out = type;
		return 0;
	}
	return moat_err_set(err, MOAT_EINVAL,
			    "key type '%s' refused: use ec-p256, rsa-2048, rsa-3072 or rsa-4096",
			    text ? text : "");
}

int pki_key_check(EVP_PKEY *key, struct moat_err *err)
{
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
		int bits = EVP_PKEY_get_bits(key);
		if (bits < 2048) {
			return moat_err_set(err, MOAT_EINVAL,
					    "RSA key of %d bits refused: at least 2048", bits);
		}
		return 0;
	}
	if (moat_key_is_p256(key)) {
		return 0;
	}
	return moat_err_set(err, MOAT_EINVAL,
			    "key refused: use ec-p256, rsa-2048, rsa-3072 or rsa-4096");
}
