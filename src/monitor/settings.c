/* settings.c: [monitor] of moat.conf, the exporter's keys. */
#include <stdio.h>
#include <string.h>

#include "moat/monitor.h"
#include "moat/monitor_export.h"
#include "moat/timeutil.h"

static const char *const keys[] = {
	"siem_url",
	"siem_format",
	"siem_ca",
	"siem_queue_max",
	"webhook_url",
	"webhook_ca",
	"webhook_queue_max",
	"webhook_retry_min",
	"webhook_retry_max",
	"webhook_summary",
	"webhook_gather",
	"dedup_window",
	NULL,
};

const char *const *const moat_export_config_keys = keys;

static bool listed(const char *const *list, const char *key)
{
	for (; *list; list++) {
		if (strcmp(*list, key) == 0) {
			return true;
		}
	}
	return false;
}

int moat_monitor_keys_check(const struct moat_config *cfg, struct moat_err *err)
{
	for (size_t i = 0; i < cfg->count; i++) {
		const struct moat_config_entry *e = &cfg->entries[i];
		if (strcmp(e->section, "monitor") == 0 &&
		    !listed(moat_monitor_config_keys, e->key) &&
		    !listed(moat_export_config_keys, e->key)) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s:%d: unknown key '%s' in [monitor]", cfg->path,
					    e->line, e->key);
		}
	}
	return 0;
}

static int url_key(const struct moat_config *cfg, const char *key, struct moat_export_url *out,
		   struct moat_err *err)
{
	int rc = moat_export_url_parse(moat_config_get(cfg, "monitor", key), out, err);
	if (rc != 0) {
		moat_err_prefix(err, "%s: [monitor] %s", cfg->path, key);
	}
	return rc;
}

static int path_key(const struct moat_config *cfg, const char *key, char *dst, size_t size,
		    struct moat_err *err)
{
	const char *v = moat_config_get(cfg, "monitor", key);
	dst[0] = '\0';
	if (!v) {
		return 0;
	}
	if (v[0] != '/') {
		return moat_err_set(err, MOAT_EINVAL, "%s: [monitor] %s: must be an absolute path",
				    cfg->path, key);
	}
	snprintf(dst, size, "%s", v);
	return 0;
}

/* dedup_window: a duration with its unit (moat_duration_ms_parse), 0 (off) to 1 h. */
static int dedup_window(const struct moat_config *cfg, int64_t *out, struct moat_err *err)
{
	const char *v = moat_config_get(cfg, "monitor", "dedup_window");
	*out = 60000;
	if (!v) {
		return 0;
	}
	int64_t ms = 0;
	int rc = moat_duration_ms_parse(v, &ms, err);
	if (rc == 0 && (ms < 0 || ms > 3600000)) {
		rc = moat_err_set(err, MOAT_EINVAL, "'%s': from 0s to 1h", v);
	}
	if (rc != 0) {
		moat_err_prefix(err, "%s: [monitor] dedup_window", cfg->path);
		return rc;
	}
	*out = ms;
	return 0;
}

int moat_export_settings_load(const struct moat_config *cfg, struct moat_export_settings *out,
			      struct moat_err *err)
{
	struct moat_export_settings s;
	int rc;
	memset(&s, 0, sizeof(s));
	s.siem_format = MOAT_SIEM_RFC5424;
	if ((rc = moat_monitor_keys_check(cfg, err)) != 0) {
		return rc;
	}
	if (moat_config_get(cfg, "monitor", "siem_url")) {
		if ((rc = url_key(cfg, "siem_url", &s.siem_url, err)) != 0) {
			return rc;
		}
		if (s.siem_url.scheme == MOAT_EXPORT_HTTPS) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: [monitor] siem_url: must be tcp:// or tls://",
					    cfg->path);
		}
		s.siem = true;
	}
	const char *fmt = moat_config_get(cfg, "monitor", "siem_format");
	if (fmt && (rc = moat_siem_format_parse(fmt, &s.siem_format, err)) != 0) {
		moat_err_prefix(err, "%s: [monitor] siem_format", cfg->path);
		return rc;
	}
	if (moat_config_get(cfg, "monitor", "webhook_url")) {
		if ((rc = url_key(cfg, "webhook_url", &s.webhook_url, err)) != 0) {
			return rc;
		}
		if (s.webhook_url.scheme != MOAT_EXPORT_HTTPS) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: [monitor] webhook_url: must be https://",
					    cfg->path);
		}
		s.webhook = true;
	}
	if ((rc = path_key(cfg, "siem_ca", s.siem_ca, sizeof(s.siem_ca), err)) != 0 ||
	    (rc = path_key(cfg, "webhook_ca", s.webhook_ca, sizeof(s.webhook_ca), err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "monitor", "siem_queue_max", 10000, 1, 1000000,
				      &s.siem_queue_max, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "monitor", "webhook_queue_max", 1000, 1,
				      MOAT_ALERT_QUEUE_MAX, &s.webhook_queue_max, err)) != 0 ||
	    (rc = moat_config_get_duration(cfg, "monitor", "webhook_retry_min", 1, 1, 3600,
					   &s.webhook_retry_min_ms, err)) != 0 ||
	    (rc = moat_config_get_duration(cfg, "monitor", "webhook_retry_max", 300, 1, 86400,
					   &s.webhook_retry_max_ms, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "monitor", "webhook_summary", 5, 2, 10000,
				      &s.webhook_summary_threshold, err)) != 0 ||
	    (rc = moat_config_get_duration(cfg, "monitor", "webhook_gather", 2, 0, 60,
					   &s.webhook_gather_ms, err)) != 0 ||
	    (rc = dedup_window(cfg, &s.dedup_window_ms, err)) != 0) {
		return rc;
	}
	if (s.webhook_retry_max_ms < s.webhook_retry_min_ms) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: [monitor] webhook_retry_max is below webhook_retry_min",
				    cfg->path);
	}
	s.webhook_retry_min_ms *= 1000;
	s.webhook_retry_max_ms *= 1000;
	s.webhook_gather_ms *= 1000;
	*out = s;
	return 0;
}
