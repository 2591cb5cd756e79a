/* connguard.c: moatd's table of open connections, their deadlines and the limits on what a
 * source or an identity may hold (include/moat/connguard.h). Entries are kept in accept
 * order, oldest first, so "the oldest unauthenticated connection" is the first one found.
 * Limits are counted by walking the list: max_connections stays in the low thousands and
 * a walk happens once per accept, per authentication and per deadline. */
#include "moat/connguard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define CG_WINDOW_MS 1000
#define CG_SOURCE_SLOTS 256
#define CG_SOURCE_PROBES 4

struct moat_cg_conn {
	struct moat_cg_conn *prev, *next;
	struct moat_cg_source src;
	int64_t opened_ms;
	int64_t window_ms; /* the current request's headers are due header_ms after this */
	bool tls_done;
	bool in_request;
	bool authenticated;
	bool closing;
	char id[MOAT_ID_BUF_LEN];
	void *user;
};

struct cg_window {
	int64_t start_ms;
	uint32_t used;
};

/* One source's event budget, per kind (a fixed table keyed by a seeded hash). */
struct cg_source_budget {
	unsigned char key[8];
	size_t key_len;
	bool used;
	struct cg_window windows[MOAT_CG_REASON_COUNT];
	uint64_t suppressed[MOAT_CG_REASON_COUNT];
};

struct moat_connguard {
	struct moat_connguard_limits lim;
	struct moat_cg_conn *head, *tail;
	struct cg_window kind_windows[MOAT_CG_REASON_COUNT];
	struct cg_window total_window;
	uint64_t unreported[MOAT_CG_REASON_COUNT];
	struct cg_source_budget *sources; /* CG_SOURCE_SLOTS */
	uint32_t seed;
};

const char *moat_cg_reason_name(enum moat_cg_reason r)
{
	switch (r) {
	case MOAT_CG_OK:
		return "ok";
	case MOAT_CG_HANDSHAKE_DEADLINE:
		return "handshake_deadline";
	case MOAT_CG_HEADER_DEADLINE:
		return "header_deadline";
	case MOAT_CG_SOURCE_LIMIT:
		return "source_limit";
	case MOAT_CG_SERVER_FULL:
		return "server_full";
	case MOAT_CG_DEVICE_LIMIT:
		return "device_limit";
	case MOAT_CG_AUTH_REFUSED:
		return "auth_refused";
	case MOAT_CG_IDLE:
		return "idle";
	case MOAT_CG_REQUEST_REFUSED:
		return "request_refused";
	case MOAT_CG_EST_REFUSED:
		return "est_refused";
	case MOAT_CG_REASON_COUNT:
		break;
	}
	return "?";
}

int moat_cg_source_from(const struct sockaddr *sa, socklen_t len, struct moat_cg_source *src,
			struct moat_err *err)
{
	memset(src, 0, sizeof(*src));
	if (sa && sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		memcpy(src->key, &in->sin_addr, 4);
		src->key_len = 4;
		inet_ntop(AF_INET, &in->sin_addr, src->text, sizeof(src->text));
		return 0;
	}
	if (sa && sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			memcpy(src->key, &in6->sin6_addr.s6_addr[12], 4);
			src->key_len = 4;
			inet_ntop(AF_INET, src->key, src->text, sizeof(src->text));
			return 0;
		}
		/* One host of IPv6 usually holds a whole /64: count it as one source. */
		memcpy(src->key, in6->sin6_addr.s6_addr, 8);
		src->key_len = 8;
		inet_ntop(AF_INET6, &in6->sin6_addr, src->text, sizeof(src->text));
		return 0;
	}
	return moat_err_set(err, MOAT_EINVAL, "not an IPv4 or IPv6 address");
}

static bool same_source(const struct moat_cg_source *a, const struct moat_cg_source *b)
{
	return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

int moat_connguard_new(const struct moat_connguard_limits *limits, struct moat_connguard **out,
		       struct moat_err *err)
{
	*out = NULL;
	if (limits->handshake_ms <= 0 || limits->header_ms <= 0 || limits->max_connections == 0 ||
	    limits->unauth_per_source == 0 || limits->per_device == 0) {
		return moat_err_set(err, MOAT_EINVAL, "connection limits: each must be above 0");
	}
	if (limits->handshake_ms > limits->header_ms) {
		return moat_err_set(err, MOAT_EINVAL,
				    "connection limits: the handshake deadline is past the header "
				    "deadline");
	}
	struct moat_connguard *g = calloc(1, sizeof(*g));
	if (g) {
		g->sources = calloc(CG_SOURCE_SLOTS, sizeof(*g->sources));
	}
	if (!g || !g->sources) {
		free(g);
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	g->lim = *limits;
	/* A seed that cannot be read leaves a fixed hash: an attacker could then pick
	 * addresses sharing a victim's event budget slot, never skip a kind's budget. */
	if (getrandom(&g->seed, sizeof(g->seed), GRND_NONBLOCK) != (ssize_t)sizeof(g->seed)) {
		g->seed = 0x9E3779B9u;
	}
	*out = g;
	return 0;
}

void moat_connguard_free(struct moat_connguard *g)
{
	if (!g) {
		return;
	}
	struct moat_cg_conn *c = g->head;
	while (c) {
		struct moat_cg_conn *next = c->next;
		free(c);
		c = next;
	}
	free(g->sources);
	free(g);
}

static bool counts_as_unauth(const struct moat_cg_conn *c)
{
	return !c->closing && !c->authenticated;
}

static uint32_t source_hash(const struct moat_connguard *g, const struct moat_cg_source *src)
{
	uint32_t h = 2166136261u ^ g->seed;
	for (size_t i = 0; i < src->key_len; i++) {
		h ^= src->key[i];
		h *= 16777619u;
	}
	return h ^ (h >> 15);
}

struct cg_tally {
	const struct moat_cg_conn *first; /* NULL: an empty slot */
	unsigned n;
};

/* The oldest unauthenticated connection of the source holding the most of them (ties: the
 * oldest of all). One pass with a scratch hash of sources; NULL when there is none or no
 * memory for the scratch (the newcomer is then refused, never an authenticated one closed).
 */
static struct moat_cg_conn *heaviest_oldest(struct moat_connguard *g)
{
	size_t unauth = 0;
	for (struct moat_cg_conn *c = g->head; c; c = c->next) {
		unauth += counts_as_unauth(c);
	}
	size_t slots = 16;
	while (slots < 2 * unauth) {
		slots *= 2;
	}
	struct cg_tally *t = calloc(slots, sizeof(*t));
	if (!t) {
		return NULL;
	}
	struct cg_tally *best = NULL;
	for (struct moat_cg_conn *c = g->head; c; c = c->next) {
		if (!counts_as_unauth(c)) {
			continue;
		}
		size_t i = source_hash(g, &c->src) & (slots - 1);
		while (t[i].first && !same_source(&t[i].first->src, &c->src)) {
			i = (i + 1) & (slots - 1);
		}
		if (!t[i].first) {
			t[i].first = c;
		}
		t[i].n++;
		if (!best || t[i].n > best->n ||
		    (t[i].n == best->n && t[i].first->opened_ms < best->first->opened_ms)) {
			best = &t[i];
		}
	}
	struct moat_cg_conn *v = best ? (struct moat_cg_conn *)best->first : NULL;
	free(t);
	return v;
}

bool moat_connguard_admit(struct moat_connguard *g, const struct moat_cg_source *src,
			  int64_t now_ms, struct moat_cg_conn **victim, enum moat_cg_reason *why)
{
	(void)now_ms;
	*victim = NULL;
	*why = MOAT_CG_OK;
	unsigned live = 0;
	unsigned mine = 0;
	struct moat_cg_conn *my_oldest = NULL;
	struct moat_cg_conn *my_oldest_idle = NULL;
	for (struct moat_cg_conn *c = g->head; c; c = c->next) {
		if (c->closing) {
			continue;
		}
		live++;
		if (!c->authenticated && same_source(&c->src, src)) {
			my_oldest = my_oldest ? my_oldest : c;
			if (!c->in_request && !my_oldest_idle) {
				my_oldest_idle = c;
			}
			mine++;
		}
	}
	if (mine >= g->lim.unauth_per_source) {
		/* never one whose request is being answered (an enrollment committed, its
		 * answer on the way: closing it loses the answer); when all are, the
		 * newcomer waits its turn instead */
		if (!my_oldest_idle) {
			*why = MOAT_CG_SOURCE_LIMIT;
			return false;
		}
		my_oldest = my_oldest_idle;
		/* Its own oldest makes room: the newcomer may be a device behind the same
		 * address as whoever holds the rest. */
		my_oldest->closing = true;
		*victim = my_oldest;
		*why = MOAT_CG_SOURCE_LIMIT;
		return true;
	}
	if (live >= g->lim.max_connections) {
		struct moat_cg_conn *v = heaviest_oldest(g);
		*why = MOAT_CG_SERVER_FULL;
		if (!v) {
			return false; /* every slot is an authenticated connection */
		}
		v->closing = true;
		*victim = v;
	}
	return true;
}

struct moat_cg_conn *moat_connguard_add(struct moat_connguard *g, const struct moat_cg_source *src,
					int64_t now_ms, void *user)
{
	struct moat_cg_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		return NULL;
	}
	c->src = *src;
	c->opened_ms = now_ms;
	c->window_ms = now_ms;
	c->user = user;
	c->prev = g->tail;
	if (g->tail) {
		g->tail->next = c;
	} else {
		g->head = c;
	}
	g->tail = c;
	return c;
}

void moat_connguard_remove(struct moat_connguard *g, struct moat_cg_conn *c)
{
	if (!c) {
		return;
	}
	if (c->prev) {
		c->prev->next = c->next;
	} else {
		g->head = c->next;
	}
	if (c->next) {
		c->next->prev = c->prev;
	} else {
		g->tail = c->prev;
	}
	free(c);
}

void moat_connguard_tls_done(struct moat_cg_conn *c)
{
	c->tls_done = true;
}

void moat_connguard_request_start(struct moat_cg_conn *c)
{
	c->in_request = true;
}

void moat_connguard_request_done(struct moat_cg_conn *c, int64_t now_ms)
{
	c->in_request = false;
	c->window_ms = now_ms;
}

enum moat_cg_reason moat_connguard_authenticated(struct moat_connguard *g, struct moat_cg_conn *c,
						 const char *id)
{
	if (c->authenticated) {
		return MOAT_CG_OK;
	}
	unsigned held = 0;
	for (struct moat_cg_conn *o = g->head; o; o = o->next) {
		if (o != c && !o->closing && o->authenticated && strcmp(o->id, id) == 0) {
			held++;
		}
	}
	if (held >= g->lim.per_device) {
		return MOAT_CG_DEVICE_LIMIT;
	}
	c->authenticated = true;
	snprintf(c->id, sizeof(c->id), "%s", id);
	return MOAT_CG_OK;
}

/* When c's next deadline falls, and for what; false when it has none. */
static bool deadline_of(const struct moat_connguard *g, const struct moat_cg_conn *c,
			int64_t *at_ms, enum moat_cg_reason *why)
{
	if (c->closing) {
		return false;
	}
	if (!c->tls_done) {
		*at_ms = c->opened_ms + g->lim.handshake_ms;
		*why = MOAT_CG_HANDSHAKE_DEADLINE;
		return true;
	}
	if (c->in_request) {
		return false; /* the response phase has MHD's idle timeout */
	}
	*at_ms = c->window_ms + g->lim.header_ms;
	*why = c->authenticated ? MOAT_CG_IDLE : MOAT_CG_HEADER_DEADLINE;
	return true;
}

struct moat_cg_conn *moat_connguard_expired(struct moat_connguard *g, int64_t now_ms,
					    enum moat_cg_reason *why)
{
	for (struct moat_cg_conn *c = g->head; c; c = c->next) {
		int64_t at = 0;
		if (deadline_of(g, c, &at, why) && now_ms >= at) {
			c->closing = true;
			return c;
		}
	}
	*why = MOAT_CG_OK;
	return NULL;
}

int64_t moat_connguard_next_due(const struct moat_connguard *g, int64_t now_ms)
{
	int64_t best = -1;
	for (const struct moat_cg_conn *c = g->head; c; c = c->next) {
		int64_t at = 0;
		enum moat_cg_reason why;
		if (!deadline_of(g, c, &at, &why)) {
			continue;
		}
		int64_t wait = at > now_ms ? at - now_ms : 0;
		if (best < 0 || wait < best) {
			best = wait;
		}
	}
	return best;
}

void *moat_cg_conn_user(const struct moat_cg_conn *c)
{
	return c->user;
}

const struct moat_cg_source *moat_cg_conn_source(const struct moat_cg_conn *c)
{
	return &c->src;
}

bool moat_cg_conn_authenticated(const struct moat_cg_conn *c)
{
	return c->authenticated;
}

bool moat_cg_conn_closing(const struct moat_cg_conn *c)
{
	return c->closing;
}

void moat_connguard_counts(const struct moat_connguard *g, struct moat_cg_counts *out)
{
	memset(out, 0, sizeof(*out));
	for (const struct moat_cg_conn *c = g->head; c; c = c->next) {
		out->open++;
		if (!c->closing) {
			out->live++;
			if (!c->authenticated) {
				out->unauthenticated++;
			}
		}
	}
}

/* ---- event budgets ---- */

static bool window_take(struct cg_window *w, uint32_t budget, int64_t now_ms)
{
	if (now_ms - w->start_ms >= CG_WINDOW_MS || now_ms < w->start_ms) {
		w->start_ms = now_ms;
		w->used = 0;
	}
	if (w->used >= budget) {
		return false;
	}
	w->used++;
	return true;
}

/* src's budget: its slot, or a free or quiet one taken over; NULL when all are busy. */
static struct cg_source_budget *source_slot(struct moat_connguard *g,
					    const struct moat_cg_source *src, int64_t now_ms)
{
	uint32_t h = source_hash(g, src);
	struct cg_source_budget *spare = NULL;
	for (uint32_t i = 0; i < CG_SOURCE_PROBES; i++) {
		struct cg_source_budget *b = &g->sources[(h + i) % CG_SOURCE_SLOTS];
		if (b->used && b->key_len == src->key_len &&
		    memcmp(b->key, src->key, src->key_len) == 0) {
			return b;
		}
		bool quiet = true;
		for (int k = 0; quiet && k < MOAT_CG_REASON_COUNT; k++) {
			quiet = b->suppressed[k] == 0 &&
				now_ms - b->windows[k].start_ms >= CG_WINDOW_MS;
		}
		if (!spare && (!b->used || quiet)) {
			spare = b;
		}
	}
	if (spare) {
		memset(spare, 0, sizeof(*spare));
		spare->used = true;
		memcpy(spare->key, src->key, src->key_len);
		spare->key_len = src->key_len;
	}
	return spare;
}

bool moat_connguard_event_allowed(struct moat_connguard *g, enum moat_cg_reason kind,
				  const struct moat_cg_source *src, int64_t now_ms,
				  uint64_t *suppressed)
{
	*suppressed = 0;
	if ((unsigned)kind >= MOAT_CG_REASON_COUNT) {
		return false;
	}
	struct cg_source_budget *b = src ? source_slot(g, src, now_ms) : NULL;
	bool ok = true;
	if (b) {
		ok = window_take(&b->windows[kind], MOAT_CG_EVENTS_PER_SOURCE, now_ms);
	}
	ok = ok && window_take(&g->kind_windows[kind], MOAT_CG_EVENTS_PER_KIND, now_ms) &&
	     window_take(&g->total_window, MOAT_CG_EVENTS_TOTAL, now_ms);
	if (!ok) {
		if (b) {
			b->suppressed[kind]++;
		}
		g->unreported[kind]++;
		return false;
	}
	if (b) {
		*suppressed = b->suppressed[kind];
		b->suppressed[kind] = 0;
	}
	return true;
}

uint64_t moat_connguard_suppressed(struct moat_connguard *g, enum moat_cg_reason kind)
{
	if ((unsigned)kind >= MOAT_CG_REASON_COUNT) {
		return 0;
	}
	uint64_t n = g->unreported[kind];
	g->unreported[kind] = 0;
	return n;
}
