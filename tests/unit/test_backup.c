/* test_backup.c: moat backup and restore (src/backup): a round trip of a real deployment,
 * and every refusal of the archive reader, each on an archive built here with libarchive,
 * with the message it must give and nothing left behind. */
#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

#include "moat/backup.h"
#include "moat/deploy.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"
#include "testutil.h"

#define PASS "unit-test-passphrase"

struct fixture {
	char root[TU_TMPDIR_MAX]; /* first: tu_state_make */
	char dir[TU_TMPDIR_MAX + 2];
};

static int setup(void **state)
{
	struct moat_err err = {0};
	assert_int_equal(tu_state_make(state, sizeof(struct fixture), "backup"), 0);
	struct fixture *f = *state;
	snprintf(f->dir, sizeof(f->dir), "%s/d", f->root);
	struct moat_init_opts io = {.dir = f->dir, .name = "unit", .now = moat_time_now()};
	assert_int_equal(moat_deploy_init(&io, PASS, &err), 0);
	return 0;
}

static int teardown(void **state)
{
	return tu_state_free(state);
}

/* ---- archives built by hand ---- */

struct member {
	const char *name;
	char type; /* f file, d dir, l symlink, h hard link, c char device */
	const char *data;
};

static const struct member base[] = {
	{"moat.conf", 'f', "[deployment]\nformat = moat/1\nname = t\n"},
	{"registry.db", 'f', "SQLite format 3"},
	{"pki", 'd', NULL},
	{"pki/ca.key", 'f', "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"},
};
#define NBASE (sizeof(base) / sizeof(base[0]))

static void sha_hex(const char *data, char out[65])
{
	unsigned char md[32];
	unsigned int len = 0;
	assert_int_equal(EVP_Digest(data, strlen(data), md, &len, EVP_sha256(), NULL), 1);
	for (int i = 0; i < 32; i++) {
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	}
}

/* The manifest of members m (their true sizes and hashes). */
static void manifest_of(const struct member *m, size_t n, char *out, size_t size)
{
	size_t len = (size_t)snprintf(out, size, "moat-backup 1\n");
	for (size_t i = 0; i < n; i++) {
		char hex[65];
		if (m[i].type == 'd') {
			len += (size_t)snprintf(out + len, size - len, "d 0755 0 - %s\n",
						m[i].name);
		} else {
			sha_hex(m[i].data, hex);
			len += (size_t)snprintf(out + len, size - len, "f 0600 %zu %s %s\n",
						strlen(m[i].data), hex, m[i].name);
		}
	}
}

static void add(struct archive *a, const char *name, char type, const char *data)
{
	struct archive_entry *ae = archive_entry_new();
	archive_entry_set_pathname(ae, name);
	archive_entry_set_perm(ae, 0600);
	switch (type) {
	case 'd':
		archive_entry_set_filetype(ae, AE_IFDIR);
		break;
	case 'l':
		archive_entry_set_filetype(ae, AE_IFLNK);
		archive_entry_set_symlink(ae, data);
		break;
	case 'h':
		archive_entry_set_filetype(ae, AE_IFREG);
		archive_entry_set_hardlink(ae, data);
		break;
	case 'c':
		archive_entry_set_filetype(ae, AE_IFCHR);
		archive_entry_set_rdev(ae, makedev(1, 3));
		break;
	default:
		archive_entry_set_filetype(ae, AE_IFREG);
		archive_entry_set_size(ae, (la_int64_t)strlen(data));
	}
	assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
	if (type == 'f') {
		assert_int_equal(archive_write_data(a, data, strlen(data)),
				 (la_ssize_t)strlen(data));
	}
	archive_entry_free(ae);
}

static char arch[1 << 16];

/* An archive in arch: the manifest text first (NULL: none), then members m. */
static size_t build(const char *manifest, const struct member *m, size_t n)
{
	struct archive *a = archive_write_new();
	size_t used = 0;
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_memory(a, arch, sizeof(arch), &used), ARCHIVE_OK);
	if (manifest) {
		add(a, MOAT_BACKUP_MANIFEST, 'f', manifest);
	}
	for (size_t i = 0; i < n; i++) {
		add(a, m[i].name, m[i].type, m[i].data);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	return used;
}

static void expect_refused(size_t len, const char *msg)
{
	struct moat_err err = {0};
	struct moat_backup_stats st;
	int rc = moat_backup_check_memory(arch, len, &st, &err);
	if (rc == 0) {
		fail_msg("accepted; expected '%s'", msg);
	}
	if (!strstr(err.msg, msg)) {
		fail_msg("'%s' does not say '%s'", err.msg, msg);
	}
}

/* base plus one more member, the manifest listing base only (or also it: listed). */
static size_t with_extra(struct member extra, bool listed)
{
	struct member m[NBASE + 1];
	memcpy(m, base, sizeof(base));
	m[NBASE] = extra;
	char man[4096];
	manifest_of(m, listed ? NBASE + 1 : NBASE, man, sizeof(man));
	return build(man, m, NBASE + 1);
}

static void test_reader_refusals(void **state)
{
	(void)state;
	char man[4096];
	struct moat_err err = {0};
	manifest_of(base, NBASE, man, sizeof(man));
	size_t len = build(man, base, NBASE);
	struct moat_backup_stats st;
	assert_int_equal(moat_backup_check_memory(arch, len, &st, &err), 0);
	assert_int_equal(st.files, 3);
	assert_int_equal(st.dirs, 1);

	/* truncated: any cut of a good archive */
	for (size_t cut = 1; cut < len; cut += len / 7 + 1) {
		assert_int_not_equal(moat_backup_check_memory(arch, len - cut, &st, &err), 0);
	}
	expect_refused(len / 2, "truncated");
	/* missing manifest, or not first */
	len = build(NULL, base, NBASE);
	expect_refused(len, "missing manifest");
	expect_refused(build(NULL, NULL, 0), "no manifest");
	/* path traversal, absolute paths, links, devices */
	expect_refused(with_extra((struct member){"pki/../../evil", 'f', "x"}, false),
		       "path traversal");
	expect_refused(with_extra((struct member){"../evil", 'f', "x"}, false), "path traversal");
	expect_refused(with_extra((struct member){"/etc/evil", 'f', "x"}, false),
		       "an absolute path");
	expect_refused(with_extra((struct member){"pki/l", 'l', "/etc/shadow"}, false),
		       "a symbolic link");
	expect_refused(with_extra((struct member){"pki/h", 'h', "moat.conf"}, false),
		       "a hard link");
	expect_refused(with_extra((struct member){"pki/dev", 'c', NULL}, false),
		       "not a regular file or directory");
	expect_refused(with_extra((struct member){"pki/a b", 'f', "x"}, false),
		       "not a path a backup holds");
	/* manifest and members disagree */
	expect_refused(with_extra((struct member){"extra", 'f', "x"}, false),
		       "not in the manifest");
	expect_refused(with_extra(base[0], false), "in the archive twice");
	struct member m[NBASE];
	memcpy(m, base, sizeof(base));
	m[0].data = "[deployment]\nformat = moat/1\nname = u\n"; /* same size */
	expect_refused(build(man, m, NBASE), "SHA-256 differs");
	m[0].data = "[deployment]\n";
	expect_refused(build(man, m, NBASE), "size differs");
	expect_refused(build(man, base, NBASE - 1),
		       "listed in the manifest but not in the archive");
	struct member order[] = {base[0], base[1], base[3], base[2]};
	expect_refused(build(man, order, NBASE), "comes before its directory");
	struct member dir_as_file[] = {base[0], base[1], {"pki", 'f', "x"}, base[3]};
	expect_refused(build(man, dir_as_file, NBASE), "lists it as a directory");
	/* the manifest itself */
	expect_refused(build("moat-backup 2\n", base, NBASE), "not a moat backup");
	expect_refused(build("moat-backup 1", base, NBASE), "ending in a newline");
	char twice[8192];
	snprintf(twice, sizeof(twice), "%sd 0755 0 - pki\n", man);
	expect_refused(build(twice, base, NBASE), "listed twice");
	snprintf(twice, sizeof(twice), "%sf 0600 1 %064d x\n", man, 0);
	assert_int_equal(moat_backup_check_memory(arch, build(twice, base, NBASE), &st, &err),
			 MOAT_EVERIFY); /* listed, absent */
	static const char *const bad_lines[] = {
		"f 0600 1 zz x\n", "x 0600 1 - x\n", "f 600 1 - x\n",	  "f 0600 01 - x\n",
		"d 0755 1 - x\n",  "f 0600 1\n",     "d 0755 0 - ../x\n", "d 0755 0 - /x\n",
	};
	for (size_t i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
		snprintf(twice, sizeof(twice), "%s%s", man, bad_lines[i]);
		expect_refused(build(twice, base, NBASE), "manifest line 6");
	}
	/* not a deployment's: no registry.db */
	struct member noreg[] = {base[0], base[2], base[3]};
	manifest_of(noreg, 3, man, sizeof(man));
	expect_refused(build(man, noreg, 3), "no registry.db");
}

/* A real deployment round trip, the refusals of the target, and what a refused restore
 * leaves (nothing). */
static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	char archive[600], target[600], p[700];
	snprintf(archive, sizeof(archive), "%s/b.tgz", f->root);
	snprintf(target, sizeof(target), "%s/r", f->root);
	assert_int_equal(moat_deploy_open(f->dir, MOAT_DEPLOY_WRITE, &d, &err), 0);
	struct moat_backup_stats st;
	/* never inside the deployment */
	snprintf(p, sizeof(p), "%s/b.tgz", f->dir);
	assert_int_equal(moat_backup_write(d, p, &st, &err), MOAT_EINVAL);
	assert_false(moat_fs_exists(p));
	assert_int_equal(moat_backup_write(d, archive, &st, &err), 0);
	moat_deploy_close(d);
	struct stat sb;
	assert_int_equal(stat(archive, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(tu_dir_count(f->root, ".moat-backup"), 0); /* no temporary left */
	assert_int_equal(moat_backup_check(archive, &st, &err), 0);

	/* a non-empty target is refused and left alone */
	assert_int_equal(mkdir(target, 0700), 0);
	snprintf(p, sizeof(p), "%s/keep", target);
	tu_write_text(p, "x");
	assert_int_equal(moat_backup_restore(archive, target, &st, &err), MOAT_EEXIST);
	assert_non_null(strstr(err.msg, "not empty"));
	assert_true(moat_fs_exists(p));
	assert_int_equal(unlink(p), 0);
	/* a corrupt archive: the empty target stays empty, no stage is left */
	size_t len = 0;
	char *data = tu_read_file(archive, 1 << 20, &len);
	snprintf(p, sizeof(p), "%s/cut.tgz", f->root);
	tu_write_file(p, data, len - 40, 0600);
	free(data);
	assert_int_not_equal(moat_backup_restore(p, target, &st, &err), 0);
	assert_int_equal(tu_dir_count(target, NULL), 0);
	assert_int_equal(tu_dir_count(f->root, "r.restore-"), 0);

	/* restored into the empty directory ("r/": beside it, not inside): a deployment
	 * again, keys 0600 */
	snprintf(p, sizeof(p), "%s/", target);
	assert_int_equal(moat_backup_restore(archive, p, &st, &err), 0);
	snprintf(p, sizeof(p), "%s/pki/ca.key", target);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(moat_deploy_open(target, MOAT_DEPLOY_READ, &d, &err), 0);
	moat_deploy_close(d);
	assert_int_equal(tu_dir_count(f->root, "r.restore-"), 0);
	/* and not twice */
	assert_int_equal(moat_backup_restore(archive, target, &st, &err), MOAT_EEXIST);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reader_refusals),
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
