/* fuzz_est_client.c: what the device's EST client reads from the network (src/device/est.c): an
 * HTTP response, whole or cut anywhere (a cut response is incomplete or refused, never
 * accepted as something else), and the PKCS#7 certs-only body. Invariants: a refusal says
 * why; an accepted response has a final status and a body no longer than the input; a
 * parsed PKCS#7 holds 1..MOAT_EST_CERTS_MAX certificates. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "moat/est_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const uint8_t *data, size_t size, bool eof)
{
	struct moat_http_response r;
	struct moat_err err;
	moat_err_clear(&err);
	int rc = moat_http_response_parse(data, size, eof, &r, &err);
	if (rc == 0) {
		if (r.status < 200 || r.status > 599 || r.body_len > size || !r.body ||
		    r.body[r.body_len] != '\0') {
			abort();
		}
		int64_t retry = 0;
		if (moat_est_response_check("simpleenroll", &r, &retry, &err) != 0 &&
		    err.msg[0] == '\0') {
			abort();
		}
		moat_http_response_free(&r);
	} else if (rc == MOAT_HTTP_INCOMPLETE) {
		if (eof) {
			abort(); /* at the end of input every response is complete or refused */
		}
	} else if (err.msg[0] == '\0') {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	one(data, size, true);
	one(data, size, false);
	/* a response cut in half */
	one(data, size / 2, false);

	STACK_OF(X509) *certs = NULL;
	struct moat_err err;
	moat_err_clear(&err);
	if (moat_est_certs_parse(data, size, &certs, &err) == 0) {
		int n = sk_X509_num(certs);
		if (n < 1 || n > MOAT_EST_CERTS_MAX) {
			abort();
		}
		sk_X509_pop_free(certs, X509_free);
	} else if (certs != NULL || err.msg[0] == '\0') {
		abort();
	}
	return 0;
}
