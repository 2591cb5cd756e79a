/* enroll_internal.h: a device's own identity, enrolled and renewed over EST (enroll.c),
 * shared inside src/device only: the session (session.c) asks it which certificate and key
 * to connect with, tells it how each attempt went, and lets it run its EST calls on the
 * poll loop. What the agent's [enroll] section means is in moat/agent_conf.h.
 *
 * Files (dir = [enroll] dir), written so that a power failure at any point leaves a
 * working identity whenever there was one:
 *   dir/gen-<n>/key.pem   the key of generation n (P-256, 0600, made here, never sent)
 *   dir/gen-<n>/cert.pem  its certificate, then the issuing CA's (the chain below the root)
 *   dir/current           symlink to the generation in use
 *   dir/next              symlink to a renewed generation not yet proven: the next
 *                         connection tries it, and only once the broker accepted it does it
 *                         replace current (rename, atomic); until then current is kept
 * Each file is written atomically (fsync, rename, fsync of the directory); a generation is
 * linked only once its key and certificate are both on disk. Generations that no link names
 * (a renewal cut short) are removed when the store is opened.
 */
#ifndef MOAT_ENROLL_INTERNAL_H
#define MOAT_ENROLL_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "moat/agent_conf.h"
#include "moat/enroll.h"
#include "moat/err.h"

struct moat_enroll;

/* Opens the identity of conf (conf->enroll must be set; conf is copied): creates dir
 * (0700), cleans up unlinked generations, reads current and next. The caller owns *out. */
MOAT_MUST_CHECK int moat_enroll_open(const struct moat_agent_conf *conf, struct moat_enroll **out,
				     struct moat_err *err);
void moat_enroll_free(struct moat_enroll *e);
/* Concurrent EST calls across the enrollments sharing pool (the simulator's). */
void moat_enroll_set_pool(struct moat_enroll *e, struct moat_enroll_pool *pool);

/* true when there is an identity to connect with (current, or next). */
bool moat_enroll_ready(const struct moat_enroll *e);
/* The certificate and key for the next connection attempt (the real paths of a
 * generation, so a renewal that lands meanwhile cannot mix them). NULL when not ready. */
MOAT_MUST_CHECK int moat_enroll_attempt(struct moat_enroll *e, const char **cert, const char **key);
/* The attempt got CONNACK: a renewed identity becomes current. */
void moat_enroll_on_connected(struct moat_enroll *e);
/* The attempt failed. */
void moat_enroll_on_failed(struct moat_enroll *e);
/* A renewal wants the connection to switch to the new identity now (cleared by reading). */
bool moat_enroll_take_switch(struct moat_enroll *e);
/* notAfter of the identity in use (0 when none). */
int64_t moat_enroll_not_after(const struct moat_enroll *e);

/* Starts an enrollment or renewal that is due, and moves a call in progress along as far
 * as it goes without blocking (call it on every pass of the loop). */
void moat_enroll_tick(struct moat_enroll *e, int64_t now_mono_ms, int64_t now_wall_ms);
/* Makes the key (written 0600) and CSR of the enrollment to come, when there is no
 * identity yet, so that the simulator does this before it times enrollments. */
MOAT_MUST_CHECK int moat_enroll_prepare(struct moat_enroll *e, struct moat_err *err);
/* The socket of the call in progress (-1: none) and the events it waits for. */
int moat_enroll_fd(const struct moat_enroll *e, short *events);

/* Enrolls now, blocking, when there is no usable identity (moat-agent --enroll): 0 when
 * one is there (made now or before), else the reason. */
MOAT_MUST_CHECK int moat_enroll_now(struct moat_enroll *e, struct moat_err *err);

#endif
