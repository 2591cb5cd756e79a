/* read.c: reading a backup archive, an untrusted input (backup.h): the manifest parser,
 * every member checked against it, and restore into a new directory renamed into place. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup_internal.h"
#include "moat/fsutil.h"

#define MANIFEST_LINES_MAX 1000000

bool backup_path_ok(const char *path)
{
	size_t len = strnlen(path, MOAT_BACKUP_PATH_MAX);
	if (len == 0 || len >= MOAT_BACKUP_PATH_MAX) {
		return false;
	}
	const char *p = path;
	for (;;) {
		size_t n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				     "0123456789._+@=-");
		if (n == 0 || n > 255 || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.')) {
			return false;
		}
		if (p[n] == '\0') {
			return true;
		}
		if (p[n] != '/') {
			return false;
		}
		p += n + 1;
	}
}

bool backup_is_key(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t len = strlen(base);
	return strcmp(base, "key.pem") == 0 || (len > 4 && strcmp(base + len - 4, ".key") == 0);
}

struct mentry {
	char type; /* 'd' or 'f' */
	unsigned mode;
	uint64_t size;
	uint8_t sha[32];
	const char *path; /* into the manifest's text */
	bool seen;
};

struct reader {
	struct archive *a;
	int stage_fd; /* -1: check only */
	char *text;   /* the manifest, NUL-terminated lines */
	struct mentry *e;
	size_t n;
	struct moat_backup_stats st;
};

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct mentry *)a)->path, ((const struct mentry *)b)->path);
}

static struct mentry *find(struct reader *r, const char *path)
{
	struct mentry key = {.path = path};
	return bsearch(&key, r->e, r->n, sizeof(*r->e), cmp_entry);
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One manifest line after the first: "d|f MODE SIZE SHA|- PATH". */
static int parse_line(char *line, size_t lineno, struct mentry *out, struct moat_err *err)
{
	char *f[5];
	char *p = line;
	for (int i = 0; i < 4; i++) {
		char *sp = strchr(p, ' ');
		if (!sp) {
			return moat_err_set(err, MOAT_EVERIFY, "manifest line %zu: not 5 fields",
					    lineno);
		}
		*sp = '\0';
		f[i] = p;
		p = sp + 1;
	}
	f[4] = p;
	memset(out, 0, sizeof(*out));
	if ((strcmp(f[0], "d") != 0 && strcmp(f[0], "f") != 0) || strlen(f[1]) != 4 ||
	    strspn(f[1], "01234567") != 4 || strlen(f[2]) == 0 || strlen(f[2]) > 19 ||
	    strspn(f[2], "0123456789") != strlen(f[2]) || (f[2][0] == '0' && f[2][1] != '\0')) {
		return moat_err_set(err, MOAT_EVERIFY, "manifest line %zu: malformed", lineno);
	}
	out->type = f[0][0];
	out->mode = (unsigned)strtoul(f[1], NULL, 8);
	out->size = strtoull(f[2], NULL, 10);
	if (out->type == 'd') {
		if (out->size != 0 || strcmp(f[3], "-") != 0) {
			return moat_err_set(err, MOAT_EVERIFY,
					    "manifest line %zu: a directory has size 0 and no hash",
					    lineno);
		}
	} else {
		if (strlen(f[3]) != 64) {
			return moat_err_set(err, MOAT_EVERIFY,
					    "manifest line %zu: malformed SHA-256", lineno);
		}
		for (int i = 0; i < 32; i++) {
			int hi = hexval(f[3][2 * i]), lo = hexval(f[3][2 * i + 1]);
			if (hi < 0 || lo < 0) {
				return moat_err_set(err, MOAT_EVERIFY,
						    "manifest line %zu: malformed SHA-256", lineno);
			}
			out->sha[i] = (uint8_t)(hi << 4 | lo);
		}
	}
	if (!backup_path_ok(f[4]) || strcmp(f[4], MOAT_BACKUP_MANIFEST) == 0) {
		return moat_err_set(err, MOAT_EVERIFY,
				    "manifest line %zu: not a path a backup holds (relative, "
				    "[A-Za-z0-9._+@=-], no '..')",
				    lineno);
	}
	out->path = f[4];
	return 0;
}

/* r->text (len bytes, read from the archive) into r->e, sorted by path. */
static int parse_manifest(struct reader *r, size_t len, struct moat_err *err)
{
	if (memchr(r->text, '\0', len) || len == 0 || r->text[len - 1] != '\n') {
		return moat_err_set(err, MOAT_EVERIFY,
				    "manifest: not lines of text ending in a newline");
	}
	size_t lines = 0;
	for (size_t i = 0; i < len; i++) {
		lines += r->text[i] == '\n';
	}
	if (lines > MANIFEST_LINES_MAX) {
		return moat_err_set(err, MOAT_EVERIFY, "manifest: too many lines");
	}
	r->e = calloc(lines, sizeof(*r->e));
	if (!r->e) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	char *line = r->text;
	for (size_t i = 0; i < lines; i++) {
		char *nl = strchr(line, '\n');
		*nl = '\0';
		if (i == 0) {
			if (strcmp(line, BACKUP_MAGIC) != 0) {
				return moat_err_set(err, MOAT_EVERIFY,
						    "manifest: not a moat backup (no '%s')",
						    BACKUP_MAGIC);
			}
		} else {
			int rc = parse_line(line, i + 1, &r->e[r->n], err);
			if (rc != 0) {
				return rc;
			}
			r->n++;
		}
		line = nl + 1;
	}
	qsort(r->e, r->n, sizeof(*r->e), cmp_entry);
	for (size_t i = 1; i < r->n; i++) {
		if (strcmp(r->e[i - 1].path, r->e[i].path) == 0) {
			return moat_err_set(err, MOAT_EVERIFY, "manifest: %s listed twice",
					    r->e[i].path);
		}
	}
	return 0;
}

static int corrupt(struct reader *r, const char *what, struct moat_err *err)
{
	return moat_err_set(err, MOAT_EVERIFY, "%s: truncated or corrupt archive (%s)", what,
			    archive_error_string(r->a) ? archive_error_string(r->a) : "no detail");
}

/* The first member, which must be the manifest. */
static int read_manifest(struct reader *r, struct moat_err *err)
{
	struct archive_entry *ae = NULL;
	int ar = archive_read_next_header(r->a, &ae);
	if (ar == ARCHIVE_EOF) {
		return moat_err_set(err, MOAT_EVERIFY, "an empty archive: no manifest");
	}
	if (ar != ARCHIVE_OK) {
		return corrupt(r, "first member", err);
	}
	const char *name = archive_entry_pathname(ae);
	if (!name || strcmp(name, MOAT_BACKUP_MANIFEST) != 0 ||
	    archive_entry_filetype(ae) != AE_IFREG || archive_entry_hardlink(ae)) {
		return moat_err_set(err, MOAT_EVERIFY,
				    "missing manifest: the first member is not %s",
				    MOAT_BACKUP_MANIFEST);
	}
	int64_t size = archive_entry_size(ae);
	if (!archive_entry_size_is_set(ae) || size <= 0 || size > MOAT_BACKUP_MANIFEST_MAX) {
		return moat_err_set(err, MOAT_EVERIFY, "%s: size out of range",
				    MOAT_BACKUP_MANIFEST);
	}
	if (!(r->text = malloc((size_t)size + 1))) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	la_ssize_t got = archive_read_data(r->a, r->text, (size_t)size);
	if (got != size) {
		return corrupt(r, MOAT_BACKUP_MANIFEST, err);
	}
	r->text[size] = '\0';
	return parse_manifest(r, (size_t)size, err);
}

/* A member's path checked for what it must never be, before the manifest is asked. */
static int member_path(struct archive_entry *ae, char *out, size_t size, struct moat_err *err)
{
	const char *name = archive_entry_pathname(ae);
	if (!name || !name[0]) {
		return moat_err_set(err, MOAT_EVERIFY, "a member without a name");
	}
	size_t len = strnlen(name, MOAT_BACKUP_PATH_MAX);
	if (len >= size) {
		return moat_err_set(err, MOAT_EVERIFY, "a member's name is too long");
	}
	memcpy(out, name, len + 1);
	if (archive_entry_filetype(ae) == AE_IFDIR && len > 1 && out[len - 1] == '/') {
		out[len - 1] = '\0';
	}
	if (out[0] == '/') {
		return moat_err_set(err, MOAT_EVERIFY, "%.200s: an absolute path", out);
	}
	if (strcmp(out, "..") == 0 || strncmp(out, "../", 3) == 0 || strstr(out, "/../") ||
	    (len >= 3 && strcmp(out + strlen(out) - 3, "/..") == 0)) {
		return moat_err_set(err, MOAT_EVERIFY, "%.200s: path traversal ('..')", out);
	}
	if (archive_entry_hardlink(ae)) {
		return moat_err_set(err, MOAT_EVERIFY, "%.200s: a hard link", out);
	}
	mode_t type = archive_entry_filetype(ae);
	if (type == AE_IFLNK || archive_entry_symlink(ae)) {
		return moat_err_set(err, MOAT_EVERIFY, "%.200s: a symbolic link", out);
	}
	if (type != AE_IFREG && type != AE_IFDIR) {
		return moat_err_set(err, MOAT_EVERIFY,
				    "%.200s: not a regular file or directory (a device, fifo or "
				    "socket)",
				    out);
	}
	if (!backup_path_ok(out)) {
		return moat_err_set(err, MOAT_EVERIFY,
				    "%.200s: not a path a backup holds ([A-Za-z0-9._+@=-])", out);
	}
	return 0;
}

/* A regular member's content: counted, hashed, written to fd (-1: nowhere). */
static int member_data(struct reader *r, struct mentry *m, int fd, struct moat_err *err)
{
	static uint8_t buf[BACKUP_BLOCK];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return moat_err_set(err, MOAT_ENOMEM, "SHA-256: out of memory");
	}
	uint64_t total = 0;
	int rc = 0;
	for (;;) {
		la_ssize_t n = archive_read_data(r->a, buf, sizeof(buf));
		if (n < 0) {
			rc = corrupt(r, m->path, err);
			break;
		}
		if (n == 0) {
			break;
		}
		total += (uint64_t)n;
		if (total > m->size) {
			rc = moat_err_set(err, MOAT_EVERIFY, "%s: larger than the manifest says",
					  m->path);
			break;
		}
		EVP_DigestUpdate(md, buf, (size_t)n);
		if (fd >= 0 && moat_fs_write_fd(fd, buf, (size_t)n) != 0) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "%s", m->path);
			break;
		}
	}
	uint8_t sha[32];
	unsigned int shalen = 0;
	if (rc == 0 && EVP_DigestFinal_ex(md, sha, &shalen) != 1) {
		rc = moat_err_set(err, MOAT_ECRYPTO, "SHA-256 failed");
	}
	EVP_MD_CTX_free(md);
	if (rc == 0 && total != m->size) {
		rc = moat_err_set(err, MOAT_EVERIFY, "%s: truncated (%llu of %llu bytes)", m->path,
				  (unsigned long long)total, (unsigned long long)m->size);
	}
	if (rc == 0 && memcmp(sha, m->sha, 32) != 0) {
		rc = moat_err_set(err, MOAT_EVERIFY, "%s: SHA-256 differs from the manifest",
				  m->path);
	}
	if (rc == 0 && fd >= 0 && fsync(fd) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", m->path);
	}
	r->st.bytes += total;
	return rc;
}

/* One member after the manifest: checked, and made in the stage unless only checking. */
static int read_member(struct reader *r, struct archive_entry *ae, struct moat_err *err)
{
	char path[MOAT_BACKUP_PATH_MAX];
	int rc = member_path(ae, path, sizeof(path), err);
	if (rc != 0) {
		return rc;
	}
	struct mentry *m = find(r, path);
	char type = archive_entry_filetype(ae) == AE_IFDIR ? 'd' : 'f';
	if (!m) {
		return moat_err_set(err, MOAT_EVERIFY, "%s: not in the manifest", path);
	}
	if (m->seen) {
		return moat_err_set(err, MOAT_EVERIFY, "%s: in the archive twice", path);
	}
	if (m->type != type) {
		return moat_err_set(err, MOAT_EVERIFY, "%s: the manifest lists it as a %s", path,
				    m->type == 'd' ? "directory" : "file");
	}
	m->seen = true;
	char *slash = strrchr(path, '/');
	if (slash) {
		*slash = '\0';
		struct mentry *parent = find(r, path);
		bool ok = parent && parent->type == 'd' && parent->seen;
		*slash = '/';
		if (!ok) {
			return moat_err_set(err, MOAT_EVERIFY, "%s: comes before its directory",
					    path);
		}
	}
	if (type == 'd') {
		r->st.dirs++;
		if (r->stage_fd >= 0 && mkdirat(r->stage_fd, m->path, 0700) != 0) {
			return moat_err_errno(err, MOAT_EIO, errno, "%s", m->path);
		}
		return 0;
	}
	r->st.files++;
	if (!archive_entry_size_is_set(ae) || archive_entry_size(ae) < 0 ||
	    (uint64_t)archive_entry_size(ae) != m->size) {
		return moat_err_set(err, MOAT_EVERIFY, "%s: size differs from the manifest",
				    m->path);
	}
	int fd = -1;
	if (r->stage_fd >= 0) {
		fd = openat(r->stage_fd, m->path,
			    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			return moat_err_errno(err, MOAT_EIO, errno, "%s", m->path);
		}
	}
	rc = member_data(r, m, fd, err);
	if (fd >= 0) {
		close(fd);
	}
	return rc;
}

/* Modes from the manifest once everything is written: files, then directories deepest
 * first (a reverse walk of the sorted paths meets a directory after all it holds). */
static int apply_modes(struct reader *r, struct moat_err *err)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = r->n; i-- > 0;) {
			struct mentry *m = &r->e[i];
			if ((pass == 0) != (m->type == 'f')) {
				continue;
			}
			mode_t mode = m->mode & 0777;
			if (m->type == 'd') {
				mode |= 0700; /* restore must be able to read what it wrote */
			} else if (backup_is_key(m->path)) {
				mode &= 0600;
			}
			if (fchmodat(r->stage_fd, m->path, mode, 0) != 0) {
				return moat_err_errno(err, MOAT_EIO, errno, "%s", m->path);
			}
		}
	}
	return 0;
}

/* The whole archive of r->a: manifest, members, nothing missing. */
static int read_all(struct reader *r, struct moat_err *err)
{
	int rc = read_manifest(r, err);
	struct archive_entry *ae = NULL;
	while (rc == 0) {
		int ar = archive_read_next_header(r->a, &ae);
		if (ar == ARCHIVE_EOF) {
			break;
		}
		if (ar != ARCHIVE_OK) {
			return corrupt(r, "member header", err);
		}
		rc = read_member(r, ae, err);
	}
	if (rc != 0) {
		return rc;
	}
	for (size_t i = 0; i < r->n; i++) {
		if (!r->e[i].seen) {
			return moat_err_set(err, MOAT_EVERIFY,
					    "%s: listed in the manifest but not in the archive "
					    "(truncated?)",
					    r->e[i].path);
		}
	}
	static const char *const needed[] = {"moat.conf", "registry.db"};
	for (size_t i = 0; i < 2; i++) {
		struct mentry *m = find(r, needed[i]);
		if (!m || m->type != 'f') {
			return moat_err_set(err, MOAT_EVERIFY,
					    "not a deployment's backup: no %s in it", needed[i]);
		}
	}
	return r->stage_fd >= 0 ? apply_modes(r, err) : 0;
}

static struct archive *reader_new(struct moat_err *err)
{
	struct archive *a = archive_read_new();
	if (!a || archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(a) != ARCHIVE_OK) {
		archive_read_free(a);
		moat_err_set(err, MOAT_ENOMEM, "libarchive: cannot set up a reader");
		return NULL;
	}
	return a;
}

static void reader_free(struct reader *r, struct moat_backup_stats *out)
{
	if (out) {
		*out = r->st;
	}
	archive_read_free(r->a);
	free(r->e);
	free(r->text);
}

int moat_backup_check_memory(const void *data, size_t len, struct moat_backup_stats *out,
			     struct moat_err *err)
{
	struct reader r = {.stage_fd = -1};
	if (!(r.a = reader_new(err))) {
		return MOAT_ENOMEM;
	}
	int rc;
	if (archive_read_open_memory(r.a, data, len) != ARCHIVE_OK) {
		rc = corrupt(&r, "archive", err);
	} else {
		rc = read_all(&r, err);
	}
	reader_free(&r, out);
	return rc;
}

/* Reads path into stage_fd (-1: check only). */
static int read_file(const char *path, int stage_fd, struct moat_backup_stats *out,
		     struct moat_err *err)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		return moat_err_errno(err, errno == ENOENT ? MOAT_ENOENT : MOAT_EIO, errno, "%s",
				      path);
	}
	struct reader r = {.stage_fd = stage_fd};
	int rc;
	if (!(r.a = reader_new(err))) {
		rc = MOAT_ENOMEM;
	} else if (archive_read_open_fd(r.a, fd, BACKUP_BLOCK) != ARCHIVE_OK) {
		rc = corrupt(&r, "archive", err);
	} else {
		rc = read_all(&r, err);
	}
	if (r.a) {
		reader_free(&r, out);
	}
	close(fd);
	if (rc != 0) {
		moat_err_prefix(err, "%s", path);
	}
	return rc;
}

int moat_backup_check(const char *path, struct moat_backup_stats *out, struct moat_err *err)
{
	return read_file(path, -1, out, err);
}

/* target must not exist, or be an empty directory (*out_exists then). */
static int target_free(const char *target, bool *out_exists, struct moat_err *err)
{
	struct stat st;
	*out_exists = false;
	if (lstat(target, &st) != 0) {
		return errno == ENOENT ? 0 : moat_err_errno(err, MOAT_EIO, errno, "%s", target);
	}
	if (!S_ISDIR(st.st_mode)) {
		return moat_err_set(err, MOAT_EEXIST, "%s: exists and is not a directory", target);
	}
	DIR *dir = opendir(target);
	if (!dir) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", target);
	}
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			rc = moat_err_set(err, MOAT_EEXIST,
					  "%s: not empty; restore only into a new or empty "
					  "directory",
					  target);
			break;
		}
	}
	closedir(dir);
	*out_exists = true;
	return rc;
}

/* The restored stage opened as a deployment (its registry must be moat's) and, run as
 * root, given the ownership model. */
static int stage_settle(const char *stage, struct moat_err *err)
{
	struct moat_deploy *d = NULL;
	int rc = moat_deploy_open(stage, MOAT_DEPLOY_WRITE, &d, err);
	if (rc == 0) {
		rc = moat_deploy_own(d, MOAT_DEPLOY_OWN_CREATE, err);
	}
	moat_deploy_close(d);
	if (rc != 0) {
		moat_err_prefix(err, "the restored deployment");
	}
	return rc;
}

int moat_backup_restore(const char *path, const char *target_arg, struct moat_backup_stats *out,
			struct moat_err *err)
{
	bool exists = false;
	char stage[PATH_MAX], target[PATH_MAX];
	/* "dir/" names dir: the stage goes beside it, never inside */
	int rc = moat_path_join(target, sizeof(target), err, "%s", target_arg);
	for (size_t n = strlen(target); rc == 0 && n > 1 && target[n - 1] == '/'; n--) {
		target[n - 1] = '\0';
	}
	if (rc == 0 && strcmp(target, "/") == 0) {
		rc = moat_err_set(err, MOAT_EEXIST, "/: not a restore target");
	}
	if (rc == 0) {
		rc = target_free(target, &exists, err);
	}
	if (rc != 0 ||
	    (rc = moat_path_join(stage, sizeof(stage), err, "%s.restore-XXXXXX", target)) != 0) {
		return rc;
	}
	if (!mkdtemp(stage)) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", stage);
	}
	int stage_fd = open(stage, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (stage_fd < 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", stage);
	} else {
		rc = read_file(path, stage_fd, out, err);
		if (rc == 0 && fchmod(stage_fd, 0755) != 0) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "%s", stage);
		}
		close(stage_fd);
	}
	if (rc == 0) {
		rc = stage_settle(stage, err);
	}
	if (rc == 0 && exists && rmdir(target) != 0) {
		rc = moat_err_errno(err, MOAT_EEXIST, errno, "%s", target);
	}
	if (rc == 0 && rename(stage, target) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", target);
		if (exists && mkdir(target, 0700) != 0) {
			/* best effort: the empty target was removed for the rename */
		}
	}
	if (rc != 0) {
		struct moat_err ignored = {0};
		if (moat_fs_remove_tree(stage, &ignored) != 0) {
			/* best effort: the result stands */
		}
		return rc;
	}
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", target);
	struct moat_err ignored = {0};
	if (moat_fs_sync_dir(dirname(parent), &ignored) != 0) {
		/* best effort: the result stands */
	}
	return 0;
}
