/* token.c: a private key in a PKCS#11 token as an EVP_PKEY, through libp11 (moat/pkcs11.h).
 *
 * libp11's keys are valid only while its context (the loaded module and its slots) lives,
 * so the context hangs off the EVP_PKEY as ex_data: OpenSSL frees a key's own data before
 * its ex_data, so the token's key goes first and the module is unloaded last, when the
 * last reference to the key is freed. The EVP_PKEY libp11 returns is one it keeps a
 * reference to itself (freed with the slots), so the caller gets a new EVP_PKEY around
 * the same RSA or EC_KEY (own_key): the only one whose references the caller counts. OpenSSL 3
 * signs with libp11's keys through their RSA/EC methods (X509_sign, X509_CRL_sign, EVP_DigestSign
 * all take that path).
 *
 * libp11 0.4.12 waits forever for a session on a token whose sessions cannot open (an
 * uninitialized SoftHSM2 slot is one), so only initialized tokens are ever touched.
 */
/* EVP_PKEY_get1_EC_KEY, EVP_PKEY_get1_RSA and their assign: see own_key */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <libp11.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "moat/pkcs11.h"

/* PKCS#11 return values (CKR_*) libp11 puts on OpenSSL's error queue as reasons. */
#define CKR_PIN_INCORRECT 0xA0UL
#define CKR_PIN_INVALID 0xA1UL
#define CKR_PIN_LEN_RANGE 0xA2UL
#define CKR_PIN_EXPIRED 0xA3UL
#define CKR_PIN_LOCKED 0xA4UL

#define FOUND_LIST_MAX 200 /* bytes of "found: ..." in a no-such-token message */

struct token_session {
	PKCS11_CTX *ctx;
	PKCS11_SLOT *slots;
	unsigned int nslots;
	PKCS11_SLOT *logged_in; /* logged out before the module goes */
	bool loaded;
};

static pthread_once_t index_once = PTHREAD_ONCE_INIT;
static int session_index = -1;

/* Sessions alive on the modules of this process. A module is initialized once per process
 * whatever the number of contexts loading it: releasing a context's slots closes every
 * session on them (C_CloseAllSessions), logging out ends the token's login for all, and
 * unloading finalizes the module under every other context. So a session freed while others
 * remain is parked here whole, and the last one releases them all. Keys of the old and the
 * new issuing CA (rotation, a retired CA's CRL) live side by side that way. */
#define PARKED_MAX 16
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned live_count;
static struct token_session *parked[PARKED_MAX];
static unsigned parked_count;

static void session_release(struct token_session *s)
{
	/* A module keeps its login state for as long as it stays initialized (SoftHSM2 does),
	 * and a later login in this process would then pass whatever the PIN: log out
	 * explicitly rather than count on the unload to do it. */
	if (s->logged_in) {
		PKCS11_logout(s->logged_in);
		ERR_clear_error();
	}
	if (s->slots) {
		PKCS11_release_all_slots(s->ctx, s->slots, s->nslots);
	}
	if (s->loaded) {
		PKCS11_CTX_unload(s->ctx);
	}
	if (s->ctx) {
		PKCS11_CTX_free(s->ctx);
	}
	ERR_clear_error();
	OPENSSL_free(s);
}

static void session_free(struct token_session *s)
{
	if (!s) {
		return;
	}
	if (!s->loaded) {
		session_release(s);
		return;
	}
	pthread_mutex_lock(&live_lock);
	live_count--;
	if (live_count > 0 && parked_count < PARKED_MAX) {
		parked[parked_count++] = s; /* released with the last session */
		s = NULL;
	} else if (live_count == 0) {
		for (unsigned i = 0; i < parked_count; i++) {
			session_release(parked[i]);
		}
		parked_count = 0;
	}
	pthread_mutex_unlock(&live_lock);
	if (s) {
		session_release(s);
	}
}

/* ex_data free callback: runs for every EVP_PKEY freed, with ptr NULL for ours-less keys. */
static void session_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			    void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	session_free(ptr);
}

static void make_index(void)
{
	session_index = CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_EVP_PKEY, 0, NULL, NULL, NULL,
						session_ex_free);
}

static int ex_index(void)
{
	return pthread_once(&index_once, make_index) == 0 ? session_index : -1;
}

bool moat_pkcs11_key_in_token(EVP_PKEY *key)
{
	int idx = ex_index();
	return key && idx >= 0 && EVP_PKEY_get_ex_data(key, idx) != NULL;
}

/* The PKCS#11 return value libp11 reported last (0 when none), and the queue cleared. */
static unsigned long last_ckr(void)
{
	unsigned long e, ckr = 0;
	int lib = ERR_get_CKR_code();
	while ((e = ERR_get_error()) != 0) {
		if (ERR_GET_LIB(e) == lib) {
			ckr = (unsigned long)ERR_GET_REASON(e);
		}
	}
	return ckr;
}

/* libp11 prints the loader's complaint on stderr itself; a module is tried here first, so
 * that a bad path is one line of ours naming the cause. */
static int module_check(const char *module, struct moat_err *err)
{
	void *h = dlopen(module, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *why = dlerror();
		const char *colon = why ? strstr(why, ": ") : NULL;
		return moat_err_set(err, MOAT_EIO, "PKCS#11 module %s: does not load (%s)", module,
				    colon ? colon + 2 : "unknown reason");
	}
	bool has_entry = dlsym(h, "C_GetFunctionList") != NULL;
	dlclose(h);
	if (!has_entry) {
		return moat_err_set(err, MOAT_EINVAL,
				    "PKCS#11 module %s: not a PKCS#11 module (no C_GetFunctionList)",
				    module);
	}
	return 0;
}

static bool matches(bool want, const char *wanted, const char *have)
{
	return !want || (have && strcmp(wanted, have) == 0);
}

/* What the URI says about the token, for messages: "token=moat" or "any token". */
static void describe_token(const struct moat_pkcs11_uri *u, char *buf, size_t size)
{
	int n = 0;
	buf[0] = '\0';
	if (u->has_token) {
		n += snprintf(buf + n, size - (size_t)n, "token=%s ", u->token);
	}
	if (u->has_manufacturer && (size_t)n < size) {
		n += snprintf(buf + n, size - (size_t)n, "manufacturer=%s ", u->manufacturer);
	}
	if (u->has_model && (size_t)n < size) {
		n += snprintf(buf + n, size - (size_t)n, "model=%s ", u->model);
	}
	if (u->has_serial && (size_t)n < size) {
		n += snprintf(buf + n, size - (size_t)n, "serial=%s ", u->serial);
	}
	if (n == 0) {
		snprintf(buf, size, "any token");
	} else if ((size_t)n <= size) {
		buf[n - 1] = '\0';
	}
}

static int find_token(struct token_session *s, const struct moat_pkcs11_uri *u, const char *module,
		      PKCS11_SLOT **out, struct moat_err *err)
{
	char want[200], found[FOUND_LIST_MAX] = "";
	size_t flen = 0, count = 0;
	*out = NULL;
	describe_token(u, want, sizeof(want));
	for (unsigned int i = 0; i < s->nslots; i++) {
		PKCS11_TOKEN *t = s->slots[i].token;
		if (!t) {
			continue;
		}
		if (!t->initialized) {
			continue; /* see the top of this file */
		}
		if (flen + 1 < sizeof(found)) {
			int n = snprintf(found + flen, sizeof(found) - flen, "%s'%s'",
					 flen ? ", " : "", t->label ? t->label : "");
			flen = n > 0 ? flen + (size_t)n : flen;
			if (flen >= sizeof(found)) {
				flen = sizeof(found) - 1;
			}
		}
		if (matches(u->has_token, u->token, t->label) &&
		    matches(u->has_manufacturer, u->manufacturer, t->manufacturer) &&
		    matches(u->has_model, u->model, t->model) &&
		    matches(u->has_serial, u->serial, t->serialnr)) {
			if (count++ == 0) {
				*out = &s->slots[i];
			}
		}
	}
	if (count == 0) {
		return moat_err_set(err, MOAT_ENOENT,
				    "PKCS#11: no initialized token matches %s in %s (found: %s)",
				    want, module, flen ? found : "none");
	}
	if (count > 1) {
		*out = NULL;
		return moat_err_set(err, MOAT_EINVAL,
				    "PKCS#11: %zu tokens match %s in %s (%s): name one by token= "
				    "or serial=",
				    count, want, module, found);
	}
	return 0;
}

static int login(struct token_session *s, PKCS11_SLOT *slot, const char *pin, struct moat_err *err)
{
	const char *label = slot->token->label ? slot->token->label : "";
	if (!slot->token->loginRequired) {
		return 0;
	}
	if (!pin) {
		return moat_err_set(
			err, MOAT_EDENIED,
			"PKCS#11 token '%s' needs a PIN: give a PIN file (--pin-file) or "
			"set $%s",
			label, MOAT_PKCS11_PIN_ENV);
	}
	if (PKCS11_login(slot, 0, pin) == 0) {
		ERR_clear_error();
		s->logged_in = slot;
		return 0;
	}
	unsigned long ckr = last_ckr();
	const char *why = "login refused";
	switch (ckr) {
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
		why = "wrong PIN";
		break;
	case CKR_PIN_LOCKED:
		why = "PIN locked (too many wrong PINs: the security officer must reset it)";
		break;
	case CKR_PIN_EXPIRED:
		why = "PIN expired";
		break;
	default:
		break;
	}
	return moat_err_set(err, MOAT_EDENIED, "PKCS#11 token '%s': %s (CKR 0x%lx)", label, why,
			    ckr);
}

static bool id_matches(const struct moat_pkcs11_uri *u, const PKCS11_KEY *k)
{
	return !u->has_id || (k->id_len == u->id_len && memcmp(k->id, u->id, u->id_len) == 0);
}

static int find_key(PKCS11_SLOT *slot, const struct moat_pkcs11_uri *u, PKCS11_KEY **out,
		    struct moat_err *err)
{
	PKCS11_KEY *keys = NULL;
	unsigned int nkeys = 0;
	size_t count = 0;
	const char *label = slot->token->label ? slot->token->label : "";
	*out = NULL;
	if (PKCS11_enumerate_keys(slot->token, &keys, &nkeys) != 0) {
		unsigned long ckr = last_ckr();
		return moat_err_set(err, MOAT_EIO,
				    "PKCS#11 token '%s': listing its keys failed (CKR 0x%lx)",
				    label, ckr);
	}
	for (unsigned int i = 0; i < nkeys; i++) {
		if (matches(u->has_object, u->object, keys[i].label) && id_matches(u, &keys[i])) {
			if (count++ == 0) {
				*out = &keys[i];
			}
		}
	}
	if (count == 0) {
		return moat_err_set(err, MOAT_ENOENT,
				    "PKCS#11 token '%s': no private key %s%s%s(%u private keys in "
				    "the token)",
				    label, u->has_object ? "object=" : "",
				    u->has_object ? u->object : "", u->has_object ? " " : "",
				    nkeys);
	}
	if (count > 1) {
		*out = NULL;
		return moat_err_set(err, MOAT_EINVAL,
				    "PKCS#11 token '%s': %zu private keys match: add object= or id= "
				    "to the URI",
				    label, count);
	}
	return 0;
}

/* A new EVP_PKEY around token's RSA or EC_KEY (keeping libp11's methods, which sign in
 * the token); the reference libp11 handed out is dropped. */
static EVP_PKEY *own_key(EVP_PKEY *lib)
{
	EVP_PKEY *mine = EVP_PKEY_new();
	int ok = 0;
	if (mine) {
		switch (EVP_PKEY_get_base_id(lib)) {
		case EVP_PKEY_EC: {
			EC_KEY *ec = EVP_PKEY_get1_EC_KEY(lib);
			ok = ec && EVP_PKEY_assign_EC_KEY(mine, ec);
			if (!ok) {
				EC_KEY_free(ec);
			}
			break;
		}
		case EVP_PKEY_RSA: {
			RSA *rsa = EVP_PKEY_get1_RSA(lib);
			ok = rsa && EVP_PKEY_assign_RSA(mine, rsa);
			if (!ok) {
				RSA_free(rsa);
			}
			break;
		}
		default:
			break;
		}
	}
	EVP_PKEY_free(lib);
	if (!ok) {
		EVP_PKEY_free(mine);
		return NULL;
	}
	return mine;
}

/* The key's public half on its own, as plain OpenSSL key (not the token's). */
static EVP_PKEY *public_copy(EVP_PKEY *key)
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(key, &der);
	if (len <= 0) {
		return NULL;
	}
	const unsigned char *p = der;
	EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, len);
	OPENSSL_free(der);
	return pub;
}

/* A signature made in the token verifies with the public half: the URI names a key that
 * signs, and the public key beside it is its own. */
static int sign_check(EVP_PKEY *key, const char *label, struct moat_err *err)
{
	static const unsigned char probe[] = "moat pkcs11 signing check";
	unsigned char sig[1024];
	size_t sig_len = sizeof(sig);
	int rc = 0;
	EVP_PKEY *pub = public_copy(key);
	EVP_MD_CTX *sctx = EVP_MD_CTX_new();
	EVP_MD_CTX *vctx = EVP_MD_CTX_new();
	if (!pub) {
		rc = moat_err_set(err, MOAT_ECRYPTO,
				  "PKCS#11 token '%s': the key has no public half in the token (a "
				  "public key or certificate object with the same id)",
				  label);
	} else if (!sctx || !vctx) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
	} else if (EVP_DigestSignInit(sctx, NULL, EVP_sha256(), NULL, key) != 1 ||
		   EVP_DigestSign(sctx, sig, &sig_len, probe, sizeof(probe)) != 1) {
		unsigned long ckr = last_ckr();
		rc = moat_err_set(err, MOAT_ECRYPTO,
				  "PKCS#11 token '%s': the key does not sign (CKR 0x%lx)", label,
				  ckr);
	} else if (EVP_DigestVerifyInit(vctx, NULL, EVP_sha256(), NULL, pub) != 1 ||
		   EVP_DigestVerify(vctx, sig, sig_len, probe, sizeof(probe)) != 1) {
		ERR_clear_error();
		rc = moat_err_set(err, MOAT_EVERIFY,
				  "PKCS#11 token '%s': the key's signature does not verify with its "
				  "public key object",
				  label);
	}
	EVP_MD_CTX_free(sctx);
	EVP_MD_CTX_free(vctx);
	EVP_PKEY_free(pub);
	return rc;
}

int moat_pkcs11_key_load(const struct moat_pkcs11_key_req *req, EVP_PKEY **out_key,
			 struct moat_err *err)
{
	struct moat_pkcs11_uri u;
	struct token_session *s = NULL;
	EVP_PKEY *key = NULL;
	PKCS11_SLOT *slot = NULL;
	PKCS11_KEY *pk = NULL;
	*out_key = NULL;
	int rc = moat_pkcs11_uri_parse(req->uri, &u, err);
	if (rc != 0) {
		return rc;
	}
	if (u.type != MOAT_PKCS11_TYPE_ANY && u.type != MOAT_PKCS11_TYPE_PRIVATE) {
		return moat_err_set(err, MOAT_EINVAL,
				    "pkcs11 URI: a signing key is type=private, not another type");
	}
	const char *module = req->module;
	if (module && u.has_module_path && strcmp(module, u.module_path) != 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "PKCS#11 module %s differs from the URI's module-path %s",
				    module, u.module_path);
	}
	if (!module || !*module) {
		module = u.has_module_path ? u.module_path : NULL;
	}
	if (!module) {
		return moat_err_set(err, MOAT_EINVAL,
				    "no PKCS#11 module: give its path (--pkcs11-module, [pki] "
				    "pkcs11_module, or module-path= in the URI; SoftHSM2's is "
				    "/usr/lib/softhsm/libsofthsm2.so)");
	}
	if ((rc = module_check(module, err)) != 0) {
		return rc;
	}
	int idx = ex_index();
	if (idx < 0 || !(s = OPENSSL_zalloc(sizeof(*s))) || !(s->ctx = PKCS11_CTX_new())) {
		session_free(s);
		return moat_err_set(err, MOAT_ENOMEM, "PKCS#11: out of memory");
	}
	if (PKCS11_CTX_load(s->ctx, module) != 0) {
		ERR_clear_error();
		rc = moat_err_set(err, MOAT_EIO, "PKCS#11 module %s: does not load", module);
		goto out;
	}
	s->loaded = true;
	pthread_mutex_lock(&live_lock);
	live_count++;
	pthread_mutex_unlock(&live_lock);
	if (PKCS11_enumerate_slots(s->ctx, &s->slots, &s->nslots) != 0) {
		unsigned long ckr = last_ckr();
		s->slots = NULL;
		rc = moat_err_set(err, MOAT_EIO,
				  "PKCS#11 module %s: listing slots failed (CKR 0x%lx)", module,
				  ckr);
		goto out;
	}
	if ((rc = find_token(s, &u, module, &slot, err)) != 0 ||
	    (rc = login(s, slot, req->pin, err)) != 0 || (rc = find_key(slot, &u, &pk, err)) != 0) {
		goto out;
	}
	const char *label = slot->token->label ? slot->token->label : "";
	EVP_PKEY *lib = PKCS11_get_private_key(pk);
	if (!lib || !(key = own_key(lib))) {
		unsigned long ckr = last_ckr();
		rc = moat_err_set(err, MOAT_ECRYPTO,
				  "PKCS#11 token '%s': the key cannot be used (only EC and RSA keys "
				  "can; CKR 0x%lx)",
				  label, ckr);
		goto out;
	}
	if ((rc = sign_check(key, label, err)) != 0) {
		goto out;
	}
	if (EVP_PKEY_set_ex_data(key, idx, s) != 1) {
		rc = moat_err_set(err, MOAT_ENOMEM, "PKCS#11: out of memory");
		goto out;
	}
	s = NULL; /* the key holds it now */
	*out_key = key;
	key = NULL;
out:
	/* The key goes before the module that backs it. */
	EVP_PKEY_free(key);
	session_free(s);
	ERR_clear_error();
	return rc;
}
