/* dashboard.c: `moat dashboard`: a one-time sign-in link to moatd's dashboard
 * (moat/dashboard.h; docs/DASHBOARD.md). The link holds a random token; the registry keeps
 * only its hash. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "moat/dashboard.h"
#include "moat/registry.h"

#define DASH_LINK_TTL_MAX_S (24 * 3600)
#define DASH_SESSION_TTL_MAX_S (7 * 24 * 3600)

struct dash_opts {
	const char *operator_id;
	const char *host;
	int64_t port;
	int64_t link_s, session_s;
};

static int opt_link_ttl(void *dst, const char *value, struct moat_err *err)
{
	return cli_opt_seconds("--link-ttl", value, 1, DASH_LINK_TTL_MAX_S, dst, err);
}

static int opt_session_ttl(void *dst, const char *value, struct moat_err *err)
{
	return cli_opt_seconds("--session-ttl", value, 1, DASH_SESSION_TTL_MAX_S, dst, err);
}

/* The one active operator, when there is exactly one. */
struct sole {
	char id[MOAT_ID_BUF_LEN];
	int n;
};

static int sole_cb(const struct moat_identity *ident, void *ctx)
{
	struct sole *s = ctx;
	if (ident->status == MOAT_ID_ACTIVE) {
		snprintf(s->id, sizeof(s->id), "%s", ident->id);
		s->n++;
	}
	return 0;
}

int dashboard_main(int argc, char **argv)
{
	static const char usage[] =
		"usage: moat dashboard [--operator ID] [--link-ttl 5m] [--session-ttl 8h]\n"
		"                      [--host HOST] [--port PORT]\n"
		"Prints a one-time sign-in link to moatd's dashboard for operator ID (default: the\n"
		"only active operator). The link works once, within --link-ttl (1s to 1d, default\n"
		"5m), and opens a browser session of --session-ttl (1s to 7d, default 8h). --host and\n"
		"--port default to [client] host and [server] port of moat.conf. --json: {\"url\": ...}\n";
	struct dash_opts o = {
		.port = 0,
		.link_s = MOAT_DASH_LINK_TTL_DEFAULT_S,
		.session_s = MOAT_DASH_SESSION_TTL_DEFAULT_S,
	};
	const struct moat_opt opts[] = {
		{"operator", MOAT_OPT_STRING, 0, &o.operator_id, 0, 0, NULL, NULL},
		{"host", MOAT_OPT_STRING, 0, &o.host, 0, 0, NULL, NULL},
		{"port", MOAT_OPT_INT, 0, &o.port, 1, 65535, NULL, NULL},
		{"link-ttl", MOAT_OPT_FN, 0, &o.link_s, 0, 0, opt_link_ttl, NULL},
		{"session-ttl", MOAT_OPT_FN, 0, &o.session_s, 0, 0, opt_session_ttl, NULL},
		{"help", MOAT_OPT_HELP, 'h', NULL, 0, 0, NULL, NULL},
		{0},
	};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = usage, .opts = opts,
					    .no_operands = true};
	int next = 0;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	struct moat_deploy *d = NULL;
	struct moat_err err = {0};
	if (cli_open(MOAT_DEPLOY_WRITE, &d, &err) != 0) {
		return cli_fail(&err);
	}
	struct moat_registry *reg = moat_deploy_registry(d);
	const struct moat_deploy_conf *conf = moat_deploy_settings(d);
	struct sole sole = {0};
	int rc = 0;
	if (!o.operator_id) {
		rc = moat_registry_identity_foreach(reg, MOAT_ROLE_OPERATOR, sole_cb, &sole, &err);
		if (rc == 0 && sole.n != 1) {
			rc = moat_err_set(&err, MOAT_EINVAL,
					  "%s active operators: name one with --operator ID",
					  sole.n == 0 ? "no" : "several");
		}
		o.operator_id = sole.id;
	}
	char url[MOAT_DASH_URL_MAX];
	if (rc == 0) {
		rc = moat_dash_link_create(reg, o.operator_id, o.host ? o.host : conf->client_host,
					   o.port ? (int)o.port : conf->server_port, o.link_s,
					   o.session_s, url, &err);
	}
	/* run as root: a registry file SQLite just made (its -wal) goes back to moatd's account */
	if (rc == 0) {
		rc = moat_deploy_own(d, MOAT_DEPLOY_OWN_IF_USER, &err);
	}
	moat_deploy_close(d);
	if (rc != 0) {
		return cli_fail(&err);
	}
	if (cli_globals.json) {
		printf("{\"url\":");
		cli_json_string(stdout, url);
		printf(",\"operator\":");
		cli_json_string(stdout, o.operator_id);
		printf("}\n");
	} else {
		printf("%s\n", url);
	}
	return CLI_OK;
}
