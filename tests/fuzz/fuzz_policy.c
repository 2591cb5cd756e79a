/* fuzz_policy.c: libFuzzer harness for the broker policy file parser (src/core/policy.c).
 *
 * The input is the file. Besides crashes it checks the invariants the plugin relies on:
 * a refused file returns no identities; an accepted one has its identities sorted and
 * findable, renders, and the rendering parses back to the same policy (so what moat
 * writes and what the plugin reads cannot drift apart).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_policy p;
	struct moat_policy back;
	struct moat_err err;
	char *text = NULL;
	size_t len = 0;

	if (moat_policy_parse((const char *)data, size, &p, &err) != 0) {
		if (p.identity_count != 0 || p.identities != NULL) {
			abort();
		}
		moat_policy_free(&p);
		return 0;
	}
	for (size_t i = 0; i < p.identity_count; i++) {
		if ((i > 0 && strcmp(p.identities[i - 1].name, p.identities[i].name) >= 0) ||
		    moat_policy_find(&p, p.identities[i].name) != &p.identities[i]) {
			abort();
		}
	}
	if (moat_policy_render_alloc(&p, &text, &len, &err) != 0) {
		abort();
	}
	if (moat_policy_parse(text, len, &back, &err) != 0 ||
	    back.operator_write_commands != p.operator_write_commands ||
	    memcmp(back.limits, p.limits, sizeof(p.limits)) != 0 ||
	    memcmp(&back.flapping, &p.flapping, sizeof(p.flapping)) != 0 ||
	    back.unban_count != p.unban_count || back.identity_count != p.identity_count ||
	    (p.identity_count > 0 && memcmp(back.identities, p.identities,
					    p.identity_count * sizeof(p.identities[0])) != 0)) {
		abort();
	}
	for (size_t i = 0; i < p.unban_count; i++) {
		if (strcmp(back.unbans[i].name, p.unbans[i].name) != 0 ||
		    back.unbans[i].before_s != p.unbans[i].before_s) {
			abort();
		}
	}
	free(text);
	moat_policy_free(&back);
	moat_policy_free(&p);
	return 0;
}
