/* device.h: the device behaviour of moat (src/device/device.c), as the drivers outside
 * src/device see it. One device behaviour (telemetry, status, command handling, the
 * offline queue) is written once and driven by two drivers: the moat-agent daemon (one
 * device) and `moat sim` (N devices in one process). Both run it inside a struct
 * moat_session (moat/session.h); struct moat_device itself is opaque: only src/device
 * reads its fields (src/device/device_internal.h).
 *
 * Delivery: every telemetry message gets the next per-device sequence number
 * (metadata.seq), is built once and kept, byte for byte, in the device's queue until the
 * broker acknowledges it (QoS 1 PUBACK). While disconnected the queue is mirrored to an
 * append-only file (state_dir/queue) so it survives an agent restart; after reconnecting
 * it is sent again from its head, in order. Delivery is therefore at-least-once: a message
 * whose PUBACK was lost (broker killed after receiving it) is sent again, and the copy is
 * identical to the original (same seq), so a subscriber drops duplicates by seq.
 *
 * Sequence numbers only grow: state_dir/seq holds a reserved upper bound, written
 * (atomically) a block ahead, so a restarted agent continues above every number it may
 * have used (it may skip up to a block: a gap marks a restart).
 */
#ifndef MOAT_DEVICE_H
#define MOAT_DEVICE_H

#include <stdint.h>

/* Opaque; owned by the session that runs it. */
struct moat_device;

/* What a device has done since it started (read with moat_session_device_stats). */
struct moat_device_stats {
	uint64_t telemetry_sent; /* acknowledged by the broker */
	uint64_t commands;
	uint64_t errors;
};

#endif
