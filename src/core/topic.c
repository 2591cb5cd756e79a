/* topic.c: the MQTT topic scheme and the least-privilege access decision (topic.h).
 *
 * The scheme is a short table of "shapes": sequences of levels that are either a fixed word
 * or a variable (a device id, a command name, an event kind; all in the identity
 * alphabet). A concrete topic is parsed by finding the shape it fits. A subscription
 * filter is judged shape by shape: intersecting a filter with a shape gives either nothing
 * or, for each variable, one specific value or "any value", which is exactly what the role
 * rules need to decide whether everything the filter can deliver is readable.
 *
 * Pure: no I/O, no globals besides constant tables, no allocation. Strings are read at
 * most MOAT_TOPIC_MAX_LEN + 1 bytes far.
 */
#include "moat/topic.h"

#include <stdio.h>
#include <string.h>

/* No topic of the scheme has more levels than this; a filter needs at most one more ('#'). */
#define SCHEME_MAX_LEVELS 5
#define SPLIT_MAX_LEVELS (SCHEME_MAX_LEVELS + 1)

struct level {
	const char *p;
	size_t len;
};

/* A shape: lit[i] is the fixed word of level i, or NULL for a variable. id_level and
 * name_level say which variable is which (-1: none). */
struct shape {
	enum moat_topic_kind kind;
	int nlevels;
	int id_level;
	int name_level;
	const char *lit[SCHEME_MAX_LEVELS];
};

static const struct shape shapes[MOAT_TOPIC_KIND_COUNT] = {
	{MOAT_TOPIC_TELEMETRY, 3, 1, -1, {"devices", NULL, "telemetry"}},
	{MOAT_TOPIC_STATUS, 3, 1, -1, {"devices", NULL, "status"}},
	{MOAT_TOPIC_DIAGNOSTICS, 3, 1, -1, {"devices", NULL, "diagnostics"}},
	{MOAT_TOPIC_COMMAND_RESPONSES, 3, 1, -1, {"devices", NULL, "command_responses"}},
	{MOAT_TOPIC_COMMAND, 4, 1, 3, {"devices", NULL, "commands", NULL}},
	{MOAT_TOPIC_EVENT, 3, -1, 2, {"moat", "events", NULL}},
};

static const char *const kind_names[MOAT_TOPIC_KIND_COUNT] = {
	"telemetry", "status", "diagnostics", "command_responses", "command", "event",
};

static const char *const reason_names[] = {
	"ok",
	"bad_input",
	"bad_topic",
	"dollar_topic",
	"outside_scheme",
	"not_granted",
	"bad_shared_subscription",
};

const char *moat_topic_kind_name(enum moat_topic_kind kind)
{
	return (unsigned)kind < MOAT_TOPIC_KIND_COUNT ? kind_names[kind] : "unknown";
}

const char *moat_acl_reason_name(enum moat_acl_reason reason)
{
	return (unsigned)reason < sizeof(reason_names) / sizeof(reason_names[0])
		       ? reason_names[reason]
		       : "unknown";
}

/* A level holds a name of the identity alphabet. The rule itself lives once, in
 * identity.c; levels are not NUL-terminated, hence the copy. */
static bool level_name_ok(const struct level *l)
{
	char buf[MOAT_ID_BUF_LEN];

	if (l->len == 0 || l->len > MOAT_ID_MAX_LEN) {
		return false;
	}
	memcpy(buf, l->p, l->len);
	buf[l->len] = '\0';
	return moat_identity_name_ok(buf);
}

static bool level_is(const struct level *l, const char *word)
{
	size_t n = strlen(word);
	return l->len == n && memcmp(l->p, word, n) == 0;
}

/* Splits s (of length len) at '/'. Returns the number of levels, or SPLIT_MAX_LEVELS + 1
 * when there are more than fit (only the first SPLIT_MAX_LEVELS are filled then). */
static int split(const char *s, size_t len, struct level *out)
{
	int n = 0;
	size_t start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '/') {
			if (n == SPLIT_MAX_LEVELS) {
				return SPLIT_MAX_LEVELS + 1;
			}
			out[n].p = s + start;
			out[n].len = i - start;
			n++;
			start = i + 1;
		}
	}
	return n;
}

/* Length of s when it is 1..MOAT_TOPIC_MAX_LEN bytes, else 0. */
static size_t bounded_len(const char *s)
{
	size_t len = strnlen(s, MOAT_TOPIC_MAX_LEN + 1);
	return len > MOAT_TOPIC_MAX_LEN ? 0 : len;
}

static bool copy_level(const struct level *l, char *dst, size_t size)
{
	if (l->len >= size) {
		return false;
	}
	memcpy(dst, l->p, l->len);
	dst[l->len] = '\0';
	return true;
}

/* A copy of at most 80 bytes of untrusted s fit for a one-line message: topics come from
 * the network, so control characters become '?'. */
static const char *shown(const char *s, char *buf, size_t size)
{
	size_t i = 0;

	for (; s && s[i] && i + 1 < size && i < 80; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	buf[i] = '\0';
	return buf;
}

int moat_topic_build(enum moat_topic_kind kind, const char *id, const char *name, char *buf,
		     size_t size, struct moat_err *err)
{
	char show[84];
	int n;

	if (!buf || size == 0) {
		return moat_err_set(err, MOAT_EINVAL, "topic: no buffer");
	}
	buf[0] = '\0';
	if ((unsigned)kind >= MOAT_TOPIC_KIND_COUNT) {
		return moat_err_set(err, MOAT_EINVAL, "topic: unknown kind %d", (int)kind);
	}
	if (kind != MOAT_TOPIC_EVENT && !moat_identity_name_ok(id)) {
		return moat_err_set(err, MOAT_EINVAL, "topic: invalid identity '%s'",
				    shown(id, show, sizeof(show)));
	}
	if ((kind == MOAT_TOPIC_COMMAND || kind == MOAT_TOPIC_EVENT) &&
	    !moat_identity_name_ok(name)) {
		return moat_err_set(err, MOAT_EINVAL, "topic: invalid %s name '%s'",
				    kind == MOAT_TOPIC_COMMAND ? "command" : "event",
				    shown(name, show, sizeof(show)));
	}
	switch (kind) {
	case MOAT_TOPIC_COMMAND:
		n = snprintf(buf, size, "devices/%s/commands/%s", id, name);
		break;
	case MOAT_TOPIC_EVENT:
		n = snprintf(buf, size, "moat/events/%s", name);
		break;
	default:
		n = snprintf(buf, size, "devices/%s/%s", id, shapes[kind].lit[2]);
		break;
	}
	if (n < 0 || (size_t)n >= size) {
		buf[0] = '\0';
		return moat_err_set(err, MOAT_EINVAL, "topic: buffer of %zu bytes is too small",
				    size);
	}
	return 0;
}

/* Finds the shape a concrete topic (already split, no wildcards) fits. */
static const struct shape *match_concrete(const struct level *lv, int n)
{
	for (int s = 0; s < MOAT_TOPIC_KIND_COUNT; s++) {
		const struct shape *sh = &shapes[s];
		bool ok = sh->nlevels == n;

		for (int i = 0; ok && i < n; i++) {
			ok = sh->lit[i] ? level_is(&lv[i], sh->lit[i]) : level_name_ok(&lv[i]);
		}
		if (ok) {
			return sh;
		}
	}
	return NULL;
}

int moat_topic_parse(const char *topic, struct moat_topic *out, struct moat_err *err)
{
	struct level lv[SPLIT_MAX_LEVELS];
	const struct shape *sh;
	char show[84];
	size_t len;
	int n;

	if (!out) {
		return moat_err_set(err, MOAT_EINVAL, "topic: no output");
	}
	memset(out, 0, sizeof(*out));
	if (!topic) {
		return moat_err_set(err, MOAT_EINVAL, "topic: missing");
	}
	len = bounded_len(topic);
	if (len == 0) {
		return moat_err_set(err, MOAT_EINVAL, "topic is empty or longer than %d bytes",
				    MOAT_TOPIC_MAX_LEN);
	}
	if (memchr(topic, '+', len) || memchr(topic, '#', len)) {
		return moat_err_set(err, MOAT_EINVAL, "topic '%s' contains a wildcard",
				    shown(topic, show, sizeof(show)));
	}
	n = split(topic, len, lv);
	sh = n <= SCHEME_MAX_LEVELS ? match_concrete(lv, n) : NULL;
	if (!sh) {
		return moat_err_set(err, MOAT_EINVAL, "topic '%s' is not a topic of the scheme",
				    shown(topic, show, sizeof(show)));
	}
	out->kind = sh->kind;
	/* both copies fit: the levels passed level_name_ok (at most MOAT_ID_MAX_LEN) */
	if ((sh->id_level >= 0 && !copy_level(&lv[sh->id_level], out->id, sizeof(out->id))) ||
	    (sh->name_level >= 0 &&
	     !copy_level(&lv[sh->name_level], out->name, sizeof(out->name)))) {
		memset(out, 0, sizeof(*out));
		return moat_err_set(err, MOAT_EINVAL, "topic '%s': level too long",
				    shown(topic, show, sizeof(show)));
	}
	return 0;
}

bool moat_topic_filter_valid(const char *filter)
{
	size_t len;

	if (!filter) {
		return false;
	}
	len = bounded_len(filter);
	if (len == 0) {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		bool starts = i == 0 || filter[i - 1] == '/';
		bool ends = i + 1 == len || filter[i + 1] == '/';

		if (filter[i] == '+' && !(starts && ends)) {
			return false;
		}
		if (filter[i] == '#' && !(starts && i + 1 == len)) {
			return false;
		}
	}
	return true;
}

/* What a filter selects of one shape: nothing, or for the id variable either one value
 * (id set) or any (id NULL). The name variable never matters to the rules. */
struct selection {
	bool any;
	const struct level *id;
};

static struct selection select_shape(const struct shape *sh, const struct level *lv, int n)
{
	struct selection sel = {false, NULL};
	bool hash = n > 0 && level_is(&lv[n - 1], "#");
	int fixed = hash ? n - 1 : n; /* levels before '#' */

	/* "a/#" also matches "a" itself, so '#' needs only that the shape is long enough */
	if (hash ? sh->nlevels < fixed : sh->nlevels != fixed) {
		return sel;
	}
	for (int i = 0; i < fixed; i++) {
		if (level_is(&lv[i], "+")) {
			continue;
		}
		if (sh->lit[i] ? !level_is(&lv[i], sh->lit[i]) : !level_name_ok(&lv[i])) {
			return sel;
		}
		if (i == sh->id_level) {
			sel.id = &lv[i];
		}
	}
	sel.any = true;
	return sel;
}

/* May identity (role) read every topic of kind whose device id is id (NULL: any id)? */
static bool may_read(enum moat_role role, const char *identity, enum moat_topic_kind kind,
		     const struct level *id)
{
	if (role == MOAT_ROLE_DEVICE) {
		return kind == MOAT_TOPIC_COMMAND && id && level_is(id, identity);
	}
	/* services and operators read all device output and the events, never commands */
	return kind != MOAT_TOPIC_COMMAND;
}

static bool may_write(enum moat_role role, const char *identity, enum moat_topic_kind kind,
		      const struct level *id, const struct moat_acl_policy *policy)
{
	switch (role) {
	case MOAT_ROLE_DEVICE:
		return kind != MOAT_TOPIC_COMMAND && kind != MOAT_TOPIC_EVENT && id &&
		       level_is(id, identity);
	case MOAT_ROLE_SERVICE:
		return kind == MOAT_TOPIC_COMMAND;
	case MOAT_ROLE_OPERATOR:
		return kind == MOAT_TOPIC_COMMAND && policy->operator_write_commands;
	}
	return false;
}

static enum moat_acl_reason decide_subscribe(enum moat_role role, const char *identity,
					     const char *filter, size_t len)
{
	struct level lv[SPLIT_MAX_LEVELS];
	bool matched = false;
	int n;

	if (!moat_topic_filter_valid(filter)) {
		return MOAT_ACL_BAD_TOPIC;
	}
	n = split(filter, len, lv);
	if (n > SPLIT_MAX_LEVELS) {
		/* more levels than any shape has, even counting a trailing '#' */
		return MOAT_ACL_OUTSIDE_SCHEME;
	}
	for (int s = 0; s < MOAT_TOPIC_KIND_COUNT; s++) {
		struct selection sel = select_shape(&shapes[s], lv, n);

		if (!sel.any) {
			continue;
		}
		matched = true;
		if (!may_read(role, identity, shapes[s].kind, sel.id)) {
			return MOAT_ACL_NOT_GRANTED;
		}
	}
	return matched ? MOAT_ACL_OK : MOAT_ACL_OUTSIDE_SCHEME;
}

/* "$share/<name>/<filter>" of a service: the filter is judged as itself. */
static enum moat_acl_reason decide_shared(enum moat_role role, const char *identity,
					  const char *topic, size_t len)
{
	const size_t plen = sizeof(MOAT_SHARE_PREFIX) - 1;
	const char *name = topic + plen;
	const char *slash = memchr(name, '/', len - plen);
	char buf[MOAT_SHARE_NAME_MAX_LEN + 1];

	if (!slash || slash == name || (size_t)(slash - name) > MOAT_SHARE_NAME_MAX_LEN ||
	    (size_t)(slash + 1 - topic) >= len) {
		return MOAT_ACL_BAD_SHARE;
	}
	memcpy(buf, name, (size_t)(slash - name));
	buf[slash - name] = '\0';
	if (!moat_identity_name_ok(buf)) {
		return MOAT_ACL_BAD_SHARE;
	}
	const char *filter = slash + 1;
	if (filter[0] == '$') {
		return MOAT_ACL_DOLLAR;
	}
	return decide_subscribe(role, identity, filter, len - (size_t)(filter - topic));
}

static enum moat_acl_reason decide(enum moat_role role, const char *identity,
				   enum moat_access access, const char *topic,
				   const struct moat_acl_policy *policy)
{
	struct level lv[SPLIT_MAX_LEVELS];
	const struct shape *sh;
	size_t len;
	int n;

	if (!identity || !topic || !policy || (unsigned)role >= MOAT_ROLE_COUNT ||
	    !moat_identity_name_ok(identity)) {
		return MOAT_ACL_BAD_INPUT;
	}
	if (access != MOAT_ACCESS_READ && access != MOAT_ACCESS_WRITE &&
	    access != MOAT_ACCESS_SUBSCRIBE) {
		return MOAT_ACL_BAD_INPUT;
	}
	len = bounded_len(topic);
	if (len == 0) {
		return MOAT_ACL_BAD_TOPIC;
	}
	if (access == MOAT_ACCESS_SUBSCRIBE && role == MOAT_ROLE_SERVICE &&
	    strncmp(topic, MOAT_SHARE_PREFIX, sizeof(MOAT_SHARE_PREFIX) - 1) == 0) {
		return decide_shared(role, identity, topic, len);
	}
	if (topic[0] == '$') {
		return MOAT_ACL_DOLLAR;
	}
	if (access == MOAT_ACCESS_SUBSCRIBE) {
		return decide_subscribe(role, identity, topic, len);
	}
	if (memchr(topic, '+', len) || memchr(topic, '#', len)) {
		return MOAT_ACL_BAD_TOPIC;
	}
	n = split(topic, len, lv);
	sh = n <= SCHEME_MAX_LEVELS ? match_concrete(lv, n) : NULL;
	if (!sh) {
		return MOAT_ACL_OUTSIDE_SCHEME;
	}
	const struct level *id = sh->id_level >= 0 ? &lv[sh->id_level] : NULL;
	bool ok = access == MOAT_ACCESS_READ ? may_read(role, identity, sh->kind, id)
					     : may_write(role, identity, sh->kind, id, policy);
	return ok ? MOAT_ACL_OK : MOAT_ACL_NOT_GRANTED;
}

bool moat_acl_decide(enum moat_role role, const char *identity, enum moat_access access,
		     const char *topic, const struct moat_acl_policy *policy,
		     enum moat_acl_reason *out_reason)
{
	enum moat_acl_reason reason = decide(role, identity, access, topic, policy);

	if (out_reason) {
		*out_reason = reason;
	}
	return reason == MOAT_ACL_OK;
}
