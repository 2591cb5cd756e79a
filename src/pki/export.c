/* export.c: an identity in the forms devices consume: PKCS#12, and a C header with the
 * string constants the tutorial's firmware sketch expects (valid C and C++). */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "moat/buf.h"
#include "moat/messages.h"
#include "pki_internal.h"

/* Three PEMs of a few KiB each: far more than any identity needs. */
#define EXPORT_HEADER_MAX_BYTES (1024u * 1024u)

int moat_pki_export_p12(const char *cert_pem, const char *key_pem, const char *ca_pem,
			const char *name, const char *password, unsigned char **out_der,
			size_t *out_len, struct moat_err *err)
{
	int rc = MOAT_ECRYPTO;
	BIO *b = NULL;
	X509 *cert = NULL;
	X509 *ca = NULL;
	EVP_PKEY *key = NULL;
	STACK_OF(X509) *chain = NULL;
	PKCS12 *p12 = NULL;
	unsigned char *der = NULL;

	if ((chain = sk_X509_new_null()) == NULL || (b = BIO_new_mem_buf(cert_pem, -1)) == NULL ||
	    (cert = PEM_read_bio_X509(b, NULL, moat_pem_no_passphrase, NULL)) == NULL) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "%s: certificate", name);
		goto out;
	}
	/* the issuing CA after the certificate (two-tier deployments) goes into the chain */
	while ((ca = PEM_read_bio_X509(b, NULL, moat_pem_no_passphrase, NULL)) != NULL) {
		if (!sk_X509_push(chain, ca)) {
			rc = moat_err_ssl(err, MOAT_ECRYPTO, "%s: chain", name);
			goto out;
		}
		ca = NULL;
	}
	ERR_clear_error();
	BIO_free(b);
	if ((b = BIO_new_mem_buf(key_pem, -1)) == NULL ||
	    (key = PEM_read_bio_PrivateKey(b, NULL, moat_pem_no_passphrase, NULL)) == NULL) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "%s: key", name);
		goto out;
	}
	BIO_free(b);
	if ((b = BIO_new_mem_buf(ca_pem, -1)) == NULL ||
	    (ca = PEM_read_bio_X509(b, NULL, moat_pem_no_passphrase, NULL)) == NULL ||
	    !sk_X509_push(chain, ca)) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "%s: CA certificate", name);
		goto out;
	}
	ca = NULL;
	/* AES-256-CBC for key and certificates, SHA-256 MAC, 2048 PBKDF2 iterations */
	p12 = PKCS12_create(password, name, key, cert, chain, NID_aes_256_cbc, NID_aes_256_cbc,
			    PKCS12_DEFAULT_ITER, PKCS12_DEFAULT_ITER, 0);
	if (!p12 ||
	    !PKCS12_set_mac(p12, password, -1, NULL, 0, PKCS12_DEFAULT_ITER, EVP_sha256())) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "%s: PKCS#12", name);
		goto out;
	}
	int len = i2d_PKCS12(p12, &der);
	if (len <= 0) {
		rc = moat_err_ssl(err, MOAT_ECRYPTO, "%s: PKCS#12 encoding", name);
		goto out;
	}
	*out_der = malloc((size_t)len);
	if (!*out_der) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(*out_der, der, (size_t)len);
	*out_len = (size_t)len;
	rc = 0;
out:
	OPENSSL_free(der);
	PKCS12_free(p12);
	sk_X509_pop_free(chain, X509_free);
	X509_free(ca);
	X509_free(cert);
	EVP_PKEY_free(key);
	BIO_free(b);
	return rc;
}

/* PEM is base64 and header lines only, so no character needs escaping except the
 * newline, which becomes "\n" at the end of each quoted line. */
static void sb_pem_constant(struct moat_buf *sb, const char *name, const char *pem)
{
	moat_buf_printf(sb, "static const char %s[] =\n", name);
	const char *p = pem;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		moat_buf_append_str(sb, "\t\"");
		moat_buf_append(sb, p, n);
		moat_buf_append_str(sb, "\\n\"\n");
		p += n + (nl ? 1 : 0);
	}
	moat_buf_append_str(sb, "\t;\n\n");
}

/* The broker's address and the firmware rules, as constants and a comment. */
static int sb_broker(struct moat_buf *sb, const char *id, const struct moat_c_header_broker *b,
		     struct moat_err *err)
{
	size_t n = strlen(b->host);
	if (n == 0 || n > 253 ||
	    strspn(b->host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789.:-") != n) {
		return moat_err_set(err, MOAT_EINVAL,
				    "broker host '%.64s': not a host name or address", b->host);
	}
	if (b->port < 1 || b->port > 65535) {
		return moat_err_set(err, MOAT_EINVAL, "broker port %d: not 1..65535", b->port);
	}
	moat_buf_printf(
		sb,
		"/* The broker: MQTT 3.1.1 over TLS (1.2 or newer) on MOAT_BROKER_HOST:MOAT_BROKER_PORT.\n"
		" * Verify the broker's certificate against CA_CERT and its host name against\n"
		" * MOAT_BROKER_HOST, always both; present DEVICE_CERT with\n"
		" * DEVICE_KEY. The rules the broker enforces on this device:\n"
		" *  - client id = DEVICE_ID, the CN of DEVICE_CERT; any other id is refused.\n"
		" *  - it publishes only devices/%s/telemetry, devices/%s/status (retained),\n"
		" *    devices/%s/diagnostics and devices/%s/command_responses, and subscribes\n"
		" *    only to devices/%s/commands/# ; anything else is refused or dropped.\n"
		" *  - every message's \"device_id\" is DEVICE_ID, the sender: a message naming\n"
		" *    another device is dropped.\n"
		" *  - at most MOAT_MAX_PAYLOAD bytes per message%s;\n"
		" *    services accept telemetry up to %u bytes, status %u, command responses\n"
		" *    %u, diagnostics %u.\n"
		" *  - timestamps are Unix time in milliseconds; a command response echoes the\n"
		" *    command's \"id\". */\n"
		"#define MOAT_BROKER_HOST \"%s\"\n#define MOAT_BROKER_PORT %d\n"
		"#define MOAT_MAX_PAYLOAD %u\n",
		id, id, id, id, id,
		b->msgs_per_s ? ",\n *    at most MOAT_MAX_MSGS_PER_S messages a second" : "",
		MOAT_MSG_TELEMETRY_MAX_BYTES, MOAT_MSG_STATUS_MAX_BYTES,
		MOAT_MSG_RESPONSE_MAX_BYTES, MOAT_MSG_DIAGNOSTICS_MAX_BYTES, b->host, b->port,
		b->max_payload);
	if (b->msgs_per_s) {
		moat_buf_printf(sb, "#define MOAT_MAX_MSGS_PER_S %u\n", b->msgs_per_s);
	}
	moat_buf_append_str(sb, "\n");
	return 0;
}

int moat_pki_export_c_header(const char *id, const char *cert_pem, const char *key_pem,
			     const char *ca_pem, const struct moat_c_header_broker *broker,
			     char **out_text, size_t *out_len, struct moat_err *err)
{
	/* id lands in a C string and a comment: only identity names, which cannot end either */
	int rc = moat_identity_name_check(id, err);
	if (rc != 0) {
		return rc;
	}
	const char *pems[] = {cert_pem, key_pem, ca_pem};
	for (size_t i = 0; i < 3; i++) {
		for (const char *p = pems[i]; *p; p++) {
			if (*p == '"' || *p == '\\' || *p == '\r') {
				return moat_err_set(err, MOAT_EINVAL,
						    "%s: unexpected character in PEM", id);
			}
		}
	}
	/* Every append below may fail (the failure is sticky): moat_buf_take reports it. */
	struct moat_buf sb;
	moat_buf_init(&sb, EXPORT_HEADER_MAX_BYTES);
	moat_buf_printf(
		&sb,
		"/* Credentials of moat identity %s, generated by `moat device export "
		"--format c-header`.\n"
		" * DEVICE_KEY is a private key: keep this file out of version control and\n"
		" * store the key in a secure element or encrypted flash where you can. */\n"
		"#ifndef MOAT_DEVICE_CREDENTIALS_H\n#define MOAT_DEVICE_CREDENTIALS_H\n\n"
		"static const char DEVICE_ID[] = \"%s\";\n\n",
		id, id);
	if (broker && (rc = sb_broker(&sb, id, broker, err)) != 0) {
		moat_buf_free(&sb);
		return rc;
	}
	sb_pem_constant(&sb, "CA_CERT", ca_pem);
	sb_pem_constant(&sb, "DEVICE_CERT", cert_pem);
	sb_pem_constant(&sb, "DEVICE_KEY", key_pem);
	moat_buf_append_str(&sb, "#endif\n");
	rc = moat_buf_take(&sb, out_text, out_len);
	if (rc == MOAT_ENOMEM) {
		return moat_err_set(err, rc, "out of memory");
	}
	if (rc != 0) {
		return moat_err_set(err, rc, "%s: C header larger than %u bytes", id,
				    EXPORT_HEADER_MAX_BYTES);
	}
	return 0;
}
