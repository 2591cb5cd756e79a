/* test_util.c: pins the contracts of src/util (err.h, fsutil.h, timeutil.h, config.h, log.h,
 * buf.h, spawn.h, text.h, opts.h), with a test for every rejection path: numbers and durations that
 * overflow or carry garbage, config files with duplicate keys, keys outside a section, overlong
 * lines, NUL bytes and bad typed values (messages must name file and line), and atomic writes that
 * fail half-way (no temporary file may survive, the target must stay untouched); and the
 * child-process helper (spawn.h): exit status, death by a signal, bounded capture, stdin,
 * exec failure, descriptor hygiene and child functions. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>

#include "moat/buf.h"
#include "moat/config.h"
#include "moat/err.h"
#include "moat/fsutil.h"
#include "moat/log.h"
#include "moat/opts.h"
#include "moat/spawn.h"
#include "moat/text.h"
#include "moat/timeutil.h"
#include "testutil.h"

static char tmp_root[TU_TMPDIR_MAX];

static int setup_tmp(void **state)
{
	(void)state;
	return tu_tmpdir_make(tmp_root, sizeof(tmp_root), "util");
}

static int teardown_tmp(void **state)
{
	(void)state;
	return tu_tmpdir_remove(tmp_root);
}

static void tmp_path(char *buf, size_t size, const char *name)
{
	tu_path(buf, size, tmp_root, name);
}

/* ---- err.h ---- */

static void test_err_set_and_null(void **state)
{
	(void)state;
	struct moat_err err;
	moat_err_clear(&err);
	assert_int_equal(moat_err_set(&err, MOAT_EINVAL, "%s: bad %d", "thing", 7), MOAT_EINVAL);
	assert_int_equal(err.code, MOAT_EINVAL);
	assert_string_equal(err.msg, "thing: bad 7");
	/* a NULL err discards the message but the code still comes back */
	assert_int_equal(moat_err_set(NULL, MOAT_EIO, "x"), MOAT_EIO);
	assert_int_equal(moat_err_errno(NULL, MOAT_EIO, ENOSPC, "x"), MOAT_ENOSPC);
	assert_int_equal(moat_err_ssl(NULL, MOAT_ECRYPTO, "x"), MOAT_ECRYPTO);
	moat_err_prefix(NULL, "x");
	moat_err_clear(NULL);
	moat_err_clear(&err);
	assert_int_equal(err.code, 0);
	assert_string_equal(err.msg, "");
}

static void test_err_errno(void **state)
{
	(void)state;
	struct moat_err err;
	assert_int_equal(moat_err_errno(&err, MOAT_EIO, ENOENT, "%s", "a/b"), MOAT_EIO);
	char want[256];
	snprintf(want, sizeof(want), "a/b: %s", strerror(ENOENT));
	assert_string_equal(err.msg, want);
	/* disk full is its own code so the CLI can say so */
	assert_int_equal(moat_err_errno(&err, MOAT_EIO, ENOSPC, "f"), MOAT_ENOSPC);
	assert_int_equal(err.code, MOAT_ENOSPC);
	assert_int_equal(moat_err_errno(&err, MOAT_EIO, EDQUOT, "f"), MOAT_ENOSPC);
}

static void test_err_ssl(void **state)
{
	(void)state;
	struct moat_err err;
	ERR_clear_error();
	assert_int_equal(moat_err_ssl(&err, MOAT_ECRYPTO, "nothing queued"), MOAT_ECRYPTO);
	assert_string_equal(err.msg, "nothing queued: unknown OpenSSL error");
	ERR_raise(ERR_LIB_PEM, 108 /* PEM_R_NO_START_LINE */);
	assert_int_equal(moat_err_ssl(&err, MOAT_ECRYPTO, "ca.crt"), MOAT_ECRYPTO);
	assert_true(strncmp(err.msg, "ca.crt: ", 8) == 0);
	assert_true(strlen(err.msg) > 8);
	/* the queue is cleared so the next message does not pick up a stale reason */
	assert_int_equal(ERR_peek_error(), 0);
}

static void test_err_prefix_and_truncation(void **state)
{
	(void)state;
	struct moat_err err;
	moat_err_set(&err, MOAT_EINVAL, "wrong passphrase");
	moat_err_prefix(&err, "%s", "pki/ca.key");
	assert_string_equal(err.msg, "pki/ca.key: wrong passphrase");
	assert_int_equal(err.code, MOAT_EINVAL);

	char big[3 * MOAT_ERR_MSG_MAX];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	moat_err_set(&err, MOAT_EINVAL, "%s", big);
	assert_int_equal(strlen(err.msg), MOAT_ERR_MSG_MAX - 1);
	moat_err_errno(&err, MOAT_EIO, EIO, "%s", big);
	assert_int_equal(strlen(err.msg), MOAT_ERR_MSG_MAX - 1);
	moat_err_prefix(&err, "%s", big);
	assert_true(strlen(err.msg) < MOAT_ERR_MSG_MAX);
}

/* ---- timeutil.h ---- */

static void test_int_parse_ok(void **state)
{
	(void)state;
	struct moat_err err;
	int64_t v = 0;
	assert_int_equal(moat_int_parse("0", 0, 10, &v, &err), 0);
	assert_int_equal(v, 0);
	assert_int_equal(moat_int_parse("-5", -10, 10, &v, &err), 0);
	assert_int_equal(v, -5);
	assert_int_equal(moat_int_parse("9223372036854775807", INT64_MIN, INT64_MAX, &v, &err), 0);
	assert_true(v == INT64_MAX);
	assert_int_equal(moat_int_parse("-9223372036854775808", INT64_MIN, INT64_MAX, &v, &err), 0);
	assert_true(v == INT64_MIN);
	assert_int_equal(moat_int_parse("0010", 0, 100, &v, &err), 0);
	assert_int_equal(v, 10);
}

static void test_int_parse_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		" 5",
		"5 ",
		"+5",
		"5x",
		"0x10",
		"1e3",
		"--5",
		"5-",
		"\t5",
		"\n5",
		"5\n",
		"1.5",
		"abc",
		"-",
		"9223372036854775808",
		"-9223372036854775809",
		"99999999999999999999999999999999999999",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct moat_err err;
		int64_t v = 42;
		moat_err_clear(&err);
		int rc = moat_int_parse(bad[i], INT64_MIN, INT64_MAX, &v, &err);
		if (rc != MOAT_EINVAL) {
			fail_msg("'%s' accepted as %" PRId64, bad[i], v);
		}
		assert_int_equal(err.code, MOAT_EINVAL);
		assert_true(err.msg[0] != '\0');
		assert_int_equal(v, 42); /* output untouched on failure */
	}
	struct moat_err err;
	int64_t v = 0;
	assert_int_equal(moat_int_parse(NULL, 0, 1, &v, &err), MOAT_EINVAL);
	assert_int_equal(moat_int_parse("11", 0, 10, &v, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "out of range 0..10"));
	assert_int_equal(moat_int_parse("-1", 0, 10, &v, &err), MOAT_EINVAL);
}

static void test_duration_ok(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int64_t unit;
		int64_t want;
	} ok[] = {
		{"10s", 1, 10},	    {"90m", 1, 5400},
		{"12h", 1, 43200},  {"30d", 1, 2592000},
		{"2w", 1, 1209600}, {"7", 86400, 604800},
		{"7", 1, 7},	    {"0", 1, 0},
		{"0d", 1, 0},	    {"15250284452471w", 1, INT64_C(15250284452471) * 604800},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct moat_err err;
		int64_t v = -1;
		if (moat_duration_parse(ok[i].text, ok[i].unit, &v, &err) != 0) {
			fail_msg("'%s' refused: %s", ok[i].text, err.msg);
		}
		assert_true(v == ok[i].want);
	}
}

static void test_duration_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"s",
		"-5s",
		"5x",
		"5ss",
		"1.5h",
		" 5s",
		"5 s",
		"5s ",
		"+5s",
		"\t5",
		"5S",
		"d5",
		"5dd",
		"0x5",
		"15250284452472w",
		"99999999999999999999s",
		"5\n",
		"-0",
		"-0s",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct moat_err err;
		int64_t v = 42;
		moat_err_clear(&err);
		if (moat_duration_parse(bad[i], 1, &v, &err) != MOAT_EINVAL) {
			fail_msg("'%s' accepted as %" PRId64, bad[i], v);
		}
		assert_int_equal(v, 42);
		assert_true(err.msg[0] != '\0');
	}
	struct moat_err err;
	int64_t v = 42;
	assert_int_equal(moat_duration_parse(NULL, 1, &v, &err), MOAT_EINVAL);
	/* a large default unit must not overflow (signed overflow is UB: UBSan would stop) */
	assert_int_equal(moat_duration_parse("15250284452471", 365 * 86400, &v, &err), MOAT_EINVAL);
	assert_int_equal(moat_duration_parse("9223372036854775807", 2, &v, &err), MOAT_EINVAL);
	/* a nonsensical default unit is refused, not multiplied */
	assert_int_equal(moat_duration_parse("5", 0, &v, &err), MOAT_EINVAL);
	assert_int_equal(moat_duration_parse("5", -1, &v, &err), MOAT_EINVAL);
	assert_int_equal(v, 42);
}

/* Durations that must carry their unit (update_interval, the agent's intervals): every
 * rejection path. */
static void test_duration_ms(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int64_t want;
	} ok[] = {
		{"500ms", 500},	 {"0ms", 0},	   {"30s", 30000},     {"5m", 300000},
		{"1h", 3600000}, {"1d", 86400000}, {"2w", 1209600000},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct moat_err err;
		int64_t v = -1;
		if (moat_duration_ms_parse(ok[i].text, &v, &err) != 0) {
			fail_msg("'%s' refused: %s", ok[i].text, err.msg);
		}
		assert_true(v == ok[i].want);
	}
	static const char *const bad[] = {
		"",
		"5000",
		"0",
		"ms",
		"-5ms",
		"+5ms",
		" 5ms",
		"5 ms",
		"5msx",
		"5mss",
		"5MS",
		"1.5s",
		"-5s",
		"5x",
		"0x5ms",
		"99999999999999999999ms",
		"15250284452471w",
		"9223372036854776s",
		"1234567890123456789012345",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct moat_err err;
		int64_t v = 42;
		moat_err_clear(&err);
		if (moat_duration_ms_parse(bad[i], &v, &err) != MOAT_EINVAL) {
			fail_msg("'%s' accepted as %" PRId64, bad[i], v);
		}
		assert_int_equal(v, 42);
		assert_true(err.msg[0] != '\0');
	}
	struct moat_err err;
	int64_t v = 42;
	assert_int_equal(moat_duration_ms_parse("5000", &v, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "unit"));
	assert_int_equal(moat_duration_ms_parse(NULL, &v, &err), MOAT_EINVAL);
}

static void test_time(void **state)
{
	(void)state;
	char buf[MOAT_TIME_ISO_LEN];
	moat_time_iso(0, buf);
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	moat_time_iso(1795629600, buf);
	assert_string_equal(buf, "2026-11-25T18:00:00Z");
	moat_time_iso(INT64_MAX, buf);
	assert_string_equal(buf, "invalid-time");
	assert_true(moat_time_now() > 1700000000);
	int64_t a = moat_time_mono_ms();
	int64_t b = moat_time_mono_ms();
	assert_true(b >= a);
}

/* ---- fsutil.h ---- */

static void test_write_atomic_mode(void **state)
{
	(void)state;
	struct moat_err err;
	char path[512];
	tmp_path(path, sizeof(path), "secret.key");
	/* a permissive umask must not widen the mode, a narrow one must not break it */
	mode_t old = umask(0);
	assert_int_equal(moat_fs_write_atomic(path, "abc", 3, 0600, &err), 0);
	umask(old);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, 3);

	/* replacing a world-readable file: the result has the new mode, not the old one */
	char pub[512];
	tmp_path(pub, sizeof(pub), "was-public");
	int fd = open(pub, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, 0644), 0);
	assert_int_equal(write(fd, "old", 3), 3);
	close(fd);
	old = umask(0);
	assert_int_equal(moat_fs_write_atomic(pub, "new!", 4, 0600, &err), 0);
	umask(old);
	assert_int_equal(stat(pub, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	char *data = NULL;
	size_t len = 0;
	assert_int_equal(moat_fs_read_all(pub, 100, &data, &len, &err), 0);
	assert_int_equal(len, 4);
	assert_string_equal(data, "new!");
	free(data);

	/* an empty file is a valid write; opts without fsync still write */
	struct moat_fs_opts opts = {.no_fsync = true};
	assert_int_equal(moat_fs_write_atomic_opts(path, "", 0, 0640, &opts, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(tu_dir_count(tmp_root, "secret.key.tmp"), 0);
	assert_int_equal(tu_dir_count(tmp_root, "was-public.tmp"), 0);
}

/* A write that fails after its temporary was created (the target is a directory, so
 * rename fails): the temporary is removed and the target untouched. */
static void test_write_atomic_rename_fails(void **state)
{
	(void)state;
	struct moat_err err;
	char dir[512];
	char inner[600];
	tmp_path(dir, sizeof(dir), "target-is-dir");
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(inner, sizeof(inner), "%s/keep", dir);
	assert_int_equal(moat_fs_write_atomic(inner, "k", 1, 0600, &err), 0);
	moat_err_clear(&err);
	assert_int_not_equal(moat_fs_write_atomic(dir, "data", 4, 0600, &err), 0);
	assert_non_null(strstr(err.msg, "target-is-dir"));
	assert_int_equal(tu_dir_count(tmp_root, "target-is-dir.tmp"), 0);
	assert_true(moat_fs_exists(inner));
}

/* A write that fails in write(2) (file size limit): no temporary left, old content kept. */
static void test_write_atomic_write_fails(void **state)
{
	(void)state;
	char path[512];
	tmp_path(path, sizeof(path), "limited");
	struct moat_err err;
	assert_int_equal(moat_fs_write_atomic(path, "old", 3, 0600, &err), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGXFSZ, SIG_IGN);
		struct rlimit rl = {.rlim_cur = 4096, .rlim_max = 4096};
		if (setrlimit(RLIMIT_FSIZE, &rl) != 0) {
			_exit(10);
		}
		static char big[65536];
		memset(big, 'b', sizeof(big));
		struct moat_err cerr;
		int rc = moat_fs_write_atomic(path, big, sizeof(big), 0600, &cerr);
		_exit(rc == MOAT_EIO && strstr(cerr.msg, "write") ? 0 : 11);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(tu_dir_count(tmp_root, "limited.tmp"), 0);
	char *data = NULL;
	assert_int_equal(moat_fs_read_all(path, 100, &data, NULL, &err), 0);
	assert_string_equal(data, "old");
	free(data);
}

/* A read-only directory refuses the write; as root (which ignores permissions) the write
 * runs in a child that has dropped to "nobody". */
static void test_write_atomic_readonly_dir(void **state)
{
	(void)state;
	char dir[512];
	char path[600];
	tmp_path(dir, sizeof(dir), "ro");
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/file", dir);
	bool root = geteuid() == 0;
	if (root) {
		/* nobody must reach the directory: tmp_root is 0700 root */
		assert_int_equal(chmod(tmp_root, 0755), 0);
		assert_int_equal(chown(dir, 65534, 65534), 0);
	}
	assert_int_equal(chmod(dir, 0555), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (root && (setgid(65534) != 0 || setuid(65534) != 0)) {
			_exit(10);
		}
		struct moat_err cerr;
		int rc = moat_fs_write_atomic(path, "x", 1, 0600, &cerr);
		_exit(rc == MOAT_EIO && strstr(cerr.msg, "/ro/file") ? 0 : 11);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(chmod(dir, 0755), 0);
	if (root) {
		assert_int_equal(chmod(tmp_root, 0700), 0);
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_false(moat_fs_exists(path));
	assert_int_equal(tu_dir_count(dir, "file"), 0);
}

/* A symlink planted at the temporary name is not followed: it is removed and the write
 * goes to a fresh file, leaving its target untouched. */
static void test_write_atomic_symlink_tmp(void **state)
{
	(void)state;
	char path[512];
	char victim[512];
	char tmp[700];
	tmp_path(path, sizeof(path), "planted");
	tmp_path(victim, sizeof(victim), "victim");
	struct moat_err err;
	assert_int_equal(moat_fs_write_atomic(victim, "v", 1, 0644, &err), 0);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	assert_int_equal(symlink(victim, tmp), 0);
	assert_int_equal(moat_fs_write_atomic(path, "new", 3, 0600, &err), 0);
	char *data = NULL;
	assert_int_equal(moat_fs_read_all(victim, 100, &data, NULL, &err), 0);
	assert_string_equal(data, "v");
	free(data);
	assert_int_equal(moat_fs_read_all(path, 100, &data, NULL, &err), 0);
	assert_string_equal(data, "new");
	free(data);
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_false(moat_fs_exists(tmp));
}

static void test_read_all(void **state)
{
	(void)state;
	struct moat_err err;
	char path[512];
	tmp_path(path, sizeof(path), "data");
	assert_int_equal(moat_fs_write_atomic(path, "0123456789", 10, 0600, &err), 0);
	char *data = NULL;
	size_t len = 0;
	assert_int_equal(moat_fs_read_all(path, 10, &data, &len, &err), 0);
	assert_int_equal(len, 10);
	assert_int_equal(data[10], '\0');
	free(data);
	data = NULL;
	/* one byte over the limit */
	assert_int_equal(moat_fs_read_all(path, 9, &data, &len, &err), MOAT_EINVAL);
	assert_null(data);
	assert_non_null(strstr(err.msg, "larger than 9 bytes"));
	/* missing file, directory, device */
	char missing[512];
	tmp_path(missing, sizeof(missing), "missing");
	assert_int_equal(moat_fs_read_all(missing, 10, &data, &len, &err), MOAT_ENOENT);
	assert_non_null(strstr(err.msg, "missing"));
	assert_int_equal(moat_fs_read_all(tmp_root, 10, &data, &len, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "not a regular file"));
	assert_int_equal(moat_fs_read_all("/dev/zero", 10, &data, &len, &err), MOAT_EINVAL);
	assert_null(data);
	/* empty file */
	assert_int_equal(moat_fs_write_atomic(path, "", 0, 0600, &err), 0);
	assert_int_equal(moat_fs_read_all(path, 10, &data, &len, &err), 0);
	assert_int_equal(len, 0);
	assert_string_equal(data, "");
	free(data);
}

static void test_mkdirs_remove_tree(void **state)
{
	(void)state;
	struct moat_err err;
	char path[512];
	tmp_path(path, sizeof(path), "a/b/c");
	mode_t old = umask(0);
	assert_int_equal(moat_fs_mkdirs(path, 0700, &err), 0);
	umask(old);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	/* again: existing directories are fine */
	assert_int_equal(moat_fs_mkdirs(path, 0700, &err), 0);
	/* a file in the way */
	char file[512];
	char below[600];
	tmp_path(file, sizeof(file), "a/file");
	assert_int_equal(moat_fs_write_atomic(file, "x", 1, 0600, &err), 0);
	snprintf(below, sizeof(below), "%s/sub", file);
	assert_int_not_equal(moat_fs_mkdirs(below, 0700, &err), 0);
	assert_int_not_equal(moat_fs_mkdirs(file, 0700, &err), 0);

	char top[512];
	tmp_path(top, sizeof(top), "a");
	assert_int_equal(moat_fs_remove_tree(top, &err), 0);
	assert_false(moat_fs_exists(top));
	/* removing what is already gone is not an error */
	assert_int_equal(moat_fs_remove_tree(top, &err), 0);
	assert_int_equal(moat_fs_remove_tree("/", &err), MOAT_EINVAL);
	assert_int_equal(moat_fs_remove_tree("", &err), MOAT_EINVAL);
	assert_int_equal(moat_fs_remove_tree(NULL, &err), MOAT_EINVAL);
	assert_int_not_equal(moat_fs_sync_dir(top, &err), 0);
	assert_int_equal(moat_fs_sync_dir(tmp_root, &err), 0);
}

static void test_path_join(void **state)
{
	(void)state;
	struct moat_err err;
	char buf[16];
	assert_int_equal(moat_path_join(buf, sizeof(buf), &err, "%s/%s", "pki", "ca.crt"), 0);
	assert_string_equal(buf, "pki/ca.crt");
	assert_int_equal(moat_path_join(buf, sizeof(buf), &err, "%s/%s", "pki/identities",
					"device-001"),
			 MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "path too long"));
	assert_int_equal(moat_path_join(buf, sizeof(buf), &err, "%s", "0123456789abcde"), 0);
	assert_int_equal(moat_path_join(buf, sizeof(buf), &err, "%s", "0123456789abcdef"),
			 MOAT_EINVAL);
}

/* ---- config.h ---- */

static struct moat_config *parse_ok(const char *text)
{
	struct moat_config *cfg = NULL;
	struct moat_err err;
	moat_err_clear(&err);
	if (moat_config_parse("moat.conf", text, strlen(text), &cfg, &err) != 0) {
		fail_msg("parse failed: %s", err.msg);
	}
	return cfg;
}

/* Parses text expecting failure; the message must equal want exactly. */
static void parse_fails(const char *text, size_t len, const char *want)
{
	struct moat_config *cfg = NULL;
	struct moat_err err;
	moat_err_clear(&err);
	int rc = moat_config_parse("moat.conf", text, len, &cfg, &err);
	if (rc == 0) {
		moat_config_free(cfg);
		fail_msg("accepted: %.80s", text);
	}
	assert_int_equal(rc, MOAT_EINVAL);
	assert_int_equal(err.code, MOAT_EINVAL);
	assert_null(cfg);
	assert_string_equal(err.msg, want);
}

static void test_config_parse(void **state)
{
	(void)state;
	const char *text = "; comment\n"
			   "[deployment]\n"
			   "name = plant-1\n"
			   "\n"
			   "# another comment\n"
			   "[broker]\r\n"
			   "hosts = localhost, 127.0.0.1 ; inline comment\r\n"
			   "port=8883\n"
			   "[deployment.extra]\n"
			   "empty =\n"
			   "last = no-newline";
	struct moat_config *cfg = parse_ok(text);
	assert_int_equal(cfg->count, 5);
	assert_string_equal(cfg->path, "moat.conf");
	assert_string_equal(moat_config_get(cfg, "deployment", "name"), "plant-1");
	assert_string_equal(moat_config_get(cfg, "broker", "hosts"), "localhost, 127.0.0.1");
	assert_string_equal(moat_config_get(cfg, "broker", "port"), "8883");
	assert_string_equal(moat_config_get(cfg, "deployment.extra", "empty"), "");
	assert_string_equal(moat_config_get(cfg, "deployment.extra", "last"), "no-newline");
	assert_null(moat_config_get(cfg, "broker", "name"));
	assert_null(moat_config_get(cfg, "nosuch", "port"));
	const struct moat_config_entry *e = moat_config_find(cfg, "deployment", "name");
	assert_non_null(e);
	assert_int_equal(e->line, 3);
	assert_int_equal(moat_config_find(cfg, "broker", "hosts")->line, 7);
	assert_int_equal(moat_config_find(cfg, "broker", "port")->line, 8);
	assert_int_equal(moat_config_find(cfg, "deployment.extra", "last")->line, 11);
	/* the same key in two sections is not a duplicate */
	moat_config_free(cfg);
	cfg = parse_ok("[a]\nk = 1\n[b]\nk = 2\n");
	assert_string_equal(moat_config_get(cfg, "a", "k"), "1");
	assert_string_equal(moat_config_get(cfg, "b", "k"), "2");
	moat_config_free(cfg);
	cfg = parse_ok("");
	assert_int_equal(cfg->count, 0);
	moat_config_free(cfg);
	moat_config_free(NULL);
}

static void test_config_rejects(void **state)
{
	(void)state;
	const char *dup = "[a]\nk = 1\n\nk = 2\n";
	parse_fails(dup, strlen(dup), "moat.conf:4: duplicate key 'k' in [a]");
	const char *outside = "\n\nk = 1\n[a]\n";
	parse_fails(outside, strlen(outside), "moat.conf:3: key 'k' outside any [section]");
	const char *syntax = "[a]\nk = 1\nthis is not a key\n";
	parse_fails(syntax, strlen(syntax),
		    "moat.conf:3: syntax error (expected [section] or key = value)");
	const char *bad_section = "[a]\n[b\nk = 1\n";
	parse_fails(bad_section, strlen(bad_section),
		    "moat.conf:2: syntax error (expected [section] or key = value)");
	/* a key repeated after a continuation is still a duplicate */
	const char *dup_cont = "[a]\nk = 1\n  2\nk = 3\n";
	parse_fails(dup_cont, strlen(dup_cont), "moat.conf:4: duplicate key 'k' in [a]");
	/* NUL byte anywhere, even at the very end */
	const char nul[] = "[a]\nk = 1\0\n";
	parse_fails(nul, sizeof(nul) - 1, "moat.conf: contains a NUL byte");
	const char nul_end[] = "[a]\n\0";
	parse_fails(nul_end, sizeof(nul_end) - 1, "moat.conf: contains a NUL byte");
}

/* inih reads lines into a fixed buffer (200 bytes in Debian's build); a longer line would
 * be split and its tail parsed as a new line, so config.c refuses it, naming the line. */
static void test_config_long_lines(void **state)
{
	(void)state;
	char text[4096];
	char value[2048];
	/* 198 bytes of line before the newline fit exactly */
	memset(value, 'v', sizeof(value));
	int n = snprintf(text, sizeof(text), "[a]\n\nk = %.*s\n", 198 - 4, value);
	assert_true(n > 0);
	struct moat_config *cfg = parse_ok(text);
	assert_int_equal(strlen(moat_config_get(cfg, "a", "k")), 194);
	moat_config_free(cfg);
	/* one more byte does not */
	n = snprintf(text, sizeof(text), "[a]\n\nk = %.*s\nj = 1\n", 198 - 3, value);
	parse_fails(text, (size_t)n, "moat.conf:3: line longer than 198 bytes");
	/* the same at the end of the file without a newline */
	n = snprintf(text, sizeof(text), "[a]\nk = %.*s", 198 - 3 + 1, value);
	parse_fails(text, (size_t)n, "moat.conf:2: line longer than 198 bytes");
	/* a value over MOAT_CONFIG_VALUE_MAX is refused, whichever limit trips first */
	n = snprintf(text, sizeof(text), "[a]\nk = %.*s\n", MOAT_CONFIG_VALUE_MAX + 1, value);
	struct moat_config *bad = NULL;
	struct moat_err err;
	assert_int_equal(moat_config_parse("moat.conf", text, (size_t)n, &bad, &err), MOAT_EINVAL);
	assert_null(bad);
	assert_true(strncmp(err.msg, "moat.conf:2: ", 13) == 0);
	/* a long comment line is refused too: inih would parse its tail as a key */
	n = snprintf(text, sizeof(text), "[a]\n# %.*s = x\n", 300, value);
	parse_fails(text, (size_t)n, "moat.conf:2: line longer than 198 bytes");
}

/* Indented lines continue the previous key's value (config.h): joined with one space,
 * bounded by MOAT_CONFIG_VALUE_MAX, the entry keeps the key's line. */
static void test_config_continuation(void **state)
{
	(void)state;
	struct moat_config *cfg = parse_ok("[net]\n"
					   "iot = 10.0.0.0/24,\n"
					   "  10.1.0.0/24,\n"
					   "\t10.2.0.0/24\n"
					   "  ; an indented comment is still a comment\n"
					   "other = x\n"
					   "[b]\n"
					   "  k = 1\n");
	assert_int_equal(cfg->count, 3);
	assert_string_equal(moat_config_get(cfg, "net", "iot"),
			    "10.0.0.0/24, 10.1.0.0/24, 10.2.0.0/24");
	assert_int_equal(moat_config_find(cfg, "net", "iot")->line, 2);
	assert_string_equal(moat_config_get(cfg, "net", "other"), "x");
	/* an indented line right after a section header has nothing to continue */
	assert_string_equal(moat_config_get(cfg, "b", "k"), "1");
	char **items = NULL;
	size_t count = 0;
	struct moat_err err;
	assert_int_equal(moat_config_split_list(moat_config_get(cfg, "net", "iot"), &items, &count,
						&err),
			 0);
	assert_int_equal(count, 3);
	assert_string_equal(items[2], "10.2.0.0/24");
	moat_config_list_free(items, count);
	moat_config_free(cfg);

	/* continuations cannot grow a value past MOAT_CONFIG_VALUE_MAX */
	size_t cap = 64 + (MOAT_CONFIG_VALUE_MAX / 100 + 2) * 110;
	char *text = malloc(cap);
	assert_non_null(text);
	size_t used = (size_t)snprintf(text, cap, "[a]\nk = start\n");
	int line = 2;
	size_t value_len = strlen("start");
	while (value_len <= MOAT_CONFIG_VALUE_MAX) {
		used += (size_t)snprintf(text + used, cap - used, "  %0100d\n", 0);
		value_len += 1 + 100;
		line++;
	}
	char want[128];
	snprintf(want, sizeof(want), "moat.conf:%d: value of 'k' longer than %d bytes", line,
		 MOAT_CONFIG_VALUE_MAX);
	parse_fails(text, used, want);
	free(text);
}

static void test_config_max_entries(void **state)
{
	(void)state;
	size_t cap = (MOAT_CONFIG_MAX_ENTRIES + 2) * 16 + 8;
	char *text = malloc(cap);
	assert_non_null(text);
	size_t used = (size_t)snprintf(text, cap, "[a]\n");
	for (int i = 0; i < MOAT_CONFIG_MAX_ENTRIES; i++) {
		used += (size_t)snprintf(text + used, cap - used, "k%d = 1\n", i);
	}
	struct moat_config *cfg = NULL;
	struct moat_err err;
	assert_int_equal(moat_config_parse("moat.conf", text, used, &cfg, &err), 0);
	assert_int_equal(cfg->count, MOAT_CONFIG_MAX_ENTRIES);
	moat_config_free(cfg);
	used += (size_t)snprintf(text + used, cap - used, "one = more\n");
	char want[128];
	snprintf(want, sizeof(want), "moat.conf:%d: more than %d entries",
		 MOAT_CONFIG_MAX_ENTRIES + 2, MOAT_CONFIG_MAX_ENTRIES);
	parse_fails(text, used, want);
	free(text);
}

static void test_config_typed(void **state)
{
	(void)state;
	struct moat_config *cfg = parse_ok("[s]\n"
					   "port = 8883\n"
					   "big = 70000\n"
					   "junk = 12x\n"
					   "on = yes\n"
					   "off = 0\n"
					   "maybe = perhaps\n"
					   "upper = TRUE\n"
					   "ttl = 30d\n"
					   "short = 5s\n"
					   "badd = 3 days\n");
	struct moat_err err;
	int64_t v = 0;
	bool b = false;
	assert_int_equal(moat_config_get_int(cfg, "s", "port", 1, 1, 65535, &v, &err), 0);
	assert_int_equal(v, 8883);
	assert_int_equal(moat_config_get_int(cfg, "s", "absent", 77, 1, 65535, &v, &err), 0);
	assert_int_equal(v, 77);
	assert_int_equal(moat_config_get_int(cfg, "s", "big", 1, 1, 65535, &v, &err), MOAT_EINVAL);
	assert_string_equal(err.msg, "moat.conf:3: [s] big: '70000': out of range 1..65535");
	assert_int_equal(moat_config_get_int(cfg, "s", "junk", 1, 1, 65535, &v, &err), MOAT_EINVAL);
	assert_string_equal(err.msg, "moat.conf:4: [s] junk: '12x': not an integer");

	assert_int_equal(moat_config_get_bool(cfg, "s", "on", false, &b, &err), 0);
	assert_true(b);
	assert_int_equal(moat_config_get_bool(cfg, "s", "off", true, &b, &err), 0);
	assert_false(b);
	assert_int_equal(moat_config_get_bool(cfg, "s", "absent", true, &b, &err), 0);
	assert_true(b);
	assert_int_equal(moat_config_get_bool(cfg, "s", "maybe", true, &b, &err), MOAT_EINVAL);
	assert_string_equal(err.msg, "moat.conf:7: [s] maybe: 'perhaps' is not true or false");
	assert_int_equal(moat_config_get_bool(cfg, "s", "upper", true, &b, &err), MOAT_EINVAL);

	assert_int_equal(moat_config_get_duration(cfg, "s", "ttl", 1, 1, 400 * 86400, &v, &err), 0);
	assert_int_equal(v, 30 * 86400);
	assert_int_equal(moat_config_get_duration(cfg, "s", "absent", 99, 1, 100, &v, &err), 0);
	assert_int_equal(v, 99);
	v = 1234;
	assert_int_equal(moat_config_get_duration(cfg, "s", "short", 1, 60, 86400, &v, &err),
			 MOAT_EINVAL);
	assert_int_equal(v, 1234);
	assert_string_equal(err.msg, "moat.conf:10: [s] short: '5s': out of range");
	assert_int_equal(moat_config_get_duration(cfg, "s", "badd", 1, 1, 86400, &v, &err),
			 MOAT_EINVAL);
	assert_true(strncmp(err.msg, "moat.conf:11: [s] badd: '3 days': not a duration", 48) == 0);
	moat_config_free(cfg);
}

static void test_config_check_keys(void **state)
{
	(void)state;
	struct moat_config *cfg = parse_ok("[broker]\nport = 1\nhosts = a\n[server]\nport = 2\n"
					   "[extra]\nx = 1\n");
	struct moat_err err;
	static const char *const broker_keys[] = {"port", "hosts", NULL};
	static const char *const broker_port_only[] = {"port", NULL};
	static const char *const sections[] = {"broker", "server", "extra", NULL};
	static const char *const two_sections[] = {"broker", "server", NULL};
	assert_int_equal(moat_config_check_keys(cfg, "broker", broker_keys, &err), 0);
	assert_int_equal(moat_config_check_keys(cfg, "broker", broker_port_only, &err),
			 MOAT_EINVAL);
	assert_string_equal(err.msg, "moat.conf:3: unknown key 'hosts' in [broker]");
	/* a section without entries has no unknown keys */
	assert_int_equal(moat_config_check_keys(cfg, "nosuch", broker_port_only, &err), 0);
	assert_int_equal(moat_config_check_sections(cfg, sections, &err), 0);
	assert_int_equal(moat_config_check_sections(cfg, two_sections, &err), MOAT_EINVAL);
	assert_string_equal(err.msg, "moat.conf:7: unknown section [extra]");
	moat_config_free(cfg);
}

static void test_config_split_list(void **state)
{
	(void)state;
	struct moat_err err;
	char **items = NULL;
	size_t count = 0;
	assert_int_equal(moat_config_split_list(" localhost ,127.0.0.1,\t::1 ", &items, &count,
						&err),
			 0);
	assert_int_equal(count, 3);
	assert_string_equal(items[0], "localhost");
	assert_string_equal(items[1], "127.0.0.1");
	assert_string_equal(items[2], "::1");
	moat_config_list_free(items, count);
	assert_int_equal(moat_config_split_list("one", &items, &count, &err), 0);
	assert_int_equal(count, 1);
	assert_string_equal(items[0], "one");
	moat_config_list_free(items, count);
	static const char *const bad[] = {"", " ", "a,,b", "a,", ",a", "a, ,b", ","};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		items = NULL;
		count = 99;
		if (moat_config_split_list(bad[i], &items, &count, &err) != MOAT_EINVAL) {
			fail_msg("'%s' accepted", bad[i]);
		}
		assert_null(items);
		assert_int_equal(count, 99);
		assert_non_null(strstr(err.msg, "empty item"));
	}
	moat_config_list_free(NULL, 0);
}

static void test_config_load(void **state)
{
	(void)state;
	struct moat_err err;
	char path[512];
	tmp_path(path, sizeof(path), "moat.conf");
	const char *text = "[a]\nk = v\nk = w\n";
	assert_int_equal(moat_fs_write_atomic(path, text, strlen(text), 0600, &err), 0);
	struct moat_config *cfg = NULL;
	assert_int_equal(moat_config_load(path, &cfg, &err), MOAT_EINVAL);
	assert_null(cfg);
	char want[700];
	snprintf(want, sizeof(want), "%s:3: duplicate key 'k' in [a]", path);
	assert_string_equal(err.msg, want);
	text = "[a]\nk = v\n";
	assert_int_equal(moat_fs_write_atomic(path, text, strlen(text), 0600, &err), 0);
	assert_int_equal(moat_config_load(path, &cfg, &err), 0);
	assert_string_equal(cfg->path, path);
	assert_string_equal(moat_config_get(cfg, "a", "k"), "v");
	moat_config_free(cfg);
	char missing[512];
	tmp_path(missing, sizeof(missing), "nope.conf");
	cfg = NULL;
	assert_int_equal(moat_config_load(missing, &cfg, &err), MOAT_ENOENT);
	assert_null(cfg);
}

/* ---- log.h ---- */

/* Runs fn with stderr redirected to a file and returns what it wrote (caller frees). */
static char *capture_stderr(void (*fn)(void))
{
	char path[512];
	tmp_path(path, sizeof(path), "stderr.log");
	fflush(stderr);
	int saved = dup(2);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	assert_true(dup2(fd, 2) == 2);
	close(fd);
	fn();
	fflush(stderr);
	assert_true(dup2(saved, 2) == 2);
	close(saved);
	char *data = NULL;
	struct moat_err err;
	assert_int_equal(moat_fs_read_all(path, 65536, &data, NULL, &err), 0);
	return data;
}

/* moat_log_vformat with arguments, for the tests below. */
static const char *logf_(char *out, size_t size, const char *fmt, ...) MOAT_PRINTF(3, 4);
static const char *logf_(char *out, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t n = moat_log_vformat(out, size, fmt, ap);
	va_end(ap);
	assert_int_equal(n, strlen(out));
	return out;
}

static void log_some(void)
{
	moat_log_init("moat-test", MOAT_LOG_INFO, false);
	moat_log(MOAT_LOG_DEBUG, "event=hidden");
	moat_log(MOAT_LOG_INFO, "event=connected id=%s", "dev-1");
	moat_log(MOAT_LOG_ERROR, "event=failed");
	/* a value from the network must not forge a second log line */
	moat_log(MOAT_LOG_WARN, "event=refused id=%s", "evil\n2026-01-01T00:00:00Z level=info x");
	/* a line made earlier is written as made (not quoted again), under the same threshold */
	char made[MOAT_LOG_LINE_MAX];
	moat_log_formatted(MOAT_LOG_DEBUG, "event=hidden_too");
	moat_log_formatted(MOAT_LOG_INFO,
			   logf_(made, sizeof(made), "event=later reason=%s", "a b=c"));
}

static void test_log(void **state)
{
	(void)state;
	char *out = capture_stderr(log_some);
	assert_null(strstr(out, "hidden"));
	char *line = strstr(out, " level=info prog=moat-test event=connected id=dev-1\n");
	assert_non_null(line);
	assert_int_equal(line - out, MOAT_TIME_ISO_LEN - 1);
	assert_int_equal(out[4], '-');
	assert_int_equal(out[MOAT_TIME_ISO_LEN - 2], 'Z');
	assert_non_null(strstr(out, " level=error prog=moat-test event=failed\n"));
	size_t lines = 0;
	for (const char *p = out; *p; p++) {
		lines += *p == '\n';
	}
	assert_int_equal(lines, 4);
	assert_null(strstr(out, "hidden_too"));
	assert_non_null(strstr(out, " level=info prog=moat-test event=later reason=\"a b=c\"\n"));
	/* the whole value stays one quoted field, its newline escaped */
	assert_non_null(strstr(out, " level=warn prog=moat-test event=refused "
				    "id=\"evil\\n2026-01-01T00:00:00Z level=info x\"\n"));
	free(out);
	moat_log_init("moat", MOAT_LOG_INFO, false);
}

/* Every value is one field: plain ones bare, others quoted and escaped; a value can never
 * add a field, close the format's quotes or start a line. */
static void test_log_fields(void **state)
{
	(void)state;
	char b[MOAT_LOG_LINE_MAX];
	assert_string_equal(logf_(b, sizeof(b), "event=x id=%s n=%d z=%zu h=%02x", "dev-1", -3,
				  (size_t)7, 10u),
			    "event=x id=dev-1 n=-3 z=7 h=0a");
	assert_string_equal(logf_(b, sizeof(b), "reason=%s",
				  "ok stage=confirmed id=dev-b version=6.6.6"),
			    "reason=\"ok stage=confirmed id=dev-b version=6.6.6\"");
	assert_string_equal(logf_(b, sizeof(b), "a=%s b=%s", "x=y", ""), "a=\"x=y\" b=");
	/* a quote or backslash cannot end the field */
	assert_string_equal(logf_(b, sizeof(b), "r=%s", "a\" forged=1"), "r=\"a\\\" forged=1\"");
	assert_string_equal(logf_(b, sizeof(b), "r=%s", "a\\"), "r=\"a\\\\\"");
	/* inside the format's own quotes: escaped, not quoted twice */
	assert_string_equal(logf_(b, sizeof(b), "error=\"%s: %s\" x=%s", "a b", "c\"d", "e f"),
			    "error=\"a b: c\\\"d\" x=\"e f\"");
	/* C0, DEL, C1, bidi controls and invalid UTF-8 */
	assert_string_equal(logf_(b, sizeof(b), "r=%s", "a\nb\rc\td\x1b[31m\x7f"),
			    "r=\"a\\nb\\rc\\td\\x1b[31m\\x7f\"");
	assert_string_equal(logf_(b, sizeof(b), "r=%s",
				  "\xc2\x9b"
				  "2J \xc2\x9d \xe2\x80\xae"
				  "\xe2\x81\xa6"),
			    "r=\"\\u009b2J \\u009d \\u202e\\u2066\"");
	assert_string_equal(logf_(b, sizeof(b), "r=%s", "\xff\xc3(\xe2\x82"),
			    "r=\"\\xff\\xc3(\\xe2\\x82\"");
	assert_string_equal(logf_(b, sizeof(b), "r=%s", "caf\xc3\xa9"), "r=\"caf\xc3\xa9\"");
	assert_string_equal(logf_(b, sizeof(b), "slot=%c s=%c", 'a', '\n'), "slot=a s=\"\\n\"");
	/* NULL drops its field, wherever it is */
	assert_string_equal(logf_(b, sizeof(b), "a=%s b=%s c=%s", "1", (const char *)NULL, "3"),
			    "a=1 c=3");
	assert_string_equal(logf_(b, sizeof(b), "a=%s b=\"%s\"", "1", (const char *)NULL), "a=1");
	assert_string_equal(logf_(b, sizeof(b), "a=%s b=%s", (const char *)NULL, "2"), "b=2");
	assert_string_equal(logf_(b, sizeof(b), "%s%% %-4d|%5s", "p", 7, "x"), "p% 7   |x");
}

/* A line cut short still closes its quotes and never cuts an escape. */
static void test_log_cut(void **state)
{
	(void)state;
	char b[16];
	assert_string_equal(logf_(b, sizeof(b), "r=%s", "a b c d e f g h i"), "r=\"a b c d e f\"");
	assert_string_equal(logf_(b, sizeof(b), "r=%s", "abc\x01\x01\x01"), "r=\"abc\\x01\\x01\"");
	assert_string_equal(logf_(b, sizeof(b), "0123456789abc r=%s", "x y"), "0123456789abc r");
	assert_string_equal(logf_(b, 1, "r=%s", "x"), "");
}

/* text.h: the decoder, the control list and the escaping on their own. */
static void test_text_escape(void **state)
{
	(void)state;
	uint32_t cp = 0;
	assert_int_equal(moat_utf8_decode((const unsigned char *)"A", 1, &cp), 1);
	assert_int_equal(cp, 'A');
	assert_int_equal(moat_utf8_decode((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp), 4);
	assert_int_equal(cp, 0x1f600);
	assert_int_equal(moat_utf8_decode((const unsigned char *)"\xf0\x9f\x98", 3, &cp), 0);
	assert_int_equal(moat_utf8_decode((const unsigned char *)"\xc0\xaf", 2, &cp), 0);
	assert_int_equal(moat_utf8_decode((const unsigned char *)"\xed\xa0\x80", 3, &cp), 0);
	assert_int_equal(moat_utf8_decode((const unsigned char *)"\x80", 1, &cp), 0);
	for (uint32_t c = 0; c < 0x20; c++) {
		assert_true(moat_text_cp_is_control(c));
	}
	for (uint32_t c = 0x7f; c <= 0x9f; c++) {
		assert_true(moat_text_cp_is_control(c));
	}
	assert_true(moat_text_cp_is_control(0x202a) && moat_text_cp_is_control(0x202e));
	assert_true(moat_text_cp_is_control(0x2066) && moat_text_cp_is_control(0x2069));
	assert_false(moat_text_cp_is_control(' ') || moat_text_cp_is_control(0xa0) ||
		     moat_text_cp_is_control(0x2029) || moat_text_cp_is_control(0x202f) ||
		     moat_text_cp_is_control(0x2065) || moat_text_cp_is_control(0x206a));
	assert_true(moat_text_display_ok("caf\xc3\xa9 \xe2\x82\xac", 9));
	assert_false(moat_text_display_ok("a\xc2\x9b", 3));
	assert_false(moat_text_display_ok("a\xe2\x80\xae", 4));
	assert_false(moat_text_display_ok("a\0b", 3));

	char out[64];
	size_t used = 0;
	/* unquoted (a terminal): quotes and backslashes are text */
	assert_int_equal(moat_text_escape(out, sizeof(out), "a\"\\b\x1b\xc2\x9b", 7, 0, &used), 14);
	assert_string_equal(out, "a\"\\b\\x1b\\u009b");
	assert_int_equal(used, 7);
	/* the worst case: every byte grows MOAT_TEXT_ESCAPE_GROWTH times */
	char big[4 * MOAT_TEXT_ESCAPE_GROWTH + 1];
	assert_int_equal(moat_text_escape(big, sizeof(big), "\xff\xfe\x01\x7f", 4, 0, &used),
			 4 * MOAT_TEXT_ESCAPE_GROWTH);
	assert_int_equal(used, 4);
	/* too small: stops before a unit, never inside one or a UTF-8 sequence */
	assert_int_equal(moat_text_escape(out, 6, "ab\x01", 3, 0, &used), 2);
	assert_string_equal(out, "ab");
	assert_int_equal(used, 2);
	assert_int_equal(moat_text_escape(out, 3, "a\xc3\xa9", 3, 0, &used), 1);
	assert_int_equal(used, 1);
	assert_int_equal(moat_text_escape(out, 1, "abc", 3, 0, &used), 0);
	assert_string_equal(out, "");
}

/* The buffer grows across many appends, keeps NULs, and hands over exactly what was put. */
static void test_buf_grows(void **state)
{
	(void)state;
	struct moat_buf b;
	moat_buf_init(&b, 1024u * 1024u);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(moat_buf_printf(&b, "%04d,", i), 0);
	}
	assert_int_equal(moat_buf_append(&b, "a\0b", 3), 0);
	assert_int_equal(moat_buf_append_str(&b, "end"), 0);
	char *out = NULL;
	size_t len = 0;
	assert_int_equal(moat_buf_take(&b, &out, &len), 0);
	assert_int_equal(len, 5000 + 3 + 3);
	assert_memory_equal(out, "0000,0001,", 10);
	assert_memory_equal(out + 4995, "0999,a\0bend", 12);
	assert_int_equal(out[len], '\0');
	free(out);
	/* taken: empty again, same maximum */
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.max, 1024u * 1024u);
	/* nothing appended: an empty string, not NULL */
	assert_int_equal(moat_buf_take(&b, &out, NULL), 0);
	assert_string_equal(out, "");
	free(out);
}

/* The maximum counts the NUL: max - 1 content bytes fit, one more is refused with
 * MOAT_EINVAL; the refusal is sticky and take frees what was there. */
static void test_buf_refuses_over_max(void **state)
{
	(void)state;
	struct moat_buf b;
	char *out = NULL;
	size_t len = 0;
	char big[600];
	memset(big, 'x', sizeof(big));

	moat_buf_init(&b, 600);
	assert_int_equal(moat_buf_append(&b, big, 599), 0);
	assert_int_equal(b.len, 599);
	assert_true(b.cap <= 600);
	assert_int_equal(moat_buf_take(&b, &out, &len), 0);
	assert_int_equal(len, 599);
	free(out);

	assert_int_equal(moat_buf_append(&b, big, 500), 0);
	assert_int_equal(moat_buf_append(&b, big, 100), MOAT_EINVAL);
	assert_int_equal(b.len, 500);
	assert_int_equal(b.data[500], '\0');
	/* sticky: even what would fit is refused now */
	assert_int_equal(moat_buf_append(&b, "y", 1), MOAT_EINVAL);
	assert_int_equal(moat_buf_printf(&b, "%d", 1), MOAT_EINVAL);
	out = (char *)1;
	assert_int_equal(moat_buf_take(&b, &out, &len), MOAT_EINVAL);
	assert_null(out);
	assert_null(b.data);

	/* printf past the maximum, on an empty and on a partly filled buffer */
	moat_buf_init(&b, 8);
	assert_int_equal(moat_buf_printf(&b, "%s", "12345678"), MOAT_EINVAL);
	assert_int_equal(moat_buf_take(&b, &out, NULL), MOAT_EINVAL);
	assert_int_equal(moat_buf_printf(&b, "%s", "1234"), 0);
	assert_int_equal(moat_buf_printf(&b, "%s", "5678"), MOAT_EINVAL);
	assert_string_equal(b.data, "1234");
	moat_buf_free(&b);
	assert_int_equal(moat_buf_printf(&b, "%s", "1234567"), 0);
	assert_int_equal(moat_buf_take(&b, &out, &len), 0);
	assert_string_equal(out, "1234567");
	free(out);

	/* a length that would overflow size_t is refused, not wrapped */
	moat_buf_init(&b, 64);
	assert_int_equal(moat_buf_append(&b, "ab", 2), 0);
	assert_int_equal(moat_buf_append(&b, big, (size_t)-1), MOAT_EINVAL);
	moat_buf_free(&b);
	/* a maximum of 0 holds nothing, not even the NUL */
	moat_buf_init(&b, 0);
	assert_int_equal(moat_buf_take(&b, &out, NULL), MOAT_EINVAL);
}

/* ---- spawn.h ---- */

static int run_sh(const char *script, const char *input, struct moat_spawn_capture *out,
		  struct moat_spawn_capture *errout, int *status, struct moat_err *err)
{
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	struct moat_spawn sp = {.argv = argv};
	return moat_spawn_run(&sp, input, input ? strlen(input) : 0, out, errout, status, err);
}

static void test_spawn_exit_status(void **state)
{
	struct moat_err err;
	char buf[64];
	struct moat_spawn_capture out = {.buf = buf, .size = sizeof(buf)};
	int status = -1;
	(void)state;
	assert_int_equal(run_sh("echo hello; exit 0", NULL, &out, NULL, &status, &err), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_string_equal(buf, "hello\n");
	assert_false(out.truncated);
	/* a non-zero exit is a status, not an error of the helper */
	assert_int_equal(run_sh("exit 3", NULL, NULL, NULL, &status, &err), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 3);
}

static void test_spawn_signal_death(void **state)
{
	struct moat_err err;
	int status = 0;
	(void)state;
	assert_int_equal(run_sh("kill -TERM $$", NULL, NULL, NULL, &status, &err), 0);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGTERM);

	/* a started child stopped by the caller */
	char *argv[] = {"/bin/sleep", "30", NULL};
	struct moat_spawn sp = {.argv = argv, .out = MOAT_SPAWN_PIPE};
	struct moat_spawn_child c;
	bool known = true;
	assert_int_equal(moat_spawn_start(&sp, &c, &err), 0);
	assert_true(c.pid > 0);
	assert_true(c.out >= 0);
	assert_int_equal(c.in, -1);
	assert_false(moat_spawn_poll(&c, &status, &known));
	kill(c.pid, SIGKILL);
	assert_int_equal(moat_spawn_wait(&c, &status, &err), 0);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	assert_int_equal(c.pid, 0);
	moat_spawn_close(&c);
	assert_int_equal(c.out, -1);
}

static void test_spawn_capture_bound(void **state)
{
	struct moat_err err;
	char buf[8];
	char ebuf[5];
	struct moat_spawn_capture out = {.buf = buf, .size = sizeof(buf)};
	struct moat_spawn_capture eout = {.buf = ebuf, .size = sizeof(ebuf)};
	int status = -1;
	(void)state;
	/* far more than the bound on both streams: kept within it, the rest drained, so the
	 * child is never blocked on a full pipe */
	assert_int_equal(
		run_sh("i=0; while [ $i -lt 2000 ]; do echo 0123456789; echo abcdefghij >&2; "
		       "i=$((i+1)); done",
		       NULL, &out, &eout, &status, &err),
		0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(out.len, sizeof(buf) - 1);
	assert_string_equal(buf, "0123456");
	assert_true(out.truncated);
	assert_int_equal(eout.len, sizeof(ebuf) - 1);
	assert_string_equal(ebuf, "abcd");
	assert_true(eout.truncated);
	/* no buffer: drained and dropped */
	struct moat_spawn_capture drop = {0};
	assert_int_equal(run_sh("echo x", NULL, &drop, NULL, &status, &err), 0);
	assert_int_equal(drop.len, 0);
	assert_true(drop.truncated);
}

static void test_spawn_stdin(void **state)
{
	struct moat_err err;
	char buf[64];
	struct moat_spawn_capture out = {.buf = buf, .size = sizeof(buf)};
	int status = -1;
	(void)state;
	assert_int_equal(run_sh("tr a-z A-Z", "ruleset\n", &out, NULL, &status, &err), 0);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_string_equal(buf, "RULESET\n");
	/* a child that exits without reading: EPIPE, never SIGPIPE in the caller */
	static char big[1 << 20];
	memset(big, 'x', sizeof(big) - 1);
	assert_int_equal(run_sh("exit 0", big, NULL, NULL, &status, &err), 0);
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_spawn_exec_failure(void **state)
{
	struct moat_err err;
	char *argv[] = {"/nonexistent/moat-no-such-program", NULL};
	struct moat_spawn sp = {.argv = argv};
	struct moat_spawn_child c;
	int status = 0;
	(void)state;
	assert_int_equal(moat_spawn_start(&sp, &c, &err), MOAT_ENOENT);
	assert_int_equal(c.exec_errno, ENOENT);
	assert_int_equal(c.pid, 0);
	assert_non_null(strstr(err.msg, "cannot run /nonexistent/moat-no-such-program"));
	/* through PATH */
	char *argv2[] = {"moat-no-such-program-in-path", NULL};
	sp.argv = argv2;
	sp.flags = MOAT_SPAWN_SEARCH_PATH;
	assert_int_equal(moat_spawn_run(&sp, NULL, 0, NULL, NULL, &status, &err), MOAT_ENOENT);
	/* not executable */
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/not-exec", tmp_root);
	assert_int_equal(moat_fs_write_atomic(path, "#!/bin/sh\n", 10, 0600, &err), 0);
	char *argv3[] = {path, NULL};
	sp.argv = argv3;
	sp.flags = 0;
	assert_int_equal(moat_spawn_start(&sp, &c, &err), MOAT_EIO);
	assert_int_equal(c.exec_errno, EACCES);
	/* with MOAT_SPAWN_EXEC_FAILURE_EXITS the child exits 127 instead */
	sp.argv = argv;
	sp.flags = MOAT_SPAWN_EXEC_FAILURE_EXITS;
	assert_int_equal(moat_spawn_start(&sp, &c, &err), 0);
	assert_int_equal(moat_spawn_wait(&c, &status, &err), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 127);
}

static int child_fn_write(void *ctx)
{
	const char *msg = ctx;
	(void)!write(STDOUT_FILENO, msg, strlen(msg));
	return 7;
}

static void test_spawn_child_fn_and_fds(void **state)
{
	struct moat_err err;
	char buf[64];
	struct moat_spawn_capture out = {.buf = buf, .size = sizeof(buf)};
	int status = -1;
	(void)state;
	struct moat_spawn sp = {.child_fn = child_fn_write, .child_ctx = "from the child"};
	assert_int_equal(moat_spawn_run(&sp, NULL, 0, &out, NULL, &status, &err), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 7);
	assert_string_equal(buf, "from the child");

	/* a descriptor without CLOEXEC reaches the program, except with MOAT_SPAWN_CLOSE_FDS;
	 * the environment entries are set */
	int fd = open("/dev/null", O_RDONLY);
	assert_true(fd > 2);
	char script[128];
	snprintf(script, sizeof(script),
		 "[ -e /proc/self/fd/%d ] && echo open || echo closed; "
		 "echo $MOAT_SPAWN_TEST",
		 fd);
	char *argv[] = {"/bin/sh", "-c", script, NULL};
	char env0[] = "MOAT_SPAWN_TEST=yes";
	char *env[] = {env0, NULL};
	struct moat_spawn sp2 = {.argv = argv, .env = env};
	assert_int_equal(moat_spawn_run(&sp2, NULL, 0, &out, NULL, &status, &err), 0);
	assert_string_equal(buf, "open\nyes\n");
	assert_null(getenv("MOAT_SPAWN_TEST")); /* only in the child */
	sp2.flags = MOAT_SPAWN_CLOSE_FDS;
	assert_int_equal(moat_spawn_run(&sp2, NULL, 0, &out, NULL, &status, &err), 0);
	assert_string_equal(buf, "closed\nyes\n");
	close(fd);
}

/* ---- opts.h ---- */

static int opt_even(void *dst, const char *value, struct moat_err *err)
{
	int64_t v = 0;
	if (moat_int_parse(value, 0, 100, &v, err) != 0 || v % 2 != 0) {
		return moat_err_set(err, MOAT_EINVAL, "--even: '%s' is not an even number", value);
	}
	*(int64_t *)dst = v;
	return 0;
}

static int opt_plain_refusal(void *dst, const char *value, struct moat_err *err)
{
	(void)dst;
	(void)value;
	err->msg[0] = '\0';
	return MOAT_EINVAL;
}

struct opt_vals {
	bool flag;
	const char *name;
	int64_t count;
	int64_t even;
	const char *items[2];
	struct moat_opt_list list;
};

/* Parses args (NULL-terminated, after the program name) with a table of every kind; the
 * status, and *out_next on MOAT_OPTS_CONTINUE. */
static int parse_with(struct opt_vals *v, bool no_operands, char **args, int *out_next)
{
	static char prog[] = "prog";
	char *argv[16] = {prog};
	int argc = 1;
	for (; args[argc - 1]; argc++) {
		argv[argc] = args[argc - 1];
	}
	memset(v, 0, sizeof(*v));
	v->list = (struct moat_opt_list){.items = v->items, .max = 2};
	const struct moat_opt opts[] = {
		{.name = "flag", .kind = MOAT_OPT_FLAG, .letter = 'f', .dst = &v->flag},
		{.name = "name", .kind = MOAT_OPT_STRING, .dst = &v->name},
		{.name = "count", .kind = MOAT_OPT_INT, .dst = &v->count, .min = 1, .max = 10},
		{.name = "even", .kind = MOAT_OPT_FN, .dst = &v->even, .fn = opt_even},
		{.name = "plain", .kind = MOAT_OPT_FN, .fn = opt_plain_refusal},
		{.name = "item", .kind = MOAT_OPT_LIST, .dst = &v->list},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {.prog = "prog",
					    .usage = "usage: prog [options]",
					    .opts = opts,
					    .on_error = MOAT_OPTS_ERROR_QUIET,
					    .no_operands = no_operands};
	return moat_opts_parse(&spec, argc, argv, 1, out_next);
}

/* Every kind stores its value; operands stay after the options (permuted). */
static void test_opts_accepted(void **state)
{
	(void)state;
	struct opt_vals v;
	int next = -1;
	char *args[] = {"-f",	    "--name", "x", "op1",    "--count", "10",
			"--even=4", "--item", "a", "--item", "b",	NULL};
	assert_int_equal(parse_with(&v, false, args, &next), MOAT_OPTS_CONTINUE);
	assert_true(v.flag);
	assert_string_equal(v.name, "x");
	assert_int_equal(v.count, 10);
	assert_int_equal(v.even, 4);
	assert_int_equal(v.list.count, 2);
	assert_string_equal(v.items[1], "b");
	assert_int_equal(next, 11); /* the operand, moved past the options */

	char *none[] = {NULL};
	assert_int_equal(parse_with(&v, true, none, &next), MOAT_OPTS_CONTINUE);
	assert_int_equal(next, 1);
	char *help[] = {"--help", NULL};
	assert_int_equal(parse_with(&v, false, help, &next), 0);
}

/* Every refusal is bad usage (exit 2) and stores nothing past it. */
static void test_opts_refused(void **state)
{
	(void)state;
	struct opt_vals v;
	int next = -1;
	char *unknown[] = {"--bogus", NULL};
	char *missing[] = {"--name", NULL};
	char *not_int[] = {"--count", "ten", NULL};
	char *too_big[] = {"--count", "11", NULL};
	char *too_small[] = {"--count", "0", NULL};
	char *odd[] = {"--even", "3", NULL};
	char *plain[] = {"--plain", "x", NULL};
	char *list_full[] = {"--item", "a", "--item", "b", "--item", "c", NULL};
	char *flag_arg[] = {"--flag=yes", NULL};
	char *operand[] = {"-f", "stray", NULL};
	char **refused[] = {unknown, missing, not_int,	 too_big, too_small,
			    odd,     plain,   list_full, flag_arg};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		assert_int_equal(parse_with(&v, false, refused[i], &next), MOAT_OPTS_USAGE_EXIT);
		if (refused[i] == list_full) {
			assert_int_equal(v.list.count, 2); /* the third --item was not stored */
		}
	}
	assert_int_equal(parse_with(&v, true, operand, &next), MOAT_OPTS_USAGE_EXIT);
	/* the same operand is fine where operands are */
	assert_int_equal(parse_with(&v, false, operand, &next), MOAT_OPTS_CONTINUE);
	assert_int_equal(next, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_set_and_null),
		cmocka_unit_test(test_err_errno),
		cmocka_unit_test(test_err_ssl),
		cmocka_unit_test(test_err_prefix_and_truncation),
		cmocka_unit_test(test_int_parse_ok),
		cmocka_unit_test(test_int_parse_rejects),
		cmocka_unit_test(test_duration_ok),
		cmocka_unit_test(test_duration_rejects),
		cmocka_unit_test(test_duration_ms),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_write_atomic_mode),
		cmocka_unit_test(test_write_atomic_rename_fails),
		cmocka_unit_test(test_write_atomic_write_fails),
		cmocka_unit_test(test_write_atomic_readonly_dir),
		cmocka_unit_test(test_write_atomic_symlink_tmp),
		cmocka_unit_test(test_read_all),
		cmocka_unit_test(test_mkdirs_remove_tree),
		cmocka_unit_test(test_path_join),
		cmocka_unit_test(test_config_parse),
		cmocka_unit_test(test_config_rejects),
		cmocka_unit_test(test_config_long_lines),
		cmocka_unit_test(test_config_continuation),
		cmocka_unit_test(test_config_max_entries),
		cmocka_unit_test(test_config_typed),
		cmocka_unit_test(test_config_check_keys),
		cmocka_unit_test(test_config_split_list),
		cmocka_unit_test(test_config_load),
		cmocka_unit_test(test_log),
		cmocka_unit_test(test_log_fields),
		cmocka_unit_test(test_log_cut),
		cmocka_unit_test(test_text_escape),
		cmocka_unit_test(test_opts_accepted),
		cmocka_unit_test(test_opts_refused),
		cmocka_unit_test(test_buf_grows),
		cmocka_unit_test(test_buf_refuses_over_max),
		cmocka_unit_test(test_spawn_exit_status),
		cmocka_unit_test(test_spawn_signal_death),
		cmocka_unit_test(test_spawn_capture_bound),
		cmocka_unit_test(test_spawn_stdin),
		cmocka_unit_test(test_spawn_exec_failure),
		cmocka_unit_test(test_spawn_child_fn_and_fds),
	};
	return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
