/* bootstate.c: the boot state of a device (active slot, pending trial, security floor, the
 * last verified issued_at, the issued_at of the last reverted trial) as a strict line
 * format, and the pure state machine over it: stage -> select (trial start, or revert) ->
 * confirm | revert. No I/O and no clock: the callers (slots.c, updater.c, moat-boot) pass
 * time in and write the result atomically. Version 1 files (before reverted_issued_at)
 * are still read, so a device updated in the field keeps its state; and a state without a
 * reverted trial is still written as version 1, so a moat-boot of before version 2 keeps
 * reading what a newer image (its confirm step) wrote. Version 2 is written only once a
 * trial was reverted.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "moat/identity.h"
#include "moat/update.h"
#include "moat_device.h"

#define STATE_MAGIC_V1 "moat-boot-state 1"
#define STATE_MAGIC "moat-boot-state 2"
#define STATE_INT_MAX_DIGITS 16 /* MOAT_FW_INT_MAX has 16 digits */

/* The keys in the only order accepted; version 1 ends before K_REVERTED. */
enum { K_TYPE, K_ACTIVE, K_TRIAL, K_ATTEMPTS, K_DEADLINE, K_FLOOR, K_ISSUED, K_REVERTED, K_COUNT };
static const char *const keys[K_COUNT] = {
	"device_type", "active", "trial",	   "attempts",
	"deadline",    "floor",	 "last_issued_at", "reverted_issued_at",
};

char moat_boot_other(char slot)
{
	return slot == 'a' ? 'b' : 'a';
}

static bool slot_ok(char c)
{
	return c == 'a' || c == 'b';
}

/* A decimal integer 0..MOAT_FW_INT_MAX without sign or leading zeros. */
static int parse_uint(const char *s, size_t len, int64_t *out)
{
	int64_t v = 0;

	if (len == 0 || len > STATE_INT_MAX_DIGITS || (len > 1 && s[0] == '0')) {
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return -1;
		}
		v = v * 10 + (s[i] - '0');
	}
	if (v > MOAT_FW_INT_MAX) {
		return -1;
	}
	*out = v;
	return 0;
}

static struct mdev_ab_state to_ab(const struct moat_boot_state *st);

/* The invariants are moat-device's (mdev_ab_check: slots, ranges, trial fields): a state
 * an MCU's record would refuse is refused here too. The device type is this file's own. */
static int check(const struct moat_boot_state *st, struct moat_err *err)
{
	struct moat_err tmp;
	struct mdev_ab_state ab = to_ab(st);

	if (moat_device_type_check(st->device_type, &tmp) != 0) {
		return moat_err_set(err, MOAT_EINVAL, "boot state: device_type: %s", tmp.msg);
	}
	if (mdev_ab_check(&ab) == 0) {
		return 0;
	}
	/* which rule, for the message */
	if (!slot_ok(st->active)) {
		return moat_err_set(err, MOAT_EINVAL, "boot state: active: not a or b");
	}
	if (st->trial != 0 && (!slot_ok(st->trial) || st->trial == st->active)) {
		return moat_err_set(err, MOAT_EINVAL, "boot state: trial: not the inactive slot");
	}
	if (st->trial == 0 && (st->attempts != 0 || st->deadline != 0)) {
		return moat_err_set(err, MOAT_EINVAL,
				    "boot state: attempts/deadline without trial");
	}
	return moat_err_set(err, MOAT_EINVAL, "boot state: integer out of range");
}

int moat_boot_state_parse(const void *text, size_t len, struct moat_boot_state *out,
			  struct moat_err *err)
{
	const char *p = text;
	const char *end = p + len;
	struct moat_boot_state st;
	int nkeys = K_COUNT;
	int rc = MOAT_EINVAL;

	memset(&st, 0, sizeof(st));
	memset(out, 0, sizeof(*out));
	if (len > MOAT_BOOT_STATE_MAX_BYTES) {
		rc = moat_err_set(err, MOAT_EINVAL, "boot state: larger than %u bytes",
				  MOAT_BOOT_STATE_MAX_BYTES);
		goto out;
	}
	for (int line = -1; line < nkeys; line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n;

		if (nl == NULL) {
			rc = moat_err_set(err, MOAT_EINVAL, "boot state: truncated at line %d",
					  line + 2);
			goto out;
		}
		n = (size_t)(nl - p);
		if (line < 0) {
			if (n == strlen(STATE_MAGIC_V1) && memcmp(p, STATE_MAGIC_V1, n) == 0) {
				nkeys = K_REVERTED; /* reverted_issued_at reads as 0 */
			} else if (n != strlen(STATE_MAGIC) || memcmp(p, STATE_MAGIC, n) != 0) {
				rc = moat_err_set(err, MOAT_EINVAL, "boot state: bad header");
				goto out;
			}
		} else {
			size_t kl = strlen(keys[line]);
			const char *v = p + kl + 1;
			size_t vl;

			if (n <= kl || memcmp(p, keys[line], kl) != 0 || p[kl] != '=') {
				rc = moat_err_set(err, MOAT_EINVAL,
						  "boot state: expected %s=", keys[line]);
				goto out;
			}
			vl = n - kl - 1;
			switch (line) {
			case K_TYPE:
				if (vl > MOAT_DEVICE_TYPE_MAX_LEN || memchr(v, '\0', vl) != NULL) {
					rc = moat_err_set(err, MOAT_EINVAL,
							  "boot state: device_type: too long");
					goto out;
				}
				memcpy(st.device_type, v, vl);
				st.device_type[vl] = '\0';
				break;
			case K_ACTIVE:
			case K_TRIAL: {
				char c = vl == 1 ? v[0] : 0;
				bool ok = slot_ok(c) || (line == K_TRIAL && c == '-');

				if (!ok) {
					rc = moat_err_set(err, MOAT_EINVAL,
							  "boot state: %s: not a slot", keys[line]);
					goto out;
				}
				if (line == K_ACTIVE) {
					st.active = c;
				} else {
					st.trial = c == '-' ? 0 : c;
				}
				break;
			}
			default: {
				int64_t *dst = line == K_ATTEMPTS   ? &st.attempts
					       : line == K_DEADLINE ? &st.deadline
					       : line == K_FLOOR    ? &st.floor
					       : line == K_ISSUED   ? &st.last_issued_at
								    : &st.reverted_issued_at;
				if (parse_uint(v, vl, dst) != 0) {
					rc = moat_err_set(err, MOAT_EINVAL,
							  "boot state: %s: not an integer",
							  keys[line]);
					goto out;
				}
				break;
			}
			}
		}
		p = nl + 1;
	}
	if (p != end) {
		rc = moat_err_set(err, MOAT_EINVAL, "boot state: trailing data");
		goto out;
	}
	rc = check(&st, err);
	if (rc != 0) {
		goto out;
	}
	*out = st;
	rc = 0;
out:
	return rc;
}

int moat_boot_state_format(const struct moat_boot_state *st, char *buf, size_t size,
			   size_t *out_len, struct moat_err *err)
{
	int rc = check(st, err);
	int n;

	if (rc != 0) {
		return rc;
	}
	bool v2 = st->reverted_issued_at != 0;
	n = snprintf(buf, size,
		     "%s\ndevice_type=%s\nactive=%c\ntrial=%c\nattempts=%" PRId64
		     "\ndeadline=%" PRId64 "\nfloor=%" PRId64 "\nlast_issued_at=%" PRId64 "\n",
		     v2 ? STATE_MAGIC : STATE_MAGIC_V1, st->device_type, st->active,
		     st->trial ? st->trial : '-', st->attempts, st->deadline, st->floor,
		     st->last_issued_at);
	if (n >= 0 && (size_t)n < size && v2) {
		int k = snprintf(buf + n, size - (size_t)n, "reverted_issued_at=%" PRId64 "\n",
				 st->reverted_issued_at);
		n = k < 0 ? k : n + k;
	}
	if (n < 0 || (size_t)n >= size) {
		return moat_err_set(err, MOAT_EINVAL, "boot state: buffer too small");
	}
	*out_len = (size_t)n;
	return 0;
}

/* The transitions are moat-device's (src/device-core/ab.c): the same machine an MCU runs.
 * moat_boot_state carries the device type besides; the rest maps field for field. */
static struct mdev_ab_state to_ab(const struct moat_boot_state *st)
{
	struct mdev_ab_state ab = {
		.active = st->active,
		.trial = st->trial,
		.attempts = st->attempts,
		.deadline = st->deadline,
		.floor = st->floor,
		.last_issued_at = st->last_issued_at,
		.reverted_issued_at = st->reverted_issued_at,
	};
	return ab;
}

static void from_ab(const struct mdev_ab_state *ab, struct moat_boot_state *st)
{
	st->active = ab->active;
	st->trial = ab->trial;
	st->attempts = ab->attempts;
	st->deadline = ab->deadline;
	st->floor = ab->floor;
	st->last_issued_at = ab->last_issued_at;
	st->reverted_issued_at = ab->reverted_issued_at;
}

_Static_assert(MOAT_BOOT_MAX_ATTEMPTS == MDEV_AB_MAX_ATTEMPTS, "one trial rule");

int moat_boot_stage(struct moat_boot_state *st, char slot, const struct moat_manifest *m,
		    struct moat_err *err)
{
	struct mdev_ab_state ab = to_ab(st);
	if (st->trial != 0) {
		return moat_err_set(err, MOAT_ESTATE, "slot %c is already on trial", st->trial);
	}
	if (mdev_ab_stage(&ab, slot, m->issued_at) != 0) {
		return moat_err_set(err, MOAT_EINVAL, "cannot stage the active slot");
	}
	from_ab(&ab, st);
	return 0;
}

enum moat_boot_pick moat_boot_select(struct moat_boot_state *st, int64_t now, int64_t trial_seconds)
{
	struct mdev_ab_state ab = to_ab(st);
	enum mdev_ab_pick pick = mdev_ab_select(&ab, now, trial_seconds);
	from_ab(&ab, st);
	return pick == MDEV_AB_START_TRIAL ? MOAT_BOOT_START_TRIAL
	       : pick == MDEV_AB_REVERTED  ? MOAT_BOOT_REVERTED
					   : MOAT_BOOT_START_ACTIVE;
}

int moat_boot_confirm(struct moat_boot_state *st, const struct moat_manifest *m,
		      struct moat_err *err)
{
	struct mdev_ab_state ab = to_ab(st);
	if (mdev_ab_confirm(&ab, m->security_version) != 0) {
		return moat_err_set(err, MOAT_ESTATE, "no slot is on trial");
	}
	from_ab(&ab, st);
	return 0;
}

void moat_boot_revert(struct moat_boot_state *st)
{
	struct mdev_ab_state ab = to_ab(st);
	mdev_ab_revert(&ab);
	from_ab(&ab, st);
}
