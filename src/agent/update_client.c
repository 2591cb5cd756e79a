/* update_client.c: signed updates in moat-agent. moat_update_check blocks for a whole
 * download, and the agent's poll loop must keep its MQTT session alive meanwhile, so each
 * check runs in a forked child that writes its one result (a fixed-size struct) to a pipe
 * and exits; the loop collects it on a tick (waitpid WNOHANG, then read). The child shares
 * no state with the parent after fork: it closes every inherited descriptor but the pipe.
 *
 * Reporting: the check_update command is answered "accepted" when the check starts and
 * again with the outcome (completed / accepted + restarting / refused / failed, the same
 * words as moat_update_agent_hook); every outcome is an update event on
 * devices/ID/diagnostics in moatd's format. A staged release is remembered in
 * state_dir/update.pending, so the next start can say whether the trial confirmed (the
 * version now running is the staged one) or was reverted by moat-boot.
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

#include <cjson/cJSON.h>

#include "moat/agent.h"
#include "moat/fsutil.h"
#include "moat/log.h"
#include "moat/manifest.h"
#include "moat/timeutil.h"
#include "moat/topic.h"
#include "moat/update.h"

#define PENDING_FILE "update.pending"

/* What the child sends back: plain bytes, no pointers. */
struct check_msg {
	int rc;
	struct moat_update_result res;
	struct moat_err err;
};

struct moat_agent_update {
	char url[MOAT_AGENT_UPDATE_URL_MAX_LEN + 1];
	char state_dir[PATH_MAX];
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	char pending_path[PATH_MAX]; /* "" when the agent keeps no state */
	int64_t interval_ms;
	int64_t next_check_ms;       /* monotonic; 0: at the first connection */
	bool started;                /* the first connection was seen */
	pid_t pid;                   /* the running check, 0 when none */
	int fd;                      /* its pipe's read end */
	bool for_command;            /* answer cmd_name/cmd_id when it ends */
	char cmd_name[MOAT_MSG_CMD_NAME_MAX_LEN + 1];
	char cmd_id[MOAT_MSG_CMD_ID_MAX_LEN + 1];
	char running[MOAT_FW_VERSION_MAX_LEN + 1]; /* the version of the slot running now */
};

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
	u->fd = -1;
	u->interval_ms = conf->update_interval_s * 1000;
	int rc = 0;
	if (snprintf(u->url, sizeof(u->url), "%s", conf->update_url) >= (int)sizeof(u->url) ||
	    snprintf(u->state_dir, sizeof(u->state_dir), "%s", dir) >= (int)sizeof(u->state_dir)) {
		rc = moat_err_set(err, MOAT_EINVAL, "update state directory path too long");
		goto out;
	}
	snprintf(u->ca, sizeof(u->ca), "%s", conf->ca_file);
	snprintf(u->cert, sizeof(u->cert), "%s", conf->cert_file);
	snprintf(u->key, sizeof(u->key), "%s", conf->key_file);
	if (conf->state_dir[0] &&
	    (rc = moat_path_join(u->pending_path, sizeof(u->pending_path), err, "%s/%s",
				 conf->state_dir, PENDING_FILE)) != 0) {
		goto out;
	}
out:
	if (rc != 0) {
		free(u);
		return rc;
	}
	*out = u;
	return 0;
}

void moat_agent_update_free(struct moat_agent_update *u)
{
	if (!u) {
		return;
	}
	if (u->pid > 0) {
		/* an interrupted download keeps its .part file for the next check */
		kill(u->pid, SIGTERM);
		while (waitpid(u->pid, NULL, 0) < 0 && errno == EINTR) {
		}
	}
	if (u->fd >= 0) {
		close(u->fd);
	}
	free(u);
}

/* The version of the slot this process was started from (moat-boot says which), or of
 * the active slot. "" when it does not verify (then events go without "running"). */
static void read_running(struct moat_agent_update *u)
{
	struct moat_boot_state st;
	struct moat_manifest m;
	struct moat_err err;
	const char *slot = getenv("MOAT_BOOT_SLOT");
	u->running[0] = '\0';
	if (moat_slots_load(u->state_dir, &st, &err) != 0) {
		return;
	}
	char s = st.active;
	if (slot && (slot[0] == 'a' || slot[0] == 'b') && slot[1] == '\0') {
		s = slot[0];
	}
	if (moat_slots_verify(u->state_dir, &st, s, NULL, &m, &err) == 0) {
		snprintf(u->running, sizeof(u->running), "%s", m.version);
	}
}

/* Publishes {"event":"update","stage":...} on devices/ID/diagnostics (QoS 1). An event
 * while disconnected is logged and dropped: the command response and moatd's registry of
 * what each device runs carry the state that matters. */
static void send_event(struct moat_device *dev, struct moat_agent_update *u, const char *stage,
		       const char *version, const char *reason)
{
	char topic[MOAT_TOPIC_BUF_LEN];
	struct moat_err err;
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	int mid = 0;
	if (!o || !cJSON_AddStringToObject(o, "event", "update") ||
	    !cJSON_AddStringToObject(o, "stage", stage) ||
	    (version && version[0] && !cJSON_AddStringToObject(o, "version", version)) ||
	    (u->running[0] && !cJSON_AddStringToObject(o, "running", u->running)) ||
	    (reason && reason[0] && !cJSON_AddStringToObject(o, "reason", reason)) ||
	    !cJSON_AddNumberToObject(o, "timestamp", (double)moat_time_now())) {
		goto out;
	}
	text = cJSON_PrintUnformatted(o);
	if (!text || moat_topic_build(MOAT_TOPIC_DIAGNOSTICS, dev->conf.id, NULL, topic,
				      sizeof(topic), &err) != 0) {
		goto out;
	}
	if (!dev->connected ||
	    dev->io.publish(dev->io.ctx, topic, text, strlen(text), 1, false, &mid) != 0) {
		moat_log(MOAT_LOG_WARN, "id=%s event=update_event_lost stage=%s", dev->conf.id,
			 stage);
		goto out;
	}
	moat_log(MOAT_LOG_INFO, "id=%s event=update stage=%s version=%s running=%s%s%s%s",
		 dev->conf.id, stage, version && version[0] ? version : "-",
		 u->running[0] ? u->running : "-", reason && reason[0] ? " reason=\"" : "",
		 reason ? reason : "", reason && reason[0] ? "\"" : "");
out:
	cJSON_free(text);
	cJSON_Delete(o);
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

/* The child: one check, its result into the pipe, then _exit (no atexit handlers, no
 * stdio flush of the parent's buffers). */
static void child_run(struct moat_agent_update *u, int wfd) __attribute__((noreturn));
static void child_run(struct moat_agent_update *u, int wfd)
{
	struct check_msg msg;
	memset(&msg, 0, sizeof(msg));
	/* the agent's handlers only set its stop flag: here a signal must end the check */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	/* nothing of the parent's (MQTT socket, queue file) stays open in here */
	if (wfd != 3) {
		if (dup2(wfd, 3) < 0) {
			_exit(1);
		}
		wfd = 3;
	}
	close_range(4, ~0U, 0);
	struct moat_update_conf uc = {
		.state_dir = u->state_dir,
		.server_url = u->url,
		.ca_file = u->ca,
		.cert_file = u->cert,
		.key_file = u->key,
	};
	msg.rc = moat_update_check(&uc, &msg.res, &msg.err);
	const char *p = (const char *)&msg;
	size_t left = sizeof(msg);
	while (left > 0) {
		ssize_t n = write(wfd, p, left);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			_exit(1);
		}
		p += n;
		left -= (size_t)n;
	}
	_exit(0);
}

static int start_check(struct moat_agent_update *u, struct moat_err *err)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "pipe");
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(fds[0]);
		close(fds[1]);
		return moat_err_errno(err, MOAT_EIO, e, "fork");
	}
	if (pid == 0) {
		close(fds[0]);
		child_run(u, fds[1]);
	}
	close(fds[1]);
	u->pid = pid;
	u->fd = fds[0];
	return 0;
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
	if (n < 0 || (size_t)n >= sizeof(text) ||
	    moat_fs_write_atomic(u->pending_path, text, (size_t)n, 0600, &err) != 0) {
		moat_log(MOAT_LOG_WARN, "id=%s event=update_state_error error=\"%s\"", dev->conf.id,
			 n < 0 || (size_t)n >= sizeof(text) ? "version too long" : err.msg);
	}
}

/* The child ended: its result becomes the command's answer and update events. */
static void finish_check(struct moat_device *dev, struct moat_agent_update *u, int status)
{
	struct check_msg msg;
	size_t got = 0;
	while (got < sizeof(msg)) {
		ssize_t n = read(u->fd, (char *)&msg + got, sizeof(msg) - got);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		got += (size_t)n;
	}
	close(u->fd);
	u->fd = -1;
	u->pid = 0;
	if (got != sizeof(msg)) {
		char why[96];
		snprintf(why, sizeof(why), "the update check stopped (%s %d) before its result",
			 WIFSIGNALED(status) ? "signal" : "status",
			 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		moat_log(MOAT_LOG_ERROR, "id=%s event=update_failed error=\"%s\"", dev->conf.id, why);
		if (u->for_command) {
			answer(dev, u, "failed", why);
		}
		return;
	}
	msg.res.msg[sizeof(msg.res.msg) - 1] = '\0';
	msg.res.version[sizeof(msg.res.version) - 1] = '\0';
	msg.err.msg[sizeof(msg.err.msg) - 1] = '\0';
	if (msg.rc != 0) {
		moat_log(MOAT_LOG_WARN, "id=%s event=update_failed error=\"%s\"", dev->conf.id,
			 msg.err.msg);
		if (u->for_command) {
			answer(dev, u, "failed", msg.err.msg);
		}
		return;
	}
	const char *status_word = "completed";
	switch (msg.res.outcome) {
	case MOAT_UPDATE_STAGED:
		send_event(dev, u, "verified", msg.res.version, NULL);
		send_event(dev, u, "installed", msg.res.version, NULL);
		remember_pending(dev, u, msg.res.version);
		status_word = "accepted";
		dev->reboot_requested = true; /* moat-boot starts the trial */
		break;
	case MOAT_UPDATE_REFUSED:
		send_event(dev, u, "refused", msg.res.version,
			   moat_fw_verdict_name(msg.res.verdict));
		status_word = "refused";
		break;
	case MOAT_UPDATE_TRIAL_PENDING:
	case MOAT_UPDATE_UP_TO_DATE:
	default:
		send_event(dev, u, "checked", msg.res.version, NULL);
		break;
	}
	if (u->for_command) {
		answer(dev, u, status_word, msg.res.msg);
	}
}

/* The first accepted connection of this process: a trial confirms (it reached the
 * broker), and a release staged by an earlier run is reported as confirmed or reverted.
 * Returns true after a revert. */
static bool first_connect(struct moat_device *dev, struct moat_agent_update *u)
{
	bool reverted = false;
	struct moat_err err;
	bool confirmed = false;
	if (moat_update_confirm_trial(&confirmed, &err) != 0) {
		/* moat-boot reverts the trial at its deadline */
		moat_log(MOAT_LOG_ERROR, "id=%s event=confirm_failed error=\"%s\"", dev->conf.id,
			 err.msg);
	}
	read_running(u);
	if (confirmed) {
		moat_log(MOAT_LOG_INFO, "id=%s event=trial_confirmed version=%s", dev->conf.id,
			 u->running[0] ? u->running : "-");
	}
	if (!u->pending_path[0] || !moat_fs_exists(u->pending_path)) {
		return false;
	}
	char *text = NULL;
	size_t len = 0;
	if (moat_fs_read_all(u->pending_path, MOAT_FW_VERSION_MAX_LEN + 2, &text, &len, &err) != 0) {
		moat_log(MOAT_LOG_WARN, "id=%s event=update_state_error error=\"%s\"", dev->conf.id,
			 err.msg);
		return false;
	}
	while (len > 0 && text[len - 1] == '\n') {
		text[--len] = '\0';
	}
	if (u->running[0] && strcmp(text, u->running) == 0) {
		send_event(dev, u, "confirmed", text, NULL);
	} else {
		send_event(dev, u, "reverted", text, "trial did not confirm");
		reverted = true;
	}
	free(text);
	if (unlink(u->pending_path) != 0 && errno != ENOENT) {
		moat_log(MOAT_LOG_WARN, "id=%s event=update_state_error error=\"unlink %s: %s\"",
			 dev->conf.id, u->pending_path, strerror(errno));
	}
	return reverted;
}

static void update_poll(struct moat_device *dev, void *ctx, int64_t now_mono_ms)
{
	struct moat_agent_update *u = ctx;
	struct moat_err err;
	if (u->pid > 0) {
		int status = 0;
		pid_t w = waitpid(u->pid, &status, WNOHANG);
		if (w == u->pid) {
			finish_check(dev, u, status);
			u->next_check_ms = now_mono_ms + u->interval_ms;
		}
		return;
	}
	if (!dev->connected) {
		return;
	}
	if (!u->started) {
		u->started = true;
		/* A check at every start, except right after a revert: the server still offers
		 * the release that failed its trial (its issued_at is not older than the one
		 * recorded), and staging it again at once would loop trial, revert, start. */
		u->next_check_ms = first_connect(dev, u) ? now_mono_ms + u->interval_ms : now_mono_ms;
	}
	if (now_mono_ms < u->next_check_ms || dev->reboot_requested) {
		return;
	}
	u->for_command = false;
	if (start_check(u, &err) != 0) {
		moat_log(MOAT_LOG_ERROR, "id=%s event=update_failed error=\"%s\"", dev->conf.id,
			 err.msg);
		u->next_check_ms = now_mono_ms + u->interval_ms;
	}
}

static void update_hook(struct moat_device *dev, const struct moat_msg_command *cmd,
			struct moat_msg_response *resp, void *ctx)
{
	struct moat_agent_update *u = ctx;
	struct moat_err err;
	if (u->pid > 0) {
		if (u->for_command) {
			snprintf(resp->status, sizeof(resp->status), "refused");
			snprintf(resp->detail, sizeof(resp->detail),
				 "an update check is already running");
			return;
		}
		/* a periodic check is under way: this command gets its answer */
	} else if (dev->reboot_requested || start_check(u, &err) != 0) {
		snprintf(resp->status, sizeof(resp->status), "failed");
		snprintf(resp->detail, sizeof(resp->detail), "%.*s", MOAT_MSG_DETAIL_MAX_LEN,
			 dev->reboot_requested ? "restarting" : err.msg);
		return;
	}
	u->for_command = true;
	snprintf(u->cmd_name, sizeof(u->cmd_name), "%s", cmd->name);
	snprintf(u->cmd_id, sizeof(u->cmd_id), "%s", cmd->id);
	snprintf(resp->status, sizeof(resp->status), "accepted");
	snprintf(resp->detail, sizeof(resp->detail), "update check started (%.150s)", u->url);
}

void moat_agent_update_attach(struct moat_agent_update *u, struct moat_device *dev)
{
	dev->update_hook = update_hook;
	dev->update_poll = update_poll;
	dev->update_ctx = u;
}
