/* budget.c: how many security events may be written, so that no flood silences the rest.
 *
 * A closed burst of bad handshakes once used up a single global budget and the acl_denied
 * events of a device probing another right after were never written. Now every event is
 * counted against its source and its kind first, and only then against the total:
 *   source: the identity, when the policy lists it (its mp_ident entry, per kind), else the
 *           peer's address (a fixed table keyed by a seeded hash, so an attacker cannot pick
 *           addresses that share a slot with a victim's; when every probed slot is busy the
 *           event is limited by its kind's budget alone);
 *   kind:   each kind has its own window, so a flood of one never suppresses another;
 *   total:  MP_EVENTS_PER_S_MAX, a bound on disk writes.
 * The next event written for the same source and kind says how many were suppressed
 * before it; the events_suppressed summary (events.c, from TICK) counts every suppression by
 * kind.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "plugin_internal.h"

bool moat_plugin_budget_init(struct mp_state *st)
{
	st->addresses = mosquitto_calloc(MP_EVENT_ADDRESS_SLOTS, sizeof(*st->addresses));
	if (!st->addresses) {
		return false;
	}
	/* A seed that cannot be read leaves a fixed hash: slots are then guessable, which
	 * only lets an attacker share a victim's address budget, never skip a kind's. */
	if (getrandom(&st->address_seed, sizeof(st->address_seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(st->address_seed)) {
		st->address_seed = 0x9E3779B9u;
	}
	return true;
}

void moat_plugin_budget_free(struct mp_state *st)
{
	mosquitto_free(st->addresses);
	st->addresses = NULL;
}

/* One window's count: true when there is room (and takes it). */
static bool window_take(int64_t *window_ms, uint32_t *in_window, uint32_t budget, int64_t now_ms)
{
	if (now_ms - *window_ms >= MP_EVENT_WINDOW_MS) {
		*window_ms = now_ms;
		*in_window = 0;
	}
	if (*in_window >= budget) {
		return false;
	}
	(*in_window)++;
	return true;
}

static uint32_t address_hash(const struct mp_state *st, const char *address)
{
	uint32_t h = 2166136261u ^ st->address_seed;
	for (const unsigned char *p = (const unsigned char *)address; *p; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h ^ (h >> 15);
}

/* The budget of address: its slot, a free or idle one taken over, or NULL (all busy). */
static struct mp_address_budget *address_slot(struct mp_state *st, const char *address,
					      int64_t now_ms)
{
	if (!st->addresses || strlen(address) > MP_ADDRESS_MAX_LEN) {
		return NULL;
	}
	uint32_t h = address_hash(st, address);
	struct mp_address_budget *idle = NULL;
	for (uint32_t i = 0; i < MP_EVENT_ADDRESS_PROBES; i++) {
		struct mp_address_budget *b = &st->addresses[(h + i) % MP_EVENT_ADDRESS_SLOTS];
		if (strcmp(b->address, address) == 0) {
			return b;
		}
		/* Idle: nothing in its window and nothing left to report. */
		bool quiet = now_ms - b->window_ms >= MP_EVENT_WINDOW_MS;
		for (int k = 0; quiet && k < MP_EV_COUNT; k++) {
			quiet = b->suppressed[k] == 0;
		}
		if (!idle && (b->address[0] == '\0' || quiet)) {
			idle = b;
		}
	}
	if (idle) {
		memset(idle, 0, sizeof(*idle));
		memcpy(idle->address, address, strlen(address) + 1);
	}
	return idle;
}

/* The source's budget: true when ev may go on to the kind's. */
static bool source_allows(struct mp_state *st, const struct mp_event *ev, int64_t now_ms,
			  uint64_t *out_suppressed)
{
	int64_t *window_ms = NULL;
	int64_t address_window_ms = 0; /* an address's window: reset for all its kinds at once */
	uint32_t *in_window = NULL;
	uint64_t *suppressed = NULL;
	uint32_t budget = 0;
	/* Only identities the policy lists get state, so hostile names cannot grow the table. */
	struct mp_ident *id = NULL;
	if (ev->identity && moat_policy_find(&st->policy, ev->identity)) {
		id = moat_plugin_ident_get(st, ev->identity);
	}
	if (id) {
		window_ms = &id->event_window_ms[ev->kind];
		in_window = &id->events_in_window[ev->kind];
		suppressed = &id->suppressed[ev->kind];
		budget = MP_EVENTS_PER_WINDOW;
	} else if (ev->address) {
		struct mp_address_budget *b = address_slot(st, ev->address, now_ms);
		if (!b) {
			return true;
		}
		if (now_ms - b->window_ms >= MP_EVENT_WINDOW_MS) {
			b->window_ms = now_ms;
			memset(b->in_window, 0, sizeof(b->in_window));
		}
		address_window_ms = b->window_ms;
		window_ms = &address_window_ms;
		in_window = &b->in_window[ev->kind];
		suppressed = &b->suppressed[ev->kind];
		budget = MP_EVENTS_PER_ADDRESS_WINDOW;
	} else {
		return true;
	}
	if (!window_take(window_ms, in_window, budget, now_ms)) {
		(*suppressed)++;
		return false;
	}
	*out_suppressed = *suppressed;
	*suppressed = 0;
	return true;
}

bool moat_plugin_budget_allows(struct mp_state *st, const struct mp_event *ev, int64_t now_ms,
			       uint64_t *out_suppressed)
{
	*out_suppressed = 0;
	if (ev->kind == MP_EV_EVENTS_SUPPRESSED) {
		return true;
	}
	bool ok = source_allows(st, ev, now_ms, out_suppressed);
	if (ok) {
		uint32_t kind_budget =
			(ev->kind == MP_EV_CONNECTED || ev->kind == MP_EV_DISCONNECTED)
				? MP_EVENTS_SESSION_PER_KIND_WINDOW
				: MP_EVENTS_PER_KIND_WINDOW;
		ok = window_take(&st->kind_window_ms[ev->kind], &st->kind_in_window[ev->kind],
				 kind_budget, now_ms) &&
		     window_take(&st->events_window_ms, &st->events_in_window, MP_EVENTS_PER_S_MAX,
				 now_ms);
	}
	if (!ok) {
		st->events_dropped++;
		st->unreported[ev->kind]++;
	}
	return ok;
}
