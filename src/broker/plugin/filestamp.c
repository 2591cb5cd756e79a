/* filestamp.c: has a file changed since the plugin last read it?
 *
 * `moat` replaces the policy file and the CRL by rename, so a change shows in the inode,
 * the size, the mtime or the ctime; a stamp of those, remembered per file, is compared with
 * a fresh stat. Used by tick.c (the policy) and crl.c (the CRL).
 */
#include <errno.h>
#include <sys/stat.h>

#include "plugin_internal.h"

static struct mp_file_stamp stamp_of(const struct stat *sb)
{
	return (struct mp_file_stamp){
		.valid = true,
		.dev = sb->st_dev,
		.ino = sb->st_ino,
		.size = sb->st_size,
		.mtime_ns = (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec,
		.ctime_ns = (int64_t)sb->st_ctim.tv_sec * 1000000000 + sb->st_ctim.tv_nsec,
	};
}

static bool stamp_same(const struct mp_file_stamp *a, const struct mp_file_stamp *b)
{
	return a->valid && b->valid && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

int moat_plugin_file_changed(const char *path, struct mp_file_stamp *stamp, bool force,
			     struct moat_err *err)
{
	struct stat sb;
	if (stat(path, &sb) < 0) {
		int e = errno;
		stamp->valid = false;
		return moat_err_errno(err, MOAT_ENOENT, e, "%s", path);
	}
	struct mp_file_stamp now = stamp_of(&sb);
	if (!force && stamp_same(&now, stamp)) {
		return 0;
	}
	/* Remembered before parsing, so a file that does not parse is reported once, not on
	 * every tick; the next change is looked at again. */
	*stamp = now;
	return 1;
}
