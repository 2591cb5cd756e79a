/* testutil_pki.c: the fixtures of testutil_pki.h, linked only into the unit tests that
 * link moat_pki (tests/CMakeLists.txt, MOAT_TEST_FIXTURES). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "testutil_pki.h"

void tu_pki_issue_client(struct moat_ca *ca, const char *cn, enum moat_role role,
			 int64_t not_before, int64_t not_after,
			 const uint8_t serial[MOAT_SERIAL_BYTES], struct moat_issued *out)
{
	struct moat_err err;
	struct moat_issue_req req = {
		.cn = cn,
		.role = role,
		.kind = MOAT_CERT_CLIENT,
		.key_type = MOAT_KEY_EC_P256,
		.not_before = not_before,
		.not_after = not_after,
	};
	if (moat_pki_issue(ca, &req, serial, out, &err) != 0) {
		fail_msg("issue %s: %s", cn, err.msg);
	}
}

unsigned char *tu_csr_der(EVP_PKEY *key, EVP_PKEY *signer, const char *subject_cn,
			  const char *ext_conf, size_t *out_len)
{
	X509_REQ *req = X509_REQ_new();
	assert_non_null(req);
	assert_int_equal(X509_REQ_set_version(req, X509_REQ_VERSION_1), 1);
	X509_NAME *name = X509_NAME_new();
	assert_non_null(name);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
						    (const unsigned char *)"evil corp", -1, -1, 0),
			 1);
	if (subject_cn) {
		assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
							    (const unsigned char *)subject_cn, -1,
							    -1, 0),
				 1);
	}
	assert_int_equal(X509_REQ_set_subject_name(req, name), 1);
	X509_NAME_free(name);
	assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
	if (ext_conf) {
		/* requested extensions: "CA:TRUE" and serverAuth, which moat must ignore */
		STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
		X509V3_CTX ctx;
		X509V3_set_ctx(&ctx, NULL, NULL, req, NULL, 0);
		X509_EXTENSION *bc =
			X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
		X509_EXTENSION *eku =
			X509V3_EXT_conf_nid(NULL, &ctx, NID_ext_key_usage, "serverAuth");
		X509_EXTENSION *san =
			X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, ext_conf);
		assert_non_null(bc);
		assert_non_null(eku);
		assert_non_null(san);
		sk_X509_EXTENSION_push(exts, bc);
		sk_X509_EXTENSION_push(exts, eku);
		sk_X509_EXTENSION_push(exts, san);
		assert_int_equal(X509_REQ_add_extensions(req, exts), 1);
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	}
	const EVP_MD *md = EVP_PKEY_get_base_id(signer) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
	assert_true(X509_REQ_sign(req, signer, md) > 0);
	unsigned char *der = NULL;
	int n = i2d_X509_REQ(req, &der);
	assert_true(n > 0);
	X509_REQ_free(req);
	unsigned char *copy = malloc((size_t)n);
	assert_non_null(copy);
	memcpy(copy, der, (size_t)n);
	OPENSSL_free(der);
	*out_len = (size_t)n;
	return copy;
}
