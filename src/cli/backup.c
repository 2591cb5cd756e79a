/* backup.c: `moat backup FILE` and `moat restore FILE` (moat/backup.h). */
#include <limits.h>
#include <stdio.h>

#include "cli.h"
#include "moat/backup.h"
#include "moat/config.h"
#include "moat/fsutil.h"
#include "moat/registry.h"

static const char backup_usage[] =
	"usage: moat backup FILE\n"
	"Writes the deployment (moat.conf, pki/, firmware/, broker/ and a consistent copy of\n"
	"registry.db taken by the registry's online backup) to FILE, a gzip'd tar with a SHA-256\n"
	"manifest, mode 0600. Safe while `moat up` runs; run/ and log/ stay out. Keys are as on\n"
	"disk: the root and firmware keys encrypted, the issuing CA's and devices' keys not, so\n"
	"keep FILE as safe as the deployment. FILE must be outside the deployment. A registry on\n"
	"PostgreSQL ([registry] url) is refused: back that database up with pg_dump.\n";

static const char restore_usage[] =
	"usage: moat restore FILE [--dir TARGET] [--check]\n"
	"Restores a backup made by `moat backup` into TARGET (--dir, else $MOAT_DIR, else the\n"
	"current directory), which must not exist or be empty. Every member is checked\n"
	"against the manifest (SHA-256, size, type, path) before TARGET appears; keys are\n"
	"0600 and, run as root, moatd's account gets what it owns. --check: only check FILE.\n";

static void print_stats(const char *what, const char *path, const struct moat_backup_stats *s)
{
	if (cli_globals.json) {
		printf("{\"%s\":", what);
		cli_json_string(stdout, path);
		printf(",\"files\":%zu,\"directories\":%zu,\"bytes\":%llu}\n", s->files, s->dirs,
		       (unsigned long long)s->bytes);
	} else {
		printf("%s %s: %zu files, %zu directories, %llu bytes\n", what, path, s->files,
		       s->dirs, (unsigned long long)s->bytes);
	}
}

/* A registry on PostgreSQL is refused before it is connected to (moat_backup_write says the
 * same once the deployment is open): the archive holds registry.db. */
static int refuse_postgresql(struct moat_err *err)
{
	char dir[PATH_MAX], conf[PATH_MAX], reg[PATH_MAX];
	struct moat_config *cfg = NULL;
	int rc = moat_deploy_locate(cli_globals.dir, dir, sizeof(dir), err);
	if (rc != 0 || (rc = moat_path_join(conf, sizeof(conf), err, "%s/moat.conf", dir)) != 0) {
		return rc;
	}
	if (moat_config_load(conf, &cfg, err) != 0) {
		*err = (struct moat_err){0}; /* cli_open says what is wrong with it */
		return 0;
	}
	if (moat_deploy_registry_location(dir, cfg, reg, sizeof(reg), err) != 0) {
		*err = (struct moat_err){0}; /* a bad url: cli_open says what is wrong with it */
	} else if (moat_registry_is_url(reg)) {
		rc = moat_err_set(err, MOAT_EINVAL, "%s", MOAT_BACKUP_PG_REFUSED);
	}
	moat_config_free(cfg);
	return rc;
}

int backup_main(int argc, char **argv)
{
	const struct moat_opt opts[] = {{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
					{0}};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = backup_usage, .opts = opts};
	int next = 0;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	if (next != argc - 1) {
		return cli_usage_error("usage: moat backup FILE");
	}
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	struct moat_backup_stats stats = {0};
	if (refuse_postgresql(&err) != 0) {
		return cli_fail(&err);
	}
	/* for writing: run/moat.lock held, so no command or moatd changes files meanwhile */
	if (cli_open(MOAT_DEPLOY_WRITE, &d, &err) != 0 ||
	    moat_backup_write(d, argv[next], &stats, &err) != 0) {
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	moat_deploy_close(d);
	print_stats("backup", argv[next], &stats);
	return CLI_OK;
}

int restore_main(int argc, char **argv)
{
	bool check = false;
	const struct moat_opt opts[] = {{.name = "check", .kind = MOAT_OPT_FLAG, .dst = &check},
					{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
					{0}};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = restore_usage, .opts = opts};
	int next = 0;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	if (next != argc - 1) {
		return cli_usage_error("usage: moat restore FILE [--dir TARGET] [--check]");
	}
	struct moat_err err = {0};
	struct moat_backup_stats stats = {0};
	if (check) {
		if (moat_backup_check(argv[next], &stats, &err) != 0) {
			return cli_fail(&err);
		}
		print_stats("checked", argv[next], &stats);
		return CLI_OK;
	}
	char target[PATH_MAX];
	if (moat_deploy_locate(cli_globals.dir, target, sizeof(target), &err) != 0 ||
	    moat_backup_restore(argv[next], target, &stats, &err) != 0) {
		return cli_fail(&err);
	}
	print_stats("restored", target, &stats);
	return CLI_OK;
}
