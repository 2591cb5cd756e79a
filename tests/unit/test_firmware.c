/* test_firmware.c: src/firmware: signing keys encrypted at rest, the trust file, rotation,
 * signing an image file and checking image + envelope files as a device would. Each test
 * works in its own temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "moat/firmware.h"
#include "moat/fsutil.h"
#include "testutil.h"
#include "testutil_fw.h"

#define PASS "correct horse battery"
#define NOW 1800000000LL

struct ctx {
	char dir[TU_TMPDIR_MAX]; /* first: tu_state_make */
	char keys[TU_TMPDIR_MAX + 16];
	char image[TU_TMPDIR_MAX + 16];
	char trust[TU_TMPDIR_MAX + 32];
};

static int setup(void **state)
{
	if (tu_state_make(state, sizeof(struct ctx), "fw") != 0) {
		return -1;
	}
	struct ctx *c = *state;
	tu_path(c->keys, sizeof(c->keys), c->dir, "firmware/keys");
	tu_path(c->image, sizeof(c->image), c->dir, "image.bin");
	tu_path(c->trust, sizeof(c->trust), c->keys, "trust.json");
	return 0;
}

static int teardown(void **state)
{
	return tu_state_free(state);
}

/* The test image: len bytes, their content varied by seed. */
static void write_image(const char *path, size_t len, unsigned char seed)
{
	tu_write_pattern(path, len, 31, seed, 0644);
}

static int mode_of(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (int)(st.st_mode & 07777);
}

static char *sign_with(struct ctx *c, const char *const *ids, size_t n, const char *version,
		       int64_t secver, size_t *len)
{
	EVP_PKEY *keys[4] = {NULL};
	struct moat_err e;
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(moat_fwkeys_load_private(c->keys, ids[i], PASS, &keys[i], &e), 0);
	}
	struct moat_manifest m;
	char *json = tu_fw_sign(c->image, keys, n, version, secver, NOW, NOW + 86400, &m, len);
	assert_int_equal(m.size, 300000);
	for (size_t i = 0; i < n; i++) {
		EVP_PKEY_free(keys[i]);
	}
	return json;
}

static enum moat_fw_verdict verify(struct ctx *c, const char *json, size_t len,
				   struct moat_fw_decision *d)
{
	struct moat_fw_trust t;
	struct moat_err e;
	assert_int_equal(moat_fwtrust_load(c->trust, &t, &e), 0);
	struct moat_fw_policy p = {
		.purpose = MOAT_FW_FOR_INSTALL,
		.device_type = "temp_sensor",
		.current_version = "1.0.0",
		.security_floor = 1,
		.now = NOW + 10,
	};
	enum moat_fw_verdict v = moat_fw_verify_image(c->image, json, len, &t, &p, NULL, d);
	moat_fw_trust_free(&t);
	return v;
}

static void test_keygen_files(void **state)
{
	struct ctx *c = *state;
	struct moat_err e;
	char id[MOAT_FW_KEYID_HEX_LEN + 1];
	assert_int_equal(moat_fwkeys_generate(c->keys, MOAT_KEY_EC_P256, "short", id, &e),
			 MOAT_EINVAL);
	assert_false(moat_fs_exists(c->trust));
	assert_int_equal(moat_fwkeys_generate(c->keys, MOAT_KEY_EC_P256, PASS, id, &e), 0);
	assert_int_equal(strlen(id), MOAT_FW_KEYID_HEX_LEN);
	char path[512];
	snprintf(path, sizeof(path), "%s/%s.key", c->keys, id);
	assert_int_equal(mode_of(path), 0600);
	/* Encrypted at rest: scrypt + AES-256 PKCS#8, never the plain key. */
	size_t len;
	char *pem = tu_read_file(path, 65536, &len);
	assert_non_null(strstr(pem, "BEGIN ENCRYPTED PRIVATE KEY"));
	free(pem);
	snprintf(path, sizeof(path), "%s/%s.pub", c->keys, id);
	assert_int_equal(mode_of(path), 0644);
	assert_int_equal(mode_of(c->trust), 0644);

	EVP_PKEY *k = NULL;
	assert_int_equal(moat_fwkeys_load_private(c->keys, id, "wrong passphrase", &k, &e),
			 MOAT_ECRYPTO);
	assert_non_null(strstr(e.msg, "wrong passphrase"));
	assert_null(k);
	assert_int_equal(moat_fwkeys_load_private(c->keys, id, PASS, &k, &e), 0);
	char id2[MOAT_FW_KEYID_HEX_LEN + 1];
	assert_int_equal(moat_fw_keyid(k, id2, &e), 0);
	assert_string_equal(id, id2);
	EVP_PKEY_free(k);

	struct moat_fw_trust t;
	assert_int_equal(moat_fwtrust_load(c->trust, &t, &e), 0);
	assert_int_equal(t.count, 1);
	assert_int_equal(t.threshold, 1);
	assert_string_equal(t.keys[0].keyid, id);
	moat_fw_trust_free(&t);

	/* Prefixes: unique, too short, not hex, unknown. */
	char full[MOAT_FW_KEYID_HEX_LEN + 1];
	char prefix[16];
	snprintf(prefix, sizeof(prefix), "%.10s", id);
	assert_int_equal(moat_fwkeys_resolve(c->keys, prefix, full, &e), 0);
	assert_string_equal(full, id);
	snprintf(prefix, sizeof(prefix), "%.4s", id);
	assert_int_equal(moat_fwkeys_resolve(c->keys, prefix, full, &e), MOAT_EINVAL);
	assert_int_equal(moat_fwkeys_resolve(c->keys, "ABCDEF0123", full, &e), MOAT_EINVAL);
	snprintf(prefix, sizeof(prefix), "%.9s", id);
	prefix[8] = prefix[8] == '0' ? '1' : '0';
	assert_int_equal(moat_fwkeys_resolve(c->keys, prefix, full, &e), MOAT_ENOENT);
}

static void test_damaged_trust_stops_keygen(void **state)
{
	struct ctx *c = *state;
	struct moat_err e;
	char id[MOAT_FW_KEYID_HEX_LEN + 1];
	assert_int_equal(moat_fs_mkdirs(c->keys, 0700, &e), 0);
	tu_write_file(c->trust, "{\"threshold\":1}", 15, 0644);
	assert_int_equal(moat_fwkeys_generate(c->keys, MOAT_KEY_ED25519, PASS, id, &e),
			 MOAT_EINVAL);
	assert_non_null(strstr(e.msg, "missing field 'keys'"));
	assert_string_equal(id, "");
	/* Nothing but the damaged trust file. */
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "test \"$(ls %s | wc -l)\" = 1", c->keys);
	assert_int_equal(system(cmd), 0);
}

/* A key kept in a token is registered by its public half and its URI: the function reads
 * nothing else of the key, so an ordinary key stands in for the token's here (the token
 * itself is test_pkcs11's and test_pkcs11_fw's). */
static void test_token_key_registered(void **state)
{
	struct ctx *c = *state;
	struct moat_err e;
	char id[MOAT_FW_KEYID_HEX_LEN + 1], id2[MOAT_FW_KEYID_HEX_LEN + 1];
	char path[512];
	const char *uri = "pkcs11:token=moat;object=fw1?module-path=/usr/lib/p11.so";
	EVP_PKEY *key = tu_key_p256();
	assert_int_equal(moat_fwkeys_add_token(c->keys, key, uri, id, &e), 0);
	snprintf(path, sizeof(path), "%s/%s.uri", c->keys, id);
	assert_int_equal(mode_of(path), 0600);
	size_t len = 0;
	char *text = tu_read_file(path, 4096, &len);
	assert_int_equal(len, strlen(uri) + 1);
	assert_memory_equal(text, uri, strlen(uri));
	free(text);
	snprintf(path, sizeof(path), "%s/%s.key", c->keys, id);
	assert_false(moat_fs_exists(path));
	char *back = NULL;
	assert_int_equal(moat_fwkeys_token_uri(c->keys, id, &back, &e), 0);
	assert_string_equal(back, uri);
	free(back);
	struct moat_fw_trust t;
	assert_int_equal(moat_fwtrust_load(c->trust, &t, &e), 0);
	assert_int_equal(t.count, 1);
	assert_int_equal(t.threshold, 1);
	assert_string_equal(t.keys[0].keyid, id);
	moat_fw_trust_free(&t);

	/* Refusals leave nothing behind: the same key again, a key type firmware does not
	 * take, a URI that is not one line. */
	size_t files = tu_dir_count(c->keys, NULL);
	assert_int_equal(moat_fwkeys_add_token(c->keys, key, uri, id2, &e), MOAT_EEXIST);
	assert_non_null(strstr(e.msg, "already trusted"));
	assert_string_equal(id2, "");
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	assert_non_null(rsa);
	assert_int_equal(moat_fwkeys_add_token(c->keys, rsa, uri, id2, &e), MOAT_EINVAL);
	assert_non_null(strstr(e.msg, "RSA key of 2048 bits"));
	EVP_PKEY_free(rsa);
	EVP_PKEY *other = tu_key_p256();
	assert_int_equal(moat_fwkeys_add_token(c->keys, other, "pkcs11:a\nb", id2, &e),
			 MOAT_EINVAL);
	assert_int_equal(moat_fwkeys_add_token(c->keys, other, "", id2, &e), MOAT_EINVAL);
	assert_int_equal(tu_dir_count(c->keys, NULL), files);
	assert_int_equal(moat_fwkeys_token_uri(c->keys, "00", &back, &e), MOAT_ENOENT);
	assert_null(back);

	/* A second key, then the token key revoked: its URI goes with it. */
	assert_int_equal(moat_fwkeys_add_token(c->keys, other, "pkcs11:object=fw2", id2, &e), 0);
	assert_int_equal(moat_fwkeys_revoke(c->keys, id, 0, NULL, &e), 0);
	snprintf(path, sizeof(path), "%s/revoked/%s.uri", c->keys, id);
	assert_true(moat_fs_exists(path));
	assert_int_equal(moat_fwkeys_token_uri(c->keys, id, &back, &e), MOAT_ENOENT);
	EVP_PKEY_free(other);
	EVP_PKEY_free(key);
}

static void test_sign_verify_rotate(void **state)
{
	struct ctx *c = *state;
	struct moat_err e;
	char a[MOAT_FW_KEYID_HEX_LEN + 1], b[MOAT_FW_KEYID_HEX_LEN + 1];
	assert_int_equal(moat_fwkeys_generate(c->keys, MOAT_KEY_EC_P256, PASS, a, &e), 0);
	assert_int_equal(moat_fwkeys_generate(c->keys, MOAT_KEY_ED25519, PASS, b, &e), 0);
	assert_int_equal(moat_fwkeys_set_threshold(c->keys, 3, &e), MOAT_EINVAL);
	assert_int_equal(moat_fwkeys_set_threshold(c->keys, 0, &e), MOAT_EINVAL);
	assert_int_equal(moat_fwkeys_set_threshold(c->keys, 2, &e), 0);
	write_image(c->image, 300000, 1);

	struct moat_fw_decision d;
	size_t len1, len2;
	const char *both[2] = {a, b};
	char *one = sign_with(c, both, 1, "1.1.0", 1, &len1);
	char *two = sign_with(c, both, 2, "1.1.0", 1, &len2);
	assert_int_equal(verify(c, two, len2, &d), MOAT_FW_ACCEPT);
	assert_non_null(strstr(d.msg, "image matches"));
	assert_int_equal(verify(c, one, len1, &d), MOAT_FW_THRESHOLD);

	/* The image: one byte changed, one byte short, one byte long. */
	write_image(c->image, 300000, 2);
	assert_int_equal(verify(c, two, len2, &d), MOAT_FW_HASH_MISMATCH);
	write_image(c->image, 299999, 1);
	assert_int_equal(verify(c, two, len2, &d), MOAT_FW_SIZE_MISMATCH);
	write_image(c->image, 300001, 1);
	assert_int_equal(verify(c, two, len2, &d), MOAT_FW_SIZE_MISMATCH);
	unlink(c->image);
	assert_int_equal(verify(c, two, len2, &d), MOAT_FW_SIZE_MISMATCH);
	assert_non_null(strstr(d.msg, "image:"));
	write_image(c->image, 300000, 1);
	assert_int_equal(verify(c, two, len2, &d), MOAT_FW_ACCEPT);

	/* Rotation: revoking a would leave one key for a threshold of 2: refused, nothing
	 * changed, unless the operator lowers the threshold explicitly (to what is left). */
	int threshold = 0;
	assert_int_equal(moat_fwkeys_revoke(c->keys, a, 0, &threshold, &e), MOAT_EDENIED);
	assert_non_null(strstr(e.msg, "threshold of 2"));
	assert_non_null(strstr(e.msg, "--threshold 1"));
	assert_int_equal(verify(c, one, len1, &d), MOAT_FW_THRESHOLD);
	assert_int_equal(moat_fwkeys_revoke(c->keys, a, 2, &threshold, &e), MOAT_EINVAL);
	assert_int_equal(verify(c, two, len2, &d), MOAT_FW_ACCEPT);
	assert_int_equal(moat_fwkeys_revoke(c->keys, a, 1, &threshold, &e), 0);
	assert_int_equal(threshold, 1);
	char path[512];
	snprintf(path, sizeof(path), "%s/revoked/%s.key", c->keys, a);
	assert_true(moat_fs_exists(path));
	snprintf(path, sizeof(path), "%s/%s.key", c->keys, a);
	assert_false(moat_fs_exists(path));
	EVP_PKEY *k = NULL;
	assert_int_equal(moat_fwkeys_load_private(c->keys, a, PASS, &k, &e), MOAT_ENOENT);
	assert_int_equal(moat_fwkeys_resolve(c->keys, a, path, &e), MOAT_ENOENT);
	/* Signed by a alone: now an unknown key. Signed by both: b's signature suffices. */
	assert_int_equal(verify(c, one, len1, &d), MOAT_FW_UNKNOWN_KEY);
	assert_int_equal(verify(c, two, len2, &d), MOAT_FW_ACCEPT);
	assert_int_equal(moat_fwkeys_revoke(c->keys, a, 0, NULL, &e), MOAT_ENOENT);
	/* The last key stays until its replacement exists. */
	assert_int_equal(moat_fwkeys_revoke(c->keys, b, 0, NULL, &e), MOAT_EDENIED);
	free(one);
	free(two);

	/* Refusals of the signer: bad version, device type, empty image. */
	EVP_PKEY *kb = NULL;
	assert_int_equal(moat_fwkeys_load_private(c->keys, b, PASS, &kb, &e), 0);
	struct moat_fw_sign_req req = {c->image, "temp_sensor", "1.0", 1, NOW, NOW + 10};
	char *json = NULL;
	size_t len;
	assert_int_equal(moat_fw_sign_image(&req, &kb, 1, NULL, &json, &len, &e), MOAT_EINVAL);
	req.version = "1.0.0";
	req.device_type = "Temp Sensor";
	assert_int_equal(moat_fw_sign_image(&req, &kb, 1, NULL, &json, &len, &e), MOAT_EINVAL);
	req.device_type = "temp_sensor";
	req.expires_at = NOW;
	assert_int_equal(moat_fw_sign_image(&req, &kb, 1, NULL, &json, &len, &e), MOAT_EINVAL);
	req.expires_at = NOW + 10;
	write_image(c->image, 0, 1);
	assert_int_equal(moat_fw_sign_image(&req, &kb, 1, NULL, &json, &len, &e), MOAT_EINVAL);
	assert_null(json);
	EVP_PKEY_free(kb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_keygen_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_trust_stops_keygen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sign_verify_rotate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_key_registered, setup, teardown),
	};
	return cmocka_run_group_tests_name("firmware", tests, NULL, NULL);
}
