/* messages.h: the JSON messages devices and services exchange (src/core/messages.c).
 *
 * The schemas are the tutorial's (so firmware written for it works unchanged), repaired:
 *   telemetry  devices/ID/telemetry          {"device_id","device_type","timestamp",
 *              "telemetry":{name:number...},"metadata":{"signal_strength","free_heap",
 *              "uptime_ms","seq"}}
 *   status     devices/ID/status (retained)  {"device_id","status":"online"|"offline",
 *              "timestamp","ip_address","agent_version"}; the last will carries only
 *              device_id and status
 *   command    devices/ID/commands/NAME      {"command":NAME,"id":ID, args...}
 *   response   devices/ID/command_responses  {"device_id","command","status","timestamp",
 *              "id","detail", "interval"}
 *   diagnostics devices/ID/diagnostics       see struct moat_msg_diagnostics
 * "timestamp" is Unix time in milliseconds (the tutorial sent millis() since boot, which
 * cannot be ordered across reboots). "id" on a command is echoed by its response.
 *
 * Contract: everything here is pure (no I/O, no clock, no globals). Builders write into a
 * caller-owned buffer of a given size and fail (MOAT_EINVAL) rather than truncate; the
 * output is NUL-terminated JSON without newlines. Parsers take untrusted bytes (need not be
 * NUL-terminated), never read past len, refuse anything larger than the MOAT_MSG_*_MAX_BYTES
 * limit, refuse duplicate keys and wrong types, and on failure leave *out zeroed and fill err
 * with a one-line reason. Unknown keys are ignored where noted (tutorial firmware may send
 * more than we know).
 */
#ifndef MOAT_MESSAGES_H
#define MOAT_MESSAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"
#include "moat/identity.h"

#define MOAT_MSG_COMMAND_MAX_BYTES 1024 /* the tutorial's MQTT buffer size */
#define MOAT_MSG_TELEMETRY_MAX_BYTES 2048
#define MOAT_MSG_STATUS_MAX_BYTES 512
#define MOAT_MSG_RESPONSE_MAX_BYTES 1024
#define MOAT_MSG_DIAGNOSTICS_MAX_BYTES 2048

#define MOAT_MSG_CMD_NAME_MAX_LEN 32	/* [a-z0-9_]{1,32} */
#define MOAT_MSG_CMD_ID_MAX_LEN 64	/* [A-Za-z0-9._:-]{1,64} */
#define MOAT_MSG_STATUS_WORD_MAX_LEN 32 /* response status: [a-z_]{1,32} */
#define MOAT_MSG_DETAIL_MAX_LEN 200
#define MOAT_MSG_ARG_KEY_MAX_LEN 32 /* [a-z0-9_]{1,32} */
#define MOAT_MSG_ARG_STR_MAX_LEN 128
#define MOAT_MSG_ARGS_MAX 8
#define MOAT_MSG_READING_NAME_MAX_LEN 32 /* [a-z0-9_]{1,32} */
#define MOAT_MSG_READINGS_MAX 16
#define MOAT_MSG_ADDR_MAX_LEN 64
#define MOAT_MSG_UPDATE_INTERVAL_MIN 1 /* seconds */
#define MOAT_MSG_UPDATE_INTERVAL_MAX 86400
#define MOAT_MSG_SEQ_MAX 9007199254740991LL /* 2^53 - 1: exact in a JSON number */

enum moat_msg_cmd_kind {
	MOAT_CMD_UNKNOWN = 0, /* a well-formed command we do not implement */
	MOAT_CMD_REBOOT,
	MOAT_CMD_UPDATE_INTERVAL,
	MOAT_CMD_DIAGNOSTICS,
	MOAT_CMD_CHECK_UPDATE,
};

enum moat_msg_arg_type { MOAT_ARG_STRING, MOAT_ARG_NUMBER, MOAT_ARG_BOOL };

struct moat_msg_arg {
	char key[MOAT_MSG_ARG_KEY_MAX_LEN + 1];
	enum moat_msg_arg_type type;
	char str[MOAT_MSG_ARG_STR_MAX_LEN + 1];
	double num;
	bool boolean;
};

struct moat_msg_command {
	char name[MOAT_MSG_CMD_NAME_MAX_LEN + 1];
	enum moat_msg_cmd_kind kind;
	char id[MOAT_MSG_CMD_ID_MAX_LEN + 1]; /* "" when the sender gave none (tutorial) */
	/* every other key: strings, numbers and booleans only ("interval" included) */
	struct moat_msg_arg args[MOAT_MSG_ARGS_MAX];
	size_t arg_count;
};

struct moat_msg_reading {
	char name[MOAT_MSG_READING_NAME_MAX_LEN + 1];
	double value;
};

struct moat_msg_telemetry {
	char device_id[MOAT_ID_BUF_LEN];
	char device_type[MOAT_DEVICE_TYPE_MAX_LEN + 1];
	int64_t timestamp_ms;
	struct moat_msg_reading readings[MOAT_MSG_READINGS_MAX];
	size_t reading_count;
	/* metadata; the has_ flags say which were present (parse) or are to be written (build) */
	bool has_signal_strength, has_free_heap, has_uptime_ms, has_seq;
	int64_t signal_strength;
	int64_t free_heap;
	int64_t uptime_ms;
	int64_t seq;
};

struct moat_msg_status {
	char device_id[MOAT_ID_BUF_LEN];
	bool online;
	bool has_timestamp; /* false for the last will, which is fixed at connect time */
	int64_t timestamp_ms;
	char ip_address[MOAT_MSG_ADDR_MAX_LEN + 1]; /* "" omits it */
	char agent_version[32];			    /* "" omits it */
};

struct moat_msg_response {
	char device_id[MOAT_ID_BUF_LEN];
	char command[MOAT_MSG_CMD_NAME_MAX_LEN + 1];
	char status[MOAT_MSG_STATUS_WORD_MAX_LEN + 1]; /* accepted, completed, refused, ... */
	int64_t timestamp_ms;
	char id[MOAT_MSG_CMD_ID_MAX_LEN + 1];	  /* "" omits it */
	char detail[MOAT_MSG_DETAIL_MAX_LEN + 1]; /* "" omits it */
	bool has_interval;			  /* update_interval: the interval now */
	int64_t interval;
};

/* Real values of a Linux device; strings "" and has_ false omit a field. */
struct moat_msg_diagnostics {
	char device_id[MOAT_ID_BUF_LEN];
	int64_t timestamp_ms;
	int64_t uptime_ms; /* the agent's */
	int64_t system_uptime_s;
	int64_t rss_kb;
	int64_t free_heap; /* MemAvailable in bytes, the tutorial's field name */
	double load[3];
	char ip_address[MOAT_MSG_ADDR_MAX_LEN + 1];
	char mac_address[24];
	char kernel[128];
	char agent_version[32];
	char cert_not_after[32]; /* ISO 8601 */
	int64_t cert_days_left;
	int64_t interval_s;
	int64_t seq;
	int64_t queued; /* telemetry waiting in the offline queue */
};

/* Command names and kinds. */
enum moat_msg_cmd_kind moat_msg_command_kind(const char *name);
bool moat_msg_command_name_ok(const char *name);
bool moat_msg_command_id_ok(const char *id);
/* A telemetry reading's name: [a-z0-9_]{1,MOAT_MSG_READING_NAME_MAX_LEN}. */
bool moat_msg_reading_name_ok(const char *name);

/* Parses a command (the reference for `moat cmd`'s builder and the tests; a device, moat-agent
 * included, parses with moat-device's mdev_cmd_parse, which refuses an escape in an argument
 * where this one decodes it). topic_name is the last topic level (devices/ID/commands/NAME), or
 * NULL: when the payload has no "command" the topic's name is used (and must be valid); when both
 * are present they must agree. Refuses: empty, oversized, NUL bytes, invalid JSON, not an object,
 * duplicate keys, a missing/invalid command or id, more than MOAT_MSG_ARGS_MAX other keys, an
 * argument that is not a string, number or boolean, or is too long. */
MOAT_MUST_CHECK int moat_msg_command_parse(const char *topic_name, const void *payload, size_t len,
					   struct moat_msg_command *out, struct moat_err *err);
/* The argument named key, or NULL. */
const struct moat_msg_arg *moat_msg_command_arg(const struct moat_msg_command *cmd,
						const char *key);
/* An integer argument in [min, max]: MOAT_ENOENT when absent, MOAT_EINVAL when not an
 * integer, MOAT_EDENIED when out of range. */
MOAT_MUST_CHECK int moat_msg_command_int_arg(const struct moat_msg_command *cmd, const char *key,
					     int64_t min, int64_t max, int64_t *out,
					     struct moat_err *err);
/* Builds a command (moat cmd). cmd->kind is ignored; name and id are validated. */
MOAT_MUST_CHECK int moat_msg_command_build(const struct moat_msg_command *cmd, char *buf,
					   size_t size, size_t *out_len, struct moat_err *err);
/* Adds "key=value" to cmd: an integer or decimal becomes a number, true/false a boolean,
 * anything else a string. Refuses reserved keys (command, id), bad keys and duplicates. */
MOAT_MUST_CHECK int moat_msg_command_add_arg(struct moat_msg_command *cmd, const char *kv,
					     struct moat_err *err);

MOAT_MUST_CHECK int moat_msg_telemetry_build(const struct moat_msg_telemetry *t, char *buf,
					     size_t size, size_t *out_len, struct moat_err *err);
/* Requires device_id, device_type, timestamp and a telemetry object of numbers; metadata is
 * optional, its known fields must be integers (seq in [0, MOAT_MSG_SEQ_MAX]); unknown
 * top-level and metadata keys are ignored. */
MOAT_MUST_CHECK int moat_msg_telemetry_parse(const void *payload, size_t len,
					     struct moat_msg_telemetry *out, struct moat_err *err);

MOAT_MUST_CHECK int moat_msg_status_build(const struct moat_msg_status *s, char *buf, size_t size,
					  size_t *out_len, struct moat_err *err);
MOAT_MUST_CHECK int moat_msg_status_parse(const void *payload, size_t len,
					  struct moat_msg_status *out, struct moat_err *err);

MOAT_MUST_CHECK int moat_msg_response_build(const struct moat_msg_response *r, char *buf,
					    size_t size, size_t *out_len, struct moat_err *err);
MOAT_MUST_CHECK int moat_msg_response_parse(const void *payload, size_t len,
					    struct moat_msg_response *out, struct moat_err *err);

MOAT_MUST_CHECK int moat_msg_diagnostics_build(const struct moat_msg_diagnostics *d, char *buf,
					       size_t size, size_t *out_len, struct moat_err *err);

#endif
