/* auth.c: BASIC_AUTH (who may connect) and DISCONNECT (the end of what BASIC_AUTH began).
 *
 * Mosquitto has already verified the certificate chain (and its crlfile, as of the last
 * start or SIGHUP) during the TLS handshake, but not what kind of certificate it is.
 * BASIC_AUTH requires what moat/client_cert.h says a client certificate must be (the rule
 * moatd applies too: a leaf, clientAuth, one CN, one OU naming a role) and that the role is
 * the identity's in the policy. Then it binds the MQTT session to it:
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

#include <openssl/x509.h>

#include "moat/client_cert.h"
#include "moat/timeutil.h"
#include "plugin_internal.h"

/* The sentence of a certificate refusal's event. */
static const char *cert_fault_detail(enum moat_client_cert_fault fault)
{
	switch (fault) {
	case MOAT_CLIENT_CERT_NOT_LEAF:
		return "certificate is a CA certificate, not a leaf";
	case MOAT_CLIENT_CERT_NOT_CLIENT:
		return "certificate is not for client authentication (EKU)";
	case MOAT_CLIENT_CERT_BAD_NAME:
		return "certificate CN is missing, repeated or not an identity name";
	case MOAT_CLIENT_CERT_BAD_ROLE:
		return "certificate OU is missing, repeated or not a role";
	default:
		return "certificate refused";
	}
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

/* The checks of an identity whose certificate passed client_cert.h: serial, client id,
 * revocation, the policy's status and role, the client id's suffix. NULL when it may
 * connect (*out_pi its policy entry), else the reason word, with detail filled. */
static const char *identity_refusal(struct mp_state *st, X509 *cert, const char *cn,
				    enum moat_role cert_role, const char *client_id,
				    char serial[MP_SERIAL_HEX_MAX],
				    const struct moat_policy_identity **out_pi, char *detail,
				    size_t size)
{
	*out_pi = NULL;
	if (!moat_plugin_serial_hex(X509_get0_serialNumber(cert), serial)) {
		snprintf(detail, size, "certificate serial is unreadable or too long");
		return "bad_serial";
	}
	/* The part before ':' is checked first, whatever the role: */
	if (moat_client_id_check(MOAT_ROLE_SERVICE, cn, client_id) == MOAT_CLIENT_ID_MISMATCH) {
		snprintf(detail, size, "client id is not the certificate's identity '%s'", cn);
		return "client_id_mismatch";
	}
	if (moat_plugin_serial_revoked(st, serial)) {
		snprintf(detail, size, "certificate serial %s is revoked", serial);
		return "revoked";
	}
	const struct moat_policy_identity *pi = moat_policy_find(&st->policy, cn);
	*out_pi = pi;
	if (!pi) {
		snprintf(detail, size, "identity is not in the broker policy");
		return "unknown_identity";
	}
	if (pi->status != MOAT_POLICY_ACTIVE) {
		const char *why = moat_policy_status_name(pi->status);
		snprintf(detail, size, "identity is %s", why);
		return why;
	}
	if (cert_role != pi->role) {
		snprintf(detail, size, "certificate OU is '%s', not the identity's role '%s'",
			 moat_role_name(cert_role), moat_role_name(pi->role));
		return "role_mismatch";
	}
	/* ...the suffix once the role is known. */
	enum moat_client_id_verdict verdict = moat_client_id_check(pi->role, cn, client_id);
	if (verdict != MOAT_CLIENT_ID_OK) {
		const char *why = moat_client_id_verdict_name(verdict);
		snprintf(detail, size,
			 verdict == MOAT_CLIENT_ID_SUFFIX_REFUSED
				 ? "a %s has one session: its client id is '%s', no suffix"
				 : "a %s's client id is '%s' or '%s:' and [a-z0-9._-]{1,32}",
			 moat_role_name(pi->role), cn, cn);
		return why;
	}
	return NULL;
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
	/* The one rule for what a client certificate must be (client_cert.h), as moatd has it. */
	enum moat_role cert_role = MOAT_ROLE_DEVICE;
	enum moat_client_cert_fault fault = moat_client_cert_identity(cert, cn, &cert_role);
	ev.identity = cn[0] ? cn : NULL;
	if (fault != MOAT_CLIENT_CERT_OK) {
		reason = moat_client_cert_fault_name(fault);
		snprintf(detail, sizeof(detail), "%s", cert_fault_detail(fault));
		goto refuse;
	}
	const struct moat_policy_identity *pi = NULL;
	reason = identity_refusal(st, cert, cn, cert_role, client_id, serial, &pi, detail,
				  sizeof(detail));
	if (reason) {
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
