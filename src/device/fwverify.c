/* fwverify.c: checking a firmware image and its envelope from files, the way a device does
 * (see moat/fwverify.h). The rules live in src/core/manifest.c; this file adds bounded,
 * streamed reads of the trust list and the image around them. Device binaries and the
 * operator's tools (moat fw verify, moatd's publish check) run this one copy.
 */
#include "moat/fwverify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "moat/fsutil.h"

int moat_fwtrust_load(const char *path, struct moat_fw_trust *out, struct moat_err *err)
{
	char *data = NULL;
	size_t len = 0;
	memset(out, 0, sizeof(*out));
	if (!moat_fs_exists(path)) {
		return moat_err_set(err, MOAT_ENOENT, "%s: no trust list (run moat fw keygen)",
				    path);
	}
	int rc = moat_fs_read_all(path, MOAT_FW_TRUST_MAX_BYTES, &data, &len, err);
	if (rc != 0) {
		return rc;
	}
	rc = moat_fw_trust_parse(data, len, out, err);
	if (rc != 0) {
		moat_err_prefix(err, "%s", path);
	}
	free(data);
	return rc;
}

/* Opens a regular file for reading and returns its size. */
static int open_image(const char *path, int *out_fd, uint64_t *out_size, struct moat_err *err)
{
	*out_fd = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return moat_err_errno(err, MOAT_EIO, e, "%s", path);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return moat_err_set(err, MOAT_EINVAL, "%s: not a regular file", path);
	}
	*out_fd = fd;
	*out_size = (uint64_t)st.st_size;
	return 0;
}

/* read() that retries on EINTR; returns bytes read, 0 at end, -1 with errno. */
static ssize_t read_some(int fd, void *buf, size_t len)
{
	ssize_t n;
	do {
		n = read(fd, buf, len);
	} while (n < 0 && errno == EINTR);
	return n;
}

int moat_fw_image_digest(const char *path, uint8_t out_sha256[MOAT_SHA256_BYTES],
			 uint64_t *out_size, struct moat_err *err)
{
	int fd = -1;
	uint64_t size = 0, total = 0;
	unsigned char *buf = NULL;
	EVP_MD_CTX *ctx = NULL;
	int rc = open_image(path, &fd, &size, err);
	if (rc != 0) {
		goto out;
	}
	if (size == 0 || size > MOAT_FW_IMAGE_MAX_BYTES) {
		rc = moat_err_set(err, MOAT_EINVAL, "%s: %llu bytes (1..%llu allowed)", path,
				  (unsigned long long)size,
				  (unsigned long long)MOAT_FW_IMAGE_MAX_BYTES);
		goto out;
	}
	buf = malloc(MOAT_FW_IO_BUF_BYTES);
	ctx = EVP_MD_CTX_new();
	if (!buf || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t n = read_some(fd, buf, MOAT_FW_IO_BUF_BYTES);
		if (n < 0) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "reading %s", path);
			goto out;
		}
		if (n == 0) {
			break;
		}
		total += (uint64_t)n;
		if (total > MOAT_FW_IMAGE_MAX_BYTES) {
			rc = moat_err_set(err, MOAT_EINVAL, "%s: grew past the image limit", path);
			goto out;
		}
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
			rc = moat_err_ssl(err, MOAT_ECRYPTO, "hashing %s", path);
			goto out;
		}
	}
	unsigned int mdlen = 0;
	if (total == 0 || EVP_DigestFinal_ex(ctx, out_sha256, &mdlen) != 1) {
		rc = moat_err_set(err, MOAT_EIO, "%s: could not hash (changed while read?)", path);
		goto out;
	}
	*out_size = total;
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	if (fd >= 0) {
		close(fd);
	}
	return rc;
}

enum moat_fw_verdict moat_fw_verify_image(const char *image_path, const void *envelope_json,
					  size_t len, const struct moat_fw_trust *trust,
					  const struct moat_fw_policy *policy,
					  struct moat_manifest *out_manifest,
					  struct moat_fw_decision *out)
{
	struct moat_manifest m;
	struct moat_fw_stream s;
	struct moat_err e;
	unsigned char *buf = NULL;
	int fd = -1;
	uint64_t size = 0;
	memset(&s, 0, sizeof(s));
	if (out_manifest) {
		memset(out_manifest, 0, sizeof(*out_manifest));
	}
	enum moat_fw_verdict v = moat_fw_decide(envelope_json, len, trust, policy, &m, out);
	if (v != MOAT_FW_ACCEPT) {
		return v;
	}
	buf = malloc(MOAT_FW_IO_BUF_BYTES);
	if (!buf || open_image(image_path, &fd, &size, &e) != 0 ||
	    moat_fw_stream_init(&s, &m, &e) != 0) {
		if (!buf) {
			moat_err_set(&e, MOAT_ENOMEM, "out of memory");
		}
		out->verdict = v = MOAT_FW_SIZE_MISMATCH;
		snprintf(out->msg, sizeof(out->msg), "image: %.400s", e.msg);
		goto out;
	}
	for (;;) {
		/* Never more than one byte past the manifest's size: enough to see "too long". */
		uint64_t left = m.size - s.dev.seen + 1;
		size_t want = left < MOAT_FW_IO_BUF_BYTES ? (size_t)left : MOAT_FW_IO_BUF_BYTES;
		ssize_t n = read_some(fd, buf, want);
		if (n < 0) {
			out->verdict = v = MOAT_FW_SIZE_MISMATCH;
			snprintf(out->msg, sizeof(out->msg), "reading the image failed");
			goto out;
		}
		if (n == 0 || moat_fw_stream_update(&s, buf, (size_t)n, &e) != 0) {
			break;
		}
	}
	char why[MOAT_ERR_MSG_MAX];
	snprintf(why, sizeof(why), "%s", out->msg);
	v = moat_fw_stream_decide(&s, out);
	if (v == MOAT_FW_ACCEPT) {
		/* Both halves of the reason: who signed, and that the image is the signed one. */
		snprintf(out->msg, sizeof(out->msg), "%.300s; image matches (%llu bytes)", why,
			 (unsigned long long)s.dev.seen);
		if (out_manifest) {
			*out_manifest = m;
		}
	}
out:
	moat_fw_stream_free(&s);
	free(buf);
	if (fd >= 0) {
		close(fd);
	}
	return v;
}

int moat_fw_verify_trusted(const char *trust_path, const char *image_path,
			   const void *envelope_json, size_t len,
			   const struct moat_fw_policy *policy, struct moat_manifest *out_manifest,
			   struct moat_err *err)
{
	struct moat_fw_trust trust;
	struct moat_fw_decision dec;
	memset(out_manifest, 0, sizeof(*out_manifest));
	int rc = moat_fwtrust_load(trust_path, &trust, err);
	if (rc == 0) {
		enum moat_fw_verdict v = moat_fw_verify_image(image_path, envelope_json, len,
							      &trust, policy, out_manifest, &dec);
		if (v != MOAT_FW_ACCEPT) {
			rc = moat_err_set(err, MOAT_EVERIFY, "refused (%s): %s",
					  moat_fw_verdict_name(v), dec.msg);
		}
	}
	moat_fw_trust_free(&trust);
	return rc;
}
