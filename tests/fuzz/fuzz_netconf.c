/* fuzz_netconf.c: the [network] section of moat.conf through moat_net_policy_from_config,
 * then both renderers and the decision. Invariants: a refusal hands back a zeroed policy
 * and a message; an accepted policy renders deterministically within the size bound, its
 * zones do not overlap, the services sit in the management zone, and the rule list
 * (moat_net_decide) agrees with the intent (moat_net_expect) on addresses of every subnet.
 * The input also supplies a few extra addresses and ports to decide on. The same config goes
 * through moat_net_guard_from_config ([guard]): a refusal zeroes the guard and says why; an
 * accepted guard has every bound at least 1, only numeric exempt addresses, and renders
 * the same bytes twice. The VLANs of an accepted policy ([network] vlans, trunk) have ids in
 * 1..4094, valid parent names, "parent.id" within an interface name, no (parent, id) twice,
 * and the interface files (networkd, ifupdown) render the same bytes twice. IPv6 prefixes of
 * the zones do not overlap, their lengths are within bounds with no host bits, the rule list
 * agrees with the intent on IPv6 addresses of every prefix too, and the iptables form of a
 * dual-stack policy is refused rather than rendered IPv4-only. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_agreement(const struct moat_net_policy *p, const uint8_t *data, size_t size)
{
	uint32_t addrs[64];
	size_t n = 0;
	for (size_t z = 0; z < p->zone_count; z++) {
		for (size_t s = 0; s < p->zones[z].subnet_count && n + 2 <= 48; s++) {
			const struct moat_net_subnet *sn = &p->zones[z].subnets[s];
			addrs[n++] = sn->addr + 1;
			addrs[n++] = sn->addr | ((1u << (32 - sn->prefix)) - 2);
		}
	}
	addrs[n++] = p->broker_addr;
	addrs[n++] = p->server_addr;
	/* the last bytes of the input as raw addresses */
	for (size_t i = 0; i + 4 <= size && n < 64 && i < 40; i += 4) {
		addrs[n++] = (uint32_t)data[size - 1 - i] << 24 |
			     (uint32_t)data[size - 2 - i] << 16 |
			     (uint32_t)data[size - 3 - i] << 8 | data[size - 4 - i];
	}
	uint16_t ports[] = {0, p->broker_port, p->server_port, 1, 65535};
	for (size_t s = 0; s < n; s++) {
		for (size_t d = 0; d < n; d++) {
			for (size_t k = 0; k < sizeof(ports) / sizeof(ports[0]); k++) {
				if (moat_net_decide(p, addrs[s], addrs[d], ports[k]) !=
				    moat_net_expect(p, addrs[s], addrs[d], ports[k])) {
					abort();
				}
			}
		}
	}
}

/* The same agreement over IPv6: hosts of every prefix, the services, addresses of no zone. */
static void check_agreement6(const struct moat_net_policy *p, const uint8_t *data, size_t size)
{
	static uint8_t addrs[40][16];
	size_t n = 0;
	for (size_t z = 0; z < p->zone_count; z++) {
		for (size_t s = 0; s < p->zones[z].prefix6_count && n + 2 <= 32; s++) {
			const struct moat_net_prefix6 *pf = &p->zones[z].prefixes6[s];
			if (pf->prefix < MOAT_NET_PREFIX6_MIN ||
			    pf->prefix > MOAT_NET_PREFIX6_MAX ||
			    !moat_net_prefix6_contains(pf, pf->addr)) {
				abort();
			}
			memcpy(addrs[n], pf->addr, 16);
			addrs[n++][15] = 1;
			memcpy(addrs[n], pf->addr, 16);
			memset(addrs[n] + 8, 0xff, 8);
			n++;
		}
	}
	if (p->services6) {
		memcpy(addrs[n++], p->broker_addr6, 16);
		memcpy(addrs[n++], p->server_addr6, 16);
		if (moat_net_zone_of6(p, p->broker_addr6) != 1 ||
		    moat_net_zone_of6(p, p->server_addr6) != 1) {
			abort();
		}
	}
	memset(addrs[n++], 0, 16);
	if (size >= 16) {
		memcpy(addrs[n++], data + size - 16, 16);
	}
	uint16_t ports[] = {0, p->broker_port, p->server_port, 53, 123};
	for (size_t s = 0; s < n; s++) {
		for (size_t d = 0; d < n; d++) {
			for (size_t k = 0; k < sizeof(ports) / sizeof(ports[0]); k++) {
				for (int q = 0; q < 2; q++) {
					struct moat_net_pkt a = {.v6 = true,
								 .proto = q ? MOAT_NET_PROTO_UDP
									    : MOAT_NET_PROTO_TCP,
								 .dport = ports[k]};
					memcpy(a.src6, addrs[s], 16);
					memcpy(a.dst6, addrs[d], 16);
					struct moat_net_pkt g = a;
					g.to_gateway = true;
					if (moat_net_decide_pkt(p, &a) !=
						    moat_net_expect_pkt(p, &a) ||
					    moat_net_decide_pkt(p, &g) !=
						    moat_net_expect_pkt(p, &g)) {
						abort();
					}
				}
			}
		}
	}
	for (size_t a = 0; a < p->zone_count; a++) {
		for (size_t s = 0; s < p->zones[a].prefix6_count; s++) {
			for (size_t b = 0; b < p->zone_count; b++) {
				for (size_t t = 0; t < p->zones[b].prefix6_count; t++) {
					if ((a != b || s != t) &&
					    moat_net_prefixes6_overlap(&p->zones[a].prefixes6[s],
								       &p->zones[b].prefixes6[t])) {
						abort();
					}
				}
			}
		}
	}
}

static void check_guard(const struct moat_config *cfg)
{
	static struct moat_net_guard g;
	static const struct moat_net_guard zero;
	struct moat_err err;
	moat_err_clear(&err);
	memset(&g, 0x5a, sizeof(g));
	if (moat_net_guard_from_config(cfg, &g, &err) != 0) {
		if (err.msg[0] == '\0' || memcmp(&g, &zero, sizeof(g)) != 0) {
			abort();
		}
		return;
	}
	if (g.broker_per_source < 1 || g.server_per_source < 1 || g.new_per_source < 1 ||
	    g.broker_port == 0 || g.server_port == 0 ||
	    g.exempt_count > MOAT_NET_GUARD_EXEMPT_MAX) {
		abort();
	}
	for (size_t i = 0; i < g.exempt_count; i++) {
		unsigned char a[16];
		if (inet_pton(AF_INET, g.exempt[i], a) != 1 &&
		    inet_pton(AF_INET6, g.exempt[i], a) != 1) {
			abort();
		}
	}
	char *x = NULL;
	char *y = NULL;
	size_t xl = 0;
	size_t yl = 0;
	if (moat_net_guard_render(&g, &x, &xl, &err) != 0 ||
	    moat_net_guard_render(&g, &y, &yl, &err) != 0 || xl != yl || memcmp(x, y, xl) != 0 ||
	    strlen(x) != xl) {
		abort();
	}
	free(x);
	free(y);
}

static void check_vlans(const struct moat_net_policy *p)
{
	struct moat_err err;
	moat_err_clear(&err);
	for (size_t z = 0; z < p->zone_count; z++) {
		const struct moat_net_zone *zn = &p->zones[z];
		if (!zn->vlan) {
			continue;
		}
		char sub[64];
		int n = snprintf(sub, sizeof(sub), "%s.%u", zn->parent, (unsigned)zn->vlan);
		if (zn->vlan > MOAT_NET_VLAN_ID_MAX ||
		    moat_net_parse_ifname(zn->parent, &err) != 0 || n < 0 ||
		    n > MOAT_NET_IFNAME_MAX_LEN) {
			abort();
		}
		for (size_t k = 0; k < z; k++) {
			if (p->zones[k].vlan == zn->vlan &&
			    strcmp(p->zones[k].parent, zn->parent) == 0) {
				abort();
			}
		}
	}
	static struct moat_net_files a;
	static struct moat_net_files b;
	if (moat_net_render_networkd(p, &a, &err) != 0 ||
	    moat_net_render_networkd(p, &b, &err) != 0 || a.count != b.count) {
		abort();
	}
	for (size_t i = 0; i < a.count; i++) {
		if (strcmp(a.files[i].name, b.files[i].name) != 0 ||
		    a.files[i].len != b.files[i].len ||
		    memcmp(a.files[i].text, b.files[i].text, a.files[i].len) != 0 ||
		    strchr(a.files[i].name, '/') != NULL) {
			abort();
		}
	}
	moat_net_files_free(&a);
	moat_net_files_free(&b);
	char *x = NULL;
	char *y = NULL;
	size_t xl = 0;
	size_t yl = 0;
	if (moat_net_render_ifupdown(p, &x, &xl, &err) != 0 ||
	    moat_net_render_ifupdown(p, &y, &yl, &err) != 0 || xl != yl || memcmp(x, y, xl) != 0) {
		abort();
	}
	free(x);
	free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct moat_net_policy p;
	static const struct moat_net_policy zero;
	struct moat_config *cfg = NULL;
	struct moat_err err;
	moat_err_clear(&err);
	if (moat_config_parse("fuzz.conf", (const char *)data, size, &cfg, &err) != 0) {
		return 0;
	}
	check_guard(cfg);
	memset(&p, 0x5a, sizeof(p));
	if (moat_net_policy_from_config(cfg, &p, &err) != 0) {
		if (err.msg[0] == '\0' || memcmp(&p, &zero, sizeof(p)) != 0) {
			abort();
		}
		moat_config_free(cfg);
		return 0;
	}
	moat_config_free(cfg);
	if (p.zone_count < 3 || p.zone_count > MOAT_NET_ZONES_MAX ||
	    p.rule_count > MOAT_NET_RULES_MAX || p.broker_port == 0 || p.server_port == 0 ||
	    moat_net_zone_of(&p, p.broker_addr) != 1 || moat_net_zone_of(&p, p.server_addr) != 1) {
		abort();
	}
	for (size_t a = 0; a < p.zone_count; a++) {
		for (size_t s = 0; s < p.zones[a].subnet_count; s++) {
			for (size_t b = 0; b < p.zone_count; b++) {
				for (size_t t = 0; t < p.zones[b].subnet_count; t++) {
					if ((a != b || s != t) &&
					    moat_net_subnets_overlap(&p.zones[a].subnets[s],
								     &p.zones[b].subnets[t])) {
						abort();
					}
				}
			}
		}
	}
	for (int f = 0; f <= 1; f++) {
		char *x = NULL;
		char *y = NULL;
		size_t xl = 0;
		size_t yl = 0;
		if (f == MOAT_NET_FORMAT_IPTABLES && p.has_v6) {
			if (moat_net_render(&p, MOAT_NET_FORMAT_IPTABLES, &x, &xl, &err) !=
				    MOAT_EINVAL ||
			    x != NULL) {
				abort();
			}
			continue;
		}
		if (moat_net_render(&p, (enum moat_net_format)f, &x, &xl, &err) != 0 ||
		    moat_net_render(&p, (enum moat_net_format)f, &y, &yl, &err) != 0 || xl != yl ||
		    memcmp(x, y, xl) != 0 || strlen(x) != xl || xl > MOAT_NET_RENDER_MAX_BYTES) {
			abort();
		}
		free(x);
		free(y);
	}
	check_vlans(&p);
	check_agreement(&p, data, size);
	check_agreement6(&p, data, size);
	return 0;
}
