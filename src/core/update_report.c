/* update_report.c: the report of one update check as moat-update --report prints it, one
 * JSON object per line (update_schema.h), and its strict parser for the processes that read
 * it (moat-agent, moat sim). The parser trusts nothing about the line: a child that
 * misbehaves must not be able to smuggle a half-understood outcome into an update event.
 * So the line goes through the one strict reader (json.h) with the rules of a one-line
 * format of integers (no control bytes at all, numbers plain non-negative integers), then
 * only the keys of each kind are accepted, each of its type, strings fit their fields (no
 * control characters, valid UTF-8) and numbers are at most 2^53-1.
 *
 * Pure (core): moat-update writes with it, moat-agent and moat sim read with it, and none
 * of them needs the HTTPS client for that.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/json.h"
#include "moat/update_schema.h"

#define KEY_SHOW_MAX 32 /* how much of an unknown key an error message shows */

/* Every key a line may hold; a bit each in the masks below. */
enum {
	R_STAGE,
	R_OUTCOME,
	R_VERSION,
	R_OFFSET,
	R_SIZE,
	R_SLOT,
	R_RESUMED,
	R_VERDICT,
	R_MSG,
	R_COUNT
};
static const char *const rkeys[R_COUNT] = {
	"stage", "outcome", "version", "offset", "size", "slot", "resumed_from", "verdict", "msg",
};
#define BIT(k) (1u << (k))

/* Per kind of line (by its "stage" or "outcome" value): what it must and may hold. */
struct line_kind {
	const char *name;
	enum moat_update_report_kind kind;
	enum moat_update_outcome outcome;
	unsigned required;
	unsigned allowed;
};

static const struct line_kind kinds[] = {
	{"downloading", MOAT_UPDATE_REPORT_DOWNLOADING, MOAT_UPDATE_UP_TO_DATE,
	 BIT(R_STAGE) | BIT(R_VERSION) | BIT(R_OFFSET) | BIT(R_SIZE),
	 BIT(R_STAGE) | BIT(R_VERSION) | BIT(R_OFFSET) | BIT(R_SIZE)},
	{"up_to_date", MOAT_UPDATE_REPORT_OUTCOME, MOAT_UPDATE_UP_TO_DATE,
	 BIT(R_OUTCOME) | BIT(R_MSG), BIT(R_OUTCOME) | BIT(R_MSG) | BIT(R_VERSION)},
	{"staged", MOAT_UPDATE_REPORT_OUTCOME, MOAT_UPDATE_STAGED,
	 BIT(R_OUTCOME) | BIT(R_VERSION) | BIT(R_SLOT) | BIT(R_RESUMED) | BIT(R_MSG),
	 BIT(R_OUTCOME) | BIT(R_VERSION) | BIT(R_SLOT) | BIT(R_RESUMED) | BIT(R_MSG)},
	{"refused", MOAT_UPDATE_REPORT_OUTCOME, MOAT_UPDATE_REFUSED,
	 BIT(R_OUTCOME) | BIT(R_VERDICT) | BIT(R_MSG),
	 BIT(R_OUTCOME) | BIT(R_VERDICT) | BIT(R_MSG) | BIT(R_VERSION)},
	{"trial_pending", MOAT_UPDATE_REPORT_OUTCOME, MOAT_UPDATE_TRIAL_PENDING,
	 BIT(R_OUTCOME) | BIT(R_MSG), BIT(R_OUTCOME) | BIT(R_MSG) | BIT(R_VERSION)},
	{"failed", MOAT_UPDATE_REPORT_FAILED, MOAT_UPDATE_UP_TO_DATE, BIT(R_OUTCOME) | BIT(R_MSG),
	 BIT(R_OUTCOME) | BIT(R_MSG)},
};
#define KIND_COUNT (sizeof(kinds) / sizeof(kinds[0]))

/* The verdict named name (moat_fw_verdict_name's reverse), never MOAT_FW_ACCEPT: a refusal
 * always has a reason. */
static bool verdict_from_name(const char *name, enum moat_fw_verdict *out)
{
	for (int v = MOAT_FW_ACCEPT + 1; v < MOAT_FW_VERDICT_COUNT; v++) {
		if (strcmp(moat_fw_verdict_name((enum moat_fw_verdict)v), name) == 0) {
			*out = (enum moat_fw_verdict)v;
			return true;
		}
	}
	return false;
}

/* A string field: present as a string, within max_len bytes, non-empty unless allowed. */
static int check_text(const char *key, const char *s, size_t max_len, bool allow_empty,
		      struct moat_err *err)
{
	size_t len = strnlen(s, max_len + 1);

	if (len > max_len) {
		return moat_err_set(err, MOAT_EINVAL, "update report: %s: longer than %zu bytes",
				    key, max_len);
	}
	if (len == 0 && !allow_empty) {
		return moat_err_set(err, MOAT_EINVAL, "update report: %s: empty", key);
	}
	/* what a log line, a JSON reader in any language and a terminal take as it is: no C1
	 * or bidi control either */
	if (!moat_json_text_ok(s, len, true)) {
		return moat_err_set(err, MOAT_EINVAL,
				    "update report: %s: control character or invalid UTF-8", key);
	}
	return 0;
}

static int check_uint(const char *key, uint64_t v, struct moat_err *err)
{
	if (v > (uint64_t)MOAT_FW_INT_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "update report: %s: above 2^53-1", key);
	}
	return 0;
}

static const struct line_kind *kind_of(const struct moat_update_report *r)
{
	for (size_t i = 0; i < KIND_COUNT; i++) {
		if (kinds[i].kind == r->kind &&
		    (r->kind != MOAT_UPDATE_REPORT_OUTCOME || kinds[i].outcome == r->res.outcome)) {
			return &kinds[i];
		}
	}
	return NULL;
}

/* ---- format ---- */

static int add_string(cJSON *o, const char *key, const char *s)
{
	return cJSON_AddStringToObject(o, key, s) != NULL ? 0 : MOAT_ENOMEM;
}

static int add_uint(cJSON *o, const char *key, uint64_t v)
{
	char num[24];

	/* Raw digits: exact, where a double would print in exponent form. */
	snprintf(num, sizeof(num), "%" PRIu64, v);
	return cJSON_AddRawToObject(o, key, num) != NULL ? 0 : MOAT_ENOMEM;
}

int moat_update_report_format(const struct moat_update_report *r, char *buf, size_t size,
			      size_t *out_len, struct moat_err *err)
{
	const struct line_kind *k = kind_of(r);
	const struct moat_update_result *res = &r->res;
	cJSON *o = NULL;
	char *text = NULL;
	int rc;

	*out_len = 0;
	if (k == NULL) {
		return moat_err_set(err, MOAT_EINVAL, "update report: unknown kind or outcome");
	}
	/* The same rules as the parser, so whatever is written reads back. */
	rc = 0;
	if (k->allowed & BIT(R_MSG)) {
		rc = check_text("msg", res->msg, sizeof(res->msg) - 1, true, err);
	}
	if (rc == 0 && (k->allowed & BIT(R_VERSION))) {
		rc = check_text("version", res->version, sizeof(res->version) - 1,
				!(k->required & BIT(R_VERSION)), err);
	}
	if (rc == 0 && (k->required & BIT(R_SLOT)) && res->slot != 'a' && res->slot != 'b') {
		rc = moat_err_set(err, MOAT_EINVAL, "update report: slot: not a or b");
	}
	if (rc == 0 && (k->required & BIT(R_RESUMED))) {
		rc = check_uint("resumed_from", res->resumed_from, err);
	}
	if (rc == 0 && (k->required & BIT(R_VERDICT)) &&
	    (res->verdict <= MOAT_FW_ACCEPT || res->verdict >= MOAT_FW_VERDICT_COUNT)) {
		rc = moat_err_set(err, MOAT_EINVAL, "update report: verdict: not a refusal");
	}
	if (rc == 0 && r->kind == MOAT_UPDATE_REPORT_DOWNLOADING) {
		rc = check_uint("size", r->size, err);
		if (rc == 0 && r->offset >= r->size) {
			rc = moat_err_set(err, MOAT_EINVAL,
					  "update report: offset: not below size");
		}
	}
	if (rc != 0) {
		goto out;
	}

	o = cJSON_CreateObject();
	rc = o != NULL ? 0 : MOAT_ENOMEM;
	if (rc == 0) {
		rc = add_string(o, r->kind == MOAT_UPDATE_REPORT_DOWNLOADING ? "stage" : "outcome",
				k->name);
	}
	if (rc == 0 && (k->required & BIT(R_VERDICT))) {
		rc = add_string(o, "verdict", moat_fw_verdict_name(res->verdict));
	}
	if (rc == 0 && (k->allowed & BIT(R_VERSION)) && res->version[0] != '\0') {
		rc = add_string(o, "version", res->version);
	}
	if (rc == 0 && r->kind == MOAT_UPDATE_REPORT_DOWNLOADING) {
		rc = add_uint(o, "offset", r->offset);
		if (rc == 0) {
			rc = add_uint(o, "size", r->size);
		}
	}
	if (rc == 0 && (k->required & BIT(R_SLOT))) {
		char slot[2] = {res->slot, '\0'};

		rc = add_string(o, "slot", slot);
	}
	if (rc == 0 && (k->required & BIT(R_RESUMED))) {
		rc = add_uint(o, "resumed_from", res->resumed_from);
	}
	if (rc == 0 && (k->allowed & BIT(R_MSG))) {
		rc = add_string(o, "msg", res->msg);
	}
	if (rc == 0) {
		text = cJSON_PrintUnformatted(o);
		rc = text != NULL ? 0 : MOAT_ENOMEM;
	}
	if (rc != 0) {
		rc = moat_err_set(err, MOAT_ENOMEM, "update report: out of memory");
		goto out;
	}
	size_t len = strlen(text);
	if (len + 1 > MOAT_UPDATE_REPORT_MAX_BYTES) {
		rc = moat_err_set(err, MOAT_EINVAL, "update report: line longer than %u bytes",
				  MOAT_UPDATE_REPORT_MAX_BYTES);
		goto out;
	}
	if (len + 2 > size) {
		rc = moat_err_set(err, MOAT_EINVAL, "update report: buffer too small");
		goto out;
	}
	memcpy(buf, text, len);
	buf[len] = '\n';
	buf[len + 1] = '\0';
	*out_len = len + 1;
out:
	free(text);
	cJSON_Delete(o);
	return rc;
}

/* ---- parse ---- */

/* name, shown in an error message: printable ASCII only, shortened. */
static void show_key(const char *name, char *buf, size_t size)
{
	size_t n = 0;

	for (; name[n] != '\0' && n < KEY_SHOW_MAX && n + 1 < size; n++) {
		unsigned char c = (unsigned char)name[n];

		buf[n] = c >= 0x20 && c < 0x7f && c != '\'' ? (char)c : '?';
	}
	buf[n] = '\0';
}

/* The reader with the line format's rules, its refusals in the words of the format. */
static int read_line(const char *line, size_t len, cJSON **out_root, struct moat_err *err)
{
	const struct moat_json_limits lim = {
		.max_bytes = MOAT_UPDATE_REPORT_MAX_BYTES,
		.max_depth = MOAT_JSON_DEPTH_MAX,
		.flags = MOAT_JSON_NO_CONTROLS | MOAT_JSON_UINTS,
	};
	struct moat_json_fault f;
	char shown[KEY_SHOW_MAX + 1];
	int rc = moat_json_parse("update report", line, len, &lim, out_root, &f, err);

	switch (rc != 0 ? f.kind : MOAT_JSON_OK) {
	case MOAT_JSON_OK:
		/* The writer puts nothing after the object, not even a space. */
		if (line[len - 1] != '}') {
			cJSON_Delete(*out_root);
			*out_root = NULL;
			return moat_err_set(err, MOAT_EINVAL,
					    "update report: data after the object");
		}
		return 0;
	case MOAT_JSON_EMPTY:
	case MOAT_JSON_SYNTAX:
	case MOAT_JSON_NOT_OBJECT:
		return moat_err_set(err, MOAT_EINVAL, "update report: not a JSON object");
	case MOAT_JSON_ESCAPED_NUL:
		return moat_err_set(err, MOAT_EINVAL, "update report: \\u0000 in a string");
	case MOAT_JSON_BAD_NUMBER:
		return moat_err_set(err, MOAT_EINVAL,
				    "update report: number at byte %zu is not a non-negative "
				    "integer of at most %d digits",
				    f.offset, MOAT_JSON_UINT_MAX_DIGITS);
	case MOAT_JSON_DUPLICATE:
		show_key(f.key, shown, sizeof(shown));
		return moat_err_set(err, MOAT_EINVAL, "update report: duplicate key '%s'", shown);
	default:
		return rc;
	}
}

static int get_text(const cJSON *item, const char *key, char *dst, size_t size, bool allow_empty,
		    struct moat_err *err)
{
	if (!cJSON_IsString(item) || item->valuestring == NULL) {
		return moat_err_set(err, MOAT_EINVAL, "update report: %s: not a string", key);
	}
	int rc = check_text(key, item->valuestring, size - 1, allow_empty, err);
	if (rc == 0) {
		memcpy(dst, item->valuestring, strlen(item->valuestring) + 1);
	}
	return rc;
}

static int get_uint(const cJSON *item, const char *key, uint64_t *out, struct moat_err *err)
{
	/* the reader (MOAT_JSON_UINTS) let only digits through, so the double is exact unless above
	 * 2^53-1 (then it rounds, and is refused the same). */
	if (!cJSON_IsNumber(item) || item->valuedouble < 0 ||
	    item->valuedouble > (double)MOAT_FW_INT_MAX) {
		return moat_err_set(err, MOAT_EINVAL,
				    "update report: %s: not an integer in 0..2^53-1", key);
	}
	*out = (uint64_t)item->valuedouble;
	return 0;
}

/* Each member of root into items[] by its key (rkeys), and a bit in *out_present; any
 * other key is refused. */
static int index_keys(const cJSON *root, const cJSON *items[R_COUNT], unsigned *out_present,
		      struct moat_err *err)
{
	for (const cJSON *c = root->child; c != NULL; c = c->next) {
		char shown[KEY_SHOW_MAX + 1];
		int key = -1;

		for (int i = 0; i < R_COUNT && c->string != NULL; i++) {
			if (strcmp(c->string, rkeys[i]) == 0) {
				key = i;
				break;
			}
		}
		show_key(c->string != NULL ? c->string : "", shown, sizeof(shown));
		if (key < 0) {
			return moat_err_set(err, MOAT_EINVAL, "update report: unknown key '%s'",
					    shown);
		}
		*out_present |= BIT(key);
		items[key] = c;
	}
	return 0;
}

/* The kind of line ("stage", only "downloading", or "outcome"), and that its keys are
 * exactly those it must and may hold. */
static int find_kind(const cJSON *const items[R_COUNT], unsigned present,
		     const struct line_kind **out_kind, struct moat_err *err)
{
	const char *kind_key = items[R_STAGE] != NULL ? "stage" : "outcome";
	const cJSON *kind_item = items[R_STAGE] != NULL ? items[R_STAGE] : items[R_OUTCOME];
	const struct line_kind *k = NULL;

	if (kind_item == NULL) {
		return moat_err_set(err, MOAT_EINVAL, "update report: neither stage nor outcome");
	}
	if (!cJSON_IsString(kind_item) || kind_item->valuestring == NULL) {
		return moat_err_set(err, MOAT_EINVAL, "update report: %s: not a string", kind_key);
	}
	for (size_t i = 0; i < KIND_COUNT; i++) {
		bool is_stage = kinds[i].kind == MOAT_UPDATE_REPORT_DOWNLOADING;

		if (is_stage == (items[R_STAGE] != NULL) &&
		    strcmp(kinds[i].name, kind_item->valuestring) == 0) {
			k = &kinds[i];
			break;
		}
	}
	if (k == NULL) {
		char shown[KEY_SHOW_MAX + 1];

		show_key(kind_item->valuestring, shown, sizeof(shown));
		return moat_err_set(err, MOAT_EINVAL, "update report: %s: unknown value '%s'",
				    kind_key, shown);
	}
	for (int i = 0; i < R_COUNT; i++) {
		if ((present & BIT(i)) && !(k->allowed & BIT(i))) {
			return moat_err_set(err, MOAT_EINVAL,
					    "update report: key '%s' not allowed in a %s line",
					    rkeys[i], k->name);
		}
		if (!(present & BIT(i)) && (k->required & BIT(i))) {
			return moat_err_set(err, MOAT_EINVAL,
					    "update report: missing key '%s' in a %s line",
					    rkeys[i], k->name);
		}
	}
	*out_kind = k;
	return 0;
}

/* The values of a line of kind k into *r, each checked for its type and range. */
static int read_values(const struct line_kind *k, const cJSON *const items[R_COUNT],
		       struct moat_update_report *r, struct moat_err *err)
{
	int rc = 0;

	r->kind = k->kind;
	r->res.outcome = k->outcome;
	if (items[R_VERSION] != NULL) {
		rc = get_text(items[R_VERSION], "version", r->res.version, sizeof(r->res.version),
			      false, err);
	}
	if (rc == 0 && items[R_MSG] != NULL) {
		rc = get_text(items[R_MSG], "msg", r->res.msg, sizeof(r->res.msg), true, err);
	}
	if (rc == 0 && items[R_SLOT] != NULL) {
		const char *s = cJSON_IsString(items[R_SLOT]) ? items[R_SLOT]->valuestring : NULL;

		if (s == NULL || (strcmp(s, "a") != 0 && strcmp(s, "b") != 0)) {
			rc = moat_err_set(err, MOAT_EINVAL,
					  "update report: slot: not \"a\" or \"b\"");
		} else {
			r->res.slot = s[0];
		}
	}
	if (rc == 0 && items[R_VERDICT] != NULL) {
		const char *s = cJSON_IsString(items[R_VERDICT]) ? items[R_VERDICT]->valuestring
								 : NULL;

		if (s == NULL || !verdict_from_name(s, &r->res.verdict)) {
			rc = moat_err_set(err, MOAT_EINVAL,
					  "update report: verdict: not a refusal verdict name");
		}
	}
	if (rc == 0 && items[R_RESUMED] != NULL) {
		rc = get_uint(items[R_RESUMED], "resumed_from", &r->res.resumed_from, err);
	}
	if (rc == 0 && items[R_OFFSET] != NULL) {
		rc = get_uint(items[R_OFFSET], "offset", &r->offset, err);
	}
	if (rc == 0 && items[R_SIZE] != NULL) {
		rc = get_uint(items[R_SIZE], "size", &r->size, err);
	}
	if (rc == 0 && r->kind == MOAT_UPDATE_REPORT_DOWNLOADING && r->offset >= r->size) {
		rc = moat_err_set(err, MOAT_EINVAL, "update report: offset: not below size");
	}
	return rc;
}

int moat_update_report_parse(const char *line, size_t len, struct moat_update_report *out,
			     struct moat_err *err)
{
	const cJSON *items[R_COUNT] = {NULL};
	const struct line_kind *k = NULL;
	struct moat_update_report r;
	cJSON *root = NULL;
	unsigned present = 0;
	int rc = MOAT_EINVAL;

	memset(out, 0, sizeof(*out));
	memset(&r, 0, sizeof(r));
	if (len > 0 && line[len - 1] == '\n') {
		len--;
	}
	/* Counted with its newline, present or not, as the writer counts it. */
	if (len + 1 > MOAT_UPDATE_REPORT_MAX_BYTES) {
		rc = moat_err_set(err, MOAT_EINVAL, "update report: line longer than %u bytes",
				  MOAT_UPDATE_REPORT_MAX_BYTES);
		goto out;
	}
	if (len == 0 || line[0] != '{') {
		rc = moat_err_set(err, MOAT_EINVAL, "update report: not a JSON object");
		goto out;
	}
	if ((rc = read_line(line, len, &root, err)) != 0 ||
	    (rc = index_keys(root, items, &present, err)) != 0 ||
	    (rc = find_kind(items, present, &k, err)) != 0 ||
	    (rc = read_values(k, items, &r, err)) != 0) {
		goto out;
	}
	*out = r;
out:
	cJSON_Delete(root);
	return rc;
}
