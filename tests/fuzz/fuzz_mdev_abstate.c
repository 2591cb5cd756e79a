/* fuzz_mdev_abstate.c: moat-device's A/B record (src/device-core/ab.c) read from whatever
 * a flash holds: a state that loads is valid; saved and loaded again it is the same; the
 * machine's transitions keep it valid. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat_device.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned char flash[MDEV_AB_STORE_BYTES];

static int rd(void *ctx, size_t off, void *buf, size_t len)
{
	(void)ctx;
	memcpy(buf, flash + off, len);
	return 0;
}

static int wr(void *ctx, size_t off, const void *buf, size_t len)
{
	(void)ctx;
	memcpy(flash + off, buf, len);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mdev_ab_store store = {NULL, rd, wr};
	struct mdev_ab_state st, again;
	uint32_t seq = 0;
	memset(flash, 0xff, sizeof(flash));
	memcpy(flash, data, size < sizeof(flash) ? size : sizeof(flash));
	if (mdev_ab_load(&store, &st, &seq) < 0 || mdev_ab_check(&st) != 0) {
		abort();
	}
	int64_t now = size > sizeof(flash) ? (int64_t)data[sizeof(flash)] * 1000 : 0;
	mdev_ab_select(&st, now, 60);
	(void)mdev_ab_stage(&st, mdev_ab_other(st.active), now);
	if (mdev_ab_check(&st) != 0 || mdev_ab_save(&store, &st, &seq) != 0 ||
	    mdev_ab_load(&store, &again, NULL) != 0 || memcmp(&st, &again, sizeof(st)) != 0) {
		abort();
	}
	return 0;
}
