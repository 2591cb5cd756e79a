/* certinfo.h: what a certificate says (CN, OU, serial, validity), read from memory or a
 * PEM file (src/util/certinfo.c). Read-only: devices use it to check their own certificate
 * before connecting, the operator's tools to list and renew. Issuing is moat/pki.h.
 */
#ifndef MOAT_CERTINFO_H
#define MOAT_CERTINFO_H

#include <stdint.h>

#include <openssl/types.h>

#include "moat/err.h"

#define MOAT_SERIAL_BYTES \
	16 /* 126 random bits; the first byte is 01xxxxxx: positive, fixed length */
#define MOAT_SERIAL_HEX_LEN (MOAT_SERIAL_BYTES * 2 + 1)
#define MOAT_CERT_FILE_MAX_BYTES (1024 * 1024)

struct moat_cert_info {
	char cn[256];
	char ou[64];
	char serial_hex[MOAT_SERIAL_HEX_LEN * 2]; /* lower-case hex; room for foreign serials */
	int64_t not_before;
	int64_t not_after;
};

/* Reads the first PEM certificate of path (at most MOAT_CERT_FILE_MAX_BYTES). A missing file
 * is MOAT_ENOENT; anything but an unencrypted PEM certificate is MOAT_EINVAL. */
MOAT_MUST_CHECK int moat_cert_info_file(const char *path, struct moat_cert_info *out,
					struct moat_err *err);
MOAT_MUST_CHECK int moat_cert_info(X509 *cert, struct moat_cert_info *out, struct moat_err *err);

/* Seconds since the epoch of an ASN.1 time; 0 when t is NULL or unreadable. */
int64_t moat_asn1_time_to_unix(const ASN1_TIME *t);

/* pem_password_cb that supplies no passphrase: passed wherever moat reads a PEM that must
 * not be encrypted, because a NULL callback makes OpenSSL prompt on the terminal. */
int moat_pem_no_passphrase(char *buf, int size, int rwflag, void *u);

#endif
