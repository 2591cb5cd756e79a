/* test_devcore.c: moat-device (src/device-core) on the host with its mbedTLS port (Debian's
 * libmbedtls-dev 2.28 through the 3.x shim), independent of src/core: envelopes are made
 * here with OpenSSL (DSSE PAE, ECDSA P-256, base64), then every refusal reason is shown,
 * with the strictness rules of the readers, the image stream's bound, the unknown clock,
 * the A/B machine and record, topics, messages and commands. src/core's own tests
 * (test_manifest, test_update) run the same library through the OpenSSL port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "moat/text.h"
#include "moat_device.h"

#define NOW 1800000000LL
#define TYPE "temp_sensor"

struct key {
	EVP_PKEY *pkey;
	unsigned char der[128];
	struct mdev_trusted_key trusted;
};

static void key_make(struct key *k)
{
	k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_non_null(k->pkey);
	unsigned char *p = k->der;
	int n = i2d_PUBKEY(k->pkey, &p);
	assert_true(n > 0 && n <= (int)sizeof(k->der));
	k->trusted.key = k->der;
	k->trusted.key_len = (size_t)n;
	assert_int_equal(mdev_keyid(k->der, (size_t)n, k->trusted.keyid), 0);
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	}
}

static void b64(const void *in, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static char *manifest_json(const char *type, const char *version, int secver, int size,
			   const uint8_t sha[32], long long issued, long long expires)
{
	static char buf[512];
	char h[65];
	hex(sha, 32, h);
	snprintf(buf, sizeof(buf),
		 "{\"device_type\":\"%s\",\"version\":\"%s\",\"security_version\":%d,"
		 "\"size\":%d,\"sha256\":\"%s\",\"issued_at\":%lld,\"expires_at\":%lld}",
		 type, version, secver, size, h, issued, expires);
	return buf;
}

/* An envelope of payload signed by keys[0..n) (payload type ptype), in out. */
static size_t envelope(const char *payload, const char *ptype, struct key **keys, size_t n,
		       char *out, size_t size)
{
	unsigned char pae[1024];
	size_t pae_len = 0;
	char p64[1024];
	assert_int_equal(mdev_dsse_pae(ptype, (const unsigned char *)payload, strlen(payload), pae,
				       sizeof(pae), &pae_len),
			 0);
	b64(payload, strlen(payload), p64);
	int used = snprintf(out, size,
			    "{\"payloadType\":\"%s\",\"payload\":\"%s\",\"signatures\":[", ptype,
			    p64);
	for (size_t i = 0; i < n; i++) {
		unsigned char sig[80];
		size_t sl = sizeof(sig);
		char s64[120];
		char kid[65];
		EVP_MD_CTX *c = EVP_MD_CTX_new();
		assert_int_equal(EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, keys[i]->pkey), 1);
		assert_int_equal(EVP_DigestSign(c, sig, &sl, pae, pae_len), 1);
		EVP_MD_CTX_free(c);
		b64(sig, sl, s64);
		hex(keys[i]->trusted.keyid, 32, kid);
		used += snprintf(out + used, size - (size_t)used,
				 "%s{\"keyid\":\"%s\",\"sig\":\"%s\"}", i ? "," : "", kid, s64);
	}
	used += snprintf(out + used, size - (size_t)used, "]}\n");
	return (size_t)used;
}

static struct key ka, kb, kc;
static uint8_t image[3000];
static uint8_t image_sha[32];
static struct mdev_fw_work work;

static int setup(void **state)
{
	(void)state;
	key_make(&ka);
	key_make(&kb);
	key_make(&kc);
	for (size_t i = 0; i < sizeof(image); i++) {
		image[i] = (uint8_t)(i * 13);
	}
	unsigned int n = 0;
	EVP_Digest(image, sizeof(image), image_sha, &n, EVP_sha256(), NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(ka.pkey);
	EVP_PKEY_free(kb.pkey);
	EVP_PKEY_free(kc.pkey);
	return 0;
}

static struct mdev_fw_policy policy(void)
{
	struct mdev_fw_policy p = {MDEV_FW_FOR_INSTALL, TYPE, "1.1.0", 2, NOW, NOW - 1000};
	return p;
}

static enum mdev_fw_verdict decide(const char *env, size_t len, const struct mdev_trusted_key *keys,
				   size_t n, int threshold, const struct mdev_fw_policy *p,
				   struct mdev_manifest *m)
{
	struct mdev_trust t = {keys, n, threshold};
	struct mdev_fw_decision d;
	enum mdev_fw_verdict v = mdev_fw_decide(env, len, &t, p, &work, m, &d);
	assert_int_equal(v, d.verdict);
	assert_true(d.msg[0] != '\0');
	return v;
}

static void test_verify(void **state)
{
	(void)state;
	static char env[4096];
	struct key *ab[] = {&ka, &kb};
	struct mdev_trusted_key trusted[2] = {ka.trusted, kb.trusted};
	struct mdev_fw_policy p = policy();
	struct mdev_manifest m;
	const char *good = manifest_json(TYPE, "1.2.0", 3, (int)sizeof(image), image_sha, NOW - 10,
					 NOW + 86400);
	char payload[512];
	snprintf(payload, sizeof(payload), "%s", good);
	size_t len = envelope(payload, MDEV_FW_PAYLOAD_TYPE, ab, 2, env, sizeof(env));

	assert_int_equal(decide(env, len, trusted, 2, 2, &p, &m), MDEV_FW_ACCEPT);
	assert_string_equal(m.version, "1.2.0");
	assert_int_equal(m.size, sizeof(image));

	/* threshold: one signature of two required; the same key twice counts once */
	struct key *a_only[] = {&ka};
	struct key *a_twice[] = {&ka, &ka};
	len = envelope(payload, MDEV_FW_PAYLOAD_TYPE, a_only, 1, env, sizeof(env));
	assert_int_equal(decide(env, len, trusted, 2, 2, &p, NULL), MDEV_FW_THRESHOLD);
	assert_int_equal(decide(env, len, trusted, 2, 1, &p, NULL), MDEV_FW_ACCEPT);
	len = envelope(payload, MDEV_FW_PAYLOAD_TYPE, a_twice, 2, env, sizeof(env));
	assert_int_equal(decide(env, len, trusted, 2, 2, &p, NULL), MDEV_FW_THRESHOLD);

	/* unknown key; no signatures at all */
	struct key *c_only[] = {&kc};
	len = envelope(payload, MDEV_FW_PAYLOAD_TYPE, c_only, 1, env, sizeof(env));
	assert_int_equal(decide(env, len, trusted, 2, 1, &p, NULL), MDEV_FW_UNKNOWN_KEY);
	len = envelope(payload, MDEV_FW_PAYLOAD_TYPE, NULL, 0, env, sizeof(env));
	assert_int_equal(decide(env, len, trusted, 2, 1, &p, NULL), MDEV_FW_UNKNOWN_KEY);

	/* payload type */
	len = envelope(payload, "application/json", ab, 2, env, sizeof(env));
	assert_int_equal(decide(env, len, trusted, 2, 1, &p, NULL), MDEV_FW_BAD_PAYLOAD_TYPE);

	/* tampering: the payload changed after signing (one base64 character) */
	len = envelope(payload, MDEV_FW_PAYLOAD_TYPE, ab, 2, env, sizeof(env));
	char *pl = strstr(env, "\"payload\":\"") + 11;
	pl[20] = pl[20] == 'A' ? 'B' : 'A';
	assert_int_equal(decide(env, len, trusted, 2, 1, &p, NULL), MDEV_FW_BAD_SIGNATURE);
	/* a valid signature by a trusted key over other bytes is tampering even with another
	 * valid one */
	len = envelope(payload, MDEV_FW_PAYLOAD_TYPE, ab, 2, env, sizeof(env));
	char *sig = strstr(env, "\"sig\":\"") + 7;
	sig[10] = sig[10] == 'A' ? 'B' : 'A';
	assert_int_equal(decide(env, len, trusted, 2, 1, &p, NULL), MDEV_FW_BAD_SIGNATURE);

	/* policy */
	len = envelope(payload, MDEV_FW_PAYLOAD_TYPE, ab, 2, env, sizeof(env));
	struct mdev_fw_policy q = p;
	q.device_type = "other";
	assert_int_equal(decide(env, len, trusted, 2, 2, &q, NULL), MDEV_FW_WRONG_TYPE);
	q = p;
	q.security_floor = 4;
	assert_int_equal(decide(env, len, trusted, 2, 2, &q, NULL), MDEV_FW_DOWNGRADE);
	q.purpose = MDEV_FW_FOR_BOOT;
	assert_int_equal(decide(env, len, trusted, 2, 2, &q, NULL), MDEV_FW_DOWNGRADE);
	q = p;
	q.now = NOW + 86400;
	assert_int_equal(decide(env, len, trusted, 2, 2, &q, NULL), MDEV_FW_EXPIRED);
	q.purpose = MDEV_FW_FOR_BOOT; /* an installed image does not stop booting as it ages */
	assert_int_equal(decide(env, len, trusted, 2, 2, &q, NULL), MDEV_FW_ACCEPT);
	q = p;
	q.last_issued_at = NOW;
	assert_int_equal(decide(env, len, trusted, 2, 2, &q, NULL), MDEV_FW_ROLLBACK);
	q = p;
	q.current_version = "1.2.0";
	assert_int_equal(decide(env, len, trusted, 2, 2, &q, NULL), MDEV_FW_NOT_NEWER);
	q.current_version = "1.10.0";
	assert_int_equal(decide(env, len, trusted, 2, 2, &q, NULL), MDEV_FW_NOT_NEWER);
	q.current_version = "1.2.0-rc.1";
	assert_int_equal(decide(env, len, trusted, 2, 2, &q, NULL), MDEV_FW_ACCEPT);
	q.current_version = "not-a-version";
	assert_int_equal(decide(env, len, trusted, 2, 2, &q, NULL), MDEV_FW_NOT_NEWER);
	q.current_version = NULL;
	assert_int_equal(decide(env, len, trusted, 2, 2, &q, NULL), MDEV_FW_ACCEPT);

	/* unknown time: judged against the newest issued_at seen */
	q = p;
	q.now = MDEV_TIME_UNKNOWN;
	q.last_issued_at = NOW - 10;
	assert_int_equal(decide(env, len, trusted, 2, 2, &q, NULL), MDEV_FW_ACCEPT);
	const char *old =
		manifest_json(TYPE, "1.2.0", 3, (int)sizeof(image), image_sha, NOW - 100, NOW - 50);
	snprintf(payload, sizeof(payload), "%s", old);
	len = envelope(payload, MDEV_FW_PAYLOAD_TYPE, ab, 2, env, sizeof(env));
	q.last_issued_at = NOW - 100; /* the clock is known to be past the expiry? no: */
	assert_int_equal(decide(env, len, trusted, 2, 2, &q, NULL), MDEV_FW_ACCEPT);
	q.now = NOW; /* with a clock it is expired */
	assert_int_equal(decide(env, len, trusted, 2, 2, &q, NULL), MDEV_FW_EXPIRED);
}

static void test_malformed(void **state)
{
	(void)state;
	static char env[4096];
	struct key *ab[] = {&ka, &kb};
	struct mdev_trusted_key trusted[2] = {ka.trusted, kb.trusted};
	struct mdev_fw_policy p = policy();
	/* envelopes that do not parse */
	static const char *const bad_env[] = {
		"",
		"[]",
		"{}",
		"{\"payloadType\":\"x\",\"payload\":\"\",\"signatures\":[]} x",
		"{\"payloadType\":\"x\",\"payload\":\"e30=\",\"signatures\":[],\"extra\":1}",
		"{\"payloadType\":\"x\",\"payloadType\":\"x\",\"payload\":\"e30=\",\"signatures\":[]}",
		"{\"payloadType\":\"x\",\"payload\":\"e30\",\"signatures\":[]}",
		"{\"payloadType\":\"x\",\"payload\":\"e31=\",\"signatures\":[]}",
		"{\"payloadType\":\"x\",\"payload\":\"e30=\",\"signatures\":{}}",
		"{\"payloadType\":\"x\",\"payload\":\"e30=\",\"signatures\":[{\"keyid\":\"AB\",\"sig\":\"e30=\"}]}",
		"{\"payloadType\":\"x\",\"payload\":\"e30=\",\"signatures\":[{\"keyid\":\""
		"0000000000000000000000000000000000000000000000000000000000000000\",\"sig\":\"\"}]}",
		"{\"payloadType\":\"x\\u0041\",\"payload\":\"e30=\",\"signatures\":[]}",
		"{\"payloadType\":7,\"payload\":\"e30=\",\"signatures\":[]}",
		"{\"payloadType\":\"x\",\"payload\":\"e30=\",\"signatures\":[1,2,3,4,5,6,7,8,9]}",
	};
	for (size_t i = 0; i < sizeof(bad_env) / sizeof(bad_env[0]); i++) {
		char msg[MDEV_MSG_MAX];
		assert_int_equal(decide(bad_env[i], strlen(bad_env[i]), trusted, 2, 1, &p, NULL),
				 MDEV_FW_MALFORMED);
		assert_int_not_equal(mdev_envelope_check(bad_env[i], strlen(bad_env[i]), msg), 0);
	}
	/* signed manifests that do not parse: malformed after the signatures held */
	static const char *const bad_man[] = {
		"{}",
		"{\"device_type\":\"temp_sensor\"}",
		"{\"device_type\":\"Temp\",\"version\":\"1.2.0\",\"security_version\":3,\"size\":1,"
		"\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\","
		"\"issued_at\":1,\"expires_at\":2}",
		"{\"device_type\":\"t\",\"version\":\"1.2\",\"security_version\":3,\"size\":1,"
		"\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\","
		"\"issued_at\":1,\"expires_at\":2}",
		"{\"device_type\":\"t\",\"version\":\"1.2.0\",\"security_version\":-3,\"size\":1,"
		"\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\","
		"\"issued_at\":1,\"expires_at\":2}",
		"{\"device_type\":\"t\",\"version\":\"1.2.0\",\"security_version\":3,\"size\":0,"
		"\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\","
		"\"issued_at\":1,\"expires_at\":2}",
		"{\"device_type\":\"t\",\"version\":\"1.2.0\",\"security_version\":3,\"size\":1.5,"
		"\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\","
		"\"issued_at\":1,\"expires_at\":2}",
		"{\"device_type\":\"t\",\"version\":\"1.2.0\",\"security_version\":3,\"size\":1,"
		"\"sha256\":\"00000000000000000000000000000000000000000000000000000000000000AA\","
		"\"issued_at\":1,\"expires_at\":2}",
		"{\"device_type\":\"t\",\"version\":\"1.2.0\",\"security_version\":3,\"size\":1,"
		"\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\","
		"\"issued_at\":2,\"expires_at\":2}",
		"{\"device_type\":\"t\",\"version\":\"1.2.0\",\"security_version\":03,\"size\":1,"
		"\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\","
		"\"issued_at\":1,\"expires_at\":2}",
		"{\"device_type\":\"t\",\"version\":\"1.2.0\",\"security_version\":3,\"size\":1,"
		"\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\","
		"\"issued_at\":1,\"expires_at\":2,\"extra\":true}",
	};
	for (size_t i = 0; i < sizeof(bad_man) / sizeof(bad_man[0]); i++) {
		struct mdev_manifest m;
		char msg[MDEV_MSG_MAX];
		size_t len = envelope(bad_man[i], MDEV_FW_PAYLOAD_TYPE, ab, 2, env, sizeof(env));
		assert_int_equal(decide(env, len, trusted, 2, 2, &p, NULL), MDEV_FW_MALFORMED);
		assert_int_not_equal(mdev_manifest_parse(bad_man[i], strlen(bad_man[i]), &m, msg),
				     0);
	}
}

static enum mdev_fw_verdict stream(const uint8_t *data, size_t len, size_t chunk)
{
	struct mdev_manifest m;
	struct mdev_fw_stream s;
	struct mdev_fw_decision d;
	memset(&m, 0, sizeof(m));
	m.size = sizeof(image);
	memcpy(m.sha256, image_sha, 32);
	assert_int_equal(mdev_fw_stream_init(&s, &m), 0);
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		if (mdev_fw_stream_update(&s, data + off, n) != 0) {
			assert_true(s.too_long);
			assert_true(s.seen <= m.size); /* never hashed past the signed size */
			break;
		}
	}
	enum mdev_fw_verdict v = mdev_fw_stream_decide(&s, &d);
	assert_int_equal(mdev_fw_stream_decide(&s, &d) == v || v == MDEV_FW_ACCEPT ||
				 v == MDEV_FW_HASH_MISMATCH,
			 1);
	mdev_fw_stream_abort(&s);
	mdev_fw_stream_abort(&s);
	return v;
}

static void test_stream(void **state)
{
	(void)state;
	static uint8_t big[sizeof(image) + 10];
	assert_int_equal(stream(image, sizeof(image), 512), MDEV_FW_ACCEPT);
	assert_int_equal(stream(image, sizeof(image) - 1, 512), MDEV_FW_SIZE_MISMATCH);
	memcpy(big, image, sizeof(image));
	assert_int_equal(stream(big, sizeof(big), 7), MDEV_FW_SIZE_MISMATCH);
	big[1000] ^= 1;
	assert_int_equal(stream(big, sizeof(image), 4096), MDEV_FW_HASH_MISMATCH);
}

/* ---- A/B ---- */

static unsigned char flash[MDEV_AB_STORE_BYTES];
static int rd(void *ctx, size_t off, void *buf, size_t len)
{
	(void)ctx;
	memcpy(buf, flash + off, len);
	return 0;
}
static int wr(void *ctx, size_t off, const void *buf, size_t len)
{
	(void)ctx;
	memcpy(flash + off, buf, len);
	return 0;
}

static void test_ab(void **state)
{
	(void)state;
	struct mdev_ab_store store = {NULL, rd, wr};
	struct mdev_ab_state st, again;
	uint32_t seq = 0;
	memset(flash, 0xff, sizeof(flash));
	assert_int_equal(mdev_ab_load(&store, &st, &seq), 1); /* fresh: slot a */
	assert_int_equal(st.active, 'a');
	assert_int_equal(mdev_ab_stage(&st, 'b', NOW), 0);
	assert_int_equal(mdev_ab_stage(&st, 'b', NOW), -1);
	assert_int_equal(mdev_ab_select(&st, NOW, 60), MDEV_AB_START_TRIAL);
	assert_int_equal(st.deadline, NOW + 60);
	assert_int_equal(mdev_ab_save(&store, &st, &seq), 0);
	assert_int_equal(mdev_ab_load(&store, &again, NULL), 0);
	assert_memory_equal(&st, &again, sizeof(st));
	struct mdev_ab_state first = st;
	/* the trial's second start never happens: reverted, its release remembered */
	assert_int_equal(mdev_ab_select(&st, NOW + 1, 60), MDEV_AB_REVERTED);
	assert_int_equal(st.active, 'a');
	assert_int_equal(st.reverted_issued_at, NOW);
	/* deadline passed while nothing supervised it */
	assert_int_equal(mdev_ab_stage(&st, 'b', NOW + 5), 0);
	st.attempts = 0;
	st.deadline = NOW + 10;
	assert_int_equal(mdev_ab_select(&st, NOW + 10, 60), MDEV_AB_REVERTED);
	/* confirm raises the floor, never lowers it */
	assert_int_equal(mdev_ab_stage(&st, 'b', NOW + 20), 0);
	assert_int_equal(mdev_ab_select(&st, NOW + 20, 60), MDEV_AB_START_TRIAL);
	assert_int_equal(mdev_ab_confirm(&st, 7), 0);
	assert_int_equal(st.active, 'b');
	assert_int_equal(st.floor, 7);
	assert_int_equal(mdev_ab_confirm(&st, 9), -1);
	assert_int_equal(mdev_ab_stage(&st, 'a', NOW + 30), 0);
	assert_int_equal(mdev_ab_select(&st, NOW + 30, 60), MDEV_AB_START_TRIAL);
	assert_int_equal(mdev_ab_confirm(&st, 3), 0);
	assert_int_equal(st.floor, 7);
	/* a corrupted newer copy: the older one is read */
	assert_int_equal(mdev_ab_save(&store, &st, &seq), 0);
	flash[(seq & 1u) * MDEV_AB_RECORD_BYTES + 20] ^= 1;
	assert_int_equal(mdev_ab_load(&store, &again, NULL), 0);
	assert_memory_equal(&again, &first, sizeof(first));
	/* an invalid state is never written */
	st.trial = st.active;
	assert_int_equal(mdev_ab_save(&store, &st, &seq), -1);
}

/* ---- messages ---- */

static void test_messages(void **state)
{
	(void)state;
	char buf[512];
	size_t len = 0;
	assert_int_equal(mdev_topic_build(MDEV_TOPIC_COMMAND_RESPONSES, "dev-1", buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "devices/dev-1/command_responses");
	assert_int_equal(mdev_topic_build(MDEV_TOPIC_DIAGNOSTICS, "dev-1", buf, 10), -1);
	assert_int_equal(mdev_topic_build(MDEV_TOPIC_STATUS, "-bad", buf, sizeof(buf)), -1);
	assert_int_equal(mdev_msg_status_online("dev-1", 5, "10.0.0.2", "1.2.0", buf, sizeof(buf),
						&len),
			 0);
	assert_string_equal(buf, "{\"device_id\":\"dev-1\",\"status\":\"online\",\"timestamp\":5,"
				 "\"ip_address\":\"10.0.0.2\",\"agent_version\":\"1.2.0\"}");
	struct mdev_diagnostics d = {.device_id = "dev-1",
				     .timestamp_ms = 5,
				     .uptime_ms = 4000,
				     .system_uptime_s = 4,
				     .free_heap = 100,
				     .firmware_version = "1.2.0",
				     .interval_s = 30,
				     .seq = 9};
	/* an MCU's diagnostics: its own fields only; the Linux builder adds the rest */
	assert_int_equal(mdev_msg_diagnostics(&d, buf, sizeof(buf), &len), 0);
	assert_string_equal(buf, "{\"device_id\":\"dev-1\",\"timestamp\":5,\"uptime_ms\":4000,"
				 "\"free_heap\":100,\"agent_version\":\"1.2.0\",\"interval_s\":30,"
				 "\"seq\":9,\"queued\":0}");
	assert_int_equal(len, strlen(buf));
	assert_int_equal(mdev_msg_diagnostics(&d, buf, len, &len), -1);
	d.mac_address = "tab\there";
	assert_int_equal(mdev_msg_diagnostics(&d, buf, sizeof(buf), &len), -1);
	d.mac_address = NULL;
	d.seq = -1;
	assert_int_equal(mdev_msg_diagnostics(&d, buf, sizeof(buf), &len), -1);
	d.seq = 9;
	d.ip_address = "10.0.0.2/8";
	assert_int_equal(mdev_msg_diagnostics(&d, buf, sizeof(buf), &len), -1);
	d.ip_address = NULL;
	assert_int_equal(mdev_msg_diagnostics_linux(&d, buf, sizeof(buf), &len), 0);
	assert_non_null(strstr(buf, "\"system_uptime_s\":4,"));
	struct mdev_response r = {"dev-1", "reboot", "accepted", 5, "", "say \"hi\"", 0};
	assert_int_equal(mdev_msg_response(&r, buf, sizeof(buf), &len), 0);
	assert_string_equal(buf, "{\"device_id\":\"dev-1\",\"command\":\"reboot\",\"status\":"
				 "\"accepted\",\"timestamp\":5,\"detail\":\"say \\\"hi\\\"\"}");
	r.detail = "tab\there";
	assert_int_equal(mdev_msg_response(&r, buf, sizeof(buf), &len), -1);

	struct mdev_command c;
	char msg[MDEV_MSG_MAX];
	static const char *const bad[] = {
		"{\"command\":\"diagnostics\"}", /* not the topic's name */
		"{\"id\":\"has space\"}",
		"{\"id\":\"a\",\"id\":\"b\"}",
		"{\"nested\":{\"a\":1}}",
		"{\"a\":null}",
		"{\"a\":1,\"b\":1,\"c\":1,\"d\":1,\"e\":1,\"f\":1,\"g\":1,\"h\":1,\"i\":1}",
		"[]",
		"{\"id\":\"x\"} trailing",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(mdev_cmd_parse("reboot", bad[i], strlen(bad[i]), &c, msg), -1);
		assert_true(msg[0] != '\0');
	}
	static const char ok[] =
		"{\"command\":\"update_interval\",\"id\":\"op-1:a.b\",\"interval\":60,\"note\":\"x\",\"dry\":true}";
	assert_int_equal(mdev_cmd_parse("update_interval", ok, strlen(ok), &c, msg), 0);
	assert_int_equal(c.kind, MDEV_CMD_UPDATE_INTERVAL);
	assert_string_equal(c.id, "op-1:a.b");
	assert_true(c.has_interval);
	assert_int_equal(c.interval, 60);

	/* dispatch: no handler for check_update answers as moat-agent does */
	struct mdev_cmd_handlers h = {NULL, NULL, NULL, NULL, NULL};
	assert_int_equal(mdev_cmd_dispatch("dev-1", "devices/dev-1/commands/check_update",
					   "{\"id\":\"q1\"}", 11, &h, 7, buf, sizeof(buf), &len),
			 MDEV_CMD_CHECK_UPDATE);
	assert_non_null(strstr(buf, "\"status\":\"refused\""));
	assert_non_null(strstr(buf, "\"id\":\"q1\""));
	/* update_interval out of range is refused before any handler */
	assert_int_equal(mdev_cmd_dispatch("dev-1", "devices/dev-1/commands/update_interval",
					   "{\"interval\":0}", 14, &h, 7, buf, sizeof(buf), &len),
			 MDEV_CMD_UPDATE_INTERVAL);
	assert_non_null(strstr(buf, "\"status\":\"refused\""));
	/* a response that does not fit is not sent half */
	assert_int_equal(mdev_cmd_dispatch("dev-1", "devices/dev-1/commands/reboot", "{}", 2, &h, 7,
					   buf, 20, &len),
			 -1);
	assert_int_equal(len, 0);
}

/* mdev_text_ok is moat's display rule (moat_text_display_ok, src/util): every sequence of
 * one to three bytes, and four-byte sequences around every boundary, decide the same. */
static void test_text_ok_is_moats(void **state)
{
	(void)state;
	unsigned char b[4];
	for (unsigned i = 0; i < 0x1000000u; i++) {
		b[0] = (unsigned char)(i >> 16);
		b[1] = (unsigned char)(i >> 8);
		b[2] = (unsigned char)i;
		for (size_t n = 1; n <= 3; n++) {
			unsigned rest = n == 1 ? 0xffffu : n == 2 ? 0xffu : 0u;
			if ((i & rest) != 0) {
				continue; /* shorter prefixes once each */
			}
			if (mdev_text_ok((const char *)b, n) !=
			    moat_text_display_ok((const char *)b, n)) {
				fail_msg("differ on %zu bytes %02x %02x %02x", n, b[0], b[1], b[2]);
			}
		}
	}
	static const unsigned char lead[] = {0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf8};
	static const unsigned char cont[] = {0x7f, 0x80, 0x8f, 0x90, 0xbf, 0xc0};
	for (size_t a = 0; a < sizeof(lead); a++) {
		for (size_t x = 0; x < sizeof(cont); x++) {
			for (size_t y = 0; y < sizeof(cont); y++) {
				for (size_t z = 0; z < sizeof(cont); z++) {
					b[0] = lead[a];
					b[1] = cont[x];
					b[2] = cont[y];
					b[3] = cont[z];
					assert_int_equal(mdev_text_ok((const char *)b, 4),
							 moat_text_display_ok((const char *)b, 4));
				}
			}
		}
	}
	assert_true(mdev_text_ok("", 0));
	assert_true(mdev_text_ok("caf\xc3\xa9 \xf0\x9f\x98\x80", 10));
	assert_false(mdev_text_ok("\xe2\x81\xa6", 3)); /* U+2066, an isolate */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify),	 cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_stream),	 cmocka_unit_test(test_ab),
		cmocka_unit_test(test_messages), cmocka_unit_test(test_text_ok_is_moats),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
