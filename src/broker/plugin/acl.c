/* acl.c: ACL_CHECK, who may publish, subscribe and receive what.
 *
 * The decision is moat_acl_decide (include/moat/topic.h), the same rule the generated
 * acl.conf and the audit use; this file only maps Mosquitto's access codes onto it and
 * looks the identity up in the current policy, so a disabled identity loses access at
 * once even before TICK kicks it. Every refusal is an acl_denied event (budgeted in
 * budget.c). A write it grants then meets the payload rule (message.c), which is how last
 * wills, sent without the MESSAGE hook, are held to it. A subscription it grants then meets
 * the role's bounds (policy.h "subscriptions"): the broker's own count of the client's
 * subscriptions, and the filters of one SUBSCRIBE, counted per pass of the broker's loop
 * (TICK ends a pass; a packet is always handled within one). What is beyond is refused
 * and a subscription_limited event.
 *
 * The common case is cached: each connection keeps its active policy entry and its last
 * MP_GRANT_SLOTS granted reads and writes (topic and access), valid while the policy in
 * force is the one they were decided under (st->policy_gen). Only grants are kept:
 * every refusal, and every subscription, is decided (and reported) afresh.
 */
#include <stdio.h>
#include <string.h>

#include "moat/publish.h"
#include "moat/topic.h"
#include "plugin_internal.h"

static const char *access_name(int access)
{
	switch (access) {
	case MOSQ_ACL_READ:
		return "read";
	case MOSQ_ACL_WRITE:
		return "write";
	case MOSQ_ACL_SUBSCRIBE:
		return "subscribe";
	default:
		return "unknown";
	}
}

/* c's grant of this read or write under the policy in force, or NULL. */
static const struct mp_grant *grant_known(const struct mp_state *st, const struct mp_conn *c,
					  int access, const char *topic, size_t len)
{
	if (!c || !c->authed || len > MP_GRANT_TOPIC_MAX) {
		return NULL;
	}
	for (size_t i = 0; i < MP_GRANT_SLOTS; i++) {
		const struct mp_grant *g = &c->grants[i];
		if (g->gen == st->policy_gen && g->access == access && g->len == len &&
		    memcmp(g->topic, topic, len) == 0) {
			return g;
		}
	}
	return NULL;
}

/* Remembers in c that moat_acl_decide granted this read or write (round robin), with the
 * topic's kind for the payload rule; the slot, or NULL when c keeps none. */
static const struct mp_grant *grant_remember(const struct mp_state *st, struct mp_conn *c,
					     int access, const char *topic, size_t len)
{
	if (!c || !c->authed || len > MP_GRANT_TOPIC_MAX) {
		return NULL;
	}
	struct mp_grant *g = &c->grants[c->grant_next++ % MP_GRANT_SLOTS];
	struct moat_topic t;
	g->gen = st->policy_gen;
	g->access = (uint8_t)access;
	g->len = (uint8_t)len;
	g->kind = moat_topic_parse(topic, &t, NULL) == 0 ? (int8_t)t.kind
							 : MOAT_PUBLISH_NOT_MOAT_TOPIC;
	memcpy(g->topic, topic, len);
	g->topic[len] = '\0';
	return g;
}

/* The decision on a read, write or subscribe by the active identity pi, through c's grants
 * for reads and writes: true when granted (*out_grant: the grant c keeps for it, or NULL),
 * else *why says why not. */
static bool decide(struct mp_state *st, struct mp_conn *c, const struct moat_policy_identity *pi,
		   const struct mosquitto_evt_acl_check *ed, enum moat_access access,
		   const struct mp_grant **out_grant, enum moat_acl_reason *why)
{
	bool cacheable = access != MOAT_ACCESS_SUBSCRIBE && ed->topic;
	size_t len = cacheable ? strlen(ed->topic) : 0;
	*out_grant = cacheable ? grant_known(st, c, ed->access, ed->topic, len) : NULL;
	if (*out_grant) {
		return true;
	}
	struct moat_acl_policy ap = {
		.operator_write_commands = st->policy.operator_write_commands,
	};
	if (!moat_acl_decide(pi->role, pi->name, access, ed->topic, &ap, why)) {
		return false;
	}
	if (cacheable) {
		*out_grant = grant_remember(st, c, ed->access, ed->topic, len);
	}
	return true;
}

/* MOSQ_ERR_SUCCESS when the client may add one more subscription, else the refusal. */
static int subscription_bounds(struct mp_state *st, const struct mosquitto_evt_acl_check *ed,
			       const struct moat_policy_identity *pi, struct mp_conn *c)
{
	const struct moat_policy_subs *b = &st->policy.subs[pi->role];
	const char *reason = NULL;
	char detail[MP_EVENT_FIELD_MAX_LEN + 96];
	int held = mosquitto_client_sub_count(ed->client);
	if (c && c->subs_pass != st->loop_pass) {
		c->subs_pass = st->loop_pass;
		c->subs_in_pass = 0;
	}
	if (c && c->subs_in_pass >= b->per_packet) {
		reason = "too_many_in_subscribe";
		snprintf(detail, sizeof(detail), "more than %u filters in one SUBSCRIBE: %.*s",
			 b->per_packet, MP_EVENT_FIELD_MAX_LEN, ed->topic ? ed->topic : "(none)");
	} else if (held < 0 || (uint32_t)held >= b->per_client) {
		reason = "too_many_subscriptions";
		snprintf(detail, sizeof(detail), "already %d of at most %u subscriptions: %.*s",
			 held, b->per_client, MP_EVENT_FIELD_MAX_LEN,
			 ed->topic ? ed->topic : "(none)");
	}
	if (c) {
		c->subs_in_pass++;
	}
	if (!reason) {
		return MOSQ_ERR_SUCCESS;
	}
	moat_plugin_client_event(st, MP_EV_SUBSCRIPTION_LIMITED, ed->client, pi->name, reason,
				 detail);
	return MOSQ_ERR_ACL_DENIED;
}

int moat_plugin_acl_check(int event, void *event_data, void *userdata)
{
	(void)event;
	struct mosquitto_evt_acl_check *ed = event_data;
	struct mp_state *st = userdata;
	enum moat_access access;

	switch (ed->access) {
	case MOSQ_ACL_READ:
		access = MOAT_ACCESS_READ;
		break;
	case MOSQ_ACL_WRITE:
		access = MOAT_ACCESS_WRITE;
		break;
	case MOSQ_ACL_SUBSCRIBE:
		access = MOAT_ACCESS_SUBSCRIBE;
		break;
	case MOSQ_ACL_UNSUBSCRIBE:
		/* Giving something up is always allowed. */
		return MOSQ_ERR_SUCCESS;
	default:
		access = 0;
		break;
	}

	struct mp_conn *c = moat_plugin_conn_find(st, ed->client);
	const struct moat_policy_identity *pi = moat_plugin_conn_identity(st, c, ed->client);
	const char *reason = "not_authorised";
	if (pi && access != 0) {
		enum moat_acl_reason why = MOAT_ACL_BAD_INPUT;
		const struct mp_grant *g = NULL;
		if (decide(st, c, pi, ed, access, &g, &why)) {
			if (access == MOAT_ACCESS_WRITE) {
				return moat_plugin_payload_check(st, ed, pi, c, g);
			}
			if (access == MOAT_ACCESS_SUBSCRIBE) {
				return subscription_bounds(st, ed, pi, c);
			}
			return MOSQ_ERR_SUCCESS;
		}
		reason = moat_acl_reason_name(why);
	}

	char detail[MP_EVENT_FIELD_MAX_LEN + 32];
	snprintf(detail, sizeof(detail), "%s %.*s", access_name(ed->access), MP_EVENT_FIELD_MAX_LEN,
		 ed->topic ? ed->topic : "(none)");
	moat_plugin_client_event(st, MP_EV_ACL_DENIED, ed->client,
				 pi ? pi->name : mosquitto_client_username(ed->client), reason,
				 detail);
	return MOSQ_ERR_ACL_DENIED;
}
