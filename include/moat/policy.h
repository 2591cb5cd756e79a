/* policy.h: the broker policy file (broker/policy), what the moat_broker.so plugin enforces.
 *
 * `moat` derives the policy from the registry and writes it atomically (moat_policy_render +
 * moat_fs_write_atomic, mode 0640 so the broker's user can read it); the plugin re-reads it
 * when it changes and never opens the registry. Parsing and rendering are pure (src/core):
 * no I/O, no globals; the text comes in and goes out as buffers.
 *
 * The text format, version 1. Lines end with '\n' (the last one too); fields are separated
 * by single spaces; no line is longer than MOAT_POLICY_LINE_MAX_LEN bytes (newline
 * excluded); '\r', tabs, NUL and other control bytes are errors. Lines starting with '#'
 * are comments and empty lines are ignored, anywhere after the first line.
 *
 *   moat-policy 1                                    first line, exactly
 *   operator_write_commands yes                      yes | no            (at most once)
 *   limits device msgs_per_s=10 bytes_per_s=16384 burst=20 max_payload=8192
 *   limits service ...                               one per role, at most once each;
 *   limits operator ...                              all four keys, each once, any order
 *   subscriptions device per_client=32 per_packet=16 one per role, at most once each,
 *                                                    both keys, any order; optional
 *   flapping connects=10 window_s=60 ban_s=300       devices (at most once)
 *   flapping operator connects=0 window_s=60 ban_s=60  one role, at most once each
 *                                                    ("flapping device" is the line above);
 *                                                    optional
 *   jobs msgs_per_s=50                               commands an operator sends to
 *                                                    devices; optional, at most once
 *   identity sensor-001 device active                name role status; names strictly
 *   identity sensor-002 device disabled              ascending (strcmp), so no duplicates
 *   unban sensor-001 1795629600                      lift a flapping ban that began at or
 *                                                    before this Unix time; optional, at
 *                                                    most MOAT_POLICY_MAX_UNBANS
 *   end identities=2                                 last line, exactly; count must match
 *
 * Settings that are absent keep the defaults of moat_policy_init. Numbers are decimal
 * digits only (no sign, no leading zero, no spaces) within the ranges below. Any bad line
 * fails the whole parse with "policy:<line>: <what is wrong>" and nothing is returned;
 * a policy that does not parse is never partly applied.
 *
 * Limits, per role: msgs_per_s and bytes_per_s refill a message bucket and a byte bucket
 * (0 = unlimited); the message bucket holds `burst` messages and the byte bucket holds the
 * same `burst` messages' worth of time, bytes_per_s * burst / msgs_per_s (bytes_per_s
 * when msgs_per_s is 0), and at least max_payload, so one full-size message always fits.
 * max_payload caps one message's payload in bytes (a message larger is dropped).
 * Subscriptions, per role: a client holds at most per_client subscriptions (the broker's
 * own count for its session, kept across reconnects of a persistent session), and one
 * SUBSCRIBE packet adds at most per_packet of them; what is beyond is refused (SUBACK
 * "not authorised") and reported. Rendered only when they differ from the defaults, so
 * policies of deployments that never set them read as before.
 * Flapping, per role: an identity that connects more than `connects` times within
 * `window_s` seconds is refused for `ban_s` seconds (connects=0 turns detection off). The
 * line without a role is the devices'; the service and operator lines are rendered only
 * when they differ from the defaults (operators and services are not devices: every
 * `moat cmd` is a connect, and a service's workers reconnect together).
 * Jobs: a command an operator publishes to the command topic of a device the policy lists
 * as active does not take from the operator's own buckets (limits operator, 5 messages a
 * second by default: a person's pace) but from two others, so one session may reach a
 * whole fleet (`moat job run --rate 50/s`) and still no single device faster than before:
 *   the operator's job bucket: msgs_per_s of the jobs line (1..MOAT_POLICY_JOB_RATE_MAX,
 *     default 50), holding one second's worth, and as many times
 *     MOAT_POLICY_JOB_BYTES_PER_MSG bytes a second;
 *   the target device's command bucket: the operator role's limits (msgs_per_s, bytes_per_s,
 *     burst), shared by every operator sending to that device.
 * Commands to names the policy does not list as active devices, and everything else an
 * operator publishes, take from its own buckets as before. Rendered only when it differs
 * from the default.
 * Unban: `moat device unban` / `moat identity unban` write the policy with such a line; the
 * plugin, reloading it, lifts the identity's ban if it began at or before that time (so a
 * line read again later never lifts a newer ban). The next policy written from the
 * registry drops it: the plugin has read it by then (it re-reads the file on SIGHUP and
 * checks it every 200 ms).
 */
#ifndef MOAT_POLICY_H
#define MOAT_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"
#include "moat/identity.h"

#define MOAT_POLICY_VERSION 1
/* Bounds on untrusted input: the whole file, one line, the number of identities. */
#define MOAT_POLICY_MAX_BYTES (16u * 1024u * 1024u)
#define MOAT_POLICY_LINE_MAX_LEN 256
#define MOAT_POLICY_MAX_IDENTITIES 200000u

/* Ranges of the numeric settings (inclusive). */
#define MOAT_POLICY_RATE_MAX 100000000u /* msgs_per_s, bytes_per_s; 0 = unlimited */
#define MOAT_POLICY_BURST_MIN 1u
#define MOAT_POLICY_BURST_MAX 1000000u
#define MOAT_POLICY_PAYLOAD_MIN_BYTES 1u
#define MOAT_POLICY_PAYLOAD_MAX_BYTES 268435455u /* MQTT's largest packet */
#define MOAT_POLICY_SUBS_MIN 1u
#define MOAT_POLICY_SUBS_MAX 100000u /* per_client and per_packet */
/* 0 = flapping detection off; at most MOAT_FLAP_THRESHOLD_MAX - 1 (ratelimit.h), since the
 * detector bans on connect number connects + 1 and keeps that many times per identity. */
#define MOAT_POLICY_FLAP_CONNECTS_MAX 31u
#define MOAT_POLICY_FLAP_WINDOW_MIN_S 1u
#define MOAT_POLICY_FLAP_WINDOW_MAX_S 86400u
#define MOAT_POLICY_FLAP_BAN_MIN_S 1u
#define MOAT_POLICY_FLAP_BAN_MAX_S 604800u
#define MOAT_POLICY_MAX_UNBANS 64u
/* Jobs: commands a second an operator may send across devices ([policy] job_rate). */
#define MOAT_POLICY_JOB_RATE_MAX 10000u
#define MOAT_POLICY_JOB_RATE_DEFAULT 50u
/* The job bucket's bytes a second per message: a command (messages.h) is at most 1 KiB. */
#define MOAT_POLICY_JOB_BYTES_PER_MSG 1024u

/* Deployment-relative path of the file, and the plugin's options. In mosquitto.conf each
 * option is written as "plugin_opt_<name> <value>", e.g.
 *   plugin /usr/lib/moat/moat_broker.so
 *   plugin_opt_policy_file /srv/fleet/broker/policy
 *   plugin_opt_crl_file /srv/fleet/pki/crl.pem
 *   plugin_opt_events_file /srv/fleet/log/security-events.jsonl
 *   plugin_opt_ca_file /srv/fleet/pki/ca.crt
 *   plugin_opt_issuers_file /srv/fleet/pki/issuers.pem
 * policy_file, crl_file and ca_file (the root CA) are required (the
 * plugin refuses to start without them: a broker that silently enforced nothing would be
 * worse than none); events_file is
 * optional (events are then only published on moat/events/<kind>). issuers_file holds the
 * issuing CAs (each must be signed by the root of ca_file); a missing file means none (a
 * single-tier deployment). Every CRL in crl_file must be signed by the root or by one of
 * these issuing CAs. */
#define MOAT_POLICY_FILE_NAME "broker/policy"
#define MOAT_PLUGIN_OPT_PREFIX "plugin_opt_"
#define MOAT_PLUGIN_OPT_POLICY_FILE "policy_file"
#define MOAT_PLUGIN_OPT_CRL_FILE "crl_file"
#define MOAT_PLUGIN_OPT_EVENTS_FILE "events_file"
#define MOAT_PLUGIN_OPT_CA_FILE "ca_file"
#define MOAT_PLUGIN_OPT_ISSUERS_FILE "issuers_file"
#define MOAT_PLUGIN_EVENTS_FILE_NAME "log/security-events.jsonl"
/* The plugin logs the SHA-256 of the policy file's bytes it loaded ("moat: plugin ready: ..."
 * and "moat: policy reloaded: ..." end with this tag and 64 hex digits), so `moat audit`
 * compares the policy the running broker enforces with the file on disk. */
#define MOAT_PLUGIN_POLICY_SHA256_TAG "policy sha256 "

/* Same values as the registry's enum moat_identity_status, so it converts by value. */
enum moat_policy_status {
	MOAT_POLICY_ACTIVE = 0,
	MOAT_POLICY_REVOKED = 1,  /* refused: its certificate was revoked */
	MOAT_POLICY_DISABLED = 2, /* refused although its certificate is valid */
};
#define MOAT_POLICY_STATUS_COUNT 3

struct moat_policy_limits {
	uint32_t msgs_per_s;  /* 0 = unlimited */
	uint32_t bytes_per_s; /* 0 = unlimited */
	uint32_t burst;	      /* messages the message bucket holds */
	uint32_t max_payload; /* bytes; larger messages are dropped */
};

struct moat_policy_subs {
	uint32_t per_client; /* subscriptions one client (session) holds at most */
	uint32_t per_packet; /* subscriptions one SUBSCRIBE packet adds at most */
};

struct moat_policy_flapping {
	uint32_t connects; /* more than this many connects within window_s bans; 0 = off */
	uint32_t window_s;
	uint32_t ban_s;
};

struct moat_policy_unban {
	char name[MOAT_ID_BUF_LEN];
	int64_t before_s; /* Unix time: bans that began at or before it are lifted */
};

struct moat_policy_identity {
	char name[MOAT_ID_BUF_LEN];
	enum moat_role role;
	enum moat_policy_status status;
};

/* Owned by the caller (usually on the stack); its identities array is heap memory that
 * moat_policy_free releases. identities is always sorted by name (strcmp) with no
 * duplicates, so moat_policy_find can bsearch it. */
struct moat_policy {
	bool operator_write_commands;
	struct moat_policy_limits limits[MOAT_ROLE_COUNT];     /* indexed by enum moat_role */
	struct moat_policy_subs subs[MOAT_ROLE_COUNT];	       /* indexed by enum moat_role */
	struct moat_policy_flapping flapping[MOAT_ROLE_COUNT]; /* indexed by enum moat_role */
	uint32_t job_msgs_per_s; /* an operator's commands to devices a second (jobs line) */
	struct moat_policy_unban unbans[MOAT_POLICY_MAX_UNBANS];
	size_t unban_count;
	struct moat_policy_identity *identities;
	size_t identity_count;
	size_t identity_cap; /* allocated entries; internal */
};

/* Fills p with the defaults and no identities. Never fails; needs no moat_policy_free until
 * an identity is added (calling it anyway is fine). Defaults: operator_write_commands yes;
 * device 10 msgs/s, 16384 B/s, burst 20, max_payload 8192; service unlimited rates, burst
 * 1000, max_payload 1048576; operator 5 msgs/s, 65536 B/s, burst 10, max_payload 65536;
 * subscriptions per client/per packet: device 32/16, service 1024/256, operator 256/64;
 * flapping: device 10 connects in 60 s bans for 300 s, service 30 connects in 10 s bans
 * for 10 s, operator off (connects=0, window 60 s, ban 60 s); jobs 50 commands a second;
 * no unbans. */
void moat_policy_init(struct moat_policy *p);

/* Releases the identities and re-initialises p to the defaults. NULL is fine. */
void moat_policy_free(struct moat_policy *p);

/* Adds an identity, keeping the array sorted (cheapest when names come in ascending order,
 * as from `ORDER BY id`). MOAT_EINVAL for an invalid name, role or status, MOAT_EEXIST
 * for a duplicate, MOAT_EINVAL beyond MOAT_POLICY_MAX_IDENTITIES, MOAT_ENOMEM. p is
 * unchanged on failure. */
MOAT_MUST_CHECK int moat_policy_add_identity(struct moat_policy *p, const char *name,
					     enum moat_role role, enum moat_policy_status status,
					     struct moat_err *err);

/* Adds an unban line (name, Unix time). MOAT_EINVAL for an invalid name or a time <= 0;
 * a second one for the same name replaces the first; beyond MOAT_POLICY_MAX_UNBANS the
 * oldest entry is dropped. */
MOAT_MUST_CHECK int moat_policy_add_unban(struct moat_policy *p, const char *name, int64_t before_s,
					  struct moat_err *err);

/* The identity called name, or NULL. The pointer is valid until p next changes. */
const struct moat_policy_identity *moat_policy_find(const struct moat_policy *p, const char *name);

/* Checks that limits and flapping settings are within the ranges above (render calls it,
 * so a policy that renders always parses back to the same struct). */
MOAT_MUST_CHECK int moat_policy_validate(const struct moat_policy *p, struct moat_err *err);

/* Parses len bytes of buf (need not be NUL-terminated) into *out, which the call
 * initialises first; the caller frees it with moat_policy_free, also after a failure
 * (then it holds the defaults and no identities). Errors are MOAT_EINVAL with
 * "policy:<line>: ..." (MOAT_ENOMEM when out of memory). */
MOAT_MUST_CHECK int moat_policy_parse(const char *buf, size_t len, struct moat_policy *out,
				      struct moat_err *err);

/* Renders p as the text above into buf (size bytes), NUL-terminated; *out_len (may be
 * NULL) receives the length without the NUL. A buffer too small is MOAT_EINVAL
 * ("policy: buffer too small (need N bytes)") and buf then holds "" (when size > 0).
 * moat_policy_render_size gives the exact size needed, NUL included. */
MOAT_MUST_CHECK int moat_policy_render(const struct moat_policy *p, char *buf, size_t size,
				       size_t *out_len, struct moat_err *err);
size_t moat_policy_render_size(const struct moat_policy *p);

/* Like moat_policy_render into a malloc'd string the caller frees with free(). */
MOAT_MUST_CHECK int moat_policy_render_alloc(const struct moat_policy *p, char **out_text,
					     size_t *out_len, struct moat_err *err);

/* "active", "revoked", "disabled"; "?" for anything else. */
const char *moat_policy_status_name(enum moat_policy_status st);
MOAT_MUST_CHECK int moat_policy_status_parse(const char *text, enum moat_policy_status *out_status,
					     struct moat_err *err);

#endif
