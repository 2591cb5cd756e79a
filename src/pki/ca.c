/* ca.c: creating, exporting and loading the certificate authority. The CA key leaves
 * memory only as encrypted PKCS#8 (moat_pki_key_encrypt, keystore.c), and is read back only
 * from that form (moat_pki_key_decrypt), checked against the certificate. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "moat/fsutil.h"
#include "moat/timeutil.h"
#include "pki_internal.h"

/* A CA certificate for key under signer (signer NULL: self-signed by key): subject
 * O=name, CN=cn; basicConstraints CA:TRUE with the given pathlen, keyCertSign|cRLSign. */
static int ca_cert_build(const struct moat_ca *signer, EVP_PKEY *key, const char *name,
			 const char *cn, const char *basic, int64_t not_before, int64_t not_after,
			 X509 **out, struct moat_err *err)
{
	int rc = MOAT_ECRYPTO;
	X509_NAME *subject = NULL;
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	X509 *cert = NULL;
	if ((rc = moat_pki_random_serial(serial, hex, err)) != 0) {
		return rc;
	}
	subject = X509_NAME_new();
	if (!subject ||
	    !X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8, (const unsigned char *)name,
					-1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
					-1, 0)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "CA subject");
		goto out;
	}
	X509_NAME *issuer_name = signer ? X509_get_subject_name(signer->cert) : subject;
	cert = X509_new();
	if (!cert) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "CA certificate");
		goto out;
	}
	if ((rc = pki_cert_basics(cert, serial, issuer_name, subject, key, not_before, not_after,
				  err)) != 0) {
		goto out;
	}
	const struct pki_ext exts[] = {
		{NID_basic_constraints, basic},
		{NID_key_usage, "critical,keyCertSign,cRLSign"},
		{NID_subject_key_identifier, "hash"},
		{NID_authority_key_identifier, "keyid:always"},
	};
	if ((rc = pki_add_exts(signer ? signer->cert : cert, cert, exts,
			       sizeof(exts) / sizeof(exts[0]), err)) != 0) {
		goto out;
	}
	if (!X509_sign(cert, signer ? signer->key : key, EVP_sha256())) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "signing the CA certificate");
		goto out;
	}
	*out = cert;
	cert = NULL;
	rc = 0;
out:
	X509_free(cert);
	X509_NAME_free(subject);
	return rc;
}

static int self_signed_create(const char *name, const char *basic, enum moat_key_type type,
			      int64_t now, int64_t days, struct moat_ca **out_ca,
			      struct moat_err *err)
{
	char cn[128];
	struct moat_ca *ca = calloc(1, sizeof(*ca));
	if (!ca) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	snprintf(cn, sizeof(cn), "%s CA", name);
	int rc = moat_key_generate(type, &ca->key, err);
	if (rc == 0) {
		rc = ca_cert_build(NULL, ca->key, name, cn, basic, now - 60, now + days * 86400,
				   &ca->cert, err);
	}
	if (rc != 0) {
		moat_pki_ca_free(ca);
		return rc;
	}
	*out_ca = ca;
	return 0;
}

int moat_pki_ca_create(const char *name, enum moat_key_type type, int64_t now, int64_t days,
		       struct moat_ca **out_ca, struct moat_err *err)
{
	return self_signed_create(name, "critical,CA:TRUE,pathlen:0", type, now, days, out_ca, err);
}

int moat_pki_root_create(const char *name, enum moat_key_type type, int64_t now, int64_t days,
			 struct moat_ca **out_ca, struct moat_err *err)
{
	return self_signed_create(name, "critical,CA:TRUE,pathlen:1", type, now, days, out_ca, err);
}

int64_t moat_pki_ca_not_after(const struct moat_ca *ca)
{
	return moat_asn1_time_to_unix(X509_get0_notAfter(ca->cert));
}

/* The O of cert's subject, "moat" when it has none. */
static void subject_org(X509 *cert, char *out, size_t size)
{
	snprintf(out, size, "moat");
	X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_organizationName, out,
				  (int)size);
}

int moat_pki_issuer_create(const struct moat_ca *root, unsigned generation, enum moat_key_type type,
			   int64_t now, int64_t not_after, struct moat_ca **out,
			   struct moat_err *err)
{
	EVP_PKEY *key = NULL;
	int rc = moat_key_generate(type, &key, err);
	if (rc == 0) {
		rc = moat_pki_issuer_certify(root, generation, key, now, not_after, out, err);
	}
	EVP_PKEY_free(key);
	return rc;
}

int moat_pki_issuer_certify(const struct moat_ca *root, unsigned generation, EVP_PKEY *key,
			    int64_t now, int64_t not_after, struct moat_ca **out,
			    struct moat_err *err)
{
	*out = NULL;
	if (!root->key) {
		return moat_err_set(err, MOAT_ESTATE, "CA key not unlocked");
	}
	int64_t root_end = moat_pki_ca_not_after(root);
	if (not_after > root_end) {
		char a[32];
		char b[32];
		moat_time_iso(not_after, a);
		moat_time_iso(root_end, b);
		return moat_err_set(err, MOAT_EINVAL,
				    "the issuing CA would end %s, after the root CA (%s)", a, b);
	}
	if (not_after <= now) {
		return moat_err_set(err, MOAT_EINVAL,
				    "the issuing CA's validity ends before it starts");
	}
	char org[256];
	char cn[300];
	subject_org(root->cert, org, sizeof(org));
	snprintf(cn, sizeof(cn), "%s Issuing CA %u", org, generation);
	struct moat_ca *ca = calloc(1, sizeof(*ca));
	if (!ca) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	if (!EVP_PKEY_up_ref(key)) {
		free(ca);
		return moat_err_set(err, MOAT_ECRYPTO, "taking a reference to the issuing CA key");
	}
	ca->key = key;
	/* pathlen:0: the issuing CA signs leaves only, never another CA */
	int rc = ca_cert_build(root, ca->key, org, cn, "critical,CA:TRUE,pathlen:0", now - 60,
			       not_after, &ca->cert, err);
	if (rc != 0) {
		moat_pki_ca_free(ca);
		return rc;
	}
	*out = ca;
	return 0;
}

int moat_pki_root_recertify(const struct moat_ca *root, struct moat_ca **out, struct moat_err *err)
{
	if (!root->key) {
		return moat_err_set(err, MOAT_ESTATE, "CA key not unlocked");
	}
	char org[256];
	char cn[256] = "";
	subject_org(root->cert, org, sizeof(org));
	X509_NAME_get_text_by_NID(X509_get_subject_name(root->cert), NID_commonName, cn,
				  (int)sizeof(cn));
	struct moat_ca *ca = calloc(1, sizeof(*ca));
	if (!ca) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	if (!EVP_PKEY_up_ref(root->key)) {
		free(ca);
		return moat_err_ssl(err, MOAT_ECRYPTO, "key reference");
	}
	ca->key = root->key;
	/* the same subject and key (so every certificate and CRL it signed still verifies)
	 * and the same validity; only the path length grows */
	int rc = ca_cert_build(NULL, ca->key, org, cn, "critical,CA:TRUE,pathlen:1",
			       moat_asn1_time_to_unix(X509_get0_notBefore(root->cert)),
			       moat_pki_ca_not_after(root), &ca->cert, err);
	if (rc == 0 && X509_NAME_cmp(X509_get_subject_name(ca->cert),
				     X509_get_subject_name(root->cert)) != 0) {
		rc = moat_err_set(
			err, MOAT_EINVAL,
			"the root CA's subject is not O=..., CN=...: cannot re-certify it");
	}
	if (rc != 0) {
		moat_pki_ca_free(ca);
		return rc;
	}
	*out = ca;
	return 0;
}

int moat_pki_ca_pathlen(const struct moat_ca *ca)
{
	return (int)X509_get_pathlen(ca->cert);
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

int moat_pki_ca_cert_pem(const struct moat_ca *ca, char **out_pem, size_t *out_len,
			 struct moat_err *err)
{
	return pki_cert_pem(ca->cert, out_pem, out_len, err);
}

int moat_pki_issuer_export(const struct moat_ca *ca, char **out_cert_pem, size_t *out_cert_len,
			   char **out_key_pem, size_t *out_key_len, struct moat_err *err)
{
	char *cert_pem = NULL;
	size_t cert_len = 0;
	if (!ca->key) {
		return moat_err_set(err, MOAT_EINVAL, "issuing CA key not loaded");
	}
	int rc = pki_cert_pem(ca->cert, &cert_pem, &cert_len, err);
	if (rc == 0) {
		rc = pki_key_pem(ca->key, out_key_pem, out_key_len, err);
	}
	if (rc != 0) {
		free(cert_pem);
		return rc;
	}
	*out_cert_pem = cert_pem;
	*out_cert_len = cert_len;
	return 0;
}

int moat_pki_issuer_load(const char *cert_path, const char *key_path, struct moat_ca **out_ca,
			 struct moat_err *err)
{
	struct moat_ca *ca = NULL;
	char *text = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	struct stat st;
	int rc = moat_pki_ca_load(cert_path, NULL, NULL, &ca, err);
	if (rc != 0 || !key_path) {
		goto out;
	}
	/* the key opens without a passphrase: only its owner may read it */
	if (stat(key_path, &st) != 0) {
		rc = moat_err_errno(err, MOAT_ENOENT, errno, "%s", key_path);
		goto out;
	}
	if (st.st_mode & 0077) {
		rc = moat_err_set(err, MOAT_EDENIED,
				  "%s: readable by others (mode %03o); chmod 600 it", key_path,
				  (unsigned)(st.st_mode & 0777));
		goto out;
	}
	if ((rc = moat_fs_read_all(key_path, 1024 * 1024, &text, &len, err)) != 0) {
		goto out;
	}
	bio = BIO_new_mem_buf(text, (int)len);
	ca->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, moat_pem_no_passphrase, NULL) : NULL;
	if (!ca->key) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "%s: not an unencrypted PEM private key",
				  key_path);
		goto out;
	}
	if (!X509_check_private_key(ca->cert, ca->key)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "%s: does not match %s", key_path, cert_path);
		goto out;
	}
	rc = 0;
out:
	if (text) {
		OPENSSL_cleanse(text, len);
		free(text);
	}
	BIO_free(bio);
	if (rc != 0) {
		moat_pki_ca_free(ca);
		ca = NULL;
	}
	*out_ca = ca;
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
