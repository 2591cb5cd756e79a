/* update.h: the device side of signed updates (src/device/): A/B slots, the boot state,
 * the updater that fetches a release from moatd over mutual TLS, and what moat-boot needs to
 * start only verified images.
 *
 * The device state directory (created at provisioning by moat_slots_provision):
 *   boot.state            the boot state (format below), 0600, always written atomically
 *   boot.lock             flock()ed around every read-modify-write of boot.state
 *   trust.json            the deployment's firmware trust file (moat_fw_trust_parse)
 *   slots/{a,b}/image     the image of a slot (0700: on Linux it is the agent's executable)
 *   slots/{a,b}/envelope.json   its signed envelope
 *   slots/{a,b}/image.part, envelope.part   a download in progress (inactive slot only)
 *
 * boot.state is a small line format, parsed strictly (every key exactly once, in order,
 * decimal integers without sign or leading zeros, at most MOAT_BOOT_STATE_MAX_BYTES):
 *   moat-boot-state 1|2
 *   device_type=<type>
 *   active=a|b
 *   trial=-|a|b           a staged slot that has not confirmed yet ("-": none)
 *   attempts=<n>          starts of the trial so far
 *   deadline=<t>          wall-clock second by which the running trial must confirm (0: none)
 *   floor=<n>             lowest security_version allowed; rises only on confirmation
 *   last_issued_at=<t>    issued_at of the last manifest verified for install
 *   reverted_issued_at=<t>  (version 2) issued_at of the last trial that was reverted: the
 *                         updater does not stage a release issued at or before it again
 * The header says "moat-boot-state 1" and reverted_issued_at is absent (read as 0) until a
 * trial is reverted; then it is "moat-boot-state 2" with the key. So a state that never saw
 * a revert stays readable by a moat-boot that knows only version 1.
 *
 * Power-fail safety: the active slot is never written. A download goes to the inactive
 * slot's *.part files; the image and envelope are renamed into place (fsync'd) before one
 * atomic write of boot.state names the slot as trial; so after a crash at any point the
 * state names either the old active slot alone, or the old active slot plus a complete
 * trial slot. A trial that crashes, exits without confirming, misses its deadline, fails
 * verification, or was started MOAT_BOOT_MAX_ATTEMPTS times is reverted.
 */
#ifndef MOAT_UPDATE_H
#define MOAT_UPDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"
#include "moat/identity.h"
#include "moat/manifest.h"
#include "moat/update_schema.h" /* struct moat_update_result, the report lines */

#define MOAT_BOOT_STATE_FILE "boot.state"
#define MOAT_BOOT_LOCK_FILE "boot.lock"
#define MOAT_BOOT_TRUST_FILE "trust.json"
#define MOAT_BOOT_STATE_MAX_BYTES 1024u
#define MOAT_BOOT_MAX_ATTEMPTS 1 /* a trial gets one start: no confirm, no second go */
#define MOAT_BOOT_TRIAL_SECONDS_DEFAULT 120
#define MOAT_BOOT_RESTART_EXIT 75 /* the image asks moat-boot to start again (EX_TEMPFAIL) */
#define MOAT_UPDATE_URL_MAX_LEN 512

struct moat_boot_state {
	char device_type[MOAT_DEVICE_TYPE_MAX_LEN + 1];
	char active; /* 'a' or 'b' */
	char trial;  /* 0: none, else 'a' or 'b' (never active) */
	int64_t attempts;
	int64_t deadline;
	int64_t floor;
	int64_t last_issued_at;
	int64_t reverted_issued_at;
};

/* ---- boot.state: pure parser, writer and state machine (no I/O, time passed in) ---- */

/* Parses len bytes strictly (see above). On failure *out is zeroed. */
MOAT_MUST_CHECK int moat_boot_state_parse(const void *text, size_t len, struct moat_boot_state *out,
					  struct moat_err *err);
/* Writes the canonical text into buf (size bytes); *out_len its length. Validates first. */
MOAT_MUST_CHECK int moat_boot_state_format(const struct moat_boot_state *st, char *buf, size_t size,
					   size_t *out_len, struct moat_err *err);
/* The other slot of s ('a' <-> 'b'). */
char moat_boot_other(char slot);

/* Stages slot (the inactive one) as trial for a verified manifest: trial = slot, attempts 0,
 * no deadline, last_issued_at raised to m's. Refuses when a trial is pending or slot is the
 * active one. The floor does not move. */
MOAT_MUST_CHECK int moat_boot_stage(struct moat_boot_state *st, char slot,
				    const struct moat_manifest *m, struct moat_err *err);

enum moat_boot_pick {
	MOAT_BOOT_START_ACTIVE = 0,
	MOAT_BOOT_START_TRIAL, /* attempts counted and deadline set in *st: write it first */
	MOAT_BOOT_REVERTED,    /* the trial was dropped (attempts or deadline): write it, then
				  start the active slot */
};
/* Which slot to start at time now. Changes *st as the enum says. */
enum moat_boot_pick moat_boot_select(struct moat_boot_state *st, int64_t now,
				     int64_t trial_seconds);
/* The trial confirmed (verified manifest m is its own): it becomes active and the floor
 * rises to m's security_version. Refuses without a pending trial. */
MOAT_MUST_CHECK int moat_boot_confirm(struct moat_boot_state *st, const struct moat_manifest *m,
				      struct moat_err *err);
/* Drops a pending trial (crash, deadline, failed verification) and records its issued_at
 * (last_issued_at) in reverted_issued_at. No-op without one. */
void moat_boot_revert(struct moat_boot_state *st);

/* ---- the state directory (slots.c) ---- */

/* Reads and parses <dir>/boot.state. */
MOAT_MUST_CHECK int moat_slots_load(const char *dir, struct moat_boot_state *out,
				    struct moat_err *err);
/* Writes <dir>/boot.state atomically (0600, fsync, rename, fsync dir). */
MOAT_MUST_CHECK int moat_slots_save(const char *dir, const struct moat_boot_state *st,
				    struct moat_err *err);
/* Takes the exclusive lock of the state directory; *out_fd to pass to moat_slots_unlock. */
MOAT_MUST_CHECK int moat_slots_lock(const char *dir, int *out_fd, struct moat_err *err);
void moat_slots_unlock(int fd);
/* "<dir>/slots/<slot>/<file>" into buf. */
MOAT_MUST_CHECK int moat_slots_path(char *buf, size_t size, const char *dir, char slot,
				    const char *file, struct moat_err *err);
/* <dir>/trust.json. Caller frees with moat_fw_trust_free. */
MOAT_MUST_CHECK int moat_slots_trust(const char *dir, struct moat_fw_trust *out,
				     struct moat_err *err);

/* Provisions a device state directory: copies the trust file, installs image + envelope
 * into slot a (verified for install against the trust file with floor 0, now as given),
 * writes boot.state with active a, floor = the manifest's security_version. Refuses an
 * existing boot.state. */
MOAT_MUST_CHECK int moat_slots_provision(const char *dir, const char *device_type,
					 const char *trust_path, const char *image_path,
					 const char *envelope_path, int64_t now,
					 struct moat_err *err);

/* Verifies slot's envelope (MOAT_FW_FOR_BOOT: signatures, device type, floor) and image and
 * returns a sealed memfd holding the verified bytes in *out_fd (-1: not wanted), ready for
 * fexecve, so what runs is what was verified even if the file changes afterwards.
 * A refusal is MOAT_EVERIFY with the verdict in the message; *out_manifest (may be NULL)
 * receives the manifest on success. */
MOAT_MUST_CHECK int moat_slots_verify(const char *dir, const struct moat_boot_state *st, char slot,
				      int *out_fd, struct moat_manifest *out_manifest,
				      struct moat_err *err);

/* One boot (what moat-boot does before every start, and the simulator at every virtual
 * reboot), under the lock: picks the slot with moat_boot_select at time now, saves the
 * state when it changed, verifies the slot (a trial that does not verify is reverted and
 * saved, and the active slot is verified instead). On success *out_slot is the slot to
 * start, *out_trial whether it starts on trial, *out_fd (when out_fd is not NULL) the sealed
 * memfd of its verified image and *out_manifest (may be NULL) its manifest; *out_reverted
 * (may be NULL) says that a trial was dropped, with the reason in reverted_why (may be
 * NULL, why_size bytes; "" when nothing was dropped), also when the call then fails. A
 * failure to verify the active slot is MOAT_EVERIFY ("refusing to start: ..."): nothing
 * may start. */
MOAT_MUST_CHECK int moat_boot_prepare(const char *dir, int64_t now, int64_t trial_seconds,
				      char *out_slot, bool *out_trial, int *out_fd,
				      struct moat_manifest *out_manifest, bool *out_reverted,
				      char *reverted_why, size_t why_size, struct moat_err *err);

/* The confirm step (the image calls `moat-boot --confirm`): under the lock, verifies the
 * trial slot and confirms it (raising the floor). MOAT_ESTATE without a pending trial. */
MOAT_MUST_CHECK int moat_slots_confirm(const char *dir, struct moat_manifest *out_manifest,
				       struct moat_err *err);

/* ---- the updater (updater.c, fetch.c) ---- */

struct moat_update_conf {
	const char *state_dir;	/* the device state directory */
	const char *server_url; /* "https://host:port" of moatd, no trailing slash */
	const char *ca_file;	/* the deployment CA: the only CA trusted for the server */
	const char *cert_file;	/* the device's certificate and key (mutual TLS) */
	const char *key_file;
	int64_t now;	      /* the device's wall clock (0: read it) */
	long timeout_seconds; /* whole-transfer limit per request (0: 300) */
	/* Called once when the image download starts (offset: bytes reused from a partial
	 * download), after the envelope was accepted and only when bytes remain to be
	 * fetched; may be NULL. Runs under the state directory's lock. */
	void (*on_download)(void *ctx, const struct moat_manifest *m, uint64_t offset);
	void *on_download_ctx;
};

/* One update check: asks the server for the newest envelope, decides with moat_fw_decide
 * (stored floor, last issued_at, running version, device type, trust), downloads the image
 * into the inactive slot while hashing it (resuming a partial download of the same
 * envelope, never accepting more than the manifest's size), verifies it and stages it as
 * the trial. Returns 0 with out->outcome for every answer of the server, including
 * refusals; a negative code when the check could not be made (TLS, network, an
 * interrupted download: the partial file is kept for the next check, state dir). Never
 * changes the active slot. Takes the state directory's lock for its whole run. */
MOAT_MUST_CHECK int moat_update_check(const struct moat_update_conf *conf,
				      struct moat_update_result *out, struct moat_err *err);

#endif
