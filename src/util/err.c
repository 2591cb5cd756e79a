/* err.c: filling struct moat_err. Messages are truncated, never overflowed. */
#include "moat/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

static void vset(struct moat_err *err, int code, const char *fmt, va_list ap) MOAT_PRINTF(3, 0);

static void vset(struct moat_err *err, int code, const char *fmt, va_list ap)
{
	err->code = code;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

static void append(struct moat_err *err, const char *suffix)
{
	size_t used = strnlen(err->msg, sizeof(err->msg));
	if (used < sizeof(err->msg) - 1) {
		snprintf(err->msg + used, sizeof(err->msg) - used, ": %s", suffix);
	}
}

int moat_err_set(struct moat_err *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vset(err, code, fmt, ap);
		va_end(ap);
	}
	return code;
}

int moat_err_errno(struct moat_err *err, int code, int errnum, const char *fmt, ...)
{
	if (errnum == ENOSPC || errnum == EDQUOT) {
		code = MOAT_ENOSPC;
	}
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vset(err, code, fmt, ap);
		va_end(ap);
		append(err, strerror(errnum));
	}
	return code;
}

int moat_err_ssl(struct moat_err *err, int code, const char *fmt, ...)
{
	unsigned long e = ERR_peek_last_error();
	char reason[256] = "unknown OpenSSL error";
	if (e != 0) {
		const char *r = ERR_reason_error_string(e);
		if (r) {
			snprintf(reason, sizeof(reason), "%s", r);
		} else {
			ERR_error_string_n(e, reason, sizeof(reason));
		}
	}
	ERR_clear_error();
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vset(err, code, fmt, ap);
		va_end(ap);
		append(err, reason);
	}
	return code;
}

void moat_err_prefix(struct moat_err *err, const char *fmt, ...)
{
	if (!err) {
		return;
	}
	char prefix[MOAT_ERR_MSG_MAX];
	char old[MOAT_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	old[sizeof(old) - 1] = '\0';
	/* precision bounds keep the compiler sure the result fits; truncation is acceptable */
	snprintf(err->msg, sizeof(err->msg), "%.200s: %.300s", prefix, old);
}

void moat_err_clear(struct moat_err *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}
