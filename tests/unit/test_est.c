/* test_est.c: the device's EST client (src/device/est.c, enroll.c) without a network: the
 * HTTP response reader and each of its refusals, the PKCS#7 certs-only reader and each of
 * its refusals, every check an issued certificate must pass (a certificate for another key
 * or another CN, a CA, one that does not chain to the pinned root, expired, for servers
 * only), the server's refusals as errors, the CSR and the request text, the [enroll]
 * section of the agent's file, the renewal schedule and back-off, and the identity files
 * (a renewed identity replaces the current one only once it connected; a power failure at
 * any step leaves a working identity). Certificates are made here with OpenSSL itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "moat/agent_conf.h"
#include "moat/codec.h"
#include "moat/enroll.h"
#include "moat/est_client.h"
#include "moat/timeutil.h"
#include "testutil.h"

/* white-box: the identity files */
#include "../../src/device/enroll_internal.h"

static int64_t now_s(void)
{
	return moat_time_now();
}

/* ---- certificates made with OpenSSL directly ---- */

static X509 *make_cert(const char *cn, EVP_PKEY *pub, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
		       const char *eku, int64_t nb, int64_t na)
{
	static long serial = 1;
	X509 *c = X509_new();
	assert_non_null(c);
	assert_int_equal(X509_set_version(c, X509_VERSION_3), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
	X509_NAME *name = X509_get_subject_name(c);
	if (cn) {
		X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
					   (const unsigned char *)cn, -1, -1, 0);
	} else {
		X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8,
					   (const unsigned char *)"no cn", -1, -1, 0);
	}
	X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name);
	ASN1_TIME_set(X509_getm_notBefore(c), (time_t)nb);
	ASN1_TIME_set(X509_getm_notAfter(c), (time_t)na);
	X509_set_pubkey(c, pub);
	X509V3_CTX v3;
	X509V3_set_ctx(&v3, issuer ? issuer : c, c, NULL, NULL, 0);
	const char *exts[][2] = {
		{"basicConstraints", ca ? "critical,CA:TRUE" : "critical,CA:FALSE"},
		{"keyUsage", ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature"},
		{"subjectKeyIdentifier", "hash"},
		{"authorityKeyIdentifier", "keyid"},
		{"extendedKeyUsage", eku},
	};
	for (size_t i = 0; i < 5; i++) {
		if (!exts[i][1]) {
			continue;
		}
		X509_EXTENSION *ext = X509V3_EXT_conf(NULL, &v3, exts[i][0], exts[i][1]);
		assert_non_null(ext);
		X509_add_ext(c, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(c, issuer_key, EVP_sha256()) > 0);
	return c;
}

struct pki {
	EVP_PKEY *root_key, *int_key, *dev_key, *other_key;
	X509 *root, *inter, *other_root;
	X509_STORE *roots;
};

static void pki_make(struct pki *p)
{
	int64_t t = now_s();
	p->root_key = tu_key_p256();
	p->int_key = tu_key_p256();
	p->dev_key = tu_key_p256();
	p->other_key = tu_key_p256();
	p->root = make_cert("root", p->root_key, NULL, p->root_key, true, NULL, t - 100, t + 86400);
	p->inter = make_cert("issuing", p->int_key, p->root, p->root_key, true, NULL, t - 100,
			     t + 86400);
	p->other_root =
		make_cert("root", p->other_key, NULL, p->other_key, true, NULL, t - 100, t + 86400);
	p->roots = X509_STORE_new();
	X509_STORE_add_cert(p->roots, p->root);
}

static void pki_free(struct pki *p)
{
	EVP_PKEY_free(p->root_key);
	EVP_PKEY_free(p->int_key);
	EVP_PKEY_free(p->dev_key);
	EVP_PKEY_free(p->other_key);
	X509_free(p->root);
	X509_free(p->inter);
	X509_free(p->other_root);
	X509_STORE_free(p->roots);
}

/* A leaf for the device: CN, key, issued by the intermediate, clientAuth. */
static X509 *leaf_for(struct pki *p, const char *cn, EVP_PKEY *key)
{
	int64_t t = now_s();
	return make_cert(cn, key, p->inter, p->int_key, false, "clientAuth", t - 10, t + 3600);
}

static STACK_OF(X509) * stack_of(X509 *a, X509 *b)
{
	STACK_OF(X509) *s = sk_X509_new_null();
	if (a) {
		X509_up_ref(a);
		sk_X509_push(s, a);
	}
	if (b) {
		X509_up_ref(b);
		sk_X509_push(s, b);
	}
	return s;
}

/* base64 (64-column lines, as MIME writes) of a certs-only PKCS#7 of certs; or, with
 * signer, a PKCS#7 that has a signer. Caller frees. */
static char *p7_b64(STACK_OF(X509) * certs, X509 *signer, EVP_PKEY *signer_key, size_t *out_len)
{
	PKCS7 *p7;
	if (signer) {
		BIO *in = BIO_new_mem_buf("x", 1);
		p7 = PKCS7_sign(signer, signer_key, certs, in, PKCS7_BINARY);
		BIO_free(in);
	} else {
		p7 = PKCS7_new();
		PKCS7_set_type(p7, NID_pkcs7_signed);
		PKCS7_content_new(p7, NID_pkcs7_data);
		for (int i = 0; certs && i < sk_X509_num(certs); i++) {
			PKCS7_add_certificate(p7, sk_X509_value(certs, i));
		}
	}
	assert_non_null(p7);
	unsigned char *der = NULL;
	int n = i2d_PKCS7(p7, &der);
	assert_true(n > 0);
	PKCS7_free(p7);
	char *flat = malloc(4 * ((size_t)n + 2) / 3 + 4);
	moat_b64_encode(der, (size_t)n, flat);
	OPENSSL_free(der);
	size_t fl = strlen(flat);
	char *out = malloc(fl + fl / 64 * 2 + 4);
	size_t o = 0;
	for (size_t i = 0; i < fl; i++) {
		out[o++] = flat[i];
		if (i % 64 == 63) {
			out[o++] = '\r';
			out[o++] = '\n';
		}
	}
	out[o] = '\0';
	free(flat);
	*out_len = o;
	return out;
}

/* ---- HTTP ---- */

static int parse_text(const char *text, bool eof, struct moat_http_response *r,
		      struct moat_err *err)
{
	return moat_http_response_parse((const unsigned char *)text, strlen(text), eof, r, err);
}

static void test_http_good(void **state)
{
	(void)state;
	struct moat_http_response r;
	struct moat_err err;
	assert_int_equal(parse_text("HTTP/1.1 200 OK\r\nContent-Type: application/pkcs7-mime; "
				    "smime-type=certs-only\r\nContent-Length: 5\r\n\r\nhello",
				    false, &r, &err),
			 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type, "application/pkcs7-mime");
	assert_int_equal(r.body_len, 5);
	assert_memory_equal(r.body, "hello", 5);
	assert_int_equal(r.retry_after_s, -1);
	moat_http_response_free(&r);

	/* chunked, with an extension and a trailer */
	assert_int_equal(parse_text("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				    "3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\nX-T: 1\r\n\r\n",
				    false, &r, &err),
			 0);
	assert_int_equal(r.body_len, 5);
	assert_memory_equal(r.body, "hello", 5);
	moat_http_response_free(&r);

	/* a body that ends with the connection; an interim 100 first; Retry-After */
	assert_int_equal(parse_text("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 202 Accepted\r\n"
				    "Retry-After: 7\r\n\r\nwait",
				    true, &r, &err),
			 0);
	assert_int_equal(r.status, 202);
	assert_int_equal(r.retry_after_s, 7);
	assert_int_equal(r.body_len, 4);
	moat_http_response_free(&r);

	/* more bytes needed */
	const char *partial[] = {
		"HTTP/1.1 200 OK\r\nContent-Le",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n",
		"HTTP/1.1 200 OK\r\n\r\nno length yet",
		"HTT",
	};
	for (size_t i = 0; i < sizeof(partial) / sizeof(partial[0]); i++) {
		assert_int_equal(parse_text(partial[i], false, &r, &err), MOAT_HTTP_INCOMPLETE);
	}
}

static void test_http_refused(void **state)
{
	(void)state;
	struct moat_http_response r;
	struct moat_err err;
	struct {
		const char *text;
		bool eof;
		const char *why;
	} cases[] = {
		{"HTTP/2 200 OK\r\n\r\n", false, "status line"},
		{"HTTP/1.1 20 OK\r\n\r\n", false, "status line"},
		{"HTTP/1.1 600 OK\r\n\r\n", false, "status line"},
		{"HTTP/1.1 200OK\r\n\r\n", false, "status line"},
		{"SSH-2.0-x\r\n", false, "status line"},
		{"HTTP/1.1 200 O\x01K\r\n\r\n", false, "control byte"},
		{"HTTP/1.1 200 OK\r\nNo colon\r\n\r\n", false, "name: value"},
		{"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n", false, "name: value"},
		{"HTTP/1.1 200 OK\r\nX: a\x7f\r\n\r\n", false, "control byte"},
		{"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n", false, "folded"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", false,
		 "two different"},
		{"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, "Content-Length"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", false, "Content-Length"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		 false, "both"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, "Transfer-Encoding"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false,
		 "hexadecimal"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n123456789\r\n", false,
		 "hexadecimal"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n", false,
		 "CRLF"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nab\r\n", false,
		 "larger"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nextra", false,
		 "after the last chunk"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", true,
		 "chunk size line"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabc", false, "after the body"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabc", true, "shorter"},
		{"HTTP/1.1 204 No Content\r\n\r\nbody", false, "has none"},
		{"HTTP/1.1 200 OK\r\nX: 1\r\n", true, "do not end"},
		{"HTTP/1.1 101 Switching\r\n\r\n", false, "interim"},
		{"", true, "no status line"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		moat_err_clear(&err);
		int rc = parse_text(cases[i].text, cases[i].eof, &r, &err);
		if (rc != MOAT_EINVAL || !strstr(err.msg, cases[i].why)) {
			fail_msg("case %zu: rc %d, '%s' (expected '%s')", i, rc, err.msg,
				 cases[i].why);
		}
	}
	/* headers longer than the limit, with or without their end */
	size_t big = MOAT_EST_HEADERS_MAX_BYTES + 100;
	char *text = malloc(big + 64);
	snprintf(text, big + 64, "HTTP/1.1 200 OK\r\nX: ");
	size_t n = strlen(text);
	memset(text + n, 'a', big - n);
	text[big] = '\0';
	assert_int_equal(parse_text(text, false, &r, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "limit"));
	snprintf(text + big - 4, 64, "\r\n\r\n");
	assert_int_equal(parse_text(text, false, &r, &err), MOAT_EINVAL);
	free(text);
	/* a whole response over the limit */
	unsigned char *huge = calloc(1, MOAT_EST_RESPONSE_MAX_BYTES + 1);
	assert_int_equal(moat_http_response_parse(huge, MOAT_EST_RESPONSE_MAX_BYTES + 1, false, &r,
						  &err),
			 MOAT_EINVAL);
	free(huge);
}

static void test_response_check(void **state)
{
	(void)state;
	struct moat_http_response r = {.status = 200, .retry_after_s = -1};
	struct moat_err err;
	int64_t retry = 0;
	snprintf(r.content_type, sizeof(r.content_type), "application/pkcs7-mime");
	assert_int_equal(moat_est_response_check("simpleenroll", &r, &retry, &err), 0);
	snprintf(r.content_type, sizeof(r.content_type), "text/html");
	assert_int_equal(moat_est_response_check("simpleenroll", &r, &retry, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "text/html"));

	r.status = 202;
	assert_int_equal(moat_est_response_check("simpleenroll", &r, &retry, &err), MOAT_ETIMEOUT);
	assert_int_equal(retry, 60);
	r.retry_after_s = 10LL * MOAT_EST_RETRY_AFTER_MAX_S;
	assert_int_equal(moat_est_response_check("simpleenroll", &r, &retry, &err), MOAT_ETIMEOUT);
	assert_int_equal(retry, MOAT_EST_RETRY_AFTER_MAX_S);

	char body[] = "token used\x1b[31m\nsecond line";
	r.status = 401;
	r.body = (unsigned char *)body;
	r.body_len = strlen(body);
	assert_int_equal(moat_est_response_check("simpleenroll", &r, &retry, &err), MOAT_EDENIED);
	assert_non_null(strstr(err.msg, "HTTP 401: token used\\x1b[31m"));
	assert_null(strstr(err.msg, "second"));
	assert_null(strchr(err.msg, '\x1b'));
	r.status = 503;
	r.body_len = 0;
	assert_int_equal(moat_est_response_check("simplereenroll", &r, &retry, &err), MOAT_EDENIED);
	assert_non_null(strstr(err.msg, "simplereenroll: the server refused: HTTP 503"));
}

/* ---- PKCS#7 and the issued certificate ---- */

static void test_certs_parse(void **state)
{
	(void)state;
	struct pki p;
	struct moat_err err;
	STACK_OF(X509) *out = NULL;
	pki_make(&p);
	X509 *leaf = leaf_for(&p, "dev-1", p.dev_key);
	STACK_OF(X509) *two = stack_of(leaf, p.inter);
	size_t len = 0;
	char *b64 = p7_b64(two, NULL, NULL, &len);
	assert_int_equal(moat_est_certs_parse((unsigned char *)b64, len, &out, &err), 0);
	assert_int_equal(sk_X509_num(out), 2);
	sk_X509_pop_free(out, X509_free);

	/* refusals: not base64, not PKCS#7, bytes after it, with signers, no certificates,
	 * too many */
	const char *junk[] = {"", "!!!!", "aGVsbG8=", "MIIB"};
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(moat_est_certs_parse((const unsigned char *)junk[i],
						      strlen(junk[i]), &out, &err),
				 MOAT_EINVAL);
		assert_null(out);
	}
	/* trailing bytes after the DER: decode, append, encode again */
	{
		unsigned char der[8192];
		char flat[8192];
		size_t k = 0, dn = 0;
		for (size_t i = 0; i < len; i++) {
			if (b64[i] != '\r' && b64[i] != '\n') {
				flat[k++] = b64[i];
			}
		}
		assert_int_equal(moat_b64_decode(flat, k, der, sizeof(der) - 4, &dn), 0);
		memcpy(der + dn, "\x05\x00", 2);
		char again[12000];
		moat_b64_encode(der, dn + 2, again);
		assert_int_equal(moat_est_certs_parse((unsigned char *)again, strlen(again), &out,
						      &err),
				 MOAT_EINVAL);
		assert_non_null(strstr(err.msg, "one DER PKCS#7"));
	}
	free(b64);
	b64 = p7_b64(two, p.inter, p.int_key, &len);
	assert_int_equal(moat_est_certs_parse((unsigned char *)b64, len, &out, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "signers"));
	free(b64);
	b64 = p7_b64(NULL, NULL, NULL, &len);
	assert_int_equal(moat_est_certs_parse((unsigned char *)b64, len, &out, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "holds 0 certificates"));
	free(b64);
	STACK_OF(X509) *many = sk_X509_new_null();
	for (int i = 0; i < MOAT_EST_CERTS_MAX + 1; i++) {
		X509_up_ref(p.inter);
		sk_X509_push(many, p.inter);
	}
	b64 = p7_b64(many, NULL, NULL, &len);
	assert_int_equal(moat_est_certs_parse((unsigned char *)b64, len, &out, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "certificates (1 to"));
	free(b64);
	sk_X509_pop_free(many, X509_free);
	sk_X509_pop_free(two, X509_free);
	X509_free(leaf);
	pki_free(&p);
}

static int check(struct pki *p, STACK_OF(X509) * certs, STACK_OF(X509) * untrusted, EVP_PKEY *key,
		 const char *id, int64_t at, struct moat_err *err)
{
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	int rc = moat_est_check_issued(certs, untrusted, p->roots, key, id, at, &leaf, &chain, err);
	if (rc == 0) {
		assert_non_null(leaf);
		assert_int_equal(sk_X509_num(chain), 1); /* the issuing CA, not the root */
		assert_int_equal(X509_cmp(sk_X509_value(chain, 0), p->inter), 0);
		X509_free(leaf);
		sk_X509_pop_free(chain, X509_free);
	} else {
		assert_null(leaf);
		assert_null(chain);
	}
	return rc;
}

static void test_check_issued(void **state)
{
	(void)state;
	struct pki p;
	struct moat_err err;
	int64_t t = now_s();
	pki_make(&p);
	X509 *good = leaf_for(&p, "dev-1", p.dev_key);
	STACK_OF(X509) *s = stack_of(p.inter, good); /* any order */
	assert_int_equal(check(&p, s, NULL, p.dev_key, "dev-1", t, &err), 0);
	sk_X509_pop_free(s, X509_free);
	/* the issuing CA from cacerts instead of the answer */
	s = stack_of(good, NULL);
	STACK_OF(X509) *cacerts = stack_of(p.inter, p.root);
	assert_int_equal(check(&p, s, cacerts, p.dev_key, "dev-1", t, &err), 0);
	/* ... and without it the chain is incomplete */
	assert_int_equal(check(&p, s, NULL, p.dev_key, "dev-1", t, &err), MOAT_EVERIFY);
	assert_non_null(strstr(err.msg, "does not verify against the pinned root CA"));
	/* expired (checked at a time after notAfter), and not yet valid */
	assert_int_equal(check(&p, s, cacerts, p.dev_key, "dev-1", t + 7200, &err), MOAT_EVERIFY);
	assert_non_null(strstr(err.msg, "expired"));
	assert_int_equal(check(&p, s, cacerts, p.dev_key, "dev-1", t - 3600, &err), MOAT_EVERIFY);
	sk_X509_pop_free(s, X509_free);

	/* a certificate whose key is not ours */
	EVP_PKEY *stranger = tu_key_p256();
	X509 *theirs = leaf_for(&p, "dev-1", stranger);
	s = stack_of(theirs, p.inter);
	assert_int_equal(check(&p, s, NULL, p.dev_key, "dev-1", t, &err), MOAT_EVERIFY);
	assert_non_null(strstr(err.msg, "no certificate for this device's key"));
	sk_X509_pop_free(s, X509_free);
	/* our key, another CN; no CN; two CNs */
	X509 *other_cn = leaf_for(&p, "dev-2", p.dev_key);
	s = stack_of(other_cn, p.inter);
	assert_int_equal(check(&p, s, NULL, p.dev_key, "dev-1", t, &err), MOAT_EVERIFY);
	assert_non_null(strstr(err.msg, "does not name this device"));
	sk_X509_pop_free(s, X509_free);
	X509 *no_cn = make_cert(NULL, p.dev_key, p.inter, p.int_key, false, "clientAuth", t - 10,
				t + 3600);
	s = stack_of(no_cn, p.inter);
	assert_int_equal(check(&p, s, NULL, p.dev_key, "dev-1", t, &err), MOAT_EVERIFY);
	sk_X509_pop_free(s, X509_free);
	X509 *two_cn = leaf_for(&p, "dev-1", p.dev_key);
	X509_NAME_add_entry_by_NID(X509_get_subject_name(two_cn), NID_commonName, MBSTRING_UTF8,
				   (const unsigned char *)"dev-1", -1, -1, 0);
	X509_sign(two_cn, p.int_key, EVP_sha256());
	s = stack_of(two_cn, p.inter);
	assert_int_equal(check(&p, s, NULL, p.dev_key, "dev-1", t, &err), MOAT_EVERIFY);
	sk_X509_pop_free(s, X509_free);
	/* a CA certificate for our key */
	X509 *ca = make_cert("dev-1", p.dev_key, p.inter, p.int_key, true, NULL, t - 10, t + 3600);
	s = stack_of(ca, p.inter);
	assert_int_equal(check(&p, s, NULL, p.dev_key, "dev-1", t, &err), MOAT_EVERIFY);
	assert_non_null(strstr(err.msg, "CA certificate"));
	sk_X509_pop_free(s, X509_free);
	/* a server certificate (serverAuth only) */
	X509 *srv = make_cert("dev-1", p.dev_key, p.inter, p.int_key, false, "serverAuth", t - 10,
			      t + 3600);
	s = stack_of(srv, p.inter);
	assert_int_equal(check(&p, s, NULL, p.dev_key, "dev-1", t, &err), MOAT_EVERIFY);
	sk_X509_pop_free(s, X509_free);
	/* issued under another root with the same name */
	X509 *foreign = make_cert("dev-1", p.dev_key, p.other_root, p.other_key, false,
				  "clientAuth", t - 10, t + 3600);
	s = stack_of(foreign, p.other_root);
	assert_int_equal(check(&p, s, NULL, p.dev_key, "dev-1", t, &err), MOAT_EVERIFY);
	sk_X509_pop_free(s, X509_free);

	X509 *objs[] = {good, theirs, other_cn, no_cn, two_cn, ca, srv, foreign};
	for (size_t i = 0; i < sizeof(objs) / sizeof(objs[0]); i++) {
		X509_free(objs[i]);
	}
	sk_X509_pop_free(cacerts, X509_free);
	EVP_PKEY_free(stranger);
	pki_free(&p);
}

/* ---- the request ---- */

static void test_csr_and_request(void **state)
{
	(void)state;
	struct moat_err err;
	EVP_PKEY *key = NULL;
	unsigned char *csr = NULL;
	size_t csr_len = 0;
	assert_int_equal(moat_est_key_new(&key, &err), 0);
	assert_int_equal(moat_est_csr(key, "dev-1", &csr, &csr_len, &err), 0);
	const unsigned char *p = csr;
	X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)csr_len);
	assert_non_null(req);
	assert_ptr_equal(p, csr + csr_len);
	assert_int_equal(X509_REQ_verify(req, key), 1); /* proof of possession */
	char cn[64];
	assert_true(X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, cn,
					      sizeof(cn)) > 0);
	assert_string_equal(cn, "dev-1");
	assert_int_equal(X509_REQ_get_attr_count(req), 0); /* asks for nothing */
	X509_REQ_free(req);

	char *text = NULL;
	size_t len = 0;
	assert_int_equal(moat_est_request("h.example:8443", "simpleenroll", "dev-1", "s3cret", csr,
					  csr_len, &text, &len, &err),
			 0);
	assert_int_equal(strlen(text), len);
	assert_true(strncmp(text, "POST /.well-known/est/simpleenroll HTTP/1.1\r\n", 45) == 0);
	/* base64("dev-1:s3cret") */
	assert_non_null(strstr(text, "\r\nAuthorization: Basic ZGV2LTE6czNjcmV0\r\n"));
	assert_non_null(strstr(text, "\r\nContent-Type: application/pkcs10\r\n"));
	assert_non_null(strstr(text, "\r\nHost: h.example:8443\r\n"));
	const char *body = strstr(text, "\r\n\r\n") + 4;
	char cl[64];
	snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", strlen(body));
	assert_non_null(strstr(text, cl));
	unsigned char back[4096];
	size_t bl = 0;
	assert_int_equal(moat_b64_decode(body, strlen(body), back, sizeof(back), &bl), 0);
	assert_int_equal(bl, csr_len);
	assert_memory_equal(back, csr, csr_len);
	free(text);
	assert_int_equal(moat_est_request("h", "cacerts", NULL, NULL, NULL, 0, &text, &len, &err),
			 0);
	assert_true(strncmp(text, "GET /.well-known/est/cacerts HTTP/1.1\r\n", 39) == 0);
	assert_null(strstr(text, "Authorization"));
	free(text);
	/* a user with ':' cannot be said in Basic */
	assert_int_equal(moat_est_request("h", "simpleenroll", "a:b", "t", csr, csr_len, &text,
					  &len, &err),
			 MOAT_EINVAL);
	free(csr);
	EVP_PKEY_free(key);

	char host[64];
	int port = 0;
	assert_int_equal(moat_est_url_parse("https://moatd.example:8443", host, sizeof(host), &port,
					    &err),
			 0);
	assert_string_equal(host, "moatd.example");
	assert_int_equal(port, 8443);
	assert_int_equal(moat_est_url_parse("https://[::1]:9", host, sizeof(host), &port, &err), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 9);
	assert_int_equal(moat_est_url_parse("https://h", host, sizeof(host), &port, &err), 0);
	assert_int_equal(port, 443);
	const char *bad[] = {"http://h",   "https://",	    "https://h:0",  "https://h:65536",
			     "https://h/", "https://u@h",   "https://h:1x", "https://[::1",
			     "https://:1", "https://a::b:1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (moat_est_url_parse(bad[i], host, sizeof(host), &port, &err) != MOAT_EINVAL) {
			fail_msg("accepted %s", bad[i]);
		}
	}
}

/* ---- configuration and schedule ---- */

static int parse_conf(const char *text, struct moat_agent_conf *c, struct moat_err *err)
{
	return moat_agent_conf_parse("agent.conf", text, strlen(text), "/base", c, err);
}

#define HEAD "[agent]\nid = dev-1\nstate_dir = st\n[broker]\nhost = b.example\nca = ca.crt\n"

static void test_enroll_conf(void **state)
{
	(void)state;
	struct moat_agent_conf c;
	struct moat_err err;
	assert_int_equal(parse_conf(HEAD "[enroll]\nserver = https://m.example:8443\ntoken = "
					 "0123abcd\nrenew_at = 50%\nretry_min = 200ms\n",
				    &c, &err),
			 0);
	assert_true(c.enroll);
	assert_string_equal(c.enroll_url, "https://m.example:8443");
	assert_string_equal(c.enroll_token, "0123abcd");
	assert_string_equal(c.enroll_dir, "/base/st/identity");
	assert_string_equal(c.cert_file, "/base/st/identity/current/cert.pem");
	assert_string_equal(c.key_file, "/base/st/identity/current/key.pem");
	assert_int_equal(c.renew_percent, 50);
	assert_int_equal(c.enroll_retry_min_ms, 200);
	assert_int_equal(c.enroll_retry_max_ms, MOAT_AGENT_ENROLL_RETRY_MAX_DEFAULT_MS);
	/* written and read back the same (the token too: it is the operator's file) */
	char *text = NULL;
	size_t len = 0;
	struct moat_agent_conf c2;
	assert_int_equal(moat_agent_conf_format(&c, &text, &len, &err), 0);
	assert_null(strstr(text, "cert ="));
	assert_int_equal(moat_agent_conf_parse("again", text, len, NULL, &c2, &err), 0);
	assert_string_equal(c2.cert_file, c.cert_file);
	assert_string_equal(c2.enroll_token, c.enroll_token);
	assert_int_equal(c2.renew_percent, 50);
	free(text);

	assert_int_equal(parse_conf(HEAD "[enroll]\nserver = https://m\nclaim_cert = c.pem\n"
					 "claim_key = c.key\ndir = /var/id\n",
				    &c, &err),
			 0);
	assert_string_equal(c.claim_cert, "/base/c.pem");
	assert_string_equal(c.cert_file, "/var/id/current/cert.pem");
	assert_int_equal(c.renew_percent, MOAT_AGENT_RENEW_PERCENT_DEFAULT);

	struct {
		const char *text, *why;
	} bad[] = {
		{HEAD "[enroll]\ntoken = x\n", "server is missing"},
		{HEAD "[enroll]\nserver = http://m\ntoken = x\n", "https://host"},
		{HEAD "[enroll]\nserver = https://m\n", "needs one of"},
		{HEAD "[enroll]\nserver = https://m\ntoken = x\ntoken_file = t\n", "needs one of"},
		{HEAD "[enroll]\nserver = https://m\ntoken = x\nclaim_cert = c\nclaim_key = k\n",
		 "needs one of"},
		{HEAD "[enroll]\nserver = https://m\nclaim_cert = c\n", "needs one of"},
		{HEAD "[enroll]\nserver = https://m\ntoken = a\x01b\n", "printable"},
		{HEAD "[enroll]\nserver = https://m\ntoken = x\nrenew_at = 100%\n", "percentage"},
		{HEAD "[enroll]\nserver = https://m\ntoken = x\nrenew_at = 0\n", "percentage"},
		{HEAD "[enroll]\nserver = https://m\ntoken = x\nrenew_at = %\n", "percentage"},
		{HEAD "[enroll]\nserver = https://m\ntoken = x\nretry_min = 2s\nretry_max = 1s\n",
		 "retry_max is below"},
		{HEAD "[enroll]\nserver = https://m\ntoken = x\nbogus = 1\n", "bogus"},
		{HEAD "cert = c.pem\n[enroll]\nserver = https://m\ntoken = x\n",
		 "not given with [enroll]"},
		{"[agent]\nid = d\n[broker]\nhost = b\nca = c\n[enroll]\nserver = https://m\n"
		 "token = x\n",
		 "needs dir"},
		{"[agent]\nid = d\nstate_dir = s\n[broker]\nhost = b\n[enroll]\nserver = "
		 "https://m\ntoken = x\n",
		 "needs ca"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		moat_err_clear(&err);
		if (parse_conf(bad[i].text, &c, &err) == 0 || !strstr(err.msg, bad[i].why)) {
			fail_msg("case %zu: '%s' (expected '%s')", i, err.msg, bad[i].why);
		}
		assert_false(c.enroll);
	}
	/* a refused token is never echoed */
	assert_int_not_equal(parse_conf(HEAD "[enroll]\nserver = https://m\ntoken = s3cr\x01t\n",
					&c, &err),
			     0);
	assert_null(strstr(err.msg, "s3cr"));
}

static void test_schedule(void **state)
{
	(void)state;
	/* two thirds (67%) of 3000 s after 1000 */
	assert_int_equal(moat_enroll_renew_time(1000, 4000, 67), 1000 + 2010);
	assert_int_equal(moat_enroll_renew_time(0, 90, 50), 45);
	/* a lifetime whose product with the percentage would overflow naively */
	int64_t big = INT64_MAX / 2;
	assert_int_equal(moat_enroll_renew_time(0, big, 99), big / 100 * 99 + big % 100 * 99 / 100);
	/* out-of-range percentages are clamped; a reversed validity renews at once */
	assert_int_equal(moat_enroll_renew_time(0, 100, 0), 1);
	assert_int_equal(moat_enroll_renew_time(0, 100, 150), 99);
	assert_int_equal(moat_enroll_renew_time(500, 100, 50), 500);

	/* back-off: doubling from min to max, drawn in [d/2, d] */
	for (uint64_t r = 0; r < 50; r++) {
		int64_t d1 = moat_enroll_backoff_ms(1, 1000, 60000, -1, r * 7919);
		int64_t d3 = moat_enroll_backoff_ms(3, 1000, 60000, -1, r * 7919);
		int64_t d9 = moat_enroll_backoff_ms(9, 1000, 60000, -1, r * 7919);
		assert_true(d1 >= 500 && d1 <= 1000);
		assert_true(d3 >= 2000 && d3 <= 4000);
		assert_true(d9 >= 30000 && d9 <= 60000);
		/* near expiry: at most half the time left, at least min/2 */
		int64_t dn = moat_enroll_backoff_ms(9, 1000, 60000, 10000, r * 7919);
		assert_true(dn >= 500 && dn <= 5000);
		assert_int_equal(moat_enroll_backoff_ms(9, 1000, 60000, 0, r), 500);
	}
	assert_int_equal(moat_enroll_backoff_ms(1000, 1000, 60000, -1, 0), 30000);
}

/* ---- identity files ---- */

static char tmpdir[TU_TMPDIR_MAX];

/* Writes generation n of dir: a key and a certificate for it valid [nb, na]. */
static void write_gen(struct pki *p, const char *dir, int n, int64_t nb, int64_t na)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/gen-%d", dir, n);
	mkdir(path, 0700);
	EVP_PKEY *k = tu_key_p256();
	X509 *c = make_cert("dev-1", k, p->inter, p->int_key, false, "clientAuth", nb, na);
	BIO *b = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(b, c);
	char *pem;
	long pl = BIO_get_mem_data(b, &pem);
	snprintf(path, sizeof(path), "%s/gen-%d/cert.pem", dir, n);
	tu_write_file(path, pem, (size_t)pl, 0644);
	BIO_free(b);
	b = BIO_new(BIO_s_mem());
	PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	pl = BIO_get_mem_data(b, &pem);
	snprintf(path, sizeof(path), "%s/gen-%d/key.pem", dir, n);
	tu_write_file(path, pem, (size_t)pl, 0600);
	BIO_free(b);
	X509_free(c);
	EVP_PKEY_free(k);
}

static void link_to(const char *dir, const char *name, int n)
{
	char path[PATH_MAX], target[32];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(target, sizeof(target), "gen-%d", n);
	unlink(path);
	assert_int_equal(symlink(target, path), 0);
}

static int link_of(const char *dir, const char *name)
{
	char path[PATH_MAX], target[32];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0) {
		return 0;
	}
	target[n] = '\0';
	int64_t v = 0;
	assert_int_equal(moat_int_parse(target + 4, 1, 1000000, &v, NULL), 0);
	return (int)v;
}

static void conf_for(struct moat_agent_conf *c, const char dir[PATH_MAX / 2])
{
	moat_agent_conf_defaults(c);
	snprintf(c->id, sizeof(c->id), "dev-1");
	snprintf(c->enroll_url, sizeof(c->enroll_url), "https://127.0.0.1:1");
	snprintf(c->enroll_token, sizeof(c->enroll_token), "t");
	snprintf(c->enroll_dir, sizeof(c->enroll_dir), "%s", dir);
	snprintf(c->ca_file, sizeof(c->ca_file), "%s/ca.crt", dir);
	c->enroll = true;
	c->quiet = true;
}

static void test_identity_files(void **state)
{
	(void)state;
	struct pki p;
	struct moat_err err;
	struct moat_agent_conf c;
	struct moat_enroll *e = NULL;
	char dir[PATH_MAX / 2], path[PATH_MAX];
	const char *cert = NULL, *key = NULL;
	int64_t t = now_s();
	pki_make(&p);
	assert_int_equal(tu_tmpdir_make(tmpdir, sizeof(tmpdir), "est"), 0);
	snprintf(dir, sizeof(dir), "%s/id", tmpdir);
	conf_for(&c, dir);

	/* nothing yet: not ready, no identity to attempt with */
	assert_int_equal(moat_enroll_open(&c, &e, &err), 0);
	assert_false(moat_enroll_ready(e));
	assert_int_equal(moat_enroll_attempt(e, &cert, &key), MOAT_ENOENT);
	/* a key made ahead is 0600 in a generation of its own */
	assert_int_equal(moat_enroll_prepare(e, &err), 0);
	snprintf(path, sizeof(path), "%s/gen-1/key.pem", dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	moat_enroll_free(e);
	/* a power failure after the key, before the certificate: swept at the next start */
	assert_int_equal(moat_enroll_open(&c, &e, &err), 0);
	assert_int_equal(tu_dir_count(dir, "gen-"), 0);
	moat_enroll_free(e);

	/* current gen-1, a renewed gen-2 in next (power failure before it was proven), and
	 * a gen-3 no link names (a renewal cut short) */
	write_gen(&p, dir, 1, t - 100, t + 200);
	write_gen(&p, dir, 2, t - 10, t + 3600);
	write_gen(&p, dir, 3, t - 10, t + 3600);
	link_to(dir, "current", 1);
	link_to(dir, "next", 2);
	assert_int_equal(moat_enroll_open(&c, &e, &err), 0);
	assert_int_equal(tu_dir_count(dir, "gen-"), 2);
	assert_true(moat_enroll_ready(e));
	/* next first; after a failure, current; then next again */
	assert_int_equal(moat_enroll_attempt(e, &cert, &key), 0);
	assert_non_null(strstr(cert, "/gen-2/cert.pem"));
	assert_non_null(strstr(key, "/gen-2/key.pem"));
	moat_enroll_on_failed(e);
	assert_int_equal(moat_enroll_attempt(e, &cert, &key), 0);
	assert_non_null(strstr(cert, "/gen-1/cert.pem"));
	/* current got in where next failed: the broker is up; next is tried again at once */
	moat_enroll_on_connected(e);
	assert_true(moat_enroll_take_switch(e));
	assert_false(moat_enroll_take_switch(e));
	assert_int_equal(moat_enroll_attempt(e, &cert, &key), 0);
	assert_non_null(strstr(cert, "/gen-2/"));
	/* next connects: it becomes current, the old generation goes */
	moat_enroll_on_connected(e);
	assert_int_equal(link_of(dir, "current"), 2);
	assert_int_equal(link_of(dir, "next"), 0);
	assert_int_equal(tu_dir_count(dir, "gen-"), 1);
	assert_int_equal(moat_enroll_not_after(e), t + 3600);
	assert_int_equal(moat_enroll_attempt(e, &cert, &key), 0);
	assert_non_null(strstr(cert, "/gen-2/"));
	moat_enroll_free(e);

	/* a renewed identity the broker keeps refusing is dropped after three tries; the
	 * current one is kept */
	write_gen(&p, dir, 5, t - 10, t + 3600);
	link_to(dir, "next", 5);
	assert_int_equal(moat_enroll_open(&c, &e, &err), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(moat_enroll_attempt(e, &cert, &key), 0);
		assert_non_null(strstr(cert, "/gen-5/"));
		moat_enroll_on_failed(e);
		assert_int_equal(moat_enroll_attempt(e, &cert, &key), 0);
		assert_non_null(strstr(cert, "/gen-2/"));
		moat_enroll_on_connected(e);
	}
	assert_int_equal(link_of(dir, "next"), 0);
	assert_int_equal(link_of(dir, "current"), 2);
	assert_int_equal(tu_dir_count(dir, "gen-"), 1);
	moat_enroll_free(e);

	/* an unreadable current certificate is no identity */
	snprintf(path, sizeof(path), "%s/gen-2/cert.pem", dir);
	tu_write_text(path, "not a certificate\n");
	assert_int_equal(moat_enroll_open(&c, &e, &err), 0);
	assert_false(moat_enroll_ready(e));
	moat_enroll_free(e);

	/* no server listening: moat_enroll_now fails with a reason and leaves no new
	 * generation behind (the one current names stays) */
	assert_int_equal(unlink(path), 0);
	BIO *b = BIO_new_file(c.ca_file, "w");
	PEM_write_bio_X509(b, p.root);
	BIO_free(b);
	assert_int_equal(moat_enroll_open(&c, &e, &err), 0);
	assert_int_not_equal(moat_enroll_now(e, &err), 0);
	assert_non_null(strstr(err.msg, "EST simpleenroll"));
	moat_enroll_free(e);
	assert_int_equal(tu_dir_count(dir, "gen-"), 1);
	assert_int_equal(link_of(dir, "current"), 2);
	moat_est_cleanup();
	assert_int_equal(tu_tmpdir_remove(tmpdir), 0);
	pki_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_good),      cmocka_unit_test(test_http_refused),
		cmocka_unit_test(test_response_check), cmocka_unit_test(test_certs_parse),
		cmocka_unit_test(test_check_issued),   cmocka_unit_test(test_csr_and_request),
		cmocka_unit_test(test_enroll_conf),    cmocka_unit_test(test_schedule),
		cmocka_unit_test(test_identity_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
