/* deploy_internal.h: shared by the files of src/deploy; not part of the contract.
 *
 * The files depend on each other one way only, lowest first:
 *   conf.c       moat.conf's core sections and the host rules (no files, no registry)
 *   files.c      paths in the deployment and the files of one identity
 *   issuer.c     bulk issuance and staging on every core           (uses files.c)
 *   lifecycle.c  revocation, renewal, the CRL, renewal recovery    (uses files.c)
 *   provision.c  bulk provisioning, all or nothing                 (uses issuer.c, files.c)
 *   deploy.c     open (with crash recovery), close, unlock         (uses conf.c, files.c,
 *                                                                   lifecycle.c)
 *   owner.c      moatd's account and what it owns                  (uses files.c)
 *   init.c       moat init                                         (uses conf.c, files.c,
 *                                                                   owner.c)
 */
#ifndef MOAT_DEPLOY_INTERNAL_H
#define MOAT_DEPLOY_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/deploy.h"

/* Opaque outside src/deploy (deploy.h); its accessors live in deploy.c. */
struct moat_deploy {
	char dir[PATH_MAX];
	struct moat_config *cfg;
	struct moat_deploy_conf conf;
	struct moat_registry *reg;
	struct moat_ca *ca; /* certificate always; key only after moat_deploy_unlock */
	int lock_fd;	    /* -1 unless opened for writing */
	size_t recovered;   /* identities removed by crash recovery on open */
};

/* conf.c */
int deploy_conf_parse(const struct moat_config *cfg, struct moat_deploy_conf *conf,
		      struct moat_err *err);
int deploy_host_check(const char *host, struct moat_err *err);
bool deploy_host_is_ip(const char *host);

/* files.c (and moat_deploy_path, moat_deploy_identity_path of deploy.h) */
/* Best-effort removal on an error path (the caller reports the first error); whatever
 * stays is removed by the next open's recovery. */
void deploy_remove_quietly(const char *path);
/* Writes cert.pem, key.pem (0600) and ca.crt into dir (created 0700), each atomically and
 * fsync'd (renewal: one identity, durability is cheap). */
int deploy_write_identity_files(const char *dir, const struct moat_issued *issued,
				const char *ca_pem, size_t ca_len, struct moat_err *err);
/* Bulk staging of one identity: mkdir dir (0700), key.pem (0600) and cert.pem created with
 * O_EXCL and not synced (the caller syncs the filesystem once), ca.crt a hard link to
 * ca_path. */
int deploy_stage_identity(const char *dir, const struct moat_issued *issued, const char *ca_path,
			  struct moat_err *err);

/* lifecycle.c */
/* Finishes or undoes an interrupted renewal of id (pki/identities/<id>/.next). */
int deploy_renew_recover(struct moat_deploy *d, const char *id, struct moat_err *err);

/* issuer.c: bulk issuance and staging on every core; results are taken in order. */
struct issuer_job {
	const struct moat_ca *ca;
	const struct moat_provision_req *reqs;
	size_t count;
	int64_t now;
	int64_t default_days;
	const char *staging; /* each identity is written to <staging>/<id>/ */
	const char *ca_path; /* pki/ca.crt, hard-linked into each identity */
};
struct issuer_pool;
int issuer_start(const struct issuer_job *job, struct issuer_pool **out, struct moat_err *err);
/* Waits for item i (items are taken in order, each once) and moves it to *out: the
 * certificate (PEM, serial, validity); the private key was written and wiped already. */
int issuer_take(struct issuer_pool *p, size_t i, struct moat_issued *out, struct moat_err *err);
/* Stops the workers and wipes results not taken. NULL is allowed. */
void issuer_stop(struct issuer_pool *p);

#endif
