/* fuzz_update_report.c: the report-line parser of moat-update --report
 * (src/core/update_report.c), which moat-agent and moat sim run on a child's output. Whatever
 * parses must format (the writer accepts everything the reader does) and parse again to
 * the same report; the formatted line must itself be canonical (formatting it again gives
 * the same bytes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/update_schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const struct moat_update_report *a, const struct moat_update_report *b)
{
	return a->kind == b->kind && a->res.outcome == b->res.outcome &&
	       a->res.verdict == b->res.verdict && a->res.slot == b->res.slot &&
	       a->res.resumed_from == b->res.resumed_from && a->offset == b->offset &&
	       a->size == b->size && strcmp(a->res.version, b->res.version) == 0 &&
	       strcmp(a->res.msg, b->res.msg) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_update_report r, back;
	struct moat_err err;
	char line[MOAT_UPDATE_REPORT_MAX_BYTES + 1];
	char again[MOAT_UPDATE_REPORT_MAX_BYTES + 1];
	size_t len = 0, len2 = 0;

	if (moat_update_report_parse((const char *)data, size, &r, &err) != 0) {
		return 0;
	}
	if (moat_update_report_format(&r, line, sizeof(line), &len, &err) != 0 ||
	    len > MOAT_UPDATE_REPORT_MAX_BYTES || line[len - 1] != '\n') {
		abort();
	}
	if (moat_update_report_parse(line, len, &back, &err) != 0 || !same(&r, &back)) {
		abort();
	}
	if (moat_update_report_format(&back, again, sizeof(again), &len2, &err) != 0 ||
	    len2 != len || memcmp(line, again, len) != 0) {
		abort();
	}
	return 0;
}
