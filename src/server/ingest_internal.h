/* ingest_internal.h: what ingest.c (the MQTT reader and the queue) and ingest_store.c (the
 * writer: registry, device state, rules) share; not part of any contract. */
#ifndef MOAT_INGEST_INTERNAL_H
#define MOAT_INGEST_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "moat/identity.h"
#include "moat/monitor.h"
#include "moat/net.h"
#include "moat/server.h"

/* One queued message (topic and payload follow the struct in the same allocation), or one
 * event of moatd's own (topic NULL, ev set). */
struct ingest_item {
	struct ingest_item *next;
	int64_t at_ms;	 /* wall clock on arrival: what is recorded */
	int64_t mono_ms; /* monotonic on arrival: the lag */
	bool replayed;	 /* a resumed session's backlog: sent while moatd was away, arriving at
			    once (not a rate the device keeps) */
	const char *topic;
	const char *payload; /* NUL-terminated after len bytes */
	size_t len;
	struct moat_security_event *ev;
};

struct moat_ingest {
	pthread_t reader, writer;
	bool reader_started, writer_started;
	volatile int stop; /* the reader's */
	char dir[PATH_MAX];
	char as[MOAT_ID_BUF_LEN];
	char client_suffix[MOAT_CLIENT_SUFFIX_MAX_LEN + 1];
	char run_id[17];
	struct moat_monitor_settings set;
	struct moat_net_policy *net; /* for the zone rule; NULL when zone_check is off */
	int events_fd;		     /* the plugin's events file, read back at start; -1 */
	int broker_log_fd;	     /* the broker's log, followed by the writer; -1 */

	pthread_mutex_t lock; /* everything below */
	pthread_cond_t cond;
	bool writer_stop;
	struct ingest_item *head, *tail;
	uint64_t queued;
	uint64_t received, recorded, dropped, events, anomalies, batches;
	uint64_t bytes_received; /* payload bytes of the messages received */
};

/* Queues (never blocks the caller): false when the queue is full (counted as dropped). */
bool ingest_push(struct moat_ingest *ing, struct ingest_item *it);
void ingest_item_free(struct ingest_item *it);
/* The writer thread (ingest_store.c). */
void *ingest_writer_run(void *arg);

#endif
