/* audit_internal.h: what the static checks of src/audit share (audit.h is the contract). */
#ifndef MOAT_AUDIT_INTERNAL_H
#define MOAT_AUDIT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "moat/audit.h"
#include "moat/deploy.h"
#include "moat/registry.h"

/* A check reports at most this many findings one by one; the rest become one "and N more"
 * finding, so 10,000 devices with the same problem stay readable. */
#define AUDIT_PER_CHECK_MAX 25
#define AUDIT_CAPS_MAX 64

struct audit_cap {
	const struct moat_audit_check *check;
	size_t shown, more;
	enum moat_audit_severity worst_more;
};

struct audit_ctx {
	struct moat_deploy *d;
	const struct moat_audit_opts *o;
	struct moat_audit_result *r;
	const char *dir;
	struct moat_err *err;
	struct moat_identity *ids; /* every identity of the registry, by id */
	size_t id_count;
	struct audit_cap caps[AUDIT_CAPS_MAX];
	size_t cap_count;
};

/* moat_audit_add through the per-check cap; MOAT_ENOMEM sets a->err. */
MOAT_MUST_CHECK int audit_add(struct audit_ctx *a, const struct moat_audit_check *c,
			      enum moat_audit_severity sev, const char *title, const char *evidence,
			      const char *fix, const char *file, int line);
/* moat_audit_ran with a->err set on failure. */
MOAT_MUST_CHECK int audit_ran(struct audit_ctx *a, const struct moat_audit_check *c);
/* moat_audit_cannot with a->err set on failure. */
MOAT_MUST_CHECK int audit_cannot(struct audit_ctx *a, const struct moat_audit_check *c,
				 const char *msg);
/* The registry identity named id, or NULL. */
const struct moat_identity *audit_identity(const struct audit_ctx *a, const char *id);
/* "in N days" / "N days ago" for t relative to now, into buf. */
const char *audit_when(int64_t t, int64_t now, char *buf, size_t size);

/* The first line where two texts differ (1-based) and both lines (escaped, cut), or 0
 * when they are equal. skip_prefix (may be NULL): lines starting with it are ignored on
 * both sides. */
int audit_first_diff(const char *want, size_t want_len, const char *have, size_t have_len,
		     const char *skip_prefix, char *want_line, char *have_line, size_t line_size);

/* Whether key is weak (RSA below 2048 bits, EC off P-256, DSA and the like): true with a
 * description in buf. Ed25519 and P-256 are not. */
bool audit_weak_key(EVP_PKEY *key, char *buf, size_t size);

/* ---- the readers of files as they are on disk (scan.c; fuzz_audit_scan) ---- */

#define AUDIT_LISTENERS_MAX 32
#define AUDIT_CONF_LIMITS 4
extern const char *const audit_conf_limit_keys[AUDIT_CONF_LIMITS];

struct audit_listener {
	int line;
	char name[96];
	bool certfile, keyfile, require_cert, tls_version_set, max_connections;
	char tls_version[32];
	char ciphers[512];
	int ciphers_line;
};

/* What a mosquitto.conf says, as far as the broker checks care. */
struct audit_conf_view {
	struct audit_listener l[AUDIT_LISTENERS_MAX];
	size_t n;
	int allow_anonymous; /* -1 absent, 0 false, 1 anything else */
	int anon_line;
	bool persistence, log_file, connection_messages_off, plugin, acl_file;
	int port_line; /* a `port` line: Mosquitto's default listener, without TLS */
	bool limit[AUDIT_CONF_LIMITS];
};

/* Reads len bytes of mosquitto.conf text into v (lines cut at 1023 bytes). */
void audit_conf_scan(const char *text, size_t len, struct audit_conf_view *v);

/* One acl.conf line (NUL-terminated): a `user` line sets user (user_size bytes); a topic or
 * pattern line that grants too much returns why, else NULL. is_device(user, ctx) says
 * whether that user is held to its own devices/<user>/ topics. */
const char *audit_acl_judge(const char *line, char *user, size_t user_size,
			    bool (*is_device)(const char *user, void *ctx), void *ctx);

/* What the PKI checks read from a certificate, as pointers into its DER: the issuer Name
 * and the SubjectPublicKeyInfo (whole TLVs), the key algorithm's OID (contents), its
 * parameter (whole TLV, param_tag its tag; none: NULL) and the public key's BIT STRING
 * (contents). Read without OpenSSL's X509 decoding, which in OpenSSL 3 builds the public
 * key through the provider decoders: 80 % of an audit of 10,000 identities. */
struct audit_cert_view {
	const unsigned char *issuer, *spki, *alg_oid, *param, *key_bits;
	size_t issuer_len, spki_len, alg_oid_len, param_len, key_bits_len;
	unsigned char param_tag;
};
/* false when der (len bytes) is not a certificate's structure as far as these go. */
bool audit_cert_scan(const unsigned char *der, size_t len, struct audit_cert_view *out);
/* audit_weak_key for a scanned certificate: the curve of an EC key is the algorithm's
 * parameter, so only an RSA or unknown key is decoded. */
bool audit_cert_weak_key(const struct audit_cert_view *v, char *buf, size_t size);

/* monitor.clock's judgement of what adjtimex(2) returned (state) and filled (tx): true,
 * with the evidence in ev, when the clock is not synchronised. */
struct timex;
bool audit_clock_unsynced(int state, const struct timex *tx, char *ev, size_t size);

/* net.iot_to_management and net.iot_to_iot on the policy p, whatever built it: a device
 * zone's first host towards a management host and its neighbour on the usual ports. */
struct moat_net_policy;
MOAT_MUST_CHECK int audit_net_isolation(struct audit_ctx *a, const struct moat_net_policy *p);

int audit_pki(struct audit_ctx *a);
int audit_broker(struct audit_ctx *a);
int audit_firmware(struct audit_ctx *a);
int audit_network(struct audit_ctx *a);
int audit_monitoring(struct audit_ctx *a);

/* The checks (defined in check_*.c, listed in audit.c). */
extern const struct moat_audit_check audit_pki_root_expiry, audit_pki_issuer_expiry,
	audit_pki_ca_key, audit_pki_key_files, audit_pki_cert_expiry, audit_pki_past_issuer,
	audit_pki_crl, audit_pki_duplicate_key, audit_pki_weak_key, audit_pki_key_custody,
	audit_pki_revoked_in_policy, audit_drift_crl;
extern const struct moat_audit_check audit_drift_policy, audit_drift_acl, audit_drift_conf,
	audit_broker_tls, audit_broker_client_cert, audit_broker_anonymous, audit_broker_listener,
	audit_broker_limits, audit_broker_persistence, audit_broker_logging, audit_broker_plugin,
	audit_broker_acl_grants, audit_drift_live_broker, audit_drift_live_policy;
extern const struct moat_audit_check audit_fw_threshold, audit_fw_revoked_key,
	audit_fw_release_expiry, audit_fw_below_floor, audit_fw_not_offered, audit_fw_reverted,
	audit_drift_releases;
extern const struct moat_audit_check audit_net_policy, audit_net_live, audit_net_iot_mgmt,
	audit_net_iot_iot;
extern const struct moat_audit_check audit_mon_events, audit_mon_sinks, audit_mon_clock;

#endif
