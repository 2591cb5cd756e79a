/* ingest.c: moatd's MQTT side: a thread with its own deployment handle (so its own
 * registry connection; SQLite serializes it against the HTTPS thread and the CLI) that
 * listens to devices' diagnostics as the service identity and records update events.
 * The session is moat_opclient's (src/fleet/opclient.c), the same verified TLS client
 * `moat watch` uses, with client id "<identity>:ingest" and, as a service, a shared
 * subscription; this file adds only reconnection and the event handling.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moat/deploy.h"
#include "moat/fsutil.h"
#include "moat/log.h"
#include "moat/opclient.h"
#include "moat/rollout.h"
#include "moat/server.h"
#include "moat/timeutil.h"
#include "moat/topic.h"
#include "moat/update_schema.h"

#define INGEST_CONNECT_TIMEOUT_MS 5000
#define INGEST_POLL_MS 500
/* Client id "<identity>:ingest" (never `moat watch`'s or `moat cmd`'s session) and the
 * shared subscription's name. */
#define INGEST_CLIENT_SUFFIX "ingest"
#define INGEST_SHARE_NAME "moatd-ingest"
#define INGEST_BACKOFF_MIN_MS 1000
#define INGEST_BACKOFF_MAX_MS 30000

struct moat_ingest {
	pthread_t thread;
	bool started;
	volatile int stop;
	char dir[PATH_MAX];
	char as[MOAT_ID_BUF_LEN];
};

/* Sleeps ms in small steps so a stop request is seen quickly. */
static void nap(struct moat_ingest *ing, int64_t ms)
{
	int64_t end = moat_time_mono_ms() + ms;
	while (!ing->stop && moat_time_mono_ms() < end) {
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

/* A security event of the broker plugin (only the broker publishes on moat/events/): a
 * device's ACL denial, rate limiting or refused authentication is recorded for the
 * rollouts that halt on them (--halt-on-events). */
static void handle_security_event(struct moat_deploy *d, const void *payload, size_t len)
{
	struct moat_err err = {0};
	bool signal = false;
	char kind[32];
	char id[MOAT_ID_BUF_LEN];
	if (moat_security_signal_parse(payload, len, &signal, kind, id, &err) != 0 || !signal) {
		return;
	}
	struct moat_identity ident;
	struct moat_registry *reg = moat_deploy_registry(d);
	if (moat_registry_identity_get(reg, id, &ident, &err) != 0 ||
	    ident.role != MOAT_ROLE_DEVICE) {
		return;
	}
	if (moat_registry_security_event_record(reg, id, kind, moat_time_now(), &err) != 0) {
		moat_log(MOAT_LOG_WARN, "event=security_event_not_recorded id=%s error=\"%s\"", id,
			 err.msg);
		return;
	}
	moat_log(MOAT_LOG_DEBUG, "event=security_signal id=%s kind=%s", id, kind);
}

static void handle(struct moat_deploy *d, const char *topic, const void *payload, size_t len)
{
	struct moat_topic t;
	struct moat_err err = {0};
	if (moat_topic_parse(topic, &t, &err) == 0 && t.kind == MOAT_TOPIC_EVENT) {
		handle_security_event(d, payload, len);
		return;
	}
	if (moat_topic_parse(topic, &t, &err) != 0 || t.kind != MOAT_TOPIC_DIAGNOSTICS) {
		return;
	}
	struct moat_update_event ev;
	memset(&ev, 0, sizeof(ev));
	snprintf(ev.device, sizeof(ev.device), "%s", t.id);
	ev.at = moat_time_now();
	int rc = moat_update_event_parse(payload, len, &ev, &err);
	if (rc == MOAT_ENOENT) {
		return; /* diagnostics of another kind */
	}
	if (rc != 0) {
		moat_log(MOAT_LOG_WARN, "event=update_event_refused id=%s error=\"%s\"", t.id,
			 err.msg);
		return;
	}
	if (moat_registry_update_event_record(moat_deploy_registry(d), &ev, &err) != 0) {
		moat_log(MOAT_LOG_WARN, "event=update_event_not_recorded id=%s error=\"%s\"", t.id,
			 err.msg);
		return;
	}
	moat_log(MOAT_LOG_INFO, "event=update_event id=%s stage=%s version=%s running=%s reason=%s",
		 ev.device, moat_update_stage_name(ev.stage), ev.version[0] ? ev.version : "-",
		 ev.running[0] ? ev.running : "-", ev.reason[0] ? ev.reason : NULL);
}

static void *run(void *arg)
{
	struct moat_ingest *ing = arg;
	struct moat_deploy *d = NULL;
	int64_t backoff = INGEST_BACKOFF_MIN_MS;
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
		/* A service shares the subscription: moatds of one deployment split the reports
		 * between them instead of each recording every one. */
		const char *filters[] = {MOAT_INGEST_TOPIC, MOAT_INGEST_EVENTS_TOPIC};
		/* moat.conf's [client] host: the broker's name from its own machine */
		if (moat_opclient_connect(d, ing->as, INGEST_CLIENT_SUFFIX, NULL,
					  INGEST_CONNECT_TIMEOUT_MS, &c, NULL, &err) == 0 &&
		    moat_opclient_role(c) == MOAT_ROLE_SERVICE) {
			filters[0] = MOAT_SHARE_PREFIX INGEST_SHARE_NAME "/" MOAT_INGEST_TOPIC;
			filters[1] = MOAT_SHARE_PREFIX INGEST_SHARE_NAME
				"/" MOAT_INGEST_EVENTS_TOPIC;
		}
		if (!c ||
		    moat_opclient_subscribe(c, filters, 2, INGEST_CONNECT_TIMEOUT_MS, &err) != 0) {
			moat_log(MOAT_LOG_WARN,
				 "event=ingest_disconnected as=%s error=\"%s\" retry_ms=%lld",
				 ing->as, err.msg, (long long)backoff);
			moat_opclient_close(c);
			nap(ing, backoff);
			backoff = backoff * 2 > INGEST_BACKOFF_MAX_MS ? INGEST_BACKOFF_MAX_MS
								      : backoff * 2;
			continue;
		}
		moat_log(MOAT_LOG_INFO, "event=ingest_subscribed as=%s topic=%s", ing->as,
			 MOAT_INGEST_TOPIC);
		backoff = INGEST_BACKOFF_MIN_MS;
		for (;;) {
			const char *topic = NULL;
			const void *payload = NULL;
			size_t len = 0;
			int rc = moat_opclient_next(c, INGEST_POLL_MS, &ing->stop, &topic, &payload,
						    &len, &err);
			if (rc == 0) {
				handle(d, topic, payload, len);
			} else if (rc == MOAT_ETIMEOUT) {
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
		moat_opclient_close(c);
		if (!ing->stop) {
			nap(ing, backoff);
		}
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
	/* Open once here so a bad directory or configuration fails moatd's start. */
	if ((rc = moat_deploy_open(opts->dir, MOAT_DEPLOY_READ, &d, err)) != 0) {
		goto out;
	}
	const char *as = opts->as;
	if (!as) {
		as = moat_config_get(moat_deploy_config(d), "server", "service_identity");
	}
	if (!as) {
		as = MOAT_SERVER_DEFAULT_SERVICE_IDENTITY;
	}
	if ((rc = moat_identity_name_check(as, err)) != 0) {
		moat_err_prefix(err, "service identity");
		goto out;
	}
	snprintf(ing->as, sizeof(ing->as), "%s", as);
	if ((rc = moat_path_join(ing->dir, sizeof(ing->dir), err, "%s", moat_deploy_dir(d))) != 0) {
		goto out;
	}
	if (pthread_create(&ing->thread, NULL, run, ing) != 0) {
		rc = moat_err_set(err, MOAT_EIO, "cannot start the ingest thread");
		goto out;
	}
	ing->started = true;
	*out = ing;
	ing = NULL;
	rc = 0;
out:
	moat_deploy_close(d);
	free(ing);
	return rc;
}

void moat_ingest_stop(struct moat_ingest *ing)
{
	if (!ing) {
		return;
	}
	if (ing->started) {
		ing->stop = 1;
		pthread_join(ing->thread, NULL);
	}
	free(ing);
}
