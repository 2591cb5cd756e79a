/* fuzz_json.c: libFuzzer harness for the one strict JSON reader (src/core/json.c).
 *
 * Byte 0 picks the limits: its low 4 bits the flags (ASCII, no escapes, no control bytes,
 * unsigned integers), its high 4 bits the depth (0..8, larger is clamped by the reader); the
 * rest is the text. Invariants: a refusal leaves no tree and names a fault; an accepted
 * document is an object whose objects hold each key once, nested no deeper than allowed;
 * and what it accepts, written back by cJSON, it accepts again (the reader and the writer
 * every builder relies on agree).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_BYTES 4096

/* Depth of node's containers below it, and no key twice in any object. */
static unsigned check_tree(const cJSON *node)
{
	unsigned deepest = 0;

	for (const cJSON *a = node->child; a; a = a->next) {
		if (cJSON_IsObject(node)) {
			for (const cJSON *b = a->next; b; b = b->next) {
				if (strcmp(a->string, b->string) == 0) {
					abort();
				}
			}
		}
		if (cJSON_IsObject(a) || cJSON_IsArray(a)) {
			unsigned d = 1 + check_tree(a);
			deepest = d > deepest ? d : deepest;
		}
	}
	return deepest;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_json_limits lim = {.max_bytes = FUZZ_MAX_BYTES};
	struct moat_json_fault f;
	struct moat_err err;
	cJSON *root = NULL;

	if (size < 1) {
		return 0;
	}
	lim.flags = data[0] & 0x0fu;
	lim.max_depth = (data[0] >> 4) % (MOAT_JSON_DEPTH_MAX + 1);
	int rc = moat_json_parse("fuzz", data + 1, size - 1, &lim, &root, &f, &err);
	if (rc != 0) {
		if (root || f.kind == MOAT_JSON_OK || err.msg[0] == '\0') {
			abort();
		}
		return 0;
	}
	if (!root || !cJSON_IsObject(root) || f.kind != MOAT_JSON_OK ||
	    check_tree(root) > lim.max_depth) {
		abort();
	}
	char *text = cJSON_PrintUnformatted(root);
	if (text) {
		const struct moat_json_limits again = {.max_bytes = strlen(text) + 1,
						       .max_depth = lim.max_depth};
		cJSON *back = NULL;
		if (moat_json_parse("fuzz", text, strlen(text), &again, &back, &f, &err) != 0) {
			abort();
		}
		cJSON_Delete(back);
		cJSON_free(text);
	}
	cJSON_Delete(root);
	return 0;
}
