/* audit.c: the static audit's driver (moat_audit_static) and what its checks share. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_internal.h"
#include "moat/text.h"

const struct moat_audit_check *const moat_audit_static_checks[] = {
	&audit_pki_root_expiry,
	&audit_pki_issuer_expiry,
	&audit_pki_ca_key,
	&audit_pki_key_files,
	&audit_pki_cert_expiry,
	&audit_pki_past_issuer,
	&audit_pki_crl,
	&audit_pki_duplicate_key,
	&audit_pki_weak_key,
	&audit_pki_key_custody,
	&audit_pki_revoked_in_policy,
	&audit_drift_crl,
	&audit_drift_policy,
	&audit_drift_acl,
	&audit_drift_conf,
	&audit_drift_live_broker,
	&audit_drift_live_policy,
	&audit_broker_tls,
	&audit_broker_client_cert,
	&audit_broker_anonymous,
	&audit_broker_listener,
	&audit_broker_limits,
	&audit_broker_persistence,
	&audit_broker_logging,
	&audit_broker_plugin,
	&audit_broker_acl_grants,
	&audit_fw_threshold,
	&audit_fw_revoked_key,
	&audit_fw_release_expiry,
	&audit_fw_below_floor,
	&audit_fw_not_offered,
	&audit_fw_reverted,
	&audit_drift_releases,
	&audit_net_policy,
	&audit_net_live,
	&audit_net_iot_mgmt,
	&audit_net_iot_iot,
	&audit_mon_events,
	&audit_mon_sinks,
	&audit_mon_clock,
};
const size_t moat_audit_static_check_count =
	sizeof(moat_audit_static_checks) / sizeof(moat_audit_static_checks[0]);

static int nomem(struct audit_ctx *a)
{
	return moat_err_set(a->err, MOAT_ENOMEM, "audit: out of memory");
}

int audit_ran(struct audit_ctx *a, const struct moat_audit_check *c)
{
	return moat_audit_ran(a->r, c) != 0 ? nomem(a) : 0;
}

int audit_cannot(struct audit_ctx *a, const struct moat_audit_check *c, const char *msg)
{
	return moat_audit_cannot(a->r, c, msg) != 0 ? nomem(a) : 0;
}

int audit_add(struct audit_ctx *a, const struct moat_audit_check *c, enum moat_audit_severity sev,
	      const char *title, const char *evidence, const char *fix, const char *file, int line)
{
	struct audit_cap *cap = NULL;
	for (size_t i = 0; i < a->cap_count; i++) {
		if (a->caps[i].check == c) {
			cap = &a->caps[i];
		}
	}
	if (!cap && a->cap_count < AUDIT_CAPS_MAX) {
		cap = &a->caps[a->cap_count++];
		memset(cap, 0, sizeof(*cap));
		cap->check = c;
	}
	if (cap && cap->shown >= AUDIT_PER_CHECK_MAX) {
		if (cap->more == 0 || sev > cap->worst_more) {
			cap->worst_more = sev;
		}
		cap->more++;
		return 0;
	}
	if (cap) {
		cap->shown++;
	}
	return moat_audit_add(a->r, c, sev, title, evidence, fix, file, line) != 0 ? nomem(a) : 0;
}

static int flush_caps(struct audit_ctx *a)
{
	for (size_t i = 0; i < a->cap_count; i++) {
		const struct audit_cap *cap = &a->caps[i];
		if (cap->more == 0) {
			continue;
		}
		char title[1024];
		snprintf(title, sizeof(title), "and %zu more like the findings above", cap->more);
		if (moat_audit_add(a->r, cap->check, cap->worst_more, title,
				   "moat audit --json lists the first of each check only", NULL,
				   NULL, 0) != 0) {
			return nomem(a);
		}
	}
	return 0;
}

static int cmp_identity(const void *x, const void *y)
{
	return strcmp(((const struct moat_identity *)x)->id, ((const struct moat_identity *)y)->id);
}

const struct moat_identity *audit_identity(const struct audit_ctx *a, const char *id)
{
	struct moat_identity key;
	snprintf(key.id, sizeof(key.id), "%s", id);
	return bsearch(&key, a->ids, a->id_count, sizeof(*a->ids), cmp_identity);
}

const char *audit_when(int64_t t, int64_t now, char *buf, size_t size)
{
	int64_t d = t - now;
	int64_t days = (d < 0 ? -d : d) / 86400;
	if (d >= 0) {
		snprintf(buf, size, "in %lld %s", (long long)days, days == 1 ? "day" : "days");
	} else {
		snprintf(buf, size, "%lld %s ago", (long long)days, days == 1 ? "day" : "days");
	}
	return buf;
}

/* The next line of text at *pos not starting with skip (NULL: none); false at the end. */
static bool next_line(const char *t, size_t len, size_t *pos, const char *skip, const char **line,
		      size_t *line_len, int *lineno)
{
	while (*pos < len) {
		const char *s = t + *pos;
		const char *nl = memchr(s, '\n', len - *pos);
		size_t n = nl ? (size_t)(nl - s) : len - *pos;
		*pos += n + (nl ? 1 : 0);
		(*lineno)++;
		if (skip && n >= strlen(skip) && memcmp(s, skip, strlen(skip)) == 0) {
			continue;
		}
		*line = s;
		*line_len = n;
		return true;
	}
	return false;
}

static void show_line(char *out, size_t size, const char *s, size_t n, bool present)
{
	if (!present) {
		snprintf(out, size, "(end of file)");
		return;
	}
	if (n > 160) {
		n = 160;
	}
	moat_text_escape(out, size, s, n, 0, NULL);
}

int audit_first_diff(const char *want, size_t want_len, const char *have, size_t have_len,
		     const char *skip_prefix, char *want_line, char *have_line, size_t line_size)
{
	size_t wp = 0, hp = 0;
	int wl = 0, hl = 0;
	for (;;) {
		const char *ws = NULL, *hs = NULL;
		size_t wn = 0, hn = 0;
		bool w = next_line(want, want_len, &wp, skip_prefix, &ws, &wn, &wl);
		bool h = next_line(have, have_len, &hp, skip_prefix, &hs, &hn, &hl);
		if (!w && !h) {
			return 0;
		}
		if (w && h && wn == hn && memcmp(ws, hs, wn) == 0) {
			continue;
		}
		show_line(want_line, line_size, ws, wn, w);
		show_line(have_line, line_size, hs, hn, h);
		return h ? hl : hl + 1;
	}
}

struct collect_ctx {
	struct audit_ctx *a;
	size_t cap;
};

static int collect_cb(const struct moat_identity *ident, void *ctx)
{
	struct collect_ctx *c = ctx;
	struct audit_ctx *a = c->a;
	if (a->id_count == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		struct moat_identity *n = realloc(a->ids, cap * sizeof(*n));
		if (!n) {
			return MOAT_ENOMEM;
		}
		a->ids = n;
		c->cap = cap;
	}
	a->ids[a->id_count++] = *ident;
	return 0;
}

int moat_audit_static(struct moat_deploy *d, const struct moat_audit_opts *o,
		      struct moat_audit_result *r, struct moat_err *err)
{
	struct audit_ctx a = {.d = d, .o = o, .r = r, .dir = moat_deploy_dir(d), .err = err};
	struct collect_ctx c = {.a = &a};
	int rc = moat_registry_identity_foreach(moat_deploy_registry(d), -1, collect_cb, &c, err);
	if (rc == MOAT_ENOMEM) {
		rc = nomem(&a);
	}
	/* ORDER BY id in SQLite is the same byte order as strcmp for identity names */
	if (rc == 0 && (rc = audit_pki(&a)) == 0 && (rc = audit_broker(&a)) == 0 &&
	    (rc = audit_firmware(&a)) == 0 && (rc = audit_network(&a)) == 0 &&
	    (rc = audit_monitoring(&a)) == 0) {
		rc = flush_caps(&a);
	}
	free(a.ids);
	return rc;
}
