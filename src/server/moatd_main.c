/* moatd_main.c: the moatd executable: parses its options, starts the HTTPS service
 * (moat_httpd_start) and waits for SIGTERM/SIGINT. Signals are blocked before any thread
 * starts, so only this thread receives them (sigwait).
 *
 *   moatd [--dir DIR] [--listen ADDR] [--port N] [--as SERVICE_ID] [--no-ingest]
 *         [--log FILE] [--verbose]
 *
 * Two threads besides this one: MHD's (HTTPS) and the MQTT ingest of update events.
 *
 * Privileges (sandbox.h): started as root, moatd loads its TLS key and binds its listener
 * as root, then becomes [server] user (default moat, deploy.h "Ownership"), starts the
 * ingest as that user (it reconnects as that user for its whole life), and locks itself:
 * no capabilities, no_new_privs, the moatd seccomp profile on every thread. Started by
 * another user (a developer), it cannot switch and stays that user, locked the same way.
 * Whatever must happen before the lock (a PKCS#11 module's dlopen, more listeners, keys)
 * goes before moat_sandbox_lock below.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "moat/config.h"
#include "moat/deploy.h"
#include "moat/fsutil.h"
#include "moat/log.h"
#include "moat/opts.h"
#include "moat/sandbox.h"
#include "moat/server.h"
#include "moat/timeutil.h"

static const char usage[] =
	"usage: moatd [--dir DIR] [--listen ADDR] [--port N] [--as SERVICE_ID]\n"
	"             [--no-ingest] [--log FILE] [--verbose]\n"
	"The update service: HTTPS with client certificates on [server] port of\n"
	"moat.conf (default address 127.0.0.1, or [server] listen), and update events\n"
	"from devices over MQTT as SERVICE_ID ([server] service_identity, default\n"
	"backend-service). DIR defaults to $MOAT_DIR, then the current directory.\n"
	"Started as root it runs as [server] user (default moat) once its key is loaded\n"
	"and its port bound.\n";

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
	/* SQLite writes registry.db and creates its -wal and -shm beside it */
	char reg[PATH_MAX];
	if ((rc = moat_path_join(reg, sizeof(reg), err, "%s/registry.db", dir)) != 0) {
		return rc;
	}
	if (access(dir, W_OK) != 0 || access(reg, R_OK | W_OK) != 0) {
		return moat_err_errno(err, MOAT_EDENIED, errno,
				      "user %s cannot write %s or its directory (moat up or moat "
				      "broker config, run as root, gives moatd its files)",
				      su->name, reg);
	}
	return 0;
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
		{.name = "help", .kind = MOAT_OPT_HELP},
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
	struct moat_httpd *h = NULL;
	struct moat_ingest *ing = NULL;
	struct moat_sandbox_report sb;
	if (moat_httpd_start(&opts, &h, &err) != 0 || drop_privileges(&su, dir, &err) != 0 ||
	    (ingest && moat_ingest_start(&iopts, &ing, &err) != 0) ||
	    moat_sandbox_lock(MOAT_SANDBOX_MOATD, &sb, &err) != 0) {
		fprintf(stderr, "moatd: %s\n", err.msg);
		moat_ingest_stop(ing);
		moat_httpd_stop(h);
		return 1;
	}
	/* the security log's record of what moatd runs with from here on */
	moat_log(MOAT_LOG_INFO,
		 "event=sandbox profile=%s user=%s uid=%u gid=%u switched=%s capabilities=none "
		 "no_new_privs=yes seccomp=kill_process syscalls=%zu sanitizer_allowance=%s",
		 sb.profile, su.name, (unsigned)getuid(), (unsigned)getgid(),
		 su.do_switch ? "yes" : "no (not started as root)", sb.syscalls,
		 sb.sanitizer ? "yes" : "no");
	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0) {
			continue;
		}
		if (sig == SIGTERM || sig == SIGINT) {
			moat_log(MOAT_LOG_INFO, "event=stopping signal=%d", sig);
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
		/* SIGHUP: nothing to reload by hand (the CRL is re-read when it changes);
		 * SIGPIPE: a client went away, MHD handles it. */
	}
	moat_ingest_stop(ing);
	moat_httpd_stop(h);
	return 0;
}
