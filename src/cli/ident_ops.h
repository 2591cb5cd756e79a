/* ident_ops.h: the identity subcommands shared by `moat device` (role device) and `moat
 * identity` (any role): add, list, show, revoke, renew, export, unban,
 * disable, enable, delete. Each takes the group's argv
 * after the subcommand name (argv[0] is the subcommand) and returns an exit status. */
#ifndef MOAT_CLI_IDENT_OPS_H
#define MOAT_CLI_IDENT_OPS_H

/* role: the role these commands act on, or -1 for any (the `identity` group). group: the
 * group's name for messages ("device" or "identity"). */
struct ident_scope {
	int role;
	const char *group;
};

int ident_add(const struct ident_scope *scope, int argc, char **argv);
int ident_list(const struct ident_scope *scope, int argc, char **argv);
int ident_show(const struct ident_scope *scope, int argc, char **argv);
int ident_revoke(const struct ident_scope *scope, int argc, char **argv);
int ident_renew(const struct ident_scope *scope, int argc, char **argv);
int ident_export(const struct ident_scope *scope, int argc, char **argv);
int ident_unban(const struct ident_scope *scope, int argc, char **argv);
int ident_disable(const struct ident_scope *scope, int argc, char **argv);
int ident_enable(const struct ident_scope *scope, int argc, char **argv);
int ident_delete(const struct ident_scope *scope, int argc, char **argv);

/* Dispatches argv[1] to the matching ident_* function; prints the group's usage on --help. */
int ident_dispatch(const struct ident_scope *scope, int argc, char **argv, const char *usage);

#endif
