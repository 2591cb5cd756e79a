/* publish.c: the rule on what a message on a moat topic may carry (include/moat/publish.h).
 *
 * The payload goes through the one strict reader (json.h) every consumer of these topics
 * uses, so what passes here is what they read. The common case (a valid object from the
 * sender) is decided by the reader's quick pass, without a tree and without allocating;
 * the rest by the reader itself, which builds a cJSON tree and reads the payload in place. Status
 * messages are parsed once more by the status schema (messages.h); they are small and rare next to
 * telemetry.
 */
#include "moat/publish.h"

#include <string.h>

#include "moat/json.h"
#include "moat/messages.h"
#include "moat/topic.h"

/* The reason word for a refusal of the reader. */
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

/* NULL when payload is one JSON object whose top-level device_id, if any, is sender. */
static const char *json_object_of(const struct moat_publish *m)
{
	const struct moat_json_limits lim = {
		.max_bytes = MOAT_PUBLISH_JSON_MAX_BYTES,
		.max_depth = MOAT_JSON_DEPTH_MAX,
	};
	struct moat_json_fault fault;
	cJSON *root = NULL;
	const char *why = NULL;

	/* The common case, without a tree: a valid object whose device_id, if any, is the
	 * sender's name written without escapes. Anything else goes to the reader, which
	 * accepts or gives the reason. */
	struct moat_json_quick_field id = {.key = "device_id"};
	if (moat_json_object_quick(m->payload, m->len, &lim, &id) &&
	    (!id.found || (id.is_string && id.value_len == strlen(m->sender) &&
			   memcmp(id.value, m->sender, id.value_len) == 0))) {
		return NULL;
	}
	if (moat_json_parse("payload", m->payload, m->len, &lim, &root, &fault, NULL) != 0) {
		return json_reason(fault.kind);
	}
	/* The reader has made sure there is at most one device_id key at the top. */
	for (const cJSON *item = root->child; item; item = item->next) {
		if (strcmp(item->string, "device_id") == 0 &&
		    (!cJSON_IsString(item) || strcmp(item->valuestring, m->sender) != 0)) {
			why = "device_id_mismatch";
		}
	}
	cJSON_Delete(root);
	return why;
}

static const char *status_of(const struct moat_publish *m)
{
	if (m->len == 0 && m->retain) {
		return NULL; /* clears the sender's own retained status */
	}
	const char *why = json_object_of(m);
	if (why) {
		return why;
	}
	struct moat_msg_status status;
	if (moat_msg_status_parse(m->payload, m->len, &status, NULL) != 0) {
		return "bad_status";
	}
	/* json_object_of saw a device_id equal to the sender if there was one; the schema
	 * requires one. */
	return strcmp(status.device_id, m->sender) == 0 ? NULL : "device_id_mismatch";
}

const char *moat_publish_check(const struct moat_publish *m, uint32_t max_payload)
{
	struct moat_topic t;
	int kind = MOAT_PUBLISH_NOT_MOAT_TOPIC;
	if (m->topic && moat_topic_parse(m->topic, &t, NULL) == 0) {
		kind = (int)t.kind;
	}
	return moat_publish_check_kind(m, kind, max_payload);
}

const char *moat_publish_check_kind(const struct moat_publish *m, int kind, uint32_t max_payload)
{
	if (m->len > max_payload) {
		return "too_large";
	}
	if (kind == MOAT_PUBLISH_NOT_MOAT_TOPIC) {
		return NULL;
	}
	switch ((enum moat_topic_kind)kind) {
	case MOAT_TOPIC_STATUS:
		return status_of(m);
	case MOAT_TOPIC_TELEMETRY:
	case MOAT_TOPIC_COMMAND_RESPONSES:
		return json_object_of(m);
	default:
		return NULL;
	}
}
