/* est.c: the pure parts of the device's EST client (est_client.h): the HTTP response
 * reader, the PKCS#7 certs-only reader, the checks an issued certificate must pass, the
 * key, the CSR and the request text. No sockets and no files, so fuzz_est_client can feed the
 * readers anything. PKCS#7, X.509 and PKCS#10 are OpenSSL's; only HTTP framing is read
 * here, strictly: CRLF line ends, no folded headers, one length.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "moat/codec.h"
#include "moat/est_client.h"
#include "moat/keys.h"
#include "moat/text.h"

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool ieq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	if (alen != blen) {
		return false;
	}
	for (size_t i = 0; i < alen; i++) {
		if (lower(a[i]) != lower(b[i])) {
			return false;
		}
	}
	return true;
}

/* RFC 9110 token characters (header names). */
static bool tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Decimal digits only, at most max; false on anything else (no sign, no space). */
static bool parse_uint(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 19) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return false;
		}
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max) {
		return false;
	}
	*out = v;
	return true;
}

/* Finds "\r\n" in [p, end): the line's length, or -1. */
static long line_len(const char *p, const char *end)
{
	for (const char *q = p; q + 1 < end; q++) {
		if (q[0] == '\r' && q[1] == '\n') {
			return (long)(q - p);
		}
	}
	return -1;
}

struct head {
	int status;
	bool has_length, chunked;
	uint64_t length;
	char content_type[128];
	int64_t retry_after_s;
	size_t size; /* bytes of the status line and headers, the blank line included */
};

static int bad(struct moat_err *err, const char *what)
{
	return moat_err_set(err, MOAT_EINVAL, "malformed HTTP response: %s", what);
}

static int parse_header(const char *p, size_t n, struct head *h, struct moat_err *err)
{
	size_t i = 0;
	while (i < n && tchar((unsigned char)p[i])) {
		i++;
	}
	if (i == 0 || i >= n || p[i] != ':') {
		return bad(err, "a header line is not name: value");
	}
	const char *name = p;
	size_t name_len = i;
	const char *v = p + i + 1;
	size_t vn = n - i - 1;
	for (size_t k = 0; k < vn; k++) {
		unsigned char c = (unsigned char)v[k];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			return bad(err, "a control byte in a header value");
		}
	}
	while (vn > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vn--;
	}
	while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) {
		vn--;
	}
	if (ieq(name, name_len, "content-length")) {
		uint64_t len = 0;
		if (!parse_uint(v, vn, MOAT_EST_RESPONSE_MAX_BYTES, &len)) {
			return bad(err, "Content-Length is not a number within the limit");
		}
		if (h->has_length && h->length != len) {
			return bad(err, "two different Content-Length headers");
		}
		h->has_length = true;
		h->length = len;
	} else if (ieq(name, name_len, "transfer-encoding")) {
		if (!ieq(v, vn, "chunked") || h->chunked) {
			return bad(err, "a Transfer-Encoding other than one chunked");
		}
		h->chunked = true;
	} else if (ieq(name, name_len, "content-type")) {
		size_t k = 0, o = 0;
		while (k < vn && v[k] != ';' && v[k] != ' ' && v[k] != '\t' &&
		       o + 1 < sizeof(h->content_type)) {
			h->content_type[o++] = lower(v[k++]);
		}
		h->content_type[o] = '\0';
	} else if (ieq(name, name_len, "retry-after")) {
		uint64_t s = 0;
		/* an HTTP-date is not used by EST servers: treated as absent */
		if (parse_uint(v, vn, UINT32_MAX, &s)) {
			h->retry_after_s = (int64_t)s;
		}
	}
	return 0;
}

/* The status line and headers at buf, or MOAT_HTTP_INCOMPLETE. */
static int parse_head(const char *buf, size_t len, bool eof, struct head *h, struct moat_err *err)
{
	const char *end = buf + len;
	memset(h, 0, sizeof(*h));
	h->retry_after_s = -1;
	long n = line_len(buf, end);
	if (n < 0) {
		if (len > MOAT_EST_HEADERS_MAX_BYTES) {
			return bad(err, "headers longer than the limit");
		}
		if (eof || (len >= 5 && memcmp(buf, "HTTP/", 5) != 0)) {
			return bad(err, "no status line");
		}
		return MOAT_HTTP_INCOMPLETE;
	}
	/* "HTTP/1.x SP 3DIGIT [SP reason]" */
	if (n < 12 || (memcmp(buf, "HTTP/1.1 ", 9) != 0 && memcmp(buf, "HTTP/1.0 ", 9) != 0) ||
	    buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' || buf[11] < '0' ||
	    buf[11] > '9' || (n > 12 && buf[12] != ' ')) {
		return bad(err, "the status line is not HTTP/1.x with a status code");
	}
	for (long k = 12; k < n; k++) {
		unsigned char c = (unsigned char)buf[k];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			return bad(err, "a control byte in the status line");
		}
	}
	h->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	const char *p = buf + n + 2;
	for (;;) {
		if ((size_t)(p - buf) > MOAT_EST_HEADERS_MAX_BYTES) {
			return bad(err, "headers longer than the limit");
		}
		n = line_len(p, end);
		if (n < 0) {
			if (eof) {
				return bad(err, "the headers do not end");
			}
			return (size_t)(end - buf) > MOAT_EST_HEADERS_MAX_BYTES
				       ? bad(err, "headers longer than the limit")
				       : MOAT_HTTP_INCOMPLETE;
		}
		if (n == 0) {
			p += 2;
			break;
		}
		if (p[0] == ' ' || p[0] == '\t') {
			return bad(err, "a folded header line");
		}
		int rc = parse_header(p, (size_t)n, h, err);
		if (rc != 0) {
			return rc;
		}
		p += n + 2;
	}
	if ((size_t)(p - buf) > MOAT_EST_HEADERS_MAX_BYTES) {
		return bad(err, "headers longer than the limit");
	}
	if (h->chunked && h->has_length) {
		return bad(err, "both Content-Length and Transfer-Encoding");
	}
	h->size = (size_t)(p - buf);
	return 0;
}

/* Decodes a chunked body at p (n bytes) into out (room for n bytes): 0 and *out_len when
 * the last chunk and the trailers are there, MOAT_HTTP_INCOMPLETE, or MOAT_EINVAL. */
static int dechunk(const char *p, size_t n, bool eof, unsigned char *out, size_t *out_len,
		   size_t *out_consumed, struct moat_err *err)
{
	const char *end = p + n, *q = p;
	size_t o = 0;
	for (;;) {
		long ln = line_len(q, end);
		if (ln < 0) {
			return eof || (size_t)(end - q) > 256 ? bad(err, "a chunk size line")
							      : MOAT_HTTP_INCOMPLETE;
		}
		uint64_t size = 0;
		long k = 0;
		for (; k < ln && k < 9; k++) {
			char c = lower(q[k]);
			int d = c >= '0' && c <= '9'   ? c - '0'
				: c >= 'a' && c <= 'f' ? c - 'a' + 10
						       : -1;
			if (d < 0) {
				break;
			}
			size = size * 16 + (uint64_t)d;
		}
		if (k == 0 || k > 8 || (k < ln && q[k] != ';')) {
			return bad(err, "a chunk size that is not hexadecimal");
		}
		if (size > MOAT_EST_RESPONSE_MAX_BYTES || o + size > n) {
			return bad(err, "a chunk larger than the response");
		}
		q += ln + 2;
		if (size == 0) {
			/* trailers, then the empty line */
			for (;;) {
				long tn = line_len(q, end);
				if (tn < 0) {
					return eof ? bad(err, "the trailers do not end")
						   : MOAT_HTTP_INCOMPLETE;
				}
				q += tn + 2;
				if (tn == 0) {
					*out_len = o;
					*out_consumed = (size_t)(q - p);
					return 0;
				}
			}
		}
		if ((size_t)(end - q) < size + 2) {
			return eof ? bad(err, "a chunk cut short") : MOAT_HTTP_INCOMPLETE;
		}
		memcpy(out + o, q, size);
		o += size;
		q += size;
		if (q[0] != '\r' || q[1] != '\n') {
			return bad(err, "a chunk not followed by CRLF");
		}
		q += 2;
	}
}

int moat_http_response_parse(const unsigned char *ubuf, size_t len, bool eof,
			     struct moat_http_response *out, struct moat_err *err)
{
	const char *buf = (const char *)ubuf;
	struct head h;
	memset(out, 0, sizeof(*out));
	out->retry_after_s = -1;
	if (len > MOAT_EST_RESPONSE_MAX_BYTES) {
		return bad(err, "larger than the limit");
	}
	int rc;
	/* interim 1xx responses (100 Continue) come before the real one */
	for (;;) {
		if ((rc = parse_head(buf, len, eof, &h, err)) != 0) {
			return rc;
		}
		if (h.status >= 200) {
			break;
		}
		if (h.status == 101 || h.has_length || h.chunked) {
			return bad(err, "an interim response that is not 1xx without a body");
		}
		buf += h.size;
		len -= h.size;
	}
	const char *body = buf + h.size;
	size_t avail = len - h.size;
	size_t blen = 0;
	unsigned char *b = malloc(avail + 1);
	if (!b) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	if (h.status == 204 || h.status == 304) {
		if (avail != 0) {
			rc = bad(err, "a body after a status that has none");
			goto fail;
		}
	} else if (h.chunked) {
		size_t used = 0;
		if ((rc = dechunk(body, avail, eof, b, &blen, &used, err)) != 0) {
			goto fail;
		}
		if (used != avail) {
			rc = bad(err, "bytes after the last chunk");
			goto fail;
		}
	} else if (h.has_length) {
		if (avail < h.length) {
			rc = eof ? bad(err, "the body is shorter than its Content-Length")
				 : MOAT_HTTP_INCOMPLETE;
			goto fail;
		}
		if (avail > h.length) {
			rc = bad(err, "bytes after the body");
			goto fail;
		}
		memcpy(b, body, avail);
		blen = avail;
	} else {
		if (!eof) {
			rc = MOAT_HTTP_INCOMPLETE;
			goto fail;
		}
		memcpy(b, body, avail);
		blen = avail;
	}
	b[blen] = '\0';
	out->status = h.status;
	memcpy(out->content_type, h.content_type, sizeof(out->content_type));
	out->retry_after_s = h.retry_after_s;
	out->body = b;
	out->body_len = blen;
	return 0;
fail:
	free(b);
	return rc;
}

void moat_http_response_free(struct moat_http_response *r)
{
	if (r) {
		free(r->body);
		r->body = NULL;
		r->body_len = 0;
	}
}

int moat_est_certs_parse(const unsigned char *body, size_t len, STACK_OF(X509) * *out,
			 struct moat_err *err)
{
	*out = NULL;
	if (len > MOAT_EST_RESPONSE_MAX_BYTES) {
		return moat_err_set(err, MOAT_EINVAL, "PKCS#7 answer larger than the limit");
	}
	/* base64 with the line breaks MIME puts in: drop whitespace, then decode strictly */
	char *text = malloc(len + 1);
	unsigned char *der = malloc(len / 4 * 3 + 3);
	PKCS7 *p7 = NULL;
	STACK_OF(X509) *certs = NULL;
	int rc = 0;
	size_t tn = 0, dn = 0;
	if (!text || !der) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = body[i];
		if (c == '\r' || c == '\n' || c == ' ' || c == '\t') {
			continue;
		}
		text[tn++] = (char)c;
	}
	if (tn == 0 || moat_b64_decode(text, tn, der, len / 4 * 3 + 3, &dn) != 0) {
		rc = moat_err_set(err, MOAT_EINVAL, "the PKCS#7 answer is not base64");
		goto out;
	}
	const unsigned char *p = der;
	p7 = d2i_PKCS7(NULL, &p, (long)dn);
	if (!p7 || p != der + dn) {
		rc = moat_err_set(err, MOAT_EINVAL, "the answer is not one DER PKCS#7 structure");
		goto out;
	}
	if (!PKCS7_type_is_signed(p7) || p7->d.sign == NULL) {
		rc = moat_err_set(err, MOAT_EINVAL, "the PKCS#7 answer is not SignedData");
		goto out;
	}
	STACK_OF(PKCS7_SIGNER_INFO) *si = PKCS7_get_signer_info(p7);
	if (si && sk_PKCS7_SIGNER_INFO_num(si) != 0) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "the PKCS#7 answer is not certs-only (it has "
				  "signers)");
		goto out;
	}
	STACK_OF(X509) *in = p7->d.sign->cert;
	int n = in ? sk_X509_num(in) : 0;
	if (n < 1 || n > MOAT_EST_CERTS_MAX) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "the PKCS#7 answer holds %d certificates (1 to %d expected)", n,
				  MOAT_EST_CERTS_MAX);
		goto out;
	}
	certs = sk_X509_new_null();
	if (!certs) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		X509 *c = sk_X509_value(in, i);
		if (!X509_up_ref(c) || !sk_X509_push(certs, c)) {
			rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
			goto out;
		}
	}
	*out = certs;
	certs = NULL;
out:
	sk_X509_pop_free(certs, X509_free);
	PKCS7_free(p7);
	free(text);
	free(der);
	return rc;
}

/* true when the subject has exactly one CN and it is id. */
static bool cn_is(X509 *c, const char *id)
{
	X509_NAME *name = X509_get_subject_name(c);
	int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (i < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0) {
		return false;
	}
	unsigned char *utf8 = NULL;
	int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
	bool ok = n >= 0 && (size_t)n == strlen(id) && memcmp(utf8, id, (size_t)n) == 0;
	OPENSSL_free(utf8);
	return ok;
}

int moat_est_check_issued(STACK_OF(X509) * certs, STACK_OF(X509) * untrusted, X509_STORE *roots,
			  EVP_PKEY *key, const char *id, int64_t now, X509 **out_leaf,
			  STACK_OF(X509) * *out_chain, struct moat_err *err)
{
	X509 *leaf = NULL;
	STACK_OF(X509) *others = sk_X509_new_null();
	STACK_OF(X509) *chain = NULL;
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int rc = 0;
	*out_leaf = NULL;
	*out_chain = NULL;
	if (!others || !ctx) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < sk_X509_num(certs); i++) {
		X509 *c = sk_X509_value(certs, i);
		EVP_PKEY *pk = X509_get0_pubkey(c);
		if (!leaf && pk && EVP_PKEY_eq(pk, key) == 1) {
			leaf = c;
		} else if (!sk_X509_push(others, c)) {
			rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
			goto out;
		}
	}
	for (int i = 0; untrusted && i < sk_X509_num(untrusted); i++) {
		if (!sk_X509_push(others, sk_X509_value(untrusted, i))) {
			rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
			goto out;
		}
	}
	if (!leaf) {
		rc = moat_err_set(err, MOAT_EVERIFY,
				  "the server returned no certificate for this device's key");
		goto out;
	}
	if (!cn_is(leaf, id)) {
		rc = moat_err_set(err, MOAT_EVERIFY,
				  "the certificate returned does not name this device (CN is not "
				  "%s)",
				  id);
		goto out;
	}
	if (X509_check_ca(leaf) != 0) {
		rc = moat_err_set(err, MOAT_EVERIFY,
				  "the certificate returned is a CA certificate");
		goto out;
	}
	if (!X509_STORE_CTX_init(ctx, roots, leaf, others)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "certificate verification setup");
		goto out;
	}
	X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_time(vp, (time_t)now);
	X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_X509_STRICT);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
	if (X509_verify_cert(ctx) != 1) {
		int e = X509_STORE_CTX_get_error(ctx);
		rc = moat_err_set(err, MOAT_EVERIFY,
				  "the certificate returned does not verify against the pinned "
				  "root CA: %s",
				  X509_verify_cert_error_string(e));
		goto out;
	}
	STACK_OF(X509) *full = X509_STORE_CTX_get1_chain(ctx);
	if (!full) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	/* leaf, intermediates..., root: keep the intermediates */
	X509 *root = sk_X509_pop(full);
	X509_free(root);
	X509 *first = sk_X509_shift(full);
	X509_free(first);
	chain = full;
	if (!X509_up_ref(leaf)) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	*out_leaf = leaf;
	*out_chain = chain;
	chain = NULL;
out:
	sk_X509_pop_free(chain, X509_free);
	sk_X509_free(others);
	X509_STORE_CTX_free(ctx);
	return rc;
}

int moat_est_key_new(EVP_PKEY **out, struct moat_err *err)
{
	return moat_key_generate(MOAT_KEY_EC_P256, out, err);
}

int moat_est_csr(EVP_PKEY *key, const char *id, unsigned char **out, size_t *out_len,
		 struct moat_err *err)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	unsigned char *der = NULL;
	int rc = 0;
	*out = NULL;
	*out_len = 0;
	if (!req || !name ||
	    !X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
					(const unsigned char *)id, -1, -1, 0) ||
	    !X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
	    !X509_REQ_set_subject_name(req, name) || !X509_REQ_set_pubkey(req, key) ||
	    X509_REQ_sign(req, key, EVP_sha256()) <= 0) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "certificate request for %s", id);
		goto out;
	}
	int n = i2d_X509_REQ(req, &der);
	if (n <= 0) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "certificate request for %s", id);
		goto out;
	}
	*out = malloc((size_t)n);
	if (!*out) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(*out, der, (size_t)n);
	*out_len = (size_t)n;
out:
	OPENSSL_free(der);
	X509_NAME_free(name);
	X509_REQ_free(req);
	return rc;
}

int moat_est_request(const char *host_header, const char *op, const char *user,
		     const char *password, const unsigned char *csr, size_t csr_len, char **out,
		     size_t *out_len, struct moat_err *err)
{
	enum { CRED = MOAT_EST_TOKEN_MAX_LEN + 80, ENC = 4 * ((CRED + 2) / 3) + 1 };
	char auth[ENC + 32] = "";
	char *b64 = NULL;
	*out = NULL;
	*out_len = 0;
	if (user && password) {
		char cred[CRED];
		int n = snprintf(cred, sizeof(cred), "%s:%s", user, password);
		if (n < 0 || (size_t)n >= sizeof(cred) || strchr(user, ':')) {
			OPENSSL_cleanse(cred, sizeof(cred));
			return moat_err_set(err, MOAT_EINVAL,
					    "EST credentials too long or malformed");
		}
		char enc[ENC];
		moat_b64_encode((const unsigned char *)cred, (size_t)n, enc);
		snprintf(auth, sizeof(auth), "Authorization: Basic %s\r\n", enc);
		OPENSSL_cleanse(cred, sizeof(cred));
		OPENSSL_cleanse(enc, sizeof(enc));
	}
	size_t blen = csr ? 4 * ((csr_len + 2) / 3) : 0;
	if (csr) {
		b64 = malloc(blen + 1);
		if (!b64) {
			OPENSSL_cleanse(auth, sizeof(auth));
			return moat_err_set(err, MOAT_ENOMEM, "out of memory");
		}
		moat_b64_encode(csr, csr_len, b64);
	}
	size_t size = strlen(host_header) + strlen(op) + strlen(auth) + blen + 512;
	char *buf = malloc(size);
	int n = -1;
	if (buf) {
		if (csr) {
			n = snprintf(buf, size,
				     "POST " MOAT_EST_PATH_PREFIX "%s HTTP/1.1\r\nHost: %s\r\n"
				     "User-Agent: moat-agent/" MOAT_VERSION "\r\n%s"
				     "Content-Type: application/pkcs10\r\n"
				     "Content-Transfer-Encoding: base64\r\n"
				     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
				     op, host_header, auth, blen, b64);
		} else {
			n = snprintf(buf, size,
				     "GET " MOAT_EST_PATH_PREFIX "%s HTTP/1.1\r\nHost: %s\r\n"
				     "User-Agent: moat-agent/" MOAT_VERSION "\r\n%s"
				     "Connection: close\r\n\r\n",
				     op, host_header, auth);
		}
	}
	OPENSSL_cleanse(auth, sizeof(auth));
	free(b64);
	if (!buf || n < 0 || (size_t)n >= size) {
		free(buf);
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	*out = buf;
	*out_len = (size_t)n;
	return 0;
}

int moat_est_url_parse(const char *url, char *host, size_t host_size, int *port,
		       struct moat_err *err)
{
	const char *p = url;
	*port = 443;
	if (strncmp(p, "https://", 8) != 0) {
		goto bad_url;
	}
	p += 8;
	const char *hs = p, *he;
	if (*p == '[') {
		hs = ++p;
		he = strchr(p, ']');
		if (!he) {
			goto bad_url;
		}
		p = he + 1;
	} else {
		while (*p && *p != ':') {
			p++;
		}
		he = p;
	}
	size_t hn = (size_t)(he - hs);
	if (hn == 0 || hn >= host_size) {
		goto bad_url;
	}
	for (const char *q = hs; q < he; q++) {
		char c = *q;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':';
		if (!ok || (c == ':' && hs == url + 8)) {
			goto bad_url;
		}
	}
	if (*p == ':') {
		uint64_t v = 0;
		if (!parse_uint(p + 1, strlen(p + 1), 65535, &v) || v == 0) {
			goto bad_url;
		}
		*port = (int)v;
	} else if (*p != '\0') {
		goto bad_url;
	}
	memcpy(host, hs, hn);
	host[hn] = '\0';
	return 0;
bad_url:
	return moat_err_set(err, MOAT_EINVAL, "'%.80s' is not https://host[:port]", url);
}

int moat_est_response_check(const char *op, const struct moat_http_response *r,
			    int64_t *retry_after_s, struct moat_err *err)
{
	*retry_after_s = 0;
	if (r->status == 200) {
		if (strcmp(r->content_type, "application/pkcs7-mime") != 0) {
			char ct[64];
			moat_text_escape(ct, sizeof(ct), r->content_type, strlen(r->content_type),
					 0, NULL);
			return moat_err_set(err, MOAT_EINVAL,
					    "EST %s: answered with Content-Type '%s', not "
					    "application/pkcs7-mime",
					    op, ct);
		}
		return 0;
	}
	if (r->status == 202) {
		int64_t s = r->retry_after_s;
		*retry_after_s = s < 1				  ? 60
				 : s > MOAT_EST_RETRY_AFTER_MAX_S ? MOAT_EST_RETRY_AFTER_MAX_S
								  : s;
		return moat_err_set(err, MOAT_ETIMEOUT, "EST %s: pending, retry after %llds", op,
				    (long long)*retry_after_s);
	}
	/* the server's reason: its body's first line, escaped and cut */
	size_t n = 0;
	while (n < r->body_len && n < MOAT_EST_REASON_MAX_LEN && r->body[n] != '\n' &&
	       r->body[n] != '\r') {
		n++;
	}
	char reason[MOAT_EST_REASON_MAX_LEN * 4 + 1];
	moat_text_escape(reason, sizeof(reason), (const char *)r->body, n, 0, NULL);
	return moat_err_set(err, MOAT_EDENIED, "EST %s: the server refused: HTTP %d%s%s", op,
			    r->status, reason[0] ? ": " : "", reason);
}
