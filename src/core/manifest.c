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
#include "moat_device.h"

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

/* The decision is moat-device's (src/device-core, moat_device.h): the same code a
 * microcontroller runs. Here it runs on the OpenSSL port, whose keys may be the trust set's
 * EVP_PKEYs (key_len 0), so Ed25519 and RSA-PSS keys verify as before. */
_Static_assert((int)MDEV_FW_VERDICT_COUNT == (int)MOAT_FW_VERDICT_COUNT &&
		       (int)MDEV_FW_HASH_MISMATCH == (int)MOAT_FW_HASH_MISMATCH &&
		       (int)MDEV_FW_MALFORMED == (int)MOAT_FW_MALFORMED,
	       "moat_fw_verdict and mdev_fw_verdict are one list");
_Static_assert(MDEV_ENVELOPE_MAX_SIGS == MOAT_ENVELOPE_MAX_SIGS &&
		       MDEV_FW_SIG_MAX_BYTES == MOAT_FW_SIG_MAX_BYTES &&
		       MDEV_MANIFEST_MAX_BYTES == MOAT_MANIFEST_MAX_BYTES &&
		       MDEV_ENVELOPE_MAX_BYTES == MOAT_ENVELOPE_MAX_BYTES &&
		       MDEV_FW_TRUST_MAX_KEYS == MOAT_FW_TRUST_MAX_KEYS &&
		       MDEV_DEVICE_TYPE_MAX_LEN == MOAT_DEVICE_TYPE_MAX_LEN &&
		       MDEV_FW_VERSION_MAX_LEN == MOAT_FW_VERSION_MAX_LEN,
	       "moat-device's limits are moat's");

static void policy_to_mdev(const struct moat_fw_policy *p, struct mdev_fw_policy *out)
{
	out->purpose = p->purpose == MOAT_FW_FOR_BOOT ? MDEV_FW_FOR_BOOT : MDEV_FW_FOR_INSTALL;
	out->device_type = p->device_type;
	out->current_version = p->current_version;
	out->security_floor = p->security_floor;
	out->now = p->now;
	out->last_issued_at = p->last_issued_at;
}

static void manifest_from_mdev(const struct mdev_manifest *m, struct moat_manifest *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->device_type, m->device_type, sizeof(out->device_type));
	memcpy(out->version, m->version, sizeof(out->version));
	out->security_version = m->security_version;
	out->size = m->size;
	memcpy(out->sha256, m->sha256, sizeof(out->sha256));
	out->issued_at = m->issued_at;
	out->expires_at = m->expires_at;
}

static void manifest_to_mdev(const struct moat_manifest *m, struct mdev_manifest *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->device_type, m->device_type, sizeof(out->device_type));
	memcpy(out->version, m->version, sizeof(out->version));
	out->security_version = m->security_version;
	out->size = m->size;
	memcpy(out->sha256, m->sha256, sizeof(out->sha256));
	out->issued_at = m->issued_at;
	out->expires_at = m->expires_at;
}

enum moat_fw_verdict moat_fw_decide(const void *envelope_json, size_t len,
				    const struct moat_fw_trust *trust,
				    const struct moat_fw_policy *policy,
				    struct moat_manifest *out_manifest,
				    struct moat_fw_decision *out)
{
	struct mdev_trusted_key keys[MOAT_FW_TRUST_MAX_KEYS];
	struct mdev_trust mt = {.keys = keys, .count = 0, .threshold = 0};
	struct mdev_fw_policy mp;
	struct mdev_fw_decision md;
	struct mdev_manifest mm;
	struct mdev_fw_work *work = NULL;
	memset(out, 0, sizeof(*out));
	if (out_manifest) {
		memset(out_manifest, 0, sizeof(*out_manifest));
	}
	if (!trust || !policy || !policy->device_type) {
		return verdict(out, MOAT_FW_MALFORMED,
			       "no trust list or device type to decide with");
	}
	work = malloc(sizeof(*work));
	if (!work) {
		return verdict(out, MOAT_FW_MALFORMED, "out of memory");
	}
	mt.count = trust->count < MOAT_FW_TRUST_MAX_KEYS ? trust->count : MOAT_FW_TRUST_MAX_KEYS;
	mt.threshold = trust->threshold;
	for (size_t i = 0; i < mt.count; i++) {
		if (moat_hex_decode(trust->keys[i].keyid, keys[i].keyid, sizeof(keys[i].keyid)) !=
		    0) {
			free(work);
			return verdict(out, MOAT_FW_MALFORMED, "trust list: key %zu has no key id",
				       i);
		}
		keys[i].key = trust->keys[i].pkey;
		keys[i].key_len = 0;
	}
	policy_to_mdev(policy, &mp);
	enum mdev_fw_verdict v = mdev_fw_decide(envelope_json, len, &mt, &mp, work, &mm, &md);
	free(work);
	if (v == MDEV_FW_ACCEPT && out_manifest) {
		manifest_from_mdev(&mm, out_manifest);
	}
	return verdict(out, (enum moat_fw_verdict)v, "%s", md.msg);
}

/* ---- streaming image verification: moat-device's stream (the signed size a hard bound) */

int moat_fw_stream_init(struct moat_fw_stream *s, const struct moat_manifest *m,
			struct moat_err *err)
{
	struct mdev_manifest mm;
	memset(s, 0, sizeof(*s));
	if (m->size < 1 || m->size > MOAT_FW_IMAGE_MAX_BYTES) {
		return moat_err_set(err, MOAT_EINVAL, "manifest size %llu is outside 1..%llu",
				    (unsigned long long)m->size,
				    (unsigned long long)MOAT_FW_IMAGE_MAX_BYTES);
	}
	manifest_to_mdev(m, &mm);
	if (mdev_fw_stream_init(&s->dev, &mm) != 0) {
		return moat_err_ssl(err, MOAT_ECRYPTO, "starting SHA-256");
	}
	return 0;
}

int moat_fw_stream_update(struct moat_fw_stream *s, const void *data, size_t len,
			  struct moat_err *err)
{
	if (!s->dev.started && !s->dev.too_long) {
		return moat_err_set(err, MOAT_EINVAL, "image stream not started");
	}
	if (mdev_fw_stream_update(&s->dev, data, len) != 0) {
		if (s->dev.too_long) {
			return moat_err_set(err, MOAT_EVERIFY,
					    "image is longer than the manifest's size of %llu bytes",
					    (unsigned long long)s->dev.expected_size);
		}
		return moat_err_ssl(err, MOAT_ECRYPTO, "hashing the image");
	}
	return 0;
}

int moat_fw_stream_final(struct moat_fw_stream *s, struct moat_err *err)
{
	struct mdev_fw_decision d;
	enum mdev_fw_verdict v = mdev_fw_stream_decide(&s->dev, &d);
	if (v == MDEV_FW_ACCEPT) {
		return 0;
	}
	return moat_err_set(err, v == MDEV_FW_MALFORMED ? MOAT_EINVAL : MOAT_EVERIFY, "%s", d.msg);
}

void moat_fw_stream_free(struct moat_fw_stream *s)
{
	if (s) {
		mdev_fw_stream_abort(&s->dev);
	}
}

enum moat_fw_verdict moat_fw_stream_decide(struct moat_fw_stream *s, struct moat_fw_decision *out)
{
	struct mdev_fw_decision d;
	memset(out, 0, sizeof(*out));
	enum mdev_fw_verdict v = mdev_fw_stream_decide(&s->dev, &d);
	return verdict(out, (enum moat_fw_verdict)v, "%s", d.msg);
}
