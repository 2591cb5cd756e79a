/* net_internal.h: what the files of src/net share and nobody else uses. */
#ifndef MOAT_NET_INTERNAL_H
#define MOAT_NET_INTERNAL_H

#include <stddef.h>

#include "moat/err.h"

/* Runs argv[0] from PATH (no shell) with input (may be NULL: /dev/null) on stdin and stdout
 * discarded unless out_buf is given (then up to out_size - 1 bytes land there, NUL-ended).
 * Fails with MOAT_EIO naming argv[0] and the first line it wrote on stderr, or MOAT_ENOENT
 * when the program is not installed. */
MOAT_MUST_CHECK int net_run(const char *const *argv, const char *input, char *out_buf,
			    size_t out_size, struct moat_err *err);

#endif
