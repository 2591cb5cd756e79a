/* fuzz_mdev_envelope.c: moat-device's envelope reader and decision (src/device-core) on
 * untrusted bytes. The syntax check and mdev_fw_decide agree on what is malformed; what
 * the library finds well-formed, src/core's reader does too; with no trusted key nothing
 * is ever accepted. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/manifest.h"
#include "moat_device.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mdev_fw_work work;
	static struct moat_envelope env;
	static const struct mdev_trusted_key key = {{1, 2, 3}, "", 0};
	struct mdev_trust trust = {&key, 1, 1};
	struct mdev_fw_policy policy = {MDEV_FW_FOR_INSTALL, "temp_sensor", "1.0.0", 0, 1, 0};
	struct mdev_fw_decision d;
	struct mdev_manifest m;
	struct moat_err err;
	char msg[MDEV_MSG_MAX];
	int syntax = mdev_envelope_check(data, size, msg);
	enum mdev_fw_verdict v = mdev_fw_decide(data, size, &trust, &policy, &work, &m, &d);
	if ((syntax != 0) != (v == MDEV_FW_MALFORMED) || v == MDEV_FW_ACCEPT ||
	    memchr(d.msg, '\0', sizeof(d.msg)) == NULL) {
		abort();
	}
	if (syntax == 0 && moat_envelope_parse(data, size, &env, &err) != 0) {
		abort();
	}
	return 0;
}
