/* test_registry.c: the SQLite registry (include/moat/registry.h). Each test gets a fresh
 * registry.db in a temporary directory. Pinned: create/open rules of a file, refusal of
 * foreign SQLite files without touching them, read-only opens of a file, the online backup,
 * and the release and update-event tables: every refusal of each, their orders, pruning, and
 * that a write of several rows that fails part-way leaves none of them. Identities,
 * certificates, meta, transactions, the monitoring and rollout tables are
 * test_registry_db.c's (they run on PostgreSQL too). */
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
#include "testutil.h"
#include "testutil_registry.h"

static char tmp_root[TU_TMPDIR_MAX];
static char db_path[512];

static int setup(void **state)
{
	(void)state;
	return tu_tmpdir_make(tmp_root, sizeof(tmp_root), "registry");
}

static int teardown(void **state)
{
	(void)state;
	return tu_tmpdir_remove(tmp_root);
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

static void add_cert(struct moat_registry *reg, const char *serial, const char *id, int64_t nb)
{
	struct moat_err err;
	if (moat_registry_cert_insert(reg, serial, id, nb, nb + 3600, "PEM", &err) != 0) {
		fail_msg("%s: %s", serial, err.msg);
	}
}

/* Runs sql on the file at path past the registry's API: what a newer moat, or a damaged
 * file, would leave there. */
static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void test_create_open(void **state)
{
	(void)state;
	struct moat_err err;
	char path[512];
	tu_path(path, sizeof(path), tmp_root, "fresh.db");
	struct moat_registry *reg = NULL;
	/* opening what does not exist is not a create */
	assert_int_equal(moat_registry_open(path, false, &reg, &err), MOAT_ENOENT);
	assert_null(reg);
	assert_false(moat_fs_exists(path));
	mode_t old = umask(0);
	assert_int_equal(moat_registry_open(path, true, &reg, &err), 0);
	umask(old);
	assert_non_null(reg);
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
	tu_path(path, sizeof(path), tmp_root, "foreign.db");
	raw_exec(path, "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
	size_t before_len = 0;
	char *before = tu_read_file(path, 1 << 24, &before_len);

	struct moat_registry *reg = NULL;
	assert_int_equal(moat_registry_open(path, false, &reg, &err), MOAT_EINVAL);
	assert_null(reg);
	assert_non_null(strstr(err.msg, "foreign.db: not a moat registry"));
	size_t after_len = 0;
	char *after = tu_read_file(path, 1 << 24, &after_len);
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
		tu_write_text(path, others[i]);
		reg = NULL;
		moat_err_clear(&err);
		int rc = moat_registry_open(path, false, &reg, &err);
		assert_true(rc == MOAT_EINVAL || rc == MOAT_EDB);
		assert_null(reg);
		assert_non_null(strstr(err.msg, "not a moat registry"));
		char *now = tu_read_file(path, 1 << 24, &after_len);
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
	tu_path(path, sizeof(path), tmp_root, "future.db");
	struct moat_registry *reg = NULL;
	assert_int_equal(moat_registry_open(path, true, &reg, &err), 0);
	moat_registry_close(reg);
	raw_exec(path, "PRAGMA user_version = 999");
	reg = NULL;
	assert_int_equal(moat_registry_open(path, false, &reg, &err), MOAT_ESTATE);
	assert_null(reg);
	assert_non_null(strstr(err.msg, "newer than this moat"));
}

/* Read-only: what a writable open wrote is read back, no -wal or -shm file is created,
 * every write fails, and a schema it cannot migrate (older or newer) or a foreign file is
 * refused. A path with URI characters in it opens too. */
static void test_open_readonly(void **state)
{
	(void)state;
	struct moat_err err;
	char path[512];
	char side[520];
	tu_path(path, sizeof(path), tmp_root, "ro ?#%.db");
	struct moat_registry *reg = NULL;
	assert_int_equal(moat_registry_open_readonly(path, &reg, &err), MOAT_ENOENT);
	assert_int_equal(moat_registry_open(path, true, &reg, &err), 0);
	add_identity(reg, "dev-ro", MOAT_ROLE_DEVICE);
	moat_registry_close(reg);
	reg = NULL;
	assert_int_equal(moat_registry_open_readonly(path, &reg, &err), 0);
	bool exists = false;
	assert_int_equal(moat_registry_identity_exists(reg, "dev-ro", &exists, &err), 0);
	assert_true(exists);
	assert_int_not_equal(moat_registry_identity_insert(reg, "dev-2", MOAT_ROLE_DEVICE, NULL, 1,
							   &err),
			     0);
	snprintf(side, sizeof(side), "%s-shm", path);
	assert_false(moat_fs_exists(side));
	snprintf(side, sizeof(side), "%s-wal", path);
	assert_false(moat_fs_exists(side));
	moat_registry_close(reg);

	raw_exec(path, "PRAGMA user_version = 1");
	reg = NULL;
	assert_int_equal(moat_registry_open_readonly(path, &reg, &err), MOAT_ESTATE);
	assert_non_null(strstr(err.msg, "read-only"));
	raw_exec(path, "PRAGMA user_version = 999");
	assert_int_equal(moat_registry_open_readonly(path, &reg, &err), MOAT_ESTATE);
	assert_non_null(strstr(err.msg, "upgrade moat"));
	raw_exec(path, "PRAGMA application_id = 7");
	assert_int_equal(moat_registry_open_readonly(path, &reg, &err), MOAT_EINVAL);
	assert_null(reg);
}

struct collected {
	struct moat_cert_row rows[16];
	int count;
};

static int collect_cert(const struct moat_cert_row *row, void *ctx)
{
	struct collected *c = ctx;
	c->rows[c->count] = *row;
	c->count++;
	return 0;
}

/* ---- releases ---- */

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

static void expect_release_err(struct moat_registry *reg, const struct moat_release *r,
			       char *const *devices, size_t n, int code, const char *text)
{
	struct moat_err err;
	moat_err_clear(&err);
	assert_int_equal(moat_registry_release_insert(reg, r, devices, n, &err), code);
	assert_non_null(strstr(err.msg, text));
	/* nothing of a refused release remains, its device list included */
	struct moat_release got;
	if (code != MOAT_EEXIST) {
		assert_int_equal(moat_registry_release_get(reg, r->sha256_hex, &got, &err),
				 MOAT_ENOENT);
	}
}

static void test_release_insert_get(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_identity(reg, "dev-1", MOAT_ROLE_DEVICE);
	add_identity(reg, "dev-2", MOAT_ROLE_DEVICE);
	struct moat_release r = release("sensor", "1.2.3", 'a', 40, 30);
	r.size = (uint64_t)INT64_MAX;
	assert_int_equal(moat_registry_release_insert(reg, &r, NULL, 0, &err), 0);
	struct moat_release got;
	assert_int_equal(moat_registry_release_get(reg, r.sha256_hex, &got, &err), 0);
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

	char *both[] = {"dev-1", "dev-2"};
	r = release("sensor", "1.3.0", 'b', -1, 31);
	assert_int_equal(moat_registry_release_insert(reg, &r, both, 2, &err), 0);
	assert_int_equal(moat_registry_release_get(reg, r.sha256_hex, &got, &err), 0);
	assert_int_equal(got.rollout_percent, -1);
	assert_int_equal(got.device_count, 2);

	char missing[MOAT_SHA256_HEX_LEN + 1];
	memset(missing, 'f', MOAT_SHA256_HEX_LEN);
	missing[MOAT_SHA256_HEX_LEN] = '\0';
	assert_int_equal(moat_registry_release_get(reg, missing, &got, &err), MOAT_ENOENT);
	assert_non_null(strstr(err.msg, "no release with sha256 ffff"));
	assert_int_equal(got.version[0], '\0'); /* zeroed, not stale */
}

/* Every refusal of moat_registry_release_insert, and that none leaves a row behind. */
static void test_release_refusals(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_identity(reg, "dev-1", MOAT_ROLE_DEVICE);
	struct moat_release r = release("sensor", "1.0.0", 'a', 100, 1);
	assert_int_equal(moat_registry_release_insert(reg, &r, NULL, 0, &err), 0);

	char *one[] = {"dev-1"};
	static const char bad_args[] = "release: invalid rollout or size";
	r = release("sensor", "2.0.0", 'b', -2, 2);
	expect_release_err(reg, &r, NULL, 0, MOAT_EINVAL, bad_args);
	r.rollout_percent = MOAT_ROLLOUT_PERCENT_MAX + 1;
	expect_release_err(reg, &r, NULL, 0, MOAT_EINVAL, bad_args);
	r.rollout_percent = -1; /* a list rollout without a list */
	expect_release_err(reg, &r, NULL, 0, MOAT_EINVAL, bad_args);
	r.rollout_percent = 50; /* a list with a percentage */
	expect_release_err(reg, &r, one, 1, MOAT_EINVAL, bad_args);
	r.rollout_percent = -1; /* too long a list (the list is not read) */
	expect_release_err(reg, &r, one, MOAT_ROLLOUT_DEVICES_MAX + 1, MOAT_EINVAL, bad_args);
	r.rollout_percent = 100;
	r.size = (uint64_t)INT64_MAX + 1;
	expect_release_err(reg, &r, NULL, 0, MOAT_EINVAL, bad_args);

	/* the same image, the same (type, version) */
	r = release("camera", "9.0.0", 'a', 100, 3);
	expect_release_err(reg, &r, NULL, 0, MOAT_EEXIST,
			   "release camera 9.0.0 (sha256 aaaaaaaaaaaa...) already published");
	r = release("sensor", "1.0.0", 'c', 100, 3);
	expect_release_err(reg, &r, NULL, 0, MOAT_EEXIST, "release sensor 1.0.0");

	/* a device listed twice, a name that is no identity: the whole release is refused */
	char *twice[] = {"dev-1", "dev-1"};
	r = release("sensor", "3.0.0", 'd', -1, 4);
	expect_release_err(reg, &r, twice, 2, MOAT_EINVAL,
			   "--devices: dev-1 listed twice or not registered");
	char *ghost[] = {"dev-1", "ghost"};
	expect_release_err(reg, &r, ghost, 2, MOAT_EINVAL,
			   "--devices: ghost listed twice or not registered");
	bool listed = true;
	assert_int_equal(moat_registry_release_lists(reg, r.sha256_hex, "dev-1", &listed, &err), 0);
	assert_false(listed);
	/* and it can be published once corrected */
	assert_int_equal(moat_registry_release_insert(reg, &r, one, 1, &err), 0);

	/* inside a transaction of the caller's: refused, the caller's transaction intact */
	assert_int_equal(moat_registry_begin(reg, &err), 0);
	r = release("sensor", "4.0.0", 'e', 100, 5);
	assert_int_equal(moat_registry_release_insert(reg, &r, NULL, 0, &err), MOAT_EDB);
	moat_registry_rollback(reg);
	struct moat_release got;
	assert_int_equal(moat_registry_release_get(reg, r.sha256_hex, &got, &err), MOAT_ENOENT);
}

struct release_walk {
	char seen[8][MOAT_DEVICE_TYPE_MAX_LEN + MOAT_FW_VERSION_MAX_LEN + 2];
	size_t n;
	size_t stop_after; /* 0: never */
};

static int release_walk_cb(const struct moat_release *r, void *ctx)
{
	struct release_walk *w = ctx;
	assert_true(w->n < 8);
	snprintf(w->seen[w->n], sizeof(w->seen[w->n]), "%s/%s", r->device_type, r->version);
	w->n++;
	return (w->stop_after && w->n == w->stop_after) ? 42 : 0;
}

static void test_release_foreach_lists(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_identity(reg, "dev-1", MOAT_ROLE_DEVICE);
	add_identity(reg, "dev-2", MOAT_ROLE_DEVICE);
	struct moat_release rs[] = {release("sensor", "2.0.0", 'a', 100, 50),
				    release("camera", "1.0.0", 'b', 0, 60),
				    release("sensor", "1.0.0", 'c', -1, 40),
				    release("sensor", "10.0.0", 'd', 5, 70)};
	char *one[] = {"dev-1"};
	for (size_t i = 0; i < 4; i++) {
		bool list = rs[i].rollout_percent == -1;
		assert_int_equal(moat_registry_release_insert(reg, &rs[i], list ? one : NULL,
							      list ? 1 : 0, &err),
				 0);
	}
	/* by type, then publication */
	struct release_walk w = {0};
	assert_int_equal(moat_registry_release_foreach(reg, NULL, release_walk_cb, &w, &err), 0);
	assert_int_equal(w.n, 4);
	assert_string_equal(w.seen[0], "camera/1.0.0");
	assert_string_equal(w.seen[1], "sensor/1.0.0");
	assert_string_equal(w.seen[2], "sensor/2.0.0");
	assert_string_equal(w.seen[3], "sensor/10.0.0");
	memset(&w, 0, sizeof(w));
	assert_int_equal(moat_registry_release_foreach(reg, "camera", release_walk_cb, &w, &err),
			 0);
	assert_int_equal(w.n, 1);
	memset(&w, 0, sizeof(w));
	assert_int_equal(moat_registry_release_foreach(reg, "drone", release_walk_cb, &w, &err), 0);
	assert_int_equal(w.n, 0);
	/* a callback's non-zero return stops the walk and is returned */
	memset(&w, 0, sizeof(w));
	w.stop_after = 2;
	assert_int_equal(moat_registry_release_foreach(reg, NULL, release_walk_cb, &w, &err), 42);
	assert_int_equal(w.n, 2);

	bool listed = false;
	assert_int_equal(moat_registry_release_lists(reg, rs[2].sha256_hex, "dev-1", &listed, &err),
			 0);
	assert_true(listed);
	assert_int_equal(moat_registry_release_lists(reg, rs[2].sha256_hex, "dev-2", &listed, &err),
			 0);
	assert_false(listed);
	/* a percentage rollout has no list */
	assert_int_equal(moat_registry_release_lists(reg, rs[0].sha256_hex, "dev-1", &listed, &err),
			 0);
	assert_false(listed);
}

/* ---- update events ---- */

static void test_update_stage_names(void **state)
{
	(void)state;
	struct moat_err err;
	for (int i = 0; i < MOAT_UPDATE_STAGE_COUNT; i++) {
		enum moat_update_stage st = MOAT_UPD_REFUSED;
		const char *name = moat_update_stage_name((enum moat_update_stage)i);
		assert_string_not_equal(name, "unknown");
		assert_int_equal(moat_update_stage_parse(name, &st, &err), 0);
		assert_int_equal(st, i);
	}
	assert_string_equal(moat_update_stage_name(MOAT_UPD_CONFIRMED), "confirmed");
	assert_string_equal(moat_update_stage_name((enum moat_update_stage)MOAT_UPDATE_STAGE_COUNT),
			    "unknown");
	enum moat_update_stage st = MOAT_UPD_CHECKED;
	static const char *const bad[] = {"", "Checked", "checked ", "unknown", "installing"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(moat_update_stage_parse(bad[i], &st, &err), MOAT_EINVAL);
		assert_non_null(strstr(err.msg, "update event: unknown stage"));
	}
	assert_int_equal(moat_update_stage_parse(NULL, &st, &err), MOAT_EINVAL);
	assert_int_equal(st, MOAT_UPD_CHECKED);
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
};

static int event_walk_cb(const struct moat_update_event *ev, void *ctx)
{
	struct event_walk *w = ctx;
	if (w->n == 0) {
		w->first = *ev;
	}
	w->n++;
	return (w->stop_after && w->n == w->stop_after) ? 7 : 0;
}

static void record(struct moat_registry *reg, const struct moat_update_event *ev)
{
	struct moat_err err;
	if (moat_registry_update_event_record(reg, ev, &err) != 0) {
		fail_msg("%s: %s", ev->device, err.msg);
	}
}

static void test_update_events(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_identity(reg, "dev-1", MOAT_ROLE_DEVICE);
	add_identity(reg, "dev-2", MOAT_ROLE_DEVICE);
	char running[MOAT_FW_VERSION_MAX_LEN + 1] = "stale";
	assert_int_equal(moat_registry_running_version(reg, "dev-1", running, &err), 0);
	assert_string_equal(running, "");

	struct moat_update_event ev = event("dev-1", MOAT_UPD_CHECKED, "1.0.0", 100);
	record(reg, &ev);
	ev = event("dev-1", MOAT_UPD_REFUSED, "", 101);
	record(reg, &ev);
	/* an event without "running" leaves the running version as it was */
	assert_int_equal(moat_registry_running_version(reg, "dev-1", running, &err), 0);
	assert_string_equal(running, "1.0.0");
	assert_int_equal(moat_registry_running_version(reg, "dev-2", running, &err), 0);
	assert_string_equal(running, "");

	/* newest first, every field back */
	struct event_walk w = {0};
	assert_int_equal(moat_registry_update_event_foreach(reg, "dev-1", 10, event_walk_cb, &w,
							    &err),
			 0);
	assert_int_equal(w.n, 2);
	assert_string_equal(w.first.device, "dev-1");
	assert_int_equal(w.first.stage, MOAT_UPD_REFUSED);
	assert_string_equal(w.first.version, "2.0.0");
	assert_string_equal(w.first.running, "");
	assert_string_equal(w.first.reason, "rollback");
	assert_int_equal(w.first.at, 101);
	memset(&w, 0, sizeof(w));
	assert_int_equal(moat_registry_update_event_foreach(reg, "dev-1", 1, event_walk_cb, &w,
							    &err),
			 0);
	assert_int_equal(w.n, 1);
	memset(&w, 0, sizeof(w));
	w.stop_after = 1;
	assert_int_equal(moat_registry_update_event_foreach(reg, "dev-1", 10, event_walk_cb, &w,
							    &err),
			 7);
	memset(&w, 0, sizeof(w));
	assert_int_equal(moat_registry_update_event_foreach(reg, "dev-2", 10, event_walk_cb, &w,
							    &err),
			 0);
	assert_int_equal(w.n, 0);

	/* an unknown device: refused, nothing recorded */
	ev = event("ghost", MOAT_UPD_CONFIRMED, "2.0.0", 102);
	assert_int_equal(moat_registry_update_event_record(reg, &ev, &err), MOAT_ENOENT);
	assert_non_null(strstr(err.msg, "update event: unknown device ghost"));
	assert_int_equal(moat_registry_running_version(reg, "ghost", running, &err), 0);
	assert_string_equal(running, "");

	/* pruned to the newest MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE of each device */
	for (int i = 0; i < MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE + 3; i++) {
		ev = event("dev-2", MOAT_UPD_DOWNLOADING, "", 200 + i);
		record(reg, &ev);
	}
	memset(&w, 0, sizeof(w));
	assert_int_equal(moat_registry_update_event_foreach(reg, "dev-2", 1000, event_walk_cb, &w,
							    &err),
			 0);
	assert_int_equal(w.n, MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE);
	assert_int_equal(w.first.at, 200 + MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE + 2);
	memset(&w, 0, sizeof(w));
	assert_int_equal(moat_registry_update_event_foreach(reg, "dev-1", 1000, event_walk_cb, &w,
							    &err),
			 0);
	assert_int_equal(w.n, 2);
}

/* A stage the registry does not know (a damaged or hand-edited file) is an error, not a
 * silently wrong stage. */
static void test_update_event_bad_stage(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_identity(reg, "dev-1", MOAT_ROLE_DEVICE);
	raw_exec(db_path,
		 "PRAGMA ignore_check_constraints = ON; "
		 "INSERT INTO update_events(device, at, stage) VALUES ('dev-1', 1, 'exploded')");
	struct event_walk w = {0};
	assert_int_equal(moat_registry_update_event_foreach(reg, "dev-1", 10, event_walk_cb, &w,
							    &err),
			 MOAT_EDB);
	assert_string_equal(err.msg, "registry: update_events: bad stage");
	assert_int_equal(w.n, 0);
}

/* Recording is one transaction: when pruning or the running version fails, the event is
 * not kept either. */
static void test_update_event_atomic(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_identity(reg, "dev-1", MOAT_ROLE_DEVICE);
	raw_exec(db_path, "CREATE TRIGGER no_firmware BEFORE INSERT ON device_firmware "
			  "BEGIN SELECT RAISE(ABORT, 'firmware refused'); END");
	struct moat_update_event ev = event("dev-1", MOAT_UPD_CONFIRMED, "2.0.0", 1);
	assert_int_equal(moat_registry_update_event_record(reg, &ev, &err), MOAT_EDB);
	assert_non_null(strstr(err.msg, "registry: record running version: firmware refused"));
	struct event_walk w = {0};
	assert_int_equal(moat_registry_update_event_foreach(reg, "dev-1", 1000, event_walk_cb, &w,
							    &err),
			 0);
	assert_int_equal(w.n, 0);

	raw_exec(db_path, "CREATE TRIGGER no_prune BEFORE DELETE ON update_events "
			  "BEGIN SELECT RAISE(ABORT, 'prune refused'); END");
	for (int i = 0; i < MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE; i++) {
		ev = event("dev-1", MOAT_UPD_DOWNLOADING, "", 10 + i); /* checks would fold */
		record(reg, &ev);
	}
	ev = event("dev-1", MOAT_UPD_VERIFIED, "", 999);
	assert_int_equal(moat_registry_update_event_record(reg, &ev, &err), MOAT_EDB);
	assert_non_null(strstr(err.msg, "registry: prune update events: prune refused"));
	memset(&w, 0, sizeof(w));
	assert_int_equal(moat_registry_update_event_foreach(reg, "dev-1", 1000, event_walk_cb, &w,
							    &err),
			 0);
	assert_int_equal(w.n, MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE);
	assert_int_not_equal(w.first.at, 999);
}

/* A registry whose release and event tables are gone (a damaged file): every call says
 * which operation failed and why, as "registry: <what>: <cause>". */
static void test_release_tables_missing(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_identity(reg, "dev-1", MOAT_ROLE_DEVICE);
	raw_exec(db_path, "DROP TABLE release_devices; DROP TABLE update_events; "
			  "DROP TABLE device_firmware");
	struct moat_release r = release("sensor", "1.0.0", 'a', 100, 1);
	assert_int_equal(moat_registry_release_insert(reg, &r, NULL, 0, &err), MOAT_EDB);
	assert_non_null(strstr(err.msg, "registry: insert release device: no such table"));
	struct moat_release got;
	assert_int_equal(moat_registry_release_get(reg, r.sha256_hex, &got, &err), MOAT_EDB);
	assert_non_null(strstr(err.msg, "registry: release lookup: no such table"));
	struct release_walk rw = {0};
	assert_int_equal(moat_registry_release_foreach(reg, NULL, release_walk_cb, &rw, &err),
			 MOAT_EDB);
	assert_non_null(strstr(err.msg, "registry: list releases: no such table"));
	bool listed = true;
	assert_int_equal(moat_registry_release_lists(reg, r.sha256_hex, "dev-1", &listed, &err),
			 MOAT_EDB);
	assert_non_null(strstr(err.msg, "registry: rollout lookup: no such table"));
	assert_false(listed);

	struct moat_update_event ev = event("dev-1", MOAT_UPD_CHECKED, "1.0.0", 1);
	assert_int_equal(moat_registry_update_event_record(reg, &ev, &err), MOAT_EDB);
	assert_non_null(strstr(err.msg, "registry: record update event: no such table"));
	struct event_walk ew = {0};
	assert_int_equal(moat_registry_update_event_foreach(reg, "dev-1", 10, event_walk_cb, &ew,
							    &err),
			 MOAT_EDB);
	assert_non_null(strstr(err.msg, "registry: list update events: no such table"));
	char running[MOAT_FW_VERSION_MAX_LEN + 1];
	assert_int_equal(moat_registry_running_version(reg, "dev-1", running, &err), MOAT_EDB);
	assert_non_null(strstr(err.msg, "registry: running version: no such table"));

	/* the release row of the failed insert was rolled back with it */
	raw_exec(db_path, "CREATE TABLE release_devices (sha256 TEXT, device TEXT)");
	assert_int_equal(moat_registry_release_get(reg, r.sha256_hex, &got, &err), MOAT_ENOENT);
}

/* A release row whose table rejects it for another reason than a clash (a failed insert
 * of the row itself): "registry: insert release: <cause>". */
static void test_release_insert_fails(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	raw_exec(db_path, "DROP TABLE releases");
	struct moat_release r = release("sensor", "1.0.0", 'a', 100, 1);
	assert_int_equal(moat_registry_release_insert(reg, &r, NULL, 0, &err), MOAT_EDB);
	assert_non_null(strstr(err.msg, "registry: insert release: no such table"));
}

/* Deleting an identity: refused while a certificate is unrevoked or the id is unknown; then
 * its rows (update events and rollout lists included) go, its revoked certificates stay
 * in the revoked walk (the CRL) and keep their serials taken, the deletion is recorded,
 * and the name can be registered again without inheriting anything. */
static void test_identity_delete(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_identity(reg, "dev-1", MOAT_ROLE_DEVICE);
	add_identity(reg, "dev-2", MOAT_ROLE_DEVICE);
	add_cert(reg, "4aaa", "dev-1", 100);
	add_cert(reg, "4bbb", "dev-1", 200);
	add_cert(reg, "4ccc", "dev-2", 100);
	struct moat_update_event ev = event("dev-1", MOAT_UPD_CHECKED, "1.0.0", 100);
	record(reg, &ev);
	struct moat_release r = tu_release("sensor", "2.0.0", 'a', -1);
	char *devices[] = {"dev-1", "dev-2"};
	assert_int_equal(moat_registry_release_insert(reg, &r, devices, 2, &err), 0);

	static const char diag[] = "{\"device_id\":\"dev-1\",\"seq\":1}";
	assert_int_equal(moat_registry_diagnostics_put(reg, "dev-1", 90, diag, sizeof(diag) - 1,
						       &err),
			 0);
	struct moat_deletion del;
	assert_int_equal(moat_registry_deletion_last(reg, "dev-1", &del, &err), MOAT_ENOENT);
	assert_int_equal(moat_registry_identity_delete(reg, "nobody", 300, &err), MOAT_ENOENT);
	assert_int_equal(moat_registry_cert_revoke(reg, "4aaa", 4, 250, &err), 0);
	assert_int_equal(moat_registry_identity_delete(reg, "dev-1", 300, &err), MOAT_ESTATE);
	assert_string_equal(err.msg,
			    "dev-1: certificate 4bbb is not revoked; revoke it before deleting");
	bool exists = false;
	assert_int_equal(moat_registry_identity_exists(reg, "dev-1", &exists, &err), 0);
	assert_true(exists);

	assert_int_equal(moat_registry_cert_revoke(reg, "4bbb", 5, 300, &err), 0);
	assert_int_equal(moat_registry_identity_delete(reg, "dev-1", 301, &err), 0);
	assert_int_equal(moat_registry_identity_exists(reg, "dev-1", &exists, &err), 0);
	assert_false(exists);
	assert_int_equal(moat_registry_identity_delete(reg, "dev-1", 302, &err), MOAT_ENOENT);
	char buf[64];
	size_t len = 0;
	int64_t at = 0;
	assert_int_equal(moat_registry_diagnostics_get(reg, "dev-1", &at, buf, sizeof(buf), &len,
						       &err),
			 MOAT_ENOENT); /* its last diagnostics went with it */
	/* the CRL's walk still lists both; the full walk shows registered identities only */
	struct collected c = {0};
	assert_int_equal(moat_registry_cert_foreach(reg, true, collect_cert, &c, &err), 0);
	assert_int_equal(c.count, 2);
	assert_string_equal(c.rows[0].serial_hex, "4aaa");
	assert_int_equal(c.rows[0].reason, 4);
	assert_string_equal(c.rows[1].serial_hex, "4bbb");
	assert_int_equal(c.rows[1].reason, 5);
	assert_int_equal(c.rows[1].revoked_at, 300);
	memset(&c, 0, sizeof(c));
	assert_int_equal(moat_registry_cert_foreach(reg, false, collect_cert, &c, &err), 0);
	assert_int_equal(c.count, 1);
	assert_string_equal(c.rows[0].serial_hex, "4ccc");
	assert_int_equal(moat_registry_serial_exists(reg, "4bbb", &exists, &err), 0);
	assert_true(exists);
	assert_int_equal(moat_registry_release_lists(reg, r.sha256_hex, "dev-1", &exists, &err), 0);
	assert_false(exists);
	assert_int_equal(moat_registry_release_lists(reg, r.sha256_hex, "dev-2", &exists, &err), 0);
	assert_true(exists);

	assert_int_equal(moat_registry_deletion_last(reg, "dev-1", &del, &err), 0);
	assert_string_equal(del.id, "dev-1");
	assert_int_equal(del.role, MOAT_ROLE_DEVICE);
	assert_string_equal(del.device_type, "sensor");
	assert_int_equal(del.created_at, 1000);
	assert_int_equal(del.deleted_at, 301);
	assert_string_equal(del.last_serial_hex, "4bbb");
	assert_int_equal(del.certificates, 2);
	assert_int_equal(del.times, 1);

	/* the name again: a new identity with nothing of the old one */
	add_identity(reg, "dev-1", MOAT_ROLE_DEVICE);
	struct moat_identity ident;
	assert_int_equal(moat_registry_identity_get(reg, "dev-1", &ident, &err), 0);
	assert_string_equal(ident.serial_hex, "");
	struct event_walk w = {0};
	assert_int_equal(moat_registry_update_event_foreach(reg, "dev-1", 10, event_walk_cb, &w,
							    &err),
			 0);
	assert_int_equal(w.n, 0);
	add_cert(reg, "4ddd", "dev-1", 400);
	assert_int_equal(moat_registry_cert_revoke(reg, "4ddd", 1, 500, &err), 0);
	assert_int_equal(moat_registry_identity_get(reg, "dev-1", &ident, &err), 0);
	assert_true(ident.cert_revoked);
	assert_int_equal(ident.revoked_reason, 1);
	/* deleted inside the caller's transaction, then rolled back: nothing happened */
	assert_int_equal(moat_registry_begin(reg, &err), 0);
	assert_int_equal(moat_registry_identity_delete(reg, "dev-1", 600, &err), 0);
	moat_registry_rollback(reg);
	assert_int_equal(moat_registry_identity_exists(reg, "dev-1", &exists, &err), 0);
	assert_true(exists);
	assert_int_equal(moat_registry_deletion_last(reg, "dev-1", &del, &err), 0);
	assert_int_equal(del.times, 1);
	assert_int_equal(moat_registry_identity_delete(reg, "dev-1", 700, &err), 0);
	assert_int_equal(moat_registry_deletion_last(reg, "dev-1", &del, &err), 0);
	assert_int_equal(del.times, 2);
	assert_int_equal(del.deleted_at, 700);
	assert_string_equal(del.last_serial_hex, "4ddd");
}

/* moat_registry_backup: a copy as of one moment while another connection holds an open
 * write transaction (what it has not committed is not in the copy), a standalone file
 * (0600, no -wal) that opens as a registry; an existing destination is refused. */
static void test_online_backup(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_identity(reg, "kept", MOAT_ROLE_DEVICE);
	struct moat_registry *writer = NULL;
	assert_int_equal(moat_registry_open(db_path, false, &writer, &err), 0);
	assert_int_equal(moat_registry_begin(writer, &err), 0);
	add_identity(writer, "uncommitted", MOAT_ROLE_DEVICE);
	char copy[600];
	snprintf(copy, sizeof(copy), "%s.copy", db_path);
	assert_int_equal(moat_registry_backup(reg, copy, &err), 0);
	moat_registry_rollback(writer);
	moat_registry_close(writer);
	struct stat st;
	assert_int_equal(stat(copy, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char wal[620];
	snprintf(wal, sizeof(wal), "%s-wal", copy);
	assert_false(moat_fs_exists(wal));
	struct moat_registry *c = NULL;
	assert_int_equal(moat_registry_open(copy, false, &c, &err), 0);
	bool exists = false;
	assert_int_equal(moat_registry_identity_exists(c, "kept", &exists, &err), 0);
	assert_true(exists);
	assert_int_equal(moat_registry_identity_exists(c, "uncommitted", &exists, &err), 0);
	assert_false(exists);
	moat_registry_close(c);
	assert_int_equal(moat_registry_backup(reg, copy, &err), MOAT_EIO);
	assert_true(moat_fs_exists(copy)); /* an existing file is never replaced or removed */
}

static int rows_seen;

static int rows_cb(const struct moat_device_row *row, void *ctx)
{
	(void)ctx;
	rows_seen++;
	if (strcmp(row->id, "s1") == 0) {
		assert_string_equal(row->type, "sensor");
		assert_string_equal(row->release, "1.1.0");
		assert_int_equal(row->cert_not_before, 500);
		assert_int_equal(row->tag_count, 2);
		assert_string_equal(row->tags[0], "plant1");
		assert_string_equal(row->tags[1], "zone:north");
	}
	return 0;
}

/* Tags, groups and what a filter is evaluated against (groups.c). */
static void test_tags_groups(void **state)
{
	struct moat_registry *reg = *state;
	struct moat_err err;
	add_identity(reg, "s1", MOAT_ROLE_DEVICE);
	add_identity(reg, "s2", MOAT_ROLE_DEVICE);
	add_identity(reg, "svc", MOAT_ROLE_SERVICE);
	add_cert(reg, "0a", "s1", 500);
	assert_int_equal(moat_registry_tag_add(reg, "s1", "plant1", &err), 0);
	assert_int_equal(moat_registry_tag_add(reg, "s1", "plant1", &err), 0); /* again: same */
	assert_int_equal(moat_registry_tag_add(reg, "s1", "zone:north", &err), 0);
	assert_int_equal(moat_registry_tag_add(reg, "nosuch", "x", &err), MOAT_ENOENT);
	assert_int_equal(moat_registry_tag_remove(reg, "s2", "plant1", &err), MOAT_ENOENT);
	for (int i = 0; i < MOAT_TAGS_PER_DEVICE_MAX - 2; i++) {
		char t[16];
		snprintf(t, sizeof(t), "t%d", i);
		assert_int_equal(moat_registry_tag_add(reg, "s2", t, &err), 0);
	}
	assert_int_equal(moat_registry_tag_add(reg, "s2", "x1", &err), 0);
	assert_int_equal(moat_registry_tag_add(reg, "s2", "x2", &err), 0);
	assert_int_equal(moat_registry_tag_add(reg, "s2", "x3", &err), MOAT_EINVAL);
	assert_int_equal(moat_registry_tag_add(reg, "s2", "x2", &err), 0); /* has it */
	assert_int_equal(moat_registry_tag_remove(reg, "s2", "x2", &err), 0);

	struct moat_group g = {.name = "plant1", .where = "tag=plant1", .created_at = 7};
	assert_int_equal(moat_registry_group_insert(reg, &g, &err), 0);
	assert_int_equal(moat_registry_group_insert(reg, &g, &err), MOAT_EEXIST);
	struct moat_group got;
	assert_int_equal(moat_registry_group_get(reg, "plant1", &got, &err), 0);
	assert_string_equal(got.where, "tag=plant1");
	assert_int_equal(moat_registry_group_get(reg, "nosuch", &got, &err), MOAT_ENOENT);

	struct moat_update_event ev = {.device = "s1",
				       .at = 9,
				       .stage = MOAT_UPD_CONFIRMED,
				       .version = "1.1.0",
				       .running = "1.1.0"};
	assert_int_equal(moat_registry_update_event_record(reg, &ev, &err), 0);
	assert_int_equal(moat_registry_device_rows(reg, "s1", rows_cb, NULL, &err), 0);
	assert_int_equal(rows_seen, 1);
	/* only active devices when listing all; never the service */
	assert_int_equal(moat_registry_identity_set_status(reg, "s2", MOAT_ID_DISABLED, &err), 0);
	rows_seen = 0;
	assert_int_equal(moat_registry_device_rows(reg, NULL, rows_cb, NULL, &err), 0);
	assert_int_equal(rows_seen, 1);
	assert_int_equal(moat_registry_group_remove(reg, "plant1", &err), 0);
	assert_int_equal(moat_registry_group_remove(reg, "plant1", &err), MOAT_ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_open),
		cmocka_unit_test(test_foreign_sqlite_refused),
		cmocka_unit_test(test_newer_schema_refused),
		cmocka_unit_test(test_open_readonly),
		cmocka_unit_test_setup_teardown(test_release_insert_get, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_release_refusals, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_release_foreach_lists, reg_setup,
						reg_teardown),
		cmocka_unit_test_setup_teardown(test_release_tables_missing, reg_setup,
						reg_teardown),
		cmocka_unit_test_setup_teardown(test_release_insert_fails, reg_setup, reg_teardown),
		cmocka_unit_test(test_update_stage_names),
		cmocka_unit_test_setup_teardown(test_update_events, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_update_event_bad_stage, reg_setup,
						reg_teardown),
		cmocka_unit_test_setup_teardown(test_update_event_atomic, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_identity_delete, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_online_backup, reg_setup, reg_teardown),
		cmocka_unit_test_setup_teardown(test_tags_groups, reg_setup, reg_teardown),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
