/* fw_keys.c: firmware signing keys and the trust set a device holds: which of keys.h's
 * types firmware allows, the one signature scheme per type, key ids (SHA-256 of the
 * SubjectPublicKeyInfo), and the trust file {"threshold": N, "keys": [PEM, ...]}. Pure: keys
 * come in as OpenSSL objects or text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "fw_internal.h"
#include "moat/keys.h"
#include "moat/manifest.h"

#define RSA_MIN_BITS 3072
#define RSA_MAX_BITS 4096
#define PSS_SALT_BYTES 32
#define PEM_PUBKEY_MAX_BYTES 2048 /* RSA-4096 SPKI in PEM is about 800 bytes */

int moat_fw_key_type_parse(const char *text, enum moat_key_type *out, struct moat_err *err)
{
	enum moat_key_type type;
	if (moat_key_type_lookup(text, &type) &&
	    (type == MOAT_KEY_EC_P256 || type == MOAT_KEY_ED25519 || type == MOAT_KEY_RSA_3072)) {
		*out = type;
		return 0;
	}
	return moat_err_set(err, MOAT_EINVAL,
			    "unknown firmware key type '%s' (ec-p256, ed25519 or rsa-3072)",
			    text ? text : "");
}

int moat_fw_key_check(EVP_PKEY *key, enum moat_key_type *out_type, struct moat_err *err)
{
	if (!key) {
		return moat_err_set(err, MOAT_EINVAL, "no key");
	}
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_EC: {
		if (!moat_key_is_p256(key)) {
			char group[64] = "";
			size_t glen = 0;
			if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
							   sizeof(group), &glen) != 1) {
				group[0] = '\0';
			}
			ERR_clear_error();
			return moat_err_set(err, MOAT_EINVAL,
					    "EC key on curve '%s': only P-256 is allowed", group);
		}
		*out_type = MOAT_KEY_EC_P256;
		return 0;
	}
	case EVP_PKEY_ED25519:
		*out_type = MOAT_KEY_ED25519;
		return 0;
	case EVP_PKEY_RSA: {
		int bits = EVP_PKEY_get_bits(key);
		if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
			return moat_err_set(err, MOAT_EINVAL,
					    "RSA key of %d bits: %d..%d are allowed", bits,
					    RSA_MIN_BITS, RSA_MAX_BITS);
		}
		/* the one RSA scheme: every allowed size is classed as rsa-3072 */
		*out_type = MOAT_KEY_RSA_3072;
		return 0;
	}
	default:
		return moat_err_set(err, MOAT_EINVAL,
				    "key type '%s' is not allowed for firmware (ec-p256, ed25519, "
				    "rsa-3072)",
				    EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key)
								 : "?");
	}
}

int moat_fw_keyid(EVP_PKEY *key, char out[MOAT_FW_KEYID_HEX_LEN + 1], struct moat_err *err)
{
	unsigned char *der = NULL;
	out[0] = '\0';
	int len = i2d_PUBKEY(key, &der);
	if (len <= 0) {
		return moat_err_ssl(err, MOAT_ECRYPTO, "encoding a public key");
	}
	unsigned char md[MOAT_SHA256_BYTES];
	unsigned int mdlen = 0;
	int ok = EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL);
	OPENSSL_free(der);
	if (ok != 1 || mdlen != MOAT_SHA256_BYTES) {
		return moat_err_ssl(err, MOAT_ECRYPTO, "hashing a public key");
	}
	moat_hex_encode(md, sizeof(md), out);
	return 0;
}

/* The context of one sign or verify operation: digest and padding per key type. */
static int setup_ctx(EVP_MD_CTX *ctx, EVP_PKEY *key, bool sign)
{
	enum moat_key_type type;
	if (moat_fw_key_check(key, &type, NULL) != 0) {
		return -1;
	}
	const EVP_MD *md = type == MOAT_KEY_ED25519 ? NULL : EVP_sha256();
	EVP_PKEY_CTX *pctx = NULL;
	int ok = sign ? EVP_DigestSignInit(ctx, &pctx, md, NULL, key)
		      : EVP_DigestVerifyInit(ctx, &pctx, md, NULL, key);
	if (ok != 1) {
		return -1;
	}
	if (type == MOAT_KEY_RSA_3072) {
		if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1 ||
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, PSS_SALT_BYTES) != 1) {
			return -1;
		}
	}
	return 0;
}

int fw_sig_sign(EVP_PKEY *key, const unsigned char *msg, size_t len, unsigned char *sig,
		size_t size, size_t *out_len, struct moat_err *err)
{
	int rc = MOAT_ECRYPTO;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t need = 0;
	if (!ctx) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	if (setup_ctx(ctx, key, true) != 0 || EVP_DigestSign(ctx, NULL, &need, msg, len) != 1) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "preparing a firmware signature");
		goto out;
	}
	if (need > size) {
		rc = moat_err_set(err, MOAT_EINVAL, "signature of %zu bytes exceeds %zu", need,
				  size);
		goto out;
	}
	size_t siglen = size;
	if (EVP_DigestSign(ctx, sig, &siglen, msg, len) != 1) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "signing");
		goto out;
	}
	*out_len = siglen;
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

bool fw_sig_verify(EVP_PKEY *key, const unsigned char *msg, size_t len, const unsigned char *sig,
		   size_t sig_len)
{
	bool ok = false;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx && setup_ctx(ctx, key, false) == 0) {
		ok = EVP_DigestVerify(ctx, sig, sig_len, msg, len) == 1;
	}
	EVP_MD_CTX_free(ctx);
	/* A failed verification leaves reasons on the queue; they are not errors of ours. */
	ERR_clear_error();
	return ok;
}

/* ---- the trust set ---- */

void moat_fw_trust_free(struct moat_fw_trust *trust)
{
	if (!trust) {
		return;
	}
	for (size_t i = 0; i < trust->count && i < MOAT_FW_TRUST_MAX_KEYS; i++) {
		EVP_PKEY_free(trust->keys[i].pkey);
	}
	memset(trust, 0, sizeof(*trust));
}

/* A public-only copy of key, so a trust set never holds a private key. */
static int public_copy(EVP_PKEY *key, EVP_PKEY **out, struct moat_err *err)
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(key, &der);
	if (len <= 0) {
		return moat_err_ssl(err, MOAT_ECRYPTO, "encoding a public key");
	}
	const unsigned char *p = der;
	*out = d2i_PUBKEY(NULL, &p, len);
	OPENSSL_free(der);
	if (!*out) {
		return moat_err_ssl(err, MOAT_ECRYPTO, "decoding a public key");
	}
	return 0;
}

static ssize_t trust_find(const struct moat_fw_trust *trust, const char *keyid)
{
	for (size_t i = 0; i < trust->count; i++) {
		if (strcmp(trust->keys[i].keyid, keyid) == 0) {
			return (ssize_t)i;
		}
	}
	return -1;
}

int moat_fw_trust_add(struct moat_fw_trust *trust, EVP_PKEY *key, struct moat_err *err)
{
	enum moat_key_type type;
	char keyid[MOAT_FW_KEYID_HEX_LEN + 1];
	int rc = moat_fw_key_check(key, &type, err);
	if (rc != 0) {
		return rc;
	}
	rc = moat_fw_keyid(key, keyid, err);
	if (rc != 0) {
		return rc;
	}
	if (trust_find(trust, keyid) >= 0) {
		return moat_err_set(err, MOAT_EEXIST, "key %s is already trusted", keyid);
	}
	if (trust->count >= MOAT_FW_TRUST_MAX_KEYS) {
		return moat_err_set(err, MOAT_EINVAL, "the trust list holds at most %d keys",
				    MOAT_FW_TRUST_MAX_KEYS);
	}
	EVP_PKEY *pub = NULL;
	rc = public_copy(key, &pub, err);
	if (rc != 0) {
		return rc;
	}
	struct moat_fw_trusted_key *k = &trust->keys[trust->count++];
	memcpy(k->keyid, keyid, sizeof(k->keyid));
	k->pkey = pub;
	if (trust->threshold < 1) {
		trust->threshold = 1;
	}
	return 0;
}

int moat_fw_trust_remove(struct moat_fw_trust *trust, const char *keyid, struct moat_err *err)
{
	ssize_t i = keyid ? trust_find(trust, keyid) : -1;
	if (i < 0) {
		return moat_err_set(err, MOAT_ENOENT, "key %.64s is not trusted",
				    keyid ? keyid : "");
	}
	EVP_PKEY_free(trust->keys[i].pkey);
	memmove(&trust->keys[i], &trust->keys[i + 1],
		(trust->count - (size_t)i - 1) * sizeof(trust->keys[0]));
	trust->count--;
	memset(&trust->keys[trust->count], 0, sizeof(trust->keys[0]));
	if ((size_t)trust->threshold > trust->count) {
		trust->threshold = (int)trust->count;
	}
	if (trust->threshold < 1) {
		trust->threshold = 1;
	}
	return 0;
}

/* One PEM public key, nothing else in the string but surrounding whitespace. */
static int parse_pem_key(const char *pem, size_t len, size_t index, EVP_PKEY **out,
			 struct moat_err *err)
{
	int rc = MOAT_EINVAL;
	*out = NULL;
	BIO *bio = NULL;
	EVP_PKEY *key = NULL;
	/* OpenSSL's PEM reader skips text before the BEGIN line; the trust file may not hold any.
	 */
	static const char begin[] = "-----BEGIN PUBLIC KEY-----";
	if (len < sizeof(begin) - 1 || memcmp(pem, begin, sizeof(begin) - 1) != 0) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "trust file: keys[%zu] does not start with '%s'", index, begin);
		goto out;
	}
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (!key) {
		rc = moat_err_ssl(err, MOAT_EINVAL, "trust file: keys[%zu] is not a PEM public key",
				  index);
		goto out;
	}
	char rest[64];
	int n;
	while ((n = BIO_read(bio, rest, (int)sizeof(rest))) > 0) {
		for (int j = 0; j < n; j++) {
			if (rest[j] != '\n' && rest[j] != '\r' && rest[j] != ' ' &&
			    rest[j] != '\t') {
				rc = moat_err_set(err, MOAT_EINVAL,
						  "trust file: keys[%zu] has data after the key",
						  index);
				goto out;
			}
		}
	}
	*out = key;
	key = NULL;
	rc = 0;
out:
	EVP_PKEY_free(key);
	BIO_free(bio);
	ERR_clear_error();
	return rc;
}

int moat_fw_trust_parse(const void *json, size_t len, struct moat_fw_trust *out,
			struct moat_err *err)
{
	static const char *const names[] = {"threshold", "keys"};
	const cJSON *items[2];
	cJSON *root = NULL;
	memset(out, 0, sizeof(*out));
	int rc = fw_json_parse("trust file", json, len, MOAT_FW_TRUST_MAX_BYTES, true, &root, err);
	if (rc != 0) {
		goto out;
	}
	rc = moat_json_fields("trust file", root, names, 2, items, err);
	if (rc != 0) {
		goto out;
	}
	if (!cJSON_IsArray(items[1])) {
		rc = moat_err_set(err, MOAT_EINVAL, "trust file: 'keys' is not an array");
		goto out;
	}
	int n = cJSON_GetArraySize(items[1]);
	if (n < 1 || n > MOAT_FW_TRUST_MAX_KEYS) {
		rc = moat_err_set(err, MOAT_EINVAL, "trust file: 'keys' holds %d keys (1..%d)", n,
				  MOAT_FW_TRUST_MAX_KEYS);
		goto out;
	}
	size_t index = 0;
	for (const cJSON *c = items[1]->child; c; c = c->next, index++) {
		char field[32];
		snprintf(field, sizeof(field), "keys[%zu]", index);
		const char *pem;
		size_t pem_len;
		rc = moat_json_str("trust file", field, c, PEM_PUBKEY_MAX_BYTES, &pem, &pem_len,
				   err);
		if (rc != 0) {
			goto out;
		}
		EVP_PKEY *key = NULL;
		rc = parse_pem_key(pem, pem_len, index, &key, err);
		if (rc != 0) {
			goto out;
		}
		enum moat_key_type type;
		char keyid[MOAT_FW_KEYID_HEX_LEN + 1];
		rc = moat_fw_key_check(key, &type, err);
		if (rc == 0) {
			rc = moat_fw_keyid(key, keyid, err);
		}
		if (rc == 0 && trust_find(out, keyid) >= 0) {
			rc = moat_err_set(err, MOAT_EINVAL,
					  "trust file: keys[%zu] is a duplicate of "
					  "key %s",
					  index, keyid);
		}
		if (rc != 0) {
			EVP_PKEY_free(key);
			moat_err_prefix(err, "trust file: keys[%zu]", index);
			goto out;
		}
		memcpy(out->keys[out->count].keyid, keyid, sizeof(keyid));
		out->keys[out->count].pkey = key;
		out->count++;
	}
	int64_t threshold;
	rc = moat_json_int("trust file", "threshold", items[0], 1, (int64_t)out->count, &threshold,
			   err);
	if (rc != 0) {
		goto out;
	}
	out->threshold = (int)threshold;
	rc = 0;
out:
	cJSON_Delete(root);
	if (rc != 0) {
		moat_fw_trust_free(out);
	}
	return rc;
}

int moat_fw_trust_serialize(const struct moat_fw_trust *trust, char **out_json, size_t *out_len,
			    struct moat_err *err)
{
	int rc = MOAT_ENOMEM;
	cJSON *root = NULL;
	BIO *bio = NULL;
	char *text = NULL;
	*out_json = NULL;
	if (trust->count < 1 || trust->count > MOAT_FW_TRUST_MAX_KEYS || trust->threshold < 1 ||
	    (size_t)trust->threshold > trust->count) {
		return moat_err_set(err, MOAT_EINVAL,
				    "trust list of %zu keys with threshold %d is not valid "
				    "(1..%d keys, threshold 1..keys)",
				    trust->count, trust->threshold, MOAT_FW_TRUST_MAX_KEYS);
	}
	root = cJSON_CreateObject();
	cJSON *keys = NULL;
	if (!root || !cJSON_AddNumberToObject(root, "threshold", trust->threshold) ||
	    !(keys = cJSON_AddArrayToObject(root, "keys"))) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < trust->count; i++) {
		bio = BIO_new(BIO_s_mem());
		if (!bio || PEM_write_bio_PUBKEY(bio, trust->keys[i].pkey) != 1 ||
		    BIO_write(bio, "", 1) != 1) {
			rc = moat_err_ssl(err, MOAT_ECRYPTO, "encoding key %s",
					  trust->keys[i].keyid);
			goto out;
		}
		char *pem = NULL;
		BIO_get_mem_data(bio, &pem);
		cJSON *s = cJSON_CreateString(pem);
		if (!s) {
			rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
			goto out;
		}
		cJSON_AddItemToArray(keys, s);
		BIO_free(bio);
		bio = NULL;
	}
	text = cJSON_Print(root);
	size_t len = text ? strlen(text) : 0;
	char *buf = text ? malloc(len + 2) : NULL;
	if (!buf) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	/* A trailing newline for people who cat the file; the parser allows whitespace. */
	memcpy(buf, text, len);
	buf[len] = '\n';
	buf[len + 1] = '\0';
	*out_json = buf;
	*out_len = len + 1;
	rc = 0;
out:
	cJSON_free(text);
	BIO_free(bio);
	cJSON_Delete(root);
	return rc;
}
