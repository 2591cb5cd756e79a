/* fw_release.c: the release side of `moat fw`, served by moatd:
 *
 *   moat fw publish ENVELOPE IMAGE [--rollout PERCENT | --devices ID,...]
 *   moat fw list [--type T]
 *   moat fw status [DEVICE]
 *
 * publish verifies the release as a device would and refuses anything not newer than what
 * is published (moat_release_publish); list shows releases and their rollouts; status shows
 * which version each device reports running, which release moatd would offer it, and its
 * last update events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fw_release.h"
#include "moat/config.h"
#include "moat/release.h"
#include "moat/timeutil.h"

static const char usage[] =
	"usage: moat fw publish ENVELOPE IMAGE [--rollout PERCENT | --devices ID,...]\n"
	"       moat fw list [--type DEVICE_TYPE]\n"
	"       moat fw status [DEVICE]\n\n"
	"publish: verify a signed release against firmware/keys/trust.json and make it\n"
	"available to devices of its type through moatd (default --rollout 100).\n";

static int cmd_publish(int argc, char **argv, const char *rollout, const char *devices)
{
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	char **ids = NULL;
	size_t nids = 0;
	int st = CLI_FAIL;
	int64_t pct = MOAT_ROLLOUT_PERCENT_MAX;
	if (argc != 2) {
		return cli_usage_error("fw publish: ENVELOPE and IMAGE expected");
	}
	if (rollout && devices) {
		return cli_usage_error("fw publish: --rollout and --devices exclude each other");
	}
	if (rollout && moat_int_parse(rollout, 0, MOAT_ROLLOUT_PERCENT_MAX, &pct, &err) != 0) {
		return cli_usage_error("fw publish: --rollout: %s", err.msg);
	}
	if (devices) {
		if (moat_config_split_list(devices, &ids, &nids, &err) != 0) {
			return cli_usage_error("fw publish: --devices: %s", err.msg);
		}
		pct = -1;
		if (nids > MOAT_ROLLOUT_DEVICES_MAX) {
			st = cli_usage_error("fw publish: --devices: more than %d",
					     MOAT_ROLLOUT_DEVICES_MAX);
			goto out;
		}
		for (size_t i = 0; i < nids; i++) {
			if (moat_identity_name_check(ids[i], &err) != 0) {
				st = cli_usage_error("fw publish: --devices: %s", err.msg);
				goto out;
			}
		}
	}
	if (cli_open(MOAT_DEPLOY_WRITE, &d, &err) != 0) {
		st = cli_fail(&err);
		goto out;
	}
	struct moat_publish_req req = {
		.envelope_path = argv[0],
		.image_path = argv[1],
		.rollout_percent = (int)pct,
		.devices = ids,
		.device_count = nids,
		.now = moat_time_now(),
	};
	struct moat_release r;
	if (moat_release_publish(d, &req, &r, &err) != 0) {
		st = cli_fail(&err);
		goto out;
	}
	if (cli_globals.json) {
		printf("{\"device_type\":");
		cli_json_string(stdout, r.device_type);
		printf(",\"version\":");
		cli_json_string(stdout, r.version);
		printf(",\"sha256\":\"%s\",\"size\":%llu,\"rollout_percent\":%d,\"devices\":%zu}\n",
		       r.sha256_hex, (unsigned long long)r.size, r.rollout_percent, r.device_count);
	} else if (r.rollout_percent >= 0) {
		printf("published %s %s (sha256 %s, %llu bytes) to %d%% of %s devices\n",
		       r.device_type, r.version, r.sha256_hex, (unsigned long long)r.size,
		       r.rollout_percent, r.device_type);
	} else {
		printf("published %s %s (sha256 %s, %llu bytes) to %zu listed %s\n", r.device_type,
		       r.version, r.sha256_hex, (unsigned long long)r.size, r.device_count,
		       cli_plural((long long)r.device_count, "device", "devices"));
	}
	st = CLI_OK;
out:
	moat_deploy_close(d);
	moat_config_list_free(ids, nids);
	return st;
}

struct list_ctx {
	size_t n;
	struct moat_registry *reg;
	struct moat_err *err;
};

static int list_cb(const struct moat_release *r, void *vctx)
{
	struct list_ctx *c = vctx;
	char when[MOAT_TIME_ISO_LEN];
	char rollout[48];
	struct moat_rollout_row ro;
	bool phased = false;
	/* a phased rollout alone decides who is offered: its percentage is stale */
	int rc = moat_registry_rollout_of_release(c->reg, r->sha256_hex, &ro, &phased, c->err);
	if (rc != 0) {
		return rc;
	}
	moat_time_iso(r->published_at, when);
	if (phased) {
		snprintf(rollout, sizeof(rollout), "#%lld %s %d/%d", (long long)ro.id,
			 moat_rollout_state_name(ro.state), ro.phase + 1, ro.phase_count);
	} else if (r->rollout_percent >= 0) {
		snprintf(rollout, sizeof(rollout), "%d%%", r->rollout_percent);
	} else {
		snprintf(rollout, sizeof(rollout), "%zu %s", r->device_count,
			 cli_plural((long long)r->device_count, "device", "devices"));
	}
	if (cli_globals.json) {
		printf("%s{\"device_type\":", c->n ? "," : "");
		cli_json_string(stdout, r->device_type);
		printf(",\"version\":");
		cli_json_string(stdout, r->version);
		printf(",\"security_version\":%lld,\"size\":%llu,\"sha256\":\"%s\","
		       "\"published_at\":%lld,\"rollout_percent\":%d,\"devices\":%zu",
		       (long long)r->security_version, (unsigned long long)r->size, r->sha256_hex,
		       (long long)r->published_at, r->rollout_percent, r->device_count);
		if (phased) {
			printf(",\"rollout\":{\"id\":%lld,\"state\":\"%s\",\"phase\":%d,"
			       "\"phases\":%d}",
			       (long long)ro.id, moat_rollout_state_name(ro.state), ro.phase + 1,
			       ro.phase_count);
		} else {
			printf(",\"rollout\":null");
		}
		printf("}");
	} else {
		printf("%-16s %-14s %8lld %12llu %-18s %s %.16s\n", r->device_type, r->version,
		       (long long)r->security_version, (unsigned long long)r->size, rollout, when,
		       r->sha256_hex);
	}
	c->n++;
	return 0;
}

static int cmd_list(int argc, const char *type)
{
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	int st = CLI_FAIL;
	if (argc != 0) {
		return cli_usage_error("fw list: no arguments expected");
	}
	if (type && moat_device_type_check(type, &err) != 0) {
		return cli_usage_error("fw list: --type: %s", err.msg);
	}
	if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0) {
		return cli_fail(&err);
	}
	struct list_ctx c = {0, moat_deploy_registry(d), &err};
	if (cli_globals.json) {
		printf("[");
	} else {
		printf("%-16s %-14s %8s %12s %-18s %-20s %s\n", "TYPE", "VERSION", "SECURITY",
		       "SIZE", "ROLLOUT", "PUBLISHED", "SHA256");
	}
	if (moat_registry_release_foreach(moat_deploy_registry(d), type, list_cb, &c, &err) != 0) {
		st = cli_fail(&err);
		goto out;
	}
	if (cli_globals.json) {
		printf("]\n");
	} else if (c.n == 0) {
		printf("(no releases)\n");
	}
	st = CLI_OK;
out:
	moat_deploy_close(d);
	return st;
}

struct status_ctx {
	struct moat_registry *reg;
	const char *only;
	size_t n;
	size_t events;
	struct moat_err *err;
};

static int event_cb(const struct moat_update_event *ev, void *vctx)
{
	struct status_ctx *c = vctx;
	char when[MOAT_TIME_ISO_LEN];
	moat_time_iso(ev->at, when);
	if (cli_globals.json) {
		printf("%s{\"at\":%lld,\"stage\":\"%s\",\"version\":", c->events ? "," : "",
		       (long long)ev->at, moat_update_stage_name(ev->stage));
		cli_json_string(stdout, ev->version);
		printf(",\"running\":");
		cli_json_string(stdout, ev->running);
		printf(",\"reason\":");
		cli_json_string(stdout, ev->reason);
		printf("}");
	} else {
		/* a device wrote version and reason: printed escaped */
		printf("    %s %-11s ", when, moat_update_stage_name(ev->stage));
		cli_print_text(stdout, ev->version[0] ? ev->version : "-",
			       ev->version[0] ? strlen(ev->version) : 1);
		if (ev->reason[0]) {
			printf(" reason=");
			cli_print_text(stdout, ev->reason, strlen(ev->reason));
		}
		printf("\n");
	}
	c->events++;
	return 0;
}

/* What moatd would answer: the release's version, "current" when the device already runs
 * it, "-" when no release includes the device. */
static const char *offered_text(bool found, const struct moat_release *offer, const char *running)
{
	if (!found) {
		return "-";
	}
	return strcmp(offer->version, running) == 0 ? "current" : offer->version;
}

static int status_cb(const struct moat_identity *ident, void *vctx)
{
	struct status_ctx *c = vctx;
	int rc;
	if (c->only && strcmp(c->only, ident->id) != 0) {
		return 0;
	}
	char running[MOAT_FW_VERSION_MAX_LEN + 1];
	struct moat_release offer;
	bool found = false;
	if ((rc = moat_registry_running_version(c->reg, ident->id, running, c->err)) != 0 ||
	    (rc = moat_release_newest(c->reg, ident->device_type, ident->id, &offer, &found,
				      c->err)) != 0) {
		return rc;
	}
	if (cli_globals.json) {
		printf("%s{\"id\":", c->n ? "," : "");
		cli_json_string(stdout, ident->id);
		printf(",\"device_type\":");
		cli_json_string(stdout, ident->device_type);
		printf(",\"running\":");
		cli_json_string(stdout, running);
		printf(",\"offered\":");
		cli_json_string(stdout, found ? offer.version : "");
		printf(",\"events\":[");
	} else {
		printf("%-24s %-16s %-14s %s\n", ident->id, ident->device_type,
		       running[0] ? running : "-", offered_text(found, &offer, running));
	}
	c->events = 0;
	if ((rc = moat_registry_update_event_foreach(c->reg, ident->id,
						     MOAT_STATUS_EVENTS_PER_DEVICE, event_cb, c,
						     c->err)) != 0) {
		return rc;
	}
	if (cli_globals.json) {
		printf("]}");
	}
	c->n++;
	return 0;
}

static int cmd_status(int argc, char **argv)
{
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	int st = CLI_FAIL;
	if (argc > 1) {
		return cli_usage_error("fw status: at most one DEVICE");
	}
	if (argc == 1 && moat_identity_name_check(argv[0], &err) != 0) {
		return cli_usage_error("fw status: %s", err.msg);
	}
	if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0) {
		return cli_fail(&err);
	}
	struct status_ctx c = {moat_deploy_registry(d), argc == 1 ? argv[0] : NULL, 0, 0, &err};
	if (cli_globals.json) {
		printf("[");
	} else {
		printf("%-24s %-16s %-14s %s\n", "DEVICE", "TYPE", "RUNNING", "OFFERED");
	}
	if (moat_registry_identity_foreach(moat_deploy_registry(d), MOAT_ROLE_DEVICE, status_cb, &c,
					   &err) != 0) {
		if (cli_globals.json) {
			printf("]\n");
		}
		st = cli_fail(&err);
		goto out;
	}
	if (cli_globals.json) {
		printf("]\n");
	}
	if (c.only && c.n == 0) {
		moat_err_set(&err, MOAT_ENOENT, "no device %s", c.only);
		st = cli_fail(&err);
		goto out;
	}
	st = CLI_OK;
out:
	moat_deploy_close(d);
	return st;
}

int fw_release_main(int argc, char **argv)
{
	const char *cmd = argv[0];
	const char *rollout = NULL;
	const char *devices = NULL;
	const char *type = NULL;
	const struct moat_opt opts[] = {
		{.name = "rollout", .kind = MOAT_OPT_STRING, .dst = &rollout},
		{.name = "devices", .kind = MOAT_OPT_STRING, .dst = &devices},
		{.name = "type", .kind = MOAT_OPT_STRING, .dst = &type},
		{.name = "help", .kind = MOAT_OPT_HELP},
		{0},
	};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = usage, .opts = opts,
					    .on_error = MOAT_OPTS_ERROR_USAGE};
	int next;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	bool is_publish = strcmp(cmd, "publish") == 0;
	if (!is_publish && (rollout || devices)) {
		return cli_usage_error("fw %s: --rollout and --devices belong to publish", cmd);
	}
	if (strcmp(cmd, "list") != 0 && type) {
		return cli_usage_error("fw %s: --type belongs to list", cmd);
	}
	if (is_publish) {
		return cmd_publish(argc - next, argv + next, rollout, devices);
	}
	if (strcmp(cmd, "list") == 0) {
		return cmd_list(argc - next, type);
	}
	return cmd_status(argc - next, argv + next);
}
