/* config.c: `moat config check [--dir D]`: validates moat.conf with the readers moat itself
 * uses (the deployment's core sections, the broker's [broker] and [policy], moatd's [server]
 * and [est], the network policy's [network] and the connection guard's [guard]), so that
 * what it accepts is what moat accepts. Every mistake is printed as "<file>:<line>:
 * <message>" (the line recorded by the one parser, inih's handler); one per section reader. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "moat/broker.h"
#include "moat/config.h"
#include "moat/fsutil.h"
#include "moat/monitor.h"
#include "moat/monitor_export.h"
#include "moat/net.h"
#include "moat/policy.h"
#include "moat/server.h"

static const char usage[] =
	"usage: moat config check [--dir D]\n"
	"Validates the deployment's moat.conf as moat, moatd and the broker read it: an\n"
	"unknown section or key, a bad value or one out of range is printed as\n"
	"<file>:<line>: <message> (exit 1); else \"<file>: ok\" (exit 0). The keys, their\n"
	"types, defaults and ranges are in docs/CONFIGURATION.md.\n";

/* Prints err about cfg with its line; counts it. */
static void report(const struct moat_config *cfg, const struct moat_err *err, size_t *n)
{
	char line[sizeof(err->msg) + PATH_MAX + 32];
	moat_config_error_where(cfg, err->msg[0] ? err->msg : "invalid", line, sizeof(line));
	fprintf(stderr, "%s\n", line);
	(*n)++;
}

/* Runs every reader of moat.conf over cfg; returns how many refused it. */
static size_t check_all(const struct moat_config *cfg)
{
	struct moat_err err = {0};
	size_t n = 0;
	struct moat_deploy_conf conf;
	bool core_ok = moat_deploy_conf_load(cfg, &conf, &err) == 0;
	if (!core_ok) {
		report(cfg, &err, &n);
	}
	struct moat_broker_settings bs;
	if (core_ok && moat_broker_settings_load(cfg, &conf, &bs, &err) != 0) {
		report(cfg, &err, &n);
	}
	struct moat_policy p;
	moat_policy_init(&p);
	if (moat_broker_policy_limits(cfg, &p, &err) != 0) {
		report(cfg, &err, &n);
	}
	moat_policy_free(&p);
	struct moat_httpd_limits hl;
	if (moat_httpd_limits_load(cfg, &hl, &err) != 0) {
		report(cfg, &err, &n);
	}
	char user[MOAT_DEPLOY_USER_BUF_LEN];
	if (moat_deploy_moatd_user(cfg, user, &err) != 0) {
		report(cfg, &err, &n);
	}
	struct moat_est_settings es;
	if (moat_est_settings_load(cfg, &es, &err) != 0) {
		report(cfg, &err, &n);
	}
	struct moat_net_policy np;
	if (moat_net_policy_from_config(cfg, &np, &err) != 0) {
		report(cfg, &err, &n);
	}
	struct moat_export_settings xs;
	if (moat_export_settings_load(cfg, &xs, &err) != 0) {
		report(cfg, &err, &n);
	}
	struct moat_net_guard g;
	if (moat_net_guard_from_config(cfg, &g, &err) != 0) {
		report(cfg, &err, &n);
	}
	struct moat_monitor_settings ms;
	if (moat_monitor_settings_load(cfg, &ms, &err) != 0) {
		report(cfg, &err, &n);
	}
	return n;
}

static int check(int argc, char **argv)
{
	static const struct moat_opt opts[] = {
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	static const struct moat_opts_spec spec = {CLI_OPTS, .usage = usage, .opts = opts,
						   .no_operands = true};
	int next;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	struct moat_err err = {0};
	char dir[PATH_MAX];
	char path[PATH_MAX];
	struct moat_config *cfg = NULL;
	if (moat_deploy_locate(cli_globals.dir, dir, sizeof(dir), &err) != 0 ||
	    moat_path_join(path, sizeof(path), &err, "%s/moat.conf", dir) != 0 ||
	    moat_config_load(path, &cfg, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg); /* the parser's own "<file>:<line>: ..." */
		return CLI_FAIL;
	}
	size_t bad = check_all(cfg);
	if (bad == 0) {
		if (cli_globals.json) {
			printf("{\"file\":");
			cli_json_string(stdout, path);
			printf(",\"ok\":true}\n");
		} else {
			printf("%s: ok\n", path);
		}
	}
	moat_config_free(cfg);
	return bad ? CLI_FAIL : CLI_OK;
}

int config_main(int argc, char **argv)
{
	int st = cli_group_help(argc, argv, usage, true);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	if (strcmp(argv[1], "check") == 0) {
		return check(argc - 1, argv + 1);
	}
	return cli_usage_error("config: unknown subcommand '%s' (see moat config --help)", argv[1]);
}
