/* rollout.c: the pure rules of groups and phased rollouts (moat/rollout.h): the --where
 * parser and its evaluation, tags, phase lists, ranking, device states and the decision a
 * rollout's tick takes. Everything here is a function of its arguments.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "moat/identity.h"
#include "moat/rollout.h"
#include "moat/timeutil.h"

/* ---- the --where parser: recursive descent over a token stream ---- */

struct lexer {
	const char *text;
	size_t pos;
	struct moat_where *w;
	struct moat_err *err;
	int depth;
};

static bool is_value_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == ':' || c == '+' || c == '-';
}

static void skip_space(struct lexer *lx)
{
	while (lx->text[lx->pos] == ' ' || lx->text[lx->pos] == '\t') {
		lx->pos++;
	}
}

static int fail_at(struct lexer *lx, const char *what)
{
	return moat_err_set(lx->err, MOAT_EINVAL, "--where: %s at position %zu", what, lx->pos + 1);
}

/* A word (value characters); its length, 0 when none. */
static size_t word_len(const struct lexer *lx)
{
	size_t n = 0;
	while (is_value_char(lx->text[lx->pos + n])) {
		n++;
	}
	return n;
}

static bool take_keyword(struct lexer *lx, const char *kw)
{
	skip_space(lx);
	size_t n = word_len(lx);
	if (n == strlen(kw) && strncmp(lx->text + lx->pos, kw, n) == 0) {
		lx->pos += n;
		return true;
	}
	return false;
}

static int new_node(struct lexer *lx, enum moat_where_op op)
{
	if (lx->w->count >= MOAT_WHERE_MAX_NODES) {
		return fail_at(lx, "too many conditions");
	}
	int i = lx->w->count++;
	memset(&lx->w->nodes[i], 0, sizeof(lx->w->nodes[i]));
	lx->w->nodes[i].op = op;
	lx->w->nodes[i].left = lx->w->nodes[i].right = -1;
	return i;
}

static const struct {
	const char *name;
	enum moat_where_attr attr;
} attrs[] = {
	{"type", MOAT_WHERE_TYPE},	   {"tag", MOAT_WHERE_TAG},
	{"release", MOAT_WHERE_RELEASE},   {"zone", MOAT_WHERE_ZONE},
	{"cert_age", MOAT_WHERE_CERT_AGE},
};

static int parse_expr(struct lexer *lx);

static int parse_comparison(struct lexer *lx)
{
	skip_space(lx);
	size_t n = word_len(lx);
	int a = -1;
	for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
		if (n == strlen(attrs[i].name) &&
		    strncmp(lx->text + lx->pos, attrs[i].name, n) == 0) {
			a = (int)i;
		}
	}
	if (a < 0) {
		return fail_at(lx, n ? "unknown attribute (type, tag, release, zone, cert_age)"
				     : "attribute expected");
	}
	lx->pos += n;
	skip_space(lx);
	const char *p = lx->text + lx->pos;
	enum moat_where_op op;
	size_t oplen = 1;
	if (p[0] == '!' && p[1] == '=') {
		op = MOAT_WHERE_NE, oplen = 2;
	} else if (p[0] == '<' && p[1] == '=') {
		op = MOAT_WHERE_LE, oplen = 2;
	} else if (p[0] == '>' && p[1] == '=') {
		op = MOAT_WHERE_GE, oplen = 2;
	} else if (p[0] == '=') {
		op = MOAT_WHERE_EQ;
	} else if (p[0] == '<') {
		op = MOAT_WHERE_LT;
	} else if (p[0] == '>') {
		op = MOAT_WHERE_GT;
	} else {
		return fail_at(lx, "operator expected (=, !=, <, <=, >, >=)");
	}
	bool ordered = op != MOAT_WHERE_EQ && op != MOAT_WHERE_NE;
	if (ordered != (attrs[a].attr == MOAT_WHERE_CERT_AGE)) {
		return fail_at(lx, ordered ? "only cert_age is compared with <, <=, >, >="
					   : "cert_age is compared with <, <=, >, >=");
	}
	lx->pos += oplen;
	skip_space(lx);
	size_t vlen = word_len(lx);
	if (vlen == 0) {
		return fail_at(lx, "value expected");
	}
	if (vlen > MOAT_WHERE_VALUE_MAX_LEN) {
		return fail_at(lx, "value too long");
	}
	int i = new_node(lx, op);
	if (i < 0) {
		return i;
	}
	struct moat_where_node *nd = &lx->w->nodes[i];
	nd->attr = attrs[a].attr;
	memcpy(nd->value, lx->text + lx->pos, vlen);
	nd->value[vlen] = '\0';
	if (nd->attr == MOAT_WHERE_CERT_AGE) {
		int64_t ms = 0;
		struct moat_err e = {0};
		if (moat_duration_ms_parse(nd->value, &ms, &e) != 0) {
			return fail_at(lx, "cert_age needs a duration with its unit (30d, 12h)");
		}
		nd->seconds = ms / 1000;
	}
	lx->pos += vlen;
	return i;
}

static int parse_factor(struct lexer *lx)
{
	if (++lx->depth > MOAT_WHERE_MAX_DEPTH) {
		return fail_at(lx, "nested too deeply");
	}
	int r;
	skip_space(lx);
	if (take_keyword(lx, "not")) {
		int sub = parse_factor(lx);
		if (sub < 0) {
			return sub;
		}
		if ((r = new_node(lx, MOAT_WHERE_NOT)) < 0) {
			return r;
		}
		lx->w->nodes[r].left = sub;
	} else if (lx->text[lx->pos] == '(') {
		lx->pos++;
		if ((r = parse_expr(lx)) < 0) {
			return r;
		}
		skip_space(lx);
		if (lx->text[lx->pos] != ')') {
			return fail_at(lx, "')' expected");
		}
		lx->pos++;
	} else {
		r = parse_comparison(lx);
	}
	lx->depth--;
	return r;
}

static int parse_chain(struct lexer *lx, const char *kw, enum moat_where_op op,
		       int (*sub)(struct lexer *))
{
	int left = sub(lx);
	while (left >= 0 && take_keyword(lx, kw)) {
		int right = sub(lx);
		if (right < 0) {
			return right;
		}
		int n = new_node(lx, op);
		if (n < 0) {
			return n;
		}
		lx->w->nodes[n].left = left;
		lx->w->nodes[n].right = right;
		left = n;
	}
	return left;
}

static int parse_term(struct lexer *lx)
{
	return parse_chain(lx, "and", MOAT_WHERE_AND, parse_factor);
}

static int parse_expr(struct lexer *lx)
{
	return parse_chain(lx, "or", MOAT_WHERE_OR, parse_term);
}

int moat_where_parse(const char *text, struct moat_where *out, struct moat_err *err)
{
	memset(out, 0, sizeof(*out));
	size_t len = strnlen(text, MOAT_WHERE_MAX_LEN + 1);
	if (len > MOAT_WHERE_MAX_LEN) {
		return moat_err_set(err, MOAT_EINVAL, "--where: longer than %d bytes",
				    MOAT_WHERE_MAX_LEN);
	}
	struct lexer lx = {.text = text, .w = out, .err = err};
	int root = parse_expr(&lx);
	if (root >= 0) {
		skip_space(&lx);
		if (lx.text[lx.pos] != '\0') {
			root = fail_at(&lx, "'and', 'or' or the end expected");
		}
	}
	if (root < 0) {
		memset(out, 0, sizeof(*out));
		return MOAT_EINVAL;
	}
	out->root = root;
	return 0;
}

static bool has_tag(const struct moat_device_attrs *dev, const char *prefix, const char *tag)
{
	size_t pl = strlen(prefix);
	for (size_t i = 0; i < dev->tag_count; i++) {
		const char *t = dev->tags[i];
		if (strncmp(t, prefix, pl) == 0 && strcmp(t + pl, tag) == 0) {
			return true;
		}
	}
	return false;
}

static bool eval(const struct moat_where *w, int i, const struct moat_device_attrs *dev)
{
	const struct moat_where_node *n = &w->nodes[i];
	switch (n->op) {
	case MOAT_WHERE_AND:
		return eval(w, n->left, dev) && eval(w, n->right, dev);
	case MOAT_WHERE_OR:
		return eval(w, n->left, dev) || eval(w, n->right, dev);
	case MOAT_WHERE_NOT:
		return !eval(w, n->left, dev);
	default:
		break;
	}
	if (n->attr == MOAT_WHERE_CERT_AGE) {
		if (dev->cert_age_s < 0) {
			return false;
		}
		switch (n->op) {
		case MOAT_WHERE_LT:
			return dev->cert_age_s < n->seconds;
		case MOAT_WHERE_LE:
			return dev->cert_age_s <= n->seconds;
		case MOAT_WHERE_GT:
			return dev->cert_age_s > n->seconds;
		default:
			return dev->cert_age_s >= n->seconds;
		}
	}
	bool eq;
	switch (n->attr) {
	case MOAT_WHERE_TYPE:
		eq = strcmp(dev->type ? dev->type : "", n->value) == 0;
		break;
	case MOAT_WHERE_RELEASE:
		eq = strcmp(dev->release ? dev->release : "", n->value) == 0;
		break;
	case MOAT_WHERE_TAG:
		eq = has_tag(dev, "", n->value);
		break;
	default: /* zone */
		eq = has_tag(dev, "zone:", n->value);
		break;
	}
	return n->op == MOAT_WHERE_EQ ? eq : !eq;
}

bool moat_where_match(const struct moat_where *w, const struct moat_device_attrs *dev)
{
	return w->count > 0 && eval(w, w->root, dev);
}

int moat_tag_check(const char *tag, struct moat_err *err)
{
	size_t n = strnlen(tag, MOAT_TAG_MAX_LEN + 1);
	bool ok = n > 0 && n <= MOAT_TAG_MAX_LEN &&
		  ((tag[0] >= 'a' && tag[0] <= 'z') || (tag[0] >= '0' && tag[0] <= '9'));
	for (size_t i = 0; ok && i < n; i++) {
		char c = tag[i];
		ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		     c == ':' || c == '-';
	}
	if (!ok) {
		return moat_err_set(err, MOAT_EINVAL,
				    "tag '%.80s': 1 to %d characters of a-z 0-9 . _ : -, starting "
				    "with a letter or digit",
				    tag, MOAT_TAG_MAX_LEN);
	}
	return 0;
}

int moat_group_name_check(const char *name, struct moat_err *err)
{
	int rc = moat_identity_name_check(name, err);
	if (rc != 0) {
		moat_err_prefix(err, "group name");
	}
	return rc;
}

/* ---- phases ---- */

int moat_rollout_phases_parse(const char *text, int *out_pct, int *out_count, struct moat_err *err)
{
	int count = 0;
	const char *p = text;
	*out_count = 0;
	for (;;) {
		int v = 0;
		size_t digits = 0;
		while (p[digits] >= '0' && p[digits] <= '9' && digits < 4) {
			v = v * 10 + (p[digits] - '0');
			digits++;
		}
		if (digits == 0 || digits > 3 || p[digits] != '%') {
			return moat_err_set(err, MOAT_EINVAL,
					    "--phases: '%.80s': percentages with '%%' separated by "
					    "commas expected (1%%,10%%,100%%)",
					    text);
		}
		if (count >= MOAT_ROLLOUT_PHASES_MAX) {
			return moat_err_set(err, MOAT_EINVAL, "--phases: more than %d phases",
					    MOAT_ROLLOUT_PHASES_MAX);
		}
		if (v < 1 || v > 100 || (count > 0 && v <= out_pct[count - 1])) {
			return moat_err_set(err, MOAT_EINVAL,
					    "--phases: each percentage between 1%% and 100%%, "
					    "each larger than the one before");
		}
		out_pct[count++] = v;
		p += digits + 1;
		if (*p == '\0') {
			break;
		}
		if (*p != ',') {
			return moat_err_set(err, MOAT_EINVAL, "--phases: ',' expected after %d%%",
					    v);
		}
		p++;
	}
	if (out_pct[count - 1] != 100) {
		return moat_err_set(err, MOAT_EINVAL, "--phases: the last phase must be 100%%");
	}
	*out_count = count;
	return 0;
}

void moat_rollout_phases_format(const int *pct, int count, char *buf, size_t size)
{
	size_t off = 0;
	if (size) {
		buf[0] = '\0';
	}
	for (int i = 0; i < count && off < size; i++) {
		int n = snprintf(buf + off, size - off, "%s%d%%", i ? "," : "", pct[i]);
		if (n < 0) {
			break;
		}
		off += (size_t)n;
	}
}

uint64_t moat_rollout_rank(const uint8_t key[MOAT_ROLLOUT_KEY_BYTES], const char *device_id)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	if (!HMAC(EVP_sha256(), key, MOAT_ROLLOUT_KEY_BYTES, (const unsigned char *)device_id,
		  strlen(device_id), md, &md_len) ||
	    md_len < 8) {
		/* cannot be reported here: the device ranks last, in the last phase */
		return UINT64_MAX;
	}
	uint64_t v = 0;
	for (int i = 0; i < 8; i++) {
		v = (v << 8) | md[i];
	}
	return v;
}

int moat_rollout_phase_of(size_t pos, size_t n, const int *pct, int count)
{
	for (int k = 0; k < count; k++) {
		size_t upto = (n * (size_t)pct[k] + 99) / 100;
		if (pos < upto) {
			return k;
		}
	}
	return count - 1;
}

/* ---- states and decisions ---- */

static const char *const dev_state_names[MOAT_RD_STATE_COUNT] = {
	"offered", "downloading", "installed", "confirmed", "reverted", "refused", "silent",
};

const char *moat_rollout_dev_state_name(enum moat_rollout_dev_state s)
{
	return (unsigned)s < MOAT_RD_STATE_COUNT ? dev_state_names[s] : "unknown";
}

enum moat_rollout_dev_state moat_rollout_dev_state(const char *stage, bool running_new,
						   int later_running, int64_t offered_at,
						   int64_t silent_s, int64_t now)
{
	if (stage) {
		if (strcmp(stage, "confirmed") == 0) {
			return MOAT_RD_CONFIRMED;
		}
		if (strcmp(stage, "reverted") == 0) {
			return MOAT_RD_REVERTED;
		}
		if (strcmp(stage, "refused") == 0) {
			return MOAT_RD_REFUSED;
		}
		if (strcmp(stage, "installed") == 0 || strcmp(stage, "verified") == 0) {
			/* on trial, unless it has reported what it runs since: its outcome
			 * ("confirmed" or "reverted") went out while moatd was away (a restart)
			 * and was not heard, but a device on trial reports nothing before its
			 * outcome, so what it runs after installing the release is the outcome */
			if (later_running > 0) {
				return MOAT_RD_CONFIRMED;
			}
			return later_running < 0 ? MOAT_RD_REVERTED : MOAT_RD_INSTALLED;
		}
		if (running_new) {
			return MOAT_RD_CONFIRMED; /* restarted on it since confirming */
		}
		return MOAT_RD_DOWNLOADING;
	}
	if (running_new) {
		return MOAT_RD_CONFIRMED;
	}
	return now - offered_at >= silent_s ? MOAT_RD_SILENT : MOAT_RD_OFFERED;
}

static const char *const rollout_state_names[] = {
	"running", "paused", "halted", "aborted", "completed",
};

const char *moat_rollout_state_name(enum moat_rollout_state s)
{
	return (unsigned)s <= MOAT_ROLLOUT_COMPLETED ? rollout_state_names[s] : "unknown";
}

int moat_rollout_state_parse(const char *name, enum moat_rollout_state *out)
{
	for (int i = 0; i <= (int)MOAT_ROLLOUT_COMPLETED; i++) {
		if (strcmp(name, rollout_state_names[i]) == 0) {
			*out = (enum moat_rollout_state)i;
			return 0;
		}
	}
	return MOAT_EINVAL;
}

enum moat_rollout_decision moat_rollout_decide(const struct moat_rollout_view *v, int64_t now)
{
	bool all_settled = true;
	for (int k = 0; k <= v->phase; k++) {
		const struct moat_rollout_phase_counts *c = &v->phases[k];
		/* silent devices fail: otherwise a release that bricks its devices' network
		 * would hold the rollout for ever instead of halting it */
		size_t failed = c->by_state[MOAT_RD_REVERTED] + c->by_state[MOAT_RD_REFUSED] +
				c->by_state[MOAT_RD_SILENT];
		/* accepted failures are the operator's: only those since count */
		size_t counted = failed - (c->accepted < failed ? c->accepted : failed);
		if (v->halt_failure_pct >= 0 && c->devices > 0 &&
		    counted * 100 > (size_t)v->halt_failure_pct * c->devices) {
			return MOAT_ROLLOUT_HALT_FAILURES;
		}
		/* settled: confirmed, or failed within the threshold (a device that reverted a
		 * release does not stage it again, and a silent one may never report: waiting for
		 * them would wait for ever) */
		all_settled = all_settled && c->by_state[MOAT_RD_CONFIRMED] + failed == c->devices;
	}
	/* new_signalled / new_total > old_signalled / old_total, without division */
	if (v->halt_on_events && v->new_signalled > 0 &&
	    v->new_signalled * (v->old_total ? v->old_total : 1) >
		    v->old_signalled * (v->new_total ? v->new_total : 1)) {
		return MOAT_ROLLOUT_HALT_SECURITY;
	}
	if (!all_settled || now - v->phase_started_at < v->soak_s) {
		return MOAT_ROLLOUT_WAIT;
	}
	return v->phase + 1 >= v->phase_count ? MOAT_ROLLOUT_COMPLETE : MOAT_ROLLOUT_ADVANCE;
}
