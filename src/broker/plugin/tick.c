/* tick.c: TICK and RELOAD, live changes without a broker restart.
 *
 * Every MP_RELOAD_CHECK_MS the plugin stats the policy file and the CRL; when one changed
 * (inode, size, mtime or ctime: `moat` replaces them by rename) it is parsed again and,
 * if it parses, replaces the one in force. A file that does not parse is reported once and
 * the previous one stays: half a policy is never applied. After a change, every connected
 * client whose identity is now unknown or not active, or whose certificate serial is now
 * in the CRL, is kicked (without its will: it is no longer trusted to speak) and reported
 * as revoked_kicked, and its unban lines lift the flapping bans that began before them.
 * Mosquitto's own crlfile only covers new handshakes after a SIGHUP,
 * so this is what makes revocation take effect for sessions that are already open.
 * A CRL that is refused (unreadable, not signed by the CA, stale: crl.c) leaves the last
 * good one in force and is a crl_rejected event. TICK also counts the passes of the
 * broker's loop (acl.c bounds each SUBSCRIBE by them), ends the reload window of auth.c
 * and writes the events_suppressed summary (budget.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "moat/codec.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"
#include "plugin_internal.h"

int moat_plugin_load_policy(struct mp_state *st, bool force, struct moat_err *err)
{
	int rc = moat_plugin_file_changed(st->policy_path, &st->policy_stamp, force, err);
	if (rc <= 0) {
		return rc;
	}
	char *data = NULL;
	size_t len = 0;
	rc = moat_fs_read_all(st->policy_path, MOAT_POLICY_MAX_BYTES, &data, &len, err);
	if (rc < 0) {
		return rc;
	}
	struct moat_policy fresh;
	uint8_t md[MOAT_SHA256_BYTES];
	unsigned int mdlen = 0;
	rc = moat_policy_parse(data, len, &fresh, err);
	if (rc == 0 &&
	    (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != sizeof(md))) {
		rc = moat_err_set(err, MOAT_ECRYPTO, "cannot digest the policy");
	}
	free(data);
	if (rc < 0) {
		moat_policy_free(&fresh);
		moat_err_prefix(err, "%s", st->policy_path);
		return rc;
	}
	moat_hex_encode(md, sizeof(md), st->policy_sha256);
	moat_policy_free(&st->policy);
	st->policy = fresh;
	st->policy_gen++; /* what connections cached from the old one is void */
	return 1;
}

/* The policy's unban lines: a ban that began at or before the line's time is lifted (the
 * detector starts afresh on the next connect); a newer ban stays, so reading the same
 * line again on a later reload changes nothing. */
static void apply_unbans(struct mp_state *st)
{
	for (size_t i = 0; i < st->policy.unban_count; i++) {
		const struct moat_policy_unban *u = &st->policy.unbans[i];
		struct mp_ident *id = moat_plugin_ident_find(st, u->name);
		if (!id || !id->flap_ready ||
		    !moat_flap_banned(&id->flap, moat_time_mono_ms(), NULL) ||
		    id->banned_at_s > u->before_s) {
			continue;
		}
		id->flap_ready = false;
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "moat: flapping ban of %s lifted", u->name);
	}
}

/* Why the client of c may no longer stay connected, or NULL. */
static const char *no_longer_allowed(const struct mp_state *st, const struct mp_conn *c)
{
	if (moat_plugin_serial_revoked(st, c->serial)) {
		return "certificate_revoked";
	}
	const struct moat_policy_identity *pi = moat_policy_find(&st->policy, c->identity);
	if (!pi) {
		return "unknown_identity";
	}
	if (pi->status == MOAT_POLICY_DISABLED) {
		return "disabled";
	}
	if (pi->status == MOAT_POLICY_REVOKED) {
		return "revoked";
	}
	return NULL;
}

static void kick_refused(struct mp_state *st)
{
	size_t total = 0;
	for (size_t b = 0; b < MP_CONN_BUCKETS; b++) {
		for (const struct mp_conn *c = st->conns[b]; c; c = c->next) {
			total += c->authed;
		}
	}
	if (total == 0) {
		return;
	}
	/* Kicking runs DISCONNECT, which edits the table: collect the names first. */
	char(*names)[MOAT_ID_BUF_LEN] = mosquitto_calloc(total, sizeof(*names));
	if (!names) {
		mosquitto_log_printf(MOSQ_LOG_ERR,
				     "moat: out of memory: cannot kick revoked clients");
		return;
	}
	size_t count = 0;
	for (size_t b = 0; b < MP_CONN_BUCKETS; b++) {
		for (const struct mp_conn *c = st->conns[b]; c && count < total; c = c->next) {
			const char *why = c->authed ? no_longer_allowed(st, c) : NULL;
			if (!why) {
				continue;
			}
			char detail[160];
			snprintf(detail, sizeof(detail), "disconnected: %s (certificate serial %s)",
				 why, c->serial);
			moat_plugin_client_event(st, MP_EV_REVOKED_KICKED, c->client, c->identity,
						 why, detail);
			memcpy(names[count++], c->identity, MOAT_ID_BUF_LEN);
		}
	}
	for (size_t i = 0; i < count; i++) {
		mosquitto_kick_client_by_username(names[i], false);
	}
	mosquitto_free(names);
}

/* Reloads what changed; reports a failure once per change of the file. */
static void reload(struct mp_state *st, bool force)
{
	struct moat_err err = {0};
	bool changed = false;
	bool was_valid = st->policy_stamp.valid;
	int rc = moat_plugin_load_policy(st, force, &err);
	if (rc > 0) {
		changed = true;
		mosquitto_log_printf(
			MOSQ_LOG_NOTICE,
			"moat: policy reloaded: %zu identities, " MOAT_PLUGIN_POLICY_SHA256_TAG
			"%s",
			st->policy.identity_count, st->policy_sha256);
	} else if (rc < 0 && (rc != MOAT_ENOENT || was_valid)) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "moat: %s (keeping the previous policy)",
				     err.msg);
	}
	was_valid = st->crl_stamp.valid;
	rc = moat_plugin_load_crl(st, force, &err);
	if (rc > 0) {
		changed = true;
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "moat: CRL reloaded: %zu revoked serials",
				     st->revoked_count);
	} else if (rc < 0 && (rc != MOAT_ENOENT || was_valid)) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "moat: %s (keeping the previous CRL)", err.msg);
		struct mp_event ev = {
			.kind = MP_EV_CRL_REJECTED,
			.reason = rc == MOAT_EVERIFY ? "not_verified" : "unreadable",
			.detail = err.msg,
		};
		moat_plugin_event(st, &ev);
	}
	/* The CRL in force going stale: Mosquitto now refuses every certificate it covers
	 * (its own crlfile check), so the fleet is locked out until it is re-signed. */
	if (st->crl_stamp.valid && !st->crl_stale_reported && time(NULL) >= st->crl_next_update) {
		st->crl_stale_reported = true;
		mosquitto_log_printf(MOSQ_LOG_ERR,
				     "moat: the CRL in force passed its nextUpdate: devices are "
				     "refused until it is re-signed");
		struct mp_event ev = {
			.kind = MP_EV_CRL_REJECTED,
			.reason = "stale",
			.detail = "the CRL in force passed its nextUpdate",
		};
		moat_plugin_event(st, &ev);
	}
	if (changed) {
		apply_unbans(st);
		kick_refused(st);
	}
}

int moat_plugin_tick(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)event_data;
	struct mp_state *st = userdata;
	int64_t now_ms = moat_time_mono_ms();
	st->loop_pass++;
	st->in_reload = false;
	if (now_ms >= st->next_check_ms) {
		st->next_check_ms = now_ms + MP_RELOAD_CHECK_MS;
		reload(st, false);
	}
	moat_plugin_event_summary(st, now_ms);
	return MOSQ_ERR_SUCCESS;
}

int moat_plugin_reload_event(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)event_data;
	struct mp_state *st = userdata;
	/* Mosquitto runs BASIC_AUTH for every session next, before its next TICK. */
	st->in_reload = true;
	reload(st, true);
	moat_plugin_events_reopen(st);
	return MOSQ_ERR_SUCCESS;
}
