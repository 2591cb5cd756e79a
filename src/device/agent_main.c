/* agent_main.c: moat-agent, the device daemon. It reads the INI file that
 * `moat device export ID --format agent` wrote, refuses to start with a certificate the
 * broker would refuse (clock before notBefore, expired), and runs one device session
 * until SIGTERM/SIGINT, when it publishes its offline status and exits 0. The reboot
 * command makes it re-execute itself (the same binary, the same arguments), or, under
 * moat-boot (MOAT_BOOT_STATE set), exit MOAT_BOOT_RESTART_EXIT so moat-boot starts the
 * image again (a staged release then starts on trial). With an [update] section it runs
 * the update client (update_client.c). With an [enroll] section the device makes its own
 * key and enrolls over EST before it connects, and renews while it runs (enroll.c);
 * --enroll does the first enrollment alone and exits.
 *
 * Privileges (sandbox.h): once its configuration is read, the agent switches to [agent]
 * user when started as root with one (else it stays who started it), so its key, queue and
 * state are that account's; once its session exists (enrolled, certificate checked, state
 * opened), before it first connects, it drops every capability, sets no_new_privs and
 * installs the moat-agent seccomp profile. Its children (moat-update, a sensor command,
 * its own re-exec on reboot) inherit all of it: the profile holds their system calls too
 * (src/sandbox/syscalls.c), and a re-executed agent keeps the filter it inherited.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "moat/agent_conf.h"
#include "moat/agent_update.h"
#include "moat/est_client.h"
#include "moat/fsutil.h"
#include "moat/log.h"
#include "moat/opts.h"
#include "moat/sandbox.h"
#include "moat/session.h"
#include "moat/signals.h"
#include "moat/timeutil.h"
#include "moat/update.h"

#include "device_internal.h"
#include "enroll_internal.h"

static volatile int stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

#if defined(MOAT_FAILPOINTS)
/* Test builds: SIGUSR2 makes a system call outside the profile (tests/e2e/
 * test_privileges.sh expects the agent killed by SIGSYS). */
static void on_forbidden(int sig)
{
	(void)sig;
	moat_sandbox_failpoint_forbidden();
}
#endif

/* Locks the process once its session exists (certificate checked, state opened): see the
 * top of this file. One log line says what is in force. */
static int lock_down(const struct moat_sandbox_user *su, struct moat_err *err)
{
	struct moat_sandbox_report sb;
	int rc = moat_sandbox_lock(MOAT_SANDBOX_AGENT, &sb, err);
	if (rc != 0) {
		return rc;
	}
	moat_log(MOAT_LOG_INFO,
		 "event=sandbox profile=%s user=%s uid=%u switched=%s capabilities=none "
		 "no_new_privs=yes seccomp=kill_process syscalls=%zu inherited=%s "
		 "sanitizer_allowance=%s",
		 sb.profile, su->name, (unsigned)getuid(), su->do_switch ? "yes" : "no",
		 sb.syscalls, sb.inherited ? "yes" : "no", sb.sanitizer ? "yes" : "no");
	return 0;
}

static const char usage[] =
	"usage: moat-agent [--config FILE] [--check]\n"
	"  --config FILE  the agent's INI file (default /etc/moat/agent.conf)\n"
	"  --check        validate the configuration and certificate, then exit\n"
	"  --enroll       with [enroll]: enroll now unless an identity exists, then exit\n"
	"  --version      print the version\n";

/* Runs the device session of conf (with its update client) until a signal or a reboot
 * request (*out_reboot). 0, or 1 when it could not start or the loop failed. */
static int run_agent(const struct moat_agent_conf *conf, const struct moat_sandbox_user *su,
		     bool *out_reboot)
{
	struct moat_err err;
	moat_err_clear(&err);
	moat_session_lib_init();
	struct moat_session *s = NULL;
	if (moat_session_new(conf, moat_time_mono_ms(), &s, &err) != 0) {
		/* stderr for the operator starting it by hand, the log for the supervisor */
		fprintf(stderr, "moat-agent: %s\n", err.msg);
		if (conf->use_syslog) {
			moat_log(MOAT_LOG_ERROR, "event=refused error=\"%s\"", err.msg);
		}
		moat_session_lib_cleanup();
		return 1;
	}
	struct moat_agent_update *upd = NULL;
	if (moat_agent_update_new(conf, &upd, &err) != 0) {
		fprintf(stderr, "moat-agent: %s\n", err.msg);
		moat_session_free(s);
		moat_session_lib_cleanup();
		return 1;
	}
	if (upd) {
		moat_session_set_update(s, upd); /* owned by the session from here on */
	}
	if (lock_down(su, &err) != 0) {
		fprintf(stderr, "moat-agent: %s\n", err.msg);
		if (conf->use_syslog) {
			moat_log(MOAT_LOG_ERROR, "event=refused error=\"%s\"", err.msg);
		}
		moat_session_free(s);
		moat_session_lib_cleanup();
		return 1;
	}
	const struct moat_device *dev = moat_session_device(s);
	moat_log(MOAT_LOG_INFO,
		 "event=started id=%s host=%s port=%d interval_ms=%lld next_seq=%lld queued=%zu",
		 conf->id, conf->host, conf->port, (long long)dev->interval_ms,
		 (long long)dev->next_seq, dev->queue.count);

	struct moat_session *list[1] = {s};
	bool reboot = false;
	int rc = moat_loop_run(list, 1, &stop_flag, NULL, NULL, &reboot, &err);
	*out_reboot = reboot;
	if (rc != 0) {
		moat_log(MOAT_LOG_ERROR, "event=failed error=\"%s\"", err.msg);
	}
	moat_log(MOAT_LOG_INFO, "event=stopped id=%s reboot=%s next_seq=%lld queued=%zu", conf->id,
		 reboot ? "yes" : "no", (long long)dev->next_seq, dev->queue.count);
	moat_session_free(s);
	moat_session_lib_cleanup();
	return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *path = "/etc/moat/agent.conf";
	bool check_only = false, enroll_only = false;
	const struct moat_opt opts[] = {
		{.name = "enroll", .kind = MOAT_OPT_FLAG, .dst = &enroll_only},
		{.name = "config", .kind = MOAT_OPT_STRING, .letter = 'c', .dst = &path},
		{.name = "check", .kind = MOAT_OPT_FLAG, .dst = &check_only},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{.name = "version", .kind = MOAT_OPT_HELP, .text = "moat-agent " MOAT_VERSION "\n"},
		{0},
	};
	const struct moat_opts_spec spec = {.prog = "moat-agent",
					    .usage = usage,
					    .opts = opts,
					    .on_error = MOAT_OPTS_ERROR_USAGE,
					    .no_operands = true};
	int next;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}

	struct moat_agent_conf conf;
	struct moat_err err;
	moat_err_clear(&err);
	if (moat_agent_conf_load(path, &conf, &err) != 0) {
		fprintf(stderr, "moat-agent: %s\n", err.msg);
		return 1;
	}
	moat_log_init("moat-agent", (enum moat_log_level)conf.log_level, conf.use_syslog);

	moat_signals_catch(on_signal, 0);

	if (enroll_only) {
		struct moat_enroll *e = NULL;
		if (!conf.enroll) {
			fprintf(stderr, "moat-agent: %s has no [enroll] section\n", path);
			return 1;
		}
		int rc = moat_enroll_open(&conf, &e, &err);
		if (rc == 0) {
			rc = moat_enroll_now(e, &err);
		}
		moat_enroll_free(e);
		moat_est_cleanup();
		if (rc != 0) {
			fprintf(stderr, "moat-agent: %s\n", err.msg);
			return 1;
		}
		printf("moat-agent: %s: enrolled (%s)\n", conf.id, conf.cert_file);
		return 0;
	}
	if (check_only) {
		/* validate without touching the state directory */
		if (conf.enroll && !moat_fs_exists(conf.cert_file)) {
			printf("moat-agent: %s: configuration ok; not enrolled yet\n", path);
			return 0;
		}
		if (moat_agent_check_cert(conf.cert_file, moat_time_now(), NULL, &err) != 0) {
			fprintf(stderr, "moat-agent: %s\n", err.msg);
			return 1;
		}
		printf("moat-agent: %s: configuration and certificate ok\n", path);
		return 0;
	}
	/* the account first: everything the session creates (queue, state) is then its own */
	struct moat_sandbox_user su;
	if (moat_sandbox_user_lookup(conf.user, &su, &err) != 0 ||
	    moat_sandbox_switch_user(&su, &err) != 0) {
		fprintf(stderr, "moat-agent: %s\n", err.msg);
		if (conf.use_syslog) {
			moat_log(MOAT_LOG_ERROR, "event=refused error=\"%s\"", err.msg);
		}
		return 1;
	}
#if defined(MOAT_FAILPOINTS)
	struct sigaction sa = {.sa_handler = on_forbidden};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL);
#endif
	bool reboot = false;
	int rc = run_agent(&conf, &su, &reboot);
	moat_est_cleanup();
	if (reboot && getenv("MOAT_BOOT_STATE") != NULL) {
		/* under moat-boot: it starts the image again, a staged release on trial */
		return MOAT_BOOT_RESTART_EXIT;
	}
	if (reboot) {
		/* the reboot command: start over as a new process image */
		execv("/proc/self/exe", argv);
		moat_log(MOAT_LOG_ERROR, "event=reboot_failed error=\"%s\"", strerror(errno));
		return 1;
	}
	return rc;
}
