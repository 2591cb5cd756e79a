/* write.c: writes the broker's files into the deployment and gives the broker's user
 * exactly the access it needs (include/moat/broker.h, "Who may read what").
 *
 * Ownership is only changed when moat runs as root, because only then does Mosquitto
 * switch to another user. Files the broker re-reads after a reload (acl.conf, the policy)
 * live in broker/, a setgid directory, so a file replaced by an atomic rename is born
 * with the broker's group and never has a moment in which the broker cannot read it.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moat/broker.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"

struct owner {
	bool apply; /* running as root and the user exists */
	uid_t uid;
	gid_t gid;
};

/* strict: a missing user is an error (the broker is about to be configured); otherwise
 * ownership is simply not applied, so identity management works on a host without a
 * broker, and moat broker config / moat up will name the problem. */
static int owner_get(const struct moat_broker_settings *s, bool strict, struct owner *out,
		     struct moat_err *err)
{
	memset(out, 0, sizeof(*out));
	if (geteuid() != 0) {
		return 0;
	}
	struct passwd *pw = getpwnam(s->user);
	if (!pw && !strict) {
		return 0;
	}
	if (!pw) {
		return moat_err_set(err, MOAT_ENOENT,
				    "user '%s' does not exist: Mosquitto started as root switches "
				    "to it (create it, or set [broker] user)",
				    s->user);
	}
	if (pw->pw_uid == 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "[broker] user '%s' is root: the broker must not run as root",
				    s->user);
	}
	out->apply = true;
	out->uid = pw->pw_uid;
	out->gid = pw->pw_gid;
	return 0;
}

/* A directory with owner and mode (created when absent). */
static int own_dir(const char *path, const struct owner *o, bool broker_owns, mode_t mode,
		   struct moat_err *err)
{
	int rc = moat_fs_mkdirs(path, mode & 0777, err);
	if (rc != 0) {
		return rc;
	}
	if (o->apply && chown(path, broker_owns ? o->uid : 0, o->gid) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s: chown", path);
	}
	if (chmod(path, o->apply ? mode : (mode & 0777)) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s: chmod", path);
	}
	return 0;
}

/* Makes an existing file readable by the broker's group without widening it to others. */
static int grant_read(const char *path, const struct owner *o, struct moat_err *err)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		return moat_err_errno(err, MOAT_ENOENT, errno, "%s", path);
	}
	if (!o->apply || (st.st_mode & S_IROTH) ||
	    (st.st_gid == o->gid && (st.st_mode & S_IRGRP))) {
		return 0;
	}
	if (chown(path, (uid_t)-1, o->gid) != 0 ||
	    chmod(path, (st.st_mode & 07770) | S_IRGRP) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s: giving group %u read access", path,
				      (unsigned)o->gid);
	}
	return 0;
}

/* A log file the broker appends to, created by us so it exists before the broker drops
 * its privileges and can be reopened after; its group is moatd's account's when it exists
 * (moatd follows the broker's log, and reopens it by name when it is rotated). log/ itself stays
 * root's: a directory the broker's user could write would let it plant a symlink where root later
 * appends. */
static int own_log(const char *path, const struct owner *o, gid_t group, struct moat_err *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	int rc = 0;
	if (o->apply && fchown(fd, o->uid, group) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s: chown", path);
	}
	close(fd);
	return rc;
}

static int write_file(struct moat_deploy *d, const char *rel, const char *text, size_t len,
		      struct moat_err *err)
{
	char path[PATH_MAX];
	int rc = moat_deploy_path(d, path, sizeof(path), rel, err);
	if (rc == 0) {
		rc = moat_fs_write_atomic(path, text, len, 0640, err);
	}
	return rc;
}

struct build_ctx {
	struct moat_policy *p;
	struct moat_err *err;
};

static int build_cb(const struct moat_identity *ident, void *ctx)
{
	struct build_ctx *b = ctx;
	return moat_policy_add_identity(b->p, ident->id, ident->role,
					(enum moat_policy_status)ident->status, b->err);
}

int moat_broker_policy_build(struct moat_deploy *d, struct moat_policy *out, struct moat_err *err)
{
	struct build_ctx b = {out, err};
	int rc;

	moat_policy_init(out);
	if ((rc = moat_broker_policy_limits(moat_deploy_config(d), out, err)) != 0) {
		return rc;
	}
	rc = moat_registry_identity_foreach(moat_deploy_registry(d), -1, build_cb, &b, err);
	if (rc > 0) {
		rc = moat_err_set(err, MOAT_EINVAL, "policy: identity walk stopped (%d)", rc);
	}
	return rc;
}

/* Writes the derived files; unban (may be NULL) adds an unban line for it, as of now. */
static int derived(struct moat_deploy *d, const struct owner *o, const char *unban,
		   struct moat_err *err)
{
	struct moat_policy p;
	char *policy_text = NULL;
	char *acl_text = NULL;
	size_t policy_len = 0;
	size_t acl_len = 0;
	char path[PATH_MAX];
	int rc;

	if ((rc = moat_broker_policy_build(d, &p, err)) != 0 ||
	    (unban && (rc = moat_policy_add_unban(&p, unban, moat_time_now(), err)) != 0) ||
	    (rc = moat_policy_render_alloc(&p, &policy_text, &policy_len, err)) != 0 ||
	    (rc = moat_broker_render_acl(&p, &acl_text, &acl_len, err)) != 0) {
		goto out;
	}
	if ((rc = moat_deploy_path(d, path, sizeof(path), "broker", err)) != 0 ||
	    (rc = own_dir(path, o, false, 02750, err)) != 0 ||
	    (rc = write_file(d, MOAT_POLICY_FILE_NAME, policy_text, policy_len, err)) != 0 ||
	    (rc = write_file(d, MOAT_BROKER_ACL_FILE, acl_text, acl_len, err)) != 0) {
		goto out;
	}
	/* Mosquitto re-reads the CRL, its certificate and its key on SIGHUP as its own user
	 * (moat cert server replaces the last two), and the issuing CAs' bundle. */
	static const char *const reread[] = {"pki/crl.pem", "pki/server.crt", "pki/server.key"};
	for (size_t i = 0; i < sizeof(reread) / sizeof(reread[0]); i++) {
		if ((rc = moat_deploy_path(d, path, sizeof(path), reread[i], err)) != 0 ||
		    (rc = grant_read(path, o, err)) != 0) {
			goto out;
		}
	}
	if ((rc = moat_deploy_path(d, path, sizeof(path), MOAT_ISSUERS_FILE, err)) != 0 ||
	    (moat_fs_exists(path) && (rc = grant_read(path, o, err)) != 0)) {
		goto out;
	}
out:
	moat_policy_free(&p);
	free(policy_text);
	free(acl_text);
	return rc;
}

static int write_derived(struct moat_deploy *d, const char *unban, struct moat_err *err)
{
	struct moat_broker_settings s;
	struct owner o;
	int rc;

	if ((rc = moat_broker_settings_load(moat_deploy_config(d), moat_deploy_settings(d), &s,
					    err)) != 0 ||
	    (rc = owner_get(&s, false, &o, err)) != 0) {
		return rc;
	}
	return derived(d, &o, unban, err);
}

int moat_broker_write_derived(struct moat_deploy *d, struct moat_err *err)
{
	return write_derived(d, NULL, err);
}

int moat_broker_write_unban(struct moat_deploy *d, const char *name, struct moat_err *err)
{
	return write_derived(d, name, err);
}

int moat_broker_write_all(struct moat_deploy *d, const struct moat_broker_settings *s,
			  const char *plugin_path, struct moat_err *err)
{
	struct owner o;
	char path[PATH_MAX];
	char *conf_text = NULL;
	size_t conf_len = 0;
	int rc;

	if ((rc = owner_get(s, true, &o, err)) != 0) {
		return rc;
	}
	gid_t log_group = o.gid;
	char moatd_user[MOAT_DEPLOY_USER_BUF_LEN];
	struct passwd *mpw = NULL;
	if (o.apply && moat_deploy_moatd_user(moat_deploy_config(d), moatd_user, NULL) == 0 &&
	    (mpw = getpwnam(moatd_user)) != NULL) {
		log_group = mpw->pw_gid;
	}
	if (o.apply) {
		/* Fail here, naming the directory, rather than with a broker that cannot read
		 * its certificate. */
		const char *need[] = {"pki/server.key", "pki/ca.crt", "pki/crl.pem"};
		for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
			if ((rc = moat_deploy_path(d, path, sizeof(path), need[i], err)) != 0 ||
			    (rc = grant_read(path, &o, err)) != 0 ||
			    (rc = moat_broker_check_reachable(path, o.uid, o.gid, err)) != 0) {
				moat_err_prefix(err, "user %s cannot read its files", s->user);
				return rc;
			}
		}
		if (plugin_path &&
		    (rc = moat_broker_check_reachable(plugin_path, o.uid, o.gid, err)) != 0) {
			moat_err_prefix(err, "user %s cannot load the plugin", s->user);
			return rc;
		}
	}
	if ((rc = moat_broker_render_conf(moat_deploy_dir(d), s, plugin_path, &conf_text, &conf_len,
					  err)) != 0 ||
	    (rc = derived(d, &o, NULL, err)) != 0) {
		goto out;
	}
	if ((rc = moat_deploy_path(d, path, sizeof(path), "broker/data", err)) != 0 ||
	    (rc = own_dir(path, &o, true, 0750, err)) != 0 ||
	    (rc = moat_deploy_path(d, path, sizeof(path), "log", err)) != 0 ||
	    (rc = moat_fs_mkdirs(path, 0755, err)) != 0 ||
	    (rc = moat_deploy_path(d, path, sizeof(path), MOAT_BROKER_LOG_FILE, err)) != 0 ||
	    (rc = own_log(path, &o, log_group, err)) != 0 ||
	    (rc = moat_deploy_path(d, path, sizeof(path), MOAT_PLUGIN_EVENTS_FILE_NAME, err)) !=
		    0 ||
	    (rc = own_log(path, &o, log_group, err)) != 0) {
		goto out;
	}
	rc = write_file(d, MOAT_BROKER_CONF_FILE, conf_text, conf_len, err);
out:
	free(conf_text);
	return rc;
}

int moat_broker_plugin_find(char *buf, size_t size, struct moat_err *err)
{
	const char *env = getenv(MOAT_BROKER_PLUGIN_ENV);
	char exe[PATH_MAX];
	int rc;

	if (env && env[0]) {
		if ((rc = moat_path_join(buf, size, err, "%s", env)) != 0) {
			return rc;
		}
	} else {
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n <= 0) {
			return moat_err_errno(err, MOAT_EIO, errno, "/proc/self/exe");
		}
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
		}
		if ((rc = moat_path_join(buf, size, err, "%s/%s", exe, MOAT_BROKER_PLUGIN_FILE)) !=
		    0) {
			return rc;
		}
#if defined(MOAT_PLUGIN_RELDIR)
		/* an installed moat: bin/moat and lib/moat/moat_broker.so, made absolute */
		struct stat beside;
		char installed[PATH_MAX];
		char resolved[PATH_MAX];
		if (stat(buf, &beside) != 0 &&
		    moat_path_join(installed, sizeof(installed), NULL, "%s/%s/%s", exe,
				   MOAT_PLUGIN_RELDIR, MOAT_BROKER_PLUGIN_FILE) == 0 &&
		    realpath(installed, resolved) != NULL &&
		    (rc = moat_path_join(buf, size, err, "%s", resolved)) != 0) {
			return rc;
		}
#endif
	}
	struct stat st;
	if (stat(buf, &st) != 0 || !S_ISREG(st.st_mode)) {
		return moat_err_set(err, MOAT_ENOENT,
				    "broker plugin %s not found (build it, set $%s, or use "
				    "--no-plugin for the ACL-file fallback)",
				    buf, MOAT_BROKER_PLUGIN_ENV);
	}
	if (buf[0] != '/') {
		char abs[PATH_MAX];
		if (!realpath(buf, abs)) {
			return moat_err_errno(err, MOAT_EIO, errno, "%s", buf);
		}
		return moat_path_join(buf, size, err, "%s", abs);
	}
	return 0;
}

static bool mode_allows(const struct stat *st, uid_t uid, gid_t gid, mode_t u, mode_t g, mode_t o)
{
	if (st->st_uid == uid) {
		return (st->st_mode & u) != 0;
	}
	if (st->st_gid == gid) {
		return (st->st_mode & g) != 0;
	}
	return (st->st_mode & o) != 0;
}

int moat_broker_check_reachable(const char *path, uid_t uid, gid_t gid, struct moat_err *err)
{
	char buf[PATH_MAX];
	struct stat st;
	int rc;

	if ((rc = moat_path_join(buf, sizeof(buf), err, "%s", path)) != 0) {
		return rc;
	}
	/* Walk the parents from the root down, so the first refusal named is the one to fix. */
	for (char *p = strchr(buf + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (stat(buf, &st) != 0) {
			rc = moat_err_errno(err, MOAT_ENOENT, errno, "%s", buf);
			*p = '/';
			return rc;
		}
		if (!mode_allows(&st, uid, gid, S_IXUSR, S_IXGRP, S_IXOTH)) {
			rc = moat_err_set(
				err, MOAT_EDENIED,
				"%s (mode %04o) is not searchable by uid %u: chmod o+x it, "
				"or g+x with group %u",
				buf, (unsigned)(st.st_mode & 07777), (unsigned)uid, (unsigned)gid);
			*p = '/';
			return rc;
		}
		*p = '/';
	}
	if (stat(buf, &st) != 0) {
		return moat_err_errno(err, MOAT_ENOENT, errno, "%s", buf);
	}
	if (!mode_allows(&st, uid, gid, S_IRUSR, S_IRGRP, S_IROTH)) {
		return moat_err_set(err, MOAT_EDENIED, "%s (mode %04o) is not readable by uid %u",
				    buf, (unsigned)(st.st_mode & 07777), (unsigned)uid);
	}
	return 0;
}

int moat_broker_configure(struct moat_deploy *d, bool force_acl_file,
			  struct moat_broker_settings *out_settings, char *out_plugin,
			  size_t plugin_size, struct moat_err *err)
{
	struct moat_broker_settings s;
	int rc;

	if (plugin_size == 0) {
		return moat_err_set(err, MOAT_EINVAL, "plugin path buffer too small");
	}
	out_plugin[0] = '\0';
	if ((rc = moat_broker_settings_load(moat_deploy_config(d), moat_deploy_settings(d), &s,
					    err)) != 0) {
		return rc;
	}
	if (force_acl_file) {
		s.plugin = false;
	}
	if (s.plugin && (rc = moat_broker_plugin_find(out_plugin, plugin_size, err)) != 0) {
		return rc;
	}
	if ((rc = moat_broker_write_all(d, &s, s.plugin ? out_plugin : NULL, err)) != 0 ||
	    (rc = moat_deploy_own(d, MOAT_DEPLOY_OWN_CREATE, err)) != 0) {
		return rc;
	}
	if (out_settings) {
		*out_settings = s;
	}
	return 0;
}
