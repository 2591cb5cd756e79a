/* boot_main.c: moat-boot, the device's boot stage on Linux (secure boot for the agent).
 *
 *   moat-boot --state DIR [--trial-seconds N] -- PROGRAM-NAME [ARGS...]
 *       Before every start, verifies the slot's envelope (trusted keys, device type, floor)
 *       and image, copying it into a sealed memfd, and executes that memfd: an image changed
 *       on disk never runs. A staged slot starts on trial: it must run `moat-boot --confirm`
 *       before the deadline; if it exits first, crashes, misses the deadline or does not
 *       verify, the trial is dropped and the previous slot starts again. An image that exits
 *       with MOAT_BOOT_RESTART_EXIT (or while an update was staged) is started again; any
 *       other exit of a confirmed image ends moat-boot with the image's status.
 *   moat-boot --state DIR --confirm       the running trial confirms (floor rises)
 *   moat-boot --state DIR --status        prints the boot state and the slots' versions
 *   moat-boot --state DIR --verify        verifies the slot that would start next
 *   moat-boot --state DIR --provision --device-type T --trust FILE --image FILE --envelope FILE
 *
 * The image's environment gets MOAT_BOOT_STATE (the directory), MOAT_BOOT_SLOT and
 * MOAT_BOOT_TRIAL (1 while on trial).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "moat/log.h"
#include "moat/opts.h"
#include "moat/spawn.h"
#include "moat/timeutil.h"
#include "moat/update.h"

#define POLL_MS 100
#define RESTART_PAUSE_MS 200

#define SPAWN_FAILED_EXIT 127 /* what a failed exec of the image counts as */

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	(void)nanosleep(&ts, NULL);
}

static const char usage_text[] =
	"usage: moat-boot --state DIR [--trial-seconds N] -- PROGRAM [ARGS...]\n"
	"       moat-boot --state DIR --confirm | --status | --verify\n"
	"       moat-boot --state DIR --provision --device-type T --trust FILE "
	"--image FILE --envelope FILE\n"
	"Verifies the A/B slot under DIR that starts next (signed envelope, device type,\n"
	"security floor, image) and executes it from a sealed copy as PROGRAM with ARGS; a new\n"
	"image runs on trial and is reverted unless it runs moat-boot --confirm in time.\n"
	"  --state DIR        the slots' state directory\n"
	"  --trial-seconds N  how long a new image has to confirm (default 120; 90s, 5m)\n"
	"  --confirm          the running trial image works: keep it\n"
	"  --status           print the slots' state\n"
	"  --verify           verify the image that would start\n"
	"  --provision        install the factory image (--image, --envelope signed for\n"
	"                     --device-type, verified against the trust list --trust)\n"
	"  --help             this text;  --version  the version\n";

static int usage(void)
{
	fputs(usage_text, stderr);
	return MOAT_OPTS_USAGE_EXIT;
}

/* Misuse prints the usage on stderr (exit 2). */
static int bad_usage(void *dst, const char *value, struct moat_err *err)
{
	(void)dst;
	(void)value;
	moat_err_clear(err);
	return MOAT_EINVAL;
}

static int parse_trial(void *dst, const char *value, struct moat_err *err)
{
	int64_t *trial_seconds = dst;
	struct moat_err why;
	moat_err_clear(&why);
	if (moat_duration_parse(value, 1, trial_seconds, &why) != 0 || *trial_seconds < 1) {
		return moat_err_set(err, MOAT_EINVAL, "--trial-seconds: %s",
				    *trial_seconds < 1 ? "must be at least 1s" : why.msg);
	}
	return 0;
}

/* --confirm, --status, --verify, --provision: one of them at most. */
struct action_opt {
	int *action;
	int value;
};

static int pick_action(void *dst, const char *value, struct moat_err *err)
{
	struct action_opt *a = dst;
	(void)value;
	if (*a->action != 0) {
		return bad_usage(NULL, NULL, err);
	}
	*a->action = a->value;
	return 0;
}

static int fail(const struct moat_err *err)
{
	fprintf(stderr, "moat-boot: %s\n", err->msg);
	return 1;
}

/* Picks the slot to start and verifies it (moat_boot_prepare), logging a trial it drops.
 * *out_fd is the sealed memfd of the verified image. */
static int prepare(const char *dir, int64_t trial_seconds, char *out_slot, bool *out_trial,
		   int *out_fd, struct moat_manifest *out_m, struct moat_err *err)
{
	char why[MOAT_ERR_MSG_MAX];
	bool reverted = false;
	int rc = moat_boot_prepare(dir, moat_time_now(), trial_seconds, out_slot, out_trial, out_fd,
				   out_m, &reverted, why, sizeof(why), err);

	if (reverted) {
		moat_log(MOAT_LOG_WARN, "event=revert reason=\"%s\" slot=%c", why, *out_slot);
	}
	return rc;
}

/* Starts the verified image (memfd fd) of slot with the boot environment. A failed exec
 * is reported as the image's own failure would have been: exit status 127. */
static int start(int fd, const char *dir, char slot, bool trial, char **args,
		 struct moat_spawn_child *out, struct moat_err *err)
{
	static char *default_args[] = {"moat-image", NULL};
	char state_env[PATH_MAX + sizeof("MOAT_BOOT_STATE=")];
	char slot_env[] = "MOAT_BOOT_SLOT=?";
	char trial_env[] = "MOAT_BOOT_TRIAL=?";
	char *env[] = {state_env, slot_env, trial_env, NULL};
	int n = snprintf(state_env, sizeof(state_env), "MOAT_BOOT_STATE=%s", dir);

	if (n < 0 || (size_t)n >= sizeof(state_env)) {
		return moat_err_set(err, MOAT_EINVAL, "%s: path too long", dir);
	}
	slot_env[sizeof(slot_env) - 2] = slot;
	trial_env[sizeof(trial_env) - 2] = trial ? '1' : '0';
	/* the memfd must survive the exec (a script's interpreter opens it) */
	struct moat_spawn sp = {
		.argv = args[0] != NULL ? args : default_args,
		.exec_fd = fd,
		.env = env,
		.flags = MOAT_SPAWN_EXEC_FD | MOAT_SPAWN_SIGDEFAULT,
	};
	return moat_spawn_start(&sp, out, err);
}

/* Whether the trial in slot has confirmed (it is now the active slot). */
static bool trial_state(const char *dir, char slot, bool *out_confirmed, int64_t *out_deadline)
{
	struct moat_boot_state st;
	int lock = -1;
	bool ok = false;

	if (moat_slots_lock(dir, &lock, NULL) == 0 && moat_slots_load(dir, &st, NULL) == 0) {
		*out_confirmed = st.trial == 0 && st.active == slot;
		*out_deadline = st.deadline;
		ok = true;
	}
	moat_slots_unlock(lock);
	return ok;
}

/* After the image stopped: drops an unconfirmed trial; says whether a trial is staged. */
static int after_exit(const char *dir, char slot, bool trial, bool *out_staged, bool *out_confirmed,
		      struct moat_err *err)
{
	struct moat_boot_state st;
	int lock = -1;
	int rc;

	*out_staged = false;
	rc = moat_slots_lock(dir, &lock, err);
	if (rc == 0) {
		rc = moat_slots_load(dir, &st, err);
	}
	if (rc == 0 && trial) {
		/* It may have confirmed just before it stopped. */
		*out_confirmed = st.trial == 0 && st.active == slot;
	}
	if (rc == 0 && trial && st.trial == slot) {
		moat_log(MOAT_LOG_WARN,
			 "event=revert slot=%c reason=\"trial stopped before confirming\"", slot);
		moat_boot_revert(&st);
		rc = moat_slots_save(dir, &st, err);
	}
	if (rc == 0) {
		*out_staged = st.trial != 0;
	}
	moat_slots_unlock(lock);
	return rc;
}

/* Waits for the image to exit: logs its confirmation, kills a trial that misses its
 * deadline, and stops it when moat-boot is told to stop (then returns true). *out_status
 * is its wait status. */
static bool watch(const char *dir, char slot, bool trial, const struct moat_manifest *m,
		  struct moat_spawn_child *child, int *out_status)
{
	bool confirmed = false;
	for (;;) {
		int64_t deadline = 0;
		bool known = false;

		if (moat_spawn_poll(child, out_status, &known)) {
			return false;
		}
		if (stop_signal) {
			kill(child->pid, SIGTERM);
			if (moat_spawn_wait(child, out_status, NULL) != 0) {
				/* already gone */
			}
			return true;
		}
		if (trial && !confirmed && trial_state(dir, slot, &confirmed, &deadline)) {
			if (confirmed) {
				moat_log(MOAT_LOG_INFO, "event=confirmed slot=%c version=%s", slot,
					 m->version);
			} else if (moat_time_now() >= deadline) {
				moat_log(MOAT_LOG_WARN, "event=deadline slot=%c", slot);
				kill(child->pid, SIGKILL);
				if (moat_spawn_wait(child, out_status, NULL) != 0) {
					/* already gone */
				}
				return false;
			}
		}
		sleep_ms(POLL_MS);
	}
}

static int run(const char *dir, int64_t trial_seconds, char **args)
{
	struct moat_err err;
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	for (;;) {
		struct moat_manifest m;
		char slot = 0;
		bool trial = false;
		bool confirmed = false;
		int fd = -1;
		int status = 0;

		if (stop_signal) {
			return 0;
		}
		if (prepare(dir, trial_seconds, &slot, &trial, &fd, &m, &err) != 0) {
			return fail(&err);
		}
		moat_log(MOAT_LOG_INFO, "event=start slot=%c version=%s trial=%s", slot, m.version,
			 trial ? "yes" : "no");
		struct moat_spawn_child child;
		int src = start(fd, dir, slot, trial, args, &child, &err);
		close(fd);
		if (src != 0 && child.exec_errno == 0) {
			return fail(&err);
		}
		if (src != 0) {
			fprintf(stderr, "moat-boot: exec slot %c: %s\n", slot,
				strerror(child.exec_errno));
			status = W_EXITCODE(SPAWN_FAILED_EXIT, 0);
		} else if (watch(dir, slot, trial, &m, &child, &status)) {
			return 0; /* stopped by a signal */
		}
		bool staged = false;
		if (after_exit(dir, slot, trial, &staged, &confirmed, &err) != 0) {
			return fail(&err);
		}
		if (trial && !confirmed) {
			/* reverted by after_exit: the previous slot starts again */
			sleep_ms(RESTART_PAUSE_MS);
			continue;
		}
		int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (staged || code == MOAT_BOOT_RESTART_EXIT) {
			moat_log(MOAT_LOG_INFO, "event=restart slot=%c staged=%s", slot,
				 staged ? "yes" : "no");
			sleep_ms(RESTART_PAUSE_MS);
			continue;
		}
		moat_log(MOAT_LOG_INFO, "event=exit slot=%c status=%d", slot, code);
		return code;
	}
}

static int status_cmd(const char *dir)
{
	struct moat_boot_state st;
	struct moat_err err;
	char text[MOAT_BOOT_STATE_MAX_BYTES];
	size_t len = 0;

	if (moat_slots_load(dir, &st, &err) != 0 ||
	    moat_boot_state_format(&st, text, sizeof(text), &len, &err) != 0) {
		return fail(&err);
	}
	fwrite(text, 1, len, stdout);
	for (char s = 'a'; s <= 'b'; s++) {
		struct moat_manifest m;
		struct moat_err verr;

		if (moat_slots_verify(dir, &st, s, NULL, &m, &verr) == 0) {
			printf("slot_%c=%s security_version=%lld\n", s, m.version,
			       (long long)m.security_version);
		} else {
			printf("slot_%c=- (%s)\n", s, verr.msg);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_CONFIRM = 1, O_STATUS, O_VERIFY, O_PROVISION };
	const char *dir = NULL, *type = NULL, *trust = NULL, *image = NULL, *envelope = NULL;
	int64_t trial_seconds = MOAT_BOOT_TRIAL_SECONDS_DEFAULT;
	int action = 0;
	struct moat_err err;
	struct action_opt confirm = {&action, O_CONFIRM}, status = {&action, O_STATUS},
			  verify = {&action, O_VERIFY}, provision = {&action, O_PROVISION};
	const struct moat_opt opts[] = {
		{.name = "state", .kind = MOAT_OPT_STRING, .dst = &dir},
		{.name = "trial-seconds",
		 .kind = MOAT_OPT_FN,
		 .dst = &trial_seconds,
		 .fn = parse_trial},
		{.name = "confirm", .kind = MOAT_OPT_FN_FLAG, .dst = &confirm, .fn = pick_action},
		{.name = "status", .kind = MOAT_OPT_FN_FLAG, .dst = &status, .fn = pick_action},
		{.name = "verify", .kind = MOAT_OPT_FN_FLAG, .dst = &verify, .fn = pick_action},
		{.name = "provision",
		 .kind = MOAT_OPT_FN_FLAG,
		 .dst = &provision,
		 .fn = pick_action},
		{.name = "device-type", .kind = MOAT_OPT_STRING, .dst = &type},
		{.name = "trust", .kind = MOAT_OPT_STRING, .dst = &trust},
		{.name = "image", .kind = MOAT_OPT_STRING, .dst = &image},
		{.name = "envelope", .kind = MOAT_OPT_STRING, .dst = &envelope},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{.name = "version", .kind = MOAT_OPT_HELP, .text = "moat-boot " MOAT_VERSION "\n"},
		{0},
	};
	const struct moat_opts_spec spec = {.prog = "moat-boot",
					    .usage = usage_text,
					    .opts = opts,
					    .on_error = MOAT_OPTS_ERROR_USAGE,
					    .stop_at_operand = true};
	int next;

	moat_log_init("moat-boot", MOAT_LOG_INFO, false);
	int ost = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (ost != MOAT_OPTS_CONTINUE) {
		return ost;
	}
	if (dir == NULL) {
		return usage();
	}
	switch (action) {
	case O_CONFIRM: {
		struct moat_manifest m;

		if (moat_slots_confirm(dir, &m, &err) != 0) {
			return fail(&err);
		}
		printf("confirmed %s (security_version %lld)\n", m.version,
		       (long long)m.security_version);
		return 0;
	}
	case O_STATUS:
		return status_cmd(dir);
	case O_VERIFY: {
		struct moat_boot_state st;
		struct moat_manifest m;
		char slot;

		if (moat_slots_load(dir, &st, &err) != 0) {
			return fail(&err);
		}
		slot = st.trial ? st.trial : st.active;
		if (moat_slots_verify(dir, &st, slot, NULL, &m, &err) != 0) {
			return fail(&err);
		}
		printf("slot %c: %s verified\n", slot, m.version);
		return 0;
	}
	case O_PROVISION:
		if (type == NULL || trust == NULL || image == NULL || envelope == NULL) {
			return usage();
		}
		if (moat_slots_provision(dir, type, trust, image, envelope, moat_time_now(),
					 &err) != 0) {
			return fail(&err);
		}
		printf("provisioned %s: slot a\n", dir);
		return 0;
	default:
		return run(dir, trial_seconds, argv + next);
	}
}
