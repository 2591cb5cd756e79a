/* net.h: network segmentation derived from the deployment (src/net).
 *
 * The policy is the tutorial's VLAN isolation, repaired: devices reach only the broker and the
 * update server, never each other (also on the same bridge), the management or the guest
 * network; management reaches everything; guests reach only what is outside every zone; every
 * drop is logged (rate-limited) and new connections from each device host are rate-limited.
 *
 * Three layers, each usable alone:
 *   1. Pure (no I/O, no clocks, no globals): moat_net_policy_from_config reads the [network],
 *      [broker] port and [server] port of moat.conf into a struct moat_net_policy, with its
 *      rule list already built; moat_net_render turns it into nftables or iptables-restore
 *      text; moat_net_decide evaluates the rule list, moat_net_expect states the intent, so
 *      tests can show the two agree. This layer is fuzzed (tests/fuzz/fuzz_netconf.c).
 *   2. nft adapter: moat_net_apply / moat_net_check / moat_net_remove run nft(8). They touch
 *      only moat's own tables ("inet moat" and "bridge moat") and never flush anything else.
 *   3. moat_net_verify builds a throwaway topology of network namespaces, loads the ruleset
 *      into its router and probes every path with real TCP connections.
 *
 * [network] keys (all optional; defaults in MOAT_NET_DEFAULT_*):
 *   iot, management, guest   subnets of the three standard zones: comma lists of a.b.c.d/len
 *                            and, optionally, IPv6 prefixes x:x::/len (/16 ... /64, host bits
 *                            zero, e.g. "10.77.10.0/24, fd00:77:10::/64"); a zone with an IPv6
 *                            prefix needs an IPv4 subnet too. No IPv6 prefix by default: then
 *                            no zone host has a routed IPv6 address and the forward chain
 *                            drops all routed IPv6. Every rule holds for both families; the
 *                            IPv6 address of a host, the broker, the server and the gateway
 *                            is its zone's first prefix with the IPv4 host part as the low
 *                            32 bits (10.77.1.10 in 10.77.1.0/24 -> fd00:77:1::a)
 *   extra_zones              names of more zones; each then needs its own key with subnets
 *   device_zones             zones whose hosts are devices (default "iot"); zones that are
 *                            neither devices nor management are isolated like guest
 *   broker_address           IPv4 address of the broker, inside the management zone
 *   server_address           IPv4 address of the update server, inside the management zone;
 *                            default: broker_address (moatd runs beside the broker, and the
 *                            agents' update URL names the broker's host: see provision.c)
 *   vlans                    802.1Q VLAN of each zone, "zone:id[@parent]" items (id 1..4094,
 *                            parent an interface name; default the trunk key); default
 *                            "management:10, iot:20, guest:30" (the tutorial's); "none": none
 *   trunk                    parent interface of the VLANs that name none (default eth0)
 *   bridge_ports             ports of the gateway's own bridges that face the hosts of one
 *                            device or isolated zone, "zone:ifname" items (default none):
 *                            the bridge table drops every frame forwarded from or to one of
 *                            them, whatever its addresses, MACs or ether type (hosts reach
 *                            the gateway itself, which is the bridge, not a port), and
 *                            `moat net apply` also sets each one isolated (bridge_slave
 *                            isolated on); at most MOAT_NET_PORTS_MAX
 *   gateway_input            drop (default): the gateway's own input chain drops what is not
 *                            allowed (loopback, replies, IPv6 neighbour discovery, everything
 *                            from management, the services below); accept: no input chain
 *   dns                      where every zone's hosts may send DNS (udp and tcp 53): "gateway"
 *                            (default: the gateway itself), "none", or up to
 *                            MOAT_NET_SERVERS_MAX IPv4 addresses outside the device zones
 *   ntp                      the same for NTP (udp 123): devices need time to check
 *                            certificates
 *   dhcp                     gateway (default: udp 67 to the gateway allowed) or none
 *   conn_rate                new connections per second allowed per device host (burst 2x)
 *   log_rate                 logged drops per second (burst 2x)
 * Ports come from [broker] port (default 8883) and [server] port (default 8443).
 */
#ifndef MOAT_NET_H
#define MOAT_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/config.h"
#include "moat/err.h"

#define MOAT_NET_ZONES_MAX 16
#define MOAT_NET_SUBNETS_MAX 16	      /* per zone */
#define MOAT_NET_ZONE_NAME_MAX_LEN 15 /* [a-z][a-z0-9_]{0,14}: fits nft set and iptables names */
#define MOAT_NET_RULES_MAX 96
#define MOAT_NET_SERVERS_MAX 4 /* dns and ntp addresses */
#define MOAT_NET_PORTS_MAX 32  /* bridge_ports */
#define MOAT_NET_DNS_PORT 53
#define MOAT_NET_NTP_PORT 123
#define MOAT_NET_DHCP_PORT 67
#define MOAT_NET_PREFIX_MIN 8 /* zone subnets are /8 ... /30 */
#define MOAT_NET_PREFIX_MAX 30
#define MOAT_NET_RATE_MAX 100000 /* per second, for conn_rate and log_rate */
#define MOAT_NET_RENDER_MAX_BYTES (256u * 1024u)
#define MOAT_NET_LOG_PREFIX "moat-drop: "
#define MOAT_NET_TABLE "moat" /* nft: "inet moat" and "bridge moat" */

#define MOAT_NET_DEFAULT_IOT "10.77.10.0/24"
#define MOAT_NET_DEFAULT_MANAGEMENT "10.77.1.0/24"
#define MOAT_NET_DEFAULT_GUEST "10.77.20.0/24"
#define MOAT_NET_DEFAULT_BROKER_ADDRESS "10.77.1.10"
#define MOAT_NET_DEFAULT_VLANS "management:10, iot:20, guest:30"
#define MOAT_NET_DEFAULT_TRUNK "eth0"
#define MOAT_NET_IFNAME_MAX_LEN 15 /* IFNAMSIZ - 1 */
#define MOAT_NET_VLAN_ID_MAX 4094
#define MOAT_NET_DEFAULT_BROKER_PORT 8883
#define MOAT_NET_DEFAULT_SERVER_PORT 8443
#define MOAT_NET_DEFAULT_CONN_RATE 20
#define MOAT_NET_DEFAULT_LOG_RATE 10

/* An IPv4 network; addr is in host byte order with the host bits zero. */
struct moat_net_subnet {
	uint32_t addr;
	unsigned prefix;
};

#define MOAT_NET_PREFIX6_MIN 16 /* zone IPv6 prefixes are /16 ... /64 (SLAAC needs /64) */
#define MOAT_NET_PREFIX6_MAX 64

/* An IPv6 network; addr in network byte order with the host bits zero. */
struct moat_net_prefix6 {
	uint8_t addr[16];
	unsigned prefix;
};

enum moat_net_zone_kind {
	MOAT_NET_ZONE_MANAGEMENT = 0, /* reaches everything */
	MOAT_NET_ZONE_DEVICE = 1,     /* reaches the broker and update server ports only */
	MOAT_NET_ZONE_ISOLATED = 2,   /* reaches only addresses outside every zone (guest) */
};

struct moat_net_zone {
	char name[MOAT_NET_ZONE_NAME_MAX_LEN + 1];
	enum moat_net_zone_kind kind;
	uint16_t vlan;				  /* 802.1Q id; 0: not on a VLAN */
	char parent[MOAT_NET_IFNAME_MAX_LEN + 1]; /* the VLAN's trunk interface */
	struct moat_net_subnet subnets[MOAT_NET_SUBNETS_MAX];
	size_t subnet_count;
	struct moat_net_prefix6 prefixes6[MOAT_NET_SUBNETS_MAX];
	size_t prefix6_count;
};

/* What a rule's source or destination matches. */
enum moat_net_sel_kind {
	MOAT_NET_SEL_ANY = 0,
	MOAT_NET_SEL_ZONE = 1,	   /* the subnets of zones[zone] */
	MOAT_NET_SEL_DEVICES = 2,  /* every device zone */
	MOAT_NET_SEL_INTERNAL = 3, /* every zone */
	MOAT_NET_SEL_EXTERNAL = 4, /* no zone: the uplink, the internet */
	MOAT_NET_SEL_ADDR = 5,	   /* the single address addr */
};

struct moat_net_sel {
	enum moat_net_sel_kind kind;
	size_t zone;
	uint32_t addr;
	uint8_t addr6[16]; /* MOAT_NET_SEL_ADDR's IPv6 counterpart, when has6 */
	bool has6;
};

enum moat_net_action {
	MOAT_NET_ACCEPT_ESTABLISHED = 0, /* replies and related traffic: accept */
	MOAT_NET_DROP_INVALID = 1,	 /* conntrack state invalid: logged drop */
	MOAT_NET_LIMIT_NEW = 2, /* new connections from src over conn_rate per host: drop */
	MOAT_NET_ACCEPT = 3,
	MOAT_NET_DROP = 4, /* logged, rate-limited log */
};

/* One rule of the forward chain, in order; the chain's policy is drop (logged). */
struct moat_net_rule {
	enum moat_net_action action;
	struct moat_net_sel src;
	struct moat_net_sel dst;
	uint16_t tcp_dport; /* with udp_dport 0: any protocol, any port */
	uint16_t udp_dport; /* both set: tcp or udp to that port */
	bool input;	    /* a rule of the gateway's own input chain (dst is the gateway) */
	bool bridged;	    /* also enforced on bridged traffic (hosts on the same interface) */
	char iif_not[MOAT_NET_IFNAME_MAX_LEN + 1]; /* "": any; else only packets that did not
						    * come in on this interface (the zone's VLAN
						    * sub-interface: anti-spoofing) */
	char why[64];				   /* ASCII, rendered as a comment */
};

/* A port of a bridge of the gateway that faces hosts of zones[zone] only. */
struct moat_net_port {
	char name[MOAT_NET_IFNAME_MAX_LEN + 1];
	size_t zone;
};

struct moat_net_policy {
	struct moat_net_zone zones[MOAT_NET_ZONES_MAX];
	size_t zone_count; /* zones[0..2] are iot, management, guest; then extra_zones in order */
	uint32_t broker_addr;
	uint32_t server_addr;
	bool has_v6;	/* some zone has an IPv6 prefix */
	bool services6; /* the management zone has one: broker_addr6, server_addr6 set */
	uint8_t broker_addr6[16];
	uint8_t server_addr6[16];
	uint16_t broker_port;
	uint16_t server_port;
	unsigned conn_rate;
	unsigned log_rate;
	bool input_filter; /* gateway_input = drop */
	bool dns_gateway;  /* dns = gateway */
	bool ntp_gateway;  /* ntp = gateway */
	bool dhcp_gateway; /* dhcp = gateway */
	uint32_t dns_addrs[MOAT_NET_SERVERS_MAX];
	size_t dns_count;
	uint32_t ntp_addrs[MOAT_NET_SERVERS_MAX];
	size_t ntp_count;
	struct moat_net_rule rules[MOAT_NET_RULES_MAX];
	size_t rule_count;
	struct moat_net_port ports[MOAT_NET_PORTS_MAX]; /* bridge_ports, in config order */
	size_t port_count;
};

/* Parses "a.b.c.d" (four decimal octets, no leading zeros, nothing else). */
MOAT_MUST_CHECK int moat_net_parse_addr(const char *text, uint32_t *out_addr, struct moat_err *err);
/* Parses "a.b.c.d/len" with len in [MOAT_NET_PREFIX_MIN, MOAT_NET_PREFIX_MAX]; refuses host
 * bits (the message suggests the network address). */
MOAT_MUST_CHECK int moat_net_parse_subnet(const char *text, struct moat_net_subnet *out,
					  struct moat_err *err);
bool moat_net_subnet_contains(const struct moat_net_subnet *s, uint32_t addr);
bool moat_net_subnets_overlap(const struct moat_net_subnet *a, const struct moat_net_subnet *b);
/* Parses "x:x::/len" (inet_pton syntax, len in [MOAT_NET_PREFIX6_MIN, MOAT_NET_PREFIX6_MAX],
 * no leading zero); refuses host bits (the message names the network). */
MOAT_MUST_CHECK int moat_net_parse_prefix6(const char *text, struct moat_net_prefix6 *out,
					   struct moat_err *err);
bool moat_net_prefix6_contains(const struct moat_net_prefix6 *s, const uint8_t addr[16]);
bool moat_net_prefixes6_overlap(const struct moat_net_prefix6 *a, const struct moat_net_prefix6 *b);
/* The IPv6 counterpart of the zone address v4: the first IPv6 prefix of the zone whose
 * subnet holds v4, with v4's host part as the low 32 bits. false when v4 is in no zone or
 * the zone has no IPv6 prefix. */
bool moat_net_addr6_for(const struct moat_net_policy *p, uint32_t v4, uint8_t out[16]);
/* Index of the zone whose IPv6 prefixes contain addr, or -1. */
int moat_net_zone_of6(const struct moat_net_policy *p, const uint8_t addr[16]);
/* Compressed text form into buf (at least 46 bytes). */
void moat_net_addr6_format(const uint8_t addr[16], char *buf, size_t size);
/* "a.b.c.d" into buf (at least 16 bytes). */
void moat_net_addr_format(uint32_t addr, char *buf, size_t size);

/* Reads the policy from cfg (which may lack [network]: then every default applies) and builds
 * its rule list. Fails with MOAT_EINVAL and a message naming the file, line, key and cause on:
 * an unknown key or zone, an invalid or overlapping subnet or IPv6 prefix, an IPv6 prefix in a
 * zone without IPv4 subnet, a port or rate out of range, a
 * broker or server address outside the management zone or on its network/broadcast address.
 * out is fully written on success and zeroed on failure. Does no I/O. */
MOAT_MUST_CHECK int moat_net_policy_from_config(const struct moat_config *cfg,
						struct moat_net_policy *out, struct moat_err *err);

/* The gateway's own address in subnet s of zone z: the first host address that is neither
 * the broker's nor the server's (what `moat net plan --interfaces` assigns and what verify's
 * router holds). 0 when the subnet has no such address. */
uint32_t moat_net_gateway_addr(const struct moat_net_policy *p, size_t z, size_t s);

/* Parses an interface name: 1..MOAT_NET_IFNAME_MAX_LEN characters of [A-Za-z0-9_.-], not
 * "." or "..". */
MOAT_MUST_CHECK int moat_net_parse_ifname(const char *text, struct moat_err *err);

/* Index of the zone containing addr, or -1. */
int moat_net_zone_of(const struct moat_net_policy *p, uint32_t addr);
/* The zone of an address as text (IPv4, IPv6, or IPv4-mapped IPv6: judged as its IPv4):
 * its index, -1 when it is in no zone, MOAT_NET_NOT_AN_ADDRESS when text is neither. */
#define MOAT_NET_NOT_AN_ADDRESS (-2)
int moat_net_zone_of_text(const struct moat_net_policy *p, const char *text);

/* A packet for moat_net_decide_pkt / moat_net_expect_pkt. */
enum moat_net_proto {
	MOAT_NET_PROTO_OTHER = 0, /* neither TCP nor UDP (dport ignored) */
	MOAT_NET_PROTO_TCP = 6,
	MOAT_NET_PROTO_UDP = 17,
};
struct moat_net_pkt {
	uint32_t src;
	uint32_t dst;
	bool v6; /* src6/dst6 instead of src/dst */
	uint8_t src6[16];
	uint8_t dst6[16];
	enum moat_net_proto proto;
	uint16_t dport;
	bool to_gateway; /* addressed to the gateway itself (input chain), not through it */
};
/* What the rule list does with a new flow (the input chain's rules when to_gateway, the
 * forward chain's otherwise), ignoring rate limits, conntrack state and interfaces. */
bool moat_net_decide_pkt(const struct moat_net_policy *p, const struct moat_net_pkt *k);
/* The intent for the same flow, written independently of the rule list. */
bool moat_net_expect_pkt(const struct moat_net_policy *p, const struct moat_net_pkt *k);

/* What the rule list does with a new TCP connection (dport > 0) or other packet (dport 0)
 * from src to dst: true when accepted. Ignores rate limits and conntrack state. */
bool moat_net_decide(const struct moat_net_policy *p, uint32_t src, uint32_t dst, uint16_t dport);
/* The intent, written independently of the rule list: true when the connection must be
 * allowed. moat_net_decide and moat_net_expect agree for every input (unit-tested). */
bool moat_net_expect(const struct moat_net_policy *p, uint32_t src, uint32_t dst, uint16_t dport);

enum moat_net_format {
	MOAT_NET_FORMAT_NFT = 0,      /* nft -f input; replaces moat's tables atomically */
	MOAT_NET_FORMAT_IPTABLES = 1, /* iptables-restore input (MOAT-* chains) */
};
MOAT_MUST_CHECK int moat_net_format_parse(const char *text, enum moat_net_format *out,
					  struct moat_err *err);

/* Renders the policy; *out_text is NUL-terminated, malloc'd and owned by the caller. Pure:
 * the same policy always gives the same bytes. The nft form renders each rule that names
 * addresses for IPv4 and, when some zone has an IPv6 prefix, for IPv6; the iptables form is
 * refused (MOAT_EINVAL) for such a policy, which it would leave open over IPv6. */
MOAT_MUST_CHECK int moat_net_render(const struct moat_net_policy *p, enum moat_net_format fmt,
				    char **out_text, size_t *out_len, struct moat_err *err);

/* ---- the gateway's VLAN sub-interfaces (src/net/ifaces.c) ----
 * One 802.1Q sub-interface "<parent>.<id>" per zone with a VLAN and subnets, holding
 * moat_net_gateway_addr of each subnet. */
#define MOAT_NET_NETWORKD_PREFIX "20-moat-" /* every file moat writes or removes */
#define MOAT_NET_FILES_MAX (3 * MOAT_NET_ZONES_MAX)

struct moat_net_file {
	char name[64]; /* "20-moat-eth0.20.netdev": a file name, no directory */
	char *text;    /* malloc'd, NUL-terminated */
	size_t len;
};

struct moat_net_files {
	struct moat_net_file files[MOAT_NET_FILES_MAX];
	size_t count;
};

/* systemd-networkd files: per trunk a .network that attaches its VLANs (and configures no
 * address of its own), per VLAN a .netdev (Kind=vlan, Id) and a .network (Address= per
 * subnet). Pure and deterministic; an empty list when no zone has a VLAN. Free with
 * moat_net_files_free (also safe on a zeroed or failed out). */
MOAT_MUST_CHECK int moat_net_render_networkd(const struct moat_net_policy *p,
					     struct moat_net_files *out, struct moat_err *err);
void moat_net_files_free(struct moat_net_files *f);
/* The same as /etc/network/interfaces stanzas (ifupdown with the vlan package): auto,
 * iface <parent>.<id> inet static, address, netmask, vlan-raw-device. Pure. */
MOAT_MUST_CHECK int moat_net_render_ifupdown(const struct moat_net_policy *p, char **out_text,
					     size_t *out_len, struct moat_err *err);
/* Writes the networkd files into <root>/etc/systemd/network (root NULL or "/": the real
 * one), each atomically (temp + rename), then removes the 20-moat-* files there that the
 * policy no longer makes, and nothing else; out_dir gets the directory. Reloads nothing:
 * the caller says to run `networkctl reload`. */
MOAT_MUST_CHECK int moat_net_install_networkd(const struct moat_net_policy *p, const char *root,
					      char *out_dir, size_t out_dir_size,
					      struct moat_err *err);

/* nft adapter. Each runs nft(8) from PATH in the caller's network namespace.
 * moat_net_apply loads the rendered ruleset with `nft -f -` in one transaction that replaces
 * only "inet moat" and "bridge moat"; moat_net_check runs the same input with `nft -c`
 * (nothing changes); moat_net_remove deletes those two tables and nothing else (absent tables
 * are not an error). Failures carry nft's first error line. */
MOAT_MUST_CHECK int moat_net_apply(const struct moat_net_policy *p, struct moat_err *err);
MOAT_MUST_CHECK int moat_net_check(const struct moat_net_policy *p, struct moat_err *err);
MOAT_MUST_CHECK int moat_net_remove(struct moat_err *err);
/* bridge_ports: moat_net_isolate_ports sets each port isolated with ip(8) (a port then
 * exchanges frames only with the bridge itself and non-isolated ports); with check_only it
 * only checks that each exists and is a bridge port. Fails naming the first port that is
 * not. moat_net_apply does not call it; `moat net apply` runs both. `net remove` leaves
 * isolation on (removing a barrier is the operator's explicit act). */
MOAT_MUST_CHECK int moat_net_isolate_ports(const struct moat_net_policy *p, bool check_only,
					   struct moat_err *err);

/* One probe of moat_net_verify. */
enum moat_net_observed {
	MOAT_NET_OBS_OPEN = 0,	  /* connected */
	MOAT_NET_OBS_BLOCKED = 1, /* no answer within the timeout (dropped) */
	MOAT_NET_OBS_REFUSED = 2, /* reset: reached but not listening (a topology fault) */
	MOAT_NET_OBS_ERROR = 3,
	MOAT_NET_OBS_LIMITED = 4, /* flood row: some connections got through, not all */
};

struct moat_net_probe {
	char from[24]; /* host label, "iot-1" */
	char to[24];   /* host or service label, "broker" */
	uint32_t src;
	uint32_t dst;
	bool v6; /* src6/dst6 instead of src/dst */
	uint8_t src6[16];
	uint8_t dst6[16];
	uint16_t port;
	bool expect_open;
	bool flood;	 /* burst of connections; expected result MOAT_NET_OBS_LIMITED */
	bool udp;	 /* a datagram and its echo instead of a TCP connection */
	bool to_gateway; /* to the router itself (its input chain), not through it */
	bool peer;	 /* to a host of its own zone at an address of no zone (link-local or
			  * one it gave itself): must be blocked whatever the model says */
	bool link_local; /* src6/dst6 are fe80:: addresses on the host's zone interface */
	enum moat_net_observed observed;
	bool ok; /* observed matches the expectation */
};

#define MOAT_NET_PROBES_MAX 1024

struct moat_net_verify_report {
	struct moat_net_probe probes[MOAT_NET_PROBES_MAX];
	size_t probe_count;
	size_t mismatches;
	uint64_t logged_drops; /* the "drops" counter of inet moat after the probes */
	bool tagged; /* zones with a VLAN were built on 802.1Q devices (false: this kernel has no
		      * 802.1Q; they were plain bridges, tagging is not proven) */
};

/* Set by the caller's SIGINT/SIGTERM handler; moat_net_verify stops, removes everything it
 * created and fails with MOAT_EINTR. */
extern volatile int moat_net_interrupted;

/* verify floods the broker from one device host only when conn_rate is at most this (the
 * burst must be small enough to overrun with a few hundred connections); above it the
 * report has no flood row. */
#define MOAT_NET_FLOOD_RATE_MAX 100

/* Topology: a router namespace with one bridge per zone and up to two hosts per zone behind
 * it (the management host owns the broker and server addresses), plus an "outside" host on
 * an uplink. A zone's bridge carries the gateway's name for the zone's interface ("eth0.20"
 * for VLAN 20 on eth0), so the ruleset's interface rules mean the same as on the gateway.
 * Where the kernel makes 802.1Q devices (report->tagged), the hosts of a zone with a VLAN
 * send tagged frames on a veth trunk whose router-side sub-interface is the bridge port; on
 * the first device zone's trunk a host sends untagged (and, with 802.1Q, another tagging with
 * the management VLAN): neither may reach anything. The router itself listens too: probes to
 * the gateway (TCP, and UDP for DNS, NTP and DHCP) prove its input chain. In the router, bridged
 * frames are kept away from the inet hooks (bridge-nf-call-iptables=0, and -ip6tables), so the
 * bridge table is what separates hosts on one bridge. When zones have IPv6 prefixes, hosts,
 * router and the outside host also get IPv6 addresses (moat_net_addr6_for; the outside in a
 * free 2001:db8:ff00::/64-like documentation prefix, all nodad) and every probe but the flood
 * is repeated over IPv6 (probe.v6). Every host of a device or isolated zone also holds a
 * link-local address and an IPv4 and an IPv6 address of no zone; each probes the other host
 * of its zone at all three (probe.peer), expected blocked whatever the model says of those
 * addresses. The ruleset is loaded with the topology's own bridge ports (every host port of
 * a non-management zone) in place of p's bridge_ports, and no port is set isolated: the nft
 * port rules alone must keep them apart.
 *
 * Builds namespaces named "moat-<pid>-*" (first removing such namespaces left behind by
 * moat processes that no longer run), loads the ruleset into the router namespace, probes
 * every path and fills report. Everything it creates is removed before it returns, on every
 * path; an atexit handler removes it too if the process exits in between. Addresses exist only
 * inside those namespaces. Returns 0 when it ran (report->mismatches says whether the policy
 * held), MOAT_ESTATE when this machine lacks a capability (not root, no netns, no nft; the
 * message names it), other codes on failure. Needs a single-threaded caller (setns). */
MOAT_MUST_CHECK int moat_net_verify(const struct moat_net_policy *p,
				    struct moat_net_verify_report *report, struct moat_err *err);

const char *moat_net_observed_name(enum moat_net_observed o);

/* ---- the connection guard of the broker host (src/net/guard.c) ----
 *
 * What a source may hold on this host's broker and moatd ports before the daemons see who
 * it is: a table of its own, "inet moat_guard_<broker port>" (so two deployments on one host
 * and the operator's own rules never collide), with an input chain that, for new TCP
 * connections to those ports and sources not exempt:
 *   - refuses (TCP reset) one connection over broker_per_source / server_per_source open at
 *     once from one IPv4 address or IPv6 /64 (`ct count` in a dynamic set);
 *   - refuses new connections from one source over new_per_source per second (burst 2x);
 *   - refuses connections to the broker port over [broker] max_connections in all (the
 *     limit Mosquitto 2.0.11 itself does not hold: it counts disconnects twice);
 * each refusal counted (named counters) and logged by the kernel, rate-limited
 * ("moat-guard: reason=..."). `moat up` installs it and `moat down` removes it.
 *
 * [guard] keys (all optional):
 *   enabled             auto (default: installed when moat up runs as root and nft exists),
 *                       yes (moat up fails without it), no
 *   broker_per_source   default MOAT_NET_GUARD_BROKER_PER_SOURCE
 *   server_per_source   default MOAT_NET_GUARD_SERVER_PER_SOURCE
 *   new_per_source      default MOAT_NET_GUARD_NEW_PER_SOURCE (per second)
 *   exempt              addresses never limited (default "127.0.0.1, ::1": the host itself,
 *                       its probes and local services); "none" for none
 */
#define MOAT_NET_GUARD_TABLE_PREFIX "moat_guard_"
#define MOAT_NET_GUARD_BROKER_PER_SOURCE 256
#define MOAT_NET_GUARD_SERVER_PER_SOURCE 64
#define MOAT_NET_GUARD_NEW_PER_SOURCE 50
#define MOAT_NET_GUARD_PER_SOURCE_MAX 1000000
#define MOAT_NET_GUARD_EXEMPT_MAX 16
#define MOAT_NET_GUARD_LOG_PREFIX "moat-guard: "

enum moat_net_guard_mode {
	MOAT_NET_GUARD_AUTO = 0,
	MOAT_NET_GUARD_ON = 1,
	MOAT_NET_GUARD_OFF = 2,
};

struct moat_net_guard {
	enum moat_net_guard_mode mode;
	uint16_t broker_port;
	uint16_t server_port;
	unsigned broker_per_source;
	unsigned server_per_source;
	unsigned new_per_source;
	unsigned broker_max; /* 0: no global bound ([broker] max_connections -1) */
	char exempt[MOAT_NET_GUARD_EXEMPT_MAX][46]; /* numeric IPv4 or IPv6 addresses */
	size_t exempt_count;
};

/* Reads [guard], [broker] port and max_connections, and [server] port. Fails (MOAT_EINVAL,
 * naming file, line and key) on an unknown [guard] key, a value out of range (per source:
 * 1..MOAT_NET_GUARD_PER_SOURCE_MAX; new_per_source 1..MOAT_NET_RATE_MAX), an enabled value
 * other than auto/yes/no, or an exempt entry that is not a numeric address. out is zeroed
 * on failure. No I/O. */
MOAT_MUST_CHECK int moat_net_guard_from_config(const struct moat_config *cfg,
					       struct moat_net_guard *out, struct moat_err *err);
/* The guard as `nft -f` input that replaces only its own table; *out_text malloc'd, owned by
 * the caller. Pure. */
MOAT_MUST_CHECK int moat_net_guard_render(const struct moat_net_guard *g, char **out_text,
					  size_t *out_len, struct moat_err *err);
/* Loads it with nft(8) in the caller's network namespace (MOAT_ENOENT: no nft). */
MOAT_MUST_CHECK int moat_net_guard_apply(const struct moat_net_guard *g, struct moat_err *err);
/* Deletes the guard table of broker_port, and nothing else; absent is no error. */
MOAT_MUST_CHECK int moat_net_guard_remove(uint16_t broker_port, struct moat_err *err);

#endif
