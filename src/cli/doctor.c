/* doctor.c: `moat doctor`: why a device, a connection or an update does not work, in words.
 *
 *   moat doctor DEVICE      what the registry, the certificates, the broker's security
 *                           events and moatd's records say about DEVICE
 *   moat doctor --connect HOST[:PORT] --cert C --key K [--ca CA] [--client-id ID]
 *                           [--subscribe FILTER]
 *                           the connection a device makes (liveprobe.c), each failure
 *                           explained in troubleshooting terms
 *   moat doctor --envelope E --image I --device-type T --floor N [--running V] [--trust F]
 *                           the device's own verifier (fwverify.h) on an update, its
 *                           verdict explained
 *
 * Every finding is a problem code (stable, for --json and scripts) and a sentence. Exit
 * status: 0 nothing wrong found, 1 a problem found, 2 the doctor could not run.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cli.h"
#include "moat/broker.h"
#include "moat/certinfo.h"
#include "moat/firmware.h"
#include "moat/fsutil.h"
#include "moat/fwverify.h"
#include "moat/liveprobe.h"
#include "moat/manifest.h"
#include "moat/monitor.h"
#include "moat/policy.h"
#include "moat/registry.h"
#include "moat/server.h"
#include "moat/timeutil.h"
#include "moat/update_schema.h"

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

#define DOC_MAX 48
#define DOC_TEXT 1024

struct doc_line {
	const char *code; /* NULL: a fact, not a problem */
	char text[DOC_TEXT];
};

struct doctor {
	const char *subject;
	struct doc_line lines[DOC_MAX];
	size_t count;
	size_t problems;
	/* --json: an extra member, "name":value (value already JSON), after the facts */
	const char *extra_name;
	const char *extra_json;
};

static void say(struct doctor *D, const char *code, const char *fmt, ...) MOAT_PRINTF(3, 4);
static void say(struct doctor *D, const char *code, const char *fmt, ...)
{
	if (D->count >= DOC_MAX) {
		return;
	}
	struct doc_line *l = &D->lines[D->count++];
	l->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(l->text, sizeof(l->text), fmt, ap);
	va_end(ap);
	if (code) {
		D->problems++;
	}
}

static int finish(const struct doctor *D)
{
	if (cli_globals.json) {
		printf("{\"subject\":");
		cli_json_string(stdout, D->subject);
		printf(",\"healthy\":%s,\"problems\":[", D->problems ? "false" : "true");
		bool first = true;
		for (size_t i = 0; i < D->count; i++) {
			if (!D->lines[i].code) {
				continue;
			}
			printf("%s{\"code\":\"%s\",\"explanation\":", first ? "" : ",",
			       D->lines[i].code);
			cli_json_string(stdout, D->lines[i].text);
			printf("}");
			first = false;
		}
		printf("],\"facts\":[");
		first = true;
		for (size_t i = 0; i < D->count; i++) {
			if (D->lines[i].code) {
				continue;
			}
			printf("%s", first ? "" : ",");
			cli_json_string(stdout, D->lines[i].text);
			first = false;
		}
		printf("]");
		if (D->extra_name) {
			printf(",\"%s\":%s", D->extra_name, D->extra_json);
		}
		printf("}\n");
	} else {
		printf("%s: %s\n", D->subject, D->problems ? "problems found" : "no problem found");
		for (size_t i = 0; i < D->count; i++) {
			const struct doc_line *l = &D->lines[i];
			if (l->code) {
				printf("  PROBLEM [%s] ", l->code);
			} else {
				printf("  ");
			}
			cli_print_text(stdout, l->text, strlen(l->text));
			printf("\n");
		}
	}
	return D->problems ? CLI_FAIL : CLI_OK;
}

static const char *when(int64_t t, char buf[MOAT_TIME_ISO_LEN])
{
	moat_time_iso(t, buf);
	return buf;
}

/* ---- moat doctor DEVICE ---- */

/* The value of "key":"..." in a security event line (the plugin's cJSON output, every
 * string already restricted to printable ASCII), into out. */
static bool ev_field(const char *line, const char *key, char *out, size_t size)
{
	char pat[64];
	sf(pat, sizeof(pat), "\"%s\":\"", key);
	const char *p = strstr(line, pat);
	if (!p) {
		return false;
	}
	p += strlen(pat);
	size_t n = 0;
	while (p[n] && p[n] != '"' && n + 1 < size) {
		if (p[n] == '\\' && p[n + 1]) {
			p++;
		}
		out[n] = p[n];
		n++;
	}
	out[n] = '\0';
	return true;
}

struct ev_summary {
	char last_seen[40], last_seen_kind[32];
	char last_address[64];
	char mismatch_client_id[160], mismatch_time[40];
	char taken_by[MOAT_ID_BUF_LEN], taken_time[40];
	char ban_time[40], ban_detail[200], banned_until[64];
	unsigned rate_limited;
	char rate_time[40];
	char denied[5][200];
	size_t denied_count;
	unsigned denied_total;
	char payload_detail[200], payload_time[40];
	char refused_reason[64], refused_detail[200], refused_time[40];
	char kicked_time[40];
	char tls_time[40], tls_address[64];
	char any_tls_time[40], any_tls_address[64];
	bool have_connected;
};

/* moatd's tls_refused events (read from Mosquitto's log: a handshake that fails while the
 * broker accepts the connection never reaches the plugin, so log/security-events.jsonl may
 * have none): the newest of any client, and the newest from the device's last address
 * since it was last seen, join what scan_events found when newer. */
static int on_tls_refused(const struct moat_security_event *ev, void *ctx)
{
	struct ev_summary *s = ctx;
	char t[MOAT_TIME_ISO_LEN];
	moat_time_iso(ev->time_ms / 1000, t);
	if (strcmp(t, s->any_tls_time) > 0) {
		sf(s->any_tls_time, sizeof(s->any_tls_time), "%s", t);
		sf(s->any_tls_address, sizeof(s->any_tls_address), "%s", ev->address);
	}
	/* from its address, and not before it was last seen (a failure it has since
	 * connected after is no longer why it does not work) */
	if (s->last_address[0] && strcmp(ev->address, s->last_address) == 0 &&
	    strcmp(t, s->last_seen) >= 0 && strcmp(t, s->tls_time) > 0) {
		sf(s->tls_time, sizeof(s->tls_time), "%s", t);
		sf(s->tls_address, sizeof(s->tls_address), "%s", ev->address);
	}
	return 0;
}

static void scan_tls_refused(struct moat_registry *reg, struct ev_summary *s)
{
	struct moat_event_filter f = {.kind = MOAT_EVENT_KIND_TLS_REFUSED, .limit = 1000};
	struct moat_err err = {0};
	if (moat_registry_security_event_foreach(reg, &f, on_tls_refused, s, &err) != 0) {
		/* the registry unreadable leaves what the events file said */
	}
}

static void scan_events(const char *path, const char *id, struct ev_summary *s)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		return;
	}
	char line[4096];
	char kind[40], ident[MOAT_ID_BUF_LEN], cid[200], reason[64], detail[300], t[40], addr[64];
	while (fgets(line, sizeof(line), f)) {
		kind[0] = ident[0] = cid[0] = reason[0] = detail[0] = t[0] = addr[0] = '\0';
		ev_field(line, "kind", kind, sizeof(kind));
		ev_field(line, "identity", ident, sizeof(ident));
		ev_field(line, "client_id", cid, sizeof(cid));
		ev_field(line, "reason", reason, sizeof(reason));
		ev_field(line, "detail", detail, sizeof(detail));
		ev_field(line, "time", t, sizeof(t));
		ev_field(line, "address", addr, sizeof(addr));
		if (strcmp(kind, "auth_refused") == 0 &&
		    strcmp(reason, "tls_handshake_failed") == 0) {
			sf(s->any_tls_time, sizeof(s->any_tls_time), "%s", t);
			sf(s->any_tls_address, sizeof(s->any_tls_address), "%s", addr);
			if (s->last_address[0] && strcmp(addr, s->last_address) == 0) {
				sf(s->tls_time, sizeof(s->tls_time), "%s", t);
				sf(s->tls_address, sizeof(s->tls_address), "%s", addr);
			}
			continue;
		}
		bool mine = strcmp(ident, id) == 0;
		if (!mine && strcmp(cid, id) == 0 && strcmp(kind, "auth_refused") == 0 &&
		    ident[0]) {
			sf(s->taken_by, sizeof(s->taken_by), "%s", ident);
			sf(s->taken_time, sizeof(s->taken_time), "%s", t);
			continue;
		}
		if (!mine) {
			continue;
		}
		if (addr[0]) {
			sf(s->last_address, sizeof(s->last_address), "%s", addr);
		}
		if (strcmp(kind, "connected") == 0 || strcmp(kind, "disconnected") == 0) {
			sf(s->last_seen, sizeof(s->last_seen), "%s", t);
			sf(s->last_seen_kind, sizeof(s->last_seen_kind), "%s", kind);
			s->have_connected = true;
			if (strcmp(kind, "connected") == 0) {
				/* a connect after a failure: the failures are history */
				s->refused_reason[0] = '\0';
				s->mismatch_client_id[0] = '\0';
				s->tls_time[0] = '\0';
			}
		} else if (strcmp(kind, "auth_refused") == 0) {
			if (strcmp(reason, "client_id_mismatch") == 0) {
				sf(s->mismatch_client_id, sizeof(s->mismatch_client_id), "%s", cid);
				sf(s->mismatch_time, sizeof(s->mismatch_time), "%s", t);
			} else {
				sf(s->refused_reason, sizeof(s->refused_reason), "%s", reason);
				sf(s->refused_detail, sizeof(s->refused_detail), "%s", detail);
				sf(s->refused_time, sizeof(s->refused_time), "%s", t);
				const char *u = strstr(detail, "until ");
				if (strcmp(reason, "banned") == 0 && u) {
					sf(s->banned_until, sizeof(s->banned_until), "%s", u + 6);
				}
			}
		} else if (strcmp(kind, "flapping_banned") == 0) {
			sf(s->ban_time, sizeof(s->ban_time), "%s", t);
			sf(s->ban_detail, sizeof(s->ban_detail), "%s", detail);
		} else if (strcmp(kind, "rate_limited") == 0) {
			s->rate_limited++;
			sf(s->rate_time, sizeof(s->rate_time), "%s", t);
		} else if (strcmp(kind, "acl_denied") == 0) {
			s->denied_total++;
			bool known = false;
			for (size_t i = 0; i < s->denied_count; i++) {
				known = known || strcmp(s->denied[i], detail) == 0;
			}
			if (!known && s->denied_count < 5) {
				sf(s->denied[s->denied_count++], sizeof(s->denied[0]), "%s",
				   detail);
			}
		} else if (strcmp(kind, "payload_rejected") == 0) {
			sf(s->payload_detail, sizeof(s->payload_detail), "%s: %s", reason, detail);
			sf(s->payload_time, sizeof(s->payload_time), "%s", t);
		} else if (strcmp(kind, "revoked_kicked") == 0) {
			sf(s->kicked_time, sizeof(s->kicked_time), "%s", t);
		}
	}
	fclose(f);
}

/* The last moatd refusal of id (its log's event=auth_refused lines). */
static void scan_moatd(const char *path, const char *id, char *out, size_t size)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		return;
	}
	char line[2048], want[MOAT_ID_BUF_LEN + 8];
	sf(want, sizeof(want), " id=%s ", id);
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "event=auth_refused") && strstr(line, want)) {
			line[strcspn(line, "\n")] = '\0';
			sf(out, size, "%s", line);
		}
	}
	fclose(f);
}

struct upd_ctx {
	struct doctor *D;
	int n;
};

static int on_update(const struct moat_update_event *ev, void *ctx)
{
	struct upd_ctx *u = ctx;
	char t[MOAT_TIME_ISO_LEN];
	if (u->n++ == 0) {
		say(u->D, NULL, "last update report: %s%s%s at %s%s%s",
		    moat_update_stage_name(ev->stage), ev->version[0] ? " of " : "", ev->version,
		    when(ev->at, t), ev->running[0] ? ", running " : "", ev->running);
	}
	if (ev->stage == MOAT_UPD_REFUSED && u->n <= 1) {
		say(u->D, "update_refused",
		    "the device refused the update %s: %s (the device's verifier: a signature by "
		    "a key not trusted or tampered with, an expired manifest, another device type, "
		    "a security version below its floor, or not newer than what it runs)",
		    ev->version[0] ? ev->version : "offered",
		    ev->reason[0] ? ev->reason : "no reason given");
	}
	return 0;
}

/* The device's last diagnostics report (moatd keeps it), as a fact and in --json. */
static void last_diagnostics(struct doctor *D, struct moat_registry *reg, const char *id,
			     struct cli_diag *o)
{
	struct moat_err err = {0};
	D->extra_name = "last_diagnostics";
	D->extra_json = "null";
	if (cli_last_diagnostics(reg, id, o, &err) != 0) {
		say(D, NULL, "last diagnostics unreadable: %s", err.msg);
	} else if (!o->found) {
		say(D, NULL,
		    "no diagnostics report received from it (moat cmd %s diagnostics asks for one)",
		    id);
	} else {
		D->extra_json = o->json;
		say(D, NULL, "last diagnostics received at %s: %s", o->received, o->text);
	}
}

static int doctor_device(const char *id)
{
	struct doctor D = {.subject = id};
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0) {
		cli_fail(&err);
		return CLI_USAGE;
	}
	struct moat_identity ident;
	if (moat_registry_identity_get(moat_deploy_registry(d), id, &ident, &err) != 0) {
		moat_deploy_close(d);
		if (err.code == MOAT_ENOENT) {
			say(&D, "unknown",
			    "%s is not in the registry: the broker and moatd refuse it (moat device "
			    "list shows the identities; moat device add %s adds it)",
			    id, id);
			return finish(&D);
		}
		cli_fail(&err);
		return CLI_USAGE;
	}
	int64_t now = moat_time_now();
	char t1[MOAT_TIME_ISO_LEN], t2[MOAT_TIME_ISO_LEN];
	say(&D, NULL, "%s, device type %s, certificate serial %s, valid %s to %s",
	    moat_role_name(ident.role), ident.device_type[0] ? ident.device_type : "-",
	    ident.serial_hex, when(ident.not_before, t1), when(ident.not_after, t2));
	if (ident.status == MOAT_ID_REVOKED || ident.cert_revoked) {
		say(&D, "revoked",
		    "its certificate %s is revoked (reason code %d): the broker and moatd refuse it; "
		    "moat device renew %s issues a new one",
		    ident.serial_hex, ident.revoked_reason, id);
	} else if (ident.status == MOAT_ID_DISABLED) {
		say(&D, "disabled",
		    "it is disabled: the broker and moatd refuse it although its certificate is "
		    "valid; moat device enable %s",
		    id);
	}
	if (ident.not_after <= now) {
		say(&D, "expired",
		    "its certificate expired at %s (this host's clock says %s; a clock that is "
		    "ahead makes a valid certificate look expired): moat device renew %s, then "
		    "install the new certificate on the device",
		    when(ident.not_after, t1), when(now, t2), id);
	} else if (ident.not_before > now) {
		say(&D, "not_yet_valid",
		    "its certificate is not valid before %s: this host's clock (%s) is behind, or "
		    "the certificate was issued by a host whose clock is ahead",
		    when(ident.not_before, t1), when(now, t2));
	}
	/* The certificate file the deployment holds for it, if it still does. */
	char path[PATH_MAX];
	if (moat_deploy_identity_path(d, id, "cert.pem", path, sizeof(path), &err) == 0) {
		struct moat_cert_info ci;
		if (moat_cert_info_file(path, &ci, &err) == 0 &&
		    strcasecmp(ci.serial_hex, ident.serial_hex) != 0) {
			say(&D, "stale_certificate_file",
			    "pki/identities/%s/cert.pem holds serial %s, not the current %s: export "
			    "the device's files again (moat device export %s)",
			    id, ci.serial_hex, ident.serial_hex, id);
		}
	}
	struct ev_summary s;
	memset(&s, 0, sizeof(s));
	char evpath[PATH_MAX], mdpath[PATH_MAX];
	sf(evpath, sizeof(evpath), "%s/%s", moat_deploy_dir(d), MOAT_PLUGIN_EVENTS_FILE_NAME);
	sf(mdpath, sizeof(mdpath), "%s/%s", moat_deploy_dir(d), MOAT_MOATD_LOG_FILE);
	scan_events(evpath, id, &s);
	scan_tls_refused(moat_deploy_registry(d), &s);
	if (s.last_seen[0]) {
		say(&D, NULL, "last seen by the broker: %s at %s%s%s", s.last_seen_kind,
		    s.last_seen, s.last_address[0] ? " from " : "", s.last_address);
	} else {
		say(&D, NULL, "never seen connected by the broker (log/security-events.jsonl)");
	}
	if (s.mismatch_client_id[0]) {
		say(&D, "client_id_mismatch",
		    "it connects with client id '%s', but its certificate's CN is '%s': the broker "
		    "refuses that (last at %s); set the device's client id to '%s'",
		    s.mismatch_client_id, id, s.mismatch_time, id);
	}
	if (s.taken_by[0]) {
		say(&D, NULL,
		    "identity %s tried to connect with this device's client id (last at %s) and "
		    "was refused",
		    s.taken_by, s.taken_time);
	}
	if (s.ban_time[0]) {
		say(&D, "banned_flapping",
		    "banned for flapping at %s (%s)%s%s: look for a reconnect loop on the device "
		    "(a crash, a bad network, two devices sharing this identity)",
		    s.ban_time, s.ban_detail, s.banned_until[0] ? "; refused until " : "",
		    s.banned_until);
	} else if (s.banned_until[0]) {
		say(&D, "banned_flapping", "refused as banned for flapping until %s",
		    s.banned_until);
	}
	if (s.refused_reason[0] && strcmp(s.refused_reason, "banned") != 0 &&
	    strcmp(s.refused_reason, "revoked") != 0 && strcmp(s.refused_reason, "disabled") != 0) {
		say(&D, "broker_refused", "the broker last refused it at %s: %s (%s)",
		    s.refused_time, s.refused_reason, s.refused_detail);
	}
	if (s.kicked_time[0]) {
		say(&D, NULL,
		    "the broker disconnected it at %s because its certificate was revoked",
		    s.kicked_time);
	}
	if (s.rate_limited) {
		say(&D, "rate_limited",
		    "rate-limited %u time(s), last at %s: messages over its role's limits were "
		    "dropped (broker/policy 'limits device')",
		    s.rate_limited, s.rate_time);
	}
	if (s.denied_total) {
		char list[5 * 200 + 16] = "";
		size_t used = 0;
		for (size_t i = 0; i < s.denied_count; i++) {
			int n = snprintf(list + used, sizeof(list) - used, "%s%s", i ? "; " : "",
					 s.denied[i]);
			if (n < 0 || (size_t)n >= sizeof(list) - used) {
				break;
			}
			used += (size_t)n;
		}
		say(&D, "topics_denied",
		    "the broker denied %u access(es) to topics outside what a %s may use: %s",
		    s.denied_total, moat_role_name(ident.role), list);
	}
	if (s.payload_detail[0]) {
		say(&D, "payload_rejected", "a message was dropped at %s: %s", s.payload_time,
		    s.payload_detail);
	}
	if (s.tls_time[0]) {
		say(&D, "tls_failure",
		    "the last TLS handshake failure from its address %s was at %s (a certificate "
		    "the broker does not accept, an old TLS version, or no certificate)",
		    s.tls_address, s.tls_time);
	} else if (s.any_tls_time[0]) {
		say(&D, NULL,
		    "last TLS handshake failure of any client: %s from %s (a failed handshake "
		    "names no identity)",
		    s.any_tls_time, s.any_tls_address);
	}
	char moatd_line[1024] = "";
	scan_moatd(mdpath, id, moatd_line, sizeof(moatd_line));
	if (moatd_line[0]) {
		say(&D, "moatd_refused", "moatd refused it: %s", moatd_line);
	}
	struct upd_ctx u = {.D = &D};
	if (moat_registry_update_event_foreach(moat_deploy_registry(d), id, 5, on_update, &u,
					       &err) != 0) {
		say(&D, NULL, "update reports unreadable: %s", err.msg);
	} else if (u.n == 0) {
		say(&D, NULL, "no update reports (diagnostics) recorded by moatd");
	}
	struct cli_diag diag;
	last_diagnostics(&D, moat_deploy_registry(d), id, &diag);
	moat_deploy_close(d);
	return finish(&D);
}

/* ---- moat doctor --connect ---- */

/* The names a certificate is for (SAN DNS and IP), into out. */
static void cert_names(X509 *cert, char *out, size_t size)
{
	out[0] = '\0';
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	size_t used = 0;
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		char one[64] = "";
		if (g->type == GEN_DNS) {
			sf(one, sizeof(one), "%.*s", ASN1_STRING_length(g->d.dNSName),
			   (const char *)ASN1_STRING_get0_data(g->d.dNSName));
		} else if (g->type == GEN_IPADD) {
			int len = ASN1_STRING_length(g->d.iPAddress);
			const unsigned char *ip = ASN1_STRING_get0_data(g->d.iPAddress);
			if (len == 4 || len == 16) {
				inet_ntop(len == 4 ? AF_INET : AF_INET6, ip, one, sizeof(one));
			}
		}
		if (one[0]) {
			int n = snprintf(out + used, size - used, "%s%s", used ? ", " : "", one);
			if (n < 0 || (size_t)n >= size - used) {
				break;
			}
			used += (size_t)n;
		}
	}
	GENERAL_NAMES_free(names);
}

/* Checks the client certificate against the CA locally, as the broker will. */
static void check_client_chain(struct doctor *D, const char *cert_path, const char *ca_path)
{
	FILE *f = fopen(cert_path, "r");
	if (!f) {
		say(D, "certificate_unreadable", "%s: %s", cert_path, strerror(errno));
		return;
	}
	X509 *leaf = PEM_read_X509(f, NULL, moat_pem_no_passphrase, NULL);
	STACK_OF(X509) *extra = sk_X509_new_null();
	X509 *x;
	while (leaf && extra && (x = PEM_read_X509(f, NULL, moat_pem_no_passphrase, NULL))) {
		sk_X509_push(extra, x);
	}
	fclose(f);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	if (!leaf || !store || !ctx || X509_STORE_load_file(store, ca_path) != 1) {
		say(D, "certificate_unreadable", "%s or %s is not a PEM certificate", cert_path,
		    ca_path);
	} else if (X509_STORE_CTX_init(ctx, store, leaf, extra) == 1) {
		X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
		/* time is judged separately (clock), so a wrong clock is named as such */
		X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx),
					    X509_V_FLAG_NO_CHECK_TIME);
		if (X509_verify_cert(ctx) != 1) {
			int e = X509_STORE_CTX_get_error(ctx);
			if (e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
			    e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT) {
				say(D, "chain_incomplete",
				    "the client certificate's chain is incomplete: %s holds no issuing "
				    "CA that leads to %s (put the issuing CA after the certificate in "
				    "the file: moat device export writes both)",
				    cert_path, ca_path);
			} else {
				say(D, "client_certificate_untrusted",
				    "the client certificate does not verify against %s: %s",
				    ca_path, X509_verify_cert_error_string(e));
			}
		}
	}
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(extra, X509_free);
	X509_free(leaf);
}

static void explain_tls(struct doctor *D, const struct lp_conn *c, const char *host,
			const struct lp_tls_opts *o)
{
	long v = c->verify_result;
	if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
		char names[512] = "";
		if (c->server_leaf) {
			cert_names(c->server_leaf, names, sizeof(names));
		}
		say(D, "hostname_mismatch",
		    "the name '%s' is not in the server certificate%s%s%s: connect with a name it "
		    "carries, or reissue it with this name ([broker] hosts, then moat cert server)",
		    host, names[0] ? " (it is for: " : "", names, names[0] ? ")" : "");
		return;
	}
	if (v == X509_V_ERR_CERT_NOT_YET_VALID) {
		say(D, "clock_not_synchronised",
		    "the server certificate is not valid yet by this machine's clock: the clock "
		    "is not synchronised (check NTP)");
		return;
	}
	if (v == X509_V_ERR_CERT_HAS_EXPIRED) {
		say(D, "server_certificate_expired",
		    "the server certificate has expired (or this machine's clock is ahead): moat "
		    "cert server reissues it");
		return;
	}
	if (v != X509_V_OK) {
		say(D, "server_untrusted",
		    "the server's certificate does not lead to the CA %s: %s (wrong --ca, or the "
		    "server sends an incomplete chain)",
		    o->cafile, X509_verify_cert_error_string(v));
		return;
	}
	const char *e = c->error;
	if (strstr(e, "revoked")) {
		say(D, "certificate_revoked",
		    "the broker refused the client certificate as revoked (it is in the CRL): the "
		    "device needs a new certificate (moat device renew)");
	} else if (strstr(e, "certificate expired")) {
		say(D, "certificate_expired",
		    "the broker refused the client certificate as expired");
	} else if (strstr(e, "unknown ca") || strstr(e, "bad certificate") ||
		   strstr(e, "unsupported certificate")) {
		say(D, "certificate_not_trusted",
		    "the broker does not trust the client certificate (%s): it was not issued by "
		    "this deployment's CA, or its chain is incomplete",
		    e);
	} else if (strstr(e, "certificate required")) {
		say(D, "no_client_certificate",
		    "the broker requires a client certificate and none was sent");
	} else if (strstr(e, "protocol version") || strstr(e, "unsupported protocol") ||
		   strstr(e, "no protocols available") || strstr(e, "handshake failure") ||
		   strstr(e, "no shared cipher") || strstr(e, "no ciphers")) {
		say(D, "version_or_cipher_mismatch",
		    "TLS version or cipher mismatch (%s): moat accepts TLS 1.2 with AEAD suites and "
		    "TLS 1.3 only; update the device's TLS library or its settings",
		    e);
	} else {
		say(D, "tls_failed", "the TLS handshake failed: %s", e);
	}
}

static int doctor_connect(const char *target, const char *cert, const char *key, const char *ca,
			  const char *client_id, const char *filter, const char *server_name)
{
	struct doctor D = {.subject = target};
	char host[256];
	signal(SIGPIPE, SIG_IGN); /* a broker closing on us is an answer, not a crash */

	int port = 8883;
	sf(host, sizeof(host), "%s", target);
	char *colon = strrchr(host, ':');
	if (host[0] == '[') {
		char *end = strchr(host, ']');
		if (!end) {
			return cli_usage_error("--connect: '%s': no closing ']'", target);
		}
		*end = '\0';
		memmove(host, host + 1, strlen(host + 1) + 1);
		colon = end[1] == ':' ? end + 1 : NULL;
		if (colon) {
			colon = strrchr(target, ':');
		}
		if (colon) {
			char *endp = NULL;
			long p = strtol(colon + 1, &endp, 10);
			if (!endp || *endp || p < 1 || p > 65535) {
				return cli_usage_error("--connect: '%s': bad port", target);
			}
			port = (int)p;
		}
	} else if (colon && strchr(host, ':') == colon) {
		char *endp = NULL;
		long p = strtol(colon + 1, &endp, 10);
		if (!endp || *endp || p < 1 || p > 65535) {
			return cli_usage_error("--connect: '%s': bad port", target);
		}
		port = (int)p;
		*colon = '\0';
	}
	struct moat_err err = {0};
	struct moat_cert_info ci;
	if (moat_cert_info_file(cert, &ci, &err) != 0) {
		cli_fail(&err);
		return CLI_USAGE;
	}
	if (access(key, R_OK) != 0 || access(ca, R_OK) != 0) {
		fprintf(stderr, "moat: %s: %s\n", access(key, R_OK) != 0 ? key : ca,
			strerror(errno));
		return CLI_USAGE;
	}
	const char *cid = client_id ? client_id : ci.cn;
	int64_t now = moat_time_now();
	char t1[MOAT_TIME_ISO_LEN], t2[MOAT_TIME_ISO_LEN];
	say(&D, NULL, "client certificate: CN %s, serial %s, valid %s to %s", ci.cn, ci.serial_hex,
	    when(ci.not_before, t1), when(ci.not_after, t2));
	if (ci.not_before > now) {
		say(&D, "clock_not_synchronised",
		    "the certificate is not valid yet: it starts at %s and this machine's clock "
		    "says %s; the clock is not synchronised (check NTP or the RTC)",
		    when(ci.not_before, t1), when(now, t2));
	}
	if (ci.not_after <= now) {
		say(&D, "certificate_expired",
		    "the certificate expired at %s (this machine's clock says %s): renew it (moat "
		    "device renew %s)",
		    when(ci.not_after, t1), when(now, t2), ci.cn);
	}
	if (strcmp(cid, ci.cn) != 0) {
		say(&D, "client_id_mismatch",
		    "the client id '%s' is not the certificate's CN '%s': the broker refuses it; "
		    "connect with client id '%s'",
		    cid, ci.cn, ci.cn);
	}
	check_client_chain(&D, cert, ca);
	struct lp_tls_opts o = {.addr = host,
				.port = port,
				.verify_name = server_name ? server_name : host,
				.cafile = ca,
				.cert = cert,
				.key = key,
				.timeout_ms = 5000};
	struct lp_conn c;
	if (lp_open(&o, &c) != 0) {
		if (c.stage == LP_STAGE_TCP) {
			say(&D, "broker_unreachable",
			    "the broker is unreachable at %s port %d: %s (is it running? a firewall? "
			    "the right port?)",
			    host, port, c.error);
		} else {
			explain_tls(&D, &c, o.verify_name, &o);
		}
		lp_close(&c);
		return finish(&D);
	}
	say(&D, NULL, "TLS: %s, server certificate verified for '%s'", c.version, o.verify_name);
	/* With TLS 1.3 the client finishes its side of the handshake before the broker has
	 * judged the client certificate: its verdict (an alert) comes right after, before
	 * anything is sent. Nothing within 300 ms: it accepted. */
	char first;
	int r = lp_read(&c, &first, 1, 300);
	if (r == -1 || r == 0) {
		if (r == 0) {
			sf(c.error, sizeof(c.error),
			   "the broker closed the connection after the handshake");
		}
		explain_tls(&D, &c, o.verify_name, &o);
		lp_close(&c);
		return finish(&D);
	}
	int rc = -1;
	if (lp_mqtt_connect(&c, cid, NULL) != 0 ||
	    lp_mqtt_expect(&c, LP_MQTT_CONNACK, 5000, &rc, NULL, 0) != 0) {
		/* TLS 1.3: the broker's verdict on the client certificate arrives now */
		explain_tls(&D, &c, o.verify_name, &o);
		lp_close(&c);
		return finish(&D);
	}
	if (rc >= 0x80) {
		if (strcmp(cid, ci.cn) == 0) {
			say(&D, "identity_refused",
			    "the broker refused the session (%s): the identity %s is revoked, "
			    "disabled, banned for flapping or unknown to it; run moat doctor %s on "
			    "the broker's host",
			    lp_mqtt_reason_name(rc), ci.cn, ci.cn);
		} else {
			say(&D, NULL, "the broker refused the session (%s)",
			    lp_mqtt_reason_name(rc));
		}
		lp_close(&c);
		return finish(&D);
	}
	say(&D, NULL, "MQTT session accepted as %s", cid);
	if (filter) {
		const char *f[] = {filter};
		int src = -1;
		if (lp_mqtt_subscribe(&c, 1, f, 1) != 0 ||
		    lp_mqtt_expect(&c, LP_MQTT_SUBACK, 5000, &src, NULL, 0) != 0) {
			say(&D, "subscribe_failed", "SUBSCRIBE %s: %s", filter, c.error);
		} else if (src >= 0x80) {
			say(&D, "acl_denied",
			    "the broker's ACL denies %s the topic filter '%s' (%s): a device reads only "
			    "devices/%s/commands/...",
			    ci.cn, filter, lp_mqtt_reason_name(src), ci.cn);
		} else {
			say(&D, NULL, "SUBSCRIBE %s granted", filter);
		}
	}
	lp_mqtt_disconnect(&c, 0);
	lp_close(&c);
	return finish(&D);
}

/* ---- moat doctor --envelope ---- */

static const char *verdict_words(enum moat_fw_verdict v)
{
	switch (v) {
	case MOAT_FW_ACCEPT:
		return "the device would accept it";
	case MOAT_FW_MALFORMED:
		return "the envelope or its manifest does not parse";
	case MOAT_FW_BAD_PAYLOAD_TYPE:
		return "the envelope's payload type is not a moat manifest";
	case MOAT_FW_UNKNOWN_KEY:
		return "no signature by a key in the device's trust list (signed with another key)";
	case MOAT_FW_BAD_SIGNATURE:
		return "a trusted key's signature does not verify: the envelope was tampered with "
		       "after signing";
	case MOAT_FW_THRESHOLD:
		return "fewer valid signatures by trusted keys than the trust list's threshold";
	case MOAT_FW_EXPIRED:
		return "the manifest has expired (or the device's clock is ahead): sign a fresh one";
	case MOAT_FW_ROLLBACK:
		return "the manifest is older than one the device verified before (replay)";
	case MOAT_FW_WRONG_TYPE:
		return "the manifest is for another device type";
	case MOAT_FW_DOWNGRADE:
		return "a downgrade: the security version is below the device's floor";
	case MOAT_FW_NOT_NEWER:
		return "the version is not newer than what the device runs";
	case MOAT_FW_SIZE_MISMATCH:
		return "the image's size is not the signed size (or the image is unreadable)";
	case MOAT_FW_HASH_MISMATCH:
		return "the image's SHA-256 is not the signed one: the image was changed";
	default:
		return "refused";
	}
}

/* What the envelope says of itself, unverified, for the words of a refusal: which keys
 * signed it (and whether the trust list holds each), when its manifest was issued and
 * when it expires against this host's clock. */
static void envelope_facts(struct doctor *D, const char *json, size_t len,
			   const struct moat_fw_trust *tl, const char *trust_path,
			   enum moat_fw_verdict v, int64_t now)
{
	struct moat_envelope *env = calloc(1, sizeof(*env));
	struct moat_manifest m;
	struct moat_err err = {0};
	if (!env || moat_envelope_parse(json, len, env, &err) != 0) {
		free(env);
		return;
	}
	char t1[MOAT_TIME_ISO_LEN], t2[MOAT_TIME_ISO_LEN];
	if (moat_manifest_parse(env->payload, env->payload_len, &m, &err) == 0) {
		say(D, NULL,
		    "its manifest (as it claims, unverified): version %s, security version %lld, "
		    "device type %s, issued %s, expires %s",
		    m.version, (long long)m.security_version, m.device_type, when(m.issued_at, t1),
		    when(m.expires_at, t2));
		if (v == MOAT_FW_EXPIRED) {
			say(D, NULL,
			    "it expired at %s and this host's clock says %s: a device whose clock is "
			    "correct refuses it too; sign the release again (moat fw sign "
			    "--expires)",
			    when(m.expires_at, t1), when(now, t2));
		}
	}
	size_t trusted = 0;
	for (size_t i = 0; i < env->sig_count; i++) {
		bool known = false;
		for (size_t k = 0; k < tl->count && !known; k++) {
			known = strcmp(tl->keys[k].keyid, env->sigs[i].keyid) == 0;
		}
		trusted += known;
		say(D, NULL, "signed by key %.16s: %s", env->sigs[i].keyid,
		    known ? "in the trust list" : "NOT in the trust list");
	}
	if (v == MOAT_FW_UNKNOWN_KEY) {
		say(D, NULL,
		    "none of its %zu signing key(s) is among the %zu key(s) of %s: it was signed "
		    "with another deployment's key or one since revoked (moat fw trust lists them)",
		    env->sig_count, tl->count, trust_path);
	} else if (v == MOAT_FW_THRESHOLD) {
		say(D, NULL,
		    "it carries signatures by %zu trusted key(s) and the trust list requires %d: "
		    "sign it with more keys (moat fw sign --key KEYID --key KEYID)",
		    trusted, tl->threshold);
	}
	free(env);
}

static int doctor_envelope(const char *env, const char *image, const char *type, int64_t floor,
			   const char *running, const char *trust)
{
	struct doctor D = {.subject = env};
	struct moat_err err = {0};
	char trust_path[PATH_MAX];
	if (trust) {
		sf(trust_path, sizeof(trust_path), "%s", trust);
	} else {
		struct moat_deploy *d = NULL;
		if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0) {
			cli_fail(&err);
			return CLI_USAGE;
		}
		sf(trust_path, sizeof(trust_path), "%s/%s/%s", moat_deploy_dir(d), MOAT_FW_KEYS_DIR,
		   MOAT_FW_TRUST_FILE);
		moat_deploy_close(d);
	}
	struct moat_fw_trust tl = {0};
	char *json = NULL;
	size_t len = 0;
	if (moat_fwtrust_load(trust_path, &tl, &err) != 0 ||
	    moat_fs_read_all(env, MOAT_ENVELOPE_MAX_BYTES, &json, &len, &err) != 0) {
		moat_fw_trust_free(&tl);
		cli_fail(&err);
		return CLI_USAGE;
	}
	struct moat_fw_policy pol = {.purpose = MOAT_FW_FOR_INSTALL,
				     .device_type = type,
				     .current_version = running,
				     .security_floor = floor,
				     .now = moat_time_now()};
	struct moat_manifest m;
	struct moat_fw_decision dec;
	enum moat_fw_verdict v = moat_fw_verify_image(image, json, len, &tl, &pol, &m, &dec);
	if (v == MOAT_FW_ACCEPT) {
		say(&D, NULL,
		    "accepted: version %s, security version %lld, device type %s, signed by the "
		    "trust list %s",
		    m.version, (long long)m.security_version, m.device_type, trust_path);
	} else {
		say(&D, moat_fw_verdict_name(v),
		    "the update would be refused: %s. The verifier says: %s", verdict_words(v),
		    dec.msg);
	}
	if (v != MOAT_FW_ACCEPT) {
		envelope_facts(&D, json, len, &tl, trust_path, v, pol.now);
	}
	free(json);
	moat_fw_trust_free(&tl);
	return finish(&D);
}

static const char doctor_usage[] =
	"usage: moat doctor DEVICE\n"
	"       moat doctor --connect HOST[:PORT] --cert C --key K [--ca CA] [--client-id ID]\n"
	"                   [--server-name NAME] [--subscribe FILTER]\n"
	"       moat doctor --envelope E --image I --device-type T --floor N [--running V]\n"
	"                   [--trust trust.json]\n"
	"\n"
	"DEVICE: everything the registry, the certificates, the broker's security events and\n"
	"moatd's records say about why it is not working.\n"
	"--connect: the connection a device makes (TLS with its certificate, MQTT CONNECT with\n"
	"its client id, default the certificate's CN), each failure explained. --ca defaults\n"
	"to the deployment's pki/ca.crt; PORT to 8883; --server-name (the name the device\n"
	"checks in the server certificate) to HOST.\n"
	"--envelope: the device's own verifier on an update, and why it would refuse it\n"
	"(trust list: the deployment's firmware/keys/trust.json unless --trust).\n"
	"All output honours --json. Exit status: 0 no problem found, 1 a problem found, 2 the\n"
	"doctor could not run.\n";

int doctor_main(int argc, char **argv)
{
	const char *connect = NULL, *cert = NULL, *key = NULL, *ca = NULL, *client_id = NULL;
	const char *filter = NULL, *envelope = NULL, *image = NULL, *type = NULL, *running = NULL;
	const char *trust = NULL, *server_name = NULL;
	int64_t floor = -1;
	const struct moat_opt opts[] = {
		{.name = "connect", .kind = MOAT_OPT_STRING, .dst = &connect},
		{.name = "cert", .kind = MOAT_OPT_STRING, .dst = &cert},
		{.name = "key", .kind = MOAT_OPT_STRING, .dst = &key},
		{.name = "ca", .kind = MOAT_OPT_STRING, .dst = &ca},
		{.name = "client-id", .kind = MOAT_OPT_STRING, .dst = &client_id},
		{.name = "subscribe", .kind = MOAT_OPT_STRING, .dst = &filter},
		{.name = "server-name", .kind = MOAT_OPT_STRING, .dst = &server_name},
		{.name = "envelope", .kind = MOAT_OPT_STRING, .dst = &envelope},
		{.name = "image", .kind = MOAT_OPT_STRING, .dst = &image},
		{.name = "device-type", .kind = MOAT_OPT_STRING, .dst = &type},
		{.name = "floor", .kind = MOAT_OPT_INT, .dst = &floor, .min = 0, .max = INT32_MAX},
		{.name = "running", .kind = MOAT_OPT_STRING, .dst = &running},
		{.name = "trust", .kind = MOAT_OPT_STRING, .dst = &trust},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {
		CLI_OPTS,
		.usage = doctor_usage,
		.opts = opts,
		.error_line =
			"usage: moat doctor DEVICE | --connect HOST[:PORT] ... | --envelope E "
			"... (moat doctor --help)",
	};
	int next = 0;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	int operands = argc - next;
	if (connect) {
		if (operands || envelope) {
			return cli_usage_error(
				"doctor: --connect takes no DEVICE and no --envelope");
		}
		if (!cert || !key) {
			return cli_usage_error("doctor --connect: needs --cert and --key");
		}
		char ca_path[PATH_MAX];
		if (!ca) {
			struct moat_deploy *d = NULL;
			struct moat_err err = {0};
			if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0) {
				fprintf(stderr, "moat: --ca not given and no deployment: %s\n",
					err.msg);
				return CLI_USAGE;
			}
			sf(ca_path, sizeof(ca_path), "%s/pki/ca.crt", moat_deploy_dir(d));
			moat_deploy_close(d);
			ca = ca_path;
		}
		return doctor_connect(connect, cert, key, ca, client_id, filter, server_name);
	}
	if (envelope) {
		if (operands) {
			return cli_usage_error("doctor: --envelope takes no DEVICE");
		}
		if (!image || !type || floor < 0) {
			return cli_usage_error(
				"doctor --envelope: needs --image, --device-type and --floor");
		}
		return doctor_envelope(envelope, image, type, floor, running, trust);
	}
	if (operands != 1) {
		return cli_usage_error("doctor: name one DEVICE, or --connect, or --envelope");
	}
	return doctor_device(argv[next]);
}
