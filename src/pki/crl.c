/* crl.c: the certificate revocation list, rebuilt whole from the registry on every change
 * (revocations are few; a full rebuild cannot drift from the registry). */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pki_internal.h"

static const char *const reason_names[] = {
	"unspecified",	   "key-compromise",	     "ca-compromise",	 "affiliation-changed",
	"superseded",	   "cessation-of-operation", "certificate-hold", "unused",
	"remove-from-crl", "privilege-withdrawn",
};
#define REASON_COUNT (sizeof(reason_names) / sizeof(reason_names[0]))

int moat_pki_reason_parse(const char *text, int *out_reason, struct moat_err *err)
{
	static const int allowed[] = {0, 1, 3, 4, 5, 9};
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		if (text && strcmp(text, reason_names[allowed[i]]) == 0) {
			*out_reason = allowed[i];
			return 0;
		}
	}
	return moat_err_set(err, MOAT_EINVAL,
			    "unknown reason '%s' (unspecified, key-compromise, affiliation-changed, "
			    "superseded, cessation-of-operation, privilege-withdrawn)",
			    text ? text : "");
}

const char *moat_pki_reason_name(int reason)
{
	return reason >= 0 && (size_t)reason < REASON_COUNT ? reason_names[reason] : "unknown";
}

static int add_revoked(X509_CRL *crl, const struct moat_revoked_cert *r, struct moat_err *err)
{
	int rc = MOAT_ECRYPTO;
	BIGNUM *bn = NULL;
	ASN1_INTEGER *serial = NULL;
	ASN1_TIME *when = NULL;
	ASN1_ENUMERATED *reason = NULL;
	size_t len = strlen(r->serial_hex);
	/* BN_hex2bn would take a '-' or stop at the first non-hex digit */
	if (len == 0 || strspn(r->serial_hex, "0123456789abcdefABCDEF") != len) {
		return moat_err_set(err, MOAT_EINVAL, "CRL entry '%s': not a hex serial",
				    r->serial_hex);
	}
	X509_REVOKED *rev = X509_REVOKED_new();
	if (!rev || !BN_hex2bn(&bn, r->serial_hex) || !(serial = BN_to_ASN1_INTEGER(bn, NULL)) ||
	    !(when = ASN1_TIME_set(NULL, (time_t)r->revoked_at)) ||
	    !X509_REVOKED_set_serialNumber(rev, serial) ||
	    !X509_REVOKED_set_revocationDate(rev, when)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "CRL entry %s", r->serial_hex);
		goto out;
	}
	if (r->reason != 0) {
		reason = ASN1_ENUMERATED_new();
		if (!reason || !ASN1_ENUMERATED_set(reason, r->reason) ||
		    !X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, reason, 0, 0)) {
			rc = moat_err_ssl(err, MOAT_ECRYPTO, "CRL reason %s", r->serial_hex);
			goto out;
		}
	}
	if (!X509_CRL_add0_revoked(crl, rev)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "CRL entry %s", r->serial_hex);
		goto out;
	}
	rev = NULL;
	rc = 0;
out:
	ASN1_ENUMERATED_free(reason);
	ASN1_TIME_free(when);
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	X509_REVOKED_free(rev);
	return rc;
}

int moat_pki_crl_build(const struct moat_ca *ca, const struct moat_revoked_cert *revoked,
		       size_t count, int64_t crl_number, int64_t now, int64_t days, char **out_pem,
		       size_t *out_len, struct moat_err *err)
{
	return moat_pki_crl_build_until(ca, revoked, count, crl_number, now, now + days * 86400,
					out_pem, out_len, err);
}

int moat_pki_crl_build_until(const struct moat_ca *ca, const struct moat_revoked_cert *revoked,
			     size_t count, int64_t crl_number, int64_t now, int64_t next_update,
			     char **out_pem, size_t *out_len, struct moat_err *err)
{
	int rc = MOAT_ECRYPTO;
	ASN1_TIME *last = NULL;
	ASN1_TIME *next = NULL;
	ASN1_INTEGER *number = NULL;
	BIO *b = NULL;
	X509_CRL *crl = X509_CRL_new();

	if (!ca->key) {
		rc = moat_err_set(err, MOAT_ESTATE, "CA key not unlocked");
		goto out;
	}
	if (!crl || !X509_CRL_set_version(crl, 1) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->cert)) ||
	    !(last = ASN1_TIME_set(NULL, (time_t)(now - 60))) ||
	    !(next = ASN1_TIME_set(NULL, (time_t)next_update)) ||
	    !X509_CRL_set1_lastUpdate(crl, last) || !X509_CRL_set1_nextUpdate(crl, next)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "building the CRL");
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		if ((rc = add_revoked(crl, &revoked[i], err)) != 0) {
			goto out;
		}
	}
	number = ASN1_INTEGER_new();
	if (!number || !ASN1_INTEGER_set_int64(number, crl_number) ||
	    !X509_CRL_add1_ext_i2d(crl, NID_crl_number, number, 0, 0)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "CRL number");
		goto out;
	}
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, ca->cert, NULL, NULL, crl, 0);
	X509_EXTENSION *aki =
		X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
	if (!aki || !X509_CRL_add_ext(crl, aki, -1)) {
		X509_EXTENSION_free(aki);
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "CRL authority key identifier");
		goto out;
	}
	X509_EXTENSION_free(aki);
	X509_CRL_sort(crl);
	if (!X509_CRL_sign(crl, ca->key, EVP_sha256())) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "signing the CRL");
		goto out;
	}
	b = BIO_new(BIO_s_mem());
	if (!b || !PEM_write_bio_X509_CRL(b, crl)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "encoding the CRL");
		goto out;
	}
	rc = pki_bio_take(b, out_pem, out_len, err);
out:
	BIO_free(b);
	ASN1_INTEGER_free(number);
	ASN1_TIME_free(last);
	ASN1_TIME_free(next);
	X509_CRL_free(crl);
	return rc;
}
