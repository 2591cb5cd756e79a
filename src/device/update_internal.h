/* update_internal.h: the HTTPS client the updater uses (fetch.c), shared inside src/device/
 * only. Every request verifies the server against the deployment CA alone, by host name,
 * and presents the device's certificate.
 */
#ifndef MOAT_UPDATE_INTERNAL_H
#define MOAT_UPDATE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "moat/manifest.h"
#include "moat/update.h"

/* The HTTPS client of one update check: one libcurl easy handle, made at the first request
 * and kept, so the envelope and then the image go over one keep-alive TLS connection (libcurl
 * keeps the connection in the handle between transfers; it opens another only when moatd
 * closed it): moatd's access log shows both requests under one conn= number. */
struct moat_update_http {
	void *curl; /* CURL *; NULL before the first request */
};
/* Frees the handle and its connection; h stays valid (empty) for another check. */
void moat_update_http_close(struct moat_update_http *h);

/* GET /api/firmware/version?current=V: *out_status 200 (body in *out_json, NUL-terminated,
 * at most MOAT_ENVELOPE_MAX_BYTES, caller frees) or 204 (*out_json NULL). Any other status
 * is an error. */
MOAT_MUST_CHECK int moat_update_fetch_envelope(const struct moat_update_conf *conf,
					       struct moat_update_http *h,
					       const char *current_version, char **out_json,
					       size_t *out_len, long *out_status,
					       struct moat_err *err);

/* GET /api/firmware/download/<sha256> from byte offset (Range when > 0), appending to fd
 * (positioned at offset) and feeding s, which already holds the first offset bytes. Stops
 * as soon as more than the manifest's size arrives (s->too_long). A server that ignores the
 * Range restarts the file and the stream from 0. Returns a negative code when the transfer
 * failed for another reason; whatever arrived stays in fd. */
MOAT_MUST_CHECK int moat_update_fetch_image(const struct moat_update_conf *conf,
					    struct moat_update_http *h,
					    const struct moat_manifest *m, int fd, uint64_t offset,
					    struct moat_fw_stream *s, struct moat_err *err);

#endif
