/* cli.h: what every `moat` subcommand group shares.
 *
 * A group is a file src/cli/<group>.c with `int <group>_main(int argc, char **argv)`, listed
 * in the table in main.c. argv[0] is the group name. Groups parse their options with
 * moat_opts_parse (moat/opts.h; the global options --dir, --passphrase-file and --json,
 * cli_common_opts, are accepted by every group and stored in cli_globals), print results on stdout
 * and errors once on stderr as "moat: <message>", and return an exit status.
 */
#ifndef MOAT_CLI_H
#define MOAT_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <openssl/types.h>

#include "moat/deploy.h"
#include "moat/err.h"
#include "moat/opts.h"

struct moat_registry;

/* Group entry points (one file each, listed in main.c's table). Declared here so every
 * group file sees its own prototype. */
int init_main(int argc, char **argv);
int ca_main(int argc, char **argv);
int ca_claim_main(int argc, char **argv);
int device_main(int argc, char **argv);
int device_tag_main(int argc, char **argv);
int group_main(int argc, char **argv);
int job_main(int argc, char **argv);
int identity_main(int argc, char **argv);
int cert_main(int argc, char **argv);
int broker_main(int argc, char **argv);
int up_main(int argc, char **argv);
int down_main(int argc, char **argv);
int status_main(int argc, char **argv);
int net_main(int argc, char **argv);
int fw_main(int argc, char **argv);
int sim_main(int argc, char **argv);
int cmd_main(int argc, char **argv);
int watch_main(int argc, char **argv);
int backup_main(int argc, char **argv);
int restore_main(int argc, char **argv);
int config_main(int argc, char **argv);
int audit_main(int argc, char **argv);
int doctor_main(int argc, char **argv);
int dashboard_main(int argc, char **argv);
int registry_main(int argc, char **argv);

struct moat_audit_result;
struct audit_live_opts {
	const char *netns;     /* --netns: a network namespace of this host with an address in a
				* device zone, from which the [network] policy is probed; or NULL */
	bool net_only;	       /* --net-only: the network probes alone (no identity is issued) */
	int64_t event_wait_ms; /* --event-wait: for a refusal's security event; 0: 3 s */
};
/* `moat audit --live` (audit_live.c): probes the running deployment into r, one check per
 * probe (a PASS ran clean, a FAIL is a finding, a SKIP "could not check"); *run_id gets the
 * run's id (9 bytes). 0, or MOAT_E* when the audit could not run (err). */
MOAT_MUST_CHECK int audit_live_run(struct moat_audit_result *r, char run_id[9],
				   const struct audit_live_opts *opts, struct moat_err *err);
int events_main(int argc, char **argv);
int fleet_main(int argc, char **argv);

/* Exit statuses shared by all groups. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

struct cli_globals {
	const char *dir;	     /* --dir */
	const char *passphrase_file; /* --passphrase-file */
	bool json;		     /* --json */
};
extern struct cli_globals cli_globals;

/* Prints "moat: <msg>" to stderr and returns CLI_FAIL. */
int cli_fail(const struct moat_err *err);
/* Prints "moat: <formatted>" to stderr and returns CLI_USAGE. */
int cli_usage_error(const char *fmt, ...) MOAT_PRINTF(1, 2);

/* Options every group accepts (--dir, --passphrase-file, --json, stored in cli_globals):
 * the .common table of every group's moat_opts_spec. CLI_OPTS names the fields every group's
 * spec shares. */
extern const struct moat_opt cli_common_opts[];
#define CLI_OPTS .prog = "moat", .common = cli_common_opts

/* MOAT_OPT_FN converter for --key-type into the enum moat_key_type at dst. */
int cli_opt_key_type(void *dst, const char *value, struct moat_err *err);

/* A duration option of whole seconds in [min_s, max_s] into *out_s. The unit is required
 * (30s, 5m, 1h: moat_duration_ms_parse, like every duration moat reads), so a bare number
 * is refused; every message starts with opt ("--interval: '2': give a unit ..."). */
int cli_opt_seconds(const char *opt, const char *value, int64_t min_s, int64_t max_s,
		    int64_t *out_s, struct moat_err *err);

/* A command's --arg key=value list (moat cmd, moat job run). */
struct moat_msg_command;
struct cli_arg_list {
	const char *v[8 + 1]; /* MOAT_MSG_ARGS_MAX */
	size_t n;
};
/* MOAT_OPT_FN converter for --arg into the struct cli_arg_list at dst. */
int cli_command_add_arg(void *dst, const char *value, struct moat_err *err);
/* The --arg list into cmd (its name set): update_interval's interval is a duration with its
 * unit, sent as whole seconds, and required. */
MOAT_MUST_CHECK int cli_command_args(struct moat_msg_command *cmd, const struct cli_arg_list *args,
				     struct moat_err *err);

/* MOAT_OPT_FN converter for an option known but not taken here: plain bad usage. */
int cli_opt_refuse(void *dst, const char *value, struct moat_err *err);

/* A group's answer to no subcommand, --help or -h (and "help" when help_word): the usage on
 * stdout (CLI_OK), or on stderr without a subcommand (CLI_USAGE). Returns
 * MOAT_OPTS_CONTINUE when argv[1] is none of these. */
int cli_group_help(int argc, char **argv, const char *usage, bool help_word);

/* Locates and opens the deployment (mode MOAT_DEPLOY_READ or _WRITE). */
MOAT_MUST_CHECK int cli_open(int mode, struct moat_deploy **out, struct moat_err *err);
/* Opens for writing, able to sign (moat_deploy_signer): with the online issuing CA when the
 * deployment has one, else by unlocking the root as cli_open_root does. */
MOAT_MUST_CHECK int cli_open_unlocked(struct moat_deploy **out, struct moat_err *err);
/* Unlocks the root of an open deployment with the passphrase (as cli_open_root). */
MOAT_MUST_CHECK int cli_unlock_root(struct moat_deploy *d, struct moat_err *err);
/* Opens for writing and unlocks the root CA key with the passphrase from
 * --passphrase-file, $MOAT_CA_PASSPHRASE or a tty prompt. */
MOAT_MUST_CHECK int cli_open_root(struct moat_deploy **out, struct moat_err *err);
/* The client-id suffix of this run of tool ("cmd" -> "cmd-<pid>"): each run of `moat cmd`
 * and `moat watch` is its own broker session (identity.h). Valid until the next call. */
const char *cli_session_suffix(const char *tool);

/* The CA passphrase: --passphrase-file, then $MOAT_CA_PASSPHRASE, then a prompt when stdin
 * is a tty (confirm: ask twice). buf receives it NUL-terminated; wipe it after use. */
MOAT_MUST_CHECK int cli_passphrase(char *buf, size_t size, bool confirm, struct moat_err *err);

/* An export (`moat device export`, export.c): the files of one identity in one format, held
 * in memory until written. */
#define CLI_EXPORT_MAX_FILES 6
struct cli_export_file {
	char name[MOAT_ID_BUF_LEN + 16]; /* inside the output directory */
	char *data;
	size_t len;
	mode_t mode;
};
struct cli_export {
	struct cli_export_file files[CLI_EXPORT_MAX_FILES];
	size_t count;
	bool enrolling; /* agent format for a device that enrolls itself: no key exported */
};
/* Builds every file of identity id in format (pem, p12 under password, c-header, agent)
 * in out; nothing is written. Free out with cli_export_free (done here on failure). */
MOAT_MUST_CHECK int cli_export_prepare(struct moat_deploy *d, const char *id, const char *format,
				       const char *password, struct cli_export *out,
				       struct moat_err *err);
/* MOAT_EEXIST naming the first file of x already in out_dir, unless force; else 0. */
MOAT_MUST_CHECK int cli_export_check(const struct cli_export *x, const char *out_dir, bool force,
				     struct moat_err *err);
/* Writes x into out_dir (created 0700 when missing) all or nothing: refused as
 * cli_export_check says, then every file staged, fsynced, and renamed in once all are. */
MOAT_MUST_CHECK int cli_export_write(const struct cli_export *x, const char *out_dir, bool force,
				     struct moat_err *err);
/* Wipes and frees the files of x. */
void cli_export_free(struct cli_export *x);

/* The PKCS#11 module's path for a key in a token: flag (--pkcs11-module) when given, else
 * moat.conf's [pki] pkcs11_module (d may be NULL), else NULL (then only a URI's
 * module-path can name it). Owned by flag or d. */
const char *cli_pkcs11_module(const struct moat_deploy *d, const char *flag);
/* Loads the private key uri names from its token (moat/pkcs11.h), the module found as
 * cli_pkcs11_module says (a URI's own module-path wins over moat.conf, a flag that differs
 * from it is refused), the PIN from pin_file, else $MOAT_PKCS11_PIN, else none. Caller
 * frees *out_key (which signs in the token). */
MOAT_MUST_CHECK int cli_token_key_load(const struct moat_deploy *d, const char *uri,
				       const char *module_flag, const char *pin_file,
				       EVP_PKEY **out_key, struct moat_err *err);

/* Installs SIGINT/SIGTERM handlers that set moat_deploy_interrupted. */
void cli_catch_interrupts(void);

/* JSON string escaping for --json output: quotes, backslashes and every control code
 * point of text.h (C0, DEL, C1, bidi controls) as \uXXXX, invalid UTF-8 as \ufffd. */
void cli_json_string(FILE *out, const char *s);

/* A device's last diagnostics report as moatd keeps it (registry.h): found false when it
 * never sent one; received its time (ISO 8601), text its fields for people ("name value,
 * ..."), json {"received":...,"received_ms":...,"fields":{...}}. Non-zero: unreadable. */
struct cli_diag {
	bool found;
	char received[32];
	char text[1024];
	size_t text_used;
	char json[4096];
	size_t json_used;
};
MOAT_MUST_CHECK int cli_last_diagnostics(struct moat_registry *reg, const char *id,
					 struct cli_diag *out, struct moat_err *err);

/* one when n is 1, else many: "1 day", "2 days". */
const char *cli_plural(long long n, const char *one, const char *many);

/* A duration in words for messages, in the largest unit that divides it: "1 day",
 * "36 hours", "90 minutes", "45 seconds". buf receives it; returns buf. */
const char *cli_duration_words(int64_t seconds, char *buf, size_t size);

/* What a device wrote, printed as text: len bytes of s through moat_text_escape (text.h),
 * so no control, C1, bidi control or invalid UTF-8 reaches the terminal raw. Every text
 * field of a device's message that `moat watch` or `moat cmd` prints goes through here. */
void cli_print_text(FILE *out, const char *s, size_t len);

/* A JSON document that moat_json_parse accepted, printed on one line: its whitespace
 * between tokens (\n, \r, \t) becomes spaces, so a device cannot break the one-line-per-
 * message output or move the cursor (inside strings the reader refused raw controls). */
void cli_print_json_raw(FILE *out, const char *json, size_t len);

#endif
