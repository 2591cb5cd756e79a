/* encode.c: PEM out of OpenSSL's memory BIOs, for every file of src/pki that writes one. It
 * calls nothing else in src/pki, so the files above it (keys, p256, keystore, issue, ca, crl)
 * depend on it one way. */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include "pki_internal.h"

int pki_bio_take(BIO *bio, char **out, size_t *out_len, struct moat_err *err)
{
	char *data = NULL;
	long n = BIO_get_mem_data(bio, &data);
	if (n < 0) {
		return moat_err_set(err, MOAT_ECRYPTO, "empty encoding");
	}
	char *copy = malloc((size_t)n + 1);
	if (!copy) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	memcpy(copy, data, (size_t)n);
	copy[n] = '\0';
	*out = copy;
	if (out_len) {
		*out_len = (size_t)n;
	}
	return 0;
}

int pki_cert_pem(X509 *cert, char **out_pem, size_t *out_len, struct moat_err *err)
{
	BIO *b = BIO_new(BIO_s_mem());
	int rc = MOAT_ECRYPTO;
	if (!b || !PEM_write_bio_X509(b, cert)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "encoding a certificate");
	} else {
		rc = pki_bio_take(b, out_pem, out_len, err);
	}
	BIO_free(b);
	return rc;
}
