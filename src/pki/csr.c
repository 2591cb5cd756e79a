/* csr.c: certificate signing requests from devices and operators (pki.h, "Certificate
 * signing requests"): read as PEM or DER by OpenSSL, the signature checked with the
 * request's own key (proof of possession), the key held to the types moat issues. Nothing
 * of the request but its public key ever reaches a certificate: moat_pki_issue sets the
 * subject and the extensions itself. */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "pki_internal.h"

static bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* true when data starts, after white space, with a PEM boundary; *skip: that space */
static bool looks_pem(const unsigned char *data, size_t len, size_t *skip)
{
	static const char begin[] = "-----BEGIN ";
	size_t i = 0;
	while (i < len && is_space(data[i])) {
		i++;
	}
	*skip = i;
	return len - i >= sizeof(begin) - 1 && memcmp(data + i, begin, sizeof(begin) - 1) == 0;
}

/* OpenSSL's PEM reader wants the boundary at the start of a line */
static X509_REQ *read_pem(const unsigned char *data, size_t len)
{
	BIO *b = BIO_new_mem_buf(data, (int)len);
	X509_REQ *req = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	return req;
}

static X509_REQ *read_der(const unsigned char *data, size_t len)
{
	const unsigned char *p = data;
	X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
	if (req && p != data + len) {
		X509_REQ_free(req); /* trailing bytes: not one request */
		req = NULL;
	}
	return req;
}

/* The subject's one CN into csr->cn when it is a valid identity name. */
static int read_cn(struct moat_csr *csr, struct moat_err *err)
{
	const X509_NAME *name = X509_REQ_get_subject_name(csr->req);
	int at = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (at < 0) {
		return 0;
	}
	if (X509_NAME_get_index_by_NID(name, NID_commonName, at) >= 0) {
		return moat_err_set(err, MOAT_EINVAL, "CSR: subject holds more than one CN");
	}
	const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at));
	csr->has_cn = true;
	int n = s ? ASN1_STRING_length(s) : -1;
	if (n <= 0 || n > MOAT_ID_MAX_LEN) {
		return 0; /* a CN that cannot be an identity: cn stays "" */
	}
	char cn[MOAT_ID_BUF_LEN];
	memcpy(cn, ASN1_STRING_get0_data(s), (size_t)n);
	cn[n] = '\0';
	if (strlen(cn) == (size_t)n && moat_identity_name_ok(cn)) {
		memcpy(csr->cn, cn, (size_t)n + 1);
	}
	return 0;
}

int moat_csr_parse(const unsigned char *data, size_t len, struct moat_csr **out,
		   struct moat_err *err)
{
	*out = NULL;
	if (len == 0) {
		return moat_err_set(err, MOAT_EINVAL, "CSR: empty");
	}
	if (len > MOAT_CSR_MAX_BYTES) {
		return moat_err_set(err, MOAT_EINVAL, "CSR: larger than %d bytes",
				    MOAT_CSR_MAX_BYTES);
	}
	struct moat_csr *csr = calloc(1, sizeof(*csr));
	if (!csr) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	int rc;
	size_t skip = 0;
	bool pem = looks_pem(data, len, &skip);
	csr->req = pem ? read_pem(data + skip, len - skip) : read_der(data, len);
	if (!csr->req) {
		rc = moat_err_ssl(err, MOAT_EINVAL, "CSR: not a %s certificate request",
				  pem ? "PEM" : "DER");
		goto fail;
	}
	if (X509_REQ_get_version(csr->req) != X509_REQ_VERSION_1) {
		rc = moat_err_set(err, MOAT_EINVAL, "CSR: not a version 1 request");
		goto fail;
	}
	csr->key = X509_REQ_get_pubkey(csr->req);
	if (!csr->key) {
		rc = moat_err_ssl(err, MOAT_EINVAL, "CSR: no usable public key");
		goto fail;
	}
	if ((rc = pki_key_check(csr->key, err)) != 0) {
		moat_err_prefix(err, "CSR");
		goto fail;
	}
	/* proof of possession: the request is signed by the key it asks to certify */
	if (X509_REQ_verify(csr->req, csr->key) != 1) {
		rc = moat_err_ssl(err, MOAT_EVERIFY,
				  "CSR: signature does not verify (no proof of possession)");
		goto fail;
	}
	if ((rc = read_cn(csr, err)) != 0) {
		goto fail;
	}
	*out = csr;
	ERR_clear_error();
	return 0;
fail:
	moat_csr_free(csr);
	ERR_clear_error();
	return rc;
}

int moat_csr_check_identity(const struct moat_csr *csr, const char *id, struct moat_err *err)
{
	if (!csr->has_cn) {
		return 0;
	}
	if (csr->cn[0] == '\0') {
		return moat_err_set(err, MOAT_EDENIED, "CSR: its CN is not identity '%s'", id);
	}
	if (strcmp(csr->cn, id) != 0) {
		return moat_err_set(err, MOAT_EDENIED, "CSR: it names '%s', not '%s'", csr->cn, id);
	}
	return 0;
}

bool moat_csr_same_key(const struct moat_csr *csr, X509 *cert)
{
	EVP_PKEY *old = cert ? X509_get0_pubkey(cert) : NULL;
	return old && EVP_PKEY_eq(csr->key, old) == 1;
}

void moat_csr_free(struct moat_csr *csr)
{
	if (!csr) {
		return;
	}
	EVP_PKEY_free(csr->key);
	X509_REQ_free(csr->req);
	free(csr);
}
