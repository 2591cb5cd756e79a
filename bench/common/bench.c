/* bench.c: the helpers of bench.h, shared by bench/broker/loadgen.c and
 * bench/fleet/counter.c. TLS verification stays on, as for any moat client. */
#include <time.h>

#include "bench.h"

double bench_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct mosquitto *bench_tls_client(const char *id, void *ud, const char *cafile, const char *cert,
				   const char *key)
{
	struct mosquitto *m = mosquitto_new(id, true, ud);
	if (!m) {
		return NULL;
	}
	if (mosquitto_tls_set(m, cafile, NULL, cert, key, NULL) != MOSQ_ERR_SUCCESS ||
	    mosquitto_tls_opts_set(m, 1, "tlsv1.2", NULL) != MOSQ_ERR_SUCCESS) {
		mosquitto_destroy(m);
		return NULL;
	}
	return m;
}
