/* http_parse.c: the parts of an HTTP request moatd interprets itself, kept pure so they can
 * be fuzzed: the URL's escapes (decoded here rather than by MHD, which turns %00 into the
 * end of the string), the request path (an exact match against the two routes, so
 * traversal, escapes and doubled slashes simply do not match) and the Range header (one
 * byte range, clamped to the image so nothing past the release's size is ever addressed).
 */
#include <string.h>

#include "moat/http_parse.h"

#define VERSION_PATH "/api/firmware/version"
#define DOWNLOAD_PREFIX "/api/firmware/download/"

static bool is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int moat_http_hex_value(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

size_t moat_http_unescape(char *s)
{
	size_t r = 0;
	size_t w = 0;

	while (s[r]) {
		int hi = s[r] == '%' ? moat_http_hex_value(s[r + 1]) : -1;
		int lo = hi >= 0 ? moat_http_hex_value(s[r + 2]) : -1;
		if (lo < 0 || (hi == 0 && lo == 0)) {
			s[w++] = s[r++]; /* not an escape, or %00: kept as it is */
			continue;
		}
		s[w++] = (char)(hi * 16 + lo);
		r += 3;
	}
	s[w] = '\0';
	return w;
}

enum moat_http_route moat_http_route_parse(const char *path, uint8_t out_sha256[MOAT_SHA256_BYTES])
{
	if (!path) {
		return MOAT_ROUTE_NOT_FOUND;
	}
	size_t len = strnlen(path, MOAT_HTTP_URL_MAX_LEN + 1);
	if (len > MOAT_HTTP_URL_MAX_LEN) {
		return MOAT_ROUTE_NOT_FOUND;
	}
	if (strstr(path, "%00")) {
		return MOAT_ROUTE_BAD;
	}
	if (strcmp(path, VERSION_PATH) == 0) {
		return MOAT_ROUTE_VERSION;
	}
	if (strcmp(path, MOAT_METRICS_PATH) == 0) {
		return MOAT_ROUTE_METRICS;
	}
	static const struct {
		const char *path;
		enum moat_http_route route;
	} est[] = {
		{MOAT_EST_PREFIX "cacerts", MOAT_ROUTE_EST_CACERTS},
		{MOAT_EST_PREFIX "simpleenroll", MOAT_ROUTE_EST_SIMPLEENROLL},
		{MOAT_EST_PREFIX "simplereenroll", MOAT_ROUTE_EST_SIMPLEREENROLL},
		{MOAT_EST_PREFIX "csrattrs", MOAT_ROUTE_EST_CSRATTRS},
	};
	for (size_t i = 0; i < sizeof(est) / sizeof(est[0]); i++) {
		if (strcmp(path, est[i].path) == 0) {
			return est[i].route;
		}
	}
	size_t plen = strlen(DOWNLOAD_PREFIX);
	if (len != plen + MOAT_SHA256_HEX_LEN || strncmp(path, DOWNLOAD_PREFIX, plen) != 0) {
		return MOAT_ROUTE_NOT_FOUND;
	}
	const char *hex = path + plen;
	for (size_t i = 0; i < MOAT_SHA256_HEX_LEN; i++) {
		if (!is_lower_hex(hex[i])) {
			return MOAT_ROUTE_NOT_FOUND;
		}
	}
	uint8_t digest[MOAT_SHA256_BYTES];
	if (moat_hex_decode(hex, digest, sizeof(digest)) != 0) {
		return MOAT_ROUTE_NOT_FOUND;
	}
	if (out_sha256) {
		memcpy(out_sha256, digest, sizeof(digest));
	}
	return MOAT_ROUTE_DOWNLOAD;
}

/* Parses decimal digits at *p (at least one, no sign, no overflow past 2^63). */
static bool parse_u64(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	if (*s < '0' || *s > '9') {
		return false;
	}
	while (*s >= '0' && *s <= '9') {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX / 2 - d) / 10) {
			return false;
		}
		v = v * 10 + d;
		s++;
	}
	*p = s;
	*out = v;
	return true;
}

enum moat_range_result moat_http_range_parse(const char *value, uint64_t size, uint64_t *out_start,
					     uint64_t *out_len)
{
	*out_start = 0;
	*out_len = size;
	if (!value) {
		return MOAT_RANGE_NONE;
	}
	if (size == 0 || strnlen(value, MOAT_HTTP_RANGE_MAX_LEN + 1) > MOAT_HTTP_RANGE_MAX_LEN ||
	    strncmp(value, "bytes=", 6) != 0) {
		return MOAT_RANGE_MALFORMED;
	}
	const char *p = value + 6;
	uint64_t first = 0;
	uint64_t last = size - 1;
	if (*p == '-') {
		/* Suffix range: the last N bytes. */
		uint64_t n;
		p++;
		if (!parse_u64(&p, &n) || *p != '\0') {
			return MOAT_RANGE_MALFORMED;
		}
		if (n == 0) {
			return MOAT_RANGE_UNSATISFIABLE;
		}
		first = n >= size ? 0 : size - n;
	} else {
		if (!parse_u64(&p, &first) || *p != '-') {
			return MOAT_RANGE_MALFORMED;
		}
		p++;
		if (*p != '\0') {
			uint64_t b;
			if (!parse_u64(&p, &b) || *p != '\0' || b < first) {
				return MOAT_RANGE_MALFORMED;
			}
			if (b < last) {
				last = b;
			}
		}
		if (first >= size) {
			return MOAT_RANGE_UNSATISFIABLE;
		}
	}
	*out_start = first;
	*out_len = last - first + 1;
	return MOAT_RANGE_OK;
}

bool moat_http_route_is_est(enum moat_http_route r)
{
	return r == MOAT_ROUTE_EST_CACERTS || r == MOAT_ROUTE_EST_SIMPLEENROLL ||
	       r == MOAT_ROUTE_EST_SIMPLEREENROLL || r == MOAT_ROUTE_EST_CSRATTRS;
}
