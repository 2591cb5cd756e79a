/* ingest.c: moatd's MQTT side, the reader: a thread that listens to the devices' topics
 * and the broker's security events as the service identity and only queues what arrives,
 * so the MQTT loop never waits for the disk; ingest_store.c's writer thread records it.
 * The session is moat_opclient's (src/fleet/opclient.c), the same verified TLS client
 * `moat watch` uses, with client id "<identity>:ingest-<host>-<port>" (one per moatd) and,
 * as a service, shared subscriptions ($share/moatd/...), so several moatds split the
 * load. The session is kept by the broker for [monitor] ingest_session after the
 * connection is lost (default 2 min; 0: clean), so what devices publish at QoS 1 while a
 * moatd that died (a crash, SIGKILL) comes back is queued by the broker (up to its
 * max_queued_messages) and recorded then; what it had received and not yet written is lost
 * (libmosquitto acknowledges on receipt). The backlog, arriving at once, is marked replayed
 * so the rate rule does not take it for a flood. A moatd stopped on purpose ends its
 * session: with several moatds the broker would otherwise go on giving the stopped one its
 * share (Mosquitto's shared subscriptions count offline members) until the session expires.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ingest_internal.h"
#include "moat/deploy.h"
#include "moat/fsutil.h"
#include "moat/log.h"
#include "moat/opclient.h"
#include "moat/server.h"
#include "moat/timeutil.h"
#include "moat/topic.h"
#include "moat/update_schema.h"

#define INGEST_CONNECT_TIMEOUT_MS 5000
#define INGEST_POLL_MS 500
/* Client id "<identity>:ingest-<host>-<port>" (moat_opclient_instance_suffix: never
 * `moat watch`'s or `moat cmd`'s session, nor another moatd's). */
#define INGEST_CLIENT_WHAT "ingest"
#define INGEST_BACKOFF_MIN_MS 1000
#define INGEST_BACKOFF_MAX_MS 30000
/* A resumed session's backlog comes first, as fast as the broker sends it: what arrives
 * until the first quiet poll, and at most this long after the connection, is the backlog. */
#define INGEST_REPLAY_MAX_MS 10000

/* Sleeps ms in small steps so a stop request is seen quickly. */
static void nap(struct moat_ingest *ing, int64_t ms)
{
	int64_t end = moat_time_mono_ms() + ms;
	while (!ing->stop && moat_time_mono_ms() < end) {
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

bool ingest_push(struct moat_ingest *ing, struct ingest_item *it)
{
	bool ok;
	pthread_mutex_lock(&ing->lock);
	ing->received += it->topic ? 1 : 0;
	ing->bytes_received += it->topic ? it->len : 0;
	ok = ing->queued < (uint64_t)ing->set.queue_max || !it->topic; /* moatd's own events
									    always fit */
	if (ok) {
		if (ing->tail) {
			ing->tail->next = it;
		} else {
			ing->head = it;
		}
		ing->tail = it;
		ing->queued++;
		pthread_cond_signal(&ing->cond);
	} else {
		ing->dropped++;
	}
	pthread_mutex_unlock(&ing->lock);
	if (!ok) {
		ingest_item_free(it);
	}
	return ok;
}

void ingest_item_free(struct ingest_item *it)
{
	if (it) {
		free(it->ev);
		free(it);
	}
}

static void enqueue_message(struct moat_ingest *ing, const char *topic, const void *payload,
			    size_t len, bool replayed)
{
	size_t tlen = strlen(topic);
	struct ingest_item *it = malloc(sizeof(*it) + tlen + 1 + len + 1);
	if (!it) {
		pthread_mutex_lock(&ing->lock);
		ing->received++;
		ing->bytes_received += len;
		ing->dropped++;
		pthread_mutex_unlock(&ing->lock);
		return;
	}
	memset(it, 0, sizeof(*it));
	char *t = (char *)(it + 1);
	memcpy(t, topic, tlen + 1);
	char *p = t + tlen + 1;
	if (len) {
		memcpy(p, payload, len);
	}
	p[len] = '\0';
	it->topic = t;
	it->payload = p;
	it->len = len;
	it->at_ms = moat_time_wall_ms();
	it->mono_ms = moat_time_mono_ms();
	it->replayed = replayed;
	(void)ingest_push(ing, it);
}

void moat_ingest_event(struct moat_ingest *ing, const struct moat_security_event *ev)
{
	if (!ing) {
		return;
	}
	struct ingest_item *it = calloc(1, sizeof(*it));
	struct moat_security_event *copy = malloc(sizeof(*copy));
	if (!it || !copy) {
		free(it);
		free(copy);
		pthread_mutex_lock(&ing->lock);
		ing->dropped++;
		pthread_mutex_unlock(&ing->lock);
		return;
	}
	*copy = *ev;
	copy->seq = 0;
	snprintf(copy->source, sizeof(copy->source), "moatd");
	snprintf(copy->run_id, sizeof(copy->run_id), "%s", ing->run_id);
	if (copy->time_ms == 0) {
		copy->time_ms = moat_time_wall_ms();
	}
	it->ev = copy;
	it->at_ms = copy->time_ms;
	it->mono_ms = moat_time_mono_ms();
	(void)ingest_push(ing, it);
}

/* The running ingest, for moat_server_security_event: one per moatd. */
static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;
static struct moat_ingest *running;

void moat_server_security_event(const char *kind, enum moat_severity sev, const char *identity,
				const char *address, const char *evidence)
{
	struct moat_security_event ev;
	memset(&ev, 0, sizeof(ev));
	snprintf(ev.kind, sizeof(ev.kind), "%s", kind ? kind : "");
	ev.severity = sev;
	snprintf(ev.identity, sizeof(ev.identity), "%s", identity ? identity : "");
	snprintf(ev.address, sizeof(ev.address), "%s", address ? address : "");
	snprintf(ev.evidence, sizeof(ev.evidence), "%s", evidence ? evidence : "");
	pthread_mutex_lock(&running_lock);
	if (running) {
		moat_ingest_event(running, &ev);
	}
	pthread_mutex_unlock(&running_lock);
}

const char *moat_ingest_run_id(const struct moat_ingest *ing)
{
	return ing->run_id;
}

void moat_ingest_stats(struct moat_ingest *ing, struct moat_ingest_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!ing) {
		return;
	}
	pthread_mutex_lock(&ing->lock);
	out->received = ing->received;
	out->bytes_received = ing->bytes_received;
	out->recorded = ing->recorded;
	out->dropped = ing->dropped;
	out->queued = ing->queued;
	out->lag_ms = ing->head ? moat_time_mono_ms() - ing->head->mono_ms : 0;
	out->events = ing->events;
	out->anomalies = ing->anomalies;
	out->batches = ing->batches;
	pthread_mutex_unlock(&ing->lock);
}

static void *run(void *arg)
{
	struct moat_ingest *ing = arg;
	struct moat_deploy *d = NULL;
	int64_t backoff = INGEST_BACKOFF_MIN_MS;
	static const char *const topics[MOAT_INGEST_TOPIC_COUNT] = MOAT_INGEST_TOPICS;
	while (!ing->stop) {
		struct moat_err err = {0};
		struct moat_opclient *c = NULL;
		if (!d && moat_deploy_open(ing->dir, MOAT_DEPLOY_READ, &d, &err) != 0) {
			moat_log(MOAT_LOG_ERROR, "event=ingest_error error=\"%s\"", err.msg);
			d = NULL;
			nap(ing, backoff);
			backoff = backoff * 2 > INGEST_BACKOFF_MAX_MS ? INGEST_BACKOFF_MAX_MS
								      : backoff * 2;
			continue;
		}
		/* A service shares the subscriptions: moatds of one deployment split the
		 * messages between them instead of each recording every one. */
		char shared[MOAT_INGEST_TOPIC_COUNT][MOAT_TOPIC_BUF_LEN];
		const char *filters[MOAT_INGEST_TOPIC_COUNT];
		/* moat.conf's [client] host: the broker's name from its own machine; a kept
		 * session ([monitor] ingest_session): what devices publish while this moatd is
		 * away after a crash waits in the broker for it */
		uint32_t expiry_s = (uint32_t)((ing->set.session_ms + 999) / 1000);
		bool ok = moat_opclient_connect_session(d, ing->as, ing->client_suffix, NULL,
							INGEST_CONNECT_TIMEOUT_MS, expiry_s, &c,
							NULL, &err) == 0;
		for (size_t i = 0; i < MOAT_INGEST_TOPIC_COUNT; i++) {
			filters[i] = topics[i];
			if (ok && moat_opclient_role(c) == MOAT_ROLE_SERVICE) {
				snprintf(shared[i], sizeof(shared[i]),
					 MOAT_SHARE_PREFIX MOAT_INGEST_SHARE_GROUP "/%s",
					 topics[i]);
				filters[i] = shared[i];
			}
		}
		if (!ok || moat_opclient_subscribe(c, filters, MOAT_INGEST_TOPIC_COUNT,
						   INGEST_CONNECT_TIMEOUT_MS, &err) != 0) {
			moat_log(MOAT_LOG_WARN,
				 "event=ingest_disconnected as=%s error=\"%s\" retry_ms=%lld",
				 ing->as, err.msg, (long long)backoff);
			moat_opclient_close(c);
			nap(ing, backoff);
			backoff = backoff * 2 > INGEST_BACKOFF_MAX_MS ? INGEST_BACKOFF_MAX_MS
								      : backoff * 2;
			continue;
		}
		moat_log(MOAT_LOG_INFO, "event=ingest_subscribed as=%s topic=%s session=%s",
			 ing->as, filters[0],
			 expiry_s == 0			    ? "clean"
			 : moat_opclient_session_present(c) ? "resumed"
							    : "new");
		backoff = INGEST_BACKOFF_MIN_MS;
		uint64_t client_dropped = 0;
		bool replaying = moat_opclient_session_present(c);
		int64_t replay_end = moat_time_mono_ms() + INGEST_REPLAY_MAX_MS;
		for (;;) {
			const char *topic = NULL;
			const void *payload = NULL;
			size_t len = 0;
			int rc = moat_opclient_next(c, INGEST_POLL_MS, &ing->stop, &topic, &payload,
						    &len, &err);
			uint64_t n = moat_opclient_dropped(c);
			if (n != client_dropped) {
				/* the client's own queue overflowed: lost too, and said so */
				pthread_mutex_lock(&ing->lock);
				ing->received += n - client_dropped;
				ing->dropped += n - client_dropped;
				pthread_mutex_unlock(&ing->lock);
				client_dropped = n;
			}
			if (rc == 0) {
				replaying = replaying && moat_time_mono_ms() < replay_end;
				enqueue_message(ing, topic, payload, len, replaying);
			} else if (rc == MOAT_ETIMEOUT) {
				replaying = false; /* the backlog, if any, is in */
				continue;
			} else {
				if (rc != MOAT_EINTR) {
					moat_log(MOAT_LOG_WARN,
						 "event=ingest_disconnected as=%s error=\"%s\"",
						 ing->as, err.msg);
				}
				break;
			}
		}
		if (ing->stop) {
			/* stopped on purpose: the session ends, so the broker gives other moatds
			 * of the deployment everything and queues nothing for this one; a moatd
			 * that dies keeps it for ingest_session */
			moat_opclient_end(c);
			break;
		}
		moat_opclient_close(c);
		nap(ing, backoff);
	}
	moat_deploy_close(d);
	return NULL;
}

int moat_ingest_start(const struct moat_ingest_opts *opts, struct moat_ingest **out,
		      struct moat_err *err)
{
	int rc;
	struct moat_deploy *d = NULL;
	*out = NULL;
	struct moat_ingest *ing = calloc(1, sizeof(*ing));
	if (!ing) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&ing->lock, NULL);
	pthread_cond_init(&ing->cond, NULL);
	ing->events_fd = opts->has_events_fd ? opts->events_fd : -1;
	ing->broker_log_fd = opts->has_broker_log_fd ? opts->broker_log_fd : -1;
	unsigned char rnd[8];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		rc = moat_err_set(err, MOAT_EIO, "getrandom failed");
		goto out;
	}
	for (size_t i = 0; i < sizeof(rnd); i++) {
		snprintf(&ing->run_id[2 * i], 3, "%02x", rnd[i]);
	}
	/* Open once here so a bad directory or configuration fails moatd's start. */
	if ((rc = moat_deploy_open(opts->dir, MOAT_DEPLOY_READ, &d, err)) != 0) {
		goto out;
	}
	const struct moat_config *cfg = moat_deploy_config(d);
	if ((rc = moat_monitor_settings_load(cfg, &ing->set, err)) != 0) {
		goto out;
	}
	if (ing->set.zone_check) {
		ing->net = calloc(1, sizeof(*ing->net));
		if (!ing->net) {
			rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
			goto out;
		}
		if ((rc = moat_net_policy_from_config(cfg, ing->net, err)) != 0) {
			goto out;
		}
	}
	const char *as = opts->as;
	if (!as) {
		as = moat_config_get(cfg, "server", "service_identity");
	}
	if (!as) {
		as = MOAT_SERVER_DEFAULT_SERVICE_IDENTITY;
	}
	if ((rc = moat_identity_name_check(as, err)) != 0) {
		moat_err_prefix(err, "service identity");
		goto out;
	}
	snprintf(ing->as, sizeof(ing->as), "%s", as);
	moat_opclient_instance_suffix(INGEST_CLIENT_WHAT,
				      opts->port > 0 ? opts->port
						     : moat_deploy_settings(d)->server_port,
				      ing->client_suffix, sizeof(ing->client_suffix));
	if ((rc = moat_path_join(ing->dir, sizeof(ing->dir), err, "%s", moat_deploy_dir(d))) != 0) {
		goto out;
	}
	if (pthread_create(&ing->writer, NULL, ingest_writer_run, ing) != 0) {
		rc = moat_err_set(err, MOAT_EIO, "cannot start the ingest writer thread");
		goto out;
	}
	ing->writer_started = true;
	if (pthread_create(&ing->reader, NULL, run, ing) != 0) {
		rc = moat_err_set(err, MOAT_EIO, "cannot start the ingest thread");
		goto out;
	}
	ing->reader_started = true;
	pthread_mutex_lock(&running_lock);
	running = ing;
	pthread_mutex_unlock(&running_lock);
	moat_log(MOAT_LOG_INFO, "event=ingest_started run_id=%s queue_max=%lld batch_max=%lld",
		 ing->run_id, (long long)ing->set.queue_max, (long long)ing->set.batch_max);
	*out = ing;
	ing = NULL;
	rc = 0;
out:
	moat_deploy_close(d);
	moat_ingest_stop(ing);
	return rc;
}

void moat_ingest_stop(struct moat_ingest *ing)
{
	if (!ing) {
		return;
	}
	pthread_mutex_lock(&running_lock);
	if (running == ing) {
		running = NULL;
	}
	pthread_mutex_unlock(&running_lock);
	/* the reader first, so the writer records everything it queued */
	if (ing->reader_started) {
		ing->stop = 1;
		pthread_join(ing->reader, NULL);
	}
	if (ing->writer_started) {
		pthread_mutex_lock(&ing->lock);
		ing->writer_stop = true;
		pthread_cond_signal(&ing->cond);
		pthread_mutex_unlock(&ing->lock);
		pthread_join(ing->writer, NULL);
	}
	while (ing->head) {
		struct ingest_item *it = ing->head;
		ing->head = it->next;
		ingest_item_free(it);
	}
	pthread_mutex_destroy(&ing->lock);
	pthread_cond_destroy(&ing->cond);
	if (ing->events_fd >= 0) {
		close(ing->events_fd);
	}
	if (ing->broker_log_fd >= 0) {
		close(ing->broker_log_fd);
	}
	free(ing->net);
	free(ing);
}
