/* fuzz_broker_log.c: libFuzzer harness for the broker's log as moatd's ingest follows it
 * (moat_broker_log_line_parse and moat_tls_refusal_feed, src/monitor/brokerlog.c): the
 * input is split into lines as the follower does. Invariants: a refused line is
 * MOAT_BLOG_OTHER; an OpenSSL reason is printable ASCII; a refusal has a known reason
 * class and bounded strings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/monitor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_tls_refusal_track t;
	memset(&t, 0, sizeof(t));
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p);
		struct moat_broker_log_line l;
		struct moat_tls_refusal r[2];
		struct moat_err err;
		int rc = moat_broker_log_line_parse(p, len, &l, &err);
		if (rc != 0 && l.kind != MOAT_BLOG_OTHER) {
			abort();
		}
		for (const char *c = l.tls_reason; *c; c++) {
			if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) {
				abort();
			}
		}
		size_t n = moat_tls_refusal_feed(&t, rc == 0 ? &l : NULL, r);
		if (n > 2) {
			abort();
		}
		for (size_t i = 0; i < n; i++) {
			if (!r[i].reason || strlen(r[i].openssl) >= sizeof(r[i].openssl) ||
			    strlen(r[i].address) >= sizeof(r[i].address) ||
			    strcmp(r[i].reason, moat_tls_refusal_reason(r[i].openssl)) != 0) {
				abort();
			}
		}
		p += len + (nl ? 1 : 0);
	}
	return 0;
}
