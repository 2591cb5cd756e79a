/* check_broker.c: the broker's files against what the registry and moat.conf derive (the
 * renderers of src/broker, never a copy), the running broker against its files, and the
 * settings of broker/mosquitto.conf and broker/acl.conf as they are on disk. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "audit_internal.h"
#include "moat/broker.h"
#include "moat/broker_supervisor.h"
#include "moat/codec.h"
#include "moat/fsutil.h"
#include "moat/manifest.h"
#include "moat/policy.h"

#define CHECKLIST_DRIFT "Drift: every file derived from the registry matches it"
#define CHECKLIST_BROKER "Broker: TLS only, client certificates, least-privilege ACL"

const struct moat_audit_check audit_drift_policy = {
	"drift.policy", MOAT_AUDIT_CRITICAL,
	"broker/policy is what the registry and moat.conf derive", CHECKLIST_DRIFT, MOAT_OWASP_I3};
const struct moat_audit_check audit_drift_acl = {"drift.acl", MOAT_AUDIT_CRITICAL,
						 "broker/acl.conf is what the registry derives",
						 CHECKLIST_DRIFT, MOAT_OWASP_I3};
const struct moat_audit_check audit_drift_conf = {"drift.mosquitto_conf", MOAT_AUDIT_HIGH,
						  "broker/mosquitto.conf is what moat.conf derives",
						  CHECKLIST_DRIFT, MOAT_OWASP_I9};
const struct moat_audit_check audit_drift_live_broker = {
	"drift.live_broker", MOAT_AUDIT_HIGH,
	"the running broker was started from the mosquitto.conf on disk (by content: run/mosquitto.conf.started, the copy the supervisor makes as it starts Mosquitto)",
	CHECKLIST_DRIFT, MOAT_OWASP_I9};
const struct moat_audit_check audit_drift_live_policy = {
	"drift.live_policy", MOAT_AUDIT_HIGH,
	"the running broker's plugin enforces the broker/policy on disk (the SHA-256 it logged "
	"when it loaded it)",
	CHECKLIST_DRIFT, MOAT_OWASP_I3};
const struct moat_audit_check audit_broker_tls = {
	"broker.tls", MOAT_AUDIT_HIGH, "every listener offers TLS 1.2 or newer with strong suites",
	CHECKLIST_BROKER, MOAT_OWASP_I7};
const struct moat_audit_check audit_broker_client_cert = {
	"broker.require_certificate", MOAT_AUDIT_CRITICAL,
	"every listener requires a client certificate", CHECKLIST_BROKER, MOAT_OWASP_I1};
const struct moat_audit_check audit_broker_anonymous = {"broker.anonymous", MOAT_AUDIT_CRITICAL,
							"allow_anonymous false", CHECKLIST_BROKER,
							MOAT_OWASP_I1};
const struct moat_audit_check audit_broker_listener = {"broker.plaintext_listener",
						       MOAT_AUDIT_CRITICAL,
						       "no listener without TLS", CHECKLIST_BROKER,
						       MOAT_OWASP_I2};
const struct moat_audit_check audit_broker_limits = {
	"broker.limits", MOAT_AUDIT_MEDIUM,
	"message size, inflight, queue, keepalive and connection limits are set", CHECKLIST_BROKER,
	MOAT_OWASP_I2};
const struct moat_audit_check audit_broker_persistence = {"broker.persistence", MOAT_AUDIT_LOW,
							  "persistence is on", CHECKLIST_BROKER,
							  MOAT_OWASP_I9};
const struct moat_audit_check audit_broker_logging = {
	"broker.logging", MOAT_AUDIT_MEDIUM, "the broker logs to a file, connections included",
	"Monitoring: security events recorded and watched", MOAT_OWASP_I9};
const struct moat_audit_check audit_broker_plugin = {
	"broker.plugin", MOAT_AUDIT_HIGH,
	"moat_broker.so is loaded (client id bound to the certificate, disabled identities "
	"refused)",
	CHECKLIST_BROKER, MOAT_OWASP_I3};
const struct moat_audit_check audit_broker_acl_grants = {
	"broker.acl_grants", MOAT_AUDIT_CRITICAL,
	"no ACL line grants '#' or another identity's topics", CHECKLIST_BROKER, MOAT_OWASP_I3};

static int read_rel(struct audit_ctx *a, const char *rel, char **out, size_t *len, bool *absent)
{
	char path[PATH_MAX];
	struct moat_err e;
	int rc = moat_deploy_path(a->d, path, sizeof(path), rel, a->err);
	*out = NULL;
	*absent = false;
	if (rc != 0) {
		return rc;
	}
	if (!moat_fs_exists(path)) {
		*absent = true;
		return 0;
	}
	if (moat_fs_read_all(path, 256u * 1024 * 1024, out, len, &e) != 0) {
		*absent = true;
		*out = NULL;
	}
	return 0;
}

/* A derived file against what it should be. */
static int compare(struct audit_ctx *a, const struct moat_audit_check *c, const char *rel,
		   const char *want, size_t want_len, const char *skip, const char *fix)
{
	char *have = NULL;
	size_t have_len = 0;
	bool absent;
	char title[512], ev[512], wl[200], hl[200];
	int rc = read_rel(a, rel, &have, &have_len, &absent);
	if (rc != 0) {
		return rc;
	}
	if (absent) {
		snprintf(title, sizeof(title), "%s is missing or unreadable", rel);
		return audit_add(a, c, c->severity, title, NULL, fix, rel, 0);
	}
	int line = audit_first_diff(want, want_len, have, have_len, skip, wl, hl, sizeof(wl));
	free(have);
	if (line == 0) {
		return 0;
	}
	snprintf(title, sizeof(title), "%s differs from what moat derives, from line %d", rel,
		 line);
	snprintf(ev, sizeof(ev), "line %d is \"%s\", expected \"%s\"", line, hl, wl);
	return audit_add(a, c, c->severity, title, ev, fix, rel, line);
}

static int drift(struct audit_ctx *a, const struct moat_broker_settings *s, char *mode,
		 size_t mode_size)
{
	struct moat_policy p;
	char *policy = NULL, *acl = NULL, *conf = NULL;
	size_t policy_len = 0, acl_len = 0, conf_len = 0;
	int rc;
	if ((rc = audit_ran(a, &audit_drift_policy)) != 0 ||
	    (rc = audit_ran(a, &audit_drift_acl)) != 0 ||
	    (rc = audit_ran(a, &audit_drift_conf)) != 0) {
		return rc;
	}
	if ((rc = moat_broker_policy_build(a->d, &p, a->err)) != 0 ||
	    (rc = moat_policy_render_alloc(&p, &policy, &policy_len, a->err)) != 0 ||
	    (rc = moat_broker_render_acl(&p, &acl, &acl_len, a->err)) != 0) {
		goto out;
	}
	/* an unban line lives until the next write from the registry (policy.h) */
	if ((rc = compare(a, &audit_drift_policy, MOAT_POLICY_FILE_NAME, policy, policy_len,
			  "unban ", "moat broker config")) != 0 ||
	    (rc = compare(a, &audit_drift_acl, MOAT_BROKER_ACL_FILE, acl, acl_len, NULL,
			  "moat broker config")) != 0) {
		goto out;
	}
	moat_broker_conf_mode(a->dir, mode, mode_size);
	char plugin[PATH_MAX] = "";
	struct moat_err e;
	if (strcmp(mode, "plugin") == 0 &&
	    moat_broker_plugin_find(plugin, sizeof(plugin), &e) != 0) {
		rc = audit_cannot(a, &audit_drift_conf, e.msg);
		goto out;
	}
	if (moat_broker_render_conf(a->dir, s, plugin[0] ? plugin : NULL, &conf, &conf_len, &e) !=
	    0) {
		rc = audit_cannot(a, &audit_drift_conf, e.msg);
		goto out;
	}
	rc = compare(a, &audit_drift_conf, MOAT_BROKER_CONF_FILE, conf, conf_len, NULL,
		     "moat broker config (then moat down && moat up)");
out:
	moat_policy_free(&p);
	free(policy);
	free(acl);
	free(conf);
	return rc;
}

/* The running broker read mosquitto.conf when it started: a later change is not live.
 * The supervisor copies the file to run/mosquitto.conf.started just before every start of
 * Mosquitto (moat_sup_record_at_start), so the file on disk is compared by content with
 * what the running broker loaded, whatever its mtime says. */
static int live(struct audit_ctx *a)
{
	const struct moat_audit_check *c = &audit_drift_live_broker;
	struct moat_broker_state st;
	struct moat_err e;
	char ev[1024], title[256], wl[200], hl[200];
	int rc = audit_ran(a, c);
	if (rc != 0 || !a->o->system) {
		return rc;
	}
	if (moat_broker_state(a->dir, &st, &e) != 0) {
		return audit_cannot(a, c, e.msg);
	}
	if (!st.running || st.mosquitto_pid <= 0) {
		return 0; /* nothing live to compare: monitoring names a broker that is down */
	}
	char *loaded = NULL, *ondisk = NULL;
	size_t loaded_len = 0, ondisk_len = 0;
	bool loaded_absent, ondisk_absent;
	if ((rc = read_rel(a, MOAT_BROKER_CONF_STARTED_FILE, &loaded, &loaded_len,
			   &loaded_absent)) != 0 ||
	    (rc = read_rel(a, MOAT_BROKER_CONF_FILE, &ondisk, &ondisk_len, &ondisk_absent)) != 0) {
		free(loaded);
		return rc;
	}
	if (loaded_absent) {
		free(ondisk);
		return audit_cannot(a, c,
				    MOAT_BROKER_CONF_STARTED_FILE
				    " is missing: the broker was started by an older moat (moat "
				    "down && moat up records what it loads)");
	}
	if (ondisk_absent) {
		free(loaded);
		return 0; /* drift.mosquitto_conf names it */
	}
	int line =
		audit_first_diff(loaded, loaded_len, ondisk, ondisk_len, NULL, wl, hl, sizeof(wl));
	free(loaded);
	free(ondisk);
	if (line == 0) {
		return 0;
	}
	snprintf(title, sizeof(title),
		 "the running broker started with another mosquitto.conf than the one on disk, "
		 "from line %d",
		 line);
	snprintf(ev, sizeof(ev),
		 "mosquitto (pid %d) loaded line %d \"%s\" (" MOAT_BROKER_CONF_STARTED_FILE
		 "); broker/mosquitto.conf has \"%s\"",
		 (int)st.mosquitto_pid, line, wl, hl);
	return audit_add(a, c, c->severity, title, ev, "moat down && moat up",
			 MOAT_BROKER_CONF_FILE, line);
}

#define LIVE_POLICY_LOG_TAIL (1u << 20) /* the plugin's last load is near the log's end */
#define LIVE_POLICY_GRACE_S 2		/* the plugin looks for a new policy every 200 ms */

/* The digest the running plugin logged last ("plugin ready" at its start, "policy
 * reloaded" after), from the end of log/mosquitto.log: 0 and hex (65 bytes) filled, 1 when
 * there is none, <0 when the log cannot be read. */
static int logged_policy_digest(const char *path, char *hex, struct moat_err *err)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && st.st_size > (off_t)LIVE_POLICY_LOG_TAIL) {
		(void)fseeko(f, st.st_size - (off_t)LIVE_POLICY_LOG_TAIL, SEEK_SET);
	}
	char buf[4096];
	int found = 1;
	while (fgets(buf, sizeof(buf), f)) {
		if (!strstr(buf, "moat: plugin ready: ") &&
		    !strstr(buf, "moat: policy reloaded: ")) {
			continue;
		}
		const char *t = strstr(buf, MOAT_PLUGIN_POLICY_SHA256_TAG);
		if (!t) {
			continue;
		}
		t += strlen(MOAT_PLUGIN_POLICY_SHA256_TAG);
		size_t n = strspn(t, "0123456789abcdef");
		if (n == MOAT_SHA256_BYTES * 2) {
			memcpy(hex, t, n);
			hex[n] = '\0';
			found = 0;
		}
	}
	fclose(f);
	return found;
}

/* The policy the running plugin enforces, as it reported it, against broker/policy (which
 * drift.policy compares with the registry): a broker that failed to reload, or never saw the
 * change, still enforces an older decision. */
static int live_policy(struct audit_ctx *a, const char *mode)
{
	const struct moat_audit_check *c = &audit_drift_live_policy;
	struct moat_broker_state st;
	struct moat_err e;
	char path[PATH_MAX], logpath[PATH_MAX], running[MOAT_SHA256_BYTES * 2 + 1] = "";
	char ondisk[MOAT_SHA256_BYTES * 2 + 1], ev[1024];
	int rc = audit_ran(a, c);
	if (rc != 0 || !a->o->system || strcmp(mode, "plugin") != 0) {
		return rc;
	}
	if (moat_broker_state(a->dir, &st, &e) != 0) {
		return audit_cannot(a, c, e.msg);
	}
	if (!st.running || st.mosquitto_pid <= 0) {
		return 0; /* no running broker: nothing enforced to compare */
	}
	if ((rc = moat_deploy_path(a->d, path, sizeof(path), MOAT_POLICY_FILE_NAME, a->err)) != 0 ||
	    (rc = moat_deploy_path(a->d, logpath, sizeof(logpath), MOAT_BROKER_LOG_FILE, a->err)) !=
		    0) {
		return rc;
	}
	int got = logged_policy_digest(logpath, running, &e);
	if (got < 0) {
		return audit_cannot(a, c, e.msg);
	}
	if (got > 0) {
		return audit_cannot(a, c,
				    "the running broker has not logged the digest of its policy in "
				    "log/mosquitto.log (a plugin older than this moat, or the log "
				    "rotated since it last loaded one)");
	}
	char *text = NULL;
	size_t len = 0;
	uint8_t md[MOAT_SHA256_BYTES];
	unsigned int mdlen = 0;
	struct stat pst;
	if (moat_fs_read_all(path, MOAT_POLICY_MAX_BYTES, &text, &len, &e) != 0) {
		return audit_cannot(a, c, e.msg);
	}
	int ok = EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL);
	free(text);
	if (ok != 1 || mdlen != sizeof(md)) {
		return audit_cannot(a, c, "cannot digest broker/policy");
	}
	moat_hex_encode(md, sizeof(md), ondisk);
	if (strcmp(ondisk, running) == 0) {
		return 0;
	}
	if (stat(path, &pst) == 0 && a->o->now - (int64_t)pst.st_mtime < LIVE_POLICY_GRACE_S) {
		return 0; /* written a moment ago: the plugin is about to load it */
	}
	snprintf(ev, sizeof(ev),
		 "mosquitto (pid %d) last logged " MOAT_PLUGIN_POLICY_SHA256_TAG
		 "%s; broker/policy on disk has sha256 %s",
		 (int)st.mosquitto_pid, running, ondisk);
	return audit_add(a, c, c->severity,
			 "the running broker enforces another policy than broker/policy: it did "
			 "not load the current one",
			 ev,
			 "look for \"moat: ... (keeping the previous policy)\" in "
			 "log/mosquitto.log; moat broker config, or moat down && moat up",
			 MOAT_POLICY_FILE_NAME, 0);
}

/* ---- mosquitto.conf as it is on disk ---- */

/* A cipher string that admits what must never be negotiated. */
static const char *weak_cipher(const char *ciphers)
{
	static const char *const weak[] = {"RC4",   "DES",   "3DES", "NULL", "EXPORT", "MD5",
					   "aNULL", "eNULL", "ALL",  "LOW",  "MEDIUM", "SSLv3",
					   "PSK",   "SRP",   "CBC",  "SHA1"};
	char copy[512];
	snprintf(copy, sizeof(copy), "%s", ciphers);
	char *save = NULL;
	for (char *t = strtok_r(copy, ":, ", &save); t; t = strtok_r(NULL, ":, ", &save)) {
		if (t[0] == '!' || t[0] == '-') {
			continue;
		}
		for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
			if (strstr(t, weak[i])) {
				return weak[i];
			}
		}
		/* OpenSSL's suite names say neither "CBC" nor "SHA1": ECDHE-RSA-AES128-SHA is
		 * CBC with a SHA-1 MAC, AES128-GCM-SHA256 has no forward secrecy. A suite
		 * name (it has a '-'; keywords like HIGH do not) must be AEAD over ECDHE or
		 * DHE. */
		if (!strchr(t, '-') || strncmp(t, "TLS_", 4) == 0) {
			continue;
		}
		if (!strstr(t, "GCM") && !strstr(t, "CHACHA20") && !strstr(t, "CCM")) {
			return "CBC";
		}
		if (strncmp(t, "ECDHE-", 6) != 0 && strncmp(t, "DHE-", 4) != 0) {
			return "no forward secrecy";
		}
	}
	return NULL;
}

static int conf_checks(struct audit_ctx *a, const char *mode)
{
	static const struct moat_audit_check *const all[] = {
		&audit_broker_tls,	&audit_broker_client_cert, &audit_broker_anonymous,
		&audit_broker_listener, &audit_broker_limits,	   &audit_broker_persistence,
		&audit_broker_logging,	&audit_broker_plugin};
	const char *rel = MOAT_BROKER_CONF_FILE;
	const char *fix = "moat broker config (then moat down && moat up)";
	char *text = NULL;
	size_t len = 0;
	bool absent;
	char title[1024], ev[600];
	int rc;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if ((rc = audit_ran(a, all[i])) != 0) {
			return rc;
		}
	}
	if ((rc = read_rel(a, rel, &text, &len, &absent)) != 0) {
		return rc;
	}
	if (absent) {
		return 0; /* drift.mosquitto_conf names it */
	}
	struct audit_conf_view *v = calloc(1, sizeof(*v));
	if (!v) {
		free(text);
		return moat_err_set(a->err, MOAT_ENOMEM, "audit: out of memory");
	}
	audit_conf_scan(text, len, v);
	free(text);
	if (v->port_line) {
		rc = audit_add(a, &audit_broker_listener, MOAT_AUDIT_CRITICAL,
			       "a `port` line opens Mosquitto's default listener, without TLS",
			       "port outside any listener block", fix, rel, v->port_line);
	}
	if (rc == 0 && v->n == 0) {
		rc = audit_add(a, &audit_broker_listener, MOAT_AUDIT_CRITICAL,
			       "no listener configured: Mosquitto opens a plaintext one on 1883",
			       NULL, fix, rel, 0);
	}
	for (size_t i = 0; rc == 0 && i < v->n; i++) {
		const struct audit_listener *l = &v->l[i];
		if (!l->certfile || !l->keyfile) {
			snprintf(title, sizeof(title), "%s has no TLS (certfile/keyfile)", l->name);
			rc = audit_add(a, &audit_broker_listener, MOAT_AUDIT_CRITICAL, title,
				       l->name, fix, rel, l->line);
			continue;
		}
		if (!l->require_cert) {
			snprintf(title, sizeof(title), "%s does not require a client certificate",
				 l->name);
			rc = audit_add(a, &audit_broker_client_cert, MOAT_AUDIT_CRITICAL, title,
				       "require_certificate is not true", fix, rel, l->line);
		}
		if (rc == 0 && (!l->tls_version_set || (strcmp(l->tls_version, "tlsv1.2") != 0 &&
							strcmp(l->tls_version, "tlsv1.3") != 0))) {
			snprintf(title, sizeof(title), "%s accepts TLS versions below 1.2",
				 l->name);
			snprintf(ev, sizeof(ev), "tls_version %s",
				 l->tls_version_set ? l->tls_version : "(not set)");
			rc = audit_add(a, &audit_broker_tls, MOAT_AUDIT_HIGH, title, ev, fix, rel,
				       l->line);
		}
		const char *w = l->ciphers[0] ? weak_cipher(l->ciphers) : NULL;
		if (rc == 0 && w) {
			snprintf(title, sizeof(title), "%s offers weak TLS 1.2 suites (%s)",
				 l->name, w);
			snprintf(ev, sizeof(ev), "ciphers %.500s", l->ciphers);
			rc = audit_add(a, &audit_broker_tls, MOAT_AUDIT_HIGH, title, ev, fix, rel,
				       l->ciphers_line);
		} else if (rc == 0 && !l->ciphers[0]) {
			snprintf(title, sizeof(title),
				 "%s leaves the TLS 1.2 suites to OpenSSL's defaults", l->name);
			rc = audit_add(a, &audit_broker_tls, MOAT_AUDIT_MEDIUM, title,
				       "no ciphers line", fix, rel, l->line);
		}
		if (rc == 0 && !l->max_connections) {
			snprintf(title, sizeof(title), "%s has no connection limit", l->name);
			rc = audit_add(a, &audit_broker_limits, MOAT_AUDIT_MEDIUM, title,
				       "max_connections absent or -1", fix, rel, l->line);
		}
	}
	if (rc == 0 && v->allow_anonymous != 0) {
		rc = audit_add(a, &audit_broker_anonymous,
			       v->allow_anonymous == 1 ? MOAT_AUDIT_CRITICAL : MOAT_AUDIT_MEDIUM,
			       v->allow_anonymous == 1 ? "allow_anonymous is not false"
						       : "allow_anonymous is not set explicitly",
			       NULL, fix, rel, v->anon_line);
	}
	for (size_t i = 0; rc == 0 && i < AUDIT_CONF_LIMITS; i++) {
		if (!v->limit[i]) {
			snprintf(title, sizeof(title), "%s is not set", audit_conf_limit_keys[i]);
			rc = audit_add(a, &audit_broker_limits, MOAT_AUDIT_MEDIUM, title,
				       "Mosquitto's default is unlimited or large", fix, rel, 0);
		}
	}
	if (rc == 0 && !v->persistence) {
		rc = audit_add(a, &audit_broker_persistence, MOAT_AUDIT_LOW,
			       "persistence is off: queued messages are lost on restart", NULL, fix,
			       rel, 0);
	}
	if (rc == 0 && (!v->log_file || v->connection_messages_off)) {
		rc = audit_add(a, &audit_broker_logging, MOAT_AUDIT_MEDIUM,
			       !v->log_file
				       ? "the broker logs to no file or syslog"
				       : "connection_messages is false: connects are not logged",
			       NULL, fix, rel, 0);
	}
	if (rc == 0 && !v->plugin) {
		rc = audit_add(
			a, &audit_broker_plugin,
			v->acl_file ? MOAT_AUDIT_HIGH : MOAT_AUDIT_CRITICAL,
			v->acl_file
				? "the moat plugin is not loaded (ACL-file mode): client ids are "
				  "not bound to certificates, disabled identities get in"
				: "neither the moat plugin nor an ACL file: every client may "
				  "do anything",
			mode[0] ? mode : NULL, "moat broker config (plugin mode is the default)",
			rel, 0);
	}
	free(v);
	return rc;
}

/* ---- acl.conf as it is on disk ---- */

/* Whether user may be held to its own topics: a device, or a name the registry lacks. */
static bool acl_user_is_device(const char *user, void *ctx)
{
	const struct moat_identity *id = audit_identity(ctx, user);
	return !id || id->role == MOAT_ROLE_DEVICE;
}

static int acl_checks(struct audit_ctx *a)
{
	const struct moat_audit_check *c = &audit_broker_acl_grants;
	const char *rel = MOAT_BROKER_ACL_FILE;
	char *text = NULL;
	size_t len = 0;
	bool absent;
	int rc;
	if ((rc = audit_ran(a, c)) != 0 || (rc = read_rel(a, rel, &text, &len, &absent)) != 0 ||
	    absent) {
		return rc;
	}
	char user[MOAT_ID_BUF_LEN] = "";
	size_t pos = 0;
	int lineno = 0;
	while (rc == 0 && pos < len) {
		const char *s = text + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos;
		pos += n + (nl ? 1 : 0);
		lineno++;
		char line[1024];
		if (n >= sizeof(line)) {
			n = sizeof(line) - 1;
		}
		memcpy(line, s, n);
		line[n] = '\0';
		char title[1024];
		const char *why = audit_acl_judge(line, user, sizeof(user), acl_user_is_device, a);
		if (why) {
			snprintf(title, sizeof(title), "acl.conf line %d %s", lineno, why);
			rc = audit_add(a, c, c->severity, title, line, "moat broker config", rel,
				       lineno);
		}
	}
	free(text);
	return rc;
}

int audit_broker(struct audit_ctx *a)
{
	struct moat_broker_settings s;
	struct moat_err e;
	char mode[32] = "";
	int rc;
	if (moat_broker_settings_load(moat_deploy_config(a->d), moat_deploy_settings(a->d), &s,
				      &e) != 0) {
		return moat_err_set(a->err, e.code, "%s", e.msg);
	}
	if ((rc = drift(a, &s, mode, sizeof(mode))) != 0 || (rc = live(a)) != 0 ||
	    (rc = live_policy(a, mode)) != 0 || (rc = conf_checks(a, mode)) != 0) {
		return rc;
	}
	return acl_checks(a);
}
