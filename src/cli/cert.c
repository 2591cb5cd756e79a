/* cert.c: `moat cert expiring` (every certificate, and the CRL, that expires within a window;
 * exit 1 when there is any, so cron and monitoring can use it), `moat cert crl` (sign a
 * fresh CRL before the current one's nextUpdate) and `moat cert server` (reissue the
 * broker's and moatd's certificate, adding host names). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cli.h"
#include "moat/broker.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"

struct expiring_ctx {
	int64_t now;
	int64_t limit;
	bool json;
	size_t n;
};

static void report(struct expiring_ctx *c, const char *kind, const char *name, const char *serial,
		   int64_t not_after)
{
	char na[MOAT_TIME_ISO_LEN];
	moat_time_iso(not_after, na);
	int64_t days = (not_after - c->now) / 86400;
	if (c->json) {
		printf("%s{\"kind\":\"%s\",\"name\":", c->n ? ",\n " : "", kind);
		cli_json_string(stdout, name);
		printf(",\"serial\":\"%s\",\"not_after\":\"%s\",\"days_left\":%lld,\"expired\":%s}",
		       serial, na, (long long)days, not_after <= c->now ? "true" : "false");
	} else if (not_after <= c->now) {
		printf("%-8s %-32s %s  EXPIRED\n", kind, name, na);
	} else if (days == 0) {
		printf("%-8s %-32s %s  in less than a day\n", kind, name, na);
	} else {
		printf("%-8s %-32s %s  in %lld %s\n", kind, name, na, (long long)days,
		       cli_plural(days, "day", "days"));
	}
	c->n++;
}

static int check_file(struct expiring_ctx *c, struct moat_deploy *d, const char *kind,
		      const char *rel, struct moat_err *err)
{
	char p[PATH_MAX];
	struct moat_cert_info info;
	int rc;
	if ((rc = moat_deploy_path(d, p, sizeof(p), rel, err)) != 0 ||
	    (rc = moat_cert_info_file(p, &info, err)) != 0) {
		return rc;
	}
	if (info.not_after <= c->limit) {
		report(c, kind, info.cn, info.serial_hex, info.not_after);
	}
	return 0;
}

static int check_identity(const struct moat_identity *id, void *ctx)
{
	struct expiring_ctx *c = ctx;
	if (id->status != MOAT_ID_ACTIVE || id->cert_revoked || !id->serial_hex[0]) {
		/* a revoked certificate is not going to be renewed by expiry; a device that
		 * has not enrolled yet has none */
		return 0;
	}
	if (id->not_after <= c->limit) {
		report(c, moat_role_name(id->role), id->id, id->serial_hex, id->not_after);
	}
	return 0;
}

/* The CRL is listed when it is stale, or when half its validity has passed without a
 * re-signing (moatd does it then; in a single-tier deployment, moat cert crl). */
static int check_crl(struct expiring_ctx *c, struct moat_deploy *d, struct moat_err *err)
{
	struct moat_crl_state st;
	int rc = moat_deploy_crl_state(d, c->now, &st, err);
	if (rc != 0) {
		return rc;
	}
	if (st.stale || st.refresh_due) {
		char name[320];
		snprintf(name, sizeof(name), "pki/crl.pem of %s (%s)", st.issuer_cn,
			 st.stale ? "STALE: devices are refused" : "overdue for re-signing");
		report(c, "crl", name, "", st.next_update);
	}
	return 0;
}

static int parse_within(void *dst, const char *value, struct moat_err *err)
{
	if (moat_duration_parse(value, 86400, dst, err) != 0) {
		moat_err_prefix(err, "--within");
		return MOAT_EINVAL;
	}
	return 0;
}

static int expiring(int argc, char **argv)
{
	struct moat_err err = {0};
	int64_t within = 30 * 86400;
	const struct moat_opt opts[] = {
		{.name = "within", .kind = MOAT_OPT_FN, .dst = &within, .fn = parse_within},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {
		CLI_OPTS,
		.usage = "usage: moat cert expiring [--within 30d] [--json]\n"
			 "Lists the root CA, issuing CA, server and identity certificates and the\n"
			 "CRL that expire within the window (default 30 days; a bare number is\n"
			 "days). The CRL is listed when it is stale or past half its validity\n"
			 "without a re-signing. Exit status 1 when there is any, 0 when there is\n"
			 "none.\n",
		.opts = opts, .no_operands = true};
	int next;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	struct moat_deploy *d = NULL;
	if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0) {
		return cli_fail(&err);
	}
	struct expiring_ctx ctx = {.now = moat_time_now(), .json = cli_globals.json};
	ctx.limit = ctx.now + within;
	if (ctx.json) {
		printf("[");
	}
	int rc;
	if ((rc = check_file(&ctx, d, "ca", "pki/ca.crt", &err)) != 0 ||
	    (moat_deploy_has_issuer(d) &&
	     (rc = check_file(&ctx, d, "issuer", MOAT_ISSUER_CERT_FILE, &err)) != 0) ||
	    (rc = check_file(&ctx, d, "server", "pki/server.crt", &err)) != 0 ||
	    (rc = check_crl(&ctx, d, &err)) != 0 ||
	    (rc = moat_registry_identity_foreach(moat_deploy_registry(d), -1, check_identity, &ctx,
						 &err)) != 0) {
		if (ctx.json) {
			printf("]\n");
		}
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	if (ctx.json) {
		printf("]\n");
	} else if (ctx.n == 0) {
		char words[64];
		printf("nothing expires within %s\n",
		       cli_duration_words(within, words, sizeof(words)));
	}
	moat_deploy_close(d);
	return ctx.n ? CLI_FAIL : CLI_OK;
}

static int crl(int argc, char **argv)
{
	static const struct moat_opt opts[] = {
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	static const struct moat_opts_spec spec = {
		CLI_OPTS,
		.usage =
			"usage: moat cert crl [--json]\nSigns a fresh pki/crl.pem (run it well before "
			"the current CRL's nextUpdate; moat cert expiring shows when).\n"
			"--json: {crl, issuer, next_update}.\n",
		.opts = opts, .no_operands = true};
	struct moat_err err = {0};
	int next;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	struct moat_deploy *d = NULL;
	int rc;
	if ((rc = cli_open_unlocked(&d, &err)) != 0) {
		return cli_fail(&err);
	}
	if ((rc = moat_registry_begin(moat_deploy_registry(d), &err)) != 0 ||
	    (rc = moat_deploy_write_crl(d, &err)) != 0 ||
	    (rc = moat_registry_commit(moat_deploy_registry(d), &err)) != 0 ||
	    (rc = moat_broker_sync(d, &err)) != 0) {
		moat_registry_rollback(moat_deploy_registry(d));
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	struct moat_crl_state cs;
	if ((rc = moat_deploy_crl_state(d, moat_time_now(), &cs, &err)) != 0) {
		moat_err_prefix(&err, "pki/crl.pem re-signed, but reading it back failed");
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	moat_deploy_close(d);
	char next_update[MOAT_TIME_ISO_LEN];
	moat_time_iso(cs.next_update, next_update);
	if (cli_globals.json) {
		printf("{\"crl\":\"pki/crl.pem\",\"issuer\":");
		cli_json_string(stdout, cs.issuer_cn);
		printf(",\"next_update\":\"%s\"}\n", next_update);
	} else {
		printf("pki/crl.pem re-signed by %s, next update %s\n", cs.issuer_cn, next_update);
	}
	return CLI_OK;
}

/* moat cert server renew [--days N] | moat cert server --add-host NAME... [--days N] */
static int server(int argc, char **argv)
{
	static const char usage[] =
		"usage: moat cert server renew [--days N] [--json]\n"
		"       moat cert server --add-host NAME [--add-host NAME]... [--days N] [--json]\n"
		"Reissues pki/server.crt with a new key (pki/server.key), the certificate the\n"
		"broker and moatd present, for every name and address of moat.conf's [broker]\n"
		"hosts; --add-host adds names or addresses there first. Valid for [pki]\n"
		"server_days (default 825) or --days N. A running broker (moat up) reloads it at\n"
		"once, without dropping its clients, and moatd restarts its HTTPS listener with it.\n";
	const char *hosts[MOAT_HOSTS_MAX];
	struct moat_opt_list add = {.items = hosts, .max = MOAT_HOSTS_MAX};
	int64_t days = 0;
	const struct moat_opt opts[] = {
		{.name = "add-host", .kind = MOAT_OPT_LIST, .dst = &add},
		{.name = "days", .kind = MOAT_OPT_INT, .dst = &days, .min = 1, .max = 36500},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = usage, .opts = opts};
	struct moat_err err = {0};
	int next;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	bool renew = next == argc - 1 && strcmp(argv[next], "renew") == 0;
	if (!(renew && add.count == 0) && !(next == argc && add.count > 0)) {
		return moat_opts_usage_error(&spec);
	}
	struct moat_deploy *d = NULL;
	struct moat_server_cert sc;
	int rc;
	if ((rc = cli_open_unlocked(&d, &err)) != 0) {
		return cli_fail(&err);
	}
	if ((rc = moat_deploy_server_cert(d, hosts, add.count, days, &sc, &err)) != 0) {
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	/* the broker re-reads its certificate on SIGHUP; moatd restarts its listener */
	if ((rc = moat_broker_sync(d, &err)) != 0) {
		moat_err_prefix(&err, "server certificate reissued, but telling the broker failed");
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	char na[MOAT_TIME_ISO_LEN];
	moat_time_iso(sc.not_after, na);
	const struct moat_deploy_conf *conf = moat_deploy_settings(d);
	bool restart = sc.ip_added && !moat_config_get(moat_deploy_config(d), "broker", "listen");
	if (cli_globals.json) {
		printf("{\"serial\":\"%s\",\"not_after\":\"%s\",\"hosts\":[", sc.serial_hex, na);
		for (size_t i = 0; i < conf->broker_host_count; i++) {
			printf("%s", i ? "," : "");
			cli_json_string(stdout, conf->broker_hosts[i]);
		}
		printf("],\"restart_needed\":%s}\n", restart ? "true" : "false");
		moat_deploy_close(d);
		return CLI_OK;
	}
	printf("server certificate %s valid until %s for", sc.serial_hex, na);
	for (size_t i = 0; i < conf->broker_host_count; i++) {
		printf("%s %s", i ? "," : "", conf->broker_hosts[i]);
	}
	printf("; a running broker and moatd reload it now\n");
	if (restart) {
		printf("note: the broker listens on a new address only after a restart "
		       "(moat down; moat up)\n");
	}
	moat_deploy_close(d);
	return CLI_OK;
}

int cert_main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "expiring") == 0) {
		return expiring(argc - 1, argv + 1);
	}
	if (argc >= 2 && strcmp(argv[1], "crl") == 0) {
		return crl(argc - 1, argv + 1);
	}
	if (argc >= 2 && strcmp(argv[1], "server") == 0) {
		return server(argc - 1, argv + 1);
	}
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: moat cert expiring [--within 30d] [--json]\n       moat cert crl [--json]\n"
		       "       moat cert server renew [--days N]\n"
		       "       moat cert server --add-host NAME [--add-host NAME]... [--days N]\n");
		return CLI_OK;
	}
	return cli_usage_error("usage: moat cert expiring [--within 30d] [--json] | moat cert crl "
			       "| moat cert server renew|--add-host NAME");
}
