/* testutil.c: the fixtures of testutil.h, linked into every unit test. Only libc, cmocka,
 * OpenSSL and moat_util (fsutil.h) are used here, so that linking this file never pulls a
 * module the test under it does not declare; file writes go through moat_fs_write_atomic
 * so that a fixture file is never seen half-written. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/pem.h>

#include "moat/fsutil.h"
#include "testutil.h"

int tu_tmpdir_make(char *out_dir, size_t size, const char *name)
{
	const char *base = getenv("TMPDIR");
	int n = snprintf(out_dir, size, "%s/moat-test-%s-XXXXXX", base && *base ? base : "/tmp",
			 name);
	if (n < 0 || (size_t)n >= size || !mkdtemp(out_dir)) {
		if (size > 0) {
			out_dir[0] = '\0';
		}
		return -1;
	}
	return 0;
}

int tu_tmpdir_remove(const char *dir)
{
	struct moat_err err;
	if (dir[0] == '\0') {
		return 0;
	}
	if (moat_fs_remove_tree(dir, &err) != 0) {
		fprintf(stderr, "cleanup: %s\n", err.msg);
		return -1;
	}
	return 0;
}

int tu_state_make(void **state, size_t ctx_size, const char *name)
{
	char *ctx = calloc(1, ctx_size);
	*state = NULL;
	if (!ctx || ctx_size < TU_TMPDIR_MAX || tu_tmpdir_make(ctx, TU_TMPDIR_MAX, name) != 0) {
		free(ctx);
		return -1;
	}
	*state = ctx;
	return 0;
}

int tu_state_free(void **state)
{
	char *ctx = *state;
	int rc = tu_tmpdir_remove(ctx);
	free(ctx);
	*state = NULL;
	return rc;
}

void tu_path(char *buf, size_t size, const char *dir, const char *name)
{
	struct moat_err err;
	assert_int_equal(moat_path_join(buf, size, &err, "%s/%s", dir, name), 0);
}

void tu_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	struct moat_err err;
	if (moat_fs_write_atomic(path, data, len, mode, &err) != 0) {
		fail_msg("write %s: %s", path, err.msg);
	}
}

void tu_write_text(const char *path, const char *text)
{
	tu_write_file(path, text, strlen(text), 0600);
}

void tu_write_pattern(const char *path, size_t len, unsigned mul, unsigned seed, mode_t mode)
{
	unsigned char *data = malloc(len ? len : 1);
	assert_non_null(data);
	for (size_t i = 0; i < len; i++) {
		data[i] = (unsigned char)((i * mul + seed) & 0xff);
	}
	tu_write_file(path, data, len, mode);
	free(data);
}

char *tu_read_file(const char *path, size_t max_len, size_t *out_len)
{
	struct moat_err err;
	char *data = NULL;
	if (moat_fs_read_all(path, max_len, &data, out_len, &err) != 0) {
		fail_msg("read %s: %s", path, err.msg);
	}
	return data;
}

size_t tu_dir_count(const char *dir, const char *prefix)
{
	size_t n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (prefix ? strncmp(e->d_name, prefix, strlen(prefix)) == 0
			   : e->d_name[0] != '.') {
			n++;
		}
	}
	closedir(d);
	return n;
}

/* The object of the first PEM block of type name in pem, decoded with d2i. */
static void *pem_read(const char *pem, d2i_of_void *d2i, const char *name)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	assert_non_null(b);
	void *x = PEM_ASN1_read_bio(d2i, name, b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(x);
	return x;
}

X509 *tu_pem_cert(const char *pem)
{
	return pem_read(pem, (d2i_of_void *)d2i_X509, PEM_STRING_X509);
}

X509_CRL *tu_pem_crl(const char *pem)
{
	return pem_read(pem, (d2i_of_void *)d2i_X509_CRL, PEM_STRING_X509_CRL);
}

EVP_PKEY *tu_key_p256(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	assert_non_null(k);
	return k;
}
