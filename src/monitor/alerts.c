/* alerts.c: the webhook's alert queue: bounded, one entry per (kind, identity, reason)
 * while it waits (a burst of one refusal is one alert with a count), and its file, which
 * moatd rewrites atomically after every change so the queue survives a restart.
 *
 * File (JSON, version 1):
 *   {"version":1,"dropped":0,"alerts":[{"kind":"acl_denied","identity":"s1",
 *    "reason":"...","address":"...","first_ms":..,"last_ms":..,"count":3,
 *    "attempts":1,"next_ms":..}, ...]}
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "moat/json.h"
#include "moat/monitor_export.h"

#define JSON_INT_MAX 9007199254740991.0

void moat_alert_queue_init(struct moat_alert_queue *q, size_t max)
{
	memset(q, 0, sizeof(*q));
	q->max = max < 1 ? 1 : (max > MOAT_ALERT_QUEUE_MAX ? MOAT_ALERT_QUEUE_MAX : max);
}

void moat_alert_queue_free(struct moat_alert_queue *q)
{
	free(q->items);
	q->items = NULL;
	q->len = q->cap = 0;
}

void moat_alert_queue_remove(struct moat_alert_queue *q, size_t i)
{
	if (i >= q->len) {
		return;
	}
	memmove(&q->items[i], &q->items[i + 1], (q->len - i - 1) * sizeof(q->items[0]));
	q->len--;
}

static bool push(struct moat_alert_queue *q, const struct moat_alert *a)
{
	if (q->len >= q->max) {
		moat_alert_queue_remove(q, 0);
		q->dropped++;
	}
	if (q->len == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 16;
		if (cap > q->max) {
			cap = q->max;
		}
		struct moat_alert *n = realloc(q->items, cap * sizeof(*n));
		if (!n) {
			return false;
		}
		q->items = n;
		q->cap = cap;
	}
	q->items[q->len++] = *a;
	return true;
}

bool moat_alert_queue_add(struct moat_alert_queue *q, const struct moat_sec_event *ev,
			  int64_t now_ms)
{
	uint64_t n = ev->count ? ev->count : 1;
	for (size_t i = 0; i < q->len; i++) {
		struct moat_alert *a = &q->items[i];
		if (strcmp(a->kind, ev->kind) == 0 && strcmp(a->identity, ev->identity) == 0 &&
		    strcmp(a->reason, ev->reason) == 0) {
			a->count += n;
			if (ev->time_ms > a->last_ms) {
				a->last_ms = ev->time_ms;
			}
			return false;
		}
	}
	struct moat_alert a;
	memset(&a, 0, sizeof(a));
	snprintf(a.kind, sizeof(a.kind), "%s", ev->kind);
	snprintf(a.identity, sizeof(a.identity), "%s", ev->identity);
	snprintf(a.reason, sizeof(a.reason), "%s", ev->reason);
	snprintf(a.address, sizeof(a.address), "%s", ev->address);
	a.first_ms = a.last_ms = ev->time_ms;
	a.count = n;
	a.next_ms = now_ms;
	return push(q, &a);
}

static bool add_alert(cJSON *arr, const struct moat_alert *a)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddItemToArray(arr, o)) {
		cJSON_Delete(o);
		return false;
	}
	return cJSON_AddStringToObject(o, "kind", a->kind) &&
	       cJSON_AddStringToObject(o, "identity", a->identity) &&
	       cJSON_AddStringToObject(o, "reason", a->reason) &&
	       cJSON_AddStringToObject(o, "address", a->address) &&
	       cJSON_AddNumberToObject(o, "first_ms", (double)a->first_ms) &&
	       cJSON_AddNumberToObject(o, "last_ms", (double)a->last_ms) &&
	       cJSON_AddNumberToObject(o, "count", (double)a->count) &&
	       cJSON_AddNumberToObject(o, "attempts", (double)a->attempts) &&
	       cJSON_AddNumberToObject(o, "next_ms", (double)a->next_ms);
}

static int to_text(cJSON *root, char **out, size_t *out_len, struct moat_err *err)
{
	char *s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!s) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	*out = s;
	*out_len = strlen(s);
	return 0;
}

int moat_alert_queue_encode(const struct moat_alert_queue *q, char **out, size_t *out_len,
			    struct moat_err *err)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *arr = NULL;
	bool ok = root && cJSON_AddNumberToObject(root, "version", 1) &&
		  cJSON_AddNumberToObject(root, "dropped", (double)q->dropped) &&
		  (arr = cJSON_AddArrayToObject(root, "alerts")) != NULL;
	for (size_t i = 0; ok && i < q->len; i++) {
		ok = add_alert(arr, &q->items[i]);
	}
	if (!ok) {
		cJSON_Delete(root);
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	return to_text(root, out, out_len, err);
}

static int get_int(const cJSON *o, const char *key, double max, int64_t *out, size_t i,
		   struct moat_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
	    v->valuedouble > max || v->valuedouble != floor(v->valuedouble)) {
		return moat_err_set(err, MOAT_EINVAL, "alert queue: alert %zu: %s missing or bad",
				    i, key);
	}
	*out = (int64_t)v->valuedouble;
	return 0;
}

static int get_str(const cJSON *o, const char *key, char *dst, size_t size, bool nonempty, size_t i,
		   struct moat_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsString(v) || !v->valuestring || strlen(v->valuestring) >= size ||
	    (nonempty && !v->valuestring[0])) {
		return moat_err_set(err, MOAT_EINVAL, "alert queue: alert %zu: %s missing or bad",
				    i, key);
	}
	for (const char *p = v->valuestring; *p; p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
			return moat_err_set(err, MOAT_EINVAL,
					    "alert queue: alert %zu: %s not printable ASCII", i,
					    key);
		}
	}
	snprintf(dst, size, "%s", v->valuestring);
	return 0;
}

int moat_alert_queue_decode(const void *text, size_t len, struct moat_alert_queue *q,
			    struct moat_err *err)
{
	static const struct moat_json_limits lim = {.max_bytes = MOAT_ALERT_QUEUE_FILE_MAX_BYTES,
						    .max_depth = 2,
						    .flags = 0};
	cJSON *root = NULL;
	int rc;
	struct moat_alert_queue tmp;
	moat_alert_queue_init(&tmp, q->max);
	if ((rc = moat_json_parse("alert queue", text, len, &lim, &root, NULL, err)) != 0) {
		return rc;
	}
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "alerts");
	int64_t dropped = 0;
	if (!cJSON_IsNumber(ver) || ver->valuedouble != 1) {
		rc = moat_err_set(err, MOAT_EINVAL, "alert queue: version is not 1");
		goto out;
	}
	if (!cJSON_IsArray(arr)) {
		rc = moat_err_set(err, MOAT_EINVAL, "alert queue: alerts is not an array");
		goto out;
	}
	if ((rc = get_int(root, "dropped", JSON_INT_MAX, &dropped, 0, err)) != 0) {
		goto out;
	}
	tmp.dropped = (uint64_t)dropped;
	size_t i = 0;
	const cJSON *o;
	cJSON_ArrayForEach(o, arr)
	{
		struct moat_alert a;
		memset(&a, 0, sizeof(a));
		int64_t count = 0, attempts = 0;
		if (!cJSON_IsObject(o)) {
			rc = moat_err_set(err, MOAT_EINVAL, "alert queue: alert %zu: not an object",
					  i);
			goto out;
		}
		if ((rc = get_str(o, "kind", a.kind, sizeof(a.kind), true, i, err)) != 0 ||
		    (rc = get_str(o, "identity", a.identity, sizeof(a.identity), false, i, err)) !=
			    0 ||
		    (rc = get_str(o, "reason", a.reason, sizeof(a.reason), false, i, err)) != 0 ||
		    (rc = get_str(o, "address", a.address, sizeof(a.address), false, i, err)) !=
			    0 ||
		    (rc = get_int(o, "first_ms", JSON_INT_MAX, &a.first_ms, i, err)) != 0 ||
		    (rc = get_int(o, "last_ms", JSON_INT_MAX, &a.last_ms, i, err)) != 0 ||
		    (rc = get_int(o, "count", JSON_INT_MAX, &count, i, err)) != 0 ||
		    (rc = get_int(o, "attempts", 4294967295.0, &attempts, i, err)) != 0 ||
		    (rc = get_int(o, "next_ms", JSON_INT_MAX, &a.next_ms, i, err)) != 0) {
			goto out;
		}
		if (!moat_sec_event_kind_ok(a.kind) || count < 1 || a.last_ms < a.first_ms) {
			rc = moat_err_set(err, MOAT_EINVAL,
					  "alert queue: alert %zu: bad kind, count or times", i);
			goto out;
		}
		a.count = (uint64_t)count;
		a.attempts = (uint32_t)attempts;
		if (!push(&tmp, &a)) {
			rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
			goto out;
		}
		i++;
	}
	moat_alert_queue_free(q);
	*q = tmp;
	memset(&tmp, 0, sizeof(tmp));
	rc = 0;
out:
	moat_alert_queue_free(&tmp);
	cJSON_Delete(root);
	return rc;
}

int moat_alert_body(const struct moat_alert *a, size_t n, uint64_t dropped, const char *deployment,
		    char **out, size_t *out_len, struct moat_err *err)
{
	cJSON *root = cJSON_CreateObject();
	bool ok = root != NULL && cJSON_AddStringToObject(root, "source", "moat") &&
		  cJSON_AddStringToObject(root, "deployment", deployment ? deployment : "");
	if (ok && n == 1) {
		ok = cJSON_AddBoolToObject(root, "summary", 0) &&
		     cJSON_AddStringToObject(root, "kind", a->kind) &&
		     cJSON_AddStringToObject(root, "identity", a->identity) &&
		     cJSON_AddStringToObject(root, "reason", a->reason) &&
		     cJSON_AddStringToObject(root, "address", a->address) &&
		     cJSON_AddNumberToObject(root, "first_ms", (double)a->first_ms) &&
		     cJSON_AddNumberToObject(root, "last_ms", (double)a->last_ms) &&
		     cJSON_AddNumberToObject(root, "count", (double)a->count) &&
		     cJSON_AddNumberToObject(root, "dropped", (double)dropped);
	} else if (ok) {
		cJSON *kinds = NULL;
		uint64_t total = 0;
		ok = cJSON_AddBoolToObject(root, "summary", 1) &&
		     cJSON_AddNumberToObject(root, "alerts", (double)n) &&
		     cJSON_AddNumberToObject(root, "dropped", (double)dropped) &&
		     (kinds = cJSON_AddObjectToObject(root, "kinds")) != NULL;
		for (size_t i = 0; ok && i < n; i++) {
			total += a[i].count;
			cJSON *k = cJSON_GetObjectItemCaseSensitive(kinds, a[i].kind);
			if (k) {
				cJSON_SetNumberValue(k, k->valuedouble + (double)a[i].count);
			} else {
				ok = cJSON_AddNumberToObject(kinds, a[i].kind,
							     (double)a[i].count) != NULL;
			}
		}
		ok = ok && cJSON_AddNumberToObject(root, "events", (double)total);
	}
	if (!ok) {
		cJSON_Delete(root);
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	return to_text(root, out, out_len, err);
}
