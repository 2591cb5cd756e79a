/* init.c: `moat init`: creates a deployment directory with its root CA, its online issuing
 * CA (unless single-tier), server certificate, empty CRL, registry and moat.conf. Everything is
 * written into a fresh directory; on any failure the whole directory (or, for a pre-existing empty
 * directory, everything put in it) is removed, so a failed init leaves nothing that looks like a
 * deployment. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

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

/* The [client] host moat init writes: deploy_client_host_default, else 127.0.0.1 (the
 * broker then listens on every address, and the server certificate names it too). */
static const char *init_client_host(const char *const *hosts, size_t count)
{
	const char *h = deploy_client_host_default(hosts, count);
	return h ? h : "127.0.0.1";
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
		"[client]\n"
		"# how moat cmd, watch, sim and moatd reach the broker from this machine (--host\n"
		"# overrides it); a subjectAltName of pki/server.crt too\n"
		"host = %s\n"
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
		MOAT_CONF_FORMAT, name, host_list, opts->broker_port,
		init_client_host(hosts, host_count), opts->server_port,
		moat_key_type_name(opts->key_type), (long long)opts->ca_days,
		MOAT_IDENTITY_DAYS_DEFAULT, MOAT_SERVER_DAYS_DEFAULT, MOAT_CRL_DAYS_DEFAULT);
	if (n < 0 || (size_t)n >= sizeof(text)) {
		return moat_err_set(err, MOAT_EINVAL, "moat.conf: too long");
	}
	/* Token settings: values are one line each (a URI has no newline once parsed; paths
	 * are checked here). */
	const char *const keys[] = {"pkcs11_module", "issuer_pkcs11_uri", "issuer_pin_file"};
	const char *const values[] = {opts->pkcs11_module, opts->issuer_pkcs11_uri,
				      opts->issuer_pin_file};
	for (size_t i = 0; i < 3 && !opts->single_tier; i++) {
		if (!values[i]) {
			continue;
		}
		if (strpbrk(values[i], "\r\n") || !values[i][0]) {
			return moat_err_set(err, MOAT_EINVAL, "[pki] %s: empty or not one line",
					    keys[i]);
		}
		int m = snprintf(text + n, sizeof(text) - (size_t)n, "%s = %s\n", keys[i],
				 values[i]);
		if (m < 0 || (size_t)m >= sizeof(text) - (size_t)n) {
			return moat_err_set(err, MOAT_EINVAL, "moat.conf: too long");
		}
		n += m;
	}
	if (opts->registry_url) {
		/* checked by moat_deploy_init: one line, no password */
		int m = snprintf(text + n, sizeof(text) - (size_t)n,
				 "\n[registry]\n# the registry on PostgreSQL (its password in "
				 "~/.pgpass or PGPASSFILE)\nurl = %s\n",
				 opts->registry_url);
		if (m < 0 || (size_t)m >= sizeof(text) - (size_t)n) {
			return moat_err_set(err, MOAT_EINVAL, "moat.conf: too long");
		}
		n += m;
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
	struct moat_ca *issuer = NULL;
	char *chain_pem = NULL; /* the issuing CA's certificate, after the server's */
	size_t chain_len = 0;
	char *issuer_key = NULL;
	size_t issuer_key_len = 0;
	char *server_pem = NULL;
	size_t server_len = 0;
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
	if ((rc = (opts->single_tier ? moat_pki_ca_create
				     : moat_pki_root_create)(name, opts->key_type, opts->now,
							     opts->ca_days, &ca, err)) != 0 ||
	    (rc = moat_pki_ca_export(ca, passphrase, &cert_pem, &cert_len, &key_pem, &key_len,
				     err)) != 0 ||
	    (rc = put(dir, "pki/ca.key", key_pem, key_len, 0600, err)) != 0 ||
	    (rc = put(dir, "pki/ca.crt", cert_pem, cert_len, 0644, err)) != 0) {
		goto out;
	}
	const struct moat_ca *signer = ca;
	if (!opts->single_tier) {
		int64_t end = 0;
		EVP_PKEY *token_key = NULL;
		rc = deploy_not_after(ca, opts->now, opts->issuer_days, MOAT_ISSUER_DAYS_DEFAULT,
				      "the issuing CA", &end, err);
		if (rc == 0 && opts->issuer_pkcs11_uri) {
			rc = deploy_token_key(opts->issuer_pkcs11_uri, opts->pkcs11_module,
					      opts->issuer_pin_file, &token_key, err);
			if (rc == 0) {
				rc = moat_pki_issuer_certify(ca, 1, token_key, opts->now, end,
							     &issuer, err);
			}
		} else if (rc == 0) {
			rc = moat_pki_issuer_create(ca, 1, opts->key_type, opts->now, end, &issuer,
						    err);
		}
		EVP_PKEY_free(token_key);
		if (rc != 0 || (rc = deploy_issuer_write(dir, issuer, cert_pem, cert_len, NULL, 0,
							 err)) != 0) {
			goto out;
		}
		/* The certificate the server's follows; a token's key is never encoded. */
		if (opts->issuer_pkcs11_uri) {
			rc = moat_path_join(p, sizeof(p), err, "%s/%s", dir, MOAT_ISSUER_CERT_FILE);
			if (rc == 0) {
				rc = moat_fs_read_all(p, MOAT_FILE_MAX_BYTES, &chain_pem,
						      &chain_len, err);
			}
		} else {
			rc = moat_pki_issuer_export(issuer, &chain_pem, &chain_len, &issuer_key,
						    &issuer_key_len, err);
		}
		if (rc != 0) {
			goto out;
		}
		signer = issuer;
	}

	/* The server certificate names every configured host (DNS names and IP addresses)
	 * and the [client] host. */
	const char *dns[MOAT_HOSTS_MAX + 1];
	const char *ips[MOAT_HOSTS_MAX + 1];
	size_t ndns = 0;
	size_t nips = 0;
	const char *client = init_client_host(hosts, host_count);
	bool client_listed = false;
	for (size_t i = 0; i < host_count; i++) {
		if (deploy_host_is_ip(hosts[i])) {
			ips[nips++] = hosts[i];
		} else {
			dns[ndns++] = hosts[i];
		}
		client_listed = client_listed || strcmp(hosts[i], client) == 0;
	}
	if (!client_listed) {
		ips[nips++] = client; /* 127.0.0.1 */
	}
	int64_t server_end = 0;
	if ((rc = deploy_not_after(signer, opts->now, 0, MOAT_SERVER_DAYS_DEFAULT, "the server",
				   &server_end, err)) != 0) {
		goto out;
	}
	char server_cn[MOAT_HOST_MAX_LEN + 1];
	snprintf(server_cn, sizeof(server_cn), "%s", ndns ? dns[0] : ips[0]);
	struct moat_issue_req req = {
		.cn = server_cn,
		.kind = MOAT_CERT_SERVER,
		.key_type = opts->key_type,
		.not_before = opts->now - 300, /* tolerate small clock skew on devices */
		.not_after = server_end,
		.san_dns = dns,
		.san_dns_count = ndns,
		.san_ip = ips,
		.san_ip_count = nips,
	};
	uint8_t serial[MOAT_SERIAL_BYTES];
	char serial_hex[MOAT_SERIAL_HEX_LEN];
	if ((rc = moat_pki_random_serial(serial, serial_hex, err)) != 0 ||
	    (rc = moat_pki_issue(signer, &req, serial, &server, err)) != 0) {
		goto out;
	}
	server_len = server.cert_pem_len + chain_len;
	server_pem = malloc(server_len + 1);
	if (!server_pem) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(server_pem, server.cert_pem, server.cert_pem_len);
	if (chain_len) {
		memcpy(server_pem + server.cert_pem_len, chain_pem, chain_len);
	}
	if ((rc = put(dir, "pki/server.key", server.key_pem, server.key_pem_len, 0600, err)) != 0 ||
	    (rc = put(dir, "pki/server.crt", server_pem, server_len, 0644, err)) != 0) {
		goto out;
	}

	if ((rc = moat_pki_crl_build(signer, NULL, 0, 1, opts->now, MOAT_CRL_DAYS_DEFAULT, &crl_pem,
				     &crl_len, err)) != 0 ||
	    (rc = put(dir, "pki/crl.pem", crl_pem, crl_len, 0644, err)) != 0) {
		goto out;
	}
	/* the registry last: a database on PostgreSQL outlives a failed init's directory, so
	 * little comes after it is made (its meta row, the directory's sync and, as root, the
	 * daemons' accounts and ownership may still fail: the schema then stays in the
	 * database, and a second init there is refused until it is emptied) */
	if (opts->registry_url) {
		snprintf(p, sizeof(p), "%s", opts->registry_url);
	} else if ((rc = moat_path_join(p, sizeof(p), err, "%s/registry.db", dir)) != 0) {
		goto out;
	}
	if ((rc = moat_registry_open(p, true, &reg, err)) != 0 ||
	    (rc = moat_registry_meta_set_int(reg, "crl_number", 1, err)) != 0) {
		goto out;
	}
	rc = moat_fs_sync_dir(dir, err);
out:
	moat_registry_close(reg);
	moat_pki_ca_free(ca);
	moat_pki_ca_free(issuer);
	moat_pki_issued_free(&server);
	free(server_pem);
	free(chain_pem);
	if (issuer_key) {
		OPENSSL_cleanse(issuer_key, issuer_key_len);
		free(issuer_key);
	}
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
	if (o.issuer_days < 0 || o.issuer_days > 36500) {
		return moat_err_set(err, MOAT_EINVAL, "issuing CA validity: 1 to 36500 days");
	}
	if (o.registry_url && (rc = moat_registry_url_check(o.registry_url, err)) != 0) {
		moat_err_prefix(err, "--registry-url");
		return rc;
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
