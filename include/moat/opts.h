/* opts.h: one option parser for every command line (the `moat` groups and the daemons).
 *
 * A program describes its options as a table (git's parse-options style): each entry names a
 * long option, an optional one-letter alias, what kind of argument it takes and where the
 * parsed value goes. moat_opts_parse runs getopt_long over argv with that table, stores each
 * value, and handles the cases every program used to write out itself: --help prints the
 * usage on stdout (exit 0), and bad usage (an unknown option, a missing argument, a value
 * that does not convert) prints one line on stderr (exit MOAT_OPTS_USAGE_EXIT).
 *
 * Error lines have the form "<prog>: <message>". getopt_long's own diagnostics (prefixed
 * with argv[0]) are kept, so what a program prints for bad usage is what it printed before.
 */
#ifndef MOAT_OPTS_H
#define MOAT_OPTS_H

#include <stdbool.h>
#include <stdint.h>

#include "moat/err.h"

/* Exit status of a program after bad usage. */
#define MOAT_OPTS_USAGE_EXIT 2
/* moat_opts_parse's result when the caller goes on (any other value is an exit status). */
#define MOAT_OPTS_CONTINUE (-1)
/* Entries in the tables of one parse, together. */
#define MOAT_OPTS_MAX 48

enum moat_opt_kind {
	MOAT_OPT_END = 0, /* ends a table (a zeroed entry) */
	MOAT_OPT_FLAG,	  /* no argument: sets the bool at .dst to true */
	MOAT_OPT_STRING,  /* argument: stores it (owned by argv) at .dst, a const char *; the last
			     one given wins */
	MOAT_OPT_INT,	  /* argument: moat_int_parse(.min, .max) into the int64_t at .dst;
			     refused as "--NAME: <why>" */
	MOAT_OPT_LIST,	  /* argument: appended to the struct moat_opt_list at .dst; refused
			     past its max as "at most N --NAME" */
	MOAT_OPT_FN,	  /* argument: .fn(.dst, value, err) */
	MOAT_OPT_FN_FLAG, /* no argument: .fn(.dst, NULL, err) */
	MOAT_OPT_HELP,	  /* no argument: prints .text, else the spec's usage, on stdout; exit 0 */
};

struct moat_opt {
	const char *name; /* long name without "--" */
	enum moat_opt_kind kind;
	char letter; /* one-letter alias ("-h"), or 0 */
	void *dst;   /* where the value goes; for FN kinds, the converter's context */
	int64_t min; /* MOAT_OPT_INT bounds */
	int64_t max;
	/* FN kinds: converts value (NULL for MOAT_OPT_FN_FLAG). Returns 0, or a negative MOAT_E*
	 * code with err's message (printed as "<prog>: <message>"); an empty message means plain
	 * bad usage (printed as the spec's on_error says). Either way the program then exits
	 * MOAT_OPTS_USAGE_EXIT. */
	int (*fn)(void *dst, const char *value, struct moat_err *err);
	const char *text; /* MOAT_OPT_HELP: printed instead of the usage (a version line) */
};

/* MOAT_OPT_LIST's destination: the values given, in order (owned by argv). */
struct moat_opt_list {
	const char **items; /* the caller's array of max entries */
	size_t max;
	size_t count;
};

/* What bad usage prints on stderr (besides getopt_long's own diagnostic). */
enum moat_opts_on_error {
	MOAT_OPTS_ERROR_LINE = 0, /* "<prog>: <error_line>", else "<prog>: <usage's first line>" */
	MOAT_OPTS_ERROR_USAGE,	  /* the whole usage text */
	MOAT_OPTS_ERROR_QUIET,	  /* nothing more */
};

struct moat_opts_spec {
	const char *prog;	       /* prefix of error lines */
	const char *usage;	       /* help text; a missing final newline is added */
	const struct moat_opt *opts;   /* the program's table, ended by a zeroed entry */
	const struct moat_opt *common; /* options every command of a program takes, or NULL */
	enum moat_opts_on_error on_error;
	const char *error_line; /* MOAT_OPTS_ERROR_LINE: this instead of the first line */
	bool stop_at_operand;	/* options end at the first operand (a command to run) */
	bool no_operands;	/* an operand is bad usage */
};

/* Parses argv[first..argc) against spec's tables (getopt_long, with permutation unless
 * stop_at_operand). On MOAT_OPTS_CONTINUE every option is stored and *out_next is the index
 * of the first operand; any other return is the status the program MUST exit with now, its
 * output already printed: 0 after a MOAT_OPT_HELP entry, MOAT_OPTS_USAGE_EXIT after bad
 * usage. Values stored as strings point into argv. getopt's optind is left equal to
 * *out_next. Not reentrant (getopt's state). */
int moat_opts_parse(const struct moat_opts_spec *spec, int argc, char **argv, int first,
		    int *out_next);

/* Prints what bad usage prints for spec (its on_error) and returns MOAT_OPTS_USAGE_EXIT: for
 * callers that find the operands wrong. */
int moat_opts_usage_error(const struct moat_opts_spec *spec);

#endif
