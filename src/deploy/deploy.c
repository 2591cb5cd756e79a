/* deploy.c: finding, opening and validating a deployment directory; crash recovery; what
 * an open deployment lets its users read (the accessors of the opaque struct moat_deploy). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deploy_internal.h"
#include "moat/fsutil.h"

int moat_deploy_locate(const char *flag_dir, char *out, size_t size, struct moat_err *err)
{
	const char *dir = flag_dir;
	if (!dir || !*dir) {
		dir = getenv("MOAT_DIR");
	}
	if (!dir || !*dir) {
		dir = ".";
	}
	return moat_path_join(out, size, err, "%s", dir);
}

/* Removes what an interrupted provisioning or renewal left (see deploy.h). */
static int recover(struct moat_deploy *d, struct moat_err *err)
{
	char path[PATH_MAX];
	int rc;
	if ((rc = moat_deploy_path(d, path, sizeof(path), "pki", err)) != 0) {
		return rc;
	}
	DIR *dir = opendir(path);
	if (!dir) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (strncmp(e->d_name, ".staging-", 9) == 0) {
			char sp[PATH_MAX];
			if ((rc = moat_path_join(sp, sizeof(sp), err, "%s/%s", path, e->d_name)) !=
				    0 ||
			    (rc = moat_fs_remove_tree(sp, err)) != 0) {
				closedir(dir);
				return rc;
			}
		}
	}
	closedir(dir);

	if ((rc = moat_deploy_path(d, path, sizeof(path), "pki/identities", err)) != 0) {
		return rc;
	}
	dir = opendir(path);
	if (!dir) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	while ((e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.') {
			continue;
		}
		bool exists = false;
		if (moat_identity_name_ok(e->d_name) &&
		    (rc = moat_registry_identity_exists(d->reg, e->d_name, &exists, err)) != 0) {
			closedir(dir);
			return rc;
		}
		if (!exists) {
			char ip[PATH_MAX];
			if ((rc = moat_path_join(ip, sizeof(ip), err, "%s/%s", path, e->d_name)) !=
				    0 ||
			    (rc = moat_fs_remove_tree(ip, err)) != 0) {
				closedir(dir);
				return rc;
			}
			d->recovered++;
			continue;
		}
		if ((rc = deploy_renew_recover(d, e->d_name, err)) != 0) {
			closedir(dir);
			return rc;
		}
	}
	closedir(dir);
	return 0;
}

int moat_deploy_open(const char *dir, int mode, struct moat_deploy **out, struct moat_err *err)
{
	int rc;
	char path[PATH_MAX];
	struct moat_deploy *d = calloc(1, sizeof(*d));
	if (!d) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	d->lock_fd = -1;
	struct stat st;
	if (stat(dir, &st) != 0) {
		rc = moat_err_errno(err, MOAT_ENOENT, errno, "deployment %s", dir);
		goto fail;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = moat_err_set(err, MOAT_EINVAL, "deployment %s: not a directory", dir);
		goto fail;
	}
	if (!realpath(dir, d->dir)) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", dir);
		goto fail;
	}
	if ((rc = moat_deploy_path(d, path, sizeof(path), "moat.conf", err)) != 0) {
		goto fail;
	}
	if (!moat_fs_exists(path)) {
		rc = moat_err_set(
			err, MOAT_ENOENT,
			"%s: not a moat deployment (no moat.conf; create one with moat init)",
			d->dir);
		goto fail;
	}
	if ((rc = moat_config_load(path, &d->cfg, err)) != 0 ||
	    (rc = deploy_conf_parse(d->cfg, &d->conf, err)) != 0) {
		goto fail;
	}
	if (mode == MOAT_DEPLOY_WRITE) {
		if ((rc = moat_deploy_path(d, path, sizeof(path), "run", err)) != 0 ||
		    (rc = moat_fs_mkdirs(path, 0755, err)) != 0 ||
		    (rc = moat_deploy_path(d, path, sizeof(path), "run/moat.lock", err)) != 0) {
			goto fail;
		}
		d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (d->lock_fd < 0) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "%s", path);
			goto fail;
		}
		if (flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0) {
			if (errno != EWOULDBLOCK || flock(d->lock_fd, LOCK_EX) != 0) {
				rc = moat_err_errno(err, MOAT_EIO, errno, "%s: lock", path);
				goto fail;
			}
		}
	}
	/* Reading a deployment whose directory cannot be written (a read-only file system,
	 * a backup mounted for inspection): the registry is read as it is, without the WAL
	 * switch and migrations a writable open does. */
	bool readonly = mode == MOAT_DEPLOY_READ && access(d->dir, W_OK) != 0;
	/* registry.db, or the PostgreSQL database [registry] url names (checked by
	 * deploy_conf_parse above): never the file when the key is there */
	if ((rc = moat_deploy_registry_location(d->dir, d->cfg, path, sizeof(path), err)) != 0 ||
	    (rc = readonly ? moat_registry_open_readonly(path, &d->reg, err)
			   : moat_registry_open(path, false, &d->reg, err)) != 0) {
		goto fail;
	}
	char cert[PATH_MAX];
	if ((rc = moat_deploy_path(d, cert, sizeof(cert), "pki/ca.crt", err)) != 0 ||
	    (rc = moat_pki_ca_load(cert, NULL, NULL, &d->ca, err)) != 0) {
		goto fail;
	}
	if ((rc = moat_deploy_path(d, cert, sizeof(cert), MOAT_ISSUER_CERT_FILE, err)) != 0) {
		goto fail;
	}
	d->has_issuer = moat_fs_exists(cert);
	if (mode == MOAT_DEPLOY_WRITE && (rc = recover(d, err)) != 0) {
		moat_err_prefix(err, "recovering from an interrupted change");
		goto fail;
	}
	*out = d;
	return 0;
fail:
	moat_deploy_close(d);
	return rc;
}

void moat_deploy_close(struct moat_deploy *d)
{
	if (!d) {
		return;
	}
	moat_registry_close(d->reg);
	moat_config_free(d->cfg);
	moat_pki_ca_free(d->ca);
	moat_pki_ca_free(d->issuer);
	free(d->chain_pem);
	if (d->lock_fd >= 0) {
		close(d->lock_fd); /* releases the flock */
	}
	free(d);
}

int moat_deploy_unlock(struct moat_deploy *d, const char *passphrase, struct moat_err *err)
{
	char cert[PATH_MAX];
	char key[PATH_MAX];
	struct moat_ca *ca = NULL;
	int rc;
	if ((rc = moat_deploy_path(d, cert, sizeof(cert), "pki/ca.crt", err)) != 0 ||
	    (rc = moat_deploy_path(d, key, sizeof(key), "pki/ca.key", err)) != 0) {
		return rc;
	}
	if ((rc = moat_pki_ca_load(cert, key, passphrase, &ca, err)) != 0) {
		/* name the key relative to the deployment, as operators know it: "pki/ca.key:
		 * wrong passphrase", "pki/ca.key: not a valid encrypted key (...)" */
		size_t n = strlen(key);
		if (rc == MOAT_ECRYPTO && err && strncmp(err->msg, key, n) == 0 &&
		    strncmp(err->msg + n, ": ", 2) == 0) {
			char what[sizeof(err->msg)];
			snprintf(what, sizeof(what), "%s", err->msg + n + 2);
			moat_err_set(err, MOAT_ECRYPTO, "pki/ca.key: %s", what);
		}
		return rc;
	}
	moat_pki_ca_free(d->ca);
	d->ca = ca;
	return 0;
}

const char *moat_deploy_dir(const struct moat_deploy *d)
{
	return d->dir;
}

const struct moat_config *moat_deploy_config(const struct moat_deploy *d)
{
	return d->cfg;
}

const struct moat_deploy_conf *moat_deploy_settings(const struct moat_deploy *d)
{
	return &d->conf;
}

int moat_deploy_registry_location(const char *dir, const struct moat_config *cfg, char *buf,
				  size_t size, struct moat_err *err)
{
	const char *url = cfg ? moat_config_get(cfg, "registry", "url") : NULL;
	if (url) {
		int n = snprintf(buf, size, "%s", url);
		if (n < 0 || (size_t)n >= size) {
			return moat_err_set(err, MOAT_EINVAL, "[registry] url: too long");
		}
		return 0;
	}
	return moat_path_join(buf, size, err, "%s/registry.db", dir);
}

bool moat_deploy_registry_is_url(const struct moat_deploy *d)
{
	return moat_config_get(d->cfg, "registry", "url") != NULL;
}

struct moat_registry *moat_deploy_registry(const struct moat_deploy *d)
{
	return d->reg;
}

size_t moat_deploy_recovered(const struct moat_deploy *d)
{
	return d->recovered;
}
