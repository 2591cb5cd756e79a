/* message.c: MESSAGE, the limits on what an identity may publish.
 *
 * In order: the role's payload cap, the role's token buckets (messages/s and bytes/s, both
 * must have room; a refused message takes no tokens), then for the device topics whose
 * consumers parse JSON (telemetry, status, command_responses) the payload must be one JSON
 * object that passes the strict reader every consumer uses (json.h: no duplicate keys, no
 * trailing bytes, valid UTF-8, bounded depth), and its "device_id" must be the sender, so a
 * device cannot speak for another one inside its own topic. What fails is dropped
 * (MOSQ_ERR_ACL_DENIED: QoS 1 publishers get PUBACK 0x87) and becomes a rate_limited or
 * payload_rejected event.
 */
#include <stdio.h>
#include <string.h>

#include "moat/json.h"
#include "moat/timeutil.h"
#include "moat/topic.h"
#include "plugin_internal.h"

/* Takes one message of len bytes from both buckets, or nothing. */
static bool take_tokens(struct mp_ident *id, const struct moat_policy_limits *l, uint32_t len,
			int64_t now_ms)
{
	if (!id->buckets_ready || memcmp(&id->limits, l, sizeof(*l)) != 0) {
		/* The byte bucket holds as long a burst as the message bucket, and always at
		 * least one full-size message (include/moat/policy.h). */
		uint64_t byte_burst = l->bytes_per_s;
		if (l->msgs_per_s > 0) {
			byte_burst = (uint64_t)l->bytes_per_s * l->burst / l->msgs_per_s;
		}
		if (byte_burst < l->max_payload) {
			byte_burst = l->max_payload;
		}
		if (moat_bucket_init(&id->msgs, l->msgs_per_s, l->burst, NULL) < 0 ||
		    moat_bucket_init(&id->bytes, l->bytes_per_s, byte_burst, NULL) < 0) {
			return false; /* cannot happen within the policy's ranges */
		}
		id->limits = *l;
		id->buckets_ready = true;
	}
	/* Both or neither: check the byte bucket without taking, then take from both. */
	if (moat_bucket_wait_ms(&id->bytes, len, now_ms) != 0) {
		return false;
	}
	if (!moat_bucket_take(&id->msgs, 1, now_ms)) {
		return false;
	}
	return moat_bucket_take(&id->bytes, len, now_ms);
}

/* The reason word of an event for a refusal of the reader. */
static const char *json_reason(enum moat_json_fault_kind kind)
{
	switch (kind) {
	case MOAT_JSON_EMPTY:
		return "empty";
	case MOAT_JSON_TOO_BIG:
		return "too_large_for_json";
	case MOAT_JSON_NOT_OBJECT:
		return "not_object";
	case MOAT_JSON_NO_MEMORY:
		return "internal_error";
	default:
		return "not_json";
	}
}

/* NULL when payload is acceptable for a JSON topic of sender, else why not. The payload goes
 * through the one strict reader (json.h), the one every consumer of these topics uses, so
 * what passes here is what they read. It builds a cJSON tree, as this check always did: the
 * reader adds one pass over the bytes and a duplicate check of O(k) per object, both
 * small next to cJSON's allocation per node, and it reads the payload in place. */
static const char *json_check(const void *payload, uint32_t len, const char *sender)
{
	const struct moat_json_limits lim = {
		.max_bytes = MP_JSON_MAX_BYTES,
		.max_depth = MOAT_JSON_DEPTH_MAX,
	};
	struct moat_json_fault fault;
	cJSON *root = NULL;
	const char *why = NULL;

	if (moat_json_parse("payload", payload, len, &lim, &root, &fault, NULL) != 0) {
		return json_reason(fault.kind);
	}
	/* Every device_id key at the top: the reader has made sure there is at most one. */
	for (const cJSON *item = root->child; item; item = item->next) {
		if (strcmp(item->string, "device_id") == 0 &&
		    (!cJSON_IsString(item) || strcmp(item->valuestring, sender) != 0)) {
			why = "device_id_mismatch";
		}
	}
	cJSON_Delete(root);
	return why;
}

static int drop(struct mp_state *st, const struct mosquitto_evt_message *ed, const char *identity,
		enum mp_event_kind kind, const char *reason, const char *what)
{
	char detail[MP_EVENT_FIELD_MAX_LEN + 96];
	snprintf(detail, sizeof(detail), "%s: %u bytes on %.*s", what, ed->payloadlen,
		 MP_EVENT_FIELD_MAX_LEN, ed->topic ? ed->topic : "(none)");
	moat_plugin_client_event(st, ed->client, kind, identity, reason, detail);
	return MOSQ_ERR_ACL_DENIED;
}

int moat_plugin_message(int event, void *event_data, void *userdata)
{
	(void)event;
	struct mosquitto_evt_message *ed = event_data;
	struct mp_state *st = userdata;
	const struct moat_policy_identity *pi = moat_plugin_active_identity(st, ed->client);
	if (!pi) {
		return drop(st, ed, mosquitto_client_username(ed->client), MP_EV_ACL_DENIED,
			    "not_authorised", "identity is not active");
	}
	const struct moat_policy_limits *l = &st->policy.limits[pi->role];
	if (ed->payloadlen > l->max_payload) {
		char what[64];
		snprintf(what, sizeof(what), "payload larger than %u bytes", l->max_payload);
		return drop(st, ed, pi->name, MP_EV_PAYLOAD_REJECTED, "too_large", what);
	}
	struct mp_ident *id = moat_plugin_ident_get(st, pi->name);
	if (!id) {
		return drop(st, ed, pi->name, MP_EV_RATE_LIMITED, "internal_error",
			    "out of memory");
	}
	if (!take_tokens(id, l, ed->payloadlen, moat_time_mono_ms())) {
		return drop(st, ed, pi->name, MP_EV_RATE_LIMITED, "rate_limited",
			    "over the role's message or byte rate");
	}
	struct moat_topic t;
	if (ed->topic && moat_topic_parse(ed->topic, &t, NULL) == 0 &&
	    (t.kind == MOAT_TOPIC_TELEMETRY || t.kind == MOAT_TOPIC_STATUS ||
	     t.kind == MOAT_TOPIC_COMMAND_RESPONSES)) {
		const char *why = json_check(ed->payload, ed->payloadlen, pi->name);
		if (why) {
			return drop(st, ed, pi->name, MP_EV_PAYLOAD_REJECTED, why,
				    "payload is not a JSON object from the sender");
		}
	}
	return MOSQ_ERR_SUCCESS;
}
