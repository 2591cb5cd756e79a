/* test_agent.c: the device side (src/device) without a network: the agent's INI file and
 * every way it is refused, sensor values, the offline queue (reload, a crash mid-append,
 * garbage lines, the bound, compaction), the device behaviour driven through a fake
 * struct moat_device_io (telemetry, redelivery after a lost connection is byte-identical,
 * sequence numbers that survive a restart, every command and bad input), and the
 * certificate check (clock before notBefore, expired).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "moat/agent_conf.h"
#include "moat/session.h"

/* white-box: the device module's internals (queue, sensor, struct moat_device) */
#include "../../src/device/device_internal.h"
#include "moat/fsutil.h"
#include "moat/log.h"
#include "moat/pki.h"
#include "moat/timeutil.h"
#include "testutil.h"
#include "testutil_pki.h"

static char tmpdir[TU_TMPDIR_MAX];

static int setup_dir(void **state)
{
	(void)state;
	return tu_tmpdir_make(tmpdir, sizeof(tmpdir), "agent");
}

static int teardown_dir(void **state)
{
	(void)state;
	return tu_tmpdir_remove(tmpdir);
}

static const char good_conf[] = "[agent]\nid = dev-1\ninterval = 100ms\nstate_dir = st\n"
				"[broker]\nhost = broker.example\nport = 8883\nca = ca.crt\n"
				"cert = /etc/moat/cert.pem\nkey = key.pem\n"
				"[update]\nserver = https://moatd.example:8443\nstate_dir = boot\n"
				"interval = 6h\nupdater = bin/moat-update\n";

static int parse(const char *text, struct moat_agent_conf *c, struct moat_err *err)
{
	return moat_agent_conf_parse("agent.conf", text, strlen(text), "/base", c, err);
}

static void test_conf_good(void **state)
{
	struct moat_agent_conf c, c2;
	struct moat_err err;
	char *text = NULL;
	size_t len = 0;
	(void)state;
	assert_int_equal(parse(good_conf, &c, &err), 0);
	assert_string_equal(c.id, "dev-1");
	assert_string_equal(c.device_type, "generic");
	assert_int_equal(c.interval_ms, 100);
	assert_string_equal(c.state_dir, "/base/st");
	assert_string_equal(c.ca_file, "/base/ca.crt");
	assert_string_equal(c.cert_file, "/etc/moat/cert.pem");
	assert_int_equal(c.port, 8883);
	assert_int_equal(c.sensor.kind, MOAT_SENSOR_SIMULATED);
	assert_string_equal(c.update_url, "https://moatd.example:8443");
	assert_string_equal(c.update_state_dir, "/base/boot");
	assert_int_equal(c.update_interval_s, 6 * 3600);
	assert_string_equal(c.updater, "/base/bin/moat-update");
	/* a bare program name is looked up in PATH, not resolved against the file */
	{
		struct moat_agent_conf c3;
		char text3[sizeof(good_conf) + 64];
		snprintf(text3, sizeof(text3), "%s", good_conf);
		char *u = strstr(text3, "updater = bin/moat-update");
		assert_non_null(u);
		snprintf(u, sizeof(text3) - (size_t)(u - text3), "updater = moat-update\n");
		assert_int_equal(parse(text3, &c3, &err), 0);
		assert_string_equal(c3.updater, "moat-update");
	}
	/* format, then parse again: the same configuration */
	assert_int_equal(moat_agent_conf_format(&c, &text, &len, &err), 0);
	assert_int_equal(moat_agent_conf_parse("x", text, len, NULL, &c2, &err), 0);
	free(text);
	assert_memory_equal(&c, &c2, sizeof(c));
}

static void test_conf_refused(void **state)
{
	static const struct {
		const char *text;
		const char *msg;
	} bad[] = {
		{"[broker]\nhost = h\nca = a\ncert = b\nkey = c\n", "[agent] id is missing"},
		{"[agent]\nid = Dev\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n", "id"},
		{"[agent]\nid = d\n", "[broker] host is missing"},
		{"[agent]\nid = d\n[broker]\nhost = h\nca = a\ncert = b\n",
		 "needs ca, cert and key"},
		{"[agent]\nid = d\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\ntls_insecure = 1\n",
		 "tls_insecure"},
		{"[agent]\nid = d\n[verify]\noff = yes\n", "verify"},
		{"[agent]\nid = d\nuser = root\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n",
		 "[agent] user: 'root'"},
		{"[agent]\nid = d\nuser = -x\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n",
		 "[agent] user"},
		{"[agent]\nid = d\nuser = 0\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n",
		 "all digits"},
		{"[agent]\nid = d\nuser = ..\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n",
		 "[agent] user"},
		{"[agent]\nid = d\nuser = Ag\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n",
		 "[agent] user"},
		{"[agent]\nid = d\n[broker]\nhost = h b\nca = a\ncert = b\nkey = c\n", "host"},
		{"[agent]\nid = d\n[broker]\nhost = h\nport = 0\nca = a\ncert = b\nkey = c\n",
		 "port"},
		{"[agent]\nid = d\n[broker]\nhost = h\nport = 65536\nca = a\ncert = b\nkey = c\n",
		 "port"},
		{"[agent]\nid = d\ninterval = 50ms\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n",
		 "interval"},
		{"[agent]\nid = d\ninterval = 2d\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n",
		 "interval"},
		{"[agent]\nid = d\ninterval = -1\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n",
		 "interval"},
		/* a bare number has no unit: 5000 meant as ms once silenced a device for 83 min */
		{"[agent]\nid = d\ninterval = 5000\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n",
		 "give a unit"},
		{"[agent]\nid = d\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n"
		 "reconnect_min = 500\n",
		 "give a unit"},
		{"[agent]\nid = d\nqueue_max = 0\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n",
		 "queue_max"},
		{"[agent]\nid = d\nlog = file\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n",
		 "log"},
		{"[agent]\nid = d\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n"
		 "reconnect_min = 5s\nreconnect_max = 1s\n",
		 "reconnect_max"},
		{"[agent]\nid = d\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n[sensor]\n"
		 "source = gpio\n",
		 "source"},
		{"[agent]\nid = d\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n[sensor]\n"
		 "source = file\n",
		 "needs path"},
		{"[agent]\nid = d\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n[sensor]\n"
		 "source = command\n",
		 "needs command"},
		{"[agent]\nid = d\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n[sensor]\n"
		 "scale = 0\n",
		 "scale"},
		{"[agent]\nid = d\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n[sensor]\n"
		 "scale = 1x\n",
		 "scale"},
		{"[agent]\nid = d\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n[sensor]\n"
		 "name = Temp\n",
		 "name"},
		{"[agent]\nid = d\nid = e\n", "duplicate"},
		{"[agent]\nid = d\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n[update]\n"
		 "server = http://h:1\n",
		 "https://host"},
		{"[agent]\nid = d\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n[update]\n"
		 "server = https://h:1/api\n",
		 "https://host"},
		{"[agent]\nid = d\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n[update]\n"
		 "server = https://\n",
		 "https://host"},
		{"[agent]\nid = d\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n[update]\n"
		 "server = https://u@h\n",
		 "https://host"},
		{"[agent]\nid = d\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n[update]\n"
		 "interval = 10m\n",
		 "interval"},
		{"[agent]\nid = d\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n[update]\n"
		 "verify = no\n",
		 "verify"},
		{"[agent]\nid = d\n[broker]\nhost = h\nca =\ncert = b\nkey = c\n", "empty"},
		{"[agent]\nid = d\n[broker]\nhost = h\nca = a\ncert = b\nkey = c\n[update]\n"
		 "updater =\n",
		 "empty"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct moat_agent_conf c;
		struct moat_err err;
		moat_err_clear(&err);
		if (parse(bad[i].text, &c, &err) == 0) {
			fail_msg("accepted case %zu: %s", i, bad[i].text);
		}
		if (!strstr(err.msg, bad[i].msg)) {
			fail_msg("case %zu: '%s' does not mention '%s'", i, err.msg, bad[i].msg);
		}
		assert_string_equal(c.id, ""); /* nothing half-parsed */
	}
	/* oversized */
	size_t big = MOAT_AGENT_CONF_MAX_BYTES + 1;
	char *text = malloc(big);
	assert_non_null(text);
	memset(text, '#', big);
	struct moat_agent_conf c;
	struct moat_err err;
	assert_int_not_equal(moat_agent_conf_parse("big", text, big, NULL, &c, &err), 0);
	free(text);
}

static void test_sensor_values(void **state)
{
	struct moat_err err;
	double v = 0;
	(void)state;
	assert_int_equal(moat_sensor_parse_value("48123\n", 6, &v, &err), 0);
	assert_true(v == 48123.0);
	assert_int_equal(moat_sensor_parse_value(" -3.5 \r\n", 8, &v, &err), 0);
	assert_true(v == -3.5);
	static const char *const bad[] = {"", "abc", "1e999", "12 34", "nan", "inf", "5 apples"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_not_equal(moat_sensor_parse_value(bad[i], strlen(bad[i]), &v, &err), 0);
	}
	assert_int_not_equal(moat_sensor_parse_value("1\0002", 3, &v, &err), 0);
	char long_text[MOAT_AGENT_SENSOR_READ_MAX_BYTES + 1];
	memset(long_text, '1', sizeof(long_text));
	assert_int_not_equal(moat_sensor_parse_value(long_text, sizeof(long_text), &v, &err), 0);

	/* simulated: the tutorial's ranges */
	struct moat_sensor s;
	struct moat_sensor_conf sc = {.kind = MOAT_SENSOR_SIMULATED, .scale = 1};
	moat_sensor_init(&s, &sc, 42);
	for (int i = 0; i < 200; i++) {
		struct moat_msg_reading r[4];
		size_t n;
		bool has_sig;
		int64_t sig;
		assert_int_equal(moat_sensor_read(&s, r, 4, &n, &has_sig, &sig, &err), 0);
		assert_int_equal(n, 2);
		assert_true(r[0].value >= 17.5 && r[0].value <= 27.5);
		assert_true(r[1].value >= 35.0 && r[1].value <= 55.0);
		assert_true(has_sig && sig <= -40 && sig >= -80);
	}

	/* a file, scaled; a missing file is an error that names it */
	char path[512];
	tu_path(path, sizeof(path), tmpdir, "temp");
	tu_write_text(path, "48500\n");
	sc = (struct moat_sensor_conf){.kind = MOAT_SENSOR_FILE, .scale = 0.001};
	snprintf(sc.path, sizeof(sc.path), "%s", path);
	snprintf(sc.name, sizeof(sc.name), "cpu_temp");
	moat_sensor_init(&s, &sc, 1);
	struct moat_msg_reading r[4];
	size_t n;
	bool has_sig;
	int64_t sig;
	assert_int_equal(moat_sensor_read(&s, r, 4, &n, &has_sig, &sig, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(r[0].name, "cpu_temp");
	assert_true(r[0].value > 48.49 && r[0].value < 48.51);
	snprintf(s.conf.path, sizeof(s.conf.path), "%s/none", tmpdir);
	assert_int_not_equal(moat_sensor_read(&s, r, 4, &n, &has_sig, &sig, &err), 0);
	assert_non_null(strstr(err.msg, "none"));
	/* a command */
	sc.kind = MOAT_SENSOR_COMMAND;
	snprintf(sc.command, sizeof(sc.command), "echo 21.5");
	sc.scale = 1;
	moat_sensor_init(&s, &sc, 1);
	assert_int_equal(moat_sensor_read(&s, r, 4, &n, &has_sig, &sig, &err), 0);
	assert_true(r[0].value == 21.5);
	snprintf(s.conf.command, sizeof(s.conf.command), "exit 3");
	assert_int_not_equal(moat_sensor_read(&s, r, 4, &n, &has_sig, &sig, &err), 0);
}

/* A telemetry line the queue accepts. */
static size_t tline(char *buf, size_t size, int64_t seq)
{
	int n = snprintf(buf, size,
			 "{\"device_id\":\"d\",\"device_type\":\"t\",\"timestamp\":1,"
			 "\"telemetry\":{\"x\":1},\"metadata\":{\"seq\":%lld}}",
			 (long long)seq);
	return (size_t)n;
}

static void test_queue(void **state)
{
	struct moat_queue q;
	struct moat_err err;
	char path[512], line[256];
	(void)state;
	tu_path(path, sizeof(path), tmpdir, "queue");
	unlink(path);
	assert_int_equal(moat_queue_open(&q, path, 5, true, &err), 0);
	for (int64_t s = 1; s <= 3; s++) {
		size_t n = tline(line, sizeof(line), s);
		assert_int_equal(moat_queue_push(&q, s, line, n, true, &err), 0);
	}
	moat_queue_close(&q);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* reload: the same records, in order */
	assert_int_equal(moat_queue_open(&q, path, 5, true, &err), 0);
	assert_int_equal(q.count, 3);
	assert_int_equal(moat_queue_at(&q, 0)->seq, 1);
	assert_int_equal(moat_queue_max_seq(&q), 3);
	moat_queue_close(&q);

	/* a crash mid-append and a garbage line: both dropped, the file rewritten */
	FILE *f = fopen(path, "a");
	assert_non_null(f);
	fputs("garbage that is not telemetry\n", f);
	size_t n = tline(line, sizeof(line), 4);
	fwrite(line, 1, n / 2, f);
	fclose(f);
	assert_int_equal(moat_queue_open(&q, path, 5, true, &err), 0);
	assert_int_equal(q.count, 3);
	/* the next append starts on a fresh line */
	n = tline(line, sizeof(line), 4);
	assert_int_equal(moat_queue_push(&q, 4, line, n, true, &err), 0);
	moat_queue_close(&q);
	assert_int_equal(moat_queue_open(&q, path, 5, true, &err), 0);
	assert_int_equal(q.count, 4);
	assert_int_equal(moat_queue_at(&q, 3)->seq, 4);

	/* the bound: the oldest are dropped and counted */
	for (int64_t s = 5; s <= 9; s++) {
		n = tline(line, sizeof(line), s);
		assert_int_equal(moat_queue_push(&q, s, line, n, true, &err), 0);
	}
	assert_int_equal(q.count, 5);
	assert_int_equal(q.dropped, 4);
	assert_int_equal(moat_queue_at(&q, 0)->seq, 5);
	assert_true(q.disk_recs <= 2 * q.max); /* compacted */

	/* in flight, acknowledged out of order: popped in order; empty truncates the file */
	for (size_t i = 0; i < q.count; i++) {
		moat_queue_at(&q, i)->mid = (int)(100 + i);
	}
	assert_true(moat_queue_ack(&q, 101, &err));
	assert_int_equal(q.count, 5); /* 100 still in flight at the head */
	assert_false(moat_queue_ack(&q, 999, &err));
	assert_true(moat_queue_ack(&q, 100, &err));
	assert_int_equal(q.count, 3);
	assert_int_equal(moat_queue_at(&q, 0)->seq, 7);
	/* connection lost: marks cleared */
	assert_int_equal(moat_queue_spill(&q, &err), 0);
	assert_int_equal(moat_queue_at(&q, 0)->mid, 0);
	for (size_t i = 0; i < 3; i++) {
		moat_queue_at(&q, i)->mid = (int)(200 + i);
	}
	for (int m = 200; m < 203; m++) {
		assert_true(moat_queue_ack(&q, m, &err));
	}
	assert_int_equal(q.count, 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 0);
	moat_queue_close(&q);

	/* memory only records not pushed to disk are written by spill, in order */
	assert_int_equal(moat_queue_open(&q, path, 10, true, &err), 0);
	for (int64_t s = 20; s <= 22; s++) {
		n = tline(line, sizeof(line), s);
		assert_int_equal(moat_queue_push(&q, s, line, n, false, &err), 0);
	}
	assert_int_equal(moat_queue_spill(&q, &err), 0);
	moat_queue_close(&q);
	assert_int_equal(moat_queue_open(&q, path, 10, true, &err), 0);
	assert_int_equal(q.count, 3);
	assert_int_equal(moat_queue_at(&q, 2)->seq, 22);
	moat_queue_close(&q);
}

/* ---- the device through a fake io ---- */

struct pub {
	char topic[256];
	char payload[4096];
	size_t len;
	bool retain;
	int mid;
};

struct fake {
	struct pub pubs[256];
	size_t n;
	char subs[4][256];
	size_t nsubs;
	int next_mid;
	bool fail;
};

static int fake_publish(void *ctx, const char *topic, const void *payload, size_t len, int qos,
			bool retain, int *out_mid)
{
	struct fake *f = ctx;
	(void)qos;
	if (f->fail || f->n == 256 || len >= sizeof(f->pubs[0].payload)) {
		return MOAT_EIO;
	}
	struct pub *p = &f->pubs[f->n++];
	snprintf(p->topic, sizeof(p->topic), "%s", topic);
	memcpy(p->payload, payload, len);
	p->payload[len] = '\0';
	p->len = len;
	p->retain = retain;
	p->mid = ++f->next_mid;
	*out_mid = p->mid;
	return 0;
}

static int fake_subscribe(void *ctx, const char *filter, int qos)
{
	struct fake *f = ctx;
	(void)qos;
	snprintf(f->subs[f->nsubs++ % 4], 256, "%s", filter);
	return 0;
}

static void fake_addr(void *ctx, char *buf, size_t size)
{
	(void)ctx;
	snprintf(buf, size, "192.0.2.7");
}

static const struct pub *last_on(const struct fake *f, const char *suffix)
{
	for (size_t i = f->n; i > 0; i--) {
		size_t tl = strlen(f->pubs[i - 1].topic), sl = strlen(suffix);
		if (tl >= sl && strcmp(f->pubs[i - 1].topic + tl - sl, suffix) == 0) {
			return &f->pubs[i - 1];
		}
	}
	return NULL;
}

static void dev_conf(struct moat_agent_conf *c, const char *state)
{
	moat_agent_conf_defaults(c);
	snprintf(c->id, sizeof(c->id), "dev-1");
	snprintf(c->host, sizeof(c->host), "localhost");
	c->interval_ms = 1000;
	snprintf(c->state_dir, sizeof(c->state_dir), "%s/%s", tmpdir, state);
}

/* Starts dev with c on the fake f, emptied first (the fake is static: it outlives dev). */
static void dev_start(struct moat_device *dev, const struct moat_agent_conf *c, struct fake *f)
{
	struct moat_device_io io = {fake_publish, fake_subscribe, fake_addr, f};
	struct moat_err err;
	memset(f, 0, sizeof(*f));
	assert_int_equal(moat_device_init(dev, c, &io, 0, &err), 0);
}

/* A refusal (the broker's rate limit) halves how much a replaying device keeps in flight;
 * acknowledgements grow it back one per window. */
static void test_device_refusal_window(void **state)
{
	static struct fake f;
	struct moat_device dev;
	struct moat_agent_conf c;
	struct moat_err err;
	(void)state;
	dev_conf(&c, "dev-window");
	dev_start(&dev, &c, &f);
	for (int64_t t = 0; t < 60; t++) {
		moat_device_tick(&dev, t * 1000); /* 60 messages queued while offline */
	}
	assert_int_equal(dev.queue.count, 60);
	assert_int_equal(moat_device_on_connect(&dev, 59500, &err), 0);
	assert_int_equal(f.n, 1 + MOAT_AGENT_INFLIGHT_MAX); /* status, then a full window */

	/* the first is refused, the others acknowledged: nothing more until the back-off */
	moat_device_on_publish_refused(&dev, f.pubs[1].mid, 0x97);
	for (size_t i = 2; i < f.n; i++) {
		moat_device_on_publish(&dev, f.pubs[i].mid);
	}
	/* (the acknowledged ones stay behind the refused head until it is delivered: order) */
	assert_int_equal(dev.queue.count, 60);
	size_t before = f.n;
	moat_device_tick(&dev, 59600);
	assert_int_equal(f.n, before);
	/* after it: half a window, the refused message first */
	moat_device_tick(&dev, 60600);
	assert_int_equal(f.n, before + MOAT_AGENT_INFLIGHT_MAX / 2);
	assert_memory_equal(f.pubs[before].payload, f.pubs[1].payload, f.pubs[1].len);
	/* a window acknowledged: one more may be in flight */
	for (size_t i = before; i < f.n; i++) {
		moat_device_on_publish(&dev, f.pubs[i].mid);
	}
	assert_int_equal(dev.inflight_limit, MOAT_AGENT_INFLIGHT_MAX / 2 + 1);
	moat_device_free(&dev);
}

static void test_device_delivery(void **state)
{
	static struct fake f;
	struct moat_device dev;
	struct moat_agent_conf c;
	struct moat_err err;
	(void)state;
	dev_conf(&c, "dev-delivery");
	dev_start(&dev, &c, &f);
	int64_t first = dev.next_seq;

	/* the will */
	char topic[128], will[256];
	size_t wl;
	assert_int_equal(moat_device_will(&dev, topic, sizeof(topic), will, sizeof(will), &wl,
					  &err),
			 0);
	assert_string_equal(topic, "devices/dev-1/status");
	assert_string_equal(will, "{\"device_id\":\"dev-1\",\"status\":\"offline\"}");

	/* produced while disconnected: queued, not published */
	moat_device_tick(&dev, 0);
	moat_device_tick(&dev, 1000);
	assert_int_equal(f.n, 0);
	assert_int_equal(dev.queue.count, 2);

	/* connect: subscribe to own commands, retained online status, then the queue */
	assert_int_equal(moat_device_on_connect(&dev, 1500, &err), 0);
	assert_string_equal(f.subs[0], "devices/dev-1/commands/#");
	assert_string_equal(f.pubs[0].topic, "devices/dev-1/status");
	assert_true(f.pubs[0].retain);
	assert_non_null(strstr(f.pubs[0].payload, "\"online\""));
	assert_non_null(strstr(f.pubs[0].payload, "192.0.2.7"));
	assert_int_equal(f.n, 3);
	struct pub sent1 = f.pubs[1], sent2 = f.pubs[2];
	struct moat_msg_telemetry t;
	assert_int_equal(moat_msg_telemetry_parse(sent1.payload, sent1.len, &t, &err), 0);
	assert_int_equal(t.seq, first);
	assert_false(sent1.retain);

	/* the first is acknowledged, the connection is lost before the second is */
	moat_device_on_publish(&dev, sent1.mid);
	assert_int_equal(dev.queue.count, 1);
	moat_device_on_disconnect(&dev, false);
	/* reconnect: the second is sent again, byte for byte (a duplicate if the broker had
	 * it: at-least-once, removable by seq) */
	size_t before = f.n;
	assert_int_equal(moat_device_on_connect(&dev, 3000, &err), 0);
	assert_int_equal(f.n, before + 2);
	assert_int_equal(f.pubs[before + 1].len, sent2.len);
	assert_memory_equal(f.pubs[before + 1].payload, sent2.payload, sent2.len);
	moat_device_on_publish(&dev, f.pubs[before + 1].mid);
	assert_int_equal(dev.queue.count, 0);
	assert_int_equal(dev.stats.telemetry_sent, 2);

	/* connected: telemetry goes out at once, numbered on */
	moat_device_tick(&dev, 2000);
	const struct pub *p = last_on(&f, "/telemetry");
	assert_int_equal(moat_msg_telemetry_parse(p->payload, p->len, &t, &err), 0);
	assert_int_equal(t.seq, first + 2);
	assert_true(t.has_uptime_ms && t.uptime_ms == 2000);
	/* never acknowledged, then the agent stops: persisted */
	moat_device_on_disconnect(&dev, false);
	int64_t reserved = dev.seq_reserved;
	moat_device_free(&dev);

	/* restart: the unacknowledged message is back, numbers continue above the reserve */
	dev_start(&dev, &c, &f);
	assert_int_equal(dev.queue.count, 1);
	assert_int_equal(moat_queue_at(&dev.queue, 0)->seq, first + 2);
	assert_true(dev.next_seq >= reserved);
	assert_true(dev.next_seq > first + 2);
	moat_device_free(&dev);
}

static void command(struct moat_device *dev, const char *name, const char *payload)
{
	char topic[256];
	snprintf(topic, sizeof(topic), "devices/dev-1/commands/%s", name);
	moat_device_on_message(dev, topic, payload, strlen(payload));
}

static void test_device_commands(void **state)
{
	static struct fake f;
	struct moat_device dev;
	struct moat_agent_conf c;
	struct moat_err err;
	struct moat_msg_response r;
	const struct pub *p;
	(void)state;
	dev_conf(&c, "dev-commands");
	c.state_dir[0] = '\0'; /* memory only */
	dev_start(&dev, &c, &f);
	assert_int_equal(moat_device_on_connect(&dev, 0, &err), 0);

#define RESP(status_word)                                                                   \
	do {                                                                                \
		p = last_on(&f, "/command_responses");                                      \
		assert_non_null(p);                                                         \
		assert_int_equal(moat_msg_response_parse(p->payload, p->len, &r, &err), 0); \
		assert_string_equal(r.status, status_word);                                 \
	} while (0)

	command(&dev, "update_interval",
		"{\"command\":\"update_interval\",\"id\":\"a\",\"interval\":5}");
	RESP("completed");
	assert_string_equal(r.id, "a");
	assert_true(r.has_interval && r.interval == 5);
	assert_int_equal(dev.interval_ms, 5000);
	static const char *const out_of_range[] = {"0", "86401", "-1", "2.5", "\"5\"", "true"};
	for (size_t i = 0; i < sizeof(out_of_range) / sizeof(out_of_range[0]); i++) {
		char payload[128];
		snprintf(payload, sizeof(payload),
			 "{\"command\":\"update_interval\",\"id\":\"b\",\"interval\":%s}",
			 out_of_range[i]);
		command(&dev, "update_interval", payload);
		RESP("refused");
		assert_int_equal(r.interval, 5);
	}
	command(&dev, "update_interval", "{\"id\":\"c\"}");
	RESP("refused");

	size_t before = f.n;
	command(&dev, "diagnostics", "{\"command\":\"diagnostics\",\"id\":\"d\"}");
	RESP("completed");
	assert_int_equal(f.n, before + 2);
	assert_string_equal(f.pubs[before].topic, "devices/dev-1/diagnostics");
	assert_non_null(strstr(f.pubs[before].payload, "\"rss_kb\""));

	command(&dev, "check_update", "{\"command\":\"check_update\",\"id\":\"e\"}");
	RESP("refused");
	command(&dev, "fly", "{\"command\":\"fly\",\"id\":\"f\"}");
	RESP("unknown_command");
	assert_string_equal(r.command, "fly");

	static const char *const bad[] = {
		"",
		"{",
		"null",
		"[]",
		"{\"command\":5}",
		"{\"command\":\"diagnostics\",\"id\":\"x y\"}",
		"{\"command\":\"reboot\"}", /* disagrees with the topic */
		"{\"a\":1,\"a\":2}",
		"{\"command\":\"diagnostics\",\"o\":{\"n\":1}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		command(&dev, "diagnostics", bad[i]);
		RESP("bad_request");
	}
	char *big = malloc(MOAT_MSG_COMMAND_MAX_BYTES + 100);
	assert_non_null(big);
	int n = snprintf(big, 64, "{\"command\":\"diagnostics\",\"pad\":\"");
	memset(big + n, 'a', MOAT_MSG_COMMAND_MAX_BYTES);
	snprintf(big + n + MOAT_MSG_COMMAND_MAX_BYTES, 8, "\"}");
	command(&dev, "diagnostics", big);
	RESP("bad_request");
	free(big);
	/* a topic name that is not a command name */
	command(&dev, "bad-name", "{}");
	RESP("bad_request");
	assert_string_equal(r.command, "invalid");
	assert_false(dev.reboot_requested);

	/* another device's topic: never acted on, never answered */
	before = f.n;
	moat_device_on_message(&dev, "devices/dev-2/commands/reboot", "{}", 2);
	moat_device_on_message(&dev, "devices/dev-1/telemetry", "{}", 2);
	assert_int_equal(f.n, before);
	assert_false(dev.reboot_requested);

	command(&dev, "reboot", "{\"command\":\"reboot\",\"id\":\"r\"}");
	RESP("accepted");
	assert_true(dev.reboot_requested);

	/* a failing session never crashes the device */
	f.fail = true;
	command(&dev, "diagnostics", "{\"id\":\"z\"}");
	moat_device_tick(&dev, 100000);
	assert_true(dev.stats.errors > 0);
	moat_device_free(&dev);
#undef RESP
}

/* moat-agent parses commands with moat-device's mdev_cmd_parse (the MCU's parser): every
 * rejection answers bad_request with the parser's reason, on the topic's command name,
 * and never acts; moat's own command parser (what moat-agent used before) refuses each of
 * them too, except where noted, so no command that moat-agent answered before is refused
 * now unless it carried an escape in an argument. */
static void test_device_command_rejections(void **state)
{
	static struct fake f;
	struct moat_device dev;
	struct moat_agent_conf c;
	struct moat_err err;
	struct moat_msg_response r;
	struct moat_msg_command core;
	struct mdev_command cmd;
	char why[MDEV_MSG_MAX];
	static char big[MDEV_CMD_MAX_BYTES + 64];
	(void)state;
	dev_conf(&c, "dev-rejections");
	c.state_dir[0] = '\0';
	dev_start(&dev, &c, &f);
	assert_int_equal(moat_device_on_connect(&dev, 0, &err), 0);
	int n = snprintf(big, 64, "{\"command\":\"diagnostics\",\"pad\":\"");
	memset(big + n, 'a', MDEV_CMD_MAX_BYTES);
	snprintf(big + n + MDEV_CMD_MAX_BYTES, 8, "\"}");
	static const struct {
		const char *name, *payload, *reason;
		bool core_accepted; /* what moat-agent's former parser said */
	} cases[] = {
		{"diagnostics", "", "command: empty message", false},
		{"diagnostics", big, "command: larger than 1024 bytes", false},
		{"diagnostics", "{\"a\":\"\x01\"}", "command: control character at byte 6", false},
		{"diagnostics", "{", "command: invalid JSON", false},
		{"diagnostics", "{\"a\":tru}", "command: invalid JSON", false},
		{"diagnostics", "null", "command: invalid JSON", false},
		{"diagnostics", "[1,2,3]", "command: not a JSON object", false},
		{"diagnostics", "{\"id\":\"x\"} trailing", "command: invalid JSON", false},
		{"diagnostics", "{\"id\":\"x\"} {}", "command: data after the object", false},
		{"diagnostics", "{\"a\":1,\"a\":2}", "command: duplicate key", false},
		{"diagnostics",
		 "{\"a\":1,\"b\":1,\"c\":1,\"d\":1,\"e\":1,\"f\":1,\"g\":1,\"h\":1,\"i\":1}",
		 "command: more than 8 arguments", false},
		{"diagnostics", "{\"command\":5}", "command: 'command' is not a string", false},
		{"diagnostics", "{\"command\":\"\"}", "command: 'command' is empty", false},
		{"reboot", "{\"command\":\"diagnostics\"}",
		 "command: \"diagnostics\" in the payload but \"reboot\" in the topic", false},
		{"diagnostics", "{\"id\":7}", "command: 'id' is not a string", false},
		{"diagnostics", "{\"id\":\"x y\"}", "command: 'id' is not [A-Za-z0-9._:-]{1,64}",
		 false},
		{"diagnostics", "{\"id\":\"a\\\"b\"}", "command: 'id' has an escape or a character",
		 false},
		{"diagnostics", "{\"id\":\"a/b\"}", "command: 'id' is not [A-Za-z0-9._:-]{1,64}",
		 false},
		{"diagnostics",
		 "{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
		 "command: 'id' is longer than 64 bytes", false},
		{"diagnostics", "{\"Bad\":1}", "command: an argument name is not [a-z0-9_]{1,32}",
		 false},
		{"diagnostics", "{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":1}",
		 "command: an argument name is not [a-z0-9_]{1,32}", false},
		{"diagnostics", "{\"o\":{\"n\":1}}",
		 "command: argument \"o\" must be a string, number or boolean", false},
		{"diagnostics", "{\"o\":[1]}",
		 "command: argument \"o\" must be a string, number or boolean", false},
		{"diagnostics", "{\"o\":null}",
		 "command: argument \"o\" must be a string, number or boolean", false},
		{"diagnostics", "{\"s\":\"\xff\"}",
		 "command: argument \"s\": not UTF-8 text <= 128 bytes, no escapes", false},
		{"diagnostics", "{\"s\":\"\xe2\x80\xae\"}", /* a bidi override */
		 "command: argument \"s\": not UTF-8 text <= 128 bytes, no escapes", false},
		{"diagnostics",
		 "{\"s\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
		 "command: argument \"s\": not UTF-8 text <= 128 bytes, no escapes", false},
		/* the one difference: an escape is refused, where moat's parser decoded it */
		{"diagnostics", "{\"s\":\"a\\\"b\"}",
		 "command: argument \"s\": not UTF-8 text <= 128 bytes, no escapes", true},
		{"bad-name", "{}", "command: invalid command name in topic", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].payload);
		assert_int_equal(mdev_cmd_parse(cases[i].name, cases[i].payload, len, &cmd, why),
				 -1);
		if (strncmp(why, cases[i].reason, strlen(cases[i].reason)) != 0) {
			fail_msg("case %zu: \"%s\", expected \"%s\"", i, why, cases[i].reason);
		}
		assert_int_equal(moat_msg_command_parse(cases[i].name, cases[i].payload, len, &core,
							&err) == 0,
				 cases[i].core_accepted);
		size_t before = f.n;
		command(&dev, cases[i].name, cases[i].payload);
		assert_int_equal(f.n, before + 1);
		const struct pub *p = last_on(&f, "/command_responses");
		assert_non_null(p);
		assert_int_equal(moat_msg_response_parse(p->payload, p->len, &r, &err), 0);
		assert_string_equal(r.status, "bad_request");
		assert_string_equal(r.detail, why);
		assert_string_equal(r.command, strcmp(cases[i].name, "bad-name") == 0
						       ? "invalid"
						       : cases[i].name);
	}
	assert_false(dev.reboot_requested);

	/* accepted by both parsers, answered as before: UTF-8 text, numbers, booleans, an
	 * empty string; update_interval's refusals in moat-agent's words */
	static const struct {
		const char *name, *payload, *status, *detail;
	} ok[] = {
		{"diagnostics",
		 "{\"id\":\"k1\",\"note\":\"caf\xc3\xa9\",\"n\":-1.5e3,\"b\":false,\"e\":\"\"}",
		 "completed", NULL},
		{"update_interval", "{\"id\":\"k2\"}", "refused",
		 "command: missing argument \"interval\""},
		{"update_interval", "{\"id\":\"k3\",\"interval\":\"5\"}", "refused",
		 "command: argument \"interval\" is not an integer"},
		{"update_interval", "{\"id\":\"k4\",\"interval\":2.5}", "refused",
		 "command: argument \"interval\" is not an integer"},
		{"update_interval", "{\"id\":\"k5\",\"interval\":99999999999999999}", "refused",
		 "command: argument \"interval\" is not an integer"},
		{"update_interval", "{\"id\":\"k6\",\"interval\":86401}", "refused",
		 "command: argument \"interval\" = 86401 is not in [1, 86400]"},
		{"update_interval", "{\"id\":\"k7\",\"interval\":-3}", "refused",
		 "command: argument \"interval\" = -3 is not in [1, 86400]"},
		{"update_interval", "{\"id\":\"k8\",\"interval\":7,\"why\":\"ok\"}", "completed",
		 NULL},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		size_t len = strlen(ok[i].payload);
		assert_int_equal(moat_msg_command_parse(ok[i].name, ok[i].payload, len, &core,
							&err),
				 0);
		assert_int_equal(mdev_cmd_parse(ok[i].name, ok[i].payload, len, &cmd, why), 0);
		command(&dev, ok[i].name, ok[i].payload);
		const struct pub *p = last_on(&f, "/command_responses");
		assert_non_null(p);
		assert_int_equal(moat_msg_response_parse(p->payload, p->len, &r, &err), 0);
		assert_string_equal(r.status, ok[i].status);
		assert_string_equal(r.id, core.id);
		if (ok[i].detail != NULL) {
			assert_string_equal(r.detail, ok[i].detail);
		}
	}
	assert_int_equal(dev.interval_ms, 7000);
	moat_device_free(&dev);
}

static void test_check_cert(void **state)
{
	struct moat_ca *ca = NULL;
	struct moat_issued is;
	struct moat_err err;
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN], path[512];
	int64_t now = moat_time_now(), na = 0;
	(void)state;
	assert_int_equal(moat_pki_ca_create("t", MOAT_KEY_EC_P256, now, 10, &ca, &err), 0);
	assert_int_equal(moat_pki_random_serial(serial, hex, &err), 0);
	memset(&is, 0, sizeof(is));
	tu_pki_issue_client(ca, "dev-1", MOAT_ROLE_DEVICE, now + 86400, now + 2 * 86400, serial,
			    &is);
	tu_path(path, sizeof(path), tmpdir, "cert.pem");
	tu_write_file(path, is.cert_pem, is.cert_pem_len, 0600);
	assert_int_equal(moat_agent_check_cert(path, now, &na, &err), MOAT_ESTATE);
	assert_non_null(strstr(err.msg, "system clock"));
	assert_non_null(strstr(err.msg, "notBefore"));
	assert_int_equal(moat_agent_check_cert(path, now + 86400 + 10, &na, &err), 0);
	assert_int_equal(na, now + 2 * 86400);
	assert_int_equal(moat_agent_check_cert(path, now + 3 * 86400, &na, &err), MOAT_ESTATE);
	assert_non_null(strstr(err.msg, "expired"));
	tu_path(path, sizeof(path), tmpdir, "missing.pem");
	assert_int_not_equal(moat_agent_check_cert(path, now, &na, &err), 0);
	moat_pki_issued_free(&is);
	moat_pki_ca_free(ca);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf_good),
		cmocka_unit_test(test_conf_refused),
		cmocka_unit_test(test_sensor_values),
		cmocka_unit_test(test_queue),
		cmocka_unit_test(test_device_delivery),
		cmocka_unit_test(test_device_refusal_window),
		cmocka_unit_test(test_device_commands),
		cmocka_unit_test(test_device_command_rejections),
		cmocka_unit_test(test_check_cert),
	};
	moat_log_init("test_agent", MOAT_LOG_ERROR, false);
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
