/* loadgen.c: load generator for bench/broker/run and bench/broker/profile. Three modes:
 *
 *   loadgen msgs HOST PORT CAFILE IDDIR SERVICE DEVICES MESSAGES
 *     DEVICES devices publish MESSAGES QoS 1 telemetry messages each, each from its own
 *     thread, to a broker that SERVICE subscribes to; the clock runs from the first publish
 *     until the service has received every message. Prints "msgs_per_s=<x>".
 *   loadgen conns HOST PORT CAFILE IDDIR DEVICES CONNECTIONS PARALLEL
 *     a reconnect storm: PARALLEL threads, each as its own device (dev-000001...), make
 *     CONNECTIONS connections in all, each a full mutual-TLS handshake (no session
 *     resumption) + CONNECT/CONNACK + DISCONNECT. Prints "conns_per_s=<x>".
 *   loadgen tls HOST PORT CAFILE IDDIR DEVICES CONNECTIONS PARALLEL
 *     the same storm with the TLS handshakes alone (OpenSSL, the broker's certificate and
 *     address verified, the device's certificate presented), closed right after: the
 *     handshake limit of this machine, what `openssl s_time -new` measures, but as
 *     parallel as the storm. Prints "handshakes_per_s=<x>".
 *
 * Devices are dev-000001... (certificates in IDDIR/<id>/). TLS verification is on, as for
 * any moat client. Every wait is bounded. Built by the scripts with cc; not part of the
 * product.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define MAX_DEVICES 1000
#define MAX_PARALLEL 256
/* No single connection or handshake may take longer (seconds). */
#define STEP_TIMEOUT_S 30

static const char *host, *cafile, *iddir;
static int port;
static atomic_long received;
static atomic_int failed;

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

static void paths(const char *id, char cert[PATH_MAX], char key[PATH_MAX])
{
	snprintf(cert, PATH_MAX, "%s/%s/cert.pem", iddir, id);
	snprintf(key, PATH_MAX, "%s/%s/key.pem", iddir, id);
}

static struct mosquitto *client(const char *id, atomic_int *flag)
{
	char cert[PATH_MAX], key[PATH_MAX];
	paths(id, cert, key);
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

/* Waits for the CONNACK of a connection started by mosquitto_(re)connect, driving the loop
 * ourselves; 0 when it accepted us. */
static int wait_connack(struct mosquitto *m, atomic_int *flag)
{
	double deadline = bench_now_s() + STEP_TIMEOUT_S;
	while (atomic_load(flag) == 0) {
		if (mosquitto_loop(m, 100, 1) != MOSQ_ERR_SUCCESS || bench_now_s() > deadline) {
			return -1;
		}
	}
	return atomic_load(flag) == 1 ? 0 : -1;
}

static int connect_sync(struct mosquitto *m, atomic_int *flag)
{
	atomic_store(flag, 0);
	if (mosquitto_connect(m, host, port, 60) != MOSQ_ERR_SUCCESS) {
		return -1;
	}
	return wait_connack(m, flag);
}

/* A count in [1, max]; -1 when text is not one. */
static long count_arg(const char *text, long max)
{
	char *end = NULL;
	long v = strtol(text, &end, 10);
	return (end == text || *end != '\0' || v < 1 || v > max) ? -1 : v;
}

/* ---- msgs ---- */

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
			atomic_store(&failed, 1);
			return NULL;
		}
	}
	return NULL;
}

static int run_msgs(const char *service, int ndev, long msgs)
{
	atomic_int sflag;
	struct mosquitto *svc = client(service, &sflag);
	if (!svc || connect_sync(svc, &sflag) != 0) {
		fprintf(stderr, "loadgen: service %s cannot connect\n", service);
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
	/* Generous: under callgrind the broker runs some 50 times slower. */
	double deadline = bench_now_s() + 600;
	while (atomic_load(&received) < total && bench_now_s() < deadline &&
	       !atomic_load(&failed)) {
		usleep(1000);
	}
	double t1 = bench_now_s();
	long got = atomic_load(&received);
	for (int i = 0; i < ndev; i++) {
		mosquitto_disconnect(devs[i].m);
		mosquitto_loop_stop(devs[i].m, false);
		mosquitto_destroy(devs[i].m);
	}
	mosquitto_disconnect(svc);
	mosquitto_loop_stop(svc, false);
	mosquitto_destroy(svc);
	if (got < total) {
		fprintf(stderr, "loadgen: service received %ld of %ld\n", got, total);
		return 1;
	}
	printf("msgs_per_s=%.0f messages=%ld\n", (double)total / (t1 - t0), total);
	return 0;
}

/* ---- conns and tls: the storm ---- */

struct storm {
	int ndev;
	long each; /* connections per thread */
	bool tls_only;
	SSL_CTX *ctx[MAX_PARALLEL];
};

struct worker {
	struct storm *s;
	int index;
	pthread_t th;
};

static atomic_int storm_go;

/* One MQTT session after another, each a full handshake: a fresh client per connection
 * (libmosquitto keeps no TLS session, so none is resumed). */
static void *mqtt_worker(void *arg)
{
	struct worker *w = arg;
	char id[32];
	snprintf(id, sizeof(id), "dev-%06d", (w->index % w->s->ndev) + 1);
	while (!atomic_load(&storm_go)) {
		sched_yield();
	}
	for (long i = 0; i < w->s->each && !atomic_load(&failed); i++) {
		atomic_int flag;
		struct mosquitto *m = client(id, &flag);
		if (!m || connect_sync(m, &flag) != 0) {
			fprintf(stderr, "loadgen: %s: connection %ld failed\n", id, i);
			atomic_store(&failed, 1);
		} else {
			mosquitto_disconnect(m); /* written at once: no loop thread here */
		}
		if (m) {
			mosquitto_destroy(m);
		}
	}
	return NULL;
}

static SSL_CTX *tls_ctx(const char *id)
{
	char cert[PATH_MAX], key[PATH_MAX];
	paths(id, cert, key);
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* A full handshake every time, as a device after a broker restart. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	return ctx;
}

/* One verified handshake, then close; 0 on success. */
static int handshake(SSL_CTX *ctx)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		return -1;
	}
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) {
		return -1;
	}
	int one = 1;
	struct timeval tv = {.tv_sec = STEP_TIMEOUT_S};
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	int rc = -1;
	SSL *ssl = NULL;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && (ssl = SSL_new(ctx)) &&
	    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 &&
	    SSL_set_fd(ssl, fd) == 1 && SSL_connect(ssl) == 1 &&
	    SSL_get_verify_result(ssl) == X509_V_OK) {
		rc = 0;
		SSL_shutdown(ssl);
	}
	SSL_free(ssl);
	close(fd);
	return rc;
}

static void *tls_worker(void *arg)
{
	struct worker *w = arg;
	while (!atomic_load(&storm_go)) {
		sched_yield();
	}
	for (long i = 0; i < w->s->each && !atomic_load(&failed); i++) {
		if (handshake(w->s->ctx[w->index]) != 0) {
			fprintf(stderr, "loadgen: handshake %ld of thread %d failed\n", i,
				w->index);
			atomic_store(&failed, 1);
		}
	}
	return NULL;
}

static int run_storm(int ndev, long nconn, int parallel, bool tls_only)
{
	static struct storm s;
	static struct worker w[MAX_PARALLEL];
	s.ndev = ndev;
	s.each = (nconn + parallel - 1) / parallel;
	s.tls_only = tls_only;
	for (int i = 0; tls_only && i < parallel; i++) {
		char id[32];
		snprintf(id, sizeof(id), "dev-%06d", (i % ndev) + 1);
		if (!(s.ctx[i] = tls_ctx(id))) {
			fprintf(stderr, "loadgen: %s: cannot set up TLS\n", id);
			return 1;
		}
	}
	for (int i = 0; i < parallel; i++) {
		w[i].s = &s;
		w[i].index = i;
		if (pthread_create(&w[i].th, NULL, tls_only ? tls_worker : mqtt_worker, &w[i]) !=
		    0) {
			fprintf(stderr, "loadgen: cannot start thread %d\n", i);
			return 1;
		}
	}
	double t0 = bench_now_s();
	atomic_store(&storm_go, 1);
	for (int i = 0; i < parallel; i++) {
		pthread_join(w[i].th, NULL);
	}
	double t1 = bench_now_s();
	for (int i = 0; tls_only && i < parallel; i++) {
		SSL_CTX_free(s.ctx[i]);
	}
	if (atomic_load(&failed)) {
		return 1;
	}
	long done = s.each * parallel;
	printf("%s=%.1f connections=%ld parallel=%d\n",
	       tls_only ? "handshakes_per_s" : "conns_per_s", (double)done / (t1 - t0), done,
	       parallel);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: loadgen msgs HOST PORT CAFILE IDDIR SERVICE DEVICES MESSAGES\n"
			"       loadgen conns|tls HOST PORT CAFILE IDDIR DEVICES CONNECTIONS "
			"PARALLEL\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc != 9) {
		return usage();
	}
	host = argv[2];
	port = (int)count_arg(argv[3], 65535);
	cafile = argv[4];
	iddir = argv[5];
	int rc;
	mosquitto_lib_init();
	if (strcmp(argv[1], "msgs") == 0) {
		int ndev = (int)count_arg(argv[7], MAX_DEVICES);
		long msgs = count_arg(argv[8], 10000000);
		if (port < 0 || ndev < 0 || msgs < 0) {
			fprintf(stderr, "loadgen: bad counts\n");
			return 2;
		}
		rc = run_msgs(argv[6], ndev, msgs);
	} else if (strcmp(argv[1], "conns") == 0 || strcmp(argv[1], "tls") == 0) {
		int ndev = (int)count_arg(argv[6], MAX_DEVICES);
		long nconn = count_arg(argv[7], 1000000);
		int parallel = (int)count_arg(argv[8], MAX_PARALLEL);
		if (port < 0 || ndev < 0 || nconn < 0 || parallel < 0) {
			fprintf(stderr, "loadgen: bad counts\n");
			return 2;
		}
		rc = run_storm(ndev, nconn, parallel, strcmp(argv[1], "tls") == 0);
	} else {
		return usage();
	}
	mosquitto_lib_cleanup();
	return rc;
}
