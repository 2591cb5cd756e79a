/* audit.h: `moat audit`: checks of a deployment, each finding with an id, a severity, a
 * one-line finding, its evidence, the fix, the checklist row and OWASP IoT Top 10 (2018)
 * item it serves, and where it is (file and line); the collector every check reports to
 * and the writers of its results (text, JSON, SARIF 2.1.0, JUnit XML).
 *
 * Two halves, one contract:
 *  - the collector and the writers (src/audit/result.c, report.c) know nothing of
 *    deployments: any check, static or live (`moat audit --live`), describes itself with a
 *    static struct moat_audit_check, says it ran (moat_audit_ran) and reports what it
 *    found (moat_audit_add);
 *  - the static checks (moat_audit_static, src/audit/check_*.c) read the deployment
 *    directory, the registry and what the running system shows, and re-derive every
 *    generated file with the renderers that write them (broker, net), never a copy.
 *
 * Strings given to moat_audit_add are copied, with every control code point escaped
 * (text.h), so a finding that quotes a file or a device cannot break a terminal, a JSON
 * document or an XML one. Writers print the findings in the order they were added.
 */
#ifndef MOAT_AUDIT_H
#define MOAT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "moat/err.h"

struct moat_deploy;

enum moat_audit_severity {
	MOAT_AUDIT_INFO = 0,
	MOAT_AUDIT_LOW = 1,
	MOAT_AUDIT_MEDIUM = 2,
	MOAT_AUDIT_HIGH = 3,
	MOAT_AUDIT_CRITICAL = 4,
};
/* "info", "low", "medium", "high", "critical". */
const char *moat_audit_severity_name(enum moat_audit_severity s);
/* One of those names (--fail-on); MOAT_EINVAL naming what= and the accepted names. */
MOAT_MUST_CHECK int moat_audit_severity_parse(const char *what, const char *text,
					      enum moat_audit_severity *out, struct moat_err *err);

/* OWASP IoT Top 10 (2018) items, for struct moat_audit_check.owasp. */
#define MOAT_OWASP_I1 "I1 Weak, Guessable, or Hardcoded Passwords"
#define MOAT_OWASP_I2 "I2 Insecure Network Services"
#define MOAT_OWASP_I3 "I3 Insecure Ecosystem Interfaces"
#define MOAT_OWASP_I4 "I4 Lack of Secure Update Mechanism"
#define MOAT_OWASP_I5 "I5 Use of Insecure or Outdated Components"
#define MOAT_OWASP_I7 "I7 Insecure Data Transfer and Storage"
#define MOAT_OWASP_I8 "I8 Lack of Device Management"
#define MOAT_OWASP_I9 "I9 Insecure Default Settings"

/* What a check is, declared once as a static const by the code that runs it (a result
 * keeps pointers to it: it must outlive the result). Ids are unique across all checks: the
 * collector and the writers group by id, so live probes take ids of their own. */
struct moat_audit_check {
	const char *id;			   /* stable, "pki.ca_key": SARIF rule id, JUnit test
					    * name, docs/OPERATIONS.md "Auditing" table */
	enum moat_audit_severity severity; /* of its findings unless moat_audit_add says */
	const char *summary;		   /* what it checks, one line */
	const char *checklist;		   /* the deployment checklist row it serves */
	const char *owasp;		   /* MOAT_OWASP_I* */
};

/* One finding (all strings owned by the result, never NULL; "" when absent). */
struct moat_audit_finding {
	const struct moat_audit_check *check; /* id, checklist row, OWASP item */
	enum moat_audit_severity severity;
	char *title;	/* the one-line finding */
	char *evidence; /* what was seen: a value, a line, a command's answer */
	char *fix;	/* what to run: a `moat` command where one exists */
	char *file;	/* relative to the deployment directory, or absolute; "" for none */
	int line;	/* 1-based; 0 for none */
};

/* The collector: the checks that ran, in order, and their findings. Zero it with
 * moat_audit_result_init; free it with moat_audit_result_free. */
struct moat_audit_result {
	const struct moat_audit_check **checks;
	size_t check_count, check_cap;
	struct moat_audit_finding *findings;
	size_t count, cap;
};

void moat_audit_result_init(struct moat_audit_result *r);
void moat_audit_result_free(struct moat_audit_result *r);

/* Records that c ran (once per id; later calls are no-ops), so a clean check shows in
 * JUnit as a passed test case and in SARIF as a rule. moat_audit_add records it too. */
MOAT_MUST_CHECK int moat_audit_ran(struct moat_audit_result *r, const struct moat_audit_check *c);

/* Adds a finding of check c with severity sev (pass c->severity for its default): title the
 * one-line finding; evidence, fix and file may be NULL; line 0 for none. Every string is
 * copied (escaped as above). MOAT_ENOMEM. */
MOAT_MUST_CHECK int moat_audit_add(struct moat_audit_result *r, const struct moat_audit_check *c,
				   enum moat_audit_severity sev, const char *title,
				   const char *evidence, const char *fix, const char *file,
				   int line);

/* Records that check c could not run (a file unreadable, a tool missing) as an "info"
 * finding "could not check: <msg>"; the audit goes on. */
MOAT_MUST_CHECK int moat_audit_cannot(struct moat_audit_result *r, const struct moat_audit_check *c,
				      const char *msg);

/* The findings at or above sev. */
size_t moat_audit_count_at_least(const struct moat_audit_result *r, enum moat_audit_severity sev);

/* Writers. Each returns MOAT_EIO when out reports a write error. */
/* For people: one block per finding, worst first, then a summary line. */
MOAT_MUST_CHECK int moat_audit_write_text(FILE *out, const struct moat_audit_result *r,
					  struct moat_err *err);
/* One JSON object: {"findings":[{"id","severity","title","evidence","fix","checklist",
 * "owasp","file","line"}...],"checks":[ids],"summary":{"<severity>":n,...,"total":n}}. */
MOAT_MUST_CHECK int moat_audit_write_json(FILE *out, const struct moat_audit_result *r,
					  struct moat_err *err);
/* SARIF 2.1.0: one run, tool "moat" with one rule per check that ran, one result per
 * finding (ruleId, level error|warning|note, message, a physical location when it has a
 * file; uri relative to base_uri_dir, the deployment directory, when given). */
MOAT_MUST_CHECK int moat_audit_write_sarif(FILE *out, const struct moat_audit_result *r,
					   const char *base_uri_dir, struct moat_err *err);
/* JUnit XML: one testsuite "moat audit", one testcase per check that ran; a check with a
 * finding above info fails: one <failure> (type = its worst severity, message = that
 * finding's title) listing all its findings; one with info findings only passes, with them
 * in <system-out>. */
MOAT_MUST_CHECK int moat_audit_write_junit(FILE *out, const struct moat_audit_result *r,
					   struct moat_err *err);

/* ---- the static audit (src/audit/check_*.c) ---- */

struct moat_audit_opts {
	int64_t now;
	int64_t window_s; /* --window: certificates and releases expiring within it */
	bool system;	  /* also look at this host: the live nftables table, the running
			   * broker's start against mosquitto.conf, the clock (adjtimex) */
};

/* Runs every static check of the deployment d (opened for reading) into r. Fails
 * (MOAT_E*, err) only when the audit itself cannot run; a check that cannot read what it
 * needs reports it with moat_audit_cannot. */
MOAT_MUST_CHECK int moat_audit_static(struct moat_deploy *d, const struct moat_audit_opts *o,
				      struct moat_audit_result *r, struct moat_err *err);

/* Every static check, for the docs and `moat audit --list`. */
extern const struct moat_audit_check *const moat_audit_static_checks[];
extern const size_t moat_audit_static_check_count;

#endif
