/* audit.c: `moat audit`. --live probes the running deployment (audit_live.c). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char audit_usage[] =
	"usage: moat audit --live [--json]\n"
	"\n"
	"--live: probe the running deployment from outside, as an attacker would, with\n"
	"throwaway identities audit-<run>* that the audit issues and deletes; every probe\n"
	"PASSes when it was refused and the refusal was recorded as a security event.\n"
	"Exit status: 0 every probe passed, 1 a probe failed, 2 the audit could not run.\n";

int audit_main(int argc, char **argv)
{
	bool live = false;
	const struct moat_opt opts[] = {
		{.name = "live", .kind = MOAT_OPT_FLAG, .dst = &live},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {
		CLI_OPTS,
		.usage = audit_usage,
		.opts = opts,
		.no_operands = true,
	};
	int next = 0;
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	if (!live) {
		return cli_usage_error("audit: only --live is available in this build");
	}
	return audit_live_main(argc, argv);
}
