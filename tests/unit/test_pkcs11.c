/* test_pkcs11.c: pins moat/pkcs11.h. The RFC 7512 parser: what it accepts, what it decodes,
 * and every refusal (scheme, unknown, repeated and unsupported attributes, PIN attributes,
 * bad escapes, control characters, lengths). PIN files and $MOAT_PKCS11_PIN. And keys in a
 * real SoftHSM2 token the test makes in its own directory (softhsm2-util, pkcs11-tool): a
 * P-256 and an RSA key sign a certificate, a CRL and a message through the token, each
 * verified with OpenSSL; wrong PIN, no PIN, missing token, missing object, ambiguous keys,
 * a module that does not load and a public-only type are refused, one line each. */
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
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "moat/err.h"
#include "moat/pkcs11.h"
#include "testutil.h"

#define SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define PIN "4711-test-pin"

/* ---- the URI parser ---- */

static void parses(const char *text, struct moat_pkcs11_uri *u)
{
	struct moat_err err = {0};
	int rc = moat_pkcs11_uri_parse(text, u, &err);
	if (rc != 0) {
		fail_msg("%s: %s", text, err.msg);
	}
}

static void refused(const char *text, const char *needle)
{
	struct moat_err err = {0};
	struct moat_pkcs11_uri u;
	memset(&u, 0xa5, sizeof(u));
	assert_int_equal(moat_pkcs11_uri_parse(text, &u, &err), MOAT_EINVAL);
	if (!strstr(err.msg, needle)) {
		fail_msg("%s: message '%s' lacks '%s'", text ? text : "(null)", err.msg, needle);
	}
	assert_null(strchr(err.msg, '\n'));
	/* nothing half-parsed is left */
	assert_false(u.has_token || u.has_object || u.has_id || u.has_module_path);
	assert_int_equal(u.token[0], 0);
}

static void test_uri_accepts(void **state)
{
	(void)state;
	struct moat_pkcs11_uri u;
	parses("pkcs11:token=moat;object=issuer;type=private", &u);
	assert_true(u.has_token && u.has_object);
	assert_string_equal(u.token, "moat");
	assert_string_equal(u.object, "issuer");
	assert_int_equal(u.type, MOAT_PKCS11_TYPE_PRIVATE);
	assert_false(u.has_id || u.has_module_path || u.has_serial);

	parses("pkcs11:", &u); /* matches anything: the token and key must then be unique */
	assert_false(u.has_token || u.has_object);
	assert_int_equal(u.type, MOAT_PKCS11_TYPE_ANY);

	parses("PKCS11:object=a%20b%3Bc;id=%01%ff%0A;serial=12ab;model=SoftHSM%20v2;"
	       "manufacturer=SoftHSM%20project",
	       &u);
	assert_string_equal(u.object, "a b;c");
	assert_int_equal(u.id_len, 3);
	assert_memory_equal(u.id, "\x01\xff\x0a", 3); /* an id is bytes: any value */
	assert_string_equal(u.serial, "12ab");
	assert_string_equal(u.model, "SoftHSM v2");
	assert_string_equal(u.manufacturer, "SoftHSM project");

	parses("pkcs11:token=a&b:c@d?module-path=/usr/lib/softhsm/libsofthsm2.so", &u);
	assert_string_equal(u.token, "a&b:c@d");
	assert_true(u.has_module_path);
	assert_string_equal(u.module_path, SOFTHSM_MODULE);

	for (int t = 0; t < 4; t++) {
		static const char *const names[] = {"public", "cert", "secret-key", "data"};
		static const enum moat_pkcs11_type types[] = {MOAT_PKCS11_TYPE_PUBLIC,
							      MOAT_PKCS11_TYPE_CERT,
							      MOAT_PKCS11_TYPE_SECRET_KEY,
							      MOAT_PKCS11_TYPE_DATA};
		char text[64];
		snprintf(text, sizeof(text), "pkcs11:type=%s", names[t]);
		parses(text, &u);
		assert_int_equal(u.type, types[t]);
	}
	/* the longest values fit */
	char text[512];
	snprintf(text, sizeof(text), "pkcs11:token=%.32s;object=%.128s",
		 "0123456789abcdef0123456789abcdef",
		 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	parses(text, &u);
	assert_int_equal(strlen(u.token), MOAT_PKCS11_TOKEN_LABEL_MAX);
	assert_int_equal(strlen(u.object), MOAT_PKCS11_OBJECT_MAX);
}

static void test_uri_refusals(void **state)
{
	(void)state;
	refused(NULL, "none given");
	refused("", "must start with 'pkcs11:'");
	refused("pkcs11", "must start with 'pkcs11:'");
	refused("file:token=moat", "must start with 'pkcs11:'");
	refused("pkcs11:token=moat;token=other", "token given twice");
	refused("pkcs11:object=a;object=a", "object given twice");
	refused("pkcs11:id=%01;id=%01", "id given twice");
	refused("pkcs11:type=private;type=private", "type given twice");
	refused("pkcs11:?module-path=/a&module-path=/a", "module-path given twice");
	refused("pkcs11:tokn=moat", "unknown path attribute 'tokn'");
	refused("pkcs11:x-vendor=1", "unknown path attribute 'x-vendor'");
	refused("pkcs11:Token=moat", "is not one RFC 7512 defines");
	refused("pkcs11:=moat", "has no name");
	refused("pkcs11:token", "token has no '=value'");
	refused("pkcs11:token=", "token is empty");
	refused("pkcs11:token=moat;", "empty attribute");
	refused("pkcs11:;token=moat", "empty attribute");
	refused("pkcs11:token=moat?", "empty query");
	refused("pkcs11:token=moat?module-path=/a&", "empty attribute");
	refused("pkcs11:type=secret", "type 'secret' unknown");
	refused("pkcs11:slot-id=1", "slot-id is not supported");
	refused("pkcs11:library-manufacturer=x", "library-manufacturer is not supported");
	refused("pkcs11:token=moat?module-name=softhsm2", "module-name is not supported");
	refused("pkcs11:token=moat?pin-value=1234", "pin-value refused");
	refused("pkcs11:token=moat?pin-source=file:/pin", "pin-source refused");
	refused("pkcs11:token=moat?token=moat", "unknown query attribute 'token'");
	refused("pkcs11:object=a b", "character 0x20 must be percent-encoded");
	refused("pkcs11:object=a/b", "character 0x2f must be percent-encoded");
	refused("pkcs11:object=a?b=c", "unknown query attribute 'b'");
	refused("pkcs11:object=a#b", "'#' must be percent-encoded");
	refused("pkcs11:object=%4", "two hex digits");
	refused("pkcs11:object=%", "two hex digits");
	refused("pkcs11:object=%zz", "two hex digits");
	refused("pkcs11:object=a%00b", "control character 0x00");
	refused("pkcs11:object=a%0Ab", "control character 0x0a");
	refused("pkcs11:object=a%7Fb", "control character 0x7f");
	refused("pkcs11:object=\x01", "character 0x01 must be percent-encoded");
	refused("pkcs11:token=0123456789abcdef0123456789abcdef0", "token longer than 32 bytes");
	refused("pkcs11:model=0123456789abcdef0", "model longer than 16 bytes");
	refused("pkcs11:serial=0123456789abcdef0", "serial longer than 16 bytes");
	refused("pkcs11:manufacturer=0123456789abcdef0123456789abcdef0",
		"manufacturer longer than 32 bytes");
	char text[MOAT_PKCS11_URI_MAX + 16];
	memcpy(text, "pkcs11:object=", 14);
	memset(text + 14, 'a', MOAT_PKCS11_OBJECT_MAX + 1);
	text[14 + MOAT_PKCS11_OBJECT_MAX + 1] = '\0';
	refused(text, "object longer than 128 bytes");
	memcpy(text, "pkcs11:id=", 10);
	for (int i = 0; i <= MOAT_PKCS11_ID_MAX; i++) {
		memcpy(text + 10 + 3 * i, "%01", 3);
	}
	text[10 + 3 * (MOAT_PKCS11_ID_MAX + 1)] = '\0';
	refused(text, "id longer than 64 bytes");
	memset(text, 'a', sizeof(text) - 1);
	memcpy(text, "pkcs11:object=", 14);
	text[sizeof(text) - 1] = '\0';
	refused(text, "longer than 2048 characters");
}

static void test_uri_with_module(void **state)
{
	(void)state;
	struct moat_err err = {0};
	struct moat_pkcs11_uri u;
	char *s = NULL;
	assert_int_equal(moat_pkcs11_uri_with_module("pkcs11:token=moat;object=fw",
						     "/opt/my hsm/lib;p11.so", &s, &err),
			 0);
	assert_string_equal(s,
			    "pkcs11:token=moat;object=fw?module-path=/opt/my%20hsm/lib%3Bp11.so");
	parses(s, &u);
	assert_string_equal(u.module_path, "/opt/my hsm/lib;p11.so");
	free(s);
	assert_int_equal(moat_pkcs11_uri_with_module("pkcs11:object=fw?module-path=/a", "/b", &s,
						     &err),
			 MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "already has a module-path"));
	assert_null(s);
	assert_int_equal(moat_pkcs11_uri_with_module("pkcs11:object=fw", "", &s, &err),
			 MOAT_EINVAL);
	assert_int_equal(moat_pkcs11_uri_with_module("pkcs11:object=fw", "/a\nb", &s, &err),
			 MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "control character"));
	assert_int_equal(moat_pkcs11_uri_with_module("pkcs:object=fw", "/a", &s, &err),
			 MOAT_EINVAL);
	assert_null(s);
}

/* ---- PINs ---- */

static void test_pin_read(void **state)
{
	(void)state;
	char dir[TU_TMPDIR_MAX], path[TU_TMPDIR_MAX + 16], buf[MOAT_PKCS11_PIN_MAX + 1];
	struct moat_err err = {0};
	assert_int_equal(tu_tmpdir_make(dir, sizeof(dir), "pin"), 0);
	tu_path(path, sizeof(path), dir, "pin");

	tu_write_file(path, "1234\n", 5, 0600);
	assert_int_equal(setenv(MOAT_PKCS11_PIN_ENV, "from-env", 1), 0);
	assert_int_equal(moat_pkcs11_pin_read(path, buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "1234"); /* the file wins over the environment */
	assert_int_equal(moat_pkcs11_pin_read(NULL, buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "from-env");

	tu_write_file(path, "1234\n", 5, 0640);
	assert_int_equal(moat_pkcs11_pin_read(path, buf, sizeof(buf), &err), MOAT_EDENIED);
	assert_non_null(strstr(err.msg, "readable by others (chmod 600 it)"));
	assert_string_equal(buf, "");
	tu_write_file(path, "\n", 1, 0600);
	assert_int_equal(moat_pkcs11_pin_read(path, buf, sizeof(buf), &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "empty PKCS#11 PIN"));
	char longpin[MOAT_PKCS11_PIN_MAX + 2];
	memset(longpin, '7', sizeof(longpin) - 1);
	longpin[sizeof(longpin) - 1] = '\0';
	tu_write_file(path, longpin, strlen(longpin), 0600);
	assert_int_equal(moat_pkcs11_pin_read(path, buf, sizeof(buf), &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "longer than 256"));
	assert_int_equal(moat_pkcs11_pin_read(dir, buf, sizeof(buf), &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "not a regular file"));
	tu_path(path, sizeof(path), dir, "absent");
	assert_int_equal(moat_pkcs11_pin_read(path, buf, sizeof(buf), &err), MOAT_ENOENT);
	assert_non_null(strstr(err.msg, "absent"));

	assert_int_equal(setenv(MOAT_PKCS11_PIN_ENV, "", 1), 0);
	assert_int_equal(moat_pkcs11_pin_read(NULL, buf, sizeof(buf), &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "empty PKCS#11 PIN"));
	assert_int_equal(unsetenv(MOAT_PKCS11_PIN_ENV), 0);
	assert_int_equal(moat_pkcs11_pin_read(NULL, buf, sizeof(buf), &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "no PKCS#11 PIN"));
	assert_int_equal(tu_tmpdir_remove(dir), 0);
}

/* ---- keys in a SoftHSM2 token ---- */

struct token_ctx {
	char dir[TU_TMPDIR_MAX];
};

static int run(const char *fmt, ...) MOAT_PRINTF(1, 2);

static int run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd)) {
		return -1;
	}
	int st = system(cmd);
	if (st != 0) {
		fprintf(stderr, "test_pkcs11: '%s' failed (%d)\n", cmd, st);
	}
	return st == 0 ? 0 : -1;
}

/* A token "moat" with keys made inside it: "ec" (P-256, id 01), "rsa" (RSA-2048, id 02),
 * two keys labelled "twin" (ids 03, 04) and a token "other" with no keys. */
static int token_setup(void **state)
{
	if (access(SOFTHSM_MODULE, R_OK) != 0) {
		fprintf(stderr, "test_pkcs11: %s missing (apt-get install softhsm2)\n",
			SOFTHSM_MODULE);
		return -1;
	}
	if (tu_state_make(state, sizeof(struct token_ctx), "pkcs11") != 0) {
		return -1;
	}
	struct token_ctx *c = *state;
	char conf[TU_TMPDIR_MAX + 32];
	char text[TU_TMPDIR_MAX * 2];
	snprintf(conf, sizeof(conf), "%s/softhsm2.conf", c->dir);
	snprintf(text, sizeof(text),
		 "directories.tokendir = %s/tokens\nobjectstore.backend = file\n"
		 "log.level = ERROR\nslots.removable = false\n",
		 c->dir);
	tu_write_text(conf, text);
	snprintf(text, sizeof(text), "%s/tokens", c->dir);
	if (mkdir(text, 0700) != 0 || setenv("SOFTHSM2_CONF", conf, 1) != 0) {
		return -1;
	}
	const char *tool = "pkcs11-tool --module " SOFTHSM_MODULE
			   " --token-label moat --login --pin " PIN " >/dev/null";
	if (run("softhsm2-util --init-token --free --label moat --so-pin 0000-so --pin %s "
		">/dev/null",
		PIN) != 0 ||
	    run("softhsm2-util --init-token --free --label other --so-pin 0000-so --pin %s "
		">/dev/null",
		PIN) != 0 ||
	    run("%s --keypairgen --key-type EC:prime256v1 --label ec --id 01", tool) != 0 ||
	    run("%s --keypairgen --key-type rsa:2048 --label rsa --id 02", tool) != 0 ||
	    run("%s --keypairgen --key-type EC:prime256v1 --label twin --id 03", tool) != 0 ||
	    run("%s --keypairgen --key-type EC:prime256v1 --label twin --id 04", tool) != 0) {
		return -1;
	}
	return 0;
}

static int token_teardown(void **state)
{
	return tu_state_free(state);
}

static EVP_PKEY *load(const char *uri, const char *pin, int want_rc, const char *needle)
{
	struct moat_err err = {0};
	EVP_PKEY *key = NULL;
	struct moat_pkcs11_key_req req = {.uri = uri, .module = SOFTHSM_MODULE, .pin = pin};
	int rc = moat_pkcs11_key_load(&req, &key, &err);
	if (rc != want_rc) {
		fail_msg("%s: rc %d, want %d: %s", uri, rc, want_rc, err.msg);
	}
	if (needle && !strstr(err.msg, needle)) {
		fail_msg("%s: message '%s' lacks '%s'", uri, err.msg, needle);
	}
	assert_null(strchr(err.msg, '\n'));
	assert_int_equal(ERR_peek_error(), 0);
	if (rc == 0) {
		assert_non_null(key);
		assert_true(moat_pkcs11_key_in_token(key));
	} else {
		assert_null(key);
	}
	return key;
}

/* A public-only copy of key, made by OpenSSL, to verify what the token signed. */
static EVP_PKEY *public_of(EVP_PKEY *key)
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(key, &der);
	assert_true(len > 0);
	const unsigned char *p = der;
	EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, len);
	OPENSSL_free(der);
	assert_non_null(pub);
	assert_false(moat_pkcs11_key_in_token(pub));
	return pub;
}

/* The token's key signs a CA certificate, a certificate under it, a CRL and a message;
 * OpenSSL verifies each with the public key alone. */
static void signs_everything(EVP_PKEY *key)
{
	EVP_PKEY *pub = public_of(key);
	EVP_PKEY *leaf_key = tu_key_p256();
	X509_NAME *ca_name = X509_NAME_new();
	X509_NAME *leaf_name = X509_NAME_new();
	assert_true(X509_NAME_add_entry_by_txt(ca_name, "CN", MBSTRING_ASC,
					       (const unsigned char *)"token CA", -1, -1, 0));
	assert_true(X509_NAME_add_entry_by_txt(leaf_name, "CN", MBSTRING_ASC,
					       (const unsigned char *)"dev1", -1, -1, 0));
	X509 *ca = X509_new();
	X509 *leaf = X509_new();
	X509 *certs[2] = {ca, leaf};
	for (int i = 0; i < 2; i++) {
		assert_true(X509_set_version(certs[i], 2));
		assert_true(ASN1_INTEGER_set(X509_get_serialNumber(certs[i]), 10 + i));
		assert_true(X509_set_issuer_name(certs[i], ca_name));
		assert_non_null(X509_gmtime_adj(X509_getm_notBefore(certs[i]), -60));
		assert_non_null(X509_gmtime_adj(X509_getm_notAfter(certs[i]), 3600));
	}
	assert_true(X509_set_subject_name(ca, ca_name));
	assert_true(X509_set_subject_name(leaf, leaf_name));
	assert_true(X509_set_pubkey(ca, pub));
	assert_true(X509_set_pubkey(leaf, leaf_key));
	X509V3_CTX v3;
	X509V3_set_ctx(&v3, ca, ca, NULL, NULL, 0);
	X509_EXTENSION *bc =
		X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
	X509_EXTENSION *ku = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage,
						 "critical,keyCertSign,cRLSign,digitalSignature");
	assert_true(bc && ku && X509_add_ext(ca, bc, -1) && X509_add_ext(ca, ku, -1));
	X509_EXTENSION_free(bc);
	X509_EXTENSION_free(ku);
	assert_true(X509_sign(ca, key, EVP_sha256()) > 0);
	assert_true(X509_sign(leaf, key, EVP_sha256()) > 0);
	assert_int_equal(X509_verify(ca, pub), 1);
	assert_int_equal(X509_verify(leaf, pub), 1);

	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *sctx = X509_STORE_CTX_new();
	assert_true(X509_STORE_add_cert(store, ca));
	assert_true(X509_STORE_CTX_init(sctx, store, leaf, NULL));
	assert_int_equal(X509_verify_cert(sctx), 1);

	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *now = ASN1_TIME_adj(NULL, time(NULL), 0, 0);
	ASN1_TIME *next = ASN1_TIME_adj(NULL, time(NULL), 1, 0);
	assert_true(X509_CRL_set_version(crl, 1) && X509_CRL_set_issuer_name(crl, ca_name) &&
		    X509_CRL_set1_lastUpdate(crl, now) && X509_CRL_set1_nextUpdate(crl, next));
	X509_REVOKED *rev = X509_REVOKED_new();
	ASN1_INTEGER *serial = ASN1_INTEGER_new();
	assert_true(ASN1_INTEGER_set(serial, 11) && X509_REVOKED_set_serialNumber(rev, serial) &&
		    X509_REVOKED_set_revocationDate(rev, now) && X509_CRL_add0_revoked(crl, rev));
	assert_true(X509_CRL_sort(crl));
	assert_true(X509_CRL_sign(crl, key, EVP_sha256()) > 0);
	assert_int_equal(X509_CRL_verify(crl, pub), 1);

	static const unsigned char msg[] = "firmware manifest";
	unsigned char sig[512];
	size_t sig_len = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
	assert_int_equal(EVP_DigestSign(md, sig, &sig_len, msg, sizeof(msg)), 1);
	EVP_MD_CTX_free(md);
	md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub), 1);
	assert_int_equal(EVP_DigestVerify(md, sig, sig_len, msg, sizeof(msg)), 1);
	sig[sig_len / 2] ^= 1;
	assert_int_not_equal(EVP_DigestVerify(md, sig, sig_len, msg, sizeof(msg)), 1);
	ERR_clear_error();

	EVP_MD_CTX_free(md);
	ASN1_INTEGER_free(serial);
	ASN1_TIME_free(now);
	ASN1_TIME_free(next);
	X509_CRL_free(crl);
	X509_STORE_CTX_free(sctx);
	X509_STORE_free(store);
	X509_free(ca);
	X509_free(leaf);
	X509_NAME_free(ca_name);
	X509_NAME_free(leaf_name);
	EVP_PKEY_free(leaf_key);
	EVP_PKEY_free(pub);
}

static void test_token_ec_signs(void **state)
{
	(void)state;
	EVP_PKEY *key = load("pkcs11:token=moat;object=ec;type=private", PIN, 0, NULL);
	assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_bits(key), 256);
	signs_everything(key);
	/* a second reference outlives the first: the module stays loaded */
	assert_int_equal(EVP_PKEY_up_ref(key), 1);
	EVP_PKEY_free(key);
	signs_everything(key);
	EVP_PKEY_free(key);
	/* by id alone, and with the module named in the URI */
	key = load("pkcs11:token=moat;id=%01?module-path=" SOFTHSM_MODULE, PIN, 0, NULL);
	EVP_PKEY_free(key);
}

static void test_token_rsa_signs(void **state)
{
	(void)state;
	EVP_PKEY *key = load("pkcs11:token=moat;object=rsa", PIN, 0, NULL);
	assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_RSA);
	signs_everything(key);
	EVP_PKEY_free(key);
}

static void test_token_refusals(void **state)
{
	(void)state;
	load("pkcs11:token=moat;object=ec", "wrong-pin", MOAT_EDENIED, "token 'moat': wrong PIN");
	load("pkcs11:token=moat;object=ec", NULL, MOAT_EDENIED, "needs a PIN");
	load("pkcs11:token=absent;object=ec", PIN, MOAT_ENOENT,
	     "no initialized token matches token=absent");
	load("pkcs11:serial=0000;object=ec", PIN, MOAT_ENOENT, "'other'");
	load("pkcs11:serial=0000;object=ec", PIN, MOAT_ENOENT, "'moat'");
	load("pkcs11:object=ec", PIN, MOAT_EINVAL, "2 tokens match any token");
	load("pkcs11:token=moat;object=missing", PIN, MOAT_ENOENT, "no private key object=missing");
	load("pkcs11:token=other;object=ec", PIN, MOAT_ENOENT, "(0 private keys");
	load("pkcs11:token=moat;id=%09", PIN, MOAT_ENOENT, "no private key");
	load("pkcs11:token=moat;object=twin", PIN, MOAT_EINVAL, "2 private keys match");
	load("pkcs11:token=moat;object=ec;type=public", PIN, MOAT_EINVAL, "type=private");
	load("pkcs11:token=moat;object=ec;bogus=1", PIN, MOAT_EINVAL, "unknown path attribute");
	load("pkcs11:token=moat;object=ec?module-path=/elsewhere.so", PIN, MOAT_EINVAL,
	     "differs from the URI's module-path");
	/* one of the twins by id */
	EVP_PKEY *key = load("pkcs11:token=moat;object=twin;id=%04", PIN, 0, NULL);
	EVP_PKEY_free(key);

	struct moat_err err = {0};
	struct moat_pkcs11_key_req req = {.uri = "pkcs11:token=moat;object=ec", .pin = PIN};
	assert_int_equal(moat_pkcs11_key_load(&req, &key, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "no PKCS#11 module"));
	req.module = "/nonexistent/libp11-module.so";
	assert_int_equal(moat_pkcs11_key_load(&req, &key, &err), MOAT_EIO);
	assert_non_null(
		strstr(err.msg, "/nonexistent/libp11-module.so: does not load (cannot open"));
	assert_null(key);
	assert_false(moat_pkcs11_key_in_token(NULL));
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_uri_accepts),
		cmocka_unit_test(test_uri_refusals),
		cmocka_unit_test(test_uri_with_module),
		cmocka_unit_test(test_pin_read),
	};
	const struct CMUnitTest token[] = {
		cmocka_unit_test(test_token_ec_signs),
		cmocka_unit_test(test_token_rsa_signs),
		cmocka_unit_test(test_token_refusals),
	};
	int failed = cmocka_run_group_tests_name("pkcs11_uri", pure, NULL, NULL);
	failed += cmocka_run_group_tests_name("pkcs11_token", token, token_setup, token_teardown);
	return failed;
}
