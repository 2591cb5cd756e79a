/* test_registry.c: the SQLite registry (include/moat/registry.h). Each test gets a fresh
 * registry.db in a temporary directory. Pinned: create/open rules, refusal of foreign
 * SQLite files without touching them, duplicate identities and serials, revocation rules,
 * the order of the walks, meta counters, and that a rolled-back transaction leaves nothing. */
#include <fcntl.h>
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
#include <sqlite3.h>

#include "moat/fsutil.h"
#include "moat/registry.h"

static char tmp_root[256];
static char db_path[512];

static int setup(void **state)
{
	(void)state;
	const char *base = getenv("TMPDIR");
	snprintf(tmp_root, sizeof(tmp_root), "%s/moat-test-registry-XXXXXX",
		 base && *base ? base : "/tmp");
	return mkdtemp(tmp_root) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	struct moat_err err;
	return moat_fs_remove_tree(tmp_root, &err) == 0 ? 0 : -1;
}

/* Per test: a new registry at db_path, handed over in *state. */
static int reg_setup(void **state)
{
	static int n;
	struct moat_err err;
	snprintf(db_path, sizeof(db_path), "%s/registry-%d.db", tmp_root, n++);
	struct moat_registry *reg = NULL;
	if (moat_registry_open(db_path, true, &reg, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	*state = reg;
	return 0;
}

static int reg_teardown(void **state)
{
	moat_registry_close(*state);
	return 0;
}

static void add_identity(struct moat_registry *reg, const char *id, enum moat_role role)
{
	struct moat_err err;
	if (moat_registry_identity_insert(reg, id, role, "sensor", 1000, &err) != 0) {
		fail_msg("%s: %s", id, err.msg);
	}
}

static void add_cert(struct moat_registry *reg, const char *serial, const char *id,
		     int64_t nb)
{
	struct moat_err err;
	if (moat_registry_cert_insert(reg, serial, id, nb, nb + 3600, "PEM", &err) != 0) {
		fail_msg("%s: %s", serial, err.msg);
	}
}

/* Bytes of a file, for "left untouched" checks (caller frees). */
static char *slurp(const char *path, size_t *len)
{
	char *data = NULL;
	struct moat_err err;
	assert_int_equal(moat_fs_read_all(path, 1 << 24, &data, len, &err), 0);
	return data;
}

static void test_create_open(void **state)
{
	(void)state;
	struct moat_err err;
	char path[512];
	snprintf(path, sizeof(path), "%s/fresh.db", tmp_root);
	struct moat_registry *reg = NULL;
	/* opening what does not exist is not a create */
	assert_int_equal(moat_registry_open(path, false, &reg, &err), MOAT_ENOENT);
	assert_null(reg);
	assert_false(moat_fs_exists(path));
	mode_t old = umask(0);
	assert_int_equal(moat_registry_open(path, true, &reg, &err), 0);
	umask(old);
	assert_non_null(moat_registry_db(reg));
	add_identity(reg, "dev-1", MOAT_ROLE_DEVICE);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600); /* even under umask 0 */
	moat_registry_close(reg);
	moat_registry_close(NULL);
	/* create refuses an existing file */
	reg = NULL;
	assert_int_equal(moat_registry_open(path, true, &reg, &err), MOAT_EEXIST);
	assert_null(reg);
	assert_non_null(strstr(err.msg, "already exists"));
	/* reopen keeps the data */
	assert_int_equal(moat_registry_open(path, false, &reg, &err), 0);
	bool exists = false;
	assert_int_equal(moat_registry_identity_exists(reg, "dev-1", &exists, &err), 0);
	assert_true(exists);
	int64_t crl = -1;
	assert_int_equal(moat_registry_meta_get_int(reg, "crl_number", &crl, &err), 0);
	assert_int_equal(crl, 0);
	moat_registry_close(reg);
}

/* A SQLite database that is not a registry is refused, and not modified by the attempt
 * (no switch to WAL, no migration, no -wal file). */
static void test_foreign_sqlite_refused(void **state)
{
	(void)state;
	struct moat_err err;
	char path[512];
	snprintf(path, sizeof(path), "%s/foreign.db", tmp_root);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);", NULL,
				      NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	size_t before_len = 0;
	char *before = slurp(path, &before_len);

	struct moat_registry *reg = NULL;
	assert_int_equal(moat_registry_open(path, false, &reg, &err), MOAT_EINVAL);
	assert_null(reg);
	assert_non_null(strstr(err.msg, "foreign.db: not a moat registry"));
	size_t after_len = 0;
	char *after = slurp(path, &after_len);
	assert_int_equal(before_len, after_len);
	assert_memory_equal(before, after, before_len);
	char wal[600];
	snprintf(wal, sizeof(wal), "%s-wal", path);
	assert_false(moat_fs_exists(wal));
	free(before);
	free(after);

	/* an empty file and a text file: refused, left as they were */
	static const char *const others[] = {"", "[deployment]\nname = x\n"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/other-%zu.db", tmp_root, i);
		assert_int_equal(moat_fs_write_atomic(path, others[i], strlen(others[i]), 0600, &err),
				 0);
		reg = NULL;
		moat_err_clear(&err);
		int rc = moat_registry_open(path, false, &reg, &err);
		assert_true(rc == MOAT_EINVAL || rc == MOAT_EDB);
		assert_null(reg);
		assert_non_null(strstr(err.msg, "not a moat registry"));
		char *now = slurp(path, &after_len);
		assert_int_equal(after_len, strlen(others[i]));
		assert_memory_equal(now, others[i], after_len);
		free(now);
	}
}

static void test_newer_schema_refused(void **state)
{
	(void)state;
	struct moat_err err;
	char path[512];
	snprintf(path, sizeof(path), "%s/future.db", tmp_root);
	struct moat_registry *reg = NULL;
	assert_int_equal(moat_registry_open(path, true, &reg, &err), 0);
	assert_int_equal(sqlite3_exec(moat_registry_db(reg), "PRAGMA user_version = 999", NULL,
				      NULL, NULL),
			 SQLITE_OK);
	moat_registry_close(reg);
	reg = NULL;
	assert_int_equal(moat_registry_open(path, false, &reg, &err), MOAT_ESTATE);
	assert_null(reg);
	assert_non_null(strstr(err.msg, "newer than this moat"));
}

static void test_identities(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_identity(reg, "dev-1", MOAT_ROLE_DEVICE);
	assert_int_equal(moat_registry_identity_insert(reg, "dev-1", MOAT_ROLE_SERVICE, NULL, 5,
						       &err),
			 MOAT_EEXIST);
	assert_string_equal(err.msg, "identity 'dev-1' already exists");
	assert_int_equal(moat_registry_identity_insert(reg, "svc", MOAT_ROLE_SERVICE, NULL, 7,
						       &err),
			 0);
	/* a role outside the enum is refused, and not reported as a duplicate */
	moat_err_clear(&err);
	int rc = moat_registry_identity_insert(reg, "odd", (enum moat_role)7, NULL, 7, &err);
	assert_int_not_equal(rc, 0);
	assert_int_not_equal(rc, MOAT_EEXIST);

	struct moat_identity ident;
	assert_int_equal(moat_registry_identity_get(reg, "dev-1", &ident, &err), 0);
	assert_string_equal(ident.id, "dev-1");
	assert_int_equal(ident.role, MOAT_ROLE_DEVICE);
	assert_string_equal(ident.device_type, "sensor");
	assert_int_equal(ident.status, MOAT_ID_ACTIVE);
	assert_int_equal(ident.created_at, 1000);
	assert_string_equal(ident.serial_hex, ""); /* no certificate yet */
	assert_false(ident.cert_revoked);
	assert_int_equal(moat_registry_identity_get(reg, "svc", &ident, &err), 0);
	assert_int_equal(ident.role, MOAT_ROLE_SERVICE);
	assert_string_equal(ident.device_type, "");

	assert_int_equal(moat_registry_identity_get(reg, "nobody", &ident, &err), MOAT_ENOENT);
	assert_string_equal(err.msg, "no identity 'nobody'");
	bool exists = true;
	assert_int_equal(moat_registry_identity_exists(reg, "nobody", &exists, &err), 0);
	assert_false(exists);

	assert_int_equal(moat_registry_identity_set_status(reg, "dev-1", MOAT_ID_DISABLED, &err),
			 0);
	assert_int_equal(moat_registry_identity_get(reg, "dev-1", &ident, &err), 0);
	assert_int_equal(ident.status, MOAT_ID_DISABLED);
	assert_int_equal(moat_registry_identity_set_status(reg, "nobody", MOAT_ID_REVOKED, &err),
			 MOAT_ENOENT);
	assert_string_equal(moat_identity_status_name(MOAT_ID_ACTIVE), "active");
	assert_string_equal(moat_identity_status_name(MOAT_ID_REVOKED), "revoked");
	assert_string_equal(moat_identity_status_name(MOAT_ID_DISABLED), "disabled");
	assert_string_equal(moat_identity_status_name((enum moat_identity_status)9), "unknown");
}

static void test_certificates(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_identity(reg, "dev-1", MOAT_ROLE_DEVICE);
	add_cert(reg, "4aaa", "dev-1", 100);
	assert_int_equal(moat_registry_cert_insert(reg, "4aaa", "dev-1", 1, 2, "PEM2", &err),
			 MOAT_EEXIST);
	assert_string_equal(err.msg, "certificate serial 4aaa already exists");
	/* a certificate for an identity that does not exist is refused, and not as a
	 * duplicate serial (the caller would draw serials forever) */
	moat_err_clear(&err);
	int rc = moat_registry_cert_insert(reg, "4bbb", "ghost", 1, 2, "PEM", &err);
	assert_int_not_equal(rc, 0);
	assert_int_not_equal(rc, MOAT_EEXIST);
	bool exists = true;
	assert_int_equal(moat_registry_serial_exists(reg, "4bbb", &exists, &err), 0);
	assert_false(exists);
	assert_int_equal(moat_registry_serial_exists(reg, "4aaa", &exists, &err), 0);
	assert_true(exists);

	char *pem = NULL;
	assert_int_equal(moat_registry_cert_pem(reg, "4aaa", &pem, &err), 0);
	assert_string_equal(pem, "PEM");
	free(pem);
	pem = NULL;
	assert_int_equal(moat_registry_cert_pem(reg, "4fff", &pem, &err), MOAT_ENOENT);
	assert_null(pem);

	/* the current certificate: the newest unrevoked one */
	add_cert(reg, "4ccc", "dev-1", 200);
	struct moat_identity ident;
	assert_int_equal(moat_registry_identity_get(reg, "dev-1", &ident, &err), 0);
	assert_string_equal(ident.serial_hex, "4ccc");
	assert_int_equal(ident.not_before, 200);
	assert_int_equal(ident.not_after, 3800);
	assert_false(ident.cert_revoked);
	assert_int_equal(moat_registry_cert_revoke(reg, "4ccc", 1, 300, &err), 0);
	assert_int_equal(moat_registry_identity_get(reg, "dev-1", &ident, &err), 0);
	assert_string_equal(ident.serial_hex, "4aaa");
	assert_false(ident.cert_revoked);
	/* all revoked: the newest, flagged */
	assert_int_equal(moat_registry_cert_revoke(reg, "4aaa", 0, 301, &err), 0);
	assert_int_equal(moat_registry_identity_get(reg, "dev-1", &ident, &err), 0);
	assert_string_equal(ident.serial_hex, "4ccc");
	assert_true(ident.cert_revoked);
}

static void test_revoke(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_identity(reg, "dev-1", MOAT_ROLE_DEVICE);
	add_cert(reg, "4aaa", "dev-1", 100);
	assert_int_equal(moat_registry_cert_revoke(reg, "4aaa", 1, 500, &err), 0);
	assert_int_equal(moat_registry_cert_revoke(reg, "4aaa", 4, 600, &err), MOAT_ESTATE);
	assert_string_equal(err.msg, "certificate 4aaa is already revoked");
	assert_int_equal(moat_registry_cert_revoke(reg, "4bbb", 1, 500, &err), MOAT_ENOENT);
	assert_string_equal(err.msg, "no certificate 4bbb");
}

struct collected {
	char names[16][MOAT_ID_BUF_LEN];
	struct moat_cert_row rows[16];
	int count;
	int stop_at; /* return 99 from the callback when count reaches this */
};

static int collect_ident(const struct moat_identity *ident, void *ctx)
{
	struct collected *c = ctx;
	snprintf(c->names[c->count], sizeof(c->names[0]), "%s", ident->id);
	c->count++;
	return c->count == c->stop_at ? 99 : 0;
}

static int collect_cert(const struct moat_cert_row *row, void *ctx)
{
	struct collected *c = ctx;
	c->rows[c->count] = *row;
	c->count++;
	return c->count == c->stop_at ? 99 : 0;
}

static void test_foreach(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	/* inserted out of order */
	add_identity(reg, "zeta", MOAT_ROLE_DEVICE);
	add_identity(reg, "alpha", MOAT_ROLE_DEVICE);
	add_identity(reg, "ops", MOAT_ROLE_OPERATOR);
	add_identity(reg, "mid-1", MOAT_ROLE_SERVICE);
	add_identity(reg, "beta", MOAT_ROLE_DEVICE);

	struct collected c = {.stop_at = -1};
	assert_int_equal(moat_registry_identity_foreach(reg, -1, collect_ident, &c, &err), 0);
	assert_int_equal(c.count, 5);
	static const char *const all[] = {"alpha", "beta", "mid-1", "ops", "zeta"};
	for (int i = 0; i < 5; i++) {
		assert_string_equal(c.names[i], all[i]);
	}
	memset(&c, 0, sizeof(c));
	c.stop_at = -1;
	assert_int_equal(moat_registry_identity_foreach(reg, MOAT_ROLE_DEVICE, collect_ident, &c,
							&err),
			 0);
	assert_int_equal(c.count, 3);
	assert_string_equal(c.names[0], "alpha");
	assert_string_equal(c.names[2], "zeta");
	memset(&c, 0, sizeof(c));
	c.stop_at = -1;
	assert_int_equal(moat_registry_identity_foreach(reg, MOAT_ROLE_OPERATOR, collect_ident, &c,
							&err),
			 0);
	assert_int_equal(c.count, 1);
	assert_string_equal(c.names[0], "ops");
	/* a non-zero callback result stops the walk and comes back */
	memset(&c, 0, sizeof(c));
	c.stop_at = 2;
	assert_int_equal(moat_registry_identity_foreach(reg, -1, collect_ident, &c, &err), 99);
	assert_int_equal(c.count, 2);

	add_cert(reg, "7f00", "zeta", 1);
	add_cert(reg, "4100", "alpha", 2);
	add_cert(reg, "5500", "beta", 3);
	assert_int_equal(moat_registry_cert_revoke(reg, "5500", 9, 77, &err), 0);
	memset(&c, 0, sizeof(c));
	c.stop_at = -1;
	assert_int_equal(moat_registry_cert_foreach(reg, false, collect_cert, &c, &err), 0);
	assert_int_equal(c.count, 3);
	assert_string_equal(c.rows[0].serial_hex, "4100");
	assert_string_equal(c.rows[0].identity, "alpha");
	assert_false(c.rows[0].revoked);
	assert_string_equal(c.rows[1].serial_hex, "5500");
	assert_true(c.rows[1].revoked);
	assert_int_equal(c.rows[1].revoked_at, 77);
	assert_int_equal(c.rows[1].reason, 9);
	assert_string_equal(c.rows[2].serial_hex, "7f00");
	assert_int_equal(c.rows[2].not_before, 1);
	assert_int_equal(c.rows[2].not_after, 3601);
	memset(&c, 0, sizeof(c));
	c.stop_at = -1;
	assert_int_equal(moat_registry_cert_foreach(reg, true, collect_cert, &c, &err), 0);
	assert_int_equal(c.count, 1);
	assert_string_equal(c.rows[0].serial_hex, "5500");
	memset(&c, 0, sizeof(c));
	c.stop_at = 1;
	assert_int_equal(moat_registry_cert_foreach(reg, false, collect_cert, &c, &err), 99);
	assert_int_equal(c.count, 1);
}

static void test_meta(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	int64_t v = -1;
	assert_int_equal(moat_registry_meta_get_int(reg, "crl_number", &v, &err), 0);
	assert_int_equal(v, 0);
	v = 5;
	assert_int_equal(moat_registry_meta_get_int(reg, "nothing", &v, &err), MOAT_ENOENT);
	assert_int_equal(v, 5);
	assert_string_equal(err.msg, "no setting 'nothing'");
	assert_int_equal(moat_registry_meta_set_int(reg, "crl_number", 41, &err), 0);
	assert_int_equal(moat_registry_meta_set_int(reg, "crl_number", 42, &err), 0);
	assert_int_equal(moat_registry_meta_set_int(reg, "big", INT64_MAX, &err), 0);
	assert_int_equal(moat_registry_meta_get_int(reg, "crl_number", &v, &err), 0);
	assert_int_equal(v, 42);
	assert_int_equal(moat_registry_meta_get_int(reg, "big", &v, &err), 0);
	assert_true(v == INT64_MAX);
}

static void test_transactions(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	/* rollback: nothing of the transaction remains */
	assert_int_equal(moat_registry_begin(reg, &err), 0);
	add_identity(reg, "temp", MOAT_ROLE_DEVICE);
	add_cert(reg, "4abc", "temp", 1);
	assert_int_equal(moat_registry_meta_set_int(reg, "crl_number", 9, &err), 0);
	/* a second begin inside the transaction is refused */
	assert_int_not_equal(moat_registry_begin(reg, &err), 0);
	moat_registry_rollback(reg);
	bool exists = true;
	assert_int_equal(moat_registry_identity_exists(reg, "temp", &exists, &err), 0);
	assert_false(exists);
	assert_int_equal(moat_registry_serial_exists(reg, "4abc", &exists, &err), 0);
	assert_false(exists);
	int64_t v = -1;
	assert_int_equal(moat_registry_meta_get_int(reg, "crl_number", &v, &err), 0);
	assert_int_equal(v, 0);
	/* a failed statement inside a transaction does not end it */
	assert_int_equal(moat_registry_begin(reg, &err), 0);
	add_identity(reg, "kept", MOAT_ROLE_DEVICE);
	assert_int_equal(moat_registry_identity_insert(reg, "kept", MOAT_ROLE_DEVICE, NULL, 1,
						       &err),
			 MOAT_EEXIST);
	add_identity(reg, "kept-2", MOAT_ROLE_DEVICE);
	assert_int_equal(moat_registry_commit(reg, &err), 0);
	/* rollback without a transaction is harmless */
	moat_registry_rollback(reg);
	/* commit without a transaction is an error */
	assert_int_not_equal(moat_registry_commit(reg, &err), 0);
	moat_registry_close(reg);
	*state = NULL;
	reg = NULL;
	assert_int_equal(moat_registry_open(db_path, false, &reg, &err), 0);
	*state = reg;
	assert_int_equal(moat_registry_identity_exists(reg, "kept", &exists, &err), 0);
	assert_true(exists);
	assert_int_equal(moat_registry_identity_exists(reg, "kept-2", &exists, &err), 0);
	assert_true(exists);
	assert_int_equal(moat_registry_identity_exists(reg, "temp", &exists, &err), 0);
	assert_false(exists);
}

/* Closing with a transaction open loses it (the process died before commit). */
static void test_close_uncommitted(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	assert_int_equal(moat_registry_begin(reg, &err), 0);
	add_identity(reg, "uncommitted", MOAT_ROLE_DEVICE);
	moat_registry_close(reg);
	*state = NULL;
	reg = NULL;
	assert_int_equal(moat_registry_open(db_path, false, &reg, &err), 0);
	*state = reg;
	bool exists = true;
	assert_int_equal(moat_registry_identity_exists(reg, "uncommitted", &exists, &err), 0);
	assert_false(exists);
}

/* Two connections: a writer's open transaction is invisible to a reader until commit. */
static void test_isolation(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	struct moat_registry *other = NULL;
	assert_int_equal(moat_registry_open(db_path, false, &other, &err), 0);
	assert_int_equal(moat_registry_begin(reg, &err), 0);
	add_identity(reg, "pending", MOAT_ROLE_DEVICE);
	bool exists = true;
	assert_int_equal(moat_registry_identity_exists(other, "pending", &exists, &err), 0);
	assert_false(exists);
	assert_int_equal(moat_registry_commit(reg, &err), 0);
	assert_int_equal(moat_registry_identity_exists(other, "pending", &exists, &err), 0);
	assert_true(exists);
	moat_registry_close(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_open),
		cmocka_unit_test(test_foreign_sqlite_refused),
		cmocka_unit_test(test_newer_schema_refused),
		cmocka_unit_test_setup_teardown(test_identities, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_certificates, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_revoke, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_foreach, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_meta, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_transactions, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_close_uncommitted, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_isolation, reg_setup, reg_teardown),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
