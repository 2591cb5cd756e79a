/* broker.c: `moat broker config`: (re)writes broker/mosquitto.conf, broker/acl.conf and
 * broker/policy from moat.conf and the registry, and reloads a running broker. */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "moat/broker.h"
#include "moat/broker_supervisor.h"

static const char usage_text[] =
	"usage: moat broker config [--no-plugin] [--json]\n"
	"Writes broker/mosquitto.conf, broker/acl.conf and broker/policy from moat.conf and\n"
	"the registry, and makes a running broker reload them. --no-plugin: plain Mosquitto\n"
	"with the ACL file (as with [broker] plugin = no). The plugin is moat_broker.so next\n"
	"to moat, or $MOAT_BROKER_PLUGIN.\n";

static int config(int argc, char **argv)
{
	static const struct option opts[] = {
		{"no-plugin", no_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		CLI_GLOBAL_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	struct moat_err err = {0};
	bool no_plugin = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (cli_global_opt(c, optarg)) {
			continue;
		}
		if (c == 'n') {
			no_plugin = true;
			continue;
		}
		if (c == 'h') {
			fputs(usage_text, stdout);
			return CLI_OK;
		}
		return cli_usage_error("usage: moat broker config [--no-plugin] [--json]");
	}
	if (optind != argc) {
		return cli_usage_error("usage: moat broker config [--no-plugin] [--json]");
	}
	struct moat_deploy *d = NULL;
	struct moat_broker_settings s;
	char plugin[PATH_MAX];
	bool sent = false;
	int rc;
	if ((rc = cli_open(MOAT_DEPLOY_WRITE, &d, &err)) != 0) {
		return cli_fail(&err);
	}
	/* Mosquitto loads plugins and binds listeners only at start: a reload into the other
	 * mode would leave a broker enforcing neither the plugin nor the ACL file. */
	struct moat_broker_state st;
	char old_mode[32];
	if ((rc = moat_broker_state(moat_deploy_dir(d), &st, &err)) != 0 ||
	    (rc = moat_broker_settings_load(moat_deploy_config(d), moat_deploy_settings(d), &s,
					    &err)) != 0) {
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	const char *new_mode = s.plugin && !no_plugin ? "plugin" : "acl-file";
	moat_broker_conf_mode(moat_deploy_dir(d), old_mode, sizeof(old_mode));
	if (st.running && strcmp(old_mode, new_mode) != 0) {
		moat_err_set(&err, MOAT_ESTATE,
			     "the running broker uses %s mode, not %s: stop it first (moat down), "
			     "then moat up%s",
			     old_mode[0] ? old_mode : "another", new_mode,
			     strcmp(new_mode, "plugin") == 0 ? "" : " --no-plugin");
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	if ((rc = moat_broker_configure(d, no_plugin, &s, plugin, sizeof(plugin), &err)) != 0 ||
	    (rc = moat_broker_signal(moat_deploy_dir(d), SIGHUP, &sent, &err)) != 0) {
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	if (cli_globals.json) {
		printf("{\"dir\":");
		cli_json_string(stdout, moat_deploy_dir(d));
		printf(",\"mode\":\"%s\",\"plugin\":", plugin[0] ? "plugin" : "acl-file");
		cli_json_string(stdout, plugin);
		printf(",\"port\":%d,\"reloaded\":%s}\n", s.port, sent ? "true" : "false");
	} else {
		printf("wrote %s/%s (%s), %s, %s\n", moat_deploy_dir(d), MOAT_BROKER_CONF_FILE,
		       plugin[0] ? "plugin" : "ACL file, no plugin", MOAT_BROKER_ACL_FILE,
		       MOAT_POLICY_FILE_NAME);
		if (sent) {
			printf("running broker reloaded (listener changes need moat down && moat up)\n");
		}
	}
	moat_deploy_close(d);
	return CLI_OK;
}

int broker_main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage_text, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (strcmp(argv[1], "config") == 0) {
		return config(argc - 1, argv + 1);
	}
	return cli_usage_error("moat broker: unknown subcommand '%s' (see moat broker --help)",
			       argv[1]);
}
