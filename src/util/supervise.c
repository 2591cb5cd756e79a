/* supervise.c: the process supervisor of supervise.h.
 *
 * Everything happens in one thread around one file descriptor: the signals the supervisor
 * cares about are blocked and read from a signalfd, so a child's death, a reload request
 * and a stop request are ordinary events handled in order, with no async-signal-safety
 * puzzles. Restarts are scheduled on the monotonic clock.
 */
#include "moat/supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "moat/fsutil.h"
#include "moat/log.h"
#include "moat/spawn.h"
#include "moat/timeutil.h"

int moat_sup_init(struct moat_sup *s, struct moat_err *err)
{
	sigset_t set;

	memset(s, 0, sizeof(*s));
	s->sigfd = -1;
	s->stop_timeout_ms = MOAT_SUP_STOP_TIMEOUT_MS;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, &s->old_mask) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "sigprocmask");
	}
	s->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s->sigfd < 0) {
		int e = errno;
		sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
		return moat_err_errno(err, MOAT_EIO, e, "signalfd");
	}
	return 0;
}

int moat_sup_add(struct moat_sup *s, const char *name, char *const *argv, const char *pidfile,
		 struct moat_err *err)
{
	if (s->count >= MOAT_SUP_MAX_CHILDREN) {
		return moat_err_set(err, MOAT_EINVAL, "supervisor: more than %d children",
				    MOAT_SUP_MAX_CHILDREN);
	}
	if (!name || strlen(name) > MOAT_SUP_NAME_MAX_LEN || !argv || !argv[0]) {
		return moat_err_set(err, MOAT_EINVAL, "supervisor: bad child '%s'",
				    name ? name : "");
	}
	struct moat_sup_child *c = &s->children[s->count];
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", name);
	if (pidfile && moat_path_join(c->pidfile, sizeof(c->pidfile), err, "%s", pidfile) != 0) {
		return MOAT_EINVAL;
	}
	for (size_t i = 0; argv[i]; i++) {
		if (i == MOAT_SUP_MAX_ARGS) {
			for (size_t k = 0; k < i; k++) {
				free(c->argv[k]);
				c->argv[k] = NULL;
			}
			return moat_err_set(err, MOAT_EINVAL,
					    "supervisor: %s: more than %d arguments", name,
					    MOAT_SUP_MAX_ARGS);
		}
		c->argv[i] = strdup(argv[i]);
		if (!c->argv[i]) {
			for (size_t k = 0; k < i; k++) {
				free(c->argv[k]);
				c->argv[k] = NULL;
			}
			return moat_err_set(err, MOAT_ENOMEM, "out of memory");
		}
	}
	c->backoff_ms = MOAT_SUP_BACKOFF_MIN_MS;
	s->count++;
	return 0;
}

int moat_sup_unset_env(struct moat_sup *s, const char *name, const char *const *names,
		       struct moat_err *err)
{
	for (size_t i = 0; i < s->count; i++) {
		if (strcmp(s->children[i].name, name) == 0) {
			s->children[i].unset_env = names;
			return 0;
		}
	}
	return moat_err_set(err, MOAT_EINVAL, "no child named %s", name);
}

int moat_sup_record_at_start(struct moat_sup *s, const char *name, const char *from, const char *to,
			     struct moat_err *err)
{
	for (size_t i = 0; i < s->count; i++) {
		struct moat_sup_child *c = &s->children[i];
		if (strcmp(c->name, name) != 0) {
			continue;
		}
		if (strlen(from) >= sizeof(c->record_from) || strlen(to) >= sizeof(c->record_to)) {
			return moat_err_set(err, MOAT_EINVAL, "%s: record path too long", name);
		}
		memcpy(c->record_from, from, strlen(from) + 1);
		memcpy(c->record_to, to, strlen(to) + 1);
		return 0;
	}
	return moat_err_set(err, MOAT_EINVAL, "no child named %s", name);
}

/* The copy of moat_sup_record_at_start, made just before the child starts. */
static void record_start(const struct moat_sup_child *c)
{
	char *text = NULL;
	size_t len = 0;
	struct moat_err e;
	if (moat_fs_read_all(c->record_from, 16u * 1024 * 1024, &text, &len, &e) != 0 ||
	    moat_fs_write_atomic(c->record_to, text, len, 0644, &e) != 0) {
		moat_log(MOAT_LOG_WARN, "event=record_failed name=%s error=\"%s\"", c->name, e.msg);
		unlink(c->record_to);
	}
	free(text);
}

static int start_child(struct moat_sup *s, struct moat_sup_child *c, struct moat_err *err)
{
	if (c->record_from[0]) {
		record_start(c);
	}
	/* The child starts with the caller's original signal mask. A program that cannot be
	 * run dies like any other child (exit 127) and is restarted after the back-off. */
	struct moat_spawn sp = {.argv = c->argv,
				.sigmask = &s->old_mask,
				.unset = c->unset_env,
				.flags = MOAT_SPAWN_EXEC_FAILURE_EXITS};
	struct moat_spawn_child child;
	int rc = moat_spawn_start(&sp, &child, err);
	if (rc != 0) {
		moat_err_prefix(err, "%s", c->name);
		return rc;
	}
	pid_t pid = child.pid; /* reaped by reap() through waitpid(-1) */
	c->pid = pid;
	c->starts++;
	c->started_ms = moat_time_mono_ms();
	moat_log(MOAT_LOG_INFO, "event=child_started name=%s pid=%d starts=%u", c->name, (int)pid,
		 c->starts);
	if (c->pidfile[0]) {
		char text[32];
		int n = snprintf(text, sizeof(text), "%d\n", (int)pid);
		struct moat_err werr;
		if (moat_fs_write_atomic(c->pidfile, text, (size_t)n, 0644, &werr) != 0) {
			moat_log(MOAT_LOG_WARN, "event=pidfile_failed name=%s error=\"%s\"",
				 c->name, werr.msg);
		}
	}
	return 0;
}

int moat_sup_start(struct moat_sup *s, struct moat_err *err)
{
	for (size_t i = 0; i < s->count; i++) {
		if (s->children[i].pid == 0) {
			int rc = start_child(s, &s->children[i], err);
			if (rc != 0) {
				return rc;
			}
		}
	}
	return 0;
}

static struct moat_sup_child *find(struct moat_sup *s, pid_t pid)
{
	for (size_t i = 0; i < s->count; i++) {
		if (s->children[i].pid == pid) {
			return &s->children[i];
		}
	}
	return NULL;
}

/* Reaps every exited process; schedules restarts unless stopping. */
static void reap(struct moat_sup *s)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct moat_sup_child *c = find(s, pid);
		if (!c) {
			continue; /* not ours to restart (e.g. an orphan re-parented to us) */
		}
		int64_t now = moat_time_mono_ms();
		c->pid = 0;
		c->last_status = status;
		if (c->pidfile[0]) {
			unlink(c->pidfile);
		}
		if (s->stopping) {
			moat_log(MOAT_LOG_INFO, "event=child_stopped name=%s pid=%d", c->name,
				 (int)pid);
			continue;
		}
		c->deaths++;
		if (now - c->started_ms >= MOAT_SUP_STABLE_MS) {
			c->backoff_ms = MOAT_SUP_BACKOFF_MIN_MS;
		} else if (c->deaths > 1) {
			c->backoff_ms = c->backoff_ms * 2 > MOAT_SUP_BACKOFF_MAX_MS
						? MOAT_SUP_BACKOFF_MAX_MS
						: c->backoff_ms * 2;
		}
		c->restart_at_ms = now + c->backoff_ms;
		if (WIFSIGNALED(status)) {
			moat_log(MOAT_LOG_WARN,
				 "event=child_died name=%s pid=%d signal=%d restart_in_ms=%lld",
				 c->name, (int)pid, WTERMSIG(status), (long long)c->backoff_ms);
		} else {
			moat_log(MOAT_LOG_WARN,
				 "event=child_died name=%s pid=%d exit=%d restart_in_ms=%lld",
				 c->name, (int)pid, WEXITSTATUS(status), (long long)c->backoff_ms);
		}
	}
}

static bool any_running(const struct moat_sup *s)
{
	for (size_t i = 0; i < s->count; i++) {
		if (s->children[i].pid > 0) {
			return true;
		}
	}
	return false;
}

static void signal_all(struct moat_sup *s, int sig)
{
	for (size_t i = 0; i < s->count; i++) {
		if (s->children[i].pid > 0) {
			kill(s->children[i].pid, sig);
		}
	}
}

static void drain_signals(struct moat_sup *s)
{
	struct signalfd_siginfo si;
	while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
	}
}

void moat_sup_stop(struct moat_sup *s)
{
	s->stopping = true;
	signal_all(s, SIGTERM);
	int64_t deadline = moat_time_mono_ms() + s->stop_timeout_ms;
	bool killed = false;
	while (any_running(s)) {
		reap(s);
		if (!any_running(s)) {
			break;
		}
		int64_t left = deadline - moat_time_mono_ms();
		if (left <= 0 && !killed) {
			moat_log(MOAT_LOG_WARN, "event=stop_timeout action=sigkill");
			signal_all(s, SIGKILL);
			killed = true;
			left = 1000;
		}
		struct pollfd pfd = {.fd = s->sigfd, .events = POLLIN};
		if (s->sigfd >= 0) {
			poll(&pfd, 1, left > 0 ? (int)(left > 200 ? 200 : left) : 200);
			drain_signals(s);
		} else {
			usleep(100000);
		}
	}
}

/* stdout and stderr opened again by name, so a log renamed away by logrotate is let go;
 * when that fails the old descriptors stay. */
static void reopen_log(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0) {
		moat_log(MOAT_LOG_ERROR, "event=log_reopen_failed path=%s error=\"%s\"", path,
			 strerror(errno));
		return;
	}
	fflush(stdout);
	fflush(stderr);
	(void)dup2(fd, STDOUT_FILENO);
	(void)dup2(fd, STDERR_FILENO);
	close(fd);
}

int moat_sup_poll(struct moat_sup *s, int timeout_ms, struct moat_err *err)
{
	int64_t now = moat_time_mono_ms();
	int wait_ms = timeout_ms;
	for (size_t i = 0; i < s->count; i++) {
		const struct moat_sup_child *c = &s->children[i];
		if (c->pid == 0 && c->starts > 0) {
			int64_t due = c->restart_at_ms - now;
			due = due < 0 ? 0 : due;
			if (wait_ms < 0 || due < wait_ms) {
				wait_ms = (int)due;
			}
		}
	}
	struct pollfd pfd = {.fd = s->sigfd, .events = POLLIN};
	int n = poll(&pfd, 1, wait_ms);
	if (n < 0 && errno != EINTR) {
		return moat_err_errno(err, MOAT_EIO, errno, "poll");
	}
	struct signalfd_siginfo si;
	bool stop = false;
	bool hup = false;
	while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			stop = true;
		} else if (si.ssi_signo == SIGHUP) {
			hup = true;
		}
	}
	reap(s);
	if (stop) {
		moat_log(MOAT_LOG_INFO, "event=stopping");
		moat_sup_stop(s);
		return MOAT_SUP_STOPPED;
	}
	if (hup) {
		if (s->log_path[0]) {
			reopen_log(s->log_path);
		}
		moat_log(MOAT_LOG_INFO, "event=reload");
		if (s->before_reload) {
			s->before_reload(s->reload_ctx);
		}
		signal_all(s, SIGHUP);
		s->reloads++;
	}
	now = moat_time_mono_ms();
	for (size_t i = 0; i < s->count; i++) {
		struct moat_sup_child *c = &s->children[i];
		if (c->pid == 0 && c->starts > 0 && now >= c->restart_at_ms) {
			int rc = start_child(s, c, err);
			if (rc != 0) {
				return rc;
			}
		}
	}
	return MOAT_SUP_RUNNING;
}

void moat_sup_free(struct moat_sup *s)
{
	if (any_running(s)) {
		moat_sup_stop(s);
	}
	for (size_t i = 0; i < s->count; i++) {
		for (size_t k = 0; s->children[i].argv[k]; k++) {
			free(s->children[i].argv[k]);
			s->children[i].argv[k] = NULL;
		}
	}
	s->count = 0;
	if (s->sigfd >= 0) {
		close(s->sigfd);
		s->sigfd = -1;
		sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
	}
}
