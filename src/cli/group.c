/* group.c: `moat group add|list|show|remove` (named device filters) and `moat device
 * tag|untag` (dispatched from device.c). Filters are checked by moat_where_parse before
 * they are stored, and evaluated per device wherever they are used (moat_group_members).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "moat/release.h"
#include "moat/timeutil.h"

static const char group_usage[] =
	"usage: moat group <subcommand> [options]\n\n"
	"  add NAME --where EXPR      a group of the devices EXPR matches (evaluated when used)\n"
	"  list [--json]              every group and its filter\n"
	"  show NAME [--json]         the group's filter and its active devices now\n"
	"  remove NAME                forget the group (rollouts keep the devices they took)\n\n"
	"EXPR: conditions joined by and, or, not and parentheses; each ATTR OP VALUE:\n"
	"  type=T  tag=X  release=V (running)  zone=Z (tag zone:Z)  with = or !=\n"
	"  cert_age<30d  (age of the current certificate; <, <=, >, >=, a duration)\n"
	"Example: --where 'type=sensor and tag=plant1 and not release=1.2.0'\n";

static int parse_group_opts(int argc, char **argv, const char *usage, const char **where, int *next)
{
	const struct moat_opt opts[] = {
		{.name = "where", .kind = MOAT_OPT_STRING, .dst = where},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = usage, .opts = opts};
	return moat_opts_parse(&spec, argc, argv, 2, next);
}

static int cmd_add(const char *name, const char *where)
{
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	struct moat_where w;
	if (!where) {
		return cli_usage_error("group add: --where EXPR is required");
	}
	if (moat_group_name_check(name, &err) != 0 || moat_where_parse(where, &w, &err) != 0) {
		return cli_usage_error("group add: %s", err.msg);
	}
	struct moat_group g = {.created_at = moat_time_now()};
	snprintf(g.name, sizeof(g.name), "%s", name);
	snprintf(g.where, sizeof(g.where), "%s", where);
	if (cli_open(MOAT_DEPLOY_WRITE, &d, &err) != 0 ||
	    moat_registry_group_insert(moat_deploy_registry(d), &g, &err) != 0) {
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	moat_deploy_close(d);
	if (cli_globals.json) {
		printf("{\"group\":");
		cli_json_string(stdout, name);
		printf(",\"where\":");
		cli_json_string(stdout, where);
		printf("}\n");
	} else {
		printf("group %s: %s\n", name, where);
	}
	return CLI_OK;
}

struct list_ctx {
	size_t n;
};

static int list_cb(const struct moat_group *g, void *vctx)
{
	struct list_ctx *c = vctx;
	if (cli_globals.json) {
		printf("%s{\"group\":", c->n ? "," : "");
		cli_json_string(stdout, g->name);
		printf(",\"where\":");
		cli_json_string(stdout, g->where);
		printf("}");
	} else {
		printf("%-24s %s\n", g->name, g->where);
	}
	c->n++;
	return 0;
}

static int member_cb(const struct moat_device_row *row, void *vctx)
{
	struct list_ctx *c = vctx;
	if (cli_globals.json) {
		printf("%s", c->n ? "," : "");
		cli_json_string(stdout, row->id);
	} else {
		printf("  %s  type=%s release=%s\n", row->id, row->type,
		       row->release[0] ? row->release : "-");
	}
	c->n++;
	return 0;
}

static int cmd_list_show(const char *name)
{
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	struct list_ctx c = {0};
	int rc = cli_open(MOAT_DEPLOY_READ, &d, &err);
	if (rc != 0) {
		return cli_fail(&err);
	}
	struct moat_registry *reg = moat_deploy_registry(d);
	if (!name) {
		printf("%s", cli_globals.json ? "[" : "");
		rc = moat_registry_group_foreach(reg, list_cb, &c, &err);
		printf("%s", cli_globals.json ? "]\n" : "");
	} else {
		struct moat_group g;
		if ((rc = moat_registry_group_get(reg, name, &g, &err)) == 0) {
			if (cli_globals.json) {
				printf("{\"group\":");
				cli_json_string(stdout, g.name);
				printf(",\"where\":");
				cli_json_string(stdout, g.where);
				printf(",\"devices\":[");
			} else {
				printf("group:   %s\nwhere:   %s\ndevices:\n", g.name, g.where);
			}
			rc = moat_group_members(reg, name, NULL, moat_time_now(), member_cb, &c,
						&err);
			if (cli_globals.json) {
				printf("]}\n");
			} else {
				printf("%zu %s\n", c.n,
				       cli_plural((long long)c.n, "device", "devices"));
			}
		}
	}
	moat_deploy_close(d);
	return rc != 0 ? cli_fail(&err) : CLI_OK;
}

static int cmd_remove(const char *name)
{
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	if (cli_open(MOAT_DEPLOY_WRITE, &d, &err) != 0 ||
	    moat_registry_group_remove(moat_deploy_registry(d), name, &err) != 0) {
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	moat_deploy_close(d);
	printf("group %s removed\n", name);
	return CLI_OK;
}

int group_main(int argc, char **argv)
{
	int st = cli_group_help(argc, argv, group_usage, true);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	const char *cmd = argv[1];
	const char *where = NULL;
	int next = 0;
	st = parse_group_opts(argc, argv, group_usage, &where, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	int nops = argc - next;
	if (strcmp(cmd, "list") == 0 && nops == 0 && !where) {
		return cmd_list_show(NULL);
	}
	if (strcmp(cmd, "add") == 0 && nops == 1) {
		return cmd_add(argv[next], where);
	}
	if (strcmp(cmd, "show") == 0 && nops == 1 && !where) {
		return cmd_list_show(argv[next]);
	}
	if (strcmp(cmd, "remove") == 0 && nops == 1 && !where) {
		return cmd_remove(argv[next]);
	}
	return cli_usage_error("group: '%s': usage: moat group add NAME --where EXPR | list | "
			       "show NAME | remove NAME",
			       cmd);
}

int device_tag_main(int argc, char **argv)
{
	bool untag = strcmp(argv[0], "untag") == 0;
	static const char usage[] = "usage: moat device tag ID TAG...\n"
				    "       moat device untag ID TAG...\n"
				    "Tags: a-z 0-9 . _ : - (zone:NAME gives the device a zone).\n";
	const struct moat_opt opts[] = {{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
					{0}};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = usage, .opts = opts};
	int next = 0;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	struct moat_err err = {0};
	if (argc - next < 2) {
		return cli_usage_error("device %s: ID and at least one TAG expected", argv[0]);
	}
	const char *id = argv[next];
	if (moat_identity_name_check(id, &err) != 0) {
		return cli_usage_error("device %s: %s", argv[0], err.msg);
	}
	for (int i = next + 1; i < argc; i++) {
		if (moat_tag_check(argv[i], &err) != 0) {
			return cli_usage_error("device %s: %s", argv[0], err.msg);
		}
	}
	struct moat_deploy *d = NULL;
	if (cli_open(MOAT_DEPLOY_WRITE, &d, &err) != 0) {
		return cli_fail(&err);
	}
	struct moat_registry *reg = moat_deploy_registry(d);
	struct moat_identity ident;
	int rc = moat_registry_identity_get(reg, id, &ident, &err);
	if (rc == 0 && ident.role != MOAT_ROLE_DEVICE) {
		rc = moat_err_set(&err, MOAT_EINVAL, "%s is not a device", id);
	}
	/* all tags or none */
	if (rc == 0 && (rc = moat_registry_begin(reg, &err)) == 0) {
		for (int i = next + 1; i < argc && rc == 0; i++) {
			rc = untag ? moat_registry_tag_remove(reg, id, argv[i], &err)
				   : moat_registry_tag_add(reg, id, argv[i], &err);
		}
		if (rc == 0) {
			rc = moat_registry_commit(reg, &err);
		} else {
			moat_registry_rollback(reg);
		}
	}
	moat_deploy_close(d);
	if (rc != 0) {
		return cli_fail(&err);
	}
	if (cli_globals.json) {
		printf("{\"id\":");
		cli_json_string(stdout, id);
		printf(",\"%s\":%d}\n", untag ? "untagged" : "tagged", argc - next - 1);
	} else {
		printf("%s: %d %s %s\n", id, argc - next - 1,
		       cli_plural(argc - next - 1, "tag", "tags"), untag ? "removed" : "added");
	}
	return CLI_OK;
}
