/* verify.c: proves a policy with real packets. It builds a throwaway topology of network
 * namespaces named "moat-<pid>-*": a router holding the rendered ruleset, one bridge per zone
 * in the router with up to two hosts behind it (so two devices share a bridge and their
 * traffic is bridged, not routed), a management host that owns the broker and update-server
 * addresses, and an "outside" host behind an uplink; zones on a VLAN are built on 802.1Q
 * sub-interfaces of veth trunks where the kernel has them, and rogue hosts on the IoT trunk
 * send untagged or wrongly tagged frames. Every host and the router listen on the probed
 * ports (TCP; UDP echo for DNS, NTP and DHCP);
 * probes are non-blocking connect() calls from forked children that joined the source
 * namespace with setns(2). The expectation of every probe comes from moat_net_expect, which
 * is written independently of the rule list, so a wrong rule shows up as a mismatch.
 *
 * Cleanup: every namespace and child is recorded in a file-level table as soon as it exists;
 * the same teardown runs at the end of every path, on MOAT_EINTR when the caller's signal
 * handler sets moat_net_interrupted, and from an atexit handler. Children die with their
 * parent (PR_SET_PDEATHSIG), and a later run removes namespaces whose moat process is gone.
 * Addresses only ever exist inside these namespaces: links are created directly in them.
 * Zones with IPv6 prefixes: every host, the router and the outside get IPv6 addresses too
 * (nodad) and every probe but the flood runs again over IPv6. */
#include "moat/net.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "moat/spawn.h"

#include "net_internal.h"

volatile int moat_net_interrupted;

#define NS_MAX (2 * MOAT_NET_ZONES_MAX + 4)
#define KIDS_MAX (2 * NS_MAX)
#define NS_NAME_LEN 40
/* Long enough for one lost first packet to be sent again (TCP's first SYN retransmission
 * comes after 1 s; a UDP probe is resent every UDP_RESEND_MS): a SYN or datagram queued
 * behind neighbour discovery and dropped must not read as a blocked path. */
#define PROBE_TIMEOUT_MS 2500
#define UDP_RESEND_MS 500
#define FLOOD_TIMEOUT_MS 500
#define FLOOD_BURST_MAX (2 * MOAT_NET_FLOOD_RATE_MAX)
#define NETNS_DIR "/run/netns"
#define UDP_PORTS 3 /* DNS, NTP, DHCP on every host and the gateway */

/* What exists right now; read by teardown, also from the atexit handler. */
static struct {
	char ns[NS_MAX][NS_NAME_LEN];
	size_t ns_count;
	struct moat_spawn_child kids[KIDS_MAX];
	size_t kid_count;
	bool atexit_set;
} live;

struct host {
	char label[24];
	char ns[NS_NAME_LEN];
	int zone; /* -1: outside */
	uint32_t addr;
	unsigned prefix;
	uint32_t gw;
	uint32_t extra_addr; /* 0 or a second address (the update server on the mgmt host) */
	unsigned extra_prefix;
	uint16_t tag; /* the 802.1Q tag the host sends with; 0: untagged */
	bool rogue;   /* on zone's trunk port with the wrong tag or none: reaches nothing */
	bool has6;    /* its zone has an IPv6 prefix: the IPv6 counterparts of the above */
	uint8_t addr6[16];
	unsigned prefix6;
	uint8_t gw6[16];
	bool has_extra6;
	uint8_t extra6[16];
	bool stray;	    /* has the addresses of no zone below (a non-management zone's host) */
	uint8_t ll6[16];    /* a link-local address of its own */
	uint32_t stray4;    /* an IPv4 address of no zone, on-link for every stray host */
	uint8_t stray6[16]; /* the same in IPv6 */
	char port[24];	    /* the router's bridge port of its link; "" outside any bridge */
};

struct topo {
	char router[NS_NAME_LEN];
	struct host hosts[NS_MAX];
	size_t host_count;
	uint32_t gw[MOAT_NET_ZONES_MAX][MOAT_NET_SUBNETS_MAX];
	uint32_t outside_net;
	uint16_t ports[4]; /* tcp */
	uint16_t udp_ports[3];
	size_t port_count;
	uint16_t other_port;
	char zone_if[MOAT_NET_ZONES_MAX][32]; /* the router's (at most 15 characters) */
	uint8_t outside6[16];		      /* the uplink's IPv6 /64 (p->has_v6) */
	uint32_t stray_net;		      /* a /24 of no zone and not the outside's */
	uint8_t stray6_net[16];		      /* a /64 of no zone and not the outside's */
	bool vlan_ok; /* the kernel makes 802.1Q devices (CONFIG_VLAN_8021Q) */
};

static void teardown(void)
{
	for (size_t i = 0; i < live.kid_count; i++) {
		kill(live.kids[i].pid, SIGKILL);
	}
	for (size_t i = 0; i < live.kid_count; i++) {
		moat_spawn_stop(&live.kids[i], SIGKILL);
	}
	live.kid_count = 0;
	/* Deleting a namespace with no process left in it destroys it and its links. */
	for (size_t i = live.ns_count; i-- > 0;) {
		const char *argv[] = {"ip", "netns", "delete", live.ns[i], NULL};
		struct moat_err ignored;
		if (net_run(argv, NULL, NULL, 0, &ignored) != 0) {
			/* Already gone is fine; anything else is removed by the next run. */
		}
	}
	live.ns_count = 0;
}

static void teardown_at_exit(void)
{
	teardown();
}

static int check_interrupt(struct moat_err *err)
{
	if (moat_net_interrupted) {
		return moat_err_set(err, MOAT_EINTR,
				    "net verify: interrupted; removed everything "
				    "it created");
	}
	return 0;
}

static void fmt_cidr(uint32_t addr, unsigned prefix, char *buf, size_t size)
{
	char a[16];
	moat_net_addr_format(addr, a, sizeof(a));
	snprintf(buf, size, "%s/%u", a, prefix);
}

static void fmt_cidr6(const uint8_t addr[16], unsigned prefix, char *buf, size_t size)
{
	char a[48];
	moat_net_addr6_format(addr, a, sizeof(a));
	snprintf(buf, size, "%s/%u", a, prefix);
}

/* The IPv6 counterparts of a planned host's addresses (moat_net_addr6_for), if its zone
 * has a prefix. */
static void plan_host6(const struct moat_net_policy *p, struct host *h)
{
	int z = moat_net_zone_of(p, h->addr);
	h->has6 = z >= 0 && moat_net_addr6_for(p, h->addr, h->addr6) &&
		  moat_net_addr6_for(p, h->gw, h->gw6);
	if (!h->has6) {
		return;
	}
	h->prefix6 = p->zones[z].prefixes6[0].prefix;
	h->has_extra6 = h->extra_addr && moat_net_addr6_for(p, h->extra_addr, h->extra6);
}

/* Removes namespaces of earlier runs whose process no longer exists. */
static void remove_stale(void)
{
	DIR *d = opendir(NETNS_DIR);
	if (!d) {
		return;
	}
	char stale[64][NS_NAME_LEN];
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && n < 64) {
		const char *s = e->d_name;
		if (strncmp(s, "moat-", 5) != 0) {
			continue;
		}
		char *end = NULL;
		errno = 0;
		long long pid = strtoll(s + 5, &end, 10);
		if (errno != 0 || end == s + 5 || *end != '-' || pid <= 0 || pid > INT32_MAX ||
		    strlen(s) >= NS_NAME_LEN) {
			continue;
		}
		if ((pid_t)pid == getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) {
			continue;
		}
		memcpy(stale[n++], s, strlen(s) + 1); /* length checked above */
	}
	closedir(d);
	for (size_t i = 0; i < n; i++) {
		const char *argv[] = {"ip", "netns", "delete", stale[i], NULL};
		struct moat_err ignored;
		if (net_run(argv, NULL, NULL, 0, &ignored) != 0) {
			/* best effort: a namespace in use by someone else stays */
		}
	}
}

static int ns_add(const char *name, struct moat_err *err)
{
	const char *argv[] = {"ip", "netns", "add", name, NULL};
	if (live.ns_count >= NS_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "net verify: too many namespaces");
	}
	/* Recorded first: if the add half-succeeds, teardown still tries to remove it. */
	snprintf(live.ns[live.ns_count++], NS_NAME_LEN, "%s", name);
	int rc = net_run(argv, NULL, NULL, 0, err);
	if (rc != 0) {
		live.ns_count--;
	}
	return rc;
}

/* Runs `ip -n <ns> <args...>` (ns NULL: the caller's namespace). */
static int ipcmd(const char *ns, const char *const *args, struct moat_err *err)
{
	const char *argv[24];
	size_t n = 0;
	argv[n++] = "ip";
	if (ns) {
		argv[n++] = "-n";
		argv[n++] = ns;
	}
	for (size_t i = 0; args[i] && n < 23; i++) {
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	int rc = check_interrupt(err);
	return rc != 0 ? rc : net_run(argv, NULL, NULL, 0, err);
}

static int enter_ns(const char *ns)
{
	char path[128];
	snprintf(path, sizeof(path), NETNS_DIR "/%s", ns);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return -1;
	}
	int rc = setns(fd, CLONE_NEWNET);
	close(fd);
	return rc;
}

/* Children die with this process, keep their default SIGINT/SIGTERM and ignore SIGPIPE. */
#define CHILD_FLAGS (MOAT_SPAWN_DIE_WITH_PARENT | MOAT_SPAWN_SIGDEFAULT | MOAT_SPAWN_IGNORE_SIGPIPE)

/* In the child: forwarding on in namespace ns (ctx). */
static int forwarding_child(void *ctx)
{
	const char *ns = ctx;
	if (enter_ns(ns) != 0) {
		return 2;
	}
	/* /proc/sys/net belongs to the opener's namespace, so this is the router's. */
	int fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "1\n", 2) != 2) {
		return 3;
	}
	close(fd);
	fd = open("/proc/sys/net/ipv6/conf/all/forwarding", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) { /* absent: a kernel without IPv6, and no zone prefix gets this far */
		if (write(fd, "1\n", 2) != 2) {
			return 3;
		}
		close(fd);
	}
	/* Where br_netfilter is loaded, bridged frames also pass the inet hooks. Turned
	 * off here, so what stops two devices on one bridge is provably the bridge
	 * table, as on a gateway without br_netfilter. Absent files: nothing to do. */
	static const char *const hooks[] = {"/proc/sys/net/bridge/bridge-nf-call-iptables",
					    "/proc/sys/net/bridge/bridge-nf-call-ip6tables"};
	for (size_t i = 0; i < 2; i++) {
		fd = open(hooks[i], O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (write(fd, "0\n", 2) != 2) {
				return 4;
			}
			close(fd);
		}
	}
	return 0;
}

static int enable_forwarding(const char *ns, struct moat_err *err)
{
	struct moat_spawn sp = {.child_fn = forwarding_child,
				.child_ctx = (void *)ns,
				.flags = CHILD_FLAGS};
	struct moat_spawn_child c;
	int status = 0;
	int rc;
	if ((rc = moat_spawn_start(&sp, &c, err)) != 0 ||
	    (rc = moat_spawn_wait(&c, &status, err)) != 0) {
		moat_err_prefix(err, "net verify");
		return rc;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		return moat_err_set(err, MOAT_EIO, "net verify: cannot enable forwarding in %s",
				    ns);
	}
	return 0;
}

/* The next usable host address of s after *cursor that is not a service address. */
static bool next_free(const struct moat_net_policy *p, const struct moat_net_subnet *s,
		      uint32_t *cursor)
{
	uint32_t bcast = s->addr | (s->prefix == 0 ? 0xffffffffu : ((1u << (32 - s->prefix)) - 1));
	uint32_t a = *cursor == 0 ? s->addr + 1 : *cursor + 1;
	for (; a < bcast; a++) {
		if (a != p->broker_addr && a != p->server_addr) {
			*cursor = a;
			return true;
		}
	}
	return false;
}

/* Two hosts on the trunk port of the first device zone with a VLAN: one sends untagged
 * with an address of that zone, one tags its frames with the management VLAN and uses a
 * management address. Neither may reach anything. */
static void plan_rogues(const struct moat_net_policy *p, struct topo *t)
{
	int mz = -1;
	for (size_t z = 0; z < p->zone_count; z++) {
		mz = p->zones[z].kind == MOAT_NET_ZONE_MANAGEMENT ? (int)z : mz;
	}
	for (size_t z = 0; z < p->zone_count; z++) {
		const struct moat_net_zone *zn = &p->zones[z];
		if (zn->kind != MOAT_NET_ZONE_DEVICE || !zn->vlan || zn->subnet_count == 0) {
			continue;
		}
		uint32_t last = t->gw[z][0];
		for (size_t i = 0; i < t->host_count; i++) {
			last = t->hosts[i].zone == (int)z && t->hosts[i].addr > last
				       ? t->hosts[i].addr
				       : last;
		}
		for (int k = 0; k < (t->vlan_ok ? 2 : 1); k++) {
			const struct moat_net_zone *az = k == 0 ? zn : &p->zones[mz];
			size_t azi = k == 0 ? z : (size_t)mz;
			uint32_t a = k == 0 ? last : t->gw[azi][0];
			if ((k == 1 && (mz < 0 || !az->vlan || az->vlan == zn->vlan ||
					az->subnet_count == 0)) ||
			    !next_free(p, &az->subnets[0], &a) || t->host_count + 2 > NS_MAX) {
				continue;
			}
			struct host *h = &t->hosts[t->host_count];
			if (k == 0) {
				snprintf(h->label, sizeof(h->label), "%s-untagged", zn->name);
			} else {
				snprintf(h->label, sizeof(h->label), "%s-tag%u", zn->name,
					 (unsigned)az->vlan);
			}
			h->zone = (int)z; /* the trunk port it hangs on */
			h->addr = a;
			h->prefix = az->subnets[0].prefix;
			h->gw = t->gw[azi][0];
			h->tag = k == 0 ? 0 : az->vlan;
			h->rogue = true;
			plan_host6(p, h);
			snprintf(h->ns, sizeof(h->ns), "moat-%d-h%zu", (int)getpid(),
				 t->host_count);
			t->host_count++;
		}
		return;
	}
}

static int plan_outside(const struct moat_net_policy *p, struct topo *t, struct moat_err *err);

/* Addresses the hosts of a device or isolated zone give themselves, in no zone: a link-local
 * one and one in a range of no zone (IPv4 and IPv6), all on-link, so two hosts of one bridge
 * can talk over them without the gateway, unless their bridge ports are closed. Also names
 * each host's bridge port as attach_port makes it: these become the policy's bridge_ports. */
static int plan_strays(const struct moat_net_policy *p, struct topo *t, struct moat_err *err)
{
	static const uint32_t nets[] = {0xc6124d00u, 0xc6134d00u, 0xac1f4d00u}; /* 198.18.77.0 */
	t->stray_net = 0;
	for (size_t c = 0; c < sizeof(nets) / sizeof(nets[0]) && !t->stray_net; c++) {
		struct moat_net_subnet sn = {.addr = nets[c], .prefix = 24};
		bool clash = nets[c] == t->outside_net;
		for (size_t z = 0; z < p->zone_count; z++) {
			for (size_t s = 0; s < p->zones[z].subnet_count; s++) {
				clash = clash ||
					moat_net_subnets_overlap(&sn, &p->zones[z].subnets[s]);
			}
		}
		t->stray_net = clash ? 0 : nets[c];
	}
	bool found6 = false;
	for (uint8_t c = 0; c < 4 && !found6; c++) {
		struct moat_net_prefix6 sn = {.addr = {0xfd, 0xff, 0x00, 0x77, 0x00, c},
					      .prefix = 64};
		bool clash = false;
		for (size_t z = 0; z < p->zone_count; z++) {
			for (size_t s = 0; s < p->zones[z].prefix6_count; s++) {
				clash = clash ||
					moat_net_prefixes6_overlap(&sn, &p->zones[z].prefixes6[s]);
			}
		}
		if (!clash) {
			memcpy(t->stray6_net, sn.addr, 16);
			found6 = true;
		}
	}
	if (!t->stray_net || !found6) {
		return moat_err_set(err, MOAT_EINVAL,
				    "net verify: no free address range for the hosts' own "
				    "addresses");
	}
	for (size_t i = 0; i < t->host_count; i++) {
		struct host *h = &t->hosts[i];
		if (h->zone < 0 || p->zones[h->zone].kind == MOAT_NET_ZONE_MANAGEMENT) {
			continue;
		}
		uint16_t vlan = t->vlan_ok ? p->zones[h->zone].vlan : 0;
		if (vlan) {
			snprintf(h->port, sizeof(h->port), "v%u.%u", (unsigned)i, (unsigned)vlan);
		} else if (!h->rogue) {
			snprintf(h->port, sizeof(h->port), "v%u", (unsigned)i);
		}
		if (h->rogue) {
			continue;
		}
		h->stray = true;
		h->ll6[0] = 0xfe;
		h->ll6[1] = 0x80;
		h->ll6[13] = 0x77;
		h->ll6[15] = (uint8_t)(i + 1);
		h->stray4 = t->stray_net + (uint32_t)i + 1;
		memcpy(h->stray6, t->stray6_net, 16);
		h->stray6[15] = (uint8_t)(i + 1);
	}
	return 0;
}

static int plan_topology(const struct moat_net_policy *p, struct topo *t, struct moat_err *err)
{
	pid_t me = getpid();
	snprintf(t->router, sizeof(t->router), "moat-%d-r", (int)me);
	for (size_t z = 0; z < p->zone_count; z++) {
		const struct moat_net_zone *zn = &p->zones[z];
		uint32_t cursor0 = 0;
		/* The router's interface of the zone carries the gateway's name for it, so the
		 * ruleset's interface rules (iifname) mean the same here as on the gateway. */
		if (zn->vlan) {
			snprintf(t->zone_if[z], sizeof(t->zone_if[z]), "%s.%u", zn->parent,
				 (unsigned)zn->vlan);
		} else {
			snprintf(t->zone_if[z], sizeof(t->zone_if[z]), "br%zu", z);
		}
		for (size_t s = 0; s < zn->subnet_count; s++) {
			uint32_t c = moat_net_gateway_addr(p, z, s);
			if (c == 0) {
				return moat_err_set(err, MOAT_EINVAL,
						    "net verify: a subnet of zone %s has no free "
						    "address for the router",
						    zn->name);
			}
			t->gw[z][s] = c;
			if (s == 0) {
				cursor0 = c;
			}
		}
		if (zn->subnet_count == 0) {
			continue;
		}
		if (zn->kind == MOAT_NET_ZONE_MANAGEMENT) {
			struct host *h = &t->hosts[t->host_count];
			snprintf(h->label, sizeof(h->label), "mgmt");
			h->zone = (int)z;
			for (size_t s = 0; s < zn->subnet_count; s++) {
				if (moat_net_subnet_contains(&zn->subnets[s], p->broker_addr)) {
					h->addr = p->broker_addr;
					h->prefix = zn->subnets[s].prefix;
					h->gw = t->gw[z][s];
				}
				if (p->server_addr != p->broker_addr &&
				    moat_net_subnet_contains(&zn->subnets[s], p->server_addr)) {
					h->extra_addr = p->server_addr;
					h->extra_prefix = zn->subnets[s].prefix;
				}
			}
			h->tag = t->vlan_ok ? zn->vlan : 0;
			plan_host6(p, h);
			snprintf(h->ns, sizeof(h->ns), "moat-%d-h%zu", (int)me, t->host_count);
			t->host_count++;
			continue;
		}
		for (int i = 1; i <= 2; i++) {
			uint32_t a = cursor0;
			if (!next_free(p, &zn->subnets[0], &a)) {
				if (i == 1) {
					return moat_err_set(
						err, MOAT_EINVAL,
						"net verify: the first subnet of zone %s "
						"has no room for a host",
						zn->name);
				}
				break;
			}
			cursor0 = a;
			if (t->host_count + 2 > NS_MAX - 1) {
				return moat_err_set(err, MOAT_EINVAL,
						    "net verify: too many zones to probe");
			}
			struct host *h = &t->hosts[t->host_count];
			snprintf(h->label, sizeof(h->label), "%s-%d", zn->name, i);
			h->zone = (int)z;
			h->addr = a;
			h->prefix = zn->subnets[0].prefix;
			h->gw = t->gw[z][0];
			h->tag = t->vlan_ok ? zn->vlan : 0;
			plan_host6(p, h);
			snprintf(h->ns, sizeof(h->ns), "moat-%d-h%zu", (int)me, t->host_count);
			t->host_count++;
		}
	}
	plan_rogues(p, t);
	int rc = plan_outside(p, t, err);
	return rc != 0 ? rc : plan_strays(p, t, err);
}

/* The outside's IPv6 /64: the first documentation /64 that no zone uses. */
static int plan_outside6(const struct moat_net_policy *p, struct topo *t)
{
	for (uint8_t c = 0; c < 4; c++) {
		struct moat_net_prefix6 sn = {.addr = {0x20, 0x01, 0x0d, 0xb8, 0xff, c},
					      .prefix = 64};
		bool clash = false;
		for (size_t z = 0; z < p->zone_count; z++) {
			for (size_t s = 0; s < p->zones[z].prefix6_count; s++) {
				clash = clash ||
					moat_net_prefixes6_overlap(&sn, &p->zones[z].prefixes6[s]);
			}
		}
		if (!clash) {
			memcpy(t->outside6, sn.addr, 16);
			return 0;
		}
	}
	return -1;
}

/* The outside host behind an uplink, and the ports every host listens on. */
static int plan_outside(const struct moat_net_policy *p, struct topo *t, struct moat_err *err)
{
	pid_t me = getpid();
	/* The outside: the first documentation network that no zone uses. */
	static const uint32_t candidates[] = {0xc0000200u, 0xc6336400u, 0xcb007100u, 0x64400000u};
	t->outside_net = 0;
	for (size_t c = 0; c < sizeof(candidates) / sizeof(candidates[0]); c++) {
		struct moat_net_subnet sn = {.addr = candidates[c], .prefix = 24};
		bool clash = false;
		for (size_t z = 0; z < p->zone_count; z++) {
			for (size_t s = 0; s < p->zones[z].subnet_count; s++) {
				clash = clash ||
					moat_net_subnets_overlap(&sn, &p->zones[z].subnets[s]);
			}
		}
		if (!clash) {
			t->outside_net = candidates[c];
			break;
		}
	}
	if (t->outside_net == 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "net verify: no free address range for the outside host");
	}
	struct host *h = &t->hosts[t->host_count];
	snprintf(h->label, sizeof(h->label), "outside");
	h->zone = -1;
	h->addr = t->outside_net + 2;
	h->prefix = 24;
	h->gw = t->outside_net + 1;
	snprintf(h->ns, sizeof(h->ns), "moat-%d-x", (int)me);
	if (p->has_v6 && plan_outside6(p, t) == 0) {
		h->has6 = true;
		h->prefix6 = 64;
		memcpy(h->addr6, t->outside6, 16);
		memcpy(h->gw6, t->outside6, 16);
		h->addr6[15] = 2;
		h->gw6[15] = 1;
	} else if (p->has_v6) {
		return moat_err_set(err, MOAT_EINVAL,
				    "net verify: no free IPv6 range for the outside host");
	}
	t->host_count++;

	t->ports[0] = p->broker_port;
	t->port_count = 1;
	if (p->server_port != p->broker_port) {
		t->ports[t->port_count++] = p->server_port;
	}
	t->other_port = 2222;
	while (t->other_port == p->broker_port || t->other_port == p->server_port ||
	       t->other_port == MOAT_NET_DNS_PORT) {
		t->other_port++;
	}
	t->ports[t->port_count++] = t->other_port;
	if (p->broker_port != MOAT_NET_DNS_PORT && p->server_port != MOAT_NET_DNS_PORT) {
		t->ports[t->port_count++] = MOAT_NET_DNS_PORT;
	}
	t->udp_ports[0] = MOAT_NET_DNS_PORT;
	t->udp_ports[1] = MOAT_NET_NTP_PORT;
	t->udp_ports[2] = MOAT_NET_DHCP_PORT;
	return 0;
}

/* Puts the router's end rif of h's link into h's zone: straight into the zone's bridge, or,
 * for a zone on a VLAN, as a trunk whose sub-interface rif.<vlan> is the bridge's port, so
 * only frames tagged with the zone's VLAN reach the zone. */
static int attach_port(const struct moat_net_policy *p, const struct topo *t, const struct host *h,
		       const char *rif, struct moat_err *err)
{
	uint16_t vlan = t->vlan_ok ? p->zones[h->zone].vlan : 0;
	const char *br = t->zone_if[h->zone];
	char port[24];
	int rc;
	snprintf(port, sizeof(port), "%s", rif);
	if (h->rogue && !vlan) {
		/* No 802.1Q here: the trunk is a router port outside every bridge, where
		 * untagged frames arrive on a gateway's trunk too. */
		const char *up[] = {"link", "set", rif, "up", NULL};
		return ipcmd(t->router, up, err);
	}
	if (vlan) {
		char id[8];
		snprintf(port, sizeof(port), "%.12s.%u", rif, (unsigned)vlan);
		snprintf(id, sizeof(id), "%u", (unsigned)vlan);
		const char *up[] = {"link", "set", rif, "up", NULL};
		const char *add[] = {"link", "add",  "link", rif, "name", port,
				     "type", "vlan", "id",   id,  NULL};
		if ((rc = ipcmd(t->router, up, err)) != 0 ||
		    (rc = ipcmd(t->router, add, err)) != 0) {
			return rc;
		}
	}
	const char *master[] = {"link", "set", port, "master", br, "up", NULL};
	return ipcmd(t->router, master, err);
}

/* The host's IPv6 addresses (nodad: usable at once, no duplicate can exist here) and its
 * default route through the gateway. */
static int build_host6(const struct host *h, const char *hif, struct moat_err *err)
{
	char cidr[64];
	char gw[48];
	int rc;
	fmt_cidr6(h->addr6, h->prefix6, cidr, sizeof(cidr));
	const char *addr[] = {"addr", "add", cidr, "dev", hif, "nodad", NULL};
	if ((rc = ipcmd(h->ns, addr, err)) != 0) {
		return rc;
	}
	if (h->has_extra6) {
		fmt_cidr6(h->extra6, h->prefix6, cidr, sizeof(cidr));
		const char *extra[] = {"addr", "add", cidr, "dev", hif, "nodad", NULL};
		if ((rc = ipcmd(h->ns, extra, err)) != 0) {
			return rc;
		}
	}
	moat_net_addr6_format(h->gw6, gw, sizeof(gw));
	const char *route[] = {"-6", "route", "add", "default", "via", gw, "dev", hif, NULL};
	return ipcmd(h->ns, route, err);
}

static int build_host(const struct moat_net_policy *p, const struct topo *t, const struct host *h,
		      size_t idx, struct moat_err *err)
{
	char rif[24];
	char cidr[32];
	char gw[16];
	int rc = 0;
	snprintf(rif, sizeof(rif), h->zone < 0 ? "up0" : "v%zu", idx);
	const char *veth[] = {"link", "add",  rif,    "netns", t->router, "type", "veth",
			      "peer", "name", "eth0", "netns", h->ns,	  NULL};
	if ((rc = ipcmd(NULL, veth, err)) != 0) {
		return rc;
	}
	if (h->zone >= 0) {
		if ((rc = attach_port(p, t, h, rif, err)) != 0) {
			return rc;
		}
	} else {
		fmt_cidr(h->gw, 24, cidr, sizeof(cidr));
		const char *addr[] = {"addr", "add", cidr, "dev", rif, NULL};
		const char *up[] = {"link", "set", rif, "up", NULL};
		if ((rc = ipcmd(t->router, addr, err)) != 0 ||
		    (rc = ipcmd(t->router, up, err)) != 0) {
			return rc;
		}
		if (h->has6) {
			char cidr6[64];
			fmt_cidr6(h->gw6, 64, cidr6, sizeof(cidr6));
			const char *addr6[] = {"addr", "add", cidr6, "dev", rif, "nodad", NULL};
			if ((rc = ipcmd(t->router, addr6, err)) != 0) {
				return rc;
			}
		}
	}
	/* The host's own end: eth0, or its 802.1Q sub-interface eth0.<tag> over it. */
	char hif[24] = "eth0";
	const char *hup[] = {"link", "set", "eth0", "up", NULL};
	if (h->tag) {
		char id[8];
		snprintf(hif, sizeof(hif), "eth0.%u", (unsigned)h->tag);
		snprintf(id, sizeof(id), "%u", (unsigned)h->tag);
		const char *vlan[] = {"link", "add",  "link", "eth0", "name", hif,
				      "type", "vlan", "id",   id,     NULL};
		if ((rc = ipcmd(h->ns, hup, err)) != 0 || (rc = ipcmd(h->ns, vlan, err)) != 0) {
			return rc;
		}
	}
	fmt_cidr(h->addr, h->prefix, cidr, sizeof(cidr));
	const char *addr[] = {"addr", "add", cidr, "dev", hif, NULL};
	if ((rc = ipcmd(h->ns, addr, err)) != 0) {
		return rc;
	}
	if (h->extra_addr) {
		fmt_cidr(h->extra_addr, h->extra_prefix, cidr, sizeof(cidr));
		const char *extra[] = {"addr", "add", cidr, "dev", hif, NULL};
		if ((rc = ipcmd(h->ns, extra, err)) != 0) {
			return rc;
		}
	}
	moat_net_addr_format(h->gw, gw, sizeof(gw));
	const char *lo[] = {"link", "set", "lo", "up", NULL};
	const char *up[] = {"link", "set", hif, "up", NULL};
	const char *route[] = {"route", "add", "default", "via", gw, "dev", hif, NULL};
	if ((rc = ipcmd(h->ns, lo, err)) != 0 || (rc = ipcmd(h->ns, up, err)) != 0 ||
	    (rc = ipcmd(h->ns, route, err)) != 0) {
		return rc;
	}
	if (h->stray) {
		char a4[32];
		char ll[64];
		char s6[64];
		fmt_cidr(h->stray4, 24, a4, sizeof(a4));
		fmt_cidr6(h->ll6, 64, ll, sizeof(ll));
		fmt_cidr6(h->stray6, 64, s6, sizeof(s6));
		const char *add4[] = {"addr", "add", a4, "dev", hif, NULL};
		const char *addll[] = {"addr", "add", ll, "dev", hif, "nodad", NULL};
		const char *add6[] = {"addr", "add", s6, "dev", hif, "nodad", NULL};
		if ((rc = ipcmd(h->ns, add4, err)) != 0 || (rc = ipcmd(h->ns, addll, err)) != 0 ||
		    (rc = ipcmd(h->ns, add6, err)) != 0) {
			return rc;
		}
	}
	return h->has6 ? build_host6(h, hif, err) : 0;
}

static int build_topology(const struct moat_net_policy *p, const struct topo *t,
			  struct moat_err *err)
{
	int rc = ns_add(t->router, err);
	if (rc != 0) {
		return rc;
	}
	for (size_t i = 0; i < t->host_count; i++) {
		if ((rc = check_interrupt(err)) != 0 || (rc = ns_add(t->hosts[i].ns, err)) != 0) {
			return rc;
		}
	}
	const char *lo[] = {"link", "set", "lo", "up", NULL};
	if ((rc = ipcmd(t->router, lo, err)) != 0) {
		return rc;
	}
	for (size_t z = 0; z < p->zone_count; z++) {
		if (p->zones[z].subnet_count == 0) {
			continue;
		}
		const char *br = t->zone_if[z];
		const char *add[] = {"link", "add", br, "type", "bridge", NULL};
		const char *up[] = {"link", "set", br, "up", NULL};
		if ((rc = ipcmd(t->router, add, err)) != 0) {
			if (rc == MOAT_EIO) {
				rc = MOAT_ESTATE;
				if (err) {
					err->code = rc;
				}
				moat_err_prefix(err, "net verify: cannot create a bridge");
			}
			return rc;
		}
		if ((rc = ipcmd(t->router, up, err)) != 0) {
			return rc;
		}
		for (size_t s = 0; s < p->zones[z].subnet_count; s++) {
			char cidr[32];
			fmt_cidr(t->gw[z][s], p->zones[z].subnets[s].prefix, cidr, sizeof(cidr));
			const char *addr[] = {"addr", "add", cidr, "dev", br, NULL};
			if ((rc = ipcmd(t->router, addr, err)) != 0) {
				return rc;
			}
		}
		/* The gateway's IPv6 address in each prefix: the host part of its first IPv4
		 * address (moat_net_addr6_for), nodad. */
		uint8_t gw6[16];
		for (size_t s = 0;
		     s < p->zones[z].prefix6_count && moat_net_addr6_for(p, t->gw[z][0], gw6);
		     s++) {
			char cidr[64];
			memcpy(gw6, p->zones[z].prefixes6[s].addr, 12);
			fmt_cidr6(gw6, p->zones[z].prefixes6[s].prefix, cidr, sizeof(cidr));
			const char *addr[] = {"addr", "add", cidr, "dev", br, "nodad", NULL};
			if ((rc = ipcmd(t->router, addr, err)) != 0) {
				return rc;
			}
		}
	}
	for (size_t i = 0; i < t->host_count; i++) {
		if ((rc = build_host(p, t, &t->hosts[i], i, err)) != 0) {
			return rc;
		}
	}
	return enable_forwarding(t->router, err);
}

static int load_ruleset(const struct moat_net_policy *p, const struct topo *t, struct moat_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc = moat_net_render(p, MOAT_NET_FORMAT_NFT, &text, &len, err);
	if (rc != 0) {
		return rc;
	}
	const char *argv[] = {"ip", "netns", "exec", t->router, "nft", "-f", "-", NULL};
	rc = net_run(argv, text, NULL, 0, err);
	free(text);
	if (rc != 0) {
		moat_err_prefix(err, "net verify: loading the ruleset into the router");
	}
	return rc;
}

struct listener_arg {
	const struct topo *t;
	const struct host *h;
	bool v6; /* listen on IPv6 too (some zone has a prefix) */
};

/* A socket of family (AF_INET or AF_INET6, IPv6 only) bound to every address on port. */
static int listen_socket(int family, bool udp, uint16_t port)
{
	int fd = socket(family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		a->sin6_addr = in6addr_any;
		sl = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		a->sin_addr.s_addr = htonl(INADDR_ANY);
		sl = sizeof(*a);
	}
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
	    bind(fd, (struct sockaddr *)&ss, sl) != 0 || (!udp && listen(fd, SOMAXCONN) != 0)) {
		if (fd >= 0) {
			close(fd);
		}
		return -1;
	}
	return fd;
}

/* In the child: accepts and closes connections on every probed port in the namespace of
 * the host; writes one byte to its stdout (the ready pipe): 'R' once listening, 'E' when
 * it could not. */
static int listener_child(void *ctx)
{
	const struct listener_arg *a = ctx;
	const struct topo *t = a->t;
	struct pollfd fds[2 * (4 + 3)];
	bool is_udp[2 * (4 + 3)];
	size_t per = t->port_count + UDP_PORTS;
	size_t n = a->v6 ? 2 * per : per;
	if (enter_ns(a->h->ns) != 0) {
		(void)!write(STDOUT_FILENO, "E", 1);
		return 2;
	}
	for (size_t i = 0; i < n; i++) {
		size_t j = i % per;
		bool udp = j >= t->port_count;
		int fd = listen_socket(i < per ? AF_INET : AF_INET6, udp,
				       udp ? t->udp_ports[j - t->port_count] : t->ports[j]);
		if (fd < 0) {
			(void)!write(STDOUT_FILENO, "E", 1);
			return 3;
		}
		fds[i].fd = fd;
		fds[i].events = POLLIN;
		is_udp[i] = udp;
	}
	(void)!write(STDOUT_FILENO, "R", 1);
	close(STDOUT_FILENO);
	for (;;) {
		if (poll(fds, n, -1) < 0 && errno != EINTR) {
			return 4;
		}
		for (size_t i = 0; i < n; i++) {
			if ((fds[i].revents & POLLIN) && is_udp[i]) {
				/* udp: echo the datagram to its sender */
				char buf[64];
				struct sockaddr_storage from;
				socklen_t fl = sizeof(from);
				ssize_t got = recvfrom(fds[i].fd, buf, sizeof(buf), 0,
						       (struct sockaddr *)&from, &fl);
				if (got > 0) {
					(void)!sendto(fds[i].fd, buf, (size_t)got, 0,
						      (struct sockaddr *)&from, fl);
				}
			} else if (fds[i].revents & POLLIN) {
				int c = accept4(fds[i].fd, NULL, NULL, SOCK_CLOEXEC);
				if (c >= 0) {
					close(c);
				}
			}
		}
	}
}

/* A child in h's namespace that accepts and closes connections on every probed port
 * (listener_child); returns once it listens. */
static int start_listener(const struct topo *t, const struct host *h, bool v6, struct moat_err *err)
{
	struct listener_arg a = {.t = t, .h = h, .v6 = v6};
	struct moat_spawn sp = {.child_fn = listener_child,
				.child_ctx = &a,
				.out = MOAT_SPAWN_PIPE,
				.flags = CHILD_FLAGS};
	if (live.kid_count >= KIDS_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "net verify: too many listeners");
	}
	struct moat_spawn_child *c = &live.kids[live.kid_count];
	int rc = moat_spawn_start(&sp, c, err);
	if (rc != 0) {
		moat_err_prefix(err, "net verify");
		return rc;
	}
	live.kid_count++;
	char b = 0;
	ssize_t n;
	while ((n = read(c->out, &b, 1)) < 0 && errno == EINTR && !moat_net_interrupted) {
	}
	moat_spawn_close(c);
	if (moat_net_interrupted) {
		return check_interrupt(err);
	}
	if (n != 1 || b != 'R') {
		return moat_err_set(err, MOAT_EIO, "net verify: cannot listen in host %s",
				    h->label);
	}
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One probe's destination. */
struct target {
	bool v6;
	bool udp;
	uint16_t port;
	uint32_t dst;
	uint8_t dst6[16];
	bool own_src; /* bind to src/src6 below, not the host's zone address */
	bool link_local;
	uint32_t src;
	uint8_t src6[16];
};

/* sa gets h's address (to NULL) or the target's, in the target's family; returns its size. */
static socklen_t sockaddr_of(const struct host *h, const struct target *to,
			     struct sockaddr_storage *sa)
{
	memset(sa, 0, sizeof(*sa));
	if (to->v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)sa;
		a->sin6_family = AF_INET6;
		a->sin6_port = h ? 0 : htons(to->port);
		memcpy(a->sin6_addr.s6_addr, !h ? to->dst6 : to->own_src ? to->src6 : h->addr6, 16);
		return sizeof(*a);
	}
	struct sockaddr_in *a = (struct sockaddr_in *)sa;
	a->sin_family = AF_INET;
	a->sin_port = h ? 0 : htons(to->port);
	a->sin_addr.s_addr = htonl(!h ? to->dst : to->own_src ? to->src : h->addr);
	return sizeof(*a);
}

/* In the child: starts count connections (or datagrams) from h to each target at once and
 * waits for them until timeout_ms; out[i] gets the observation of each. */
static void connect_many(const struct host *h, const struct target *tg, size_t count,
			 int timeout_ms, uint8_t *out)
{
	struct pollfd *fds = calloc(count, sizeof(*fds));
	if (!fds) {
		memset(out, MOAT_NET_OBS_ERROR, count);
		return;
	}
	size_t pending = 0;
	for (size_t i = 0; i < count; i++) {
		fds[i].fd = -1;
		out[i] = MOAT_NET_OBS_ERROR;
		bool dgram = tg[i].udp;
		int fd = socket(tg[i].v6 ? AF_INET6 : AF_INET,
				(dgram ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC,
				0);
		struct sockaddr_storage me;
		struct sockaddr_storage to;
		socklen_t mel = sockaddr_of(h, &tg[i], &me);
		socklen_t tol = sockaddr_of(NULL, &tg[i], &to);
		if (tg[i].link_local) {
			/* both ends on the host's zone interface: eth0, or its VLAN */
			char hif[24] = "eth0";
			if (h->tag) {
				snprintf(hif, sizeof(hif), "eth0.%u", (unsigned)h->tag);
			}
			unsigned scope = if_nametoindex(hif);
			((struct sockaddr_in6 *)&me)->sin6_scope_id = scope;
			((struct sockaddr_in6 *)&to)->sin6_scope_id = scope;
		}
		if (fd < 0 || bind(fd, (struct sockaddr *)&me, mel) != 0) {
			if (fd >= 0) {
				close(fd);
			}
			continue;
		}
		if (dgram) {
			/* udp: a datagram out, the echo back is the answer */
			if (connect(fd, (struct sockaddr *)&to, tol) != 0 ||
			    send(fd, "moat", 4, 0) != 4) {
				close(fd);
				continue;
			}
			fds[i].fd = fd;
			fds[i].events = POLLIN;
			pending++;
			continue;
		}
		if (connect(fd, (struct sockaddr *)&to, tol) == 0) {
			out[i] = MOAT_NET_OBS_OPEN;
			close(fd);
			continue;
		}
		if (errno != EINPROGRESS) {
			out[i] = errno == ECONNREFUSED ? MOAT_NET_OBS_REFUSED : MOAT_NET_OBS_ERROR;
			close(fd);
			continue;
		}
		fds[i].fd = fd;
		fds[i].events = POLLOUT;
		pending++;
	}
	int64_t deadline = now_ms() + timeout_ms;
	int64_t resend = now_ms() + UDP_RESEND_MS;
	while (pending > 0) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			break;
		}
		if (now_ms() >= resend) {
			/* udp has no retransmission of its own: a datagram lost to neighbour
			 * discovery is sent again */
			for (size_t i = 0; i < count; i++) {
				if (fds[i].fd >= 0 && fds[i].events == POLLIN) {
					(void)send(fds[i].fd, "moat", 4, 0);
				}
			}
			resend = now_ms() + UDP_RESEND_MS;
		}
		int64_t wait = resend - now_ms() < left ? resend - now_ms() : left;
		if (poll(fds, count, (int)(wait > 0 ? wait : 0)) < 0 && errno != EINTR) {
			break;
		}
		for (size_t i = 0; i < count; i++) {
			if (fds[i].fd < 0 || fds[i].revents == 0) {
				continue;
			}
			int soerr = 0;
			socklen_t len = sizeof(soerr);
			if (fds[i].events == POLLIN) {
				char echo[8];
				soerr = recv(fds[i].fd, echo, sizeof(echo), 0) > 0 ? 0 : errno;
			} else if (getsockopt(fds[i].fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) {
				soerr = errno;
			}
			out[i] = soerr == 0		 ? MOAT_NET_OBS_OPEN
				 : soerr == ECONNREFUSED ? MOAT_NET_OBS_REFUSED
				 : soerr == ETIMEDOUT	 ? MOAT_NET_OBS_BLOCKED
							 : MOAT_NET_OBS_ERROR;
			close(fds[i].fd);
			fds[i].fd = -1;
			pending--;
		}
	}
	for (size_t i = 0; i < count; i++) {
		if (fds[i].fd >= 0) {
			out[i] = MOAT_NET_OBS_BLOCKED; /* no answer: the SYN was dropped */
			close(fds[i].fd);
		}
	}
	free(fds);
}

/* Forks a child in h's namespace that runs fn(h, arg, out) and sends out_len result bytes
 * back; *out_pid is the child (in live.kids, its stdout the read end of the result pipe). */
typedef void (*probe_fn)(const struct host *h, const void *arg, uint8_t *out, size_t out_len);

struct probe_arg {
	const struct host *h;
	probe_fn fn;
	const void *arg;
	size_t out_len;
};

static int probe_child(void *ctx)
{
	const struct probe_arg *a = ctx;
	static uint8_t res[MOAT_NET_PROBES_MAX];
	memset(res, MOAT_NET_OBS_ERROR, sizeof(res));
	if (enter_ns(a->h->ns) == 0) {
		a->fn(a->h, a->arg, res, a->out_len);
	}
	(void)!write(STDOUT_FILENO, res, a->out_len);
	return 0;
}

static int start_child(const struct host *h, probe_fn fn, const void *arg, size_t out_len,
		       pid_t *out_pid, struct moat_err *err)
{
	struct probe_arg a = {.h = h, .fn = fn, .arg = arg, .out_len = out_len};
	struct moat_spawn sp = {.child_fn = probe_child,
				.child_ctx = &a,
				.out = MOAT_SPAWN_PIPE,
				.flags = CHILD_FLAGS};
	*out_pid = 0;
	if (live.kid_count >= KIDS_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "net verify: too many probe processes");
	}
	int rc = moat_spawn_start(&sp, &live.kids[live.kid_count], err);
	if (rc != 0) {
		moat_err_prefix(err, "net verify");
		return rc;
	}
	*out_pid = live.kids[live.kid_count++].pid;
	return 0;
}

struct plain_arg {
	struct target tg[MOAT_NET_PROBES_MAX];
};

static void plain_fn(const struct host *h, const void *arg, uint8_t *out, size_t out_len)
{
	const struct plain_arg *a = arg;
	connect_many(h, a->tg, out_len, PROBE_TIMEOUT_MS, out);
}

struct flood_arg {
	uint32_t dst;
	uint16_t port;
	size_t count;
};

/* A burst well past the bucket, all at once: some connections must pass, the rest drop. */
static void flood_fn(const struct host *h, const void *arg, uint8_t *out, size_t out_len)
{
	const struct flood_arg *a = arg;
	static struct target tg[4 * FLOOD_BURST_MAX + 32];
	static uint8_t obs[4 * FLOOD_BURST_MAX + 32];
	size_t n = a->count;
	for (size_t i = 0; i < n; i++) {
		tg[i] = (struct target){.dst = a->dst, .port = a->port};
	}
	connect_many(h, tg, n, FLOOD_TIMEOUT_MS, obs);
	size_t open = 0;
	size_t blocked = 0;
	for (size_t i = 0; i < n; i++) {
		open += obs[i] == MOAT_NET_OBS_OPEN;
		blocked += obs[i] == MOAT_NET_OBS_BLOCKED;
	}
	if (out_len > 0) {
		out[0] = open + blocked != n ? MOAT_NET_OBS_ERROR
			 : open == n	     ? MOAT_NET_OBS_OPEN
			 : open == 0	     ? MOAT_NET_OBS_BLOCKED
					     : MOAT_NET_OBS_LIMITED;
	}
}

/* Reads the child's result bytes and reaps it. */
static int finish_child(pid_t pid, uint8_t *res, size_t len, struct moat_err *err)
{
	struct moat_spawn_child *c = NULL;
	size_t got = 0;
	for (size_t i = 0; i < live.kid_count; i++) {
		if (live.kids[i].pid == pid) {
			c = &live.kids[i];
			break;
		}
	}
	if (!c) {
		return moat_err_set(err, MOAT_EIO, "net verify: a probe process failed");
	}
	while (got < len) {
		ssize_t n = read(c->out, res + got, len - got);
		if (n < 0 && errno == EINTR && !moat_net_interrupted) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		got += (size_t)n;
	}
	moat_spawn_close(c);
	int status = 0;
	if (moat_spawn_wait(c, &status, NULL) != 0) {
		/* already gone: nothing left to reap */
	}
	*c = live.kids[--live.kid_count];
	int rc = check_interrupt(err);
	if (rc == 0 && got != len) {
		rc = moat_err_set(err, MOAT_EIO, "net verify: a probe process failed");
	}
	return rc;
}

static void add_probe_pkt(struct moat_net_verify_report *r, const struct moat_net_policy *p,
			  const struct host *from, const char *to, const struct moat_net_pkt *k)
{
	if (r->probe_count >= MOAT_NET_PROBES_MAX) {
		return;
	}
	struct moat_net_probe *pr = &r->probes[r->probe_count++];
	snprintf(pr->from, sizeof(pr->from), "%s", from->label);
	snprintf(pr->to, sizeof(pr->to), "%s", to);
	pr->src = k->src;
	pr->dst = k->dst;
	pr->v6 = k->v6;
	memcpy(pr->src6, k->src6, 16);
	memcpy(pr->dst6, k->dst6, 16);
	pr->port = k->dport;
	pr->udp = k->proto == MOAT_NET_PROTO_UDP;
	pr->to_gateway = k->to_gateway;
	pr->expect_open = !from->rogue && moat_net_expect_pkt(p, k);
	pr->observed = MOAT_NET_OBS_ERROR;
}

/* Probes of the gateway itself from h, at the gateway's address on h's side. */
static void add_gateway_probes(struct moat_net_verify_report *r, const struct moat_net_policy *p,
			       const struct topo *t, const struct host *h)
{
	const struct {
		enum moat_net_proto proto;
		uint16_t port;
	} svc[] = {{MOAT_NET_PROTO_TCP, t->other_port},
		   {MOAT_NET_PROTO_TCP, MOAT_NET_DNS_PORT},
		   {MOAT_NET_PROTO_UDP, MOAT_NET_DNS_PORT},
		   {MOAT_NET_PROTO_UDP, MOAT_NET_NTP_PORT},
		   {MOAT_NET_PROTO_UDP, MOAT_NET_DHCP_PORT}};
	for (int v6 = 0; v6 <= (int)h->has6; v6++) {
		for (size_t i = 0; i < sizeof(svc) / sizeof(svc[0]); i++) {
			struct moat_net_pkt k = {.src = h->addr,
						 .dst = h->gw,
						 .v6 = v6,
						 .proto = svc[i].proto,
						 .dport = svc[i].port,
						 .to_gateway = true};
			memcpy(k.src6, h->addr6, 16);
			memcpy(k.dst6, h->gw6, 16);
			add_probe_pkt(r, p, h, "gateway", &k);
		}
	}
}

static void add_probe(struct moat_net_verify_report *r, const struct moat_net_policy *p,
		      const struct host *from, const char *to, uint32_t dst, uint16_t port,
		      bool flood)
{
	if (r->probe_count >= MOAT_NET_PROBES_MAX) {
		return;
	}
	struct moat_net_probe *pr = &r->probes[r->probe_count++];
	snprintf(pr->from, sizeof(pr->from), "%s", from->label);
	snprintf(pr->to, sizeof(pr->to), "%s", to);
	pr->src = from->addr;
	pr->dst = dst;
	pr->port = port;
	pr->flood = flood;
	pr->expect_open = !from->rogue && moat_net_expect(p, from->addr, dst, port);
	pr->observed = MOAT_NET_OBS_ERROR;
}

/* The IPv6 twin of a TCP probe from h to dst6 (both ends have IPv6 addresses). */
static void add_probe6(struct moat_net_verify_report *r, const struct moat_net_policy *p,
		       const struct host *from, const char *to, const uint8_t dst6[16],
		       uint16_t port)
{
	struct moat_net_pkt k = {.v6 = true, .proto = MOAT_NET_PROTO_TCP, .dport = port};
	memcpy(k.src6, from->addr6, 16);
	memcpy(k.dst6, dst6, 16);
	add_probe_pkt(r, p, from, to, &k);
}

/* From one host of a zone to another of the same zone at the addresses of no zone they
 * gave themselves: link-local IPv6, IPv4 and IPv6 of no zone. The intent (hosts of a
 * device or isolated zone never reach each other) holds whatever the addresses, so these
 * are expected blocked without asking the model, which judges by address. */
static void add_peer_probes(struct moat_net_verify_report *r, const struct moat_net_policy *p,
			    const struct host *from, const struct host *to)
{
	for (int k = 0; k < 3 && r->probe_count < MOAT_NET_PROBES_MAX; k++) {
		struct moat_net_probe *pr = &r->probes[r->probe_count++];
		memset(pr, 0, sizeof(*pr));
		snprintf(pr->from, sizeof(pr->from), "%s", from->label);
		snprintf(pr->to, sizeof(pr->to), "%s", to->label);
		pr->port = p->broker_port;
		pr->peer = true;
		pr->v6 = k != 1;
		pr->link_local = k == 0;
		pr->src = from->stray4;
		pr->dst = to->stray4;
		memcpy(pr->src6, k == 0 ? from->ll6 : from->stray6, 16);
		memcpy(pr->dst6, k == 0 ? to->ll6 : to->stray6, 16);
		pr->expect_open = false;
		pr->observed = MOAT_NET_OBS_ERROR;
	}
}

static int make_probes(const struct moat_net_policy *p, const struct topo *t,
		       struct moat_net_verify_report *r, struct moat_err *err)
{
	for (size_t s = 0; s < t->host_count; s++) {
		const struct host *from = &t->hosts[s];
		for (size_t d = 0; d < t->host_count; d++) {
			const struct host *to = &t->hosts[d];
			if (d == s || to->addr == p->broker_addr || to->rogue) {
				continue;
			}
			/* The port devices may use somewhere: proves it is not open elsewhere. */
			add_probe(r, p, from, to->label, to->addr, p->broker_port, false);
			if (from->has6 && to->has6) {
				add_probe6(r, p, from, to->label, to->addr6, p->broker_port);
			}
		}
		const uint32_t svc[2] = {p->broker_addr, p->server_addr};
		const char *svc_label[2] = {"broker", "server"};
		for (size_t k = 0; k < 2; k++) {
			if ((k == 1 && p->server_addr == p->broker_addr) || svc[k] == from->addr ||
			    svc[k] == from->extra_addr) {
				continue;
			}
			for (size_t i = 0; i < t->port_count; i++) {
				add_probe(r, p, from, svc_label[k], svc[k], t->ports[i], false);
			}
			for (size_t i = 0; i < t->port_count && from->has6 && p->services6; i++) {
				add_probe6(r, p, from, svc_label[k],
					   k == 0 ? p->broker_addr6 : p->server_addr6, t->ports[i]);
			}
		}
		add_gateway_probes(r, p, t, from);
	}
	for (size_t s = 0; s < t->host_count; s++) {
		for (size_t d = 0; d < t->host_count; d++) {
			if (d != s && t->hosts[s].stray && t->hosts[d].stray &&
			    t->hosts[s].zone == t->hosts[d].zone) {
				add_peer_probes(r, p, &t->hosts[s], &t->hosts[d]);
			}
		}
	}
	if (p->conn_rate * 2 <= FLOOD_BURST_MAX) {
		for (size_t s = 0; s < t->host_count; s++) {
			const struct host *h = &t->hosts[s];
			if (h->zone >= 0 && p->zones[h->zone].kind == MOAT_NET_ZONE_DEVICE) {
				add_probe(r, p, h, "broker", p->broker_addr, p->broker_port, true);
				break;
			}
		}
	}
	if (r->probe_count >= MOAT_NET_PROBES_MAX) {
		return moat_err_set(err, MOAT_EINVAL,
				    "net verify: more than %d probes; too many "
				    "zones to verify in one run",
				    MOAT_NET_PROBES_MAX);
	}
	return 0;
}

/* Runs every plain probe whose expectation is want_open, all source hosts at once. Open
 * and blocked probes run apart so that blocked attempts cannot use up a device's
 * connection budget before its allowed connections. */
static int run_phase(const struct topo *t, struct moat_net_verify_report *r, bool want_open,
		     struct moat_err *err)
{
	static struct plain_arg args[NS_MAX];
	static size_t idx[NS_MAX][MOAT_NET_PROBES_MAX];
	size_t counts[NS_MAX] = {0};
	pid_t pids[NS_MAX];
	int rc = 0;
	for (size_t i = 0; i < r->probe_count; i++) {
		const struct moat_net_probe *pr = &r->probes[i];
		if (pr->flood || pr->expect_open != want_open) {
			continue;
		}
		for (size_t h = 0; h < t->host_count; h++) {
			if (strcmp(t->hosts[h].label, pr->from) == 0) {
				struct target *tg = &args[h].tg[counts[h]];
				*tg = (struct target){.v6 = pr->v6,
						      .udp = pr->udp,
						      .port = pr->port,
						      .dst = pr->dst,
						      .own_src = pr->peer,
						      .link_local = pr->link_local,
						      .src = pr->src};
				memcpy(tg->dst6, pr->dst6, 16);
				memcpy(tg->src6, pr->src6, 16);
				idx[h][counts[h]++] = i;
				break;
			}
		}
	}
	for (size_t h = 0; h < t->host_count; h++) {
		pids[h] = 0;
		if (counts[h] == 0 || rc != 0) {
			continue;
		}
		rc = start_child(&t->hosts[h], plain_fn, &args[h], counts[h], &pids[h], err);
	}
	for (size_t h = 0; h < t->host_count; h++) {
		if (pids[h] == 0) {
			continue;
		}
		uint8_t res[MOAT_NET_PROBES_MAX];
		int crc = finish_child(pids[h], res, counts[h], rc == 0 ? err : NULL);
		if (rc == 0) {
			rc = crc;
		}
		for (size_t k = 0; k < counts[h] && crc == 0; k++) {
			r->probes[idx[h][k]].observed = (enum moat_net_observed)res[k];
		}
	}
	return rc;
}

static int run_flood(const struct moat_net_policy *p, const struct topo *t,
		     struct moat_net_verify_report *r, struct moat_err *err)
{
	for (size_t i = 0; i < r->probe_count; i++) {
		struct moat_net_probe *pr = &r->probes[i];
		if (!pr->flood) {
			continue;
		}
		for (size_t h = 0; h < t->host_count; h++) {
			if (strcmp(t->hosts[h].label, pr->from) != 0) {
				continue;
			}
			/* Let the bucket refill from the earlier phases, then empty it at once. */
			struct timespec ts = {.tv_sec = 0, .tv_nsec = 0};
			unsigned wait_ms = 2 * 1000 * 2 / p->conn_rate;
			if (wait_ms > 3000) {
				wait_ms = 3000;
			}
			ts.tv_sec = wait_ms / 1000;
			ts.tv_nsec = (long)(wait_ms % 1000) * 1000000L;
			while (nanosleep(&ts, &ts) != 0 && errno == EINTR &&
			       !moat_net_interrupted) {
			}
			int rc = check_interrupt(err);
			if (rc != 0) {
				return rc;
			}
			struct flood_arg a = {.dst = pr->dst,
					      .port = pr->port,
					      .count = 2 * (size_t)p->conn_rate * 2 + 20};
			pid_t pid = 0;
			if ((rc = start_child(&t->hosts[h], flood_fn, &a, 1, &pid, err)) != 0) {
				return rc;
			}
			uint8_t res = MOAT_NET_OBS_ERROR;
			if ((rc = finish_child(pid, &res, 1, err)) != 0) {
				return rc;
			}
			pr->observed = (enum moat_net_observed)res;
			break;
		}
	}
	return 0;
}

static uint64_t read_counter(const struct topo *t, const char *family)
{
	char out[1024];
	struct moat_err ignored;
	const char *argv[] = {"ip",	 "netns", "exec",	  t->router, "nft", "list",
			      "counter", family,  MOAT_NET_TABLE, "drops",   NULL};
	if (net_run(argv, NULL, out, sizeof(out), &ignored) != 0) {
		return 0;
	}
	const char *s = strstr(out, "packets ");
	if (!s) {
		return 0;
	}
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(s + 8, &end, 10);
	return errno == 0 && end != s + 8 ? (uint64_t)v : 0;
}

/* Whether this kernel makes 802.1Q devices, tried on a veth pair in a namespace of its own. */
static int probe_vlan(bool *out, struct moat_err *err)
{
	char ns[NS_NAME_LEN];
	snprintf(ns, sizeof(ns), "moat-%d-p", (int)getpid());
	*out = false;
	int rc = ns_add(ns, err);
	if (rc != 0) {
		return rc;
	}
	const char *veth[] = {"link", "add", "t0", "type", "veth", "peer", "name", "t1", NULL};
	const char *vlan[] = {"link", "add",  "link", "t0", "name", "t0.2",
			      "type", "vlan", "id",   "2",  NULL};
	struct moat_err ignored;
	if ((rc = ipcmd(ns, veth, err)) == 0) {
		*out = ipcmd(ns, vlan, &ignored) == 0;
	}
	const char *del[] = {"ip", "netns", "delete", ns, NULL};
	if (net_run(del, NULL, NULL, 0, &ignored) == 0) {
		live.ns_count--; /* it was the last one added */
	}
	return rc;
}

/* Root, ip(8), nft(8) and network namespaces: without them there is nothing to prove. */
static int check_capabilities(struct moat_err *err)
{
	if (geteuid() != 0) {
		return moat_err_set(err, MOAT_ESTATE,
				    "net verify: needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to "
				    "create network namespaces");
	}
	const char *ipv[] = {"ip", "-V", NULL};
	const char *nftv[] = {"nft", "--version", NULL};
	int rc = net_run(ipv, NULL, NULL, 0, err);
	if (rc == 0) {
		rc = net_run(nftv, NULL, NULL, 0, err);
	}
	if (rc != 0) {
		if (err) {
			err->code = MOAT_ESTATE;
		}
		moat_err_prefix(err, "net verify: missing a tool");
		return MOAT_ESTATE;
	}
	return 0;
}

/* The policy as verify loads it: its bridge_ports are the ports of this topology (the
 * gateway's own names mean nothing here), every non-management zone's host ports. */
static bool use_topology_ports(struct moat_net_policy *vp, const struct topo *t)
{
	vp->port_count = 0;
	for (size_t i = 0; i < t->host_count; i++) {
		if (t->hosts[i].port[0] && vp->port_count == MOAT_NET_PORTS_MAX) {
			return false;
		}
		if (t->hosts[i].port[0]) {
			struct moat_net_port *port = &vp->ports[vp->port_count++];
			snprintf(port->name, sizeof(port->name), "%s", t->hosts[i].port);
			port->zone = (size_t)t->hosts[i].zone;
		}
	}
	return true;
}

int moat_net_verify(const struct moat_net_policy *policy, struct moat_net_verify_report *report,
		    struct moat_err *err)
{
	static struct topo t;
	static struct moat_net_policy vp;
	const struct moat_net_policy *p = &vp;
	vp = *policy;
	memset(&t, 0, sizeof(t));
	memset(report, 0, sizeof(*report));
	int rc = check_capabilities(err);
	if (rc != 0) {
		return rc;
	}
	if (!live.atexit_set) {
		if (atexit(teardown_at_exit) != 0) {
			return moat_err_set(err, MOAT_EIO, "net verify: atexit failed");
		}
		live.atexit_set = true;
	}
	remove_stale();
	rc = probe_vlan(&t.vlan_ok, err);
	if (rc == MOAT_EIO && live.ns_count == 0) {
		/* The very first `ip netns add` failed: this machine cannot do namespaces. */
		if (err) {
			err->code = MOAT_ESTATE;
		}
		rc = MOAT_ESTATE;
	}
	report->tagged = t.vlan_ok;
	if (rc != 0 || (rc = plan_topology(p, &t, err)) != 0 ||
	    (rc = make_probes(p, &t, report, err)) != 0) {
		goto out;
	}
	if (!use_topology_ports(&vp, &t)) {
		rc = moat_err_set(err, MOAT_EINVAL, "net verify: too many zones to probe");
		goto out;
	}
	rc = build_topology(p, &t, err);
	if (rc == MOAT_EIO && live.ns_count == 0) {
		/* The very first `ip netns add` failed: this machine cannot do namespaces. */
		if (err) {
			err->code = MOAT_ESTATE;
		}
		rc = MOAT_ESTATE;
	}
	if (rc != 0 || (rc = load_ruleset(p, &t, err)) != 0) {
		goto out;
	}
	for (size_t h = 0; h < t.host_count; h++) {
		/* IPv6 always: link-local needs no zone prefix */
		if ((rc = start_listener(&t, &t.hosts[h], true, err)) != 0) {
			goto out;
		}
	}
	/* The gateway's own services: the same listeners in the router. */
	static struct host gw;
	memset(&gw, 0, sizeof(gw));
	snprintf(gw.label, sizeof(gw.label), "gateway");
	snprintf(gw.ns, sizeof(gw.ns), "%s", t.router);
	if ((rc = start_listener(&t, &gw, p->has_v6, err)) != 0) {
		goto out;
	}
	if ((rc = run_phase(&t, report, true, err)) != 0 ||
	    (rc = run_phase(&t, report, false, err)) != 0 ||
	    (rc = run_flood(p, &t, report, err)) != 0) {
		goto out;
	}
	report->logged_drops = read_counter(&t, "inet") + read_counter(&t, "bridge");
	for (size_t i = 0; i < report->probe_count; i++) {
		struct moat_net_probe *pr = &report->probes[i];
		if (pr->flood) {
			pr->ok = pr->observed == MOAT_NET_OBS_LIMITED;
		} else {
			pr->ok = pr->observed ==
				 (pr->expect_open ? MOAT_NET_OBS_OPEN : MOAT_NET_OBS_BLOCKED);
		}
		report->mismatches += !pr->ok;
	}
out:
	teardown();
	if (rc == 0) {
		rc = check_interrupt(err);
	}
	return rc;
}
