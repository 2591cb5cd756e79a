/* test_update.c: src/device: the boot.state parser and writer (every rejection path, and
 * version 1 files), the pure slot state machine (stage, select, confirm, revert recording
 * the reverted issued_at; a "power fail" after every state write of an update and its
 * boot), the state directory on disk: provisioning, verification into a sealed memfd,
 * refusal of a modified image or a slot below the floor, confirmation raising the floor,
 * one boot (moat_boot_prepare) with trials that verify, do not verify or expire; and the
 * report lines of moat-update --report (round trips and every rejection). */
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

#include "moat/firmware.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"
#include "moat/update.h"
#include "moat/update_schema.h"
#include "testutil.h"
#include "testutil_fw.h"

static const char good[] = "moat-boot-state 2\n"
			   "device_type=temp_sensor\n"
			   "active=a\n"
			   "trial=b\n"
			   "attempts=1\n"
			   "deadline=1800000120\n"
			   "floor=3\n"
			   "last_issued_at=1800000000\n"
			   "reverted_issued_at=1799990000\n";

/* The same state as written before reverted_issued_at existed. */
static const char good_v1[] = "moat-boot-state 1\n"
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
	assert_int_equal(st.reverted_issued_at, 1799990000LL);
	assert_int_equal(moat_boot_state_format(&st, buf, sizeof(buf), &len, &e), 0);
	assert_int_equal(len, strlen(good));
	assert_memory_equal(buf, good, len);
	/* A buffer one byte short is refused, never truncated. */
	assert_int_equal(moat_boot_state_format(&st, buf, len, &len, &e), MOAT_EINVAL);
}

/* A version 1 file reads with reverted_issued_at 0 and is written back as version 2. */
static void test_state_v1(void **state)
{
	(void)state;
	struct moat_boot_state st;
	struct moat_boot_state v2;
	struct moat_err e;
	char buf[MOAT_BOOT_STATE_MAX_BYTES];
	size_t len = 0;

	assert_int_equal(moat_boot_state_parse(good_v1, strlen(good_v1), &st, &e), 0);
	assert_int_equal(st.reverted_issued_at, 0);
	assert_int_equal(st.last_issued_at, 1800000000LL);
	assert_int_equal(st.trial, 'b');
	assert_int_equal(moat_boot_state_parse(good, strlen(good), &v2, &e), 0);
	v2.reverted_issued_at = 0;
	assert_memory_equal(&st, &v2, sizeof(st));
	/* Without a reverted trial the state is written as version 1, byte for byte (an older
	 * moat-boot reads what a newer image's confirm step wrote) ... */
	assert_int_equal(moat_boot_state_format(&st, buf, sizeof(buf), &len, &e), 0);
	assert_int_equal(len, strlen(good_v1));
	assert_memory_equal(buf, good_v1, len);
	/* ... and as version 2 once a trial was reverted. */
	st.reverted_issued_at = 1700000000LL;
	assert_int_equal(moat_boot_state_format(&st, buf, sizeof(buf), &len, &e), 0);
	assert_true(len > 18 && memcmp(buf, "moat-boot-state 2\n", 18) == 0);
	assert_non_null(strstr(buf, "\nreverted_issued_at=1700000000\n"));

	/* Version 1 is as strict as ever: the new key is not allowed in it. */
	char text[2048];
	int n = snprintf(text, sizeof(text), "%sreverted_issued_at=5\n", good_v1);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	assert_int_equal(moat_boot_state_parse(text, (size_t)n, &st, &e), MOAT_EINVAL);
	assert_non_null(strstr(e.msg, "trailing"));
	/* ... and a version 1 file still needs all of its own keys. */
	n = snprintf(text, sizeof(text), "%.*s",
		     (int)(strlen(good_v1) - strlen("last_issued_at=1800000000\n")), good_v1);
	assert_int_equal(moat_boot_state_parse(text, (size_t)n, &st, &e), MOAT_EINVAL);
	assert_non_null(strstr(e.msg, "truncated"));
	assert_int_equal(st.active, 0);
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
	refused("moat-boot-state 2", "moat-boot-state 3", "header");
	refused("moat-boot-state 2", "moat-boot-state 0", "header");
	refused("moat-boot-state 2", "moat-boot-state 2 ", "header");
	refused("moat-boot-state 2\n", "", "header");
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
	refused("reverted_issued_at=1799990000\n", "", "truncated");
	refused("reverted_issued_at=1799990000\n", "reverted_issued_at=1799990000", "truncated");
	refused("reverted_issued_at=1799990000\n",
		"reverted_issued_at=1799990000\nreverted_issued_at=1799990000\n", "trailing");
	refused("last_issued_at=1800000000\n",
		"last_issued_at=1800000000\nlast_issued_at=1800000000\n",
		"expected reverted_issued_at=");
	refused("last_issued_at=1800000000\nreverted_issued_at=1799990000\n",
		"reverted_issued_at=1799990000\nlast_issued_at=1800000000\n",
		"expected last_issued_at=");
	refused("reverted_issued_at=1799990000", "reverted_issued_at=-1", "reverted_issued_at");
	refused("reverted_issued_at=1799990000", "reverted_issued_at=01", "reverted_issued_at");
	refused("reverted_issued_at=1799990000", "reverted_issued_at=", "reverted_issued_at");
	refused("reverted_issued_at=1799990000", "reverted_issued_at=9007199254740992",
		"reverted_issued_at");
	refused("reverted_issued_at=1799990000", "Reverted_issued_at=1",
		"expected reverted_issued_at=");
	refused("reverted_issued_at=1799990000\n", "reverted_issued_at=1799990000\nextra\n",
		"trailing");
	refused("reverted_issued_at=1799990000\n", "reverted_issued_at=1799990000\r\n",
		"reverted_issued_at");
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
	nul[strlen("moat-boot-state 2\ndevice_type=temp")] = '\0';
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
	/* The reverted release is remembered by its issued_at; the replay mark stays. */
	assert_int_equal(again.reverted_issued_at, 2000);
	assert_int_equal(again.last_issued_at, 2000);
	/* The deadline passing reverts too, even with attempts left. */
	struct moat_boot_state late = trial;
	late.deadline = 50;
	assert_int_equal(moat_boot_select(&late, 50, 60), MOAT_BOOT_REVERTED);
	assert_int_equal(late.reverted_issued_at, 2000);
	/* A revert by hand (failed verification) records it the same way. */
	struct moat_boot_state by_hand = trial;
	assert_int_equal(by_hand.reverted_issued_at, 0);
	moat_boot_revert(&by_hand);
	assert_int_equal(by_hand.trial, 0);
	assert_int_equal(by_hand.reverted_issued_at, 2000);

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

	/* Revert without a trial is a no-op (nothing is recorded as reverted); a huge clock
	 * does not overflow the deadline. */
	struct moat_boot_state before = st;
	moat_boot_revert(&st);
	assert_int_equal(st.trial, 0);
	assert_memory_equal(&st, &before, sizeof(st));
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
	/* The writer validates reverted_issued_at like the other integers. */
	back.reverted_issued_at = -1;
	assert_int_equal(moat_boot_state_format(&back, buf, sizeof(buf), &len, &e), MOAT_EINVAL);
	back.reverted_issued_at = MOAT_FW_INT_MAX + 1;
	assert_int_equal(moat_boot_state_format(&back, buf, sizeof(buf), &len, &e), MOAT_EINVAL);
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
	char dir[TU_TMPDIR_MAX]; /* first: tu_state_make */
	char state[TU_TMPDIR_MAX + 16];
	char trust[TU_TMPDIR_MAX + 16];
	char image[TU_TMPDIR_MAX + 16];
	char env[TU_TMPDIR_MAX + 16];
	EVP_PKEY *key;
};

static int setup(void **state)
{
	if (tu_state_make(state, sizeof(struct ctx), "update") != 0) {
		return -1;
	}
	struct ctx *c = *state;
	tu_path(c->state, sizeof(c->state), c->dir, "state");
	tu_path(c->trust, sizeof(c->trust), c->dir, "trust.json");
	tu_path(c->image, sizeof(c->image), c->dir, "image");
	tu_path(c->env, sizeof(c->env), c->dir, "envelope.json");
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	EVP_PKEY_free(c->key);
	return tu_state_free(state);
}

/* Writes image (len bytes) and its envelope signed by c->key. */
static void release(struct ctx *c, const char *version, int64_t secver, size_t len)
{
	tu_write_pattern(c->image, len, 7, (unsigned char)version[0], 0600);
	int64_t now = moat_time_now();
	size_t jlen = 0;
	char *json = tu_fw_sign(c->image, &c->key, 1, version, secver, now - 10, now + 86400, NULL,
				&jlen);
	tu_write_file(c->env, json, jlen, 0644);
	free(json);
}

static void provision(struct ctx *c)
{
	struct moat_fw_trust t;
	struct moat_err e;
	memset(&t, 0, sizeof(t));
	c->key = tu_key_p256();
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
	char path[512];
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
	size_t len = 0;
	char *data = tu_read_file(path, 10000, &len);
	data[100] ^= 1;
	tu_write_file(path, data, len, 0700);
	assert_int_equal(moat_slots_verify(c->state, &st, 'a', &fd, NULL, &e), MOAT_EVERIFY);
	assert_non_null(strstr(e.msg, "hash_mismatch"));
	assert_int_equal(fd, -1);
	data[100] ^= 1;
	tu_write_file(path, data, len + 1, 0700);
	assert_int_equal(moat_slots_verify(c->state, &st, 'a', NULL, NULL, &e), MOAT_EVERIFY);
	assert_non_null(strstr(e.msg, "size_mismatch"));
	free(data);

	/* A corrupt boot.state is refused with the file named. */
	assert_int_equal(moat_path_join(path, sizeof(path), &e, "%s/boot.state", c->state), 0);
	tu_write_file(path, "junk\n", 5, 0600);
	assert_int_equal(moat_slots_load(c->state, &st, &e), MOAT_EINVAL);
	assert_non_null(strstr(e.msg, "boot.state"));
}

/* Installs a new release (version, security_version) into slot b and stages it with
 * issued_at; returns nothing, asserts. */
static void stage_b(struct ctx *c, const char *version, int64_t secver, int64_t issued_at)
{
	struct moat_boot_state st;
	struct moat_err e;
	char path[512];

	release(c, version, secver, 6000);
	assert_int_equal(moat_slots_path(path, sizeof(path), c->state, 'b', "image", &e), 0);
	assert_int_equal(rename(c->image, path), 0);
	assert_int_equal(moat_slots_path(path, sizeof(path), c->state, 'b', "envelope.json", &e),
			 0);
	assert_int_equal(rename(c->env, path), 0);
	assert_int_equal(moat_slots_load(c->state, &st, &e), 0);
	struct moat_manifest m = manifest(secver, issued_at);
	assert_int_equal(moat_boot_stage(&st, 'b', &m, &e), 0);
	assert_int_equal(moat_slots_save(c->state, &st, &e), 0);
}

static void test_confirm_on_disk(void **state)
{
	struct ctx *c = *state;
	struct moat_boot_state st;
	struct moat_manifest m;
	struct moat_err e;

	provision(c);
	/* No trial: nothing to confirm. */
	assert_int_equal(moat_slots_confirm(c->state, NULL, &e), MOAT_ESTATE);

	/* Install 1.1.0 (security_version 4) into slot b, stage it, confirm it. */
	stage_b(c, "1.1.0", 4, moat_time_now() - 10);
	assert_int_equal(moat_slots_confirm(c->state, &m, &e), 0);
	assert_string_equal(m.version, "1.1.0");
	assert_int_equal(moat_slots_load(c->state, &st, &e), 0);
	assert_int_equal(st.active, 'b');
	assert_int_equal(st.floor, 4);
	/* Slot a (security_version 2) is below the new floor: it would not boot. */
	assert_int_equal(moat_slots_verify(c->state, &st, 'a', NULL, NULL, &e), MOAT_EVERIFY);
	/* A second call (the agent reconnected) finds no trial: MOAT_ESTATE, which the agent
	 * takes as "already confirmed". */
	assert_int_equal(moat_slots_confirm(c->state, &m, &e), MOAT_ESTATE);
	/* The lock can be taken and released again. */
	int fd = -1;
	assert_int_equal(moat_slots_lock(c->state, &fd, &e), 0);
	moat_slots_unlock(fd);
}

/* ---- one boot: moat_boot_prepare ---- */

/* Flips one byte of slot's image on disk. */
static void corrupt(struct ctx *c, char slot)
{
	struct moat_err e;
	char path[512];
	size_t len = 0;

	assert_int_equal(moat_slots_path(path, sizeof(path), c->state, slot, "image", &e), 0);
	char *data = tu_read_file(path, 100000, &len);
	data[len / 2] ^= 0x20;
	tu_write_file(path, data, len, 0700);
	free(data);
}

/* What one moat_boot_prepare returned. */
struct boot {
	int rc;
	char slot;
	bool trial, reverted;
	int fd;
	struct moat_manifest m;
	char why[MOAT_ERR_MSG_MAX];
	struct moat_err e;
};

/* One boot at now (60 s trial window), with the memfd and manifest outputs when memfd. */
static void boot_at(struct ctx *c, int64_t now, bool memfd, struct boot *b)
{
	memset(b, 0, sizeof(*b));
	b->fd = -1;
	b->trial = true; /* each output must be written */
	b->reverted = true;
	b->rc = moat_boot_prepare(c->state, now, 60, &b->slot, &b->trial, memfd ? &b->fd : NULL,
				  memfd ? &b->m : NULL, &b->reverted, b->why, sizeof(b->why),
				  &b->e);
}

/* A boot that must succeed, starting slot (on trial or not, after a revert or not); its
 * memfd, when asked for, must be sealed, and is closed. */
static void booted(struct ctx *c, int64_t now, bool memfd, char slot, bool trial, bool reverted,
		   struct boot *b)
{
	boot_at(c, now, memfd, b);
	assert_int_equal(b->rc, 0);
	assert_int_equal(b->slot, slot);
	assert_int_equal(b->trial, trial);
	assert_int_equal(b->reverted, reverted);
	if (memfd) {
		assert_true(b->fd >= 0);
		assert_int_equal(write(b->fd, "x", 1), -1); /* sealed */
		close(b->fd);
	}
}

static struct moat_boot_state loaded(struct ctx *c)
{
	struct moat_boot_state st;
	struct moat_err e;
	assert_int_equal(moat_slots_load(c->state, &st, &e), 0);
	return st;
}

static void test_prepare(void **state)
{
	struct ctx *c = *state;
	struct moat_boot_state st;
	struct moat_err e;
	struct boot b;
	char slot = 0;
	bool trial = true;
	int64_t now = moat_time_now();

	provision(c);
	/* Nothing staged: slot a, verified, as a sealed memfd. */
	booted(c, now, true, 'a', false, false, &b);
	assert_string_equal(b.why, "");
	assert_string_equal(b.m.version, "1.0.0");
	/* Without the optional outputs: verification only, no memfd. */
	assert_int_equal(moat_boot_prepare(c->state, now, 60, &slot, &trial, NULL, NULL, NULL, NULL,
					   0, &e),
			 0);
	assert_int_equal(slot, 'a');

	/* A valid trial starts on trial: one attempt counted and the deadline written. */
	stage_b(c, "1.1.0", 3, now + 101);
	booted(c, now, true, 'b', true, false, &b);
	assert_string_equal(b.m.version, "1.1.0");
	st = loaded(c);
	assert_int_equal(st.trial, 'b');
	assert_int_equal(st.attempts, 1);
	assert_int_equal(st.deadline, now + 60);
	assert_int_equal(st.reverted_issued_at, 0);

	/* Started again without a confirmation (the trial crashed): reverted, slot a starts,
	 * and the release is remembered as reverted. */
	booted(c, now + 1, true, 'a', false, true, &b);
	assert_non_null(strstr(b.why, "did not confirm"));
	assert_string_equal(b.m.version, "1.0.0");
	st = loaded(c);
	assert_int_equal(st.trial, 0);
	assert_int_equal(st.active, 'a');
	assert_int_equal(st.reverted_issued_at, now + 101);

	/* A trial past its deadline (moat-boot was not there to kill it): reverted. */
	stage_b(c, "1.2.0", 3, now + 102);
	st = loaded(c);
	st.deadline = now - 1;
	assert_int_equal(moat_slots_save(c->state, &st, &e), 0);
	booted(c, now, false, 'a', false, true, &b);
	assert_non_null(strstr(b.why, "deadline"));
	st = loaded(c);
	assert_int_equal(st.trial, 0);
	assert_int_equal(st.reverted_issued_at, now + 102);

	/* A trial whose image was modified on disk: reverted before it runs, the active slot
	 * is returned instead. */
	stage_b(c, "1.3.0", 3, now + 103);
	corrupt(c, 'b');
	booted(c, now, true, 'a', false, true, &b);
	assert_non_null(strstr(b.why, "hash_mismatch"));
	assert_string_equal(b.m.version, "1.0.0");
	st = loaded(c);
	assert_int_equal(st.trial, 0);
	assert_int_equal(st.attempts, 0);
	assert_int_equal(st.deadline, 0);
	assert_int_equal(st.reverted_issued_at, now + 103);

	/* The active slot modified on disk: nothing may start. */
	corrupt(c, 'a');
	boot_at(c, now, true, &b);
	assert_int_equal(b.rc, MOAT_EVERIFY);
	assert_non_null(strstr(b.e.msg, "refusing to start"));
	assert_non_null(strstr(b.e.msg, "hash_mismatch"));
	assert_int_equal(b.fd, -1);
	assert_false(b.reverted);

	/* No state directory at all. */
	char missing[TU_TMPDIR_MAX + 8];
	tu_path(missing, sizeof(missing), c->dir, "none");
	assert_int_not_equal(moat_boot_prepare(missing, now, 60, &slot, &trial, NULL, NULL, NULL,
					       NULL, 0, &e),
			     0);
}

/* ---- the report lines of moat-update --report ---- */

static struct moat_update_report report(enum moat_update_report_kind kind,
					enum moat_update_outcome outcome)
{
	struct moat_update_report r;
	memset(&r, 0, sizeof(r));
	r.kind = kind;
	r.res.outcome = outcome;
	return r;
}

/* Formats r, expects exactly want (without the newline), parses it back, compares. */
static void report_roundtrip(const struct moat_update_report *r, const char *want)
{
	char buf[MOAT_UPDATE_REPORT_MAX_BYTES + 1];
	struct moat_update_report back;
	struct moat_err e;
	size_t len = 0;

	if (moat_update_report_format(r, buf, sizeof(buf), &len, &e) != 0) {
		fail_msg("format: %s", e.msg);
	}
	assert_int_equal(len, strlen(want) + 1);
	assert_memory_equal(buf, want, len - 1);
	assert_int_equal(buf[len - 1], '\n');
	assert_int_equal(buf[len], '\0');
	/* With its newline and without. */
	for (size_t cut = 0; cut < 2; cut++) {
		memset(&back, 0x5a, sizeof(back));
		if (moat_update_report_parse(buf, len - cut, &back, &e) != 0) {
			fail_msg("parse %s: %s", want, e.msg);
		}
		assert_int_equal(back.kind, r->kind);
		assert_string_equal(back.res.msg, r->res.msg);
		assert_string_equal(back.res.version, r->res.version);
		if (r->kind == MOAT_UPDATE_REPORT_OUTCOME) {
			assert_int_equal(back.res.outcome, r->res.outcome);
			assert_int_equal(back.res.verdict, r->res.verdict);
			assert_int_equal(back.res.slot, r->res.slot);
			assert_int_equal(back.res.resumed_from, r->res.resumed_from);
		}
		assert_int_equal(back.offset, r->offset);
		assert_int_equal(back.size, r->size);
	}
}

static void test_report_roundtrip(void **state)
{
	(void)state;
	struct moat_update_report r = report(MOAT_UPDATE_REPORT_DOWNLOADING, 0);
	snprintf(r.res.version, sizeof(r.res.version), "1.2.0");
	r.offset = 0;
	r.size = 1048576;
	report_roundtrip(&r, "{\"stage\":\"downloading\",\"version\":\"1.2.0\",\"offset\":0,"
			     "\"size\":1048576}");
	/* Integers up to 2^53-1 stay exact (no exponent form). */
	r.offset = 9007199254740990ULL;
	r.size = 9007199254740991ULL;
	report_roundtrip(&r, "{\"stage\":\"downloading\",\"version\":\"1.2.0\","
			     "\"offset\":9007199254740990,\"size\":9007199254740991}");

	r = report(MOAT_UPDATE_REPORT_OUTCOME, MOAT_UPDATE_STAGED);
	snprintf(r.res.version, sizeof(r.res.version), "1.2.0");
	r.res.slot = 'b';
	r.res.resumed_from = 4096;
	snprintf(r.res.msg, sizeof(r.res.msg), "version 1.2.0 staged in slot b (trial); was 1.1.0");
	report_roundtrip(&r, "{\"outcome\":\"staged\",\"version\":\"1.2.0\",\"slot\":\"b\","
			     "\"resumed_from\":4096,\"msg\":\"version 1.2.0 staged in slot b "
			     "(trial); was 1.1.0\"}");

	r = report(MOAT_UPDATE_REPORT_OUTCOME, MOAT_UPDATE_REFUSED);
	r.res.verdict = MOAT_FW_EXPIRED;
	snprintf(r.res.version, sizeof(r.res.version), "1.2.0");
	snprintf(r.res.msg, sizeof(r.res.msg), "refused (expired): \"quoted\" \\ path");
	report_roundtrip(&r, "{\"outcome\":\"refused\",\"verdict\":\"expired\",\"version\":"
			     "\"1.2.0\",\"msg\":\"refused (expired): \\\"quoted\\\" \\\\ path\"}");
	/* Every refusal verdict by name, with no version (refused before it was known). */
	for (int v = MOAT_FW_MALFORMED; v < MOAT_FW_VERDICT_COUNT; v++) {
		char want[256];
		r.res.verdict = (enum moat_fw_verdict)v;
		r.res.version[0] = '\0';
		snprintf(r.res.msg, sizeof(r.res.msg), "x");
		snprintf(want, sizeof(want),
			 "{\"outcome\":\"refused\",\"verdict\":\"%s\",\"msg\":\"x\"}",
			 moat_fw_verdict_name((enum moat_fw_verdict)v));
		report_roundtrip(&r, want);
	}

	r = report(MOAT_UPDATE_REPORT_OUTCOME, MOAT_UPDATE_UP_TO_DATE);
	snprintf(r.res.msg, sizeof(r.res.msg), "up to date (1.0.0)");
	report_roundtrip(&r, "{\"outcome\":\"up_to_date\",\"msg\":\"up to date (1.0.0)\"}");
	snprintf(r.res.version, sizeof(r.res.version), "1.2.0");
	snprintf(r.res.msg, sizeof(r.res.msg), "version 1.2.0 was reverted on this device");
	report_roundtrip(&r, "{\"outcome\":\"up_to_date\",\"version\":\"1.2.0\",\"msg\":"
			     "\"version 1.2.0 was reverted on this device\"}");

	r = report(MOAT_UPDATE_REPORT_OUTCOME, MOAT_UPDATE_TRIAL_PENDING);
	snprintf(r.res.msg, sizeof(r.res.msg), "slot b is on trial; confirm it first");
	report_roundtrip(&r, "{\"outcome\":\"trial_pending\",\"msg\":\"slot b is on trial; "
			     "confirm it first\"}");

	r = report(MOAT_UPDATE_REPORT_FAILED, 0);
	snprintf(r.res.msg, sizeof(r.res.msg), "TLS: h\xc3\xa9llo"); /* UTF-8 passes */
	report_roundtrip(&r, "{\"outcome\":\"failed\",\"msg\":\"TLS: h\xc3\xa9llo\"}");
	/* An empty message is still a message. */
	r.res.msg[0] = '\0';
	report_roundtrip(&r, "{\"outcome\":\"failed\",\"msg\":\"\"}");

	/* The longest fields fit in one line. */
	r = report(MOAT_UPDATE_REPORT_OUTCOME, MOAT_UPDATE_REFUSED);
	r.res.verdict = MOAT_FW_HASH_MISMATCH;
	memset(r.res.version, '9', MOAT_FW_VERSION_MAX_LEN);
	memset(r.res.msg, 'm', sizeof(r.res.msg) - 1);
	char buf[MOAT_UPDATE_REPORT_MAX_BYTES + 1];
	struct moat_update_report back;
	struct moat_err e;
	size_t len = 0;
	assert_int_equal(moat_update_report_format(&r, buf, sizeof(buf), &len, &e), 0);
	assert_true(len <= MOAT_UPDATE_REPORT_MAX_BYTES);
	assert_int_equal(moat_update_report_parse(buf, len, &back, &e), 0);
	assert_memory_equal(back.res.msg, r.res.msg, sizeof(r.res.msg));
	assert_string_equal(back.res.version, r.res.version);
}

/* format must refuse r with an error containing what. */
static void format_refused(const struct moat_update_report *r, size_t size, const char *what)
{
	char buf[2 * MOAT_UPDATE_REPORT_MAX_BYTES];
	struct moat_err e;
	size_t len = 7;

	assert_true(size <= sizeof(buf));
	if (moat_update_report_format(r, buf, size, &len, &e) != MOAT_EINVAL) {
		fail_msg("format accepted (expected '%s')", what);
	}
	if (strstr(e.msg, what) == NULL) {
		fail_msg("'%s' not in '%s'", what, e.msg);
	}
	assert_int_equal(len, 0);
}

static void test_report_format_rejections(void **state)
{
	(void)state;
	struct moat_update_report r = report(MOAT_UPDATE_REPORT_OUTCOME, MOAT_UPDATE_STAGED);
	snprintf(r.res.version, sizeof(r.res.version), "1.2.0");
	r.res.slot = 'b';
	char buf[MOAT_UPDATE_REPORT_MAX_BYTES];
	struct moat_err e;
	size_t len = 0;
	assert_int_equal(moat_update_report_format(&r, buf, sizeof(buf), &len, &e), 0);

	struct moat_update_report bad = r;
	bad.kind = (enum moat_update_report_kind)7;
	format_refused(&bad, sizeof(buf), "unknown kind");
	bad = r;
	bad.res.outcome = (enum moat_update_outcome)9;
	format_refused(&bad, sizeof(buf), "unknown kind or outcome");
	bad = r;
	bad.res.slot = 'c';
	format_refused(&bad, sizeof(buf), "slot");
	bad = r;
	bad.res.version[0] = '\0';
	format_refused(&bad, sizeof(buf), "version: empty");
	bad = r;
	bad.res.resumed_from = (uint64_t)MOAT_FW_INT_MAX + 1;
	format_refused(&bad, sizeof(buf), "resumed_from");
	bad = r;
	snprintf(bad.res.msg, sizeof(bad.res.msg), "two\nlines");
	format_refused(&bad, sizeof(buf), "msg: control character");
	bad = r;
	snprintf(bad.res.msg, sizeof(bad.res.msg), "bad \xff byte");
	format_refused(&bad, sizeof(buf), "invalid UTF-8");
	bad = r;
	snprintf(bad.res.version, sizeof(bad.res.version), "1.\x01");
	format_refused(&bad, sizeof(buf), "version: control");
	bad = r;
	memset(bad.res.version, 'v', sizeof(bad.res.version)); /* no terminator */
	format_refused(&bad, sizeof(buf), "version: longer than 64");
	/* Quotes escape to two bytes each: a full message of them no longer fits a line. */
	bad = r;
	memset(bad.res.msg, '"', sizeof(bad.res.msg) - 1);
	format_refused(&bad, sizeof(buf), "longer than 1024 bytes");
	/* A buffer too small for the line and its NUL. */
	format_refused(&r, len, "buffer too small");

	bad = report(MOAT_UPDATE_REPORT_OUTCOME, MOAT_UPDATE_REFUSED);
	bad.res.verdict = MOAT_FW_ACCEPT;
	format_refused(&bad, sizeof(buf), "verdict");
	bad.res.verdict = (enum moat_fw_verdict)MOAT_FW_VERDICT_COUNT;
	format_refused(&bad, sizeof(buf), "verdict");

	bad = report(MOAT_UPDATE_REPORT_DOWNLOADING, 0);
	snprintf(bad.res.version, sizeof(bad.res.version), "1.2.0");
	bad.offset = 10;
	bad.size = 10;
	format_refused(&bad, sizeof(buf), "offset: not below size");
	bad.offset = 0;
	bad.size = (uint64_t)MOAT_FW_INT_MAX + 1;
	format_refused(&bad, sizeof(buf), "size");
	/* Fields a kind does not print are not looked at. */
	bad.size = 10;
	snprintf(bad.res.msg, sizeof(bad.res.msg), "not\nprinted");
	assert_int_equal(moat_update_report_format(&bad, buf, sizeof(buf), &len, &e), 0);
	assert_null(strstr(buf, "msg"));
}

/* parse must refuse line (len bytes) with a one-line error containing what, and leave
 * *out zeroed. */
static void parse_refused_len(const char *line, size_t len, const char *what)
{
	struct moat_update_report r;
	struct moat_err e;

	memset(&r, 0x5a, sizeof(r));
	if (moat_update_report_parse(line, len, &r, &e) != MOAT_EINVAL) {
		fail_msg("accepted: %s", line);
	}
	if (strstr(e.msg, what) == NULL) {
		fail_msg("'%s' not in '%s' (line %s)", what, e.msg, line);
	}
	assert_null(strchr(e.msg, '\n'));
	assert_int_equal(r.kind, 0);
	assert_int_equal(r.res.msg[0], '\0');
	assert_int_equal(r.size, 0);
}

static void parse_refused(const char *line, const char *what)
{
	parse_refused_len(line, strlen(line), what);
}

static void test_report_parse_rejections(void **state)
{
	(void)state;
	/* Not one JSON object. */
	parse_refused("", "not a JSON object");
	parse_refused("\n", "not a JSON object");
	parse_refused("[1]", "not a JSON object");
	parse_refused("null", "not a JSON object");
	parse_refused(" {\"outcome\":\"failed\",\"msg\":\"x\"}", "not a JSON object");
	parse_refused("{", "not a JSON object");
	parse_refused("{\"outcome\":\"failed\",\"msg\":\"x\"", "not a JSON object");
	parse_refused("{\"outcome\":\"failed\",\"msg\":\"x\"} ", "data after the object");
	parse_refused("{\"outcome\":\"failed\",\"msg\":\"x\"}{}", "data after the object");
	parse_refused("{\"outcome\":\"failed\",\"msg\":\"x\"}\n\n", "control character");
	parse_refused("{\"outcome\":\"failed\",\t\"msg\":\"x\"}", "control character");
	parse_refused("{\"outcome\":\"failed\",\"msg\":\"a\tb\"}", "control character");
	parse_refused_len("{\"outcome\":\"failed\",\"msg\":\"a\0b\"}", 31, "control character");
	parse_refused("{\"outcome\":\"failed\",\"msg\":\"a\\u0000b\"}", "\\u0000");
	parse_refused("{\"outcome\":\"failed\",\"msg\":\"a\\u0001b\"}", "msg: control character");
	parse_refused("{\"outcome\":\"failed\",\"msg\":\"a\\nb\"}", "msg: control character");
	parse_refused("{\"outcome\":\"failed\",\"msg\":\"a\\u0085b\"}", "msg: control character");
	parse_refused("{\"outcome\":\"failed\",\"msg\":\"a\xff\"}", "invalid UTF-8");
	parse_refused("{\"outcome\":\"failed\",\"msg\":\"a\xc0\xaf\"}", "invalid UTF-8");
	parse_refused("{\"outcome\":\"failed\",\"msg\":\"a\xed\xa0\x80\"}", "invalid UTF-8");
	parse_refused("{\"outcome\":\"failed\",\"msg\":\"a\xe2\x82\"}", "invalid UTF-8");

	/* Too long, even when it would parse. */
	char big[MOAT_UPDATE_REPORT_MAX_BYTES + 2];
	int n = snprintf(big, sizeof(big), "{\"outcome\":\"failed\",\"msg\":\"%0*d\"}",
			 (int)MOAT_UPDATE_REPORT_MAX_BYTES - 28, 0);
	assert_int_equal(n, MOAT_UPDATE_REPORT_MAX_BYTES + 1);
	parse_refused(big, "longer than 1024 bytes");
	/* The limit counts the newline whether it is there or not: 1023 bytes and the newline
	 * pass, 1024 bytes do not, with or without it. */
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"outcome\":\"failed\",\"msg\":\"x\"", 29);
	big[MOAT_UPDATE_REPORT_MAX_BYTES - 2] = '}';
	big[MOAT_UPDATE_REPORT_MAX_BYTES - 1] = '\n';
	struct moat_update_report fits;
	struct moat_err fe;
	assert_int_equal(moat_update_report_parse(big, MOAT_UPDATE_REPORT_MAX_BYTES, &fits, &fe),
			 0);
	assert_int_equal(moat_update_report_parse(big, MOAT_UPDATE_REPORT_MAX_BYTES - 1, &fits,
						  &fe),
			 0);
	big[MOAT_UPDATE_REPORT_MAX_BYTES - 2] = ' ';
	big[MOAT_UPDATE_REPORT_MAX_BYTES - 1] = '}';
	big[MOAT_UPDATE_REPORT_MAX_BYTES] = '\n';
	parse_refused_len(big, MOAT_UPDATE_REPORT_MAX_BYTES, "longer than 1024 bytes");
	parse_refused_len(big, MOAT_UPDATE_REPORT_MAX_BYTES + 1, "longer than 1024 bytes");

	/* Keys: unknown, duplicated, missing, not allowed in this kind of line. */
	parse_refused("{\"outcome\":\"failed\",\"msg\":\"x\",\"extra\":1}", "unknown key 'extra'");
	parse_refused("{\"outcome\":\"failed\",\"Msg\":\"x\"}", "unknown key 'Msg'");
	parse_refused("{\"\\u0001\":1}", "unknown key '?'");
	parse_refused("{\"outcome\":\"failed\",\"msg\":\"x\",\"msg\":\"y\"}",
		      "duplicate key 'msg'");
	parse_refused("{}", "neither stage nor outcome");
	parse_refused("{\"msg\":\"x\"}", "neither stage nor outcome");
	parse_refused("{\"outcome\":\"failed\"}", "missing key 'msg' in a failed line");
	parse_refused("{\"outcome\":\"up_to_date\"}", "missing key 'msg'");
	parse_refused("{\"outcome\":\"staged\",\"version\":\"1\",\"slot\":\"b\",\"msg\":\"x\"}",
		      "missing key 'resumed_from'");
	parse_refused("{\"outcome\":\"staged\",\"version\":\"1\",\"resumed_from\":0,\"msg\":\"x\"}",
		      "missing key 'slot'");
	parse_refused("{\"outcome\":\"staged\",\"slot\":\"b\",\"resumed_from\":0,\"msg\":\"x\"}",
		      "missing key 'version'");
	parse_refused("{\"outcome\":\"refused\",\"msg\":\"x\"}", "missing key 'verdict'");
	parse_refused("{\"stage\":\"downloading\",\"version\":\"1\",\"offset\":0}",
		      "missing key 'size'");
	parse_refused("{\"stage\":\"downloading\",\"version\":\"1\",\"size\":1}",
		      "missing key 'offset'");
	parse_refused("{\"outcome\":\"failed\",\"msg\":\"x\",\"version\":\"1\"}",
		      "key 'version' not allowed in a failed line");
	parse_refused("{\"outcome\":\"up_to_date\",\"msg\":\"x\",\"slot\":\"b\"}",
		      "key 'slot' not allowed in a up_to_date line");
	parse_refused("{\"outcome\":\"trial_pending\",\"msg\":\"x\",\"verdict\":\"expired\"}",
		      "key 'verdict' not allowed");
	parse_refused("{\"outcome\":\"refused\",\"verdict\":\"expired\",\"msg\":\"x\","
		      "\"resumed_from\":0}",
		      "key 'resumed_from' not allowed");
	parse_refused("{\"stage\":\"downloading\",\"version\":\"1\",\"offset\":0,\"size\":1,"
		      "\"msg\":\"x\"}",
		      "key 'msg' not allowed in a downloading line");
	parse_refused("{\"stage\":\"downloading\",\"outcome\":\"failed\",\"version\":\"1\","
		      "\"offset\":0,\"size\":1}",
		      "key 'outcome' not allowed");

	/* The kind. */
	parse_refused("{\"outcome\":1,\"msg\":\"x\"}", "outcome: not a string");
	parse_refused("{\"outcome\":null,\"msg\":\"x\"}", "outcome: not a string");
	parse_refused("{\"stage\":[],\"version\":\"1\",\"offset\":0,\"size\":1}",
		      "stage: not a string");
	parse_refused("{\"outcome\":\"done\",\"msg\":\"x\"}", "outcome: unknown value 'done'");
	parse_refused("{\"outcome\":\"Failed\",\"msg\":\"x\"}", "outcome: unknown value");
	parse_refused("{\"outcome\":\"downloading\",\"msg\":\"x\"}", "outcome: unknown value");
	parse_refused("{\"stage\":\"staged\",\"version\":\"1\",\"offset\":0,\"size\":1}",
		      "stage: unknown value 'staged'");

	/* Strings. */
	parse_refused("{\"outcome\":\"failed\",\"msg\":1}", "msg: not a string");
	parse_refused("{\"outcome\":\"failed\",\"msg\":{\"a\":1}}", "msg: not a string");
	parse_refused("{\"outcome\":\"up_to_date\",\"msg\":\"x\",\"version\":\"\"}",
		      "version: empty");
	parse_refused("{\"outcome\":\"up_to_date\",\"msg\":\"x\",\"version\":true}",
		      "version: not a string");
	char line[2048];
	n = snprintf(line, sizeof(line),
		     "{\"outcome\":\"up_to_date\",\"msg\":\"x\",\"version\":\"%0*d\"}",
		     MOAT_FW_VERSION_MAX_LEN + 1, 0);
	assert_true(n > 0 && (size_t)n < sizeof(line));
	parse_refused(line, "version: longer than 64 bytes");
	n = snprintf(line, sizeof(line), "{\"outcome\":\"failed\",\"msg\":\"%0*d\"}",
		     MOAT_ERR_MSG_MAX, 0);
	parse_refused(line, "msg: longer than 511 bytes");

	/* Slot and verdict. */
	const char *slots[] = {"\"c\"", "\"ab\"", "\"\"", "\"A\"", "1", "null"};
	for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
		n = snprintf(line, sizeof(line),
			     "{\"outcome\":\"staged\",\"version\":\"1\",\"slot\":%s,"
			     "\"resumed_from\":0,\"msg\":\"x\"}",
			     slots[i]);
		parse_refused(line, "slot: not \"a\" or \"b\"");
	}
	const char *verdicts[] = {"\"accept\"", "\"nope\"", "\"Expired\"", "\"\"", "3", "false"};
	for (size_t i = 0; i < sizeof(verdicts) / sizeof(verdicts[0]); i++) {
		n = snprintf(line, sizeof(line),
			     "{\"outcome\":\"refused\",\"verdict\":%s,\"msg\":\"x\"}", verdicts[i]);
		parse_refused(line, "verdict: not a refusal verdict name");
	}

	/* Integers: plain, non-negative, exact. */
	const char *nums[] = {"-1", "1.5", "1e3", "1E3", "01", "1.0", "12345678901234567", "-0"};
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		n = snprintf(line, sizeof(line),
			     "{\"outcome\":\"staged\",\"version\":\"1\",\"slot\":\"b\","
			     "\"resumed_from\":%s,\"msg\":\"x\"}",
			     nums[i]);
		parse_refused(line, "not a non-negative integer of at most 16 digits");
	}
	const char *not_ints[] = {"\"5\"",	     "true", "null", "[1]", "9007199254740992",
				  "9999999999999999"};
	for (size_t i = 0; i < sizeof(not_ints) / sizeof(not_ints[0]); i++) {
		n = snprintf(line, sizeof(line),
			     "{\"stage\":\"downloading\",\"version\":\"1\",\"offset\":0,"
			     "\"size\":%s}",
			     not_ints[i]);
		parse_refused(line, "size: not an integer in 0..2^53-1");
	}
	parse_refused("{\"stage\":\"downloading\",\"version\":\"1\",\"offset\":\"0\",\"size\":1}",
		      "offset: not an integer");
	parse_refused("{\"stage\":\"downloading\",\"version\":\"1\",\"offset\":5,\"size\":5}",
		      "offset: not below size");
	parse_refused("{\"stage\":\"downloading\",\"version\":\"1\",\"offset\":0,\"size\":0}",
		      "offset: not below size");

	/* What does parse: spaces between tokens, keys in any order, the largest integer. */
	struct moat_update_report r;
	struct moat_err e;
	const char *ok = "{ \"size\" : 9007199254740991 , \"offset\": 3, \"version\": \"1.2.0\", "
			 "\"stage\": \"downloading\" }\n";
	assert_int_equal(moat_update_report_parse(ok, strlen(ok), &r, &e), 0);
	assert_int_equal(r.kind, MOAT_UPDATE_REPORT_DOWNLOADING);
	assert_int_equal(r.size, 9007199254740991ULL);
	assert_int_equal(r.offset, 3);
	ok = "{\"outcome\":\"failed\",\"msg\":\"digits 0123 and \\\"-1.5e3\\\" in a string\"}";
	assert_int_equal(moat_update_report_parse(ok, strlen(ok), &r, &e), 0);
	assert_string_equal(r.res.msg, "digits 0123 and \"-1.5e3\" in a string");
	ok = "{\"outcome\":\"failed\",\"msg\":\"\\\\u0000 is text here\"}";
	assert_int_equal(moat_update_report_parse(ok, strlen(ok), &r, &e), 0);
	assert_string_equal(r.res.msg, "\\u0000 is text here");
}

/* The update event moat-agent publishes is built by moat-device (the bytes below are what
 * the agent published before the move), and nothing is built that moatd's parser would
 * refuse. */
static void test_update_event_format(void **state)
{
	(void)state;
	char buf[MOAT_UPDATE_EVENT_MAX_BYTES];
	size_t len = 0;
	struct moat_err err;
	struct moat_update_event ev, back;

	memset(&ev, 0, sizeof(ev));
	ev.stage = MOAT_UPD_REFUSED;
	snprintf(ev.version, sizeof(ev.version), "1.2.0");
	snprintf(ev.running, sizeof(ev.running), "1.1.0");
	snprintf(ev.reason, sizeof(ev.reason), "bad_signature \"x\" \\");
	assert_int_equal(moat_update_event_format(&ev, 1764729600, buf, sizeof(buf), &len, &err),
			 0);
	assert_string_equal(buf,
			    "{\"event\":\"update\",\"stage\":\"refused\",\"version\":\"1.2.0\","
			    "\"running\":\"1.1.0\",\"reason\":\"bad_signature \\\"x\\\" "
			    "\\\\\",\"timestamp\":1764729600}");
	assert_int_equal(len, strlen(buf));
	memset(&back, 0, sizeof(back));
	assert_int_equal(moat_update_event_parse(buf, len, &back, &err), 0);
	assert_int_equal(back.stage, MOAT_UPD_REFUSED);
	assert_string_equal(back.reason, ev.reason);
	memset(&ev, 0, sizeof(ev));
	ev.stage = MOAT_UPD_CHECKED;
	assert_int_equal(moat_update_event_format(&ev, 1764729600, buf, sizeof(buf), &len, &err),
			 0);
	assert_string_equal(buf, "{\"event\":\"update\",\"stage\":\"checked\",\"timestamp\":"
				 "1764729600}");
	ev.stage = MOAT_UPD_CONFIRMED;
	snprintf(ev.version, sizeof(ev.version), "2.0.0-rc.1+b5");
	assert_int_equal(moat_update_event_format(&ev, 1764729600123LL, buf, sizeof(buf), &len,
						  &err),
			 0);
	assert_string_equal(buf, "{\"event\":\"update\",\"stage\":\"confirmed\",\"version\":"
				 "\"2.0.0-rc.1+b5\",\"timestamp\":1764729600123}");
	/* refused: what the parser refuses, a stage out of range, a buffer too small */
	snprintf(ev.version, sizeof(ev.version), "v1");
	assert_int_equal(moat_update_event_format(&ev, 1, buf, sizeof(buf), &len, &err),
			 MOAT_EINVAL);
	assert_int_equal(len, 0);
	snprintf(ev.version, sizeof(ev.version), "1.0.0");
	snprintf(ev.reason, sizeof(ev.reason), "caf\xc3\xa9");
	assert_int_equal(moat_update_event_format(&ev, 1, buf, sizeof(buf), &len, &err),
			 MOAT_EINVAL);
	ev.reason[0] = '\0';
	assert_int_equal(moat_update_event_format(&ev, -1, buf, sizeof(buf), &len, &err),
			 MOAT_EINVAL);
	assert_int_equal(moat_update_event_format(&ev, 1, buf, 20, &len, &err), MOAT_EINVAL);
	ev.stage = (enum moat_update_stage)MOAT_UPDATE_STAGE_COUNT;
	assert_int_equal(moat_update_event_format(&ev, 1, buf, sizeof(buf), &len, &err),
			 MOAT_EINVAL);
	assert_string_equal(moat_update_stage_name(MOAT_UPD_REVERTED), "reverted");
	enum moat_update_stage st;
	assert_int_equal(moat_update_stage_parse("downloading", &st, &err), 0);
	assert_int_equal(st, MOAT_UPD_DOWNLOADING);
	assert_int_equal(moat_update_stage_parse("done", &st, &err), MOAT_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_roundtrip),
		cmocka_unit_test(test_state_v1),
		cmocka_unit_test(test_state_rejections),
		cmocka_unit_test(test_machine),
		cmocka_unit_test(test_power_fail),
		cmocka_unit_test_setup_teardown(test_provision_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_confirm_on_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prepare, setup, teardown),
		cmocka_unit_test(test_report_roundtrip),
		cmocka_unit_test(test_report_format_rejections),
		cmocka_unit_test(test_report_parse_rejections),
		cmocka_unit_test(test_update_event_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
