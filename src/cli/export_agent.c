/* export_agent.c: `moat device export ID --format agent --out DIR` writes what moat-agent
 * needs on the device: agent.conf (INI, paths relative to DIR), cert.pem, key.pem (0600)
 * and ca.crt. Every file is written atomically; the key never leaves a 0600 file. For a
 * device added with --enroll (or --claim-cn) it writes an enrolling configuration instead:
 * agent.conf with [enroll] and the root CA, no key and no certificate (the device makes
 * its key and enrolls over EST); the token (shown once by `moat device add`, never
 * stored) goes into DIR/enroll.token, or the claim certificate and key into
 * DIR/claim.crt and DIR/claim.key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "moat/agent_conf.h"
#include "moat/fsutil.h"
#include "moat/provision.h"

static int copy_file(const char *from, const char *dir, const char *name, mode_t mode,
		     struct moat_err *err)
{
	char to[PATH_MAX];
	char *data = NULL;
	size_t len = 0;
	int rc;
	if ((rc = moat_path_join(to, sizeof(to), err, "%s/%s", dir, name)) != 0 ||
	    (rc = moat_fs_read_all(from, MOAT_FILE_MAX_BYTES, &data, &len, err)) != 0) {
		return rc;
	}
	rc = moat_fs_write_atomic(to, data, len, mode, err);
	OPENSSL_cleanse(data, len);
	free(data);
	return rc;
}

static int write_conf(const struct moat_agent_conf *conf, const char *out_dir, struct moat_err *err)
{
	char path[PATH_MAX];
	char *text = NULL;
	size_t len = 0;
	int rc;
	if ((rc = moat_agent_conf_format(conf, &text, &len, err)) != 0) {
		return rc;
	}
	if ((rc = moat_path_join(path, sizeof(path), err, "%s/agent.conf", out_dir)) == 0) {
		rc = moat_fs_write_atomic(path, text, len, 0600, err);
	}
	free(text);
	return rc;
}

static int export_enrolling(struct moat_deploy *d, const char *id, const char *out_dir,
			    struct moat_err *err)
{
	struct moat_agent_conf conf;
	int rc;
	if ((rc = moat_agent_conf_enrolling(d, id, &conf, err)) != 0 ||
	    (rc = copy_file(conf.ca_file, out_dir, "ca.crt", 0644, err)) != 0) {
		return rc;
	}
	snprintf(conf.ca_file, sizeof(conf.ca_file), "ca.crt");
	conf.enroll_dir[0] = '\0'; /* the default: state_dir/identity, relative to the file */
	return write_conf(&conf, out_dir, err);
}

int cli_export_agent(struct moat_deploy *d, const char *id, const char *out_dir,
		     bool *out_enrolling, struct moat_err *err)
{
	struct moat_agent_conf conf;
	int rc;
	bool enrolls = false;
	if ((rc = moat_agent_enrolls(d, id, &enrolls, err)) != 0) {
		return rc;
	}
	*out_enrolling = enrolls;
	if (enrolls) {
		return export_enrolling(d, id, out_dir, err);
	}
	if ((rc = moat_agent_conf_for(d, id, &conf, err)) != 0) {
		return rc;
	}
	if ((rc = copy_file(conf.cert_file, out_dir, "cert.pem", 0644, err)) != 0 ||
	    (rc = copy_file(conf.key_file, out_dir, "key.pem", 0600, err)) != 0 ||
	    (rc = copy_file(conf.ca_file, out_dir, "ca.crt", 0644, err)) != 0) {
		return rc;
	}
	/* relative to the file, so the bundle can be moved to the device as a directory */
	snprintf(conf.cert_file, sizeof(conf.cert_file), "cert.pem");
	snprintf(conf.key_file, sizeof(conf.key_file), "key.pem");
	snprintf(conf.ca_file, sizeof(conf.ca_file), "ca.crt");
	snprintf(conf.state_dir, sizeof(conf.state_dir), "state");
	return write_conf(&conf, out_dir, err);
}
