/* update_schema.h: the two formats of a device's updates, pure (src/core): the update event
 * a device publishes on devices/{id}/diagnostics and moatd records, and the report lines
 * moat-update --report prints for moat-agent and moat sim. The device builds both and the
 * operator's side parses them, so each has one copy here: format and parse functions on
 * caller buffers, no I/O, every parser going through the one strict reader (json.h).
 */
#ifndef MOAT_UPDATE_SCHEMA_H
#define MOAT_UPDATE_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"
#include "moat/identity.h"
#include "moat/manifest.h"

#define MOAT_UPDATE_EVENT_MAX_BYTES 2048u
#define MOAT_UPDATE_REASON_MAX_LEN 200

/* ---- the outcome of one update check ---- */

enum moat_update_outcome {
	MOAT_UPDATE_UP_TO_DATE = 0, /* the server has nothing newer (204), or only a release
				       this device already reverted (reverted_issued_at) */
	MOAT_UPDATE_STAGED,	    /* verified and staged as trial: restart through moat-boot */
	MOAT_UPDATE_REFUSED,	    /* the manifest or image was refused: result.verdict says why */
	MOAT_UPDATE_TRIAL_PENDING,  /* a staged trial has not confirmed yet: nothing done */
};

struct moat_update_result {
	enum moat_update_outcome outcome;
	enum moat_fw_verdict verdict;		   /* for MOAT_UPDATE_REFUSED */
	char version[MOAT_FW_VERSION_MAX_LEN + 1]; /* the offered version (when known) */
	char slot;				   /* the slot staged */
	uint64_t resumed_from;			   /* bytes of a previous partial download reused */
	char msg[MOAT_ERR_MSG_MAX]; /* one line for logs and the check_update response */
};

/* ---- the report of one check, as moat-update --report prints it (update_report.c) ----
 *
 * moat-agent and moat sim do not link the HTTPS client: they run moat-update --report in a
 * child process and read its standard output, one JSON object per line (at most
 * MOAT_UPDATE_REPORT_MAX_BYTES including the newline):
 *   {"stage":"downloading","version":"1.2.0","offset":0,"size":1048576}
 *   {"outcome":"staged","version":"1.2.0","slot":"b","resumed_from":0,"msg":"..."}
 *   {"outcome":"refused","verdict":"expired","version":"1.2.0","msg":"..."}
 *                        ("version" when known: an envelope refused by moat_fw_decide has none)
 *   {"outcome":"up_to_date"|"trial_pending","msg":"..."}  ("version" when known)
 *   {"outcome":"failed","msg":"..."}   (the check could not be made)
 * Progress lines come first; the outcome line is the last line. */
#define MOAT_UPDATE_REPORT_MAX_BYTES 1024u

enum moat_update_report_kind {
	MOAT_UPDATE_REPORT_DOWNLOADING = 0,
	MOAT_UPDATE_REPORT_OUTCOME,
	MOAT_UPDATE_REPORT_FAILED,
};

struct moat_update_report {
	enum moat_update_report_kind kind;
	struct moat_update_result res; /* OUTCOME: outcome, verdict, version, slot, resumed_from,
					  msg; DOWNLOADING: version; FAILED: msg */
	uint64_t offset, size;	       /* DOWNLOADING */
};

/* Writes r as one line (with '\n', NUL-terminated) into buf; *out_len its length. Checks r
 * by the parser's rules first (a msg with control characters or invalid UTF-8, or a line
 * over MOAT_UPDATE_REPORT_MAX_BYTES, is MOAT_EINVAL). Fields of res that the kind does not
 * print are ignored; an empty version is left out. */
MOAT_MUST_CHECK int moat_update_report_format(const struct moat_update_report *r, char *buf,
					      size_t size, size_t *out_len, struct moat_err *err);
/* Parses one line (len bytes, without or with its '\n'), strictly: the keys above and no
 * others, each of its type, strings within their fields' sizes. */
MOAT_MUST_CHECK int moat_update_report_parse(const char *line, size_t len,
					     struct moat_update_report *out, struct moat_err *err);

/* ---- update events (update_event.c) ---- */

enum moat_update_stage {
	MOAT_UPD_CHECKED = 0,
	MOAT_UPD_DOWNLOADING,
	MOAT_UPD_VERIFIED,
	MOAT_UPD_INSTALLED,
	MOAT_UPD_CONFIRMED,
	MOAT_UPD_REVERTED,
	MOAT_UPD_REFUSED,
};
#define MOAT_UPDATE_STAGE_COUNT 7
const char *moat_update_stage_name(enum moat_update_stage st);
MOAT_MUST_CHECK int moat_update_stage_parse(const char *text, enum moat_update_stage *out,
					    struct moat_err *err);

struct moat_update_event {
	char device[MOAT_ID_BUF_LEN];
	enum moat_update_stage stage;
	char version[MOAT_FW_VERSION_MAX_LEN + 1];   /* the release concerned; may be empty */
	char running[MOAT_FW_VERSION_MAX_LEN + 1];   /* what the device runs now; may be empty */
	char reason[MOAT_UPDATE_REASON_MAX_LEN + 1]; /* refused/reverted: why; else empty */
	int64_t at;				     /* when moatd recorded it */
};

/* Parses the JSON a device publishes on devices/{id}/diagnostics for an update event:
 *   {"event":"update","stage":"installed","version":"1.2.0","running":"1.1.0",
 *    "reason":"bad_signature","timestamp":N}
 * "event" and "stage" are required; versions must be semantic versions; reason is printable
 * ASCII; unknown or duplicate fields are refused. MOAT_ENOENT (not an error to log) when
 * the JSON is an object whose "event" is not "update". device and at are not touched
 * (the caller sets them from the topic and its clock). */
MOAT_MUST_CHECK int moat_update_event_parse(const void *json, size_t len,
					    struct moat_update_event *out, struct moat_err *err);

/* Writes the JSON of ev (NUL-terminated, no newline) into buf (size bytes), with the
 * device's clock timestamp as "timestamp": the line the agent publishes, and what
 * moat_update_event_parse reads. Empty version, running and reason are left out; device
 * and at are not written (the topic and moatd's clock carry them). MOAT_EINVAL for an
 * unknown stage or a buffer too small; *out_len the length written. */
MOAT_MUST_CHECK int moat_update_event_format(const struct moat_update_event *ev, int64_t timestamp,
					     char *buf, size_t size, size_t *out_len,
					     struct moat_err *err);

#endif
