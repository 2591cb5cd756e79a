/* counter.c: bench/fleet's counting subscriber. One service identity (client id = its CN,
 * mutual TLS, verification on) subscribes to devices/+/telemetry at QoS 1 and keeps, per
 * device, which metadata.seq values arrived, so it can tell messages lost (gaps between the
 * first and last seq seen) from duplicates (QoS 1 redelivery).
 *
 * Phases: it prints "ready" once subscribed; "all_seen" when EXPECT devices have each sent
 * something (the fleet is connected and publishing); then it counts for WINDOW seconds and
 * prints one "window ..." line (messages that arrived in the window, per-device minimum);
 * the window line also gives the mean and largest delay from a message's "timestamp" (made
 * on the device, same clock) to its arrival, which shows a backlog building up. On SIGUSR1
 * it drains: it stops once no message arrived for 3 s (at most 120 s); on SIGTERM/SIGINT
 * it stops at once; either way it prints one "total ..." line over everything it saw. A
 * payload without a parsable seq counts as "bad".
 *
 * usage: counter HOST PORT CAFILE CERT KEY CLIENT_ID EXPECT WINDOW_S RAMP_TIMEOUT_S
 */
#include <cjson/cJSON.h>
#include <mosquitto.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define TABLE_SIZE (1u << 17) /* device slots; > 100,000 devices with room to spare */
#define SEQ_BITS 8192u	      /* seqs tracked per device after its first: > 2 h at 1/s */
#define ID_MAX 64

struct dev {
	char id[ID_MAX + 1];
	int64_t first_seq; /* first seq seen: the bitmap's origin */
	int64_t min_seq;
	int64_t max_seq;
	uint64_t unique;
	uint64_t dups;
	uint64_t in_window;
	uint8_t *bits;
};

static struct dev *table;
static size_t devices_seen;
static uint64_t bad, out_of_range, received;
static volatile sig_atomic_t stop, drain;
static double last_msg;
static double lag_sum, lag_max;
static uint64_t lag_n;
static int phase; /* 0: ramp, 1: window, 2: after the window */
static double window_start;
static long expect;

static void on_signal(int sig)
{
	if (sig == SIGUSR1) {
		drain = 1;
	} else {
		stop = 1;
	}
}

static double now_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static struct dev *lookup(const char *id, size_t len)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h = (h ^ (unsigned char)id[i]) * 1099511628211ull;
	}
	for (size_t n = 0; n < TABLE_SIZE; n++) {
		struct dev *d = &table[(h + n) & (TABLE_SIZE - 1)];
		if (d->id[0] == '\0') {
			memcpy(d->id, id, len);
			d->id[len] = '\0';
			d->min_seq = INT64_MAX;
			d->max_seq = -1;
			d->first_seq = -1;
			devices_seen++;
			return d;
		}
		if (strlen(d->id) == len && memcmp(d->id, id, len) == 0) {
			return d;
		}
	}
	return NULL;
}

static void on_message(struct mosquitto *m, void *ctx, const struct mosquitto_message *msg)
{
	(void)m;
	(void)ctx;
	received++;
	/* devices/<id>/telemetry */
	const char *t = msg->topic;
	if (strncmp(t, "devices/", 8) != 0) {
		bad++;
		return;
	}
	const char *id = t + 8;
	const char *slash = strchr(id, '/');
	if (!slash || slash == id || (size_t)(slash - id) > ID_MAX) {
		bad++;
		return;
	}
	cJSON *root = cJSON_ParseWithLength(msg->payload, (size_t)msg->payloadlen);
	const cJSON *meta = root ? cJSON_GetObjectItemCaseSensitive(root, "metadata") : NULL;
	const cJSON *jseq = meta ? cJSON_GetObjectItemCaseSensitive(meta, "seq") : NULL;
	if (!cJSON_IsNumber(jseq) || jseq->valuedouble < 0 || jseq->valuedouble > 9e15) {
		cJSON_Delete(root);
		bad++;
		return;
	}
	int64_t seq = (int64_t)jseq->valuedouble;
	const cJSON *jts = cJSON_GetObjectItemCaseSensitive(root, "timestamp");
	if (phase == 1 && cJSON_IsNumber(jts)) {
		double lag = (now_wall_ms() - jts->valuedouble) / 1e3;
		lag_sum += lag;
		lag_n++;
		if (lag > lag_max) {
			lag_max = lag;
		}
	}
	cJSON_Delete(root);
	last_msg = bench_now_s();
	struct dev *d = lookup(id, (size_t)(slash - id));
	if (!d) {
		bad++;
		return;
	}
	if (!d->bits) {
		d->bits = calloc(SEQ_BITS / 8, 1);
		if (!d->bits) {
			fprintf(stderr, "counter: out of memory\n");
			exit(1);
		}
		d->first_seq = seq;
	}
	if (seq < d->first_seq || seq - d->first_seq >= (int64_t)SEQ_BITS) {
		out_of_range++;
		return;
	}
	uint64_t off = (uint64_t)(seq - d->first_seq);
	uint8_t bit = (uint8_t)(1u << (off & 7));
	if (d->bits[off >> 3] & bit) {
		d->dups++;
		return;
	}
	d->bits[off >> 3] |= bit;
	d->unique++;
	if (seq < d->min_seq) {
		d->min_seq = seq;
	}
	if (seq > d->max_seq) {
		d->max_seq = seq;
	}
	if (phase == 1) {
		d->in_window++;
	}
}

static void on_connect(struct mosquitto *m, void *ctx, int rc)
{
	(void)ctx;
	if (rc != 0) {
		fprintf(stderr, "counter: connection refused (%s)\n", mosquitto_connack_string(rc));
		stop = 1;
		return;
	}
	if (mosquitto_subscribe(m, NULL, "devices/+/telemetry", 1) != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "counter: subscribe failed\n");
		stop = 1;
	}
}

static void on_subscribe(struct mosquitto *m, void *ctx, int mid, int n, const int *granted)
{
	(void)m;
	(void)ctx;
	(void)mid;
	if (n != 1 || granted[0] != 1) {
		fprintf(stderr, "counter: subscription not granted at QoS 1\n");
		stop = 1;
		return;
	}
	printf("ready\n");
	fflush(stdout);
}

static void on_disconnect(struct mosquitto *m, void *ctx, int rc)
{
	(void)m;
	(void)ctx;
	/* A reconnect could miss messages: the bench must not pass over it. */
	fprintf(stderr, "counter: disconnected (rc %d)\n", rc);
	stop = 1;
}

static long arg_long(const char *s, long min, long max)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "counter: '%s' is not a number in [%ld, %ld]\n", s, min, max);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	if (argc != 10) {
		fprintf(stderr,
			"usage: counter HOST PORT CAFILE CERT KEY CLIENT_ID EXPECT WINDOW_S "
			"RAMP_TIMEOUT_S\n");
		return 2;
	}
	int port = (int)arg_long(argv[2], 1, 65535);
	expect = arg_long(argv[7], 1, 100000);
	long window = arg_long(argv[8], 1, 3600);
	long ramp_timeout = arg_long(argv[9], 1, 3600);
	table = calloc(TABLE_SIZE, sizeof(*table));
	if (!table) {
		fprintf(stderr, "counter: out of memory\n");
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);

	mosquitto_lib_init();
	struct mosquitto *m = bench_tls_client(argv[6], NULL, argv[3], argv[4], argv[5]);
	if (!m) {
		fprintf(stderr, "counter: TLS setup failed\n");
		return 1;
	}
	mosquitto_connect_callback_set(m, on_connect);
	mosquitto_subscribe_callback_set(m, on_subscribe);
	mosquitto_message_callback_set(m, on_message);
	mosquitto_disconnect_callback_set(m, on_disconnect);
	if (mosquitto_connect(m, argv[1], port, 60) != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "counter: cannot connect to %s:%d\n", argv[1], port);
		return 1;
	}
	double started = bench_now_s();
	double ramp_end = 0;
	int failed = 0;
	double drain_start = 0;
	while (!stop) {
		int rc = mosquitto_loop(m, 100, 1000);
		if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
			if (!stop) {
				fprintf(stderr, "counter: %s\n", mosquitto_strerror(rc));
			}
			failed = 1;
			break;
		}
		double t = bench_now_s();
		if (drain) {
			if (drain_start == 0) {
				drain_start = t;
			}
			if ((t - last_msg >= 3.0 && t - drain_start >= 3.0) ||
			    t - drain_start > 120) {
				break;
			}
		}
		if (phase == 0 && (long)devices_seen >= expect) {
			phase = 1;
			window_start = t;
			ramp_end = t;
			printf("all_seen after %.1f s\n", t - started);
			fflush(stdout);
		} else if (phase == 0 && t - started > (double)ramp_timeout) {
			printf("window none: %zu of %ld devices seen after %ld s\n", devices_seen,
			       expect, ramp_timeout);
			fflush(stdout);
			phase = 2;
		} else if (phase == 1 && t - window_start >= (double)window) {
			phase = 2;
			uint64_t sum = 0, minv = UINT64_MAX;
			for (size_t i = 0; i < TABLE_SIZE; i++) {
				if (table[i].id[0]) {
					sum += table[i].in_window;
					if (table[i].in_window < minv) {
						minv = table[i].in_window;
					}
				}
			}
			printf("window seconds=%.1f ramp=%.1f messages=%llu per_s=%.1f min_per_device=%llu "
			       "lag_mean=%.2f lag_max=%.2f\n",
			       t - window_start, ramp_end - started, (unsigned long long)sum,
			       (double)sum / (t - window_start), (unsigned long long)minv,
			       lag_n ? lag_sum / (double)lag_n : 0.0, lag_max);
			fflush(stdout);
		}
	}
	uint64_t unique = 0, dups = 0, gaps = 0;
	size_t gappy = 0;
	for (size_t i = 0; i < TABLE_SIZE; i++) {
		struct dev *d = &table[i];
		if (!d->id[0]) {
			continue;
		}
		unique += d->unique;
		dups += d->dups;
		if (d->unique > 0) {
			uint64_t span = (uint64_t)(d->max_seq - d->min_seq + 1);
			if (span > d->unique) {
				gaps += span - d->unique;
				gappy++;
			}
		}
		free(d->bits);
	}
	printf("total drain=%.1f devices=%zu received=%llu unique=%llu dups=%llu gaps=%llu gappy_devices=%zu "
	       "bad=%llu out_of_range=%llu\n",
	       drain_start > 0 ? bench_now_s() - drain_start : 0.0, devices_seen,
	       (unsigned long long)received, (unsigned long long)unique, (unsigned long long)dups,
	       (unsigned long long)gaps, gappy, (unsigned long long)bad,
	       (unsigned long long)out_of_range);
	fflush(stdout);
	mosquitto_disconnect(m);
	mosquitto_destroy(m);
	mosquitto_lib_cleanup();
	free(table);
	return failed;
}
