/* export.c: `moat device export` / `moat identity export`: an identity in the form a device
 * consumes, built whole in memory first, then written all or nothing.
 *
 *   pem       cert.pem, key.pem (0600), ca.crt
 *   p12       ID.p12 (0600), under a password
 *   c-header  moat_credentials.h (0600): credentials, the broker's host and port and the
 *             firmware rules (moat_pki_export_c_header)
 *   agent     what moat-agent needs: agent.conf (INI, paths relative to DIR), cert.pem,
 *             key.pem (0600) and ca.crt; for a device added with --enroll (or --claim-cn) an
 *             enrolling configuration instead: agent.conf with [enroll] and the root CA, no
 *             key and no certificate (the device makes its key and enrolls over EST); the
 *             token (shown once by `moat device add`, never stored) goes into
 *             DIR/enroll.token, or the claim certificate and key into DIR/claim.crt and
 *             DIR/claim.key.
 *
 * Writing: a file already in DIR is refused unless force; every file is first written
 * (atomically, fsynced) under a staging name, and only when all are there renamed into
 * place, so an export that fails leaves no new file behind.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "moat/agent_conf.h"
#include "moat/broker.h"
#include "moat/fsutil.h"
#include "moat/policy.h"
#include "moat/provision.h"

/* Takes data (malloc'd, len bytes) into x as file name. */
static int add_file(struct cli_export *x, const char *name, char *data, size_t len, mode_t mode,
		    struct moat_err *err)
{
	if (x->count >= CLI_EXPORT_MAX_FILES) {
		OPENSSL_cleanse(data, len);
		free(data);
		return moat_err_set(err, MOAT_EINVAL, "export: too many files");
	}
	struct cli_export_file *f = &x->files[x->count++];
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->data = data;
	f->len = len;
	f->mode = mode;
	return 0;
}

static int add_copy(struct cli_export *x, const char *from, const char *name, mode_t mode,
		    struct moat_err *err)
{
	char *data = NULL;
	size_t len = 0;
	int rc = moat_fs_read_all(from, MOAT_FILE_MAX_BYTES, &data, &len, err);
	return rc != 0 ? rc : add_file(x, name, data, len, mode, err);
}

static int add_conf(struct cli_export *x, const struct moat_agent_conf *conf, struct moat_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc = moat_agent_conf_format(conf, &text, &len, err);
	return rc != 0 ? rc : add_file(x, "agent.conf", text, len, 0600, err);
}

static int prepare_agent(struct moat_deploy *d, const char *id, struct cli_export *x,
			 struct moat_err *err)
{
	struct moat_agent_conf conf;
	int rc;
	if ((rc = moat_agent_enrolls(d, id, &x->enrolling, err)) != 0) {
		return rc;
	}
	if (x->enrolling) {
		if ((rc = moat_agent_conf_enrolling(d, id, &conf, err)) != 0 ||
		    (rc = add_copy(x, conf.ca_file, "ca.crt", 0644, err)) != 0) {
			return rc;
		}
		snprintf(conf.ca_file, sizeof(conf.ca_file), "ca.crt");
		conf.enroll_dir[0] = '\0'; /* the default: state_dir/identity, relative to the file
					    */
		return add_conf(x, &conf, err);
	}
	if ((rc = moat_agent_conf_for(d, id, &conf, err)) != 0 ||
	    (rc = add_copy(x, conf.cert_file, "cert.pem", 0644, err)) != 0 ||
	    (rc = add_copy(x, conf.key_file, "key.pem", 0600, err)) != 0 ||
	    (rc = add_copy(x, conf.ca_file, "ca.crt", 0644, err)) != 0) {
		return rc;
	}
	/* relative to the file, so the bundle can be moved to the device as a directory */
	snprintf(conf.cert_file, sizeof(conf.cert_file), "cert.pem");
	snprintf(conf.key_file, sizeof(conf.key_file), "key.pem");
	snprintf(conf.ca_file, sizeof(conf.ca_file), "ca.crt");
	snprintf(conf.state_dir, sizeof(conf.state_dir), "state");
	return add_conf(x, &conf, err);
}

static int read_identity_file(struct moat_deploy *d, const char *id, const char *file, char **out,
			      size_t *out_len, struct moat_err *err)
{
	char p[PATH_MAX];
	int rc = moat_deploy_identity_path(d, id, file, p, sizeof(p), err);
	if (rc == 0) {
		rc = moat_fs_read_all(p, 1024 * 1024, out, out_len, err);
	}
	return rc;
}

/* The broker a firmware must reach, from moat.conf: its first [broker] host, its port and
 * the device limits of [policy]. */
static int header_broker(struct moat_deploy *d, struct moat_c_header_broker *out,
			 struct moat_err *err)
{
	const struct moat_deploy_conf *conf = moat_deploy_settings(d);
	struct moat_policy p;
	moat_policy_init(&p);
	int rc = moat_broker_policy_limits(moat_deploy_config(d), &p, err);
	*out = (struct moat_c_header_broker){
		.host = conf->broker_hosts[0],
		.port = conf->broker_port,
		.max_payload = p.limits[MOAT_ROLE_DEVICE].max_payload,
		.msgs_per_s = p.limits[MOAT_ROLE_DEVICE].msgs_per_s,
	};
	moat_policy_free(&p);
	return rc;
}

static int prepare_files(struct moat_deploy *d, const char *id, const char *format,
			 const char *password, struct cli_export *x, struct moat_err *err)
{
	char *pem[3] = {NULL, NULL, NULL}; /* cert, key, ca */
	size_t len[3] = {0, 0, 0};
	static const char *const names[3] = {"cert.pem", "key.pem", "ca.crt"};
	int rc = 0;
	for (size_t i = 0; i < 3 && rc == 0; i++) {
		rc = read_identity_file(d, id, names[i], &pem[i], &len[i], err);
	}
	if (rc == 0 && strcmp(format, "pem") == 0) {
		for (size_t i = 0; i < 3 && rc == 0; i++) {
			rc = add_file(x, names[i], pem[i], len[i], i == 1 ? 0600 : 0644, err);
			pem[i] = NULL;
		}
	} else if (rc == 0 && strcmp(format, "p12") == 0) {
		unsigned char *der = NULL;
		size_t der_len = 0;
		char name[MOAT_ID_BUF_LEN + 8];
		snprintf(name, sizeof(name), "%s.p12", id);
		if ((rc = moat_pki_export_p12(pem[0], pem[1], pem[2], id, password, &der, &der_len,
					      err)) == 0) {
			rc = add_file(x, name, (char *)der, der_len, 0600, err);
		}
	} else if (rc == 0 && strcmp(format, "c-header") == 0) {
		struct moat_c_header_broker b;
		char *text = NULL;
		size_t n = 0;
		if ((rc = header_broker(d, &b, err)) == 0 &&
		    (rc = moat_pki_export_c_header(id, pem[0], pem[1], pem[2], &b, &text, &n,
						   err)) == 0) {
			rc = add_file(x, "moat_credentials.h", text, n, 0600, err);
		}
	} else if (rc == 0) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "--format: '%s' is not pem, p12, c-header or agent", format);
	}
	for (size_t i = 0; i < 3; i++) {
		if (pem[i]) {
			OPENSSL_cleanse(pem[i], len[i]);
			free(pem[i]);
		}
	}
	return rc;
}

int cli_export_prepare(struct moat_deploy *d, const char *id, const char *format,
		       const char *password, struct cli_export *out, struct moat_err *err)
{
	memset(out, 0, sizeof(*out));
	int rc = strcmp(format, "agent") == 0 ? prepare_agent(d, id, out, err)
					      : prepare_files(d, id, format, password, out, err);
	if (rc != 0) {
		cli_export_free(out);
	}
	return rc;
}

/* The staging name of file i in dir: ".NAME.moat-export". */
static int staging_path(char *buf, size_t size, const char *dir, const char *name,
			struct moat_err *err)
{
	return moat_path_join(buf, size, err, "%s/.%s.moat-export", dir, name);
}

int cli_export_check(const struct cli_export *x, const char *out_dir, bool force,
		     struct moat_err *err)
{
	for (size_t i = 0; i < x->count && !force; i++) {
		char p[PATH_MAX];
		int rc = moat_path_join(p, sizeof(p), err, "%s/%s", out_dir, x->files[i].name);
		if (rc != 0) {
			return rc;
		}
		struct stat st;
		if (lstat(p, &st) == 0) { /* a dangling symbolic link is in the way too */
			return moat_err_set(err, MOAT_EEXIST,
					    "%s exists: nothing written (--force overwrites)", p);
		}
	}
	return 0;
}

int cli_export_write(const struct cli_export *x, const char *out_dir, bool force,
		     struct moat_err *err)
{
	char from[PATH_MAX];
	char to[PATH_MAX];
	size_t staged = 0;
	int rc = cli_export_check(x, out_dir, force, err);
	if (rc == 0) {
		rc = moat_fs_mkdirs(out_dir, 0700, err);
	}
	for (; rc == 0 && staged < x->count; staged++) {
		const struct cli_export_file *f = &x->files[staged];
		if ((rc = staging_path(from, sizeof(from), out_dir, f->name, err)) == 0) {
			rc = moat_fs_write_atomic(from, f->data, f->len, f->mode, err);
		}
		if (rc != 0) {
			break;
		}
	}
	/* every file is on disk: renaming them in is all that is left */
	for (size_t i = 0; rc == 0 && i < x->count; i++) {
		if ((rc = staging_path(from, sizeof(from), out_dir, x->files[i].name, err)) == 0 &&
		    (rc = moat_path_join(to, sizeof(to), err, "%s/%s", out_dir,
					 x->files[i].name)) == 0 &&
		    rename(from, to) != 0) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "%s", to);
		}
	}
	if (rc != 0) {
		for (size_t i = 0; i < staged; i++) {
			if (staging_path(from, sizeof(from), out_dir, x->files[i].name, NULL) ==
			    0) {
				unlink(from);
			}
		}
		return rc;
	}
	return moat_fs_sync_dir(out_dir, err);
}

void cli_export_free(struct cli_export *x)
{
	for (size_t i = 0; i < x->count; i++) {
		if (x->files[i].data) {
			OPENSSL_cleanse(x->files[i].data, x->files[i].len);
			free(x->files[i].data);
		}
	}
	memset(x, 0, sizeof(*x));
}
