/* supervisor.c: the writer's side of the supervisor protocol (broker_supervisor.h): the
 * process `moat up` leaves behind to keep the broker running.
 *
 * moat_broker_sup_prepare regenerates the broker's files and gathers what the supervisor
 * needs, so the deployment can be closed before anything is forked. The supervisor takes
 * run/supervise.lock, writes run/supervise.pid, starts Mosquitto (and what the caller's
 * hook adds: moatd) under moat_sup, and probes the broker with a verified TLS handshake
 * until it answers, Mosquitto dies, the deadline passes or a stop is requested; once it is
 * ready, it reloads Mosquitto when pki/crl.pem changes without a reload request (moatd
 * re-signs the CRL as an account that cannot signal the supervisor), and runs
 * moat_broker_sync when state/broker-sync.request changes (moatd disabled or enabled a
 * device: the policy must follow the registry now, and moatd may not write it). Readiness
 * or failure goes through a pipe to the `moat up` that forked it (moat_broker_sup_start),
 * which returns only then; with nobody waiting (moat_broker_sup_run, or after readiness)
 * the caller's hooks hear of it. Never prints: its log lines go through moat_log.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moat/broker_supervisor.h"
#include "moat/fsutil.h"
#include "moat/log.h"
#include "moat/timeutil.h"

#define SUP_POLL_MS 250 /* how often an unready broker is probed */
/* beyond timeout_ms, for the supervisor to answer: a failure is reported only once every
 * child has stopped, which may take MOAT_SUP_STOP_TIMEOUT_MS */
#define SUP_START_GRACE_MS (5000 + MOAT_SUP_STOP_TIMEOUT_MS)
#define SUP_EXIT_FAIL 1		 /* the detached supervisor's exit status on failure */
#define SUP_LOG_LINE_MAX_LEN 300 /* Mosquitto's last log line quoted in an error */
#define SUP_CRL_CHECK_MS 1000	 /* how often a ready broker's pki/crl.pem is looked at */

/* Secrets an operator may have in the environment of `moat up` (the CA key's passphrase, the
 * PKCS#11 PIN moatd may sign with, the firmware key's passphrase, the PKCS#12 export password):
 * Mosquitto, the network-facing third-party process, starts without them. */
static const char *const broker_secret_env[] = {"MOAT_CA_PASSPHRASE", "MOAT_PKCS11_PIN",
						"MOAT_FW_PASSPHRASE", "MOAT_EXPORT_PASSWORD", NULL};

/* What identifies one version of a file (pki/crl.pem, the sync request). */
struct crl_stamp {
	bool present;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

static struct crl_stamp file_stamp(const char *dir, const char *rel)
{
	struct crl_stamp c;
	char path[PATH_MAX];
	struct stat st;
	memset(&c, 0, sizeof(c));
	/* lstat: the request lives in moatd's directory; a link there is looked at, not followed */
	if (moat_path_join(path, sizeof(path), NULL, "%s/%s", dir, rel) == 0 &&
	    lstat(path, &st) == 0) {
		c.present = true;
		c.dev = st.st_dev;
		c.ino = st.st_ino;
		c.size = st.st_size;
		c.mtime = st.st_mtim;
	}
	return c;
}

static struct crl_stamp crl_stamp(const char *dir)
{
	return file_stamp(dir, "pki/crl.pem");
}

static bool crl_changed(const struct crl_stamp *a, const struct crl_stamp *b)
{
	return a->present != b->present || a->dev != b->dev || a->ino != b->ino ||
	       a->size != b->size || a->mtime.tv_sec != b->mtime.tv_sec ||
	       a->mtime.tv_nsec != b->mtime.tv_nsec;
}

/* moatd re-signs pki/crl.pem as its own unprivileged account, which cannot signal this
 * process; Mosquitto reads its crlfile only at start and on SIGHUP. So a CRL that changed
 * without a reload request (moat_broker_sync sends one after the CLI's changes) gets one
 * here. */
static void crl_watch(const struct moat_broker_sup *u, struct moat_sup *s, struct crl_stamp *seen,
		      unsigned *reloads_seen)
{
	struct crl_stamp now = crl_stamp(u->dir);
	bool changed = crl_changed(seen, &now);
	*seen = now;
	if (s->reloads != *reloads_seen) {
		*reloads_seen = s->reloads; /* reloaded already, with this CRL or a newer one */
		return;
	}
	if (changed && s->children[0].pid > 0) {
		moat_log(MOAT_LOG_INFO, "event=crl_changed action=reload pid=%d",
			 (int)s->children[0].pid);
		kill(s->children[0].pid, SIGHUP);
	}
}

/* The broker's log files as the supervisor found them at start, owner and group. */
struct broker_logs {
	char path[2][PATH_MAX];
	bool known[2];
	uid_t uid[2];
	gid_t gid[2];
};

static void broker_logs_stat(const char *dir, struct broker_logs *l)
{
	const char *rel[2] = {MOAT_BROKER_LOG_FILE, MOAT_PLUGIN_EVENTS_FILE_NAME};
	memset(l, 0, sizeof(*l));
	for (int i = 0; i < 2; i++) {
		struct stat st;
		l->known[i] = moat_path_join(l->path[i], sizeof(l->path[i]), NULL, "%s/%s", dir,
					     rel[i]) == 0 &&
			      lstat(l->path[i], &st) == 0 && S_ISREG(st.st_mode);
		if (l->known[i]) {
			l->uid[i] = st.st_uid;
			l->gid[i] = st.st_gid;
		}
	}
}

/* At SIGHUP, before Mosquitto reopens its log and the plugin its events file by name: a
 * file renamed away by log rotation is created again, 0640, owned as it was, for log/ is
 * root's and the broker's user cannot create it (Mosquitto would log to stderr, and moatd
 * would stop seeing TLS refusals). */
static void broker_logs_recreate(void *ctx)
{
	const struct broker_logs *l = ctx;
	for (int i = 0; i < 2; i++) {
		if (!l->known[i]) {
			continue;
		}
		int fd = open(l->path[i],
			      O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
			      0640);
		if (fd < 0) {
			if (errno != EEXIST) {
				moat_log(MOAT_LOG_WARN,
					 "event=log_not_created file=%s error=\"%s\"", l->path[i],
					 strerror(errno));
			}
			continue;
		}
		if (geteuid() == 0 && fchown(fd, l->uid[i], l->gid[i]) != 0) {
			moat_log(MOAT_LOG_WARN, "event=log_not_owned file=%s error=\"%s\"",
				 l->path[i], strerror(errno));
		}
		close(fd);
		moat_log(MOAT_LOG_INFO, "event=log_created file=%s", l->path[i]);
	}
}

/* Whether run/moat.lock is free right now (a probe: taken and released at once). The
 * supervisor must never wait on it: its loop restarts the children. A `moat` command that
 * holds it syncs the broker itself when it is done; the request is looked at again later. */
static bool deploy_lock_free(const char *dir)
{
	char path[PATH_MAX];
	if (moat_path_join(path, sizeof(path), NULL, "%s/run/moat.lock", dir) != 0) {
		return false;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		return errno == ENOENT; /* moat_deploy_open creates it */
	}
	bool free_now = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd); /* releases the probe's lock */
	return free_now;
}

/* state/broker-sync.request changed (moatd disabled or enabled a device): re-derive the
 * broker's files from the registry and reload, as the CLI does after its changes. Only the
 * file's stamp is looked at, never its content. *pending stays set while the deployment's
 * lock is busy. */
static void sync_watch(const struct moat_broker_sup *u, struct crl_stamp *seen, bool *pending,
		       bool *deferred)
{
	struct crl_stamp now = file_stamp(u->dir, MOAT_BROKER_SYNC_REQUEST_FILE);
	if (crl_changed(seen, &now)) {
		*pending = *pending || now.present;
	}
	*seen = now;
	if (!*pending) {
		return;
	}
	if (!deploy_lock_free(u->dir)) {
		if (!*deferred) { /* once per wait, not every second */
			moat_log(MOAT_LOG_INFO,
				 "event=sync_request action=deferred reason=deployment_locked");
			*deferred = true;
		}
		return;
	}
	*pending = false;
	*deferred = false;
	struct moat_deploy *d = NULL;
	struct moat_err err = {0};
	int rc = moat_deploy_open(u->dir, MOAT_DEPLOY_WRITE, &d, &err);
	if (rc == 0) {
		rc = moat_broker_sync(d, &err);
		moat_deploy_close(d);
	}
	if (rc != 0) {
		moat_log(MOAT_LOG_ERROR, "event=sync_request_failed error=\"%s\"", err.msg);
		return;
	}
	moat_log(MOAT_LOG_INFO, "event=sync_request action=synced");
}

int moat_broker_sup_prepare(struct moat_deploy *d, bool force_acl_file, int64_t timeout_ms,
			    struct moat_broker_sup *out, struct moat_err *err)
{
	struct moat_broker_state st;
	struct moat_broker_settings s;
	char plugin[PATH_MAX];
	int rc;

	memset(out, 0, sizeof(*out));
	out->timeout_ms = timeout_ms;
	if ((rc = moat_broker_state(moat_deploy_dir(d), &st, err)) != 0) {
		return rc;
	}
	if (st.running) {
		return moat_err_set(err, MOAT_ESTATE,
				    "the broker is already running (supervisor pid %d); "
				    "moat down stops it",
				    (int)st.supervisor_pid);
	}
	if ((rc = moat_broker_configure(d, force_acl_file, &s, plugin, sizeof(plugin), err)) != 0 ||
	    (rc = moat_path_join(out->dir, sizeof(out->dir), err, "%s", moat_deploy_dir(d))) != 0 ||
	    (rc = moat_deploy_path(d, out->conf, sizeof(out->conf), MOAT_BROKER_CONF_FILE, err)) !=
		    0 ||
	    (rc = moat_broker_endpoint_get(d, &s, &out->probe, err)) != 0) {
		return rc;
	}
	out->plugin = plugin[0] != '\0';

	const char *bin = getenv(MOAT_BROKER_MOSQUITTO_ENV);
	if (!bin || !bin[0]) {
		bin = MOAT_BROKER_MOSQUITTO_BIN;
	}
	if (access(bin, X_OK) != 0) {
		return moat_err_errno(err, MOAT_ENOENT, errno, "%s (install mosquitto, or set $%s)",
				      bin, MOAT_BROKER_MOSQUITTO_ENV);
	}
	return moat_path_join(out->bin, sizeof(out->bin), err, "%s", bin);
}

/* Tells the waiting `moat up`: "R" when ready, else "F" (or "C": a child other than the
 * broker failed) and the reason. */
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

/* Probes the broker until it answers: 1 once it does, 0 not yet, negative when it never
 * will (Mosquitto died, a server that is not ours, the deadline passed). */
static int broker_ready(const struct moat_broker_sup *u, struct moat_sup *s, int64_t deadline,
			struct moat_err *err)
{
	if (s->children[0].deaths > 0) {
		return moat_err_set(err, MOAT_EIO,
				    "mosquitto exited while starting (status %d); see %s/%s",
				    s->children[0].last_status, u->dir, MOAT_BROKER_LOG_FILE);
	}
	struct moat_err perr = {0};
	int prc = moat_broker_probe_endpoint(&u->probe, MOAT_BROKER_PROBE_TIMEOUT_MS, &perr);
	if (prc == 0) {
		moat_log(MOAT_LOG_INFO, "event=ready address=%s port=%d pid=%d probe_as=%s",
			 u->probe.addr, u->probe.port, (int)s->children[0].pid,
			 u->probe.identity[0] ? u->probe.identity : NULL);
		return 1;
	}
	if (perr.code == MOAT_EVERIFY || moat_time_mono_ms() > deadline) {
		if (err) {
			*err = perr;
		}
		moat_err_prefix(err, "the broker did not become ready");
		return prc;
	}
	return 0;
}

/* The other children (hooks.children_ready): 1 ready, 0 not yet, negative failure. */
static int others_ready(const struct moat_broker_sup *u, struct moat_sup *s, int64_t deadline,
			bool *child_failed, struct moat_err *err)
{
	if (!u->hooks.children_ready) {
		return 1;
	}
	int r = u->hooks.children_ready(u, s, u->hooks.ctx, err);
	if (r == 0 && moat_time_mono_ms() > deadline) {
		r = moat_err_set(err, MOAT_ETIMEOUT, "not ready within %lld s",
				 (long long)(u->timeout_ms / 1000));
	}
	*child_failed = r < 0;
	return r;
}

/* Supervises until a stop; probes the broker, then the other children, until they are
 * ready. 0 after a stop that followed readiness. *child_failed: a child other than the
 * broker kept it from being ready. */
static int watch(const struct moat_broker_sup *u, struct moat_sup *s, int *ready_fd,
		 bool *child_failed, struct moat_err *err)
{
	bool ready = false;
	bool broker_up = false;
	int64_t deadline = moat_time_mono_ms() + u->timeout_ms;
	if (!u->probe.identity[0]) {
		/* the deployment has no service or operator identity to probe with: each probe
		 * is an anonymous handshake, which the broker records as a failed one */
		moat_log(MOAT_LOG_WARN, "event=probe_without_identity hint=%s",
			 "moat identity add NAME --role service gives the probe one");
	}
	struct crl_stamp crl = crl_stamp(u->dir);
	/* a request older than this supervisor is answered already: the start synced */
	struct crl_stamp sync_req = file_stamp(u->dir, MOAT_BROKER_SYNC_REQUEST_FILE);
	bool sync_pending = false;
	bool sync_deferred = false;
	unsigned reloads_seen = s->reloads;
	for (;;) {
		int r = moat_sup_poll(s, ready ? SUP_CRL_CHECK_MS : SUP_POLL_MS, err);
		if (r < 0) {
			return r;
		}
		if (r == MOAT_SUP_STOPPED) {
			return ready ? 0
				     : moat_err_set(err, MOAT_EINTR,
						    "stopped before the broker was ready");
		}
		if (ready) {
			sync_watch(u, &sync_req, &sync_pending, &sync_deferred);
			crl_watch(u, s, &crl, &reloads_seen);
			continue;
		}
		/* (a broker that dies while moatd starts fails the start too) */
		r = broker_up && s->children[0].deaths == 0 ? 1 : broker_ready(u, s, deadline, err);
		if (r < 0) {
			return r;
		}
		broker_up = r > 0;
		if (broker_up && (r = others_ready(u, s, deadline, child_failed, err)) < 0) {
			return r;
		}
		if (broker_up && r > 0) {
			ready = true;
			if (*ready_fd < 0 && u->hooks.ready) {
				u->hooks.ready(u, s->children[0].pid, u->hooks.ctx);
			}
			notify(ready_fd, 'R', NULL);
		}
	}
}

/* The supervisor's life in this process; ready_fd is the pipe to a waiting `moat up`, or
 * -1. */
static int supervise(const struct moat_broker_sup *u, int ready_fd, struct moat_err *err)
{
	struct moat_sup s;
	char path[PATH_MAX];
	char pidpath[PATH_MAX];
	char mpid[PATH_MAX];
	char started_conf[PATH_MAX];
	int lock_fd = -1;
	int rc;
	bool locked = false;
	bool sup_ok = false;
	bool child_failed = false;

	moat_log_init("moat-supervise", MOAT_LOG_INFO, false);
	if ((rc = moat_path_join(path, sizeof(path), err, "%s/%s", u->dir,
				 MOAT_BROKER_SUP_LOCK_FILE)) != 0 ||
	    (rc = moat_path_join(pidpath, sizeof(pidpath), err, "%s/%s", u->dir,
				 MOAT_BROKER_SUP_PID_FILE)) != 0 ||
	    (rc = moat_path_join(mpid, sizeof(mpid), err, "%s/%s", u->dir, MOAT_BROKER_PID_FILE)) !=
		    0 ||
	    (rc = moat_path_join(started_conf, sizeof(started_conf), err, "%s/%s", u->dir,
				 MOAT_BROKER_CONF_STARTED_FILE)) != 0) {
		goto out;
	}
	lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (lock_fd < 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", path);
		goto out;
	}
	if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
		rc = moat_err_set(err, MOAT_ESTATE,
				  "the broker is already running (see moat status)");
		goto out;
	}
	locked = true;
	char text[32];
	int n = snprintf(text, sizeof(text), "%d\n", (int)getpid());
	if ((rc = moat_fs_write_atomic(pidpath, text, (size_t)n, 0644, err)) != 0 ||
	    (rc = moat_sup_init(&s, err)) != 0) {
		goto out;
	}
	sup_ok = true;
	struct broker_logs logs;
	broker_logs_stat(u->dir, &logs);
	s.before_reload = broker_logs_recreate;
	s.reload_ctx = &logs;
	/* the detached supervisor's stdio is log/supervisor.log (detached_child) */
	if (moat_path_join(s.log_path, sizeof(s.log_path), NULL, "%s/%s", u->dir,
			   MOAT_BROKER_SUP_LOG_FILE) != 0) {
		s.log_path[0] = '\0';
	}
	char *const args[] = {(char *)u->bin, "-c", (char *)u->conf, NULL};
	if ((rc = moat_sup_add(&s, "mosquitto", args, mpid, err)) != 0 ||
	    (rc = moat_sup_unset_env(&s, "mosquitto", broker_secret_env, err)) != 0 ||
	    (rc = moat_sup_record_at_start(&s, "mosquitto", u->conf, started_conf, err)) != 0 ||
	    (u->hooks.add_children &&
	     (rc = u->hooks.add_children(&s, u->dir, u->hooks.ctx, err)) != 0) ||
	    (rc = moat_sup_start(&s, err)) != 0) {
		goto out;
	}
	rc = watch(u, &s, &ready_fd, &child_failed, err);
out:
	if (rc != 0) {
		moat_log(MOAT_LOG_ERROR, "event=failed error=\"%s\"", err ? err->msg : "");
		if (ready_fd < 0 && u->hooks.failed) {
			u->hooks.failed(err, u->hooks.ctx);
		}
	}
	if (sup_ok) {
		moat_sup_free(&s);
	}
	if (locked) {
		unlink(pidpath); /* a loser of the race for the lock leaves the winner's alone */
	}
	if (lock_fd >= 0) {
		close(lock_fd);
	}
	/* Only now, with every child stopped and the lock released, may a failed `moat up`
	 * return: `moat status` right after it must find nothing running. 'C': another child
	 * failed, so Mosquitto's log is not where the reason is. */
	notify(&ready_fd, child_failed ? 'C' : 'F', err ? err->msg : "");
	return rc;
}

int moat_broker_sup_run(const struct moat_broker_sup *u, struct moat_err *err)
{
	return supervise(u, -1, err);
}

/* The detached supervisor: a new session, stdio on logpath; never returns. */
static void detached_child(const struct moat_broker_sup *u, int ready_fd, const char *logpath)
{
	struct moat_err err = {0};
	setsid();
	int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int lg = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (in < 0 || lg < 0 || dup2(in, STDIN_FILENO) < 0 || dup2(lg, STDOUT_FILENO) < 0 ||
	    dup2(lg, STDERR_FILENO) < 0) {
		_exit(SUP_EXIT_FAIL);
	}
	close(in);
	close(lg);
	_exit(supervise(u, ready_fd, &err) == 0 ? 0 : SUP_EXIT_FAIL);
}

/* Reads the supervisor's one message until it closes its end or the deadline passes;
 * returns its length (0: nothing said). */
static size_t read_report(int fd, int64_t deadline, char *msg, size_t size)
{
	size_t got = 0;
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	while (got < size - 1) {
		int64_t left = deadline - moat_time_mono_ms();
		int n = left > 0 ? poll(&pfd, 1, (int)left) : 0;
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		ssize_t r = read(fd, msg + got, size - 1 - got);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			break;
		}
		got += (size_t)r;
	}
	msg[got] = '\0';
	return got;
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

int moat_broker_sup_start(const struct moat_broker_sup *u, pid_t *out_pid, struct moat_err *err)
{
	int fds[2];
	char logpath[PATH_MAX];
	int rc;

	*out_pid = 0;
	if ((rc = moat_path_join(logpath, sizeof(logpath), err, "%s/%s", u->dir,
				 MOAT_BROKER_SUP_LOG_FILE)) != 0) {
		return rc;
	}
	if (pipe2(fds, O_CLOEXEC) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "pipe");
	}
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "fork");
		close(fds[0]);
		close(fds[1]);
		return rc;
	}
	if (pid == 0) {
		close(fds[0]);
		detached_child(u, fds[1], logpath);
	}
	close(fds[1]);
	char msg[MOAT_ERR_MSG_MAX + 2];
	size_t got = read_report(fds[0], moat_time_mono_ms() + u->timeout_ms + SUP_START_GRACE_MS,
				 msg, sizeof(msg));
	close(fds[0]);
	if (got > 0 && msg[0] == 'R') {
		*out_pid = pid;
		return 0;
	}
	if (got == 0) {
		kill(pid, SIGTERM); /* it never said anything: do not leave it behind */
	}
	/* Mosquitto's own last word usually names the cause (a file it cannot read...). */
	char line[SUP_LOG_LINE_MAX_LEN];
	char mlog[PATH_MAX];
	line[0] = '\0';
	if ((got == 0 || msg[0] != 'C') &&
	    moat_path_join(mlog, sizeof(mlog), NULL, "%s/%s", u->dir, MOAT_BROKER_LOG_FILE) == 0) {
		last_line(mlog, line, sizeof(line));
	}
	return moat_err_set(err, MOAT_EIO, "%s did not start: %s%s%s (see %s)",
			    got > 0 && msg[0] == 'C' ? "the deployment" : "the broker",
			    got > 1 ? msg + 1 : "no reason given", line[0] ? "; mosquitto: " : "",
			    line, logpath);
}
