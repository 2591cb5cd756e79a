/* dashboard.c: the fleet dashboard under /dashboard (moat/dashboard.h, docs/DASHBOARD.md).
 *
 * Every page is rendered here as plain HTML with server-rendered SVG plots and one
 * stylesheet; the one script, events.js, only makes the events page live (dash_stream.c)
 * and every page works without it, so the Content-Security-Policy allows 'self' for the
 * stylesheet, that script and its stream, and nothing else. Who asks is decided before
 * anything else: an active operator's client certificate (httpd.c verified it), else the
 * session cookie, whose token the registry knows only hashed. A sign-in link is spent by
 * one conditional update, so it opens one session at most. Actions are POSTs with the
 * session's CSRF token, asked for confirmation first (a page with the same form and
 * confirm=yes), and each is a security event naming the operator. The CSRF token of a
 * session is the SHA-256 of "csrf:" and its token (nothing to store; a forged one needs
 * the cookie); for a certificate it is an HMAC of the operator's name under a key random
 * per moatd start.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "moat/broker_supervisor.h"
#include "moat/buf.h"
#include "moat/certinfo.h"
#include "moat/codec.h"
#include "moat/dashboard.h"
#include "moat/deploy.h"
#include "moat/fsutil.h"
#include "moat/log.h"
#include "moat/messages.h"
#include "moat/monitor.h"
#include "moat/net.h"
#include "moat/opclient.h"
#include "moat/pki.h"
#include "moat/registry.h"
#include "moat/release.h"
#include "moat/secevent.h"
#include "moat/server.h"
#include "moat/timeutil.h"
#include "moat/topic.h"
#include "server_internal.h"

#define DASH_PAGE_MAX_BYTES (2u * 1024u * 1024u)
#define DASH_PAGE_SIZE 50
#define DASH_EVENTS_MAX 200
#define DASH_PLOT_COLS 670	/* one column per pixel of a plot */
#define DASH_PLOT_RAW_MAX 50000 /* raw messages read for one plot, the newest */
#define DASH_PLOT_METRICS_MAX 6
#define DASH_HOURS 24
#define DASH_LIVE_REFRESH_S 5
#define DASH_MQTT_TIMEOUT_MS 5000 /* connecting to the broker, then its PUBACK */

#define DASH_CSP                                                                     \
	"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; " \
	"frame-ancestors 'none'; base-uri 'none'; script-src 'self'; connect-src 'self'"

struct moat_dash {
	char dir[PATH_MAX];
	struct dash_streams *streams; /* the live security events (dash_stream.c) */
	uint8_t csrf_key[32];	      /* certificate users' CSRF tokens: per moatd start */
};

/* One request as this file sees it. */
struct dash_ctx {
	struct moat_dash *dash;
	struct moat_registry *reg;
	struct moat_deploy *d;
	struct MHD_Connection *conn;
	const struct dash_request *rq;
	unsigned *status;
	char *note;
	size_t note_size;
	char op[MOAT_ID_BUF_LEN];
	char session_hash[MOAT_DASH_TOKEN_HEX_LEN + 1]; /* "" for a certificate */
	bool via_cert;
	char csrf[65];
	int refresh_s; /* > 0: the page reloads itself (a meta refresh: no script) */
	struct moat_buf b;
};

static const char dash_css[] =
	"body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}"
	"header{background:#14365d;color:#fff;padding:.6em 1em;display:flex;flex-wrap:wrap;"
	"gap:1em;align-items:center}header a{color:#fff;text-decoration:none;font-weight:600}"
	"header form{margin-left:auto}main{padding:1em;max-width:1200px}"
	"table{border-collapse:collapse;width:100%;background:#fff;margin:.5em 0 1em}"
	"th,td{border-bottom:1px solid #dde1e6;padding:.3em .5em;text-align:left}"
	"th{background:#eef1f4}.cards{display:flex;flex-wrap:wrap;gap:1em}"
	".card{background:#fff;border:1px solid #dde1e6;padding:.6em 1em;min-width:10em}"
	".card b{font-size:1.6em;display:block}.bad{color:#b00020}.ok{color:#1a7f37}"
	"form.filters{display:flex;flex-wrap:wrap;gap:.5em;align-items:end}"
	"label{display:flex;flex-direction:column;font-size:.85em}"
	"input,select,button{font:inherit;padding:.2em .4em}button.danger{background:#b00020;"
	"color:#fff;border:0;padding:.3em .8em}svg{background:#fff;border:1px solid #dde1e6;"
	"max-width:100%;height:auto}.pager{display:flex;gap:1em}"
	"td{overflow-wrap:anywhere}"
	/* the zone map (an inline SVG: classes only, the CSP allows no style attribute) */
	".zbox{fill:#fff;stroke:#14365d;stroke-width:1.5}.zout{fill:#f6f7f9;stroke:#6a737d;"
	"stroke-dasharray:4 3}.zmap text{font:12px system-ui,sans-serif;fill:#1b1f24}"
	".zmap text.zname{font-weight:700}.zmap text.ztitle{font-weight:700;font-size:13px}"
	".flow{fill:none;stroke-width:1.8}.flow.allow{stroke:#1a7f37}"
	".flow.block{stroke:#b00020;stroke-dasharray:6 4}.flow.except{stroke:#b26b00;"
	"stroke-dasharray:6 4}.head.allow{fill:#1a7f37}.head.block{fill:#b00020}"
	".head.except{fill:#b26b00}.zmap text.xmark{fill:#b00020;font-weight:700;font-size:15px}"
	".zmap text.xmark.except{fill:#b26b00}.zmap text.peers-block{fill:#b00020}"
	".zmap text.peers-allow{fill:#1a7f37}ul.flows{columns:2 22em;margin:.3em 0 1em}"
	"li.block{color:#b00020}li.except{color:#8a5300}li.allow{color:#1a7f37}"
	"@media (max-width:600px){table{font-size:12px;display:block;overflow-x:auto}"
	"th,td{padding:.2em}main{padding:.5em}header{gap:.6em}}\n";

/* The events page's one script: appends the events the stream sends (no innerHTML: text
 * only, links built as elements). Without script the page still works (live=1 reloads). */
static const char dash_events_js[] =
	"\"use strict\";\n"
	"(function () {\n"
	"  var table = document.getElementById(\"events\");\n"
	"  if (!table || !window.EventSource) { return; }\n"
	"  var body = table.tBodies.length ? table.tBodies[0] : table;\n"
	"  var status = document.getElementById(\"stream-status\");\n"
	"  var q = new URLSearchParams();\n"
	"  [\"kind\", \"device\", \"severity\"].forEach(function (k) {\n"
	"    var v = table.getAttribute(\"data-\" + k);\n"
	"    if (v) { q.set(k, v); }\n"
	"  });\n"
	"  q.set(\"after\", table.getAttribute(\"data-after\") || \"0\");\n"
	"  var es = new EventSource(\"/dashboard/events/stream?\" + q.toString());\n"
	"  function say(t) { if (status) { status.textContent = t; } }\n"
	"  es.addEventListener(\"open\", function () { say(\"Live: new events appear below.\"); });\n"
	"  es.addEventListener(\"error\", function () { say(\"Live: reconnecting...\"); });\n"
	"  es.addEventListener(\"ended\", function () {\n"
	"    es.close(); say(\"Live: the session ended; sign in again.\");\n"
	"  });\n"
	"  es.addEventListener(\"security\", function (m) {\n"
	"    var ev = JSON.parse(m.data);\n"
	"    var tr = document.createElement(\"tr\");\n"
	"    tr.className = \"live\";\n"
	"    tr.setAttribute(\"data-seq\", String(ev.seq));\n"
	"    function cell(t) {\n"
	"      var td = document.createElement(\"td\"); td.textContent = t || \"\";\n"
	"      tr.appendChild(td); return td;\n"
	"    }\n"
	"    cell(ev.time); cell(ev.kind); cell(ev.severity);\n"
	"    var who = cell(\"\");\n"
	"    if (ev.identity) {\n"
	"      var a = document.createElement(\"a\");\n"
	"      a.href = \"/dashboard/device/\" + encodeURIComponent(ev.identity);\n"
	"      a.textContent = ev.identity; who.appendChild(a);\n"
	"    }\n"
	"    cell(ev.address); cell(ev.evidence);\n"
	"    body.appendChild(tr);\n"
	"    var n = document.getElementById(\"matching\");\n"
	"    if (n) { n.textContent = String(Number(n.textContent) + 1); }\n"
	"  });\n"
	"})();\n";

int dash_open(const char *dir, struct moat_dash **out, struct moat_err *err)
{
	struct moat_dash *dash = calloc(1, sizeof(*dash));
	if (!dash) {
		return moat_err_set(err, MOAT_ENOMEM, "dashboard: out of memory");
	}
	snprintf(dash->dir, sizeof(dash->dir), "%s", dir);
	if (RAND_bytes(dash->csrf_key, sizeof(dash->csrf_key)) != 1) {
		free(dash);
		return moat_err_set(err, MOAT_ECRYPTO, "dashboard: no random bytes");
	}
	int rc = dash_streams_open(&dash->streams, err);
	if (rc != 0) {
		free(dash);
		return rc;
	}
	*out = dash;
	return 0;
}

void dash_close(struct moat_dash *dash)
{
	if (dash) {
		dash_streams_close(dash->streams);
		OPENSSL_cleanse(dash->csrf_key, sizeof(dash->csrf_key));
		free(dash);
	}
}

/* ---- output ---- */

static void out(struct dash_ctx *c, const char *s)
{
	(void)moat_buf_append_str(&c->b, s);
}

static void outf(struct dash_ctx *c, const char *fmt, ...) MOAT_PRINTF(2, 3);
static void outf(struct dash_ctx *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	(void)moat_buf_vprintf(&c->b, fmt, ap);
	va_end(ap);
}

/* s with &, <, >, " and ' escaped into b: for text and attribute values alike. */
static void buf_esc(struct moat_buf *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&':
			(void)moat_buf_append_str(b, "&amp;");
			break;
		case '<':
			(void)moat_buf_append_str(b, "&lt;");
			break;
		case '>':
			(void)moat_buf_append_str(b, "&gt;");
			break;
		case '"':
			(void)moat_buf_append_str(b, "&quot;");
			break;
		case '\'':
			(void)moat_buf_append_str(b, "&#39;");
			break;
		default:
			(void)moat_buf_append(b, s, 1);
		}
	}
}

static void esc(struct dash_ctx *c, const char *s)
{
	buf_esc(&c->b, s);
}

/* s percent-encoded for a URL's path segment or query value. */
static void buf_url_esc(struct moat_buf *b, const char *s)
{
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			(void)moat_buf_append(b, s, 1);
		} else {
			(void)moat_buf_printf(b, "%%%02X", ch);
		}
	}
}

static void url_esc(struct dash_ctx *c, const char *s)
{
	buf_url_esc(&c->b, s);
}

static void when(struct dash_ctx *c, int64_t ms)
{
	if (ms <= 0) {
		out(c, "never");
		return;
	}
	char iso[MOAT_TIME_ISO_LEN];
	moat_time_iso(ms / 1000, iso);
	esc(c, iso);
}

static void add_security_headers(struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "Content-Security-Policy", DASH_CSP);
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
	MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
}

/* Sends body (copied) with the dashboard's headers; set_cookie and location may be NULL. */
static enum MHD_Result send_raw(struct dash_ctx *c, unsigned status, const char *type,
				const char *body, size_t len, const char *set_cookie,
				const char *location)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!resp) {
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	add_security_headers(resp);
	if (set_cookie) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, set_cookie);
	}
	if (location) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
	}
	*c->status = status;
	enum MHD_Result r = MHD_queue_response(c->conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static void page_head(struct dash_ctx *c, const char *title)
{
	out(c, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
	       "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
	if (c->refresh_s > 0) {
		outf(c, "<meta http-equiv=\"refresh\" content=\"%d\">", c->refresh_s);
	}
	out(c, "<title>");
	esc(c, title);
	out(c, " - moat</title><link rel=\"stylesheet\" href=\"/dashboard/static/style.css\">"
	       "</head><body>");
	if (c->op[0]) {
		out(c,
		    "<header><a href=\"/dashboard\">moat</a><a href=\"/dashboard\">Fleet</a>"
		    "<a href=\"/dashboard/devices\">Devices</a>"
		    "<a href=\"/dashboard/events\">Security events</a>"
		    "<a href=\"/dashboard/firmware\">Firmware</a>"
		    "<form method=\"post\" action=\"/dashboard/signout\"><span id=\"operator\">");
		esc(c, c->op);
		outf(c,
		     "</span> <input type=\"hidden\" name=\"csrf\" value=\"%s\">"
		     "<button type=\"submit\">Sign out</button></form></header>",
		     c->csrf);
	}
	out(c, "<main><h1>");
	esc(c, title);
	out(c, "</h1>");
}

static enum MHD_Result page_send(struct dash_ctx *c, unsigned status)
{
	out(c, "</main></body></html>\n");
	char *body = NULL;
	size_t len = 0;
	if (moat_buf_take(&c->b, &body, &len) != 0) {
		static const char too[] = "page too large\n";
		return send_raw(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", too,
				sizeof(too) - 1, NULL, NULL);
	}
	enum MHD_Result r = send_raw(c, status, "text/html; charset=utf-8", body, len, NULL, NULL);
	free(body);
	return r;
}

static void note(struct dash_ctx *c, const char *word)
{
	snprintf(c->note, c->note_size, "%s", word);
}

/* A refusal at the trust boundary: a security event, and a short page. */
static enum MHD_Result refuse(struct dash_ctx *c, unsigned status, const char *reason,
			      const char *text)
{
	note(c, reason);
	uint64_t suppressed = 0;
	if (!c->rq->event_allowed || c->rq->event_allowed(c->rq->event_ctx, &suppressed)) {
		char sup[24];
		snprintf(sup, sizeof(sup), "%llu", (unsigned long long)suppressed);
		moat_log(MOAT_LOG_WARN,
			 "event=dashboard_refused client=%s operator=%s reason=%s suppressed=%s",
			 c->rq->client, c->op[0] ? c->op : "-", reason, suppressed ? sup : NULL);
		char evidence[200];
		snprintf(evidence, sizeof(evidence), "reason=%s path=%.64s suppressed=%llu", reason,
			 c->rq->url, (unsigned long long)suppressed);
		moat_server_security_event("dashboard_refused", MOAT_SEV_MEDIUM,
					   c->op[0] ? c->op : NULL, c->rq->client, evidence);
	}
	char keep_op[MOAT_ID_BUF_LEN];
	snprintf(keep_op, sizeof(keep_op), "%s", c->op);
	c->op[0] = '\0'; /* no navigation on a refusal page */
	page_head(c, status == MHD_HTTP_FORBIDDEN ? "Refused" : "Sign in");
	out(c, "<p id=\"refused\">");
	esc(c, text);
	out(c, "</p><p>Sign in with an operator certificate, or run <code>moat dashboard</code> "
	       "on the server for a one-time sign-in link.</p>");
	snprintf(c->op, sizeof(c->op), "%s", keep_op);
	return page_send(c, status);
}

static void csrf_of_session(const char *token, char out[65])
{
	char buf[6 + MOAT_DASH_TOKEN_HEX_LEN + 1];
	snprintf(buf, sizeof(buf), "csrf:%s", token);
	uint8_t md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)buf, strlen(buf), md);
	moat_hex_encode(md, sizeof(md), out);
	OPENSSL_cleanse(buf, sizeof(buf));
}

static void csrf_of_cert(const struct moat_dash *dash, const char *op, char out[65])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (!HMAC(EVP_sha256(), dash->csrf_key, sizeof(dash->csrf_key), (const unsigned char *)op,
		  strlen(op), md, &n) ||
	    n != SHA256_DIGEST_LENGTH) {
		memset(out, 0, 65); /* "" matches no form's token */
		return;
	}
	moat_hex_encode(md, SHA256_DIGEST_LENGTH, out);
}

/* ---- who asks ---- */

enum auth_result { AUTH_OK, AUTH_NONE, AUTH_REFUSED };

static enum auth_result authenticate(struct dash_ctx *c, const char **reason)
{
	if (c->rq->cert_operator) {
		snprintf(c->op, sizeof(c->op), "%s", c->rq->cert_operator);
		c->via_cert = true;
		csrf_of_cert(c->dash, c->op, c->csrf);
		return AUTH_OK;
	}
	const char *cookie =
		MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_COOKIE);
	char token[MOAT_DASH_TOKEN_HEX_LEN + 2];
	if (!cookie) {
		*reason = "no_session";
		return AUTH_NONE;
	}
	int g = moat_dash_cookie_get(cookie, MOAT_DASH_COOKIE, token, sizeof(token));
	if (g == MOAT_ENOENT) {
		*reason = "no_session";
		return AUTH_NONE;
	}
	if (g != 0 || !moat_dash_token_ok(token)) {
		*reason = "bad_cookie";
		return AUTH_REFUSED;
	}
	char hash[MOAT_DASH_TOKEN_HEX_LEN + 1];
	moat_dash_token_hash(token, hash);
	enum moat_dash_token t = MOAT_DASH_TOKEN_UNKNOWN;
	struct moat_err err = {0};
	if (moat_registry_dash_session_get(c->reg, hash, moat_time_wall_ms(), c->op, &t, &err) !=
	    0) {
		moat_log(MOAT_LOG_ERROR, "event=registry_error msg=\"%s\"", err.msg);
		*reason = "registry_error";
		return AUTH_REFUSED;
	}
	if (t != MOAT_DASH_TOKEN_OK) {
		c->op[0] = '\0';
		*reason = t == MOAT_DASH_TOKEN_EXPIRED ? "session_expired" : "unknown_session";
		return AUTH_REFUSED;
	}
	/* the operator may have been disabled or revoked since the session opened */
	struct moat_identity ident;
	if (moat_registry_identity_get(c->reg, c->op, &ident, &err) != 0 ||
	    ident.role != MOAT_ROLE_OPERATOR || ident.status != MOAT_ID_ACTIVE) {
		*reason = "operator_not_active";
		return AUTH_REFUSED;
	}
	csrf_of_session(token, c->csrf);
	snprintf(c->session_hash, sizeof(c->session_hash), "%s", hash);
	OPENSSL_cleanse(token, sizeof(token));
	return AUTH_OK;
}

/* GET /dashboard/signin?token=T: spends the link, opens a session, sets its cookie. */
static enum MHD_Result signin(struct dash_ctx *c)
{
	const char *token = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "token");
	if (!moat_dash_token_ok(token)) {
		return refuse(c, MHD_HTTP_FORBIDDEN, "bad_link", "This sign-in link is not valid.");
	}
	char hash[MOAT_DASH_TOKEN_HEX_LEN + 1];
	moat_dash_token_hash(token, hash);
	enum moat_dash_token t = MOAT_DASH_TOKEN_UNKNOWN;
	int64_t session_ms = 0;
	int64_t now = moat_time_wall_ms();
	struct moat_err err = {0};
	char op[MOAT_ID_BUF_LEN];
	if (moat_registry_dash_link_use(c->reg, hash, now, op, &session_ms, &t, &err) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=registry_error msg=\"%s\"", err.msg);
		return refuse(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "registry_error",
			      "The registry failed.");
	}
	if (t != MOAT_DASH_TOKEN_OK) {
		char reason[32];
		snprintf(reason, sizeof(reason), "link_%s", moat_dash_token_name(t));
		return refuse(c, MHD_HTTP_FORBIDDEN, reason,
			      t == MOAT_DASH_TOKEN_USED	     ? "This sign-in link was used already."
			      : t == MOAT_DASH_TOKEN_EXPIRED ? "This sign-in link has expired."
							     : "This sign-in link is not valid.");
	}
	char session[MOAT_DASH_TOKEN_HEX_LEN + 1];
	char session_hash[MOAT_DASH_TOKEN_HEX_LEN + 1];
	if (moat_dash_token_new(session, session_hash, &err) != 0 ||
	    moat_registry_dash_session_add(c->reg, session_hash, op, now, now + session_ms, &err) !=
		    0) {
		moat_log(MOAT_LOG_ERROR, "event=dashboard_session_failed msg=\"%s\"", err.msg);
		return refuse(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "session_failed",
			      "No session could be opened.");
	}
	snprintf(c->op, sizeof(c->op), "%s", op);
	char cookie[200];
	snprintf(cookie, sizeof(cookie),
		 MOAT_DASH_COOKIE "=%s; Path=/dashboard; Max-Age=%lld; HttpOnly; Secure; "
				  "SameSite=Strict",
		 session, (long long)(session_ms / 1000));
	OPENSSL_cleanse(session, sizeof(session));
	moat_log(MOAT_LOG_INFO, "event=dashboard_signin client=%s operator=%s", c->rq->client, op);
	note(c, "signin");
	static const char moved[] = "signed in\n";
	enum MHD_Result r = send_raw(c, MHD_HTTP_SEE_OTHER, "text/plain", moved, sizeof(moved) - 1,
				     cookie, "/dashboard");
	OPENSSL_cleanse(cookie, sizeof(cookie));
	return r;
}

/* A section's read failed: said on the page and logged, the rest of the page still shown. */
static void checked(struct dash_ctx *c, int rc, const struct moat_err *err)
{
	if (rc != 0) {
		moat_log(MOAT_LOG_ERROR, "event=registry_error msg=\"%s\"", err->msg);
		out(c, "<p class=\"bad\">The registry failed.</p>");
	}
}

/* ---- Fleet ---- */

struct fleet_counts {
	int64_t devices[3]; /* active, disabled, revoked */
	int64_t conn[3];    /* unknown, online, offline */
	int64_t expiring7, expiring30;
	int64_t anomalies;
	struct moat_buf types, releases;
};

static void row3(struct moat_buf *t, const char *a, const char *b, int64_t v)
{
	(void)moat_buf_append_str(t, "<tr><td>");
	buf_esc(t, a);
	(void)moat_buf_append_str(t, "</td><td>");
	buf_esc(t, b);
	(void)moat_buf_printf(t, "</td><td>%lld</td></tr>", (long long)v);
}

static void fleet_stat(void *ctx, enum moat_registry_stat stat, const char *a, const char *b,
		       double value)
{
	struct fleet_counts *f = ctx;
	int64_t v = (int64_t)value;
	switch (stat) {
	case MOAT_STAT_DEVICES:
		f->devices[strcmp(a, "active") == 0 ? 0 : strcmp(a, "disabled") == 0 ? 1 : 2] += v;
		if (v > 0) {
			row3(&f->types, b, a, v);
		}
		break;
	case MOAT_STAT_CONN_STATE:
		f->conn[strcmp(a, "online") == 0 ? 1 : strcmp(a, "offline") == 0 ? 2 : 0] += v;
		break;
	case MOAT_STAT_CERTS_EXPIRING:
		if (strcmp(a, "7d") == 0) {
			f->expiring7 = v;
		} else if (strcmp(a, "30d") == 0) {
			f->expiring30 = v;
		}
		break;
	case MOAT_STAT_ROLLOUT_RUNNING:
		if (v > 0) {
			row3(&f->releases, a, b, v);
		}
		break;
	case MOAT_STAT_ANOMALIES:
		f->anomalies += v;
		break;
	default:
		break;
	}
}

static void card(struct dash_ctx *c, const char *id, const char *label, int64_t n, bool bad)
{
	outf(c, "<div class=\"card\"><b id=\"%s\"%s>%lld</b>%s</div>", id,
	     bad && n > 0 ? " class=\"bad\"" : "", (long long)n, label);
}

static void append_buf(struct dash_ctx *c, struct moat_buf *x)
{
	char *s = NULL;
	size_t n = 0;
	if (moat_buf_take(x, &s, &n) == 0 && s) {
		(void)moat_buf_append(&c->b, s, n);
	}
	free(s);
}

/* Security events per hour over the last DASH_HOURS hours, as bars. */
static void events_plot(struct dash_ctx *c)
{
	int64_t now = moat_time_wall_ms();
	int64_t hour = 3600LL * 1000;
	int64_t end = (now / hour + 1) * hour;
	int64_t counts[DASH_HOURS] = {0};
	int64_t max = 0, total = 0;
	for (int i = 0; i < DASH_HOURS; i++) {
		struct moat_event_filter f = {.since_ms = end - (DASH_HOURS - i) * hour,
					      .until_ms = end - (DASH_HOURS - 1 - i) * hour};
		struct moat_err err = {0};
		if (moat_registry_security_event_count(c->reg, &f, &counts[i], &err) != 0) {
			counts[i] = 0;
		}
		max = counts[i] > max ? counts[i] : max;
		total += counts[i];
	}
	outf(c,
	     "<h2>Security events per hour (last 24 h: <span id=\"events-24h\">%lld</span>)</h2>"
	     "<svg id=\"events-plot\" viewBox=\"0 0 720 180\" width=\"720\" height=\"180\" "
	     "role=\"img\" aria-label=\"security events per hour\">",
	     (long long)total);
	for (int i = 0; i < DASH_HOURS; i++) {
		double h = max > 0 ? 140.0 * (double)counts[i] / (double)max : 0;
		outf(c,
		     "<rect x=\"%d\" y=\"%.1f\" width=\"24\" height=\"%.1f\" fill=\"#14365d\">"
		     "<title>%lld</title></rect>",
		     10 + i * 29, 150 - h, h, (long long)counts[i]);
	}
	outf(c,
	     "<line x1=\"5\" y1=\"150\" x2=\"715\" y2=\"150\" stroke=\"#888\"/>"
	     "<text x=\"10\" y=\"170\" font-size=\"11\">-24 h</text>"
	     "<text x=\"680\" y=\"170\" font-size=\"11\">now</text>"
	     "<text x=\"10\" y=\"14\" font-size=\"11\">max %lld</text></svg>",
	     (long long)max);
}

/* forward: defined beside the events table's rows */
static int anomaly_row(const struct moat_security_event *ev, void *ctx);

/* ---- Fleet: certificates expiring, open anomalies, the network zones ---- */

#define DASH_EXPIRING_SHOWN 100 /* rows of the expiring list; the count says how many more */
#define DASH_ANOMALIES_SHOWN 100
#define DASH_ZONE_DEVICES_SHOWN 20 /* device links per zone; the count is of all */

struct expiring_item {
	char id[MOAT_ID_BUF_LEN];
	enum moat_role role;
	int64_t not_after;
};

struct expiring_ctx {
	int64_t limit;
	struct expiring_item *items; /* the DASH_EXPIRING_SHOWN soonest, unordered */
	size_t n;
	int64_t total;
};

/* As `moat cert expiring`: an active identity's current, unrevoked certificate. */
static int expiring_collect(const struct moat_identity *id, void *ctx)
{
	struct expiring_ctx *e = ctx;
	if (id->status != MOAT_ID_ACTIVE || id->cert_revoked || !id->serial_hex[0] ||
	    id->not_after > e->limit) {
		return 0;
	}
	e->total++;
	size_t slot = e->n;
	if (e->n == DASH_EXPIRING_SHOWN) {
		/* full: replace the latest if this one expires sooner */
		slot = 0;
		for (size_t i = 1; i < e->n; i++) {
			if (e->items[i].not_after > e->items[slot].not_after) {
				slot = i;
			}
		}
		if (e->items[slot].not_after <= id->not_after) {
			return 0;
		}
	} else {
		e->n++;
	}
	snprintf(e->items[slot].id, sizeof(e->items[slot].id), "%s", id->id);
	e->items[slot].role = id->role;
	e->items[slot].not_after = id->not_after;
	return 0;
}

static int expiring_cmp(const void *a, const void *b)
{
	const struct expiring_item *x = a, *y = b;
	if (x->not_after != y->not_after) {
		return x->not_after < y->not_after ? -1 : 1;
	}
	return strcmp(x->id, y->id);
}

static void device_link(struct dash_ctx *c, const char *id)
{
	out(c, "<a href=\"/dashboard/device/");
	url_esc(c, id);
	out(c, "\">");
	esc(c, id);
	out(c, "</a>");
}

/* Identities whose certificate expires within [pki] expiry_warning, soonest first. */
static void expiring_list(struct dash_ctx *c)
{
	int64_t now = moat_time_now();
	int64_t window = moat_deploy_settings(c->d)->expiry_warning;
	struct expiring_ctx e = {.limit = now + window};
	e.items = calloc(DASH_EXPIRING_SHOWN, sizeof(*e.items));
	struct moat_err err = {0};
	int rc = e.items ? moat_registry_identity_foreach(c->reg, -1, expiring_collect, &e, &err)
			 : moat_err_set(&err, MOAT_ENOMEM, "out of memory");
	qsort(e.items, e.n, sizeof(*e.items), expiring_cmp);
	outf(c,
	     "<h2>Certificates expiring within %lld days (<span id=\"expiring-total\">%lld</span>)"
	     "</h2><table id=\"expiring\"><tr><th>identity</th><th>role</th><th>expires</th>"
	     "<th>days left</th></tr>",
	     (long long)(window / 86400), (long long)e.total);
	for (size_t i = 0; i < e.n; i++) {
		const struct expiring_item *it = &e.items[i];
		out(c, "<tr><td>");
		if (it->role == MOAT_ROLE_DEVICE) {
			device_link(c, it->id);
		} else {
			esc(c, it->id);
		}
		outf(c, "</td><td>%s</td><td>", moat_role_name(it->role));
		when(c, it->not_after * 1000);
		if (it->not_after <= now) {
			out(c, "</td><td class=\"bad\">expired</td></tr>");
		} else {
			outf(c, "</td><td class=\"days\">%lld</td></tr>",
			     (long long)((it->not_after - now) / 86400));
		}
	}
	out(c, "</table>");
	if (e.total > (int64_t)e.n) {
		outf(c, "<p>and %lld more (<code>moat cert expiring</code>).</p>",
		     (long long)(e.total - (int64_t)e.n));
	}
	checked(c, rc, &err);
	free(e.items);
}

/* Anomalies still open: recorded within [monitor] anomaly_open, newest last. */
static void anomalies_list(struct dash_ctx *c)
{
	struct moat_monitor_settings ms;
	struct moat_err err = {0};
	if (moat_monitor_settings_load(moat_deploy_config(c->d), &ms, &err) != 0) {
		moat_monitor_settings_default(&ms);
	}
	struct moat_event_filter f = {.kind = MOAT_EVENT_KIND_ANOMALY,
				      .since_ms = moat_time_wall_ms() - ms.anomaly_open_ms,
				      .limit = DASH_ANOMALIES_SHOWN};
	int64_t n = 0;
	if (moat_registry_security_event_count(c->reg, &f, &n, &err) != 0) {
		n = 0;
	}
	outf(c,
	     "<h2>Open anomalies (<span id=\"anomalies-open\">%lld</span>, the last %lld min)"
	     "</h2><table id=\"open-anomalies\"><tr><th>time</th><th>rule</th><th>severity</th>"
	     "<th>device</th><th>address</th><th>evidence</th></tr>",
	     (long long)n, (long long)(ms.anomaly_open_ms / 60000));
	checked(c, moat_registry_security_event_foreach(c->reg, &f, anomaly_row, c, &err), &err);
	out(c, "</table>");
}

static bool network_configured(const struct moat_config *cfg)
{
	for (size_t i = 0; i < cfg->count; i++) {
		if (strcmp(cfg->entries[i].section, "network") == 0) {
			return true;
		}
	}
	return false;
}

struct zone_count {
	const struct moat_net_policy *net;
	int64_t devices[MOAT_NET_ZONES_MAX + 1]; /* the last: in no zone */
	struct moat_buf links[MOAT_NET_ZONES_MAX + 1];
};

static int zone_device(const struct moat_device_state *st, void *ctx)
{
	struct zone_count *z = ctx;
	int i = st->address[0] ? moat_net_zone_of_text(z->net, st->address)
			       : MOAT_NET_NOT_AN_ADDRESS;
	if (i == MOAT_NET_NOT_AN_ADDRESS) {
		return 0;
	}
	size_t slot = i < 0 ? z->net->zone_count : (size_t)i;
	if (z->devices[slot]++ < DASH_ZONE_DEVICES_SHOWN) {
		(void)moat_buf_append_str(&z->links[slot], " <a href=\"/dashboard/device/");
		buf_url_esc(&z->links[slot], st->device);
		(void)moat_buf_append_str(&z->links[slot], "\">");
		buf_esc(&z->links[slot], st->device);
		(void)moat_buf_append_str(&z->links[slot], "</a>");
	}
	return 0;
}

/* The zone map: an inline SVG (no script, no style attribute: classes of dash_css) of the
 * zones of [network] and the outside as boxes, and between each two of them the flows the
 * policy allows and blocks, judged by moat_net_expect_pkt (the policy's intent, which the
 * rule list is tested to agree with) for a sample host of each. */
#define ZMAP_W 760
#define ZMAP_BOX_W 220
#define ZMAP_BOX_H 84
#define ZMAP_NODES_MAX (MOAT_NET_ZONES_MAX + 1)
#define ZMAP_OUTSIDE "_outside" /* the outside's id token: no zone name starts with '_' */

enum zflow { ZFLOW_ALLOW = 0, ZFLOW_EXCEPT = 1, ZFLOW_BLOCK = 2 };
static const char *const zflow_class[] = {"allow", "except", "block"};
static const char *const zone_kinds[] = {"management", "devices", "isolated"};

struct zmap {
	const struct moat_net_policy *net;
	size_t n;		       /* the zones with subnets, then the outside */
	int zone[ZMAP_NODES_MAX];      /* index in net->zones; -1: the outside */
	uint32_t host[ZMAP_NODES_MAX]; /* a sample address: neither the broker nor the server */
	uint32_t peer[ZMAP_NODES_MAX]; /* a second one (0: none): the zone's hosts to each other */
	int64_t devices[ZMAP_NODES_MAX]; /* last seen there */
	double x[ZMAP_NODES_MAX];	 /* box centres */
	double y[ZMAP_NODES_MAX];
};

static void zmap_hosts(struct zmap *m, size_t i, const struct moat_net_subnet *s)
{
	uint32_t last = s->addr + (uint32_t)((1ull << (32 - s->prefix)) - 2);
	m->host[i] = s->addr + 1;
	m->peer[i] = 0;
	bool have = false;
	for (uint32_t h = s->addr + 1; h <= last && h - s->addr <= 16; h++) {
		if (h == m->net->broker_addr || h == m->net->server_addr) {
			continue;
		}
		if (!have) {
			m->host[i] = h;
			have = true;
		} else {
			m->peer[i] = h;
			break;
		}
	}
}

static bool zmap_expect(const struct moat_net_policy *p, uint32_t src, uint32_t dst,
			enum moat_net_proto proto, uint16_t dport)
{
	struct moat_net_pkt k = {.src = src, .dst = dst, .proto = proto, .dport = dport};
	return moat_net_expect_pkt(p, &k);
}

static bool zmap_in(const struct zmap *m, size_t node, uint32_t addr)
{
	return moat_net_zone_of(m->net, addr) == m->zone[node];
}

/* What node s may open to node d: everything, only the services named into *except, or
 * nothing. */
static enum zflow zmap_flow(const struct zmap *m, size_t s, size_t d, struct moat_buf *except)
{
	const struct moat_net_policy *p = m->net;
	uint32_t src = m->host[s];
	if (zmap_expect(p, src, s == d ? m->peer[d] : m->host[d], MOAT_NET_PROTO_OTHER, 0)) {
		return ZFLOW_ALLOW;
	}
	if (s == d) {
		return ZFLOW_BLOCK;
	}
	char a[16];
	size_t before = except->len;
	if (zmap_in(m, d, p->broker_addr) &&
	    zmap_expect(p, src, p->broker_addr, MOAT_NET_PROTO_TCP, p->broker_port)) {
		moat_net_addr_format(p->broker_addr, a, sizeof(a));
		(void)moat_buf_printf(except, "%sTCP %u to the broker %s",
				      except->len > before ? ", " : "", (unsigned)p->broker_port,
				      a);
	}
	if (zmap_in(m, d, p->server_addr) &&
	    zmap_expect(p, src, p->server_addr, MOAT_NET_PROTO_TCP, p->server_port)) {
		moat_net_addr_format(p->server_addr, a, sizeof(a));
		(void)moat_buf_printf(except, "%sTCP %u to the update server %s",
				      except->len > before ? ", " : "", (unsigned)p->server_port,
				      a);
	}
	for (size_t i = 0; i < p->dns_count; i++) {
		if (zmap_in(m, d, p->dns_addrs[i]) &&
		    zmap_expect(p, src, p->dns_addrs[i], MOAT_NET_PROTO_UDP, MOAT_NET_DNS_PORT)) {
			moat_net_addr_format(p->dns_addrs[i], a, sizeof(a));
			(void)moat_buf_printf(except, "%sDNS to %s",
					      except->len > before ? ", " : "", a);
		}
	}
	for (size_t i = 0; i < p->ntp_count; i++) {
		if (zmap_in(m, d, p->ntp_addrs[i]) &&
		    zmap_expect(p, src, p->ntp_addrs[i], MOAT_NET_PROTO_UDP, MOAT_NET_NTP_PORT)) {
			moat_net_addr_format(p->ntp_addrs[i], a, sizeof(a));
			(void)moat_buf_printf(except, "%sNTP to %s",
					      except->len > before ? ", " : "", a);
		}
	}
	return except->len > before ? ZFLOW_EXCEPT : ZFLOW_BLOCK;
}

static const char *zmap_name(const struct zmap *m, size_t i)
{
	return m->zone[i] < 0 ? "outside" : m->net->zones[m->zone[i]].name;
}

static const char *zmap_id(const struct zmap *m, size_t i)
{
	return m->zone[i] < 0 ? ZMAP_OUTSIDE : m->net->zones[m->zone[i]].name;
}

/* "s → d: allowed" and the like, escaped, into the page. */
static void zmap_flow_text(struct dash_ctx *c, const struct zmap *m, size_t s, size_t d,
			   enum zflow f, const struct moat_buf *except)
{
	esc(c, zmap_name(m, s));
	out(c, " &#8594; ");
	esc(c, zmap_name(m, d));
	if (s == d) {
		out(c, " (its hosts to each other)");
	}
	out(c, f == ZFLOW_ALLOW ? ": allowed" : ": blocked");
	if (f == ZFLOW_EXCEPT) {
		out(c, ", except ");
		buf_esc(&c->b, except->data ? except->data : "");
	}
}

static void zmap_box(struct dash_ctx *c, const struct zmap *m, size_t i)
{
	double left = m->x[i] - ZMAP_BOX_W / 2.0, top = m->y[i] - ZMAP_BOX_H / 2.0;
	const struct moat_net_zone *zn = m->zone[i] < 0 ? NULL : &m->net->zones[m->zone[i]];
	char subnet[40] = "no zone: the uplink";
	size_t more = 0;
	if (zn) {
		char a[16];
		moat_net_addr_format(zn->subnets[0].addr, a, sizeof(a));
		(void)snprintf(subnet, sizeof(subnet), "%s/%u", a, zn->subnets[0].prefix);
		more = zn->subnet_count - 1 + zn->prefix6_count;
	}
	out(c, "<g class=\"zone\" id=\"map-zone-");
	esc(c, zmap_id(m, i));
	out(c, "\"><title>");
	esc(c, zmap_name(m, i));
	if (zn) {
		outf(c, " (%s zone): ", zone_kinds[zn->kind]);
		for (size_t s = 0; s < zn->subnet_count; s++) {
			char a[16];
			moat_net_addr_format(zn->subnets[s].addr, a, sizeof(a));
			outf(c, "%s%s/%u", s ? ", " : "", a, zn->subnets[s].prefix);
		}
		for (size_t s = 0; s < zn->prefix6_count; s++) {
			char a[64];
			moat_net_addr6_format(zn->prefixes6[s].addr, a, sizeof(a));
			outf(c, ", %s/%u", a, zn->prefixes6[s].prefix);
		}
	} else {
		out(c, ": every address in no zone (the uplink, the internet)");
	}
	outf(c, "; %lld device%s last seen there</title>", (long long)m->devices[i],
	     m->devices[i] == 1 ? "" : "s");
	outf(c, "<rect class=\"%s\" x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" rx=\"5\"/>",
	     zn ? "zbox" : "zbox zout", left, top, ZMAP_BOX_W, ZMAP_BOX_H);
	outf(c, "<text class=\"zname\" x=\"%.1f\" y=\"%.1f\">", left + 10, top + 19);
	esc(c, zmap_name(m, i));
	if (zn && strcmp(zn->name, zone_kinds[zn->kind]) != 0) {
		outf(c, " (%s)", zone_kinds[zn->kind]);
	}
	outf(c, "</text><text class=\"zsubnet\" x=\"%.1f\" y=\"%.1f\">", left + 10, top + 37);
	esc(c, subnet);
	if (more) {
		outf(c, " +%zu more", more);
	}
	outf(c, "</text><text class=\"zcount\" x=\"%.1f\" y=\"%.1f\">%lld device%s</text>",
	     left + 10, top + 55, (long long)m->devices[i], m->devices[i] == 1 ? "" : "s");
	if (zn && m->peer[i]) {
		struct moat_buf none;
		moat_buf_init(&none, 16);
		bool peers = zmap_flow(m, i, i, &none) == ZFLOW_ALLOW;
		moat_buf_free(&none);
		outf(c, "<text class=\"%s\" x=\"%.1f\" y=\"%.1f\">%s</text>",
		     peers ? "peers-allow" : "peers-block", left + 10, top + 73,
		     peers ? "hosts reach each other" : "hosts isolated from each other");
	}
	out(c, "</g>");
}

/* The arrow from s to d, beside the one from d to s; blocked ones dashed and crossed. */
static void zmap_arrow(struct dash_ctx *c, const struct zmap *m, size_t s, size_t d, enum zflow f,
		       const struct moat_buf *except)
{
	double dx = m->x[d] - m->x[s], dy = m->y[d] - m->y[s];
	double len = sqrt(dx * dx + dy * dy);
	if (len < 1) {
		return;
	}
	double ux = dx / len, uy = dy / len;
	double hw = ZMAP_BOX_W / 2.0 + 4, hh = ZMAP_BOX_H / 2.0 + 4;
	double t = fabs(ux) * hh > fabs(uy) * hw ? hw / fabs(ux) : hh / fabs(uy);
	if (len < 2 * t + 20) {
		return; /* boxes too close to draw between: the list below still says it */
	}
	double ox = -uy * 6, oy = ux * 6; /* the two directions side by side */
	double x1 = m->x[s] + ux * t + ox, y1 = m->y[s] + uy * t + oy;
	double x2 = m->x[d] - ux * t + ox, y2 = m->y[d] - uy * t + oy;
	out(c, "<g class=\"flowg\" id=\"map-flow-");
	esc(c, zmap_id(m, s));
	out(c, "-");
	esc(c, zmap_id(m, d));
	outf(c, "\" data-flow=\"%s\"><title>", zflow_class[f]);
	zmap_flow_text(c, m, s, d, f, except);
	outf(c,
	     "</title><line class=\"flow %s\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
	     "marker-end=\"url(#zhead-%s)\"/>",
	     zflow_class[f], x1, y1, x2, y2, zflow_class[f]);
	if (f != ZFLOW_ALLOW) {
		/* the cross nearer the destination: the two directions' crosses apart */
		outf(c,
		     "<text class=\"xmark %s\" x=\"%.1f\" y=\"%.1f\" "
		     "text-anchor=\"middle\">&#215;</text>",
		     zflow_class[f], x1 + (x2 - x1) * 0.65 + ox, y1 + (y2 - y1) * 0.65 + oy + 5);
	}
	out(c, "</g>");
}

static void zmap_legend_item(struct dash_ctx *c, double x, double y, enum zflow f, const char *text)
{
	outf(c,
	     "<line class=\"flow %s\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
	     "marker-end=\"url(#zhead-%s)\"/>",
	     zflow_class[f], x, y, x + 44, y, zflow_class[f]);
	if (f != ZFLOW_ALLOW) {
		outf(c,
		     "<text class=\"xmark %s\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">&#215;</text>",
		     zflow_class[f], x + 22, y + 5);
	}
	outf(c, "<text x=\"%.1f\" y=\"%.1f\">%s</text>", x + 52, y + 4, text);
}

static void zone_svg(struct dash_ctx *c, struct zmap *m)
{
	const size_t n = m->n;
	double rx = ZMAP_W / 2.0 - ZMAP_BOX_W / 2.0 - 20;
	double ry = 130 + (n > 4 ? 28.0 * (double)(n - 4) : 0);
	double cx = ZMAP_W / 2.0, cy = ry + ZMAP_BOX_H / 2.0 + 34;
	for (size_t i = 0; i < n; i++) {
		double a = -M_PI / 2 + 2 * M_PI * (double)i / (double)n;
		m->x[i] = cx + rx * cos(a);
		m->y[i] = cy + ry * sin(a);
	}
	int h = (int)(2 * cy) + 30;
	outf(c,
	     "<svg id=\"zone-map\" class=\"zmap\" xmlns=\"http://www.w3.org/2000/svg\" "
	     "viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\" "
	     "aria-labelledby=\"zone-map-title\"><title id=\"zone-map-title\">Network zones of "
	     "[network] and the connections the policy allows and blocks between them</title>",
	     ZMAP_W, h, ZMAP_W, h);
	out(c, "<defs>");
	for (size_t f = 0; f < 3; f++) {
		outf(c,
		     "<marker id=\"zhead-%s\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" "
		     "markerWidth=\"9\" markerHeight=\"9\" markerUnits=\"userSpaceOnUse\" "
		     "orient=\"auto\"><path class=\"head %s\" d=\"M0,0L10,5L0,10z\"/></marker>",
		     zflow_class[f], zflow_class[f]);
	}
	out(c, "</defs><text class=\"ztitle\" x=\"12\" y=\"20\">Who may open connections to "
	       "whom (replies always pass)</text>");
	struct moat_buf except;
	moat_buf_init(&except, 4096);
	for (size_t s = 0; s < n; s++) {
		for (size_t d = 0; d < n; d++) {
			if (s != d) {
				except.len = 0;
				enum zflow f = zmap_flow(m, s, d, &except);
				zmap_arrow(c, m, s, d, f, &except);
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		zmap_box(c, m, i);
	}
	double ly = 2 * cy + 8;
	zmap_legend_item(c, 12, ly, ZFLOW_ALLOW, "allowed");
	zmap_legend_item(c, 150, ly, ZFLOW_EXCEPT, "blocked except named services");
	zmap_legend_item(c, 470, ly, ZFLOW_BLOCK, "blocked");
	out(c, "</svg><ul id=\"zone-flows\" class=\"flows\">");
	for (size_t s = 0; s < n; s++) {
		for (size_t d = 0; d < n; d++) {
			if (s == d && (m->zone[s] < 0 || !m->peer[s])) {
				continue;
			}
			except.len = 0;
			enum zflow f = zmap_flow(m, s, d, &except);
			outf(c, "<li class=\"%s\" id=\"flow-", zflow_class[f]);
			esc(c, zmap_id(m, s));
			out(c, "-");
			esc(c, zmap_id(m, d));
			out(c, "\">");
			zmap_flow_text(c, m, s, d, f, &except);
			out(c, "</li>");
		}
	}
	out(c, "</ul>");
	moat_buf_free(&except);
}

/* The map's nodes: management first (at the top), the other zones with subnets, then the
 * outside at a sample address of no zone. */
static void zmap_nodes(struct zmap *m, const struct zone_count *z)
{
	static const uint32_t outside[] = {0xC0000201u /* 192.0.2.1 */,
					   0xC6336401u /* 198.51.100.1 */,
					   0xCB007101u /* 203.0.113.1 */, 0x01010101u};
	const struct moat_net_policy *net = m->net;
	m->n = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < net->zone_count; i++) {
			const struct moat_net_zone *zn = &net->zones[i];
			bool mgmt = zn->kind == MOAT_NET_ZONE_MANAGEMENT;
			if (zn->subnet_count == 0 || mgmt != (pass == 0)) {
				continue;
			}
			m->zone[m->n] = (int)i;
			m->devices[m->n] = z->devices[i];
			zmap_hosts(m, m->n, &zn->subnets[0]);
			m->n++;
		}
	}
	for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
		if (moat_net_zone_of(net, outside[i]) < 0) {
			m->zone[m->n] = -1;
			m->host[m->n] = outside[i];
			m->peer[m->n] = 0;
			m->devices[m->n] = z->devices[net->zone_count];
			m->n++;
			break;
		}
	}
}

/* The zones of [network], their subnets, and which zone each device's last address (what
 * ingest saw) falls in; devices is how many the registry has (the rest: no address seen).
 * Shown only when moat.conf has a [network] section. */
static void zone_map(struct dash_ctx *c, int64_t devices)
{
	const struct moat_config *cfg = moat_deploy_config(c->d);
	if (!network_configured(cfg)) {
		return;
	}
	struct moat_err err = {0};
	struct moat_net_policy *net = calloc(1, sizeof(*net));
	struct zone_count *z = calloc(1, sizeof(*z));
	if (!net || !z || moat_net_policy_from_config(cfg, net, &err) != 0) {
		out(c, "<p class=\"bad\">[network] of moat.conf does not parse: "
		       "<code>moat config check</code>.</p>");
		free(net);
		free(z);
		return;
	}
	z->net = net;
	for (size_t i = 0; i <= net->zone_count; i++) {
		moat_buf_init(&z->links[i], 64 * 1024);
	}
	int rc = moat_registry_device_state_foreach(c->reg, zone_device, z, &err);
	out(c, "<h2>Network zones</h2>");
	struct zmap map = {.net = net};
	zmap_nodes(&map, z);
	zone_svg(c, &map);
	out(c, "<table id=\"zones\"><tr><th>zone</th><th>kind</th>"
	       "<th>subnets</th><th>devices</th><th>last seen there</th></tr>");
	for (size_t i = 0; i <= net->zone_count; i++) {
		if (i == net->zone_count) {
			out(c, "<tr id=\"zone-none\"><td>(in no zone)</td><td></td><td></td>");
		} else {
			const struct moat_net_zone *zn = &net->zones[i];
			if (zn->subnet_count == 0 && zn->prefix6_count == 0) {
				continue; /* a zone set to none */
			}
			out(c, "<tr id=\"zone-");
			esc(c, zn->name);
			out(c, "\"><td>");
			esc(c, zn->name);
			outf(c, "</td><td>%s</td><td>", zone_kinds[zn->kind]);
			for (size_t s = 0; s < zn->subnet_count; s++) {
				char a[16];
				moat_net_addr_format(zn->subnets[s].addr, a, sizeof(a));
				outf(c, "%s%s/%u", s ? ", " : "", a, zn->subnets[s].prefix);
			}
			for (size_t s = 0; s < zn->prefix6_count; s++) {
				char a[64];
				moat_net_addr6_format(zn->prefixes6[s].addr, a, sizeof(a));
				outf(c, ", %s/%u", a, zn->prefixes6[s].prefix);
			}
			out(c, "</td>");
		}
		outf(c, "<td class=\"count\">%lld</td><td>", (long long)z->devices[i]);
		devices -= z->devices[i];
		append_buf(c, &z->links[i]);
		out(c, "</td></tr>");
	}
	long long unseen = devices > 0 ? devices : 0;
	outf(c,
	     "</table><p><span id=\"zone-unknown\">%lld</span> device%s with no address seen "
	     "yet.</p>",
	     unseen, unseen == 1 ? "" : "s");
	checked(c, rc, &err);
	for (size_t i = 0; i <= net->zone_count; i++) {
		moat_buf_free(&z->links[i]);
	}
	free(net);
	free(z);
}

static enum MHD_Result page_fleet(struct dash_ctx *c)
{
	struct fleet_counts f = {0};
	moat_buf_init(&f.types, 256 * 1024);
	moat_buf_init(&f.releases, 256 * 1024);
	struct moat_err err = {0};
	if (moat_registry_stats(c->reg, moat_time_now(), fleet_stat, &f, &err) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=registry_error msg=\"%s\"", err.msg);
	}
	page_head(c, "Fleet");
	out(c, "<div class=\"cards\">");
	card(c, "devices-active", "active devices", f.devices[0], false);
	card(c, "devices-disabled", "disabled", f.devices[1], true);
	card(c, "devices-revoked", "revoked", f.devices[2], true);
	card(c, "conn-online", "online", f.conn[1], false);
	card(c, "conn-offline", "offline", f.conn[2], true);
	card(c, "certs-expiring-7d", "certificates expiring in 7 days", f.expiring7, true);
	card(c, "certs-expiring", "certificates expiring in 30 days", f.expiring30, true);
	card(c, "anomalies", "anomalies", f.anomalies, true);
	out(c, "</div><h2>Devices by type and status</h2><table id=\"by-type\"><tr><th>type</th>"
	       "<th>status</th><th>devices</th></tr>");
	append_buf(c, &f.types);
	out(c, "</table><h2>Devices by release</h2><table id=\"by-release\"><tr><th>type</th>"
	       "<th>running</th><th>devices</th></tr>");
	append_buf(c, &f.releases);
	out(c, "</table>");
	expiring_list(c);
	anomalies_list(c);
	zone_map(c, f.devices[0] + f.devices[1] + f.devices[2]);
	events_plot(c);
	moat_buf_free(&f.types);
	moat_buf_free(&f.releases);
	note(c, "fleet");
	return page_send(c, MHD_HTTP_OK);
}

/* ---- Devices ---- */

static const char *arg(struct dash_ctx *c, const char *name)
{
	const char *v = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, name);
	return v && v[0] && moat_dash_value_ok(v) ? v : NULL;
}

static int device_row(const struct moat_dash_device *d, void *ctx)
{
	struct dash_ctx *c = ctx;
	out(c, "<tr><td><a href=\"/dashboard/device/");
	url_esc(c, d->id);
	out(c, "\">");
	esc(c, d->id);
	out(c, "</a></td><td>");
	esc(c, d->type);
	out(c, "</td><td>");
	esc(c, d->status);
	out(c, "</td><td>");
	esc(c, moat_conn_state_name(d->conn));
	out(c, "</td><td>");
	esc(c, d->release[0] ? d->release : "-");
	out(c, "</td><td>");
	when(c, d->last_seen_ms);
	out(c, "</td><td>");
	when(c, d->cert_not_after * 1000);
	out(c, "</td></tr>");
	return 0;
}

static void filter_input(struct dash_ctx *c, const char *name, const char *label, const char *value)
{
	outf(c, "<label>%s<input name=\"%s\" value=\"", label, name);
	esc(c, value ? value : "");
	out(c, "\"></label>");
}

static void page_link(struct dash_ctx *c, const struct moat_dash_device_filter *f,
		      const char *group, int64_t page, const char *text, const char *id)
{
	outf(c, "<a id=\"%s\" href=\"/dashboard/devices?page=%lld", id, (long long)page);
	const char *names[] = {"q", "type", "status", "conn", "release", "tag", "group"};
	const char *vals[] = {f->search, f->type, f->status, f->conn, f->release, f->tag, group};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (vals[i]) {
			outf(c, "&amp;%s=", names[i]);
			url_esc(c, vals[i]);
		}
	}
	outf(c, "\">%s</a>", text);
}

/* A group's members as a JSON array of names (identity names need no escaping). */
static int member_json(const struct moat_device_row *row, void *ctx)
{
	struct moat_buf *b = ctx;
	return moat_buf_printf(b, "%s\"%s\"", b->len > 1 ? "," : "", row->id) == 0 ? 0
										   : MOAT_ENOMEM;
}

static enum MHD_Result page_devices(struct dash_ctx *c)
{
	struct moat_dash_device_filter f = {
		.search = arg(c, "q"),
		.type = arg(c, "type"),
		.status = arg(c, "status"),
		.conn = arg(c, "conn"),
		.release = arg(c, "release"),
		.tag = arg(c, "tag"),
		.limit = DASH_PAGE_SIZE,
	};
	int64_t page = 1;
	const char *p = arg(c, "page");
	if (p && moat_int_parse(p, 1, 1000000, &page, NULL) != 0) {
		page = 1;
	}
	f.offset = (page - 1) * DASH_PAGE_SIZE;
	const char *group = arg(c, "group");
	struct moat_buf members;
	moat_buf_init(&members, DASH_PAGE_MAX_BYTES);
	char *members_json = NULL;
	size_t members_len = 0;
	struct moat_err gerr = {0};
	bool group_bad = false;
	if (group) {
		(void)moat_buf_append_str(&members, "[");
		group_bad = moat_group_members(c->reg, group, NULL, moat_time_now(), member_json,
					       &members, &gerr) != 0;
		(void)moat_buf_append_str(&members, "]");
		if (!group_bad && moat_buf_take(&members, &members_json, &members_len) == 0) {
			f.only_json = members_json;
		} else {
			group_bad = true;
			f.only_json = "[]";
		}
	}
	moat_buf_free(&members);
	page_head(c, "Devices");
	out(c, "<form class=\"filters\" method=\"get\" action=\"/dashboard/devices\">");
	filter_input(c, "q", "search", f.search);
	filter_input(c, "type", "type", f.type);
	filter_input(c, "status", "status (active, disabled, revoked)", f.status);
	filter_input(c, "conn", "state (online, offline, unknown)", f.conn);
	filter_input(c, "release", "release", f.release);
	filter_input(c, "tag", "tag", f.tag);
	filter_input(c, "group", "group", group);
	out(c, "<button type=\"submit\">Filter</button></form>");
	if (group_bad) {
		out(c, "<p class=\"bad\" id=\"group-error\">");
		esc(c, gerr.msg[0] ? gerr.msg : "no such group");
		out(c, "</p>");
	}
	int64_t total = 0;
	struct moat_err err = {0};
	size_t mark = c->b.len;
	outf(c, "<table id=\"devices\"><tr><th>device</th><th>type</th><th>status</th>"
		"<th>state</th><th>release</th><th>last seen</th><th>certificate until</th></tr>");
	int listed = moat_registry_dash_devices(c->reg, &f, device_row, c, &total, &err);
	free(members_json);
	if (listed != 0) {
		c->b.len = mark;
		moat_log(MOAT_LOG_ERROR, "event=registry_error msg=\"%s\"", err.msg);
		out(c, "<p class=\"bad\">The registry failed.</p>");
		return page_send(c, MHD_HTTP_INTERNAL_SERVER_ERROR);
	}
	int64_t pages = (total + DASH_PAGE_SIZE - 1) / DASH_PAGE_SIZE;
	outf(c,
	     "</table><div class=\"pager\"><span id=\"total\">%lld</span> devices, page "
	     "<span id=\"page\">%lld</span> of %lld",
	     (long long)total, (long long)page, (long long)(pages ? pages : 1));
	if (page > 1) {
		page_link(c, &f, group, page - 1, "previous", "prev");
	}
	if (page < pages) {
		page_link(c, &f, group, page + 1, "next", "next");
	}
	out(c, "</div>");
	note(c, "devices");
	return page_send(c, MHD_HTTP_OK);
}

/* ---- Device ---- */

/* A metric over the window, averaged into one column per horizontal pixel of the plot, so
 * a week of one message a minute is drawn whole and in bounded memory. */
struct series {
	char name[MOAT_MSG_READING_NAME_MAX_LEN + 1];
	int64_t samples;
	double sum[DASH_PLOT_COLS];
	int64_t n[DASH_PLOT_COLS];
};

struct plot {
	struct series *s[DASH_PLOT_METRICS_MAX];
	size_t count;
	int64_t since_ms, until_ms;
};

static void plot_add(struct plot *p, const char *name, int64_t t, double v)
{
	if (!isfinite(v) || t < p->since_ms || t > p->until_ms) {
		return;
	}
	size_t i = 0;
	for (; i < p->count && strcmp(p->s[i]->name, name) != 0; i++) {
	}
	if (i == p->count) {
		if (p->count == DASH_PLOT_METRICS_MAX) {
			return;
		}
		p->s[i] = calloc(1, sizeof(struct series));
		if (!p->s[i]) {
			return;
		}
		snprintf(p->s[i]->name, sizeof(p->s[i]->name), "%s", name);
		p->count++;
	}
	struct series *s = p->s[i];
	int64_t span = p->until_ms - p->since_ms;
	int64_t col = span > 0 ? (t - p->since_ms) * DASH_PLOT_COLS / span : 0;
	if (col >= DASH_PLOT_COLS) {
		col = DASH_PLOT_COLS - 1;
	}
	s->sum[col] += v;
	s->n[col]++;
	s->samples++;
}

static int plot_agg(const struct moat_telemetry_agg *a, void *ctx)
{
	plot_add(ctx, a->metric, a->bucket_ms, a->mean);
	return 0;
}

static int plot_raw(int64_t at_ms, const char *payload, size_t len, void *ctx)
{
	struct plot *p = ctx;
	struct moat_msg_telemetry t;
	struct moat_err err = {0};
	if (moat_msg_telemetry_parse(payload, len, &t, &err) != 0) {
		return 0;
	}
	for (size_t i = 0; i < t.reading_count; i++) {
		plot_add(p, t.readings[i].name, at_ms, t.readings[i].value);
	}
	if (t.has_signal_strength) {
		plot_add(p, "rssi", at_ms, (double)t.signal_strength);
	}
	if (t.has_free_heap) {
		plot_add(p, "free_heap", at_ms, (double)t.free_heap);
	}
	return 0;
}

static void plot_render(struct dash_ctx *c, const struct series *s)
{
	double lo = 0, hi = 0;
	bool any = false;
	for (int i = 0; i < DASH_PLOT_COLS; i++) {
		if (s->n[i] == 0) {
			continue;
		}
		double m = s->sum[i] / (double)s->n[i];
		lo = !any || m < lo ? m : lo;
		hi = !any || m > hi ? m : hi;
		any = true;
	}
	double span = hi > lo ? hi - lo : 1.0;
	out(c, "<h3>");
	esc(c, s->name);
	outf(c, " <small>(%lld values, %.6g to %.6g)</small></h3>", (long long)s->samples, lo, hi);
	out(c, "<svg class=\"plot\" data-metric=\"");
	esc(c, s->name);
	outf(c,
	     "\" data-points=\"%lld\" viewBox=\"0 0 720 160\" width=\"720\" height=\"160\" "
	     "role=\"img\"><polyline fill=\"none\" stroke=\"#14365d\" stroke-width=\"1.5\" "
	     "points=\"",
	     (long long)s->samples);
	for (int i = 0; i < DASH_PLOT_COLS; i++) {
		if (s->n[i] > 0) {
			double y = 145 - 130.0 * (s->sum[i] / (double)s->n[i] - lo) / span;
			outf(c, "%d,%.1f ", 40 + i, y);
		}
	}
	outf(c,
	     "\"/><text x=\"2\" y=\"14\" font-size=\"10\">%.4g</text>"
	     "<text x=\"2\" y=\"150\" font-size=\"10\">%.4g</text></svg>",
	     hi, lo);
}

struct cert_rows {
	struct dash_ctx *c;
	const char *id;
};

static int cert_row(const struct moat_cert_row *r, void *ctx)
{
	struct cert_rows *cr = ctx;
	if (strcmp(r->identity, cr->id) != 0) {
		return 0;
	}
	struct dash_ctx *c = cr->c;
	out(c, "<tr><td>");
	esc(c, r->serial_hex);
	out(c, "</td><td>");
	when(c, r->not_before * 1000);
	out(c, "</td><td>");
	when(c, r->not_after * 1000);
	out(c, "</td><td>");
	esc(c, r->revoked ? moat_pki_reason_name(r->reason) : "valid");
	out(c, "</td></tr>");
	return 0;
}

static int event_row(const struct moat_security_event *ev, void *ctx)
{
	struct dash_ctx *c = ctx;
	out(c, "<tr><td>");
	when(c, ev->time_ms);
	out(c, "</td><td>");
	esc(c, ev->kind);
	out(c, "</td><td>");
	esc(c, moat_severity_name(ev->severity));
	out(c, "</td><td>");
	if (ev->identity[0]) {
		device_link(c, ev->identity);
	}
	out(c, "</td><td>");
	esc(c, ev->address);
	out(c, "</td><td>");
	esc(c, ev->evidence);
	out(c, "</td></tr>");
	return 0;
}

/* An open anomaly: its rule instead of its kind. */
static int anomaly_row(const struct moat_security_event *ev, void *ctx)
{
	struct dash_ctx *c = ctx;
	out(c, "<tr><td>");
	when(c, ev->time_ms);
	out(c, "</td><td class=\"rule\">");
	esc(c, ev->rule);
	out(c, "</td><td>");
	esc(c, moat_severity_name(ev->severity));
	out(c, "</td><td>");
	if (ev->identity[0]) {
		device_link(c, ev->identity);
	}
	out(c, "</td><td>");
	esc(c, ev->address);
	out(c, "</td><td>");
	esc(c, ev->evidence);
	out(c, "</td></tr>");
	return 0;
}

static int update_row(const struct moat_update_event *ev, void *ctx)
{
	struct dash_ctx *c = ctx;
	out(c, "<tr><td>");
	when(c, ev->at * 1000);
	out(c, "</td><td>");
	esc(c, moat_update_stage_name(ev->stage));
	out(c, "</td><td>");
	esc(c, ev->version);
	out(c, "</td><td>");
	esc(c, ev->running);
	out(c, "</td><td>");
	esc(c, ev->reason);
	out(c, "</td></tr>");
	return 0;
}

static int tag_item(const char *tag, void *ctx)
{
	struct dash_ctx *c = ctx;
	out(c, "<li>");
	esc(c, tag);
	out(c, "</li>");
	return 0;
}

static void action_form(struct dash_ctx *c, const char *target, const char *action,
			const char *label, bool reason)
{
	out(c, "<form method=\"post\" action=\"");
	esc(c, target);
	outf(c,
	     "\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
	     "<input type=\"hidden\" name=\"action\" value=\"%s\">",
	     c->csrf, action);
	if (reason) {
		out(c, "<label>reason<select name=\"reason\"><option>unspecified</option>"
		       "<option>key-compromise</option><option>superseded</option>"
		       "<option>cessation-of-operation</option></select></label>");
	}
	outf(c, "<button type=\"submit\" id=\"do-%s\">%s</button></form>", action, label);
}

/* Appends the certificates of the deployment file rel (PEM, several) to cas. */
static void load_cas(struct dash_ctx *c, const char *rel, STACK_OF(X509) * cas)
{
	char path[PATH_MAX];
	struct moat_err err = {0};
	if (moat_deploy_path(c->d, path, sizeof(path), rel, &err) != 0) {
		return;
	}
	BIO *bio = BIO_new_file(path, "r");
	X509 *x = NULL;
	for (int i = 0; bio && i < 16 &&
			(x = PEM_read_bio_X509(bio, NULL, moat_pem_no_passphrase, NULL)) != NULL;
	     i++) {
		if (!sk_X509_push(cas, x)) {
			X509_free(x);
		}
	}
	BIO_free(bio);
}

static void chain_row(struct dash_ctx *c, X509 *x)
{
	char subj[256], iss[256];
	X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
	X509_NAME_oneline(X509_get_issuer_name(x), iss, sizeof(iss));
	out(c, "<tr><td>");
	esc(c, subj);
	out(c, "</td><td>");
	esc(c, iss);
	out(c, "</td></tr>");
}

/* The chain of the device's current certificate: the leaf the registry holds, then each
 * issuer found by name among the deployment's issuing CAs and root (subject and issuer of
 * each; what a verifier builds, not a verification). */
static void cert_chain(struct dash_ctx *c, const char *serial)
{
	char *pem = NULL;
	struct moat_err err = {0};
	if (!serial[0] || moat_registry_cert_pem(c->reg, serial, &pem, &err) != 0) {
		return;
	}
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *leaf = bio ? PEM_read_bio_X509(bio, NULL, moat_pem_no_passphrase, NULL) : NULL;
	BIO_free(bio);
	free(pem);
	if (!leaf) {
		return;
	}
	STACK_OF(X509) *cas = sk_X509_new_null();
	if (cas) {
		load_cas(c, MOAT_ISSUERS_FILE, cas);
		load_cas(c, "pki/ca.crt", cas);
	}
	out(c, "<h2>Certificate chain</h2><table id=\"chain\"><tr><th>subject</th><th>issuer</th>"
	       "</tr>");
	chain_row(c, leaf);
	X509 *cur = leaf;
	for (int depth = 0; cas && depth < 3; depth++) {
		if (X509_NAME_cmp(X509_get_subject_name(cur), X509_get_issuer_name(cur)) == 0) {
			break; /* the root */
		}
		X509 *next = NULL;
		for (int i = 0; i < sk_X509_num(cas) && !next; i++) {
			X509 *ca = sk_X509_value(cas, i);
			if (X509_NAME_cmp(X509_get_subject_name(ca), X509_get_issuer_name(cur)) ==
			    0) {
				next = ca;
			}
		}
		if (!next) {
			break;
		}
		chain_row(c, next);
		cur = next;
	}
	out(c, "</table>");
	X509_free(leaf);
	sk_X509_pop_free(cas, X509_free);
}

static void diag_row(const char *name, const char *value, bool number, void *ctx)
{
	struct dash_ctx *c = ctx;
	(void)number;
	out(c, "<tr><th>");
	esc(c, name);
	out(c, "</th><td>");
	esc(c, value);
	out(c, "</td></tr>");
}

/* "Last diagnostics": the device's last report as moatd keeps it (registry.h), every field
 * checked again by the one reader (secevent.h) before it is shown. */
static void last_diagnostics(struct dash_ctx *c, const char *id)
{
	char report[MOAT_REGISTRY_DIAGNOSTICS_MAX_BYTES + 1];
	size_t len = 0;
	int64_t at_ms = 0;
	struct moat_err err = {0};
	struct moat_diag_summary ds;
	out(c, "<h2>Last diagnostics</h2>");
	int rc = moat_registry_diagnostics_get(c->reg, id, &at_ms, report, sizeof(report), &len,
					       &err);
	if (rc == MOAT_ENOENT) {
		out(c, "<p id=\"no-diagnostics\">No diagnostics report received.</p>");
		return;
	}
	if (rc != 0 || moat_diag_summary_parse(report, len, &ds, &err) != 0) {
		out(c, "<p class=\"bad\">unreadable: ");
		esc(c, err.msg);
		out(c, "</p>");
		return;
	}
	out(c, "<table id=\"diagnostics\"><tr><th>received</th><td id=\"diag-received\">");
	when(c, at_ms);
	out(c, "</td></tr>");
	moat_diag_summary_foreach(&ds, diag_row, c);
	out(c, "</table>");
}

static enum MHD_Result page_device(struct dash_ctx *c, const char *id)
{
	struct moat_identity ident;
	struct moat_err err = {0};
	if (!moat_identity_name_ok(id) ||
	    moat_registry_identity_get(c->reg, id, &ident, &err) != 0 ||
	    ident.role != MOAT_ROLE_DEVICE) {
		page_head(c, "No such device");
		note(c, "no_device");
		return page_send(c, MHD_HTTP_NOT_FOUND);
	}
	struct moat_device_state st;
	bool seen = moat_registry_device_state_get(c->reg, id, &st, &err) == 0;
	const char *window = arg(c, "window");
	int64_t win = moat_dash_window_ms(window);
	if (!win) {
		window = "24h";
		win = moat_dash_window_ms(window);
	}
	page_head(c, id);
	out(c, "<table id=\"identity\"><tr><th>type</th><td>");
	esc(c, ident.device_type);
	out(c, "</td></tr><tr><th>status</th><td id=\"status\">");
	esc(c, moat_identity_status_name(ident.status));
	out(c, "</td></tr><tr><th>state</th><td id=\"conn\">");
	esc(c, seen ? moat_conn_state_name(st.state) : "unknown");
	out(c, "</td></tr><tr><th>last seen</th><td>");
	when(c, seen ? st.last_seen_ms : 0);
	out(c, "</td></tr><tr><th>address</th><td>");
	esc(c, seen ? st.address : "");
	out(c, "</td></tr><tr><th>running</th><td id=\"running\">");
	esc(c, seen && st.running[0] ? st.running : "-");
	out(c, "</td></tr><tr><th>agent</th><td>");
	esc(c, seen ? st.agent_version : "");
	out(c, "</td></tr><tr><th>last command</th><td>");
	if (seen && st.last_command[0]) {
		esc(c, st.last_command);
		out(c, ": ");
		esc(c, st.last_command_status);
		out(c, " at ");
		when(c, st.last_command_at_ms);
	}
	out(c, "</td></tr><tr><th>certificate</th><td id=\"serial\">");
	esc(c, ident.serial_hex);
	out(c, "</td></tr><tr><th>valid until</th><td>");
	when(c, ident.not_after * 1000);
	out(c, "</td></tr></table>");
	last_diagnostics(c, id);
	out(c, "<h2>Tags</h2><ul id=\"tags\">");
	if (moat_registry_tag_foreach(c->reg, id, tag_item, c, &err) != 0) {
		out(c, "<li class=\"bad\">unreadable</li>");
	}
	out(c, "</ul><h2>Actions</h2><div class=\"cards\">");
	char target[MOAT_ID_BUF_LEN + 40];
	snprintf(target, sizeof(target), "/dashboard/device/%s/action", id);
	if (ident.status == MOAT_ID_ACTIVE) {
		action_form(c, target, "disable", "Disable", false);
	} else if (ident.status == MOAT_ID_DISABLED) {
		action_form(c, target, "enable", "Enable", false);
	}
	if (ident.status != MOAT_ID_REVOKED) {
		action_form(c, target, "revoke", "Revoke", true);
	}
	if (ident.status == MOAT_ID_ACTIVE) {
		out(c, "<form method=\"post\" action=\"");
		esc(c, target);
		outf(c,
		     "\"><input type=\"hidden\" name=\"csrf\" value=\"%s\"><input type=\"hidden\" "
		     "name=\"action\" value=\"command\"><label>command<select name=\"command\">"
		     "<option>diagnostics</option><option>check_update</option>"
		     "<option>update_interval</option><option>reboot</option></select></label>"
		     "<label>interval (update_interval)<input name=\"interval\" value=\"30s\" "
		     "size=\"6\"></label><button type=\"submit\" id=\"do-command\">Send"
		     "</button></form>",
		     c->csrf);
	}
	out(c, "</div>");
	cert_chain(c, ident.serial_hex);
	out(c, "<h2>Certificates</h2><table id=\"certs\"><tr><th>serial</th><th>from</th>"
	       "<th>until</th><th>revoked</th></tr>");
	struct cert_rows cr = {.c = c, .id = id};
	checked(c, moat_registry_cert_foreach_of(c->reg, id, cert_row, &cr, &err), &err);
	out(c, "</table><h2>Telemetry</h2><p>");
	const char *wins[] = {"1h", "24h", "7d"};
	for (size_t i = 0; i < 3; i++) {
		if (strcmp(window, wins[i]) == 0) {
			outf(c, "<b>%s</b> ", wins[i]);
		} else {
			out(c, "<a href=\"/dashboard/device/");
			url_esc(c, id);
			outf(c, "?window=%s\">%s</a> ", wins[i], wins[i]);
		}
	}
	out(c, "</p>");
	int64_t now = moat_time_wall_ms();
	struct plot p = {.since_ms = now - win, .until_ms = now};
	/* aggregates for what retention folded already, then the raw messages kept */
	checked(c,
		moat_registry_telemetry_agg_foreach(c->reg, id,
						    win > 24LL * 3600 * 1000 ? 3600 : 60, plot_agg,
						    &p, &err),
		&err);
	checked(c,
		moat_registry_telemetry_foreach(c->reg, id, now - win, DASH_PLOT_RAW_MAX, plot_raw,
						&p, &err),
		&err);
	if (p.count == 0) {
		out(c, "<p id=\"no-telemetry\">No telemetry in this window.</p>");
	}
	for (size_t i = 0; i < p.count; i++) {
		plot_render(c, p.s[i]);
		free(p.s[i]);
	}
	out(c, "<h2>Security events</h2><table id=\"events\"><tr><th>time</th><th>kind</th>"
	       "<th>severity</th><th>identity</th><th>address</th><th>evidence</th></tr>");
	struct moat_event_filter ef = {.identity = id, .limit = 50};
	checked(c, moat_registry_security_event_foreach(c->reg, &ef, event_row, c, &err), &err);
	out(c, "</table><h2>Update history</h2><table id=\"updates\"><tr><th>time</th>"
	       "<th>stage</th><th>version</th><th>running</th><th>reason</th></tr>");
	checked(c, moat_registry_update_event_foreach(c->reg, id, 50, update_row, c, &err), &err);
	out(c, "</table>");
	note(c, "device");
	return page_send(c, MHD_HTTP_OK);
}

/* ---- Security events ---- */

/* ---- Security events, live: the table carries what the stream needs (events.js) ---- */

struct newest {
	struct dash_ctx *c;
	int64_t seq;
};

static int event_row_newest(const struct moat_security_event *ev, void *ctx)
{
	struct newest *n = ctx;
	n->seq = ev->seq > n->seq ? ev->seq : n->seq;
	return event_row(ev, n->c);
}

static int seq_only(const struct moat_security_event *ev, void *ctx)
{
	struct newest *n = ctx;
	n->seq = ev->seq > n->seq ? ev->seq : n->seq;
	return 0;
}

static void data_attr(struct dash_ctx *c, const char *name, const char *value)
{
	if (value) {
		outf(c, " data-%s=\"", name);
		esc(c, value);
		out(c, "\"");
	}
}

/* The events table; with script, events.js appends what arrives after its newest row
 * (data-after) over /dashboard/events/stream with the same filters. */
static void events_table(struct dash_ctx *c, const struct moat_event_filter *f, const char *kind,
			 const char *device, const char *sev)
{
	struct moat_buf rows;
	struct moat_buf keep = c->b;
	struct newest n = {.c = c};
	struct moat_err err = {0};
	/* rows first (into their own buffer), so the table's tag can carry the newest seq */
	moat_buf_init(&rows, DASH_PAGE_MAX_BYTES);
	c->b = rows;
	int rc = moat_registry_security_event_foreach(c->reg, f, event_row_newest, &n, &err);
	rows = c->b;
	c->b = keep;
	outf(c, "<p id=\"stream-status\"></p><table id=\"events\" data-after=\"%lld\"",
	     (long long)n.seq);
	data_attr(c, "kind", kind);
	data_attr(c, "device", device);
	data_attr(c, "severity", sev);
	out(c, "><tr><th>time</th><th>kind</th><th>severity</th>"
	       "<th>identity</th><th>address</th><th>evidence</th></tr>");
	append_buf(c, &rows);
	moat_buf_free(&rows);
	out(c, "</table>");
	checked(c, rc, &err);
	out(c, "<script src=\"/dashboard/static/events.js\"></script>");
}

/* GET /dashboard/events/stream: the filters of the page, after= its newest event (a
 * reconnecting EventSource's Last-Event-ID wins). */
static enum MHD_Result events_stream(struct dash_ctx *c)
{
	const char *sev = arg(c, "severity");
	enum moat_severity min = MOAT_SEV_INFO;
	struct moat_err err = {0};
	int64_t after = 0;
	const char *last = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Last-Event-ID");
	const char *a = last && last[0] ? last : arg(c, "after");
	/* a position or filter that does not read is said, not taken for another one */
	const char *bad = NULL;
	if (sev && moat_severity_parse(sev, &min, &err) != 0) {
		bad = "severity is not info, low, medium, high or critical\n";
	} else if (a && a[0] && moat_int_parse(a, 0, INT64_MAX, &after, NULL) != 0) {
		bad = last && last[0] ? "Last-Event-ID is not an event number\n"
				      : "after is not an event number\n";
	}
	if (bad) {
		note(c, "bad_stream_request");
		return send_raw(c, MHD_HTTP_BAD_REQUEST, "text/plain; charset=utf-8", bad,
				strlen(bad), NULL, NULL);
	}
	if (!a || !a[0]) {
		/* no position given: from now on, not the whole history */
		struct moat_event_filter newest = {.limit = 1};
		struct newest n = {.c = NULL};
		if (moat_registry_security_event_foreach(c->reg, &newest, seq_only, &n, &err) !=
		    0) {
			n.seq = 0;
		}
		after = n.seq;
	}
	/* the stream's own connection to the registry: its file or its PostgreSQL URL */
	char reg[PATH_MAX];
	if (moat_deploy_registry_location(c->dash->dir, moat_deploy_config(c->d), reg, sizeof(reg),
					  &err) != 0) {
		reg[0] = '\0'; /* the stream's open fails: 503 */
	}
	struct dash_stream_req rq = {.session_hash = c->via_cert ? "" : c->session_hash,
				     .op = c->op,
				     .kind = arg(c, "kind"),
				     .device = arg(c, "device"),
				     .min_severity = (int)min,
				     .after_seq = after,
				     .headers = add_security_headers};
	unsigned status = 0;
	if (dash_stream_serve(c->dash->streams, c->conn, reg, &rq, &status) == MHD_YES) {
		*c->status = status;
		note(c, "events_stream");
		return MHD_YES;
	}
	if (status == MHD_HTTP_TOO_MANY_REQUESTS) {
		return refuse(c, status, "stream_limit", "Too many live event streams open.");
	}
	note(c, "stream_failed");
	static const char sorry[] = "the event stream is not available\n";
	return send_raw(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", sorry,
			sizeof(sorry) - 1, NULL, NULL);
}

static enum MHD_Result page_events(struct dash_ctx *c)
{
	const char *kind = arg(c, "kind");
	const char *device = arg(c, "device");
	const char *sev = arg(c, "severity");
	enum moat_severity min = MOAT_SEV_INFO;
	struct moat_err err = {0};
	if (sev && moat_severity_parse(sev, &min, &err) != 0) {
		min = MOAT_SEV_INFO;
		sev = NULL;
	}
	bool live = arg(c, "live") != NULL;
	c->refresh_s = live ? DASH_LIVE_REFRESH_S : 0;
	page_head(c, "Security events");
	out(c, "<form class=\"filters\" method=\"get\" action=\"/dashboard/events\">");
	filter_input(c, "kind", "kind", kind);
	filter_input(c, "device", "device", device);
	filter_input(c, "severity", "at least (info, low, medium, high, critical)", sev);
	outf(c,
	     "<label>live<input type=\"checkbox\" name=\"live\" value=\"1\"%s></label>"
	     "<button type=\"submit\">Filter</button></form>",
	     live ? " checked" : "");
	if (live) {
		outf(c, "<p id=\"live\">Live: this page reloads every %d s.</p>",
		     DASH_LIVE_REFRESH_S);
	}
	struct moat_event_filter f = {.kind = kind,
				      .identity = device,
				      .min_severity = (int)min,
				      .limit = DASH_EVENTS_MAX};
	int64_t n = 0;
	if (moat_registry_security_event_count(c->reg, &f, &n, &err) != 0) {
		n = 0;
	}
	outf(c,
	     "<p><span id=\"matching\">%lld</span> matching events; the newest %d are shown, "
	     "oldest first.</p>",
	     (long long)n, DASH_EVENTS_MAX);
	events_table(c, &f, kind, device, sev);
	note(c, "events");
	return page_send(c, MHD_HTTP_OK);
}

/* ---- Firmware ---- */

static int release_row(const struct moat_release *r, void *ctx)
{
	struct dash_ctx *c = ctx;
	out(c, "<tr><td>");
	esc(c, r->device_type);
	out(c, "</td><td>");
	esc(c, r->version);
	outf(c, "</td><td>%lld</td><td>%llu</td><td>", (long long)r->security_version,
	     (unsigned long long)r->size);
	when(c, r->published_at * 1000);
	out(c, "</td><td>");
	if (r->rollout_percent >= 0) {
		outf(c, "%d%%", r->rollout_percent);
	} else {
		outf(c, "%zu listed", r->device_count);
	}
	out(c, "</td><td><code>");
	esc(c, r->sha256_hex);
	out(c, "</code></td></tr>");
	return 0;
}

static int rollout_row(const struct moat_rollout_row *r, void *ctx)
{
	struct dash_ctx *c = ctx;
	struct moat_rollout_progress pr;
	struct moat_err err = {0};
	if (moat_rollout_progress(c->reg, r->id, moat_time_now(), &pr, &err) != 0) {
		return 0;
	}
	outf(c,
	     "<section class=\"rollout\" id=\"rollout-%lld\"><h3>Rollout %lld: ", (long long)r->id,
	     (long long)r->id);
	esc(c, pr.release.device_type);
	out(c, " ");
	esc(c, pr.release.version);
	out(c, " to group ");
	esc(c, r->group);
	out(c, " <span class=\"state\">");
	esc(c, moat_rollout_state_name(r->state));
	outf(c, "</span>, phase %d of %d</h3>", r->phase + 1, r->phase_count);
	if (r->cause[0]) {
		out(c, "<p>");
		esc(c, r->cause);
		out(c, "</p>");
	}
	out(c, "<table><tr><th>phase</th><th>percent</th><th>devices</th>");
	for (int s = 0; s < MOAT_RD_STATE_COUNT; s++) {
		out(c, "<th>");
		esc(c, moat_rollout_dev_state_name((enum moat_rollout_dev_state)s));
		out(c, "</th>");
	}
	out(c, "</tr>");
	for (int i = 0; i < r->phase_count && i < MOAT_ROLLOUT_PHASES_MAX; i++) {
		outf(c, "<tr><td>%d%s</td><td>%d%%</td><td>%zu</td>", i + 1,
		     i == r->phase ? " (current)" : "", r->percent[i], pr.phases[i].devices);
		for (int s = 0; s < MOAT_RD_STATE_COUNT; s++) {
			outf(c, "<td>%zu</td>", pr.phases[i].by_state[s]);
		}
		out(c, "</tr>");
	}
	out(c, "</table>");
	char target[64];
	snprintf(target, sizeof(target), "/dashboard/rollout/%lld/action", (long long)r->id);
	if (r->state == MOAT_ROLLOUT_RUNNING) {
		action_form(c, target, "pause", "Pause", false);
	} else if (r->state == MOAT_ROLLOUT_PAUSED || r->state == MOAT_ROLLOUT_HALTED) {
		action_form(c, target, "resume", "Resume", false);
	}
	out(c, "</section>");
	return 0;
}

static enum MHD_Result page_firmware(struct dash_ctx *c)
{
	struct moat_err err = {0};
	page_head(c, "Firmware");
	out(c, "<h2>Releases</h2><table id=\"releases\"><tr><th>type</th><th>version</th>"
	       "<th>security version</th><th>size</th><th>published</th><th>rollout</th>"
	       "<th>sha256</th></tr>");
	checked(c, moat_registry_release_foreach(c->reg, NULL, release_row, c, &err), &err);
	out(c, "</table><h2>Rollouts</h2>");
	checked(c, moat_registry_rollout_foreach(c->reg, rollout_row, c, &err), &err);
	note(c, "firmware");
	return page_send(c, MHD_HTTP_OK);
}

/* ---- actions ---- */

/* The form's field, or NULL when absent or malformed. */
static const char *field(struct dash_ctx *c, const char *name, char *buf, size_t size)
{
	if (moat_dash_form_get(c->rq->body ? c->rq->body : "", c->rq->body_len, name, buf, size) !=
	    0) {
		return NULL;
	}
	return buf;
}

static void action_event(struct dash_ctx *c, const char *subject, const char *action,
			 const char *detail, const char *outcome)
{
	moat_log(MOAT_LOG_WARN,
		 "event=dashboard_action client=%s operator=%s via=%s subject=%s action=%s "
		 "detail=%s outcome=%s",
		 c->rq->client, c->op, c->via_cert ? "certificate" : "session", subject, action,
		 detail && detail[0] ? detail : NULL, outcome);
	char evidence[200];
	snprintf(evidence, sizeof(evidence), "operator=%s via=%s action=%s%s%s outcome=%s", c->op,
		 c->via_cert ? "certificate" : "session", action, detail && detail[0] ? " " : "",
		 detail ? detail : "", outcome);
	moat_server_security_event("dashboard_action", MOAT_SEV_MEDIUM, subject, c->rq->client,
				   evidence);
}

/* The confirmation page: the same form again with confirm=yes. */
static enum MHD_Result confirm_page(struct dash_ctx *c, const char *target, const char *what,
				    const char *action, const char *reason, const char *command,
				    const char *interval)
{
	page_head(c, "Confirm");
	out(c, "<p id=\"confirm-text\">");
	esc(c, what);
	out(c, "</p><form method=\"post\" action=\"");
	esc(c, target);
	outf(c,
	     "\"><input type=\"hidden\" name=\"csrf\" value=\"%s\"><input type=\"hidden\" "
	     "name=\"action\" value=\"%s\"><input type=\"hidden\" name=\"confirm\" "
	     "value=\"yes\">",
	     c->csrf, action);
	const char *names[] = {"reason", "command", "interval"};
	const char *vals[] = {reason, command, interval};
	for (size_t i = 0; i < 3; i++) {
		if (vals[i]) {
			outf(c, "<input type=\"hidden\" name=\"%s\" value=\"", names[i]);
			esc(c, vals[i]);
			out(c, "\">");
		}
	}
	out(c, "<button class=\"danger\" type=\"submit\" id=\"confirm\">Confirm</button> "
	       "<a href=\"/dashboard\">Cancel</a></form>");
	note(c, "confirm");
	return page_send(c, MHD_HTTP_OK);
}

static enum MHD_Result done_page(struct dash_ctx *c, unsigned status, const char *text,
				 const char *back)
{
	page_head(c, status == MHD_HTTP_OK ? "Done" : "Not done");
	outf(c, "<p id=\"result\" class=\"%s\">", status == MHD_HTTP_OK ? "ok" : "bad");
	esc(c, text);
	out(c, "</p><p><a id=\"back\" href=\"");
	esc(c, back);
	out(c, "\">Back</a></p>");
	return page_send(c, status);
}

/* Sends a command to an active device over moatd's own MQTT session as its service
 * identity (the one ingest uses; the operator is named in the event), QoS 1, waiting for
 * the broker's PUBACK. The device's answer arrives on its command_responses topic, which
 * ingest records: the device page shows it as the last command. */
static enum MHD_Result device_command(struct dash_ctx *c, const char *id,
				      const struct moat_identity *ident, bool confirmed,
				      const char *back)
{
	char name_buf[MOAT_MSG_CMD_NAME_MAX_LEN + 1], interval_buf[32];
	const char *name = field(c, "command", name_buf, sizeof(name_buf));
	const char *interval = field(c, "interval", interval_buf, sizeof(interval_buf));
	struct moat_msg_command cmd;
	memset(&cmd, 0, sizeof(cmd));
	struct moat_err err = {0};
	if (!name || !moat_msg_command_name_ok(name) ||
	    moat_msg_command_kind(name) == MOAT_CMD_UNKNOWN) {
		note(c, "bad_command");
		return done_page(c, MHD_HTTP_BAD_REQUEST,
				 "Commands: diagnostics, check_update, update_interval, reboot.",
				 back);
	}
	memcpy(cmd.name, name, strlen(name) + 1); /* fits: name_buf is as large */
	cmd.kind = moat_msg_command_kind(name);
	if (cmd.kind == MOAT_CMD_UPDATE_INTERVAL) {
		int64_t ms = 0;
		char kv[40];
		if (!interval || moat_duration_ms_parse(interval, &ms, &err) != 0 ||
		    ms % 1000 != 0 || ms < 1000 || ms > 86400000LL) {
			note(c, "bad_interval");
			return done_page(
				c, MHD_HTTP_BAD_REQUEST,
				"update_interval: an interval of whole seconds with its unit, "
				"1s to 1d (30s, 5m).",
				back);
		}
		snprintf(kv, sizeof(kv), "interval=%lld", (long long)(ms / 1000));
		if (moat_msg_command_add_arg(&cmd, kv, &err) != 0) {
			return done_page(c, MHD_HTTP_BAD_REQUEST, err.msg, back);
		}
	} else {
		interval = NULL;
	}
	if (ident->status != MOAT_ID_ACTIVE) {
		note(c, "device_not_active");
		return done_page(c, MHD_HTTP_CONFLICT, "Only an active device takes commands.",
				 back);
	}
	char target[MOAT_ID_BUF_LEN + 40];
	snprintf(target, sizeof(target), "/dashboard/device/%s/action", id);
	if (!confirmed) {
		char what[160];
		snprintf(what, sizeof(what), "Send %s%s%s to device %s?", name, interval ? " " : "",
			 interval ? interval : "", id);
		return confirm_page(c, target, what, "command", NULL, name, interval);
	}
	uint8_t rnd[6];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		return done_page(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "No random bytes.", back);
	}
	snprintf(cmd.id, sizeof(cmd.id), "dash-%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
		 rnd[3], rnd[4], rnd[5]);
	char payload[1024], topic[MOAT_TOPIC_MAX_LEN + 1], suffix[32];
	size_t len = 0;
	snprintf(suffix, sizeof(suffix), "dashboard-%02x%02x", rnd[0], rnd[1]);
	const char *as = moat_config_get(moat_deploy_config(c->d), "server", "service_identity");
	struct moat_opclient *mq = NULL;
	int rc = moat_msg_command_build(&cmd, payload, sizeof(payload), &len, &err);
	if (rc == 0) {
		rc = moat_topic_build(MOAT_TOPIC_COMMAND, id, name, topic, sizeof(topic), &err);
	}
	if (rc == 0) {
		rc = moat_opclient_connect(c->d, as ? as : MOAT_SERVER_DEFAULT_SERVICE_IDENTITY,
					   suffix, NULL, DASH_MQTT_TIMEOUT_MS, &mq, NULL, &err);
	}
	if (rc == 0) {
		rc = moat_opclient_publish(mq, topic, payload, len, DASH_MQTT_TIMEOUT_MS, &err);
		moat_opclient_close(mq);
	}
	char detail[200];
	snprintf(detail, sizeof(detail), "command=%s id=%s", name, cmd.id);
	action_event(c, id, "command", detail, rc == 0 ? "sent" : "failed");
	note(c, rc == 0 ? "command" : "action_failed");
	if (rc != 0) {
		return done_page(c, MHD_HTTP_BAD_GATEWAY, err.msg, back);
	}
	char text[320];
	snprintf(text, sizeof(text), "%s: %s sent (id %s); its answer shows as the last command.",
		 id, name, cmd.id);
	return done_page(c, MHD_HTTP_OK, text, back);
}

/* After a change the broker's policy must follow: moatd may not write the broker's files,
 * so it asks the supervisor of `moat up` to sync them from the registry
 * (moat_broker_sync_request, broker_supervisor.h). False when the request was not written. */
static bool tell_broker(struct dash_ctx *c, const char *act)
{
	struct moat_err err = {0};
	char why[48];
	snprintf(why, sizeof(why), "dashboard_%s", act);
	if (moat_broker_sync_request(c->dash->dir, why, &err) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=broker_sync_request_failed action=%s error=\"%s\"",
			 act, err.msg);
		return false;
	}
	return true;
}

static enum MHD_Result device_action(struct dash_ctx *c, const char *id)
{
	char action[32], reason_buf[40], confirm[8];
	const char *act = field(c, "action", action, sizeof(action));
	const char *reason = field(c, "reason", reason_buf, sizeof(reason_buf));
	const char *conf = field(c, "confirm", confirm, sizeof(confirm));
	char back[MOAT_ID_BUF_LEN + 32];
	snprintf(back, sizeof(back), "/dashboard/device/%s", id);
	struct moat_identity ident;
	struct moat_err err = {0};
	if (!moat_identity_name_ok(id) ||
	    moat_registry_identity_get(c->reg, id, &ident, &err) != 0 ||
	    ident.role != MOAT_ROLE_DEVICE) {
		note(c, "no_device");
		return done_page(c, MHD_HTTP_NOT_FOUND, "No such device.", "/dashboard/devices");
	}
	int reason_code = 0;
	if (act && strcmp(act, "command") == 0) {
		return device_command(c, id, &ident, conf && strcmp(conf, "yes") == 0, back);
	}
	if (!act || (strcmp(act, "disable") != 0 && strcmp(act, "enable") != 0 &&
		     strcmp(act, "revoke") != 0)) {
		note(c, "bad_action");
		return done_page(c, MHD_HTTP_BAD_REQUEST, "Unknown action.", back);
	}
	if (strcmp(act, "revoke") == 0 &&
	    moat_pki_reason_parse(reason ? reason : "unspecified", &reason_code, &err) != 0) {
		note(c, "bad_reason");
		return done_page(c, MHD_HTTP_BAD_REQUEST, err.msg, back);
	}
	char target[MOAT_ID_BUF_LEN + 40];
	snprintf(target, sizeof(target), "/dashboard/device/%s/action", id);
	if (!conf || strcmp(conf, "yes") != 0) {
		char what[200];
		snprintf(what, sizeof(what), "%s device %s%s%s?",
			 strcmp(act, "revoke") == 0    ? "Revoke"
			 : strcmp(act, "disable") == 0 ? "Disable"
						       : "Enable",
			 id, reason ? " for " : "", reason ? reason : "");
		return confirm_page(c, target, what, act,
				    strcmp(act, "revoke") == 0 ? (reason ? reason : "unspecified")
							       : NULL,
				    NULL, NULL);
	}
	/* changes go through a deployment opened for writing, under run/moat.lock */
	struct moat_deploy *w = NULL;
	int rc = moat_deploy_open(c->dash->dir, MOAT_DEPLOY_WRITE, &w, &err);
	if (rc == 0) {
		if (strcmp(act, "revoke") == 0) {
			rc = moat_deploy_revoke(w, id, reason_code, &err);
		} else {
			rc = moat_deploy_set_disabled(w, id, strcmp(act, "disable") == 0, &err);
		}
		moat_deploy_close(w);
	}
	bool broker_told = rc == 0 && tell_broker(c, act);
	char detail[64];
	snprintf(detail, sizeof(detail), "reason=%s",
		 strcmp(act, "revoke") == 0 ? moat_pki_reason_name(reason_code) : "-");
	action_event(c, id, act, strcmp(act, "revoke") == 0 ? detail : NULL,
		     rc == 0 ? "done" : "failed");
	note(c, rc == 0 ? act : "action_failed");
	if (rc != 0) {
		return done_page(c, MHD_HTTP_CONFLICT, err.msg, back);
	}
	char text[MOAT_ID_BUF_LEN + 256];
	snprintf(text, sizeof(text), "%s: %s.%s", id,
		 strcmp(act, "revoke") == 0
			 ? "revoked; the CRL is rewritten and the broker drops its connection"
		 : strcmp(act, "disable") == 0 ? "disabled; the broker drops its connection"
					       : "enabled; the broker lets it connect again",
		 broker_told ? ""
			     : " The broker could not be asked to follow (see moatd's log); "
			       "moat device disable or enable on the command line does.");
	return done_page(c, MHD_HTTP_OK, text, back);
}

static enum MHD_Result rollout_action(struct dash_ctx *c, int64_t id)
{
	char action[32], confirm[8];
	const char *act = field(c, "action", action, sizeof(action));
	const char *conf = field(c, "confirm", confirm, sizeof(confirm));
	if (!act || (strcmp(act, "pause") != 0 && strcmp(act, "resume") != 0)) {
		note(c, "bad_action");
		return done_page(c, MHD_HTTP_BAD_REQUEST, "Unknown action.", "/dashboard/firmware");
	}
	char target[64], subject[32];
	snprintf(target, sizeof(target), "/dashboard/rollout/%lld/action", (long long)id);
	snprintf(subject, sizeof(subject), "rollout-%lld", (long long)id);
	if (!conf || strcmp(conf, "yes") != 0) {
		char what[80];
		snprintf(what, sizeof(what), "%s rollout %lld?",
			 strcmp(act, "pause") == 0 ? "Pause" : "Resume", (long long)id);
		return confirm_page(c, target, what, act, NULL, NULL, NULL);
	}
	struct moat_rollout_row row;
	struct moat_err err = {0};
	int rc = moat_rollout_act(c->reg, id,
				  strcmp(act, "pause") == 0 ? MOAT_ROLLOUT_PAUSE
							    : MOAT_ROLLOUT_RESUME,
				  false /* a halted rollout's failures are accepted from the CLI */,
				  moat_time_now(), &row, &err);
	action_event(c, NULL, act, subject, rc == 0 ? "done" : "failed");
	note(c, rc == 0 ? act : "action_failed");
	if (rc != 0) {
		return done_page(c, MHD_HTTP_CONFLICT, err.msg, "/dashboard/firmware");
	}
	char text[80];
	snprintf(text, sizeof(text), "Rollout %lld: %s.", (long long)id,
		 moat_rollout_state_name(row.state));
	return done_page(c, MHD_HTTP_OK, text, "/dashboard/firmware");
}

/* ---- routing ---- */

/* "/dashboard/device/<id>" and "/dashboard/device/<id>/action": the id into out. */
static bool device_path(const char *rest, char out[MOAT_ID_BUF_LEN], bool *action)
{
	const char *slash = strchr(rest, '/');
	size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
	if (n == 0 || n >= MOAT_ID_BUF_LEN) {
		return false;
	}
	*action = false;
	if (slash) {
		if (strcmp(slash, "/action") != 0) {
			return false;
		}
		*action = true;
	}
	memcpy(out, rest, n);
	out[n] = '\0';
	return moat_identity_name_ok(out);
}

static bool csrf_ok(struct dash_ctx *c)
{
	char got[80];
	if (!field(c, MOAT_DASH_CSRF_FIELD, got, sizeof(got)) || strlen(got) != 64 ||
	    strlen(c->csrf) != 64) {
		return false;
	}
	return CRYPTO_memcmp(got, c->csrf, 64) == 0;
}

static enum MHD_Result route(struct dash_ctx *c)
{
	const char *url = c->rq->url;
	const char *rest = url + strlen(MOAT_DASH_PREFIX);
	bool get = strcmp(c->rq->method, MHD_HTTP_METHOD_GET) == 0;
	bool post = strcmp(c->rq->method, MHD_HTTP_METHOD_POST) == 0;
	if (strcmp(rest, "/static/style.css") == 0 && get) {
		note(c, "css");
		return send_raw(c, MHD_HTTP_OK, "text/css; charset=utf-8", dash_css,
				sizeof(dash_css) - 1, NULL, NULL);
	}
	if (strcmp(rest, "/static/events.js") == 0 && get) {
		note(c, "js");
		return send_raw(c, MHD_HTTP_OK, "text/javascript; charset=utf-8", dash_events_js,
				sizeof(dash_events_js) - 1, NULL, NULL);
	}
	if (strcmp(rest, "/signin") == 0 && get) {
		return signin(c);
	}
	const char *why = "no_session";
	enum auth_result a = authenticate(c, &why);
	if (a != AUTH_OK) {
		/* the stylesheet alone may be fetched before signing in: it tells nothing */
		return refuse(c, MHD_HTTP_UNAUTHORIZED, why,
			      strcmp(why, "session_expired") == 0
				      ? "Your session has expired."
				      : "Sign in to see the dashboard.");
	}
	if (post) {
		if (!csrf_ok(c)) {
			return refuse(c, MHD_HTTP_FORBIDDEN, "bad_csrf",
				      "This form is not from your session (CSRF token).");
		}
		char id[MOAT_ID_BUF_LEN];
		bool action = false;
		int64_t rid = 0;
		if (strcmp(rest, "/signout") == 0) {
			const char *cookie = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND,
									 MHD_HTTP_HEADER_COOKIE);
			char token[MOAT_DASH_TOKEN_HEX_LEN + 2];
			struct moat_err err = {0};
			if (!c->via_cert && cookie &&
			    moat_dash_cookie_get(cookie, MOAT_DASH_COOKIE, token, sizeof(token)) ==
				    0 &&
			    moat_dash_token_ok(token)) {
				char hash[MOAT_DASH_TOKEN_HEX_LEN + 1];
				moat_dash_token_hash(token, hash);
				if (moat_registry_dash_session_end(c->reg, hash, &err) != 0) {
					moat_log(MOAT_LOG_ERROR, "event=registry_error msg=\"%s\"",
						 err.msg);
				}
			}
			note(c, "signout");
			static const char bye[] = "signed out\n";
			return send_raw(c, MHD_HTTP_SEE_OTHER, "text/plain", bye, sizeof(bye) - 1,
					MOAT_DASH_COOKIE "=; Path=/dashboard; Max-Age=0; HttpOnly; "
							 "Secure; SameSite=Strict",
					"/dashboard/signed-out");
		}
		if (strncmp(rest, "/device/", 8) == 0 && device_path(rest + 8, id, &action) &&
		    action) {
			return device_action(c, id);
		}
		if (strncmp(rest, "/rollout/", 9) == 0) {
			char num[24];
			const char *slash = strchr(rest + 9, '/');
			size_t n = slash ? (size_t)(slash - (rest + 9)) : 0;
			if (slash && strcmp(slash, "/action") == 0 && n > 0 && n < sizeof(num)) {
				memcpy(num, rest + 9, n);
				num[n] = '\0';
				if (moat_int_parse(num, 1, INT64_MAX, &rid, NULL) == 0) {
					return rollout_action(c, rid);
				}
			}
		}
		note(c, "no_route");
		return done_page(c, MHD_HTTP_NOT_FOUND, "Not found.", "/dashboard");
	}
	if (!get) {
		note(c, "method_not_allowed");
		return done_page(c, MHD_HTTP_METHOD_NOT_ALLOWED, "Only GET and POST.",
				 "/dashboard");
	}
	if (rest[0] == '\0' || strcmp(rest, "/") == 0) {
		return page_fleet(c);
	}
	if (strcmp(rest, "/devices") == 0) {
		return page_devices(c);
	}
	if (strcmp(rest, "/events") == 0) {
		return page_events(c);
	}
	if (strcmp(rest, "/events/stream") == 0) {
		return events_stream(c);
	}
	if (strcmp(rest, "/firmware") == 0) {
		return page_firmware(c);
	}
	char id[MOAT_ID_BUF_LEN];
	bool action = false;
	if (strncmp(rest, "/device/", 8) == 0 && device_path(rest + 8, id, &action) && !action) {
		return page_device(c, id);
	}
	note(c, "no_route");
	page_head(c, "Not found");
	return page_send(c, MHD_HTTP_NOT_FOUND);
}

enum MHD_Result dash_serve(struct moat_dash *dash, struct moat_deploy *d,
			   struct MHD_Connection *conn, const struct dash_request *rq,
			   unsigned *status, char *note_out, size_t note_size, char *op)
{
	struct dash_ctx c = {
		.dash = dash,
		.reg = moat_deploy_registry(d),
		.d = d,
		.conn = conn,
		.rq = rq,
		.status = status,
		.note = note_out,
		.note_size = note_size,
	};
	moat_buf_init(&c.b, DASH_PAGE_MAX_BYTES);
	enum MHD_Result r = route(&c);
	moat_buf_free(&c.b);
	snprintf(op, MOAT_ID_BUF_LEN, "%s", c.op[0] ? c.op : "-");
	OPENSSL_cleanse(c.csrf, sizeof(c.csrf));
	return r;
}
