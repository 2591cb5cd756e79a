/* keys.c: key types moat accepts and key generation. RSA below 2048 bits is refused by
 * construction: there is no such key type, and pki_key_check refuses such a key handed in. */
#include <string.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "pki_internal.h"

static const struct {
	const char *name;
	enum moat_key_type type;
} key_types[] = {
	{"ec-p256", MOAT_KEY_EC_P256},
	{"rsa-2048", MOAT_KEY_RSA_2048},
	{"rsa-3072", MOAT_KEY_RSA_3072},
	{"rsa-4096", MOAT_KEY_RSA_4096},
};

int moat_key_type_parse(const char *text, enum moat_key_type *out, struct moat_err *err)
{
	for (size_t i = 0; i < sizeof(key_types) / sizeof(key_types[0]); i++) {
		if (text && strcmp(text, key_types[i].name) == 0) {
			*out = key_types[i].type;
			return 0;
		}
	}
	return moat_err_set(err, MOAT_EINVAL,
			    "key type '%s' refused: use ec-p256, rsa-2048, rsa-3072 or rsa-4096",
			    text ? text : "");
}

const char *moat_key_type_name(enum moat_key_type type)
{
	for (size_t i = 0; i < sizeof(key_types) / sizeof(key_types[0]); i++) {
		if (key_types[i].type == type) {
			return key_types[i].name;
		}
	}
	return "unknown";
}

int pki_key_check(EVP_PKEY *key, struct moat_err *err)
{
	int bits = EVP_PKEY_get_bits(key);
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
		if (bits < 2048) {
			return moat_err_set(err, MOAT_EINVAL, "RSA key of %d bits refused: at least 2048",
					    bits);
		}
		return 0;
	}
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
		char group[64];
		size_t len = 0;
		if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) == 1 &&
		    strcmp(group, "prime256v1") == 0) {
			return 0;
		}
	}
	return moat_err_set(err, MOAT_EINVAL,
			    "key refused: use ec-p256, rsa-2048, rsa-3072 or rsa-4096");
}

int moat_pki_keygen(enum moat_key_type type, EVP_PKEY **out_key, struct moat_err *err)
{
	EVP_PKEY *key = NULL;
	switch (type) {
	case MOAT_KEY_EC_P256:
		return pki_p256_keygen(out_key, err);
	case MOAT_KEY_RSA_2048:
		key = EVP_RSA_gen(2048);
		break;
	case MOAT_KEY_RSA_3072:
		key = EVP_RSA_gen(3072);
		break;
	case MOAT_KEY_RSA_4096:
		key = EVP_RSA_gen(4096);
		break;
	default:
		return moat_err_set(err, MOAT_EINVAL, "unknown key type %d", (int)type);
	}
	if (!key) {
		return moat_err_ssl(err, MOAT_ECRYPTO, "generating a %s key",
				    moat_key_type_name(type));
	}
	*out_key = key;
	return 0;
}
