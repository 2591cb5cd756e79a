/* ca_claim.c: `moat ca claim`: the claim CAs, whose certificates (a manufacturer's, put on
 * a device in the factory) may stand for an enrollment token over EST. Each claim
 * certificate's CN must be registered for one device (`moat device add ID --claim-cn CN`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"

static const char usage[] =
	"usage: moat ca claim <subcommand>\n\n"
	"  add CA.pem        trust CA.pem's certificates as claim certificates over EST\n"
	"  list [--json]     the claim CAs (SHA-256 of the certificate, subject)\n"
	"  remove SHA256     stop trusting one\n\n"
	"A claim certificate enrolls the one device registered with\n"
	"`moat device add ID --claim-cn CN` for its CN, once.\n";

static int operand(int argc, char **argv, const char *line, const char **out)
{
	const struct moat_opt opts[] = {{.name = "help", .kind = MOAT_OPT_HELP}, {0}};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = usage, .opts = opts,
					    .error_line = line};
	int next = 0;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st == CLI_OK ? -1 : st;
	}
	if (out) {
		if (next != argc - 1) {
			return cli_usage_error("%s", line);
		}
		*out = argv[next];
	} else if (next != argc) {
		return cli_usage_error("%s", line);
	}
	return 0;
}

static int claim_add(int argc, char **argv)
{
	const char *path = NULL;
	int rc = operand(argc, argv, "usage: moat ca claim add CA.pem", &path);
	if (rc != 0) {
		return rc < 0 ? CLI_OK : rc;
	}
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	char *pem = NULL;
	size_t len = 0;
	char sha[MOAT_SHA256_HEX_LEN + 1];
	if (moat_fs_read_all(path, MOAT_CERT_FILE_MAX_BYTES, &pem, &len, &err) != 0 ||
	    cli_open(MOAT_DEPLOY_WRITE, &d, &err) != 0 ||
	    moat_deploy_claim_ca_add(d, pem, len, sha, &err) != 0) {
		free(pem);
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	free(pem);
	moat_deploy_close(d);
	if (cli_globals.json) {
		printf("{\"result\":\"added\",\"sha256\":\"%s\"}\n", sha);
	} else {
		printf("added claim CA %s\n", sha);
	}
	return CLI_OK;
}

struct list_state {
	size_t n;
};

static int print_ca(const struct moat_claim_ca *ca, void *ctx)
{
	struct list_state *l = ctx;
	char at[MOAT_TIME_ISO_LEN];
	moat_time_iso(ca->added_at, at);
	if (cli_globals.json) {
		printf("%s{\"sha256\":\"%s\",\"subject\":", l->n ? ",\n " : "", ca->sha256_hex);
		cli_json_string(stdout, ca->subject);
		printf(",\"added_at\":\"%s\"}", at);
	} else {
		printf("%s  %s  ", ca->sha256_hex, at);
		cli_json_string(stdout, ca->subject);
		printf("\n");
	}
	l->n++;
	return 0;
}

static int claim_list(int argc, char **argv)
{
	int rc = operand(argc, argv, "usage: moat ca claim list [--json]", NULL);
	if (rc != 0) {
		return rc < 0 ? CLI_OK : rc;
	}
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	struct list_state l = {0};
	if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0) {
		return cli_fail(&err);
	}
	if (cli_globals.json) {
		printf("[");
	}
	rc = moat_registry_claim_ca_foreach(moat_deploy_registry(d), print_ca, &l, &err);
	if (cli_globals.json) {
		printf("]\n");
	}
	moat_deploy_close(d);
	return rc != 0 ? cli_fail(&err) : CLI_OK;
}

static int claim_remove(int argc, char **argv)
{
	const char *sha = NULL;
	int rc = operand(argc, argv, "usage: moat ca claim remove SHA256", &sha);
	if (rc != 0) {
		return rc < 0 ? CLI_OK : rc;
	}
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	if (cli_open(MOAT_DEPLOY_WRITE, &d, &err) != 0 ||
	    moat_registry_claim_ca_remove(moat_deploy_registry(d), sha, &err) != 0) {
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	moat_deploy_close(d);
	if (cli_globals.json) {
		printf("{\"result\":\"removed\",\"sha256\":");
		cli_json_string(stdout, sha);
		printf("}\n");
	} else {
		printf("removed claim CA %s\n", sha);
	}
	return CLI_OK;
}

int ca_claim_main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "add") == 0) {
		return claim_add(argc - 1, argv + 1);
	}
	if (strcmp(argv[1], "list") == 0) {
		return claim_list(argc - 1, argv + 1);
	}
	if (strcmp(argv[1], "remove") == 0) {
		return claim_remove(argc - 1, argv + 1);
	}
	return cli_usage_error("unknown subcommand 'ca claim %s' (see moat ca claim --help)",
			       argv[1]);
}
