/* test_registry_db.c: the registry's statement layer (src/registry/db.h) and the files
 * on it (registry.c: identities, certificates, meta, transactions and points, opening by location;
 * dashboard.c, deletions.c, enroll.c, groups.c, jobs.c, monitor.c, releases.c, rollouts.c,
 * stats.c, update_events.c), the same tests on either backend: SQLite (a registry.db in
 * a temporary directory) by default, PostgreSQL when MOAT_TEST_PG_URL names a database this test
 * may empty (tests/e2e/test_registry_pg.sh starts a real PostgreSQL 15 and runs it so). Pinned: the
 * dialect translation, what each open wants of the location (create, open, read-only; an empty
 * database or one with other tables), duplicate identities and serials refused inside a
 * transaction that goes on, the current certificate, revocation, the walks' orders, meta, that a
 * rolled-back transaction or point leaves nothing and a closed connection's open one is lost,
 * registry URLs, every refusal of the converted functions (duplicates told apart by primary key and
 * unique constraint, unknown rows, used enrollments, full tag sets, unrevoked certificates,
 * releases published twice or listing unknown devices, events of unknown devices, stages the schema
 * does not know, missing tables), ids from RETURNING, the orders of the walks, that a failed job
 * insert, release or update event or a rolled-back savepoint leaves nothing, and that a refused
 * release or update event inside the caller's transaction leaves that transaction usable
 * (PostgreSQL aborts a transaction at its first failed statement); the monitoring tables: device
 * state merged by several writers (the scalar MAX), diagnostics, security events recorded once per
 * origin and filtered, telemetry folded into minute and hour aggregates and retention; rollouts:
 * one per release, moves only from the state the caller saw, joins, acceptance, and what each
 * device's stage, firmware and signals read since its phase started; the dashboard: links spent
 * once, sessions, pruning, the device table's filters and pages, tags, raw telemetry, one
 * identity's certificates; copy.c: the per-table sums (count, SHA-256, last id) equal across the
 * engines and naming the one table a changed value or a moved sequence touches, and a SQLite
 * registry copied into PostgreSQL (proven, its sequences continued; refused into a database that
 * holds a registry or another table, or for a value of another type, leaving it as it was). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "db.h"
#include "moat/registry.h"
#include "registry_internal.h"
#include "testutil.h"
#include "testutil_registry.h"

static char tmp_root[TU_TMPDIR_MAX];
static const char *pg_url;     /* MOAT_TEST_PG_URL: the tests run on PostgreSQL */
static char reg_location[600]; /* the registry under test: its file, or pg_url */

static int setup(void **state)
{
	(void)state;
	pg_url = getenv("MOAT_TEST_PG_URL");
	if (pg_url && !*pg_url) {
		pg_url = NULL;
	}
	return tu_tmpdir_make(tmp_root, sizeof(tmp_root), "registry-db");
}

static int teardown(void **state)
{
	(void)state;
	return tu_tmpdir_remove(tmp_root);
}

/* Empties the PostgreSQL database: each test starts from a schema made by the migrations. */
static int pg_empty(void)
{
	struct rdb c;
	if (rdb_connect_pg(&c, pg_url) != 0) {
		fprintf(stderr, "%s\n", c.errmsg);
		return -1;
	}
	int rc = rdb_exec(&c, "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
	if (rc != 0) {
		fprintf(stderr, "%s\n", rdb_errmsg(&c));
	}
	rdb_disconnect(&c);
	return rc;
}

static int reg_setup(void **state)
{
	static int n;
	struct moat_err err;
	struct moat_registry *reg = NULL;
	int rc;
	if (pg_url) {
		if (pg_empty() != 0) {
			return -1;
		}
		snprintf(reg_location, sizeof(reg_location), "%s", pg_url);
	} else {
		snprintf(reg_location, sizeof(reg_location), "%s/registry-%d.db", tmp_root, n++);
	}
	/* a URL goes to PostgreSQL, a path to SQLite: moat_registry_open decides */
	rc = moat_registry_open(reg_location, true, &reg, &err);
	if (rc != 0) {
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

/* Rows written past the registry's API (a certificate already revoked, in one statement),
 * through the layer so the same fixture serves both backends. */
static void raw(struct moat_registry *reg, const char *sql, const char *a, const char *b, int64_t x)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), sql, &st) != 0) {
		fail_msg("prepare %s: %s", sql, rdb_errmsg(reg_db(reg)));
	}
	int n = rdb_param_count(st);
	if (n >= 1) {
		rdb_bind_text(st, 1, a);
	}
	if (n >= 2) {
		rdb_bind_text(st, 2, b);
	}
	if (n >= 3) {
		rdb_bind_int64(st, 3, x);
	}
	int s = rdb_step(st);
	if (s != RDB_DONE) {
		fail_msg("%s: %d %s", sql, s, rdb_errmsg(reg_db(reg)));
	}
	rdb_finalize(st);
}

static void add_device(struct moat_registry *reg, const char *id)
{
	raw(reg,
	    "INSERT INTO identities(id, role, device_type, created_at) VALUES (?1, 'device', ?2, ?3)",
	    id, "sensor", 1000);
}

/* A certificate of id, revoked (reason 1 at 2000) when revoked. */
static void add_cert(struct moat_registry *reg, const char *serial, const char *id, int64_t nb,
		     bool revoked)
{
	raw(reg,
	    revoked ? "INSERT INTO certificates(serial, identity, not_before, not_after, pem, "
		      "revoked_at, reason) VALUES (?1, ?2, ?3, ?3 + 3600, 'PEM', 2000, 1)"
		    : "INSERT INTO certificates(serial, identity, not_before, not_after, pem) "
		      "VALUES (?1, ?2, ?3, ?3 + 3600, 'PEM')",
	    serial, id, nb);
}

/* expr must succeed; else its message fails the test. */
#define OK(expr)                                            \
	do {                                                \
		if ((expr) != 0) {                          \
			fail_msg("%s: %s", #expr, err.msg); \
		}                                           \
	} while (0)

static int64_t count(struct moat_registry *reg, const char *sql)
{
	struct rdb_stmt *st = NULL;
	assert_int_equal(rdb_prepare(reg_db(reg), sql, &st), 0);
	assert_int_equal(rdb_step(st), RDB_ROW);
	int64_t n = rdb_column_int64(st, 0);
	rdb_finalize(st);
	return n;
}

/* ---- the layer on its own ---- */

static void expect_translation(const char *in, const char *want)
{
	char out[512];
	int params = -1;
	assert_int_equal(rdb_translate(in, out, sizeof(out), &params), 0);
	assert_string_equal(out, want);
}

static void test_translate(void **state)
{
	(void)state;
	char out[512];
	int params = 0;
	expect_translation("SELECT a FROM t WHERE a = ?1 AND b = ?12",
			   "SELECT a FROM t WHERE a = $1 AND b = $12");
	assert_int_equal(rdb_translate("SELECT ?3, ?1", out, sizeof(out), &params), 0);
	assert_int_equal(params, 3);
	expect_translation("SELECT ?, ?", "SELECT $1, $2");
	/* quoted text is never rewritten */
	expect_translation("SELECT '?1 rowid', \"group_concat\" FROM t WHERE x = 'it''s ?'",
			   "SELECT '?1 rowid', \"group_concat\" FROM t WHERE x = 'it''s ?'");
	expect_translation("INSERT OR IGNORE INTO t(a) SELECT ?1 WHERE 1",
			   "INSERT INTO t(a) SELECT $1 WHERE 1 ON CONFLICT DO NOTHING");
	expect_translation("insert  or\n ignore into t VALUES (1); SELECT 1",
			   "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING; SELECT 1");
	expect_translation("SELECT group_concat(t.tag, ',') FROM x ORDER BY rowid DESC",
			   "SELECT string_agg(t.tag, ',') FROM x ORDER BY ctid DESC");
	/* SQLite's scalar MAX/MIN (two or more arguments) are GREATEST/LEAST; the one-argument
	 * aggregates, columns named max or min and quoted commas are left alone */
	expect_translation("UPDATE t SET max = MAX(excluded.max, t.max), n = min( t.n , ?1)",
			   "UPDATE t SET max = GREATEST(excluded.max, t.max), n = LEAST( t.n , $1)");
	expect_translation("SELECT max(a), MIN(DISTINCT b), max (c, d, e), min(f(g, h))",
			   "SELECT max(a), MIN(DISTINCT b), GREATEST (c, d, e), min(f(g, h))");
	expect_translation("SELECT min(',', 'it''s,'), max(',') FROM t",
			   "SELECT LEAST(',', 'it''s,'), max(',') FROM t");
	expect_translation("SELECT Max((1), min(2, 3)), maxim(1, 2), t.max, max",
			   "SELECT GREATEST((1), LEAST(2, 3)), maxim(1, 2), t.max, max");
	expect_translation("SELECT max(a, (b", "SELECT max(a, (b"); /* unclosed: as it is */
	/* instr called is strpos (same arguments, same result); a column or quoted text named
	 * instr, and longer words, are left alone */
	expect_translation("SELECT 1 WHERE instr(i.id, ?1) > 0 AND INSTR (a, 'instr(') = 0",
			   "SELECT 1 WHERE strpos(i.id, $1) > 0 AND strpos (a, 'instr(') = 0");
	expect_translation("SELECT instr, t.instr, instrs(a), \"instr\"(b) FROM t",
			   "SELECT instr, t.instr, instrs(a), \"instr\"(b) FROM t");
	/* whole words only */
	expect_translation("SELECT my_rowid, rowids FROM t", "SELECT my_rowid, rowids FROM t");
	/* schema types only in schema text */
	expect_translation("CREATE TABLE t (a INTEGER)", "CREATE TABLE t (a INTEGER)");
	assert_int_equal(
		rdb_translate_schema("CREATE TABLE t (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
				     " n INTEGER NOT NULL, r REAL, b BLOB, integers TEXT"
				     ") WITHOUT ROWID;",
				     out, sizeof(out)),
		0);
	assert_string_equal(out, "CREATE TABLE t (seq BIGINT GENERATED BY DEFAULT AS IDENTITY "
				 "PRIMARY KEY, n BIGINT NOT NULL, r DOUBLE PRECISION, b BYTEA, "
				 "integers TEXT);");
	/* refusals: a buffer too small, placeholders out of range */
	assert_int_equal(rdb_translate("SELECT 1", out, 5, &params), -1);
	assert_int_equal(rdb_translate("SELECT ?1000", out, sizeof(out), &params), -1);
	assert_int_equal(rdb_translate("SELECT ?0", out, sizeof(out), &params), -1);
	assert_int_equal(rdb_translate("x", out, 0, &params), -1);
	/* every migration translates */
	char *big = malloc(64 * 1024);
	assert_non_null(big);
	for (int i = 0; i < moat_registry_migration_count; i++) {
		assert_int_equal(rdb_translate_schema(moat_registry_migrations[i], big, 64 * 1024),
				 0);
		assert_null(strstr(big, "AUTOINCREMENT"));
		assert_null(strstr(big, "WITHOUT ROWID"));
	}
	free(big);
}

static void test_url_check(void **state)
{
	(void)state;
	const char *why = NULL;
	const char *good[] = {
		"postgresql://127.0.0.1:5432/moat",
		"postgres://moat:secret@localhost/moat?sslmode=verify-full",
		"postgresql://[::1]:6543/reg",
		"postgresql://u@h/d?sslmode=verify-full",
		"postgresql://u@db.example/d?sslmode=verify-ca&connect_timeout=5",
		"postgresql://127.0.0.2/d?application_name=moat",
		"postgresql://%2Fvar%2Frun%2Fpostgresql/moat",
		"postgresql://h/d?ssl%6dode=verify-full", /* libpq decodes names too */
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(rdb_url_check(good[i], &why), 0);
	}
	struct {
		const char *url;
		const char *why;
	} bad[] = {
		{"mysql://h/d", "must start with postgresql://"},
		{"postgresql://h", "names no database"},
		{"postgresql://h/", "names no database"},
		{"postgresql://h/?x=1", "names no database"},
		{"postgresql:///d", "names no host"},
		{"postgresql://u@/d", "names no host"},
		{"postgresql://@h/d", "empty user name"},
		{"postgresql://h:0/d", "port"},
		{"postgresql://h:65536/d", "port"},
		{"postgresql://h:12a/d", "port"},
		{"postgresql://h:/d", "empty port"},
		{"postgresql://[::1/d", "IPv6"},
		{"postgresql://[::1]x/d", "after the [IPv6]"},
		{"postgresql://h/d b", "space"},
		{"postgresql://h/d\n", "control"},
		/* a remote server is always verified */
		{"postgresql://db.example/d", "without sslmode=verify-full"},
		{"postgresql://db.example/d?sslmode=require", "without sslmode=verify-full"},
		{"postgresql://db.example/d?sslmode=prefer", "without sslmode=verify-full"},
		{"postgresql://127.0.0.1.evil/d", "without sslmode=verify-full"},
		{"postgresql://127.0.0.1,db.example/d", "without sslmode=verify-full"},
		{"postgresql://[::2]/d", "without sslmode=verify-full"},
		/* parameters that would send it elsewhere, or hold a password, even encoded */
		{"postgresql://localhost/d?password=x", "password parameter"},
		{"postgresql://localhost/d?pass%77ord=x", "password parameter"},
		{"postgresql://localhost/d?hostaddr=10.9.9.9", "does not accept"},
		{"postgresql://localhost/d?host=db.example", "does not accept"},
		{"postgresql://localhost/d?sslmode=verify-full&dbname=other", "does not accept"},
		{"postgresql://localhost/d?service=x", "does not accept"},
		{"postgresql://localhost/d?sslmode", "malformed"},
		{"postgresql://localhost/d?=x", "malformed"},
		{"postgresql://localhost/d?sslmode=%zz", "malformed"},
		{"postgresql://localhost/d?sslmode=verify-full%00", "malformed"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		assert_int_equal(rdb_url_check(bad[i].url, &why), -1);
		assert_non_null(why);
		if (!strstr(why, bad[i].why)) {
			fail_msg("%s: '%s' lacks '%s'", bad[i].url, why, bad[i].why);
		}
	}
	char longer[1100];
	memset(longer, 'a', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	memcpy(longer, "postgresql://h/", 15);
	assert_int_equal(rdb_url_check(longer, &why), -1);
}

/* A registry on a URL whose server is not there: one clear line, nothing opened. */
static void test_pg_unreachable(void **state)
{
	(void)state;
	struct moat_registry *reg = NULL;
	struct moat_err err;
	/* moat_registry_open sends a URL to PostgreSQL, never to a file of that name */
	int rc = moat_registry_open("postgresql://moat:pw@127.0.0.1:1/moat?connect_timeout=5",
				    false, &reg, &err);
	assert_int_equal(rc, MOAT_EDB);
	assert_null(reg);
	/* named without its user and password */
	assert_non_null(strstr(err.msg, "postgresql://127.0.0.1:1/moat: "));
	assert_null(strstr(err.msg, "pw"));
	if (!rdb_pg_available()) {
		assert_non_null(strstr(err.msg, "built without PostgreSQL support"));
	}
	assert_int_equal(moat_registry_open("postgresql://h", true, &reg, &err), MOAT_EINVAL);
	assert_int_not_equal(access("postgresql:", F_OK), 0);
	assert_string_equal(err.msg,
			    "registry URL names no database (postgresql://host[:port]/dbname)");
}

/* ---- registry.c: identities, certificates, meta, transactions ---- */

static void add_identity(struct moat_registry *reg, const char *id, enum moat_role role)
{
	struct moat_err err;
	if (moat_registry_identity_insert(reg, id, role, "sensor", 1000, &err) != 0) {
		fail_msg("%s: %s", id, err.msg);
	}
}

static void insert_cert(struct moat_registry *reg, const char *serial, const char *id, int64_t nb)
{
	struct moat_err err;
	if (moat_registry_cert_insert(reg, serial, id, nb, nb + 3600, "PEM", &err) != 0) {
		fail_msg("%s: %s", serial, err.msg);
	}
}

/* Closes the registry in *state and opens it again (a new connection, as a new process
 * would): what was committed is there, nothing else. */
static struct moat_registry *reopen(void **state)
{
	struct moat_err err;
	struct moat_registry *reg = NULL;
	moat_registry_close(*state);
	*state = NULL;
	if (moat_registry_open(reg_location, false, &reg, &err) != 0) {
		fail_msg("reopen: %s", err.msg);
	}
	*state = reg;
	return reg;
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
	/* moat sim --create marks its devices */
	assert_false(ident.simulated);
	OK(moat_registry_identity_set_simulated(reg, "svc", &err));
	assert_int_equal(moat_registry_identity_get(reg, "svc", &ident, &err), 0);
	assert_true(ident.simulated);
	assert_int_equal(moat_registry_identity_set_simulated(reg, "nobody", &err), MOAT_ENOENT);
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
	insert_cert(reg, "4aaa", "dev-1", 100);
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
	insert_cert(reg, "4ccc", "dev-1", 200);
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
	insert_cert(reg, "4aaa", "dev-1", 100);
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

	insert_cert(reg, "7f00", "zeta", 1);
	insert_cert(reg, "4100", "alpha", 2);
	insert_cert(reg, "5500", "beta", 3);
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
	/* next: one statement adds 1 and returns it; inside a rolled-back transaction it is
	 * undone with the rest */
	assert_int_equal(moat_registry_meta_next(reg, "crl_number", &v, &err), 0);
	assert_int_equal(v, 43);
	assert_int_equal(moat_registry_begin(reg, &err), 0);
	assert_int_equal(moat_registry_meta_next(reg, "crl_number", &v, &err), 0);
	assert_int_equal(v, 44);
	moat_registry_rollback(reg);
	assert_int_equal(moat_registry_meta_get_int(reg, "crl_number", &v, &err), 0);
	assert_int_equal(v, 43);
	v = 5;
	assert_int_equal(moat_registry_meta_next(reg, "nothing", &v, &err), MOAT_ENOENT);
	assert_string_equal(err.msg, "no setting 'nothing'");
}

static void test_transactions(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	/* rollback: nothing of the transaction remains */
	assert_int_equal(moat_registry_begin(reg, &err), 0);
	add_identity(reg, "temp", MOAT_ROLE_DEVICE);
	insert_cert(reg, "4abc", "temp", 1);
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
	reg = reopen(state);
	assert_int_equal(moat_registry_identity_exists(reg, "kept", &exists, &err), 0);
	assert_true(exists);
	assert_int_equal(moat_registry_identity_exists(reg, "kept-2", &exists, &err), 0);
	assert_true(exists);
	assert_int_equal(moat_registry_identity_exists(reg, "temp", &exists, &err), 0);
	assert_false(exists);
	/* a statement that fails outright: SQLite undoes that statement only; PostgreSQL
	 * aborts the transaction, and its COMMIT (answered "ROLLBACK", no error) must fail */
	assert_int_equal(moat_registry_begin(reg, &err), 0);
	add_identity(reg, "after-failure", MOAT_ROLE_DEVICE);
	assert_int_not_equal(rdb_exec(reg_db(reg), "SELECT * FROM no_such_table"), 0);
	if (pg_url) {
		assert_int_not_equal(moat_registry_commit(reg, &err), 0);
		assert_non_null(strstr(err.msg, "rolled back"));
	} else {
		assert_int_equal(moat_registry_commit(reg, &err), 0);
	}
	assert_int_equal(moat_registry_identity_exists(reg, "after-failure", &exists, &err), 0);
	assert_true(exists == !pg_url);
}

/* Closing with a transaction open loses it (the process died before commit). */
static void test_close_uncommitted(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	assert_int_equal(moat_registry_begin(reg, &err), 0);
	add_identity(reg, "uncommitted", MOAT_ROLE_DEVICE);
	reg = reopen(state);
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
	assert_int_equal(moat_registry_open(reg_location, false, &other, &err), 0);
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

/* Points inside a transaction: rolled back alone, or kept; a refused write inside one (a
 * duplicate: on PostgreSQL in its own savepoint) leaves the point and the transaction
 * usable. */
static void test_points(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	assert_int_equal(moat_registry_point(reg, &err), MOAT_ESTATE);
	OK(moat_registry_begin(reg, &err));
	add_identity(reg, "kept", MOAT_ROLE_DEVICE);
	OK(moat_registry_point(reg, &err));
	add_identity(reg, "undone", MOAT_ROLE_DEVICE);
	moat_registry_rollback_point(reg);
	OK(moat_registry_point(reg, &err));
	assert_int_equal(moat_registry_identity_insert(reg, "kept", MOAT_ROLE_DEVICE, NULL, 1,
						       &err),
			 MOAT_EEXIST);
	add_identity(reg, "second", MOAT_ROLE_DEVICE);
	OK(moat_registry_release_point(reg, &err));
	OK(moat_registry_commit(reg, &err));
	reg = reopen(state);
	bool exists = false;
	static const struct {
		const char *id;
		bool want;
	} rows[] = {{"kept", true}, {"undone", false}, {"second", true}};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		OK(moat_registry_identity_exists(reg, rows[i].id, &exists, &err));
		if (exists != rows[i].want) {
			fail_msg("%s: exists %d", rows[i].id, exists);
		}
	}
}

/* What each way of opening wants of the location: a second create is refused, a
 * read-only open reads and refuses every write; on PostgreSQL an empty database is no
 * registry and one holding other tables is never made one. */
static void test_open_modes(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_identity(reg, "dev-1", MOAT_ROLE_DEVICE);
	struct moat_registry *other = NULL;
	assert_int_equal(moat_registry_open(reg_location, true, &other, &err), MOAT_EEXIST);
	assert_null(other);

	struct moat_registry *ro = NULL;
	OK(moat_registry_open_readonly(reg_location, &ro, &err));
	bool exists = false;
	OK(moat_registry_identity_exists(ro, "dev-1", &exists, &err));
	assert_true(exists);
	moat_err_clear(&err);
	int rc = moat_registry_identity_insert(ro, "dev-2", MOAT_ROLE_DEVICE, NULL, 1, &err);
	assert_int_not_equal(rc, 0);
	assert_int_not_equal(rc, MOAT_EEXIST);
	assert_int_not_equal(moat_registry_meta_set_int(ro, "crl_number", 5, &err), 0);
	moat_registry_close(ro);
	OK(moat_registry_identity_exists(reg, "dev-2", &exists, &err));
	assert_false(exists);
	if (!pg_url) {
		return;
	}
	moat_registry_close(reg);
	*state = NULL;
	assert_int_equal(pg_empty(), 0);
	assert_int_equal(moat_registry_open(pg_url, false, &other, &err), MOAT_ENOENT);
	assert_non_null(strstr(err.msg, "no registry"));
	assert_int_equal(moat_registry_open_readonly(pg_url, &other, &err), MOAT_ENOENT);
	assert_null(other);
	/* the refused opens left nothing behind: a create still finds the database empty */
	struct rdb c;
	assert_int_equal(rdb_connect_pg(&c, pg_url), 0);
	assert_int_equal(rdb_exec(&c, "CREATE TABLE theirs (x BIGINT)"), 0);
	rdb_disconnect(&c);
	assert_int_equal(moat_registry_open(pg_url, true, &other, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "holds other tables"));
	assert_int_equal(pg_empty(), 0);
	OK(moat_registry_open(pg_url, true, &other, &err));
	*state = other;
}

/* ---- the converted files, on the backend under test ---- */

static void test_backend(void **state)
{
	struct moat_registry *reg = *state;
	assert_int_equal(reg_db(reg)->backend, pg_url ? RDB_POSTGRES : RDB_SQLITE);
	/* the migrations' rows are there: meta's counter */
	assert_int_equal(count(reg, "SELECT count(*) FROM meta WHERE key = 'crl_number'"), 1);
}

static int group_names(const struct moat_group *g, void *ctx)
{
	char *buf = ctx;
	size_t n = strlen(buf);
	snprintf(buf + n, 256 - n, "%s%s=%s", n ? "," : "", g->name, g->where);
	return 0;
}

static void test_groups(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	struct moat_group g = {.name = "west", .where = "tag=west", .created_at = 5};
	assert_int_equal(moat_registry_group_insert(reg, &g, &err), 0);
	assert_int_equal(moat_registry_group_insert(reg, &g, &err), MOAT_EEXIST);
	assert_string_equal(err.msg, "group 'west' exists");
	struct moat_group a = {.name = "alpha", .where = "type=sensor", .created_at = 6};
	assert_int_equal(moat_registry_group_insert(reg, &a, &err), 0);
	struct moat_group out;
	assert_int_equal(moat_registry_group_get(reg, "west", &out, &err), 0);
	assert_string_equal(out.where, "tag=west");
	assert_int_equal(out.created_at, 5);
	assert_int_equal(moat_registry_group_get(reg, "none", &out, &err), MOAT_ENOENT);
	char names[256] = "";
	assert_int_equal(moat_registry_group_foreach(reg, group_names, names, &err), 0);
	assert_string_equal(names, "alpha=type=sensor,west=tag=west");
	assert_int_equal(moat_registry_group_remove(reg, "west", &err), 0);
	assert_int_equal(moat_registry_group_remove(reg, "west", &err), MOAT_ENOENT);
	assert_string_equal(err.msg, "no group 'west'");
}

static int device_rows(const struct moat_device_row *row, void *ctx)
{
	char *buf = ctx;
	size_t n = strlen(buf);
	n += (size_t)snprintf(buf + n, 512 - n, "%s%s:%s:%s:%lld:", n ? ";" : "", row->id,
			      row->type, row->release, (long long)row->cert_not_before);
	for (size_t i = 0; i < row->tag_count; i++) {
		n += (size_t)snprintf(buf + n, 512 - n, "%s%s", i ? "," : "", row->tags[i]);
	}
	return 0;
}

static void test_tags(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_device(reg, "d1");
	add_device(reg, "d2");
	add_cert(reg, "01", "d1", 100, false);
	add_cert(reg, "02", "d1", 300, true);
	raw(reg, "INSERT INTO device_firmware(device, version, reported_at) VALUES (?1, ?2, ?3)",
	    "d2", "1.2.0", 7);
	assert_int_equal(moat_registry_tag_add(reg, "d1", "west", &err), 0);
	assert_int_equal(moat_registry_tag_add(reg, "d1", "east", &err), 0);
	assert_int_equal(moat_registry_tag_add(reg, "d1", "east", &err), 0); /* already: nothing */
	assert_int_equal(moat_registry_tag_add(reg, "nobody", "x", &err), MOAT_ENOENT);
	for (int i = 0; i < MOAT_TAGS_PER_DEVICE_MAX; i++) {
		char tag[16];
		snprintf(tag, sizeof(tag), "t%02d", i);
		assert_int_equal(moat_registry_tag_add(reg, "d2", tag, &err), 0);
	}
	assert_int_equal(moat_registry_tag_add(reg, "d2", "more", &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "tags already"));
	assert_int_equal(count(reg, "SELECT count(*) FROM device_tags WHERE device = 'd2'"),
			 MOAT_TAGS_PER_DEVICE_MAX);
	char rows[512] = "";
	assert_int_equal(moat_registry_device_rows(reg, "d1", device_rows, rows, &err), 0);
	/* the newest unrevoked certificate; tags sorted */
	assert_string_equal(rows, "d1:sensor::100:east,west");
	rows[0] = '\0';
	assert_int_equal(moat_registry_tag_remove(reg, "d2", "t00", &err), 0);
	assert_int_equal(moat_registry_tag_remove(reg, "d2", "t00", &err), MOAT_ENOENT);
	assert_string_equal(err.msg, "device 'd2' has no tag 't00'");
	raw(reg, "UPDATE identities SET status = 'disabled' WHERE id = ?1", "d1", NULL, 0);
	OK(moat_registry_device_rows(reg, NULL, device_rows, rows, &err));
	assert_non_null(strstr(rows, "d2:sensor:1.2.0:-1:t01,t02"));
	assert_null(strstr(rows, "d1:")); /* not active: only when asked for by name */
}

static int job_results(const struct moat_job_result_row *r, void *ctx)
{
	char *buf = ctx;
	size_t n = strlen(buf);
	snprintf(buf + n, 256 - n, "%s%s=%s/%s@%lld", n ? "," : "", r->device,
		 moat_job_result_name(r->result), r->detail, (long long)r->at);
	return 0;
}

static int job_ids(const struct moat_job_row *j, void *ctx)
{
	char *buf = ctx;
	size_t n = strlen(buf);
	snprintf(buf + n, 256 - n, "%s%lld:%zu", n ? "," : "", (long long)j->id, j->devices);
	return 0;
}

static void test_jobs(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_device(reg, "d1");
	add_device(reg, "d2");
	char *devs[] = {"d2", "d1"};
	struct moat_job_row j = {.command = "reboot",
				 .target = "group:all",
				 .as = "op",
				 .created_at = 10};
	assert_int_equal(moat_registry_job_insert(reg, &j, devs, 2, &err), 0);
	assert_true(j.id > 0);
	struct moat_job_row k = j;
	assert_int_equal(moat_registry_job_insert(reg, &k, devs, 1, &err), 0);
	assert_true(k.id > j.id); /* RETURNING: the new row's id on either backend */
	/* a device twice, or unknown: nothing of that job is kept */
	char *twice[] = {"d1", "d1"};
	struct moat_job_row bad = j;
	assert_int_equal(moat_registry_job_insert(reg, &bad, twice, 2, &err), MOAT_EINVAL);
	assert_string_equal(err.msg, "job: device d1 twice or unknown");
	char *unknown[] = {"ghost"};
	assert_int_equal(moat_registry_job_insert(reg, &bad, unknown, 1, &err), MOAT_EINVAL);
	assert_int_equal(count(reg, "SELECT count(*) FROM jobs"), 2);
	assert_int_equal(count(reg, "SELECT count(*) FROM job_results"), 3);
	struct moat_job_result_row res[] = {
		{.device = "d1", .result = MOAT_JOB_DONE, .detail = "ok", .at = 20},
		{.device = "d2", .result = MOAT_JOB_TIMEOUT, .detail = NULL, .at = 21},
	};
	assert_int_equal(moat_registry_job_results_set(reg, j.id, res, 2, &err), 0);
	assert_int_equal(moat_registry_job_finish(reg, j.id, 30, &err), 0);
	struct moat_job_row got;
	assert_int_equal(moat_registry_job_get(reg, j.id, &got, &err), 0);
	assert_string_equal(got.command, "reboot");
	assert_string_equal(got.target, "group:all");
	assert_int_equal(got.finished_at, 30);
	assert_int_equal(got.devices, 2);
	assert_int_equal(got.counts[MOAT_JOB_DONE], 1);
	assert_int_equal(got.counts[MOAT_JOB_TIMEOUT], 1);
	assert_int_equal(moat_registry_job_get(reg, k.id, &got, &err), 0);
	assert_int_equal(got.finished_at, 0);
	assert_int_equal(got.counts[MOAT_JOB_PENDING], 1);
	assert_int_equal(moat_registry_job_get(reg, k.id + 100, &got, &err), MOAT_ENOENT);
	char buf[256] = "";
	assert_int_equal(moat_registry_job_results_foreach(reg, j.id, job_results, buf, &err), 0);
	assert_string_equal(buf, "d1=done/ok@20,d2=timeout/@21");
	buf[0] = '\0';
	assert_int_equal(moat_registry_job_foreach(reg, job_ids, buf, &err), 0);
	char want[64];
	snprintf(want, sizeof(want), "%lld:2,%lld:1", (long long)j.id, (long long)k.id);
	assert_string_equal(buf, want);
}

static int claim_cas(const struct moat_claim_ca *ca, void *ctx)
{
	char *buf = ctx;
	size_t n = strlen(buf);
	snprintf(buf + n, 256 - n, "%s%.4s:%s:%s:%lld", n ? "," : "", ca->sha256_hex, ca->subject,
		 ca->pem, (long long)ca->added_at);
	return 0;
}

static int cert_serials(const struct moat_cert_row *row, void *ctx)
{
	char *buf = ctx;
	size_t n = strlen(buf);
	snprintf(buf + n, 256 - n, "%s%s/%s", n ? "," : "", row->serial_hex, row->identity);
	return 0;
}

static void test_enroll(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_device(reg, "d1");
	add_device(reg, "d2");
	struct moat_enrollment e = {.identity = "d1",
				    .has_token = true,
				    .created_at = 1,
				    .expires_at = 99};
	memset(e.token_sha256_hex, 'a', MOAT_SHA256_HEX_LEN);
	snprintf(e.claim_cn, sizeof(e.claim_cn), "claim-1");
	assert_int_equal(moat_registry_enrollment_insert(reg, &e, &err), 0);
	/* the primary key and the unique claim CN are told apart on either backend */
	struct moat_enrollment again = e;
	snprintf(again.claim_cn, sizeof(again.claim_cn), "claim-2");
	assert_int_equal(moat_registry_enrollment_insert(reg, &again, &err), MOAT_EEXIST);
	assert_string_equal(err.msg, "'d1' already has an enrollment");
	struct moat_enrollment f = e;
	snprintf(f.identity, sizeof(f.identity), "d2");
	assert_int_equal(moat_registry_enrollment_insert(reg, &f, &err), MOAT_EEXIST);
	assert_string_equal(err.msg, "claim CN 'claim-1' already names a device");
	/* neither token nor claim: the CHECK refuses it */
	f.has_token = false;
	f.claim_cn[0] = '\0';
	assert_int_equal(moat_registry_enrollment_insert(reg, &f, &err), MOAT_EDB);
	struct moat_enrollment got;
	assert_int_equal(moat_registry_enrollment_get(reg, "d1", &got, &err), 0);
	assert_true(got.has_token);
	assert_string_equal(got.token_sha256_hex, e.token_sha256_hex);
	assert_false(got.used);
	assert_int_equal(got.expires_at, 99);
	assert_int_equal(moat_registry_enrollment_by_claim(reg, "claim-1", &got, &err), 0);
	assert_string_equal(got.identity, "d1");
	assert_int_equal(moat_registry_enrollment_get(reg, "d2", &got, &err), MOAT_ENOENT);
	assert_int_equal(moat_registry_enrollment_use(reg, "d1", 50, &err), 0);
	assert_int_equal(moat_registry_enrollment_use(reg, "d1", 51, &err), MOAT_ESTATE);
	assert_int_equal(moat_registry_enrollment_get(reg, "d1", &got, &err), 0);
	assert_true(got.used);
	assert_int_equal(got.used_at, 50);

	char sha[MOAT_SHA256_HEX_LEN + 1];
	memset(sha, 'b', MOAT_SHA256_HEX_LEN);
	sha[MOAT_SHA256_HEX_LEN] = '\0';
	assert_int_equal(moat_registry_claim_ca_insert(reg, sha, "CN=Maker", "PEM-B", 7, &err), 0);
	assert_int_equal(moat_registry_claim_ca_insert(reg, sha, "CN=Maker", "PEM-B", 8, &err),
			 MOAT_EEXIST);
	sha[0] = 'a';
	assert_int_equal(moat_registry_claim_ca_insert(reg, sha, "CN=Other", "PEM-A", 9, &err), 0);
	char buf[256] = "";
	assert_int_equal(moat_registry_claim_ca_foreach(reg, claim_cas, buf, &err), 0);
	assert_string_equal(buf, "abbb:CN=Other:PEM-A:9,bbbb:CN=Maker:PEM-B:7");
	assert_int_equal(moat_registry_claim_ca_remove(reg, sha, &err), 0);
	assert_int_equal(moat_registry_claim_ca_remove(reg, sha, &err), MOAT_ENOENT);

	add_cert(reg, "0a", "d1", 100, false);
	add_cert(reg, "0b", "d2", 100, false);
	add_cert(reg, "0c", "d2", 100, true);
	assert_int_equal(moat_registry_cert_supersede_at(reg, "0b", 500, &err), 0);
	assert_int_equal(moat_registry_cert_supersede_at(reg, "0a", 400, &err), 0);
	assert_int_equal(moat_registry_cert_supersede_at(reg, "0c", 400, &err), MOAT_ENOENT);
	assert_int_equal(moat_registry_cert_supersede_at(reg, "ff", 400, &err), MOAT_ENOENT);
	buf[0] = '\0';
	assert_int_equal(moat_registry_cert_supersede_due(reg, 399, cert_serials, buf, &err), 0);
	assert_string_equal(buf, "");
	assert_int_equal(moat_registry_cert_supersede_due(reg, 500, cert_serials, buf, &err), 0);
	assert_string_equal(buf, "0a/d1,0b/d2");
}

static void test_delete(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_device(reg, "d1");
	add_cert(reg, "10", "d1", 100, true);
	add_cert(reg, "11", "d1", 200, false);
	assert_int_equal(moat_registry_tag_add(reg, "d1", "west", &err), 0);
	assert_int_equal(moat_registry_identity_delete(reg, "d1", 3000, &err), MOAT_ESTATE);
	assert_string_equal(err.msg,
			    "d1: certificate 11 is not revoked; revoke it before deleting");
	assert_int_equal(moat_registry_identity_delete(reg, "ghost", 3000, &err), MOAT_ENOENT);
	raw(reg, "UPDATE certificates SET revoked_at = 2500, reason = 4 WHERE serial = ?1", "11",
	    NULL, 0);
	assert_int_equal(moat_registry_identity_delete(reg, "d1", 3000, &err), 0);
	assert_int_equal(count(reg, "SELECT count(*) FROM identities"), 0);
	assert_int_equal(count(reg, "SELECT count(*) FROM certificates"), 0);
	assert_int_equal(count(reg, "SELECT count(*) FROM device_tags"), 0);
	assert_int_equal(count(reg, "SELECT count(*) FROM deleted_certificates"), 2);
	struct moat_deletion d;
	assert_int_equal(moat_registry_deletion_last(reg, "d1", &d, &err), 0);
	assert_string_equal(d.last_serial_hex, "11");
	assert_int_equal(d.certificates, 2);
	assert_int_equal(d.deleted_at, 3000);
	assert_int_equal(d.created_at, 1000);
	assert_int_equal(d.role, MOAT_ROLE_DEVICE);
	assert_string_equal(d.device_type, "sensor");
	assert_int_equal(d.times, 1);
	/* the name again, deleted again: counted */
	add_device(reg, "d1");
	assert_int_equal(moat_registry_identity_delete(reg, "d1", 4000, &err), 0);
	assert_int_equal(moat_registry_deletion_last(reg, "d1", &d, &err), 0);
	assert_int_equal(d.times, 2);
	assert_string_equal(d.last_serial_hex, "");
	assert_int_equal(moat_registry_deletion_last(reg, "d9", &d, &err), MOAT_ENOENT);
	/* inside the caller's transaction, rolled back with it */
	add_device(reg, "d2");
	assert_int_equal(moat_registry_begin(reg, &err), 0);
	assert_int_equal(moat_registry_identity_delete(reg, "d2", 5000, &err), 0);
	moat_registry_rollback(reg);
	assert_int_equal(count(reg, "SELECT count(*) FROM identities WHERE id = 'd2'"), 1);
}

/* A savepoint outside a transaction (PostgreSQL opens one for it) and inside one. */
static void test_savepoints(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	struct rdb *c = reg_db(reg);
	assert_int_equal(rdb_savepoint(c, "sp"), 0);
	add_device(reg, "gone");
	rdb_rollback_to(c, "sp");
	assert_int_equal(count(reg, "SELECT count(*) FROM identities"), 0);
	assert_int_equal(rdb_savepoint(c, "sp"), 0);
	add_device(reg, "kept");
	assert_int_equal(rdb_release(c, "sp"), 0);
	assert_int_equal(count(reg, "SELECT count(*) FROM identities"), 1);
	assert_int_equal(moat_registry_begin(reg, &err), 0);
	assert_int_equal(rdb_savepoint(c, "sp"), 0);
	add_device(reg, "inner");
	assert_int_equal(rdb_release(c, "sp"), 0);
	moat_registry_rollback(reg);
	assert_int_equal(count(reg, "SELECT count(*) FROM identities"), 1);
	/* a failed statement: its code and the backend's message */
	struct rdb_stmt *st = NULL;
	assert_int_equal(
		rdb_prepare(c,
			    "INSERT INTO identities(id, role, created_at) VALUES (?1, 'nope', 1)",
			    &st),
		0);
	rdb_bind_text(st, 1, "x");
	assert_int_equal(rdb_step(st), RDB_E_CONSTRAINT);
	assert_true(strlen(rdb_errmsg(c)) > 0);
	rdb_finalize(st);
	assert_int_equal(
		rdb_prepare(c,
			    "INSERT INTO identities(id, role, created_at) VALUES (?1, 'device', 1)",
			    &st),
		0);
	rdb_bind_text(st, 1, "kept");
	assert_int_equal(rdb_step(st), RDB_E_PRIMARYKEY);
	rdb_finalize(st);
	/* blobs and NULLs round-trip */
	assert_int_equal(rdb_prepare(c, "SELECT ?1, ?2, ?3", &st), 0);
	rdb_bind_blob(st, 1, "a\0b", 3);
	rdb_bind_null(st, 2);
	rdb_bind_int64(st, 3, -9000000000LL);
	assert_int_equal(rdb_step(st), RDB_ROW);
	size_t n = 0;
	const unsigned char *b = rdb_column_blob(st, 0, &n);
	assert_int_equal(n, 3);
	assert_memory_equal(b, "a\0b", 3);
	assert_true(rdb_column_is_null(st, 1));
	assert_null(rdb_column_text(st, 1));
	assert_int_equal(rdb_column_int64(st, 2), -9000000000LL);
	assert_int_equal(rdb_step(st), RDB_DONE);
	rdb_finalize(st);
}

struct stats_seen {
	double devices_active;
	double enrollments_pending;
	double certs_7d;
	bool saw_expiry;
};

static void stat_cb(void *ctx, enum moat_registry_stat stat, const char *a, const char *b, double v)
{
	struct stats_seen *s = ctx;
	if (stat == MOAT_STAT_DEVICES && strcmp(a, "active") == 0 && strcmp(b, "sensor") == 0) {
		s->devices_active = v;
	} else if (stat == MOAT_STAT_ENROLLMENTS && strcmp(a, "pending") == 0) {
		s->enrollments_pending = v;
	} else if (stat == MOAT_STAT_CERTS_EXPIRING && strcmp(a, "7d") == 0) {
		s->certs_7d = v;
	} else if (stat == MOAT_STAT_CERT_NEXT_EXPIRY) {
		s->saw_expiry = true;
	}
}

static void test_stats(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_device(reg, "d1");
	add_device(reg, "d2");
	add_cert(reg, "01", "d1", 100, false);
	struct moat_enrollment e = {.identity = "d2", .created_at = 1, .expires_at = 10000};
	snprintf(e.claim_cn, sizeof(e.claim_cn), "c2");
	assert_int_equal(moat_registry_enrollment_insert(reg, &e, &err), 0);
	struct stats_seen s = {0};
	assert_int_equal(moat_registry_stats(reg, 200, stat_cb, &s, &err), 0);
	assert_true(s.devices_active == 2.0);
	assert_true(s.enrollments_pending == 1.0);
	assert_true(s.certs_7d == 1.0);
	assert_true(s.saw_expiry);
}

/* Runs the SQLite or the PostgreSQL text of a fixture that only one dialect can say
 * (triggers, dropped constraints). */
static void exec2(struct moat_registry *reg, const char *lite_sql, const char *pg_sql)
{
	if (rdb_exec(reg_db(reg), pg_url ? pg_sql : lite_sql) != 0) {
		fail_msg("%s: %s", pg_url ? pg_sql : lite_sql, rdb_errmsg(reg_db(reg)));
	}
}

/* err.msg is "registry: <what>: " and the backend's words for a missing table. */
static void expect_no_table(const struct moat_err *err, const char *what)
{
	char want[128];
	snprintf(want, sizeof(want), "registry: %s: ", what);
	if (strncmp(err->msg, want, strlen(want)) != 0 ||
	    !strstr(err->msg, pg_url ? "does not exist" : "no such table")) {
		fail_msg("'%s' is not '%s<no such table>'", err->msg, want);
	}
}

static struct moat_release release(const char *type, const char *version, char fill, int pct,
				   int64_t published_at)
{
	struct moat_release r = tu_release(type, version, fill, pct);
	r.security_version = 7;
	r.size = 4096;
	r.issued_at = 10;
	r.expires_at = 20;
	r.published_at = published_at;
	return r;
}

static int release_names(const struct moat_release *r, void *ctx)
{
	char *buf = ctx;
	size_t n = strlen(buf);
	snprintf(buf + n, 256 - n, "%s%s/%s:%zu", n ? "," : "", r->device_type, r->version,
		 r->device_count);
	return strstr(buf, "stop") ? 42 : 0;
}

static void test_releases(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_device(reg, "d1");
	add_device(reg, "d2");
	struct moat_release r = release("sensor", "1.2.3", 'a', 40, 30);
	r.size = (uint64_t)INT64_MAX;
	OK(moat_registry_release_insert(reg, &r, NULL, 0, &err));
	struct moat_release got;
	OK(moat_registry_release_get(reg, r.sha256_hex, &got, &err));
	assert_string_equal(got.sha256_hex, r.sha256_hex);
	assert_string_equal(got.device_type, "sensor");
	assert_string_equal(got.version, "1.2.3");
	assert_int_equal(got.security_version, 7);
	assert_true(got.size == (uint64_t)INT64_MAX);
	assert_int_equal(got.issued_at, 10);
	assert_int_equal(got.expires_at, 20);
	assert_int_equal(got.published_at, 30);
	assert_int_equal(got.rollout_percent, 40);
	assert_int_equal(got.device_count, 0);
	char *both[] = {"d1", "d2"};
	struct moat_release listed_r = release("sensor", "1.3.0", 'b', -1, 31);
	OK(moat_registry_release_insert(reg, &listed_r, both, 2, &err));
	OK(moat_registry_release_get(reg, listed_r.sha256_hex, &got, &err));
	assert_int_equal(got.rollout_percent, -1);
	assert_int_equal(got.device_count, 2);
	char missing[MOAT_SHA256_HEX_LEN + 1];
	memset(missing, 'f', MOAT_SHA256_HEX_LEN);
	missing[MOAT_SHA256_HEX_LEN] = '\0';
	assert_int_equal(moat_registry_release_get(reg, missing, &got, &err), MOAT_ENOENT);
	assert_non_null(strstr(err.msg, "no release with sha256 ffff"));
	assert_int_equal(got.version[0], '\0');

	/* the same image (primary key) or the same type and version (unique): refused alike */
	struct moat_release dup = release("camera", "9.0.0", 'a', 100, 3);
	assert_int_equal(moat_registry_release_insert(reg, &dup, NULL, 0, &err), MOAT_EEXIST);
	assert_string_equal(err.msg,
			    "release camera 9.0.0 (sha256 aaaaaaaaaaaa...) already published");
	dup = release("sensor", "1.2.3", 'c', 100, 3);
	assert_int_equal(moat_registry_release_insert(reg, &dup, NULL, 0, &err), MOAT_EEXIST);
	/* a device listed twice or unknown: the whole release is refused, nothing kept */
	char *twice[] = {"d1", "d1"};
	struct moat_release bad = release("sensor", "3.0.0", 'd', -1, 4);
	assert_int_equal(moat_registry_release_insert(reg, &bad, twice, 2, &err), MOAT_EINVAL);
	assert_string_equal(err.msg, "--devices: d1 listed twice or not registered");
	char *ghost[] = {"d1", "ghost"};
	assert_int_equal(moat_registry_release_insert(reg, &bad, ghost, 2, &err), MOAT_EINVAL);
	assert_string_equal(err.msg, "--devices: ghost listed twice or not registered");
	assert_int_equal(moat_registry_release_get(reg, bad.sha256_hex, &got, &err), MOAT_ENOENT);
	assert_int_equal(count(reg, "SELECT count(*) FROM release_devices"), 2);
	bool listed = true;
	OK(moat_registry_release_lists(reg, bad.sha256_hex, "d1", &listed, &err));
	assert_false(listed);
	OK(moat_registry_release_lists(reg, listed_r.sha256_hex, "d2", &listed, &err));
	assert_true(listed);
	OK(moat_registry_release_lists(reg, r.sha256_hex, "d1", &listed, &err));
	assert_false(listed); /* a percentage rollout has no list */

	/* inside the caller's transaction: refused (it is its own transaction), and the
	 * caller's transaction goes on: a later statement of it works and is committed */
	OK(moat_registry_begin(reg, &err));
	add_device(reg, "d3");
	struct moat_release inner = release("sensor", "4.0.0", 'e', 100, 5);
	assert_int_equal(moat_registry_release_insert(reg, &inner, NULL, 0, &err), MOAT_EDB);
	add_device(reg, "d4");
	OK(moat_registry_commit(reg, &err));
	assert_int_equal(count(reg, "SELECT count(*) FROM identities"), 4);
	assert_int_equal(moat_registry_release_get(reg, inner.sha256_hex, &got, &err), MOAT_ENOENT);

	/* by type (byte order, as SQLite's BINARY: "Zeta" first), then publication; NULL:
	 * every type */
	struct moat_release more[] = {release("sensor", "10.0.0", 'g', 5, 70),
				      release("camera", "1.0.0", 'h', 0, 60),
				      release("sensor", "0.9.0", 'i', 100, 10),
				      release("Zeta", "1.0.0", 'j', 100, 90)};
	for (size_t i = 0; i < 4; i++) {
		OK(moat_registry_release_insert(reg, &more[i], NULL, 0, &err));
	}
	char names[256] = "";
	OK(moat_registry_release_foreach(reg, NULL, release_names, names, &err));
	assert_string_equal(
		names, "Zeta/1.0.0:0,camera/1.0.0:0,sensor/0.9.0:0,sensor/1.2.3:0,sensor/1.3.0:2,"
		       "sensor/10.0.0:0");
	names[0] = '\0';
	OK(moat_registry_release_foreach(reg, "camera", release_names, names, &err));
	assert_string_equal(names, "camera/1.0.0:0");
	names[0] = '\0';
	OK(moat_registry_release_foreach(reg, "drone", release_names, names, &err));
	assert_string_equal(names, "");
	/* a callback's non-zero return stops the walk and is returned */
	snprintf(names, sizeof(names), "stop");
	assert_int_equal(moat_registry_release_foreach(reg, NULL, release_names, names, &err), 42);
	assert_string_equal(names, "stop,Zeta/1.0.0:0");
}

static struct moat_update_event event(const char *device, enum moat_update_stage stage,
				      const char *running, int64_t at)
{
	struct moat_update_event ev;
	memset(&ev, 0, sizeof(ev));
	snprintf(ev.device, sizeof(ev.device), "%s", device);
	ev.stage = stage;
	snprintf(ev.version, sizeof(ev.version), "2.0.0");
	snprintf(ev.running, sizeof(ev.running), "%s", running);
	snprintf(ev.reason, sizeof(ev.reason), "%s", stage == MOAT_UPD_REFUSED ? "rollback" : "");
	ev.at = at;
	return ev;
}

struct event_walk {
	struct moat_update_event first;
	size_t n;
	size_t stop_after;
	int64_t ats[4]; /* the times of the first four */
};

static int event_walk_cb(const struct moat_update_event *ev, void *ctx)
{
	struct event_walk *w = ctx;
	if (w->n == 0) {
		w->first = *ev;
	}
	if (w->n < 4) {
		w->ats[w->n] = ev->at;
	}
	w->n++;
	return (w->stop_after && w->n == w->stop_after) ? 7 : 0;
}

static struct event_walk events_of(struct moat_registry *reg, const char *device, int limit)
{
	struct moat_err err;
	struct event_walk w = {0};
	OK(moat_registry_update_event_foreach(reg, device, limit, event_walk_cb, &w, &err));
	return w;
}

static void record(struct moat_registry *reg, const char *device, enum moat_update_stage stage,
		   const char *running, int64_t at)
{
	struct moat_err err;
	struct moat_update_event ev = event(device, stage, running, at);
	OK(moat_registry_update_event_record(reg, &ev, &err));
}

static void test_update_events(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_device(reg, "d1");
	add_device(reg, "d2");
	char running[MOAT_FW_VERSION_MAX_LEN + 1] = "stale";
	OK(moat_registry_running_version(reg, "d1", running, &err));
	assert_string_equal(running, "");
	record(reg, "d1", MOAT_UPD_CHECKED, "1.0.0", 100);
	record(reg, "d1", MOAT_UPD_REFUSED, "", 101);
	/* an event without "running" leaves the running version as it was */
	OK(moat_registry_running_version(reg, "d1", running, &err));
	assert_string_equal(running, "1.0.0");
	record(reg, "d1", MOAT_UPD_CONFIRMED, "1.1.0", 102); /* the upsert's update */
	OK(moat_registry_running_version(reg, "d1", running, &err));
	assert_string_equal(running, "1.1.0");
	assert_int_equal(count(reg, "SELECT reported_at FROM device_firmware"), 102);
	OK(moat_registry_running_version(reg, "d2", running, &err));
	assert_string_equal(running, "");

	/* newest first, every field back; the limit; a callback's stop */
	struct event_walk w = events_of(reg, "d1", 10);
	assert_int_equal(w.n, 3);
	assert_int_equal(w.ats[1], 101);
	w = events_of(reg, "d1", 2);
	assert_int_equal(w.n, 2);
	assert_int_equal(w.first.at, 102);
	assert_int_equal(w.ats[1], 101);
	struct event_walk stop = {.stop_after = 1};
	assert_int_equal(moat_registry_update_event_foreach(reg, "d1", 10, event_walk_cb, &stop,
							    &err),
			 7);
	assert_int_equal(stop.n, 1);
	assert_int_equal(events_of(reg, "d2", 10).n, 0);
	record(reg, "d1", MOAT_UPD_REFUSED, "", 103);
	w = events_of(reg, "d1", 1);
	assert_string_equal(w.first.device, "d1");
	assert_int_equal(w.first.stage, MOAT_UPD_REFUSED);
	assert_string_equal(w.first.version, "2.0.0");
	assert_string_equal(w.first.running, "");
	assert_string_equal(w.first.reason, "rollback");

	/* an unknown device: refused, nothing recorded */
	struct moat_update_event ev = event("ghost", MOAT_UPD_CONFIRMED, "2.0.0", 104);
	assert_int_equal(moat_registry_update_event_record(reg, &ev, &err), MOAT_ENOENT);
	assert_string_equal(err.msg, "update event: unknown device ghost");
	assert_int_equal(count(reg, "SELECT count(*) FROM update_events"), 4);
	assert_int_equal(count(reg, "SELECT count(*) FROM device_firmware"), 1);

	/* pruned to the newest MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE of each device */
	for (int i = 0; i < MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE + 3; i++) {
		record(reg, "d2", MOAT_UPD_DOWNLOADING, "", 200 + i);
	}
	w = events_of(reg, "d2", 1000);
	assert_int_equal(w.n, MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE);
	assert_int_equal(w.first.at, 200 + MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE + 2);
	assert_int_equal(count(reg, "SELECT MIN(at) FROM update_events WHERE device = 'd2'"), 203);
	assert_int_equal(events_of(reg, "d1", 1000).n, 4);

	/* a check that repeats the newest event moves its time; one that differs in running,
	 * or follows another stage, is a new event */
	int before = count(reg, "SELECT count(*) FROM update_events WHERE device = 'd2'");
	record(reg, "d2", MOAT_UPD_CHECKED, "1.0.0", 400);
	record(reg, "d2", MOAT_UPD_CHECKED, "1.0.0", 401);
	record(reg, "d2", MOAT_UPD_CHECKED, "1.0.0", 402);
	assert_int_equal(count(reg, "SELECT count(*) FROM update_events WHERE device = 'd2'"),
			 before);
	w = events_of(reg, "d2", 2);
	assert_int_equal(w.ats[0], 402);
	assert_int_equal(w.first.stage, MOAT_UPD_CHECKED);
	assert_int_equal(w.ats[1], 200 + MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE + 2);
	record(reg, "d2", MOAT_UPD_CHECKED, "1.1.0", 403);
	assert_int_equal(events_of(reg, "d2", 1).first.at, 403);
	assert_int_equal(events_of(reg, "d2", 2).ats[1], 402);
	record(reg, "d2", MOAT_UPD_DOWNLOADING, "1.1.0", 404);
	record(reg, "d2", MOAT_UPD_CHECKED, "1.1.0", 405);
	w = events_of(reg, "d2", 3);
	assert_int_equal(w.ats[0], 405);
	assert_int_equal(w.ats[1], 404);
	assert_int_equal(w.ats[2], 403);
	assert_int_equal(count(reg,
			       "SELECT MAX(reported_at) FROM device_firmware WHERE device = 'd2'"),
			 405);

	/* inside the caller's transaction (moatd's ingest batches): a refused event leaves
	 * the transaction usable, the events around it are committed with it */
	OK(moat_registry_begin(reg, &err));
	record(reg, "d1", MOAT_UPD_CHECKED, "", 300);
	assert_int_equal(moat_registry_update_event_record(reg, &ev, &err), MOAT_ENOENT);
	record(reg, "d1", MOAT_UPD_VERIFIED, "", 301);
	OK(moat_registry_commit(reg, &err));
	w = events_of(reg, "d1", 2);
	assert_int_equal(w.ats[0], 301);
	assert_int_equal(w.ats[1], 300);
	/* and rolled back with it */
	OK(moat_registry_begin(reg, &err));
	record(reg, "d1", MOAT_UPD_INSTALLED, "", 302);
	moat_registry_rollback(reg);
	assert_int_equal(events_of(reg, "d1", 1).first.at, 301);
}

/* A stage the registry does not know (a damaged or hand-edited registry) is an error, not
 * a silently wrong stage. */
static void test_update_event_bad_stage(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_device(reg, "d1");
	exec2(reg, "PRAGMA ignore_check_constraints = ON",
	      "ALTER TABLE update_events DROP CONSTRAINT update_events_stage_check");
	raw(reg, "INSERT INTO update_events(device, at, stage) VALUES (?1, 1, ?2)", "d1",
	    "exploded", 0);
	struct event_walk w = {0};
	assert_int_equal(moat_registry_update_event_foreach(reg, "d1", 10, event_walk_cb, &w, &err),
			 MOAT_EDB);
	assert_string_equal(err.msg, "registry: update_events: bad stage");
	assert_int_equal(w.n, 0);
}

/* Recording is all or nothing: when the running version or the pruning fails, the event is
 * not kept either, on its own or inside the caller's transaction. */
static void test_update_event_atomic(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_device(reg, "d1");
	exec2(reg,
	      "CREATE TRIGGER no_firmware BEFORE INSERT ON device_firmware "
	      "BEGIN SELECT RAISE(ABORT, 'firmware refused'); END",
	      "CREATE FUNCTION refuse_firmware() RETURNS trigger LANGUAGE plpgsql AS "
	      "$$BEGIN RAISE EXCEPTION 'firmware refused'; END$$; "
	      "CREATE TRIGGER no_firmware BEFORE INSERT ON device_firmware "
	      "FOR EACH ROW EXECUTE FUNCTION refuse_firmware()");
	struct moat_update_event ev = event("d1", MOAT_UPD_CONFIRMED, "2.0.0", 1);
	assert_int_equal(moat_registry_update_event_record(reg, &ev, &err), MOAT_EDB);
	assert_non_null(strstr(err.msg, "registry: record running version: "));
	assert_non_null(strstr(err.msg, "firmware refused"));
	assert_int_equal(events_of(reg, "d1", 1000).n, 0);
	OK(moat_registry_begin(reg, &err));
	record(reg, "d1", MOAT_UPD_CHECKED, "", 2);
	assert_int_equal(moat_registry_update_event_record(reg, &ev, &err), MOAT_EDB);
	record(reg, "d1", MOAT_UPD_VERIFIED, "", 3);
	OK(moat_registry_commit(reg, &err));
	struct event_walk w = events_of(reg, "d1", 1000);
	assert_int_equal(w.n, 2);
	assert_int_equal(w.ats[0], 3);
	assert_int_equal(w.ats[1], 2);

	exec2(reg,
	      "CREATE TRIGGER no_prune BEFORE DELETE ON update_events "
	      "BEGIN SELECT RAISE(ABORT, 'prune refused'); END",
	      "CREATE FUNCTION refuse_prune() RETURNS trigger LANGUAGE plpgsql AS "
	      "$$BEGIN RAISE EXCEPTION 'prune refused'; END$$; "
	      "CREATE TRIGGER no_prune BEFORE DELETE ON update_events "
	      "FOR EACH ROW EXECUTE FUNCTION refuse_prune()");
	for (int i = 2; i < MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE; i++) {
		record(reg, "d1", MOAT_UPD_DOWNLOADING, "", 10 + i); /* not folded like checks */
	}
	ev = event("d1", MOAT_UPD_VERIFIED, "", 999);
	assert_int_equal(moat_registry_update_event_record(reg, &ev, &err), MOAT_EDB);
	assert_non_null(strstr(err.msg, "registry: prune update events: "));
	assert_non_null(strstr(err.msg, "prune refused"));
	w = events_of(reg, "d1", 1000);
	assert_int_equal(w.n, MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE);
	assert_int_not_equal(w.first.at, 999);
}

/* A registry whose release and event tables are gone (a damaged one): every call says which
 * operation failed and why, as "registry: <what>: <cause>", and a failed release insert
 * leaves no release row. */
static void test_release_tables_missing(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_device(reg, "d1");
	OK(reg_db_exec(reg,
		       "DROP TABLE release_devices; DROP TABLE update_events; "
		       "DROP TABLE device_firmware",
		       &err));
	char *one[] = {"d1"};
	struct moat_release r = release("sensor", "1.0.0", 'a', -1, 1);
	assert_int_equal(moat_registry_release_insert(reg, &r, one, 1, &err), MOAT_EDB);
	expect_no_table(&err, "insert release device");
	struct moat_release got;
	assert_int_equal(moat_registry_release_get(reg, r.sha256_hex, &got, &err), MOAT_EDB);
	expect_no_table(&err, "release lookup");
	char names[256] = "";
	assert_int_equal(moat_registry_release_foreach(reg, NULL, release_names, names, &err),
			 MOAT_EDB);
	expect_no_table(&err, "list releases");
	bool listed = true;
	assert_int_equal(moat_registry_release_lists(reg, r.sha256_hex, "d1", &listed, &err),
			 MOAT_EDB);
	expect_no_table(&err, "rollout lookup");
	assert_false(listed);
	struct moat_update_event ev = event("d1", MOAT_UPD_CHECKED, "1.0.0", 1);
	assert_int_equal(moat_registry_update_event_record(reg, &ev, &err), MOAT_EDB);
	expect_no_table(&err, "record update event");
	struct event_walk w = {0};
	assert_int_equal(moat_registry_update_event_foreach(reg, "d1", 10, event_walk_cb, &w, &err),
			 MOAT_EDB);
	expect_no_table(&err, "list update events");
	char running[MOAT_FW_VERSION_MAX_LEN + 1];
	assert_int_equal(moat_registry_running_version(reg, "d1", running, &err), MOAT_EDB);
	expect_no_table(&err, "running version");
	/* the release row of the failed insert was rolled back with it */
	assert_int_equal(count(reg, "SELECT count(*) FROM releases"), 0);
	exec2(reg, "DROP TABLE releases", "DROP TABLE releases CASCADE"); /* rollouts' key */
	assert_int_equal(moat_registry_release_insert(reg, &r, one, 1, &err), MOAT_EDB);
	expect_no_table(&err, "insert release");
}

/* ---- monitoring tables (monitor.c, migrations 7 and 11) ---- */

static struct moat_security_event sec_event(const char *kind, const char *ident, int64_t t,
					    enum moat_severity sev)
{
	struct moat_security_event ev;
	memset(&ev, 0, sizeof(ev));
	snprintf(ev.kind, sizeof(ev.kind), "%s", kind);
	snprintf(ev.identity, sizeof(ev.identity), "%s", ident);
	snprintf(ev.source, sizeof(ev.source), "broker");
	ev.time_ms = t;
	ev.severity = sev;
	return ev;
}

static void test_device_state(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err = {0};
	struct moat_device_state s, got;
	assert_int_equal(moat_registry_device_state_get(reg, "d1", &got, &err), MOAT_ENOENT);
	memset(&s, 0, sizeof(s));
	snprintf(s.device, sizeof(s.device), "d1");
	s.state = MOAT_CONN_OFFLINE;
	s.state_at_ms = 5;
	s.offline_by_will = true;
	s.last_seen_ms = 7;
	snprintf(s.address, sizeof(s.address), "10.0.0.9");
	snprintf(s.agent_version, sizeof(s.agent_version), "1.2");
	snprintf(s.running, sizeof(s.running), "2.0.0");
	s.interval_s = 30;
	snprintf(s.last_command, sizeof(s.last_command), "reboot");
	snprintf(s.last_command_status, sizeof(s.last_command_status), "accepted");
	s.last_command_at_ms = 9;
	struct moat_device_state first = s;
	first.telemetry_messages = 11;
	/* a new row: written as it is, the telemetry count the one added */
	assert_int_equal(moat_registry_device_state_merge(reg, &s, 0, 11, &err), 0);
	assert_memory_equal(&s, &first, sizeof(s));
	assert_int_equal(moat_registry_device_state_get(reg, "d1", &got, &err), 0);
	assert_memory_equal(&first, &got, sizeof(s));
	assert_false(got.has_cert_days);

	/* A second writer (another moatd) with a stale copy: an older state, an older
	 * command, another address and agent version it did not change, and a cert days
	 * reading it did change. Its telemetry adds up; nothing older replaces newer. */
	struct moat_device_state b;
	memset(&b, 0, sizeof(b));
	snprintf(b.device, sizeof(b.device), "d1");
	b.state = MOAT_CONN_ONLINE;
	b.state_at_ms = 4;
	b.last_seen_ms = 20;
	snprintf(b.address, sizeof(b.address), "10.9.9.9");
	snprintf(b.agent_version, sizeof(b.agent_version), "0.1");
	b.has_cert_days = true;
	b.cert_days_left = -3; /* expired: negative days are kept as they are */
	snprintf(b.last_command, sizeof(b.last_command), "ping");
	snprintf(b.last_command_status, sizeof(b.last_command_status), "completed");
	b.last_command_at_ms = 8;
	assert_int_equal(moat_registry_device_state_merge(reg, &b, MOAT_DEVICE_STATE_CERT_DAYS, 5,
							  &err),
			 0);
	assert_int_equal(moat_registry_device_state_get(reg, "d1", &got, &err), 0);
	assert_memory_equal(&b, &got, sizeof(b)); /* what was read back is the row */
	assert_string_equal(moat_conn_state_name(got.state), "offline");
	assert_true(got.offline_by_will);
	assert_int_equal(got.state_at_ms, 5);
	assert_int_equal(got.last_seen_ms, 20);
	assert_string_equal(got.address, "10.0.0.9");
	assert_string_equal(got.agent_version, "1.2");
	assert_string_equal(got.running, "2.0.0");
	assert_true(got.has_cert_days);
	assert_int_equal(got.cert_days_left, -3);
	assert_int_equal(got.interval_s, 30);
	assert_string_equal(got.last_command, "reboot");
	assert_string_equal(got.last_command_status, "accepted");
	assert_int_equal(got.last_command_at_ms, 9);
	assert_int_equal(got.telemetry_messages, 16);

	/* newer state and command, changed address, version, release and interval, and no
	 * cert days any more: each taken */
	b.state = MOAT_CONN_ONLINE;
	b.state_at_ms = 30;
	b.offline_by_will = false;
	b.last_seen_ms = 10; /* older than the row's: the row's stays */
	snprintf(b.address, sizeof(b.address), "10.1.1.1");
	snprintf(b.agent_version, sizeof(b.agent_version), "1.3");
	snprintf(b.running, sizeof(b.running), "2.1.0");
	b.has_cert_days = false;
	b.interval_s = 60;
	snprintf(b.last_command, sizeof(b.last_command), "diagnostics");
	snprintf(b.last_command_status, sizeof(b.last_command_status), "completed");
	b.last_command_at_ms = 31;
	assert_int_equal(moat_registry_device_state_merge(reg, &b,
							  MOAT_DEVICE_STATE_ADDRESS |
								  MOAT_DEVICE_STATE_AGENT_VERSION |
								  MOAT_DEVICE_STATE_RUNNING |
								  MOAT_DEVICE_STATE_CERT_DAYS |
								  MOAT_DEVICE_STATE_INTERVAL,
							  0, &err),
			 0);
	assert_int_equal(moat_registry_device_state_get(reg, "d1", &got, &err), 0);
	assert_memory_equal(&b, &got, sizeof(b));
	assert_string_equal(moat_conn_state_name(got.state), "online");
	assert_false(got.offline_by_will);
	assert_int_equal(got.last_seen_ms, 20);
	assert_string_equal(got.address, "10.1.1.1");
	assert_string_equal(got.agent_version, "1.3");
	assert_string_equal(got.running, "2.1.0");
	assert_false(got.has_cert_days);
	assert_int_equal(got.interval_s, 60);
	assert_string_equal(got.last_command, "diagnostics");
	assert_int_equal(got.telemetry_messages, 16);
	assert_string_equal(moat_conn_state_name((enum moat_conn_state)9), "unknown");
}

/* The last diagnostics report of a device: none, one, the next replacing it; too small a
 * buffer and too large a report refused. */
static void test_diagnostics(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err = {0};
	char buf[MOAT_REGISTRY_DIAGNOSTICS_MAX_BYTES + 1];
	size_t len = 0;
	int64_t at = 0;
	assert_int_equal(moat_registry_diagnostics_get(reg, "d1", &at, buf, sizeof(buf), &len,
						       &err),
			 MOAT_ENOENT);
	static const char first[] = "{\"device_id\":\"d1\",\"seq\":1}";
	static const char second[] = "{\"device_id\":\"d1\",\"seq\":2,\"kernel\":\"6.1\"}";
	assert_int_equal(moat_registry_diagnostics_put(reg, "d1", 1000, first, sizeof(first) - 1,
						       &err),
			 0);
	assert_int_equal(moat_registry_diagnostics_get(reg, "d1", &at, buf, sizeof(buf), &len,
						       &err),
			 0);
	assert_int_equal(at, 1000);
	assert_string_equal(buf, first);
	assert_int_equal(len, sizeof(first) - 1);
	assert_int_equal(moat_registry_diagnostics_put(reg, "d1", 2000, second, sizeof(second) - 1,
						       &err),
			 0);
	assert_int_equal(moat_registry_diagnostics_get(reg, "d1", &at, buf, sizeof(buf), &len,
						       &err),
			 0);
	assert_int_equal(at, 2000);
	assert_string_equal(buf, second);
	char small[8];
	assert_int_equal(moat_registry_diagnostics_get(reg, "d1", &at, small, sizeof(small), &len,
						       &err),
			 MOAT_EINVAL);
	static char big[MOAT_REGISTRY_DIAGNOSTICS_MAX_BYTES + 2];
	memset(big, 'x', sizeof(big) - 1);
	assert_int_equal(moat_registry_diagnostics_put(reg, "d2", 1, big, sizeof(big) - 1, &err),
			 MOAT_EINVAL);
	assert_int_equal(moat_registry_diagnostics_get(reg, "d2", &at, buf, sizeof(buf), &len,
						       &err),
			 MOAT_ENOENT);
}

/* "<kind>:<identity>" of each event, comma-separated; seq must grow. */
static int collect_event(const struct moat_security_event *ev, void *ctx)
{
	static int64_t last_seq;
	char *out = ctx;
	size_t n = strlen(out);
	if (n == 0) {
		last_seq = 0;
	}
	assert_true(ev->seq > last_seq);
	last_seq = ev->seq;
	snprintf(out + n, 512 - n, "%s%s:%s", n ? "," : "", ev->kind, ev->identity);
	return 0;
}

static void test_security_events(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err = {0};
	bool fresh = false;
	int64_t last = -1;
	assert_int_equal(moat_registry_security_event_last_seq(reg, &last, &err), 0);
	assert_int_equal(last, 0); /* none yet */
	struct moat_security_event ev = sec_event("auth_refused", "a", 1000, MOAT_SEV_MEDIUM);
	assert_int_equal(moat_registry_security_event_add(reg, &ev, "r1/auth_refused/1", &fresh,
							  &err),
			 0);
	assert_true(fresh);
	assert_int_equal(ev.seq, 1);
	/* the same origin again (read from MQTT, then from the file): recorded once */
	ev.seq = 0;
	assert_int_equal(moat_registry_security_event_add(reg, &ev, "r1/auth_refused/1", &fresh,
							  &err),
			 0);
	assert_false(fresh);
	assert_int_equal(ev.seq, 0);
	/* no origin: always a new event */
	struct moat_security_event b = sec_event("connected", "b", 2000, MOAT_SEV_INFO);
	assert_int_equal(moat_registry_security_event_add(reg, &b, NULL, &fresh, &err), 0);
	assert_int_equal(moat_registry_security_event_add(reg, &b, NULL, &fresh, &err), 0);
	assert_true(fresh);
	struct moat_security_event c = sec_event("anomaly", "a", 3000, MOAT_SEV_HIGH);
	snprintf(c.rule, sizeof(c.rule), "rate");
	assert_int_equal(moat_registry_security_event_add(reg, &c, NULL, NULL, &err), 0);

	char out[512] = "";
	struct moat_event_filter all = {0};
	assert_int_equal(moat_registry_security_event_foreach(reg, &all, collect_event, out, &err),
			 0);
	assert_string_equal(out, "auth_refused:a,connected:b,connected:b,anomaly:a");
	out[0] = '\0';
	struct moat_event_filter newest = {.limit = 2};
	assert_int_equal(moat_registry_security_event_foreach(reg, &newest, collect_event, out,
							      &err),
			 0);
	assert_string_equal(out, "connected:b,anomaly:a"); /* the newest two, oldest first */
	out[0] = '\0';
	/* a reader following the table: the first two after seq 1 */
	struct moat_event_filter next = {.after_seq = 1, .limit = 2, .oldest = true};
	assert_int_equal(moat_registry_security_event_foreach(reg, &next, collect_event, out, &err),
			 0);
	assert_string_equal(out, "connected:b,connected:b");
	out[0] = '\0';
	assert_int_equal(moat_registry_security_event_last_seq(reg, &last, &err), 0);
	assert_int_equal(last, c.seq);
	struct moat_event_filter f = {.identity = "a", .after_seq = 1};
	assert_int_equal(moat_registry_security_event_foreach(reg, &f, collect_event, out, &err),
			 0);
	assert_string_equal(out, "anomaly:a");
	int64_t n = 0;
	struct moat_event_filter window = {.since_ms = 1500, .until_ms = 3000};
	assert_int_equal(moat_registry_security_event_count(reg, &window, &n, &err), 0);
	assert_int_equal(n, 2);
	struct moat_event_filter sev = {.min_severity = MOAT_SEV_MEDIUM};
	assert_int_equal(moat_registry_security_event_count(reg, &sev, &n, &err), 0);
	assert_int_equal(n, 2);
	struct moat_event_filter rule = {.kind = "anomaly", .rule = "rate"};
	assert_int_equal(moat_registry_security_event_count(reg, &rule, &n, &err), 0);
	assert_int_equal(n, 1);
	struct moat_event_filter other = {.rule = "silence"};
	assert_int_equal(moat_registry_security_event_count(reg, &other, &n, &err), 0);
	assert_int_equal(n, 0);
}

struct aggs {
	struct moat_telemetry_agg a[16];
	size_t n;
};

static int collect_agg(const struct moat_telemetry_agg *a, void *ctx)
{
	struct aggs *x = ctx;
	if (x->n < 16) {
		x->a[x->n++] = *a;
	}
	return 0;
}

static void add_telemetry(struct moat_registry *reg, const char *dev, int64_t at, double temp)
{
	char p[200];
	struct moat_err err = {0};
	int n = snprintf(p, sizeof(p),
			 "{\"device_id\":\"%s\",\"device_type\":\"s\",\"timestamp\":1,"
			 "\"telemetry\":{\"temp\":%g}}",
			 dev, temp);
	assert_int_equal(moat_registry_telemetry_add(reg, dev, at, p, (size_t)n, &err), 0);
}

/* A reading that underflows a double (1e-400: moat_msg_telemetry_parse reads 0, finite) or is
 * subnormal folds on both engines: PostgreSQL's float8 refuses the text 1e-400, which would
 * stop every later compaction. */
static void test_telemetry_compact_tiny(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err = {0};
	const int64_t DAY = 24 * 3600000LL, t0 = 1000 * DAY;
	static const char p[] = "{\"device_id\":\"d9\",\"device_type\":\"s\",\"timestamp\":1,"
				"\"telemetry\":{\"tiny\":1e-400,\"sub\":2.5e-310,\"big\":1.5e308}}";
	assert_int_equal(moat_registry_telemetry_add(reg, "d9", t0, p, sizeof(p) - 1, &err), 0);
	struct moat_retention r = {.raw_ms = 7 * DAY,
				   .minute_ms = 30 * DAY,
				   .hour_ms = 400 * DAY,
				   .event_ms = 400 * DAY};
	struct moat_compact_stats cs;
	if (moat_registry_telemetry_compact(reg, t0 + 8 * DAY, &r, 0, &cs, &err) != 0) {
		fail_msg("compaction refused a tiny reading: %s", err.msg);
	}
	assert_int_equal(cs.raw_folded, 1);
	struct aggs x = {0};
	assert_int_equal(moat_registry_telemetry_agg_foreach(reg, "d9", 60, collect_agg, &x, &err),
			 0);
	assert_int_equal(x.n, 3);
}

/* Retention with explicit times: raw rows past telemetry_retention become minute and hour
 * aggregates (merged with those already there), aggregates past theirs go. */
static void test_telemetry_compact(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err = {0};
	const int64_t H = 3600000, M = 60000, DAY = 24 * H;
	const int64_t t0 = 1000 * DAY; /* a whole hour */
	struct moat_retention r = {.raw_ms = 7 * DAY,
				   .minute_ms = 30 * DAY,
				   .hour_ms = 400 * DAY,
				   .event_ms = 400 * DAY};
	/* minute 0: 10, 20; minute 1: 30; the next hour: 5; and one within retention */
	add_telemetry(reg, "d1", t0 + 1000, 10);
	add_telemetry(reg, "d1", t0 + 59000, 20);
	add_telemetry(reg, "d1", t0 + M + 1, 30);
	add_telemetry(reg, "d1", t0 + H + 5, 5);
	add_telemetry(reg, "d1", t0 + 10 * DAY, 99);
	struct moat_compact_stats cs;
	int64_t now = t0 + 8 * DAY; /* the first four are past 7 days */
	assert_int_equal(moat_registry_telemetry_compact(reg, now, &r, 0, &cs, &err), 0);
	assert_int_equal(cs.raw_folded, 4);
	int64_t left = 0;
	assert_int_equal(moat_registry_telemetry_count(reg, "d1", &left, &err), 0);
	assert_int_equal(left, 1);
	struct aggs x = {0};
	assert_int_equal(moat_registry_telemetry_agg_foreach(reg, "d1", 60, collect_agg, &x, &err),
			 0);
	assert_int_equal(x.n, 3);
	assert_int_equal(x.a[0].bucket_ms, t0);
	assert_int_equal(x.a[0].count, 2);
	assert_true(x.a[0].min == 10 && x.a[0].max == 20 && x.a[0].mean == 15);
	assert_string_equal(x.a[0].metric, "temp");
	assert_int_equal(x.a[1].bucket_ms, t0 + M);
	assert_int_equal(x.a[2].bucket_ms, t0 + H);
	x.n = 0;
	assert_int_equal(moat_registry_telemetry_agg_foreach(reg, "d1", 3600, collect_agg, &x,
							     &err),
			 0);
	assert_int_equal(x.n, 2);
	assert_int_equal(x.a[0].count, 3);
	assert_true(x.a[0].min == 10 && x.a[0].max == 30 && x.a[0].mean == 20);
	assert_int_equal(x.a[1].count, 1);

	/* a late raw row of an hour already folded merges into its aggregate */
	add_telemetry(reg, "d1", t0 + 2 * M, 40);
	assert_int_equal(moat_registry_telemetry_compact(reg, now, &r, 0, &cs, &err), 0);
	assert_int_equal(cs.raw_folded, 1);
	x.n = 0;
	assert_int_equal(moat_registry_telemetry_agg_foreach(reg, "d1", 3600, collect_agg, &x,
							     &err),
			 0);
	assert_int_equal(x.a[0].count, 4);
	assert_true(x.a[0].max == 40 && x.a[0].mean == 25);

	/* 31 days on, minutes of t0 are gone and hours stay; 401 days on, hours go too */
	assert_int_equal(moat_registry_telemetry_compact(reg, t0 + 31 * DAY, &r, 0, &cs, &err), 0);
	assert_int_equal(cs.raw_folded, 1); /* the row of day 10 */
	assert_int_equal(cs.minutes_dropped, 4);
	x.n = 0;
	assert_int_equal(moat_registry_telemetry_agg_foreach(reg, "d1", 0, collect_agg, &x, &err),
			 0);
	assert_int_equal(x.n, 1 + 3); /* day 10: its minute and hour; t0's two hours */
	assert_int_equal(moat_registry_telemetry_compact(reg, t0 + 401 * DAY, &r, 0, &cs, &err), 0);
	assert_int_equal(cs.hours_dropped, 2);

	/* max_rows bounds one pass: the oldest first */
	for (int i = 0; i < 5; i++) {
		add_telemetry(reg, "d2", t0 + i, i);
	}
	assert_int_equal(moat_registry_telemetry_compact(reg, t0 + 8 * DAY, &r, 2, &cs, &err), 0);
	assert_int_equal(cs.raw_folded, 2);
	assert_int_equal(moat_registry_telemetry_count(reg, "d2", &left, &err), 0);
	assert_int_equal(left, 3);
}

/* Events past event_retention are deleted by the same pass. */
/* ---- rollouts (rollouts.c, migrations 6 and 9) ---- */

/* "<device>:<phase>:<signal>:<stage>:<running_new><accepted>@<joined_at>" of each device of
 * a rollout, comma-separated ("-": none) */
static int collect_rollout_devices(const struct moat_rollout_device *d, void *ctx)
{
	char *out = ctx;
	size_t n = strlen(out);
	assert_true(d->signalled == (d->signal != NULL));
	snprintf(out + n, 256 - n, "%s%s:%d:%s:%s:%d%d@%lld", n ? "," : "", d->device, d->phase,
		 d->signal ? d->signal : "-", d->stage ? d->stage : "-", d->running_new,
		 d->accepted, (long long)d->joined_at);
	return 0;
}

static char *rollout_devices(struct moat_registry *reg, const struct moat_rollout_row *r, char *buf)
{
	struct moat_err err;
	buf[0] = '\0';
	OK(moat_registry_rollout_devices(reg, r, "1.1.0", collect_rollout_devices, buf, &err));
	return buf;
}

/* "<device>/<phase>" of each member; stops (returning 9) at "stop" */
static int collect_members(const char *device, int phase, void *ctx)
{
	char *out = ctx;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%s%s/%d", n ? "," : "", device, phase);
	return strcmp(device, "d2") == 0 && strstr(out, "stop") ? 9 : 0;
}

/* ids of the rollouts walked, comma-separated */
static int collect_rollouts(const struct moat_rollout_row *r, void *ctx)
{
	char *out = ctx;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%s%lld", n ? "," : "", (long long)r->id);
	return 0;
}

static void update_event(struct moat_registry *reg, const char *device,
			 enum moat_update_stage stage, int64_t at)
{
	struct moat_err err;
	/* confirmed: it runs the new version (device_firmware follows the report) */
	struct moat_update_event ev =
		event(device, stage, stage == MOAT_UPD_CONFIRMED ? "1.1.0" : "1.0.0", at);
	snprintf(ev.version, sizeof(ev.version), "1.1.0");
	OK(moat_registry_update_event_record(reg, &ev, &err));
}

/* One rollout per release (RETURNING its id), refusals that leave nothing, moves only from
 * the state the caller saw, each phase's start, members, and what rollout_devices reads for
 * the decisions: each device's newest stage (a later "checked" does not undo an outcome),
 * running firmware, newest signal since its phase started (an anomaly by its rule), joins,
 * acceptance at a resume; a deleted device leaves no member behind. */
static void test_rollouts(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	char buf[256];
	add_device(reg, "d1");
	add_device(reg, "d2");
	add_device(reg, "d3");
	struct moat_release rel = release("sensor", "1.1.0", 'a', 0, 50);
	OK(moat_registry_release_insert(reg, &rel, NULL, 0, &err));
	struct moat_rollout_row r = {.soak_s = 1,
				     .silent_s = 3600,
				     .halt_failure_pct = 5,
				     .halt_on_events = true,
				     .phase_count = 2,
				     .percent = {50, 100},
				     .created_at = 100};
	snprintf(r.sha256_hex, sizeof(r.sha256_hex), "%s", rel.sha256_hex);
	snprintf(r.group, sizeof(r.group), "g");
	snprintf(r.rank_key_hex, sizeof(r.rank_key_hex), "00");
	/* a device twice, or unknown: nothing of the rollout is kept */
	struct moat_rollout_member twice[] = {{"d1", 0}, {"d1", 1}};
	assert_int_equal(moat_registry_rollout_insert(reg, &r, twice, 2, &err), MOAT_EINVAL);
	assert_string_equal(err.msg, "rollout: device d1 twice or unknown");
	struct moat_rollout_member ghost[] = {{"ghost", 0}};
	assert_int_equal(moat_registry_rollout_insert(reg, &r, ghost, 1, &err), MOAT_EINVAL);
	assert_int_equal(count(reg, "SELECT count(*) FROM rollouts"), 0);
	assert_int_equal(count(reg, "SELECT count(*) FROM rollout_phases"), 0);
	struct moat_rollout_row bad = r;
	bad.phase_count = 0;
	assert_int_equal(moat_registry_rollout_insert(reg, &bad, NULL, 0, &err), MOAT_EINVAL);
	/* a value the table's checks refuse is said as such, not as "has a rollout already" */
	bad = r;
	bad.soak_s = -1;
	assert_int_equal(moat_registry_rollout_insert(reg, &bad, NULL, 0, &err), MOAT_EINVAL);
	assert_string_equal(err.msg, "rollout of sensor 1.1.0 refused by the registry: soak -1s, "
				     "halt at 5%, or a phase's percent out of range");
	assert_int_equal(count(reg, "SELECT count(*) FROM rollouts"), 0);

	struct moat_rollout_member m[] = {{"d1", 0}, {"d2", 1}};
	OK(moat_registry_rollout_insert(reg, &r, m, 2, &err));
	assert_true(r.id > 0);
	/* a release's second rollout, and a rollout of an unknown release: the refusal is read
	 * after the rollback (PostgreSQL aborted the transaction at the failed insert) */
	struct moat_rollout_row again = r;
	assert_int_equal(moat_registry_rollout_insert(reg, &again, m, 2, &err), MOAT_EEXIST);
	assert_string_equal(err.msg, "release sensor 1.1.0 has a rollout already");
	bad = r;
	memset(bad.sha256_hex, 'f', MOAT_SHA256_HEX_LEN);
	assert_int_equal(moat_registry_rollout_insert(reg, &bad, m, 2, &err), MOAT_ENOENT);
	assert_string_equal(err.msg, "release ffffffffffff... is not published");
	assert_int_equal(count(reg, "SELECT count(*) FROM rollouts"), 1);

	struct moat_rollout_row got;
	OK(moat_registry_rollout_get(reg, r.id, &got, &err));
	assert_string_equal(got.sha256_hex, rel.sha256_hex);
	assert_string_equal(got.group, "g");
	assert_string_equal(got.rank_key_hex, "00");
	assert_int_equal(got.state, MOAT_ROLLOUT_RUNNING);
	assert_int_equal(got.soak_s, 1);
	assert_int_equal(got.silent_s, 3600);
	assert_int_equal(got.halt_failure_pct, 5);
	assert_true(got.halt_on_events);
	assert_int_equal(got.phase, 0);
	assert_int_equal(got.phase_count, 2);
	assert_int_equal(got.percent[0], 50);
	assert_int_equal(got.percent[1], 100);
	assert_int_equal(got.started_at[0], 100);
	assert_int_equal(got.started_at[1], 0);
	assert_int_equal(got.created_at, 100);
	assert_int_equal(got.updated_at, 100);
	assert_int_equal(got.device_count, 2);
	assert_int_equal(moat_registry_rollout_get(reg, r.id + 100, &got, &err), MOAT_ENOENT);
	bool found = false;
	OK(moat_registry_rollout_of_release(reg, rel.sha256_hex, &got, &found, &err));
	assert_true(found);
	assert_int_equal(got.id, r.id);
	OK(moat_registry_rollout_of_release(reg, bad.sha256_hex, &got, &found, &err));
	assert_false(found);
	int phase = -1;
	OK(moat_registry_rollout_member(reg, r.id, "d2", &phase, &found, &err));
	assert_true(found);
	assert_int_equal(phase, 1);
	OK(moat_registry_rollout_member(reg, r.id, "d3", &phase, &found, &err));
	assert_false(found);
	assert_int_equal(phase, -1);

	/* phase 1 starts at 200; a second move from the state already left is refused */
	OK(moat_registry_rollout_move(reg, r.id, MOAT_ROLLOUT_RUNNING, 0, MOAT_ROLLOUT_RUNNING, 1,
				      "", 200, &err));
	assert_int_equal(moat_registry_rollout_move(reg, r.id, MOAT_ROLLOUT_RUNNING, 0,
						    MOAT_ROLLOUT_HALTED, 0, "x", 201, &err),
			 MOAT_ESTATE);
	OK(moat_registry_rollout_get(reg, r.id, &got, &err));
	assert_int_equal(got.phase, 1);
	assert_int_equal(got.started_at[1], 200);
	assert_int_equal(got.updated_at, 200);
	assert_int_equal(got.resumed_at, 0); /* it never stopped running */

	/* signals: d1's denial since phase 0 began; another kind is none; d2's denial came
	 * before its phase (1) started at 200 s */
	struct moat_security_event ev = sec_event("acl_denied", "d1", 150000, MOAT_SEV_MEDIUM);
	OK(moat_registry_security_event_add(reg, &ev, NULL, NULL, &err));
	ev = sec_event("connected", "d2", 250000, MOAT_SEV_INFO);
	OK(moat_registry_security_event_add(reg, &ev, NULL, NULL, &err));
	ev = sec_event("acl_denied", "d2", 150000, MOAT_SEV_MEDIUM);
	OK(moat_registry_security_event_add(reg, &ev, NULL, NULL, &err));
	assert_string_equal(rollout_devices(reg, &got, buf),
			    "d1:0:acl_denied:-:00@0,d2:1:-:-:00@0");
	/* an anomaly is named by its rule; the newest signal is the one named */
	ev = sec_event("anomaly", "d2", 250000, MOAT_SEV_HIGH);
	snprintf(ev.rule, sizeof(ev.rule), "event_jump");
	OK(moat_registry_security_event_add(reg, &ev, NULL, NULL, &err));
	ev = sec_event("rate_limited", "d1", 260000, MOAT_SEV_LOW);
	OK(moat_registry_security_event_add(reg, &ev, NULL, NULL, &err));
	assert_string_equal(rollout_devices(reg, &got, buf),
			    "d1:0:rate_limited:-:00@0,d2:1:anomaly event_jump:-:00@0");

	/* stages: d1 reverted and checked again at its next start (it stays reverted); d2
	 * installed, then confirmed and runs 1.1.0; an event before d2's phase is not read */
	update_event(reg, "d1", MOAT_UPD_REVERTED, 210);
	update_event(reg, "d1", MOAT_UPD_CHECKED, 211);
	update_event(reg, "d2", MOAT_UPD_DOWNLOADING, 199);
	update_event(reg, "d2", MOAT_UPD_CHECKED, 212);
	assert_string_equal(rollout_devices(reg, &got, buf),
			    "d1:0:rate_limited:reverted:00@0,d2:1:anomaly event_jump:checked:00@0");
	update_event(reg, "d2", MOAT_UPD_CONFIRMED, 213);
	assert_string_equal(
		rollout_devices(reg, &got, buf),
		"d1:0:rate_limited:reverted:00@0,d2:1:anomaly event_jump:confirmed:10@0");

	/* halted, then resumed accepting d1's failure: d1's signals count from the acceptance
	 * on, resumed_at is the resume's time */
	OK(moat_registry_rollout_move(reg, r.id, MOAT_ROLLOUT_RUNNING, 1, MOAT_ROLLOUT_HALTED, 1,
				      "d1 reverted", 300, &err));
	OK(moat_registry_rollout_get(reg, r.id, &got, &err));
	assert_int_equal(got.state, MOAT_ROLLOUT_HALTED);
	assert_string_equal(got.cause, "d1 reverted");
	assert_int_equal(got.started_at[1], 200); /* the same phase: its start stays */
	const char *failed[] = {"d1"};
	assert_int_equal(moat_registry_rollout_resume_accepting(reg, r.id, MOAT_ROLLOUT_RUNNING, 1,
								failed, 1, 310, &err),
			 MOAT_ESTATE); /* not from the state it is in */
	OK(moat_registry_rollout_resume_accepting(reg, r.id, MOAT_ROLLOUT_HALTED, 1, failed, 1, 310,
						  &err));
	OK(moat_registry_rollout_get(reg, r.id, &got, &err));
	assert_int_equal(got.state, MOAT_ROLLOUT_RUNNING);
	assert_string_equal(got.cause, "");
	assert_int_equal(got.resumed_at, 310);
	assert_int_equal(got.accepted_at, 310);
	assert_string_equal(rollout_devices(reg, &got, buf),
			    "d1:0:-:reverted:01@0,d2:1:-:confirmed:10@0");
	ev = sec_event("auth_refused", "d1", 320000, MOAT_SEV_MEDIUM);
	OK(moat_registry_security_event_add(reg, &ev, NULL, NULL, &err));

	/* d3 joins the group later (a member already there is left as it is); its stage and
	 * signals count from its join */
	update_event(reg, "d3", MOAT_UPD_REFUSED, 330);
	struct moat_rollout_member join[] = {{"d3", 1}, {"d2", 0}};
	OK(moat_registry_rollout_join(reg, r.id, join, 2, 400, &err));
	OK(moat_registry_rollout_join(reg, r.id, join, 0, 401, &err));
	update_event(reg, "d3", MOAT_UPD_DOWNLOADING, 410);
	OK(moat_registry_rollout_get(reg, r.id, &got, &err));
	assert_int_equal(got.device_count, 3);
	assert_string_equal(rollout_devices(reg, &got, buf),
			    "d1:0:auth_refused:reverted:01@0,d2:1:-:confirmed:10@0,"
			    "d3:1:-:downloading:00@400");
	struct moat_rollout_member unknown[] = {{"ghost", 1}};
	assert_int_equal(moat_registry_rollout_join(reg, r.id, unknown, 1, 402, &err), MOAT_EDB);
	OK(moat_registry_rollout_get(reg, r.id, &got, &err));
	assert_int_equal(got.device_count, 3);

	/* members by id, the walk stopped by its callback */
	buf[0] = '\0';
	OK(moat_registry_rollout_members(reg, r.id, collect_members, buf, &err));
	assert_string_equal(buf, "d1/0,d2/1,d3/1");
	snprintf(buf, sizeof(buf), "stop");
	assert_int_equal(moat_registry_rollout_members(reg, r.id, collect_members, buf, &err), 9);
	assert_string_equal(buf, "stop,d1/0,d2/1");

	/* every rollout, oldest first */
	struct moat_release rel2 = release("sensor", "1.2.0", 'b', 0, 60);
	OK(moat_registry_release_insert(reg, &rel2, NULL, 0, &err));
	struct moat_rollout_row r2 = r;
	snprintf(r2.sha256_hex, sizeof(r2.sha256_hex), "%s", rel2.sha256_hex);
	r2.phase_count = 1;
	OK(moat_registry_rollout_insert(reg, &r2, NULL, 0, &err));
	assert_true(r2.id > r.id);
	buf[0] = '\0';
	OK(moat_registry_rollout_foreach(reg, collect_rollouts, buf, &err));
	char want[64];
	snprintf(want, sizeof(want), "%lld,%lld", (long long)r.id, (long long)r2.id);
	assert_string_equal(buf, want);

	/* deleting d1 (its certificate revoked) removes its membership and its job results */
	struct moat_job_row j = {.command = "reboot",
				 .target = "devices d1,d2",
				 .as = "op",
				 .created_at = 500};
	char *devs[] = {"d1", "d2"};
	OK(moat_registry_job_insert(reg, &j, devs, 2, &err));
	add_cert(reg, "0b", "d1", 500, true);
	OK(moat_registry_identity_delete(reg, "d1", 501, &err));
	OK(moat_registry_rollout_member(reg, r.id, "d1", &phase, &found, &err));
	assert_false(found);
	OK(moat_registry_rollout_get(reg, r.id, &got, &err));
	assert_int_equal(got.device_count, 2);
	struct moat_job_row jg;
	OK(moat_registry_job_get(reg, j.id, &jg, &err));
	assert_int_equal(jg.devices, 1);
}

/* ---- the dashboard (dashboard.c, migration 9) ---- */

/* "<id>/<type>/<status>/<release>/<conn>/<last_seen>/<cert_not_after>" of each row */
static int collect_dash(const struct moat_dash_device *d, void *ctx)
{
	char *out = ctx;
	size_t n = strlen(out);
	snprintf(out + n, 512 - n, "%s%s/%s/%s/%s/%d/%lld/%lld", n ? "," : "", d->id, d->type,
		 d->status, d->release, (int)d->conn, (long long)d->last_seen_ms,
		 (long long)d->cert_not_after);
	return 0;
}

/* The ids of the devices f matches and their number: "<total>:<id>,<id>..." */
static const char *dash_ids(struct moat_registry *reg, struct moat_dash_device_filter f, char *buf,
			    size_t size)
{
	struct moat_err err;
	char rows[512] = "";
	int64_t total = -1;
	OK(moat_registry_dash_devices(reg, &f, collect_dash, rows, &total, &err));
	int n = snprintf(buf, size, "%lld:", (long long)total);
	/* the ids alone: each row up to its first '/' */
	for (const char *p = rows; *p && (size_t)n + 1 < size;) {
		const char *slash = strchr(p, '/');
		const char *comma = strchr(p, ',');
		n += snprintf(buf + n, size - (size_t)n, "%s%.*s", buf[n - 1] == ':' ? "" : ",",
			      (int)(slash - p), p);
		p = comma ? comma + 1 : p + strlen(p);
	}
	return buf;
}

static int collect_tags(const char *tag, void *ctx)
{
	char *out = ctx;
	size_t n = strlen(out);
	snprintf(out + n, 128 - n, "%s%s", n ? "," : "", tag);
	return 0;
}

/* "<at_ms>=<temp payload length>" of each raw telemetry row */
static int collect_raw(int64_t at_ms, const char *payload, size_t len, void *ctx)
{
	char *out = ctx;
	size_t n = strlen(out);
	assert_int_equal(strlen(payload), len);
	const char *t = strstr(payload, "\"temp\":");
	assert_non_null(t);
	snprintf(out + n, 256 - n, "%s%lld=%.*s", n ? "," : "", (long long)at_ms,
		 (int)strcspn(t + 7, "}"), t + 7);
	return 0;
}

/* Sign-in links spent once (whoever else tries gets used, expired or unknown), sessions,
 * pruning a day after expiry; the paged device table and each of its filters (a substring
 * of the id, type, status, connection, release, tag, a group's members as a JSON array),
 * tags, raw telemetry (the newest, oldest first), one identity's certificates. */
static void test_dashboard(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	char op[MOAT_ID_BUF_LEN];
	int64_t session_ms = 0;
	enum moat_dash_token tok;
	const char *t1 = "1111111111111111111111111111111111111111111111111111111111111111";
	const char *t2 = "2222222222222222222222222222222222222222222222222222222222222222";
	OK(moat_registry_dash_link_add(reg, t1, "alice", 1000, 5000, 60000, &err));
	OK(moat_registry_dash_link_add(reg, t2, "bob", 1000, 2000, 60000, &err));
	assert_int_not_equal(moat_registry_dash_link_add(reg, t1, "eve", 1000, 5000, 60000, &err),
			     0); /* a token once */
	OK(moat_registry_dash_link_use(reg, t1, 3000, op, &session_ms, &tok, &err));
	assert_int_equal(tok, MOAT_DASH_TOKEN_OK);
	assert_string_equal(op, "alice");
	assert_int_equal(session_ms, 60000);
	OK(moat_registry_dash_link_use(reg, t1, 3001, op, &session_ms, &tok, &err));
	assert_int_equal(tok, MOAT_DASH_TOKEN_USED);
	assert_string_equal(op, "");
	OK(moat_registry_dash_link_use(reg, t2, 3000, op, &session_ms, &tok, &err));
	assert_int_equal(tok, MOAT_DASH_TOKEN_EXPIRED);
	OK(moat_registry_dash_link_use(reg, "ff", 3000, op, &session_ms, &tok, &err));
	assert_int_equal(tok, MOAT_DASH_TOKEN_UNKNOWN);
	OK(moat_registry_dash_session_add(reg, t1, "alice", 3000, 63000, &err));
	OK(moat_registry_dash_session_get(reg, t1, 4000, op, &tok, &err));
	assert_int_equal(tok, MOAT_DASH_TOKEN_OK);
	assert_string_equal(op, "alice");
	OK(moat_registry_dash_session_get(reg, t1, 63000, op, &tok, &err));
	assert_int_equal(tok, MOAT_DASH_TOKEN_EXPIRED);
	OK(moat_registry_dash_session_get(reg, t2, 4000, op, &tok, &err));
	assert_int_equal(tok, MOAT_DASH_TOKEN_UNKNOWN);
	OK(moat_registry_dash_session_end(reg, t1, &err));
	OK(moat_registry_dash_session_end(reg, t1, &err)); /* unknown: no error */
	OK(moat_registry_dash_session_get(reg, t1, 4000, op, &tok, &err));
	assert_int_equal(tok, MOAT_DASH_TOKEN_UNKNOWN);
	/* a day after their expiry, links and sessions go at the next add */
	OK(moat_registry_dash_session_add(reg, t2, "bob", 3000, 4000, &err));
	assert_int_equal(count(reg, "SELECT count(*) FROM dashboard_links"), 2);
	OK(moat_registry_dash_link_add(reg, t1 + 1, "carol", 4000 + 24LL * 3600 * 1000 + 1,
				       4000 + 24LL * 3600 * 1000 + 100, 60000, &err));
	assert_int_equal(count(reg, "SELECT count(*) FROM dashboard_links"), 2); /* t1 stays */
	assert_int_equal(count(reg, "SELECT count(*) FROM dashboard_sessions"), 0);

	/* the device table: sensor-1 online, running 2.0.0, tagged west, a certificate;
	 * sensor-2 offline; cam-3 disabled, of another type; the service is never listed */
	add_device(reg, "sensor-1");
	add_device(reg, "sensor-2");
	raw(reg,
	    "INSERT INTO identities(id, role, device_type, created_at, status) VALUES (?1, "
	    "'device', ?2, ?3, 'disabled')",
	    "cam-3", "camera", 1000);
	raw(reg,
	    "INSERT INTO identities(id, role, device_type, created_at) VALUES (?1, 'service', "
	    "?2, ?3)",
	    "moatd", "", 1000);
	add_cert(reg, "0a", "sensor-1", 100, false);
	add_cert(reg, "0b", "sensor-1", 900, true); /* revoked: not its newest */
	OK(moat_registry_tag_add(reg, "sensor-1", "west", &err));
	OK(moat_registry_tag_add(reg, "sensor-1", "floor2", &err));
	struct moat_update_event ue = event("sensor-1", MOAT_UPD_CONFIRMED, "2.0.0", 50);
	OK(moat_registry_update_event_record(reg, &ue, &err));
	struct moat_device_state ds;
	memset(&ds, 0, sizeof(ds));
	snprintf(ds.device, sizeof(ds.device), "sensor-1");
	ds.state = MOAT_CONN_ONLINE;
	ds.state_at_ms = 70;
	ds.last_seen_ms = 77;
	OK(moat_registry_device_state_merge(reg, &ds, 0, 0, &err));
	snprintf(ds.device, sizeof(ds.device), "sensor-2");
	ds.state = MOAT_CONN_OFFLINE;
	ds.last_seen_ms = 66;
	OK(moat_registry_device_state_merge(reg, &ds, 0, 0, &err));

	char rows[512] = "";
	int64_t total = -1;
	struct moat_dash_device_filter all = {0};
	OK(moat_registry_dash_devices(reg, &all, collect_dash, rows, &total, &err));
	assert_int_equal(total, 3);
	char want[512];
	snprintf(want, sizeof(want),
		 "cam-3/camera/disabled//%d/0/0,sensor-1/sensor/active/2.0.0/%d/77/3700,"
		 "sensor-2/sensor/active//%d/66/0",
		 MOAT_CONN_UNKNOWN, MOAT_CONN_ONLINE, MOAT_CONN_OFFLINE);
	assert_string_equal(rows, want);
	char buf[256];
	assert_string_equal(dash_ids(reg, (struct moat_dash_device_filter){.search = "sor-"}, buf,
				     sizeof(buf)),
			    "2:sensor-1,sensor-2");
	/* a substring, case and all (SQLite's instr, PostgreSQL's strpos) */
	assert_string_equal(dash_ids(reg, (struct moat_dash_device_filter){.search = "SOR"}, buf,
				     sizeof(buf)),
			    "0:");
	assert_string_equal(dash_ids(reg, (struct moat_dash_device_filter){.search = ""}, buf,
				     sizeof(buf)),
			    "3:cam-3,sensor-1,sensor-2");
	assert_string_equal(dash_ids(reg, (struct moat_dash_device_filter){.type = "camera"}, buf,
				     sizeof(buf)),
			    "1:cam-3");
	assert_string_equal(dash_ids(reg, (struct moat_dash_device_filter){.status = "active"}, buf,
				     sizeof(buf)),
			    "2:sensor-1,sensor-2");
	assert_string_equal(dash_ids(reg, (struct moat_dash_device_filter){.conn = "online"}, buf,
				     sizeof(buf)),
			    "1:sensor-1");
	assert_string_equal(dash_ids(reg, (struct moat_dash_device_filter){.conn = "unknown"}, buf,
				     sizeof(buf)),
			    "1:cam-3");
	assert_string_equal(dash_ids(reg, (struct moat_dash_device_filter){.conn = "bogus"}, buf,
				     sizeof(buf)),
			    "0:");
	assert_string_equal(dash_ids(reg, (struct moat_dash_device_filter){.release = "2.0.0"}, buf,
				     sizeof(buf)),
			    "1:sensor-1");
	assert_string_equal(dash_ids(reg, (struct moat_dash_device_filter){.tag = "west"}, buf,
				     sizeof(buf)),
			    "1:sensor-1");
	assert_string_equal(dash_ids(reg,
				     (struct moat_dash_device_filter){
					     .only_json = "[\"sensor-2\",\"cam-3\"]"},
				     buf, sizeof(buf)),
			    "2:cam-3,sensor-2");
	assert_string_equal(dash_ids(reg, (struct moat_dash_device_filter){.only_json = "[]"}, buf,
				     sizeof(buf)),
			    "0:");
	assert_string_equal(dash_ids(reg,
				     (struct moat_dash_device_filter){.status = "active",
								      .only_json = "[\"sensor-2\","
										   "\"cam-3\"]"},
				     buf, sizeof(buf)),
			    "1:sensor-2");
	/* pages: the total is all that match */
	assert_string_equal(dash_ids(reg, (struct moat_dash_device_filter){.limit = 1, .offset = 1},
				     buf, sizeof(buf)),
			    "3:sensor-1");
	assert_string_equal(dash_ids(reg, (struct moat_dash_device_filter){.offset = 2}, buf,
				     sizeof(buf)),
			    "3:sensor-2");
	total = -1;
	OK(moat_registry_dash_devices(reg, &all, NULL, NULL, &total, &err)); /* the count alone */
	assert_int_equal(total, 3);

	char tags[128] = "";
	OK(moat_registry_tag_foreach(reg, "sensor-1", collect_tags, tags, &err));
	assert_string_equal(tags, "floor2,west");

	/* raw telemetry: since a time, the newest limit rows, oldest first */
	add_telemetry(reg, "sensor-1", 10, 1);
	add_telemetry(reg, "sensor-1", 30, 3);
	add_telemetry(reg, "sensor-1", 20, 2);
	add_telemetry(reg, "sensor-2", 25, 9);
	char tele[256] = "";
	OK(moat_registry_telemetry_foreach(reg, "sensor-1", 0, 0, collect_raw, tele, &err));
	assert_string_equal(tele, "10=1,20=2,30=3");
	tele[0] = '\0';
	OK(moat_registry_telemetry_foreach(reg, "sensor-1", 0, 2, collect_raw, tele, &err));
	assert_string_equal(tele, "20=2,30=3");
	tele[0] = '\0';
	OK(moat_registry_telemetry_foreach(reg, "sensor-1", 15, 0, collect_raw, tele, &err));
	assert_string_equal(tele, "20=2,30=3");

	char serials[256] = "";
	OK(moat_registry_cert_foreach_of(reg, "sensor-1", cert_serials, serials, &err));
	assert_string_equal(serials, "0a/sensor-1,0b/sensor-1");
	serials[0] = '\0';
	OK(moat_registry_cert_foreach_of(reg, "sensor-2", cert_serials, serials, &err));
	assert_string_equal(serials, "");
}

static void test_event_retention(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err = {0};
	struct moat_security_event a = sec_event("acl_denied", "x", 1000, MOAT_SEV_MEDIUM);
	struct moat_security_event b = sec_event("acl_denied", "x", 9000, MOAT_SEV_MEDIUM);
	assert_int_equal(moat_registry_security_event_add(reg, &a, NULL, NULL, &err), 0);
	assert_int_equal(moat_registry_security_event_add(reg, &b, NULL, NULL, &err), 0);
	struct moat_retention r = {.raw_ms = 1, .minute_ms = 1, .hour_ms = 1, .event_ms = 5000};
	struct moat_compact_stats cs;
	assert_int_equal(moat_registry_telemetry_compact(reg, 10000, &r, 0, &cs, &err), 0);
	assert_int_equal(cs.events_dropped, 1);
	int64_t n = 0;
	struct moat_event_filter all = {0};
	assert_int_equal(moat_registry_security_event_count(reg, &all, &n, &err), 0);
	assert_int_equal(n, 1);
}

static void test_backup_backend(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	char copy[600];
	snprintf(copy, sizeof(copy), "%s/copy-%d.db", tmp_root, getpid());
	int rc = moat_registry_backup(reg, copy, &err);
	if (pg_url) {
		assert_int_equal(rc, MOAT_EINVAL);
		assert_non_null(strstr(err.msg, "pg_dump"));
	} else {
		assert_int_equal(rc, 0);
		unlink(copy);
	}
}

/* ---- copy.c: the sums that prove a copy, and the copy into PostgreSQL ---- */

static void exec_ok(struct moat_registry *reg, const char *sql)
{
	if (rdb_exec(reg_db(reg), sql) != 0) {
		fail_msg("%s: %s", sql, rdb_errmsg(reg_db(reg)));
	}
}

/* The same rows on either backend: identities, a certificate, tags, real numbers that
 * print differently on the two engines, text beyond ASCII, three security events of which
 * the last is deleted (the sequence stays at 3). */
static void fill(struct moat_registry *reg)
{
	add_device(reg, "d1");
	add_device(reg, "d2");
	exec_ok(reg, "INSERT INTO certificates(serial, identity, not_before, not_after, pem) "
		     "VALUES ('0a', 'd1', 1, 2, 'PEM')");
	exec_ok(reg, "INSERT INTO device_tags(device, tag) VALUES ('d1', 'b'), ('d1', 'B'), "
		     "('d2', 'a')");
	exec_ok(reg, "INSERT INTO telemetry_agg(device, metric, period_s, bucket_ms, n, min, max, "
		     "sum) VALUES ('d1', 't', 60, 0, 3, 0.1, 1e-300, -2.5), ('d1', 'u', 60, 0, 1, "
		     "0.30000000000000004, 123456789.123456789, 1e300)");
	exec_ok(reg, "INSERT INTO telemetry(device, at_ms, payload) VALUES ('d1', 5, "
		     "'{\"t\":\"caf\xc3\xa9\"}'), ('d1', 5, '{}'), ('d2', 4, '{}')");
	for (int i = 0; i < 3; i++) {
		exec_ok(reg,
			"INSERT INTO security_events(at_ms, kind, severity, source, identity, "
			"address, rule, evidence, run_id) VALUES (1, 'acl_denied', 2, 'broker', "
			"'d1', '', '', '', 'r')");
	}
	exec_ok(reg, "DELETE FROM security_events WHERE seq = 3");
}

static int find_table(const struct moat_registry_sums *s, const char *name)
{
	for (size_t i = 0; i < s->count; i++) {
		if (strcmp(s->tables[i].table, name) == 0) {
			return (int)i;
		}
	}
	fail_msg("no table %s", name);
	return -1;
}

/* Only the table named differs between a and b. */
static void only_differs(const struct moat_registry_sums *a, const struct moat_registry_sums *b,
			 const char *name)
{
	int i = find_table(a, name);
	assert_int_equal(moat_registry_sums_diff(a, b), i);
	struct moat_registry_sums *c = malloc(sizeof(*c));
	assert_non_null(c);
	*c = *b;
	c->tables[i] = a->tables[i];
	assert_int_equal(moat_registry_sums_diff(a, c), -1);
	free(c);
}

/* The registry under test and a SQLite file with the same rows sum alike, table by table
 * (on PostgreSQL: the two engines render every value the same); one row changed on one
 * side, or a sequence moved, is named. */
static void test_sums(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_registry *lite = NULL;
	struct moat_err err;
	char path[700];
	snprintf(path, sizeof(path), "%s/sums.db", tmp_root);
	assert_int_equal(moat_registry_open(path, true, &lite, &err), 0);
	fill(reg);
	fill(lite);
	struct moat_registry_sums *a = malloc(sizeof(*a));
	struct moat_registry_sums *b = malloc(sizeof(*b));
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(moat_registry_sums(reg, a, &err), 0);
	assert_int_equal(moat_registry_sums(lite, b, &err), 0);
	assert_true(a->count >= 25);
	assert_int_equal(moat_registry_sums_diff(a, b), -1);
	int ev = find_table(a, "security_events");
	assert_true(a->tables[ev].has_seq);
	assert_int_equal(a->tables[ev].seq, 3);
	assert_int_equal(a->tables[ev].rows, 2);
	assert_int_equal(a->tables[find_table(a, "telemetry")].rows, 3);
	assert_false(a->tables[find_table(a, "identities")].has_seq);

	/* one value of one row: the same count, another checksum */
	exec_ok(reg, "UPDATE identities SET status = 'revoked' WHERE id = 'd2'");
	assert_int_equal(moat_registry_sums(reg, a, &err), 0);
	only_differs(a, b, "identities");
	int id = find_table(a, "identities");
	assert_int_equal(a->tables[id].rows, b->tables[id].rows);
	assert_memory_not_equal(a->tables[id].sha256, b->tables[id].sha256, 32);
	exec_ok(reg, "UPDATE identities SET status = 'active' WHERE id = 'd2'");
	/* a real number's last bit */
	exec_ok(reg, "UPDATE telemetry_agg SET min = 0.30000000000000009 WHERE metric = 'u'");
	assert_int_equal(moat_registry_sums(reg, a, &err), 0);
	only_differs(a, b, "telemetry_agg");
	exec_ok(reg, "UPDATE telemetry_agg SET min = 0.30000000000000004 WHERE metric = 'u'");
	/* rows that tie on the key's first column swapped by content: order is by bytes */
	exec_ok(reg, "UPDATE device_tags SET tag = 'c' WHERE tag = 'B'");
	assert_int_equal(moat_registry_sums(reg, a, &err), 0);
	only_differs(a, b, "device_tags");
	exec_ok(reg, "UPDATE device_tags SET tag = 'B' WHERE tag = 'c'");
	/* an id handed out and its row deleted: the rows are the same, the sequence is not */
	exec_ok(reg, "INSERT INTO security_events(at_ms, kind, severity, source, identity, "
		     "address, rule, evidence, run_id) VALUES (1, 'x', 2, 'b', 'd1', '', '', '', "
		     "'r')");
	exec_ok(reg, "DELETE FROM security_events WHERE kind = 'x'");
	assert_int_equal(moat_registry_sums(reg, a, &err), 0);
	only_differs(a, b, "security_events");
	assert_int_equal(a->tables[ev].seq, 4);
	assert_int_equal(a->tables[ev].rows, b->tables[ev].rows);
	free(a);
	free(b);
	moat_registry_close(lite);
}

static int pg_tables(void)
{
	struct rdb c;
	struct rdb_stmt *st = NULL;
	assert_int_equal(rdb_connect_pg(&c, pg_url), 0);
	assert_int_equal(rdb_prepare(&c,
				     "SELECT count(*) FROM pg_tables WHERE schemaname = "
				     "current_schema()",
				     &st),
			 0);
	assert_int_equal(rdb_step(st), RDB_ROW);
	int n = (int)rdb_column_int64(st, 0);
	rdb_finalize(st);
	rdb_disconnect(&c);
	return n;
}

/* A SQLite registry copied into PostgreSQL (only with MOAT_TEST_PG_URL): proven equal, the
 * copy opens as a registry whose sequences go on from the source's; refused into a database
 * holding a registry or another table, and for a value SQLite holds in a column of another
 * type, each leaving the target as it was. */
static void test_copy(void **state)
{
	(void)state;
	if (!pg_url) {
		skip();
	}
	struct moat_err err;
	struct moat_registry *src = NULL;
	struct moat_registry *dst = NULL;
	char path[700];
	snprintf(path, sizeof(path), "%s/copy.db", tmp_root);
	assert_int_equal(moat_registry_open(path, true, &src, &err), 0);
	fill(src);
	assert_int_equal(pg_empty(), 0);
	struct moat_registry_copy_report *rep = malloc(sizeof(*rep));
	struct moat_registry_sums *s = malloc(sizeof(*s));
	assert_non_null(rep);
	assert_non_null(s);
	/* the target's own migrations made meta's crl_number 0: the copy has the source's */
	exec_ok(src, "UPDATE meta SET value = 7 WHERE key = 'crl_number'");
	int rc = moat_registry_copy(src, pg_url, rep, &err);
	if (rc != 0) {
		fail_msg("%s", err.msg);
	}
	assert_int_equal(moat_registry_sums_diff(&rep->src, &rep->dst), -1);
	assert_int_equal(rep->src.tables[find_table(&rep->src, "security_events")].seq, 3);
	assert_int_equal(moat_registry_open(pg_url, false, &dst, &err), 0);
	assert_int_equal(moat_registry_sums(dst, s, &err), 0);
	assert_int_equal(moat_registry_sums_diff(&rep->src, s), -1);
	int64_t crl = 0;
	assert_int_equal(moat_registry_meta_get_int(dst, "crl_number", &crl, &err), 0);
	assert_int_equal(crl, 7);
	/* the next event's seq is 4: 3 was handed out (and deleted) before the copy */
	struct rdb_stmt *st = NULL;
	assert_int_equal(rdb_prepare(reg_db(dst),
				     "INSERT INTO security_events(at_ms, kind, severity, source, "
				     "identity, address, rule, evidence, run_id) VALUES (1, 'y', 2, "
				     "'b', 'd1', '', '', '', 'r') RETURNING seq",
				     &st),
			 0);
	assert_int_equal(rdb_step(st), RDB_ROW);
	assert_int_equal(rdb_column_int64(st, 0), 4);
	rdb_finalize(st);
	moat_registry_close(dst);

	/* a registry there already */
	assert_int_equal(moat_registry_copy(src, pg_url, rep, &err), MOAT_EEXIST);
	assert_non_null(strstr(err.msg, "already holds a moat registry"));
	/* another table there */
	assert_int_equal(pg_empty(), 0);
	struct rdb c;
	assert_int_equal(rdb_connect_pg(&c, pg_url), 0);
	assert_int_equal(rdb_exec(&c, "CREATE TABLE unrelated (x int)"), 0);
	rdb_disconnect(&c);
	assert_int_equal(moat_registry_copy(src, pg_url, rep, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "other tables"));
	assert_int_equal(pg_tables(), 1);
	/* SQLite keeps text in an INTEGER column: refused, the target left empty */
	assert_int_equal(pg_empty(), 0);
	exec_ok(src, "UPDATE telemetry SET at_ms = 'soon' WHERE device = 'd2'");
	assert_int_equal(moat_registry_copy(src, pg_url, rep, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "table telemetry: 1 rows hold a value of another type"));
	assert_int_equal(pg_tables(), 0);
	/* the source must be a SQLite file, the target a URL */
	assert_int_equal(moat_registry_copy(src, path, rep, &err), MOAT_EINVAL);
	free(rep);
	free(s);
	moat_registry_close(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_translate),
		cmocka_unit_test(test_url_check),
		cmocka_unit_test(test_pg_unreachable),
		cmocka_unit_test_setup_teardown(test_backend, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_identities, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_certificates, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_revoke, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_foreach, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_meta, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_transactions, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_points, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_close_uncommitted, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_isolation, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_open_modes, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_groups, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_tags, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_jobs, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_enroll, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_delete, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_savepoints, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_stats, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_releases, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_update_events, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_update_event_bad_stage, reg_setup,
						reg_teardown),
		cmocka_unit_test_setup_teardown(test_update_event_atomic, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_release_tables_missing, reg_setup,
						reg_teardown),
		cmocka_unit_test_setup_teardown(test_device_state, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_diagnostics, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_security_events, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_telemetry_compact, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_telemetry_compact_tiny, reg_setup,
						reg_teardown),
		cmocka_unit_test_setup_teardown(test_event_retention, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_rollouts, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_dashboard, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_backup_backend, reg_setup, reg_teardown),
		/* before test_sums, whose registry test_registry_pg.sh then finds in the database
		 */
		cmocka_unit_test(test_copy),
		cmocka_unit_test_setup_teardown(test_sums, reg_setup, reg_teardown),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
