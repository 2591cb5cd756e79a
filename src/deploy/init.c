/* init.c: `moat init`: creates a deployment directory with its CA, server certificate, empty
 * CRL, registry and moat.conf. Everything is written into a fresh directory; on any failure
 * the whole directory (or, for a pre-existing empty directory, everything put in it) is
 * removed, so a failed init leaves nothing that looks like a deployment. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deploy_internal.h"
#include "moat/fsutil.h"

static const char *const default_hosts[] = {"localhost", "127.0.0.1"};

/* true when dir exists and holds no entry. */
static int dir_state(const char *dir, bool *out_exists, bool *out_empty, struct moat_err *err)
{
	struct stat st;
	*out_exists = false;
	*out_empty = true;
	if (stat(dir, &st) != 0) {
		if (errno == ENOENT) {
			return 0;
		}
		return moat_err_errno(err, MOAT_EIO, errno, "%s", dir);
	}
	if (!S_ISDIR(st.st_mode)) {
		return moat_err_set(err, MOAT_EEXIST, "%s: exists and is not a directory", dir);
	}
	*out_exists = true;
	DIR *d = opendir(dir);
	if (!d) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", dir);
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			*out_empty = false;
			break;
		}
	}
	closedir(d);
	return 0;
}

/* Removes every entry of dir (not dir itself). */
static void empty_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d) {
		return;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
			continue;
		}
		char p[PATH_MAX];
		struct moat_err ignored;
		if (moat_path_join(p, sizeof(p), &ignored, "%s/%s", dir, e->d_name) == 0) {
			deploy_remove_quietly(p);
		}
	}
	closedir(d);
}

/* A valid deployment name from the directory's basename: lower-cased, other characters
 * replaced by '-', trimmed to the identity alphabet. */
static void default_name(const char *dir, char out[MOAT_ID_BUF_LEN])
{
	const char *base = strrchr(dir, '/');
	base = base && base[1] ? base + 1 : dir;
	size_t n = 0;
	for (const char *p = base; *p && n < MOAT_ID_MAX_LEN; p++) {
		char c = *p;
		if (c >= 'A' && c <= 'Z') {
			c = (char)(c - 'A' + 'a');
		}
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  (n > 0 && (c == '.' || c == '_' || c == '-'));
		if (ok) {
			out[n++] = c;
		} else if (n > 0) {
			out[n++] = '-';
		}
	}
	out[n] = '\0';
	if (n == 0) {
		snprintf(out, MOAT_ID_BUF_LEN, "moat");
	}
}

static int write_conf(const char *path, const char *name, const char *const *hosts,
		      size_t host_count, const struct moat_init_opts *opts, struct moat_err *err)
{
	char text[8192];
	char host_list[MOAT_HOSTS_MAX * (MOAT_HOST_MAX_LEN + 2) + 1];
	size_t used = 0;
	host_list[0] = '\0';
	for (size_t i = 0; i < host_count; i++) {
		int n = snprintf(host_list + used, sizeof(host_list) - used, "%s%s", i ? ", " : "",
				 hosts[i]);
		if (n < 0 || (size_t)n >= sizeof(host_list) - used) {
			return moat_err_set(err, MOAT_EINVAL, "too many broker hosts");
		}
		used += (size_t)n;
	}
	int n = snprintf(
		text, sizeof(text),
		"# moat deployment configuration (see moat's docs/ARCHITECTURE.md). Edit, then run\n"
		"# `moat broker config` to regenerate what derives from it.\n"
		"[deployment]\n"
		"format = %s\n"
		"name = %s\n"
		"\n"
		"[broker]\n"
		"# names and addresses devices use to reach the broker and the update server;\n"
		"# every one is a subjectAltName of pki/server.crt\n"
		"hosts = %s\n"
		"port = %d\n"
		"\n"
		"[server]\n"
		"port = %d\n"
		"\n"
		"[pki]\n"
		"key_type = %s\n"
		"ca_days = %lld\n"
		"identity_days = %d\n"
		"server_days = %d\n"
		"crl_days = %d\n",
		MOAT_CONF_FORMAT, name, host_list, opts->broker_port, opts->server_port,
		moat_key_type_name(opts->key_type), (long long)opts->ca_days,
		MOAT_IDENTITY_DAYS_DEFAULT, MOAT_SERVER_DAYS_DEFAULT, MOAT_CRL_DAYS_DEFAULT);
	if (n < 0 || (size_t)n >= sizeof(text)) {
		return moat_err_set(err, MOAT_EINVAL, "moat.conf: too long");
	}
	return moat_fs_write_atomic(path, text, (size_t)n, 0644, err);
}

/* Writes "<dir>/<rel>" atomically. */
static int put(const char *dir, const char *rel, const char *data, size_t len, mode_t mode,
	       struct moat_err *err)
{
	char p[PATH_MAX];
	int rc = moat_path_join(p, sizeof(p), err, "%s/%s", dir, rel);
	if (rc == 0) {
		rc = moat_fs_write_atomic(p, data, len, mode, err);
	}
	return rc;
}

/* Everything after the directory exists: config, PKI, registry, CRL. */
static int populate(const char *dir, const struct moat_init_opts *opts, const char *name,
		    const char *const *hosts, size_t host_count, const char *passphrase,
		    struct moat_err *err)
{
	static const char *const subdirs[] = {"pki",	       "pki/identities",
					      "broker",	       "firmware",
					      "firmware/keys", "firmware/releases",
					      "log",	       "run"};
	static const mode_t subdir_modes[] = {0755, 0700, 0755, 0755, 0700, 0755, 0755, 0755};
	int rc;
	char p[PATH_MAX];
	struct moat_ca *ca = NULL;
	struct moat_issued server = {0};
	struct moat_registry *reg = NULL;
	char *cert_pem = NULL;
	char *key_pem = NULL;
	size_t cert_len = 0;
	size_t key_len = 0;
	char *crl_pem = NULL;
	size_t crl_len = 0;

	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		if ((rc = moat_path_join(p, sizeof(p), err, "%s/%s", dir, subdirs[i])) != 0 ||
		    (rc = moat_fs_mkdirs(p, subdir_modes[i], err)) != 0) {
			goto out;
		}
		/* mkdirs honours the umask; the mode is part of the contract */
		if (chmod(p, subdir_modes[i]) != 0) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "%s", p);
			goto out;
		}
	}
	if ((rc = moat_path_join(p, sizeof(p), err, "%s/moat.conf", dir)) != 0 ||
	    (rc = write_conf(p, name, hosts, host_count, opts, err)) != 0) {
		goto out;
	}
	if ((rc = moat_pki_ca_create(name, opts->key_type, opts->now, opts->ca_days, &ca, err)) !=
		    0 ||
	    (rc = moat_pki_ca_export(ca, passphrase, &cert_pem, &cert_len, &key_pem, &key_len,
				     err)) != 0 ||
	    (rc = put(dir, "pki/ca.key", key_pem, key_len, 0600, err)) != 0 ||
	    (rc = put(dir, "pki/ca.crt", cert_pem, cert_len, 0644, err)) != 0) {
		goto out;
	}

	/* The server certificate names every configured host: DNS names and IP addresses. */
	const char *dns[MOAT_HOSTS_MAX];
	const char *ips[MOAT_HOSTS_MAX];
	size_t ndns = 0;
	size_t nips = 0;
	for (size_t i = 0; i < host_count; i++) {
		if (deploy_host_is_ip(hosts[i])) {
			ips[nips++] = hosts[i];
		} else {
			dns[ndns++] = hosts[i];
		}
	}
	char server_cn[MOAT_HOST_MAX_LEN + 1];
	snprintf(server_cn, sizeof(server_cn), "%s", ndns ? dns[0] : ips[0]);
	struct moat_issue_req req = {
		.cn = server_cn,
		.kind = MOAT_CERT_SERVER,
		.key_type = opts->key_type,
		.not_before = opts->now - 300, /* tolerate small clock skew on devices */
		.not_after = opts->now + MOAT_SERVER_DAYS_DEFAULT * 86400LL,
		.san_dns = dns,
		.san_dns_count = ndns,
		.san_ip = ips,
		.san_ip_count = nips,
	};
	uint8_t serial[MOAT_SERIAL_BYTES];
	char serial_hex[MOAT_SERIAL_HEX_LEN];
	if ((rc = moat_pki_random_serial(serial, serial_hex, err)) != 0 ||
	    (rc = moat_pki_issue(ca, &req, serial, &server, err)) != 0 ||
	    (rc = put(dir, "pki/server.key", server.key_pem, server.key_pem_len, 0600, err)) != 0 ||
	    (rc = put(dir, "pki/server.crt", server.cert_pem, server.cert_pem_len, 0644, err)) !=
		    0) {
		goto out;
	}

	if ((rc = moat_path_join(p, sizeof(p), err, "%s/registry.db", dir)) != 0 ||
	    (rc = moat_registry_open(p, true, &reg, err)) != 0 ||
	    (rc = moat_registry_meta_set_int(reg, "crl_number", 1, err)) != 0) {
		goto out;
	}
	if ((rc = moat_pki_crl_build(ca, NULL, 0, 1, opts->now, MOAT_CRL_DAYS_DEFAULT, &crl_pem,
				     &crl_len, err)) != 0 ||
	    (rc = put(dir, "pki/crl.pem", crl_pem, crl_len, 0644, err)) != 0) {
		goto out;
	}
	rc = moat_fs_sync_dir(dir, err);
out:
	moat_registry_close(reg);
	moat_pki_ca_free(ca);
	moat_pki_issued_free(&server);
	free(cert_pem);
	if (key_pem) {
		memset(key_pem, 0, key_len);
		free(key_pem);
	}
	free(crl_pem);
	return rc;
}

int moat_deploy_init(const struct moat_init_opts *given, const char *passphrase,
		     struct moat_err *err)
{
	int rc;
	char name[MOAT_ID_BUF_LEN];
	/* the defaults are resolved once, here; everything below sees final values */
	struct moat_init_opts o = *given;
	const struct moat_init_opts *opts = &o;
	if (o.broker_port == 0) {
		o.broker_port = MOAT_BROKER_PORT_DEFAULT;
	}
	if (o.server_port == 0) {
		o.server_port = MOAT_SERVER_PORT_DEFAULT;
	}
	if (o.ca_days == 0) {
		o.ca_days = MOAT_CA_DAYS_DEFAULT;
	}
	if (!opts->dir || !*opts->dir) {
		return moat_err_set(err, MOAT_EINVAL, "no deployment directory given");
	}
	if (!passphrase || strlen(passphrase) < MOAT_PASSPHRASE_MIN_LEN) {
		return moat_err_set(err, MOAT_EINVAL, "CA passphrase: at least %d characters",
				    MOAT_PASSPHRASE_MIN_LEN);
	}
	if (strlen(passphrase) > MOAT_PASSPHRASE_MAX_LEN) {
		return moat_err_set(err, MOAT_EINVAL, "CA passphrase: longer than %d characters",
				    MOAT_PASSPHRASE_MAX_LEN);
	}
	if (opts->name) {
		if ((rc = moat_identity_name_check(opts->name, err)) != 0) {
			moat_err_prefix(err, "--name");
			return rc;
		}
		snprintf(name, sizeof(name), "%s", opts->name);
	} else {
		default_name(opts->dir, name);
	}
	const char *const *hosts = opts->broker_host_count ? opts->broker_hosts : default_hosts;
	size_t host_count = opts->broker_host_count ? opts->broker_host_count : 2;
	if (host_count > MOAT_HOSTS_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "more than %d broker hosts", MOAT_HOSTS_MAX);
	}
	for (size_t i = 0; i < host_count; i++) {
		if ((rc = deploy_host_check(hosts[i], err)) != 0) {
			moat_err_prefix(err, "--broker-host");
			return rc;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(hosts[i], hosts[j]) == 0) {
				return moat_err_set(err, MOAT_EINVAL,
						    "--broker-host %s given twice", hosts[i]);
			}
		}
	}
	if (o.broker_port < 1 || o.broker_port > 65535 || o.server_port < 1 ||
	    o.server_port > 65535) {
		return moat_err_set(err, MOAT_EINVAL, "ports are 1 to 65535");
	}
	if (o.broker_port == o.server_port) {
		return moat_err_set(err, MOAT_EINVAL, "broker and server ports must differ");
	}
	if (o.ca_days < 1 || o.ca_days > 36500) {
		return moat_err_set(err, MOAT_EINVAL, "CA validity: 1 to 36500 days");
	}

	bool exists = false;
	bool empty = true;
	if ((rc = dir_state(opts->dir, &exists, &empty, err)) != 0) {
		return rc;
	}
	if (exists && !empty) {
		char conf[PATH_MAX];
		if (moat_path_join(conf, sizeof(conf), err, "%s/moat.conf", opts->dir) == 0 &&
		    moat_fs_exists(conf)) {
			return moat_err_set(err, MOAT_EEXIST,
					    "%s: already a moat deployment; refusing to touch it",
					    opts->dir);
		}
		return moat_err_set(
			err, MOAT_EEXIST,
			"%s: directory is not empty; refusing to create a deployment in it",
			opts->dir);
	}
	if (!exists) {
		if (mkdir(opts->dir, 0755) != 0) {
			return moat_err_errno(err, errno == EEXIST ? MOAT_EEXIST : MOAT_EIO, errno,
					      "%s", opts->dir);
		}
		/* the broker's user must traverse it (secrets inside are 0600/0700 themselves);
		 * mkdir honoured the umask */
		if (chmod(opts->dir, 0755) != 0) {
			int e = errno;
			deploy_remove_quietly(opts->dir);
			return moat_err_errno(err, MOAT_EIO, e, "%s", opts->dir);
		}
	}
	rc = populate(opts->dir, opts, name, hosts, host_count, passphrase, err);
	if (rc == 0 && geteuid() == 0) {
		/* moatd's account (created when absent) and what it may read and write */
		struct moat_deploy *d = NULL;
		rc = moat_deploy_open(opts->dir, MOAT_DEPLOY_READ, &d, err);
		if (rc == 0) {
			rc = moat_deploy_own(d, MOAT_DEPLOY_OWN_CREATE, err);
		}
		moat_deploy_close(d);
	}
	if (rc != 0) {
		if (exists) {
			empty_dir(opts->dir);
		} else {
			deploy_remove_quietly(opts->dir);
		}
	}
	return rc;
}
