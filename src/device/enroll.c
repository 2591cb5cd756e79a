/* enroll.c: a device's own identity (enroll_internal.h): the first enrollment
 * (simpleenroll, with a token or a claim certificate), renewal (simplereenroll with the
 * current certificate) once renew_at of its lifetime has passed, retries with back-off,
 * and the switch to a renewed identity only once the broker has accepted it.
 *
 * The key is made here (P-256), written 0600 before its CSR leaves, and never sent. The
 * EST calls run on the session's poll loop (est_call.c), so the MQTT session carries on
 * while a renewal is under way. Every refusal (the server's, or ours of its answer) is
 * logged as an event at error level: it is a trust boundary.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "moat/certinfo.h"
#include "moat/est_client.h"
#include "moat/fsutil.h"
#include "moat/log.h"
#include "moat/timeutil.h"

#include "enroll_internal.h"

#define REFUSALS_BEFORE_DROP 3 /* a renewed identity the broker refused this often is dropped */

enum op { OP_NONE, OP_ENROLL, OP_REENROLL };

struct gen {
	int n; /* 0: none */
	char cert[PATH_MAX], key[PATH_MAX];
	int64_t not_before; /* notBefore, or when the certificate arrived if later */
	int64_t not_after;
};

struct moat_enroll {
	struct moat_agent_conf conf;
	char host[256];
	int port;
	struct moat_enroll_pool *pool;
	struct gen cur, next;
	int cur_link, next_link; /* what the links name, usable or not (never swept) */
	bool attempt_next;	 /* the attempt in progress uses next */
	int next_refusals;	 /* connections with current while next was tried and failed */
	bool switch_wanted;	 /* a renewal landed: reconnect with it */
	/* the enrollment or renewal under way */
	enum op op;
	bool fetching_cacerts; /* the call in progress is the GET of cacerts for op */
	bool cacerts_tried;
	struct moat_est_call *call;
	bool counted; /* the call is counted in pool->running */
	EVP_PKEY *key;
	int key_gen; /* the generation whose directory holds key */
	unsigned char *csr;
	size_t csr_len;
	STACK_OF(X509) * issued;  /* the answer, while cacerts is fetched */
	STACK_OF(X509) * cacerts; /* intermediates from cacerts */
	int64_t next_try_ms;	  /* wall clock */
	unsigned failures;
	uint64_t rng;
	int last_rc; /* of the last finished attempt, for moat_enroll_now */
	struct moat_err last_err;
};

static void elog(const struct moat_enroll *e, enum moat_log_level level, const char *fmt, ...)
	MOAT_PRINTF(3, 4);
static void elog(const struct moat_enroll *e, enum moat_log_level level, const char *fmt, ...)
{
	va_list ap;
	if (e->conf.quiet && level < MOAT_LOG_ERROR) {
		return;
	}
	va_start(ap, fmt);
	moat_vlog(level, e->conf.id, fmt, ap);
	va_end(ap);
}

static int64_t wall_ms(void)
{
	return moat_time_wall_ms();
}

int64_t moat_enroll_renew_time(int64_t not_before, int64_t not_after, int percent)
{
	if (percent < 1) {
		percent = 1;
	} else if (percent > 99) {
		percent = 99;
	}
	int64_t life = not_after > not_before ? not_after - not_before : 0;
	return not_before + life / 100 * percent + life % 100 * percent / 100;
}

int64_t moat_enroll_backoff_ms(unsigned failures, int64_t min_ms, int64_t max_ms, int64_t left_ms,
			       uint64_t rnd)
{
	int64_t d = min_ms;
	for (unsigned i = 1; i < failures && d < max_ms; i++) {
		d *= 2;
	}
	if (d > max_ms) {
		d = max_ms;
	}
	d = d / 2 + (int64_t)(rnd % (uint64_t)(d / 2 + 1));
	if (left_ms >= 0 && d > left_ms / 2) {
		d = left_ms / 2;
	}
	if (d < min_ms / 2) {
		d = min_ms / 2;
	}
	return d;
}

static uint64_t rnd(struct moat_enroll *e)
{
	uint64_t x = e->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	e->rng = x ? x : 88172645463325252ULL;
	return x * 0x2545F4914F6CDD1DULL;
}

static int gen_path(const struct moat_enroll *e, int n, const char *file, char *buf, size_t size,
		    struct moat_err *err)
{
	if (file) {
		return moat_path_join(buf, size, err, "%s/gen-%d/%s", e->conf.enroll_dir, n, file);
	}
	return moat_path_join(buf, size, err, "%s/gen-%d", e->conf.enroll_dir, n);
}

/* "gen-<n>" with n in 1..INT_MAX/2, else 0. */
static int gen_number(const char *name)
{
	if (strncmp(name, "gen-", 4) != 0 || name[4] < '1' || name[4] > '9') {
		return 0;
	}
	int64_t v = 0;
	if (moat_int_parse(name + 4, 1, INT32_MAX / 2, &v, NULL) != 0) {
		return 0;
	}
	return (int)v;
}

/* Reads generation n's certificate into g; false (logged) when it is not usable. */
static bool gen_load(struct moat_enroll *e, int n, struct gen *g)
{
	struct moat_cert_info ci;
	struct moat_err err;
	memset(g, 0, sizeof(*g));
	if (gen_path(e, n, "cert.pem", g->cert, sizeof(g->cert), &err) != 0 ||
	    gen_path(e, n, "key.pem", g->key, sizeof(g->key), &err) != 0 ||
	    moat_cert_info_file(g->cert, &ci, &err) != 0) {
		elog(e, MOAT_LOG_WARN, "event=identity_unusable gen=%d error=\"%s\"", n, err.msg);
		return false;
	}
	if (!moat_fs_exists(g->key)) {
		elog(e, MOAT_LOG_WARN, "event=identity_unusable gen=%d error=\"no key.pem\"", n);
		return false;
	}
	g->n = n;
	g->not_before = ci.not_before;
	g->not_after = ci.not_after;
	/* the lifetime is counted from when the device got the certificate (cert.pem's
	 * mtime) when that is after notBefore: issuers backdate notBefore to absorb clock
	 * skew (moat by minutes), which would make a short-lived certificate look half used
	 * the moment it arrives */
	struct stat st;
	if (stat(g->cert, &st) == 0 && st.st_mtim.tv_sec > g->not_before &&
	    st.st_mtim.tv_sec < g->not_after) {
		g->not_before = st.st_mtim.tv_sec;
	}
	return true;
}

/* The generation a link names (0: none or not a generation). */
static int read_link(const struct moat_enroll *e, const char *name)
{
	char path[PATH_MAX], target[64];
	if (moat_path_join(path, sizeof(path), NULL, "%s/%s", e->conf.enroll_dir, name) != 0) {
		return 0;
	}
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0) {
		return 0;
	}
	target[n] = '\0';
	return gen_number(target);
}

/* Points link name at generation n, atomically (symlink beside it, rename over it). */
static int set_link(const struct moat_enroll *e, const char *name, int n, struct moat_err *err)
{
	char tmp[PATH_MAX], path[PATH_MAX], target[32];
	int rc;
	snprintf(target, sizeof(target), "gen-%d", n);
	if ((rc = moat_path_join(tmp, sizeof(tmp), err, "%s/.%s.tmp", e->conf.enroll_dir, name)) !=
		    0 ||
	    (rc = moat_path_join(path, sizeof(path), err, "%s/%s", e->conf.enroll_dir, name)) !=
		    0) {
		return rc;
	}
	(void)unlink(tmp);
	if (symlink(target, tmp) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", tmp);
	}
	if (rename(tmp, path) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", path);
		(void)unlink(tmp);
		return rc;
	}
	return e->conf.no_fsync ? 0 : moat_fs_sync_dir(e->conf.enroll_dir, err);
}

static void remove_gen(const struct moat_enroll *e, int n)
{
	char path[PATH_MAX];
	struct moat_err err;
	if (n > 0 && gen_path(e, n, NULL, path, sizeof(path), &err) == 0 &&
	    moat_fs_remove_tree(path, &err) != 0) {
		elog(e, MOAT_LOG_WARN, "event=identity_cleanup_failed error=\"%s\"", err.msg);
	}
}

/* Removes every generation no link names; the highest number seen in *out_max. */
static void sweep(struct moat_enroll *e, int *out_max)
{
	DIR *d = opendir(e->conf.enroll_dir);
	struct dirent *de;
	int max = 0;
	if (!d) {
		*out_max = 0;
		return;
	}
	while ((de = readdir(d)) != NULL) {
		int n = gen_number(de->d_name);
		if (n > max) {
			max = n;
		}
		if (n > 0 && n != e->cur.n && n != e->next.n && n != e->cur_link &&
		    n != e->next_link) {
			remove_gen(e, n);
		}
	}
	closedir(d);
	*out_max = max;
}

int moat_enroll_open(const struct moat_agent_conf *conf, struct moat_enroll **out,
		     struct moat_err *err)
{
	struct moat_enroll *e = calloc(1, sizeof(*e));
	int rc;
	*out = NULL;
	if (!e) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	e->conf = *conf;
	e->rng = (uint64_t)wall_ms() * 6364136223846793005ULL + (uintptr_t)e;
	if ((rc = moat_est_url_parse(conf->enroll_url, e->host, sizeof(e->host), &e->port, err)) !=
		    0 ||
	    (rc = moat_fs_mkdirs(conf->enroll_dir, 0700, err)) != 0) {
		moat_err_prefix(err, "[enroll]");
		free(e);
		return rc;
	}
	int n = read_link(e, "current");
	e->cur_link = n;
	if (n > 0 && !gen_load(e, n, &e->cur)) {
		e->cur.n = 0;
	}
	n = read_link(e, "next");
	e->next_link = n;
	if (n > 0 && n != e->cur.n && gen_load(e, n, &e->next)) {
		e->attempt_next = true; /* a renewal that was not yet proven before a restart */
	} else {
		e->next.n = 0;
	}
	int max = 0;
	sweep(e, &max);
	*out = e;
	return 0;
}

static void drop_call(struct moat_enroll *e)
{
	moat_est_call_free(e->call);
	e->call = NULL;
	if (e->counted && e->pool && e->pool->running > 0) {
		e->pool->running--;
	}
	e->counted = false;
}

/* Forgets the key in preparation (and its generation's directory). */
static void drop_key(struct moat_enroll *e)
{
	EVP_PKEY_free(e->key);
	e->key = NULL;
	free(e->csr);
	e->csr = NULL;
	e->csr_len = 0;
	if (e->key_gen > 0 && e->key_gen != e->cur_link && e->key_gen != e->next_link) {
		remove_gen(e, e->key_gen);
	}
	e->key_gen = 0;
}

static void end_op(struct moat_enroll *e)
{
	drop_call(e);
	drop_key(e);
	if (e->issued) {
		sk_X509_pop_free(e->issued, X509_free);
		e->issued = NULL;
	}
	e->op = OP_NONE;
	e->fetching_cacerts = false;
	e->cacerts_tried = false;
}

void moat_enroll_free(struct moat_enroll *e)
{
	if (!e) {
		return;
	}
	end_op(e);
	if (e->cacerts) {
		sk_X509_pop_free(e->cacerts, X509_free);
	}
	OPENSSL_cleanse(e->conf.enroll_token, sizeof(e->conf.enroll_token));
	free(e);
}

void moat_enroll_set_pool(struct moat_enroll *e, struct moat_enroll_pool *pool)
{
	e->pool = pool;
}

bool moat_enroll_ready(const struct moat_enroll *e)
{
	return e->cur.n > 0 || e->next.n > 0;
}

int64_t moat_enroll_not_after(const struct moat_enroll *e)
{
	return e->cur.n > 0 ? e->cur.not_after : e->next.not_after;
}

int moat_enroll_attempt(struct moat_enroll *e, const char **cert, const char **key)
{
	const struct gen *g;
	if (e->next.n > 0 && (e->attempt_next || e->cur.n == 0)) {
		e->attempt_next = true;
		g = &e->next;
	} else if (e->cur.n > 0) {
		e->attempt_next = false;
		g = &e->cur;
	} else {
		*cert = *key = NULL;
		return MOAT_ENOENT;
	}
	*cert = g->cert;
	*key = g->key;
	return 0;
}

/* The renewed identity is proven: it becomes current, the old one goes. */
static void commit_next(struct moat_enroll *e)
{
	char next_path[PATH_MAX], cur_path[PATH_MAX];
	struct moat_err err;
	int old = e->cur_link;
	if (moat_path_join(next_path, sizeof(next_path), &err, "%s/next", e->conf.enroll_dir) !=
		    0 ||
	    moat_path_join(cur_path, sizeof(cur_path), &err, "%s/current", e->conf.enroll_dir) !=
		    0) {
		elog(e, MOAT_LOG_ERROR, "event=identity_switch_failed error=\"%s\"", err.msg);
		return;
	}
	if (rename(next_path, cur_path) != 0) {
		moat_err_errno(&err, MOAT_EIO, errno, "%s", cur_path);
		elog(e, MOAT_LOG_ERROR, "event=identity_switch_failed error=\"%s\"", err.msg);
		return;
	}
	if (!e->conf.no_fsync && moat_fs_sync_dir(e->conf.enroll_dir, &err) != 0) {
		elog(e, MOAT_LOG_WARN, "event=identity_sync_failed error=\"%s\"", err.msg);
	}
	e->cur = e->next;
	e->cur_link = e->cur.n;
	e->next_link = 0;
	memset(&e->next, 0, sizeof(e->next));
	e->attempt_next = false;
	e->next_refusals = 0;
	e->failures = 0;
	e->next_try_ms = 0;
	remove_gen(e, old);
	elog(e, MOAT_LOG_INFO, "event=identity_switched gen=%d not_after=%lld", e->cur.n,
	     (long long)e->cur.not_after);
}

/* Drops the renewed identity (the broker keeps refusing it); a renewal is tried again. */
static void drop_next(struct moat_enroll *e)
{
	char path[PATH_MAX];
	if (moat_path_join(path, sizeof(path), NULL, "%s/next", e->conf.enroll_dir) == 0) {
		(void)unlink(path);
	}
	e->next_link = 0;
	remove_gen(e, e->next.n);
	memset(&e->next, 0, sizeof(e->next));
	e->attempt_next = false;
	e->next_refusals = 0;
	e->failures++;
	int64_t left = e->cur.n > 0 ? e->cur.not_after * 1000 - wall_ms() : -1;
	e->next_try_ms =
		wall_ms() + moat_enroll_backoff_ms(e->failures, e->conf.enroll_retry_min_ms,
						   e->conf.enroll_retry_max_ms, left, rnd(e));
}

void moat_enroll_on_connected(struct moat_enroll *e)
{
	if (e->attempt_next && e->next.n > 0) {
		commit_next(e);
		return;
	}
	if (e->next.n > 0) {
		/* current got in where next had just failed: the broker is up, so next was
		 * refused; try it again a few times before giving it up */
		if (++e->next_refusals >= REFUSALS_BEFORE_DROP) {
			elog(e, MOAT_LOG_ERROR,
			     "event=renewed_identity_refused gen=%d attempts=%d action=dropped",
			     e->next.n, e->next_refusals);
			drop_next(e);
		} else {
			e->attempt_next = true;
			e->switch_wanted = true;
		}
	}
}

void moat_enroll_on_failed(struct moat_enroll *e)
{
	if (e->next.n > 0 && e->cur.n > 0) {
		e->attempt_next = !e->attempt_next; /* take turns: either may be the one that works
						     */
	}
}

bool moat_enroll_take_switch(struct moat_enroll *e)
{
	bool s = e->switch_wanted;
	e->switch_wanted = false;
	return s;
}

int moat_enroll_fd(const struct moat_enroll *e, short *events)
{
	if (!e->call) {
		*events = 0;
		return -1;
	}
	*events = moat_est_call_events(e->call);
	return moat_est_call_fd(e->call);
}

/* The token, from the configuration or its file (trailing newline and spaces cut). */
static int read_token(const struct moat_enroll *e, char *buf, size_t size, struct moat_err *err)
{
	if (e->conf.enroll_token[0]) {
		snprintf(buf, size, "%s", e->conf.enroll_token);
		return 0;
	}
	char *text = NULL;
	size_t len = 0;
	int rc = moat_fs_read_all(e->conf.enroll_token_file, MOAT_AGENT_ENROLL_TOKEN_MAX_LEN + 64,
				  &text, &len, err);
	if (rc != 0) {
		return rc;
	}
	while (len > 0 &&
	       (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ')) {
		len--;
	}
	bool ok = len > 0 && len < size;
	for (size_t i = 0; ok && i < len; i++) {
		ok = text[i] > ' ' && text[i] < 0x7f;
	}
	if (ok) {
		memcpy(buf, text, len);
		buf[len] = '\0';
	}
	OPENSSL_cleanse(text, len);
	free(text);
	if (!ok) {
		return moat_err_set(err, MOAT_EINVAL, "%s: not an enrollment token",
				    e->conf.enroll_token_file);
	}
	return 0;
}

/* A new key in a new generation's directory, written 0600 before anything is sent, and
 * its CSR. Done ahead by the simulator (moat_enroll_prepare) so it is not timed. */
static int prepare_key(struct moat_enroll *e, struct moat_err *err)
{
	char dir[PATH_MAX], keyp[PATH_MAX];
	BIO *b = NULL;
	int rc;
	if (e->key) {
		return 0;
	}
	int max = 0;
	sweep(e, &max);
	int n = max + 1;
	if ((rc = gen_path(e, n, NULL, dir, sizeof(dir), err)) != 0 ||
	    (rc = gen_path(e, n, "key.pem", keyp, sizeof(keyp), err)) != 0 ||
	    (rc = moat_fs_mkdirs(dir, 0700, err)) != 0) {
		return rc;
	}
	e->key_gen = n;
	if ((rc = moat_est_key_new(&e->key, err)) != 0) {
		drop_key(e);
		return rc;
	}
	b = BIO_new(BIO_s_mem());
	char *pem = NULL;
	long plen = 0;
	if (!b || PEM_write_bio_PrivateKey(b, e->key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (plen = BIO_get_mem_data(b, &pem)) <= 0) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "writing the new key");
	} else {
		struct moat_fs_opts o = {.no_fsync = e->conf.no_fsync};
		rc = moat_fs_write_atomic_opts(keyp, pem, (size_t)plen, 0600, &o, err);
		OPENSSL_cleanse(pem, (size_t)plen);
	}
	BIO_free(b);
	if (rc == 0) {
		rc = moat_est_csr(e->key, e->conf.id, &e->csr, &e->csr_len, err);
	}
	if (rc != 0) {
		drop_key(e);
	}
	return rc;
}

int moat_enroll_prepare(struct moat_enroll *e, struct moat_err *err)
{
	if (moat_enroll_ready(e)) {
		return 0;
	}
	return prepare_key(e, err);
}

static int start_call(struct moat_enroll *e, const char *op, bool with_csr, int64_t now_mono,
		      struct moat_err *err)
{
	char token[MOAT_AGENT_ENROLL_TOKEN_MAX_LEN + 1] = "";
	struct moat_est_call_params p = {
		.host = e->host,
		.port = e->port,
		.ca_file = e->conf.ca_file,
		.op = op,
		.csr = with_csr ? e->csr : NULL,
		.csr_len = with_csr ? e->csr_len : 0,
	};
	int rc = 0;
	if (with_csr && e->op == OP_REENROLL) {
		p.cert_file = e->cur.cert;
		p.key_file = e->cur.key;
	} else if (with_csr && e->conf.claim_cert[0]) {
		p.cert_file = e->conf.claim_cert;
		p.key_file = e->conf.claim_key;
	} else if (with_csr) {
		if ((rc = read_token(e, token, sizeof(token), err)) != 0) {
			return rc;
		}
		p.user = e->conf.id;
		p.password = token;
	}
	rc = moat_est_call_start(&p, now_mono, &e->call, err);
	OPENSSL_cleanse(token, sizeof(token));
	return rc;
}

/* Starts op (enroll or renew): key, CSR, call. */
static int begin(struct moat_enroll *e, enum op op, int64_t now_mono, struct moat_err *err)
{
	int rc;
	e->op = op;
	if ((rc = prepare_key(e, err)) != 0 ||
	    (rc = start_call(e, op == OP_REENROLL ? "simplereenroll" : "simpleenroll", true,
			     now_mono, err)) != 0) {
		return rc;
	}
	if (e->pool) {
		e->pool->running++;
		e->counted = true;
		if (e->pool->first_ms == 0) {
			e->pool->first_ms = now_mono;
		}
	}
	elog(e, MOAT_LOG_INFO, "event=%s server=%s port=%d gen=%d",
	     op == OP_REENROLL ? "renewing" : "enrolling", e->host, e->port, e->key_gen);
	return 0;
}

static const char *op_name(enum op op)
{
	return op == OP_REENROLL ? "renew" : "enroll";
}

/* The attempt failed: back off (a 202 waits as the server said). */
static void failed(struct moat_enroll *e, int rc, const struct moat_err *err, int64_t retry_s)
{
	int64_t now = wall_ms();
	enum op op = e->op;
	e->failures++;
	e->last_rc = rc;
	e->last_err = *err;
	int64_t left = e->cur.n > 0 ? e->cur.not_after * 1000 - now : -1;
	int64_t delay = retry_s > 0
				? retry_s * 1000
				: moat_enroll_backoff_ms(e->failures, e->conf.enroll_retry_min_ms,
							 e->conf.enroll_retry_max_ms, left, rnd(e));
	e->next_try_ms = now + delay;
	if (e->pool && retry_s <= 0) {
		e->pool->failed++;
	}
	/* a refusal either way is a security event; a network failure is a warning */
	bool refusal = rc == MOAT_EDENIED || rc == MOAT_EVERIFY || rc == MOAT_EINVAL;
	elog(e, refusal ? MOAT_LOG_ERROR : MOAT_LOG_WARN,
	     "event=%s_%s attempt=%u retry_in_ms=%lld error=\"%s\"", op_name(op),
	     retry_s > 0 ? "pending"
	     : refusal	 ? "refused"
			 : "failed",
	     e->failures, (long long)delay, err->msg);
	end_op(e);
}

/* PEM of the leaf, then its chain below the root. */
static int write_cert(struct moat_enroll *e, int n, X509 *leaf, STACK_OF(X509) * chain,
		      struct moat_err *err)
{
	char path[PATH_MAX];
	BIO *b = BIO_new(BIO_s_mem());
	char *pem = NULL;
	long plen = 0;
	int rc = gen_path(e, n, "cert.pem", path, sizeof(path), err);
	if (rc != 0) {
		BIO_free(b);
		return rc;
	}
	bool ok = b && PEM_write_bio_X509(b, leaf) == 1;
	for (int i = 0; ok && i < sk_X509_num(chain); i++) {
		ok = PEM_write_bio_X509(b, sk_X509_value(chain, i)) == 1;
	}
	if (!ok || (plen = BIO_get_mem_data(b, &pem)) <= 0) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "writing the certificate");
	} else {
		struct moat_fs_opts o = {.no_fsync = e->conf.no_fsync};
		rc = moat_fs_write_atomic_opts(path, pem, (size_t)plen, 0644, &o, err);
	}
	BIO_free(b);
	return rc;
}

static int load_roots(const char *ca_file, X509_STORE **out, struct moat_err *err)
{
	X509_STORE *st = X509_STORE_new();
	*out = NULL;
	if (!st || X509_STORE_load_file(st, ca_file) != 1) {
		X509_STORE_free(st);
		return moat_err_ssl(err, MOAT_ECRYPTO, "%s: the root CA", ca_file);
	}
	*out = st;
	return 0;
}

/* The answer's certificates are checked; on success the new generation is linked. */
static int accept_issued(struct moat_enroll *e, struct moat_err *err)
{
	X509_STORE *roots = NULL;
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	int rc;
	if ((rc = load_roots(e->conf.ca_file, &roots, err)) != 0) {
		return rc;
	}
	rc = moat_est_check_issued(e->issued, e->cacerts, roots, e->key, e->conf.id,
				   wall_ms() / 1000, &leaf, &chain, err);
	X509_STORE_free(roots);
	if (rc != 0) {
		return rc;
	}
	int n = e->key_gen;
	struct gen g;
	if ((rc = write_cert(e, n, leaf, chain, err)) == 0) {
		if (!gen_load(e, n, &g)) {
			rc = moat_err_set(err, MOAT_EIO, "generation %d unreadable after writing",
					  n);
		}
	}
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	if (rc != 0) {
		return rc;
	}
	if (e->op == OP_ENROLL) {
		int old = e->cur_link;
		if ((rc = set_link(e, "current", n, err)) != 0) {
			return rc;
		}
		e->cur = g;
		e->cur_link = n;
		if (old != n) {
			remove_gen(e, old);
		}
		if (e->pool) {
			e->pool->enrolled++;
		}
		elog(e, MOAT_LOG_INFO, "event=enrolled gen=%d not_after=%lld", n,
		     (long long)g.not_after);
	} else {
		int old = e->next_link;
		if ((rc = set_link(e, "next", n, err)) != 0) {
			return rc;
		}
		e->next = g;
		e->next_link = n;
		if (old != n) {
			remove_gen(e, old);
		}
		e->attempt_next = true;
		e->next_refusals = 0;
		e->switch_wanted = true;
		if (e->pool) {
			e->pool->renewed++;
		}
		elog(e, MOAT_LOG_INFO, "event=renewed gen=%d not_after=%lld action=switching", n,
		     (long long)g.not_after);
	}
	e->key_gen = 0; /* linked: no longer the preparation's to remove */
	e->failures = 0;
	e->next_try_ms = 0;
	e->last_rc = 0;
	return 0;
}

/* The call finished (its response is there): act on it. */
static void finish(struct moat_enroll *e, int64_t now_mono)
{
	struct moat_err err;
	int64_t retry_s = 0;
	const struct moat_http_response *r = moat_est_call_response(e->call);
	const char *opn = e->fetching_cacerts	 ? "cacerts"
			  : e->op == OP_REENROLL ? "simplereenroll"
						 : "simpleenroll";
	int rc = moat_est_response_check(opn, r, &retry_s, &err);
	STACK_OF(X509) *certs = NULL;
	if (rc == 0 && (rc = moat_est_certs_parse(r->body, r->body_len, &certs, &err)) != 0) {
		moat_err_prefix(&err, "EST %s", opn);
	}
	drop_call(e);
	if (rc != 0) {
		failed(e, rc, &err, rc == MOAT_ETIMEOUT ? retry_s : 0);
		return;
	}
	if (e->fetching_cacerts) {
		if (e->cacerts) {
			sk_X509_pop_free(e->cacerts, X509_free);
		}
		e->cacerts = certs;
		e->fetching_cacerts = false;
	} else {
		e->issued = certs;
	}
	rc = accept_issued(e, &err);
	if (rc == MOAT_EVERIFY && !e->cacerts_tried) {
		/* perhaps only the issuing CA is missing: fetch the server's chain once */
		struct moat_err cerr;
		e->cacerts_tried = true;
		e->fetching_cacerts = true;
		if (start_call(e, "cacerts", false, now_mono, &cerr) == 0) {
			if (e->pool) {
				e->pool->running++;
				e->counted = true;
			}
			return;
		}
		e->fetching_cacerts = false;
	}
	if (rc != 0) {
		failed(e, rc, &err, 0);
		return;
	}
	if (e->pool) {
		e->pool->last_ms = now_mono;
	}
	end_op(e);
}

void moat_enroll_tick(struct moat_enroll *e, int64_t now_mono, int64_t now_wall)
{
	struct moat_err err;
	if (e->call) {
		int rc = moat_est_call_step(e->call, now_mono, &err);
		if (rc == MOAT_HTTP_INCOMPLETE) {
			return;
		}
		if (rc != 0) {
			failed(e, rc, &err, 0);
			return;
		}
		finish(e, now_mono);
		return;
	}
	if (now_wall < e->next_try_ms) {
		return;
	}
	if (e->pool && e->pool->max && e->pool->running >= e->pool->max) {
		return;
	}
	enum op op = OP_NONE;
	if (e->cur.n > 0 && e->cur.not_after * 1000 <= now_wall && e->next.n == 0) {
		elog(e, MOAT_LOG_ERROR, "event=identity_expired gen=%d action=enrolling", e->cur.n);
		/* an expired certificate cannot renew itself: enroll again (a token is
		 * single-use, so this needs a claim certificate or a new token) */
		op = OP_ENROLL;
	} else if (e->cur.n == 0 && e->next.n == 0) {
		op = OP_ENROLL;
	} else if (e->cur.n > 0 && e->next.n == 0 &&
		   now_wall >= moat_enroll_renew_time(e->cur.not_before, e->cur.not_after,
						      e->conf.renew_percent) *
				       1000) {
		op = OP_REENROLL;
	}
	if (op == OP_NONE) {
		return;
	}
	int rc = begin(e, op, now_mono, &err);
	if (rc != 0) {
		e->op = op;
		failed(e, rc, &err, 0);
	}
}

int moat_enroll_now(struct moat_enroll *e, struct moat_err *err)
{
	if (moat_enroll_ready(e)) {
		return 0;
	}
	e->next_try_ms = 0;
	e->last_rc = 0;
	moat_enroll_tick(e, moat_time_mono_ms(), wall_ms());
	while (e->call) {
		short ev = 0;
		struct pollfd pf = {.fd = moat_enroll_fd(e, &ev)};
		pf.events = ev;
		if (poll(&pf, 1, 1000) < 0 && errno != EINTR) {
			return moat_err_errno(err, MOAT_EIO, errno, "poll");
		}
		moat_enroll_tick(e, moat_time_mono_ms(), wall_ms());
	}
	if (moat_enroll_ready(e)) {
		return 0;
	}
	if (e->last_rc != 0) {
		*err = e->last_err;
		return e->last_rc;
	}
	return moat_err_set(err, MOAT_ESTATE, "no enrollment ran");
}
