/* certinfo.c: reading back what a certificate says (CN, OU, serial, validity). */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "moat/certinfo.h"
#include "moat/fsutil.h"

int64_t moat_asn1_time_to_unix(const ASN1_TIME *t)
{
	struct tm tm;
	if (!t || !ASN1_TIME_to_tm(t, &tm)) {
		return 0;
	}
	return (int64_t)timegm(&tm);
}

int moat_pem_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

int moat_cert_info(X509 *cert, struct moat_cert_info *out, struct moat_err *err)
{
	memset(out, 0, sizeof(*out));
	X509_NAME *subj = X509_get_subject_name(cert);
	if (X509_NAME_get_text_by_NID(subj, NID_commonName, out->cn, sizeof(out->cn)) < 0) {
		out->cn[0] = '\0';
	}
	if (X509_NAME_get_text_by_NID(subj, NID_organizationalUnitName, out->ou, sizeof(out->ou)) <
	    0) {
		out->ou[0] = '\0';
	}
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	BN_free(bn);
	if (!hex) {
		return moat_err_ssl(err, MOAT_ECRYPTO, "certificate serial");
	}
	size_t i = 0;
	for (; hex[i] && i + 1 < sizeof(out->serial_hex); i++) {
		char c = hex[i];
		out->serial_hex[i] = (char)(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
	}
	out->serial_hex[i] = '\0';
	OPENSSL_free(hex);
	out->not_before = moat_asn1_time_to_unix(X509_get0_notBefore(cert));
	out->not_after = moat_asn1_time_to_unix(X509_get0_notAfter(cert));
	return 0;
}

int moat_cert_info_file(const char *path, struct moat_cert_info *out, struct moat_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc = moat_fs_read_all(path, MOAT_CERT_FILE_MAX_BYTES, &text, &len, err);
	if (rc != 0) {
		return rc;
	}
	BIO *b = BIO_new_mem_buf(text, (int)len);
	X509 *cert = b ? PEM_read_bio_X509(b, NULL, moat_pem_no_passphrase, NULL) : NULL;
	if (!cert) {
		rc = moat_err_ssl(err, MOAT_EINVAL, "%s: not a PEM certificate", path);
	} else {
		rc = moat_cert_info(cert, out, err);
	}
	X509_free(cert);
	BIO_free(b);
	free(text);
	return rc;
}
