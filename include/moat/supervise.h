/* supervise.h: a small process supervisor: a list of children, each restarted when it dies,
 * with signals forwarded to them. `moat up` runs Mosquitto under it; later moatd and
 * simulated devices join the same list.
 *
 * Contract:
 * - moat_sup_init blocks SIGCHLD, SIGTERM, SIGINT and SIGHUP in the calling thread and
 *   receives them through a signalfd, so the process MUST be single-threaded (or block
 *   them in every thread). Children start with the caller's original signal mask and no
 *   inherited signalfd.
 * - A child that dies is restarted after a back-off: 1 s, doubling per quick death up to
 *   MOAT_SUP_BACKOFF_MAX_MS, back to 1 s once it has run MOAT_SUP_STABLE_MS.
 * - SIGHUP is forwarded to every running child. SIGTERM or SIGINT stops everything:
 *   SIGTERM to every child, SIGKILL to those still alive after stop_timeout_ms; then
 *   moat_sup_poll returns MOAT_SUP_STOPPED.
 * - Each child's pid is written to its pid file (when it has one) at every start and the
 *   file is removed when the child is reaped.
 * - Never prints except through moat_log (one line per event: started, exited, restart).
 */
#ifndef MOAT_SUPERVISE_H
#define MOAT_SUPERVISE_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "moat/err.h"

#define MOAT_SUP_MAX_CHILDREN 16
#define MOAT_SUP_MAX_ARGS 16
#define MOAT_SUP_NAME_MAX_LEN 31
#define MOAT_SUP_BACKOFF_MIN_MS 1000
#define MOAT_SUP_BACKOFF_MAX_MS 30000
#define MOAT_SUP_STABLE_MS 60000
#define MOAT_SUP_STOP_TIMEOUT_MS 10000

struct moat_sup_child {
	char name[MOAT_SUP_NAME_MAX_LEN + 1];
	char *argv[MOAT_SUP_MAX_ARGS + 1]; /* owned copies; argv[0] is the program's path */
	char pidfile[PATH_MAX];		   /* "" when none */
	pid_t pid;			   /* 0 when not running */
	unsigned starts;		   /* times started */
	unsigned deaths;		   /* times it exited or was killed unasked */
	int last_status;		   /* wait status of the last exit */
	int64_t started_ms;		   /* monotonic */
	int64_t restart_at_ms;		   /* when to start it again (pid == 0) */
	int64_t backoff_ms;
	char record_from[PATH_MAX];   /* "" or a file the child reads as it starts ... */
	char record_to[PATH_MAX];     /* ... copied here just before every start, so what the
					 running child started with can be read back */
	const char *const *unset_env; /* NULL or names removed from its environment */
};

struct moat_sup {
	struct moat_sup_child children[MOAT_SUP_MAX_CHILDREN];
	size_t count;
	int sigfd;
	sigset_t old_mask;
	bool stopping;
	int stop_timeout_ms;
	unsigned reloads;	 /* SIGHUPs forwarded to the children so far */
	char log_path[PATH_MAX]; /* "" or the supervisor's own log file: stdout and stderr are
				    opened on it again at each SIGHUP (log rotation) */
	/* NULL, or called at each SIGHUP before it is forwarded (files the children reopen
	 * by name made ready) */
	void (*before_reload)(void *ctx);
	void *reload_ctx;
};

enum { MOAT_SUP_RUNNING = 0, MOAT_SUP_STOPPED = 1 };

MOAT_MUST_CHECK int moat_sup_init(struct moat_sup *s, struct moat_err *err);
/* Adds a child (argv NULL-terminated, copied; pidfile may be NULL). Not started yet. */
MOAT_MUST_CHECK int moat_sup_add(struct moat_sup *s, const char *name, char *const *argv,
				 const char *pidfile, struct moat_err *err);
/* Before every start of the child named name, copies the file from to the file to
 * (atomically, 0644): the configuration the running child read, whatever happens to the
 * original later (`moat audit`: drift.live_broker). A copy that fails is logged and the
 * previous record removed, so no stale record outlives a start. MOAT_EINVAL: no such
 * child or a path too long. */
/* The child named name starts without the environment variables names (NULL-terminated;
 * the array must outlive the supervisor): secrets the supervisor's caller holds for another
 * child. MOAT_EINVAL: no such child. */
MOAT_MUST_CHECK int moat_sup_unset_env(struct moat_sup *s, const char *name,
				       const char *const *names, struct moat_err *err);
MOAT_MUST_CHECK int moat_sup_record_at_start(struct moat_sup *s, const char *name, const char *from,
					     const char *to, struct moat_err *err);
/* Starts every child that is not running. */
MOAT_MUST_CHECK int moat_sup_start(struct moat_sup *s, struct moat_err *err);
/* Handles signals, deaths and due restarts for up to timeout_ms (-1: until something
 * happens). Returns MOAT_SUP_RUNNING, MOAT_SUP_STOPPED once a requested stop completed,
 * or a negative error. */
MOAT_MUST_CHECK int moat_sup_poll(struct moat_sup *s, int timeout_ms, struct moat_err *err);
/* Stops every child now (SIGTERM, then SIGKILL after stop_timeout_ms) and waits for them. */
void moat_sup_stop(struct moat_sup *s);
/* Stops what still runs, frees the copies, closes the signalfd and restores the mask. */
void moat_sup_free(struct moat_sup *s);

#endif
