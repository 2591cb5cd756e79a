/* log.c: one key=value line per event on stderr or syslog. Control characters in a
 * message are replaced by '?', so every event stays on one line. */
#include "moat/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "moat/timeutil.h"

static const char *log_prog = "moat";
static enum moat_log_level log_min = MOAT_LOG_INFO;
static bool log_syslog;

void moat_log_init(const char *prog, enum moat_log_level min_level, bool use_syslog)
{
	log_prog = prog;
	log_min = min_level;
	log_syslog = use_syslog;
	if (use_syslog) {
		openlog(prog, LOG_PID, LOG_DAEMON);
	}
}

void moat_log(enum moat_log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
	if (level < log_min) {
		return;
	}
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* values may come from the network: a newline in one must not forge a second event */
	for (char *p = line; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*p = '?';
		}
	}
	if (log_syslog) {
		syslog(prio[level], "level=%s %s", names[level], line);
		return;
	}
	char ts[MOAT_TIME_ISO_LEN];
	moat_time_iso(moat_time_now(), ts);
	fprintf(stderr, "%s level=%s prog=%s %s\n", ts, names[level], log_prog, line);
}
