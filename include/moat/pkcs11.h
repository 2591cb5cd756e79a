/* pkcs11.h: private keys that live in a PKCS#11 token (an HSM, a smart card, SoftHSM2), named
 * by an RFC 7512 URI (src/pkcs11). The issuing CA's key and firmware signing keys may be kept
 * there: moat signs with them through the token and never reads, copies or writes them.
 *
 * The token is reached through libp11 (no raw PKCS#11 calls here). A key loaded with
 * moat_pkcs11_key_load is an ordinary EVP_PKEY for OpenSSL 3: X509_sign, X509_CRL_sign and
 * EVP_DigestSign run inside the token (ECDSA P-256 and RSA). The EVP_PKEY holds the module,
 * its slots and the logged-in session: EVP_PKEY_free of the last reference logs out and
 * unloads the module. Never EVP_PKEY_dup such a key (the copy would not hold the module);
 * EVP_PKEY_up_ref is fine. Encoding its private half yields no secret (the token never
 * gives it out), so callers must never write it: the deployment records the URI instead.
 *
 * Only the device side does not link this module (tests/e2e/test_layering.sh).
 */
#ifndef MOAT_PKCS11_H
#define MOAT_PKCS11_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/types.h>

#include "moat/err.h"

#define MOAT_PKCS11_URI_MAX 2048       /* the whole URI text */
#define MOAT_PKCS11_TOKEN_LABEL_MAX 32 /* CK_TOKEN_INFO.label */
#define MOAT_PKCS11_MANUFACTURER_MAX 32
#define MOAT_PKCS11_MODEL_MAX 16
#define MOAT_PKCS11_SERIAL_MAX 16
#define MOAT_PKCS11_OBJECT_MAX 128 /* CKA_LABEL: moat's own bound */
#define MOAT_PKCS11_ID_MAX 64	   /* CKA_ID bytes */
#define MOAT_PKCS11_PATH_MAX 1024  /* module-path */
#define MOAT_PKCS11_PIN_MAX 256
#define MOAT_PKCS11_PIN_ENV "MOAT_PKCS11_PIN"

enum moat_pkcs11_type {
	MOAT_PKCS11_TYPE_ANY = 0, /* no type= */
	MOAT_PKCS11_TYPE_PRIVATE,
	MOAT_PKCS11_TYPE_PUBLIC,
	MOAT_PKCS11_TYPE_CERT,
	MOAT_PKCS11_TYPE_SECRET_KEY,
	MOAT_PKCS11_TYPE_DATA,
};

/* A parsed URI: the path attributes that select a token and an object, and the module.
 * Text values are percent-decoded, hold no NUL and no control character; has_* says which
 * attributes were given (an absent one matches anything). */
struct moat_pkcs11_uri {
	char token[MOAT_PKCS11_TOKEN_LABEL_MAX + 1];
	char manufacturer[MOAT_PKCS11_MANUFACTURER_MAX + 1];
	char model[MOAT_PKCS11_MODEL_MAX + 1];
	char serial[MOAT_PKCS11_SERIAL_MAX + 1];
	char object[MOAT_PKCS11_OBJECT_MAX + 1];
	unsigned char id[MOAT_PKCS11_ID_MAX];
	size_t id_len;
	enum moat_pkcs11_type type;
	char module_path[MOAT_PKCS11_PATH_MAX + 1]; /* query attribute module-path */
	bool has_token, has_manufacturer, has_model, has_serial, has_object, has_id,
		has_module_path;
};

/* Parses an RFC 7512 URI, strictly: "pkcs11:" then path attributes token, manufacturer,
 * model, serial, object, id, type separated by ';', then optionally "?module-path=PATH".
 * Refused, each with a one-line MOAT_EINVAL "pkcs11 URI: ..." naming the attribute: a
 * missing scheme, an unknown or repeated attribute, a value with a character RFC 7512 does
 * not allow there, a bad or NUL/control-character percent escape, an empty or over-long
 * value, an unknown type; the library-*, slot-* and module-name attributes (not supported);
 * and pin-value and pin-source, because moat keeps URIs in moat.conf and key files: the
 * PIN comes from a PIN file or $MOAT_PKCS11_PIN (moat_pkcs11_pin_read). On failure *out
 * is zeroed. */
MOAT_MUST_CHECK int moat_pkcs11_uri_parse(const char *text, struct moat_pkcs11_uri *out,
					  struct moat_err *err);

/* The URI text with "module-path=<module, percent-encoded>" added to its query, so a key
 * recorded by its URI names its module too. Refuses a URI that does not parse or already
 * has a module-path. *out (NUL-terminated) is the caller's to free. */
MOAT_MUST_CHECK int moat_pkcs11_uri_with_module(const char *uri, const char *module, char **out,
						struct moat_err *err);

/* The token's user PIN into buf (size > MOAT_PKCS11_PIN_MAX): the first line of pin_file
 * when it is given (a file that group or others can read is refused, MOAT_EDENIED, like a
 * passphrase file), else $MOAT_PKCS11_PIN. Neither: MOAT_EINVAL "no PKCS#11 PIN: ...". An
 * empty or over-long PIN is refused. Wipe buf after use. */
MOAT_MUST_CHECK int moat_pkcs11_pin_read(const char *pin_file, char *buf, size_t size,
					 struct moat_err *err);

struct moat_pkcs11_key_req {
	const char *uri;    /* RFC 7512; type, when given, must be "private" */
	const char *module; /* the module's path; NULL: the URI's module-path */
	const char *pin;    /* user PIN; NULL when the token needs no login */
};

/* Loads the module, finds the one initialized token and the one private key the URI
 * names, logs in with the PIN, and checks that the key signs (a test signature verified
 * with its public half, which must be in the token as a public key or certificate object
 * with the same id). *out_key (caller frees) signs through the token.
 * Errors, one line each: the URI's (MOAT_EINVAL); no module given or one that differs from
 * the URI's module-path (MOAT_EINVAL); a module that does not load (MOAT_EIO); no token, or
 * more than one, matching (MOAT_ENOENT / MOAT_EINVAL, with the labels found); a wrong,
 * locked or missing PIN (MOAT_EDENIED); no private key, or more than one, matching
 * (MOAT_ENOENT / MOAT_EINVAL); a key that cannot sign (MOAT_ECRYPTO). */
MOAT_MUST_CHECK int moat_pkcs11_key_load(const struct moat_pkcs11_key_req *req, EVP_PKEY **out_key,
					 struct moat_err *err);

/* true when key was loaded by moat_pkcs11_key_load (its private half is in a token). */
bool moat_pkcs11_key_in_token(EVP_PKEY *key);

#endif
