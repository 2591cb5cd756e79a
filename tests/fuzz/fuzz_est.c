/* fuzz_est.c: libFuzzer harness for what moatd reads of an EST request itself
 * (src/server/est_parse.c): byte 0 picks the parser (0: Authorization: Basic, 1:
 * Content-Type and Content-Transfer-Encoding, 2: the base64 body, then the CSR inside it,
 * 3: the request path), the rest is the text (NUL-terminated for the header parsers, as
 * MHD hands them over). Invariants besides crashes: credentials accepted have an identity
 * name as user and a printable password within bounds, both empty otherwise; a decoded
 * body fits its buffer and re-encodes to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "moat/http_parse.h"
#include "moat/pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TEXT_MAX (MOAT_EST_BODY_MAX + 16)

static void basic(const char *text)
{
	char user[MOAT_ID_BUF_LEN];
	char pass[MOAT_EST_PASSWORD_MAX_LEN + 1];
	enum moat_basic_auth r = moat_est_basic_auth_parse(text, user, pass);
	if (r == MOAT_BASIC_OK) {
		size_t pl = strnlen(pass, sizeof(pass));
		if (!moat_identity_name_ok(user) || pl == 0 || pl > MOAT_EST_PASSWORD_MAX_LEN) {
			abort();
		}
		for (size_t i = 0; i < pl; i++) {
			if (pass[i] < 0x21 || pass[i] > 0x7e) {
				abort();
			}
		}
	} else if (user[0] || pass[0]) {
		abort();
	}
}

static void body(const char *text, size_t len)
{
	static unsigned char der[MOAT_CSR_MAX_BYTES];
	size_t n = 0;
	if (moat_est_body_decode(text, len, der, sizeof(der), &n) != 0) {
		return;
	}
	if (n > sizeof(der)) {
		abort();
	}
	size_t elen = 0;
	char *again = moat_est_body_encode(der, n, &elen);
	if (again) {
		unsigned char back[MOAT_CSR_MAX_BYTES];
		size_t m = 0;
		if (moat_est_body_decode(again, elen, back, sizeof(back), &m) != 0 || m != n ||
		    memcmp(back, der, n) != 0) {
			abort();
		}
		free(again);
	}
	struct moat_csr *csr = NULL;
	struct moat_err err;
	if (moat_csr_parse(der, n, &csr, &err) == 0) {
		moat_csr_free(csr);
	}
	ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char text[TEXT_MAX + 1];
	if (size < 1 || size - 1 > TEXT_MAX) {
		return 0;
	}
	size_t len = size - 1;
	memcpy(text, data + 1, len);
	text[len] = '\0';
	switch (data[0] % 4) {
	case 0:
		basic(text);
		break;
	case 1:
		(void)moat_est_content_type_ok(text);
		(void)moat_est_transfer_encoding_ok(text);
		break;
	case 2:
		body(text, len);
		break;
	default: {
		enum moat_http_route r = moat_http_route_parse(text, NULL);
		if (moat_http_route_is_est(r) && strncmp(text, MOAT_EST_PREFIX, 17) != 0) {
			abort();
		}
	}
	}
	return 0;
}
