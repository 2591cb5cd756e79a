/* seed.c: bench/dashboard's telemetry, written through the registry's own API (no SQL here):
 * DAYS days of one message every INTERVAL seconds for each device named on the command line,
 * ending now, as moatd's ingest would have recorded them (temperature, humidity, RSSI, free
 * heap). Run while moatd is down.
 * usage: seed REGISTRY_DB DAYS INTERVAL_S TYPE DEVICE...
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "moat/registry.h"

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: seed REGISTRY_DB DAYS INTERVAL_S TYPE DEVICE...\n");
		return 2;
	}
	long days = strtol(argv[2], NULL, 10), interval = strtol(argv[3], NULL, 10);
	if (days < 1 || days > 30 || interval < 1 || interval > 3600) {
		fprintf(stderr, "seed: DAYS 1..30, INTERVAL_S 1..3600\n");
		return 2;
	}
	struct moat_registry *reg = NULL;
	struct moat_err err = {0};
	if (moat_registry_open(argv[1], false, &reg, &err) != 0) {
		fprintf(stderr, "seed: %s\n", err.msg);
		return 1;
	}
	struct timeval tv;
	gettimeofday(&tv, NULL);
	int64_t now = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
	int64_t step = interval * 1000LL, n = days * 86400LL / interval, total = 0;
	int rc = 0;
	for (int d = 5; d < argc && rc == 0; d++) {
		if ((rc = moat_registry_begin(reg, &err)) != 0) {
			break;
		}
		for (int64_t i = 0; i < n && rc == 0; i++) {
			int64_t at = now - (n - i) * step;
			double day = (double)(at % 86400000) / 86400000.0;
			char msg[320];
			int len = snprintf(
				msg, sizeof(msg),
				"{\"device_id\":\"%s\",\"device_type\":\"%s\",\"timestamp\":%lld,"
				"\"telemetry\":{\"temperature\":%.2f,\"humidity\":%.1f},"
				"\"metadata\":{\"signal_strength\":%d,\"free_heap\":%d}}",
				argv[d], argv[4], (long long)at, 20 + 4 * sin(6.2832 * day),
				45 + 10 * cos(6.2832 * day), -60 - (int)(i % 7),
				180000 - (int)(i % 500));
			rc = moat_registry_telemetry_add(reg, argv[d], at, msg, (size_t)len, &err);
			total++;
		}
		if (rc == 0) {
			rc = moat_registry_commit(reg, &err);
		} else {
			moat_registry_rollback(reg);
		}
	}
	moat_registry_close(reg);
	if (rc != 0) {
		fprintf(stderr, "seed: %s\n", err.msg);
		return 1;
	}
	printf("%lld\n", (long long)total);
	return 0;
}
