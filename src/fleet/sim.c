/* sim.c: the simulator driver. N devices of a deployment become N sessions of the same
 * device code moat-agent runs (device.c, session.c), in one process under one poll()
 * loop; only the configuration source differs (the deployment instead of an exported
 * bundle) and state writes skip fsync, since a thousand simulated devices share one disk.
 * With firmware, each device also has virtual A/B slots and the agent's update client
 * (update_client.c): the same moat-update checks, and the boot verification of moat-boot
 * (moat_boot_prepare) at every simulated restart.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "moat/deploy.h"
#include "moat/firmware.h"
#include "moat/fsutil.h"
#include "moat/manifest.h"
#include "moat/provision.h"
#include "moat/sim.h"
#include "moat/timeutil.h"
#include "moat/update.h"

/* Each session holds its socket, libmosquitto's wake-up socket pair and its queue file;
 * OpenSSL opens certificate files for a moment while connecting. */
static int raise_nofile(size_t count, struct moat_err *err)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)count * 5 + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "getrlimit");
	}
	if (rl.rlim_cur >= need) {
		return 0;
	}
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%zu devices need %llu file descriptors; the hard limit is %llu "
				    "(ulimit -Hn)",
				    count, (unsigned long long)need,
				    (unsigned long long)rl.rlim_max);
	}
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "setrlimit(RLIMIT_NOFILE, %llu)",
				      (unsigned long long)need);
	}
	return 0;
}

/* The device type each envelope's manifest names (read, not verified: provisioning
 * verifies), so each device gets the factory image of its type. */
static int firmware_types(const struct moat_sim_firmware *fw,
			  char (*types)[MOAT_DEVICE_TYPE_MAX_LEN + 1], struct moat_err *err)
{
	struct moat_envelope *env = malloc(sizeof(*env));
	int rc = 0;
	if (!env) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < fw->count && rc == 0; i++) {
		char *text = NULL;
		size_t len = 0;
		struct moat_manifest m;
		if ((rc = moat_fs_read_all(fw->envelope[i], MOAT_ENVELOPE_MAX_BYTES, &text, &len,
					   err)) != 0) {
			break; /* the message names the file */
		}
		if ((rc = moat_envelope_parse(text, len, env, err)) == 0) {
			rc = moat_manifest_parse(env->payload, env->payload_len, &m, err);
		}
		free(text);
		if (rc != 0) {
			moat_err_prefix(err, "%s", fw->envelope[i]);
			break;
		}
		snprintf(types[i], sizeof(types[i]), "%s", m.device_type);
	}
	free(env);
	return rc;
}

/* Gives the device of session s virtual slots in state_dir/boot (provisioned on first use
 * from the image of its type) and the update client, booted once now. */
static int attach_firmware(struct moat_session *s, const struct moat_agent_conf *base,
			   const char *trust, const struct moat_sim_firmware *fw,
			   char (*types)[MOAT_DEVICE_TYPE_MAX_LEN + 1],
			   struct moat_agent_update_pool *pool, struct moat_err *err)
{
	struct moat_agent_conf conf = *base;
	struct moat_agent_update *u = NULL;
	char state[PATH_MAX];
	size_t k = 0;
	int rc;
	while (k < fw->count && strcmp(types[k], conf.device_type) != 0) {
		k++;
	}
	if (k == fw->count) {
		return moat_err_set(err, MOAT_EINVAL, "no --firmware for device type %s",
				    conf.device_type);
	}
	if ((rc = moat_path_join(conf.update_state_dir, sizeof(conf.update_state_dir), err,
				 "%s/boot", conf.state_dir)) != 0 ||
	    (rc = moat_path_join(state, sizeof(state), err, "%s/%s", conf.update_state_dir,
				 MOAT_BOOT_STATE_FILE)) != 0) {
		return rc;
	}
	if (!moat_fs_exists(state) &&
	    (rc = moat_slots_provision(conf.update_state_dir, conf.device_type, trust, fw->image[k],
				       fw->envelope[k], moat_time_now(), err)) != 0) {
		return rc;
	}
	if ((rc = moat_agent_update_new(&conf, &u, err)) != 0) {
		return rc;
	}
	if (!u) {
		return moat_err_set(err, MOAT_EINVAL,
				    "the deployment names no update server ([server] in moat.conf)");
	}
	moat_agent_update_set_pool(u, pool);
	moat_session_set_update(s, u);
	if ((rc = moat_agent_update_set_fail_trial(u, fw->fail_trial, err)) != 0 ||
	    (rc = moat_agent_update_set_trial_hold(u, fw->trial_hold_ms, err)) != 0) {
		return rc;
	}
	return moat_agent_update_virtual_boot(u, moat_session_device(s), err);
}

/* The identity of a device that enrolls lives in its state directory; the token (when it
 * has not enrolled yet) is given inline. */
static int enrolling_conf(struct moat_agent_conf *conf, const char *token, struct moat_err *err)
{
	int rc;
	conf->enroll_token_file[0] = '\0';
	conf->claim_cert[0] = conf->claim_key[0] = '\0';
	snprintf(conf->enroll_token, sizeof(conf->enroll_token), "%s", token ? token : "");
	conf->enroll_retry_min_ms = 1000;
	conf->enroll_retry_max_ms = 30000;
	if ((rc = moat_path_join(conf->enroll_dir, sizeof(conf->enroll_dir), err, "%s/identity",
				 conf->state_dir)) != 0 ||
	    (rc = moat_path_join(conf->cert_file, sizeof(conf->cert_file), err,
				 "%s/current/cert.pem", conf->enroll_dir)) != 0 ||
	    (rc = moat_path_join(conf->key_file, sizeof(conf->key_file), err, "%s/current/key.pem",
				 conf->enroll_dir)) != 0) {
		return rc;
	}
	return 0;
}

int moat_sim_create(struct moat_deploy *d, char (*ids)[MOAT_ID_BUF_LEN], size_t count,
		    const char *host, int64_t interval_ms, const char *state_root,
		    const struct moat_sim_firmware *fw, struct moat_agent_update_pool *pool,
		    const struct moat_sim_enroll *enroll, struct moat_session ***out,
		    struct moat_err *err)
{
	struct moat_session **ss = NULL;
	char trust[PATH_MAX];
	char types[MOAT_SIM_FIRMWARE_MAX][MOAT_DEVICE_TYPE_MAX_LEN + 1];
	size_t made = 0;
	int rc;
	*out = NULL;
	if ((rc = raise_nofile(count, err)) != 0) {
		return rc;
	}
	if (fw) {
		if (fw->count > MOAT_SIM_FIRMWARE_MAX) {
			return moat_err_set(err, MOAT_EINVAL, "at most %d firmware images",
					    MOAT_SIM_FIRMWARE_MAX);
		}
		if ((rc = moat_deploy_path(d, trust, sizeof(trust),
					   MOAT_FW_KEYS_DIR "/" MOAT_FW_TRUST_FILE, err)) != 0 ||
		    (rc = firmware_types(fw, types, err)) != 0) {
			return rc;
		}
		pool->running = 0;
		pool->max = fw->max_checks ? fw->max_checks : MOAT_SIM_MAX_CHECKS_DEFAULT;
	}
	ss = calloc(count ? count : 1, sizeof(*ss));
	if (!ss) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	int64_t now = moat_time_mono_ms();
	for (; made < count; made++) {
		struct moat_agent_conf conf;
		if ((rc = enroll ? moat_agent_conf_enrolling(d, ids[made], &conf, err)
				 : moat_agent_conf_for(d, ids[made], &conf, err)) != 0 ||
		    (rc = moat_agent_conf_set_host(
			     d, host && host[0] ? host : moat_deploy_settings(d)->client_host,
			     &conf, err)) != 0) {
			goto out;
		}
		conf.interval_ms = interval_ms;
		conf.queue_max = 1000;
		conf.no_fsync = true;
		conf.quiet = true;
		/* a fleet that starts together should not reconnect together */
		conf.reconnect_min_ms = 1000;
		conf.reconnect_max_ms = 30000;
		if ((rc = moat_path_join(conf.state_dir, sizeof(conf.state_dir), err, "%s/%s",
					 state_root, ids[made])) != 0) {
			goto out;
		}
		/* The --interval of this run wins over an update_interval command of an earlier
		 * one (within a run a device keeps its interval across simulated restarts). */
		char saved[PATH_MAX];
		if ((rc = moat_path_join(saved, sizeof(saved), err, "%s/interval",
					 conf.state_dir)) != 0 ||
		    (unlink(saved) != 0 && errno != ENOENT &&
		     (rc = moat_err_errno(err, MOAT_EIO, errno, "%s", saved)) != 0)) {
			goto out;
		}
		if (enroll && (rc = enrolling_conf(&conf, enroll->tokens[made], err)) != 0) {
			goto out;
		}
		if ((rc = moat_session_new(&conf, now, &ss[made], err)) != 0) {
			moat_err_prefix(err, "%s", ids[made]);
			goto out;
		}
		if (enroll) {
			moat_session_set_enroll_pool(ss[made], enroll->pool);
			if ((rc = moat_session_enroll_prepare(ss[made], err)) != 0) {
				moat_err_prefix(err, "%s", ids[made]);
				made++; /* freed with the others */
				goto out;
			}
		}
		if (fw &&
		    (rc = attach_firmware(ss[made], &conf, trust, fw, types, pool, err)) != 0) {
			moat_err_prefix(err, "%s", ids[made]);
			made++; /* freed with the others */
			goto out;
		}
		/* spread first connections and telemetry over one interval */
		int64_t offset = (int64_t)((made * (uint64_t)interval_ms) / (count ? count : 1));
		/* at most 100 new TLS handshakes a second: a loaded broker keeps up */
		moat_session_schedule(ss[made],
				      enroll && enroll->no_connect ? INT64_MAX / 4
								   : now + (int64_t)made * 10,
				      now + offset);
	}
	*out = ss;
	ss = NULL;
	rc = 0;
out:
	if (ss) {
		moat_sim_free(ss, made);
	}
	return rc;
}

void moat_sim_free(struct moat_session **ss, size_t count)
{
	if (!ss) {
		return;
	}
	for (size_t i = 0; i < count; i++) {
		moat_session_free(ss[i]);
	}
	free(ss);
}
