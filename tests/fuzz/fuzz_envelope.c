/* fuzz_envelope.c: firmware envelopes as a device receives them. Runs the whole decision
 * (moat_fw_decide) against a fixed trust set, and the envelope parser plus a
 * serialize/parse round trip, which must reproduce the same envelope. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "moat/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct moat_fw_trust trust;
static int trust_ready;

static void init_trust(void)
{
	if (trust_ready) {
		return;
	}
	EVP_PKEY *k = NULL;
	if (moat_key_generate(MOAT_KEY_ED25519, &k, NULL) != 0 ||
	    moat_fw_trust_add(&trust, k, NULL) != 0) {
		abort();
	}
	EVP_PKEY_free(k);
	trust_ready = 1;
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

	struct moat_envelope env, again;
	struct moat_err err;
	if (moat_envelope_parse(data, size, &env, &err) != 0) {
		return 0;
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
