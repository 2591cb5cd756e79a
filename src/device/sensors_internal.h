/* sensors_internal.h: the device's sensor (sensors.c), shared inside src/device only: the
 * device behaviour reads it on every telemetry tick. Readings come from a simulation, a
 * file or a command's output, as struct moat_sensor_conf (moat/agent_conf.h) says.
 */
#ifndef MOAT_SENSORS_INTERNAL_H
#define MOAT_SENSORS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/agent_conf.h"
#include "moat/err.h"
#include "moat/messages.h"

#define MOAT_AGENT_SENSOR_READ_MAX_BYTES 256

struct moat_sensor {
	struct moat_sensor_conf conf;
	uint64_t rng; /* simulated readings; seeded per device */
};

void moat_sensor_init(struct moat_sensor *s, const struct moat_sensor_conf *conf, uint64_t seed);
/* Fills readings (at most max) and signal strength (simulated only: *out_has_signal). */
MOAT_MUST_CHECK int moat_sensor_read(struct moat_sensor *s, struct moat_msg_reading *readings,
				     size_t max, size_t *out_count, bool *out_has_signal,
				     int64_t *out_signal, struct moat_err *err);
/* Parses the first number of a sensor file or command output (e.g. "48123\n"). Pure. */
MOAT_MUST_CHECK int moat_sensor_parse_value(const char *text, size_t len, double *out,
					    struct moat_err *err);

#endif
