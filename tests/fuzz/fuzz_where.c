/* fuzz_where.c: the parsers of groups, rollouts and jobs (src/core/rollout.c, job.c): the
 * --where filter language, the --phases list, the broker's security events moatd reads for
 * rollouts, and --rate.
 * The first byte picks the parser; the rest is the input. Besides crashes it checks
 * invariants: an accepted filter has 1..MOAT_WHERE_MAX_NODES nodes whose links point at
 * earlier nodes (so evaluation ends), and evaluates without fault; an accepted phase list
 * is strictly increasing and ends at 100; a security signal names a valid identity; an
 * accepted rate gives an interval of 100 us to 60 s. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/job.h"
#include "moat/rollout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_where(const char *text)
{
	static struct moat_where w;
	struct moat_err err;
	if (moat_where_parse(text, &w, &err) != 0) {
		if (w.count != 0) {
			abort();
		}
		return;
	}
	if (w.count < 1 || w.count > MOAT_WHERE_MAX_NODES || w.root < 0 || w.root >= w.count) {
		abort();
	}
	for (int i = 0; i < w.count; i++) {
		const struct moat_where_node *n = &w.nodes[i];
		bool binary = n->op == MOAT_WHERE_AND || n->op == MOAT_WHERE_OR;
		if ((binary || n->op == MOAT_WHERE_NOT) && (n->left < 0 || n->left >= i)) {
			abort();
		}
		if (binary && (n->right < 0 || n->right >= i)) {
			abort();
		}
	}
	const char *tags[] = {"plant1", "zone:north"};
	struct moat_device_attrs dev = {"d", "sensor", "1.0.0", tags, 2, 100};
	(void)moat_where_match(&w, &dev);
}

static void check_phases(const char *text)
{
	int pct[MOAT_ROLLOUT_PHASES_MAX];
	int n = 0;
	struct moat_err err;
	if (moat_rollout_phases_parse(text, pct, &n, &err) != 0) {
		if (n != 0) {
			abort();
		}
		return;
	}
	if (n < 1 || n > MOAT_ROLLOUT_PHASES_MAX || pct[n - 1] != 100) {
		abort();
	}
	for (int i = 1; i < n; i++) {
		if (pct[i] <= pct[i - 1] || pct[i - 1] < 1) {
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0 || size > 8192) {
		return 0;
	}
	char *text = malloc(size);
	if (!text) {
		return 0;
	}
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	switch (data[0] % 4) {
	case 0:
	case 2:
		check_where(text);
		break;
	case 1:
		check_phases(text);
		break;
	case 3: {
		int64_t us = 0;
		struct moat_err err;
		if (moat_job_rate_parse(text, &us, &err) == 0 && (us < 100 || us > 60000000)) {
			abort();
		}
		break;
	}
	}
	free(text);
	return 0;
}
