/* releases.c: what the server decides about releases: which devices a rollout includes (a
 * percentage through a stable bucket per device, or the release's device list) and which
 * release is the newest, by semantic version, a device is offered. The rows themselves
 * are the registry's (moat_registry_release_*).
 */
#include <string.h>

#include <openssl/evp.h>

#include "moat/release.h"

unsigned moat_rollout_bucket(const uint8_t sha256[MOAT_SHA256_BYTES], const char *device_id)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	/* A failure of SHA-256 itself cannot be reported through this signature; bucket 99
	 * keeps the device out of every partial rollout rather than in it. */
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, sha256, MOAT_SHA256_BYTES) != 1 ||
	    EVP_DigestUpdate(ctx, device_id, strlen(device_id)) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &md_len) != 1 || md_len < 8) {
		EVP_MD_CTX_free(ctx);
		return MOAT_ROLLOUT_PERCENT_MAX - 1;
	}
	EVP_MD_CTX_free(ctx);
	uint64_t v = 0;
	for (int i = 0; i < 8; i++) {
		v = (v << 8) | md[i];
	}
	return (unsigned)(v % MOAT_ROLLOUT_PERCENT_MAX);
}

int moat_release_includes(struct moat_registry *reg, const struct moat_release *r,
			  const char *device_id, bool *out, struct moat_err *err)
{
	*out = false;
	struct moat_rollout_row ro;
	bool has_rollout = false;
	int rc = moat_registry_rollout_of_release(reg, r->sha256_hex, &ro, &has_rollout, err);
	if (rc != 0) {
		return rc;
	}
	if (has_rollout) {
		/* the rollout alone decides: offered only while running (or done), and only to
		 * a device one of its started phases took */
		if (ro.state != MOAT_ROLLOUT_RUNNING && ro.state != MOAT_ROLLOUT_COMPLETED) {
			return 0;
		}
		int phase = -1;
		bool member = false;
		rc = moat_registry_rollout_member(reg, ro.id, device_id, &phase, &member, err);
		*out = rc == 0 && member && phase <= ro.phase;
		return rc;
	}
	if (r->rollout_percent >= 0) {
		uint8_t digest[MOAT_SHA256_BYTES];
		if (moat_hex_decode(r->sha256_hex, digest, sizeof(digest)) != 0) {
			return moat_err_set(err, MOAT_EDB, "registry: release %.64s: bad sha256",
					    r->sha256_hex);
		}
		*out = moat_rollout_bucket(digest, device_id) < (unsigned)r->rollout_percent;
		return 0;
	}
	return moat_registry_release_lists(reg, r->sha256_hex, device_id, out, err);
}

struct newest_ctx {
	struct moat_registry *reg;
	const char *device_id;
	struct moat_release *best;
	bool found;
	struct moat_err *err;
};

static int newest_cb(const struct moat_release *r, void *vctx)
{
	struct newest_ctx *c = vctx;
	int rc;
	if (c->device_id) {
		bool inc = false;
		if ((rc = moat_release_includes(c->reg, r, c->device_id, &inc, c->err)) != 0) {
			return rc;
		}
		if (!inc) {
			return 0;
		}
	}
	if (c->found) {
		int cmp = 0;
		if ((rc = moat_semver_compare(r->version, c->best->version, &cmp, c->err)) != 0) {
			return rc;
		}
		if (cmp <= 0) {
			return 0;
		}
	}
	*c->best = *r;
	c->found = true;
	return 0;
}

int moat_release_newest(struct moat_registry *reg, const char *device_type, const char *device_id,
			struct moat_release *out, bool *out_found, struct moat_err *err)
{
	struct newest_ctx c = {reg, device_id, out, false, err};
	memset(out, 0, sizeof(*out));
	*out_found = false;
	int rc = moat_registry_release_foreach(reg, device_type, newest_cb, &c, err);
	if (rc != 0) {
		memset(out, 0, sizeof(*out));
		return rc;
	}
	*out_found = c.found;
	return 0;
}
