/* message.c: what an identity may publish, its payload (for publishes and last wills) and
 * its rate (for publishes).
 *
 * The payload rule is core's (include/moat/publish.h: the role's payload cap; on telemetry,
 * status and command_responses one JSON object that passes the strict reader every
 * consumer uses, whose "device_id" is the sender; on status a status message). Mosquitto
 * 2.0 sends a last will without the MESSAGE hook but after a write ACL_CHECK that carries
 * its payload, so acl.c calls moat_plugin_payload_check for every write it grants: a
 * publish and a will meet the same rule. MESSAGE then takes the message from the role's
 * token buckets (messages/s and bytes/s, both must have room; a refused message takes no
 * tokens); an operator's command to an active device takes from its job bucket and the
 * device's command bucket instead (include/moat/policy.h "Jobs"). What fails is dropped
 * (MOSQ_ERR_ACL_DENIED: QoS 1 publishers get PUBACK 0x87; a will is not sent) and becomes a
 * payload_rejected or rate_limited event.
 */
#include <stdio.h>
#include <string.h>

#include "moat/publish.h"
#include "moat/timeutil.h"
#include "moat/topic.h"
#include "plugin_internal.h"

/* Sets r up for l, again when l changed; false when it cannot (never within the policy's
 * ranges). */
static bool rate_ready(struct mp_rate *r, const struct moat_policy_limits *l)
{
	if (r->ready && memcmp(&r->limits, l, sizeof(*l)) == 0) {
		return true;
	}
	/* The byte bucket holds as long a burst as the message bucket, and always at least
	 * one full-size message (include/moat/policy.h). */
	uint64_t byte_burst = l->bytes_per_s;
	if (l->msgs_per_s > 0) {
		byte_burst = (uint64_t)l->bytes_per_s * l->burst / l->msgs_per_s;
	}
	if (byte_burst < l->max_payload) {
		byte_burst = l->max_payload;
	}
	if (moat_bucket_init(&r->msgs, l->msgs_per_s, l->burst, NULL) < 0 ||
	    moat_bucket_init(&r->bytes, l->bytes_per_s, byte_burst, NULL) < 0) {
		r->ready = false;
		return false;
	}
	r->limits = *l;
	r->ready = true;
	return true;
}

/* Is there room for one message of len bytes in r now? Takes nothing. */
static bool rate_has_room(struct mp_rate *r, uint32_t len, int64_t now_ms)
{
	return moat_bucket_wait_ms(&r->bytes, len, now_ms) == 0 &&
	       moat_bucket_wait_ms(&r->msgs, 1, now_ms) == 0;
}

static void rate_take(struct mp_rate *r, uint32_t len, int64_t now_ms)
{
	/* rate_has_room said yes at the same now_ms: both succeed */
	(void)moat_bucket_take(&r->msgs, 1, now_ms);
	(void)moat_bucket_take(&r->bytes, len, now_ms);
}

/* Takes one message of len bytes from every bucket of both rates (b may be NULL), or
 * nothing. */
static bool take_tokens(struct mp_rate *a, const struct moat_policy_limits *la, struct mp_rate *b,
			const struct moat_policy_limits *lb, uint32_t len, int64_t now_ms)
{
	if (!rate_ready(a, la) || (b && !rate_ready(b, lb)) || !rate_has_room(a, len, now_ms) ||
	    (b && !rate_has_room(b, len, now_ms))) {
		return false;
	}
	rate_take(a, len, now_ms);
	if (b) {
		rate_take(b, len, now_ms);
	}
	return true;
}

/* What a dropped message was, for its event. */
struct dropped {
	struct mosquitto *client;
	const char *topic;
	uint32_t payloadlen;
	bool will;
};

static int drop(struct mp_state *st, const struct dropped *m, const char *identity,
		enum mp_event_kind kind, const char *reason, const char *what)
{
	char detail[MP_EVENT_FIELD_MAX_LEN + 112];
	snprintf(detail, sizeof(detail), "%s%s: %u bytes on %.*s", m->will ? "last will: " : "",
		 what, m->payloadlen, MP_EVENT_FIELD_MAX_LEN, m->topic ? m->topic : "(none)");
	moat_plugin_client_event(st, kind, m->client, identity, reason, detail);
	return MOSQ_ERR_ACL_DENIED;
}

int moat_plugin_payload_check(struct mp_state *st, const struct mosquitto_evt_acl_check *ed,
			      const struct moat_policy_identity *pi, const struct mp_conn *c,
			      const struct mp_grant *g)
{
	const struct moat_policy_limits *l = &st->policy.limits[pi->role];
	const struct moat_publish m = {
		.sender = pi->name,
		.topic = ed->topic,
		.payload = ed->payload,
		.len = ed->payloadlen,
		.retain = ed->retain,
	};
	const char *why = g ? moat_publish_check_kind(&m, g->kind, l->max_payload)
			    : moat_publish_check(&m, l->max_payload);
	if (!why) {
		return MOSQ_ERR_SUCCESS;
	}
	/* DISCONNECT has already forgotten a client whose will is being sent. */
	const struct dropped d = {
		.client = ed->client,
		.topic = ed->topic,
		.payloadlen = ed->payloadlen,
		.will = !c || !c->authed,
	};
	char what[64];
	if (strcmp(why, "too_large") == 0) {
		snprintf(what, sizeof(what), "payload larger than %u bytes", l->max_payload);
	} else if (strcmp(why, "bad_status") == 0) {
		snprintf(what, sizeof(what), "payload is not a status message from the sender");
	} else {
		snprintf(what, sizeof(what), "payload is not a JSON object from the sender");
	}
	return drop(st, &d, pi->name, MP_EV_PAYLOAD_REJECTED, why, what);
}

/* The rate entry of the device an operator's command goes to, when the policy lists it as
 * an active device; NULL for anything else (which takes from the sender's own buckets). */
static struct mp_ident *job_target(struct mp_state *st, const struct moat_policy_identity *pi,
				   const char *topic)
{
	struct moat_topic t;
	if (pi->role != MOAT_ROLE_OPERATOR || !topic || moat_topic_parse(topic, &t, NULL) != 0 ||
	    t.kind != MOAT_TOPIC_COMMAND) {
		return NULL;
	}
	const struct moat_policy_identity *dev = moat_policy_find(&st->policy, t.id);
	if (!dev || dev->role != MOAT_ROLE_DEVICE || dev->status != MOAT_POLICY_ACTIVE) {
		return NULL;
	}
	return moat_plugin_ident_get(st, dev->name);
}

int moat_plugin_message(int event, void *event_data, void *userdata)
{
	(void)event;
	struct mosquitto_evt_message *ed = event_data;
	struct mp_state *st = userdata;
	const struct dropped d = {
		.client = ed->client,
		.topic = ed->topic,
		.payloadlen = ed->payloadlen,
	};
	struct mp_conn *c = moat_plugin_conn_find(st, ed->client);
	const struct moat_policy_identity *pi = moat_plugin_conn_identity(st, c, ed->client);
	if (!pi) {
		return drop(st, &d, mosquitto_client_username(ed->client), MP_EV_ACL_DENIED,
			    "not_authorised", "identity is not active");
	}
	const struct moat_policy_limits *l = &st->policy.limits[pi->role];
	/* Identity entries live as long as the plugin: c may keep one (conn_identity clears
	 * it with the rest of its cache). */
	struct mp_ident *id = c && c->authed && c->ident ? c->ident
							 : moat_plugin_ident_get(st, pi->name);
	if (c && c->authed) {
		c->ident = id;
	}
	if (!id) {
		return drop(st, &d, pi->name, MP_EV_RATE_LIMITED, "internal_error",
			    "out of memory");
	}
	int64_t now_ms = moat_time_mono_ms();
	struct mp_ident *target = job_target(st, pi, ed->topic);
	if (target) {
		/* the operator's job bucket and the device's command bucket (policy.h "Jobs") */
		const struct moat_policy_limits job = {
			.msgs_per_s = st->policy.job_msgs_per_s,
			.bytes_per_s = st->policy.job_msgs_per_s * MOAT_POLICY_JOB_BYTES_PER_MSG,
			.burst = st->policy.job_msgs_per_s,
			.max_payload = l->max_payload,
		};
		if (!rate_ready(&id->jobs, &job) ||
		    !rate_has_room(&id->jobs, ed->payloadlen, now_ms)) {
			return drop(st, &d, pi->name, MP_EV_RATE_LIMITED, "job_rate",
				    "over the commands a second an operator may send to devices "
				    "([policy] job_rate)");
		}
		if (!take_tokens(&id->jobs, &job, &target->commands_in, l, ed->payloadlen,
				 now_ms)) {
			return drop(st, &d, pi->name, MP_EV_RATE_LIMITED, "device_commands",
				    "over the commands a second one device may receive");
		}
		return MOSQ_ERR_SUCCESS;
	}
	if (!take_tokens(&id->own, l, NULL, NULL, ed->payloadlen, now_ms)) {
		return drop(st, &d, pi->name, MP_EV_RATE_LIMITED, "rate_limited",
			    "over the role's message or byte rate");
	}
	return MOSQ_ERR_SUCCESS;
}
