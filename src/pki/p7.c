/* p7.c: what EST (RFC 7030) answers with, encoded by OpenSSL: a certs-only PKCS#7
 * (a degenerate SignedData: certificates, no content, no signers; §4.1.3, §4.2.3) and the
 * CSR attributes moat asks for (§4.5.2). */
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include "pki_internal.h"

/* i2d output into a malloc'd buffer the caller frees (OpenSSL's allocator stays inside). */
static int take_der(unsigned char *der, int n, unsigned char **out, size_t *out_len,
		    struct moat_err *err)
{
	if (n <= 0 || !der) {
		return moat_err_ssl(err, MOAT_ECRYPTO, "DER encoding");
	}
	*out = malloc((size_t)n);
	if (!*out) {
		OPENSSL_free(der);
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	memcpy(*out, der, (size_t)n);
	*out_len = (size_t)n;
	OPENSSL_free(der);
	return 0;
}

/* An empty certs-only SignedData: encapContentInfo of type data, eContent absent. */
static PKCS7 *p7_new(void)
{
	PKCS7 *p7 = PKCS7_new();
	if (!p7 || !PKCS7_set_type(p7, NID_pkcs7_signed)) {
		PKCS7_free(p7);
		return NULL;
	}
	ASN1_OBJECT_free(p7->d.sign->contents->type);
	p7->d.sign->contents->type = OBJ_nid2obj(NID_pkcs7_data);
	return p7;
}

int moat_pki_p7_of(X509 *const *certs, size_t n, unsigned char **out_der, size_t *out_len,
		   struct moat_err *err)
{
	*out_der = NULL;
	*out_len = 0;
	if (n == 0) {
		return moat_err_set(err, MOAT_EINVAL, "certificates: none");
	}
	PKCS7 *p7 = p7_new();
	if (!p7) {
		return moat_err_ssl(err, MOAT_ECRYPTO, "PKCS#7");
	}
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (!certs[i] || !PKCS7_add_certificate(p7, certs[i])) { /* takes a reference */
			rc = moat_err_ssl(err, MOAT_ECRYPTO, "PKCS#7: adding a certificate");
		}
	}
	if (rc == 0) {
		unsigned char *der = NULL;
		int len = i2d_PKCS7(p7, &der);
		rc = take_der(der, len, out_der, out_len, err);
	}
	PKCS7_free(p7);
	return rc;
}

int moat_pki_p7_certs(const char *pem, size_t len, unsigned char **out_der, size_t *out_len,
		      struct moat_err *err)
{
	*out_der = NULL;
	*out_len = 0;
	if (len > MOAT_CERT_FILE_MAX_BYTES) {
		return moat_err_set(err, MOAT_EINVAL, "certificates: too large");
	}
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	STACK_OF(X509) *certs = sk_X509_new_null();
	int rc = 0;
	if (!b || !certs) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	X509 *cert;
	while ((cert = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(certs, cert)) {
			X509_free(cert);
			rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
			goto out;
		}
	}
	ERR_clear_error(); /* the end of the PEM text */
	int count = sk_X509_num(certs);
	if (count == 0) {
		rc = moat_err_set(err, MOAT_EINVAL, "certificates: no PEM certificate");
		goto out;
	}
	X509 **list = malloc((size_t)count * sizeof(*list));
	if (!list) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < count; i++) {
		list[i] = sk_X509_value(certs, i);
	}
	rc = moat_pki_p7_of(list, (size_t)count, out_der, out_len, err);
	free(list);
out:
	sk_X509_pop_free(certs, X509_free);
	BIO_free(b);
	return rc;
}

/* DER of an ASN1_TYPE list as a SEQUENCE (set: a SET) wrapped into a new ASN1_TYPE. */
static ASN1_TYPE *wrap(STACK_OF(ASN1_TYPE) * items, bool set)
{
	unsigned char *der = NULL;
	int n = set ? i2d_ASN1_SET_ANY(items, &der) : i2d_ASN1_SEQUENCE_ANY(items, &der);
	ASN1_STRING *s = n > 0 ? ASN1_STRING_new() : NULL;
	ASN1_TYPE *t = s ? ASN1_TYPE_new() : NULL;
	if (!t || !ASN1_STRING_set(s, der, n)) {
		ASN1_TYPE_free(t);
		ASN1_STRING_free(s);
		OPENSSL_free(der);
		return NULL;
	}
	OPENSSL_free(der);
	ASN1_TYPE_set(t, set ? V_ASN1_SET : V_ASN1_SEQUENCE, s); /* carries its whole DER */
	return t;
}

static ASN1_TYPE *oid(int nid)
{
	ASN1_TYPE *t = ASN1_TYPE_new();
	ASN1_OBJECT *o = OBJ_nid2obj(nid);
	if (!t || !o) {
		ASN1_TYPE_free(t);
		return NULL;
	}
	ASN1_TYPE_set(t, V_ASN1_OBJECT, o);
	return t;
}

/* Pushes t onto s; false (and t freed) when either is missing or the push fails. */
static bool push(STACK_OF(ASN1_TYPE) * s, ASN1_TYPE *t)
{
	if (!s || !t || !sk_ASN1_TYPE_push(s, t)) {
		ASN1_TYPE_free(t);
		return false;
	}
	return true;
}

int moat_pki_csrattrs(unsigned char **out_der, size_t *out_len, struct moat_err *err)
{
	/* CsrAttrs ::= SEQUENCE OF AttrOrOID:
	 *   ecdsa-with-SHA256,
	 *   Attribute { id-ecPublicKey, SET { prime256v1 } }  (RFC 7030 §4.5.2's form) */
	*out_der = NULL;
	*out_len = 0;
	STACK_OF(ASN1_TYPE) *curve = sk_ASN1_TYPE_new_null();
	STACK_OF(ASN1_TYPE) *attr = sk_ASN1_TYPE_new_null();
	STACK_OF(ASN1_TYPE) *all = sk_ASN1_TYPE_new_null();
	int rc = MOAT_ECRYPTO;
	bool ok = push(curve, oid(NID_X9_62_prime256v1)) &&
		  push(attr, oid(NID_X9_62_id_ecPublicKey)) && push(attr, wrap(curve, true)) &&
		  push(all, oid(NID_ecdsa_with_SHA256)) && push(all, wrap(attr, false));
	if (!ok) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "CSR attributes");
	} else {
		unsigned char *der = NULL;
		int n = i2d_ASN1_SEQUENCE_ANY(all, &der);
		rc = take_der(der, n, out_der, out_len, err);
	}
	sk_ASN1_TYPE_pop_free(curve, ASN1_TYPE_free);
	sk_ASN1_TYPE_pop_free(attr, ASN1_TYPE_free);
	sk_ASN1_TYPE_pop_free(all, ASN1_TYPE_free);
	return rc;
}
