/* keystore.c: private keys at rest, the one copy for the CA key and firmware signing keys.
 *
 * A key is stored as PKCS#8 EncryptedPrivateKeyInfo in PEM ("ENCRYPTED PRIVATE KEY"):
 * PBES2 with AES-256-CBC under a key derived with scrypt (N=2^14, r=8, p=1: 16 MiB, within
 * OpenSSL's default scrypt memory limit, so `openssl pkey` opens these files too). Files
 * written before this copy existed have the same form and read the same way. */
#include <limits.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "pki_internal.h"

#define SCRYPT_N 16384
#define SCRYPT_R 8
#define SCRYPT_P 1

static const char encrypted_begin[] = "-----BEGIN ENCRYPTED PRIVATE KEY-----";

int moat_pki_key_encrypt(EVP_PKEY *key, const char *passphrase, char **out_pem, size_t *out_len,
			 struct moat_err *err)
{
	int rc = MOAT_ECRYPTO;
	X509_ALGOR *pbe = NULL;
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	X509_SIG *enc = NULL;
	BIO *bio = NULL;
	*out_pem = NULL;
	if (!key || !passphrase) {
		return moat_err_set(err, MOAT_EINVAL, "no key or no passphrase to encrypt it");
	}
	pbe = PKCS5_pbe2_set_scrypt(EVP_aes_256_cbc(), NULL, 0, NULL, SCRYPT_N, SCRYPT_R, SCRYPT_P);
	p8 = EVP_PKEY2PKCS8(key);
	if (!pbe || !p8) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "preparing key encryption");
		goto out;
	}
	enc = PKCS8_set0_pbe(passphrase, (int)strlen(passphrase), p8, pbe);
	if (!enc) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "encrypting the key");
		goto out;
	}
	pbe = NULL; /* owned by enc now */
	bio = BIO_new(BIO_s_mem());
	if (!bio || PEM_write_bio_PKCS8(bio, enc) != 1) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "encoding the encrypted key");
		goto out;
	}
	rc = pki_bio_take(bio, out_pem, out_len, err);
out:
	BIO_free(bio);
	X509_SIG_free(enc);
	X509_ALGOR_free(pbe);
	PKCS8_PRIV_KEY_INFO_free(p8);
	return rc;
}

int moat_pki_key_decrypt(const char *name, const char *pem, size_t len, const char *passphrase,
			 EVP_PKEY **out_key, struct moat_err *err)
{
	*out_key = NULL;
	/* an unencrypted key would open with any passphrase: refuse it outright */
	if (!memmem(pem, len, encrypted_begin, sizeof(encrypted_begin) - 1)) {
		return moat_err_set(err, MOAT_ECRYPTO,
				    "%s: not an encrypted PKCS#8 key; moat keeps private keys "
				    "encrypted at rest",
				    name);
	}
	BIO *bio = len <= (size_t)INT_MAX ? BIO_new_mem_buf(pem, (int)len) : NULL;
	/* With u set and no callback, OpenSSL takes u as the passphrase; it never prompts. */
	EVP_PKEY *key = bio && passphrase
				? PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)passphrase)
				: NULL;
	BIO_free(bio);
	ERR_clear_error();
	if (!key) {
		return moat_err_set(err, MOAT_ECRYPTO, "%s: wrong passphrase", name);
	}
	*out_key = key;
	return 0;
}
