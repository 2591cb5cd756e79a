/* auditrun.c: run/audit-runs, a live audit's declared runs (auditrun.h). */
#include "moat/auditrun.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define TIME_MAX_MS (INT64_C(1) << 53)

static bool run_id_ok(const char *s)
{
	if (strlen(s) != MOAT_AUDIT_RUN_ID_LEN) {
		return false;
	}
	for (size_t i = 0; i < MOAT_AUDIT_RUN_ID_LEN; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
			return false;
		}
	}
	return true;
}

static bool address_ok(const char *s)
{
	unsigned char buf[16];
	return strlen(s) <= MOAT_AUDIT_RUN_ADDR_MAX_LEN &&
	       (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1);
}

static bool run_ok(const struct moat_audit_run *r)
{
	return run_id_ok(r->run) && address_ok(r->address) && r->from_ms >= 0 &&
	       r->until_ms <= TIME_MAX_MS && r->from_ms <= r->until_ms;
}

/* "<key>=<value>" at *p up to the next space or the end (end): value copied into out
 * (size bytes); *p moves past it and one space. */
static bool field(const char **p, const char *end, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);
	if ((size_t)(end - *p) < klen + 1 || memcmp(*p, key, klen) != 0 || (*p)[klen] != '=') {
		return false;
	}
	const char *v = *p + klen + 1;
	const char *sp = memchr(v, ' ', (size_t)(end - v));
	const char *stop = sp ? sp : end;
	size_t n = (size_t)(stop - v);
	if (n == 0 || n >= size) {
		return false;
	}
	memcpy(out, v, n);
	out[n] = '\0';
	*p = sp ? sp + 1 : end;
	return true;
}

static bool time_ok(const char *s, int64_t *out)
{
	int64_t v = 0;
	size_t n = strlen(s);
	if (n == 0 || n > 16) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return false;
		}
		v = v * 10 + (s[i] - '0');
	}
	if (v > TIME_MAX_MS) {
		return false;
	}
	*out = v;
	return true;
}

static bool parse_line(const char *s, const char *end, struct moat_audit_run *r)
{
	char from[24], until[24];
	memset(r, 0, sizeof(*r));
	return field(&s, end, "run", r->run, sizeof(r->run)) &&
	       field(&s, end, "address", r->address, sizeof(r->address)) &&
	       field(&s, end, "from_ms", from, sizeof(from)) &&
	       field(&s, end, "until_ms", until, sizeof(until)) && s == end &&
	       time_ok(from, &r->from_ms) && time_ok(until, &r->until_ms) && run_ok(r);
}

int moat_audit_runs_parse(const char *text, size_t len, struct moat_audit_runs *out,
			  struct moat_err *err)
{
	memset(out, 0, sizeof(*out));
	if (len > MOAT_AUDIT_RUNS_MAX_BYTES) {
		return moat_err_set(err, MOAT_EINVAL, "%s: more than %d bytes",
				    MOAT_AUDIT_RUNS_FILE, MOAT_AUDIT_RUNS_MAX_BYTES);
	}
	size_t pos = 0;
	int line = 0;
	while (pos < len) {
		line++;
		const char *s = text + pos;
		const char *nl = memchr(s, '\n', len - pos);
		if (!nl) {
			memset(out, 0, sizeof(*out));
			return moat_err_set(err, MOAT_EINVAL, "%s: line %d has no newline",
					    MOAT_AUDIT_RUNS_FILE, line);
		}
		if (out->n >= MOAT_AUDIT_RUNS_MAX) {
			memset(out, 0, sizeof(*out));
			return moat_err_set(err, MOAT_EINVAL, "%s: more than %d runs",
					    MOAT_AUDIT_RUNS_FILE, MOAT_AUDIT_RUNS_MAX);
		}
		if (!parse_line(s, nl, &out->r[out->n])) {
			memset(out, 0, sizeof(*out));
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: line %d is not \"run=<8 hex> address=<ip> "
					    "from_ms=<ms> until_ms=<ms>\"",
					    MOAT_AUDIT_RUNS_FILE, line);
		}
		out->n++;
		pos = (size_t)(nl - text) + 1;
	}
	return 0;
}

const struct moat_audit_run *moat_audit_runs_match(const struct moat_audit_runs *runs,
						   const char *address, int64_t t_ms)
{
	const struct moat_audit_run *best = NULL;
	if (!address || !address[0]) {
		return NULL;
	}
	for (size_t i = 0; i < runs->n; i++) {
		const struct moat_audit_run *r = &runs->r[i];
		if (strcmp(r->address, address) == 0 && t_ms >= r->from_ms &&
		    t_ms <= r->until_ms + MOAT_AUDIT_RUN_GRACE_MS &&
		    (!best || r->from_ms >= best->from_ms)) {
			best = r;
		}
	}
	return best;
}

int moat_audit_runs_put(struct moat_audit_runs *runs, const struct moat_audit_run *run,
			struct moat_err *err)
{
	if (!run_ok(run)) {
		return moat_err_set(err, MOAT_EINVAL, "%s: not a valid run declaration",
				    MOAT_AUDIT_RUNS_FILE);
	}
	for (size_t i = 0; i < runs->n; i++) {
		if (strcmp(runs->r[i].run, run->run) == 0) {
			runs->r[i] = *run;
			return 0;
		}
	}
	if (runs->n == MOAT_AUDIT_RUNS_MAX) {
		memmove(&runs->r[0], &runs->r[1], (MOAT_AUDIT_RUNS_MAX - 1) * sizeof(runs->r[0]));
		runs->n--;
	}
	runs->r[runs->n++] = *run;
	return 0;
}

size_t moat_audit_runs_format(const struct moat_audit_runs *runs, char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < runs->n && len < size; i++) {
		const struct moat_audit_run *r = &runs->r[i];
		int n = snprintf(buf + len, size - len,
				 "run=%s address=%s from_ms=%" PRId64 " until_ms=%" PRId64 "\n",
				 r->run, r->address, r->from_ms, r->until_ms);
		if (n < 0 || (size_t)n >= size - len) {
			break;
		}
		len += (size_t)n;
	}
	return len;
}
