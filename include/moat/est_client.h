/* est_client.h: the device's EST client (RFC 7030; src/device/est.c, est_call.c): a key
 * born on the device, a certificate signing request for it, and the HTTPS exchange with
 * moatd's /.well-known/est/ that turns it into a certificate. moat-agent enrolls and renews
 * with it, `moat sim --enroll` runs it for every simulated device, and the tests feed its
 * parsers hostile bytes. It is written on OpenSSL alone (the agent links no libcurl): the
 * HTTP/1.1 it speaks is one request per connection, answered with a Content-Length or
 * chunked body, or one that ends with the connection.
 *
 * Trust: the server is verified against the deployment's root CA alone (the file the
 * agent pins, no system store), by host name or address, under moat's TLS policy
 * (tlspolicy.h). Nothing turns either check off. A returned certificate is accepted only
 * when its public key is the device's own, its subject CN is the device's id, it is no CA,
 * it may be used for client authentication, it is valid now, and it chains to that same
 * root (through the intermediates the response carries, or those of /cacerts). Every
 * other answer is refused with a one-line reason (MOAT_EVERIFY for a certificate that is
 * not ours, MOAT_EDENIED for an HTTP refusal, MOAT_EINVAL for bytes that do not parse).
 */
#ifndef MOAT_EST_CLIENT_H
#define MOAT_EST_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>
#include <openssl/x509.h>

#include "moat/err.h"

#define MOAT_EST_PATH_PREFIX "/.well-known/est/"
#define MOAT_EST_RESPONSE_MAX_BYTES (256u * 1024u) /* a whole response, headers included */
#define MOAT_EST_HEADERS_MAX_BYTES (16u * 1024u)
#define MOAT_EST_CERTS_MAX 16 /* certificates in one PKCS#7 answer */
#define MOAT_EST_TOKEN_MAX_LEN 256
#define MOAT_EST_REASON_MAX_LEN 160 /* of a refusal's body, quoted in the error */
#define MOAT_EST_RETRY_AFTER_MAX_S 86400

/* ---- pure parts: no sockets, no files (fuzz_est_client feeds them arbitrary bytes) ---- */

/* An HTTP response as moat reads one. body is malloc'd and owned (moat_http_response_free). */
struct moat_http_response {
	int status;		/* 100..599 */
	char content_type[128]; /* media type, lower case, parameters cut; "" when absent */
	int64_t retry_after_s;	/* Retry-After in seconds, -1 when absent */
	unsigned char *body;	/* NUL-terminated for convenience (not counted in body_len) */
	size_t body_len;
};

/* Parses the bytes of one response read so far (len, at most MOAT_EST_RESPONSE_MAX_BYTES):
 * 0 and *out filled when it is complete; MOAT_EAGAIN-like 1 when more bytes are needed
 * (eof false) ; MOAT_EINVAL for anything malformed: a bad status line, a header without a
 * colon or with a control byte, a line over the header limit, conflicting or bad lengths,
 * a bad chunk, a body past its length, an unterminated body at eof, or a size over the
 * limit. eof says the peer closed the connection: a body without a length ends there. */
#define MOAT_HTTP_INCOMPLETE 1
MOAT_MUST_CHECK int moat_http_response_parse(const unsigned char *buf, size_t len, bool eof,
					     struct moat_http_response *out, struct moat_err *err);
void moat_http_response_free(struct moat_http_response *r);

/* The certificates of an RFC 7030 answer: base64 (line breaks allowed) of a DER PKCS#7
 * SignedData that is certs-only (no signers, no content). 1..MOAT_EST_CERTS_MAX
 * certificates, owned by the caller (sk_X509_pop_free with X509_free). MOAT_EINVAL otherwise. */
MOAT_MUST_CHECK int moat_est_certs_parse(const unsigned char *body, size_t len,
					 STACK_OF(X509) * *out, struct moat_err *err);

/* What an issued certificate must be (above). roots: the pinned root(s) (not modified);
 * untrusted: further intermediates (may be NULL). On success *out_leaf and *out_chain
 * (the leaf's issuers below the root, in order, possibly empty) are the caller's. */
MOAT_MUST_CHECK int moat_est_check_issued(STACK_OF(X509) * certs, STACK_OF(X509) * untrusted,
					  X509_STORE *roots, EVP_PKEY *key, const char *id,
					  int64_t now, X509 **out_leaf, STACK_OF(X509) * *out_chain,
					  struct moat_err *err);

/* A new P-256 key for the device (the caller's: EVP_PKEY_free). */
MOAT_MUST_CHECK int moat_est_key_new(EVP_PKEY **out, struct moat_err *err);
/* A PKCS#10 request for key with subject CN=id and nothing else (the server sets the
 * rest), signed by key (proof of possession), DER in a malloc'd *out (the caller frees). */
MOAT_MUST_CHECK int moat_est_csr(EVP_PKEY *key, const char *id, unsigned char **out,
				 size_t *out_len, struct moat_err *err);
/* The request text of an EST POST (path under MOAT_EST_PATH_PREFIX, e.g. "simpleenroll")
 * with the CSR in base64, or of a GET when csr is NULL; with user (the device id) and
 * password (its token) an Authorization: Basic header. malloc'd, the caller frees it
 * (after OPENSSL_cleanse: it may hold the token). */
MOAT_MUST_CHECK int moat_est_request(const char *host_header, const char *op, const char *user,
				     const char *password, const unsigned char *csr, size_t csr_len,
				     char **out, size_t *out_len, struct moat_err *err);
/* "https://host[:port]" (as the agent's [enroll] server takes it) into host (brackets of
 * an IPv6 address removed) and port (default 443). MOAT_EINVAL for anything else (a path,
 * credentials, a query). */
MOAT_MUST_CHECK int moat_est_url_parse(const char *url, char *host, size_t host_size, int *port,
				       struct moat_err *err);

/* ---- the exchange: one request on one non-blocking TLS connection ---- */

struct moat_est_call;

struct moat_est_call_params {
	const char *host; /* verified against the server's certificate */
	int port;
	const char *ca_file; /* the pinned root CA */
	const char *op;	     /* "cacerts", "simpleenroll", "simplereenroll", "csrattrs" */
	/* client authentication, all optional: a certificate (chain) and key over TLS (the
	 * current identity for simplereenroll, a claim certificate for simpleenroll), and/or
	 * HTTP Basic user and password (the device id and its token). */
	const char *cert_file, *key_file;
	const char *user, *password;
	const unsigned char *csr; /* DER, NULL for a GET */
	size_t csr_len;
	int64_t timeout_ms; /* the whole exchange; 0: 30 s */
};

/* Starts the call (name resolution is the one blocking step): connects without waiting.
 * The caller owns *out (moat_est_call_free). The TLS context for ca_file is built once per
 * process and shared by every call that names the same file. */
MOAT_MUST_CHECK int moat_est_call_start(const struct moat_est_call_params *p, int64_t now_mono_ms,
					struct moat_est_call **out, struct moat_err *err);
/* The socket to poll and the events the call waits for (POLLIN/POLLOUT). */
int moat_est_call_fd(const struct moat_est_call *c);
short moat_est_call_events(const struct moat_est_call *c);
/* Moves the call along as far as it goes without blocking: MOAT_HTTP_INCOMPLETE while in
 * progress, 0 when the response is complete (moat_est_call_response), or an error (TLS
 * and verification failures, timeouts, a malformed response). */
MOAT_MUST_CHECK int moat_est_call_step(struct moat_est_call *c, int64_t now_mono_ms,
				       struct moat_err *err);
/* The response once moat_est_call_step returned 0 (owned by the call). */
const struct moat_http_response *moat_est_call_response(const struct moat_est_call *c);
void moat_est_call_free(struct moat_est_call *c);
/* Runs a call to its end, blocking (poll) on its socket. */
MOAT_MUST_CHECK int moat_est_call_run(const struct moat_est_call_params *p,
				      struct moat_http_response *out, struct moat_err *err);

/* A response's verdict for an enrollment: 0 for 200 with application/pkcs7-mime; for 202
 * MOAT_ETIMEOUT with *retry_after_s (the server's, bounded, or 60); for any other status
 * MOAT_EDENIED "HTTP <status>: <the body's first line, escaped>". */
MOAT_MUST_CHECK int moat_est_response_check(const char *op, const struct moat_http_response *r,
					    int64_t *retry_after_s, struct moat_err *err);

/* Frees the shared TLS contexts (at exit, so leak checkers stay quiet). */
void moat_est_cleanup(void);

#endif
