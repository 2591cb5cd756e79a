/* write.c: `moat backup`: the deployment's files and a consistent copy of its registry in
 * one archive (backup.h), written beside its destination and renamed into place. */
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
#include <time.h>
#include <unistd.h>

#include "backup_internal.h"
#include "moat/buf.h"
#include "moat/fsutil.h"
#include "moat/registry.h"

#define REGISTRY_NAME "registry.db"

struct wentry {
	char type; /* 'd' or 'f' */
	mode_t mode;
	uint64_t size;
	int64_t mtime;
	uint8_t sha[32];
	char *path; /* in the archive */
	char *src;  /* where it is read from (files) */
};

struct writer {
	const char *dir; /* the deployment */
	struct wentry *e;
	size_t n, cap;
	struct archive *a;
	uint8_t buf[BACKUP_BLOCK];
};

/* What stays out at the deployment's top level: run/ and log/ (the running processes'),
 * and the registry's live files (registry.db comes from the online backup). */
static bool skipped_top(const char *name)
{
	static const char *const skip[] = {"run",
					   "log",
					   REGISTRY_NAME,
					   REGISTRY_NAME "-wal",
					   REGISTRY_NAME "-shm",
					   REGISTRY_NAME "-journal",
					   NULL};
	for (size_t i = 0; skip[i]; i++) {
		if (strcmp(name, skip[i]) == 0) {
			return true;
		}
	}
	return false;
}

/* SHA-256 and size of the file at src, read through an O_NOFOLLOW descriptor; when
 * w->a is set, also written to the archive as the current member's data. */
static int file_pass(struct writer *w, const char *src, uint8_t sha[32], uint64_t *size,
		     struct moat_err *err)
{
	int fd = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", src);
	}
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int rc = 0;
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		rc = moat_err_set(err, MOAT_ENOMEM, "SHA-256: out of memory");
	}
	*size = 0;
	while (rc == 0) {
		ssize_t n = read(fd, w->buf, sizeof(w->buf));
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "%s", src);
			break;
		}
		if (n == 0) {
			break;
		}
		*size += (uint64_t)n;
		EVP_DigestUpdate(md, w->buf, (size_t)n);
		if (w->a && archive_write_data(w->a, w->buf, (size_t)n) != n) {
			rc = moat_err_set(err, MOAT_EIO, "writing the archive: %s",
					  archive_error_string(w->a));
		}
	}
	unsigned int len = 0;
	if (rc == 0 && EVP_DigestFinal_ex(md, sha, &len) != 1) {
		rc = moat_err_set(err, MOAT_ECRYPTO, "SHA-256 failed");
	}
	EVP_MD_CTX_free(md);
	close(fd);
	return rc;
}

static int add(struct writer *w, char type, const struct stat *st, const char *path,
	       const char *src, struct moat_err *err)
{
	if (!backup_path_ok(path)) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s/%s: a name a backup cannot hold (only [A-Za-z0-9._+@=-])",
				    w->dir, path);
	}
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 256;
		struct wentry *e = realloc(w->e, cap * sizeof(*e));
		if (!e) {
			return moat_err_set(err, MOAT_ENOMEM, "out of memory");
		}
		w->e = e;
		w->cap = cap;
	}
	struct wentry *e = &w->e[w->n];
	memset(e, 0, sizeof(*e));
	e->type = type;
	e->mode = st->st_mode & 07777;
	e->mtime = st->st_mtime;
	if (!(e->path = strdup(path)) || (src && !(e->src = strdup(src)))) {
		free(e->path);
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	w->n++;
	if (type == 'f') {
		return file_pass(w, src, e->sha, &e->size, err);
	}
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in directory abs, sorted (the archive is the same for the same tree). */
static int list_dir(const char *abs, char ***out, size_t *out_n, struct moat_err *err)
{
	DIR *dir = opendir(abs);
	if (!dir) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", abs);
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			char **grown = realloc(names, cap * sizeof(*names));
			if (!grown) {
				rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
				break;
			}
			names = grown;
		}
		if (!(names[n] = strdup(de->d_name))) {
			rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
			break;
		}
		n++;
	}
	closedir(dir);
	if (rc != 0) {
		for (size_t i = 0; i < n; i++) {
			free(names[i]);
		}
		free(names);
		return rc;
	}
	if (n > 1) {
		qsort(names, n, sizeof(*names), cmp_name);
	}
	*out = names;
	*out_n = n;
	return rc;
}

/* Everything under rel ("" : the deployment itself), directories before their contents. */
static int walk(struct writer *w, const char *rel, int depth, struct moat_err *err)
{
	char abs[PATH_MAX];
	int rc = moat_path_join(abs, sizeof(abs), err, "%s%s%s", w->dir, rel[0] ? "/" : "", rel);
	char **names = NULL;
	size_t n = 0;
	if (rc != 0 || depth > 32 || (rc = list_dir(abs, &names, &n, err)) != 0) {
		return rc ? rc : moat_err_set(err, MOAT_EINVAL, "%s: nested too deep", abs);
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		char path[MOAT_BACKUP_PATH_MAX], src[PATH_MAX];
		struct stat st;
		if (depth == 0 && skipped_top(names[i])) {
			continue;
		}
		if ((rc = moat_path_join(path, sizeof(path), err, "%s%s%s", rel, rel[0] ? "/" : "",
					 names[i])) != 0 ||
		    (rc = moat_path_join(src, sizeof(src), err, "%s/%s", w->dir, path)) != 0) {
			break;
		}
		if (lstat(src, &st) != 0) {
			rc = errno == ENOENT ? 0 : moat_err_errno(err, MOAT_EIO, errno, "%s", src);
		} else if (S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode)) {
			continue; /* a running process's, not the deployment's */
		} else if (S_ISLNK(st.st_mode)) {
			rc = moat_err_set(err, MOAT_EINVAL,
					  "%s: a symbolic link (moat writes none; remove it or "
					  "replace it by its file)",
					  src);
		} else if (S_ISDIR(st.st_mode)) {
			if ((rc = add(w, 'd', &st, path, NULL, err)) == 0) {
				rc = walk(w, path, depth + 1, err);
			}
		} else if (S_ISREG(st.st_mode)) {
			rc = add(w, 'f', &st, path, src, err);
		} else {
			rc = moat_err_set(err, MOAT_EINVAL, "%s: not a file or directory", src);
		}
	}
	for (size_t i = 0; i < n; i++) {
		free(names[i]);
	}
	free(names);
	return rc;
}

static int manifest_text(const struct writer *w, struct moat_buf *m, struct moat_err *err)
{
	moat_buf_printf(m, "%s\n", BACKUP_MAGIC);
	for (size_t i = 0; i < w->n && m->rc == 0; i++) {
		const struct wentry *e = &w->e[i];
		char hex[65] = "-";
		if (e->type == 'f') {
			for (int j = 0; j < 32; j++) {
				snprintf(hex + 2 * j, 3, "%02x", e->sha[j]);
			}
		}
		moat_buf_printf(m, "%c %04o %llu %s %s\n", e->type, (unsigned)(e->mode & 07777),
				(unsigned long long)e->size, hex, e->path);
	}
	if (m->rc != 0) {
		return moat_err_set(err, m->rc, "the manifest: %s",
				    m->rc == MOAT_ENOMEM ? "out of memory" : "too many members");
	}
	return 0;
}

static int header(struct writer *w, const char *path, char type, mode_t mode, uint64_t size,
		  int64_t mtime, struct moat_err *err)
{
	struct archive_entry *ae = archive_entry_new();
	if (!ae) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	archive_entry_set_pathname(ae, path);
	archive_entry_set_filetype(ae, type == 'd' ? AE_IFDIR : AE_IFREG);
	archive_entry_set_perm(ae, mode & 07777);
	archive_entry_set_size(ae, type == 'd' ? 0 : (la_int64_t)size);
	archive_entry_set_mtime(ae, mtime, 0);
	int ar = archive_write_header(w->a, ae);
	archive_entry_free(ae);
	if (ar != ARCHIVE_OK) {
		return moat_err_set(err, MOAT_EIO, "writing the archive: %s: %s", path,
				    archive_error_string(w->a));
	}
	return 0;
}

/* The manifest, then every member, each file re-hashed as it is written: a file that
 * changed since the manifest was made fails the backup. */
static int write_archive(struct writer *w, int fd, struct moat_err *err)
{
	struct moat_buf m;
	moat_buf_init(&m, MOAT_BACKUP_MANIFEST_MAX);
	int rc = manifest_text(w, &m, err);
	if (rc != 0) {
		moat_buf_free(&m);
		return rc;
	}
	if (!(w->a = archive_write_new()) || archive_write_set_format_pax_restricted(w->a) ||
	    archive_write_add_filter_gzip(w->a) || archive_write_open_fd(w->a, fd)) {
		rc = moat_err_set(err, MOAT_EIO, "libarchive: %s",
				  w->a ? archive_error_string(w->a) : "out of memory");
	}
	if (rc == 0 &&
	    (rc = header(w, MOAT_BACKUP_MANIFEST, 'f', 0600, m.len, time(NULL), err)) == 0 &&
	    archive_write_data(w->a, m.data, m.len) != (la_ssize_t)m.len) {
		rc = moat_err_set(err, MOAT_EIO, "writing the archive: %s",
				  archive_error_string(w->a));
	}
	moat_buf_free(&m);
	for (size_t i = 0; i < w->n && rc == 0; i++) {
		const struct wentry *e = &w->e[i];
		if ((rc = header(w, e->path, e->type, e->mode, e->size, e->mtime, err)) != 0 ||
		    e->type == 'd') {
			continue;
		}
		uint8_t sha[32];
		uint64_t size = 0;
		if ((rc = file_pass(w, e->src, sha, &size, err)) == 0 &&
		    (size != e->size || memcmp(sha, e->sha, 32) != 0)) {
			rc = moat_err_set(err, MOAT_ESTATE,
					  "%s: changed while the backup was made; try again",
					  e->src);
		}
	}
	if (w->a && archive_write_close(w->a) != ARCHIVE_OK && rc == 0) {
		rc = moat_err_set(err, MOAT_EIO, "writing the archive: %s",
				  archive_error_string(w->a));
	}
	archive_write_free(w->a);
	w->a = NULL;
	return rc;
}

/* Refuses a destination inside the deployment (the backup would back itself up). */
static int dest_check(const char *dir, const char *path, char tmpdir[PATH_MAX],
		      struct moat_err *err)
{
	char copy[PATH_MAX], real[PATH_MAX];
	snprintf(copy, sizeof(copy), "%s", path);
	if (!realpath(dirname(copy), real)) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	size_t len = strlen(dir);
	if (strncmp(real, dir, len) == 0 && (real[len] == '/' || real[len] == '\0')) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: inside the deployment; write the backup elsewhere", path);
	}
	int rc = moat_path_join(tmpdir, PATH_MAX, err, "%s/.moat-backup-XXXXXX", real);
	if (rc == 0 && !mkdtemp(tmpdir)) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", tmpdir);
	}
	return rc;
}

static int finish(const char *tmp, const char *path, int fd, struct moat_err *err)
{
	if (fchmod(fd, 0600) != 0 || fsync(fd) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", tmp);
	}
	if (rename(tmp, path) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	char copy[PATH_MAX];
	snprintf(copy, sizeof(copy), "%s", path);
	return moat_fs_sync_dir(dirname(copy), err);
}

int moat_backup_write(struct moat_deploy *d, const char *path, struct moat_backup_stats *out,
		      struct moat_err *err)
{
	/* before anything is made: the archive holds registry.db, and a registry on
	 * PostgreSQL has none (its own tool copies it consistently) */
	if (moat_deploy_registry_is_url(d)) {
		return moat_err_set(err, MOAT_EINVAL, "%s", MOAT_BACKUP_PG_REFUSED);
	}
	struct writer *w = calloc(1, sizeof(*w));
	if (!w) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	w->dir = moat_deploy_dir(d);
	char tmpdir[PATH_MAX], db[PATH_MAX], tmp[PATH_MAX];
	int fd = -1;
	int rc = dest_check(w->dir, path, tmpdir, err);
	if (rc != 0) {
		free(w);
		return rc;
	}
	struct stat st = {.st_mode = S_IFREG | 0600, .st_mtime = time(NULL)};
	if ((rc = moat_path_join(db, sizeof(db), err, "%s/%s", tmpdir, REGISTRY_NAME)) == 0 &&
	    (rc = moat_path_join(tmp, sizeof(tmp), err, "%s/archive", tmpdir)) == 0 &&
	    (rc = walk(w, "", 0, err)) == 0 &&
	    (rc = moat_registry_backup(moat_deploy_registry(d), db, err)) == 0 &&
	    (rc = add(w, 'f', &st, REGISTRY_NAME, db, err)) == 0) {
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "%s", tmp);
		}
	}
	if (rc == 0 && (rc = write_archive(w, fd, err)) == 0) {
		rc = finish(tmp, path, fd, err);
	}
	if (fd >= 0) {
		close(fd);
	}
	if (out) {
		memset(out, 0, sizeof(*out));
		for (size_t i = 0; i < w->n; i++) {
			out->files += w->e[i].type == 'f';
			out->dirs += w->e[i].type == 'd';
			out->bytes += w->e[i].size;
		}
	}
	for (size_t i = 0; i < w->n; i++) {
		free(w->e[i].path);
		free(w->e[i].src);
	}
	free(w->e);
	free(w);
	struct moat_err ignored = {0};
	if (moat_fs_remove_tree(tmpdir, &ignored) != 0) {
		/* best effort: the result stands */
	}
	return rc;
}
