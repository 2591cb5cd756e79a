/* fw_release.h: `moat fw publish|list|status` (fw_release.c), dispatched from fw.c. */
#ifndef MOAT_CLI_FW_RELEASE_H
#define MOAT_CLI_FW_RELEASE_H

/* argv[0] is the subcommand ("publish", "list" or "status"). */
int fw_release_main(int argc, char **argv);
/* argv[0] is "rollout" (fw_rollout.c). */
int fw_rollout_main(int argc, char **argv);

#endif
