/* slots.c: the device state directory: boot.state on disk (atomic writes under a lock),
 * the A/B slot files, provisioning of slot a, and the verification moat-boot runs before
 * every start. Verification copies the image into a sealed memfd while hashing it, so the
 * bytes that are executed are the bytes that were verified, whatever happens to the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moat/fsutil.h"
#include "moat/fwverify.h"
#include "moat/timeutil.h"
#include "moat/update.h"

#include "failpoint.h"

#define VERIFY_BUF_BYTES (256u * 1024u)

int moat_slots_path(char *buf, size_t size, const char *dir, char slot, const char *file,
		    struct moat_err *err)
{
	return moat_path_join(buf, size, err, "%s/slots/%c/%s", dir, slot, file);
}

int moat_slots_load(const char *dir, struct moat_boot_state *out, struct moat_err *err)
{
	char path[4096];
	char *text = NULL;
	size_t len = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = moat_path_join(path, sizeof(path), err, "%s/%s", dir, MOAT_BOOT_STATE_FILE);
	if (rc != 0) {
		goto out;
	}
	rc = moat_fs_read_all(path, MOAT_BOOT_STATE_MAX_BYTES, &text, &len, err);
	if (rc != 0) {
		goto out;
	}
	rc = moat_boot_state_parse(text, len, out, err);
	if (rc != 0) {
		moat_err_prefix(err, "%s", path);
	}
out:
	free(text);
	return rc;
}

int moat_slots_save(const char *dir, const struct moat_boot_state *st, struct moat_err *err)
{
	char path[4096];
	char text[MOAT_BOOT_STATE_MAX_BYTES];
	size_t len = 0;
	int rc;

	rc = moat_path_join(path, sizeof(path), err, "%s/%s", dir, MOAT_BOOT_STATE_FILE);
	if (rc == 0) {
		rc = moat_boot_state_format(st, text, sizeof(text), &len, err);
	}
	if (rc == 0) {
		MOAT_FAILPOINT("state write");
		rc = moat_fs_write_atomic(path, text, len, 0600, err);
	}
	return rc;
}

int moat_slots_lock(const char *dir, int *out_fd, struct moat_err *err)
{
	char path[4096];
	int fd;
	int rc;

	*out_fd = -1;
	rc = moat_path_join(path, sizeof(path), err, "%s/%s", dir, MOAT_BOOT_LOCK_FILE);
	if (rc != 0) {
		return rc;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	while (flock(fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "%s: lock", path);
			close(fd);
			return rc;
		}
	}
	*out_fd = fd;
	return 0;
}

void moat_slots_unlock(int fd)
{
	if (fd >= 0) {
		close(fd); /* releases the flock */
	}
}

int moat_slots_trust(const char *dir, struct moat_fw_trust *out, struct moat_err *err)
{
	char path[4096];
	int rc = moat_path_join(path, sizeof(path), err, "%s/%s", dir, MOAT_BOOT_TRUST_FILE);

	memset(out, 0, sizeof(*out));
	if (rc == 0) {
		rc = moat_fwtrust_load(path, out, err);
	}
	return rc;
}

/* Copies src to dst atomically with mode (the files are small or bounded by the caller). */
static int copy_file(const char *src, const char *dst, size_t max, mode_t mode,
		     struct moat_err *err)
{
	char *data = NULL;
	size_t len = 0;
	int rc = moat_fs_read_all(src, max, &data, &len, err);

	if (rc == 0) {
		rc = moat_fs_write_atomic(dst, data, len, mode, err);
	}
	free(data);
	return rc;
}

int moat_slots_provision(const char *dir, const char *device_type, const char *trust_path,
			 const char *image_path, const char *envelope_path, int64_t now,
			 struct moat_err *err)
{
	char path[4096];
	char *env = NULL;
	size_t env_len = 0;
	struct moat_boot_state st;
	struct moat_manifest m;
	struct moat_fw_policy pol = {.purpose = MOAT_FW_FOR_INSTALL,
				     .device_type = device_type,
				     .now = now};
	int rc;

	memset(&st, 0, sizeof(st));
	rc = moat_path_join(path, sizeof(path), err, "%s/%s", dir, MOAT_BOOT_STATE_FILE);
	if (rc != 0) {
		goto out;
	}
	if (moat_fs_exists(path)) {
		rc = moat_err_set(err, MOAT_EEXIST, "%s: already provisioned", path);
		goto out;
	}
	rc = moat_fs_read_all(envelope_path, MOAT_ENVELOPE_MAX_BYTES, &env, &env_len, err);
	if (rc != 0) {
		goto out;
	}
	rc = moat_fw_verify_trusted(trust_path, image_path, env, env_len, &pol, &m, err);
	if (rc != 0) {
		goto out;
	}
	rc = moat_fs_mkdirs(dir, 0700, err);
	if (rc == 0) {
		rc = moat_path_join(path, sizeof(path), err, "%s/slots/a", dir);
	}
	if (rc == 0) {
		rc = moat_fs_mkdirs(path, 0700, err);
	}
	if (rc == 0) {
		rc = moat_path_join(path, sizeof(path), err, "%s/slots/b", dir);
	}
	if (rc == 0) {
		rc = moat_fs_mkdirs(path, 0700, err);
	}
	if (rc == 0) {
		rc = moat_path_join(path, sizeof(path), err, "%s/%s", dir, MOAT_BOOT_TRUST_FILE);
	}
	if (rc == 0) {
		rc = copy_file(trust_path, path, MOAT_FW_TRUST_MAX_BYTES, 0644, err);
	}
	if (rc == 0) {
		rc = moat_slots_path(path, sizeof(path), dir, 'a', "image", err);
	}
	if (rc == 0) {
		rc = copy_file(image_path, path, MOAT_FILE_MAX_BYTES, 0700, err);
	}
	if (rc == 0) {
		rc = moat_slots_path(path, sizeof(path), dir, 'a', "envelope.json", err);
	}
	if (rc == 0) {
		rc = moat_fs_write_atomic(path, env, env_len, 0644, err);
	}
	if (rc != 0) {
		goto out;
	}
	snprintf(st.device_type, sizeof(st.device_type), "%s", device_type);
	st.active = 'a';
	st.floor = m.security_version;
	st.last_issued_at = m.issued_at;
	/* boot.state last: until it exists the directory is not a provisioned device. */
	rc = moat_slots_save(dir, &st, err);
out:
	free(env);
	return rc;
}

/* Streams fd through s into memfd mfd (when >= 0), reading at most one byte past the
 * manifest's size. */
static int stream_copy(int fd, int mfd, struct moat_fw_stream *s, const char *name,
		       struct moat_err *err)
{
	unsigned char *buf = malloc(VERIFY_BUF_BYTES);
	int rc = 0;

	if (buf == NULL) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	for (;;) {
		uint64_t left = s->dev.expected_size - s->dev.seen + 1;
		size_t want = left < VERIFY_BUF_BYTES ? (size_t)left : VERIFY_BUF_BYTES;
		ssize_t n = read(fd, buf, want);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "%s", name);
			break;
		}
		if (n == 0 || moat_fw_stream_update(s, buf, (size_t)n, NULL) != 0) {
			break; /* end, or too long: moat_fw_stream_decide says which */
		}
		if (mfd >= 0 && moat_fs_write_fd(mfd, buf, (size_t)n) != 0) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "memfd");
			break;
		}
	}
	free(buf);
	return rc;
}

int moat_slots_verify(const char *dir, const struct moat_boot_state *st, char slot, int *out_fd,
		      struct moat_manifest *out_manifest, struct moat_err *err)
{
	char path[4096];
	char *env = NULL;
	size_t env_len = 0;
	struct moat_fw_trust trust;
	struct moat_fw_stream s;
	struct moat_manifest m;
	struct moat_fw_decision d;
	struct moat_fw_policy pol = {.purpose = MOAT_FW_FOR_BOOT,
				     .device_type = st->device_type,
				     .security_floor = st->floor,
				     .now = moat_time_now()};
	int fd = -1;
	int mfd = -1;
	int rc;

	memset(&trust, 0, sizeof(trust));
	memset(&s, 0, sizeof(s));
	memset(&m, 0, sizeof(m));
	if (out_fd != NULL) {
		*out_fd = -1;
	}
	if (out_manifest != NULL) {
		memset(out_manifest, 0, sizeof(*out_manifest));
	}
	rc = moat_slots_trust(dir, &trust, err);
	if (rc == 0) {
		rc = moat_slots_path(path, sizeof(path), dir, slot, "envelope.json", err);
	}
	if (rc == 0) {
		rc = moat_fs_read_all(path, MOAT_ENVELOPE_MAX_BYTES, &env, &env_len, err);
	}
	if (rc != 0) {
		goto out;
	}
	if (moat_fw_decide(env, env_len, &trust, &pol, &m, &d) != MOAT_FW_ACCEPT) {
		rc = moat_err_set(err, MOAT_EVERIFY, "slot %c: refused (%s): %s", slot,
				  moat_fw_verdict_name(d.verdict), d.msg);
		goto out;
	}
	rc = moat_slots_path(path, sizeof(path), dir, slot, "image", err);
	if (rc != 0) {
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rc = moat_err_errno(err, MOAT_EVERIFY, errno, "slot %c: image", slot);
		goto out;
	}
	if (out_fd != NULL) {
		mfd = memfd_create("moat-image", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (mfd < 0) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "memfd_create");
			goto out;
		}
	}
	rc = moat_fw_stream_init(&s, &m, err);
	if (rc == 0) {
		rc = stream_copy(fd, mfd, &s, path, err);
	}
	if (rc != 0) {
		goto out;
	}
	if (moat_fw_stream_decide(&s, &d) != MOAT_FW_ACCEPT) {
		rc = moat_err_set(err, MOAT_EVERIFY, "slot %c: refused (%s): %s", slot,
				  moat_fw_verdict_name(d.verdict), d.msg);
		goto out;
	}
	if (mfd >= 0 && fcntl(mfd, F_ADD_SEALS,
			      F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "memfd seal");
		goto out;
	}
	if (out_fd != NULL) {
		*out_fd = mfd;
		mfd = -1;
	}
	if (out_manifest != NULL) {
		*out_manifest = m;
	}
	rc = 0;
out:
	moat_fw_stream_free(&s);
	moat_fw_trust_free(&trust);
	free(env);
	if (fd >= 0) {
		close(fd);
	}
	if (mfd >= 0) {
		close(mfd);
	}
	return rc;
}

int moat_slots_confirm(const char *dir, struct moat_manifest *out_manifest, struct moat_err *err)
{
	struct moat_boot_state st;
	struct moat_manifest m;
	int lock = -1;
	int rc;

	rc = moat_slots_lock(dir, &lock, err);
	if (rc == 0) {
		rc = moat_slots_load(dir, &st, err);
	}
	if (rc != 0) {
		goto out;
	}
	if (st.trial == 0) {
		rc = moat_err_set(err, MOAT_ESTATE, "%s: no slot is on trial", dir);
		goto out;
	}
	/* The floor rises to what the trial's own signed manifest says, so verify it again. */
	rc = moat_slots_verify(dir, &st, st.trial, NULL, &m, err);
	if (rc == 0) {
		rc = moat_boot_confirm(&st, &m, err);
	}
	if (rc == 0) {
		rc = moat_slots_save(dir, &st, err);
	}
	if (rc == 0 && out_manifest != NULL) {
		*out_manifest = m;
	}
out:
	moat_slots_unlock(lock);
	return rc;
}
