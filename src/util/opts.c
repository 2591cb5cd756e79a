/* opts.c: the option table parser of opts.h. It turns the program's table (and the common
 * one) into getopt_long's struct option array, each entry's val being its index in the
 * joined table, runs getopt_long, and stores or converts each value as its entry's kind says.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "moat/opts.h"
#include "moat/timeutil.h"

/* getopt_long's vals for entries start here, above every one-letter option. */
#define OPTS_VAL_BASE 0x100
/* optstring: '+', then per entry a letter and ':', then the NUL. */
#define OPTS_SHORT_LEN (2 + 2 * MOAT_OPTS_MAX)

struct joined {
	const struct moat_opt *e[MOAT_OPTS_MAX];
	struct option lopts[MOAT_OPTS_MAX + 1];
	char shorts[OPTS_SHORT_LEN];
	size_t n;
};

static bool takes_value(enum moat_opt_kind kind)
{
	return kind == MOAT_OPT_STRING || kind == MOAT_OPT_INT || kind == MOAT_OPT_LIST ||
	       kind == MOAT_OPT_FN;
}

static void print_usage(FILE *out, const char *text)
{
	size_t len = strlen(text);
	fputs(text, out);
	if (len == 0 || text[len - 1] != '\n') {
		fputc('\n', out);
	}
}

int moat_opts_usage_error(const struct moat_opts_spec *spec)
{
	switch (spec->on_error) {
	case MOAT_OPTS_ERROR_LINE:
		if (spec->error_line) {
			fprintf(stderr, "%s: %s\n", spec->prog, spec->error_line);
		} else {
			fprintf(stderr, "%s: %.*s\n", spec->prog, (int)strcspn(spec->usage, "\n"),
				spec->usage);
		}
		break;
	case MOAT_OPTS_ERROR_USAGE:
		print_usage(stderr, spec->usage);
		break;
	case MOAT_OPTS_ERROR_QUIET:
		break;
	}
	return MOAT_OPTS_USAGE_EXIT;
}

/* Adds table's entries to j; false when they do not fit (a programming error). */
static bool join(struct joined *j, const struct moat_opt *table)
{
	for (; table && table->kind != MOAT_OPT_END; table++) {
		if (j->n == MOAT_OPTS_MAX) {
			return false;
		}
		bool value = takes_value(table->kind);
		j->e[j->n] = table;
		j->lopts[j->n] = (struct option){table->name,
						 value ? required_argument : no_argument, NULL,
						 OPTS_VAL_BASE + (int)j->n};
		if (table->letter) {
			size_t len = strlen(j->shorts);
			j->shorts[len++] = table->letter;
			if (value) {
				j->shorts[len++] = ':';
			}
			j->shorts[len] = '\0';
		}
		j->n++;
	}
	return true;
}

static const struct moat_opt *lookup(const struct joined *j, int c)
{
	if (c >= OPTS_VAL_BASE && c < OPTS_VAL_BASE + (int)j->n) {
		return j->e[c - OPTS_VAL_BASE];
	}
	for (size_t i = 0; c > 0 && i < j->n; i++) {
		if (j->e[i]->letter == (char)c) {
			return j->e[i];
		}
	}
	return NULL;
}

/* Stores one option. Returns MOAT_OPTS_CONTINUE or the exit status. */
static int apply(const struct moat_opts_spec *spec, const struct moat_opt *o, const char *value)
{
	struct moat_err err;
	int rc = 0;
	moat_err_clear(&err);
	switch (o->kind) {
	case MOAT_OPT_FLAG:
		*(bool *)o->dst = true;
		break;
	case MOAT_OPT_STRING:
		*(const char **)o->dst = value;
		break;
	case MOAT_OPT_INT:
		if (moat_int_parse(value, o->min, o->max, (int64_t *)o->dst, &err) != 0) {
			fprintf(stderr, "%s: --%s: %s\n", spec->prog, o->name, err.msg);
			return MOAT_OPTS_USAGE_EXIT;
		}
		break;
	case MOAT_OPT_LIST: {
		struct moat_opt_list *l = o->dst;
		if (l->count == l->max) {
			fprintf(stderr, "%s: at most %zu --%s\n", spec->prog, l->max, o->name);
			return MOAT_OPTS_USAGE_EXIT;
		}
		l->items[l->count++] = value;
		break;
	}
	case MOAT_OPT_FN:
	case MOAT_OPT_FN_FLAG:
		rc = o->fn(o->dst, value, &err);
		break;
	case MOAT_OPT_HELP:
		print_usage(stdout, o->text ? o->text : spec->usage);
		return 0;
	case MOAT_OPT_END:
		break;
	}
	if (rc == 0) {
		return MOAT_OPTS_CONTINUE;
	}
	if (err.msg[0] == '\0') {
		return moat_opts_usage_error(spec);
	}
	fprintf(stderr, "%s: %s\n", spec->prog, err.msg);
	return MOAT_OPTS_USAGE_EXIT;
}

int moat_opts_parse(const struct moat_opts_spec *spec, int argc, char **argv, int first,
		    int *out_next)
{
	struct joined j;
	memset(&j, 0, sizeof(j));
	if (spec->stop_at_operand) {
		j.shorts[0] = '+';
	}
	if (!join(&j, spec->opts) || !join(&j, spec->common)) {
		fprintf(stderr, "%s: more than %d options\n", spec->prog, MOAT_OPTS_MAX);
		return MOAT_OPTS_USAGE_EXIT;
	}
	int c;
	optind = first;
	while ((c = getopt_long(argc, argv, j.shorts, j.lopts, NULL)) != -1) {
		const struct moat_opt *o = lookup(&j, c);
		if (!o) {
			/* getopt_long has said what was wrong */
			return moat_opts_usage_error(spec);
		}
		int st = apply(spec, o, optarg);
		if (st != MOAT_OPTS_CONTINUE) {
			return st;
		}
	}
	if (spec->no_operands && optind != argc) {
		return moat_opts_usage_error(spec);
	}
	*out_next = optind;
	return MOAT_OPTS_CONTINUE;
}
