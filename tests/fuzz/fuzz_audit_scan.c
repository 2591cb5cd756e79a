/* fuzz_audit_scan.c: the audit's readers of files as they are on disk (src/audit/scan.c:
 * mosquitto.conf and acl.conf lines) and its line comparison (audit_first_diff), on any
 * bytes, and the certificate reader of the PKI checks (audit_cert_scan) on the same
 * bytes. Invariants: nothing is read past the input, every view of a certificate points
 * inside it; the listeners counted stay within
 * their array, every line number within the input's lines; the first difference of a
 * text with itself is none, and with anything else is a line of one of them. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/audit/audit_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool any_device(const char *user, void *ctx)
{
	(void)ctx;
	return user[0] != 's';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	int lines = 1;
	for (size_t i = 0; i < size; i++) {
		lines += data[i] == '\n';
	}
	static struct audit_conf_view v;
	audit_conf_scan(text, size, &v);
	if (v.n > AUDIT_LISTENERS_MAX || v.port_line > lines || v.anon_line > lines) {
		abort();
	}
	for (size_t i = 0; i < v.n; i++) {
		if (v.l[i].line < 1 || v.l[i].line > lines || v.l[i].ciphers_line > lines ||
		    !memchr(v.l[i].name, '\0', sizeof(v.l[i].name))) {
			abort();
		}
	}
	/* acl.conf, line by line, as check_broker.c reads it */
	char user[64] = "";
	size_t pos = 0;
	while (pos < size) {
		const char *nl = memchr(text + pos, '\n', size - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : size - pos;
		char line[1024];
		if (n >= sizeof(line)) {
			n = sizeof(line) - 1;
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		pos += n + 1;
		if (nl) {
			pos = (size_t)(nl - text) + 1;
		}
		(void)audit_acl_judge(line, user, sizeof(user), any_device, NULL);
		if (!memchr(user, '\0', sizeof(user))) {
			abort();
		}
	}
	/* the same bytes as a certificate's DER: every view points inside the input */
	struct audit_cert_view cv;
	if (audit_cert_scan(data, size, &cv)) {
		const unsigned char *lo = data, *hi = data + size;
		const unsigned char *ptrs[] = {cv.issuer, cv.spki, cv.alg_oid, cv.key_bits};
		const size_t lens[] = {cv.issuer_len, cv.spki_len, cv.alg_oid_len, cv.key_bits_len};
		for (size_t i = 0; i < 4; i++) {
			if (!ptrs[i] || ptrs[i] < lo || ptrs[i] + lens[i] > hi) {
				abort();
			}
		}
		if (cv.param && (cv.param < lo || cv.param + cv.param_len > hi)) {
			abort();
		}
	}
	char w[64], h[64];
	if (audit_first_diff(text, size, text, size, NULL, w, h, sizeof(w)) != 0) {
		abort();
	}
	size_t half = size / 2;
	int d = audit_first_diff(text, half, text + half, size - half, "unban ", w, h, sizeof(w));
	if (d < 0 || d > lines + 1 || !memchr(w, '\0', sizeof(w)) || !memchr(h, '\0', sizeof(h))) {
		abort();
	}
	return 0;
}
