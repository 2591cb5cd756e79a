/* job.c: `moat job run COMMAND [--arg k=v]... --group G | --devices a,b,c [--rate 50/s]
 * [--timeout 30s] [--as NAME] [--host H]` and `moat job status [ID]`: one command to many
 * devices over one MQTT session (src/fleet/job.c does the work, moat/job.h its rules).
 * This file resolves the devices, prints progress on a terminal, the summary and the
 * results, and exits by the outcome.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "moat/broker.h"
#include "moat/config.h"
#include "moat/job.h"
#include "moat/messages.h"
#include "moat/policy.h"
#include "moat/release.h"
#include "moat/signals.h"
#include "moat/timeutil.h"

#define JOB_DEVICES_MAX 100000

static const char usage[] =
	"usage: moat job run COMMAND [--arg key=value]... --group G | --devices ID,...\n"
	"                [--rate 50/s] [--timeout 30s] [--as NAME] [--host H] [--json]\n"
	"       moat job status [ID] [--json]\n\n"
	"run: send COMMAND (as moat cmd: reboot, update_interval --arg interval=30s,\n"
	"diagnostics, check_update, or any [a-z0-9_]{1,32}) to every active device of group G,\n"
	"or to the devices listed, over one MQTT session as an operator (default: the first)\n"
	"or service identity. A device whose retained status is not online is \"offline\" and\n"
	"is sent nothing. --rate N/s or N/m paces the commands (default 50/s); a rate above\n"
	"what the broker takes for devices ([policy] job_rate for operators, service_msgs_per_s\n"
	"for services) is refused. --timeout (1s to 1h) is how long each device has to answer. Results per device: done, refused, unknown_command, timeout,\n"
	"offline; recorded in the registry as they come (moat job status).\n"
	"Exit status: 0 every device done; 1 one refused, did not know the command or was\n"
	"offline; 2 one timed out (or the run was interrupted).\n";

static volatile int job_stop;

static void on_signal(int sig)
{
	(void)sig;
	job_stop = 1;
}

struct id_list {
	char **v;
	size_t n, cap;
};

static int id_push(struct id_list *l, const char *id)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			return MOAT_ENOMEM;
		}
		l->v = v;
		l->cap = cap;
	}
	if (l->n >= JOB_DEVICES_MAX || !(l->v[l->n] = strdup(id))) {
		return MOAT_ENOMEM;
	}
	l->n++;
	return 0;
}

static void id_free(struct id_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i]);
	}
	free(l->v);
}

static int member_cb(const struct moat_device_row *row, void *ctx)
{
	return id_push(ctx, row->id);
}

/* The devices of --group or --devices: all active devices of this deployment. */
static int resolve(struct moat_deploy *d, const char *group, const char *devices,
		   struct id_list *out, struct moat_err *err)
{
	struct moat_registry *reg = moat_deploy_registry(d);
	int rc;
	if (group) {
		rc = moat_group_members(reg, group, NULL, moat_time_now(), member_cb, out, err);
		if (rc == MOAT_ENOMEM) {
			return moat_err_set(err, MOAT_ENOMEM, "too many devices or out of memory");
		}
		if (rc == 0 && out->n == 0) {
			return moat_err_set(err, MOAT_EINVAL, "group %s has no active device",
					    group);
		}
		return rc;
	}
	char **ids = NULL;
	size_t n = 0;
	if ((rc = moat_config_split_list(devices, &ids, &n, err)) != 0) {
		moat_err_prefix(err, "--devices");
		return rc;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct moat_identity ident;
		if ((rc = moat_identity_name_check(ids[i], err)) != 0) {
			moat_err_prefix(err, "--devices");
		} else if ((rc = moat_registry_identity_get(reg, ids[i], &ident, err)) != 0) {
			moat_err_prefix(err, "--devices");
		} else if (ident.role != MOAT_ROLE_DEVICE || ident.status != MOAT_ID_ACTIVE) {
			rc = moat_err_set(err, MOAT_EINVAL, "--devices: %s is not an active device",
					  ids[i]);
		} else if (id_push(out, ids[i]) != 0) {
			rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		}
	}
	moat_config_list_free(ids, n);
	return rc;
}

static void progress_cb(const struct moat_job_progress *p, bool final, void *ctx)
{
	(void)ctx;
	if (!isatty(STDERR_FILENO)) {
		return;
	}
	fprintf(stderr,
		"\rjob %lld: sent %zu/%zu  done %zu  refused %zu  unknown %zu  timeout %zu  "
		"offline %zu  pending %zu ",
		(long long)p->job_id, p->sent, p->total, p->counts[MOAT_JOB_DONE],
		p->counts[MOAT_JOB_REFUSED], p->counts[MOAT_JOB_UNKNOWN_COMMAND],
		p->counts[MOAT_JOB_TIMEOUT], p->counts[MOAT_JOB_OFFLINE],
		p->counts[MOAT_JOB_PENDING]);
	if (final) {
		fprintf(stderr, "\n");
	}
}

struct print_ctx {
	size_t n;
	bool all; /* text: every device, else only those not done */
};

static int result_cb(const struct moat_job_result_row *r, void *vctx)
{
	struct print_ctx *c = vctx;
	if (cli_globals.json) {
		printf("%s{\"device\":", c->n ? "," : "");
		cli_json_string(stdout, r->device);
		printf(",\"result\":\"%s\",\"detail\":", moat_job_result_name(r->result));
		cli_json_string(stdout, r->detail);
		printf("}");
	} else if (c->all || r->result != MOAT_JOB_DONE) {
		printf("  %-24s %-16s ", r->device, moat_job_result_name(r->result));
		cli_print_text(stdout, r->detail, strlen(r->detail));
		printf("\n");
	}
	c->n++;
	return 0;
}

static void print_summary(const struct moat_job_row *j)
{
	if (cli_globals.json) {
		printf("\"job\":%lld,\"command\":", (long long)j->id);
		cli_json_string(stdout, j->command);
		printf(",\"target\":");
		cli_json_string(stdout, j->target);
		printf(",\"as\":");
		cli_json_string(stdout, j->as);
		printf(",\"created_at\":%lld,\"finished_at\":%lld,\"devices\":%zu,\"summary\":{",
		       (long long)j->created_at, (long long)j->finished_at, j->devices);
		for (int k = 0; k < MOAT_JOB_RESULT_COUNT; k++) {
			printf("%s\"%s\":%zu", k ? "," : "",
			       moat_job_result_name((enum moat_job_result)k), j->counts[k]);
		}
		printf("}");
		return;
	}
	printf("job %lld: %s to %s as %s: %zu %s, %s\n", (long long)j->id, j->command, j->target,
	       j->as, j->devices, cli_plural((long long)j->devices, "device", "devices"),
	       j->finished_at ? "finished" : "not finished");
	printf("  done %zu  refused %zu  unknown_command %zu  timeout %zu  offline %zu  "
	       "pending %zu\n",
	       j->counts[MOAT_JOB_DONE], j->counts[MOAT_JOB_REFUSED],
	       j->counts[MOAT_JOB_UNKNOWN_COMMAND], j->counts[MOAT_JOB_TIMEOUT],
	       j->counts[MOAT_JOB_OFFLINE], j->counts[MOAT_JOB_PENDING]);
}

/* A job's summary and its results, from the registry. */
static int print_job(struct moat_registry *reg, int64_t id, bool all, bool first,
		     struct moat_err *err)
{
	struct moat_job_row j;
	int rc = moat_registry_job_get(reg, id, &j, err);
	if (rc != 0) {
		return rc;
	}
	struct print_ctx c = {.all = all};
	if (cli_globals.json) {
		printf("%s{", first ? "" : ",");
		print_summary(&j);
		printf(",\"results\":[");
	} else {
		print_summary(&j);
	}
	rc = moat_registry_job_results_foreach(reg, id, result_cb, &c, err);
	if (cli_globals.json) {
		printf("]}");
	}
	return rc;
}

static int cmd_run(int nops, char **ops, const struct cli_arg_list *args, const char *group,
		   const char *devices, const char *rate, int64_t timeout_s, const char *as,
		   const char *host)
{
	struct moat_err err = {0};
	struct moat_msg_command cmd;
	int64_t interval_us = 20000; /* 50/s */
	memset(&cmd, 0, sizeof(cmd));
	if (nops != 1) {
		return cli_usage_error("job run: COMMAND expected");
	}
	if (!group == !devices) {
		return cli_usage_error("job run: one of --group G or --devices ID,... is required");
	}
	if (!moat_msg_command_name_ok(ops[0])) {
		return cli_usage_error("job run: command '%s' is not [a-z0-9_]{1,32}", ops[0]);
	}
	snprintf(cmd.name, sizeof(cmd.name), "%s", ops[0]);
	if ((group && moat_group_name_check(group, &err) != 0) ||
	    (rate && moat_job_rate_parse(rate, &interval_us, &err) != 0) ||
	    cli_command_args(&cmd, args, &err) != 0) {
		return cli_usage_error("job run: %s", err.msg);
	}
	struct moat_deploy *d = NULL;
	struct id_list ids = {0};
	struct moat_policy pol;
	moat_policy_init(&pol);
	int rc = cli_open(MOAT_DEPLOY_WRITE, &d, &err);
	if (rc == 0) {
		rc = resolve(d, group, devices, &ids, &err);
	}
	if (rc == 0) {
		rc = moat_broker_policy_limits(moat_deploy_config(d), &pol, &err);
	}
	if (rc != 0) {
		moat_deploy_close(d);
		id_free(&ids);
		return cli_fail(&err);
	}
	char target[256];
	snprintf(target, sizeof(target), "%s %s", group ? "group" : "devices",
		 group ? group : devices);
	struct moat_job_req req = {
		.cmd = &cmd,
		.devices = ids.v,
		.count = ids.n,
		.target = target,
		.as = as,
		.host = host,
		.interval_us = interval_us,
		.timeout_ms = timeout_s * 1000,
		.stop = &job_stop,
	};
	req.role_ceiling_per_s[MOAT_ROLE_OPERATOR] = pol.job_msgs_per_s;
	req.role_ceiling_per_s[MOAT_ROLE_SERVICE] = pol.limits[MOAT_ROLE_SERVICE].msgs_per_s;
	moat_signals_catch(on_signal, 0);
	struct moat_job_progress prog;
	rc = moat_job_run(d, &req, progress_cb, NULL, &prog, &err);
	int st;
	if (rc != 0 && prog.job_id == 0) {
		st = cli_fail(&err);
	} else {
		if (rc != 0) {
			fprintf(stderr, "moat: job %lld stopped: %s\n", (long long)prog.job_id,
				err.msg);
		}
		struct moat_err perr = {0};
		if (print_job(moat_deploy_registry(d), prog.job_id, false, true, &perr) != 0) {
			st = cli_fail(&perr);
		} else {
			if (cli_globals.json) {
				printf("\n");
			}
			st = rc != 0 ? 2 : moat_job_exit_status(prog.counts);
		}
	}
	moat_policy_free(&pol);
	moat_deploy_close(d);
	id_free(&ids);
	return st;
}

struct list_ctx {
	struct moat_registry *reg;
	size_t n;
	struct moat_err *err;
};

static int list_cb(const struct moat_job_row *j, void *vctx)
{
	struct list_ctx *c = vctx;
	if (cli_globals.json) {
		printf("%s{", c->n ? "," : "");
		print_summary(j);
		printf("}");
	} else {
		print_summary(j);
	}
	c->n++;
	return 0;
}

static int cmd_status(int nops, char **ops)
{
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	int64_t id = 0;
	if (nops > 1) {
		return cli_usage_error("job status: at most one ID");
	}
	if (nops == 1 && moat_int_parse(ops[0], 1, INT64_MAX, &id, &err) != 0) {
		return cli_usage_error("job status: ID: %s", err.msg);
	}
	if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0) {
		return cli_fail(&err);
	}
	struct moat_registry *reg = moat_deploy_registry(d);
	int rc;
	if (id) {
		rc = print_job(reg, id, true, true, &err);
		if (rc == 0 && cli_globals.json) {
			printf("\n");
		}
	} else {
		struct list_ctx c = {reg, 0, &err};
		printf("%s", cli_globals.json ? "[" : "");
		rc = moat_registry_job_foreach(reg, list_cb, &c, &err);
		printf("%s", cli_globals.json ? "]\n" : "");
		if (rc == 0 && c.n == 0 && !cli_globals.json) {
			printf("no jobs\n");
		}
	}
	moat_deploy_close(d);
	return rc != 0 ? cli_fail(&err) : CLI_OK;
}

static int parse_timeout(void *dst, const char *value, struct moat_err *err)
{
	return cli_opt_seconds("--timeout", value, 1, 3600, dst, err);
}

int job_main(int argc, char **argv)
{
	int st = cli_group_help(argc, argv, usage, true);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	struct cli_arg_list args = {.n = 0};
	const char *group = NULL, *devices = NULL, *rate = NULL, *as = NULL, *host = NULL;
	int64_t timeout_s = 30;
	const struct moat_opt opts[] = {
		{.name = "arg", .kind = MOAT_OPT_FN, .dst = &args, .fn = cli_command_add_arg},
		{.name = "group", .kind = MOAT_OPT_STRING, .dst = &group},
		{.name = "devices", .kind = MOAT_OPT_STRING, .dst = &devices},
		{.name = "rate", .kind = MOAT_OPT_STRING, .dst = &rate},
		{.name = "timeout", .kind = MOAT_OPT_FN, .dst = &timeout_s, .fn = parse_timeout},
		{.name = "as", .kind = MOAT_OPT_STRING, .dst = &as},
		{.name = "host", .kind = MOAT_OPT_STRING, .dst = &host},
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
	if (strcmp(cmd, "run") == 0) {
		return cmd_run(argc - next, argv + next, &args, group, devices, rate, timeout_s, as,
			       host);
	}
	if (strcmp(cmd, "status") == 0) {
		if (args.n || group || devices || rate || as || host) {
			return cli_usage_error("job status: options of run given");
		}
		return cmd_status(argc - next, argv + next);
	}
	return cli_usage_error("job: unknown command '%s' (run, status)", cmd);
}
