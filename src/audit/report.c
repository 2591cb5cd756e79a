/* report.c: the writers of an audit's results (audit.h): text, JSON, SARIF 2.1.0, JUnit.
 * Every string in a result was cleaned by the collector (no control code point, valid
 * UTF-8), so JSON needs only '"' and '\' escaped and XML its five entities. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "moat/audit.h"

static bool same_check(const struct moat_audit_check *a, const struct moat_audit_check *b)
{
	return a == b || strcmp(a->id, b->id) == 0;
}

static void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\') {
			fputc('\\', out);
		}
		fputc(*s, out);
	}
	fputc('"', out);
}

static void xml_str(FILE *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			fputs("&amp;", out);
			break;
		case '<':
			fputs("&lt;", out);
			break;
		case '>':
			fputs("&gt;", out);
			break;
		case '"':
			fputs("&quot;", out);
			break;
		case '\'':
			fputs("&apos;", out);
			break;
		default:
			fputc(*s, out);
		}
	}
}

/* A path as a URI reference: RFC 3986 unreserved characters and '/' as they are, every
 * other byte percent-encoded. */
static void uri_path(FILE *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~/", *p)) {
			fputc(*p, out);
		} else {
			fprintf(out, "%%%02X", *p);
		}
	}
}

static int finish(FILE *out, struct moat_err *err)
{
	if (fflush(out) != 0 || ferror(out)) {
		return moat_err_errno(err, MOAT_EIO, errno ? errno : EIO,
				      "writing the audit report");
	}
	return 0;
}

/* Indexes of the findings, worst first, in the order added within a severity. */
static size_t *order_worst_first(const struct moat_audit_result *r)
{
	size_t *idx = malloc((r->count ? r->count : 1) * sizeof(*idx));
	if (!idx) {
		return NULL;
	}
	size_t n = 0;
	for (int sev = MOAT_AUDIT_CRITICAL; sev >= MOAT_AUDIT_INFO; sev--) {
		for (size_t i = 0; i < r->count; i++) {
			if ((int)r->findings[i].severity == sev) {
				idx[n++] = i;
			}
		}
	}
	return idx;
}

static void count_by_severity(const struct moat_audit_result *r, size_t counts[5])
{
	memset(counts, 0, 5 * sizeof(counts[0]));
	for (size_t i = 0; i < r->count; i++) {
		if ((unsigned)r->findings[i].severity <= MOAT_AUDIT_CRITICAL) {
			counts[r->findings[i].severity]++;
		}
	}
}

int moat_audit_write_text(FILE *out, const struct moat_audit_result *r, struct moat_err *err)
{
	size_t *idx = order_worst_first(r);
	if (!idx) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	for (size_t k = 0; k < r->count; k++) {
		const struct moat_audit_finding *f = &r->findings[idx[k]];
		char sev[16];
		const char *name = moat_audit_severity_name(f->severity);
		size_t i = 0;
		for (; name[i] && i + 1 < sizeof(sev); i++) {
			sev[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
		}
		sev[i] = '\0';
		fprintf(out, "%-8s %s: %s\n", sev, f->check->id, f->title);
		if (f->evidence[0]) {
			fprintf(out, "         evidence: %s\n", f->evidence);
		}
		if (f->file[0]) {
			if (f->line > 0) {
				fprintf(out, "         where:    %s:%d\n", f->file, f->line);
			} else {
				fprintf(out, "         where:    %s\n", f->file);
			}
		}
		if (f->fix[0]) {
			fprintf(out, "         fix:      %s\n", f->fix);
		}
		fprintf(out, "         serves:   %s; OWASP IoT %s\n", f->check->checklist,
			f->check->owasp);
	}
	free(idx);
	size_t counts[5];
	count_by_severity(r, counts);
	fprintf(out, "%zu %s run, %zu %s: %zu critical, %zu high, %zu medium, %zu low, %zu info\n",
		r->check_count, r->check_count == 1 ? "check" : "checks", r->count,
		r->count == 1 ? "finding" : "findings", counts[MOAT_AUDIT_CRITICAL],
		counts[MOAT_AUDIT_HIGH], counts[MOAT_AUDIT_MEDIUM], counts[MOAT_AUDIT_LOW],
		counts[MOAT_AUDIT_INFO]);
	return finish(out, err);
}

int moat_audit_write_json(FILE *out, const struct moat_audit_result *r, struct moat_err *err)
{
	fputs("{\"findings\":[", out);
	for (size_t i = 0; i < r->count; i++) {
		const struct moat_audit_finding *f = &r->findings[i];
		fputs(i ? ",{" : "{", out);
		fputs("\"id\":", out);
		json_str(out, f->check->id);
		fputs(",\"severity\":", out);
		json_str(out, moat_audit_severity_name(f->severity));
		fputs(",\"title\":", out);
		json_str(out, f->title);
		fputs(",\"evidence\":", out);
		json_str(out, f->evidence);
		fputs(",\"fix\":", out);
		json_str(out, f->fix);
		fputs(",\"checklist\":", out);
		json_str(out, f->check->checklist);
		fputs(",\"owasp\":", out);
		json_str(out, f->check->owasp);
		fputs(",\"file\":", out);
		json_str(out, f->file);
		fprintf(out, ",\"line\":%d}", f->line);
	}
	fputs("],\"checks\":[", out);
	for (size_t i = 0; i < r->check_count; i++) {
		if (i) {
			fputc(',', out);
		}
		json_str(out, r->checks[i]->id);
	}
	size_t counts[5];
	count_by_severity(r, counts);
	fputs("],\"summary\":{", out);
	for (int s = MOAT_AUDIT_CRITICAL; s >= MOAT_AUDIT_INFO; s--) {
		fprintf(out, "\"%s\":%zu,", moat_audit_severity_name((enum moat_audit_severity)s),
			counts[s]);
	}
	fprintf(out, "\"total\":%zu}}\n", r->count);
	return finish(out, err);
}

static const char *sarif_level(enum moat_audit_severity s)
{
	if (s >= MOAT_AUDIT_HIGH) {
		return "error";
	}
	return s >= MOAT_AUDIT_LOW ? "warning" : "note";
}

static size_t check_index(const struct moat_audit_result *r, const struct moat_audit_check *c)
{
	for (size_t i = 0; i < r->check_count; i++) {
		if (same_check(r->checks[i], c)) {
			return i;
		}
	}
	return 0; /* moat_audit_add records every check it reports for */
}

int moat_audit_write_sarif(FILE *out, const struct moat_audit_result *r, const char *base_uri_dir,
			   struct moat_err *err)
{
	fputs("{\"$schema\":\"https://json.schemastore.org/sarif-2.1.0.json\","
	      "\"version\":\"2.1.0\",\"runs\":[{\"tool\":{\"driver\":{\"name\":\"moat\","
	      "\"version\":\"" MOAT_VERSION "\",\"rules\":[",
	      out);
	for (size_t i = 0; i < r->check_count; i++) {
		const struct moat_audit_check *c = r->checks[i];
		fputs(i ? ",{" : "{", out);
		fputs("\"id\":", out);
		json_str(out, c->id);
		fputs(",\"shortDescription\":{\"text\":", out);
		json_str(out, c->summary);
		fputs("},\"defaultConfiguration\":{\"level\":", out);
		json_str(out, sarif_level(c->severity));
		fputs("},\"properties\":{\"severity\":", out);
		json_str(out, moat_audit_severity_name(c->severity));
		fputs(",\"checklist\":", out);
		json_str(out, c->checklist);
		fputs(",\"owasp\":", out);
		json_str(out, c->owasp);
		fputs(",\"tags\":[\"security\"]}}", out);
	}
	fputs("]}}", out);
	if (base_uri_dir && base_uri_dir[0] == '/') {
		fputs(",\"originalUriBaseIds\":{\"DEPLOYDIR\":{\"uri\":\"file://", out);
		uri_path(out, base_uri_dir);
		if (base_uri_dir[strlen(base_uri_dir) - 1] != '/') {
			fputc('/', out);
		}
		fputs("\"}}", out);
	}
	fputs(",\"results\":[", out);
	for (size_t i = 0; i < r->count; i++) {
		const struct moat_audit_finding *f = &r->findings[i];
		fputs(i ? ",{" : "{", out);
		fputs("\"ruleId\":", out);
		json_str(out, f->check->id);
		fprintf(out, ",\"ruleIndex\":%zu,\"level\":", check_index(r, f->check));
		json_str(out, sarif_level(f->severity));
		fputs(",\"message\":{\"text\":", out);
		json_str(out, f->title);
		fputs("}", out);
		if (f->file[0]) {
			fputs(",\"locations\":[{\"physicalLocation\":{\"artifactLocation\":{"
			      "\"uri\":\"",
			      out);
			if (f->file[0] == '/') {
				fputs("file://", out);
				uri_path(out, f->file);
				fputs("\"}", out);
			} else {
				uri_path(out, f->file);
				fputs(base_uri_dir && base_uri_dir[0] == '/'
					      ? "\",\"uriBaseId\":\"DEPLOYDIR\"}"
					      : "\"}",
				      out);
			}
			if (f->line > 0) {
				fprintf(out, ",\"region\":{\"startLine\":%d}", f->line);
			}
			fputs("}}]", out);
		}
		fputs(",\"properties\":{\"severity\":", out);
		json_str(out, moat_audit_severity_name(f->severity));
		fputs(",\"evidence\":", out);
		json_str(out, f->evidence);
		fputs(",\"fix\":", out);
		json_str(out, f->fix);
		fputs("}}", out);
	}
	fputs("]}]}\n", out);
	return finish(out, err);
}

int moat_audit_write_junit(FILE *out, const struct moat_audit_result *r, struct moat_err *err)
{
	size_t failures = 0;
	for (size_t c = 0; c < r->check_count; c++) {
		for (size_t i = 0; i < r->count; i++) {
			if (same_check(r->findings[i].check, r->checks[c]) &&
			    r->findings[i].severity > MOAT_AUDIT_INFO) {
				failures++;
				break;
			}
		}
	}
	fprintf(out,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<testsuites name=\"moat audit\" tests=\"%zu\" failures=\"%zu\" errors=\"0\">\n"
		"<testsuite name=\"moat audit\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" "
		"skipped=\"0\">\n",
		r->check_count, failures, r->check_count, failures);
	for (size_t c = 0; c < r->check_count; c++) {
		const struct moat_audit_check *chk = r->checks[c];
		const struct moat_audit_finding *worst = NULL;
		size_t n = 0;
		for (size_t i = 0; i < r->count; i++) {
			const struct moat_audit_finding *f = &r->findings[i];
			if (!same_check(f->check, chk)) {
				continue;
			}
			n++;
			if (!worst || f->severity > worst->severity) {
				worst = f;
			}
		}
		fputs("<testcase classname=\"moat.audit\" name=\"", out);
		xml_str(out, chk->id);
		fputs("\">\n", out);
		if (worst && worst->severity > MOAT_AUDIT_INFO) {
			fputs("<failure type=\"", out);
			xml_str(out, moat_audit_severity_name(worst->severity));
			fputs("\" message=\"", out);
			xml_str(out, worst->title);
			fputs("\">", out);
		} else if (worst) {
			fputs("<system-out>", out);
		}
		for (size_t i = 0; i < r->count && n; i++) {
			const struct moat_audit_finding *f = &r->findings[i];
			if (!same_check(f->check, chk)) {
				continue;
			}
			fprintf(out, "[%s] ", moat_audit_severity_name(f->severity));
			xml_str(out, f->title);
			if (f->evidence[0]) {
				fputs("\n  evidence: ", out);
				xml_str(out, f->evidence);
			}
			if (f->file[0]) {
				fputs("\n  where: ", out);
				xml_str(out, f->file);
				if (f->line > 0) {
					fprintf(out, ":%d", f->line);
				}
			}
			if (f->fix[0]) {
				fputs("\n  fix: ", out);
				xml_str(out, f->fix);
			}
			fputc('\n', out);
		}
		if (worst && worst->severity > MOAT_AUDIT_INFO) {
			fputs("</failure>\n", out);
		} else if (worst) {
			fputs("</system-out>\n", out);
		}
		fputs("</testcase>\n", out);
	}
	fputs("</testsuite>\n</testsuites>\n", out);
	return finish(out, err);
}
