/* moat_device.h: moat-device, the portable C99 library a device runs (src/device-core).
 * It is usable without the rest of moat: no malloc, no OS, no clock, no files. Every
 * buffer is the caller's, with an explicit size; every loop and input is bounded. Crypto
 * (streaming SHA-256, signature verification) goes through the port in
 * moat_device_port.h; time, storage and transport are the caller's.
 *
 * Three parts:
 *   1. Update verification (mdev_fw_*): a DSSE envelope and its signed manifest checked
 *      against the device's trusted keys and policy, then the image streamed through
 *      SHA-256 with the signed size as a hard bound. These are moat's firmware rules: the
 *      envelope and manifest formats are those of include/moat/manifest.h, the verdicts
 *      and their order are moat_fw_decide's (src/core/manifest.c delegates its rules here).
 *   2. The A/B trial state machine (mdev_ab_*): stage, trial boot, confirm, revert and the
 *      security floor, pure, over a few bytes of persistent storage written power-fail
 *      safe (two copies with a sequence number and CRC; a torn write leaves the other).
 *   3. The message scheme (mdev_topic_*, mdev_msg_*): the device's own topics, telemetry,
 *      status (and last will), command responses, diagnostics, update events, and a
 *      command parser and dispatcher with correlation ids, in the JSON of
 *      include/moat/messages.h and update_schema.h. These builders are moat-agent's too:
 *      src/core's moat_msg_*_build and moat_update_event_format wrap them, so a Linux
 *      device and an MCU publish the same bytes.
 *
 * Time: a device may not know the time (no RTC, no network time yet). Pass
 * MDEV_TIME_UNKNOWN as now: expiry is then judged against the newest issued_at the device
 * has verified (a signed manifest proves the time was at least that), which still refuses
 * a manifest that expired before one the device already accepted, but cannot refuse one
 * that expired only since. The same rule applies when a clock is behind.
 *
 * JSON is tokenized by jsmn (Debian's libjsmn-dev, header-only, no allocation); the
 * readers here accept only what moat's writers produce: strings without escapes or
 * control characters, integers without sign, fraction or leading zeros, no duplicate or
 * unknown fields.
 */
#ifndef MDEV_MOAT_DEVICE_H
#define MDEV_MOAT_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- limits (the same as include/moat/manifest.h) ---- */

#define MDEV_SHA256_BYTES 32
#define MDEV_FW_PAYLOAD_TYPE "application/vnd.moat.manifest.v1+json"
#define MDEV_FW_PAYLOAD_TYPE_MAX_LEN 128
#define MDEV_ENVELOPE_MAX_BYTES (32u * 1024u)
#define MDEV_MANIFEST_MAX_BYTES 2048u
#define MDEV_ENVELOPE_MAX_SIGS 8
#define MDEV_FW_SIG_MAX_BYTES 512
#define MDEV_FW_KEYID_HEX_LEN 64
#define MDEV_FW_VERSION_MAX_LEN 64
#define MDEV_DEVICE_TYPE_MAX_LEN 64
#define MDEV_ID_MAX_LEN 64
#define MDEV_FW_IMAGE_MAX_BYTES (4ull * 1024u * 1024u * 1024u)
#define MDEV_FW_TRUST_MAX_KEYS 16
#define MDEV_INT_MAX 9007199254740991LL /* 2^53 - 1 */
#define MDEV_MSG_MAX 160		/* a decision's or error's one-line reason */
#define MDEV_TIME_UNKNOWN (-1)

/* ---- semantic versions (semver.org 2.0; build metadata ignored) ---- */

bool mdev_semver_valid(const char *v);
/* 0 and *out_cmp (<0, 0, >0) when both are valid; -1 otherwise. */
int mdev_semver_compare(const char *a, const char *b, int *out_cmp);

/* [a-z0-9][a-z0-9._-]{0,max-1} */
bool mdev_name_ok(const char *name, size_t max);

/* ---- update verification ---- */

struct mdev_manifest {
	char device_type[MDEV_DEVICE_TYPE_MAX_LEN + 1];
	char version[MDEV_FW_VERSION_MAX_LEN + 1];
	int64_t security_version;
	uint64_t size;
	uint8_t sha256[MDEV_SHA256_BYTES];
	int64_t issued_at;
	int64_t expires_at;
};

enum mdev_fw_verdict {
	MDEV_FW_ACCEPT = 0,
	MDEV_FW_MALFORMED,
	MDEV_FW_BAD_PAYLOAD_TYPE,
	MDEV_FW_UNKNOWN_KEY,
	MDEV_FW_BAD_SIGNATURE,
	MDEV_FW_THRESHOLD,
	MDEV_FW_EXPIRED,
	MDEV_FW_ROLLBACK,
	MDEV_FW_WRONG_TYPE,
	MDEV_FW_DOWNGRADE,
	MDEV_FW_NOT_NEWER,
	MDEV_FW_SIZE_MISMATCH,
	MDEV_FW_HASH_MISMATCH,
};
#define MDEV_FW_VERDICT_COUNT 13

/* "accept", "malformed", "bad_payload_type", ... (moat_fw_verdict_name's names). */
const char *mdev_fw_verdict_name(enum mdev_fw_verdict v);

/* A trusted key: its keyid (SHA-256 of the DER SubjectPublicKeyInfo) and the key in the
 * form the port verifies with (both shipped ports: the DER SubjectPublicKeyInfo). */
struct mdev_trusted_key {
	uint8_t keyid[MDEV_SHA256_BYTES];
	const void *key;
	size_t key_len;
};

/* The keyid of a DER SubjectPublicKeyInfo (its SHA-256, through the port). 0 or -1. */
int mdev_keyid(const void *spki, size_t len, uint8_t out[MDEV_SHA256_BYTES]);

struct mdev_trust {
	const struct mdev_trusted_key *keys;
	size_t count;  /* <= MDEV_FW_TRUST_MAX_KEYS; keyids distinct */
	int threshold; /* 1..count */
};

enum mdev_fw_purpose {
	MDEV_FW_FOR_INSTALL = 0, /* every rule */
	MDEV_FW_FOR_BOOT = 1,	 /* signatures, device type, floor only */
};

struct mdev_fw_policy {
	enum mdev_fw_purpose purpose;
	const char *device_type;     /* required */
	const char *current_version; /* NULL: nothing installed */
	int64_t security_floor;
	int64_t now;		/* seconds since the epoch, or MDEV_TIME_UNKNOWN */
	int64_t last_issued_at; /* newest issued_at verified before (0: none) */
};

struct mdev_fw_decision {
	enum mdev_fw_verdict verdict;
	char msg[MDEV_MSG_MAX];
};

/* Scratch the decision needs, owned by the caller (about 2.9 KiB: static, stack or a
 * union with the image buffer). The PAE is built in place: the payload is decoded
 * straight into it and the manifest parsed from there. */
struct mdev_fw_work {
	unsigned char pae[MDEV_MANIFEST_MAX_BYTES + MDEV_FW_PAYLOAD_TYPE_MAX_LEN + 32];
	unsigned char sig[MDEV_FW_SIG_MAX_BYTES];
};

/* The device's decision on an envelope (len bytes of JSON, need not be NUL-terminated).
 * Order: envelope syntax (malformed), payload type, signatures over the raw payload
 * (unknown_key, bad_signature, threshold), manifest syntax, then device type, floor and,
 * for installs, rollback (issued_at), expiry, newer-than-running. On accept *out_manifest
 * (may be NULL) holds the signed manifest, else it is zeroed. */
enum mdev_fw_verdict mdev_fw_decide(const void *envelope_json, size_t len,
				    const struct mdev_trust *trust,
				    const struct mdev_fw_policy *policy, struct mdev_fw_work *work,
				    struct mdev_manifest *out_manifest,
				    struct mdev_fw_decision *out);

/* The rules after the signatures, on an already authenticated manifest (the path callers
 * with their own signature check use; mdev_fw_decide calls it). */
enum mdev_fw_verdict mdev_fw_check_policy(const struct mdev_manifest *m,
					  const struct mdev_fw_policy *policy,
					  struct mdev_fw_decision *out);

/* Parses a manifest (strict). 0 on success; -1 with the reason in msg (MDEV_MSG_MAX). */
int mdev_manifest_parse(const void *json, size_t len, struct mdev_manifest *out, char *msg);

/* Parses just the envelope's syntax (every rule of the malformed verdict), keeping
 * nothing: for fuzzing and for callers that want a cheap pre-check. */
int mdev_envelope_check(const void *json, size_t len, char *msg);

/* DSSE PAE of payload into buf; 0 and *out_len, or -1 when it does not fit. */
int mdev_dsse_pae(const char *payload_type, const unsigned char *payload, size_t payload_len,
		  unsigned char *buf, size_t size, size_t *out_len);

/* Streams the image: at most the manifest's size is ever hashed. */
struct mdev_fw_stream {
	uint64_t expected_size;
	uint64_t seen;
	uint8_t expected_sha256[MDEV_SHA256_BYTES];
	bool too_long;
	bool started;
	/* port SHA-256 state (moat_device_port.h) */
	union {
		unsigned char bytes[128];
		uint64_t align_u64;
		void *align_ptr;
	} sha;
};

int mdev_fw_stream_init(struct mdev_fw_stream *s, const struct mdev_manifest *m);
/* 0, or -1 when len would pass the signed size (nothing of it hashed; stop reading). */
int mdev_fw_stream_update(struct mdev_fw_stream *s, const void *data, size_t len);
/* accept, size_mismatch (short, or an update refused as too long) or hash_mismatch. The
 * hash verdicts finish the stream; after a size refusal call mdev_fw_stream_abort. */
enum mdev_fw_verdict mdev_fw_stream_decide(struct mdev_fw_stream *s, struct mdev_fw_decision *out);
/* Releases the port's hashing state (after init; safe at any point, and twice). */
void mdev_fw_stream_abort(struct mdev_fw_stream *s);

/* ---- A/B trial state machine ---- */

#define MDEV_AB_MAX_ATTEMPTS 1	/* a trial gets one start (moat-boot's rule) */
#define MDEV_AB_RECORD_BYTES 56 /* one copy; the store holds two */
#define MDEV_AB_STORE_BYTES (2 * MDEV_AB_RECORD_BYTES)

struct mdev_ab_state {
	char active; /* 'a' or 'b' */
	char trial;  /* the other slot, or 0 */
	int64_t attempts;
	int64_t deadline; /* 0: none yet */
	int64_t floor;
	int64_t last_issued_at;
	int64_t reverted_issued_at;
};

enum mdev_ab_pick {
	MDEV_AB_START_ACTIVE = 0,
	MDEV_AB_START_TRIAL,
	MDEV_AB_REVERTED,
};

char mdev_ab_other(char slot);
/* 0, or -1 when the state breaks an invariant (slots, ranges, trial fields). */
int mdev_ab_check(const struct mdev_ab_state *st);
/* Puts the inactive slot on trial for a verified manifest (issued_at raises
 * last_issued_at). -1: a trial is already pending, or slot is the active one. */
int mdev_ab_stage(struct mdev_ab_state *st, char slot, int64_t issued_at);
/* One boot: what to start. Counts the trial's start and sets its deadline (write the
 * state before starting it), or reverts a trial that already had its start or whose
 * deadline passed. */
enum mdev_ab_pick mdev_ab_select(struct mdev_ab_state *st, int64_t now, int64_t trial_seconds);
/* The trial slot becomes active; the floor rises to security_version. -1: no trial. */
int mdev_ab_confirm(struct mdev_ab_state *st, int64_t security_version);
/* Drops the pending trial and remembers its issued_at as reverted. */
void mdev_ab_revert(struct mdev_ab_state *st);

/* Persistent storage: MDEV_AB_STORE_BYTES at offset 0 of whatever the caller gives (a
 * flash sector, an NVS blob, a file). Writes may be torn at any byte by a power cut. */
struct mdev_ab_store {
	void *ctx;
	int (*read)(void *ctx, size_t off, void *buf, size_t len);
	int (*write)(void *ctx, size_t off, const void *buf, size_t len);
};

/* Loads the newest intact copy. 0; 1 when neither copy is intact (a fresh device:
 * *st is the initial state, slot a active); -1 on a read error. *seq (may be NULL) is the
 * loaded copy's sequence number, to pass to mdev_ab_save. */
int mdev_ab_load(const struct mdev_ab_store *store, struct mdev_ab_state *st, uint32_t *seq);
/* Writes st over the older copy with sequence *seq + 1, so a torn write leaves the newer
 * copy intact; *seq advances on success. 0 or -1. */
int mdev_ab_save(const struct mdev_ab_store *store, const struct mdev_ab_state *st, uint32_t *seq);

/* ---- topics and messages ---- */

enum mdev_topic_kind {
	MDEV_TOPIC_TELEMETRY = 0,
	MDEV_TOPIC_STATUS,
	MDEV_TOPIC_DIAGNOSTICS,
	MDEV_TOPIC_COMMAND_RESPONSES,
	MDEV_TOPIC_COMMANDS_FILTER, /* devices/{id}/commands/+ : what the device subscribes */
};

/* devices/{id}/...; 0, or -1 when id is invalid or buf too small. */
int mdev_topic_build(enum mdev_topic_kind kind, const char *id, char *buf, size_t size);

/* Text a device writes for people to read (a response's detail, diagnostics' free text):
 * len bytes of well-formed UTF-8 without a control character (C0, DEL, C1) or a bidi
 * override or isolate: the rule moat's parsers apply to these fields
 * (moat_text_display_ok in src/util, which tests/unit/test_devcore.c checks it against). */
bool mdev_text_ok(const char *s, size_t len);

struct mdev_reading {
	const char *name; /* [a-z0-9_]{1,32} */
	double value;	  /* finite */
};

/* Numbers are written as moat-agent always has: an integral value as an integer, any
 * other with the shorter of %.15g and %.17g that reads back exactly. */
struct mdev_telemetry {
	const char *device_id;
	const char *device_type;
	int64_t timestamp_ms;
	const struct mdev_reading *readings;
	size_t reading_count; /* 0..16, names distinct */
	/* "metadata": a field is written only when its flag is set (absent is not 0: moatd
	 * tells "no signal reading" from a signal of 0), the object only when one is. */
	bool has_signal_strength, has_free_heap, has_uptime_ms, has_seq;
	int64_t signal_strength; /* -1000..1000 */
	int64_t free_heap;
	int64_t uptime_ms;
	int64_t seq;
};

/* Builders: NUL-terminated JSON in buf, *out_len without the NUL; -1 when a field is
 * invalid or buf is too small (never truncated). */
int mdev_msg_telemetry(const struct mdev_telemetry *t, char *buf, size_t size, size_t *out_len);

/* {"device_id","status":"online"|"offline","timestamp","ip_address","agent_version"}. */
struct mdev_status {
	const char *device_id;
	bool online;
	bool has_timestamp; /* false for the last will, which is fixed at connect time */
	int64_t timestamp_ms;
	const char *ip_address;	   /* NULL or "": left out; else [0-9A-Za-z.:]{1,64} */
	const char *agent_version; /* NULL or "": left out; else [A-Za-z0-9._+~-]{1,31} */
};
int mdev_msg_status(const struct mdev_status *s, char *buf, size_t size, size_t *out_len);
/* Shorthands: online with a timestamp; the last will {"device_id","status":"offline"}.
 * Inline: a firmware pays for them only where it calls them. */
static inline int mdev_msg_status_online(const char *device_id, int64_t timestamp_ms,
					 const char *ip_address, const char *agent_version,
					 char *buf, size_t size, size_t *out_len)
{
	struct mdev_status s = {device_id, true, true, timestamp_ms, ip_address, agent_version};
	return mdev_msg_status(&s, buf, size, out_len);
}
static inline int mdev_msg_status_will(const char *device_id, char *buf, size_t size,
				       size_t *out_len)
{
	struct mdev_status s = {device_id, false, false, 0, NULL, NULL};
	return mdev_msg_status(&s, buf, size, out_len);
}

struct mdev_response {
	const char *device_id;
	const char *command;
	const char *status; /* [a-z_]{1,32}: accepted, completed, refused, ... */
	int64_t timestamp_ms;
	const char *id;	    /* the command's correlation id, or NULL or "" */
	const char *detail; /* NULL, "" or mdev_text_ok text of at most 200 bytes */
	int64_t interval;   /* 1..86400: included; 0: left out */
};
int mdev_msg_response(const struct mdev_response *r, char *buf, size_t size, size_t *out_len);

/* Diagnostics in moat's schema. mdev_msg_diagnostics writes what an MCU has: device_id,
 * timestamp, uptime_ms, free_heap, ip_address, mac_address, agent_version (from
 * firmware_version), interval_s, seq, queued (NULL or "" text left out; the other fields
 * are ignored). Host builds only (msg_linux.c, not compiled for MCU targets):
 * mdev_msg_diagnostics_linux adds system_uptime_s, rss_kb, load, kernel and the
 * certificate's expiry, in moat-agent's order. */
struct mdev_diagnostics {
	const char *device_id;
	int64_t timestamp_ms;
	int64_t uptime_ms; /* the firmware's (moat-agent's own) */
	int64_t system_uptime_s;
	int64_t rss_kb;
	int64_t free_heap;
	double load[3];		      /* finite, >= 0 */
	const char *ip_address;	      /* [0-9A-Za-z.:]{1,64} */
	const char *mac_address;      /* text (mdev_text_ok), at most 23 bytes */
	const char *kernel;	      /* text, at most 127 bytes */
	const char *firmware_version; /* sent as agent_version; text, at most 31 bytes */
	const char *cert_not_after;   /* text, at most 31 bytes; written with cert_days_left */
	int64_t cert_days_left;
	int64_t interval_s;
	int64_t seq;
	int64_t queued;
};
int mdev_msg_diagnostics(const struct mdev_diagnostics *d, char *buf, size_t size, size_t *out_len);
int mdev_msg_diagnostics_linux(const struct mdev_diagnostics *d, char *buf, size_t size,
			       size_t *out_len);

/* An update event on devices/{id}/diagnostics, what moatd records and rollouts count:
 * {"event":"update","stage":S,"version":V,"running":R,"reason":W,"timestamp":T}. */
enum mdev_update_stage {
	MDEV_UPD_CHECKED = 0,
	MDEV_UPD_DOWNLOADING,
	MDEV_UPD_VERIFIED,
	MDEV_UPD_INSTALLED,
	MDEV_UPD_CONFIRMED,
	MDEV_UPD_REVERTED,
	MDEV_UPD_REFUSED,
};
#define MDEV_UPD_STAGE_COUNT 7
#define MDEV_UPD_REASON_MAX_LEN 200
/* "checked", "downloading", ...; "unknown" out of range. Host builds only (msg_linux.c):
 * what moat's own parsers of update events compare against. */
const char *mdev_update_stage_name(enum mdev_update_stage st);

struct mdev_update_event {
	enum mdev_update_stage stage;
	const char *version; /* the release concerned: NULL, "" (left out) or a semver */
	const char *running; /* what runs now: NULL, "" or a semver */
	const char *reason;  /* refused, reverted: why; NULL, "" or printable ASCII <= 200 */
	int64_t timestamp;   /* the device's clock, seconds; 0..2^53-1 */
};
int mdev_msg_update_event(const struct mdev_update_event *ev, char *buf, size_t size,
			  size_t *out_len);

#define MDEV_CMD_MAX_BYTES 1024
#define MDEV_CMD_NAME_MAX_LEN 32
#define MDEV_CMD_ID_MAX_LEN 64
#define MDEV_CMD_ARGS_MAX 8
#define MDEV_DETAIL_MAX_LEN 200
#define MDEV_INTERVAL_MIN 1
#define MDEV_INTERVAL_MAX 86400

enum mdev_cmd_kind {
	MDEV_CMD_UNKNOWN = 0,
	MDEV_CMD_REBOOT,
	MDEV_CMD_UPDATE_INTERVAL,
	MDEV_CMD_DIAGNOSTICS,
	MDEV_CMD_CHECK_UPDATE,
};

struct mdev_command {
	enum mdev_cmd_kind kind;
	char name[MDEV_CMD_NAME_MAX_LEN + 1];
	char id[MDEV_CMD_ID_MAX_LEN + 1]; /* correlation id; "" when none was given */
	bool interval_given;		  /* "interval" present, whatever its type */
	bool has_interval;		  /* "interval" given as an integer */
	int64_t interval;
};

/* Splits devices/{self}/commands/{name}: 0 and name, or -1 when topic is not one of
 * self's command topics. */
int mdev_topic_command_name(const char *self, const char *topic,
			    char name[MDEV_CMD_NAME_MAX_LEN + 1]);

/* Parses a command payload (moat_msg_command_parse's rules, stricter where noted):
 * "command" optional but equal to name when given, "id" optional ([A-Za-z0-9._:-]{1,64}),
 * at most 8 other arguments named [a-z0-9_]{1,32} (as moat's builder writes them) of
 * string (printable UTF-8, mdev_text_ok, of at most 128 bytes; an escape is refused, not
 * decoded), number or boolean type, no duplicate keys. 0, or -1 with the reason in msg.
 * moat-agent parses its commands with it too (src/device/device.c). */
int mdev_cmd_parse(const char *name, const void *payload, size_t len, struct mdev_command *out,
		   char *msg);

/* What a handler reports: status ([a-z_]{1,32}: completed, accepted, failed, refused),
 * a detail, and for update_interval the interval now in effect. */
struct mdev_cmd_result {
	const char *status;
	char detail[MDEV_DETAIL_MAX_LEN + 1];
	bool has_interval;
	int64_t interval;
};

/* A NULL handler: reboot and diagnostics answer "refused"; check_update answers
 * "refused" ("no update client configured on this device"), as moat-agent does. */
struct mdev_cmd_handlers {
	void *ctx;
	void (*reboot)(void *ctx, struct mdev_cmd_result *r);
	void (*update_interval)(void *ctx, int64_t seconds, struct mdev_cmd_result *r);
	void (*diagnostics)(void *ctx, struct mdev_cmd_result *r);
	void (*check_update)(void *ctx, const struct mdev_command *cmd, struct mdev_cmd_result *r);
};

/* One command, as moat-agent handles it: the topic must be self's; a payload that does not
 * parse answers "bad_request" (with the reason), an unknown command "unknown_command", an
 * update_interval without a valid integer "interval" (1..86400) "refused"; otherwise the
 * handler decides. The response (devices/{self}/command_responses) echoes the correlation
 * id. Returns the command kind dispatched, or -1 when nothing is to be answered (not
 * self's topic) or buf is too small. */
int mdev_cmd_dispatch(const char *self, const char *topic, const void *payload, size_t len,
		      const struct mdev_cmd_handlers *h, int64_t now_ms, char *buf, size_t size,
		      size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
