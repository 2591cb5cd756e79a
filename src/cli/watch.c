/* watch.c: `moat watch [ID...|--all] [--json] [--as NAME] [--host H] [--count N] [--timeout D]`: a
 * live view of devices' telemetry, status, diagnostics (update events parsed) and command
 * responses, one line per message. Payloads come from devices and are untrusted: each is parsed
 * with its schema (src/core/messages.c) before anything of it is shown, and every text of
 * it is printed escaped (cli_print_text: no control, C1 or bidi character reaches the
 * terminal); --json prints {"topic","device","kind","valid","message"} where message is
 * the payload itself (on one line) only when it parsed, else the payload as a JSON string.
 * Exit status: 0 after --count messages or an interrupt; 2 when --timeout ends the watch
 * first (saying how many messages it saw); 1 on any other failure.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "moat/messages.h"
#include "moat/opclient.h"
#include "moat/signals.h"
#include "moat/timeutil.h"
#include "moat/topic.h"
#include "moat/update_schema.h"

#define WATCH_IDS_MAX 64
enum { WATCH_TIMEOUT = 2 };	 /* as moat cmd's: no answer in time */
#define WATCH_SHOW_MAX_BYTES 300 /* of an invalid payload */

static volatile int watch_stop;

static void on_signal(int sig)
{
	(void)sig;
	watch_stop = 1;
}

/* What a device wrote, escaped (cli_print_text): s is NUL-terminated. */
static void put(const char *s)
{
	cli_print_text(stdout, s, strlen(s));
}

static void show(const char *topic, const char *payload, size_t len)
{
	struct moat_topic tp;
	char ts[MOAT_TIME_ISO_LEN];
	bool valid = false;
	moat_time_iso(moat_time_now(), ts);
	if (moat_topic_parse(topic, &tp, NULL) != 0) {
		return; /* the broker only sends what we subscribed to */
	}
	const char *kind = moat_topic_kind_name(tp.kind);
	struct moat_msg_telemetry t;
	struct moat_msg_status st;
	struct moat_msg_response r;
	struct moat_update_event ev;
	switch (tp.kind) {
	case MOAT_TOPIC_TELEMETRY:
		valid = moat_msg_telemetry_parse(payload, len, &t, NULL) == 0;
		break;
	case MOAT_TOPIC_STATUS:
		valid = moat_msg_status_parse(payload, len, &st, NULL) == 0;
		break;
	case MOAT_TOPIC_COMMAND_RESPONSES:
		valid = moat_msg_response_parse(payload, len, &r, NULL) == 0;
		break;
	case MOAT_TOPIC_DIAGNOSTICS:
		/* update events are parsed (moatd's parser); other diagnostics are shown as a
		 * string, never as JSON */
		valid = moat_update_event_parse(payload, len, &ev, NULL) == 0;
		break;
	default:
		return;
	}
	if (cli_globals.json) {
		printf("{\"time\":\"%s\",\"topic\":", ts);
		cli_json_string(stdout, topic);
		printf(",\"device\":\"%s\",\"kind\":\"%s\",\"valid\":%s,\"message\":", tp.id, kind,
		       valid ? "true" : "false");
		if (valid) {
			cli_print_json_raw(stdout, payload, len);
		} else {
			char *copy = malloc(len + 1);
			if (copy) {
				memcpy(copy, payload, len);
				copy[len] = '\0';
				cli_json_string(stdout, copy);
				free(copy);
			} else {
				printf("null");
			}
		}
		printf("}\n");
		fflush(stdout);
		return;
	}
	printf("%s %-20s %-17s ", ts, tp.id, kind);
	if (!valid) {
		if (tp.kind != MOAT_TOPIC_DIAGNOSTICS) {
			printf("(invalid) ");
		}
		cli_print_text(stdout, payload,
			       len < WATCH_SHOW_MAX_BYTES ? len : WATCH_SHOW_MAX_BYTES);
	} else if (tp.kind == MOAT_TOPIC_TELEMETRY) {
		if (t.has_seq) {
			printf("seq=%lld", (long long)t.seq);
		}
		for (size_t i = 0; i < t.reading_count; i++) {
			printf(" ");
			put(t.readings[i].name);
			printf("=%g", t.readings[i].value);
		}
		if (t.has_signal_strength) {
			printf(" rssi=%lld", (long long)t.signal_strength);
		}
	} else if (tp.kind == MOAT_TOPIC_DIAGNOSTICS) {
		printf("update %s", moat_update_stage_name(ev.stage));
		if (ev.version[0]) {
			printf(" ");
			put(ev.version);
		}
		if (ev.running[0]) {
			printf(" (running ");
			put(ev.running);
			printf(")");
		}
		if (ev.reason[0]) {
			printf(": ");
			put(ev.reason);
		}
	} else if (tp.kind == MOAT_TOPIC_STATUS) {
		printf("%s", st.online ? "online" : "offline");
		if (st.ip_address[0]) {
			printf(" ");
			put(st.ip_address);
		}
		if (st.agent_version[0]) {
			printf(" agent ");
			put(st.agent_version);
		}
	} else {
		put(r.command);
		printf(" ");
		put(r.status);
		if (r.id[0]) {
			printf(" id=");
			put(r.id);
		}
		if (r.detail[0]) {
			printf(": ");
			put(r.detail);
		}
	}
	printf("\n");
	fflush(stdout);
}

static int parse_timeout(void *dst, const char *value, struct moat_err *err)
{
	return cli_opt_seconds("--timeout", value, 1, INT32_MAX, dst, err);
}

int watch_main(int argc, char **argv)
{
	const char *usage = "usage: moat watch [ID...|--all] [--json] [--as NAME] [--host H] "
			    "[--count N] [--timeout D]";
	static const char *const kinds[] = {"telemetry", "status", "diagnostics",
					    "command_responses"};
	struct moat_err err = {0};
	bool all = false;
	const char *as = NULL, *host = NULL;
	int64_t count = 0, timeout_s = 0;
	const struct moat_opt opts[] = {
		{.name = "all", .kind = MOAT_OPT_FLAG, .dst = &all},
		{.name = "as", .kind = MOAT_OPT_STRING, .dst = &as},
		{.name = "host", .kind = MOAT_OPT_STRING, .dst = &host},
		{.name = "count", .kind = MOAT_OPT_INT, .dst = &count, .min = 1, .max = INT64_MAX},
		{.name = "timeout", .kind = MOAT_OPT_FN, .dst = &timeout_s, .fn = parse_timeout},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = usage, .opts = opts};
	int next;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	size_t nids = (size_t)(argc - next);
	if (nids == 0 && !all) {
		return cli_usage_error("watch: which devices? name them (moat watch ID...) or give "
				       "--all (%s)",
				       usage);
	}
	if (nids > 0 && all) {
		return cli_usage_error("watch: name devices or give --all, not both (%s)", usage);
	}
	if (nids > WATCH_IDS_MAX) {
		return cli_usage_error("watch: at most %d devices; use --all", WATCH_IDS_MAX);
	}
	for (size_t i = 0; i < nids; i++) {
		if (moat_identity_name_check(argv[next + i], &err) != 0) {
			return cli_usage_error("%s", err.msg);
		}
	}
	size_t nf = (all ? 1 : nids) * 4;
	char(*bufs)[MOAT_TOPIC_BUF_LEN] = calloc(nf, sizeof(*bufs));
	const char **filters = calloc(nf, sizeof(*filters));
	struct moat_deploy *d = NULL;
	struct moat_opclient *cl = NULL;
	int rc = -1; /* -1: failed, err says why */
	if (!bufs || !filters) {
		moat_err_set(&err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nf; i++) {
		const char *who = all ? "+" : argv[next + i / 4];
		snprintf(bufs[i], sizeof(bufs[i]), "devices/%s/%s", who, kinds[i % 4]);
		filters[i] = bufs[i];
	}
	if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0 ||
	    moat_opclient_connect(d, as, cli_session_suffix("watch"), host, 10000, &cl, NULL,
				  &err) != 0 ||
	    moat_opclient_subscribe(cl, filters, nf, 10000, &err) != 0) {
		goto out;
	}
	moat_signals_catch(on_signal, 0);
	int64_t deadline = timeout_s ? moat_time_mono_ms() + timeout_s * 1000 : 0;
	int64_t seen = 0;
	while (count == 0 || seen < count) {
		const char *t;
		const void *p;
		size_t plen;
		int64_t left = -1;
		if (deadline) {
			left = deadline - moat_time_mono_ms();
			if (left < 0) {
				left = 0;
			}
		}
		int nrc = moat_opclient_next(cl, left, &watch_stop, &t, &p, &plen, &err);
		if (nrc == MOAT_EINTR) {
			break;
		}
		if (nrc == MOAT_ETIMEOUT) {
			if (count) {
				fprintf(stderr,
					"moat: watch: --timeout %llds reached after %lld of %lld "
					"messages\n",
					(long long)timeout_s, (long long)seen, (long long)count);
			} else {
				fprintf(stderr,
					"moat: watch: --timeout %llds reached (%lld messages)\n",
					(long long)timeout_s, (long long)seen);
			}
			rc = WATCH_TIMEOUT;
			goto out;
		}
		if (nrc != 0) {
			goto out;
		}
		show(t, p, plen);
		seen++;
	}
	rc = CLI_OK;
out:
	if (rc < 0) {
		rc = cli_fail(&err);
	}
	moat_opclient_close(cl);
	moat_deploy_close(d);
	free(bufs);
	free(filters);
	return rc;
}
