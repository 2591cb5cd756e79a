/* test_broker.c: the broker's generated files (src/broker) and the supervisor
 * (src/util/supervise.c).
 *
 * The generated mosquitto.conf is checked for what must never be there (a plaintext
 * listener, use_identity_as_username with the plugin) and what must (TLS on every
 * listener); its TLS 1.2 suites are expanded by OpenSSL and each must be ECDHE + AEAD.
 * Every line of the generated ACL is replayed through moat_acl_decide (topic.h), so the
 * ACL file can grant nothing the plugin's decision would refuse; the tutorial's
 * `pattern read #` must be absent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "moat/broker.h"
#include "moat/config.h"
#include "moat/supervise.h"
#include "moat/timeutil.h"
#include "moat/tlspolicy.h"
#include "moat/topic.h"
#include "testutil.h"

static size_t count_of(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) {
		n++;
	}
	return n;
}

static void settings_default(struct moat_broker_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->port = 8883;
	snprintf(s->listen[0], sizeof(s->listen[0]), "127.0.0.1");
	snprintf(s->listen[1], sizeof(s->listen[1]), "::1");
	s->listen_count = 2;
	s->plugin = true;
	snprintf(s->user, sizeof(s->user), "mosquitto");
	s->max_connections = 100;
	s->message_size_limit = 4096;
	s->max_inflight_messages = 20;
	s->max_queued_messages = 1000;
	s->max_keepalive = 300;
	s->autosave_interval = 300;
}

static void test_conf_plugin_mode(void **state)
{
	(void)state;
	struct moat_broker_settings s;
	struct moat_err err = {0};
	char *text = NULL;
	size_t len = 0;
	settings_default(&s);
	assert_int_equal(moat_broker_render_conf("/srv/fleet", &s, "/opt/moat/moat_broker.so",
						 &text, &len, &err),
			 0);
	assert_int_equal(strlen(text), len);
	assert_non_null(strstr(text, "\nlistener 8883 127.0.0.1\n"));
	assert_non_null(strstr(text, "\nlistener 8883 ::1\n"));
	/* every listener is a TLS listener with client certificates: no plaintext one */
	assert_int_equal(count_of(text, "\nlistener "), 2);
	assert_int_equal(count_of(text, "\nrequire_certificate true\n"), 2);
	assert_int_equal(count_of(text, "\ncertfile /srv/fleet/pki/server.crt\n"), 2);
	assert_int_equal(count_of(text, "\nkeyfile /srv/fleet/pki/server.key\n"), 2);
	assert_int_equal(count_of(text, "\ncafile /srv/fleet/pki/ca.crt\n"), 2);
	assert_int_equal(count_of(text, "\ncrlfile /srv/fleet/pki/crl.pem\n"), 2);
	assert_int_equal(count_of(text, "\ntls_version tlsv1.2\n"), 2);
	assert_null(strstr(text, "\nport "));
	assert_null(strstr(text, "bind_address"));
	assert_non_null(strstr(text, "\nallow_anonymous false\n"));
	assert_non_null(strstr(text, "\nplugin /opt/moat/moat_broker.so\n"));
	assert_non_null(strstr(text, "\nplugin_opt_policy_file /srv/fleet/broker/policy\n"));
	assert_non_null(strstr(text, "\nplugin_opt_crl_file /srv/fleet/pki/crl.pem\n"));
	assert_non_null(
		strstr(text, "\nplugin_opt_events_file /srv/fleet/log/security-events.jsonl\n"));
	/* with the plugin, use_identity_as_username would skip its BASIC_AUTH */
	assert_null(strstr(text, "use_identity_as_username"));
	assert_null(strstr(text, "acl_file"));
	assert_non_null(strstr(text, "\npersistence true\n"));
	assert_non_null(strstr(text, "\npersistence_location /srv/fleet/broker/data/\n"));
	assert_non_null(strstr(text, "\nlog_dest file /srv/fleet/log/mosquitto.log\n"));
	assert_non_null(strstr(text, "\nconnection_messages true\n"));
	assert_null(strstr(text, "\npid_file")); /* the supervisor writes run/mosquitto.pid */
	assert_non_null(strstr(text, "\nmessage_size_limit 4096\n"));
	assert_non_null(strstr(text, "\nmax_connections 100\n"));
	assert_non_null(strstr(text, "\nmax_keepalive 300\n"));
	assert_non_null(strstr(text, "\nset_tcp_nodelay true\n"));
	assert_non_null(strstr(text, "\nuser mosquitto\n"));
	free(text);
}

static void test_conf_acl_mode(void **state)
{
	(void)state;
	struct moat_broker_settings s;
	struct moat_err err = {0};
	char *text = NULL;
	settings_default(&s);
	s.listen_count = 0; /* every address */
	s.max_connections = -1;
	assert_int_equal(moat_broker_render_conf("/d", &s, NULL, &text, NULL, &err), 0);
	assert_non_null(strstr(text, "\nlistener 8883\n"));
	assert_int_equal(count_of(text, "\nlistener "), 1);
	assert_non_null(strstr(text, "\nacl_file /d/broker/acl.conf\n"));
	assert_non_null(strstr(text, "\nuse_identity_as_username true\n"));
	assert_non_null(strstr(text, "\nuse_username_as_clientid true\n"));
	assert_null(strstr(text, "\nplugin "));
	assert_null(strstr(text, "plugin_opt_"));
	assert_null(strstr(text, "max_connections"));
	assert_non_null(strstr(text, "# mode: acl-file\n"));
	free(text);
}

static void test_conf_refuses_unsafe_paths(void **state)
{
	(void)state;
	struct moat_broker_settings s;
	struct moat_err err = {0};
	char *text = NULL;
	settings_default(&s);
	assert_int_equal(moat_broker_render_conf("relative/dir", &s, NULL, &text, NULL, &err),
			 MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "not an absolute path"));
	assert_int_equal(moat_broker_render_conf("/a dir", &s, NULL, &text, NULL, &err),
			 MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "space"));
	assert_int_equal(moat_broker_render_conf("/a\nlistener 1883", &s, NULL, &text, NULL, &err),
			 MOAT_EINVAL);
	assert_int_equal(moat_broker_render_conf("/d#x", &s, NULL, &text, NULL, &err), MOAT_EINVAL);
	assert_int_equal(moat_broker_render_conf("/d", &s, "/p lugin.so", &text, NULL, &err),
			 MOAT_EINVAL);
	assert_null(text);
}

/* OpenSSL expands the configured TLS 1.2 list; every suite must be ECDHE with an AEAD. */
static void test_tls12_ciphers_are_ecdhe_aead(void **state)
{
	(void)state;
	assert_int_equal(MOAT_TLS_MIN_VERSION_OPENSSL, TLS1_2_VERSION);
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_set_cipher_list(ctx, MOAT_TLS12_CIPHERS), 1);
	STACK_OF(SSL_CIPHER) *list = SSL_CTX_get_ciphers(ctx);
	int tls12 = 0;
	for (int i = 0; i < sk_SSL_CIPHER_num(list); i++) {
		const SSL_CIPHER *c = sk_SSL_CIPHER_value(list, i);
		if (SSL_CIPHER_get_kx_nid(c) == NID_kx_any) {
			continue; /* TLS 1.3 suites: OpenSSL's defaults, all AEAD */
		}
		tls12++;
		assert_true(SSL_CIPHER_is_aead(c));
		assert_int_equal(SSL_CIPHER_get_kx_nid(c), NID_kx_ecdhe);
	}
	assert_int_equal(tls12, 6);
	SSL_CTX_free(ctx);
}

static void add(struct moat_policy *p, const char *name, enum moat_role role,
		enum moat_policy_status st)
{
	assert_int_equal(moat_policy_add_identity(p, name, role, st, NULL), 0);
}

/* Replaces every "+" level by word and "%u" by id. */
static void concretize(const char *topic, const char *id, const char *word, char *out, size_t size)
{
	size_t o = 0;
	out[0] = '\0';
	while (*topic) {
		const char *rep = NULL;
		size_t skip = 1;
		if (strncmp(topic, "%u", 2) == 0) {
			rep = id;
			skip = 2;
		} else if (topic[0] == '+') {
			rep = word;
		}
		if (rep) {
			o += (size_t)snprintf(out + o, size - o, "%s", rep);
		} else {
			o += (size_t)snprintf(out + o, size - o, "%c", topic[0]);
		}
		assert_true(o < size);
		topic += skip;
	}
}

/* Every grant in the ACL is one the shared decision grants too. */
static void replay_acl(const char *text, const struct moat_policy *p, size_t *out_users,
		       size_t *out_writes_for)
{
	char *copy = strdup(text);
	char *next = copy;
	const struct moat_policy_identity *user = NULL;
	struct moat_acl_policy pol = {.operator_write_commands = p->operator_write_commands};
	size_t users = 0;
	size_t patterns = 0;
	*out_writes_for = 0;
	while (next && *next) {
		char kw[16], acc[16], topic[256], conc[256];
		char *line = next;
		char *nl = strchr(line, '\n');
		next = nl ? nl + 1 : NULL;
		if (nl) {
			*nl = '\0';
		}
		if (line[0] == '#' || line[0] == '\0') {
			continue;
		}
		if (sscanf(line, "user %255s", topic) == 1) {
			user = moat_policy_find(p, topic);
			assert_non_null(user);
			assert_int_not_equal(user->role, MOAT_ROLE_DEVICE);
			assert_int_equal(user->status, MOAT_POLICY_ACTIVE);
			users++;
			continue;
		}
		assert_int_equal(sscanf(line, "%15s %15s %255s", kw, acc, topic), 3);
		assert_null(strchr(topic, '#'));
		bool write = strcmp(acc, "write") == 0;
		assert_true(write || strcmp(acc, "read") == 0);
		if (strcmp(kw, "pattern") == 0) {
			assert_null(user); /* patterns come first, outside user blocks */
			assert_non_null(strstr(topic, "%u"));
			patterns++;
			concretize(topic, "dev-a", "reboot", conc, sizeof(conc));
			assert_true(
				moat_acl_decide(MOAT_ROLE_DEVICE, "dev-a",
						write ? MOAT_ACCESS_WRITE : MOAT_ACCESS_SUBSCRIBE,
						write	   ? conc
						: topic[0] ? conc
							   : topic,
						&pol, NULL));
			if (!write) {
				/* a device's read grant never reaches another device */
				concretize(topic, "dev-b", "reboot", conc, sizeof(conc));
				assert_false(moat_acl_decide(MOAT_ROLE_DEVICE, "dev-a",
							     MOAT_ACCESS_READ, conc, &pol, NULL));
			}
			continue;
		}
		assert_string_equal(kw, "topic");
		assert_non_null(user);
		if (write) {
			(*out_writes_for)++;
			concretize(topic, "", "dev-a", conc, sizeof(conc));
			/* "+" as the command name too */
			assert_true(moat_acl_decide(user->role, user->name, MOAT_ACCESS_WRITE, conc,
						    &pol, NULL));
		} else {
			assert_true(moat_acl_decide(user->role, user->name, MOAT_ACCESS_SUBSCRIBE,
						    topic, &pol, NULL));
		}
	}
	assert_int_equal(patterns, 5);
	*out_users = users;
	free(copy);
}

static void test_acl_least_privilege(void **state)
{
	(void)state;
	struct moat_policy p;
	struct moat_err err = {0};
	char *text = NULL;
	size_t users = 0;
	size_t writes = 0;
	moat_policy_init(&p);
	add(&p, "dev-a", MOAT_ROLE_DEVICE, MOAT_POLICY_ACTIVE);
	add(&p, "dev-b", MOAT_ROLE_DEVICE, MOAT_POLICY_DISABLED);
	add(&p, "op-1", MOAT_ROLE_OPERATOR, MOAT_POLICY_ACTIVE);
	add(&p, "op-2", MOAT_ROLE_OPERATOR, MOAT_POLICY_DISABLED);
	add(&p, "svc-1", MOAT_ROLE_SERVICE, MOAT_POLICY_ACTIVE);
	add(&p, "svc-2", MOAT_ROLE_SERVICE, MOAT_POLICY_REVOKED);
	p.operator_write_commands = true;
	assert_int_equal(moat_broker_render_acl(&p, &text, NULL, &err), 0);
	/* the tutorial's last line granted everyone read on everything */
	assert_null(strstr(text, "pattern read #"));
	assert_null(strstr(text, " #\n"));
	assert_non_null(strstr(text, "pattern write devices/%u/telemetry\n"));
	assert_non_null(strstr(text, "pattern read devices/%u/commands/+\n"));
	assert_non_null(strstr(text, "user svc-1\n"));
	assert_null(strstr(text, "user svc-2\n"));
	assert_null(strstr(text, "user op-2\n"));
	assert_null(strstr(text, "user dev-a\n"));
	replay_acl(text, &p, &users, &writes);
	assert_int_equal(users, 2);
	assert_int_equal(writes, 2); /* svc-1 and op-1 write commands */
	free(text);

	p.operator_write_commands = false;
	assert_int_equal(moat_broker_render_acl(&p, &text, NULL, &err), 0);
	replay_acl(text, &p, &users, &writes);
	assert_int_equal(writes, 1); /* svc-1 only */
	free(text);
	moat_policy_free(&p);
}

static struct moat_config *conf_of(const char *text)
{
	struct moat_config *cfg = NULL;
	struct moat_err err = {0};
	if (moat_config_parse("moat.conf", text, strlen(text), &cfg, &err) != 0) {
		fail_msg("%s", err.msg);
	}
	return cfg;
}

static void deploy_conf(struct moat_deploy_conf *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->broker_hosts[0], sizeof(c->broker_hosts[0]), "broker.example");
	snprintf(c->broker_hosts[1], sizeof(c->broker_hosts[1]), "127.0.0.1");
	c->broker_host_count = 2;
	c->broker_port = 18883;
}

static void test_settings(void **state)
{
	(void)state;
	struct moat_deploy_conf dc;
	struct moat_broker_settings s;
	struct moat_err err = {0};
	deploy_conf(&dc);
	struct moat_config *cfg = conf_of("[broker]\nhosts = broker.example, 127.0.0.1\n");
	assert_int_equal(moat_broker_settings_load(cfg, &dc, &s, &err), 0);
	assert_int_equal(s.port, 18883);
	assert_int_equal(s.listen_count, 1); /* the IP among the hosts, not the name */
	assert_string_equal(s.listen[0], "127.0.0.1");
	assert_true(s.plugin);
	assert_string_equal(s.user, "mosquitto");
	assert_int_equal(s.max_keepalive, 300);
	const char *a = NULL;
	const char *n = NULL;
	moat_broker_probe_target(&s, &dc, &a, &n);
	assert_string_equal(a, "127.0.0.1");
	assert_string_equal(n, "127.0.0.1");
	moat_config_free(cfg);

	cfg = conf_of("[broker]\nlisten = ::1\nplugin = no\nmax_connections = -1\n"
		      "message_size_limit = 1000\n");
	assert_int_equal(moat_broker_settings_load(cfg, &dc, &s, &err), 0);
	assert_string_equal(s.listen[0], "::1");
	assert_false(s.plugin);
	assert_int_equal(s.message_size_limit, 1000);
	moat_broker_probe_target(&s, &dc, &a, &n);
	assert_string_equal(a, "::1");
	assert_string_equal(n, "broker.example"); /* ::1 is not a certificate name */
	moat_config_free(cfg);

	static const struct {
		const char *text;
		const char *msg;
	} bad[] = {
		{"[broker]\nlisten = broker.example\n", "not an IP address"},
		{"[broker]\nlisten = 127.0.0.1,\n", "listen"},
		{"[broker]\nbogus = 1\n", "bogus"},
		{"[broker]\nmax_connections = 0\n", "max_connections"},
		{"[broker]\nmax_keepalive = 5\n", "max_keepalive"},
		{"[broker]\nmessage_size_limit = -1\n", "message_size_limit"},
		{"[broker]\nuser = mos quitto\n", "user"},
		{"[broker]\nuser = -x\n", "user"},
		{"[broker]\nuser = root\n", "root"},
		{"[broker]\nplugin = maybe\n", "plugin"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg = conf_of(bad[i].text);
		memset(&err, 0, sizeof(err));
		assert_int_equal(moat_broker_settings_load(cfg, &dc, &s, &err), MOAT_EINVAL);
		if (!strstr(err.msg, bad[i].msg)) {
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].msg);
		}
		moat_config_free(cfg);
	}
}

static void test_policy_limits(void **state)
{
	(void)state;
	struct moat_policy p;
	struct moat_err err = {0};
	moat_policy_init(&p);
	struct moat_config *cfg = conf_of("[policy]\noperator_write_commands = no\n"
					  "device_msgs_per_s = 5\ndevice_max_payload = 1024\n"
					  "flap_window = 2m\nflap_ban = 1h\n"
					  "service_flap_connects = 20\noperator_flap_ban = 30s\n"
					  "job_rate = 120/s\n");
	assert_int_equal(moat_broker_policy_limits(cfg, &p, &err), 0);
	assert_int_equal(p.job_msgs_per_s, 120);
	assert_false(p.operator_write_commands);
	assert_int_equal(p.limits[MOAT_ROLE_DEVICE].msgs_per_s, 5);
	assert_int_equal(p.limits[MOAT_ROLE_DEVICE].max_payload, 1024);
	assert_int_equal(p.flapping[MOAT_ROLE_DEVICE].window_s, 120);
	assert_int_equal(p.flapping[MOAT_ROLE_DEVICE].ban_s, 3600);
	/* the per-role keys reach their role only */
	assert_int_equal(p.flapping[MOAT_ROLE_SERVICE].connects, 20);
	assert_int_equal(p.flapping[MOAT_ROLE_OPERATOR].ban_s, 30);
	assert_int_not_equal(p.flapping[MOAT_ROLE_DEVICE].connects, 20);
	moat_config_free(cfg);

	static const char *const bad[] = {
		"[policy]\ndevice_burst = 0\n",
		"[policy]\ndevice_max_payload = 0\n",
		"[policy]\nservice_msgs_per_s = -1\n",
		"[policy]\nflap_window = 0\n",
		"[policy]\nflap_ban = 9999w\n",
		"[policy]\nrobot_msgs_per_s = 1\n",
		"[policy]\nservice_flap_connects = 32\n",
		"[policy]\noperator_flap_window = 0\n",
		"[policy]\noperator_flap_ban = 9999w\n",
		"[policy]\ndevice_flap_ban = 1h\n",
		"[policy]\njob_rate = 50\n",
		"[policy]\njob_rate = 0/s\n",
		"[policy]\njob_rate = 600/m\n",
		"[policy]\njob_rate = 10001/s\n",
		"[policy]\njob_rate = 050/s\n",
		"[policy]\njob_rate = /s\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		moat_policy_init(&p);
		cfg = conf_of(bad[i]);
		assert_int_equal(moat_broker_policy_limits(cfg, &p, &err), MOAT_EINVAL);
		if (strstr(bad[i], "job_rate")) {
			assert_non_null(strstr(err.msg, "[policy] job_rate"));
		}
		moat_config_free(cfg);
	}
	moat_policy_init(&p);
	cfg = conf_of("[policy]\ndevice_msgs_per_s = 5\n");
	assert_int_equal(moat_broker_policy_limits(cfg, &p, &err), 0);
	assert_int_equal(p.job_msgs_per_s, MOAT_POLICY_JOB_RATE_DEFAULT);
	moat_config_free(cfg);
}

static void test_reachable(void **state)
{
	(void)state;
	char dir[TU_TMPDIR_MAX];
	char file[TU_TMPDIR_MAX + 2];
	struct moat_err err = {0};
	assert_int_equal(tu_tmpdir_make(dir, sizeof(dir), "broker"), 0);
	tu_path(file, sizeof(file), dir, "f");
	int fd = open(file, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);
	uid_t other = getuid() == 4242 ? 4343 : 4242;
	assert_int_equal(chmod(dir, 0700), 0);
	assert_int_equal(moat_broker_check_reachable(file, other, other, &err), MOAT_EDENIED);
	assert_non_null(strstr(err.msg, dir));
	assert_non_null(strstr(err.msg, "not searchable"));
	assert_int_equal(chmod(dir, 0711), 0);
	assert_int_equal(moat_broker_check_reachable(file, other, other, &err), 0);
	assert_int_equal(chmod(file, 0600), 0);
	assert_int_equal(moat_broker_check_reachable(file, other, other, &err), MOAT_EDENIED);
	assert_non_null(strstr(err.msg, "not readable"));
	assert_int_equal(chmod(file, 0640), 0);
	assert_int_equal(moat_broker_check_reachable(file, other, getgid(), &err), 0);
	assert_int_equal(moat_broker_check_reachable(file, getuid(), other, &err), 0);
	assert_int_equal(tu_tmpdir_remove(dir), 0);
}

static void test_plugin_find(void **state)
{
	(void)state;
	char buf[4096];
	struct moat_err err = {0};
	setenv(MOAT_BROKER_PLUGIN_ENV, "/nonexistent/moat_broker.so", 1);
	assert_int_equal(moat_broker_plugin_find(buf, sizeof(buf), &err), MOAT_ENOENT);
	assert_non_null(strstr(err.msg, "--no-plugin"));
	setenv(MOAT_BROKER_PLUGIN_ENV, "/bin/sh", 1);
	assert_int_equal(moat_broker_plugin_find(buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "/bin/sh");
	unsetenv(MOAT_BROKER_PLUGIN_ENV);
}

static void test_probe_refused(void **state)
{
	(void)state;
	struct moat_err err = {0};
	/* port 1 on loopback: nothing listens there in a test environment */
	int rc = moat_broker_probe("127.0.0.1", 1, "/etc/ssl/certs/ca-certificates.crt",
				   "127.0.0.1", 500, &err);
	assert_true(rc == MOAT_EIO || rc == MOAT_ECRYPTO);
	assert_int_equal(moat_broker_probe("not-an-ip", 1, "/etc/ssl/certs/ca-certificates.crt",
					   "x", 500, &err),
			 MOAT_EINVAL);
}

/* The supervisor restarts a child that dies and stops everything on SIGTERM. */
static void test_supervisor(void **state)
{
	(void)state;
	struct moat_sup s;
	struct moat_err err = {0};
	char pidfile[] = "/tmp/moat-test-sup.XXXXXX";
	int fd = mkstemp(pidfile);
	assert_true(fd >= 0);
	close(fd);
	char *const argv[] = {"/bin/sleep", "600", NULL};
	assert_int_equal(moat_sup_init(&s, &err), 0);
	assert_int_equal(moat_sup_add(&s, "sleeper", argv, pidfile, &err), 0);
	char *const bad_argv[] = {NULL};
	assert_int_equal(moat_sup_add(&s, "bad", bad_argv, NULL, &err), MOAT_EINVAL);
	/* what the child reads as it starts, recorded before each start */
	char conf[] = "/tmp/moat-test-sup-conf.XXXXXX";
	fd = mkstemp(conf);
	assert_true(fd >= 0);
	close(fd);
	char record[sizeof(conf) + 16];
	snprintf(record, sizeof(record), "%s.started", conf);
	tu_write_text(conf, "first\n");
	assert_int_equal(moat_sup_record_at_start(&s, "nobody", conf, record, &err), MOAT_EINVAL);
	assert_int_equal(moat_sup_record_at_start(&s, "sleeper", conf, record, &err), 0);
	assert_int_equal(moat_sup_start(&s, &err), 0);
	size_t rlen = 0;
	char *text = tu_read_file(record, 1024, &rlen);
	assert_string_equal(text, "first\n");
	free(text);
	tu_write_text(conf, "second\n"); /* not live until the next start */
	text = tu_read_file(record, 1024, &rlen);
	assert_string_equal(text, "first\n");
	free(text);
	pid_t first = s.children[0].pid;
	assert_true(first > 0);
	assert_true(kill(first, 0) == 0);
	assert_int_equal(kill(first, SIGKILL), 0);
	for (int i = 0; i < 100 && s.children[0].starts < 2; i++) {
		assert_int_equal(moat_sup_poll(&s, 200, &err), MOAT_SUP_RUNNING);
	}
	assert_int_equal(s.children[0].starts, 2);
	assert_int_equal(s.children[0].deaths, 1);
	pid_t second = s.children[0].pid;
	assert_true(second > 0 && second != first);
	text = tu_read_file(record, 1024, &rlen); /* the restart read the file again */
	assert_string_equal(text, "second\n");
	free(text);
	unlink(conf);
	unlink(record);
	assert_int_equal(raise(SIGTERM), 0); /* blocked: arrives through the signalfd */
	int r = MOAT_SUP_RUNNING;
	for (int i = 0; i < 50 && r == MOAT_SUP_RUNNING; i++) {
		r = moat_sup_poll(&s, 200, &err);
	}
	assert_int_equal(r, MOAT_SUP_STOPPED);
	assert_int_equal(s.children[0].pid, 0);
	assert_int_equal(s.children[0].deaths, 1); /* a requested stop is not a death */
	assert_true(kill(second, 0) != 0);
	assert_int_equal(access(pidfile, F_OK), -1);
	moat_sup_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf_plugin_mode),
		cmocka_unit_test(test_conf_acl_mode),
		cmocka_unit_test(test_conf_refuses_unsafe_paths),
		cmocka_unit_test(test_tls12_ciphers_are_ecdhe_aead),
		cmocka_unit_test(test_acl_least_privilege),
		cmocka_unit_test(test_settings),
		cmocka_unit_test(test_policy_limits),
		cmocka_unit_test(test_reachable),
		cmocka_unit_test(test_plugin_find),
		cmocka_unit_test(test_probe_refused),
		cmocka_unit_test(test_supervisor),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
