/* siemstatus.c: what moatd last knew of its delivery to the SIEM (state/siem.status), so
 * that `moat audit` can tell whether events reach it without talking to moatd. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "moat/json.h"
#include "moat/monitor_export.h"

int moat_siem_status_encode(const struct moat_siem_status *s, char *out, size_t size)
{
	char error[2 * sizeof(s->error)];
	size_t j = 0;
	/* the message is printable ASCII (moat_err); quote and backslash escaped */
	for (const char *p = s->error; *p && j + 2 < sizeof(error); p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c > 0x7e) {
			continue;
		}
		if (c == '"' || c == '\\') {
			error[j++] = '\\';
		}
		error[j++] = (char)c;
	}
	error[j] = '\0';
	int n = snprintf(out, size,
			 "{\"version\":1,\"last_ok\":%lld,\"last_error\":%lld,\"error\":\"%s\","
			 "\"pending\":%llu,\"oldest_pending\":%lld}\n",
			 (long long)s->last_ok, (long long)s->last_error, error,
			 (unsigned long long)s->pending, (long long)s->oldest_pending);
	return n > 0 && (size_t)n < size ? n : -1;
}

static int get_time(const cJSON *root, const char *key, int64_t *out, struct moat_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
	/* seconds since the epoch, 0 = never; below 2^53 so a double holds it exactly */
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
	    v->valuedouble > 9007199254740991.0 || v->valuedouble != floor(v->valuedouble)) {
		return moat_err_set(err, MOAT_EINVAL, "SIEM status: %s missing or bad", key);
	}
	*out = (int64_t)v->valuedouble;
	return 0;
}

int moat_siem_status_decode(const void *text, size_t len, struct moat_siem_status *out,
			    struct moat_err *err)
{
	static const struct moat_json_limits lim = {.max_bytes = MOAT_SIEM_STATUS_MAX_BYTES,
						    .max_depth = 1,
						    .flags = 0};
	cJSON *root = NULL;
	int rc;
	memset(out, 0, sizeof(*out));
	if ((rc = moat_json_parse("SIEM status", text, len, &lim, &root, NULL, err)) != 0) {
		return rc;
	}
	struct moat_siem_status s;
	memset(&s, 0, sizeof(s));
	int64_t pending = 0;
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
	if (!cJSON_IsObject(root) || !cJSON_IsNumber(ver) || ver->valuedouble != 1) {
		rc = moat_err_set(err, MOAT_EINVAL, "SIEM status: version is not 1");
	} else if ((rc = get_time(root, "last_ok", &s.last_ok, err)) != 0 ||
		   (rc = get_time(root, "last_error", &s.last_error, err)) != 0 ||
		   (rc = get_time(root, "pending", &pending, err)) != 0 ||
		   (rc = get_time(root, "oldest_pending", &s.oldest_pending, err)) != 0) {
		/* rc and err set */
	} else if (!cJSON_IsString(e) || !e->valuestring ||
		   strlen(e->valuestring) >= sizeof(s.error)) {
		rc = moat_err_set(err, MOAT_EINVAL, "SIEM status: error missing or bad");
	} else {
		for (const char *p = e->valuestring; *p; p++) {
			if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
				rc = moat_err_set(err, MOAT_EINVAL,
						  "SIEM status: error not printable ASCII");
				break;
			}
		}
	}
	if (rc == 0) {
		snprintf(s.error, sizeof(s.error), "%s", e->valuestring);
		s.pending = (uint64_t)pending;
		*out = s;
	}
	cJSON_Delete(root);
	return rc;
}
