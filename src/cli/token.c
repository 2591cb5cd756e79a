/* token.c: what the commands that sign with a key in a PKCS#11 token share: where the
 * module is (--pkcs11-module, else moat.conf's [pki] pkcs11_module, else the URI's
 * module-path) and where the PIN comes from (--pin-file, else $MOAT_PKCS11_PIN). */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "moat/pkcs11.h"

const char *cli_pkcs11_module(const struct moat_deploy *d, const char *flag)
{
	if (flag && *flag) {
		return flag;
	}
	const char *conf = d ? moat_config_get(moat_deploy_config(d), "pki", "pkcs11_module")
			     : NULL;
	return conf && *conf ? conf : NULL;
}

int cli_token_key_load(const struct moat_deploy *d, const char *uri, const char *module_flag,
		       const char *pin_file, EVP_PKEY **out_key, struct moat_err *err)
{
	char pin[MOAT_PKCS11_PIN_MAX + 1];
	struct moat_pkcs11_uri parsed;
	*out_key = NULL;
	int rc = moat_pkcs11_uri_parse(uri, &parsed, err);
	if (rc != 0) {
		return rc;
	}
	const char *module = cli_pkcs11_module(d, module_flag);
	/* A URI that names its module keeps it, unless the flag says otherwise (refused then
	 * as a conflict by moat_pkcs11_key_load). */
	if (parsed.has_module_path && !(module_flag && *module_flag)) {
		module = NULL;
	}
	bool have_pin = pin_file || getenv(MOAT_PKCS11_PIN_ENV);
	if (have_pin && (rc = moat_pkcs11_pin_read(pin_file, pin, sizeof(pin), err)) != 0) {
		return rc;
	}
	struct moat_pkcs11_key_req req = {
		.uri = uri,
		.module = module,
		.pin = have_pin ? pin : NULL,
	};
	rc = moat_pkcs11_key_load(&req, out_key, err);
	OPENSSL_cleanse(pin, sizeof(pin));
	return rc;
}
