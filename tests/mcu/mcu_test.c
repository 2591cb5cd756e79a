/* mcu_test.c: moat-device on a microcontroller under QEMU (Cortex-M3 lm3s6965evb, rv32imc
 * virt), with the mbedTLS port and semihosting for files, output and the exit status.
 * cases.txt (written at test time by tests/mcu/run.sh from `moat fw sign` output) names
 * the trusted keys and, per case, an envelope, an image, the device's policy and the
 * verdict expected; then the A/B machine runs over a simulated flash in RAM that loses
 * power at every byte of every write, and the message scheme is checked. Prints
 * "N passed, N failed"; exits 0 only when nothing failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/memory_buffer_alloc.h>

#include "moat_device.h"

#define ENVELOPE_MAX 8192
#define KEY_MAX 128

static int passed;
static int failed;

static void check(int ok, const char *what, const char *detail)
{
	if (ok) {
		passed++;
	} else {
		failed++;
		printf("FAIL %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	}
}

/* mbedTLS's bignums allocate from this arena, never from the heap. */
static unsigned char arena[10 * 1024];
static unsigned char envelope[ENVELOPE_MAX];
static struct mdev_fw_work work;
static unsigned char keys_der[MDEV_FW_TRUST_MAX_KEYS][KEY_MAX];
static struct mdev_trusted_key keys[MDEV_FW_TRUST_MAX_KEYS];
static struct mdev_trust trust = {keys, 0, 1};

static long read_file(const char *path, unsigned char *buf, size_t size)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		return -1;
	}
	size_t n = fread(buf, 1, size, f);
	fclose(f);
	return n == size ? -1 : (long)n;
}

static int add_key(const char *path)
{
	size_t i = trust.count;
	long n = i < MDEV_FW_TRUST_MAX_KEYS ? read_file(path, keys_der[i], KEY_MAX) : -1;
	if (n <= 0) {
		return -1;
	}
	keys[i].key = keys_der[i];
	keys[i].key_len = (size_t)n;
	if (mdev_keyid(keys_der[i], (size_t)n, keys[i].keyid) != 0) {
		return -1;
	}
	trust.count++;
	return 0;
}

static enum mdev_fw_verdict verify_image(const char *path, const struct mdev_manifest *m,
					 struct mdev_fw_decision *d)
{
	static unsigned char chunk[512];
	struct mdev_fw_stream s;
	FILE *f = fopen(path, "rb");
	if (f == NULL || mdev_fw_stream_init(&s, m) != 0) {
		if (f != NULL) {
			fclose(f);
		}
		snprintf(d->msg, sizeof(d->msg), "cannot open %s", path);
		d->verdict = MDEV_FW_MALFORMED;
		return d->verdict;
	}
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (mdev_fw_stream_update(&s, chunk, n) != 0) {
			break; /* over the signed size: stop reading */
		}
	}
	fclose(f);
	enum mdev_fw_verdict v = mdev_fw_stream_decide(&s, d);
	mdev_fw_stream_abort(&s);
	return v;
}

/* verify ENV IMAGE|- EXPECT TYPE CURRENT|- FLOOR NOW|unknown LAST install|boot */
static void run_case(char **f, int n)
{
	char what[96];
	if (n != 10) {
		check(0, "cases.txt", "a verify line has 10 fields");
		return;
	}
	struct mdev_fw_policy p = {
		.purpose = strcmp(f[9], "boot") == 0 ? MDEV_FW_FOR_BOOT : MDEV_FW_FOR_INSTALL,
		.device_type = f[4],
		.current_version = strcmp(f[5], "-") == 0 ? NULL : f[5],
		.security_floor = strtoll(f[6], NULL, 10),
		.now = strcmp(f[7], "unknown") == 0 ? MDEV_TIME_UNKNOWN : strtoll(f[7], NULL, 10),
		.last_issued_at = strtoll(f[8], NULL, 10),
	};
	struct mdev_manifest m;
	struct mdev_fw_decision d;
	long len = read_file(f[1], envelope, sizeof(envelope));
	snprintf(what, sizeof(what), "%s %s", f[1], f[3]);
	if (len < 0) {
		check(0, what, "cannot read the envelope");
		return;
	}
	enum mdev_fw_verdict v = mdev_fw_decide(envelope, (size_t)len, &trust, &p, &work, &m, &d);
	if (v == MDEV_FW_ACCEPT && strcmp(f[2], "-") != 0) {
		v = verify_image(f[2], &m, &d);
	}
	check(strcmp(mdev_fw_verdict_name(v), f[3]) == 0, what, d.msg);
}

/* Splits line at spaces into at most max fields. */
static int split(char *line, char **f, int max)
{
	int n = 0;
	char *p = line;
	while (*p != '\0' && n < max) {
		while (*p == ' ' || *p == '\n') {
			*p++ = '\0';
		}
		if (*p == '\0') {
			break;
		}
		f[n++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\n') {
			p++;
		}
	}
	return n;
}

/* trust THRESHOLD KEY.der... | verify ... */
static void run_cases(void)
{
	static char line[512];
	FILE *cases = fopen("cases.txt", "r");
	int count = 0;
	if (cases == NULL) {
		check(0, "cases.txt", "missing");
		return;
	}
	while (fgets(line, sizeof(line), cases) != NULL) {
		char *f[16];
		int n = split(line, f, 16);
		if (n >= 3 && strcmp(f[0], "trust") == 0) {
			trust.count = 0;
			trust.threshold = (int)strtol(f[1], NULL, 10);
			for (int i = 2; i < n; i++) {
				check(add_key(f[i]) == 0, "trust key", f[i]);
			}
		} else if (n >= 1 && strcmp(f[0], "verify") == 0) {
			run_case(f, n);
			count++;
		}
	}
	fclose(cases);
	/* The refusal reasons run.sh makes: a short list here would be a silent skip. */
	check(count >= 16, "cases.txt", "fewer than 16 verify cases");
}

/* ---- the A/B machine over a flash that loses power ---- */

struct flash {
	unsigned char mem[MDEV_AB_STORE_BYTES];
	long budget; /* bytes still written before the power cut; < 0: never */
	int cut;     /* the power was cut */
};

static int flash_read(void *ctx, size_t off, void *buf, size_t len)
{
	struct flash *fl = ctx;
	if (off + len > sizeof(fl->mem)) {
		return -1;
	}
	memcpy(buf, fl->mem + off, len);
	return 0;
}

static int flash_write(void *ctx, size_t off, const void *buf, size_t len)
{
	struct flash *fl = ctx;
	const unsigned char *b = buf;
	if (off + len > sizeof(fl->mem) || fl->cut) {
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (fl->budget == 0) {
			/* torn: the byte being written when the power went holds garbage */
			fl->mem[off + i] ^= 0x5a;
			fl->cut = 1;
			return -1;
		}
		fl->mem[off + i] = b[i];
		if (fl->budget > 0) {
			fl->budget--;
		}
	}
	return 0;
}

static int same(const struct mdev_ab_state *a, const struct mdev_ab_state *b)
{
	return a->active == b->active && a->trial == b->trial && a->attempts == b->attempts &&
	       a->deadline == b->deadline && a->floor == b->floor &&
	       a->last_issued_at == b->last_issued_at &&
	       a->reverted_issued_at == b->reverted_issued_at;
}

#define STEPS 8

/* The life of a device: two updates, the first confirmed (floor raised), the second
 * reverted after its trial start; every step is one save. states[i] is the state after
 * step i (states[0]: fresh). */
static int scenario(struct mdev_ab_store *st, struct mdev_ab_state states[STEPS + 1])
{
	struct mdev_ab_state s;
	uint32_t seq = 0;
	int steps = 0;
	int rc = mdev_ab_load(st, &s, &seq);
	if (rc < 0) {
		return -1;
	}
	states[0] = s;
	for (int step = 1; step <= STEPS; step++) {
		switch (step) {
		case 1:
			rc = mdev_ab_stage(&s, 'b', 1700000000);
			break;
		case 2:
			rc = mdev_ab_select(&s, 1700000100, 300) == MDEV_AB_START_TRIAL ? 0 : -1;
			break;
		case 3:
			rc = mdev_ab_confirm(&s, 4);
			break;
		case 4:
			rc = mdev_ab_stage(&s, 'a', 1700001000);
			break;
		case 5:
			rc = mdev_ab_select(&s, 1700001100, 300) == MDEV_AB_START_TRIAL ? 0 : -1;
			break;
		case 6: /* the trial hung: the next boot reverts it */
			rc = mdev_ab_select(&s, 1700001500, 300) == MDEV_AB_REVERTED ? 0 : -1;
			break;
		case 7:
			rc = mdev_ab_select(&s, 1700001600, 300) == MDEV_AB_START_ACTIVE ? 0 : -1;
			break;
		default:
			rc = mdev_ab_stage(&s, 'a', 1700002000);
			break;
		}
		if (rc != 0 || mdev_ab_save(st, &s, &seq) != 0) {
			return steps;
		}
		states[step] = s;
		steps = step;
	}
	return steps;
}

static void test_ab_powerfail(void)
{
	static struct flash fl;
	struct mdev_ab_store store = {&fl, flash_read, flash_write};
	struct mdev_ab_state ref[STEPS + 1];
	struct mdev_ab_state got[STEPS + 1];
	memset(&fl, 0xff, sizeof(fl.mem));
	fl.budget = -1;
	fl.cut = 0;
	check(scenario(&store, ref) == STEPS, "ab: uninterrupted run", NULL);
	check(ref[3].active == 'b' && ref[3].floor == 4 && ref[6].active == 'b' &&
		      ref[6].trial == 0 && ref[6].reverted_issued_at == 1700001000,
	      "ab: confirm raises the floor, a hung trial reverts", NULL);
	long total = (long)STEPS * MDEV_AB_RECORD_BYTES;
	int bad = 0;
	for (long cut = 0; cut <= total; cut++) {
		struct mdev_ab_state after;
		memset(fl.mem, 0xff, sizeof(fl.mem));
		fl.budget = cut;
		fl.cut = 0;
		int done = scenario(&store, got);
		/* Power back: what the device reads is the last completed step, never a torn
		 * or a made-up state. */
		fl.budget = -1;
		fl.cut = 0;
		if (mdev_ab_load(&store, &after, NULL) < 0 || done < 0 ||
		    !same(&after, &ref[done])) {
			bad++;
		}
	}
	check(bad == 0, "ab: power cut at every byte of every write keeps the last state", NULL);
	/* Invariants the machine refuses. */
	struct mdev_ab_state s = ref[0];
	check(mdev_ab_stage(&s, 'a', 1) != 0, "ab: staging the active slot is refused", NULL);
	check(mdev_ab_confirm(&s, 9) != 0, "ab: confirm without a trial is refused", NULL);
	check(mdev_ab_stage(&s, 'b', 1) == 0 && mdev_ab_stage(&s, 'b', 2) != 0,
	      "ab: a second stage while on trial is refused", NULL);
	s.trial = 'x';
	check(mdev_ab_check(&s) != 0, "ab: a state with a bad slot is refused", NULL);
}

/* ---- messages and commands ---- */

static int ran_reboot;

static void on_reboot(void *ctx, struct mdev_cmd_result *r)
{
	(void)ctx;
	ran_reboot++;
	r->status = "accepted";
	snprintf(r->detail, sizeof(r->detail), "restarting");
}

static void on_interval(void *ctx, int64_t seconds, struct mdev_cmd_result *r)
{
	(void)ctx;
	r->status = "completed";
	r->has_interval = 1;
	r->interval = seconds;
}

static void test_messages(void)
{
	static char buf[512];
	size_t len = 0;
	struct mdev_reading rd[2] = {{"temperature", 21.5}, {"humidity", 40}};
	struct mdev_telemetry t = {.device_id = "mcu-1",
				   .device_type = "mcu_sensor",
				   .timestamp_ms = 1700000000000LL,
				   .readings = rd,
				   .reading_count = 2,
				   .has_signal_strength = true,
				   .has_free_heap = true,
				   .has_uptime_ms = true,
				   .has_seq = true,
				   .signal_strength = -60,
				   .free_heap = 20000,
				   .uptime_ms = 1234,
				   .seq = 7};
	check(mdev_topic_build(MDEV_TOPIC_TELEMETRY, "mcu-1", buf, sizeof(buf)) == 0 &&
		      strcmp(buf, "devices/mcu-1/telemetry") == 0,
	      "topic: telemetry", buf);
	check(mdev_topic_build(MDEV_TOPIC_COMMANDS_FILTER, "mcu-1", buf, sizeof(buf)) == 0 &&
		      strcmp(buf, "devices/mcu-1/commands/+") == 0,
	      "topic: commands", buf);
	check(mdev_topic_build(MDEV_TOPIC_STATUS, "Bad/Id", buf, sizeof(buf)) != 0,
	      "topic: an invalid id is refused", NULL);
	check(mdev_msg_telemetry(&t, buf, sizeof(buf), &len) == 0 &&
		      strcmp(buf, "{\"device_id\":\"mcu-1\",\"device_type\":\"mcu_sensor\","
				  "\"timestamp\":1700000000000,\"telemetry\":{\"temperature\":21.5,"
				  "\"humidity\":40},\"metadata\":{\"signal_strength\":-60,"
				  "\"free_heap\":20000,\"uptime_ms\":1234,\"seq\":7}}") == 0,
	      "telemetry JSON", buf);
	check(mdev_msg_telemetry(&t, buf, 40, &len) != 0 && len == 0,
	      "telemetry: a small buffer is refused, not truncated", NULL);
	check(mdev_msg_status_will("mcu-1", buf, sizeof(buf), &len) == 0 &&
		      strcmp(buf, "{\"device_id\":\"mcu-1\",\"status\":\"offline\"}") == 0,
	      "last will JSON", buf);
	struct mdev_diagnostics dg = {.device_id = "mcu-1",
				      .timestamp_ms = 1700000000000LL,
				      .uptime_ms = 1234,
				      .free_heap = 20000,
				      .ip_address = "10.0.0.7",
				      .mac_address = "24:6f:28:aa:bb:cc",
				      .firmware_version = "1.2.0",
				      .interval_s = 30,
				      .seq = 7};
	check(mdev_msg_diagnostics(&dg, buf, sizeof(buf), &len) == 0 &&
		      strcmp(buf, "{\"device_id\":\"mcu-1\",\"timestamp\":1700000000000,"
				  "\"uptime_ms\":1234,\"free_heap\":20000,\"ip_address\":"
				  "\"10.0.0.7\",\"mac_address\":\"24:6f:28:aa:bb:cc\","
				  "\"agent_version\":\"1.2.0\",\"interval_s\":30,\"seq\":7,"
				  "\"queued\":0}") == 0,
	      "diagnostics JSON (the MCU's fields)", buf);
	check(mdev_msg_diagnostics(&dg, buf, 60, &len) != 0 && len == 0,
	      "diagnostics: a small buffer is refused, not truncated", NULL);
	dg.firmware_version = "1.2\n";
	check(mdev_msg_diagnostics(&dg, buf, sizeof(buf), &len) != 0,
	      "diagnostics: a control character in text is refused", NULL);
	dg.firmware_version = "1.2.0";
	dg.ip_address = "10.0.0.7/24";
	check(mdev_msg_diagnostics(&dg, buf, sizeof(buf), &len) != 0,
	      "diagnostics: an address that is not one is refused", NULL);
	dg.ip_address = NULL;
	dg.queued = -1;
	check(mdev_msg_diagnostics(&dg, buf, sizeof(buf), &len) != 0,
	      "diagnostics: a negative counter is refused", NULL);
	t.has_signal_strength = t.has_free_heap = t.has_uptime_ms = false;
	t.reading_count = 1;
	check(mdev_msg_telemetry(&t, buf, sizeof(buf), &len) == 0 &&
		      strcmp(buf, "{\"device_id\":\"mcu-1\",\"device_type\":\"mcu_sensor\","
				  "\"timestamp\":1700000000000,\"telemetry\":{\"temperature\":"
				  "21.5},\"metadata\":{\"seq\":7}}") == 0,
	      "telemetry: metadata only as present", buf);
	struct mdev_update_event ev = {MDEV_UPD_REFUSED, "1.3.0", "1.2.0", "expired", 1700000000};
	check(mdev_msg_update_event(&ev, buf, sizeof(buf), &len) == 0 &&
		      strcmp(buf, "{\"event\":\"update\",\"stage\":\"refused\",\"version\":"
				  "\"1.3.0\",\"running\":\"1.2.0\",\"reason\":\"expired\","
				  "\"timestamp\":1700000000}") == 0,
	      "update event JSON", buf);
	ev.version = "v1.3";
	check(mdev_msg_update_event(&ev, buf, sizeof(buf), &len) != 0 && len == 0,
	      "update event: a version that is not semver is refused", NULL);
	struct mdev_response r = {"mcu-1", "reboot", "accepted",
				  5,	   "c-1",    "red\xc3\xa9marrage \xe2\x9c\x93",
				  0};
	check(mdev_msg_response(&r, buf, sizeof(buf), &len) == 0,
	      "response: a UTF-8 detail is kept", buf);
	static const char *const bad_detail[] = {"\xc3", "\xe2\x80\xae", "\xc2\x85", "\xed\xa0\x80",
						 "a\tb"};
	for (size_t i = 0; i < sizeof(bad_detail) / sizeof(bad_detail[0]); i++) {
		r.detail = bad_detail[i];
		check(mdev_msg_response(&r, buf, sizeof(buf), &len) != 0 && len == 0,
		      "response: a detail that is not display text is refused", bad_detail[i]);
	}
	static const char cmd[] =
		"{\"command\":\"update_interval\",\"id\":\"c-42\",\"interval\":30}";
	int k = mdev_cmd_dispatch("mcu-1", "devices/mcu-1/commands/update_interval", cmd,
				  sizeof(cmd) - 1,
				  &(struct mdev_cmd_handlers){NULL, on_reboot, on_interval, NULL,
							      NULL},
				  1700000000001LL, buf, sizeof(buf), &len);
	check(k == MDEV_CMD_UPDATE_INTERVAL &&
		      strcmp(buf, "{\"device_id\":\"mcu-1\",\"command\":\"update_interval\","
				  "\"status\":\"completed\",\"timestamp\":1700000000001,\"id\":"
				  "\"c-42\",\"interval\":30}") == 0,
	      "command: update_interval answered with its correlation id", buf);
	static const char bad[] = "{\"command\":\"reboot\",\"id\":\"x\",\"id\":\"y\"}";
	mdev_cmd_dispatch("mcu-1", "devices/mcu-1/commands/reboot", bad, sizeof(bad) - 1,
			  &(struct mdev_cmd_handlers){NULL, on_reboot, on_interval, NULL, NULL}, 1,
			  buf, sizeof(buf), &len);
	check(ran_reboot == 0 && strstr(buf, "\"status\":\"bad_request\"") != NULL,
	      "command: a duplicate key is a bad request, not a reboot", buf);
	check(mdev_cmd_dispatch("mcu-1", "devices/other/commands/reboot", "{}", 2,
				&(struct mdev_cmd_handlers){NULL, on_reboot, NULL, NULL, NULL}, 1,
				buf, sizeof(buf), &len) < 0 &&
		      ran_reboot == 0,
	      "command: another device's topic is ignored", NULL);
	mdev_cmd_dispatch("mcu-1", "devices/mcu-1/commands/self_destruct", "{}", 2,
			  &(struct mdev_cmd_handlers){NULL, on_reboot, NULL, NULL, NULL}, 1, buf,
			  sizeof(buf), &len);
	check(strstr(buf, "\"status\":\"unknown_command\"") != NULL, "command: unknown", buf);
}

int main(void)
{
	mbedtls_memory_buffer_alloc_init(arena, sizeof(arena));
	run_cases();
	test_ab_powerfail();
	test_messages();
	printf("%d passed, %d failed\n", passed, failed);
	fflush(stdout);
	/* exit(), not a return from main: picolibc 1.8's crt0 on these boards does not reach
	 * semihosting's exit from a return, and QEMU would never stop. */
	exit(failed == 0 && passed > 0 ? 0 : 1);
}
