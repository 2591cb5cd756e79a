/* update_event.c: the update event a device publishes on devices/{id}/diagnostics
 * (update_schema.h): the stage names, the writer the agent uses and the strict parser moatd
 * and `moat fw watch` use. The parser reads through the one strict reader (json.h), then
 * decides on "event" before judging the other fields, since the diagnostics topic carries
 * other kinds of message too (those are MOAT_ENOENT, not errors).
 *
 * Pure: no I/O, no clock (the caller passes the timestamp). cJSON allocates (parsing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/json.h"
#include "moat/update_schema.h"
#include "moat_device.h"

/* The fields of an update event, in the order the writer puts them. */
enum { EV_EVENT, EV_STAGE, EV_VERSION, EV_RUNNING, EV_REASON, EV_TIMESTAMP, EV_COUNT };
static const char *const ev_fields[EV_COUNT] = {"event",   "stage",  "version",
						"running", "reason", "timestamp"};

/* The stages and their names are moat-device's: the same words from an MCU. */
_Static_assert(MOAT_UPD_CHECKED == (int)MDEV_UPD_CHECKED &&
		       MOAT_UPD_REFUSED == (int)MDEV_UPD_REFUSED &&
		       MOAT_UPD_CONFIRMED == (int)MDEV_UPD_CONFIRMED &&
		       MOAT_UPD_REVERTED == (int)MDEV_UPD_REVERTED,
	       "one list of stages");

const char *moat_update_stage_name(enum moat_update_stage st)
{
	return mdev_update_stage_name((enum mdev_update_stage)st);
}

int moat_update_stage_parse(const char *text, enum moat_update_stage *out, struct moat_err *err)
{
	for (int i = 0; text && i < MOAT_UPDATE_STAGE_COUNT; i++) {
		if (strcmp(text, mdev_update_stage_name((enum mdev_update_stage)i)) == 0) {
			*out = (enum moat_update_stage)i;
			return 0;
		}
	}
	return moat_err_set(err, MOAT_EINVAL,
			    "update event: unknown stage (checked, downloading, verified, "
			    "installed, confirmed, reverted, refused)");
}

/* ---- writing ---- */

/* The writer is moat-device's (src/device-core): a microcontroller publishes the same
 * bytes. It refuses what the parser below would refuse (versions that are not semantic
 * versions, a reason that is not printable ASCII). */
_Static_assert(MOAT_UPDATE_STAGE_COUNT == MDEV_UPD_STAGE_COUNT, "one list of stages");
_Static_assert(MOAT_UPDATE_REASON_MAX_LEN == MDEV_UPD_REASON_MAX_LEN, "one reason limit");

int moat_update_event_format(const struct moat_update_event *ev, int64_t timestamp, char *buf,
			     size_t size, size_t *out_len, struct moat_err *err)
{
	*out_len = 0;
	if ((unsigned)ev->stage >= MOAT_UPDATE_STAGE_COUNT) {
		return moat_err_set(err, MOAT_EINVAL, "update event: unknown stage %d",
				    (int)ev->stage);
	}
	const struct mdev_update_event me = {
		.stage = (enum mdev_update_stage)ev->stage,
		.version = ev->version,
		.running = ev->running,
		.reason = ev->reason,
		.timestamp = timestamp,
	};
	if (mdev_msg_update_event(&me, buf, size, out_len) != 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "update event: a version is not a semantic version, the reason "
				    "is not printable ASCII, or %zu bytes are too few",
				    size);
	}
	return 0;
}

/* ---- parsing ---- */

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

/* The reader, in the words moatd's log has always used for these refusals. */
static int read_event(const void *json, size_t len, cJSON **out_root, struct moat_err *err)
{
	const struct moat_json_limits lim = {
		.max_bytes = MOAT_UPDATE_EVENT_MAX_BYTES,
		.max_depth = MOAT_JSON_DEPTH_MAX,
	};
	struct moat_json_fault f;
	int rc = moat_json_parse("update event", json, len, &lim, out_root, &f, err);

	switch (rc != 0 ? f.kind : MOAT_JSON_OK) {
	case MOAT_JSON_EMPTY:
	case MOAT_JSON_TOO_BIG:
		return moat_err_set(err, MOAT_EINVAL, "update event: size %zu outside 1..%u", len,
				    MOAT_UPDATE_EVENT_MAX_BYTES);
	case MOAT_JSON_SYNTAX:
	case MOAT_JSON_NOT_OBJECT:
		return moat_err_set(err, MOAT_EINVAL, "update event: not a JSON object");
	default:
		return rc;
	}
}

/* Matches root's members to ev_fields; MOAT_ENOENT when it is not an update event. */
static int event_fields(const cJSON *root, const cJSON **seen, struct moat_err *err)
{
	for (const cJSON *it = root->child; it; it = it->next) {
		for (size_t f = 0; f < EV_COUNT; f++) {
			if (strcmp(it->string, ev_fields[f]) == 0) {
				seen[f] = it;
			}
		}
	}
	if (!cJSON_IsString(seen[EV_EVENT]) || strcmp(seen[EV_EVENT]->valuestring, "update") != 0) {
		return moat_err_set(err, MOAT_ENOENT, "not an update event");
	}
	for (const cJSON *it = root->child; it; it = it->next) {
		bool known = false;
		for (size_t f = 0; f < EV_COUNT; f++) {
			known = known || strcmp(it->string, ev_fields[f]) == 0;
		}
		if (!known) {
			return moat_err_set(err, MOAT_EINVAL, "update event: unknown field %.40s",
					    it->string);
		}
	}
	if (!seen[EV_STAGE]) {
		return moat_err_set(err, MOAT_EINVAL, "update event: stage missing");
	}
	return 0;
}

/* A semantic version field, when present. */
static int take_version(const cJSON *item, const char *name, char *buf, size_t size,
			struct moat_err *err)
{
	int rc;

	if (!item) {
		return 0;
	}
	rc = take_string(item, name, buf, size, err);
	if (rc == 0 && (rc = moat_semver_check(buf, err)) != 0) {
		moat_err_prefix(err, "update event: %s", name);
	}
	return rc;
}

int moat_update_event_parse(const void *json, size_t len, struct moat_update_event *out,
			    struct moat_err *err)
{
	const cJSON *seen[EV_COUNT] = {0};
	struct moat_update_event ev;
	cJSON *root = NULL;
	char stage[32];
	int rc;

	memset(&ev, 0, sizeof(ev));
	rc = read_event(json, len, &root, err);
	if (rc == 0) {
		rc = event_fields(root, seen, err);
	}
	if (rc == 0 &&
	    (rc = take_string(seen[EV_STAGE], "stage", stage, sizeof(stage), err)) == 0) {
		rc = moat_update_stage_parse(stage, &ev.stage, err);
	}
	if (rc == 0) {
		rc = take_version(seen[EV_VERSION], "version", ev.version, sizeof(ev.version), err);
	}
	if (rc == 0) {
		rc = take_version(seen[EV_RUNNING], "running", ev.running, sizeof(ev.running), err);
	}
	if (rc == 0 && seen[EV_REASON]) {
		rc = take_string(seen[EV_REASON], "reason", ev.reason, sizeof(ev.reason), err);
	}
	if (rc == 0 && seen[EV_TIMESTAMP] && !cJSON_IsNumber(seen[EV_TIMESTAMP])) {
		rc = moat_err_set(err, MOAT_EINVAL, "update event: timestamp: not a number");
	}
	cJSON_Delete(root);
	if (rc == 0) {
		/* device and at are the caller's: from the topic and its clock */
		ev.at = out->at;
		memcpy(ev.device, out->device, sizeof(ev.device));
		*out = ev;
	}
	return rc;
}
