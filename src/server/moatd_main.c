/* moatd_main.c: the moatd executable: parses its options, starts the HTTPS service
 * (moat_httpd_start) and waits for SIGTERM/SIGINT. Signals are blocked before any thread
 * starts, so only this thread receives them (sigwait).
 *
 *   moatd [--dir DIR] [--listen ADDR] [--port N] [--as SERVICE_ID] [--no-ingest]
 *         [--log FILE] [--verbose]
 *
 * Two threads besides this one: MHD's (HTTPS) and the MQTT ingest of update events.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "moat/deploy.h"
#include "moat/log.h"
#include "moat/server.h"
#include "moat/timeutil.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: moatd [--dir DIR] [--listen ADDR] [--port N] [--as SERVICE_ID]\n"
		"             [--no-ingest] [--log FILE] [--verbose]\n"
		"The update service: HTTPS with client certificates on [server] port of\n"
		"moat.conf (default address 127.0.0.1, or [server] listen), and update events\n"
		"from devices over MQTT as SERVICE_ID ([server] service_identity, default\n"
		"backend-service). DIR defaults to $MOAT_DIR, then the current directory.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"dir", required_argument, NULL, 'd'},
		{"listen", required_argument, NULL, 'l'},
		{"port", required_argument, NULL, 'p'},
		{"verbose", no_argument, NULL, 'v'},
		{"as", required_argument, NULL, 'a'},
		{"no-ingest", no_argument, NULL, 'n'},
		{"log", required_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *dir_flag = NULL;
	struct moat_httpd_opts opts = {0};
	struct moat_ingest_opts iopts = {0};
	bool ingest = true;
	const char *log_path = NULL;
	bool verbose = false;
	struct moat_err err = {0};
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir_flag = optarg;
			break;
		case 'l':
			opts.listen_addr = optarg;
			break;
		case 'p': {
			int64_t v;
			if (moat_int_parse(optarg, 1, 65535, &v, &err) != 0) {
				fprintf(stderr, "moatd: --port: %s\n", err.msg);
				return 2;
			}
			opts.port = (int)v;
			break;
		}
		case 'v':
			verbose = true;
			break;
		case 'a':
			iopts.as = optarg;
			break;
		case 'n':
			ingest = false;
			break;
		case 'L':
			log_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
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
	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0) {
			continue;
		}
		if (sig == SIGTERM || sig == SIGINT) {
			moat_log(MOAT_LOG_INFO, "event=stopping signal=%d", sig);
			break;
		}
		/* SIGHUP: nothing to reload by hand (the CRL is re-read when it changes);
		 * SIGPIPE: a client went away, MHD handles it. */
	}
	moat_ingest_stop(ing);
	moat_httpd_stop(h);
	return 0;
}
