/* sim.c: the simulator driver. N devices of a deployment become N sessions of the same
 * device code moat-agent runs (device.c, session.c), in one process under one poll()
 * loop; only the configuration source differs (the deployment instead of an exported
 * bundle) and state writes skip fsync, since a thousand simulated devices share one disk.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "moat/agent.h"
#include "moat/deploy.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"

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
				    count, (unsigned long long)need, (unsigned long long)rl.rlim_max);
	}
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "setrlimit(RLIMIT_NOFILE, %llu)",
				      (unsigned long long)need);
	}
	return 0;
}

int moat_sim_create(struct moat_deploy *d, char (*ids)[MOAT_ID_BUF_LEN], size_t count,
		    int64_t interval_ms, const char *state_root, struct moat_session ***out,
		    struct moat_err *err)
{
	struct moat_session **ss = NULL;
	size_t made = 0;
	int rc;
	*out = NULL;
	if ((rc = raise_nofile(count, err)) != 0) {
		return rc;
	}
	ss = calloc(count ? count : 1, sizeof(*ss));
	if (!ss) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	int64_t now = moat_time_mono_ms();
	for (; made < count; made++) {
		struct moat_agent_conf conf;
		if ((rc = moat_agent_conf_for(d, ids[made], &conf, err)) != 0) {
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
		ss[made] = malloc(sizeof(*ss[made]));
		if (!ss[made]) {
			rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
			goto out;
		}
		if ((rc = moat_session_init(ss[made], &conf, now, err)) != 0) {
			moat_err_prefix(err, "%s", ids[made]);
			free(ss[made]);
			ss[made] = NULL;
			goto out;
		}
		/* spread first connections and telemetry over one interval */
		int64_t offset = (int64_t)((made * (uint64_t)interval_ms) / (count ? count : 1));
		/* at most 100 new TLS handshakes a second: a loaded broker keeps up */
		ss[made]->next_attempt_ms = now + (int64_t)made * 10;
		ss[made]->dev.next_telemetry_ms = now + offset;
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
		if (ss[i]) {
			moat_session_free(ss[i]);
			free(ss[i]);
		}
	}
	free(ss);
}
