/* client_cert.h: what a client certificate must be to speak for an identity, the one rule
 * the broker plugin (OpenSSL, in Mosquitto) and moatd (a GnuTLS peer certificate, read
 * into OpenSSL) both apply (src/core/client_cert.c). The chain, validity and revocation
 * are checked by the TLS library and the CRL before this; this is about the certificate
 * itself:
 * - a leaf: not a CA (no basicConstraints CA:TRUE, no keyCertSign), so a CA certificate
 *   issued by the deployment CA can never log in as the name it carries;
 * - for clients: an extendedKeyUsage that lists clientAuth (moat issues clientAuth to
 *   identities and serverAuth alone to the server certificate, so the server's key is no
 *   device's);
 * - exactly one CN, an identity name (moat/identity.h), read from its bytes: no NUL, no
 *   second CN that another reader might take instead;
 * - exactly one OU, a role name: what moat_pki_issue writes.
 * Pure: reads the certificate it is given, nothing else.
 */
#ifndef MOAT_CLIENT_CERT_H
#define MOAT_CLIENT_CERT_H

#include <openssl/types.h>

#include "moat/identity.h"

enum moat_client_cert_fault {
	MOAT_CLIENT_CERT_OK = 0,
	MOAT_CLIENT_CERT_NOT_LEAF,   /* a CA certificate */
	MOAT_CLIENT_CERT_NOT_CLIENT, /* no extendedKeyUsage, or one without clientAuth */
	MOAT_CLIENT_CERT_BAD_NAME,   /* no CN, two, or one that is not an identity name */
	MOAT_CLIENT_CERT_BAD_ROLE,   /* no OU, two, or one that is not a role name */
};

/* The identity (the CN) and role (the OU) cert speaks for, or why it speaks for none. On
 * MOAT_CLIENT_CERT_BAD_NAME out_id is ""; on the other faults it is the name the
 * certificate claims (for the refusal's record, never for access). *out_role is set only on
 * MOAT_CLIENT_CERT_OK. cert is only read (OpenSSL's API takes
 * it non-const because it caches the extensions it decodes). */
enum moat_client_cert_fault moat_client_cert_identity(X509 *cert, char out_id[MOAT_ID_BUF_LEN],
						      enum moat_role *out_role);

/* A word for a fault, as security events and logs give it: "ok", "certificate_is_ca",
 * "not_a_client_certificate", "bad_certificate_name", "bad_certificate_role". */
const char *moat_client_cert_fault_name(enum moat_client_cert_fault fault);

#endif
