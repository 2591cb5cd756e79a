/* test_identity.c: identity names, device types and roles (include/moat/identity.h), and
 * the identity a client certificate speaks for (client_cert.h). Identity names become
 * topic levels, paths and certificate CNs unescaped, so every character that could break
 * one of those must be refused; a certificate speaks for one only as a leaf with
 * clientAuth, one CN and one role. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "moat/client_cert.h"
#include "moat/identity.h"

static void test_names_ok(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"a", "0", "dev-001", "sensor.kitchen", "a_b", "9lives", "x-", "x.", "a..b",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct moat_err err;
		if (!moat_identity_name_ok(ok[i]) || moat_identity_name_check(ok[i], &err) != 0) {
			fail_msg("'%s' refused", ok[i]);
		}
	}
	char max[MOAT_ID_BUF_LEN];
	memset(max, 'a', MOAT_ID_MAX_LEN);
	max[MOAT_ID_MAX_LEN] = '\0';
	assert_true(moat_identity_name_ok(max));
}

static void test_names_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",	"Dev",	"dev/1", "dev+1",  "dev#1",  "dev 1", " dev",  "dev ",
		".dev", "-dev", "_dev",	 "dev\n",  "dev\t1", "dév",   "dev:1", "dev*",
		"dev$", "..",	".",	 "a/../b", "dev\\1", "dev\"", "dev'",  "DEVICE",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct moat_err err;
		moat_err_clear(&err);
		if (moat_identity_name_ok(bad[i])) {
			fail_msg("'%s' accepted", bad[i]);
		}
		assert_int_equal(moat_identity_name_check(bad[i], &err), MOAT_EINVAL);
		assert_int_equal(err.code, MOAT_EINVAL);
		assert_non_null(strstr(err.msg, "identity name"));
	}
	assert_false(moat_identity_name_ok(NULL));
	struct moat_err err;
	assert_int_equal(moat_identity_name_check(NULL, &err), MOAT_EINVAL);
	assert_string_equal(err.msg, "identity name is empty");
	assert_int_equal(moat_identity_name_check("Dev", &err), MOAT_EINVAL);
	assert_string_equal(err.msg,
			    "identity name 'Dev' is invalid: use [a-z0-9][a-z0-9._-]{0,63}");
	/* 65 characters */
	char long_name[MOAT_ID_MAX_LEN + 2];
	memset(long_name, 'a', MOAT_ID_MAX_LEN + 1);
	long_name[MOAT_ID_MAX_LEN + 1] = '\0';
	assert_false(moat_identity_name_ok(long_name));
	assert_int_equal(moat_identity_name_check(long_name, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "longer than 64 characters"));
	/* the message must stay one line even when the name carries a newline */
	assert_int_equal(moat_identity_name_check("evil\nname", &err), MOAT_EINVAL);
	assert_null(strchr(err.msg, '\n'));
}

/* audit-... belongs to moat audit --live: valid names, refused for anything new. */
static void test_reserved_names(void **state)
{
	(void)state;
	struct moat_err err;
	assert_true(moat_identity_reserved("audit-0a1b2c3d"));
	assert_true(moat_identity_reserved("audit-x-v"));
	assert_false(moat_identity_reserved("audit"));
	assert_false(moat_identity_reserved("auditor-1"));
	assert_false(moat_identity_reserved("my-audit-1"));
	assert_false(moat_identity_reserved(NULL));
	assert_int_equal(moat_identity_name_check("audit-0a1b2c3d", &err), 0);
	assert_int_equal(moat_identity_new_name_check("audit-0a1b2c3d", &err), MOAT_EINVAL);
	assert_string_equal(err.msg, "identity name 'audit-0a1b2c3d': the prefix 'audit-' is "
				     "reserved for moat audit --live's throwaway identities");
	assert_int_equal(moat_identity_new_name_check("auditor-1", &err), 0);
	assert_int_equal(moat_identity_new_name_check("Audit-1", &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "is invalid"));
}

static void test_device_type(void **state)
{
	(void)state;
	struct moat_err err;
	assert_int_equal(moat_device_type_check("temperature_sensor", &err), 0);
	assert_int_equal(moat_device_type_check("esp32", &err), 0);
	assert_int_equal(moat_device_type_check("", &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "device type"));
	assert_int_equal(moat_device_type_check("ESP32", &err), MOAT_EINVAL);
	assert_int_equal(moat_device_type_check("a/b", &err), MOAT_EINVAL);
	assert_int_equal(moat_device_type_check(NULL, &err), MOAT_EINVAL);
	char t[MOAT_DEVICE_TYPE_MAX_LEN + 2];
	memset(t, 't', sizeof(t) - 1);
	t[sizeof(t) - 1] = '\0';
	assert_int_equal(moat_device_type_check(t, &err), MOAT_EINVAL);
	t[MOAT_DEVICE_TYPE_MAX_LEN] = '\0';
	assert_int_equal(moat_device_type_check(t, &err), 0);
}

/* Every form the account rule refuses ([server] user, [agent] user), each with the reason
 * it gives, and the forms it accepts. */
static void test_account_names(void **state)
{
	(void)state;
	struct moat_err err;
	static const struct {
		const char *name;
		const char *msg;
	} bad[] = {
		{"", "1 to 32"},
		{"a23456789012345678901234567890123", "1 to 32"},
		{"Moat", "only [a-z0-9_.-]"},
		{"mo at", "only [a-z0-9_.-]"},
		{"mo/at", "only [a-z0-9_.-]"},
		{"mo\nat", "only [a-z0-9_.-]"},
		{"m\xc3\xb6"
		 "at",
		 "only [a-z0-9_.-]"},
		{"moat$", "only [a-z0-9_.-]"},
		{"-moat", "cannot start with '-'"},
		{"1000", "all digits"},
		{"0", "all digits"},
		{".", "not an account name"},
		{"..", "not an account name"},
		{"root", "must not run as root"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		moat_err_clear(&err);
		if (moat_account_name_check(bad[i].name, &err) != MOAT_EINVAL) {
			fail_msg("account name '%s' accepted", bad[i].name);
		}
		if (!strstr(err.msg, bad[i].msg)) {
			fail_msg("account name '%s': '%s' does not say '%s'", bad[i].name, err.msg,
				 bad[i].msg);
		}
		assert_null(strchr(err.msg, '\n'));
	}
	static const char *const ok[] = {"moat",
					 "moat-svc_1.x",
					 "_moat",
					 "m",
					 "1a",
					 "...",
					 "a2345678901234567890123456789012"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (moat_account_name_check(ok[i], &err) != 0) {
			fail_msg("account name '%s' refused: %s", ok[i], err.msg);
		}
	}
}

static void test_roles(void **state)
{
	(void)state;
	struct moat_err err;
	enum moat_role role = MOAT_ROLE_DEVICE;
	assert_string_equal(moat_role_name(MOAT_ROLE_DEVICE), "device");
	assert_string_equal(moat_role_name(MOAT_ROLE_SERVICE), "service");
	assert_string_equal(moat_role_name(MOAT_ROLE_OPERATOR), "operator");
	assert_string_equal(moat_role_name((enum moat_role)MOAT_ROLE_COUNT), "unknown");
	assert_string_equal(moat_role_name((enum moat_role) - 1), "unknown");
	for (int i = 0; i < MOAT_ROLE_COUNT; i++) {
		assert_int_equal(moat_role_parse(moat_role_name((enum moat_role)i), &role, &err),
				 0);
		assert_int_equal(role, i);
	}
	role = MOAT_ROLE_SERVICE;
	assert_int_equal(moat_role_parse("admin", &role, &err), MOAT_EINVAL);
	assert_string_equal(err.msg, "unknown role 'admin' (device, service or operator)");
	assert_int_equal(role, MOAT_ROLE_SERVICE);
	assert_int_equal(moat_role_parse("Device", &role, &err), MOAT_EINVAL);
	assert_int_equal(moat_role_parse("", &role, &err), MOAT_EINVAL);
	assert_int_equal(moat_role_parse(NULL, &role, &err), MOAT_EINVAL);
}

/* A self-signed certificate with subject entries "CN=a", "OU=device"... (NULL-terminated
 * pairs) and the extensions given (NULL: left out). */
static X509 *make_cert(const char *const *subject, const char *bc, const char *ku, const char *eku)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = X509_new();
	assert_non_null(key);
	assert_non_null(cert);
	assert_int_equal(X509_set_version(cert, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 7);
	X509_gmtime_adj(X509_getm_notBefore(cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
	X509_NAME *name = X509_get_subject_name(cert);
	for (size_t i = 0; subject[i]; i += 2) {
		assert_int_equal(X509_NAME_add_entry_by_txt(name, subject[i], MBSTRING_UTF8,
							    (const unsigned char *)subject[i + 1],
							    -1, -1, 0),
				 1);
	}
	assert_int_equal(X509_set_issuer_name(cert, name), 1);
	assert_int_equal(X509_set_pubkey(cert, key), 1);
	const int nids[] = {NID_basic_constraints, NID_key_usage, NID_ext_key_usage};
	const char *values[] = {bc, ku, eku};
	for (size_t i = 0; i < 3; i++) {
		if (!values[i]) {
			continue;
		}
		X509V3_CTX ctx;
		X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
		X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nids[i], values[i]);
		assert_non_null(ext);
		assert_int_equal(X509_add_ext(cert, ext, -1), 1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
	EVP_PKEY_free(key);
	return cert;
}

static enum moat_client_cert_fault cert_fault(const char *const *subject, const char *bc,
					      const char *ku, const char *eku, char *id,
					      enum moat_role *role)
{
	X509 *cert = make_cert(subject, bc, ku, eku);
	enum moat_client_cert_fault f = moat_client_cert_identity(cert, id, role);
	X509_free(cert);
	return f;
}

/* What moat_pki_issue writes is accepted; a CA, a server-only certificate, none or two
 * CNs, a CN that is no identity name, a missing or foreign role are not. */
static void test_client_cert(void **state)
{
	(void)state;
	static const char *const dev[] = {"O", "moat", "OU", "device", "CN", "dev-1", NULL};
	static const char *const svc[] = {"OU", "service", "CN", "backend", NULL};
	static const char *const two_cn[] = {"OU", "device", "CN", "dev-1", "CN", "dev-2", NULL};
	static const char *const no_cn[] = {"OU", "device", NULL};
	static const char *const bad_cn[] = {"OU", "device", "CN", "Dev 1", NULL};
	static const char *const no_ou[] = {"CN", "dev-1", NULL};
	static const char *const two_ou[] = {"OU", "device", "OU", "operator", "CN", "dev-1", NULL};
	static const char *const odd_ou[] = {"OU", "server", "CN", "dev-1", NULL};
	const char *leaf = "critical,CA:FALSE";
	const char *ku = "critical,digitalSignature";
	char id[MOAT_ID_BUF_LEN];
	enum moat_role role = MOAT_ROLE_OPERATOR;

	assert_int_equal(cert_fault(dev, leaf, ku, "clientAuth", id, &role), MOAT_CLIENT_CERT_OK);
	assert_string_equal(id, "dev-1");
	assert_int_equal(role, MOAT_ROLE_DEVICE);
	assert_int_equal(cert_fault(svc, leaf, ku, "serverAuth,clientAuth", id, &role),
			 MOAT_CLIENT_CERT_OK);
	assert_string_equal(id, "backend");
	assert_int_equal(role, MOAT_ROLE_SERVICE);
	assert_int_equal(cert_fault(dev, NULL, NULL, "clientAuth", id, &role), MOAT_CLIENT_CERT_OK);

	/* a CA certificate with the device's name */
	assert_int_equal(cert_fault(dev, "critical,CA:TRUE", "critical,keyCertSign,cRLSign",
				    "clientAuth", id, &role),
			 MOAT_CLIENT_CERT_NOT_LEAF);
	assert_string_equal(id, "dev-1"); /* the name it claims, for the record */
	assert_int_equal(cert_fault(dev, "CA:TRUE,pathlen:0", NULL, "clientAuth", id, &role),
			 MOAT_CLIENT_CERT_NOT_LEAF);
	/* CA:TRUE with a keyUsage lacking keyCertSign: X509_check_ca alone says "not a CA" */
	assert_int_equal(cert_fault(dev, "critical,CA:TRUE", ku, "clientAuth", id, &role),
			 MOAT_CLIENT_CERT_NOT_LEAF);
	assert_int_equal(cert_fault(dev, leaf, "digitalSignature,keyCertSign", "clientAuth", id,
				    &role),
			 MOAT_CLIENT_CERT_NOT_LEAF);
	/* the server's purpose only, or none said */
	assert_int_equal(cert_fault(dev, leaf, ku, "serverAuth", id, &role),
			 MOAT_CLIENT_CERT_NOT_CLIENT);
	assert_int_equal(cert_fault(dev, leaf, ku, NULL, id, &role), MOAT_CLIENT_CERT_NOT_CLIENT);
	assert_int_equal(cert_fault(dev, leaf, ku, "codeSigning,emailProtection", id, &role),
			 MOAT_CLIENT_CERT_NOT_CLIENT);
	/* names */
	assert_int_equal(cert_fault(two_cn, leaf, ku, "clientAuth", id, &role),
			 MOAT_CLIENT_CERT_BAD_NAME);
	assert_string_equal(id, "");
	assert_int_equal(cert_fault(no_cn, leaf, ku, "clientAuth", id, &role),
			 MOAT_CLIENT_CERT_BAD_NAME);
	assert_int_equal(cert_fault(bad_cn, leaf, ku, "clientAuth", id, &role),
			 MOAT_CLIENT_CERT_BAD_NAME);
	/* roles */
	assert_int_equal(cert_fault(no_ou, leaf, ku, "clientAuth", id, &role),
			 MOAT_CLIENT_CERT_BAD_ROLE);
	assert_string_equal(id, "dev-1");
	assert_int_equal(cert_fault(two_ou, leaf, ku, "clientAuth", id, &role),
			 MOAT_CLIENT_CERT_BAD_ROLE);
	assert_int_equal(cert_fault(odd_ou, leaf, ku, "clientAuth", id, &role),
			 MOAT_CLIENT_CERT_BAD_ROLE);

	assert_string_equal(moat_client_cert_fault_name(MOAT_CLIENT_CERT_NOT_LEAF),
			    "certificate_is_ca");
	assert_string_equal(moat_client_cert_fault_name(MOAT_CLIENT_CERT_NOT_CLIENT),
			    "not_a_client_certificate");
	assert_string_equal(moat_client_cert_fault_name((enum moat_client_cert_fault)99), "?");
}

/* Client ids: every refusal path of the suffix rule. */
static void test_client_ids(void **state)
{
	(void)state;
	const enum moat_role svc = MOAT_ROLE_SERVICE, op = MOAT_ROLE_OPERATOR;
	const enum moat_role dev = MOAT_ROLE_DEVICE;
	/* accepted */
	assert_int_equal(moat_client_id_check(dev, "dev-1", "dev-1"), MOAT_CLIENT_ID_OK);
	assert_int_equal(moat_client_id_check(svc, "svc", "svc"), MOAT_CLIENT_ID_OK);
	assert_int_equal(moat_client_id_check(svc, "svc", "svc:ingest"), MOAT_CLIENT_ID_OK);
	assert_int_equal(moat_client_id_check(op, "op", "op:cmd-1234"), MOAT_CLIENT_ID_OK);
	assert_int_equal(moat_client_id_check(op, "op", "op:-._9"), MOAT_CLIENT_ID_OK);
	assert_int_equal(moat_client_id_check(op, "op", "op:12345678901234567890123456789012"),
			 MOAT_CLIENT_ID_OK);
	/* the identity part */
	assert_int_equal(moat_client_id_check(svc, "svc", NULL), MOAT_CLIENT_ID_MISMATCH);
	assert_int_equal(moat_client_id_check(svc, NULL, "svc"), MOAT_CLIENT_ID_MISMATCH);
	assert_int_equal(moat_client_id_check(svc, "svc", ""), MOAT_CLIENT_ID_MISMATCH);
	assert_int_equal(moat_client_id_check(svc, "svc", "sv"), MOAT_CLIENT_ID_MISMATCH);
	assert_int_equal(moat_client_id_check(svc, "svc", "svc2"), MOAT_CLIENT_ID_MISMATCH);
	assert_int_equal(moat_client_id_check(svc, "svc", "svc2:x"), MOAT_CLIENT_ID_MISMATCH);
	assert_int_equal(moat_client_id_check(svc, "a", "b:x"), MOAT_CLIENT_ID_MISMATCH);
	assert_int_equal(moat_client_id_check(svc, "svc", "SVC"), MOAT_CLIENT_ID_MISMATCH);
	assert_int_equal(moat_client_id_check(svc, "svc", ":svc"), MOAT_CLIENT_ID_MISMATCH);
	assert_int_equal(moat_client_id_check(svc, "svc", "svc/x"), MOAT_CLIENT_ID_MISMATCH);
	assert_int_equal(moat_client_id_check(svc, "Bad", "Bad"), MOAT_CLIENT_ID_MISMATCH);
	assert_int_equal(moat_client_id_check(dev, "dev-1", "dev-10"), MOAT_CLIENT_ID_MISMATCH);
	/* devices: one session */
	assert_int_equal(moat_client_id_check(dev, "dev-1", "dev-1:x"),
			 MOAT_CLIENT_ID_SUFFIX_REFUSED);
	assert_int_equal(moat_client_id_check(dev, "dev-1", "dev-1:"),
			 MOAT_CLIENT_ID_SUFFIX_REFUSED);
	assert_int_equal(moat_client_id_check((enum moat_role)7, "a", "a:x"),
			 MOAT_CLIENT_ID_SUFFIX_REFUSED);
	/* the suffix */
	assert_int_equal(moat_client_id_check(op, "op", "op:"), MOAT_CLIENT_ID_BAD_SUFFIX);
	assert_int_equal(moat_client_id_check(op, "op", "op:123456789012345678901234567890123"),
			 MOAT_CLIENT_ID_BAD_SUFFIX);
	assert_int_equal(moat_client_id_check(op, "op", "op:A"), MOAT_CLIENT_ID_BAD_SUFFIX);
	assert_int_equal(moat_client_id_check(op, "op", "op:a:b"), MOAT_CLIENT_ID_BAD_SUFFIX);
	assert_int_equal(moat_client_id_check(op, "op", "op:a/b"), MOAT_CLIENT_ID_BAD_SUFFIX);
	assert_int_equal(moat_client_id_check(op, "op", "op:a b"), MOAT_CLIENT_ID_BAD_SUFFIX);
	assert_int_equal(moat_client_id_check(op, "op", "op:a\n"), MOAT_CLIENT_ID_BAD_SUFFIX);
	assert_int_equal(moat_client_id_check(svc, "svc", "svc:+"), MOAT_CLIENT_ID_BAD_SUFFIX);
	assert_int_equal(moat_client_id_check(svc, "svc", "svc:\xc3\xa9"),
			 MOAT_CLIENT_ID_BAD_SUFFIX);
	/* names */
	assert_string_equal(moat_client_id_verdict_name(MOAT_CLIENT_ID_OK), "ok");
	assert_string_equal(moat_client_id_verdict_name(MOAT_CLIENT_ID_MISMATCH),
			    "client_id_mismatch");
	assert_string_equal(moat_client_id_verdict_name(MOAT_CLIENT_ID_SUFFIX_REFUSED),
			    "client_id_suffix_refused");
	assert_string_equal(moat_client_id_verdict_name(MOAT_CLIENT_ID_BAD_SUFFIX),
			    "bad_client_id_suffix");
	assert_string_equal(moat_client_id_verdict_name((enum moat_client_id_verdict)9), "unknown");
}

static void test_client_id_build(void **state)
{
	(void)state;
	char buf[MOAT_CLIENT_ID_BUF_LEN];
	struct moat_err err = {0};
	assert_int_equal(moat_client_id_build("op", "cmd-1", buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "op:cmd-1");
	assert_int_equal(moat_client_id_check(MOAT_ROLE_OPERATOR, "op", buf), MOAT_CLIENT_ID_OK);
	assert_int_equal(moat_client_id_build("op", NULL, buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "op");
	assert_int_equal(moat_client_id_build("op", "", buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "op");
	assert_int_equal(moat_client_id_build("op", "Bad", buf, sizeof(buf), &err), MOAT_EINVAL);
	assert_string_equal(buf, "");
	assert_non_null(strstr(err.msg, "suffix is invalid"));
	assert_int_equal(moat_client_id_build("O", "x", buf, sizeof(buf), &err), MOAT_EINVAL);
	assert_int_equal(moat_client_id_build("op", "cmd-1", buf, 5, &err), MOAT_EINVAL);
	assert_string_equal(buf, "");
	assert_non_null(strstr(err.msg, "buffer too small"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_ok),	cmocka_unit_test(test_names_refused),
		cmocka_unit_test(test_reserved_names),	cmocka_unit_test(test_device_type),
		cmocka_unit_test(test_account_names),	cmocka_unit_test(test_roles),
		cmocka_unit_test(test_client_cert),	cmocka_unit_test(test_client_ids),
		cmocka_unit_test(test_client_id_build),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
