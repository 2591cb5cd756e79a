/* est.c: EST (RFC 7030) in moatd, under /.well-known/est/ (server.h has the API).
 *
 * httpd.c reads the request (headers, a bounded body, the TLS peer) and hands it here;
 * this file decides and builds the answer, and logs every refusal as a security event
 * (event=est_refused; the event names a device only once it proved who it is, so nobody can
 * pin events on a device by writing its id in Authorization, and refusals that prove nobody
 * are within httpd.c's budget per source, counted when left out) and every certificate
 * issued (event=est_enrolled). Certificates are
 * issued by the deployment module (moat_deploy_enroll_issue), which checks the identity
 * rules inside its registry transaction; CSRs and PKCS#7 are OpenSSL's (pki.h).
 *
 * Failed token attempts are counted per source address in a token bucket
 * ([est] token_failures attempts, one more every token_failure_refill): an address that
 * has used them up is answered 429 before its token is even looked at, so guessing tokens
 * is bounded whatever the token's strength. Successes cost nothing.
 *
 * Threads: est_handle runs on any of httpd's threads at once, each with a registry
 * handle of its own for reading (tokens, claims). The failure table has a mutex. Issuing
 * is a group commit: a request joins a queue; the first thread to find no batch running
 * leads one, taking everything queued (at most EST_BATCH_MAX), and issues it with the one
 * deployment handle kept for writing (moat_deploy_enroll_issue_batch: one lock, one
 * transaction, one sync), then wakes the others with their results; requests arriving
 * meanwhile make the next batch. Every answer leaves after its batch's commit. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/x509.h>

#include "moat/deploy.h"
#include "moat/fsutil.h"
#include "moat/http_parse.h"
#include "moat/log.h"
#include "moat/ratelimit.h"
#include "moat/server.h"
#include "moat/timeutil.h"
#include "server_internal.h"

#define EST_ADDR_SLOTS 256
#define EST_CACERTS_FILE "pki/chain.pem"
#define EST_BATCH_MAX 64

struct addr_slot {
	char addr[EST_ADDR_MAX];
	struct moat_bucket failures;
	int64_t last_ms;
};

/* One issue request waiting in the queue (on its thread's stack until done). */
struct pending {
	const struct moat_enroll_req *req;
	struct moat_enrolled *out;
	int rc;
	struct moat_err err;
	bool done;
	struct pending *next;
};

struct moat_est {
	struct moat_deploy *d; /* for writing: used by the batch leader only */
	int64_t grace_s;
	uint64_t fail_burst;
	int64_t fail_refill_s;
	pthread_mutex_t fail_mu; /* slots */
	struct addr_slot slots[EST_ADDR_SLOTS];
	pthread_mutex_t cacerts_mu; /* the cacerts answer, encoded once per file version */
	struct stat cacerts_st;
	char *cacerts_body; /* base64 PKCS#7 of cacerts_st's file; NULL: none yet */
	size_t cacerts_len;
	pthread_mutex_t q_mu; /* queue, leading and every pending's rc, err, done */
	pthread_cond_t q_cv;
	struct pending *head, *tail;
	bool leading;
};

int moat_est_settings_load(const struct moat_config *cfg, struct moat_est_settings *out,
			   struct moat_err *err)
{
	static const char *const keys[] = {"reenroll_grace", "token_failures",
					   "token_failure_refill", NULL};
	int rc;
	if ((rc = moat_config_check_keys(cfg, "est", keys, err)) != 0 ||
	    (rc = moat_config_get_duration(cfg, "est", "reenroll_grace", 3600, 0, 30 * 86400,
					   &out->reenroll_grace_s, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "est", "token_failures", 10, 1, 100000,
				      &out->token_failures, err)) != 0 ||
	    (rc = moat_config_get_duration(cfg, "est", "token_failure_refill", 60, 1, 86400,
					   &out->token_failure_refill_s, err)) != 0) {
		return rc;
	}
	return 0;
}

int est_open(struct moat_deploy *d, struct moat_est **out, struct moat_err *err)
{
	struct moat_est_settings set;
	int rc;
	*out = NULL;
	if ((rc = moat_est_settings_load(moat_deploy_config(d), &set, err)) != 0) {
		return rc;
	}
	int64_t burst = set.token_failures;
	int64_t refill = set.token_failure_refill_s;
	int64_t grace = set.reenroll_grace_s;
	struct moat_est *e = calloc(1, sizeof(*e));
	if (!e) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	if (pthread_mutex_init(&e->fail_mu, NULL) != 0) {
		free(e);
		return moat_err_set(err, MOAT_ENOMEM, "EST: mutex");
	}
	if (pthread_mutex_init(&e->q_mu, NULL) != 0 ||
	    pthread_mutex_init(&e->cacerts_mu, NULL) != 0) {
		pthread_mutex_destroy(&e->fail_mu);
		free(e);
		return moat_err_set(err, MOAT_ENOMEM, "EST: mutex");
	}
	if (pthread_cond_init(&e->q_cv, NULL) != 0) {
		pthread_mutex_destroy(&e->q_mu);
		pthread_mutex_destroy(&e->fail_mu);
		free(e);
		return moat_err_set(err, MOAT_ENOMEM, "EST: condition");
	}
	e->d = d;
	e->grace_s = grace;
	e->fail_burst = (uint64_t)burst;
	e->fail_refill_s = refill;
	*out = e;
	return 0;
}

void est_close(struct moat_est *e)
{
	if (!e) {
		return;
	}
	pthread_cond_destroy(&e->q_cv);
	pthread_mutex_destroy(&e->q_mu);
	pthread_mutex_destroy(&e->cacerts_mu);
	free(e->cacerts_body);
	pthread_mutex_destroy(&e->fail_mu);
	free(e);
}

/* Leads one batch: takes what is queued (q_mu held on entry and on return, released while
 * issuing), issues it, hands out the results. */
static void lead_batch(struct moat_est *e)
{
	struct pending *batch[EST_BATCH_MAX];
	size_t n = 0;
	while (e->head && n < EST_BATCH_MAX) {
		batch[n++] = e->head;
		e->head = e->head->next;
	}
	if (!e->head) {
		e->tail = NULL;
	}
	e->leading = true;
	pthread_mutex_unlock(&e->q_mu);
	struct moat_enroll_req reqs[EST_BATCH_MAX];
	struct moat_enrolled outs[EST_BATCH_MAX];
	struct moat_err errs[EST_BATCH_MAX];
	int rcs[EST_BATCH_MAX];
	for (size_t i = 0; i < n; i++) {
		reqs[i] = *batch[i]->req;
	}
	(void)moat_deploy_enroll_issue_batch(e->d, reqs, n, outs, rcs, errs);
	pthread_mutex_lock(&e->q_mu);
	for (size_t i = 0; i < n; i++) {
		*batch[i]->out = outs[i];
		batch[i]->rc = rcs[i];
		batch[i]->err = errs[i];
		batch[i]->done = true;
	}
	e->leading = false;
	pthread_cond_broadcast(&e->q_cv);
}

/* moat_deploy_enroll_issue through the queue: returns when req's batch is committed. */
static int issue_queued(struct moat_est *e, const struct moat_enroll_req *req,
			struct moat_enrolled *out, struct moat_err *err)
{
	struct pending p = {.req = req, .out = out};
	pthread_mutex_lock(&e->q_mu);
	if (e->tail) {
		e->tail->next = &p;
	} else {
		e->head = &p;
	}
	e->tail = &p;
	while (!p.done) {
		if (!e->leading) {
			lead_batch(e);
		} else {
			pthread_cond_wait(&e->q_cv, &e->q_mu);
		}
	}
	pthread_mutex_unlock(&e->q_mu);
	*err = p.err;
	return p.rc;
}

/* Whether addr may try a token now (its failure bucket holds the cost of one more). */
static bool failure_allowed(struct moat_est *e, const char *addr, int64_t now_ms);
/* Charges one failed attempt to addr. */
static void failure_charge(struct moat_est *e, const char *addr, int64_t now_ms);

/* The failure bucket of addr: found, or a new one in the least recently used slot. Costs
 * are in seconds of refill: the bucket gains one per second and a failure costs
 * fail_refill_s, so burst failures pass at once and one more every fail_refill_s. */
static struct moat_bucket *failures_of(struct moat_est *e, const char *addr, int64_t now_ms)
{
	struct addr_slot *oldest = &e->slots[0];
	for (size_t i = 0; i < EST_ADDR_SLOTS; i++) {
		struct addr_slot *s = &e->slots[i];
		if (s->addr[0] && strcmp(s->addr, addr) == 0) {
			s->last_ms = now_ms;
			return &s->failures;
		}
		if (!s->addr[0] || s->last_ms < oldest->last_ms) {
			oldest = s;
			if (!s->addr[0]) {
				break;
			}
		}
	}
	memset(oldest, 0, sizeof(*oldest));
	snprintf(oldest->addr, sizeof(oldest->addr), "%s", addr);
	oldest->last_ms = now_ms;
	struct moat_err ignored;
	if (moat_bucket_init(&oldest->failures, 1, e->fail_burst * (uint64_t)e->fail_refill_s,
			     &ignored) != 0) {
		/* cannot happen within the configured limits; unlimited would fail open */
		oldest->failures.rate_per_s = 1;
		oldest->failures.burst = (uint64_t)e->fail_refill_s;
	}
	return &oldest->failures;
}

static bool failure_allowed(struct moat_est *e, const char *addr, int64_t now_ms)
{
	pthread_mutex_lock(&e->fail_mu);
	bool ok = moat_bucket_tokens(failures_of(e, addr, now_ms), now_ms) >=
		  (uint64_t)e->fail_refill_s;
	pthread_mutex_unlock(&e->fail_mu);
	return ok;
}

static void failure_charge(struct moat_est *e, const char *addr, int64_t now_ms)
{
	pthread_mutex_lock(&e->fail_mu);
	moat_bucket_take(failures_of(e, addr, now_ms), (uint64_t)e->fail_refill_s, now_ms);
	pthread_mutex_unlock(&e->fail_mu);
}

/* Fills a refusal: status, the reason word (logged), the one-line text the client reads. */
static void refuse(struct est_answer *a, unsigned status, const char *note, const char *text)
{
	a->status = status;
	snprintf(a->note, sizeof(a->note), "%s", note);
	snprintf(a->text, sizeof(a->text), "%s", text);
}

/* A 200 with the PKCS#7 of pem's certificates (len bytes), or of the certificate cert
 * already decoded when pem is NULL, base64. */
static void answer_p7(struct est_answer *a, const char *pem, size_t len, X509 *cert)
{
	unsigned char *der = NULL;
	size_t der_len = 0;
	struct moat_err err = {0};
	if ((pem ? moat_pki_p7_certs(pem, len, &der, &der_len, &err)
		 : moat_pki_p7_of(&cert, 1, &der, &der_len, &err)) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=est_error msg=\"%s\"", err.msg);
		refuse(a, 500, "pkcs7_error", "cannot encode the certificates");
		return;
	}
	a->body = moat_est_body_encode(der, der_len, &a->len);
	free(der);
	if (!a->body) {
		refuse(a, 500, "out_of_memory", "out of memory");
		return;
	}
	a->status = 200;
	a->content_type = "application/pkcs7-mime; smime-type=certs-only";
	a->b64 = true;
}

static bool same_file(const struct stat *x, const struct stat *y)
{
	return x->st_ino == y->st_ino && x->st_dev == y->st_dev && x->st_size == y->st_size &&
	       x->st_mtim.tv_sec == y->st_mtim.tv_sec && x->st_mtim.tv_nsec == y->st_mtim.tv_nsec;
}

/* The CA certificates: encoded once, again only when the file changes (an issuer
 * rotation rewrites it by rename, which changes its inode). */
static void handle_cacerts(struct moat_est *e, struct moat_deploy *d, struct est_answer *a)
{
	char path[PATH_MAX];
	char *pem = NULL;
	size_t len = 0;
	struct stat st;
	struct moat_err err = {0};
	const char *rel = moat_deploy_has_issuer(d) ? EST_CACERTS_FILE : "pki/ca.crt";
	if (moat_deploy_path(d, path, sizeof(path), rel, &err) != 0 || stat(path, &st) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=est_error msg=\"%s: unreadable\"", rel);
		refuse(a, 500, "chain_unreadable", "CA certificates unreadable");
		return;
	}
	pthread_mutex_lock(&e->cacerts_mu);
	if (e->cacerts_body && same_file(&st, &e->cacerts_st)) {
		a->body = malloc(e->cacerts_len ? e->cacerts_len : 1);
		if (a->body) {
			memcpy(a->body, e->cacerts_body, e->cacerts_len);
			a->len = e->cacerts_len;
			a->status = 200;
			a->content_type = "application/pkcs7-mime; smime-type=certs-only";
			a->b64 = true;
		}
		pthread_mutex_unlock(&e->cacerts_mu);
		if (!a->body) {
			refuse(a, 500, "out_of_memory", "out of memory");
		}
		return;
	}
	pthread_mutex_unlock(&e->cacerts_mu);
	if (moat_fs_read_all(path, MOAT_CERT_FILE_MAX_BYTES, &pem, &len, &err) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=est_error msg=\"%s\"", err.msg);
		refuse(a, 500, "chain_unreadable", "CA certificates unreadable");
		return;
	}
	answer_p7(a, pem, len, NULL);
	free(pem);
	char *copy = a->status == 200 ? malloc(a->len ? a->len : 1) : NULL;
	if (!copy) {
		return; /* answered; only not kept */
	}
	memcpy(copy, a->body, a->len);
	pthread_mutex_lock(&e->cacerts_mu);
	free(e->cacerts_body);
	e->cacerts_body = copy;
	e->cacerts_len = a->len;
	e->cacerts_st = st; /* of the file before it was read: a change meanwhile re-reads */
	pthread_mutex_unlock(&e->cacerts_mu);
}

static void handle_csrattrs(struct est_answer *a)
{
	unsigned char *der = NULL;
	size_t len = 0;
	struct moat_err err = {0};
	if (moat_pki_csrattrs(&der, &len, &err) != 0) {
		refuse(a, 500, "csrattrs_error", "cannot encode the CSR attributes");
		return;
	}
	a->body = moat_est_body_encode(der, len, &a->len);
	free(der);
	if (!a->body) {
		refuse(a, 500, "out_of_memory", "out of memory");
		return;
	}
	a->status = 200;
	a->content_type = "application/csrattrs";
	a->b64 = true;
}

/* The CSR of the body, or a refusal in a (NULL). */
static struct moat_csr *read_csr(const struct est_request *req, struct est_answer *a)
{
	if (!moat_est_content_type_ok(req->content_type)) {
		refuse(a, 415, "wrong_content_type", "Content-Type: application/pkcs10 expected");
		return NULL;
	}
	if (!moat_est_transfer_encoding_ok(req->transfer_encoding)) {
		refuse(a, 415, "wrong_transfer_encoding", "Content-Transfer-Encoding: only base64");
		return NULL;
	}
	unsigned char der[MOAT_CSR_MAX_BYTES];
	size_t len = 0;
	if (moat_est_body_decode(req->body, req->body_len, der, sizeof(der), &len) != 0) {
		refuse(a, 400, "body_not_base64", "body: not a base64 CSR");
		return NULL;
	}
	struct moat_csr *csr = NULL;
	struct moat_err err = {0};
	if (moat_csr_parse(der, len, &csr, &err) != 0) {
		refuse(a, 400, err.code == MOAT_EVERIFY ? "csr_no_proof_of_possession" : "bad_csr",
		       err.msg);
		return NULL;
	}
	return csr;
}

/* Who is enrolling, from the token or the claim certificate: 0 with a->id set, or -1 with
 * the refusal in a. */
static int authenticate_enroll(struct moat_est *e, struct moat_deploy *d,
			       const struct est_request *req, struct est_answer *a,
			       enum moat_enroll_method *method)
{
	struct moat_err err = {0};
	int64_t now = moat_time_now();
	enum moat_enroll_verdict v = MOAT_ENROLL_BAD_CREDENTIALS;
	if (req->authorization) {
		*method = MOAT_ENROLL_BY_TOKEN;
		int64_t now_ms = moat_time_mono_ms();
		if (!failure_allowed(e, req->client, now_ms)) {
			refuse(a, 429, "too_many_failures",
			       "too many failed enrollment attempts from this address; retry later");
			a->retry_after = e->fail_refill_s;
			return -1;
		}
		char user[MOAT_ID_BUF_LEN];
		char token[MOAT_EST_PASSWORD_MAX_LEN + 1];
		enum moat_basic_auth ba =
			moat_est_basic_auth_parse(req->authorization, user, token);
		if (ba != MOAT_BASIC_OK) {
			failure_charge(e, req->client, now_ms);
			refuse(a, 401, "malformed_credentials",
			       "Authorization: Basic with device id and token expected");
			a->www_authenticate = true;
			return -1;
		}
		snprintf(a->id, sizeof(a->id), "%s", user);
		int rc = moat_deploy_enroll_token_check(d, user, token, now, &v, &err);
		explicit_bzero(token, sizeof(token));
		if (rc != 0) {
			moat_log(MOAT_LOG_ERROR, "event=registry_error msg=\"%s\"", err.msg);
			refuse(a, 500, "registry_error", "registry error");
			return -1;
		}
		/* only a caller holding the right token hears it was used or expired */
		a->id_proven = v == MOAT_ENROLL_OK || v == MOAT_ENROLL_TOKEN_USED ||
			       v == MOAT_ENROLL_TOKEN_EXPIRED;
		if (v != MOAT_ENROLL_OK) {
			failure_charge(e, req->client, moat_time_mono_ms());
			refuse(a, 401, moat_enroll_verdict_name(v),
			       v == MOAT_ENROLL_TOKEN_USED	? "enrollment token already used"
			       : v == MOAT_ENROLL_TOKEN_EXPIRED ? "enrollment token expired"
								: "bad device id or token");
			a->www_authenticate = true;
			return -1;
		}
		return 0;
	}
	if (req->peer_leaf) {
		*method = MOAT_ENROLL_BY_CLAIM;
		if (req->peer_is_deployment_cert) {
			refuse(a, 403, "use_simplereenroll",
			       "a deployment certificate renews with simplereenroll");
			return -1;
		}
		char id[MOAT_ID_BUF_LEN];
		char claim_cn[MOAT_CLAIM_CN_MAX_LEN + 1];
		if (moat_deploy_claim_verify(d, req->peer_leaf, req->peer_chain, now, id, claim_cn,
					     &v, &err) != 0) {
			moat_log(MOAT_LOG_ERROR, "event=registry_error msg=\"%s\"", err.msg);
			refuse(a, 500, "registry_error", "registry error");
			return -1;
		}
		snprintf(a->id, sizeof(a->id), "%s", id[0] ? id : "-");
		snprintf(a->claim, sizeof(a->claim), "%s", claim_cn);
		/* a used claim verified too: its holder is that device's claim */
		a->id_proven = id[0] && (v == MOAT_ENROLL_OK || v == MOAT_ENROLL_CLAIM_USED);
		if (v != MOAT_ENROLL_OK) {
			refuse(a, 403, moat_enroll_verdict_name(v),
			       v == MOAT_ENROLL_CLAIM_USED ? "the claimed device enrolled already"
			       : v == MOAT_ENROLL_UNKNOWN_CLAIM
				       ? "no device is registered for this "
					 "claim certificate"
				       : "claim certificate not verified");
			return -1;
		}
		return 0;
	}
	refuse(a, 401, "no_credentials",
	       "authentication required: HTTP Basic (device id, token) or a claim certificate");
	a->www_authenticate = true;
	return -1;
}

/* Maps a refusal of moat_deploy_enroll_issue to an answer. */
static void refuse_issue(struct est_answer *a, const struct moat_err *err)
{
	switch (err->code) {
	case MOAT_EDENIED:
		if (strncmp(err->msg, "CSR:", 4) == 0) {
			refuse(a, 403, "csr_for_another_identity", err->msg);
		} else if (strstr(err->msg, "already enrolled")) {
			refuse(a, 403, "already_enrolled", err->msg);
		} else if (strstr(err->msg, "current certificate")) {
			refuse(a, 403, "not_current_certificate", err->msg);
		} else {
			refuse(a, 403, "identity_not_active", err->msg);
		}
		return;
	case MOAT_ETIMEOUT:
		refuse(a, 503, "deployment_busy", "busy; retry later");
		a->retry_after = 5;
		return;
	case MOAT_EINVAL:
		if (strstr(err->msg, "passphrase")) {
			refuse(a, 503, "no_online_ca",
			       "this deployment has no online issuing CA (moat ca issuer create)");
			return;
		}
		refuse(a, 400, "refused", err->msg);
		return;
	default:
		moat_log(MOAT_LOG_ERROR, "event=est_error msg=\"%s\"", err->msg);
		refuse(a, 500, "issue_error", "cannot issue the certificate");
	}
}

static void handle_enroll(struct moat_est *e, struct moat_deploy *d, const struct est_request *req,
			  bool renew, struct est_answer *a)
{
	enum moat_enroll_method method = MOAT_ENROLL_RENEW;
	if (renew) {
		if (!req->cert_id) {
			refuse(a, 403,
			       req->cert_refusal ? req->cert_refusal : "no_client_certificate",
			       "simplereenroll needs the device's current certificate");
			return;
		}
		snprintf(a->id, sizeof(a->id), "%s", req->cert_id);
		a->id_proven = true;
	} else if (authenticate_enroll(e, d, req, a, &method) != 0) {
		return;
	}
	struct moat_csr *csr = read_csr(req, a);
	if (!csr) {
		return;
	}
	if (renew && moat_csr_same_key(csr, req->peer_leaf)) {
		moat_csr_free(csr);
		refuse(a, 400, "same_key", "simplereenroll needs a new key");
		return;
	}
	struct moat_enroll_req er = {
		.id = a->id,
		.method = method,
		.csr = csr,
		.presented_serial = req->cert_serial,
		.grace_seconds = e->grace_s,
	};
	struct moat_enrolled out;
	struct moat_err err = {0};
	int rc = issue_queued(e, &er, &out, &err);
	moat_csr_free(csr);
	if (rc != 0) {
		refuse_issue(a, &err);
		return;
	}
	if (out.files_rc != 0) {
		moat_log(MOAT_LOG_ERROR, "event=est_files_error id=%s msg=\"%s\"", a->id,
			 out.files_err.msg);
	}
	moat_log(MOAT_LOG_INFO,
		 "event=est_enrolled client=%s id=%s op=%s serial=%s replaces=%s supersede_in=%s",
		 req->client, a->id, renew ? "simplereenroll" : "simpleenroll", out.serial_hex,
		 out.replaced_serial_hex[0] ? out.replaced_serial_hex : NULL,
		 out.replaced_serial_hex[0] ? (e->grace_s ? "grace" : "0") : NULL);
	/* the issued certificate as signed, not its PEM decoded again */
	answer_p7(a, NULL, 0, out.cert);
	moat_enrolled_free(&out);
}

void est_handle(struct moat_est *e, struct moat_deploy *d, const struct est_request *req,
		struct est_answer *a)
{
	switch (req->route) {
	case MOAT_ROUTE_EST_CACERTS:
		handle_cacerts(e, d, a);
		break;
	case MOAT_ROUTE_EST_CSRATTRS:
		handle_csrattrs(a);
		break;
	case MOAT_ROUTE_EST_SIMPLEENROLL:
		handle_enroll(e, d, req, false, a);
		break;
	case MOAT_ROUTE_EST_SIMPLEREENROLL:
		handle_enroll(e, d, req, true, a);
		break;
	default:
		refuse(a, 404, "no_route", "not found");
	}
	if (a->status >= 400) {
		/* a security event of its own, besides the request line; one that proves no
		 * identity costs the sender nothing, so it is within the budget per source and
		 * kind (a flood of them must not bury other events) */
		uint64_t suppressed = 0;
		if (!a->id_proven && req->event_allowed &&
		    !req->event_allowed(req->event_ctx, &suppressed)) {
			return;
		}
		char sup[24];
		snprintf(sup, sizeof(sup), "%llu", (unsigned long long)suppressed);
		moat_log(MOAT_LOG_WARN,
			 "event=est_refused client=%s id=%s claim=%s proven=%s path=%s status=%u "
			 "reason=%s detail=\"%s\" suppressed=%s",
			 req->client, a->id[0] ? a->id : "-", a->claim[0] ? a->claim : NULL,
			 a->id_proven ? "yes" : "no", req->path, a->status, a->note, a->text,
			 suppressed ? sup : NULL);
		/* the event names a device only when it proved who it is (est_answer.id_proven);
		 * a claimed id stays in the evidence */
		bool named = a->id_proven && a->id[0];
		char evidence[200];
		bool claimed = !named && a->id[0] && strcmp(a->id, "-") != 0;
		snprintf(evidence, sizeof(evidence), "status=%u reason=%s%s%s%s%s", a->status,
			 a->note, claimed ? " claimed_id=" : "", claimed ? a->id : "",
			 suppressed ? " suppressed=" : "", suppressed ? sup : "");
		moat_server_security_event("est_refused", MOAT_SEV_MEDIUM, named ? a->id : NULL,
					   req->client, evidence);
	}
}
