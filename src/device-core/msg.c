/* msg.c: the device's topics and messages (moat_device.h, part 3), in the JSON of
 * include/moat/messages.h: builders into caller buffers that fail rather than truncate,
 * and the command parser and dispatcher with moat-agent's answers.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwrite.h"
#include "mjson.h"
#include "moat_device.h"

#define CMD_TOKENS (2 * (MDEV_CMD_ARGS_MAX + 2) + 1 + 8)

/* ---- topics ---- */

int mdev_topic_build(enum mdev_topic_kind kind, const char *id, char *buf, size_t size)
{
	static const char *const tails[] = {"telemetry", "status", "diagnostics",
					    "command_responses", "commands/+"};
	if ((unsigned)kind > MDEV_TOPIC_COMMANDS_FILTER || !mdev_name_ok(id, MDEV_ID_MAX_LEN)) {
		return -1;
	}
	int n = snprintf(buf, size, "devices/%s/%s", id, tails[kind]);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int mdev_topic_command_name(const char *self, const char *topic,
			    char name[MDEV_CMD_NAME_MAX_LEN + 1])
{
	size_t sl = strlen(self);
	name[0] = '\0';
	if (!mdev_name_ok(self, MDEV_ID_MAX_LEN) || strncmp(topic, "devices/", 8) != 0 ||
	    strncmp(topic + 8, self, sl) != 0 || strncmp(topic + 8 + sl, "/commands/", 10) != 0) {
		return -1;
	}
	const char *n = topic + 8 + sl + 10;
	size_t len = strlen(n);
	if (len == 0 || len > MDEV_CMD_NAME_MAX_LEN || strchr(n, '/') != NULL) {
		return -1;
	}
	memcpy(name, n, len + 1);
	return 0;
}

/* ---- text ---- */

/* One UTF-8 sequence at p (avail bytes): its length and code point, or 0 when it is not
 * well formed (overlong, surrogate, above U+10FFFF, truncated). */
static size_t utf8_decode(const unsigned char *p, size_t avail, uint32_t *out_cp)
{
	unsigned c = p[0];
	uint32_t cp;
	size_t n;
	if (c < 0x80) {
		n = 1;
		cp = c;
	} else if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n > avail) {
		return 0;
	}
	for (size_t k = 1; k < n; k++) {
		if ((p[k] & 0xc0) != 0x80) {
			return 0;
		}
		cp = (cp << 6) | (p[k] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff)) {
		return 0;
	}
	*out_cp = cp;
	return n;
}

bool mdev_text_ok(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < len;) {
		uint32_t cp = 0;
		size_t n = utf8_decode(p + i, len - i, &cp);
		if (n == 0 || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) ||
		    (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069)) {
			return false;
		}
		i += n;
	}
	return true;
}

/* ---- builders ---- */

/* Telemetry's metadata, in the order written: whether it is present, and its value. */
#define META(key, field)                                           \
	{                                                          \
		key, offsetof(struct mdev_telemetry, has_##field), \
			offsetof(struct mdev_telemetry, field)     \
	}
static const struct {
	const char *key;
	unsigned short has;
	unsigned short value;
} meta_fields[] = {
	META("signal_strength", signal_strength), /* -1000..1000; the others are counters */
	META("free_heap", free_heap),
	META("uptime_ms", uptime_ms),
	META("seq", seq),
};

int mdev_msg_telemetry(const struct mdev_telemetry *t, char *buf, size_t size, size_t *out_len)
{
	struct jw w;
	const char *base = (const char *)t;
	bool any = false;
	jw_start(&w, buf, size);
	*out_len = 0;
	if (!mdev_name_ok(t->device_id, MDEV_ID_MAX_LEN) ||
	    !mdev_name_ok(t->device_type, MDEV_DEVICE_TYPE_MAX_LEN) ||
	    !counter_ok(t->timestamp_ms) || t->reading_count > 16 ||
	    (t->reading_count > 0 && t->readings == NULL)) {
		return -1;
	}
	for (size_t i = 0; i < sizeof(meta_fields) / sizeof(meta_fields[0]); i++) {
		int64_t v;
		memcpy(&v, base + meta_fields[i].value, sizeof(v));
		if (!*(const bool *)(base + meta_fields[i].has)) {
			continue;
		}
		any = true;
		if (i == 0 ? v < -1000 || v > 1000 : !counter_ok(v)) {
			return -1;
		}
	}
	for (size_t i = 0; i < t->reading_count; i++) {
		if (!in_class(t->readings[i].name, 32, true, false, "_") ||
		    !finite(t->readings[i].value)) {
			return -1;
		}
		for (size_t k = 0; k < i; k++) {
			if (strcmp(t->readings[i].name, t->readings[k].name) == 0) {
				return -1;
			}
		}
	}
	jw_open(&w, NULL);
	jw_text(&w, "device_id", t->device_id);
	jw_text(&w, "device_type", t->device_type);
	jw_int(&w, "timestamp", t->timestamp_ms);
	jw_open(&w, "telemetry");
	for (size_t i = 0; i < t->reading_count; i++) {
		jw_double(&w, t->readings[i].name, t->readings[i].value);
	}
	jw_close(&w);
	if (any) {
		jw_open(&w, "metadata");
		for (size_t i = 0; i < sizeof(meta_fields) / sizeof(meta_fields[0]); i++) {
			int64_t v;
			memcpy(&v, base + meta_fields[i].value, sizeof(v));
			if (*(const bool *)(base + meta_fields[i].has)) {
				jw_int(&w, meta_fields[i].key, v);
			}
		}
		jw_close(&w);
	}
	jw_close(&w);
	return jw_finish(&w, out_len);
}

static bool version_word_ok(const char *s)
{
	return !given(s) || in_class(s, 31, true, true, "._+~-");
}

int mdev_msg_status(const struct mdev_status *s, char *buf, size_t size, size_t *out_len)
{
	struct jw w;
	jw_start(&w, buf, size);
	*out_len = 0;
	if (!mdev_name_ok(s->device_id, MDEV_ID_MAX_LEN) ||
	    (s->has_timestamp && !counter_ok(s->timestamp_ms)) || !ip_syntax_ok(s->ip_address) ||
	    !version_word_ok(s->agent_version)) {
		return -1;
	}
	jw_open(&w, NULL);
	jw_text(&w, "device_id", s->device_id);
	jw_text(&w, "status", s->online ? "online" : "offline");
	if (s->has_timestamp) {
		jw_int(&w, "timestamp", s->timestamp_ms);
	}
	jw_opt_text(&w, "ip_address", s->ip_address);
	jw_opt_text(&w, "agent_version", s->agent_version);
	jw_close(&w);
	return jw_finish(&w, out_len);
}

int mdev_msg_response(const struct mdev_response *r, char *buf, size_t size, size_t *out_len)
{
	struct jw w;
	jw_start(&w, buf, size);
	*out_len = 0;
	if (!mdev_name_ok(r->device_id, MDEV_ID_MAX_LEN) ||
	    !in_class(r->command, MDEV_CMD_NAME_MAX_LEN, true, false, "_") ||
	    !in_class(r->status, 32, false, false, "_") || !counter_ok(r->timestamp_ms) ||
	    (given(r->id) && !in_class(r->id, MDEV_CMD_ID_MAX_LEN, true, true, "._:-")) ||
	    !opt_text_ok(r->detail, MDEV_DETAIL_MAX_LEN) || r->interval < 0 ||
	    r->interval > MDEV_INTERVAL_MAX) {
		return -1;
	}
	jw_open(&w, NULL);
	jw_text(&w, "device_id", r->device_id);
	jw_text(&w, "command", r->command);
	jw_text(&w, "status", r->status);
	jw_int(&w, "timestamp", r->timestamp_ms);
	jw_opt_text(&w, "id", r->id);
	jw_opt_text(&w, "detail", r->detail);
	if (r->interval > 0) {
		jw_int(&w, "interval", r->interval);
	}
	jw_close(&w);
	return jw_finish(&w, out_len);
}

/* Diagnostics of a device without Linux: the fields an MCU has, in the order and form
 * of moat-agent's (mdev_msg_diagnostics_linux, host builds, adds the Linux fields). One
 * table for the checks and the writing: smaller on an MCU than a call per field. */
#define MCU_DIAG(key, max, field)                                  \
	{                                                          \
		key, max, offsetof(struct mdev_diagnostics, field) \
	}
static const struct {
	const char *key;
	unsigned char max; /* text: its bytes; 0: a counter */
	unsigned char off;
} mcu_diag[] = {
	MCU_DIAG("timestamp", 0, timestamp_ms),
	MCU_DIAG("uptime_ms", 0, uptime_ms),
	MCU_DIAG("free_heap", 0, free_heap),
	MCU_DIAG("ip_address", 64, ip_address),
	MCU_DIAG("mac_address", 23, mac_address),
	MCU_DIAG("agent_version", 31, firmware_version),
	MCU_DIAG("interval_s", 0, interval_s),
	MCU_DIAG("seq", 0, seq),
	MCU_DIAG("queued", 0, queued),
};

int mdev_msg_diagnostics(const struct mdev_diagnostics *d, char *buf, size_t size, size_t *out_len)
{
	struct jw w;
	const char *base = (const char *)d;
	jw_start(&w, buf, size);
	*out_len = 0;
	if (!mdev_name_ok(d->device_id, MDEV_ID_MAX_LEN) || !ip_syntax_ok(d->ip_address)) {
		return -1;
	}
	jw_open(&w, NULL);
	jw_text(&w, "device_id", d->device_id);
	for (size_t i = 0; i < sizeof(mcu_diag) / sizeof(mcu_diag[0]); i++) {
		const void *p = base + mcu_diag[i].off;
		if (mcu_diag[i].max == 0) {
			int64_t v;
			memcpy(&v, p, sizeof(v));
			if (!counter_ok(v)) {
				return -1;
			}
			jw_int(&w, mcu_diag[i].key, v);
		} else {
			const char *text;
			memcpy(&text, p, sizeof(text));
			if (!opt_text_ok(text, mcu_diag[i].max)) {
				return -1; /* an address's syntax was checked above */
			}
			jw_opt_text(&w, mcu_diag[i].key, text);
		}
	}
	jw_close(&w);
	return jw_finish(&w, out_len);
}

const char *const mdev_stage_names[MDEV_UPD_STAGE_COUNT] = {
	"checked", "downloading", "verified", "installed", "confirmed", "reverted", "refused",
};

static bool opt_semver_ok(const char *v)
{
	return !given(v) || mdev_semver_valid(v);
}

static bool opt_ascii_ok(const char *s, size_t max)
{
	size_t i = 0;
	for (; s != NULL && s[i] != '\0'; i++) {
		if (i >= max || s[i] < 0x20 || s[i] > 0x7e) {
			return false;
		}
	}
	return true;
}

int mdev_msg_update_event(const struct mdev_update_event *ev, char *buf, size_t size,
			  size_t *out_len)
{
	struct jw w;
	jw_start(&w, buf, size);
	*out_len = 0;
	/* What moatd's parser (moat_update_event_parse) accepts, and nothing it would refuse:
	 * semantic versions, a printable ASCII reason. */
	if ((unsigned)ev->stage >= MDEV_UPD_STAGE_COUNT || !opt_semver_ok(ev->version) ||
	    !opt_semver_ok(ev->running) || !opt_ascii_ok(ev->reason, MDEV_UPD_REASON_MAX_LEN) ||
	    !counter_ok(ev->timestamp)) {
		return -1;
	}
	jw_open(&w, NULL);
	jw_text(&w, "event", "update");
	jw_text(&w, "stage", mdev_stage_names[ev->stage]);
	jw_opt_text(&w, "version", ev->version);
	jw_opt_text(&w, "running", ev->running);
	jw_opt_text(&w, "reason", ev->reason);
	jw_int(&w, "timestamp", ev->timestamp);
	jw_close(&w);
	return jw_finish(&w, out_len);
}

/* ---- commands ---- */

static enum mdev_cmd_kind kind_of(const char *name)
{
	static const char *const names[] = {"reboot", "update_interval", "diagnostics",
					    "check_update"};
	for (size_t i = 0; i < 4; i++) {
		if (strcmp(name, names[i]) == 0) {
			return (enum mdev_cmd_kind)(i + 1);
		}
	}
	return MDEV_CMD_UNKNOWN;
}

static bool key_eq(const struct mjson *j, int a, int b)
{
	int la = j->tok[a].end - j->tok[a].start;
	int lb = j->tok[b].end - j->tok[b].start;
	return la == lb &&
	       memcmp(j->js + j->tok[a].start, j->js + j->tok[b].start, (size_t)la) == 0;
}

int mdev_cmd_parse(const char *name, const void *payload, size_t len, struct mdev_command *out,
		   char *msg)
{
	jsmntok_t tok[CMD_TOKENS];
	struct mjson j;
	int keys[MDEV_CMD_ARGS_MAX + 2];
	int nkeys = 0;
	int args = 0;
	memset(out, 0, sizeof(*out));
	if (!in_class(name, MDEV_CMD_NAME_MAX_LEN, true, false, "_")) {
		mdev_msgf(msg, "command: invalid command name in topic");
		return -1;
	}
	if (mj_parse(&j, "command", payload, len, MDEV_CMD_MAX_BYTES, tok, CMD_TOKENS, msg) != 0) {
		return -1;
	}
	memcpy(out->name, name, strlen(name) + 1);
	int k = 1;
	for (int m = 0; m < tok[0].size; m++) {
		if (k + 1 >= j.ntok || tok[k].type != JSMN_STRING || tok[k].size != 1) {
			mdev_msgf(msg, "command: invalid JSON");
			goto fail;
		}
		int v = k + 1;
		const char *s;
		size_t n;
		for (int p = 0; p < nkeys; p++) {
			if (key_eq(&j, keys[p], k)) {
				mdev_msgf(msg, "command: duplicate key");
				goto fail;
			}
		}
		if (nkeys == MDEV_CMD_ARGS_MAX + 2) {
			goto too_many;
		}
		keys[nkeys++] = k;
		int kl = tok[k].end - tok[k].start;
		const char *ks = j.js + tok[k].start;
		if (kl == 7 && memcmp(ks, "command", 7) == 0) {
			if (mj_str(&j, v, "command", MDEV_CMD_NAME_MAX_LEN, &s, &n) != 0) {
				goto fail;
			}
			if (n != strlen(name) || memcmp(s, name, n) != 0) {
				mdev_msgf(msg,
					  "command: \"%.*s\" in the payload but \"%s\" in the topic",
					  (int)n, s, name);
				goto fail;
			}
		} else if (kl == 2 && memcmp(ks, "id", 2) == 0) {
			if (mj_str(&j, v, "id", MDEV_CMD_ID_MAX_LEN, &s, &n) != 0) {
				goto fail;
			}
			memcpy(out->id, s, n);
			out->id[n] = '\0';
			if (!in_class(out->id, MDEV_CMD_ID_MAX_LEN, true, true, "._:-")) {
				mdev_msgf(msg, "command: 'id' is not [A-Za-z0-9._:-]{1,64}");
				goto fail;
			}
		} else {
			/* Argument names as moat's command builder writes them: [a-z0-9_]{1,32}. */
			bool key_ok = kl >= 1 && kl <= 32;
			for (int c = 0; key_ok && c < kl; c++) {
				key_ok = (ks[c] >= 'a' && ks[c] <= 'z') ||
					 (ks[c] >= '0' && ks[c] <= '9') || ks[c] == '_';
			}
			if (!key_ok) {
				mdev_msgf(msg, "command: an argument name is not [a-z0-9_]{1,32}");
				goto fail;
			}
			if (++args > MDEV_CMD_ARGS_MAX) {
				goto too_many;
			}
			if (tok[v].type == JSMN_STRING) {
				/* printable UTF-8 (moat's rule for argument text), raw: an
				 * escape is refused rather than decoded */
				s = j.js + tok[v].start;
				n = (size_t)(tok[v].end - tok[v].start);
				if (n > 128 || memchr(s, '\\', n) != NULL || !mdev_text_ok(s, n)) {
					mdev_msgf(
						msg,
						"command: argument \"%.*s\": not UTF-8 text <= 128 "
						"bytes, no escapes",
						kl, ks);
					goto fail;
				}
			} else if (tok[v].type == JSMN_PRIMITIVE && !mj_is(&j, v, "null")) {
				/* numbers and booleans; "interval" must be a whole number */
			} else {
				mdev_msgf(msg,
					  "command: argument \"%.*s\" must be a string, number or "
					  "boolean",
					  kl > 32 ? 32 : kl, ks);
				goto fail;
			}
			if (kl == 8 && memcmp(ks, "interval", 8) == 0) {
				out->interval_given = true;
				out->has_interval = mj_int(&j, v, "interval", -MDEV_INT_MAX,
							   MDEV_INT_MAX, &out->interval) == 0;
			}
			if (msg != NULL) {
				msg[0] = '\0';
			}
		}
		k = mj_next(&j, v);
	}
	out->kind = kind_of(out->name);
	return 0;
too_many:
	mdev_msgf(msg, "command: more than %d arguments", MDEV_CMD_ARGS_MAX);
fail:
	memset(out, 0, sizeof(*out));
	return -1;
}

/* A reason may quote untrusted bytes: what goes into a response is printable ASCII, with
 * anything else shown as '?', and never over the detail's limit. */
static void printable_copy(char *dst, size_t size, const char *src)
{
	size_t i = 0;
	for (; src[i] != '\0' && i + 1 < size && i < MDEV_DETAIL_MAX_LEN; i++) {
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	}
	dst[i] = '\0';
}

int mdev_cmd_dispatch(const char *self, const char *topic, const void *payload, size_t len,
		      const struct mdev_cmd_handlers *h, int64_t now_ms, char *buf, size_t size,
		      size_t *out_len)
{
	char name[MDEV_CMD_NAME_MAX_LEN + 1];
	struct mdev_command cmd;
	struct mdev_cmd_result res;
	struct mdev_response r;
	char why[MDEV_MSG_MAX];
	int kind;
	*out_len = 0;
	if (mdev_topic_command_name(self, topic, name) != 0) {
		return -1; /* the broker's ACL keeps this from happening; never act on it */
	}
	memset(&res, 0, sizeof(res));
	memset(&r, 0, sizeof(r));
	r.device_id = self;
	r.timestamp_ms = now_ms;
	if (mdev_cmd_parse(name, payload, len, &cmd, why) != 0) {
		r.command = in_class(name, MDEV_CMD_NAME_MAX_LEN, true, false, "_") ? name
										    : "invalid";
		r.status = "bad_request";
		printable_copy(res.detail, sizeof(res.detail), why);
		r.detail = res.detail;
		return mdev_msg_response(&r, buf, size, out_len) == 0 ? MDEV_CMD_UNKNOWN : -1;
	}
	r.command = cmd.name;
	r.id = cmd.id;
	res.status = "refused";
	switch (cmd.kind) {
	case MDEV_CMD_REBOOT:
		if (h->reboot != NULL) {
			h->reboot(h->ctx, &res);
		}
		break;
	case MDEV_CMD_UPDATE_INTERVAL:
		if (!cmd.has_interval || cmd.interval < MDEV_INTERVAL_MIN ||
		    cmd.interval > MDEV_INTERVAL_MAX) {
			snprintf(res.detail, sizeof(res.detail),
				 "command: \"interval\" must be an integer %d..%d",
				 MDEV_INTERVAL_MIN, MDEV_INTERVAL_MAX);
		} else if (h->update_interval != NULL) {
			h->update_interval(h->ctx, cmd.interval, &res);
		}
		break;
	case MDEV_CMD_DIAGNOSTICS:
		if (h->diagnostics != NULL) {
			h->diagnostics(h->ctx, &res);
		}
		break;
	case MDEV_CMD_CHECK_UPDATE:
		if (h->check_update != NULL) {
			h->check_update(h->ctx, &cmd, &res);
		} else {
			snprintf(res.detail, sizeof(res.detail),
				 "no update client configured on this device");
		}
		break;
	case MDEV_CMD_UNKNOWN:
	default:
		res.status = "unknown_command";
		break;
	}
	kind = (int)cmd.kind;
	r.status = res.status != NULL ? res.status : "failed";
	printable_copy(why, sizeof(why), res.detail);
	r.detail = why;
	r.interval = res.has_interval ? res.interval : 0;
	return mdev_msg_response(&r, buf, size, out_len) == 0 ? kind : -1;
}
