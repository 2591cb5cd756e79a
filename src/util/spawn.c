/* spawn.c: child processes (spawn.h). fork(), then in the child: signal mask and
 * dispositions, death signal, the three standard streams, descriptor hygiene,
 * environment, and exec (or the caller's function); an exec that fails writes its errno to
 * a CLOEXEC pipe that the parent reads before returning, so "cannot run" is an error of
 * moat_spawn_start rather than an exit status to decode. moat_spawn_run adds a poll() loop
 * that feeds stdin and drains stdout and stderr into bounded buffers.
 */
#include "moat/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SPAWN_EXIT_SETUP 127	/* the child could not be set up or exec'd */
#define SPAWN_FD_SCAN_MAX 65536 /* descriptors marked CLOEXEC when close_range is missing */
#define SPAWN_READ_CHUNK_BYTES 4096

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

void moat_spawn_close(struct moat_spawn_child *c)
{
	close_fd(&c->in);
	close_fd(&c->out);
	close_fd(&c->err);
}

/* The parent's and the child's ends of one standard stream. */
struct stream {
	int parent, child;
};

static int open_stream(enum moat_spawn_io io, bool is_stdin, struct stream *s, struct moat_err *err)
{
	int fds[2];
	s->parent = -1;
	s->child = -1;
	if (io == MOAT_SPAWN_DEVNULL) {
		s->child = open("/dev/null", (is_stdin ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
		if (s->child < 0) {
			return moat_err_errno(err, MOAT_EIO, errno, "/dev/null");
		}
	} else if (io == MOAT_SPAWN_PIPE && is_stdin) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
			return moat_err_errno(err, MOAT_EIO, errno, "socketpair");
		}
		s->parent = fds[0];
		s->child = fds[1];
	} else if (io == MOAT_SPAWN_PIPE) {
		if (pipe2(fds, O_CLOEXEC) != 0) {
			return moat_err_errno(err, MOAT_EIO, errno, "pipe");
		}
		s->parent = fds[0];
		s->child = fds[1];
	}
	return 0;
}

/* In the child: fd becomes standard stream target, surviving exec. */
static int child_dup(int fd, int target)
{
	if (fd < 0) {
		return 0;
	}
	if (fd == target) {
		int fl = fcntl(fd, F_GETFD);
		return fl < 0 ? -1 : fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
	}
	return dup2(fd, target) < 0 ? -1 : 0;
}

static void child_signals(const struct moat_spawn *sp)
{
	if (sp->sigmask) {
		sigprocmask(SIG_SETMASK, sp->sigmask, NULL);
	}
	if (sp->flags & MOAT_SPAWN_SIGDEFAULT) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
	}
	if (sp->flags & MOAT_SPAWN_SIGPIPE_DEFAULT) {
		signal(SIGPIPE, SIG_DFL);
	}
	if (sp->flags & MOAT_SPAWN_IGNORE_SIGINT) {
		signal(SIGINT, SIG_IGN);
	}
	if (sp->flags & MOAT_SPAWN_IGNORE_SIGPIPE) {
		signal(SIGPIPE, SIG_IGN);
	}
	if (sp->flags & MOAT_SPAWN_DIE_WITH_PARENT) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	}
}

/* Marks every descriptor above 2 CLOEXEC (closing them now would also close the errno
 * pipe, which must stay open until exec). */
static void child_cloexec_all(void)
{
	if (close_range(STDERR_FILENO + 1, ~0u, CLOSE_RANGE_CLOEXEC) == 0) {
		return;
	}
	for (int fd = STDERR_FILENO + 1; fd < SPAWN_FD_SCAN_MAX; fd++) {
		int fl = fcntl(fd, F_GETFD);
		if (fl >= 0) {
			fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
		}
	}
}

/* The child after fork: never returns. */
static void child_main(const struct moat_spawn *sp, const struct stream st[3], int report_fd)
{
	child_signals(sp);
	if (child_dup(st[0].child, STDIN_FILENO) != 0 ||
	    child_dup(st[1].child, STDOUT_FILENO) != 0 ||
	    child_dup(st[2].child, STDERR_FILENO) != 0) {
		goto fail;
	}
	if (sp->flags & MOAT_SPAWN_CLOSE_FDS) {
		child_cloexec_all();
	}
	for (size_t i = 0; sp->unset && sp->unset[i]; i++) {
		if (unsetenv(sp->unset[i]) != 0) {
			goto fail;
		}
	}
	for (size_t i = 0; sp->env && sp->env[i]; i++) {
		if (putenv(sp->env[i]) != 0) {
			goto fail;
		}
	}
	if (!sp->argv) {
		_exit(sp->child_fn ? sp->child_fn(sp->child_ctx) : 0);
	}
	if (sp->flags & MOAT_SPAWN_EXEC_FD) {
		int fl = fcntl(sp->exec_fd, F_GETFD);
		if (fl < 0 || fcntl(sp->exec_fd, F_SETFD, fl & ~FD_CLOEXEC) != 0) {
			goto fail;
		}
		fexecve(sp->exec_fd, sp->argv, environ);
	} else if (sp->flags & MOAT_SPAWN_SEARCH_PATH) {
		execvp(sp->argv[0], sp->argv);
	} else {
		execv(sp->argv[0], sp->argv);
	}
fail:;
	int e = errno;
	if (report_fd >= 0) {
		(void)!write(report_fd, &e, sizeof(e));
	}
	_exit(SPAWN_EXIT_SETUP);
}

static int reap(pid_t pid, int *out_status)
{
	int status = 0;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			return -1;
		}
	}
	if (out_status) {
		*out_status = status;
	}
	return 0;
}

/* The parent: reads the errno an exec failure reports; 0 when the exec happened. */
static int exec_result(int report_fd)
{
	int e = 0;
	ssize_t n;
	do {
		n = read(report_fd, &e, sizeof(e));
	} while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(e) ? (e ? e : EIO) : 0;
}

int moat_spawn_start(const struct moat_spawn *sp, struct moat_spawn_child *out,
		     struct moat_err *err)
{
	struct stream st[3] = {{-1, -1}, {-1, -1}, {-1, -1}};
	int report[2] = {-1, -1};
	const char *name = sp->argv ? sp->argv[0] : "child process";
	int rc;

	memset(out, 0, sizeof(*out));
	out->in = out->out = out->err = -1;
	if ((rc = open_stream(sp->in, true, &st[0], err)) != 0 ||
	    (rc = open_stream(sp->out, false, &st[1], err)) != 0 ||
	    (rc = open_stream(sp->err, false, &st[2], err)) != 0) {
		goto out;
	}
	if (sp->argv && !(sp->flags & MOAT_SPAWN_EXEC_FAILURE_EXITS) &&
	    pipe2(report, O_CLOEXEC) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "pipe");
		goto out;
	}
	pid_t pid = fork();
	if (pid < 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "fork for %s", name);
		goto out;
	}
	if (pid == 0) {
		close_fd(&report[0]);
		for (int i = 0; i < 3; i++) {
			close_fd(&st[i].parent);
		}
		child_main(sp, st, report[1]);
	}
	close_fd(&report[1]);
	if (report[0] >= 0) {
		int e = exec_result(report[0]);
		if (e != 0) {
			(void)reap(pid, NULL);
			out->exec_errno = e;
			rc = moat_err_errno(err, e == ENOENT ? MOAT_ENOENT : MOAT_EIO, e,
					    "cannot run %s", name);
			errno = e;
			goto out;
		}
	}
	out->pid = pid;
	out->in = st[0].parent;
	out->out = st[1].parent;
	out->err = st[2].parent;
	for (int i = 0; i < 3; i++) {
		st[i].parent = -1;
	}
	rc = 0;
out:
	for (int i = 0; i < 3; i++) {
		close_fd(&st[i].parent);
		close_fd(&st[i].child);
	}
	close_fd(&report[0]);
	close_fd(&report[1]);
	return rc;
}

int moat_spawn_wait(struct moat_spawn_child *c, int *out_status, struct moat_err *err)
{
	if (reap(c->pid, out_status) != 0) {
		int e = errno;
		c->pid = 0;
		return moat_err_errno(err, MOAT_EIO, e, "waitpid");
	}
	c->pid = 0;
	return 0;
}

bool moat_spawn_poll(struct moat_spawn_child *c, int *out_status, bool *out_known)
{
	int status = 0;
	pid_t w = waitpid(c->pid, &status, WNOHANG);
	*out_known = false;
	if (w == c->pid) {
		*out_status = status;
		*out_known = true;
		c->pid = 0;
		return true;
	}
	if (w < 0 && errno != EINTR) {
		c->pid = 0; /* gone: its end all the same */
		return true;
	}
	return false;
}

void moat_spawn_stop(struct moat_spawn_child *c, int sig)
{
	if (c->pid > 0) {
		kill(c->pid, sig);
		(void)reap(c->pid, NULL);
		c->pid = 0;
	}
	moat_spawn_close(c);
}

static void capture_reset(struct moat_spawn_capture *cap)
{
	cap->len = 0;
	cap->truncated = false;
	if (cap->buf && cap->size > 0) {
		cap->buf[0] = '\0';
	}
}

/* Keeps what fits of n bytes read from a stream. */
static void capture_add(struct moat_spawn_capture *cap, const char *data, size_t n)
{
	if (!cap) {
		return;
	}
	size_t room = cap->buf && cap->size > 0 ? cap->size - 1 - cap->len : 0;
	size_t take = n < room ? n : room;
	if (take > 0) {
		memcpy(cap->buf + cap->len, data, take);
		cap->len += take;
		cap->buf[cap->len] = '\0';
	}
	if (take < n) {
		cap->truncated = true;
	}
}

/* Reads what is ready on *fd into cap; closes it at EOF or on an error. */
static void drain_stream(int *fd, struct moat_spawn_capture *cap)
{
	char tmp[SPAWN_READ_CHUNK_BYTES];
	ssize_t n = read(*fd, tmp, sizeof(tmp));
	if (n > 0) {
		capture_add(cap, tmp, (size_t)n);
	}
	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
		close_fd(fd);
	}
}

/* Feeds input and drains both output streams until all three are closed. */
static int pump(struct moat_spawn_child *c, const char *input, size_t input_len,
		struct moat_spawn_capture *out, struct moat_spawn_capture *errout,
		struct moat_err *err)
{
	size_t in_off = 0;
	if (input_len == 0) {
		close_fd(&c->in);
	}
	while (c->in >= 0 || c->out >= 0 || c->err >= 0) {
		struct pollfd fds[3] = {{.fd = c->in, .events = POLLOUT},
					{.fd = c->out, .events = POLLIN},
					{.fd = c->err, .events = POLLIN}};
		if (poll(fds, 3, -1) < 0) {
			if (errno == EINTR) {
				continue;
			}
			return moat_err_errno(err, MOAT_EIO, errno, "poll");
		}
		if (c->in >= 0 && (fds[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t n = send(c->in, input + in_off, input_len - in_off,
					 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0) {
				in_off += (size_t)n;
			}
			if ((n < 0 && errno != EAGAIN && errno != EINTR) || in_off == input_len) {
				close_fd(&c->in);
			}
		}
		if (c->out >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			drain_stream(&c->out, out);
		}
		if (c->err >= 0 && (fds[2].revents & (POLLIN | POLLHUP | POLLERR))) {
			drain_stream(&c->err, errout);
		}
	}
	return 0;
}

int moat_spawn_run(const struct moat_spawn *sp, const char *input, size_t input_len,
		   struct moat_spawn_capture *out, struct moat_spawn_capture *errout,
		   int *out_status, struct moat_err *err)
{
	struct moat_spawn run = *sp;
	struct moat_spawn_child c;
	int rc;

	run.in = MOAT_SPAWN_PIPE;
	if (out) {
		run.out = MOAT_SPAWN_PIPE;
		capture_reset(out);
	}
	if (errout) {
		run.err = MOAT_SPAWN_PIPE;
		capture_reset(errout);
	}
	if ((rc = moat_spawn_start(&run, &c, err)) != 0) {
		return rc;
	}
	if ((rc = pump(&c, input, input_len, out, errout, err)) != 0) {
		moat_spawn_stop(&c, SIGKILL);
		return rc;
	}
	moat_spawn_close(&c);
	return moat_spawn_wait(&c, out_status, err);
}
