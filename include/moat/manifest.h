/* manifest.h: signed firmware manifests, the rules every part of the update path shares
 * (src/core/manifest.c). Pure: no files, no sockets, no clock; callers pass time and keys.
 *
 * A release is an image plus an envelope in the manner of DSSE:
 *   {"payloadType": MOAT_FW_PAYLOAD_TYPE, "payload": base64(manifest JSON),
 *    "signatures": [{"keyid": hex SHA-256 of the key's SubjectPublicKeyInfo, "sig": base64}]}
 * Each signature covers PAE(payloadType, payload) =
 *   "DSSEv1" SP LEN(type) SP type SP LEN(payload) SP payload    (LEN: ASCII decimal)
 * so the whole manifest is signed, never the image hash alone. The manifest:
 *   {"device_type", "version" (semantic version), "security_version", "size", "sha256" (hex),
 *    "issued_at", "expires_at"} (integers are seconds since the epoch / bytes).
 *
 * Parsers are strict and bounded: an unknown, duplicate or missing field, a wrong type, a
 * non-canonical base64 string, or an input over its size limit is refused with a message
 * that names the field. Signatures are verified over the raw payload before the payload is
 * parsed. Keys: ec-p256 (ECDSA SHA-256), ed25519, rsa-3072 (RSA-PSS SHA-256, salt = 32).
 *
 * The decision a device makes (moat_fw_decide) is one function with one reason code, so the
 * CLI's `fw verify`, the agent, the simulator and moat-boot cannot disagree.
 */
#ifndef MOAT_MANIFEST_H
#define MOAT_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "moat/codec.h" /* moat_hex_*, moat_b64_*: the digests and signatures here */
#include "moat/err.h"
#include "moat/identity.h"
#include "moat/keys.h"
#include "moat_device.h" /* moat-device: the rules moat_fw_decide applies */

#define MOAT_SHA256_BYTES 32
#define MOAT_SHA256_HEX_LEN 64
#define MOAT_FW_PAYLOAD_TYPE "application/vnd.moat.manifest.v1+json"
#define MOAT_FW_PAYLOAD_TYPE_MAX_LEN 128
#define MOAT_ENVELOPE_MAX_BYTES (32u * 1024u) /* whole envelope JSON */
#define MOAT_MANIFEST_MAX_BYTES 2048u	      /* decoded manifest JSON */
#define MOAT_ENVELOPE_MAX_SIGS 8
#define MOAT_FW_SIG_MAX_BYTES 512 /* RSA-4096 fits */
#define MOAT_FW_KEYID_HEX_LEN 64
#define MOAT_FW_VERSION_MAX_LEN 64
#define MOAT_FW_IMAGE_MAX_BYTES (4ull * 1024u * 1024u * 1024u) /* 4 GiB */
#define MOAT_FW_TRUST_MAX_KEYS 16
#define MOAT_FW_TRUST_MAX_BYTES (64u * 1024u)
#define MOAT_FW_INT_MAX 9007199254740991LL /* 2^53 - 1: exact in every JSON reader */

struct moat_manifest {
	char device_type[MOAT_DEVICE_TYPE_MAX_LEN + 1];
	char version[MOAT_FW_VERSION_MAX_LEN + 1];
	int64_t security_version; /* >= 0 */
	uint64_t size;		  /* 1 .. MOAT_FW_IMAGE_MAX_BYTES */
	uint8_t sha256[MOAT_SHA256_BYTES];
	int64_t issued_at;
	int64_t expires_at; /* > issued_at */
};

struct moat_envelope_sig {
	char keyid[MOAT_FW_KEYID_HEX_LEN + 1];
	unsigned char sig[MOAT_FW_SIG_MAX_BYTES];
	size_t sig_len;
};

/* Fixed-size: no allocation, safe to keep on the stack (about 6 KiB). */
struct moat_envelope {
	char payload_type[MOAT_FW_PAYLOAD_TYPE_MAX_LEN + 1];
	unsigned char payload[MOAT_MANIFEST_MAX_BYTES];
	size_t payload_len;
	struct moat_envelope_sig sigs[MOAT_ENVELOPE_MAX_SIGS];
	size_t sig_count;
};

/* ---- manifests and envelopes ---- */

/* Parses a manifest (len bytes, no NUL needed). On failure *out is zeroed. */
MOAT_MUST_CHECK int moat_manifest_parse(const void *json, size_t len, struct moat_manifest *out,
					struct moat_err *err);
/* Canonical JSON of m (fixed key order, no spaces), NUL-terminated, caller frees. Validates
 * every field first, so what is signed always parses. */
MOAT_MUST_CHECK int moat_manifest_serialize(const struct moat_manifest *m, char **out_json,
					    size_t *out_len, struct moat_err *err);

/* Parses an envelope (len bytes <= MOAT_ENVELOPE_MAX_BYTES). Does NOT verify anything: use
 * moat_fw_decide. On failure *out is zeroed. */
MOAT_MUST_CHECK int moat_envelope_parse(const void *json, size_t len, struct moat_envelope *out,
					struct moat_err *err);
/* JSON text of env, NUL-terminated, caller frees. */
MOAT_MUST_CHECK int moat_envelope_serialize(const struct moat_envelope *env, char **out_json,
					    size_t *out_len, struct moat_err *err);
/* A new unsigned envelope whose payload is the canonical JSON of m. */
MOAT_MUST_CHECK int moat_envelope_init(struct moat_envelope *env, const struct moat_manifest *m,
				       struct moat_err *err);
/* Appends a signature by key over PAE(payload_type, payload). Refuses a key type that is
 * not allowed, a key that already signed, and more than MOAT_ENVELOPE_MAX_SIGS. */
MOAT_MUST_CHECK int moat_envelope_sign(struct moat_envelope *env, EVP_PKEY *key,
				       struct moat_err *err);

/* DSSE pre-authentication encoding into buf (size bytes); *out_len its length. */
MOAT_MUST_CHECK int moat_dsse_pae(const char *payload_type, const unsigned char *payload,
				  size_t payload_len, unsigned char *buf, size_t size,
				  size_t *out_len, struct moat_err *err);

/* ---- keys and trust ---- */

/* The key types firmware signing allows (keys.h names them; moat_key_generate makes them):
 * "ec-p256", "ed25519", "rsa-3072"; anything else refused. */
MOAT_MUST_CHECK int moat_fw_key_type_parse(const char *text, enum moat_key_type *out,
					   struct moat_err *err);
/* The type of a key moat accepts for firmware (P-256, Ed25519, RSA 3072..4096 bits, which
 * all share the RSA-PSS scheme and are classed MOAT_KEY_RSA_3072). */
MOAT_MUST_CHECK int moat_fw_key_check(EVP_PKEY *key, enum moat_key_type *out_type,
				      struct moat_err *err);
/* Lower-case hex SHA-256 of the DER SubjectPublicKeyInfo. */
MOAT_MUST_CHECK int moat_fw_keyid(EVP_PKEY *key, char out[MOAT_FW_KEYID_HEX_LEN + 1],
				  struct moat_err *err);

struct moat_fw_trusted_key {
	char keyid[MOAT_FW_KEYID_HEX_LEN + 1];
	EVP_PKEY *pkey; /* public key, owned by the trust set */
};

/* The keys a device trusts and how many of them must sign. Owned by the caller; free with
 * moat_fw_trust_free (which also accepts a zeroed struct). */
struct moat_fw_trust {
	struct moat_fw_trusted_key keys[MOAT_FW_TRUST_MAX_KEYS];
	size_t count;
	int threshold; /* 1 .. count */
};

/* Trust file: {"threshold": N, "keys": ["-----BEGIN PUBLIC KEY-----...", ...]}. Strict
 * like the other parsers; duplicate keys and a threshold outside 1..count are refused. */
MOAT_MUST_CHECK int moat_fw_trust_parse(const void *json, size_t len, struct moat_fw_trust *out,
					struct moat_err *err);
MOAT_MUST_CHECK int moat_fw_trust_serialize(const struct moat_fw_trust *trust, char **out_json,
					    size_t *out_len, struct moat_err *err);
/* Adds the public half of key (the trust set keeps its own reference). MOAT_EEXIST when
 * the key is already trusted. */
MOAT_MUST_CHECK int moat_fw_trust_add(struct moat_fw_trust *trust, EVP_PKEY *key,
				      struct moat_err *err);
/* Removes the key with keyid (MOAT_ENOENT if absent); lowers the threshold to count when
 * it would exceed it (never below 1). */
MOAT_MUST_CHECK int moat_fw_trust_remove(struct moat_fw_trust *trust, const char *keyid,
					 struct moat_err *err);
void moat_fw_trust_free(struct moat_fw_trust *trust);

/* ---- the device's decision ---- */

enum moat_fw_verdict {
	MOAT_FW_ACCEPT = 0,
	MOAT_FW_MALFORMED,	  /* envelope or manifest does not parse */
	MOAT_FW_BAD_PAYLOAD_TYPE, /* not MOAT_FW_PAYLOAD_TYPE */
	MOAT_FW_UNKNOWN_KEY,	  /* no signature by a trusted key */
	MOAT_FW_BAD_SIGNATURE,	  /* a trusted key's signature does not verify (tampering) */
	MOAT_FW_THRESHOLD,	  /* fewer valid trusted signatures than the threshold */
	MOAT_FW_EXPIRED,	  /* expires_at <= max(now, last issued_at): freeze attack */
	MOAT_FW_ROLLBACK,	  /* issued_at older than the last verified manifest */
	MOAT_FW_WRONG_TYPE,	  /* another device type: mix-and-match */
	MOAT_FW_DOWNGRADE,	  /* security_version below the device's floor */
	MOAT_FW_NOT_NEWER,	  /* version not newer than the running one */
	MOAT_FW_SIZE_MISMATCH,	  /* image shorter or longer than the manifest's size */
	MOAT_FW_HASH_MISMATCH,	  /* image SHA-256 differs */
};
#define MOAT_FW_VERDICT_COUNT 13

/* Short stable names ("bad_signature", "expired", ...) for logs and update events. */
const char *moat_fw_verdict_name(enum moat_fw_verdict v);

enum moat_fw_purpose {
	MOAT_FW_FOR_INSTALL = 0, /* every rule */
	MOAT_FW_FOR_BOOT = 1,	 /* an installed slot: signatures, device type, floor; not expiry,
				    replay or "newer" (an installed image must not stop booting
				    because its manifest aged) */
};

struct moat_fw_policy {
	enum moat_fw_purpose purpose;
	const char *device_type;     /* the device's own type; required */
	const char *current_version; /* running version; NULL: nothing installed */
	int64_t security_floor;	     /* lowest security_version allowed */
	int64_t now;		     /* the device's clock */
	int64_t last_issued_at;	     /* issued_at of the last manifest it verified (0: none) */
};

struct moat_fw_decision {
	enum moat_fw_verdict verdict;
	char msg[MOAT_ERR_MSG_MAX]; /* one line: why */
};

/* Verifies the envelope (len bytes of JSON) against trust and policy. Returns the verdict
 * (also in out->verdict). On MOAT_FW_ACCEPT *out_manifest holds the signed manifest; on any
 * refusal it is zeroed. out_manifest may be NULL. */
enum moat_fw_verdict moat_fw_decide(const void *envelope_json, size_t len,
				    const struct moat_fw_trust *trust,
				    const struct moat_fw_policy *policy,
				    struct moat_manifest *out_manifest,
				    struct moat_fw_decision *out);

/* ---- semantic versions (semver.org 2.0 precedence; build metadata ignored) ---- */

MOAT_MUST_CHECK int moat_semver_check(const char *v, struct moat_err *err);
/* *out_cmp < 0, 0, > 0 as a precedes, equals, follows b. Both must be valid. */
MOAT_MUST_CHECK int moat_semver_compare(const char *a, const char *b, int *out_cmp,
					struct moat_err *err);

/* ---- streaming image verification ---- */

/* Hashes an image as it arrives and never accepts more than the manifest's size. Owned by
 * the caller: init, update..., final, free (free is always safe after init). */
struct moat_fw_stream {
	struct mdev_fw_stream dev; /* moat-device's stream (moat_device.h) */
};

MOAT_MUST_CHECK int moat_fw_stream_init(struct moat_fw_stream *s, const struct moat_manifest *m,
					struct moat_err *err);
/* Hashes len bytes. Data beyond the manifest's size is refused (MOAT_EVERIFY, nothing of
 * this call is hashed): the caller MUST stop reading. */
MOAT_MUST_CHECK int moat_fw_stream_update(struct moat_fw_stream *s, const void *data, size_t len,
					  struct moat_err *err);
/* MOAT_EVERIFY unless exactly size bytes with the manifest's SHA-256 were seen. */
MOAT_MUST_CHECK int moat_fw_stream_final(struct moat_fw_stream *s, struct moat_err *err);
void moat_fw_stream_free(struct moat_fw_stream *s);
/* moat_fw_stream_final as a decision: MOAT_FW_ACCEPT, MOAT_FW_SIZE_MISMATCH (too short, or
 * an update was refused as too long) or MOAT_FW_HASH_MISMATCH, with the reason in out. */
enum moat_fw_verdict moat_fw_stream_decide(struct moat_fw_stream *s, struct moat_fw_decision *out);

#endif
