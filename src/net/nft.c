/* nft.c: the adapter to the packet filter. It runs nft(8) (and, for verify, ip(8)) as child
 * processes with argument vectors, never through a shell, feeds the ruleset on stdin and
 * keeps the first line of stderr for the error message. Only moat's own tables are ever
 * named: apply and check load the rendered file, whose first lines replace "inet moat" and
 * "bridge moat"; remove deletes those two and nothing else. */
#include "moat/net.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net_internal.h"

enum { EXIT_NOT_FOUND = 127 };

static void first_line(char *s)
{
	char *nl = strchr(s, '\n');
	if (nl) {
		*nl = '\0';
	}
}

int net_run(const char *const *argv, const char *input, char *out_buf, size_t out_size,
	    struct moat_err *err)
{
	int rc = MOAT_EIO;
	int in[2] = {-1, -1};
	int out[2] = {-1, -1};
	int errp[2] = {-1, -1};
	pid_t pid = -1;
	char errbuf[512] = "";
	size_t errlen = 0;
	size_t outlen = 0;

	/* stdin is a socket so that writing to a child that already exited fails with EPIPE
	 * (MSG_NOSIGNAL) instead of raising SIGPIPE in the caller. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0 ||
	    pipe2(out, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s: pipe", argv[0]);
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s: fork", argv[0]);
		goto out;
	}
	if (pid == 0) {
		/* The child must not die of the SIGINT meant for its parent's cleanup. */
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_DFL);
		if (dup2(in[1], 0) < 0 || dup2(out[1], 1) < 0 || dup2(errp[1], 2) < 0) {
			_exit(126);
		}
		execvp(argv[0], (char *const *)argv);
		_exit(EXIT_NOT_FOUND);
	}
	close(in[1]);
	in[1] = -1;
	close(out[1]);
	out[1] = -1;
	close(errp[1]);
	errp[1] = -1;

	/* Write stdin and drain stdout/stderr together so neither side can block the other. */
	size_t in_len = input ? strlen(input) : 0;
	size_t in_off = 0;
	if (in_len == 0) {
		close(in[0]);
		in[0] = -1;
	}
	while (out[0] >= 0 || errp[0] >= 0 || in[0] >= 0) {
		struct pollfd fds[3] = {{.fd = in[0], .events = POLLOUT},
					{.fd = out[0], .events = POLLIN},
					{.fd = errp[0], .events = POLLIN}};
		if (poll(fds, 3, -1) < 0) {
			if (errno == EINTR) {
				continue;
			}
			rc = moat_err_errno(err, MOAT_EIO, errno, "%s: poll", argv[0]);
			goto out;
		}
		if (in[0] >= 0 && (fds[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t n = send(in[0], input + in_off, in_len - in_off,
					 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0) {
				in_off += (size_t)n;
			}
			if ((n < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len) {
				close(in[0]);
				in[0] = -1;
			}
		}
		if (out[0] >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			char tmp[4096];
			ssize_t n = read(out[0], tmp, sizeof(tmp));
			if (n > 0 && out_buf && outlen + 1 < out_size) {
				size_t take = (size_t)n;
				if (take > out_size - 1 - outlen) {
					take = out_size - 1 - outlen;
				}
				memcpy(out_buf + outlen, tmp, take);
				outlen += take;
			}
			if (n == 0 || (n < 0 && errno != EINTR)) {
				close(out[0]);
				out[0] = -1;
			}
		}
		if (errp[0] >= 0 && (fds[2].revents & (POLLIN | POLLHUP | POLLERR))) {
			char tmp[1024];
			ssize_t n = read(errp[0], tmp, sizeof(tmp));
			if (n > 0 && errlen + 1 < sizeof(errbuf)) {
				size_t take = (size_t)n;
				if (take > sizeof(errbuf) - 1 - errlen) {
					take = sizeof(errbuf) - 1 - errlen;
				}
				memcpy(errbuf + errlen, tmp, take);
				errlen += take;
				errbuf[errlen] = '\0';
			}
			if (n == 0 || (n < 0 && errno != EINTR)) {
				close(errp[0]);
				errp[0] = -1;
			}
		}
	}
	int status = 0;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "%s: waitpid", argv[0]);
			pid = -1;
			goto out;
		}
	}
	pid = -1;
	if (out_buf && out_size > 0) {
		out_buf[outlen] = '\0';
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		rc = 0;
		goto out;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_NOT_FOUND && errlen == 0) {
		rc = moat_err_set(err, MOAT_ENOENT, "%s: not found in PATH", argv[0]);
		goto out;
	}
	first_line(errbuf);
	if (WIFSIGNALED(status)) {
		rc = moat_err_set(err, MOAT_EIO, "%s: killed by signal %d", argv[0],
				  WTERMSIG(status));
	} else {
		rc = moat_err_set(err, MOAT_EIO, "%s failed (exit %d)%s%s", argv[0],
				  WEXITSTATUS(status), errbuf[0] ? ": " : "", errbuf);
	}
out:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0) {
			close(in[i]);
		}
		if (out[i] >= 0) {
			close(out[i]);
		}
		if (errp[i] >= 0) {
			close(errp[i]);
		}
	}
	if (pid > 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
		}
	}
	return rc;
}

static int load(const struct moat_net_policy *p, bool check_only, struct moat_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc = moat_net_render(p, MOAT_NET_FORMAT_NFT, &text, &len, err);
	if (rc != 0) {
		return rc;
	}
	const char *apply_argv[] = {"nft", "-f", "-", NULL};
	const char *check_argv[] = {"nft", "-c", "-f", "-", NULL};
	rc = net_run(check_only ? check_argv : apply_argv, text, NULL, 0, err);
	free(text);
	return rc;
}

int moat_net_apply(const struct moat_net_policy *p, struct moat_err *err)
{
	return load(p, false, err);
}

int moat_net_check(const struct moat_net_policy *p, struct moat_err *err)
{
	return load(p, true, err);
}

int moat_net_remove(struct moat_err *err)
{
	/* Declaring a table before deleting it makes an absent table no error, in the same
	 * transaction; nothing outside these two tables is named. */
	const char *text = "table inet " MOAT_NET_TABLE "\n"
			   "delete table inet " MOAT_NET_TABLE "\n"
			   "table bridge " MOAT_NET_TABLE "\n"
			   "delete table bridge " MOAT_NET_TABLE "\n";
	const char *argv[] = {"nft", "-f", "-", NULL};
	return net_run(argv, text, NULL, 0, err);
}
