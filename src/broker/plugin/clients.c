/* clients.c: the plugin's two tables, identities by name and connections by client pointer.
 *
 * Plain chained hash tables with a fixed number of buckets, allocated with
 * mosquitto_malloc so the broker's memory_limit covers them. Identity entries are only
 * made for names the policy lists (callers check), so their number is bounded by the
 * policy; connection entries live from BASIC_AUTH to DISCONNECT. Also the policy entry of
 * a connected client, which the ACL and payload checks both look up, and its cache in the
 * connection's entry.
 */
#include <string.h>

#include "plugin_internal.h"

static size_t name_hash(const char *name)
{
	/* FNV-1a: names are short and come from certificates we issued. */
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h % MP_IDENT_BUCKETS;
}

static size_t ptr_hash(const struct mosquitto *client)
{
	uintptr_t v = (uintptr_t)client;
	v ^= v >> 17;
	v *= 0x9E3779B1u;
	return (size_t)(v >> 7) % MP_CONN_BUCKETS;
}

struct mp_ident *moat_plugin_ident_find(struct mp_state *st, const char *name)
{
	for (struct mp_ident *id = st->idents[name_hash(name)]; id; id = id->next) {
		if (strcmp(id->name, name) == 0) {
			return id;
		}
	}
	return NULL;
}

struct mp_ident *moat_plugin_ident_get(struct mp_state *st, const char *name)
{
	struct mp_ident *found = moat_plugin_ident_find(st, name);
	if (found) {
		return found;
	}
	size_t h = name_hash(name);
	size_t len = strnlen(name, MOAT_ID_BUF_LEN);
	if (len == 0 || len > MOAT_ID_MAX_LEN) {
		return NULL;
	}
	struct mp_ident *id = mosquitto_calloc(1, sizeof(*id));
	if (!id) {
		return NULL;
	}
	memcpy(id->name, name, len + 1);
	id->next = st->idents[h];
	st->idents[h] = id;
	return id;
}

struct mp_conn *moat_plugin_conn_find(struct mp_state *st, const struct mosquitto *client)
{
	for (struct mp_conn *c = st->conns[ptr_hash(client)]; c; c = c->next) {
		if (c->client == client) {
			return c;
		}
	}
	return NULL;
}

struct mp_conn *moat_plugin_conn_add(struct mp_state *st, const struct mosquitto *client)
{
	/* A client may authenticate only once, but be safe: reuse its entry. */
	struct mp_conn *c = moat_plugin_conn_find(st, client);
	if (c) {
		struct mp_conn *next = c->next;
		memset(c, 0, sizeof(*c));
		c->next = next;
		c->client = client;
		return c;
	}
	c = mosquitto_calloc(1, sizeof(*c));
	if (!c) {
		return NULL;
	}
	size_t h = ptr_hash(client);
	c->client = client;
	c->next = st->conns[h];
	st->conns[h] = c;
	return c;
}

void moat_plugin_conn_remove(struct mp_state *st, const struct mosquitto *client)
{
	struct mp_conn **pp = &st->conns[ptr_hash(client)];
	while (*pp) {
		if ((*pp)->client == client) {
			struct mp_conn *dead = *pp;
			*pp = dead->next;
			mosquitto_free(dead);
			return;
		}
		pp = &(*pp)->next;
	}
}

void moat_plugin_tables_free(struct mp_state *st)
{
	for (size_t i = 0; i < MP_IDENT_BUCKETS; i++) {
		while (st->idents[i]) {
			struct mp_ident *next = st->idents[i]->next;
			mosquitto_free(st->idents[i]);
			st->idents[i] = next;
		}
	}
	for (size_t i = 0; i < MP_CONN_BUCKETS; i++) {
		while (st->conns[i]) {
			struct mp_conn *next = st->conns[i]->next;
			mosquitto_free(st->conns[i]);
			st->conns[i] = next;
		}
	}
}

const struct moat_policy_identity *moat_plugin_active_identity(struct mp_state *st,
							       const struct mosquitto *client)
{
	const char *username = mosquitto_client_username(client);
	if (!username) {
		return NULL;
	}
	const struct moat_policy_identity *pi = moat_policy_find(&st->policy, username);
	if (!pi || pi->status != MOAT_POLICY_ACTIVE) {
		return NULL;
	}
	return pi;
}

const struct moat_policy_identity *moat_plugin_conn_identity(struct mp_state *st, struct mp_conn *c,
							     const struct mosquitto *client)
{
	if (!c || !c->authed) {
		return moat_plugin_active_identity(st, client);
	}
	if (c->gen != st->policy_gen) {
		c->pi = moat_plugin_active_identity(st, client);
		c->ident = NULL;
		c->gen = st->policy_gen;
	}
	return c->pi;
}
