/* log.h: one line per event, key=value, to stderr (default) or syslog. Never log a secret.
 *
 * moat_log(MOAT_LOG_INFO, "event=connected id=%s", id) prints
 * "2026-11-25T18:00:00Z level=info prog=moat-agent event=connected id=...".
 *
 * Contract: the format string is the trusted part of a line, the arguments are data.
 * - Field names MUST be literals of the format: every %s (and %c) is a value, never a
 *   key or a piece of the format ("%s%s" to build an optional field is wrong; pass NULL).
 * - A %s value is escaped (text.h: controls, C1, bidi controls, invalid UTF-8, '"' and
 *   '\') and put between double quotes unless it is plain (printable ASCII without space,
 *   '=', '"' or '\'), so no value can forge a field or a line:
 *   reason=%s with "ok stage=confirmed" is reason="ok stage=confirmed". Inside quotes of
 *   the format itself (error=\"%s\") a value is escaped and not quoted again.
 * - A NULL %s drops its whole field (from the space before it to the space after it):
 *   "running=%s reason=%s" with reason NULL prints only running=.
 * - Lines are cut at MOAT_LOG_LINE_MAX bytes; a cut value still ends its quotes.
 */
#ifndef MOAT_LOG_H
#define MOAT_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "moat/err.h"

#define MOAT_LOG_LINE_MAX 2048 /* bytes of one line's fields, NUL included */

enum moat_log_level { MOAT_LOG_DEBUG, MOAT_LOG_INFO, MOAT_LOG_WARN, MOAT_LOG_ERROR };

void moat_log_init(const char *prog, enum moat_log_level min_level, bool use_syslog);
void moat_log(enum moat_log_level level, const char *fmt, ...) MOAT_PRINTF(2, 3);
/* moat_log with the arguments in ap; id (may be NULL) is written first as the field id=
 * (the per-device lines of moat-agent and the simulator). */
void moat_vlog(enum moat_log_level level, const char *id, const char *fmt, va_list ap)
	MOAT_PRINTF(3, 0);
/* The fields of a line as moat_log writes them (after "<time> level=.. prog=.. "), into
 * out of size >= 1 bytes, always NUL-terminated. Returns the bytes written. */
size_t moat_log_vformat(char *out, size_t size, const char *fmt, va_list ap) MOAT_PRINTF(3, 0);
/* Writes a line whose fields moat_log_vformat made earlier (a line said only once what it
 * reports is committed). */
void moat_log_formatted(enum moat_log_level level, const char *fields);

#endif
