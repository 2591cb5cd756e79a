/* signer.c: the CA that signs a deployment's certificates and CRLs.
 *
 * A two-tier deployment has an offline root (pki/ca.crt, pki/ca.key encrypted with the
 * passphrase) and an online issuing CA (pki/issuer.crt, pki/issuer.key unencrypted, 0600)
 * that signs identities, the server certificate and the CRL without the passphrase. A
 * single-tier deployment (made before the issuing CA existed, or with `moat init
 * --single-tier`) signs with the root. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "deploy_internal.h"
#include "moat/fsutil.h"

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
		    (rc = moat_deploy_path(d, key, sizeof(key), MOAT_ISSUER_KEY_FILE, err)) != 0 ||
		    (rc = moat_pki_issuer_load(cert, key, &d->issuer, err)) != 0) {
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
	int rc = moat_pki_issuer_export(issuer, &cert, &cert_len, &key, &key_len, err);
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
	    (rc = put(dir, MOAT_ISSUER_KEY_FILE, key, key_len, 0600, err)) != 0 ||
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
