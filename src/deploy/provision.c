/* provision.c: issuing identities in bulk, all or nothing.
 *
 * Order (deploy.h, "Consistency"): one registry transaction is opened; each identity is
 * issued in memory, its files are written to pki/.staging-<pid>/<id>/ and its rows inserted;
 * after the last one the staging files are synced once (syncfs), every staged directory is
 * renamed into pki/identities/, the directory is fsync'd and the transaction committed. Any
 * failure or interrupt before the commit rolls the transaction back and removes what was
 * staged or renamed; a crash is repaired by the next moat_deploy_open (recover()). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "deploy_internal.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"

/* Writes a new file (O_EXCL) with mode; no fsync (the caller syncs the filesystem once). */
static int write_new(const char *path, const char *data, size_t len, mode_t mode,
		     struct moat_err *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			close(fd);
			return moat_err_errno(err, MOAT_EIO, e, "%s", path);
		}
		off += (size_t)n;
	}
	/* no fchmod: the umask can only narrow mode, and key.pem is created 0600 */
	if (close(fd) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	return 0;
}

int deploy_write_identity_files(const char *dir, const struct moat_issued *issued,
				const char *ca_pem, size_t ca_len, struct moat_err *err)
{
	char p[PATH_MAX];
	int rc;
	if (mkdir(dir, 0700) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", dir);
	}
	if ((rc = moat_path_join(p, sizeof(p), err, "%s/key.pem", dir)) != 0 ||
	    (rc = moat_fs_write_atomic(p, issued->key_pem, issued->key_pem_len, 0600, err)) != 0 ||
	    (rc = moat_path_join(p, sizeof(p), err, "%s/cert.pem", dir)) != 0 ||
	    (rc = moat_fs_write_atomic(p, issued->cert_pem, issued->cert_pem_len, 0644, err)) != 0 ||
	    (rc = moat_path_join(p, sizeof(p), err, "%s/ca.crt", dir)) != 0 ||
	    (rc = moat_fs_write_atomic(p, ca_pem, ca_len, 0644, err)) != 0) {
		return rc;
	}
	return 0;
}

int deploy_stage_identity(const char *dir, const struct moat_issued *issued,
			  const char *ca_path, struct moat_err *err)
{
	char p[PATH_MAX];
	int rc;
	if (mkdir(dir, 0700) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", dir);
	}
	if ((rc = moat_path_join(p, sizeof(p), err, "%s/key.pem", dir)) != 0 ||
	    (rc = write_new(p, issued->key_pem, issued->key_pem_len, 0600, err)) != 0 ||
	    (rc = moat_path_join(p, sizeof(p), err, "%s/cert.pem", dir)) != 0 ||
	    (rc = write_new(p, issued->cert_pem, issued->cert_pem_len, 0644, err)) != 0 ||
	    (rc = moat_path_join(p, sizeof(p), err, "%s/ca.crt", dir)) != 0) {
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

int deploy_ca_pem(const struct moat_deploy *d, char **out_pem, size_t *out_len,
		  struct moat_err *err)
{
	char p[PATH_MAX];
	int rc = moat_deploy_path(d, p, sizeof(p), "pki/ca.crt", err);
	if (rc != 0) {
		return rc;
	}
	return moat_fs_read_all(p, 1024 * 1024, out_pem, out_len, err);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every request valid, no id twice in the batch, none already registered. */
static int validate(struct moat_deploy *d, const struct moat_provision_req *reqs, size_t count,
		    struct moat_err *err)
{
	int rc = 0;
	const char **ids = NULL;
	if (count == 0) {
		return moat_err_set(err, MOAT_EINVAL, "nothing to provision");
	}
	if (count > MOAT_BULK_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "at most %d identities at once", MOAT_BULK_MAX);
	}
	ids = malloc(count * sizeof(*ids));
	if (!ids) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < count; i++) {
		const struct moat_provision_req *r = &reqs[i];
		if ((rc = moat_identity_name_check(r->id, err)) != 0) {
			goto out;
		}
		if (r->role != MOAT_ROLE_DEVICE && r->role != MOAT_ROLE_SERVICE &&
		    r->role != MOAT_ROLE_OPERATOR) {
			rc = moat_err_set(err, MOAT_EINVAL, "%s: unknown role", r->id);
			goto out;
		}
		if (r->role == MOAT_ROLE_DEVICE && r->device_type &&
		    (rc = moat_device_type_check(r->device_type, err)) != 0) {
			moat_err_prefix(err, "%s: device type", r->id);
			goto out;
		}
		if (r->days < 0 || r->days > 36500) {
			rc = moat_err_set(err, MOAT_EINVAL, "%s: validity must be 1 to 36500 days",
					  r->id);
			goto out;
		}
		bool exists = false;
		if ((rc = moat_registry_identity_exists(d->reg, r->id, &exists, err)) != 0) {
			goto out;
		}
		if (exists) {
			rc = moat_err_set(err, MOAT_EEXIST, "identity '%s' already exists", r->id);
			goto out;
		}
		ids[i] = r->id;
	}
	qsort(ids, count, sizeof(*ids), cmp_str);
	for (size_t i = 1; i < count; i++) {
		if (strcmp(ids[i - 1], ids[i]) == 0) {
			rc = moat_err_set(err, MOAT_EINVAL, "identity '%s' requested twice", ids[i]);
			goto out;
		}
	}
out:
	free(ids);
	return rc;
}

/* A serial no certificate in the registry has (126 random bits: a retry is a formality). */
int deploy_fresh_serial(struct moat_deploy *d, uint8_t serial[MOAT_SERIAL_BYTES],
			char hex[MOAT_SERIAL_HEX_LEN], struct moat_err *err)
{
	for (int attempt = 0; attempt < 4; attempt++) {
		bool exists = false;
		int rc = moat_pki_random_serial(serial, hex, err);
		if (rc == 0) {
			rc = moat_registry_serial_exists(d->reg, hex, &exists, err);
		}
		if (rc != 0) {
			return rc;
		}
		if (!exists) {
			return 0;
		}
	}
	return moat_err_set(err, MOAT_ECRYPTO, "random serials keep colliding: broken RNG?");
}

int moat_deploy_provision(struct moat_deploy *d, const struct moat_provision_req *reqs,
			  size_t count, moat_progress_cb progress, void *progress_ctx,
			  struct moat_err *err)
{
	int rc;
	char staging[PATH_MAX];
	char idents[PATH_MAX];
	size_t renamed = 0;
	bool in_tx = false;
	bool staged = false;
	struct issuer_pool *pool = NULL;
	int64_t now = moat_time_now();

	if (!d->ca || !d->ca->key) {
		return moat_err_set(err, MOAT_ESTATE, "CA key not unlocked");
	}
	if (d->lock_fd < 0) {
		return moat_err_set(err, MOAT_ESTATE, "deployment not opened for writing");
	}
	if ((rc = validate(d, reqs, count, err)) != 0) {
		return rc;
	}
	char rel[64];
	snprintf(rel, sizeof(rel), "pki/.staging-%ld", (long)getpid());
	if ((rc = moat_deploy_path(d, staging, sizeof(staging), rel, err)) != 0 ||
	    (rc = moat_deploy_path(d, idents, sizeof(idents), "pki/identities", err)) != 0) {
		goto out;
	}
	if (mkdir(staging, 0700) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", staging);
		goto out;
	}
	staged = true;
	if ((rc = moat_registry_begin(d->reg, err)) != 0) {
		goto out;
	}
	in_tx = true;
	char ca_path[PATH_MAX];
	if ((rc = moat_deploy_path(d, ca_path, sizeof(ca_path), "pki/ca.crt", err)) != 0) {
		goto out;
	}
	struct issuer_job job = {
		.ca = d->ca,
		.reqs = reqs,
		.count = count,
		.now = now,
		.default_days = d->conf.identity_days,
		.staging = staging,
		.ca_path = ca_path,
	};
	if ((rc = issuer_start(&job, &pool, err)) != 0) {
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		const struct moat_provision_req *r = &reqs[i];
		if (moat_deploy_interrupted) {
			rc = moat_err_set(err, MOAT_EINTR,
					  "interrupted after %zu of %zu identities; nothing was added",
					  i, count);
			goto out;
		}
		struct moat_issued issued = {0};
		const char *type = r->role == MOAT_ROLE_DEVICE ? (r->device_type ? r->device_type
										    : "generic")
							       : "";
		bool taken = false;
		if ((rc = issuer_take(pool, i, &issued, err)) != 0 ||
		    (rc = moat_registry_serial_exists(d->reg, issued.serial_hex, &taken, err)) != 0) {
			moat_pki_issued_free(&issued);
			goto out;
		}
		if (taken) {
			/* 126 random bits collided: never seen, but the registry decides */
			moat_pki_issued_free(&issued);
			rc = moat_err_set(err, MOAT_ECRYPTO, "random serial collision: broken RNG?");
			goto out;
		}
		/* the worker wrote staging/<id>/; the rows go in here, in order */
		if ((rc = moat_registry_identity_insert(d->reg, r->id, r->role, type, now, err)) != 0 ||
		    (rc = moat_registry_cert_insert(d->reg, issued.serial_hex, r->id,
						    issued.not_before, issued.not_after,
						    issued.cert_pem, err)) != 0) {
			moat_pki_issued_free(&issued);
			goto out;
		}
		moat_pki_issued_free(&issued);
		if (progress) {
			progress(i + 1, count, progress_ctx);
		}
	}
	issuer_stop(pool);
	pool = NULL;
	/* One sync for all the staged files instead of one fsync per file. */
	int sfd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0 || syncfs(sfd) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s: sync", staging);
		if (sfd >= 0) {
			close(sfd);
		}
		goto out;
	}
	close(sfd);
	for (; renamed < count; renamed++) {
		char from[PATH_MAX];
		char to[PATH_MAX];
		if ((rc = moat_path_join(from, sizeof(from), err, "%s/%s", staging,
					 reqs[renamed].id)) != 0 ||
		    (rc = moat_path_join(to, sizeof(to), err, "%s/%s", idents, reqs[renamed].id)) !=
			    0) {
			goto out;
		}
		/* a leftover directory of that name is an error, never overwritten */
		if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) != 0) {
			rc = errno == EEXIST ? moat_err_set(err, MOAT_EEXIST,
							    "%s exists but is not registered", to)
					     : moat_err_errno(err, MOAT_EIO, errno, "rename %s", from);
			goto out;
		}
	}
	if ((rc = moat_fs_sync_dir(idents, err)) != 0) {
		goto out;
	}
	if (moat_deploy_interrupted) {
		rc = moat_err_set(err, MOAT_EINTR, "interrupted; nothing was added");
		goto out;
	}
	if ((rc = moat_registry_commit(d->reg, err)) != 0) {
		goto out;
	}
	in_tx = false;
	rc = 0;
out:
	issuer_stop(pool);
	if (in_tx) {
		moat_registry_rollback(d->reg);
		/* undo the renames: nothing may stay without its row */
		for (size_t i = 0; i < renamed; i++) {
			char to[PATH_MAX];
			struct moat_err ignored;
			if (moat_path_join(to, sizeof(to), &ignored, "%s/%s", idents, reqs[i].id) == 0) {
				deploy_remove_quietly(to);
			}
		}
	}
	if (staged) {
		deploy_remove_quietly(staging);
	}
	return rc;
}
