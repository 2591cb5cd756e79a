/* server_internal.h: shared by the files of src/server only; not part of any contract.
 * Where a release's files live in the deployment: publish.c writes them, httpd.c serves
 * them (firmware/releases/<type>/<version>/{image.bin,envelope.json}).
 */
#ifndef MOAT_SERVER_INTERNAL_H
#define MOAT_SERVER_INTERNAL_H

#define MOAT_RELEASES_DIR "firmware/releases"
#define MOAT_RELEASE_IMAGE_FILE "image.bin"
#define MOAT_RELEASE_ENVELOPE_FILE "envelope.json"

/* ---- EST (est.c), called by httpd.c on any of its threads ---- */

#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "moat/deploy.h"
#include "moat/http_parse.h"

#define EST_ADDR_MAX INET6_ADDRSTRLEN

/* What httpd.c read of an EST request. */
struct est_request {
	enum moat_http_route route;
	const char *client; /* the peer's address */
	const char *path;
	const char *authorization; /* header values, NULL when absent */
	const char *content_type;
	const char *transfer_encoding;
	const char *body; /* at most MOAT_EST_BODY_MAX bytes */
	size_t body_len;
	X509 *peer_leaf;	      /* the TLS client certificate, NULL when none */
	STACK_OF(X509) * peer_chain;  /* what else the peer sent (may be NULL) */
	bool peer_is_deployment_cert; /* peer_leaf verified against the deployment CA */
	/* simplereenroll: the device its certificate authenticated (httpd's authenticate:
	 * verified, unrevoked, an active device), else NULL and why in cert_refusal */
	const char *cert_id;
	const char *cert_serial;
	const char *cert_refusal;
	/* The budget of refusals that name no proven identity (httpd.c: the connection guard's,
	 * per source and per kind): false leaves the refusal out of the log and the events,
	 * counted in *suppressed of the next one let through. NULL: no budget. */
	bool (*event_allowed)(void *ctx, uint64_t *suppressed);
	void *event_ctx;
};

/* The answer: a body (malloc'd, base64 when b64) or, for a refusal, text. */
struct est_answer {
	unsigned status;
	char note[64];		  /* the reason word, for the log */
	char id[MOAT_ID_BUF_LEN]; /* who asked, when known */
	/* id was proven (the right token, even a used or expired one; a claim certificate that
	 * verifies; the device's own certificate): only then does a refusal's security event
	 * name it, and only then is it outside the budget of anonymous refusals. An unproven id
	 * is whatever the client wrote in Authorization, so naming it would let anyone give a
	 * device security events (and halt a rollout on its signals). */
	bool id_proven;
	char claim[MOAT_CLAIM_CN_MAX_LEN + 1];
	const char *content_type;
	char *body;
	size_t len;
	bool b64;	       /* Content-Transfer-Encoding: base64 */
	bool www_authenticate; /* WWW-Authenticate: Basic */
	int64_t retry_after;   /* seconds; 0: no Retry-After */
	char text[MOAT_ERR_MSG_MAX];
};

struct moat_est;
/* Reads [est] of moat.conf (reenroll_grace, token_failures, token_failure_refill). d is
 * the deployment handle EST issues certificates with: only the leader of a batch uses it,
 * one at a time, so no other thread may use it while est is open. */
int est_open(struct moat_deploy *d, struct moat_est **out, struct moat_err *err);
void est_close(struct moat_est *e);
/* Answers one EST request; refusals are logged as event=est_refused. d is the calling
 * thread's own deployment handle (for reading: tokens, claims, the CA files); safe to call
 * from several threads at once. Returns once the answer is final: an issued certificate
 * is durable in the registry by then. The caller frees a->body. */
void est_handle(struct moat_est *e, struct moat_deploy *d, const struct est_request *req,
		struct est_answer *a);

/* ---- the dashboard (dashboard.c), called by httpd.c on any of its threads ---- */

#include <microhttpd.h>

/* What httpd.c read of a request under /dashboard. */
struct dash_request {
	const char *url; /* the path, decoded by moat_http_unescape */
	const char *method;
	const char *client;	   /* the peer's address */
	const char *cert_operator; /* the active operator the client certificate authenticated
				      (mutual TLS), else NULL */
	const char *body;	   /* a POST's form, at most MOAT_DASH_BODY_MAX bytes */
	size_t body_len;
	/* May a refusal be recorded as a security event now? (the connection guard's budget
	 * for refusals, per source and per kind: a flood of refused requests cannot flood the
	 * registry); *suppressed: how many were not since the last one that was */
	bool (*event_allowed)(void *ctx, uint64_t *suppressed);
	void *event_ctx;
};
struct moat_dash;
/* dir: the deployment (revocations open it for writing, as the CRL keeper does). */
int dash_open(const char *dir, struct moat_dash **out, struct moat_err *err);
void dash_close(struct moat_dash *dash);
/* Answers one dashboard request with d, the calling thread's deployment handle; *status
 * and note (a word, for the request's log line) say how, op (MOAT_ID_BUF_LEN) who. */
enum MHD_Result dash_serve(struct moat_dash *dash, struct moat_deploy *d,
			   struct MHD_Connection *conn, const struct dash_request *rq,
			   unsigned *status, char *note, size_t note_size, char *op);

/* ---- the live security events (dash_stream.c): server-sent events ---- */
struct dash_streams;
/* Starts the ticker thread that resumes suspended streams (before the sandbox). */
int dash_streams_open(struct dash_streams **out, struct moat_err *err);
/* Stops the ticker; call after MHD_stop_daemon (which ended every stream). */
void dash_streams_close(struct dash_streams *s);
struct dash_stream_req {
	const char *session_hash; /* the session's token SHA-256, "" for a certificate */
	const char *op;		  /* the operator */
	const char *kind;	  /* filters: NULL or "" match all */
	const char *device;
	int min_severity;
	int64_t after_seq; /* the newest event the page shows, or Last-Event-ID */
	void (*headers)(struct MHD_Response *resp); /* the dashboard's security headers */
};
/* Queues the stream for an authenticated operator: MHD_YES and *status 200, or MHD_NO
 * with *status 429 (DASH_STREAMS_PER_SESSION or DASH_STREAMS_MAX reached) or 503 (the
 * registry could not be opened), for the caller to answer. */
enum MHD_Result dash_stream_serve(struct dash_streams *s, struct MHD_Connection *conn,
				  const char *registry_location, const struct dash_stream_req *rq,
				  unsigned *status);

#endif
