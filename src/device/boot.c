/* boot.c: one boot of a device, as moat-boot does it before every start of the image and
 * the simulator at every virtual reboot: pick the slot (the state machine in bootstate.c),
 * write the state before anything starts, verify the slot, and fall back to the active
 * slot when a trial does not verify. The caller logs what happened (out_reverted, why).
 */
#include <stdio.h>
#include <string.h>

#include "moat/update.h"

static void say_why(char *why, size_t size, const char *text)
{
	if (why != NULL && size > 0) {
		snprintf(why, size, "%s", text);
	}
}

int moat_boot_prepare(const char *dir, int64_t now, int64_t trial_seconds, char *out_slot,
		      bool *out_trial, int *out_fd, struct moat_manifest *out_manifest,
		      bool *out_reverted, char *reverted_why, size_t why_size, struct moat_err *err)
{
	struct moat_boot_state st;
	int lock = -1;
	int rc;

	*out_slot = 0;
	*out_trial = false;
	if (out_fd != NULL) {
		*out_fd = -1;
	}
	if (out_reverted != NULL) {
		*out_reverted = false;
	}
	say_why(reverted_why, why_size, "");
	rc = moat_slots_lock(dir, &lock, err);
	if (rc == 0) {
		rc = moat_slots_load(dir, &st, err);
	}
	if (rc != 0) {
		goto out;
	}
	struct moat_boot_state before = st;
	enum moat_boot_pick pick = moat_boot_select(&st, now, trial_seconds);
	if (pick != MOAT_BOOT_START_ACTIVE) {
		/* Written before the start: a trial start that is not on disk could be
		 * repeated forever by power cuts. */
		rc = moat_slots_save(dir, &st, err);
		if (rc != 0) {
			goto out;
		}
	}
	if (pick == MOAT_BOOT_REVERTED) {
		if (out_reverted != NULL) {
			*out_reverted = true;
		}
		say_why(reverted_why, why_size,
			before.attempts >= MOAT_BOOT_MAX_ATTEMPTS
				? "trial started before and did not confirm"
				: "trial deadline passed without confirmation");
	}
	if (pick == MOAT_BOOT_START_TRIAL) {
		struct moat_err verr;

		if (moat_slots_verify(dir, &st, st.trial, out_fd, out_manifest, &verr) == 0) {
			*out_slot = st.trial;
			*out_trial = true;
			goto out;
		}
		moat_boot_revert(&st);
		rc = moat_slots_save(dir, &st, err);
		if (rc != 0) {
			goto out;
		}
		if (out_reverted != NULL) {
			*out_reverted = true;
		}
		say_why(reverted_why, why_size, verr.msg);
	}
	*out_slot = st.active;
	*out_trial = false;
	rc = moat_slots_verify(dir, &st, st.active, out_fd, out_manifest, err);
	if (rc != 0) {
		moat_err_prefix(err, "refusing to start");
	}
out:
	moat_slots_unlock(lock);
	return rc;
}
