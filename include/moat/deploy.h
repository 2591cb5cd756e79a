/* deploy.h: the deployment directory (docs/ARCHITECTURE.md), and the operations that must keep its
 * files and its registry consistent.
 *
 * Layout: moat.conf, registry.db, pki/{ca.crt,ca.key,crl.pem,server.crt,server.key},
 * pki/{issuer.crt,issuer.key,chain.pem,issuers.pem} (two-tier deployments),
 * pki/identities/<id>/{cert.pem,key.pem,ca.crt}, broker/, firmware/, log/, run/.
 *
 * Two tiers: pki/ca.crt is the root CA, the trust anchor of devices, broker and moatd; its
 * key (pki/ca.key, encrypted with the passphrase) signs only issuing CAs and may go
 * offline. The online issuing CA (pki/issuer.crt, CA:TRUE pathlen:0; pki/issuer.key,
 * unencrypted PKCS#8, 0600, for the user moatd runs as) signs identities, the server
 * certificate and the CRL. Every certificate file moat writes for a TLS peer (identity
 * cert.pem, pki/server.crt) holds the leaf then the issuing CA. A single-tier deployment
 * has no issuer files and signs everything with the root.
 *
 * Consistency: identities are written to pki/.staging/ first, then, inside one registry
 * transaction, renamed into pki/identities/ and the transaction committed. A crash between
 * the rename and the commit leaves directories without rows; moat_deploy_open removes
 * them (and any staging leftovers) before doing anything else, so after every open there
 * is no key without its registry row and no row without its files.
 *
 * Mutating operations hold an exclusive flock on run/moat.lock for the life of the
 * struct moat_deploy opened with MOAT_DEPLOY_WRITE.
 */
#ifndef MOAT_DEPLOY_H
#define MOAT_DEPLOY_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/config.h"
#include "moat/err.h"
#include "moat/identity.h"
#include "moat/pki.h"
#include "moat/registry.h"

#define MOAT_CONF_FORMAT "moat/1" /* [deployment] format: marks a directory as ours */
#define MOAT_HOSTS_MAX 16
#define MOAT_HOST_MAX_LEN 253
#define MOAT_BULK_MAX 1000000

/* The files of the issuing CA, relative to the deployment directory. */
#define MOAT_ISSUER_CERT_FILE "pki/issuer.crt"
#define MOAT_ISSUER_KEY_FILE "pki/issuer.key"
#define MOAT_CHAIN_FILE "pki/chain.pem"	    /* issuer.crt then ca.crt (EST cacerts) */
#define MOAT_ISSUERS_FILE "pki/issuers.pem" /* every issuing CA whose CRL is in crl.pem */

/* Defaults of moat.conf, written by moat init and assumed when a key is absent. */
#define MOAT_BROKER_PORT_DEFAULT 8883
#define MOAT_SERVER_PORT_DEFAULT 8443
#define MOAT_CA_DAYS_DEFAULT 3650
#define MOAT_IDENTITY_DAYS_DEFAULT 730
#define MOAT_SERVER_DAYS_DEFAULT 825
#define MOAT_ISSUER_DAYS_DEFAULT 1825 /* never beyond the root's notAfter */
#define MOAT_CRL_DAYS_DEFAULT 30
#define MOAT_CRL_VALIDITY_MIN_S 60

/* The parsed core sections of moat.conf. Other modules read their own sections from cfg. */
struct moat_deploy_conf {
	char name[MOAT_ID_BUF_LEN];
	char broker_hosts[MOAT_HOSTS_MAX][MOAT_HOST_MAX_LEN + 1]; /* names and addresses */
	size_t broker_host_count;
	int broker_port;
	int server_port;
	enum moat_key_type key_type;
	int64_t ca_days;
	int64_t identity_days;
	int64_t server_days;
	int64_t crl_days;
	int64_t crl_validity; /* seconds: [pki] crl_validity, else crl_days */
};

/* An open deployment: its directory, moat.conf, registry and CA. Opaque: read it through
 * the accessors below. Everything they return is owned by d and valid until
 * moat_deploy_close(d). */
struct moat_deploy;

/* --dir, then $MOAT_DIR, then the current directory. */
MOAT_MUST_CHECK int moat_deploy_locate(const char *flag_dir, char *out, size_t size,
				       struct moat_err *err);

struct moat_init_opts {
	const char *dir;
	const char *name;		 /* default: basename of dir, made a valid name */
	const char *const *broker_hosts; /* default: localhost, 127.0.0.1 */
	size_t broker_host_count;
	int broker_port; /* default 8883 */
	int server_port; /* default 8443 */
	enum moat_key_type key_type;
	int64_t ca_days;     /* default 3650 */
	int64_t issuer_days; /* default 1825, cut to the root's validity */
	bool single_tier;    /* no issuing CA: the root signs (how moat init worked before) */
	/* The issuing CA's key in a PKCS#11 token (moat/pkcs11.h) instead of pki/issuer.key:
	 * its URI, the module (NULL: the URI's module-path) and the PIN file (NULL:
	 * $MOAT_PKCS11_PIN), all written to moat.conf's [pki] (the PIN file by its path only).
	 * The key must already be in the token; it is certified, never read out. */
	const char *issuer_pkcs11_uri;
	const char *pkcs11_module;
	const char *issuer_pin_file;
	int64_t now;
};
/* Creates the deployment. Refuses an existing deployment or a non-empty directory that
 * is not one; on failure removes everything it created. */
MOAT_MUST_CHECK int moat_deploy_init(const struct moat_init_opts *opts, const char *passphrase,
				     struct moat_err *err);

enum { MOAT_DEPLOY_READ = 0, MOAT_DEPLOY_WRITE = 1 };
MOAT_MUST_CHECK int moat_deploy_open(const char *dir, int mode, struct moat_deploy **out,
				     struct moat_err *err);
void moat_deploy_close(struct moat_deploy *d);

/* The deployment directory as an absolute path (realpath of what was opened). */
const char *moat_deploy_dir(const struct moat_deploy *d);
/* moat.conf as loaded; other modules read their own sections from it. */
const struct moat_config *moat_deploy_config(const struct moat_deploy *d);
/* The parsed core sections of moat.conf. */
const struct moat_deploy_conf *moat_deploy_settings(const struct moat_deploy *d);
/* The registry connection. Callers MUST NOT close it; in a deployment opened with
 * MOAT_DEPLOY_READ they MUST NOT change it either. */
struct moat_registry *moat_deploy_registry(const struct moat_deploy *d);
/* How many identities the crash recovery of moat_deploy_open removed (0 for READ). */
size_t moat_deploy_recovered(const struct moat_deploy *d);

/* Loads pki/ca.key with passphrase (MOAT_ECRYPTO "pki/ca.key: wrong passphrase"). */
MOAT_MUST_CHECK int moat_deploy_unlock(struct moat_deploy *d, const char *passphrase,
				       struct moat_err *err);

/* The CA that signs identities, service certificates and CRLs: the online issuing CA
 * when the deployment has one (no passphrase needed; its key is loaded on first use, and
 * a key file readable by others is refused), else the root CA, which needs
 * moat_deploy_unlock first (MOAT_EINVAL "...: needs the CA passphrase" otherwise).
 * The pointer is owned by d. */
MOAT_MUST_CHECK int moat_deploy_signer(struct moat_deploy *d, const struct moat_ca **out,
				       struct moat_err *err);
/* true when the deployment has an online issuing CA (pki/issuer.crt). */
bool moat_deploy_has_issuer(const struct moat_deploy *d);

/* Adds an online issuing CA to a single-tier deployment (opened for writing and unlocked:
 * the root signs it). A root with pathlen 0 is re-certified first (same name and key,
 * pathlen 1; pki/ca.crt rewritten). The certificates issued so far stay the root's: pki/crl.pem
 * keeps a CRL signed by the root for them, valid until the last of them expires (the
 * registry's "root_crl_until"). days: the issuing CA's validity (0: 1825), cut to the
 * root's. MOAT_EEXIST when there is an issuing CA already. */
MOAT_MUST_CHECK int moat_deploy_issuer_create(struct moat_deploy *d, int64_t days,
					      struct moat_err *err);
/* moat_deploy_issuer_create for a key kept in a PKCS#11 token (moat/pkcs11.h): uri names
 * it, module (NULL: moat.conf's [pki] pkcs11_module, else the URI's module-path) and
 * pin_file (NULL: $MOAT_PKCS11_PIN) reach it. The key is certified, never read out; no
 * pki/issuer.key is written; moat.conf's [pki] gets issuer_pkcs11_uri (and pkcs11_module,
 * issuer_pin_file when given), and is put back when anything after fails. */
MOAT_MUST_CHECK int moat_deploy_issuer_create_token(struct moat_deploy *d, int64_t days,
						    const char *uri, const char *module,
						    const char *pin_file, struct moat_err *err);
/* Replaces the issuing CA with a new one (next generation, its own name), signed by the
 * unlocked root. Not yet for an issuing CA whose key is in a token (MOAT_ESTATE). Nothing is
 * re-issued: the old one moves to pki/retired/ (key included) and stays in pki/issuers.pem, and its
 * CRL is part of pki/crl.pem, re-signed with its key, until it expires (when no certificate it
 * signed is valid any more). MOAT_ESTATE without an issuing CA. */
MOAT_MUST_CHECK int moat_deploy_issuer_rotate(struct moat_deploy *d, int64_t days,
					      struct moat_err *err);
/* *out: revoking (or renewing) id's certificate needs the root unlocked first: in a
 * single-tier deployment, or when the certificate was signed by the root and the root's
 * CRL must list it. false when the root is unlocked already. */
MOAT_MUST_CHECK int moat_deploy_revoking_needs_root(struct moat_deploy *d, const char *id,
						    bool *out, struct moat_err *err);

/* "<dir>/<rel>" into buf; fails when it does not fit. */
MOAT_MUST_CHECK int moat_deploy_path(const struct moat_deploy *d, char *buf, size_t size,
				     const char *rel, struct moat_err *err);
/* "<dir>/pki/identities/<id>/<file>" */
MOAT_MUST_CHECK int moat_deploy_identity_path(const struct moat_deploy *d, const char *id,
					      const char *file, char *buf, size_t size,
					      struct moat_err *err);

struct moat_provision_req {
	const char *id;
	enum moat_role role;
	const char *device_type; /* devices: default "generic"; others: NULL */
	int64_t days;		 /* 0: the configured default */
	enum moat_key_type key_type;
};

/* Progress: called after each identity is issued (done of total). May be NULL. */
typedef void (*moat_progress_cb)(size_t done, size_t total, void *ctx);

/* Issues and registers every request, all or nothing. Signs with moat_deploy_signer (so a
 * single-tier deployment needs moat_deploy_unlock).
 * A SIGINT/SIGTERM during the run (see moat_deploy_interrupted) aborts with MOAT_EINTR and
 * leaves nothing behind. */
MOAT_MUST_CHECK int moat_deploy_provision(struct moat_deploy *d,
					  const struct moat_provision_req *reqs, size_t count,
					  moat_progress_cb progress, void *progress_ctx,
					  struct moat_err *err);

/* Revokes the identity's current certificate, marks it revoked and rewrites pki/crl.pem. */
MOAT_MUST_CHECK int moat_deploy_revoke(struct moat_deploy *d, const char *id, int reason,
				       struct moat_err *err);
/* New key and certificate for id; the old certificate is revoked (superseded). */
MOAT_MUST_CHECK int moat_deploy_renew(struct moat_deploy *d, const char *id, int64_t days,
				      struct moat_err *err);
/* Regenerates and atomically writes pki/crl.pem from the registry: one CRL per CA whose
 * certificates may be in use (see moat_deploy_issuer_rotate), each valid for
 * [pki] crl_validity. Needs moat_deploy_signer. */
MOAT_MUST_CHECK int moat_deploy_write_crl(struct moat_deploy *d, struct moat_err *err);

/* Set by the CLI's signal handler; provisioning checks it between identities. */
extern volatile int moat_deploy_interrupted;

#endif
