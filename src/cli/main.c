/* main.c: the moat command. A table maps each group to its <group>_main (one file each,
 * wireguard-tools style); global options may come before the group name. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct group {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
};

/* Keep sorted by the order an operator meets them. */
static const struct group groups[] = {
	{"init", init_main, "create a deployment directory and its certificate authority"},
	{"device", device_main, "add, list, show, revoke, renew and export devices"},
	{"group", group_main, "device tags' groups: named filters by type, tag, release, zone"},
	{"identity", identity_main, "add service and operator identities"},
	{"cert", cert_main, "certificates that expire soon"},
	{"ca", ca_main, "the online issuing CA (create, rotate) and claim CAs for EST enrollment"},
	{"config", config_main, "check moat.conf: every mistake named with its line"},
	{"broker", broker_main, "write the broker's mosquitto.conf, ACL and policy"},
	{"up", up_main, "start the broker under a supervisor"},
	{"down", down_main, "stop what moat up started"},
	{"status", status_main, "is the broker running and accepting TLS"},
	{"net", net_main, "network segmentation: plan, apply, remove, verify in namespaces"},
	{"fw", fw_main, "firmware signing keys, signed manifests, and what a device decides"},
	{"sim", sim_main, "run N simulated devices (the moat-agent code) in one process"},
	{"cmd", cmd_main, "send a command to a device and wait for its response"},
	{"job", job_main, "one command to a group of devices: progress, results, summary"},
	{"watch", watch_main, "live telemetry, status and command responses"},
	{"events", events_main, "security events and anomalies moatd recorded (--follow)"},
	{"fleet", fleet_main, "the fleet at a glance: states, types, releases, anomalies"},
	{"dashboard", dashboard_main, "a one-time sign-in link to the web dashboard"},
	{"backup", backup_main, "write the deployment to one archive, while it runs"},
	{"restore", restore_main, "restore a backup into a new directory"},
	{"registry", registry_main, "move a stopped deployment's registry.db into PostgreSQL"},
	{"audit", audit_main,
	 "check the deployment: PKI, drift, broker, firmware, network; --live probes it"},
	{"doctor", doctor_main, "why a device or a connection does not work, in words"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: moat [--dir DIR] [--passphrase-file FILE] <command> [args]\n\n"
		     "commands:\n");
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
		fprintf(out, "  %-10s %s\n", groups[i].name, groups[i].summary);
	}
	fprintf(out, "  %-10s %s\n", "help", "this list");
	fprintf(out, "\nmoat <command> --help describes a command. The deployment is --dir, "
		     "else $MOAT_DIR, else the current directory.\n");
}

int main(int argc, char **argv)
{
	int i = 1;
	/* Global options before the group name. */
	while (i < argc && argv[i][0] == '-') {
		const char *a = argv[i];
		if (strcmp(a, "--version") == 0) {
			printf("moat %s\n", MOAT_VERSION);
			return CLI_OK;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return CLI_OK;
		}
		if (strcmp(a, "--json") == 0) {
			cli_globals.json = true;
			i++;
			continue;
		}
		if ((strcmp(a, "--dir") == 0 || strcmp(a, "--passphrase-file") == 0) &&
		    i + 1 < argc) {
			if (strcmp(a, "--dir") == 0) {
				cli_globals.dir = argv[i + 1];
			} else {
				cli_globals.passphrase_file = argv[i + 1];
			}
			i += 2;
			continue;
		}
		if (strncmp(a, "--dir=", 6) == 0) {
			cli_globals.dir = a + 6;
			i++;
			continue;
		}
		return cli_usage_error("unknown option '%s' (see moat help)", a);
	}
	if (i >= argc) {
		usage(stderr);
		return CLI_USAGE;
	}
	const char *name = argv[i];
	if (strcmp(name, "help") == 0) {
		usage(stdout);
		return CLI_OK;
	}
	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		if (strcmp(name, groups[g].name) == 0) {
			return groups[g].main(argc - i, argv + i);
		}
	}
	return cli_usage_error("unknown command '%s' (see moat help)", name);
}
