/* p256.c: a fast path for ECDSA P-256 identities, the default key type.
 *
 * OpenSSL 3 serialises provider keys through OSSL_ENCODER, and creating an encoder context
 * costs about 85 µs (a search of every provider's encoders under a lock), twice per identity:
 * once for the certificate's SubjectPublicKeyInfo, once for the private key's PEM. That was
 * two thirds of the cost of issuing an identity. For P-256 both encodings are fixed
 * templates (RFC 5480 and RFC 5915 inside RFC 5208 PKCS#8), so we fill them from the key's
 * raw parameters and let OpenSSL's ASN.1 code write the outer structures. Other key types
 * take the generic path. tests/unit/test_pki.c checks that both round-trip through OpenSSL's
 * decoders to the same key.
 *
 * moat_key_generate (src/core/keys.c) makes P-256 keys as built-in EC_KEYs on one shared
 * group, which encode through OpenSSL's built-in EC method with no encoder search; a key
 * from elsewhere (a provider key) is copied onto that group here. */
#include <string.h>

/* EVP_PKEY_get1_EC_KEY and EVP_PKEY_assign_EC_KEY: see pki_p256_set_pubkey */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "moat/keys.h"
#include "pki_internal.h"

#define P256_POINT_BYTES 65 /* uncompressed: 0x04 || X || Y */
#define P256_SCALAR_BYTES 32

/* The uncompressed public point. A provider key answers the parameter; a built-in key
 * (moat_key_generate) does not, and is read through its EC_KEY, which costs nothing for it. */
static int p256_point(EVP_PKEY *key, unsigned char point[P256_POINT_BYTES], bool *out_builtin)
{
	size_t len = 0;
	*out_builtin = false;
	if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
					    P256_POINT_BYTES, &len) == 1) {
		return len == P256_POINT_BYTES && point[0] == 0x04 ? 0 : -1;
	}
	ERR_clear_error();
	const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(key);
	if (!ec || EC_POINT_point2oct(EC_KEY_get0_group(ec), EC_KEY_get0_public_key(ec),
				      POINT_CONVERSION_UNCOMPRESSED, point, P256_POINT_BYTES,
				      NULL) != P256_POINT_BYTES) {
		return -1;
	}
	*out_builtin = true;
	return 0;
}

/* The certificate must also carry the key as an EVP_PKEY (X509_get0_pubkey), or
 * X509_verify_cert and X509_check_private_key fail on the in-memory certificate; setting
 * the encoding alone (X509_PUBKEY_set0_param) does not do that, and decoding it back costs
 * as much as the encoder (~120 µs). A built-in key goes in as it is; a provider key is
 * copied, public point only, into a built-in key on the shared group (~5 µs). Either way
 * X509_set_pubkey encodes with the built-in EC method instead of searching the providers'
 * encoders. EC_KEY is deprecated in OpenSSL 3 but present in every 3.x build Debian ships;
 * only this file and src/core/keys.c use it. */
int pki_p256_set_pubkey(X509 *cert, EVP_PKEY *key, struct moat_err *err)
{
	int rc = MOAT_ECRYPTO;
	unsigned char point[P256_POINT_BYTES];
	bool builtin = false;
	EC_KEY *pub = NULL;
	EVP_PKEY *copy = NULL;
	if (p256_point(key, point, &builtin) != 0) {
		return moat_err_ssl(err, MOAT_ECRYPTO, "P-256 public key");
	}
	if (builtin) {
		if (!X509_set_pubkey(cert, key)) {
			return moat_err_ssl(err, MOAT_ECRYPTO, "certificate public key");
		}
		return 0;
	}
	const EC_GROUP *group = moat_key_p256_group();
	pub = EC_KEY_new();
	copy = EVP_PKEY_new();
	if (!group || !pub || !copy || !EC_KEY_set_group(pub, group) ||
	    !EC_KEY_oct2key(pub, point, sizeof(point), NULL) ||
	    !EVP_PKEY_assign_EC_KEY(copy, pub)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "P-256 public key");
		goto out;
	}
	pub = NULL; /* owned by copy */
	if (!X509_set_pubkey(cert, copy)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "certificate public key");
		goto out;
	}
	rc = 0;
out:
	EC_KEY_free(pub);
	EVP_PKEY_free(copy);
	return rc;
}

int pki_p256_key_pem(EVP_PKEY *key, char **out_pem, size_t *out_len, struct moat_err *err)
{
	/* RFC 5915 ECPrivateKey without the optional parameters (they are in the PKCS#8
	 * AlgorithmIdentifier), as OpenSSL itself writes it:
	 * SEQUENCE { INTEGER 1, OCTET STRING d, [1] { BIT STRING Q } } */
	static const unsigned char head[] = {0x30, 0x6b, 0x02, 0x01, 0x01, 0x04, 0x20};
	static const unsigned char mid[] = {0xa1, 0x44, 0x03, 0x42, 0x00};
	enum { DER_LEN = sizeof(head) + P256_SCALAR_BYTES + sizeof(mid) + P256_POINT_BYTES };
	unsigned char point[P256_POINT_BYTES];
	BIGNUM *d = NULL;
	unsigned char *der = NULL;
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	BIO *bio = NULL;
	int rc = MOAT_ECRYPTO;

	bool builtin = false;
	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) != 1 ||
	    p256_point(key, point, &builtin) != 0) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "P-256 private key");
		goto out;
	}
	der = OPENSSL_secure_malloc(DER_LEN);
	if (!der) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	unsigned char *p = der;
	memcpy(p, head, sizeof(head));
	p += sizeof(head);
	if (BN_bn2binpad(d, p, P256_SCALAR_BYTES) != P256_SCALAR_BYTES) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "P-256 private key");
		goto out;
	}
	p += P256_SCALAR_BYTES;
	memcpy(p, mid, sizeof(mid));
	p += sizeof(mid);
	memcpy(p, point, P256_POINT_BYTES);
	p8 = PKCS8_PRIV_KEY_INFO_new();
	/* the copy handed to p8 comes from the ordinary heap: ASN.1 frees it with OPENSSL_free */
	unsigned char *owned = p8 ? OPENSSL_memdup(der, DER_LEN) : NULL;
	if (!owned || !PKCS8_pkey_set0(p8, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), 0, V_ASN1_OBJECT,
				       OBJ_nid2obj(NID_X9_62_prime256v1), owned, DER_LEN)) {
		OPENSSL_free(owned);
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "PKCS#8");
		goto out;
	}
	bio = BIO_new(BIO_s_mem());
	if (!bio || !PEM_write_bio_PKCS8_PRIV_KEY_INFO(bio, p8)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "encoding a key");
		goto out;
	}
	rc = pki_bio_take(bio, out_pem, out_len, err);
out:
	BIO_free_all(bio);
	/* PKCS8_PRIV_KEY_INFO_free does not wipe; the key bytes are cleansed here */
	if (p8) {
		const unsigned char *pk = NULL;
		int pklen = 0;
		if (PKCS8_pkey_get0(NULL, &pk, &pklen, NULL, p8) && pk) {
			OPENSSL_cleanse((unsigned char *)pk, (size_t)pklen);
		}
		PKCS8_PRIV_KEY_INFO_free(p8);
	}
	OPENSSL_secure_clear_free(der, DER_LEN);
	BN_clear_free(d);
	return rc;
}
