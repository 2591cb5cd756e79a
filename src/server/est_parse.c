/* est_parse.c: the parts of an EST request moatd reads itself, pure and bounded so they
 * can be fuzzed (tests/fuzz/fuzz_est.c): HTTP Basic credentials, the content type and
 * transfer encoding, and the base64 body. The CSR inside the body is OpenSSL's to read
 * (moat_csr_parse). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "moat/codec.h"
#include "moat/http_parse.h"

static bool is_b64_space(char c)
{
	return c == '\r' || c == '\n' || c == ' ' || c == '\t';
}

int moat_est_body_decode(const char *body, size_t len, unsigned char *out, size_t out_size,
			 size_t *out_len)
{
	*out_len = 0;
	if (!body || len == 0 || len > MOAT_EST_BODY_MAX) {
		return MOAT_EINVAL;
	}
	char *packed = malloc(len);
	if (!packed) {
		return MOAT_ENOMEM;
	}
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (!is_b64_space(body[i])) {
			packed[n++] = body[i];
		}
	}
	int rc = n == 0 ? MOAT_EINVAL : moat_b64_decode(packed, n, out, out_size, out_len);
	free(packed);
	return rc;
}

char *moat_est_body_encode(const unsigned char *der, size_t len, size_t *out_len)
{
	size_t b64_len = 4 * ((len + 2) / 3);
	char *b64 = malloc(b64_len + 1);
	/* 64 characters a line, each ending in LF: what OpenSSL's base64 BIO writes, and what
	 * every decoder (openssl base64 -d, coreutils base64 -d, EST clients) reads; coreutils
	 * refuses CR */
	size_t lines = (b64_len + 63) / 64;
	char *out = b64 ? malloc(b64_len + lines + 1) : NULL;
	if (!out) {
		free(b64);
		return NULL;
	}
	moat_b64_encode(der, len, b64);
	size_t o = 0;
	for (size_t i = 0; i < b64_len; i += 64) {
		size_t n = b64_len - i < 64 ? b64_len - i : 64;
		memcpy(out + o, b64 + i, n);
		o += n;
		out[o++] = '\n';
	}
	out[o] = '\0';
	free(b64);
	*out_len = o;
	return out;
}

/* value up to ';' (or its end), white space around it dropped, equals want ignoring case */
static bool media_type_is(const char *value, const char *want)
{
	if (!value) {
		return false;
	}
	size_t len = strnlen(value, MOAT_EST_HEADER_MAX_LEN + 1);
	if (len > MOAT_EST_HEADER_MAX_LEN) {
		return false;
	}
	const char *end = memchr(value, ';', len);
	if (!end) {
		end = value + len;
	}
	while (value < end && (*value == ' ' || *value == '\t')) {
		value++;
	}
	while (end > value && (end[-1] == ' ' || end[-1] == '\t')) {
		end--;
	}
	size_t wlen = strlen(want);
	return (size_t)(end - value) == wlen && strncasecmp(value, want, wlen) == 0;
}

bool moat_est_content_type_ok(const char *value)
{
	return media_type_is(value, "application/pkcs10");
}

bool moat_est_transfer_encoding_ok(const char *value)
{
	return !value || media_type_is(value, "base64");
}

/* "user:password" (n bytes of plain) into user and password; both "" unless OK. */
static enum moat_basic_auth split_credentials(const unsigned char *plain, size_t n,
					      char user[MOAT_ID_BUF_LEN],
					      char password[MOAT_EST_PASSWORD_MAX_LEN + 1])
{
	const unsigned char *colon = memchr(plain, ':', n);
	if (!colon) {
		return MOAT_BASIC_MALFORMED;
	}
	size_t ulen = (size_t)(colon - plain);
	size_t plen = n - ulen - 1;
	if (ulen == 0 || ulen > MOAT_ID_MAX_LEN || plen == 0 || plen > MOAT_EST_PASSWORD_MAX_LEN) {
		return MOAT_BASIC_MALFORMED;
	}
	for (size_t i = ulen + 1; i < n; i++) {
		if (plain[i] < 0x21 || plain[i] > 0x7e) {
			return MOAT_BASIC_MALFORMED;
		}
	}
	char u[MOAT_ID_BUF_LEN];
	memcpy(u, plain, ulen);
	u[ulen] = '\0';
	if (strlen(u) != ulen || !moat_identity_name_ok(u)) {
		return MOAT_BASIC_MALFORMED;
	}
	memcpy(user, u, ulen + 1);
	memcpy(password, colon + 1, plen);
	password[plen] = '\0';
	return MOAT_BASIC_OK;
}

enum moat_basic_auth moat_est_basic_auth_parse(const char *value, char user[MOAT_ID_BUF_LEN],
					       char password[MOAT_EST_PASSWORD_MAX_LEN + 1])
{
	user[0] = '\0';
	password[0] = '\0';
	if (!value) {
		return MOAT_BASIC_NONE;
	}
	size_t len = strnlen(value, MOAT_EST_HEADER_MAX_LEN + 1);
	if (len > MOAT_EST_HEADER_MAX_LEN || len < 7 || strncasecmp(value, "Basic ", 6) != 0) {
		return MOAT_BASIC_MALFORMED;
	}
	unsigned char plain[MOAT_EST_HEADER_MAX_LEN];
	size_t n = 0;
	if (moat_b64_decode(value + 6, len - 6, plain, sizeof(plain) - 1, &n) != 0) {
		return MOAT_BASIC_MALFORMED;
	}
	enum moat_basic_auth r = split_credentials(plain, n, user, password);
	explicit_bzero(plain, sizeof(plain)); /* the token */
	return r;
}