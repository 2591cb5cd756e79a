/* cmd.c: `moat cmd ID COMMAND [--arg key=value]... [--timeout 10s] [--wait] [--host H]
 * [--as NAME]` sends a command to a device as an operator identity of the deployment and
 * waits for its response. Exit status: 0 when the device accepted or completed it, 1 when
 * it refused it (refused, unknown_command, bad_request, failed) or the command could not be
 * sent (no such device, the device offline, a bad argument), 2 on timeout. The response is
 * the device's text: printed escaped (cli_print_text), or with --json as the parsed
 * document on one line with "matched" added (by_id or by_command).
 *
 * Order, so that a command is never sent to a device that cannot receive it: the device
 * must be an active device of the registry; then the retained status of the device is
 * read (a device subscribes to its commands before it publishes "online", and the broker
 * handles one connection's packets in order, so a device seen online from that status is
 * subscribed); offline is an error at once, unless --wait waits for it to come online.
 *
 * Matching: a response carrying an id matches only the command's id (a random one per
 * call). Firmware written for the tutorial answers without an id; such a response matches
 * when it names this device and this command and arrives after the command was sent: this
 * process has exactly one command outstanding, so it is taken as the answer
 * ("matched":"by_command"). Two operators sending the same command to the same device at
 * once cannot be told apart by such a device; that is a limit of its firmware.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/rand.h>

#include "cli.h"
#include "moat/messages.h"
#include "moat/opclient.h"
#include "moat/registry.h"
#include "moat/signals.h"
#include "moat/timeutil.h"
#include "moat/topic.h"

enum { CMD_TIMEOUT = 2 };

static const char cmd_usage[] =
	"usage: moat cmd ID COMMAND [--arg key=value]... [--timeout 10s] [--wait] [--host H]\n"
	"                [--as NAME] [--json]\n"
	"Sends COMMAND to device ID as an operator identity and waits for the answer.\n"
	"\n"
	"Commands (what moat-agent and firmware written for the tutorial answer):\n"
	"  reboot                   restart the device (it answers \"accepted\" first)\n"
	"  update_interval --arg interval=DURATION\n"
	"                           send telemetry every DURATION, with its unit: 30s, 5m, 1h\n"
	"                           (1s to 1d, whole seconds; a bare number is refused); the\n"
	"                           device receives it as seconds, as the tutorial's firmware\n"
	"                           expects\n"
	"  diagnostics              publish diagnostics on devices/ID/diagnostics\n"
	"  check_update             ask moatd for a firmware update now (moat-agent)\n"
	"Any other name ([a-z0-9_]{1,32}) is sent as it is; a device that does not know it\n"
	"answers unknown_command. --arg key=value: a number, true/false, or text.\n"
	"\n"
	"Options:\n"
	"  --timeout D   how long to wait for the answer: 1s to 1h (default 10s)\n"
	"  --wait        a device that is offline: wait up to --timeout for it to come online\n"
	"                (without --wait: exit 1 at once, saying so)\n"
	"  --host H      the broker's name or address (default: moat.conf [client] host)\n"
	"  --as NAME     the operator or service identity to act as (default: the first\n"
	"                operator)\n"
	"  --json        the device's response as one JSON line, with \"matched\": \"by_id\", or\n"
	"                \"by_command\" for a response without an id\n"
	"\n"
	"Exit status: 0 accepted or completed; 1 refused, unknown command, failed, no such\n"
	"device, offline, or not sent; 2 no answer in time (or bad usage).\n";

static volatile int cmd_stop;

static void on_signal(int sig)
{
	(void)sig;
	cmd_stop = 1;
}

/* The device's answer; every text of it printed escaped (cli_print_text). With --json, the
 * document with "matched" set by us (a device's own "matched" key is replaced). */
static void print_response(const struct moat_msg_response *r, const char *raw, size_t len,
			   bool by_id)
{
	if (cli_globals.json) {
		cJSON *root = cJSON_ParseWithLength(raw, len);
		char *text = NULL;
		if (root) {
			cJSON_DeleteItemFromObjectCaseSensitive(root, "matched");
			cJSON_AddStringToObject(root, "matched", by_id ? "by_id" : "by_command");
			text = cJSON_PrintUnformatted(root);
		}
		if (text) {
			cli_print_json_raw(stdout, text, strlen(text));
		} else {
			cli_print_json_raw(stdout, raw, len);
		}
		printf("\n");
		cJSON_free(text);
		cJSON_Delete(root);
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

int cli_command_add_arg(void *dst, const char *value, struct moat_err *err)
{
	struct cli_arg_list *a = dst;
	if (a->n > MOAT_MSG_ARGS_MAX - 1) {
		return moat_err_set(err, MOAT_EINVAL, "--arg: at most %d", MOAT_MSG_ARGS_MAX);
	}
	a->v[a->n++] = value;
	return 0;
}

static int parse_timeout(void *dst, const char *value, struct moat_err *err)
{
	return cli_opt_seconds("--timeout", value, 1, 3600, dst, err);
}

/* update_interval's interval: a duration with its unit, sent as whole seconds (what the
 * tutorial's firmware and moat-agent read). buf receives "interval=<seconds>". */
static int interval_arg(const char *kv, char *buf, size_t size, struct moat_err *err)
{
	const char *value = kv + strlen("interval=");
	int64_t ms = 0;
	if (moat_duration_ms_parse(value, &ms, err) != 0) {
		moat_err_prefix(err, "update_interval: interval");
		return MOAT_EINVAL;
	}
	if (ms % 1000 != 0 || ms < MOAT_MSG_UPDATE_INTERVAL_MIN * 1000LL ||
	    ms > MOAT_MSG_UPDATE_INTERVAL_MAX * 1000LL) {
		return moat_err_set(err, MOAT_EINVAL,
				    "update_interval: interval '%s' is not whole seconds from 1s "
				    "to 1d",
				    value);
	}
	snprintf(buf, size, "interval=%lld", (long long)(ms / 1000));
	return 0;
}

/* The command's arguments into cmd; update_interval's interval is converted (above) and
 * required. */
int cli_command_args(struct moat_msg_command *cmd, const struct cli_arg_list *args,
		     struct moat_err *err)
{
	bool is_interval = strcmp(cmd->name, "update_interval") == 0;
	bool have_interval = false;
	for (size_t i = 0; i < args->n; i++) {
		char conv[64];
		const char *kv = args->v[i];
		if (is_interval && strncmp(kv, "interval=", strlen("interval=")) == 0) {
			if (interval_arg(kv, conv, sizeof(conv), err) != 0) {
				return MOAT_EINVAL;
			}
			kv = conv;
			have_interval = true;
		}
		if (moat_msg_command_add_arg(cmd, kv, err) != 0) {
			moat_err_prefix(err, "--arg %s", args->v[i]);
			return MOAT_EINVAL;
		}
	}
	if (is_interval && !have_interval) {
		return moat_err_set(err, MOAT_EINVAL,
				    "update_interval needs --arg interval=DURATION (e.g. 30s, 5m)");
	}
	return 0;
}

/* ID must be an active device of the registry: anything else fails before connecting. */
static int check_device(struct moat_deploy *d, const char *id, struct moat_err *err)
{
	struct moat_identity ident;
	int rc = moat_registry_identity_get(moat_deploy_registry(d), id, &ident, err);
	if (rc == MOAT_ENOENT) {
		return moat_err_set(err, MOAT_ENOENT,
				    "no device %s in this deployment (moat device list)", id);
	}
	if (rc != 0) {
		return rc;
	}
	if (ident.role != MOAT_ROLE_DEVICE) {
		return moat_err_set(err, MOAT_EINVAL, "%s is a %s identity, not a device", id,
				    moat_role_name(ident.role));
	}
	if (ident.status != MOAT_ID_ACTIVE) {
		return moat_err_set(err, MOAT_ESTATE, "%s is %s: it cannot connect", id,
				    moat_identity_status_name(ident.status));
	}
	return 0;
}

/* One command on its way: the topics, and what has been seen. */
struct run {
	struct moat_opclient *cl;
	const char *id, *name;
	struct moat_msg_command cmd;
	char topic[MOAT_TOPIC_BUF_LEN], resp_topic[MOAT_TOPIC_BUF_LEN],
		status_topic[MOAT_TOPIC_BUF_LEN];
	int online; /* -1 no status seen, 0 offline, 1 online */
	bool sent;
};

/* A message for the run: a status updates r->online; a response that answers the
 * command (after it was sent) is printed and its exit status returned. -1: go on. */
static int on_message(struct run *r, const char *t, const void *p, size_t plen)
{
	if (strcmp(t, r->status_topic) == 0) {
		struct moat_msg_status st;
		if (plen == 0) {
			r->online = 0; /* the retained status was cleared */
		} else if (moat_msg_status_parse(p, plen, &st, NULL) == 0) {
			r->online = st.online ? 1 : 0;
		}
		return -1;
	}
	struct moat_msg_response resp;
	if (!r->sent || strcmp(t, r->resp_topic) != 0 ||
	    moat_msg_response_parse(p, plen, &resp, NULL) != 0) {
		return -1;
	}
	/* other operators' responses arrive too: with an id, only ours counts */
	bool by_id = resp.id[0] != '\0';
	if (by_id ? strcmp(resp.id, r->cmd.id) != 0 : strcmp(resp.command, r->name) != 0) {
		return -1;
	}
	print_response(&resp, p, plen, by_id);
	return strcmp(resp.status, "accepted") == 0 || strcmp(resp.status, "completed") == 0
		       ? CLI_OK
		       : CLI_FAIL;
}

/* Reads messages until the deadline: for the device to come online (!r->sent), or for the
 * answer. Returns an exit status, -1 with err set on failure. */
static int pump(struct run *r, int64_t deadline, int64_t timeout_s, struct moat_err *err)
{
	for (;;) {
		const char *t;
		const void *p;
		size_t plen;
		if (!r->sent && r->online == 1) {
			return CLI_OK;
		}
		int64_t left = deadline - moat_time_mono_ms();
		int nrc = moat_opclient_next(r->cl, left > 0 ? left : 0, &cmd_stop, &t, &p, &plen,
					     err);
		if (nrc == MOAT_ETIMEOUT && !r->sent) {
			fprintf(stderr, "moat: %s did not come online within %llds\n", r->id,
				(long long)timeout_s);
			return CMD_TIMEOUT;
		}
		if (nrc == MOAT_ETIMEOUT) {
			fprintf(stderr, "moat: %s did not answer %s (%s) within %llds\n", r->id,
				r->name, r->cmd.id, (long long)timeout_s);
			return CMD_TIMEOUT;
		}
		if (nrc != 0) {
			return -1;
		}
		int rc = on_message(r, t, p, plen);
		if (rc >= 0) {
			return rc;
		}
		if (r->sent && r->online == 0) {
			fprintf(stderr, "moat: %s went offline before it answered %s (%s)\n", r->id,
				r->name, r->cmd.id);
			return CMD_TIMEOUT;
		}
	}
}

/* The retained status, then the answer (see the top of the file). */
static int exchange(struct run *r, const char *payload, size_t len, bool wait, int64_t timeout_s,
		    struct moat_err *err)
{
	int64_t timeout_ms = timeout_s * 1000;
	int64_t deadline = moat_time_mono_ms() + timeout_ms;
	const char *status_filter[1] = {r->status_topic};
	const char *resp_filter[1] = {r->resp_topic};
	/* the broker queues the retained status after the first SUBACK and before the second,
	 * so once the second is in, the status (if the broker has one) is too */
	if (moat_opclient_subscribe(r->cl, status_filter, 1, timeout_ms, err) != 0 ||
	    moat_opclient_subscribe(r->cl, resp_filter, 1, timeout_ms, err) != 0) {
		return -1;
	}
	for (;;) {
		const char *t;
		const void *p;
		size_t plen;
		if (moat_opclient_next(r->cl, 0, &cmd_stop, &t, &p, &plen, err) != 0) {
			break;
		}
		(void)on_message(r, t, p, plen);
	}
	if (r->online != 1 && !wait) {
		fprintf(stderr, "moat: %s is offline%s; nothing sent (--wait waits for it)\n",
			r->id,
			r->online < 0 ? " (no status from it since the broker started)" : "");
		return CLI_FAIL;
	}
	if (r->online != 1) {
		fprintf(stderr, "moat: %s is offline; waiting up to %llds for it\n", r->id,
			(long long)timeout_s);
		int rc = pump(r, deadline, timeout_s, err);
		if (rc != CLI_OK) {
			return rc;
		}
	}
	if (moat_opclient_publish(r->cl, r->topic, payload, len, timeout_ms, err) != 0) {
		return -1;
	}
	r->sent = true;
	return pump(r, deadline, timeout_s, err);
}

/* The command's payload and topics into r from the operands and --arg. */
static int prepare(struct run *r, const struct cli_arg_list *args, char *payload, size_t size,
		   size_t *len, struct moat_err *err)
{
	unsigned char rnd[8];
	snprintf(r->cmd.name, sizeof(r->cmd.name), "%s", r->name);
	if (cli_command_args(&r->cmd, args, err) != 0) {
		return MOAT_EINVAL;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		return moat_err_set(err, MOAT_ECRYPTO, "no randomness for the command id");
	}
	snprintf(r->cmd.id, sizeof(r->cmd.id), "cmd-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0],
		 rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	if (moat_msg_command_build(&r->cmd, payload, size, len, err) != 0 ||
	    moat_topic_build(MOAT_TOPIC_COMMAND, r->id, r->name, r->topic, sizeof(r->topic), err) !=
		    0 ||
	    moat_topic_build(MOAT_TOPIC_COMMAND_RESPONSES, r->id, NULL, r->resp_topic,
			     sizeof(r->resp_topic), err) != 0 ||
	    moat_topic_build(MOAT_TOPIC_STATUS, r->id, NULL, r->status_topic,
			     sizeof(r->status_topic), err) != 0) {
		return MOAT_EINVAL;
	}
	return 0;
}

int cmd_main(int argc, char **argv)
{
	struct moat_err err = {0};
	struct cli_arg_list args = {.n = 0};
	int64_t timeout_s = 10;
	const char *as = NULL, *host = NULL;
	bool wait = false;
	const struct moat_opt opts[] = {
		{.name = "arg", .kind = MOAT_OPT_FN, .dst = &args, .fn = cli_command_add_arg},
		{.name = "timeout", .kind = MOAT_OPT_FN, .dst = &timeout_s, .fn = parse_timeout},
		{.name = "as", .kind = MOAT_OPT_STRING, .dst = &as},
		{.name = "host", .kind = MOAT_OPT_STRING, .dst = &host},
		{.name = "wait", .kind = MOAT_OPT_FLAG, .dst = &wait},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {
		CLI_OPTS,
		.usage = cmd_usage,
		.opts = opts,
		.error_line = "usage: moat cmd ID COMMAND [--arg key=value]... (moat cmd --help)",
	};
	int next;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	if (argc - next != 2) {
		return moat_opts_usage_error(&spec);
	}
	struct run r;
	memset(&r, 0, sizeof(r));
	r.id = argv[next];
	r.name = argv[next + 1];
	r.online = -1;
	if (moat_identity_name_check(r.id, &err) != 0) {
		return cli_usage_error("%s", err.msg);
	}
	if (!moat_msg_command_name_ok(r.name)) {
		return cli_usage_error("command '%s' is not [a-z0-9_]{1,32}", r.name);
	}
	char payload[MOAT_MSG_COMMAND_MAX_BYTES];
	size_t len = 0;
	if (prepare(&r, &args, payload, sizeof(payload), &len, &err) != 0) {
		return cli_fail(&err);
	}

	struct moat_deploy *d = NULL;
	int rc = -1; /* -1: failed, err says why */
	if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0 || check_device(d, r.id, &err) != 0 ||
	    moat_opclient_connect(d, as, cli_session_suffix("cmd"), host, timeout_s * 1000, &r.cl,
				  NULL, &err) != 0) {
		goto out;
	}
	moat_signals_catch(on_signal, 0);
	rc = exchange(&r, payload, len, wait, timeout_s, &err);
out:
	if (rc < 0) {
		rc = cli_fail(&err);
	}
	moat_opclient_close(r.cl);
	moat_deploy_close(d);
	return rc;
}
