/* broker.c: `moat broker config`: (re)writes broker/mosquitto.conf, broker/acl.conf and
 * broker/policy from moat.conf and the registry, and reloads a running broker. */
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
	struct moat_err err = {0};
	bool no_plugin = false;
	const struct moat_opt opts[] = {
		{.name = "no-plugin", .kind = MOAT_OPT_FLAG, .dst = &no_plugin},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = usage_text, .opts = opts,
					    .no_operands = true};
	int next;
	int ost = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (ost != MOAT_OPTS_CONTINUE) {
		return ost;
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
	int st = cli_group_help(argc, argv, usage_text, true);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	if (strcmp(argv[1], "config") == 0) {
		return config(argc - 1, argv + 1);
	}
	return cli_usage_error("moat broker: unknown subcommand '%s' (see moat broker --help)",
			       argv[1]);
}
