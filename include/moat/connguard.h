/* connguard.h: what moatd lets a connection hold before and after it authenticates
 * (src/server/connguard.c).
 *
 * A slow client costs a server nothing but a socket, a TLS session and a buffer, so a few
 * hundred idle or trickling connections used to take every slot moatd had. The guard keeps
 * one entry per open connection and decides, from times the caller passes in:
 *   - deadlines that no trickled byte resets, both counted from accept: the TLS handshake
 *     must be complete within handshake_ms, and the request headers within header_ms (for a
 *     kept-alive connection, header_ms from the end of its previous response);
 *   - admission: a source (an IPv4 address, or an IPv6 /64) may hold at most
 *     unauth_per_source connections that have not yet authenticated; one more closes that
 *     source's oldest unauthenticated connection instead of refusing the newcomer, so a
 *     device behind the same NAT as an attacker still gets in. At max_connections, the
 *     oldest unauthenticated connection of the source holding the most is closed; only when
 *     every connection is authenticated is a newcomer refused. Authenticated connections are
 *     never closed to make room;
 *   - per_device: how many authenticated connections one identity may hold;
 *   - event budgets: every close for a deadline or a limit is a security event, written
 *     at most MOAT_CG_EVENTS_PER_SOURCE per source and kind, MOAT_CG_EVENTS_PER_KIND per kind
 *     and MOAT_CG_EVENTS_TOTAL in all per second; what is left out is counted and reported
 *     (moat_connguard_suppressed), so a flood of one kind or source hides no other.
 *
 * Contract: pure. No sockets, no clocks, no locks: the caller passes monotonic milliseconds
 * and closes what the guard names. One thread at a time (moatd's threads share one guard
 * under a mutex: httpd.c). A connection the guard names for
 * closing (moat_connguard_admit's victim, moat_connguard_expired) is no longer counted
 * against any limit but stays in the table until moat_connguard_remove, so its handle stays
 * valid until the caller's close notification arrives.
 */
#ifndef MOAT_CONNGUARD_H
#define MOAT_CONNGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "moat/err.h"
#include "moat/identity.h"

#define MOAT_CG_EVENTS_PER_SOURCE 3 /* per source and kind, per second */
#define MOAT_CG_EVENTS_PER_KIND 20  /* per kind, per second */
#define MOAT_CG_EVENTS_TOTAL 50	    /* per second */
#define MOAT_CG_SOURCE_TEXT_LEN 46  /* INET6_ADDRSTRLEN */

struct moat_connguard_limits {
	int64_t handshake_ms;
	int64_t header_ms;
	unsigned max_connections;
	unsigned unauth_per_source;
	unsigned per_device;
};

/* Why a connection is closed or refused; also the kinds of events. */
enum moat_cg_reason {
	MOAT_CG_OK = 0,
	MOAT_CG_HANDSHAKE_DEADLINE = 1, /* TLS handshake not done by handshake_ms */
	MOAT_CG_HEADER_DEADLINE = 2,	/* request headers not in by header_ms */
	MOAT_CG_SOURCE_LIMIT = 3,	/* its source opened one unauthenticated too many */
	MOAT_CG_SERVER_FULL = 4,	/* max_connections reached */
	MOAT_CG_DEVICE_LIMIT = 5,	/* its identity holds per_device already */
	MOAT_CG_AUTH_REFUSED = 6,	/* a request refused for its certificate (event only) */
	MOAT_CG_IDLE = 7,		/* authenticated, no next request by header_ms: no event */
	MOAT_CG_REQUEST_REFUSED = 8,	/* a request libmicrohttpd refused itself (headers too
					   large, malformed): event only */
	MOAT_CG_EST_REFUSED = 9,	/* an EST request refused before it proved who sent it
					   (est.c): event only */
	MOAT_CG_REASON_COUNT = 10,
};

/* The word logged for r: "handshake_deadline", "header_deadline", "source_limit",
 * "server_full", "device_limit", "auth_refused", "idle", "request_refused", "est_refused". */
const char *moat_cg_reason_name(enum moat_cg_reason r);

/* Where a connection comes from: the key limits count by, and the address as text. */
struct moat_cg_source {
	unsigned char key[8]; /* IPv4: the address; IPv6: its /64 (IPv4-mapped: as IPv4) */
	size_t key_len;
	char text[MOAT_CG_SOURCE_TEXT_LEN];
};

/* Fills src from an AF_INET or AF_INET6 address; MOAT_EINVAL for anything else. */
MOAT_MUST_CHECK int moat_cg_source_from(const struct sockaddr *sa, socklen_t len,
					struct moat_cg_source *src, struct moat_err *err);

struct moat_connguard;
struct moat_cg_conn;

/* MOAT_EINVAL when a limit is 0 or handshake_ms > header_ms. */
MOAT_MUST_CHECK int moat_connguard_new(const struct moat_connguard_limits *limits,
				       struct moat_connguard **out, struct moat_err *err);
/* Frees the guard and every entry still in it. Accepts NULL. */
void moat_connguard_free(struct moat_connguard *g);

/* Before accepting a connection from src at now_ms. Returns false when it must be refused
 * (*why: MOAT_CG_SERVER_FULL, every connection authenticated; MOAT_CG_SOURCE_LIMIT, every
 * unauthenticated connection of the source is inside a request). When true, *victim is NULL
 * or a connection to close first, for *why (MOAT_CG_SOURCE_LIMIT: the source's oldest
 * unauthenticated connection between two requests; or MOAT_CG_SERVER_FULL);
 * the victim is already marked as closing. */
bool moat_connguard_admit(struct moat_connguard *g, const struct moat_cg_source *src,
			  int64_t now_ms, struct moat_cg_conn **victim, enum moat_cg_reason *why);
/* Adds an accepted connection (its deadlines start at now_ms); user is the caller's handle.
 * NULL when out of memory (the caller should then close it). */
struct moat_cg_conn *moat_connguard_add(struct moat_connguard *g, const struct moat_cg_source *src,
					int64_t now_ms, void *user);
/* Removes c (its close notification) and frees it. Accepts NULL. */
void moat_connguard_remove(struct moat_connguard *g, struct moat_cg_conn *c);

void moat_connguard_tls_done(struct moat_cg_conn *c);
/* Headers of a request are in: no header deadline until moat_connguard_request_done. */
void moat_connguard_request_start(struct moat_cg_conn *c);
/* Its response is done at now_ms: the next request's headers are due by header_ms. */
void moat_connguard_request_done(struct moat_cg_conn *c, int64_t now_ms);
/* c authenticated as id: MOAT_CG_OK, or MOAT_CG_DEVICE_LIMIT when id already holds
 * per_device authenticated connections (c then stays unauthenticated). A connection
 * authenticates once; later calls for the same id return MOAT_CG_OK. */
enum moat_cg_reason moat_connguard_authenticated(struct moat_connguard *g, struct moat_cg_conn *c,
						 const char *id);

/* The next connection whose deadline has passed at now_ms, marked closing, with the reason
 * (MOAT_CG_HANDSHAKE_DEADLINE, MOAT_CG_HEADER_DEADLINE, or MOAT_CG_IDLE for an
 * authenticated one); NULL when none. */
struct moat_cg_conn *moat_connguard_expired(struct moat_connguard *g, int64_t now_ms,
					    enum moat_cg_reason *why);
/* Milliseconds from now_ms until the next deadline (0: one has passed), or -1: none. */
int64_t moat_connguard_next_due(const struct moat_connguard *g, int64_t now_ms);

void *moat_cg_conn_user(const struct moat_cg_conn *c);
const struct moat_cg_source *moat_cg_conn_source(const struct moat_cg_conn *c);
bool moat_cg_conn_authenticated(const struct moat_cg_conn *c);
bool moat_cg_conn_closing(const struct moat_cg_conn *c);

struct moat_cg_counts {
	unsigned open;		  /* entries not yet removed */
	unsigned live;		  /* not closing */
	unsigned unauthenticated; /* live and not authenticated */
};
void moat_connguard_counts(const struct moat_connguard *g, struct moat_cg_counts *out);

/* Whether an event of kind from src (NULL: no source) may be written at now_ms; when true,
 * *suppressed is how many of that source and kind were left out since the last one
 * written. */
bool moat_connguard_event_allowed(struct moat_connguard *g, enum moat_cg_reason kind,
				  const struct moat_cg_source *src, int64_t now_ms,
				  uint64_t *suppressed);
/* Takes the count of events of kind left out since the last call (for a summary event). */
uint64_t moat_connguard_suppressed(struct moat_connguard *g, enum moat_cg_reason kind);

#endif
