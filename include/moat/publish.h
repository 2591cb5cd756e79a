/* publish.h: what a message on a moat topic may carry, the one rule the broker plugin
 * applies to every publish and to every last will (src/core/publish.c).
 *
 * The rule, after the ACL (topic.h) has granted the sender write access to the topic:
 *   - the payload is at most the role's max_payload bytes (policy.h), on every topic;
 *   - on devices/{id}/telemetry and devices/{id}/command_responses: one JSON object that
 *     the strict reader (json.h) accepts, and a "device_id" key, when present, is the
 *     sender's identity (a device cannot speak for another one inside its own topic);
 *   - on devices/{id}/status: the same, and the object is a status message (messages.h:
 *     device_id required and equal to the sender, status "online" or "offline"), so a
 *     retained status, which every later subscriber reads first, cannot be forged. An
 *     empty payload with retain set is allowed: it clears the sender's retained status;
 *   - other topics carry any bytes.
 * Mosquitto sends a last will without the MESSAGE hook, so the plugin checks this rule in
 * its ACL check (MOSQ_ACL_WRITE carries the payload for publishes and wills alike): a will
 * that breaks it is never delivered.
 *
 * Pure: no I/O, no clock, no globals; the payload is read in place and never kept.
 */
#ifndef MOAT_PUBLISH_H
#define MOAT_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Payloads larger than this are never JSON-parsed (refused), whatever the role's cap. */
#define MOAT_PUBLISH_JSON_MAX_BYTES 65536u

struct moat_publish {
	const char *sender; /* the identity (certificate CN) of the publisher */
	const char *topic;
	const void *payload; /* need not be NUL-terminated; may be NULL when len is 0 */
	size_t len;
	bool retain;
};

/* NULL when m may be delivered, else a short reason word for the refusal: "too_large",
 * "empty", "too_large_for_json", "not_json", "not_object", "device_id_mismatch",
 * "bad_status", "internal_error" (out of memory). max_payload is the sender's role cap in
 * bytes. Never fails otherwise; m is only read. */
const char *moat_publish_check(const struct moat_publish *m, uint32_t max_payload);

/* What moat_topic_parse refused: a topic no payload rule applies to (moat_publish_check_kind). */
#define MOAT_PUBLISH_NOT_MOAT_TOPIC (-1)

/* moat_publish_check with m->topic already read: kind is the enum moat_topic_kind that
 * moat_topic_parse gave for m->topic, or MOAT_PUBLISH_NOT_MOAT_TOPIC when it refused it or
 * there is no topic. Same result as moat_publish_check, without parsing the topic again (the
 * broker plugin keeps the kind with each topic it granted). */
const char *moat_publish_check_kind(const struct moat_publish *m, int kind, uint32_t max_payload);

#endif
