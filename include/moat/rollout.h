/* rollout.h: the pure rules of device groups and phased rollouts (src/core/rollout.c): the
 * group filter language (`moat group add NAME --where ...`), tags, the phase list, which
 * devices each phase takes, what a device's update events say of it, and when a rollout
 * advances, completes or halts. No registry, sockets or clocks: callers pass rows and `now`
 * in (src/server/rollouts.c does, for moat and moatd).
 *
 * Group filter (--where), at most MOAT_WHERE_MAX_LEN bytes:
 *   expr   := term ("or" term)*
 *   term   := factor ("and" factor)*
 *   factor := "not" factor | "(" expr ")" | ATTR OP VALUE
 *   ATTR   := type | tag | release | zone | cert_age
 *   OP     := "=" | "!=" (type, tag, release, zone); "<" | "<=" | ">" | ">=" (cert_age)
 *   VALUE  := [A-Za-z0-9._:+-]+ ; cert_age takes a duration with its unit (30d, 12h)
 * tag=X holds when the device carries tag X, zone=Z when it carries tag "zone:Z",
 * release=V when it last reported running V, cert_age compares the age of its current
 * certificate. Keywords are lower case. Anything else is refused with the position.
 * The text is stored as written; it is parsed again wherever it is used, never turned into
 * SQL.
 */
#ifndef MOAT_ROLLOUT_H
#define MOAT_ROLLOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"
#include "moat/identity.h"

#define MOAT_WHERE_MAX_LEN 1024
#define MOAT_WHERE_MAX_NODES 64
#define MOAT_WHERE_MAX_DEPTH 16
#define MOAT_WHERE_VALUE_MAX_LEN 64
#define MOAT_TAG_MAX_LEN 64
#define MOAT_GROUP_NAME_MAX_LEN 64
#define MOAT_TAGS_PER_DEVICE_MAX 32
#define MOAT_ROLLOUT_PHASES_MAX 10
#define MOAT_ROLLOUT_KEY_BYTES 16

enum moat_where_attr {
	MOAT_WHERE_TYPE,
	MOAT_WHERE_TAG,
	MOAT_WHERE_RELEASE,
	MOAT_WHERE_ZONE,
	MOAT_WHERE_CERT_AGE,
};
enum moat_where_op {
	MOAT_WHERE_EQ,
	MOAT_WHERE_NE,
	MOAT_WHERE_LT,
	MOAT_WHERE_LE,
	MOAT_WHERE_GT,
	MOAT_WHERE_GE,
	MOAT_WHERE_AND,
	MOAT_WHERE_OR,
	MOAT_WHERE_NOT,
};
struct moat_where_node {
	enum moat_where_op op;
	enum moat_where_attr attr;		  /* comparisons */
	char value[MOAT_WHERE_VALUE_MAX_LEN + 1]; /* comparisons of text */
	int64_t seconds;			  /* cert_age */
	int left, right;			  /* and/or: both; not: left */
};
struct moat_where {
	struct moat_where_node nodes[MOAT_WHERE_MAX_NODES];
	int count;
	int root;
};

/* What a filter is evaluated against: one device as the registry knows it. */
struct moat_device_attrs {
	const char *id;
	const char *type;
	const char *release;	 /* "" when it never reported */
	const char *const *tags; /* tag_count strings */
	size_t tag_count;
	int64_t cert_age_s; /* now - not_before of its current certificate; <0 when none */
};

/* Parses text; MOAT_EINVAL with "--where: ... at position N" on anything not in the
 * grammar above, a value too long, too many nodes or too deep a nesting. */
MOAT_MUST_CHECK int moat_where_parse(const char *text, struct moat_where *out,
				     struct moat_err *err);
bool moat_where_match(const struct moat_where *w, const struct moat_device_attrs *dev);

/* A tag: [a-z0-9][a-z0-9._:-]{0,63} (no comma, so lists of tags stay unambiguous). */
MOAT_MUST_CHECK int moat_tag_check(const char *tag, struct moat_err *err);
/* A group name has the rules of an identity name. */
MOAT_MUST_CHECK int moat_group_name_check(const char *name, struct moat_err *err);

/* "1%,10%,50%,100%": 1..MOAT_ROLLOUT_PHASES_MAX percentages, each with '%', strictly
 * increasing, the last 100. */
MOAT_MUST_CHECK int moat_rollout_phases_parse(const char *text, int *out_pct, int *out_count,
					      struct moat_err *err);
/* Writes the canonical form ("1%,10%,100%") into buf. */
void moat_rollout_phases_format(const int *pct, int count, char *buf, size_t size);

/* The rank of a device in a rollout: the first 8 bytes of HMAC-SHA256(key, device_id),
 * big-endian. A fresh random key per rollout spreads each rollout's phases over the group
 * differently, and the same (key, device) always ranks the same. Pure. */
uint64_t moat_rollout_rank(const uint8_t key[MOAT_ROLLOUT_KEY_BYTES], const char *device_id);
/* For devices sorted by rank (ascending), the phase (0-based) of the device at position
 * pos of n: the first phase k whose cumulative share ceil(n * pct[k] / 100) exceeds pos.
 * Phases are cumulative prefixes of one order, so a device never leaves a later phase. */
int moat_rollout_phase_of(size_t pos, size_t n, const int *pct, int count);

/* Where a device of a rollout stands, from its update events for the release's version
 * since the rollout offered it the release. */
enum moat_rollout_dev_state {
	MOAT_RD_OFFERED,     /* offered, nothing reported yet (within silent_s) */
	MOAT_RD_DOWNLOADING, /* checked or downloading */
	MOAT_RD_INSTALLED,   /* verified or installed: on trial */
	MOAT_RD_CONFIRMED,
	MOAT_RD_REVERTED,
	MOAT_RD_REFUSED,
	MOAT_RD_SILENT, /* offered longer than silent_s ago and nothing reported: failed */
	MOAT_RD_STATE_COUNT,
};
const char *moat_rollout_dev_state_name(enum moat_rollout_dev_state s);
/* stage: the update stage name of its newest event for the version since it was offered,
 * other than "checked" when there is one (a device that reverted checks again at its next
 * start and reports "checked": it stays reverted) (NULL when none); running_new: it reports running
 * the release's version (a confirmed device that restarted reports only "checked");
 * later_running: what the newest event after the stage's event says the device runs (1: the
 * release, -1: another version, 0: no such event). A device that installed the release
 * (stage installed or verified) and has reported since what it runs has settled its trial:
 * on trial a device reports nothing but its outcome (it checks for updates only once the
 * trial is settled: the update-event contract, docs/MOATD.md), and its "confirmed" or
 * "reverted" may have gone out while moatd was away, unheard; running the release is
 * confirmed, running another version reverted. */
enum moat_rollout_dev_state moat_rollout_dev_state(const char *stage, bool running_new,
						   int later_running, int64_t offered_at,
						   int64_t silent_s, int64_t now);
/* How long a device of a started phase may report nothing before it counts as silent
 * (`moat fw rollout create --silent-after`, default 1h). */
#define MOAT_ROLLOUT_SILENT_DEFAULT_S 3600

enum moat_rollout_state {
	MOAT_ROLLOUT_RUNNING,
	MOAT_ROLLOUT_PAUSED, /* by the operator */
	MOAT_ROLLOUT_HALTED, /* by itself: cause says why; resume continues */
	MOAT_ROLLOUT_ABORTED,
	MOAT_ROLLOUT_COMPLETED,
};
const char *moat_rollout_state_name(enum moat_rollout_state s);
MOAT_MUST_CHECK int moat_rollout_state_parse(const char *name, enum moat_rollout_state *out);

/* The counts of one phase's own devices (those it added). */
struct moat_rollout_phase_counts {
	size_t devices;
	size_t by_state[MOAT_RD_STATE_COUNT];
	/* of the reverted, refused and silent ones, those whose failure the operator accepted
	 * (`moat fw rollout resume --accept-failures`): settled, but not counted again */
	size_t accepted;
};

/* What the rollout's tick sees: the current phase (0-based), when it started, its rules,
 * the counts of every phase up to the current one, and the security signals. */
struct moat_rollout_view {
	int phase;
	int phase_count;
	int64_t phase_started_at;
	int64_t soak_s;
	int halt_failure_pct; /* <0: no threshold */
	bool halt_on_events;
	const struct moat_rollout_phase_counts *phases; /* phase + 1 entries */
	/* devices on the new release with a security event since they installed it, of how
	 * many on it; devices of the group not on it with one since the rollout began, of how
	 * many */
	size_t new_signalled, new_total, old_signalled, old_total;
};

enum moat_rollout_decision {
	MOAT_ROLLOUT_WAIT,
	MOAT_ROLLOUT_ADVANCE,
	MOAT_ROLLOUT_COMPLETE,
	MOAT_ROLLOUT_HALT_FAILURES,
	MOAT_ROLLOUT_HALT_SECURITY,
};
/* ---- security signals: the security events moatd's ingest records in the registry's
 * security_events that say a device misbehaves: the broker plugin's (moat/events/<kind>) and
 * the anomalies moatd's monitoring rules fire about the device (kind "anomaly", any rule:
 * event_jump, the jump of a device's security events after a rollout reached it, is the one
 * made for this; message_rate, silence, payload_size, cloned_key... of a device on the new
 * release count as much). They count for --halt-on-events, as an SQL list
 * (src/registry/rollouts.c). */
#define MOAT_ROLLOUT_SIGNAL_KINDS_SQL "('acl_denied', 'rate_limited', 'auth_refused', 'anomaly')"

/* Pure. Halts come first: failures when, in any phase so far, reverted + refused devices
 * not accepted exceed halt_failure_pct percent of that phase's devices (a failure the
 * operator accepted when resuming a halted rollout does not count again: only new ones
 * can halt it) (a silent device counts as failed,
 * as a timed-out one does in Mender or AWS IoT Jobs: a release that makes devices go quiet
 * must stop the rollout); security when halt_on_events and
 * a larger share of the devices on the new release raised security events than of those
 * not on it. Otherwise it advances (or, at the last phase, completes) once every device of
 * every phase so far is settled (confirmed, or reverted, refused or silent within the
 * threshold)
 * and soak_s has passed since the phase started. */
enum moat_rollout_decision moat_rollout_decide(const struct moat_rollout_view *v, int64_t now);

#endif
