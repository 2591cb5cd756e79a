/* plugin.c: moat_broker.so's entry points, init and cleanup only (one concern per file,
 * as Mosquitto's dynamic-security plugin does).
 *
 * Init reads the plugin_opt_* options (include/moat/policy.h), loads the policy and the CRL
 * (verified against the CA of plugin_opt_ca_file) and refuses to start the broker when
 * either fails: a broker that came up without its policy would let every valid
 * certificate in with no limits, and one without a good CRL would let revoked ones in,
 * which is worse than no broker. Then it registers the callbacks; each lives in its own
 * file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "moat/timeutil.h"
#include "plugin_internal.h"

/* The three entry points Mosquitto looks up by name; declared in mosquitto_plugin.h. The
 * library is built with hidden visibility, so these are all it exports. */
#define MP_EXPORT __attribute__((visibility("default")))

MP_EXPORT int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++) {
		if (supported_versions[i] == 5) {
			return 5;
		}
	}
	return -1;
}

static const struct {
	int event;
	MOSQ_FUNC_generic_callback cb;
} callbacks[] = {
	{MOSQ_EVT_BASIC_AUTH, moat_plugin_basic_auth}, {MOSQ_EVT_ACL_CHECK, moat_plugin_acl_check},
	{MOSQ_EVT_MESSAGE, moat_plugin_message},       {MOSQ_EVT_TICK, moat_plugin_tick},
	{MOSQ_EVT_DISCONNECT, moat_plugin_disconnect}, {MOSQ_EVT_RELOAD, moat_plugin_reload_event},
};
#define CALLBACK_COUNT (sizeof(callbacks) / sizeof(callbacks[0]))

static void state_free(struct mp_state *st)
{
	if (!st) {
		return;
	}
	if (st->events_fd >= 0) {
		close(st->events_fd);
	}
	moat_policy_free(&st->policy);
	moat_plugin_free_crl(st);
	moat_plugin_tables_free(st);
	moat_plugin_budget_free(st);
	mosquitto_free(st->policy_path);
	mosquitto_free(st->ca_path);
	mosquitto_free(st->issuers_path);
	mosquitto_free(st->crl_path);
	mosquitto_free(st->events_path);
	mosquitto_free(st);
}

static int take_option(char **slot, const struct mosquitto_opt *opt)
{
	if (*slot) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "moat: plugin_opt_%s given twice", opt->key);
		return -1;
	}
	if (!opt->value || opt->value[0] != '/') {
		mosquitto_log_printf(MOSQ_LOG_ERR, "moat: plugin_opt_%s must be an absolute path",
				     opt->key);
		return -1;
	}
	*slot = mosquitto_strdup(opt->value);
	return *slot ? 0 : -1;
}

static int read_options(struct mp_state *st, const struct mosquitto_opt *opts, int count)
{
	for (int i = 0; i < count; i++) {
		const struct mosquitto_opt *o = &opts[i];
		char **slot = NULL;
		if (!o->key) {
			continue;
		}
		if (strcmp(o->key, MOAT_PLUGIN_OPT_POLICY_FILE) == 0) {
			slot = &st->policy_path;
		} else if (strcmp(o->key, MOAT_PLUGIN_OPT_CRL_FILE) == 0) {
			slot = &st->crl_path;
		} else if (strcmp(o->key, MOAT_PLUGIN_OPT_EVENTS_FILE) == 0) {
			slot = &st->events_path;
		} else if (strcmp(o->key, MOAT_PLUGIN_OPT_CA_FILE) == 0) {
			slot = &st->ca_path;
		} else if (strcmp(o->key, MOAT_PLUGIN_OPT_ISSUERS_FILE) == 0) {
			slot = &st->issuers_path;
		} else {
			/* An option we do not know is most likely a typo of one we do, and
			 * running without it could mean running without a protection. */
			mosquitto_log_printf(MOSQ_LOG_ERR, "moat: unknown option plugin_opt_%s",
					     o->key);
			return -1;
		}
		if (take_option(slot, o) < 0) {
			return -1;
		}
	}
	if (!st->policy_path || !st->crl_path) {
		mosquitto_log_printf(MOSQ_LOG_ERR,
				     "moat: plugin_opt_%s and plugin_opt_%s are required",
				     MOAT_PLUGIN_OPT_POLICY_FILE, MOAT_PLUGIN_OPT_CRL_FILE);
		return -1;
	}
	if (!st->ca_path) {
		mosquitto_log_printf(MOSQ_LOG_ERR,
				     "moat: plugin_opt_%s is required (the CRL's signature is "
				     "checked against it)",
				     MOAT_PLUGIN_OPT_CA_FILE);
		return -1;
	}
	return 0;
}

MP_EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
				    struct mosquitto_opt *options, int option_count)
{
	int rc = MOSQ_ERR_UNKNOWN;
	struct moat_err err = {0};
	size_t registered = 0;
	struct mp_state *st = mosquitto_calloc(1, sizeof(*st));
	if (!st) {
		return MOSQ_ERR_NOMEM;
	}
	st->pid = identifier;
	st->events_fd = -1;
	unsigned char rnd[8];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "moat: getrandom: %s", strerror(errno));
		mosquitto_free(st);
		return MOSQ_ERR_UNKNOWN;
	}
	for (size_t i = 0; i < sizeof(rnd); i++) {
		snprintf(&st->run_id[2 * i], 3, "%02x", rnd[i]);
	}
	moat_policy_init(&st->policy);

	if (read_options(st, options, option_count) < 0) {
		goto out;
	}
	if (!moat_plugin_budget_init(st)) {
		rc = MOSQ_ERR_NOMEM;
		goto out;
	}
	if (moat_plugin_load_policy(st, true, &err) < 0 ||
	    moat_plugin_load_crl(st, true, &err) < 0) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "moat: %s", err.msg);
		goto out;
	}
	if (st->events_path) {
		st->events_fd = open(st->events_path,
				     O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
		if (st->events_fd < 0) {
			mosquitto_log_printf(MOSQ_LOG_ERR, "moat: %s: %s", st->events_path,
					     strerror(errno));
			goto out;
		}
	}
	for (registered = 0; registered < CALLBACK_COUNT; registered++) {
		int r = mosquitto_callback_register(identifier, callbacks[registered].event,
						    callbacks[registered].cb, NULL, st);
		if (r != MOSQ_ERR_SUCCESS) {
			mosquitto_log_printf(MOSQ_LOG_ERR, "moat: cannot register callback %d: %s",
					     callbacks[registered].event, mosquitto_strerror(r));
			goto out;
		}
	}
	st->next_check_ms = moat_time_mono_ms() + MP_RELOAD_CHECK_MS;
	mosquitto_log_printf(
		MOSQ_LOG_NOTICE,
		"moat: plugin ready: %zu identities, %zu revoked serials, events %s, " MOAT_PLUGIN_POLICY_SHA256_TAG
		"%s",
		st->policy.identity_count, st->revoked_count,
		st->events_path ? st->events_path : "published only", st->policy_sha256);
	*userdata = st;
	st = NULL;
	rc = MOSQ_ERR_SUCCESS;
out:
	if (st) {
		while (registered > 0) {
			registered--;
			mosquitto_callback_unregister(identifier, callbacks[registered].event,
						      callbacks[registered].cb, NULL);
		}
		state_free(st);
	}
	return rc;
}

static size_t tracked_sessions(const struct mp_state *st)
{
	size_t n = 0;
	for (size_t b = 0; b < MP_CONN_BUCKETS; b++) {
		for (const struct mp_conn *c = st->conns[b]; c; c = c->next) {
			n++;
		}
	}
	return n;
}

MP_EXPORT int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options,
				       int option_count)
{
	(void)options;
	(void)option_count;
	struct mp_state *st = userdata;
	if (!st) {
		return MOSQ_ERR_SUCCESS;
	}
	for (size_t i = 0; i < CALLBACK_COUNT; i++) {
		mosquitto_callback_unregister(st->pid, callbacks[i].event, callbacks[i].cb, NULL);
	}
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
			     "moat: plugin stopping: auth_refused=%llu acl_denied=%llu "
			     "rate_limited=%llu payload_rejected=%llu revoked_kicked=%llu "
			     "flapping_banned=%llu subscription_limited=%llu crl_rejected=%llu "
			     "events_dropped=%llu sessions_tracked=%zu",
			     (unsigned long long)st->counts[MP_EV_AUTH_REFUSED],
			     (unsigned long long)st->counts[MP_EV_ACL_DENIED],
			     (unsigned long long)st->counts[MP_EV_RATE_LIMITED],
			     (unsigned long long)st->counts[MP_EV_PAYLOAD_REJECTED],
			     (unsigned long long)st->counts[MP_EV_REVOKED_KICKED],
			     (unsigned long long)st->counts[MP_EV_FLAPPING_BANNED],
			     (unsigned long long)st->counts[MP_EV_SUBSCRIPTION_LIMITED],
			     (unsigned long long)st->counts[MP_EV_CRL_REJECTED],
			     (unsigned long long)st->events_dropped, tracked_sessions(st));
	state_free(st);
	return MOSQ_ERR_SUCCESS;
}
