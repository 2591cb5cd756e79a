/* update_client.c: signed updates in moat-agent and in every simulated device.
 *
 * The check itself (HTTPS to moatd, the download, verification, staging) is moat-update's:
 * the device spawns `moat-update --report` and reads its report lines (moat/update.h)
 * from a pipe on its poll loop's ticks, so the MQTT session stays alive during a download
 * and the agent's own image does not link the HTTPS client and its thirty libraries.
 *
 * Reporting: a check_update command is answered "accepted" when the check starts (or is
 * queued) and again with the outcome (completed / accepted + restarting / refused /
 * failed); every step is an update event on devices/ID/diagnostics in moatd's format
 * (checked, downloading, verified, installed, refused with the verdict; confirmed or
 * reverted after the restart). A staged release is remembered in state_dir/update.pending,
 * so the next start can say whether the trial confirmed (the version now running is the
 * staged one) or was reverted.
 *
 * Booting: under moat-boot the slot and trial come from its environment. A trial confirms
 * once the device has reached the broker and, for a real agent, the updater it will depend
 * on answered a probe (`moat-update --report --probe`): an image that could not update
 * itself again must not confirm, so it is restarted and moat-boot reverts it. Until the
 * trial is settled no check runs. A simulated device boots its virtual slots itself at
 * every (simulated) restart with moat_boot_prepare, the verification moat-boot runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "moat/agent_update.h"
#include "moat/fsutil.h"
#include "moat/log.h"
#include "moat/manifest.h"
#include "moat/spawn.h"
#include "moat/timeutil.h"
#include "moat/topic.h"
#include "moat/update.h"

#include "device_internal.h"

#define PENDING_FILE "update.pending"
#define UPDATER_DEFAULT "moat-update"
#define CONFIRM_RETRY_MS 5000 /* a confirm step that failed is tried again after this */

struct moat_agent_update {
	char url[MOAT_AGENT_UPDATE_URL_MAX_LEN + 1];
	char state_dir[PATH_MAX];
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	char program[PATH_MAX];	     /* moat-update: a path, or a name looked up in PATH */
	char pending_path[PATH_MAX]; /* "" when the agent keeps no state */
	int64_t interval_ms;
	int64_t next_check_ms;		     /* monotonic */
	bool started;			     /* the first connection since the (re)start was seen */
	bool settled;			     /* the trial (if any) is settled and update.pending
						reported: checks may run */
	bool due;			     /* a check is wanted and waits for its turn */
	struct moat_agent_update_pool *pool; /* NULL: no limit */
	/* the slot this device runs and whether on trial */
	bool virtual_slots; /* the simulator: no moat-boot, boots in process */
	int64_t trial_seconds;
	char boot_slot;		 /* 'a', 'b', or 0 when unknown */
	bool on_trial;		 /* not confirmed yet */
	int64_t trial_deadline;	 /* wall clock; virtual slots only (moat-boot keeps its own) */
	int64_t trial_hold_ms;	 /* the simulator's health check waits this long; 0: none */
	int64_t trial_decide_ms; /* monotonic: when the held trial's health check decides */
	bool probe_passed;	 /* the updater answered its probe since the start */
	int64_t next_confirm_ms; /* monotonic: the next confirm attempt */
	/* the running child: a check, or the probe */
	struct moat_spawn_child child;	     /* pid 0 when none; out: its stdout's read end */
	bool probing;			     /* the child is the probe */
	char report_error[MOAT_ERR_MSG_MAX]; /* why a report line was refused */
	char line[MOAT_UPDATE_REPORT_MAX_BYTES + 1];
	size_t line_len;
	bool line_too_long; /* the current line is being skipped */
	bool have_outcome;
	struct moat_update_report outcome;
	bool for_command; /* answer cmd_name/cmd_id when it ends */
	char cmd_name[MOAT_MSG_CMD_NAME_MAX_LEN + 1];
	char cmd_id[MOAT_MSG_CMD_ID_MAX_LEN + 1];
	char running[MOAT_FW_VERSION_MAX_LEN + 1];    /* the version of the slot running now */
	char fail_trial[MOAT_FW_VERSION_MAX_LEN + 1]; /* the simulator's bad release; "" */
};

/* moat-update next to this executable when there is one (an installed tree keeps them
 * together), else its name for PATH. Under moat-boot /proc/self/exe is a memfd: PATH. */
static void default_program(char *buf, size_t size)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	snprintf(buf, size, "%s", UPDATER_DEFAULT);
	if (n <= 0 || self[0] != '/') {
		return;
	}
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	*slash = '\0';
	char cand[PATH_MAX];
	int k = snprintf(cand, sizeof(cand), "%s/%s", self, UPDATER_DEFAULT);
	if (k > 0 && (size_t)k < sizeof(cand) && (size_t)k < size && access(cand, X_OK) == 0) {
		snprintf(buf, size, "%s", cand);
	}
}

static int copy_str(char *dst, size_t size, const char *src, const char *what, struct moat_err *err)
{
	if (snprintf(dst, size, "%s", src) >= (int)size) {
		return moat_err_set(err, MOAT_EINVAL, "%s is too long", what);
	}
	return 0;
}

/* Whether a and b name the same directory (by device and inode, so spelling differences
 * such as a trailing slash or a symbolic link do not matter). */
static bool same_dir(const char *a, const char *b)
{
	struct stat sa, sb;
	if (strcmp(a, b) == 0) {
		return true;
	}
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

int moat_agent_update_new(const struct moat_agent_conf *conf, struct moat_agent_update **out,
			  struct moat_err *err)
{
	const char *dir = conf->update_state_dir[0] ? conf->update_state_dir
						    : getenv("MOAT_BOOT_STATE");
	*out = NULL;
	if (!conf->update_url[0] || dir == NULL || dir[0] == '\0') {
		return 0;
	}
	struct moat_agent_update *u = calloc(1, sizeof(*u));
	if (!u) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	u->child.in = u->child.out = u->child.err = -1;
	u->interval_ms = conf->update_interval_s * 1000;
	u->trial_seconds = MOAT_BOOT_TRIAL_SECONDS_DEFAULT;
	int rc;
	if ((rc = copy_str(u->url, sizeof(u->url), conf->update_url, "update server URL", err)) !=
		    0 ||
	    (rc = copy_str(u->state_dir, sizeof(u->state_dir), dir, "update state directory",
			   err)) != 0 ||
	    (rc = copy_str(u->ca, sizeof(u->ca), conf->ca_file, "CA path", err)) != 0 ||
	    (rc = copy_str(u->cert, sizeof(u->cert), conf->cert_file, "certificate path", err)) !=
		    0 ||
	    (rc = copy_str(u->key, sizeof(u->key), conf->key_file, "key path", err)) != 0) {
		goto out;
	}
	if (conf->updater[0]) {
		snprintf(u->program, sizeof(u->program), "%s", conf->updater);
	} else {
		default_program(u->program, sizeof(u->program));
	}
	if (conf->state_dir[0] &&
	    (rc = moat_path_join(u->pending_path, sizeof(u->pending_path), err, "%s/%s",
				 conf->state_dir, PENDING_FILE)) != 0) {
		goto out;
	}
	/* Under moat-boot its state directory is the one that counts (a trial confirmed
	 * elsewhere would be reverted): the slot it started and whether that is a trial. */
	const char *slot = getenv("MOAT_BOOT_SLOT");
	const char *trial = getenv("MOAT_BOOT_TRIAL");
	const char *boot_dir = getenv("MOAT_BOOT_STATE");
	if (boot_dir && boot_dir[0] && slot && (slot[0] == 'a' || slot[0] == 'b') &&
	    slot[1] == '\0') {
		if (!same_dir(boot_dir, u->state_dir)) {
			moat_log(MOAT_LOG_WARN,
				 "id=%s event=update_state_dir state_dir=%s moat_boot=%s "
				 "msg=\"[update] state_dir is not moat-boot's; using moat-boot's\"",
				 conf->id, u->state_dir, boot_dir);
			if ((rc = copy_str(u->state_dir, sizeof(u->state_dir), boot_dir,
					   "update state directory", err)) != 0) {
				goto out;
			}
		}
		u->boot_slot = slot[0];
		u->on_trial = trial && strcmp(trial, "1") == 0;
	}
out:
	if (rc != 0) {
		free(u);
		return rc;
	}
	*out = u;
	return 0;
}

void moat_agent_update_set_pool(struct moat_agent_update *u, struct moat_agent_update_pool *pool)
{
	u->pool = pool;
}

int moat_agent_update_set_fail_trial(struct moat_agent_update *u, const char *version,
				     struct moat_err *err)
{
	int rc;
	u->fail_trial[0] = '\0';
	if (!version || !version[0]) {
		return 0;
	}
	if ((rc = moat_semver_check(version, err)) != 0) {
		return rc;
	}
	return copy_str(u->fail_trial, sizeof(u->fail_trial), version, "--fail-trial", err);
}

int moat_agent_update_set_trial_hold(struct moat_agent_update *u, int64_t hold_ms,
				     struct moat_err *err)
{
	if (hold_ms < 0 || hold_ms > MOAT_AGENT_TRIAL_HOLD_MAX_MS) {
		return moat_err_set(err, MOAT_EINVAL,
				    "--trial-hold: %lld ms is outside 0 to %d ms (the trial's "
				    "deadline is %d s)",
				    (long long)hold_ms, MOAT_AGENT_TRIAL_HOLD_MAX_MS,
				    MOAT_BOOT_TRIAL_SECONDS_DEFAULT);
	}
	u->trial_hold_ms = hold_ms;
	return 0;
}

static void release_pool(struct moat_agent_update *u)
{
	if (u->pool && u->pool->running > 0) {
		u->pool->running--;
	}
}

void moat_agent_update_free(struct moat_agent_update *u)
{
	if (!u) {
		return;
	}
	if (u->child.pid > 0) {
		/* an interrupted download keeps its .part file for the next check */
		moat_spawn_stop(&u->child, SIGTERM);
		release_pool(u);
	}
	moat_spawn_close(&u->child);
	free(u);
}

void moat_agent_update_check_soon(struct moat_agent_update *u)
{
	u->due = true;
}

/* The version of the slot this device runs (the boot's slot, or the active one). "" when
 * it does not verify (then events go without "running"). */
static void read_running(struct moat_agent_update *u)
{
	struct moat_boot_state st;
	struct moat_manifest m;
	struct moat_err err;
	u->running[0] = '\0';
	if (moat_slots_load(u->state_dir, &st, &err) != 0) {
		return;
	}
	char s = u->boot_slot ? u->boot_slot : st.active;
	if (moat_slots_verify(u->state_dir, &st, s, NULL, &m, &err) == 0) {
		snprintf(u->running, sizeof(u->running), "%s", m.version);
	}
}

/* Publishes {"event":"update","stage":...} on devices/ID/diagnostics (QoS 1). An event
 * while disconnected is logged and dropped: the command response and moatd's registry of
 * what each device runs carry the state that matters. */
static void send_event(struct moat_device *dev, struct moat_agent_update *u,
		       enum moat_update_stage stage, const char *version, const char *reason)
{
	char topic[MOAT_TOPIC_BUF_LEN];
	char text[MOAT_UPDATE_EVENT_MAX_BYTES];
	struct moat_update_event ev;
	struct moat_err err;
	size_t len = 0;
	int mid = 0;

	memset(&ev, 0, sizeof(ev));
	ev.stage = stage;
	snprintf(ev.version, sizeof(ev.version), "%s", version ? version : "");
	snprintf(ev.running, sizeof(ev.running), "%s", u->running);
	snprintf(ev.reason, sizeof(ev.reason), "%s", reason ? reason : "");
	if (moat_update_event_format(&ev, moat_time_now(), text, sizeof(text), &len, &err) != 0 ||
	    moat_topic_build(MOAT_TOPIC_DIAGNOSTICS, dev->conf.id, NULL, topic, sizeof(topic),
			     &err) != 0) {
		/* nothing moatd would refuse is sent: say what was not */
		moat_log(MOAT_LOG_WARN, "id=%s event=update_event_error stage=%s error=\"%s\"",
			 dev->conf.id, moat_update_stage_name(stage), err.msg);
		return;
	}
	const char *name = moat_update_stage_name(stage);
	if (!dev->connected ||
	    dev->io.publish(dev->io.ctx, topic, text, len, 1, false, &mid) != 0) {
		moat_log(MOAT_LOG_WARN, "id=%s event=update_event_lost stage=%s", dev->conf.id,
			 name);
		return;
	}
	if (!dev->quiet) {
		moat_log(MOAT_LOG_INFO,
			 "id=%s event=update stage=%s version=%s running=%s reason=\"%s\"",
			 dev->conf.id, name, version && version[0] ? version : "-",
			 u->running[0] ? u->running : "-", reason && reason[0] ? reason : NULL);
	}
}

static void answer(struct moat_device *dev, struct moat_agent_update *u, const char *status,
		   const char *detail)
{
	struct moat_msg_response r;
	memset(&r, 0, sizeof(r));
	snprintf(r.command, sizeof(r.command), "%s", u->cmd_name);
	snprintf(r.id, sizeof(r.id), "%s", u->cmd_id);
	snprintf(r.status, sizeof(r.status), "%s", status);
	snprintf(r.detail, sizeof(r.detail), "%.*s", MOAT_MSG_DETAIL_MAX_LEN, detail);
	moat_device_respond(dev, &r);
}

/* Spawns moat-update --report with its stdout on a pipe; stdin is /dev/null and no other
 * descriptor of this process (MQTT sockets, queue files) reaches it. */
static int spawn_check(struct moat_agent_update *u, bool probe, struct moat_err *err)
{
	char *argv[] = {u->program,
			"--report",
			"--state",
			u->state_dir,
			"--server",
			u->url,
			"--ca",
			u->ca,
			"--cert",
			u->cert,
			"--key",
			u->key,
			probe ? "--probe" : NULL,
			NULL};
	sigset_t none;
	int rc;
	sigemptyset(&none);
	struct moat_spawn sp = {
		.argv = argv,
		.in = MOAT_SPAWN_DEVNULL,
		.out = MOAT_SPAWN_PIPE,
		.sigmask = &none,
		/* the agent's handlers only set its stop flag, and it ignores SIGPIPE */
		.flags = MOAT_SPAWN_SIGDEFAULT | MOAT_SPAWN_SIGPIPE_DEFAULT | MOAT_SPAWN_CLOSE_FDS |
			 MOAT_SPAWN_SEARCH_PATH,
	};
	if ((rc = moat_spawn_start(&sp, &u->child, err)) != 0) {
		return rc;
	}
	if (fcntl(u->child.out, F_SETFL, O_NONBLOCK) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "pipe");
		moat_spawn_stop(&u->child, SIGTERM);
		return rc;
	}
	u->probing = probe;
	u->line_len = 0;
	u->line_too_long = false;
	u->have_outcome = false;
	u->report_error[0] = '\0';
	if (u->pool) {
		u->pool->running++;
	}
	return 0;
}

/* Whether the pool lets one more check run now. */
static bool pool_has_room(const struct moat_agent_update *u)
{
	return u->pool == NULL || u->pool->max == 0 || u->pool->running < u->pool->max;
}

/* One complete report line from the running check. */
static void handle_line(struct moat_device *dev, struct moat_agent_update *u, const char *line,
			size_t len)
{
	struct moat_update_report r;
	struct moat_err err;
	if (u->have_outcome) {
		/* the outcome is the last line: nothing after it counts */
		moat_log(MOAT_LOG_WARN,
			 "id=%s event=update_report_refused error=\"a line after "
			 "the outcome\"",
			 dev->conf.id);
		return;
	}
	if (moat_update_report_parse(line, len, &r, &err) != 0) {
		moat_log(MOAT_LOG_WARN, "id=%s event=update_report_refused error=\"%s\"",
			 dev->conf.id, err.msg);
		snprintf(u->report_error, sizeof(u->report_error), "%s", err.msg);
		return;
	}
	if (r.kind == MOAT_UPDATE_REPORT_DOWNLOADING) {
		send_event(dev, u, MOAT_UPD_DOWNLOADING, r.res.version, NULL);
		return;
	}
	u->outcome = r;
	u->have_outcome = true;
}

/* Reads what the check has written so far; lines are handled as they complete. */
static void drain(struct moat_device *dev, struct moat_agent_update *u)
{
	char buf[4096];
	for (;;) {
		ssize_t n = read(u->child.out, buf, sizeof(buf));
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				if (!u->line_too_long) {
					handle_line(dev, u, u->line, u->line_len);
				}
				u->line_len = 0;
				u->line_too_long = false;
			} else if (u->line_len < sizeof(u->line) - 1) {
				u->line[u->line_len++] = buf[i];
			} else if (!u->line_too_long) {
				u->line_too_long = true;
				moat_log(MOAT_LOG_WARN,
					 "id=%s event=update_report_refused error=\"a line longer "
					 "than %u bytes\"",
					 dev->conf.id, MOAT_UPDATE_REPORT_MAX_BYTES);
			}
		}
	}
}

static void remember_pending(struct moat_device *dev, struct moat_agent_update *u,
			     const char *version)
{
	struct moat_err err;
	char text[MOAT_FW_VERSION_MAX_LEN + 2];
	if (!u->pending_path[0]) {
		return;
	}
	int n = snprintf(text, sizeof(text), "%s\n", version);
	struct moat_fs_opts opts = {.no_fsync = dev->conf.no_fsync};
	if (n < 0 || (size_t)n >= sizeof(text) ||
	    moat_fs_write_atomic_opts(u->pending_path, text, (size_t)n, 0600, &opts, &err) != 0) {
		moat_log(MOAT_LOG_WARN, "id=%s event=update_state_error error=\"%s\"", dev->conf.id,
			 n < 0 || (size_t)n >= sizeof(text) ? "version too long" : err.msg);
	}
}

/* The child is gone: reads its last lines, closes its pipe and frees its place in the
 * pool. */
static void end_child(struct moat_device *dev, struct moat_agent_update *u)
{
	drain(dev, u);
	moat_spawn_close(&u->child);
	u->child.pid = 0;
	release_pool(u);
}

/* Stops the running child now (the device restarts): a check_update waiting for it is
 * answered "failed" while the session is still up. */
static void stop_child(struct moat_device *dev, struct moat_agent_update *u, const char *why)
{
	kill(u->child.pid, SIGTERM);
	if (moat_spawn_wait(&u->child, NULL, NULL) != 0) {
		/* already gone */
	}
	end_child(dev, u);
	u->probing = false;
	if (u->for_command) {
		if (dev->connected) {
			answer(dev, u, "failed", why);
		}
		u->for_command = false;
	}
}

/* Why the child gave no usable outcome line. */
static void no_outcome(const struct moat_agent_update *u, int status, bool status_known, char *why,
		       size_t size)
{
	if (u->report_error[0]) {
		snprintf(why, size, "%.96s: unusable report: %.200s", u->program, u->report_error);
	} else if (!status_known) {
		snprintf(why, size, "%.96s stopped before its result", u->program);
	} else {
		snprintf(why, size, "%.96s stopped (%s %d) before its result", u->program,
			 WIFSIGNALED(status) ? "signal" : "status",
			 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	}
}

/* The check ended: its outcome line becomes the command's answer and update events. */
static void finish_check(struct moat_device *dev, struct moat_agent_update *u, int status,
			 bool status_known)
{
	if (!u->have_outcome) {
		char why[MOAT_ERR_MSG_MAX];
		no_outcome(u, status, status_known, why, sizeof(why));
		moat_log(MOAT_LOG_ERROR, "id=%s event=update_failed error=\"%s\"", dev->conf.id,
			 why);
		if (u->for_command) {
			answer(dev, u, "failed", why);
		}
		return;
	}
	const struct moat_update_result *res = &u->outcome.res;
	if (u->outcome.kind == MOAT_UPDATE_REPORT_FAILED) {
		moat_log(MOAT_LOG_WARN, "id=%s event=update_failed error=\"%s\"", dev->conf.id,
			 res->msg);
		if (u->for_command) {
			answer(dev, u, "failed", res->msg);
		}
		return;
	}
	const char *status_word = "completed";
	switch (res->outcome) {
	case MOAT_UPDATE_STAGED:
		send_event(dev, u, MOAT_UPD_VERIFIED, res->version, NULL);
		send_event(dev, u, MOAT_UPD_INSTALLED, res->version, NULL);
		remember_pending(dev, u, res->version);
		status_word = "accepted";
		dev->reboot_requested = true; /* the boot stage starts the trial */
		break;
	case MOAT_UPDATE_REFUSED:
		send_event(dev, u, MOAT_UPD_REFUSED, res->version,
			   moat_fw_verdict_name(res->verdict));
		status_word = "refused";
		break;
	case MOAT_UPDATE_TRIAL_PENDING:
	case MOAT_UPDATE_UP_TO_DATE:
	default:
		send_event(dev, u, MOAT_UPD_CHECKED, res->version, NULL);
		break;
	}
	if (!dev->quiet || res->outcome == MOAT_UPDATE_REFUSED) {
		moat_log(res->outcome == MOAT_UPDATE_REFUSED ? MOAT_LOG_WARN : MOAT_LOG_INFO,
			 "id=%s event=update_checked result=\"%s\"", dev->conf.id, res->msg);
	}
	if (u->for_command) {
		answer(dev, u, status_word, res->msg);
	}
}

/* The probe ended: the updater this image depends on works, or the trial must not
 * confirm (the device restarts; moat-boot reverts the unconfirmed trial). */
static void finish_probe(struct moat_device *dev, struct moat_agent_update *u, int status,
			 bool status_known)
{
	u->probing = false;
	if (u->have_outcome && u->outcome.kind == MOAT_UPDATE_REPORT_OUTCOME &&
	    u->outcome.res.outcome == MOAT_UPDATE_UP_TO_DATE) {
		u->probe_passed = true;
		u->next_confirm_ms = 0;
		return;
	}
	char why[MOAT_ERR_MSG_MAX];
	if (u->have_outcome) {
		snprintf(why, sizeof(why), "%.400s", u->outcome.res.msg);
	} else {
		no_outcome(u, status, status_known, why, sizeof(why));
	}
	moat_log(MOAT_LOG_ERROR,
		 "id=%s event=health_check_failed error=\"the updater does not work: %s\" "
		 "action=restart (the trial is not confirmed)",
		 dev->conf.id, why);
	dev->reboot_requested = true;
}

/* Reports a release staged before this start as confirmed or reverted (update.pending). */
static void report_pending(struct moat_device *dev, struct moat_agent_update *u)
{
	struct moat_err err;
	if (!u->pending_path[0] || !moat_fs_exists(u->pending_path)) {
		return;
	}
	char *text = NULL;
	size_t len = 0;
	if (moat_fs_read_all(u->pending_path, MOAT_FW_VERSION_MAX_LEN + 2, &text, &len, &err) !=
	    0) {
		moat_log(MOAT_LOG_WARN, "id=%s event=update_state_error error=\"%s\"", dev->conf.id,
			 err.msg);
		return;
	}
	while (len > 0 && text[len - 1] == '\n') {
		text[--len] = '\0';
	}
	if (u->running[0] && strcmp(text, u->running) == 0) {
		send_event(dev, u, MOAT_UPD_CONFIRMED, text, NULL);
	} else {
		send_event(dev, u, MOAT_UPD_REVERTED, text, "trial did not confirm");
	}
	free(text);
	if (unlink(u->pending_path) != 0 && errno != ENOENT) {
		moat_log(MOAT_LOG_WARN, "id=%s event=update_state_error error=\"unlink %s: %s\"",
			 dev->conf.id, u->pending_path, strerror(errno));
	}
}

/* One step towards confirming the trial this device runs: the probe first (a real agent),
 * then moat_slots_confirm; a failure is tried again after CONFIRM_RETRY_MS (moat-boot
 * reverts the trial at its deadline). */
static void confirm_step(struct moat_device *dev, struct moat_agent_update *u, int64_t now)
{
	struct moat_err err;
	struct moat_manifest m;
	if (now < u->next_confirm_ms) {
		return;
	}
	if (u->virtual_slots && u->trial_deadline > 0 && moat_time_now() >= u->trial_deadline) {
		/* what moat-boot does to a late trial: the next (virtual) boot reverts it */
		moat_log(MOAT_LOG_WARN, "id=%s event=trial_deadline_missed", dev->conf.id);
		dev->reboot_requested = true;
		return;
	}
	if (u->virtual_slots && now < u->trial_decide_ms) {
		/* the simulator's held trial: still on trial, booted and unconfirmed (the
		 * slots' own state), its health check has not decided yet */
		u->next_confirm_ms = u->trial_decide_ms;
		return;
	}
	if (u->virtual_slots && u->fail_trial[0]) {
		read_running(u);
		if (strcmp(u->running, u->fail_trial) == 0) {
			/* the simulated bad release: it crashes before it could confirm */
			moat_log(MOAT_LOG_WARN, "id=%s event=trial_crashed version=%s",
				 dev->conf.id, u->running);
			dev->reboot_requested = true;
			return;
		}
	}
	if (!u->virtual_slots && !u->probe_passed) {
		if (spawn_check(u, true, &err) != 0) {
			moat_log(MOAT_LOG_ERROR, "id=%s event=health_check_failed error=\"%s\"",
				 dev->conf.id, err.msg);
			u->next_confirm_ms = now + CONFIRM_RETRY_MS;
		}
		return;
	}
	int rc = moat_slots_confirm(u->state_dir, &m, &err);
	if (rc == 0 || rc == MOAT_ESTATE) {
		/* MOAT_ESTATE: no trial pending (an earlier process of this start confirmed) */
		u->on_trial = false;
		if (rc == 0 && !dev->quiet) {
			moat_log(MOAT_LOG_INFO, "id=%s event=trial_confirmed version=%s",
				 dev->conf.id, m.version);
		}
		return;
	}
	moat_log(MOAT_LOG_ERROR, "id=%s event=confirm_failed error=\"%s\"", dev->conf.id, err.msg);
	u->next_confirm_ms = now + CONFIRM_RETRY_MS;
}

/* Starts the wanted check when nothing else runs and the pool has room. */
static void try_start(struct moat_device *dev, struct moat_agent_update *u, int64_t now_mono_ms)
{
	struct moat_err err;
	if (!u->due || u->child.pid > 0 || !u->settled || dev->reboot_requested ||
	    !pool_has_room(u)) {
		return;
	}
	u->due = false;
	if (spawn_check(u, false, &err) != 0) {
		moat_log(MOAT_LOG_ERROR, "id=%s event=update_failed error=\"%s\"", dev->conf.id,
			 err.msg);
		if (u->for_command) {
			answer(dev, u, "failed", err.msg);
			u->for_command = false;
		}
		u->next_check_ms = now_mono_ms + u->interval_ms;
	}
}

static void update_poll(struct moat_device *dev, void *ctx, int64_t now_mono_ms)
{
	struct moat_agent_update *u = ctx;
	if (u->child.pid > 0 && dev->reboot_requested && !u->probing) {
		stop_child(dev, u, "restarting");
		return;
	}
	if (u->child.pid > 0) {
		int status = 0;
		bool known = false;
		drain(dev, u);
		/* a child that cannot be waited for (gone) has ended all the same */
		if (moat_spawn_poll(&u->child, &status, &known)) {
			end_child(dev, u);
			if (u->probing) {
				finish_probe(dev, u, status, known);
			} else {
				finish_check(dev, u, status, known);
				u->for_command = false;
				u->next_check_ms = now_mono_ms + u->interval_ms;
			}
		}
		return;
	}
	if (!dev->connected || dev->reboot_requested) {
		return;
	}
	if (!u->started) {
		u->started = true;
		u->settled = false;
		u->probe_passed = false;
		u->next_confirm_ms = 0;
	}
	if (u->on_trial) {
		confirm_step(dev, u, now_mono_ms);
		if (u->on_trial) {
			return;
		}
	}
	if (!u->settled) {
		/* a check at every start: a release this device reverted is not staged again
		 * (the updater remembers it), so this cannot loop */
		u->settled = true;
		read_running(u);
		report_pending(dev, u);
		u->due = true;
	}
	if (u->next_check_ms > 0 && now_mono_ms >= u->next_check_ms) {
		u->due = true;
	}
	try_start(dev, u, now_mono_ms);
}

static void update_hook(struct moat_device *dev, const struct mdev_command *cmd,
			struct moat_msg_response *resp, void *ctx)
{
	struct moat_agent_update *u = ctx;
	struct moat_err err;
	if (u->for_command) {
		snprintf(resp->status, sizeof(resp->status), "refused");
		snprintf(resp->detail, sizeof(resp->detail), "an update check is already running");
		return;
	}
	if (dev->reboot_requested) {
		snprintf(resp->status, sizeof(resp->status), "failed");
		snprintf(resp->detail, sizeof(resp->detail), "restarting");
		return;
	}
	/* A periodic check under way gets this command's answer; else one starts now, or
	 * once the trial is settled and the simulator's pool has room. */
	if (u->child.pid == 0 || u->probing) {
		u->due = true;
	}
	if (u->due && u->child.pid == 0 && u->settled && pool_has_room(u)) {
		u->due = false;
		if (spawn_check(u, false, &err) != 0) {
			snprintf(resp->status, sizeof(resp->status), "failed");
			snprintf(resp->detail, sizeof(resp->detail), "%.*s",
				 MOAT_MSG_DETAIL_MAX_LEN, err.msg);
			return;
		}
	}
	u->for_command = true;
	snprintf(u->cmd_name, sizeof(u->cmd_name), "%s", cmd->name);
	snprintf(u->cmd_id, sizeof(u->cmd_id), "%s", cmd->id);
	snprintf(resp->status, sizeof(resp->status), "accepted");
	snprintf(resp->detail, sizeof(resp->detail), "update check %s (%.150s)",
		 u->child.pid > 0 && !u->probing ? "started" : "queued", u->url);
}

/* Boots the virtual slots as moat-boot boots real ones: pick, verify, revert a trial that
 * does not verify. */
static int boot_virtual(struct moat_device *dev, struct moat_agent_update *u, struct moat_err *err)
{
	char why[MOAT_ERR_MSG_MAX];
	bool trial = false, reverted = false;
	char slot = 0;
	int rc = moat_boot_prepare(u->state_dir, moat_time_now(), u->trial_seconds, &slot, &trial,
				   NULL, NULL, &reverted, why, sizeof(why), err);
	if (rc != 0) {
		return rc;
	}
	if (reverted) {
		moat_log(MOAT_LOG_WARN, "id=%s event=revert reason=\"%s\"", dev->conf.id, why);
	}
	u->boot_slot = slot;
	u->on_trial = trial;
	u->trial_deadline = 0;
	u->trial_decide_ms = 0;
	if (trial) {
		struct moat_boot_state st;
		if ((rc = moat_slots_load(u->state_dir, &st, err)) != 0) {
			return rc;
		}
		u->trial_deadline = st.deadline;
		if (u->trial_hold_ms > 0) {
			u->trial_decide_ms = moat_time_mono_ms() + u->trial_hold_ms;
			/* a simulated fault, as trial_crashed: said at the simulator's level */
			moat_log(MOAT_LOG_WARN, "id=%s event=trial_held slot=%c hold_ms=%lld",
				 dev->conf.id, slot, (long long)u->trial_hold_ms);
		}
	}
	return 0;
}

/* A simulated restart (the driver's reboot). */
static bool update_reboot(struct moat_device *dev, void *ctx)
{
	struct moat_agent_update *u = ctx;
	struct moat_err err;
	if (u->child.pid > 0) {
		/* it holds the slots' lock, which the boot below takes */
		stop_child(dev, u, "restarting");
	}
	u->started = false;
	if (u->virtual_slots && boot_virtual(dev, u, &err) != 0) {
		moat_log(MOAT_LOG_ERROR, "id=%s event=boot_refused error=\"%s\"", dev->conf.id,
			 err.msg);
		return false;
	}
	return true;
}

int moat_agent_update_virtual_boot(struct moat_agent_update *u, struct moat_device *dev,
				   struct moat_err *err)
{
	u->virtual_slots = true;
	return boot_virtual(dev, u, err);
}

void moat_agent_update_attach(struct moat_agent_update *u, struct moat_device *dev)
{
	dev->update_hook = update_hook;
	dev->update_poll = update_poll;
	dev->update_reboot = update_reboot;
	dev->update_ctx = u;
}
