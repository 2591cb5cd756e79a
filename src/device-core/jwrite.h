/* jwrite.h: the JSON writer of moat-device's builders (msg.c; msg_linux.c in host builds)
 * and the field checks they share. Private to src/device-core. Static inline, so each file
 * that includes it keeps only what it calls. Writing past the buffer marks it full and
 * jw_finish fails: a message is never truncated.
 */
#ifndef MDEV_JWRITE_H
#define MDEV_JWRITE_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat_device.h"

/* ---- the writer ---- */

struct jw {
	char *buf;
	size_t size;
	size_t len;
	bool full;
	bool first;
};

static inline void jw_raw(struct jw *w, const char *s, size_t n)
{
	if (w->full || w->size - w->len <= n) {
		w->full = true;
		return;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static inline void jw_lit(struct jw *w, const char *s)
{
	jw_raw(w, s, strlen(s));
}

static inline void jw_str(struct jw *w, const char *s)
{
	jw_lit(w, "\"");
	for (; *s; s++) {
		if (*s == '"' || *s == '\\') {
			jw_lit(w, *s == '"' ? "\\\"" : "\\\\");
		} else {
			jw_raw(w, s, 1);
		}
	}
	jw_lit(w, "\"");
}

static inline void jw_key(struct jw *w, const char *key)
{
	if (!w->first) {
		jw_lit(w, ",");
	}
	w->first = false;
	jw_str(w, key);
	jw_lit(w, ":");
}

static inline void jw_open(struct jw *w, const char *key)
{
	if (key != NULL) {
		jw_key(w, key);
	}
	jw_lit(w, "{");
	w->first = true;
}

static inline void jw_close(struct jw *w)
{
	jw_lit(w, "}");
	w->first = false;
}

static inline void jw_text(struct jw *w, const char *key, const char *s)
{
	jw_key(w, key);
	jw_str(w, s);
}

/* A text member that is left out when NULL or "". */
static inline void jw_opt_text(struct jw *w, const char *key, const char *s)
{
	if (s != NULL && s[0] != '\0') {
		jw_text(w, key, s);
	}
}

static inline void jw_int(struct jw *w, const char *key, int64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%lld", (long long)v);
	jw_key(w, key);
	jw_raw(w, num, (size_t)n);
}

/* Integral values as integers; others with the shorter of %.15g and %.17g that reads
 * back exactly (moat-agent's numbers, byte for byte). v is finite (callers check). */
static inline void jw_number(struct jw *w, double v)
{
	char num[40];
	int n;
	if (v >= -9007199254740991.0 && v <= 9007199254740991.0 && v == (double)(long long)v) {
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

static inline void jw_double(struct jw *w, const char *key, double v)
{
	jw_key(w, key);
	jw_number(w, v);
}

static inline void jw_start(struct jw *w, char *buf, size_t size)
{
	w->buf = buf;
	w->size = size;
	w->len = 0;
	w->full = size == 0;
	w->first = true;
	if (size > 0) {
		buf[0] = '\0';
	}
}

static inline int jw_finish(struct jw *w, size_t *out_len)
{
	if (w->full) {
		if (w->size > 0) {
			w->buf[0] = '\0';
		}
		*out_len = 0;
		return -1;
	}
	*out_len = w->len;
	return 0;
}

static inline bool counter_ok(int64_t v)
{
	return v >= 0 && v <= MDEV_INT_MAX;
}

/* [a-z] plus digits/upper/punct as asked, 1..max. */
static inline bool in_class(const char *s, size_t max, bool digits, bool upper, const char *punct)
{
	size_t i = 0;
	if (s == NULL) {
		return false;
	}
	for (; s[i] != '\0'; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (digits && c >= '0' && c <= '9') ||
			  (upper && c >= 'A' && c <= 'Z') ||
			  (c != '\0' && strchr(punct, c) != NULL);
		if (!ok || i >= max) {
			return false;
		}
	}
	return i > 0;
}

/* NULL or "" (left out), or 1..max bytes of mdev_text_ok text. */
static inline bool opt_text_ok(const char *s, size_t max)
{
	size_t n = 0;
	if (s == NULL) {
		return true;
	}
	while (n <= max && s[n] != '\0') {
		n++;
	}
	return n <= max && mdev_text_ok(s, n);
}

static inline bool given(const char *s)
{
	return s != NULL && s[0] != '\0';
}

static inline bool finite(double v)
{
	return v == v && v <= 1.7976931348623157e308 && v >= -1.7976931348623157e308;
}

/* NULL or "" (left out), or an address's characters [0-9A-Za-z.:]{1,64}. */
static inline bool ip_syntax_ok(const char *s)
{
	return !given(s) || in_class(s, 64, true, true, ".:");
}

/* "checked", "downloading", ...: update events' stages (msg.c), named for moat's own
 * parsers by mdev_update_stage_name (msg_linux.c). */
extern const char *const mdev_stage_names[MDEV_UPD_STAGE_COUNT];

#endif
