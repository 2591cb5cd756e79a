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

#include "deploy_internal.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"

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
		return moat_err_set(err, MOAT_EINVAL, "at most %d identities at once",
				    MOAT_BULK_MAX);
	}
	ids = malloc(count * sizeof(*ids));
	if (!ids) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < count; i++) {
		const struct moat_provision_req *r = &reqs[i];
		if ((rc = r->audit ? moat_identity_name_check(r->id, err)
				   : moat_identity_new_name_check(r->id, err)) != 0) {
			goto out;
		}
		if (r->audit && !moat_identity_reserved(r->id)) {
			rc = moat_err_set(err, MOAT_EINVAL,
					  "%s: an audit identity is named " MOAT_AUDIT_ID_PREFIX
					  "...",
					  r->id);
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
		if (r->csr && (rc = moat_csr_check_identity(r->csr, r->id, err)) != 0) {
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
			rc = moat_err_set(err, MOAT_EINVAL, "identity '%s' requested twice",
					  ids[i]);
			goto out;
		}
	}
out:
	free(ids);
	return rc;
}

/* Takes the issued identities in order and inserts their rows (the worker wrote
 * staging/<id>/ already), reporting progress after each. */
static int insert_rows(struct moat_deploy *d, struct issuer_pool *pool,
		       const struct moat_provision_req *reqs, size_t count, int64_t now,
		       moat_progress_cb progress, void *progress_ctx, struct moat_err *err)
{
	int rc;
	for (size_t i = 0; i < count; i++) {
		const struct moat_provision_req *r = &reqs[i];
		if (moat_deploy_interrupted) {
			return moat_err_set(
				err, MOAT_EINTR,
				"interrupted after %zu of %zu identities; nothing was added", i,
				count);
		}
		struct moat_issued issued = {0};
		const char *type = r->role == MOAT_ROLE_DEVICE
					   ? (r->device_type ? r->device_type : "generic")
					   : "";
		bool taken = false;
		if ((rc = issuer_take(pool, i, &issued, err)) != 0 ||
		    (rc = moat_registry_serial_exists(d->reg, issued.serial_hex, &taken, err)) !=
			    0) {
			moat_pki_issued_free(&issued);
			return rc;
		}
		if (taken) {
			/* 126 random bits collided: never seen, but the registry decides */
			moat_pki_issued_free(&issued);
			return moat_err_set(err, MOAT_ECRYPTO,
					    "random serial collision: broken RNG?");
		}
		/* the worker wrote staging/<id>/; the rows go in here, in order */
		if ((rc = moat_registry_identity_insert(d->reg, r->id, r->role, type, now, err)) !=
			    0 ||
		    (r->simulated &&
		     (rc = moat_registry_identity_set_simulated(d->reg, r->id, err)) != 0) ||
		    (rc = moat_registry_cert_insert(d->reg, issued.serial_hex, r->id,
						    issued.not_before, issued.not_after,
						    issued.cert_pem, err)) != 0) {
			moat_pki_issued_free(&issued);
			return rc;
		}
		moat_pki_issued_free(&issued);
		if (progress) {
			progress(i + 1, count, progress_ctx);
		}
	}
	return 0;
}

/* Syncs the staged files once, then renames each staged directory into idents; *renamed
 * counts the renames done, so the caller can undo them. */
static int move_into_place(const char *staging, const char *idents,
			   const struct moat_provision_req *reqs, size_t count, size_t *renamed,
			   struct moat_err *err)
{
	/* One sync for all the staged files instead of one fsync per file. */
	int sfd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0 || syncfs(sfd) != 0) {
		int rc = moat_err_errno(err, MOAT_EIO, errno, "%s: sync", staging);
		if (sfd >= 0) {
			close(sfd);
		}
		return rc;
	}
	close(sfd);
	int rc;
	for (; *renamed < count; (*renamed)++) {
		char from[PATH_MAX];
		char to[PATH_MAX];
		if ((rc = moat_path_join(from, sizeof(from), err, "%s/%s", staging,
					 reqs[*renamed].id)) != 0 ||
		    (rc = moat_path_join(to, sizeof(to), err, "%s/%s", idents,
					 reqs[*renamed].id)) != 0) {
			return rc;
		}
		/* a leftover directory of that name is an error, never overwritten */
		if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) != 0) {
			return errno == EEXIST
				       ? moat_err_set(err, MOAT_EEXIST,
						      "%s exists but is not registered", to)
				       : moat_err_errno(err, MOAT_EIO, errno, "rename %s", from);
		}
	}
	return 0;
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
	const struct moat_ca *signer = NULL;
	const char *chain = NULL;
	size_t chain_len = 0;

	if ((rc = moat_deploy_signer(d, &signer, err)) != 0 ||
	    (rc = deploy_signer_chain(d, &chain, &chain_len, err)) != 0) {
		return rc;
	}
	if (d->lock_fd < 0) {
		return moat_err_set(err, MOAT_ESTATE, "deployment not opened for writing");
	}
	if ((rc = validate(d, reqs, count, err)) != 0) {
		return rc;
	}
	for (size_t i = 0; i < count; i++) {
		int64_t not_after = 0;
		if (reqs[i].days &&
		    (rc = deploy_not_after(signer, now, reqs[i].days, d->conf.identity_days,
					   reqs[i].id, &not_after, err)) != 0) {
			return rc;
		}
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
		.ca = signer,
		.reqs = reqs,
		.count = count,
		.now = now,
		.default_days = d->conf.identity_days,
		.staging = staging,
		.ca_path = ca_path,
		.chain = chain,
		.chain_len = chain_len,
	};
	if ((rc = issuer_start(&job, &pool, err)) != 0) {
		goto out;
	}
	if ((rc = insert_rows(d, pool, reqs, count, now, progress, progress_ctx, err)) != 0) {
		goto out;
	}
	issuer_stop(pool);
	pool = NULL;
	if ((rc = move_into_place(staging, idents, reqs, count, &renamed, err)) != 0) {
		goto out;
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
			if (moat_path_join(to, sizeof(to), &ignored, "%s/%s", idents, reqs[i].id) ==
			    0) {
				deploy_remove_quietly(to);
			}
		}
	}
	if (staged) {
		deploy_remove_quietly(staging);
	}
	return rc;
}
