/* lifecycle.c: revocation, renewal, disabling, deletion and the CRL.
 *
 * Revocation writes the new CRL before committing the registry change: a crash in between
 * leaves a CRL that revokes one certificate too many (safe, and rewritten by the next CRL
 * write), never one that misses a revocation.
 *
 * Renewal stages the new files in pki/identities/<id>/.next/, commits the new certificate
 * (and the old one's revocation) to the registry, then moves the files into place. Opening
 * the deployment finishes or undoes an interrupted renewal (deploy_renew_recover): the
 * registry decides whether .next/ is the identity's certificate. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deploy_internal.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"

struct revoked_list {
	struct moat_revoked_cert *items;
	size_t count;
	size_t cap;
};

static int collect_revoked(const struct moat_cert_row *row, void *ctx)
{
	struct revoked_list *l = ctx;
	if (l->count == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		struct moat_revoked_cert *n = realloc(l->items, ncap * sizeof(*n));
		if (!n) {
			return MOAT_ENOMEM;
		}
		l->items = n;
		l->cap = ncap;
	}
	struct moat_revoked_cert *r = &l->items[l->count++];
	snprintf(r->serial_hex, sizeof(r->serial_hex), "%s", row->serial_hex);
	r->revoked_at = row->revoked_at;
	r->reason = row->reason;
	return 0;
}

int moat_deploy_write_crl(struct moat_deploy *d, struct moat_err *err)
{
	struct revoked_list list = {0};
	char *pem = NULL;
	size_t len = 0;
	int64_t number = 0;
	char path[PATH_MAX];
	/* The number first, in one UPDATE: on a PostgreSQL registry shared by several machines
	 * (each with its own run/moat.lock) its row lock makes a second CRL writer wait until
	 * this transaction ends, so no two CRLs get one number and the revoked certificates
	 * read next include what the first committed. A CRL that is then not written leaves a
	 * gap in the numbers, which only have to grow. */
	int rc = moat_registry_meta_next(d->reg, "crl_number", &number, err);
	if (rc != 0) {
		goto out;
	}
	rc = moat_registry_cert_foreach(d->reg, true, collect_revoked, &list, err);
	if (rc == MOAT_ENOMEM) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	if (rc != 0) {
		goto out;
	}
	if ((rc = deploy_crl_assemble(d, list.items, list.count, number, moat_time_now(), &pem,
				      &len, err)) != 0 ||
	    (rc = moat_deploy_path(d, path, sizeof(path), "pki/crl.pem", err)) != 0 ||
	    (rc = moat_fs_write_atomic(path, pem, len, 0644, err)) != 0) {
		goto out;
	}
out:
	free(list.items);
	free(pem);
	return rc;
}

/* A root-signed certificate must be listed in the root's CRL, which only the unlocked root
 * can sign. */
static int root_check(struct moat_deploy *d, const char *id, struct moat_err *err)
{
	bool needs = false;
	int rc = moat_deploy_revoking_needs_root(d, id, &needs, err);
	if (rc == 0 && needs) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "%s: its certificate was signed by the root CA: revoking it needs "
				  "the CA passphrase",
				  id);
	}
	return rc;
}

int moat_deploy_revoke(struct moat_deploy *d, const char *id, int reason, struct moat_err *err)
{
	struct moat_identity ident;
	int rc;
	const struct moat_ca *signer = NULL;
	if ((rc = moat_identity_name_check(id, err)) != 0) {
		return rc;
	}
	if ((rc = moat_deploy_signer(d, &signer, err)) != 0 || (rc = root_check(d, id, err)) != 0) {
		return rc;
	}
	if ((rc = moat_registry_identity_get(d->reg, id, &ident, err)) != 0) {
		return rc;
	}
	if (ident.cert_revoked) {
		return moat_err_set(err, MOAT_ESTATE, "%s: certificate %s is already revoked", id,
				    ident.serial_hex);
	}
	if ((rc = moat_registry_begin(d->reg, err)) != 0) {
		return rc;
	}
	if ((rc = moat_registry_cert_revoke(d->reg, ident.serial_hex, reason, moat_time_now(),
					    err)) != 0 ||
	    (rc = moat_registry_identity_set_status(d->reg, id, MOAT_ID_REVOKED, err)) != 0 ||
	    (rc = moat_deploy_write_crl(d, err)) != 0 ||
	    (rc = moat_registry_commit(d->reg, err)) != 0) {
		moat_registry_rollback(d->reg);
		return rc;
	}
	return 0;
}

/* Promotion order: cert.pem last, so that while .next/cert.pem exists the renewal is
 * unfinished, and once it is gone there is nothing left to move. */
static const char *const identity_files[] = {"key.pem", "ca.crt", "cert.pem"};

/* Moves .next/<file> over <file> for each identity file, then removes .next. */
static int promote_next(const char *dir, struct moat_err *err)
{
	int rc;
	for (size_t i = 0; i < sizeof(identity_files) / sizeof(identity_files[0]); i++) {
		char from[PATH_MAX];
		char to[PATH_MAX];
		if ((rc = moat_path_join(from, sizeof(from), err, "%s/.next/%s", dir,
					 identity_files[i])) != 0 ||
		    (rc = moat_path_join(to, sizeof(to), err, "%s/%s", dir, identity_files[i])) !=
			    0) {
			return rc;
		}
		if (!moat_fs_exists(from)) {
			continue; /* moved before an interruption */
		}
		if (rename(from, to) != 0) {
			return moat_err_errno(err, MOAT_EIO, errno, "rename %s", from);
		}
	}
	char next[PATH_MAX];
	if ((rc = moat_path_join(next, sizeof(next), err, "%s/.next", dir)) != 0 ||
	    (rc = moat_fs_remove_tree(next, err)) != 0) {
		return rc;
	}
	return moat_fs_sync_dir(dir, err);
}

int deploy_renew_recover(struct moat_deploy *d, const char *id, struct moat_err *err)
{
	char dir[PATH_MAX];
	char next_cert[PATH_MAX];
	int rc;
	if ((rc = moat_deploy_identity_path(d, id, NULL, dir, sizeof(dir), err)) != 0 ||
	    (rc = moat_path_join(next_cert, sizeof(next_cert), err, "%s/.next/cert.pem", dir)) !=
		    0) {
		return rc;
	}
	char next[PATH_MAX];
	if ((rc = moat_path_join(next, sizeof(next), err, "%s/.next", dir)) != 0) {
		return rc;
	}
	if (!moat_fs_exists(next)) {
		return 0;
	}
	/* Committed means: .next/cert.pem is this identity's current certificate in the
	 * registry. Anything else (never committed, partly written, foreign) is discarded. */
	struct moat_cert_info info;
	struct moat_identity ident;
	bool committed = false;
	if (moat_fs_exists(next_cert) && moat_cert_info_file(next_cert, &info, NULL) == 0 &&
	    strcmp(info.cn, id) == 0) {
		rc = moat_registry_identity_get(d->reg, id, &ident, err);
		if (rc != 0) {
			return rc;
		}
		committed = strcmp(ident.serial_hex, info.serial_hex) == 0;
	}
	if (committed) {
		return promote_next(dir, err);
	}
	return moat_fs_remove_tree(next, err);
}

/* pki/ca.crt as read from disk; the caller frees *out_pem. */
static int read_ca_pem(const struct moat_deploy *d, char **out_pem, size_t *out_len,
		       struct moat_err *err)
{
	char p[PATH_MAX];
	int rc = moat_deploy_path(d, p, sizeof(p), "pki/ca.crt", err);
	if (rc != 0) {
		return rc;
	}
	return moat_fs_read_all(p, 1024 * 1024, out_pem, out_len, err);
}

/* A serial no certificate in the registry has (126 random bits: a retry is a formality). */
static int fresh_serial(struct moat_deploy *d, uint8_t serial[MOAT_SERIAL_BYTES],
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

bool moat_deploy_compromised(const struct moat_identity *ident)
{
	return ident->cert_revoked && (ident->revoked_reason == MOAT_REASON_KEY_COMPROMISE ||
				       ident->revoked_reason == MOAT_REASON_CA_COMPROMISE);
}

static int renew(struct moat_deploy *d, const char *id, int64_t days, bool force,
		 struct moat_err *err)
{
	struct moat_identity ident;
	struct moat_issued issued = {0};
	char *ca_pem = NULL;
	size_t ca_len = 0;
	char dir[PATH_MAX];
	char next[PATH_MAX];
	bool in_tx = false;
	bool staged = false;
	int rc;
	int64_t now = moat_time_now();
	const struct moat_ca *signer = NULL;
	const char *chain = NULL;
	size_t chain_len = 0;

	if ((rc = moat_identity_name_check(id, err)) != 0) {
		return rc;
	}
	if ((rc = moat_deploy_signer(d, &signer, err)) != 0 ||
	    (rc = deploy_signer_chain(d, &chain, &chain_len, err)) != 0 ||
	    (rc = root_check(d, id, err)) != 0) {
		return rc;
	}
	if (days < 0 || days > 36500) {
		return moat_err_set(err, MOAT_EINVAL, "validity must be 1 to 36500 days");
	}
	if ((rc = moat_registry_identity_get(d->reg, id, &ident, err)) != 0) {
		return rc;
	}
	if (ident.status == MOAT_ID_DISABLED) {
		return moat_err_set(err, MOAT_ESTATE, "%s: disabled; enable it before renewing",
				    id);
	}
	/* A compromised key's holder could otherwise ask for its own reactivation: only an
	 * operator who says so renews it, and always with a new key (moat_pki_issue makes one). */
	if (moat_deploy_compromised(&ident) && !force) {
		return moat_err_set(err, MOAT_ESTATE,
				    "%s: revoked for %s; renewing it needs --force (it gets a new "
				    "key: the device must be re-provisioned)",
				    id, moat_pki_reason_name(ident.revoked_reason));
	}
	if ((rc = read_ca_pem(d, &ca_pem, &ca_len, err)) != 0 ||
	    (rc = moat_deploy_identity_path(d, id, NULL, dir, sizeof(dir), err)) != 0 ||
	    (rc = moat_path_join(next, sizeof(next), err, "%s/.next", dir)) != 0) {
		goto out;
	}
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	int64_t not_after = 0;
	if ((rc = deploy_not_after(signer, now, days, d->conf.identity_days, id, &not_after,
				   err)) != 0) {
		goto out;
	}
	struct moat_issue_req req = {
		.cn = id,
		.role = ident.role,
		.kind = MOAT_CERT_CLIENT,
		.key_type = d->conf.key_type,
		.not_before = now - 300,
		.not_after = not_after,
	};
	if ((rc = fresh_serial(d, serial, hex, err)) != 0 ||
	    (rc = moat_pki_issue(signer, &req, serial, &issued, err)) != 0) {
		goto out;
	}
	/* a leftover .next/ from a renewal that never committed was removed on open */
	if ((rc = deploy_write_identity_files(next, &issued, chain, chain_len, ca_pem, ca_len,
					      err)) != 0) {
		staged = moat_fs_exists(next);
		goto out;
	}
	staged = true;
	if ((rc = moat_registry_begin(d->reg, err)) != 0) {
		goto out;
	}
	in_tx = true;
	if ((rc = moat_registry_cert_insert(d->reg, issued.serial_hex, id, issued.not_before,
					    issued.not_after, issued.cert_pem, err)) != 0) {
		goto out;
	}
	if (!ident.cert_revoked && ident.serial_hex[0] &&
	    (rc = moat_registry_cert_revoke(d->reg, ident.serial_hex, 4 /* superseded */, now,
					    err)) != 0) {
		goto out;
	}
	if ((rc = moat_registry_identity_set_status(d->reg, id, MOAT_ID_ACTIVE, err)) != 0 ||
	    (rc = moat_deploy_write_crl(d, err)) != 0 ||
	    (rc = moat_registry_commit(d->reg, err)) != 0) {
		goto out;
	}
	in_tx = false;
	staged = false;
	rc = promote_next(dir, err);
out:
	if (in_tx) {
		moat_registry_rollback(d->reg);
	}
	if (staged) {
		deploy_remove_quietly(next);
	}
	moat_pki_issued_free(&issued);
	free(ca_pem);
	return rc;
}

int moat_deploy_renew(struct moat_deploy *d, const char *id, int64_t days, struct moat_err *err)
{
	return renew(d, id, days, false, err);
}

int moat_deploy_renew_forced(struct moat_deploy *d, const char *id, int64_t days,
			     struct moat_err *err)
{
	return renew(d, id, days, true, err);
}

int moat_deploy_set_disabled(struct moat_deploy *d, const char *id, bool disabled,
			     struct moat_err *err)
{
	struct moat_identity ident;
	int rc;
	if ((rc = moat_identity_name_check(id, err)) != 0 ||
	    (rc = moat_registry_identity_get(d->reg, id, &ident, err)) != 0) {
		return rc;
	}
	if (ident.status == MOAT_ID_REVOKED) {
		return moat_err_set(
			err, MOAT_ESTATE, "%s: revoked; %s", id,
			disabled ? "it is refused already"
				 : "enabling never revives a revoked identity (renew it)");
	}
	enum moat_identity_status want = disabled ? MOAT_ID_DISABLED : MOAT_ID_ACTIVE;
	if (ident.status == want) {
		return moat_err_set(err, MOAT_ESTATE, "%s: already %s", id,
				    moat_identity_status_name(want));
	}
	return moat_registry_identity_set_status(d->reg, id, want, err);
}

int moat_deploy_delete(struct moat_deploy *d, const char *id, int reason, struct moat_err *err)
{
	struct moat_identity ident;
	char dir[PATH_MAX];
	int rc;
	if ((rc = moat_identity_name_check(id, err)) != 0) {
		return rc;
	}
	const struct moat_ca *signer = NULL; /* the CRL is re-signed: fail before any change */
	if ((rc = moat_deploy_signer(d, &signer, err)) != 0) {
		return rc;
	}
	if ((rc = moat_registry_identity_get(d->reg, id, &ident, err)) != 0 ||
	    (rc = moat_deploy_identity_path(d, id, NULL, dir, sizeof(dir), err)) != 0) {
		return rc;
	}
	int64_t now = moat_time_now();
	/* The CRL is written before the commit (as for revocation): a crash in between lists
	 * one certificate too many, never one too few. The files go after the commit; a crash
	 * before that leaves a directory without its row, which the next open removes. */
	if ((rc = moat_registry_begin(d->reg, err)) != 0) {
		return rc;
	}
	if ((!ident.cert_revoked && ident.serial_hex[0] &&
	     (rc = moat_registry_cert_revoke(d->reg, ident.serial_hex, reason, now, err)) != 0) ||
	    (rc = moat_registry_identity_delete(d->reg, id, now, err)) != 0 ||
	    (rc = moat_deploy_write_crl(d, err)) != 0 ||
	    (rc = moat_registry_commit(d->reg, err)) != 0) {
		moat_registry_rollback(d->reg);
		return rc;
	}
	if ((rc = moat_fs_remove_tree(dir, err)) != 0) {
		moat_err_prefix(err,
				"%s deleted and its certificate revoked, but its files stay "
				"(the next moat command removes them)",
				id);
	}
	return rc;
}
