/* fsutil.h: file writes that never leave a half-written file behind.
 *
 * moat_fs_write_atomic writes to "<path>.tmp.<pid>" in the same directory with the given
 * mode (created with that mode, never wider), fsyncs it, renames it over path and fsyncs
 * the directory. On any failure the temporary is removed and path is untouched.
 */
#ifndef MOAT_FSUTIL_H
#define MOAT_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "moat/err.h"

/* Maximum size moat reads from any one file it did not write in this process. */
#define MOAT_FILE_MAX_BYTES (16u * 1024u * 1024u)

struct moat_fs_opts {
	bool no_fsync; /* bulk writers that call syncfs() once before commit may skip per-file fsync
			*/
};

MOAT_MUST_CHECK int moat_fs_write_atomic(const char *path, const void *data, size_t len,
					 mode_t mode, struct moat_err *err);
MOAT_MUST_CHECK int moat_fs_write_atomic_opts(const char *path, const void *data, size_t len,
					      mode_t mode, const struct moat_fs_opts *opts,
					      struct moat_err *err);

/* Reads a whole regular file (at most max_len bytes, else MOAT_EINVAL) into a NUL-terminated
 * malloc'd buffer owned by the caller. */
MOAT_MUST_CHECK int moat_fs_read_all(const char *path, size_t max_len, char **out_data,
				     size_t *out_len, struct moat_err *err);

/* mkdir -p with mode for every created component. */
MOAT_MUST_CHECK int moat_fs_mkdirs(const char *path, mode_t mode, struct moat_err *err);

/* rm -rf of a directory tree that moat created; refuses "/" and empty paths. */
MOAT_MUST_CHECK int moat_fs_remove_tree(const char *path, struct moat_err *err);

/* fsync a directory (after rename/unlink inside it). */
MOAT_MUST_CHECK int moat_fs_sync_dir(const char *path, struct moat_err *err);

bool moat_fs_exists(const char *path);

/* Writes all len bytes of buf to fd, continuing after short writes and EINTR (a write(2)
 * that the caller words its own message for). Returns 0, or -1 with errno set (EIO when a
 * write wrote nothing). */
MOAT_MUST_CHECK int moat_fs_write_fd(int fd, const void *buf, size_t len);

/* snprintf into buf that fails (MOAT_EINVAL, message names the result) when truncated. */
MOAT_MUST_CHECK int moat_path_join(char *buf, size_t size, struct moat_err *err, const char *fmt,
				   ...) MOAT_PRINTF(4, 5);

#endif
