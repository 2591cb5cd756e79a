/* crlkeep.c: moatd keeps pki/crl.pem fresh (server.h, moat_crl_keep).
 *
 * A CRL that passes its nextUpdate makes every verifier refuse every certificate it covers:
 * the whole fleet locked out. With an online issuing CA, moatd re-signs the CRLs itself,
 * without the passphrase, once half their validity has passed: checked at start and then
 * every interval. The write is moat_deploy_write_crl under the deployment's lock, in a
 * registry transaction (atomic file, then commit); the supervisor of `moat up` sees the new
 * file and reloads Mosquitto (its crlfile), and the plugin sees the file change itself. A
 * stale CRL is a security event on every check until it is fresh again. */
#include <string.h>

#include "moat/deploy.h"
#include "moat/log.h"
#include "moat/server.h"
#include "moat/timeutil.h"

int64_t moat_crl_keep_interval(int64_t validity_s)
{
	int64_t i = validity_s / 8;
	if (i > MOAT_CRL_KEEP_INTERVAL_MAX_S) {
		i = MOAT_CRL_KEEP_INTERVAL_MAX_S;
	}
	return i < 1 ? 1 : i;
}

static int resign(const char *dir, struct moat_err *err)
{
	struct moat_deploy *d = NULL;
	struct moat_crl_state st;
	int rc = moat_deploy_open(dir, MOAT_DEPLOY_WRITE, &d, err);
	if (rc != 0) {
		return rc;
	}
	/* someone (moat cert crl, a revocation) may have re-signed it while we waited */
	if ((rc = moat_deploy_crl_state(d, moat_time_now(), &st, err)) == 0 && st.refresh_due) {
		if ((rc = moat_registry_begin(moat_deploy_registry(d), err)) == 0) {
			if ((rc = moat_deploy_write_crl(d, err)) != 0 ||
			    (rc = moat_registry_commit(moat_deploy_registry(d), err)) != 0) {
				moat_registry_rollback(moat_deploy_registry(d));
			}
		}
		/* No moat_broker_sync here: moatd runs as an account that may neither write the
		 * broker's files nor signal its supervisor (and kill is outside its seccomp
		 * profile). Under `moat up` the supervisor sees the new file and reloads
		 * Mosquitto; the plugin re-reads the CRL by itself. */
		if (rc == 0 && (rc = moat_deploy_crl_state(d, moat_time_now(), &st, err)) == 0) {
			char next[MOAT_TIME_ISO_LEN];
			moat_time_iso(st.next_update, next);
			moat_log(MOAT_LOG_INFO, "event=crl_refreshed crls=%zu next_update=%s",
				 st.crls, next);
		}
	}
	moat_deploy_close(d);
	return rc;
}

int moat_crl_keep(const char *dir, struct moat_crl_keeper *k)
{
	struct moat_deploy *d = NULL;
	struct moat_err err = {0};
	struct moat_crl_state st;
	int64_t now = moat_time_now();
	int rc = moat_deploy_open(dir, MOAT_DEPLOY_READ, &d, &err);
	if (rc == 0) {
		k->interval_s = moat_crl_keep_interval(moat_deploy_settings(d)->crl_validity);
		rc = moat_deploy_crl_state(d, now, &st, &err);
	}
	bool issuer = rc == 0 && moat_deploy_has_issuer(d);
	moat_deploy_close(d);
	if (rc != 0) {
		moat_log(MOAT_LOG_ERROR, "event=crl_check_failed detail=%s", err.msg);
		return rc;
	}
	char next[MOAT_TIME_ISO_LEN];
	moat_time_iso(st.next_update, next);
	if (st.stale) {
		/* every device it covers is refused: say so on every check */
		moat_log(MOAT_LOG_ERROR, "event=security kind=crl_stale issuer=%s next_update=%s",
			 st.issuer_cn, next);
		char evidence[200];
		snprintf(evidence, sizeof(evidence), "issuer=\"%.120s\" next_update=%s",
			 st.issuer_cn, next);
		moat_server_security_event("crl_stale", MOAT_SEV_CRITICAL, NULL, NULL, evidence);
	}
	if (!st.refresh_due) {
		k->warned = false;
		return 0;
	}
	if (!issuer) {
		if (!k->warned) {
			moat_log(MOAT_LOG_WARN,
				 "event=crl_refresh_needs_passphrase next_update=%s detail=%s",
				 next,
				 "single-tier deployment: run moat cert crl, or add an issuing CA "
				 "(moat ca issuer create)");
			k->warned = true;
		}
		return 0;
	}
	if ((rc = resign(dir, &err)) != 0) {
		moat_log(MOAT_LOG_ERROR, "event=crl_refresh_failed next_update=%s detail=%s", next,
			 err.msg);
	}
	return rc;
}
