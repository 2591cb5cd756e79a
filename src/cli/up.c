/* up.c: `moat up`, `moat down`, `moat status`: the broker as a supervised child.
 *
 * `moat up` regenerates the broker's files, then runs a supervisor (supervise.h) that starts
 * /usr/sbin/mosquitto with them, restarts it when it dies and forwards SIGHUP/SIGTERM. The
 * supervisor itself proves readiness with a real TLS handshake verified against the
 * deployment CA (moat_broker_probe) and reports it: on stdout with --foreground, otherwise
 * through a pipe to the `moat up` that forked it, which returns only then. The supervisor
 * holds an exclusive flock on run/supervise.lock for its whole life; `moat down` and
 * `moat status` trust that lock, not a pid file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "moat/broker.h"
#include "moat/fsutil.h"
#include "moat/log.h"
#include "moat/server.h"
#include "moat/supervise.h"
#include "moat/timeutil.h"

#define UP_DEFAULT_TIMEOUT_S 30
#define PROBE_TIMEOUT_MS 1000
#define STATUS_NOT_RUNNING 3 /* as `systemctl status` */

/* What the supervisor needs once the deployment is closed again. */
struct up_ctx {
	char dir[PATH_MAX];
	char conf[PATH_MAX];
	char cafile[PATH_MAX];
	char bin[PATH_MAX];
	char probe_addr[MOAT_BROKER_ADDR_MAX_LEN];
	char probe_name[MOAT_HOST_MAX_LEN + 1];
	int port;
	int64_t timeout_ms;
	bool plugin;
};

/* Tells the waiting `moat up`: "R" when ready, else "F" and the reason. */
static void notify(int *fd, char what, const char *msg)
{
	if (*fd >= 0) {
		char buf[MOAT_ERR_MSG_MAX + 2];
		int n = snprintf(buf, sizeof(buf), "%c%s", what, msg ? msg : "");
		size_t len = n < 0 ? 1 : ((size_t)n >= sizeof(buf) ? sizeof(buf) - 1 : (size_t)n);
		ssize_t w;
		do {
			w = write(*fd, buf, len);
		} while (w < 0 && errno == EINTR);
		close(*fd);
		*fd = -1;
	}
}

/* Runs in the supervisor process; returns its exit status. */
static int supervise(const struct up_ctx *u, int ready_fd, bool foreground)
{
	struct moat_sup s;
	struct moat_err err = {0};
	char path[PATH_MAX];
	char pidpath[PATH_MAX];
	char mpid[PATH_MAX];
	int lock_fd = -1;
	int status = CLI_FAIL;
	bool sup_ok = false;

	moat_log_init("moat-supervise", MOAT_LOG_INFO, false);
	if (moat_path_join(path, sizeof(path), &err, "%s/%s", u->dir, MOAT_BROKER_SUP_LOCK_FILE) !=
		    0 ||
	    moat_path_join(pidpath, sizeof(pidpath), &err, "%s/%s", u->dir,
			   MOAT_BROKER_SUP_PID_FILE) != 0 ||
	    moat_path_join(mpid, sizeof(mpid), &err, "%s/%s", u->dir, MOAT_BROKER_PID_FILE) != 0) {
		goto out;
	}
	lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (lock_fd < 0) {
		moat_err_errno(&err, MOAT_EIO, errno, "%s", path);
		goto out;
	}
	if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
		moat_err_set(&err, MOAT_ESTATE, "the broker is already running (see moat status)");
		goto out;
	}
	char text[32];
	int n = snprintf(text, sizeof(text), "%d\n", (int)getpid());
	if (moat_fs_write_atomic(pidpath, text, (size_t)n, 0644, &err) != 0 ||
	    moat_sup_init(&s, &err) != 0) {
		goto out;
	}
	sup_ok = true;
	char *const args[] = {(char *)u->bin, "-c", (char *)u->conf, NULL};
	if (moat_sup_add(&s, "mosquitto", args, mpid, &err) != 0 ||
	    moat_server_sup_add(&s, u->dir, &err) != 0 || moat_sup_start(&s, &err) != 0) {
		goto out;
	}
	bool ready = false;
	int64_t deadline = moat_time_mono_ms() + u->timeout_ms;
	for (;;) {
		int r = moat_sup_poll(&s, ready ? -1 : 250, &err);
		if (r < 0) {
			goto out;
		}
		if (r == MOAT_SUP_STOPPED) {
			status = ready ? CLI_OK : CLI_FAIL;
			if (!ready) {
				moat_err_set(&err, MOAT_EINTR,
					     "stopped before the broker was ready");
			}
			break;
		}
		if (ready) {
			continue;
		}
		if (s.children[0].deaths > 0) {
			moat_err_set(&err, MOAT_EIO,
				     "mosquitto exited while starting (status %d); see %s/%s",
				     s.children[0].last_status, u->dir, MOAT_BROKER_LOG_FILE);
			goto out;
		}
		struct moat_err perr = {0};
		if (moat_broker_probe(u->probe_addr, u->port, u->cafile, u->probe_name,
				      PROBE_TIMEOUT_MS, &perr) == 0) {
			ready = true;
			moat_log(MOAT_LOG_INFO, "event=ready address=%s port=%d pid=%d",
				 u->probe_addr, u->port, (int)s.children[0].pid);
			notify(&ready_fd, 'R', NULL);
			if (foreground) {
				printf("broker ready on %s:%d (mosquitto pid %d); Ctrl-C stops it\n",
				       u->probe_addr, u->port, (int)s.children[0].pid);
				fflush(stdout);
			}
		} else if (perr.code == MOAT_EVERIFY || moat_time_mono_ms() > deadline) {
			err = perr;
			moat_err_prefix(&err, "the broker did not become ready");
			goto out;
		}
	}
out:
	if (status != CLI_OK) {
		moat_log(MOAT_LOG_ERROR, "event=failed error=\"%s\"", err.msg);
		if (foreground || ready_fd < 0) {
			fprintf(stderr, "moat: %s\n", err.msg);
		}
	}
	notify(&ready_fd, 'F', err.msg);
	if (sup_ok) {
		moat_sup_free(&s);
	}
	if (lock_fd >= 0) {
		if (status == CLI_OK || err.code != MOAT_ESTATE) {
			unlink(pidpath);
		}
		close(lock_fd);
	}
	return status;
}

/* The last non-empty line of a log, to say why a start failed. */
static void last_line(const char *path, char *buf, size_t size)
{
	char *text = NULL;
	size_t len = 0;
	buf[0] = '\0';
	if (moat_fs_read_all(path, MOAT_FILE_MAX_BYTES, &text, &len, NULL) != 0) {
		return;
	}
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) {
		text[--len] = '\0';
	}
	char *nl = strrchr(text, '\n');
	snprintf(buf, size, "%s", nl ? nl + 1 : text);
	free(text);
}

static int daemonize(const struct up_ctx *u)
{
	int fds[2];
	char logpath[PATH_MAX];
	struct moat_err err = {0};

	if (moat_path_join(logpath, sizeof(logpath), &err, "%s/log/supervisor.log", u->dir) != 0) {
		return cli_fail(&err);
	}
	if (pipe2(fds, O_CLOEXEC) != 0) {
		moat_err_errno(&err, MOAT_EIO, errno, "pipe");
		return cli_fail(&err);
	}
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		moat_err_errno(&err, MOAT_EIO, errno, "fork");
		close(fds[0]);
		close(fds[1]);
		return cli_fail(&err);
	}
	if (pid == 0) {
		close(fds[0]);
		setsid();
		int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
		int lg = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (in < 0 || lg < 0 || dup2(in, STDIN_FILENO) < 0 || dup2(lg, STDOUT_FILENO) < 0 ||
		    dup2(lg, STDERR_FILENO) < 0) {
			_exit(CLI_FAIL);
		}
		close(in);
		close(lg);
		_exit(supervise(u, fds[1], false));
	}
	close(fds[1]);
	char msg[MOAT_ERR_MSG_MAX + 2];
	size_t got = 0;
	struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
	int n = 1;
	int64_t deadline = moat_time_mono_ms() + u->timeout_ms + 5000;
	/* Read until the supervisor closes its end (it writes once, then closes). */
	while (got < sizeof(msg) - 1) {
		int64_t left = deadline - moat_time_mono_ms();
		n = left > 0 ? poll(&pfd, 1, (int)left) : 0;
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		ssize_t r = read(fds[0], msg + got, sizeof(msg) - 1 - got);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			break;
		}
		got += (size_t)r;
	}
	msg[got] = '\0';
	close(fds[0]);
	if (got > 0 && msg[0] == 'R') {
		struct moat_broker_state st;
		if (moat_broker_state(u->dir, &st, &err) != 0) {
			st.mosquitto_pid = 0;
		}
		if (cli_globals.json) {
			printf("{\"running\":true,\"supervisor_pid\":%d,\"mosquitto_pid\":%d,"
			       "\"address\":\"%s\",\"port\":%d,\"mode\":\"%s\"}\n",
			       (int)pid, (int)st.mosquitto_pid, u->probe_addr, u->port,
			       u->plugin ? "plugin" : "acl-file");
		} else {
			printf("broker up on %s:%d (%s; supervisor pid %d, mosquitto pid %d)\n",
			       u->probe_addr, u->port, u->plugin ? "plugin" : "ACL file, no plugin",
			       (int)pid, (int)st.mosquitto_pid);
		}
		return CLI_OK;
	}
	if (got == 0) {
		kill(pid, SIGTERM); /* it never said anything: do not leave it behind */
	}
	/* Mosquitto's own last word usually names the cause (a file it cannot read...). */
	char line[300];
	char mlog[PATH_MAX];
	line[0] = '\0';
	if (moat_path_join(mlog, sizeof(mlog), NULL, "%s/%s", u->dir, MOAT_BROKER_LOG_FILE) == 0) {
		last_line(mlog, line, sizeof(line));
	}
	moat_err_set(&err, MOAT_EIO, "the broker did not start: %s%s%s (see %s)",
		     got > 1 ? msg + 1 : "no reason given", line[0] ? "; mosquitto: " : "", line,
		     logpath);
	return cli_fail(&err);
}

static int up_usage(FILE *out, int rc)
{
	fputs("usage: moat up [--foreground] [--no-plugin] [--timeout SECONDS] [--json]\n"
	      "Regenerates the broker's files (as moat broker config) and starts Mosquitto under\n"
	      "a supervisor that restarts it if it dies; returns once the broker completes a TLS\n"
	      "handshake verified against the deployment CA. --foreground stays attached (Ctrl-C\n"
	      "stops it). $MOAT_MOSQUITTO overrides /usr/sbin/mosquitto.\n",
	      out);
	return rc;
}

int up_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"foreground", no_argument, NULL, 'f'},
		{"no-plugin", no_argument, NULL, 'n'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		CLI_GLOBAL_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	struct moat_err err = {0};
	struct up_ctx u;
	bool foreground = false;
	bool no_plugin = false;
	int64_t timeout_s = UP_DEFAULT_TIMEOUT_S;
	int c;

	memset(&u, 0, sizeof(u));
	optind = 1;
	while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		if (cli_global_opt(c, optarg)) {
			continue;
		}
		switch (c) {
		case 'f':
			foreground = true;
			break;
		case 'n':
			no_plugin = true;
			break;
		case 't':
			if (moat_duration_parse(optarg, 1, &timeout_s, &err) != 0 ||
			    timeout_s < 1 || timeout_s > 3600) {
				return cli_usage_error("--timeout: '%s': expected 1..3600 seconds",
						       optarg);
			}
			break;
		case 'h':
			return up_usage(stdout, CLI_OK);
		default:
			return up_usage(stderr, CLI_USAGE);
		}
	}
	if (optind != argc) {
		return up_usage(stderr, CLI_USAGE);
	}
	u.timeout_ms = timeout_s * 1000;

	struct moat_deploy *d = NULL;
	struct moat_broker_settings s;
	char plugin[PATH_MAX];
	const char *addr = NULL;
	const char *name = NULL;
	if (cli_open(MOAT_DEPLOY_WRITE, &d, &err) != 0) {
		return cli_fail(&err);
	}
	struct moat_broker_state st;
	if (moat_broker_state(moat_deploy_dir(d), &st, &err) != 0 ||
	    (st.running && moat_err_set(&err, MOAT_ESTATE,
					"the broker is already running (supervisor pid %d); "
					"moat down stops it",
					(int)st.supervisor_pid) != 0) ||
	    moat_broker_configure(d, no_plugin, &s, plugin, sizeof(plugin), &err) != 0 ||
	    moat_path_join(u.dir, sizeof(u.dir), &err, "%s", moat_deploy_dir(d)) != 0 ||
	    moat_deploy_path(d, u.conf, sizeof(u.conf), MOAT_BROKER_CONF_FILE, &err) != 0 ||
	    moat_deploy_path(d, u.cafile, sizeof(u.cafile), "pki/ca.crt", &err) != 0) {
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	moat_broker_probe_target(&s, moat_deploy_settings(d), &addr, &name);
	snprintf(u.probe_addr, sizeof(u.probe_addr), "%s", addr);
	snprintf(u.probe_name, sizeof(u.probe_name), "%s", name);
	u.port = s.port;
	u.plugin = plugin[0] != '\0';
	moat_deploy_close(d); /* releases run/moat.lock before anything is forked */

	const char *bin = getenv(MOAT_BROKER_MOSQUITTO_ENV);
	if (!bin || !bin[0]) {
		bin = MOAT_BROKER_MOSQUITTO_BIN;
	}
	if (access(bin, X_OK) != 0) {
		moat_err_errno(&err, MOAT_ENOENT, errno, "%s (install mosquitto, or set $%s)", bin,
			       MOAT_BROKER_MOSQUITTO_ENV);
		return cli_fail(&err);
	}
	if (moat_path_join(u.bin, sizeof(u.bin), &err, "%s", bin) != 0) {
		return cli_fail(&err);
	}
	if (foreground) {
		return supervise(&u, -1, true);
	}
	return daemonize(&u);
}

static int simple_opts(int argc, char **argv, const char *usage, int64_t *timeout_s)
{
	static const struct option opts[] = {
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		CLI_GLOBAL_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	struct moat_err err = {0};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (cli_global_opt(c, optarg)) {
			continue;
		}
		if (c == 't' && timeout_s) {
			if (moat_duration_parse(optarg, 1, timeout_s, &err) != 0 ||
			    *timeout_s < 1 || *timeout_s > 3600) {
				return cli_usage_error("--timeout: '%s': expected 1..3600 seconds",
						       optarg);
			}
			continue;
		}
		if (c == 'h') {
			fputs(usage, stdout);
			return -1;
		}
		fputs(usage, stderr);
		return CLI_USAGE;
	}
	if (optind != argc) {
		fputs(usage, stderr);
		return CLI_USAGE;
	}
	return CLI_OK;
}

/* True when pid no longer runs (a zombie that nobody reaped yet counts as gone). */
static bool process_gone(pid_t pid)
{
	char path[64];
	char text[512];
	if (kill(pid, 0) != 0) {
		return true;
	}
	/* /proc files have no size, so not moat_fs_read_all */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return true;
	}
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0) {
		return true;
	}
	text[n] = '\0';
	const char *rp = strrchr(text, ')'); /* "pid (comm) S ..." */
	return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

int down_main(int argc, char **argv)
{
	static const char usage[] =
		"usage: moat down [--timeout SECONDS]\n"
		"Stops the broker started by moat up and waits until it is gone.\n";
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	struct moat_broker_state st;
	char dir[PATH_MAX];
	int64_t timeout_s = UP_DEFAULT_TIMEOUT_S;
	bool sent = false;
	int rc = simple_opts(argc, argv, usage, &timeout_s);
	if (rc != CLI_OK) {
		return rc < 0 ? CLI_OK : rc;
	}
	if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0) {
		return cli_fail(&err);
	}
	snprintf(dir, sizeof(dir), "%s", moat_deploy_dir(d));
	moat_deploy_close(d);
	if (moat_broker_signal(dir, SIGTERM, &sent, &err) != 0) {
		return cli_fail(&err);
	}
	if (!sent) {
		printf("broker is not running\n");
		return CLI_OK;
	}
	int64_t deadline = moat_time_mono_ms() + timeout_s * 1000;
	pid_t spid = 0;
	for (;;) {
		if (moat_broker_state(dir, &st, &err) != 0) {
			return cli_fail(&err);
		}
		if (st.running) {
			spid = st.supervisor_pid;
		} else if (spid <= 0 || process_gone(spid)) {
			/* the lock goes a moment before the process: wait for both */
			break;
		}
		if (moat_time_mono_ms() > deadline) {
			moat_err_set(&err, MOAT_ETIMEOUT,
				     "the broker is still running after %lld s (supervisor pid %d)",
				     (long long)timeout_s, (int)st.supervisor_pid);
			return cli_fail(&err);
		}
		usleep(50000);
	}
	printf("broker stopped\n");
	return CLI_OK;
}

int status_main(int argc, char **argv)
{
	static const char usage[] =
		"usage: moat status [--json]\n"
		"Reports whether the broker started by moat up runs and accepts TLS connections.\n"
		"Exit status 0 when it runs, 3 when it does not.\n";
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	struct moat_broker_state st;
	struct moat_broker_settings s;
	char cafile[PATH_MAX];
	char mode[32];
	const char *addr = NULL;
	const char *name = NULL;
	int rc = simple_opts(argc, argv, usage, NULL);
	if (rc != CLI_OK) {
		return rc < 0 ? CLI_OK : rc;
	}
	if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0) {
		return cli_fail(&err);
	}
	if (moat_broker_settings_load(moat_deploy_config(d), moat_deploy_settings(d), &s, &err) !=
		    0 ||
	    moat_broker_state(moat_deploy_dir(d), &st, &err) != 0 ||
	    moat_deploy_path(d, cafile, sizeof(cafile), "pki/ca.crt", &err) != 0) {
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	moat_broker_probe_target(&s, moat_deploy_settings(d), &addr, &name);
	moat_broker_conf_mode(moat_deploy_dir(d), mode, sizeof(mode));
	struct moat_err perr = {0};
	bool tls = st.running &&
		   moat_broker_probe(addr, s.port, cafile, name, PROBE_TIMEOUT_MS, &perr) == 0;
	if (cli_globals.json) {
		printf("{\"running\":%s,\"supervisor_pid\":%d,\"mosquitto_pid\":%d,"
		       "\"address\":\"%s\",\"port\":%d,\"mode\":\"%s\",\"accepting_tls\":%s",
		       st.running ? "true" : "false", (int)st.supervisor_pid, (int)st.mosquitto_pid,
		       addr, s.port, mode, tls ? "true" : "false");
		if (st.running && !tls) {
			printf(",\"probe_error\":");
			cli_json_string(stdout, perr.msg);
		}
		printf("}\n");
	} else if (!st.running) {
		printf("broker: not running (moat up starts it)\n");
	} else {
		printf("broker: running (supervisor pid %d, mosquitto pid %d), mode %s\n",
		       (int)st.supervisor_pid, (int)st.mosquitto_pid, mode[0] ? mode : "unknown");
		if (tls) {
			printf("tls: accepting verified TLS connections on %s:%d\n", addr, s.port);
		} else {
			printf("tls: not accepting on %s:%d: %s\n", addr, s.port, perr.msg);
		}
	}
	moat_deploy_close(d);
	return st.running ? CLI_OK : STATUS_NOT_RUNNING;
}
