/* sensors.c: where a device's readings come from. Three sources behind one call:
 * simulated (the tutorial's temperature 22.5 +- 5 and humidity 45 +- 10, plus a simulated
 * signal strength), a file holding a number (/sys/class/thermal/thermal_zone0/temp holds
 * millidegrees: scale = 0.001), or the output of a command. File and command output are
 * untrusted text: bounded, and only a finite number followed by whitespace is accepted.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "moat/spawn.h"

#include "sensors_internal.h"

void moat_sensor_init(struct moat_sensor *s, const struct moat_sensor_conf *conf, uint64_t seed)
{
	memset(s, 0, sizeof(*s));
	s->conf = *conf;
	s->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
}

/* xorshift64*: simulated readings need variety, not secrecy. */
static double rnd_unit(struct moat_sensor *s)
{
	uint64_t x = s->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	s->rng = x;
	return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

int moat_sensor_parse_value(const char *text, size_t len, double *out, struct moat_err *err)
{
	char buf[MOAT_AGENT_SENSOR_READ_MAX_BYTES + 1];
	*out = 0;
	if (len > MOAT_AGENT_SENSOR_READ_MAX_BYTES) {
		return moat_err_set(err, MOAT_EINVAL, "sensor value longer than %u bytes",
				    MOAT_AGENT_SENSOR_READ_MAX_BYTES);
	}
	if (memchr(text, '\0', len)) {
		return moat_err_set(err, MOAT_EINVAL, "sensor value contains a NUL byte");
	}
	memcpy(buf, text, len);
	buf[len] = '\0';
	const char *p = buf;
	while (*p == ' ' || *p == '\t') {
		p++;
	}
	char *end = NULL;
	errno = 0;
	double d = strtod(p, &end);
	if (end == p || errno == ERANGE || !isfinite(d)) {
		return moat_err_set(err, MOAT_EINVAL, "sensor value is not a finite number");
	}
	while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r') {
		end++;
	}
	if (*end != '\0') {
		return moat_err_set(err, MOAT_EINVAL, "sensor value has trailing text");
	}
	*out = d;
	return 0;
}

static int read_file(const char *path, char *buf, size_t size, size_t *out_len,
		     struct moat_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "sensor %s", path);
	}
	size_t got = 0;
	int rc = 0;
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			rc = moat_err_errno(err, MOAT_EIO, errno, "sensor %s", path);
			break;
		}
		if (n == 0) {
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	*out_len = got;
	return rc;
}

static int read_command(const char *command, char *buf, size_t size, size_t *out_len,
			struct moat_err *err)
{
	/* /bin/sh -c: the command comes from the device owner's config file. Its output
	 * beyond size bytes is drained, so it does not die of SIGPIPE mid-write. */
	char *argv[] = {"/bin/sh", "-c", (char *)command, NULL};
	struct moat_spawn sp = {.argv = argv, .flags = MOAT_SPAWN_CLOSE_FDS};
	char kept[MOAT_AGENT_SENSOR_READ_MAX_BYTES + 1];
	struct moat_spawn_capture out = {.buf = kept,
					 .size = size + 1 < sizeof(kept) ? size + 1 : sizeof(kept)};
	int st = 0;
	int rc = moat_spawn_run(&sp, NULL, 0, &out, NULL, &st, err);
	*out_len = 0;
	if (rc != 0) {
		moat_err_prefix(err, "sensor command");
		return rc;
	}
	memcpy(buf, kept, out.len);
	*out_len = out.len;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		return moat_err_set(err, MOAT_EIO, "sensor command failed (status %d)",
				    WIFEXITED(st) ? WEXITSTATUS(st) : 128);
	}
	return 0;
}

int moat_sensor_read(struct moat_sensor *s, struct moat_msg_reading *readings, size_t max,
		     size_t *out_count, bool *out_has_signal, int64_t *out_signal,
		     struct moat_err *err)
{
	*out_count = 0;
	*out_has_signal = false;
	*out_signal = 0;
	if (max < 2) {
		return moat_err_set(err, MOAT_EINVAL, "no room for readings");
	}
	if (s->conf.kind == MOAT_SENSOR_SIMULATED) {
		/* one decimal, like the tutorial's random(-50, 50) / 10.0 */
		double t = 22.5 + floor(rnd_unit(s) * 100.0 - 50.0) / 10.0;
		double h = 45.0 + floor(rnd_unit(s) * 200.0 - 100.0) / 10.0;
		snprintf(readings[0].name, sizeof(readings[0].name), "%s", "temperature");
		readings[0].value = t;
		snprintf(readings[1].name, sizeof(readings[1].name), "%s", "humidity");
		readings[1].value = h;
		*out_count = 2;
		*out_has_signal = true;
		*out_signal = -40 - (int64_t)(rnd_unit(s) * 40.0);
		return 0;
	}
	char buf[MOAT_AGENT_SENSOR_READ_MAX_BYTES];
	size_t len = 0;
	int rc;
	if (s->conf.kind == MOAT_SENSOR_FILE) {
		rc = read_file(s->conf.path, buf, sizeof(buf), &len, err);
	} else {
		rc = read_command(s->conf.command, buf, sizeof(buf), &len, err);
	}
	if (rc != 0) {
		return rc;
	}
	double v = 0;
	if ((rc = moat_sensor_parse_value(buf, len, &v, err)) != 0) {
		moat_err_prefix(err, "%s",
				s->conf.kind == MOAT_SENSOR_FILE ? s->conf.path : "sensor command");
		return rc;
	}
	v *= s->conf.scale;
	if (!isfinite(v)) {
		return moat_err_set(err, MOAT_EINVAL, "sensor value out of range after scaling");
	}
	snprintf(readings[0].name, sizeof(readings[0].name), "%s", s->conf.name);
	readings[0].value = v;
	*out_count = 1;
	return 0;
}
