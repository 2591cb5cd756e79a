/* check_fw.c: firmware checks of the static audit: the trust list, releases, what the
 * devices run, and the release files moatd serves against the registry's releases. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "audit_internal.h"
#include "moat/codec.h"
#include "moat/fsutil.h"
#include "moat/manifest.h"
#include "moat/update_schema.h"

#define CHECKLIST_FW "Firmware: signed by a quorum, current, no rollback"
#define TRUST_REL "firmware/keys/trust.json"

const struct moat_audit_check audit_fw_threshold = {
	"fw.threshold", MOAT_AUDIT_HIGH, "firmware needs at least 2 signatures (trust threshold)",
	CHECKLIST_FW, MOAT_OWASP_I4};
const struct moat_audit_check audit_fw_revoked_key = {"fw.revoked_key", MOAT_AUDIT_CRITICAL,
						      "no revoked signing key is in the trust list",
						      CHECKLIST_FW, MOAT_OWASP_I4};
const struct moat_audit_check audit_fw_release_expiry = {
	"fw.release_expiry", MOAT_AUDIT_MEDIUM,
	"the newest release of each type does not expire within the window", CHECKLIST_FW,
	MOAT_OWASP_I4};
const struct moat_audit_check audit_fw_below_floor = {
	"fw.below_floor", MOAT_AUDIT_HIGH,
	"no device runs a release below its type's current security version", CHECKLIST_FW,
	MOAT_OWASP_I5};
const struct moat_audit_check audit_fw_not_offered = {
	"fw.not_offered", MOAT_AUDIT_MEDIUM, "no device runs a release that is no longer offered",
	CHECKLIST_FW, MOAT_OWASP_I5};
const struct moat_audit_check audit_fw_reverted = {
	"fw.reverted", MOAT_AUDIT_MEDIUM,
	"no device reverted the newest release of its type (registry update events)", CHECKLIST_FW,
	MOAT_OWASP_I4};
const struct moat_audit_check audit_drift_releases = {
	"drift.releases", MOAT_AUDIT_CRITICAL,
	"moatd's release store holds each registry release, byte for byte",
	"Drift: every file derived from the registry matches it", MOAT_OWASP_I4};

static int trust(struct audit_ctx *a)
{
	char path[PATH_MAX], title[1024], ev[1024];
	char *text = NULL;
	size_t len = 0;
	struct moat_err e;
	int rc;
	if ((rc = audit_ran(a, &audit_fw_threshold)) != 0 ||
	    (rc = audit_ran(a, &audit_fw_revoked_key)) != 0 ||
	    (rc = moat_deploy_path(a->d, path, sizeof(path), TRUST_REL, a->err)) != 0) {
		return rc;
	}
	if (!moat_fs_exists(path)) {
		return audit_add(a, &audit_fw_threshold, MOAT_AUDIT_LOW,
				 "no firmware trust list: signed updates are not set up", NULL,
				 "moat fw keygen (twice), then moat fw trust --threshold 2",
				 TRUST_REL, 0);
	}
	if (moat_fs_read_all(path, 1024 * 1024, &text, &len, &e) != 0) {
		return audit_cannot(a, &audit_fw_threshold, e.msg);
	}
	struct moat_fw_trust t;
	memset(&t, 0, sizeof(t));
	if (moat_fw_trust_parse(text, len, &t, &e) != 0) {
		free(text);
		return audit_add(a, &audit_fw_threshold, MOAT_AUDIT_CRITICAL,
				 "firmware/keys/trust.json does not parse: devices given it refuse "
				 "every update",
				 e.msg, "moat fw trust --threshold 2", TRUST_REL, 0);
	}
	free(text);
	if (t.threshold < 2) {
		snprintf(title, sizeof(title),
			 "one signature is enough to install firmware (threshold %d of %zu keys)",
			 t.threshold, t.count);
		snprintf(ev, sizeof(ev), "\"threshold\": %d", t.threshold);
		rc = audit_add(a, &audit_fw_threshold, MOAT_AUDIT_HIGH, title, ev,
			       t.count >= 2 ? "moat fw trust --threshold 2"
					    : "moat fw keygen, then moat fw trust --threshold 2",
			       TRUST_REL, 0);
	}
	/* a key moved to revoked/ must not be trusted any more */
	char dir[PATH_MAX];
	DIR *dh = NULL;
	if (rc == 0 &&
	    moat_deploy_path(a->d, dir, sizeof(dir), "firmware/keys/revoked", a->err) == 0) {
		dh = opendir(dir);
	}
	struct dirent *de;
	while (rc == 0 && dh && (de = readdir(dh)) != NULL) {
		size_t n = strlen(de->d_name);
		if (n != MOAT_FW_KEYID_HEX_LEN + 4 || strcmp(de->d_name + n - 4, ".pub") != 0) {
			continue;
		}
		for (size_t k = 0; k < t.count; k++) {
			if (strncmp(t.keys[k].keyid, de->d_name, MOAT_FW_KEYID_HEX_LEN) == 0) {
				snprintf(title, sizeof(title),
					 "the revoked signing key %.16s... is still trusted",
					 t.keys[k].keyid);
				snprintf(ev, sizeof(ev), "firmware/keys/revoked/%s and trust.json",
					 de->d_name);
				char fix[1024];
				snprintf(fix, sizeof(fix), "moat fw key revoke %.16s",
					 t.keys[k].keyid);
				rc = audit_add(a, &audit_fw_revoked_key, MOAT_AUDIT_CRITICAL, title,
					       ev, fix, TRUST_REL, 0);
			}
		}
	}
	if (dh) {
		closedir(dh);
	}
	moat_fw_trust_free(&t);
	return rc;
}

#define TYPES_MAX 256

struct fw_type {
	char type[MOAT_DEVICE_TYPE_MAX_LEN + 1];
	struct moat_release newest; /* by publication (the registry walks by type, then time) */
	int64_t floor;		    /* the highest security_version published */
};

struct rel_ctx {
	struct audit_ctx *a;
	struct fw_type *types;
	size_t n;
	struct moat_release *all; /* every release, for the version a device runs */
	size_t all_n, all_cap;
	int rc;
};

static struct fw_type *type_of(struct fw_type *types, size_t n, const char *type)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(types[i].type, type) == 0) {
			return &types[i];
		}
	}
	return NULL;
}

/* The image under firmware/releases/ against the registry's digest. */
static int release_files(struct audit_ctx *a, const struct moat_release *r)
{
	char rel[PATH_MAX], path[PATH_MAX], title[1024], ev[1024];
	static const char *const names[] = {"envelope.json", "image.bin"};
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < 2; i++) {
		snprintf(rel, sizeof(rel), "firmware/releases/%s/%s/%s", r->device_type, r->version,
			 names[i]);
		if ((rc = moat_deploy_path(a->d, path, sizeof(path), rel, a->err)) != 0) {
			return rc;
		}
		if (!moat_fs_exists(path)) {
			snprintf(title, sizeof(title), "release %s %s: %s is missing",
				 r->device_type, r->version, names[i]);
			return audit_add(a, &audit_drift_releases, MOAT_AUDIT_CRITICAL, title, NULL,
					 "moat fw publish ENVELOPE IMAGE again", rel, 0);
		}
	}
	FILE *f = fopen(path, "re"); /* image.bin */
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char buf[65536], digest[32];
	unsigned int dlen = 0;
	bool ok = f && md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
	size_t got;
	while (ok && (got = fread(buf, 1, sizeof(buf), f)) > 0) {
		ok = EVP_DigestUpdate(md, buf, got) == 1;
	}
	ok = ok && !ferror(f) && EVP_DigestFinal_ex(md, digest, &dlen) == 1;
	if (f) {
		fclose(f);
	}
	EVP_MD_CTX_free(md);
	if (!ok) {
		return audit_cannot(a, &audit_drift_releases, "cannot hash a release image");
	}
	char hex[65];
	moat_hex_encode(digest, 32, hex);
	if (strcmp(hex, r->sha256_hex) != 0) {
		snprintf(title, sizeof(title),
			 "release %s %s: image.bin is not the image the registry published",
			 r->device_type, r->version);
		snprintf(ev, sizeof(ev), "sha256 %.16s... on disk, %.16s... in the registry", hex,
			 r->sha256_hex);
		return audit_add(a, &audit_drift_releases, MOAT_AUDIT_CRITICAL, title, ev,
				 "moat fw publish ENVELOPE IMAGE again", rel, 0);
	}
	return 0;
}

static int release_cb(const struct moat_release *r, void *ctx)
{
	struct rel_ctx *c = ctx;
	struct fw_type *t = type_of(c->types, c->n, r->device_type);
	if (!t && c->n < TYPES_MAX) {
		t = &c->types[c->n++];
		memset(t, 0, sizeof(*t));
		snprintf(t->type, sizeof(t->type), "%s", r->device_type);
		t->floor = r->security_version;
	}
	if (c->all_n == c->all_cap) {
		size_t cap = c->all_cap ? c->all_cap * 2 : 16;
		struct moat_release *nr = realloc(c->all, cap * sizeof(*nr));
		if (!nr) {
			c->rc = moat_err_set(c->a->err, MOAT_ENOMEM, "audit: out of memory");
			return 1;
		}
		c->all = nr;
		c->all_cap = cap;
	}
	c->all[c->all_n++] = *r;
	if (t) {
		t->newest = *r;
		if (r->security_version > t->floor) {
			t->floor = r->security_version;
		}
	}
	c->rc = release_files(c->a, r);
	return c->rc != 0 ? 1 : 0;
}

struct reverted_ctx {
	const char *version;
	bool reverted;
	char reason[MOAT_UPDATE_REASON_MAX_LEN + 1];
};

static int reverted_cb(const struct moat_update_event *ev, void *ctx)
{
	struct reverted_ctx *c = ctx;
	if (ev->stage == MOAT_UPD_REVERTED && strcmp(ev->version, c->version) == 0) {
		c->reverted = true;
		snprintf(c->reason, sizeof(c->reason), "%s", ev->reason);
		return 1;
	}
	return 0;
}

static int devices(struct audit_ctx *a, const struct rel_ctx *c)
{
	struct moat_registry *reg = moat_deploy_registry(a->d);
	char title[1024], ev[1024], fix[1024];
	struct moat_err e;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < a->id_count; i++) {
		const struct moat_identity *id = &a->ids[i];
		if (id->role != MOAT_ROLE_DEVICE || id->status != MOAT_ID_ACTIVE) {
			continue;
		}
		struct fw_type *t = type_of(c->types, c->n, id->device_type);
		if (!t) {
			continue;
		}
		char running[MOAT_FW_VERSION_MAX_LEN + 1] = "";
		if (moat_registry_running_version(reg, id->id, running, &e) != 0) {
			return audit_cannot(a, &audit_fw_below_floor, e.msg);
		}
		const struct moat_release *mine = NULL;
		for (size_t k = 0; running[0] && k < c->all_n; k++) {
			if (strcmp(c->all[k].device_type, t->type) == 0 &&
			    strcmp(c->all[k].version, running) == 0) {
				mine = &c->all[k];
			}
		}
		const struct moat_release *nr = &t->newest;
		snprintf(fix, sizeof(fix), "moat fw status %s", id->id);
		if (running[0] && mine && mine->security_version < t->floor) {
			snprintf(title, sizeof(title),
				 "device %s runs %s %s, below the security floor %lld", id->id,
				 t->type, running, (long long)t->floor);
			snprintf(ev, sizeof(ev), "security version %lld; newest %s",
				 (long long)mine->security_version, nr->version);
			rc = audit_add(a, &audit_fw_below_floor, MOAT_AUDIT_HIGH, title, ev, fix,
				       NULL, 0);
		} else if (running[0] && (!mine || strcmp(mine->version, nr->version) != 0)) {
			snprintf(title, sizeof(title),
				 "device %s runs %s %s, a release no longer offered (newest %s)",
				 id->id, t->type, running, nr->version);
			snprintf(ev, sizeof(ev), "%s",
				 mine ? "superseded by a newer release"
				      : "not a published release");
			rc = audit_add(a, &audit_fw_not_offered, MOAT_AUDIT_MEDIUM, title, ev, fix,
				       NULL, 0);
		}
		struct reverted_ctx rv = {.version = t->newest.version};
		if (rc == 0 &&
		    moat_registry_update_event_foreach(reg, id->id,
						       MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE,
						       reverted_cb, &rv, &e) < 0) {
			return audit_cannot(a, &audit_fw_reverted, e.msg);
		}
		if (rc == 0 && rv.reverted) {
			snprintf(title, sizeof(title), "device %s reverted release %s %s", id->id,
				 t->type, t->newest.version);
			snprintf(ev, sizeof(ev), "update event reverted, reason \"%s\"", rv.reason);
			snprintf(fix, sizeof(fix), "moat fw status %s", id->id);
			rc = audit_add(a, &audit_fw_reverted, MOAT_AUDIT_MEDIUM, title, ev, fix,
				       NULL, 0);
		}
	}
	return rc;
}

int audit_firmware(struct audit_ctx *a)
{
	static const struct moat_audit_check *const all[] = {&audit_fw_release_expiry,
							     &audit_fw_below_floor,
							     &audit_fw_not_offered,
							     &audit_fw_reverted,
							     &audit_drift_releases};
	struct moat_err e;
	int rc;
	if ((rc = trust(a)) != 0) {
		return rc;
	}
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if ((rc = audit_ran(a, all[i])) != 0) {
			return rc;
		}
	}
	struct rel_ctx c = {.a = a, .types = calloc(TYPES_MAX, sizeof(struct fw_type))};
	if (!c.types) {
		return moat_err_set(a->err, MOAT_ENOMEM, "audit: out of memory");
	}
	int wrc =
		moat_registry_release_foreach(moat_deploy_registry(a->d), NULL, release_cb, &c, &e);
	rc = c.rc;
	if (rc == 0 && wrc < 0) {
		rc = audit_cannot(a, &audit_fw_release_expiry, e.msg);
	}
	char title[1024], ev[1024], when[64];
	for (size_t i = 0; rc == 0 && i < c.n; i++) {
		const struct moat_release *r = &c.types[i].newest;
		if (r->expires_at <= 0 || r->expires_at - a->o->now > a->o->window_s) {
			continue;
		}
		audit_when(r->expires_at, a->o->now, when, sizeof(when));
		snprintf(title, sizeof(title), "the newest release of %s (%s) %s %s",
			 r->device_type, r->version,
			 r->expires_at <= a->o->now ? "expired" : "expires", when);
		snprintf(ev, sizeof(ev), "expires_at %lld", (long long)r->expires_at);
		rc = audit_add(a, &audit_fw_release_expiry,
			       r->expires_at <= a->o->now ? MOAT_AUDIT_HIGH : MOAT_AUDIT_MEDIUM,
			       title, ev,
			       "moat fw sign IMAGE ... --expires 90d, then moat fw publish (a "
			       "re-signed release)",
			       NULL, 0);
	}
	if (rc == 0) {
		rc = devices(a, &c);
	}
	free(c.types);
	free(c.all);
	return rc;
}
