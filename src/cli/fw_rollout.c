/* fw_rollout.c: `moat fw rollout create|status|pause|resume|abort` (dispatched from fw.c):
 * a published release offered to a group in phases that moatd advances (moat/release.h,
 * src/server/rollouts.c). This file parses options and prints; it decides nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fw_release.h"
#include "moat/codec.h"
#include "moat/fsutil.h"
#include "moat/manifest.h"
#include "moat/release.h"
#include "moat/timeutil.h"

static const char usage[] =
	"usage: moat fw rollout create ENVELOPE --group G --phases 1%,10%,50%,100% --soak 1h\n"
	"                              [--halt-on-failure 5%] [--halt-on-events]\n"
	"                              [--silent-after 1h]\n"
	"       moat fw rollout status [ID] [--json]\n"
	"       moat fw rollout pause|abort ID [--json]\n"
	"       moat fw rollout resume ID [--accept-failures] [--json]\n\n"
	"create: offer the published release ENVELOPE names to the active devices of group G\n"
	"of its type, in phases: each phase takes a further share of the group (a stable,\n"
	"spread choice: devices ranked by a keyed hash); moatd starts the next phase once\n"
	"every device so far confirmed (or failed within --halt-on-failure) and the soak time\n"
	"passed. A device of a started phase that reported nothing for --silent-after\n"
	"(default 1h) is silent: it counts as failed. It halts by itself when reverted +\n"
	"refused + silent devices of a phase exceed\n"
	"--halt-on-failure (default 0%: any), or (--halt-on-events)\n"
	"when devices on the new release raise security events (ACL denials, rate limiting,\n"
	"auth refusals, anomalies such as event_jump) more than those not on it. A device that joins the group later is\n"
	"taken by the running rollout in the phase its rank falls in. pause stops offering\n"
	"and advancing; resume continues a paused rollout (its phase's soak starts again);\n"
	"a halted one only with --accept-failures, which accepts the failures and security\n"
	"events so far: from then on only new ones count toward the halt. abort stops\n"
	"offering for good: devices on trial revert by their own rules, nothing is downgraded.\n";

struct rollout_opts {
	const char *group;
	const char *phases;
	const char *soak;
	const char *silent_after;
	const char *halt_failure;
	bool halt_events;
	bool accept_failures;
};

static int release_of_envelope(const char *path, char sha_hex[MOAT_SHA256_HEX_LEN + 1],
			       struct moat_manifest *m, struct moat_err *err)
{
	char *json = NULL;
	size_t len = 0;
	struct moat_envelope *env = malloc(sizeof(*env));
	if (!env) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	int rc = moat_fs_read_all(path, MOAT_ENVELOPE_MAX_BYTES, &json, &len, err);
	if (rc == 0 && ((rc = moat_envelope_parse(json, len, env, err)) != 0 ||
			(rc = moat_manifest_parse(env->payload, env->payload_len, m, err)) != 0)) {
		moat_err_prefix(err, "%s", path);
	}
	if (rc == 0) {
		moat_hex_encode(m->sha256, sizeof(m->sha256), sha_hex);
	}
	free(env);
	free(json);
	return rc;
}

static void print_row_json(const struct moat_rollout_row *r)
{
	char phases[64];
	moat_rollout_phases_format(r->percent, r->phase_count, phases, sizeof(phases));
	printf("{\"id\":%lld,\"sha256\":\"%s\",\"group\":", (long long)r->id, r->sha256_hex);
	cli_json_string(stdout, r->group);
	printf(",\"state\":\"%s\",\"phase\":%d,\"phases\":\"%s\",\"soak_s\":%lld,"
	       "\"silent_after_s\":%lld,\"halt_on_failure_percent\":%d,\"halt_on_events\":%s,"
	       "\"devices\":%zu,\"resumed_at\":%lld,\"accepted_at\":%lld,\"cause\":",
	       moat_rollout_state_name(r->state), r->phase + 1, phases, (long long)r->soak_s,
	       (long long)r->silent_s, r->halt_failure_pct, r->halt_on_events ? "true" : "false",
	       r->device_count, (long long)r->resumed_at, (long long)r->accepted_at);
	cli_json_string(stdout, r->cause);
	printf("}");
}

static void print_row_text(const struct moat_rollout_row *r, const char *verb)
{
	printf("rollout %lld %s: %s, phase %d of %d, %zu %s%s%s\n", (long long)r->id, verb,
	       moat_rollout_state_name(r->state), r->phase + 1, r->phase_count, r->device_count,
	       cli_plural((long long)r->device_count, "device", "devices"), r->cause[0] ? ": " : "",
	       r->cause);
}

static int cmd_create(int nops, char **ops, const struct rollout_opts *o)
{
	struct moat_err err = {0};
	int pct[MOAT_ROLLOUT_PHASES_MAX];
	int count = 0;
	int64_t soak_s = 0;
	int64_t silent_s = MOAT_ROLLOUT_SILENT_DEFAULT_S;
	int64_t halt = 0; /* without --halt-on-failure: any revert or refusal halts */
	if (nops != 1) {
		return cli_usage_error("fw rollout create: ENVELOPE expected");
	}
	if (!o->group || !o->phases || !o->soak) {
		return cli_usage_error(
			"fw rollout create: --group, --phases and --soak are required");
	}
	if (moat_group_name_check(o->group, &err) != 0 ||
	    moat_rollout_phases_parse(o->phases, pct, &count, &err) != 0 ||
	    cli_opt_seconds("--soak", o->soak, 0, 366LL * 86400, &soak_s, &err) != 0 ||
	    (o->silent_after && cli_opt_seconds("--silent-after", o->silent_after, 1, 366LL * 86400,
						&silent_s, &err) != 0)) {
		return cli_usage_error("fw rollout create: %s", err.msg);
	}
	if (o->halt_failure) {
		size_t l = strlen(o->halt_failure);
		char num[8];
		if (l < 2 || l > 4 || o->halt_failure[l - 1] != '%') {
			return cli_usage_error("fw rollout create: --halt-on-failure: a percentage "
					       "with '%%' (5%%)");
		}
		snprintf(num, sizeof(num), "%.*s", (int)(l - 1), o->halt_failure);
		if (moat_int_parse(num, 0, 100, &halt, &err) != 0) {
			return cli_usage_error("fw rollout create: --halt-on-failure: %s", err.msg);
		}
	}
	char sha[MOAT_SHA256_HEX_LEN + 1];
	struct moat_manifest m;
	struct moat_deploy *d = NULL;
	struct moat_release rel;
	struct moat_rollout_row row;
	int rc = release_of_envelope(ops[0], sha, &m, &err);
	if (rc == 0) {
		rc = cli_open(MOAT_DEPLOY_WRITE, &d, &err);
	}
	if (rc == 0 && moat_registry_release_get(moat_deploy_registry(d), sha, &rel, &err) != 0) {
		rc = moat_err_set(&err, MOAT_ENOENT,
				  "%s: release %s %s is not published (moat fw publish ENVELOPE "
				  "IMAGE --rollout 0 first)",
				  ops[0], m.device_type, m.version);
	}
	if (rc == 0) {
		struct moat_rollout_req req = {
			.sha256_hex = sha,
			.group = o->group,
			.percent = pct,
			.phase_count = count,
			.soak_s = soak_s,
			.silent_s = silent_s,
			.halt_failure_pct = (int)halt,
			.halt_on_events = o->halt_events,
			.now = moat_time_now(),
		};
		rc = moat_rollout_create(moat_deploy_registry(d), &req, &row, &err);
	}
	moat_deploy_close(d);
	if (rc != 0) {
		return cli_fail(&err);
	}
	if (cli_globals.json) {
		print_row_json(&row);
		printf("\n");
	} else {
		printf("rollout %lld: %s %s to group %s, %zu %s in %d phases\n", (long long)row.id,
		       rel.device_type, rel.version, row.group, row.device_count,
		       cli_plural((long long)row.device_count, "device", "devices"),
		       row.phase_count);
	}
	return CLI_OK;
}

static void print_progress(const struct moat_rollout_progress *p, bool first)
{
	const struct moat_rollout_row *r = &p->row;
	if (cli_globals.json) {
		printf("%s{\"rollout\":", first ? "" : ",");
		print_row_json(r);
		printf(",\"device_type\":");
		cli_json_string(stdout, p->release.device_type);
		printf(",\"version\":");
		cli_json_string(stdout, p->release.version);
		printf(",\"progress\":[");
		for (int k = 0; k < r->phase_count; k++) {
			const struct moat_rollout_phase_counts *c = &p->phases[k];
			printf("%s{\"phase\":%d,\"percent\":%d,\"started_at\":%lld,\"devices\":%zu",
			       k ? "," : "", k + 1, r->percent[k], (long long)r->started_at[k],
			       c->devices);
			for (int s = 0; s < MOAT_RD_STATE_COUNT; s++) {
				printf(",\"%s\":%zu",
				       moat_rollout_dev_state_name((enum moat_rollout_dev_state)s),
				       c->by_state[s]);
			}
			printf(",\"accepted\":%zu}", c->accepted);
		}
		printf("]}");
		return;
	}
	printf("rollout %lld: %s %s to group %s: %s, phase %d of %d%s%s\n", (long long)r->id,
	       p->release.device_type, p->release.version, r->group,
	       moat_rollout_state_name(r->state), r->phase + 1, r->phase_count,
	       r->cause[0] ? ": " : "", r->cause);
	printf("  phase  share  devices  offered  downloading  installed  confirmed  reverted  "
	       "refused  silent  accepted\n");
	for (int k = 0; k < r->phase_count; k++) {
		const struct moat_rollout_phase_counts *c = &p->phases[k];
		printf("  %5d  %4d%%  %7zu  %7zu  %11zu  %9zu  %9zu  %8zu  %7zu  %6zu  %8zu%s\n",
		       k + 1, r->percent[k], c->devices, c->by_state[MOAT_RD_OFFERED],
		       c->by_state[MOAT_RD_DOWNLOADING], c->by_state[MOAT_RD_INSTALLED],
		       c->by_state[MOAT_RD_CONFIRMED], c->by_state[MOAT_RD_REVERTED],
		       c->by_state[MOAT_RD_REFUSED], c->by_state[MOAT_RD_SILENT], c->accepted,
		       k == r->phase ? "  <- current" : "");
	}
}

struct status_ctx {
	struct moat_registry *reg;
	int64_t now;
	size_t n;
	struct moat_err *err;
};

static int status_cb(const struct moat_rollout_row *r, void *vctx)
{
	struct status_ctx *c = vctx;
	struct moat_rollout_progress *p = malloc(sizeof(*p));
	if (!p) {
		return moat_err_set(c->err, MOAT_ENOMEM, "out of memory");
	}
	int rc = moat_rollout_progress(c->reg, r->id, c->now, p, c->err);
	if (rc == 0) {
		print_progress(p, c->n == 0);
		c->n++;
	}
	free(p);
	return rc;
}

static int parse_id(const char *what, int nops, char **ops, int64_t *id)
{
	struct moat_err err = {0};
	if (nops != 1) {
		return cli_usage_error("fw rollout %s: ID expected", what);
	}
	if (moat_int_parse(ops[0], 1, INT64_MAX, id, &err) != 0) {
		return cli_usage_error("fw rollout %s: ID: %s", what, err.msg);
	}
	return -1;
}

static int cmd_status(int nops, char **ops)
{
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	int64_t id = 0;
	if (nops > 0) {
		int st = parse_id("status", nops, ops, &id);
		if (st >= 0) {
			return st;
		}
	}
	if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0) {
		return cli_fail(&err);
	}
	struct status_ctx c = {moat_deploy_registry(d), moat_time_now(), 0, &err};
	int rc;
	if (id) {
		struct moat_rollout_row r;
		rc = moat_registry_rollout_get(c.reg, id, &r, &err);
		if (rc == 0) {
			rc = status_cb(&r, &c);
		}
		if (rc == 0 && cli_globals.json) {
			printf("\n");
		}
	} else {
		printf("%s", cli_globals.json ? "[" : "");
		rc = moat_registry_rollout_foreach(c.reg, status_cb, &c, &err);
		printf("%s", cli_globals.json ? "]\n" : "");
		if (rc == 0 && c.n == 0 && !cli_globals.json) {
			printf("no rollouts\n");
		}
	}
	moat_deploy_close(d);
	return rc != 0 ? cli_fail(&err) : CLI_OK;
}

static int cmd_act(const char *what, enum moat_rollout_action action, bool accept, int nops,
		   char **ops)
{
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	int64_t id = 0;
	int st = parse_id(what, nops, ops, &id);
	if (st >= 0) {
		return st;
	}
	struct moat_rollout_row r;
	if (cli_open(MOAT_DEPLOY_WRITE, &d, &err) != 0 ||
	    moat_rollout_act(moat_deploy_registry(d), id, action, accept, moat_time_now(), &r,
			     &err) != 0) {
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	moat_deploy_close(d);
	if (cli_globals.json) {
		print_row_json(&r);
		printf("\n");
	} else {
		print_row_text(&r, action == MOAT_ROLLOUT_PAUSE	   ? "paused"
				   : action == MOAT_ROLLOUT_RESUME ? "resumed"
								   : "aborted");
	}
	return CLI_OK;
}

int fw_rollout_main(int argc, char **argv)
{
	/* argv[0] is "rollout" */
	int st = cli_group_help(argc, argv, usage, true);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	struct rollout_opts o = {0};
	const struct moat_opt opts[] = {
		{.name = "group", .kind = MOAT_OPT_STRING, .dst = &o.group},
		{.name = "phases", .kind = MOAT_OPT_STRING, .dst = &o.phases},
		{.name = "soak", .kind = MOAT_OPT_STRING, .dst = &o.soak},
		{.name = "silent-after", .kind = MOAT_OPT_STRING, .dst = &o.silent_after},
		{.name = "halt-on-failure", .kind = MOAT_OPT_STRING, .dst = &o.halt_failure},
		{.name = "halt-on-events", .kind = MOAT_OPT_FLAG, .dst = &o.halt_events},
		{.name = "accept-failures", .kind = MOAT_OPT_FLAG, .dst = &o.accept_failures},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = usage, .opts = opts};
	int next = 0;
	st = moat_opts_parse(&spec, argc, argv, 2, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	const char *cmd = argv[1];
	int nops = argc - next;
	char **ops = argv + next;
	bool create_opts = o.group || o.phases || o.soak || o.silent_after || o.halt_failure ||
			   o.halt_events;
	if (o.accept_failures && strcmp(cmd, "resume") != 0) {
		return cli_usage_error("fw rollout %s: --accept-failures is an option of resume",
				       cmd);
	}
	if (strcmp(cmd, "create") == 0) {
		return cmd_create(nops, ops, &o);
	}
	if (create_opts) {
		return cli_usage_error(
			"fw rollout %s: --group, --phases, --soak, --silent-after and "
			"--halt-* are "
			"options of create",
			cmd);
	}
	if (strcmp(cmd, "status") == 0) {
		return cmd_status(nops, ops);
	}
	if (strcmp(cmd, "pause") == 0) {
		return cmd_act(cmd, MOAT_ROLLOUT_PAUSE, false, nops, ops);
	}
	if (strcmp(cmd, "resume") == 0) {
		return cmd_act(cmd, MOAT_ROLLOUT_RESUME, o.accept_failures, nops, ops);
	}
	if (strcmp(cmd, "abort") == 0) {
		return cmd_act(cmd, MOAT_ROLLOUT_ABORT, false, nops, ops);
	}
	return cli_usage_error("fw rollout: unknown command '%s' (create, status, pause, resume, "
			       "abort)",
			       cmd);
}
