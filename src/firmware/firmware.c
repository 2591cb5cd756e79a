/* firmware.c: firmware signing keys on disk, the trust file, signing and checking images
 * from files (see moat/firmware.h). The rules themselves live in src/core/manifest.c; this
 * file adds the files around them: keys encrypted at rest (keystore.c of src/pki, the form
 * the CA key has too), atomic writes, bounded reads.
 */
#include "moat/firmware.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "moat/fsutil.h"
#include "moat/pki.h"

#define KEY_FILE_MAX_BYTES (64u * 1024u)
#define URI_FILE_MAX_BYTES 4096u

static int key_path(char *buf, size_t size, const char *keys_dir, const char *keyid,
		    const char *ext, struct moat_err *err)
{
	return moat_path_join(buf, size, err, "%s/%s.%s", keys_dir, keyid, ext);
}

static int trust_path(char *buf, size_t size, const char *keys_dir, struct moat_err *err)
{
	return moat_path_join(buf, size, err, "%s/%s", keys_dir, MOAT_FW_TRUST_FILE);
}

int moat_fwtrust_save(const char *path, const struct moat_fw_trust *trust, struct moat_err *err)
{
	char *json = NULL;
	size_t len = 0;
	int rc = moat_fw_trust_serialize(trust, &json, &len, err);
	if (rc == 0) {
		/* Public keys only: devices and operators read it. */
		rc = moat_fs_write_atomic(path, json, len, 0644, err);
	}
	free(json);
	return rc;
}

static int public_pem(EVP_PKEY *key, char **out_pem, size_t *out_len, struct moat_err *err)
{
	int rc = MOAT_ECRYPTO;
	BIO *bio = BIO_new(BIO_s_mem());
	*out_pem = NULL;
	if (!bio || PEM_write_bio_PUBKEY(bio, key) != 1) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "encoding the public key");
		goto out;
	}
	char *data = NULL;
	long n = BIO_get_mem_data(bio, &data);
	if (n <= 0 || !(*out_pem = malloc((size_t)n))) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(*out_pem, data, (size_t)n);
	*out_len = (size_t)n;
	rc = 0;
out:
	BIO_free(bio);
	return rc;
}

int moat_fwkeys_generate(const char *keys_dir, enum moat_key_type type, const char *passphrase,
			 char out_keyid[MOAT_FW_KEYID_HEX_LEN + 1], struct moat_err *err)
{
	int rc;
	EVP_PKEY *key = NULL;
	char *priv = NULL, *pub = NULL;
	size_t priv_len = 0, pub_len = 0;
	char kpath[4096], ppath[4096], tpath[4096];
	bool wrote_key = false, wrote_pub = false;
	struct moat_fw_trust trust;
	memset(&trust, 0, sizeof(trust));
	out_keyid[0] = '\0';
	if (!passphrase || strlen(passphrase) < MOAT_PASSPHRASE_MIN_LEN) {
		return moat_err_set(err, MOAT_EINVAL,
				    "firmware key passphrase must have at least %d characters",
				    MOAT_PASSPHRASE_MIN_LEN);
	}
	rc = moat_fs_mkdirs(keys_dir, 0700, err);
	if (rc == 0) {
		rc = trust_path(tpath, sizeof(tpath), keys_dir, err);
	}
	if (rc != 0) {
		goto out;
	}
	/* Read the trust list first: a damaged one stops us before any key is made. */
	rc = moat_fwtrust_load(tpath, &trust, err);
	if (rc == MOAT_ENOENT) {
		memset(&trust, 0, sizeof(trust));
		rc = 0;
	}
	if (rc != 0) {
		goto out;
	}
	if (trust.count >= MOAT_FW_TRUST_MAX_KEYS) {
		rc = moat_err_set(err, MOAT_EINVAL, "%s: already %d trusted keys, revoke one first",
				  tpath, MOAT_FW_TRUST_MAX_KEYS);
		goto out;
	}
	rc = moat_key_generate(type, &key, err);
	if (rc == 0) {
		rc = moat_fw_keyid(key, out_keyid, err);
	}
	if (rc == 0) {
		rc = moat_pki_key_encrypt(key, passphrase, &priv, &priv_len, err);
	}
	if (rc == 0) {
		rc = public_pem(key, &pub, &pub_len, err);
	}
	if (rc == 0) {
		rc = key_path(kpath, sizeof(kpath), keys_dir, out_keyid, "key", err);
	}
	if (rc == 0) {
		rc = key_path(ppath, sizeof(ppath), keys_dir, out_keyid, "pub", err);
	}
	if (rc != 0) {
		goto out;
	}
	rc = moat_fs_write_atomic(kpath, priv, priv_len, 0600, err);
	if (rc != 0) {
		goto out;
	}
	wrote_key = true;
	rc = moat_fs_write_atomic(ppath, pub, pub_len, 0644, err);
	if (rc != 0) {
		goto out;
	}
	wrote_pub = true;
	rc = moat_fw_trust_add(&trust, key, err);
	if (rc == 0) {
		rc = moat_fwtrust_save(tpath, &trust, err);
	}
out:
	if (rc != 0) {
		if (wrote_key) {
			unlink(kpath);
		}
		if (wrote_pub) {
			unlink(ppath);
		}
		out_keyid[0] = '\0';
	}
	moat_fw_trust_free(&trust);
	EVP_PKEY_free(key);
	if (priv) {
		OPENSSL_cleanse(priv, priv_len);
	}
	free(priv);
	free(pub);
	return rc;
}

int moat_fwkeys_add_token(const char *keys_dir, EVP_PKEY *key, const char *uri,
			  char out_keyid[MOAT_FW_KEYID_HEX_LEN + 1], struct moat_err *err)
{
	int rc;
	enum moat_key_type type;
	char *pub = NULL, *line = NULL;
	size_t pub_len = 0, uri_len = uri ? strlen(uri) : 0;
	char upath[4096], ppath[4096], kpath[4096], tpath[4096];
	bool wrote_uri = false, wrote_pub = false;
	struct moat_fw_trust trust;
	memset(&trust, 0, sizeof(trust));
	out_keyid[0] = '\0';
	if (uri_len == 0 || uri_len + 2 > URI_FILE_MAX_BYTES || strpbrk(uri, "\r\n")) {
		return moat_err_set(err, MOAT_EINVAL,
				    "token key URI: empty, too long or not one line");
	}
	if ((rc = moat_fw_key_check(key, &type, err)) != 0 ||
	    (rc = moat_fw_keyid(key, out_keyid, err)) != 0 ||
	    (rc = moat_fs_mkdirs(keys_dir, 0700, err)) != 0 ||
	    (rc = trust_path(tpath, sizeof(tpath), keys_dir, err)) != 0 ||
	    (rc = key_path(upath, sizeof(upath), keys_dir, out_keyid, "uri", err)) != 0 ||
	    (rc = key_path(ppath, sizeof(ppath), keys_dir, out_keyid, "pub", err)) != 0 ||
	    (rc = key_path(kpath, sizeof(kpath), keys_dir, out_keyid, "key", err)) != 0) {
		goto out;
	}
	rc = moat_fwtrust_load(tpath, &trust, err);
	if (rc == MOAT_ENOENT) {
		memset(&trust, 0, sizeof(trust));
		rc = 0;
	}
	if (rc != 0) {
		goto out;
	}
	/* Refused before any file is written: the trust list decides what is already ours. */
	if ((rc = moat_fw_trust_add(&trust, key, err)) != 0) {
		if (rc == MOAT_EEXIST) {
			rc = moat_err_set(err, MOAT_EEXIST, "firmware key %.16s is already trusted",
					  out_keyid);
		}
		goto out;
	}
	if (moat_fs_exists(kpath) || moat_fs_exists(upath)) {
		rc = moat_err_set(err, MOAT_EEXIST, "%s: a key file for %.16s is already here",
				  keys_dir, out_keyid);
		goto out;
	}
	if (!(line = malloc(uri_len + 2))) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(line, uri, uri_len);
	line[uri_len] = '\n';
	line[uri_len + 1] = '\0';
	if ((rc = public_pem(key, &pub, &pub_len, err)) != 0 ||
	    (rc = moat_fs_write_atomic(upath, line, uri_len + 1, 0600, err)) != 0) {
		goto out;
	}
	wrote_uri = true;
	if ((rc = moat_fs_write_atomic(ppath, pub, pub_len, 0644, err)) != 0) {
		goto out;
	}
	wrote_pub = true;
	rc = moat_fwtrust_save(tpath, &trust, err);
out:
	if (rc != 0) {
		if (wrote_uri) {
			unlink(upath);
		}
		if (wrote_pub) {
			unlink(ppath);
		}
		out_keyid[0] = '\0';
	}
	moat_fw_trust_free(&trust);
	free(line);
	free(pub);
	return rc;
}

int moat_fwkeys_token_uri(const char *keys_dir, const char *keyid, char **out_uri,
			  struct moat_err *err)
{
	char path[4096];
	char *data = NULL;
	size_t len = 0;
	*out_uri = NULL;
	int rc = key_path(path, sizeof(path), keys_dir, keyid, "uri", err);
	if (rc != 0) {
		return rc;
	}
	if (!moat_fs_exists(path)) {
		return moat_err_set(err, MOAT_ENOENT, "%s: no token key for %.16s here", path,
				    keyid);
	}
	if ((rc = moat_fs_read_all(path, URI_FILE_MAX_BYTES, &data, &len, err)) != 0) {
		return rc;
	}
	data[strcspn(data, "\r\n")] = '\0';
	if (!data[0]) {
		free(data);
		return moat_err_set(err, MOAT_EINVAL, "%s: empty", path);
	}
	*out_uri = data;
	return 0;
}

int moat_fwkeys_resolve(const char *keys_dir, const char *prefix,
			char out_keyid[MOAT_FW_KEYID_HEX_LEN + 1], struct moat_err *err)
{
	char tpath[4096];
	struct moat_fw_trust trust;
	out_keyid[0] = '\0';
	size_t plen = prefix ? strnlen(prefix, MOAT_FW_KEYID_HEX_LEN + 1) : 0;
	if (plen < MOAT_FW_KEYID_MIN_PREFIX || plen > MOAT_FW_KEYID_HEX_LEN ||
	    strspn(prefix, "0123456789abcdef") != plen) {
		return moat_err_set(err, MOAT_EINVAL,
				    "key id '%.80s' must be %d to %d lower-case hex digits",
				    prefix ? prefix : "", MOAT_FW_KEYID_MIN_PREFIX,
				    MOAT_FW_KEYID_HEX_LEN);
	}
	int rc = trust_path(tpath, sizeof(tpath), keys_dir, err);
	if (rc == 0) {
		rc = moat_fwtrust_load(tpath, &trust, err);
	}
	if (rc != 0) {
		return rc;
	}
	size_t found = 0;
	for (size_t i = 0; i < trust.count; i++) {
		if (strncmp(trust.keys[i].keyid, prefix, plen) == 0) {
			if (found++ == 0) {
				memcpy(out_keyid, trust.keys[i].keyid, MOAT_FW_KEYID_HEX_LEN + 1);
			}
		}
	}
	moat_fw_trust_free(&trust);
	if (found == 0) {
		rc = moat_err_set(err, MOAT_ENOENT, "no trusted firmware key %s", prefix);
	} else if (found > 1) {
		rc = moat_err_set(err, MOAT_EINVAL, "key id prefix %s matches %zu keys", prefix,
				  found);
	}
	if (rc != 0) {
		out_keyid[0] = '\0';
	}
	return rc;
}

int moat_fwkeys_load_private(const char *keys_dir, const char *keyid, const char *passphrase,
			     EVP_PKEY **out_key, struct moat_err *err)
{
	char path[4096];
	char *data = NULL;
	size_t len = 0;
	EVP_PKEY *key = NULL;
	*out_key = NULL;
	int rc = key_path(path, sizeof(path), keys_dir, keyid, "key", err);
	if (rc != 0) {
		return rc;
	}
	if (!moat_fs_exists(path)) {
		return moat_err_set(err, MOAT_ENOENT, "%s: no private key for %.16s here", path,
				    keyid);
	}
	rc = moat_fs_read_all(path, KEY_FILE_MAX_BYTES, &data, &len, err);
	if (rc != 0) {
		return rc;
	}
	rc = moat_pki_key_decrypt(path, data, len, passphrase, &key, err);
	if (rc != 0) {
		/* moat writes signing keys only encrypted: one that is not is damaged too */
		rc = moat_err_set(err, MOAT_ECRYPTO, "%s: wrong passphrase or damaged key", path);
		goto out;
	}
	enum moat_key_type type;
	char id[MOAT_FW_KEYID_HEX_LEN + 1];
	rc = moat_fw_key_check(key, &type, err);
	if (rc == 0) {
		rc = moat_fw_keyid(key, id, err);
	}
	if (rc == 0 && strcmp(id, keyid) != 0) {
		rc = moat_err_set(err, MOAT_EVERIFY, "%s: holds key %.16s, not %.16s", path, id,
				  keyid);
	}
	if (rc != 0) {
		goto out;
	}
	*out_key = key;
	key = NULL;
out:
	EVP_PKEY_free(key);
	OPENSSL_cleanse(data, len);
	free(data);
	return rc;
}

int moat_fwkeys_set_threshold(const char *keys_dir, int threshold, struct moat_err *err)
{
	char tpath[4096];
	struct moat_fw_trust trust;
	int rc = trust_path(tpath, sizeof(tpath), keys_dir, err);
	if (rc == 0) {
		rc = moat_fwtrust_load(tpath, &trust, err);
	}
	if (rc != 0) {
		return rc;
	}
	if (threshold < 1 || (size_t)threshold > trust.count) {
		rc = moat_err_set(err, MOAT_EINVAL, "threshold %d: must be 1..%zu (trusted keys)",
				  threshold, trust.count);
	} else {
		trust.threshold = threshold;
		rc = moat_fwtrust_save(tpath, &trust, err);
	}
	moat_fw_trust_free(&trust);
	return rc;
}

/* Moves keys_dir/<keyid>.<ext> into keys_dir/revoked/ when it exists. */
static int move_revoked(const char *keys_dir, const char *keyid, const char *ext,
			struct moat_err *err)
{
	char from[4096], to[4096];
	int rc = key_path(from, sizeof(from), keys_dir, keyid, ext, err);
	if (rc == 0) {
		rc = moat_path_join(to, sizeof(to), err, "%s/revoked/%s.%s", keys_dir, keyid, ext);
	}
	if (rc != 0 || !moat_fs_exists(from)) {
		return rc;
	}
	if (rename(from, to) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "moving %s to %s", from, to);
	}
	return 0;
}

/* The threshold after keyid leaves trust: never lowered unless the operator asked
 * (new_threshold > 0), since fewer signatures is weaker trust (2-of-2 must not become 1-of-1
 * silently). Returns 0 when trust can keep its threshold or new_threshold fits. */
static int revoke_threshold(const struct moat_fw_trust *trust, const char *keyid, int new_threshold,
			    struct moat_err *err)
{
	bool trusted = false;
	for (size_t i = 0; i < trust->count; i++) {
		trusted = trusted || strcmp(trust->keys[i].keyid, keyid) == 0;
	}
	if (!trusted) {
		return 0; /* moat_fw_trust_remove says it is not trusted */
	}
	int left = (int)trust->count - 1;
	if (new_threshold > left || new_threshold < 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "--threshold %d: %d key%s would be left trusted", new_threshold,
				    left, left == 1 ? "" : "s");
	}
	if (new_threshold == 0 && trust->threshold > left) {
		return moat_err_set(err, MOAT_EDENIED,
				    "revoking key %.16s would leave %d key%s for a threshold of %d: "
				    "add its replacement first (moat fw keygen), or lower the "
				    "threshold explicitly with --threshold %d",
				    keyid, left, left == 1 ? "" : "s", trust->threshold, left);
	}
	return 0;
}

int moat_fwkeys_revoke(const char *keys_dir, const char *keyid, int new_threshold,
		       int *out_threshold, struct moat_err *err)
{
	char tpath[4096], rdir[4096];
	struct moat_fw_trust trust;
	int rc = trust_path(tpath, sizeof(tpath), keys_dir, err);
	if (rc == 0) {
		rc = moat_path_join(rdir, sizeof(rdir), err, "%s/revoked", keys_dir);
	}
	if (rc == 0) {
		rc = moat_fwtrust_load(tpath, &trust, err);
	}
	if (rc != 0) {
		return rc;
	}
	if (trust.count == 1 && strcmp(trust.keys[0].keyid, keyid) == 0) {
		rc = moat_err_set(err, MOAT_EDENIED,
				  "key %.16s is the last trusted key: generate its replacement "
				  "first (moat fw keygen)",
				  keyid);
		goto out;
	}
	if ((rc = revoke_threshold(&trust, keyid, new_threshold, err)) != 0) {
		goto out;
	}
	rc = moat_fw_trust_remove(&trust, keyid, err);
	if (rc == 0) {
		trust.threshold = new_threshold ? new_threshold : trust.threshold;
		/* Trust first: once this is written, devices given the file no longer accept
		 * the key, whatever happens to the key files next. */
		rc = moat_fwtrust_save(tpath, &trust, err);
	}
	if (rc == 0) {
		rc = moat_fs_mkdirs(rdir, 0700, err);
	}
	if (rc == 0) {
		rc = move_revoked(keys_dir, keyid, "key", err);
	}
	if (rc == 0) {
		rc = move_revoked(keys_dir, keyid, "uri", err);
	}
	if (rc == 0) {
		rc = move_revoked(keys_dir, keyid, "pub", err);
	}
	if (rc == 0) {
		rc = moat_fs_sync_dir(keys_dir, err);
	}
	if (rc == 0 && out_threshold) {
		*out_threshold = trust.threshold;
	}
out:
	moat_fw_trust_free(&trust);
	return rc;
}

int moat_fw_sign_image(const struct moat_fw_sign_req *req, EVP_PKEY *const *keys, size_t key_count,
		       struct moat_manifest *out_manifest, char **out_json, size_t *out_len,
		       struct moat_err *err)
{
	struct moat_manifest m;
	struct moat_envelope *env = NULL;
	memset(&m, 0, sizeof(m));
	*out_json = NULL;
	if (key_count == 0) {
		return moat_err_set(err, MOAT_EINVAL, "no signing key");
	}
	int rc = moat_device_type_check(req->device_type, err);
	if (rc == 0) {
		rc = moat_semver_check(req->version, err);
	}
	if (rc != 0) {
		return rc;
	}
	snprintf(m.device_type, sizeof(m.device_type), "%s", req->device_type);
	snprintf(m.version, sizeof(m.version), "%s", req->version);
	m.security_version = req->security_version;
	m.issued_at = req->issued_at;
	m.expires_at = req->expires_at;
	rc = moat_fw_image_digest(req->image_path, m.sha256, &m.size, err);
	if (rc != 0) {
		return rc;
	}
	env = malloc(sizeof(*env));
	if (!env) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	rc = moat_envelope_init(env, &m, err);
	for (size_t i = 0; rc == 0 && i < key_count; i++) {
		rc = moat_envelope_sign(env, keys[i], err);
	}
	if (rc == 0) {
		rc = moat_envelope_serialize(env, out_json, out_len, err);
	}
	if (rc == 0 && out_manifest) {
		*out_manifest = m;
	}
	free(env);
	return rc;
}
