/* spawn.h: the one way moat starts a child process (src/util/spawn.c): fork, then in the
 * child set up its standard streams, signals and descriptors, then exec a program (by path,
 * through PATH, or from a descriptor such as a verified memfd) or run a function; in the
 * parent reap it with EINTR handled, and optionally feed its stdin and capture its stdout
 * and stderr within fixed bounds.
 *
 * Contract:
 * - Descriptors: every pipe and socket made here is O_CLOEXEC in the parent; the child gets
 *   only its three standard streams, what it inherited without CLOEXEC, and (with
 *   MOAT_SPAWN_CLOSE_FDS) nothing else at all. A caller MUST open its own descriptors
 *   O_CLOEXEC.
 * - Exec failure is reported by moat_spawn_start itself (unless
 *   MOAT_SPAWN_EXEC_FAILURE_EXITS): the child passes errno back over a
 *   CLOEXEC pipe, is reaped, and the call fails with "cannot run ARGV0: <reason>"
 *   (MOAT_ENOENT for a program not found), errno and out->exec_errno set to the cause.
 * - A started child MUST be reaped by the caller: moat_spawn_wait, moat_spawn_poll until it
 *   says so, or moat_spawn_stop; and its pipe ends closed (moat_spawn_close, which
 *   moat_spawn_stop and moat_spawn_run do).
 * - Nothing here prints or logs.
 */
#ifndef MOAT_SPAWN_H
#define MOAT_SPAWN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "moat/err.h"

/* What one standard stream of the child is. */
enum moat_spawn_io {
	MOAT_SPAWN_INHERIT = 0, /* the parent's */
	MOAT_SPAWN_DEVNULL,	/* /dev/null */
	/* a pipe to the parent (for stdin an AF_UNIX socket, so writing to a child that has
	 * exited fails with EPIPE under MSG_NOSIGNAL instead of raising SIGPIPE) */
	MOAT_SPAWN_PIPE,
};

/* Flags of struct moat_spawn. */
enum {
	/* SIGTERM and SIGINT back to their default action before exec (a handler is reset by
	 * exec anyway; an ignored signal is not) */
	MOAT_SPAWN_SIGDEFAULT = 1 << 0,
	MOAT_SPAWN_SIGPIPE_DEFAULT = 1 << 1,
	/* after those, SIGINT ignored: a child must not die of the Ctrl-C meant for its
	 * parent's cleanup */
	MOAT_SPAWN_IGNORE_SIGINT = 1 << 2,
	MOAT_SPAWN_IGNORE_SIGPIPE = 1 << 3,
	/* the child is killed (SIGKILL) when the parent dies */
	MOAT_SPAWN_DIE_WITH_PARENT = 1 << 4,
	/* no descriptor above 2 reaches the program, CLOEXEC or not (exec_fd excepted) */
	MOAT_SPAWN_CLOSE_FDS = 1 << 5,
	/* argv[0] looked up in PATH (execvp) */
	MOAT_SPAWN_SEARCH_PATH = 1 << 6,
	/* exec exec_fd (fexecve) with argv as its arguments; exec_fd is kept open across the
	 * exec (a script's interpreter opens it through /proc/self/fd) */
	MOAT_SPAWN_EXEC_FD = 1 << 7,
	/* an exec failure is not reported by moat_spawn_start: the child exits 127, as after a
	 * plain fork and exec, for a caller whose policy handles every exit alike */
	MOAT_SPAWN_EXEC_FAILURE_EXITS = 1 << 8,
};

/* What to start. Zero-initialised means: inherit everything, no flags. */
struct moat_spawn {
	char *const *argv; /* the program and its arguments, NULL-terminated */
	int exec_fd;	   /* with MOAT_SPAWN_EXEC_FD */
	/* Instead of exec (argv NULL): runs in the child after the set-up, which then exits
	 * with its return value. It MUST only use async-signal-safe calls if the parent has
	 * threads. */
	int (*child_fn)(void *ctx);
	void *child_ctx;
	/* "NAME=value" entries set in the child's environment (NULL-terminated, may be
	 * NULL); the strings MUST stay valid until moat_spawn_start returns */
	char *const *env;
	/* names removed from the child's environment before env is applied (NULL-terminated,
	 * may be NULL): what the caller holds but this child must not (secrets) */
	const char *const *unset;
	enum moat_spawn_io in, out, err;
	const sigset_t *sigmask; /* the child's signal mask (NULL: the parent's) */
	unsigned flags;
};

/* A started child: its pid (0 once reaped) and the parent's ends of its pipes (-1 when
 * the stream is not a pipe). The caller owns the descriptors. */
struct moat_spawn_child {
	pid_t pid;
	int in, out, err;
	int exec_errno; /* why exec failed (moat_spawn_start failed), else 0 */
};

/* Starts sp. On success *out holds the child; on failure nothing is left running or open
 * and *out has pid 0 and no descriptors. */
MOAT_MUST_CHECK int moat_spawn_start(const struct moat_spawn *sp, struct moat_spawn_child *out,
				     struct moat_err *err);
/* Waits for the child to end (retrying on EINTR) and reaps it: *out_status is waitpid's
 * status. Does not close the pipes. */
MOAT_MUST_CHECK int moat_spawn_wait(struct moat_spawn_child *c, int *out_status,
				    struct moat_err *err);
/* Reaps the child if it has ended, without waiting. Returns true once it is over: reaped
 * (*out_known true, *out_status its status) or impossible to wait for (*out_known false).
 * Does not close the pipes. */
bool moat_spawn_poll(struct moat_spawn_child *c, int *out_status, bool *out_known);
/* Sends sig to a child not yet reaped, then reaps it and closes its pipes. */
void moat_spawn_stop(struct moat_spawn_child *c, int sig);
/* Closes the parent's pipe ends that are still open. */
void moat_spawn_close(struct moat_spawn_child *c);

/* Output kept from one stream by moat_spawn_run: at most size - 1 bytes, NUL-terminated
 * (buf NULL or size 0: drained and dropped); the rest is read and dropped, truncated says
 * so. */
struct moat_spawn_capture {
	char *buf;
	size_t size;
	size_t len;
	bool truncated;
};

/* Runs sp to its end: writes input (input_len bytes; none: stdin gets EOF at once) to its
 * stdin and reads its stdout and stderr together, so neither side can block the other,
 * into out and errout (each may be NULL: that stream is inherited unless sp says
 * otherwise). sp's in/out/err for those streams are overridden to pipes. *out_status is
 * waitpid's status; a child that exits non-zero is not an error here. */
MOAT_MUST_CHECK int moat_spawn_run(const struct moat_spawn *sp, const char *input, size_t input_len,
				   struct moat_spawn_capture *out,
				   struct moat_spawn_capture *errout, int *out_status,
				   struct moat_err *err);

#endif
