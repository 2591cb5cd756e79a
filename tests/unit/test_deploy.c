/* test_deploy.c: the deployment directory's consistency rules (include/moat/deploy.h):
 * provisioning is all or nothing, revocation and renewal keep the registry, the files and
 * the CRL in step, and opening for writing repairs what an interrupted change left; and its
 * ownership for moatd's account (as root): what it owns, what stays root's, a link planted
 * in its place is never followed, and every refusal of [server] user. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "../../src/deploy/deploy_internal.h"
#include "moat/certinfo.h"
#include "moat/deploy.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"
#include "testutil.h"
#include "testutil_pki.h"

#define PASS "unit-test-passphrase"

struct fixture {
	char root[TU_TMPDIR_MAX];    /* first: tu_state_make */
	char dir[TU_TMPDIR_MAX + 2]; /* root/d */
	struct moat_deploy *d;
};

static int setup(void **state)
{
	struct moat_err err = {0};
	assert_int_equal(tu_state_make(state, sizeof(struct fixture), "deploy"), 0);
	struct fixture *f = *state;
	snprintf(f->dir, sizeof(f->dir), "%s/d", f->root);
	struct moat_init_opts io = {.dir = f->dir, .name = "unit", .now = moat_time_now()};
	assert_int_equal(moat_deploy_init(&io, PASS, &err), 0);
	assert_int_equal(moat_deploy_open(f->dir, MOAT_DEPLOY_WRITE, &f->d, &err), 0);
	assert_int_equal(moat_deploy_unlock(f->d, PASS, &err), 0);
	moat_deploy_interrupted = 0;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	moat_deploy_close(f->d);
	assert_int_equal(tu_state_free(state), 0);
	return 0;
}

static int count_row(const struct moat_identity *id, void *ctx)
{
	(void)id;
	(*(size_t *)ctx)++;
	return 0;
}

static size_t count_rows(struct moat_deploy *d)
{
	size_t n = 0;
	struct moat_err err;
	assert_int_equal(moat_registry_identity_foreach(moat_deploy_registry(d), -1, count_row, &n,
							&err),
			 0);
	return n;
}

/* Identity directories in the deployment. */
static size_t idents_count(struct fixture *f)
{
	char p[512];
	tu_path(p, sizeof(p), f->dir, "pki/identities");
	return tu_dir_count(p, NULL);
}

static void test_provision_batch(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	struct moat_provision_req reqs[3] = {
		{.id = "a1", .role = MOAT_ROLE_DEVICE, .device_type = "sensor"},
		{.id = "a2", .role = MOAT_ROLE_DEVICE},
		{.id = "svc", .role = MOAT_ROLE_SERVICE},
	};
	assert_int_equal(moat_deploy_provision(f->d, reqs, 3, NULL, NULL, &err), 0);
	assert_int_equal(idents_count(f), 3);
	assert_int_equal(count_rows(f->d), 3);
	struct moat_identity id;
	assert_int_equal(moat_registry_identity_get(moat_deploy_registry(f->d), "a2", &id, &err),
			 0);
	assert_string_equal(id.device_type, "generic");
	assert_int_equal(moat_registry_identity_get(moat_deploy_registry(f->d), "svc", &id, &err),
			 0);
	assert_int_equal(id.role, MOAT_ROLE_SERVICE);
	struct stat st;
	char p[512];
	tu_path(p, sizeof(p), f->dir, "pki/identities/a1/key.pem");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_provision_refuses_duplicates_and_bad_names(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	struct moat_provision_req twice[2] = {
		{.id = "b1", .role = MOAT_ROLE_DEVICE},
		{.id = "b1", .role = MOAT_ROLE_DEVICE},
	};
	assert_int_equal(moat_deploy_provision(f->d, twice, 2, NULL, NULL, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "twice"));
	struct moat_provision_req bad[2] = {
		{.id = "ok-1", .role = MOAT_ROLE_DEVICE},
		{.id = "Not/OK", .role = MOAT_ROLE_DEVICE},
	};
	assert_int_equal(moat_deploy_provision(f->d, bad, 2, NULL, NULL, &err), MOAT_EINVAL);
	struct moat_provision_req badtype = {.id = "c1",
					     .role = MOAT_ROLE_DEVICE,
					     .device_type = "Bad Type"};
	assert_int_equal(moat_deploy_provision(f->d, &badtype, 1, NULL, NULL, &err), MOAT_EINVAL);
	struct moat_provision_req one = {.id = "c2", .role = MOAT_ROLE_DEVICE};
	assert_int_equal(moat_deploy_provision(f->d, &one, 1, NULL, NULL, &err), 0);
	assert_int_equal(moat_deploy_provision(f->d, &one, 1, NULL, NULL, &err), MOAT_EEXIST);
	assert_int_equal(moat_deploy_provision(f->d, &one, 0, NULL, NULL, &err), MOAT_EINVAL);
	assert_int_equal(count_rows(f->d), 1);
	assert_int_equal(idents_count(f), 1);
}

/* A failure after some identities were renamed into place undoes all of them. */
static void test_provision_rolls_back_on_late_failure(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	char p[512];
	/* a directory nobody registered, in the way of the last identity */
	tu_path(p, sizeof(p), f->dir, "pki/identities/late-3");
	assert_int_equal(mkdir(p, 0700), 0);
	struct moat_provision_req reqs[3] = {
		{.id = "late-1", .role = MOAT_ROLE_DEVICE},
		{.id = "late-2", .role = MOAT_ROLE_DEVICE},
		{.id = "late-3", .role = MOAT_ROLE_DEVICE},
	};
	assert_int_equal(moat_deploy_provision(f->d, reqs, 3, NULL, NULL, &err), MOAT_EEXIST);
	assert_int_equal(count_rows(f->d), 0);
	tu_path(p, sizeof(p), f->dir, "pki/identities/late-1");
	assert_false(moat_fs_exists(p));
	/* reopening for writing removes the unregistered directory */
	moat_deploy_close(f->d);
	assert_int_equal(moat_deploy_open(f->dir, MOAT_DEPLOY_WRITE, &f->d, &err), 0);
	assert_int_equal(moat_deploy_recovered(f->d), 1);
	assert_int_equal(idents_count(f), 0);
}

static void test_provision_interrupted(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	struct moat_provision_req reqs[2] = {
		{.id = "i1", .role = MOAT_ROLE_DEVICE},
		{.id = "i2", .role = MOAT_ROLE_DEVICE},
	};
	moat_deploy_interrupted = 1;
	assert_int_equal(moat_deploy_provision(f->d, reqs, 2, NULL, NULL, &err), MOAT_EINTR);
	moat_deploy_interrupted = 0;
	assert_int_equal(count_rows(f->d), 0);
	assert_int_equal(idents_count(f), 0);
}

static void interrupt_after_ten(size_t done, size_t total, void *ctx)
{
	(void)total;
	(void)ctx;
	if (done == 10) {
		moat_deploy_interrupted = 1; /* what the CLI's SIGINT handler does */
	}
}

/* An interrupt in the middle of a run, with the workers ahead of the caller: nothing is
 * added and the staged files are gone. */
static void test_provision_interrupted_midway(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	enum { N = 200 };
	struct moat_provision_req reqs[N];
	char names[N][16];
	for (size_t i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "m-%03zu", i);
		reqs[i] = (struct moat_provision_req){.id = names[i], .role = MOAT_ROLE_DEVICE};
	}
	assert_int_equal(moat_deploy_provision(f->d, reqs, N, interrupt_after_ten, NULL, &err),
			 MOAT_EINTR);
	moat_deploy_interrupted = 0;
	assert_int_equal(count_rows(f->d), 0);
	assert_int_equal(idents_count(f), 0);
	char p[512];
	tu_path(p, sizeof(p), f->dir, "pki");
	DIR *dir = opendir(p);
	struct dirent *e;
	assert_non_null(dir);
	while ((e = readdir(dir)) != NULL) {
		assert_null(strstr(e->d_name, ".staging-")); /* staged files removed */
	}
	closedir(dir);
}

static void test_provision_needs_unlock(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	struct moat_deploy *ro = NULL;
	assert_int_equal(moat_deploy_open(f->dir, MOAT_DEPLOY_READ, &ro, &err), 0);
	struct moat_provision_req one = {.id = "x", .role = MOAT_ROLE_DEVICE};
	assert_int_equal(moat_deploy_provision(ro, &one, 1, NULL, NULL, &err), MOAT_ESTATE);
	assert_int_equal(moat_deploy_unlock(ro, "wrong-passphrase", &err), MOAT_ECRYPTO);
	assert_string_equal(err.msg, "pki/ca.key: wrong passphrase");
	moat_deploy_close(ro);
}

static void test_revoke_and_renew(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	struct moat_provision_req one = {.id = "r1", .role = MOAT_ROLE_DEVICE};
	struct moat_identity before;
	struct moat_identity after;
	int64_t crl_before = 0;
	int64_t crl_after = 0;
	assert_int_equal(moat_deploy_provision(f->d, &one, 1, NULL, NULL, &err), 0);
	assert_int_equal(moat_registry_identity_get(moat_deploy_registry(f->d), "r1", &before,
						    &err),
			 0);
	assert_int_equal(moat_registry_meta_get_int(moat_deploy_registry(f->d), "crl_number",
						    &crl_before, &err),
			 0);
	assert_int_equal(moat_deploy_revoke(f->d, "r1", 1, &err), 0);
	assert_int_equal(moat_registry_meta_get_int(moat_deploy_registry(f->d), "crl_number",
						    &crl_after, &err),
			 0);
	assert_int_equal(crl_after, crl_before + 1);
	assert_int_equal(moat_registry_identity_get(moat_deploy_registry(f->d), "r1", &after, &err),
			 0);
	assert_int_equal(after.status, MOAT_ID_REVOKED);
	assert_true(after.cert_revoked);
	assert_int_equal(moat_deploy_revoke(f->d, "r1", 0, &err), MOAT_ESTATE);
	assert_int_equal(moat_deploy_revoke(f->d, "nobody", 0, &err), MOAT_ENOENT);

	/* revoked for key compromise (reason 1): only a forced renewal revives it */
	assert_true(moat_deploy_compromised(&after));
	assert_int_equal(moat_deploy_renew(f->d, "r1", 10, &err), MOAT_ESTATE);
	assert_string_equal(err.msg, "r1: revoked for key-compromise; renewing it needs --force "
				     "(it gets a new key: the device must be re-provisioned)");
	assert_int_equal(moat_registry_identity_get(moat_deploy_registry(f->d), "r1", &after, &err),
			 0);
	assert_int_equal(after.status, MOAT_ID_REVOKED);
	assert_int_equal(moat_deploy_renew_forced(f->d, "r1", 10, &err), 0);
	assert_int_equal(moat_registry_identity_get(moat_deploy_registry(f->d), "r1", &after, &err),
			 0);
	assert_false(moat_deploy_compromised(&after));
	assert_int_equal(after.status, MOAT_ID_ACTIVE);
	assert_false(after.cert_revoked);
	assert_string_not_equal(after.serial_hex, before.serial_hex);
	assert_true(after.not_after - after.not_before <= 10 * 86400 + 300);
	char p[512];
	struct moat_cert_info info;
	tu_path(p, sizeof(p), f->dir, "pki/identities/r1/cert.pem");
	assert_int_equal(moat_cert_info_file(p, &info, &err), 0);
	assert_string_equal(info.serial_hex, after.serial_hex);
	tu_path(p, sizeof(p), f->dir, "pki/identities/r1/.next");
	assert_false(moat_fs_exists(p));
	assert_int_equal(moat_deploy_renew(f->d, "nobody", 0, &err), MOAT_ENOENT);
	assert_int_equal(moat_deploy_renew(f->d, "r1", 40000, &err), MOAT_EINVAL);
}

static void test_init_refusals(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	struct moat_init_opts io = {.dir = f->dir, .now = moat_time_now()};
	assert_int_equal(moat_deploy_init(&io, PASS, &err), MOAT_EEXIST);
	char p[512];
	snprintf(p, sizeof(p), "%s/new", f->root);
	io.dir = p;
	assert_int_equal(moat_deploy_init(&io, "short", &err), MOAT_EINVAL);
	io.name = "Bad Name";
	assert_int_equal(moat_deploy_init(&io, PASS, &err), MOAT_EINVAL);
	io.name = NULL;
	const char *hosts[] = {"localhost", "localhost"};
	io.broker_hosts = hosts;
	io.broker_host_count = 2;
	assert_int_equal(moat_deploy_init(&io, PASS, &err), MOAT_EINVAL);
	io.broker_host_count = 0;
	io.broker_port = 9000;
	io.server_port = 9000;
	assert_int_equal(moat_deploy_init(&io, PASS, &err), MOAT_EINVAL);
	assert_false(moat_fs_exists(p));
}

/* moat_deploy_server_cert: an added host lands on moat.conf's hosts line, whose continuation
 * lines it replaces, and nothing else of the file changes; refusals write nothing. */
static void test_server_cert_add_host(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	char conf[512];
	char crt[512];
	tu_path(conf, sizeof(conf), f->dir, "moat.conf");
	tu_path(crt, sizeof(crt), f->dir, "pki/server.crt");
	size_t len = 0;
	char *text = tu_read_file(conf, 65536, &len);
	assert_non_null(text);
	/* the hosts split over a continuation line, a comment after it */
	char *line = strstr(text, "hosts = localhost, 127.0.0.1\n");
	assert_non_null(line);
	int at = (int)(line - text);
	const char *rest = line + strlen("hosts = localhost, 127.0.0.1\n");
	char edited[8192];
	char want[8192];
	snprintf(edited, sizeof(edited), "%.*shosts = localhost,\n  127.0.0.1\n# after hosts\n%s",
		 at, text, rest);
	snprintf(want, sizeof(want),
		 "%.*shosts = localhost, 127.0.0.1, broker.example.net, ::1\n# after hosts\n%s", at,
		 text, rest);
	free(text);
	tu_write_text(conf, edited);
	moat_deploy_close(f->d);
	assert_int_equal(moat_deploy_open(f->dir, MOAT_DEPLOY_WRITE, &f->d, &err), 0);
	assert_int_equal(moat_deploy_unlock(f->d, PASS, &err), 0);

	char *crt_before = tu_read_file(crt, 65536, &len);
	const char *bad[] = {"ok.example", "-bad"};
	assert_int_equal(moat_deploy_server_cert(f->d, bad, 2, 0, NULL, &err), MOAT_EINVAL);
	const char *dup[] = {"127.0.0.1"};
	assert_int_equal(moat_deploy_server_cert(f->d, dup, 1, 0, NULL, &err), MOAT_EEXIST);
	char *crt_after = tu_read_file(crt, 65536, &len);
	assert_string_equal(crt_after, crt_before);
	free(crt_after);
	text = tu_read_file(conf, 65536, &len);
	assert_string_equal(text, edited);
	free(text);

	const char *add[] = {"broker.example.net", "::1"};
	struct moat_server_cert sc;
	assert_int_equal(moat_deploy_server_cert(f->d, add, 2, 3, &sc, &err), 0);
	assert_int_equal(sc.host_count, 4);
	assert_true(sc.ip_added);
	assert_true(sc.not_after - moat_time_now() <= 3 * 86400);
	text = tu_read_file(conf, 65536, &len);
	assert_string_equal(text, want);
	free(text);
	free(crt_before);
	const struct moat_deploy_conf *c = moat_deploy_settings(f->d);
	assert_int_equal(c->broker_host_count, 4);
	assert_string_equal(c->broker_hosts[2], "broker.example.net");
	struct moat_cert_info info;
	assert_int_equal(moat_cert_info_file(crt, &info, &err), 0);
	assert_string_equal(info.serial_hex, sc.serial_hex);
}

/* A CSR of key for cn, parsed: the caller frees it. */
static struct moat_csr *csr_for(EVP_PKEY *key, const char *cn)
{
	size_t len = 0;
	unsigned char *der = tu_csr_der(key, key, cn, "DNS:evil.example", &len);
	struct moat_csr *csr = NULL;
	struct moat_err err = {0};
	assert_int_equal(moat_csr_parse(der, len, &csr, &err), 0);
	free(der);
	return csr;
}

static void test_enroll_token(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	char token[MOAT_ENROLL_TOKEN_BUF_LEN];
	struct moat_enroll_add_req add = {.id = "dev-e", .device_type = "t1", .token = true};
	assert_int_equal(moat_deploy_enroll_add(f->d, &add, token, &err), 0);
	assert_int_equal(strlen(token), MOAT_ENROLL_TOKEN_LEN);
	/* only the hash is kept */
	struct moat_enrollment e;
	assert_int_equal(moat_registry_enrollment_get(moat_deploy_registry(f->d), "dev-e", &e,
						      &err),
			 0);
	assert_null(strstr(e.token_sha256_hex, token));
	assert_int_equal(e.expires_at - e.created_at, MOAT_ENROLL_TOKEN_TTL_DEFAULT);
	/* registered twice, or without token or claim: refused */
	char t2[MOAT_ENROLL_TOKEN_BUF_LEN];
	assert_int_equal(moat_deploy_enroll_add(f->d, &add, t2, &err), MOAT_EEXIST);
	struct moat_enroll_add_req none = {.id = "dev-n"};
	assert_int_equal(moat_deploy_enroll_add(f->d, &none, t2, &err), MOAT_EINVAL);
	struct moat_enroll_add_req short_ttl = {.id = "dev-s", .token = true, .token_ttl = 5};
	assert_int_equal(moat_deploy_enroll_add(f->d, &short_ttl, t2, &err), MOAT_EINVAL);

	int64_t now = moat_time_now();
	enum moat_enroll_verdict v;
	assert_int_equal(moat_deploy_enroll_token_check(f->d, "dev-e", token, now, &v, &err), 0);
	assert_int_equal(v, MOAT_ENROLL_OK);
	char wrong[MOAT_ENROLL_TOKEN_BUF_LEN];
	snprintf(wrong, sizeof(wrong), "%s", token);
	wrong[0] = wrong[0] == '0' ? '1' : '0';
	assert_int_equal(moat_deploy_enroll_token_check(f->d, "dev-e", wrong, now, &v, &err), 0);
	assert_int_equal(v, MOAT_ENROLL_BAD_CREDENTIALS);
	assert_int_equal(moat_deploy_enroll_token_check(f->d, "nobody", token, now, &v, &err), 0);
	assert_int_equal(v, MOAT_ENROLL_BAD_CREDENTIALS);
	/* expired: only the right token learns it */
	int64_t later = e.expires_at;
	assert_int_equal(moat_deploy_enroll_token_check(f->d, "dev-e", token, later, &v, &err), 0);
	assert_int_equal(v, MOAT_ENROLL_TOKEN_EXPIRED);
	assert_int_equal(moat_deploy_enroll_token_check(f->d, "dev-e", wrong, later, &v, &err), 0);
	assert_int_equal(v, MOAT_ENROLL_BAD_CREDENTIALS);

	/* a CSR for another identity is refused and uses nothing up */
	EVP_PKEY *key = tu_key_p256();
	struct moat_csr *other = csr_for(key, "dev-x");
	struct moat_enroll_req req = {.id = "dev-e", .method = MOAT_ENROLL_BY_TOKEN, .csr = other};
	struct moat_enrolled out;
	assert_int_equal(moat_deploy_enroll_issue(f->d, &req, &out, &err), MOAT_EDENIED);
	assert_non_null(strstr(err.msg, "CSR"));
	moat_csr_free(other);
	/* the right CSR: a certificate for the device's key, moat's subject, no key.pem */
	struct moat_csr *csr = csr_for(key, "dev-e");
	req.csr = csr;
	assert_int_equal(moat_deploy_enroll_issue(f->d, &req, &out, &err), 0);
	assert_int_equal(out.files_rc, 0);
	X509 *cert = tu_pem_cert(out.cert_pem);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(cert), key), 1);
	assert_int_equal(X509_check_ca(cert), 0);
	assert_int_equal(X509_get_ext_by_NID(cert, NID_subject_alt_name, -1), -1);
	X509_free(cert);
	char p[PATH_MAX];
	assert_int_equal(moat_deploy_identity_path(f->d, "dev-e", "key.pem", p, sizeof(p), &err),
			 0);
	assert_false(moat_fs_exists(p));
	assert_int_equal(moat_deploy_identity_path(f->d, "dev-e", "cert.pem", p, sizeof(p), &err),
			 0);
	assert_true(moat_fs_exists(p));
	struct moat_identity ident;
	assert_int_equal(moat_registry_identity_get(moat_deploy_registry(f->d), "dev-e", &ident,
						    &err),
			 0);
	assert_string_equal(ident.serial_hex, out.serial_hex);
	assert_string_equal(ident.device_type, "t1");
	moat_enrolled_free(&out);
	/* single use: the token is spent, and a second issue is refused */
	assert_int_equal(moat_deploy_enroll_token_check(f->d, "dev-e", token, now, &v, &err), 0);
	assert_int_equal(v, MOAT_ENROLL_TOKEN_USED);
	assert_int_equal(moat_deploy_enroll_issue(f->d, &req, &out, &err), MOAT_EDENIED);
	assert_non_null(strstr(err.msg, "already enrolled"));

	/* re-enrollment: only with the current certificate; the old one is superseded when
	 * the grace period ends */
	struct moat_enroll_req renew = {.id = "dev-e",
					.method = MOAT_ENROLL_RENEW,
					.csr = csr,
					.presented_serial = "4000",
					.grace_seconds = 60};
	assert_int_equal(moat_deploy_enroll_issue(f->d, &renew, &out, &err), MOAT_EDENIED);
	renew.presented_serial = ident.serial_hex;
	assert_int_equal(moat_deploy_enroll_issue(f->d, &renew, &out, &err), 0);
	assert_string_equal(out.replaced_serial_hex, ident.serial_hex);
	char first[MOAT_SERIAL_HEX_LEN];
	snprintf(first, sizeof(first), "%s", ident.serial_hex);
	moat_enrolled_free(&out);
	assert_int_equal(moat_deploy_enroll_issue(f->d, &renew, &out, &err), MOAT_EDENIED);
	size_t n = 9;
	assert_int_equal(moat_deploy_enroll_supersede_due(f->d, moat_time_now(), &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(moat_deploy_enroll_supersede_due(f->d, moat_time_now() + 61, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(moat_registry_identity_get(moat_deploy_registry(f->d), "dev-e", &ident,
						    &err),
			 0);
	assert_false(ident.cert_revoked);
	assert_string_not_equal(ident.serial_hex, first);
	/* a revoked or disabled device gets nothing */
	assert_int_equal(moat_registry_identity_set_status(moat_deploy_registry(f->d), "dev-e",
							   MOAT_ID_DISABLED, &err),
			 0);
	renew.presented_serial = ident.serial_hex;
	assert_int_equal(moat_deploy_enroll_issue(f->d, &renew, &out, &err), MOAT_EDENIED);
	assert_non_null(strstr(err.msg, "disabled"));
	moat_csr_free(csr);
	EVP_PKEY_free(key);
}

static void test_enroll_claim(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	char token[MOAT_ENROLL_TOKEN_BUF_LEN];
	struct moat_enroll_add_req add = {.id = "dev-c", .claim_cn = "SN-0042"};
	assert_int_equal(moat_deploy_enroll_add(f->d, &add, token, &err), 0);
	assert_string_equal(token, "");
	struct moat_enroll_add_req dup = {.id = "dev-d", .claim_cn = "SN-0042"};
	assert_int_equal(moat_deploy_enroll_add(f->d, &dup, token, &err), MOAT_EEXIST);
	struct moat_enroll_add_req bad = {.id = "dev-b", .claim_cn = "SN 42"};
	assert_int_equal(moat_deploy_enroll_add(f->d, &bad, token, &err), MOAT_EINVAL);

	/* a manufacturer's CA and its claim certificates */
	struct moat_ca *maker = NULL;
	int64_t now = moat_time_now();
	assert_int_equal(moat_pki_ca_create("maker", MOAT_KEY_EC_P256, now - 60, 365, &maker, &err),
			 0);
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	struct moat_issued claim;
	struct moat_issued stranger;
	assert_int_equal(moat_pki_random_serial(serial, hex, &err), 0);
	struct moat_issue_req ir = {.cn = "sn-0042",
				    .role = MOAT_ROLE_DEVICE,
				    .kind = MOAT_CERT_CLIENT,
				    .key_type = MOAT_KEY_EC_P256,
				    .not_before = now - 60,
				    .not_after = now + 86400};
	/* moat_pki_issue takes identity names as CN: the claim CN here is "sn-0042" */
	assert_int_equal(moat_pki_issue(maker, &ir, serial, &claim, &err), 0);
	ir.cn = "sn-9999";
	assert_int_equal(moat_pki_issue(maker, &ir, serial, &stranger, &err), 0);
	struct moat_enroll_add_req lower = {.id = "dev-l", .claim_cn = "sn-0042"};
	assert_int_equal(moat_deploy_enroll_add(f->d, &lower, token, &err), 0);

	char id[MOAT_ID_BUF_LEN];
	char cn[MOAT_CLAIM_CN_MAX_LEN + 1];
	enum moat_enroll_verdict v;
	/* no claim CA registered yet */
	assert_int_equal(moat_deploy_claim_verify(f->d, claim.cert, NULL, now, id, cn, &v, &err),
			 0);
	assert_int_equal(v, MOAT_ENROLL_CLAIM_NOT_VERIFIED);
	char *pem = NULL;
	char *key_pem = NULL;
	size_t pl = 0;
	size_t kl = 0;
	assert_int_equal(moat_pki_ca_export(maker, "maker-passphrase", &pem, &pl, &key_pem, &kl,
					    &err),
			 0);
	char sha[MOAT_SHA256_HEX_LEN + 1];
	assert_int_equal(moat_deploy_claim_ca_add(f->d, pem, pl, sha, &err), 0);
	assert_int_equal(moat_deploy_claim_ca_add(f->d, pem, pl, sha, &err), MOAT_EEXIST);
	/* a leaf is no claim CA */
	assert_int_equal(moat_deploy_claim_ca_add(f->d, claim.cert_pem, claim.cert_pem_len, sha,
						  &err),
			 MOAT_EINVAL);
	assert_int_equal(moat_deploy_claim_verify(f->d, claim.cert, NULL, now, id, cn, &v, &err),
			 0);
	assert_int_equal(v, MOAT_ENROLL_OK);
	assert_string_equal(id, "dev-l");
	assert_string_equal(cn, "sn-0042");
	assert_int_equal(moat_deploy_claim_verify(f->d, stranger.cert, NULL, now, id, cn, &v, &err),
			 0);
	assert_int_equal(v, MOAT_ENROLL_UNKNOWN_CLAIM);
	/* expired by the time it is presented */
	assert_int_equal(moat_deploy_claim_verify(f->d, claim.cert, NULL, now + 2 * 86400, id, cn,
						  &v, &err),
			 0);
	assert_int_equal(v, MOAT_ENROLL_CLAIM_NOT_VERIFIED);
	/* the deployment's own certificates are no claims */
	X509 *own = NULL;
	struct moat_provision_req pr = {.id = "dev-own", .role = MOAT_ROLE_DEVICE};
	assert_int_equal(moat_deploy_provision(f->d, &pr, 1, NULL, NULL, &err), 0);
	char p[PATH_MAX];
	char *own_pem = NULL;
	size_t own_len = 0;
	assert_int_equal(moat_deploy_identity_path(f->d, "dev-own", "cert.pem", p, sizeof(p), &err),
			 0);
	assert_int_equal(moat_fs_read_all(p, 65536, &own_pem, &own_len, &err), 0);
	own = tu_pem_cert(own_pem);
	assert_int_equal(moat_deploy_claim_verify(f->d, own, NULL, now, id, cn, &v, &err), 0);
	assert_int_equal(v, MOAT_ENROLL_CLAIM_NOT_VERIFIED);
	X509_free(own);
	free(own_pem);
	/* enrolled by claim: used once */
	EVP_PKEY *key = tu_key_p256();
	struct moat_csr *csr = csr_for(key, NULL);
	struct moat_enroll_req req = {.id = "dev-l", .method = MOAT_ENROLL_BY_CLAIM, .csr = csr};
	struct moat_enrolled out;
	assert_int_equal(moat_deploy_enroll_issue(f->d, &req, &out, &err), 0);
	moat_enrolled_free(&out);
	assert_int_equal(moat_deploy_claim_verify(f->d, claim.cert, NULL, now, id, cn, &v, &err),
			 0);
	assert_int_equal(v, MOAT_ENROLL_CLAIM_USED);
	moat_csr_free(csr);
	EVP_PKEY_free(key);
	free(pem);
	OPENSSL_cleanse(key_pem, kl);
	free(key_pem);
	moat_pki_issued_free(&claim);
	moat_pki_issued_free(&stranger);
	moat_pki_ca_free(maker);
}

static void test_provision_from_csr(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	EVP_PKEY *key = tu_key_p256();
	struct moat_csr *csr = csr_for(key, "svc-1");
	struct moat_provision_req pr = {.id = "svc-1", .role = MOAT_ROLE_SERVICE, .csr = csr};
	assert_int_equal(moat_deploy_provision(f->d, &pr, 1, NULL, NULL, &err), 0);
	char p[PATH_MAX];
	assert_int_equal(moat_deploy_identity_path(f->d, "svc-1", "key.pem", p, sizeof(p), &err),
			 0);
	assert_false(moat_fs_exists(p));
	char *pem = NULL;
	size_t len = 0;
	assert_int_equal(moat_deploy_identity_path(f->d, "svc-1", "cert.pem", p, sizeof(p), &err),
			 0);
	assert_int_equal(moat_fs_read_all(p, 65536, &pem, &len, &err), 0);
	X509 *cert = tu_pem_cert(pem);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(cert), key), 1);
	char subject[256];
	X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
	assert_non_null(strstr(subject, "OU=service"));
	assert_null(strstr(subject, "evil"));
	X509_free(cert);
	free(pem);
	/* the CSR names svc-1: not for svc-2 */
	pr.id = "svc-2";
	assert_int_equal(moat_deploy_provision(f->d, &pr, 1, NULL, NULL, &err), MOAT_EDENIED);
	moat_csr_free(csr);
	EVP_PKEY_free(key);
}

/* Two tiers: the issuing CA signs without the passphrase; a single-tier deployment's
 * signer is the root, which needs it. */
static void test_signer(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	struct moat_deploy *ro = NULL;
	const struct moat_ca *signer = NULL;
	assert_int_equal(moat_deploy_open(f->dir, MOAT_DEPLOY_READ, &ro, &err), 0);
	assert_true(moat_deploy_has_issuer(ro));
	assert_int_equal(moat_deploy_signer(ro, &signer, &err), 0);
	assert_non_null(signer->key);
	char cn[128] = "";
	X509_NAME_get_text_by_NID(X509_get_subject_name(signer->cert), NID_commonName, cn,
				  sizeof(cn));
	assert_string_equal(cn, "unit Issuing CA 1");
	const struct moat_ca *again = NULL;
	assert_int_equal(moat_deploy_signer(ro, &again, &err), 0);
	assert_ptr_equal(again, signer);
	moat_deploy_close(ro);

	/* the issuing CA's key must be its owner's only */
	char kp[512];
	tu_path(kp, sizeof(kp), f->dir, "pki/issuer.key");
	assert_int_equal(chmod(kp, 0644), 0);
	assert_int_equal(moat_deploy_open(f->dir, MOAT_DEPLOY_READ, &ro, &err), 0);
	assert_int_equal(moat_deploy_signer(ro, &signer, &err), MOAT_EDENIED);
	assert_null(signer);
	moat_deploy_close(ro);
	assert_int_equal(chmod(kp, 0600), 0);

	char st[TU_TMPDIR_MAX + 4];
	snprintf(st, sizeof(st), "%s/st", f->root);
	struct moat_init_opts io = {.dir = st,
				    .name = "single",
				    .now = moat_time_now(),
				    .single_tier = true};
	assert_int_equal(moat_deploy_init(&io, PASS, &err), 0);
	assert_int_equal(moat_deploy_open(st, MOAT_DEPLOY_WRITE, &ro, &err), 0);
	assert_false(moat_deploy_has_issuer(ro));
	assert_int_equal(moat_deploy_signer(ro, &signer, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "needs the CA passphrase"));
	struct moat_provision_req one = {.id = "x", .role = MOAT_ROLE_DEVICE};
	assert_int_equal(moat_deploy_provision(ro, &one, 1, NULL, NULL, &err), MOAT_EINVAL);
	assert_int_equal(moat_deploy_write_crl(ro, &err), MOAT_EINVAL);
	assert_int_equal(moat_deploy_unlock(ro, PASS, &err), 0);
	assert_int_equal(moat_deploy_signer(ro, &signer, &err), 0);
	X509_NAME_get_text_by_NID(X509_get_subject_name(signer->cert), NID_commonName, cn,
				  sizeof(cn));
	assert_string_equal(cn, "single CA");
	assert_int_equal(moat_deploy_provision(ro, &one, 1, NULL, NULL, &err), 0);
	moat_deploy_close(ro);
}

/* No certificate outlives its issuer: given days beyond the signer are refused, defaults
 * are cut to it (identities, renewal, the server certificate, the issuing CA). */
static void test_days_within_issuer(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	char short_dir[TU_TMPDIR_MAX + 8];
	snprintf(short_dir, sizeof(short_dir), "%s/short", f->root);
	int64_t now = moat_time_now();
	/* a root of 100 days: the issuing CA's default 1825 is cut to it, 200 refused */
	struct moat_init_opts io = {
		.dir = short_dir, .name = "short", .now = now, .ca_days = 100, .issuer_days = 200};
	assert_int_equal(moat_deploy_init(&io, PASS, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "no certificate outlives its issuer"));
	io.issuer_days = 0;
	assert_int_equal(moat_deploy_init(&io, PASS, &err), 0);
	struct moat_deploy *d = NULL;
	const struct moat_ca *signer = NULL;
	assert_int_equal(moat_deploy_open(short_dir, MOAT_DEPLOY_WRITE, &d, &err), 0);
	assert_int_equal(moat_deploy_signer(d, &signer, &err), 0);
	int64_t end = moat_pki_ca_not_after(signer);
	assert_true(end <= now + 100 * 86400);
	char p[600];
	struct moat_cert_info info;
	tu_path(p, sizeof(p), short_dir, "pki/server.crt");
	assert_int_equal(moat_cert_info_file(p, &info, &err), 0);
	assert_true(info.not_after <= end);

	struct moat_provision_req far = {.id = "far", .role = MOAT_ROLE_DEVICE, .days = 101};
	assert_int_equal(moat_deploy_provision(d, &far, 1, NULL, NULL, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "--days 101"));
	assert_non_null(strstr(err.msg, "no certificate outlives its issuer"));
	struct moat_provision_req dflt = {.id = "dflt", .role = MOAT_ROLE_DEVICE};
	assert_int_equal(moat_deploy_provision(d, &dflt, 1, NULL, NULL, &err), 0);
	char cp[600];
	assert_int_equal(moat_deploy_identity_path(d, "dflt", "cert.pem", cp, sizeof(cp), &err), 0);
	assert_int_equal(moat_cert_info_file(cp, &info, &err), 0);
	assert_int_equal(info.not_after, end); /* 730 days, cut to the issuing CA */
	assert_int_equal(moat_deploy_renew(d, "dflt", 400, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "--days 400"));
	assert_int_equal(moat_deploy_renew(d, "dflt", 10, &err), 0);
	/* the issuing CA against the root: refused beyond it */
	assert_int_equal(moat_deploy_unlock(d, PASS, &err), 0);
	assert_int_equal(moat_deploy_issuer_rotate(d, 200, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "--days 200"));
	assert_int_equal(moat_deploy_issuer_rotate(d, 50, &err), 0);
	moat_deploy_close(d);
}

static void expect_owner(const char *dir, const char *rel, uid_t uid, gid_t gid, mode_t mode)
{
	char p[512];
	struct stat st;
	tu_path(p, sizeof(p), dir, rel);
	assert_int_equal(lstat(p, &st), 0);
	if (st.st_uid != uid || st.st_gid != gid || (st.st_mode & 07777) != mode) {
		fail_msg("%s: %u:%u %04o, expected %u:%u %04o", rel, (unsigned)st.st_uid,
			 (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777), (unsigned)uid,
			 (unsigned)gid, (unsigned)mode);
	}
}

static void test_own_gives_moatd_its_files(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	if (geteuid() != 0) {
		/* not root: nothing changes hands */
		assert_int_equal(moat_deploy_own(f->d, MOAT_DEPLOY_OWN_STRICT, &err), 0);
		skip();
	}
	struct passwd *pw = getpwnam(MOAT_MOATD_USER_DEFAULT);
	assert_non_null(pw); /* moat_deploy_init created it */
	uid_t u = pw->pw_uid;
	gid_t g = pw->pw_gid;
	struct moat_provision_req req = {.id = "backend-service", .role = MOAT_ROLE_SERVICE};
	assert_int_equal(moat_deploy_provision(f->d, &req, 1, NULL, NULL, &err), 0);
	char p[512];
	tu_path(p, sizeof(p), f->dir, "pki/issuer.key");
	tu_write_file(p, "not a key", 9, 0600);
	assert_int_equal(moat_deploy_own(f->d, MOAT_DEPLOY_OWN_STRICT, &err), 0);
	expect_owner(f->dir, "registry.db", u, g, 0600);
	expect_owner(f->dir, "pki/issuer.key", u, g, 0600);
	expect_owner(f->dir, "pki/crl.pem", u, g, 0644);
	expect_owner(f->dir, ".", 0, g, 01775);
	expect_owner(f->dir, "pki", 0, g, 01775);
	expect_owner(f->dir, "pki/identities", 0, g, 01770);
	expect_owner(f->dir, "pki/identities/backend-service", 0, g, 02750);
	expect_owner(f->dir, "pki/identities/backend-service/key.pem", 0, g, 0640);
	/* root's stay root's */
	expect_owner(f->dir, "pki/ca.key", 0, 0, 0600);
	expect_owner(f->dir, "moat.conf", 0, 0, 0644);
	/* idempotent */
	assert_int_equal(moat_deploy_own(f->d, MOAT_DEPLOY_OWN_STRICT, &err), 0);
	expect_owner(f->dir, "registry.db", u, g, 0600);
}

static void test_own_never_follows_a_planted_link(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	if (geteuid() != 0) {
		skip();
	}
	/* moatd's account may create names in pki/: a link where the issuing key would be
	 * must not hand root's chown and chmod to its target */
	char target[512];
	char link_path[512];
	tu_path(target, sizeof(target), f->root, "victim");
	tu_write_file(target, "x", 1, 0644);
	char aside[512];
	tu_path(link_path, sizeof(link_path), f->dir, "pki/issuer.key");
	tu_path(aside, sizeof(aside), f->root, "issuer.key.aside");
	bool had_issuer = rename(link_path, aside) == 0; /* a two-tier deployment has one */
	assert_int_equal(symlink(target, link_path), 0);
	assert_int_not_equal(moat_deploy_own(f->d, MOAT_DEPLOY_OWN_STRICT, &err), 0);
	assert_non_null(strstr(err.msg, "issuer.key"));
	expect_owner(f->root, "victim", 0, 0, 0644);
	assert_int_equal(unlink(link_path), 0);
	if (had_issuer) {
		assert_int_equal(rename(aside, link_path), 0);
	}
	/* the registry itself is never opened through a link */
	moat_deploy_close(f->d);
	f->d = NULL;
	char reg[512];
	char moved[512];
	tu_path(reg, sizeof(reg), f->dir, "registry.db");
	tu_path(moved, sizeof(moved), f->root, "registry-real.db");
	assert_int_equal(rename(reg, moved), 0);
	assert_int_equal(symlink(moved, reg), 0);
	struct moat_deploy *d2 = NULL;
	assert_int_not_equal(moat_deploy_open(f->dir, MOAT_DEPLOY_READ, &d2, &err), 0);
	assert_null(d2);
	assert_int_equal(unlink(reg), 0);
	assert_int_equal(rename(moved, reg), 0);
}

static void test_moatd_user_refusals(void **state)
{
	(void)state;
	struct moat_err err = {0};
	char user[MOAT_DEPLOY_USER_BUF_LEN];
	assert_int_equal(moat_deploy_moatd_user(NULL, user, &err), 0);
	assert_string_equal(user, MOAT_MOATD_USER_DEFAULT);
	static const char *const bad[] = {
		"root", "",  "-moat", "Moat", "mo at", "mo/at", "a23456789012345678901234567890123",
		"1000", ".", "..",    "mo$t"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[128];
		int n = snprintf(text, sizeof(text), "[server]\nuser = %s\n", bad[i]);
		struct moat_config *cfg = NULL;
		if (moat_config_parse("moat.conf", text, (size_t)n, &cfg, &err) != 0) {
			continue; /* refused by the INI reader already */
		}
		if (!moat_config_get(cfg, "server", "user")) {
			moat_config_free(cfg);
			continue; /* an empty value: the default */
		}
		if (moat_deploy_moatd_user(cfg, user, &err) != MOAT_EINVAL) {
			fail_msg("[server] user '%s' accepted", bad[i]);
		}
		assert_non_null(strstr(err.msg, "[server] user"));
		moat_config_free(cfg);
	}
	struct moat_config *cfg = NULL;
	static const char good[] = "[server]\nuser = moat-svc_1.x\n";
	assert_int_equal(moat_config_parse("moat.conf", good, sizeof(good) - 1, &cfg, &err), 0);
	assert_int_equal(moat_deploy_moatd_user(cfg, user, &err), 0);
	assert_string_equal(user, "moat-svc_1.x");
	moat_config_free(cfg);
}

/* [client] host: given (checked like a broker host), or the default from the hosts:
 * the first loopback, else the first IP address, else the first host. */
static void test_client_host(void **state)
{
	(void)state;
	static const struct {
		const char *conf;
		const char *want; /* NULL: refused */
	} cases[] = {
		{"hosts = mqtt.example.com, 10.0.0.5, localhost", "localhost"},
		{"hosts = mqtt.example.com, 10.0.0.5, ::1", "::1"},
		{"hosts = mqtt.example.com, 127.0.0.2", "127.0.0.2"},
		{"hosts = mqtt.example.com, 10.0.0.5", "10.0.0.5"},
		{"hosts = mqtt.example.com, mqtt2.example.com", "mqtt.example.com"},
		{"hosts = mqtt.example.com\n[client]\nhost = 127.0.0.1", "127.0.0.1"},
		{"hosts = localhost\n[client]\nhost = ops.example.com", "ops.example.com"},
		{"hosts = localhost\n[client]\nhost = bad_host", NULL},
		{"hosts = localhost\n[client]\nhost = -bad", NULL},
		{"hosts = localhost\n[client]\nname = x", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[512];
		int n = snprintf(text, sizeof(text),
				 "[deployment]\nformat = %s\nname = t\n[broker]\n%s\n",
				 MOAT_CONF_FORMAT, cases[i].conf);
		struct moat_config *cfg = NULL;
		struct moat_deploy_conf conf;
		struct moat_err err = {0};
		assert_int_equal(moat_config_parse("moat.conf", text, (size_t)n, &cfg, &err), 0);
		int rc = deploy_conf_parse(cfg, &conf, &err);
		moat_config_free(cfg);
		if (!cases[i].want) {
			if (rc == 0) {
				fail_msg("accepted: %s", cases[i].conf);
			}
			continue;
		}
		if (rc != 0) {
			fail_msg("refused: %s: %s", cases[i].conf, err.msg);
		}
		assert_string_equal(conf.client_host, cases[i].want);
	}
}

/* [pki] expiry_warning: the dashboard's window of certificates expiring. */
static void test_expiry_warning(void **state)
{
	(void)state;
	static const struct {
		const char *value; /* NULL: the key is absent */
		int64_t want_s;	   /* 0: refused */
	} cases[] = {
		{NULL, MOAT_EXPIRY_WARNING_DEFAULT_S},
		{"14d", 14 * 86400},
		{"1s", 1},
		{"365d", 365 * 86400},
		{"14", 0},    /* a bare number: the unit is required */
		{"500ms", 0}, /* under a second */
		{"366d", 0},
		{"soon", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[512];
		int n = snprintf(text, sizeof(text),
				 "[deployment]\nformat = %s\nname = t\n[broker]\nhosts = localhost\n"
				 "[pki]\n%s%s\n",
				 MOAT_CONF_FORMAT, cases[i].value ? "expiry_warning = " : "",
				 cases[i].value ? cases[i].value : "");
		struct moat_config *cfg = NULL;
		struct moat_deploy_conf conf;
		struct moat_err err = {0};
		assert_int_equal(moat_config_parse("moat.conf", text, (size_t)n, &cfg, &err), 0);
		int rc = deploy_conf_parse(cfg, &conf, &err);
		moat_config_free(cfg);
		if (cases[i].want_s == 0) {
			if (rc == 0) {
				fail_msg("accepted: %s", cases[i].value);
			}
			assert_non_null(strstr(err.msg, "[pki] expiry_warning"));
			continue;
		}
		if (rc != 0) {
			fail_msg("refused: %s: %s", cases[i].value ? cases[i].value : "(absent)",
				 err.msg);
		}
		assert_int_equal(conf.expiry_warning, cases[i].want_s);
	}
}

static void test_own_with_a_missing_account(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	if (geteuid() != 0) {
		skip();
	}
	char p[512];
	tu_path(p, sizeof(p), f->dir, "moat.conf");
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(moat_fs_read_all(p, 1 << 20, &text, &len, &err), 0);
	char *at = strstr(text, "[server]\n");
	assert_non_null(at);
	at += strlen("[server]\n");
	char buf[8192];
	int n = snprintf(buf, sizeof(buf), "%.*suser = no-such-moatd-user\n%s", (int)(at - text),
			 text, at);
	free(text);
	assert_true(n > 0 && (size_t)n < sizeof(buf));
	tu_write_file(p, buf, (size_t)n, 0644);
	moat_deploy_close(f->d);
	f->d = NULL;
	assert_int_equal(moat_deploy_open(f->dir, MOAT_DEPLOY_WRITE, &f->d, &err), 0);
	/* a configured account is never created */
	assert_int_equal(moat_deploy_own(f->d, MOAT_DEPLOY_OWN_CREATE, &err), MOAT_ENOENT);
	assert_non_null(strstr(err.msg, "no-such-moatd-user"));
	assert_null(getpwnam("no-such-moatd-user"));
	assert_int_equal(moat_deploy_own(f->d, MOAT_DEPLOY_OWN_STRICT, &err), MOAT_ENOENT);
	assert_int_equal(moat_deploy_own(f->d, MOAT_DEPLOY_OWN_IF_USER, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_provision_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_provision_refuses_duplicates_and_bad_names,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_provision_rolls_back_on_late_failure, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_provision_interrupted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_provision_interrupted_midway, setup, teardown),
		cmocka_unit_test_setup_teardown(test_provision_needs_unlock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revoke_and_renew, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_cert_add_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enroll_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enroll_claim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_provision_from_csr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_days_within_issuer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_gives_moatd_its_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_never_follows_a_planted_link, setup,
						teardown),
		cmocka_unit_test(test_moatd_user_refusals),
		cmocka_unit_test(test_client_host),
		cmocka_unit_test(test_expiry_warning),
		cmocka_unit_test_setup_teardown(test_own_with_a_missing_account, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
