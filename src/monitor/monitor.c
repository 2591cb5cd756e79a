/* monitor.c: the hook moatd publishes recorded security events to, and [monitor] of
 * moat.conf. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "moat/monitor.h"
#include "moat/timeutil.h"

/* ---- hooks ---- */

struct hook {
	moat_security_event_hook fn;
	void *ctx;
};

static pthread_mutex_t hooks_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hook hooks[MOAT_MONITOR_HOOKS_MAX];
static size_t hook_count;

int moat_monitor_subscribe(moat_security_event_hook fn, void *ctx, struct moat_err *err)
{
	int rc = 0;
	pthread_mutex_lock(&hooks_lock);
	if (hook_count >= MOAT_MONITOR_HOOKS_MAX) {
		rc = moat_err_set(err, MOAT_ESTATE, "security event hooks: at most %d",
				  MOAT_MONITOR_HOOKS_MAX);
	} else {
		hooks[hook_count].fn = fn;
		hooks[hook_count].ctx = ctx;
		hook_count++;
	}
	pthread_mutex_unlock(&hooks_lock);
	return rc;
}

void moat_monitor_unsubscribe(moat_security_event_hook fn, void *ctx)
{
	pthread_mutex_lock(&hooks_lock);
	for (size_t i = 0; i < hook_count; i++) {
		if (hooks[i].fn == fn && hooks[i].ctx == ctx) {
			memmove(&hooks[i], &hooks[i + 1], (hook_count - i - 1) * sizeof(hooks[0]));
			hook_count--;
			break;
		}
	}
	pthread_mutex_unlock(&hooks_lock);
}

void moat_monitor_publish(const struct moat_security_event *ev)
{
	/* Held while the hooks run, so unsubscribe waits for a running hook. */
	pthread_mutex_lock(&hooks_lock);
	for (size_t i = 0; i < hook_count; i++) {
		hooks[i].fn(ev, hooks[i].ctx);
	}
	pthread_mutex_unlock(&hooks_lock);
}

/* ---- [monitor] ---- */

#define DAY_MS (24LL * 3600 * 1000)

void moat_monitor_settings_default(struct moat_monitor_settings *s)
{
	*s = (struct moat_monitor_settings){
		.telemetry_retention_ms = 7 * DAY_MS,
		.minute_retention_ms = 14 * DAY_MS,
		.hour_retention_ms = 400 * DAY_MS,
		.event_retention_ms = 400 * DAY_MS,
		.queue_max = 200000,
		.batch_max = 5000,
		.lag_alert_ms = 2000,
		.session_ms = 120000,
		.rate_factor = 3.0,
		.rate_window_ms = 60000,
		.silence_factor = 3.0,
		.payload_factor = 4.0,
		.payload_min_samples = 20,
		.auth_burst = 10,
		.acl_burst = 5, /* docs/CONFIGURATION.md says why: above one reconnection's worth */
		.burst_window_ms = 60000,
		.clone_switches = 3,
		.clone_window_ms = 300000,
		.zone_check = false,
		.event_jump_factor = 4.0,
		.event_jump_min = 5,
		.event_jump_window_ms = 600000,
		.anomaly_open_ms = 3600000,
	};
}

/* A duration with its unit (moat_duration_ms_parse) in [min, max] ms. */
static int get_ms(const struct moat_config *cfg, const char *key, int64_t def, int64_t min,
		  int64_t max, int64_t *out, struct moat_err *err)
{
	const struct moat_config_entry *e = moat_config_find(cfg, "monitor", key);
	if (!e) {
		*out = def;
		return 0;
	}
	int64_t v = 0;
	/* "0" needs no unit where 0 is allowed (off) */
	int rc = min == 0 && strcmp(e->value, "0") == 0 ? 0
							: moat_duration_ms_parse(e->value, &v, err);
	if (rc == 0 && (v < min || v > max)) {
		rc = moat_err_set(err, MOAT_EINVAL, "'%s': out of range", e->value);
	}
	if (rc != 0) {
		moat_err_prefix(err, "%s:%d: [monitor] %s", cfg->path, e->line, key);
		return rc;
	}
	*out = v;
	return 0;
}

/* A factor: a decimal number in [1, 1000], written like "3" or "2.5". */
static int get_factor(const struct moat_config *cfg, const char *key, double def, double *out,
		      struct moat_err *err)
{
	const char *v = moat_config_get(cfg, "monitor", key);
	if (!v) {
		*out = def;
		return 0;
	}
	double x = 0;
	char tail = 0;
	if (sscanf(v, "%lf%c", &x, &tail) != 1 || !(x >= 1.0 && x <= 1000.0)) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: [monitor] %s: expected a number from 1 to 1000", cfg->path,
				    key);
	}
	*out = x;
	return 0;
}

/* the ingest's keys of [monitor] (the export's are in settings.c) */
static const char *const keys[] = {
	"telemetry_retention", "minute_retention",  "hour_retention",	"event_retention",
	"ingest_queue",	       "ingest_batch",	    "ingest_lag_alert", "ingest_session",
	"rate_factor",	       "rate_window",	    "silence_factor",	"payload_factor",
	"payload_min_samples", "auth_burst",	    "acl_burst",	"burst_window",
	"clone_switches",      "clone_window",	    "zone_check",	"event_jump_factor",
	"event_jump_min",      "event_jump_window", "anomaly_open",	NULL,
};

const char *const *const moat_monitor_config_keys = keys;

int moat_monitor_settings_load(const struct moat_config *cfg, struct moat_monitor_settings *out,
			       struct moat_err *err)
{
	struct moat_monitor_settings s;
	moat_monitor_settings_default(&s);
	bool has_network = false;
	for (size_t i = 0; i < cfg->count; i++) {
		if (strcmp(cfg->entries[i].section, "network") == 0) {
			has_network = true;
		}
	}
	const int64_t min_ms = 1000, max_ms = 3650 * DAY_MS;
	int rc;
	if ((rc = moat_monitor_keys_check(cfg, err)) != 0 ||
	    (rc = get_ms(cfg, "telemetry_retention", s.telemetry_retention_ms, 60000, max_ms,
			 &s.telemetry_retention_ms, err)) != 0 ||
	    (rc = get_ms(cfg, "minute_retention", s.minute_retention_ms, 60000, max_ms,
			 &s.minute_retention_ms, err)) != 0 ||
	    (rc = get_ms(cfg, "hour_retention", s.hour_retention_ms, 3600000, max_ms,
			 &s.hour_retention_ms, err)) != 0 ||
	    (rc = get_ms(cfg, "event_retention", s.event_retention_ms, 3600000, max_ms,
			 &s.event_retention_ms, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "monitor", "ingest_queue", s.queue_max, 1000, 10000000,
				      &s.queue_max, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "monitor", "ingest_batch", s.batch_max, 1, 100000,
				      &s.batch_max, err)) != 0 ||
	    (rc = get_ms(cfg, "ingest_lag_alert", s.lag_alert_ms, 100, 3600000, &s.lag_alert_ms,
			 err)) != 0 ||
	    (rc = get_ms(cfg, "ingest_session", s.session_ms, 0, DAY_MS, &s.session_ms, err)) !=
		    0 ||
	    (rc = get_factor(cfg, "rate_factor", s.rate_factor, &s.rate_factor, err)) != 0 ||
	    (rc = get_ms(cfg, "rate_window", s.rate_window_ms, min_ms, DAY_MS, &s.rate_window_ms,
			 err)) != 0 ||
	    (rc = get_factor(cfg, "silence_factor", s.silence_factor, &s.silence_factor, err)) !=
		    0 ||
	    (rc = get_factor(cfg, "payload_factor", s.payload_factor, &s.payload_factor, err)) !=
		    0 ||
	    (rc = moat_config_get_int(cfg, "monitor", "payload_min_samples", s.payload_min_samples,
				      1, 1000000, &s.payload_min_samples, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "monitor", "auth_burst", s.auth_burst, 1, 1000000,
				      &s.auth_burst, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "monitor", "acl_burst", s.acl_burst, 1, 1000000,
				      &s.acl_burst, err)) != 0 ||
	    (rc = get_ms(cfg, "burst_window", s.burst_window_ms, min_ms, DAY_MS, &s.burst_window_ms,
			 err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "monitor", "clone_switches", s.clone_switches, 1, 1000,
				      &s.clone_switches, err)) != 0 ||
	    (rc = get_ms(cfg, "clone_window", s.clone_window_ms, min_ms, DAY_MS, &s.clone_window_ms,
			 err)) != 0 ||
	    (rc = moat_config_get_bool(cfg, "monitor", "zone_check", has_network, &s.zone_check,
				       err)) != 0 ||
	    (rc = get_factor(cfg, "event_jump_factor", s.event_jump_factor, &s.event_jump_factor,
			     err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "monitor", "event_jump_min", s.event_jump_min, 1,
				      1000000, &s.event_jump_min, err)) != 0 ||
	    (rc = get_ms(cfg, "event_jump_window", s.event_jump_window_ms, min_ms, 30 * DAY_MS,
			 &s.event_jump_window_ms, err)) != 0 ||
	    (rc = get_ms(cfg, "anomaly_open", s.anomaly_open_ms, min_ms, 30 * DAY_MS,
			 &s.anomaly_open_ms, err)) != 0) {
		return rc;
	}
	if (s.minute_retention_ms < s.telemetry_retention_ms ||
	    s.hour_retention_ms < s.minute_retention_ms) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: [monitor] retentions must grow: telemetry_retention <= "
				    "minute_retention <= hour_retention",
				    cfg->path);
	}
	*out = s;
	return 0;
}
