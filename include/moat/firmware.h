/* firmware.h: the operator's side of signed firmware (src/firmware): signing keys kept
 * encrypted at rest, edits of the deployment's trust list, and signing an image into an
 * envelope. Reading the trust list and checking an image the way a device does is
 * moat/fwverify.h (the device side's one copy); moat/manifest.h holds the rules.
 *
 * The keys directory (firmware/keys/ of a deployment) holds:
 *   <keyid>.key   the private key, PKCS#8 encrypted with AES-256-CBC under scrypt, 0600
 *   <keyid>.pub   its public key (PEM SubjectPublicKeyInfo), 0644
 *   <keyid>.uri   instead of <keyid>.key for a key kept in a PKCS#11 token: the RFC 7512
 *                 URI that names it (moat/pkcs11.h; no PIN in it), 0600
 *   trust.json    the trust file devices get (moat_fw_trust_parse format), 0644
 *   revoked/      keys taken out of trust.json by moat_fwkeys_revoke, kept for the record
 * Every file is written atomically; trust.json changes before key files move, so a crash
 * never leaves a revoked key trusted. Callers serialize writers (the deployment lock).
 */
#ifndef MOAT_FIRMWARE_H
#define MOAT_FIRMWARE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "moat/err.h"
#include "moat/fwverify.h"
#include "moat/manifest.h"

#define MOAT_FW_KEYS_DIR "firmware/keys"
#define MOAT_FW_TRUST_FILE "trust.json"
#define MOAT_FW_KEYID_MIN_PREFIX 8 /* shortest key id prefix accepted on a command line */

/* Generates a key of type, writes <keyid>.key (encrypted under passphrase, at least
 * MOAT_PASSPHRASE_MIN_LEN characters) and <keyid>.pub, and adds it to trust.json (created
 * with threshold 1 when absent). On failure nothing new is left behind. */
MOAT_MUST_CHECK int moat_fwkeys_generate(const char *keys_dir, enum moat_key_type type,
					 const char *passphrase,
					 char out_keyid[MOAT_FW_KEYID_HEX_LEN + 1],
					 struct moat_err *err);

/* Registers a key kept in a PKCS#11 token (key: loaded by moat_pkcs11_key_load; only its
 * public half is read): writes <keyid>.uri (uri, one line) and <keyid>.pub and adds the key
 * to trust.json (created with threshold 1 when absent). Refuses a key type firmware does
 * not allow and a key already trusted (MOAT_EEXIST). On failure nothing new is left. */
MOAT_MUST_CHECK int moat_fwkeys_add_token(const char *keys_dir, EVP_PKEY *key, const char *uri,
					  char out_keyid[MOAT_FW_KEYID_HEX_LEN + 1],
					  struct moat_err *err);

/* The URI recorded for a token key by moat_fwkeys_add_token (caller frees *out_uri);
 * MOAT_ENOENT when keyid has no <keyid>.uri here. */
MOAT_MUST_CHECK int moat_fwkeys_token_uri(const char *keys_dir, const char *keyid, char **out_uri,
					  struct moat_err *err);

/* A full key id from a unique prefix (at least MOAT_FW_KEYID_MIN_PREFIX hex digits) of a
 * key in trust.json. */
MOAT_MUST_CHECK int moat_fwkeys_resolve(const char *keys_dir, const char *prefix,
					char out_keyid[MOAT_FW_KEYID_HEX_LEN + 1],
					struct moat_err *err);

/* Loads <keyid>.key. A wrong passphrase is MOAT_ECRYPTO naming the file. The key must
 * match its id. Caller frees *out_key. */
MOAT_MUST_CHECK int moat_fwkeys_load_private(const char *keys_dir, const char *keyid,
					     const char *passphrase, EVP_PKEY **out_key,
					     struct moat_err *err);

/* Writes trust.json atomically (0644: public keys only). */
MOAT_MUST_CHECK int moat_fwtrust_save(const char *path, const struct moat_fw_trust *trust,
				      struct moat_err *err);

/* Sets the threshold of trust.json (1..number of keys). */
MOAT_MUST_CHECK int moat_fwkeys_set_threshold(const char *keys_dir, int threshold,
					      struct moat_err *err);

/* Takes keyid out of trust.json and moves its files (.key or .uri, and .pub) to revoked/.
 * new_threshold 0 keeps the threshold, and refuses (MOAT_EDENIED, nothing changed) when the
 * keys left would be fewer than it: the threshold is never lowered silently; new_threshold
 * 1..keys left sets it (MOAT_EINVAL beyond). Refuses to remove the last trusted key:
 * generate its replacement first. *out_threshold (may be NULL) receives the new threshold. */
MOAT_MUST_CHECK int moat_fwkeys_revoke(const char *keys_dir, const char *keyid, int new_threshold,
				       int *out_threshold, struct moat_err *err);

struct moat_fw_sign_req {
	const char *image_path;
	const char *device_type;
	const char *version;
	int64_t security_version;
	int64_t issued_at;
	int64_t expires_at;
};

/* Hashes the image, builds the manifest and an envelope signed by every key (in order).
 * *out_json (NUL-terminated, caller frees) is the envelope; out_manifest may be NULL. */
MOAT_MUST_CHECK int moat_fw_sign_image(const struct moat_fw_sign_req *req, EVP_PKEY *const *keys,
				       size_t key_count, struct moat_manifest *out_manifest,
				       char **out_json, size_t *out_len, struct moat_err *err);

#endif
