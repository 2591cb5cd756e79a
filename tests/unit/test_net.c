/* test_net.c: network segmentation (src/net).
 *
 * The pure layer is tested with tables: address and subnet parsing (every rejection),
 * [network] sections that must be refused (each with the part of the message that names the
 * cause), and an exhaustive comparison of moat_net_decide (the rule list) with
 * moat_net_expect (the intent) over representative addresses of every zone. Mutating one
 * rule must break that agreement, which shows the comparison can fail. When this machine
 * can create network namespaces, moat_net_verify runs the real topology, once with the
 * policy as built and once with the bridged device rule removed, which must be caught.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "moat/config.h"
#include "moat/net.h"

static uint32_t A(const char *s)
{
	uint32_t a = 0;
	struct moat_err err = {0};
	assert_int_equal(moat_net_parse_addr(s, &a, &err), 0);
	return a;
}

static void test_parse_addr(void **state)
{
	(void)state;
	static const char *const good[] = {"0.0.0.0", "10.77.1.10", "255.255.255.255",
					   "192.168.0.1"};
	static const char *const bad[] = {"",	      "1.2.3",	  "1.2.3.4.5",	"256.1.1.1",
					  "01.2.3.4", "1.2.3.4 ", " 1.2.3.4",	"1..2.3",
					  "1.2.3.-4", "a.b.c.d",  "1.2.3.4/24", "1234.1.1.1",
					  "1.2.3.",   "+1.2.3.4"};
	uint32_t a = 0;
	struct moat_err err = {0};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(moat_net_parse_addr(good[i], &a, &err), 0);
	}
	assert_int_equal(A("10.77.1.10"), 0x0a4d010au);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(moat_net_parse_addr(bad[i], &a, &err), MOAT_EINVAL);
		assert_non_null(strstr(err.msg, "not an IPv4 address"));
	}
	char buf[16];
	moat_net_addr_format(0xc0a80001u, buf, sizeof(buf));
	assert_string_equal(buf, "192.168.0.1");
}

static void test_parse_subnet(void **state)
{
	(void)state;
	struct moat_net_subnet s = {0};
	struct moat_err err = {0};
	assert_int_equal(moat_net_parse_subnet("10.77.10.0/24", &s, &err), 0);
	assert_int_equal(s.addr, 0x0a4d0a00u);
	assert_int_equal(s.prefix, 24);
	assert_int_equal(moat_net_parse_subnet("10.0.0.0/8", &s, &err), 0);
	assert_int_equal(moat_net_parse_subnet("10.0.0.4/30", &s, &err), 0);

	static const struct {
		const char *text;
		const char *why;
	} bad[] = {
		{"10.77.10.0", "not an IPv4 subnet"},
		{"10.77.10.0/", "not an IPv4 subnet"},
		{"10.77.10.0/x", "not an IPv4 subnet"},
		{"10.77.10.0/24x", "not an IPv4 subnet"},
		{"10.77.10.0/024", "not an IPv4 subnet"},
		{"10.77.10/24", "not an IPv4 subnet"},
		{"/24", "not an IPv4 subnet"},
		{"10.0.0.0/7", "between /8 and /30"},
		{"10.0.0.0/0", "between /8 and /30"},
		{"10.0.0.0/31", "between /8 and /30"},
		{"10.0.0.0/32", "between /8 and /30"},
		{"10.0.0.0/100", "between /8 and /30"},
		{"10.77.10.1/24", "host bits set (the network is 10.77.10.0/24)"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(moat_net_parse_subnet(bad[i].text, &s, &err), MOAT_EINVAL);
		if (!strstr(err.msg, bad[i].why)) {
			fail_msg("%s: message '%s' lacks '%s'", bad[i].text, err.msg, bad[i].why);
		}
	}
}

static void test_subnet_relations(void **state)
{
	(void)state;
	struct moat_net_subnet a = {.addr = 0x0a000000u, .prefix = 8};
	struct moat_net_subnet b = {.addr = 0x0a4d0a00u, .prefix = 24};
	struct moat_net_subnet c = {.addr = 0x0b000000u, .prefix = 24};
	struct moat_net_subnet d = {.addr = 0x0a4d0b00u, .prefix = 24};
	assert_true(moat_net_subnets_overlap(&a, &b));
	assert_true(moat_net_subnets_overlap(&b, &a));
	assert_false(moat_net_subnets_overlap(&a, &c));
	assert_false(moat_net_subnets_overlap(&b, &d));
	assert_true(moat_net_subnet_contains(&b, A("10.77.10.255")));
	assert_false(moat_net_subnet_contains(&b, A("10.77.11.0")));
}

static int policy_from(const char *text, struct moat_net_policy *p, struct moat_err *err)
{
	struct moat_config *cfg = NULL;
	int rc = moat_config_parse("moat.conf", text, strlen(text), &cfg, err);
	if (rc == 0) {
		rc = moat_net_policy_from_config(cfg, p, err);
	}
	moat_config_free(cfg);
	return rc;
}

/* The zone of an address as text: what the dashboard's zone map and the zone rule judge. */
static void test_zone_of_text(void **state)
{
	(void)state;
	struct moat_net_policy *p = calloc(1, sizeof(*p));
	struct moat_err err = {0};
	assert_non_null(p);
	assert_int_equal(policy_from("[network]\niot = 10.77.10.0/24, fd00:77:10::/64\n", p, &err),
			 0);
	assert_int_equal(moat_net_zone_of_text(p, "10.77.10.5"), 0);
	assert_int_equal(moat_net_zone_of_text(p, "::ffff:10.77.10.5"), 0); /* v4-mapped */
	assert_int_equal(moat_net_zone_of_text(p, "fd00:77:10::1"), 0);
	assert_int_equal(moat_net_zone_of_text(p, "10.77.1.10"), 1);   /* management */
	assert_int_equal(moat_net_zone_of_text(p, "10.77.20.9"), 2);   /* guest */
	assert_int_equal(moat_net_zone_of_text(p, "192.0.2.1"), -1);   /* in no zone */
	assert_int_equal(moat_net_zone_of_text(p, "2001:db8::1"), -1); /* in no zone */
	assert_int_equal(moat_net_zone_of_text(p, ""), MOAT_NET_NOT_AN_ADDRESS);
	assert_int_equal(moat_net_zone_of_text(p, "10.77.10.5:1883"), MOAT_NET_NOT_AN_ADDRESS);
	assert_int_equal(moat_net_zone_of_text(p, "dev-a"), MOAT_NET_NOT_AN_ADDRESS);
	free(p);
}

static void test_defaults(void **state)
{
	(void)state;
	struct moat_net_policy *p = calloc(1, sizeof(*p));
	struct moat_err err = {0};
	assert_non_null(p);
	assert_int_equal(policy_from("[deployment]\nname = x\n", p, &err), 0);
	assert_int_equal(p->zone_count, 3);
	assert_string_equal(p->zones[0].name, "iot");
	assert_int_equal(p->zones[0].kind, MOAT_NET_ZONE_DEVICE);
	assert_string_equal(p->zones[1].name, "management");
	assert_int_equal(p->zones[1].kind, MOAT_NET_ZONE_MANAGEMENT);
	assert_string_equal(p->zones[2].name, "guest");
	assert_int_equal(p->zones[2].kind, MOAT_NET_ZONE_ISOLATED);
	assert_int_equal(p->broker_addr, A(MOAT_NET_DEFAULT_BROKER_ADDRESS));
	assert_int_equal(p->server_addr, A(MOAT_NET_DEFAULT_BROKER_ADDRESS));
	assert_int_equal(p->broker_port, 8883);
	assert_int_equal(p->server_port, 8443);
	assert_int_equal(p->conn_rate, MOAT_NET_DEFAULT_CONN_RATE);
	assert_int_equal(p->log_rate, MOAT_NET_DEFAULT_LOG_RATE);
	assert_int_equal(p->rules[0].action, MOAT_NET_ACCEPT_ESTABLISHED);
	/* The device-to-device drop is the one rule that must also hold on a bridge. */
	bool bridged_devices = false;
	for (size_t i = 0; i < p->rule_count; i++) {
		const struct moat_net_rule *r = &p->rules[i];
		if (r->bridged && r->src.kind == MOAT_NET_SEL_DEVICES &&
		    r->dst.kind == MOAT_NET_SEL_DEVICES && r->action == MOAT_NET_DROP) {
			bridged_devices = true;
		}
	}
	assert_true(bridged_devices);
	/* Ports follow the deployment. */
	assert_int_equal(policy_from("[broker]\nport = 18883\n[server]\nport = 443\n", p, &err), 0);
	assert_int_equal(p->broker_port, 18883);
	assert_int_equal(p->server_port, 443);
	free(p);
}

static void test_rejections(void **state)
{
	(void)state;
	static const struct {
		const char *conf;
		const char *why;
	} bad[] = {
		{"[network]\niot = 10.77.1.0/24\n",
		 "moat.conf:2: [network] iot: subnet 10.77.1.0/24 "
		 "overlaps 10.77.1.0/24 of zone management"},
		{"[network]\nguest = 10.0.0.0/8\niot = 10.77.10.0/24\n", "overlaps"},
		{"[network]\niot = 10.77.10.0/24, 10.77.10.128/25\n",
		 "overlaps 10.77.10.0/24 of zone iot"},
		{"[network]\niot = 10.77.10.5/24\n",
		 "moat.conf:2: [network] iot: '10.77.10.5/24': host "
		 "bits set"},
		{"[network]\niot = 10.77.10.0/33\n", "between /8 and /30"},
		{"[network]\niot = banana\n", "not an IPv4 subnet"},
		{"[network]\niot = 10.77.10.0/24,\n", "empty item"},
		{"[network]\nlab = 10.9.0.0/16\n", "moat.conf:2: unknown key 'lab' in [network]"},
		{"[network]\nbroker_adress = 10.77.1.10\n", "unknown key 'broker_adress'"},
		{"[network]\ndevice_zones = iot, cameras\n", "[network] device_zones: unknown zone "
							     "'cameras'"},
		{"[network]\ndevice_zones = management\n", "cannot hold devices"},
		{"[network]\nextra_zones = lab\n", "zone 'lab' has no subnets"},
		{"[network]\nextra_zones = Lab\nLab = 10.9.0.0/16\n", "is not a zone name"},
		{"[network]\nextra_zones = a_very_long_zone_name\n", "is not a zone name"},
		{"[network]\nextra_zones = guest\n", "listed twice or standard"},
		{"[network]\nextra_zones = lab, lab\nlab = 10.9.0.0/16\n", "listed twice"},
		{"[network]\nextra_zones = conn_rate\n", "reserved key name"},
		{"[network]\nbroker_address = 10.77.10.5\n",
		 "moat.conf:2: [network] broker_address: "
		 "10.77.10.5 is not inside the management "
		 "zone"},
		{"[network]\nserver_address = 10.77.1.0\n", "is the network address"},
		{"[network]\nserver_address = 10.77.1.255\n", "is the broadcast address"},
		{"[network]\nbroker_address = 10.77.1\n", "not an IPv4 address"},
		{"[network]\nmanagement = 10.9.0.0/16\n", "(default): 10.77.1.10 is not inside the "
							  "management zone"},
		{"[network]\nmanagement = none\n", "management zone needs a subnet"},
		{"[broker]\nport = 70000\n", "moat.conf:2: [broker] port"},
		{"[broker]\nport = 0\n", "[broker] port"},
		{"[server]\nport = -1\n", "[server] port"},
		/* IPv6 prefixes of a zone */
		{"[network]\niot = 10.77.10.0/24, fd00:77:10::5/64\n",
		 "moat.conf:2: [network] iot: 'fd00:77:10::5/64': host bits set (the network is "
		 "fd00:77:10::/64)"},
		{"[network]\niot = 10.77.10.0/24, fd00:77:10::/65\n", "between /16 and /64"},
		{"[network]\niot = 10.77.10.0/24, fd00::/8\n", "between /16 and /64"},
		{"[network]\niot = 10.77.10.0/24, fd00:77:10::/064\n", "not an IPv6 prefix"},
		{"[network]\niot = 10.77.10.0/24, fd00:77:10::\n", "not an IPv6 prefix"},
		{"[network]\niot = 10.77.10.0/24, fd00:77:10::/\n", "not an IPv6 prefix"},
		{"[network]\niot = 10.77.10.0/24, fd00:77:10:::/64\n", "not an IPv6 prefix"},
		{"[network]\niot = 10.77.10.0/24, fd00:77:zz::/64\n", "not an IPv6 prefix"},
		{"[network]\niot = 10.77.10.0/24, ::ffff:10.0.0.0/96\n", "not an IPv6 prefix"},
		{"[network]\niot = 10.77.10.0/24, fe80::/64\n", "not a unicast network"},
		{"[network]\niot = 10.77.10.0/24, ff02::/64\n", "not a unicast network"},
		{"[network]\niot = 10.77.10.0/24, ::/64\n", "not a unicast network"},
		{"[network]\niot = 10.77.10.0/24, fd00:77:10::%eth0/64\n", "not an IPv6 prefix"},
		{"[network]\niot = 10.77.10.0/24, fd00:77:10::/64, fd00:77:10::/60\n",
		 "moat.conf:2: [network] iot: prefix fd00:77:10::/60 overlaps fd00:77:10::/64 of "
		 "zone iot"},
		{"[network]\niot = 10.77.10.0/24, fd00:77::/48\nguest = 10.77.20.0/24, "
		 "fd00:77:0:20::/64\n",
		 "overlaps fd00:77::/48 of zone iot"},
		{"[network]\nextra_zones = lab\nlab = fd00:9::/64\n",
		 "[network] lab: an IPv6 prefix needs an IPv4 subnet in the same zone"},
		{"[network]\nconn_rate = 0\n", "[network] conn_rate"},
		{"[network]\nlog_rate = 100001\n", "[network] log_rate"},
		{"[network]\nconn_rate = many\n", "[network] conn_rate"},
		/* (moat.conf lines are at most 198 bytes: short subnets make 17 fit) */
		{"[network]\niot = 1.0.0.0/8,2.0.0.0/8,3.0.0.0/8,4.0.0.0/8,5.0.0.0/8,6.0.0.0/8,"
		 "7.0.0.0/8,8.0.0.0/8,9.0.0.0/8,11.0.0.0/8,12.0.0.0/8,13.0.0.0/8,14.0.0.0/8,"
		 "15.0.0.0/8,16.0.0.0/8,17.0.0.0/8,18.0.0.0/8\n",
		 "more than 16 subnets"},
		{"[network]\nextra_zones = a,b,c,d,e,f,g,h,i,j,k,l,m,n\n", "more than 16 zones"},
		/* the gateway's input and its services */
		{"[network]\ngateway_input = maybe\n", "moat.conf:2: [network] gateway_input: "
						       "'maybe': expected drop or accept"},
		{"[network]\ndhcp = yes\n", "[network] dhcp: 'yes': expected gateway or none"},
		{"[network]\ndns = 10.77.10.5\n", "moat.conf:2: [network] dns: 10.77.10.5 is in "
						  "device zone iot"},
		{"[network]\nntp = pool.ntp.org\n", "[network] ntp: 'pool.ntp.org': not an IPv4 "
						    "address"},
		{"[network]\ndns = 1.1.1.1, 1.1.1.1\n", "1.1.1.1 listed twice"},
		{"[network]\nntp = 1.0.0.1, 1.0.0.2, 1.0.0.3, 1.0.0.4, 1.0.0.5\n",
		 "more than 4 servers"},
		{"[network]\ndns = gateway, 1.1.1.1\n", "'gateway': not an IPv4 address"},
		{"[network]\nextra_zones = dns\ndns = 10.9.0.0/16\n", "reserved key name"},
		/* bridge_ports */
		{"[network]\nbridge_ports = wlan0\n", "moat.conf:2: [network] bridge_ports: "
						      "'wlan0': expected zone:ifname"},
		{"[network]\nbridge_ports = :wlan0\n", "expected zone:ifname"},
		{"[network]\nbridge_ports = cameras:wlan0\n", "unknown zone 'cameras'"},
		{"[network]\nbridge_ports = management:eth1\n", "zone 'management' is management"},
		{"[network]\nbridge_ports = iot:\n", "bridge_ports"},
		{"[network]\nbridge_ports = iot:wlan0 x\n", "bridge_ports"},
		{"[network]\nbridge_ports = iot:abcdefghijklmnop\n", "bridge_ports"},
		{"[network]\nbridge_ports = iot:wlan0, guest:wlan0\n", "port wlan0 listed twice"},
		{"[network]\nbridge_ports = iot:a0,iot:a1,iot:a2,iot:a3,iot:a4,iot:a5,iot:a6,"
		 "iot:a7,iot:a8,iot:a9,\n  iot:b0,iot:b1,iot:b2,iot:b3,iot:b4,iot:b5,iot:b6,iot:b7,"
		 "iot:b8,iot:b9,\n  iot:c0,iot:c1,iot:c2,iot:c3,iot:c4,iot:c5,iot:c6,iot:c7,iot:c8,"
		 "iot:c9,\n  iot:d0,iot:d1,iot:d2\n",
		 "more than 32 ports"},
		/* vlans and trunk */
		{"[network]\nvlans = iot\n", "moat.conf:2: [network] vlans: 'iot': expected "
					     "zone:id[@parent]"},
		{"[network]\nvlans = :20\n", "expected zone:id[@parent]"},
		{"[network]\nvlans = a_very_long_zone_name:20\n", "expected zone:id[@parent]"},
		{"[network]\nvlans = cameras:20\n", "[network] vlans: unknown zone 'cameras'"},
		{"[network]\nvlans = iot:0\n", "VLAN id must be 1 to 4094"},
		{"[network]\nvlans = iot:4095\n", "VLAN id must be 1 to 4094"},
		{"[network]\nvlans = iot:020\n", "VLAN id must be 1 to 4094"},
		{"[network]\nvlans = iot:\n", "VLAN id must be 1 to 4094"},
		{"[network]\nvlans = iot:20x\n", "VLAN id must be 1 to 4094"},
		{"[network]\nvlans = iot:-5\n", "VLAN id must be 1 to 4094"},
		{"[network]\nvlans = iot:123456\n", "VLAN id must be 1 to 4094"},
		{"[network]\nvlans = iot:20@\n", "'': not an interface name"},
		{"[network]\nvlans = iot:20@e/th0\n", "'e/th0': not an interface name"},
		{"[network]\nvlans = iot:20@..\n", "not an interface name"},
		{"[network]\nvlans = iot:20@abcdefghijklmnop\n", "not an interface name"},
		{"[network]\nvlans = iot:2000@enp0s31f6xy\n",
		 "'enp0s31f6xy.2000' is longer than 15"},
		{"[network]\nvlans = iot:20, iot:21\n", "zone 'iot' listed twice"},
		{"[network]\nvlans = iot:20, guest:20\n", "VLAN 20 on eth0 is already zone iot's"},
		{"[network]\ntrunk = eth 0\n", "moat.conf:2: [network] trunk: 'eth 0': not an "
					       "interface name"},
		{"[network]\ntrunk = enp0s31f6xabc\n", "'enp0s31f6xabc.10' is longer than 15"},
	};
	struct moat_net_policy *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct moat_err err = {0};
		memset(p, 0xa5, sizeof(*p));
		int rc = policy_from(bad[i].conf, p, &err);
		if (rc != MOAT_EINVAL || !strstr(err.msg, bad[i].why)) {
			fail_msg("row %zu: rc %d, message '%s' lacks '%s'", i, rc, err.msg,
				 bad[i].why);
		}
		/* Nothing half-written: out is zeroed on failure. */
		assert_int_equal(p->zone_count, 0);
		assert_int_equal(p->rule_count, 0);
		assert_int_equal(p->broker_addr, 0);
	}
	free(p);
}

static const char custom_conf[] = "[broker]\nport = 1883\n[server]\nport = 443\n"
				  "[network]\n"
				  "iot = 10.10.0.0/16, 172.16.5.0/24\n"
				  "management = 10.1.0.0/24, 10.2.0.0/24\n"
				  "guest = 192.168.50.0/24\n"
				  "extra_zones = cameras, lab, printers\n"
				  "cameras = 10.20.0.0/22\n"
				  "lab = 10.30.0.0/24\n"
				  "printers = none\n"
				  "device_zones = iot, cameras\n"
				  "broker_address = 10.1.0.5\n"
				  "server_address = 10.2.0.7\n"
				  "conn_rate = 5\n"
				  "log_rate = 3\n";

/* Representative addresses: first, second and last host of every subnet, both services,
 * and addresses outside every zone. */
static size_t samples(const struct moat_net_policy *p, uint32_t *out, size_t max)
{
	size_t n = 0;
	for (size_t z = 0; z < p->zone_count; z++) {
		for (size_t s = 0; s < p->zones[z].subnet_count; s++) {
			const struct moat_net_subnet *sn = &p->zones[z].subnets[s];
			uint32_t bcast = sn->addr | ((1u << (32 - sn->prefix)) - 1);
			uint32_t c[] = {sn->addr + 1, sn->addr + 2, bcast - 1};
			for (size_t i = 0; i < 3 && n < max; i++) {
				out[n++] = c[i];
			}
		}
	}
	uint32_t extra[] = {p->broker_addr, p->server_addr, 0x08080808u, 0xc0000202u, 0x0b000001u};
	for (size_t i = 0; i < 5 && n < max; i++) {
		out[n++] = extra[i];
	}
	for (size_t i = 0; i < p->dns_count && n < max; i++) {
		out[n++] = p->dns_addrs[i];
	}
	for (size_t i = 0; i < p->ntp_count && n < max; i++) {
		out[n++] = p->ntp_addrs[i];
	}
	out[n < max ? n++ : n - 1] = 0; /* a DHCP client before it has an address */
	return n;
}

static size_t disagreements(const struct moat_net_policy *p)
{
	uint32_t addrs[256];
	size_t n = samples(p, addrs, 256);
	uint16_t ports[] = {0, p->broker_port, p->server_port, 22, 65535, 53, 123, 67};
	const enum moat_net_proto protos[] = {MOAT_NET_PROTO_TCP, MOAT_NET_PROTO_UDP,
					      MOAT_NET_PROTO_OTHER};
	size_t bad = 0;
	for (size_t s = 0; s < n; s++) {
		for (size_t d = 0; d < n; d++) {
			for (size_t k = 0; k < sizeof(ports) / sizeof(ports[0]); k++) {
				bad += moat_net_decide(p, addrs[s], addrs[d], ports[k]) !=
				       moat_net_expect(p, addrs[s], addrs[d], ports[k]);
				for (size_t q = 0; q < 3; q++) {
					/* through the gateway and to the gateway itself */
					struct moat_net_pkt a = {.src = addrs[s],
								 .dst = addrs[d],
								 .proto = protos[q],
								 .dport = ports[k]};
					struct moat_net_pkt g = a;
					g.to_gateway = true;
					bad += moat_net_decide_pkt(p, &a) !=
					       moat_net_expect_pkt(p, &a);
					bad += moat_net_decide_pkt(p, &g) !=
					       moat_net_expect_pkt(p, &g);
				}
			}
		}
	}
	return bad;
}

static void test_decide_matches_expect(void **state)
{
	(void)state;
	struct moat_net_policy *p = calloc(1, sizeof(*p));
	struct moat_err err = {0};
	assert_non_null(p);
	assert_int_equal(policy_from("", p, &err), 0);
	assert_int_equal(disagreements(p), 0);
	if (policy_from(custom_conf, p, &err) != 0) {
		fail_msg("%s", err.msg);
	}
	assert_int_equal(p->zone_count, 6);
	assert_int_equal(p->zones[3].kind, MOAT_NET_ZONE_DEVICE);
	assert_int_equal(p->zones[4].kind, MOAT_NET_ZONE_ISOLATED);
	assert_int_equal(p->zones[5].subnet_count, 0);
	assert_int_equal(disagreements(p), 0);
	/* Name and time servers elsewhere, no input chain: the same agreement. */
	static const char *const variants[] = {
		"[network]\ndns = 10.77.1.53, 8.8.8.8\nntp = 10.77.20.9\ndhcp = none\n",
		"[network]\ngateway_input = accept\n",
		"[network]\ndns = none\nntp = none\n",
	};
	for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
		struct moat_net_policy *q = calloc(1, sizeof(*q));
		assert_non_null(q);
		assert_int_equal(policy_from(variants[v], q, &err), 0);
		assert_int_equal(disagreements(q), 0);
		for (size_t i = 0; i < q->rule_count; i++) {
			struct moat_net_rule saved = q->rules[i];
			if ((saved.action != MOAT_NET_ACCEPT && saved.action != MOAT_NET_DROP) ||
			    saved.iif_not[0]) {
				continue;
			}
			q->rules[i].action = saved.action == MOAT_NET_ACCEPT ? MOAT_NET_DROP
									     : MOAT_NET_ACCEPT;
			if (disagreements(q) == 0) {
				fail_msg("variant %zu: flipping rule %zu (%s) went unnoticed", v, i,
					 saved.why);
			}
			q->rules[i] = saved;
		}
		free(q);
	}

	/* The rows of the issue, spelled out. */
	uint32_t iot = A("10.10.3.4");
	uint32_t cam = A("10.20.1.1");
	uint32_t broker = A("10.1.0.5");
	uint32_t server = A("10.2.0.7");
	uint32_t mgmt = A("10.1.0.9");
	uint32_t guest = A("192.168.50.3");
	uint32_t inet = A("8.8.8.8");
	assert_true(moat_net_decide(p, iot, broker, 1883));
	assert_true(moat_net_decide(p, cam, server, 443));
	assert_false(moat_net_decide(p, iot, broker, 443));
	assert_false(moat_net_decide(p, iot, server, 1883));
	assert_false(moat_net_decide(p, iot, A("10.10.3.5"), 1883));
	assert_false(moat_net_decide(p, iot, cam, 1883));
	assert_false(moat_net_decide(p, iot, mgmt, 22));
	assert_false(moat_net_decide(p, iot, guest, 80));
	assert_false(moat_net_decide(p, iot, inet, 443));
	assert_true(moat_net_decide(p, mgmt, iot, 22));
	assert_true(moat_net_decide(p, mgmt, inet, 0));
	assert_true(moat_net_decide(p, guest, inet, 443));
	assert_false(moat_net_decide(p, guest, broker, 1883));
	assert_false(moat_net_decide(p, guest, A("192.168.50.4"), 80));
	assert_false(moat_net_decide(p, inet, broker, 1883));
	assert_false(moat_net_decide(p, A("10.30.0.9"), iot, 80));

	/* The comparison has teeth: each mutation of the rule list is caught. */
	for (size_t i = 0; i < p->rule_count; i++) {
		struct moat_net_rule saved = p->rules[i];
		if (saved.action != MOAT_NET_ACCEPT && saved.action != MOAT_NET_DROP) {
			continue;
		}
		if (saved.src.kind == MOAT_NET_SEL_ZONE &&
		    p->zones[saved.src.zone].subnet_count == 0) {
			continue; /* a zone without subnets (printers): its rules match nothing */
		}
		if (saved.iif_not[0]) {
			continue; /* interface rules: decide's packets arrive on their zone's
				   * interface; verify proves these (untagged rows) */
		}
		p->rules[i].action = saved.action == MOAT_NET_ACCEPT ? MOAT_NET_DROP
								     : MOAT_NET_ACCEPT;
		if (disagreements(p) == 0) {
			fail_msg("flipping rule %zu (%s) went unnoticed", i, saved.why);
		}
		p->rules[i] = saved;
	}
	assert_int_equal(disagreements(p), 0);
	free(p);
}

static void test_render(void **state)
{
	(void)state;
	struct moat_net_policy *p = calloc(1, sizeof(*p));
	struct moat_err err = {0};
	char *a = NULL;
	char *b = NULL;
	size_t alen = 0;
	size_t blen = 0;
	assert_non_null(p);
	assert_int_equal(policy_from(custom_conf, p, &err), 0);
	assert_int_equal(moat_net_render(p, MOAT_NET_FORMAT_NFT, &a, &alen, &err), 0);
	assert_int_equal(moat_net_render(p, MOAT_NET_FORMAT_NFT, &b, &blen, &err), 0);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);
	assert_int_equal(strlen(a), alen);
	/* Only moat's tables are named, each replaced in the same transaction. */
	assert_non_null(strstr(a, "table inet moat\ndelete table inet moat\n"));
	assert_non_null(strstr(a, "table bridge moat\ndelete table bridge moat\n"));
	assert_null(strstr(a, "flush"));
	assert_non_null(strstr(a, "policy drop;"));
	assert_non_null(strstr(a, "elements = { 10.10.0.0/16, 172.16.5.0/24, 10.20.0.0/22 }"));
	assert_non_null(strstr(a, "ip daddr 10.1.0.5 tcp dport 1883 accept"));
	assert_non_null(strstr(a, "ip daddr 10.2.0.7 tcp dport 443 accept"));
	assert_non_null(strstr(a, "limit rate over 5/second burst 10 packets"));
	assert_non_null(
		strstr(a, "limit rate 3/second burst 6 packets log prefix \"moat-drop: \""));
	free(a);
	free(b);
	assert_int_equal(moat_net_render(p, MOAT_NET_FORMAT_IPTABLES, &a, &alen, &err), 0);
	assert_non_null(strstr(a, "*filter\n"));
	assert_non_null(strstr(a, "\nCOMMIT\n"));
	assert_non_null(strstr(a, "-A MOAT-FORWARD -s 172.16.5.0/24 -d 10.1.0.5/32"));
	assert_non_null(strstr(a, "--hashlimit-above 5/sec --hashlimit-burst 10"));
	free(a);

	enum moat_net_format f;
	assert_int_equal(moat_net_format_parse("nft", &f, &err), 0);
	assert_int_equal(f, MOAT_NET_FORMAT_NFT);
	assert_int_equal(moat_net_format_parse("iptables", &f, &err), 0);
	assert_int_equal(f, MOAT_NET_FORMAT_IPTABLES);
	assert_int_equal(moat_net_format_parse("pf", &f, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "unknown format 'pf'"));
	free(p);
}

static const char dual_conf[] = "[network]\n"
				"iot = 10.77.10.0/24, fd00:77:10::/64\n"
				"management = 10.77.1.0/24, fd00:77:1::/64\n"
				"guest = 10.77.20.0/24, fd00:77:20::/64, 2001:db8:20::/48\n"
				"extra_zones = cameras, lab\n"
				"cameras = 10.20.0.0/22, fd00:77:30::/64\n"
				"lab = 10.30.0.0/24\n"
				"device_zones = iot, cameras\n"
				"server_address = 10.77.1.11\n"
				"dns = 10.77.1.53\n";

static void P6(const char *s, uint8_t out[16])
{
	assert_int_equal(inet_pton(AF_INET6, s, out), 1);
}

static void test_parse_prefix6(void **state)
{
	(void)state;
	struct moat_net_prefix6 a;
	struct moat_net_prefix6 b;
	struct moat_err err = {0};
	assert_int_equal(moat_net_parse_prefix6("fd00:77:10::/64", &a, &err), 0);
	assert_int_equal(a.prefix, 64);
	assert_int_equal(a.addr[0], 0xfd);
	assert_int_equal(a.addr[5], 0x10);
	assert_int_equal(moat_net_parse_prefix6("2001:db8::/32", &b, &err), 0);
	assert_false(moat_net_prefixes6_overlap(&a, &b));
	assert_int_equal(moat_net_parse_prefix6("fd00:77::/32", &b, &err), 0);
	assert_true(moat_net_prefixes6_overlap(&a, &b));
	assert_true(moat_net_prefixes6_overlap(&b, &a));
	uint8_t x[16];
	P6("fd00:77:10::9", x);
	assert_true(moat_net_prefix6_contains(&a, x));
	P6("fd00:77:11::9", x);
	assert_false(moat_net_prefix6_contains(&a, x));
	static const char *const bad[] = {"fd00::",
					  "fd00::/",
					  "/64",
					  "fd00::/6a",
					  "fd00::/64/1",
					  "fd00::/0064",
					  "10.0.0.0/8",
					  "fd00::1/64",
					  "fd00::/15",
					  "fd00::/65",
					  "fd00::/128",
					  "fe80::/64",
					  "ff00::/16",
					  "::/16",
					  "fd00::%lo/64",
					  "fd00:: /64",
					  "fd00::1.2.3.4/64",
					  ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (moat_net_parse_prefix6(bad[i], &a, &err) != MOAT_EINVAL) {
			fail_msg("'%s' accepted", bad[i]);
		}
	}
}

/* IPv6 samples: first, second and last host of every prefix (of the /64 at its start), the
 * services, the gateway side and addresses of no zone. */
static size_t samples6(const struct moat_net_policy *p, uint8_t (*out)[16], size_t max)
{
	size_t n = 0;
	for (size_t z = 0; z < p->zone_count; z++) {
		for (size_t s = 0; s < p->zones[z].prefix6_count && n + 3 <= max; s++) {
			for (int k = 0; k < 3; k++) {
				memcpy(out[n], p->zones[z].prefixes6[s].addr, 16);
				out[n][15] = (uint8_t)(k == 2 ? 0xfe : k + 1);
				out[n][8] = k == 2 ? 0xff : 0;
				n++;
			}
		}
	}
	if (p->services6 && n + 2 <= max) {
		memcpy(out[n++], p->broker_addr6, 16);
		memcpy(out[n++], p->server_addr6, 16);
	}
	static const char *const outside[] = {"2001:4860:4860::8888", "fd00:1::1", "fe80::1", "::"};
	for (size_t i = 0; i < 4 && n < max; i++) {
		assert_int_equal(inet_pton(AF_INET6, outside[i], out[n++]), 1);
	}
	return n;
}

static size_t disagreements6(const struct moat_net_policy *p)
{
	static uint8_t addrs[128][16];
	size_t n = samples6(p, addrs, 128);
	uint16_t ports[] = {0, p->broker_port, p->server_port, 22, 53, 123, 67};
	const enum moat_net_proto protos[] = {MOAT_NET_PROTO_TCP, MOAT_NET_PROTO_UDP,
					      MOAT_NET_PROTO_OTHER};
	size_t bad = 0;
	for (size_t s = 0; s < n; s++) {
		for (size_t d = 0; d < n; d++) {
			for (size_t k = 0; k < sizeof(ports) / sizeof(ports[0]); k++) {
				for (size_t q = 0; q < 3; q++) {
					struct moat_net_pkt a = {.v6 = true,
								 .proto = protos[q],
								 .dport = ports[k]};
					memcpy(a.src6, addrs[s], 16);
					memcpy(a.dst6, addrs[d], 16);
					struct moat_net_pkt g = a;
					g.to_gateway = true;
					bad += moat_net_decide_pkt(p, &a) !=
					       moat_net_expect_pkt(p, &a);
					bad += moat_net_decide_pkt(p, &g) !=
					       moat_net_expect_pkt(p, &g);
				}
			}
		}
	}
	return bad;
}

/* Number of lines of text that contain both a and b. */
static size_t lines_with(const char *text, const char *a, const char *b)
{
	size_t n = 0;
	for (const char *l = text; l && *l;) {
		const char *e = strchr(l, '\n');
		size_t len = e ? (size_t)(e - l) : strlen(l);
		char line[512];
		snprintf(line, sizeof(line), "%.*s", (int)(len < 511 ? len : 511), l);
		n += strstr(line, a) && strstr(line, b);
		l = e ? e + 1 : NULL;
	}
	return n;
}

static void test_ipv6(void **state)
{
	(void)state;
	struct moat_net_policy *p = calloc(1, sizeof(*p));
	struct moat_err err = {0};
	assert_non_null(p);
	/* Off by default: no prefix, no IPv6 set, no ip6 rule. */
	assert_int_equal(policy_from("", p, &err), 0);
	assert_false(p->has_v6);
	assert_false(p->services6);
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(moat_net_render(p, MOAT_NET_FORMAT_NFT, &text, &len, &err), 0);
	assert_null(strstr(text, "ip6 saddr"));
	free(text);
	if (policy_from(dual_conf, p, &err) != 0) {
		fail_msg("%s", err.msg);
	}
	assert_true(p->has_v6);
	assert_true(p->services6);
	char a[48];
	moat_net_addr6_format(p->broker_addr6, a, sizeof(a));
	assert_string_equal(a, "fd00:77:1::a");
	moat_net_addr6_format(p->server_addr6, a, sizeof(a));
	assert_string_equal(a, "fd00:77:1::b");
	assert_int_equal(p->zones[2].prefix6_count, 2);
	assert_int_equal(disagreements6(p), 0);
	assert_int_equal(disagreements(p), 0);

	/* The rows of the design, over IPv6. */
	struct moat_net_pkt k = {.v6 = true, .proto = MOAT_NET_PROTO_TCP, .dport = 8883};
	P6("fd00:77:10::5", k.src6);
	memcpy(k.dst6, p->broker_addr6, 16);
	assert_true(moat_net_decide_pkt(p, &k));
	P6("fd00:77:10::6", k.dst6);
	assert_false(moat_net_decide_pkt(p, &k)); /* iot <-> iot */
	P6("fd00:77:30::6", k.dst6);
	assert_false(moat_net_decide_pkt(p, &k)); /* iot -> cameras */
	P6("2001:4860::1", k.dst6);
	assert_false(moat_net_decide_pkt(p, &k)); /* iot -> the internet */
	P6("2001:db8:20:1::9", k.src6);
	assert_true(moat_net_decide_pkt(p, &k)); /* guest -> the internet */
	memcpy(k.dst6, p->broker_addr6, 16);
	assert_false(moat_net_decide_pkt(p, &k)); /* guest -> broker */
	k.dport = 53;
	k.proto = MOAT_NET_PROTO_UDP;
	P6("fd00:77:1::35", k.dst6);
	assert_false(moat_net_decide_pkt(p, &k)); /* dns lists IPv4 servers only */

	/* Teeth: flipping any one rule is caught by IPv6 packets alone, so every rule that
	 * names addresses has its IPv6 meaning (the dns server's has none). */
	for (size_t i = 0; i < p->rule_count; i++) {
		struct moat_net_rule saved = p->rules[i];
		if ((saved.action != MOAT_NET_ACCEPT && saved.action != MOAT_NET_DROP) ||
		    saved.iif_not[0] ||
		    (saved.src.kind == MOAT_NET_SEL_ZONE &&
		     p->zones[saved.src.zone].prefix6_count == 0) ||
		    (saved.dst.kind == MOAT_NET_SEL_ADDR && !saved.dst.has6)) {
			continue;
		}
		p->rules[i].action = saved.action == MOAT_NET_ACCEPT ? MOAT_NET_DROP
								     : MOAT_NET_ACCEPT;
		if (disagreements6(p) == 0) {
			fail_msg("flipping rule %zu (%s) went unnoticed over IPv6", i, saved.why);
		}
		p->rules[i] = saved;
	}

	/* The ruleset: every rule that names addresses has an ip6 line, in both tables. */
	assert_int_equal(moat_net_render(p, MOAT_NET_FORMAT_NFT, &text, &len, &err), 0);
	assert_non_null(strstr(text, "type ipv6_addr"));
	assert_non_null(strstr(text, "elements = { fd00:77:20::/64, 2001:db8:20::/48 }"));
	assert_non_null(strstr(text, "ip6 saddr @device_zones6 ip6 daddr fd00:77:1::a tcp dport "
				     "8883 accept"));
	assert_non_null(strstr(text, "ip6 saddr @device_zones6 ip6 daddr fd00:77:1::b tcp dport "
				     "8443 accept"));
	assert_non_null(strstr(text, "update @newconn6 { ip6 saddr limit rate over"));
	assert_non_null(strstr(text, "meta nfproto ipv6 ip6 daddr != @all_zones6 accept"));
	assert_non_null(strstr(text, "nd-router-solicit, nd-router-advert, nd-neighbor-solicit, "
				     "nd-neighbor-advert }"));
	for (size_t i = 0; i < p->rule_count; i++) {
		const struct moat_net_rule *r = &p->rules[i];
		char c[80];
		snprintf(c, sizeof(c), "comment \"%s\"", r->why);
		bool named = r->src.kind != MOAT_NET_SEL_ANY || r->dst.kind != MOAT_NET_SEL_ANY;
		bool v4only = r->dst.kind == MOAT_NET_SEL_ADDR && !r->dst.has6;
		if (named && !v4only) {
			/* forward or input; and in the bridge table when bridged */
			size_t want = (r->iif_not[0] ? 2 : 1) + (r->bridged ? 1 : 0);
			if (lines_with(text, "ip6 ", c) != want ||
			    lines_with(text, "ip ", c) != want) {
				fail_msg("rule %zu (%s): %zu ip6 and %zu ip lines, want %zu", i,
					 r->why, lines_with(text, "ip6 ", c),
					 lines_with(text, "ip ", c), want);
			}
		} else if (named) {
			assert_int_equal(lines_with(text, "ip6 ", c), 0);
		}
	}
	free(text);
	/* No IPv4-only rendering of a dual-stack policy. */
	assert_int_equal(moat_net_render(p, MOAT_NET_FORMAT_IPTABLES, &text, &len, &err),
			 MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "covers IPv4 only"));
	free(p);
}

/* The real thing, where this machine allows it; otherwise skipped, never passed. */
static void test_verify_namespaces(void **state)
{
	(void)state;
	struct moat_net_policy *p = calloc(1, sizeof(*p));
	struct moat_net_verify_report *r = calloc(1, sizeof(*r));
	struct moat_err err = {0};
	assert_non_null(p);
	assert_non_null(r);
	assert_int_equal(policy_from("", p, &err), 0);
	int rc = moat_net_verify(p, r, &err);
	if (rc == MOAT_ESTATE) {
		print_message("skipped: %s\n", err.msg);
		free(p);
		free(r);
		skip();
	}
	if (rc != 0) {
		fail_msg("verify: %s", err.msg);
	}
	for (size_t i = 0; i < r->probe_count; i++) {
		if (!r->probes[i].ok) {
			print_message("mismatch: %s -> %s:%u %s\n", r->probes[i].from,
				      r->probes[i].to, r->probes[i].port,
				      moat_net_observed_name(r->probes[i].observed));
		}
	}
	assert_int_equal(r->mismatches, 0);
	assert_true(r->probe_count > 20);
	assert_true(r->logged_drops > 0);

	/* Two hosts of one zone on one bridge at addresses of no zone: link-local and
	 * self-given IPv4 and IPv6, both ways, for iot and guest: blocked. */
	size_t peers = 0;
	for (size_t i = 0; i < r->probe_count; i++) {
		const struct moat_net_probe *pr = &r->probes[i];
		if (pr->peer) {
			peers++;
			assert_false(pr->expect_open);
			assert_int_equal(pr->observed, MOAT_NET_OBS_BLOCKED);
			assert_true(pr->link_local == (pr->v6 && pr->dst6[0] == 0xfe));
		}
	}
	assert_int_equal(peers, 2 * 3 * 2);

	/* Without the bridge table's copy of the device rule, the bridge ports still keep
	 * the two devices on one bridge apart: the port rules alone hold (that the address
	 * rule alone is caught when both go is tests/e2e/test_net_verify.sh). */
	for (size_t i = 0; i < p->rule_count; i++) {
		if (p->rules[i].src.kind == MOAT_NET_SEL_DEVICES &&
		    p->rules[i].dst.kind == MOAT_NET_SEL_DEVICES) {
			p->rules[i].bridged = false;
		}
	}
	memset(r, 0, sizeof(*r));
	assert_int_equal(moat_net_verify(p, r, &err), 0);
	assert_int_equal(r->mismatches, 0);

	/* Dual stack: every probe has its IPv6 twin (but the IPv4 flood), all hold; without
	 * the bridged device rule, iot-1 and iot-2 reach each other over both families. */
	assert_int_equal(policy_from(dual_conf, p, &err), 0);
	memset(r, 0, sizeof(*r));
	assert_int_equal(moat_net_verify(p, r, &err), 0);
	size_t six = 0;
	for (size_t i = 0; i < r->probe_count; i++) {
		six += r->probes[i].v6;
		if (!r->probes[i].ok) {
			print_message("mismatch: %s -> %s:%u %s (%s)\n", r->probes[i].from,
				      r->probes[i].to, r->probes[i].port,
				      moat_net_observed_name(r->probes[i].observed),
				      r->probes[i].v6 ? "IPv6" : "IPv4");
		}
	}
	assert_int_equal(r->mismatches, 0);
	/* every IPv6 probe is the twin of an IPv4 one; lab (no prefix) has none */
	assert_true(six > 100);
	for (size_t i = 0; i < r->probe_count; i++) {
		const struct moat_net_probe *a = &r->probes[i];
		bool twin = !a->v6;
		for (size_t j = 0; j < r->probe_count && !twin; j++) {
			const struct moat_net_probe *b = &r->probes[j];
			twin = !b->v6 && strcmp(a->from, b->from) == 0 &&
			       strcmp(a->to, b->to) == 0 && a->port == b->port &&
			       a->udp == b->udp && a->expect_open == b->expect_open;
		}
		assert_true(twin);
		assert_false(a->v6 && !a->peer && strncmp(a->from, "lab-", 4) == 0);
	}
	free(p);
	free(r);
}

static void test_vlans(void **state)
{
	(void)state;
	struct moat_net_policy *p = calloc(1, sizeof(*p));
	struct moat_err err = {0};
	assert_non_null(p);
	/* The tutorial's layout by default: management 10, IoT 20, guest 30 on one trunk. */
	assert_int_equal(policy_from("", p, &err), 0);
	assert_int_equal(p->zones[0].vlan, 20);
	assert_int_equal(p->zones[1].vlan, 10);
	assert_int_equal(p->zones[2].vlan, 30);
	assert_string_equal(p->zones[0].parent, "eth0");
	/* Each zone only from its own sub-interface, in the forward rules. */
	size_t iif_rules = 0;
	for (size_t i = 0; i < p->rule_count; i++) {
		if (p->rules[i].iif_not[0]) {
			iif_rules++;
			assert_int_equal(p->rules[i].action, MOAT_NET_DROP);
			assert_int_equal(p->rules[i].src.kind, MOAT_NET_SEL_ZONE);
		}
	}
	assert_int_equal(iif_rules, 3);
	assert_int_equal(policy_from("[network]\ntrunk = bond0\nextra_zones = lab\n"
				     "lab = 10.30.0.0/24\n"
				     "vlans = iot:120, lab:7@eth2, management:4094\n",
				     p, &err),
			 0);
	assert_int_equal(p->zones[0].vlan, 120);
	assert_string_equal(p->zones[0].parent, "bond0");
	assert_int_equal(p->zones[1].vlan, 4094);
	assert_int_equal(p->zones[2].vlan, 0); /* guest: not listed, no VLAN */
	assert_int_equal(p->zones[3].vlan, 7);
	assert_string_equal(p->zones[3].parent, "eth2");
	/* The same id on two trunks is two VLANs. */
	assert_int_equal(policy_from("[network]\nvlans = iot:20, guest:20@eth1\n", p, &err), 0);
	assert_int_equal(policy_from("[network]\nvlans = none\n", p, &err), 0);
	for (size_t z = 0; z < p->zone_count; z++) {
		assert_int_equal(p->zones[z].vlan, 0);
	}
	for (size_t i = 0; i < p->rule_count; i++) {
		assert_int_equal(p->rules[i].iif_not[0], '\0');
	}
	free(p);
}

/* bridge_ports: in the bridge table only, before the address rules, per zone by port in
 * both directions with no other condition (no address, MAC, protocol: nothing a host picks);
 * never in the inet table; named in the iptables form, which cannot carry them. */
static void test_bridge_ports(void **state)
{
	(void)state;
	struct moat_net_policy *p = calloc(1, sizeof(*p));
	struct moat_err err = {0};
	char *text = NULL;
	size_t len = 0;
	assert_non_null(p);
	assert_int_equal(policy_from("", p, &err), 0);
	assert_int_equal(p->port_count, 0);
	assert_int_equal(moat_net_render(p, MOAT_NET_FORMAT_NFT, &text, &len, &err), 0);
	assert_null(strstr(text, "bridge_ports"));
	assert_null(strstr(text, "iifname {"));
	free(text);
	assert_int_equal(policy_from("[network]\nbridge_ports = none\n", p, &err), 0);
	assert_int_equal(p->port_count, 0);

	assert_int_equal(policy_from("[network]\nbridge_ports = iot:wlan0, guest:wlan1, "
				     "iot:eth1.20\n",
				     p, &err),
			 0);
	assert_int_equal(p->port_count, 3);
	assert_string_equal(p->ports[0].name, "wlan0");
	assert_int_equal(p->ports[0].zone, 0);
	assert_string_equal(p->ports[1].name, "wlan1");
	assert_int_equal(p->ports[1].zone, 2);
	assert_int_equal(moat_net_render(p, MOAT_NET_FORMAT_NFT, &text, &len, &err), 0);
	const char *bridge = strstr(text, "table bridge moat {");
	assert_non_null(bridge);
	const char *iif = strstr(text, "\t\tiifname { \"wlan0\", \"eth1.20\" } jump log_drop "
				       "comment \"iot: no frame between its bridge ports\"\n");
	const char *oif = strstr(text, "\t\toifname { \"wlan0\", \"eth1.20\" } jump log_drop "
				       "comment \"iot: no frame between its bridge ports\"\n");
	const char *giif = strstr(text, "\t\tiifname { \"wlan1\" } jump log_drop comment "
					"\"guest: no frame between its bridge ports\"\n");
	const char *goif = strstr(text, "\t\toifname { \"wlan1\" } jump log_drop comment "
					"\"guest: no frame between its bridge ports\"\n");
	assert_non_null(iif);
	assert_non_null(oif);
	assert_non_null(giif);
	assert_non_null(goif);
	/* in the bridge table's forward chain, first: before the address rules */
	const char *first_addr = strstr(bridge, "devices never reach each other");
	assert_non_null(first_addr);
	assert_true(iif > bridge && oif > bridge && giif > bridge && goif > bridge);
	assert_true(iif < first_addr && oif < first_addr && goif < first_addr);
	assert_non_null(strstr(text, "# bridge_ports (each faces one zone's hosts only): "
				     "iot:wlan0 guest:wlan1 iot:eth1.20\n"));
	/* exactly four such rules, none in the inet table */
	size_t n = 0;
	for (const char *c = text; (c = strstr(c, "no frame between")) != NULL; c++) {
		n++;
	}
	assert_int_equal(n, 4);
	free(text);

	assert_int_equal(moat_net_render(p, MOAT_NET_FORMAT_IPTABLES, &text, &len, &err), 0);
	assert_non_null(strstr(text,
			       "#   ip link set dev wlan0 type bridge_slave isolated on\n"
			       "#   ip link set dev wlan1 type bridge_slave isolated on\n"
			       "#   ip link set dev eth1.20 type bridge_slave isolated on\n"));
	assert_null(strstr(text, "wlan0 -j"));
	free(text);

	/* An extra device zone gets its own rules. */
	assert_int_equal(policy_from("[network]\nextra_zones = cam\ncam = 10.40.0.0/24\n"
				     "device_zones = iot, cam\nbridge_ports = cam:cam0\n",
				     p, &err),
			 0);
	assert_int_equal(moat_net_render(p, MOAT_NET_FORMAT_NFT, &text, &len, &err), 0);
	assert_non_null(strstr(text, "iifname { \"cam0\" } jump log_drop comment \"cam: no frame"));
	free(text);
	free(p);
}

/* The day-one layout (docs/OPERATIONS.md: moat init --broker-host 10.77.1.10): agents get
 * https://<broker host>:<server port> as their update URL (moatd runs beside the broker),
 * so the default policy must let devices reach that address and port. */
static void test_day_one_ota(void **state)
{
	(void)state;
	struct moat_net_policy *p = calloc(1, sizeof(*p));
	struct moat_err err = {0};
	assert_non_null(p);
	assert_int_equal(policy_from("[broker]\nhosts = 10.77.1.10\nport = 8883\n[server]\n"
				     "port = 8443\n",
				     p, &err),
			 0);
	uint32_t dev = A("10.77.10.20");
	assert_true(moat_net_decide(p, dev, A("10.77.1.10"), 8443));
	assert_true(moat_net_expect(p, dev, A("10.77.1.10"), 8443));
	assert_true(moat_net_decide(p, dev, A("10.77.1.10"), 8883));
	/* A broker moved elsewhere takes the update server along unless it is set apart. */
	assert_int_equal(policy_from("[network]\nbroker_address = 10.77.1.20\n", p, &err), 0);
	assert_true(moat_net_decide(p, dev, A("10.77.1.20"), 8443));
	assert_int_equal(policy_from("[network]\nbroker_address = 10.77.1.20\n"
				     "server_address = 10.77.1.21\n",
				     p, &err),
			 0);
	assert_false(moat_net_decide(p, dev, A("10.77.1.20"), 8443));
	assert_true(moat_net_decide(p, dev, A("10.77.1.21"), 8443));
	free(p);
}

/* iptables-restore input names moat's chains only: never a built-in chain or its policy. */
static void test_iptables_leaves_forward_policy(void **state)
{
	(void)state;
	struct moat_net_policy *p = calloc(1, sizeof(*p));
	struct moat_err err = {0};
	assert_non_null(p);
	assert_int_equal(policy_from(custom_conf, p, &err), 0);
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(moat_net_render(p, MOAT_NET_FORMAT_IPTABLES, &text, &len, &err), 0);
	for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl) {
			*nl = '\0';
		}
		if (line[0] == '#' || strcmp(line, "*filter") == 0 || strcmp(line, "COMMIT") == 0) {
			continue;
		}
		if (line[0] == ':') {
			assert_true(strncmp(line, ":MOAT-", 6) == 0);
			assert_non_null(strstr(line, " - [0:0]"));
			continue;
		}
		if (strncmp(line, "-A MOAT-", 8) != 0) {
			fail_msg("not a rule of a moat chain: %s", line);
		}
		assert_null(strstr(line, " -P "));
	}
	free(text);
	free(p);
}

static void test_interfaces_render(void **state)
{
	(void)state;
	struct moat_net_policy *p = calloc(1, sizeof(*p));
	struct moat_net_files *f = calloc(1, sizeof(*f));
	struct moat_err err = {0};
	assert_non_null(p);
	assert_non_null(f);
	/* The broker holds the first address of management: the gateway takes the next. */
	assert_int_equal(policy_from("[network]\nbroker_address = 10.77.1.1\n"
				     "iot = 10.77.10.0/24, 10.78.0.0/16\nvlans = iot:20, "
				     "management:10@eth1\n",
				     p, &err),
			 0);
	assert_int_equal(moat_net_gateway_addr(p, 1, 0), A("10.77.1.2"));
	assert_int_equal(moat_net_render_networkd(p, f, &err), 0);
	assert_int_equal(f->count, 6); /* two trunks, two files per VLAN */
	assert_string_equal(f->files[0].name, "20-moat-eth0.network");
	assert_non_null(strstr(f->files[0].text, "[Match]\nName=eth0\n\n[Network]\n"
						 "VLAN=eth0.20\n"));
	assert_null(strstr(f->files[0].text, "eth1"));
	assert_string_equal(f->files[1].name, "20-moat-eth1.network");
	assert_string_equal(f->files[2].name, "20-moat-eth0.20.netdev");
	assert_non_null(strstr(f->files[2].text, "[NetDev]\nName=eth0.20\nKind=vlan\n\n"
						 "[VLAN]\nId=20\n"));
	assert_string_equal(f->files[3].name, "20-moat-eth0.20.network");
	assert_non_null(strstr(f->files[3].text, "Address=10.77.10.1/24\nAddress=10.78.0.1/16\n"));
	assert_non_null(strstr(f->files[5].text, "Name=eth1.10\n"));
	assert_non_null(strstr(f->files[5].text, "Address=10.77.1.2/24\n"));
	moat_net_files_free(f);
	assert_int_equal(f->count, 0);
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(moat_net_render_ifupdown(p, &text, &len, &err), 0);
	assert_non_null(strstr(text, "auto eth1.10\niface eth1.10 inet static\n\taddress "
				     "10.77.1.2\n\tnetmask 255.255.255.0\n\tvlan-raw-device "
				     "eth1\n"));
	assert_non_null(strstr(text, "iface eth0.20 inet static\n\taddress 10.78.0.1\n\tnetmask "
				     "255.255.0.0\n"));
	free(text);
	/* No VLANs: no files. */
	assert_int_equal(policy_from("[network]\nvlans = none\n", p, &err), 0);
	assert_int_equal(moat_net_render_networkd(p, f, &err), 0);
	assert_int_equal(f->count, 0);
	free(f);
	free(p);
}

static int guard_of(const char *text, struct moat_net_guard *g, struct moat_err *err)
{
	struct moat_config *cfg = NULL;
	assert_int_equal(moat_config_parse("moat.conf", text, strlen(text), &cfg, err), 0);
	int rc = moat_net_guard_from_config(cfg, g, err);
	moat_config_free(cfg);
	return rc;
}

static void test_guard_config(void **state)
{
	(void)state;
	struct moat_net_guard g;
	struct moat_err err = {0};
	assert_int_equal(guard_of("[broker]\nport = 1883\n[server]\nport = 9443\n", &g, &err), 0);
	assert_int_equal(g.mode, MOAT_NET_GUARD_AUTO);
	assert_int_equal(g.broker_port, 1883);
	assert_int_equal(g.server_port, 9443);
	assert_int_equal(g.broker_per_source, MOAT_NET_GUARD_BROKER_PER_SOURCE);
	assert_int_equal(g.server_per_source, MOAT_NET_GUARD_SERVER_PER_SOURCE);
	assert_int_equal(g.new_per_source, MOAT_NET_GUARD_NEW_PER_SOURCE);
	assert_int_equal(g.broker_max, 10000); /* [broker] max_connections' default */
	assert_int_equal(g.exempt_count, 2);
	assert_string_equal(g.exempt[0], "127.0.0.1");
	assert_string_equal(g.exempt[1], "::1");
	assert_int_equal(guard_of("[broker]\nmax_connections = -1\n[guard]\nenabled = no\nexempt "
				  "= none\n",
				  &g, &err),
			 0);
	assert_int_equal(g.mode, MOAT_NET_GUARD_OFF);
	assert_int_equal(g.broker_max, 0);
	assert_int_equal(g.exempt_count, 0);
	static const struct {
		const char *text;
		const char *want;
	} bad[] = {
		{"[guard]\nenabled = maybe\n", "auto, yes or no"},
		{"[guard]\nbroker_per_source = 0\n", "broker_per_source"},
		{"[guard]\nserver_per_source = 1000001\n", "server_per_source"},
		{"[guard]\nnew_per_source = 100001\n", "new_per_source"},
		{"[guard]\nexempt = 10.0.0.1, host\n", "not an IP address"},
		{"[guard]\nexempt = 10.0.0.1,\n", "exempt"},
		{"[guard]\nexempt = 1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,1.1.1.6,1.1.1.7,1.1.1.8,"
		 "1.1.1.9,1.1.1.10,1.1.1.11,1.1.1.12,1.1.1.13,1.1.1.14,1.1.1.15,1.1.1.16,1.1.1.17\n",
		 "more than 16"},
		{"[guard]\nper_ip = 3\n", "per_ip"},
		{"[broker]\nmax_connections = -2\n", "max_connections"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&g, 0x5a, sizeof(g));
		if (guard_of(bad[i].text, &g, &err) == 0 || !strstr(err.msg, bad[i].want)) {
			fail_msg("row %zu: accepted or wrong message: %s", i, err.msg);
		}
		assert_int_equal(g.broker_per_source, 0); /* zeroed */
	}
}

static void test_guard_render(void **state)
{
	(void)state;
	struct moat_net_guard g;
	struct moat_err err = {0};
	assert_int_equal(guard_of("[broker]\nport = 1883\nmax_connections = 500\n[server]\nport = "
				  "9443\n[guard]\nbroker_per_source = 7\nserver_per_source = "
				  "3\nnew_per_source = 9\nexempt = 10.9.9.9\n",
				  &g, &err),
			 0);
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(moat_net_guard_render(&g, &text, &len, &err), 0);
	static const char *const want[] = {
		"table inet moat_guard_1883\ndelete table inet moat_guard_1883\n",
		"tcp dport 1883 ct count over 500 jump refuse_total_connections",
		"ip saddr @exempt4 return",
		"update @rate4 { ip saddr limit rate over 9/second burst 18 packets }",
		"tcp dport 1883 add @broker4 { ip saddr ct count over 7 }",
		"tcp dport 1883 add @broker6 { ip6 saddr & ffff:ffff:ffff:ffff:: ct count over 7 }",
		"tcp dport 9443 add @server4 { ip saddr ct count over 3 }",
		"reject with tcp reset",
		"log prefix \"moat-guard: reason=source_connections \"",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (!strstr(text, want[i])) {
			fail_msg("missing '%s' in:\n%s", want[i], text);
		}
	}
	/* the total bound comes before the exemptions: the host counts toward capacity */
	assert_true(strstr(text, "refuse_total_connections\n") < strstr(text, "@exempt4 return"));
	assert_null(strstr(text, "exempt6")); /* no IPv6 exemption: no set, no rule */
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_parse_subnet),
		cmocka_unit_test(test_subnet_relations),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_zone_of_text),
		cmocka_unit_test(test_rejections),
		cmocka_unit_test(test_vlans),
		cmocka_unit_test(test_day_one_ota),
		cmocka_unit_test(test_iptables_leaves_forward_policy),
		cmocka_unit_test(test_interfaces_render),
		cmocka_unit_test(test_decide_matches_expect),
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_parse_prefix6),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_guard_config),
		cmocka_unit_test(test_guard_render),
		cmocka_unit_test(test_bridge_ports),
		cmocka_unit_test(test_verify_namespaces),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
