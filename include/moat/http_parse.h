/* http_parse.h: moatd's request parsing (src/server/http_parse.c): how escapes in the URL
 * are decoded, which route a path names and which bytes a Range header asks for. Used by
 * moatd's HTTPS service.
 *
 * Contract: the parsers are pure and bounded (fuzzed: tests/fuzz/fuzz_http.c); they read
 * only the NUL-terminated string they are given and never allocate.
 */
#ifndef MOAT_HTTP_PARSE_H
#define MOAT_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

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

enum moat_http_route {
	MOAT_ROUTE_NOT_FOUND = 0,
	MOAT_ROUTE_VERSION,  /* /api/firmware/version */
	MOAT_ROUTE_DOWNLOAD, /* /api/firmware/download/<64 lower-case hex> */
	MOAT_ROUTE_BAD,	     /* a path holding %00, an escape no route may decode (400) */
};

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

#endif
