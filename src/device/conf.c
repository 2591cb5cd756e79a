/* conf.c: the agent's INI file. Parsed with the shared moat_config reader (inih), then
 * every section and key is checked against what the agent knows, so a typo is an error
 * that names the file and line instead of a silent default. Parsing is pure (no I/O),
 * which is what lets fuzz_agentconf feed it arbitrary bytes.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/agent_conf.h"
#include "moat/config.h"
#include "moat/fsutil.h"
#include "moat/identity.h"
#include "moat/log.h"
#include "moat/messages.h"
#include "moat/timeutil.h"

void moat_agent_conf_defaults(struct moat_agent_conf *conf)
{
	memset(conf, 0, sizeof(*conf));
	snprintf(conf->device_type, sizeof(conf->device_type), "%s", "generic");
	conf->interval_ms = MOAT_AGENT_INTERVAL_DEFAULT_MS;
	conf->queue_max = MOAT_AGENT_QUEUE_DEFAULT;
	conf->log_level = MOAT_LOG_INFO;
	conf->port = 8883;
	conf->keepalive_s = 30;
	conf->reconnect_min_ms = 500;
	conf->reconnect_max_ms = 60000;
	conf->sensor.kind = MOAT_SENSOR_SIMULATED;
	snprintf(conf->sensor.name, sizeof(conf->sensor.name), "%s", "temperature");
	conf->sensor.scale = 1.0;
	conf->update_interval_s = MOAT_AGENT_UPDATE_INTERVAL_DEFAULT_S;
	conf->renew_percent = MOAT_AGENT_RENEW_PERCENT_DEFAULT;
	conf->enroll_retry_min_ms = MOAT_AGENT_ENROLL_RETRY_MIN_DEFAULT_MS;
	conf->enroll_retry_max_ms = MOAT_AGENT_ENROLL_RETRY_MAX_DEFAULT_MS;
}

/* A duration with its unit ("500ms", "30s", "5m": moat_duration_ms_parse, which refuses a
 * bare number) into milliseconds within [min_ms, max_ms]. */
static int get_ms(const struct moat_config *cfg, const char *section, const char *key,
		  int64_t min_ms, int64_t max_ms, int64_t *out, struct moat_err *err)
{
	const struct moat_config_entry *e = moat_config_find(cfg, section, key);
	if (!e) {
		return 0;
	}
	int64_t v = 0;
	int rc = moat_duration_ms_parse(e->value, &v, err);
	if (rc != 0) {
		moat_err_prefix(err, "%s:%d: [%s] %s", cfg->path, e->line, section, key);
		return rc;
	}
	if (v < min_ms || v > max_ms) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s:%d: [%s] %s: %s is out of range (%lldms to %lldms)",
				    cfg->path, e->line, section, key, e->value, (long long)min_ms,
				    (long long)max_ms);
	}
	*out = v;
	return 0;
}

/* Copies a string value (when present) that must fit and, when path, be resolved. */
static int get_str(const struct moat_config *cfg, const char *section, const char *key,
		   const char *base_dir, char *buf, size_t size, struct moat_err *err)
{
	const struct moat_config_entry *e = moat_config_find(cfg, section, key);
	if (!e) {
		return 0;
	}
	if (e->value[0] == '\0') {
		return moat_err_set(err, MOAT_EINVAL, "%s:%d: [%s] %s is empty", cfg->path, e->line,
				    section, key);
	}
	int n;
	if (base_dir && e->value[0] != '/') {
		n = snprintf(buf, size, "%s/%s", base_dir, e->value);
	} else {
		n = snprintf(buf, size, "%s", e->value);
	}
	if (n < 0 || (size_t)n >= size) {
		return moat_err_set(err, MOAT_EINVAL, "%s:%d: [%s] %s is too long", cfg->path,
				    e->line, section, key);
	}
	return 0;
}

static bool host_ok(const char *h)
{
	if (h[0] == '\0' || strlen(h) > MOAT_AGENT_HOST_MAX_LEN) {
		return false;
	}
	for (const char *p = h; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':';
		if (!ok) {
			return false;
		}
	}
	return true;
}

/* moatd's URL ([update] and [enroll] server) must be https with a host (the clients
 * verify the server against the deployment CA and the URL's host name), no path, no
 * trailing slash. */
static int get_https_url(const struct moat_config *cfg, const char *section, char *out, size_t size,
			 struct moat_err *err)
{
	const char *s = moat_config_get(cfg, section, "server");
	if (s) {
		const char *host = s + strlen("https://");
		size_t n = strlen(s);
		bool ok = strncmp(s, "https://", strlen("https://")) == 0 && host[0] != '\0' &&
			  host[0] != ':' && strchr(host, '/') == NULL && n < size;
		for (const char *p = s; ok && *p; p++) {
			ok = *p > ' ' && *p < 0x7f && *p != '?' && *p != '#' && *p != '@';
		}
		if (!ok) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: [%s] server: '%.64s' is not https://host[:port]",
					    cfg->path, section, s);
		}
		snprintf(out, size, "%s", s);
	}
	return 0;
}

/* [update]: server, updater, state_dir, interval. */
static int parse_update(const struct moat_config *cfg, const char *base_dir,
			struct moat_agent_conf *c, struct moat_err *err)
{
	int rc;
	const char *s;
	if ((rc = get_https_url(cfg, "update", c->update_url, sizeof(c->update_url), err)) != 0) {
		return rc;
	}
	/* a bare name is looked up in PATH; a path with a slash is relative to the file */
	s = moat_config_get(cfg, "update", "updater");
	if ((rc = get_str(cfg, "update", "updater", s && strchr(s, '/') ? base_dir : NULL,
			  c->updater, sizeof(c->updater), err)) != 0 ||
	    (rc = get_str(cfg, "update", "state_dir", base_dir, c->update_state_dir,
			  sizeof(c->update_state_dir), err)) != 0 ||
	    (rc = moat_config_get_duration(cfg, "update", "interval", c->update_interval_s, 3600,
					   30 * 86400, &c->update_interval_s, err)) != 0) {
		return rc;
	}
	return 0;
}

/* [agent]: id (required), device_type, interval, queue_max, state_dir, log, log_level,
 * user. */
static int parse_agent(const struct moat_config *cfg, const char *base_dir,
		       struct moat_agent_conf *c, struct moat_err *err)
{
	int rc;
	const char *s;

	s = moat_config_get(cfg, "agent", "id");
	if (!s) {
		return moat_err_set(err, MOAT_EINVAL, "%s: [agent] id is missing", cfg->path);
	}
	if ((rc = moat_identity_name_check(s, err)) != 0) {
		moat_err_prefix(err, "%s: [agent] id", cfg->path);
		return rc;
	}
	snprintf(c->id, sizeof(c->id), "%s", s);
	s = moat_config_get(cfg, "agent", "device_type");
	if (s) {
		if ((rc = moat_device_type_check(s, err)) != 0) {
			moat_err_prefix(err, "%s: [agent] device_type", cfg->path);
			return rc;
		}
		snprintf(c->device_type, sizeof(c->device_type), "%s", s);
	}
	if ((rc = get_ms(cfg, "agent", "interval", MOAT_AGENT_INTERVAL_MIN_MS,
			 MOAT_MSG_UPDATE_INTERVAL_MAX * 1000LL, &c->interval_ms, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "agent", "queue_max", c->queue_max, 1,
				      MOAT_AGENT_QUEUE_MAX, &c->queue_max, err)) != 0 ||
	    (rc = get_str(cfg, "agent", "state_dir", base_dir, c->state_dir, sizeof(c->state_dir),
			  err)) != 0) {
		return rc;
	}
	s = moat_config_get(cfg, "agent", "log");
	if (s) {
		if (strcmp(s, "syslog") == 0) {
			c->use_syslog = true;
		} else if (strcmp(s, "stderr") == 0) {
			c->use_syslog = false;
		} else {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: [agent] log: '%s' is not stderr or syslog",
					    cfg->path, s);
		}
	}
	s = moat_config_get(cfg, "agent", "log_level");
	if (s) {
		static const char *const levels[] = {"debug", "info", "warn", "error"};
		int found = -1;
		for (int i = 0; i < 4; i++) {
			if (strcmp(s, levels[i]) == 0) {
				found = i;
			}
		}
		if (found < 0) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: [agent] log_level: '%s' is not debug, info, "
					    "warn or error",
					    cfg->path, s);
		}
		c->log_level = found;
	}
	s = moat_config_get(cfg, "agent", "user");
	if (s) {
		if ((rc = moat_account_name_check(s, err)) != 0) {
			moat_err_prefix(err, "%s: [agent] user", cfg->path);
			return rc;
		}
		snprintf(c->user, sizeof(c->user), "%s", s);
	}
	return 0;
}

/* [broker]: host (required), port, ca, cert, key (all three required), keepalive and
 * the reconnect back-off. */
static int parse_broker(const struct moat_config *cfg, const char *base_dir, bool enrolling,
			struct moat_agent_conf *c, struct moat_err *err)
{
	int rc;
	int64_t v;
	const char *s;

	s = moat_config_get(cfg, "broker", "host");
	if (!s) {
		return moat_err_set(err, MOAT_EINVAL, "%s: [broker] host is missing", cfg->path);
	}
	if (!host_ok(s)) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: [broker] host: '%s' is not a host name "
				    "or address",
				    cfg->path, s);
	}
	snprintf(c->host, sizeof(c->host), "%s", s);
	if ((rc = moat_config_get_int(cfg, "broker", "port", c->port, 1, 65535, &v, err)) != 0) {
		return rc;
	}
	c->port = (int)v;
	if ((rc = get_str(cfg, "broker", "ca", base_dir, c->ca_file, sizeof(c->ca_file), err)) !=
		    0 ||
	    (rc = get_str(cfg, "broker", "cert", base_dir, c->cert_file, sizeof(c->cert_file),
			  err)) != 0 ||
	    (rc = get_str(cfg, "broker", "key", base_dir, c->key_file, sizeof(c->key_file), err)) !=
		    0) {
		return rc;
	}
	if (enrolling && (c->cert_file[0] || c->key_file[0])) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: [broker] cert and key are not given with [enroll] (the "
				    "identity is in [enroll] dir)",
				    cfg->path);
	}
	if (enrolling && !c->ca_file[0]) {
		return moat_err_set(err, MOAT_EINVAL, "%s: [broker] needs ca", cfg->path);
	}
	if (!enrolling && (!c->ca_file[0] || !c->cert_file[0] || !c->key_file[0])) {
		return moat_err_set(err, MOAT_EINVAL, "%s: [broker] needs ca, cert and key",
				    cfg->path);
	}
	if ((rc = moat_config_get_duration(cfg, "broker", "keepalive", c->keepalive_s, 5, 3600,
					   &c->keepalive_s, err)) != 0 ||
	    (rc = get_ms(cfg, "broker", "reconnect_min", 10, 3600000, &c->reconnect_min_ms, err)) !=
		    0 ||
	    (rc = get_ms(cfg, "broker", "reconnect_max", 10, 3600000, &c->reconnect_max_ms, err)) !=
		    0) {
		return rc;
	}
	if (c->reconnect_max_ms < c->reconnect_min_ms) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: [broker] reconnect_max is below reconnect_min", cfg->path);
	}
	return 0;
}

/* [sensor]: source, name, path, command, scale (what each source needs is checked once
 * every section is read). */
static int parse_sensor(const struct moat_config *cfg, const char *base_dir,
			struct moat_agent_conf *c, struct moat_err *err)
{
	int rc;
	const char *s;

	s = moat_config_get(cfg, "sensor", "source");
	if (s) {
		if (strcmp(s, "simulated") == 0) {
			c->sensor.kind = MOAT_SENSOR_SIMULATED;
		} else if (strcmp(s, "file") == 0) {
			c->sensor.kind = MOAT_SENSOR_FILE;
		} else if (strcmp(s, "command") == 0) {
			c->sensor.kind = MOAT_SENSOR_COMMAND;
		} else {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: [sensor] source: '%s' is not simulated, file or "
					    "command",
					    cfg->path, s);
		}
	}
	s = moat_config_get(cfg, "sensor", "name");
	if (s) {
		if (!moat_msg_reading_name_ok(s)) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: [sensor] name: '%s' is not [a-z0-9_]{1,32}",
					    cfg->path, s);
		}
		snprintf(c->sensor.name, sizeof(c->sensor.name), "%s", s);
	}
	if ((rc = get_str(cfg, "sensor", "path", base_dir, c->sensor.path, sizeof(c->sensor.path),
			  err)) != 0 ||
	    (rc = get_str(cfg, "sensor", "command", NULL, c->sensor.command,
			  sizeof(c->sensor.command), err)) != 0) {
		return rc;
	}
	s = moat_config_get(cfg, "sensor", "scale");
	if (s) {
		char *end = NULL;
		errno = 0;
		double d = strtod(s, &end);
		if (errno != 0 || end == s || *end != '\0' || !isfinite(d) || d == 0.0) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: [sensor] scale: '%s' is not a non-zero number",
					    cfg->path, s);
		}
		c->sensor.scale = d;
	}
	return 0;
}

/* [enroll]: server (required), a token, a token file or a claim certificate and key (one
 * of them), dir, renew_at, retry_min, retry_max. The identity's files are in dir, so
 * [broker] names no cert or key. */
static int parse_enroll(const struct moat_config *cfg, const char *base_dir,
			struct moat_agent_conf *c, struct moat_err *err)
{
	int rc;
	const char *s;
	if ((rc = get_https_url(cfg, "enroll", c->enroll_url, sizeof(c->enroll_url), err)) != 0) {
		return rc;
	}
	if (!c->enroll_url[0]) {
		return moat_err_set(err, MOAT_EINVAL, "%s: [enroll] server is missing", cfg->path);
	}
	s = moat_config_get(cfg, "enroll", "token");
	if (s) {
		size_t n = strlen(s);
		bool ok = n > 0 && n <= MOAT_AGENT_ENROLL_TOKEN_MAX_LEN;
		for (size_t i = 0; ok && i < n; i++) {
			ok = s[i] > ' ' && s[i] < 0x7f;
		}
		if (!ok) {
			/* never echo a token, not even a malformed one */
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: [enroll] token: 1 to %d printable characters "
					    "without spaces expected",
					    cfg->path, MOAT_AGENT_ENROLL_TOKEN_MAX_LEN);
		}
		snprintf(c->enroll_token, sizeof(c->enroll_token), "%s", s);
	}
	if ((rc = get_str(cfg, "enroll", "token_file", base_dir, c->enroll_token_file,
			  sizeof(c->enroll_token_file), err)) != 0 ||
	    (rc = get_str(cfg, "enroll", "claim_cert", base_dir, c->claim_cert,
			  sizeof(c->claim_cert), err)) != 0 ||
	    (rc = get_str(cfg, "enroll", "claim_key", base_dir, c->claim_key, sizeof(c->claim_key),
			  err)) != 0 ||
	    (rc = get_str(cfg, "enroll", "dir", base_dir, c->enroll_dir, sizeof(c->enroll_dir),
			  err)) != 0) {
		return rc;
	}
	int ways = (c->enroll_token[0] != 0) + (c->enroll_token_file[0] != 0) +
		   (c->claim_cert[0] != 0 || c->claim_key[0] != 0);
	if (ways != 1 || (c->claim_cert[0] != 0) != (c->claim_key[0] != 0)) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: [enroll] needs one of token, token_file, or claim_cert "
				    "with claim_key",
				    cfg->path);
	}
	s = moat_config_get(cfg, "enroll", "renew_at");
	if (s) {
		char num[8];
		size_t n = strlen(s);
		int64_t v = 0;
		if (n > 0 && s[n - 1] == '%') {
			n--;
		}
		if (n == 0 || n >= sizeof(num)) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: [enroll] renew_at: '%.16s' is not a percentage "
					    "1..99",
					    cfg->path, s);
		}
		memcpy(num, s, n);
		num[n] = '\0';
		if (moat_int_parse(num, 1, 99, &v, err) != 0) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: [enroll] renew_at: '%.16s' is not a percentage "
					    "1..99",
					    cfg->path, s);
		}
		c->renew_percent = (int)v;
	}
	if ((rc = get_ms(cfg, "enroll", "retry_min", 10, 86400000, &c->enroll_retry_min_ms, err)) !=
		    0 ||
	    (rc = get_ms(cfg, "enroll", "retry_max", 10, 86400000, &c->enroll_retry_max_ms, err)) !=
		    0) {
		return rc;
	}
	if (c->enroll_retry_max_ms < c->enroll_retry_min_ms) {
		return moat_err_set(err, MOAT_EINVAL, "%s: [enroll] retry_max is below retry_min",
				    cfg->path);
	}
	if (!c->enroll_dir[0]) {
		if (!c->state_dir[0]) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: [enroll] needs dir, or [agent] state_dir",
					    cfg->path);
		}
		if (moat_path_join(c->enroll_dir, sizeof(c->enroll_dir), err, "%s/identity",
				   c->state_dir) != 0) {
			moat_err_prefix(err, "%s: [enroll] dir", cfg->path);
			return MOAT_EINVAL;
		}
	}
	if (moat_path_join(c->cert_file, sizeof(c->cert_file), err, "%s/current/cert.pem",
			   c->enroll_dir) != 0 ||
	    moat_path_join(c->key_file, sizeof(c->key_file), err, "%s/current/key.pem",
			   c->enroll_dir) != 0) {
		moat_err_prefix(err, "%s: [enroll] dir", cfg->path);
		return MOAT_EINVAL;
	}
	c->enroll = true;
	return 0;
}

static int parse_cfg(const struct moat_config *cfg, const char *base_dir, struct moat_agent_conf *c,
		     struct moat_err *err)
{
	static const char *const sections[] = {"agent",	 "broker", "sensor",
					       "update", "enroll", NULL};
	static const char *const enroll_keys[] = {"server",    "token", "token_file", "claim_cert",
						  "claim_key", "dir",	"renew_at",   "retry_min",
						  "retry_max", NULL};
	static const char *const update_keys[] = {"server", "state_dir", "interval", "updater",
						  NULL};
	static const char *const agent_keys[] = {"id",	      "device_type", "interval",
						 "state_dir", "queue_max",   "log",
						 "log_level", "user",	     NULL};
	static const char *const broker_keys[] = {"host",	   "port",	    "ca",
						  "cert",	   "key",	    "keepalive",
						  "reconnect_min", "reconnect_max", NULL};
	static const char *const sensor_keys[] = {"source",  "name",  "path",
						  "command", "scale", NULL};
	int rc;

	if ((rc = moat_config_check_sections(cfg, sections, err)) != 0 ||
	    (rc = moat_config_check_keys(cfg, "agent", agent_keys, err)) != 0 ||
	    (rc = moat_config_check_keys(cfg, "broker", broker_keys, err)) != 0 ||
	    (rc = moat_config_check_keys(cfg, "sensor", sensor_keys, err)) != 0 ||
	    (rc = moat_config_check_keys(cfg, "update", update_keys, err)) != 0 ||
	    (rc = moat_config_check_keys(cfg, "enroll", enroll_keys, err)) != 0) {
		return rc;
	}
	bool enrolling = false;
	for (size_t i = 0; i < cfg->count; i++) {
		enrolling = enrolling || strcmp(cfg->entries[i].section, "enroll") == 0;
	}
	if ((rc = parse_agent(cfg, base_dir, c, err)) != 0 ||
	    (rc = parse_broker(cfg, base_dir, enrolling, c, err)) != 0 ||
	    (enrolling && (rc = parse_enroll(cfg, base_dir, c, err)) != 0) ||
	    (rc = parse_sensor(cfg, base_dir, c, err)) != 0 ||
	    (rc = parse_update(cfg, base_dir, c, err)) != 0) {
		return rc;
	}
	if (c->sensor.kind == MOAT_SENSOR_FILE && !c->sensor.path[0]) {
		return moat_err_set(err, MOAT_EINVAL, "%s: [sensor] source = file needs path",
				    cfg->path);
	}
	if (c->sensor.kind == MOAT_SENSOR_COMMAND && !c->sensor.command[0]) {
		return moat_err_set(err, MOAT_EINVAL, "%s: [sensor] source = command needs command",
				    cfg->path);
	}
	return 0;
}

int moat_agent_conf_parse(const char *name, const char *text, size_t len, const char *base_dir,
			  struct moat_agent_conf *out, struct moat_err *err)
{
	struct moat_config *cfg = NULL;
	int rc;
	moat_agent_conf_defaults(out);
	if (len > MOAT_AGENT_CONF_MAX_BYTES) {
		return moat_err_set(err, MOAT_EINVAL, "%s: larger than %u bytes", name,
				    MOAT_AGENT_CONF_MAX_BYTES);
	}
	rc = moat_config_parse(name, text, len, &cfg, err);
	if (rc != 0) {
		goto out;
	}
	rc = parse_cfg(cfg, base_dir, out, err);
out:
	moat_config_free(cfg);
	if (rc != 0) {
		moat_agent_conf_defaults(out);
	}
	return rc;
}

int moat_agent_conf_load(const char *path, struct moat_agent_conf *out, struct moat_err *err)
{
	char *text = NULL;
	size_t len = 0;
	char base[PATH_MAX];
	int rc = moat_fs_read_all(path, MOAT_AGENT_CONF_MAX_BYTES, &text, &len, err);
	if (rc != 0) {
		return rc;
	}
	const char *slash = strrchr(path, '/');
	if (!slash) {
		snprintf(base, sizeof(base), ".");
	} else if (slash == path) {
		snprintf(base, sizeof(base), "/");
	} else {
		int n = snprintf(base, sizeof(base), "%.*s", (int)(slash - path), path);
		if (n < 0 || (size_t)n >= sizeof(base)) {
			free(text);
			return moat_err_set(err, MOAT_EINVAL, "%s: path too long", path);
		}
	}
	rc = moat_agent_conf_parse(path, text, len, base, out, err);
	free(text);
	return rc;
}

/* Durations go out in seconds, reconnect delays in milliseconds; paths as given. */
int moat_agent_conf_format(const struct moat_agent_conf *c, char **out_text, size_t *out_len,
			   struct moat_err *err)
{
	static const char *const sources[] = {"simulated", "file", "command"};
	static const char *const levels[] = {"debug", "info", "warn", "error"};
	size_t size = 8192 + 4 * PATH_MAX;
	char *buf = malloc(size);
	if (!buf) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	int lvl = c->log_level >= 0 && c->log_level <= 3 ? c->log_level : 1;
	int n = snprintf(buf, size,
			 "# moat-agent configuration for %s (moat device export --format agent)\n"
			 "[agent]\nid = %s\ndevice_type = %s\ninterval = %lldms\n"
			 "queue_max = %lld\nlog = %s\nlog_level = %s\n%s%s%s%s%s%s"
			 "\n[broker]\nhost = %s\nport = %d\nca = %s\n%s%s%s%s%s%s"
			 "keepalive = %llds\nreconnect_min = %lldms\nreconnect_max = %lldms\n"
			 "\n[sensor]\nsource = %s\nname = %s\nscale = %.17g\n",
			 c->id, c->id, c->device_type, (long long)c->interval_ms,
			 (long long)c->queue_max, c->use_syslog ? "syslog" : "stderr", levels[lvl],
			 c->state_dir[0] ? "state_dir = " : "", c->state_dir,
			 c->state_dir[0] ? "\n" : "", c->user[0] ? "user = " : "", c->user,
			 c->user[0] ? "\n" : "", c->host, c->port, c->ca_file,
			 c->enroll ? "" : "cert = ", c->enroll ? "" : c->cert_file,
			 c->enroll ? "" : "\n",
			 c->enroll ? "" : "key = ", c->enroll ? "" : c->key_file,
			 c->enroll ? "" : "\n", (long long)c->keepalive_s,
			 (long long)c->reconnect_min_ms, (long long)c->reconnect_max_ms,
			 sources[c->sensor.kind], c->sensor.name, c->sensor.scale);
	if (n < 0 || (size_t)n >= size) {
		free(buf);
		return moat_err_set(err, MOAT_EINVAL, "agent configuration too long");
	}
	size_t len = (size_t)n;
	if (c->sensor.path[0] || c->sensor.command[0]) {
		n = snprintf(buf + len, size - len, "%s%s%s%s%s%s",
			     c->sensor.path[0] ? "path = " : "", c->sensor.path,
			     c->sensor.path[0] ? "\n" : "",
			     c->sensor.command[0] ? "command = " : "", c->sensor.command,
			     c->sensor.command[0] ? "\n" : "");
		if (n < 0 || (size_t)n >= size - len) {
			free(buf);
			return moat_err_set(err, MOAT_EINVAL, "agent configuration too long");
		}
		len += (size_t)n;
	}
	if (c->update_url[0]) {
		n = snprintf(buf + len, size - len,
			     "\n[update]\nserver = %s\ninterval = %llds\n%s%s%s%s%s%s",
			     c->update_url, (long long)c->update_interval_s,
			     c->update_state_dir[0] ? "state_dir = " : "", c->update_state_dir,
			     c->update_state_dir[0] ? "\n" : "", c->updater[0] ? "updater = " : "",
			     c->updater, c->updater[0] ? "\n" : "");
		if (n < 0 || (size_t)n >= size - len) {
			free(buf);
			return moat_err_set(err, MOAT_EINVAL, "agent configuration too long");
		}
		len += (size_t)n;
	}
	if (c->enroll) {
		n = snprintf(buf + len, size - len,
			     "\n[enroll]\nserver = %s\nrenew_at = %d%%\nretry_min = %lldms\n"
			     "retry_max = %lldms\n",
			     c->enroll_url, c->renew_percent, (long long)c->enroll_retry_min_ms,
			     (long long)c->enroll_retry_max_ms);
		if (n < 0 || (size_t)n >= size - len) {
			free(buf);
			return moat_err_set(err, MOAT_EINVAL, "agent configuration too long");
		}
		len += (size_t)n;
		const char *keys[] = {"token", "token_file", "claim_cert", "claim_key", "dir"};
		const char *vals[] = {c->enroll_token, c->enroll_token_file, c->claim_cert,
				      c->claim_key, c->enroll_dir};
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			if (!vals[i][0]) {
				continue;
			}
			n = snprintf(buf + len, size - len, "%s = %s\n", keys[i], vals[i]);
			if (n < 0 || (size_t)n >= size - len) {
				free(buf);
				return moat_err_set(err, MOAT_EINVAL,
						    "agent configuration too long");
			}
			len += (size_t)n;
		}
	}
	/* the reader (inih as Debian builds it) refuses longer lines: never write one */
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || buf[i] == '\n') {
			if (i - start > MOAT_AGENT_CONF_LINE_MAX) {
				int w = (int)(i - start > 40 ? 40 : i - start);
				moat_err_set(
					err, MOAT_EINVAL,
					"agent configuration: '%.*s...' is longer than the %d bytes "
					"a line may have (use a shorter path)",
					w, buf + start, MOAT_AGENT_CONF_LINE_MAX);
				free(buf);
				return MOAT_EINVAL;
			}
			start = i + 1;
		}
	}
	*out_text = buf;
	*out_len = len;
	return 0;
}
