/* ab.c: the A/B trial state machine (moat_device.h, part 2) and its power-fail safe
 * record. The transitions are moat-boot's rules (src/device/bootstate.c delegates here):
 * stage -> select (trial start, or revert) -> confirm | revert. The record is kept twice;
 * each save overwrites the older copy with a higher sequence number and a CRC-32, so a
 * power cut at any byte leaves the previous state readable.
 */
#include <string.h>

#include "moat_device.h"

/* Layout of one copy (little-endian): magic[4] seq[4] active trial 0 0 attempts[4]
 * deadline[8] floor[8] last_issued_at[8] reverted_issued_at[8] crc32[4] 0[4]. */
#define REC_MAGIC "MAB1"
#define REC_CRC_AT 48

char mdev_ab_other(char slot)
{
	return slot == 'a' ? 'b' : 'a';
}

static bool slot_ok(char c)
{
	return c == 'a' || c == 'b';
}

static bool in_range(int64_t v)
{
	return v >= 0 && v <= MDEV_INT_MAX;
}

int mdev_ab_check(const struct mdev_ab_state *st)
{
	if (!slot_ok(st->active) ||
	    (st->trial != 0 && (!slot_ok(st->trial) || st->trial == st->active))) {
		return -1;
	}
	if (!in_range(st->attempts) || !in_range(st->deadline) || !in_range(st->floor) ||
	    !in_range(st->last_issued_at) || !in_range(st->reverted_issued_at)) {
		return -1;
	}
	if (st->trial == 0 && (st->attempts != 0 || st->deadline != 0)) {
		return -1;
	}
	return 0;
}

int mdev_ab_stage(struct mdev_ab_state *st, char slot, int64_t issued_at)
{
	if (st->trial != 0 || !slot_ok(slot) || slot == st->active) {
		return -1;
	}
	st->trial = slot;
	st->attempts = 0;
	st->deadline = 0;
	if (issued_at > st->last_issued_at) {
		st->last_issued_at = issued_at;
	}
	return 0;
}

void mdev_ab_revert(struct mdev_ab_state *st)
{
	if (st->trial == 0) {
		return;
	}
	/* stage raised last_issued_at to the trial's issued_at: this is the failed release,
	 * which the updater must not offer again. */
	if (st->last_issued_at > st->reverted_issued_at) {
		st->reverted_issued_at = st->last_issued_at;
	}
	st->trial = 0;
	st->attempts = 0;
	st->deadline = 0;
}

enum mdev_ab_pick mdev_ab_select(struct mdev_ab_state *st, int64_t now, int64_t trial_seconds)
{
	if (st->trial == 0) {
		return MDEV_AB_START_ACTIVE;
	}
	/* A trial that already had its start, or whose deadline passed while nothing
	 * supervised it, never gets another. */
	if (st->attempts >= MDEV_AB_MAX_ATTEMPTS || (st->deadline != 0 && now >= st->deadline)) {
		mdev_ab_revert(st);
		return MDEV_AB_REVERTED;
	}
	st->attempts++;
	if (trial_seconds < 1) {
		trial_seconds = 1;
	}
	if (now < 0) {
		now = 0;
	}
	st->deadline = now > MDEV_INT_MAX - trial_seconds ? MDEV_INT_MAX : now + trial_seconds;
	return MDEV_AB_START_TRIAL;
}

int mdev_ab_confirm(struct mdev_ab_state *st, int64_t security_version)
{
	if (st->trial == 0) {
		return -1;
	}
	st->active = st->trial;
	st->trial = 0;
	st->attempts = 0;
	st->deadline = 0;
	if (security_version > st->floor) {
		st->floor = security_version;
	}
	return 0;
}

/* ---- the record ---- */

static uint32_t crc32(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++) {
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
		}
	}
	return ~c;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++) {
		p[i] = (uint8_t)(v >> (8 * i));
	}
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--) {
		v = v << 8 | p[i];
	}
	return v;
}

static void encode(const struct mdev_ab_state *st, uint32_t seq, uint8_t r[MDEV_AB_RECORD_BYTES])
{
	memset(r, 0, MDEV_AB_RECORD_BYTES);
	memcpy(r, REC_MAGIC, 4);
	put_le(r + 4, seq, 4);
	r[8] = (uint8_t)st->active;
	r[9] = (uint8_t)st->trial;
	put_le(r + 12, (uint64_t)st->attempts, 4);
	put_le(r + 16, (uint64_t)st->deadline, 8);
	put_le(r + 24, (uint64_t)st->floor, 8);
	put_le(r + 32, (uint64_t)st->last_issued_at, 8);
	put_le(r + 40, (uint64_t)st->reverted_issued_at, 8);
	put_le(r + REC_CRC_AT, crc32(r, REC_CRC_AT), 4);
}

static bool decode(const uint8_t r[MDEV_AB_RECORD_BYTES], struct mdev_ab_state *st, uint32_t *seq)
{
	if (memcmp(r, REC_MAGIC, 4) != 0 || get_le(r + REC_CRC_AT, 4) != crc32(r, REC_CRC_AT) ||
	    r[10] != 0 || r[11] != 0 || get_le(r + 52, 4) != 0) {
		return false;
	}
	memset(st, 0, sizeof(*st));
	*seq = (uint32_t)get_le(r + 4, 4);
	st->active = (char)r[8];
	st->trial = (char)r[9];
	st->attempts = (int64_t)get_le(r + 12, 4);
	/* 2^53 bounds every field, so larger values fail mdev_ab_check, not the cast. */
	uint64_t f[4];
	for (int i = 0; i < 4; i++) {
		f[i] = get_le(r + 16 + 8 * i, 8);
		if (f[i] > (uint64_t)MDEV_INT_MAX) {
			return false;
		}
	}
	st->deadline = (int64_t)f[0];
	st->floor = (int64_t)f[1];
	st->last_issued_at = (int64_t)f[2];
	st->reverted_issued_at = (int64_t)f[3];
	return mdev_ab_check(st) == 0;
}

int mdev_ab_load(const struct mdev_ab_store *store, struct mdev_ab_state *st, uint32_t *seq)
{
	uint8_t r[MDEV_AB_RECORD_BYTES];
	struct mdev_ab_state cand;
	uint32_t cseq = 0;
	uint32_t best_seq = 0;
	bool have = false;
	for (size_t copy = 0; copy < 2; copy++) {
		if (store->read(store->ctx, copy * MDEV_AB_RECORD_BYTES, r, sizeof(r)) != 0) {
			return -1;
		}
		/* A copy lives at index seq & 1; one found elsewhere was not written by us. */
		if (!decode(r, &cand, &cseq) || (cseq & 1u) != copy) {
			continue;
		}
		if (!have || (int32_t)(cseq - best_seq) > 0) {
			*st = cand;
			best_seq = cseq;
			have = true;
		}
	}
	if (seq != NULL) {
		*seq = have ? best_seq : 0;
	}
	if (!have) {
		memset(st, 0, sizeof(*st));
		st->active = 'a';
		return 1;
	}
	return 0;
}

int mdev_ab_save(const struct mdev_ab_store *store, const struct mdev_ab_state *st, uint32_t *seq)
{
	uint8_t r[MDEV_AB_RECORD_BYTES];
	if (mdev_ab_check(st) != 0) {
		return -1;
	}
	uint32_t next = *seq + 1;
	encode(st, next, r);
	if (store->write(store->ctx, (next & 1u) * MDEV_AB_RECORD_BYTES, r, sizeof(r)) != 0) {
		return -1;
	}
	*seq = next;
	return 0;
}
