/* monitor_internal.h: shared by the files of src/monitor only; not part of any contract. */
#ifndef MOAT_MONITOR_INTERNAL_H
#define MOAT_MONITOR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "moat/monitor_export.h"

#define EXPORT_KINDS_MAX 64

/* What /metrics reads of a running exporter (export.c fills it under its lock). */
struct export_counters {
	size_t kinds;
	char kind[EXPORT_KINDS_MAX][MOAT_SEC_KIND_MAX_LEN + 1];
	uint64_t events[EXPORT_KINDS_MAX];
	uint64_t siem_sent, siem_dropped, siem_failures;
	uint64_t webhook_sent, webhook_summaries, webhook_failures, webhook_dropped;
	uint64_t deduplicated; /* events folded into a later record by dedup_window */
	size_t siem_queue, alert_queue;
	int64_t last_event_ms; /* wall clock of the newest event, 0: none yet */
};

void export_counters_get(struct moat_export *x, struct export_counters *out);

struct moat_security_event;
/* The ingest's record (secevent.h) as the export's (export.c). */
void export_from_security_event(const struct moat_security_event *in, struct moat_sec_event *out);

#endif
