/* broker_supervisor.h: the broker's supervisor (`moat up`) and the protocol by which
 * everyone else knows whether it runs. One contract for the writer (src/broker/supervisor.c)
 * and the readers (src/broker/control.c: `moat down`, `moat status`, moat_broker_sync).
 *
 * The supervisor is a process that starts Mosquitto (and, through a hook, moatd) under
 * moat_sup (supervise.h), restarts what dies and forwards SIGHUP (reload) and SIGTERM or
 * SIGINT (stop). It proves the broker ready with a real TLS handshake verified against the
 * deployment CA (moat_broker_probe).
 *
 * Process files under run/ of the deployment:
 *   supervise.lock  The supervisor MUST hold an exclusive flock on it for its whole life
 *                   and take it before writing anything else; the lock is the only trusted
 *                   sign of life (a pid file outlives a crash, and pids are reused). A
 *                   second supervisor that cannot take it refuses to start and MUST NOT
 *                   touch the pid file. Readers take a shared lock without blocking: when
 *                   that fails with EWOULDBLOCK, a supervisor runs.
 *   supervise.pid   The supervisor's pid, written atomically once it holds the lock and
 *                   removed when it exits. Readers trust it only while the lock is held.
 *   mosquitto.pid   The broker child's pid, written at each start and removed when the
 *                   child is reaped (moat_sup). Not Mosquitto's own pid_file: Mosquitto
 *                   would write it as the unprivileged user it switches to.
 *
 * Sync requests, from a writer of the registry that may not write the broker's files nor
 * signal the supervisor (moatd, as its own account: the dashboard's disable and enable):
 *   state/broker-sync.request  Replaced (atomically) by moat_broker_sync_request. The
 *                   supervisor of a ready broker looks at it every second; when it changed,
 *                   it runs moat_broker_sync itself (the policy, acl.conf and the CRL's
 *                   owner re-derived from the registry, then a reload), so the plugin kicks
 *                   a client that lost its right within about two seconds. The supervisor
 *                   never reads the file's content: a request can only make it re-derive
 *                   what the registry already says, never say what the policy is. While
 *                   run/moat.lock is held (a `moat` command that will sync itself), the
 *                   request waits for the next look. Requests closer than a second are one.
 */
#ifndef MOAT_BROKER_SUPERVISOR_H
#define MOAT_BROKER_SUPERVISOR_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "moat/broker.h"
#include "moat/deploy.h"
#include "moat/err.h"
#include "moat/supervise.h"

#define MOAT_BROKER_SUP_PID_FILE "run/supervise.pid"
#define MOAT_BROKER_SUP_LOCK_FILE "run/supervise.lock"
#define MOAT_BROKER_PID_FILE "run/mosquitto.pid"
/* broker/mosquitto.conf as it was when the supervisor last started Mosquitto: what the
 * running broker loaded (moat_sup_record_at_start), against which `moat audit` compares
 * the file on disk by content. */
#define MOAT_BROKER_CONF_STARTED_FILE "run/mosquitto.conf.started"
#define MOAT_BROKER_SUP_LOG_FILE "log/supervisor.log" /* the detached supervisor's stdio */
#define MOAT_BROKER_PROBE_TIMEOUT_MS 1000	      /* one readiness or status handshake */

/* ---- Readers (control.c) ---- */

struct moat_broker_state {
	bool running;	      /* a supervisor holds run/supervise.lock */
	pid_t supervisor_pid; /* 0 when not running */
	pid_t mosquitto_pid;  /* 0 when unknown or not alive */
};

/* Reads the state from run/ of the deployment in dir. Never fails on absent files. */
MOAT_MUST_CHECK int moat_broker_state(const char *dir, struct moat_broker_state *out,
				      struct moat_err *err);

/* Sends sig to a running supervisor (which forwards SIGHUP and SIGTERM to the broker).
 * *out_sent is false when none runs (not an error). */
MOAT_MUST_CHECK int moat_broker_signal(const char *dir, int sig, bool *out_sent,
				       struct moat_err *err);

#define MOAT_BROKER_SYNC_REQUEST_FILE "state/broker-sync.request"

/* Asks the supervisor of `moat up`, if one runs, to sync the broker with the registry (see
 * above): writes state/broker-sync.request (creating state/ 0700 when absent) with why (a
 * word for the supervisor's log is not read: it names the requester for a person looking
 * at the file). Works whether or not a supervisor runs: the next one starts from the
 * registry anyway. MOAT_EIO when the file cannot be written. */
MOAT_MUST_CHECK int moat_broker_sync_request(const char *dir, const char *why,
					     struct moat_err *err);

/* Stops a running supervisor (SIGTERM) and waits until its lock is released and its
 * process is gone, at most timeout_ms (MOAT_ETIMEOUT naming the supervisor's pid).
 * *out_was_running is false when none ran (not an error). */
MOAT_MUST_CHECK int moat_broker_stop(const char *dir, int64_t timeout_ms, bool *out_was_running,
				     struct moat_err *err);

/* What `moat status` reports. */
struct moat_broker_status {
	struct moat_broker_state state;
	struct moat_broker_endpoint endpoint;
	char mode[32];		   /* moat_broker_conf_mode: "plugin", "acl-file" or "" */
	bool accepting_tls;	   /* running, and a verified handshake succeeded */
	struct moat_err probe_err; /* why not, when running and !accepting_tls */
};

/* Fills out from the deployment's settings, run/ and one probe (only when running). */
MOAT_MUST_CHECK int moat_broker_status(const struct moat_deploy *d, struct moat_broker_status *out,
				       struct moat_err *err);

/* ---- The supervisor (supervisor.c) ---- */

struct moat_broker_sup;

/* Optional calls into the caller, all made in the supervisor process. */
struct moat_broker_sup_hooks {
	/* Adds further children (moatd) after Mosquitto, before anything starts. */
	int (*add_children)(struct moat_sup *s, const char *dir, void *ctx, struct moat_err *err);
	/* Once the broker is ready, polled until it returns 1 (the other children are ready
	 * too: only then is the whole readiness reported), 0 (not yet: asked again until
	 * timeout_ms) or a negative failure with err set (a child died while starting).
	 * NULL: the broker's readiness is the whole. */
	int (*children_ready)(const struct moat_broker_sup *u, const struct moat_sup *s, void *ctx,
			      struct moat_err *err);
	/* The broker is ready and no `moat up` waits to be told (moat_broker_sup_run). */
	void (*ready)(const struct moat_broker_sup *u, pid_t mosquitto_pid, void *ctx);
	/* The supervisor failed and no `moat up` waits to be told: in moat_broker_sup_run,
	 * or in the detached supervisor after it reported readiness. Called before the
	 * children are stopped. */
	void (*failed)(const struct moat_err *err, void *ctx);
	void *ctx;
};

/* What the supervisor needs once the deployment is closed again. */
struct moat_broker_sup {
	char dir[PATH_MAX];
	char conf[PATH_MAX];		   /* broker/mosquitto.conf */
	char bin[PATH_MAX];		   /* the mosquitto executable */
	struct moat_broker_endpoint probe; /* where readiness is proven */
	int64_t timeout_ms;		   /* until the broker must be ready */
	bool plugin; /* mosquitto.conf loads the plugin (else ACL-file mode) */
	struct moat_broker_sup_hooks hooks;
};

/* Refuses when a supervisor already runs (MOAT_ESTATE), regenerates every broker file
 * (moat_broker_configure), finds mosquitto ($MOAT_MOSQUITTO, else /usr/sbin/mosquitto;
 * MOAT_ENOENT) and fills out (hooks zeroed, timeout_ms from the argument). The caller
 * SHOULD close d before starting the supervisor, so no child inherits run/moat.lock. */
MOAT_MUST_CHECK int moat_broker_sup_prepare(struct moat_deploy *d, bool force_acl_file,
					    int64_t timeout_ms, struct moat_broker_sup *out,
					    struct moat_err *err);

/* Runs the supervisor in this process (which MUST be single-threaded, see supervise.h)
 * until it is stopped. 0 when stopped after the broker was ready; otherwise the failure
 * (also passed to hooks.failed). */
MOAT_MUST_CHECK int moat_broker_sup_run(const struct moat_broker_sup *u, struct moat_err *err);

/* Forks a detached supervisor (new session, stdio on log/supervisor.log) and waits until
 * it reports the broker (and hooks.children_ready) ready (0, *out_pid its pid) or failed
 * (MOAT_EIO naming its reason, Mosquitto's last log line unless another child failed,
 * and the supervisor's log). A supervisor that says nothing
 * within timeout_ms + 5 s is sent SIGTERM. */
MOAT_MUST_CHECK int moat_broker_sup_start(const struct moat_broker_sup *u, pid_t *out_pid,
					  struct moat_err *err);

#endif
