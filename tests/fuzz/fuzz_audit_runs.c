/* fuzz_audit_runs.c: run/audit-runs as moatd and the live audit read it
 * (moat_audit_runs_parse, src/core/auditrun.c). Invariants: a refused text leaves no run;
 * an accepted one has at most MOAT_AUDIT_RUNS_MAX valid runs whose text, formatted again,
 * parses to the same runs; a match is one of them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/auditrun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct moat_audit_runs r, back;
	struct moat_err err;
	if (moat_audit_runs_parse((const char *)data, size, &r, &err) != 0) {
		if (r.n != 0 || err.code != MOAT_EINVAL) {
			abort();
		}
		return 0;
	}
	if (r.n > MOAT_AUDIT_RUNS_MAX) {
		abort();
	}
	char text[MOAT_AUDIT_RUNS_MAX_BYTES + 1];
	size_t len = moat_audit_runs_format(&r, text, sizeof(text));
	if (moat_audit_runs_parse(text, len, &back, &err) != 0 || back.n != r.n ||
	    memcmp(&back, &r, sizeof(r)) != 0) {
		abort();
	}
	for (size_t i = 0; i < r.n; i++) {
		const struct moat_audit_run *m =
			moat_audit_runs_match(&r, r.r[i].address, r.r[i].from_ms);
		if (!m || m < &r.r[0] || m >= &r.r[r.n] ||
		    strcmp(m->address, r.r[i].address) != 0) {
			abort();
		}
	}
	return 0;
}
