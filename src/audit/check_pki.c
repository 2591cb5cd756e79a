/* check_pki.c: the PKI checks of the static audit (audit.h): CA and certificate expiry,
 * key files, the CRL, weak and shared keys, keys held for devices, and the broker policy
 * against the registry's statuses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "audit_internal.h"
#include "moat/certinfo.h"
#include "moat/fsutil.h"
#include "moat/pki.h"
#include "moat/policy.h"

#define CHECKLIST_PKI "PKI: CA and certificates valid, keys protected, revocation published"

const struct moat_audit_check audit_pki_root_expiry = {
	"pki.root_expiry", MOAT_AUDIT_HIGH, "the root CA certificate is valid beyond the window",
	CHECKLIST_PKI, MOAT_OWASP_I8};
const struct moat_audit_check audit_pki_issuer_expiry = {
	"pki.issuer_expiry", MOAT_AUDIT_HIGH,
	"the issuing CA certificate is valid beyond the window", CHECKLIST_PKI, MOAT_OWASP_I8};
const struct moat_audit_check audit_pki_ca_key = {
	"pki.ca_key", MOAT_AUDIT_CRITICAL,
	"the root CA key is encrypted and 0600, the issuing CA key 0600", CHECKLIST_PKI,
	MOAT_OWASP_I7};
const struct moat_audit_check audit_pki_key_files = {
	"pki.key_files", MOAT_AUDIT_HIGH,
	"server and identity private keys are not readable by others", CHECKLIST_PKI,
	MOAT_OWASP_I7};
const struct moat_audit_check audit_pki_cert_expiry = {
	"pki.cert_expiry", MOAT_AUDIT_MEDIUM,
	"no device, service, operator or server certificate expires within the window",
	CHECKLIST_PKI, MOAT_OWASP_I8};
const struct moat_audit_check audit_pki_past_issuer = {
	"pki.past_issuer", MOAT_AUDIT_MEDIUM, "no certificate outlives the CA that signed it",
	CHECKLIST_PKI, MOAT_OWASP_I8};
const struct moat_audit_check audit_pki_crl = {
	"pki.crl", MOAT_AUDIT_HIGH,
	"pki/crl.pem verifies against the deployment's CAs and its nextUpdate is ahead",
	CHECKLIST_PKI, MOAT_OWASP_I8};
const struct moat_audit_check audit_drift_crl = {
	"drift.crl", MOAT_AUDIT_CRITICAL,
	"pki/crl.pem and the registry agree: every revoked (unexpired) certificate is listed by "
	"the CRL of the CA that issued it, and every listed serial is a revoked certificate of "
	"the registry",
	"Drift: every file derived from the registry matches it", MOAT_OWASP_I8};
const struct moat_audit_check audit_pki_duplicate_key = {
	"pki.duplicate_key", MOAT_AUDIT_HIGH, "no public key is certified for two identities",
	CHECKLIST_PKI, MOAT_OWASP_I1};
const struct moat_audit_check audit_pki_weak_key = {
	"pki.weak_key", MOAT_AUDIT_HIGH, "no RSA key below 2048 bits, no EC key off P-256",
	CHECKLIST_PKI, MOAT_OWASP_I5};
const struct moat_audit_check audit_pki_key_custody = {
	"pki.key_custody", MOAT_AUDIT_MEDIUM,
	"the server holds no device's private key (devices enrolled by CSR have none)",
	CHECKLIST_PKI, MOAT_OWASP_I7};
const struct moat_audit_check audit_pki_revoked_in_policy = {
	"pki.revoked_in_policy", MOAT_AUDIT_CRITICAL,
	"no identity is active in broker/policy that the registry revoked or disabled",
	"Access control: revoked and disabled identities are refused", MOAT_OWASP_I8};

static X509 *read_cert_file(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		return NULL;
	}
	X509 *x = PEM_read_X509(f, NULL, moat_pem_no_passphrase, NULL);
	fclose(f);
	return x;
}

/* Every certificate of a PEM bundle (issuers.pem). */
static STACK_OF(X509) * read_certs_file(const char *path)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	FILE *f = fopen(path, "re");
	if (!sk || !f) {
		if (f) {
			fclose(f);
		}
		return sk;
	}
	X509 *x;
	while ((x = PEM_read_X509(f, NULL, moat_pem_no_passphrase, NULL)) != NULL) {
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			break;
		}
	}
	ERR_clear_error();
	fclose(f);
	return sk;
}

static int deploy_path(struct audit_ctx *a, char *buf, size_t size, const char *rel)
{
	return moat_deploy_path(a->d, buf, size, rel, a->err);
}

/* Expiry of a CA certificate file (rel); absent is fine when optional. */
static int ca_expiry(struct audit_ctx *a, const struct moat_audit_check *c, const char *rel,
		     const char *what, const char *fix, bool optional)
{
	char path[PATH_MAX], when[64], title[1024], ev[1024];
	int rc;
	if ((rc = audit_ran(a, c)) != 0 || (rc = deploy_path(a, path, sizeof(path), rel)) != 0) {
		return rc;
	}
	if (!moat_fs_exists(path)) {
		if (optional) {
			return 0;
		}
		snprintf(title, sizeof(title), "%s missing", rel);
		return audit_add(a, c, MOAT_AUDIT_CRITICAL, title, NULL, NULL, rel, 0);
	}
	struct moat_cert_info ci;
	struct moat_err e;
	if (moat_cert_info_file(path, &ci, &e) != 0) {
		return audit_cannot(a, c, e.msg);
	}
	snprintf(ev, sizeof(ev), "notAfter %lld (%s), CN %s", (long long)ci.not_after,
		 audit_when(ci.not_after, a->o->now, when, sizeof(when)), ci.cn);
	if (ci.not_after <= a->o->now) {
		snprintf(title, sizeof(title), "the %s certificate expired %s", what, when);
		return audit_add(a, c, MOAT_AUDIT_CRITICAL, title, ev, fix, rel, 0);
	}
	if (ci.not_after - a->o->now <= a->o->window_s) {
		snprintf(title, sizeof(title), "the %s certificate expires %s", what, when);
		return audit_add(a, c, c->severity, title, ev, fix, rel, 0);
	}
	return 0;
}

/* mode & mask of rel, or -1 when absent. */
static int file_mode(struct audit_ctx *a, const char *rel, mode_t *out)
{
	char path[PATH_MAX];
	struct stat st;
	if (deploy_path(a, path, sizeof(path), rel) != 0) {
		return -2;
	}
	if (lstat(path, &st) != 0) {
		return -1;
	}
	*out = st.st_mode;
	return 0;
}

static int ca_keys(struct audit_ctx *a)
{
	const struct moat_audit_check *c = &audit_pki_ca_key;
	char title[1024], ev[1024], fix[2 * PATH_MAX + 256], path[PATH_MAX];
	mode_t m;
	int rc = audit_ran(a, c);
	if (rc != 0) {
		return rc;
	}
	static const char *const keys[] = {"pki/ca.key", MOAT_ISSUER_KEY_FILE};
	for (size_t i = 0; i < 2; i++) {
		int st = file_mode(a, keys[i], &m);
		if (st == -2) {
			return a->err->code;
		}
		if (st != 0) {
			continue; /* the root key taken offline; a token-held issuing key */
		}
		if (!S_ISREG(m) || (m & 077) != 0) {
			snprintf(title, sizeof(title), "%s can be read by others than its owner",
				 keys[i]);
			snprintf(ev, sizeof(ev), "mode %04o%s", (unsigned)(m & 07777),
				 S_ISREG(m) ? "" : ", not a regular file");
			snprintf(fix, sizeof(fix), "chmod 600 %s/%s", a->dir, keys[i]);
			if ((rc = audit_add(a, c, MOAT_AUDIT_CRITICAL, title, ev, fix, keys[i],
					    0)) != 0) {
				return rc;
			}
		}
	}
	/* the root's key is encrypted at rest (PKCS#8 under the passphrase) */
	if ((rc = deploy_path(a, path, sizeof(path), "pki/ca.key")) != 0) {
		return rc;
	}
	FILE *f = fopen(path, "re");
	if (f) {
		char first[128] = "";
		if (!fgets(first, sizeof(first), f)) {
			first[0] = '\0';
		}
		fclose(f);
		first[strcspn(first, "\r\n")] = '\0';
		if (strcmp(first, "-----BEGIN ENCRYPTED PRIVATE KEY-----") != 0) {
			snprintf(ev, sizeof(ev), "first line: %.80s", first);
			if ((rc = audit_add(
				     a, c, MOAT_AUDIT_CRITICAL,
				     "pki/ca.key is not encrypted: the root CA key is in the "
				     "clear on disk",
				     ev,
				     "re-encrypt it: openssl pkcs8 -topk8 -v2 aes-256-cbc -in "
				     "pki/ca.key (or restore the key moat init wrote)",
				     "pki/ca.key", 1)) != 0) {
				return rc;
			}
		}
	}
	return 0;
}

/* The CAs an identity's certificate may name as issuer: the root and every issuing CA of
 * pki/issuers.pem, by the DER of their subject. */
struct ca_entry {
	unsigned char *subject;
	int subject_len;
	int64_t not_after;
	char cn[256];
};
struct ca_list {
	struct ca_entry e[64];
	size_t n;
};

static void ca_list_add(struct ca_list *l, X509 *x)
{
	if (!x || l->n >= sizeof(l->e) / sizeof(l->e[0])) {
		return;
	}
	struct ca_entry *c = &l->e[l->n];
	c->subject = NULL;
	c->subject_len = i2d_X509_NAME(X509_get_subject_name(x), &c->subject);
	if (c->subject_len <= 0) {
		return;
	}
	c->not_after = moat_asn1_time_to_unix(X509_get0_notAfter(x));
	struct moat_cert_info ci;
	struct moat_err e;
	snprintf(c->cn, sizeof(c->cn), "%s", moat_cert_info(x, &ci, &e) == 0 ? ci.cn : "");
	l->n++;
}

static void ca_list_free(struct ca_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		OPENSSL_free(l->e[i].subject);
	}
	l->n = 0;
}

/* The CA whose subject is v's issuer (the longest-lived of several with that name). */
static const struct ca_entry *issuer_of(const struct ca_list *l, const struct audit_cert_view *v)
{
	const struct ca_entry *best = NULL;
	for (size_t i = 0; i < l->n; i++) {
		const struct ca_entry *c = &l->e[i];
		if ((size_t)c->subject_len == v->issuer_len &&
		    memcmp(c->subject, v->issuer, v->issuer_len) == 0 &&
		    (!best || c->not_after > best->not_after)) {
			best = c;
		}
	}
	return best;
}

/* The DER of the first PEM block of pem, when it is a certificate (no X509 is built). */
static bool pem_der(const char *pem, unsigned char **der, long *len)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	char *name = NULL, *header = NULL;
	bool ok = b && PEM_read_bio(b, &name, &header, der, len) == 1 &&
		  strcmp(name, "CERTIFICATE") == 0;
	OPENSSL_free(name);
	OPENSSL_free(header);
	BIO_free(b);
	if (!ok) {
		ERR_clear_error();
	}
	return ok;
}

bool audit_weak_key(EVP_PKEY *key, char *buf, size_t size)
{
	int id = EVP_PKEY_get_base_id(key);
	if (id == EVP_PKEY_RSA) {
		int bits = EVP_PKEY_get_bits(key);
		if (bits < 2048) {
			snprintf(buf, size, "RSA %d bits", bits);
			return true;
		}
		return false;
	}
	if (id == EVP_PKEY_EC) {
		char group[64] = "";
		size_t glen = 0;
		if (!EVP_PKEY_get_group_name(key, group, sizeof(group), &glen) ||
		    strcmp(group, "prime256v1") != 0) {
			snprintf(buf, size, "EC on %s", group[0] ? group : "an unnamed curve");
			return true;
		}
		return false;
	}
	if (id == EVP_PKEY_ED25519) {
		return false;
	}
	snprintf(buf, size, "key type %s", OBJ_nid2sn(id));
	return true;
}

struct keyhash {
	unsigned char sha[32];
	size_t ident; /* index in a->ids, or SIZE_MAX for the server */
};

static int cmp_keyhash(const void *x, const void *y)
{
	return memcmp(((const struct keyhash *)x)->sha, ((const struct keyhash *)y)->sha, 32);
}

/* The name of an OID given by its contents, into buf. */
static const char *oid_name(const unsigned char *oid, size_t len, char *buf, size_t size)
{
	ASN1_OBJECT *o = ASN1_OBJECT_create(NID_undef, (unsigned char *)oid, (int)len, NULL, NULL);
	if (!o || OBJ_obj2txt(buf, (int)size, o, 0) <= 0) {
		snprintf(buf, size, "an unknown algorithm");
	}
	ASN1_OBJECT_free(o);
	return buf;
}

bool audit_cert_weak_key(const struct audit_cert_view *v, char *buf, size_t size)
{
	static const unsigned char ec[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
	static const unsigned char p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
					     0xce, 0x3d, 0x03, 0x01, 0x07};
	static const unsigned char ed25519[] = {0x2b, 0x65, 0x70};
	char name[80];
	if (v->alg_oid_len == sizeof(ec) && memcmp(v->alg_oid, ec, sizeof(ec)) == 0) {
		if (v->param_len == sizeof(p256) && memcmp(v->param, p256, sizeof(p256)) == 0) {
			return false;
		}
		if (v->param && v->param_tag == 0x06 && v->param_len > 2) {
			snprintf(buf, size, "EC on %s",
				 oid_name(v->param + 2, v->param_len - 2, name, sizeof(name)));
		} else {
			snprintf(buf, size, "EC with explicit curve parameters");
		}
		return true;
	}
	if (v->alg_oid_len == sizeof(ed25519) &&
	    memcmp(v->alg_oid, ed25519, sizeof(ed25519)) == 0) {
		return false;
	}
	const unsigned char *p = v->spki;
	EVP_PKEY *key = d2i_PUBKEY(NULL, &p, (long)v->spki_len);
	if (!key) {
		ERR_clear_error();
		snprintf(buf, size, "an unreadable %s key",
			 oid_name(v->alg_oid, v->alg_oid_len, name, sizeof(name)));
		return true;
	}
	bool weak = audit_weak_key(key, buf, size);
	EVP_PKEY_free(key);
	return weak;
}

static const char *renew_cmd(enum moat_role role)
{
	return role == MOAT_ROLE_DEVICE ? "moat device renew" : "moat identity renew";
}

/* One identity's current certificate: expiry, issuer, key strength, key file. */
static int one_identity(struct audit_ctx *a, size_t idx, const struct ca_list *cas,
			const EVP_MD *sha256, struct keyhash *hashes, size_t *hash_count)
{
	const struct moat_identity *id = &a->ids[idx];
	char title[1024], ev[1024], fix[2 * PATH_MAX + 256], rel[PATH_MAX], when[64];
	int rc;
	if (id->status == MOAT_ID_REVOKED || id->cert_revoked || !id->serial_hex[0]) {
		return 0;
	}
	/* expiry (the registry's dates) */
	snprintf(fix, sizeof(fix), "%s %s", renew_cmd(id->role), id->id);
	snprintf(rel, sizeof(rel), "pki/identities/%s/cert.pem", id->id);
	audit_when(id->not_after, a->o->now, when, sizeof(when));
	snprintf(ev, sizeof(ev), "serial %s, notAfter %lld (%s)", id->serial_hex,
		 (long long)id->not_after, when);
	if (id->not_after <= a->o->now) {
		snprintf(title, sizeof(title), "the certificate of %s %s expired %s",
			 moat_role_name(id->role), id->id, when);
		if ((rc = audit_add(a, &audit_pki_cert_expiry, MOAT_AUDIT_HIGH, title, ev, fix, rel,
				    0)) != 0) {
			return rc;
		}
	} else if (id->not_after - a->o->now <= a->o->window_s) {
		snprintf(title, sizeof(title), "the certificate of %s %s expires %s",
			 moat_role_name(id->role), id->id, when);
		if ((rc = audit_add(a, &audit_pki_cert_expiry, MOAT_AUDIT_MEDIUM, title, ev, fix,
				    rel, 0)) != 0) {
			return rc;
		}
	}
	/* the private key kept here */
	mode_t m;
	char keyrel[PATH_MAX];
	snprintf(keyrel, sizeof(keyrel), "pki/identities/%s/key.pem", id->id);
	int st = file_mode(a, keyrel, &m);
	if (st == -2) {
		return a->err->code;
	}
	if (st == 0 && (m & 077) != 0) {
		snprintf(title, sizeof(title), "the private key of %s is readable by others",
			 id->id);
		snprintf(ev, sizeof(ev), "mode %04o", (unsigned)(m & 07777));
		snprintf(fix, sizeof(fix), "chmod 600 %s/%s", a->dir, keyrel);
		if ((rc = audit_add(a, &audit_pki_key_files, MOAT_AUDIT_HIGH, title, ev, fix,
				    keyrel, 0)) != 0) {
			return rc;
		}
	}
	if (st == 0 && id->role == MOAT_ROLE_DEVICE) {
		snprintf(title, sizeof(title),
			 "the server still holds the private key of device %s", id->id);
		snprintf(fix, sizeof(fix),
			 "moat device export %s --out DIR, install it on the device, then delete "
			 "%s; new devices: moat device add ID --enroll",
			 id->id, keyrel);
		if ((rc = audit_add(a, &audit_pki_key_custody, MOAT_AUDIT_MEDIUM, title,
				    "generated by moat device add (not enrolled by CSR)", fix,
				    keyrel, 0)) != 0) {
			return rc;
		}
	}
	/* the certificate itself, from the registry */
	char *pem = NULL;
	struct moat_err e;
	if (moat_registry_cert_pem(moat_deploy_registry(a->d), id->serial_hex, &pem, &e) != 0) {
		return audit_cannot(a, &audit_pki_weak_key, e.msg);
	}
	unsigned char *der = NULL;
	long der_len = 0;
	struct audit_cert_view v;
	bool ok = pem_der(pem, &der, &der_len) && audit_cert_scan(der, (size_t)der_len, &v);
	free(pem);
	if (!ok) {
		OPENSSL_free(der);
		snprintf(title, sizeof(title), "the registry's certificate of %s does not parse",
			 id->id);
		return audit_cannot(a, &audit_pki_weak_key, title);
	}
	char desc[96];
	if (audit_cert_weak_key(&v, desc, sizeof(desc))) {
		snprintf(title, sizeof(title), "%s %s has a weak key: %s", moat_role_name(id->role),
			 id->id, desc);
		snprintf(fix, sizeof(fix), "%s %s --key-type ec-p256 (or --csr with a P-256 key)",
			 renew_cmd(id->role), id->id);
		snprintf(ev, sizeof(ev), "serial %s: %s", id->serial_hex, desc);
		rc = audit_add(a, &audit_pki_weak_key, MOAT_AUDIT_HIGH, title, ev, fix, rel, 0);
	}
	const struct ca_entry *issuer = rc == 0 ? issuer_of(cas, &v) : NULL;
	if (issuer && id->not_after > issuer->not_after) {
		snprintf(title, sizeof(title),
			 "the certificate of %s outlives its issuer %s by %lld days", id->id,
			 issuer->cn, (long long)((id->not_after - issuer->not_after) / 86400));
		snprintf(ev, sizeof(ev), "notAfter %lld > issuer notAfter %lld",
			 (long long)id->not_after, (long long)issuer->not_after);
		snprintf(fix, sizeof(fix), "%s %s", renew_cmd(id->role), id->id);
		rc = audit_add(a, &audit_pki_past_issuer, MOAT_AUDIT_MEDIUM, title, ev, fix, rel,
			       0);
	}
	if (rc == 0 && EVP_Digest(v.key_bits, v.key_bits_len, hashes[*hash_count].sha, NULL, sha256,
				  NULL) == 1) {
		hashes[*hash_count].ident = idx;
		(*hash_count)++;
	}
	OPENSSL_free(der);
	return rc;
}

static int duplicates(struct audit_ctx *a, struct keyhash *h, size_t n)
{
	qsort(h, n, sizeof(*h), cmp_keyhash);
	for (size_t i = 1; i < n; i++) {
		if (memcmp(h[i - 1].sha, h[i].sha, 32) != 0) {
			continue;
		}
		const char *x = h[i - 1].ident == SIZE_MAX ? "the server"
							   : a->ids[h[i - 1].ident].id;
		const char *y = h[i].ident == SIZE_MAX ? "the server" : a->ids[h[i].ident].id;
		char title[1024], ev[1024], fix[1024];
		snprintf(title, sizeof(title), "%s and %s are certified with the same public key",
			 x, y);
		snprintf(ev, sizeof(ev), "SHA-256 of the SubjectPublicKeyInfo: %02x%02x%02x%02x...",
			 h[i].sha[0], h[i].sha[1], h[i].sha[2], h[i].sha[3]);
		snprintf(fix, sizeof(fix), "give each its own key: %s %s --force",
			 h[i].ident == SIZE_MAX ? "moat device renew"
						: renew_cmd(a->ids[h[i].ident].role),
			 y);
		int rc = audit_add(a, &audit_pki_duplicate_key, MOAT_AUDIT_HIGH, title, ev, fix,
				   NULL, 0);
		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

static int identities(struct audit_ctx *a)
{
	static const struct moat_audit_check *const checks[] = {
		&audit_pki_cert_expiry, &audit_pki_key_files,	&audit_pki_key_custody,
		&audit_pki_weak_key,	&audit_pki_past_issuer, &audit_pki_duplicate_key};
	char path[PATH_MAX];
	int rc = 0;
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		if ((rc = audit_ran(a, checks[i])) != 0) {
			return rc;
		}
	}
	if ((rc = deploy_path(a, path, sizeof(path), "pki/ca.crt")) != 0) {
		return rc;
	}
	struct ca_list *cas = calloc(1, sizeof(*cas));
	X509 *root = read_cert_file(path);
	STACK_OF(X509) *issuers = NULL;
	if ((rc = deploy_path(a, path, sizeof(path), MOAT_ISSUERS_FILE)) == 0) {
		issuers = read_certs_file(path);
	}
	ERR_clear_error();
	if (cas) {
		ca_list_add(cas, root);
		for (int i = 0; issuers && i < sk_X509_num(issuers); i++) {
			ca_list_add(cas, sk_X509_value(issuers, i));
		}
	}
	struct keyhash *hashes = malloc((a->id_count + 1) * sizeof(*hashes));
	EVP_MD *sha256 = EVP_MD_fetch(NULL, "SHA256", NULL); /* once, not per certificate */
	size_t n = 0;
	if (!hashes || !cas || !sha256) {
		rc = moat_err_set(a->err, MOAT_ENOMEM, "audit: out of memory");
	}
	for (size_t i = 0; rc == 0 && i < a->id_count; i++) {
		rc = one_identity(a, i, cas, sha256, hashes, &n);
	}
	/* the server certificate: expiry, strength, its key shared with nobody */
	char *server = NULL;
	size_t server_len = 0;
	struct moat_err e;
	unsigned char *der = NULL;
	long der_len = 0;
	struct audit_cert_view v;
	if (rc == 0 && (rc = deploy_path(a, path, sizeof(path), "pki/server.crt")) == 0 &&
	    moat_fs_read_all(path, MOAT_CERT_FILE_MAX_BYTES, &server, &server_len, &e) == 0 &&
	    pem_der(server, &der, &der_len) && audit_cert_scan(der, (size_t)der_len, &v)) {
		char desc[96], title[1024];
		if (audit_cert_weak_key(&v, desc, sizeof(desc))) {
			snprintf(title, sizeof(title), "the server certificate has a weak key: %s",
				 desc);
			rc = audit_add(a, &audit_pki_weak_key, MOAT_AUDIT_HIGH, title, desc,
				       "moat cert server renew", "pki/server.crt", 0);
		}
		if (rc == 0 && EVP_Digest(v.key_bits, v.key_bits_len, hashes[n].sha, NULL, sha256,
					  NULL) == 1) {
			hashes[n++].ident = SIZE_MAX;
		}
	}
	OPENSSL_free(der);
	free(server);
	if (rc == 0) {
		rc = ca_expiry(a, &audit_pki_cert_expiry, "pki/server.crt", "server",
			       "moat cert server renew", false);
	}
	if (rc == 0) {
		rc = duplicates(a, hashes, n);
	}
	/* the server key is for the broker's group only */
	mode_t m;
	if (rc == 0 && file_mode(a, "pki/server.key", &m) == 0 && (m & 007) != 0) {
		char ev[1024], fix[2 * PATH_MAX + 256];
		snprintf(ev, sizeof(ev), "mode %04o", (unsigned)(m & 07777));
		snprintf(fix, sizeof(fix), "chmod o-rwx %s/pki/server.key", a->dir);
		rc = audit_add(a, &audit_pki_key_files, MOAT_AUDIT_HIGH,
			       "pki/server.key is readable by every user", ev, fix,
			       "pki/server.key", 0);
	}
	free(hashes);
	EVP_MD_free(sha256);
	if (cas) {
		ca_list_free(cas);
		free(cas);
	}
	X509_free(root);
	sk_X509_pop_free(issuers, X509_free);
	return rc;
}

struct revoked_ctx {
	struct audit_ctx *a;
	struct moat_crl_set *set;
	int rc;
};

static int revoked_cb(const struct moat_cert_row *row, void *ctx)
{
	struct revoked_ctx *c = ctx;
	if (row->not_after <= c->a->o->now) {
		return 0; /* an expired certificate may leave the CRL */
	}
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai = NULL;
	if (BN_hex2bn(&bn, row->serial_hex) == 0 || !(ai = BN_to_ASN1_INTEGER(bn, NULL))) {
		BN_free(bn);
		return 0;
	}
	bool listed = moat_crl_set_revoked(c->set, ai);
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	char *pem = NULL;
	struct moat_err e;
	bool by_issuer = true;
	/* a verifier checks the CRL of the certificate's own issuer */
	if (listed &&
	    moat_registry_cert_pem(moat_deploy_registry(c->a->d), row->serial_hex, &pem, &e) == 0) {
		if (moat_crl_set_revoked_by_issuer(c->set, pem, &by_issuer, &e) != 0) {
			by_issuer = true; /* an unreadable PEM is identities()' finding */
		}
		free(pem);
	}
	if (listed && !by_issuer) {
		char title[1024];
		snprintf(title, sizeof(title),
			 "the revoked certificate %s of %s is listed only by CRLs of CAs that did "
			 "not issue it",
			 row->serial_hex, row->identity);
		c->rc = audit_add(c->a, &audit_drift_crl, MOAT_AUDIT_CRITICAL, title,
				  "a verifier checks the CRL of the certificate's own issuer: this "
				  "revocation has no effect",
				  "moat cert crl (rebuilds pki/crl.pem from the registry)",
				  "pki/crl.pem", 0);
		return c->rc != 0 ? 1 : 0;
	}
	if (!listed) {
		char title[1024], ev[1024];
		snprintf(title, sizeof(title),
			 "the revoked certificate %s of %s is missing from pki/crl.pem",
			 row->serial_hex, row->identity);
		snprintf(ev, sizeof(ev), "revoked in the registry at %lld",
			 (long long)row->revoked_at);
		c->rc = audit_add(c->a, &audit_drift_crl, MOAT_AUDIT_CRITICAL, title, ev,
				  "moat cert crl", "pki/crl.pem", 0);
		return c->rc != 0 ? 1 : 0;
	}
	return 0;
}

/* A certificate of the registry, by serial, to look up what the CRLs list. */
struct known_cert {
	ASN1_INTEGER *serial;
	char serial_hex[MOAT_SERIAL_HEX_LEN];
	char identity[MOAT_ID_BUF_LEN];
	bool revoked;
};

struct known_certs {
	struct known_cert *v;
	size_t n, cap;
	struct audit_ctx *a;
	int rc;
};

static void known_certs_free(struct known_certs *k)
{
	for (size_t i = 0; i < k->n; i++) {
		ASN1_INTEGER_free(k->v[i].serial);
	}
	free(k->v);
}

static int known_add(const struct moat_cert_row *row, void *ctx)
{
	struct known_certs *k = ctx;
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai = NULL;
	if (BN_hex2bn(&bn, row->serial_hex) == 0 || !(ai = BN_to_ASN1_INTEGER(bn, NULL))) {
		BN_free(bn);
		return 0; /* not a serial: nothing a CRL can list */
	}
	BN_free(bn);
	if (k->n == k->cap) {
		size_t cap = k->cap ? 2 * k->cap : 64;
		struct known_cert *v = realloc(k->v, cap * sizeof(*v));
		if (!v) {
			ASN1_INTEGER_free(ai);
			k->rc = moat_err_set(k->a->err, MOAT_ENOMEM, "audit: out of memory");
			return 1;
		}
		k->v = v;
		k->cap = cap;
	}
	struct known_cert *c = &k->v[k->n++];
	c->serial = ai;
	snprintf(c->serial_hex, sizeof(c->serial_hex), "%s", row->serial_hex);
	snprintf(c->identity, sizeof(c->identity), "%s", row->identity);
	c->revoked = row->revoked;
	return 0;
}

static int known_cmp(const void *x, const void *y)
{
	return ASN1_INTEGER_cmp(((const struct known_cert *)x)->serial,
				((const struct known_cert *)y)->serial);
}

static int listed_cb(const ASN1_INTEGER *serial, size_t crl_index, X509 *signer, void *ctx)
{
	(void)crl_index;
	struct known_certs *k = ctx;
	struct audit_ctx *a = k->a;
	char title[1024], ev[1024], cn[256] = "", hex[MOAT_SERIAL_HEX_LEN] = "?";
	X509_NAME_get_text_by_NID(X509_get_subject_name(signer), NID_commonName, cn,
				  (int)sizeof(cn));
	BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
	char *h = bn ? BN_bn2hex(bn) : NULL;
	if (h) {
		snprintf(hex, sizeof(hex), "%s", h);
	}
	OPENSSL_free(h);
	BN_free(bn);
	struct known_cert key = {.serial = (ASN1_INTEGER *)serial};
	const struct known_cert *c = k->n ? bsearch(&key, k->v, k->n, sizeof(*k->v), known_cmp)
					  : NULL;
	if (!c) {
		snprintf(title, sizeof(title),
			 "the CRL of %s lists serial %s, which is not a certificate of the registry",
			 cn, hex);
		snprintf(ev, sizeof(ev), "listed in pki/crl.pem, unknown to the registry");
		k->rc = audit_add(a, &audit_drift_crl, MOAT_AUDIT_HIGH, title, ev,
				  "moat cert crl (rebuilds pki/crl.pem from the registry)",
				  "pki/crl.pem", 0);
		return k->rc != 0 ? 1 : 0;
	}
	if (!c->revoked) {
		snprintf(title, sizeof(title),
			 "the active certificate %s of %s is listed as revoked by the CRL of %s",
			 c->serial_hex, c->identity, cn);
		snprintf(ev, sizeof(ev), "the registry holds %s as active; pki/crl.pem revokes it",
			 c->serial_hex);
		k->rc = audit_add(a, &audit_drift_crl, MOAT_AUDIT_CRITICAL, title, ev,
				  "moat cert crl (rebuilds pki/crl.pem from the registry), or "
				  "moat cert revoke if the revocation was meant",
				  "pki/crl.pem", 0);
		return k->rc != 0 ? 1 : 0;
	}
	return 0;
}

/* The other direction of drift.crl: what the CRLs list must be revoked in the registry and
 * be listed by its issuer's CRL. */
static int listed_in_crl(struct audit_ctx *a, const struct moat_crl_set *set)
{
	struct known_certs k = {.a = a};
	struct moat_err e;
	struct moat_registry *reg = moat_deploy_registry(a->d);
	int rc = 0;
	/* every certificate of registered identities, then the revoked ones of deleted ones */
	if (moat_registry_cert_foreach(reg, false, known_add, &k, &e) < 0 ||
	    moat_registry_cert_foreach(reg, true, known_add, &k, &e) < 0) {
		rc = k.rc != 0 ? k.rc : audit_cannot(a, &audit_drift_crl, e.msg);
	} else if (k.rc != 0) {
		rc = k.rc;
	} else {
		if (k.n) {
			qsort(k.v, k.n, sizeof(*k.v), known_cmp);
		}
		int wrc = moat_crl_set_serial_foreach(set, listed_cb, &k);
		rc = k.rc != 0 ? k.rc : wrc;
	}
	known_certs_free(&k);
	return rc;
}

static int crl(struct audit_ctx *a)
{
	const struct moat_audit_check *c = &audit_pki_crl;
	char path[PATH_MAX], title[1024], ev[1024], when[64];
	char *crl_pem = NULL, *iss_pem = NULL;
	size_t crl_len = 0, iss_len = 0;
	struct moat_err e;
	int rc;
	if ((rc = audit_ran(a, c)) != 0 || (rc = audit_ran(a, &audit_drift_crl)) != 0 ||
	    (rc = deploy_path(a, path, sizeof(path), "pki/crl.pem")) != 0) {
		return rc;
	}
	if (moat_fs_read_all(path, 64u * 1024 * 1024, &crl_pem, &crl_len, &e) != 0) {
		return audit_add(a, c, MOAT_AUDIT_CRITICAL, "pki/crl.pem cannot be read", e.msg,
				 "moat cert crl", "pki/crl.pem", 0);
	}
	if ((rc = deploy_path(a, path, sizeof(path), MOAT_ISSUERS_FILE)) != 0) {
		free(crl_pem);
		return rc;
	}
	if (moat_fs_exists(path) &&
	    moat_fs_read_all(path, 16u * 1024 * 1024, &iss_pem, &iss_len, &e) != 0) {
		free(crl_pem);
		return audit_cannot(a, c, e.msg);
	}
	X509 *root = NULL;
	if ((rc = deploy_path(a, path, sizeof(path), "pki/ca.crt")) == 0) {
		root = read_cert_file(path);
	}
	struct moat_crl_set *set = NULL;
	if (rc == 0 && !root) {
		ERR_clear_error();
		rc = audit_cannot(a, c, "pki/ca.crt does not parse");
	} else if (rc == 0 &&
		   moat_crl_set_load("pki/crl.pem", crl_pem, crl_len, root, MOAT_ISSUERS_FILE,
				     iss_pem, iss_len, &set, &e) != 0) {
		rc = audit_add(a, c, MOAT_AUDIT_CRITICAL,
			       "pki/crl.pem does not verify against the deployment's CAs", e.msg,
			       "moat cert crl", "pki/crl.pem", 0);
	} else if (rc == 0) {
		for (size_t i = 0; rc == 0 && i < moat_crl_set_count(set); i++) {
			struct moat_crl_info info;
			moat_crl_set_info(set, i, &info);
			audit_when(info.next_update, a->o->now, when, sizeof(when));
			snprintf(ev, sizeof(ev), "CRL of %s: nextUpdate %lld (%s), %zu revoked",
				 info.issuer_cn, (long long)info.next_update, when, info.revoked);
			if (info.next_update <= a->o->now) {
				snprintf(title, sizeof(title),
					 "the CRL of %s is stale: its nextUpdate passed %s",
					 info.issuer_cn, when);
				rc = audit_add(a, c, MOAT_AUDIT_HIGH, title, ev,
					       "moat cert crl (a running moatd re-signs it before "
					       "nextUpdate)",
					       "pki/crl.pem", 0);
			}
		}
		struct revoked_ctx rcx = {.a = a, .set = set};
		if (rc == 0) {
			int wrc = moat_registry_cert_foreach(moat_deploy_registry(a->d), true,
							     revoked_cb, &rcx, &e);
			rc = rcx.rc != 0 ? rcx.rc : (wrc < 0 ? audit_cannot(a, c, e.msg) : 0);
		}
		if (rc == 0) {
			rc = listed_in_crl(a, set);
		}
	}
	moat_crl_set_free(set);
	X509_free(root);
	free(crl_pem);
	free(iss_pem);
	return rc;
}

static int revoked_in_policy(struct audit_ctx *a)
{
	const struct moat_audit_check *c = &audit_pki_revoked_in_policy;
	char path[PATH_MAX], title[1024], ev[1024];
	char *text = NULL;
	size_t len = 0;
	struct moat_err e;
	int rc;
	if ((rc = audit_ran(a, c)) != 0 ||
	    (rc = deploy_path(a, path, sizeof(path), MOAT_POLICY_FILE_NAME)) != 0) {
		return rc;
	}
	if (!moat_fs_exists(path)) {
		return 0; /* drift.policy names a missing policy */
	}
	if (moat_fs_read_all(path, 256u * 1024 * 1024, &text, &len, &e) != 0) {
		return audit_cannot(a, c, e.msg);
	}
	struct moat_policy p;
	moat_policy_init(&p);
	if (moat_policy_parse(text, len, &p, &e) != 0) {
		free(text);
		return audit_add(a, c, MOAT_AUDIT_CRITICAL, "broker/policy does not parse", e.msg,
				 "moat broker config", MOAT_POLICY_FILE_NAME, 0);
	}
	free(text);
	for (size_t i = 0; rc == 0 && i < p.identity_count; i++) {
		const struct moat_policy_identity *pi = &p.identities[i];
		if (pi->status != MOAT_POLICY_ACTIVE) {
			continue;
		}
		const struct moat_identity *id = audit_identity(a, pi->name);
		const char *why = NULL;
		if (!id) {
			why = "is not in the registry (deleted)";
		} else if (id->status == MOAT_ID_REVOKED || id->cert_revoked) {
			why = "is revoked in the registry";
		} else if (id->status == MOAT_ID_DISABLED) {
			why = "is disabled in the registry";
		}
		if (why) {
			snprintf(title, sizeof(title), "%s is active in broker/policy but %s",
				 pi->name, why);
			snprintf(ev, sizeof(ev), "policy line: identity %s %s active", pi->name,
				 moat_role_name(pi->role));
			rc = audit_add(a, c, MOAT_AUDIT_CRITICAL, title, ev,
				       "moat broker config (rewrites the policy from the registry)",
				       MOAT_POLICY_FILE_NAME, 0);
		}
	}
	moat_policy_free(&p);
	return rc;
}

int audit_pki(struct audit_ctx *a)
{
	int rc;
	if ((rc = ca_expiry(a, &audit_pki_root_expiry, "pki/ca.crt", "root CA",
			    "plan a new root: moat init a new deployment and re-enroll (root "
			    "rotation is not automated)",
			    false)) != 0 ||
	    (rc = ca_expiry(a, &audit_pki_issuer_expiry, MOAT_ISSUER_CERT_FILE, "issuing CA",
			    "moat ca issuer rotate", true)) != 0 ||
	    (rc = ca_keys(a)) != 0 || (rc = identities(a)) != 0 || (rc = crl(a)) != 0) {
		return rc;
	}
	return revoked_in_policy(a);
}
