/* test_audit.c: `moat audit` (include/moat/audit.h): the collector and its writers (the
 * JSON and SARIF 2.1.0 documents parsed back, their required properties checked), and the
 * logic of the static checks on a real deployment made here, each broken one way at a
 * time (src/audit/check_*.c). tests/e2e/test_audit.sh runs the command on a running one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/timex.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "../../src/audit/audit_internal.h"
#include "moat/audit.h"
#include "moat/broker.h"
#include "moat/deploy.h"
#include "moat/firmware.h"
#include "moat/fsutil.h"
#include "moat/manifest.h"
#include "moat/monitor_export.h"
#include "moat/net.h"
#include "moat/pki.h"
#include "moat/timeutil.h"
#include "moat/update_schema.h"
#include "testutil.h"

#define PASS "unit-test-passphrase"

static const struct moat_audit_check check_a = {"test.a", MOAT_AUDIT_HIGH, "check a", "row a",
						MOAT_OWASP_I3};
static const struct moat_audit_check check_b = {"test.b", MOAT_AUDIT_LOW, "check b", "row b",
						MOAT_OWASP_I7};

/* ---- the collector and the writers ---- */

static void test_severity(void **state)
{
	(void)state;
	enum moat_audit_severity s = MOAT_AUDIT_INFO;
	struct moat_err err = {0};
	assert_int_equal(moat_audit_severity_parse("--fail-on", "medium", &s, &err), 0);
	assert_int_equal(s, MOAT_AUDIT_MEDIUM);
	assert_string_equal(moat_audit_severity_name(MOAT_AUDIT_CRITICAL), "critical");
	assert_int_equal(moat_audit_severity_parse("--fail-on", "High", &s, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "--fail-on: 'High' is not a severity"));
	assert_int_equal(moat_audit_severity_parse("--fail-on", "", &s, &err), MOAT_EINVAL);
}

static char *render(int (*w)(FILE *, const struct moat_audit_result *, struct moat_err *),
		    const struct moat_audit_result *r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct moat_err err = {0};
	assert_non_null(f);
	assert_int_equal(w(f, r, &err), 0);
	fclose(f);
	return buf;
}

static int sarif_w(FILE *f, const struct moat_audit_result *r, struct moat_err *err)
{
	return moat_audit_write_sarif(f, r, "/srv/moat dir", err);
}

static void fill(struct moat_audit_result *r)
{
	moat_audit_result_init(r);
	assert_int_equal(moat_audit_ran(r, &check_b), 0);
	assert_int_equal(moat_audit_ran(r, &check_b), 0); /* once per id */
	/* a hostile title: an escape sequence, a newline, a quote, XML and invalid UTF-8 */
	assert_int_equal(moat_audit_add(r, &check_a, MOAT_AUDIT_CRITICAL,
					"bad \x1b[31m\"x\" <&> \xff\nforged", "ev", "moat fix",
					"broker/acl.conf", 7),
			 0);
	assert_int_equal(moat_audit_add(r, &check_a, MOAT_AUDIT_MEDIUM, "second", NULL, NULL, NULL,
					0),
			 0);
	assert_int_equal(moat_audit_cannot(r, &check_b, "tool missing"), 0);
}

static void test_collector(void **state)
{
	(void)state;
	struct moat_audit_result r;
	fill(&r);
	assert_int_equal(r.check_count, 2);
	assert_string_equal(r.checks[0]->id, "test.b");
	assert_int_equal(r.count, 3);
	assert_null(strchr(r.findings[0].title, '\x1b'));
	assert_null(strchr(r.findings[0].title, '\n'));
	assert_string_equal(r.findings[1].file, "");
	assert_string_equal(r.findings[2].title, "could not check: tool missing");
	assert_int_equal(r.findings[2].severity, MOAT_AUDIT_INFO);
	assert_int_equal(moat_audit_count_at_least(&r, MOAT_AUDIT_HIGH), 1);
	assert_int_equal(moat_audit_count_at_least(&r, MOAT_AUDIT_MEDIUM), 2);
	assert_int_equal(moat_audit_count_at_least(&r, MOAT_AUDIT_INFO), 3);
	char *text = render(moat_audit_write_text, &r);
	/* worst first, and the summary */
	assert_true(strstr(text, "CRITICAL test.a") < strstr(text, "MEDIUM   test.a"));
	assert_non_null(strstr(text, "where:    broker/acl.conf:7"));
	assert_non_null(strstr(text, "2 checks run, 3 findings: 1 critical, 0 high, 1 medium"));
	assert_null(strchr(text, '\x1b'));
	free(text);
	moat_audit_result_free(&r);
}

static void test_json(void **state)
{
	(void)state;
	struct moat_audit_result r;
	fill(&r);
	char *text = render(moat_audit_write_json, &r);
	cJSON *root = cJSON_Parse(text);
	assert_non_null(root);
	cJSON *f = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "findings"), 0);
	assert_string_equal(cJSON_GetObjectItem(f, "id")->valuestring, "test.a");
	assert_string_equal(cJSON_GetObjectItem(f, "severity")->valuestring, "critical");
	assert_string_equal(cJSON_GetObjectItem(f, "checklist")->valuestring, "row a");
	assert_string_equal(cJSON_GetObjectItem(f, "owasp")->valuestring, MOAT_OWASP_I3);
	assert_string_equal(cJSON_GetObjectItem(f, "fix")->valuestring, "moat fix");
	assert_int_equal(cJSON_GetObjectItem(f, "line")->valueint, 7);
	assert_non_null(strstr(cJSON_GetObjectItem(f, "title")->valuestring, "\"x\" <&>"));
	cJSON *sum = cJSON_GetObjectItem(root, "summary");
	assert_int_equal(cJSON_GetObjectItem(sum, "total")->valueint, 3);
	assert_int_equal(cJSON_GetObjectItem(sum, "critical")->valueint, 1);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(root, "checks")), 2);
	cJSON_Delete(root);
	free(text);
	moat_audit_result_free(&r);
}

static cJSON *item(cJSON *o, const char *k)
{
	cJSON *v = cJSON_GetObjectItem(o, k);
	if (!v) {
		fail_msg("SARIF: missing required property '%s'", k);
	}
	return v;
}

static void test_sarif(void **state)
{
	(void)state;
	struct moat_audit_result r;
	fill(&r);
	char *text = render(sarif_w, &r);
	cJSON *root = cJSON_Parse(text);
	assert_non_null(root);
	/* the properties SARIF 2.1.0 requires (sarif-schema-2.1.0.json "required") */
	assert_string_equal(item(root, "version")->valuestring, "2.1.0");
	cJSON *run = cJSON_GetArrayItem(item(root, "runs"), 0);
	cJSON *driver = item(item(run, "tool"), "driver");
	assert_string_equal(item(driver, "name")->valuestring, "moat");
	cJSON *rules = item(driver, "rules");
	assert_int_equal(cJSON_GetArraySize(rules), 2);
	cJSON *results = item(run, "results");
	assert_int_equal(cJSON_GetArraySize(results), 3);
	cJSON *res;
	cJSON_ArrayForEach(res, results)
	{
		const char *rule = item(res, "ruleId")->valuestring;
		int idx = item(res, "ruleIndex")->valueint;
		assert_string_equal(item(cJSON_GetArrayItem(rules, idx), "id")->valuestring, rule);
		assert_non_null(item(item(res, "message"), "text")->valuestring);
		const char *level = item(res, "level")->valuestring;
		assert_true(strcmp(level, "error") == 0 || strcmp(level, "warning") == 0 ||
			    strcmp(level, "note") == 0);
	}
	cJSON *first = cJSON_GetArrayItem(results, 0);
	cJSON *loc = item(item(cJSON_GetArrayItem(item(first, "locations"), 0), "physicalLocation"),
			  "artifactLocation");
	assert_string_equal(item(loc, "uri")->valuestring, "broker/acl.conf");
	assert_string_equal(item(loc, "uriBaseId")->valuestring, "DEPLOYDIR");
	assert_int_equal(item(item(item(cJSON_GetArrayItem(item(first, "locations"), 0),
					"physicalLocation"),
				   "region"),
			      "startLine")
				 ->valueint,
			 7);
	/* the base is a file URI with the space percent-encoded and a trailing slash */
	assert_string_equal(
		item(item(item(run, "originalUriBaseIds"), "DEPLOYDIR"), "uri")->valuestring,
		"file:///srv/moat%20dir/");
	/* a finding without a file has no location */
	assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(results, 1), "locations"));
	cJSON_Delete(root);
	free(text);
	moat_audit_result_free(&r);
}

static void test_junit(void **state)
{
	(void)state;
	struct moat_audit_result r;
	fill(&r);
	char *text = render(moat_audit_write_junit, &r);
	assert_non_null(strstr(text, "tests=\"2\" failures=\"1\""));
	assert_non_null(strstr(text, "<testcase classname=\"moat.audit\" name=\"test.a\">"));
	assert_non_null(strstr(text,
			       "<failure type=\"critical\" message=\"bad \\x1b[31m&quot;x&quot; "
			       "&lt;&amp;&gt;"));
	/* a check with only "could not check" is not a failure */
	const char *b = strstr(text, "name=\"test.b\"");
	assert_non_null(b);
	assert_true(strncmp(strstr(b, ">\n") + 2, "<system-out>", 12) == 0);
	free(text);
	moat_audit_result_free(&r);
}

static void test_first_diff(void **state)
{
	(void)state;
	char w[64], h[64];
	const char *a = "one\ntwo\nthree\n";
	assert_int_equal(audit_first_diff(a, strlen(a), a, strlen(a), NULL, w, h, sizeof(w)), 0);
	const char *b = "one\nTWO\nthree\n";
	assert_int_equal(audit_first_diff(a, strlen(a), b, strlen(b), NULL, w, h, sizeof(w)), 2);
	assert_string_equal(w, "two");
	assert_string_equal(h, "TWO");
	const char *c = "one\ntwo\nthree\nfour\n";
	assert_int_equal(audit_first_diff(a, strlen(a), c, strlen(c), NULL, w, h, sizeof(w)), 4);
	assert_string_equal(w, "(end of file)");
	const char *d = "one\nunban x 5\ntwo\nthree\n";
	assert_int_equal(audit_first_diff(a, strlen(a), d, strlen(d), "unban ", w, h, sizeof(w)),
			 0);
	assert_int_equal(audit_first_diff(a, strlen(a), d, strlen(d), NULL, w, h, sizeof(w)), 2);
}

static void test_weak_key(void **state)
{
	(void)state;
	char desc[96];
	EVP_PKEY *k = EVP_RSA_gen(1024);
	assert_non_null(k);
	assert_true(audit_weak_key(k, desc, sizeof(desc)));
	assert_string_equal(desc, "RSA 1024 bits");
	EVP_PKEY_free(k);
	k = EVP_RSA_gen(2048);
	assert_false(audit_weak_key(k, desc, sizeof(desc)));
	EVP_PKEY_free(k);
	k = EVP_EC_gen("secp384r1");
	assert_true(audit_weak_key(k, desc, sizeof(desc)));
	assert_string_equal(desc, "EC on secp384r1");
	EVP_PKEY_free(k);
	k = tu_key_p256();
	assert_false(audit_weak_key(k, desc, sizeof(desc)));
	EVP_PKEY_free(k);
	k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_false(audit_weak_key(k, desc, sizeof(desc)));
	EVP_PKEY_free(k);
}

/* A self-signed certificate on key, as DER (caller frees with OPENSSL_free). */
static int self_signed_der(EVP_PKEY *key, unsigned char **der)
{
	X509 *x = X509_new();
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"t", -1, -1, 0);
	assert_int_equal(X509_set_issuer_name(x, n), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	int ed = EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519;
	assert_true(X509_sign(x, key, ed ? NULL : EVP_sha256()) > 0);
	*der = NULL;
	int len = i2d_X509(x, der);
	assert_true(len > 0);
	X509_free(x);
	return len;
}

static void test_cert_scan(void **state)
{
	(void)state;
	struct {
		EVP_PKEY *key;
		bool weak;
		const char *desc;
	} cases[] = {
		{EVP_RSA_gen(1024), true, "RSA 1024 bits"},
		{EVP_EC_gen("secp384r1"), true, "EC on secp384r1"},
		{tu_key_p256(), false, NULL},
		{EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), false, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_non_null(cases[i].key);
		unsigned char *der = NULL;
		int len = self_signed_der(cases[i].key, &der);
		struct audit_cert_view v;
		assert_true(audit_cert_scan(der, (size_t)len, &v));
		/* the issuer is the subject (self-signed) and the key bits are the key's */
		assert_true(v.issuer_len > 0 && v.key_bits_len > 1);
		char desc[96] = "";
		assert_int_equal(audit_cert_weak_key(&v, desc, sizeof(desc)), cases[i].weak);
		if (cases[i].desc) {
			assert_string_equal(desc, cases[i].desc);
		}
		/* cut anywhere, it is refused, never read past */
		for (int cut = 0; cut < len; cut += 7) {
			unsigned char *part = malloc((size_t)cut + 1);
			memcpy(part, der, (size_t)cut);
			assert_false(audit_cert_scan(part, (size_t)cut, &v));
			free(part);
		}
		OPENSSL_free(der);
		EVP_PKEY_free(cases[i].key);
	}
}

/* ---- the checks, on a deployment ---- */

struct fixture {
	char root[TU_TMPDIR_MAX]; /* first: tu_state_make */
	char dir[TU_TMPDIR_MAX + 2];
	char plugin[TU_TMPDIR_MAX + 32];
	struct moat_deploy *d;
	struct moat_audit_result r;
};

static int setup(void **state)
{
	struct moat_err err = {0};
	assert_int_equal(tu_state_make(state, sizeof(struct fixture), "audit"), 0);
	struct fixture *f = *state;
	/* as root, the broker's files must be reachable by its user (broker.h) */
	assert_int_equal(chmod(f->root, 0711), 0);
	snprintf(f->dir, sizeof(f->dir), "%s/d", f->root);
	snprintf(f->plugin, sizeof(f->plugin), "%s/moat_broker.so", f->root);
	tu_write_file(f->plugin, "not loaded\n", 11, 0644);
	setenv(MOAT_BROKER_PLUGIN_ENV, f->plugin, 1);
	struct moat_init_opts io = {.dir = f->dir, .name = "unit", .now = moat_time_now()};
	assert_int_equal(moat_deploy_init(&io, PASS, &err), 0);
	assert_int_equal(moat_deploy_open(f->dir, MOAT_DEPLOY_WRITE, &f->d, &err), 0);
	struct moat_provision_req reqs[3] = {
		{.id = "dev-1", .role = MOAT_ROLE_DEVICE},
		{.id = "dev-2", .role = MOAT_ROLE_DEVICE},
		{.id = "svc-1", .role = MOAT_ROLE_SERVICE},
	};
	assert_int_equal(moat_deploy_provision(f->d, reqs, 3, NULL, NULL, &err), 0);
	struct moat_broker_settings s;
	assert_int_equal(moat_broker_settings_load(moat_deploy_config(f->d),
						   moat_deploy_settings(f->d), &s, &err),
			 0);
	int rc = moat_broker_write_all(f->d, &s, f->plugin, &err);
	if (rc != 0) {
		fail_msg("%s", err.msg);
	}
	moat_audit_result_init(&f->r);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	moat_audit_result_free(&f->r);
	moat_deploy_close(f->d);
	unsetenv(MOAT_BROKER_PLUGIN_ENV);
	assert_int_equal(tu_state_free(state), 0);
	return 0;
}

static void audit(struct fixture *f, int64_t window_s)
{
	struct moat_audit_opts o = {.now = moat_time_now(), .window_s = window_s};
	struct moat_err err = {0};
	moat_audit_result_free(&f->r);
	moat_audit_result_init(&f->r);
	int rc = moat_audit_static(f->d, &o, &f->r, &err);
	if (rc != 0) {
		fail_msg("audit: %s", err.msg);
	}
}

/* The findings of check id at or above sev. */
static size_t found(const struct fixture *f, const char *id, enum moat_audit_severity sev)
{
	size_t n = 0;
	for (size_t i = 0; i < f->r.count; i++) {
		if (strcmp(f->r.findings[i].check->id, id) == 0 &&
		    f->r.findings[i].severity >= sev) {
			n++;
		}
	}
	return n;
}

static const struct moat_audit_finding *finding(const struct fixture *f, const char *id)
{
	for (size_t i = 0; i < f->r.count; i++) {
		if (strcmp(f->r.findings[i].check->id, id) == 0) {
			return &f->r.findings[i];
		}
	}
	fail_msg("no finding %s", id);
	return NULL;
}

static void dump(const struct fixture *f)
{
	for (size_t i = 0; i < f->r.count; i++) {
		fprintf(stderr, "  %s %s: %s\n",
			moat_audit_severity_name(f->r.findings[i].severity),
			f->r.findings[i].check->id, f->r.findings[i].title);
	}
}

static void test_clean(void **state)
{
	struct fixture *f = *state;
	audit(f, 30 * 86400);
	if (moat_audit_count_at_least(&f->r, MOAT_AUDIT_HIGH) != 0) {
		dump(f);
		fail_msg("a fresh deployment has findings at high or above");
	}
	/* every static check ran */
	assert_int_equal(f->r.check_count, moat_audit_static_check_count);
	/* moat device add kept the devices' keys: custody findings, medium */
	assert_int_equal(found(f, "pki.key_custody", MOAT_AUDIT_MEDIUM), 2);
	/* no trust list yet */
	assert_int_equal(found(f, "fw.threshold", MOAT_AUDIT_LOW), 1);
}

static void test_window(void **state)
{
	struct fixture *f = *state;
	audit(f, 0);
	assert_int_equal(found(f, "pki.cert_expiry", MOAT_AUDIT_INFO), 0);
	/* identities last 730 days, the server certificate 825: a window of 800 days names
	 * the three identities, and 900 days the server certificate too */
	audit(f, 800LL * 86400);
	assert_int_equal(found(f, "pki.cert_expiry", MOAT_AUDIT_MEDIUM), 3);
	assert_int_equal(found(f, "pki.root_expiry", MOAT_AUDIT_INFO), 0);
	audit(f, 900LL * 86400);
	assert_int_equal(found(f, "pki.cert_expiry", MOAT_AUDIT_MEDIUM), 4);
	/* and the issuing CA (1825 days) within 2000 days */
	audit(f, 2000LL * 86400);
	assert_int_equal(found(f, "pki.issuer_expiry", MOAT_AUDIT_HIGH), 1);
}

static void test_cap(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	struct moat_provision_req reqs[AUDIT_PER_CHECK_MAX + 3];
	char names[AUDIT_PER_CHECK_MAX + 3][16];
	for (size_t i = 0; i < AUDIT_PER_CHECK_MAX + 3; i++) {
		snprintf(names[i], sizeof(names[i]), "bulk-%02zu", i);
		reqs[i] = (struct moat_provision_req){.id = names[i], .role = MOAT_ROLE_DEVICE};
	}
	assert_int_equal(moat_deploy_provision(f->d, reqs, AUDIT_PER_CHECK_MAX + 3, NULL, NULL,
					       &err),
			 0);
	assert_int_equal(moat_broker_write_derived(f->d, &err), 0);
	audit(f, 30 * 86400);
	/* 30 devices hold keys here: 25 findings, then one "and 5 more" */
	assert_int_equal(found(f, "pki.key_custody", MOAT_AUDIT_MEDIUM), AUDIT_PER_CHECK_MAX + 1);
	assert_non_null(strstr(f->r.findings[f->r.count - 1].title, "and 5 more"));
}

static void path_of(const struct fixture *f, char *buf, size_t size, const char *rel)
{
	snprintf(buf, size, "%s/%s", f->dir, rel);
}

static void test_ca_key_mode(void **state)
{
	struct fixture *f = *state;
	char p[600];
	path_of(f, p, sizeof(p), "pki/ca.key");
	assert_int_equal(chmod(p, 0644), 0);
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "pki.ca_key", MOAT_AUDIT_CRITICAL), 1);
	assert_string_equal(finding(f, "pki.ca_key")->evidence, "mode 0644");
	/* a key in the clear */
	assert_int_equal(chmod(p, 0600), 0);
	EVP_PKEY *k = tu_key_p256();
	FILE *out = fopen(p, "we");
	assert_non_null(out);
	assert_int_equal(PEM_write_PrivateKey(out, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(out);
	EVP_PKEY_free(k);
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "pki.ca_key", MOAT_AUDIT_CRITICAL), 1);
	assert_non_null(strstr(finding(f, "pki.ca_key")->title, "not encrypted"));
}

static void test_drift_acl(void **state)
{
	struct fixture *f = *state;
	char p[600];
	path_of(f, p, sizeof(p), MOAT_BROKER_ACL_FILE);
	size_t len = 0;
	char *text = tu_read_file(p, 1 << 20, &len);
	/* a grant of every topic, appended */
	char *more = malloc(len + 128);
	memcpy(more, text, len);
	const char *grant = "user dev-1\ntopic readwrite #\n";
	memcpy(more + len, grant, strlen(grant));
	tu_write_file(p, more, len + strlen(grant), 0640);
	audit(f, 30 * 86400);
	const struct moat_audit_finding *d = finding(f, "drift.acl");
	assert_int_equal(d->severity, MOAT_AUDIT_CRITICAL);
	assert_int_not_equal(d->line, 0);
	assert_non_null(strstr(d->evidence, "user dev-1"));
	const struct moat_audit_finding *g = finding(f, "broker.acl_grants");
	assert_non_null(strstr(g->title, "grants '#'"));
	/* a device granted another device's topics */
	const char *other = "user dev-1\ntopic read devices/dev-2/commands/#\n";
	memcpy(more + len, other, strlen(other));
	tu_write_file(p, more, len + strlen(other), 0640);
	audit(f, 30 * 86400);
	assert_non_null(strstr(finding(f, "broker.acl_grants")->title, "another identity"));
	free(more);
	free(text);
}

static void test_conf(void **state)
{
	struct fixture *f = *state;
	char p[600];
	path_of(f, p, sizeof(p), MOAT_BROKER_CONF_FILE);
	size_t len = 0;
	char *text = tu_read_file(p, 1 << 20, &len);
	/* anonymous allowed, require_certificate off, a plaintext listener */
	char *s = strstr(text, "allow_anonymous false");
	assert_non_null(s);
	memcpy(s, "allow_anonymous true ", 21);
	s = strstr(text, "require_certificate true");
	memcpy(s, "require_certificate fals", 24);
	char *more = malloc(len + 128);
	memcpy(more, text, len);
	memcpy(more + len, "listener 1883\n", 14);
	tu_write_file(p, more, len + 14, 0640);
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "drift.mosquitto_conf", MOAT_AUDIT_HIGH), 1);
	assert_int_equal(found(f, "broker.anonymous", MOAT_AUDIT_CRITICAL), 1);
	assert_int_equal(found(f, "broker.require_certificate", MOAT_AUDIT_CRITICAL), 1);
	assert_int_equal(found(f, "broker.plaintext_listener", MOAT_AUDIT_CRITICAL), 1);
	int lines = 0;
	for (size_t i = 0; i < len; i++) {
		lines += text[i] == '\n';
	}
	assert_int_equal(finding(f, "broker.plaintext_listener")->line, lines + 1);
	free(more);
	free(text);
}

static void test_revoked_in_policy(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	char p[600];
	path_of(f, p, sizeof(p), MOAT_POLICY_FILE_NAME);
	/* the policy as it was before the revocation, as if no sync had run */
	size_t len = 0;
	char *text = tu_read_file(p, 1 << 20, &len);
	assert_int_equal(moat_deploy_unlock(f->d, PASS, &err), 0);
	assert_int_equal(moat_deploy_revoke(f->d, "dev-2", 0, &err), 0);
	tu_write_file(p, text, len, 0640);
	free(text);
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "pki.revoked_in_policy", MOAT_AUDIT_CRITICAL), 1);
	assert_non_null(strstr(finding(f, "pki.revoked_in_policy")->title, "dev-2"));
	assert_int_equal(found(f, "drift.policy", MOAT_AUDIT_CRITICAL), 1);
	/* synced: both gone, and the CRL lists it */
	assert_int_equal(moat_broker_write_derived(f->d, &err), 0);
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "pki.revoked_in_policy", MOAT_AUDIT_INFO), 0);
	assert_int_equal(found(f, "drift.policy", MOAT_AUDIT_INFO), 0);
	assert_int_equal(found(f, "drift.crl", MOAT_AUDIT_INFO), 0);
}

static void test_crl(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	const struct moat_ca *ca = NULL;
	char p[600];
	path_of(f, p, sizeof(p), "pki/crl.pem");
	assert_int_equal(moat_deploy_signer(f->d, &ca, &err), 0);
	/* a CRL signed by the right CA whose nextUpdate is past, and which lists nothing */
	char *pem = NULL;
	size_t len = 0;
	int64_t now = moat_time_now();
	assert_int_equal(moat_pki_crl_build_until(ca, NULL, 0, 99, now - 7200, now - 3600, &pem,
						  &len, &err),
			 0);
	assert_int_equal(moat_deploy_unlock(f->d, PASS, &err), 0);
	assert_int_equal(moat_deploy_revoke(f->d, "dev-1", 0, &err), 0);
	tu_write_file(p, pem, len, 0644);
	free(pem);
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "pki.crl", MOAT_AUDIT_HIGH), 1);
	assert_non_null(strstr(finding(f, "pki.crl")->title, "stale"));
	assert_int_equal(found(f, "drift.crl", MOAT_AUDIT_CRITICAL), 1);
	/* garbage: does not verify */
	tu_write_text(p, "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n");
	audit(f, 30 * 86400);
	assert_non_null(strstr(finding(f, "pki.crl")->title, "does not verify"));
}

/* the findings of check id whose title holds needle */
static size_t titled(const struct fixture *f, const char *id, const char *needle)
{
	size_t n = 0;
	for (size_t i = 0; i < f->r.count; i++) {
		if (strcmp(f->r.findings[i].check->id, id) == 0 &&
		    strstr(f->r.findings[i].title, needle)) {
			n++;
		}
	}
	return n;
}

/* drift.crl the other way: what pki/crl.pem lists must be revoked in the registry, in the
 * CRL of the CA that issued it */
static void test_crl_lists(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	const struct moat_ca *ca = NULL;
	struct moat_identity id1;
	char p[600], cert[600], key[600];
	path_of(f, p, sizeof(p), "pki/crl.pem");
	assert_int_equal(moat_deploy_signer(f->d, &ca, &err), 0);
	assert_int_equal(moat_registry_identity_get(moat_deploy_registry(f->d), "dev-1", &id1,
						    &err),
			 0);
	int64_t now = moat_time_now();
	/* the issuing CA's CRL lists dev-1's active certificate and a serial nobody holds */
	struct moat_revoked_cert listed[2] = {{.revoked_at = now - 60}, {.revoked_at = now - 60}};
	snprintf(listed[0].serial_hex, sizeof(listed[0].serial_hex), "%s", id1.serial_hex);
	snprintf(listed[1].serial_hex, sizeof(listed[1].serial_hex), "%s",
		 "7A5E0000000000000000000000000001");
	char *pem = NULL;
	size_t len = 0;
	assert_int_equal(moat_pki_crl_build_until(ca, listed, 2, 100, now - 60, now + 86400, &pem,
						  &len, &err),
			 0);
	tu_write_file(p, pem, len, 0644);
	free(pem);
	audit(f, 30 * 86400);
	assert_int_equal(titled(f, "drift.crl", "the active certificate"), 1);
	assert_int_equal(titled(f, "drift.crl", "of dev-1 is listed as revoked"), 1);
	assert_int_equal(titled(f, "drift.crl", "7A5E0000000000000000000000000001"), 1);
	assert_int_equal(found(f, "drift.crl", MOAT_AUDIT_CRITICAL), 1);
	assert_int_equal(found(f, "pki.crl", MOAT_AUDIT_HIGH), 0);

	/* dev-1 revoked, but listed only by the root's CRL: the root did not issue it */
	assert_int_equal(moat_deploy_unlock(f->d, PASS, &err), 0);
	assert_int_equal(moat_deploy_revoke(f->d, "dev-1", 0, &err), 0);
	path_of(f, cert, sizeof(cert), "pki/ca.crt");
	path_of(f, key, sizeof(key), "pki/ca.key");
	struct moat_ca *root = NULL;
	assert_int_equal(moat_pki_ca_load(cert, key, PASS, &root, &err), 0);
	assert_int_equal(moat_pki_crl_build_until(root, listed, 1, 101, now - 60, now + 86400, &pem,
						  &len, &err),
			 0);
	moat_pki_ca_free(root);
	tu_write_file(p, pem, len, 0644);
	audit(f, 30 * 86400);
	assert_int_equal(titled(f, "drift.crl", "listed only by CRLs of CAs that did not issue it"),
			 1);
	assert_int_equal(titled(f, "drift.crl", "the active certificate"), 0);
	assert_int_equal(found(f, "drift.crl", MOAT_AUDIT_INFO), 1);
	/* moat lists every revoked serial in every CRL: with its issuer's too, it counts */
	char *own = NULL;
	size_t own_len = 0;
	assert_int_equal(moat_pki_crl_build_until(ca, listed, 1, 102, now - 60, now + 86400, &own,
						  &own_len, &err),
			 0);
	char *both = malloc(len + own_len);
	assert_non_null(both);
	memcpy(both, own, own_len);
	memcpy(both + own_len, pem, len);
	tu_write_file(p, both, len + own_len, 0644);
	free(both);
	free(own);
	free(pem);
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "drift.crl", MOAT_AUDIT_INFO), 0);

	/* rebuilt from the registry: in agreement */
	assert_int_equal(moat_deploy_write_crl(f->d, &err), 0);
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "drift.crl", MOAT_AUDIT_INFO), 0);
	/* after a rotation, the retired issuing CA's CRL and the new one's both list dev-1 and
	 * dev-2 (revoked under the new CA): no drift */
	if (moat_deploy_issuer_rotate(f->d, 0, &err) != 0) {
		fail_msg("%s", err.msg);
	}
	assert_int_equal(moat_deploy_revoke(f->d, "dev-2", 0, &err), 0);
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "drift.crl", MOAT_AUDIT_INFO), 0);
	assert_int_equal(found(f, "pki.crl", MOAT_AUDIT_INFO), 0);
}

/* writes state/alerts.queue holding one alert that fired at fired_ms */
static void write_alert_queue(const struct fixture *f, int64_t fired_ms)
{
	struct moat_alert_queue q;
	moat_alert_queue_init(&q, 10);
	struct moat_sec_event ev = {.time_ms = fired_ms,
				    .kind = "auth_refused",
				    .identity = "dev-1",
				    .reason = "bad_cert"};
	assert_true(moat_alert_queue_add(&q, &ev, fired_ms));
	q.items[0].attempts = 7;
	char *text = NULL, p[600];
	size_t len = 0;
	struct moat_err err = {0};
	assert_int_equal(moat_alert_queue_encode(&q, &text, &len, &err), 0);
	moat_alert_queue_free(&q);
	path_of(f, p, sizeof(p), "state");
	mkdir(p, 0750); /* moatd makes it; absent when it never ran */
	path_of(f, p, sizeof(p), MOAT_ALERT_QUEUE_FILE);
	tu_write_file(p, text, len, 0640);
	free(text);
}

static void write_siem_status(const struct fixture *f, const struct moat_siem_status *st)
{
	char text[MOAT_SIEM_STATUS_MAX_BYTES], p[600];
	int len = moat_siem_status_encode(st, text, sizeof(text));
	assert_true(len > 0);
	path_of(f, p, sizeof(p), "state");
	mkdir(p, 0750);
	path_of(f, p, sizeof(p), MOAT_SIEM_STATUS_FILE);
	tu_write_file(p, text, (size_t)len, 0640);
}

static void test_sinks(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	char p[600];
	/* no [monitor] sink: info */
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "monitor.sinks", MOAT_AUDIT_INFO), 1);
	assert_int_equal(found(f, "monitor.sinks", MOAT_AUDIT_LOW), 0);
	assert_non_null(strstr(finding(f, "monitor.sinks")->title, "no event sink"));
	/* a webhook whose queue holds an alert two hours old */
	path_of(f, p, sizeof(p), "moat.conf");
	size_t len = 0;
	char *conf = tu_read_file(p, 1 << 20, &len);
	size_t cap = len + 128;
	char *more = malloc(cap);
	assert_non_null(more);
	snprintf(more, cap,
		 "%s\n[monitor]\nwebhook_url = https://127.0.0.1:9/hook\nsiem_url = "
		 "tcp://127.0.0.1:9\n",
		 conf);
	free(conf);
	tu_write_text(p, more);
	free(more);
	moat_deploy_close(f->d);
	assert_int_equal(moat_deploy_open(f->dir, MOAT_DEPLOY_WRITE, &f->d, &err), 0);
	int64_t now_ms = moat_time_now() * 1000;
	/* moatd never ran with the SIEM: low */
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "monitor.sinks", MOAT_AUDIT_INFO), 1);
	assert_int_equal(found(f, "monitor.sinks", MOAT_AUDIT_LOW), 1);
	assert_non_null(strstr(finding(f, "monitor.sinks")->title, "no delivery to the SIEM"));
	/* delivered a minute ago, nothing waiting; no webhook queue yet */
	struct moat_siem_status st = {.last_ok = now_ms / 1000 - 60};
	write_siem_status(f, &st);
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "monitor.sinks", MOAT_AUDIT_INFO), 0);
	write_alert_queue(f, now_ms - 60 * 1000);
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "monitor.sinks", MOAT_AUDIT_INFO), 0); /* one minute old */
	write_alert_queue(f, now_ms - 2 * 3600 * 1000);
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "monitor.sinks", MOAT_AUDIT_MEDIUM), 1);
	const struct moat_audit_finding *fi = finding(f, "monitor.sinks");
	assert_non_null(strstr(fi->title, "1 alert(s) have not reached the webhook"));
	assert_non_null(strstr(fi->evidence, "tried 7 time(s)"));
	/* the SIEM: two events waiting for two hours, behind a connection refused */
	st = (struct moat_siem_status){.last_ok = now_ms / 1000 - 3 * 3600,
				       .last_error = now_ms / 1000 - 5,
				       .error = "connect to 127.0.0.1:9: Connection refused",
				       .pending = 2,
				       .oldest_pending = now_ms / 1000 - 2 * 3600};
	write_siem_status(f, &st);
	audit(f, 30 * 86400);
	assert_int_equal(titled(f, "monitor.sinks", "2 event(s) have not reached the SIEM"), 1);
	assert_int_equal(found(f, "monitor.sinks", MOAT_AUDIT_MEDIUM), 2);
	path_of(f, p, sizeof(p), MOAT_SIEM_STATUS_FILE);
	tu_write_text(p, "{\"version\":1}");
	audit(f, 30 * 86400);
	assert_int_equal(titled(f, "monitor.sinks", "record of the SIEM does not parse"), 1);
	/* a queue file that does not parse */
	path_of(f, p, sizeof(p), MOAT_ALERT_QUEUE_FILE);
	tu_write_text(p, "{\"version\": 2}");
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "monitor.sinks", MOAT_AUDIT_MEDIUM), 2); /* and the SIEM's */
	assert_int_equal(titled(f, "monitor.sinks", "alert queue does not parse"), 1);
}

/* monitor.clock: what adjtimex says, judged without touching this host's clock. */
static void test_clock(void **state)
{
	(void)state;
	char ev[256];
	struct timex tx = {.status = 0, .maxerror = 1000};
	assert_false(audit_clock_unsynced(TIME_OK, &tx, ev, sizeof(ev)));
	tx.status = STA_PLL;
	assert_false(audit_clock_unsynced(TIME_OK, &tx, ev, sizeof(ev)));
	tx.status = STA_UNSYNC;
	tx.maxerror = 16000000;
	assert_true(audit_clock_unsynced(TIME_OK, &tx, ev, sizeof(ev)));
	assert_string_equal(ev,
			    "adjtimex: state 0, status 0x40 (STA_UNSYNC), maxerror 16000000 us");
	tx.status = 0;
	tx.maxerror = 5;
	assert_true(audit_clock_unsynced(TIME_ERROR, &tx, ev, sizeof(ev)));
	assert_string_equal(ev, "adjtimex: state 5 (TIME_ERROR), status 0x0, maxerror 5 us");
}

/* net.iot_to_management and net.iot_to_iot on a policy whose rule list was changed by hand
 * (moat's renderer never writes such a rule: these checks guard against one that would). */
static void test_net_isolation(void **state)
{
	(void)state;
	struct moat_net_policy *p = calloc(1, sizeof(*p));
	struct moat_config *cfg = NULL;
	struct moat_err err = {0};
	static const char text[] = "[network]\nbroker_address = 10.77.1.10\n";
	assert_non_null(p);
	assert_int_equal(moat_config_parse("moat.conf", text, strlen(text), &cfg, &err), 0);
	assert_int_equal(moat_net_policy_from_config(cfg, p, &err), 0);
	moat_config_free(cfg);
	struct moat_audit_result r;
	moat_audit_result_init(&r);
	struct audit_ctx *a = calloc(1, sizeof(*a));
	assert_non_null(a);
	a->r = &r;
	a->err = &err;
	assert_int_equal(audit_net_isolation(a, p), 0);
	assert_int_equal(r.count, 0); /* moat's own policy keeps devices apart */

	/* devices may reach anything on port 22, ahead of every drop */
	assert_true(p->rule_count < MOAT_NET_RULES_MAX);
	memmove(&p->rules[1], &p->rules[0], p->rule_count * sizeof(p->rules[0]));
	p->rule_count++;
	p->rules[0] = (struct moat_net_rule){.action = MOAT_NET_ACCEPT,
					     .src = {.kind = MOAT_NET_SEL_DEVICES},
					     .dst = {.kind = MOAT_NET_SEL_ANY},
					     .tcp_dport = 22};
	memset(a, 0, sizeof(*a));
	a->r = &r;
	a->err = &err;
	assert_int_equal(audit_net_isolation(a, p), 0);
	assert_int_equal(r.count, 2);
	assert_string_equal(r.findings[0].check->id, "net.iot_to_management");
	assert_int_equal(r.findings[0].severity, MOAT_AUDIT_CRITICAL);
	assert_string_equal(r.findings[0].title,
			    "zone iot may reach management host 10.77.1.2 (port 22)");
	assert_string_equal(r.findings[0].evidence, "10.77.10.2 -> 10.77.1.2:22 accepted");
	assert_string_equal(r.findings[1].check->id, "net.iot_to_iot");
	assert_string_equal(r.findings[1].title, "devices of zone iot may reach each other");
	assert_string_equal(r.findings[1].evidence, "10.77.10.2 <-> 10.77.10.3:22 accepted");
	moat_audit_result_free(&r);
	free(a);
	free(p);
}

static void test_fw_threshold(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	struct moat_fw_trust t;
	memset(&t, 0, sizeof(t));
	EVP_PKEY *k1 = tu_key_p256(), *k2 = tu_key_p256();
	assert_int_equal(moat_fw_trust_add(&t, k1, &err), 0);
	assert_int_equal(moat_fw_trust_add(&t, k2, &err), 0);
	char p[600], dir[600];
	path_of(f, dir, sizeof(dir), MOAT_FW_KEYS_DIR "/revoked");
	assert_int_equal(moat_fs_mkdirs(dir, 0755, &err), 0);
	path_of(f, p, sizeof(p), MOAT_FW_KEYS_DIR "/" MOAT_FW_TRUST_FILE);
	t.threshold = 1;
	assert_int_equal(moat_fwtrust_save(p, &t, &err), 0);
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "fw.threshold", MOAT_AUDIT_HIGH), 1);
	assert_string_equal(finding(f, "fw.threshold")->fix, "moat fw trust --threshold 2");
	t.threshold = 2;
	assert_int_equal(moat_fwtrust_save(p, &t, &err), 0);
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "fw.threshold", MOAT_AUDIT_INFO), 0);
	assert_int_equal(found(f, "fw.revoked_key", MOAT_AUDIT_INFO), 0);
	/* a key revoked (in revoked/) but still in the list */
	char rp[800];
	snprintf(rp, sizeof(rp), "%s/%s.pub", dir, t.keys[1].keyid);
	tu_write_text(rp, "revoked\n");
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "fw.revoked_key", MOAT_AUDIT_CRITICAL), 1);
	moat_fw_trust_free(&t);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
}

static void test_key_file_mode(void **state)
{
	struct fixture *f = *state;
	char p[600];
	path_of(f, p, sizeof(p), "pki/identities/svc-1/key.pem");
	assert_int_equal(chmod(p, 0644), 0);
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "pki.key_files", MOAT_AUDIT_HIGH), 1);
	assert_non_null(strstr(finding(f, "pki.key_files")->fix, "chmod 600"));
}

/* A release of type generic in the registry, with image.bin holding image (NULL: none). */
static void release(struct fixture *f, const char *version, int64_t sv, int64_t expires_at,
		    const char *image)
{
	struct moat_err err = {0};
	struct moat_release r = {.device_type = "generic",
				 .security_version = sv,
				 .size = 1,
				 .issued_at = moat_time_now() - 60,
				 .expires_at = expires_at,
				 .published_at = moat_time_now(),
				 .rollout_percent = 100};
	snprintf(r.version, sizeof(r.version), "%s", version);
	const char *data = image ? image : version;
	unsigned char md[32];
	assert_int_equal(EVP_Digest(data, strlen(data), md, NULL, EVP_sha256(), NULL), 1);
	for (size_t i = 0; i < 32; i++) {
		snprintf(r.sha256_hex + 2 * i, 3, "%02x", md[i]);
	}
	assert_int_equal(moat_registry_release_insert(moat_deploy_registry(f->d), &r, NULL, 0,
						      &err),
			 0);
	char dir[700], p[800];
	snprintf(dir, sizeof(dir), "%s/firmware/releases/generic/%s", f->dir, version);
	assert_int_equal(moat_fs_mkdirs(dir, 0755, &err), 0);
	snprintf(p, sizeof(p), "%s/envelope.json", dir);
	tu_write_text(p, "{}\n");
	if (image) {
		snprintf(p, sizeof(p), "%s/image.bin", dir);
		tu_write_file(p, version, strlen(version), 0644);
	}
}

static void event(struct fixture *f, const char *device, enum moat_update_stage stage,
		  const char *version, const char *running)
{
	struct moat_err err = {0};
	struct moat_update_event ev = {.stage = stage, .at = moat_time_now()};
	snprintf(ev.device, sizeof(ev.device), "%s", device);
	snprintf(ev.version, sizeof(ev.version), "%s", version);
	snprintf(ev.running, sizeof(ev.running), "%s", running);
	if (stage == MOAT_UPD_REVERTED) {
		snprintf(ev.reason, sizeof(ev.reason), "boot_failed");
	}
	assert_int_equal(moat_registry_update_event_record(moat_deploy_registry(f->d), &ev, &err),
			 0);
}

static void test_firmware_releases(void **state)
{
	struct fixture *f = *state;
	int64_t now = moat_time_now();
	/* 1.0.0 (security version 1) far from expiry, its image as published */
	release(f, "1.0.0", 1, now + 365 * 86400, "1.0.0");
	event(f, "dev-1", MOAT_UPD_CONFIRMED, "1.0.0", "1.0.0");
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "drift.releases", MOAT_AUDIT_INFO), 0);
	assert_int_equal(found(f, "fw.release_expiry", MOAT_AUDIT_INFO), 0);
	assert_int_equal(found(f, "fw.below_floor", MOAT_AUDIT_INFO), 0);
	assert_int_equal(found(f, "fw.not_offered", MOAT_AUDIT_INFO), 0);
	/* 1.1.0 raises the floor to 2 and expires in 10 days; its image.bin is another one
	 * (and dev-2 runs a version never published, and reverted 1.1.0) */
	release(f, "1.1.0", 2, now + 10 * 86400, "not the published image");
	event(f, "dev-2", MOAT_UPD_CONFIRMED, "0.9.0", "0.9.0");
	event(f, "dev-2", MOAT_UPD_REVERTED, "1.1.0", "0.9.0");
	audit(f, 30 * 86400);
	assert_int_equal(found(f, "fw.release_expiry", MOAT_AUDIT_MEDIUM), 1);
	assert_non_null(strstr(finding(f, "fw.release_expiry")->title, "1.1.0"));
	assert_int_equal(found(f, "fw.below_floor", MOAT_AUDIT_HIGH), 1);
	assert_non_null(strstr(finding(f, "fw.below_floor")->title, "dev-1"));
	assert_int_equal(found(f, "fw.not_offered", MOAT_AUDIT_MEDIUM), 1);
	assert_non_null(strstr(finding(f, "fw.not_offered")->title, "dev-2"));
	assert_int_equal(found(f, "fw.reverted", MOAT_AUDIT_MEDIUM), 1);
	assert_non_null(strstr(finding(f, "fw.reverted")->title, "dev-2 reverted"));
	assert_int_equal(found(f, "drift.releases", MOAT_AUDIT_CRITICAL), 1);
	assert_non_null(strstr(finding(f, "drift.releases")->title, "1.1.0"));
	/* a window of 5 days: 1.1.0 does not expire within it */
	audit(f, 5 * 86400);
	assert_int_equal(found(f, "fw.release_expiry", MOAT_AUDIT_INFO), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_severity),
		cmocka_unit_test(test_collector),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_sarif),
		cmocka_unit_test(test_junit),
		cmocka_unit_test(test_first_diff),
		cmocka_unit_test(test_weak_key),
		cmocka_unit_test(test_cert_scan),
		cmocka_unit_test_setup_teardown(test_clean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ca_key_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drift_acl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revoked_in_policy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crl_lists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fw_threshold, setup, teardown),
		cmocka_unit_test(test_clock),
		cmocka_unit_test(test_net_isolation),
		cmocka_unit_test_setup_teardown(test_key_file_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_firmware_releases, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
