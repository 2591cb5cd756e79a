/* init.c: `moat init`, creating a deployment directory (src/deploy/init.c does the work). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "moat/pkcs11.h"
#include "moat/timeutil.h"

static const char usage[] =
	"usage: moat init [--dir D] [--name N] [--broker-host NAME_OR_IP]...\n"
	"                 [--broker-port 8883] [--server-port 8443]\n"
	"                 [--key-type ec-p256|rsa-2048|rsa-3072|rsa-4096] [--ca-days 3650]\n"
	"                 [--issuer-days 1825] [--single-tier]\n"
	"                 [--issuer-pkcs11-uri URI [--pkcs11-module PATH] [--pin-file FILE]]\n"
	"                 [--registry-url postgresql://[USER@]HOST[:PORT]/DB[?PARAMS]]\n\n"
	"Creates the deployment directory (default: $MOAT_DIR, else the current directory):\n"
	"moat.conf, registry.db, a root CA whose key is encrypted with the CA passphrase\n"
	"(--passphrase-file, MOAT_CA_PASSPHRASE or a prompt), an online issuing CA signed by it\n"
	"(pki/issuer.key, readable only by its owner: it signs devices, services, operators,\n"
	"the server certificate and the CRL without the passphrase), the broker/server\n"
	"certificate naming every --broker-host (default localhost and 127.0.0.1) and an empty\n"
	"CRL. --single-tier makes no issuing CA: the root signs everything and every change\n"
	"needs the passphrase (how deployments were made before; moat ca issuer create adds\n"
	"one later). --issuer-pkcs11-uri keeps the issuing CA's key in a PKCS#11 token (RFC 7512\n"
	"URI of a key made there, e.g. pkcs11:token=moat;object=issuer;type=private): no\n"
	"pki/issuer.key is written; moat.conf's [pki] records the URI, the module\n"
	"(--pkcs11-module, e.g. /usr/lib/softhsm/libsofthsm2.so, or module-path= in the URI)\n"
	"and the PIN file (--pin-file, mode 0600; else $MOAT_PKCS11_PIN whenever moat or moatd\n"
	"signs). --registry-url keeps the registry in that PostgreSQL database (it must hold no\n"
	"tables; its password in ~/.pgpass or PGPASSFILE, never in the URL) instead of\n"
	"registry.db, and records the URL in moat.conf's [registry] url. Refuses an existing\n"
	"deployment or a non-empty directory.\n";

int init_main(int argc, char **argv)
{
	struct moat_init_opts io = {.key_type = MOAT_KEY_EC_P256};
	const char *host_v[MOAT_HOSTS_MAX];
	struct moat_opt_list hosts = {.items = host_v, .max = MOAT_HOSTS_MAX};
	int64_t broker_port = 0;
	int64_t server_port = 0;
	struct moat_err err = {0};
	const struct moat_opt opts[] = {
		{.name = "name", .kind = MOAT_OPT_STRING, .dst = &io.name},
		{.name = "broker-host", .kind = MOAT_OPT_LIST, .dst = &hosts},
		{.name = "broker-port",
		 .kind = MOAT_OPT_INT,
		 .dst = &broker_port,
		 .min = 1,
		 .max = 65535},
		{.name = "server-port",
		 .kind = MOAT_OPT_INT,
		 .dst = &server_port,
		 .min = 1,
		 .max = 65535},
		{.name = "key-type",
		 .kind = MOAT_OPT_FN,
		 .dst = &io.key_type,
		 .fn = cli_opt_key_type},
		{.name = "ca-days",
		 .kind = MOAT_OPT_INT,
		 .dst = &io.ca_days,
		 .min = 1,
		 .max = 36500},
		{.name = "issuer-days",
		 .kind = MOAT_OPT_INT,
		 .dst = &io.issuer_days,
		 .min = 1,
		 .max = 36500},
		{.name = "single-tier", .kind = MOAT_OPT_FLAG, .dst = &io.single_tier},
		{.name = "issuer-pkcs11-uri", .kind = MOAT_OPT_STRING, .dst = &io.issuer_pkcs11_uri},
		{.name = "pkcs11-module", .kind = MOAT_OPT_STRING, .dst = &io.pkcs11_module},
		{.name = "pin-file", .kind = MOAT_OPT_STRING, .dst = &io.issuer_pin_file},
		{.name = "registry-url", .kind = MOAT_OPT_STRING, .dst = &io.registry_url},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = usage, .opts = opts,
					    .on_error = MOAT_OPTS_ERROR_USAGE};
	int next;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	io.broker_port = (int)broker_port;
	io.server_port = (int)server_port;
	if (next < argc) {
		return cli_usage_error("init: unexpected argument '%s'", argv[next]);
	}
	if (io.issuer_pkcs11_uri && io.single_tier) {
		return cli_usage_error("init: --issuer-pkcs11-uri needs an issuing CA: not with "
				       "--single-tier");
	}
	if ((io.pkcs11_module || io.issuer_pin_file) && !io.issuer_pkcs11_uri) {
		return cli_usage_error("init: --pkcs11-module and --pin-file go with "
				       "--issuer-pkcs11-uri");
	}
	struct moat_pkcs11_uri parsed;
	if (io.issuer_pkcs11_uri &&
	    moat_pkcs11_uri_parse(io.issuer_pkcs11_uri, &parsed, &err) != 0) {
		return cli_usage_error("init: --issuer-pkcs11-uri: %s", err.msg);
	}
	if (io.registry_url && moat_registry_url_check(io.registry_url, &err) != 0) {
		return cli_usage_error("init: --registry-url: %s", err.msg);
	}
	/* moat.conf keeps paths that hold from any working directory */
	char pin_abs[PATH_MAX];
	if (io.issuer_pin_file) {
		if (!realpath(io.issuer_pin_file, pin_abs)) {
			return cli_usage_error("init: --pin-file %s: %s", io.issuer_pin_file,
					       strerror(errno));
		}
		io.issuer_pin_file = pin_abs;
	}
	if (io.pkcs11_module && strchr(io.pkcs11_module, '/') && io.pkcs11_module[0] != '/') {
		return cli_usage_error("init: --pkcs11-module: give an absolute path");
	}
	char dir[PATH_MAX];
	if (moat_deploy_locate(cli_globals.dir, dir, sizeof(dir), &err) != 0) {
		return cli_fail(&err);
	}
	io.dir = dir;
	io.broker_hosts = host_v;
	io.broker_host_count = hosts.count;
	io.now = moat_time_now();

	char pass[MOAT_PASSPHRASE_MAX_LEN + 2];
	int rc = cli_passphrase(pass, sizeof(pass), true, &err);
	if (rc == 0) {
		rc = moat_deploy_init(&io, pass, &err);
	}
	OPENSSL_cleanse(pass, sizeof(pass));
	if (rc != 0) {
		return cli_fail(&err);
	}
	if (cli_globals.json) {
		printf("{\"result\":\"created\",\"dir\":");
		cli_json_string(stdout, dir);
		printf("}\n");
	} else {
		printf("created deployment %s\n", dir);
	}
	return CLI_OK;
}
