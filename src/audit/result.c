/* result.c: the audit's collector (audit.h). */
#include <stdlib.h>
#include <string.h>

#include "moat/audit.h"
#include "moat/text.h"

static const char *const severity_names[] = {"info", "low", "medium", "high", "critical"};

const char *moat_audit_severity_name(enum moat_audit_severity s)
{
	if ((unsigned)s > MOAT_AUDIT_CRITICAL) {
		return "unknown";
	}
	return severity_names[s];
}

int moat_audit_severity_parse(const char *what, const char *text, enum moat_audit_severity *out,
			      struct moat_err *err)
{
	for (size_t i = 0; i < sizeof(severity_names) / sizeof(severity_names[0]); i++) {
		if (strcmp(text, severity_names[i]) == 0) {
			*out = (enum moat_audit_severity)i;
			return 0;
		}
	}
	char shown[64];
	moat_text_escape(shown, sizeof(shown), text, strlen(text), MOAT_TEXT_QUOTED, NULL);
	return moat_err_set(err, MOAT_EINVAL,
			    "%s: '%s' is not a severity (info, low, medium, high, critical)", what,
			    shown);
}

void moat_audit_result_init(struct moat_audit_result *r)
{
	memset(r, 0, sizeof(*r));
}

void moat_audit_result_free(struct moat_audit_result *r)
{
	for (size_t i = 0; i < r->count; i++) {
		struct moat_audit_finding *f = &r->findings[i];
		free(f->title);
		free(f->evidence);
		free(f->fix);
		free(f->file);
	}
	free(r->findings);
	free(r->checks);
	memset(r, 0, sizeof(*r));
}

int moat_audit_ran(struct moat_audit_result *r, const struct moat_audit_check *c)
{
	for (size_t i = 0; i < r->check_count; i++) {
		if (r->checks[i] == c || strcmp(r->checks[i]->id, c->id) == 0) {
			return 0;
		}
	}
	if (r->check_count == r->check_cap) {
		size_t cap = r->check_cap ? r->check_cap * 2 : 32;
		const struct moat_audit_check **n = realloc(r->checks, cap * sizeof(*n));
		if (!n) {
			return MOAT_ENOMEM;
		}
		r->checks = n;
		r->check_cap = cap;
	}
	r->checks[r->check_count++] = c;
	return 0;
}

/* A copy of s with every control code point and invalid byte escaped (text.h). */
static char *clean_copy(const char *s)
{
	if (!s) {
		s = "";
	}
	size_t len = strlen(s);
	size_t size = len * MOAT_TEXT_ESCAPE_GROWTH + 1;
	char *out = malloc(size);
	if (out) {
		moat_text_escape(out, size, s, len, 0, NULL);
	}
	return out;
}

int moat_audit_add(struct moat_audit_result *r, const struct moat_audit_check *c,
		   enum moat_audit_severity sev, const char *title, const char *evidence,
		   const char *fix, const char *file, int line)
{
	int rc = moat_audit_ran(r, c);
	if (rc != 0) {
		return rc;
	}
	if (r->count == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 32;
		struct moat_audit_finding *n = realloc(r->findings, cap * sizeof(*n));
		if (!n) {
			return MOAT_ENOMEM;
		}
		r->findings = n;
		r->cap = cap;
	}
	struct moat_audit_finding f = {
		.check = c,
		.severity = sev,
		.title = clean_copy(title),
		.evidence = clean_copy(evidence),
		.fix = clean_copy(fix),
		.file = clean_copy(file),
		.line = line > 0 ? line : 0,
	};
	if (!f.title || !f.evidence || !f.fix || !f.file) {
		free(f.title);
		free(f.evidence);
		free(f.fix);
		free(f.file);
		return MOAT_ENOMEM;
	}
	r->findings[r->count++] = f;
	return 0;
}

int moat_audit_cannot(struct moat_audit_result *r, const struct moat_audit_check *c,
		      const char *msg)
{
	char title[MOAT_ERR_MSG_MAX + 32];
	snprintf(title, sizeof(title), "could not check: %s", msg);
	return moat_audit_add(r, c, MOAT_AUDIT_INFO, title, NULL, NULL, NULL, 0);
}

size_t moat_audit_count_at_least(const struct moat_audit_result *r, enum moat_audit_severity sev)
{
	size_t n = 0;
	for (size_t i = 0; i < r->count; i++) {
		if (r->findings[i].severity >= sev) {
			n++;
		}
	}
	return n;
}
