/* signer_interim.c: the contract's moat_deploy_signer and moat_deploy_has_issuer for a
 * single-tier deployment, until the two-tier core (branch wt-issuer) replaces this file:
 * the root CA signs, once unlocked. */
#include "deploy_internal.h"

int moat_deploy_signer(struct moat_deploy *d, const struct moat_ca **out, struct moat_err *err)
{
	if (!d->ca || !d->ca->key) {
		return moat_err_set(err, MOAT_EINVAL, "signing: needs the CA passphrase");
	}
	*out = d->ca;
	return 0;
}

bool moat_deploy_has_issuer(const struct moat_deploy *d)
{
	(void)d;
	return false;
}
