/* provision.h: a device's agent configuration derived from a deployment
 * (src/fleet/provision.c), the one place that knows where a device's credentials live and
 * which broker address it is given. Operator side: device binaries never link it.
 */
#ifndef MOAT_PROVISION_H
#define MOAT_PROVISION_H

#include <stdbool.h>

#include "moat/agent_conf.h"
#include "moat/err.h"

struct moat_deploy;

/* The configuration of device id of deployment d: broker host and port from moat.conf
 * (the first [broker] hosts entry), the identity's device type, and the deployment's own
 * paths (pki/identities/ID/{cert.pem,key.pem,ca.crt}); state_dir left empty. */
MOAT_MUST_CHECK int moat_agent_conf_for(struct moat_deploy *d, const char *id,
					struct moat_agent_conf *out, struct moat_err *err);

/* Points conf (made by the functions here) at host instead: the broker's host and the
 * update and enroll URLs (moatd listens beside the broker under the same certificate).
 * For devices simulated on the broker's own machine (moat sim, [client] host). */
MOAT_MUST_CHECK int moat_agent_conf_set_host(struct moat_deploy *d, const char *host,
					     struct moat_agent_conf *conf, struct moat_err *err);

/* true when device id was registered to enroll itself (`moat device add ID --enroll` or
 * --claim-cn): it has an enrollment row, and its key is never on the operator's side. */
MOAT_MUST_CHECK int moat_agent_enrolls(struct moat_deploy *d, const char *id, bool *out,
				       struct moat_err *err);

/* The configuration of device id when it enrolls itself over EST (see moat/agent_conf.h,
 * [enroll]): broker and moatd as moat_agent_conf_for, ca = the deployment's root
 * (pki/ca.crt), server = moatd's URL, an identity directory state_dir/identity, and the
 * token or claim certificate to come: token_file "enroll.token" when the device has a
 * token, else claim_cert "claim.crt" and claim_key "claim.key" (files the operator puts
 * beside the configuration). state_dir is "state". No key anywhere. */
MOAT_MUST_CHECK int moat_agent_conf_enrolling(struct moat_deploy *d, const char *id,
					      struct moat_agent_conf *out, struct moat_err *err);

#endif
