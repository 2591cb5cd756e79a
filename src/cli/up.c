/* up.c: `moat up`, `moat down`, `moat status`: the broker as a supervised child.
 *
 * Parsing and printing only. `moat up` has the library regenerate the broker's files and
 * run its supervisor (broker_supervisor.h, src/broker/supervisor.c): attached with
 * --foreground, otherwise detached, returning once the supervisor reports the broker
 * and moatd ready. The supervisor also starts moatd (moat_server_sup_add, through a hook,
 * so the broker module needs no server code) and asks another hook whether moatd accepts
 * (moatd_ready); moat up refuses to start without moatd. `moat down` and `moat status` read the
 * supervisor's lock and pid files through src/broker/control.c. `moat up` installs the connection
 * guard of [guard] (net.h: per-source bounds on the broker and moatd ports) before it starts
 * anything, and `moat down` removes it.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "moat/broker.h"
#include "moat/broker_supervisor.h"
#include "moat/net.h"
#include "moat/server.h"
#include "moat/timeutil.h"

#define UP_DEFAULT_TIMEOUT_S 30
#define STATUS_NOT_RUNNING 3 /* as `systemctl status` */

/* What the supervisor needs to know whether moatd is ready (copied by its fork). */
struct up_ctx {
	struct moat_server_endpoint moatd;
	char log[PATH_MAX]; /* log/moatd.log: its last line says why it stopped */
};
static struct up_ctx up_state;

static int add_moatd(struct moat_sup *s, const char *dir, void *ctx, struct moat_err *err)
{
	(void)ctx;
	return moat_server_sup_add(s, dir, err);
}

/* The last non-empty line of the file at path (its last 1 KiB at most), or "". */
static void last_line(const char *path, char *buf, size_t size)
{
	char tail[1024];
	buf[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		return;
	}
	struct stat st;
	ssize_t n = -1;
	if (fstat(fd, &st) == 0) {
		off_t from = st.st_size > (off_t)sizeof(tail) - 1
				     ? st.st_size - (off_t)sizeof(tail) + 1
				     : 0;
		n = pread(fd, tail, sizeof(tail) - 1, from);
	}
	close(fd);
	if (n <= 0) {
		return;
	}
	while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r')) {
		n--;
	}
	tail[n] = '\0';
	const char *nl = strrchr(tail, '\n');
	const char *line = nl ? nl + 1 : tail;
	size_t len = strnlen(line, size - 1);
	memcpy(buf, line, len);
	buf[len] = '\0';
}

/* hooks.children_ready: moatd accepts a verified TLS handshake (1), not yet (0), or it
 * died while starting or is not our server (negative). */
static int moatd_ready(const struct moat_broker_sup *u, const struct moat_sup *s, void *ctx,
		       struct moat_err *err)
{
	const struct up_ctx *c = ctx;
	(void)u;
	for (size_t i = 0; i < s->count; i++) {
		const struct moat_sup_child *ch = &s->children[i];
		if (strcmp(ch->name, "moatd") != 0) {
			continue;
		}
		if (ch->deaths > 0) {
			char line[256];
			last_line(c->log, line, sizeof(line));
			int st = ch->last_status;
			return moat_err_set(err, MOAT_EIO, "moatd %s %d while starting%s%s",
					    WIFSIGNALED(st) ? "was killed by signal" : "exited",
					    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st),
					    line[0] ? ": " : "", line);
		}
		struct moat_err perr = {0};
		if (ch->pid <= 0 ||
		    moat_server_probe(&c->moatd, MOAT_BROKER_PROBE_TIMEOUT_MS, &perr) == 0) {
			return ch->pid > 0;
		}
		if (perr.code == MOAT_EVERIFY) {
			*err = perr;
			moat_err_prefix(err, "moatd on %s:%d", c->moatd.addr, c->moatd.port);
			return perr.code;
		}
		return 0;
	}
	return moat_err_set(err, MOAT_ESTATE, "moatd is not supervised");
}

static void print_ready(const struct moat_broker_sup *u, pid_t mosquitto_pid, void *arg)
{
	const struct up_ctx *c = arg;
	printf("broker ready on %s:%d (mosquitto pid %d), moatd on %s:%d (pid %d); Ctrl-C stops "
	       "them\n",
	       u->probe.addr, u->probe.port, (int)mosquitto_pid, c->moatd.addr, c->moatd.port,
	       (int)moat_server_pid(u->dir));
	fflush(stdout);
}

static void print_failed(const struct moat_err *err, void *ctx)
{
	(void)ctx;
	fprintf(stderr, "moat: %s\n", err->msg);
}

/* Starts the detached supervisor and says where the broker runs. */
static int start_detached(const struct moat_broker_sup *u)
{
	struct moat_err err = {0};
	struct moat_broker_state st;
	pid_t pid = 0;
	if (moat_broker_sup_start(u, &pid, &err) != 0) {
		return cli_fail(&err);
	}
	if (moat_broker_state(u->dir, &st, &err) != 0) {
		st.mosquitto_pid = 0;
	}
	pid_t moatd_pid = moat_server_pid(u->dir);
	if (cli_globals.json) {
		printf("{\"running\":true,\"supervisor_pid\":%d,\"mosquitto_pid\":%d,"
		       "\"address\":\"%s\",\"port\":%d,\"mode\":\"%s\","
		       "\"moatd\":{\"pid\":%d,\"address\":\"%s\",\"port\":%d}}\n",
		       (int)pid, (int)st.mosquitto_pid, u->probe.addr, u->probe.port,
		       u->plugin ? "plugin" : "acl-file", (int)moatd_pid, up_state.moatd.addr,
		       up_state.moatd.port);
	} else {
		printf("broker up on %s:%d (%s; supervisor pid %d, mosquitto pid %d)\n",
		       u->probe.addr, u->probe.port, u->plugin ? "plugin" : "ACL file, no plugin",
		       (int)pid, (int)st.mosquitto_pid);
		printf("moatd up on %s:%d (pid %d)\n", up_state.moatd.addr, up_state.moatd.port,
		       (int)moatd_pid);
	}
	return CLI_OK;
}

/* Installs the guard as [guard] enabled says: yes fails without it; auto goes on without
 * it when this is not root or nft is missing, and says so. */
static int guard_install(const struct moat_net_guard *g, bool *installed)
{
	struct moat_err err = {0};
	*installed = false;
	if (g->mode == MOAT_NET_GUARD_OFF) {
		return CLI_OK;
	}
	int rc = geteuid() == 0 ? moat_net_guard_apply(g, &err)
				: moat_err_set(&err, MOAT_ESTATE, "needs root");
	if (rc != 0) {
		moat_err_prefix(&err, "guard (table inet %s%u)", MOAT_NET_GUARD_TABLE_PREFIX,
				(unsigned)g->broker_port);
		if (g->mode == MOAT_NET_GUARD_ON) {
			return cli_fail(&err);
		}
		fprintf(stderr, "moat: %s; going on without it ([guard] enabled = auto)\n",
			err.msg);
		return CLI_OK;
	}
	*installed = true;
	if (!cli_globals.json) {
		printf("guard: table inet %s%u: per source %u broker and %u moatd connections, %u "
		       "new/s\n",
		       MOAT_NET_GUARD_TABLE_PREFIX, (unsigned)g->broker_port, g->broker_per_source,
		       g->server_per_source, g->new_per_source);
	}
	return CLI_OK;
}

static void guard_remove(const struct moat_net_guard *g)
{
	struct moat_err err = {0};
	if (g->mode == MOAT_NET_GUARD_OFF || geteuid() != 0) {
		return;
	}
	if (moat_net_guard_remove(g->broker_port, &err) != 0 && g->mode == MOAT_NET_GUARD_ON) {
		fprintf(stderr, "moat: guard: %s\n", err.msg);
	}
}

static const char up_usage[] =
	"usage: moat up [--foreground] [--no-plugin] [--timeout 30s] [--json]\n"
	"Regenerates the broker's files (as moat broker config) and starts Mosquitto and\n"
	"moatd under a supervisor that restarts what dies; returns once both complete a TLS\n"
	"handshake verified against the deployment CA, and fails when either does not (or\n"
	"moatd is not found). --foreground stays attached (Ctrl-C stops it).\n"
	"$MOAT_MOSQUITTO overrides /usr/sbin/mosquitto, $MOAT_MOATD the moatd beside moat.\n"
	"As root it first installs the connection guard of [guard] in moat.conf (nftables\n"
	"table inet moat_guard_PORT). For a service manager, see the systemd units instead\n"
	"(docs/OPERATIONS.md). --timeout: 1s to 1h, with its unit (30s, 2m).\n";

static int parse_timeout(void *dst, const char *value, struct moat_err *err)
{
	return cli_opt_seconds("--timeout", value, 1, 3600, dst, err);
}

int up_main(int argc, char **argv)
{
	struct moat_err err = {0};
	struct moat_broker_sup u;
	bool foreground = false;
	bool no_plugin = false;
	int64_t timeout_s = UP_DEFAULT_TIMEOUT_S;
	const struct moat_opt opts[] = {
		{.name = "foreground", .kind = MOAT_OPT_FLAG, .letter = 'f', .dst = &foreground},
		{.name = "no-plugin", .kind = MOAT_OPT_FLAG, .dst = &no_plugin},
		{.name = "timeout", .kind = MOAT_OPT_FN, .dst = &timeout_s, .fn = parse_timeout},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = up_usage, .opts = opts,
					    .on_error = MOAT_OPTS_ERROR_USAGE, .no_operands = true};
	int next;
	int ost = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (ost != MOAT_OPTS_CONTINUE) {
		return ost;
	}
	/* moat up runs the broker and moatd together, or not at all */
	char moatd[PATH_MAX];
	if (moat_server_moatd_path(moatd, sizeof(moatd), &err) != 0) {
		return cli_fail(&err);
	}
	struct moat_deploy *d = NULL;
	if (cli_open(MOAT_DEPLOY_WRITE, &d, &err) != 0) {
		return cli_fail(&err);
	}
	struct moat_net_guard guard;
	int rc = moat_net_guard_from_config(moat_deploy_config(d), &guard, &err);
	if (rc == 0) {
		rc = moat_broker_sup_prepare(d, no_plugin, timeout_s * 1000, &u, &err);
	}
	if (rc == 0 &&
	    (rc = moat_server_endpoint_get(d, u.probe.verify_name, &up_state.moatd, &err)) == 0) {
		rc = moat_deploy_path(d, up_state.log, sizeof(up_state.log), MOAT_MOATD_LOG_FILE,
				      &err);
	}
	moat_deploy_close(d); /* releases run/moat.lock before anything is forked */
	if (rc != 0) {
		return cli_fail(&err);
	}
	bool guarded = false;
	if ((rc = guard_install(&guard, &guarded)) != CLI_OK) {
		return rc;
	}
	u.hooks = (struct moat_broker_sup_hooks){
		.add_children = add_moatd,
		.children_ready = moatd_ready,
		.ready = print_ready,
		.failed = print_failed,
		.ctx = &up_state,
	};
	if (foreground) {
		rc = moat_broker_sup_run(&u, &err) == 0 ? CLI_OK : CLI_FAIL;
		guard_remove(&guard);
		return rc;
	}
	rc = start_detached(&u);
	if (rc != CLI_OK && guarded) {
		guard_remove(&guard);
	}
	return rc;
}

/* --timeout (where timeout_s is not NULL) and --help: CLI_OK, -1 after --help, or a usage
 * status. */
static int simple_opts(int argc, char **argv, const char *usage, int64_t *timeout_s)
{
	const struct moat_opt opts[] = {
		{.name = "timeout",
		 .kind = MOAT_OPT_FN,
		 .dst = timeout_s,
		 .fn = timeout_s ? parse_timeout : cli_opt_refuse},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = usage, .opts = opts,
					    .on_error = MOAT_OPTS_ERROR_USAGE, .no_operands = true};
	int next;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st == CLI_OK ? -1 : st;
	}
	return CLI_OK;
}

int down_main(int argc, char **argv)
{
	static const char usage[] =
		"usage: moat down [--timeout 30s]\n"
		"Stops the broker started by moat up, waits until it is gone (at most --timeout:\n"
		"1s to 1h, with its unit), and removes the connection guard moat up installed.\n";
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
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
	struct moat_net_guard guard;
	rc = moat_net_guard_from_config(moat_deploy_config(d), &guard, &err);
	moat_deploy_close(d);
	if (rc != 0) {
		return cli_fail(&err);
	}
	if (moat_broker_stop(dir, timeout_s * 1000, &sent, &err) != 0) {
		return cli_fail(&err);
	}
	guard_remove(&guard);
	if (!sent) {
		printf("broker is not running\n");
		return CLI_OK;
	}
	printf("broker stopped\n");
	return CLI_OK;
}

/* moatd as `moat status` sees it. */
struct moatd_status {
	pid_t pid; /* 0: not running */
	struct moat_server_endpoint endpoint;
	bool endpoint_ok;
	bool accepting_tls;
	struct moat_err err; /* why not accepting (or no endpoint) */
};

static void moatd_status(const struct moat_deploy *d, const struct moat_broker_status *bs,
			 struct moatd_status *out)
{
	memset(out, 0, sizeof(*out));
	out->pid = bs->state.running ? moat_server_pid(moat_deploy_dir(d)) : 0;
	out->endpoint_ok = moat_server_endpoint_get(d, bs->endpoint.verify_name, &out->endpoint,
						    &out->err) == 0;
	if (!out->endpoint_ok || out->pid <= 0) {
		if (out->endpoint_ok) {
			moat_err_set(&out->err, MOAT_ESTATE, "not running");
		}
		return;
	}
	out->accepting_tls =
		moat_server_probe(&out->endpoint, MOAT_BROKER_PROBE_TIMEOUT_MS, &out->err) == 0;
}

static const char *crl_word(bool crl_ok, const struct moat_crl_state *crl)
{
	return !crl_ok		  ? "invalid"
	       : crl->stale	  ? "stale"
	       : crl->refresh_due ? "refresh_overdue"
				  : "fresh";
}

/* The schema is documented in docs/OPERATIONS.md ("moat status --json"): fields are only
 * ever added. */
static void status_json(const struct moat_broker_status *bs, const struct moatd_status *m,
			bool crl_ok, const struct moat_crl_state *crl, const char *crl_next,
			const struct moat_err *crl_err, bool healthy)
{
	const struct moat_broker_state *st = &bs->state;
	printf("{\"running\":%s,\"healthy\":%s,\"supervisor_pid\":%d,\"mosquitto_pid\":%d,"
	       "\"address\":\"%s\",\"port\":%d,\"mode\":\"%s\",\"accepting_tls\":%s",
	       st->running ? "true" : "false", healthy ? "true" : "false", (int)st->supervisor_pid,
	       (int)st->mosquitto_pid, bs->endpoint.addr, bs->endpoint.port, bs->mode,
	       bs->accepting_tls ? "true" : "false");
	if (st->running && !bs->accepting_tls) {
		printf(",\"probe_error\":");
		cli_json_string(stdout, bs->probe_err.msg);
	}
	printf(",\"probe_identity\":");
	if (bs->endpoint.identity[0]) {
		cli_json_string(stdout, bs->endpoint.identity);
	} else {
		printf("null");
	}
	printf(",\"moatd\":{\"running\":%s,\"pid\":%d,\"address\":", m->pid > 0 ? "true" : "false",
	       (int)m->pid);
	cli_json_string(stdout, m->endpoint.addr);
	printf(",\"port\":%d,\"accepting_tls\":%s", m->endpoint.port,
	       m->accepting_tls ? "true" : "false");
	if (m->pid > 0 && !m->accepting_tls) {
		printf(",\"probe_error\":");
		cli_json_string(stdout, m->err.msg);
	}
	printf("},\"crl\":{\"state\":\"%s\"", crl_word(crl_ok, crl));
	if (crl_ok) {
		printf(",\"next_update\":\"%s\",\"issuer\":", crl_next);
		cli_json_string(stdout, crl->issuer_cn);
	} else {
		printf(",\"error\":");
		cli_json_string(stdout, crl_err->msg);
	}
	printf("}}\n");
}

static void status_text(const struct moat_broker_status *bs, const struct moatd_status *m)
{
	const struct moat_broker_state *st = &bs->state;
	if (!st->running) {
		printf("broker: not running (moat up starts it)\n");
		printf("moatd: not running (moat up starts it)\n");
		return;
	}
	printf("broker: running (supervisor pid %d, mosquitto pid %d), mode %s\n",
	       (int)st->supervisor_pid, (int)st->mosquitto_pid, bs->mode[0] ? bs->mode : "unknown");
	if (bs->accepting_tls) {
		printf("tls: accepting verified TLS connections on %s:%d\n", bs->endpoint.addr,
		       bs->endpoint.port);
	} else {
		printf("tls: DOWN: not accepting on %s:%d: %s\n", bs->endpoint.addr,
		       bs->endpoint.port, bs->probe_err.msg);
	}
	if (bs->endpoint.identity[0]) {
		printf("probe: as %s\n", bs->endpoint.identity);
	} else {
		printf("probe: without a client identity, so the broker logs it as a failed "
		       "handshake (moat identity add NAME --role service gives it one)\n");
	}
	if (m->pid <= 0) {
		printf("moatd: DOWN: not running (the supervisor restarts it; see log/moatd.log)\n");
	} else if (m->accepting_tls) {
		printf("moatd: running (pid %d), accepting verified TLS connections on %s:%d\n",
		       (int)m->pid, m->endpoint.addr, m->endpoint.port);
	} else {
		printf("moatd: DOWN: running (pid %d) but not accepting on %s:%d: %s\n",
		       (int)m->pid, m->endpoint.addr, m->endpoint.port, m->err.msg);
	}
}

static void crl_text(bool crl_ok, const struct moat_crl_state *crl, const char *crl_next,
		     const struct moat_err *crl_err)
{
	if (!crl_ok) {
		printf("crl: INVALID: %s (every device is refused)\n", crl_err->msg);
	} else if (crl->stale) {
		printf("crl: STALE: the CRL of %s passed its nextUpdate %s: every device it "
		       "covers is refused (moatd re-signs it; single-tier: moat cert crl)\n",
		       crl->issuer_cn, crl_next);
	} else if (crl->refresh_due) {
		printf("crl: the CRL of %s is past half its validity and ends %s: moatd "
		       "should have re-signed it (single-tier: moat cert crl)\n",
		       crl->issuer_cn, crl_next);
	} else {
		printf("crl: fresh until %s\n", crl_next);
	}
}

int status_main(int argc, char **argv)
{
	static const char usage[] =
		"usage: moat status [--json]\n"
		"Reports what moat up supervises: whether the broker runs and accepts verified\n"
		"TLS connections, whether moatd runs and accepts them, and whether the CRL is\n"
		"fresh. Exit status 0 when all of it is up, 3 when nothing runs (as systemctl\n"
		"status), 1 when something is down (the broker or moatd not running or not\n"
		"accepting) or the CRL is stale or invalid (every device it covers is refused).\n"
		"--json prints one object (docs/OPERATIONS.md has its fields).\n";
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	struct moat_broker_status bs;
	struct moatd_status m;
	int rc = simple_opts(argc, argv, usage, NULL);
	if (rc != CLI_OK) {
		return rc < 0 ? CLI_OK : rc;
	}
	if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0) {
		return cli_fail(&err);
	}
	struct moat_crl_state crl;
	struct moat_err crl_err = {0};
	rc = moat_broker_status(d, &bs, &err);
	if (rc == 0) {
		moatd_status(d, &bs, &m);
	}
	int64_t now = moat_time_now();
	/* a CRL that does not verify is reported, not fatal: the broker's state still is */
	bool crl_ok = moat_deploy_crl_state(d, now, &crl, &crl_err) == 0;
	moat_deploy_close(d);
	if (rc != 0) {
		return cli_fail(&err);
	}
	char crl_next[MOAT_TIME_ISO_LEN] = "";
	if (crl_ok) {
		moat_time_iso(crl.next_update, crl_next);
	}
	const struct moat_broker_state *st = &bs.state;
	bool up = st->running && st->mosquitto_pid > 0 && bs.accepting_tls && m.accepting_tls;
	/* running with a CRL that refuses everyone is not healthy */
	bool healthy = up && crl_ok && !crl.stale;
	if (cli_globals.json) {
		status_json(&bs, &m, crl_ok, &crl, crl_next, &crl_err, healthy);
	} else {
		status_text(&bs, &m);
		crl_text(crl_ok, &crl, crl_next, &crl_err);
	}
	if (!st->running) {
		return STATUS_NOT_RUNNING;
	}
	return healthy ? CLI_OK : CLI_FAIL;
}
