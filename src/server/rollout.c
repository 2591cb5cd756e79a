/* rollout.c: the rollout bucket, the pure function that decides which devices a
 * percentage rollout reaches (server.h), shared by moatd and the CLI. The update events
 * devices report live in src/core/update_event.c.
 */
#include <string.h>

#include <openssl/evp.h>

#include "moat/server.h"

unsigned moat_rollout_bucket(const uint8_t sha256[MOAT_SHA256_BYTES], const char *device_id)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	/* A failure of SHA-256 itself cannot be reported through this signature; bucket 99
	 * keeps the device out of every partial rollout rather than in it. */
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, sha256, MOAT_SHA256_BYTES) != 1 ||
	    EVP_DigestUpdate(ctx, device_id, strlen(device_id)) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &md_len) != 1 || md_len < 8) {
		EVP_MD_CTX_free(ctx);
		return MOAT_ROLLOUT_PERCENT_MAX - 1;
	}
	EVP_MD_CTX_free(ctx);
	uint64_t v = 0;
	for (int i = 0; i < 8; i++) {
		v = (v << 8) | md[i];
	}
	return (unsigned)(v % MOAT_ROLLOUT_PERCENT_MAX);
}
