/* deploy_internal.h: shared by the files of src/deploy; not part of the contract.
 *
 * The files depend on each other one way only, lowest first:
 *   conf.c       moat.conf's core sections and the host rules (no files, no registry)
 *   files.c      paths in the deployment and the files of one identity
 *   issuer.c     bulk issuance and staging on every core           (uses files.c)
 *   signer.c     the CA that signs: the issuing CA or the root; creating, adding and
 *                rotating the issuing CA                           (uses files.c)
 *   lifecycle.c  revocation, renewal, the CRL, renewal recovery    (uses files.c)
 *   provision.c  bulk provisioning, all or nothing                 (uses issuer.c, files.c)
 *   deploy.c     open (with crash recovery), close, unlock         (uses conf.c, files.c,
 *                                                                   lifecycle.c)
 *   owner.c      moatd's account and what it owns                  (uses files.c)
 *   init.c       moat init                     (uses conf.c, files.c, signer.c, owner.c)
 *   server_cert.c  reissuing the server certificate, adding hosts  (uses conf.c, files.c)
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
	struct moat_ca *ca; /* the root: certificate always; key only after moat_deploy_unlock */
	bool has_issuer;    /* pki/issuer.crt exists */
	struct moat_ca *issuer; /* the issuing CA with its key, loaded by moat_deploy_signer */
	char *chain_pem;	/* pki/issuer.crt's text (identity certificates append it) */
	size_t chain_len;
	int lock_fd;	  /* -1 unless opened for writing */
	size_t recovered; /* identities removed by crash recovery on open */
};

/* conf.c */
int deploy_conf_parse(const struct moat_config *cfg, struct moat_deploy_conf *conf,
		      struct moat_err *err);
int deploy_host_check(const char *host, struct moat_err *err);
bool deploy_host_is_ip(const char *host);
/* The [client] host a deployment with these broker hosts gets when moat.conf names none:
 * the first loopback name or address (localhost, 127.0.0.0/8, ::1), else the first IP
 * address (the broker listens on those by default), else NULL. */
const char *deploy_client_host_default(const char *const *hosts, size_t count);

/* server_cert.c: text with line `line` (1-based) of moat.conf and its continuation lines
 * replaced by lines (no trailing newline; one is added). The caller frees *out. */
int deploy_conf_replace_key(const char *text, size_t len, int line, const char *lines, char **out,
			    size_t *out_len, struct moat_err *err);

/* files.c (and moat_deploy_path, moat_deploy_identity_path of deploy.h) */
/* Best-effort removal on an error path (the caller reports the first error); whatever
 * stays is removed by the next open's recovery. */
void deploy_remove_quietly(const char *path);
/* Writes cert.pem (issued's certificate then chain, chain_len bytes, which may be 0),
 * key.pem (0600) and ca.crt into dir (created 0700), each atomically and fsync'd (renewal:
 * one identity, durability is cheap). */
int deploy_write_identity_files(const char *dir, const struct moat_issued *issued,
				const char *chain, size_t chain_len, const char *ca_pem,
				size_t ca_len, struct moat_err *err);
/* Bulk staging of one identity: mkdir dir (0700), key.pem (0600) and cert.pem created with
 * O_EXCL and not synced (the caller syncs the filesystem once), ca.crt a hard link to
 * ca_path. */
int deploy_stage_identity(const char *dir, const struct moat_issued *issued, const char *chain,
			  size_t chain_len, const char *ca_path, struct moat_err *err);

/* signer.c */
/* The notAfter of a certificate signer signs now: now + days when days is given, refused
 * (MOAT_EINVAL "--days N: <what> would be valid until ..., after the CA that signs it") when
 * that is beyond the signer's notAfter; days 0: now + default_days, cut to the signer's
 * notAfter. */
int deploy_not_after(const struct moat_ca *signer, int64_t now, int64_t days, int64_t default_days,
		     const char *what, int64_t *out, struct moat_err *err);
/* What identity certificates carry after their own: pki/issuer.crt's text, or nothing in a
 * single-tier deployment (*out NULL, *out_len 0). Owned by d. */
int deploy_signer_chain(struct moat_deploy *d, const char **out, size_t *out_len,
			struct moat_err *err);

/* moat.conf's [pki] issuer_pkcs11_uri: the issuing CA's key is in a token (NULL: a file). */
const char *deploy_issuer_pkcs11_uri(const struct moat_deploy *d);
/* The key in a token that uri names (moat/pkcs11.h), module module unless the URI names its
 * own, PIN from pin_file (NULL: $MOAT_PKCS11_PIN, else none); it must be a key a CA may
 * have (deploy_ca_key_check). Caller frees *out. */
int deploy_token_key(const char *uri, const char *module, const char *pin_file, EVP_PKEY **out,
		     struct moat_err *err);
/* deploy_token_key with moat.conf's [pki] issuer_pkcs11_uri, pkcs11_module and
 * issuer_pin_file: the key a new or rotated issuing CA of this deployment certifies. */
int deploy_issuer_token_key(const struct moat_deploy *d, EVP_PKEY **out, struct moat_err *err);
/* A CA key moat accepts: P-256, or RSA of 2048 bits or more. */
int deploy_ca_key_check(EVP_PKEY *key, struct moat_err *err);
/* Writes the issuing CA into the deployment dir: issuers.pem (issuer, then retired_pem,
 * the retired issuing CAs whose certificates may still be in use), issuer.key (0600; not
 * for a key in a PKCS#11 token, which stays there),
 * issuer.crt and chain.pem (issuer then root_pem), each atomically. */
int deploy_issuer_write(const char *dir, const struct moat_ca *issuer, const char *root_pem,
			size_t root_len, const char *retired_pem, size_t retired_len,
			struct moat_err *err);

/* The text of pki/crl.pem: one CRL, valid for [pki] crl_validity from now and listing every
 * revoked serial, per CA whose certificates may be in use: the signer, each retired issuing
 * CA (pki/retired/, pruned once expired), and in a deployment that was single-tier the
 * root while certificates it signed may be in use (re-signed when the root is unlocked,
 * else kept as it is in the current file). Caller frees *out. */
int deploy_crl_assemble(struct moat_deploy *d, const struct moat_revoked_cert *revoked,
			size_t count, int64_t number, int64_t now, char **out, size_t *out_len,
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
	const char *chain;   /* appended to each cert.pem (deploy_signer_chain) */
	size_t chain_len;
};
struct issuer_pool;
int issuer_start(const struct issuer_job *job, struct issuer_pool **out, struct moat_err *err);
/* Waits for item i (items are taken in order, each once) and moves it to *out: the
 * certificate (PEM, serial, validity); the private key was written and wiped already. */
int issuer_take(struct issuer_pool *p, size_t i, struct moat_issued *out, struct moat_err *err);
/* Stops the workers and wipes results not taken. NULL is allowed. */
void issuer_stop(struct issuer_pool *p);

#endif
