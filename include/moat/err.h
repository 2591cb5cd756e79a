/* err.h: the one error type every fallible moat function fills.
 *
 * Contract: a fallible function returns 0 on success or a negative MOAT_E* code, and on
 * failure fills the caller's struct moat_err with that code and a one-line message that
 * names the thing and the cause ("pki/ca.key: wrong passphrase"). Library code never
 * prints; the CLI prints the message once. A NULL err is allowed and discards the message.
 */
#ifndef MOAT_ERR_H
#define MOAT_ERR_H

#include <stddef.h>

#define MOAT_MUST_CHECK __attribute__((warn_unused_result))
#define MOAT_PRINTF(f, a) __attribute__((format(printf, f, a)))

#define MOAT_ERR_MSG_MAX 512

enum moat_errcode {
	MOAT_OK = 0,
	MOAT_EINVAL = -1,    /* bad input from a user, a file or the network */
	MOAT_EIO = -2,	     /* a file or socket operation failed */
	MOAT_ENOMEM = -3,    /* allocation failed */
	MOAT_ENOENT = -4,    /* a thing that must exist does not */
	MOAT_EEXIST = -5,    /* a thing that must not exist does */
	MOAT_ECRYPTO = -6,   /* OpenSSL refused (includes a wrong passphrase) */
	MOAT_EDB = -7,	     /* the registry (SQLite) failed */
	MOAT_EVERIFY = -8,   /* a signature, certificate or digest did not verify */
	MOAT_EDENIED = -9,   /* a policy refused the operation */
	MOAT_ETIMEOUT = -10, /* a wait ran out */
	MOAT_EINTR = -11,    /* interrupted by the user (SIGINT/SIGTERM) */
	MOAT_ENOSPC = -12,   /* disk full */
	MOAT_ESTATE = -13,   /* the deployment is not in a state that allows this */
};

struct moat_err {
	int code;
	char msg[MOAT_ERR_MSG_MAX];
};

/* Sets err (when non-NULL) and returns code, so callers can `return moat_err_set(...)`. */
int moat_err_set(struct moat_err *err, int code, const char *fmt, ...) MOAT_PRINTF(3, 4);

/* Like moat_err_set, appending ": strerror(errnum)". Maps ENOSPC/EDQUOT to MOAT_ENOSPC. */
int moat_err_errno(struct moat_err *err, int code, int errnum, const char *fmt, ...)
	MOAT_PRINTF(4, 5);

/* Like moat_err_set, appending the first reason on OpenSSL's error queue (and clearing it). */
int moat_err_ssl(struct moat_err *err, int code, const char *fmt, ...) MOAT_PRINTF(3, 4);

/* Prefixes the message already in err with "prefix: ". */
void moat_err_prefix(struct moat_err *err, const char *fmt, ...) MOAT_PRINTF(2, 3);

void moat_err_clear(struct moat_err *err);

#endif
