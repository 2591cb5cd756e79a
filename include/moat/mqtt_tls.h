/* mqtt_tls.h: the TLS setup of every libmosquitto client moat runs (the device's session in
 * src/device, the operator's client in src/fleet), so the two cannot drift apart.
 *
 * Contract: moat_mqtt_tls_setup configures mosq, before it connects, to present cert_file
 * and key_file, to verify the broker's chain against ca_file alone (no system store) and
 * its host name (libmosquitto checks the SAN on every handshake), under moat's TLS policy
 * (tlspolicy.h). It never calls mosquitto_tls_insecure_set and offers no way to turn any
 * check off. The paths are read by libmosquitto when it connects; the caller keeps
 * ownership of mosq.
 */
#ifndef MOAT_MQTT_TLS_H
#define MOAT_MQTT_TLS_H

#include "moat/err.h"

struct mosquitto;

/* MOAT_EINVAL with "TLS setup with ca=<ca> cert=<cert> key=<key>: <libmosquitto's reason>"
 * when libmosquitto refuses a setting. */
MOAT_MUST_CHECK int moat_mqtt_tls_setup(struct mosquitto *mosq, const char *ca_file,
					const char *cert_file, const char *key_file,
					struct moat_err *err);

#endif
