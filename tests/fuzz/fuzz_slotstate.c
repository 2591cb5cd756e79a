/* fuzz_slotstate.c: the boot.state parser (src/device/bootstate.c). Whatever parses must
 * format back to exactly the input (the format is canonical: version 1 without a reverted
 * trial, version 2 with one), except a version 2 file with reverted_issued_at=0, which
 * formats as version 1 and parses to the same state; every state the machine derives
 * from it must format and parse again. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/update.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const struct moat_boot_state *a, const struct moat_boot_state *b)
{
	return strcmp(a->device_type, b->device_type) == 0 && a->active == b->active &&
	       a->trial == b->trial && a->attempts == b->attempts && a->deadline == b->deadline &&
	       a->floor == b->floor && a->last_issued_at == b->last_issued_at &&
	       a->reverted_issued_at == b->reverted_issued_at;
}

static void roundtrip(const struct moat_boot_state *st)
{
	char buf[MOAT_BOOT_STATE_MAX_BYTES];
	size_t len = 0;
	struct moat_boot_state back;
	struct moat_err err;

	if (moat_boot_state_format(st, buf, sizeof(buf), &len, &err) != 0 ||
	    moat_boot_state_parse(buf, len, &back, &err) != 0 || !same(&back, st)) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_boot_state st;
	struct moat_err err;
	char buf[MOAT_BOOT_STATE_MAX_BYTES];
	size_t len = 0;

	if (moat_boot_state_parse(data, size, &st, &err) != 0) {
		return 0;
	}
	static const char v1[] = "moat-boot-state 1\n";
	bool is_v1 = size >= sizeof(v1) - 1 && memcmp(data, v1, sizeof(v1) - 1) == 0;
	if (is_v1 && st.reverted_issued_at != 0) {
		abort();
	}
	if (!is_v1 && st.reverted_issued_at == 0) {
		roundtrip(&st); /* written back as version 1 */
	} else if (moat_boot_state_format(&st, buf, sizeof(buf), &len, &err) != 0 || len != size ||
		   memcmp(buf, data, size) != 0) {
		abort();
	}
	struct moat_boot_state sel = st;
	if (moat_boot_select(&sel, st.deadline, 60) == MOAT_BOOT_REVERTED &&
	    sel.reverted_issued_at < st.last_issued_at) {
		abort(); /* a revert remembers the trial's issued_at */
	}
	roundtrip(&sel);
	struct moat_boot_state rev = st;
	moat_boot_revert(&rev);
	roundtrip(&rev);
	struct moat_manifest m;
	memset(&m, 0, sizeof(m));
	/* What a manifest can hold: at most MOAT_FW_INT_MAX. */
	m.security_version = st.floor < MOAT_FW_INT_MAX ? st.floor + 1 : st.floor;
	m.issued_at = st.last_issued_at < MOAT_FW_INT_MAX ? st.last_issued_at + 1 : 0;
	struct moat_boot_state conf = st;
	if (moat_boot_confirm(&conf, &m, &err) == 0) {
		roundtrip(&conf);
	}
	struct moat_boot_state stage = st;
	if (moat_boot_stage(&stage, moat_boot_other(st.active), &m, &err) == 0) {
		roundtrip(&stage);
	}
	return 0;
}
