/* crlset.c: the CRLs of pki/crl.pem as moatd and the operator's checks read them: every CRL
 * in the file, each verified against the root or an issuing CA the root signed. */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pki_internal.h"

struct moat_crl_set {
	STACK_OF(X509_CRL) * crls;
	STACK_OF(X509) * signers; /* [0] the root, then the issuing CAs */
};

void moat_crl_set_free(struct moat_crl_set *set)
{
	if (!set) {
		return;
	}
	sk_X509_CRL_pop_free(set->crls, X509_CRL_free);
	sk_X509_pop_free(set->signers, X509_free);
	free(set);
}

/* true when the PEM reader stopped at the end of the text rather than at garbage */
static bool pem_clean_end(void)
{
	unsigned long e = ERR_peek_last_error();
	ERR_clear_error();
	return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

static int add_issuers(struct moat_crl_set *set, const char *name, const char *pem, size_t len,
		       struct moat_err *err)
{
	X509 *root = sk_X509_value(set->signers, 0);
	EVP_PKEY *root_key = X509_get0_pubkey(root);
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *c = NULL;
	int n = 0;
	while (bio && (c = PEM_read_bio_X509(bio, NULL, moat_pem_no_passphrase, NULL)) != NULL) {
		n++;
		if (X509_check_issued(root, c) != X509_V_OK || !root_key ||
		    X509_verify(c, root_key) != 1 || X509_check_ca(c) == 0) {
			X509_free(c);
			BIO_free(bio);
			ERR_clear_error();
			return moat_err_set(err, MOAT_EVERIFY,
					    "%s: certificate %d is not a CA signed by the root",
					    name, n);
		}
		if (!sk_X509_push(set->signers, c)) {
			X509_free(c);
			BIO_free(bio);
			return moat_err_set(err, MOAT_ENOMEM, "out of memory");
		}
	}
	BIO_free(bio);
	if (n == 0 || !pem_clean_end()) {
		return moat_err_set(err, MOAT_EINVAL, "%s: not a list of PEM certificates", name);
	}
	return 0;
}

/* The signer of crl (issuer name and signature), or NULL. */
static X509 *crl_signer(const struct moat_crl_set *set, X509_CRL *crl)
{
	for (int i = 0; i < sk_X509_num(set->signers); i++) {
		X509 *ca = sk_X509_value(set->signers, i);
		EVP_PKEY *key = X509_get0_pubkey(ca);
		if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) == 0 &&
		    key && X509_CRL_verify(crl, key) == 1) {
			return ca;
		}
	}
	ERR_clear_error();
	return NULL;
}

int moat_crl_set_load(const char *name, const char *crl_pem, size_t crl_len, X509 *root,
		      const char *issuers_name, const char *issuers_pem, size_t issuers_len,
		      struct moat_crl_set **out, struct moat_err *err)
{
	int rc;
	BIO *bio = NULL;
	X509_CRL *crl = NULL;
	*out = NULL;
	struct moat_crl_set *set = calloc(1, sizeof(*set));
	if (!set || !(set->crls = sk_X509_CRL_new_null()) || !(set->signers = sk_X509_new_null()) ||
	    !X509_up_ref(root)) {
		moat_crl_set_free(set);
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	if (!sk_X509_push(set->signers, root)) {
		X509_free(root);
		moat_crl_set_free(set);
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	if (issuers_pem &&
	    (rc = add_issuers(set, issuers_name, issuers_pem, issuers_len, err)) != 0) {
		goto out;
	}
	bio = BIO_new_mem_buf(crl_pem, (int)crl_len);
	while (bio && (crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
		if (!crl_signer(set, crl)) {
			rc = moat_err_set(err, MOAT_EVERIFY,
					  "%s: CRL %d is not signed by the root or an issuing CA",
					  name, sk_X509_CRL_num(set->crls) + 1);
			goto out;
		}
		if (!sk_X509_CRL_push(set->crls, crl)) {
			rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
			goto out;
		}
		crl = NULL;
	}
	if (sk_X509_CRL_num(set->crls) == 0 || !pem_clean_end()) {
		rc = moat_err_set(err, MOAT_EINVAL, "%s: not a PEM CRL", name);
		goto out;
	}
	*out = set;
	set = NULL;
	rc = 0;
out:
	ERR_clear_error();
	X509_CRL_free(crl);
	BIO_free(bio);
	moat_crl_set_free(set);
	return rc;
}

size_t moat_crl_set_count(const struct moat_crl_set *set)
{
	return (size_t)sk_X509_CRL_num(set->crls);
}

void moat_crl_set_info(const struct moat_crl_set *set, size_t i, struct moat_crl_info *out)
{
	memset(out, 0, sizeof(*out));
	X509_CRL *crl = sk_X509_CRL_value(set->crls, (int)i);
	X509_NAME_get_text_by_NID(X509_CRL_get_issuer(crl), NID_commonName, out->issuer_cn,
				  (int)sizeof(out->issuer_cn));
	out->last_update = moat_asn1_time_to_unix(X509_CRL_get0_lastUpdate(crl));
	out->next_update = moat_asn1_time_to_unix(X509_CRL_get0_nextUpdate(crl));
	STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
	int n = revs ? sk_X509_REVOKED_num(revs) : 0;
	out->revoked = n < 0 ? 0 : (size_t)n;
	X509 *signer = crl_signer(set, crl);
	out->by_root = signer == sk_X509_value(set->signers, 0);
}

bool moat_crl_set_revoked(const struct moat_crl_set *set, const ASN1_INTEGER *serial)
{
	for (int i = 0; i < sk_X509_CRL_num(set->crls); i++) {
		X509_REVOKED *rev = NULL;
		if (X509_CRL_get0_by_serial(sk_X509_CRL_value(set->crls, i), &rev, serial) == 1) {
			return true;
		}
	}
	return false;
}

int moat_crl_set_serial_foreach(const struct moat_crl_set *set, moat_crl_serial_cb cb, void *ctx)
{
	for (int i = 0; i < sk_X509_CRL_num(set->crls); i++) {
		X509_CRL *crl = sk_X509_CRL_value(set->crls, i);
		X509 *signer = crl_signer(set, crl);
		STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
		for (int j = 0; signer && revs && j < sk_X509_REVOKED_num(revs); j++) {
			const X509_REVOKED *rev = sk_X509_REVOKED_value(revs, j);
			int rc = cb(X509_REVOKED_get0_serialNumber(rev), (size_t)i, signer, ctx);
			if (rc != 0) {
				return rc;
			}
		}
	}
	return 0;
}

int moat_crl_set_revoked_by_issuer(const struct moat_crl_set *set, const char *cert_pem,
				   bool *listed, struct moat_err *err)
{
	*listed = false;
	BIO *bio = BIO_new_mem_buf(cert_pem, -1);
	X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, moat_pem_no_passphrase, NULL) : NULL;
	BIO_free(bio);
	if (!cert) {
		ERR_clear_error();
		return moat_err_set(err, MOAT_EINVAL, "not a PEM certificate");
	}
	for (int i = 0; !*listed && i < sk_X509_CRL_num(set->crls); i++) {
		X509_CRL *crl = sk_X509_CRL_value(set->crls, i);
		X509 *signer = crl_signer(set, crl);
		EVP_PKEY *key = signer ? X509_get0_pubkey(signer) : NULL;
		X509_REVOKED *rev = NULL;
		*listed = key && X509_check_issued(signer, cert) == X509_V_OK &&
			  X509_verify(cert, key) == 1 &&
			  X509_CRL_get0_by_serial(crl, &rev, X509_get0_serialNumber(cert)) == 1;
	}
	X509_free(cert);
	ERR_clear_error();
	return 0;
}

int64_t moat_crl_set_next_update(const struct moat_crl_set *set)
{
	int64_t first = INT64_MAX;
	for (int i = 0; i < sk_X509_CRL_num(set->crls); i++) {
		int64_t t = moat_asn1_time_to_unix(
			X509_CRL_get0_nextUpdate(sk_X509_CRL_value(set->crls, i)));
		if (t < first) {
			first = t;
		}
	}
	return first;
}

int moat_pki_crl_pick(const char *crl_pem, size_t crl_len, X509 *ca, char **out, size_t *out_len,
		      struct moat_err *err)
{
	BIO *bio = BIO_new_mem_buf(crl_pem, (int)crl_len);
	X509_CRL *crl = NULL;
	int rc = MOAT_ENOENT;
	EVP_PKEY *key = X509_get0_pubkey(ca);
	while (bio && rc == MOAT_ENOENT &&
	       (crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
		if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) == 0 &&
		    key && X509_CRL_verify(crl, key) == 1) {
			BIO *b = BIO_new(BIO_s_mem());
			rc = b && PEM_write_bio_X509_CRL(b, crl)
				     ? pki_bio_take(b, out, out_len, err)
				     : moat_err_ssl(err, MOAT_ECRYPTO, "encoding a CRL");
			BIO_free(b);
		}
		X509_CRL_free(crl);
	}
	BIO_free(bio);
	ERR_clear_error();
	if (rc == MOAT_ENOENT) {
		moat_err_set(err, MOAT_ENOENT, "no CRL of that CA");
	}
	return rc;
}

int moat_pki_cert_issued_by(const char *cert_pem, X509 *ca, bool *out, struct moat_err *err)
{
	BIO *bio = BIO_new_mem_buf(cert_pem, -1);
	X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, moat_pem_no_passphrase, NULL) : NULL;
	BIO_free(bio);
	if (!cert) {
		ERR_clear_error();
		return moat_err_set(err, MOAT_EINVAL, "not a PEM certificate");
	}
	EVP_PKEY *key = X509_get0_pubkey(ca);
	*out = X509_check_issued(ca, cert) == X509_V_OK && key && X509_verify(cert, key) == 1;
	X509_free(cert);
	ERR_clear_error();
	return 0;
}
