/* fsutil.c: atomic writes (temp + fsync + rename + fsync dir), writing a whole buffer to a
 * descriptor, bounded reads, mkdir -p. */
#include "moat/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int moat_path_join(char *buf, size_t size, struct moat_err *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size) {
		return moat_err_set(err, MOAT_EINVAL, "path too long: %.64s...", buf);
	}
	return 0;
}

int moat_fs_write_fd(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			if (n == 0) {
				errno = EIO;
			}
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int dir_of(const char *path, char *out, size_t size)
{
	if (snprintf(out, size, "%s", path) >= (int)size) {
		return -1;
	}
	char *slash = strrchr(out, '/');
	if (!slash) {
		snprintf(out, size, ".");
	} else if (slash == out) {
		out[1] = '\0';
	} else {
		*slash = '\0';
	}
	return 0;
}

int moat_fs_sync_dir(const char *path, struct moat_err *err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	int rc = 0;
	if (fsync(fd) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s: fsync", path);
	}
	close(fd);
	return rc;
}

int moat_fs_write_atomic_opts(const char *path, const void *data, size_t len, mode_t mode,
			      const struct moat_fs_opts *opts, struct moat_err *err)
{
	char tmp[PATH_MAX];
	int rc = moat_path_join(tmp, sizeof(tmp), err, "%s.tmp.%ld", path, (long)getpid());
	if (rc != 0) {
		return rc;
	}
	/* O_EXCL: never write through a file (or link) someone left at the temporary name; a
	 * leftover of our own crashed run is removed once and the create retried. */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0 && errno == EEXIST && unlink(tmp) == 0) {
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	}
	if (fd < 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	/* umask may have narrowed mode; never widen, but make the requested mode exact. */
	if (fchmod(fd, mode) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s: chmod", path);
		goto out;
	}
	if (moat_fs_write_fd(fd, data, len) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s: write", path);
		goto out;
	}
	if (!(opts && opts->no_fsync) && fsync(fd) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s: fsync", path);
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s: close", path);
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s: rename", path);
		goto out;
	}
	if (!(opts && opts->no_fsync)) {
		char dir[PATH_MAX];
		if (dir_of(path, dir, sizeof(dir)) == 0) {
			rc = moat_fs_sync_dir(dir, err);
		}
	}
	return rc;
out:
	if (fd >= 0) {
		close(fd);
	}
	unlink(tmp);
	return rc;
}

int moat_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 struct moat_err *err)
{
	return moat_fs_write_atomic_opts(path, data, len, mode, NULL, err);
}

int moat_fs_read_all(const char *path, size_t max_len, char **out_data, size_t *out_len,
		     struct moat_err *err)
{
	int rc = MOAT_EIO;
	char *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return moat_err_errno(err, errno == ENOENT ? MOAT_ENOENT : MOAT_EIO, errno, "%s",
				      path);
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = moat_err_set(err, MOAT_EINVAL, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > max_len) {
		rc = moat_err_set(err, MOAT_EINVAL, "%s: larger than %zu bytes", path, max_len);
		goto out;
	}
	size_t cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf) {
		rc = moat_err_set(err, MOAT_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	size_t used = 0;
	for (;;) {
		if (used == cap - 1) {
			/* the file grew while we read it: only accept up to max_len */
			char probe;
			ssize_t extra = read(fd, &probe, 1);
			if (extra == 0) {
				break;
			}
			rc = moat_err_set(err, MOAT_EINVAL, "%s: changed while being read", path);
			goto out;
		}
		ssize_t n = read(fd, buf + used, cap - 1 - used);
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			rc = moat_err_errno(err, MOAT_EIO, errno, "%s: read", path);
			goto out;
		}
		if (n == 0) {
			break;
		}
		used += (size_t)n;
	}
	buf[used] = '\0';
	*out_data = buf;
	buf = NULL;
	if (out_len) {
		*out_len = used;
	}
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

int moat_fs_mkdirs(const char *path, mode_t mode, struct moat_err *err)
{
	char buf[PATH_MAX];
	int rc = moat_path_join(buf, sizeof(buf), err, "%s", path);
	if (rc != 0) {
		return rc;
	}
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;
			*p = '\0';
			if (mkdir(buf, mode) == 0) {
				/* as moat_fs_write_atomic: umask may have narrowed mode (077
				 * would hide a release from moatd's account); make it exact */
				if (chmod(buf, mode) != 0) {
					return moat_err_errno(err, MOAT_EIO, errno, "%s: chmod",
							      buf);
				}
			} else if (errno != EEXIST) {
				return moat_err_errno(err, MOAT_EIO, errno, "%s", buf);
			}
			*p = saved;
			if (saved == '\0') {
				break;
			}
		}
	}
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
		return moat_err_set(err, MOAT_EIO, "%s: not a directory", path);
	}
	return 0;
}

static int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p) == 0 || errno == ENOENT ? 0 : -1;
}

int moat_fs_remove_tree(const char *path, struct moat_err *err)
{
	if (!path || !*path || strcmp(path, "/") == 0) {
		return moat_err_set(err, MOAT_EINVAL, "refusing to remove '%s'", path ? path : "");
	}
	if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s: remove", path);
	}
	return 0;
}

bool moat_fs_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}
