/* up.c: `moat up`, `moat down`, `moat status`: the broker as a supervised child.
 *
 * Parsing and printing only. `moat up` has the library regenerate the broker's files and
 * run its supervisor (broker_supervisor.h, src/broker/supervisor.c): attached with
 * --foreground, otherwise detached, returning once the supervisor reports the broker
 * ready. The supervisor also starts moatd (moat_server_sup_add, through a hook, so the
 * broker module needs no server code). `moat down` and `moat status` read the supervisor's
 * lock and pid files through src/broker/control.c. `moat up` installs the connection guard
 * of [guard] (net.h: per-source bounds on the broker and moatd ports) before it starts
 * anything, and `moat down` removes it.
 */
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include "moat/broker.h"
#include "moat/broker_supervisor.h"
#include "moat/net.h"
#include "moat/server.h"
#include "moat/timeutil.h"

#define UP_DEFAULT_TIMEOUT_S 30
#define STATUS_NOT_RUNNING 3 /* as `systemctl status` */

static int add_moatd(struct moat_sup *s, const char *dir, void *ctx, struct moat_err *err)
{
	(void)ctx;
	return moat_server_sup_add(s, dir, err);
}

static void print_ready(const struct moat_broker_sup *u, pid_t mosquitto_pid, void *ctx)
{
	(void)ctx;
	printf("broker ready on %s:%d (mosquitto pid %d); Ctrl-C stops it\n", u->probe.addr,
	       u->probe.port, (int)mosquitto_pid);
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
	if (cli_globals.json) {
		printf("{\"running\":true,\"supervisor_pid\":%d,\"mosquitto_pid\":%d,"
		       "\"address\":\"%s\",\"port\":%d,\"mode\":\"%s\"}\n",
		       (int)pid, (int)st.mosquitto_pid, u->probe.addr, u->probe.port,
		       u->plugin ? "plugin" : "acl-file");
	} else {
		printf("broker up on %s:%d (%s; supervisor pid %d, mosquitto pid %d)\n",
		       u->probe.addr, u->probe.port, u->plugin ? "plugin" : "ACL file, no plugin",
		       (int)pid, (int)st.mosquitto_pid);
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
	"usage: moat up [--foreground] [--no-plugin] [--timeout SECONDS] [--json]\n"
	"Regenerates the broker's files (as moat broker config) and starts Mosquitto under\n"
	"a supervisor that restarts it if it dies; returns once the broker completes a TLS\n"
	"handshake verified against the deployment CA. --foreground stays attached (Ctrl-C\n"
	"stops it). $MOAT_MOSQUITTO overrides /usr/sbin/mosquitto. As root it first installs\n"
	"the connection guard of [guard] in moat.conf (nftables table inet moat_guard_PORT).\n";

static int parse_timeout(void *dst, const char *value, struct moat_err *err)
{
	int64_t *timeout_s = dst;
	if (moat_duration_parse(value, 1, timeout_s, err) != 0 || *timeout_s < 1 ||
	    *timeout_s > 3600) {
		return moat_err_set(err, MOAT_EINVAL, "--timeout: '%s': expected 1..3600 seconds",
				    value);
	}
	return 0;
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
	struct moat_deploy *d = NULL;
	if (cli_open(MOAT_DEPLOY_WRITE, &d, &err) != 0) {
		return cli_fail(&err);
	}
	struct moat_net_guard guard;
	int rc = moat_net_guard_from_config(moat_deploy_config(d), &guard, &err);
	if (rc == 0) {
		rc = moat_broker_sup_prepare(d, no_plugin, timeout_s * 1000, &u, &err);
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
		.ready = print_ready,
		.failed = print_failed,
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
		"usage: moat down [--timeout SECONDS]\n"
		"Stops the broker started by moat up, waits until it is gone, and removes the\n"
		"connection guard moat up installed.\n";
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

int status_main(int argc, char **argv)
{
	static const char usage[] =
		"usage: moat status [--json]\n"
		"Reports whether the broker started by moat up runs and accepts TLS connections,\n"
		"and whether the CRL is fresh. Exit status 0 when it runs, 3 when it does not,\n"
		"1 when it runs with a stale or invalid CRL (every device it covers is refused).\n";
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	struct moat_broker_status bs;
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
	const char *crl_word = !crl_ok		 ? "invalid"
			       : crl.stale	 ? "stale"
			       : crl.refresh_due ? "refresh_overdue"
						 : "fresh";
	const struct moat_broker_state *st = &bs.state;
	if (cli_globals.json) {
		printf("{\"running\":%s,\"supervisor_pid\":%d,\"mosquitto_pid\":%d,"
		       "\"address\":\"%s\",\"port\":%d,\"mode\":\"%s\",\"accepting_tls\":%s",
		       st->running ? "true" : "false", (int)st->supervisor_pid,
		       (int)st->mosquitto_pid, bs.endpoint.addr, bs.endpoint.port, bs.mode,
		       bs.accepting_tls ? "true" : "false");
		if (st->running && !bs.accepting_tls) {
			printf(",\"probe_error\":");
			cli_json_string(stdout, bs.probe_err.msg);
		}
		printf(",\"probe_identity\":");
		if (bs.endpoint.identity[0]) {
			cli_json_string(stdout, bs.endpoint.identity);
		} else {
			printf("null");
		}
		printf(",\"crl\":{\"state\":\"%s\"", crl_word);
		if (crl_ok) {
			printf(",\"next_update\":\"%s\",\"issuer\":", crl_next);
			cli_json_string(stdout, crl.issuer_cn);
		} else {
			printf(",\"error\":");
			cli_json_string(stdout, crl_err.msg);
		}
		printf("}}\n");
	} else if (!st->running) {
		printf("broker: not running (moat up starts it)\n");
	} else {
		printf("broker: running (supervisor pid %d, mosquitto pid %d), mode %s\n",
		       (int)st->supervisor_pid, (int)st->mosquitto_pid,
		       bs.mode[0] ? bs.mode : "unknown");
		if (bs.accepting_tls) {
			printf("tls: accepting verified TLS connections on %s:%d\n",
			       bs.endpoint.addr, bs.endpoint.port);
		} else {
			printf("tls: not accepting on %s:%d: %s\n", bs.endpoint.addr,
			       bs.endpoint.port, bs.probe_err.msg);
		}
		if (bs.endpoint.identity[0]) {
			printf("probe: as %s\n", bs.endpoint.identity);
		} else {
			printf("probe: without a client identity, so the broker logs it as a failed "
			       "handshake (moat identity add NAME --role service gives it one)\n");
		}
	}
	if (!cli_globals.json) {
		if (!crl_ok) {
			printf("crl: INVALID: %s (every device is refused)\n", crl_err.msg);
		} else if (crl.stale) {
			printf("crl: STALE: the CRL of %s passed its nextUpdate %s: every device it "
			       "covers is refused (moatd re-signs it; single-tier: moat cert crl)\n",
			       crl.issuer_cn, crl_next);
		} else if (crl.refresh_due) {
			printf("crl: the CRL of %s is past half its validity and ends %s: moatd "
			       "should have re-signed it (single-tier: moat cert crl)\n",
			       crl.issuer_cn, crl_next);
		} else {
			printf("crl: fresh until %s\n", crl_next);
		}
	}
	if (!st->running) {
		return STATUS_NOT_RUNNING;
	}
	/* running with a CRL that refuses everyone is not healthy */
	return crl_ok && !crl.stale ? CLI_OK : CLI_FAIL;
}
