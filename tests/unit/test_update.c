/* test_update.c: src/update: the boot.state parser and writer (every rejection path), the
 * pure slot state machine (stage, select, confirm, revert; a "power fail" after every
 * state write of an update and its boot), and the state directory on disk: provisioning,
 * verification into a sealed memfd, refusal of a modified image or a slot below the floor,
 * and confirmation raising the floor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "moat/agent.h"
#include "moat/firmware.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"
#include "moat/update.h"

static const char good[] = "moat-boot-state 1\n"
			   "device_type=temp_sensor\n"
			   "active=a\n"
			   "trial=b\n"
			   "attempts=1\n"
			   "deadline=1800000120\n"
			   "floor=3\n"
			   "last_issued_at=1800000000\n";

static void test_state_roundtrip(void **state)
{
	(void)state;
	struct moat_boot_state st;
	struct moat_err e;
	char buf[MOAT_BOOT_STATE_MAX_BYTES];
	size_t len = 0;

	assert_int_equal(moat_boot_state_parse(good, strlen(good), &st, &e), 0);
	assert_string_equal(st.device_type, "temp_sensor");
	assert_int_equal(st.active, 'a');
	assert_int_equal(st.trial, 'b');
	assert_int_equal(st.attempts, 1);
	assert_int_equal(st.deadline, 1800000120LL);
	assert_int_equal(st.floor, 3);
	assert_int_equal(st.last_issued_at, 1800000000LL);
	assert_int_equal(moat_boot_state_format(&st, buf, sizeof(buf), &len, &e), 0);
	assert_int_equal(len, strlen(good));
	assert_memory_equal(buf, good, len);
	/* A buffer one byte short is refused, never truncated. */
	assert_int_equal(moat_boot_state_format(&st, buf, len, &len, &e), MOAT_EINVAL);
}

/* Replaces the first occurrence of from by to in good and expects a refusal naming what. */
static void refused(const char *from, const char *to, const char *what)
{
	char text[2048];
	const char *at = strstr(good, from);
	struct moat_boot_state st;
	struct moat_err e;

	assert_non_null(at);
	int n = snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - good), good, to,
			 at + strlen(from));
	assert_true(n > 0 && (size_t)n < sizeof(text));
	memset(&st, 0x5a, sizeof(st));
	if (moat_boot_state_parse(text, (size_t)n, &st, &e) != MOAT_EINVAL) {
		fail_msg("accepted: %s -> %s", from, to);
	}
	if (strstr(e.msg, what) == NULL) {
		fail_msg("'%s' not in '%s'", what, e.msg);
	}
	/* On failure the output is zeroed. */
	assert_int_equal(st.active, 0);
	assert_int_equal(st.floor, 0);
}

static void test_state_rejections(void **state)
{
	(void)state;
	refused("moat-boot-state 1", "moat-boot-state 2", "header");
	refused("moat-boot-state 1\n", "", "header");
	refused("device_type=temp_sensor", "device_type=Temp Sensor", "device_type");
	refused("device_type=temp_sensor", "device_type=", "device_type");
	refused("device_type=temp_sensor\n", "", "expected device_type=");
	refused("active=a", "active=c", "active");
	refused("active=a", "active=", "active");
	refused("active=a", "active=ab", "active");
	refused("trial=b", "trial=a", "trial");
	refused("trial=b", "trial=x", "trial");
	refused("attempts=1", "attempts=01", "attempts");
	refused("attempts=1", "attempts=-1", "attempts");
	refused("attempts=1", "attempts=+1", "attempts");
	refused("attempts=1", "attempts=", "attempts");
	refused("attempts=1", "attempts=1x", "attempts");
	refused("floor=3", "floor=99999999999999999", "floor");
	refused("floor=3", "floor=9007199254740992", "floor"); /* 2^53 */
	refused("deadline=1800000120\nfloor=3", "floor=3\ndeadline=1800000120",
		"expected deadline=");
	refused("floor=3\n", "floor=3\nfloor=3\n", "expected last_issued_at=");
	refused("last_issued_at=1800000000\n", "last_issued_at=1800000000", "truncated");
	refused("last_issued_at=1800000000\n", "last_issued_at=1800000000\nextra\n", "trailing");
	refused("last_issued_at=1800000000\n", "last_issued_at=1800000000\r\n", "last_issued_at");
	refused("active=a\n", "active=a \n", "active");
	refused("trial=b\nattempts=1\ndeadline=1800000120", "trial=-\nattempts=1\ndeadline=0",
		"without trial");
	refused("trial=b\nattempts=1\ndeadline=1800000120", "trial=-\nattempts=0\ndeadline=5",
		"without trial");

	/* Oversized input, and a NUL inside the text. */
	struct moat_boot_state st;
	struct moat_err e;
	char big[MOAT_BOOT_STATE_MAX_BYTES + 1];
	memset(big, 'a', sizeof(big));
	assert_int_equal(moat_boot_state_parse(big, sizeof(big), &st, &e), MOAT_EINVAL);
	assert_non_null(strstr(e.msg, "larger"));
	char nul[sizeof(good)];
	memcpy(nul, good, sizeof(good));
	nul[strlen("moat-boot-state 1\ndevice_type=temp")] = '\0';
	assert_int_equal(moat_boot_state_parse(nul, sizeof(good) - 1, &st, &e), MOAT_EINVAL);
	assert_int_equal(moat_boot_state_parse("", 0, &st, &e), MOAT_EINVAL);
}

static struct moat_boot_state base(void)
{
	struct moat_boot_state st;
	memset(&st, 0, sizeof(st));
	snprintf(st.device_type, sizeof(st.device_type), "temp_sensor");
	st.active = 'a';
	st.floor = 2;
	st.last_issued_at = 1000;
	return st;
}

static struct moat_manifest manifest(int64_t secver, int64_t issued_at)
{
	struct moat_manifest m;
	memset(&m, 0, sizeof(m));
	m.security_version = secver;
	m.issued_at = issued_at;
	return m;
}

static void test_machine(void **state)
{
	(void)state;
	struct moat_boot_state st = base();
	struct moat_manifest m = manifest(5, 2000);
	struct moat_err e;

	/* Nothing staged: the active slot starts, state untouched. */
	assert_int_equal(moat_boot_select(&st, 100, 60), MOAT_BOOT_START_ACTIVE);
	assert_int_equal(st.attempts, 0);
	assert_int_equal(moat_boot_other('a'), 'b');
	assert_int_equal(moat_boot_other('b'), 'a');

	/* Staging: only the inactive slot, only once; issued_at rises, the floor does not. */
	assert_int_equal(moat_boot_stage(&st, 'a', &m, &e), MOAT_EINVAL);
	assert_int_equal(moat_boot_stage(&st, 'b', &m, &e), 0);
	assert_int_equal(st.trial, 'b');
	assert_int_equal(st.last_issued_at, 2000);
	assert_int_equal(st.floor, 2);
	assert_int_equal(moat_boot_stage(&st, 'b', &m, &e), MOAT_ESTATE);

	/* First start: trial, one attempt, a deadline. */
	struct moat_boot_state trial = st;
	assert_int_equal(moat_boot_select(&st, 100, 60), MOAT_BOOT_START_TRIAL);
	assert_int_equal(st.attempts, 1);
	assert_int_equal(st.deadline, 160);
	/* A second start without confirmation reverts. */
	struct moat_boot_state again = st;
	assert_int_equal(moat_boot_select(&again, 101, 60), MOAT_BOOT_REVERTED);
	assert_int_equal(again.trial, 0);
	assert_int_equal(again.active, 'a');
	assert_int_equal(again.floor, 2);
	/* The deadline passing reverts too, even with attempts left. */
	struct moat_boot_state late = trial;
	late.deadline = 50;
	assert_int_equal(moat_boot_select(&late, 50, 60), MOAT_BOOT_REVERTED);

	/* Confirmation: the trial becomes active, the floor rises to its security_version. */
	assert_int_equal(moat_boot_confirm(&st, &m, &e), 0);
	assert_int_equal(st.active, 'b');
	assert_int_equal(st.trial, 0);
	assert_int_equal(st.floor, 5);
	assert_int_equal(st.attempts, 0);
	assert_int_equal(st.deadline, 0);
	assert_int_equal(moat_boot_confirm(&st, &m, &e), MOAT_ESTATE);

	/* A lower security_version never lowers the floor; an older issued_at never lowers
	 * the replay mark. */
	struct moat_manifest low = manifest(1, 10);
	assert_int_equal(moat_boot_stage(&st, 'a', &low, &e), 0);
	assert_int_equal(st.last_issued_at, 2000);
	assert_int_equal(moat_boot_confirm(&st, &low, &e), 0);
	assert_int_equal(st.floor, 5);

	/* Revert without a trial is a no-op; a huge clock does not overflow the deadline. */
	moat_boot_revert(&st);
	assert_int_equal(st.trial, 0);
	assert_int_equal(moat_boot_stage(&st, 'b', &m, &e), 0);
	assert_int_equal(moat_boot_select(&st, MOAT_FW_INT_MAX - 1, 60), MOAT_BOOT_START_TRIAL);
	assert_int_equal(st.deadline, MOAT_FW_INT_MAX);

	/* Every state the machine produces is one the parser accepts. */
	char buf[MOAT_BOOT_STATE_MAX_BYTES];
	size_t len = 0;
	struct moat_boot_state back;
	assert_int_equal(moat_boot_state_format(&st, buf, sizeof(buf), &len, &e), 0);
	assert_int_equal(moat_boot_state_parse(buf, len, &back, &e), 0);
	assert_memory_equal(&back, &st, sizeof(st));
}

/* The writes of one update and its boot, in order: stage, trial start, confirm. A power
 * fail after any prefix of them leaves a state from which a boot starts either the old
 * slot (floor unchanged) or the new one on trial / confirmed; and a crash during the trial
 * (the trial start written, no confirm) always ends with the old slot. */
static void test_power_fail(void **state)
{
	(void)state;
	struct moat_manifest m = manifest(4, 3000);
	struct moat_err e;

	for (int crash_after = 0; crash_after <= 3; crash_after++) {
		struct moat_boot_state disk = base();
		struct moat_boot_state mem = disk;
		int writes = 0;

		/* the updater */
		assert_int_equal(moat_boot_stage(&mem, 'b', &m, &e), 0);
		if (writes++ < crash_after) {
			disk = mem;
		}
		/* moat-boot starts the trial */
		if (moat_boot_select(&mem, 100, 60) == MOAT_BOOT_START_TRIAL &&
		    writes++ < crash_after) {
			disk = mem;
		}
		/* the trial confirms */
		if (moat_boot_confirm(&mem, &m, &e) == 0 && writes++ < crash_after) {
			disk = mem;
		}

		/* Power back: boot from what is on disk. */
		struct moat_boot_state boot = disk;
		enum moat_boot_pick pick = moat_boot_select(&boot, 110, 60);
		switch (crash_after) {
		case 0: /* nothing written */
			assert_int_equal(pick, MOAT_BOOT_START_ACTIVE);
			assert_int_equal(boot.active, 'a');
			assert_int_equal(boot.floor, 2);
			break;
		case 1: /* staged only: the trial gets its start */
			assert_int_equal(pick, MOAT_BOOT_START_TRIAL);
			assert_int_equal(boot.trial, 'b');
			assert_int_equal(boot.floor, 2);
			break;
		case 2: /* the trial was running: reverted to the old slot */
			assert_int_equal(pick, MOAT_BOOT_REVERTED);
			assert_int_equal(boot.active, 'a');
			assert_int_equal(boot.floor, 2);
			break;
		default: /* confirmed */
			assert_int_equal(pick, MOAT_BOOT_START_ACTIVE);
			assert_int_equal(boot.active, 'b');
			assert_int_equal(boot.floor, 4);
			break;
		}
		/* The replay mark never goes back, whatever was lost. */
		assert_true(boot.last_issued_at >= 1000);
	}
}

/* ---- on disk ---- */

struct ctx {
	char dir[64];
	char state[128];
	char trust[128];
	char image[128];
	char env[128];
	EVP_PKEY *key;
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	if (!c) {
		return -1;
	}
	snprintf(c->dir, sizeof(c->dir), "/tmp/moat-test-update.XXXXXX");
	if (!mkdtemp(c->dir)) {
		free(c);
		return -1;
	}
	snprintf(c->state, sizeof(c->state), "%s/state", c->dir);
	snprintf(c->trust, sizeof(c->trust), "%s/trust.json", c->dir);
	snprintf(c->image, sizeof(c->image), "%s/image", c->dir);
	snprintf(c->env, sizeof(c->env), "%s/envelope.json", c->dir);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	struct moat_err e;
	if (moat_fs_remove_tree(c->dir, &e) != 0) {
		fprintf(stderr, "cleanup: %s\n", e.msg);
	}
	EVP_PKEY_free(c->key);
	free(c);
	return 0;
}

/* Writes image (len bytes) and its envelope signed by c->key. */
static void release(struct ctx *c, const char *version, int64_t secver, size_t len)
{
	struct moat_err e;
	unsigned char *data = malloc(len);
	assert_non_null(data);
	for (size_t i = 0; i < len; i++) {
		data[i] = (unsigned char)(i * 7 + (unsigned char)version[0]);
	}
	assert_int_equal(moat_fs_write_atomic(c->image, data, len, 0600, &e), 0);
	free(data);
	int64_t now = moat_time_now();
	struct moat_fw_sign_req req = {.image_path = c->image,
				       .device_type = "temp_sensor",
				       .version = version,
				       .security_version = secver,
				       .issued_at = now - 10,
				       .expires_at = now + 86400};
	char *json = NULL;
	size_t jlen = 0;
	assert_int_equal(moat_fw_sign_image(&req, &c->key, 1, NULL, &json, &jlen, &e), 0);
	assert_int_equal(moat_fs_write_atomic(c->env, json, jlen, 0644, &e), 0);
	free(json);
}

static void provision(struct ctx *c)
{
	struct moat_fw_trust t;
	struct moat_err e;
	memset(&t, 0, sizeof(t));
	assert_int_equal(moat_fw_keygen(MOAT_FW_KEY_EC_P256, &c->key, &e), 0);
	assert_int_equal(moat_fw_trust_add(&t, c->key, &e), 0);
	t.threshold = 1;
	assert_int_equal(moat_fwtrust_save(c->trust, &t, &e), 0);
	moat_fw_trust_free(&t);
	release(c, "1.0.0", 2, 5000);
	if (moat_slots_provision(c->state, "temp_sensor", c->trust, c->image, c->env,
				 moat_time_now(), &e) != 0) {
		fail_msg("provision: %s", e.msg);
	}
}

static void test_provision_verify(void **state)
{
	struct ctx *c = *state;
	struct moat_boot_state st;
	struct moat_manifest m;
	struct moat_err e;
	char path[256];
	int fd = -1;

	provision(c);
	assert_int_equal(moat_slots_load(c->state, &st, &e), 0);
	assert_int_equal(st.active, 'a');
	assert_int_equal(st.trial, 0);
	assert_int_equal(st.floor, 2);
	/* Provisioning twice is refused. */
	assert_int_equal(moat_slots_provision(c->state, "temp_sensor", c->trust, c->image, c->env,
					      moat_time_now(), &e),
			 MOAT_EEXIST);

	/* The verified image comes back as a sealed memfd with the same bytes. */
	assert_int_equal(moat_slots_verify(c->state, &st, 'a', &fd, &m, &e), 0);
	assert_string_equal(m.version, "1.0.0");
	unsigned char buf[6000];
	assert_int_equal(pread(fd, buf, sizeof(buf), 0), 5000);
	assert_int_equal(buf[1], (unsigned char)(7 + '1'));
	assert_int_equal(write(fd, "x", 1), -1); /* sealed */
	close(fd);

	/* An empty slot, a slot below the floor, a modified image, an image with a byte
	 * more: all refused. */
	assert_int_not_equal(moat_slots_verify(c->state, &st, 'b', NULL, NULL, &e), 0);
	struct moat_boot_state high = st;
	high.floor = 3;
	assert_int_equal(moat_slots_verify(c->state, &high, 'a', NULL, NULL, &e), MOAT_EVERIFY);
	assert_non_null(strstr(e.msg, "downgrade"));
	struct moat_boot_state other = st;
	snprintf(other.device_type, sizeof(other.device_type), "gateway");
	assert_int_equal(moat_slots_verify(c->state, &other, 'a', NULL, NULL, &e), MOAT_EVERIFY);
	assert_non_null(strstr(e.msg, "wrong_type"));

	assert_int_equal(moat_slots_path(path, sizeof(path), c->state, 'a', "image", &e), 0);
	char *data = NULL;
	size_t len = 0;
	assert_int_equal(moat_fs_read_all(path, 10000, &data, &len, &e), 0);
	data[100] ^= 1;
	assert_int_equal(moat_fs_write_atomic(path, data, len, 0700, &e), 0);
	assert_int_equal(moat_slots_verify(c->state, &st, 'a', &fd, NULL, &e), MOAT_EVERIFY);
	assert_non_null(strstr(e.msg, "hash_mismatch"));
	assert_int_equal(fd, -1);
	data[100] ^= 1;
	assert_int_equal(moat_fs_write_atomic(path, data, len + 1, 0700, &e), 0);
	assert_int_equal(moat_slots_verify(c->state, &st, 'a', NULL, NULL, &e), MOAT_EVERIFY);
	assert_non_null(strstr(e.msg, "size_mismatch"));
	free(data);

	/* A corrupt boot.state is refused with the file named. */
	assert_int_equal(moat_path_join(path, sizeof(path), &e, "%s/boot.state", c->state), 0);
	assert_int_equal(moat_fs_write_atomic(path, "junk\n", 5, 0600, &e), 0);
	assert_int_equal(moat_slots_load(c->state, &st, &e), MOAT_EINVAL);
	assert_non_null(strstr(e.msg, "boot.state"));
}

static void test_confirm_on_disk(void **state)
{
	struct ctx *c = *state;
	struct moat_boot_state st;
	struct moat_manifest m;
	struct moat_err e;
	char path[256];

	provision(c);
	/* No trial: nothing to confirm. */
	assert_int_equal(moat_slots_confirm(c->state, NULL, &e), MOAT_ESTATE);

	/* Install 1.1.0 (security_version 4) into slot b by hand, stage it, confirm it. */
	release(c, "1.1.0", 4, 7000);
	assert_int_equal(moat_slots_path(path, sizeof(path), c->state, 'b', "image", &e), 0);
	assert_int_equal(rename(c->image, path), 0);
	assert_int_equal(moat_slots_path(path, sizeof(path), c->state, 'b', "envelope.json", &e),
			 0);
	assert_int_equal(rename(c->env, path), 0);
	assert_int_equal(moat_slots_load(c->state, &st, &e), 0);
	struct moat_manifest staged = manifest(4, moat_time_now() - 10);
	assert_int_equal(moat_boot_stage(&st, 'b', &staged, &e), 0);
	assert_int_equal(moat_slots_save(c->state, &st, &e), 0);
	assert_int_equal(moat_slots_confirm(c->state, &m, &e), 0);
	assert_string_equal(m.version, "1.1.0");
	assert_int_equal(moat_slots_load(c->state, &st, &e), 0);
	assert_int_equal(st.active, 'b');
	assert_int_equal(st.floor, 4);
	/* Slot a (security_version 2) is below the new floor: it would not boot. */
	assert_int_equal(moat_slots_verify(c->state, &st, 'a', NULL, NULL, &e), MOAT_EVERIFY);
	/* The lock can be taken and released again. */
	int fd = -1;
	assert_int_equal(moat_slots_lock(c->state, &fd, &e), 0);
	moat_slots_unlock(fd);
}

/* The agent's side: the check_update hook answers without a network when a trial is
 * pending, and the trial is confirmed from the environment moat-boot sets. */
static void test_agent_hook(void **state)
{
	struct ctx *c = *state;
	static struct moat_device dev; /* large: not on the stack */
	struct moat_msg_command cmd;
	struct moat_msg_response resp;
	struct moat_boot_state st;
	struct moat_err e;
	bool confirmed = true;

	memset(&cmd, 0, sizeof(cmd));
	memset(&resp, 0, sizeof(resp));
	memset(&dev, 0, sizeof(dev));
	moat_update_agent_hook(&dev, &cmd, &resp, NULL);
	assert_string_equal(resp.status, "failed");

	provision(c);
	/* Not under moat-boot: nothing to confirm. */
	unsetenv("MOAT_BOOT_TRIAL");
	assert_int_equal(moat_update_confirm_trial(&confirmed, &e), 0);
	assert_false(confirmed);

	/* A trial pending (slot b holds a copy of slot a's release, as the updater would). */
	char from[256], to[256];
	const char *files[] = {"image", "envelope.json"};
	for (int i = 0; i < 2; i++) {
		char *data = NULL;
		size_t len = 0;
		assert_int_equal(moat_slots_path(from, sizeof(from), c->state, 'a', files[i], &e),
				 0);
		assert_int_equal(moat_slots_path(to, sizeof(to), c->state, 'b', files[i], &e), 0);
		assert_int_equal(moat_fs_read_all(from, 100000, &data, &len, &e), 0);
		assert_int_equal(moat_fs_write_atomic(to, data, len, 0700, &e), 0);
		free(data);
	}
	assert_int_equal(moat_slots_load(c->state, &st, &e), 0);
	struct moat_manifest m = manifest(2, st.last_issued_at);
	assert_int_equal(moat_boot_stage(&st, 'b', &m, &e), 0);
	assert_int_equal(moat_slots_save(c->state, &st, &e), 0);

	struct moat_update_conf conf = {.state_dir = c->state,
					.server_url = "https://127.0.0.1:1",
					.ca_file = c->trust,
					.cert_file = c->trust,
					.key_file = c->trust};
	moat_update_agent_hook(&dev, &cmd, &resp, &conf);
	assert_string_equal(resp.status, "completed");
	assert_non_null(strstr(resp.detail, "on trial"));
	assert_false(dev.reboot_requested);

	assert_int_equal(setenv("MOAT_BOOT_TRIAL", "1", 1), 0);
	assert_int_equal(setenv("MOAT_BOOT_STATE", c->state, 1), 0);
	assert_int_equal(moat_update_confirm_trial(&confirmed, &e), 0);
	assert_true(confirmed);
	assert_int_equal(moat_slots_load(c->state, &st, &e), 0);
	assert_int_equal(st.active, 'b');
	/* A second call (the agent reconnected) is not an error. */
	assert_int_equal(moat_update_confirm_trial(&confirmed, &e), 0);
	assert_false(confirmed);
	unsetenv("MOAT_BOOT_TRIAL");
	unsetenv("MOAT_BOOT_STATE");

	/* Now a real check against a port where nothing listens: "failed", not a crash. */
	moat_update_agent_hook(&dev, &cmd, &resp, &conf);
	assert_string_equal(resp.status, "failed");
	assert_false(dev.reboot_requested);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_roundtrip),
		cmocka_unit_test(test_state_rejections),
		cmocka_unit_test(test_machine),
		cmocka_unit_test(test_power_fail),
		cmocka_unit_test_setup_teardown(test_provision_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_confirm_on_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_hook, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
