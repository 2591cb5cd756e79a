/* crl.c: the CRL as the plugin holds it, and certificate serials as it compares them.
 *
 * The CRL file (pki/crl.pem, rewritten by `moat` on every revocation) is read into a
 * sorted array of uppercase hex serials, allocated with mosquitto_malloc so the broker's
 * memory limit applies; lookups are a binary search. The file holds one CRL per CA whose
 * certificates are in use; each must be signed (issuer name and signature) by the root of
 * plugin_opt_ca_file or by an issuing CA of plugin_opt_issuers_file that the root signed,
 * and be current: a nextUpdate in the
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
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "moat/certinfo.h"
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

/* Every certificate of the PEM text (at least one), in order. */
static int read_certs(const char *path, const char *data, size_t len, STACK_OF(X509) * out,
		      struct moat_err *err)
{
	BIO *bio = BIO_new_mem_buf(data, (int)len);
	X509 *cert = NULL;
	int n = 0;
	while (bio && (cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(out, cert)) {
			X509_free(cert);
			BIO_free(bio);
			return moat_err_set(err, MOAT_ENOMEM, "%s: out of memory", path);
		}
		n++;
	}
	BIO_free(bio);
	unsigned long e = ERR_peek_last_error();
	ERR_clear_error();
	if (n == 0 || ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
		return moat_err_set(err, MOAT_EINVAL, "%s: not a list of PEM certificates", path);
	}
	return 0;
}

/* The CAs a CRL may be signed by: the root of ca_path, then each issuing CA of
 * issuers_path (none when it is NULL or missing), each of which must be a CA the root
 * signed. Caller frees *out with sk_X509_pop_free(..., X509_free). */
static int load_signers(const struct mp_state *st, STACK_OF(X509) * *out, struct moat_err *err)
{
	char *data = NULL;
	size_t len = 0;
	STACK_OF(X509) *signers = sk_X509_new_null();
	int rc = signers ? 0 : moat_err_set(err, MOAT_ENOMEM, "out of memory");
	if (rc == 0 &&
	    (rc = moat_fs_read_all(st->ca_path, MOAT_FILE_MAX_BYTES, &data, &len, err)) == 0) {
		rc = read_certs(st->ca_path, data, len, signers, err);
	}
	free(data);
	data = NULL;
	if (rc < 0) {
		goto out;
	}
	X509 *root = sk_X509_value(signers, 0);
	while (sk_X509_num(signers) > 1) {
		X509_free(sk_X509_pop(signers)); /* the root is the first certificate */
	}
	if (!st->issuers_path) {
		goto out;
	}
	rc = moat_fs_read_all(st->issuers_path, MOAT_FILE_MAX_BYTES, &data, &len, err);
	if (rc == MOAT_ENOENT) {
		rc = 0; /* a single-tier deployment */
		goto out;
	}
	if (rc < 0 || (rc = read_certs(st->issuers_path, data, len, signers, err)) < 0) {
		goto out;
	}
	EVP_PKEY *root_key = X509_get0_pubkey(root);
	for (int i = 1; i < sk_X509_num(signers); i++) {
		X509 *c = sk_X509_value(signers, i);
		if (X509_check_issued(root, c) != X509_V_OK || !root_key ||
		    X509_verify(c, root_key) != 1 || X509_check_ca(c) == 0) {
			rc = moat_err_set(err, MOAT_EVERIFY,
					  "%s: certificate %d is not a CA signed by the root of %s",
					  st->issuers_path, i, st->ca_path);
			goto out;
		}
	}
out:
	free(data);
	ERR_clear_error();
	if (rc < 0) {
		sk_X509_pop_free(signers, X509_free);
		signers = NULL;
	}
	*out = signers;
	return rc;
}

/* 0 when crl is signed by one of signers and current at now, else MOAT_EVERIFY with the
 * cause in err. */
static int crl_verify(const struct mp_state *st, STACK_OF(X509) * signers, X509_CRL *crl,
		      time_t now, struct moat_err *err)
{
	bool signed_ok = false;
	for (int i = 0; i < sk_X509_num(signers) && !signed_ok; i++) {
		X509 *ca = sk_X509_value(signers, i);
		EVP_PKEY *key = X509_get0_pubkey(ca);
		signed_ok = X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) ==
				    0 &&
			    key && X509_CRL_verify(crl, key) == 1;
	}
	ERR_clear_error();
	if (!signed_ok) {
		return moat_err_set(err, MOAT_EVERIFY,
				    "%s: not signed by the CA of %s or an issuing CA it signed",
				    st->crl_path, st->ca_path);
	}
	const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
	if (!next || X509_cmp_time(next, &now) <= 0) {
		return moat_err_set(err, MOAT_EVERIFY, "%s: stale (its nextUpdate has passed)",
				    st->crl_path);
	}
	time_t ahead = now + MP_CRL_CLOCK_SKEW_S;
	const ASN1_TIME *last = X509_CRL_get0_lastUpdate(crl);
	if (!last || X509_cmp_time(last, &ahead) >= 0) {
		return moat_err_set(err, MOAT_EVERIFY, "%s: issued in the future (lastUpdate)",
				    st->crl_path);
	}
	return 0;
}

/* Appends crl's serials to *list (uppercase hex, mosquitto_malloc'd). */
static int add_serials(const struct mp_state *st, X509_CRL *crl, char ***list, size_t *count,
		       size_t *cap, struct moat_err *err)
{
	STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
	int n = revs ? sk_X509_REVOKED_num(revs) : 0;
	if (n < 0 || (unsigned)n > MP_CRL_MAX_ENTRIES - *count) {
		return moat_err_set(err, MOAT_EINVAL, "%s: more than %u revoked serials",
				    st->crl_path, MP_CRL_MAX_ENTRIES);
	}
	if (*count + (size_t)n > *cap) {
		size_t ncap = *count + (size_t)n;
		char **grown = mosquitto_realloc(*list, ncap * sizeof(**list));
		if (!grown) {
			return moat_err_set(err, MOAT_ENOMEM, "%s: out of memory", st->crl_path);
		}
		*list = grown;
		*cap = ncap;
	}
	for (int i = 0; i < n; i++) {
		char hex[MP_SERIAL_HEX_MAX];
		const X509_REVOKED *r = sk_X509_REVOKED_value(revs, i);
		if (!moat_plugin_serial_hex(X509_REVOKED_get0_serialNumber(r), hex)) {
			return moat_err_set(err, MOAT_EINVAL, "%s: entry %d: unreadable serial",
					    st->crl_path, i + 1);
		}
		(*list)[*count] = mosquitto_strdup(hex);
		if (!(*list)[*count]) {
			return moat_err_set(err, MOAT_ENOMEM, "%s: out of memory", st->crl_path);
		}
		(*count)++;
	}
	return 0;
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
	STACK_OF(X509) *signers = NULL;
	char **list = NULL;
	size_t count = 0;
	size_t cap = 0;
	int crls = 0;

	rc = moat_fs_read_all(st->crl_path, MOAT_FILE_MAX_BYTES, &data, &len, err);
	if (rc < 0 || (rc = load_signers(st, &signers, err)) < 0) {
		goto out;
	}
	bio = BIO_new_mem_buf(data, (int)len);
	if (!bio) {
		rc = moat_err_ssl(err, MOAT_ENOMEM, "%s", st->crl_path);
		goto out;
	}
	/* one CRL per CA whose certificates are in use (the issuing CA, an issuing CA being
	 * retired, the root): every one must verify, and their serials are all revoked */
	time_t first_next = (time_t)INT64_MAX;
	while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
		crls++;
		if ((rc = crl_verify(st, signers, crl, time(NULL), err)) < 0 ||
		    (rc = add_serials(st, crl, &list, &count, &cap, err)) < 0) {
			goto out;
		}
		time_t next = (time_t)moat_asn1_time_to_unix(X509_CRL_get0_nextUpdate(crl));
		if (next < first_next) {
			first_next = next;
		}
		X509_CRL_free(crl);
		crl = NULL;
	}
	unsigned long e = ERR_peek_last_error();
	ERR_clear_error();
	if (crls == 0 || ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
		rc = moat_err_set(err, MOAT_EINVAL, "%s: not a PEM CRL", st->crl_path);
		goto out;
	}
	if (count > 1) {
		qsort(list, count, sizeof(*list), cmp_strp);
		/* the same serial in two CRLs counts once */
		size_t kept = 1;
		for (size_t i = 1; i < count; i++) {
			if (strcmp(list[i], list[kept - 1]) == 0) {
				mosquitto_free(list[i]);
			} else {
				list[kept++] = list[i];
			}
		}
		count = kept;
	}
	moat_plugin_free_crl(st);
	st->revoked = list;
	st->revoked_count = count;
	st->crl_next_update = first_next;
	st->crl_stale_reported = false;
	list = NULL;
	count = 0;
	rc = 1;
out:
	free_list(list, count);
	X509_CRL_free(crl);
	sk_X509_pop_free(signers, X509_free);
	BIO_free(bio);
	free(data);
	return rc;
}
