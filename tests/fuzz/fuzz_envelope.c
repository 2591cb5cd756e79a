/* fuzz_envelope.c: firmware envelopes as a device receives them. Runs the whole decision
 * (moat_fw_decide) against a fixed trust set, and the envelope parser plus a
 * serialize/parse round trip, which must reproduce the same envelope.
 *
 * The trust set is the two fixed test keys of fuzz_test_keys.h (threshold 2), and the
 * committed seeds are signed with them (tests/fuzz/gen_envelope_seeds.c), so inputs get past
 * the signature check and the policy rules after it are fuzzed too. Whatever is accepted
 * must satisfy the policy: the device's type, the security floor, and for an install an
 * unexpired, not replayed, newer manifest. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "moat/manifest.h"

#include "fuzz_test_keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct moat_fw_trust trust;
static int trust_ready;

static void init_trust(void)
{
	if (trust_ready) {
		return;
	}
	for (size_t i = 0; i < FUZZ_TEST_KEY_COUNT; i++) {
		EVP_PKEY *k = fuzz_test_key(i);
		if (moat_fw_trust_add(&trust, k, NULL) != 0) {
			abort();
		}
		EVP_PKEY_free(k);
	}
	trust.threshold = FUZZ_TEST_KEY_COUNT;
	trust_ready = 1;
}

static int newer(const char *version, const char *running)
{
	int cmp = 0;
	return moat_semver_compare(version, running, &cmp, NULL) == 0 && cmp > 0;
}

/* An accepted envelope carries signatures by at least threshold distinct trusted keys. */
static void check_signers(const struct moat_envelope *env)
{
	size_t distinct = 0;
	for (size_t k = 0; k < trust.count; k++) {
		for (size_t i = 0; i < env->sig_count; i++) {
			if (strcmp(env->sigs[i].keyid, trust.keys[k].keyid) == 0) {
				distinct++;
				break;
			}
		}
	}
	if (distinct < (size_t)trust.threshold) {
		abort();
	}
}

/* An accepted manifest obeys every rule of the policy it was accepted under. */
static void check_accepted(const struct moat_manifest *m, const struct moat_fw_policy *p)
{
	if (strcmp(m->device_type, p->device_type) != 0 ||
	    m->security_version < p->security_floor) {
		abort();
	}
	if (p->purpose == MOAT_FW_FOR_INSTALL &&
	    (m->expires_at <= p->now || m->expires_at <= p->last_issued_at ||
	     m->issued_at < p->last_issued_at || !newer(m->version, p->current_version))) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init_trust();
	struct moat_fw_policy policy = {
		.purpose = (size & 1) ? MOAT_FW_FOR_BOOT : MOAT_FW_FOR_INSTALL,
		.device_type = "temp_sensor",
		.current_version = "1.0.0",
		.security_floor = 1,
		.now = 1800000000,
		.last_issued_at = 1700000000,
	};
	struct moat_fw_decision d;
	struct moat_manifest m;
	enum moat_fw_verdict v = moat_fw_decide(data, size, &trust, &policy, &m, &d);
	if (v != d.verdict || (unsigned)v >= MOAT_FW_VERDICT_COUNT) {
		abort();
	}
	if (v == MOAT_FW_ACCEPT) {
		check_accepted(&m, &policy);
	}

	struct moat_envelope env, again;
	struct moat_err err;
	if (moat_envelope_parse(data, size, &env, &err) != 0) {
		if (v != MOAT_FW_MALFORMED) {
			abort(); /* what does not parse is never judged on anything else */
		}
		return 0;
	}
	if (v == MOAT_FW_ACCEPT) {
		check_signers(&env);
	}
	char *json = NULL;
	size_t len = 0;
	if (moat_envelope_serialize(&env, &json, &len, &err) != 0) {
		abort(); /* whatever parses must serialize */
	}
	if (moat_envelope_parse(json, len, &again, &err) != 0 ||
	    memcmp(&env, &again, sizeof(env)) != 0) {
		abort();
	}
	free(json);
	/* The payload is what a signer produced: parse it as a manifest too. */
	if (moat_manifest_parse(env.payload, env.payload_len, &m, &err) == 0) {
		if (moat_manifest_serialize(&m, &json, &len, &err) != 0) {
			abort();
		}
		free(json);
	}
	return 0;
}
