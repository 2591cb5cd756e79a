/* owner.c: who owns what in a deployment run by root: moatd's own account and what it may
 * read and write (deploy.h, "Ownership"). Only root changes ownership; a deployment run by
 * a developer's own account stays theirs, and moatd then runs as that account too.
 *
 * Every file is changed through a descriptor opened with O_NOFOLLOW, never by path: moatd's
 * user may write in the deployment directory and pki/, and a symbolic link it left under a
 * name root then chmods must not hand root's chmod to another file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deploy_internal.h"
#include "moat/fsutil.h"
#include "moat/spawn.h"

#define USERADD_BIN "/usr/sbin/useradd"
#define USERADD_ATTEMPTS 20 /* useradd fails while another holds /etc/passwd's lock */
#define USERADD_RETRY_NS (100L * 1000 * 1000)

int moat_deploy_moatd_user(const struct moat_config *cfg, char out[MOAT_DEPLOY_USER_BUF_LEN],
			   struct moat_err *err)
{
	const char *user = cfg ? moat_config_get(cfg, "server", "user") : NULL;
	if (!user) {
		user = MOAT_MOATD_USER_DEFAULT;
	}
	int rc = moat_account_name_check(user, err);
	if (rc != 0) {
		moat_err_prefix(err, "[server] user");
		return rc;
	}
	snprintf(out, MOAT_DEPLOY_USER_BUF_LEN, "%s", user);
	return 0;
}

int moat_deploy_user_create(const char *name, bool *out_created, struct moat_err *err)
{
	char comment[] = "moat update service (moatd)";
	char *const argv[] = {(char *)USERADD_BIN, "--system",
			      "--user-group",	   "--no-create-home",
			      "--home-dir",	   "/nonexistent",
			      "--shell",	   "/usr/sbin/nologin",
			      "--comment",	   comment,
			      (char *)name,	   NULL};
	char errbuf[256];
	*out_created = false;
	if (geteuid() != 0) {
		return moat_err_set(err, MOAT_EDENIED, "creating user %s: only root can", name);
	}
	for (int attempt = 0; attempt < USERADD_ATTEMPTS; attempt++) {
		if (getpwnam(name)) {
			return 0; /* already there (or another moat created it meanwhile) */
		}
		struct moat_spawn sp = {.argv = argv, .in = MOAT_SPAWN_DEVNULL};
		struct moat_spawn_capture cap = {.buf = errbuf, .size = sizeof(errbuf)};
		int status = 0;
		int rc = moat_spawn_run(&sp, NULL, 0, &cap, &cap, &status, err);
		if (rc != 0) {
			moat_err_prefix(err, "creating user %s", name);
			return rc;
		}
		if (status == 0) {
			*out_created = true;
			return 0;
		}
		struct timespec ts = {0, USERADD_RETRY_NS};
		nanosleep(&ts, NULL);
	}
	if (getpwnam(name)) {
		return 0;
	}
	size_t n = strcspn(errbuf, "\n");
	errbuf[n] = '\0';
	return moat_err_set(err, MOAT_EIO, "creating user %s with %s failed: %s", name, USERADD_BIN,
			    errbuf);
}

/* Owner, group and mode of dir/rel set through an O_NOFOLLOW descriptor; uid or gid -1
 * leaves it. The mode is computed from the current one: (mode & keep) | add. Absent:
 * nothing (want_dir says what it must be when present). */
static int set_owner(const char *dir, const char *rel, bool want_dir, uid_t uid, gid_t gid,
		     mode_t keep, mode_t add, struct moat_err *err)
{
	char path[PATH_MAX];
	int rc = moat_path_join(path, sizeof(path), err, "%s%s%s", dir, rel[0] ? "/" : "", rel);
	if (rc != 0) {
		return rc;
	}
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
				    (want_dir ? O_DIRECTORY : 0));
	if (fd < 0) {
		if (errno == ENOENT) {
			return 0;
		}
		return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	} else if (!want_dir && !S_ISREG(st.st_mode)) {
		rc = moat_err_set(err, MOAT_EINVAL, "%s: not a regular file", path);
	} else if (fchown(fd, uid, gid) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s: chown", path);
	} else if (fchmod(fd, (st.st_mode & keep) | add) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s: chmod", path);
	}
	close(fd);
	return rc;
}

/* dir/rel and the regular files in it (one level) given to uid:gid, modes kept; absent:
 * nothing. */
static int own_tree(const char *dir, const char *rel, uid_t uid, gid_t gid, struct moat_err *err)
{
	char path[PATH_MAX];
	int rc = moat_path_join(path, sizeof(path), err, "%s/%s", dir, rel);
	if (rc != 0) {
		return rc;
	}
	DIR *dp = opendir(path);
	if (!dp) {
		return errno == ENOENT ? 0 : moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	struct dirent *e;
	while (rc == 0 && (e = readdir(dp)) != NULL) {
		char sub[PATH_MAX];
		if (e->d_name[0] == '.' || e->d_type != DT_REG) {
			continue; /* a link or anything else is not moat's: left alone */
		}
		if ((rc = moat_path_join(sub, sizeof(sub), err, "%s/%s", rel, e->d_name)) == 0) {
			rc = set_owner(dir, sub, false, uid, gid, 07777, 0, err);
		}
	}
	closedir(dp);
	if (rc == 0) {
		rc = set_owner(dir, rel, true, uid, gid, 07777, 0, err);
	}
	return rc;
}

/* run/moat.lock root:gid 0660, created when absent: whoever changes the deployment takes
 * its flock, moatd's account included. */
static int own_lock(const char *dir, gid_t gid, struct moat_err *err)
{
	char path[PATH_MAX];
	int rc = moat_path_join(path, sizeof(path), err, "%s/run", dir);
	if (rc != 0 || (rc = moat_fs_mkdirs(path, 0755, err)) != 0 ||
	    (rc = moat_path_join(path, sizeof(path), err, "%s/run/moat.lock", dir)) != 0) {
		return rc;
	}
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	if (fchown(fd, (uid_t)-1, gid) != 0 || fchmod(fd, 0660) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s: chown", path);
	}
	close(fd);
	return rc;
}

int moat_deploy_own(struct moat_deploy *d, enum moat_deploy_own_mode mode, struct moat_err *err)
{
	char user[MOAT_DEPLOY_USER_BUF_LEN];
	int rc;
	if (geteuid() != 0) {
		return 0;
	}
	if ((rc = moat_deploy_moatd_user(d->cfg, user, err)) != 0) {
		return rc;
	}
	struct passwd *pw = getpwnam(user);
	if (!pw && mode == MOAT_DEPLOY_OWN_CREATE && strcmp(user, MOAT_MOATD_USER_DEFAULT) == 0) {
		bool created = false;
		if ((rc = moat_deploy_user_create(user, &created, err)) != 0) {
			return rc;
		}
		pw = getpwnam(user);
	}
	if (!pw) {
		if (mode == MOAT_DEPLOY_OWN_IF_USER) {
			return 0;
		}
		return moat_err_set(err, MOAT_ENOENT,
				    "moatd's user '%s' does not exist: moat init creates '%s', "
				    "or create it (useradd --system %s) or set [server] user",
				    user, MOAT_MOATD_USER_DEFAULT, user);
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		return moat_err_set(err, MOAT_EINVAL, "moatd's user '%s' has uid or gid 0", user);
	}
	uid_t u = pw->pw_uid;
	gid_t g = pw->pw_gid;
	const uid_t keep_uid = (uid_t)-1;
	char svc[PATH_MAX];
	const char *as = moat_config_get(d->cfg, "server", "service_identity");
	if (!as) {
		as = "backend-service";
	}
	if (!moat_identity_name_ok(as)) {
		return moat_err_set(err, MOAT_EINVAL, "[server] service_identity '%.64s': invalid",
				    as);
	}
	if ((rc = moat_path_join(svc, sizeof(svc), err, "pki/identities/%s", as)) != 0) {
		return rc;
	}
	char svc_key[PATH_MAX];
	if ((rc = moat_path_join(svc_key, sizeof(svc_key), err, "%s/key.pem", svc)) != 0) {
		return rc;
	}
	/* Directories: moatd's group may add entries (SQLite's -wal and -shm, a re-signed CRL,
	 * an enrolled identity) but the sticky bit keeps everything it does not own out of
	 * its reach (no rename, no removal of moat.conf, the CA or another identity). The
	 * others' bits stay, so the broker's user still traverses them. */
	if ((rc = set_owner(d->dir, "", true, keep_uid, g, 0707, 01070, err)) != 0 ||
	    (rc = set_owner(d->dir, "pki", true, keep_uid, g, 0707, 01070, err)) != 0 ||
	    (rc = set_owner(d->dir, "pki/identities", true, keep_uid, g, 0700, 01070, err)) != 0) {
		return rc;
	}
	/* moatd's own: the registry (and SQLite's files beside it), the issuing key, the CRL
	 * it re-signs (others keep reading it: the broker). */
	static const char *const own_private[] = {"registry.db", "registry.db-wal",
						  "registry.db-shm", "pki/issuer.key"};
	for (size_t i = 0; i < sizeof(own_private) / sizeof(own_private[0]); i++) {
		if ((rc = set_owner(d->dir, own_private[i], false, u, g, 0, 0600, err)) != 0) {
			return rc;
		}
	}
	if ((rc = set_owner(d->dir, "pki/crl.pem", false, u, g, 0644, 0, err)) != 0) {
		return rc;
	}
	/* the TLS key moatd loads again when SIGHUP brings a new pair (moat cert server); the
	 * group stays the broker's, which reads it too */
	if ((rc = set_owner(d->dir, "pki/server.key", false, u, (gid_t)-1, 0640, 0, err)) != 0) {
		return rc;
	}
	/* retired issuing CAs: moatd signs their CRLs and removes them once they expire */
	if ((rc = own_tree(d->dir, "pki/retired", u, g, err)) != 0) {
		return rc;
	}
	/* run/moat.lock: moatd takes it for its changes (an enrollment, the CRL refresh) */
	if ((rc = own_lock(d->dir, g, err)) != 0) {
		return rc;
	}
	/* Its MQTT identity: read, never written (renewals stay root's; the setgid directory
	 * gives a renewed key the group, this runs again after each change and puts back
	 * the group's read bit). */
	if ((rc = set_owner(d->dir, svc, true, keep_uid, g, 0700, 02050, err)) != 0 ||
	    (rc = set_owner(d->dir, svc_key, false, keep_uid, g, 0600, 0040, err)) != 0) {
		return rc;
	}
	return 0;
}
