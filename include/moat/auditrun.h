/* auditrun.h: the declaration of a live audit's runs (src/core/auditrun.c), so monitoring
 * can tell the audit's probes from an attack where no identity names them.
 *
 * A probe refused in the TLS handshake (no certificate, a foreign, expired or revoked one,
 * TLS 1.0/1.1, weak suites, plaintext) cannot carry the run id in a client id: the broker
 * sees only an address. So `moat audit --live` declares each run before its first probe in
 * run/audit-runs of the deployment: its id, the source address its probes come from, and
 * the time window they run in (until is first the longest a run may take, then rewritten
 * with the end). moatd reads the file when it records a refused handshake
 * (kind tls_refused, and the plugin's auth_refused with reason tls_handshake_failed) and
 * adds audit_run=<run> to the evidence of one from a declared address within a declared
 * window. An identical failure from another address, or outside every window, carries no
 * run: it is an attack until shown otherwise.
 *
 * The file: at most MOAT_AUDIT_RUNS_MAX lines, each
 *   run=<8 lower-case hex digits> address=<IPv4 or IPv6 text> from_ms=<ms> until_ms=<ms>
 * (milliseconds since the epoch, from_ms <= until_ms), newline-terminated. Pure: the
 * callers read and write the file.
 */
#ifndef MOAT_AUDITRUN_H
#define MOAT_AUDITRUN_H

#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"

#define MOAT_AUDIT_RUNS_FILE "run/audit-runs"
#define MOAT_AUDIT_RUNS_MAX 16
#define MOAT_AUDIT_RUNS_MAX_BYTES 4096
#define MOAT_AUDIT_RUN_ID_LEN 8
#define MOAT_AUDIT_RUN_ADDR_MAX_LEN 45 /* INET6_ADDRSTRLEN - 1 */
/* How long after until_ms an event still matches: the run's last probe is refused a moment
 * after the audit ends its window, and Mosquitto's log says the second only. */
#define MOAT_AUDIT_RUN_GRACE_MS 2000

struct moat_audit_run {
	char run[MOAT_AUDIT_RUN_ID_LEN + 1];
	char address[MOAT_AUDIT_RUN_ADDR_MAX_LEN + 1];
	int64_t from_ms, until_ms;
};

struct moat_audit_runs {
	struct moat_audit_run r[MOAT_AUDIT_RUNS_MAX];
	size_t n;
};

/* Reads the whole file (len bytes) into out. Refused (MOAT_EINVAL, one line naming the
 * line): more than MOAT_AUDIT_RUNS_MAX_BYTES or MOAT_AUDIT_RUNS_MAX lines, a line without
 * its newline, fields missing, out of order or repeated, a run id that is not 8 lower-case
 * hex digits, an address that is not an IPv4 or IPv6 address, a time that is not a
 * decimal in 0..2^53, from_ms after until_ms. An empty text is no runs. */
MOAT_MUST_CHECK int moat_audit_runs_parse(const char *text, size_t len, struct moat_audit_runs *out,
					  struct moat_err *err);

/* The run declared for a refusal from address at t_ms (from_ms <= t_ms <= until_ms +
 * MOAT_AUDIT_RUN_GRACE_MS), the latest declared if several; NULL for none. */
const struct moat_audit_run *moat_audit_runs_match(const struct moat_audit_runs *runs,
						   const char *address, int64_t t_ms);

/* Puts run into runs: replaces the line of the same id, else appends, dropping the oldest
 * when MOAT_AUDIT_RUNS_MAX are there. MOAT_EINVAL if run is not valid as the parser says. */
MOAT_MUST_CHECK int moat_audit_runs_put(struct moat_audit_runs *runs,
					const struct moat_audit_run *run, struct moat_err *err);

/* The file's text for runs into buf (size >= MOAT_AUDIT_RUNS_MAX_BYTES + 1): its length. */
size_t moat_audit_runs_format(const struct moat_audit_runs *runs, char *buf, size_t size);

#endif
