/* deploy.c: finding, opening and validating a deployment directory; crash recovery. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deploy_internal.h"
#include "moat/fsutil.h"

volatile int moat_deploy_interrupted;

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

int moat_deploy_path(const struct moat_deploy *d, char *buf, size_t size, const char *rel,
		     struct moat_err *err)
{
	return moat_path_join(buf, size, err, "%s/%s", d->dir, rel);
}

int moat_deploy_identity_path(const struct moat_deploy *d, const char *id, const char *file,
			      char *buf, size_t size, struct moat_err *err)
{
	if (!moat_identity_name_ok(id)) {
		return moat_err_set(err, MOAT_EINVAL, "invalid identity name");
	}
	if (file) {
		return moat_path_join(buf, size, err, "%s/pki/identities/%s/%s", d->dir, id, file);
	}
	return moat_path_join(buf, size, err, "%s/pki/identities/%s", d->dir, id);
}

static const char *const known_sections[] = {
	"deployment", "broker", "server", "pki", "network", "firmware", "policy",
	"plugin",     "agent",  "monitor", "sim", NULL,
};

int deploy_conf_parse(const struct moat_config *cfg, struct moat_deploy_conf *conf,
		      struct moat_err *err)
{
	static const char *const deployment_keys[] = {"format", "name", NULL};
	static const char *const pki_keys[] = {"key_type", "ca_days", "identity_days",
					       "server_days", "crl_days", NULL};
	int rc;
	memset(conf, 0, sizeof(*conf));
	if ((rc = moat_config_check_sections(cfg, known_sections, err)) != 0 ||
	    (rc = moat_config_check_keys(cfg, "deployment", deployment_keys, err)) != 0 ||
	    (rc = moat_config_check_keys(cfg, "pki", pki_keys, err)) != 0) {
		return rc;
	}
	const char *format = moat_config_get(cfg, "deployment", "format");
	if (!format || strcmp(format, MOAT_CONF_FORMAT) != 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: not a moat deployment ([deployment] format = %s missing)",
				    cfg->path, MOAT_CONF_FORMAT);
	}
	const char *name = moat_config_get(cfg, "deployment", "name");
	if ((rc = moat_identity_name_check(name, err)) != 0) {
		moat_err_prefix(err, "%s: [deployment] name", cfg->path);
		return rc;
	}
	snprintf(conf->name, sizeof(conf->name), "%s", name);

	const char *hosts = moat_config_get(cfg, "broker", "hosts");
	char **items = NULL;
	size_t count = 0;
	if (!hosts) {
		return moat_err_set(err, MOAT_EINVAL, "%s: [broker] hosts is missing", cfg->path);
	}
	if ((rc = moat_config_split_list(hosts, &items, &count, err)) != 0) {
		moat_err_prefix(err, "%s: [broker] hosts", cfg->path);
		return rc;
	}
	if (count > MOAT_HOSTS_MAX) {
		moat_config_list_free(items, count);
		return moat_err_set(err, MOAT_EINVAL, "%s: [broker] hosts: more than %d", cfg->path,
				    MOAT_HOSTS_MAX);
	}
	for (size_t i = 0; i < count; i++) {
		if ((rc = deploy_host_check(items[i], err)) != 0) {
			moat_config_list_free(items, count);
			moat_err_prefix(err, "%s: [broker] hosts", cfg->path);
			return rc;
		}
		snprintf(conf->broker_hosts[i], sizeof(conf->broker_hosts[i]), "%s", items[i]);
	}
	conf->broker_host_count = count;
	moat_config_list_free(items, count);

	int64_t v = 0;
	if ((rc = moat_config_get_int(cfg, "broker", "port", MOAT_BROKER_PORT_DEFAULT, 1, 65535, &v, err)) != 0) {
		return rc;
	}
	conf->broker_port = (int)v;
	if ((rc = moat_config_get_int(cfg, "server", "port", MOAT_SERVER_PORT_DEFAULT, 1, 65535, &v, err)) != 0) {
		return rc;
	}
	conf->server_port = (int)v;
	if (conf->server_port == conf->broker_port) {
		return moat_err_set(err, MOAT_EINVAL, "%s: [server] port equals [broker] port",
				    cfg->path);
	}
	const char *kt = moat_config_get(cfg, "pki", "key_type");
	conf->key_type = MOAT_KEY_EC_P256;
	if (kt && (rc = moat_key_type_parse(kt, &conf->key_type, err)) != 0) {
		moat_err_prefix(err, "%s: [pki] key_type", cfg->path);
		return rc;
	}
	if ((rc = moat_config_get_int(cfg, "pki", "ca_days", MOAT_CA_DAYS_DEFAULT, 1, 36500, &conf->ca_days, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "pki", "identity_days", MOAT_IDENTITY_DAYS_DEFAULT, 1, 36500,
				      &conf->identity_days, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "pki", "server_days", MOAT_SERVER_DAYS_DEFAULT, 1, 36500,
				      &conf->server_days, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "pki", "crl_days", MOAT_CRL_DAYS_DEFAULT, 1, 3650, &conf->crl_days,
				      err)) != 0) {
		return rc;
	}
	return 0;
}

void deploy_remove_quietly(const char *path)
{
	struct moat_err ignored;
	if (moat_fs_remove_tree(path, &ignored) != 0) {
		return; /* recover() on the next open removes it */
	}
}

bool deploy_host_is_ip(const char *host)
{
	unsigned char addr[16];
	return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

int deploy_host_check(const char *host, struct moat_err *err)
{
	size_t len = strlen(host);
	if (len == 0 || len > MOAT_HOST_MAX_LEN) {
		return moat_err_set(err, MOAT_EINVAL, "'%s': not a host name or address", host);
	}
	if (deploy_host_is_ip(host)) {
		return 0;
	}
	/* RFC 1123 labels: letters, digits, hyphens; no leading/trailing hyphen or dot */
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		char c = host[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (c == '.') {
			if (label == 0 || host[i - 1] == '-') {
				return moat_err_set(err, MOAT_EINVAL, "'%s': not a host name or address", host);
			}
			label = 0;
			continue;
		}
		if (!alnum && !(c == '-' && label > 0)) {
			return moat_err_set(err, MOAT_EINVAL, "'%s': not a host name or address", host);
		}
		if (++label > 63) {
			return moat_err_set(err, MOAT_EINVAL, "'%s': label longer than 63", host);
		}
	}
	if (label == 0 || host[len - 1] == '-') {
		return moat_err_set(err, MOAT_EINVAL, "'%s': not a host name or address", host);
	}
	return 0;
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
			if ((rc = moat_path_join(sp, sizeof(sp), err, "%s/%s", path, e->d_name)) != 0 ||
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
			if ((rc = moat_path_join(ip, sizeof(ip), err, "%s/%s", path, e->d_name)) != 0 ||
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
		rc = moat_err_set(err, MOAT_ENOENT,
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
	if ((rc = moat_deploy_path(d, path, sizeof(path), "registry.db", err)) != 0 ||
	    (rc = moat_registry_open(path, false, &d->reg, err)) != 0) {
		goto fail;
	}
	char cert[PATH_MAX];
	if ((rc = moat_deploy_path(d, cert, sizeof(cert), "pki/ca.crt", err)) != 0 ||
	    (rc = moat_pki_ca_load(cert, NULL, NULL, &d->ca, err)) != 0) {
		goto fail;
	}
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
		/* name the key relative to the deployment, as operators know it */
		if (rc == MOAT_ECRYPTO && strstr(err ? err->msg : "", "wrong passphrase")) {
			moat_err_set(err, MOAT_ECRYPTO, "pki/ca.key: wrong passphrase");
		}
		return rc;
	}
	moat_pki_ca_free(d->ca);
	d->ca = ca;
	return 0;
}
