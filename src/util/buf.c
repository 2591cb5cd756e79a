/* buf.c: the bounded growable buffer of buf.h. The allocation doubles from
 * BUF_FIRST_BYTES up to the buffer's maximum; the first refusal (over the maximum, or out of
 * memory) is kept in b->rc and turns every later append into a no-op, so writers of many
 * pieces check once, when they take the result. */
#include "moat/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_FIRST_BYTES 256u

void moat_buf_init(struct moat_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->rc = 0;
}

/* Room for add more content bytes and the NUL, within the maximum. */
static int reserve(struct moat_buf *b, size_t add)
{
	if (b->rc != 0) {
		return b->rc;
	}
	if (b->max == 0 || add > b->max - 1 - b->len) {
		b->rc = MOAT_EINVAL;
		return b->rc;
	}
	size_t need = b->len + add + 1;
	if (need <= b->cap) {
		return 0;
	}
	size_t cap = b->cap ? b->cap : BUF_FIRST_BYTES;
	while (cap < need) {
		cap = cap > b->max / 2 ? b->max : cap * 2;
	}
	if (cap > b->max) {
		cap = b->max;
	}
	char *grown = realloc(b->data, cap);
	if (!grown) {
		b->rc = MOAT_ENOMEM;
		return b->rc;
	}
	b->data = grown;
	b->cap = cap;
	return 0;
}

int moat_buf_append(struct moat_buf *b, const void *data, size_t len)
{
	int rc = reserve(b, len);
	if (rc != 0) {
		return rc;
	}
	if (len > 0) {
		memcpy(b->data + b->len, data, len);
	}
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int moat_buf_append_str(struct moat_buf *b, const char *s)
{
	return moat_buf_append(b, s, strlen(s));
}

int moat_buf_vprintf(struct moat_buf *b, const char *fmt, va_list ap)
{
	va_list again;
	if (b->rc != 0) {
		return b->rc;
	}
	/* First into the room there is; when that is short, grow to fit and write again. */
	va_copy(again, ap);
	size_t room = b->cap - b->len;
	int n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? room : 0, fmt, ap);
	if (n < 0) {
		b->rc = MOAT_EINVAL;
	} else if (!b->data || (size_t)n >= room) {
		if (reserve(b, (size_t)n) == 0 &&
		    vsnprintf(b->data + b->len, b->cap - b->len, fmt, again) != n) {
			b->rc = MOAT_EINVAL;
		}
	}
	va_end(again);
	if (b->rc != 0) {
		if (b->data) {
			b->data[b->len] = '\0';
		}
		return b->rc;
	}
	b->len += (size_t)n;
	return 0;
}

int moat_buf_printf(struct moat_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = moat_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

int moat_buf_take(struct moat_buf *b, char **out_data, size_t *out_len)
{
	int rc = b->rc;
	*out_data = NULL;
	if (rc == 0 && !b->data) {
		rc = moat_buf_append(b, "", 0);
	}
	if (rc != 0) {
		moat_buf_free(b);
		return rc;
	}
	*out_data = b->data;
	if (out_len) {
		*out_len = b->len;
	}
	moat_buf_init(b, b->max);
	return 0;
}

void moat_buf_free(struct moat_buf *b)
{
	free(b->data);
	moat_buf_init(b, b->max);
}
