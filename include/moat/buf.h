/* buf.h: the one growable byte buffer, always with a maximum (as curl's dynbuf).
 *
 * Contract:
 * - moat_buf_init sets an empty buffer that may grow to max bytes of allocation, its
 *   terminating NUL included; so it holds at most max - 1 bytes of content. max MUST be at
 *   least 1. Nothing is allocated until the first append.
 * - Every growth is checked: content past max - 1 bytes is refused with MOAT_EINVAL, a
 *   failed allocation with MOAT_ENOMEM. The first failure is sticky: later appends do
 *   nothing and return it, and moat_buf_take reports it. So a writer of many pieces may
 *   ignore the result of each append and check once, at moat_buf_take.
 * - While no failure happened, data is NUL-terminated (or NULL when nothing was appended).
 * - The buffer owns data until moat_buf_take hands it over or moat_buf_free releases it;
 *   both leave the buffer empty (and usable again, with the same max and no failure).
 * - Never prints, never aborts.
 */
#ifndef MOAT_BUF_H
#define MOAT_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "moat/err.h"

struct moat_buf {
	char *data;
	size_t len; /* content bytes, without the NUL */
	size_t cap; /* bytes allocated */
	size_t max; /* the most bytes ever allocated, the NUL included */
	int rc;	    /* 0, or the first failure: MOAT_EINVAL (over max) or MOAT_ENOMEM */
};

void moat_buf_init(struct moat_buf *b, size_t max);
/* Appends len bytes (which may hold NULs). 0, or the (sticky) failure. */
int moat_buf_append(struct moat_buf *b, const void *data, size_t len);
/* Appends a NUL-terminated string. */
int moat_buf_append_str(struct moat_buf *b, const char *s);
/* Appends printf-style text; an encoding error is MOAT_EINVAL. */
int moat_buf_printf(struct moat_buf *b, const char *fmt, ...) MOAT_PRINTF(2, 3);
int moat_buf_vprintf(struct moat_buf *b, const char *fmt, va_list ap) MOAT_PRINTF(2, 0);
/* Hands the content over: *out_data is malloc'd and NUL-terminated ("" when nothing was
 * appended) and the caller frees it; *out_len (when non-NULL) is its length. After a
 * failure, frees the content, sets *out_data NULL and returns the failure. */
MOAT_MUST_CHECK int moat_buf_take(struct moat_buf *b, char **out_data, size_t *out_len);
void moat_buf_free(struct moat_buf *b);

#endif
