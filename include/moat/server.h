/* server.h: moatd, the update service (src/server/), and the release store it shares with
 * `moat fw publish|list|status`.
 *
 * Releases: `moat fw publish` verifies an envelope and its image against the deployment's
 * trust list, copies both to firmware/releases/<type>/<version>/{image.bin,envelope.json}
 * (atomically, the copy re-hashed while written) and then records the release in the
 * registry (tables releases, release_devices, update_events, device_firmware; see
 * src/registry/schema.c). A release reaches a device when its rollout includes it: either
 * a percentage (moat_rollout_bucket(sha256, id) < percent) or an explicit list of ids.
 *
 * HTTP API (HTTPS, mutual TLS against the deployment CA; the caller is its certificate's CN):
 *   GET /api/firmware/version[?current=V]   200 + the signed envelope of the newest release
 *                                           for the caller's type that includes it; 204 when
 *                                           there is none newer than V (else the header
 *                                           MOAT_SERVER_VERSION_HEADER, else the version the
 *                                           device last reported running)
 *   GET /api/firmware/download/<sha256>     the image; Range: bytes=a-b|a-|-n (one range),
 *                                           206/416; never a byte past the release's size
 * A request header MOAT_SERVER_DEVICE_HEADER that differs from the CN is refused (403).
 *
 * Update events: devices publish {"event":"update","stage":S,...} on devices/{id}/diagnostics
 * (see moat_update_event_parse in update_schema.h); moatd records them; `moat fw status`
 * shows them.
 *
 * The parsers here (moat_http_route_parse, moat_http_range_parse) are pure and bounded, and
 * fuzzed (tests/fuzz/fuzz_http.c).
 */
#ifndef MOAT_SERVER_H
#define MOAT_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"
#include "moat/identity.h"
#include "moat/manifest.h"
#include "moat/registry.h"
#include "moat/update_schema.h" /* struct moat_update_event */

#define MOAT_RELEASES_DIR "firmware/releases"
#define MOAT_RELEASE_IMAGE_FILE "image.bin"
#define MOAT_RELEASE_ENVELOPE_FILE "envelope.json"
/* The tutorial's firmware sends both headers: keep their names so it works unchanged. */
#define MOAT_SERVER_DEVICE_HEADER "X-Device-ID"
#define MOAT_SERVER_VERSION_HEADER "X-Current-Version"
#define MOAT_HTTP_URL_MAX_LEN 256
#define MOAT_HTTP_RANGE_MAX_LEN 128
#define MOAT_ROLLOUT_PERCENT_MAX 100
#define MOAT_ROLLOUT_DEVICES_MAX 10000
#define MOAT_STATUS_EVENTS_PER_DEVICE 5
#define MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE 100 /* older events of a device are pruned */

/* ---- pure request parsing (src/server/http_parse.c) ---- */

enum moat_http_route {
	MOAT_ROUTE_NOT_FOUND = 0,
	MOAT_ROUTE_VERSION,  /* /api/firmware/version */
	MOAT_ROUTE_DOWNLOAD, /* /api/firmware/download/<64 lower-case hex> */
};

/* Maps a request path (no query string) to a route. Only the exact paths above match:
 * no "..", no "//", no trailing slash, no percent escapes, at most MOAT_HTTP_URL_MAX_LEN
 * bytes. For MOAT_ROUTE_DOWNLOAD out_sha256 (may be NULL) receives the digest. */
enum moat_http_route moat_http_route_parse(const char *path, uint8_t out_sha256[MOAT_SHA256_BYTES]);

enum moat_range_result {
	MOAT_RANGE_NONE = 0,	  /* no Range header: the whole image (200) */
	MOAT_RANGE_OK,		  /* one satisfiable range (206) */
	MOAT_RANGE_MALFORMED,	  /* syntax, several ranges, another unit (400) */
	MOAT_RANGE_UNSATISFIABLE, /* starts at or past the end (416) */
};

/* Parses a Range header value (NULL: none) against an image of size bytes (>= 1):
 * "bytes=A-B", "bytes=A-", "bytes=-N". B past the end is clamped to size - 1, so
 * [*out_start, *out_start + *out_len) always lies inside the image. */
enum moat_range_result moat_http_range_parse(const char *value, uint64_t size, uint64_t *out_start,
					     uint64_t *out_len);

/* ---- rollout (pure) ---- */

/* A stable bucket 0..99 for (release, device): the first 8 bytes of
 * SHA-256(sha256 || device_id), big-endian, mod 100. */
unsigned moat_rollout_bucket(const uint8_t sha256[MOAT_SHA256_BYTES], const char *device_id);

/* ---- the release store (registry; src/server/releases.c) ---- */

struct moat_release {
	char sha256_hex[MOAT_SHA256_HEX_LEN + 1];
	char device_type[MOAT_DEVICE_TYPE_MAX_LEN + 1];
	char version[MOAT_FW_VERSION_MAX_LEN + 1];
	int64_t security_version;
	uint64_t size;
	int64_t issued_at;
	int64_t expires_at;
	int64_t published_at;
	int rollout_percent; /* 0..100; -1: only the devices listed for it */
	size_t device_count; /* listed devices (rollout_percent == -1) */
};

/* Records a release and, for rollout_percent == -1, its devices (each an identity name).
 * MOAT_EEXIST when the sha256 or (type, version) is already published. */
MOAT_MUST_CHECK int moat_release_insert(struct moat_registry *reg, const struct moat_release *r,
					char *const *devices, size_t device_count,
					struct moat_err *err);
/* MOAT_ENOENT when no release has this digest. */
MOAT_MUST_CHECK int moat_release_get(struct moat_registry *reg, const char *sha256_hex,
				     struct moat_release *out, struct moat_err *err);
typedef int (*moat_release_cb)(const struct moat_release *r, void *ctx);
/* Every release (device_type NULL) or those of one type, by type then publication. */
MOAT_MUST_CHECK int moat_release_foreach(struct moat_registry *reg, const char *device_type,
					 moat_release_cb cb, void *ctx, struct moat_err *err);
/* Does r's rollout include device_id? */
MOAT_MUST_CHECK int moat_release_includes(struct moat_registry *reg, const struct moat_release *r,
					  const char *device_id, bool *out, struct moat_err *err);
/* The newest release (semantic version order) of device_type; with device_id non-NULL,
 * the newest whose rollout includes it. *out_found false when there is none. */
MOAT_MUST_CHECK int moat_release_newest(struct moat_registry *reg, const char *device_type,
					const char *device_id, struct moat_release *out,
					bool *out_found, struct moat_err *err);

/* Records an event (ev->device must be a registered identity) and, when ev->running is
 * set, the version the device runs. Keeps the last MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE
 * events of each device, so a chatty device cannot grow the registry without bound. */
MOAT_MUST_CHECK int moat_update_event_record(struct moat_registry *reg,
					     const struct moat_update_event *ev,
					     struct moat_err *err);
/* The version a device last reported running; "" when never. */
MOAT_MUST_CHECK int moat_device_running_version(struct moat_registry *reg, const char *device_id,
						char out[MOAT_FW_VERSION_MAX_LEN + 1],
						struct moat_err *err);
typedef int (*moat_update_event_cb)(const struct moat_update_event *ev, void *ctx);
/* The last `limit` events of a device, newest first. */
MOAT_MUST_CHECK int moat_update_event_foreach(struct moat_registry *reg, const char *device_id,
					      int limit, moat_update_event_cb cb, void *ctx,
					      struct moat_err *err);

/* ---- publishing (src/server/publish.c) ---- */

struct moat_deploy;

struct moat_publish_req {
	const char *envelope_path;
	const char *image_path;
	int rollout_percent;  /* 0..100, or -1 with devices */
	char *const *devices; /* identity names (rollout_percent == -1) */
	size_t device_count;
	int64_t now;
};

/* Verifies the envelope against firmware/keys/trust.json and the image against the
 * manifest (moat_fw_verify_image), refuses a version that is not newer, or a
 * security_version lower, than the newest release of the type, refuses listed devices that
 * are not devices of that type, then writes the release files and records it. The caller
 * holds the deployment open for writing. On failure no row is written (files of a failed
 * publish may remain in the release directory and are overwritten by the next attempt). */
MOAT_MUST_CHECK int moat_release_publish(struct moat_deploy *d, const struct moat_publish_req *req,
					 struct moat_release *out, struct moat_err *err);

/* ---- the HTTPS service (src/server/httpd.c) ---- */

struct moat_httpd_opts {
	const char *dir;	 /* the deployment directory */
	const char *listen_addr; /* numeric IPv4 or IPv6 address; NULL: [server] listen, else
				    127.0.0.1 */
	int port;		 /* 0: [server] port of moat.conf */
};

struct moat_httpd;

/* Opens the deployment read-only, loads pki/server.{key,crt}, pki/ca.crt and pki/crl.pem,
 * and serves the API above on its own thread. Every request is authorized from the client
 * certificate: verified against the CA by GnuTLS, its serial not in pki/crl.pem (re-read
 * when the file changes; a CRL that fails to load or verify refuses everyone), its CN an
 * active device in the registry. One log line per request (moat_log). */
MOAT_MUST_CHECK int moat_httpd_start(const struct moat_httpd_opts *opts, struct moat_httpd **out,
				     struct moat_err *err);
void moat_httpd_stop(struct moat_httpd *h);

/* ---- update-event ingest over MQTT (src/server/ingest.c) ---- */

#define MOAT_SERVER_DEFAULT_SERVICE_IDENTITY "backend-service"
#define MOAT_INGEST_TOPIC "devices/+/diagnostics"

struct moat_ingest_opts {
	const char *dir; /* the deployment directory */
	const char *as;	 /* service identity; NULL: [server] service_identity, else
			    MOAT_SERVER_DEFAULT_SERVICE_IDENTITY */
};

struct moat_ingest;

/* Starts a thread that connects to the broker as the service identity (moat_opclient:
 * certificate, CA and host name verified), subscribes to MOAT_INGEST_TOPIC and records
 * every update event (moat_update_event_parse) for the device the topic names. The broker's
 * ACL lets a device write only its own diagnostics, so the topic's id is the publisher.
 * Reconnects with a back-off (1 s doubling to 30 s) when the broker is away; refused
 * payloads are logged (one line, never the payload) and dropped. */
MOAT_MUST_CHECK int moat_ingest_start(const struct moat_ingest_opts *opts, struct moat_ingest **out,
				      struct moat_err *err);
void moat_ingest_stop(struct moat_ingest *ing);

/* ---- running moatd (src/server/locate.c) ---- */

#define MOAT_MOATD_ENV "MOAT_MOATD"
#define MOAT_MOATD_LOG_FILE "log/moatd.log"
#define MOAT_MOATD_PID_FILE "run/moatd.pid"

/* The moatd executable `moat up` starts: $MOAT_MOATD, else moatd beside the running
 * executable, else src/server/moatd below it (a build tree). MOAT_ENOENT when none is an
 * executable file. */
MOAT_MUST_CHECK int moat_server_moatd_path(char *buf, size_t size, struct moat_err *err);

struct moat_sup;
/* Adds moatd for deployment dir to a supervisor (moat up): logging to MOAT_MOATD_LOG_FILE,
 * pid in MOAT_MOATD_PID_FILE. When no moatd executable is found it logs one line and adds
 * nothing (the broker runs alone); other failures are errors. */
MOAT_MUST_CHECK int moat_server_sup_add(struct moat_sup *sup, const char *dir,
					struct moat_err *err);

#endif
