/* bench_anchor.c: the anchor for bench/mcu: what a typical MCU OTA check does with the same
 * toolchain and mbedTLS: SHA-256 over the 64 KiB image, then mbedtls_pk_verify of an
 * RSA-2048 PKCS#1 v1.5 signature over that hash (no manifest, no policy). */
#include <stdlib.h>

#include <mbedtls/memory_buffer_alloc.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>

#include "bench_common.h"

#if MBEDTLS_VERSION_MAJOR < 3
#define mbedtls_sha256_starts mbedtls_sha256_starts_ret
#define mbedtls_sha256_update mbedtls_sha256_update_ret
#define mbedtls_sha256_finish mbedtls_sha256_finish_ret
#endif

static unsigned char arena[10 * 1024];
static unsigned char key[600];
static unsigned char sig[512];
static uint8_t block[BENCH_BLOCK];
static unsigned char digest[32];
static int rc;

static __attribute__((noinline)) void hash(void)
{
	mbedtls_sha256_context c;
	mbedtls_sha256_init(&c);
	mbedtls_sha256_starts(&c, 0);
	for (int i = 0; i < BENCH_BLOCKS; i++) {
		mbedtls_sha256_update(&c, block, sizeof(block));
	}
	mbedtls_sha256_finish(&c, digest);
	mbedtls_sha256_free(&c);
}

static __attribute__((noinline)) void verify(long k, long s)
{
	mbedtls_pk_context pk;
	mbedtls_pk_init(&pk);
	rc = mbedtls_pk_parse_public_key(&pk, key, (size_t)k);
	if (rc == 0) {
		rc = mbedtls_pk_verify(&pk, MBEDTLS_MD_SHA256, digest, sizeof(digest), sig,
				       (size_t)s);
	}
	mbedtls_pk_free(&pk);
}

int main(void)
{
	mbedtls_memory_buffer_alloc_init(arena, sizeof(arena));
	long k = bench_read("rsa.der", key, sizeof(key));
	long s = bench_read("rsa.sig", sig, sizeof(sig));
	if (k < 0 || s < 0) {
		printf("bench_anchor: rsa.der or rsa.sig missing\n");
		exit(1);
	}
	bench_block(block);
	uintptr_t top = bench_paint();
	uint64_t a = bench_insns();
	hash();
	uint64_t b = bench_insns();
	unsigned stack1 = bench_stack_peak(top);
	top = bench_paint();
	uint64_t c = bench_insns();
	verify(k, s);
	uint64_t d = bench_insns();
	unsigned stack2 = bench_stack_peak(top);
	printf("anchor_hash_64k insns=%llu stack=%u\n", (unsigned long long)(b - a), stack1);
	printf("anchor_rsa_verify insns=%llu stack=%u rc=%d\n", (unsigned long long)(d - c), stack2,
	       rc);
	fflush(stdout);
	exit(rc == 0 ? 0 : 1);
}
