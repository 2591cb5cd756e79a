/* fuzz_mdev_command.c: moat-device's command parser and dispatcher (src/device-core) on
 * untrusted payloads. What it parses, src/core's parser accepts with the same name and
 * correlation id; every response it builds is one src/core's reader accepts. Once per
 * run, the device's other messages (telemetry, status, last will, a response with UTF-8
 * detail, an update event) are read back by
 * src/core's readers, field for field: the MCU speaks moat's JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/messages.h"
#include "moat/update_schema.h"
#include "moat_device.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_interval(void *ctx, int64_t seconds, struct mdev_cmd_result *r)
{
	(void)ctx;
	r->status = "completed";
	r->has_interval = true;
	r->interval = seconds;
}

static void messages_match_core(void)
{
	static struct moat_msg_telemetry t;
	static struct moat_msg_status st;
	struct moat_err err;
	char buf[1024];
	size_t len = 0;
	struct mdev_reading rd[2] = {{"temperature", 21.25}, {"count", 7}};
	struct mdev_telemetry mt = {.device_id = "dev-1",
				    .device_type = "temp_sensor",
				    .timestamp_ms = 1700000000000LL,
				    .readings = rd,
				    .reading_count = 2,
				    .has_signal_strength = true,
				    .has_free_heap = true,
				    .has_uptime_ms = true,
				    .has_seq = true,
				    .signal_strength = -61,
				    .free_heap = 2048,
				    .uptime_ms = 99,
				    .seq = 12};
	if (mdev_msg_telemetry(&mt, buf, sizeof(buf), &len) != 0 ||
	    moat_msg_telemetry_parse(buf, len, &t, &err) != 0 ||
	    strcmp(t.device_id, "dev-1") != 0 || strcmp(t.device_type, "temp_sensor") != 0 ||
	    t.timestamp_ms != 1700000000000LL || t.reading_count != 2 ||
	    t.readings[0].value != 21.25 || t.readings[1].value != 7 || t.seq != 12 ||
	    t.signal_strength != -61) {
		abort();
	}
	if (mdev_msg_status_online("dev-1", 5, "10.1.2.3", "1.2.0", buf, sizeof(buf), &len) != 0 ||
	    moat_msg_status_parse(buf, len, &st, &err) != 0 || !st.online || st.timestamp_ms != 5 ||
	    strcmp(st.ip_address, "10.1.2.3") != 0 || strcmp(st.agent_version, "1.2.0") != 0) {
		abort();
	}
	if (mdev_msg_status_will("dev-1", buf, sizeof(buf), &len) != 0 ||
	    moat_msg_status_parse(buf, len, &st, &err) != 0 || st.online || st.has_timestamp) {
		abort();
	}
	static struct moat_msg_response rs;
	const struct mdev_response mr = {"dev-1", "reboot", "accepted",
					 5,	  "c-1",    "caf\xc3\xa9 \xe2\x9c\x93",
					 0};
	if (mdev_msg_response(&mr, buf, sizeof(buf), &len) != 0 ||
	    moat_msg_response_parse(buf, len, &rs, &err) != 0 ||
	    strcmp(rs.detail, mr.detail) != 0 || strcmp(rs.id, "c-1") != 0 || rs.has_interval) {
		abort();
	}
	static struct moat_update_event ev;
	const struct mdev_update_event me = {MDEV_UPD_REVERTED, "1.3.0", "1.2.0",
					     "trial did not confirm", 1700000000};
	if (mdev_msg_update_event(&me, buf, sizeof(buf), &len) != 0 ||
	    moat_update_event_parse(buf, len, &ev, &err) != 0 || ev.stage != MOAT_UPD_REVERTED ||
	    strcmp(ev.version, "1.3.0") != 0 || strcmp(ev.running, "1.2.0") != 0 ||
	    strcmp(ev.reason, me.reason) != 0) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool checked;
	if (!checked) {
		messages_match_core();
		checked = true;
	}
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
