/* fuzz_broker_conf.c: moat.conf as the broker writer reads it (src/broker/settings.c:
 * [broker] and [policy]) and what it renders from it (mosquitto.conf, acl.conf, the
 * policy). Invariants: a refusal says why; an accepted configuration renders a
 * mosquitto.conf whose every listener requires client certificates over TLS, with one line
 * per setting (no value can inject a line), and a policy that parses back. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/broker.h"
#include "moat/config.h"
#include "moat/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t count_of(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) {
		n++;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_config *cfg = NULL;
	struct moat_deploy_conf dc;
	struct moat_broker_settings s;
	struct moat_policy p;
	struct moat_err err;
	char *conf = NULL;
	char *acl = NULL;
	char *pol = NULL;
	size_t pol_len = 0;

	moat_err_clear(&err);
	if (moat_config_parse("fuzz.conf", (const char *)data, size, &cfg, &err) != 0) {
		return 0;
	}
	memset(&dc, 0, sizeof(dc));
	snprintf(dc.broker_hosts[0], sizeof(dc.broker_hosts[0]), "broker.example");
	snprintf(dc.broker_hosts[1], sizeof(dc.broker_hosts[1]), "127.0.0.1");
	dc.broker_host_count = 2;
	dc.broker_port = 8883;
	moat_policy_init(&p);
	moat_err_clear(&err);
	if (moat_broker_settings_load(cfg, &dc, &s, &err) != 0) {
		if (err.msg[0] == '\0') {
			abort();
		}
		goto out;
	}
	moat_err_clear(&err);
	if (moat_broker_policy_limits(cfg, &p, &err) != 0) {
		if (err.msg[0] == '\0') {
			abort();
		}
		goto out;
	}
	if (moat_policy_add_identity(&p, "dev-a", MOAT_ROLE_DEVICE, MOAT_POLICY_ACTIVE, NULL) !=
		    0 ||
	    moat_policy_add_identity(&p, "svc-1", MOAT_ROLE_SERVICE, MOAT_POLICY_ACTIVE, NULL) !=
		    0 ||
	    moat_broker_render_conf("/srv/d", &s, s.plugin ? "/srv/moat_broker.so" : NULL, &conf,
				    NULL, &err) != 0 ||
	    moat_broker_render_acl(&p, &acl, NULL, &err) != 0 ||
	    moat_policy_render_alloc(&p, &pol, &pol_len, &err) != 0) {
		abort(); /* validated settings always render */
	}
	size_t listeners = count_of(conf, "\nlistener ");
	if (listeners == 0 || listeners != count_of(conf, "\nrequire_certificate true\n") ||
	    listeners != count_of(conf, "\ncertfile /srv/d/pki/server.crt\n") ||
	    count_of(conf, "\nallow_anonymous ") != 1 || strstr(conf, "\nport ") ||
	    strstr(acl, " #\n")) {
		abort();
	}
	struct moat_policy back;
	if (moat_policy_parse(pol, pol_len, &back, &err) != 0 ||
	    back.identity_count != p.identity_count ||
	    back.operator_write_commands != p.operator_write_commands ||
	    memcmp(back.limits, p.limits, sizeof(p.limits)) != 0) {
		abort();
	}
	moat_policy_free(&back);
out:
	free(conf);
	free(acl);
	free(pol);
	moat_policy_free(&p);
	moat_config_free(cfg);
	return 0;
}
