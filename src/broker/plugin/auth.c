/* auth.c: BASIC_AUTH (who may connect) and DISCONNECT (the end of what BASIC_AUTH began).
 *
 * Mosquitto has already verified the certificate chain (and its crlfile, as of the last
 * start or SIGHUP) during the TLS handshake, but not what kind of certificate it is.
 * BASIC_AUTH requires a leaf made for a client: not a CA (basicConstraints CA:TRUE,
 * keyCertSign or a v1 root), an extendedKeyUsage that includes clientAuth, exactly one CN
 * and exactly one OU naming the identity's role in the policy (moat's PKI writes the role
 * there). Then it binds the MQTT session to it:
 * the certificate's CN is the identity; the client id must be that identity
 * (otherwise any valid certificate could take over another device's session): exactly it
 * for a device, it or "<identity>:<suffix>" for a service or an operator, which may hold
 * several sessions (moat_client_id_check, identity.h); the serial
 * must not be in the CRL the plugin last loaded (which may be newer than the broker's); the
 * policy must list the identity as active; the identity must not be banned for flapping
 * (limits per role; a ban records when it began, so an unban line of the policy, applied
 * by tick.c, lifts only the bans that began before it).
 * On success the username becomes the CN, which is what the ACL and rate limits key on,
 * whatever username the client sent. Every refusal is a security event, except one: on a
 * reload Mosquitto runs BASIC_AUTH for offline persistent sessions too, which have no
 * certificate; they are refused again silently (they were never connected, nothing was
 * attempted).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "moat/timeutil.h"
#include "plugin_internal.h"

/* The text of the single entry nid of the subject, NUL-terminated in out (size bytes); false
 * when there is none, more than one, or it does not fit or holds a NUL. */
static bool single_name_entry(X509 *cert, int nid, char *out, size_t size)
{
	out[0] = '\0';
	const X509_NAME *name = X509_get_subject_name(cert);
	int idx = X509_NAME_get_index_by_NID(name, nid, -1);
	if (idx < 0 || X509_NAME_get_index_by_NID(name, nid, idx) >= 0) {
		return false; /* none, or two: which one would be "the" one? */
	}
	const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
	const unsigned char *data = ASN1_STRING_get0_data(s);
	int len = ASN1_STRING_length(s);
	if (!data || len <= 0 || (size_t)len >= size || memchr(data, '\0', (size_t)len)) {
		return false;
	}
	memcpy(out, data, (size_t)len);
	out[len] = '\0';
	return true;
}

/* The single CN of the subject, when it is a valid identity name. */
static bool cert_identity(X509 *cert, char out[MOAT_ID_BUF_LEN])
{
	if (!single_name_entry(cert, NID_commonName, out, MOAT_ID_BUF_LEN) ||
	    !moat_identity_name_ok(out)) {
		out[0] = '\0';
		return false;
	}
	return true;
}

/* NULL when cert is a client leaf, else the reason word (detail filled). */
static const char *leaf_refusal(X509 *cert, char *detail, size_t size)
{
	/* X509_check_ca alone says "not a CA" for CA:TRUE with a keyUsage lacking keyCertSign,
	 * so the basicConstraints flag is read as well. */
	if ((X509_get_extension_flags(cert) & EXFLAG_CA) || X509_check_ca(cert) != 0) {
		snprintf(detail, size, "certificate is a CA certificate, not a leaf");
		return "certificate_is_ca";
	}
	if (!(X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) ||
	    !(X509_get_extended_key_usage(cert) & XKU_SSL_CLIENT)) {
		snprintf(detail, size, "certificate is not for client authentication (EKU)");
		return "not_client_certificate";
	}
	return NULL;
}

/* "until <UTC time>" of a ban ending at until_ms (monotonic) into out. */
static void ban_until(int64_t now_ms, int64_t until_ms, char *out, size_t size)
{
	char iso[MOAT_TIME_ISO_LEN];
	moat_time_iso(moat_time_now() + (until_ms - now_ms + 999) / 1000, iso);
	snprintf(out, size, "until %s", iso);
}

/* Counts a connect of identity (of role); NULL, or why it is refused (banned or flapping
 * now), with the end of the ban in until (size bytes). */
static const char *flapping_check(struct mp_state *st, struct mp_ident *id, enum moat_role role,
				  int64_t now_ms, const struct mp_event *base, char *until,
				  size_t size)
{
	const struct moat_policy_flapping *f = &st->policy.flapping[role];
	int64_t until_ms = 0;
	if (f->connects == 0) {
		return NULL;
	}
	if (!id->flap_ready || memcmp(&id->flapping, f, sizeof(*f)) != 0) {
		if (moat_flap_init(&id->flap, f->connects + 1, (int64_t)f->window_s * 1000,
				   (int64_t)f->ban_s * 1000, NULL) < 0) {
			return NULL; /* cannot happen within the policy's ranges */
		}
		id->flapping = *f;
		id->flap_ready = true;
	}
	if (moat_flap_banned(&id->flap, now_ms, &until_ms)) {
		ban_until(now_ms, until_ms, until, size);
		return "banned";
	}
	if (!moat_flap_connect(&id->flap, now_ms)) {
		return NULL;
	}
	id->banned_at_s = moat_time_now();
	if (moat_flap_banned(&id->flap, now_ms, &until_ms)) {
		ban_until(now_ms, until_ms, until, size);
	}
	char detail[160];
	snprintf(detail, sizeof(detail), "more than %u connects within %u s: refused for %u s",
		 f->connects, f->window_s, f->ban_s);
	struct mp_event ev = *base;
	ev.kind = MP_EV_FLAPPING_BANNED;
	ev.reason = "flapping";
	ev.detail = detail;
	moat_plugin_event(st, &ev);
	return "flapping";
}

int moat_plugin_basic_auth(int event, void *event_data, void *userdata)
{
	(void)event;
	struct mosquitto_evt_basic_auth *ed = event_data;
	struct mp_state *st = userdata;
	const char *client_id = mosquitto_client_id(ed->client);
	char cn[MOAT_ID_BUF_LEN] = "";
	char serial[MP_SERIAL_HEX_MAX] = "";
	char detail[256] = "";
	const char *reason = NULL;
	struct mp_event ev = {
		.kind = MP_EV_AUTH_REFUSED,
		.client_id = client_id,
		.address = mosquitto_client_address(ed->client),
	};

	X509 *cert = mosquitto_client_certificate(ed->client);
	if (!cert && st->in_reload && !moat_plugin_conn_find(st, ed->client)) {
		return MOSQ_ERR_AUTH; /* an offline persistent session: nothing to report */
	}
	if (!cert) {
		reason = "no_certificate";
		snprintf(detail, sizeof(detail), "no client certificate");
		goto refuse;
	}
	if (!cert_identity(cert, cn)) {
		reason = "bad_certificate_name";
		snprintf(detail, sizeof(detail),
			 "certificate CN is missing, repeated or not an identity name");
		goto refuse;
	}
	ev.identity = cn;
	reason = leaf_refusal(cert, detail, sizeof(detail));
	if (reason) {
		goto refuse;
	}
	if (!moat_plugin_serial_hex(X509_get0_serialNumber(cert), serial)) {
		reason = "bad_serial";
		snprintf(detail, sizeof(detail), "certificate serial is unreadable or too long");
		goto refuse;
	}
	/* The part before ':' is checked first, whatever the role: */
	if (moat_client_id_check(MOAT_ROLE_SERVICE, cn, client_id) == MOAT_CLIENT_ID_MISMATCH) {
		reason = "client_id_mismatch";
		snprintf(detail, sizeof(detail), "client id is not the certificate's identity '%s'",
			 cn);
		goto refuse;
	}
	if (moat_plugin_serial_revoked(st, serial)) {
		reason = "revoked";
		snprintf(detail, sizeof(detail), "certificate serial %s is revoked", serial);
		goto refuse;
	}
	const struct moat_policy_identity *pi = moat_policy_find(&st->policy, cn);
	if (!pi) {
		reason = "unknown_identity";
		snprintf(detail, sizeof(detail), "identity is not in the broker policy");
		goto refuse;
	}
	if (pi->status != MOAT_POLICY_ACTIVE) {
		reason = moat_policy_status_name(pi->status);
		snprintf(detail, sizeof(detail), "identity is %s", reason);
		goto refuse;
	}
	char ou[MOAT_ID_BUF_LEN];
	if (!single_name_entry(cert, NID_organizationalUnitName, ou, sizeof(ou)) ||
	    strcmp(ou, moat_role_name(pi->role)) != 0) {
		reason = "role_mismatch";
		snprintf(detail, sizeof(detail),
			 "certificate OU is missing, repeated or not the identity's role '%s'",
			 moat_role_name(pi->role));
		goto refuse;
	}
	/* ...the suffix once the role is known. */
	enum moat_client_id_verdict verdict = moat_client_id_check(pi->role, cn, client_id);
	if (verdict != MOAT_CLIENT_ID_OK) {
		reason = moat_client_id_verdict_name(verdict);
		snprintf(detail, sizeof(detail),
			 verdict == MOAT_CLIENT_ID_SUFFIX_REFUSED
				 ? "a %s has one session: its client id is '%s', no suffix"
				 : "a %s's client id is '%s' or '%s:' and [a-z0-9._-]{1,32}",
			 moat_role_name(pi->role), cn, cn);
		goto refuse;
	}
	struct mp_ident *id = moat_plugin_ident_get(st, cn);
	if (!id) {
		reason = "internal_error";
		snprintf(detail, sizeof(detail), "out of memory");
		goto refuse;
	}
	/* On SIGHUP Mosquitto runs BASIC_AUTH again for every connected client: that is a
	 * re-check of a session we already know, not a new connect to count or report. */
	const struct mp_conn *known = moat_plugin_conn_find(st, ed->client);
	bool recheck = known && known->authed && strcmp(known->identity, cn) == 0;
	if (!recheck) {
		char until[MOAT_TIME_ISO_LEN + 8] = "";
		reason = flapping_check(st, id, pi->role, moat_time_mono_ms(), &ev, until,
					sizeof(until));
		if (reason) {
			snprintf(detail, sizeof(detail),
				 "identity is banned for connecting too often%s%s",
				 until[0] ? " " : "", until);
			goto refuse;
		}
	}
	struct mp_conn *c = moat_plugin_conn_add(st, ed->client);
	if (!c || mosquitto_set_username(ed->client, cn) != MOSQ_ERR_SUCCESS) {
		moat_plugin_conn_remove(st, ed->client);
		reason = "internal_error";
		snprintf(detail, sizeof(detail), "out of memory");
		goto refuse;
	}
	c->authed = true;
	memcpy(c->identity, cn, sizeof(c->identity));
	memcpy(c->serial, serial, sizeof(c->serial));
	X509_free(cert);
	if (recheck) {
		return MOSQ_ERR_SUCCESS;
	}
	ev.kind = MP_EV_CONNECTED;
	snprintf(detail, sizeof(detail), "%s, certificate serial %s", moat_role_name(pi->role),
		 serial);
	ev.detail = detail;
	moat_plugin_event(st, &ev);
	return MOSQ_ERR_SUCCESS;

refuse:
	X509_free(cert);
	ev.kind = MP_EV_AUTH_REFUSED;
	ev.reason = reason;
	ev.detail = detail;
	moat_plugin_event(st, &ev);
	/* Remember the refusal so its DISCONNECT is not mistaken for a failed handshake. */
	struct mp_conn *refused = moat_plugin_conn_add(st, ed->client);
	if (refused) {
		refused->authed = false;
	}
	return MOSQ_ERR_AUTH;
}

int moat_plugin_disconnect(int event, void *event_data, void *userdata)
{
	(void)event;
	struct mosquitto_evt_disconnect *ed = event_data;
	struct mp_state *st = userdata;
	struct mp_conn *c = moat_plugin_conn_find(st, ed->client);
	const char *client_id = mosquitto_client_id(ed->client);
	struct mp_event ev = {
		.client_id = client_id,
		.address = mosquitto_client_address(ed->client),
	};
	if (c) {
		if (c->authed) {
			ev.kind = MP_EV_DISCONNECTED;
			ev.identity = c->identity;
			char detail[48];
			snprintf(detail, sizeof(detail), "reason code %d", ed->reason);
			ev.detail = detail;
			moat_plugin_event(st, &ev);
		}
		moat_plugin_conn_remove(st, ed->client);
		return MOSQ_ERR_SUCCESS;
	}
	if (!client_id) {
		/* Mosquitto reports connections that never sent CONNECT with no client id.
		 * Without a verified client certificate (require_certificate), the TLS
		 * handshake failed: no certificate, an untrusted or revoked one, a bad TLS
		 * version. With one, the handshake worked and the peer just left (a health
		 * check): nothing to report. */
		X509 *cert = mosquitto_client_certificate(ed->client);
		if (cert) {
			X509_free(cert);
			return MOSQ_ERR_SUCCESS;
		}
		ev.kind = MP_EV_AUTH_REFUSED;
		ev.reason = "tls_handshake_failed";
		ev.detail = "connection closed before MQTT CONNECT without a verified certificate";
		moat_plugin_event(st, &ev);
	}
	return MOSQ_ERR_SUCCESS;
}
