/* pki_internal.h: helpers shared by the files of src/pki; not part of the contract.
 * Calls between the files of src/pki run one way:
 *   ca.c -> issue.c, keystore.c;  issue.c -> keys.c, p256.c;
 *   ca.c, issue.c, crl.c, p256.c, keystore.c -> encode.c (which calls none of them);
 *   export.c and crlset.c call none of them. */
#ifndef MOAT_PKI_INTERNAL_H
#define MOAT_PKI_INTERNAL_H

#include <openssl/x509.h>

#include "moat/pki.h"

struct pki_ext {
	int nid;
	const char *value;
};

/* Version 3, serial, issuer/subject names, validity, public key. */
int pki_cert_basics(X509 *cert, const uint8_t serial[MOAT_SERIAL_BYTES], X509_NAME *issuer,
		    X509_NAME *subject, EVP_PKEY *pubkey, int64_t not_before, int64_t not_after,
		    struct moat_err *err);
/* Adds extensions in order, in the context issuer → cert. */
int pki_add_exts(X509 *issuer, X509 *cert, const struct pki_ext *exts, size_t count,
		 struct moat_err *err);
/* Unencrypted PKCS#8 PEM of key (issue.c); caller frees (and wipes) *out_pem. */
int pki_key_pem(EVP_PKEY *key, char **out_pem, size_t *out_len, struct moat_err *err);
/* MOAT_EINVAL unless key is of a type moat issues (P-256, RSA of 2048 bits or more). */
int pki_key_check(EVP_PKEY *key, struct moat_err *err);

/* encode.c, which uses nothing else of src/pki: */
/* Moves a memory BIO's contents into a NUL-terminated malloc'd string. */
int pki_bio_take(BIO *bio, char **out, size_t *out_len, struct moat_err *err);
int pki_cert_pem(X509 *cert, char **out_pem, size_t *out_len, struct moat_err *err);

/* P-256 fast path (p256.c), for keys where moat_key_is_p256 holds: */
/* Sets cert's SubjectPublicKeyInfo from a P-256 key without an encoder. */
int pki_p256_set_pubkey(X509 *cert, EVP_PKEY *key, struct moat_err *err);
/* Unencrypted PKCS#8 PEM of a P-256 private key without an encoder; caller frees. */
int pki_p256_key_pem(EVP_PKEY *key, char **out_pem, size_t *out_len, struct moat_err *err);

#endif
