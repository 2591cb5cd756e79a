/* ca.c: `moat ca issuer create|rotate`: the online issuing CA of a two-tier deployment,
 * added to a single-tier one or replaced. Both need the root's passphrase. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "moat/broker.h"
#include "moat/pkcs11.h"
#include "moat/timeutil.h"

static const char usage_text[] =
	"usage: moat ca issuer create [--days 1825]\n"
	"                             [--pkcs11-uri URI [--pkcs11-module PATH] [--pin-file F]]\n"
	"       moat ca issuer rotate [--days 1825]\n"
	"                             [--pkcs11-uri URI [--pkcs11-module PATH] [--pin-file F]]\n"
	"       moat ca claim add|list|remove ...   (claim CAs for EST enrollment)\n"
	"create: adds an online issuing CA to a single-tier deployment (made before it, or\n"
	"with moat init --single-tier): from then on it signs devices, services, operators,\n"
	"the server certificate and the CRL without the passphrase. A root made with pathlen 0\n"
	"is re-certified (same name, same key) so that it can sign it; certificates the root\n"
	"signed keep working, and their CRL stays signed by the root.\n"
	"rotate: replaces the issuing CA with a new one. Nothing is re-enrolled: the old one is\n"
	"kept (pki/retired/) and its CRL re-signed until it expires, and no certificate it\n"
	"signed outlives it.\n"
	"Both need the CA passphrase. --days beyond the root's validity is refused; the\n"
	"default is cut to it.\n"
	"--pkcs11-uri: the issuing CA's key is one made in a PKCS#11 token (RFC 7512 URI):\n"
	"certified there, never read out, no pki/issuer.key; moat.conf's [pki] records the URI,\n"
	"the module and the PIN file (else $MOAT_PKCS11_PIN). rotate --pkcs11-uri moves to a new\n"
	"key object in a token; rotate without it to a new pki/issuer.key. A retired CA's key\n"
	"that is in a token stays there (pki/retired/issuer-N.pkcs11 records its URI; PIN from\n"
	"[pki] issuer_pin_file, else $MOAT_PKCS11_PIN) to keep signing its CRL.\n";

static int issuer_cmd(int argc, char **argv, bool rotate)
{
	struct moat_err err = {0};
	int64_t days = 0;
	const char *uri = NULL, *module = NULL, *pin_file = NULL;
	const struct moat_opt opts[] = {
		{.name = "days", .kind = MOAT_OPT_INT, .dst = &days, .min = 1, .max = 36500},
		{.name = "pkcs11-uri", .kind = MOAT_OPT_STRING, .dst = &uri},
		{.name = "pkcs11-module", .kind = MOAT_OPT_STRING, .dst = &module},
		{.name = "pin-file", .kind = MOAT_OPT_STRING, .dst = &pin_file},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = usage_text, .opts = opts,
					    .no_operands = true};
	int next;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	if ((module || pin_file) && !uri) {
		return cli_usage_error("ca issuer: --pkcs11-module and --pin-file go with "
				       "--pkcs11-uri");
	}
	struct moat_pkcs11_uri parsed;
	if (uri && moat_pkcs11_uri_parse(uri, &parsed, &err) != 0) {
		return cli_usage_error("ca issuer %s: --pkcs11-uri: %s", argv[0], err.msg);
	}
	if (module && strchr(module, '/') && module[0] != '/') {
		return cli_usage_error("ca issuer %s: --pkcs11-module: give an absolute path",
				       argv[0]);
	}
	char pin_abs[PATH_MAX];
	if (pin_file) {
		if (!realpath(pin_file, pin_abs)) {
			return cli_usage_error("ca issuer %s: --pin-file %s: %s", argv[0], pin_file,
					       strerror(errno));
		}
		pin_file = pin_abs;
	}
	struct moat_deploy *d = NULL;
	int rc;
	if ((rc = cli_open_root(&d, &err)) != 0) {
		return cli_fail(&err);
	}
	if (rotate) {
		rc = uri ? moat_deploy_issuer_rotate_token(d, days, uri, module, pin_file, &err)
			 : moat_deploy_issuer_rotate(d, days, &err);
	} else {
		rc = uri ? moat_deploy_issuer_create_token(d, days, uri, module, pin_file, &err)
			 : moat_deploy_issuer_create(d, days, &err);
	}
	if (rc == 0) {
		rc = moat_broker_sync(d, &err);
	}
	if (rc != 0) {
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	const struct moat_ca *signer = NULL;
	if (moat_deploy_signer(d, &signer, &err) != 0) {
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	char until[MOAT_TIME_ISO_LEN];
	moat_time_iso(moat_pki_ca_not_after(signer), until);
	if (cli_globals.json) {
		printf("{\"result\":\"%s\",\"certificate\":\"pki/issuer.crt\",\"not_after\":"
		       "\"%s\"}\n",
		       rotate ? "rotated" : "created", until);
	} else {
		printf("%s: pki/issuer.crt, valid until %s; pki/crl.pem re-signed\n",
		       rotate ? "issuing CA rotated" : "issuing CA created", until);
	}
	moat_deploy_close(d);
	return CLI_OK;
}

int ca_main(int argc, char **argv)
{
	int st = cli_group_help(argc, argv, usage_text, true);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	if (strcmp(argv[1], "claim") == 0) {
		return ca_claim_main(argc - 1, argv + 1);
	}
	if (strcmp(argv[1], "issuer") == 0 && argc >= 3) {
		if (strcmp(argv[2], "create") == 0) {
			return issuer_cmd(argc - 2, argv + 2, false);
		}
		if (strcmp(argv[2], "rotate") == 0) {
			return issuer_cmd(argc - 2, argv + 2, true);
		}
	}
	return cli_usage_error(
		"usage: moat ca issuer create|rotate [--days N] | moat ca claim ...");
}
