/* events.c: what moatd understands of devices' update reports: the strict parser of the
 * JSON a device publishes on devices/{id}/diagnostics for an update event (a pure function,
 * shared by moatd and the CLI). The stage names are the registry's, which stores them.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "moat/update_event.h"

/* Copies a string field into buf; refuses wrong types, overlong and non-printable text. */
static int take_string(const cJSON *item, const char *name, char *buf, size_t size,
		       struct moat_err *err)
{
	if (!cJSON_IsString(item) || !item->valuestring) {
		return moat_err_set(err, MOAT_EINVAL, "update event: %s: not a string", name);
	}
	const char *s = item->valuestring;
	size_t len = strlen(s);
	if (len >= size) {
		return moat_err_set(err, MOAT_EINVAL, "update event: %s: longer than %zu bytes",
				    name, size - 1);
	}
	for (size_t i = 0; i < len; i++) {
		if (s[i] < 0x20 || s[i] > 0x7e) {
			return moat_err_set(err, MOAT_EINVAL,
					    "update event: %s: not printable ASCII", name);
		}
	}
	memcpy(buf, s, len + 1);
	return 0;
}

int moat_update_event_parse(const void *json, size_t len, struct moat_update_event *out,
			    struct moat_err *err)
{
	static const char *const fields[] = {"event",	"stage",  "version",
					     "running", "reason", "timestamp"};
	enum { NFIELDS = sizeof(fields) / sizeof(fields[0]) };
	int rc = MOAT_EINVAL;
	cJSON *root = NULL;
	char device[MOAT_ID_BUF_LEN];
	int64_t at = out->at;
	memcpy(device, out->device, sizeof(device));
	struct moat_update_event ev;
	memset(&ev, 0, sizeof(ev));

	if (len == 0 || len > MOAT_UPDATE_EVENT_MAX_BYTES) {
		rc = moat_err_set(err, MOAT_EINVAL, "update event: size %zu outside 1..%u", len,
				  MOAT_UPDATE_EVENT_MAX_BYTES);
		goto out;
	}
	root = cJSON_ParseWithLength(json, len);
	if (!root || !cJSON_IsObject(root)) {
		rc = moat_err_set(err, MOAT_EINVAL, "update event: not a JSON object");
		goto out;
	}
	const cJSON *seen[NFIELDS] = {0};
	for (const cJSON *it = root->child; it; it = it->next) {
		size_t f = 0;
		while (f < NFIELDS && (!it->string || strcmp(it->string, fields[f]) != 0)) {
			f++;
		}
		if (f == NFIELDS) {
			/* A diagnostics message of another kind carries other fields: decide on
			 * "event" first, below, before calling this an error. */
			continue;
		}
		if (seen[f]) {
			rc = moat_err_set(err, MOAT_EINVAL, "update event: duplicate field %s",
					  fields[f]);
			goto out;
		}
		seen[f] = it;
	}
	if (!cJSON_IsString(seen[0]) || strcmp(seen[0]->valuestring, "update") != 0) {
		rc = moat_err_set(err, MOAT_ENOENT, "not an update event");
		goto out;
	}
	for (const cJSON *it = root->child; it; it = it->next) {
		bool known = false;
		for (size_t f = 0; f < NFIELDS; f++) {
			known = known || (it->string && strcmp(it->string, fields[f]) == 0);
		}
		if (!known) {
			rc = moat_err_set(err, MOAT_EINVAL, "update event: unknown field %.40s",
					  it->string ? it->string : "?");
			goto out;
		}
	}
	char stage[32];
	if (!seen[1]) {
		rc = moat_err_set(err, MOAT_EINVAL, "update event: stage missing");
		goto out;
	}
	if ((rc = take_string(seen[1], "stage", stage, sizeof(stage), err)) != 0 ||
	    (rc = moat_update_stage_parse(stage, &ev.stage, err)) != 0) {
		goto out;
	}
	if (seen[2] &&
	    (rc = take_string(seen[2], "version", ev.version, sizeof(ev.version), err)) != 0) {
		goto out;
	}
	if (seen[2] && (rc = moat_semver_check(ev.version, err)) != 0) {
		moat_err_prefix(err, "update event: version");
		goto out;
	}
	if (seen[3] &&
	    (rc = take_string(seen[3], "running", ev.running, sizeof(ev.running), err)) != 0) {
		goto out;
	}
	if (seen[3] && (rc = moat_semver_check(ev.running, err)) != 0) {
		moat_err_prefix(err, "update event: running");
		goto out;
	}
	if (seen[4] &&
	    (rc = take_string(seen[4], "reason", ev.reason, sizeof(ev.reason), err)) != 0) {
		goto out;
	}
	if (seen[5] && !cJSON_IsNumber(seen[5])) {
		rc = moat_err_set(err, MOAT_EINVAL, "update event: timestamp: not a number");
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(root);
	if (rc == 0) {
		*out = ev;
		memcpy(out->device, device, sizeof(device));
		out->at = at;
	}
	return rc;
}
