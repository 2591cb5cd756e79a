/* client_cert.c: the certificate side of "who is this client" (client_cert.h). Reads the
 * extensions OpenSSL has decoded (X509_get_extension_flags and friends) and the subject's
 * CN and OU entries, each of which must appear exactly once.
 */
#include "moat/client_cert.h"

#include <stdint.h>
#include <string.h>

#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* The bytes of the only entry nid of name into out (size bytes, NUL-terminated); false
 * when there is none, more than one, a NUL inside, or more than size - 1 bytes. */
static bool only_entry(const X509_NAME *name, int nid, char *out, size_t size)
{
	int idx = X509_NAME_get_index_by_NID(name, nid, -1);
	if (idx < 0 || X509_NAME_get_index_by_NID(name, nid, idx) >= 0) {
		return false; /* none, or two: which one would be "the" identity? */
	}
	const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
	const unsigned char *data = ASN1_STRING_get0_data(s);
	int len = ASN1_STRING_length(s);
	if (!data || len <= 0 || (size_t)len >= size || memchr(data, '\0', (size_t)len)) {
		return false;
	}
	memcpy(out, data, (size_t)len);
	out[len] = '\0';
	return true;
}

enum moat_client_cert_fault moat_client_cert_identity(X509 *cert, char out_id[MOAT_ID_BUF_LEN],
						      enum moat_role *out_role)
{
	char ou[MOAT_ID_BUF_LEN];
	enum moat_role role;

	out_id[0] = '\0';
	const X509_NAME *name = X509_get_subject_name(cert);
	if (!name || !only_entry(name, NID_commonName, out_id, MOAT_ID_BUF_LEN) ||
	    !moat_identity_name_ok(out_id)) {
		out_id[0] = '\0';
		return MOAT_CLIENT_CERT_BAD_NAME;
	}
	/* From here on out_id is the name the certificate claims, for the refusal's record. */
	/* X509_check_ca: CA:TRUE with keyCertSign, or keyCertSign without basicConstraints, or
	 * a v1 self-signed certificate. It says "not a CA" for CA:TRUE with a keyUsage that
	 * lacks keyCertSign, so the basicConstraints flag is read too; and a key that may sign
	 * certificates is no leaf's, whatever CA: says. */
	uint32_t flags = X509_get_extension_flags(cert);
	if ((flags & EXFLAG_CA) || X509_check_ca(cert) != 0 ||
	    ((flags & EXFLAG_KUSAGE) && (X509_get_key_usage(cert) & KU_KEY_CERT_SIGN))) {
		return MOAT_CLIENT_CERT_NOT_LEAF;
	}
	if (!(flags & EXFLAG_XKUSAGE) || !(X509_get_extended_key_usage(cert) & XKU_SSL_CLIENT)) {
		return MOAT_CLIENT_CERT_NOT_CLIENT;
	}
	if (!only_entry(name, NID_organizationalUnitName, ou, sizeof(ou)) ||
	    moat_role_parse(ou, &role, NULL) != 0) {
		return MOAT_CLIENT_CERT_BAD_ROLE;
	}
	*out_role = role;
	return MOAT_CLIENT_CERT_OK;
}

const char *moat_client_cert_fault_name(enum moat_client_cert_fault fault)
{
	static const char *const names[] = {"ok", "certificate_is_ca", "not_a_client_certificate",
					    "bad_certificate_name", "bad_certificate_role"};
	return (unsigned)fault < sizeof(names) / sizeof(names[0]) ? names[fault] : "?";
}
