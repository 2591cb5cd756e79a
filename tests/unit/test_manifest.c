/* test_manifest.c: the firmware manifest rules of src/core (manifest.c, fw_keys.c,
 * semver.c, and their use of the strict reader json.c). Every refusal a device can make
 * has a test that shows it refuses:
 * tampering, unknown keys, thresholds, duplicate signatures, freeze, rollback, downgrade,
 * mix-and-match, not-newer, and every strictness rule of the parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "moat/manifest.h"

#define NOW 1800000000LL
#define DAY 86400LL

static struct moat_manifest sample(void)
{
	struct moat_manifest m;
	memset(&m, 0, sizeof(m));
	snprintf(m.device_type, sizeof(m.device_type), "temp_sensor");
	snprintf(m.version, sizeof(m.version), "1.2.0");
	m.security_version = 3;
	m.size = 1000;
	for (size_t i = 0; i < sizeof(m.sha256); i++) {
		m.sha256[i] = (uint8_t)i;
	}
	m.issued_at = NOW - DAY;
	m.expires_at = NOW + 90 * DAY;
	return m;
}

static struct moat_fw_policy policy(void)
{
	struct moat_fw_policy p = {
		.purpose = MOAT_FW_FOR_INSTALL,
		.device_type = "temp_sensor",
		.current_version = "1.1.0",
		.security_floor = 2,
		.now = NOW,
		.last_issued_at = NOW - 10 * DAY,
	};
	return p;
}

static EVP_PKEY *gen(enum moat_key_type t)
{
	EVP_PKEY *k = NULL;
	struct moat_err e;
	assert_int_equal(moat_key_generate(t, &k, &e), 0);
	return k;
}

/* Signs m with keys[0..n) and returns the envelope JSON (caller frees). */
static char *signed_env(const struct moat_manifest *m, EVP_PKEY **keys, size_t n, size_t *len)
{
	struct moat_envelope env;
	struct moat_err e;
	assert_int_equal(moat_envelope_init(&env, m, &e), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(moat_envelope_sign(&env, keys[i], &e), 0);
	}
	char *json = NULL;
	assert_int_equal(moat_envelope_serialize(&env, &json, len, &e), 0);
	return json;
}

static void trust_of(struct moat_fw_trust *t, EVP_PKEY **keys, size_t n, int threshold)
{
	struct moat_err e;
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(moat_fw_trust_add(t, keys[i], &e), 0);
	}
	t->threshold = threshold;
}

static enum moat_fw_verdict decide_json(const char *json, size_t len, const struct moat_fw_trust *t,
					const struct moat_fw_policy *p, struct moat_manifest *mout)
{
	struct moat_fw_decision d;
	enum moat_fw_verdict v = moat_fw_decide(json, len, t, p, mout, &d);
	assert_int_equal(v, d.verdict);
	assert_true(strlen(d.msg) > 0);
	assert_null(strchr(d.msg, '\n'));
	return v;
}

/* ---- encodings ---- */

static void test_b64(void **state)
{
	(void)state;
	unsigned char out[16];
	size_t n;
	char enc[16];
	moat_b64_encode((const unsigned char *)"foob", 4, enc);
	assert_string_equal(enc, "Zm9vYg==");
	assert_int_equal(moat_b64_decode("Zm9vYg==", 8, out, sizeof(out), &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "foob", 4);
	assert_int_equal(moat_b64_decode("Zm9vYmE=", 8, out, sizeof(out), &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(moat_b64_decode("", 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	/* Non-canonical: unused bits set. */
	assert_int_not_equal(moat_b64_decode("Zm9vYh==", 8, out, sizeof(out), &n), 0);
	assert_int_not_equal(moat_b64_decode("Zm9vYmF=", 8, out, sizeof(out), &n), 0);
	/* Unpadded, over-padded, padding inside, other alphabets, whitespace. */
	assert_int_not_equal(moat_b64_decode("Zm9vYg", 6, out, sizeof(out), &n), 0);
	assert_int_not_equal(moat_b64_decode("Zm9v====", 8, out, sizeof(out), &n), 0);
	assert_int_not_equal(moat_b64_decode("Zg==Zm9v", 8, out, sizeof(out), &n), 0);
	assert_int_not_equal(moat_b64_decode("Zm9-Yg==", 8, out, sizeof(out), &n), 0);
	assert_int_not_equal(moat_b64_decode("Zm9 Yg==", 8, out, sizeof(out), &n), 0);
	assert_int_not_equal(moat_b64_decode("Zm=v", 4, out, sizeof(out), &n), 0);
	/* Output too small. */
	assert_int_not_equal(moat_b64_decode("Zm9vYg==", 8, out, 3, &n), 0);
}

static void test_hex(void **state)
{
	(void)state;
	uint8_t b[2];
	char s[5];
	moat_hex_encode((const uint8_t *)"\xab\x01", 2, s);
	assert_string_equal(s, "ab01");
	assert_int_equal(moat_hex_decode("ab01", b, 2), 0);
	assert_memory_equal(b, "\xab\x01", 2);
	assert_int_not_equal(moat_hex_decode("AB01", b, 2), 0);
	assert_int_not_equal(moat_hex_decode("ab0", b, 2), 0);
	assert_int_not_equal(moat_hex_decode("ab011", b, 2), 0);
	assert_int_not_equal(moat_hex_decode("ag01", b, 2), 0);
}

static void test_pae(void **state)
{
	(void)state;
	/* The DSSE specification's example. */
	unsigned char buf[128];
	size_t n;
	struct moat_err e;
	assert_int_equal(moat_dsse_pae("http://example.com/HelloWorld",
				       (const unsigned char *)"hello world", 11, buf, sizeof(buf),
				       &n, &e),
			 0);
	const char *want = "DSSEv1 29 http://example.com/HelloWorld 11 hello world";
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, n);
	assert_int_not_equal(moat_dsse_pae("t", (const unsigned char *)"x", 1, buf, 10, &n, &e), 0);
}

static void test_semver(void **state)
{
	(void)state;
	struct moat_err e;
	const char *good[] = {"0.0.0",
			      "1.2.3",
			      "10.20.30",
			      "1.0.0-alpha",
			      "1.0.0-0.3.7",
			      "1.0.0-x.7.z.92",
			      "1.0.0+20130313144700",
			      "1.0.0-beta+exp.sha.5114f85",
			      "1.0.0-x-y-z.--"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(moat_semver_check(good[i], &e), 0);
	}
	const char *bad[] = {
		"",
		"1",
		"1.2",
		"1.2.3.4",
		"01.2.3",
		"1.02.3",
		"1.2.03",
		"v1.2.3",
		"1.2.3-",
		"1.2.3-01",
		"1.2.3-a..b",
		"1.2.3+",
		"1.2.3+a..b",
		"1.2.3 ",
		"-1.2.3",
		"1.2.3-a_b",
		"1.2.x",
		"1.2.3-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_not_equal(moat_semver_check(bad[i], &e), 0);
	}
	/* semver.org's precedence example, in order. */
	const char *order[] = {"1.0.0-alpha",
			       "1.0.0-alpha.1",
			       "1.0.0-alpha.beta",
			       "1.0.0-beta",
			       "1.0.0-beta.2",
			       "1.0.0-beta.11",
			       "1.0.0-rc.1",
			       "1.0.0",
			       "1.9.0",
			       "1.10.0",
			       "1.11.0",
			       "2.0.0",
			       "99999999999999999999999.0.0"};
	size_t n = sizeof(order) / sizeof(order[0]);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < n; j++) {
			int c = 9;
			assert_int_equal(moat_semver_compare(order[i], order[j], &c, &e), 0);
			int want = (i > j) - (i < j);
			assert_int_equal(c, want);
		}
	}
	int c = 9;
	assert_int_equal(moat_semver_compare("1.0.0+a", "1.0.0+b", &c, &e), 0);
	assert_int_equal(c, 0);
	assert_int_not_equal(moat_semver_compare("1.0", "1.0.0", &c, &e), 0);
}

/* ---- manifests ---- */

static int parse_str(const char *json, struct moat_err *e)
{
	struct moat_manifest m;
	memset(&m, 0xa5, sizeof(m));
	int rc = moat_manifest_parse(json, strlen(json), &m, e);
	if (rc != 0) {
		struct moat_manifest zero;
		memset(&zero, 0, sizeof(zero));
		assert_memory_equal(&m, &zero, sizeof(m)); /* zeroed on failure */
	}
	return rc;
}

#define SHA "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define GOOD_FIELDS                                                                     \
	"\"device_type\":\"temp_sensor\",\"version\":\"1.2.0\",\"security_version\":3," \
	"\"size\":1000,\"sha256\":\"" SHA "\",\"issued_at\":100,\"expires_at\":200"

static void test_manifest_roundtrip(void **state)
{
	(void)state;
	struct moat_manifest m = sample(), back;
	struct moat_err e;
	char *json = NULL;
	size_t len = 0;
	assert_int_equal(moat_manifest_serialize(&m, &json, &len, &e), 0);
	assert_int_equal(moat_manifest_parse(json, len, &back, &e), 0);
	assert_memory_equal(&m, &back, sizeof(m));
	free(json);
	assert_int_equal(parse_str("{" GOOD_FIELDS "}", &e), 0);
	assert_int_equal(parse_str(" {" GOOD_FIELDS "}\n", &e), 0);
}

static void expect_manifest_refused(const char *json, const char *needle)
{
	struct moat_err e;
	memset(&e, 0, sizeof(e));
	assert_int_equal(parse_str(json, &e), MOAT_EINVAL);
	if (!strstr(e.msg, needle)) {
		fail_msg("'%s': message '%s' lacks '%s'", json, e.msg, needle);
	}
}

static void test_manifest_refusals(void **state)
{
	(void)state;
	expect_manifest_refused("{" GOOD_FIELDS ",\"extra\":1}", "unknown field 'extra'");
	expect_manifest_refused("{" GOOD_FIELDS ",\"size\":1000}", "duplicate field 'size'");
	expect_manifest_refused("{\"device_type\":\"t\",\"version\":\"1.2.0\","
				"\"security_version\":3,\"size\":1000,\"sha256\":\"" SHA "\","
				"\"issued_at\":100}",
				"missing field 'expires_at'");
	expect_manifest_refused("{\"device_type\":\"t\",\"version\":\"1.2.0\",\"security_version\":"
				"\"3\",\"size\":1000,\"sha256\":\"" SHA "\",\"issued_at\":100,"
				"\"expires_at\":200}",
				"'security_version' is not a number");
	expect_manifest_refused("{\"device_type\":\"t\",\"version\":\"1.2.0\",\"security_version\":"
				"1.5,\"size\":1000,\"sha256\":\"" SHA "\",\"issued_at\":100,"
				"\"expires_at\":200}",
				"not a whole number");
	expect_manifest_refused("{\"device_type\":\"t\",\"version\":\"1.2.0\",\"security_version\":"
				"-1,\"size\":1000,\"sha256\":\"" SHA "\",\"issued_at\":100,"
				"\"expires_at\":200}",
				"'security_version' is outside");
	expect_manifest_refused("{\"device_type\":\"t\",\"version\":\"1.2.0\",\"security_version\":"
				"1,\"size\":0,\"sha256\":\"" SHA "\",\"issued_at\":100,"
				"\"expires_at\":200}",
				"'size' is outside");
	expect_manifest_refused("{\"device_type\":\"t\",\"version\":\"1.2.0\",\"security_version\":"
				"1,\"size\":4294967297,\"sha256\":\"" SHA "\",\"issued_at\":100,"
				"\"expires_at\":200}",
				"'size' is outside");
	expect_manifest_refused("{\"device_type\":\"t\",\"version\":\"1.2.0\",\"security_version\":"
				"1,\"size\":1,\"sha256\":\"" SHA "\",\"issued_at\":100,"
				"\"expires_at\":9007199254740992}",
				"'expires_at' is outside");
	expect_manifest_refused("{\"device_type\":\"t\",\"version\":\"1.2.0\",\"security_version\":"
				"1,\"size\":1,\"sha256\":\"" SHA "\",\"issued_at\":200,"
				"\"expires_at\":200}",
				"not later than 'issued_at'");
	expect_manifest_refused("{\"device_type\":\"T\",\"version\":\"1.2.0\",\"security_version\":"
				"1,\"size\":1,\"sha256\":\"" SHA "\",\"issued_at\":100,"
				"\"expires_at\":200}",
				"device type");
	expect_manifest_refused("{\"device_type\":\"t\",\"version\":\"1.2\",\"security_version\":"
				"1,\"size\":1,\"sha256\":\"" SHA "\",\"issued_at\":100,"
				"\"expires_at\":200}",
				"not a semantic version");
	expect_manifest_refused("{\"device_type\":\"t\",\"version\":\"1.2.0\",\"security_version\":"
				"1,\"size\":1,\"sha256\":\"000102030405060708090A0B0C0D0E0F10111213"
				"1415161718191a1b1c1d1e1f\",\"issued_at\":100,\"expires_at\":200}",
				"'sha256' is not 64 lower-case hex");
	expect_manifest_refused("{\"device_type\":\"t\",\"version\":\"1.2.0\",\"security_version\":"
				"1,\"size\":1,\"sha256\":\"0001\",\"issued_at\":100,"
				"\"expires_at\":200}",
				"'sha256'");
	expect_manifest_refused("{\"device_type\":\"t\\u0000x\",\"version\":\"1.2.0\","
				"\"security_version\":1,\"size\":1,\"sha256\":\"" SHA "\","
				"\"issued_at\":100,\"expires_at\":200}",
				"escape");
	expect_manifest_refused("{" GOOD_FIELDS "}{}", "data after");
	expect_manifest_refused("[1]", "not a JSON object");
	expect_manifest_refused("{" GOOD_FIELDS, "not valid JSON");
	expect_manifest_refused("", "empty");
	expect_manifest_refused("{\"device_type\":\"t\xc3\xa9\"}", "not printable ASCII");
	expect_manifest_refused("{\"device_type\":\"\",\"version\":\"1.2.0\",\"security_version\":"
				"1,\"size\":1,\"sha256\":\"" SHA "\",\"issued_at\":100,"
				"\"expires_at\":200}",
				"'device_type' is empty");
	/* Oversize: over MOAT_MANIFEST_MAX_BYTES even if valid JSON. */
	size_t big = MOAT_MANIFEST_MAX_BYTES + 64;
	char *json = malloc(big + 1);
	assert_non_null(json);
	int n = snprintf(json, big + 1, "{" GOOD_FIELDS);
	memset(json + n, ' ', big - (size_t)n - 1);
	json[big - 1] = '}';
	json[big] = '\0';
	expect_manifest_refused(json, "more than the limit");
	free(json);
}

static void test_manifest_serialize_validates(void **state)
{
	(void)state;
	struct moat_err e;
	char *json = NULL;
	size_t len;
	struct moat_manifest m = sample();
	m.expires_at = m.issued_at;
	assert_int_equal(moat_manifest_serialize(&m, &json, &len, &e), MOAT_EINVAL);
	m = sample();
	snprintf(m.version, sizeof(m.version), "latest");
	assert_int_equal(moat_manifest_serialize(&m, &json, &len, &e), MOAT_EINVAL);
	m = sample();
	m.size = 0;
	assert_int_equal(moat_manifest_serialize(&m, &json, &len, &e), MOAT_EINVAL);
	m = sample();
	memset(m.device_type, 'a', sizeof(m.device_type));
	assert_int_equal(moat_manifest_serialize(&m, &json, &len, &e), MOAT_EINVAL);
	assert_null(json);
}

/* ---- envelopes ---- */

static void expect_env_refused(const char *json, const char *needle)
{
	struct moat_envelope env;
	struct moat_err e;
	memset(&e, 0, sizeof(e));
	assert_int_equal(moat_envelope_parse(json, strlen(json), &env, &e), MOAT_EINVAL);
	if (!strstr(e.msg, needle)) {
		fail_msg("'%.80s': message '%s' lacks '%s'", json, e.msg, needle);
	}
	assert_int_equal(env.sig_count, 0);
	assert_int_equal(env.payload_len, 0);
}

#define KEYID "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SIG1 "{\"keyid\":\"" KEYID "\",\"sig\":\"AAAA\"}"

static void test_envelope_refusals(void **state)
{
	(void)state;
	struct moat_envelope env;
	struct moat_err e;
	const char *ok = "{\"payloadType\":\"x/y\",\"payload\":\"Zm9v\",\"signatures\":[" SIG1 "]}";
	assert_int_equal(moat_envelope_parse(ok, strlen(ok), &env, &e), 0);
	assert_int_equal(env.sig_count, 1);
	assert_int_equal(env.payload_len, 3);
	expect_env_refused("{\"payloadType\":\"x/y\",\"payload\":\"Zm9=\",\"signatures\":[]}",
			   "'payload' is not canonical base64");
	expect_env_refused("{\"payloadType\":\"x/y\",\"payload\":\"Zm9v\",\"signatures\":["
			   "{\"keyid\":\"" KEYID "\",\"sig\":\"AAB=\"}]}",
			   "'sig' is not canonical base64");
	expect_env_refused("{\"payloadType\":\"x/y\",\"payload\":\"Zm9v\",\"signatures\":["
			   "{\"keyid\":\"" KEYID "\",\"sig\":\"\"}]}",
			   "'sig' is empty");
	expect_env_refused("{\"payloadType\":\"x/y\",\"payload\":\"Zm9v\",\"signatures\":["
			   "{\"keyid\":\"AA\",\"sig\":\"AAAA\"}]}",
			   "'keyid' is not 64 lower-case hex");
	expect_env_refused("{\"payloadType\":\"x/y\",\"payload\":\"Zm9v\",\"signatures\":["
			   "{\"keyid\":\"" KEYID "\",\"sig\":\"AAAA\",\"x\":1}]}",
			   "unknown field 'x'");
	expect_env_refused("{\"payloadType\":\"x/y\",\"payload\":\"Zm9v\",\"signatures\":[1]}",
			   "signatures[0] is not an object");
	expect_env_refused("{\"payloadType\":\"x/y\",\"payload\":\"Zm9v\",\"signatures\":{}}",
			   "'signatures' is not an array");
	expect_env_refused("{\"payloadType\":\"x/y\",\"payload\":\"Zm9v\"}",
			   "missing field 'signatures'");
	expect_env_refused("{\"payloadType\":\"x/y\",\"payloadType\":\"x/y\",\"payload\":\"Zm9v\","
			   "\"signatures\":[]}",
			   "duplicate field 'payloadType'");
	expect_env_refused("{\"payloadType\":\"x y\",\"payload\":\"Zm9v\",\"signatures\":[]}",
			   "'payloadType' has a character");
	expect_env_refused("{\"payloadType\":\"x/y\",\"payload\":\"\",\"signatures\":[]}",
			   "'payload' is empty");
	expect_env_refused("{\"payloadType\":\"x/y\",\"payload\":\"Zm9v\",\"signatures\":[" SIG1
			   "," SIG1 "," SIG1 "," SIG1 "," SIG1 "," SIG1 "," SIG1 "," SIG1 "," SIG1
			   "]}",
			   "more than 8 signatures");
	/* Payload decoding to more than MOAT_MANIFEST_MAX_BYTES, and an oversize envelope. */
	size_t big = MOAT_ENVELOPE_MAX_BYTES + 16;
	char *json = malloc(big + 1);
	assert_non_null(json);
	int n = snprintf(json, big + 1, "{\"payloadType\":\"x/y\",\"payload\":\"");
	size_t b64len = 4 * ((MOAT_MANIFEST_MAX_BYTES + 1 + 2) / 3);
	memset(json + n, 'A', b64len);
	snprintf(json + n + b64len, big + 1 - (size_t)n - b64len, "\",\"signatures\":[]}");
	expect_env_refused(json, "'payload'");
	memset(json, ' ', big);
	json[0] = '{';
	json[big - 1] = '}';
	json[big] = '\0';
	expect_env_refused(json, "more than the limit");
	free(json);
}

static void test_envelope_roundtrip(void **state)
{
	(void)state;
	struct moat_manifest m = sample();
	EVP_PKEY *k[2] = {gen(MOAT_KEY_EC_P256), gen(MOAT_KEY_ED25519)};
	size_t len;
	char *json = signed_env(&m, k, 2, &len);
	struct moat_envelope env, env2;
	struct moat_err e;
	assert_int_equal(moat_envelope_parse(json, len, &env, &e), 0);
	assert_int_equal(env.sig_count, 2);
	assert_string_equal(env.payload_type, MOAT_FW_PAYLOAD_TYPE);
	char *json2 = NULL;
	size_t len2;
	assert_int_equal(moat_envelope_serialize(&env, &json2, &len2, &e), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(json, json2, len);
	assert_int_equal(moat_envelope_parse(json2, len2, &env2, &e), 0);
	assert_memory_equal(&env, &env2, sizeof(env));
	free(json);
	free(json2);
	EVP_PKEY_free(k[0]);
	EVP_PKEY_free(k[1]);
}

static void test_envelope_sign_refusals(void **state)
{
	(void)state;
	struct moat_manifest m = sample();
	struct moat_envelope env;
	struct moat_err e;
	EVP_PKEY *k = gen(MOAT_KEY_ED25519);
	assert_int_equal(moat_envelope_init(&env, &m, &e), 0);
	assert_int_equal(moat_envelope_sign(&env, k, &e), 0);
	/* The same key twice. */
	assert_int_equal(moat_envelope_sign(&env, k, &e), MOAT_EEXIST);
	assert_int_equal(env.sig_count, 1);
	/* More than MOAT_ENVELOPE_MAX_SIGS. */
	EVP_PKEY *more[MOAT_ENVELOPE_MAX_SIGS];
	for (int i = 0; i < MOAT_ENVELOPE_MAX_SIGS; i++) {
		more[i] = gen(MOAT_KEY_ED25519);
		int rc = moat_envelope_sign(&env, more[i], &e);
		assert_int_equal(rc, i < MOAT_ENVELOPE_MAX_SIGS - 1 ? 0 : MOAT_EINVAL);
	}
	for (int i = 0; i < MOAT_ENVELOPE_MAX_SIGS; i++) {
		EVP_PKEY_free(more[i]);
	}
	/* Key types that are not allowed. */
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	EVP_PKEY *rsa2k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	assert_non_null(p384);
	assert_non_null(rsa2k);
	assert_int_equal(moat_envelope_init(&env, &m, &e), 0);
	assert_int_equal(moat_envelope_sign(&env, p384, &e), MOAT_EINVAL);
	assert_non_null(strstr(e.msg, "P-256"));
	assert_int_equal(moat_envelope_sign(&env, rsa2k, &e), MOAT_EINVAL);
	assert_non_null(strstr(e.msg, "2048 bits"));
	assert_int_equal(env.sig_count, 0);
	struct moat_fw_trust t;
	memset(&t, 0, sizeof(t));
	assert_int_equal(moat_fw_trust_add(&t, p384, &e), MOAT_EINVAL);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(rsa2k);
	EVP_PKEY_free(k);
}

/* ---- the decision ---- */

struct fixture {
	EVP_PKEY *k[3]; /* trusted: ec-p256, ed25519, rsa-3072 */
	EVP_PKEY *stranger;
	struct moat_fw_trust trust1; /* k[0..2], threshold 1 */
	struct moat_fw_trust trust2; /* k[0..2], threshold 2 */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f) {
		return -1;
	}
	f->k[0] = gen(MOAT_KEY_EC_P256);
	f->k[1] = gen(MOAT_KEY_ED25519);
	f->k[2] = gen(MOAT_KEY_RSA_3072);
	f->stranger = gen(MOAT_KEY_EC_P256);
	trust_of(&f->trust1, f->k, 3, 1);
	trust_of(&f->trust2, f->k, 3, 2);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 3; i++) {
		EVP_PKEY_free(f->k[i]);
	}
	EVP_PKEY_free(f->stranger);
	moat_fw_trust_free(&f->trust1);
	moat_fw_trust_free(&f->trust2);
	free(f);
	return 0;
}

static void test_decide_accept(void **state)
{
	struct fixture *f = *state;
	struct moat_manifest m = sample(), got;
	struct moat_fw_policy p = policy();
	/* Each key type alone, and two together over a threshold of two. */
	for (int i = 0; i < 3; i++) {
		size_t len;
		char *json = signed_env(&m, &f->k[i], 1, &len);
		assert_int_equal(decide_json(json, len, &f->trust1, &p, &got), MOAT_FW_ACCEPT);
		assert_memory_equal(&got, &m, sizeof(m));
		free(json);
	}
	size_t len;
	EVP_PKEY *two[2] = {f->k[2], f->k[0]};
	char *json = signed_env(&m, two, 2, &len);
	assert_int_equal(decide_json(json, len, &f->trust2, &p, &got), MOAT_FW_ACCEPT);
	/* An extra signature by an unknown key does not hurt. */
	EVP_PKEY *three[3] = {f->stranger, f->k[0], f->k[1]};
	free(json);
	json = signed_env(&m, three, 3, &len);
	assert_int_equal(decide_json(json, len, &f->trust2, &p, NULL), MOAT_FW_ACCEPT);
	free(json);
	/* Nothing installed yet, same issued_at as the last one: still accepted. */
	p.current_version = NULL;
	p.last_issued_at = m.issued_at;
	json = signed_env(&m, f->k, 1, &len);
	assert_int_equal(decide_json(json, len, &f->trust1, &p, NULL), MOAT_FW_ACCEPT);
	free(json);
}

static void test_decide_tampered(void **state)
{
	struct fixture *f = *state;
	struct moat_manifest m = sample(), got;
	struct moat_fw_policy p = policy();
	struct moat_envelope env;
	struct moat_err e;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(moat_envelope_init(&env, &m, &e), 0);
		assert_int_equal(moat_envelope_sign(&env, f->k[i], &e), 0);
		/* Raise the size in the signed payload: "size":1000 -> "size":9000. */
		char *pos = memmem(env.payload, env.payload_len, "\"size\":1000", 11);
		assert_non_null(pos);
		pos[7] = '9';
		char *json;
		size_t len;
		assert_int_equal(moat_envelope_serialize(&env, &json, &len, &e), 0);
		memset(&got, 0x5a, sizeof(got));
		assert_int_equal(decide_json(json, len, &f->trust1, &p, &got),
				 MOAT_FW_BAD_SIGNATURE);
		struct moat_manifest zero;
		memset(&zero, 0, sizeof(zero));
		assert_memory_equal(&got, &zero, sizeof(got));
		free(json);
		/* A flipped signature bit. */
		assert_int_equal(moat_envelope_init(&env, &m, &e), 0);
		assert_int_equal(moat_envelope_sign(&env, f->k[i], &e), 0);
		env.sigs[0].sig[env.sigs[0].sig_len / 2] ^= 0x01;
		assert_int_equal(moat_envelope_serialize(&env, &json, &len, &e), 0);
		assert_int_equal(decide_json(json, len, &f->trust1, &p, NULL),
				 MOAT_FW_BAD_SIGNATURE);
		free(json);
	}
	/* Signed for another payload type: the PAE differs, so the signature fails. */
	assert_int_equal(moat_envelope_init(&env, &m, &e), 0);
	assert_int_equal(moat_envelope_sign(&env, f->k[0], &e), 0);
	char *json;
	size_t len;
	/* A valid signature over a different payload type is refused on the type first. */
	snprintf(env.payload_type, sizeof(env.payload_type), "application/json");
	assert_int_equal(moat_envelope_serialize(&env, &json, &len, &e), 0);
	assert_int_equal(decide_json(json, len, &f->trust1, &p, NULL), MOAT_FW_BAD_PAYLOAD_TYPE);
	free(json);
}

static void test_decide_unknown_key(void **state)
{
	struct fixture *f = *state;
	struct moat_manifest m = sample();
	struct moat_fw_policy p = policy();
	size_t len;
	char *json = signed_env(&m, &f->stranger, 1, &len);
	assert_int_equal(decide_json(json, len, &f->trust1, &p, NULL), MOAT_FW_UNKNOWN_KEY);
	free(json);
	/* No signatures at all. */
	struct moat_envelope env;
	struct moat_err e;
	assert_int_equal(moat_envelope_init(&env, &m, &e), 0);
	assert_int_equal(moat_envelope_serialize(&env, &json, &len, &e), 0);
	assert_int_equal(decide_json(json, len, &f->trust1, &p, NULL), MOAT_FW_UNKNOWN_KEY);
	free(json);
	/* A stranger's signature under a trusted key's id is a bad signature. */
	assert_int_equal(moat_envelope_init(&env, &m, &e), 0);
	assert_int_equal(moat_envelope_sign(&env, f->stranger, &e), 0);
	memcpy(env.sigs[0].keyid, f->trust1.keys[0].keyid, MOAT_FW_KEYID_HEX_LEN);
	assert_int_equal(moat_envelope_serialize(&env, &json, &len, &e), 0);
	assert_int_equal(decide_json(json, len, &f->trust1, &p, NULL), MOAT_FW_BAD_SIGNATURE);
	free(json);
}

static void test_decide_threshold(void **state)
{
	struct fixture *f = *state;
	struct moat_manifest m = sample();
	struct moat_fw_policy p = policy();
	size_t len;
	/* One trusted signature plus one unknown: below 2. */
	EVP_PKEY *ks[2] = {f->k[1], f->stranger};
	char *json = signed_env(&m, ks, 2, &len);
	assert_int_equal(decide_json(json, len, &f->trust2, &p, NULL), MOAT_FW_THRESHOLD);
	free(json);
	/* The same key's signature twice counts once. */
	struct moat_envelope env;
	struct moat_err e;
	assert_int_equal(moat_envelope_init(&env, &m, &e), 0);
	assert_int_equal(moat_envelope_sign(&env, f->k[0], &e), 0);
	env.sigs[1] = env.sigs[0];
	env.sig_count = 2;
	assert_int_equal(moat_envelope_serialize(&env, &json, &len, &e), 0);
	assert_int_equal(decide_json(json, len, &f->trust2, &p, NULL), MOAT_FW_THRESHOLD);
	free(json);
	/* Two different valid signatures (ECDSA is randomized) by the same key: still one. */
	struct moat_envelope env2;
	assert_int_equal(moat_envelope_init(&env2, &m, &e), 0);
	assert_int_equal(moat_envelope_sign(&env2, f->k[0], &e), 0);
	env.sigs[1] = env2.sigs[0];
	assert_true(env.sigs[0].sig_len != env.sigs[1].sig_len ||
		    memcmp(env.sigs[0].sig, env.sigs[1].sig, env.sigs[0].sig_len) != 0);
	assert_int_equal(moat_envelope_serialize(&env, &json, &len, &e), 0);
	assert_int_equal(decide_json(json, len, &f->trust2, &p, NULL), MOAT_FW_THRESHOLD);
	free(json);
}

static char *env_for(struct fixture *f, const struct moat_manifest *m, size_t *len)
{
	return signed_env(m, f->k, 1, len);
}

static void test_decide_policy(void **state)
{
	struct fixture *f = *state;
	struct moat_fw_policy p = policy();
	struct moat_manifest m;
	size_t len;
	char *json;

	/* Freeze: expired, or expiring before the last verified issue time. */
	m = sample();
	m.expires_at = NOW;
	json = env_for(f, &m, &len);
	assert_int_equal(decide_json(json, len, &f->trust1, &p, NULL), MOAT_FW_EXPIRED);
	struct moat_fw_policy slow_clock = p;
	slow_clock.now = 0; /* a device without a clock still knows the last issue time */
	slow_clock.last_issued_at = NOW;
	assert_int_equal(decide_json(json, len, &f->trust1, &slow_clock, NULL), MOAT_FW_ROLLBACK);
	free(json);
	m = sample();
	m.issued_at = NOW - 100;
	m.expires_at = NOW - 50;
	json = env_for(f, &m, &len);
	slow_clock.last_issued_at = NOW - 100;
	assert_int_equal(decide_json(json, len, &f->trust1, &slow_clock, NULL), MOAT_FW_ACCEPT);
	slow_clock.last_issued_at = NOW - 50;
	assert_int_equal(decide_json(json, len, &f->trust1, &slow_clock, NULL), MOAT_FW_ROLLBACK);
	free(json);

	/* Rollback: an older manifest replayed. */
	m = sample();
	m.issued_at = p.last_issued_at - 1;
	json = env_for(f, &m, &len);
	assert_int_equal(decide_json(json, len, &f->trust1, &p, NULL), MOAT_FW_ROLLBACK);
	free(json);

	/* Downgrade: security_version below the floor. */
	m = sample();
	m.security_version = p.security_floor - 1;
	json = env_for(f, &m, &len);
	assert_int_equal(decide_json(json, len, &f->trust1, &p, NULL), MOAT_FW_DOWNGRADE);
	free(json);
	m.security_version = p.security_floor;
	json = env_for(f, &m, &len);
	assert_int_equal(decide_json(json, len, &f->trust1, &p, NULL), MOAT_FW_ACCEPT);
	free(json);

	/* Mix-and-match: another device type. */
	m = sample();
	snprintf(m.device_type, sizeof(m.device_type), "door_lock");
	json = env_for(f, &m, &len);
	assert_int_equal(decide_json(json, len, &f->trust1, &p, NULL), MOAT_FW_WRONG_TYPE);
	free(json);

	/* Not newer: same version, older version, pre-release of the running one. */
	const char *not_newer[] = {"1.1.0", "1.0.9", "1.1.0-rc.1", "1.1.0+build.7"};
	for (size_t i = 0; i < sizeof(not_newer) / sizeof(not_newer[0]); i++) {
		m = sample();
		snprintf(m.version, sizeof(m.version), "%s", not_newer[i]);
		json = env_for(f, &m, &len);
		assert_int_equal(decide_json(json, len, &f->trust1, &p, NULL), MOAT_FW_NOT_NEWER);
		/* Boot checks an installed image: age and "newer" do not apply. */
		struct moat_fw_policy boot = p;
		boot.purpose = MOAT_FW_FOR_BOOT;
		boot.now = NOW + 1000 * DAY;
		assert_int_equal(decide_json(json, len, &f->trust1, &boot, NULL), MOAT_FW_ACCEPT);
		free(json);
	}
	/* Boot still refuses the wrong type and a downgrade. */
	struct moat_fw_policy boot = p;
	boot.purpose = MOAT_FW_FOR_BOOT;
	m = sample();
	m.security_version = 0;
	json = env_for(f, &m, &len);
	assert_int_equal(decide_json(json, len, &f->trust1, &boot, NULL), MOAT_FW_DOWNGRADE);
	free(json);
}

static void test_decide_malformed(void **state)
{
	struct fixture *f = *state;
	struct moat_fw_policy p = policy();
	assert_int_equal(decide_json("{", 1, &f->trust1, &p, NULL), MOAT_FW_MALFORMED);
	assert_int_equal(decide_json("", 0, &f->trust1, &p, NULL), MOAT_FW_MALFORMED);
	/* A correctly signed payload that is not a valid manifest. */
	struct moat_envelope env;
	struct moat_err e;
	struct moat_manifest m = sample();
	assert_int_equal(moat_envelope_init(&env, &m, &e), 0);
	const char *bad = "{\"device_type\":\"temp_sensor\"}";
	memcpy(env.payload, bad, strlen(bad));
	env.payload_len = strlen(bad);
	assert_int_equal(moat_envelope_sign(&env, f->k[0], &e), 0);
	char *json;
	size_t len;
	assert_int_equal(moat_envelope_serialize(&env, &json, &len, &e), 0);
	assert_int_equal(decide_json(json, len, &f->trust1, &p, NULL), MOAT_FW_MALFORMED);
	free(json);
	/* No device type in the policy. */
	p.device_type = NULL;
	json = env_for(f, &m, &len);
	assert_int_equal(decide_json(json, len, &f->trust1, &p, NULL), MOAT_FW_MALFORMED);
	free(json);
	for (int v = 0; v < MOAT_FW_VERDICT_COUNT; v++) {
		assert_string_not_equal(moat_fw_verdict_name((enum moat_fw_verdict)v), "unknown");
	}
	assert_string_equal(moat_fw_verdict_name(MOAT_FW_EXPIRED), "expired");
}

/* ---- trust ---- */

static void test_trust(void **state)
{
	struct fixture *f = *state;
	struct moat_err e;
	char *json;
	size_t len;
	assert_int_equal(moat_fw_trust_serialize(&f->trust2, &json, &len, &e), 0);
	struct moat_fw_trust t;
	assert_int_equal(moat_fw_trust_parse(json, len, &t, &e), 0);
	assert_int_equal(t.count, 3);
	assert_int_equal(t.threshold, 2);
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(t.keys[i].keyid, f->trust2.keys[i].keyid);
	}
	/* Adding again: EEXIST. Removing lowers the threshold to what is left. */
	assert_int_equal(moat_fw_trust_add(&t, f->k[1], &e), MOAT_EEXIST);
	t.threshold = 3;
	assert_int_equal(moat_fw_trust_remove(&t, f->trust2.keys[1].keyid, &e), 0);
	assert_int_equal(t.count, 2);
	assert_int_equal(t.threshold, 2);
	assert_int_equal(moat_fw_trust_remove(&t, f->trust2.keys[1].keyid, &e), MOAT_ENOENT);
	assert_string_equal(t.keys[1].keyid, f->trust2.keys[2].keyid);
	moat_fw_trust_free(&t);

	/* The keyid is the SHA-256 of the SubjectPublicKeyInfo and ignores the private half. */
	char id[MOAT_FW_KEYID_HEX_LEN + 1];
	assert_int_equal(moat_fw_keyid(f->k[0], id, &e), 0);
	assert_string_equal(id, f->trust1.keys[0].keyid);
	assert_int_equal(strlen(id), MOAT_FW_KEYID_HEX_LEN);

	/* Refusals: threshold 0 and above count, duplicate key, unknown field, bad PEM. */
	char *pem_start = strstr(json, "\"-----BEGIN");
	assert_non_null(pem_start);
	char *pem_end = strchr(pem_start + 1, '"'); /* no quote inside PEM */
	assert_non_null(pem_end);
	size_t pem_len = (size_t)(pem_end + 1 - pem_start);
	char buf[8192];
	struct {
		const char *before, *after, *needle;
	} cases[] = {
		{"{\"threshold\":0,\"keys\":[", "]}", "'threshold' is outside 1..1"},
		{"{\"threshold\":2,\"keys\":[", "]}", "'threshold' is outside 1..1"},
		{"{\"threshold\":1,\"keys\":[", "],\"x\":1}", "unknown field 'x'"},
		{"{\"threshold\":1,\"keys\":[]}", "", "data after"},
		{"{\"threshold\":1,\"keys\":[", ",\"x\"]}", "keys[1] does not start with"},
		{"{\"threshold\":1,\"keys\":[",
		 ",\"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\\n\"]}",
		 "keys[1] is not a PEM public key"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = snprintf(buf, sizeof(buf), "%s%.*s%s", cases[i].before, (int)pem_len,
				 pem_start, cases[i].after);
		assert_true(n > 0 && (size_t)n < sizeof(buf));
		memset(&e, 0, sizeof(e));
		assert_int_equal(moat_fw_trust_parse(buf, (size_t)n, &t, &e), MOAT_EINVAL);
		if (!strstr(e.msg, cases[i].needle)) {
			fail_msg("case %zu: '%s' lacks '%s'", i, e.msg, cases[i].needle);
		}
		assert_int_equal(t.count, 0);
	}
	int n = snprintf(buf, sizeof(buf), "{\"threshold\":1,\"keys\":[%.*s,%.*s]}", (int)pem_len,
			 pem_start, (int)pem_len, pem_start);
	assert_int_equal(moat_fw_trust_parse(buf, (size_t)n, &t, &e), MOAT_EINVAL);
	assert_non_null(strstr(e.msg, "duplicate"));
	n = snprintf(buf, sizeof(buf), "{\"threshold\":1,\"keys\":[]}");
	assert_int_equal(moat_fw_trust_parse(buf, (size_t)n, &t, &e), MOAT_EINVAL);
	/* A PEM string with more after the key. */
	n = snprintf(buf, sizeof(buf), "{\"threshold\":1,\"keys\":[%.*sjunk\"]}", (int)pem_len - 1,
		     pem_start);
	assert_int_equal(moat_fw_trust_parse(buf, (size_t)n, &t, &e), MOAT_EINVAL);
	assert_non_null(strstr(e.msg, "data after the key"));
	/* Text before the key, which OpenSSL's PEM reader would skip. */
	n = snprintf(buf, sizeof(buf), "{\"threshold\":1,\"keys\":[\"junk\\n%.*s]}",
		     (int)pem_len - 1, pem_start + 1);
	assert_int_equal(moat_fw_trust_parse(buf, (size_t)n, &t, &e), MOAT_EINVAL);
	assert_non_null(strstr(e.msg, "does not start with"));
	free(json);
	/* An empty trust set does not serialize. */
	struct moat_fw_trust empty;
	memset(&empty, 0, sizeof(empty));
	assert_int_equal(moat_fw_trust_serialize(&empty, &json, &len, &e), MOAT_EINVAL);
	moat_fw_trust_free(&empty);
}

static void test_key_types(void **state)
{
	(void)state;
	enum moat_key_type t;
	struct moat_err e;
	assert_int_equal(moat_fw_key_type_parse("ed25519", &t, &e), 0);
	assert_int_equal(t, MOAT_KEY_ED25519);
	assert_int_equal(moat_fw_key_type_parse("rsa-3072", &t, &e), 0);
	assert_int_equal(moat_fw_key_type_parse("rsa-2048", &t, &e), MOAT_EINVAL);
	assert_int_equal(moat_fw_key_type_parse("rsa-4096", &t, &e), MOAT_EINVAL);
	assert_string_equal(e.msg, "unknown firmware key type 'rsa-4096' (ec-p256, ed25519 or "
				   "rsa-3072)");
	assert_int_equal(moat_fw_key_type_parse("EC-P256", &t, &e), MOAT_EINVAL);
	assert_string_equal(moat_key_type_name(MOAT_KEY_EC_P256), "ec-p256");
	/* one enum and one generator for identity and firmware keys (keys.h) */
	static const char *const names[] = {"ec-p256", "rsa-2048", "rsa-3072", "rsa-4096",
					    "ed25519"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_true(moat_key_type_lookup(names[i], &t));
		assert_string_equal(moat_key_type_name(t), names[i]);
	}
	t = MOAT_KEY_RSA_4096;
	assert_false(moat_key_type_lookup("Ed25519", &t));
	assert_false(moat_key_type_lookup(NULL, &t));
	assert_int_equal(t, MOAT_KEY_RSA_4096);
	assert_string_equal(moat_key_type_name((enum moat_key_type)99), "unknown");
	static const enum moat_key_type fw_types[] = {MOAT_KEY_EC_P256, MOAT_KEY_ED25519};
	for (size_t i = 0; i < 2; i++) {
		EVP_PKEY *k = NULL;
		assert_int_equal(moat_key_generate(fw_types[i], &k, &e), 0);
		assert_int_equal(moat_key_is_p256(k), fw_types[i] == MOAT_KEY_EC_P256);
		enum moat_key_type got = MOAT_KEY_RSA_4096;
		assert_int_equal(moat_fw_key_check(k, &got, &e), 0);
		assert_int_equal(got, fw_types[i]);
		EVP_PKEY_free(k);
	}
	EVP_PKEY *k = (EVP_PKEY *)1;
	assert_int_equal(moat_key_generate((enum moat_key_type)99, &k, &e), MOAT_EINVAL);
	assert_null(k);
	/* an identity-only type is still refused for firmware when handed in */
	assert_int_equal(moat_key_generate(MOAT_KEY_RSA_2048, &k, &e), 0);
	assert_int_equal(moat_fw_key_check(k, &t, &e), MOAT_EINVAL);
	EVP_PKEY_free(k);
}

/* ---- streaming ---- */

static void test_stream(void **state)
{
	(void)state;
	unsigned char image[1000];
	for (size_t i = 0; i < sizeof(image); i++) {
		image[i] = (unsigned char)(i * 7);
	}
	struct moat_manifest m = sample();
	unsigned int mdlen;
	assert_int_equal(EVP_Digest(image, sizeof(image), m.sha256, &mdlen, EVP_sha256(), NULL), 1);
	struct moat_fw_stream s;
	struct moat_fw_decision d;
	struct moat_err e;

	assert_int_equal(moat_fw_stream_init(&s, &m, &e), 0);
	for (size_t off = 0; off < sizeof(image); off += 300) {
		size_t n = sizeof(image) - off < 300 ? sizeof(image) - off : 300;
		assert_int_equal(moat_fw_stream_update(&s, image + off, n, &e), 0);
	}
	assert_int_equal(moat_fw_stream_decide(&s, &d), MOAT_FW_ACCEPT);
	moat_fw_stream_free(&s);

	/* Short. */
	assert_int_equal(moat_fw_stream_init(&s, &m, &e), 0);
	assert_int_equal(moat_fw_stream_update(&s, image, 999, &e), 0);
	assert_int_equal(moat_fw_stream_final(&s, &e), MOAT_EVERIFY);
	assert_int_equal(moat_fw_stream_decide(&s, &d), MOAT_FW_SIZE_MISMATCH);
	moat_fw_stream_free(&s);

	/* Long: the update that crosses the size is refused, and stays refused. */
	assert_int_equal(moat_fw_stream_init(&s, &m, &e), 0);
	assert_int_equal(moat_fw_stream_update(&s, image, 999, &e), 0);
	assert_int_equal(moat_fw_stream_update(&s, image, 2, &e), MOAT_EVERIFY);
	assert_int_equal(s.dev.seen, 999);
	assert_int_equal(moat_fw_stream_update(&s, image, 1, &e), MOAT_EVERIFY);
	assert_int_equal(moat_fw_stream_decide(&s, &d), MOAT_FW_SIZE_MISMATCH);
	moat_fw_stream_free(&s);

	/* Right size, one byte changed. */
	image[500] ^= 1;
	assert_int_equal(moat_fw_stream_init(&s, &m, &e), 0);
	assert_int_equal(moat_fw_stream_update(&s, image, sizeof(image), &e), 0);
	assert_int_equal(moat_fw_stream_decide(&s, &d), MOAT_FW_HASH_MISMATCH);
	assert_non_null(strstr(d.msg, "SHA-256"));
	moat_fw_stream_free(&s);
	moat_fw_stream_free(&s); /* free twice is safe */

	m.size = 0;
	assert_int_equal(moat_fw_stream_init(&s, &m, &e), MOAT_EINVAL);
	moat_fw_stream_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_pae),
		cmocka_unit_test(test_semver),
		cmocka_unit_test(test_manifest_roundtrip),
		cmocka_unit_test(test_manifest_refusals),
		cmocka_unit_test(test_manifest_serialize_validates),
		cmocka_unit_test(test_envelope_refusals),
		cmocka_unit_test(test_envelope_roundtrip),
		cmocka_unit_test(test_envelope_sign_refusals),
		cmocka_unit_test(test_key_types),
		cmocka_unit_test(test_stream),
	};
	const struct CMUnitTest decide_tests[] = {
		cmocka_unit_test(test_decide_accept),
		cmocka_unit_test(test_decide_tampered),
		cmocka_unit_test(test_decide_unknown_key),
		cmocka_unit_test(test_decide_threshold),
		cmocka_unit_test(test_decide_policy),
		cmocka_unit_test(test_decide_malformed),
		cmocka_unit_test(test_trust),
	};
	int failed = cmocka_run_group_tests_name("manifest", tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("decide", decide_tests, setup, teardown);
	return failed;
}
