/* crl.c: the CRL as the plugin holds it, and certificate serials as it compares them.
 *
 * The CRL file (pki/crl.pem, rewritten by `moat` on every revocation) is read into a
 * sorted array of uppercase hex serials, allocated with mosquitto_malloc so the broker's
 * memory limit applies; lookups are a binary search. The CRL must be signed by the CA of
 * plugin_opt_ca_file (issuer name and signature), and be current: a nextUpdate in the
 * future and a lastUpdate not more than MP_CRL_CLOCK_SKEW_S ahead of the clock; otherwise
 * whoever can write the file, or an old copy put back, could un-revoke certificates.
 * A CRL that does not parse or verify, or lists more than MP_CRL_MAX_ENTRIES serials,
 * leaves the one in force untouched (MOAT_EVERIFY for one that parses but does not
 * verify); at start there is none in force and the broker does not start. auth.c refuses
 * a revoked serial at BASIC_AUTH; tick.c reloads the CRL when it changed and kicks the
 * clients it now revokes.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "moat/fsutil.h"
#include "plugin_internal.h"

bool moat_plugin_serial_hex(const void *asn1_serial, char out[MP_SERIAL_HEX_MAX])
{
	bool ok = false;
	out[0] = '\0';
	BIGNUM *bn = ASN1_INTEGER_to_BN(asn1_serial, NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	if (hex && strlen(hex) < MP_SERIAL_HEX_MAX) {
		memcpy(out, hex, strlen(hex) + 1);
		ok = true;
	}
	OPENSSL_free(hex);
	BN_free(bn);
	return ok;
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_list(char **list, size_t count)
{
	for (size_t i = 0; list && i < count; i++) {
		mosquitto_free(list[i]);
	}
	mosquitto_free(list);
}

void moat_plugin_free_crl(struct mp_state *st)
{
	free_list(st->revoked, st->revoked_count);
	st->revoked = NULL;
	st->revoked_count = 0;
}

bool moat_plugin_serial_revoked(const struct mp_state *st, const char *serial_hex)
{
	if (st->revoked_count == 0) {
		return false;
	}
	return bsearch(&serial_hex, st->revoked, st->revoked_count, sizeof(st->revoked[0]),
		       cmp_strp) != NULL;
}

/* 0 when crl is signed by the CA in ca_path and current at now, else MOAT_EVERIFY (or the
 * error reading the CA) with the cause in err. */
static int crl_verify(const char *crl_path, const char *ca_path, X509_CRL *crl, time_t now,
		      struct moat_err *err)
{
	int rc = MOAT_EVERIFY;
	char *data = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	X509 *ca = NULL;

	rc = moat_fs_read_all(ca_path, MOAT_FILE_MAX_BYTES, &data, &len, err);
	if (rc < 0) {
		goto out;
	}
	bio = BIO_new_mem_buf(data, (int)len);
	ca = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	if (!ca) {
		rc = moat_err_ssl(err, MOAT_EINVAL, "%s: not a PEM certificate", ca_path);
		goto out;
	}
	rc = MOAT_EVERIFY;
	EVP_PKEY *key = X509_get0_pubkey(ca);
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) != 0 || !key ||
	    X509_CRL_verify(crl, key) != 1) {
		rc = moat_err_set(err, MOAT_EVERIFY, "%s: not signed by the CA of %s", crl_path,
				  ca_path);
		goto out;
	}
	const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
	if (!next || X509_cmp_time(next, &now) <= 0) {
		rc = moat_err_set(err, MOAT_EVERIFY, "%s: stale (its nextUpdate has passed)",
				  crl_path);
		goto out;
	}
	time_t ahead = now + MP_CRL_CLOCK_SKEW_S;
	const ASN1_TIME *last = X509_CRL_get0_lastUpdate(crl);
	if (!last || X509_cmp_time(last, &ahead) >= 0) {
		rc = moat_err_set(err, MOAT_EVERIFY, "%s: issued in the future (lastUpdate)",
				  crl_path);
		goto out;
	}
	rc = 0;
out:
	X509_free(ca);
	BIO_free(bio);
	free(data);
	return rc;
}

int moat_plugin_load_crl(struct mp_state *st, bool force, struct moat_err *err)
{
	int rc = moat_plugin_file_changed(st->crl_path, &st->crl_stamp, force, err);
	if (rc <= 0) {
		return rc;
	}
	char *data = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	X509_CRL *crl = NULL;
	char **list = NULL;
	size_t count = 0;

	rc = moat_fs_read_all(st->crl_path, MOAT_FILE_MAX_BYTES, &data, &len, err);
	if (rc < 0) {
		goto out;
	}
	rc = MOAT_EINVAL;
	bio = BIO_new_mem_buf(data, (int)len);
	if (!bio) {
		rc = moat_err_ssl(err, MOAT_ENOMEM, "%s", st->crl_path);
		goto out;
	}
	crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
	if (!crl) {
		rc = moat_err_ssl(err, MOAT_EINVAL, "%s: not a PEM CRL", st->crl_path);
		goto out;
	}
	rc = crl_verify(st->crl_path, st->ca_path, crl, time(NULL), err);
	if (rc < 0) {
		goto out;
	}
	rc = MOAT_EINVAL;
	STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
	int n = revs ? sk_X509_REVOKED_num(revs) : 0;
	if (n < 0 || (unsigned)n > MP_CRL_MAX_ENTRIES) {
		rc = moat_err_set(err, MOAT_EINVAL, "%s: more than %u revoked serials",
				  st->crl_path, MP_CRL_MAX_ENTRIES);
		goto out;
	}
	if (n > 0) {
		list = mosquitto_calloc((size_t)n, sizeof(*list));
		if (!list) {
			rc = moat_err_set(err, MOAT_ENOMEM, "%s: out of memory", st->crl_path);
			goto out;
		}
	}
	for (int i = 0; i < n; i++) {
		char hex[MP_SERIAL_HEX_MAX];
		const X509_REVOKED *r = sk_X509_REVOKED_value(revs, i);
		if (!moat_plugin_serial_hex(X509_REVOKED_get0_serialNumber(r), hex)) {
			rc = moat_err_set(err, MOAT_EINVAL, "%s: entry %d: unreadable serial",
					  st->crl_path, i + 1);
			goto out;
		}
		list[count] = mosquitto_strdup(hex);
		if (!list[count]) {
			rc = moat_err_set(err, MOAT_ENOMEM, "%s: out of memory", st->crl_path);
			goto out;
		}
		count++;
	}
	if (count > 1) {
		qsort(list, count, sizeof(*list), cmp_strp);
	}
	moat_plugin_free_crl(st);
	st->revoked = list;
	st->revoked_count = count;
	list = NULL;
	count = 0;
	rc = 1;
out:
	free_list(list, count);
	X509_CRL_free(crl);
	BIO_free(bio);
	free(data);
	return rc;
}
