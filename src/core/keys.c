/* keys.c: the key types of keys.h and the one key generator.
 *
 * P-256 keys are generated as built-in EC_KEYs on one shared group: EVP_EC_gen builds the
 * group from its name for every key (Montgomery contexts, a modular inverse), which was a
 * fifth of the cost of issuing an identity; a copy of a built group is cheap. Such a key
 * also encodes through OpenSSL's built-in EC method, with no search of the providers'
 * encoders (src/pki/p256.c relies on that). EC_KEY is deprecated in OpenSSL 3 but present
 * in every 3.x build Debian ships; only this file and src/pki/p256.c use it. Other types go
 * through EVP_PKEY_Q_keygen.
 */
/* EC_KEY_new, EC_KEY_set_group, EC_KEY_generate_key, EVP_PKEY_assign_EC_KEY: see above */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "moat/keys.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>

static const struct {
	const char *name;
	enum moat_key_type type;
	size_t rsa_bits; /* 0: not RSA */
} key_types[] = {
	{"ec-p256", MOAT_KEY_EC_P256, 0},      {"rsa-2048", MOAT_KEY_RSA_2048, 2048},
	{"rsa-3072", MOAT_KEY_RSA_3072, 3072}, {"rsa-4096", MOAT_KEY_RSA_4096, 4096},
	{"ed25519", MOAT_KEY_ED25519, 0},
};
#define KEY_TYPE_COUNT (sizeof(key_types) / sizeof(key_types[0]))

const char *moat_key_type_name(enum moat_key_type type)
{
	for (size_t i = 0; i < KEY_TYPE_COUNT; i++) {
		if (key_types[i].type == type) {
			return key_types[i].name;
		}
	}
	return "unknown";
}

bool moat_key_type_lookup(const char *text, enum moat_key_type *out)
{
	for (size_t i = 0; text && i < KEY_TYPE_COUNT; i++) {
		if (strcmp(text, key_types[i].name) == 0) {
			*out = key_types[i].type;
			return true;
		}
	}
	return false;
}

static EC_GROUP *shared_group;
static CRYPTO_ONCE shared_group_once = CRYPTO_ONCE_STATIC_INIT;

static void shared_group_init(void)
{
	shared_group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
}

const EC_GROUP *moat_key_p256_group(void)
{
	if (!CRYPTO_THREAD_run_once(&shared_group_once, shared_group_init)) {
		return NULL;
	}
	return shared_group;
}

bool moat_key_is_p256(EVP_PKEY *key)
{
	char group[32];
	size_t len = 0;
	return EVP_PKEY_is_a(key, "EC") &&
	       EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
					      &len) == 1 &&
	       strcmp(group, "prime256v1") == 0;
}

static EVP_PKEY *p256_generate(void)
{
	const EC_GROUP *group = moat_key_p256_group();
	EC_KEY *ec = EC_KEY_new();
	EVP_PKEY *key = EVP_PKEY_new();
	if (!group || !ec || !key || !EC_KEY_set_group(ec, group) || !EC_KEY_generate_key(ec) ||
	    !EVP_PKEY_assign_EC_KEY(key, ec)) {
		EC_KEY_free(ec);
		EVP_PKEY_free(key);
		return NULL;
	}
	return key; /* owns ec */
}

int moat_key_generate(enum moat_key_type type, EVP_PKEY **out_key, struct moat_err *err)
{
	EVP_PKEY *key = NULL;
	*out_key = NULL;
	if (type == MOAT_KEY_EC_P256) {
		key = p256_generate();
	} else if (type == MOAT_KEY_ED25519) {
		key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	} else {
		size_t bits = 0;
		for (size_t i = 0; i < KEY_TYPE_COUNT; i++) {
			if (key_types[i].type == type) {
				bits = key_types[i].rsa_bits;
			}
		}
		if (bits == 0) {
			return moat_err_set(err, MOAT_EINVAL, "unknown key type %d", (int)type);
		}
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits);
	}
	if (!key) {
		return moat_err_ssl(err, MOAT_ECRYPTO, "generating a %s key",
				    moat_key_type_name(type));
	}
	*out_key = key;
	return 0;
}
