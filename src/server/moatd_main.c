/* moatd_main.c: the moatd executable: parses its options, starts the HTTPS service
 * (moat_httpd_start) and waits for SIGTERM/SIGINT. Signals are blocked before any thread
 * starts, so only this thread receives them (sigwait).
 *
 *   moatd [--dir DIR] [--listen ADDR] [--port N] [--as SERVICE_ID] [--no-ingest]
 *         [--log FILE] [--verbose]
 *
 * Two threads besides this one: MHD's (HTTPS) and the MQTT ingest of update events.
 * This thread also ends re-enrollment grace periods: once a second it revokes (superseded)
 * the old certificates whose grace period is over (its own deployment handle, so it never
 * shares the HTTPS thread's registry connection).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "moat/deploy.h"
#include "moat/log.h"
#include "moat/opts.h"
#include "moat/server.h"
#include "moat/timeutil.h"

static const char usage[] =
	"usage: moatd [--dir DIR] [--listen ADDR] [--port N] [--as SERVICE_ID]\n"
	"             [--no-ingest] [--log FILE] [--verbose]\n"
	"The update service: HTTPS with client certificates on [server] port of\n"
	"moat.conf (default address 127.0.0.1, or [server] listen), and update events\n"
	"from devices over MQTT as SERVICE_ID ([server] service_identity, default\n"
	"backend-service). DIR defaults to $MOAT_DIR, then the current directory.\n";

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

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
		fprintf(stderr, "moatd: cannot block signals\n");
		return 1;
	}
	struct moat_httpd *h = NULL;
	struct moat_ingest *ing = NULL;
	if (moat_httpd_start(&opts, &h, &err) != 0 ||
	    (ingest && moat_ingest_start(&iopts, &ing, &err) != 0)) {
		fprintf(stderr, "moatd: %s\n", err.msg);
		moat_httpd_stop(h);
		return 1;
	}
	struct moat_deploy *tick = NULL;
	if (moat_deploy_open(dir, MOAT_DEPLOY_READ, &tick, &err) != 0) {
		fprintf(stderr, "moatd: %s\n", err.msg);
		moat_ingest_stop(ing);
		moat_httpd_stop(h);
		return 1;
	}
	int64_t tick_error_ms = 0;
	for (;;) {
		const struct timespec second = {.tv_sec = 1};
		int sig = sigtimedwait(&set, NULL, &second);
		if (sig < 0) {
			size_t n = 0;
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
			break;
		}
		/* SIGHUP: nothing to reload by hand (the CRL is re-read when it changes);
		 * SIGPIPE: a client went away, MHD handles it. */
	}
	moat_deploy_close(tick);
	moat_ingest_stop(ing);
	moat_httpd_stop(h);
	return 0;
}
