/* mqtt_tls.c: moat_mqtt_tls_setup (mqtt_tls.h): mosquitto_tls_set with the deployment CA and
 * the client's certificate and key, then mosquitto_tls_opts_set with SSL_VERIFY_PEER and the
 * policy's minimum version and TLS 1.2 suites. */
#include "moat/mqtt_tls.h"

#include <mosquitto.h>
#include <openssl/ssl.h>

#include "moat/tlspolicy.h"

int moat_mqtt_tls_setup(struct mosquitto *mosq, const char *ca_file, const char *cert_file,
			const char *key_file, struct moat_err *err)
{
	int rc = mosquitto_tls_set(mosq, ca_file, NULL, cert_file, key_file, NULL);
	if (rc == MOSQ_ERR_SUCCESS) {
		rc = mosquitto_tls_opts_set(mosq, SSL_VERIFY_PEER, MOAT_TLS_MIN_VERSION_NAME,
					    MOAT_TLS12_CIPHERS);
	}
	if (rc != MOSQ_ERR_SUCCESS) {
		return moat_err_set(err, MOAT_EINVAL, "TLS setup with ca=%s cert=%s key=%s: %s",
				    ca_file, cert_file, key_file, mosquitto_strerror(rc));
	}
	return 0;
}
