/* signer.c: the CA that signs a deployment's certificates and CRLs.
 *
 * A two-tier deployment has an offline root (pki/ca.crt, pki/ca.key encrypted with the
 * passphrase) and an online issuing CA (pki/issuer.crt, pki/issuer.key unencrypted, 0600)
 * that signs identities, the server certificate and the CRL without the passphrase. A
 * single-tier deployment (made before the issuing CA existed, or with `moat init
 * --single-tier`) signs with the root.
 *
 * The issuing CA's key may instead be in a PKCS#11 token: moat.conf's [pki]
 * issuer_pkcs11_uri names it (module: [pki] pkcs11_module or the URI's module-path; PIN:
 * [pki] issuer_pin_file, else $MOAT_PKCS11_PIN). Then there is no pki/issuer.key, and one
 * that appears anyway is refused rather than silently preferred or ignored. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "deploy_internal.h"
#include "moat/fsutil.h"
#include "moat/pkcs11.h"

const char *deploy_issuer_pkcs11_uri(const struct moat_deploy *d)
{
	return moat_config_get(moat_deploy_config(d), "pki", "issuer_pkcs11_uri");
}

int deploy_issuer_token_key(const struct moat_deploy *d, EVP_PKEY **out, struct moat_err *err)
{
	const struct moat_config *cfg = moat_deploy_config(d);
	return deploy_token_key(moat_config_get(cfg, "pki", "issuer_pkcs11_uri"),
				moat_config_get(cfg, "pki", "pkcs11_module"),
				moat_config_get(cfg, "pki", "issuer_pin_file"), out, err);
}

int deploy_token_key(const char *uri, const char *module, const char *pin_file, EVP_PKEY **out,
		     struct moat_err *err)
{
	char pin[MOAT_PKCS11_PIN_MAX + 1];
	struct moat_pkcs11_uri parsed;
	*out = NULL;
	int rc = moat_pkcs11_uri_parse(uri, &parsed, err);
	if (rc != 0) {
		return rc;
	}
	bool have_pin = pin_file || getenv(MOAT_PKCS11_PIN_ENV);
	if (have_pin && (rc = moat_pkcs11_pin_read(pin_file, pin, sizeof(pin), err)) != 0) {
		return rc;
	}
	struct moat_pkcs11_key_req req = {
		.uri = uri,
		/* a URI that names its module keeps it */
		.module = parsed.has_module_path ? NULL : module,
		.pin = have_pin ? pin : NULL,
	};
	rc = moat_pkcs11_key_load(&req, out, err);
	OPENSSL_cleanse(pin, sizeof(pin));
	if (rc == 0 && (rc = deploy_ca_key_check(*out, err)) != 0) {
		EVP_PKEY_free(*out);
		*out = NULL;
	}
	return rc;
}

int deploy_ca_key_check(EVP_PKEY *key, struct moat_err *err)
{
	if (moat_key_is_p256(key) ||
	    (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA && EVP_PKEY_get_bits(key) >= 2048)) {
		return 0;
	}
	return moat_err_set(err, MOAT_EINVAL,
			    "the issuing CA's key in the token is %s of %d bits: P-256 or RSA of "
			    "2048 bits or more",
			    EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "?",
			    EVP_PKEY_get_bits(key));
}

/* The issuing CA with its key in a token: the certificate from cert_path, the key that
 * moat.conf names, which must be the certificate's. key_path must not exist. */
static int issuer_load_token(struct moat_deploy *d, const char *cert_path, const char *key_path,
			     struct moat_ca **out, struct moat_err *err)
{
	struct moat_ca *ca = NULL;
	*out = NULL;
	if (moat_fs_exists(key_path)) {
		return moat_err_set(err, MOAT_ESTATE,
				    "%s exists, but moat.conf's [pki] issuer_pkcs11_uri puts the "
				    "issuing CA's key in a token: remove one of them",
				    key_path);
	}
	int rc = moat_pki_issuer_load(cert_path, NULL, &ca, err);
	if (rc == 0) {
		rc = deploy_issuer_token_key(d, &ca->key, err);
	}
	if (rc == 0 && !X509_check_private_key(ca->cert, ca->key)) {
		ERR_clear_error();
		rc = moat_err_set(err, MOAT_EVERIFY,
				  "the key [pki] issuer_pkcs11_uri names is not %s's: wrong object "
				  "or token",
				  cert_path);
	}
	if (rc != 0) {
		moat_pki_ca_free(ca);
		return rc;
	}
	*out = ca;
	return 0;
}

bool moat_deploy_has_issuer(const struct moat_deploy *d)
{
	return d->has_issuer;
}

int moat_deploy_signer(struct moat_deploy *d, const struct moat_ca **out, struct moat_err *err)
{
	int rc;
	*out = NULL;
	if (!d->has_issuer) {
		if (!d->ca || !d->ca->key) {
			return moat_err_set(err, MOAT_EINVAL,
					    "pki/ca.key: signing in a deployment without an issuing "
					    "CA needs the CA passphrase");
		}
		*out = d->ca;
		return 0;
	}
	if (!d->issuer) {
		char cert[PATH_MAX];
		char key[PATH_MAX];
		if ((rc = moat_deploy_path(d, cert, sizeof(cert), MOAT_ISSUER_CERT_FILE, err)) !=
			    0 ||
		    (rc = moat_deploy_path(d, key, sizeof(key), MOAT_ISSUER_KEY_FILE, err)) != 0) {
			return rc;
		}
		if (deploy_issuer_pkcs11_uri(d)) {
			rc = issuer_load_token(d, cert, key, &d->issuer, err);
		} else {
			rc = moat_pki_issuer_load(cert, key, &d->issuer, err);
		}
		if (rc != 0) {
			return rc;
		}
	}
	*out = d->issuer;
	return 0;
}

int deploy_signer_chain(struct moat_deploy *d, const char **out, size_t *out_len,
			struct moat_err *err)
{
	*out = NULL;
	*out_len = 0;
	if (!d->has_issuer) {
		return 0;
	}
	if (!d->chain_pem) {
		char p[PATH_MAX];
		int rc = moat_deploy_path(d, p, sizeof(p), MOAT_ISSUER_CERT_FILE, err);
		if (rc == 0) {
			rc = moat_fs_read_all(p, MOAT_FILE_MAX_BYTES, &d->chain_pem, &d->chain_len,
					      err);
		}
		if (rc != 0) {
			return rc;
		}
	}
	*out = d->chain_pem;
	*out_len = d->chain_len;
	return 0;
}

/* Writes "<dir>/<rel>" atomically. */
static int put(const char *dir, const char *rel, const char *data, size_t len, mode_t mode,
	       struct moat_err *err)
{
	char p[PATH_MAX];
	int rc = moat_path_join(p, sizeof(p), err, "%s/%s", dir, rel);
	if (rc == 0) {
		rc = moat_fs_write_atomic(p, data, len, mode, err);
	}
	return rc;
}

/* The certificate as PEM in a new buffer; caller frees. */
static int pem_of_cert(X509 *cert, char **out, size_t *out_len, struct moat_err *err)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long n = 0;
	*out = NULL;
	if (!bio || PEM_write_bio_X509(bio, cert) != 1 || (n = BIO_get_mem_data(bio, &data)) <= 0) {
		BIO_free(bio);
		return moat_err_ssl(err, MOAT_ECRYPTO, "encoding the issuing CA certificate");
	}
	*out = malloc((size_t)n + 1);
	if (*out) {
		memcpy(*out, data, (size_t)n);
		(*out)[n] = '\0';
		*out_len = (size_t)n;
	}
	BIO_free(bio);
	return *out ? 0 : moat_err_set(err, MOAT_ENOMEM, "out of memory");
}

/* a then b in a new buffer; caller frees. */
static char *concat(const char *a, size_t a_len, const char *b, size_t b_len, size_t *out_len)
{
	char *buf = malloc(a_len + b_len + 1);
	if (!buf) {
		return NULL;
	}
	memcpy(buf, a, a_len);
	if (b_len) {
		memcpy(buf + a_len, b, b_len);
	}
	buf[a_len + b_len] = '\0';
	*out_len = a_len + b_len;
	return buf;
}

int deploy_issuer_write(const char *dir, const struct moat_ca *issuer, const char *root_pem,
			size_t root_len, const char *retired_pem, size_t retired_len,
			struct moat_err *err)
{
	char *cert = NULL;
	char *key = NULL;
	char *chain = NULL;
	char *issuers = NULL;
	size_t cert_len = 0;
	size_t key_len = 0;
	size_t chain_len = 0;
	size_t issuers_len = 0;
	/* A key in a token stays there: only the certificate is written. */
	bool in_token = moat_pkcs11_key_in_token(issuer->key);
	int rc = in_token ? pem_of_cert(issuer->cert, &cert, &cert_len, err)
			  : moat_pki_issuer_export(issuer, &cert, &cert_len, &key, &key_len, err);
	if (rc != 0) {
		return rc;
	}
	chain = concat(cert, cert_len, root_pem, root_len, &chain_len);
	issuers = concat(cert, cert_len, retired_pem, retired_len, &issuers_len);
	if (!chain || !issuers) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	/* issuers.pem first: while the rest is written, CRLs of the old and the new issuing CA
	 * both verify */
	if ((rc = put(dir, MOAT_ISSUERS_FILE, issuers, issuers_len, 0644, err)) != 0 ||
	    (!in_token && (rc = put(dir, MOAT_ISSUER_KEY_FILE, key, key_len, 0600, err)) != 0) ||
	    (rc = put(dir, MOAT_ISSUER_CERT_FILE, cert, cert_len, 0644, err)) != 0 ||
	    (rc = put(dir, MOAT_CHAIN_FILE, chain, chain_len, 0644, err)) != 0) {
		goto out;
	}
out:
	if (key) {
		OPENSSL_cleanse(key, key_len);
		free(key);
	}
	free(cert);
	free(chain);
	free(issuers);
	return rc;
}
