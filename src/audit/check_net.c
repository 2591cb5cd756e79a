/* check_net.c: the network policy of the static audit: moat.conf's [network] rendered with
 * src/net's renderer, proven to block IoT -> management and IoT <-> IoT on its rule list,
 * and (with opts.system) compared with the ruleset live in this host's kernel: both listed
 * by nft, the expected one loaded into a throwaway network namespace, so the comparison is
 * nft's own normal form on both sides. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "audit_internal.h"
#include "moat/net.h"
#include "moat/spawn.h"

#define CHECKLIST_NET "Network: devices isolated on their VLAN, reach only broker and updates"

const struct moat_audit_check audit_net_policy = {"net.policy", MOAT_AUDIT_HIGH,
						  "moat.conf's [network] policy parses and renders",
						  CHECKLIST_NET, MOAT_OWASP_I2};
const struct moat_audit_check audit_net_live = {
	"net.live", MOAT_AUDIT_HIGH,
	"the nftables ruleset live on this host is moat's policy (nft list table inet moat)",
	"Drift: every file derived from the registry matches it", MOAT_OWASP_I2};
const struct moat_audit_check audit_net_iot_mgmt = {
	"net.iot_to_management", MOAT_AUDIT_CRITICAL,
	"the policy drops IoT -> management (other than the broker and update ports)",
	CHECKLIST_NET, MOAT_OWASP_I2};
const struct moat_audit_check audit_net_iot_iot = {"net.iot_to_iot", MOAT_AUDIT_CRITICAL,
						   "the policy drops IoT <-> IoT", CHECKLIST_NET,
						   MOAT_OWASP_I2};

/* A host address of subnet s other than the broker's and the server's. */
static uint32_t host_in(const struct moat_net_policy *p, const struct moat_net_subnet *s,
			uint32_t skip)
{
	for (uint32_t h = 2; h < 250; h++) {
		uint32_t a = s->addr + h;
		if (a != p->broker_addr && a != p->server_addr && a != skip) {
			return a;
		}
	}
	return s->addr + 1;
}

int audit_net_isolation(struct audit_ctx *a, const struct moat_net_policy *p)
{
	static const uint16_t ports[] = {0, 22, 80, 443, 1883, 5432};
	char title[1024], ev[1024], src[16], dst[16];
	int rc = 0;
	for (size_t z = 0; rc == 0 && z < p->zone_count; z++) {
		if (p->zones[z].kind != MOAT_NET_ZONE_DEVICE || p->zones[z].subnet_count == 0) {
			continue;
		}
		uint32_t dev = host_in(p, &p->zones[z].subnets[0], 0);
		uint32_t peer = host_in(p, &p->zones[z].subnets[0], dev);
		for (size_t m = 0; rc == 0 && m < p->zone_count; m++) {
			if (p->zones[m].kind != MOAT_NET_ZONE_MANAGEMENT ||
			    p->zones[m].subnet_count == 0) {
				continue;
			}
			uint32_t mgmt = host_in(p, &p->zones[m].subnets[0], 0);
			for (size_t i = 0; rc == 0 && i < sizeof(ports) / sizeof(ports[0]); i++) {
				if (moat_net_decide(p, dev, mgmt, ports[i])) {
					moat_net_addr_format(dev, src, sizeof(src));
					moat_net_addr_format(mgmt, dst, sizeof(dst));
					snprintf(title, sizeof(title),
						 "zone %s may reach management host %s (port %u)",
						 p->zones[z].name, dst, ports[i]);
					snprintf(ev, sizeof(ev), "%s -> %s:%u accepted", src, dst,
						 ports[i]);
					rc = audit_add(a, &audit_net_iot_mgmt, MOAT_AUDIT_CRITICAL,
						       title, ev, "fix [network] in moat.conf",
						       "moat.conf", 0);
					break;
				}
			}
		}
		for (size_t i = 0; rc == 0 && i < sizeof(ports) / sizeof(ports[0]); i++) {
			if (moat_net_decide(p, dev, peer, ports[i]) ||
			    moat_net_decide(p, peer, dev, ports[i])) {
				moat_net_addr_format(dev, src, sizeof(src));
				moat_net_addr_format(peer, dst, sizeof(dst));
				snprintf(title, sizeof(title),
					 "devices of zone %s may reach each other",
					 p->zones[z].name);
				snprintf(ev, sizeof(ev), "%s <-> %s:%u accepted", src, dst,
					 ports[i]);
				rc = audit_add(a, &audit_net_iot_iot, MOAT_AUDIT_CRITICAL, title,
					       ev, "fix [network] in moat.conf", "moat.conf", 0);
				break;
			}
		}
	}
	return rc;
}

#define NFT_OUT_MAX (1024u * 1024u)

/* Runs argv with input; stdout into out (NFT_OUT_MAX), stderr's first line into errline. */
static int run(char *const *argv, const char *input, size_t input_len, char *out, size_t *out_len,
	       char *errline, size_t errsize, int *status, struct moat_err *err)
{
	struct moat_spawn sp = {.argv = argv,
				.flags = MOAT_SPAWN_SEARCH_PATH | MOAT_SPAWN_CLOSE_FDS |
					 MOAT_SPAWN_SIGDEFAULT | MOAT_SPAWN_SIGPIPE_DEFAULT};
	struct moat_spawn_capture o = {.buf = out, .size = NFT_OUT_MAX};
	struct moat_spawn_capture e = {.buf = errline, .size = errsize};
	int rc = moat_spawn_run(&sp, input, input_len, &o, &e, status, err);
	*out_len = o.len;
	errline[strcspn(errline, "\n")] = '\0';
	return rc;
}

static int live(struct audit_ctx *a, const char *rendered, size_t rendered_len)
{
	const struct moat_audit_check *c = &audit_net_live;
	char *have = malloc(NFT_OUT_MAX), *want = malloc(NFT_OUT_MAX);
	char errline[256] = "", title[1024], ev[600], wl[200], hl[200];
	size_t have_len = 0, want_len = 0;
	int status = 0, rc = 0;
	struct moat_err e;
	if (!have || !want) {
		free(have);
		free(want);
		return moat_err_set(a->err, MOAT_ENOMEM, "audit: out of memory");
	}
	char *list[] = {"nft", "list", "table", "inet", MOAT_NET_TABLE, NULL};
	if (run(list, NULL, 0, have, &have_len, errline, sizeof(errline), &status, &e) != 0) {
		rc = audit_cannot(a, c, e.msg);
		goto out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (strstr(errline, "No such file") || strstr(errline, "does not exist")) {
			rc = audit_add(a, c, MOAT_AUDIT_MEDIUM,
				       "the network policy is not applied on this host (no table "
				       "inet moat)",
				       errline, "moat net apply (on the gateway)", NULL, 0);
		} else {
			snprintf(title, sizeof(title), "nft list: %s", errline);
			rc = audit_cannot(a, c, title);
		}
		goto out;
	}
	/* the expected ruleset, listed by the same nft from a namespace of its own */
	char *expect[] = {
		"unshare", "--net", "sh", "-c", "nft -f - && nft list table inet " MOAT_NET_TABLE,
		NULL};
	errline[0] = '\0';
	if (run(expect, rendered, rendered_len, want, &want_len, errline, sizeof(errline), &status,
		&e) != 0) {
		rc = audit_cannot(a, c, e.msg);
		goto out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(title, sizeof(title),
			 "cannot list the expected ruleset in a namespace: %s", errline);
		rc = audit_cannot(a, c, title);
		goto out;
	}
	int line = audit_first_diff(want, want_len, have, have_len, NULL, wl, hl, sizeof(wl));
	if (line != 0) {
		snprintf(title, sizeof(title),
			 "the live table inet moat differs from moat's policy, from line %d", line);
		snprintf(ev, sizeof(ev), "nft list line %d is \"%s\", expected \"%s\"", line, hl,
			 wl);
		rc = audit_add(a, c, MOAT_AUDIT_HIGH, title, ev, "moat net apply", NULL, line);
	}
out:
	free(have);
	free(want);
	return rc;
}

int audit_network(struct audit_ctx *a)
{
	struct moat_net_policy *p = calloc(1, sizeof(*p));
	char *text = NULL;
	size_t len = 0;
	struct moat_err e;
	int rc;
	if (!p) {
		return moat_err_set(a->err, MOAT_ENOMEM, "audit: out of memory");
	}
	if ((rc = audit_ran(a, &audit_net_policy)) != 0 ||
	    (rc = audit_ran(a, &audit_net_iot_mgmt)) != 0 ||
	    (rc = audit_ran(a, &audit_net_iot_iot)) != 0 ||
	    (rc = audit_ran(a, &audit_net_live)) != 0) {
		goto out;
	}
	if (moat_net_policy_from_config(moat_deploy_config(a->d), p, &e) != 0 ||
	    moat_net_render(p, MOAT_NET_FORMAT_NFT, &text, &len, &e) != 0) {
		rc = audit_add(a, &audit_net_policy, MOAT_AUDIT_HIGH,
			       "the [network] policy of moat.conf is refused", e.msg,
			       "moat config check", "moat.conf", 0);
		goto out;
	}
	if ((rc = audit_net_isolation(a, p)) == 0 && a->o->system) {
		rc = live(a, text, len);
	}
out:
	free(text);
	free(p);
	return rc;
}
