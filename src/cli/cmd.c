/* cmd.c: `moat cmd ID COMMAND [--arg key=value]... [--timeout 10s] [--as NAME]` sends a
 * command to a device as an operator identity of the deployment and waits for the
 * response that echoes the command's id (a random one per call). Exit status: 0 when the
 * device accepted or completed it, 1 when it refused it (refused, unknown_command,
 * bad_request, failed, or the command could not be sent), 2 on timeout. The response is
 * the device's text: printed escaped (cli_print_text), or with --json as the parsed
 * document on one line.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "cli.h"
#include "moat/messages.h"
#include "moat/opclient.h"
#include "moat/signals.h"
#include "moat/timeutil.h"
#include "moat/topic.h"

enum { CMD_TIMEOUT = 2 };

static volatile int cmd_stop;

static void on_signal(int sig)
{
	(void)sig;
	cmd_stop = 1;
}

/* The device's answer; every text of it printed escaped (cli_print_text). */
static void print_response(const struct moat_msg_response *r, const char *raw, size_t len)
{
	if (cli_globals.json) {
		cli_print_json_raw(stdout, raw, len);
		printf("\n");
		return;
	}
	cli_print_text(stdout, r->device_id, strlen(r->device_id));
	printf(" ");
	cli_print_text(stdout, r->command, strlen(r->command));
	printf(": ");
	cli_print_text(stdout, r->status, strlen(r->status));
	if (r->has_interval) {
		printf(" (interval %llds)", (long long)r->interval);
	}
	if (r->detail[0]) {
		printf(": ");
		cli_print_text(stdout, r->detail, strlen(r->detail));
	}
	printf("\n");
}

struct arg_list {
	const char *v[MOAT_MSG_ARGS_MAX + 1];
	size_t n;
};

static int add_arg(void *dst, const char *value, struct moat_err *err)
{
	struct arg_list *a = dst;
	if (a->n > MOAT_MSG_ARGS_MAX - 1) {
		return moat_err_set(err, MOAT_EINVAL, "--arg: at most %d", MOAT_MSG_ARGS_MAX);
	}
	a->v[a->n++] = value;
	return 0;
}

static int parse_timeout(void *dst, const char *value, struct moat_err *err)
{
	int64_t *timeout_s = dst;
	if (moat_duration_parse(value, 1, timeout_s, err) != 0 || *timeout_s < 1 ||
	    *timeout_s > 3600) {
		return moat_err_set(err, MOAT_EINVAL, "--timeout: '%s' is not 1s to 1h", value);
	}
	return 0;
}

int cmd_main(int argc, char **argv)
{
	struct moat_msg_command cmd;
	struct moat_err err = {0};
	struct arg_list args = {.n = 0};
	int64_t timeout_s = 10;
	const char *as = NULL;
	const struct moat_opt opts[] = {
		{.name = "arg", .kind = MOAT_OPT_FN, .dst = &args, .fn = add_arg},
		{.name = "timeout", .kind = MOAT_OPT_FN, .dst = &timeout_s, .fn = parse_timeout},
		{.name = "as", .kind = MOAT_OPT_STRING, .dst = &as},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {
		CLI_OPTS,
		.usage = "usage: moat cmd ID COMMAND [--arg key=value]... [--timeout 10s] "
			 "[--as NAME] [--json]",
		.opts = opts,
	};
	memset(&cmd, 0, sizeof(cmd));
	int next;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	if (argc - next != 2) {
		return moat_opts_usage_error(&spec);
	}
	const char *id = argv[next], *name = argv[next + 1];
	if (moat_identity_name_check(id, &err) != 0) {
		return cli_usage_error("%s", err.msg);
	}
	if (!moat_msg_command_name_ok(name)) {
		return cli_usage_error("command '%s' is not [a-z0-9_]{1,32}", name);
	}
	snprintf(cmd.name, sizeof(cmd.name), "%s", name);
	for (size_t i = 0; i < args.n; i++) {
		if (moat_msg_command_add_arg(&cmd, args.v[i], &err) != 0) {
			return cli_usage_error("--arg %s: %s", args.v[i], err.msg);
		}
	}
	unsigned char rnd[8];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		moat_err_set(&err, MOAT_ECRYPTO, "no randomness for the command id");
		return cli_fail(&err);
	}
	snprintf(cmd.id, sizeof(cmd.id), "cmd-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
		 rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);

	char payload[MOAT_MSG_COMMAND_MAX_BYTES];
	char topic[MOAT_TOPIC_BUF_LEN], resp_topic[MOAT_TOPIC_BUF_LEN];
	size_t len = 0;
	if (moat_msg_command_build(&cmd, payload, sizeof(payload), &len, &err) != 0 ||
	    moat_topic_build(MOAT_TOPIC_COMMAND, id, name, topic, sizeof(topic), &err) != 0 ||
	    moat_topic_build(MOAT_TOPIC_COMMAND_RESPONSES, id, NULL, resp_topic, sizeof(resp_topic),
			     &err) != 0) {
		return cli_usage_error("%s", err.msg);
	}

	struct moat_deploy *d = NULL;
	struct moat_opclient *cl = NULL;
	int rc = -1; /* -1: failed, err says why */
	int64_t timeout_ms = timeout_s * 1000;
	if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0 ||
	    moat_opclient_connect(d, as, cli_session_suffix("cmd"), timeout_ms, &cl, NULL, &err) !=
		    0) {
		goto out;
	}
	moat_signals_catch(on_signal, 0);

	const char *filters[1] = {resp_topic};
	int64_t deadline = moat_time_mono_ms() + timeout_ms;
	if (moat_opclient_subscribe(cl, filters, 1, timeout_ms, &err) != 0 ||
	    moat_opclient_publish(cl, topic, payload, len, timeout_ms, &err) != 0) {
		goto out;
	}
	for (;;) {
		const char *t;
		const void *p;
		size_t plen;
		int64_t left = deadline - moat_time_mono_ms();
		int nrc =
			moat_opclient_next(cl, left > 0 ? left : 0, &cmd_stop, &t, &p, &plen, &err);
		if (nrc == MOAT_ETIMEOUT) {
			fprintf(stderr, "moat: %s did not answer %s (%s) within %llds\n", id, name,
				cmd.id, (long long)timeout_s);
			rc = CMD_TIMEOUT;
			goto out;
		}
		if (nrc != 0) {
			goto out;
		}
		struct moat_msg_response r;
		/* other operators' responses arrive too; only ours (by id) counts */
		if (moat_msg_response_parse(p, plen, &r, NULL) != 0 || strcmp(r.id, cmd.id) != 0) {
			continue;
		}
		print_response(&r, p, plen);
		rc = strcmp(r.status, "accepted") == 0 || strcmp(r.status, "completed") == 0
			     ? CLI_OK
			     : CLI_FAIL;
		goto out;
	}
out:
	if (rc < 0) {
		rc = cli_fail(&err);
	}
	moat_opclient_close(cl);
	moat_deploy_close(d);
	return rc;
}
