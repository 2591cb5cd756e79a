/* moat_device_port.h: the crypto port moat-device calls (one implementation is linked:
 * port_openssl.c on Linux, port_mbedtls.c on MCUs and ESP-IDF). Small on purpose: a
 * streaming SHA-256 whose state lives in caller-owned storage, and a signature check.
 */
#ifndef MOAT_DEVICE_PORT_H
#define MOAT_DEVICE_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MDEV_PORT_SHA256_STATE_BYTES 128

/* state: MDEV_PORT_SHA256_STATE_BYTES, aligned for uint64_t and pointers. 0 or -1.
 * After start succeeds, finish or abort must follow (the OpenSSL port holds an
 * EVP_MD_CTX; the mbedTLS port keeps everything in state). */
int mdev_port_sha256_start(void *state);
int mdev_port_sha256_update(void *state, const void *data, size_t len);
int mdev_port_sha256_finish(void *state, uint8_t out[32]);
void mdev_port_sha256_abort(void *state);

/* true when sig (DER ECDSA for P-256) by key (the port's key form: DER
 * SubjectPublicKeyInfo for both shipped ports) verifies over msg. The OpenSSL port also
 * takes moat's Ed25519 and RSA-PSS (salt 32) firmware keys; the mbedTLS port P-256 only. */
bool mdev_port_verify(const void *key, size_t key_len, const uint8_t *msg, size_t msg_len,
		      const uint8_t *sig, size_t sig_len);

/* Constant-time comparison (for digests). */
bool mdev_port_equal(const void *a, const void *b, size_t len);

#ifdef __cplusplus
}
#endif
#endif
