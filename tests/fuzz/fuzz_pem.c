/* fuzz_pem.c: reading certificates from files, as moat does for ca.crt, identity
 * certificates and imported ones: moat_cert_info_file, moat_pki_ca_load (certificate
 * only: the key file is moat's own and encrypted) and the PEM checks of the C-header
 * export. The input is written to a private temporary file once per run. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "moat/pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

static int write_input(const uint8_t *data, size_t size)
{
	if (path[0] == '\0') {
		snprintf(path, sizeof(path), "/tmp/moat-fuzz-pem-%ld", (long)getpid());
	}
	FILE *f = fopen(path, "wb");
	if (!f) {
		return -1;
	}
	size_t n = fwrite(data, 1, size, f);
	if (fclose(f) != 0 || n != size) {
		return -1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 256 * 1024 || write_input(data, size) != 0) {
		return 0;
	}
	struct moat_err err;
	struct moat_cert_info info;
	if (moat_cert_info_file(path, &info, &err) == 0) {
		if (strnlen(info.cn, sizeof(info.cn)) == sizeof(info.cn) ||
		    strnlen(info.ou, sizeof(info.ou)) == sizeof(info.ou) ||
		    strnlen(info.serial_hex, sizeof(info.serial_hex)) == sizeof(info.serial_hex)) {
			abort();
		}
	}
	struct moat_ca *ca = NULL;
	if (moat_pki_ca_load(path, path, NULL, &ca, &err) == 0) {
		if (!ca || !ca->cert || ca->key) {
			abort();
		}
		moat_pki_ca_free(ca);
	} else if (ca) {
		abort();
	}
	char *text = malloc(size + 1);
	if (text) {
		memcpy(text, data, size);
		text[size] = '\0';
		char *out = NULL;
		size_t len = 0;
		if (moat_pki_export_c_header("fuzz", text, text, text, NULL, &out, &len, &err) ==
		    0) {
			if (strlen(out) != len) {
				abort();
			}
			free(out);
		}
		free(text);
	}
	unlink(path);
	ERR_clear_error();
	return 0;
}
