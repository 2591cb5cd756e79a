/* pki.h: the deployment's certificate authority, on OpenSSL 3.
 *
 * Everything here works in memory; writing files is the caller's job (deploy), so one
 * process can issue thousands of identities and write them in one batch. Private keys at
 * rest (the CA's, firmware signing keys) are encrypted PKCS#8 (AES-256-CBC, scrypt KDF),
 * through the one copy in keystore.c. Every certificate carries the
 * identity's role as OU, CN = identity, a random serial of MOAT_SERIAL_BYTES bytes (the
 * caller checks uniqueness in the registry), SKI/AKI, and an EKU of clientAuth (identities)
 * or serverAuth (the server certificate).
 *
 * Ownership: a struct moat_ca and struct moat_issued are owned by the caller and freed with
 * their _free function; pointers inside them live as long as the struct.
 */
#ifndef MOAT_PKI_H
#define MOAT_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "moat/certinfo.h"
#include "moat/err.h"
#include "moat/identity.h"
#include "moat/keys.h"

#define MOAT_PASSPHRASE_MIN_LEN 8
#define MOAT_PASSPHRASE_MAX_LEN 1024

/* The key types identities and the CA may have (keys.h names them; moat_key_generate makes
 * them): "ec-p256", "rsa-2048", "rsa-3072", "rsa-4096"; anything else (rsa-1024, ed25519
 * included) refused. */
MOAT_MUST_CHECK int moat_key_type_parse(const char *text, enum moat_key_type *out,
					struct moat_err *err);

/* key, PKCS#8-encrypted under passphrase (AES-256-CBC, key from scrypt N=2^14 r=8 p=1:
 * within OpenSSL's default scrypt memory limit, so `openssl pkey` opens it too), as PEM
 * "ENCRYPTED PRIVATE KEY". Caller frees *out_pem. */
MOAT_MUST_CHECK int moat_pki_key_encrypt(EVP_PKEY *key, const char *passphrase, char **out_pem,
					 size_t *out_len, struct moat_err *err);
/* The key in pem (len bytes, as moat_pki_key_encrypt writes it); name (its file) labels the
 * messages. A key that is not encrypted is refused, since it would open under any
 * passphrase: MOAT_ECRYPTO "<name>: not an encrypted PKCS#8 key; ...". A file that is not
 * a whole encrypted key (empty, truncated, garbage), or whose decryption is not a private
 * key: MOAT_ECRYPTO "<name>: not a valid encrypted key (truncated or corrupt)". One that does
 * not decrypt: MOAT_ECRYPTO "<name>: wrong passphrase" (damage to the last cipher block
 * reads the same: CBC cannot tell them apart). Never prompts. Caller frees *out_key. */
MOAT_MUST_CHECK int moat_pki_key_decrypt(const char *name, const char *pem, size_t len,
					 const char *passphrase, EVP_PKEY **out_key,
					 struct moat_err *err);

struct moat_ca {
	X509 *cert;
	EVP_PKEY *key; /* NULL when loaded without the passphrase */
};

/* A new self-signed CA: CN "<name> CA", O name, basicConstraints CA:TRUE pathlen:0,
 * keyUsage keyCertSign|cRLSign. */
MOAT_MUST_CHECK int moat_pki_ca_create(const char *name, enum moat_key_type type, int64_t now,
				       int64_t days, struct moat_ca **out_ca, struct moat_err *err);
/* A root CA for a two-tier deployment: as moat_pki_ca_create, but pathlen:1, since it signs
 * the issuing CA (moat_pki_issuer_create), which signs everything else. */
MOAT_MUST_CHECK int moat_pki_root_create(const char *name, enum moat_key_type type, int64_t now,
					 int64_t days, struct moat_ca **out_ca,
					 struct moat_err *err);
/* An online issuing CA signed by root (whose key must be loaded): O copied from the root,
 * CN "<O> Issuing CA <generation>" (each generation its own name, so the CRLs of an old and
 * a new issuing CA never share an issuer name), CA:TRUE pathlen:0, keyCertSign|cRLSign,
 * valid from now to not_after. A not_after beyond the root's notAfter is refused
 * (MOAT_EINVAL "...after the root CA (...)"): no certificate outlives its issuer. */
MOAT_MUST_CHECK int moat_pki_issuer_create(const struct moat_ca *root, unsigned generation,
					   enum moat_key_type type, int64_t now, int64_t not_after,
					   struct moat_ca **out, struct moat_err *err);
/* As moat_pki_issuer_create, for a key the caller has (one in a PKCS#11 token: only its
 * public half is read here; the CA's signatures later go through key). The CA takes its own
 * reference to key. */
MOAT_MUST_CHECK int moat_pki_issuer_certify(const struct moat_ca *root, unsigned generation,
					    EVP_PKEY *key, int64_t now, int64_t not_after,
					    struct moat_ca **out, struct moat_err *err);
/* A new self-signed certificate for root's key (loaded), same subject and validity, with
 * pathlen:1: how a single-tier deployment's root (pathlen:0) becomes able to sign an issuing
 * CA. Everything the old certificate signed verifies under the new one (same name, same
 * key). */
MOAT_MUST_CHECK int moat_pki_root_recertify(const struct moat_ca *root, struct moat_ca **out,
					    struct moat_err *err);
/* The CA certificate's pathlen (-1 when unlimited or not a CA). */
int moat_pki_ca_pathlen(const struct moat_ca *ca);
/* The CA certificate's notAfter (seconds since the epoch). */
int64_t moat_pki_ca_not_after(const struct moat_ca *ca);
/* PEM of the CA's certificate. Caller frees. */
MOAT_MUST_CHECK int moat_pki_ca_cert_pem(const struct moat_ca *ca, char **out_pem, size_t *out_len,
					 struct moat_err *err);
/* PEM of an issuing CA's certificate and of its key, unencrypted PKCS#8 (write it 0600,
 * readable only by the user moatd runs as). Caller frees both; wipe the key. */
MOAT_MUST_CHECK int moat_pki_issuer_export(const struct moat_ca *ca, char **out_cert_pem,
					   size_t *out_cert_len, char **out_key_pem,
					   size_t *out_key_len, struct moat_err *err);
/* Loads an issuing CA: the first certificate of cert_path and, unless key_path is NULL, its
 * unencrypted key, which must be mode 0600 or narrower (MOAT_EDENIED "...: readable by
 * others") and match the certificate. */
MOAT_MUST_CHECK int moat_pki_issuer_load(const char *cert_path, const char *key_path,
					 struct moat_ca **out_ca, struct moat_err *err);
/* PEM of the CA certificate and of its key encrypted under passphrase. Caller frees. */
MOAT_MUST_CHECK int moat_pki_ca_export(const struct moat_ca *ca, const char *passphrase,
				       char **out_cert_pem, size_t *out_cert_len,
				       char **out_key_pem, size_t *out_key_len,
				       struct moat_err *err);
/* Loads the CA. passphrase NULL loads only the certificate. A wrong passphrase is
 * MOAT_ECRYPTO with "<key_path>: wrong passphrase". The key must match the certificate. */
MOAT_MUST_CHECK int moat_pki_ca_load(const char *cert_path, const char *key_path,
				     const char *passphrase, struct moat_ca **out_ca,
				     struct moat_err *err);
void moat_pki_ca_free(struct moat_ca *ca);

enum moat_cert_kind { MOAT_CERT_CLIENT, MOAT_CERT_SERVER };

struct moat_issue_req {
	const char *cn;	     /* identity name (validated), or the server's name */
	enum moat_role role; /* OU; ignored for MOAT_CERT_SERVER ("server") */
	enum moat_cert_kind kind;
	enum moat_key_type key_type;
	int64_t not_before;
	int64_t not_after;
	const char *const *san_dns; /* server: subjectAltName DNS names */
	size_t san_dns_count;
	const char *const *san_ip; /* server: subjectAltName IP addresses (v4 or v6 text) */
	size_t san_ip_count;
	EVP_PKEY *key;	      /* optional: certify this key instead of generating one */
	bool key_public_only; /* key is a CSR's (moat_csr): no key_pem in the result */
};

struct moat_issued {
	EVP_PKEY *key;
	X509 *cert;
	char serial_hex[MOAT_SERIAL_HEX_LEN];
	int64_t not_before;
	int64_t not_after;
	char *cert_pem;
	size_t cert_pem_len;
	char *key_pem; /* unencrypted PKCS#8: the device needs it; write it 0600. NULL when
			  the request's key was public only (a CSR's) */
	size_t key_pem_len;
};

/* ---- certificate signing requests (src/pki/csr.c) ----
 * A CSR brings a key a device (or an operator) made itself. moat takes nothing from it but
 * its public key: the subject (CN = identity, OU = role) and every extension of the
 * certificate are moat's (moat_pki_issue with req.key = csr->key, key_public_only), so a
 * CSR asking for CA:TRUE, serverAuth or another name gets none of them. */

#define MOAT_CSR_MAX_BYTES 16384

struct moat_csr {
	struct X509_req_st *req;  /* X509_REQ */
	EVP_PKEY *key;		  /* the public key to certify; owned */
	bool has_cn;		  /* the subject holds a CN */
	char cn[MOAT_ID_BUF_LEN]; /* that CN when it is a valid identity name, else "" */
};

/* Reads one request, PEM ("CERTIFICATE REQUEST") or DER (the whole input, no trailing
 * bytes), at most MOAT_CSR_MAX_BYTES, and checks it: version 1, a key moat issues for
 * (P-256, RSA of 2048 bits or more; anything else, RSA-1024 and ed25519 included, is
 * MOAT_EINVAL "CSR: ..."), its signature made by that key (proof of possession; MOAT_EVERIFY
 * otherwise), at most one CN. Any other failure to read it is MOAT_EINVAL. Caller frees
 * *out with moat_csr_free. */
MOAT_MUST_CHECK int moat_csr_parse(const unsigned char *data, size_t len, struct moat_csr **out,
				   struct moat_err *err);
/* May csr be certified as identity id? Its subject is empty, or its CN is id (other subject
 * attributes are ignored: never copied). Otherwise MOAT_EDENIED "CSR: it names ...". */
MOAT_MUST_CHECK int moat_csr_check_identity(const struct moat_csr *csr, const char *id,
					    struct moat_err *err);
/* true when csr asks for the key cert already certifies (a re-enrollment must bring a new
 * key). */
bool moat_csr_same_key(const struct moat_csr *csr, X509 *cert);
void moat_csr_free(struct moat_csr *csr);

/* ---- EST (RFC 7030) encodings (src/pki/p7.c) ---- */

/* DER of a certs-only PKCS#7 (degenerate SignedData, no content, no signers) holding every
 * certificate of the PEM text pem (len bytes), in order. MOAT_EINVAL when it holds none.
 * Caller frees *out_der. */
MOAT_MUST_CHECK int moat_pki_p7_certs(const char *pem, size_t len, unsigned char **out_der,
				      size_t *out_len, struct moat_err *err);
/* The same PKCS#7 of the n certificates already in memory (in order; at least one; each
 * only referenced): no PEM text is decoded, so OpenSSL's decoders never look up a
 * provider for a certificate's key (what an EST answer cost most). */
MOAT_MUST_CHECK int moat_pki_p7_of(X509 *const *certs, size_t n, unsigned char **out_der,
				   size_t *out_len, struct moat_err *err);
/* DER of the CSR attributes moat asks for (RFC 7030 §4.5.2): ecdsa-with-SHA256 and an
 * id-ecPublicKey attribute naming prime256v1. Caller frees *out_der. */
MOAT_MUST_CHECK int moat_pki_csrattrs(unsigned char **out_der, size_t *out_len,
				      struct moat_err *err);

/* Fills serial with random bytes (positive, never zero) and hex_out with its lower-case hex. */
MOAT_MUST_CHECK int moat_pki_random_serial(uint8_t serial[MOAT_SERIAL_BYTES],
					   char hex_out[MOAT_SERIAL_HEX_LEN], struct moat_err *err);

/* Issues req under ca (whose key must be loaded). A not_after beyond the CA's notAfter is
 * refused (MOAT_EINVAL "<cn>: would be valid until ..., after its issuing CA (...)"): no
 * certificate outlives its issuer. */
MOAT_MUST_CHECK int moat_pki_issue(const struct moat_ca *ca, const struct moat_issue_req *req,
				   const uint8_t serial[MOAT_SERIAL_BYTES], struct moat_issued *out,
				   struct moat_err *err);
void moat_pki_issued_free(struct moat_issued *issued);

struct moat_revoked_cert {
	char serial_hex[MOAT_SERIAL_HEX_LEN];
	int64_t revoked_at;
	int reason; /* CRL reason code (RFC 5280), 0 = unspecified */
};

/* "unspecified", "key-compromise", "superseded", "cessation-of-operation",
 * "affiliation-changed", "privilege-withdrawn". */
MOAT_MUST_CHECK int moat_pki_reason_parse(const char *text, int *out_reason, struct moat_err *err);
const char *moat_pki_reason_name(int reason);

/* A signed v2 CRL with crlNumber and AKI, valid from now for days. Caller frees *out_pem. */
MOAT_MUST_CHECK int moat_pki_crl_build(const struct moat_ca *ca,
				       const struct moat_revoked_cert *revoked, size_t count,
				       int64_t crl_number, int64_t now, int64_t days,
				       char **out_pem, size_t *out_len, struct moat_err *err);

/* The same, valid until next_update (seconds since the epoch) rather than for days. */
MOAT_MUST_CHECK int moat_pki_crl_build_until(const struct moat_ca *ca,
					     const struct moat_revoked_cert *revoked, size_t count,
					     int64_t crl_number, int64_t now, int64_t next_update,
					     char **out_pem, size_t *out_len, struct moat_err *err);

/* The first CRL of crl_pem signed by ca (issuer name and signature), as PEM (caller frees);
 * MOAT_ENOENT when there is none. */
MOAT_MUST_CHECK int moat_pki_crl_pick(const char *crl_pem, size_t crl_len, X509 *ca, char **out,
				      size_t *out_len, struct moat_err *err);
/* *out: whether the (first) certificate of cert_pem was signed by ca. */
MOAT_MUST_CHECK int moat_pki_cert_issued_by(const char *cert_pem, X509 *ca, bool *out,
					    struct moat_err *err);

/* The CRLs of a deployment's pki/crl.pem: one per CA whose certificates are in use (the
 * issuing CA, an issuing CA being retired, the root while root-signed certificates
 * remain). Opaque; freed with moat_crl_set_free. */
struct moat_crl_set;
struct moat_crl_info {
	char issuer_cn[256];
	int64_t last_update;
	int64_t next_update;
	size_t revoked;
	bool by_root; /* signed by the root, not an issuing CA */
};
/* Reads every CRL of crl_pem (name labels errors). Each must be signed by root or by an
 * issuing CA of issuers_pem (NULL: none), every one of which must be a CA signed by root;
 * anything else is refused (MOAT_EVERIFY; MOAT_EINVAL for text that is not PEM CRLs). It
 * does not judge currency: callers compare nextUpdate with their clock. root is not taken
 * over (the set holds its own reference). */
MOAT_MUST_CHECK int moat_crl_set_load(const char *name, const char *crl_pem, size_t crl_len,
				      X509 *root, const char *issuers_name, const char *issuers_pem,
				      size_t issuers_len, struct moat_crl_set **out,
				      struct moat_err *err);
size_t moat_crl_set_count(const struct moat_crl_set *set);
/* What CRL i (below moat_crl_set_count) says. */
void moat_crl_set_info(const struct moat_crl_set *set, size_t i, struct moat_crl_info *out);
/* true when serial is listed in any of the CRLs. */
bool moat_crl_set_revoked(const struct moat_crl_set *set, const ASN1_INTEGER *serial);
/* Calls cb for every serial listed by every CRL of the set, with the CA that signed that
 * CRL and its index; a non-zero return from cb stops the walk and is returned. */
typedef int (*moat_crl_serial_cb)(const ASN1_INTEGER *serial, size_t crl_index, X509 *signer,
				  void *ctx);
MOAT_MUST_CHECK int moat_crl_set_serial_foreach(const struct moat_crl_set *set,
						moat_crl_serial_cb cb, void *ctx);
/* *listed: whether the certificate of cert_pem (its first) is listed by a CRL of the set
 * signed by the CA that issued it (a verifier checks that CRL; moat lists every revoked
 * serial in every CRL, so listed by another one alone does not count). */
MOAT_MUST_CHECK int moat_crl_set_revoked_by_issuer(const struct moat_crl_set *set,
						   const char *cert_pem, bool *listed,
						   struct moat_err *err);
/* The earliest nextUpdate of the set: when the first of its CRLs goes stale. */
int64_t moat_crl_set_next_update(const struct moat_crl_set *set);
void moat_crl_set_free(struct moat_crl_set *set);

/* PKCS#12 of key + cert + CA, AES-256 + SHA-256 MAC, protected by password. */
MOAT_MUST_CHECK int moat_pki_export_p12(const char *cert_pem, const char *key_pem,
					const char *ca_pem, const char *name, const char *password,
					unsigned char **out_der, size_t *out_len,
					struct moat_err *err);
/* What a firmware needs besides its credentials: the broker it must connect to and the
 * limits the broker enforces on a device. broker_host: a host name or address ([A-Za-z0-9.:-]
 * only, so it is safe in a C string), NULL to leave it out. */
struct moat_c_header_broker {
	const char *host;
	int port;	      /* 1..65535 */
	unsigned max_payload; /* bytes per message the broker accepts from a device */
	unsigned msgs_per_s;  /* 0: unlimited */
};
/* A C header with DEVICE_ID, CA_CERT, DEVICE_CERT and DEVICE_KEY as string constants, and,
 * with broker, MOAT_BROKER_HOST, MOAT_BROKER_PORT, MOAT_MAX_PAYLOAD and a comment naming the
 * rules a firmware must follow (client id = CN, its topics, device_id = sender, limits). */
MOAT_MUST_CHECK int moat_pki_export_c_header(const char *id, const char *cert_pem,
					     const char *key_pem, const char *ca_pem,
					     const struct moat_c_header_broker *broker,
					     char **out_text, size_t *out_len,
					     struct moat_err *err);

#endif
