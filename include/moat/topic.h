/* topic.h: the MQTT topic scheme and the access decision, the one copy every part uses
 * (the broker plugin, the agent, the simulator, the server and the audit).
 *
 * The scheme (docs/ARCHITECTURE.md, "Identities and the topic scheme"):
 *   devices/{id}/telemetry | status | diagnostics | command_responses   written by the device
 *   devices/{id}/commands/{name}                                       read by the device
 *   moat/events/{kind}                                                 written by the plugin
 * {id}, {name} and {kind} use the identity alphabet [a-z0-9][a-z0-9._-]{0,63}.
 *
 * The decision (moat_acl_decide) is least privilege by role:
 *   device    writes its own telemetry, status, diagnostics, command_responses;
 *             reads (and subscribes to) its own commands only.
 *   service   reads every device's telemetry, status, diagnostics, command_responses and
 *             moat/events/{kind}; writes every device's commands.
 *   operator  reads what a service reads; writes commands when the policy allows it.
 * Nobody writes moat/events/ (the plugin publishes them through the broker, which skips
 * the write check). Nothing outside the scheme is readable or writable, '$' topics
 * included.
 *
 * A subscription is allowed when every topic of the scheme that its filter matches is
 * readable by the identity, and it matches at least one: `#`, `devices/+/telemetry` (for a
 * device) and `foo/#` are refused, `devices/<self>/commands/#` is allowed.
 *
 * Everything here is pure: no I/O, no globals, no allocation.
 */
#ifndef MOAT_TOPIC_H
#define MOAT_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#include "moat/err.h"
#include "moat/identity.h"

/* Longest topic or filter the decision looks at; anything longer is refused. MQTT allows
 * 65535 bytes, but the longest topic of the scheme is 84 + 2 * MOAT_ID_MAX_LEN. */
#define MOAT_TOPIC_MAX_LEN 512
/* A command name or event kind: the identity alphabet and length. */
#define MOAT_TOPIC_NAME_MAX_LEN MOAT_ID_MAX_LEN
#define MOAT_TOPIC_BUF_LEN 256 /* holds every topic of the scheme, NUL included */

enum moat_topic_kind {
	MOAT_TOPIC_TELEMETRY = 0,     /* devices/{id}/telemetry */
	MOAT_TOPIC_STATUS,	      /* devices/{id}/status */
	MOAT_TOPIC_DIAGNOSTICS,	      /* devices/{id}/diagnostics */
	MOAT_TOPIC_COMMAND_RESPONSES, /* devices/{id}/command_responses */
	MOAT_TOPIC_COMMAND,	      /* devices/{id}/commands/{name} */
	MOAT_TOPIC_EVENT,	      /* moat/events/{name} */
};
#define MOAT_TOPIC_KIND_COUNT 6

/* A topic of the scheme, split. For MOAT_TOPIC_EVENT, id is empty. */
struct moat_topic {
	enum moat_topic_kind kind;
	char id[MOAT_ID_BUF_LEN];
	char name[MOAT_TOPIC_NAME_MAX_LEN + 1]; /* command name or event kind; else empty */
};

/* Writes the topic of kind for identity id (ignored for MOAT_TOPIC_EVENT) and name
 * (command name or event kind; ignored otherwise) into buf. Fails (MOAT_EINVAL) when id or
 * name is not in the identity alphabet, or buf is too small (MOAT_TOPIC_BUF_LEN always
 * suffices). */
MOAT_MUST_CHECK int moat_topic_build(enum moat_topic_kind kind, const char *id, const char *name,
				     char *buf, size_t size, struct moat_err *err);

/* Parses a concrete topic (no wildcards). MOAT_EINVAL with a message when it is not a
 * topic of the scheme; *out is zeroed first. */
MOAT_MUST_CHECK int moat_topic_parse(const char *topic, struct moat_topic *out,
				     struct moat_err *err);

/* "telemetry", "status", "diagnostics", "command_responses", "command", "event". */
const char *moat_topic_kind_name(enum moat_topic_kind kind);

/* true when filter is a syntactically valid MQTT topic filter of at most
 * MOAT_TOPIC_MAX_LEN bytes: '#' only as the whole last level, '+' only as a whole level,
 * no empty string. */
bool moat_topic_filter_valid(const char *filter);

enum moat_access {
	MOAT_ACCESS_READ = 1,	   /* a message on topic is about to be delivered */
	MOAT_ACCESS_WRITE = 2,	   /* the client published on topic */
	MOAT_ACCESS_SUBSCRIBE = 4, /* the client subscribes to the filter topic */
};

/* What the deployment configures about roles. Zero-initialised is the strictest policy. */
struct moat_acl_policy {
	bool operator_write_commands; /* operators may send commands (moat.conf default: yes) */
};

enum moat_acl_reason {
	MOAT_ACL_OK = 0,
	MOAT_ACL_BAD_INPUT,	 /* no identity, invalid identity, unknown access or role */
	MOAT_ACL_BAD_TOPIC,	 /* too long, empty, wildcards in a topic, invalid filter */
	MOAT_ACL_DOLLAR,	 /* '$' topics are the broker's */
	MOAT_ACL_OUTSIDE_SCHEME, /* not a topic of the scheme / matches none */
	MOAT_ACL_NOT_GRANTED,	 /* in the scheme but this identity may not */
	MOAT_ACL_BAD_SHARE,	 /* a service's "$share/" without a valid name and filter */
};

/* Shared subscriptions: a service may SUBSCRIBE to "$share/<name>/<filter>" when it may
 * subscribe to <filter> itself; <name> is 1..MOAT_SHARE_NAME_MAX_LEN bytes of the identity
 * alphabet (so never '/', '+' or '#'). Devices and operators never share (one session of
 * a device; an operator watches everything it asked for): for them "$share/..." is a '$'
 * topic like any other, MOAT_ACL_DOLLAR. */
#define MOAT_SHARE_PREFIX "$share/"
#define MOAT_SHARE_NAME_MAX_LEN 32

/* Decides whether identity (of role) may do access on topic (a filter for SUBSCRIBE).
 * Returns true to allow. When out_reason is non-NULL it receives why. Never allocates;
 * any NULL or invalid argument is a refusal. */
bool moat_acl_decide(enum moat_role role, const char *identity, enum moat_access access,
		     const char *topic, const struct moat_acl_policy *policy,
		     enum moat_acl_reason *out_reason);

/* "ok", "bad_input", "bad_topic", "dollar_topic", "outside_scheme", "not_granted",
 * "bad_shared_subscription". */
const char *moat_acl_reason_name(enum moat_acl_reason reason);

#endif
