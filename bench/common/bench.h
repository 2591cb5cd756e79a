/* bench.h: helpers the benchmark programs share (bench/common/bench.c, compiled into each
 * by its bench/<name>/run with cc; not part of the product). */
#ifndef MOAT_BENCH_H
#define MOAT_BENCH_H

#include <mosquitto.h>

/* Seconds on the monotonic clock. */
double bench_now_s(void);

/* A new libmosquitto client id (clean session, userdata ud) for mutual TLS: the server
 * verified against cafile, the client's certificate and key from cert and key, TLS 1.2 or
 * newer. NULL on any failure (nothing to free). The caller MUST mosquitto_lib_init first. */
struct mosquitto *bench_tls_client(const char *id, void *ud, const char *cafile, const char *cert,
				   const char *key);

#endif
