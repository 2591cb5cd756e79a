/* control.c: is the broker's supervisor running, and signalling it.
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
#include "moat/fsutil.h"
#include "moat/timeutil.h"

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
