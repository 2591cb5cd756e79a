/* port_mbedtls.c: moat-device's crypto port on mbedTLS, written against the 3.x API that
 * ESP-IDF 5 ships; mbedtls_compat.h maps it onto 2.28 (Debian 12's libmbedtls-dev and the
 * `apt-get source mbedtls` the MCU builds use); tests/mcu builds it against 3.6 too.
 * SHA-256 state lives in the caller's storage; keys are DER SubjectPublicKeyInfo of ECDSA P-256,
 * read with the ASN.1 module (no pk module). mbedTLS's bignums allocate through mbedtls_calloc: on
 * an MCU configure MBEDTLS_MEMORY_BUFFER_ALLOC_C with a static arena (the MCU tests do), so the
 * heap stays unused.
 */
#include <string.h>

#include "mbedtls_compat.h"
#include "moat_device_port.h"

typedef char state_fits[sizeof(mbedtls_sha256_context) <= MDEV_PORT_SHA256_STATE_BYTES ? 1 : -1];

int mdev_port_sha256_start(void *state)
{
	mbedtls_sha256_context *c = state;
	mbedtls_sha256_init(c);
	if (mbedtls_sha256_starts(c, 0) != 0) {
		mbedtls_sha256_free(c);
		return -1;
	}
	return 0;
}

int mdev_port_sha256_update(void *state, const void *data, size_t len)
{
	return mbedtls_sha256_update(state, data, len) == 0 ? 0 : -1;
}

int mdev_port_sha256_finish(void *state, uint8_t out[32])
{
	int rc = mbedtls_sha256_finish(state, out);
	mbedtls_sha256_free(state);
	return rc == 0 ? 0 : -1;
}

void mdev_port_sha256_abort(void *state)
{
	mbedtls_sha256_free(state);
}

/* SubjectPublicKeyInfo ::= SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 },
 * BIT STRING point }: the point's bytes, or NULL. */
static const unsigned char *spki_point(const unsigned char *der, size_t len, size_t *plen)
{
	static const unsigned char ec_oid[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
	static const unsigned char p256_oid[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
	unsigned char *p = (unsigned char *)der;
	const unsigned char *end = der + len;
	size_t n;
	mbedtls_asn1_buf alg;
	mbedtls_asn1_buf params;
	mbedtls_asn1_bitstring bits;
	if (mbedtls_asn1_get_tag(&p, end, &n, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) !=
		    0 ||
	    p + n != end || mbedtls_asn1_get_alg(&p, end, &alg, &params) != 0 ||
	    alg.len != sizeof(ec_oid) || memcmp(alg.p, ec_oid, sizeof(ec_oid)) != 0 ||
	    params.tag != MBEDTLS_ASN1_OID || params.len != sizeof(p256_oid) ||
	    memcmp(params.p, p256_oid, sizeof(p256_oid)) != 0 ||
	    mbedtls_asn1_get_bitstring(&p, end, &bits) != 0 || bits.unused_bits != 0 || p != end) {
		return NULL;
	}
	*plen = bits.len;
	return bits.p;
}

bool mdev_port_verify(const void *key, size_t key_len, const uint8_t *msg, size_t msg_len,
		      const uint8_t *sig, size_t sig_len)
{
	unsigned char hash[32];
	size_t plen = 0;
	const unsigned char *point = spki_point(key, key_len, &plen);
	mbedtls_ecp_group grp;
	mbedtls_ecp_point q;
	mbedtls_mpi r;
	mbedtls_mpi s;
	bool ok = false;
	if (point == NULL || mbedtls_sha256(msg, msg_len, hash, 0) != 0) {
		return false;
	}
	mbedtls_ecp_group_init(&grp);
	mbedtls_ecp_point_init(&q);
	mbedtls_mpi_init(&r);
	mbedtls_mpi_init(&s);
	unsigned char *p = (unsigned char *)sig;
	const unsigned char *end = sig + sig_len;
	size_t n;
	if (mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) == 0 &&
	    mbedtls_ecp_point_read_binary(&grp, &q, point, plen) == 0 &&
	    mbedtls_ecp_check_pubkey(&grp, &q) == 0 &&
	    mbedtls_asn1_get_tag(&p, end, &n, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) ==
		    0 &&
	    p + n == end && mbedtls_asn1_get_mpi(&p, end, &r) == 0 &&
	    mbedtls_asn1_get_mpi(&p, end, &s) == 0 && p == end) {
		ok = mbedtls_ecdsa_verify(&grp, hash, sizeof(hash), &q, &r, &s) == 0;
	}
	mbedtls_mpi_free(&s);
	mbedtls_mpi_free(&r);
	mbedtls_ecp_point_free(&q);
	mbedtls_ecp_group_free(&grp);
	return ok;
}

bool mdev_port_equal(const void *a, const void *b, size_t len)
{
	const unsigned char *x = a;
	const unsigned char *y = b;
	unsigned char d = 0;
	for (size_t i = 0; i < len; i++) {
		d |= (unsigned char)(x[i] ^ y[i]);
	}
	return d == 0;
}
