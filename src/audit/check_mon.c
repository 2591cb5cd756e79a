/* check_mon.c: monitoring checks of the static audit: the security events file, where the
 * events go, and (with opts.system) whether this host's clock is synchronised, which
 * certificate checks on both sides of every TLS connection depend on. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/timex.h>

#include "audit_internal.h"
#include "moat/broker_supervisor.h"
#include "moat/fsutil.h"
#include "moat/monitor_export.h"

#define CHECKLIST_MON "Monitoring: security events recorded and watched, clocks in sync"
#define EVENTS_REL "log/security-events.jsonl"
#define EVENTS_STALE_S (7 * 86400)
#define SINK_LATE_S 3600 /* an alert undelivered this long is a finding */

const struct moat_audit_check audit_mon_events = {
	"monitor.events_file", MOAT_AUDIT_MEDIUM,
	"the broker plugin's security events file exists and was written recently", CHECKLIST_MON,
	MOAT_OWASP_I8};
const struct moat_audit_check audit_mon_sinks = {
	"monitor.sinks", MOAT_AUDIT_MEDIUM,
	"[monitor] sends security events beyond this host, and the webhook's queue holds none "
	"undelivered for over an hour",
	CHECKLIST_MON, MOAT_OWASP_I8};
const struct moat_audit_check audit_mon_clock = {"monitor.clock", MOAT_AUDIT_MEDIUM,
						 "the system clock is synchronised (adjtimex)",
						 CHECKLIST_MON, MOAT_OWASP_I9};

/* The webhook's queue (state/alerts.queue, which moatd rewrites after every change): an
 * alert still in it this long after it first fired has not reached the webhook. */
static int webhook_queue(struct audit_ctx *a)
{
	const struct moat_audit_check *c = &audit_mon_sinks;
	char path[PATH_MAX], title[1024], ev[1024], when[64];
	char *text = NULL;
	size_t len = 0;
	struct moat_err e;
	int rc;
	if ((rc = moat_deploy_path(a->d, path, sizeof(path), MOAT_ALERT_QUEUE_FILE, a->err)) != 0) {
		return rc;
	}
	if (!moat_fs_exists(path)) {
		return 0; /* moatd has not queued an alert yet, or never ran with the webhook */
	}
	if (moat_fs_read_all(path, MOAT_ALERT_QUEUE_FILE_MAX_BYTES, &text, &len, &e) != 0) {
		return audit_cannot(a, c, e.msg);
	}
	struct moat_alert_queue q;
	moat_alert_queue_init(&q, MOAT_ALERT_QUEUE_MAX);
	if (moat_alert_queue_decode(text, len, &q, &e) != 0) {
		free(text);
		return audit_add(
			a, c, MOAT_AUDIT_MEDIUM,
			"the webhook's alert queue does not parse: moatd will not resend it", e.msg,
			"moatd logs the reason; move the file away and restart moatd",
			MOAT_ALERT_QUEUE_FILE, 0);
	}
	free(text);
	size_t pending = 0, late = 0;
	int64_t oldest = INT64_MAX;
	uint32_t attempts = 0;
	for (size_t i = 0; i < q.len; i++) {
		int64_t first = q.items[i].first_ms / 1000;
		pending++;
		if (a->o->now - first > SINK_LATE_S) {
			late++;
		}
		if (first < oldest) {
			oldest = first;
			attempts = q.items[i].attempts;
		}
	}
	moat_alert_queue_free(&q);
	if (late > 0) {
		audit_when(oldest, a->o->now, when, sizeof(when));
		snprintf(title, sizeof(title),
			 "%zu alert(s) have not reached the webhook for over an hour; the oldest "
			 "fired %s",
			 late, when);
		snprintf(ev, sizeof(ev),
			 "%zu alert(s) pending in %s; the oldest tried %u time(s); see "
			 "moat_export_failures_total{sink=\"webhook\"} in moatd's /metrics",
			 pending, MOAT_ALERT_QUEUE_FILE, (unsigned)attempts);
		rc = audit_add(a, c, MOAT_AUDIT_MEDIUM, title, ev,
			       "check [monitor] webhook_url and that the receiver answers 2xx "
			       "(moatd logs event=webhook_failed)",
			       MOAT_ALERT_QUEUE_FILE, 0);
	}
	return rc;
}

/* The SIEM's delivery as moatd last recorded it (state/siem.status): events waiting for
 * the collector for over an hour are a finding. */
static int siem_status(struct audit_ctx *a)
{
	const struct moat_audit_check *c = &audit_mon_sinks;
	char path[PATH_MAX], title[1024], ev[1024], when[64], ok[64];
	char *text = NULL;
	size_t len = 0;
	struct moat_err e;
	int rc;
	if ((rc = moat_deploy_path(a->d, path, sizeof(path), MOAT_SIEM_STATUS_FILE, a->err)) != 0) {
		return rc;
	}
	if (!moat_fs_exists(path)) {
		return audit_add(a, c, MOAT_AUDIT_LOW,
				 "moatd has recorded no delivery to the SIEM yet",
				 "no " MOAT_SIEM_STATUS_FILE ": moatd never ran with siem_url set",
				 "moat up (moatd exports the events)", MOAT_SIEM_STATUS_FILE, 0);
	}
	if (moat_fs_read_all(path, MOAT_SIEM_STATUS_MAX_BYTES, &text, &len, &e) != 0) {
		return audit_cannot(a, c, e.msg);
	}
	struct moat_siem_status st;
	rc = moat_siem_status_decode(text, len, &st, &e);
	free(text);
	if (rc != 0) {
		return audit_add(a, c, MOAT_AUDIT_MEDIUM,
				 "moatd's record of the SIEM does not parse", e.msg,
				 "moatd rewrites it; check that it runs (moat status)",
				 MOAT_SIEM_STATUS_FILE, 0);
	}
	if (st.pending > 0 && a->o->now - st.oldest_pending > SINK_LATE_S) {
		audit_when(st.oldest_pending, a->o->now, when, sizeof(when));
		if (st.last_ok) {
			audit_when(st.last_ok, a->o->now, ok, sizeof(ok));
		} else {
			snprintf(ok, sizeof(ok), "never");
		}
		snprintf(title, sizeof(title),
			 "%llu event(s) have not reached the SIEM for over an hour; the oldest "
			 "happened %s",
			 (unsigned long long)st.pending, when);
		snprintf(ev, sizeof(ev), "last delivery %s; last error: %s", ok,
			 st.error[0] ? st.error : "none");
		rc = audit_add(a, c, MOAT_AUDIT_MEDIUM, title, ev,
			       "check [monitor] siem_url and the collector (moatd logs "
			       "event=siem_unreachable)",
			       MOAT_SIEM_STATUS_FILE, 0);
	}
	return rc;
}

/* monitor.sinks: where [monitor] sends the events and whether they arrive */
static int sinks(struct audit_ctx *a)
{
	const struct moat_audit_check *c = &audit_mon_sinks;
	struct moat_export_settings s;
	struct moat_err e;
	int rc;
	if ((rc = audit_ran(a, c)) != 0) {
		return rc;
	}
	if (moat_export_settings_load(moat_deploy_config(a->d), &s, &e) != 0) {
		return audit_add(a, c, MOAT_AUDIT_MEDIUM, "[monitor] of moat.conf is refused",
				 e.msg, "moat config check", "moat.conf", 0);
	}
	if (!s.siem && !s.webhook) {
		return audit_add(a, c, MOAT_AUDIT_INFO,
				 "no event sink: [monitor] names no siem_url and no webhook_url",
				 "security events stay on this host (log/security-events.jsonl, "
				 "moat events) unless a forwarder outside moat sends them",
				 "set [monitor] siem_url or webhook_url (docs/CONFIGURATION.md)",
				 "moat.conf", 0);
	}
	if (s.webhook && (rc = webhook_queue(a)) != 0) {
		return rc;
	}
	if (s.siem) {
		rc = siem_status(a);
	}
	return rc;
}

int audit_monitoring(struct audit_ctx *a)
{
	char path[PATH_MAX], ev[1024], when[64];
	struct stat st;
	int rc;
	if ((rc = audit_ran(a, &audit_mon_events)) != 0 ||
	    (rc = moat_deploy_path(a->d, path, sizeof(path), EVENTS_REL, a->err)) != 0) {
		return rc;
	}
	if (stat(path, &st) != 0) {
		rc = audit_add(a, &audit_mon_events, MOAT_AUDIT_MEDIUM,
			       "no security events file: the broker never ran with the plugin here",
			       NULL, "moat up", EVENTS_REL, 0);
	} else if (a->o->now - st.st_mtime > EVENTS_STALE_S) {
		struct moat_broker_state bs;
		struct moat_err e;
		if (moat_broker_state(a->dir, &bs, &e) == 0 && bs.running) {
			snprintf(ev, sizeof(ev), "last written %s",
				 audit_when(st.st_mtime, a->o->now, when, sizeof(when)));
			rc = audit_add(a, &audit_mon_events, MOAT_AUDIT_LOW,
				       "the broker runs but wrote no security event for a week", ev,
				       "moat audit --live checks the plugin end to end", EVENTS_REL,
				       0);
		}
	}
	if (rc == 0) {
		rc = sinks(a);
	}
	if (rc != 0 || (rc = audit_ran(a, &audit_mon_clock)) != 0 || !a->o->system) {
		return rc;
	}
	struct timex tx;
	memset(&tx, 0, sizeof(tx));
	int state = adjtimex(&tx);
	if (state == -1) {
		return audit_cannot(a, &audit_mon_clock, "adjtimex failed");
	}
	if (audit_clock_unsynced(state, &tx, ev, sizeof(ev))) {
		rc = audit_add(a, &audit_mon_clock, MOAT_AUDIT_MEDIUM,
			       "the system clock is not synchronised", ev,
			       "timedatectl set-ntp true (systemd-timesyncd or chrony)", NULL, 0);
	}
	return rc;
}

bool audit_clock_unsynced(int state, const struct timex *tx, char *ev, size_t size)
{
	/* the kernel keeps STA_UNSYNC set until an NTP daemon says it is in sync, and
	 * TIME_ERROR while it is; maxerror grows by 500 us a second without one */
	if (state != TIME_ERROR && !(tx->status & STA_UNSYNC)) {
		return false;
	}
	snprintf(ev, size, "adjtimex: state %d%s, status 0x%x%s, maxerror %ld us", state,
		 state == TIME_ERROR ? " (TIME_ERROR)" : "", (unsigned)tx->status,
		 (tx->status & STA_UNSYNC) ? " (STA_UNSYNC)" : "", (long)tx->maxerror);
	return true;
}
