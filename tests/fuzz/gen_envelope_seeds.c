/* gen_envelope_seeds.c: writes the signed seeds of tests/fuzz/corpus/fuzz_envelope, one per
 * rule of moat_fw_decide that comes after the signature check, signed with the fixed
 * TEST-ONLY keys of fuzz_test_keys.h (which fuzz_envelope trusts, threshold 2).
 *
 * Not built by default; regenerate (Ed25519 is deterministic, so the output is stable) with
 *   cc -Iinclude -Itests/fuzz tests/fuzz/gen_envelope_seeds.c build/libmoat_core.a \
 *      build/libmoat_util.a -lcjson -lcrypto -o /tmp/gen && /tmp/gen
 * tests/fuzz/corpus/fuzz_envelope The harness picks the purpose from the input's length (odd:
 * boot), so each seed is written padded to an even length (install: every rule) and an odd one
 * (boot).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/manifest.h"

#include "fuzz_test_keys.h"

struct seed {
	const char *name;
	const char *device_type;
	const char *version;
	long long security_version;
	long long issued_at;
	long long expires_at;
	int signers; /* 1: first key only (below the threshold), 2: both */
};

/* The harness's policy: temp_sensor, running 1.0.0, floor 1, now 1800000000, last issued
 * 1700000000. */
static const struct seed seeds[] = {
	{"accept", "temp_sensor", "1.1.0", 1, 1750000000, 1900000000, 2},
	{"threshold_one_signer", "temp_sensor", "1.1.0", 1, 1750000000, 1900000000, 1},
	{"wrong_type", "camera", "1.1.0", 1, 1750000000, 1900000000, 2},
	{"downgrade_floor", "temp_sensor", "1.1.0", 0, 1750000000, 1900000000, 2},
	{"rollback_replayed", "temp_sensor", "1.1.0", 1, 1690000000, 1900000000, 2},
	{"expired", "temp_sensor", "1.1.0", 1, 1750000000, 1800000000, 2},
	{"not_newer_same", "temp_sensor", "1.0.0", 1, 1750000000, 1900000000, 2},
	{"not_newer_prerelease", "temp_sensor", "1.0.0-rc.1", 1, 1750000000, 1900000000, 2},
	{"accept_floor_exact", "temp_sensor", "2.0.0", 1, 1700000000, 1800000001, 2},
};

static int write_seed(const char *dir, const char *name, const char *suffix, const char *json,
		      size_t len, int pad)
{
	char path[512];
	int n = snprintf(path, sizeof(path), "%s/signed_%s%s.json", dir, name, suffix);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		return -1;
	}
	FILE *f = fopen(path, "wb");
	if (!f) {
		return -1;
	}
	size_t w = fwrite(json, 1, len, f);
	if (pad) {
		w += fwrite("\n", 1, 1, f) == 1;
	}
	return fclose(f) == 0 && w == len + (size_t)pad ? 0 : -1;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s corpus-dir\n", argv[0]);
		return 2;
	}
	EVP_PKEY *keys[FUZZ_TEST_KEY_COUNT];
	for (size_t i = 0; i < FUZZ_TEST_KEY_COUNT; i++) {
		keys[i] = fuzz_test_key(i);
	}
	for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
		struct moat_manifest m = {.security_version = seeds[s].security_version,
					  .size = 2048,
					  .issued_at = seeds[s].issued_at,
					  .expires_at = seeds[s].expires_at};
		snprintf(m.device_type, sizeof(m.device_type), "%s", seeds[s].device_type);
		snprintf(m.version, sizeof(m.version), "%s", seeds[s].version);
		memset(m.sha256, 0xab, sizeof(m.sha256));
		struct moat_envelope env;
		struct moat_err err;
		char *json = NULL;
		size_t len = 0;
		if (moat_envelope_init(&env, &m, &err) != 0) {
			fprintf(stderr, "%s: %s\n", seeds[s].name, err.msg);
			return 1;
		}
		for (int k = 0; k < seeds[s].signers; k++) {
			if (moat_envelope_sign(&env, keys[k], &err) != 0) {
				fprintf(stderr, "%s: %s\n", seeds[s].name, err.msg);
				return 1;
			}
		}
		if (moat_envelope_serialize(&env, &json, &len, &err) != 0) {
			fprintf(stderr, "%s: %s\n", seeds[s].name, err.msg);
			return 1;
		}
		/* even length: install; odd: boot */
		int pad_install = len % 2 != 0;
		if (write_seed(argv[1], seeds[s].name, "", json, len, pad_install) != 0 ||
		    write_seed(argv[1], seeds[s].name, "_boot", json, len, !pad_install) != 0) {
			fprintf(stderr, "%s: cannot write\n", seeds[s].name);
			return 1;
		}
		free(json);
	}
	for (size_t i = 0; i < FUZZ_TEST_KEY_COUNT; i++) {
		EVP_PKEY_free(keys[i]);
	}
	return 0;
}
