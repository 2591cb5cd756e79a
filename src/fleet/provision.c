/* provision.c: an agent configuration derived from the deployment, the one place that
 * knows where a device's credentials live and which broker address it is given. Used by
 * `moat device export --format agent` (which then rewrites the paths to the bundle's
 * copies) and by `moat sim` (which uses them in place).
 */
#include <stdio.h>
#include <string.h>

#include "moat/deploy.h"
#include "moat/fsutil.h"
#include "moat/provision.h"
#include "moat/registry.h"

int moat_agent_conf_for(struct moat_deploy *d, const char *id, struct moat_agent_conf *out,
			struct moat_err *err)
{
	struct moat_identity ident;
	int rc;
	moat_agent_conf_defaults(out);
	if ((rc = moat_registry_identity_get(moat_deploy_registry(d), id, &ident, err)) != 0) {
		return rc;
	}
	if (ident.role != MOAT_ROLE_DEVICE) {
		return moat_err_set(err, MOAT_EINVAL, "%s is a %s identity, not a device", id,
				    moat_role_name(ident.role));
	}
	if (moat_deploy_settings(d)->broker_host_count == 0) {
		return moat_err_set(err, MOAT_EINVAL, "moat.conf: [broker] hosts is empty");
	}
	snprintf(out->id, sizeof(out->id), "%s", id);
	if (ident.device_type[0]) {
		snprintf(out->device_type, sizeof(out->device_type), "%s", ident.device_type);
	}
	out->port = moat_deploy_settings(d)->broker_port;
	if ((rc = moat_agent_conf_set_host(d, moat_deploy_settings(d)->broker_hosts[0], out,
					   err)) != 0) {
		return rc;
	}
	if ((rc = moat_deploy_identity_path(d, id, "cert.pem", out->cert_file,
					    sizeof(out->cert_file), err)) != 0 ||
	    (rc = moat_deploy_identity_path(d, id, "key.pem", out->key_file, sizeof(out->key_file),
					    err)) != 0 ||
	    (rc = moat_deploy_identity_path(d, id, "ca.crt", out->ca_file, sizeof(out->ca_file),
					    err)) != 0) {
		return rc;
	}
	return 0;
}

int moat_agent_conf_set_host(struct moat_deploy *d, const char *h, struct moat_agent_conf *out,
			     struct moat_err *err)
{
	if (strlen(h) >= sizeof(out->host)) {
		return moat_err_set(err, MOAT_EINVAL, "'%s': host name too long", h);
	}
	snprintf(out->host, sizeof(out->host), "%s", h);
	/* moatd listens beside the broker under the same certificate: the same host name */
	int n = snprintf(out->update_url, sizeof(out->update_url),
			 strchr(h, ':') ? "https://[%s]:%d" : "https://%s:%d", h,
			 moat_deploy_settings(d)->server_port);
	if (n < 0 || (size_t)n >= sizeof(out->update_url)) {
		return moat_err_set(err, MOAT_EINVAL, "update server URL too long");
	}
	if (out->enroll) {
		snprintf(out->enroll_url, sizeof(out->enroll_url), "%s", out->update_url);
	}
	return 0;
}

int moat_agent_enrolls(struct moat_deploy *d, const char *id, bool *out, struct moat_err *err)
{
	struct moat_enrollment e;
	*out = false;
	int rc = moat_registry_enrollment_get(moat_deploy_registry(d), id, &e, err);
	if (rc == MOAT_ENOENT) {
		return 0;
	}
	*out = rc == 0;
	return rc;
}

int moat_agent_conf_enrolling(struct moat_deploy *d, const char *id, struct moat_agent_conf *out,
			      struct moat_err *err)
{
	struct moat_enrollment e;
	int rc;
	if ((rc = moat_agent_conf_for(d, id, out, err)) != 0 ||
	    (rc = moat_registry_enrollment_get(moat_deploy_registry(d), id, &e, err)) != 0) {
		if (rc == MOAT_ENOENT) {
			moat_err_set(err, MOAT_EINVAL,
				     "%s was not added to enroll itself (--enroll)", id);
			rc = MOAT_EINVAL;
		}
		moat_agent_conf_defaults(out);
		return rc;
	}
	out->enroll = true;
	snprintf(out->enroll_url, sizeof(out->enroll_url), "%s", out->update_url);
	snprintf(out->state_dir, sizeof(out->state_dir), "state");
	if (e.has_token) {
		snprintf(out->enroll_token_file, sizeof(out->enroll_token_file), "enroll.token");
	} else {
		snprintf(out->claim_cert, sizeof(out->claim_cert), "claim.crt");
		snprintf(out->claim_key, sizeof(out->claim_key), "claim.key");
	}
	if ((rc = moat_deploy_path(d, out->ca_file, sizeof(out->ca_file), "pki/ca.crt", err)) !=
		    0 ||
	    (rc = moat_path_join(out->enroll_dir, sizeof(out->enroll_dir), err, "%s/identity",
				 out->state_dir)) != 0 ||
	    (rc = moat_path_join(out->cert_file, sizeof(out->cert_file), err, "%s/current/cert.pem",
				 out->enroll_dir)) != 0 ||
	    (rc = moat_path_join(out->key_file, sizeof(out->key_file), err, "%s/current/key.pem",
				 out->enroll_dir)) != 0) {
		return rc;
	}
	return 0;
}
