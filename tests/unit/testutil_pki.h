/* testutil_pki.h: certificate fixtures for the unit tests that link moat_pki
 * (tests/unit/testutil_pki.c; tests/CMakeLists.txt adds it to those tests only). Like
 * testutil.h's, each fixture fails the running test on any error. Include after <cmocka.h>. */
#ifndef MOAT_TESTUTIL_PKI_H
#define MOAT_TESTUTIL_PKI_H

#include <stdint.h>

#include "moat/pki.h"

/* Issues out, a client certificate for cn with OU role and a new P-256 key, signed by ca,
 * valid from not_before to not_after, with the given serial. The caller frees out with
 * moat_pki_issued_free. */
void tu_pki_issue_client(struct moat_ca *ca, const char *cn, enum moat_role role,
			 int64_t not_before, int64_t not_after,
			 const uint8_t serial[MOAT_SERIAL_BYTES], struct moat_issued *out);

/* DER of a CSR for key's public key, signed by signer (key itself for a valid proof of
 * possession), subject O=evil corp and CN=subject_cn (no CN when NULL); with ext_conf (a
 * subjectAltName value such as "DNS:evil.example") it also asks for CA:TRUE and
 * serverAuth. The caller frees the result; *out_len its length. */
unsigned char *tu_csr_der(EVP_PKEY *key, EVP_PKEY *signer, const char *subject_cn,
			  const char *ext_conf, size_t *out_len);

#endif
