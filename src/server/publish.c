/* publish.c: `moat fw publish` as a library call. A release is accepted only when a device
 * of its type would accept it right now (moat_fw_verify_trusted with the deployment's
 * trust list) and it is newer than every release of its type; the image is then copied
 * into firmware/releases/<type>/<version>/ while being hashed again, so a file changed
 * between the check and the copy is refused instead of served. The registry row is written
 * last: moatd never sees a release whose files are not complete.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moat/deploy.h"
#include "moat/firmware.h"
#include "moat/fsutil.h"
#include "moat/fwverify.h"
#include "moat/release.h"
#include "server_internal.h"

#define COPY_BUF_BYTES (64u * 1024u)

/* Copies src to dst through a temporary file, refusing unless the bytes copied are
 * exactly the manifest's size and digest. */
static int copy_verified(const char *src, const char *dst, const struct moat_manifest *m,
			 struct moat_err *err)
{
	int rc = MOAT_EIO;
	int in = -1;
	int outfd = -1;
	char tmp[PATH_MAX];
	bool tmp_made = false;
	unsigned char *buf = NULL;
	struct moat_fw_stream s;
	bool stream_ok = false;

	if ((rc = moat_path_join(tmp, sizeof(tmp), err, "%s.tmp.%d", dst, (int)getpid())) != 0) {
		goto out;
	}
	if ((rc = moat_fw_stream_init(&s, m, err)) != 0) {
		goto out;
	}
	stream_ok = true;
	buf = malloc(COPY_BUF_BYTES);
	if (!buf) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", src);
		goto out;
	}
	outfd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (outfd < 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", tmp);
		goto out;
	}
	tmp_made = true;
	/* moatd (its own account) serves it: the mode exact whatever root's umask is */
	if (fchmod(outfd, 0644) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s: chmod", tmp);
		goto out;
	}
	for (;;) {
		ssize_t n = read(in, buf, COPY_BUF_BYTES);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "%s", src);
			goto out;
		}
		if (n == 0) {
			break;
		}
		if ((rc = moat_fw_stream_update(&s, buf, (size_t)n, err)) != 0) {
			moat_err_prefix(err, "%s changed while publishing", src);
			goto out;
		}
		if (moat_fs_write_fd(outfd, buf, (size_t)n) != 0) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "%s", tmp);
			goto out;
		}
	}
	if ((rc = moat_fw_stream_final(&s, err)) != 0) {
		moat_err_prefix(err, "%s changed while publishing", src);
		goto out;
	}
	if (fsync(outfd) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", tmp);
		goto out;
	}
	if (close(outfd) != 0) {
		outfd = -1;
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", tmp);
		goto out;
	}
	outfd = -1;
	if (rename(tmp, dst) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", dst);
		goto out;
	}
	tmp_made = false;
	rc = 0;
out:
	if (outfd >= 0) {
		close(outfd);
	}
	if (tmp_made) {
		unlink(tmp);
	}
	if (in >= 0) {
		close(in);
	}
	if (stream_ok) {
		moat_fw_stream_free(&s);
	}
	free(buf);
	return rc;
}

static int check_devices(struct moat_registry *reg, const struct moat_publish_req *req,
			 const char *device_type, struct moat_err *err)
{
	for (size_t i = 0; i < req->device_count; i++) {
		struct moat_identity ident;
		int rc = moat_registry_identity_get(reg, req->devices[i], &ident, err);
		if (rc != 0) {
			moat_err_prefix(err, "--devices");
			return rc;
		}
		if (ident.role != MOAT_ROLE_DEVICE || strcmp(ident.device_type, device_type) != 0) {
			return moat_err_set(err, MOAT_EINVAL,
					    "--devices: %s is not a device of type %s", ident.id,
					    device_type);
		}
	}
	return 0;
}

/* Reads the envelope at req->envelope_path and checks the image against it with the
 * deployment's trust list, as a device of the type the manifest claims would check it now.
 * *out_json (caller frees) is the envelope, *out_m the verified manifest. */
static int verify_release(struct moat_deploy *d, const struct moat_publish_req *req,
			  char **out_json, size_t *out_len, struct moat_manifest *out_m,
			  struct moat_err *err)
{
	struct moat_envelope env;
	struct moat_manifest unverified;
	char path[PATH_MAX];
	int rc = moat_fs_read_all(req->envelope_path, MOAT_ENVELOPE_MAX_BYTES, out_json, out_len,
				  err);
	if (rc != 0) {
		return rc;
	}
	/* The type is read before verification only to choose the policy; moat_fw_decide
	 * checks the signed manifest against exactly this type. */
	if ((rc = moat_envelope_parse(*out_json, *out_len, &env, err)) != 0 ||
	    (rc = moat_manifest_parse(env.payload, env.payload_len, &unverified, err)) != 0) {
		moat_err_prefix(err, "%s", req->envelope_path);
		return rc;
	}
	struct moat_fw_policy pol = {
		.purpose = MOAT_FW_FOR_INSTALL,
		.device_type = unverified.device_type,
		.current_version = NULL,
		.security_floor = 0,
		.now = req->now,
		.last_issued_at = 0,
	};
	if ((rc = moat_deploy_path(d, path, sizeof(path), MOAT_FW_KEYS_DIR "/" MOAT_FW_TRUST_FILE,
				   err)) != 0) {
		return rc;
	}
	return moat_fw_verify_trusted(path, req->image_path, *out_json, *out_len, &pol, out_m, err);
}

/* A release must be newer than the newest of its type, and never lower its security
 * version. */
static int check_newer(struct moat_registry *reg, const struct moat_manifest *m,
		       struct moat_err *err)
{
	struct moat_release newest;
	bool found = false;
	int cmp = 0;
	int rc = moat_release_newest(reg, m->device_type, NULL, &newest, &found, err);
	if (rc != 0 || !found) {
		return rc;
	}
	if ((rc = moat_semver_compare(m->version, newest.version, &cmp, err)) != 0) {
		return rc;
	}
	if (cmp <= 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "version %s is not newer than %s, the newest release for %s",
				    m->version, newest.version, m->device_type);
	}
	if (m->security_version < newest.security_version) {
		return moat_err_set(err, MOAT_EINVAL,
				    "security_version %lld is below %lld of release %s for %s",
				    (long long)m->security_version,
				    (long long)newest.security_version, newest.version,
				    m->device_type);
	}
	return 0;
}

/* Writes the image (copied while hashed again) and the envelope into
 * firmware/releases/<type>/<version>/. */
static int store_files(struct moat_deploy *d, const char *image_path, const char *json,
		       size_t json_len, const struct moat_manifest *m, struct moat_err *err)
{
	char dir[PATH_MAX];
	char path[PATH_MAX];
	int rc;
	/* Versions are semantic versions ([0-9A-Za-z.+-], never "." or "..") and types pass
	 * moat_device_type_check, so both are safe path components. */
	if ((rc = moat_device_type_check(m->device_type, err)) != 0 ||
	    (rc = moat_path_join(dir, sizeof(dir), err, "%s/%s/%s/%s", moat_deploy_dir(d),
				 MOAT_RELEASES_DIR, m->device_type, m->version)) != 0 ||
	    (rc = moat_fs_mkdirs(dir, 0755, err)) != 0 ||
	    (rc = moat_path_join(path, sizeof(path), err, "%s/%s", dir, MOAT_RELEASE_IMAGE_FILE)) !=
		    0 ||
	    (rc = copy_verified(image_path, path, m, err)) != 0 ||
	    (rc = moat_path_join(path, sizeof(path), err, "%s/%s", dir,
				 MOAT_RELEASE_ENVELOPE_FILE)) != 0 ||
	    (rc = moat_fs_write_atomic(path, json, json_len, 0644, err)) != 0) {
		return rc;
	}
	return moat_fs_sync_dir(dir, err);
}

int moat_release_publish(struct moat_deploy *d, const struct moat_publish_req *req,
			 struct moat_release *out, struct moat_err *err)
{
	int rc;
	char *json = NULL;
	size_t json_len = 0;
	struct moat_manifest m;
	struct moat_registry *reg = moat_deploy_registry(d);
	memset(out, 0, sizeof(*out));

	if (req->rollout_percent < -1 || req->rollout_percent > MOAT_ROLLOUT_PERCENT_MAX ||
	    (req->rollout_percent == -1) != (req->device_count > 0)) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "rollout: a percentage 0..100 or a device list");
		goto out;
	}
	if ((rc = verify_release(d, req, &json, &json_len, &m, err)) != 0 ||
	    (rc = check_newer(reg, &m, err)) != 0 ||
	    (rc = check_devices(reg, req, m.device_type, err)) != 0 ||
	    (rc = store_files(d, req->image_path, json, json_len, &m, err)) != 0) {
		goto out;
	}

	struct moat_release r;
	memset(&r, 0, sizeof(r));
	moat_hex_encode(m.sha256, sizeof(m.sha256), r.sha256_hex);
	snprintf(r.device_type, sizeof(r.device_type), "%s", m.device_type);
	snprintf(r.version, sizeof(r.version), "%s", m.version);
	r.security_version = m.security_version;
	r.size = m.size;
	r.issued_at = m.issued_at;
	r.expires_at = m.expires_at;
	r.published_at = req->now;
	r.rollout_percent = req->rollout_percent;
	r.device_count = req->device_count;
	if ((rc = moat_registry_release_insert(reg, &r, req->devices, req->device_count, err)) !=
	    0) {
		goto out;
	}
	*out = r;
	rc = 0;
out:
	free(json);
	return rc;
}
