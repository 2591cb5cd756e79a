/* sync.c: keeps the broker in step with the registry, for every writer of the registry
 * (the moat CLI today, moatd later).
 *
 * After identities were added, revoked, renewed, disabled or enabled, what derives from
 * the registry (broker/policy, broker/acl.conf, and the ownership of pki/crl.pem, which
 * src/deploy rewrote inside the change, for the broker and for moatd: moat_deploy_own) is
 * written again, and a running broker is told to
 * reload: SIGHUP to the supervisor, which forwards it to Mosquitto (the ACL file and the
 * CRL are re-read for new connections; the plugin notices the policy and CRL changes by
 * itself and kicks clients that lost their right). No broker running is not an error.
 * An unban reaches the plugin the same way: the policy, written with an unban line.
 */
#include <signal.h>
#include <stdbool.h>

#include "moat/broker.h"
#include "moat/broker_supervisor.h"

int moat_broker_sync(struct moat_deploy *d, struct moat_err *err)
{
	bool sent = false;
	int rc;

	if ((rc = moat_broker_write_derived(d, err)) != 0 ||
	    (rc = moat_deploy_own(d, MOAT_DEPLOY_OWN_IF_USER, err)) != 0) {
		return rc;
	}
	return moat_broker_signal(moat_deploy_dir(d), SIGHUP, &sent, err);
}

int moat_broker_unban(struct moat_deploy *d, const char *name, struct moat_err *err)
{
	bool sent = false;
	int rc;

	if ((rc = moat_broker_write_unban(d, name, err)) != 0) {
		return rc;
	}
	return moat_broker_signal(moat_deploy_dir(d), SIGHUP, &sent, err);
}
