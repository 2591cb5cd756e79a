/* issue.c: issuing identity and server certificates from the CA. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "moat/codec.h"
#include "moat/timeutil.h"
#include "pki_internal.h"

int moat_pki_random_serial(uint8_t serial[MOAT_SERIAL_BYTES], char hex_out[MOAT_SERIAL_HEX_LEN],
			   struct moat_err *err)
{
	if (RAND_bytes(serial, MOAT_SERIAL_BYTES) != 1) {
		return moat_err_ssl(err, MOAT_ECRYPTO, "random serial");
	}
	/* positive and of fixed length (the first byte is never zero): 126 random bits */
	serial[0] = (uint8_t)((serial[0] & 0x3f) | 0x40);
	moat_hex_encode(serial, MOAT_SERIAL_BYTES, hex_out);
	return 0;
}

int pki_cert_basics(X509 *cert, const uint8_t serial[MOAT_SERIAL_BYTES], X509_NAME *issuer,
		    X509_NAME *subject, EVP_PKEY *pubkey, int64_t not_before, int64_t not_after,
		    struct moat_err *err)
{
	int rc = MOAT_ECRYPTO;
	BIGNUM *bn = BN_bin2bn(serial, MOAT_SERIAL_BYTES, NULL);
	ASN1_INTEGER *ai = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	if (!ai || !X509_set_version(cert, 2) || !X509_set_serialNumber(cert, ai) ||
	    !X509_set_issuer_name(cert, issuer) || !X509_set_subject_name(cert, subject) ||
	    !ASN1_TIME_set(X509_getm_notBefore(cert), (time_t)not_before) ||
	    !ASN1_TIME_set(X509_getm_notAfter(cert), (time_t)not_after)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "building a certificate");
		goto out;
	}
	if (moat_key_is_p256(pubkey)) {
		if ((rc = pki_p256_set_pubkey(cert, pubkey, err)) != 0) {
			goto out;
		}
	} else if (!X509_set_pubkey(cert, pubkey)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "building a certificate");
		goto out;
	}
	rc = 0;
out:
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return rc;
}

int pki_add_exts(X509 *issuer, X509 *cert, const struct pki_ext *exts, size_t count,
		 struct moat_err *err)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	for (size_t i = 0; i < count; i++) {
		X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, exts[i].nid, exts[i].value);
		if (!ext) {
			return moat_err_ssl(err, MOAT_ECRYPTO, "extension %s=%s",
					    OBJ_nid2sn(exts[i].nid), exts[i].value);
		}
		int ok = X509_add_ext(cert, ext, -1);
		X509_EXTENSION_free(ext);
		if (!ok) {
			return moat_err_ssl(err, MOAT_ECRYPTO, "adding extension %s",
					    OBJ_nid2sn(exts[i].nid));
		}
	}
	return 0;
}

int pki_key_pem(EVP_PKEY *key, char **out_pem, size_t *out_len, struct moat_err *err)
{
	if (moat_key_is_p256(key)) {
		return pki_p256_key_pem(key, out_pem, out_len, err);
	}
	BIO *b = BIO_new(BIO_s_mem());
	int rc = MOAT_ECRYPTO;
	if (!b || !PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "encoding a key");
	} else {
		rc = pki_bio_take(b, out_pem, out_len, err);
	}
	BIO_free_all(b);
	return rc;
}

/* "DNS:a,DNS:b,IP:1.2.3.4" from validated names; IPs are re-rendered by inet_ntop. */
static int build_san(const struct moat_issue_req *req, char *buf, size_t size, struct moat_err *err)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < req->san_dns_count + req->san_ip_count; i++) {
		const char *v;
		const char *kind;
		char ipbuf[INET6_ADDRSTRLEN];
		if (i < req->san_dns_count) {
			v = req->san_dns[i];
			kind = "DNS";
			for (const char *p = v; *p; p++) {
				if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
				      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.')) {
					return moat_err_set(err, MOAT_EINVAL,
							    "'%s': not a host name", v);
				}
			}
		} else {
			const char *ip = req->san_ip[i - req->san_dns_count];
			unsigned char addr[16];
			int af = strchr(ip, ':') ? AF_INET6 : AF_INET;
			if (inet_pton(af, ip, addr) != 1 ||
			    !inet_ntop(af, addr, ipbuf, sizeof(ipbuf))) {
				return moat_err_set(err, MOAT_EINVAL, "'%s': not an IP address",
						    ip);
			}
			v = ipbuf;
			kind = "IP";
		}
		int n = snprintf(buf + used, size - used, "%s%s:%s", used ? "," : "", kind, v);
		if (n < 0 || (size_t)n >= size - used) {
			return moat_err_set(err, MOAT_EINVAL, "too many subjectAltNames");
		}
		used += (size_t)n;
	}
	return 0;
}

int moat_pki_issue(const struct moat_ca *ca, const struct moat_issue_req *req,
		   const uint8_t serial[MOAT_SERIAL_BYTES], struct moat_issued *out,
		   struct moat_err *err)
{
	int rc = MOAT_ECRYPTO;
	X509_NAME *subject = NULL;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	char san[4096];
	memset(out, 0, sizeof(*out));

	if (!ca->key) {
		return moat_err_set(err, MOAT_ESTATE, "CA key not unlocked");
	}
	if (!req->cn) {
		return moat_err_set(err, MOAT_EINVAL, "certificate without a name");
	}
	/* a client CN is an identity: it becomes a topic level and a path, so it is checked
	 * here too rather than trusted from every caller */
	if (req->kind == MOAT_CERT_CLIENT && (rc = moat_identity_name_check(req->cn, err)) != 0) {
		return rc;
	}
	if (req->key && (rc = pki_key_check(req->key, err)) != 0) {
		return rc;
	}
	if (req->not_after <= req->not_before) {
		return moat_err_set(err, MOAT_EINVAL, "%s: validity ends before it starts",
				    req->cn);
	}
	int64_t ca_end = moat_pki_ca_not_after(ca);
	if (req->not_after > ca_end) {
		char want[MOAT_TIME_ISO_LEN];
		char end[MOAT_TIME_ISO_LEN];
		moat_time_iso(req->not_after, want);
		moat_time_iso(ca_end, end);
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: would be valid until %s, after its issuing CA (%s): no "
				    "certificate outlives its issuer",
				    req->cn, want, end);
	}
	if (req->key) {
		if (!EVP_PKEY_up_ref(req->key)) {
			return moat_err_ssl(err, MOAT_ECRYPTO, "key reference");
		}
		key = req->key;
	} else if ((rc = moat_key_generate(req->key_type, &key, err)) != 0) {
		return rc;
	}
	const X509_NAME *ca_subject = X509_get_subject_name(ca->cert);
	const char *ou = req->kind == MOAT_CERT_SERVER ? "server" : moat_role_name(req->role);
	char org[256] = "moat";
	X509_NAME_get_text_by_NID((X509_NAME *)ca_subject, NID_organizationName, org, sizeof(org));
	subject = X509_NAME_new();
	if (!subject ||
	    !X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8, (const unsigned char *)org, -1,
					-1, 0) ||
	    !X509_NAME_add_entry_by_txt(subject, "OU", MBSTRING_UTF8, (const unsigned char *)ou, -1,
					-1, 0) ||
	    !X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
					(const unsigned char *)req->cn, -1, -1, 0)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "%s: subject", req->cn);
		goto out;
	}
	cert = X509_new();
	if (!cert) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "%s: certificate", req->cn);
		goto out;
	}
	if ((rc = pki_cert_basics(cert, serial, (X509_NAME *)ca_subject, subject, key,
				  req->not_before, req->not_after, err)) != 0) {
		goto out;
	}
	bool rsa = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA;
	struct pki_ext exts[6];
	size_t n = 0;
	exts[n++] = (struct pki_ext){NID_basic_constraints, "critical,CA:FALSE"};
	exts[n++] =
		(struct pki_ext){NID_key_usage, rsa ? "critical,digitalSignature,keyEncipherment"
						    : "critical,digitalSignature"};
	exts[n++] = (struct pki_ext){NID_ext_key_usage,
				     req->kind == MOAT_CERT_SERVER ? "serverAuth" : "clientAuth"};
	exts[n++] = (struct pki_ext){NID_subject_key_identifier, "hash"};
	exts[n++] = (struct pki_ext){NID_authority_key_identifier, "keyid:always"};
	if (req->san_dns_count + req->san_ip_count > 0) {
		if ((rc = build_san(req, san, sizeof(san), err)) != 0) {
			goto out;
		}
		exts[n++] = (struct pki_ext){NID_subject_alt_name, san};
	}
	if ((rc = pki_add_exts(ca->cert, cert, exts, n, err)) != 0) {
		goto out;
	}
	if (!X509_sign(cert, ca->key, EVP_sha256())) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "%s: signing", req->cn);
		goto out;
	}
	/* a CSR's key is public only: there is no key.pem to write */
	if ((rc = pki_cert_pem(cert, &out->cert_pem, &out->cert_pem_len, err)) != 0 ||
	    (!req->key_public_only &&
	     (rc = pki_key_pem(key, &out->key_pem, &out->key_pem_len, err)) != 0)) {
		goto out;
	}
	moat_hex_encode(serial, MOAT_SERIAL_BYTES, out->serial_hex);
	out->not_before = req->not_before;
	out->not_after = req->not_after;
	out->cert = cert;
	out->key = key;
	cert = NULL;
	key = NULL;
	rc = 0;
out:
	if (rc != 0) {
		moat_pki_issued_free(out);
	}
	X509_NAME_free(subject);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

void moat_pki_issued_free(struct moat_issued *issued)
{
	if (!issued) {
		return;
	}
	X509_free(issued->cert);
	EVP_PKEY_free(issued->key);
	free(issued->cert_pem);
	if (issued->key_pem) {
		OPENSSL_cleanse(issued->key_pem, issued->key_pem_len);
		free(issued->key_pem);
	}
	memset(issued, 0, sizeof(*issued));
}
