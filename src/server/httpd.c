/* httpd.c: moatd's HTTPS side on libmicrohttpd + GnuTLS.
 *
 * libmicrohttpd runs a pool of [server] threads threads (MHD_OPTION_THREAD_POOL_SIZE, each
 * its own poll(2) loop, not epoll: see moat_httpd_start); every callback below may run on
 * any of them at once. What they
 * share is locked: the guard (connguard.h) and the list of connections by guard_mu, the
 * CRL cache by crl_mu, the registry by handing each request a deployment handle of its own
 * from a pool (SQLite in WAL mode: readers never wait for the writer), EST by est.c's own
 * locks (its issuing is a group commit). One thread of ours, the reaper, closes the
 * connections the guard says are past a deadline: it holds guard_mu while it calls
 * shutdown(2), and MHD sends its close notification (which takes guard_mu to remove the
 * entry) before it closes the socket, so shutdown(2) never reaches a reused descriptor.
 * Closing is shutdown(2), never close(2): MHD sees the end of the stream and frees the
 * connection itself. Deadlines count from accept and trickled bytes do not move them
 * (MHD's own timeout is an inactivity timeout, reset by every byte). TLS asks every client for a
 * certificate (MHD sets GNUTLS_CERT_REQUEST when given a trust list); MHD cannot make it mandatory
 * during the handshake, so each request is authorized here before anything else happens: GnuTLS
 * verification against the deployment CA for the TLS client purpose, then the certificate
 * itself (client_cert.h: a leaf, clientAuth, one CN, the device role), then the serial
 * against pki/crl.pem, then the CN against the registry (an active device), then the
 * optional device-id header. Refusals are 403 with a one-line reason and an
 * event=auth_refused line; each request is logged once when it completes. URL escapes are
 * decoded by moat_http_unescape, which never turns %00 into the end of a string. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "moat/buf.h"
#include "moat/certinfo.h"
#include "moat/client_cert.h"
#include "moat/connguard.h"
#include "moat/dashboard.h"
#include "moat/deploy.h"
#include "moat/fsutil.h"
#include "moat/http_parse.h"
#include "moat/log.h"
#include "moat/monitor_export.h"
#include "moat/release.h"
#include "moat/server.h"
#include "moat/timeutil.h"
#include "moat/tlspolicy.h"
#include "server_internal.h"

#define HTTPD_LOG_PATH_MAX_LEN 96
/* /metrics: far more than a registry of a million devices by state and type needs */
#define METRICS_MAX_BYTES (4u * 1024u * 1024u)
/* Connections MHD may hold beyond the guard's max_connections: those already named for
 * closing whose close MHD has not yet seen (its poll loop accepts one per pass). */
#define HTTPD_CLOSING_SLACK 64
/* Descriptors kept for everything but client sockets (registry, log, CRL, MQTT, epoll). */
#define HTTPD_FD_RESERVE 64

/* One open connection: the guard's entry and what closing it needs. */
struct conn_ctx {
	struct conn_ctx *prev, *next;
	struct moat_httpd *h;
	struct moat_cg_conn *cg;
	int fd;
	gnutls_session_t tls;
	uint64_t serial; /* the access log's conn=: requests on one connection share it */
};

struct moat_httpd {
	struct MHD_Daemon *mhd;
	struct moat_deploy *d; /* EST's, for issuing (est.c); startup's reads */
	/* one handle per pool thread, lent for a request: pool_mu, pool_cv guard pool_used */
	struct moat_deploy **pool;
	bool *pool_used;
	size_t pool_n;
	pthread_mutex_t pool_mu;
	pthread_cond_t pool_cv;
	pthread_mutex_t guard_mu; /* guard and conns; recursive (close_named logs events) */
	pthread_mutex_t crl_mu;	  /* crls, crl_st, crl_tried */
	bool locks_made;
	char *key_pem;
	char *cert_pem;
	char *ca_pem;
	X509 *ca;
	char crl_path[PATH_MAX];
	struct moat_crl_set *crls; /* NULL: not loaded or invalid; everyone is refused */
	struct stat crl_st;	   /* of the file crl was loaded from */
	bool crl_tried;
	int port;
	struct moat_httpd_limits lim;
	struct moat_connguard *guard;
	struct conn_ctx *conns; /* every open connection, for the handshake hook */
	int ep;			/* the reaper's epoll: wake */
	int wake;		/* eventfd: moat_httpd_stop, a new connection's deadline */
	atomic_bool stopping;
	atomic_uint_fast64_t conn_serial; /* the last connection's conn_ctx.serial */
	bool thread_started;
	pthread_t thread;
	int64_t summary_ms;			/* last events_suppressed check */
	struct moat_est *est;			/* EST under /.well-known/est/ (est.c) */
	struct moat_dash *dash;			/* the dashboard under /dashboard */
	_Atomic(struct moat_export *) exporter; /* /metrics' counters, NULL when none */
	_Atomic(struct moat_ingest *) ingest;	/* /metrics' ingest stats, NULL when none */
};

/* Per request, for the log line. */
struct req_ctx {
	char client[INET6_ADDRSTRLEN];
	char id[MOAT_ID_BUF_LEN];
	char method[8];
	char path[HTTPD_LOG_PATH_MAX_LEN + 1];
	unsigned status;
	uint64_t bytes;
	char note[96];				   /* why it was refused: a word */
	char version[MOAT_FW_VERSION_MAX_LEN + 1]; /* of the release served */
	char offset[24];			   /* where a download started */
	bool close;				   /* answer with Connection: close */
	enum moat_http_route route;
	bool est;   /* an EST route: its own authentication (est.c) */
	bool dash;  /* under /dashboard: its own authentication (dashboard.c) */
	char *body; /* an EST POST's body, at most MOAT_EST_BODY_MAX bytes */
	size_t body_len;
	char serial[MOAT_SERIAL_HEX_LEN * 2]; /* of the client certificate authenticated */
};

/* MHD hands its own format strings in: the attribute lets clang check that path. */
static void mhd_logger(void *cls, const char *fmt, va_list ap) MOAT_PRINTF(2, 0);

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	struct moat_httpd *h = cls;
	char buf[256];
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0) {
		return;
	}
	size_t len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\n') {
		buf[len - 1] = '\0'; /* MHD's own line end; moat_log escapes the rest */
	}
	/* A request MHD refused before moatd saw it (headers too large, a malformed request
	 * line): a refusal at the trust boundary, so a security event, budgeted as its own kind
	 * (MHD names no peer here, so only the per-kind budget applies). */
	if (h && h->guard && strstr(buf, "HTTP response code is 4")) {
		uint64_t suppressed = 0;
		pthread_mutex_lock(&h->guard_mu);
		bool allowed = moat_connguard_event_allowed(h->guard, MOAT_CG_REQUEST_REFUSED, NULL,
							    moat_time_mono_ms(), &suppressed);
		pthread_mutex_unlock(&h->guard_mu);
		if (allowed) {
			char sup[24];
			snprintf(sup, sizeof(sup), "%llu", (unsigned long long)suppressed);
			moat_log(MOAT_LOG_WARN, "event=request_refused msg=\"%s\" suppressed=%s",
				 buf, suppressed ? sup : NULL);
		}
		return;
	}
	moat_log(MOAT_LOG_DEBUG, "event=mhd msg=\"%s\"", buf);
}

/* (Re)loads the CRLs when the file changed. A CRL that cannot be read or does not verify
 * against the root or an issuing CA of pki/issuers.pem leaves crls NULL, which refuses
 * every client: never fail open. */
static void crl_refresh(struct moat_httpd *h)
{
	struct stat st;
	if (stat(h->crl_path, &st) != 0) {
		if (h->crls || !h->crl_tried) {
			moat_log(MOAT_LOG_ERROR, "event=crl_missing path=%s", h->crl_path);
		}
		moat_crl_set_free(h->crls);
		h->crls = NULL;
		h->crl_tried = true;
		return;
	}
	if (h->crl_tried && st.st_ino == h->crl_st.st_ino && st.st_size == h->crl_st.st_size &&
	    st.st_mtim.tv_sec == h->crl_st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == h->crl_st.st_mtim.tv_nsec) {
		return;
	}
	h->crl_tried = true;
	h->crl_st = st;
	moat_crl_set_free(h->crls);
	h->crls = NULL;
	char *text = NULL;
	size_t len = 0;
	char *issuers = NULL;
	size_t issuers_len = 0;
	char issuers_path[PATH_MAX];
	struct moat_err err = {0};
	int rc = moat_fs_read_all(h->crl_path, MOAT_FILE_MAX_BYTES, &text, &len, &err);
	if (rc == 0 && (rc = moat_deploy_path(h->d, issuers_path, sizeof(issuers_path),
					      MOAT_ISSUERS_FILE, &err)) == 0) {
		rc = moat_fs_read_all(issuers_path, MOAT_FILE_MAX_BYTES, &issuers, &issuers_len,
				      &err);
		if (rc == MOAT_ENOENT) {
			rc = 0; /* a single-tier deployment: the root signs the CRL */
		}
	}
	if (rc == 0) {
		rc = moat_crl_set_load(h->crl_path, text, len, h->ca, issuers_path, issuers,
				       issuers_len, &h->crls, &err);
	}
	free(text);
	free(issuers);
	if (rc != 0) {
		moat_log(MOAT_LOG_ERROR, "event=crl_invalid path=%s detail=%s", h->crl_path,
			 err.msg);
		return;
	}
	size_t revoked = 0;
	for (size_t i = 0; i < moat_crl_set_count(h->crls); i++) {
		struct moat_crl_info info;
		moat_crl_set_info(h->crls, i, &info);
		revoked += info.revoked;
	}
	moat_log(MOAT_LOG_INFO, "event=crl_loaded path=%s crls=%zu revoked=%zu", h->crl_path,
		 moat_crl_set_count(h->crls), revoked);
}

/* NULL when serial is in none of the current CRLs, else the refusal's word: revoked, or
 * no valid CRL to ask. */
static const char *serial_refusal(struct moat_httpd *h, const ASN1_INTEGER *serial)
{
	const char *why = NULL;
	pthread_mutex_lock(&h->crl_mu);
	crl_refresh(h);
	if (!h->crls) {
		why = "no_valid_crl";
	} else if (moat_crl_set_next_update(h->crls) <= moat_time_now()) {
		/* past its nextUpdate a CRL no longer says what is revoked: refuse, as
		 * Mosquitto does (moatd re-signs it well before: crlkeep.c) */
		why = "crl_stale";
	} else if (moat_crl_set_revoked(h->crls, serial)) {
		why = "certificate_revoked";
	}
	pthread_mutex_unlock(&h->crl_mu);
	return why;
}

/* A deployment handle of the pool for one request (waits while all are lent: never
 * longer than a request, as there are as many handles as threads). */
static struct moat_deploy *pool_get(struct moat_httpd *h)
{
	pthread_mutex_lock(&h->pool_mu);
	for (;;) {
		for (size_t i = 0; i < h->pool_n; i++) {
			if (!h->pool_used[i]) {
				h->pool_used[i] = true;
				pthread_mutex_unlock(&h->pool_mu);
				return h->pool[i];
			}
		}
		pthread_cond_wait(&h->pool_cv, &h->pool_mu);
	}
}

static void pool_put(struct moat_httpd *h, struct moat_deploy *d)
{
	pthread_mutex_lock(&h->pool_mu);
	for (size_t i = 0; i < h->pool_n; i++) {
		if (h->pool[i] == d) {
			h->pool_used[i] = false;
		}
	}
	pthread_cond_signal(&h->pool_cv);
	pthread_mutex_unlock(&h->pool_mu);
}

/* The chain verified by GnuTLS against the deployment CA, for the TLS client purpose: NULL,
 * or the reason word. */
static const char *verify_chain(gnutls_session_t s)
{
	gnutls_typed_vdata_st purpose = {
		.type = GNUTLS_DT_KEY_PURPOSE_OID,
		.data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT,
	};
	unsigned int status = 0;
	int g = gnutls_certificate_verify_peers(s, &purpose, 1, &status);
	if (g == GNUTLS_E_NO_CERTIFICATE_FOUND) {
		return "no_client_certificate";
	}
	if (g == 0 && status == (GNUTLS_CERT_INVALID | GNUTLS_CERT_PURPOSE_MISMATCH)) {
		return "not_a_client_certificate"; /* a good chain, for another purpose */
	}
	if (g < 0 || status != 0) {
		return "certificate_not_verified";
	}
	return NULL;
}

/* The peer's leaf certificate as an OpenSSL object (the caller frees it), or NULL. */
static X509 *peer_cert(gnutls_session_t s)
{
	unsigned int n = 0;
	const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &n);
	if (!peers || n == 0 || peers[0].size > MOAT_CERT_FILE_MAX_BYTES) {
		return NULL;
	}
	const unsigned char *p = peers[0].data;
	X509 *cert = d2i_X509(NULL, &p, (long)peers[0].size);
	if (cert && p != peers[0].data + peers[0].size) {
		X509_free(cert); /* trailing bytes: not the certificate GnuTLS verified */
		cert = NULL;
	}
	return cert;
}

/* Authenticates the caller from its TLS certificate into rc->id. Returns 0, or an HTTP
 * status with the reason in rc->note. The certificate must verify for the client purpose,
 * be a device's leaf certificate (client_cert.h: the rule the broker plugin applies too),
 * not be revoked, and name an active device of the registry. */
static unsigned authenticate(struct moat_httpd *h, struct moat_deploy *d,
			     struct MHD_Connection *conn, struct req_ctx *rc,
			     struct moat_identity *ident, enum moat_role want)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!ci || !ci->tls_session) {
		snprintf(rc->note, sizeof(rc->note), "no_tls");
		return MHD_HTTP_FORBIDDEN;
	}
	gnutls_session_t s = (gnutls_session_t)ci->tls_session;
	const char *why = verify_chain(s);
	if (why) {
		snprintf(rc->note, sizeof(rc->note), "%s", why);
		return MHD_HTTP_FORBIDDEN;
	}
	unsigned result = MHD_HTTP_FORBIDDEN;
	char cn[MOAT_ID_BUF_LEN];
	enum moat_role role = MOAT_ROLE_DEVICE;
	X509 *cert = peer_cert(s);
	if (!cert) {
		snprintf(rc->note, sizeof(rc->note), "no_client_certificate");
		goto out;
	}
	enum moat_client_cert_fault fault = moat_client_cert_identity(cert, cn, &role);
	if (fault != MOAT_CLIENT_CERT_OK) {
		snprintf(rc->note, sizeof(rc->note), "%s", moat_client_cert_fault_name(fault));
		goto out;
	}
	snprintf(rc->id, sizeof(rc->id), "%s", cn);
	struct moat_cert_info info;
	if (moat_cert_info(cert, &info, NULL) == 0) {
		snprintf(rc->serial, sizeof(rc->serial), "%s", info.serial_hex);
	}
	if (role != want) {
		snprintf(rc->note, sizeof(rc->note), "%s",
			 want == MOAT_ROLE_DEVICE ? "not_a_device" : "not_an_operator");
		goto out;
	}
	const char *revoked = serial_refusal(h, X509_get0_serialNumber(cert));
	if (revoked) {
		snprintf(rc->note, sizeof(rc->note), "%s", revoked);
		goto out;
	}
	struct moat_err err = {0};
	if (moat_registry_identity_get(moat_deploy_registry(d), cn, ident, &err) != 0) {
		snprintf(rc->note, sizeof(rc->note), "unknown_identity");
		goto out;
	}
	if (ident->role != want) {
		snprintf(rc->note, sizeof(rc->note), "%s",
			 want == MOAT_ROLE_DEVICE ? "not_a_device" : "not_an_operator");
		goto out;
	}
	if (ident->status != MOAT_ID_ACTIVE) {
		snprintf(rc->note, sizeof(rc->note), "identity_%s",
			 moat_identity_status_name(ident->status));
		goto out;
	}
	const char *hdr =
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MOAT_SERVER_DEVICE_HEADER);
	if (hdr && strcmp(hdr, cn) != 0) {
		snprintf(rc->note, sizeof(rc->note), "device_id_header_mismatch");
		goto out;
	}
	result = 0;
out:
	X509_free(cert);
	return result;
}

static enum MHD_Result send_text(struct MHD_Connection *conn, struct req_ctx *rc, unsigned status,
				 const char *text)
{
	char body[160];
	int n = snprintf(body, sizeof(body), "%s\n", text);
	if (n < 0 || (size_t)n >= sizeof(body)) {
		n = 0;
	}
	struct MHD_Response *resp =
		MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
	if (!resp) {
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (rc->close) {
		/* A refused caller keeps no connection to try again on. */
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	}
	rc->status = status;
	enum MHD_Result r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static int release_path(struct moat_deploy *d, const struct moat_release *r, const char *file,
			char *buf, size_t size, struct moat_err *err)
{
	return moat_path_join(buf, size, err, "%s/%s/%s/%s/%s", moat_deploy_dir(d),
			      MOAT_RELEASES_DIR, r->device_type, r->version, file);
}

static enum MHD_Result handle_version(struct moat_deploy *d, struct MHD_Connection *conn,
				      struct req_ctx *rc, const struct moat_identity *ident)
{
	struct moat_err err = {0};
	char current[MOAT_FW_VERSION_MAX_LEN + 1] = "";
	const char *q = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "current");
	if (!q) {
		q = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MOAT_SERVER_VERSION_HEADER);
	}
	if (q) {
		if (strlen(q) > MOAT_FW_VERSION_MAX_LEN || moat_semver_check(q, &err) != 0) {
			snprintf(rc->note, sizeof(rc->note), "bad_current_version");
			return send_text(conn, rc, MHD_HTTP_BAD_REQUEST,
					 "current: not a semantic version");
		}
		snprintf(current, sizeof(current), "%s", q);
	} else if (moat_registry_running_version(moat_deploy_registry(d), ident->id, current,
						 &err) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=registry_error msg=\"%s\"", err.msg);
		return send_text(conn, rc, MHD_HTTP_INTERNAL_SERVER_ERROR, "registry error");
	}
	struct moat_release r;
	bool found = false;
	if (moat_release_newest(moat_deploy_registry(d), ident->device_type, ident->id, &r, &found,
				&err) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=registry_error msg=\"%s\"", err.msg);
		return send_text(conn, rc, MHD_HTTP_INTERNAL_SERVER_ERROR, "registry error");
	}
	int cmp = 1;
	if (found && current[0] && moat_semver_compare(r.version, current, &cmp, &err) != 0) {
		cmp = 1;
	}
	if (!found || cmp <= 0) {
		struct MHD_Response *resp =
			MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		if (!resp) {
			return MHD_NO;
		}
		rc->status = MHD_HTTP_NO_CONTENT;
		enum MHD_Result res = MHD_queue_response(conn, MHD_HTTP_NO_CONTENT, resp);
		MHD_destroy_response(resp);
		return res;
	}
	char path[PATH_MAX];
	char *json = NULL;
	size_t len = 0;
	if (release_path(d, &r, MOAT_RELEASE_ENVELOPE_FILE, path, sizeof(path), &err) != 0 ||
	    moat_fs_read_all(path, MOAT_ENVELOPE_MAX_BYTES, &json, &len, &err) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=release_unreadable msg=\"%s\"", err.msg);
		return send_text(conn, rc, MHD_HTTP_INTERNAL_SERVER_ERROR, "release unreadable");
	}
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, json, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(json);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	snprintf(rc->version, sizeof(rc->version), "%s", r.version);
	rc->status = MHD_HTTP_OK;
	rc->bytes = len;
	enum MHD_Result res = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return res;
}

/* GET /metrics for an authenticated operator: the registry's counts and the exporter's
 * counters, rendered on each request (a scrape every few seconds costs a few indexed
 * queries). */
static enum MHD_Result handle_metrics(struct moat_httpd *h, struct moat_deploy *d,
				      struct MHD_Connection *conn, struct req_ctx *rc)
{
	struct moat_buf b;
	struct moat_err err = {0};
	char *text = NULL;
	size_t len = 0;
	struct moat_ingest *ing = atomic_load(&h->ingest);
	struct moat_metrics_ingest in = {0};
	if (ing) {
		struct moat_ingest_stats s;
		moat_ingest_stats(ing, &s);
		in = (struct moat_metrics_ingest){.received = s.received,
						  .recorded = s.recorded,
						  .dropped = s.dropped,
						  .bytes_received = s.bytes_received,
						  .queued = s.queued,
						  .lag_ms = s.lag_ms};
	}
	int64_t now = moat_time_now();
	struct moat_metrics_rollouts *ro = malloc(sizeof(*ro)); /* too large for the stack */
	moat_buf_init(&b, METRICS_MAX_BYTES);
	if (!ro) {
		(void)moat_err_set(&err, MOAT_ENOMEM, "out of memory");
	}
	if (!ro || moat_rollout_metrics(moat_deploy_registry(d), now, ro, &err) != 0 ||
	    moat_metrics_render(moat_deploy_registry(d), atomic_load(&h->exporter),
				ing ? &in : NULL, ro, now, &b, &err) != 0 ||
	    moat_buf_take(&b, &text, &len) != 0) {
		free(ro);
		moat_buf_free(&b);
		moat_log(MOAT_LOG_ERROR, "event=metrics_failed error=\"%s\"", err.msg);
		snprintf(rc->note, sizeof(rc->note), "metrics_failed");
		return send_text(conn, rc, MHD_HTTP_INTERNAL_SERVER_ERROR, "metrics failed");
	}
	free(ro);
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; version=0.0.4; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	rc->status = MHD_HTTP_OK;
	snprintf(rc->note, sizeof(rc->note), "metrics");
	enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result handle_download(struct moat_deploy *d, struct MHD_Connection *conn,
				       struct req_ctx *rc, const struct moat_identity *ident,
				       const uint8_t sha256[MOAT_SHA256_BYTES])
{
	struct moat_err err = {0};
	char hex[MOAT_SHA256_HEX_LEN + 1];
	moat_hex_encode(sha256, MOAT_SHA256_BYTES, hex);
	struct moat_release r;
	int g = moat_registry_release_get(moat_deploy_registry(d), hex, &r, &err);
	if (g == MOAT_ENOENT) {
		snprintf(rc->note, sizeof(rc->note), "unknown_release");
		return send_text(conn, rc, MHD_HTTP_NOT_FOUND, "no such release");
	}
	if (g != 0) {
		moat_log(MOAT_LOG_ERROR, "event=registry_error msg=\"%s\"", err.msg);
		return send_text(conn, rc, MHD_HTTP_INTERNAL_SERVER_ERROR, "registry error");
	}
	bool inc = false;
	if (strcmp(r.device_type, ident->device_type) != 0 ||
	    moat_release_includes(moat_deploy_registry(d), &r, ident->id, &inc, &err) != 0 ||
	    !inc) {
		/* Same answer as an unknown digest: a device learns nothing about releases
		 * that are not for it. */
		snprintf(rc->note, sizeof(rc->note), "release_not_for_device");
		return send_text(conn, rc, MHD_HTTP_NOT_FOUND, "no such release");
	}
	char path[PATH_MAX];
	if (release_path(d, &r, MOAT_RELEASE_IMAGE_FILE, path, sizeof(path), &err) != 0) {
		return send_text(conn, rc, MHD_HTTP_INTERNAL_SERVER_ERROR, "release unreadable");
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size < r.size) {
		moat_log(MOAT_LOG_ERROR, "event=release_unreadable path=%s", path);
		if (fd >= 0) {
			close(fd);
		}
		return send_text(conn, rc, MHD_HTTP_INTERNAL_SERVER_ERROR, "release unreadable");
	}
	uint64_t start = 0;
	uint64_t len = 0;
	const char *range =
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
	enum moat_range_result rr = moat_http_range_parse(range, r.size, &start, &len);
	char cr[96];
	if (rr == MOAT_RANGE_MALFORMED || rr == MOAT_RANGE_UNSATISFIABLE) {
		close(fd);
		snprintf(rc->note, sizeof(rc->note), "bad_range");
		if (rr == MOAT_RANGE_MALFORMED) {
			return send_text(conn, rc, MHD_HTTP_BAD_REQUEST,
					 "Range: not one byte range");
		}
		snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)r.size);
		struct MHD_Response *resp =
			MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		if (!resp) {
			return MHD_NO;
		}
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
		rc->status = MHD_HTTP_RANGE_NOT_SATISFIABLE;
		enum MHD_Result res =
			MHD_queue_response(conn, MHD_HTTP_RANGE_NOT_SATISFIABLE, resp);
		MHD_destroy_response(resp);
		return res;
	}
	/* The response never reads past start + len <= r.size, whatever the file holds. */
	struct MHD_Response *resp =
		MHD_create_response_from_fd_at_offset64(len, fd, (uint64_t)start);
	if (!resp) {
		close(fd);
		return MHD_NO;
	}
	unsigned status = MHD_HTTP_OK;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, hex);
	if (rr == MOAT_RANGE_OK) {
		snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)start,
			 (unsigned long long)(start + len - 1), (unsigned long long)r.size);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
		status = MHD_HTTP_PARTIAL_CONTENT;
	}
	snprintf(rc->version, sizeof(rc->version), "%s", r.version);
	snprintf(rc->offset, sizeof(rc->offset), "%llu", (unsigned long long)start);
	rc->status = status;
	rc->bytes = len;
	enum MHD_Result res = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return res;
}

/* The TLS peer's certificates as OpenSSL objects: *leaf (NULL when none) and the rest in
 * *chain; the caller frees both. */
static void peer_certs(struct MHD_Connection *conn, X509 **leaf, STACK_OF(X509) * *chain,
		       bool *deployment_cert)
{
	*leaf = NULL;
	*chain = NULL;
	*deployment_cert = false;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!ci || !ci->tls_session) {
		return;
	}
	gnutls_session_t s = (gnutls_session_t)ci->tls_session;
	unsigned int n = 0;
	const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &n);
	if (!peers || n == 0) {
		return;
	}
	*leaf = peer_cert(s);
	*deployment_cert = *leaf && verify_chain(s) == NULL;
	*chain = sk_X509_new_null();
	for (unsigned int i = 1; *chain && i < n && i < 8; i++) {
		if (peers[i].size > MOAT_CERT_FILE_MAX_BYTES) {
			continue;
		}
		const unsigned char *p = peers[i].data;
		X509 *c = d2i_X509(NULL, &p, (long)peers[i].size);
		if (c && !sk_X509_push(*chain, c)) {
			X509_free(c);
		}
	}
}

static enum MHD_Result send_est(struct MHD_Connection *conn, struct req_ctx *rc,
				struct est_answer *a)
{
	if (a->status >= 400 || !a->body) {
		snprintf(rc->note, sizeof(rc->note), "%s", a->note);
		char text[MOAT_ERR_MSG_MAX + 2];
		int n = snprintf(text, sizeof(text), "%s\n", a->text);
		if (n < 0 || (size_t)n >= sizeof(text)) {
			n = 0;
		}
		struct MHD_Response *resp =
			MHD_create_response_from_buffer((size_t)n, text, MHD_RESPMEM_MUST_COPY);
		if (!resp) {
			return MHD_NO;
		}
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
		if (a->www_authenticate) {
			MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
						"Basic realm=\"moat EST\"");
		}
		if (a->retry_after > 0) {
			char ra[24];
			snprintf(ra, sizeof(ra), "%lld", (long long)a->retry_after);
			MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
		}
		rc->status = a->status;
		enum MHD_Result r = MHD_queue_response(conn, a->status, resp);
		MHD_destroy_response(resp);
		return r;
	}
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(a->len, a->body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		return MHD_NO;
	}
	a->body = NULL; /* MHD frees it */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->content_type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (a->b64) {
		MHD_add_response_header(resp, "Content-Transfer-Encoding", "base64");
	}
	rc->status = a->status;
	rc->bytes = a->len;
	enum MHD_Result r = MHD_queue_response(conn, a->status, resp);
	MHD_destroy_response(resp);
	return r;
}

static struct conn_ctx *conn_of(struct MHD_Connection *conn);

/* The connection a refusal's event is budgeted against (est.c and dashboard.c call back). */
struct conn_budget {
	struct moat_httpd *h;
	struct MHD_Connection *conn;
};

/* The guard's budget for one refusal of kind from b's connection (per source and kind). */
static bool budget_allowed(struct conn_budget *b, enum moat_cg_reason kind, uint64_t *suppressed)
{
	struct conn_ctx *ctx = conn_of(b->conn);
	pthread_mutex_lock(&b->h->guard_mu);
	bool allowed =
		moat_connguard_event_allowed(b->h->guard, kind,
					     ctx && ctx->cg ? moat_cg_conn_source(ctx->cg) : NULL,
					     moat_time_mono_ms(), suppressed);
	pthread_mutex_unlock(&b->h->guard_mu);
	return allowed;
}

/* est_request's event_allowed: EST refusals that prove no identity have a kind of their
 * own (est_refused), so a flood of them takes no other kind's budget. */
static bool est_event_allowed(void *vctx, uint64_t *suppressed)
{
	return budget_allowed(vctx, MOAT_CG_EST_REFUSED, suppressed);
}

/* A refusal of an EST request before est.c sees it (method, size, type): a security event
 * like est.c's own, within the same budget (nothing is proven yet). */
static enum MHD_Result est_refuse_early(struct moat_httpd *h, struct MHD_Connection *conn,
					struct req_ctx *rc, unsigned status, const char *note,
					const char *text)
{
	struct est_answer a;
	memset(&a, 0, sizeof(a));
	a.status = status;
	snprintf(a.note, sizeof(a.note), "%s", note);
	snprintf(a.text, sizeof(a.text), "%s", text);
	struct conn_budget budget = {h, conn};
	uint64_t suppressed = 0;
	if (est_event_allowed(&budget, &suppressed)) {
		char sup[24];
		snprintf(sup, sizeof(sup), "%llu", (unsigned long long)suppressed);
		moat_log(MOAT_LOG_WARN,
			 "event=est_refused client=%s id=- proven=no path=%s status=%u reason=%s "
			 "detail=\"%s\" suppressed=%s",
			 rc->client, rc->path, status, note, text, suppressed ? sup : NULL);
		char evidence[200];
		snprintf(evidence, sizeof(evidence), "status=%u reason=%s%s%s", status, note,
			 suppressed ? " suppressed=" : "", suppressed ? sup : "");
		moat_server_security_event("est_refused", MOAT_SEV_MEDIUM, NULL, rc->client,
					   evidence);
	}
	return send_est(conn, rc, &a);
}

/* The first call for an EST request: method and body size are decided from the headers,
 * before any body is read. */
static enum MHD_Result est_begin(struct moat_httpd *h, struct MHD_Connection *conn,
				 struct req_ctx *rc, const char *method)
{
	bool post = rc->route == MOAT_ROUTE_EST_SIMPLEENROLL ||
		    rc->route == MOAT_ROUTE_EST_SIMPLEREENROLL;
	const char *want = post ? MHD_HTTP_METHOD_POST : MHD_HTTP_METHOD_GET;
	if (strcmp(method, want) != 0) {
		return est_refuse_early(h, conn, rc, MHD_HTTP_METHOD_NOT_ALLOWED,
					"method_not_allowed", post ? "only POST" : "only GET");
	}
	const char *cl =
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	bool chunked = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						   MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
	if (!post) {
		if (chunked || (cl && strcmp(cl, "0") != 0)) {
			return est_refuse_early(h, conn, rc, MHD_HTTP_BAD_REQUEST,
						"unexpected_body", "no request body expected");
		}
		return MHD_YES;
	}
	int64_t len = 0;
	if (cl && moat_int_parse(cl, 0, INT64_MAX, &len, NULL) != 0) {
		return est_refuse_early(h, conn, rc, MHD_HTTP_BAD_REQUEST, "bad_content_length",
					"Content-Length: not a number");
	}
	if (len > MOAT_EST_BODY_MAX) {
		return est_refuse_early(h, conn, rc, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
					"body: larger than the largest CSR");
	}
	rc->body = malloc(MOAT_EST_BODY_MAX);
	return rc->body ? MHD_YES : MHD_NO;
}

/* The last call for an EST request: the whole body is there. */
static enum MHD_Result est_finish(struct moat_httpd *h, struct moat_deploy *d,
				  struct MHD_Connection *conn, struct req_ctx *rc)
{
	struct est_request req = {
		.route = rc->route,
		.client = rc->client,
		.path = rc->path,
		.authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_AUTHORIZATION),
		.content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							    MHD_HTTP_HEADER_CONTENT_TYPE),
		.transfer_encoding = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
								 "Content-Transfer-Encoding"),
		.body = rc->body,
		.body_len = rc->body_len,
		.event_allowed = est_event_allowed,
	};
	struct conn_budget budget = {h, conn};
	req.event_ctx = &budget;
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	peer_certs(conn, &leaf, &chain, &req.peer_is_deployment_cert);
	req.peer_leaf = leaf;
	req.peer_chain = chain;
	struct moat_identity ident;
	if (rc->route == MOAT_ROUTE_EST_SIMPLEREENROLL) {
		if (authenticate(h, d, conn, rc, &ident, MOAT_ROLE_DEVICE) == 0) {
			req.cert_id = rc->id;
			req.cert_serial = rc->serial;
		} else {
			req.cert_refusal = rc->note;
		}
	}
	struct est_answer a;
	memset(&a, 0, sizeof(a));
	est_handle(h->est, d, &req, &a);
	snprintf(rc->id, sizeof(rc->id), "%s", a.id[0] ? a.id : "-");
	enum MHD_Result r = send_est(conn, rc, &a);
	free(a.body);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	return r;
}

/* MHD's unescape callback: moat_http_unescape, which keeps %00 as it is. */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	(void)cls;
	(void)conn;
	return moat_http_unescape(s);
}

static struct conn_ctx *conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

/* A security event about a connection, within the guard's budgets. */
static void conn_event(struct moat_httpd *h, const char *event, enum moat_cg_reason why,
		       const struct moat_cg_source *src, const char *id)
{
	uint64_t suppressed = 0;
	pthread_mutex_lock(&h->guard_mu);
	bool allowed =
		moat_connguard_event_allowed(h->guard, why, src, moat_time_mono_ms(), &suppressed);
	pthread_mutex_unlock(&h->guard_mu);
	if (!allowed) {
		return;
	}
	char sup[24];
	snprintf(sup, sizeof(sup), "%llu", (unsigned long long)suppressed);
	moat_log(MOAT_LOG_WARN, "event=%s client=%s id=%s reason=%s suppressed=%s", event,
		 src ? src->text : "?", id, moat_cg_reason_name(why), suppressed ? sup : NULL);
	char evidence[160];
	snprintf(evidence, sizeof(evidence), "reason=%s suppressed=%llu", moat_cg_reason_name(why),
		 (unsigned long long)suppressed);
	moat_server_security_event(event, MOAT_SEV_LOW, id && strcmp(id, "-") != 0 ? id : NULL,
				   src ? src->text : NULL, evidence);
}

/* Closes a connection the guard named: shutdown(2) only; MHD closes the descriptor when
 * it sees the end of the stream, after its close notification has removed the entry.
 * guard_mu is held: the entry, and so the descriptor, cannot go meanwhile. */
static void close_named(struct moat_httpd *h, struct moat_cg_conn *cg, enum moat_cg_reason why)
{
	struct conn_ctx *ctx = moat_cg_conn_user(cg);
	if (ctx && ctx->fd >= 0) {
		shutdown(ctx->fd, SHUT_RDWR);
	}
	if (why == MOAT_CG_IDLE) {
		moat_log(MOAT_LOG_DEBUG, "event=connection_idle client=%s",
			 moat_cg_conn_source(cg)->text);
		return;
	}
	conn_event(h, "connection_closed", why, moat_cg_conn_source(cg), NULL);
}

/* MHD's accept policy: the guard admits the newcomer, maybe closing another first. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct moat_httpd *h = cls;
	struct moat_cg_source src;
	struct moat_err err = {0};
	if (moat_cg_source_from(addr, addrlen, &src, &err) != 0) {
		return MHD_NO;
	}
	struct moat_cg_conn *victim = NULL;
	enum moat_cg_reason why = MOAT_CG_OK;
	pthread_mutex_lock(&h->guard_mu);
	bool admitted = moat_connguard_admit(h->guard, &src, moat_time_mono_ms(), &victim, &why);
	if (admitted && victim) {
		close_named(h, victim, why);
	}
	pthread_mutex_unlock(&h->guard_mu);
	if (!admitted) {
		conn_event(h, "connection_refused", why, &src, NULL);
		return MHD_NO;
	}
	return MHD_YES;
}

/* GnuTLS, after the client's Finished: the handshake is done. MHD keeps its connection
 * as the session's pointer (libmicrohttpd 0.9.75 daemon.c: gnutls_session_set_ptr, read back
 * by its PSK adapter); the entry must also name this very session. */
static int on_handshake_done(gnutls_session_t s, unsigned int htype, unsigned when,
			     unsigned int incoming, const gnutls_datum_t *msg)
{
	(void)msg;
	if (htype != GNUTLS_HANDSHAKE_FINISHED || when != GNUTLS_HOOK_POST || !incoming) {
		return 0;
	}
	struct MHD_Connection *conn = gnutls_session_get_ptr(s);
	struct conn_ctx *ctx = conn ? conn_of(conn) : NULL;
	if (ctx && ctx->tls == s) {
		pthread_mutex_lock(&ctx->h->guard_mu);
		if (ctx->cg) {
			moat_connguard_tls_done(ctx->cg);
		}
		pthread_mutex_unlock(&ctx->h->guard_mu);
	}
	return 0;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct moat_httpd *h = cls;
	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		struct conn_ctx *ctx = *socket_context;
		if (ctx) {
			pthread_mutex_lock(&h->guard_mu);
			moat_connguard_remove(h->guard, ctx->cg);
			if (ctx->prev) {
				ctx->prev->next = ctx->next;
			} else {
				h->conns = ctx->next;
			}
			if (ctx->next) {
				ctx->next->prev = ctx->prev;
			}
			pthread_mutex_unlock(&h->guard_mu);
			free(ctx);
			*socket_context = NULL;
		}
		return;
	}
	const union MHD_ConnectionInfo *fd_ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	const union MHD_ConnectionInfo *tls_ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	const union MHD_ConnectionInfo *addr_ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	struct moat_cg_source src;
	struct moat_err err = {0};
	struct conn_ctx *ctx = calloc(1, sizeof(*ctx));
	bool ok = ctx && fd_ci && tls_ci && tls_ci->tls_session && addr_ci &&
		  moat_cg_source_from(addr_ci->client_addr,
				      addr_ci->client_addr->sa_family == AF_INET6
					      ? (socklen_t)sizeof(struct sockaddr_in6)
					      : (socklen_t)sizeof(struct sockaddr_in),
				      &src, &err) == 0;
	if (ok) {
		ctx->h = h;
		ctx->fd = fd_ci->connect_fd;
		ctx->tls = tls_ci->tls_session;
		ctx->serial = atomic_fetch_add(&h->conn_serial, 1) + 1;
		pthread_mutex_lock(&h->guard_mu);
		ctx->cg = moat_connguard_add(h->guard, &src, moat_time_mono_ms(), ctx);
		if (ctx->cg) {
			ctx->next = h->conns;
			if (h->conns) {
				h->conns->prev = ctx;
			}
			h->conns = ctx;
		}
		pthread_mutex_unlock(&h->guard_mu);
		ok = ctx->cg != NULL;
	}
	if (!ok) {
		/* No entry means no deadline: such a connection must not stay. */
		if (fd_ci) {
			shutdown(fd_ci->connect_fd, SHUT_RDWR);
		}
		free(ctx);
		return;
	}
	gnutls_handshake_set_hook_function(ctx->tls, GNUTLS_HANDSHAKE_FINISHED, GNUTLS_HOOK_POST,
					   on_handshake_done);
	*socket_context = ctx;
	/* the reaper may be asleep past this connection's first deadline */
	uint64_t one = 1;
	ssize_t w = write(h->wake, &one, sizeof(one));
	(void)w;
}

static enum MHD_Result serve_request(struct moat_httpd *h, struct moat_deploy *d,
				     struct MHD_Connection *conn, struct req_ctx *rc,
				     const char *url, const char *method);

/* "/dashboard" and everything under "/dashboard/". */
static bool is_dashboard(const char *url)
{
	size_t n = strlen(MOAT_DASH_PREFIX);
	return url && strncmp(url, MOAT_DASH_PREFIX, n) == 0 && (url[n] == '\0' || url[n] == '/');
}

/* A dashboard request refused before it is read (method and body size): a security event
 * like dashboard.c's own refusals, within the guard's budget. */
static enum MHD_Result dash_refuse_early(struct moat_httpd *h, struct MHD_Connection *conn,
					 struct req_ctx *rc, unsigned status, const char *note,
					 const char *text)
{
	snprintf(rc->note, sizeof(rc->note), "%s", note);
	struct conn_ctx *ctx = conn_of(conn);
	uint64_t suppressed = 0;
	pthread_mutex_lock(&h->guard_mu);
	bool allowed =
		moat_connguard_event_allowed(h->guard, MOAT_CG_AUTH_REFUSED,
					     ctx && ctx->cg ? moat_cg_conn_source(ctx->cg) : NULL,
					     moat_time_mono_ms(), &suppressed);
	pthread_mutex_unlock(&h->guard_mu);
	if (allowed) {
		char sup[24];
		snprintf(sup, sizeof(sup), "%llu", (unsigned long long)suppressed);
		moat_log(MOAT_LOG_WARN,
			 "event=dashboard_refused client=%s operator=- reason=%s suppressed=%s",
			 rc->client, note, suppressed ? sup : NULL);
		char evidence[200];
		snprintf(evidence, sizeof(evidence), "reason=%s path=%.64s suppressed=%llu", note,
			 rc->path, (unsigned long long)suppressed);
		moat_server_security_event("dashboard_refused", MOAT_SEV_MEDIUM, NULL, rc->client,
					   evidence);
	}
	rc->close = true;
	return send_text(conn, rc, status, text);
}

/* The first call for a dashboard request: GET without a body, or POST with a form of at
 * most MOAT_DASH_BODY_MAX bytes, decided from the headers before any body is read. */
static enum MHD_Result dash_begin(struct moat_httpd *h, struct MHD_Connection *conn,
				  struct req_ctx *rc, const char *method)
{
	const char *cl =
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	bool chunked = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						   MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
		if (chunked || (cl && strcmp(cl, "0") != 0)) {
			return dash_refuse_early(h, conn, rc, MHD_HTTP_BAD_REQUEST,
						 "unexpected_body", "no request body expected");
		}
		return MHD_YES;
	}
	int64_t len = 0;
	if (chunked || !cl || moat_int_parse(cl, 0, MOAT_DASH_BODY_MAX, &len, NULL) != 0) {
		return dash_refuse_early(h, conn, rc, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
					 "a form of known length up to 4 KiB");
	}
	rc->body = malloc(MOAT_DASH_BODY_MAX);
	return rc->body ? MHD_YES : MHD_NO;
}

static unsigned authenticate(struct moat_httpd *h, struct moat_deploy *d,
			     struct MHD_Connection *conn, struct req_ctx *rc,
			     struct moat_identity *ident, enum moat_role want);

/* dash_request's event_allowed: the guard's budget for refusals (as auth_refused's). */
static bool dash_event_allowed(void *vctx, uint64_t *suppressed)
{
	return budget_allowed(vctx, MOAT_CG_AUTH_REFUSED, suppressed);
}

/* The last call for a dashboard request: an operator's certificate, when the client sent
 * one that authenticates, else dashboard.c's own sign-in. */
static enum MHD_Result dash_finish(struct moat_httpd *h, struct moat_deploy *d,
				   struct MHD_Connection *conn, struct req_ctx *rc, const char *url,
				   const char *method)
{
	struct req_ctx probe = {0};
	struct conn_budget budget = {h, conn};
	struct moat_identity ident;
	bool operator_cert = false;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	unsigned int npeers = 0;
	if (ci && ci->tls_session &&
	    gnutls_certificate_get_peers((gnutls_session_t)ci->tls_session, &npeers) &&
	    npeers > 0) {
		operator_cert = authenticate(h, d, conn, &probe, &ident, MOAT_ROLE_OPERATOR) == 0;
	}
	struct dash_request rq = {
		.url = url,
		.method = method,
		.client = rc->client,
		.cert_operator = operator_cert ? ident.id : NULL,
		.body = rc->body,
		.body_len = rc->body_len,
		.event_allowed = dash_event_allowed,
		.event_ctx = &budget,
	};
	char op[MOAT_ID_BUF_LEN];
	enum MHD_Result r =
		dash_serve(h->dash, d, conn, &rq, &rc->status, rc->note, sizeof(rc->note), op);
	snprintf(rc->id, sizeof(rc->id), "%s", op);
	return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	(void)version;
	(void)upload_data;
	struct moat_httpd *h = cls;
	struct req_ctx *rc = *con_cls;
	if (!rc) {
		rc = calloc(1, sizeof(*rc));
		if (!rc) {
			return MHD_NO;
		}
		/* cut to fit; moat_log escapes what the client sent */
		snprintf(rc->method, sizeof(rc->method), "%s", method ? method : "");
		snprintf(rc->path, sizeof(rc->path), "%s", url ? url : "");
		snprintf(rc->id, sizeof(rc->id), "-");
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		snprintf(rc->client, sizeof(rc->client), "?");
		if (ci && ci->client_addr) {
			const struct sockaddr *sa = ci->client_addr;
			if (sa->sa_family == AF_INET) {
				inet_ntop(AF_INET,
					  &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
					  rc->client, sizeof(rc->client));
			} else if (sa->sa_family == AF_INET6) {
				inet_ntop(
					AF_INET6,
					&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
					rc->client, sizeof(rc->client));
			}
		}
		*con_cls = rc;
		struct conn_ctx *ctx = conn_of(conn);
		if (ctx) {
			pthread_mutex_lock(&h->guard_mu);
			if (ctx->cg) {
				moat_connguard_request_start(ctx->cg);
			}
			pthread_mutex_unlock(&h->guard_mu);
		}
		rc->route = moat_http_route_parse(url, NULL);
		rc->est = moat_http_route_is_est(rc->route);
		if (rc->est) {
			return est_begin(h, conn, rc, method);
		}
		rc->dash = is_dashboard(url);
		if (rc->dash) {
			return dash_begin(h, conn, rc, method);
		}
		/* Refuse a request body before it is read: no other route takes one. */
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						MHD_HTTP_HEADER_TRANSFER_ENCODING) ||
		    (cl && strcmp(cl, "0") != 0)) {
			snprintf(rc->note, sizeof(rc->note), "unexpected_body");
			return send_text(conn, rc,
					 strcmp(method, MHD_HTTP_METHOD_GET) == 0
						 ? MHD_HTTP_BAD_REQUEST
						 : MHD_HTTP_METHOD_NOT_ALLOWED,
					 "no request body expected");
		}
		return MHD_YES;
	}
	if (rc->dash && *upload_data_size != 0) {
		if (rc->status == 0 &&
		    (!rc->body || *upload_data_size > MOAT_DASH_BODY_MAX - rc->body_len)) {
			snprintf(rc->note, sizeof(rc->note), "body_too_large");
			*upload_data_size = 0;
			return send_text(conn, rc, MHD_HTTP_CONTENT_TOO_LARGE, "form too large");
		}
		if (rc->status == 0) {
			memcpy(rc->body + rc->body_len, upload_data, *upload_data_size);
			rc->body_len += *upload_data_size;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rc->est && rc->status != 0 && *upload_data_size != 0) {
		*upload_data_size = 0; /* answered already: the rest of the body is dropped */
		return MHD_YES;
	}
	if (rc->est && *upload_data_size != 0) {
		if (!rc->body || *upload_data_size > MOAT_EST_BODY_MAX - rc->body_len) {
			*upload_data_size = 0;
			return est_refuse_early(h, conn, rc, MHD_HTTP_CONTENT_TOO_LARGE,
						"body_too_large",
						"body: larger than the largest CSR");
		}
		memcpy(rc->body + rc->body_len, upload_data, *upload_data_size);
		rc->body_len += *upload_data_size;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		/* No other route takes a body: refuse it instead of buffering it. */
		*upload_data_size = 0;
		snprintf(rc->note, sizeof(rc->note), "unexpected_body");
		return send_text(conn, rc, MHD_HTTP_BAD_REQUEST, "no request body expected");
	}
	if (rc->status != 0) {
		return MHD_YES;
	}
	struct moat_deploy *d = pool_get(h);
	enum MHD_Result res = rc->est	 ? est_finish(h, d, conn, rc)
			      : rc->dash ? dash_finish(h, d, conn, rc, url, method)
					 : serve_request(h, d, conn, rc, url, method);
	pool_put(h, d);
	return res;
}

/* A request of the update API, its headers in: authenticated, then answered. */
static enum MHD_Result serve_request(struct moat_httpd *h, struct moat_deploy *d,
				     struct MHD_Connection *conn, struct req_ctx *rc,
				     const char *url, const char *method)
{
	struct moat_identity ident;
	struct conn_ctx *ctx = conn_of(conn);
	enum moat_http_route route = moat_http_route_parse(url, NULL);
	unsigned denied =
		authenticate(h, d, conn, rc, &ident,
			     route == MOAT_ROUTE_METRICS ? MOAT_ROLE_OPERATOR : MOAT_ROLE_DEVICE);
	if (denied) {
		/* a security event of its own, besides the request line (budgeted: a flood of
		 * refused handshakes must not hide the other events) */
		uint64_t suppressed = 0;
		char sup[24];
		pthread_mutex_lock(&h->guard_mu);
		bool allowed = moat_connguard_event_allowed(h->guard, MOAT_CG_AUTH_REFUSED,
							    ctx && ctx->cg
								    ? moat_cg_conn_source(ctx->cg)
								    : NULL,
							    moat_time_mono_ms(), &suppressed);
		pthread_mutex_unlock(&h->guard_mu);
		if (allowed) {
			snprintf(sup, sizeof(sup), "%llu", (unsigned long long)suppressed);
			moat_log(MOAT_LOG_WARN,
				 "event=auth_refused client=%s id=%s reason=%s suppressed=%s",
				 rc->client, rc->id, rc->note, suppressed ? sup : NULL);
			char evidence[160];
			snprintf(evidence, sizeof(evidence),
				 "service=https reason=%s suppressed=%llu", rc->note,
				 (unsigned long long)suppressed);
			moat_server_security_event("auth_refused", MOAT_SEV_MEDIUM, rc->id,
						   rc->client, evidence);
		}
		rc->close = true;
		return send_text(conn, rc, denied, rc->note);
	}
	bool over = false;
	struct moat_cg_source src;
	pthread_mutex_lock(&h->guard_mu);
	if (ctx && ctx->cg &&
	    moat_connguard_authenticated(h->guard, ctx->cg, ident.id) != MOAT_CG_OK) {
		over = true;
		src = *moat_cg_conn_source(ctx->cg);
	}
	pthread_mutex_unlock(&h->guard_mu);
	if (over) {
		snprintf(rc->note, sizeof(rc->note), "device_limit");
		conn_event(h, "connection_refused", MOAT_CG_DEVICE_LIMIT, &src, ident.id);
		rc->close = true;
		return send_text(conn, rc, MHD_HTTP_TOO_MANY_REQUESTS,
				 "too many connections for this device");
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
		snprintf(rc->note, sizeof(rc->note), "method_not_allowed");
		return send_text(conn, rc, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET");
	}
	uint8_t sha[MOAT_SHA256_BYTES];
	switch (moat_http_route_parse(url, sha)) {
	case MOAT_ROUTE_VERSION:
		return handle_version(d, conn, rc, &ident);
	case MOAT_ROUTE_DOWNLOAD:
		return handle_download(d, conn, rc, &ident, sha);
	case MOAT_ROUTE_METRICS:
		return handle_metrics(h, d, conn, rc);
	case MOAT_ROUTE_BAD:
		snprintf(rc->note, sizeof(rc->note), "bad_path");
		return send_text(conn, rc, MHD_HTTP_BAD_REQUEST, "path: %00 is not allowed");
	case MOAT_ROUTE_NOT_FOUND:
	default:
		snprintf(rc->note, sizeof(rc->note), "no_route");
		return send_text(conn, rc, MHD_HTTP_NOT_FOUND, "not found");
	}
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct moat_httpd *h = cls;
	struct conn_ctx *ctx = conn_of(conn);
	uint64_t serial = 0;
	if (ctx) {
		serial = ctx->serial;
		pthread_mutex_lock(&h->guard_mu);
		if (ctx->cg) {
			moat_connguard_request_done(ctx->cg, moat_time_mono_ms());
		}
		pthread_mutex_unlock(&h->guard_mu);
	}
	struct req_ctx *rc = *con_cls;
	if (!rc) {
		return;
	}
	moat_log(rc->status >= 400 ? MOAT_LOG_WARN : MOAT_LOG_INFO,
		 "event=request client=%s id=%s method=%s path=%s status=%u bytes=%llu detail=%s "
		 "version=%s offset=%s completed=%s conn=%llu",
		 rc->client, rc->id, rc->method, rc->path, rc->status,
		 (unsigned long long)rc->bytes, rc->note[0] ? rc->note : NULL,
		 rc->version[0] ? rc->version : NULL, rc->offset[0] ? rc->offset : NULL,
		 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? NULL : "no",
		 (unsigned long long)serial);
	free(rc->body);
	free(rc);
	*con_cls = NULL;
}

static int read_pem(const struct moat_deploy *d, const char *rel, char **out, struct moat_err *err)
{
	char path[PATH_MAX];
	size_t len = 0;
	int rc = moat_deploy_path(d, path, sizeof(path), rel, err);
	if (rc == 0) {
		rc = moat_fs_read_all(path, MOAT_FILE_MAX_BYTES, out, &len, err);
	}
	return rc;
}

int moat_httpd_limits_load(const struct moat_config *cfg, struct moat_httpd_limits *out,
			   struct moat_err *err)
{
	static const char *const keys[] = {
		"port",
		"listen",
		"service_identity",
		"handshake_timeout",
		"header_timeout",
		"idle_timeout",
		"max_connections",
		"unauthenticated_per_source",
		"connections_per_device",
		"user", /* read by moat_deploy_moatd_user */
		"threads",
		NULL,
	};
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (cpus < 1) {
		cpus = 1;
	}
	if (cpus > MOAT_HTTPD_THREADS_MAX) {
		cpus = MOAT_HTTPD_THREADS_MAX;
	}
	struct moat_httpd_limits l;
	int rc;
	if ((rc = moat_config_check_keys(cfg, "server", keys, err)) != 0 ||
	    (rc = moat_config_get_duration(cfg, "server", "handshake_timeout",
					   MOAT_HTTPD_HANDSHAKE_TIMEOUT_DEFAULT, 1, 300,
					   &l.handshake_timeout_s, err)) != 0 ||
	    (rc = moat_config_get_duration(cfg, "server", "header_timeout",
					   MOAT_HTTPD_HEADER_TIMEOUT_DEFAULT, 1, 600,
					   &l.header_timeout_s, err)) != 0 ||
	    (rc = moat_config_get_duration(cfg, "server", "idle_timeout",
					   MOAT_HTTPD_IDLE_TIMEOUT_DEFAULT, 5, 3600,
					   &l.idle_timeout_s, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "server", "max_connections",
				      MOAT_HTTPD_MAX_CONNECTIONS_DEFAULT, 16, 65536,
				      &l.max_connections, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "server", "unauthenticated_per_source",
				      MOAT_HTTPD_UNAUTH_PER_SOURCE_DEFAULT, 1, 65536,
				      &l.unauthenticated_per_source, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "server", "connections_per_device",
				      MOAT_HTTPD_PER_DEVICE_DEFAULT, 1, 1024,
				      &l.connections_per_device, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "server", "threads", cpus, 1, MOAT_HTTPD_THREADS_MAX,
				      &l.threads, err)) != 0) {
		return rc;
	}
	if (l.handshake_timeout_s > l.header_timeout_s) {
		const struct moat_config_entry *e =
			moat_config_find(cfg, "server", "handshake_timeout");
		if (!e) {
			e = moat_config_find(cfg, "server", "header_timeout");
		}
		return moat_err_set(err, MOAT_EINVAL,
				    "%s:%d: [server] handshake_timeout (%llds) is above "
				    "header_timeout (%llds): both count from accept",
				    cfg->path, e ? e->line : 0, (long long)l.handshake_timeout_s,
				    (long long)l.header_timeout_s);
	}
	*out = l;
	return 0;
}

/* Closes what is past a deadline and, once a second, writes what the budgets left out. */
static void reap(struct moat_httpd *h)
{
	int64_t now = moat_time_mono_ms();
	enum moat_cg_reason why = MOAT_CG_OK;
	struct moat_cg_conn *cg;
	pthread_mutex_lock(&h->guard_mu);
	while ((cg = moat_connguard_expired(h->guard, now, &why)) != NULL) {
		close_named(h, cg, why);
	}
	pthread_mutex_unlock(&h->guard_mu);
	if (now - h->summary_ms < 1000) {
		return;
	}
	h->summary_ms = now;
	for (int k = 1; k < MOAT_CG_REASON_COUNT; k++) {
		pthread_mutex_lock(&h->guard_mu);
		uint64_t n = moat_connguard_suppressed(h->guard, (enum moat_cg_reason)k);
		pthread_mutex_unlock(&h->guard_mu);
		if (n) {
			char count[24];
			snprintf(count, sizeof(count), "%llu", (unsigned long long)n);
			moat_log(MOAT_LOG_WARN, "event=events_suppressed kind=%s count=%s",
				 moat_cg_reason_name((enum moat_cg_reason)k), count);
		}
	}
}

/* The reaper: waits for the next deadline or the wake descriptor (a new connection, the
 * stop), then closes what the guard says. MHD's own threads serve. */
static void *serve(void *arg)
{
	struct moat_httpd *h = arg;
	while (!atomic_load(&h->stopping)) {
		reap(h);
		pthread_mutex_lock(&h->guard_mu);
		int64_t wait = moat_connguard_next_due(h->guard, moat_time_mono_ms());
		pthread_mutex_unlock(&h->guard_mu);
		if (wait < 0 || wait > 1000) {
			wait = 1000; /* the events_suppressed summary */
		}
		struct epoll_event ev[2];
		int n = epoll_wait(h->ep, ev, 2, (int)wait);
		for (int i = 0; i < n; i++) {
			if (ev[i].data.fd == h->wake) {
				uint64_t v;
				ssize_t r = read(h->wake, &v, sizeof(v));
				(void)r;
			}
		}
		if (n < 0 && errno != EINTR) {
			moat_log(MOAT_LOG_ERROR, "event=epoll_failed errno=%d", errno);
			break;
		}
	}
	return NULL;
}

/* Client connections this process can hold: two descriptors each (the socket, and the
 * image file of a download), less a reserve. */
static unsigned fd_budget(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) {
		return 65536;
	}
	if (rl.rlim_cur <= HTTPD_FD_RESERVE + 2 * (HTTPD_CLOSING_SLACK + 16)) {
		return 16;
	}
	return (unsigned)((rl.rlim_cur - HTTPD_FD_RESERVE) / 2 - HTTPD_CLOSING_SLACK);
}

/* What the threads share, before any starts: the locks, the reaper's wake descriptor, and
 * one deployment handle per pool thread. */
static int shared_start(struct moat_httpd *h, const char *dir, struct moat_err *err)
{
	pthread_mutexattr_t ma;
	if (pthread_mutexattr_init(&ma) != 0 ||
	    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE) != 0 ||
	    pthread_mutex_init(&h->guard_mu, &ma) != 0) {
		return moat_err_set(err, MOAT_ENOMEM, "https: mutex");
	}
	pthread_mutexattr_destroy(&ma);
	if (pthread_mutex_init(&h->crl_mu, NULL) != 0 ||
	    pthread_mutex_init(&h->pool_mu, NULL) != 0 ||
	    pthread_cond_init(&h->pool_cv, NULL) != 0) {
		return moat_err_set(err, MOAT_ENOMEM, "https: mutex");
	}
	h->locks_made = true;
	h->ep = epoll_create1(EPOLL_CLOEXEC);
	h->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->ep < 0 || h->wake < 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "https: event loop");
	}
	size_t n = (size_t)h->lim.threads;
	h->pool = calloc(n, sizeof(*h->pool));
	h->pool_used = calloc(n, sizeof(*h->pool_used));
	if (!h->pool || !h->pool_used) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	for (; h->pool_n < n; h->pool_n++) {
		int rc = moat_deploy_open(dir, MOAT_DEPLOY_READ, &h->pool[h->pool_n], err);
		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

static int loop_start(struct moat_httpd *h, struct moat_err *err)
{
	struct epoll_event wev = {.events = EPOLLIN, .data.fd = h->wake};
	if (epoll_ctl(h->ep, EPOLL_CTL_ADD, h->wake, &wev) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "https: event loop");
	}
	int e = pthread_create(&h->thread, NULL, serve, h);
	if (e != 0) {
		return moat_err_errno(err, MOAT_EIO, e, "https: thread");
	}
	h->thread_started = true;
	return 0;
}

int moat_httpd_start(const struct moat_httpd_opts *opts, struct moat_httpd **out,
		     struct moat_err *err)
{
	int rc;
	*out = NULL;
	struct moat_httpd *h = calloc(1, sizeof(*h));
	if (!h) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	h->ep = -1;
	h->wake = -1;
	if ((rc = moat_deploy_open(opts->dir, MOAT_DEPLOY_READ, &h->d, err)) != 0 ||
	    (rc = moat_httpd_limits_load(moat_deploy_config(h->d), &h->lim, err)) != 0 ||
	    (rc = read_pem(h->d, "pki/server.key", &h->key_pem, err)) != 0 ||
	    (rc = read_pem(h->d, "pki/server.crt", &h->cert_pem, err)) != 0 ||
	    (rc = read_pem(h->d, "pki/ca.crt", &h->ca_pem, err)) != 0 ||
	    (rc = moat_deploy_path(h->d, h->crl_path, sizeof(h->crl_path), "pki/crl.pem", err)) !=
		    0) {
		goto out;
	}
	BIO *bio = BIO_new_mem_buf(h->ca_pem, -1);
	h->ca = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (!h->ca) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "pki/ca.crt: not a certificate");
		goto out;
	}
	if ((rc = shared_start(h, opts->dir, err)) != 0) {
		goto out;
	}
	crl_refresh(h);
	if ((rc = est_open(h->d, &h->est, err)) != 0) {
		goto out;
	}
	if ((rc = dash_open(opts->dir, &h->dash, err)) != 0) {
		goto out;
	}

	const char *listen = opts->listen_addr;
	if (!listen) {
		listen = moat_config_get(moat_deploy_config(h->d), "server", "listen");
	}
	if (!listen) {
		listen = "127.0.0.1";
	}
	h->port = opts->port ? opts->port : moat_deploy_settings(h->d)->server_port;
	atomic_store(&h->exporter, opts->exporter);
	atomic_store(&h->ingest, opts->ingest);
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	const struct sockaddr *sa = NULL;
	/* suspend and resume: the dashboard's event streams wait without busy-waiting.
	 * poll(2), not epoll: libmicrohttpd's epoll loop (0.9.75 to 1.0.1) keeps a connection
	 * whose TLS handshake waits for the client on its "ready" list (GnuTLS reads the
	 * socket itself, so the EAGAIN never clears the ready flag) and spins on recv() until
	 * the client answers: ~5,000 system calls per enrollment, and a core for as long as
	 * a client stalls its handshake. Its poll loop asks GnuTLS which way the handshake
	 * waits and sleeps until then; the cost is a scan of the thread's connections per
	 * wake-up (tests/e2e/test_moatd_slow.sh: a stalled handshake costs no CPU). */
	unsigned flags = MHD_USE_TLS | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
			 MHD_ALLOW_SUSPEND_RESUME;
	unsigned max = (unsigned)h->lim.max_connections;
	unsigned budget = fd_budget();
	if (max > budget) {
		moat_log(MOAT_LOG_WARN, "event=limit_lowered max_connections=%u fd_budget=%u", max,
			 budget);
		max = budget;
	}
	const struct moat_connguard_limits gl = {
		.handshake_ms = h->lim.handshake_timeout_s * 1000,
		.header_ms = h->lim.header_timeout_s * 1000,
		.max_connections = max,
		.unauth_per_source = (unsigned)h->lim.unauthenticated_per_source,
		.per_device = (unsigned)h->lim.connections_per_device,
	};
	if ((rc = moat_connguard_new(&gl, &h->guard, err)) != 0) {
		goto out;
	}
	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	if (inet_pton(AF_INET, listen, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)h->port);
		sa = (const struct sockaddr *)&sin;
	} else if (inet_pton(AF_INET6, listen, &sin6.sin6_addr) == 1) {
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons((uint16_t)h->port);
		sa = (const struct sockaddr *)&sin6;
		flags |= MHD_USE_IPv6;
	} else {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "listen address %.64s: not a numeric IP address", listen);
		goto out;
	}
	h->mhd = MHD_start_daemon(
		flags, (uint16_t)h->port, on_accept, h, on_request, h, MHD_OPTION_SOCK_ADDR, sa,
		MHD_OPTION_HTTPS_MEM_KEY, h->key_pem, MHD_OPTION_HTTPS_MEM_CERT, h->cert_pem,
		MHD_OPTION_HTTPS_MEM_TRUST, h->ca_pem, MHD_OPTION_HTTPS_PRIORITIES,
		MOAT_TLS_GNUTLS_PRIORITY, MHD_OPTION_CONNECTION_LIMIT, max + HTTPD_CLOSING_SLACK,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)h->lim.idle_timeout_s,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_EXTERNAL_LOGGER,
		mhd_logger, h, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_THREAD_POOL_SIZE,
		(unsigned)h->lim.threads, MHD_OPTION_END);
	if (!h->mhd) {
		rc = moat_err_set(err, MOAT_EIO, "https: cannot listen on %s port %d", listen,
				  h->port);
		goto out;
	}
	if ((rc = loop_start(h, err)) != 0) {
		goto out;
	}
	moat_log(MOAT_LOG_INFO,
		 "event=listening addr=%s port=%d max_connections=%u handshake_timeout=%llds "
		 "header_timeout=%llds unauthenticated_per_source=%u connections_per_device=%u "
		 "threads=%u",
		 listen, h->port, max, (long long)h->lim.handshake_timeout_s,
		 (long long)h->lim.header_timeout_s, gl.unauth_per_source, gl.per_device,
		 (unsigned)h->lim.threads);
	*out = h;
	h = NULL;
	rc = 0;
out:
	moat_httpd_stop(h);
	return rc;
}

void moat_httpd_set_exporter(struct moat_httpd *h, struct moat_export *x)
{
	if (h) {
		atomic_store(&h->exporter, x);
	}
}

void moat_httpd_set_ingest(struct moat_httpd *h, struct moat_ingest *ing)
{
	if (h) {
		atomic_store(&h->ingest, ing);
	}
}

void moat_httpd_stop(struct moat_httpd *h)
{
	if (!h) {
		return;
	}
	if (h->thread_started) {
		atomic_store(&h->stopping, true);
		uint64_t one = 1;
		ssize_t w = write(h->wake, &one, sizeof(one));
		(void)w;
		pthread_join(h->thread, NULL);
	}
	if (h->mhd) {
		MHD_stop_daemon(h->mhd); /* closes every connection: their entries go too */
	}
	moat_connguard_free(h->guard);
	if (h->ep >= 0) {
		close(h->ep);
	}
	if (h->wake >= 0) {
		close(h->wake);
	}
	est_close(h->est);
	dash_close(h->dash);
	moat_crl_set_free(h->crls);
	X509_free(h->ca);
	if (h->key_pem) {
		/* The server's private key: wipe before freeing. */
		OPENSSL_cleanse(h->key_pem, strlen(h->key_pem));
	}
	free(h->key_pem);
	free(h->cert_pem);
	free(h->ca_pem);
	for (size_t i = 0; i < h->pool_n; i++) {
		moat_deploy_close(h->pool[i]);
	}
	free(h->pool);
	free(h->pool_used);
	if (h->locks_made) {
		pthread_mutex_destroy(&h->guard_mu);
		pthread_mutex_destroy(&h->crl_mu);
		pthread_mutex_destroy(&h->pool_mu);
		pthread_cond_destroy(&h->pool_cv);
	}
	moat_deploy_close(h->d);
	free(h);
}
