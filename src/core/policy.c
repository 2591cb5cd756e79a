/* policy.c: the broker policy file (include/moat/policy.h), parsed and rendered.
 *
 * Pure: text in, struct out and back. The parser is strict because the file is the only
 * thing between the registry and what the broker enforces: a line it does not understand
 * could be a permission it would otherwise silently miss, so any doubt fails the parse.
 * Rendering and parsing share the bounds (moat_policy_validate), so whatever renders also
 * parses back to the same struct.
 */
#include "moat/policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 6
#define LIMIT_KEYS 4

static const char *const status_names[MOAT_POLICY_STATUS_COUNT] = {"active", "revoked", "disabled"};
static const char *const limit_keys[LIMIT_KEYS] = {"msgs_per_s", "bytes_per_s", "burst",
						   "max_payload"};

void moat_policy_init(struct moat_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->operator_write_commands = true;
	p->limits[MOAT_ROLE_DEVICE] = (struct moat_policy_limits){.msgs_per_s = 10,
								  .bytes_per_s = 16384,
								  .burst = 20,
								  .max_payload = 8192};
	p->limits[MOAT_ROLE_SERVICE] = (struct moat_policy_limits){.msgs_per_s = 0,
								   .bytes_per_s = 0,
								   .burst = 1000,
								   .max_payload = 1048576};
	p->limits[MOAT_ROLE_OPERATOR] = (struct moat_policy_limits){.msgs_per_s = 5,
								    .bytes_per_s = 65536,
								    .burst = 10,
								    .max_payload = 65536};
	p->subs[MOAT_ROLE_DEVICE] = (struct moat_policy_subs){.per_client = 32, .per_packet = 16};
	p->subs[MOAT_ROLE_SERVICE] =
		(struct moat_policy_subs){.per_client = 1024, .per_packet = 256};
	p->subs[MOAT_ROLE_OPERATOR] =
		(struct moat_policy_subs){.per_client = 256, .per_packet = 64};
	p->flapping[MOAT_ROLE_DEVICE] =
		(struct moat_policy_flapping){.connects = 10, .window_s = 60, .ban_s = 300};
	p->flapping[MOAT_ROLE_SERVICE] =
		(struct moat_policy_flapping){.connects = 30, .window_s = 10, .ban_s = 10};
	p->flapping[MOAT_ROLE_OPERATOR] =
		(struct moat_policy_flapping){.connects = 0, .window_s = 60, .ban_s = 60};
	p->job_msgs_per_s = MOAT_POLICY_JOB_RATE_DEFAULT;
}

void moat_policy_free(struct moat_policy *p)
{
	if (!p) {
		return;
	}
	free(p->identities);
	moat_policy_init(p);
}

const char *moat_policy_status_name(enum moat_policy_status st)
{
	return (unsigned)st < MOAT_POLICY_STATUS_COUNT ? status_names[st] : "?";
}

int moat_policy_status_parse(const char *text, enum moat_policy_status *out_status,
			     struct moat_err *err)
{
	for (int i = 0; i < MOAT_POLICY_STATUS_COUNT; i++) {
		if (text && strcmp(text, status_names[i]) == 0) {
			*out_status = (enum moat_policy_status)i;
			return 0;
		}
	}
	return moat_err_set(err, MOAT_EINVAL,
			    "unknown status '%.32s' (use active, revoked or disabled)",
			    text ? text : "");
}

static int cmp_name(const void *key, const void *elem)
{
	const struct moat_policy_identity *id = elem;
	return strcmp(key, id->name);
}

const struct moat_policy_identity *moat_policy_find(const struct moat_policy *p, const char *name)
{
	if (!p || !name || p->identity_count == 0 ||
	    strnlen(name, MOAT_ID_BUF_LEN) > MOAT_ID_MAX_LEN) {
		return NULL;
	}
	return bsearch(name, p->identities, p->identity_count, sizeof(p->identities[0]), cmp_name);
}

/* First index whose name is >= name (the insertion point). */
static size_t lower_bound(const struct moat_policy *p, const char *name)
{
	size_t lo = 0;
	size_t hi = p->identity_count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(p->identities[mid].name, name) < 0) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

int moat_policy_add_identity(struct moat_policy *p, const char *name, enum moat_role role,
			     enum moat_policy_status status, struct moat_err *err)
{
	int rc = moat_identity_name_check(name, err);
	if (rc < 0) {
		return rc;
	}
	if ((unsigned)role >= MOAT_ROLE_COUNT) {
		return moat_err_set(err, MOAT_EINVAL, "identity '%s': invalid role %d", name,
				    (int)role);
	}
	if ((unsigned)status >= MOAT_POLICY_STATUS_COUNT) {
		return moat_err_set(err, MOAT_EINVAL, "identity '%s': invalid status %d", name,
				    (int)status);
	}
	size_t pos = p->identity_count;
	if (pos > 0 && strcmp(p->identities[pos - 1].name, name) >= 0) {
		pos = lower_bound(p, name);
		if (strcmp(p->identities[pos].name, name) == 0) {
			return moat_err_set(err, MOAT_EEXIST, "identity '%s' is listed twice",
					    name);
		}
	}
	if (p->identity_count >= MOAT_POLICY_MAX_IDENTITIES) {
		return moat_err_set(err, MOAT_EINVAL, "more than %u identities",
				    MOAT_POLICY_MAX_IDENTITIES);
	}
	if (p->identity_count == p->identity_cap) {
		size_t cap = p->identity_cap ? p->identity_cap * 2 : 16;
		if (cap > MOAT_POLICY_MAX_IDENTITIES) {
			cap = MOAT_POLICY_MAX_IDENTITIES;
		}
		struct moat_policy_identity *grown = realloc(p->identities, cap * sizeof(*grown));
		if (!grown) {
			return moat_err_set(err, MOAT_ENOMEM, "out of memory for %zu identities",
					    cap);
		}
		p->identities = grown;
		p->identity_cap = cap;
	}
	if (pos < p->identity_count) {
		memmove(&p->identities[pos + 1], &p->identities[pos],
			(p->identity_count - pos) * sizeof(p->identities[0]));
	}
	struct moat_policy_identity *id = &p->identities[pos];
	memset(id, 0, sizeof(*id));
	memcpy(id->name, name, strlen(name) + 1);
	id->role = role;
	id->status = status;
	p->identity_count++;
	return 0;
}

int moat_policy_add_unban(struct moat_policy *p, const char *name, int64_t before_s,
			  struct moat_err *err)
{
	int rc = moat_identity_name_check(name, err);
	if (rc < 0) {
		return rc;
	}
	if (before_s <= 0 || before_s > (int64_t)UINT32_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "unban %s: time %lld is out of range", name,
				    (long long)before_s);
	}
	size_t i = 0;
	while (i < p->unban_count && strcmp(p->unbans[i].name, name) != 0) {
		i++;
	}
	if (i == p->unban_count && p->unban_count == MOAT_POLICY_MAX_UNBANS) {
		memmove(&p->unbans[0], &p->unbans[1], (p->unban_count - 1) * sizeof(p->unbans[0]));
		i = --p->unban_count;
	}
	if (i == p->unban_count) {
		p->unban_count++;
	}
	memcpy(p->unbans[i].name, name, strlen(name) + 1);
	p->unbans[i].before_s = before_s;
	return 0;
}

static int check_range(const char *what, uint32_t v, uint32_t min, uint32_t max,
		       struct moat_err *err)
{
	if (v < min || v > max) {
		return moat_err_set(err, MOAT_EINVAL, "%s=%u is out of range [%u, %u]", what, v,
				    min, max);
	}
	return 0;
}

static int validate_limits(const struct moat_policy_limits *l, struct moat_err *err)
{
	int rc = check_range("msgs_per_s", l->msgs_per_s, 0, MOAT_POLICY_RATE_MAX, err);
	if (rc == 0) {
		rc = check_range("bytes_per_s", l->bytes_per_s, 0, MOAT_POLICY_RATE_MAX, err);
	}
	if (rc == 0) {
		rc = check_range("burst", l->burst, MOAT_POLICY_BURST_MIN, MOAT_POLICY_BURST_MAX,
				 err);
	}
	if (rc == 0) {
		rc = check_range("max_payload", l->max_payload, MOAT_POLICY_PAYLOAD_MIN_BYTES,
				 MOAT_POLICY_PAYLOAD_MAX_BYTES, err);
	}
	return rc;
}

static int validate_subs(const struct moat_policy_subs *s, struct moat_err *err)
{
	int rc = check_range("per_client", s->per_client, MOAT_POLICY_SUBS_MIN,
			     MOAT_POLICY_SUBS_MAX, err);
	if (rc == 0) {
		rc = check_range("per_packet", s->per_packet, MOAT_POLICY_SUBS_MIN,
				 MOAT_POLICY_SUBS_MAX, err);
	}
	return rc;
}

static int validate_flapping(const struct moat_policy_flapping *f, struct moat_err *err)
{
	int rc = check_range("connects", f->connects, 0, MOAT_POLICY_FLAP_CONNECTS_MAX, err);
	if (rc == 0) {
		rc = check_range("window_s", f->window_s, MOAT_POLICY_FLAP_WINDOW_MIN_S,
				 MOAT_POLICY_FLAP_WINDOW_MAX_S, err);
	}
	if (rc == 0) {
		rc = check_range("ban_s", f->ban_s, MOAT_POLICY_FLAP_BAN_MIN_S,
				 MOAT_POLICY_FLAP_BAN_MAX_S, err);
	}
	return rc;
}

int moat_policy_validate(const struct moat_policy *p, struct moat_err *err)
{
	for (int r = 0; r < MOAT_ROLE_COUNT; r++) {
		int rc = validate_limits(&p->limits[r], err);
		if (rc < 0) {
			moat_err_prefix(err, "policy: limits %s",
					moat_role_name((enum moat_role)r));
			return rc;
		}
		rc = validate_subs(&p->subs[r], err);
		if (rc < 0) {
			moat_err_prefix(err, "policy: subscriptions %s",
					moat_role_name((enum moat_role)r));
			return rc;
		}
	}
	int rc = 0;
	for (int r = 0; r < MOAT_ROLE_COUNT; r++) {
		rc = validate_flapping(&p->flapping[r], err);
		if (rc < 0) {
			/* the devices' line has no role word in the file either */
			moat_err_prefix(err, "policy: flapping%s%s",
					r == MOAT_ROLE_DEVICE ? "" : " ",
					r == MOAT_ROLE_DEVICE ? ""
							      : moat_role_name((enum moat_role)r));
			return rc;
		}
	}
	if ((rc = check_range("msgs_per_s", p->job_msgs_per_s, 1, MOAT_POLICY_JOB_RATE_MAX, err)) !=
	    0) {
		moat_err_prefix(err, "policy: jobs");
		return rc;
	}
	if (p->unban_count > MOAT_POLICY_MAX_UNBANS) {
		return moat_err_set(err, MOAT_EINVAL, "policy: more than %u unbans",
				    MOAT_POLICY_MAX_UNBANS);
	}
	for (size_t i = 0; i < p->unban_count; i++) {
		const struct moat_policy_unban *u = &p->unbans[i];
		if (memchr(u->name, '\0', sizeof(u->name)) == NULL ||
		    !moat_identity_name_ok(u->name) || u->before_s <= 0 ||
		    u->before_s > (int64_t)UINT32_MAX) {
			return moat_err_set(err, MOAT_EINVAL, "policy: unban %zu is invalid", i);
		}
	}
	if (p->identity_count > MOAT_POLICY_MAX_IDENTITIES ||
	    (p->identity_count > 0 && !p->identities)) {
		return moat_err_set(err, MOAT_EINVAL, "policy: invalid identity table");
	}
	for (size_t i = 0; i < p->identity_count; i++) {
		const struct moat_policy_identity *id = &p->identities[i];
		if (memchr(id->name, '\0', sizeof(id->name)) == NULL) {
			return moat_err_set(err, MOAT_EINVAL, "policy: identity %zu: name too long",
					    i);
		}
		rc = moat_identity_name_check(id->name, err);
		if (rc < 0) {
			moat_err_prefix(err, "policy");
			return rc;
		}
		if ((unsigned)id->role >= MOAT_ROLE_COUNT ||
		    (unsigned)id->status >= MOAT_POLICY_STATUS_COUNT) {
			return moat_err_set(err, MOAT_EINVAL,
					    "policy: identity '%s': invalid role or status",
					    id->name);
		}
		if (i > 0 && strcmp(p->identities[i - 1].name, id->name) >= 0) {
			return moat_err_set(err, MOAT_EINVAL,
					    "policy: identity '%s' is out of order or listed twice",
					    id->name);
		}
	}
	return 0;
}

/* ---- rendering: one writer that counts what it would write, so size and text agree ---- */

struct writer {
	char *buf;
	size_t size;
	size_t pos; /* bytes the full text needs so far, NUL excluded */
};

static void put(struct writer *w, const char *fmt, ...) MOAT_PRINTF(2, 3);
static void put(struct writer *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *dst = NULL;
	size_t room = 0;
	if (w->buf && w->pos < w->size) {
		dst = w->buf + w->pos;
		room = w->size - w->pos;
	}
	int n = vsnprintf(dst, room, fmt, ap);
	va_end(ap);
	if (n > 0) {
		w->pos += (size_t)n;
	}
}

static void render_all(const struct moat_policy *p, struct writer *w)
{
	put(w, "moat-policy %d\n", MOAT_POLICY_VERSION);
	put(w, "# generated by moat from the registry; changes here are overwritten\n");
	put(w, "operator_write_commands %s\n", p->operator_write_commands ? "yes" : "no");
	for (int r = 0; r < MOAT_ROLE_COUNT; r++) {
		const struct moat_policy_limits *l = &p->limits[r];
		put(w, "limits %s msgs_per_s=%u bytes_per_s=%u burst=%u max_payload=%u\n",
		    moat_role_name((enum moat_role)r), l->msgs_per_s, l->bytes_per_s, l->burst,
		    l->max_payload);
	}
	struct moat_policy defaults;
	moat_policy_init(&defaults);
	for (int r = 0; r < MOAT_ROLE_COUNT; r++) {
		const struct moat_policy_subs *sb = &p->subs[r];
		if (memcmp(sb, &defaults.subs[r], sizeof(*sb)) != 0) {
			put(w, "subscriptions %s per_client=%u per_packet=%u\n",
			    moat_role_name((enum moat_role)r), sb->per_client, sb->per_packet);
		}
	}
	const struct moat_policy_flapping *fd = &p->flapping[MOAT_ROLE_DEVICE];
	put(w, "flapping connects=%u window_s=%u ban_s=%u\n", fd->connects, fd->window_s,
	    fd->ban_s);
	for (int r = MOAT_ROLE_DEVICE + 1; r < MOAT_ROLE_COUNT; r++) {
		const struct moat_policy_flapping *f = &p->flapping[r];
		if (memcmp(f, &defaults.flapping[r], sizeof(*f)) != 0) {
			put(w, "flapping %s connects=%u window_s=%u ban_s=%u\n",
			    moat_role_name((enum moat_role)r), f->connects, f->window_s, f->ban_s);
		}
	}
	if (p->job_msgs_per_s != defaults.job_msgs_per_s) {
		put(w, "jobs msgs_per_s=%u\n", p->job_msgs_per_s);
	}
	for (size_t i = 0; i < p->identity_count; i++) {
		const struct moat_policy_identity *id = &p->identities[i];
		put(w, "identity %s %s %s\n", id->name, moat_role_name(id->role),
		    moat_policy_status_name(id->status));
	}
	for (size_t i = 0; i < p->unban_count; i++) {
		put(w, "unban %s %lld\n", p->unbans[i].name, (long long)p->unbans[i].before_s);
	}
	put(w, "end identities=%zu\n", p->identity_count);
}

size_t moat_policy_render_size(const struct moat_policy *p)
{
	struct writer w = {0};
	render_all(p, &w);
	return w.pos + 1;
}

int moat_policy_render(const struct moat_policy *p, char *buf, size_t size, size_t *out_len,
		       struct moat_err *err)
{
	if (buf && size > 0) {
		buf[0] = '\0';
	}
	int rc = moat_policy_validate(p, err);
	if (rc < 0) {
		return rc;
	}
	struct writer w = {.buf = buf, .size = size};
	render_all(p, &w);
	if (!buf || w.pos >= size) {
		if (buf && size > 0) {
			buf[0] = '\0';
		}
		return moat_err_set(err, MOAT_EINVAL, "policy: buffer too small (need %zu bytes)",
				    w.pos + 1);
	}
	if (out_len) {
		*out_len = w.pos;
	}
	return 0;
}

int moat_policy_render_alloc(const struct moat_policy *p, char **out_text, size_t *out_len,
			     struct moat_err *err)
{
	*out_text = NULL;
	int rc = moat_policy_validate(p, err);
	if (rc < 0) {
		return rc;
	}
	size_t need = moat_policy_render_size(p);
	char *text = malloc(need);
	if (!text) {
		return moat_err_set(err, MOAT_ENOMEM, "policy: out of memory (%zu bytes)", need);
	}
	rc = moat_policy_render(p, text, need, out_len, err);
	if (rc < 0) {
		free(text);
		return rc;
	}
	*out_text = text;
	return 0;
}

/* ---- parsing ---- */

struct parse_state {
	struct moat_policy *p;
	bool seen_operator;
	bool seen_limits[MOAT_ROLE_COUNT];
	bool seen_subs[MOAT_ROLE_COUNT];
	bool seen_flapping[MOAT_ROLE_COUNT];
	bool seen_jobs;
	bool seen_end;
};

/* Decimal digits only, no leading zero, within [min, max]. */
static int parse_u32(const char *key, const char *text, uint32_t min, uint32_t max, uint32_t *out,
		     struct moat_err *err)
{
	size_t len = strlen(text);
	if (len == 0) {
		return moat_err_set(err, MOAT_EINVAL, "%s has no value", key);
	}
	if (len > 10 || (len > 1 && text[0] == '0')) {
		return moat_err_set(err, MOAT_EINVAL, "%s=%.16s is not a plain decimal number", key,
				    text);
	}
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (text[i] < '0' || text[i] > '9') {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s=%.16s is not a plain decimal number", key, text);
		}
		v = v * 10 + (uint64_t)(text[i] - '0');
	}
	if (v < min || v > max) {
		return moat_err_set(err, MOAT_EINVAL, "%s=%.16s is out of range [%u, %u]", key,
				    text, min, max);
	}
	*out = (uint32_t)v;
	return 0;
}

/* Splits "key=value" in place; value may be empty (parse_u32 refuses it). */
static int split_kv(char *field, char **out_value, struct moat_err *err)
{
	char *eq = strchr(field, '=');
	if (!eq || eq == field) {
		return moat_err_set(err, MOAT_EINVAL, "expected key=value, got '%.32s'", field);
	}
	*eq = '\0';
	*out_value = eq + 1;
	return 0;
}

/* Fields "key=value" with each of keys exactly once (n of them: the caller checked the
 * count), into vals[] in the order of keys. what names the line in messages. key_count is
 * at most LIMIT_KEYS, the longest list. */
static int parse_u32_fields(char **f, int n, const char *what, const char *const *keys,
			    int key_count, uint32_t *vals, struct moat_err *err)
{
	bool seen[LIMIT_KEYS] = {false};
	for (int i = 0; i < n; i++) {
		char *value = NULL;
		int rc = split_kv(f[i], &value, err);
		if (rc < 0) {
			return rc;
		}
		int k = 0;
		while (k < key_count && strcmp(f[i], keys[k]) != 0) {
			k++;
		}
		if (k == key_count) {
			return moat_err_set(err, MOAT_EINVAL, "unknown %s key '%.32s'", what, f[i]);
		}
		if (seen[k]) {
			return moat_err_set(err, MOAT_EINVAL, "%s given twice", f[i]);
		}
		seen[k] = true;
		rc = parse_u32(f[i], value, 0, UINT32_MAX, &vals[k], err);
		if (rc < 0) {
			return rc;
		}
	}
	return 0;
}

static int parse_limits(struct parse_state *st, char **f, int n, struct moat_err *err)
{
	if (n != 2 + LIMIT_KEYS) {
		return moat_err_set(err, MOAT_EINVAL,
				    "limits needs a role and msgs_per_s=, bytes_per_s=, burst=, "
				    "max_payload=");
	}
	enum moat_role role;
	int rc = moat_role_parse(f[1], &role, err);
	if (rc < 0) {
		return rc;
	}
	if (st->seen_limits[role]) {
		return moat_err_set(err, MOAT_EINVAL, "limits for %s given twice", f[1]);
	}
	uint32_t vals[LIMIT_KEYS] = {0};
	rc = parse_u32_fields(f + 2, n - 2, "limits", limit_keys, LIMIT_KEYS, vals, err);
	if (rc < 0) {
		return rc;
	}
	struct moat_policy_limits l = {.msgs_per_s = vals[0],
				       .bytes_per_s = vals[1],
				       .burst = vals[2],
				       .max_payload = vals[3]};
	rc = validate_limits(&l, err);
	if (rc < 0) {
		return rc;
	}
	st->p->limits[role] = l;
	st->seen_limits[role] = true;
	return 0;
}

static int parse_subs(struct parse_state *st, char **f, int n, struct moat_err *err)
{
	static const char *const keys[2] = {"per_client", "per_packet"};
	if (n != 4) {
		return moat_err_set(err, MOAT_EINVAL,
				    "subscriptions needs a role, per_client= and per_packet=");
	}
	enum moat_role role;
	int rc = moat_role_parse(f[1], &role, err);
	if (rc < 0) {
		return rc;
	}
	if (st->seen_subs[role]) {
		return moat_err_set(err, MOAT_EINVAL, "subscriptions for %s given twice", f[1]);
	}
	uint32_t vals[2] = {0};
	bool seen[2] = {false};
	for (int i = 2; i < n; i++) {
		char *value = NULL;
		rc = split_kv(f[i], &value, err);
		if (rc < 0) {
			return rc;
		}
		int k = strcmp(f[i], keys[0]) == 0 ? 0 : strcmp(f[i], keys[1]) == 0 ? 1 : -1;
		if (k < 0) {
			return moat_err_set(err, MOAT_EINVAL, "unknown subscriptions key '%.32s'",
					    f[i]);
		}
		if (seen[k]) {
			return moat_err_set(err, MOAT_EINVAL, "%s given twice", f[i]);
		}
		seen[k] = true;
		rc = parse_u32(f[i], value, MOAT_POLICY_SUBS_MIN, MOAT_POLICY_SUBS_MAX, &vals[k],
			       err);
		if (rc < 0) {
			return rc;
		}
	}
	st->p->subs[role] = (struct moat_policy_subs){.per_client = vals[0], .per_packet = vals[1]};
	st->seen_subs[role] = true;
	return 0;
}

static int parse_flapping(struct parse_state *st, char **f, int n, struct moat_err *err)
{
	static const char *const keys[3] = {"connects", "window_s", "ban_s"};
	enum moat_role role = MOAT_ROLE_DEVICE;
	int rc = 0;
	if (n >= 2 && !strchr(f[1], '=')) {
		rc = moat_role_parse(f[1], &role, err);
		if (rc < 0) {
			return rc;
		}
		f++;
		n--;
	}
	if (n != 4) {
		return moat_err_set(err, MOAT_EINVAL,
				    "flapping needs connects=, window_s= and ban_s=");
	}
	if (st->seen_flapping[role]) {
		return moat_err_set(err, MOAT_EINVAL, "flapping%s%s given twice",
				    role == MOAT_ROLE_DEVICE ? "" : " ",
				    role == MOAT_ROLE_DEVICE ? "" : moat_role_name(role));
	}
	uint32_t vals[3] = {0};
	rc = parse_u32_fields(f + 1, n - 1, "flapping", keys, 3, vals, err);
	if (rc < 0) {
		return rc;
	}
	struct moat_policy_flapping fl = {.connects = vals[0],
					  .window_s = vals[1],
					  .ban_s = vals[2]};
	rc = validate_flapping(&fl, err);
	if (rc < 0) {
		return rc;
	}
	st->p->flapping[role] = fl;
	st->seen_flapping[role] = true;
	return 0;
}

static int parse_jobs(struct parse_state *st, char **f, int n, struct moat_err *err)
{
	static const char *const keys[1] = {"msgs_per_s"};
	uint32_t rate = 0;
	if (n != 2) {
		return moat_err_set(err, MOAT_EINVAL, "jobs needs msgs_per_s=");
	}
	if (st->seen_jobs) {
		return moat_err_set(err, MOAT_EINVAL, "jobs given twice");
	}
	int rc = parse_u32_fields(f + 1, 1, "jobs", keys, 1, &rate, err);
	if (rc == 0) {
		rc = check_range("msgs_per_s", rate, 1, MOAT_POLICY_JOB_RATE_MAX, err);
	}
	if (rc < 0) {
		moat_err_prefix(err, "jobs");
		return rc;
	}
	st->p->job_msgs_per_s = rate;
	st->seen_jobs = true;
	return 0;
}

static int parse_unban(struct parse_state *st, char **f, int n, struct moat_err *err)
{
	uint32_t before = 0;
	if (n != 3) {
		return moat_err_set(err, MOAT_EINVAL, "unban needs a name and a Unix time");
	}
	int rc = moat_identity_name_check(f[1], err);
	if (rc == 0) {
		rc = parse_u32("unban time", f[2], 1, UINT32_MAX, &before, err);
	}
	if (rc < 0) {
		return rc;
	}
	for (size_t i = 0; i < st->p->unban_count; i++) {
		if (strcmp(st->p->unbans[i].name, f[1]) == 0) {
			return moat_err_set(err, MOAT_EINVAL, "unban %s given twice", f[1]);
		}
	}
	if (st->p->unban_count >= MOAT_POLICY_MAX_UNBANS) {
		return moat_err_set(err, MOAT_EINVAL, "more than %u unbans",
				    MOAT_POLICY_MAX_UNBANS);
	}
	return moat_policy_add_unban(st->p, f[1], before, err);
}

static int parse_identity(struct parse_state *st, char **f, int n, struct moat_err *err)
{
	if (n != 4) {
		return moat_err_set(err, MOAT_EINVAL, "identity needs a name, a role and a status");
	}
	int rc = moat_identity_name_check(f[1], err);
	if (rc < 0) {
		return rc;
	}
	const struct moat_policy *p = st->p;
	if (p->identity_count > 0 && strcmp(p->identities[p->identity_count - 1].name, f[1]) >= 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "identity '%s' is out of order or listed twice (names must be "
				    "strictly ascending)",
				    f[1]);
	}
	enum moat_role role;
	rc = moat_role_parse(f[2], &role, err);
	if (rc < 0) {
		return rc;
	}
	enum moat_policy_status status;
	rc = moat_policy_status_parse(f[3], &status, err);
	if (rc < 0) {
		return rc;
	}
	return moat_policy_add_identity(st->p, f[1], role, status, err);
}

static int parse_line(struct parse_state *st, char *line, struct moat_err *err)
{
	char *f[MAX_FIELDS];
	int n = 0;
	char *s = line;
	for (;;) {
		char *sp = strchr(s, ' ');
		if (sp) {
			*sp = '\0';
		}
		if (*s == '\0') {
			return moat_err_set(err, MOAT_EINVAL,
					    "empty field (fields are separated by single spaces)");
		}
		if (n == MAX_FIELDS) {
			return moat_err_set(err, MOAT_EINVAL, "too many fields");
		}
		f[n++] = s;
		if (!sp) {
			break;
		}
		s = sp + 1;
	}
	if (strcmp(f[0], "identity") == 0) {
		return parse_identity(st, f, n, err);
	}
	if (strcmp(f[0], "limits") == 0) {
		return parse_limits(st, f, n, err);
	}
	if (strcmp(f[0], "subscriptions") == 0) {
		return parse_subs(st, f, n, err);
	}
	if (strcmp(f[0], "flapping") == 0) {
		return parse_flapping(st, f, n, err);
	}
	if (strcmp(f[0], "jobs") == 0) {
		return parse_jobs(st, f, n, err);
	}
	if (strcmp(f[0], "unban") == 0) {
		return parse_unban(st, f, n, err);
	}
	if (strcmp(f[0], "operator_write_commands") == 0) {
		if (n != 2 || (strcmp(f[1], "yes") != 0 && strcmp(f[1], "no") != 0)) {
			return moat_err_set(err, MOAT_EINVAL,
					    "operator_write_commands needs yes or no");
		}
		if (st->seen_operator) {
			return moat_err_set(err, MOAT_EINVAL,
					    "operator_write_commands given twice");
		}
		st->seen_operator = true;
		st->p->operator_write_commands = strcmp(f[1], "yes") == 0;
		return 0;
	}
	if (strcmp(f[0], "end") == 0) {
		uint32_t count;
		if (n != 2 || strncmp(f[1], "identities=", 11) != 0) {
			return moat_err_set(err, MOAT_EINVAL, "end needs identities=<count>");
		}
		int rc = parse_u32("identities", f[1] + 11, 0, MOAT_POLICY_MAX_IDENTITIES, &count,
				   err);
		if (rc < 0) {
			return rc;
		}
		if (count != st->p->identity_count) {
			return moat_err_set(err, MOAT_EINVAL,
					    "end says %u identities but %zu were listed", count,
					    st->p->identity_count);
		}
		st->seen_end = true;
		return 0;
	}
	return moat_err_set(err, MOAT_EINVAL, "unknown setting '%.32s'", f[0]);
}

int moat_policy_parse(const char *buf, size_t len, struct moat_policy *out, struct moat_err *err)
{
	moat_policy_init(out);
	struct parse_state st = {.p = out};
	struct moat_err sub = {0};
	char line[MOAT_POLICY_LINE_MAX_LEN + 1];
	unsigned lineno = 0;
	size_t off = 0;
	int rc = 0;

	if (!buf && len > 0) {
		return moat_err_set(err, MOAT_EINVAL, "policy: no buffer");
	}
	if (len > MOAT_POLICY_MAX_BYTES) {
		return moat_err_set(err, MOAT_EINVAL, "policy: larger than %u bytes",
				    MOAT_POLICY_MAX_BYTES);
	}
	if (len == 0) {
		return moat_err_set(err, MOAT_EINVAL, "policy:1: empty file");
	}
	while (off < len) {
		lineno++;
		const char *start = buf + off;
		const char *nl = memchr(start, '\n', len - off);
		size_t llen = nl ? (size_t)(nl - start) : len - off;
		if (st.seen_end) {
			rc = moat_err_set(err, MOAT_EINVAL, "policy:%u: text after the end line",
					  lineno);
			goto out;
		}
		if (llen > MOAT_POLICY_LINE_MAX_LEN) {
			rc = moat_err_set(err, MOAT_EINVAL, "policy:%u: line longer than %d bytes",
					  lineno, MOAT_POLICY_LINE_MAX_LEN);
			goto out;
		}
		if (!nl) {
			rc = moat_err_set(err, MOAT_EINVAL,
					  "policy:%u: no newline at the end (truncated file?)",
					  lineno);
			goto out;
		}
		for (size_t i = 0; i < llen; i++) {
			unsigned char c = (unsigned char)start[i];
			if (c < 0x20 || c > 0x7e) {
				rc = moat_err_set(err, MOAT_EINVAL,
						  "policy:%u: invalid byte 0x%02x at column %zu",
						  lineno, c, i + 1);
				goto out;
			}
		}
		memcpy(line, start, llen);
		line[llen] = '\0';
		off += llen + 1;
		if (lineno == 1) {
			char expect[32];
			snprintf(expect, sizeof(expect), "moat-policy %d", MOAT_POLICY_VERSION);
			if (strcmp(line, expect) == 0) {
				continue;
			}
			if (strncmp(line, "moat-policy ", 12) == 0) {
				rc = moat_err_set(err, MOAT_EINVAL,
						  "policy:1: unsupported version '%.16s' (this moat "
						  "reads version %d)",
						  line + 12, MOAT_POLICY_VERSION);
			} else {
				rc = moat_err_set(err, MOAT_EINVAL,
						  "policy:1: not a moat policy (the first line must "
						  "be '%s')",
						  expect);
			}
			goto out;
		}
		if (llen == 0 || line[0] == '#') {
			continue;
		}
		rc = parse_line(&st, line, &sub);
		if (rc < 0) {
			moat_err_set(err, rc, "policy:%u: %s", lineno, sub.msg);
			goto out;
		}
	}
	if (!st.seen_end) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "policy:%u: missing the end line (truncated file?)", lineno + 1);
	}
out:
	if (rc < 0) {
		moat_policy_free(out);
	}
	return rc;
}
