/* manifest.c: signed firmware manifests (see moat/manifest.h). The envelope is DSSE-style:
 * each signature covers PAE(payloadType, payload), so the whole manifest is signed. The
 * parsers are strict (the one reader, json.h, through fw_json_parse in fw_json.c), and
 * moat_fw_decide is the single place where a device's refusal reasons are decided, in a
 * fixed order: envelope, signatures over the raw payload, then the manifest's fields
 * against the device's policy. Pure: no I/O, no clock.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "fw_internal.h"
#include "moat/manifest.h"

#define PAE_MAX_BYTES (MOAT_MANIFEST_MAX_BYTES + MOAT_FW_PAYLOAD_TYPE_MAX_LEN + 64)
#define B64_LEN(n) (4 * (((n) + 2) / 3))

/* ---- manifests ---- */

static const char *const manifest_fields[] = {"device_type", "version", "security_version",
					      "size",	     "sha256",	"issued_at",
					      "expires_at"};
enum { F_TYPE, F_VERSION, F_SECVER, F_SIZE, F_SHA, F_ISSUED, F_EXPIRES, F_COUNT };

static int manifest_check(const struct moat_manifest *m, struct moat_err *err)
{
	int rc = moat_device_type_check(m->device_type, err);
	if (rc == 0) {
		rc = moat_semver_check(m->version, err);
	}
	if (rc != 0) {
		moat_err_prefix(err, "manifest");
		return rc;
	}
	if (m->security_version < 0 || m->security_version > MOAT_FW_INT_MAX) {
		return moat_err_set(err, MOAT_EINVAL,
				    "manifest: 'security_version' is outside "
				    "0..2^53-1");
	}
	if (m->size < 1 || m->size > MOAT_FW_IMAGE_MAX_BYTES) {
		return moat_err_set(err, MOAT_EINVAL, "manifest: 'size' is outside 1..%llu",
				    (unsigned long long)MOAT_FW_IMAGE_MAX_BYTES);
	}
	if (m->issued_at < 0 || m->issued_at > MOAT_FW_INT_MAX || m->expires_at < 0 ||
	    m->expires_at > MOAT_FW_INT_MAX) {
		return moat_err_set(err, MOAT_EINVAL,
				    "manifest: 'issued_at'/'expires_at' outside 0..2^53-1");
	}
	if (m->expires_at <= m->issued_at) {
		return moat_err_set(err, MOAT_EINVAL,
				    "manifest: 'expires_at' is not later than 'issued_at'");
	}
	return 0;
}

int moat_manifest_parse(const void *json, size_t len, struct moat_manifest *out,
			struct moat_err *err)
{
	const cJSON *f[F_COUNT];
	cJSON *root = NULL;
	struct moat_manifest m;
	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	int rc = fw_json_parse("manifest", json, len, MOAT_MANIFEST_MAX_BYTES, false, &root, err);
	if (rc != 0) {
		goto out;
	}
	rc = moat_json_fields("manifest", root, manifest_fields, F_COUNT, f, err);
	const char *s;
	size_t slen;
	int64_t size = 0;
	if (rc == 0) {
		rc = moat_json_str("manifest", "device_type", f[F_TYPE], MOAT_DEVICE_TYPE_MAX_LEN,
				   &s, &slen, err);
	}
	if (rc == 0) {
		memcpy(m.device_type, s, slen + 1);
		rc = moat_json_str("manifest", "version", f[F_VERSION], MOAT_FW_VERSION_MAX_LEN, &s,
				   &slen, err);
	}
	if (rc == 0) {
		memcpy(m.version, s, slen + 1);
		rc = moat_json_int("manifest", "security_version", f[F_SECVER], 0, MOAT_FW_INT_MAX,
				   &m.security_version, err);
	}
	if (rc == 0) {
		rc = moat_json_int("manifest", "size", f[F_SIZE], 1,
				   (int64_t)MOAT_FW_IMAGE_MAX_BYTES, &size, err);
	}
	if (rc == 0) {
		m.size = (uint64_t)size;
		rc = moat_json_str("manifest", "sha256", f[F_SHA], MOAT_SHA256_HEX_LEN, &s, &slen,
				   err);
	}
	if (rc == 0 && moat_hex_decode(s, m.sha256, sizeof(m.sha256)) != 0) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "manifest: 'sha256' is not 64 lower-case hex digits");
	}
	if (rc == 0) {
		rc = moat_json_int("manifest", "issued_at", f[F_ISSUED], 0, MOAT_FW_INT_MAX,
				   &m.issued_at, err);
	}
	if (rc == 0) {
		rc = moat_json_int("manifest", "expires_at", f[F_EXPIRES], 0, MOAT_FW_INT_MAX,
				   &m.expires_at, err);
	}
	if (rc == 0) {
		rc = manifest_check(&m, err);
	}
	if (rc == 0) {
		*out = m;
	}
out:
	cJSON_Delete(root);
	return rc;
}

int moat_manifest_serialize(const struct moat_manifest *m, char **out_json, size_t *out_len,
			    struct moat_err *err)
{
	*out_json = NULL;
	/* The struct may come from anywhere: the strings must be terminated before use. */
	if (memchr(m->device_type, '\0', sizeof(m->device_type)) == NULL ||
	    memchr(m->version, '\0', sizeof(m->version)) == NULL) {
		return moat_err_set(err, MOAT_EINVAL, "manifest: unterminated string field");
	}
	int rc = manifest_check(m, err);
	if (rc != 0) {
		return rc;
	}
	char sha[MOAT_SHA256_HEX_LEN + 1];
	moat_hex_encode(m->sha256, sizeof(m->sha256), sha);
	char *buf = malloc(MOAT_MANIFEST_MAX_BYTES);
	if (!buf) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	int n = snprintf(buf, MOAT_MANIFEST_MAX_BYTES,
			 "{\"device_type\":\"%s\",\"version\":\"%s\",\"security_version\":%lld,"
			 "\"size\":%llu,\"sha256\":\"%s\",\"issued_at\":%lld,\"expires_at\":%lld}",
			 m->device_type, m->version, (long long)m->security_version,
			 (unsigned long long)m->size, sha, (long long)m->issued_at,
			 (long long)m->expires_at);
	if (n < 0 || (size_t)n >= MOAT_MANIFEST_MAX_BYTES) {
		free(buf);
		return moat_err_set(err, MOAT_EINVAL, "manifest: longer than %u bytes",
				    MOAT_MANIFEST_MAX_BYTES);
	}
	*out_json = buf;
	*out_len = (size_t)n;
	return 0;
}

/* ---- envelopes ---- */

int moat_dsse_pae(const char *payload_type, const unsigned char *payload, size_t payload_len,
		  unsigned char *buf, size_t size, size_t *out_len, struct moat_err *err)
{
	*out_len = 0;
	size_t tlen = strlen(payload_type);
	int n = snprintf((char *)buf, size, "DSSEv1 %zu %s %zu ", tlen, payload_type, payload_len);
	if (n < 0 || (size_t)n >= size || size - (size_t)n < payload_len) {
		return moat_err_set(err, MOAT_EINVAL, "envelope: PAE longer than %zu bytes", size);
	}
	if (payload_len > 0) {
		memcpy(buf + n, payload, payload_len);
	}
	*out_len = (size_t)n + payload_len;
	return 0;
}

/* payloadType: printable, no quote or backslash, so it needs no escaping either way. */
static int payload_type_check(const char *t, struct moat_err *err)
{
	size_t len = strnlen(t, MOAT_FW_PAYLOAD_TYPE_MAX_LEN + 1);
	if (len == 0 || len > MOAT_FW_PAYLOAD_TYPE_MAX_LEN) {
		return moat_err_set(err, MOAT_EINVAL, "envelope: 'payloadType' must be 1..%d bytes",
				    MOAT_FW_PAYLOAD_TYPE_MAX_LEN);
	}
	for (size_t i = 0; i < len; i++) {
		if (t[i] < 0x21 || t[i] > 0x7e || t[i] == '"' || t[i] == '\\') {
			return moat_err_set(err, MOAT_EINVAL,
					    "envelope: 'payloadType' has a character that is not "
					    "allowed");
		}
	}
	return 0;
}

static bool keyid_ok(const char *keyid)
{
	uint8_t raw[MOAT_FW_KEYID_HEX_LEN / 2];
	return moat_hex_decode(keyid, raw, sizeof(raw)) == 0;
}

static int parse_sig(const cJSON *item, size_t index, struct moat_envelope_sig *out,
		     struct moat_err *err)
{
	static const char *const names[] = {"keyid", "sig"};
	const cJSON *f[2];
	char what[48];
	snprintf(what, sizeof(what), "envelope: signatures[%zu]", index);
	if (!cJSON_IsObject(item)) {
		return moat_err_set(err, MOAT_EINVAL, "%s is not an object", what);
	}
	int rc = moat_json_fields(what, item, names, 2, f, err);
	const char *s;
	size_t slen;
	if (rc == 0) {
		rc = moat_json_str(what, "keyid", f[0], MOAT_FW_KEYID_HEX_LEN, &s, &slen, err);
	}
	if (rc == 0 && !keyid_ok(s)) {
		rc = moat_err_set(err, MOAT_EINVAL, "%s: 'keyid' is not 64 lower-case hex digits",
				  what);
	}
	if (rc == 0) {
		memcpy(out->keyid, s, MOAT_FW_KEYID_HEX_LEN + 1);
		rc = moat_json_str(what, "sig", f[1], B64_LEN(MOAT_FW_SIG_MAX_BYTES), &s, &slen,
				   err);
	}
	if (rc == 0 && (moat_b64_decode(s, slen, out->sig, sizeof(out->sig), &out->sig_len) != 0 ||
			out->sig_len == 0)) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "%s: 'sig' is not canonical base64 of 1..%d bytes", what,
				  MOAT_FW_SIG_MAX_BYTES);
	}
	return rc;
}

int moat_envelope_parse(const void *json, size_t len, struct moat_envelope *out,
			struct moat_err *err)
{
	static const char *const names[] = {"payloadType", "payload", "signatures"};
	const cJSON *f[3];
	cJSON *root = NULL;
	memset(out, 0, sizeof(*out));
	int rc = fw_json_parse("envelope", json, len, MOAT_ENVELOPE_MAX_BYTES, false, &root, err);
	if (rc != 0) {
		goto out;
	}
	rc = moat_json_fields("envelope", root, names, 3, f, err);
	const char *s;
	size_t slen;
	if (rc == 0) {
		rc = moat_json_str("envelope", "payloadType", f[0], MOAT_FW_PAYLOAD_TYPE_MAX_LEN,
				   &s, &slen, err);
	}
	if (rc == 0) {
		rc = payload_type_check(s, err);
	}
	if (rc == 0) {
		memcpy(out->payload_type, s, slen + 1);
		rc = moat_json_str("envelope", "payload", f[1], B64_LEN(MOAT_MANIFEST_MAX_BYTES),
				   &s, &slen, err);
	}
	if (rc == 0 &&
	    moat_b64_decode(s, slen, out->payload, sizeof(out->payload), &out->payload_len) != 0) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "envelope: 'payload' is not canonical base64 of at most %u bytes",
				  MOAT_MANIFEST_MAX_BYTES);
	}
	if (rc == 0 && !cJSON_IsArray(f[2])) {
		rc = moat_err_set(err, MOAT_EINVAL, "envelope: 'signatures' is not an array");
	}
	if (rc == 0 && cJSON_GetArraySize(f[2]) > MOAT_ENVELOPE_MAX_SIGS) {
		rc = moat_err_set(err, MOAT_EINVAL, "envelope: more than %d signatures",
				  MOAT_ENVELOPE_MAX_SIGS);
	}
	if (rc == 0) {
		for (const cJSON *c = f[2]->child; c && rc == 0; c = c->next) {
			rc = parse_sig(c, out->sig_count, &out->sigs[out->sig_count], err);
			out->sig_count++;
		}
	}
out:
	cJSON_Delete(root);
	if (rc != 0) {
		memset(out, 0, sizeof(*out));
	}
	return rc;
}

int moat_envelope_serialize(const struct moat_envelope *env, char **out_json, size_t *out_len,
			    struct moat_err *err)
{
	*out_json = NULL;
	if (memchr(env->payload_type, '\0', sizeof(env->payload_type)) == NULL) {
		return moat_err_set(err, MOAT_EINVAL, "envelope: unterminated payload type");
	}
	int rc = payload_type_check(env->payload_type, err);
	if (rc != 0) {
		return rc;
	}
	if (env->payload_len > MOAT_MANIFEST_MAX_BYTES || env->sig_count > MOAT_ENVELOPE_MAX_SIGS) {
		return moat_err_set(err, MOAT_EINVAL, "envelope: payload or signatures over limit");
	}
	size_t cap = 128 + MOAT_FW_PAYLOAD_TYPE_MAX_LEN + B64_LEN(MOAT_MANIFEST_MAX_BYTES) +
		     MOAT_ENVELOPE_MAX_SIGS *
			     (64 + MOAT_FW_KEYID_HEX_LEN + B64_LEN(MOAT_FW_SIG_MAX_BYTES));
	char *buf = malloc(cap);
	char *b64 = malloc(B64_LEN(MOAT_MANIFEST_MAX_BYTES) + 1);
	if (!buf || !b64) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	moat_b64_encode(env->payload, env->payload_len, b64);
	size_t used = 0;
	int n = snprintf(buf, cap, "{\"payloadType\":\"%s\",\"payload\":\"%s\",\"signatures\":[",
			 env->payload_type, b64);
	if (n < 0 || (size_t)n >= cap) {
		goto toolong;
	}
	used = (size_t)n;
	for (size_t i = 0; i < env->sig_count; i++) {
		const struct moat_envelope_sig *sg = &env->sigs[i];
		if (memchr(sg->keyid, '\0', sizeof(sg->keyid)) == NULL || !keyid_ok(sg->keyid) ||
		    sg->sig_len == 0 || sg->sig_len > MOAT_FW_SIG_MAX_BYTES) {
			rc = moat_err_set(err, MOAT_EINVAL, "envelope: signature %zu is not valid",
					  i);
			goto out;
		}
		moat_b64_encode(sg->sig, sg->sig_len, b64);
		n = snprintf(buf + used, cap - used, "%s{\"keyid\":\"%s\",\"sig\":\"%s\"}",
			     i ? "," : "", sg->keyid, b64);
		if (n < 0 || (size_t)n >= cap - used) {
			goto toolong;
		}
		used += (size_t)n;
	}
	n = snprintf(buf + used, cap - used, "]}\n");
	if (n < 0 || (size_t)n >= cap - used) {
		goto toolong;
	}
	used += (size_t)n;
	if (used > MOAT_ENVELOPE_MAX_BYTES) {
		goto toolong;
	}
	*out_json = buf;
	*out_len = used;
	buf = NULL;
	rc = 0;
	goto out;
toolong:
	rc = moat_err_set(err, MOAT_EINVAL, "envelope: longer than %u bytes",
			  MOAT_ENVELOPE_MAX_BYTES);
out:
	free(buf);
	free(b64);
	return rc;
}

int moat_envelope_init(struct moat_envelope *env, const struct moat_manifest *m,
		       struct moat_err *err)
{
	char *json = NULL;
	size_t len = 0;
	memset(env, 0, sizeof(*env));
	int rc = moat_manifest_serialize(m, &json, &len, err);
	if (rc != 0) {
		return rc;
	}
	snprintf(env->payload_type, sizeof(env->payload_type), "%s", MOAT_FW_PAYLOAD_TYPE);
	memcpy(env->payload, json, len);
	env->payload_len = len;
	free(json);
	return 0;
}

int moat_envelope_sign(struct moat_envelope *env, EVP_PKEY *key, struct moat_err *err)
{
	enum moat_key_type type;
	char keyid[MOAT_FW_KEYID_HEX_LEN + 1];
	int rc = moat_fw_key_check(key, &type, err);
	if (rc == 0) {
		rc = moat_fw_keyid(key, keyid, err);
	}
	if (rc != 0) {
		return rc;
	}
	for (size_t i = 0; i < env->sig_count; i++) {
		if (strcmp(env->sigs[i].keyid, keyid) == 0) {
			return moat_err_set(err, MOAT_EEXIST, "key %s already signed this envelope",
					    keyid);
		}
	}
	if (env->sig_count >= MOAT_ENVELOPE_MAX_SIGS) {
		return moat_err_set(err, MOAT_EINVAL, "an envelope holds at most %d signatures",
				    MOAT_ENVELOPE_MAX_SIGS);
	}
	unsigned char pae[PAE_MAX_BYTES];
	size_t pae_len = 0;
	rc = moat_dsse_pae(env->payload_type, env->payload, env->payload_len, pae, sizeof(pae),
			   &pae_len, err);
	if (rc != 0) {
		return rc;
	}
	struct moat_envelope_sig *sg = &env->sigs[env->sig_count];
	memset(sg, 0, sizeof(*sg));
	rc = fw_sig_sign(key, pae, pae_len, sg->sig, sizeof(sg->sig), &sg->sig_len, err);
	if (rc != 0) {
		memset(sg, 0, sizeof(*sg));
		return rc;
	}
	memcpy(sg->keyid, keyid, sizeof(keyid));
	env->sig_count++;
	return 0;
}

/* ---- the decision ---- */

static const char *const verdict_names[MOAT_FW_VERDICT_COUNT] = {
	"accept",    "malformed",     "bad_payload_type", "unknown_key", "bad_signature",
	"threshold", "expired",	      "rollback",	  "wrong_type",	 "downgrade",
	"not_newer", "size_mismatch", "hash_mismatch",
};

const char *moat_fw_verdict_name(enum moat_fw_verdict v)
{
	return (unsigned)v < MOAT_FW_VERDICT_COUNT ? verdict_names[v] : "unknown";
}

static enum moat_fw_verdict verdict(struct moat_fw_decision *out, enum moat_fw_verdict v,
				    const char *fmt, ...) MOAT_PRINTF(3, 4);

static enum moat_fw_verdict verdict(struct moat_fw_decision *out, enum moat_fw_verdict v,
				    const char *fmt, ...)
{
	out->verdict = v;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out->msg, sizeof(out->msg), fmt, ap);
	va_end(ap);
	return v;
}

/* Counts valid signatures by distinct trusted keys. A trusted key whose signature fails is
 * tampering and refuses the envelope outright, whatever the other signatures say. */
static enum moat_fw_verdict check_signatures(const struct moat_envelope *env,
					     const struct moat_fw_trust *trust,
					     struct moat_fw_decision *out)
{
	unsigned char pae[PAE_MAX_BYTES];
	size_t pae_len = 0;
	if (moat_dsse_pae(env->payload_type, env->payload, env->payload_len, pae, sizeof(pae),
			  &pae_len, NULL) != 0) {
		return verdict(out, MOAT_FW_MALFORMED, "envelope payload too long");
	}
	bool counted[MOAT_FW_TRUST_MAX_KEYS] = {false};
	size_t valid = 0;
	size_t trusted_sigs = 0;
	size_t count = trust->count < MOAT_FW_TRUST_MAX_KEYS ? trust->count
							     : MOAT_FW_TRUST_MAX_KEYS;
	for (size_t i = 0; i < env->sig_count; i++) {
		const struct moat_envelope_sig *sg = &env->sigs[i];
		size_t k = 0;
		while (k < count && strcmp(trust->keys[k].keyid, sg->keyid) != 0) {
			k++;
		}
		if (k == count) {
			continue; /* not ours: an unknown key proves nothing */
		}
		trusted_sigs++;
		if (!fw_sig_verify(trust->keys[k].pkey, pae, pae_len, sg->sig, sg->sig_len)) {
			return verdict(out, MOAT_FW_BAD_SIGNATURE,
				       "signature by trusted key %.16s does not verify: the "
				       "envelope was modified",
				       sg->keyid);
		}
		if (!counted[k]) {
			/* The same key signing twice still counts once toward the threshold. */
			counted[k] = true;
			valid++;
		}
	}
	if (trusted_sigs == 0) {
		return verdict(out, MOAT_FW_UNKNOWN_KEY,
			       "no signature by a trusted key (%zu signature%s, none trusted)",
			       env->sig_count, env->sig_count == 1 ? "" : "s");
	}
	if (trust->threshold < 1 || valid < (size_t)trust->threshold) {
		return verdict(out, MOAT_FW_THRESHOLD,
			       "%zu valid signature%s by distinct trusted keys, %d required", valid,
			       valid == 1 ? "" : "s", trust->threshold);
	}
	return MOAT_FW_ACCEPT;
}

static enum moat_fw_verdict check_policy(const struct moat_manifest *m,
					 const struct moat_fw_policy *policy,
					 struct moat_fw_decision *out)
{
	if (strcmp(m->device_type, policy->device_type) != 0) {
		return verdict(out, MOAT_FW_WRONG_TYPE,
			       "manifest is for device type '%s', this device is '%s'",
			       m->device_type, policy->device_type);
	}
	if (m->security_version < policy->security_floor) {
		return verdict(out, MOAT_FW_DOWNGRADE,
			       "security_version %lld is below the device's floor %lld",
			       (long long)m->security_version, (long long)policy->security_floor);
	}
	if (policy->purpose == MOAT_FW_FOR_BOOT) {
		return MOAT_FW_ACCEPT;
	}
	if (m->issued_at < policy->last_issued_at) {
		return verdict(out, MOAT_FW_ROLLBACK,
			       "manifest issued at %lld is older than the last verified one "
			       "(%lld): replayed",
			       (long long)m->issued_at, (long long)policy->last_issued_at);
	}
	int64_t clock = policy->now > policy->last_issued_at ? policy->now : policy->last_issued_at;
	if (m->expires_at <= clock) {
		return verdict(out, MOAT_FW_EXPIRED, "manifest expired at %lld (device time %lld)",
			       (long long)m->expires_at, (long long)clock);
	}
	if (policy->current_version) {
		int cmp = 0;
		struct moat_err e;
		if (moat_semver_compare(m->version, policy->current_version, &cmp, &e) != 0) {
			return verdict(out, MOAT_FW_NOT_NEWER, "running version: %s", e.msg);
		}
		if (cmp <= 0) {
			return verdict(out, MOAT_FW_NOT_NEWER,
				       "version %s is not newer than the running %s", m->version,
				       policy->current_version);
		}
	}
	return MOAT_FW_ACCEPT;
}

enum moat_fw_verdict moat_fw_decide(const void *envelope_json, size_t len,
				    const struct moat_fw_trust *trust,
				    const struct moat_fw_policy *policy,
				    struct moat_manifest *out_manifest,
				    struct moat_fw_decision *out)
{
	struct moat_envelope env;
	struct moat_manifest m;
	struct moat_err e;
	enum moat_fw_verdict v;
	memset(out, 0, sizeof(*out));
	memset(&m, 0, sizeof(m));
	if (out_manifest) {
		memset(out_manifest, 0, sizeof(*out_manifest));
	}
	if (!trust || !policy || !policy->device_type) {
		return verdict(out, MOAT_FW_MALFORMED,
			       "no trust list or device type to decide with");
	}
	if (moat_envelope_parse(envelope_json, len, &env, &e) != 0) {
		return verdict(out, MOAT_FW_MALFORMED, "%s", e.msg);
	}
	if (strcmp(env.payload_type, MOAT_FW_PAYLOAD_TYPE) != 0) {
		return verdict(out, MOAT_FW_BAD_PAYLOAD_TYPE, "payload type '%s' is not %s",
			       env.payload_type, MOAT_FW_PAYLOAD_TYPE);
	}
	v = check_signatures(&env, trust, out);
	if (v != MOAT_FW_ACCEPT) {
		return v;
	}
	/* Only now, with the payload authenticated, is it parsed. */
	if (moat_manifest_parse(env.payload, env.payload_len, &m, &e) != 0) {
		return verdict(out, MOAT_FW_MALFORMED, "%s", e.msg);
	}
	v = check_policy(&m, policy, out);
	if (v != MOAT_FW_ACCEPT) {
		return v;
	}
	if (out_manifest) {
		*out_manifest = m;
	}
	return verdict(out, MOAT_FW_ACCEPT,
		       "%s %s (security_version %lld): threshold of %d of %zu trusted keys met",
		       m.device_type, m.version, (long long)m.security_version, trust->threshold,
		       trust->count);
}

/* ---- streaming image verification ---- */

int moat_fw_stream_init(struct moat_fw_stream *s, const struct moat_manifest *m,
			struct moat_err *err)
{
	memset(s, 0, sizeof(*s));
	if (m->size < 1 || m->size > MOAT_FW_IMAGE_MAX_BYTES) {
		return moat_err_set(err, MOAT_EINVAL, "manifest size %llu is outside 1..%llu",
				    (unsigned long long)m->size,
				    (unsigned long long)MOAT_FW_IMAGE_MAX_BYTES);
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return moat_err_ssl(err, MOAT_ECRYPTO, "starting SHA-256");
	}
	s->md = ctx;
	s->expected_size = m->size;
	memcpy(s->expected_sha256, m->sha256, sizeof(s->expected_sha256));
	return 0;
}

int moat_fw_stream_update(struct moat_fw_stream *s, const void *data, size_t len,
			  struct moat_err *err)
{
	if (!s->md) {
		return moat_err_set(err, MOAT_EINVAL, "image stream not started");
	}
	if (s->too_long || len > s->expected_size - s->seen) {
		s->too_long = true;
		return moat_err_set(err, MOAT_EVERIFY,
				    "image is longer than the manifest's size of %llu bytes",
				    (unsigned long long)s->expected_size);
	}
	if (len > 0 && EVP_DigestUpdate(s->md, data, len) != 1) {
		return moat_err_ssl(err, MOAT_ECRYPTO, "hashing the image");
	}
	s->seen += len;
	return 0;
}

int moat_fw_stream_final(struct moat_fw_stream *s, struct moat_err *err)
{
	if (!s->md) {
		return moat_err_set(err, MOAT_EINVAL, "image stream not started");
	}
	if (s->too_long) {
		return moat_err_set(err, MOAT_EVERIFY,
				    "image is longer than the manifest's size of %llu bytes",
				    (unsigned long long)s->expected_size);
	}
	if (s->seen != s->expected_size) {
		return moat_err_set(err, MOAT_EVERIFY,
				    "image is %llu bytes, the manifest says %llu",
				    (unsigned long long)s->seen,
				    (unsigned long long)s->expected_size);
	}
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (EVP_DigestFinal_ex(s->md, md, &mdlen) != 1 || mdlen != MOAT_SHA256_BYTES) {
		return moat_err_ssl(err, MOAT_ECRYPTO, "finishing SHA-256");
	}
	/* The context is spent; a second final must not reuse it. */
	EVP_MD_CTX_free(s->md);
	s->md = NULL;
	if (CRYPTO_memcmp(md, s->expected_sha256, MOAT_SHA256_BYTES) != 0) {
		return moat_err_set(err, MOAT_EVERIFY, "image SHA-256 does not match the manifest");
	}
	return 0;
}

void moat_fw_stream_free(struct moat_fw_stream *s)
{
	if (s) {
		EVP_MD_CTX_free(s->md);
		s->md = NULL;
	}
}

enum moat_fw_verdict moat_fw_stream_decide(struct moat_fw_stream *s, struct moat_fw_decision *out)
{
	struct moat_err e;
	memset(out, 0, sizeof(*out));
	bool size_ok = !s->too_long && s->seen == s->expected_size;
	if (moat_fw_stream_final(s, &e) == 0) {
		return verdict(out, MOAT_FW_ACCEPT, "image matches the manifest (%llu bytes)",
			       (unsigned long long)s->seen);
	}
	if (e.code != MOAT_EVERIFY) {
		return verdict(out, MOAT_FW_MALFORMED, "%s", e.msg);
	}
	return verdict(out, size_ok ? MOAT_FW_HASH_MISMATCH : MOAT_FW_SIZE_MISMATCH, "%s", e.msg);
}
