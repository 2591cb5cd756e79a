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

#include "moat/deploy.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"
#include "testutil.h"

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
	assert_non_null(strstr(err.msg, "wrong passphrase"));
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

	assert_int_equal(moat_deploy_renew(f->d, "r1", 10, &err), 0);
	assert_int_equal(moat_registry_identity_get(moat_deploy_registry(f->d), "r1", &after, &err),
			 0);
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
	tu_path(link_path, sizeof(link_path), f->dir, "pki/issuer.key");
	assert_int_equal(symlink(target, link_path), 0);
	assert_int_not_equal(moat_deploy_own(f->d, MOAT_DEPLOY_OWN_STRICT, &err), 0);
	assert_non_null(strstr(err.msg, "issuer.key"));
	expect_owner(f->root, "victim", 0, 0, 0644);
	assert_int_equal(unlink(link_path), 0);
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
		"root", "", "-moat", "Moat", "mo at", "mo/at", "a23456789012345678901234567890123"};
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
		moat_config_free(cfg);
	}
	struct moat_config *cfg = NULL;
	static const char good[] = "[server]\nuser = moat-svc_1.x\n";
	assert_int_equal(moat_config_parse("moat.conf", good, sizeof(good) - 1, &cfg, &err), 0);
	assert_int_equal(moat_deploy_moatd_user(cfg, user, &err), 0);
	assert_string_equal(user, "moat-svc_1.x");
	moat_config_free(cfg);
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
		cmocka_unit_test_setup_teardown(test_own_gives_moatd_its_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_never_follows_a_planted_link, setup,
						teardown),
		cmocka_unit_test(test_moatd_user_refusals),
		cmocka_unit_test_setup_teardown(test_own_with_a_missing_account, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
