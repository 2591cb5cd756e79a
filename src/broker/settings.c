/* settings.c: the [broker] and [policy] sections of moat.conf, validated once here so the
 * renderers below only ever see values Mosquitto and the plugin accept. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "moat/broker.h"
#include "moat/timeutil.h"

static bool is_ip(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* A user name for Mosquitto's `user` line: the portable POSIX set, so nothing in it can
 * break the config line. */
static int user_check(const char *user, struct moat_err *err)
{
	size_t len = strlen(user);
	if (len == 0 || len > MOAT_BROKER_USER_MAX_LEN || user[0] == '-') {
		return moat_err_set(err, MOAT_EINVAL, "'%s': not a user name", user);
	}
	if (strcmp(user, "root") == 0) {
		return moat_err_set(err, MOAT_EINVAL, "the broker must not run as root");
	}
	for (size_t i = 0; i < len; i++) {
		char c = user[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.')) {
			return moat_err_set(err, MOAT_EINVAL, "'%s': not a user name", user);
		}
	}
	return 0;
}

static int load_listen(const struct moat_config *cfg, const struct moat_deploy_conf *conf,
		       struct moat_broker_settings *out, struct moat_err *err)
{
	const char *listen = moat_config_get(cfg, "broker", "listen");
	char **items = NULL;
	size_t count = 0;
	int rc;

	if (!listen) {
		/* The IP addresses among the names the certificate carries: the broker listens
		 * where clients were told to find it, and nowhere else. */
		for (size_t i = 0; i < conf->broker_host_count; i++) {
			if (is_ip(conf->broker_hosts[i])) {
				snprintf(out->listen[out->listen_count], MOAT_BROKER_ADDR_MAX_LEN,
					 "%s", conf->broker_hosts[i]);
				out->listen_count++;
			}
		}
		return 0;
	}
	if ((rc = moat_config_split_list(listen, &items, &count, err)) != 0) {
		moat_err_prefix(err, "%s: [broker] listen", cfg->path);
		return rc;
	}
	if (count > MOAT_HOSTS_MAX) {
		rc = moat_err_set(err, MOAT_EINVAL, "%s: [broker] listen: more than %d addresses",
				  cfg->path, MOAT_HOSTS_MAX);
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		if (strlen(items[i]) >= MOAT_BROKER_ADDR_MAX_LEN || !is_ip(items[i])) {
			rc = moat_err_set(err, MOAT_EINVAL,
					  "%s: [broker] listen: '%s' is not an IP address",
					  cfg->path, items[i]);
			goto out;
		}
		snprintf(out->listen[i], MOAT_BROKER_ADDR_MAX_LEN, "%s", items[i]);
	}
	out->listen_count = count;
	rc = 0;
out:
	moat_config_list_free(items, count);
	return rc;
}

int moat_broker_settings_load(const struct moat_config *cfg, const struct moat_deploy_conf *conf,
			      struct moat_broker_settings *out, struct moat_err *err)
{
	static const char *const keys[] = {
		"hosts",
		"port",
		"listen",
		"plugin",
		"user",
		"max_connections",
		"message_size_limit",
		"max_inflight_messages",
		"max_queued_messages",
		"max_keepalive",
		"autosave_interval",
		NULL,
	};
	int rc;

	memset(out, 0, sizeof(*out));
	out->port = conf->broker_port;
	if ((rc = moat_config_check_keys(cfg, "broker", keys, err)) != 0 ||
	    (rc = load_listen(cfg, conf, out, err)) != 0 ||
	    (rc = moat_config_get_bool(cfg, "broker", "plugin", true, &out->plugin, err)) != 0) {
		return rc;
	}
	const char *user = moat_config_get(cfg, "broker", "user");
	if (!user) {
		user = "mosquitto";
	}
	if ((rc = user_check(user, err)) != 0) {
		moat_err_prefix(err, "%s: [broker] user", cfg->path);
		return rc;
	}
	snprintf(out->user, sizeof(out->user), "%s", user);
	/* Defaults sized for a fleet of thousands on one host; max_keepalive below 10 s is
	 * refused by Mosquitto's own advice. */
	if ((rc = moat_config_get_int(cfg, "broker", "max_connections", 10000, -1, 1000000,
				      &out->max_connections, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "broker", "message_size_limit", 262144, 1, 268435455,
				      &out->message_size_limit, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "broker", "max_inflight_messages", 20, 1, 65535,
				      &out->max_inflight_messages, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "broker", "max_queued_messages", 1000, 1, 10000000,
				      &out->max_queued_messages, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "broker", "max_keepalive", 300, 10, 65535,
				      &out->max_keepalive, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "broker", "autosave_interval", 300, 0, 86400,
				      &out->autosave_interval, err)) != 0) {
		return rc;
	}
	if (out->max_connections == 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: [broker] max_connections: 0 would refuse every client "
				    "(use -1 for unlimited)",
				    cfg->path);
	}
	return 0;
}

static int get_u32(const struct moat_config *cfg, const char *key, uint32_t min, uint32_t max,
		   uint32_t *inout, struct moat_err *err)
{
	int64_t v = 0;
	int rc = moat_config_get_int(cfg, "policy", key, *inout, min, max, &v, err);
	if (rc == 0) {
		*inout = (uint32_t)v;
	}
	return rc;
}

static int get_dur_u32(const struct moat_config *cfg, const char *key, uint32_t min, uint32_t max,
		       uint32_t *inout, struct moat_err *err)
{
	int64_t v = 0;
	int rc = moat_config_get_duration(cfg, "policy", key, *inout, min, max, &v, err);
	if (rc == 0) {
		*inout = (uint32_t)v;
	}
	return rc;
}

/* [policy] job_rate: "N/s", 1..MOAT_POLICY_JOB_RATE_MAX commands a second (the unit is
 * required, as for --rate). */
static int get_job_rate(const struct moat_config *cfg, uint32_t *inout, struct moat_err *err)
{
	const char *v = moat_config_get(cfg, "policy", "job_rate");
	if (!v) {
		return 0;
	}
	char num[16];
	size_t len = strlen(v);
	int64_t rate = 0;
	if (len < 3 || len - 2 >= sizeof(num) || strcmp(v + len - 2, "/s") != 0 || v[0] < '1' ||
	    v[0] > '9') {
		return moat_err_set(err, MOAT_EINVAL,
				    "[policy] job_rate: '%.32s': commands a second expected (50/s)",
				    v);
	}
	memcpy(num, v, len - 2);
	num[len - 2] = '\0';
	if (moat_int_parse(num, 1, MOAT_POLICY_JOB_RATE_MAX, &rate, err) != 0) {
		return moat_err_set(err, MOAT_EINVAL, "[policy] job_rate: from 1/s to %u/s",
				    MOAT_POLICY_JOB_RATE_MAX);
	}
	*inout = (uint32_t)rate;
	return 0;
}

int moat_broker_policy_limits(const struct moat_config *cfg, struct moat_policy *p,
			      struct moat_err *err)
{
	static const char *const keys[] = {
		"operator_write_commands",
		"device_msgs_per_s",
		"device_bytes_per_s",
		"device_burst",
		"device_max_payload",
		"service_msgs_per_s",
		"service_bytes_per_s",
		"service_burst",
		"service_max_payload",
		"operator_msgs_per_s",
		"operator_bytes_per_s",
		"operator_burst",
		"operator_max_payload",
		"flap_connects",
		"flap_window",
		"flap_ban",
		"service_flap_connects",
		"service_flap_window",
		"service_flap_ban",
		"operator_flap_connects",
		"operator_flap_window",
		"operator_flap_ban",
		"job_rate",
		NULL,
	};
	int rc;
	char key[64];

	if ((rc = moat_config_check_keys(cfg, "policy", keys, err)) != 0 ||
	    (rc = moat_config_get_bool(cfg, "policy", "operator_write_commands",
				       p->operator_write_commands, &p->operator_write_commands,
				       err)) != 0) {
		return rc;
	}
	for (int r = 0; r < MOAT_ROLE_COUNT; r++) {
		const char *role = moat_role_name((enum moat_role)r);
		struct moat_policy_limits *l = &p->limits[r];
		snprintf(key, sizeof(key), "%s_msgs_per_s", role);
		if ((rc = get_u32(cfg, key, 0, MOAT_POLICY_RATE_MAX, &l->msgs_per_s, err)) != 0) {
			return rc;
		}
		snprintf(key, sizeof(key), "%s_bytes_per_s", role);
		if ((rc = get_u32(cfg, key, 0, MOAT_POLICY_RATE_MAX, &l->bytes_per_s, err)) != 0) {
			return rc;
		}
		snprintf(key, sizeof(key), "%s_burst", role);
		if ((rc = get_u32(cfg, key, MOAT_POLICY_BURST_MIN, MOAT_POLICY_BURST_MAX, &l->burst,
				  err)) != 0) {
			return rc;
		}
		snprintf(key, sizeof(key), "%s_max_payload", role);
		if ((rc = get_u32(cfg, key, MOAT_POLICY_PAYLOAD_MIN_BYTES,
				  MOAT_POLICY_PAYLOAD_MAX_BYTES, &l->max_payload, err)) != 0) {
			return rc;
		}
	}
	/* flap_* are the devices'; service_flap_* and operator_flap_* the other roles'. */
	for (int r = 0; r < MOAT_ROLE_COUNT; r++) {
		struct moat_policy_flapping *f = &p->flapping[r];
		const char *prefix = r == MOAT_ROLE_DEVICE ? "" : moat_role_name((enum moat_role)r);
		const char *sep = r == MOAT_ROLE_DEVICE ? "" : "_";
		char k2[64], k3[64];
		snprintf(key, sizeof(key), "%s%sflap_connects", prefix, sep);
		snprintf(k2, sizeof(k2), "%s%sflap_window", prefix, sep);
		snprintf(k3, sizeof(k3), "%s%sflap_ban", prefix, sep);
		if ((rc = get_u32(cfg, key, 0, MOAT_POLICY_FLAP_CONNECTS_MAX, &f->connects, err)) !=
			    0 ||
		    (rc = get_dur_u32(cfg, k2, MOAT_POLICY_FLAP_WINDOW_MIN_S,
				      MOAT_POLICY_FLAP_WINDOW_MAX_S, &f->window_s, err)) != 0 ||
		    (rc = get_dur_u32(cfg, k3, MOAT_POLICY_FLAP_BAN_MIN_S,
				      MOAT_POLICY_FLAP_BAN_MAX_S, &f->ban_s, err)) != 0) {
			return rc;
		}
	}
	if ((rc = get_job_rate(cfg, &p->job_msgs_per_s, err)) != 0) {
		return rc;
	}
	return moat_policy_validate(p, err);
}
