/* test_pki.c: the certificate authority (include/moat/pki.h), checked with OpenSSL's own
 * verifier rather than by re-reading what moat wrote: issued certificates must verify
 * against the CA with X509_verify_cert, carry CN, OU role, the right EKU and SAN, and a
 * positive 16-byte serial; the CRL must verify and revoke exactly what it lists. Every
 * refusal (wrong passphrase, key/cert mismatch, RSA-1024, bad SAN, no CA key) has a test. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "moat/fsutil.h"
#include "moat/pki.h"
#include "moat/timeutil.h"
#include "testutil.h"
#include "testutil_pki.h"

#define PASSPHRASE "correct horse battery"

static char tmp_root[TU_TMPDIR_MAX];
static struct moat_ca *test_ca; /* ec-p256, with key */
static char *test_ca_pem;
static int64_t now;

static int setup(void **state)
{
	(void)state;
	if (tu_tmpdir_make(tmp_root, sizeof(tmp_root), "pki") != 0) {
		return -1;
	}
	now = moat_time_now();
	struct moat_err err;
	if (moat_pki_ca_create("plant-1", MOAT_KEY_EC_P256, now, 365, &test_ca, &err) != 0) {
		fprintf(stderr, "CA: %s\n", err.msg);
		return -1;
	}
	char *key_pem = NULL;
	size_t cert_len = 0;
	size_t key_len = 0;
	if (moat_pki_ca_export(test_ca, PASSPHRASE, &test_ca_pem, &cert_len, &key_pem, &key_len,
			       &err) != 0) {
		return -1;
	}
	free(key_pem);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	moat_pki_ca_free(test_ca);
	free(test_ca_pem);
	return tu_tmpdir_remove(tmp_root);
}

static void tmp_path(char *buf, size_t size, const char *name)
{
	tu_path(buf, size, tmp_root, name);
}

/* OpenSSL's verdict on cert under ca (and crl, when given) for purpose: X509_V_OK or the
 * verification error. */
static int verify(X509 *ca, X509 *cert, X509_CRL *crl, int purpose)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	assert_true(store && ctx);
	assert_int_equal(X509_STORE_add_cert(store, ca), 1);
	if (crl) {
		assert_int_equal(X509_STORE_add_crl(store, crl), 1);
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	}
	assert_int_equal(X509_STORE_CTX_init(ctx, store, cert, NULL), 1);
	if (purpose) {
		X509_STORE_CTX_set_purpose(ctx, purpose);
	}
	int ok = X509_verify_cert(ctx);
	int e = X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return ok == 1 ? X509_V_OK : (e == X509_V_OK ? -1 : e);
}

static char *name_entry(X509 *cert, int nid)
{
	static char buf[256];
	buf[0] = '\0';
	X509_NAME_get_text_by_NID(X509_get_subject_name(cert), nid, buf, sizeof(buf));
	return buf;
}

/* The serial must be positive, exactly MOAT_SERIAL_BYTES long, and equal the bytes given. */
static void check_serial(X509 *cert, const uint8_t *want)
{
	const ASN1_INTEGER *ai = X509_get0_serialNumber(cert);
	assert_int_equal(ASN1_STRING_type(ai), V_ASN1_INTEGER); /* not V_ASN1_NEG_INTEGER */
	assert_int_equal(ASN1_STRING_length(ai), MOAT_SERIAL_BYTES);
	const unsigned char *d = ASN1_STRING_get0_data(ai);
	assert_true(d[0] >= 0x40 && d[0] <= 0x7f);
	if (want) {
		assert_memory_equal(d, want, MOAT_SERIAL_BYTES);
	}
}

/* The key PEM and the certificate's public key round-trip through OpenSSL's decoders to
 * the issued key (p256.c writes both from templates): the encodings equal OpenSSL's own, and
 * a signature by the decoded private key verifies under the decoded certificate. */
static void check_key_pem(const struct moat_issued *is, X509 *decoded_cert)
{
	BIO *b = BIO_new_mem_buf(is->key_pem, -1);
	assert_non_null(b);
	EVP_PKEY *key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(key);
	assert_int_equal(EVP_PKEY_eq(key, is->key), 1);
	assert_int_equal(X509_check_private_key(decoded_cert, key), 1);
	assert_int_equal(X509_check_private_key(is->cert, key), 1);

	unsigned char *mine = NULL;
	unsigned char *theirs = NULL;
	int mine_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(is->cert), &mine);
	int theirs_len = i2d_PUBKEY(is->key, &theirs);
	assert_true(mine_len > 0);
	assert_int_equal(mine_len, theirs_len);
	assert_memory_equal(mine, theirs, (size_t)mine_len);
	OPENSSL_free(mine);
	OPENSSL_free(theirs);

	b = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PrivateKey(b, is->key, NULL, NULL, 0, NULL, NULL), 1);
	char *generic = NULL;
	long glen = BIO_get_mem_data(b, &generic);
	assert_int_equal((size_t)glen, is->key_pem_len);
	assert_memory_equal(generic, is->key_pem, is->key_pem_len);
	BIO_free(b);

	static const unsigned char msg[] = "moat";
	unsigned char sig[512];
	size_t sig_len = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
	assert_int_equal(EVP_DigestSign(md, sig, &sig_len, msg, sizeof(msg)), 1);
	EVP_MD_CTX_free(md);
	md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
					      X509_get0_pubkey(decoded_cert)),
			 1);
	assert_int_equal(EVP_DigestVerify(md, sig, sig_len, msg, sizeof(msg)), 1);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
}

static void new_serial(uint8_t serial[MOAT_SERIAL_BYTES], char hex[MOAT_SERIAL_HEX_LEN])
{
	struct moat_err err;
	assert_int_equal(moat_pki_random_serial(serial, hex, &err), 0);
}

/* A client certificate for cn under the test CA, valid from a minute ago for 30 days, with a
 * new random serial (returned in serial and hex). */
static void issue_new(const char *cn, enum moat_role role, uint8_t serial[MOAT_SERIAL_BYTES],
		      char hex[MOAT_SERIAL_HEX_LEN], struct moat_issued *out)
{
	new_serial(serial, hex);
	tu_pki_issue_client(test_ca, cn, role, now - 60, now + 30 * 86400, serial, out);
}

/* ---- keys ---- */

static void test_key_types(void **state)
{
	(void)state;
	struct moat_err err;
	enum moat_key_type t = MOAT_KEY_RSA_4096;
	static const char *const names[] = {"ec-p256", "rsa-2048", "rsa-3072", "rsa-4096"};
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(moat_key_type_parse(names[i], &t, &err), 0);
		assert_string_equal(moat_key_type_name(t), names[i]);
	}
	static const char *const bad[] = {"rsa-1024", "rsa-512", "ec-p384",   "RSA-2048",
					  "ec",	      "",	 "rsa-2048 ", "ed25519"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t = MOAT_KEY_RSA_3072;
		assert_int_equal(moat_key_type_parse(bad[i], &t, &err), MOAT_EINVAL);
		assert_int_equal(t, MOAT_KEY_RSA_3072);
	}
	assert_int_equal(moat_key_type_parse("rsa-1024", &t, &err), MOAT_EINVAL);
	assert_string_equal(err.msg, "key type 'rsa-1024' refused: use ec-p256, rsa-2048, "
				     "rsa-3072 or rsa-4096");
	assert_int_equal(moat_key_type_parse(NULL, &t, &err), MOAT_EINVAL);
	assert_string_equal(moat_key_type_name((enum moat_key_type)99), "unknown");
	EVP_PKEY *key = NULL;
	assert_int_equal(moat_key_generate((enum moat_key_type)99, &key, &err), MOAT_EINVAL);
	assert_null(key);
}

static void test_keygen(void **state)
{
	(void)state;
	struct moat_err err;
	EVP_PKEY *key = NULL;
	assert_int_equal(moat_key_generate(MOAT_KEY_EC_P256, &key, &err), 0);
	assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_bits(key), 256);
	char group[64];
	size_t glen = 0;
	assert_int_equal(EVP_PKEY_get_group_name(key, group, sizeof(group), &glen), 1);
	assert_string_equal(group, "prime256v1");
	EVP_PKEY_free(key);
	key = NULL;
	assert_int_equal(moat_key_generate(MOAT_KEY_RSA_2048, &key, &err), 0);
	assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_RSA);
	assert_int_equal(EVP_PKEY_get_bits(key), 2048);
	EVP_PKEY_free(key);
}

static void test_random_serial(void **state)
{
	(void)state;
	uint8_t a[MOAT_SERIAL_BYTES];
	uint8_t b[MOAT_SERIAL_BYTES];
	char ha[MOAT_SERIAL_HEX_LEN];
	char hb[MOAT_SERIAL_HEX_LEN];
	for (int i = 0; i < 200; i++) {
		new_serial(a, ha);
		/* 01xxxxxx: positive in DER without a leading zero byte, never short */
		assert_int_equal(a[0] & 0xc0, 0x40);
		assert_int_equal(strlen(ha), 2 * MOAT_SERIAL_BYTES);
		assert_int_equal(strspn(ha, "0123456789abcdef"), 2 * MOAT_SERIAL_BYTES);
		char again[3];
		snprintf(again, sizeof(again), "%02x", a[MOAT_SERIAL_BYTES - 1]);
		assert_memory_equal(ha + 2 * MOAT_SERIAL_BYTES - 2, again, 2);
	}
	new_serial(b, hb);
	assert_string_not_equal(ha, hb);
}

/* ---- CA ---- */

static void test_ca_create(void **state)
{
	(void)state;
	X509 *c = test_ca->cert;
	assert_string_equal(name_entry(c, NID_commonName), "plant-1 CA");
	assert_string_equal(name_entry(c, NID_organizationName), "plant-1");
	assert_int_equal(X509_check_ca(c), 1);
	assert_int_equal(X509_get_pathlen(c), 0);
	assert_true(X509_get_key_usage(c) & KU_KEY_CERT_SIGN);
	assert_true(X509_get_key_usage(c) & KU_CRL_SIGN);
	assert_false(X509_get_key_usage(c) & KU_DIGITAL_SIGNATURE);
	assert_true(X509_get_extension_flags(c) & EXFLAG_SS);
	assert_non_null(X509_get0_subject_key_id(c));
	int crit = -1;
	BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(c, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_int_equal(crit, 1);
	BASIC_CONSTRAINTS_free(bc);
	check_serial(c, NULL);
	assert_int_equal(verify(c, c, NULL, 0), X509_V_OK);
	/* valid now, for the requested number of days */
	struct moat_cert_info info;
	struct moat_err err;
	assert_int_equal(moat_cert_info(c, &info, &err), 0);
	assert_true(info.not_before <= now && info.not_before >= now - 120);
	assert_int_equal(info.not_after, now + 365 * 86400);
}

static void test_ca_export_load(void **state)
{
	(void)state;
	struct moat_err err;
	char *cert_pem = NULL;
	char *key_pem = NULL;
	size_t cert_len = 0;
	size_t key_len = 0;
	assert_int_equal(moat_pki_ca_export(test_ca, PASSPHRASE, &cert_pem, &cert_len, &key_pem,
					    &key_len, &err),
			 0);
	assert_int_equal(strlen(cert_pem), cert_len);
	assert_int_equal(strlen(key_pem), key_len);
	assert_non_null(strstr(cert_pem, "-----BEGIN CERTIFICATE-----"));
	/* encrypted at rest, never a plain key */
	assert_non_null(strstr(key_pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----"));
	assert_null(strstr(key_pem, "-----BEGIN PRIVATE KEY-----"));

	char cert_path[512];
	char key_path[512];
	tmp_path(cert_path, sizeof(cert_path), "ca.crt");
	tmp_path(key_path, sizeof(key_path), "ca.key");
	tu_write_text(cert_path, cert_pem);
	tu_write_text(key_path, key_pem);

	struct moat_ca *ca = NULL;
	assert_int_equal(moat_pki_ca_load(cert_path, key_path, PASSPHRASE, &ca, &err), 0);
	assert_non_null(ca->key);
	assert_int_equal(X509_cmp(ca->cert, test_ca->cert), 0);
	assert_int_equal(EVP_PKEY_eq(ca->key, test_ca->key), 1);
	/* the loaded CA issues certificates that verify under the original */
	struct moat_issue_req req = {.cn = "from-loaded",
				     .kind = MOAT_CERT_CLIENT,
				     .not_before = now,
				     .not_after = now + 3600};
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	new_serial(serial, hex);
	struct moat_issued issued;
	assert_int_equal(moat_pki_issue(ca, &req, serial, &issued, &err), 0);
	assert_int_equal(verify(test_ca->cert, issued.cert, NULL, 0), X509_V_OK);
	moat_pki_issued_free(&issued);
	moat_pki_ca_free(ca);

	/* certificate only: no key, and the key file is not even read */
	ca = NULL;
	assert_int_equal(moat_pki_ca_load(cert_path, "/nonexistent/ca.key", NULL, &ca, &err), 0);
	assert_null(ca->key);
	assert_int_equal(moat_pki_issue(ca, &req, serial, &issued, &err), MOAT_ESTATE);
	assert_string_equal(err.msg, "CA key not unlocked");
	char *pem = NULL;
	size_t len = 0;
	assert_int_equal(moat_pki_crl_build(ca, NULL, 0, 1, now, 30, &pem, &len, &err),
			 MOAT_ESTATE);
	assert_null(pem);
	assert_int_equal(moat_pki_ca_export(ca, PASSPHRASE, &cert_pem, &cert_len, &pem, &len, &err),
			 MOAT_EINVAL);
	moat_pki_ca_free(ca);
	moat_pki_ca_free(NULL);
	free(cert_pem);
	free(key_pem);
}

static void test_ca_wrong_passphrase(void **state)
{
	(void)state;
	struct moat_err err;
	char cert_path[512];
	char key_path[512];
	tmp_path(cert_path, sizeof(cert_path), "ca.crt");
	tmp_path(key_path, sizeof(key_path), "ca.key");
	struct moat_ca *ca = NULL;
	assert_int_equal(moat_pki_ca_load(cert_path, key_path, "wrong horse battery", &ca, &err),
			 MOAT_ECRYPTO);
	assert_null(ca);
	char want[600];
	snprintf(want, sizeof(want), "%s: wrong passphrase", key_path);
	assert_string_equal(err.msg, want);
	assert_int_equal(moat_pki_ca_load(cert_path, key_path, "", &ca, &err), MOAT_ECRYPTO);
	assert_string_equal(err.msg, want);
	assert_int_equal(ERR_peek_error(), 0);
}

static void test_ca_load_refusals(void **state)
{
	(void)state;
	struct moat_err err;
	struct moat_ca *other = NULL;
	assert_int_equal(moat_pki_ca_create("other", MOAT_KEY_EC_P256, now, 10, &other, &err), 0);
	char *ocert = NULL;
	char *okey = NULL;
	size_t l1 = 0;
	size_t l2 = 0;
	assert_int_equal(moat_pki_ca_export(other, PASSPHRASE, &ocert, &l1, &okey, &l2, &err), 0);
	char cert_path[512];
	char other_key[512];
	tmp_path(cert_path, sizeof(cert_path), "ca.crt");
	tmp_path(other_key, sizeof(other_key), "other.key");
	tu_write_text(other_key, okey);

	/* another CA's key under the same passphrase: refused, naming both files */
	struct moat_ca *ca = NULL;
	assert_int_equal(moat_pki_ca_load(cert_path, other_key, PASSPHRASE, &ca, &err),
			 MOAT_ECRYPTO);
	assert_null(ca);
	assert_non_null(strstr(err.msg, "other.key: does not match"));
	assert_non_null(strstr(err.msg, "ca.crt"));

	/* missing, empty, garbage and key-as-certificate files */
	char path[512];
	tmp_path(path, sizeof(path), "missing.crt");
	assert_int_equal(moat_pki_ca_load(path, other_key, NULL, &ca, &err), MOAT_ENOENT);
	tmp_path(path, sizeof(path), "empty.crt");
	tu_write_text(path, "");
	assert_int_equal(moat_pki_ca_load(path, other_key, NULL, &ca, &err), MOAT_ECRYPTO);
	assert_non_null(strstr(err.msg, "empty.crt: not a PEM certificate"));
	tmp_path(path, sizeof(path), "garbage.crt");
	tu_write_text(path,
		      "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
	assert_int_equal(moat_pki_ca_load(path, other_key, NULL, &ca, &err), MOAT_ECRYPTO);
	assert_non_null(strstr(err.msg, "garbage.crt: not a PEM certificate"));
	assert_int_equal(moat_pki_ca_load(other_key, other_key, NULL, &ca, &err), MOAT_ECRYPTO);
	/* a key file that is not a key at all */
	assert_int_equal(moat_pki_ca_load(cert_path, cert_path, PASSPHRASE, &ca, &err),
			 MOAT_ECRYPTO);
	assert_null(ca);
	/* the other CA's own key, unencrypted: it would open with any passphrase, so refused */
	char other_cert[512];
	char plain_key[512];
	tmp_path(other_cert, sizeof(other_cert), "other.crt");
	tmp_path(plain_key, sizeof(plain_key), "plain.key");
	tu_write_text(other_cert, ocert);
	BIO *b = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PrivateKey(b, other->key, NULL, NULL, 0, NULL, NULL), 1);
	char *plain = NULL;
	long plain_len = BIO_get_mem_data(b, &plain);
	/* the BIO's data is not NUL-terminated: copy exactly plain_len bytes */
	char *plain_text = calloc(1, (size_t)plain_len + 1);
	assert_non_null(plain_text);
	memcpy(plain_text, plain, (size_t)plain_len);
	tu_write_text(plain_key, plain_text);
	free(plain_text);
	BIO_free(b);
	assert_int_equal(moat_pki_ca_load(other_cert, plain_key, "any passphrase", &ca, &err),
			 MOAT_ECRYPTO);
	assert_null(ca);
	assert_non_null(strstr(err.msg, "not an encrypted"));
	free(ocert);
	free(okey);
	moat_pki_ca_free(other);
}

/* The one copy of key encryption at rest (keystore.c), for the CA's and firmware keys:
 * every type round-trips, OpenSSL reads the PEM as scrypt + AES-256-CBC PKCS#8, and what
 * is not an encrypted key or does not decrypt is refused with its message. */
static void test_keystore(void **state)
{
	(void)state;
	struct moat_err err;
	static const enum moat_key_type types[] = {MOAT_KEY_EC_P256, MOAT_KEY_ED25519,
						   MOAT_KEY_RSA_2048};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		EVP_PKEY *key = NULL;
		EVP_PKEY *back = NULL;
		char *pem = NULL;
		size_t len = 0;
		assert_int_equal(moat_key_generate(types[i], &key, &err), 0);
		assert_int_equal(moat_pki_key_encrypt(key, PASSPHRASE, &pem, &len, &err), 0);
		assert_int_equal(strlen(pem), len);
		assert_non_null(strstr(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----"));
		/* the on-disk form: PBES2, scrypt N=2^14 r=8 p=1, AES-256-CBC */
		BIO *b = BIO_new_mem_buf(pem, (int)len);
		X509_SIG *p8 = PEM_read_bio_PKCS8(b, NULL, NULL, NULL);
		assert_non_null(p8);
		const X509_ALGOR *alg = NULL;
		X509_SIG_get0(p8, &alg, NULL);
		assert_int_equal(OBJ_obj2nid(alg->algorithm), NID_pbes2);
		PBE2PARAM *pbe2 =
			ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM), alg->parameter);
		assert_non_null(pbe2);
		assert_int_equal(OBJ_obj2nid(pbe2->keyfunc->algorithm), NID_id_scrypt);
		assert_int_equal(OBJ_obj2nid(pbe2->encryption->algorithm), NID_aes_256_cbc);
		SCRYPT_PARAMS *sp = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(SCRYPT_PARAMS),
							      pbe2->keyfunc->parameter);
		assert_non_null(sp);
		uint64_t v = 0;
		assert_int_equal(ASN1_INTEGER_get_uint64(&v, sp->costParameter), 1);
		assert_int_equal(v, 16384);
		assert_int_equal(ASN1_INTEGER_get_uint64(&v, sp->blockSize), 1);
		assert_int_equal(v, 8);
		assert_int_equal(ASN1_INTEGER_get_uint64(&v, sp->parallelizationParameter), 1);
		assert_int_equal(v, 1);
		SCRYPT_PARAMS_free(sp);
		PBE2PARAM_free(pbe2);
		X509_SIG_free(p8);
		BIO_free(b);

		assert_int_equal(moat_pki_key_decrypt("k.key", pem, len, PASSPHRASE, &back, &err),
				 0);
		assert_int_equal(EVP_PKEY_eq(back, key), 1);
		EVP_PKEY_free(back);
		back = (EVP_PKEY *)1;
		assert_int_equal(moat_pki_key_decrypt("k.key", pem, len, "not it", &back, &err),
				 MOAT_ECRYPTO);
		assert_null(back);
		assert_string_equal(err.msg, "k.key: wrong passphrase");
		assert_int_equal(moat_pki_key_decrypt("k.key", pem, len, NULL, &back, &err),
				 MOAT_ECRYPTO);
		assert_string_equal(err.msg, "k.key: wrong passphrase");
		/* cut short: the PEM no longer decodes; damage, not a wrong passphrase */
		static const char corrupt[] =
			"k.key: not a valid encrypted key (truncated or corrupt)";
		assert_int_equal(moat_pki_key_decrypt("k.key", pem, len / 2, PASSPHRASE, &back,
						      &err),
				 MOAT_ECRYPTO);
		assert_string_equal(err.msg, corrupt);
		assert_int_equal(ERR_peek_error(), 0);
		/* cut inside the base64, the END line kept: the structure does not parse */
		char *cut = strdup(pem);
		assert_non_null(cut);
		char *end = strstr(cut, "-----END");
		assert_non_null(end);
		size_t keep = (size_t)(strchr(cut, '\n') - cut) + 1 + 64 + 1; /* BEGIN, one line */
		memmove(cut + keep, end, strlen(end) + 1);
		assert_int_equal(moat_pki_key_decrypt("k.key", cut, strlen(cut), PASSPHRASE, &back,
						      &err),
				 MOAT_ECRYPTO);
		assert_string_equal(err.msg, corrupt);
		free(cut);
		static const char garbage[] = "\x7f\x45\x4c\x46 this is not a key\n";
		assert_int_equal(moat_pki_key_decrypt("k.key", garbage, sizeof(garbage) - 1,
						      PASSPHRASE, &back, &err),
				 MOAT_ECRYPTO);
		assert_string_equal(err.msg, corrupt);
		assert_int_equal(moat_pki_key_decrypt("k.key", "", 0, PASSPHRASE, &back, &err),
				 MOAT_ECRYPTO);
		assert_string_equal(err.msg, corrupt);
		assert_null(back);
		assert_int_equal(ERR_peek_error(), 0);
		free(pem);
		EVP_PKEY_free(key);
	}
	static const char plain[] =
		"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
	EVP_PKEY *back = NULL;
	assert_int_equal(moat_pki_key_decrypt("p.key", plain, sizeof(plain) - 1, PASSPHRASE, &back,
					      &err),
			 MOAT_ECRYPTO);
	assert_string_equal(err.msg, "p.key: not an encrypted PKCS#8 key; moat keeps private keys "
				     "encrypted at rest");
	char *pem = (char *)1;
	size_t len = 0;
	assert_int_equal(moat_pki_key_encrypt(NULL, PASSPHRASE, &pem, &len, &err), MOAT_EINVAL);
	assert_null(pem);
}

/* ---- issuing ---- */

static void test_issue_client(void **state)
{
	(void)state;
	struct moat_err err;
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	struct moat_issued is;
	issue_new("sensor-001", MOAT_ROLE_DEVICE, serial, hex, &is);
	X509 *c = is.cert;
	assert_int_equal(verify(test_ca->cert, c, NULL, 0), X509_V_OK);
	assert_int_equal(verify(test_ca->cert, c, NULL, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
	/* a device certificate cannot act as a server */
	assert_int_not_equal(verify(test_ca->cert, c, NULL, X509_PURPOSE_SSL_SERVER), X509_V_OK);
	assert_string_equal(name_entry(c, NID_commonName), "sensor-001");
	assert_string_equal(name_entry(c, NID_organizationalUnitName), "device");
	assert_string_equal(name_entry(c, NID_organizationName), "plant-1");
	assert_int_equal(X509_get_extended_key_usage(c), XKU_SSL_CLIENT);
	assert_int_equal(X509_check_ca(c), 0);
	assert_true(X509_get_key_usage(c) & KU_DIGITAL_SIGNATURE);
	assert_false(X509_get_key_usage(c) & KU_KEY_CERT_SIGN);
	assert_non_null(X509_get0_subject_key_id(c));
	assert_non_null(X509_get0_authority_key_id(c));
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(c),
					       X509_get0_subject_key_id(test_ca->cert)),
			 0);
	assert_int_equal(X509_get_ext_by_NID(c, NID_subject_alt_name, -1), -1);
	check_serial(c, serial);
	assert_string_equal(is.serial_hex, hex);
	assert_int_equal(is.not_before, now - 60);
	assert_int_equal(is.not_after, now + 30 * 86400);
	assert_int_equal(X509_check_private_key(c, is.key), 1);
	assert_int_equal(EVP_PKEY_get_base_id(is.key), EVP_PKEY_EC);
	/* the PEMs are what the struct holds */
	assert_int_equal(strlen(is.cert_pem), is.cert_pem_len);
	assert_int_equal(strlen(is.key_pem), is.key_pem_len);
	assert_non_null(strstr(is.key_pem, "-----BEGIN PRIVATE KEY-----"));
	X509 *again = tu_pem_cert(is.cert_pem);
	assert_int_equal(X509_cmp(again, c), 0);
	check_key_pem(&is, again);
	X509_free(again);

	struct moat_cert_info info;
	assert_int_equal(moat_cert_info(c, &info, &err), 0);
	assert_string_equal(info.cn, "sensor-001");
	assert_string_equal(info.ou, "device");
	assert_string_equal(info.serial_hex, hex);
	assert_int_equal(info.not_before, now - 60);
	assert_int_equal(info.not_after, now + 30 * 86400);
	moat_pki_issued_free(&is);
	assert_null(is.cert);
	moat_pki_issued_free(NULL);

	/* the other roles land in OU */
	issue_new("ingest", MOAT_ROLE_SERVICE, serial, hex, &is);
	assert_string_equal(name_entry(is.cert, NID_organizationalUnitName), "service");
	moat_pki_issued_free(&is);
	issue_new("alice", MOAT_ROLE_OPERATOR, serial, hex, &is);
	assert_string_equal(name_entry(is.cert, NID_organizationalUnitName), "operator");
	moat_pki_issued_free(&is);
}

static void test_issue_expired_and_rsa(void **state)
{
	(void)state;
	struct moat_err err;
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	new_serial(serial, hex);
	struct moat_issued is;
	struct moat_issue_req req = {.cn = "old",
				     .kind = MOAT_CERT_CLIENT,
				     .key_type = MOAT_KEY_RSA_2048,
				     .not_before = now - 7200,
				     .not_after = now - 3600};
	assert_int_equal(moat_pki_issue(test_ca, &req, serial, &is, &err), 0);
	assert_int_equal(EVP_PKEY_get_bits(is.key), 2048);
	assert_true(X509_get_key_usage(is.cert) & KU_KEY_ENCIPHERMENT);
	X509 *decoded = tu_pem_cert(is.cert_pem);
	check_key_pem(&is, decoded); /* the generic (non-P-256) encoders */
	X509_free(decoded);
	assert_int_equal(verify(test_ca->cert, is.cert, NULL, 0), X509_V_ERR_CERT_HAS_EXPIRED);
	moat_pki_issued_free(&is);
}

static void test_issue_server(void **state)
{
	(void)state;
	struct moat_err err;
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	new_serial(serial, hex);
	static const char *const dns[] = {"localhost", "broker.plant-1.example"};
	static const char *const ips[] = {"127.0.0.1", "::1", "2001:db8::0:1"};
	struct moat_issue_req req = {
		.cn = "broker.plant-1.example",
		.role = MOAT_ROLE_DEVICE, /* ignored for servers */
		.kind = MOAT_CERT_SERVER,
		.key_type = MOAT_KEY_EC_P256,
		.not_before = now - 60,
		.not_after = now + 86400,
		.san_dns = dns,
		.san_dns_count = 2,
		.san_ip = ips,
		.san_ip_count = 3,
	};
	struct moat_issued is;
	assert_int_equal(moat_pki_issue(test_ca, &req, serial, &is, &err), 0);
	X509 *c = is.cert;
	assert_int_equal(verify(test_ca->cert, c, NULL, X509_PURPOSE_SSL_SERVER), X509_V_OK);
	assert_int_not_equal(verify(test_ca->cert, c, NULL, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
	assert_int_equal(X509_get_extended_key_usage(c), XKU_SSL_SERVER);
	assert_string_equal(name_entry(c, NID_organizationalUnitName), "server");
	assert_int_equal(X509_check_host(c, "localhost", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(c, "broker.plant-1.example", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(c, "evil.example", 0, 0, NULL), 0);
	assert_int_equal(X509_check_ip_asc(c, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_ip_asc(c, "::1", 0), 1);
	assert_int_equal(X509_check_ip_asc(c, "2001:db8::1", 0), 1);
	assert_int_equal(X509_check_ip_asc(c, "127.0.0.2", 0), 0);
	check_serial(c, serial);
	moat_pki_issued_free(&is);
}

static void test_issue_refusals(void **state)
{
	(void)state;
	struct moat_err err;
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	new_serial(serial, hex);
	struct moat_issued is;
	struct moat_issue_req req = {.cn = "dev-1",
				     .kind = MOAT_CERT_CLIENT,
				     .not_before = now,
				     .not_after = now};
	/* validity that ends before it starts */
	assert_int_equal(moat_pki_issue(test_ca, &req, serial, &is, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "validity"));
	assert_null(is.cert);
	assert_null(is.key_pem);
	req.not_after = now + 60;
	/* a client CN must be an identity name: it becomes a topic level and a path */
	static const char *const bad_cn[] = {"Dev-1", "dev/1", "dev+1", "#", "", "a b"};
	for (size_t i = 0; i < sizeof(bad_cn) / sizeof(bad_cn[0]); i++) {
		req.cn = bad_cn[i];
		if (moat_pki_issue(test_ca, &req, serial, &is, &err) != MOAT_EINVAL) {
			fail_msg("CN '%s' accepted", bad_cn[i]);
		}
		assert_null(is.cert);
	}
	req.cn = NULL;
	assert_int_equal(moat_pki_issue(test_ca, &req, serial, &is, &err), MOAT_EINVAL);
	req.cn = "dev-1";
	/* an RSA-1024 key handed in is refused like the rsa-1024 key type */
	EVP_PKEY *weak = EVP_RSA_gen(1024);
	assert_non_null(weak);
	req.key = weak;
	assert_int_equal(moat_pki_issue(test_ca, &req, serial, &is, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "1024"));
	assert_null(is.cert);
	EVP_PKEY_free(weak);
	/* a P-384 key is not a type moat issues either */
	EVP_PKEY *p384 = EVP_EC_gen("P-384");
	assert_non_null(p384);
	req.key = p384;
	assert_int_equal(moat_pki_issue(test_ca, &req, serial, &is, &err), MOAT_EINVAL);
	EVP_PKEY_free(p384);
	/* a P-256 key handed in is certified as is */
	EVP_PKEY *mine = tu_key_p256();
	req.key = mine;
	assert_int_equal(moat_pki_issue(test_ca, &req, serial, &is, &err), 0);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(is.cert), mine), 1);
	X509 *decoded = tu_pem_cert(is.cert_pem);
	check_key_pem(&is, decoded); /* a provider key, not one of moat_key_generate's */
	X509_free(decoded);
	moat_pki_issued_free(&is);
	EVP_PKEY_free(mine); /* the issued struct held its own reference */
	req.key = NULL;

	/* server SANs: anything that is not a host name or an address */
	req.kind = MOAT_CERT_SERVER;
	req.cn = "broker";
	static const char *const bad_dns[] = {"a b",  "a,DNS:evil.example", "host_name", "",
					      "x\ny", "*.example"};
	for (size_t i = 0; i < sizeof(bad_dns) / sizeof(bad_dns[0]); i++) {
		req.san_dns = &bad_dns[i];
		req.san_dns_count = 1;
		if (moat_pki_issue(test_ca, &req, serial, &is, &err) == 0) {
			moat_pki_issued_free(&is);
			fail_msg("DNS SAN '%s' accepted", bad_dns[i]);
		}
	}
	req.san_dns_count = 0;
	static const char *const bad_ip[] = {"256.1.1.1", "1.2.3", "localhost",
					     "::g",	  "",	   "1.2.3.4,IP:5.6.7.8"};
	for (size_t i = 0; i < sizeof(bad_ip) / sizeof(bad_ip[0]); i++) {
		req.san_ip = &bad_ip[i];
		req.san_ip_count = 1;
		if (moat_pki_issue(test_ca, &req, serial, &is, &err) != MOAT_EINVAL) {
			fail_msg("IP SAN '%s' accepted", bad_ip[i]);
		}
		assert_non_null(strstr(err.msg, "not an IP address"));
	}
	assert_int_equal(ERR_peek_error(), 0);
}

/* ---- CRL ---- */

static void test_crl(void **state)
{
	(void)state;
	struct moat_err err;
	struct moat_issued revoked_a;
	struct moat_issued revoked_b;
	struct moat_issued good;
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	issue_new("lost-1", MOAT_ROLE_DEVICE, serial, hex, &revoked_a);
	issue_new("lost-2", MOAT_ROLE_DEVICE, serial, hex, &revoked_b);
	issue_new("still-good", MOAT_ROLE_DEVICE, serial, hex, &good);

	int reason = -1;
	assert_int_equal(moat_pki_reason_parse("key-compromise", &reason, &err), 0);
	assert_int_equal(reason, 1);
	struct moat_revoked_cert list[2];
	memset(list, 0, sizeof(list));
	snprintf(list[0].serial_hex, sizeof(list[0].serial_hex), "%s", revoked_a.serial_hex);
	list[0].revoked_at = now - 10;
	list[0].reason = reason;
	snprintf(list[1].serial_hex, sizeof(list[1].serial_hex), "%s", revoked_b.serial_hex);
	list[1].revoked_at = now - 5;
	list[1].reason = 0;

	char *pem = NULL;
	size_t len = 0;
	assert_int_equal(moat_pki_crl_build(test_ca, list, 2, 7, now, 30, &pem, &len, &err), 0);
	assert_int_equal(strlen(pem), len);
	X509_CRL *crl = tu_pem_crl(pem);
	assert_int_equal(X509_CRL_get_version(crl), 1); /* v2 */
	assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(test_ca->cert)), 1);
	assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(crl),
				       X509_get_subject_name(test_ca->cert)),
			 0);
	ASN1_INTEGER *number = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	assert_non_null(number);
	assert_int_equal(ASN1_INTEGER_get(number), 7);
	ASN1_INTEGER_free(number);
	AUTHORITY_KEYID *akid = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, NULL, NULL);
	assert_non_null(akid);
	assert_int_equal(ASN1_OCTET_STRING_cmp(akid->keyid,
					       X509_get0_subject_key_id(test_ca->cert)),
			 0);
	AUTHORITY_KEYID_free(akid);
	assert_int_equal(ASN1_TIME_cmp_time_t(X509_CRL_get0_nextUpdate(crl),
					      (time_t)(now + 30 * 86400)),
			 0);

	/* exactly the two revoked serials, with their reasons */
	STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
	assert_int_equal(sk_X509_REVOKED_num(revs), 2);
	int seen = 0;
	for (int i = 0; i < 2; i++) {
		X509_REVOKED *r = sk_X509_REVOKED_value(revs, i);
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(r), NULL);
		char *h = BN_bn2hex(bn);
		for (char *p = h; *p; p++) {
			*p = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
		}
		ASN1_ENUMERATED *re = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, NULL, NULL);
		if (strcmp(h, revoked_a.serial_hex) == 0) {
			seen |= 1;
			assert_non_null(re);
			assert_int_equal(ASN1_ENUMERATED_get(re), 1);
			assert_int_equal(ASN1_TIME_cmp_time_t(X509_REVOKED_get0_revocationDate(r),
							      (time_t)(now - 10)),
					 0);
		} else if (strcmp(h, revoked_b.serial_hex) == 0) {
			seen |= 2;
			assert_null(re); /* unspecified is expressed by omitting the reason */
		}
		ASN1_ENUMERATED_free(re);
		OPENSSL_free(h);
		BN_free(bn);
	}
	assert_int_equal(seen, 3);

	/* OpenSSL's verifier with CRL checking agrees */
	assert_int_equal(verify(test_ca->cert, revoked_a.cert, crl, 0), X509_V_ERR_CERT_REVOKED);
	assert_int_equal(verify(test_ca->cert, revoked_b.cert, crl, 0), X509_V_ERR_CERT_REVOKED);
	assert_int_equal(verify(test_ca->cert, good.cert, crl, 0), X509_V_OK);
	X509_CRL_free(crl);
	free(pem);

	/* an empty CRL is valid and revokes nothing */
	assert_int_equal(moat_pki_crl_build(test_ca, NULL, 0, 1, now, 30, &pem, &len, &err), 0);
	crl = tu_pem_crl(pem);
	assert_true(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) <= 0);
	assert_int_equal(verify(test_ca->cert, revoked_a.cert, crl, 0), X509_V_OK);
	X509_CRL_free(crl);
	free(pem);

	/* a serial that is not hex is refused, not half-parsed */
	static const char *const bad_serials[] = {"zz", "12zz", "", "-12"};
	for (size_t i = 0; i < sizeof(bad_serials) / sizeof(bad_serials[0]); i++) {
		snprintf(list[0].serial_hex, sizeof(list[0].serial_hex), "%s", bad_serials[i]);
		pem = NULL;
		if (moat_pki_crl_build(test_ca, list, 1, 1, now, 30, &pem, &len, &err) == 0) {
			free(pem);
			fail_msg("serial '%s' accepted", bad_serials[i]);
		}
		assert_null(pem);
	}
	moat_pki_issued_free(&revoked_a);
	moat_pki_issued_free(&revoked_b);
	moat_pki_issued_free(&good);
}

static void test_reasons(void **state)
{
	(void)state;
	struct moat_err err;
	static const struct {
		const char *name;
		int code;
	} ok[] = {{"unspecified", 0}, {"key-compromise", 1},	     {"affiliation-changed", 3},
		  {"superseded", 4},  {"cessation-of-operation", 5}, {"privilege-withdrawn", 9}};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int r = -1;
		assert_int_equal(moat_pki_reason_parse(ok[i].name, &r, &err), 0);
		assert_int_equal(r, ok[i].code);
		assert_string_equal(moat_pki_reason_name(ok[i].code), ok[i].name);
	}
	/* reasons that make no sense for an identity CA are refused */
	static const char *const bad[] = {
		"ca-compromise",  "certificate-hold", "remove-from-crl", "unused", "",
		"Key-Compromise", "keyCompromise"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = 42;
		assert_int_equal(moat_pki_reason_parse(bad[i], &r, &err), MOAT_EINVAL);
		assert_int_equal(r, 42);
	}
	int r = 0;
	assert_int_equal(moat_pki_reason_parse(NULL, &r, &err), MOAT_EINVAL);
	assert_string_equal(moat_pki_reason_name(-1), "unknown");
	assert_string_equal(moat_pki_reason_name(99), "unknown");
}

/* ---- reading certificates back ---- */

static void test_cert_info_file(void **state)
{
	(void)state;
	struct moat_err err;
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	struct moat_issued is;
	issue_new("reader", MOAT_ROLE_SERVICE, serial, hex, &is);
	char path[512];
	tmp_path(path, sizeof(path), "reader.pem");
	tu_write_text(path, is.cert_pem);
	struct moat_cert_info info;
	assert_int_equal(moat_cert_info_file(path, &info, &err), 0);
	assert_string_equal(info.cn, "reader");
	assert_string_equal(info.ou, "service");
	assert_string_equal(info.serial_hex, hex);
	assert_int_equal(info.not_before, is.not_before);
	assert_int_equal(info.not_after, is.not_after);
	moat_pki_issued_free(&is);

	tmp_path(path, sizeof(path), "missing.pem");
	assert_int_equal(moat_cert_info_file(path, &info, &err), MOAT_ENOENT);
	static const char *const bad[] = {
		"",
		"hello\n",
		"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
		"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		/* an "encrypted" certificate must be refused, never prompt on the terminal */
		"-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n"
		"DEK-Info: AES-128-CBC,00000000000000000000000000000000\n\n"
		"AAAAAAAAAAAAAAAAAAAAAA==\n-----END CERTIFICATE-----\n",
	};
	tmp_path(path, sizeof(path), "bad.pem");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tu_write_text(path, bad[i]);
		moat_err_clear(&err);
		assert_int_equal(moat_cert_info_file(path, &info, &err), MOAT_EINVAL);
		assert_non_null(strstr(err.msg, "bad.pem: not a PEM certificate"));
	}
	assert_int_equal(ERR_peek_error(), 0);
}

/* An "encrypted" PEM must not reach OpenSSL's default password callback, which prompts on
 * the controlling terminal: the loaders run in a child whose controlling terminal is a
 * pseudo-terminal we own, with empty lines already typed so a prompt cannot block; the
 * test fails if anything asked for a pass phrase there. */
static void test_encrypted_pem_never_prompts(void **state)
{
	(void)state;
	char path[512];
	tmp_path(path, sizeof(path), "enc.pem");
	tu_write_text(path, "-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n"
			    "DEK-Info: AES-128-CBC,00000000000000000000000000000000\n\n"
			    "AAAAAAAAAAAAAAAAAAAAAA==\n-----END CERTIFICATE-----\n");
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0) {
		skip(); /* no pseudo-terminals here: the check cannot run */
	}
	assert_int_equal(grantpt(master), 0);
	assert_int_equal(unlockpt(master), 0);
	char slave_name[128];
	assert_int_equal(ptsname_r(master, slave_name, sizeof(slave_name)), 0);
	int slave = open(slave_name, O_RDWR | O_NOCTTY);
	assert_true(slave >= 0);
	assert_int_equal(write(master, "\n\n\n\n", 4), 4);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(master);
		if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) != 0) {
			_exit(10);
		}
		struct moat_cert_info info;
		struct moat_ca *ca = NULL;
		struct moat_err cerr;
		int a = moat_cert_info_file(path, &info, &cerr);
		int b = moat_pki_ca_load(path, path, NULL, &ca, &cerr);
		_exit(a == MOAT_EINVAL && b == MOAT_ECRYPTO ? 0 : 11);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(slave);
	assert_int_equal(fcntl(master, F_SETFL, O_NONBLOCK), 0);
	char seen[4096];
	ssize_t n = read(master, seen, sizeof(seen) - 1);
	seen[n > 0 ? n : 0] = '\0';
	close(master);
	if (strstr(seen, "phrase")) {
		fail_msg("prompted on the terminal: %s", seen);
	}
}

/* ---- exports ---- */

static void test_export_p12(void **state)
{
	(void)state;
	struct moat_err err;
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	struct moat_issued is;
	issue_new("p12-dev", MOAT_ROLE_DEVICE, serial, hex, &is);
	unsigned char *der = NULL;
	size_t len = 0;
	assert_int_equal(moat_pki_export_p12(is.cert_pem, is.key_pem, test_ca_pem, "p12-dev",
					     "export-pass", &der, &len, &err),
			 0);
	const unsigned char *p = der;
	PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)len);
	assert_non_null(p12);
	assert_int_equal(PKCS12_verify_mac(p12, "export-pass", -1), 1);
	assert_int_equal(PKCS12_verify_mac(p12, "wrong-pass", -1), 0);
	const X509_ALGOR *mac_alg = NULL;
	PKCS12_get0_mac(NULL, &mac_alg, NULL, NULL, p12);
	const ASN1_OBJECT *obj = NULL;
	X509_ALGOR_get0(&obj, NULL, NULL, mac_alg);
	assert_int_equal(OBJ_obj2nid(obj), NID_sha256);
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *chain = NULL;
	assert_int_equal(PKCS12_parse(p12, "export-pass", &key, &cert, &chain), 1);
	assert_int_equal(X509_cmp(cert, is.cert), 0);
	assert_int_equal(EVP_PKEY_eq(key, is.key), 1);
	assert_int_equal(sk_X509_num(chain), 1);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 0), test_ca->cert), 0);
	EVP_PKEY_free(key);
	X509_free(cert);
	sk_X509_pop_free(chain, X509_free);
	key = NULL;
	cert = NULL;
	chain = NULL;
	ERR_clear_error();
	assert_int_equal(PKCS12_parse(p12, "wrong-pass", &key, &cert, &chain), 0);
	assert_null(key);
	ERR_clear_error();
	PKCS12_free(p12);
	free(der);

	/* a key that is not the certificate's is refused */
	struct moat_issued other;
	issue_new("p12-other", MOAT_ROLE_DEVICE, serial, hex, &other);
	der = NULL;
	assert_int_equal(moat_pki_export_p12(is.cert_pem, other.key_pem, test_ca_pem, "p12-dev",
					     "export-pass", &der, &len, &err),
			 MOAT_ECRYPTO);
	assert_null(der);
	assert_non_null(strstr(err.msg, "p12-dev"));
	/* garbage in any slot */
	assert_int_equal(moat_pki_export_p12("junk", is.key_pem, test_ca_pem, "x", "pw", &der, &len,
					     &err),
			 MOAT_ECRYPTO);
	assert_int_equal(moat_pki_export_p12(is.cert_pem, "junk", test_ca_pem, "x", "pw", &der,
					     &len, &err),
			 MOAT_ECRYPTO);
	assert_int_equal(moat_pki_export_p12(is.cert_pem, is.key_pem, "junk", "x", "pw", &der, &len,
					     &err),
			 MOAT_ECRYPTO);
	assert_null(der);
	assert_int_equal(ERR_peek_error(), 0);
	moat_pki_issued_free(&other);
	moat_pki_issued_free(&is);
}

/* Compiles the generated header into a program that writes the constants back out: the C
 * header is only right if a compiler reads back the exact PEMs. */
static void test_export_c_header(void **state)
{
	(void)state;
	struct moat_err err;
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	struct moat_issued is;
	issue_new("hdr-dev", MOAT_ROLE_DEVICE, serial, hex, &is);
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(moat_pki_export_c_header("hdr-dev", is.cert_pem, is.key_pem, test_ca_pem,
						  NULL, &text, &len, &err),
			 0);
	assert_int_equal(strlen(text), len);
	assert_non_null(strstr(text, "static const char DEVICE_ID[] = \"hdr-dev\";"));
	char hdr[512];
	char prog[512];
	char bin[512];
	char out[512];
	tmp_path(hdr, sizeof(hdr), "creds.h");
	tmp_path(prog, sizeof(prog), "creds.c");
	tmp_path(bin, sizeof(bin), "creds");
	tmp_path(out, sizeof(out), "creds.out");
	tu_write_text(hdr, text);
	tu_write_text(prog,
		      "#include <stdio.h>\n#include \"creds.h\"\n#include \"creds.h\"\n"
		      "int main(void)\n{\n"
		      "\tprintf(\"%s|%s|%s|%s\", DEVICE_ID, CA_CERT, DEVICE_CERT, DEVICE_KEY);\n"
		      "\treturn 0;\n}\n");
	char cmd[4096];
	snprintf(cmd, sizeof(cmd),
		 "cc -std=c11 -Wall -Wextra -Werror -o '%s' '%s' && '%s' > '%s' && "
		 "{ ! command -v c++ >/dev/null || c++ -fsyntax-only -Wall -Werror -x c++ '%s'; }",
		 bin, prog, bin, out, prog);
	int rc = system(cmd);
	if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
		fail_msg("compiling the generated header failed:\n%s", text);
	}
	char *got = NULL;
	assert_int_equal(moat_fs_read_all(out, 1 << 20, &got, NULL, &err), 0);
	char *want = NULL;
	size_t wlen = strlen(test_ca_pem) + is.cert_pem_len + is.key_pem_len + 32;
	want = malloc(wlen);
	assert_non_null(want);
	snprintf(want, wlen, "hdr-dev|%s|%s|%s", test_ca_pem, is.cert_pem, is.key_pem);
	assert_string_equal(got, want);
	free(got);
	free(want);
	free(text);

	/* nothing that could end the string or the comment gets in */
	static const char *const bad_ids[] = {"a\"b", "x*/y", "Dev", "", "a\\b", "a\nb"};
	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		text = NULL;
		if (moat_pki_export_c_header(bad_ids[i], is.cert_pem, is.key_pem, test_ca_pem, NULL,
					     &text, &len, &err) != MOAT_EINVAL) {
			free(text);
			fail_msg("id '%s' accepted", bad_ids[i]);
		}
		assert_null(text);
	}
	assert_int_equal(moat_pki_export_c_header("hdr-dev", "a\"b", is.key_pem, test_ca_pem, NULL,
						  &text, &len, &err),
			 MOAT_EINVAL);
	assert_int_equal(moat_pki_export_c_header("hdr-dev", is.cert_pem, "a\\b", test_ca_pem, NULL,
						  &text, &len, &err),
			 MOAT_EINVAL);
	assert_int_equal(moat_pki_export_c_header("hdr-dev", is.cert_pem, is.key_pem, "a\r\n", NULL,
						  &text, &len, &err),
			 MOAT_EINVAL);
	assert_null(text);
	/* the header is bounded (1 MiB): a longer one is refused, not grown without end */
	size_t huge_len = 1024u * 1024u;
	char *huge = malloc(huge_len + 1);
	assert_non_null(huge);
	memset(huge, 'A', huge_len);
	huge[huge_len] = '\0';
	assert_int_equal(moat_pki_export_c_header("hdr-dev", is.cert_pem, is.key_pem, huge, NULL,
						  &text, &len, &err),
			 MOAT_EINVAL);
	assert_null(text);
	assert_non_null(strstr(err.msg, "hdr-dev: C header larger than"));
	free(huge);

	/* With the broker: its address and the firmware rules; a host that could end the C
	 * string, or a port out of range, is refused. */
	struct moat_c_header_broker b = {"broker.example", 8883, 8192, 10};
	assert_int_equal(moat_pki_export_c_header("hdr-dev", is.cert_pem, is.key_pem, test_ca_pem,
						  &b, &text, &len, &err),
			 0);
	assert_non_null(strstr(text, "#define MOAT_BROKER_HOST \"broker.example\"\n"));
	assert_non_null(strstr(text, "#define MOAT_BROKER_PORT 8883\n"));
	assert_non_null(strstr(text, "#define MOAT_MAX_PAYLOAD 8192\n"));
	assert_non_null(strstr(text, "devices/hdr-dev/commands/#"));
	assert_non_null(strstr(text, "client id = DEVICE_ID"));
	free(text);
	text = NULL;
	const char *bad_hosts[] = {"a\"b", "a b", "", "x*/y", "h\\"};
	for (size_t i = 0; i < sizeof(bad_hosts) / sizeof(bad_hosts[0]); i++) {
		b.host = bad_hosts[i];
		assert_int_equal(moat_pki_export_c_header("hdr-dev", is.cert_pem, is.key_pem,
							  test_ca_pem, &b, &text, &len, &err),
				 MOAT_EINVAL);
		assert_null(text);
	}
	b.host = "10.0.0.1";
	b.port = 0;
	assert_int_equal(moat_pki_export_c_header("hdr-dev", is.cert_pem, is.key_pem, test_ca_pem,
						  &b, &text, &len, &err),
			 MOAT_EINVAL);
	assert_null(text);
	moat_pki_issued_free(&is);
}

/* moat_csr_parse's verdict on data: 0, or the error code (the message must name the CSR). */
static int csr_verdict(const unsigned char *data, size_t len, char *msg, size_t msg_size)
{
	struct moat_csr *csr = NULL;
	struct moat_err err = {0};
	int rc = moat_csr_parse(data, len, &csr, &err);
	if (rc == 0) {
		assert_non_null(csr);
		moat_csr_free(csr);
	} else {
		assert_null(csr);
		assert_non_null(strstr(err.msg, "CSR"));
	}
	if (msg) {
		snprintf(msg, msg_size, "%s", err.msg);
	}
	return rc;
}

static void test_csr_accepts(void **state)
{
	(void)state;
	EVP_PKEY *key = tu_key_p256();
	size_t len = 0;
	unsigned char *der = tu_csr_der(key, key, "dev-1", "DNS:evil.example", &len);
	/* DER */
	struct moat_csr *csr = NULL;
	struct moat_err err = {0};
	assert_int_equal(moat_csr_parse(der, len, &csr, &err), 0);
	assert_true(csr->has_cn);
	assert_string_equal(csr->cn, "dev-1");
	assert_int_equal(EVP_PKEY_eq(csr->key, key), 1);
	assert_int_equal(moat_csr_check_identity(csr, "dev-1", &err), 0);
	assert_int_equal(moat_csr_check_identity(csr, "dev-2", &err), MOAT_EDENIED);
	assert_non_null(strstr(err.msg, "'dev-1', not 'dev-2'"));

	/* issued from the CSR: moat's subject and extensions only, never the request's */
	struct moat_issue_req req = {
		.cn = "dev-1",
		.role = MOAT_ROLE_DEVICE,
		.kind = MOAT_CERT_CLIENT,
		.not_before = now - 60,
		.not_after = now + 86400,
		.key = csr->key,
		.key_public_only = true,
	};
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	struct moat_issued is;
	assert_int_equal(moat_pki_random_serial(serial, hex, &err), 0);
	assert_int_equal(moat_pki_issue(test_ca, &req, serial, &is, &err), 0);
	assert_null(is.key_pem); /* nothing to write: the key stays with its owner */
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(is.cert), key), 1);
	char subject[256];
	X509_NAME_oneline(X509_get_subject_name(is.cert), subject, sizeof(subject));
	assert_null(strstr(subject, "evil"));
	assert_non_null(strstr(subject, "OU=device"));
	assert_int_equal(X509_check_ca(is.cert), 0);
	assert_int_equal(X509_get_ext_by_NID(is.cert, NID_subject_alt_name, -1), -1);
	assert_true(X509_get_extended_key_usage(is.cert) & XKU_SSL_CLIENT);
	assert_false(X509_get_extended_key_usage(is.cert) & XKU_SSL_SERVER);
	assert_int_equal(verify(test_ca->cert, is.cert, NULL, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
	assert_true(moat_csr_same_key(csr, is.cert));
	moat_pki_issued_free(&is);
	moat_csr_free(csr);

	/* PEM, with white space around it */
	X509_REQ *r = NULL;
	const unsigned char *p = der;
	r = d2i_X509_REQ(NULL, &p, (long)len);
	assert_non_null(r);
	BIO *b = BIO_new(BIO_s_mem());
	BIO_puts(b, "\n  ");
	assert_int_equal(PEM_write_bio_X509_REQ(b, r), 1);
	char *pem = NULL;
	long plen = BIO_get_mem_data(b, &pem);
	assert_int_equal(csr_verdict((const unsigned char *)pem, (size_t)plen, NULL, 0), 0);
	BIO_free(b);
	X509_REQ_free(r);
	free(der);

	/* no CN at all: moat names it */
	der = tu_csr_der(key, key, NULL, NULL, &len);
	assert_int_equal(moat_csr_parse(der, len, &csr, &err), 0);
	assert_false(csr->has_cn);
	assert_int_equal(moat_csr_check_identity(csr, "anything", &err), 0);
	moat_csr_free(csr);
	free(der);
	/* a CN that is no identity name is another identity's */
	der = tu_csr_der(key, key, "Dev One", NULL, &len);
	assert_int_equal(moat_csr_parse(der, len, &csr, &err), 0);
	assert_int_equal(moat_csr_check_identity(csr, "dev-1", &err), MOAT_EDENIED);
	moat_csr_free(csr);
	free(der);
	/* RSA-2048 is a key moat issues for */
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	der = tu_csr_der(rsa, rsa, "dev-1", NULL, &len);
	assert_int_equal(csr_verdict(der, len, NULL, 0), 0);
	free(der);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(key);
}

static void test_csr_refusals(void **state)
{
	(void)state;
	char msg[MOAT_ERR_MSG_MAX];
	EVP_PKEY *key = tu_key_p256();
	EVP_PKEY *other = tu_key_p256();
	size_t len = 0;
	unsigned char *der = tu_csr_der(key, key, "dev-1", NULL, &len);

	/* empty, oversized */
	assert_int_equal(csr_verdict(der, 0, msg, sizeof(msg)), MOAT_EINVAL);
	unsigned char *big = calloc(1, MOAT_CSR_MAX_BYTES + 1);
	assert_non_null(big);
	memcpy(big, der, len);
	assert_int_equal(csr_verdict(big, MOAT_CSR_MAX_BYTES + 1, msg, sizeof(msg)), MOAT_EINVAL);
	assert_non_null(strstr(msg, "larger than"));
	/* DER: cut short, trailing bytes, garbage */
	assert_int_equal(csr_verdict(der, len - 1, msg, sizeof(msg)), MOAT_EINVAL);
	assert_non_null(strstr(msg, "not a DER"));
	assert_int_equal(csr_verdict(big, len + 1, msg, sizeof(msg)), MOAT_EINVAL);
	static const unsigned char junk[] = "\x30\x03\x02\x01\x00 not a request";
	assert_int_equal(csr_verdict(junk, sizeof(junk) - 1, msg, sizeof(msg)), MOAT_EINVAL);
	free(big);
	/* PEM: bad base64, wrong label, unterminated */
	static const char *const bad_pem[] = {
		"-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n",
		"-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n",
		"-----BEGIN CERTIFICATE REQUEST-----\nMAMCAQA=\n",
	};
	for (size_t i = 0; i < sizeof(bad_pem) / sizeof(bad_pem[0]); i++) {
		assert_int_equal(csr_verdict((const unsigned char *)bad_pem[i], strlen(bad_pem[i]),
					     msg, sizeof(msg)),
				 MOAT_EINVAL);
		assert_non_null(strstr(msg, "not a PEM"));
	}
	free(der);
	/* proof of possession: signed by another key than the one it asks for */
	der = tu_csr_der(key, other, "dev-1", NULL, &len);
	assert_int_equal(csr_verdict(der, len, msg, sizeof(msg)), MOAT_EVERIFY);
	assert_non_null(strstr(msg, "proof of possession"));
	free(der);
	/* weak and foreign keys: RSA-1024, ed25519, P-384 */
	EVP_PKEY *rsa1024 = EVP_RSA_gen(1024);
	der = tu_csr_der(rsa1024, rsa1024, "dev-1", NULL, &len);
	assert_int_equal(csr_verdict(der, len, msg, sizeof(msg)), MOAT_EINVAL);
	assert_non_null(strstr(msg, "1024"));
	free(der);
	EVP_PKEY_free(rsa1024);
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_non_null(ed);
	der = tu_csr_der(ed, ed, "dev-1", NULL, &len);
	assert_int_equal(csr_verdict(der, len, msg, sizeof(msg)), MOAT_EINVAL);
	assert_non_null(strstr(msg, "key refused"));
	free(der);
	EVP_PKEY_free(ed);
	EVP_PKEY *p384 = EVP_EC_gen("P-384");
	der = tu_csr_der(p384, p384, "dev-1", NULL, &len);
	assert_int_equal(csr_verdict(der, len, msg, sizeof(msg)), MOAT_EINVAL);
	free(der);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

static void test_est_encodings(void **state)
{
	(void)state;
	struct moat_err err = {0};
	unsigned char *der = NULL;
	size_t len = 0;
	/* certs-only PKCS#7: every certificate, in order, no signers, no content */
	char pem[8192];
	snprintf(pem, sizeof(pem), "%s%s", test_ca_pem, test_ca_pem);
	assert_int_equal(moat_pki_p7_certs(pem, strlen(pem), &der, &len, &err), 0);
	const unsigned char *p = der;
	PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)len);
	assert_non_null(p7);
	assert_true(PKCS7_type_is_signed(p7));
	assert_int_equal(sk_X509_num(p7->d.sign->cert), 2);
	assert_int_equal(sk_PKCS7_SIGNER_INFO_num(p7->d.sign->signer_info), 0);
	assert_null(p7->d.sign->contents->d.ptr);
	assert_int_equal(X509_cmp(sk_X509_value(p7->d.sign->cert, 0), test_ca->cert), 0);
	PKCS7_free(p7);
	free(der);
	assert_int_equal(moat_pki_p7_certs("no pem here", 11, &der, &len, &err), MOAT_EINVAL);
	assert_null(der);
	/* from certificates in memory: the same DER as from their PEM, byte for byte, and
	 * the certificates only referenced (still the caller's) */
	unsigned char *pem_der = NULL;
	size_t pem_len = 0;
	assert_int_equal(moat_pki_p7_certs(pem, strlen(pem), &pem_der, &pem_len, &err), 0);
	X509 *twice[2] = {test_ca->cert, test_ca->cert};
	assert_int_equal(moat_pki_p7_of(twice, 2, &der, &len, &err), 0);
	assert_int_equal(len, pem_len);
	assert_memory_equal(der, pem_der, len);
	free(der);
	free(pem_der);
	assert_int_equal(X509_cmp(test_ca->cert, test_ca->cert), 0);
	assert_int_equal(moat_pki_p7_of(twice, 0, &der, &len, &err), MOAT_EINVAL);
	assert_null(der);
	X509 *missing[1] = {NULL};
	assert_int_equal(moat_pki_p7_of(missing, 1, &der, &len, &err), MOAT_ECRYPTO);
	assert_null(der);
	/* CSR attributes: a DER SEQUENCE naming ecdsa-with-SHA256 and prime256v1 */
	assert_int_equal(moat_pki_csrattrs(&der, &len, &err), 0);
	p = der;
	ASN1_SEQUENCE_ANY *seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, (long)len);
	assert_non_null(seq);
	assert_int_equal(sk_ASN1_TYPE_num(seq), 2);
	ASN1_TYPE *first = sk_ASN1_TYPE_value(seq, 0);
	assert_int_equal(first->type, V_ASN1_OBJECT);
	assert_int_equal(OBJ_obj2nid(first->value.object), NID_ecdsa_with_SHA256);
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
	free(der);
}

/* ---- two tiers: root, issuing CA ---- */

/* OpenSSL's verdict on leaf under root with the untrusted intermediate (NULL: none). */
static int verify_chain(X509 *root, X509 *intermediate, X509 *leaf)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	assert_true(store && ctx && untrusted);
	assert_int_equal(X509_STORE_add_cert(store, root), 1);
	if (intermediate) {
		assert_true(sk_X509_push(untrusted, intermediate) > 0);
	}
	assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, untrusted), 1);
	int ok = X509_verify_cert(ctx);
	int e = X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_free(untrusted);
	ERR_clear_error();
	return ok == 1 ? X509_V_OK : (e == X509_V_OK ? -1 : e);
}

static void test_two_tier(void **state)
{
	(void)state;
	struct moat_err err;
	struct moat_ca *root = NULL;
	struct moat_ca *issuer = NULL;
	assert_int_equal(moat_pki_root_create("plant-2", MOAT_KEY_EC_P256, now, 365, &root, &err),
			 0);
	assert_int_equal(X509_get_pathlen(root->cert), 1);
	assert_int_equal(moat_pki_ca_pathlen(root), 1);
	assert_int_equal(moat_pki_issuer_create(root, 3, MOAT_KEY_EC_P256, now, now + 100 * 86400,
						&issuer, &err),
			 0);
	X509 *ic = issuer->cert;
	assert_string_equal(name_entry(ic, NID_commonName), "plant-2 Issuing CA 3");
	assert_string_equal(name_entry(ic, NID_organizationName), "plant-2");
	assert_int_equal(X509_check_ca(ic), 1);
	assert_int_equal(X509_get_pathlen(ic), 0);
	assert_true(X509_get_key_usage(ic) & KU_KEY_CERT_SIGN);
	assert_true(X509_get_key_usage(ic) & KU_CRL_SIGN);
	assert_int_equal(X509_check_issued(root->cert, ic), X509_V_OK);
	assert_int_equal(X509_verify(ic, X509_get0_pubkey(root->cert)), 1);
	assert_int_equal(verify_chain(root->cert, NULL, ic), X509_V_OK);
	assert_int_equal(moat_pki_ca_not_after(issuer), now + 100 * 86400);

	/* a leaf under the issuing CA verifies with the root as the only anchor, given the
	 * intermediate; without it, not */
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	struct moat_issued leaf;
	new_serial(serial, hex);
	tu_pki_issue_client(issuer, "dev-2t", MOAT_ROLE_DEVICE, now - 60, now + 30 * 86400, serial,
			    &leaf);
	assert_int_equal(verify_chain(root->cert, ic, leaf.cert), X509_V_OK);
	assert_int_not_equal(verify_chain(root->cert, NULL, leaf.cert), X509_V_OK);
	assert_string_equal(name_entry(leaf.cert, NID_organizationName), "plant-2");

	/* no certificate outlives its issuer: a day past the issuing CA's notAfter is refused */
	struct moat_issued beyond;
	struct moat_issue_req far = {.cn = "dev-far",
				     .role = MOAT_ROLE_DEVICE,
				     .kind = MOAT_CERT_CLIENT,
				     .key_type = MOAT_KEY_EC_P256,
				     .not_before = now - 60,
				     .not_after = now + 101 * 86400};
	new_serial(serial, hex);
	assert_int_equal(moat_pki_issue(issuer, &far, serial, &beyond, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "after its issuing CA"));
	far.not_after = now + 100 * 86400; /* exactly the issuer's end is allowed */
	assert_int_equal(moat_pki_issue(issuer, &far, serial, &beyond, &err), 0);
	moat_pki_issued_free(&beyond);

	/* an issuing CA never outlives the root, and needs the root's key */
	struct moat_ca *bad = NULL;
	assert_int_equal(moat_pki_issuer_create(root, 4, MOAT_KEY_EC_P256, now, now + 400 * 86400,
						&bad, &err),
			 MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "after the root CA"));
	assert_null(bad);
	assert_int_equal(moat_pki_issuer_create(root, 4, MOAT_KEY_EC_P256, now, now - 10, &bad,
						&err),
			 MOAT_EINVAL);
	struct moat_ca nokey = {.cert = root->cert, .key = NULL};
	assert_int_equal(moat_pki_issuer_create(&nokey, 4, MOAT_KEY_EC_P256, now, now + 86400, &bad,
						&err),
			 MOAT_ESTATE);

	/* a single-tier root (pathlen 0) cannot anchor an issuing CA's leaf... */
	struct moat_ca *old_issuer = NULL;
	struct moat_issued leaf_old;
	assert_int_equal(moat_pki_issuer_create(test_ca, 1, MOAT_KEY_EC_P256, now, now + 86400,
						&old_issuer, &err),
			 0);
	new_serial(serial, hex);
	tu_pki_issue_client(old_issuer, "dev-up", MOAT_ROLE_DEVICE, now - 60, now + 3600, serial,
			    &leaf_old);
	assert_int_equal(verify_chain(test_ca->cert, old_issuer->cert, leaf_old.cert),
			 X509_V_ERR_PATH_LENGTH_EXCEEDED);
	/* ...until it is re-certified with pathlen 1: same name, key and validity, so what the
	 * old certificate signed still verifies */
	struct moat_ca *recert = NULL;
	assert_int_equal(moat_pki_root_recertify(test_ca, &recert, &err), 0);
	assert_int_equal(X509_get_pathlen(recert->cert), 1);
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(recert->cert),
				       X509_get_subject_name(test_ca->cert)),
			 0);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(recert->cert),
				     X509_get0_pubkey(test_ca->cert)),
			 1);
	assert_int_equal(moat_pki_ca_not_after(recert), moat_pki_ca_not_after(test_ca));
	assert_int_equal(verify_chain(recert->cert, old_issuer->cert, leaf_old.cert), X509_V_OK);
	struct moat_issued direct;
	issue_new("dev-direct", MOAT_ROLE_DEVICE, serial, hex, &direct);
	assert_int_equal(verify_chain(recert->cert, NULL, direct.cert), X509_V_OK);
	assert_int_equal(moat_pki_root_recertify(&nokey, &bad, &err), MOAT_ESTATE);

	moat_pki_issued_free(&direct);
	moat_pki_issued_free(&leaf_old);
	moat_pki_issued_free(&leaf);
	moat_pki_ca_free(recert);
	moat_pki_ca_free(old_issuer);
	moat_pki_ca_free(issuer);
	moat_pki_ca_free(root);
}

static void test_issuer_files(void **state)
{
	(void)state;
	struct moat_err err;
	struct moat_ca *issuer = NULL;
	struct moat_ca *loaded = NULL;
	assert_int_equal(moat_pki_issuer_create(test_ca, 1, MOAT_KEY_EC_P256, now, now + 86400,
						&issuer, &err),
			 0);
	char *cert = NULL;
	char *key = NULL;
	size_t cert_len = 0;
	size_t key_len = 0;
	assert_int_equal(moat_pki_issuer_export(issuer, &cert, &cert_len, &key, &key_len, &err), 0);
	assert_non_null(strstr(key, "-----BEGIN PRIVATE KEY-----"));
	char cp[512];
	char kp[512];
	tmp_path(cp, sizeof(cp), "issuer.crt");
	tmp_path(kp, sizeof(kp), "issuer.key");
	tu_write_file(cp, cert, cert_len, 0644);
	tu_write_file(kp, key, key_len, 0600);
	assert_int_equal(moat_pki_issuer_load(cp, kp, &loaded, &err), 0);
	assert_non_null(loaded->key);
	assert_int_equal(EVP_PKEY_eq(loaded->key, issuer->key), 1);
	moat_pki_ca_free(loaded);
	loaded = NULL;
	assert_int_equal(moat_pki_issuer_load(cp, NULL, &loaded, &err), 0);
	assert_null(loaded->key);
	moat_pki_ca_free(loaded);
	loaded = NULL;

	/* a key others may read is refused: it opens without a passphrase */
	assert_int_equal(chmod(kp, 0640), 0);
	assert_int_equal(moat_pki_issuer_load(cp, kp, &loaded, &err), MOAT_EDENIED);
	assert_non_null(strstr(err.msg, "readable by others"));
	assert_null(loaded);
	/* another key, an encrypted key, no key */
	struct moat_ca *other = NULL;
	char *okey = NULL;
	char *ocert = NULL;
	size_t olen = 0;
	size_t oclen = 0;
	assert_int_equal(moat_pki_issuer_create(test_ca, 2, MOAT_KEY_EC_P256, now, now + 86400,
						&other, &err),
			 0);
	assert_int_equal(moat_pki_issuer_export(other, &ocert, &oclen, &okey, &olen, &err), 0);
	tu_write_file(kp, okey, olen, 0600);
	assert_int_equal(moat_pki_issuer_load(cp, kp, &loaded, &err), MOAT_ECRYPTO);
	assert_non_null(strstr(err.msg, "does not match"));
	free(okey);
	okey = NULL;
	assert_int_equal(moat_pki_key_encrypt(issuer->key, PASSPHRASE, &okey, &olen, &err), 0);
	tu_write_file(kp, okey, olen, 0600);
	assert_int_equal(moat_pki_issuer_load(cp, kp, &loaded, &err), MOAT_ECRYPTO);
	assert_non_null(strstr(err.msg, "not an unencrypted PEM private key"));
	assert_int_equal(unlink(kp), 0);
	assert_int_equal(moat_pki_issuer_load(cp, kp, &loaded, &err), MOAT_ENOENT);
	assert_null(loaded);

	OPENSSL_cleanse(key, key_len);
	free(key);
	free(cert);
	free(okey);
	free(ocert);
	moat_pki_ca_free(other);
	moat_pki_ca_free(issuer);
}

static char *cert_pem_of(X509 *c)
{
	BIO *b = BIO_new(BIO_s_mem());
	assert_non_null(b);
	assert_int_equal(PEM_write_bio_X509(b, c), 1);
	char *data = NULL;
	long n = BIO_get_mem_data(b, &data);
	char *out = malloc((size_t)n + 1);
	assert_non_null(out);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	BIO_free(b);
	return out;
}

static char *joined(const char *a, const char *b)
{
	size_t na = strlen(a);
	size_t nb = strlen(b);
	char *out = malloc(na + nb + 1);
	assert_non_null(out);
	memcpy(out, a, na);
	memcpy(out + na, b, nb + 1);
	return out;
}

static void test_crl_set(void **state)
{
	(void)state;
	struct moat_err err;
	struct moat_ca *issuer = NULL;
	struct moat_ca *foreign_root = NULL;
	struct moat_ca *foreign = NULL;
	assert_int_equal(moat_pki_issuer_create(test_ca, 7, MOAT_KEY_EC_P256, now, now + 86400,
						&issuer, &err),
			 0);
	assert_int_equal(moat_pki_root_create("elsewhere", MOAT_KEY_EC_P256, now, 30, &foreign_root,
					      &err),
			 0);
	assert_int_equal(moat_pki_issuer_create(foreign_root, 1, MOAT_KEY_EC_P256, now, now + 86400,
						&foreign, &err),
			 0);
	struct moat_issued a;
	struct moat_issued b;
	uint8_t serial[MOAT_SERIAL_BYTES];
	char hex[MOAT_SERIAL_HEX_LEN];
	new_serial(serial, hex);
	tu_pki_issue_client(issuer, "set-a", MOAT_ROLE_DEVICE, now - 60, now + 3600, serial, &a);
	issue_new("set-b", MOAT_ROLE_DEVICE, serial, hex, &b);
	struct moat_revoked_cert list[1];
	memset(list, 0, sizeof(list));
	snprintf(list[0].serial_hex, sizeof(list[0].serial_hex), "%s", a.serial_hex);
	list[0].revoked_at = now - 5;
	char *by_issuer = NULL;
	char *by_root = NULL;
	char *by_foreign = NULL;
	size_t len = 0;
	assert_int_equal(moat_pki_crl_build(issuer, list, 1, 2, now, 1, &by_issuer, &len, &err), 0);
	assert_int_equal(moat_pki_crl_build(test_ca, NULL, 0, 2, now, 30, &by_root, &len, &err), 0);
	assert_int_equal(moat_pki_crl_build(foreign, NULL, 0, 2, now, 30, &by_foreign, &len, &err),
			 0);
	char *issuers = cert_pem_of(issuer->cert);
	char *both = joined(by_issuer, by_root);

	struct moat_crl_set *set = NULL;
	assert_int_equal(moat_crl_set_load("crl.pem", both, strlen(both), test_ca->cert,
					   "issuers.pem", issuers, strlen(issuers), &set, &err),
			 0);
	assert_int_equal(moat_crl_set_count(set), 2);
	struct moat_crl_info info;
	moat_crl_set_info(set, 0, &info);
	assert_string_equal(info.issuer_cn, "plant-1 Issuing CA 7");
	assert_int_equal(info.revoked, 1);
	assert_false(info.by_root);
	assert_int_equal(info.next_update, now + 86400);
	moat_crl_set_info(set, 1, &info);
	assert_true(info.by_root);
	assert_int_equal(info.revoked, 0);
	assert_int_equal(moat_crl_set_next_update(set), now + 86400);
	assert_true(moat_crl_set_revoked(set, X509_get0_serialNumber(a.cert)));
	assert_false(moat_crl_set_revoked(set, X509_get0_serialNumber(b.cert)));
	moat_crl_set_free(set);
	set = NULL;

	/* the issuing CA's CRL without the issuing CA: refused */
	assert_int_equal(moat_crl_set_load("crl.pem", both, strlen(both), test_ca->cert, NULL, NULL,
					   0, &set, &err),
			 MOAT_EVERIFY);
	assert_non_null(strstr(err.msg, "CRL 1 is not signed"));
	/* an issuing CA of another root: refused, its CRL too */
	char *foreign_pem = cert_pem_of(foreign->cert);
	assert_int_equal(moat_crl_set_load("crl.pem", by_root, strlen(by_root), test_ca->cert,
					   "issuers.pem", foreign_pem, strlen(foreign_pem), &set,
					   &err),
			 MOAT_EVERIFY);
	assert_non_null(
		strstr(err.msg, "issuers.pem: certificate 1 is not a CA signed by the root"));
	char *with_foreign = joined(by_root, by_foreign);
	assert_int_equal(moat_crl_set_load("crl.pem", with_foreign, strlen(with_foreign),
					   test_ca->cert, "issuers.pem", issuers, strlen(issuers),
					   &set, &err),
			 MOAT_EVERIFY);
	assert_non_null(strstr(err.msg, "CRL 2 is not signed"));
	/* a leaf in the issuers' file: not a CA */
	assert_int_equal(moat_crl_set_load("crl.pem", by_root, strlen(by_root), test_ca->cert,
					   "issuers.pem", b.cert_pem, b.cert_pem_len, &set, &err),
			 MOAT_EVERIFY);
	/* no CRL, garbage after one, garbage issuers */
	assert_int_equal(moat_crl_set_load("crl.pem", "", 0, test_ca->cert, NULL, NULL, 0, &set,
					   &err),
			 MOAT_EINVAL);
	char *trailing =
		joined(by_root, "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n");
	assert_int_equal(moat_crl_set_load("crl.pem", trailing, strlen(trailing), test_ca->cert,
					   NULL, NULL, 0, &set, &err),
			 MOAT_EINVAL);
	assert_int_equal(moat_crl_set_load("crl.pem", by_root, strlen(by_root), test_ca->cert,
					   "issuers.pem", "junk", 4, &set, &err),
			 MOAT_EINVAL);
	assert_null(set);

	free(trailing);
	free(with_foreign);
	free(foreign_pem);
	free(both);
	free(issuers);
	free(by_issuer);
	free(by_root);
	free(by_foreign);
	moat_pki_issued_free(&a);
	moat_pki_issued_free(&b);
	moat_pki_ca_free(foreign);
	moat_pki_ca_free(foreign_root);
	moat_pki_ca_free(issuer);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_types),
		cmocka_unit_test(test_keygen),
		cmocka_unit_test(test_random_serial),
		cmocka_unit_test(test_ca_create),
		cmocka_unit_test(test_ca_export_load),
		cmocka_unit_test(test_ca_wrong_passphrase),
		cmocka_unit_test(test_ca_load_refusals),
		cmocka_unit_test(test_keystore),
		cmocka_unit_test(test_issue_client),
		cmocka_unit_test(test_issue_expired_and_rsa),
		cmocka_unit_test(test_issue_server),
		cmocka_unit_test(test_issue_refusals),
		cmocka_unit_test(test_crl),
		cmocka_unit_test(test_reasons),
		cmocka_unit_test(test_cert_info_file),
		cmocka_unit_test(test_encrypted_pem_never_prompts),
		cmocka_unit_test(test_export_p12),
		cmocka_unit_test(test_export_c_header),
		cmocka_unit_test(test_csr_accepts),
		cmocka_unit_test(test_csr_refusals),
		cmocka_unit_test(test_est_encodings),
		cmocka_unit_test(test_two_tier),
		cmocka_unit_test(test_issuer_files),
		cmocka_unit_test(test_crl_set),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
