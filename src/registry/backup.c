/* backup.c: a consistent copy of an open registry while others use it (SQLite's online
 * backup API), for `moat backup`. SQLite's alone: the page copy has no statement-layer
 * equivalent, so this file stays on sqlite3_* and refuses a PostgreSQL registry. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "registry_internal.h"

#define BACKUP_BUSY_TRIES 200 /* 200 x 50 ms: a writer holds the database at most 10 s */
#define BACKUP_BUSY_NS (50L * 1000 * 1000)

int moat_registry_backup(struct moat_registry *reg, const char *dest_path, struct moat_err *err)
{
	/* a page copy is SQLite's alone: a PostgreSQL registry has its own tools (db.h) */
	if (reg_db(reg)->backend != RDB_SQLITE) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: a PostgreSQL registry is backed up with pg_dump, not by "
				    "moat backup",
				    reg->path);
	}
	/* created here, 0600, exclusively: the copy holds what the registry holds */
	int fd = open(dest_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", dest_path);
	}
	close(fd);
	sqlite3 *dest = NULL;
	int rc = sqlite3_open_v2(dest_path, &dest,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
				 NULL);
	if (rc != SQLITE_OK) {
		rc = moat_err_set(err, MOAT_EDB, "%s: %s", dest_path,
				  dest ? sqlite3_errmsg(dest) : "cannot open");
		goto out;
	}
	sqlite3_backup *b = sqlite3_backup_init(dest, "main", reg->db, "main");
	if (!b) {
		rc = moat_err_set(err, MOAT_EDB, "%s: backup of %s: %s", dest_path, reg->path,
				  sqlite3_errmsg(dest));
		goto out;
	}
	/* All pages in one step: the copy is one read transaction, so one snapshot. */
	int step = SQLITE_OK;
	for (int i = 0; i < BACKUP_BUSY_TRIES; i++) {
		step = sqlite3_backup_step(b, -1);
		if (step != SQLITE_BUSY && step != SQLITE_LOCKED) {
			break;
		}
		struct timespec ts = {0, BACKUP_BUSY_NS};
		nanosleep(&ts, NULL);
	}
	sqlite3_backup_finish(b);
	if (step != SQLITE_DONE) {
		rc = moat_err_set(err, step == SQLITE_FULL ? MOAT_ENOSPC : MOAT_EDB,
				  "%s: backup of %s: %s", dest_path, reg->path,
				  sqlite3_errstr(step));
		goto out;
	}
	/* the copy is a standalone file: no -wal beside it */
	if ((rc = sqlite3_exec(dest, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL)) !=
	    SQLITE_OK) {
		rc = moat_err_set(err, MOAT_EDB, "%s: %s", dest_path, sqlite3_errmsg(dest));
		goto out;
	}
	rc = 0;
out:
	if (dest && sqlite3_close(dest) != SQLITE_OK && rc == 0) {
		rc = moat_err_set(err, MOAT_EDB, "%s: close failed", dest_path);
	}
	if (rc != 0) {
		unlink(dest_path);
	}
	return rc;
}
