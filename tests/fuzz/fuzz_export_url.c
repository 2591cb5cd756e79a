/* fuzz_export_url.c: libFuzzer harness for [monitor]'s URL parser (moat_export_url_parse,
 * src/monitor/url.c) and the webhook answer's status line (moat_http_status_line_parse).
 * Invariants: an accepted URL has a known scheme, a non-empty host of allowed bytes, a port
 * in 1..65535, a path only for https, starting with '/'; a status is 100..999. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/monitor_export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int status = 0;
	if (moat_http_status_line_parse((const char *)data, size, &status) == 0 &&
	    (status < 100 || status > 999)) {
		abort();
	}
	char s[MOAT_EXPORT_URL_MAX_LEN + 8];
	if (size >= sizeof(s)) {
		size = sizeof(s) - 1;
	}
	memcpy(s, data, size);
	s[size] = '\0';
	struct moat_export_url u;
	struct moat_err err;
	if (moat_export_url_parse(s, &u, &err) != 0) {
		return 0;
	}
	if (u.scheme < MOAT_EXPORT_TCP || u.scheme > MOAT_EXPORT_HTTPS || !u.host[0] ||
	    u.port < 1 || u.port > 65535) {
		abort();
	}
	for (const char *p = u.host; *p; p++) {
		if (*p <= 0x20 || *p >= 0x7f || *p == '/' || *p == '@' || *p == '[' || *p == ']') {
			abort();
		}
	}
	if (u.scheme == MOAT_EXPORT_HTTPS ? u.path[0] != '/' : u.path[0] != '\0') {
		abort();
	}
	return 0;
}
