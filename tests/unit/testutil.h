/* testutil.h: fixtures every unit test may use (tests/unit/testutil.c, linked into each
 * test): a temporary directory per test or group, files written and read with an
 * assertion on every step, directory entry counts, PEM decoding and a P-256 key.
 *
 * Contract: testutil.c uses only libc, cmocka, OpenSSL and moat_util, because every unit
 * test links it whatever module it tests. Fixtures that need another module live in a file
 * of their own (testutil_pki.c, testutil_fw.c, testutil_registry.c) that tests/CMakeLists.txt
 * adds only to the tests linking that module. Functions whose name does not say "make" or
 * "remove" fail the running test (cmocka) on any error instead of returning one; make and
 * remove return 0 or -1 so that group setup and teardown functions can hand the result on.
 * Include after <cmocka.h>.
 */
#ifndef MOAT_TESTUTIL_H
#define MOAT_TESTUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* Length of a directory name tu_tmpdir_make may write, terminator included. */
#define TU_TMPDIR_MAX 256

/* Creates a new directory "$TMPDIR/moat-test-<name>-XXXXXX" (TMPDIR unset or empty: /tmp),
 * mode 0700, and writes its path to out_dir (size bytes). Returns 0, or -1 when the path
 * does not fit or mkdtemp fails (out_dir is then "", so tu_tmpdir_remove does nothing). */
int tu_tmpdir_make(char *out_dir, size_t size, const char *name);

/* Removes dir and everything below it; "" is nothing to remove. Returns 0 or -1 (after a
 * line on stderr naming the cause). */
int tu_tmpdir_remove(const char *dir);

/* State for a cmocka setup function: *state becomes a zeroed struct of ctx_size bytes whose
 * first member MUST be char dir[TU_TMPDIR_MAX], that directory made with tu_tmpdir_make.
 * Returns 0, or -1 with *state NULL and nothing left behind. */
int tu_state_make(void **state, size_t ctx_size, const char *name);

/* Removes the directory of a tu_state_make state and frees the state: what a teardown does
 * after freeing whatever else the state held. Returns 0 or -1 (the directory stayed). */
int tu_state_free(void **state);

/* buf = dir/name; the test fails when it does not fit in size bytes. */
void tu_path(char *buf, size_t size, const char *dir, const char *name);

/* Writes len bytes of data to path (atomically, moat_fs_write_atomic) with mode. */
void tu_write_file(const char *path, const void *data, size_t len, mode_t mode);

/* tu_write_file of the string text, mode 0600. */
void tu_write_text(const char *path, const char *text);

/* Writes len bytes to path, byte i being (i * mul + seed) mod 256: a test image whose
 * every variant (seed) differs. */
void tu_write_pattern(const char *path, size_t len, unsigned mul, unsigned seed, mode_t mode);

/* The whole file at path, at most max_len bytes, NUL-terminated (caller frees); its length
 * in *out_len when out_len is not NULL. */
char *tu_read_file(const char *path, size_t max_len, size_t *out_len);

/* Entries of dir whose name starts with prefix; prefix NULL: every entry whose name does
 * not start with '.'. */
size_t tu_dir_count(const char *dir, const char *prefix);

/* The certificate or CRL the PEM text holds (caller frees with X509_free/X509_CRL_free). */
X509 *tu_pem_cert(const char *pem);
X509_CRL *tu_pem_crl(const char *pem);

/* A new P-256 key made by OpenSSL itself, not by moat (caller frees with EVP_PKEY_free). */
EVP_PKEY *tu_key_p256(void);

#endif
