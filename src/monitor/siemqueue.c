/* siemqueue.c: the SIEM's queue on disk (state/siem.queue): the events waiting for the
 * collector, so a moatd restart while it is away loses none; and the exporter's cursor
 * (state/export.cursor), its place in the registry's security events. One header line, then one
 * event per line (moat_sec_event_json), oldest first:
 *   {"version":1,"events":2}
 *   {"time_ms":...,"kind":"acl_denied",...}
 *   {"time_ms":...,"kind":"auth_refused",...}
 * The reader is strict: a file that is not exactly that is refused whole.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/json.h"
#include "moat/monitor_export.h"

#define HEADER_MAX 128

int moat_siem_queue_encode(const struct moat_sec_event *ring, size_t cap, size_t head, size_t n,
			   char **out, size_t *out_len, size_t *out_dropped, struct moat_err *err)
{
	*out = NULL;
	*out_len = 0;
	*out_dropped = 0;
	if (n > cap) {
		return moat_err_set(err, MOAT_EINVAL, "siem queue: %zu events in a ring of %zu", n,
				    cap);
	}
	/* the newest events that fit in the file's bound: counted from the newest back */
	char line[MOAT_SEC_EVENT_MAX_BYTES];
	size_t total = HEADER_MAX, first = n;
	while (first > 0) {
		size_t len = 0;
		if (!moat_sec_event_json(&ring[(head + first - 1) % cap], line, sizeof(line),
					 &len) ||
		    total + len + 1 > MOAT_SIEM_QUEUE_FILE_MAX_BYTES) {
			break;
		}
		total += len + 1;
		first--;
	}
	char *text = malloc(total + 1);
	if (!text) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	int h = snprintf(text, HEADER_MAX, "{\"version\":1,\"events\":%zu}\n", n - first);
	size_t at = (size_t)h;
	for (size_t i = first; i < n; i++) {
		size_t len = 0;
		if (!moat_sec_event_json(&ring[(head + i) % cap], text + at, total + 1 - at,
					 &len)) {
			free(text);
			return moat_err_set(err, MOAT_EINVAL, "siem queue: an event does not fit");
		}
		at += len;
		text[at++] = '\n';
	}
	text[at] = '\0';
	*out = text;
	*out_len = at;
	*out_dropped = first;
	return 0;
}

/* The header line: {"version":1,"events":N}. */
static int read_header(const char *text, size_t len, uint64_t *events, struct moat_err *err)
{
	static const struct moat_json_limits lim = {.max_bytes = HEADER_MAX,
						    .max_depth = 1,
						    .flags = 0};
	cJSON *root = NULL;
	int rc = moat_json_parse("siem queue header", text, len, &lim, &root, NULL, err);
	if (rc != 0) {
		return rc;
	}
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "events");
	if (!cJSON_IsNumber(ver) || ver->valuedouble != 1) {
		rc = moat_err_set(err, MOAT_EINVAL, "siem queue: version is not 1");
	} else if (!cJSON_IsNumber(n) || !isfinite(n->valuedouble) || n->valuedouble < 0 ||
		   n->valuedouble > (double)MOAT_SIEM_QUEUE_FILE_MAX_BYTES ||
		   n->valuedouble != floor(n->valuedouble) || cJSON_GetArraySize(root) != 2) {
		rc = moat_err_set(err, MOAT_EINVAL, "siem queue: events missing or bad");
	} else {
		*events = (uint64_t)n->valuedouble;
	}
	cJSON_Delete(root);
	return rc;
}

int moat_siem_queue_decode(const void *text, size_t len, struct moat_sec_event *out, size_t max,
			   size_t *out_n, uint64_t *out_dropped, struct moat_err *err)
{
	const char *s = text;
	*out_n = 0;
	*out_dropped = 0;
	if (len > MOAT_SIEM_QUEUE_FILE_MAX_BYTES) {
		return moat_err_set(err, MOAT_EINVAL, "siem queue: larger than %u bytes",
				    MOAT_SIEM_QUEUE_FILE_MAX_BYTES);
	}
	const char *nl = memchr(s, '\n', len);
	if (!nl) {
		return moat_err_set(err, MOAT_EINVAL, "siem queue: no header line");
	}
	uint64_t events = 0;
	int rc = read_header(s, (size_t)(nl - s), &events, err);
	if (rc != 0) {
		return rc;
	}
	/* the newest max are kept, oldest first */
	uint64_t skip = events > max ? events - max : 0;
	uint64_t i = 0;
	size_t n = 0;
	const char *p = nl + 1, *end = s + len;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			rc = moat_err_set(err, MOAT_EINVAL,
					  "siem queue: event %" PRIu64 " has no line end", i);
			goto fail;
		}
		if (i >= events) {
			rc = moat_err_set(err, MOAT_EINVAL,
					  "siem queue: more events than the header's %" PRIu64,
					  events);
			goto fail;
		}
		struct moat_sec_event ev;
		if ((rc = moat_sec_event_parse(p, (size_t)(nl - p), &ev, err)) != 0) {
			moat_err_prefix(err, "siem queue: event %" PRIu64, i);
			goto fail;
		}
		if (i >= skip) {
			out[n++] = ev;
		}
		i++;
		p = nl + 1;
	}
	if (i != events) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "siem queue: %" PRIu64 " events, the header says %" PRIu64, i,
				  events);
		goto fail;
	}
	*out_n = n;
	*out_dropped = skip;
	return 0;
fail:
	memset(out, 0, n * sizeof(*out));
	return rc;
}

/* ---- the cursor ---- */

#define CURSOR_SEQ_MAX 9007199254740991.0 /* 2^53 - 1: a double holds it exactly */

int moat_export_cursor_encode(int64_t seq, char *out, size_t size)
{
	if (seq < 0 || (double)seq > CURSOR_SEQ_MAX) {
		return -1;
	}
	int n = snprintf(out, size, "{\"version\":1,\"seq\":%lld}\n", (long long)seq);
	return n > 0 && (size_t)n < size ? n : -1;
}

int moat_export_cursor_decode(const void *text, size_t len, int64_t *out_seq, struct moat_err *err)
{
	static const struct moat_json_limits lim = {.max_bytes = MOAT_EXPORT_CURSOR_MAX_BYTES,
						    .max_depth = 1,
						    .flags = 0};
	cJSON *root = NULL;
	*out_seq = 0;
	int rc = moat_json_parse("export cursor", text, len, &lim, &root, NULL, err);
	if (rc != 0) {
		return rc;
	}
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(root, "seq");
	if (!cJSON_IsObject(root) || !cJSON_IsNumber(ver) || ver->valuedouble != 1) {
		rc = moat_err_set(err, MOAT_EINVAL, "export cursor: version is not 1");
	} else if (!cJSON_IsNumber(seq) || !isfinite(seq->valuedouble) || seq->valuedouble < 0 ||
		   seq->valuedouble > CURSOR_SEQ_MAX ||
		   seq->valuedouble != floor(seq->valuedouble)) {
		rc = moat_err_set(err, MOAT_EINVAL, "export cursor: seq missing or bad");
	} else if (cJSON_GetArraySize(root) != 2) {
		rc = moat_err_set(err, MOAT_EINVAL, "export cursor: unknown keys");
	} else {
		*out_seq = (int64_t)seq->valuedouble;
	}
	cJSON_Delete(root);
	return rc;
}
