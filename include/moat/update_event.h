/* update_event.h: the update events devices report (src/server/events.c): the strict
 * parser of what a device publishes on devices/{id}/diagnostics, used by moatd's ingest
 * and by `moat watch`. moatd records what it parses (moat_registry_update_event_record);
 * `moat fw status` shows it. The event struct and its stages are the registry's, which
 * stores them.
 *
 * Contract: the parser is pure and bounded (fuzzed: tests/fuzz/fuzz_http_event.c); it
 * never reads more than len bytes and never allocates what it hands back.
 */
#ifndef MOAT_UPDATE_EVENT_H
#define MOAT_UPDATE_EVENT_H

#include <stddef.h>

#include "moat/err.h"
#include "moat/registry.h"

#define MOAT_UPDATE_EVENT_MAX_BYTES 2048u

/* Parses the JSON a device publishes on devices/{id}/diagnostics for an update event:
 *   {"event":"update","stage":"installed","version":"1.2.0","running":"1.1.0",
 *    "reason":"bad_signature","timestamp":N}
 * "event" and "stage" are required; versions must be semantic versions; reason is printable
 * ASCII; unknown or duplicate fields are refused. MOAT_ENOENT (not an error to log) when
 * the JSON is an object whose "event" is not "update". device and at are not touched
 * (the caller sets them from the topic and its clock); *out is written only on success. */
MOAT_MUST_CHECK int moat_update_event_parse(const void *json, size_t len,
					    struct moat_update_event *out, struct moat_err *err);

#endif
