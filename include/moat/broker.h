/* broker.h: the files Mosquitto and the moat_broker.so plugin read, derived from moat.conf
 * and the registry, and keeping them in step with the registry (moat_broker_sync). The
 * supervisor `moat up` runs, and how others see it, are in broker_supervisor.h.
 *
 * Generated files (all written with moat_fs_write_atomic, never half-written):
 *   broker/mosquitto.conf  one TLS-only listener per listen address on [broker] port;
 *                          moat's TLS policy (tlspolicy.h: TLS 1.2 minimum, ECDHE + AEAD
 *                          suites for 1.2, OpenSSL's TLS 1.3 defaults);
 *                          require_certificate; cafile/certfile/keyfile/crlfile from pki/;
 *                          allow_anonymous false; limits; persistence in broker/data/;
 *                          log to log/mosquitto.log. No pid_file (Mosquitto writes it as
 *                          its own user): the supervisor writes run/mosquitto.pid.
 *                          Plugin mode (default): the plugin line and its plugin_opt lines,
 *                          no use_identity_as_username (the plugin binds client id to CN).
 *                          ACL-file mode ([broker] plugin = false or --no-plugin): acl_file,
 *                          use_identity_as_username and use_username_as_clientid true.
 *   broker/acl.conf        least privilege by role, from the topic scheme (topic.h):
 *                          `pattern` lines for devices (%u), `user` blocks for active
 *                          services and operators. Nothing grants `#`, and no line lets a
 *                          device touch another device's topics. Pattern lines apply to
 *                          every username; for a service or operator they name topics of a
 *                          device that cannot exist (identity names are unique across
 *                          roles). A disabled device is only refused with the plugin.
 *   broker/policy          moat_policy_render of the registry and moat.conf [policy].
 *
 * moat.conf keys read here (all optional):
 *   [broker] listen = comma-separated addresses to bind (default: the IP addresses among
 *            [broker] hosts; none means every address), plugin = yes|no (default yes),
 *            user = the account Mosquitto runs as when started as root (default mosquitto),
 *            max_connections (default 10000, -1 unlimited), message_size_limit (bytes,
 *            default 262144), max_inflight_messages (20), max_queued_messages (1000),
 *            max_keepalive (seconds, default 300), autosave_interval (seconds, 300).
 *   [policy] operator_write_commands = yes|no; <role>_msgs_per_s, <role>_bytes_per_s,
 *            <role>_burst, <role>_max_payload for role device, service, operator;
 *            flap_connects, flap_window (duration), flap_ban (duration) for devices,
 *            service_flap_* and operator_flap_* (same three) for the other roles.
 *            Absent keys keep moat_policy_init's defaults.
 *
 * Who may read what (Mosquitto started as root switches to [broker] user, its primary
 * group G): when moat runs as root, the writer makes
 *   broker/ root:G 2750 (setgid, so files replaced atomically keep group G) and the files
 *           in it 0640; broker/data/ <user>:G 0750 (persistence: Mosquitto writes there);
 *   log/mosquitto.log and log/security-events.jsonl created by moat, <user>:G 0640; log/
 *           stays root's (a directory the user could write would let it plant symlinks
 *           where root appends);
 *   pki/ root:G 0750 with ca.crt, server.crt, crl.pem, issuers.pem root:G 0640 and
 *           server.key root:G 0640; pki/ca.key, pki/issuer.key and every
 *           pki/identities/<id>/key.pem stay 0600 root, so the broker's user can never
 *           read them.
 * The deployment directory and the plugin must be reachable by the user: a parent
 * directory the user cannot search is an error naming it (tests chmod their mktemp dir).
 * When moat does not run as root, Mosquitto runs as the same user and owns nothing extra.
 *
 * Process files under run/: see broker_supervisor.h.
 */
#ifndef MOAT_BROKER_H
#define MOAT_BROKER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "moat/config.h"
#include "moat/deploy.h"
#include "moat/err.h"
#include "moat/policy.h"

#define MOAT_BROKER_ADDR_MAX_LEN 64 /* an IPv4 or IPv6 address in text */
#define MOAT_BROKER_USER_MAX_LEN 32
#define MOAT_BROKER_PLUGIN_FILE "moat_broker.so"
#define MOAT_BROKER_PLUGIN_ENV "MOAT_BROKER_PLUGIN"
#define MOAT_BROKER_MOSQUITTO_ENV "MOAT_MOSQUITTO" /* overrides /usr/sbin/mosquitto */
#define MOAT_BROKER_MOSQUITTO_BIN "/usr/sbin/mosquitto"
#define MOAT_BROKER_CONF_FILE "broker/mosquitto.conf"
#define MOAT_BROKER_ACL_FILE "broker/acl.conf"
#define MOAT_BROKER_LOG_FILE "log/mosquitto.log"

/* Everything mosquitto.conf depends on besides the paths. */
struct moat_broker_settings {
	int port;
	char listen[MOAT_HOSTS_MAX][MOAT_BROKER_ADDR_MAX_LEN]; /* empty list: every address */
	size_t listen_count;
	bool plugin;
	char user[MOAT_BROKER_USER_MAX_LEN + 1];
	int64_t max_connections;
	int64_t message_size_limit;
	int64_t max_inflight_messages;
	int64_t max_queued_messages;
	int64_t max_keepalive;
	int64_t autosave_interval;
};

/* Reads [broker] (port and hosts from conf, the rest from cfg); unknown [broker] keys and
 * out-of-range values are errors naming the key. */
MOAT_MUST_CHECK int moat_broker_settings_load(const struct moat_config *cfg,
					      const struct moat_deploy_conf *conf,
					      struct moat_broker_settings *out,
					      struct moat_err *err);

/* Reads the [policy] limits of moat.conf into p (initialise it first with moat_policy_init;
 * identities are untouched). */
MOAT_MUST_CHECK int moat_broker_policy_limits(const struct moat_config *cfg, struct moat_policy *p,
					      struct moat_err *err);

/* The policy of the deployment: [policy] limits and every identity of the registry with
 * its role and status. out is initialised here; free it with moat_policy_free (also after
 * a failure). */
MOAT_MUST_CHECK int moat_broker_policy_build(struct moat_deploy *d, struct moat_policy *out,
					     struct moat_err *err);

/* Renders mosquitto.conf for the deployment in dir (an absolute path without '\n').
 * plugin_path NULL renders ACL-file mode, regardless of s->plugin. Pure; the caller frees
 * *out_text. */
MOAT_MUST_CHECK int moat_broker_render_conf(const char *dir, const struct moat_broker_settings *s,
					    const char *plugin_path, char **out_text,
					    size_t *out_len, struct moat_err *err);

/* Renders acl.conf from the policy (roles, statuses, operator_write_commands). Pure; the
 * caller frees *out_text. */
MOAT_MUST_CHECK int moat_broker_render_acl(const struct moat_policy *p, char **out_text,
					   size_t *out_len, struct moat_err *err);

/* The plugin: $MOAT_BROKER_PLUGIN, else moat_broker.so next to the running executable,
 * else (an installed moat) MOAT_PLUGIN_RELDIR/moat_broker.so from its directory.
 * MOAT_ENOENT ("... not found; build it or use --no-plugin") when it is not a file. */
MOAT_MUST_CHECK int moat_broker_plugin_find(char *buf, size_t size, struct moat_err *err);

/* Writes broker/acl.conf and broker/policy (what depends on the registry) and fixes the
 * ownership of the files the broker re-reads on reload (crl.pem included). When the
 * broker's user does not exist, ownership is left alone instead of failing, so identity
 * management works on a host without a broker (moat broker config / moat up refuse). */
MOAT_MUST_CHECK int moat_broker_write_derived(struct moat_deploy *d, struct moat_err *err);

/* Writes every broker file: the derived ones and broker/mosquitto.conf, creating broker/,
 * broker/data/ and log/ with the ownership above. plugin_path NULL: ACL-file mode. */
MOAT_MUST_CHECK int moat_broker_write_all(struct moat_deploy *d,
					  const struct moat_broker_settings *s,
					  const char *plugin_path, struct moat_err *err);

/* Loads the settings, finds the plugin unless force_acl_file or [broker] plugin = no,
 * writes every file (moat_broker_write_all) and gives moatd's account its files
 * (moat_deploy_own, creating the default account when absent). out_plugin receives the plugin's
 * path, or "" in ACL-file mode; out_settings (may be NULL) the settings. */
MOAT_MUST_CHECK int moat_broker_configure(struct moat_deploy *d, bool force_acl_file,
					  struct moat_broker_settings *out_settings,
					  char *out_plugin, size_t plugin_size,
					  struct moat_err *err);

/* Like moat_broker_write_derived, with an unban line for identity name as of now
 * (policy.h "Unban"): the running plugin lifts name's flapping ban when it reloads. */
MOAT_MUST_CHECK int moat_broker_write_unban(struct moat_deploy *d, const char *name,
					    struct moat_err *err);

/* moat_broker_write_unban, then tells a running broker to reload (as moat_broker_sync). */
MOAT_MUST_CHECK int moat_broker_unban(struct moat_deploy *d, const char *name,
				      struct moat_err *err);

/* Keeps the broker in step with the registry after any change to identities (added,
 * revoked, renewed, disabled, enabled), for every writer of the registry: writes what
 * derives from it (moat_broker_write_derived), gives moatd's account back what a change
 * rewrote as root (moat_deploy_own, when the account exists) and tells a running broker to
 * reload
 * (SIGHUP to the supervisor; none running is not an error). */
MOAT_MUST_CHECK int moat_broker_sync(struct moat_deploy *d, struct moat_err *err);

/* The address moat connects to for a readiness probe (the first listen address, else
 * 127.0.0.1) and the name to verify in the server certificate (that address when it is
 * one of [broker] hosts, else the first host). */
void moat_broker_probe_target(const struct moat_broker_settings *s,
			      const struct moat_deploy_conf *conf, const char **out_addr,
			      const char **out_verify_name);

/* Everything a readiness or status probe of the deployment's broker needs, as copies. */
struct moat_broker_endpoint {
	char addr[MOAT_BROKER_ADDR_MAX_LEN];	 /* moat_broker_probe_target's address */
	char verify_name[MOAT_HOST_MAX_LEN + 1]; /* and the name to verify */
	char cafile[PATH_MAX];			 /* pki/ca.crt of the deployment */
	int port;
	/* The client identity the probe presents, so the broker sees a completed handshake
	 * and records no failed one: "" when the deployment has none to offer. */
	char identity[MOAT_ID_BUF_LEN];
	char cert[PATH_MAX]; /* its pki/identities/<id>/cert.pem and key.pem */
	char key[PATH_MAX];
};

/* Fills out from the settings s of the deployment d (moat_broker_probe_target). The probe's
 * identity is the first active service identity of the registry, else the first active
 * operator, whose certificate is current and whose files are readable; none is not an
 * error (identity stays ""; the probe goes without, as before, and the broker records a
 * failed handshake for it). */
MOAT_MUST_CHECK int moat_broker_endpoint_get(const struct moat_deploy *d,
					     const struct moat_broker_settings *s,
					     struct moat_broker_endpoint *out,
					     struct moat_err *err);

/* One TLS handshake with the broker at addr:port, verifying its certificate against cafile
 * and verify_name (a host name or an IP address). The probe has no client certificate: it
 * succeeds once the server's certificate chain and name verified, even when the server
 * then refuses the missing client certificate. MOAT_ETIMEOUT, MOAT_EIO (no listener) or
 * MOAT_EVERIFY (a server that is not ours). */
MOAT_MUST_CHECK int moat_broker_probe(const char *addr, int port, const char *cafile,
				      const char *verify_name, int timeout_ms,
				      struct moat_err *err);

/* moat_broker_probe of e, presenting e's client identity when it has one: the handshake
 * then completes and the probe closes before MQTT CONNECT, which the broker plugin takes
 * for a health check and does not report. Succeeds on the same terms (the server's
 * certificate verified), whether or not the broker then accepts the identity. */
MOAT_MUST_CHECK int moat_broker_probe_endpoint(const struct moat_broker_endpoint *e, int timeout_ms,
					       struct moat_err *err);

/* The mode broker/mosquitto.conf was generated in: "plugin" or "acl-file" (from its
 * "# mode:" line); "" when there is no such file. */
void moat_broker_conf_mode(const char *dir, char *buf, size_t size);

/* True when every directory on the way to path is searchable, and path itself readable,
 * by uid/gid (by mode bits; root is not special-cased). On false, names the first
 * component that is not in err. */
MOAT_MUST_CHECK int moat_broker_check_reachable(const char *path, uid_t uid, gid_t gid,
						struct moat_err *err);

#endif
