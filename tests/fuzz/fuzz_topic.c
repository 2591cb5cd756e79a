/* fuzz_topic.c: libFuzzer harness for the topic scheme and the ACL decision (topic.c).
 *
 * Input: byte 0 picks the role, byte 1 the access, then "identity\ntopic". Besides
 * crashes it checks invariants that must hold for any input: an allowed topic or filter
 * is valid and inside the length limit, a parsed topic builds back to itself, and a device
 * is never allowed anything on another device's topics: a topic it may read or write names
 * it, and a filter it may subscribe to matches no topic of another device (checked with a
 * matcher of its own against every kind of topic of another identity). The seeds named
 * other_device_* try exactly that.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIELD_MAX (MOAT_TOPIC_MAX_LEN + 8)

/* MQTT matching, written here independently of topic.c: '+' is one level, a trailing '#'
 * any number of levels including none. */
static bool filter_matches(const char *f, const char *t)
{
	for (;;) {
		if (f[0] == '#' && f[1] == '\0') {
			return true;
		}
		size_t fl = strcspn(f, "/");
		size_t tl = strcspn(t, "/");
		if (!(fl == 1 && f[0] == '+') && (fl != tl || memcmp(f, t, fl) != 0)) {
			return false;
		}
		f += fl;
		t += tl;
		if (*f == '\0' || *t == '\0') {
			/* "a/#" matches "a" */
			return *f == *t || strcmp(f, "/#") == 0;
		}
		f++;
		t++;
	}
}

/* Whether filter matches any topic of a device other than identity. The command name tried
 * is the filter's own fourth level when it has one, so a filter naming a command is tried
 * with that command. */
static bool matches_other_device(const char *filter, const char *identity)
{
	char other[MOAT_ID_BUF_LEN];
	char name[MOAT_TOPIC_NAME_MAX_LEN + 1] = "reboot";
	char built[MOAT_TOPIC_BUF_LEN];
	snprintf(other, sizeof(other), "%s", strcmp(identity, "zz-other") != 0 ? "zz-other" : "zy");
	const char *p = filter;
	for (int level = 0; level < 3 && p; level++) {
		p = strchr(p, '/');
		p = p ? p + 1 : NULL;
	}
	if (p && strcspn(p, "/") < sizeof(name) && strcspn(p, "/") > 0 && strchr(p, '/') == NULL &&
	    strcmp(p, "+") != 0 && strcmp(p, "#") != 0) {
		snprintf(name, sizeof(name), "%s", p);
	}
	for (int kind = 0; kind < MOAT_TOPIC_KIND_COUNT; kind++) {
		if (kind == MOAT_TOPIC_EVENT) {
			continue;
		}
		if (moat_topic_build((enum moat_topic_kind)kind, other, name, built, sizeof(built),
				     NULL) == 0 &&
		    filter_matches(filter, built)) {
			return true;
		}
	}
	return false;
}

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
		if (role == MOAT_ROLE_DEVICE && access == MOAT_ACCESS_SUBSCRIBE &&
		    matches_other_device(topic, identity)) {
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
