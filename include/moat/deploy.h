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
	/* [client] host: how moat's own clients on the broker's machine (moat cmd, watch, sim,
	 * moatd's ingest) reach the broker. Default when absent: the first loopback name or
	 * address among the hosts, else their first IP address (where the broker listens by
	 * default), else the first host. moat init writes it, and the server certificate
	 * always names it (moat init and `moat cert server` add it to the SANs). */
	char client_host[MOAT_HOST_MAX_LEN + 1];
	int broker_port;
	int server_port;
	enum moat_key_type key_type;
	int64_t ca_days;
	int64_t identity_days;
	int64_t server_days;
	int64_t crl_days;
	int64_t crl_validity;	/* seconds: [pki] crl_validity, else crl_days */
	int64_t expiry_warning; /* seconds: [pki] expiry_warning (the dashboard's window of
				   certificates expiring), default MOAT_EXPIRY_WARNING_DEFAULT_S */
};
#define MOAT_EXPIRY_WARNING_DEFAULT_S (30 * 86400LL)
#define MOAT_EXPIRY_WARNING_MAX_S (365 * 86400LL)

/* Parses the core sections of cfg into out ([deployment], [broker] hosts and port, [server]
 * port, [pki]) and refuses an unknown section, an unknown [deployment] or [pki] key, and a
 * key in a section reserved for later ([firmware], [plugin], [agent], [sim]);
 * messages name file and, where the key is there, its line. What moat_deploy_open does
 * first, for `moat config check`. */
MOAT_MUST_CHECK int moat_deploy_conf_load(const struct moat_config *cfg,
					  struct moat_deploy_conf *out, struct moat_err *err);

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
	/* [client] host: how moat's own clients on the broker's machine (moat cmd, watch, sim,
	 * moatd's ingest) reach the broker. Default when absent: the first loopback name or
	 * address among the hosts, else their first IP address (where the broker listens by
	 * default), else the first host. moat init writes it, and the server certificate
	 * always names it (moat init and `moat cert server` add it to the SANs). */
	char client_host[MOAT_HOST_MAX_LEN + 1];
	int broker_port; /* default 8883 */
	int server_port; /* default 8443 */
	enum moat_key_type key_type;
	int64_t ca_days;     /* default 3650 */
	int64_t issuer_days; /* 0: 1825 cut to the root's validity; more than the root's:
			      * refused */
	bool single_tier;    /* no issuing CA: the root signs (how moat init worked before) */
	/* The issuing CA's key in a PKCS#11 token (moat/pkcs11.h) instead of pki/issuer.key:
	 * its URI, the module (NULL: the URI's module-path) and the PIN file (NULL:
	 * $MOAT_PKCS11_PIN), all written to moat.conf's [pki] (the PIN file by its path only).
	 * The key must already be in the token; it is certified, never read out. */
	const char *issuer_pkcs11_uri;
	const char *pkcs11_module;
	const char *issuer_pin_file;
	/* A registry on PostgreSQL (moat/registry.h: moat_registry_url_check) instead of
	 * registry.db: made there (the database must hold no tables) and written to moat.conf's
	 * [registry] url. */
	const char *registry_url;
	int64_t now;
};
/* Creates the deployment. Refuses an existing deployment or a non-empty directory that
 * is not one; on failure removes everything it created. */
MOAT_MUST_CHECK int moat_deploy_init(const struct moat_init_opts *opts, const char *passphrase,
				     struct moat_err *err);

/* Opens the deployment in dir. MOAT_DEPLOY_WRITE takes run/moat.lock and recovers from an
 * interrupted change. MOAT_DEPLOY_READ takes no lock; when dir cannot be written (a
 * read-only file system) the registry is opened read-only (moat_registry_open_readonly),
 * so listing and checking commands still work there. */
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
/* Where the deployment's registry is, for moat_registry_open: moat.conf's [registry] url
 * (a registry on PostgreSQL) when cfg sets it, else "<dir>/registry.db". cfg may be NULL
 * (no moat.conf loaded: the file). */
MOAT_MUST_CHECK int moat_deploy_registry_location(const char *dir, const struct moat_config *cfg,
						  char *buf, size_t size, struct moat_err *err);
/* Whether the deployment's registry is on PostgreSQL ([registry] url): no registry.db, and
 * what copies or owns that file (moat backup, ownership) has nothing of it. */
bool moat_deploy_registry_is_url(const struct moat_deploy *d);
/* The registry connection. Callers MUST NOT close it; in a deployment opened with
 * MOAT_DEPLOY_READ they MUST NOT change it either. */
struct moat_registry *moat_deploy_registry(const struct moat_deploy *d);
/* How many identities the crash recovery of moat_deploy_open removed (0 for READ). */
size_t moat_deploy_recovered(const struct moat_deploy *d);

/* ---- Moving registry.db into PostgreSQL (migrate.c: `moat registry migrate`) ---- */

/* Whether the deployment in dir is stopped (no `moat up`, no moatd): 0, or why not in err.
 * The caller's: deploy cannot see the supervisor. */
typedef int (*moat_deploy_stopped_fn)(const char *dir, void *ctx, struct moat_err *err);

struct moat_deploy_migration {
	struct moat_registry_copy_report report; /* both sides' sums, once the proof ran */
	char kept[PATH_MAX]; /* where registry.db went: registry.db.migrated-<UTC time> */
};
/* Moves the registry of the deployment in dir, on SQLite, to the PostgreSQL database url
 * (moat_registry_url_check'd; it must hold no table). With run/moat.lock held throughout
 * (refused, MOAT_ESTATE, while another holds it): asks stopped (refusing with its error),
 * opens registry.db read-only, copies and proves it (moat_registry_copy: nothing committed
 * unless every table's count, checksum and sequence are equal), asks stopped again, then
 * writes [registry] url into moat.conf atomically (its mode kept) and renames registry.db
 * (with its -wal and -shm) to out->kept, 0600. Every failure before the copy commits
 * leaves moat.conf, registry.db and the target as they were; a failure after it (moat.conf
 * not writable) leaves moat.conf and registry.db as they were and says the copy is in
 * PostgreSQL. Refuses a deployment already on PostgreSQL (MOAT_EEXIST). now names kept. */
MOAT_MUST_CHECK int moat_deploy_registry_migrate(const char *dir, const char *url, int64_t now,
						 moat_deploy_stopped_fn stopped, void *ctx,
						 struct moat_deploy_migration *out,
						 struct moat_err *err);

/* Loads pki/ca.key with passphrase (MOAT_ECRYPTO "pki/ca.key: wrong passphrase", or
 * "pki/ca.key: not a valid encrypted key (truncated or corrupt)": moat_pki_key_decrypt). */
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
 * registry's "root_crl_until"). days: the issuing CA's validity, refused beyond the root's
 * notAfter (0: 1825 days, cut to it). MOAT_EEXIST when there is an issuing CA already. */
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
/* Replaces the issuing CA with a new one (next generation, its own name, a new key in
 * pki/issuer.key), signed by the unlocked root. Nothing is re-issued: the old one moves to
 * pki/retired/ and stays in pki/issuers.pem, and its CRL is part of pki/crl.pem, re-signed
 * with its key, until it expires (when no certificate it signed is valid any more). A key
 * file moves along (issuer-<gen>.key); a key in a token stays there and its URI, with its
 * module, is recorded (issuer-<gen>.pkcs11; PIN: [pki] issuer_pin_file, which stays in
 * moat.conf, else $MOAT_PKCS11_PIN), and moat.conf's issuer_pkcs11_uri is dropped.
 * MOAT_ESTATE without an issuing CA. */
MOAT_MUST_CHECK int moat_deploy_issuer_rotate(struct moat_deploy *d, int64_t days,
					      struct moat_err *err);
/* moat_deploy_issuer_rotate to a new key kept in a token: uri names it (module and
 * pin_file as for moat_deploy_issuer_create_token; each refused when moat.conf has one
 * already); moat.conf's issuer_pkcs11_uri becomes uri (put back when anything after fails).
 * Refused (MOAT_EEXIST) when uri names the current or a retired issuing CA's key. */
MOAT_MUST_CHECK int moat_deploy_issuer_rotate_token(struct moat_deploy *d, int64_t days,
						    const char *uri, const char *module,
						    const char *pin_file, struct moat_err *err);
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
	int64_t days;		 /* 0: the configured default, cut to the signer's notAfter; a given
				  * number of days beyond it is refused ("--days N: ...") */
	enum moat_key_type key_type;
	struct moat_csr *csr; /* certify this CSR's key (moat_csr_parse): no key.pem; NULL:
				 moat generates the key */
	bool simulated;	      /* a device for `moat sim --create`: marked so in the registry */
	bool audit; /* one of `moat audit --live`'s throwaway identities: only these may have
		     * a name with MOAT_AUDIT_ID_PREFIX (identity.h), which everything else refuses
		     */
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
/* New key and certificate for id; the old certificate is revoked (superseded). A disabled
 * identity is refused (MOAT_ESTATE), and so is one whose certificate was revoked for key
 * or CA compromise (moat_deploy_compromised): renewing it would hand the compromised
 * device's holder a working identity again. days as in struct moat_provision_req. */
MOAT_MUST_CHECK int moat_deploy_renew(struct moat_deploy *d, const char *id, int64_t days,
				      struct moat_err *err);
/* moat_deploy_renew for an identity revoked for compromise too: the operator said so. The
 * new certificate is always for a new key, never the compromised one. */
MOAT_MUST_CHECK int moat_deploy_renew_forced(struct moat_deploy *d, const char *id, int64_t days,
					     struct moat_err *err);
/* RFC 5280 reason codes that mean the key can no longer be trusted. */
#define MOAT_REASON_KEY_COMPROMISE 1
#define MOAT_REASON_CA_COMPROMISE 2
/* true when the identity's current certificate was revoked for key or CA compromise. */
bool moat_deploy_compromised(const struct moat_identity *ident);
/* Disables (refused by the broker plugin and moatd, its certificate stays valid and
 * unrevoked) or enables again. Needs no CA key. MOAT_ESTATE when it is revoked, or already
 * in the state asked for; MOAT_ENOENT when unknown. The caller syncs the broker
 * (moat_broker_sync), which kicks a connected client that was disabled. */
MOAT_MUST_CHECK int moat_deploy_set_disabled(struct moat_deploy *d, const char *id, bool disabled,
					     struct moat_err *err);
/* Deletes id: revokes its current certificate (with reason) unless it is revoked already,
 * removes its registry rows (moat_registry_identity_delete: the revoked certificates stay in
 * the CRL and the deletion is recorded), rewrites pki/crl.pem, then removes
 * pki/identities/<id>/. Needs moat_deploy_signer. MOAT_ENOENT when unknown (deleting
 * twice). The name can be added again later, as a new identity with a new key. */
MOAT_MUST_CHECK int moat_deploy_delete(struct moat_deploy *d, const char *id, int reason,
				       struct moat_err *err);
/* What moat_deploy_server_cert issued. */
struct moat_server_cert {
	char serial_hex[MOAT_SERIAL_HEX_LEN];
	int64_t not_after;
	size_t host_count; /* names and addresses it carries: [broker] hosts */
	bool ip_added;	   /* an address was added: a broker without [broker] listen binds it
			      on its next start */
};
/* Reissues pki/server.crt with a new key (pki/server.key, 0600), the certificate the broker
 * and moatd present: every [broker] hosts entry of moat.conf plus add_hosts (each checked
 * like moat.conf's hosts; MOAT_EEXIST when already there, MOAT_EINVAL past MOAT_HOSTS_MAX),
 * valid for days (0: [pki] server_days). Added hosts are written to moat.conf's hosts line
 * (the rest of the file kept as it is) and d reads the new moat.conf from then on. Signed
 * by moat_deploy_signer; the file holds the leaf then the issuing CA. Nothing is written unless the
 * certificate and the new moat.conf are ready; the files are then each replaced atomically
 * (server_cert.c says what an interruption between them leaves). The broker and moatd load the new
 * pair on SIGHUP (moat_broker_sync sends it). out may be NULL. */
MOAT_MUST_CHECK int moat_deploy_server_cert(struct moat_deploy *d, const char *const *add_hosts,
					    size_t add_count, int64_t days,
					    struct moat_server_cert *out, struct moat_err *err);

/* Regenerates and atomically writes pki/crl.pem from the registry: one CRL per CA whose
 * certificates may be in use (see moat_deploy_issuer_rotate), each valid for
 * [pki] crl_validity. Needs moat_deploy_signer. */
MOAT_MUST_CHECK int moat_deploy_write_crl(struct moat_deploy *d, struct moat_err *err);

/* ---- devices that enroll themselves over EST (src/deploy/enroll.c) ----
 * `moat device add ID --enroll` registers a device without a certificate and prints a
 * one-time token (16 random bytes as 32 hex digits; only its SHA-256 is stored); `--claim-cn
 * CN` lets a claim certificate with that CN, issued by a claim CA the operator registered,
 * stand for the token. moatd then issues the device's certificate from its CSR
 * (moat_deploy_enroll_issue) and renews it on simplereenroll. These functions may be
 * called on a deployment opened with MOAT_DEPLOY_READ (moatd): each change takes
 * run/moat.lock for its own duration, waiting at most MOAT_ENROLL_LOCK_WAIT_MS. */

#define MOAT_ENROLL_TOKEN_LEN 32
#define MOAT_ENROLL_TOKEN_BUF_LEN (MOAT_ENROLL_TOKEN_LEN + 1)
#define MOAT_ENROLL_TOKEN_TTL_DEFAULT (24 * 3600)
#define MOAT_ENROLL_TOKEN_TTL_MAX (365 * 86400)
#define MOAT_ENROLL_LOCK_WAIT_MS 2000

struct moat_enroll_add_req {
	const char *id;
	const char *device_type; /* NULL: "generic" */
	bool token;		 /* issue a one-time token */
	int64_t token_ttl;	 /* seconds, 60 .. MOAT_ENROLL_TOKEN_TTL_MAX; 0: 24 h */
	const char *claim_cn;	 /* NULL: no claim certificate */
	bool simulated;		 /* a device for `moat sim --create --enroll` */
};

/* Registers req->id as a device that will enroll itself: its identity row (no certificate,
 * no files) and its enrollment, in one transaction. With req->token, token_out receives
 * the token (shown once, never stored); else "". Needs MOAT_DEPLOY_WRITE, no passphrase.
 * MOAT_EEXIST when the id exists or the claim CN names another device. */
MOAT_MUST_CHECK int moat_deploy_enroll_add(struct moat_deploy *d,
					   const struct moat_enroll_add_req *req,
					   char token_out[MOAT_ENROLL_TOKEN_BUF_LEN],
					   struct moat_err *err);

/* Registers a claim CA (`moat ca claim add`): the first certificate of the PEM text pem,
 * which must be a CA certificate (basicConstraints CA:TRUE) and not the deployment's own
 * CA. sha256_out receives the hex SHA-256 of its DER, which names it. MOAT_EEXIST when it
 * is registered already. Needs MOAT_DEPLOY_WRITE. */
MOAT_MUST_CHECK int moat_deploy_claim_ca_add(struct moat_deploy *d, const char *pem, size_t len,
					     char sha256_out[MOAT_SHA256_HEX_LEN + 1],
					     struct moat_err *err);

/* A claim CN: [A-Za-z0-9._:-]{1,64} (a factory serial number, typically). */
MOAT_MUST_CHECK int moat_claim_cn_check(const char *cn, struct moat_err *err);

enum moat_enroll_verdict {
	MOAT_ENROLL_OK = 0,
	MOAT_ENROLL_BAD_CREDENTIALS,	/* unknown id, no token, or not its token */
	MOAT_ENROLL_TOKEN_USED,		/* its token, used before */
	MOAT_ENROLL_TOKEN_EXPIRED,	/* its token, expired */
	MOAT_ENROLL_UNKNOWN_CLAIM,	/* a verified claim certificate no device names */
	MOAT_ENROLL_CLAIM_USED,		/* its device enrolled already */
	MOAT_ENROLL_CLAIM_NOT_VERIFIED, /* not issued by a registered claim CA, expired, ... */
};
/* "ok", "bad_token", "token_used", "token_expired", "unknown_claim", "claim_used",
 * "claim_not_verified". */
const char *moat_enroll_verdict_name(enum moat_enroll_verdict v);

/* Does token open id's enrollment at now? The SHA-256 of token is compared in constant
 * time, and the same comparison runs for an unknown id; used and expired are only told to
 * a caller holding the right token. Errors are registry failures only. */
MOAT_MUST_CHECK int moat_deploy_enroll_token_check(struct moat_deploy *d, const char *id,
						   const char *token, int64_t now,
						   enum moat_enroll_verdict *out,
						   struct moat_err *err);

struct stack_st_X509;
/* Does the claim certificate leaf (with the chain the peer sent in untrusted, may be NULL)
 * verify at now against a registered claim CA, for the TLS client purpose, and does its
 * CN name a device? id_out and claim_cn_out receive what was found ("" otherwise). Errors
 * are registry failures only. */
MOAT_MUST_CHECK int moat_deploy_claim_verify(struct moat_deploy *d, X509 *leaf,
					     struct stack_st_X509 *untrusted, int64_t now,
					     char id_out[MOAT_ID_BUF_LEN],
					     char claim_cn_out[MOAT_CLAIM_CN_MAX_LEN + 1],
					     enum moat_enroll_verdict *out, struct moat_err *err);

enum moat_enroll_method {
	MOAT_ENROLL_BY_TOKEN,
	MOAT_ENROLL_BY_CLAIM,
	MOAT_ENROLL_RENEW, /* simplereenroll: authenticated by the current certificate */
};

struct moat_enroll_req {
	const char *id; /* authenticated by the caller (token, claim or certificate) */
	enum moat_enroll_method method;
	const struct moat_csr *csr;
	const char *presented_serial; /* RENEW: the serial of the certificate presented */
	int64_t grace_seconds;	      /* RENEW: the old certificate is revoked (superseded)
					 this long after; 0: at once */
};

struct moat_enrolled {
	char serial_hex[MOAT_SERIAL_HEX_LEN];
	char replaced_serial_hex[MOAT_SERIAL_HEX_LEN]; /* RENEW: the old certificate's */
	int64_t not_after;
	char *cert_pem; /* the leaf */
	size_t cert_len;
	X509 *cert;	 /* the leaf, decoded already (EST's answer is built from it) */
	char *chain_pem; /* the leaf, then the signing CA when it is not the root */
	size_t chain_len;
	int files_rc; /* writing the identity's files after the commit (0: written) */
	struct moat_err files_err;
};

/* Issues id's certificate for the CSR's key with the signing CA (moat_deploy_signer):
 * CN = id, OU = device, clientAuth, the configured lifetime cut at the signer's notAfter;
 * nothing taken from the CSR but its key. Refused (MOAT_EDENIED) when the CSR names
 * another identity, the identity is not an active device, its enrollment was used already
 * (BY_TOKEN, BY_CLAIM: marked used here, once), or the presented certificate is not its
 * current one (RENEW). The certificate is committed to the registry, then
 * pki/identities/<id>/cert.pem (the chain) is written (not synced: the registry is its
 * source), a key.pem or ca.crt left there earlier removed (no ca.crt: nothing reads one for
 * an identity without a key); a failure writing it is reported in out->files_rc only (the
 * registry holds the certificate). MOAT_ETIMEOUT when run/moat.lock stays busy. Free out with
 * moat_enrolled_free. */
MOAT_MUST_CHECK int moat_deploy_enroll_issue(struct moat_deploy *d,
					     const struct moat_enroll_req *req,
					     struct moat_enrolled *out, struct moat_err *err);
/* moat_deploy_enroll_issue for n requests at once (group commit): one run/moat.lock, one
 * registry transaction and one sync for all of them, each request checked and recorded
 * alone (a refusal of one leaves the others). rcs[i] is request i's result (0, or the
 * error of moat_deploy_enroll_issue with its message in errs[i]); outs[i] is filled when
 * rcs[i] is 0. Every certificate is durable in the registry before this returns. Returns
 * 0, or the failure that failed every request (also in each rcs[i]). The files under
 * pki/identities/ are not synced: the registry is their source. */
int moat_deploy_enroll_issue_batch(struct moat_deploy *d, const struct moat_enroll_req *reqs,
				   size_t n, struct moat_enrolled *outs, int *rcs,
				   struct moat_err *errs);
void moat_enrolled_free(struct moat_enrolled *e);

/* Revokes (superseded) every certificate whose re-enrollment grace period ended at or
 * before now and re-signs pki/crl.pem; *out_count says how many. Nothing to do is 0 with
 * no lock taken. */
MOAT_MUST_CHECK int moat_deploy_enroll_supersede_due(struct moat_deploy *d, int64_t now,
						     size_t *out_count, struct moat_err *err);
/* How fresh pki/crl.pem is at now. */
struct moat_crl_state {
	size_t crls;	     /* CRLs in the file */
	int64_t next_update; /* the earliest nextUpdate: when the first goes stale */
	int64_t last_update; /* the lastUpdate of that CRL */
	char issuer_cn[256]; /* the CN of its issuer */
	bool stale;	     /* a nextUpdate has passed: verifiers refuse everyone it covers */
	bool refresh_due;    /* half the validity of a CRL the signer (or a retired issuing
			      * CA) re-signs has passed: moatd re-signs it now */
};
/* Reads and verifies every CRL of pki/crl.pem (moat_crl_set_load against the root and
 * pki/issuers.pem); a file that does not verify is an error. */
MOAT_MUST_CHECK int moat_deploy_crl_state(struct moat_deploy *d, int64_t now,
					  struct moat_crl_state *out, struct moat_err *err);

/* ---- Ownership: moatd's account (src/deploy/owner.c) ----
 *
 * moatd runs as its own unprivileged account: [server] user of moat.conf, default
 * MOAT_MOATD_USER_DEFAULT, created by `moat init` (or `moat up`) when moat runs as root and
 * it does not exist. With moat run as root, after moat_deploy_own (user U, its primary
 * group G):
 *   <dir>/               group G, mode |= 01070 (usually 01775): U may create files (SQLite's
 *   pki/                 -wal/-shm, a re-signed CRL, an enrolled identity) and, by the
 *   pki/identities/      sticky bit, rename or remove only its own; others' bits are kept
 *                        (the broker's user traverses <dir> and pki/); identities 01770
 *   registry.db(-wal,-shm)  U:G 0600: moatd records update events (root, the CLI, keeps
 *                        access; SQLite gives the -wal/-shm it creates as root to the owner
 *                        of registry.db)
 *   pki/issuer.key       U:G 0600 when present (the online issuing key moatd signs with)
 *   pki/crl.pem          U:G, mode kept (0644: the broker reads it as another user)
 *   pki/server.key       owner U, group and mode kept (the broker's group reads it): moatd
 *                        loads it again when SIGHUP brings a new pair
 *   pki/retired/         U:G with the files in it: moatd signs retired issuing CAs' CRLs and
 *                        removes those that expired
 *   run/moat.lock        root:G 0660, created when absent: moatd takes the deployment's lock
 *                        for an enrollment or a CRL refresh
 *   pki/identities/<[server] service_identity>/  group G, 02750, key.pem group G 0640:
 *                        moatd's MQTT identity, which it reads at every reconnect
 *   pki/ca.key, firmware/keys/, every other identity: unchanged (root's, 0600/0700).
 * Not root (a developer's account): nothing changes and moatd runs as that account. */
#define MOAT_MOATD_USER_DEFAULT "moat"
#define MOAT_DEPLOY_USER_BUF_LEN (MOAT_ACCOUNT_NAME_MAX_LEN + 1)

/* [server] user of cfg (NULL: none), else MOAT_MOATD_USER_DEFAULT, into out. MOAT_EINVAL
 * for a name moat_account_name_check refuses (identity.h), the message naming [server]
 * user. */
MOAT_MUST_CHECK int moat_deploy_moatd_user(const struct moat_config *cfg,
					   char out[MOAT_DEPLOY_USER_BUF_LEN],
					   struct moat_err *err);

/* Creates the system account name (useradd --system --user-group, no home, nologin shell)
 * unless it exists; retries while another process holds the password file's lock.
 * *out_created says whether this call made it. Root only (MOAT_EDENIED). */
MOAT_MUST_CHECK int moat_deploy_user_create(const char *name, bool *out_created,
					    struct moat_err *err);

enum moat_deploy_own_mode {
	MOAT_DEPLOY_OWN_IF_USER, /* the account is missing: change nothing (identity
				    management on a host where moatd does not run) */
	MOAT_DEPLOY_OWN_STRICT,	 /* the account is missing: MOAT_ENOENT naming it */
	MOAT_DEPLOY_OWN_CREATE,	 /* the default account is missing: create it; a configured
				    one: as STRICT */
};

/* Run as root: applies the ownership above for moatd's account (every change through an
 * O_NOFOLLOW descriptor; absent files are skipped). Not root: does nothing. Idempotent;
 * called by moat init, moat up and after every change (moat_broker_sync), so a file root
 * rewrote in between gets its owner back. */
MOAT_MUST_CHECK int moat_deploy_own(struct moat_deploy *d, enum moat_deploy_own_mode mode,
				    struct moat_err *err);

/* Set by the CLI's signal handler; provisioning checks it between identities. */
extern volatile int moat_deploy_interrupted;

#endif
