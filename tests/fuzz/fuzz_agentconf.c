/* fuzz_agentconf.c: the moat-agent INI file (src/device/conf.c) and the other untrusted
 * text the agent reads (sensor values, and the queue file through moat_queue_open is
 * covered by its unit tests). Invariants: a refusal always says why and leaves the
 * configuration at its defaults (no id); an accepted configuration is within every bound
 * the agent relies on, and formatting it and parsing it again gives the same result. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/agent_conf.h"

#include "../../src/device/sensors_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_agent_conf c, c2;
	struct moat_err err;
	double v;
	moat_err_clear(&err);
	/* the sensor value parser sees the same bytes */
	if (moat_sensor_parse_value((const char *)data, size, &v, &err) == 0 && v != v) {
		abort(); /* never NaN */
	}
	moat_err_clear(&err);
	if (moat_agent_conf_parse("fuzz.conf", (const char *)data, size, "/base", &c, &err) != 0) {
		if (err.msg[0] == '\0' || c.id[0] != '\0') {
			abort();
		}
		return 0;
	}
	if (!moat_identity_name_ok(c.id) || c.host[0] == '\0' || c.port < 1 || c.port > 65535 ||
	    c.interval_ms < MOAT_AGENT_INTERVAL_MIN_MS ||
	    c.interval_ms > MOAT_MSG_UPDATE_INTERVAL_MAX * 1000LL || c.queue_max < 1 ||
	    c.queue_max > MOAT_AGENT_QUEUE_MAX || c.reconnect_min_ms > c.reconnect_max_ms ||
	    !c.ca_file[0] || !c.cert_file[0] || !c.key_file[0] || c.sensor.scale == 0.0) {
		abort();
	}
	char *text = NULL;
	size_t len = 0;
	if (moat_agent_conf_format(&c, &text, &len, &err) != 0) {
		return 0; /* paths too long to write back: refused, not truncated */
	}
	if (moat_agent_conf_parse("again", text, len, NULL, &c2, &err) != 0 ||
	    strcmp(c.id, c2.id) != 0 || c.interval_ms != c2.interval_ms || c.port != c2.port ||
	    strcmp(c.host, c2.host) != 0 || strcmp(c.cert_file, c2.cert_file) != 0) {
		abort();
	}
	free(text);
	return 0;
}
