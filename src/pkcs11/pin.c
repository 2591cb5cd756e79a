/* pin.c: the token's user PIN from a PIN file or the environment (moat/pkcs11.h). The file
 * is held to the rule moat's passphrase files follow: nobody but its owner may read it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "moat/fsutil.h"
#include "moat/pkcs11.h"

static int pin_check(const char *pin, const char *source, size_t size, struct moat_err *err)
{
	size_t len = strlen(pin);
	if (len == 0) {
		return moat_err_set(err, MOAT_EINVAL, "%s: empty PKCS#11 PIN", source);
	}
	if (len > MOAT_PKCS11_PIN_MAX || len + 1 > size) {
		return moat_err_set(err, MOAT_EINVAL, "%s: PKCS#11 PIN longer than %d characters",
				    source, MOAT_PKCS11_PIN_MAX);
	}
	return 0;
}

int moat_pkcs11_pin_read(const char *pin_file, char *buf, size_t size, struct moat_err *err)
{
	int rc;
	if (size > 0) {
		buf[0] = '\0';
	}
	if (pin_file) {
		struct stat st;
		char *text = NULL;
		size_t len = 0;
		if (stat(pin_file, &st) != 0) {
			return moat_err_errno(err, MOAT_ENOENT, errno, "PIN file %s", pin_file);
		}
		if (!S_ISREG(st.st_mode)) {
			return moat_err_set(err, MOAT_EINVAL, "PIN file %s: not a regular file",
					    pin_file);
		}
		if (st.st_mode & 0077) {
			return moat_err_set(err, MOAT_EDENIED,
					    "PIN file %s: readable by others (chmod 600 it)",
					    pin_file);
		}
		rc = moat_fs_read_all(pin_file, MOAT_PKCS11_PIN_MAX + 2, &text, &len, err);
		if (rc != 0) {
			return rc;
		}
		text[strcspn(text, "\r\n")] = '\0';
		rc = pin_check(text, pin_file, size, err);
		if (rc == 0) {
			memcpy(buf, text, strlen(text) + 1);
		}
		OPENSSL_cleanse(text, len);
		free(text);
		return rc;
	}
	const char *env = getenv(MOAT_PKCS11_PIN_ENV);
	if (env) {
		rc = pin_check(env, "$" MOAT_PKCS11_PIN_ENV, size, err);
		if (rc == 0) {
			memcpy(buf, env, strlen(env) + 1);
		}
		return rc;
	}
	return moat_err_set(err, MOAT_EINVAL,
			    "no PKCS#11 PIN: give a PIN file (--pin-file FILE) or set $%s",
			    MOAT_PKCS11_PIN_ENV);
}
