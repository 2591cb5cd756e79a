/* fuzz_mdev_command.c: moat-device's command parser and dispatcher (src/device-core) on
 * untrusted payloads. What it parses, src/core's parser accepts with the same name and
 * correlation id; every response it builds is one src/core's reader accepts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/messages.h"
#include "moat_device.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_interval(void *ctx, int64_t seconds, struct mdev_cmd_result *r)
{
	(void)ctx;
	r->status = "completed";
	r->has_interval = true;
	r->interval = seconds;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"reboot", "update_interval", "diagnostics",
					    "check_update"};
	static struct moat_msg_command core;
	static struct moat_msg_response resp;
	struct mdev_command cmd;
	struct moat_err err;
	char msg[MDEV_MSG_MAX];
	char buf[1024];
	char topic[128];
	size_t len = 0;
	const char *name = names[size % 4];
	if (mdev_cmd_parse(name, data, size, &cmd, msg) == 0) {
		if (moat_msg_command_parse(name, data, size, &core, &err) != 0 ||
		    strcmp(core.name, cmd.name) != 0 || strcmp(core.id, cmd.id) != 0) {
			abort();
		}
	}
	struct mdev_cmd_handlers h = {NULL, NULL, on_interval, NULL, NULL};
	memcpy(topic, "devices/dev-1/commands/", 23);
	memcpy(topic + 23, name, strlen(name) + 1);
	if (mdev_cmd_dispatch("dev-1", topic, data, size, &h, 1700000000000LL, buf, sizeof(buf),
			      &len) < 0 ||
	    moat_msg_response_parse(buf, len, &resp, &err) != 0) {
		abort();
	}
	return 0;
}
