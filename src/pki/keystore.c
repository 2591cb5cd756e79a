/* keystore.c: private keys at rest, the one copy for the CA key and firmware signing keys.
 *
 * A key is stored as PKCS#8 EncryptedPrivateKeyInfo in PEM ("ENCRYPTED PRIVATE KEY"):
 * PBES2 with AES-256-CBC under a key derived with scrypt (N=2^14, r=8, p=1: 16 MiB, within
 * OpenSSL's default scrypt memory limit, so `openssl pkey` opens these files too). Files
 * written before this copy existed have the same form and read the same way. */
#include <limits.h>
#include <stdbool.h>
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

/* Any PEM private key block that is not the encrypted kind. */
static bool plain_key_pem(const char *pem, size_t len)
{
	static const char *const plain[] = {"-----BEGIN PRIVATE KEY-----",
					    "-----BEGIN EC PRIVATE KEY-----",
					    "-----BEGIN RSA PRIVATE KEY-----"};
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		if (memmem(pem, len, plain[i], strlen(plain[i]))) {
			return true;
		}
	}
	return false;
}

int moat_pki_key_decrypt(const char *name, const char *pem, size_t len, const char *passphrase,
			 EVP_PKEY **out_key, struct moat_err *err)
{
	*out_key = NULL;
	bool encrypted = memmem(pem, len, encrypted_begin, sizeof(encrypted_begin) - 1) != NULL;
	/* an unencrypted key would open with any passphrase: refuse it outright */
	if (!encrypted && plain_key_pem(pem, len)) {
		return moat_err_set(err, MOAT_ECRYPTO,
				    "%s: not an encrypted PKCS#8 key; moat keeps private keys "
				    "encrypted at rest",
				    name);
	}
	/* Three steps, so each failure says what it is: the PEM and the EncryptedPrivateKeyInfo
	 * structure need no passphrase (a failure there is damage), the decryption does (its
	 * failure is a wrong passphrase: CBC padding that does not check out), and what it
	 * gives must be a private key (a damaged ciphertext usually decrypts to garbage). */
	BIO *bio = encrypted && len <= (size_t)INT_MAX ? BIO_new_mem_buf(pem, (int)len) : NULL;
	X509_SIG *sig = bio ? PEM_read_bio_PKCS8(bio, NULL, moat_pem_no_passphrase, NULL) : NULL;
	BIO_free(bio);
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	EVP_PKEY *key = NULL;
	int rc = 0;
	if (!sig) {
		rc = moat_err_set(err, MOAT_ECRYPTO,
				  "%s: not a valid encrypted key (truncated or corrupt)", name);
	} else if (!passphrase || !(p8 = PKCS8_decrypt(sig, passphrase, (int)strlen(passphrase)))) {
		rc = moat_err_set(err, MOAT_ECRYPTO, "%s: wrong passphrase", name);
	} else if (!(key = EVP_PKCS82PKEY(p8))) {
		rc = moat_err_set(err, MOAT_ECRYPTO,
				  "%s: not a valid encrypted key (truncated or corrupt)", name);
	}
	PKCS8_PRIV_KEY_INFO_free(p8);
	X509_SIG_free(sig);
	ERR_clear_error();
	*out_key = key;
	return rc;
}
