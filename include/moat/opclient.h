/* opclient.h: an operator's (or service's) MQTT session, for `moat cmd` and `moat watch`
 * (src/fleet/opclient.c). It connects as an identity of the deployment with that
 * identity's certificate, verifying the broker against the deployment CA and its host
 * name, like every moat client; it never turns verification off.
 *
 * Ownership: the struct is the caller's, freed with moat_opclient_close; a message
 * returned by moat_opclient_next lives until the next call.
 * The broker binds the client id to the certificate's identity; a service or operator may
 * add a suffix, "<identity>:<suffix>" (identity.h), and each tool uses its own (cmd-<pid>,
 * watch-<pid>, ingest), so sessions of one identity never disconnect each other.
 * A CONNECT the broker refuses is MOAT_EDENIED naming the CONNACK reason and, when this
 * host holds the deployment's security events, the broker's own reason for the refusal.
 */
#ifndef MOAT_OPCLIENT_H
#define MOAT_OPCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"
#include "moat/identity.h"

#define MOAT_OPCLIENT_QUEUE_MAX 10000 /* messages buffered before the oldest are dropped */

struct moat_deploy;
struct moat_opclient;

/* The client id suffix of one daemon's session among several of its kind on one broker
 * (several moatds splitting the devices' messages through shared subscriptions):
 * "<what>-<host>-<port>", host this machine's name up to its first dot, lowercased, other
 * characters than [a-z0-9] made '-', cut so the suffix fits MOAT_CLIENT_SUFFIX_MAX_LEN;
 * "<what>-<port>" when the name is unknown. Stable across restarts, different for two
 * daemons on one machine (their ports) and on machines of different names. what:
 * [a-z]{1,8}; port 1..65535; buf of MOAT_CLIENT_SUFFIX_MAX_LEN + 1 bytes or more. */
void moat_opclient_instance_suffix(const char *what, int port, char *buf, size_t size);

/* Connects as identity `as`, or when NULL as the first operator identity of the
 * registry (then the first service identity), with client id "<identity>:<suffix>"
 * (suffix NULL or "": the identity alone), to host (NULL or "": moat.conf's [client]
 * host, deploy.h), whose name the broker's certificate must carry. out_as (may be NULL)
 * receives the name. */
MOAT_MUST_CHECK int moat_opclient_connect(struct moat_deploy *d, const char *as, const char *suffix,
					  const char *host, int64_t timeout_ms,
					  struct moat_opclient **out, char out_as[MOAT_ID_BUF_LEN],
					  struct moat_err *err);
/* moat_opclient_connect with a session the broker keeps for session_expiry_s seconds after
 * a disconnection (MQTT 5 clean start 0 and that Session Expiry Interval: what arrives for
 * its QoS 1 subscriptions meanwhile is queued, up to the broker's max_queued_messages, and
 * delivered when the same client id connects again); 0: a clean session, as
 * moat_opclient_connect. */
MOAT_MUST_CHECK int moat_opclient_connect_session(struct moat_deploy *d, const char *as,
						  const char *suffix, const char *host,
						  int64_t timeout_ms, uint32_t session_expiry_s,
						  struct moat_opclient **out,
						  char out_as[MOAT_ID_BUF_LEN],
						  struct moat_err *err);
/* Whether the broker had kept this client id's session (CONNACK session present). */
bool moat_opclient_session_present(const struct moat_opclient *c);
/* The identity moat_opclient_connect would act as for `as` (NULL: the first operator,
 * then the first service), into out, and its role. */
MOAT_MUST_CHECK int moat_opclient_identity(struct moat_deploy *d, const char *as,
					   char out[MOAT_ID_BUF_LEN], enum moat_role *out_role,
					   struct moat_err *err);
/* The role of the identity c is connected as. */
enum moat_role moat_opclient_role(const struct moat_opclient *c);
/* Subscribes (QoS 1) and waits for the broker's acknowledgement. */
MOAT_MUST_CHECK int moat_opclient_subscribe(struct moat_opclient *c, const char *const *filters,
					    size_t count, int64_t timeout_ms, struct moat_err *err);
/* Publishes (QoS 1, not retained) and waits for PUBACK. */
MOAT_MUST_CHECK int moat_opclient_publish(struct moat_opclient *c, const char *topic,
					  const void *payload, size_t len, int64_t timeout_ms,
					  struct moat_err *err);
/* The next message, waiting at most timeout_ms (-1: forever, until *stop): MOAT_ETIMEOUT,
 * MOAT_EINTR when *stop became non-zero, MOAT_EIO when the connection is lost. */
MOAT_MUST_CHECK int moat_opclient_next(struct moat_opclient *c, int64_t timeout_ms,
				       volatile int *stop, const char **out_topic,
				       const void **out_payload, size_t *out_len,
				       struct moat_err *err);
/* Messages dropped (the oldest) because MOAT_OPCLIENT_QUEUE_MAX were waiting. */
uint64_t moat_opclient_dropped(const struct moat_opclient *c);
/* Disconnects (a kept session stays kept: moat_opclient_connect_session) and frees c. */
void moat_opclient_close(struct moat_opclient *c);
/* Disconnects ending the session, kept or not (DISCONNECT with a Session Expiry Interval
 * of 0: the broker queues nothing more for it), and frees c. A connection already lost
 * cannot end its session: it stays kept until it expires or the client id resumes it. */
void moat_opclient_end(struct moat_opclient *c);

#endif
