/* port_openssl.c: moat-device's crypto port on OpenSSL 3 (Linux). SHA-256 through an
 * EVP_MD_CTX whose pointer is kept in the caller's state (OpenSSL allocates it; the
 * no-malloc promise is the library's and the mbedTLS port's). Keys: the DER
 * SubjectPublicKeyInfo, or, with key_len 0, an EVP_PKEY * (moat's trust sets hold those).
 * Schemes as moat signs (src/core/fw_keys.c): ECDSA P-256 with SHA-256, Ed25519, RSA
 * 3072..4096 bits with PSS (SHA-256, MGF1 SHA-256, salt 32).
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "moat_device_port.h"

static EVP_MD_CTX **slot(void *state)
{
	return (EVP_MD_CTX **)state;
}

int mdev_port_sha256_start(void *state)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		*slot(state) = NULL;
		return -1;
	}
	*slot(state) = ctx;
	return 0;
}

int mdev_port_sha256_update(void *state, const void *data, size_t len)
{
	return *slot(state) != NULL && EVP_DigestUpdate(*slot(state), data, len) == 1 ? 0 : -1;
}

int mdev_port_sha256_finish(void *state, uint8_t out[32])
{
	unsigned int n = 0;
	int ok = *slot(state) != NULL && EVP_DigestFinal_ex(*slot(state), out, &n) == 1 && n == 32;
	mdev_port_sha256_abort(state);
	return ok ? 0 : -1;
}

void mdev_port_sha256_abort(void *state)
{
	EVP_MD_CTX_free(*slot(state));
	*slot(state) = NULL;
}

/* 0: ECDSA P-256, 1: Ed25519, 2: RSA-PSS; -1: not a firmware key. */
static int scheme(EVP_PKEY *key)
{
	char group[32];
	size_t glen = 0;
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof(group), &glen) ==
			    1 &&
		    strcmp(group, "prime256v1") == 0) {
			return 0;
		}
		return -1;
	case EVP_PKEY_ED25519:
		return 1;
	case EVP_PKEY_RSA:
		return EVP_PKEY_get_bits(key) >= 3072 && EVP_PKEY_get_bits(key) <= 4096 ? 2 : -1;
	default:
		return -1;
	}
}

bool mdev_port_verify(const void *key, size_t key_len, const uint8_t *msg, size_t msg_len,
		      const uint8_t *sig, size_t sig_len)
{
	EVP_PKEY *owned = NULL;
	EVP_PKEY *pkey = (EVP_PKEY *)key;
	EVP_PKEY_CTX *pctx = NULL;
	bool ok = false;
	if (key_len > 0) {
		const unsigned char *p = key;
		owned = d2i_PUBKEY(NULL, &p, (long)key_len);
		if (owned == NULL || p != (const unsigned char *)key + key_len) {
			goto out;
		}
		pkey = owned;
	}
	int s = pkey != NULL ? scheme(pkey) : -1;
	EVP_MD_CTX *ctx = s >= 0 ? EVP_MD_CTX_new() : NULL;
	if (ctx != NULL &&
	    EVP_DigestVerifyInit(ctx, &pctx, s == 1 ? NULL : EVP_sha256(), NULL, pkey) == 1 &&
	    (s != 2 || (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
			EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1 &&
			EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) == 1))) {
		ok = EVP_DigestVerify(ctx, sig, sig_len, msg, msg_len) == 1;
	}
	EVP_MD_CTX_free(ctx);
out:
	EVP_PKEY_free(owned);
	/* A failed verification leaves reasons on the queue; they are not errors of ours. */
	ERR_clear_error();
	return ok;
}

bool mdev_port_equal(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}
