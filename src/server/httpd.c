/* httpd.c: moatd's HTTPS side on libmicrohttpd + GnuTLS.
 *
 * MHD runs one internal polling thread; every callback below runs on it, so the registry
 * handle and the CRL cache need no locks. TLS asks every client for a certificate (MHD sets
 * GNUTLS_CERT_REQUEST when given a trust list); MHD cannot make it mandatory during the
 * handshake, so each request is authorized here before anything else happens: GnuTLS
 * verification against the deployment CA for the TLS client purpose, then the certificate
 * itself (client_cert.h: a leaf, clientAuth, one CN, the device role), then the serial
 * against pki/crl.pem, then the CN against the registry (an active device), then the
 * optional device-id header. Refusals are 403 with a one-line reason and an
 * event=auth_refused line; each request is logged once when it completes. URL escapes are
 * decoded by moat_http_unescape, which never turns %00 into the end of a string.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "moat/certinfo.h"
#include "moat/client_cert.h"
#include "moat/deploy.h"
#include "moat/fsutil.h"
#include "moat/http_parse.h"
#include "moat/log.h"
#include "moat/release.h"
#include "moat/server.h"
#include "moat/timeutil.h"
#include "moat/tlspolicy.h"
#include "server_internal.h"

#define HTTPD_CONNECTION_LIMIT 512
#define HTTPD_PER_IP_LIMIT 16
#define HTTPD_TIMEOUT_SECONDS 60
#define HTTPD_LOG_PATH_MAX_LEN 96

struct moat_httpd {
	struct MHD_Daemon *mhd;
	struct moat_deploy *d;
	char *key_pem;
	char *cert_pem;
	char *ca_pem;
	X509 *ca;
	char crl_path[PATH_MAX];
	struct moat_crl_set *crls; /* NULL: not loaded or invalid; everyone is refused */
	struct stat crl_st;	   /* of the file crl was loaded from */
	bool crl_tried;
	int port;
	struct moat_est *est; /* EST under /.well-known/est/ (est.c) */
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
	enum moat_http_route route;
	bool est;   /* an EST route: its own authentication (est.c) */
	char *body; /* an EST POST's body, at most MOAT_EST_BODY_MAX bytes */
	size_t body_len;
	char serial[MOAT_SERIAL_HEX_LEN * 2]; /* of the client certificate authenticated */
};

/* MHD hands its own format strings in: the attribute lets clang check that path. */
static void mhd_logger(void *cls, const char *fmt, va_list ap) MOAT_PRINTF(2, 0);

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char buf[256];
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0) {
		return;
	}
	size_t len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\n') {
		buf[len - 1] = '\0'; /* MHD's own line end; moat_log escapes the rest */
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

/* true when serial is listed in the current CRLs, or when there is no valid CRL to ask. */
static bool serial_revoked(struct moat_httpd *h, const ASN1_INTEGER *serial)
{
	crl_refresh(h);
	if (!h->crls) {
		return true;
	}
	return moat_crl_set_revoked(h->crls, serial);
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
static unsigned authenticate(struct moat_httpd *h, struct MHD_Connection *conn, struct req_ctx *rc,
			     struct moat_identity *ident)
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
	if (role != MOAT_ROLE_DEVICE) {
		snprintf(rc->note, sizeof(rc->note), "not_a_device");
		goto out;
	}
	if (serial_revoked(h, X509_get0_serialNumber(cert))) {
		snprintf(rc->note, sizeof(rc->note),
			 h->crls ? "certificate_revoked" : "no_valid_crl");
		goto out;
	}
	struct moat_err err = {0};
	if (moat_registry_identity_get(moat_deploy_registry(h->d), cn, ident, &err) != 0) {
		snprintf(rc->note, sizeof(rc->note), "unknown_identity");
		goto out;
	}
	if (ident->role != MOAT_ROLE_DEVICE) {
		snprintf(rc->note, sizeof(rc->note), "not_a_device");
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
	rc->status = status;
	enum MHD_Result r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static int release_path(struct moat_httpd *h, const struct moat_release *r, const char *file,
			char *buf, size_t size, struct moat_err *err)
{
	return moat_path_join(buf, size, err, "%s/%s/%s/%s/%s", moat_deploy_dir(h->d),
			      MOAT_RELEASES_DIR, r->device_type, r->version, file);
}

static enum MHD_Result handle_version(struct moat_httpd *h, struct MHD_Connection *conn,
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
	} else if (moat_registry_running_version(moat_deploy_registry(h->d), ident->id, current,
						 &err) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=registry_error msg=\"%s\"", err.msg);
		return send_text(conn, rc, MHD_HTTP_INTERNAL_SERVER_ERROR, "registry error");
	}
	struct moat_release r;
	bool found = false;
	if (moat_release_newest(moat_deploy_registry(h->d), ident->device_type, ident->id, &r,
				&found, &err) != 0) {
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
	if (release_path(h, &r, MOAT_RELEASE_ENVELOPE_FILE, path, sizeof(path), &err) != 0 ||
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

static enum MHD_Result handle_download(struct moat_httpd *h, struct MHD_Connection *conn,
				       struct req_ctx *rc, const struct moat_identity *ident,
				       const uint8_t sha256[MOAT_SHA256_BYTES])
{
	struct moat_err err = {0};
	char hex[MOAT_SHA256_HEX_LEN + 1];
	moat_hex_encode(sha256, MOAT_SHA256_BYTES, hex);
	struct moat_release r;
	int g = moat_registry_release_get(moat_deploy_registry(h->d), hex, &r, &err);
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
	    moat_release_includes(moat_deploy_registry(h->d), &r, ident->id, &inc, &err) != 0 ||
	    !inc) {
		/* Same answer as an unknown digest: a device learns nothing about releases
		 * that are not for it. */
		snprintf(rc->note, sizeof(rc->note), "release_not_for_device");
		return send_text(conn, rc, MHD_HTTP_NOT_FOUND, "no such release");
	}
	char path[PATH_MAX];
	if (release_path(h, &r, MOAT_RELEASE_IMAGE_FILE, path, sizeof(path), &err) != 0) {
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

/* A refusal of an EST request before est.c sees it (method, size, type): a security event
 * like est.c's own. */
static enum MHD_Result est_refuse_early(struct MHD_Connection *conn, struct req_ctx *rc,
					unsigned status, const char *note, const char *text)
{
	struct est_answer a;
	memset(&a, 0, sizeof(a));
	a.status = status;
	snprintf(a.note, sizeof(a.note), "%s", note);
	snprintf(a.text, sizeof(a.text), "%s", text);
	moat_log(MOAT_LOG_WARN,
		 "event=est_refused client=%s id=- path=%s status=%u reason=%s detail=\"%s\"",
		 rc->client, rc->path, status, note, text);
	return send_est(conn, rc, &a);
}

/* The first call for an EST request: method and body size are decided from the headers,
 * before any body is read. */
static enum MHD_Result est_begin(struct MHD_Connection *conn, struct req_ctx *rc,
				 const char *method)
{
	bool post = rc->route == MOAT_ROUTE_EST_SIMPLEENROLL ||
		    rc->route == MOAT_ROUTE_EST_SIMPLEREENROLL;
	const char *want = post ? MHD_HTTP_METHOD_POST : MHD_HTTP_METHOD_GET;
	if (strcmp(method, want) != 0) {
		return est_refuse_early(conn, rc, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
					post ? "only POST" : "only GET");
	}
	const char *cl =
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	bool chunked = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						   MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
	if (!post) {
		if (chunked || (cl && strcmp(cl, "0") != 0)) {
			return est_refuse_early(conn, rc, MHD_HTTP_BAD_REQUEST, "unexpected_body",
						"no request body expected");
		}
		return MHD_YES;
	}
	int64_t len = 0;
	if (cl && moat_int_parse(cl, 0, INT64_MAX, &len, NULL) != 0) {
		return est_refuse_early(conn, rc, MHD_HTTP_BAD_REQUEST, "bad_content_length",
					"Content-Length: not a number");
	}
	if (len > MOAT_EST_BODY_MAX) {
		return est_refuse_early(conn, rc, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
					"body: larger than the largest CSR");
	}
	rc->body = malloc(MOAT_EST_BODY_MAX);
	return rc->body ? MHD_YES : MHD_NO;
}

/* The last call for an EST request: the whole body is there. */
static enum MHD_Result est_finish(struct moat_httpd *h, struct MHD_Connection *conn,
				  struct req_ctx *rc)
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
	};
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	peer_certs(conn, &leaf, &chain, &req.peer_is_deployment_cert);
	req.peer_leaf = leaf;
	req.peer_chain = chain;
	struct moat_identity ident;
	if (rc->route == MOAT_ROUTE_EST_SIMPLEREENROLL) {
		if (authenticate(h, conn, rc, &ident) == 0) {
			req.cert_id = rc->id;
			req.cert_serial = rc->serial;
		} else {
			req.cert_refusal = rc->note;
		}
	}
	struct est_answer a;
	memset(&a, 0, sizeof(a));
	est_handle(h->est, &req, &a);
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
		rc->route = moat_http_route_parse(url, NULL);
		rc->est = moat_http_route_is_est(rc->route);
		if (rc->est) {
			return est_begin(conn, rc, method);
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
	if (rc->est && rc->status != 0 && *upload_data_size != 0) {
		*upload_data_size = 0; /* answered already: the rest of the body is dropped */
		return MHD_YES;
	}
	if (rc->est && *upload_data_size != 0) {
		if (!rc->body || *upload_data_size > MOAT_EST_BODY_MAX - rc->body_len) {
			*upload_data_size = 0;
			return est_refuse_early(conn, rc, MHD_HTTP_CONTENT_TOO_LARGE,
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
	if (rc->est) {
		return est_finish(h, conn, rc);
	}
	struct moat_identity ident;
	unsigned denied = authenticate(h, conn, rc, &ident);
	if (denied) {
		/* a security event of its own, besides the request line */
		moat_log(MOAT_LOG_WARN, "event=auth_refused client=%s id=%s reason=%s", rc->client,
			 rc->id, rc->note);
		return send_text(conn, rc, denied, rc->note);
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
		snprintf(rc->note, sizeof(rc->note), "method_not_allowed");
		return send_text(conn, rc, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET");
	}
	uint8_t sha[MOAT_SHA256_BYTES];
	switch (moat_http_route_parse(url, sha)) {
	case MOAT_ROUTE_VERSION:
		return handle_version(h, conn, rc, &ident);
	case MOAT_ROUTE_DOWNLOAD:
		return handle_download(h, conn, rc, &ident, sha);
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
	(void)cls;
	(void)conn;
	struct req_ctx *rc = *con_cls;
	if (!rc) {
		return;
	}
	moat_log(rc->status >= 400 ? MOAT_LOG_WARN : MOAT_LOG_INFO,
		 "event=request client=%s id=%s method=%s path=%s status=%u bytes=%llu detail=%s "
		 "version=%s offset=%s completed=%s",
		 rc->client, rc->id, rc->method, rc->path, rc->status,
		 (unsigned long long)rc->bytes, rc->note[0] ? rc->note : NULL,
		 rc->version[0] ? rc->version : NULL, rc->offset[0] ? rc->offset : NULL,
		 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? NULL : "no");
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

int moat_httpd_start(const struct moat_httpd_opts *opts, struct moat_httpd **out,
		     struct moat_err *err)
{
	int rc;
	*out = NULL;
	struct moat_httpd *h = calloc(1, sizeof(*h));
	if (!h) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	if ((rc = moat_deploy_open(opts->dir, MOAT_DEPLOY_READ, &h->d, err)) != 0 ||
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
	crl_refresh(h);
	if ((rc = est_open(h->d, &h->est, err)) != 0) {
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
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	const struct sockaddr *sa = NULL;
	unsigned flags = MHD_USE_TLS | MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
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
	h->mhd = MHD_start_daemon(flags, (uint16_t)h->port, NULL, NULL, on_request, h,
				  MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_HTTPS_MEM_KEY, h->key_pem,
				  MHD_OPTION_HTTPS_MEM_CERT, h->cert_pem,
				  MHD_OPTION_HTTPS_MEM_TRUST, h->ca_pem,
				  MHD_OPTION_HTTPS_PRIORITIES, MOAT_TLS_GNUTLS_PRIORITY,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTPD_CONNECTION_LIMIT,
				  MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTPD_PER_IP_LIMIT,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTPD_TIMEOUT_SECONDS,
				  MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
				  MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
	if (!h->mhd) {
		rc = moat_err_set(err, MOAT_EIO, "https: cannot listen on %s port %d", listen,
				  h->port);
		goto out;
	}
	moat_log(MOAT_LOG_INFO, "event=listening addr=%s port=%d", listen, h->port);
	*out = h;
	h = NULL;
	rc = 0;
out:
	moat_httpd_stop(h);
	return rc;
}

void moat_httpd_stop(struct moat_httpd *h)
{
	if (!h) {
		return;
	}
	if (h->mhd) {
		MHD_stop_daemon(h->mhd);
	}
	est_close(h->est);
	moat_crl_set_free(h->crls);
	X509_free(h->ca);
	if (h->key_pem) {
		/* The server's private key: wipe before freeing. */
		OPENSSL_cleanse(h->key_pem, strlen(h->key_pem));
	}
	free(h->key_pem);
	free(h->cert_pem);
	free(h->ca_pem);
	moat_deploy_close(h->d);
	free(h);
}
