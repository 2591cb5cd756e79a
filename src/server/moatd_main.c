/* moatd_main.c: the moatd executable: parses its options, starts the HTTPS service
 * (moat_httpd_start) and waits for SIGTERM/SIGINT. Signals are blocked before any thread
 * starts, so only this thread receives them (sigwait).
 *
 *   moatd [--dir DIR] [--listen ADDR] [--port N] [--as SERVICE_ID] [--no-ingest]
 *         [--log FILE] [--verbose]
 *
 * Threads besides this one: libmicrohttpd's pool ([server] threads) and httpd's reaper (HTTPS),
 * and the MQTT ingest of update events.
 *
 * SIGHUP (moat up forwards the one every registry change sends): when pki/server.crt or
 * pki/server.key was replaced (moat cert server), the HTTPS listener is restarted with the
 * new pair; requests in flight are cut (a download resumes with Range). A pair that does
 * not start is fatal (exit 1: moat up restarts moatd and reports it), never a fallback to
 * a certificate the operator replaced.
 *
 * This thread also ends re-enrollment grace periods: once a second it revokes (superseded)
 * the old certificates whose grace period is over (its own deployment handle, so it never
 * shares the HTTPS thread's registry connection), and keeps the CRL fresh (moat_crl_keep).
 *
 * Under systemd (Type=notify, packaging/systemd/moatd@.service) it says READY=1 once it
 * listens, has dropped its privileges and is locked, RELOADING=1 and READY=1 around each
 * SIGHUP, and STOPPING=1 when asked to stop (notify below).
 *
 * Privileges (sandbox.h): started as root, moatd loads its TLS key and binds its listener
 * as root, then becomes [server] user (default moat, deploy.h "Ownership"), starts the
 * ingest and opens its tick's deployment as that user (they reconnect and re-read as that
 * user for their whole life, as the HTTPS listener does when SIGHUP brings a new key
 * pair), and locks itself: no capabilities, no_new_privs, the moatd seccomp profile on
 * every thread. Started by another user (a developer), it cannot switch and stays that
 * user, locked the same way. Whatever must happen before the lock (a PKCS#11 module's
 * dlopen, more listeners, keys only root may read) goes before moat_sandbox_lock below.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "moat/broker.h"
#include "moat/config.h"
#include "moat/deploy.h"
#include "moat/fsutil.h"
#include "moat/log.h"
#include "moat/monitor_export.h"
#include "moat/opts.h"
#include "moat/policy.h"
#include "moat/release.h"
#include "moat/sandbox.h"
#include "moat/secevent.h"
#include "moat/server.h"
#include "moat/timeutil.h"

/* What moatd's tick did to a rollout: one log line each; a halt names its cause. */
static void rollout_changed(const struct moat_rollout_change *c, void *ctx)
{
	(void)ctx;
	switch (c->decision) {
	case MOAT_ROLLOUT_ADVANCE:
		moat_log(MOAT_LOG_INFO, "event=rollout_advanced id=%lld phase=%d", (long long)c->id,
			 c->phase + 1);
		break;
	case MOAT_ROLLOUT_COMPLETE:
		moat_log(MOAT_LOG_INFO, "event=rollout_completed id=%lld", (long long)c->id);
		break;
	case MOAT_ROLLOUT_HALT_FAILURES:
	case MOAT_ROLLOUT_HALT_SECURITY: {
		const char *reason = c->decision == MOAT_ROLLOUT_HALT_FAILURES ? "failures"
									       : "security_events";
		moat_log(MOAT_LOG_WARN, "event=rollout_halted id=%lld phase=%d reason=%s cause=%s",
			 (long long)c->id, c->phase + 1, reason, c->cause);
		/* a fleet-wide stop is a security event: the SIEM and webhooks hear of it */
		char evidence[MOAT_EVENT_EVIDENCE_MAX_LEN + 1];
		snprintf(evidence, sizeof(evidence),
			 "rollout=%lld phase=%d reason=%s cause=\"%.300s\"", (long long)c->id,
			 c->phase + 1, reason, c->cause);
		moat_server_security_event(MOAT_EVENT_KIND_ROLLOUT_HALTED, MOAT_SEV_HIGH, NULL,
					   NULL, evidence);
		break;
	}
	default:
		if (c->joined > 0) {
			moat_log(MOAT_LOG_INFO, "event=rollout_joined id=%lld phase=%d devices=%zu",
				 (long long)c->id, c->phase + 1, c->joined);
		}
		break;
	}
}

static const char usage[] =
	"usage: moatd [--dir DIR] [--listen ADDR] [--port N] [--as SERVICE_ID]\n"
	"             [--no-ingest] [--log FILE] [--verbose]\n"
	"The update service: HTTPS with client certificates on [server] port of\n"
	"moat.conf (default address 127.0.0.1, or [server] listen), and update events\n"
	"from devices over MQTT as SERVICE_ID ([server] service_identity, default\n"
	"backend-service); --no-ingest leaves those out. With a sink in [monitor] it\n"
	"also exports the broker's security events (moat/events/#, as SERVICE_ID) to a\n"
	"SIEM collector and webhooks; operators read /metrics. DIR defaults to\n"
	"$MOAT_DIR, then the current directory.\n"
	"Started as root it runs as [server] user (default moat) once its key is loaded\n"
	"and its port bound. SIGHUP reloads a replaced server certificate and reopens\n"
	"the --log file; SIGTERM stops\n"
	"it. Under systemd (Type=notify) it reports READY=1 once it serves, RELOADING=1\n"
	"around a reload and STOPPING=1 (sd_notify); moat up runs it beside the broker.\n";

/* Tells the service manager ($NOTIFY_SOCKET, sd_notify(3)) where moatd stands: READY=1
 * once it serves, RELOADING=1 ... READY=1 around a SIGHUP, STOPPING=1 on its way out.
 * Without $NOTIFY_SOCKET (moat up, a shell) it does nothing; a failure is logged, never
 * fatal (the service manager then times out the start, which says more). */
static void notify(const char *state)
{
	int rc = sd_notify(0, state);
	if (rc < 0) {
		moat_log(MOAT_LOG_WARN, "event=sd_notify_failed error=\"%s\"", strerror(-rc));
	}
}

/* Who moatd runs as: [server] user of moat.conf when started as root (read before any
 * privilege is given up, and before the deployment is opened: a missing moat.conf is
 * reported by moat_httpd_start). */
static int lookup_user(const char *dir, struct moat_sandbox_user *out, struct moat_err *err)
{
	char path[PATH_MAX];
	char user[MOAT_DEPLOY_USER_BUF_LEN];
	struct moat_config *cfg = NULL;
	int rc = moat_path_join(path, sizeof(path), err, "%s/moat.conf", dir);
	if (rc == 0 && moat_fs_exists(path)) {
		rc = moat_config_load(path, &cfg, err);
	}
	if (rc == 0) {
		rc = moat_deploy_moatd_user(cfg, user, err);
	}
	moat_config_free(cfg);
	if (rc == 0 && (rc = moat_sandbox_user_lookup(user, out, err)) == MOAT_ENOENT) {
		rc = moat_err_set(err, MOAT_ENOENT,
				  "moatd's account '%s' ([server] user) does not exist; moat init "
				  "or moat up run as root creates '%s'",
				  user, MOAT_MOATD_USER_DEFAULT);
	}
	return rc;
}

/* An issuing CA whose key is in a PKCS#11 token: moatd signs with it (enrollment, the
 * CRL it keeps fresh) as its own account. A token that account cannot use stops moatd at
 * start with the reason, before it listens (so `moat up` sees it fail), rather than at the
 * first CRL refresh: the key is loaded once in a child that switches to the account, before
 * any thread exists. Nothing is kept: each signing opens the token anew. */
static int token_check_as(const char *dir, const struct moat_sandbox_user *su)
{
	struct moat_deploy *d = NULL;
	const struct moat_ca *signer = NULL;
	struct moat_err err = {0};
	/* as the account first: a registry opened as root would leave root's -wal and -shm */
	int rc = moat_sandbox_switch_user(su, &err);
	/* a deployment that does not open is moat_httpd_start's to report, as before */
	if (rc == 0 && moat_deploy_open(dir, MOAT_DEPLOY_READ, &d, &err) == 0 &&
	    moat_deploy_has_issuer(d) &&
	    moat_config_get(moat_deploy_config(d), "pki", "issuer_pkcs11_uri") &&
	    (rc = moat_deploy_signer(d, &signer, &err)) != 0) {
		moat_err_prefix(&err,
				"the issuing CA's key in its PKCS#11 token, as user %s (the token's "
				"files and the PIN file must be that account's)",
				su->name);
	}
	if (rc != 0) {
		fprintf(stderr, "moatd: %s\n", err.msg);
	}
	moat_deploy_close(d);
	return rc;
}

static int token_check(const char *dir, const struct moat_sandbox_user *su)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "moatd: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		_exit(token_check_as(dir, su) == 0 ? 0 : 1);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			return 1;
		}
	}
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

/* From root (or the invoking user) to locked: see the top of this file. */
static int drop_privileges(const struct moat_sandbox_user *su, const char *dir,
			   struct moat_err *err)
{
	int rc = moat_sandbox_switch_user(su, err);
	if (rc != 0) {
		return rc;
	}
	if (!su->do_switch) {
		return 0;
	}
	if (access(dir, R_OK | X_OK) != 0) {
		return moat_err_errno(err, MOAT_EDENIED, errno,
				      "user %s cannot reach the deployment %s (every directory "
				      "above it must be searchable by it)",
				      su->name, dir);
	}
	/* SQLite writes registry.db and creates its -wal and -shm beside it; a registry on
	 * PostgreSQL ([registry] url) has no file: moatd writes only the directory then */
	char reg[PATH_MAX];
	char conf[PATH_MAX];
	struct moat_config *cfg = NULL;
	if ((rc = moat_path_join(conf, sizeof(conf), err, "%s/moat.conf", dir)) != 0 ||
	    (rc = moat_config_load(conf, &cfg, err)) != 0) {
		return rc;
	}
	rc = moat_deploy_registry_location(dir, cfg, reg, sizeof(reg), err);
	moat_config_free(cfg);
	if (rc != 0) {
		return rc;
	}
	if (moat_registry_is_url(reg)) {
		reg[0] = '\0';
	}
	if (access(dir, W_OK) != 0 || (reg[0] && access(reg, R_OK | W_OK) != 0)) {
		return moat_err_errno(err, MOAT_EDENIED, errno,
				      "user %s cannot write %s or its directory (moat up or moat "
				      "broker config, run as root, gives moatd its files)",
				      su->name, reg);
	}
	return 0;
}

/* The identity of pki/server.crt and pki/server.key (inode, size, mtime): both are
 * replaced by rename, so a new pair always differs. */
struct pair_stamp {
	struct stat st[2];
	bool ok;
};

static struct pair_stamp pair_stamp(const char *dir)
{
	static const char *const files[] = {"pki/server.crt", "pki/server.key"};
	struct pair_stamp p;
	memset(&p, 0, sizeof(p));
	p.ok = true;
	for (size_t i = 0; i < 2; i++) {
		char path[PATH_MAX];
		int n = snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		p.ok &= n > 0 && (size_t)n < sizeof(path) && stat(path, &p.st[i]) == 0;
	}
	return p;
}

static bool pair_changed(const struct pair_stamp *a, const struct pair_stamp *b)
{
	if (!a->ok || !b->ok) {
		return a->ok != b->ok;
	}
	for (size_t i = 0; i < 2; i++) {
		const struct stat *x = &a->st[i];
		const struct stat *y = &b->st[i];
		if (x->st_ino != y->st_ino || x->st_size != y->st_size ||
		    x->st_mtim.tv_sec != y->st_mtim.tv_sec ||
		    x->st_mtim.tv_nsec != y->st_mtim.tv_nsec) {
			return true;
		}
	}
	return false;
}

/* SIGHUP: the log file is opened again by name, so a rotated file (logrotate's rename,
 * then SIGHUP) is let go and writing goes on in a new one. A failure keeps the old one. */
/* The --log file, opened as root, becomes moatd's account's (still 0640) when it is root's
 * regular file: SIGHUP reopens it after the switch (moat up's log/moatd.log; logrotate's
 * `create` gives the new file the same owner). A file someone else owns is left as it is. */
static int give_log(const struct moat_sandbox_user *su)
{
	struct stat st;
	if (fstat(STDERR_FILENO, &st) != 0) {
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != 0) {
		return 0;
	}
	return fchown(STDERR_FILENO, su->uid, su->gid);
}

static void reopen_log(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) {
		moat_log(MOAT_LOG_ERROR, "event=log_reopen_failed path=%s error=\"%s\"", path,
			 strerror(errno));
	} else {
		moat_log(MOAT_LOG_INFO, "event=log_reopened");
	}
	if (fd >= 0) {
		close(fd);
	}
}

int main(int argc, char **argv)
{
	const char *dir_flag = NULL;
	struct moat_httpd_opts opts = {0};
	struct moat_ingest_opts iopts = {0};
	bool no_ingest = false;
	const char *log_path = NULL;
	bool verbose = false;
	struct moat_err err = {0};
	int64_t port = 0;
	const struct moat_opt table[] = {
		{.name = "dir", .kind = MOAT_OPT_STRING, .dst = &dir_flag},
		{.name = "listen", .kind = MOAT_OPT_STRING, .dst = &opts.listen_addr},
		{.name = "port", .kind = MOAT_OPT_INT, .dst = &port, .min = 1, .max = 65535},
		{.name = "verbose", .kind = MOAT_OPT_FLAG, .dst = &verbose},
		{.name = "as", .kind = MOAT_OPT_STRING, .dst = &iopts.as},
		{.name = "no-ingest", .kind = MOAT_OPT_FLAG, .dst = &no_ingest},
		{.name = "log", .kind = MOAT_OPT_STRING, .dst = &log_path},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{.name = "version", .kind = MOAT_OPT_HELP, .text = "moatd " MOAT_VERSION "\n"},
		{0},
	};
	const struct moat_opts_spec spec = {.prog = "moatd",
					    .usage = usage,
					    .opts = table,
					    .on_error = MOAT_OPTS_ERROR_USAGE,
					    .no_operands = true};
	int next;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	opts.port = (int)port;
	bool ingest = !no_ingest;
	char dir[PATH_MAX];
	if (moat_deploy_locate(dir_flag, dir, sizeof(dir), &err) != 0) {
		fprintf(stderr, "moatd: %s\n", err.msg);
		return 1;
	}
	opts.dir = dir;
	iopts.dir = dir;
	iopts.port = opts.port;
	/* held (shared) until moatd exits: `moat registry migrate` must see every moatd */
	char lock_path[PATH_MAX];
	int lock_fd = -1;
	if (moat_path_join(lock_path, sizeof(lock_path), &err, "%s/%s", dir,
			   MOAT_MOATD_LOCK_FILE) != 0 ||
	    (lock_fd = open(lock_path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644)) < 0 ||
	    flock(lock_fd, LOCK_SH | LOCK_NB) != 0) {
		fprintf(stderr, "moatd: %s: %s\n", err.msg[0] ? err.msg : lock_path,
			errno == EWOULDBLOCK
				? "held by `moat registry migrate`: start moatd once it "
				  "is done"
				: strerror(errno));
		return 1;
	}
	if (log_path) {
		/* Append log lines to a file (moat up passes log/moatd.log); stderr keeps them
		 * one line per event. */
		int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
			      0640);
		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) {
			fprintf(stderr, "moatd: %s: %s\n", log_path, strerror(errno));
			return 1;
		}
		close(fd);
	}
	moat_log_init("moatd", verbose ? MOAT_LOG_DEBUG : MOAT_LOG_INFO, false);

	struct moat_sandbox_user su;
	if (lookup_user(dir, &su, &err) != 0) {
		fprintf(stderr, "moatd: %s\n", err.msg);
		return 1;
	}
	if (log_path && su.do_switch && give_log(&su) != 0) {
		fprintf(stderr, "moatd: %s: %s\n", log_path, strerror(errno));
		return 1;
	}

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGPIPE);
#if defined(MOAT_FAILPOINTS)
	sigaddset(&set, SIGUSR2); /* test builds: make a forbidden system call */
#endif
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
		fprintf(stderr, "moatd: cannot block signals\n");
		return 1;
	}
	/* Client connections are bounded by the open-file limit (moat_httpd_start lowers
	 * [server] max_connections to fit): take the whole hard limit, as servers do. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	struct moat_httpd *h = NULL;
	struct moat_ingest *ing = NULL;
	struct moat_export *exporter = NULL;
	/* the exporter follows the events the ingest records in the registry (woken by
	 * monitor.h's hook); without the ingest it subscribes to the plugin's events itself,
	 * as the service identity, when [monitor] names a sink */
	struct moat_export_opts xopts = {.dir = dir,
					 .subscribe = !ingest,
					 .as = iopts.as,
					 .port = opts.port,
					 .security_event = moat_server_security_event};
	struct moat_sandbox_report sb;
	struct pair_stamp served = pair_stamp(dir);
	if (token_check(dir, &su) != 0) {
		return 1;
	}
	if (ingest) {
		/* the broker's user owns the plugin's events file: open it while root may */
		char events[PATH_MAX];
		int n = snprintf(events, sizeof(events), "%s/%s", dir,
				 MOAT_PLUGIN_EVENTS_FILE_NAME);
		if (n > 0 && (size_t)n < sizeof(events)) {
			iopts.events_fd = open(events, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			iopts.has_events_fd = iopts.events_fd >= 0;
		}
		/* and the broker's log, which ingest follows for TLS refusals */
		n = snprintf(events, sizeof(events), "%s/%s", dir, MOAT_BROKER_LOG_FILE);
		if (n > 0 && (size_t)n < sizeof(events)) {
			iopts.broker_log_fd = open(events, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			iopts.has_broker_log_fd = iopts.broker_log_fd >= 0;
		}
	}
	/* the exporter before the ingest: on its first start it exports from the registry's
	 * last event as it starts, so none the ingest records is missed */
	if (moat_httpd_start(&opts, &h, &err) != 0 || drop_privileges(&su, dir, &err) != 0 ||
	    moat_export_start(&xopts, &exporter, &err) != 0 ||
	    (ingest && moat_ingest_start(&iopts, &ing, &err) != 0)) {
		fprintf(stderr, "moatd: %s\n", err.msg);
		moat_export_stop(exporter);
		moat_ingest_stop(ing);
		moat_httpd_stop(h);
		return 1;
	}
	/* started after the listener (which binds as root) and after the switch to moatd's
	 * account (its queue file is that account's); /metrics reads it from now on */
	opts.exporter = exporter;
	moat_httpd_set_exporter(h, exporter);
	opts.ingest = ing;
	moat_httpd_set_ingest(h, ing);
	struct moat_deploy *tick = NULL;
	if (moat_deploy_open(dir, MOAT_DEPLOY_READ, &tick, &err) != 0 ||
	    moat_sandbox_lock(MOAT_SANDBOX_MOATD, &sb, &err) != 0) {
		fprintf(stderr, "moatd: %s\n", err.msg);
		moat_deploy_close(tick);
		moat_httpd_stop(h); /* first: /metrics reads the exporter and the ingest */
		moat_export_stop(exporter);
		moat_ingest_stop(ing);
		return 1;
	}
	/* the security log's record of what moatd runs with from here on */
	moat_log(MOAT_LOG_INFO,
		 "event=sandbox profile=%s user=%s uid=%u gid=%u switched=%s capabilities=none "
		 "no_new_privs=yes seccomp=kill_process syscalls=%zu sanitizer_allowance=%s",
		 sb.profile, su.name, (unsigned)getuid(), (unsigned)getgid(),
		 su.do_switch ? "yes" : "no (not started as root)", sb.syscalls,
		 sb.sanitizer ? "yes" : "no");
	notify("READY=1\nSTATUS=serving");
	int64_t tick_error_ms = 0;
	int64_t rollout_error_ms = 0;
	struct moat_crl_keeper keeper = {.interval_s = 1};
	int64_t next_keep = 0;
	for (;;) {
		if (moat_time_now() >= next_keep) {
			(void)moat_crl_keep(dir, &keeper); /* it logs what went wrong */
			next_keep = moat_time_now() + keeper.interval_s;
		}
		const struct timespec second = {.tv_sec = 1};
		int sig = sigtimedwait(&set, NULL, &second);
		if (sig < 0) {
			size_t n = 0;
			if (moat_rollout_tick(moat_deploy_registry(tick), moat_time_now(),
					      rollout_changed, NULL, &err) != 0) {
				/* once a minute at most, like the supersede failure below */
				if (moat_time_mono_ms() - rollout_error_ms > 60000 ||
				    !rollout_error_ms) {
					moat_log(MOAT_LOG_ERROR,
						 "event=rollout_tick_failed msg=\"%s\"", err.msg);
					rollout_error_ms = moat_time_mono_ms();
				}
				err = (struct moat_err){0};
			}
			if (moat_deploy_enroll_supersede_due(tick, moat_time_now(), &n, &err) !=
			    0) {
				/* once a minute at most: the cause (no online CA) lasts */
				if (moat_time_mono_ms() - tick_error_ms > 60000 || !tick_error_ms) {
					moat_log(MOAT_LOG_ERROR,
						 "event=supersede_failed msg=\"%s\"", err.msg);
					tick_error_ms = moat_time_mono_ms();
				}
			} else if (n > 0) {
				moat_log(MOAT_LOG_INFO, "event=superseded count=%zu", n);
			}
			continue;
		}
		if (sig == SIGTERM || sig == SIGINT) {
			moat_log(MOAT_LOG_INFO, "event=stopping signal=%d", sig);
			notify("STOPPING=1");
			break;
		}
#if defined(MOAT_FAILPOINTS)
		if (sig == SIGUSR2) {
			moat_log(MOAT_LOG_WARN, "event=failpoint_forbidden_syscall");
			moat_sandbox_failpoint_forbidden();
			moat_log(MOAT_LOG_ERROR, "event=failpoint_forbidden_syscall_survived");
			continue;
		}
#endif
		/* SIGHUP: the CRL and the registry are read when they change; the server's
		 * certificate only here. SIGPIPE: a client went away, MHD handles it. */
		if (sig != SIGHUP) {
			continue;
		}
		notify("RELOADING=1");
		if (log_path) {
			reopen_log(log_path);
		}
		struct pair_stamp now = pair_stamp(dir);
		if (!pair_changed(&served, &now)) {
			notify("READY=1\nSTATUS=serving");
			continue;
		}
		served = now;
		moat_httpd_stop(h);
		h = NULL;
		if (moat_httpd_start(&opts, &h, &err) != 0) {
			moat_log(MOAT_LOG_ERROR, "event=server_cert_reload_failed error=%s",
				 err.msg);
			moat_deploy_close(tick);
			moat_export_stop(exporter);
			moat_ingest_stop(ing);
			return 1;
		}
		moat_log(MOAT_LOG_INFO, "event=server_cert_reloaded");
		notify("READY=1\nSTATUS=serving (certificate reloaded)");
	}
	moat_deploy_close(tick);
	moat_httpd_stop(h);
	moat_export_stop(exporter);
	moat_ingest_stop(ing);
	return 0;
}
