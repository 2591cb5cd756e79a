/* audit.c: `moat audit`: the static checks of the deployment (moat/audit.h), printed for
 * people, as JSON, and written as SARIF 2.1.0 and JUnit XML. Exit status: 0 no finding at
 * or above --fail-on, 1 some, 2 the audit itself could not run. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "moat/audit.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"

#define AUDIT_WINDOW_MAX_S (10LL * 366 * 86400)

struct audit_args {
	int64_t window_s;
	enum moat_audit_severity fail_on;
};

static int opt_window(void *dst, const char *value, struct moat_err *err)
{
	struct audit_args *a = dst;
	return cli_opt_seconds("--window", value, 0, AUDIT_WINDOW_MAX_S, &a->window_s, err);
}

/* How long a live probe waits for the security event of a refusal: the plugin writes it at
 * once, a loaded host or a slow disk may need longer; a deployment known to record nothing
 * (a broker without the plugin) need not be waited for. */
#define AUDIT_EVENT_WAIT_MAX_MS (60 * 1000)
static int opt_event_wait(void *dst, const char *value, struct moat_err *err)
{
	int64_t *ms = dst;
	int rc = moat_duration_ms_parse(value, ms, err);
	if (rc != 0) {
		moat_err_prefix(err, "--event-wait");
		return rc;
	}
	if (*ms < 1 || *ms > AUDIT_EVENT_WAIT_MAX_MS) {
		return moat_err_set(err, MOAT_EINVAL, "--event-wait: %s is not within 1ms..60s",
				    value);
	}
	return 0;
}

static int opt_fail_on(void *dst, const char *value, struct moat_err *err)
{
	struct audit_args *a = dst;
	return moat_audit_severity_parse("--fail-on", value, &a->fail_on, err);
}

typedef int (*audit_writer)(FILE *out, const struct moat_audit_result *r, const char *dir,
			    struct moat_err *err);

static int write_sarif(FILE *out, const struct moat_audit_result *r, const char *dir,
		       struct moat_err *err)
{
	return moat_audit_write_sarif(out, r, dir, err);
}

static int write_junit(FILE *out, const struct moat_audit_result *r, const char *dir,
		       struct moat_err *err)
{
	(void)dir;
	return moat_audit_write_junit(out, r, err);
}

/* Writes a report file all or nothing (moat_fs_write_atomic). */
static int write_report(const char *path, audit_writer w, const struct moat_audit_result *r,
			const char *dir, struct moat_err *err)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	if (!mem) {
		return moat_err_set(err, MOAT_ENOMEM, "%s: out of memory", path);
	}
	int rc = w(mem, r, dir, err);
	if (fclose(mem) != 0 && rc == 0) {
		rc = moat_err_set(err, MOAT_ENOMEM, "%s: out of memory", path);
	}
	if (rc == 0) {
		rc = moat_fs_write_atomic(path, buf, len, 0644, err);
	}
	free(buf);
	return rc;
}

static void list_checks(void)
{
	if (cli_globals.json) {
		printf("[");
	}
	for (size_t i = 0; i < moat_audit_static_check_count; i++) {
		const struct moat_audit_check *c = moat_audit_static_checks[i];
		if (cli_globals.json) {
			printf("%s{\"id\":", i ? "," : "");
			cli_json_string(stdout, c->id);
			printf(",\"severity\":\"%s\",\"summary\":",
			       moat_audit_severity_name(c->severity));
			cli_json_string(stdout, c->summary);
			printf(",\"checklist\":");
			cli_json_string(stdout, c->checklist);
			printf(",\"owasp\":");
			cli_json_string(stdout, c->owasp);
			printf("}");
		} else {
			printf("%-28s %-8s %s\n", c->id, moat_audit_severity_name(c->severity),
			       c->summary);
		}
	}
	if (cli_globals.json) {
		printf("]\n");
	}
}

int audit_main(int argc, char **argv)
{
	struct moat_err err = {0};
	struct audit_args args = {.window_s = 30 * 86400, .fail_on = MOAT_AUDIT_HIGH};
	const char *sarif = NULL, *junit = NULL, *netns = NULL;
	bool list = false, no_system = false, live = false, net_only = false;
	int64_t event_wait_ms = 0;
	const struct moat_opt opts[] = {
		{.name = "window", .kind = MOAT_OPT_FN, .dst = &args, .fn = opt_window},
		{.name = "fail-on", .kind = MOAT_OPT_FN, .dst = &args, .fn = opt_fail_on},
		{.name = "sarif", .kind = MOAT_OPT_STRING, .dst = &sarif},
		{.name = "junit", .kind = MOAT_OPT_STRING, .dst = &junit},
		{.name = "list", .kind = MOAT_OPT_FLAG, .dst = &list},
		{.name = "no-system", .kind = MOAT_OPT_FLAG, .dst = &no_system},
		{.name = "live", .kind = MOAT_OPT_FLAG, .dst = &live},
		{.name = "netns", .kind = MOAT_OPT_STRING, .dst = &netns},
		{.name = "net-only", .kind = MOAT_OPT_FLAG, .dst = &net_only},
		{.name = "event-wait",
		 .kind = MOAT_OPT_FN,
		 .dst = &event_wait_ms,
		 .fn = opt_event_wait},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {
		CLI_OPTS,
		.usage =
			"usage: moat audit [--window 30d] [--fail-on high] [--sarif FILE] [--junit FILE]\n"
			"                  [--no-system] [--json]\n"
			"       moat audit --live [--netns NAME [--net-only]] [--fail-on high]\n"
			"                  [--event-wait 3s] [--sarif FILE] [--junit FILE] [--json]\n"
			"       moat audit --list [--json]\n"
			"Checks the deployment: the PKI (CA and certificate expiry, key files, the\n"
			"CRL, weak or shared keys, device keys held here), drift of every file\n"
			"derived from the registry (policy, acl.conf, mosquitto.conf, CRL, release\n"
			"store, the live nftables table), the broker's settings, firmware trust and\n"
			"releases, network isolation and monitoring. Each finding has an id, a\n"
			"severity, the evidence, the fix, and the checklist row and OWASP IoT Top 10\n"
			"item it serves (docs/OPERATIONS.md, \"Auditing a deployment\").\n"
			"--window: certificates and releases expiring within it are findings.\n"
			"--fail-on: the lowest severity that makes the exit status 1 (info, low,\n"
			"medium, high, critical). --sarif/--junit also write SARIF 2.1.0 / JUnit XML.\n"
			"--no-system: only the deployment's files, not this host (nft, the running\n"
			"broker, the clock). --netns NAME (with --live): the network namespace of this\n"
			"host, with an address in a device zone, that [network] is probed from;\n"
			"--net-only: those probes alone, no throwaway identity issued.\n"
			"--event-wait (with --live): how long a refused probe waits for its security\n"
			"event before it FAILs as a refusal nobody recorded (default 3s).\n"
			"Exit status 0 clean, 1 findings at or above --fail-on,\n"
			"2 the audit could not run.\n",
		.opts = opts, .no_operands = true};
	int next;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	if ((netns || net_only || event_wait_ms) && !live) {
		fprintf(stderr,
			"moat: audit: --netns, --net-only and --event-wait go with --live\n");
		return CLI_USAGE;
	}
	if (list) {
		list_checks();
		return CLI_OK;
	}
	struct moat_deploy *d = NULL;
	if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0) {
		cli_fail(&err);
		return CLI_USAGE;
	}
	if (live) {
		/* The live audit opens the deployment itself, for writing, only while it issues
		 * and deletes its identities (the lock is never held during the probes). */
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s", moat_deploy_dir(d));
		moat_deploy_close(d);
		struct moat_audit_result lr;
		moat_audit_result_init(&lr);
		char run[9] = "";
		int lrc = audit_live_run(&lr, run,
					 &(struct audit_live_opts){.netns = netns,
								   .net_only = net_only,
								   .event_wait_ms = event_wait_ms},
					 &err);
		if (lrc == 0 && net_only) {
			fprintf(stderr, "moat: audit --live run %s (network probes only)\n", run);
		} else if (lrc == 0) {
			fprintf(stderr,
				"moat: audit --live run %s (identities audit-%s*, deleted)\n", run,
				run);
		}
		if (lrc == 0 && sarif) {
			lrc = write_report(sarif, write_sarif, &lr, dir, &err);
		}
		if (lrc == 0 && junit) {
			lrc = write_report(junit, write_junit, &lr, dir, &err);
		}
		if (lrc == 0) {
			lrc = cli_globals.json ? moat_audit_write_json(stdout, &lr, &err)
					       : moat_audit_write_text(stdout, &lr, &err);
		}
		int lstatus = moat_audit_count_at_least(&lr, args.fail_on) ? CLI_FAIL : CLI_OK;
		moat_audit_result_free(&lr);
		if (lrc != 0) {
			cli_fail(&err);
			return CLI_USAGE;
		}
		return lstatus;
	}
	struct moat_audit_opts o = {.now = moat_time_now(),
				    .window_s = args.window_s,
				    .system = !no_system};
	struct moat_audit_result r;
	moat_audit_result_init(&r);
	int rc = moat_audit_static(d, &o, &r, &err);
	if (rc == 0 && sarif) {
		rc = write_report(sarif, write_sarif, &r, moat_deploy_dir(d), &err);
	}
	if (rc == 0 && junit) {
		rc = write_report(junit, write_junit, &r, moat_deploy_dir(d), &err);
	}
	if (rc == 0) {
		rc = cli_globals.json ? moat_audit_write_json(stdout, &r, &err)
				      : moat_audit_write_text(stdout, &r, &err);
	}
	moat_deploy_close(d);
	if (rc != 0) {
		moat_audit_result_free(&r);
		cli_fail(&err);
		return CLI_USAGE; /* 2: the audit itself could not run */
	}
	int status = moat_audit_count_at_least(&r, args.fail_on) ? CLI_FAIL : CLI_OK;
	moat_audit_result_free(&r);
	return status;
}
