/* plugin_internal.h: what the files of moat_broker.so share (not installed, not a contract
 * for anyone else).
 *
 * The plugin keeps one struct mp_state, created in mosquitto_plugin_init and passed to
 * every callback as userdata. Mosquitto calls all callbacks from its single main thread,
 * so nothing here is locked. Two tables hold the runtime state:
 *   identities (by name): rate buckets, flapping window and ban, event suppression;
 *                         created only for identities the policy knows, so bounded by it.
 *   connections (by the broker's client pointer): which clients passed BASIC_AUTH, as
 *                         which identity and certificate serial, so TICK knows whom to
 *                         kick and DISCONNECT knows what it is seeing.
 * Events have budgets (budget.c): per identity or per address, per kind, and in total.
 */
#ifndef MOAT_PLUGIN_INTERNAL_H
#define MOAT_PLUGIN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "moat/manifest.h"
#include "moat/policy.h"
#include "moat/ratelimit.h"

/* Longest serial we compare: OpenSSL's limit is 20 bytes by RFC 5280, we allow some slack
 * for hostile CRLs and refuse anything longer (as hex, NUL included). */
#define MP_SERIAL_HEX_MAX 81
/* Strings from clients (client ids, topics) are cut to this many bytes in events. */
#define MP_EVENT_FIELD_MAX_LEN 128
/* Revoked serials read from one CRL at most. */
#define MP_CRL_MAX_ENTRIES 1000000u
/* How often TICK looks at the policy file and the CRL. */
#define MP_RELOAD_CHECK_MS 200
/* Event budgets (budget.c), all over windows of MP_EVENT_WINDOW_MS. What is over budget
 * is counted, reported by the next event of the same source and kind, and summed up in an
 * events_suppressed event at most every MP_EVENT_SUMMARY_MS.
 *   per identity the policy lists, per kind:      MP_EVENTS_PER_WINDOW
 *   per address (events without such an identity): MP_EVENTS_PER_ADDRESS_WINDOW per kind,
 *     in a table of MP_EVENT_ADDRESS_SLOTS addresses (a full table falls back on the
 *     per-kind budget alone)
 *   per kind: MP_EVENTS_PER_KIND_WINDOW (connected and disconnected:
 *     MP_EVENTS_SESSION_PER_KIND_WINDOW, a fleet reconnecting is not an attack), so one kind
 *     flooding never silences another
 *   all kinds together: MP_EVENTS_PER_S_MAX (the events must not become a flood of disk
 *     writes themselves). */
#define MP_EVENT_WINDOW_MS 1000
#define MP_EVENTS_PER_WINDOW 10
#define MP_EVENTS_PER_ADDRESS_WINDOW 20
#define MP_EVENT_ADDRESS_SLOTS 1024
#define MP_EVENT_ADDRESS_PROBES 4
#define MP_EVENTS_PER_KIND_WINDOW 200
#define MP_EVENTS_SESSION_PER_KIND_WINDOW 500
#define MP_EVENTS_PER_S_MAX 2000
#define MP_EVENT_SUMMARY_MS 2000
/* Longest address kept in the address table (an IPv6 address is at most 45 bytes). */
#define MP_ADDRESS_MAX_LEN 63
/* A CRL whose lastUpdate is further in the future than this is refused. */
#define MP_CRL_CLOCK_SKEW_S 300

/* Grants each connection remembers (acl.c): this many, for topics up to this long. Reads
 * and writes of a client are mostly of the same few topics (a device's telemetry, status
 * and commands); a miss is decided as if there were no cache. */
#define MP_GRANT_SLOTS 4
#define MP_GRANT_TOPIC_MAX 63

#define MP_IDENT_BUCKETS 4096
#define MP_CONN_BUCKETS 4096

enum mp_event_kind {
	MP_EV_AUTH_REFUSED = 0,
	MP_EV_ACL_DENIED,
	MP_EV_RATE_LIMITED,
	MP_EV_PAYLOAD_REJECTED,
	MP_EV_REVOKED_KICKED,
	MP_EV_FLAPPING_BANNED,
	MP_EV_CONNECTED,
	MP_EV_DISCONNECTED,
	MP_EV_SUBSCRIPTION_LIMITED,
	MP_EV_CRL_REJECTED,
	MP_EV_EVENTS_SUPPRESSED, /* the summary: never itself suppressed */
};
#define MP_EV_COUNT 11

/* A message bucket and a byte bucket, set up from `limits`; set up again when the policy
 * changes them. */
struct mp_rate {
	bool ready;
	struct moat_policy_limits limits;
	struct moat_bucket msgs;
	struct moat_bucket bytes;
};

struct mp_ident {
	struct mp_ident *next; /* hash chain */
	char name[MOAT_ID_BUF_LEN];
	/* Rate buckets (message.c): what it publishes itself; for an operator, the commands
	 * it sends to devices (policy.h "Jobs"); for a device, the commands it receives. */
	struct mp_rate own;
	struct mp_rate jobs;
	struct mp_rate commands_in;
	/* Flap detector, likewise from `flapping`. */
	bool flap_ready;
	struct moat_policy_flapping flapping;
	struct moat_flap flap;
	int64_t banned_at_s; /* wall clock when the last ban began (for unban lines) */
	int64_t event_window_ms[MP_EV_COUNT];
	uint32_t events_in_window[MP_EV_COUNT];
	uint64_t suppressed[MP_EV_COUNT];
};

/* A read or write ACL_CHECK that moat_acl_decide granted (acl.c). */
struct mp_grant {
	uint64_t gen;	/* st->policy_gen when it was decided; 0: empty */
	uint8_t access; /* MOSQ_ACL_READ or MOSQ_ACL_WRITE */
	uint8_t len;
	int8_t kind; /* the topic's enum moat_topic_kind, or MOAT_PUBLISH_NOT_MOAT_TOPIC */
	char topic[MP_GRANT_TOPIC_MAX + 1];
};

struct mp_conn {
	struct mp_conn *next; /* hash chain */
	const struct mosquitto *client;
	bool authed; /* false: refused in BASIC_AUTH (its event is already out) */
	char identity[MOAT_ID_BUF_LEN];
	char serial[MP_SERIAL_HEX_MAX];
	/* SUBSCRIBE filters seen in broker loop pass subs_pass (mp_state.loop_pass): one
	 * SUBSCRIBE packet is always handled within one pass, so this bounds each packet. */
	uint64_t subs_pass;
	uint32_t subs_in_pass;
	/* What the checks of every message look up, cached for an authed connection and
	 * valid while gen is st->policy_gen (every policy load changes it, so a disabled
	 * identity or a narrower rule applies at once); conn_add clears them. */
	uint64_t gen;
	const struct moat_policy_identity *pi; /* its active policy entry, or NULL */
	struct mp_ident *ident;		       /* its rate state (message.c); NULL: not yet */
	struct mp_grant grants[MP_GRANT_SLOTS];
	uint32_t grant_next; /* the slot the next grant takes */
};

/* One address's event budget (budget.c). */
struct mp_address_budget {
	char address[MP_ADDRESS_MAX_LEN + 1]; /* "" = free */
	int64_t window_ms;
	uint32_t in_window[MP_EV_COUNT];
	uint64_t suppressed[MP_EV_COUNT];
};

struct mp_file_stamp {
	bool valid;
	dev_t dev;
	ino_t ino;
	off_t size;
	int64_t mtime_ns;
	int64_t ctime_ns;
};

struct mp_state {
	mosquitto_plugin_id_t *pid;
	/* 16 hex digits, random per load: with an event's kind and count it names the event
	 * once, so moatd records it once whether read from MQTT or from the events file */
	char run_id[17];
	char *policy_path;
	char *crl_path;
	char *events_path;  /* NULL: events are only published */
	char *ca_path;	    /* the root CA */
	char *issuers_path; /* issuing CAs signed by the root; NULL or missing: none */
	int events_fd;
	struct moat_policy policy;
	uint64_t policy_gen; /* how many times a policy was loaded: what caches are valid for */
	/* SHA-256 (hex) of the policy file's bytes in force, logged with every load so `moat
	 * audit` can tell the policy the broker enforces from the file on disk */
	char policy_sha256[MOAT_SHA256_BYTES * 2 + 1];
	char **revoked; /* sorted (strcmp) uppercase hex serials, mosquitto_malloc'd */
	size_t revoked_count;
	time_t crl_next_update;	 /* the earliest nextUpdate of the CRLs in force */
	bool crl_stale_reported; /* their going stale was reported (once per CRL file) */
	struct mp_file_stamp policy_stamp;
	struct mp_file_stamp crl_stamp;
	int64_t next_check_ms;
	uint64_t loop_pass; /* TICKs so far: Mosquitto sends one per pass of its loop */
	bool in_reload;	    /* from RELOAD to the next TICK: BASIC_AUTH re-checks sessions */
	struct mp_ident *idents[MP_IDENT_BUCKETS];
	struct mp_conn *conns[MP_CONN_BUCKETS];
	uint64_t counts[MP_EV_COUNT];
	int64_t events_window_ms;
	uint32_t events_in_window;
	int64_t kind_window_ms[MP_EV_COUNT];
	uint32_t kind_in_window[MP_EV_COUNT];
	uint64_t events_dropped;
	struct mp_address_budget *addresses; /* MP_EVENT_ADDRESS_SLOTS, mosquitto_calloc'd */
	uint32_t address_seed;		     /* keys the address hash: slots are not guessable */
	uint64_t unreported[MP_EV_COUNT];    /* suppressed since the last summary */
	int64_t last_summary_ms;
};

/* auth.c */
int moat_plugin_basic_auth(int event, void *event_data, void *userdata);
int moat_plugin_disconnect(int event, void *event_data, void *userdata);

/* acl.c */
int moat_plugin_acl_check(int event, void *event_data, void *userdata);

/* message.c */
int moat_plugin_message(int event, void *event_data, void *userdata);
/* The payload rule (include/moat/publish.h) for a write ACL_CHECK that the topic ACL
 * granted: publishes and last wills alike. MOSQ_ERR_SUCCESS, or MOSQ_ERR_ACL_DENIED after
 * a payload_rejected event. c is the client's connection entry (NULL: DISCONNECT has
 * already forgotten it, as for a will); g the grant of this write when c holds one (its
 * topic's kind is then not parsed again), else NULL. */
int moat_plugin_payload_check(struct mp_state *st, const struct mosquitto_evt_acl_check *ed,
			      const struct moat_policy_identity *pi, const struct mp_conn *c,
			      const struct mp_grant *g);

/* tick.c */
int moat_plugin_tick(int event, void *event_data, void *userdata);
int moat_plugin_reload_event(int event, void *event_data, void *userdata);
/* Loads the policy file when it changed since the last load (force: regardless). On
 * failure the previous one stays in force; 1 = reloaded, 0 = unchanged, <0 = error
 * (message in err). */
int moat_plugin_load_policy(struct mp_state *st, bool force, struct moat_err *err);

/* crl.c */
/* Loads the CRL as moat_plugin_load_policy loads the policy (same results). */
int moat_plugin_load_crl(struct mp_state *st, bool force, struct moat_err *err);
bool moat_plugin_serial_revoked(const struct mp_state *st, const char *serial_hex);
void moat_plugin_free_crl(struct mp_state *st);
/* Uppercase hex of a certificate's serial into out (MP_SERIAL_HEX_MAX); false when it
 * does not fit or OpenSSL fails. Takes an ASN1_INTEGER (void * keeps OpenSSL out of this
 * header). */
bool moat_plugin_serial_hex(const void *asn1_serial, char out[MP_SERIAL_HEX_MAX]);

/* filestamp.c */
/* 1 when path changed since *stamp was taken, or force (the stamp is updated either way),
 * 0 when unchanged, MOAT_ENOENT when it cannot be stat'ed (the stamp is invalidated). */
int moat_plugin_file_changed(const char *path, struct mp_file_stamp *stamp, bool force,
			     struct moat_err *err);

/* clients.c: the two tables */
struct mp_ident *moat_plugin_ident_get(struct mp_state *st, const char *name);
/* Like moat_plugin_ident_get, but never creates: NULL when there is none. */
struct mp_ident *moat_plugin_ident_find(struct mp_state *st, const char *name);
struct mp_conn *moat_plugin_conn_find(struct mp_state *st, const struct mosquitto *client);
struct mp_conn *moat_plugin_conn_add(struct mp_state *st, const struct mosquitto *client);
void moat_plugin_conn_remove(struct mp_state *st, const struct mosquitto *client);
void moat_plugin_tables_free(struct mp_state *st);
/* The identity behind a client: its username (set to the certificate's CN by BASIC_AUTH),
 * and its policy entry when the policy lists it as active; NULL otherwise. */
const struct moat_policy_identity *moat_plugin_active_identity(struct mp_state *st,
							       const struct mosquitto *client);
/* moat_plugin_active_identity for the client of c (may be NULL), cached in c while the
 * policy stays the same when c is an authed connection. */
const struct moat_policy_identity *moat_plugin_conn_identity(struct mp_state *st, struct mp_conn *c,
							     const struct mosquitto *client);

/* events.c */
struct mp_event {
	enum mp_event_kind kind;
	const char *identity;  /* NULL: unknown */
	const char *client_id; /* NULL: none (no CONNECT yet) */
	const char *address;
	const char *reason; /* short machine word, e.g. "client_id_mismatch"; may be NULL */
	const char *detail; /* human sentence; may be NULL */
};
/* Counts the event, and unless it is over a budget (budget.c) publishes it on moat/events/<kind>
 * and appends it to the events file. Never fails the caller: an event that cannot be written is
 * logged to the broker's log. */
void moat_plugin_event(struct mp_state *st, const struct mp_event *ev);
const char *moat_plugin_event_name(enum mp_event_kind kind);
/* SIGHUP (Mosquitto's RELOAD): the events file opened again by name, so logrotate may
 * rename it away; on failure the open one is kept. */
void moat_plugin_events_reopen(struct mp_state *st);
/* moat_plugin_event for something client did: client id and address are the client's. */
void moat_plugin_client_event(struct mp_state *st, enum mp_event_kind kind,
			      const struct mosquitto *client, const char *identity,
			      const char *reason, const char *detail);
/* Writes the events_suppressed summary when something was suppressed and
 * MP_EVENT_SUMMARY_MS passed since the last one (called from TICK). */
void moat_plugin_event_summary(struct mp_state *st, int64_t now_ms);

/* budget.c */
/* Sets up the address table; false when out of memory. */
bool moat_plugin_budget_init(struct mp_state *st);
void moat_plugin_budget_free(struct mp_state *st);
/* true when ev may be written now (it is then counted against its budgets);
 * *out_suppressed is how many of its source and kind were suppressed before it. */
bool moat_plugin_budget_allows(struct mp_state *st, const struct mp_event *ev, int64_t now_ms,
			       uint64_t *out_suppressed);

#endif
