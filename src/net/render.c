/* render.c: a policy's rule list as text for the packet filter. nftables is the primary
 * form: one file for `nft -f` that replaces only the tables "inet moat" and "bridge moat"
 * (the add-then-delete idiom makes the first load and every reload one transaction) and
 * keeps the zones in named interval sets. The iptables-restore form is for gateways without
 * nftables: MOAT-* chains, one rule per subnet pair, loaded with --noflush. Pure: the same
 * policy always gives the same bytes, which the golden files of `moat net plan` rely on. */
#include "moat/net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/buf.h"

static const char *kind_name(enum moat_net_zone_kind k)
{
	switch (k) {
	case MOAT_NET_ZONE_MANAGEMENT:
		return "management";
	case MOAT_NET_ZONE_DEVICE:
		return "devices";
	case MOAT_NET_ZONE_ISOLATED:
		return "isolated";
	}
	return "?";
}

static void put_subnet(struct moat_buf *b, const struct moat_net_subnet *s)
{
	char a[16];
	moat_net_addr_format(s->addr, a, sizeof(a));
	moat_buf_printf(b, "%s/%u", a, s->prefix);
}

static void put_prefix6(struct moat_buf *b, const struct moat_net_prefix6 *s)
{
	char a[48];
	moat_net_addr6_format(s->addr, a, sizeof(a));
	moat_buf_printf(b, "%s/%u", a, s->prefix);
}

static void put_servers(struct moat_buf *b, bool gateway, const uint32_t *a, size_t n)
{
	if (gateway) {
		moat_buf_printf(b, "the gateway");
		return;
	}
	if (n == 0) {
		moat_buf_printf(b, "none");
	}
	for (size_t i = 0; i < n; i++) {
		char s[16];
		moat_net_addr_format(a[i], s, sizeof(s));
		moat_buf_printf(b, "%s%s", i ? ", " : "", s);
	}
}

static void put_summary(struct moat_buf *b, const struct moat_net_policy *p)
{
	char broker[48];
	char server[48];
	moat_net_addr_format(p->broker_addr, broker, sizeof(broker));
	moat_net_addr_format(p->server_addr, server, sizeof(server));
	moat_buf_printf(b, "# zones:\n");
	for (size_t z = 0; z < p->zone_count; z++) {
		const struct moat_net_zone *zn = &p->zones[z];
		moat_buf_printf(b, "#   %-15s %-10s ", zn->name, kind_name(zn->kind));
		if (zn->subnet_count == 0) {
			moat_buf_printf(b, "(none)");
		}
		for (size_t s = 0; s < zn->subnet_count; s++) {
			moat_buf_printf(b, "%s", s ? ", " : "");
			put_subnet(b, &zn->subnets[s]);
		}
		for (size_t s = 0; s < zn->prefix6_count; s++) {
			moat_buf_printf(b, ", ");
			put_prefix6(b, &zn->prefixes6[s]);
		}
		if (zn->vlan) {
			moat_buf_printf(b, " (VLAN %u on %s)", (unsigned)zn->vlan, zn->parent);
		}
		moat_buf_printf(b, "\n");
	}
	moat_buf_printf(b, "# broker %s tcp/%u, update server %s tcp/%u\n", broker,
			(unsigned)p->broker_port, server, (unsigned)p->server_port);
	if (p->services6) {
		moat_net_addr6_format(p->broker_addr6, broker, sizeof(broker));
		moat_net_addr6_format(p->server_addr6, server, sizeof(server));
		moat_buf_printf(b, "# over IPv6: broker %s, update server %s\n", broker, server);
	}
	moat_buf_printf(b,
			"# new connections per device host: %u/s (burst %u); logged drops: %u/s "
			"(burst %u)\n",
			p->conn_rate, p->conn_rate * 2, p->log_rate, p->log_rate * 2);
	moat_buf_printf(b, "# the gateway's own input: %s; DNS: ",
			p->input_filter ? "filtered (policy drop)" : "not filtered");
	put_servers(b, p->dns_gateway, p->dns_addrs, p->dns_count);
	moat_buf_printf(b, "; NTP: ");
	put_servers(b, p->ntp_gateway, p->ntp_addrs, p->ntp_count);
	moat_buf_printf(b, "; DHCP: %s\n", p->dhcp_gateway ? "the gateway" : "none");
	if (p->port_count > 0) {
		moat_buf_printf(b, "# bridge_ports (each faces one zone's hosts only):");
		for (size_t i = 0; i < p->port_count; i++) {
			moat_buf_printf(b, " %s:%s", p->zones[p->ports[i].zone].name,
					p->ports[i].name);
		}
		moat_buf_printf(b, "\n");
	}
}

/* Hosts behind the bridge ports of one zone reach each other only through the bridge's
 * forward hook; the gateway itself is the bridge (input and output hooks), so everything a
 * port forwards is host to host. Matched on the ports the kernel saw the frame enter and
 * leave by, never on a header: no address, MAC, ether type or tag a host picks escapes it. */
static void nft_port_rules(struct moat_buf *b, const struct moat_net_policy *p)
{
	static const char *const dirs[] = {"iifname", "oifname"};
	for (size_t z = 0; z < p->zone_count; z++) {
		for (size_t d = 0; d < 2; d++) {
			bool any = false;
			for (size_t i = 0; i < p->port_count; i++) {
				if (p->ports[i].zone != z) {
					continue;
				}
				if (!any) {
					moat_buf_printf(b, "\t\t%s { ", dirs[d]);
				}
				moat_buf_printf(b, "%s\"%s\"", any ? ", " : "", p->ports[i].name);
				any = true;
			}
			if (any) {
				moat_buf_printf(b,
						" } jump log_drop comment \"%s: no frame between "
						"its bridge ports\"\n",
						p->zones[z].name);
			}
		}
	}
}

/* ---- nftables ---- */

static void nft_set(struct moat_buf *b, const char *name, const struct moat_net_policy *p,
		    int only_zone, int kind_filter, bool v6)
{
	moat_buf_printf(b, "\tset %s {\n\t\ttype %s\n\t\tflags interval\n", name,
			v6 ? "ipv6_addr" : "ipv4_addr");
	bool first = true;
	for (size_t z = 0; z < p->zone_count; z++) {
		if (only_zone >= 0 && (size_t)only_zone != z) {
			continue;
		}
		if (kind_filter >= 0 && (int)p->zones[z].kind != kind_filter) {
			continue;
		}
		size_t n = v6 ? p->zones[z].prefix6_count : p->zones[z].subnet_count;
		for (size_t s = 0; s < n; s++) {
			moat_buf_printf(b, "%s", first ? "\t\telements = { " : ", ");
			if (v6) {
				put_prefix6(b, &p->zones[z].prefixes6[s]);
			} else {
				put_subnet(b, &p->zones[z].subnets[s]);
			}
			first = false;
		}
	}
	moat_buf_printf(b, "%s\t}\n\n", first ? "" : " }\n");
}

/* A selector in one family: "ip saddr @zone_iot" or "ip6 saddr @zone6_iot". */
static void nft_sel(struct moat_buf *b, const struct moat_net_policy *p,
		    const struct moat_net_sel *s, const char *dir, bool v6)
{
	char a[48];
	const char *ip = v6 ? "ip6" : "ip";
	const char *sfx = v6 ? "6" : "";
	switch (s->kind) {
	case MOAT_NET_SEL_ANY:
		break;
	case MOAT_NET_SEL_ZONE:
		moat_buf_printf(b, "%s %s @zone%s_%s ", ip, dir, sfx, p->zones[s->zone].name);
		break;
	case MOAT_NET_SEL_DEVICES:
		moat_buf_printf(b, "%s %s @device_zones%s ", ip, dir, sfx);
		break;
	case MOAT_NET_SEL_INTERNAL:
		moat_buf_printf(b, "%s %s @all_zones%s ", ip, dir, sfx);
		break;
	case MOAT_NET_SEL_EXTERNAL:
		/* meta nfproto: "ip daddr !=" alone would not match IPv6, which is right, but
		 * say it so nobody reads it as "anything not internal". */
		moat_buf_printf(b, "meta nfproto ipv%s %s %s != @all_zones%s ", v6 ? "6" : "4", ip,
				dir, sfx);
		break;
	case MOAT_NET_SEL_ADDR:
		if (v6) {
			moat_net_addr6_format(s->addr6, a, sizeof(a));
		} else {
			moat_net_addr_format(s->addr, a, sizeof(a));
		}
		moat_buf_printf(b, "%s %s %s ", ip, dir, a);
		break;
	}
}

static void nft_rule_family(struct moat_buf *b, const struct moat_net_policy *p,
			    const struct moat_net_rule *r, bool v6)
{
	moat_buf_printf(b, "\t\t");
	switch (r->action) {
	case MOAT_NET_ACCEPT_ESTABLISHED:
		moat_buf_printf(b, "ct state established,related accept");
		break;
	case MOAT_NET_DROP_INVALID:
		moat_buf_printf(b, "ct state invalid jump log_drop");
		break;
	case MOAT_NET_LIMIT_NEW:
		nft_sel(b, p, &r->src, "saddr", v6);
		nft_sel(b, p, &r->dst, "daddr", v6);
		moat_buf_printf(b,
				"ct state new update @newconn%s { %s saddr limit rate over "
				"%u/second burst %u packets } jump log_drop",
				v6 ? "6" : "", v6 ? "ip6" : "ip", p->conn_rate, p->conn_rate * 2);
		break;
	case MOAT_NET_ACCEPT:
	case MOAT_NET_DROP:
		nft_sel(b, p, &r->src, "saddr", v6);
		nft_sel(b, p, &r->dst, "daddr", v6);
		if (r->iif_not[0]) {
			moat_buf_printf(b, "iifname != \"%s\" ", r->iif_not);
		}
		if (r->tcp_dport && r->udp_dport) {
			moat_buf_printf(b, "meta l4proto { tcp, udp } th dport %u ",
					(unsigned)r->tcp_dport);
		} else if (r->tcp_dport) {
			moat_buf_printf(b, "tcp dport %u ", (unsigned)r->tcp_dport);
		} else if (r->udp_dport) {
			moat_buf_printf(b, "udp dport %u ", (unsigned)r->udp_dport);
		}
		moat_buf_printf(b, "%s", r->action == MOAT_NET_ACCEPT ? "accept" : "jump log_drop");
		break;
	}
	moat_buf_printf(b, " comment \"%s\"\n", r->why);
}

static bool sel_has_addr(const struct moat_net_sel *s)
{
	return s->kind != MOAT_NET_SEL_ANY;
}

/* A rule in both families: the IPv4 line, then, when some zone has an IPv6 prefix and the
 * rule names addresses, its IPv6 counterpart (none for an address that has no IPv6 form:
 * the dns and ntp servers). Rules that name no address cover both families as they are. */
static void nft_rule(struct moat_buf *b, const struct moat_net_policy *p,
		     const struct moat_net_rule *r)
{
	nft_rule_family(b, p, r, false);
	if (!p->has_v6 || (!sel_has_addr(&r->src) && !sel_has_addr(&r->dst))) {
		return;
	}
	if ((r->src.kind == MOAT_NET_SEL_ADDR && !r->src.has6) ||
	    (r->dst.kind == MOAT_NET_SEL_ADDR && !r->dst.has6)) {
		return;
	}
	nft_rule_family(b, p, r, true);
}

static void nft_common(struct moat_buf *b, const struct moat_net_policy *p)
{
	moat_buf_printf(b, "\tcounter drops {\n\t}\n\n");
	for (size_t z = 0; z < p->zone_count; z++) {
		char name[32];
		snprintf(name, sizeof(name), "zone_%s", p->zones[z].name);
		nft_set(b, name, p, (int)z, -1, false);
	}
	nft_set(b, "device_zones", p, -1, MOAT_NET_ZONE_DEVICE, false);
	nft_set(b, "all_zones", p, -1, -1, false);
	if (p->has_v6) {
		for (size_t z = 0; z < p->zone_count; z++) {
			char name[32];
			snprintf(name, sizeof(name), "zone6_%s", p->zones[z].name);
			nft_set(b, name, p, (int)z, -1, true);
		}
		nft_set(b, "device_zones6", p, -1, MOAT_NET_ZONE_DEVICE, true);
		nft_set(b, "all_zones6", p, -1, -1, true);
	}
	moat_buf_printf(b,
			"\tchain log_drop {\n"
			"\t\tcounter name \"drops\"\n"
			"\t\tlimit rate %u/second burst %u packets log prefix \"%s\"\n"
			"\t\tdrop\n"
			"\t}\n\n",
			p->log_rate, p->log_rate * 2, MOAT_NET_LOG_PREFIX);
}

static void render_nft(struct moat_buf *b, const struct moat_net_policy *p)
{
	moat_buf_printf(b,
			"# moat network policy, generated by `moat net plan`: regenerate, do not "
			"edit.\n"
			"# Load with `nft -f`: it replaces the tables inet %s and bridge %s in one "
			"transaction\n# and touches nothing else.\n",
			MOAT_NET_TABLE, MOAT_NET_TABLE);
	put_summary(b, p);
	moat_buf_printf(b,
			"\ntable inet %s\ndelete table inet %s\ntable bridge %s\ndelete table "
			"bridge %s\n\n",
			MOAT_NET_TABLE, MOAT_NET_TABLE, MOAT_NET_TABLE, MOAT_NET_TABLE);

	moat_buf_printf(b, "table inet %s {\n", MOAT_NET_TABLE);
	nft_common(b, p);
	moat_buf_printf(b, "\tset newconn {\n\t\ttype ipv4_addr\n\t\tsize 65536\n"
			   "\t\tflags dynamic,timeout\n\t\ttimeout 1m\n\t}\n\n");
	if (p->has_v6) {
		moat_buf_printf(b, "\tset newconn6 {\n\t\ttype ipv6_addr\n\t\tsize 65536\n"
				   "\t\tflags dynamic,timeout\n\t\ttimeout 1m\n\t}\n\n");
	}
	moat_buf_printf(b,
			"\tchain forward {\n\t\ttype filter hook forward priority filter; policy "
			"drop;\n");
	for (size_t i = 0; i < p->rule_count; i++) {
		if (!p->rules[i].input) {
			nft_rule(b, p, &p->rules[i]);
		}
	}
	moat_buf_printf(b, "\t\tjump log_drop comment \"policy: everything else\"\n\t}\n");
	if (p->input_filter) {
		/* The gateway itself: the tutorial's INPUT DROP with its allowances. IPv6
		 * neighbour discovery keeps the uplink's and every zone's IPv6 working. */
		moat_buf_printf(b,
				"\n\tchain input {\n\t\ttype filter hook input priority "
				"filter; policy drop;\n"
				"\t\tiif \"lo\" accept comment \"the gateway itself\"\n"
				"\t\tct state established,related accept comment \"replies to "
				"the gateway's own connections\"\n"
				"\t\tct state invalid jump log_drop comment \"conntrack state "
				"invalid\"\n"
				"\t\ticmpv6 type { nd-router-solicit, nd-router-advert, "
				"nd-neighbor-solicit, nd-neighbor-advert } accept comment \"IPv6 "
				"neighbour discovery\"\n");
		for (size_t i = 0; i < p->rule_count; i++) {
			/* the zones' anti-spoofing rules hold for the gateway too */
			if (p->rules[i].input || p->rules[i].iif_not[0]) {
				nft_rule(b, p, &p->rules[i]);
			}
		}
		moat_buf_printf(b, "\t\tjump log_drop comment \"policy: everything else\"\n\t}\n");
	}
	moat_buf_printf(b, "}\n\n");

	/* Hosts on one bridge talk without being routed, so the inet forward hook never sees
	 * them: the rules marked bridged are repeated in the bridge family's forward hook, in
	 * both families. */
	moat_buf_printf(b, "table bridge %s {\n", MOAT_NET_TABLE);
	nft_common(b, p);
	moat_buf_printf(b,
			"\tchain forward {\n\t\ttype filter hook forward priority filter; policy "
			"accept;\n");
	nft_port_rules(b, p);
	for (size_t i = 0; i < p->rule_count; i++) {
		if (p->rules[i].bridged) {
			nft_rule(b, p, &p->rules[i]);
		}
	}
	moat_buf_printf(b, "\t}\n}\n");
}

/* ---- iptables-restore ---- */

/* The subnets a selector expands to; *neg says "not in any of them". Returns the count,
 * with count 1 and a zero-prefix entry meaning "no condition". */
static size_t ipt_expand(const struct moat_net_policy *p, const struct moat_net_sel *s,
			 struct moat_net_subnet *out, bool *neg)
{
	size_t n = 0;
	*neg = false;
	switch (s->kind) {
	case MOAT_NET_SEL_ANY:
		out[0].addr = 0;
		out[0].prefix = 0;
		return 1;
	case MOAT_NET_SEL_ADDR:
		out[0].addr = s->addr;
		out[0].prefix = 32;
		return 1;
	case MOAT_NET_SEL_ZONE:
		for (size_t i = 0; i < p->zones[s->zone].subnet_count; i++) {
			out[n++] = p->zones[s->zone].subnets[i];
		}
		return n;
	case MOAT_NET_SEL_EXTERNAL:
		*neg = true;
		/* fall through */
	case MOAT_NET_SEL_DEVICES:
	case MOAT_NET_SEL_INTERNAL:
		for (size_t z = 0; z < p->zone_count; z++) {
			if (s->kind == MOAT_NET_SEL_DEVICES &&
			    p->zones[z].kind != MOAT_NET_ZONE_DEVICE) {
				continue;
			}
			for (size_t i = 0; i < p->zones[z].subnet_count; i++) {
				out[n++] = p->zones[z].subnets[i];
			}
		}
		return n;
	}
	return 0;
}

static void ipt_addr(struct moat_buf *b, const char *flag, const struct moat_net_subnet *s)
{
	if (s->prefix == 0) {
		return;
	}
	char a[16];
	moat_net_addr_format(s->addr, a, sizeof(a));
	moat_buf_printf(b, " %s %s/%u", flag, a, s->prefix);
}

static void ipt_target(struct moat_buf *b, const struct moat_net_policy *p,
		       const struct moat_net_rule *r)
{
	moat_buf_printf(b, " -m comment --comment \"%s\"", r->why);
	if (r->action == MOAT_NET_LIMIT_NEW) {
		moat_buf_printf(b,
				" -m conntrack --ctstate NEW -m hashlimit --hashlimit-mode srcip "
				"--hashlimit-above %u/sec --hashlimit-burst %u --hashlimit-name "
				"moat_newconn",
				p->conn_rate, p->conn_rate * 2);
	}
	if (r->tcp_dport) {
		moat_buf_printf(b, " -p tcp --dport %u", (unsigned)r->tcp_dport);
	} else if (r->udp_dport) {
		moat_buf_printf(b, " -p udp --dport %u", (unsigned)r->udp_dport);
	}
	moat_buf_printf(b, " -j %s\n", r->action == MOAT_NET_ACCEPT ? "ACCEPT" : "MOAT-LOG-DROP");
}

static void ipt_rule(struct moat_buf *b, const struct moat_net_policy *p,
		     const struct moat_net_rule *r)
{
	struct moat_net_subnet src[MOAT_NET_ZONES_MAX * MOAT_NET_SUBNETS_MAX];
	struct moat_net_subnet dst[MOAT_NET_ZONES_MAX * MOAT_NET_SUBNETS_MAX];
	bool sneg = false;
	bool dneg = false;
	if (r->action == MOAT_NET_ACCEPT_ESTABLISHED) {
		moat_buf_printf(
			b,
			"-A MOAT-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -m comment "
			"--comment \"%s\" -j ACCEPT\n",
			r->why);
		return;
	}
	if (r->action == MOAT_NET_DROP_INVALID) {
		moat_buf_printf(
			b,
			"-A MOAT-FORWARD -m conntrack --ctstate INVALID -m comment --comment "
			"\"%s\" -j MOAT-LOG-DROP\n",
			r->why);
		return;
	}
	const char *chain_name = r->input ? "MOAT-INPUT" : "MOAT-FORWARD";
	size_t ns = ipt_expand(p, &r->src, src, &sneg);
	size_t nd = ipt_expand(p, &r->dst, dst, &dneg);
	if (dneg) {
		/* "not in any zone": iptables has no negated set without ipset, so the rule
		 * goes through a chain that returns for every zone subnet. */
		char chain[40];
		snprintf(chain, sizeof(chain), "MOAT-EXT-%zu", (size_t)(r - p->rules));
		for (size_t d = 0; d < nd; d++) {
			moat_buf_printf(b, "-A %s", chain);
			ipt_addr(b, "-d", &dst[d]);
			moat_buf_printf(b, " -j RETURN\n");
		}
		struct moat_net_rule inner = *r;
		inner.src.kind = MOAT_NET_SEL_ANY;
		moat_buf_printf(b, "-A %s", chain);
		ipt_target(b, p, &inner);
		for (size_t s = 0; s < ns; s++) {
			moat_buf_printf(b, "-A %s", chain_name);
			ipt_addr(b, "-s", &src[s]);
			moat_buf_printf(b, " -j %s\n", chain);
		}
		return;
	}
	for (size_t s = 0; s < ns; s++) {
		for (size_t d = 0; d < nd; d++) {
			moat_buf_printf(b, "-A %s", chain_name);
			ipt_addr(b, "-s", &src[s]);
			ipt_addr(b, "-d", &dst[d]);
			if (r->iif_not[0]) {
				moat_buf_printf(b, " ! -i %s", r->iif_not);
			}
			ipt_target(b, p, r);
		}
	}
	(void)sneg; /* build_rules never puts the outside in a source */
}

/* A rule for tcp and udp alike is two iptables rules. */
static void ipt_rule_protos(struct moat_buf *b, const struct moat_net_policy *p,
			    const struct moat_net_rule *r)
{
	if (r->tcp_dport && r->udp_dport) {
		struct moat_net_rule one = *r;
		one.udp_dport = 0;
		ipt_rule(b, p, &one);
		one.tcp_dport = 0;
		one.udp_dport = r->udp_dport;
		ipt_rule(b, p, &one);
		return;
	}
	ipt_rule(b, p, r);
}

static void render_iptables(struct moat_buf *b, const struct moat_net_policy *p)
{
	moat_buf_printf(
		b, "# moat network policy, generated by `moat net plan --format iptables`: "
		   "regenerate, do not edit.\n"
		   "# Load with `iptables-restore --noflush`, which replaces only the MOAT-* "
		   "chains, then hook\n# them in once: iptables -C FORWARD -j MOAT-FORWARD || "
		   "iptables -I FORWARD 1 -j MOAT-FORWARD\n"
		   "# The built-in chains and their policies are never named here: "
		   "MOAT-FORWARD ends in its own\n# logged drop, so what it does not accept "
		   "is dropped whatever FORWARD's policy is.\n"
		   "# Hosts on one bridge are filtered only with br_netfilter "
		   "(net.bridge.bridge-nf-call-iptables=1)\n# or bridge port isolation; the nft "
		   "form covers them itself.\n");
	if (p->port_count > 0) {
		/* iptables never sees bridged frames without br_netfilter (--physdev needs it
		 * too): the bridge_ports are closed by isolation, which this file cannot carry. */
		moat_buf_printf(b, "# Not in this file: the bridge_ports. Isolate each yourself "
				   "(`moat net apply` does it only\n# with the nft form):\n");
		for (size_t i = 0; i < p->port_count; i++) {
			moat_buf_printf(b, "#   ip link set dev %s type bridge_slave isolated on\n",
					p->ports[i].name);
		}
	}
	if (p->input_filter) {
		moat_buf_printf(b, "# The gateway's own input: iptables -C INPUT -j MOAT-INPUT || "
				   "iptables -I INPUT 1 -j MOAT-INPUT\n");
	}
	put_summary(b, p);
	/* Only moat's own chains: a ":FORWARD DROP" line would set the host's policy. */
	moat_buf_printf(b, "*filter\n:MOAT-FORWARD - [0:0]\n:MOAT-LOG-DROP - [0:0]\n");
	if (p->input_filter) {
		moat_buf_printf(b, ":MOAT-INPUT - [0:0]\n");
	}
	for (size_t i = 0; i < p->rule_count; i++) {
		if (p->rules[i].dst.kind == MOAT_NET_SEL_EXTERNAL) {
			moat_buf_printf(b, ":MOAT-EXT-%zu - [0:0]\n", i);
		}
	}
	moat_buf_printf(
		b,
		"-A MOAT-LOG-DROP -m limit --limit %u/sec --limit-burst %u -j LOG --log-prefix "
		"\"%s\"\n-A MOAT-LOG-DROP -j DROP\n",
		p->log_rate, p->log_rate * 2, MOAT_NET_LOG_PREFIX);
	for (size_t i = 0; i < p->rule_count; i++) {
		if (!p->rules[i].input) {
			ipt_rule_protos(b, p, &p->rules[i]);
		}
	}
	moat_buf_printf(b, "-A MOAT-FORWARD -m comment --comment \"policy: everything else\" -j "
			   "MOAT-LOG-DROP\n");
	if (p->input_filter) {
		moat_buf_printf(b,
				"-A MOAT-INPUT -i lo -j ACCEPT\n"
				"-A MOAT-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j "
				"ACCEPT\n"
				"-A MOAT-INPUT -m conntrack --ctstate INVALID -j MOAT-LOG-DROP\n");
		for (size_t i = 0; i < p->rule_count; i++) {
			if (p->rules[i].input || p->rules[i].iif_not[0]) {
				struct moat_net_rule in = p->rules[i];
				in.input = true;
				ipt_rule_protos(b, p, &in);
			}
		}
		moat_buf_printf(b, "-A MOAT-INPUT -m comment --comment \"policy: everything "
				   "else\" -j MOAT-LOG-DROP\n");
	}
	moat_buf_printf(b, "COMMIT\n");
}

int moat_net_render(const struct moat_net_policy *p, enum moat_net_format fmt, char **out_text,
		    size_t *out_len, struct moat_err *err)
{
	struct moat_buf b;
	moat_buf_init(&b, MOAT_NET_RENDER_MAX_BYTES);
	if (fmt == MOAT_NET_FORMAT_IPTABLES && p->has_v6) {
		/* An IPv4-only rendering of a dual-stack policy would leave IPv6 open. */
		return moat_err_set(err, MOAT_EINVAL,
				    "network policy: the iptables form covers IPv4 only and a zone "
				    "has an IPv6 prefix; use the nft form");
	}
	if (fmt == MOAT_NET_FORMAT_IPTABLES) {
		render_iptables(&b, p);
	} else {
		render_nft(&b, p);
	}
	if (moat_buf_take(&b, out_text, out_len) != 0) {
		return moat_err_set(err, MOAT_ENOMEM,
				    "network policy: rendering failed (out of memory or over %u "
				    "bytes)",
				    MOAT_NET_RENDER_MAX_BYTES);
	}
	return 0;
}
