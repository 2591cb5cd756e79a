/* fuzz_topic.c: libFuzzer harness for the topic scheme and the ACL decision (topic.c).
 *
 * Input: byte 0 picks the role, byte 1 the access, then "identity\ntopic". Besides
 * crashes it checks invariants that must hold for any input: an allowed topic or filter
 * is valid and inside the length limit, a parsed topic builds back to itself, and a device
 * is never allowed anything on another device's topics.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIELD_MAX (MOAT_TOPIC_MAX_LEN + 8)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum moat_access accesses[] = {MOAT_ACCESS_READ, MOAT_ACCESS_WRITE,
						    MOAT_ACCESS_SUBSCRIBE};
	char identity[FIELD_MAX + 1];
	char topic[FIELD_MAX + 1];
	char built[MOAT_TOPIC_BUF_LEN];
	struct moat_topic t;

	if (size < 2) {
		return 0;
	}
	enum moat_role role = (enum moat_role)(data[0] % (MOAT_ROLE_COUNT + 1));
	enum moat_access access = accesses[data[1] % 3];
	struct moat_acl_policy policy = {.operator_write_commands = (data[1] & 0x80) != 0};
	data += 2;
	size -= 2;

	const uint8_t *nl = memchr(data, '\n', size);
	size_t id_len = nl ? (size_t)(nl - data) : 0;
	size_t rest = nl ? size - id_len - 1 : size;
	if (id_len > FIELD_MAX || rest > FIELD_MAX) {
		return 0;
	}
	memcpy(identity, data, id_len);
	identity[id_len] = '\0';
	memcpy(topic, nl ? nl + 1 : data, rest);
	topic[rest] = '\0';

	enum moat_acl_reason why;
	bool ok = moat_acl_decide(role, identity, access, topic, &policy, &why);
	if (ok != (why == MOAT_ACL_OK)) {
		abort();
	}
	if (ok) {
		if (!moat_identity_name_ok(identity) || strlen(topic) > MOAT_TOPIC_MAX_LEN ||
		    !moat_topic_filter_valid(topic)) {
			abort();
		}
		if (access != MOAT_ACCESS_SUBSCRIBE) {
			if (moat_topic_parse(topic, &t, NULL) != 0) {
				abort();
			}
			/* a device's grants are all on its own topics */
			if (role == MOAT_ROLE_DEVICE && strcmp(t.id, identity) != 0) {
				abort();
			}
		}
	}

	if (moat_topic_parse(topic, &t, NULL) == 0) {
		if (moat_topic_build(t.kind, t.id, t.name, built, sizeof(built), NULL) != 0 ||
		    strcmp(built, topic) != 0) {
			abort();
		}
	} else if (t.id[0] != '\0' || t.name[0] != '\0') {
		abort(); /* *out is zeroed on failure */
	}
	(void)moat_topic_filter_valid(topic);
	return 0;
}
