/* check_mon.c: monitoring checks of the static audit: the security events file, where the
 * events go, and (with opts.system) whether this host's clock is synchronised, which
 * certificate checks on both sides of every TLS connection depend on. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/timex.h>

#include "audit_internal.h"
#include "moat/broker_supervisor.h"

#define CHECKLIST_MON "Monitoring: security events recorded and watched, clocks in sync"
#define EVENTS_REL "log/security-events.jsonl"
#define EVENTS_STALE_S (7 * 86400)

const struct moat_audit_check audit_mon_events = {
	"monitor.events_file", MOAT_AUDIT_MEDIUM,
	"the broker plugin's security events file exists and was written recently", CHECKLIST_MON,
	MOAT_OWASP_I8};
const struct moat_audit_check audit_mon_sinks = {"monitor.sinks", MOAT_AUDIT_LOW,
						 "security events reach a sink beyond this host",
						 CHECKLIST_MON, MOAT_OWASP_I8};
const struct moat_audit_check audit_mon_clock = {"monitor.clock", MOAT_AUDIT_MEDIUM,
						 "the system clock is synchronised (adjtimex)",
						 CHECKLIST_MON, MOAT_OWASP_I9};

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
		/* moat.conf names no forwarding of the events today ([monitor] is reserved): a
		 * forwarder (rsyslog, a SIEM agent) is outside what the static audit can see */
		rc = audit_cannot(a, &audit_mon_sinks,
				  "moat.conf configures no event sink; check the forwarder of "
				  "log/security-events.jsonl (moat audit --live)");
		if (rc == 0) {
			rc = audit_ran(a, &audit_mon_sinks);
		}
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
	if (state == TIME_ERROR || (tx.status & STA_UNSYNC)) {
		snprintf(ev, sizeof(ev),
			 "adjtimex: state %d, status 0x%x (STA_UNSYNC), maxerror %ld us", state,
			 (unsigned)tx.status, (long)tx.maxerror);
		rc = audit_add(a, &audit_mon_clock, MOAT_AUDIT_MEDIUM,
			       "the system clock is not synchronised", ev,
			       "timedatectl set-ntp true (systemd-timesyncd or chrony)", NULL, 0);
	}
	return rc;
}
