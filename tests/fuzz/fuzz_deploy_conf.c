/* fuzz_deploy_conf.c: moat.conf as the deployment reads it: the INI reader, the core
 * sections (deploy_conf_parse: name, broker hosts and ports, [pki]) and the account moatd
 * switches to ([server] user, moat_deploy_moatd_user, and the rule behind it,
 * moat_account_name_check, which [agent] user follows too). Invariants: a refusal always
 * says why; an accepted account name is 1 to 32 characters of [a-z0-9_.-], does not start
 * with '-', is not all digits, ".", ".." or "root", and is the configured one (or the
 * default when none is configured). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/config.h"
#include "moat/deploy.h"
#include "moat/identity.h"

#include "../../src/deploy/deploy_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The accepted-name invariant, checked independently of the validator's code. */
static void account_name_invariant(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > MOAT_ACCOUNT_NAME_MAX_LEN || name[0] == '-' ||
	    strcmp(name, "root") == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
	    strspn(name, "0123456789") == len ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_.-") != len) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_config *cfg = NULL;
	struct moat_err err;
	moat_err_clear(&err);
	if (moat_config_parse("moat.conf", (const char *)data, size, &cfg, &err) != 0) {
		if (cfg != NULL || err.msg[0] == '\0') {
			abort();
		}
		return 0;
	}
	struct moat_deploy_conf conf;
	moat_err_clear(&err);
	if (deploy_conf_parse(cfg, &conf, &err) != 0 && err.msg[0] == '\0') {
		abort();
	}
	char user[MOAT_DEPLOY_USER_BUF_LEN];
	moat_err_clear(&err);
	if (moat_deploy_moatd_user(cfg, user, &err) == 0) {
		const char *set = moat_config_get(cfg, "server", "user");
		account_name_invariant(user);
		if (strcmp(user, set ? set : MOAT_MOATD_USER_DEFAULT) != 0) {
			abort();
		}
	} else if (err.msg[0] == '\0' || strstr(err.msg, "[server] user") == NULL) {
		abort(); /* a refusal names the key */
	}
	/* every value, whatever its key, through the account rule itself */
	for (size_t i = 0; i < cfg->count; i++) {
		moat_err_clear(&err);
		if (moat_account_name_check(cfg->entries[i].value, &err) == 0) {
			account_name_invariant(cfg->entries[i].value);
		} else if (err.msg[0] == '\0') {
			abort();
		}
	}
	moat_config_free(cfg);
	return 0;
}
