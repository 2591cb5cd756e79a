/* device.c: the device behaviour, written once for moat-agent and moat sim.
 *
 * A device produces telemetry on its interval (each message numbered and kept in the
 * queue until acknowledged), announces itself online (retained) on every connect with a
 * last will saying offline, and answers commands on devices/ID/commands/#. It knows
 * nothing about sockets: the driver hands it a struct moat_device_io to publish and
 * subscribe with, and calls it on connect, disconnect, message, PUBACK and tick.
 * Every message is built and parsed by src/core/messages.c, never by hand here.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <time.h>

#include "moat/agent_conf.h"
#include "moat/agent_update.h"
#include "moat/fsutil.h"
#include "moat/log.h"
#include "moat/messages.h"
#include "moat/timeutil.h"
#include "moat/topic.h"

#include "device_internal.h"

static void dlog(const struct moat_device *dev, enum moat_log_level level, const char *fmt, ...)
	MOAT_PRINTF(3, 4);
static void dlog(const struct moat_device *dev, enum moat_log_level level, const char *fmt, ...)
{
	va_list ap;
	if (dev->quiet && level < MOAT_LOG_WARN) {
		return;
	}
	va_start(ap, fmt);
	moat_vlog(level, dev->conf.id, fmt, ap);
	va_end(ap);
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Persists the bound below which every used sequence number lies. */
static int reserve_seq(struct moat_device *dev, int64_t bound, struct moat_err *err)
{
	if (bound > MOAT_MSG_SEQ_MAX) {
		bound = MOAT_MSG_SEQ_MAX;
	}
	if (dev->seq_path[0]) {
		char text[32];
		int n = snprintf(text, sizeof(text), "%lld\n", (long long)bound);
		struct moat_fs_opts opts = {.no_fsync = dev->seq_no_fsync};
		int rc =
			moat_fs_write_atomic_opts(dev->seq_path, text, (size_t)n, 0600, &opts, err);
		if (rc != 0) {
			return rc;
		}
	}
	dev->seq_reserved = bound;
	return 0;
}

static int load_seq(struct moat_device *dev, struct moat_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int64_t v = 1;
	if (dev->seq_path[0] && moat_fs_exists(dev->seq_path)) {
		int rc = moat_fs_read_all(dev->seq_path, 64, &text, &len, err);
		if (rc != 0) {
			return rc;
		}
		while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ')) {
			text[--len] = '\0';
		}
		rc = moat_int_parse(text, 1, MOAT_MSG_SEQ_MAX, &v, err);
		free(text);
		if (rc != 0) {
			moat_err_prefix(err, "%s", dev->seq_path);
			return rc;
		}
	}
	int64_t qmax = moat_queue_max_seq(&dev->queue);
	if (qmax >= v) {
		v = qmax + 1;
	}
	dev->next_seq = v;
	return reserve_seq(dev, v + MOAT_AGENT_SEQ_BLOCK, err);
}

/* The interval an update_interval command set before a restart, when state_dir/interval
 * holds one. A file that does not hold a valid interval is ignored with a warning (the
 * configured interval is a safe fallback; a device must not stop over it). */
static void load_interval(struct moat_device *dev)
{
	char *text = NULL;
	size_t len = 0;
	int64_t v = 0;
	struct moat_err err;
	if (!dev->interval_path[0] || !moat_fs_exists(dev->interval_path)) {
		return;
	}
	if (moat_fs_read_all(dev->interval_path, 64, &text, &len, &err) == 0) {
		while (len > 0 && text[len - 1] == '\n') {
			text[--len] = '\0';
		}
		if (moat_int_parse(text, MOAT_MSG_UPDATE_INTERVAL_MIN, MOAT_MSG_UPDATE_INTERVAL_MAX,
				   &v, &err) != 0) {
			v = 0;
		}
	}
	free(text);
	if (v == 0) {
		dlog(dev, MOAT_LOG_WARN, "event=state_ignored file=%s error=\"%s\"",
		     dev->interval_path, err.msg);
		return;
	}
	dev->interval_ms = v * 1000;
}

static int save_interval(struct moat_device *dev, int64_t seconds, struct moat_err *err)
{
	char text[32];
	struct moat_fs_opts opts = {.no_fsync = dev->seq_no_fsync};
	if (!dev->interval_path[0]) {
		return 0;
	}
	int n = snprintf(text, sizeof(text), "%lld\n", (long long)seconds);
	return moat_fs_write_atomic_opts(dev->interval_path, text, (size_t)n, 0600, &opts, err);
}

int moat_device_init(struct moat_device *dev, const struct moat_agent_conf *conf,
		     const struct moat_device_io *io, int64_t now_mono_ms, struct moat_err *err)
{
	int rc;
	char qpath[PATH_MAX];
	memset(dev, 0, sizeof(*dev));
	dev->queue.fd = -1;
	dev->conf = *conf;
	dev->io = *io;
	dev->interval_ms = conf->interval_ms;
	dev->inflight_limit = MOAT_AGENT_INFLIGHT_MAX;
	dev->seq_no_fsync = conf->no_fsync;
	dev->quiet = conf->quiet;
	dev->start_mono_ms = now_mono_ms;
	dev->next_telemetry_ms = now_mono_ms;
	/* seed from the identity so simulated devices differ, and from the clock so restarts do */
	uint64_t seed = (uint64_t)wall_ms();
	for (const char *p = conf->id; *p; p++) {
		seed = seed * 1099511628211ULL ^ (uint8_t)*p;
	}
	moat_sensor_init(&dev->sensor, &conf->sensor, seed);
	if (conf->state_dir[0]) {
		if ((rc = moat_fs_mkdirs(conf->state_dir, 0700, err)) != 0 ||
		    (rc = moat_path_join(dev->seq_path, sizeof(dev->seq_path), err, "%s/seq",
					 conf->state_dir)) != 0 ||
		    (rc = moat_path_join(dev->interval_path, sizeof(dev->interval_path), err,
					 "%s/interval", conf->state_dir)) != 0 ||
		    (rc = moat_path_join(qpath, sizeof(qpath), err, "%s/queue", conf->state_dir)) !=
			    0) {
			return rc;
		}
		load_interval(dev);
		rc = moat_queue_open(&dev->queue, qpath, (size_t)conf->queue_max, dev->seq_no_fsync,
				     err);
	} else {
		rc = moat_queue_open(&dev->queue, NULL, (size_t)conf->queue_max, true, err);
	}
	if (rc != 0) {
		return rc;
	}
	if ((rc = load_seq(dev, err)) != 0) {
		moat_queue_close(&dev->queue);
		return rc;
	}
	if (dev->queue.count > 0) {
		dlog(dev, MOAT_LOG_INFO, "event=queue_loaded records=%zu next_seq=%lld",
		     dev->queue.count, (long long)dev->next_seq);
	}
	return 0;
}

void moat_device_free(struct moat_device *dev)
{
	moat_queue_close(&dev->queue);
}

static int topic_of(const struct moat_device *dev, enum moat_topic_kind kind, char *buf,
		    size_t size, struct moat_err *err)
{
	return moat_topic_build(kind, dev->conf.id, NULL, buf, size, err);
}

int moat_device_will(const struct moat_device *dev, char *topic, size_t topic_size, char *payload,
		     size_t payload_size, size_t *out_len, struct moat_err *err)
{
	struct moat_msg_status st;
	int rc;
	memset(&st, 0, sizeof(st));
	snprintf(st.device_id, sizeof(st.device_id), "%s", dev->conf.id);
	st.online = false;
	st.has_timestamp = false;
	if ((rc = topic_of(dev, MOAT_TOPIC_STATUS, topic, topic_size, err)) != 0) {
		return rc;
	}
	return moat_msg_status_build(&st, payload, payload_size, out_len, err);
}

static int publish_status(struct moat_device *dev, bool online, int *out_mid, struct moat_err *err)
{
	struct moat_msg_status st;
	char topic[MOAT_TOPIC_BUF_LEN];
	char payload[MOAT_MSG_STATUS_MAX_BYTES];
	size_t len = 0;
	int mid = 0;
	int rc;
	memset(&st, 0, sizeof(st));
	snprintf(st.device_id, sizeof(st.device_id), "%s", dev->conf.id);
	st.online = online;
	st.has_timestamp = true;
	st.timestamp_ms = wall_ms();
	if (dev->io.local_addr) {
		dev->io.local_addr(dev->io.ctx, st.ip_address, sizeof(st.ip_address));
	}
	snprintf(st.agent_version, sizeof(st.agent_version), "%s", MOAT_VERSION);
	if ((rc = topic_of(dev, MOAT_TOPIC_STATUS, topic, sizeof(topic), err)) != 0 ||
	    (rc = moat_msg_status_build(&st, payload, sizeof(payload), &len, err)) != 0) {
		return rc;
	}
	rc = dev->io.publish(dev->io.ctx, topic, payload, len, 1, true, &mid);
	if (out_mid) {
		*out_mid = mid;
	}
	return rc;
}

/* Sends queued telemetry, oldest first, keeping at most dev->inflight_limit unacked. */
static void pump(struct moat_device *dev)
{
	char topic[MOAT_TOPIC_BUF_LEN];
	size_t inflight = 0;
	if (!dev->connected || dev->queue.count == 0 || dev->now_ms < dev->pump_hold_until_ms) {
		return;
	}
	if (topic_of(dev, MOAT_TOPIC_TELEMETRY, topic, sizeof(topic), NULL) != 0) {
		return;
	}
	for (size_t i = 0; i < dev->queue.count && inflight < dev->inflight_limit; i++) {
		struct moat_queue_rec *r = moat_queue_at(&dev->queue, i);
		if (r->acked) {
			continue;
		}
		if (r->mid != 0) {
			inflight++;
			continue;
		}
		int mid = 0;
		if (dev->io.publish(dev->io.ctx, topic, r->payload, r->len, 1, false, &mid) != 0) {
			/* the session is failing; the driver will notice and reconnect */
			return;
		}
		r->mid = mid;
		inflight++;
	}
}

int moat_device_on_connect(struct moat_device *dev, int64_t now_mono_ms, struct moat_err *err)
{
	char filter[MOAT_TOPIC_BUF_LEN];
	int rc;
	(void)now_mono_ms;
	int n = snprintf(filter, sizeof(filter), "devices/%s/commands/#", dev->conf.id);
	if (n < 0 || (size_t)n >= sizeof(filter)) {
		return moat_err_set(err, MOAT_EINVAL, "command filter too long");
	}
	if ((rc = dev->io.subscribe(dev->io.ctx, filter, 1)) != 0) {
		return moat_err_set(err, rc, "subscribe %s failed", filter);
	}
	if ((rc = publish_status(dev, true, NULL, err)) != 0) {
		return rc;
	}
	dev->connected = true;
	dlog(dev, MOAT_LOG_INFO, "event=online queued=%zu next_seq=%lld", dev->queue.count,
	     (long long)dev->next_seq);
	pump(dev);
	return 0;
}

void moat_device_on_disconnect(struct moat_device *dev, bool clean)
{
	struct moat_err err;
	bool was = dev->connected;
	dev->connected = false;
	if (moat_queue_spill(&dev->queue, &err) != 0) {
		dev->stats.errors++;
		dlog(dev, MOAT_LOG_ERROR, "event=queue_error error=\"%s\"", err.msg);
	}
	if (was) {
		dlog(dev, clean ? MOAT_LOG_INFO : MOAT_LOG_WARN,
		     "event=disconnected clean=%s queued=%zu", clean ? "yes" : NULL,
		     dev->queue.count);
	}
}

void moat_device_on_publish_refused(struct moat_device *dev, int mid, int reason_code)
{
	struct moat_err err;
	struct moat_queue_rec *r = moat_queue_refused(&dev->queue, mid);
	if (!r) {
		return; /* not telemetry (status, responses): nothing queued to keep */
	}
	dev->stats.errors++;
	/* The broker's limit was reached: halve the window (once per back-off, for the burst
	 * of refusals one full window brings), so a backlog replays near the rate the broker
	 * takes instead of sending most of it twice. */
	if (dev->now_ms >= dev->pump_hold_until_ms) {
		dev->inflight_limit = dev->inflight_limit > 1 ? dev->inflight_limit / 2 : 1;
		dev->acks_in_window = 0;
	}
	dev->pump_hold_until_ms = dev->now_ms + MOAT_AGENT_REFUSED_BACKOFF_MS;
	if (r->refusals < MOAT_AGENT_REFUSALS_MAX) {
		dlog(dev, MOAT_LOG_WARN,
		     "event=telemetry_refused seq=%lld reason=0x%02x retry_in_ms=%d",
		     (long long)r->seq, (unsigned)reason_code, MOAT_AGENT_REFUSED_BACKOFF_MS);
		return;
	}
	dlog(dev, MOAT_LOG_ERROR, "event=telemetry_dropped seq=%lld reason=0x%02x refusals=%d",
	     (long long)r->seq, (unsigned)reason_code, r->refusals);
	/* give up on this one: mark it in flight under a private id and acknowledge that */
	r->mid = -1;
	moat_err_clear(&err);
	(void)moat_queue_ack(&dev->queue, -1, &err);
	if (err.code != 0) {
		dlog(dev, MOAT_LOG_ERROR, "event=queue_error error=\"%s\"", err.msg);
	}
}

void moat_device_on_publish(struct moat_device *dev, int mid)
{
	struct moat_err err;
	moat_err_clear(&err);
	if (moat_queue_ack(&dev->queue, mid, &err)) {
		dev->stats.telemetry_sent++;
		/* one more in flight for every window's worth acknowledged (not counting what
		 * was sent before the last refusal: those acks arrive during the back-off) */
		if (dev->inflight_limit < MOAT_AGENT_INFLIGHT_MAX &&
		    dev->now_ms >= dev->pump_hold_until_ms &&
		    ++dev->acks_in_window >= dev->inflight_limit) {
			dev->inflight_limit++;
			dev->acks_in_window = 0;
		}
	}
	if (err.code != 0) {
		dev->stats.errors++;
		dlog(dev, MOAT_LOG_ERROR, "event=queue_error error=\"%s\"", err.msg);
	}
	pump(dev);
}

static void produce(struct moat_device *dev, int64_t now_mono_ms)
{
	struct moat_msg_telemetry t;
	struct moat_err err;
	char payload[MOAT_MSG_TELEMETRY_MAX_BYTES];
	size_t len = 0;
	struct sysinfo si;
	memset(&t, 0, sizeof(t));
	snprintf(t.device_id, sizeof(t.device_id), "%s", dev->conf.id);
	snprintf(t.device_type, sizeof(t.device_type), "%s", dev->conf.device_type);
	t.timestamp_ms = wall_ms();
	if (moat_sensor_read(&dev->sensor, t.readings, MOAT_MSG_READINGS_MAX, &t.reading_count,
			     &t.has_signal_strength, &t.signal_strength, &err) != 0) {
		dev->stats.errors++;
		dlog(dev, MOAT_LOG_WARN, "event=sensor_error error=\"%s\"", err.msg);
		return;
	}
	if (sysinfo(&si) == 0) {
		t.has_free_heap = true;
		t.free_heap = (int64_t)si.freeram * (int64_t)si.mem_unit;
	}
	t.has_uptime_ms = true;
	t.uptime_ms = now_mono_ms - dev->start_mono_ms;
	t.has_seq = true;
	t.seq = dev->next_seq;
	if (t.seq >= dev->seq_reserved &&
	    reserve_seq(dev, t.seq + MOAT_AGENT_SEQ_BLOCK, &err) != 0) {
		/* never send a number that a restart could reuse */
		dev->stats.errors++;
		dlog(dev, MOAT_LOG_ERROR, "event=state_error error=\"%s\"", err.msg);
		return;
	}
	if (moat_msg_telemetry_build(&t, payload, sizeof(payload), &len, &err) != 0) {
		dev->stats.errors++;
		dlog(dev, MOAT_LOG_ERROR, "event=telemetry_error error=\"%s\"", err.msg);
		return;
	}
	dev->next_seq++;
	uint64_t dropped = dev->queue.dropped;
	if (moat_queue_push(&dev->queue, t.seq, payload, len, !dev->connected, &err) != 0) {
		dev->stats.errors++;
		dlog(dev, MOAT_LOG_ERROR, "event=queue_error error=\"%s\"", err.msg);
	}
	if (dev->queue.dropped != dropped) {
		dlog(dev, MOAT_LOG_WARN, "event=queue_full dropped=%llu",
		     (unsigned long long)dev->queue.dropped);
	}
	dlog(dev, MOAT_LOG_DEBUG, "event=telemetry seq=%lld queued=%zu", (long long)t.seq,
	     dev->queue.count);
}

void moat_device_tick(struct moat_device *dev, int64_t now_mono_ms)
{
	dev->now_ms = now_mono_ms;
	if (now_mono_ms >= dev->next_telemetry_ms) {
		produce(dev, now_mono_ms);
		dev->next_telemetry_ms += dev->interval_ms;
		/* after a long stall (suspend, debugger) do not burst: skip to the next slot */
		if (dev->next_telemetry_ms <= now_mono_ms) {
			dev->next_telemetry_ms = now_mono_ms + dev->interval_ms;
		}
	}
	if (dev->update_poll) {
		dev->update_poll(dev, dev->update_ctx, now_mono_ms);
	}
	pump(dev);
}

int64_t moat_device_next_ms(const struct moat_device *dev, int64_t now_mono_ms)
{
	int64_t d = dev->next_telemetry_ms - now_mono_ms;
	return d > 0 ? d : 0;
}

int moat_device_publish_offline(struct moat_device *dev, int *out_mid, struct moat_err *err)
{
	*out_mid = 0;
	if (!dev->connected) {
		return 0;
	}
	return publish_status(dev, false, out_mid, err);
}

void moat_device_persist(struct moat_device *dev)
{
	struct moat_err err;
	if (moat_queue_spill(&dev->queue, &err) != 0) {
		dlog(dev, MOAT_LOG_ERROR, "event=queue_error error=\"%s\"", err.msg);
	}
}

static void respond(struct moat_device *dev, struct moat_msg_response *r)
{
	char topic[MOAT_TOPIC_BUF_LEN];
	char payload[MOAT_MSG_RESPONSE_MAX_BYTES];
	size_t len = 0;
	int mid = 0;
	struct moat_err err;
	snprintf(r->device_id, sizeof(r->device_id), "%s", dev->conf.id);
	r->timestamp_ms = wall_ms();
	if (topic_of(dev, MOAT_TOPIC_COMMAND_RESPONSES, topic, sizeof(topic), &err) != 0 ||
	    moat_msg_response_build(r, payload, sizeof(payload), &len, &err) != 0) {
		dev->stats.errors++;
		dlog(dev, MOAT_LOG_ERROR, "event=response_error error=\"%s\"", err.msg);
		return;
	}
	if (dev->io.publish(dev->io.ctx, topic, payload, len, 1, false, &mid) != 0) {
		dev->stats.errors++;
		dlog(dev, MOAT_LOG_WARN, "event=response_error error=\"publish failed\"");
		return;
	}
	dlog(dev, MOAT_LOG_INFO, "event=command command=%s cmd_id=%s status=%s", r->command,
	     r->id[0] ? r->id : "-", r->status);
}

void moat_device_respond(struct moat_device *dev, struct moat_msg_response *r)
{
	respond(dev, r);
}

/* Copies text into dst, cutting it to fit (details are informative, never parsed). */
static void copy_cut(char *dst, size_t size, const char *text)
{
	size_t n = strnlen(text, size - 1);
	memcpy(dst, text, n);
	dst[n] = '\0';
}

static void set_detail(struct moat_msg_response *r, const char *text)
{
	copy_cut(r->detail, sizeof(r->detail), text);
}

static void do_diagnostics(struct moat_device *dev, struct moat_msg_response *r)
{
	struct moat_msg_diagnostics d;
	char topic[MOAT_TOPIC_BUF_LEN];
	char payload[MOAT_MSG_DIAGNOSTICS_MAX_BYTES];
	size_t len = 0;
	int mid = 0;
	struct moat_err err;
	moat_diag_collect(dev, &d);
	if (topic_of(dev, MOAT_TOPIC_DIAGNOSTICS, topic, sizeof(topic), &err) != 0 ||
	    moat_msg_diagnostics_build(&d, payload, sizeof(payload), &len, &err) != 0) {
		snprintf(r->status, sizeof(r->status), "failed");
		set_detail(r, err.msg);
		return;
	}
	if (dev->io.publish(dev->io.ctx, topic, payload, len, 1, false, &mid) != 0) {
		snprintf(r->status, sizeof(r->status), "failed");
		set_detail(r, "publishing diagnostics failed");
		return;
	}
	snprintf(r->status, sizeof(r->status), "completed");
	snprintf(r->detail, sizeof(r->detail), "uptime_ms=%lld rss_kb=%lld seq=%lld queued=%lld",
		 (long long)d.uptime_ms, (long long)d.rss_kb, (long long)d.seq,
		 (long long)d.queued);
}

/* update_interval's argument: true (and the reason in r's detail, moat-agent's words)
 * when it is missing, not an integer, or out of range. */
static bool interval_refused(const struct mdev_command *cmd, struct moat_msg_response *r)
{
	if (!cmd->interval_given) {
		set_detail(r, "command: missing argument \"interval\"");
	} else if (!cmd->has_interval) {
		set_detail(r, "command: argument \"interval\" is not an integer");
	} else if (cmd->interval < MOAT_MSG_UPDATE_INTERVAL_MIN ||
		   cmd->interval > MOAT_MSG_UPDATE_INTERVAL_MAX) {
		snprintf(r->detail, sizeof(r->detail),
			 "command: argument \"interval\" = %lld is not in [%d, %d]",
			 (long long)cmd->interval, MOAT_MSG_UPDATE_INTERVAL_MIN,
			 MOAT_MSG_UPDATE_INTERVAL_MAX);
	} else {
		return false;
	}
	return true;
}

void moat_device_on_message(struct moat_device *dev, const char *topic, const void *payload,
			    size_t len)
{
	struct moat_topic tp;
	struct mdev_command cmd;
	struct moat_msg_response r;
	struct moat_err err;
	char why[MDEV_MSG_MAX];
	memset(&r, 0, sizeof(r));
	dev->stats.commands++;
	if (moat_topic_parse(topic, &tp, &err) != 0 || tp.kind != MOAT_TOPIC_COMMAND ||
	    strcmp(tp.id, dev->conf.id) != 0) {
		/* the broker's ACL keeps this from happening; never act on it */
		dev->stats.errors++;
		dlog(dev, MOAT_LOG_WARN, "event=unexpected_message bytes=%zu", len);
		return;
	}
	/* moat-device's parser: the one an MCU runs (moat_device.h) */
	if (mdev_cmd_parse(tp.name, payload, len, &cmd, why) != 0) {
		copy_cut(r.command, sizeof(r.command),
			 moat_msg_command_name_ok(tp.name) ? tp.name : "invalid");
		snprintf(r.status, sizeof(r.status), "bad_request");
		set_detail(&r, why);
		respond(dev, &r);
		return;
	}
	snprintf(r.command, sizeof(r.command), "%s", cmd.name);
	snprintf(r.id, sizeof(r.id), "%s", cmd.id);
	switch (cmd.kind) {
	case MDEV_CMD_REBOOT:
		snprintf(r.status, sizeof(r.status), "accepted");
		set_detail(&r, "restarting");
		dev->reboot_requested = true;
		break;
	case MDEV_CMD_UPDATE_INTERVAL: {
		int64_t v = cmd.interval;
		if (interval_refused(&cmd, &r)) {
			snprintf(r.status, sizeof(r.status), "refused");
		} else if (save_interval(dev, v, &err) != 0) {
			/* kept as it was: a restart must not bring back another interval */
			snprintf(r.status, sizeof(r.status), "failed");
			set_detail(&r, err.msg);
		} else {
			int64_t now = moat_time_mono_ms();
			dev->interval_ms = v * 1000;
			dev->next_telemetry_ms = now + dev->interval_ms;
			snprintf(r.status, sizeof(r.status), "completed");
		}
		r.has_interval = true;
		r.interval = dev->interval_ms / 1000;
		break;
	}
	case MDEV_CMD_DIAGNOSTICS:
		do_diagnostics(dev, &r);
		break;
	case MDEV_CMD_CHECK_UPDATE:
		if (dev->update_hook) {
			dev->update_hook(dev, &cmd, &r, dev->update_ctx);
		} else {
			snprintf(r.status, sizeof(r.status), "refused");
			set_detail(&r, "no update client configured on this device");
		}
		break;
	case MDEV_CMD_UNKNOWN:
	default:
		snprintf(r.status, sizeof(r.status), "unknown_command");
		break;
	}
	respond(dev, &r);
}
