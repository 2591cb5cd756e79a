/* agent_conf.h: the configuration of one device agent (moat-agent, and each device of
 * `moat sim`): the INI file that `moat device export ID --format agent` writes and
 * moat-agent reads, its parser and writer, and the certificate check the agent makes
 * before it connects. struct moat_agent_conf is public and plain data: callers allocate
 * it by value, fill it with moat_agent_conf_defaults and then set fields.
 */
#ifndef MOAT_AGENT_CONF_H
#define MOAT_AGENT_CONF_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"
#include "moat/identity.h"
#include "moat/messages.h"

#define MOAT_AGENT_CONF_MAX_BYTES (64u * 1024u)
#define MOAT_AGENT_CONF_LINE_MAX 198 /* the longest line the INI reader accepts */
#define MOAT_AGENT_HOST_MAX_LEN 253
#define MOAT_AGENT_QUEUE_DEFAULT 10000 /* records */
#define MOAT_AGENT_QUEUE_MAX 1000000   /* records */
#define MOAT_AGENT_INTERVAL_DEFAULT_MS 10000
#define MOAT_AGENT_INTERVAL_MIN_MS 100
#define MOAT_AGENT_UPDATE_URL_MAX_LEN 512
#define MOAT_AGENT_UPDATE_INTERVAL_DEFAULT_S (24 * 3600)
#define MOAT_AGENT_SENSOR_COMMAND_MAX_LEN 511
#define MOAT_AGENT_ENROLL_TOKEN_MAX_LEN 128
#define MOAT_AGENT_RENEW_PERCENT_DEFAULT 67 /* two thirds of the certificate's lifetime */
#define MOAT_AGENT_ENROLL_RETRY_MIN_DEFAULT_MS 30000
#define MOAT_AGENT_ENROLL_RETRY_MAX_DEFAULT_MS 3600000

enum moat_sensor_kind {
	MOAT_SENSOR_SIMULATED = 0, /* the tutorial's temperature and humidity */
	MOAT_SENSOR_FILE,	   /* a number in a file, times scale */
	MOAT_SENSOR_COMMAND,	   /* a number printed by a command (/bin/sh -c), times scale */
};

struct moat_sensor_conf {
	enum moat_sensor_kind kind;
	char name[MOAT_MSG_READING_NAME_MAX_LEN + 1]; /* reading name, default "temperature" */
	char path[PATH_MAX];			      /* file */
	char command[MOAT_AGENT_SENSOR_COMMAND_MAX_LEN + 1]; /* command */
	double scale;					     /* default 1 */
};

/* The agent's INI file (written by `moat device export ID --format agent`):
 *   [agent]  id, device_type, interval (telemetry period: 100ms..1d, with its unit: 500ms,
 *            30s, 5m; a bare number is refused), state_dir, queue_max,
 *            log (stderr|syslog), log_level (debug|info|warn|error), user (the account
 *            moat-agent switches to when started as root; its files, the state
 *            directory and moat-boot's slots must be that account's; without it, an agent
 *            started as root stays uid 0 with every capability dropped)
 *   [broker] host, port, ca, cert, key, keepalive (duration), reconnect_min,
 *            reconnect_max (durations with a unit, "ms" allowed; a bare number is refused)
 *   [sensor] source (simulated|file|command), name, path, command, scale
 *   [update] server (https://host:port of moatd), state_dir (the device state directory
 *            of moat-boot; default: $MOAT_BOOT_STATE), interval (duration between update
 *            checks, 1h..30d, default 24h), updater (the moat-update program: a path, or a
 *            name looked up in PATH; default: moat-update next to the agent's executable,
 *            else in PATH). Without server the agent has no update client.
 *   [enroll] the device makes its own key and gets its certificate over EST (RFC 7030)
 *            from server (https://host[:port] of moatd), authenticated by token (or
 *            token_file, a file holding it) or by claim_cert and claim_key (a factory
 *            certificate); it renews by simplereenroll when renew_at (a percentage of the
 *            lifetime, 1..99, default 67; counted from notBefore, or from when the
 *            certificate arrived if that is later) has passed, retrying from retry_min to retry_max
 *            (durations, "ms" allowed; default 30s and 1h). The identity lives in dir
 *            (default state_dir/identity): [broker] ca is still required (the root CA,
 *            pinned for EST too), cert and key must not be given: they are
 *            dir/current/cert.pem and dir/current/key.pem.
 * Relative paths are relative to the directory of the file. Unknown sections and keys are
 * errors (a typo must not silently fall back to a default). */
struct moat_agent_conf {
	char id[MOAT_ID_BUF_LEN];
	char device_type[MOAT_DEVICE_TYPE_MAX_LEN + 1];
	int64_t interval_ms; /* "interval": a duration with its unit, down to 100ms */
	char state_dir[PATH_MAX];
	int64_t queue_max;
	bool use_syslog;
	int log_level;				  /* enum moat_log_level */
	char user[MOAT_ACCOUNT_NAME_MAX_LEN + 1]; /* "" : none (stay the starting user) */

	char host[MOAT_AGENT_HOST_MAX_LEN + 1];
	int port;
	char ca_file[PATH_MAX];
	char cert_file[PATH_MAX];
	char key_file[PATH_MAX];
	int64_t keepalive_s;
	int64_t reconnect_min_ms;
	int64_t reconnect_max_ms;

	struct moat_sensor_conf sensor;

	char update_url[MOAT_AGENT_UPDATE_URL_MAX_LEN + 1]; /* "" : no update client */
	char update_state_dir[PATH_MAX];		    /* "" : $MOAT_BOOT_STATE */
	char updater[PATH_MAX];				    /* "" : the default */
	int64_t update_interval_s;

	bool enroll;						/* an [enroll] section */
	char enroll_url[MOAT_AGENT_UPDATE_URL_MAX_LEN + 1];	/* server */
	char enroll_token[MOAT_AGENT_ENROLL_TOKEN_MAX_LEN + 1]; /* token ("" : none) */
	char enroll_token_file[PATH_MAX];			/* token_file ("" : none) */
	char claim_cert[PATH_MAX], claim_key[PATH_MAX];		/* "" : none */
	char enroll_dir[PATH_MAX];
	int renew_percent;
	int64_t enroll_retry_min_ms, enroll_retry_max_ms;

	/* not in the file: set by the simulator */
	bool no_fsync; /* state and queue writes skip fsync (many devices on one disk) */
	bool quiet;    /* log only warnings and errors */
};

/* Parses the INI text (len bytes, need not be NUL-terminated). name is used in messages;
 * base_dir resolves relative paths (NULL: the current directory). Pure: no I/O. */
MOAT_MUST_CHECK int moat_agent_conf_parse(const char *name, const char *text, size_t len,
					  const char *base_dir, struct moat_agent_conf *out,
					  struct moat_err *err);
/* Reads the file at path (at most MOAT_AGENT_CONF_MAX_BYTES) and parses it, relative paths
 * resolved against the file's directory. */
MOAT_MUST_CHECK int moat_agent_conf_load(const char *path, struct moat_agent_conf *out,
					 struct moat_err *err);
/* Writes conf as INI text (paths as given) into a malloc'd buffer the caller frees;
 * MOAT_EINVAL when a line would be longer than MOAT_AGENT_CONF_LINE_MAX (never writes a
 * file the reader refuses). */
MOAT_MUST_CHECK int moat_agent_conf_format(const struct moat_agent_conf *conf, char **out_text,
					   size_t *out_len, struct moat_err *err);
/* Defaults for every field; id and host empty. */
void moat_agent_conf_defaults(struct moat_agent_conf *conf);

/* Refuses to run with a certificate the broker would refuse: MOAT_ESTATE naming the system
 * clock when now is before notBefore, MOAT_ESTATE when it has expired. Fills the cert's
 * notAfter (out_not_after may be NULL). */
MOAT_MUST_CHECK int moat_agent_check_cert(const char *cert_path, int64_t now,
					  int64_t *out_not_after, struct moat_err *err);

#endif
