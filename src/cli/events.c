/* events.c: `moat events` (the security events moatd recorded: the broker's, moatd's own
 * and the anomalies; --follow keeps printing new ones) and `moat fleet` (the fleet at a
 * glance: devices by state, type and release, certificates expiring, open anomalies).
 * Both read the registry only; moatd's ingest writes it. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "moat/monitor.h"
#include "moat/registry.h"
#include "moat/signals.h"
#include "moat/timeutil.h"

#define FOLLOW_POLL_MS 500
#define FLEET_EXPIRING_DAYS 30
#define FLEET_BUCKETS_MAX 256

static volatile int follow_stop;

static void on_signal(int sig)
{
	(void)sig;
	follow_stop = 1;
}

static int parse_since(void *dst, const char *value, struct moat_err *err)
{
	if (moat_duration_ms_parse(value, dst, err) != 0) {
		moat_err_prefix(err, "--since");
		return MOAT_EINVAL;
	}
	return 0;
}

struct print_ctx {
	bool json;
	int64_t last_seq;
	size_t n;
};

/* One event: a JSON object per line with --json, else one line of text. */
static int print_event(const struct moat_security_event *ev, void *ctx)
{
	struct print_ctx *p = ctx;
	p->last_seq = ev->seq;
	p->n++;
	if (p->json) {
		char buf[2048];
		struct moat_err err = {0};
		if (moat_security_event_json(ev, buf, sizeof(buf), &err) == 0) {
			printf("%s\n", buf);
		}
		return 0;
	}
	char when[MOAT_TIME_ISO_LEN];
	moat_time_iso(ev->time_ms / 1000, when);
	printf("%s %-8s %-16s %-6s %s", when, moat_severity_name(ev->severity), ev->kind,
	       ev->source, ev->identity[0] ? ev->identity : "-");
	if (ev->address[0]) {
		printf(" from %s", ev->address);
	}
	if (ev->rule[0]) {
		printf(" rule=%s", ev->rule);
	}
	printf(" ");
	cli_print_text(stdout, ev->evidence, strlen(ev->evidence));
	printf("\n");
	return 0;
}

static int events(int argc, char **argv)
{
	bool follow = false;
	const char *kind = NULL, *device = NULL, *rule = NULL;
	int64_t since_ms = 0, limit = 0;
	const struct moat_opt opts[] = {
		{.name = "follow", .kind = MOAT_OPT_FLAG, .letter = 'f', .dst = &follow},
		{.name = "kind", .kind = MOAT_OPT_STRING, .dst = &kind},
		{.name = "device", .kind = MOAT_OPT_STRING, .dst = &device},
		{.name = "rule", .kind = MOAT_OPT_STRING, .dst = &rule},
		{.name = "since", .kind = MOAT_OPT_FN, .dst = &since_ms, .fn = parse_since},
		{.name = "limit", .kind = MOAT_OPT_INT, .dst = &limit, .min = 1, .max = 1000000},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {
		CLI_OPTS,
		.usage =
			"usage: moat events [--follow] [--kind K] [--device D] [--rule R]\n"
			"                   [--since 1h] [--limit N] [--json]\n"
			"The security events moatd recorded, oldest first: the broker's (refusals,\n"
			"denials, connections...), moatd's own, and the anomalies its rules found\n"
			"(kind anomaly; --rule names one). --since: only the last 1h, 30m...\n"
			"--limit: only the newest N. --follow: then print new ones as moatd records\n"
			"them, until interrupted. --json: one JSON object per line (seq, time,\n"
			"time_ms, kind, severity, source, identity, address, rule, evidence,\n"
			"run_id).\n",
		.opts = opts, .no_operands = true};
	int next;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0) {
		return cli_fail(&err);
	}
	struct moat_event_filter f = {
		.since_ms = since_ms ? moat_time_wall_ms() - since_ms : 0,
		.kind = kind,
		.identity = device,
		.rule = rule,
		.limit = limit,
	};
	struct print_ctx p = {.json = cli_globals.json};
	int rc = moat_registry_security_event_foreach(moat_deploy_registry(d), &f, print_event, &p,
						      &err);
	if (rc == 0 && follow) {
		moat_signals_catch(on_signal, 0);
		f.limit = 0;
		fflush(stdout);
		while (!follow_stop && rc == 0) {
			struct timespec ts = {0, FOLLOW_POLL_MS * 1000000L};
			nanosleep(&ts, NULL);
			f.after_seq = p.last_seq;
			rc = moat_registry_security_event_foreach(moat_deploy_registry(d), &f,
								  print_event, &p, &err);
			fflush(stdout);
		}
	}
	moat_deploy_close(d);
	return rc != 0 ? cli_fail(&err) : CLI_OK;
}

int events_main(int argc, char **argv)
{
	return events(argc, argv);
}

/* ---- moat fleet ---- */

struct bucket {
	char name[MOAT_FW_VERSION_MAX_LEN + 1];
	int64_t n;
};

struct buckets {
	struct bucket b[FLEET_BUCKETS_MAX];
	size_t count;
	int64_t other; /* past FLEET_BUCKETS_MAX names */
};

static void bucket_add(struct buckets *bs, const char *name)
{
	for (size_t i = 0; i < bs->count; i++) {
		if (strcmp(bs->b[i].name, name) == 0) {
			bs->b[i].n++;
			return;
		}
	}
	if (bs->count == FLEET_BUCKETS_MAX) {
		bs->other++;
		return;
	}
	snprintf(bs->b[bs->count].name, sizeof(bs->b[0].name), "%s", name);
	bs->b[bs->count++].n = 1;
}

struct fleet {
	struct moat_registry *reg;
	int64_t now;
	int64_t devices;
	int64_t by_state[3];
	struct buckets types, releases;
	int64_t expiring, expired;
	int64_t telemetry; /* messages recorded, all devices */
};

static int fleet_device(const struct moat_identity *id, void *ctx)
{
	struct fleet *f = ctx;
	if (id->role != MOAT_ROLE_DEVICE || id->status == MOAT_ID_REVOKED) {
		return 0;
	}
	f->devices++;
	bucket_add(&f->types, id->device_type[0] ? id->device_type : "-");
	struct moat_device_state s;
	struct moat_err err = {0};
	if (moat_registry_device_state_get(f->reg, id->id, &s, &err) != 0) {
		memset(&s, 0, sizeof(s));
	}
	f->by_state[s.state]++;
	f->telemetry += s.telemetry_messages;
	bucket_add(&f->releases, s.running[0] ? s.running : "unknown");
	if (id->serial_hex[0] && !id->cert_revoked) {
		if (id->not_after <= f->now) {
			f->expired++;
		} else if (id->not_after <= f->now + FLEET_EXPIRING_DAYS * 86400) {
			f->expiring++;
		}
	}
	return 0;
}

static void print_buckets_json(const char *key, const struct buckets *bs)
{
	printf(",\"%s\":{", key);
	for (size_t i = 0; i < bs->count; i++) {
		printf("%s", i ? "," : "");
		cli_json_string(stdout, bs->b[i].name);
		printf(":%lld", (long long)bs->b[i].n);
	}
	printf("}");
}

static void print_buckets(const char *title, const struct buckets *bs)
{
	printf("%s", title);
	for (size_t i = 0; i < bs->count; i++) {
		printf("%s", i ? ", " : " ");
		cli_print_text(stdout, bs->b[i].name, strlen(bs->b[i].name));
		printf(" %lld", (long long)bs->b[i].n);
	}
	if (bs->other) {
		printf(", others %lld", (long long)bs->other);
	}
	printf("\n");
}

int fleet_main(int argc, char **argv)
{
	const struct moat_opt opts[] = {
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {
		CLI_OPTS,
		.usage =
			"usage: moat fleet [--json]\n"
			"The fleet at a glance, from what moatd's ingest recorded: devices by state\n"
			"(online, offline, never seen), by type and by running release, certificates\n"
			"expired or expiring within 30 days, telemetry messages recorded, and the\n"
			"open anomalies (fired within [monitor] anomaly_open, default 1h), listed.\n",
		.opts = opts, .no_operands = true};
	int next;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0) {
		return cli_fail(&err);
	}
	struct moat_monitor_settings ms;
	if (moat_monitor_settings_load(moat_deploy_config(d), &ms, &err) != 0) {
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	struct fleet *f = calloc(1, sizeof(*f));
	if (!f) {
		moat_deploy_close(d);
		moat_err_set(&err, MOAT_ENOMEM, "out of memory");
		return cli_fail(&err);
	}
	f->reg = moat_deploy_registry(d);
	f->now = moat_time_now();
	int64_t open_count = 0;
	struct moat_event_filter af = {.since_ms = moat_time_wall_ms() - ms.anomaly_open_ms,
				       .kind = MOAT_EVENT_KIND_ANOMALY};
	int rc = moat_registry_identity_foreach(f->reg, -1, fleet_device, f, &err);
	if (rc == 0) {
		rc = moat_registry_security_event_count(f->reg, &af, &open_count, &err);
	}
	if (rc != 0) {
		free(f);
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	struct print_ctx p = {.json = cli_globals.json};
	if (p.json) {
		printf("{\"devices\":%lld,\"state\":{\"online\":%lld,\"offline\":%lld,"
		       "\"unknown\":%lld}",
		       (long long)f->devices, (long long)f->by_state[MOAT_CONN_ONLINE],
		       (long long)f->by_state[MOAT_CONN_OFFLINE],
		       (long long)f->by_state[MOAT_CONN_UNKNOWN]);
		print_buckets_json("types", &f->types);
		print_buckets_json("releases", &f->releases);
		printf(",\"certificates\":{\"expired\":%lld,\"expiring_30d\":%lld},"
		       "\"open_anomalies\":%lld,\"telemetry_messages\":%lld}\n",
		       (long long)f->expired, (long long)f->expiring, (long long)open_count,
		       (long long)f->telemetry);
	} else {
		printf("devices:      %lld (online %lld, offline %lld, never seen %lld)\n",
		       (long long)f->devices, (long long)f->by_state[MOAT_CONN_ONLINE],
		       (long long)f->by_state[MOAT_CONN_OFFLINE],
		       (long long)f->by_state[MOAT_CONN_UNKNOWN]);
		print_buckets("types:       ", &f->types);
		print_buckets("releases:    ", &f->releases);
		printf("certificates: %lld expired, %lld expiring within %d days\n",
		       (long long)f->expired, (long long)f->expiring, FLEET_EXPIRING_DAYS);
		printf("telemetry:    %lld messages recorded\n", (long long)f->telemetry);
		printf("anomalies:    %lld open\n", (long long)open_count);
		if (open_count) {
			af.limit = 20;
			rc = moat_registry_security_event_foreach(f->reg, &af, print_event, &p,
								  &err);
		}
	}
	free(f);
	moat_deploy_close(d);
	return rc != 0 ? cli_fail(&err) : CLI_OK;
}
