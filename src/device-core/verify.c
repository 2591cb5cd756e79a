/* verify.c: moat's firmware rules (moat_device.h, part 1). The envelope is read twice
 * over its tokens: once for syntax (every malformed reason, before anything is trusted),
 * once to check signatures. The payload is decoded straight into the PAE buffer, the
 * manifest parsed from there only after the signatures held. One verdict, in the order of
 * moat_fw_decide: envelope, payload type, signatures, manifest, policy.
 */
#include <stdio.h>
#include <string.h>

#include "mjson.h"
#include "moat_device.h"
#include "moat_device_port.h"

#define B64_LEN(n) (4 * (((n) + 2) / 3))
#define ENVELOPE_TOKENS (8 + 5 * MDEV_ENVELOPE_MAX_SIGS + 8)
#define MANIFEST_TOKENS 24

static const char *const verdict_names[MDEV_FW_VERDICT_COUNT] = {
	"accept",    "malformed",     "bad_payload_type", "unknown_key", "bad_signature",
	"threshold", "expired",	      "rollback",	  "wrong_type",	 "downgrade",
	"not_newer", "size_mismatch", "hash_mismatch",
};

const char *mdev_fw_verdict_name(enum mdev_fw_verdict v)
{
	return (unsigned)v < MDEV_FW_VERDICT_COUNT ? verdict_names[v] : "unknown";
}

bool mdev_name_ok(const char *name, size_t max)
{
	size_t i = 0;
	if (name == NULL) {
		return false;
	}
	for (; name[i] != '\0'; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  (i > 0 && (c == '.' || c == '_' || c == '-'));
		if (!ok || i >= max) {
			return false;
		}
	}
	return i > 0;
}

int mdev_dsse_pae(const char *payload_type, const unsigned char *payload, size_t payload_len,
		  unsigned char *buf, size_t size, size_t *out_len)
{
	*out_len = 0;
	int n = snprintf((char *)buf, size, "DSSEv1 %lu %s %lu ",
			 (unsigned long)strlen(payload_type), payload_type,
			 (unsigned long)payload_len);
	if (n < 0 || (size_t)n >= size || size - (size_t)n < payload_len) {
		return -1;
	}
	if (payload_len > 0 && payload != NULL) {
		memmove(buf + n, payload, payload_len);
	}
	*out_len = (size_t)n + payload_len;
	return 0;
}

/* ---- manifests ---- */

static const char *const manifest_fields[] = {"device_type", "version", "security_version",
					      "size",	     "sha256",	"issued_at",
					      "expires_at"};
enum { F_TYPE, F_VERSION, F_SECVER, F_SIZE, F_SHA, F_ISSUED, F_EXPIRES, F_COUNT };

int mdev_manifest_parse(const void *json, size_t len, struct mdev_manifest *out, char *msg)
{
	jsmntok_t tok[MANIFEST_TOKENS];
	struct mjson j;
	int f[F_COUNT];
	const char *s;
	size_t n;
	int64_t size = 0;
	struct mdev_manifest m;
	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (mj_parse(&j, "manifest", json, len, MDEV_MANIFEST_MAX_BYTES, tok, MANIFEST_TOKENS,
		     msg) != 0 ||
	    mj_fields(&j, 0, manifest_fields, NULL, F_COUNT, false, f) != 0 ||
	    mj_str(&j, f[F_TYPE], "device_type", MDEV_DEVICE_TYPE_MAX_LEN, &s, &n) != 0) {
		return -1;
	}
	memcpy(m.device_type, s, n);
	if (!mdev_name_ok(m.device_type, MDEV_DEVICE_TYPE_MAX_LEN)) {
		mdev_msgf(msg,
			  "manifest: device type '%s' is invalid: use [a-z0-9][a-z0-9._-]{0,%d}",
			  m.device_type, MDEV_DEVICE_TYPE_MAX_LEN - 1);
		return -1;
	}
	if (mj_str(&j, f[F_VERSION], "version", MDEV_FW_VERSION_MAX_LEN, &s, &n) != 0) {
		return -1;
	}
	memcpy(m.version, s, n);
	if (!mdev_semver_valid(m.version)) {
		mdev_msgf(msg, "manifest: version '%s' is not a semantic version", m.version);
		return -1;
	}
	if (mj_int(&j, f[F_SECVER], "security_version", 0, MDEV_INT_MAX, &m.security_version) !=
		    0 ||
	    mj_int(&j, f[F_SIZE], "size", 1, (int64_t)MDEV_FW_IMAGE_MAX_BYTES, &size) != 0 ||
	    mj_str(&j, f[F_SHA], "sha256", 2 * MDEV_SHA256_BYTES, &s, &n) != 0) {
		return -1;
	}
	m.size = (uint64_t)size;
	if (mdev_hex_decode(s, n, m.sha256, sizeof(m.sha256)) != 0) {
		mdev_msgf(msg, "manifest: 'sha256' is not 64 lower-case hex digits");
		return -1;
	}
	if (mj_int(&j, f[F_ISSUED], "issued_at", 0, MDEV_INT_MAX, &m.issued_at) != 0 ||
	    mj_int(&j, f[F_EXPIRES], "expires_at", 0, MDEV_INT_MAX, &m.expires_at) != 0) {
		return -1;
	}
	if (m.expires_at <= m.issued_at) {
		mdev_msgf(msg, "manifest: 'expires_at' is not later than 'issued_at'");
		return -1;
	}
	*out = m;
	return 0;
}

/* ---- envelopes ---- */

struct envelope_view {
	struct mjson j;
	jsmntok_t tok[ENVELOPE_TOKENS];
	int f[3];
	const char *type;
	size_t type_len;
	const char *payload;
	size_t payload_b64_len;
};

static int envelope_syntax(struct envelope_view *ev, const void *json, size_t len,
			   unsigned char *scratch, size_t scratch_size, char *msg)
{
	static const char *const names[] = {"payloadType", "payload", "signatures"};
	static const char *const sig_names[] = {"keyid", "sig"};
	struct mjson *j = &ev->j;
	size_t n;
	if (mj_parse(j, "envelope", json, len, MDEV_ENVELOPE_MAX_BYTES, ev->tok, ENVELOPE_TOKENS,
		     msg) != 0 ||
	    mj_fields(j, 0, names, NULL, 3, false, ev->f) != 0 ||
	    mj_str(j, ev->f[0], "payloadType", MDEV_FW_PAYLOAD_TYPE_MAX_LEN, &ev->type,
		   &ev->type_len) != 0) {
		return -1;
	}
	for (size_t i = 0; i < ev->type_len; i++) {
		if (ev->type[i] < 0x21 || ev->type[i] == '"') {
			mdev_msgf(msg,
				  "envelope: 'payloadType' has a character that is not allowed");
			return -1;
		}
	}
	if (mj_str(j, ev->f[1], "payload", B64_LEN(MDEV_MANIFEST_MAX_BYTES), &ev->payload,
		   &ev->payload_b64_len) != 0) {
		return -1;
	}
	if (mdev_b64_decode(ev->payload, ev->payload_b64_len, NULL, MDEV_MANIFEST_MAX_BYTES, &n) !=
	    0) {
		mdev_msgf(msg, "envelope: 'payload' is not canonical base64 of at most %u bytes",
			  MDEV_MANIFEST_MAX_BYTES);
		return -1;
	}
	int a = ev->f[2];
	if (j->tok[a].type != JSMN_ARRAY) {
		mdev_msgf(msg, "envelope: 'signatures' is not an array");
		return -1;
	}
	if (j->tok[a].size > MDEV_ENVELOPE_MAX_SIGS) {
		mdev_msgf(msg, "envelope: more than %d signatures", MDEV_ENVELOPE_MAX_SIGS);
		return -1;
	}
	char what[24];
	int k = a + 1;
	for (int i = 0; i < j->tok[a].size; i++) {
		int sf[2];
		const char *s;
		snprintf(what, sizeof(what), "signature %d", i);
		j->what = what;
		if (mj_fields(j, k, sig_names, NULL, 2, false, sf) != 0 ||
		    mj_str(j, sf[0], "keyid", MDEV_FW_KEYID_HEX_LEN, &s, &n) != 0) {
			return -1;
		}
		uint8_t id[MDEV_SHA256_BYTES];
		if (mdev_hex_decode(s, n, id, sizeof(id)) != 0) {
			mdev_msgf(msg, "%s: 'keyid' is not 64 lower-case hex digits", what);
			return -1;
		}
		if (mj_str(j, sf[1], "sig", B64_LEN(MDEV_FW_SIG_MAX_BYTES), &s, &n) != 0) {
			return -1;
		}
		size_t sl = 0;
		if (mdev_b64_decode(s, n, scratch, scratch_size, &sl) != 0 || sl == 0) {
			mdev_msgf(msg, "%s: 'sig' is not canonical base64 of 1..%d bytes", what,
				  MDEV_FW_SIG_MAX_BYTES);
			return -1;
		}
		k = mj_next(j, k);
	}
	j->what = "envelope";
	return 0;
}

int mdev_envelope_check(const void *json, size_t len, char *msg)
{
	struct envelope_view ev;
	unsigned char sig[MDEV_FW_SIG_MAX_BYTES];
	return envelope_syntax(&ev, json, len, sig, sizeof(sig), msg);
}

/* ---- the decision ---- */

static enum mdev_fw_verdict verdict(struct mdev_fw_decision *out, enum mdev_fw_verdict v)
{
	out->verdict = v;
	return v;
}

/* Valid signatures by distinct trusted keys. A trusted key's failing signature is
 * tampering and refuses the envelope whatever the others say. */
static enum mdev_fw_verdict check_signatures(struct envelope_view *ev,
					     const struct mdev_trust *trust, struct mdev_fw_work *w,
					     size_t pae_len, struct mdev_fw_decision *out)
{
	static const char *const sig_names[] = {"keyid", "sig"};
	struct mjson *j = &ev->j;
	bool counted[MDEV_FW_TRUST_MAX_KEYS] = {false};
	size_t valid = 0;
	size_t trusted_sigs = 0;
	size_t count = trust->count < MDEV_FW_TRUST_MAX_KEYS ? trust->count
							     : MDEV_FW_TRUST_MAX_KEYS;
	int a = ev->f[2];
	int nsigs = j->tok[a].size;
	int k = a + 1;
	for (int i = 0; i < nsigs; i++, k = mj_next(j, k)) {
		int sf[2];
		const char *s;
		size_t n;
		uint8_t id[MDEV_SHA256_BYTES];
		/* The syntax pass accepted all of this already. */
		if (mj_fields(j, k, sig_names, NULL, 2, false, sf) != 0 ||
		    mj_str(j, sf[0], "keyid", MDEV_FW_KEYID_HEX_LEN, &s, &n) != 0 ||
		    mdev_hex_decode(s, n, id, sizeof(id)) != 0) {
			mdev_msgf(out->msg, "envelope: signature %d changed", i);
			return verdict(out, MDEV_FW_MALFORMED);
		}
		size_t t = 0;
		while (t < count && memcmp(trust->keys[t].keyid, id, sizeof(id)) != 0) {
			t++;
		}
		if (t == count) {
			continue; /* not ours: an unknown key proves nothing */
		}
		trusted_sigs++;
		const char *kid = s;
		size_t sl = 0;
		if (mj_str(j, sf[1], "sig", B64_LEN(MDEV_FW_SIG_MAX_BYTES), &s, &n) != 0 ||
		    mdev_b64_decode(s, n, w->sig, sizeof(w->sig), &sl) != 0 ||
		    !mdev_port_verify(trust->keys[t].key, trust->keys[t].key_len, w->pae, pae_len,
				      w->sig, sl)) {
			mdev_msgf(out->msg,
				  "signature by trusted key %.16s does not verify: the envelope "
				  "was modified",
				  kid);
			return verdict(out, MDEV_FW_BAD_SIGNATURE);
		}
		if (!counted[t]) {
			counted[t] = true; /* the same key twice counts once */
			valid++;
		}
	}
	if (trusted_sigs == 0) {
		mdev_msgf(out->msg, "no signature by a trusted key (%d signature%s, none trusted)",
			  nsigs, nsigs == 1 ? "" : "s");
		return verdict(out, MDEV_FW_UNKNOWN_KEY);
	}
	if (trust->threshold < 1 || valid < (size_t)trust->threshold) {
		mdev_msgf(out->msg, "%lu valid signature%s by distinct trusted keys, %d required",
			  (unsigned long)valid, valid == 1 ? "" : "s", trust->threshold);
		return verdict(out, MDEV_FW_THRESHOLD);
	}
	return MDEV_FW_ACCEPT;
}

enum mdev_fw_verdict mdev_fw_check_policy(const struct mdev_manifest *m,
					  const struct mdev_fw_policy *policy,
					  struct mdev_fw_decision *out)
{
	out->verdict = MDEV_FW_ACCEPT;
	out->msg[0] = '\0';
	if (strcmp(m->device_type, policy->device_type) != 0) {
		mdev_msgf(out->msg, "manifest is for device type '%s', this device is '%s'",
			  m->device_type, policy->device_type);
		return verdict(out, MDEV_FW_WRONG_TYPE);
	}
	if (m->security_version < policy->security_floor) {
		mdev_msgf(out->msg, "security_version %lld is below the device's floor %lld",
			  (long long)m->security_version, (long long)policy->security_floor);
		return verdict(out, MDEV_FW_DOWNGRADE);
	}
	if (policy->purpose == MDEV_FW_FOR_BOOT) {
		return MDEV_FW_ACCEPT;
	}
	if (m->issued_at < policy->last_issued_at) {
		mdev_msgf(out->msg,
			  "manifest issued at %lld is older than the last verified one (%lld): "
			  "replayed",
			  (long long)m->issued_at, (long long)policy->last_issued_at);
		return verdict(out, MDEV_FW_ROLLBACK);
	}
	/* Unknown time: the newest issued_at verified is the latest time the device can
	 * prove (see moat_device.h). */
	int64_t clock = policy->now > policy->last_issued_at ? policy->now : policy->last_issued_at;
	if (m->expires_at <= clock) {
		mdev_msgf(out->msg, "manifest expired at %lld (device time %lld%s)",
			  (long long)m->expires_at, (long long)clock,
			  policy->now == MDEV_TIME_UNKNOWN ? ", clock unknown: last issued_at"
							   : "");
		return verdict(out, MDEV_FW_EXPIRED);
	}
	if (policy->current_version != NULL) {
		int cmp = 0;
		if (mdev_semver_compare(m->version, policy->current_version, &cmp) != 0) {
			mdev_msgf(out->msg, "running version: '%.64s' is not a semantic version",
				  policy->current_version);
			return verdict(out, MDEV_FW_NOT_NEWER);
		}
		if (cmp <= 0) {
			mdev_msgf(out->msg, "version %s is not newer than the running %.64s",
				  m->version, policy->current_version);
			return verdict(out, MDEV_FW_NOT_NEWER);
		}
	}
	return MDEV_FW_ACCEPT;
}

enum mdev_fw_verdict mdev_fw_decide(const void *envelope_json, size_t len,
				    const struct mdev_trust *trust,
				    const struct mdev_fw_policy *policy, struct mdev_fw_work *w,
				    struct mdev_manifest *out_manifest,
				    struct mdev_fw_decision *out)
{
	struct envelope_view ev;
	struct mdev_manifest m;
	enum mdev_fw_verdict v;
	memset(out, 0, sizeof(*out));
	if (out_manifest != NULL) {
		memset(out_manifest, 0, sizeof(*out_manifest));
	}
	if (trust == NULL || policy == NULL || policy->device_type == NULL || w == NULL) {
		mdev_msgf(out->msg, "no trust list or device type to decide with");
		return verdict(out, MDEV_FW_MALFORMED);
	}
	if (envelope_syntax(&ev, envelope_json, len, w->sig, sizeof(w->sig), out->msg) != 0) {
		return verdict(out, MDEV_FW_MALFORMED);
	}
	if (ev.type_len != strlen(MDEV_FW_PAYLOAD_TYPE) ||
	    memcmp(ev.type, MDEV_FW_PAYLOAD_TYPE, ev.type_len) != 0) {
		mdev_msgf(out->msg, "payload type '%.*s' is not %s", (int)ev.type_len, ev.type,
			  MDEV_FW_PAYLOAD_TYPE);
		return verdict(out, MDEV_FW_BAD_PAYLOAD_TYPE);
	}
	/* PAE header first, then the payload decoded right behind it. */
	size_t payload_len = 0;
	size_t head = 0;
	if (mdev_b64_decode(ev.payload, ev.payload_b64_len, NULL, MDEV_MANIFEST_MAX_BYTES,
			    &payload_len) != 0 ||
	    mdev_dsse_pae(MDEV_FW_PAYLOAD_TYPE, NULL, payload_len, w->pae, sizeof(w->pae), &head) !=
		    0) {
		mdev_msgf(out->msg, "envelope payload too long");
		return verdict(out, MDEV_FW_MALFORMED);
	}
	head -= payload_len;
	size_t got = 0;
	if (mdev_b64_decode(ev.payload, ev.payload_b64_len, w->pae + head, sizeof(w->pae) - head,
			    &got) != 0 ||
	    got != payload_len) {
		mdev_msgf(out->msg, "envelope payload too long");
		return verdict(out, MDEV_FW_MALFORMED);
	}
	v = check_signatures(&ev, trust, w, head + payload_len, out);
	if (v != MDEV_FW_ACCEPT) {
		return v;
	}
	/* Only now, with the payload authenticated, is it parsed. */
	if (mdev_manifest_parse(w->pae + head, payload_len, &m, out->msg) != 0) {
		return verdict(out, MDEV_FW_MALFORMED);
	}
	v = mdev_fw_check_policy(&m, policy, out);
	if (v != MDEV_FW_ACCEPT) {
		return v;
	}
	if (out_manifest != NULL) {
		*out_manifest = m;
	}
	mdev_msgf(out->msg,
		  "%s %s (security_version %lld): threshold of %d of %lu trusted keys met",
		  m.device_type, m.version, (long long)m.security_version, trust->threshold,
		  (unsigned long)trust->count);
	return verdict(out, MDEV_FW_ACCEPT);
}

int mdev_keyid(const void *spki, size_t len, uint8_t out[MDEV_SHA256_BYTES])
{
	union {
		unsigned char bytes[MDEV_PORT_SHA256_STATE_BYTES];
		uint64_t align_u64;
		void *align_ptr;
	} st;
	if (mdev_port_sha256_start(st.bytes) != 0) {
		return -1;
	}
	if (mdev_port_sha256_update(st.bytes, spki, len) != 0) {
		mdev_port_sha256_abort(st.bytes);
		return -1;
	}
	return mdev_port_sha256_finish(st.bytes, out);
}

/* ---- streaming ---- */

int mdev_fw_stream_init(struct mdev_fw_stream *s, const struct mdev_manifest *m)
{
	memset(s, 0, sizeof(*s));
	if (m->size < 1 || m->size > MDEV_FW_IMAGE_MAX_BYTES ||
	    mdev_port_sha256_start(s->sha.bytes) != 0) {
		return -1;
	}
	s->started = true;
	s->expected_size = m->size;
	memcpy(s->expected_sha256, m->sha256, sizeof(s->expected_sha256));
	return 0;
}

int mdev_fw_stream_update(struct mdev_fw_stream *s, const void *data, size_t len)
{
	if (!s->started || s->too_long || len > s->expected_size - s->seen) {
		s->too_long = true;
		return -1;
	}
	if (len > 0 && mdev_port_sha256_update(s->sha.bytes, data, len) != 0) {
		return -1;
	}
	s->seen += len;
	return 0;
}

enum mdev_fw_verdict mdev_fw_stream_decide(struct mdev_fw_stream *s, struct mdev_fw_decision *out)
{
	uint8_t md[MDEV_SHA256_BYTES];
	memset(out, 0, sizeof(*out));
	if (!s->started) {
		mdev_msgf(out->msg, "image stream not started");
		return verdict(out, MDEV_FW_MALFORMED);
	}
	/* Size refusals leave the state as it is, so asking again gives the same answer;
	 * mdev_fw_stream_abort releases it. */
	if (s->too_long) {
		mdev_msgf(out->msg, "image is longer than the manifest's size of %llu bytes",
			  (unsigned long long)s->expected_size);
		return verdict(out, MDEV_FW_SIZE_MISMATCH);
	}
	if (s->seen != s->expected_size) {
		mdev_msgf(out->msg, "image is %llu bytes, the manifest says %llu",
			  (unsigned long long)s->seen, (unsigned long long)s->expected_size);
		return verdict(out, MDEV_FW_SIZE_MISMATCH);
	}
	s->started = false;
	if (mdev_port_sha256_finish(s->sha.bytes, md) != 0) {
		mdev_msgf(out->msg, "finishing SHA-256 failed");
		return verdict(out, MDEV_FW_MALFORMED);
	}
	if (!mdev_port_equal(md, s->expected_sha256, sizeof(md))) {
		mdev_msgf(out->msg, "image SHA-256 does not match the manifest");
		return verdict(out, MDEV_FW_HASH_MISMATCH);
	}
	mdev_msgf(out->msg, "image matches the manifest (%llu bytes)", (unsigned long long)s->seen);
	return verdict(out, MDEV_FW_ACCEPT);
}

void mdev_fw_stream_abort(struct mdev_fw_stream *s)
{
	if (s->started) {
		mdev_port_sha256_abort(s->sha.bytes);
		s->started = false;
	}
}
