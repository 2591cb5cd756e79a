/* fetch.c: the updater's HTTPS client on libcurl. The server is verified against the
 * deployment CA only (no system CA bundle or directory), by host name, under moat's TLS
 * policy (tlspolicy.h), and the device presents its own certificate; no switch turns any of
 * it off.
 * One easy handle serves a whole check (struct moat_update_http): the envelope and the image
 * share its keep-alive connection. Every request sets each option that differs between the
 * two (URL, callbacks, range), so nothing of one leaks into the next.
 * Responses are bounded: an envelope by MOAT_ENVELOPE_MAX_BYTES, an image by its signed
 * manifest's size (the write callback aborts the transfer at the first byte past it).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "failpoint.h"
#include "moat/buf.h"
#include "moat/fsutil.h"
#include "moat/manifest.h"
#include "moat/tlspolicy.h"
#include "update_internal.h"

#define CONNECT_TIMEOUT_SECONDS 15L
#define LOW_SPEED_BYTES 1L
#define LOW_SPEED_SECONDS 60L
/* libcurl names versions in its own enum: this is MOAT_TLS_MIN_VERSION_OPENSSL there. */
_Static_assert(MOAT_TLS_MIN_VERSION_OPENSSL == 0x0303, "CURL_SSLVERSION below is not the policy's");
#define CURL_MIN_VERSION CURL_SSLVERSION_TLSv1_2

void moat_update_http_close(struct moat_update_http *h)
{
	if (h->curl != NULL) {
		curl_easy_cleanup(h->curl);
		h->curl = NULL;
	}
}

/* The check's handle, made with every fixed option at its first request. */
static int easy_get(const struct moat_update_conf *conf, struct moat_update_http *h, CURL **out,
		    struct moat_err *err)
{
	static bool inited;
	CURL *c;
	CURLcode cc = CURLE_OK;
	long timeout = conf->timeout_seconds > 0 ? conf->timeout_seconds : 300L;

	*out = h->curl;
	if (*out != NULL) {
		return 0;
	}
	if (!inited) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			return moat_err_set(err, MOAT_EIO, "libcurl: initialisation failed");
		}
		inited = true;
	}
	c = curl_easy_init();
	if (c == NULL) {
		return moat_err_set(err, MOAT_ENOMEM, "libcurl: out of memory");
	}
	/* Each option is checked: a libcurl that cannot enforce one of them must not run. */
#define SET(opt, val)                                       \
	do {                                                \
		if (cc == CURLE_OK) {                       \
			cc = curl_easy_setopt(c, opt, val); \
		}                                           \
	} while (0)
	SET(CURLOPT_PROTOCOLS_STR, "https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_CAINFO, conf->ca_file);
	SET(CURLOPT_CAPATH, NULL);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_SSLVERSION, (long)CURL_MIN_VERSION);
	SET(CURLOPT_SSL_CIPHER_LIST, MOAT_TLS12_CIPHERS);
	SET(CURLOPT_SSLCERT, conf->cert_file);
	SET(CURLOPT_SSLCERTTYPE, "PEM");
	SET(CURLOPT_SSLKEY, conf->key_file);
	SET(CURLOPT_SSLKEYTYPE, "PEM");
	SET(CURLOPT_FAILONERROR, 1L);
	SET(CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_SECONDS);
	SET(CURLOPT_TIMEOUT, timeout);
	SET(CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_BYTES);
	SET(CURLOPT_LOW_SPEED_TIME, LOW_SPEED_SECONDS);
#undef SET
	if (cc != CURLE_OK) {
		curl_easy_cleanup(c);
		return moat_err_set(err, MOAT_EIO, "libcurl: %s", curl_easy_strerror(cc));
	}
	h->curl = c;
	*out = c;
	return 0;
}

/* The message for a failed transfer, naming the URL and libcurl's reason. */
static int transfer_error(CURL *c, CURLcode cc, const char *url, const char *detail,
			  struct moat_err *err)
{
	long status = 0;

	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_HTTP_RETURNED_ERROR) {
		return moat_err_set(err, MOAT_EDENIED, "%s: server answered %ld", url, status);
	}
	if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
	    cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_SSL_CERTPROBLEM) {
		return moat_err_set(err, MOAT_EVERIFY, "%s: TLS: %s%s%s", url,
				    curl_easy_strerror(cc), detail[0] ? ": " : "", detail);
	}
	return moat_err_set(err, MOAT_EIO, "%s: %s%s%s", url, curl_easy_strerror(cc),
			    detail[0] ? ": " : "", detail);
}

/* The envelope is kept to MOAT_ENVELOPE_MAX_BYTES: a longer answer aborts the transfer. */
static size_t mem_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct moat_buf *b = ud;
	size_t n = size * nmemb;
	return moat_buf_append(b, ptr, n) == 0 ? n : 0;
}

int moat_update_fetch_envelope(const struct moat_update_conf *conf, struct moat_update_http *h,
			       const char *current_version, char **out_json, size_t *out_len,
			       long *out_status, struct moat_err *err)
{
	char url[MOAT_UPDATE_URL_MAX_LEN + 128];
	char errbuf[CURL_ERROR_SIZE] = "";
	struct moat_buf b;
	CURL *c = NULL;
	char *esc = NULL;
	CURLcode cc;
	long status = 0;
	int n;
	int rc;

	*out_json = NULL;
	*out_len = 0;
	*out_status = 0;
	moat_buf_init(&b, MOAT_ENVELOPE_MAX_BYTES + 1);
	rc = easy_get(conf, h, &c, err);
	if (rc != 0) {
		goto out;
	}
	if (current_version != NULL) {
		esc = curl_easy_escape(c, current_version, 0);
		if (esc == NULL) {
			rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
			goto out;
		}
		n = snprintf(url, sizeof(url), "%s/api/firmware/version?current=%s",
			     conf->server_url, esc);
	} else {
		n = snprintf(url, sizeof(url), "%s/api/firmware/version", conf->server_url);
	}
	if (n < 0 || (size_t)n >= sizeof(url)) {
		rc = moat_err_set(err, MOAT_EINVAL, "server URL too long");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, NULL);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, NULL);
	curl_easy_setopt(c, CURLOPT_RANGE, NULL);
	cc = curl_easy_perform(c);
	if (b.rc == MOAT_EINVAL) {
		rc = moat_err_set(err, MOAT_EINVAL, "%s: envelope larger than %u bytes", url,
				  MOAT_ENVELOPE_MAX_BYTES);
		goto out;
	}
	if (cc != CURLE_OK) {
		rc = transfer_error(c, cc, url, errbuf, err);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status == 204) {
		*out_status = status;
		rc = 0;
		goto out;
	}
	if (status != 200 || b.data == NULL) {
		rc = moat_err_set(err, MOAT_EIO, "%s: unexpected answer %ld", url, status);
		goto out;
	}
	if ((rc = moat_buf_take(&b, out_json, out_len)) != 0) {
		rc = moat_err_set(err, rc, "%s: out of memory", url);
		goto out;
	}
	*out_status = status;
out:
	curl_free(esc);
	moat_buf_free(&b);
	if (c != NULL) {
		/* the buffers of this request go away: the handle must not point at them */
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);
	}
	return rc;
}

struct imgctx {
	CURL *c;
	int fd;
	uint64_t offset;
	const struct moat_manifest *m;
	struct moat_fw_stream *s;
	bool checked;	/* the status and Content-Range were looked at */
	bool bad_range; /* 206 starting elsewhere than offset */
	int io_errno;
};

static size_t hdr_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct imgctx *x = ud;
	size_t n = size * nmemb;
	static const char name[] = "content-range: bytes ";
	size_t nl = sizeof(name) - 1;

	if (n > nl && strncasecmp(ptr, name, nl) == 0) {
		char num[24];
		size_t i = 0;

		while (nl + i < n && i < sizeof(num) - 1 && ptr[nl + i] >= '0' &&
		       ptr[nl + i] <= '9') {
			num[i] = ptr[nl + i];
			i++;
		}
		num[i] = '\0';
		if (i == 0 || nl + i >= n || ptr[nl + i] != '-' ||
		    strtoull(num, NULL, 10) != x->offset) {
			x->bad_range = true;
		}
	}
	return n;
}

static size_t img_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct imgctx *x = ud;
	size_t n = size * nmemb;

	if (!x->checked) {
		long status = 0;

		x->checked = true;
		curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &status);
		if (status == 206 && x->bad_range) {
			return 0;
		}
		if (status == 200 && x->offset > 0) {
			/* The server sent the whole image: start the file and the hash over. */
			moat_fw_stream_free(x->s);
			if (moat_fw_stream_init(x->s, x->m, NULL) != 0 ||
			    ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0) {
				x->io_errno = errno ? errno : EIO;
				return 0;
			}
			x->offset = 0;
		} else if (status != 200 && status != 206) {
			return 0;
		}
	}
	MOAT_FAILPOINT("chunk");
	if (moat_fw_stream_update(x->s, ptr, n, NULL) != 0) {
		return 0; /* more than the manifest's size: stop reading now */
	}
	x->io_errno = moat_fs_write_fd(x->fd, ptr, n) != 0 ? errno : 0;
	return x->io_errno == 0 ? n : 0;
}

int moat_update_fetch_image(const struct moat_update_conf *conf, struct moat_update_http *h,
			    const struct moat_manifest *m, int fd, uint64_t offset,
			    struct moat_fw_stream *s, struct moat_err *err)
{
	char url[MOAT_UPDATE_URL_MAX_LEN + 128];
	char hex[MOAT_SHA256_HEX_LEN + 1];
	char range[48];
	char errbuf[CURL_ERROR_SIZE] = "";
	struct imgctx x = {.fd = fd, .offset = offset, .m = m, .s = s};
	CURL *c = NULL;
	CURLcode cc;
	int n;
	int rc;

	moat_hex_encode(m->sha256, sizeof(m->sha256), hex);
	n = snprintf(url, sizeof(url), "%s/api/firmware/download/%s", conf->server_url, hex);
	if (n < 0 || (size_t)n >= sizeof(url)) {
		return moat_err_set(err, MOAT_EINVAL, "server URL too long");
	}
	rc = easy_get(conf, h, &c, err);
	if (rc != 0) {
		return rc;
	}
	x.c = c;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, img_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, hdr_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
	if (offset > 0) {
		snprintf(range, sizeof(range), "%" PRIu64 "-", offset);
		curl_easy_setopt(c, CURLOPT_RANGE, range);
	} else {
		curl_easy_setopt(c, CURLOPT_RANGE, NULL);
	}
	cc = curl_easy_perform(c);
	if (s->dev.too_long) {
		rc = 0; /* the caller's moat_fw_stream_decide refuses it: size_mismatch */
	} else if (x.bad_range) {
		rc = moat_err_set(err, MOAT_EIO, "%s: the server answered another range", url);
	} else if (x.io_errno != 0) {
		rc = moat_err_errno(err, MOAT_EIO, x.io_errno, "writing the download");
	} else if (cc != CURLE_OK) {
		rc = transfer_error(c, cc, url, errbuf, err);
	} else {
		rc = 0;
	}
	/* x, errbuf and range live on this stack frame: the handle keeps none of them */
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, NULL);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, NULL);
	curl_easy_setopt(c, CURLOPT_RANGE, NULL);
	return rc;
}
