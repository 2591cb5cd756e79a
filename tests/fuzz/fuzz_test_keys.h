/* fuzz_test_keys.h: two fixed Ed25519 firmware-signing keys for fuzzing, TEST-ONLY.
 *
 * fuzz_envelope trusts both (threshold 2), and tests/fuzz/gen_envelope_seeds.c signs the
 * committed seeds of tests/fuzz/corpus/fuzz_envelope with them, so the fuzzer starts from
 * envelopes that pass the signature check and explores the policy rules after it (expiry,
 * replay, device type, security floor, "newer", threshold). These private keys are public
 * in the repository: they MUST NOT be trusted by anything but the fuzz harnesses.
 */
#ifndef MOAT_FUZZ_TEST_KEYS_H
#define MOAT_FUZZ_TEST_KEYS_H

#include <stdlib.h>

#include <openssl/evp.h>

#define FUZZ_TEST_KEY_COUNT 2
#define FUZZ_TEST_KEY_BYTES 32

static const unsigned char fuzz_test_keys[FUZZ_TEST_KEY_COUNT][FUZZ_TEST_KEY_BYTES] = {
	{0x86, 0x8b, 0x96, 0xbc, 0x0d, 0xc6, 0x53, 0xce, 0xee, 0xa9, 0xb5,
	 0xca, 0x5f, 0x23, 0xbc, 0x0c, 0x70, 0x4d, 0xd4, 0x5a, 0x4b, 0xf5,
	 0x78, 0x36, 0xf8, 0x33, 0x03, 0x3d, 0x8c, 0xee, 0x87, 0xba},
	{0x31, 0x5d, 0x55, 0xe6, 0x10, 0xae, 0xe7, 0xf8, 0xe8, 0xbe, 0xe6,
	 0x9a, 0xf1, 0x3c, 0x24, 0x14, 0xbe, 0x5b, 0x17, 0xd9, 0x5a, 0x8b,
	 0x4e, 0xd4, 0xda, 0xa3, 0xbe, 0x02, 0xd5, 0x96, 0x35, 0x95},
};

/* The i-th test key (private); aborts on failure. Caller frees. */
static inline EVP_PKEY *fuzz_test_key(size_t i)
{
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, fuzz_test_keys[i],
						   FUZZ_TEST_KEY_BYTES);
	if (!k) {
		abort();
	}
	return k;
}

#endif
