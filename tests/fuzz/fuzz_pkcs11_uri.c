/* fuzz_pkcs11_uri.c: moat_pkcs11_uri_parse, the RFC 7512 parser behind every --pkcs11-uri,
 * moat.conf's issuer_pkcs11_uri and a firmware key's recorded URI. Whatever the input, a
 * success must leave only well-formed values (NUL-terminated within bounds, no control
 * character, an id within its bound) and a failure a zeroed struct; and a URI that parsed
 * and gets a module-path added must parse again to the same attributes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/pkcs11.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s, size_t max)
{
	size_t len = strnlen(s, max + 1);
	if (len > max) {
		abort();
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f) {
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > MOAT_PKCS11_URI_MAX + 64) {
		return 0;
	}
	char *text = malloc(size + 1);
	if (!text) {
		return 0;
	}
	memcpy(text, data, size);
	text[size] = '\0';
	struct moat_pkcs11_uri u, again;
	static const struct moat_pkcs11_uri zero;
	if (moat_pkcs11_uri_parse(text, &u, NULL) != 0) {
		if (memcmp(&u, &zero, sizeof(u)) != 0) {
			abort();
		}
		free(text);
		return 0;
	}
	check_text(u.token, MOAT_PKCS11_TOKEN_LABEL_MAX);
	check_text(u.manufacturer, MOAT_PKCS11_MANUFACTURER_MAX);
	check_text(u.model, MOAT_PKCS11_MODEL_MAX);
	check_text(u.serial, MOAT_PKCS11_SERIAL_MAX);
	check_text(u.object, MOAT_PKCS11_OBJECT_MAX);
	check_text(u.module_path, MOAT_PKCS11_PATH_MAX);
	if (u.id_len > MOAT_PKCS11_ID_MAX || (u.id_len > 0 && !u.has_id) ||
	    (u.has_object && !u.object[0]) || (u.has_token && !u.token[0])) {
		abort();
	}
	char *with = NULL;
	if (!u.has_module_path &&
	    moat_pkcs11_uri_with_module(text, "/usr/lib/x y/p11.so", &with, NULL) == 0) {
		if (moat_pkcs11_uri_parse(with, &again, NULL) != 0 ||
		    strcmp(again.module_path, "/usr/lib/x y/p11.so") != 0 ||
		    strcmp(again.token, u.token) != 0 || strcmp(again.object, u.object) != 0 ||
		    again.id_len != u.id_len || memcmp(again.id, u.id, u.id_len) != 0 ||
		    again.type != u.type) {
			abort();
		}
		free(with);
	}
	free(text);
	return 0;
}
