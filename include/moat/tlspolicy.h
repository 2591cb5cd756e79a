/* tlspolicy.h: the one TLS policy of moat, for every TLS endpoint it configures: the broker's
 * listeners (broker/mosquitto.conf), the agent's and the operator's MQTT clients, the
 * updater's HTTPS client, the broker probe, and moatd's HTTPS server.
 *
 * The policy: TLS 1.2 at least; TLS 1.3 with the library's suites (all of them are AEAD);
 * for TLS 1.2 only ECDHE key exchange (forward secrecy) with an AEAD cipher (AES-GCM,
 * ChaCha20-Poly1305). Each constant below is that policy in one library's vocabulary; an
 * endpoint MUST take its settings from here, never spell them out itself, so they cannot
 * drift apart. Constants only: this header pulls in no TLS library.
 */
#ifndef MOAT_TLSPOLICY_H
#define MOAT_TLSPOLICY_H

/* The minimum version as Mosquitto's tls_version option and libmosquitto's
 * mosquitto_tls_opts_set name it (both mean "this version or newer"). */
#define MOAT_TLS_MIN_VERSION_NAME "tlsv1.2"

/* The minimum version as OpenSSL's protocol number: TLS1_2_VERSION, for
 * SSL_CTX_set_min_proto_version. */
#define MOAT_TLS_MIN_VERSION_OPENSSL 0x0303

/* The TLS 1.2 suites in OpenSSL's cipher-list syntax (mosquitto.conf ciphers,
 * mosquitto_tls_opts_set, SSL_CTX_set_cipher_list, CURLOPT_SSL_CIPHER_LIST). */
#define MOAT_TLS12_CIPHERS                                           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"

/* The whole policy as a GnuTLS priority string (moatd, through libmicrohttpd). */
#define MOAT_TLS_GNUTLS_PRIORITY                                                            \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:" \
	"+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA"

#endif
