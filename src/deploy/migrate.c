/* migrate.c: a stopped deployment's registry.db moved into PostgreSQL (deploy.h,
 * moat_deploy_registry_migrate): the copy and its proof are the registry's
 * (moat_registry_copy); here, the deployment around them: run/moat.lock held throughout,
 * the caller's check that nothing runs, then moat.conf's [registry] url and the old file
 * kept aside, in that order, so every failure before leaves both as they were. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "moat/deploy.h"
#include "moat/fsutil.h"

#define CONF_MAX (1024 * 1024)

static int take_lock(const char *dir, int *out_fd, struct moat_err *err)
{
	char path[PATH_MAX];
	int rc;
	if ((rc = moat_path_join(path, sizeof(path), err, "%s/run", dir)) != 0 ||
	    (rc = moat_fs_mkdirs(path, 0755, err)) != 0 ||
	    (rc = moat_path_join(path, sizeof(path), err, "%s/run/moat.lock", dir)) != 0) {
		return rc;
	}
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK) {
			return moat_err_set(err, MOAT_ESTATE,
					    "run/moat.lock is held: a moat command or moatd is "
					    "changing the deployment; stop it and retry");
		}
		return moat_err_errno(err, MOAT_EIO, e, "%s: lock", path);
	}
	*out_fd = fd;
	return 0;
}

/* moat.conf with the [registry] section added. */
static int conf_with_url(const char *old, size_t len, const char *url, char **out, size_t *out_len,
			 struct moat_err *err)
{
	static const char fmt[] = "%s%s\n[registry]\n# the registry on PostgreSQL (moat registry "
				  "migrate; its password in ~/.pgpass or PGPASSFILE)\nurl = %s\n";
	const char *nl = len > 0 && old[len - 1] != '\n' ? "\n" : "";
	int n = snprintf(NULL, 0, fmt, old, nl, url);
	char *text = n > 0 ? malloc((size_t)n + 1) : NULL;
	if (!text) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	snprintf(text, (size_t)n + 1, fmt, old, nl, url);
	*out = text;
	*out_len = (size_t)n;
	return 0;
}

/* Renames registry.db and its -wal and -shm (a WAL a stopped writer left must stay with its
 * file) to kept; undoes what it did on failure. */
static int keep_old(const char *db, const char *kept, struct moat_err *err)
{
	static const char *const sfx[] = {"", "-wal", "-shm"};
	char from[PATH_MAX];
	char to[PATH_MAX];
	size_t done = 0;
	int rc = 0;
	for (; done < 3; done++) {
		if ((rc = moat_path_join(from, sizeof(from), err, "%s%s", db, sfx[done])) != 0 ||
		    (rc = moat_path_join(to, sizeof(to), err, "%s%s", kept, sfx[done])) != 0) {
			break;
		}
		if (done > 0 && !moat_fs_exists(from)) {
			continue;
		}
		if (rename(from, to) != 0) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "%s: rename to %s", from, to);
			break;
		}
		/* by descriptor, not by path: the directory is moatd's account's too, and a
		 * name swapped for a link must not get root's chmod */
		int fd = open(to, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		struct stat st;
		int e = fd < 0 || fstat(fd, &st) != 0 ? errno
			: !S_ISREG(st.st_mode)	      ? EINVAL
			: fchmod(fd, 0600) != 0	      ? errno
						      : 0;
		if (fd >= 0) {
			close(fd);
		}
		if (e != 0) {
			rc = moat_err_errno(err, MOAT_EIO, e, "%s: not a regular file of ours", to);
			done++;
			break;
		}
	}
	if (rc != 0) {
		while (done-- > 0) {
			if (moat_path_join(from, sizeof(from), NULL, "%s%s", db, sfx[done]) == 0 &&
			    moat_path_join(to, sizeof(to), NULL, "%s%s", kept, sfx[done]) == 0) {
				(void)rename(to, from);
			}
		}
	}
	return rc;
}

int moat_deploy_registry_migrate(const char *dir, const char *url, int64_t now,
				 moat_deploy_stopped_fn stopped, void *ctx,
				 struct moat_deploy_migration *out, struct moat_err *err)
{
	char conf_path[PATH_MAX];
	char db[PATH_MAX];
	char stamp[32];
	struct moat_config *cfg = NULL;
	struct moat_deploy_conf conf;
	struct moat_registry *src = NULL;
	char *old = NULL;
	char *text = NULL;
	size_t old_len = 0;
	size_t text_len = 0;
	int lock_fd = -1;
	int rc;
	memset(out, 0, sizeof(*out));
	time_t t = (time_t)now;
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm) == 0) {
		return moat_err_set(err, MOAT_EINVAL, "bad time");
	}
	if ((rc = moat_path_join(conf_path, sizeof(conf_path), err, "%s/moat.conf", dir)) != 0 ||
	    (rc = moat_path_join(db, sizeof(db), err, "%s/registry.db", dir)) != 0 ||
	    (rc = moat_path_join(out->kept, sizeof(out->kept), err, "%s.migrated-%s", db, stamp)) !=
		    0) {
		return rc;
	}
	if ((rc = moat_registry_url_check(url, err)) != 0) {
		moat_err_prefix(err, "--to");
		return rc;
	}
	if (!moat_fs_exists(conf_path)) {
		return moat_err_set(err, MOAT_ENOENT,
				    "%s: not a moat deployment (no moat.conf; create one with moat "
				    "init)",
				    dir);
	}
	if ((rc = take_lock(dir, &lock_fd, err)) != 0) {
		return rc;
	}
	/* moat.conf as it is under the lock: the text we extend, the settings we check */
	if ((rc = moat_fs_read_all(conf_path, CONF_MAX, &old, &old_len, err)) != 0 ||
	    (rc = moat_config_parse(conf_path, old, old_len, &cfg, err)) != 0 ||
	    (rc = moat_deploy_conf_load(cfg, &conf, err)) != 0) {
		goto out;
	}
	if (moat_config_get(cfg, "registry", "url")) {
		rc = moat_err_set(err, MOAT_EEXIST,
				  "%s: the registry is on PostgreSQL already ([registry] url)",
				  conf_path);
		goto out;
	}
	if (moat_fs_exists(out->kept)) {
		rc = moat_err_set(err, MOAT_EEXIST, "%s: exists (try again in a second)",
				  out->kept);
		goto out;
	}
	if (stopped && (rc = stopped(dir, ctx, err)) != 0) {
		goto out;
	}
	if ((rc = moat_registry_open_readonly(db, &src, err)) != 0 ||
	    (rc = moat_registry_copy(src, url, &out->report, err)) != 0) {
		goto out;
	}
	moat_registry_close(src);
	src = NULL;
	/* proven: the deployment now uses the copy. Asked again: nothing started meanwhile
	 * that would go on writing registry.db. */
	if (stopped && (rc = stopped(dir, ctx, err)) != 0) {
		moat_err_prefix(err, "the copy is in PostgreSQL, but moat.conf was not changed");
		goto out;
	}
	struct stat st;
	if (stat(conf_path, &st) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", conf_path);
		goto out;
	}
	if ((rc = conf_with_url(old, old_len, url, &text, &text_len, err)) != 0 ||
	    (rc = moat_fs_write_atomic(conf_path, text, text_len, st.st_mode & 07777, err)) != 0) {
		moat_err_prefix(err, "the copy is in PostgreSQL, but moat.conf was not changed");
		goto out;
	}
	if ((rc = keep_old(db, out->kept, err)) != 0) {
		/* moat.conf back as it was: the deployment stays on registry.db */
		struct moat_err undo = {0};
		if (moat_fs_write_atomic(conf_path, old, old_len, st.st_mode & 07777, &undo) != 0) {
			moat_err_prefix(err, "moat.conf could not be restored (%s)", undo.msg);
		}
		moat_err_prefix(err, "the copy is in PostgreSQL, but registry.db stays in use");
		goto out;
	}
out:
	moat_registry_close(src);
	moat_config_free(cfg);
	free(old);
	free(text);
	if (lock_fd >= 0) {
		close(lock_fd);
	}
	return rc;
}
