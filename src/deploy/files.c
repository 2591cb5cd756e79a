/* files.c: paths inside the deployment directory and the files of one identity.
 *
 * An identity's directory holds cert.pem (the certificate, then the issuing CA's when the
 * deployment has one), key.pem (0600) and ca.crt (the root). A renewal writes one
 * identity durably (each file atomically, fsync'd); bulk provisioning stages many without
 * a sync per file (O_EXCL files, ca.crt a hard link; the caller syncs the filesystem once).
 * The lowest file of src/deploy: it calls none of the others. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deploy_internal.h"
#include "moat/fsutil.h"

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

void deploy_remove_quietly(const char *path)
{
	struct moat_err ignored;
	if (moat_fs_remove_tree(path, &ignored) != 0) {
		return; /* recover() on the next open removes it */
	}
}

/* Writes a new file (O_EXCL) with mode; no fsync (the caller syncs the filesystem once). */
static int write_new(const char *path, const void *data, size_t len, mode_t mode,
		     struct moat_err *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	if (moat_fs_write_fd(fd, data, len) != 0) {
		int e = errno;
		close(fd);
		return moat_err_errno(err, MOAT_EIO, e, "%s", path);
	}
	/* exact mode whatever the umask: under 077 cert.pem would be root's alone, and moatd
	 * (its own account) could not read its service identity's certificate */
	if (fchmod(fd, mode) != 0) {
		int e = errno;
		close(fd);
		return moat_err_errno(err, MOAT_EIO, e, "%s: chmod", path);
	}
	if (close(fd) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	return 0;
}

/* issued's certificate followed by chain (the issuing CA's certificate, or nothing), so a
 * TLS peer that trusts only the root can build the path. Caller frees *out. */
static int cert_with_chain(const struct moat_issued *issued, const char *chain, size_t chain_len,
			   char **out, size_t *out_len, struct moat_err *err)
{
	size_t len = issued->cert_pem_len + chain_len;
	char *buf = malloc(len + 1);
	if (!buf) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	memcpy(buf, issued->cert_pem, issued->cert_pem_len);
	if (chain_len) {
		memcpy(buf + issued->cert_pem_len, chain, chain_len);
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	return 0;
}

/* mkdir dir (0700), then key.pem (0600, unless the key came in a CSR) and cert.pem (with
 * the chain) with put; p receives
 * the path of ca.crt, which the caller writes. */
static int write_key_cert(const char *dir, const struct moat_issued *issued, const char *chain,
			  size_t chain_len,
			  int (*put)(const char *, const void *, size_t, mode_t, struct moat_err *),
			  char p[PATH_MAX], struct moat_err *err)
{
	int rc;
	char *cert = NULL;
	size_t cert_len = 0;
	if (mkdir(dir, 0700) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", dir);
	}
	if ((rc = cert_with_chain(issued, chain, chain_len, &cert, &cert_len, err)) != 0) {
		return rc;
	}
	/* no key_pem: the key came in a CSR and never leaves its owner */
	if ((issued->key_pem &&
	     ((rc = moat_path_join(p, PATH_MAX, err, "%s/key.pem", dir)) != 0 ||
	      (rc = put(p, issued->key_pem, issued->key_pem_len, 0600, err)) != 0)) ||
	    (rc = moat_path_join(p, PATH_MAX, err, "%s/cert.pem", dir)) != 0 ||
	    (rc = put(p, cert, cert_len, 0644, err)) != 0) {
		free(cert);
		return rc;
	}
	free(cert);
	return moat_path_join(p, PATH_MAX, err, "%s/ca.crt", dir);
}

int deploy_write_identity_files(const char *dir, const struct moat_issued *issued,
				const char *chain, size_t chain_len, const char *ca_pem,
				size_t ca_len, struct moat_err *err)
{
	char p[PATH_MAX];
	int rc = write_key_cert(dir, issued, chain, chain_len, moat_fs_write_atomic, p, err);
	if (rc != 0) {
		return rc;
	}
	return moat_fs_write_atomic(p, ca_pem, ca_len, 0644, err);
}

int deploy_stage_identity(const char *dir, const struct moat_issued *issued, const char *chain,
			  size_t chain_len, const char *ca_path, struct moat_err *err)
{
	char p[PATH_MAX];
	int rc = write_key_cert(dir, issued, chain, chain_len, write_new, p, err);
	if (rc != 0) {
		return rc;
	}
	/* A hard link to pki/ca.crt: same bytes, no new inode (inode allocation is the largest
	 * cost of bulk provisioning on ext4). pki/ca.crt is only ever replaced by rename, so
	 * the identity keeps the certificate it was issued under. */
	if (link(ca_path, p) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", p);
	}
	return 0;
}
