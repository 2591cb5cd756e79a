/* provision.h: a device's agent configuration derived from a deployment
 * (src/fleet/provision.c), the one place that knows where a device's credentials live and
 * which broker address it is given. Operator side: device binaries never link it.
 */
#ifndef MOAT_PROVISION_H
#define MOAT_PROVISION_H

#include "moat/agent_conf.h"
#include "moat/err.h"

struct moat_deploy;

/* The configuration of device id of deployment d: broker host and port from moat.conf
 * (the first [broker] hosts entry), the identity's device type, and the deployment's own
 * paths (pki/identities/ID/{cert.pem,key.pem,ca.crt}); state_dir left empty. */
MOAT_MUST_CHECK int moat_agent_conf_for(struct moat_deploy *d, const char *id,
					struct moat_agent_conf *out, struct moat_err *err);

#endif
