/* fuzz_json_quick.c: differential harness for the JSON reader's quick pass
 * (moat_json_object_quick, src/core/json.c) and the payload rule that uses it
 * (moat_publish_check, src/core/publish.c).
 *
 * Byte 0: its high 4 bits the depth (0..8, larger is clamped); bit 0 whether the quick pass
 * looks up "device_id"; bit 1 picks the sender the payload rule expects ("dev-000001" or
 * "a"). The rest is the text. Invariants:
 *   - the quick pass never accepts what moat_json_parse refuses, and what it reports of
 *     the top-level "device_id" is what the tree holds (found, string, the same bytes);
 *   - moat_publish_check on a telemetry topic gives the reason the rule gave before the
 *     quick pass existed: moat_json_parse, then the top-level device_id against the sender
 *     (reference_reason below, the former body of publish.c's json_object_of).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/json.h"
#include "moat/publish.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_BYTES 4096

static const char *fault_reason(enum moat_json_fault_kind kind)
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

/* The payload rule with the full reader alone. */
static const char *reference_reason(const uint8_t *text, size_t len, const char *sender)
{
	const struct moat_json_limits lim = {.max_bytes = MOAT_PUBLISH_JSON_MAX_BYTES,
					     .max_depth = MOAT_JSON_DEPTH_MAX};
	struct moat_json_fault fault;
	cJSON *root = NULL;
	const char *why = NULL;
	if (moat_json_parse("payload", text, len, &lim, &root, &fault, NULL) != 0) {
		return fault_reason(fault.kind);
	}
	for (const cJSON *item = root->child; item; item = item->next) {
		if (strcmp(item->string, "device_id") == 0 &&
		    (!cJSON_IsString(item) || strcmp(item->valuestring, sender) != 0)) {
			why = "device_id_mismatch";
		}
	}
	cJSON_Delete(root);
	return why;
}

static void check_quick(const uint8_t *text, size_t len, unsigned depth, bool lookup)
{
	struct moat_json_limits lim = {.max_bytes = FUZZ_MAX_BYTES, .max_depth = depth};
	struct moat_json_quick_field field = {.key = "device_id"};
	if (!moat_json_object_quick(text, len, &lim, lookup ? &field : NULL)) {
		return;
	}
	cJSON *root = NULL;
	struct moat_json_fault f;
	if (moat_json_parse("fuzz", text, len, &lim, &root, &f, NULL) != 0) {
		abort(); /* the quick pass accepted what the reader refuses */
	}
	if (lookup) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "device_id");
		if (field.found != (id != NULL) || field.is_string != cJSON_IsString(id)) {
			abort();
		}
		if (field.is_string &&
		    (strlen(id->valuestring) != field.value_len ||
		     memcmp(id->valuestring, field.value, field.value_len) != 0)) {
			abort();
		}
	}
	cJSON_Delete(root);
}

static void check_rule(const uint8_t *text, size_t len, const char *sender)
{
	const struct moat_publish m = {
		.sender = sender,
		.topic = strcmp(sender, "a") == 0 ? "devices/a/telemetry"
						  : "devices/dev-000001/telemetry",
		.payload = text,
		.len = (uint32_t)len,
	};
	const char *got = moat_publish_check(&m, MOAT_PUBLISH_JSON_MAX_BYTES);
	const char *want = reference_reason(text, len, sender);
	if ((got == NULL) != (want == NULL) || (got && strcmp(got, want) != 0)) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size - 1 > FUZZ_MAX_BYTES) {
		return 0;
	}
	unsigned depth = (data[0] >> 4) % (MOAT_JSON_DEPTH_MAX + 1);
	check_quick(data + 1, size - 1, depth, (data[0] & 1u) != 0);
	check_rule(data + 1, size - 1, (data[0] & 2u) ? "a" : "dev-000001");
	return 0;
}
