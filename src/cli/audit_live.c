/* audit_live.c: `moat audit --live`, the running deployment probed from outside as an
 * attacker would probe it.
 *
 * The audit issues throwaway identities for one run, named after the run id (8 random
 * hex digits): audit-<run> (the attacker's device), audit-<run>-v (a victim device, so no
 * probe ever touches a legitimate device's session or topics) and audit-<run>-r (revoked
 * at once). The broker plugin marks every event of an identity so named with
 * "audit_run":"<run>", so monitoring can tell the audit from an attack; probes refused
 * before any identity is known (TLS handshakes) carry no name, and the report lists their
 * address and time. At the end the identities are deleted (revoked, files removed): what
 * remains is the events and the registry's record of the deletions.
 *
 * A probe PASSes when the attempt was refused AND the refusal was seen as a security event
 * (the plugin's log/security-events.jsonl, moatd's event=auth_refused / request lines in
 * log/moatd.log); a refusal nobody recorded is a FAIL, so is anything accepted. Each
 * verdict carries its evidence: the broker's answer and the event line.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "cli.h"
#include "moat/audit.h"
#include "moat/auditrun.h"
#include "moat/broker.h"
#include "moat/firmware.h"
#include "moat/fsutil.h"
#include "moat/fwverify.h"
#include "moat/liveprobe.h"
#include "moat/manifest.h"
#include "moat/net.h"
#include "moat/pki.h"
#include "moat/policy.h"
#include "moat/server.h"
#include "moat/timeutil.h"

/* snprintf whose truncation is intended: every buffer here holds a message or a path that
 * is cut rather than overflowed (the compiler's truncation warning does not apply). */
static void sf(char *buf, size_t size, const char *fmt, ...) MOAT_PRINTF(3, 4);
static void sf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

#define LIVE_MAX_PROBES 64
#define LIVE_EVIDENCE_LEN 640
#define LIVE_EVENT_WAIT_MS 3000 /* unless --event-wait says */
#define LIVE_CONSUMED_MAX 256

enum live_verdict { LIVE_PASS = 0, LIVE_FAIL, LIVE_SKIP };

struct live_outcome {
	const char *id;
	const char *summary;
	enum live_verdict verdict;
	char evidence[LIVE_EVIDENCE_LEN];
};

/* A log the audit reads its events from: from where it stood when the run began, each
 * matching line taken by one probe only. */
struct live_log {
	char path[PATH_MAX];
	long start;
	long consumed[LIVE_CONSUMED_MAX];
	size_t consumed_count;
};

struct live {
	char run[9];
	char attacker[MOAT_ID_BUF_LEN], victim[MOAT_ID_BUF_LEN], revoked[MOAT_ID_BUF_LEN];
	char dir[PATH_MAX];
	char tmp[PATH_MAX];
	struct moat_broker_endpoint broker;
	struct moat_server_endpoint moatd;
	bool moatd_ok;
	int event_wait_ms;
	struct moat_policy policy;
	const char *netns; /* --netns: a namespace of this host in a device zone, or NULL */
	bool net_zones;	   /* moat.conf has a [network] section with keys */
	struct moat_net_policy *net; /* its policy, when net_zones and it parses */
	char net_error[MOAT_ERR_MSG_MAX];
	struct live_log events, moatd_log, broker_log;
	char a_cert[PATH_MAX], a_key[PATH_MAX], v_cert[PATH_MAX], v_key[PATH_MAX];
	char r_cert[PATH_MAX], r_key[PATH_MAX];
	char x_cert[PATH_MAX], x_key[PATH_MAX]; /* expired, signed by the deployment */
	char f_cert[PATH_MAX], f_key[PATH_MAX]; /* from a foreign CA */
	struct live_outcome out[LIVE_MAX_PROBES];
	size_t count;
	unsigned acl_events; /* of the attacker in this second: budgets are 10 per kind */
	int64_t acl_window_ms;
	unsigned moatd_events; /* moatd probes in this second (its budget: 3 per source) */
	int64_t moatd_window_ms;
};

static struct live_outcome *record(struct live *L, const char *id, const char *summary,
				   enum live_verdict v, const char *fmt, ...) MOAT_PRINTF(5, 6);
static struct live_outcome *record(struct live *L, const char *id, const char *summary,
				   enum live_verdict v, const char *fmt, ...)
{
	if (L->count >= LIVE_MAX_PROBES) {
		return NULL;
	}
	struct live_outcome *o = &L->out[L->count++];
	o->id = id;
	o->summary = summary;
	o->verdict = v;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->evidence, sizeof(o->evidence), fmt, ap);
	va_end(ap);
	return o;
}

/* ---- events ---- */

static long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

static bool consumed(const struct live_log *g, long off)
{
	for (size_t i = 0; i < g->consumed_count; i++) {
		if (g->consumed[i] == off) {
			return true;
		}
	}
	return false;
}

/* Waits up to wait_ms for a line of g not yet taken that contains every needle (NULL ends
 * them); copies it into line and takes it. */
static bool log_find(struct live_log *g, int wait_ms, char *line, size_t size,
		     const char *const *needles)
{
	int64_t deadline = moat_time_mono_ms() + wait_ms;
	char buf[4096];
	for (;;) {
		FILE *f = fopen(g->path, "r");
		if (f && fseek(f, g->start, SEEK_SET) == 0) {
			long off = g->start;
			while (fgets(buf, sizeof(buf), f)) {
				long here = off;
				off = ftell(f);
				bool all = !consumed(g, here);
				for (size_t i = 0; all && needles[i]; i++) {
					all = strstr(buf, needles[i]) != NULL;
				}
				if (all) {
					fclose(f);
					if (g->consumed_count < LIVE_CONSUMED_MAX) {
						g->consumed[g->consumed_count++] = here;
					}
					buf[strcspn(buf, "\n")] = '\0';
					sf(line, size, "%s", buf);
					return true;
				}
			}
		}
		if (f) {
			fclose(f);
		}
		if (moat_time_mono_ms() >= deadline) {
			return false;
		}
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

/* Finishes a probe whose attempt was refused (what: the broker's or server's answer):
 * PASS once the event shows, else FAIL. */
static void refused_then_event(struct live *L, struct live_log *g, const char *id,
			       const char *summary, const char *what, const char *const *needles)
{
	char line[1024];
	if (log_find(g, L->event_wait_ms, line, sizeof(line), needles)) {
		record(L, id, summary, LIVE_PASS, "%s; event: %s", what, line);
	} else {
		record(L, id, summary, LIVE_FAIL, "%s, but no security event was recorded in %s",
		       what, g->path);
	}
}

/* Keeps the attacker's acl_denied events within the plugin's budget (10 per kind per
 * second for one identity): an event suppressed would read as a refusal not recorded. */
static void acl_pace(struct live *L)
{
	int64_t now = moat_time_mono_ms();
	if (now - L->acl_window_ms >= 1000) {
		L->acl_window_ms = now;
		L->acl_events = 0;
	}
	if (++L->acl_events > 8) {
		struct timespec ts = {1, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
		L->acl_window_ms = moat_time_mono_ms();
		L->acl_events = 1;
	}
}

/* ---- connections ---- */

static void broker_opts(const struct live *L, struct lp_tls_opts *o, const char *cert,
			const char *key)
{
	memset(o, 0, sizeof(*o));
	o->addr = L->broker.addr;
	o->port = L->broker.port;
	o->verify_name = L->broker.verify_name;
	o->cafile = L->broker.cafile;
	o->cert = cert;
	o->key = key;
	o->timeout_ms = 5000;
}

/* CONNECT as client_id over c; the CONNACK reason, or -1 (c->error). */
static int mqtt_session(struct lp_conn *c, const char *client_id, const struct lp_will *will)
{
	int rc = -1;
	if (lp_mqtt_connect(c, client_id, will) != 0 ||
	    lp_mqtt_expect(c, LP_MQTT_CONNACK, 5000, &rc, NULL, 0) != 0) {
		return -1;
	}
	return rc;
}

/* The record of a refused handshake: the plugin's tls_handshake_failed event, or, for a
 * handshake Mosquitto refuses before any plugin callback (a TLS version or suite it does
 * not speak, plaintext on the TLS port), Mosquitto's own "Client connection from <addr>
 * failed: <why>" line in log/mosquitto.log. */
static void tls_refusal_event(struct live *L, const char *id, const char *summary, const char *what)
{
	const char *plugin[] = {"\"kind\":\"auth_refused\"", "\"reason\":\"tls_handshake_failed\"",
				NULL};
	char from[128];
	sf(from, sizeof(from), "Client connection from %s failed:", L->broker.addr);
	const char *broker[] = {from, NULL};
	char line[1024];
	int64_t deadline = moat_time_mono_ms() + L->event_wait_ms;
	do {
		if (log_find(&L->events, 0, line, sizeof(line), plugin)) {
			record(L, id, summary, LIVE_PASS, "%s; event: %s", what, line);
			return;
		}
		if (log_find(&L->broker_log, 0, line, sizeof(line), broker)) {
			record(L, id, summary, LIVE_PASS,
			       "%s; recorded by Mosquitto (log/mosquitto.log): %s", what, line);
			return;
		}
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	} while (moat_time_mono_ms() < deadline);
	record(L, id, summary, LIVE_FAIL,
	       "%s, but neither a security event nor a broker log line "
	       "recorded it",
	       what);
}

/* A TLS-level probe: refused when the handshake, or the first MQTT exchange after it,
 * fails; then the plugin's tls_handshake_failed event from our address. */
static void tls_probe(struct live *L, const char *id, const char *summary,
		      const struct lp_tls_opts *o, const char *client_id)
{
	struct lp_conn c;
	char what[400];
	bool refused = false;
	if (lp_open(o, &c) != 0) {
		if (c.stage == LP_STAGE_TCP) {
			record(L, id, summary, LIVE_SKIP, "broker not reachable: %s", c.error);
			lp_close(&c);
			return;
		}
		refused = true;
		sf(what, sizeof(what), "handshake refused (%s)", c.error);
	} else {
		int rc = mqtt_session(&c, client_id, NULL);
		if (rc < 0) {
			refused = true;
			sf(what, sizeof(what), "%s, then the connection was closed (%s)",
			   c.version[0] ? c.version : "TCP connection opened", c.error);
		} else if (rc >= 0x80) {
			refused = true;
			sf(what, sizeof(what), "CONNACK %s", lp_mqtt_reason_name(rc));
		} else {
			sf(what, sizeof(what), "%s session accepted (CONNACK %s)",
			   c.version[0] ? c.version : "plaintext", lp_mqtt_reason_name(rc));
		}
	}
	lp_close(&c);
	if (!refused) {
		record(L, id, summary, LIVE_FAIL, "%s", what);
		return;
	}
	tls_refusal_event(L, id, summary, what);
}

/* A probe of an identity's CONNECT: refused at CONNECT with reason (the event's), or, for
 * a certificate Mosquitto's CRL refuses, in the handshake (TLS 1.3 lets the client finish
 * its side first, so that shows as the connection closing before the CONNACK). */
static void connect_probe(struct live *L, const char *id, const char *summary, const char *cert,
			  const char *key, const char *client_id, const char *identity,
			  const char *reason)
{
	struct lp_tls_opts o;
	broker_opts(L, &o, cert, key);
	struct lp_conn c;
	char what[400];
	bool in_tls = false;
	if (lp_open(&o, &c) != 0) {
		sf(what, sizeof(what), "handshake refused (%s)", c.error);
		in_tls = true;
	} else {
		int rc = mqtt_session(&c, client_id, NULL);
		if (rc >= 0 && rc < 0x80) {
			record(L, id, summary, LIVE_FAIL,
			       "client id '%s' accepted with %s's certificate", client_id,
			       identity);
			lp_mqtt_disconnect(&c, 0);
			lp_close(&c);
			return;
		}
		in_tls = rc < 0;
		sf(what, sizeof(what), "%s%s", rc < 0 ? "closed before CONNACK: " : "CONNACK ",
		   rc < 0 ? c.error : lp_mqtt_reason_name(rc));
	}
	lp_close(&c);
	char want_id[MOAT_ID_BUF_LEN + 16], want_reason[64];
	sf(want_id, sizeof(want_id), "\"identity\":\"%s\"", identity);
	sf(want_reason, sizeof(want_reason), "\"reason\":\"%s\"", reason);
	const char *needles[] = {"\"kind\":\"auth_refused\"", want_id, want_reason, NULL};
	if (in_tls) {
		tls_refusal_event(L, id, summary, what);
	} else {
		refused_then_event(L, &L->events, id, summary, what, needles);
	}
}

/* ---- the probes on one attacker session ---- */

struct session_probe {
	const char *id;
	const char *summary;
	const char *topic; /* %s: the victim (or the attacker, with own) */
	bool own;
	bool write;
};

static const struct session_probe session_probes[] = {
	{"read.other_device", "subscribe to another device's telemetry", "devices/%s/telemetry",
	 false, false},
	{"read.other_device_all", "subscribe to everything of another device", "devices/%s/#",
	 false, false},
	{"read.other_commands", "subscribe to another device's commands", "devices/%s/commands/#",
	 false, false},
	{"read.wildcard_plus", "subscribe to every device's telemetry (+)", "devices/+/telemetry",
	 false, false},
	{"read.wildcard_devices", "subscribe to devices/#", "devices/#", false, false},
	{"read.wildcard_hash", "subscribe to #", "#", false, false},
	{"read.wildcard_levels", "subscribe to +/+/+", "+/+/+", false, false},
	{"read.all_commands", "subscribe to every device's commands", "devices/+/commands/+", false,
	 false},
	{"read.sys", "subscribe to $SYS/#", "$SYS/#", false, false},
	{"read.shared", "shared subscription to every device's telemetry",
	 "$share/audit/devices/+/telemetry", false, false},
	{"read.events", "a device reads the security events", "moat/events/#", false, false},
	{"write.other_telemetry", "publish as another device", "devices/%s/telemetry", false, true},
	{"write.other_status", "overwrite another device's status", "devices/%s/status", false,
	 true},
	{"write.other_command", "send a command to another device", "devices/%s/commands/reboot",
	 false, true},
	{"write.own_command", "a device commands itself (only services and operators may)",
	 "devices/%s/commands/reboot", true, true},
	{"write.events", "forge a security event", "moat/events/auth_refused", false, true},
	{"write.other_diagnostics", "report update events for another device",
	 "devices/%s/diagnostics", false, true},
};

static void acl_event(struct live *L, const char *id, const char *summary, const char *what,
		      const char *access, const char *topic)
{
	char want_id[MOAT_ID_BUF_LEN + 16], want_detail[256];
	sf(want_id, sizeof(want_id), "\"identity\":\"%s\"", L->attacker);
	sf(want_detail, sizeof(want_detail), "\"detail\":\"%s %s\"", access, topic);
	const char *needles[] = {"\"kind\":\"acl_denied\"", want_id, want_detail, NULL};
	refused_then_event(L, &L->events, id, summary, what, needles);
}

static void session_probe_run(struct live *L, struct lp_conn *c, const struct session_probe *p,
			      uint16_t pid, char *leak, size_t leak_size)
{
	char topic[256];
	const char *hole = strstr(p->topic, "%s");
	if (hole) {
		sf(topic, sizeof(topic), "%.*s%s%s", (int)(hole - p->topic), p->topic,
		   p->own ? L->attacker : L->victim, hole + 2);
	} else {
		sf(topic, sizeof(topic), "%s", p->topic);
	}
	char what[400];
	int rc = -1;
	acl_pace(L);
	if (!p->write) {
		const char *f[] = {topic};
		if (lp_mqtt_subscribe(c, pid, f, 1) != 0 ||
		    lp_mqtt_expect(c, LP_MQTT_SUBACK, 5000, &rc, leak, leak_size) != 0) {
			record(L, p->id, p->summary, LIVE_FAIL, "no SUBACK for %s: %s", topic,
			       c->error);
			return;
		}
		if (rc < 0x80) {
			record(L, p->id, p->summary, LIVE_FAIL, "SUBSCRIBE %s granted (%s)", topic,
			       lp_mqtt_reason_name(rc));
			return;
		}
		sf(what, sizeof(what), "SUBSCRIBE %s refused (%s)", topic, lp_mqtt_reason_name(rc));
		acl_event(L, p->id, p->summary, what, "subscribe", topic);
		return;
	}
	static const char payload[] = "{\"audit\":\"probe\"}";
	if (lp_mqtt_publish(c, pid, topic, payload, sizeof(payload) - 1, 1, false) != 0 ||
	    lp_mqtt_expect(c, LP_MQTT_PUBACK, 5000, &rc, leak, leak_size) != 0) {
		record(L, p->id, p->summary, LIVE_FAIL, "no PUBACK for %s: %s", topic, c->error);
		return;
	}
	/* Mosquitto answers a refused QoS 1 publish with success for MQTT 3 clients, and with
	 * the reason for MQTT 5: the event decides either way. */
	sf(what, sizeof(what), "PUBLISH %s answered '%s'", topic, lp_mqtt_reason_name(rc));
	acl_event(L, p->id, p->summary, what, "write", topic);
}

static void attacker_session(struct live *L)
{
	struct lp_tls_opts o;
	broker_opts(L, &o, L->a_cert, L->a_key);
	struct lp_conn c;
	int rc = -1;
	if (lp_open(&o, &c) != 0 || (rc = mqtt_session(&c, L->attacker, NULL)) != 0) {
		for (size_t i = 0; i < sizeof(session_probes) / sizeof(session_probes[0]); i++) {
			record(L, session_probes[i].id, session_probes[i].summary, LIVE_SKIP,
			       "the audit's own device could not connect: %s",
			       rc > 0 ? lp_mqtt_reason_name(rc) : c.error);
		}
		lp_close(&c);
		return;
	}
	char leak[256] = "";
	uint16_t pid = 1;
	for (size_t i = 0; i < sizeof(session_probes) / sizeof(session_probes[0]); i++) {
		session_probe_run(L, &c, &session_probes[i], pid++, leak, sizeof(leak));
		if (c.peer_closed) {
			break;
		}
	}
	/* The victim publishes; nothing of it may reach the attacker, whatever was granted. */
	static const char *const no_leak = "read.no_delivery";
	static const char *const no_leak_sum = "another device's messages never reach this one";
	struct lp_tls_opts vo;
	broker_opts(L, &vo, L->v_cert, L->v_key);
	struct lp_conn v;
	if (lp_open(&vo, &v) == 0 && mqtt_session(&v, L->victim, NULL) == 0) {
		char topic[128];
		sf(topic, sizeof(topic), "devices/%s/telemetry", L->victim);
		static const char tele[] = "{\"temperature\":21.5}";
		int prc = -1;
		(void)(lp_mqtt_publish(&v, 1, topic, tele, sizeof(tele) - 1, 1, false) == 0 &&
		       lp_mqtt_expect(&v, LP_MQTT_PUBACK, 5000, &prc, NULL, 0) == 0);
		/* A PINGREQ round trip after the victim's PUBACK: anything routed to the attacker
		 * was queued before its PINGRESP. */
		static const uint8_t ping[] = {0xC0, 0x00};
		int r = lp_write(&c, ping, sizeof(ping));
		int dummy;
		if (r == 0) {
			(void)lp_mqtt_expect(&c, 13, 3000, &dummy, leak, sizeof(leak));
		}
		if (leak[0]) {
			record(L, no_leak, no_leak_sum, LIVE_FAIL, "received a message on %s",
			       leak);
		} else if (prc < 0 || prc >= 0x80) {
			record(L, no_leak, no_leak_sum, LIVE_SKIP,
			       "the victim's publish was not accepted (%s)",
			       lp_mqtt_reason_name(prc));
		} else {
			record(L, no_leak, no_leak_sum, LIVE_PASS,
			       "the victim published on %s; the attacker received nothing", topic);
		}
		lp_mqtt_disconnect(&v, 0);
	} else {
		record(L, no_leak, no_leak_sum, LIVE_SKIP,
		       "the victim device could not connect: %s", v.error);
	}
	lp_close(&v);

	/* Payloads, on the attacker's own telemetry. */
	char own[128];
	sf(own, sizeof(own), "devices/%s/telemetry", L->attacker);
	static const char bad[] = "not json {";
	int brc = -1;
	if (!c.peer_closed && lp_mqtt_publish(&c, pid, own, bad, sizeof(bad) - 1, 1, false) == 0 &&
	    lp_mqtt_expect(&c, LP_MQTT_PUBACK, 5000, &brc, NULL, 0) == 0) {
		char what[200], want_id[MOAT_ID_BUF_LEN + 16];
		sf(what, sizeof(what), "malformed telemetry answered '%s'",
		   lp_mqtt_reason_name(brc));
		sf(want_id, sizeof(want_id), "\"identity\":\"%s\"", L->attacker);
		const char *needles[] = {"\"kind\":\"payload_rejected\"", want_id, NULL};
		refused_then_event(L, &L->events, "payload.malformed",
				   "telemetry that is not the schema's JSON", what, needles);
	} else {
		record(L, "payload.malformed", "telemetry that is not the schema's JSON", LIVE_FAIL,
		       "no answer: %s", c.error);
	}
	pid++;

	/* Too many filters in one SUBSCRIBE (own topics, each allowed on its own). */
	uint32_t per_packet = L->policy.subs[MOAT_ROLE_DEVICE].per_packet;
	if (per_packet > 0 && per_packet < 200 && !c.peer_closed) {
		static char names[201][96];
		const char *filters[201];
		for (uint32_t i = 0; i <= per_packet; i++) {
			sf(names[i], sizeof(names[i]), "devices/%s/commands/audit%u", L->attacker,
			   i);
			filters[i] = names[i];
		}
		struct lp_packet p = {0};
		uint8_t rcs[201];
		size_t n = 0;
		if (lp_mqtt_subscribe(&c, pid++, filters, per_packet + 1) == 0) {
			for (int tries = 0; tries < 8; tries++) {
				if (lp_mqtt_read(&c, &p, 5000) != 0) {
					break;
				}
				if (p.type == LP_MQTT_SUBACK) {
					n = lp_mqtt_suback_codes(&p, rcs, sizeof(rcs));
					free(p.body);
					break;
				}
				free(p.body);
			}
		}
		size_t refused = 0;
		for (size_t i = 0; i < n; i++) {
			refused += rcs[i] >= 0x80;
		}
		char what[200], want_id[MOAT_ID_BUF_LEN + 16];
		sf(what, sizeof(what), "%u filters in one SUBSCRIBE: %zu of %zu refused",
		   per_packet + 1, refused, n);
		if (refused == 0) {
			record(L, "limit.subscribe_burst",
			       "more filters in one SUBSCRIBE than allowed", LIVE_FAIL, "%s", what);
		} else {
			sf(want_id, sizeof(want_id), "\"identity\":\"%s\"", L->attacker);
			const char *needles[] = {"\"kind\":\"subscription_limited\"", want_id,
						 NULL};
			refused_then_event(L, &L->events, "limit.subscribe_burst",
					   "more filters in one SUBSCRIBE than allowed", what,
					   needles);
		}
	}

	const struct moat_policy_limits *lim = &L->policy.limits[MOAT_ROLE_DEVICE];
	/* Oversized: one byte over the device's max_payload (before the rate probe empties the
	 * bucket, so the size is what refuses it). */
	if (!c.peer_closed && lim->max_payload > 0 && lim->max_payload < LP_PACKET_MAX - 512) {
		size_t len = lim->max_payload + 1;
		char *big = malloc(len);
		int orc = -1;
		char what[200];
		if (big) {
			memset(big, ' ', len);
			big[0] = '{';
			big[len - 1] = '}';
			if (lp_mqtt_publish(&c, pid, own, big, len, 1, false) == 0 &&
			    lp_mqtt_expect(&c, LP_MQTT_PUBACK, 5000, &orc, NULL, 0) == 0) {
				sf(what, sizeof(what), "%zu bytes answered '%s'", len,
				   lp_mqtt_reason_name(orc));
			} else {
				sf(what, sizeof(what), "%zu bytes: %s", len, c.error);
			}
			free(big);
			char want_id[MOAT_ID_BUF_LEN + 16];
			sf(want_id, sizeof(want_id), "\"identity\":\"%s\"", L->attacker);
			const char *needles[] = {"\"kind\":\"payload_rejected\"", want_id,
						 "bytes on", NULL};
			refused_then_event(L, &L->events, "payload.oversized",
					   "a payload over the device's max_payload", what,
					   needles);
		}
	}
	/* Rate: a bounded burst of QoS 0 publishes, beyond the device's bucket when the
	 * policy has one (an attacker does not ask: 60 messages when it has none). */
	if (!c.peer_closed) {
		uint32_t n = lim->msgs_per_s > 0 ? lim->burst + lim->msgs_per_s * 2 + 10 : 60;
		if (n > 400) {
			n = 400;
		}
		static const char tele[] = "{\"temperature\":20.0}";
		uint32_t sent = 0;
		for (; sent < n && !c.peer_closed; sent++) {
			if (lp_mqtt_publish(&c, 0, own, tele, sizeof(tele) - 1, 0, false) != 0) {
				break;
			}
		}
		char what[200], want_id[MOAT_ID_BUF_LEN + 16];
		sf(what, sizeof(what), "%u messages at once", sent);
		sf(want_id, sizeof(want_id), "\"identity\":\"%s\"", L->attacker);
		const char *needles[] = {"\"kind\":\"rate_limited\"", want_id, NULL};
		refused_then_event(L, &L->events, "limit.rate",
				   "messages faster than the rate limit", what, needles);
	}

	if (!c.peer_closed) {
		lp_mqtt_disconnect(&c, 0);
	}
	lp_close(&c);
}

/* A last will aimed at the victim's status, sent by "disconnect with will message". */
static void will_probe(struct live *L)
{
	static const char *const id = "write.will_other";
	static const char *const sum = "a last will aimed at another device's status";
	char topic[128];
	sf(topic, sizeof(topic), "devices/%s/status", L->victim);
	struct lp_will w = {.topic = topic, .payload = "{\"status\":\"offline\"}", .retain = false};
	struct lp_tls_opts o;
	broker_opts(L, &o, L->a_cert, L->a_key);
	struct lp_conn c;
	char what[300];
	if (lp_open(&o, &c) != 0) {
		record(L, id, sum, LIVE_SKIP, "could not connect: %s", c.error);
		lp_close(&c);
		return;
	}
	int rc = mqtt_session(&c, L->attacker, &w);
	if (rc == 0) {
		lp_mqtt_disconnect(&c, 0x04);
		sf(what, sizeof(what), "connected; the will was refused when sent");
	} else {
		sf(what, sizeof(what), "CONNECT with the will refused (%s)",
		   rc < 0 ? c.error : lp_mqtt_reason_name(rc));
	}
	lp_close(&c);
	acl_pace(L);
	char want_id[MOAT_ID_BUF_LEN + 16];
	sf(want_id, sizeof(want_id), "\"identity\":\"%s\"", L->attacker);
	char want_topic[160];
	sf(want_topic, sizeof(want_topic), " %s\"", topic);
	const char *needles[] = {"\"kind\":\"acl_denied\"", want_id, want_topic, NULL};
	refused_then_event(L, &L->events, id, sum, what, needles);
}

/* ---- moatd ---- */

/* One HTTPS GET to moatd; the status code, or -1 (error says why, refused says whether
 * the TLS layer refused). */
static int moatd_get(const struct live *L, const char *cert, const char *key, const char *path,
		     const char *extra, size_t pad, char *error, size_t size)
{
	struct lp_tls_opts o = {
		.addr = L->moatd.addr,
		.port = L->moatd.port,
		.verify_name = L->moatd.verify_name,
		.cafile = L->moatd.cafile,
		.cert = cert,
		.key = key,
		.timeout_ms = 5000,
	};
	struct lp_conn c;
	if (lp_open(&o, &c) != 0) {
		sf(error, size, "%s", c.error);
		lp_close(&c);
		return -1;
	}
	size_t cap = 1024 + pad;
	char *req = malloc(cap);
	if (!req) {
		lp_close(&c);
		sf(error, size, "out of memory");
		return -1;
	}
	int n = snprintf(req, cap, "GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n", path,
			 L->moatd.verify_name, extra ? extra : "");
	size_t len = (size_t)n;
	if (pad) {
		memcpy(req + len, "X-Pad: ", 7);
		len += 7;
		memset(req + len, 'a', pad);
		len += pad;
		memcpy(req + len, "\r\n", 2);
		len += 2;
	}
	memcpy(req + len, "\r\n", 2);
	len += 2;
	char resp[512] = "";
	int status = -1;
	if (lp_write(&c, req, len) == 0) {
		int r = lp_read(&c, resp, sizeof(resp) - 1, 5000);
		if (r > 0) {
			resp[r] = '\0';
			if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) {
				status = -1;
			}
		}
	}
	if (status < 0) {
		sf(error, size, "%s", c.error[0] ? c.error : "connection closed");
	}
	free(req);
	lp_close(&c);
	return status;
}

static void moatd_probe(struct live *L, const char *id, const char *summary, const char *cert,
			const char *key, const char *path, const char *extra, size_t pad,
			const char *const *needles)
{
	/* moatd writes at most 3 events of a kind per source and second: the fourth probe
	 * in a second waits for the next (one suppressed would read as not recorded). */
	int64_t now = moat_time_mono_ms();
	if (now - L->moatd_window_ms >= 1000) {
		L->moatd_window_ms = now;
		L->moatd_events = 0;
	}
	if (++L->moatd_events > 3) {
		struct timespec pace = {1, 100 * 1000 * 1000};
		nanosleep(&pace, NULL);
		L->moatd_window_ms = moat_time_mono_ms();
		L->moatd_events = 1;
	}
	if (!L->moatd_ok) {
		record(L, id, summary, LIVE_SKIP, "moatd is not part of this deployment's moat up");
		return;
	}
	char error[LP_ERROR_LEN] = "";
	int status = moatd_get(L, cert, key, path, extra, pad, error, sizeof(error));
	char what[400];
	if (status >= 200 && status < 400) {
		record(L, id, summary, LIVE_FAIL, "GET %s answered %d", path, status);
		return;
	}
	if (status > 0) {
		sf(what, sizeof(what), "GET %.100s answered %d", path, status);
	} else {
		sf(what, sizeof(what), "refused (%s)", error);
	}
	refused_then_event(L, &L->moatd_log, id, summary, what, needles);
}

/* ---- firmware, through the device's own verifier ---- */

static bool find_release(const char *dir, char *type, size_t tsize, char *env, size_t esize,
			 char *img, size_t isize)
{
	char base[PATH_MAX];
	sf(base, sizeof(base), "%s/firmware/releases", dir);
	DIR *d = opendir(base);
	if (!d) {
		return false;
	}
	struct dirent *t;
	bool found = false;
	while (!found && (t = readdir(d))) {
		if (t->d_name[0] == '.') {
			continue;
		}
		char vdir[PATH_MAX];
		sf(vdir, sizeof(vdir), "%s/%s", base, t->d_name);
		DIR *v = opendir(vdir);
		struct dirent *e;
		while (v && !found && (e = readdir(v))) {
			if (e->d_name[0] == '.') {
				continue;
			}
			sf(env, esize, "%s/%s/envelope.json", vdir, e->d_name);
			sf(img, isize, "%s/%s/image.bin", vdir, e->d_name);
			sf(type, tsize, "%s", t->d_name);
			found = access(env, R_OK) == 0 && access(img, R_OK) == 0;
		}
		if (v) {
			closedir(v);
		}
	}
	closedir(d);
	return found;
}

static void firmware_probes(struct live *L)
{
	static const char *const tid = "update.tampered";
	static const char *const tsum = "a tampered envelope offered to the device's verifier";
	static const char *const did = "update.downgraded";
	static const char *const dsum = "a downgrade offered to the device's verifier";
	char type[128], env[PATH_MAX], img[PATH_MAX], trust_path[PATH_MAX];
	if (!find_release(L->dir, type, sizeof(type), env, sizeof(env), img, sizeof(img))) {
		record(L, tid, tsum, LIVE_SKIP, "no published release in firmware/releases");
		record(L, did, dsum, LIVE_SKIP, "no published release in firmware/releases");
		return;
	}
	sf(trust_path, sizeof(trust_path), "%s/%s/%s", L->dir, MOAT_FW_KEYS_DIR,
	   MOAT_FW_TRUST_FILE);
	struct moat_err err = {0};
	struct moat_fw_trust trust = {0};
	char *json = NULL;
	size_t len = 0;
	if (moat_fwtrust_load(trust_path, &trust, &err) != 0 ||
	    moat_fs_read_all(env, MOAT_ENVELOPE_MAX_BYTES, &json, &len, &err) != 0) {
		record(L, tid, tsum, LIVE_SKIP, "%s", err.msg);
		record(L, did, dsum, LIVE_SKIP, "%s", err.msg);
		moat_fw_trust_free(&trust);
		return;
	}
	struct moat_fw_policy pol = {.purpose = MOAT_FW_FOR_BOOT,
				     .device_type = type,
				     .now = moat_time_now()};
	struct moat_manifest m;
	struct moat_fw_decision dec;
	enum moat_fw_verdict v = moat_fw_decide(json, len, &trust, &pol, &m, &dec);
	/* Tampered: one character of the signed payload changed. */
	char *p = strstr(json, "\"payload\"");
	char *q = p ? strchr(p + 9, '"') : NULL;
	if (q && q[1] && q[2] && q[3] && q[4] && q[5]) {
		char *c = q + 5;
		char orig = *c;
		*c = orig == 'A' ? 'B' : 'A';
		struct moat_fw_decision td;
		enum moat_fw_verdict tv = moat_fw_decide(json, len, &trust, &pol, NULL, &td);
		*c = orig;
		record(L, tid, tsum, tv == MOAT_FW_ACCEPT ? LIVE_FAIL : LIVE_PASS,
		       "%s: one payload character changed: %s (%s)", env,
		       tv == MOAT_FW_ACCEPT ? "accepted" : "refused", td.msg);
	} else {
		record(L, tid, tsum, LIVE_SKIP, "%s: no payload to tamper with", env);
	}
	if (v != MOAT_FW_ACCEPT) {
		record(L, did, dsum, LIVE_SKIP, "%s is not accepted as it is: %s", env, dec.msg);
	} else {
		pol.security_floor = m.security_version + 1;
		struct moat_fw_decision dd;
		enum moat_fw_verdict dv = moat_fw_decide(json, len, &trust, &pol, NULL, &dd);
		record(L, did, dsum, dv == MOAT_FW_DOWNGRADE ? LIVE_PASS : LIVE_FAIL,
		       "%s (security_version %lld) on a device whose floor is %lld: %s", env,
		       (long long)m.security_version, (long long)pol.security_floor, dd.msg);
	}
	(void)img;
	free(json);
	moat_fw_trust_free(&trust);
}

/* ---- identities ---- */

static int write_issued(const struct moat_issued *is, const char *cert, const char *key,
			const char *chain_pem, struct moat_err *err)
{
	size_t cl = is->cert_pem_len + (chain_pem ? strlen(chain_pem) : 0);
	char *c = malloc(cl + 1);
	if (!c) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	memcpy(c, is->cert_pem, is->cert_pem_len);
	if (chain_pem) {
		memcpy(c + is->cert_pem_len, chain_pem, strlen(chain_pem));
	}
	int rc = moat_fs_write_atomic(cert, c, cl, 0600, err);
	free(c);
	return rc ? rc : moat_fs_write_atomic(key, is->key_pem, is->key_pem_len, 0600, err);
}

/* The expired certificate (the deployment's signer, dates in the past) and the foreign one
 * (a CA of the audit's own), both for audit-<run>-x, written in L->tmp. */
static int make_bad_certs(struct live *L, struct moat_deploy *d, struct moat_err *err)
{
	const struct moat_ca *signer = NULL;
	struct moat_ca *foreign = NULL;
	char cn[MOAT_ID_BUF_LEN];
	sf(cn, sizeof(cn), "audit-%s-x", L->run);
	int64_t now = moat_time_now();
	struct moat_issue_req req = {.cn = cn,
				     .role = MOAT_ROLE_DEVICE,
				     .kind = MOAT_CERT_CLIENT,
				     .key_type = MOAT_KEY_EC_P256,
				     .not_before = now - 3 * 86400,
				     .not_after = now - 86400};
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	struct moat_issued is = {0};
	char chain_path[PATH_MAX];
	sf(chain_path, sizeof(chain_path), "%s/pki/%s", L->dir,
	   moat_deploy_has_issuer(d) ? "issuer.crt" : "ca.crt");
	char *chain = NULL;
	size_t chain_len = 0;
	int rc = moat_deploy_signer(d, &signer, err);
	if (rc == 0) {
		rc = moat_fs_read_all(chain_path, 1 << 20, &chain, &chain_len, err);
	}
	if (rc == 0 && (rc = moat_pki_random_serial(serial, hex, err)) == 0 &&
	    (rc = moat_pki_issue(signer, &req, serial, &is, err)) == 0) {
		rc = write_issued(&is, L->x_cert, L->x_key, chain, err);
		moat_pki_issued_free(&is);
	}
	free(chain);
	if (rc == 0 && (rc = moat_pki_ca_create("moat audit foreign", MOAT_KEY_EC_P256, now, 2,
						&foreign, err)) == 0) {
		req.not_before = now - 60;
		req.not_after = now + 86400;
		memset(&is, 0, sizeof(is));
		if ((rc = moat_pki_random_serial(serial, hex, err)) == 0 &&
		    (rc = moat_pki_issue(foreign, &req, serial, &is, err)) == 0) {
			rc = write_issued(&is, L->f_cert, L->f_key, NULL, err);
			moat_pki_issued_free(&is);
		}
		moat_pki_ca_free(foreign);
	}
	return rc;
}

static int issue_identities(struct live *L, struct moat_err *err)
{
	struct moat_deploy *d = NULL;
	int rc = cli_open_unlocked(&d, err);
	if (rc != 0) {
		return rc;
	}
	/* One day, the shortest lifetime there is: their serials stay in the CRL until they
	 * expire (docs/OPERATIONS.md "Live audit"), so no longer than that. */
	const struct moat_provision_req reqs[3] = {
		{.id = L->attacker,
		 .role = MOAT_ROLE_DEVICE,
		 .key_type = MOAT_KEY_EC_P256,
		 .days = 1,
		 .audit = true},
		{.id = L->victim,
		 .role = MOAT_ROLE_DEVICE,
		 .key_type = MOAT_KEY_EC_P256,
		 .days = 1,
		 .audit = true},
		{.id = L->revoked,
		 .role = MOAT_ROLE_DEVICE,
		 .key_type = MOAT_KEY_EC_P256,
		 .days = 1,
		 .audit = true},
	};
	if ((rc = moat_deploy_provision(d, reqs, 3, NULL, NULL, err)) == 0 &&
	    (rc = moat_deploy_revoke(d, L->revoked, 4 /* superseded */, err)) == 0 &&
	    (rc = make_bad_certs(L, d, err)) == 0) {
		rc = moat_broker_sync(d, err);
	}
	moat_deploy_close(d);
	return rc;
}

/* The broker policy in force once the run's identities are synced: the limits the rate,
 * burst and size probes go beyond. */
static int load_policy(struct live *L, struct moat_err *err)
{
	char path[PATH_MAX];
	char *text = NULL;
	size_t len = 0;
	sf(path, sizeof(path), "%s/%s", L->dir, MOAT_POLICY_FILE_NAME);
	int rc = moat_fs_read_all(path, 64u << 20, &text, &len, err);
	if (rc == 0) {
		moat_policy_free(&L->policy);
		rc = moat_policy_parse(text, len, &L->policy, err);
	}
	free(text);
	return rc;
}

static void delete_identities(struct live *L)
{
	struct moat_deploy *d = NULL;
	struct moat_err err = {0};
	if (cli_open_unlocked(&d, &err) != 0) {
		fprintf(stderr, "moat: audit identities of run %s not deleted: %s\n", L->run,
			err.msg);
		return;
	}
	const char *ids[] = {L->attacker, L->victim, L->revoked};
	for (size_t i = 0; i < 3; i++) {
		if (moat_deploy_delete(d, ids[i], 5 /* cessationOfOperation */, &err) != 0 &&
		    err.code != MOAT_ENOENT) {
			fprintf(stderr, "moat: %s not deleted: %s\n", ids[i], err.msg);
		}
	}
	if (moat_broker_sync(d, &err) != 0) {
		fprintf(stderr, "moat: broker not synced after the audit: %s\n", err.msg);
	}
	moat_deploy_close(d);
}

/* Waits until the broker accepts the attacker (the plugin loaded the new policy): the
 * positive signal that the run's identities are in force. */
static bool wait_ready(struct live *L)
{
	int64_t deadline = moat_time_mono_ms() + 15000;
	while (moat_time_mono_ms() < deadline) {
		struct lp_tls_opts o;
		broker_opts(L, &o, L->a_cert, L->a_key);
		struct lp_conn c;
		int rc = -1;
		if (lp_open(&o, &c) == 0) {
			rc = mqtt_session(&c, L->attacker, NULL);
			if (rc == 0) {
				lp_mqtt_disconnect(&c, 0);
			}
		}
		lp_close(&c);
		if (rc == 0) {
			return true;
		}
		struct timespec ts = {0, 300 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return false;
}

/* ---- the network policy, from a namespace in a device zone ---- */

#define NET_WAIT_MS 1500 /* a dropped SYN: silence this long, while the broker answered */
#define NET_TARGETS_MAX 8

enum net_reach {
	NET_CONNECTED = 0, /* a listener accepted */
	NET_REFUSED,	   /* a reset: the packet reached the host, nothing listened */
	NET_SILENT,	   /* no answer in NET_WAIT_MS: dropped on the way */
	NET_UNREACHABLE,   /* an ICMP unreachable from a router */
	NET_NO_SOCKET,	   /* the probe itself failed */
};

static const char *const net_reach_words[] = {"connected",
					      "refused by the host (the packet got through)",
					      "no answer in 1.5 s (dropped)", "unreachable (ICMP)",
					      "socket error"};

struct net_target {
	const char *id, *summary;
	uint32_t addr; /* host order */
	uint16_t port;
	bool to_gateway; /* the gateway's own address: its input chain decides */
	bool want_open;
};

/* What the child, inside the namespace, reports: the address it connected from and one
 * reach per target. */
struct net_answer {
	int err; /* errno of entering the namespace; 0 when it did */
	uint32_t src;
	uint8_t reach[NET_TARGETS_MAX];
};

/* In the child: every target connected to at once, non-blocking, each given NET_WAIT_MS. */
static void net_connect_all(const struct net_target *t, size_t n, struct net_answer *a)
{
	int fds[NET_TARGETS_MAX];
	struct pollfd pf[NET_TARGETS_MAX];
	for (size_t i = 0; i < n; i++) {
		a->reach[i] = NET_NO_SOCKET;
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_port = htons(t[i].port),
					 .sin_addr.s_addr = htonl(t[i].addr)};
		if (fds[i] >= 0 && connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
		    errno != EINPROGRESS) {
			a->reach[i] = errno == ECONNREFUSED ? NET_REFUSED : NET_UNREACHABLE;
			close(fds[i]);
			fds[i] = -1;
		}
		if (fds[i] >= 0 && a->src == 0) {
			struct sockaddr_in me;
			socklen_t ml = sizeof(me);
			if (getsockname(fds[i], (struct sockaddr *)&me, &ml) == 0) {
				a->src = ntohl(me.sin_addr.s_addr);
			}
		}
	}
	int64_t deadline = moat_time_mono_ms() + NET_WAIT_MS;
	for (;;) {
		size_t waiting = 0;
		for (size_t i = 0; i < n; i++) {
			pf[i] = (struct pollfd){.fd = fds[i], .events = POLLOUT};
			waiting += fds[i] >= 0;
		}
		int64_t left = deadline - moat_time_mono_ms();
		if (waiting == 0 || left <= 0) {
			break;
		}
		if (poll(pf, n, (int)left) < 0 && errno != EINTR) {
			break;
		}
		for (size_t i = 0; i < n; i++) {
			if (fds[i] < 0 || !(pf[i].revents & (POLLOUT | POLLERR | POLLHUP))) {
				continue;
			}
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			if (getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
				soerr = errno;
			}
			a->reach[i] = soerr == 0	      ? NET_CONNECTED
				      : soerr == ECONNREFUSED ? NET_REFUSED
							      : NET_UNREACHABLE;
			close(fds[i]);
			fds[i] = -1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (fds[i] >= 0) {
			a->reach[i] = NET_SILENT;
			close(fds[i]);
		}
	}
}

/* Runs the connections from inside /run/netns/<ns>, in a child (setns changes the calling
 * thread's namespace for good). 0, or -1 with why. */
static int net_probe_from(const char *ns, const struct net_target *t, size_t n,
			  struct net_answer *a, char *why, size_t why_len)
{
	char path[PATH_MAX];
	sf(path, sizeof(path), "/run/netns/%s", ns);
	int pfd[2];
	if (strchr(ns, '/') || pipe2(pfd, O_CLOEXEC) != 0) {
		sf(why, why_len, "%s: not a namespace name, or no pipe", ns);
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		sf(why, why_len, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		struct net_answer ca = {0};
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
			ca.err = errno ? errno : EINVAL;
		} else {
			net_connect_all(t, n, &ca);
		}
		ssize_t w = write(pfd[1], &ca, sizeof(ca));
		_exit(w == (ssize_t)sizeof(ca) ? 0 : 1);
	}
	close(pfd[1]);
	ssize_t got = 0;
	while ((got = read(pfd[0], a, sizeof(*a))) < 0 && errno == EINTR) {
	}
	close(pfd[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
	}
	if (got != (ssize_t)sizeof(*a)) {
		sf(why, why_len, "the probe in namespace %s ended without an answer", ns);
		return -1;
	}
	if (a->err != 0) {
		sf(why, why_len, "cannot enter network namespace %s (%s): %s", ns, path,
		   strerror(a->err));
		return -1;
	}
	return 0;
}

/* The targets for a probe from zone z: the broker's and the update server's ports (open),
 * the broker host's other services, and the gateway's own addresses in the management zone
 * and in z (closed), each with its expectation from moat_net_expect_pkt. */
static size_t net_targets(const struct live *L, uint32_t src, struct net_target *t)
{
	const struct moat_net_policy *p = L->net;
	size_t n = 0;
	t[n++] = (struct net_target){"net.zone_to_broker",
				     "the broker's port from a device zone",
				     p->broker_addr,
				     p->broker_port,
				     false,
				     false};
	if (L->moatd_ok) {
		t[n++] = (struct net_target){"net.zone_to_update_server",
					     "the update server's port from a device zone",
					     p->server_addr,
					     p->server_port,
					     false,
					     false};
	}
	t[n++] = (struct net_target){"net.zone_to_broker_ssh",
				     "SSH on the broker's host from a device zone",
				     p->broker_addr,
				     22,
				     false,
				     false};
	t[n++] =
		(struct net_target){"net.zone_to_broker_plain_mqtt",
				    "plaintext MQTT (1883) on the broker's host from a device zone",
				    p->broker_addr,
				    1883,
				    false,
				    false};
	uint32_t gw_mgmt = moat_net_gateway_addr(p, 1, 0);
	if (gw_mgmt) {
		t[n++] = (struct net_target){"net.zone_to_management",
					     "the gateway's management address from a device zone",
					     gw_mgmt,
					     22,
					     true,
					     false};
	}
	int z = moat_net_zone_of(p, src);
	uint32_t gw_own = z >= 0 ? moat_net_gateway_addr(p, (size_t)z, 0) : 0;
	if (gw_own) {
		t[n++] = (struct net_target){"net.zone_to_gateway",
					     "the gateway's SSH from its own device zone",
					     gw_own,
					     22,
					     true,
					     false};
	}
	return n;
}

static void net_probes(struct live *L)
{
	static const char *const id = "net.policy_from_namespace";
	static const char *const sum = "the network policy seen from a namespace in a device zone";
	if (!L->net_zones) {
		record(L, id, sum, LIVE_SKIP,
		       "no [network] zone configured in moat.conf: there is no network policy to "
		       "probe");
		return;
	}
	if (!L->net) {
		record(L, id, sum, LIVE_FAIL, "the [network] section of moat.conf is refused: %s",
		       L->net_error);
		return;
	}
	if (!L->netns) {
		record(L, id, sum, LIVE_FAIL,
		       "moat.conf has [network] zones, but no probe came from one: run moat audit "
		       "--live --netns NAME, NAME a network namespace of this host with an address "
		       "in a device zone (docs/OPERATIONS.md \"Live audit\")");
		return;
	}
	/* A first pass learns the namespace's address (the source the policy sees), the
	 * second probes what that address may and may not reach. */
	struct net_target t[NET_TARGETS_MAX];
	struct net_answer a = {0};
	char why[256], src_text[16];
	size_t n = net_targets(L, 0, t);
	if (net_probe_from(L->netns, t, 1, &a, why, sizeof(why)) != 0) {
		record(L, id, sum, LIVE_FAIL, "%s", why);
		return;
	}
	uint32_t src = a.src;
	moat_net_addr_format(src, src_text, sizeof(src_text));
	int z = moat_net_zone_of(L->net, src);
	if (z < 0 || L->net->zones[z].kind != MOAT_NET_ZONE_DEVICE) {
		record(L, id, sum, LIVE_FAIL,
		       "namespace %s connects from %s, which is in no device zone of [network]",
		       L->netns, src ? src_text : "no address");
		return;
	}
	n = net_targets(L, src, t);
	for (size_t i = 0; i < n; i++) {
		struct moat_net_pkt k = {.src = src,
					 .dst = t[i].addr,
					 .proto = MOAT_NET_PROTO_TCP,
					 .dport = t[i].port,
					 .to_gateway = t[i].to_gateway};
		t[i].want_open = moat_net_expect_pkt(L->net, &k);
	}
	memset(&a, 0, sizeof(a));
	if (net_probe_from(L->netns, t, n, &a, why, sizeof(why)) != 0) {
		record(L, id, sum, LIVE_FAIL, "%s", why);
		return;
	}
	bool broker_answered = a.reach[0] == NET_CONNECTED;
	for (size_t i = 0; i < n; i++) {
		char dst[16];
		moat_net_addr_format(t[i].addr, dst, sizeof(dst));
		enum net_reach r = a.reach[i] < NET_NO_SOCKET ? a.reach[i] : NET_NO_SOCKET;
		const char *words = net_reach_words[r];
		if (t[i].want_open) {
			bool ok = r == NET_CONNECTED;
			record(L, t[i].id, t[i].summary, ok ? LIVE_PASS : LIVE_FAIL,
			       "%s:%u from %s (namespace %s, zone %s), which the policy allows: %s",
			       dst, t[i].port, src_text, L->netns, L->net->zones[z].name, words);
		} else if (r == NET_CONNECTED || r == NET_REFUSED) {
			record(L, t[i].id, t[i].summary, LIVE_FAIL,
			       "%s:%u reached from %s (namespace %s, zone %s), which the policy "
			       "forbids: %s",
			       dst, t[i].port, src_text, L->netns, L->net->zones[z].name, words);
		} else if (!broker_answered) {
			record(L, t[i].id, t[i].summary, LIVE_SKIP,
			       "%s:%u: %s, but the broker did not answer from %s either: silence "
			       "proves nothing",
			       dst, t[i].port, words, L->netns);
		} else {
			record(L, t[i].id, t[i].summary, r == NET_NO_SOCKET ? LIVE_FAIL : LIVE_PASS,
			       "%s:%u from %s: %s", dst, t[i].port, src_text, words);
		}
	}
}

/* ---- the run ---- */

static void run_probes(struct live *L)
{
	struct lp_tls_opts o;
	/* Plaintext MQTT to the TLS listener. */
	broker_opts(L, &o, NULL, NULL);
	o.plaintext = true;
	tls_probe(L, "tls.plaintext", "MQTT without TLS", &o, L->attacker);
	/* Anonymous: TLS without a client certificate. */
	broker_opts(L, &o, NULL, NULL);
	tls_probe(L, "tls.anonymous", "TLS without a client certificate", &o, L->attacker);
	/* Old versions and weak suites, with the audit's valid certificate. */
	broker_opts(L, &o, L->a_cert, L->a_key);
	o.legacy = true;
	o.min_version = TLS1_VERSION;
	o.max_version = TLS1_VERSION;
	tls_probe(L, "tls.version_1_0", "TLS 1.0", &o, L->attacker);
	o.min_version = TLS1_1_VERSION;
	o.max_version = TLS1_1_VERSION;
	tls_probe(L, "tls.version_1_1", "TLS 1.1", &o, L->attacker);
	o.min_version = TLS1_2_VERSION;
	o.max_version = TLS1_2_VERSION;
	o.ciphers = "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA:AES256-SHA@SECLEVEL=0";
	tls_probe(L, "tls.cbc_suites", "TLS 1.2 with CBC suites only", &o, L->attacker);
	o.ciphers = "AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256@SECLEVEL=0";
	tls_probe(L, "tls.static_rsa", "TLS 1.2 without forward secrecy (RSA key exchange)", &o,
		  L->attacker);
	o.ciphers = "NULL-SHA256:NULL-SHA:ECDHE-ECDSA-NULL-SHA:ECDHE-RSA-NULL-SHA@SECLEVEL=0";
	tls_probe(L, "tls.null_suites", "TLS 1.2 with unencrypted (NULL) suites", &o, L->attacker);
	/* Certificates the broker must refuse. */
	char xid[MOAT_ID_BUF_LEN];
	sf(xid, sizeof(xid), "audit-%s-x", L->run);
	broker_opts(L, &o, L->f_cert, L->f_key);
	tls_probe(L, "cert.foreign", "a certificate from another CA", &o, xid);
	broker_opts(L, &o, L->x_cert, L->x_key);
	tls_probe(L, "cert.expired", "an expired certificate of this deployment's CA", &o, xid);
	connect_probe(L, "cert.revoked", "a revoked certificate", L->r_cert, L->r_key, L->revoked,
		      L->revoked, "revoked");
	/* Client ids. */
	connect_probe(L, "identity.takeover", "client id of another device (takeover)", L->a_cert,
		      L->a_key, L->victim, L->attacker, "client_id_mismatch");
	char suffixed[MOAT_ID_BUF_LEN + 8];
	sf(suffixed, sizeof(suffixed), "%s:second", L->attacker);
	connect_probe(L, "identity.second_session", "a device opens a second session (id:suffix)",
		      L->a_cert, L->a_key, suffixed, L->attacker, "client_id_suffix_refused");
	attacker_session(L);
	will_probe(L);
	/* moatd */
	const char *no_cert[] = {"event=auth_refused", "id=-", NULL};
	moatd_probe(L, "moatd.no_certificate", "moatd without a client certificate", NULL, NULL,
		    "/api/firmware/version", NULL, 0, no_cert);
	const char *foreign[] = {"event=auth_refused", NULL};
	moatd_probe(L, "moatd.foreign_certificate", "moatd with a certificate from another CA",
		    L->f_cert, L->f_key, "/api/firmware/version", NULL, 0, foreign);
	char hdr[128], want[96];
	sf(hdr, sizeof(hdr), MOAT_SERVER_DEVICE_HEADER ": %s\r\n", L->victim);
	sf(want, sizeof(want), "id=%s", L->attacker);
	char want_sp[104];
	sf(want_sp, sizeof(want_sp), "%s ", want);
	const char *other[] = {"event=auth_refused", want_sp, NULL};
	moatd_probe(L, "moatd.other_device",
		    "moatd asked for another device with this one's certificate", L->a_cert,
		    L->a_key, "/api/firmware/version", hdr, 0, other);
	char rwant[96];
	sf(rwant, sizeof(rwant), "id=%s ", L->revoked);
	const char *revoked[] = {"event=auth_refused", rwant, NULL};
	moatd_probe(L, "moatd.revoked", "moatd with a revoked certificate", L->r_cert, L->r_key,
		    "/api/firmware/version", NULL, 0, revoked);
	const char *trav[] = {"event=request", want_sp,
			      "path=/api/firmware/download/../../../pki/issuer.key status=4", NULL};
	moatd_probe(L, "moatd.path_traversal", "path traversal out of the firmware store",
		    L->a_cert, L->a_key, "/api/firmware/download/../../../pki/issuer.key", NULL, 0,
		    trav);
	const char *trav2[] = {"event=request", want_sp,     "path=/api/firmware/download/",
			       "pki",		" status=4", NULL};
	moatd_probe(L, "moatd.path_traversal_encoded", "encoded path traversal (%2e%2e%2f)",
		    L->a_cert, L->a_key, "/api/firmware/download/%2e%2e%2f%2e%2e%2fpki%2fca.key",
		    NULL, 0, trav2);
	const char *big[] = {"event=request_refused", "431", NULL};
	moatd_probe(L, "moatd.oversized_request", "a request with 60 KB of headers", L->a_cert,
		    L->a_key, "/api/firmware/version", NULL, 60000, big);
	firmware_probes(L);
	net_probes(L);
}

/* The checklist row and OWASP IoT item a probe serves, by its id's prefix. */
static void probe_refs(const char *id, const char **checklist, const char **owasp)
{
	static const struct {
		const char *prefix, *checklist, *owasp;
	} refs[] = {
		{"tls.", "TLS 1.2+ with AEAD suites only, no plaintext listener", MOAT_OWASP_I7},
		{"cert.", "mutual TLS: foreign, expired and revoked certificates refused",
		 MOAT_OWASP_I2},
		{"identity.", "client id bound to the certificate (no session takeover)",
		 MOAT_OWASP_I2},
		{"read.", "least-privilege ACL: a device reads only its own commands",
		 MOAT_OWASP_I3},
		{"write.", "least-privilege ACL: a device writes only its own topics",
		 MOAT_OWASP_I3},
		{"payload.", "payload schema and size limits", MOAT_OWASP_I2},
		{"limit.", "rate and subscription limits", MOAT_OWASP_I2},
		{"moatd.", "update server: mutual TLS, one device per certificate, no traversal",
		 MOAT_OWASP_I3},
		{"update.", "signed updates: whole manifest signed, anti-rollback", MOAT_OWASP_I4},
		{"net.", "network isolation", MOAT_OWASP_I2},
	};
	*checklist = "live audit";
	*owasp = MOAT_OWASP_I2;
	for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
		if (strncmp(id, refs[i].prefix, strlen(refs[i].prefix)) == 0) {
			*checklist = refs[i].checklist;
			*owasp = refs[i].owasp;
			return;
		}
	}
}

/* One check per probe ("live.<id>"), severity high: a PASS ran clean, a FAIL is a finding
 * with its evidence, a SKIP "could not check". The checks live as long as the process
 * (the collector keeps pointers to them). */
static int report(const struct live *L, struct moat_audit_result *r, struct moat_err *err)
{
	static struct moat_audit_check checks[LIVE_MAX_PROBES];
	static char ids[LIVE_MAX_PROBES][64];
	for (size_t i = 0; i < L->count; i++) {
		const struct live_outcome *o = &L->out[i];
		sf(ids[i], sizeof(ids[i]), "live.%s", o->id);
		struct moat_audit_check *c = &checks[i];
		c->id = ids[i];
		c->severity = MOAT_AUDIT_HIGH;
		c->summary = o->summary;
		probe_refs(o->id, &c->checklist, &c->owasp);
		int rc = 0;
		char title[200];
		switch (o->verdict) {
		case LIVE_PASS:
			rc = moat_audit_ran(r, c);
			break;
		case LIVE_FAIL:
			sf(title, sizeof(title), "not refused, or refused without a record: %s",
			   o->summary);
			rc = moat_audit_add(r, c, c->severity, title, o->evidence,
					    "see docs/OPERATIONS.md \"Live audit\" for the probe",
					    NULL, 0);
			break;
		case LIVE_SKIP:
			rc = moat_audit_cannot(r, c, o->evidence);
			break;
		}
		if (rc != 0) {
			return moat_err_set(err, MOAT_ENOMEM, "audit: out of memory");
		}
	}
	return 0;
}

/* Whether moat.conf declares zones ([network] with a key), and their policy. */
static void net_load(struct live *L, const struct moat_config *cfg)
{
	for (size_t i = 0; i < cfg->count && !L->net_zones; i++) {
		L->net_zones = strcmp(cfg->entries[i].section, "network") == 0;
	}
	if (!L->net_zones) {
		return;
	}
	struct moat_err e = {0};
	L->net = malloc(sizeof(*L->net));
	if (!L->net) {
		sf(L->net_error, sizeof(L->net_error), "out of memory");
	} else if (moat_net_policy_from_config(cfg, L->net, &e) != 0) {
		sf(L->net_error, sizeof(L->net_error), "%s", e.msg);
		free(L->net);
		L->net = NULL;
	}
}

static int prepare(struct live *L, struct moat_err *err)
{
	struct moat_deploy *d = NULL;
	int rc = cli_open(MOAT_DEPLOY_READ, &d, err);
	if (rc != 0) {
		return rc;
	}
	sf(L->dir, sizeof(L->dir), "%s", moat_deploy_dir(d));
	struct moat_broker_settings bs;
	if ((rc = moat_broker_settings_load(moat_deploy_config(d), moat_deploy_settings(d), &bs,
					    err)) == 0 &&
	    (rc = moat_broker_endpoint_get(d, &bs, &L->broker, err)) == 0) {
		L->moatd_ok = moat_server_endpoint_get(d, L->broker.verify_name, &L->moatd, err) ==
			      0;
	}
	if (rc == 0) {
		net_load(L, moat_deploy_config(d));
	}
	moat_deploy_close(d);
	if (rc != 0) {
		return rc;
	}
	if (L->moatd_ok && moat_server_pid(L->dir) <= 0) {
		L->moatd_ok = false;
	}
	sf(L->events.path, sizeof(L->events.path), "%s/%s", L->dir, MOAT_PLUGIN_EVENTS_FILE_NAME);
	sf(L->moatd_log.path, sizeof(L->moatd_log.path), "%s/%s", L->dir, MOAT_MOATD_LOG_FILE);
	sf(L->broker_log.path, sizeof(L->broker_log.path), "%s/%s", L->dir, MOAT_BROKER_LOG_FILE);
	L->broker_log.start = file_size(L->broker_log.path);
	L->events.start = file_size(L->events.path);
	L->moatd_log.start = file_size(L->moatd_log.path);
	return 0;
}

/* ---- the run declared to monitoring (auditrun.h) ---- */

/* The longest a run is declared for before it ends; its end rewrites the window. */
#define LIVE_RUN_DECLARED_MS (10 * 60 * 1000)

/* The source address this host uses towards the broker (a UDP socket connected to it:
 * the kernel's choice, no packet sent), into out. */
static bool source_address(const struct live *L, char *out, size_t size)
{
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res = NULL;
	char port[16];
	sf(port, sizeof(port), "%d", L->broker.port);
	if (getaddrinfo(L->broker.addr, port, &hints, &res) != 0 || !res) {
		return false;
	}
	bool ok = false;
	int fd = socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0 &&
	    getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		const void *a = ss.ss_family == AF_INET6
					? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
					: (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
		ok = inet_ntop(ss.ss_family, a, out, (socklen_t)size) != NULL;
		/* an IPv4-mapped address is logged by Mosquitto as the IPv4 one */
		if (ok && strncmp(out, "::ffff:", 7) == 0 && strchr(out + 7, '.')) {
			memmove(out, out + 7, strlen(out + 7) + 1);
		}
	}
	if (fd >= 0) {
		close(fd);
	}
	freeaddrinfo(res);
	return ok;
}

/* Declares the run in run/audit-runs for [from_ms, until_ms], so moatd marks the refused
 * handshakes of its TLS probes with audit_run=<run>. A declaration that cannot be written
 * is said on stderr: the probes still run, their TLS events just carry no run id. */
static void declare_run(struct live *L, int64_t from_ms, int64_t until_ms)
{
	struct moat_audit_run run = {.from_ms = from_ms, .until_ms = until_ms};
	struct moat_audit_runs runs;
	struct moat_err e = {0};
	char path[PATH_MAX], text[MOAT_AUDIT_RUNS_MAX_BYTES + 1];
	char *old = NULL;
	size_t old_len = 0;
	sf(run.run, sizeof(run.run), "%s", L->run);
	sf(path, sizeof(path), "%s/%s", L->dir, MOAT_AUDIT_RUNS_FILE);
	if (!source_address(L, run.address, sizeof(run.address))) {
		fprintf(stderr,
			"moat: audit run %s not declared in %s: no source address towards %s; its "
			"TLS probes' events carry no run id\n",
			L->run, MOAT_AUDIT_RUNS_FILE, L->broker.addr);
		return;
	}
	/* a file that does not parse is replaced: the runs it named are over or lost */
	if (!moat_fs_exists(path) ||
	    moat_fs_read_all(path, MOAT_AUDIT_RUNS_MAX_BYTES + 1, &old, &old_len, &e) != 0 ||
	    moat_audit_runs_parse(old, old_len, &runs, &e) != 0) {
		memset(&runs, 0, sizeof(runs));
	}
	free(old);
	if (moat_audit_runs_put(&runs, &run, &e) != 0 ||
	    moat_fs_write_atomic(path, text, moat_audit_runs_format(&runs, text, sizeof(text)),
				 0644, &e) != 0) {
		fprintf(stderr, "moat: audit run %s not declared: %s\n", L->run, e.msg);
	}
}

int audit_live_run(struct moat_audit_result *r, char run_id[9], const struct audit_live_opts *opts,
		   struct moat_err *err)
{
	static struct live L;
	memset(&L, 0, sizeof(L));
	L.netns = opts->netns;
	L.event_wait_ms = opts->event_wait_ms > 0 ? (int)opts->event_wait_ms : LIVE_EVENT_WAIT_MS;
	/* A broker that closes a probe's connection must end that probe, not the audit:
	 * OpenSSL writes with write(2), which would raise SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);

	moat_policy_init(&L.policy);
	uint8_t rnd[4];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		return moat_err_set(err, MOAT_ECRYPTO, "no random bytes for the run id");
	}
	sf(L.run, sizeof(L.run), "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
	memcpy(run_id, L.run, sizeof(L.run));
	sf(L.attacker, sizeof(L.attacker), "audit-%s", L.run);
	sf(L.victim, sizeof(L.victim), "audit-%s-v", L.run);
	sf(L.revoked, sizeof(L.revoked), "audit-%s-r", L.run);
	int rc = prepare(&L, err);
	if (rc == 0 && opts->net_only) {
		net_probes(&L); /* no identity issued, nothing to remove */
		rc = report(&L, r, err);
	}
	if (rc != 0 || opts->net_only) {
		moat_policy_free(&L.policy);
		free(L.net);
		return rc;
	}
	const char *tmpdir = getenv("TMPDIR");
	sf(L.tmp, sizeof(L.tmp), "%s/moat-audit-XXXXXX", tmpdir ? tmpdir : "/tmp");
	if (!mkdtemp(L.tmp)) {
		moat_policy_free(&L.policy);
		free(L.net);
		return moat_err_errno(err, MOAT_EIO, errno, "%s", L.tmp);
	}
	sf(L.x_cert, sizeof(L.x_cert), "%s/expired.crt", L.tmp);
	sf(L.x_key, sizeof(L.x_key), "%s/expired.key", L.tmp);
	sf(L.f_cert, sizeof(L.f_cert), "%s/foreign.crt", L.tmp);
	sf(L.f_key, sizeof(L.f_key), "%s/foreign.key", L.tmp);
	sf(L.a_cert, sizeof(L.a_cert), "%s/pki/identities/%s/cert.pem", L.dir, L.attacker);
	sf(L.a_key, sizeof(L.a_key), "%s/pki/identities/%s/key.pem", L.dir, L.attacker);
	sf(L.v_cert, sizeof(L.v_cert), "%s/pki/identities/%s/cert.pem", L.dir, L.victim);
	sf(L.v_key, sizeof(L.v_key), "%s/pki/identities/%s/key.pem", L.dir, L.victim);
	sf(L.r_cert, sizeof(L.r_cert), "%s/pki/identities/%s/cert.pem", L.dir, L.revoked);
	sf(L.r_key, sizeof(L.r_key), "%s/pki/identities/%s/key.pem", L.dir, L.revoked);

	if ((rc = issue_identities(&L, err)) != 0 || (rc = load_policy(&L, err)) != 0) {
		delete_identities(&L);
	} else if (!wait_ready(&L)) {
		rc = moat_err_set(
			err, MOAT_ESTATE,
			"audit run %s: the broker at %s:%d never accepted the audit's device "
			"(is it running? moat status)",
			L.run, L.broker.addr, L.broker.port);
		delete_identities(&L);
	} else {
		int64_t from = moat_time_wall_ms();
		declare_run(&L, from, from + LIVE_RUN_DECLARED_MS);
		run_probes(&L);
		declare_run(&L, from, moat_time_wall_ms());
		delete_identities(&L);
		rc = report(&L, r, err);
	}
	struct moat_err rerr = {0};
	if (moat_fs_remove_tree(L.tmp, &rerr) != 0) {
		fprintf(stderr, "moat: %s\n", rerr.msg);
	}
	moat_policy_free(&L.policy);
	free(L.net);
	return rc;
}
