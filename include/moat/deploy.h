/* deploy.h: the deployment directory (docs/ARCHITECTURE.md), and the operations that must keep its
 * files and its registry consistent.
 *
 * Layout: moat.conf, registry.db, pki/{ca.crt,ca.key,crl.pem,server.crt,server.key},
 * pki/identities/<id>/{cert.pem,key.pem,ca.crt}, broker/, firmware/, log/, run/.
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

/* Defaults of moat.conf, written by moat init and assumed when a key is absent. */
#define MOAT_BROKER_PORT_DEFAULT 8883
#define MOAT_SERVER_PORT_DEFAULT 8443
#define MOAT_CA_DAYS_DEFAULT 3650
#define MOAT_IDENTITY_DAYS_DEFAULT 730
#define MOAT_SERVER_DAYS_DEFAULT 825
#define MOAT_CRL_DAYS_DEFAULT 30

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
	int64_t ca_days; /* default 3650 */
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

/* Issues and registers every request, all or nothing. Requires moat_deploy_unlock.
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
/* Regenerates and atomically writes pki/crl.pem from the registry. */
MOAT_MUST_CHECK int moat_deploy_write_crl(struct moat_deploy *d, struct moat_err *err);

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
 *   pki/identities/<[server] service_identity>/  group G, 02750, key.pem group G 0640:
 *                        moatd's MQTT identity, which it reads at every reconnect
 *   pki/ca.key, firmware/keys/, every other identity: unchanged (root's, 0600/0700).
 * Not root (a developer's account): nothing changes and moatd runs as that account. */
#define MOAT_MOATD_USER_DEFAULT "moat"
#define MOAT_DEPLOY_USER_BUF_LEN 33

/* [server] user of cfg (NULL: none), else MOAT_MOATD_USER_DEFAULT, into out. MOAT_EINVAL
 * for a name outside [a-z0-9_.-] (not starting with '-'), longer than 32, or "root". */
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
