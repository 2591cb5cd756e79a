/* bench_verify.c: moat-device's verifier on an MCU (bench/mcu): mdev_fw_decide on an
 * envelope made by `moat fw sign` (one ECDSA P-256 signature), then the 64 KiB image
 * streamed through mdev_fw_stream. Prints instructions and peak stack of each step. */
#include <stdlib.h>

#include <mbedtls/memory_buffer_alloc.h>

#include "bench_common.h"
#include "moat_device.h"

static unsigned char arena[10 * 1024];
static unsigned char env[4096];
static unsigned char key[128];
static struct mdev_fw_work work;
static uint8_t block[BENCH_BLOCK];
static struct mdev_manifest m;
static struct mdev_trusted_key tk;
static enum mdev_fw_verdict v1, v2;

static __attribute__((noinline)) void decide(long n)
{
	struct mdev_trust t = {&tk, 1, 1};
	struct mdev_fw_policy p = {MDEV_FW_FOR_INSTALL, "mcu_sensor", "1.0.0", 0, 0, 0};
	struct mdev_fw_decision d;
	v1 = mdev_fw_decide(env, (size_t)n, &t, &p, &work, &m, &d);
	if (v1 != MDEV_FW_ACCEPT) {
		printf("decide: %s\n", d.msg);
	}
}

static __attribute__((noinline)) void hash(void)
{
	struct mdev_fw_stream s;
	struct mdev_fw_decision d;
	mdev_fw_stream_init(&s, &m);
	for (int i = 0; i < BENCH_BLOCKS; i++) {
		mdev_fw_stream_update(&s, block, sizeof(block));
	}
	v2 = mdev_fw_stream_decide(&s, &d);
	mdev_fw_stream_abort(&s);
}

int main(void)
{
	mbedtls_memory_buffer_alloc_init(arena, sizeof(arena));
	long n = bench_read("env.json", env, sizeof(env));
	long k = bench_read("key.der", key, sizeof(key));
	if (n < 0 || k < 0) {
		printf("bench_verify: env.json or key.der missing\n");
		exit(1);
	}
	tk.key = key;
	tk.key_len = (size_t)k;
	mdev_keyid(key, (size_t)k, tk.keyid);
	bench_block(block);
	uintptr_t top = bench_paint();
	uint64_t a = bench_insns();
	decide(n);
	uint64_t b = bench_insns();
	unsigned stack1 = bench_stack_peak(top);
	top = bench_paint();
	uint64_t c = bench_insns();
	hash();
	uint64_t d = bench_insns();
	unsigned stack2 = bench_stack_peak(top);
	printf("verify_envelope insns=%llu stack=%u verdict=%s\n", (unsigned long long)(b - a),
	       stack1, mdev_fw_verdict_name(v1));
	printf("hash_64k insns=%llu stack=%u verdict=%s\n", (unsigned long long)(d - c), stack2,
	       mdev_fw_verdict_name(v2));
	fflush(stdout);
	exit(v1 == MDEV_FW_ACCEPT && v2 == MDEV_FW_ACCEPT ? 0 : 1);
}
