/* queue_internal.h: the device's offline queue (queue.c), shared inside src/device only.
 * Telemetry stays here, byte for byte, until the broker acknowledges it; while the device
 * is disconnected the queue is mirrored to an append-only file so it survives a restart.
 * The queue owns its records' payloads and its file descriptor.
 */
#ifndef MOAT_QUEUE_INTERNAL_H
#define MOAT_QUEUE_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"

struct moat_queue_rec {
	int64_t seq;
	char *payload; /* NUL-terminated JSON, no newline */
	size_t len;
	int mid; /* MQTT message id while in flight, 0 otherwise */
	bool acked;
	bool on_disk;
	int refusals; /* times the broker refused it (PUBACK reason >= 0x80) */
};

struct moat_queue {
	char path[PATH_MAX];	     /* "" for a memory-only queue */
	struct moat_queue_rec *recs; /* ring buffer */
	size_t cap, head, count;
	size_t max;
	int fd; /* the open file, -1 for memory only */
	bool no_fsync;
	uint64_t dropped; /* oldest records dropped because the queue was full */
	size_t disk_recs; /* records in the file (acked ones included) */
};

/* Opens (creating when absent) the queue file at path (NULL: memory only) and loads the
 * records it holds: lines of telemetry JSON; an incomplete last line (a crash mid-append)
 * and lines that do not parse as telemetry are skipped. At most max records are kept
 * (the newest). */
MOAT_MUST_CHECK int moat_queue_open(struct moat_queue *q, const char *path, size_t max,
				    bool no_fsync, struct moat_err *err);
void moat_queue_close(struct moat_queue *q);
/* Appends a record (copied). When full, the oldest record is dropped first. When
 * to_disk, the record is also appended to the file. */
MOAT_MUST_CHECK int moat_queue_push(struct moat_queue *q, int64_t seq, const char *payload,
				    size_t len, bool to_disk, struct moat_err *err);
/* The i-th record from the head, or NULL. The pointer is valid until the next push, ack or
 * close. */
struct moat_queue_rec *moat_queue_at(struct moat_queue *q, size_t i);
/* Marks the record in flight with mid as acknowledged and pops acknowledged records from
 * the head; truncates the file when the queue becomes empty. true when mid was found. */
bool moat_queue_ack(struct moat_queue *q, int mid, struct moat_err *err);
/* The broker refused the record in flight with mid: it is no longer in flight and will be
 * sent again. Returns the record (its refusals counted), or NULL when mid is unknown. */
struct moat_queue_rec *moat_queue_refused(struct moat_queue *q, int mid);
/* The connection is gone: clears every in-flight mark and appends every record that is
 * not yet in the file to it, in order. */
MOAT_MUST_CHECK int moat_queue_spill(struct moat_queue *q, struct moat_err *err);
/* The highest seq in the queue, or -1. */
int64_t moat_queue_max_seq(const struct moat_queue *q);

#endif
