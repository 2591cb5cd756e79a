/* enroll.c: devices that enroll themselves over EST (deploy.h, "Enrollment"): registering
 * them (a one-time token, a claim certificate's CN), checking what they present, issuing
 * their certificate from their CSR with the signing CA, and revoking a re-enrolled
 * device's old certificate when its grace period ends.
 *
 * moatd holds the deployment open for reading; each change here takes run/moat.lock for
 * its own duration (never longer), so it is serialized with every moat command. The
 * registry is the truth: it is committed first, then the identity's one file is written
 * (cert.pem, the chain, atomically). Nothing else: no key.pem (the device holds its own; a
 * re-enrollment removes the one moat may have made before) and no ca.crt, which only a
 * key-holding identity's export reads (pki/ca.crt is the same root); each file created
 * costs an inode, the most expensive part of an enrollment on ext4 (docs/BENCHMARKS.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "deploy_internal.h"
#include "moat/codec.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"

#define REASON_SUPERSEDED 4
#define LOCK_WAIT_STEP_US 20000

static int pki_cert_pem_of(X509 *cert, char **out, struct moat_err *err);

const char *moat_enroll_verdict_name(enum moat_enroll_verdict v)
{
	switch (v) {
	case MOAT_ENROLL_OK:
		return "ok";
	case MOAT_ENROLL_BAD_CREDENTIALS:
		return "bad_token";
	case MOAT_ENROLL_TOKEN_USED:
		return "token_used";
	case MOAT_ENROLL_TOKEN_EXPIRED:
		return "token_expired";
	case MOAT_ENROLL_UNKNOWN_CLAIM:
		return "unknown_claim";
	case MOAT_ENROLL_CLAIM_USED:
		return "claim_used";
	case MOAT_ENROLL_CLAIM_NOT_VERIFIED:
		return "claim_not_verified";
	}
	return "unknown";
}

int moat_claim_cn_check(const char *cn, struct moat_err *err)
{
	size_t n = cn ? strlen(cn) : 0;
	if (n == 0 || n > MOAT_CLAIM_CN_MAX_LEN) {
		return moat_err_set(err, MOAT_EINVAL, "claim CN: 1 to %d characters",
				    MOAT_CLAIM_CN_MAX_LEN);
	}
	for (size_t i = 0; i < n; i++) {
		char c = cn[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-' || c == ':')) {
			return moat_err_set(err, MOAT_EINVAL,
					    "claim CN: only letters, digits and . _ - :");
		}
	}
	return 0;
}

int moat_deploy_claim_ca_add(struct moat_deploy *d, const char *pem, size_t len,
			     char sha256_out[MOAT_SHA256_HEX_LEN + 1], struct moat_err *err)
{
	sha256_out[0] = '\0';
	if (d->lock_fd < 0) {
		return moat_err_set(err, MOAT_ESTATE, "deployment not opened for writing");
	}
	BIO *b = len <= MOAT_CERT_FILE_MAX_BYTES ? BIO_new_mem_buf(pem, (int)len) : NULL;
	X509 *cert = b ? PEM_read_bio_X509(b, NULL, moat_pem_no_passphrase, NULL) : NULL;
	BIO_free(b);
	int rc = 0;
	char *out_pem = NULL;
	if (!cert) {
		rc = moat_err_ssl(err, MOAT_EINVAL, "claim CA: not a PEM certificate");
		goto out;
	}
	if (X509_check_ca(cert) == 0) {
		rc = moat_err_set(err, MOAT_EINVAL, "claim CA: not a CA certificate");
		goto out;
	}
	if (X509_cmp(cert, d->ca->cert) == 0) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "claim CA: this deployment's own CA cannot stand for a claim");
		goto out;
	}
	unsigned char md[MOAT_SHA256_BYTES];
	unsigned int n = 0;
	char subject[MOAT_CLAIM_SUBJECT_MAX_LEN + 1] = "";
	if (!X509_digest(cert, EVP_sha256(), md, &n) || n != sizeof(md)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "claim CA: digest");
		goto out;
	}
	moat_hex_encode(md, sizeof(md), sha256_out);
	X509_NAME_oneline(X509_get_subject_name(cert), subject, (int)sizeof(subject));
	if ((rc = pki_cert_pem_of(cert, &out_pem, err)) != 0) {
		goto out;
	}
	rc = moat_registry_claim_ca_insert(d->reg, sha256_out, subject, out_pem, moat_time_now(),
					   err);
out:
	free(out_pem);
	X509_free(cert);
	return rc;
}

/* SHA-256 of the token as lower-case hex. */
static int token_hash(const char *token, char hex[MOAT_SHA256_HEX_LEN + 1], struct moat_err *err)
{
	unsigned char md[MOAT_SHA256_BYTES];
	unsigned int n = 0;
	if (!EVP_Digest(token, strlen(token), md, &n, EVP_sha256(), NULL) ||
	    n != MOAT_SHA256_BYTES) {
		return moat_err_ssl(err, MOAT_ECRYPTO, "token digest");
	}
	moat_hex_encode(md, sizeof(md), hex);
	return 0;
}

int moat_deploy_enroll_add(struct moat_deploy *d, const struct moat_enroll_add_req *req,
			   char token_out[MOAT_ENROLL_TOKEN_BUF_LEN], struct moat_err *err)
{
	int rc;
	int64_t now = moat_time_now();
	token_out[0] = '\0';
	if (d->lock_fd < 0) {
		return moat_err_set(err, MOAT_ESTATE, "deployment not opened for writing");
	}
	if ((rc = moat_identity_new_name_check(req->id, err)) != 0) {
		return rc;
	}
	const char *type = req->device_type ? req->device_type : "generic";
	if ((rc = moat_device_type_check(type, err)) != 0) {
		moat_err_prefix(err, "device type");
		return rc;
	}
	if (!req->token && !req->claim_cn) {
		return moat_err_set(err, MOAT_EINVAL, "%s: a token, a claim CN or both", req->id);
	}
	if (req->claim_cn && (rc = moat_claim_cn_check(req->claim_cn, err)) != 0) {
		return rc;
	}
	int64_t ttl = req->token_ttl ? req->token_ttl : MOAT_ENROLL_TOKEN_TTL_DEFAULT;
	if (ttl < 60 || ttl > MOAT_ENROLL_TOKEN_TTL_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "token lifetime: 1 minute to %d days",
				    MOAT_ENROLL_TOKEN_TTL_MAX / 86400);
	}
	struct moat_enrollment e;
	memset(&e, 0, sizeof(e));
	snprintf(e.identity, sizeof(e.identity), "%s", req->id);
	e.created_at = now;
	if (req->claim_cn) {
		snprintf(e.claim_cn, sizeof(e.claim_cn), "%s", req->claim_cn);
	}
	char token[MOAT_ENROLL_TOKEN_BUF_LEN] = "";
	if (req->token) {
		unsigned char raw[MOAT_ENROLL_TOKEN_LEN / 2];
		if (RAND_bytes(raw, sizeof(raw)) != 1) {
			return moat_err_ssl(err, MOAT_ECRYPTO, "token");
		}
		moat_hex_encode(raw, sizeof(raw), token);
		OPENSSL_cleanse(raw, sizeof(raw));
		if ((rc = token_hash(token, e.token_sha256_hex, err)) != 0) {
			OPENSSL_cleanse(token, sizeof(token));
			return rc;
		}
		e.has_token = true;
		e.expires_at = now + ttl;
	}
	struct moat_registry *reg = d->reg;
	if ((rc = moat_registry_begin(reg, err)) != 0) {
		goto out;
	}
	if ((rc = moat_registry_identity_insert(reg, req->id, MOAT_ROLE_DEVICE, type, now, err)) !=
		    0 ||
	    (req->simulated &&
	     (rc = moat_registry_identity_set_simulated(reg, req->id, err)) != 0) ||
	    (rc = moat_registry_enrollment_insert(reg, &e, err)) != 0 ||
	    (rc = moat_registry_commit(reg, err)) != 0) {
		moat_registry_rollback(reg);
		goto out;
	}
	memcpy(token_out, token, sizeof(token));
out:
	OPENSSL_cleanse(token, sizeof(token));
	return rc;
}

int moat_deploy_enroll_token_check(struct moat_deploy *d, const char *id, const char *token,
				   int64_t now, enum moat_enroll_verdict *out, struct moat_err *err)
{
	*out = MOAT_ENROLL_BAD_CREDENTIALS;
	char want[MOAT_SHA256_HEX_LEN + 1];
	char got[MOAT_SHA256_HEX_LEN + 1];
	int rc = token_hash(token, got, err);
	if (rc != 0) {
		return rc;
	}
	struct moat_enrollment e;
	memset(&e, 0, sizeof(e));
	bool known = moat_identity_name_ok(id);
	if (known) {
		rc = moat_registry_enrollment_get(d->reg, id, &e, err);
		if (rc == MOAT_ENOENT) {
			known = false;
		} else if (rc != 0) {
			return rc;
		}
	}
	known = known && e.has_token && strlen(e.token_sha256_hex) == MOAT_SHA256_HEX_LEN;
	/* the same comparison whether or not id is known: its time says nothing */
	snprintf(want, sizeof(want), "%s",
		 known ? e.token_sha256_hex
		       : "0000000000000000000000000000000000000000000000000000000000000000");
	bool match = CRYPTO_memcmp(want, got, MOAT_SHA256_HEX_LEN) == 0;
	if (!known || !match) {
		return 0;
	}
	/* Only a caller holding the right token learns that it was used or expired. */
	if (e.used) {
		*out = MOAT_ENROLL_TOKEN_USED;
	} else if (now >= e.expires_at) {
		*out = MOAT_ENROLL_TOKEN_EXPIRED;
	} else {
		*out = MOAT_ENROLL_OK;
	}
	return 0;
}

struct claim_store {
	X509_STORE *store;
	int count;
	int rc;
};

static int add_claim_ca(const struct moat_claim_ca *ca, void *ctx)
{
	struct claim_store *s = ctx;
	BIO *b = BIO_new_mem_buf(ca->pem, -1);
	X509 *cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (cert && X509_STORE_add_cert(s->store, cert) == 1) {
		s->count++;
	}
	X509_free(cert);
	return 0;
}

int moat_deploy_claim_verify(struct moat_deploy *d, X509 *leaf, STACK_OF(X509) * untrusted,
			     int64_t now, char id_out[MOAT_ID_BUF_LEN],
			     char claim_cn_out[MOAT_CLAIM_CN_MAX_LEN + 1],
			     enum moat_enroll_verdict *out, struct moat_err *err)
{
	*out = MOAT_ENROLL_CLAIM_NOT_VERIFIED;
	id_out[0] = '\0';
	claim_cn_out[0] = '\0';
	struct claim_store s = {.store = X509_STORE_new()};
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int rc = 0;
	if (!s.store || !ctx) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = moat_registry_claim_ca_foreach(d->reg, add_claim_ca, &s, err)) != 0) {
		goto out;
	}
	if (s.count == 0) {
		goto out; /* no claim CA registered: no claim verifies */
	}
	if (X509_STORE_CTX_init(ctx, s.store, leaf, untrusted) != 1) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "claim verification");
		goto out;
	}
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
	X509_STORE_CTX_set_time(ctx, 0, (time_t)now);
	if (X509_verify_cert(ctx) != 1) {
		goto out;
	}
	char cn[MOAT_CLAIM_CN_MAX_LEN + 2] = "";
	int n = X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn,
					  (int)sizeof(cn));
	if (n <= 0 || (size_t)n != strlen(cn) || moat_claim_cn_check(cn, NULL) != 0) {
		goto out;
	}
	memcpy(claim_cn_out, cn, (size_t)n + 1); /* checked: at most MOAT_CLAIM_CN_MAX_LEN */
	struct moat_enrollment e;
	rc = moat_registry_enrollment_by_claim(d->reg, cn, &e, err);
	if (rc == MOAT_ENOENT) {
		rc = 0;
		*out = MOAT_ENROLL_UNKNOWN_CLAIM;
		goto out;
	}
	if (rc != 0) {
		goto out;
	}
	snprintf(id_out, MOAT_ID_BUF_LEN, "%s", e.identity);
	*out = e.used ? MOAT_ENROLL_CLAIM_USED : MOAT_ENROLL_OK;
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(s.store);
	return rc;
}

/* Takes run/moat.lock for one change of a deployment opened for reading (a no-op when d
 * holds it already), waiting at most wait_ms. *taken says whether to release it. */
static int lock_for_change(struct moat_deploy *d, int64_t wait_ms, bool *taken,
			   struct moat_err *err)
{
	*taken = false;
	if (d->lock_fd >= 0) {
		return 0;
	}
	char path[PATH_MAX];
	int rc = moat_deploy_path(d, path, sizeof(path), "run/moat.lock", err);
	if (rc != 0) {
		return rc;
	}
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
	}
	int64_t deadline = moat_time_mono_ms() + wait_ms;
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK || moat_time_mono_ms() >= deadline) {
			int e = errno;
			close(fd);
			return e == EWOULDBLOCK
				       ? moat_err_set(err, MOAT_ETIMEOUT,
						      "deployment busy: another moat command holds "
						      "run/moat.lock")
				       : moat_err_errno(err, MOAT_EIO, e, "%s: lock", path);
		}
		usleep(LOCK_WAIT_STEP_US);
	}
	d->lock_fd = fd;
	*taken = true;
	return 0;
}

static void unlock_after_change(struct moat_deploy *d, bool taken)
{
	if (taken) {
		close(d->lock_fd); /* releases the flock */
		d->lock_fd = -1;
	}
}

/* The chain cert.pem holds: the leaf, then the signing CA when it is not the root. */
static int chain_pem(struct moat_deploy *d, const struct moat_ca *signer, const char *leaf_pem,
		     char **out, size_t *out_len, struct moat_err *err)
{
	BIO *b = BIO_new(BIO_s_mem());
	int rc = 0;
	if (!b || BIO_puts(b, leaf_pem) <= 0 ||
	    (moat_deploy_has_issuer(d) && !PEM_write_bio_X509(b, signer->cert))) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "certificate chain");
	} else {
		char *data = NULL;
		long n = BIO_get_mem_data(b, &data);
		*out = n > 0 ? malloc((size_t)n + 1) : NULL;
		if (!*out) {
			rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		} else {
			memcpy(*out, data, (size_t)n);
			(*out)[n] = '\0';
			*out_len = (size_t)n;
		}
	}
	BIO_free(b);
	return rc;
}

/* cert as PEM in a malloc'd string. */
static int pki_cert_pem_of(X509 *cert, char **out, struct moat_err *err)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	long n = 0;
	int rc = 0;
	if (!b || !PEM_write_bio_X509(b, cert) || (n = BIO_get_mem_data(b, &data)) <= 0) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "encoding a certificate");
	} else if (!(*out = malloc((size_t)n + 1))) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
	} else {
		memcpy(*out, data, (size_t)n);
		(*out)[n] = '\0';
	}
	BIO_free(b);
	return rc;
}

/* A serial no certificate in the registry has. */
static int fresh_serial(struct moat_deploy *d, uint8_t serial[MOAT_SERIAL_BYTES],
			char hex[MOAT_SERIAL_HEX_LEN], struct moat_err *err)
{
	for (int attempt = 0; attempt < 4; attempt++) {
		bool exists = false;
		int rc = moat_pki_random_serial(serial, hex, err);
		if (rc == 0) {
			rc = moat_registry_serial_exists(d->reg, hex, &exists, err);
		}
		if (rc != 0) {
			return rc;
		}
		if (!exists) {
			return 0;
		}
	}
	return moat_err_set(err, MOAT_ECRYPTO, "random serials keep colliding: broken RNG?");
}

/* The identity's file after a committed enrollment: cert.pem (the chain), atomically
 * (temporary and rename) but not synced: it is derived from the registry, which holds the
 * certificate durably, and a crash leaves the old file or the new one, never half of one.
 * A key.pem moat made earlier is removed (the device holds its own), and a ca.crt of an
 * earlier moat (one more file per enrollment, that nothing reads for an identity without
 * a key: pki/ca.crt is the same root). */
static int write_files(struct moat_deploy *d, const char *id, const char *chain, size_t len,
		       struct moat_err *err)
{
	static const struct moat_fs_opts derived = {.no_fsync = true};
	static const char *const stale[] = {"key.pem", "ca.crt"};
	char dir[PATH_MAX];
	char p[PATH_MAX];
	int rc;
	if ((rc = moat_deploy_identity_path(d, id, NULL, dir, sizeof(dir), err)) != 0) {
		return rc;
	}
	bool fresh = mkdir(dir, 0700) == 0;
	if (!fresh && errno != EEXIST) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", dir);
	}
	if ((rc = moat_path_join(p, sizeof(p), err, "%s/cert.pem", dir)) != 0 ||
	    (rc = moat_fs_write_atomic_opts(p, chain, len, 0644, &derived, err)) != 0) {
		return rc;
	}
	for (size_t i = 0; !fresh && i < sizeof(stale) / sizeof(stale[0]); i++) {
		if ((rc = moat_path_join(p, sizeof(p), err, "%s/%s", dir, stale[i])) != 0) {
			return rc;
		}
		if (unlink(p) != 0 && errno != ENOENT) {
			return moat_err_errno(err, MOAT_EIO, errno, "%s", p);
		}
	}
	return 0;
}

/* Checks, inside the transaction, that id may receive a certificate by method. */
static int may_enroll(struct moat_deploy *d, const struct moat_enroll_req *req,
		      const struct moat_identity *ident, int64_t now, struct moat_err *err)
{
	if (ident->role != MOAT_ROLE_DEVICE) {
		return moat_err_set(err, MOAT_EDENIED, "%s: not a device", req->id);
	}
	if (ident->status != MOAT_ID_ACTIVE) {
		return moat_err_set(err, MOAT_EDENIED, "%s: %s", req->id,
				    moat_identity_status_name(ident->status));
	}
	if (req->method == MOAT_ENROLL_RENEW) {
		/* only the current certificate renews: an old one, even inside its grace
		 * period, never does */
		if (ident->cert_revoked || !req->presented_serial ||
		    strcmp(ident->serial_hex, req->presented_serial) != 0) {
			return moat_err_set(err, MOAT_EDENIED,
					    "%s: not the identity's current certificate", req->id);
		}
		return 0;
	}
	int rc = moat_registry_enrollment_use(d->reg, req->id, now, err);
	if (rc == MOAT_ESTATE) {
		return moat_err_set(err, MOAT_EDENIED, "%s: already enrolled", req->id);
	}
	return rc;
}

/* The lifetime of a certificate issued over EST: [pki] identity_days. Test builds only
 * (-DMOAT_FAILPOINTS=ON) read MOAT_TEST_IDENTITY_SECONDS, so that an e2e test can watch
 * devices renew in seconds; a production build never looks at the environment here. */
static int64_t enrolled_lifetime(const struct moat_deploy *d)
{
#if defined(MOAT_FAILPOINTS)
	const char *s = getenv("MOAT_TEST_IDENTITY_SECONDS");
	int64_t v = 0;
	if (s && moat_int_parse(s, 5, 86400, &v, NULL) == 0) {
		return v;
	}
#endif
	return d->conf.identity_days * 86400;
}

/* One request of a batch, inside the transaction: the checks, the certificate signed and
 * recorded. *crl says the CRL must be re-signed before the commit. */
static int issue_one(struct moat_deploy *d, const struct moat_ca *signer,
		     const struct moat_enroll_req *req, int64_t now, struct moat_issued *issued,
		     struct moat_identity *ident, bool *crl, struct moat_err *err)
{
	int rc;
	if ((rc = moat_identity_name_check(req->id, err)) != 0 ||
	    (rc = moat_csr_check_identity(req->csr, req->id, err)) != 0 ||
	    (rc = moat_registry_identity_get(d->reg, req->id, ident, err)) != 0 ||
	    (rc = may_enroll(d, req, ident, now, err)) != 0) {
		return rc;
	}
	int64_t not_after = now + enrolled_lifetime(d);
	int64_t ca_end = moat_asn1_time_to_unix(X509_get0_notAfter(signer->cert));
	if (ca_end > 0 && ca_end < not_after) {
		not_after = ca_end; /* no certificate outlives its issuer */
	}
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	struct moat_issue_req ireq = {
		.cn = req->id,
		.role = MOAT_ROLE_DEVICE,
		.kind = MOAT_CERT_CLIENT,
		.not_before = now - 300,
		.not_after = not_after,
		.key = req->csr->key,
		.key_public_only = true,
	};
	if ((rc = fresh_serial(d, serial, hex, err)) != 0 ||
	    (rc = moat_pki_issue(signer, &ireq, serial, issued, err)) != 0 ||
	    (rc = moat_registry_cert_insert(d->reg, issued->serial_hex, req->id, issued->not_before,
					    issued->not_after, issued->cert_pem, err)) != 0) {
		return rc;
	}
	if (req->method != MOAT_ENROLL_RENEW) {
		return 0;
	}
	if (req->grace_seconds > 0) {
		return moat_registry_cert_supersede_at(d->reg, ident->serial_hex,
						       now + req->grace_seconds, err);
	}
	rc = moat_registry_cert_revoke(d->reg, ident->serial_hex, REASON_SUPERSEDED, now, err);
	*crl = *crl || rc == 0;
	return rc;
}

/* After the commit: what the caller gets of one issued certificate, and its files. */
static int issued_out(struct moat_deploy *d, const struct moat_ca *signer,
		      const struct moat_enroll_req *req, const struct moat_identity *ident,
		      struct moat_issued *issued, struct moat_enrolled *out, struct moat_err *err)
{
	int rc = chain_pem(d, signer, issued->cert_pem, &out->chain_pem, &out->chain_len, err);
	if (rc != 0) {
		return rc;
	}
	/* committed: the registry holds the certificate whatever happens to the file */
	out->files_rc = write_files(d, req->id, out->chain_pem, out->chain_len, &out->files_err);
	out->cert_pem = issued->cert_pem;
	out->cert_len = issued->cert_pem_len;
	issued->cert_pem = NULL;
	out->cert = issued->cert;
	issued->cert = NULL;
	snprintf(out->serial_hex, sizeof(out->serial_hex), "%s", issued->serial_hex);
	snprintf(out->replaced_serial_hex, sizeof(out->replaced_serial_hex), "%s",
		 req->method == MOAT_ENROLL_RENEW ? ident->serial_hex : "");
	out->not_after = issued->not_after;
	return 0;
}

/* Every request's outcome: rc[i] and errs[i] (and outs[i] when 0); one transaction for
 * all, each request inside a point of its own so that a refusal undoes only its changes.
 * The function's own failure (lock, signer, transaction) fails every request with it. */
static int issue_batch(struct moat_deploy *d, const struct moat_enroll_req *reqs, size_t n,
		       struct moat_enrolled *outs, int *rcs, struct moat_err *errs,
		       struct moat_issued *issued, struct moat_identity *idents,
		       struct moat_err *err)
{
	int64_t now = moat_time_now();
	const struct moat_ca *signer = NULL;
	bool locked = false;
	bool crl = false;
	int rc;
	if ((rc = lock_for_change(d, MOAT_ENROLL_LOCK_WAIT_MS, &locked, err)) != 0 ||
	    (rc = moat_deploy_signer(d, &signer, err)) != 0 ||
	    (rc = moat_registry_begin(d->reg, err)) != 0) {
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if ((rc = moat_registry_point(d->reg, err)) != 0) {
			goto out;
		}
		rcs[i] =
			issue_one(d, signer, &reqs[i], now, &issued[i], &idents[i], &crl, &errs[i]);
		if (rcs[i] != 0) {
			moat_registry_rollback_point(d->reg);
			moat_pki_issued_free(&issued[i]);
		} else if ((rc = moat_registry_release_point(d->reg, err)) != 0) {
			goto out;
		}
	}
	/* the commit is the batch's one sync: every token used and certificate recorded
	 * here is durable before any answer leaves */
	if ((crl && (rc = moat_deploy_write_crl(d, err)) != 0) ||
	    (rc = moat_registry_commit(d->reg, err)) != 0) {
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (rcs[i] == 0) {
			rcs[i] = issued_out(d, signer, &reqs[i], &idents[i], &issued[i], &outs[i],
					    &errs[i]);
		}
	}
out:
	moat_registry_rollback(d->reg); /* a no-op once committed */
	unlock_after_change(d, locked);
	return rc;
}

int moat_deploy_enroll_issue_batch(struct moat_deploy *d, const struct moat_enroll_req *reqs,
				   size_t n, struct moat_enrolled *outs, int *rcs,
				   struct moat_err *errs)
{
	struct moat_issued *issued = calloc(n ? n : 1, sizeof(*issued));
	struct moat_identity *idents = calloc(n ? n : 1, sizeof(*idents));
	struct moat_err err = {0};
	int rc = issued && idents ? 0 : moat_err_set(&err, MOAT_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		memset(&outs[i], 0, sizeof(outs[i]));
		rcs[i] = MOAT_EIO;
		memset(&errs[i], 0, sizeof(errs[i]));
	}
	if (rc == 0) {
		rc = issue_batch(d, reqs, n, outs, rcs, errs, issued, idents, &err);
	}
	for (size_t i = 0; i < n; i++) {
		if (rc != 0) {
			rcs[i] = rc;
			errs[i] = err;
		}
		if (issued) {
			moat_pki_issued_free(&issued[i]);
		}
		if (rcs[i] != 0) {
			moat_enrolled_free(&outs[i]);
		}
	}
	free(issued);
	free(idents);
	return rc;
}

int moat_deploy_enroll_issue(struct moat_deploy *d, const struct moat_enroll_req *req,
			     struct moat_enrolled *out, struct moat_err *err)
{
	int rc = 0;
	(void)moat_deploy_enroll_issue_batch(d, req, 1, out, &rc, err);
	return rc;
}

void moat_enrolled_free(struct moat_enrolled *e)
{
	if (!e) {
		return;
	}
	free(e->chain_pem);
	free(e->cert_pem);
	X509_free(e->cert);
	e->chain_pem = NULL;
	e->cert_pem = NULL;
	e->cert = NULL;
}

struct due_list {
	struct moat_cert_row *rows;
	size_t count;
	size_t cap;
};

static int collect_due(const struct moat_cert_row *row, void *ctx)
{
	struct due_list *l = ctx;
	if (l->count == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 16;
		struct moat_cert_row *n = realloc(l->rows, ncap * sizeof(*n));
		if (!n) {
			return MOAT_ENOMEM;
		}
		l->rows = n;
		l->cap = ncap;
	}
	l->rows[l->count++] = *row;
	return 0;
}

int moat_deploy_enroll_supersede_due(struct moat_deploy *d, int64_t now, size_t *out_count,
				     struct moat_err *err)
{
	struct due_list due = {0};
	const struct moat_ca *signer = NULL;
	bool locked = false;
	bool in_tx = false;
	*out_count = 0;
	int rc = moat_registry_cert_supersede_due(d->reg, now, collect_due, &due, err);
	if (rc == MOAT_ENOMEM) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	if (rc != 0 || due.count == 0) {
		goto out;
	}
	if ((rc = lock_for_change(d, MOAT_ENROLL_LOCK_WAIT_MS, &locked, err)) != 0 ||
	    (rc = moat_deploy_signer(d, &signer, err)) != 0 ||
	    (rc = moat_registry_begin(d->reg, err)) != 0) {
		goto out;
	}
	in_tx = true;
	for (size_t i = 0; i < due.count; i++) {
		rc = moat_registry_cert_revoke(d->reg, due.rows[i].serial_hex, REASON_SUPERSEDED,
					       now, err);
		if (rc == MOAT_ESTATE) {
			rc = 0; /* revoked meanwhile by an operator */
		}
		if (rc != 0) {
			goto out;
		}
	}
	if ((rc = moat_deploy_write_crl(d, err)) != 0 ||
	    (rc = moat_registry_commit(d->reg, err)) != 0) {
		goto out;
	}
	in_tx = false;
	*out_count = due.count;
out:
	if (in_tx) {
		moat_registry_rollback(d->reg);
	}
	unlock_after_change(d, locked);
	free(due.rows);
	return rc;
}
