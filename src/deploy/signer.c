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
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "deploy_internal.h"
#include "moat/fsutil.h"
#include "moat/pkcs11.h"
#include "moat/timeutil.h"

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

/* ---- retired issuing CAs ---------------------------------------------------------------- */

#define RETIRED_DIR "pki/retired"
#define RETIRED_MAX 64

struct retired {
	struct moat_ca *ca[RETIRED_MAX];
	char *pem[RETIRED_MAX]; /* its certificate, as in the file */
	size_t pem_len[RETIRED_MAX];
	size_t count;
};

static void retired_free(struct retired *r)
{
	for (size_t i = 0; i < r->count; i++) {
		moat_pki_ca_free(r->ca[i]);
		free(r->pem[i]);
	}
	r->count = 0;
}

/* A retired issuing CA: its certificate crt, with its key when with_keys: the file key,
 * else the token key whose URI (module-path included) the file ref records. */
static int retired_ca_load(struct moat_deploy *d, const char *crt, const char *key, const char *ref,
			   bool with_keys, struct moat_ca **out, struct moat_err *err)
{
	*out = NULL;
	if (!with_keys || moat_fs_exists(key) || !moat_fs_exists(ref)) {
		return moat_pki_issuer_load(crt, with_keys ? key : NULL, out, err);
	}
	struct moat_ca *ca = NULL;
	char *uri = NULL;
	size_t len = 0;
	int rc = moat_pki_issuer_load(crt, NULL, &ca, err);
	if (rc == 0 &&
	    (rc = moat_fs_read_all(ref, MOAT_PKCS11_URI_MAX + 2, &uri, &len, err)) == 0) {
		while (len > 0 && (uri[len - 1] == '\n' || uri[len - 1] == '\r')) {
			uri[--len] = '\0';
		}
		const struct moat_config *cfg = moat_deploy_config(d);
		rc = deploy_token_key(uri, moat_config_get(cfg, "pki", "pkcs11_module"),
				      moat_config_get(cfg, "pki", "issuer_pin_file"), &ca->key,
				      err);
		if (rc != 0) {
			moat_err_prefix(err, "%s", ref);
		} else if (!X509_check_private_key(ca->cert, ca->key)) {
			ERR_clear_error();
			rc = moat_err_set(err, MOAT_EVERIFY,
					  "%s: the key it names is not %s's: wrong object or token",
					  ref, crt);
		}
	}
	free(uri);
	if (rc != 0) {
		moat_pki_ca_free(ca);
		return rc;
	}
	*out = ca;
	return 0;
}

/* The retired issuing CAs of pki/retired/ (issuer-<generation>.crt and .key or .pkcs11), with their
 * keys when with_keys; those that have expired are removed (no certificate outlives its
 * issuer, so nothing they signed is in use any more). */
static int retired_load(struct moat_deploy *d, bool with_keys, int64_t now, struct retired *out,
			struct moat_err *err)
{
	char dir[PATH_MAX];
	int rc = moat_deploy_path(d, dir, sizeof(dir), RETIRED_DIR, err);
	out->count = 0;
	if (rc != 0) {
		return rc;
	}
	DIR *dh = opendir(dir);
	if (!dh) {
		return errno == ENOENT ? 0 : moat_err_errno(err, MOAT_EIO, errno, "%s", dir);
	}
	struct dirent *e;
	while ((e = readdir(dh)) != NULL) {
		size_t n = strlen(e->d_name);
		if (strncmp(e->d_name, "issuer-", 7) != 0 || n < 5 ||
		    strcmp(e->d_name + n - 4, ".crt") != 0) {
			continue;
		}
		char crt[PATH_MAX];
		char key[PATH_MAX];
		if ((rc = moat_path_join(crt, sizeof(crt), err, "%s/%s", dir, e->d_name)) != 0 ||
		    (rc = moat_path_join(key, sizeof(key), err, "%s/%.*s.key", dir, (int)(n - 4),
					 e->d_name)) != 0) {
			break;
		}
		char ref[PATH_MAX];
		if ((rc = moat_path_join(ref, sizeof(ref), err, "%s/%.*s.pkcs11", dir, (int)(n - 4),
					 e->d_name)) != 0) {
			break;
		}
		struct moat_ca *ca = NULL;
		if ((rc = retired_ca_load(d, crt, key, ref, with_keys, &ca, err)) != 0) {
			break;
		}
		if (moat_pki_ca_not_after(ca) <= now) {
			moat_pki_ca_free(ca);
			if ((unlink(key) != 0 && errno != ENOENT) ||
			    (unlink(ref) != 0 && errno != ENOENT)) {
				rc = moat_err_errno(err, MOAT_EIO, errno, "%s", key);
				break;
			}
			if (unlink(crt) != 0) {
				rc = moat_err_errno(err, MOAT_EIO, errno, "%s", crt);
				break;
			}
			continue;
		}
		if (out->count == RETIRED_MAX) {
			moat_pki_ca_free(ca);
			rc = moat_err_set(err, MOAT_EINVAL, "%s: more than %d retired issuing CAs",
					  dir, RETIRED_MAX);
			break;
		}
		out->ca[out->count] = ca;
		if ((rc = moat_fs_read_all(crt, MOAT_FILE_MAX_BYTES, &out->pem[out->count],
					   &out->pem_len[out->count], err)) != 0) {
			moat_pki_ca_free(ca);
			break;
		}
		out->count++;
	}
	closedir(dh);
	if (rc != 0) {
		retired_free(out);
	}
	return rc;
}

/* The retired issuing CAs' certificates, one after the other; caller frees. */
static int retired_pem(const struct retired *r, char **out, size_t *out_len, struct moat_err *err)
{
	size_t len = 0;
	for (size_t i = 0; i < r->count; i++) {
		len += r->pem_len[i];
	}
	char *buf = malloc(len + 1);
	if (!buf) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	size_t at = 0;
	for (size_t i = 0; i < r->count; i++) {
		memcpy(buf + at, r->pem[i], r->pem_len[i]);
		at += r->pem_len[i];
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	return 0;
}

/* ---- the CRL file ------------------------------------------------------------------------ */

/* Until when root-signed certificates may be in use in a deployment that was single-tier:
 * 0 when it never was. */
static int root_crl_until(struct moat_deploy *d, int64_t *out, struct moat_err *err)
{
	int rc = moat_registry_meta_get_int(d->reg, "root_crl_until", out, err);
	if (rc == MOAT_ENOENT) {
		*out = 0;
		rc = 0;
	}
	return rc;
}

/* pki/crl.pem's CRL signed by the root, as it is (moatd re-signs the issuing CAs' CRLs
 * without the passphrase, and keeps the root's). Caller frees. */
static int current_root_crl(struct moat_deploy *d, char **out, size_t *out_len,
			    struct moat_err *err)
{
	char p[PATH_MAX];
	char *text = NULL;
	size_t len = 0;
	int rc = moat_deploy_path(d, p, sizeof(p), "pki/crl.pem", err);
	if (rc == 0) {
		rc = moat_fs_read_all(p, MOAT_FILE_MAX_BYTES, &text, &len, err);
	}
	if (rc != 0) {
		return rc;
	}
	rc = moat_pki_crl_pick(text, len, d->ca->cert, out, out_len, err);
	free(text);
	if (rc == MOAT_ENOENT) {
		rc = moat_err_set(err, MOAT_ENOENT,
				  "pki/crl.pem has no CRL of the root CA for the certificates it "
				  "signed: run moat cert crl with the CA passphrase");
	}
	return rc;
}

static int append(char **buf, size_t *len, const char *add, size_t add_len, struct moat_err *err)
{
	char *n = realloc(*buf, *len + add_len + 1);
	if (!n) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	memcpy(n + *len, add, add_len);
	*len += add_len;
	n[*len] = '\0';
	*buf = n;
	return 0;
}

int deploy_crl_assemble(struct moat_deploy *d, const struct moat_revoked_cert *revoked,
			size_t count, int64_t number, int64_t now, char **out, size_t *out_len,
			struct moat_err *err)
{
	const struct moat_ca *signer = NULL;
	struct retired ret = {0};
	char *buf = NULL;
	size_t len = 0;
	char *one = NULL;
	size_t one_len = 0;
	int64_t next = now + d->conf.crl_validity;
	int rc = moat_deploy_signer(d, &signer, err);
	if (rc != 0) {
		return rc;
	}
	/* every CRL lists every revoked serial: serials are random and unique across the
	 * deployment, and a verifier that consults any of them refuses a revoked one */
	if ((rc = moat_pki_crl_build_until(signer, revoked, count, number, now, next, &one,
					   &one_len, err)) != 0 ||
	    (rc = append(&buf, &len, one, one_len, err)) != 0) {
		goto out;
	}
	free(one);
	one = NULL;
	if (d->has_issuer) {
		if ((rc = retired_load(d, true, now, &ret, err)) != 0) {
			goto out;
		}
		for (size_t i = 0; i < ret.count; i++) {
			if ((rc = moat_pki_crl_build_until(ret.ca[i], revoked, count, number, now,
							   next, &one, &one_len, err)) != 0 ||
			    (rc = append(&buf, &len, one, one_len, err)) != 0) {
				goto out;
			}
			free(one);
			one = NULL;
		}
		int64_t until = 0;
		if ((rc = root_crl_until(d, &until, err)) != 0) {
			goto out;
		}
		if (until > now) {
			/* The root signs its CRL only with the passphrase, so this one lasts as
			 * long as a certificate it signed may: it never goes stale while moatd
			 * refreshes the rest. Revoking a root-signed certificate re-signs it. */
			if (d->ca->key) {
				rc = moat_pki_crl_build_until(d->ca, revoked, count, number, now,
							      until + 86400, &one, &one_len, err);
			} else {
				rc = current_root_crl(d, &one, &one_len, err);
			}
			if (rc != 0 || (rc = append(&buf, &len, one, one_len, err)) != 0) {
				goto out;
			}
		}
	}
	*out = buf;
	*out_len = len;
	buf = NULL;
	rc = 0;
out:
	retired_free(&ret);
	free(one);
	free(buf);
	return rc;
}

int moat_deploy_revoking_needs_root(struct moat_deploy *d, const char *id, bool *out,
				    struct moat_err *err)
{
	struct moat_identity ident;
	int64_t until = 0;
	int rc;
	*out = false;
	if (d->ca->key) {
		return 0; /* unlocked already */
	}
	if (!d->has_issuer) {
		*out = true;
		return 0;
	}
	if ((rc = root_crl_until(d, &until, err)) != 0) {
		return rc;
	}
	if (until <= moat_time_now()) {
		return 0;
	}
	if ((rc = moat_registry_identity_get(d->reg, id, &ident, err)) != 0) {
		return rc;
	}
	if (!ident.serial_hex[0] || ident.cert_revoked) {
		return 0;
	}
	char *pem = NULL;
	if ((rc = moat_registry_cert_pem(d->reg, ident.serial_hex, &pem, err)) != 0) {
		return rc;
	}
	rc = moat_pki_cert_issued_by(pem, d->ca->cert, out, err);
	free(pem);
	return rc;
}

/* ---- adding and rotating the issuing CA --------------------------------------------- */

static int issuer_generation(struct moat_deploy *d, int64_t *out, struct moat_err *err)
{
	int rc = moat_registry_meta_get_int(d->reg, "issuer_generation", out, err);
	if (rc == MOAT_ENOENT) {
		*out = d->has_issuer ? 1 : 0;
		rc = 0;
	}
	return rc;
}

static int latest_cert(const struct moat_cert_row *row, void *ctx)
{
	int64_t *latest = ctx;
	if (row->not_after > *latest) {
		*latest = row->not_after;
	}
	return 0;
}

/* A new issuing CA of generation gen under the root, valid for days (0: the default), cut
 * to the root's validity; written with retired (may be empty) into issuers.pem. */
static int issuer_install(struct moat_deploy *d, int64_t gen, int64_t days, EVP_PKEY *key,
			  const struct retired *retired, int64_t now, struct moat_err *err)
{
	struct moat_ca *fresh = NULL;
	char *root_pem = NULL;
	size_t root_len = 0;
	char *ret_pem = NULL;
	size_t ret_len = 0;
	char p[PATH_MAX];
	int64_t end = 0;
	int rc = deploy_not_after(d->ca, now, days, MOAT_ISSUER_DAYS_DEFAULT, "the issuing CA",
				  &end, err);
	/* key: one in a PKCS#11 token, certified here; NULL: a new one (pki/issuer.key) */
	if (rc == 0) {
		rc = key ? moat_pki_issuer_certify(d->ca, (unsigned)gen, key, now, end, &fresh, err)
			 : moat_pki_issuer_create(d->ca, (unsigned)gen, d->conf.key_type, now, end,
						  &fresh, err);
	}
	if (rc == 0 && (rc = moat_deploy_path(d, p, sizeof(p), "pki/ca.crt", err)) == 0 &&
	    (rc = moat_fs_read_all(p, MOAT_FILE_MAX_BYTES, &root_pem, &root_len, err)) == 0 &&
	    (rc = retired_pem(retired, &ret_pem, &ret_len, err)) == 0) {
		rc = deploy_issuer_write(d->dir, fresh, root_pem, root_len, ret_pem, ret_len, err);
	}
	if (rc == 0) {
		moat_pki_ca_free(d->issuer);
		d->issuer = fresh;
		fresh = NULL;
		free(d->chain_pem);
		d->chain_pem = NULL;
		d->chain_len = 0;
		d->has_issuer = true;
	}
	moat_pki_ca_free(fresh);
	free(root_pem);
	free(ret_pem);
	return rc;
}

/* The registry side of an issuer change, and the new CRL file, in one transaction. */
static int issuer_commit(struct moat_deploy *d, int64_t gen, int64_t root_until,
			 struct moat_err *err)
{
	int rc = moat_registry_begin(d->reg, err);
	if (rc != 0) {
		return rc;
	}
	if ((rc = moat_registry_meta_set_int(d->reg, "issuer_generation", gen, err)) != 0 ||
	    (root_until &&
	     (rc = moat_registry_meta_set_int(d->reg, "root_crl_until", root_until, err)) != 0) ||
	    (rc = moat_deploy_write_crl(d, err)) != 0 ||
	    (rc = moat_registry_commit(d->reg, err)) != 0) {
		moat_registry_rollback(d->reg);
	}
	return rc;
}

static int need_root(const struct moat_deploy *d, struct moat_err *err)
{
	if (!d->ca->key) {
		return moat_err_set(err, MOAT_EINVAL,
				    "pki/ca.key: the issuing CA is signed by the "
				    "root: needs the CA passphrase");
	}
	if (d->lock_fd < 0) {
		return moat_err_set(err, MOAT_ESTATE, "deployment not opened for writing");
	}
	return 0;
}

static int issuer_create(struct moat_deploy *d, int64_t days, EVP_PKEY *key, struct moat_err *err);

int moat_deploy_issuer_create(struct moat_deploy *d, int64_t days, struct moat_err *err)
{
	return issuer_create(d, days, NULL, err);
}

/* Whether line (up to its end) sets [pki] issuer_pkcs11_uri. */
static bool is_uri_line(const char *line)
{
	static const char key[] = "issuer_pkcs11_uri";
	line += strspn(line, " \t");
	if (strncmp(line, key, sizeof(key) - 1) != 0) {
		return false;
	}
	line += sizeof(key) - 1;
	return line[strspn(line, " \t")] == '=';
}

/* moat.conf with lines inserted after its "[pki]" line and, when drop_uri, its
 * issuer_pkcs11_uri line removed, written atomically; *out_old (caller frees) is the text it
 * had, to put back when what follows fails. */
static int conf_edit_pki(struct moat_deploy *d, const char *lines, bool drop_uri, char **out_old,
			 struct moat_err *err)
{
	char p[PATH_MAX];
	char *old = NULL;
	size_t len = 0;
	*out_old = NULL;
	int rc = moat_deploy_path(d, p, sizeof(p), "moat.conf", err);
	if (rc == 0) {
		rc = moat_fs_read_all(p, MOAT_FILE_MAX_BYTES, &old, &len, err);
	}
	if (rc != 0) {
		return rc;
	}
	const char *at = strstr(old, "\n[pki]\n");
	if (!at) {
		free(old);
		return moat_err_set(err, MOAT_EINVAL, "%s: no [pki] section to add the token to",
				    p);
	}
	size_t head = (size_t)(at - old) + strlen("\n[pki]\n");
	size_t add = strlen(lines);
	char *text = malloc(len + add + 1);
	if (!text) {
		free(old);
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	memcpy(text, old, head);
	memcpy(text + head, lines, add);
	size_t n = head + add;
	for (const char *l = old + head; *l;) {
		const char *nl = strchr(l, '\n');
		size_t l_len = nl ? (size_t)(nl - l) + 1 : strlen(l);
		if (!(drop_uri && is_uri_line(l))) {
			memcpy(text + n, l, l_len);
			n += l_len;
		}
		l += l_len;
	}
	text[n] = '\0';
	rc = moat_fs_write_atomic(p, text, n, 0644, err);
	free(text);
	if (rc != 0) {
		free(old);
		return rc;
	}
	*out_old = old;
	return 0;
}

/* Puts moat.conf's text old back after a failure; says so in err when it cannot. */
static void conf_restore(struct moat_deploy *d, const char *old, struct moat_err *err)
{
	char p[PATH_MAX];
	struct moat_err ignored;
	if (moat_deploy_path(d, p, sizeof(p), "moat.conf", &ignored) == 0 &&
	    moat_fs_write_atomic(p, old, strlen(old), 0644, &ignored) != 0) {
		moat_err_prefix(err, "moat.conf not restored (%s)", ignored.msg);
	}
}

/* The [pki] lines naming a token key (uri) and, when given and moat.conf has none yet, its
 * module and PIN file, into lines (size bytes); one already there is refused. */
static int token_conf_lines(struct moat_deploy *d, const char *uri, const char *module,
			    const char *pin_file, char *lines, size_t size, struct moat_err *err)
{
	const char *values[] = {uri, module, pin_file};
	const char *names[] = {"issuer_pkcs11_uri", "pkcs11_module", "issuer_pin_file"};
	const char *flags[] = {NULL, "--pkcs11-module", "--pin-file"};
	size_t n = 0;
	lines[0] = '\0';
	for (size_t i = 0; i < 3; i++) {
		if (!values[i]) {
			continue;
		}
		if (!values[i][0] || strpbrk(values[i], "\r\n")) {
			return moat_err_set(err, MOAT_EINVAL, "[pki] %s: empty or not one line",
					    names[i]);
		}
		if (i > 0 && moat_config_get(moat_deploy_config(d), "pki", names[i])) {
			return moat_err_set(err, MOAT_EEXIST,
					    "moat.conf has a [pki] %s already: drop %s or edit "
					    "moat.conf",
					    names[i], flags[i]);
		}
		int m = snprintf(lines + n, size - n, "%s = %s\n", names[i], values[i]);
		if (m < 0 || (size_t)m >= size - n) {
			return moat_err_set(err, MOAT_EINVAL, "[pki] %s: too long", names[i]);
		}
		n += (size_t)m;
	}
	return 0;
}

int moat_deploy_issuer_create_token(struct moat_deploy *d, int64_t days, const char *uri,
				    const char *module, const char *pin_file, struct moat_err *err)
{
	char lines[3 * (MOAT_PKCS11_URI_MAX + 64)];
	char *old_conf = NULL;
	EVP_PKEY *key = NULL;
	int rc = need_root(d, err);
	if (rc != 0) {
		return rc;
	}
	if (d->has_issuer) {
		return moat_err_set(err, MOAT_EEXIST,
				    "the deployment has an issuing CA already (moat ca issuer "
				    "rotate replaces it)");
	}
	if (deploy_issuer_pkcs11_uri(d)) {
		return moat_err_set(err, MOAT_EEXIST,
				    "moat.conf names an issuing CA key in a token already ([pki] "
				    "issuer_pkcs11_uri): remove it first");
	}
	if ((rc = token_conf_lines(d, uri, module, pin_file, lines, sizeof(lines), err)) != 0) {
		return rc;
	}
	const char *conf_module = moat_config_get(moat_deploy_config(d), "pki", "pkcs11_module");
	if ((rc = deploy_token_key(uri, module ? module : conf_module, pin_file, &key, err)) != 0) {
		return rc;
	}
	/* moat.conf first, so the issuing CA is never there without the key's name; put back
	 * when the rest fails */
	if ((rc = conf_edit_pki(d, lines, false, &old_conf, err)) == 0 &&
	    (rc = issuer_create(d, days, key, err)) != 0) {
		conf_restore(d, old_conf, err);
	}
	free(old_conf);
	EVP_PKEY_free(key);
	return rc;
}

static int issuer_create(struct moat_deploy *d, int64_t days, EVP_PKEY *key, struct moat_err *err)
{
	int rc = need_root(d, err);
	if (rc != 0) {
		return rc;
	}
	if (d->has_issuer) {
		return moat_err_set(err, MOAT_EEXIST,
				    "the deployment has an issuing CA already (moat ca issuer "
				    "rotate replaces it)");
	}
	int64_t now = moat_time_now();
	int64_t gen = 0;
	int64_t latest = 0;
	if ((rc = issuer_generation(d, &gen, err)) != 0 ||
	    (rc = moat_registry_cert_foreach(d->reg, false, latest_cert, &latest, err)) != 0) {
		return rc;
	}
	/* A single-tier root has pathlen 0 and cannot sign a CA: it gets a new certificate
	 * for the same name and key with pathlen 1. What it signed verifies as before. */
	if (moat_pki_ca_pathlen(d->ca) == 0) {
		struct moat_ca *recert = NULL;
		char *cert_pem = NULL;
		size_t cert_len = 0;
		char p[PATH_MAX];
		if ((rc = moat_pki_root_recertify(d->ca, &recert, err)) != 0) {
			return rc;
		}
		rc = moat_pki_ca_cert_pem(recert, &cert_pem, &cert_len, err);
		if (rc == 0 && (rc = moat_deploy_path(d, p, sizeof(p), "pki/ca.crt", err)) == 0) {
			rc = moat_fs_write_atomic(p, cert_pem, cert_len, 0644, err);
		}
		free(cert_pem);
		if (rc != 0) {
			moat_pki_ca_free(recert);
			return rc;
		}
		moat_pki_ca_free(d->ca);
		d->ca = recert;
	}
	struct retired none = {0};
	if ((rc = issuer_install(d, gen + 1, days, key, &none, now, err)) != 0) {
		return rc;
	}
	/* certificates issued so far are the root's: its CRL stays while they may be used */
	return issuer_commit(d, gen + 1, latest > now ? latest : 0, err);
}

/* What records the old issuing CA's key in pki/retired/ as issuer-<gen>.key (a key file)
 * or issuer-<gen>.pkcs11 (the token key's URI with its module) into *out (caller wipes
 * and frees), *out_ext the file's extension. */
static int retired_key_text(struct moat_deploy *d, const struct moat_ca *old, char **out,
			    size_t *out_len, const char **out_ext, struct moat_err *err)
{
	const char *uri = deploy_issuer_pkcs11_uri(d);
	*out = NULL;
	if (!moat_pkcs11_key_in_token(old->key)) {
		char *cert = NULL;
		size_t cert_len = 0;
		*out_ext = "key";
		int rc = moat_pki_issuer_export(old, &cert, &cert_len, out, out_len, err);
		free(cert);
		return rc;
	}
	*out_ext = "pkcs11";
	struct moat_pkcs11_uri parsed;
	const char *module = moat_config_get(moat_deploy_config(d), "pki", "pkcs11_module");
	char *text = NULL;
	int rc = moat_pkcs11_uri_parse(uri, &parsed, err);
	if (rc != 0) {
		return rc;
	}
	/* the module is recorded with the URI: moat.conf's may change with the next key */
	if (!parsed.has_module_path && module) {
		rc = moat_pkcs11_uri_with_module(uri, module, &text, err);
	} else {
		text = strdup(uri);
		rc = text ? 0 : moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	if (rc != 0) {
		return rc;
	}
	size_t len = strlen(text);
	char *line = realloc(text, len + 2);
	if (!line) {
		free(text);
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	line[len] = '\n';
	line[len + 1] = '\0';
	*out = line;
	*out_len = len + 1;
	return 0;
}

/* The old issuing CA of generation gen into pki/retired/, kept to re-sign its CRL while
 * what it signed may be in use (until it expires). */
static int retire(struct moat_deploy *d, const struct moat_ca *old, int64_t gen, int64_t now,
		  struct moat_err *err)
{
	char *cert = NULL;
	char *key = NULL;
	size_t cert_len = 0;
	size_t key_len = 0;
	const char *ext = NULL;
	char dir[PATH_MAX];
	char p[PATH_MAX];
	if (moat_pki_ca_not_after(old) <= now) {
		return 0;
	}
	int rc = moat_deploy_path(d, dir, sizeof(dir), RETIRED_DIR, err);
	if (rc == 0 && (rc = moat_fs_mkdirs(dir, 0700, err)) == 0 &&
	    (rc = pem_of_cert(old->cert, &cert, &cert_len, err)) == 0 &&
	    (rc = retired_key_text(d, old, &key, &key_len, &ext, err)) == 0 &&
	    (rc = moat_path_join(p, sizeof(p), err, "%s/issuer-%lld.%s", dir, (long long)gen,
				 ext)) == 0 &&
	    (rc = moat_fs_write_atomic(p, key, key_len, 0600, err)) == 0 &&
	    (rc = moat_path_join(p, sizeof(p), err, "%s/issuer-%lld.crt", dir, (long long)gen)) ==
		    0) {
		rc = moat_fs_write_atomic(p, cert, cert_len, 0644, err);
	}
	if (key) {
		OPENSSL_cleanse(key, key_len);
		free(key);
	}
	free(cert);
	return rc;
}

/* Refuses a new key that is the current or a retired issuing CA's. */
static int key_is_new(const struct moat_ca *old, const struct retired *ret, EVP_PKEY *key,
		      struct moat_err *err)
{
	bool same = EVP_PKEY_eq(key, X509_get0_pubkey(old->cert)) == 1;
	for (size_t i = 0; !same && i < ret->count; i++) {
		same = EVP_PKEY_eq(key, X509_get0_pubkey(ret->ca[i]->cert)) == 1;
	}
	ERR_clear_error();
	return same ? moat_err_set(err, MOAT_EEXIST,
				   "--pkcs11-uri names the key of the current or a retired "
				   "issuing CA: a new issuing CA needs a new key object")
		    : 0;
}

/* Rotation to key (in a token, named by the [pki] lines) or, when NULL, to a new key
 * file. moat.conf changes first (dropping the old token URI, adding lines) and is put back
 * when the rest fails. */
static int issuer_rotate(struct moat_deploy *d, int64_t days, EVP_PKEY *key, const char *lines,
			 struct moat_err *err)
{
	int rc = need_root(d, err);
	if (rc != 0) {
		return rc;
	}
	if (!d->has_issuer) {
		return moat_err_set(err, MOAT_ESTATE,
				    "the deployment has no issuing CA (moat ca issuer create adds "
				    "one)");
	}
	int64_t now = moat_time_now();
	int64_t gen = 0;
	const struct moat_ca *old = NULL;
	struct retired ret = {0};
	char *old_conf = NULL;
	bool from_token = deploy_issuer_pkcs11_uri(d) != NULL;
	if ((rc = issuer_generation(d, &gen, err)) != 0 ||
	    (rc = moat_deploy_signer(d, &old, err)) != 0 ||
	    (rc = retired_load(d, false, now, &ret, err)) != 0) {
		return rc;
	}
	if (key && (rc = key_is_new(old, &ret, key, err)) != 0) {
		goto out;
	}
	retired_free(&ret);
	if ((rc = retire(d, old, gen, now, err)) != 0 ||
	    (rc = retired_load(d, false, now, &ret, err)) != 0) {
		goto out;
	}
	if ((from_token || key) && (rc = conf_edit_pki(d, lines, true, &old_conf, err)) != 0) {
		goto out;
	}
	if ((rc = issuer_install(d, gen + 1, days, key, &ret, now, err)) != 0 ||
	    (rc = issuer_commit(d, gen + 1, 0, err)) != 0) {
		if (old_conf) {
			conf_restore(d, old_conf, err);
		}
	}
out:
	free(old_conf);
	retired_free(&ret);
	return rc;
}

int moat_deploy_issuer_rotate(struct moat_deploy *d, int64_t days, struct moat_err *err)
{
	return issuer_rotate(d, days, NULL, "", err);
}

int moat_deploy_issuer_rotate_token(struct moat_deploy *d, int64_t days, const char *uri,
				    const char *module, const char *pin_file, struct moat_err *err)
{
	char lines[3 * (MOAT_PKCS11_URI_MAX + 64)];
	EVP_PKEY *key = NULL;
	const struct moat_config *cfg = moat_deploy_config(d);
	int rc = need_root(d, err);
	if (rc == 0) {
		rc = token_conf_lines(d, uri, module, pin_file, lines, sizeof(lines), err);
	}
	if (rc == 0) {
		rc = deploy_token_key(
			uri, module ? module : moat_config_get(cfg, "pki", "pkcs11_module"),
			pin_file ? pin_file : moat_config_get(cfg, "pki", "issuer_pin_file"), &key,
			err);
	}
	if (rc == 0) {
		rc = issuer_rotate(d, days, key, lines, err);
	}
	EVP_PKEY_free(key);
	return rc;
}

/* ---- the CRL's freshness ------------------------------------------------------------------ */

int moat_deploy_crl_state(struct moat_deploy *d, int64_t now, struct moat_crl_state *out,
			  struct moat_err *err)
{
	char p[PATH_MAX];
	char ip[PATH_MAX];
	char *text = NULL;
	char *issuers = NULL;
	size_t len = 0;
	size_t issuers_len = 0;
	struct moat_crl_set *set = NULL;
	memset(out, 0, sizeof(*out));
	out->next_update = INT64_MAX;
	int rc = moat_deploy_path(d, p, sizeof(p), "pki/crl.pem", err);
	if (rc == 0 && (rc = moat_deploy_path(d, ip, sizeof(ip), MOAT_ISSUERS_FILE, err)) == 0 &&
	    (rc = moat_fs_read_all(p, MOAT_FILE_MAX_BYTES, &text, &len, err)) == 0) {
		rc = moat_fs_read_all(ip, MOAT_FILE_MAX_BYTES, &issuers, &issuers_len, err);
		if (rc == MOAT_ENOENT) {
			rc = 0;
		}
	}
	if (rc == 0) {
		rc = moat_crl_set_load("pki/crl.pem", text, len, d->ca->cert, MOAT_ISSUERS_FILE,
				       issuers, issuers_len, &set, err);
	}
	free(text);
	free(issuers);
	if (rc != 0) {
		return rc;
	}
	out->crls = moat_crl_set_count(set);
	for (size_t i = 0; i < out->crls; i++) {
		struct moat_crl_info info;
		moat_crl_set_info(set, i, &info);
		if (info.next_update < out->next_update) {
			out->next_update = info.next_update;
			out->last_update = info.last_update;
			snprintf(out->issuer_cn, sizeof(out->issuer_cn), "%s", info.issuer_cn);
		}
		if (info.next_update <= now) {
			out->stale = true;
		}
		/* what the issuing CAs signed is re-signed once half its validity has passed;
		 * the root's own CRL (kept for root-signed certificates) only with the
		 * passphrase, and it lasts as long as they do */
		bool refreshable = !info.by_root || !d->has_issuer;
		if (refreshable &&
		    now >= info.last_update + (info.next_update - info.last_update) / 2) {
			out->refresh_due = true;
		}
	}
	moat_crl_set_free(set);
	return 0;
}

int deploy_not_after(const struct moat_ca *signer, int64_t now, int64_t days, int64_t default_days,
		     const char *what, int64_t *out, struct moat_err *err)
{
	int64_t end = moat_pki_ca_not_after(signer);
	if (!days) {
		int64_t t = now + default_days * 86400;
		*out = t < end ? t : end; /* a default never outlasts the issuer */
		return 0;
	}
	int64_t t = now + days * 86400;
	if (t > end) {
		char want[MOAT_TIME_ISO_LEN];
		char until[MOAT_TIME_ISO_LEN];
		moat_time_iso(t, want);
		moat_time_iso(end, until);
		return moat_err_set(
			err, MOAT_EINVAL,
			"--days %lld: %s would be valid until %s, after the CA that signs "
			"it (valid until %s): no certificate outlives its issuer",
			(long long)days, what, want, until);
	}
	*out = t;
	return 0;
}
