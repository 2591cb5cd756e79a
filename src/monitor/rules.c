/* rules.c: the anomaly rules, pure: the caller (moatd's ingest writer) keeps the counts and
 * passes them in with the time, so a unit test states every input. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "moat/monitor.h"
#include "moat/net.h"

static void say(char *evidence, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(char *evidence, size_t size, const char *fmt, ...)
{
	if (!evidence || size == 0) {
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(evidence, size, fmt, ap);
	va_end(ap);
}

bool moat_rule_rate(const struct moat_monitor_settings *s, int64_t count, int64_t window_ms,
		    int64_t interval_s, char *evidence, size_t size)
{
	if (interval_s <= 0 || window_ms <= 0) {
		return false; /* no commanded interval known: nothing to compare with */
	}
	double allowed = (double)window_ms / (double)(interval_s * 1000) + 1.0;
	double limit = s->rate_factor * allowed;
	if ((double)count <= limit) {
		return false;
	}
	say(evidence, size, "messages=%lld window_ms=%lld interval_s=%lld limit=%.0f",
	    (long long)count, (long long)window_ms, (long long)interval_s, limit);
	return true;
}

bool moat_rule_silence(const struct moat_monitor_settings *s, int64_t last_ms, int64_t now_ms,
		       int64_t interval_s, bool offline_by_will, char *evidence, size_t size)
{
	if (interval_s <= 0 || last_ms <= 0 || offline_by_will) {
		return false;
	}
	double limit_ms = s->silence_factor * (double)interval_s * 1000.0;
	int64_t silent = now_ms - last_ms;
	if ((double)silent <= limit_ms) {
		return false;
	}
	say(evidence, size, "silent_ms=%lld interval_s=%lld limit_ms=%.0f will=none",
	    (long long)silent, (long long)interval_s, limit_ms);
	return true;
}

bool moat_rule_payload_size(const struct moat_monitor_settings *s, size_t size, double mean,
			    int64_t samples, char *evidence, size_t size_ev)
{
	if (samples < s->payload_min_samples || mean <= 0) {
		return false;
	}
	double x = (double)size;
	if (x <= mean * s->payload_factor && x >= mean / s->payload_factor) {
		return false;
	}
	say(evidence, size_ev, "bytes=%zu type_mean=%.0f samples=%lld factor=%g", size, mean,
	    (long long)samples, s->payload_factor);
	return true;
}

bool moat_rule_burst(int64_t count, int64_t threshold, const char *what, char *evidence,
		     size_t size)
{
	/* fires once, on reaching the threshold; the window's next ones are the same burst */
	if (count != threshold) {
		return false;
	}
	say(evidence, size, "%s=%lld threshold=%lld", what, (long long)count, (long long)threshold);
	return true;
}

bool moat_rule_release(const char *prev, const char *now, bool offered, char *evidence, size_t size)
{
	if (!prev[0] || !now[0] || strcmp(prev, now) == 0 || offered) {
		return false;
	}
	say(evidence, size, "previous=\"%s\" running=\"%s\" offered=no", prev, now);
	return true;
}

bool moat_rule_event_jump(const struct moat_monitor_settings *s, int64_t before, int64_t after,
			  char *evidence, size_t size)
{
	if (after < s->event_jump_min) {
		return false;
	}
	double base = before > 0 ? (double)before : 1.0;
	if ((double)after < s->event_jump_factor * base) {
		return false;
	}
	say(evidence, size, "events_before=%lld events_after=%lld factor=%g", (long long)before,
	    (long long)after, s->event_jump_factor);
	return true;
}

bool moat_rule_zone(const struct moat_net_policy *p, const char *addr, char *evidence, size_t size)
{
	int z = moat_net_zone_of_text(p, addr);
	if (z == MOAT_NET_NOT_AN_ADDRESS) {
		return false; /* no address to judge */
	}
	if (z >= 0 && p->zones[z].kind == MOAT_NET_ZONE_DEVICE) {
		return false;
	}
	say(evidence, size, "address=%s zone=%s", addr, z >= 0 ? p->zones[z].name : "none");
	return true;
}

int64_t moat_window_add(struct moat_window *w, int64_t now_ms, int64_t window_ms)
{
	if (w->count == 0 || now_ms - w->start_ms >= window_ms || now_ms < w->start_ms) {
		w->start_ms = now_ms;
		w->count = 0;
	}
	return ++w->count;
}

const char *moat_clone_connected(struct moat_clone_track *t, const struct moat_monitor_settings *s,
				 const char *addr, int64_t now_ms, char *evidence, size_t size)
{
	const char *fired = NULL;
	if (t->sessions > 0) {
		/* connected while a session of the same client id was open: a takeover */
		int64_t n = moat_window_add(&t->takeovers, now_ms, s->clone_window_ms);
		if (n == s->clone_switches) {
			say(evidence, size, "takeovers=%lld window_ms=%lld address=%s",
			    (long long)n, (long long)s->clone_window_ms, addr);
			fired = MOAT_RULE_CLONE_SESSION;
		}
	}
	if (!fired && addr[0] && t->last_addr[0] && strcmp(addr, t->last_addr) != 0 &&
	    strcmp(addr, t->prev_addr) == 0) {
		/* back to the address before the last one: A, B, A */
		int64_t n = moat_window_add(&t->switches, now_ms, s->clone_window_ms);
		if (n == s->clone_switches) {
			say(evidence, size, "switches=%lld addresses=%s,%s window_ms=%lld",
			    (long long)n, addr, t->last_addr, (long long)s->clone_window_ms);
			fired = MOAT_RULE_CLONE_ADDR;
		}
	}
	if (addr[0] && strcmp(addr, t->last_addr) != 0) {
		snprintf(t->prev_addr, sizeof(t->prev_addr), "%s", t->last_addr);
		snprintf(t->last_addr, sizeof(t->last_addr), "%s", addr);
	}
	t->sessions++;
	return fired;
}

void moat_clone_disconnected(struct moat_clone_track *t)
{
	if (t->sessions > 0) {
		t->sessions--;
	}
}
