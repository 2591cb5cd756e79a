/* dashboard.h: the fleet dashboard moatd serves under /dashboard (src/server/dashboard.c,
 * dash_parse.c; docs/DASHBOARD.md), and `moat dashboard`'s sign-in links.
 *
 * Access: an operator's client certificate (mutual TLS), or a session cookie opened by a
 * one-time sign-in link (GET /dashboard/signin?token=T: T is spent, a session token is set
 * as cookie MOAT_DASH_COOKIE: HttpOnly, Secure, SameSite=Strict, Max-Age of the session).
 * Links and sessions are kept in the registry only as SHA-256 of their token. Every POST
 * carries the session's CSRF token (a form field MOAT_DASH_CSRF_FIELD). Every refusal is
 * a security event (kind dashboard_refused); every action is one (dashboard_action) naming
 * the operator.
 *
 * Contract of the parsers: pure and bounded (fuzzed: tests/fuzz/fuzz_dash.c); they read only
 * the bytes given and never allocate.
 */
#ifndef MOAT_DASHBOARD_H
#define MOAT_DASHBOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"

#define MOAT_DASH_PREFIX "/dashboard"
#define MOAT_DASH_COOKIE "moat_session"
#define MOAT_DASH_CSRF_FIELD "csrf"
/* tokens: 32 random bytes as 64 lower-case hex digits */
#define MOAT_DASH_TOKEN_BYTES 32
#define MOAT_DASH_TOKEN_HEX_LEN 64
#define MOAT_DASH_BODY_MAX 4096	    /* the largest form moatd reads */
#define MOAT_DASH_FIELD_MAX_LEN 256 /* the longest field value */
#define MOAT_DASH_LINK_TTL_DEFAULT_S 300
#define MOAT_DASH_SESSION_TTL_DEFAULT_S (8 * 3600)

/* Is s exactly MOAT_DASH_TOKEN_HEX_LEN lower-case hex digits? */
bool moat_dash_token_ok(const char *s);

/* The value of cookie name in a Cookie header ("a=1; b=2"): 0 and out set, MOAT_ENOENT when
 * absent, MOAT_EINVAL for a header that is not a list of name=value pairs (a control byte,
 * no '=', a value longer than size - 1, the name twice). */
MOAT_MUST_CHECK int moat_dash_cookie_get(const char *header, const char *name, char *out,
					 size_t size);

/* The value of field name in an application/x-www-form-urlencoded body (len bytes, not
 * NUL-terminated): '+' is a space, %HH a byte. 0 and out set, MOAT_ENOENT when absent,
 * MOAT_EINVAL for a malformed body: a bad escape, a NUL or control byte in a decoded name or
 * value, a pair without '=', a value longer than size - 1, the name twice. */
MOAT_MUST_CHECK int moat_dash_form_get(const char *body, size_t len, const char *name, char *out,
				       size_t size);

/* Is a query or form value acceptable for a filter (at most MOAT_DASH_FIELD_MAX_LEN bytes of
 * printable ASCII)? NULL is (it means absent). */
bool moat_dash_value_ok(const char *v);

/* Duration window of a telemetry plot: "1h", "24h", "7d" to ms; 0 for anything else. */
int64_t moat_dash_window_ms(const char *w);

/* ---- tokens (src/server/dash_token.c) ---- */

/* A new random token (64 hex digits) and its SHA-256 (64 hex digits), what the registry
 * keeps. */
MOAT_MUST_CHECK int moat_dash_token_new(char token[MOAT_DASH_TOKEN_HEX_LEN + 1],
					char sha256[MOAT_DASH_TOKEN_HEX_LEN + 1],
					struct moat_err *err);
/* The SHA-256 (hex) of a token as the registry keeps it. */
void moat_dash_token_hash(const char *token, char sha256[MOAT_DASH_TOKEN_HEX_LEN + 1]);

/* `moat dashboard`: records a one-time sign-in link for operator_id (an active operator of the
 * registry), valid link_s seconds, opening a session of session_s seconds, and writes its
 * URL (https://host:port/dashboard/signin?token=...) into url. */
struct moat_registry;
#define MOAT_DASH_URL_MAX 512
MOAT_MUST_CHECK int moat_dash_link_create(struct moat_registry *reg, const char *operator_id,
					  const char *host, int port, int64_t link_s,
					  int64_t session_s, char url[MOAT_DASH_URL_MAX],
					  struct moat_err *err);

#endif
