/* control.c: the readers' side of the supervisor protocol (broker_supervisor.h): is the
 * broker's supervisor running, signalling it, stopping it, and what `moat status` reports.
 *
 * A pid file alone can lie (a crash leaves it behind and the pid gets reused), so the sign
 * of life is the flock the supervisor holds on run/supervise.lock for as long as it runs;
 * the pid file only says whom to signal once the lock says someone is there.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "moat/broker.h"
#include "moat/broker_supervisor.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"

#define STOP_POLL_US 50000

static pid_t read_pid(const char *dir, const char *rel)
{
	char path[PATH_MAX];
	char *text = NULL;
	size_t len = 0;
	int64_t v = 0;

	if (moat_path_join(path, sizeof(path), NULL, "%s/%s", dir, rel) != 0 ||
	    moat_fs_read_all(path, 64, &text, &len, NULL) != 0) {
		return 0;
	}
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ')) {
		text[--len] = '\0';
	}
	pid_t pid = 0;
	if (moat_int_parse(text, 2, INT_MAX, &v, NULL) == 0) {
		pid = (pid_t)v;
	}
	free(text);
	return pid;
}

int moat_broker_state(const char *dir, struct moat_broker_state *out, struct moat_err *err)
{
	char path[PATH_MAX];
	int rc;

	out->running = false;
	out->supervisor_pid = 0;
	out->mosquitto_pid = 0;
	if ((rc = moat_path_join(path, sizeof(path), err, "%s/%s", dir,
				 MOAT_BROKER_SUP_LOCK_FILE)) != 0) {
		return rc;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		return errno == ENOENT ? 0 : moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	if (flock(fd, LOCK_SH | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "%s: lock", path);
			close(fd);
			return rc;
		}
		out->running = true;
	}
	close(fd);
	if (!out->running) {
		return 0;
	}
	out->supervisor_pid = read_pid(dir, MOAT_BROKER_SUP_PID_FILE);
	pid_t m = read_pid(dir, MOAT_BROKER_PID_FILE);
	if (m > 0 && kill(m, 0) == 0) {
		out->mosquitto_pid = m;
	}
	return 0;
}

int moat_broker_signal(const char *dir, int sig, bool *out_sent, struct moat_err *err)
{
	struct moat_broker_state st;
	int rc;

	*out_sent = false;
	if ((rc = moat_broker_state(dir, &st, err)) != 0) {
		return rc;
	}
	if (!st.running) {
		return 0;
	}
	if (st.supervisor_pid <= 0) {
		return moat_err_set(err, MOAT_ESTATE,
				    "%s/%s: a supervisor holds the lock but its pid file is missing",
				    dir, MOAT_BROKER_SUP_PID_FILE);
	}
	if (kill(st.supervisor_pid, sig) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno,
				      "signalling the broker supervisor (pid %d)",
				      (int)st.supervisor_pid);
	}
	*out_sent = true;
	return 0;
}

int moat_broker_sync_request(const char *dir, const char *why, struct moat_err *err)
{
	char state[PATH_MAX];
	char path[PATH_MAX];
	char text[160];
	char at[MOAT_TIME_ISO_LEN];
	int rc;

	moat_time_iso(moat_time_now(), at);
	int n = snprintf(text, sizeof(text), "requested_by=%s at=%s\n", why, at);
	if (n < 0 || (size_t)n >= sizeof(text)) {
		return moat_err_set(err, MOAT_EINVAL, "sync request: reason too long");
	}
	if ((rc = moat_path_join(state, sizeof(state), err, "%s/state", dir)) != 0 ||
	    (rc = moat_path_join(path, sizeof(path), err, "%s/%s", dir,
				 MOAT_BROKER_SYNC_REQUEST_FILE)) != 0 ||
	    (rc = moat_fs_mkdirs(state, 0700, err)) != 0 ||
	    (rc = moat_fs_write_atomic(path, text, (size_t)n, 0600, err)) != 0) {
		moat_err_prefix(err, "asking the broker's supervisor to sync");
		return rc;
	}
	return 0;
}

/* True when pid no longer runs (a zombie that nobody reaped yet counts as gone). */
static bool process_gone(pid_t pid)
{
	char path[64];
	char text[512];
	if (kill(pid, 0) != 0) {
		return true;
	}
	/* /proc files have no size, so not moat_fs_read_all */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return true;
	}
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0) {
		return true;
	}
	text[n] = '\0';
	const char *rp = strrchr(text, ')'); /* "pid (comm) S ..." */
	return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

int moat_broker_stop(const char *dir, int64_t timeout_ms, bool *out_was_running,
		     struct moat_err *err)
{
	struct moat_broker_state st;
	int rc;

	if ((rc = moat_broker_signal(dir, SIGTERM, out_was_running, err)) != 0 ||
	    !*out_was_running) {
		return rc;
	}
	int64_t deadline = moat_time_mono_ms() + timeout_ms;
	pid_t spid = 0;
	for (;;) {
		if ((rc = moat_broker_state(dir, &st, err)) != 0) {
			return rc;
		}
		if (st.running) {
			spid = st.supervisor_pid;
		} else if (spid <= 0 || process_gone(spid)) {
			/* the lock goes a moment before the process: wait for both */
			return 0;
		}
		if (moat_time_mono_ms() > deadline) {
			return moat_err_set(
				err, MOAT_ETIMEOUT,
				"the broker is still running after %lld s (supervisor pid %d)",
				(long long)(timeout_ms / 1000), (int)st.supervisor_pid);
		}
		usleep(STOP_POLL_US);
	}
}

int moat_broker_status(const struct moat_deploy *d, struct moat_broker_status *out,
		       struct moat_err *err)
{
	struct moat_broker_settings s;
	const struct moat_broker_endpoint *e = &out->endpoint;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = moat_broker_settings_load(moat_deploy_config(d), moat_deploy_settings(d), &s,
					    err)) != 0 ||
	    (rc = moat_broker_state(moat_deploy_dir(d), &out->state, err)) != 0 ||
	    (rc = moat_broker_endpoint_get(d, &s, &out->endpoint, err)) != 0) {
		return rc;
	}
	moat_broker_conf_mode(moat_deploy_dir(d), out->mode, sizeof(out->mode));
	out->accepting_tls =
		out->state.running &&
		moat_broker_probe_endpoint(e, MOAT_BROKER_PROBE_TIMEOUT_MS, &out->probe_err) == 0;
	return 0;
}

void moat_broker_conf_mode(const char *dir, char *buf, size_t size)
{
	char path[PATH_MAX];
	char *text = NULL;
	size_t len = 0;
	buf[0] = '\0';
	if (moat_path_join(path, sizeof(path), NULL, "%s/%s", dir, MOAT_BROKER_CONF_FILE) != 0 ||
	    moat_fs_read_all(path, MOAT_FILE_MAX_BYTES, &text, &len, NULL) != 0) {
		return;
	}
	const char *m = strstr(text, "\n# mode: ");
	if (m) {
		m += strlen("\n# mode: ");
		size_t n = strcspn(m, "\n");
		snprintf(buf, size, "%.*s", (int)(n < size ? n : size - 1), m);
	}
	free(text);
}
