/* fuzz_csr.c: libFuzzer harness for certificate signing requests as moat reads them from
 * devices (EST bodies, decoded) and operators' files (moat device add --csr):
 * moat_csr_parse, then the identity check. Invariants besides crashes: a request
 * accepted has a key of a type moat issues and a NUL-terminated CN that is empty or a
 * valid identity name; a refusal leaves nothing allocated. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "moat/pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_csr *csr = NULL;
	struct moat_err err;
	if (moat_csr_parse(data, size, &csr, &err) != 0) {
		if (csr) {
			abort();
		}
		ERR_clear_error();
		return 0;
	}
	if (!csr || !csr->key || !csr->req ||
	    strnlen(csr->cn, sizeof(csr->cn)) == sizeof(csr->cn) ||
	    (csr->cn[0] && !moat_identity_name_ok(csr->cn)) || (csr->cn[0] && !csr->has_cn)) {
		abort();
	}
	int rc = moat_csr_check_identity(csr, "dev-1", &err);
	if (rc == 0 && csr->has_cn && strcmp(csr->cn, "dev-1") != 0) {
		abort(); /* a CSR naming anyone else passed as dev-1 */
	}
	moat_csr_free(csr);
	ERR_clear_error();
	return 0;
}
