/* after_change.c: cli_after_change, run by every command that changes identities. What
 * derives from the registry (broker/policy, broker/acl.conf) is rewritten, and a running
 * broker is told to reload: SIGHUP to the supervisor, which forwards it to Mosquitto (the
 * ACL file and the CRL are re-read for new connections; the plugin notices the policy and
 * CRL changes by itself and kicks clients that lost their right). */
#include <signal.h>

#include "cli.h"
#include "moat/broker.h"

int cli_after_change(struct moat_deploy *d, struct moat_err *err)
{
	bool sent = false;
	int rc;

	if ((rc = moat_broker_write_derived(d, err)) != 0) {
		return rc;
	}
	return moat_broker_signal(moat_deploy_dir(d), SIGHUP, &sent, err);
}
