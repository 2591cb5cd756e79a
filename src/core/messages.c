/* messages.c: the JSON messages of the topic scheme (messages.h).
 *
 * Parsing: every payload goes through moat_json_parse (json.h), the one strict reader:
 * bounded size and depth, no NUL, no duplicate keys, no trailing bytes, valid UTF-8. Keys
 * are matched case-sensitively. Integers must be integral, finite and in range; strings
 * are checked against their alphabet, and free text must be valid UTF-8 without control
 * characters, since it ends up in logs.
 *
 * Building: the device's messages (telemetry, status, responses, diagnostics) are built
 * by moat-device (src/device-core), the library a microcontroller links too; the
 * command, which operators send, by a small writer here. Both append to the caller's
 * buffer and fail, never truncate. Integral numbers are written as integers; others with
 * the shortest of %.15g/%.17g that reads back exactly, so build -> parse round-trips.
 *
 * Pure: no I/O, no clock, no globals. cJSON allocates while parsing; nothing else does.
 */
#include "moat/messages.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/json.h"
#include "moat_device.h"

#define INT_EXACT_MAX 9007199254740991.0 /* 2^53 - 1 */
#define SIGNAL_STRENGTH_ABS_MAX 1000

/* ---- character classes ---- */

/* 1..max characters of [a-z], plus [0-9] when digits, [A-Z] when upper, and punct. */
static bool in_class(const char *s, size_t max, bool digits, bool upper, const char *punct)
{
	size_t len;

	if (!s) {
		return false;
	}
	len = strnlen(s, max + 1);
	if (len == 0 || len > max) {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (digits && c >= '0' && c <= '9') ||
			  (upper && c >= 'A' && c <= 'Z') || strchr(punct, c) != NULL;
		if (!ok) {
			return false;
		}
	}
	return true;
}

/* [a-z0-9_]{1,max} */
static bool word_ok(const char *s, size_t max)
{
	return in_class(s, max, true, false, "_");
}

bool moat_msg_command_name_ok(const char *name)
{
	return word_ok(name, MOAT_MSG_CMD_NAME_MAX_LEN);
}

bool moat_msg_reading_name_ok(const char *name)
{
	return word_ok(name, MOAT_MSG_READING_NAME_MAX_LEN);
}

bool moat_msg_command_id_ok(const char *id)
{
	return in_class(id, MOAT_MSG_CMD_ID_MAX_LEN, true, true, "._:-");
}

/* [a-z_]{1,32} */
static bool status_word_ok(const char *s)
{
	return in_class(s, MOAT_MSG_STATUS_WORD_MAX_LEN, false, false, "_");
}

/* Free text: at most max bytes of moat_json_text_ok, strict: devices write it and
 * operators read it, so no C1 control or bidi override either (text.h). empty_ok says
 * whether "" is acceptable. */
static bool text_ok(const char *s, size_t max, bool empty_ok)
{
	size_t len;

	if (!s) {
		return false;
	}
	len = strnlen(s, max + 1);
	if (len > max || (len == 0 && !empty_ok)) {
		return false;
	}
	return moat_json_text_ok(s, len, true);
}

static bool ip_ok(const char *s)
{
	unsigned char addr[16];

	if (!s || strnlen(s, MOAT_MSG_ADDR_MAX_LEN + 1) > MOAT_MSG_ADDR_MAX_LEN) {
		return false;
	}
	return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

/* Copies at most 40 printable ASCII characters of untrusted s for an error message. */
static const char *shown(const char *s, char *buf, size_t size)
{
	size_t i = 0;

	for (; s && s[i] && i + 1 < size && i < 40; i++) {
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	}
	buf[i] = '\0';
	return buf;
}

static bool copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size);
	if (n >= size) {
		return false;
	}
	memcpy(dst, src, n + 1);
	return true;
}

/* ---- command kinds ---- */

static const struct {
	const char *name;
	enum moat_msg_cmd_kind kind;
} cmd_kinds[] = {
	{"reboot", MOAT_CMD_REBOOT},
	{"update_interval", MOAT_CMD_UPDATE_INTERVAL},
	{"diagnostics", MOAT_CMD_DIAGNOSTICS},
	{"check_update", MOAT_CMD_CHECK_UPDATE},
};

enum moat_msg_cmd_kind moat_msg_command_kind(const char *name)
{
	for (size_t i = 0; name && i < sizeof(cmd_kinds) / sizeof(cmd_kinds[0]); i++) {
		if (strcmp(name, cmd_kinds[i].name) == 0) {
			return cmd_kinds[i].kind;
		}
	}
	return MOAT_CMD_UNKNOWN;
}

/* ---- the writer ---- */

struct jw {
	char *buf;
	size_t size;
	size_t len;
	bool full;
	bool first; /* no member written yet in the current object */
};

static void jw_raw(struct jw *w, const char *s, size_t n)
{
	if (w->full || n >= w->size - w->len) {
		w->full = true;
		return;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static void jw_lit(struct jw *w, const char *s)
{
	jw_raw(w, s, strlen(s));
}

static void jw_str(struct jw *w, const char *s)
{
	jw_lit(w, "\"");
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		char esc[8];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			jw_raw(w, esc, 2);
		} else if (c < 0x20 || c == 0x7f) {
			/* validated text has none; escape anyway rather than emit raw */
			int n = snprintf(esc, sizeof(esc), "\\u%04x", c);
			jw_raw(w, esc, (size_t)n);
		} else {
			jw_raw(w, p, 1);
		}
	}
	jw_lit(w, "\"");
}

static void jw_open(struct jw *w, const char *key)
{
	if (key) {
		if (!w->first) {
			jw_lit(w, ",");
		}
		jw_str(w, key);
		jw_lit(w, ":");
	}
	jw_lit(w, "{");
	w->first = true;
}

static void jw_close(struct jw *w)
{
	jw_lit(w, "}");
	w->first = false;
}

static void jw_key(struct jw *w, const char *key)
{
	if (!w->first) {
		jw_lit(w, ",");
	}
	w->first = false;
	jw_str(w, key);
	jw_lit(w, ":");
}

/* v must be finite (callers check). */
static void jw_double(struct jw *w, double v)
{
	char num[40];
	int n;

	if (v == trunc(v) && fabs(v) <= INT_EXACT_MAX) {
		n = snprintf(num, sizeof(num), "%lld", (long long)v);
	} else {
		n = snprintf(num, sizeof(num), "%.15g", v);
		if (strtod(num, NULL) != v) {
			n = snprintf(num, sizeof(num), "%.17g", v);
		}
	}
	/* a program that set a locale may get a decimal comma from printf; JSON wants '.' */
	for (int i = 0; i < n; i++) {
		if (num[i] == ',') {
			num[i] = '.';
		}
	}
	jw_raw(w, num, (size_t)n);
}

static void jw_text(struct jw *w, const char *key, const char *s)
{
	jw_key(w, key);
	jw_str(w, s);
}

static int jw_finish(struct jw *w, const char *what, size_t max_bytes, size_t *out_len,
		     struct moat_err *err)
{
	if (w->full || w->len > max_bytes) {
		w->buf[0] = '\0';
		if (out_len) {
			*out_len = 0;
		}
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: message does not fit %s (%zu bytes, limit %zu)", what,
				    w->full ? "the buffer" : "the size limit",
				    w->full ? w->size : w->len, max_bytes);
	}
	if (out_len) {
		*out_len = w->len;
	}
	return 0;
}

static int jw_start(struct jw *w, char *buf, size_t size, size_t *out_len, const char *what,
		    struct moat_err *err)
{
	if (out_len) {
		*out_len = 0;
	}
	if (!buf || size == 0) {
		return moat_err_set(err, MOAT_EINVAL, "%s: no buffer", what);
	}
	buf[0] = '\0';
	w->buf = buf;
	w->size = size;
	w->len = 0;
	w->full = false;
	w->first = true;
	return 0;
}

/* A caller's buffer for a builder: out_len 0 and buf "" before anything else. */
static int jw_check_buf(char *buf, size_t size, size_t *out_len, const char *what,
			struct moat_err *err)
{
	struct jw w;
	return jw_start(&w, buf, size, out_len, what, err);
}

/* ---- parsing helpers ---- */

/* Parses payload into a cJSON object with the one strict reader (json.h), or NULL with err
 * set. */
static cJSON *parse_object(const char *what, const void *payload, size_t len, size_t max,
			   struct moat_err *err)
{
	const struct moat_json_limits lim = {.max_bytes = max, .max_depth = MOAT_JSON_DEPTH_MAX};
	cJSON *root = NULL;

	if (moat_json_parse(what, payload, len, &lim, &root, NULL, err) != 0) {
		return NULL;
	}
	return root;
}

/* What every moat_msg_*_parse does around its fill: refuses a NULL out, zeroes it (size
 * bytes), reads the payload (at most max bytes) with the strict reader, runs fill on the
 * object, and zeroes out again when fill refuses, so a refused message leaves nothing
 * half-read. ctx goes to fill as it is (command: the topic's command name). */
static int parse_message(const char *what, const void *payload, size_t len, size_t max,
			 int (*fill)(const cJSON *root, const void *ctx, void *out,
				     struct moat_err *err),
			 const void *ctx, void *out, size_t size, struct moat_err *err)
{
	cJSON *root;
	int rc;

	if (!out) {
		return moat_err_set(err, MOAT_EINVAL, "%s: no output", what);
	}
	memset(out, 0, size);
	root = parse_object(what, payload, len, max, err);
	if (!root) {
		return MOAT_EINVAL;
	}
	rc = fill(root, ctx, out, err);
	cJSON_Delete(root);
	if (rc != 0) {
		memset(out, 0, size);
	}
	return rc;
}

static const cJSON *member(const cJSON *obj, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* An integral number in [min, max] (both within +-2^53). */
static bool int_value(const cJSON *item, int64_t min, int64_t max, int64_t *out)
{
	double v;

	if (!cJSON_IsNumber(item)) {
		return false;
	}
	v = item->valuedouble;
	if (!isfinite(v) || v != trunc(v) || v < (double)min || v > (double)max) {
		return false;
	}
	*out = (int64_t)v;
	return true;
}

/* Reads an integer member. Missing: MOAT_ENOENT when !required (out untouched), else
 * MOAT_EINVAL. */
static int get_int(const char *what, const cJSON *obj, const char *key, bool required, int64_t min,
		   int64_t max, int64_t *out, struct moat_err *err)
{
	const cJSON *item = member(obj, key);

	if (!item) {
		if (!required) {
			return MOAT_ENOENT;
		}
		return moat_err_set(err, MOAT_EINVAL, "%s: missing \"%s\"", what, key);
	}
	if (!int_value(item, min, max, out)) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: \"%s\" must be an integer in [%lld, %lld]", what, key,
				    (long long)min, (long long)max);
	}
	return 0;
}

typedef bool (*str_check_fn)(const char *s, size_t max);

static bool any_text(const char *s, size_t max)
{
	return text_ok(s, max, true);
}

static bool identity_check(const char *s, size_t max)
{
	(void)max;
	return moat_identity_name_ok(s);
}

static bool device_type_check(const char *s, size_t max)
{
	(void)max;
	return moat_device_type_check(s, NULL) == 0;
}

static bool cmd_name_check(const char *s, size_t max)
{
	(void)max;
	return moat_msg_command_name_ok(s);
}

static bool cmd_id_check(const char *s, size_t max)
{
	(void)max;
	return moat_msg_command_id_ok(s);
}

static bool status_word_check(const char *s, size_t max)
{
	(void)max;
	return status_word_ok(s);
}

static bool ip_check(const char *s, size_t max)
{
	(void)max;
	return ip_ok(s);
}

static bool version_check(const char *s, size_t max)
{
	return in_class(s, max, true, true, "._+~-");
}

/* Reads a string member into out (size bytes) after check. Missing: MOAT_ENOENT when
 * !required, else MOAT_EINVAL. */
static int get_str(const char *what, const cJSON *obj, const char *key, bool required,
		   str_check_fn check, char *out, size_t size, struct moat_err *err)
{
	const cJSON *item = member(obj, key);
	char show[48];

	if (!item) {
		if (!required) {
			return MOAT_ENOENT;
		}
		return moat_err_set(err, MOAT_EINVAL, "%s: missing \"%s\"", what, key);
	}
	if (!cJSON_IsString(item) || !item->valuestring) {
		return moat_err_set(err, MOAT_EINVAL, "%s: \"%s\" must be a string", what, key);
	}
	if (!check(item->valuestring, size - 1) || !copy_str(out, size, item->valuestring)) {
		return moat_err_set(err, MOAT_EINVAL, "%s: invalid \"%s\" \"%s\"", what, key,
				    shown(item->valuestring, show, sizeof(show)));
	}
	return 0;
}

/* get_str/get_int for optional members: 0 when absent or good. */
static int opt(int rc)
{
	return rc == MOAT_ENOENT ? 0 : rc;
}

/* ---- commands ---- */

static bool reserved_key(const char *key)
{
	return strcmp(key, "command") == 0 || strcmp(key, "id") == 0;
}

const struct moat_msg_arg *moat_msg_command_arg(const struct moat_msg_command *cmd, const char *key)
{
	if (!cmd || !key) {
		return NULL;
	}
	for (size_t i = 0; i < cmd->arg_count && i < MOAT_MSG_ARGS_MAX; i++) {
		if (strcmp(cmd->args[i].key, key) == 0) {
			return &cmd->args[i];
		}
	}
	return NULL;
}

int moat_msg_command_int_arg(const struct moat_msg_command *cmd, const char *key, int64_t min,
			     int64_t max, int64_t *out, struct moat_err *err)
{
	const struct moat_msg_arg *arg = moat_msg_command_arg(cmd, key);

	if (!arg) {
		return moat_err_set(err, MOAT_ENOENT, "command: missing argument \"%s\"",
				    key ? key : "");
	}
	if (arg->type != MOAT_ARG_NUMBER || !isfinite(arg->num) || arg->num != trunc(arg->num) ||
	    fabs(arg->num) > INT_EXACT_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "command: argument \"%s\" is not an integer",
				    key);
	}
	if (arg->num < (double)min || arg->num > (double)max) {
		return moat_err_set(err, MOAT_EDENIED,
				    "command: argument \"%s\" = %lld is not in [%lld, %lld]", key,
				    (long long)arg->num, (long long)min, (long long)max);
	}
	if (out) {
		*out = (int64_t)arg->num;
	}
	return 0;
}

static int arg_from_json(const cJSON *item, struct moat_msg_arg *arg, struct moat_err *err)
{
	char show[48];

	if (!word_ok(item->string, MOAT_MSG_ARG_KEY_MAX_LEN)) {
		return moat_err_set(err, MOAT_EINVAL, "command: invalid argument name \"%s\"",
				    shown(item->string, show, sizeof(show)));
	}
	memcpy(arg->key, item->string, strlen(item->string) + 1);
	if (cJSON_IsString(item) && item->valuestring) {
		arg->type = MOAT_ARG_STRING;
		if (!text_ok(item->valuestring, MOAT_MSG_ARG_STR_MAX_LEN, true)) {
			return moat_err_set(err, MOAT_EINVAL,
					    "command: argument \"%s\" is longer than %d bytes or "
					    "not printable UTF-8",
					    arg->key, MOAT_MSG_ARG_STR_MAX_LEN);
		}
		memcpy(arg->str, item->valuestring, strlen(item->valuestring) + 1);
	} else if (cJSON_IsNumber(item) && isfinite(item->valuedouble)) {
		arg->type = MOAT_ARG_NUMBER;
		arg->num = item->valuedouble;
	} else if (cJSON_IsBool(item)) {
		arg->type = MOAT_ARG_BOOL;
		arg->boolean = cJSON_IsTrue(item);
	} else {
		return moat_err_set(err, MOAT_EINVAL,
				    "command: argument \"%s\" must be a string, number or boolean",
				    arg->key);
	}
	return 0;
}

static int command_fill(const cJSON *root, const void *ctx, void *vout, struct moat_err *err)
{
	const char *topic_name = ctx;
	struct moat_msg_command *out = vout;
	const cJSON *item = member(root, "command");
	char show[48];
	int rc;

	if (topic_name && !moat_msg_command_name_ok(topic_name)) {
		return moat_err_set(err, MOAT_EINVAL,
				    "command: invalid command name \"%s\" in topic",
				    shown(topic_name, show, sizeof(show)));
	}
	if (item) {
		rc = get_str("command", root, "command", true, cmd_name_check, out->name,
			     sizeof(out->name), err);
		if (rc != 0) {
			return rc;
		}
		if (topic_name && strcmp(topic_name, out->name) != 0) {
			return moat_err_set(err, MOAT_EINVAL,
					    "command: \"%s\" in the payload but \"%s\" in the topic",
					    out->name, topic_name);
		}
	} else if (topic_name) {
		memcpy(out->name, topic_name, strlen(topic_name) + 1);
	} else {
		return moat_err_set(err, MOAT_EINVAL, "command: missing \"command\"");
	}
	out->kind = moat_msg_command_kind(out->name);
	rc = opt(
		get_str("command", root, "id", false, cmd_id_check, out->id, sizeof(out->id), err));
	if (rc != 0) {
		return rc;
	}
	for (const cJSON *a = root->child; a; a = a->next) {
		if (reserved_key(a->string)) {
			continue;
		}
		if (out->arg_count == MOAT_MSG_ARGS_MAX) {
			return moat_err_set(err, MOAT_EINVAL, "command: more than %d arguments",
					    MOAT_MSG_ARGS_MAX);
		}
		rc = arg_from_json(a, &out->args[out->arg_count], err);
		if (rc != 0) {
			return rc;
		}
		out->arg_count++;
	}
	return 0;
}

int moat_msg_command_parse(const char *topic_name, const void *payload, size_t len,
			   struct moat_msg_command *out, struct moat_err *err)
{
	return parse_message("command", payload, len, MOAT_MSG_COMMAND_MAX_BYTES, command_fill,
			     topic_name, out, sizeof(*out), err);
}

static int check_arg(const struct moat_msg_arg *arg, struct moat_err *err)
{
	char show[48];

	if (!word_ok(arg->key, MOAT_MSG_ARG_KEY_MAX_LEN) || reserved_key(arg->key)) {
		return moat_err_set(err, MOAT_EINVAL, "command: invalid argument name \"%s\"",
				    shown(arg->key, show, sizeof(show)));
	}
	switch (arg->type) {
	case MOAT_ARG_STRING:
		if (!text_ok(arg->str, MOAT_MSG_ARG_STR_MAX_LEN, true)) {
			return moat_err_set(err, MOAT_EINVAL,
					    "command: argument \"%s\" is not printable UTF-8 of at "
					    "most %d bytes",
					    arg->key, MOAT_MSG_ARG_STR_MAX_LEN);
		}
		return 0;
	case MOAT_ARG_NUMBER:
		if (!isfinite(arg->num)) {
			return moat_err_set(err, MOAT_EINVAL,
					    "command: argument \"%s\" is not a finite number",
					    arg->key);
		}
		return 0;
	case MOAT_ARG_BOOL:
		return 0;
	}
	return moat_err_set(err, MOAT_EINVAL, "command: argument \"%s\" has an unknown type",
			    arg->key);
}

int moat_msg_command_build(const struct moat_msg_command *cmd, char *buf, size_t size,
			   size_t *out_len, struct moat_err *err)
{
	struct jw w;
	int rc = jw_start(&w, buf, size, out_len, "command", err);

	if (rc != 0) {
		return rc;
	}
	if (!cmd || !moat_msg_command_name_ok(cmd->name)) {
		return moat_err_set(err, MOAT_EINVAL, "command: invalid command name");
	}
	if (cmd->id[0] && !moat_msg_command_id_ok(cmd->id)) {
		return moat_err_set(err, MOAT_EINVAL, "command: invalid command id");
	}
	if (cmd->arg_count > MOAT_MSG_ARGS_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "command: more than %d arguments",
				    MOAT_MSG_ARGS_MAX);
	}
	for (size_t i = 0; i < cmd->arg_count; i++) {
		rc = check_arg(&cmd->args[i], err);
		if (rc != 0) {
			return rc;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(cmd->args[i].key, cmd->args[j].key) == 0) {
				return moat_err_set(err, MOAT_EINVAL,
						    "command: argument \"%s\" given twice",
						    cmd->args[i].key);
			}
		}
	}
	jw_open(&w, NULL);
	jw_text(&w, "command", cmd->name);
	if (cmd->id[0]) {
		jw_text(&w, "id", cmd->id);
	}
	for (size_t i = 0; i < cmd->arg_count; i++) {
		const struct moat_msg_arg *a = &cmd->args[i];
		jw_key(&w, a->key);
		if (a->type == MOAT_ARG_STRING) {
			jw_str(&w, a->str);
		} else if (a->type == MOAT_ARG_NUMBER) {
			jw_double(&w, a->num);
		} else {
			jw_lit(&w, a->boolean ? "true" : "false");
		}
	}
	jw_close(&w);
	return jw_finish(&w, "command", MOAT_MSG_COMMAND_MAX_BYTES, out_len, err);
}

/* -?[0-9]+(\.[0-9]+)? : what `moat cmd key=value` treats as a number */
static bool number_text(const char *s, bool *out_integral)
{
	size_t i = 0, digits = 0;

	if (s[i] == '-') {
		i++;
	}
	while (s[i] >= '0' && s[i] <= '9') {
		i++;
		digits++;
	}
	if (digits == 0) {
		return false;
	}
	*out_integral = s[i] == '\0';
	if (s[i] == '.') {
		size_t frac = 0;
		i++;
		while (s[i] >= '0' && s[i] <= '9') {
			i++;
			frac++;
		}
		if (frac == 0) {
			return false;
		}
	}
	return s[i] == '\0';
}

int moat_msg_command_add_arg(struct moat_msg_command *cmd, const char *kv, struct moat_err *err)
{
	struct moat_msg_arg arg;
	const char *eq;
	size_t klen;
	char show[48];
	bool integral = false;

	if (!cmd || !kv) {
		return moat_err_set(err, MOAT_EINVAL, "command argument: missing");
	}
	eq = strchr(kv, '=');
	if (!eq) {
		return moat_err_set(err, MOAT_EINVAL, "command argument \"%s\": expected key=value",
				    shown(kv, show, sizeof(show)));
	}
	memset(&arg, 0, sizeof(arg));
	klen = (size_t)(eq - kv);
	if (klen == 0 || klen > MOAT_MSG_ARG_KEY_MAX_LEN) {
		return moat_err_set(err, MOAT_EINVAL,
				    "command argument \"%s\": the key must be 1 to %d characters",
				    shown(kv, show, sizeof(show)), MOAT_MSG_ARG_KEY_MAX_LEN);
	}
	memcpy(arg.key, kv, klen);
	arg.key[klen] = '\0';
	if (!word_ok(arg.key, MOAT_MSG_ARG_KEY_MAX_LEN)) {
		return moat_err_set(err, MOAT_EINVAL,
				    "command argument \"%s\": the key must be [a-z0-9_]",
				    shown(arg.key, show, sizeof(show)));
	}
	if (reserved_key(arg.key)) {
		return moat_err_set(err, MOAT_EINVAL, "command argument \"%s\" is reserved",
				    arg.key);
	}
	if (moat_msg_command_arg(cmd, arg.key)) {
		return moat_err_set(err, MOAT_EINVAL, "command argument \"%s\" given twice",
				    arg.key);
	}
	if (cmd->arg_count >= MOAT_MSG_ARGS_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "command: more than %d arguments",
				    MOAT_MSG_ARGS_MAX);
	}
	const char *value = eq + 1;
	if (number_text(value, &integral)) {
		arg.type = MOAT_ARG_NUMBER;
		arg.num = strtod(value, NULL);
		if (!isfinite(arg.num) || (integral && fabs(arg.num) > INT_EXACT_MAX)) {
			return moat_err_set(err, MOAT_EINVAL,
					    "command argument \"%s\": %s is out of range", arg.key,
					    shown(value, show, sizeof(show)));
		}
	} else if (strcmp(value, "true") == 0 || strcmp(value, "false") == 0) {
		arg.type = MOAT_ARG_BOOL;
		arg.boolean = value[0] == 't';
	} else {
		arg.type = MOAT_ARG_STRING;
		if (!text_ok(value, MOAT_MSG_ARG_STR_MAX_LEN, true)) {
			return moat_err_set(err, MOAT_EINVAL,
					    "command argument \"%s\": the value must be printable "
					    "UTF-8 of at most %d bytes",
					    arg.key, MOAT_MSG_ARG_STR_MAX_LEN);
		}
		memcpy(arg.str, value, strlen(value) + 1);
	}
	cmd->args[cmd->arg_count++] = arg;
	return 0;
}

/* ---- telemetry ---- */

static int telemetry_metadata(const cJSON *meta, struct moat_msg_telemetry *out,
			      struct moat_err *err)
{
	static const char what[] = "telemetry metadata";
	int rc;

	if (!cJSON_IsObject(meta)) {
		return moat_err_set(err, MOAT_EINVAL, "telemetry: \"metadata\" must be an object");
	}
	rc = get_int(what, meta, "signal_strength", false, -SIGNAL_STRENGTH_ABS_MAX,
		     SIGNAL_STRENGTH_ABS_MAX, &out->signal_strength, err);
	if (rc != MOAT_ENOENT && rc != 0) {
		return rc;
	}
	out->has_signal_strength = rc == 0;
	rc = get_int(what, meta, "free_heap", false, 0, MOAT_MSG_SEQ_MAX, &out->free_heap, err);
	if (rc != MOAT_ENOENT && rc != 0) {
		return rc;
	}
	out->has_free_heap = rc == 0;
	rc = get_int(what, meta, "uptime_ms", false, 0, MOAT_MSG_SEQ_MAX, &out->uptime_ms, err);
	if (rc != MOAT_ENOENT && rc != 0) {
		return rc;
	}
	out->has_uptime_ms = rc == 0;
	rc = get_int(what, meta, "seq", false, 0, MOAT_MSG_SEQ_MAX, &out->seq, err);
	if (rc != MOAT_ENOENT && rc != 0) {
		return rc;
	}
	out->has_seq = rc == 0;
	return 0;
}

static int telemetry_fill(const cJSON *root, const void *ctx, void *vout, struct moat_err *err)
{
	struct moat_msg_telemetry *out = vout;
	const cJSON *readings, *meta;
	char show[48];
	int rc;
	(void)ctx;

	rc = get_str("telemetry", root, "device_id", true, identity_check, out->device_id,
		     sizeof(out->device_id), err);
	if (rc == 0) {
		rc = get_str("telemetry", root, "device_type", true, device_type_check,
			     out->device_type, sizeof(out->device_type), err);
	}
	if (rc == 0) {
		rc = get_int("telemetry", root, "timestamp", true, 0, MOAT_MSG_SEQ_MAX,
			     &out->timestamp_ms, err);
	}
	if (rc != 0) {
		return rc;
	}
	readings = member(root, "telemetry");
	if (!readings) {
		return moat_err_set(err, MOAT_EINVAL, "telemetry: missing \"telemetry\"");
	}
	if (!cJSON_IsObject(readings)) {
		return moat_err_set(err, MOAT_EINVAL, "telemetry: \"telemetry\" must be an object");
	}
	for (const cJSON *r = readings->child; r; r = r->next) {
		struct moat_msg_reading *slot;

		if (out->reading_count == MOAT_MSG_READINGS_MAX) {
			return moat_err_set(err, MOAT_EINVAL, "telemetry: more than %d readings",
					    MOAT_MSG_READINGS_MAX);
		}
		if (!moat_msg_reading_name_ok(r->string)) {
			return moat_err_set(err, MOAT_EINVAL,
					    "telemetry: invalid reading name \"%s\"",
					    shown(r->string, show, sizeof(show)));
		}
		if (!cJSON_IsNumber(r) || !isfinite(r->valuedouble)) {
			return moat_err_set(err, MOAT_EINVAL,
					    "telemetry: reading \"%s\" must be a number",
					    r->string);
		}
		slot = &out->readings[out->reading_count++];
		memcpy(slot->name, r->string, strlen(r->string) + 1);
		slot->value = r->valuedouble;
	}
	meta = member(root, "metadata");
	return meta ? telemetry_metadata(meta, out, err) : 0;
}

int moat_msg_telemetry_parse(const void *payload, size_t len, struct moat_msg_telemetry *out,
			     struct moat_err *err)
{
	return parse_message("telemetry", payload, len, MOAT_MSG_TELEMETRY_MAX_BYTES,
			     telemetry_fill, NULL, out, sizeof(*out), err);
}

/* The builders are moat-device's (src/device-core, moat_device.h): the bytes moat-agent
 * and moat sim publish are the ones a microcontroller linking the library publishes. These
 * wrappers map moat's structs onto the library's, keep the size limits of messages.h, and
 * add what only a host can check (addresses by inet_pton). */
static int built(int rc, const char *what, size_t max_bytes, char *buf, size_t size,
		 size_t *out_len, struct moat_err *err)
{
	if (rc == 0 && *out_len <= max_bytes) {
		return 0;
	}
	buf[0] = '\0';
	*out_len = 0;
	return moat_err_set(err, MOAT_EINVAL,
			    "%s: a field is invalid or the message does not fit (buffer %zu bytes, "
			    "limit %zu)",
			    what, size, max_bytes);
}

int moat_msg_telemetry_build(const struct moat_msg_telemetry *t, char *buf, size_t size,
			     size_t *out_len, struct moat_err *err)
{
	struct mdev_reading rd[MOAT_MSG_READINGS_MAX];
	size_t len = 0;
	int rc = jw_check_buf(buf, size, out_len, "telemetry", err);

	if (rc != 0) {
		return rc;
	}
	if (!t || t->reading_count > MOAT_MSG_READINGS_MAX) {
		return moat_err_set(err, MOAT_EINVAL,
				    "telemetry: no message or more than %d readings",
				    MOAT_MSG_READINGS_MAX);
	}
	for (size_t i = 0; i < t->reading_count; i++) {
		rd[i].name = t->readings[i].name;
		rd[i].value = t->readings[i].value;
	}
	const struct mdev_telemetry mt = {
		.device_id = t->device_id,
		.device_type = t->device_type,
		.timestamp_ms = t->timestamp_ms,
		.readings = rd,
		.reading_count = t->reading_count,
		.has_signal_strength = t->has_signal_strength,
		.has_free_heap = t->has_free_heap,
		.has_uptime_ms = t->has_uptime_ms,
		.has_seq = t->has_seq,
		.signal_strength = t->signal_strength,
		.free_heap = t->free_heap,
		.uptime_ms = t->uptime_ms,
		.seq = t->seq,
	};
	rc = mdev_msg_telemetry(&mt, buf, size, &len);
	rc = built(rc, "telemetry", MOAT_MSG_TELEMETRY_MAX_BYTES, buf, size, &len, err);
	if (out_len) {
		*out_len = len;
	}
	return rc;
}

/* ---- status ---- */

static int status_fill(const cJSON *root, const void *ctx, void *vout, struct moat_err *err)
{
	struct moat_msg_status *out = vout;
	char word[16];
	int rc;
	(void)ctx;

	rc = get_str("status", root, "device_id", true, identity_check, out->device_id,
		     sizeof(out->device_id), err);
	if (rc == 0) {
		rc = get_str("status", root, "status", true, any_text, word, sizeof(word), err);
	}
	if (rc != 0) {
		return rc;
	}
	if (strcmp(word, "online") == 0) {
		out->online = true;
	} else if (strcmp(word, "offline") != 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "status: \"status\" must be \"online\" or \"offline\"");
	}
	rc = get_int("status", root, "timestamp", false, 0, MOAT_MSG_SEQ_MAX, &out->timestamp_ms,
		     err);
	if (rc != 0 && rc != MOAT_ENOENT) {
		return rc;
	}
	out->has_timestamp = rc == 0;
	rc = opt(get_str("status", root, "ip_address", false, ip_check, out->ip_address,
			 sizeof(out->ip_address), err));
	if (rc == 0) {
		rc = opt(get_str("status", root, "agent_version", false, version_check,
				 out->agent_version, sizeof(out->agent_version), err));
	}
	return rc;
}

int moat_msg_status_parse(const void *payload, size_t len, struct moat_msg_status *out,
			  struct moat_err *err)
{
	return parse_message("status", payload, len, MOAT_MSG_STATUS_MAX_BYTES, status_fill, NULL,
			     out, sizeof(*out), err);
}

int moat_msg_status_build(const struct moat_msg_status *s, char *buf, size_t size, size_t *out_len,
			  struct moat_err *err)
{
	size_t len = 0;
	int rc = jw_check_buf(buf, size, out_len, "status", err);

	if (rc != 0) {
		return rc;
	}
	if (!s || (s->ip_address[0] && !ip_ok(s->ip_address))) {
		return moat_err_set(err, MOAT_EINVAL,
				    "status: no message or an invalid ip_address");
	}
	const struct mdev_status ms = {
		.device_id = s->device_id,
		.online = s->online,
		.has_timestamp = s->has_timestamp,
		.timestamp_ms = s->timestamp_ms,
		.ip_address = s->ip_address,
		.agent_version = s->agent_version,
	};
	rc = mdev_msg_status(&ms, buf, size, &len);
	rc = built(rc, "status", MOAT_MSG_STATUS_MAX_BYTES, buf, size, &len, err);
	if (out_len) {
		*out_len = len;
	}
	return rc;
}

/* ---- command responses ---- */

static bool detail_check(const char *s, size_t max)
{
	return text_ok(s, max, false);
}

static int response_fill(const cJSON *root, const void *ctx, void *vout, struct moat_err *err)
{
	struct moat_msg_response *out = vout;
	static const char what[] = "response";
	int rc;
	(void)ctx;

	rc = get_str(what, root, "device_id", true, identity_check, out->device_id,
		     sizeof(out->device_id), err);
	if (rc == 0) {
		rc = get_str(what, root, "command", true, cmd_name_check, out->command,
			     sizeof(out->command), err);
	}
	if (rc == 0) {
		rc = get_str(what, root, "status", true, status_word_check, out->status,
			     sizeof(out->status), err);
	}
	if (rc == 0) {
		rc = get_int(what, root, "timestamp", true, 0, MOAT_MSG_SEQ_MAX, &out->timestamp_ms,
			     err);
	}
	if (rc == 0) {
		rc = opt(get_str(what, root, "id", false, cmd_id_check, out->id, sizeof(out->id),
				 err));
	}
	if (rc == 0) {
		rc = opt(get_str(what, root, "detail", false, detail_check, out->detail,
				 sizeof(out->detail), err));
	}
	if (rc != 0) {
		return rc;
	}
	rc = get_int(what, root, "interval", false, MOAT_MSG_UPDATE_INTERVAL_MIN,
		     MOAT_MSG_UPDATE_INTERVAL_MAX, &out->interval, err);
	if (rc != 0 && rc != MOAT_ENOENT) {
		return rc;
	}
	out->has_interval = rc == 0;
	return 0;
}

int moat_msg_response_parse(const void *payload, size_t len, struct moat_msg_response *out,
			    struct moat_err *err)
{
	return parse_message("response", payload, len, MOAT_MSG_RESPONSE_MAX_BYTES, response_fill,
			     NULL, out, sizeof(*out), err);
}

int moat_msg_response_build(const struct moat_msg_response *r, char *buf, size_t size,
			    size_t *out_len, struct moat_err *err)
{
	size_t len = 0;
	int rc = jw_check_buf(buf, size, out_len, "response", err);

	if (rc != 0) {
		return rc;
	}
	/* the library writes "interval" when it is positive: has_interval with 0 is invalid */
	if (!r || (r->has_interval && r->interval < MOAT_MSG_UPDATE_INTERVAL_MIN)) {
		return moat_err_set(err, MOAT_EINVAL,
				    "response: no message or an invalid interval");
	}
	const struct mdev_response mr = {
		.device_id = r->device_id,
		.command = r->command,
		.status = r->status,
		.timestamp_ms = r->timestamp_ms,
		.id = r->id,
		.detail = r->detail,
		.interval = r->has_interval ? r->interval : 0,
	};
	rc = mdev_msg_response(&mr, buf, size, &len);
	rc = built(rc, "response", MOAT_MSG_RESPONSE_MAX_BYTES, buf, size, &len, err);
	if (out_len) {
		*out_len = len;
	}
	return rc;
}

/* ---- diagnostics ---- */

int moat_msg_diagnostics_build(const struct moat_msg_diagnostics *d, char *buf, size_t size,
			       size_t *out_len, struct moat_err *err)
{
	size_t len = 0;
	int rc = jw_check_buf(buf, size, out_len, "diagnostics", err);

	if (rc != 0) {
		return rc;
	}
	if (!d || (d->ip_address[0] && !ip_ok(d->ip_address))) {
		return moat_err_set(err, MOAT_EINVAL,
				    "diagnostics: no message or an invalid ip_address");
	}
	const struct mdev_diagnostics md = {
		.device_id = d->device_id,
		.timestamp_ms = d->timestamp_ms,
		.uptime_ms = d->uptime_ms,
		.system_uptime_s = d->system_uptime_s,
		.rss_kb = d->rss_kb,
		.free_heap = d->free_heap,
		.load = {d->load[0], d->load[1], d->load[2]},
		.ip_address = d->ip_address,
		.mac_address = d->mac_address,
		.kernel = d->kernel,
		.firmware_version = d->agent_version,
		.cert_not_after = d->cert_not_after,
		.cert_days_left = d->cert_days_left,
		.interval_s = d->interval_s,
		.seq = d->seq,
		.queued = d->queued,
	};
	rc = mdev_msg_diagnostics_linux(&md, buf, size, &len);
	rc = built(rc, "diagnostics", MOAT_MSG_DIAGNOSTICS_MAX_BYTES, buf, size, &len, err);
	if (out_len) {
		*out_len = len;
	}
	return rc;
}
