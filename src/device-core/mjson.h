/* mjson.h: moat-device's JSON reading on top of jsmn (tokens in caller-owned arrays, no
 * allocation). Internal to src/device-core. Strict: see moat_device.h. */
#ifndef MDEV_MJSON_H
#define MDEV_MJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* jsmn's types everywhere; its functions, static and strict, in mjson.c alone (so a
 * firmware that links its own jsmn gets no clash). */
#ifdef MJSON_IMPL
#define JSMN_STATIC
#define JSMN_STRICT
#else
#define JSMN_HEADER
#endif
#include <jsmn.h>

struct mjson {
	const char *js;
	size_t len;
	jsmntok_t *tok;
	int ntok;
	const char *what; /* "manifest", "envelope", ... for messages */
	char *msg;	  /* MDEV_MSG_MAX */
};

void mdev_msgf(char *msg, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;

/* Tokenizes js (len <= max) into tok[ntok]; the root must be an object, followed by
 * whitespace only. 0 or -1 (reason in j->msg). */
int mj_parse(struct mjson *j, const char *what, const void *js, size_t len, size_t max,
	     jsmntok_t *tok, int ntok, char *msg);
/* The token after the subtree at i. */
int mj_next(const struct mjson *j, int i);
/* The members of object obj: every name in names[n] exactly once (optional ones, where
 * required[k] is false, may be absent: out[k] = -1), nothing else unless allow_unknown. */
int mj_fields(struct mjson *j, int obj, const char *const *names, const bool *required, int n,
	      bool allow_unknown, int *out);
/* A string value (no escapes, printable ASCII) of 1..max bytes. */
int mj_str(struct mjson *j, int i, const char *field, size_t max, const char **s, size_t *slen);
/* An integer min..max written plainly (digits, optional leading '-'). */
int mj_int(struct mjson *j, int i, const char *field, int64_t min, int64_t max, int64_t *out);
bool mj_is(const struct mjson *j, int i, const char *lit);

/* Canonical base64 (padding, zero unused bits) into out (out may be NULL: validate only). */
int mdev_b64_decode(const char *in, size_t in_len, unsigned char *out, size_t out_size,
		    size_t *out_len);
/* Exactly 2 * n lower-case hex digits. */
int mdev_hex_decode(const char *in, size_t in_len, uint8_t *out, size_t n);

#endif
