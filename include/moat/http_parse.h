/* http_parse.h: moatd's request parsing (src/server/http_parse.c): how escapes in the URL
 * are decoded, which route a path names and which bytes a Range header asks for. Used by
 * moatd's HTTPS service.
 *
 * Contract: the parsers are pure and bounded (fuzzed: tests/fuzz/fuzz_http.c); they read
 * only the NUL-terminated string they are given and never allocate.
 */
#ifndef MOAT_HTTP_PARSE_H
#define MOAT_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"
#include "moat/identity.h"
#include "moat/manifest.h"

#define MOAT_HTTP_URL_MAX_LEN 256
#define MOAT_HTTP_RANGE_MAX_LEN 128

/* MHD's unescape callback (MHD_OPTION_UNESCAPE_CALLBACK) for the path and every query
 * argument: decodes %HH in place, except %00, which stays as the three characters "%00"
 * (MHD's own decoder turns it into a NUL, so "/api/firmware/version%00x" or
 * "current=1.0.0%00x" would be read cut short), and a '%' without two hex digits, which
 * stays as it is. The result never holds a NUL byte and is never longer than s. Returns
 * its length. */
size_t moat_http_unescape(char *s);

/* The value of one hex digit of a %HH escape (either case), or -1 (also the dashboard's
 * form decoder). */
int moat_http_hex_value(char c);

enum moat_http_route {
	MOAT_ROUTE_NOT_FOUND = 0,
	MOAT_ROUTE_VERSION,  /* /api/firmware/version */
	MOAT_ROUTE_DOWNLOAD, /* /api/firmware/download/<64 lower-case hex> */
	MOAT_ROUTE_BAD,	     /* a path holding %00, an escape no route may decode (400) */
	/* EST (RFC 7030) under /.well-known/est/ (no CA label segment) */
	MOAT_ROUTE_EST_CACERTS,
	MOAT_ROUTE_EST_SIMPLEENROLL,
	MOAT_ROUTE_EST_SIMPLEREENROLL,
	MOAT_ROUTE_EST_CSRATTRS,
	MOAT_ROUTE_METRICS, /* /metrics: Prometheus text, operators only */
};
#define MOAT_METRICS_PATH "/metrics"
#define MOAT_EST_PREFIX "/.well-known/est/"

/* true for the MOAT_ROUTE_EST_* routes. */
bool moat_http_route_is_est(enum moat_http_route r);

/* Maps a request path (no query string; decoded by moat_http_unescape) to a route. Only the
 * exact paths above match: no "..", no "//", no trailing slash, no percent escapes, at most
 * MOAT_HTTP_URL_MAX_LEN bytes. For MOAT_ROUTE_DOWNLOAD out_sha256 (may be NULL) receives
 * the digest. */
enum moat_http_route moat_http_route_parse(const char *path, uint8_t out_sha256[MOAT_SHA256_BYTES]);

enum moat_range_result {
	MOAT_RANGE_NONE = 0,	  /* no Range header: the whole image (200) */
	MOAT_RANGE_OK,		  /* one satisfiable range (206) */
	MOAT_RANGE_MALFORMED,	  /* syntax, several ranges, another unit (400) */
	MOAT_RANGE_UNSATISFIABLE, /* starts at or past the end (416) */
};

/* Parses a Range header value (NULL: none) against an image of size bytes (>= 1):
 * "bytes=A-B", "bytes=A-", "bytes=-N". B past the end is clamped to size - 1, so
 * [*out_start, *out_start + *out_len) always lies inside the image. */
enum moat_range_result moat_http_range_parse(const char *value, uint64_t size, uint64_t *out_start,
					     uint64_t *out_len);

/* ---- EST requests (src/server/est_parse.c; fuzzed: tests/fuzz/fuzz_est.c) ---- */

/* The largest request body moatd reads: a CSR of MOAT_CSR_MAX_BYTES in base64 with line
 * breaks. */
#define MOAT_EST_BODY_MAX 24576
#define MOAT_EST_HEADER_MAX_LEN 512
#define MOAT_EST_PASSWORD_MAX_LEN 128

enum moat_basic_auth {
	MOAT_BASIC_NONE = 0,  /* no Authorization header */
	MOAT_BASIC_OK,	      /* user and password read */
	MOAT_BASIC_MALFORMED, /* another scheme, bad base64, no ':', a NUL or control byte,
				 a user that is not an identity name, too long */
};

/* Reads "Basic base64(user:password)" (the scheme case-insensitive, one space). user must
 * be an identity name (it is the device id), password 1 to MOAT_EST_PASSWORD_MAX_LEN
 * printable ASCII bytes. On anything but MOAT_BASIC_OK both outputs are "". */
enum moat_basic_auth moat_est_basic_auth_parse(const char *value, char user[MOAT_ID_BUF_LEN],
					       char password[MOAT_EST_PASSWORD_MAX_LEN + 1]);

/* Is the Content-Type value application/pkcs10 (case-insensitive, parameters after ';'
 * allowed)? NULL is not. */
bool moat_est_content_type_ok(const char *value);
/* Is the Content-Transfer-Encoding value absent (NULL) or "base64"? RFC 7030 bodies are
 * base64; moatd reads nothing else. */
bool moat_est_transfer_encoding_ok(const char *value);

/* Decodes an EST body: base64 (RFC 4648, padded) with any CR, LF, space or tab between
 * the characters ignored, into out (out_size bytes). MOAT_EINVAL for any other byte, a bad
 * length or padding, or a result that does not fit. */
MOAT_MUST_CHECK int moat_est_body_decode(const char *body, size_t len, unsigned char *out,
					 size_t out_size, size_t *out_len);

/* Base64 of der with LF after every 64 characters and at the end (RFC 7030 bodies), into
 * a malloc'd NUL-terminated string (the caller frees it); NULL when out of memory. */
char *moat_est_body_encode(const unsigned char *der, size_t len, size_t *out_len);

#endif
