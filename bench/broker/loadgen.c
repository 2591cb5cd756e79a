/* loadgen.c: load generator for bench/broker/run: N devices publish QoS 1 telemetry over
 * mutual TLS to a broker that one service subscribes to, then one identity after another
 * connects and disconnects; prints "msgs_per_s=<x> conns_per_s=<y>".
 *
 * usage: loadgen HOST PORT CAFILE IDENTITIES_DIR SERVICE DEVICES MESSAGES CONNECTIONS
 * Devices are dev-000001... (certificates in IDENTITIES_DIR/<id>/); each publishes
 * MESSAGES messages from its own thread; the clock runs from the first publish until the
 * service has received every message. TLS verification is on, as for any moat client.
 * Built by bench/broker/run with cc; not part of the product.
 */
#include <limits.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define MAX_DEVICES 1000

static const char *host, *cafile, *iddir;
static int port;
static atomic_long received;

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
	(void)m;
	(void)ud;
	(void)msg;
	atomic_fetch_add(&received, 1);
}

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
	(void)m;
	atomic_int *flag = ud;
	atomic_store(flag, rc == 0 ? 1 : -1);
}

static struct mosquitto *client(const char *id, atomic_int *flag)
{
	char cert[PATH_MAX], key[PATH_MAX];
	snprintf(cert, sizeof(cert), "%s/%s/cert.pem", iddir, id);
	snprintf(key, sizeof(key), "%s/%s/key.pem", iddir, id);
	struct mosquitto *m = bench_tls_client(id, flag, cafile, cert, key);
	if (!m) {
		return NULL;
	}
	mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
	/* without it Nagle and delayed ACKs put ~40 ms into every connect */
	mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_connect_callback_set(m, on_connect);
	return m;
}

/* Connects and waits for a successful CONNACK, driving the loop ourselves. */
static int connect_sync(struct mosquitto *m, atomic_int *flag)
{
	atomic_store(flag, 0);
	if (mosquitto_connect(m, host, port, 60) != MOSQ_ERR_SUCCESS) {
		return -1;
	}
	while (atomic_load(flag) == 0) {
		if (mosquitto_loop(m, 1000, 1) != MOSQ_ERR_SUCCESS) {
			return -1;
		}
	}
	return atomic_load(flag) == 1 ? 0 : -1;
}

struct dev {
	char id[32];
	struct mosquitto *m;
	atomic_int flag;
	pthread_t th;
	long messages;
};

static void *publisher(void *arg)
{
	struct dev *d = arg;
	char topic[96], payload[256];
	snprintf(topic, sizeof(topic), "devices/%s/telemetry", d->id);
	for (long i = 0; i < d->messages; i++) {
		int n = snprintf(payload, sizeof(payload),
				 "{\"device_id\":\"%s\",\"device_type\":\"bench\",\"timestamp\":%ld,"
				 "\"telemetry\":{\"temperature\":21.5,\"humidity\":40},"
				 "\"metadata\":{\"signal_strength\":-60,\"free_heap\":100000,"
				 "\"uptime_ms\":%ld}}",
				 d->id, i, i);
		/* queued; the library keeps at most 20 in flight */
		int rc = mosquitto_publish(d->m, NULL, topic, n, payload, 1, false);
		if (rc != MOSQ_ERR_SUCCESS) {
			fprintf(stderr, "%s: publish: %s\n", d->id, mosquitto_strerror(rc));
			return NULL;
		}
	}
	return NULL;
}

/* A count in [1, max]; -1 when text is not one. */
static long count_arg(const char *text, long max)
{
	char *end = NULL;
	long v = strtol(text, &end, 10);
	return (end == text || *end != '\0' || v < 1 || v > max) ? -1 : v;
}

int main(int argc, char **argv)
{
	if (argc != 9) {
		fprintf(stderr, "usage: loadgen HOST PORT CAFILE IDDIR SERVICE DEVICES MESSAGES "
				"CONNECTIONS\n");
		return 2;
	}
	host = argv[1];
	port = (int)count_arg(argv[2], 65535);
	cafile = argv[3];
	iddir = argv[4];
	int ndev = (int)count_arg(argv[6], MAX_DEVICES);
	long msgs = count_arg(argv[7], 10000000);
	int nconn = (int)count_arg(argv[8], 1000000);
	if (port < 0 || ndev < 0 || msgs < 0 || nconn < 0) {
		fprintf(stderr, "loadgen: bad counts\n");
		return 2;
	}
	mosquitto_lib_init();

	atomic_int sflag;
	struct mosquitto *svc = client(argv[5], &sflag);
	if (!svc || connect_sync(svc, &sflag) != 0) {
		fprintf(stderr, "loadgen: service %s cannot connect\n", argv[5]);
		return 1;
	}
	mosquitto_message_callback_set(svc, on_message);
	mosquitto_subscribe(svc, NULL, "devices/+/telemetry", 1);
	mosquitto_loop_start(svc);

	static struct dev devs[MAX_DEVICES];
	for (int i = 0; i < ndev; i++) {
		snprintf(devs[i].id, sizeof(devs[i].id), "dev-%06d", i + 1);
		devs[i].messages = msgs;
		devs[i].m = client(devs[i].id, &devs[i].flag);
		if (!devs[i].m || connect_sync(devs[i].m, &devs[i].flag) != 0) {
			fprintf(stderr, "loadgen: %s cannot connect\n", devs[i].id);
			return 1;
		}
		mosquitto_max_inflight_messages_set(devs[i].m, 20);
		mosquitto_loop_start(devs[i].m);
	}
	usleep(300000); /* let the subscription settle */
	long total = (long)ndev * msgs;
	double t0 = bench_now_s();
	for (int i = 0; i < ndev; i++) {
		pthread_create(&devs[i].th, NULL, publisher, &devs[i]);
	}
	for (int i = 0; i < ndev; i++) {
		pthread_join(devs[i].th, NULL);
	}
	double deadline = bench_now_s() + 120;
	while (atomic_load(&received) < total && bench_now_s() < deadline) {
		usleep(1000);
	}
	double t1 = bench_now_s();
	long got = atomic_load(&received);
	for (int i = 0; i < ndev; i++) {
		mosquitto_disconnect(devs[i].m);
		mosquitto_loop_stop(devs[i].m, false);
		mosquitto_destroy(devs[i].m);
	}
	if (got < total) {
		fprintf(stderr, "loadgen: service received %ld of %ld\n", got, total);
		return 1;
	}

	/* mutual TLS connections: full handshake + CONNECT/CONNACK + DISCONNECT, serially */
	double c0 = bench_now_s();
	for (int i = 0; i < nconn; i++) {
		atomic_int flag;
		char id[32];
		snprintf(id, sizeof(id), "dev-%06d", (i % ndev) + 1);
		struct mosquitto *m = client(id, &flag);
		if (!m || connect_sync(m, &flag) != 0) {
			fprintf(stderr, "loadgen: connection %d (%s) failed\n", i, id);
			return 1;
		}
		mosquitto_disconnect(m); /* written at once: no loop thread on this client */
		mosquitto_destroy(m);
	}
	double c1 = bench_now_s();
	mosquitto_disconnect(svc);
	mosquitto_loop_stop(svc, false);
	mosquitto_destroy(svc);
	mosquitto_lib_cleanup();
	printf("msgs_per_s=%.0f conns_per_s=%.1f messages=%ld connections=%d\n",
	       (double)total / (t1 - t0), (double)nconn / (c1 - c0), total, nconn);
	return 0;
}
