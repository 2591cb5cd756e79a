/* log.h: one line per event, key=value, to stderr (default) or syslog. Never log a secret.
 *
 * moat_log(MOAT_LOG_INFO, "event=connected id=%s", id) prints
 * "2026-11-25T18:00:00Z level=info prog=moat-agent event=connected id=...".
 */
#ifndef MOAT_LOG_H
#define MOAT_LOG_H

#include <stdbool.h>

#include "moat/err.h"

enum moat_log_level { MOAT_LOG_DEBUG, MOAT_LOG_INFO, MOAT_LOG_WARN, MOAT_LOG_ERROR };

void moat_log_init(const char *prog, enum moat_log_level min_level, bool use_syslog);
void moat_log(enum moat_log_level level, const char *fmt, ...) MOAT_PRINTF(2, 3);

#endif
