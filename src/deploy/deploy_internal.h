/* deploy_internal.h: shared by the files of src/deploy; not part of the contract. */
#ifndef MOAT_DEPLOY_INTERNAL_H
#define MOAT_DEPLOY_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "moat/deploy.h"

int deploy_conf_parse(const struct moat_config *cfg, struct moat_deploy_conf *conf,
		      struct moat_err *err);
int deploy_host_check(const char *host, struct moat_err *err);
bool deploy_host_is_ip(const char *host);
/* Finishes or undoes an interrupted renewal of id (pki/identities/<id>/.next). */
int deploy_renew_recover(struct moat_deploy *d, const char *id, struct moat_err *err);

/* Writes cert.pem, key.pem (0600) and ca.crt into dir (created 0700), each atomically and
 * fsync'd (renewal: one identity, durability is cheap). */
int deploy_write_identity_files(const char *dir, const struct moat_issued *issued,
				const char *ca_pem, size_t ca_len, struct moat_err *err);
/* pki/ca.crt as read from disk; caller frees. */
int deploy_ca_pem(const struct moat_deploy *d, char **out_pem, size_t *out_len,
		  struct moat_err *err);
/* A random serial that no certificate in the registry has. */
int deploy_fresh_serial(struct moat_deploy *d, uint8_t serial[MOAT_SERIAL_BYTES],
			char hex[MOAT_SERIAL_HEX_LEN], struct moat_err *err);

/* Best-effort removal on an error path (the caller reports the first error); whatever
 * stays is removed by the next open's recovery. */
void deploy_remove_quietly(const char *path);

/* Bulk staging of one identity: mkdir dir (0700), key.pem (0600) and cert.pem created with
 * O_EXCL and not synced (the caller syncs the filesystem once), ca.crt a hard link to
 * ca_path. */
int deploy_stage_identity(const char *dir, const struct moat_issued *issued,
			  const char *ca_path, struct moat_err *err);

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
