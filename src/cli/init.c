/* init.c: `moat init`, creating a deployment directory (src/deploy/init.c does the work). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "moat/timeutil.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: moat init [--dir D] [--name N] [--broker-host NAME_OR_IP]...\n"
		"                 [--broker-port 8883] [--server-port 8443]\n"
		"                 [--key-type ec-p256|rsa-2048|rsa-3072|rsa-4096] [--ca-days 3650]\n\n"
		"Creates the deployment directory (default: $MOAT_DIR, else the current directory):\n"
		"moat.conf, registry.db, a CA whose key is encrypted with the CA passphrase\n"
		"(--passphrase-file, MOAT_CA_PASSPHRASE or a prompt), the broker/server certificate\n"
		"naming every --broker-host (default localhost and 127.0.0.1) and an empty CRL.\n"
		"Refuses an existing deployment or a non-empty directory.\n");
}

int init_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"name", required_argument, NULL, 'n'},
		{"broker-host", required_argument, NULL, 'H'},
		{"broker-port", required_argument, NULL, 'b'},
		{"server-port", required_argument, NULL, 's'},
		{"key-type", required_argument, NULL, 'k'},
		{"ca-days", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		CLI_GLOBAL_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	struct moat_init_opts io = {.key_type = MOAT_KEY_EC_P256};
	const char *hosts[MOAT_HOSTS_MAX];
	size_t host_count = 0;
	struct moat_err err = {0};
	int64_t v;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			io.name = optarg;
			break;
		case 'H':
			if (host_count == MOAT_HOSTS_MAX) {
				return cli_usage_error("at most %d --broker-host", MOAT_HOSTS_MAX);
			}
			hosts[host_count++] = optarg;
			break;
		case 'b':
		case 's':
			if (moat_int_parse(optarg, 1, 65535, &v, &err) != 0) {
				return cli_usage_error("--%s: %s",
						       c == 'b' ? "broker-port" : "server-port", err.msg);
			}
			if (c == 'b') {
				io.broker_port = (int)v;
			} else {
				io.server_port = (int)v;
			}
			break;
		case 'k':
			if (moat_key_type_parse(optarg, &io.key_type, &err) != 0) {
				return cli_usage_error("--key-type: %s", err.msg);
			}
			break;
		case 'c':
			if (moat_int_parse(optarg, 1, 36500, &v, &err) != 0) {
				return cli_usage_error("--ca-days: %s", err.msg);
			}
			io.ca_days = v;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			if (cli_global_opt(c, optarg)) {
				break;
			}
			usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind < argc) {
		return cli_usage_error("init: unexpected argument '%s'", argv[optind]);
	}
	char dir[PATH_MAX];
	if (moat_deploy_locate(cli_globals.dir, dir, sizeof(dir), &err) != 0) {
		return cli_fail(&err);
	}
	io.dir = dir;
	io.broker_hosts = hosts;
	io.broker_host_count = host_count;
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
	printf("created deployment %s\n", dir);
	return CLI_OK;
}
