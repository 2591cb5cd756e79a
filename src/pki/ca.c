/* ca.c: creating, exporting and loading the certificate authority. The CA key leaves
 * memory only as encrypted PKCS#8 (moat_pki_key_encrypt, keystore.c), and is read back only
 * from that form (moat_pki_key_decrypt), checked against the certificate. */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "moat/fsutil.h"
#include "pki_internal.h"

int moat_pki_ca_create(const char *name, enum moat_key_type type, int64_t now, int64_t days,
		       struct moat_ca **out_ca, struct moat_err *err)
{
	int rc = MOAT_ECRYPTO;
	struct moat_ca *ca = calloc(1, sizeof(*ca));
	X509_NAME *subject = NULL;
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	char cn[128];

	if (!ca) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	if ((rc = moat_key_generate(type, &ca->key, err)) != 0) {
		goto out;
	}
	if ((rc = moat_pki_random_serial(serial, hex, err)) != 0) {
		goto out;
	}
	snprintf(cn, sizeof(cn), "%s CA", name);
	rc = MOAT_ECRYPTO;
	subject = X509_NAME_new();
	if (!subject ||
	    !X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8, (const unsigned char *)name,
					-1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
					-1, 0)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "CA subject");
		goto out;
	}
	ca->cert = X509_new();
	if (!ca->cert || (rc = pki_cert_basics(ca->cert, serial, subject, subject, ca->key,
					       now - 60, now + days * 86400, err)) != 0) {
		if (!ca->cert) {
			rc = moat_err_ssl(err, MOAT_ECRYPTO, "CA certificate");
		}
		goto out;
	}
	static const struct pki_ext exts[] = {
		{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
		{NID_key_usage, "critical,keyCertSign,cRLSign"},
		{NID_subject_key_identifier, "hash"},
		{NID_authority_key_identifier, "keyid:always"},
	};
	if ((rc = pki_add_exts(ca->cert, ca->cert, exts, sizeof(exts) / sizeof(exts[0]), err)) !=
	    0) {
		goto out;
	}
	if (!X509_sign(ca->cert, ca->key, EVP_sha256())) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "signing the CA certificate");
		goto out;
	}
	*out_ca = ca;
	ca = NULL;
	rc = 0;
out:
	X509_NAME_free(subject);
	moat_pki_ca_free(ca);
	return rc;
}

int moat_pki_ca_export(const struct moat_ca *ca, const char *passphrase, char **out_cert_pem,
		       size_t *out_cert_len, char **out_key_pem, size_t *out_key_len,
		       struct moat_err *err)
{
	char *cert_pem = NULL;
	size_t cert_len = 0;

	if (!ca->key || !passphrase) {
		return moat_err_set(err, MOAT_EINVAL, "CA key not loaded");
	}
	int rc = pki_cert_pem(ca->cert, &cert_pem, &cert_len, err);
	if (rc == 0) {
		rc = moat_pki_key_encrypt(ca->key, passphrase, out_key_pem, out_key_len, err);
	}
	if (rc != 0) {
		free(cert_pem);
		return rc;
	}
	*out_cert_pem = cert_pem;
	*out_cert_len = cert_len;
	return 0;
}

int moat_pki_ca_load(const char *cert_path, const char *key_path, const char *passphrase,
		     struct moat_ca **out_ca, struct moat_err *err)
{
	int rc = MOAT_ECRYPTO;
	char *text = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	struct moat_ca *ca = calloc(1, sizeof(*ca));
	if (!ca) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	if ((rc = moat_fs_read_all(cert_path, 1024 * 1024, &text, &len, err)) != 0) {
		goto out;
	}
	bio = BIO_new_mem_buf(text, (int)len);
	if (!bio || !(ca->cert = PEM_read_bio_X509(bio, NULL, moat_pem_no_passphrase, NULL))) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "%s: not a PEM certificate", cert_path);
		goto out;
	}
	BIO_free(bio);
	bio = NULL;
	free(text);
	text = NULL;
	if (passphrase) {
		if ((rc = moat_fs_read_all(key_path, 1024 * 1024, &text, &len, err)) != 0) {
			goto out;
		}
		if ((rc = moat_pki_key_decrypt(key_path, text, len, passphrase, &ca->key, err)) !=
		    0) {
			goto out;
		}
		if (!X509_check_private_key(ca->cert, ca->key)) {
			rc = moat_err_ssl(err, MOAT_ECRYPTO, "%s: does not match %s", key_path,
					  cert_path);
			goto out;
		}
	}
	*out_ca = ca;
	ca = NULL;
	rc = 0;
out:
	if (text) {
		OPENSSL_cleanse(text, len);
		free(text);
	}
	BIO_free(bio);
	moat_pki_ca_free(ca);
	return rc;
}

void moat_pki_ca_free(struct moat_ca *ca)
{
	if (!ca) {
		return;
	}
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	free(ca);
}
