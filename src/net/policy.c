/* policy.c: the pure layer of network segmentation. Reads [network] (and the broker and
 * server ports) of moat.conf into a struct moat_net_policy, builds its ordered rule list, and
 * evaluates it (moat_net_decide) next to an independent statement of the intent
 * (moat_net_expect), so tests can show that the rules say what the design says.
 * No I/O, no clocks, no globals: this file is fuzzed through tests/fuzz/fuzz_netconf.c. */
#include "moat/net.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/* Keys of [network] that are not zone names; a zone may not take one of these names. */
static const char *const fixed_keys[] = {
	"extra_zones", "device_zones", "broker_address", "server_address", "conn_rate", "log_rate",
	"vlans",       "trunk",	       "bridge_ports",	 "gateway_input",  "dns",	"ntp",
	"dhcp",	       NULL,
};
static const char *const std_zones[] = {"iot", "management", "guest"};
static const char *const std_defaults[] = {MOAT_NET_DEFAULT_IOT, MOAT_NET_DEFAULT_MANAGEMENT,
					   MOAT_NET_DEFAULT_GUEST};
enum { ZONE_IOT = 0, ZONE_MGMT = 1, ZONE_GUEST = 2 };

static uint32_t prefix_mask(unsigned prefix)
{
	return prefix == 0 ? 0 : (uint32_t)0xffffffffu << (32 - prefix);
}

/* One decimal octet at *pp: 0..255, no leading zero, no sign. */
static bool parse_octet(const char **pp, uint32_t *out)
{
	const char *p = *pp;
	if (*p < '0' || *p > '9') {
		return false;
	}
	if (*p == '0' && p[1] >= '0' && p[1] <= '9') {
		return false;
	}
	uint32_t v = 0;
	int digits = 0;
	while (*p >= '0' && *p <= '9') {
		if (++digits > 3) {
			return false;
		}
		v = v * 10 + (uint32_t)(*p - '0');
		p++;
	}
	if (v > 255) {
		return false;
	}
	*out = v;
	*pp = p;
	return true;
}

/* Parses an address that ends at end (exclusive); returns false on anything else. */
static bool parse_addr_span(const char *text, const char *end, uint32_t *out)
{
	const char *p = text;
	uint32_t addr = 0;
	for (int i = 0; i < 4; i++) {
		uint32_t octet = 0;
		if (p >= end || !parse_octet(&p, &octet) || p > end) {
			return false;
		}
		addr = (addr << 8) | octet;
		if (i < 3) {
			if (p >= end || *p != '.') {
				return false;
			}
			p++;
		}
	}
	if (p != end) {
		return false;
	}
	*out = addr;
	return true;
}

int moat_net_parse_addr(const char *text, uint32_t *out_addr, struct moat_err *err)
{
	uint32_t addr = 0;
	if (!parse_addr_span(text, text + strlen(text), &addr)) {
		return moat_err_set(err, MOAT_EINVAL, "'%.64s': not an IPv4 address (a.b.c.d)",
				    text);
	}
	*out_addr = addr;
	return 0;
}

int moat_net_parse_subnet(const char *text, struct moat_net_subnet *out, struct moat_err *err)
{
	const char *slash = strchr(text, '/');
	uint32_t addr = 0;
	if (!slash || !parse_addr_span(text, slash, &addr)) {
		return moat_err_set(err, MOAT_EINVAL, "'%.64s': not an IPv4 subnet (a.b.c.d/len)",
				    text);
	}
	const char *p = slash + 1;
	unsigned len = 0;
	int digits = 0;
	while (*p >= '0' && *p <= '9' && digits < 3) {
		len = len * 10 + (unsigned)(*p - '0');
		p++;
		digits++;
	}
	if (digits == 0 || *p != '\0' || (digits > 1 && slash[1] == '0')) {
		return moat_err_set(err, MOAT_EINVAL, "'%.64s': not an IPv4 subnet (a.b.c.d/len)",
				    text);
	}
	if (len < MOAT_NET_PREFIX_MIN || len > MOAT_NET_PREFIX_MAX) {
		return moat_err_set(err, MOAT_EINVAL,
				    "'%.64s': prefix length must be between /%d and /%d", text,
				    MOAT_NET_PREFIX_MIN, MOAT_NET_PREFIX_MAX);
	}
	uint32_t net = addr & prefix_mask(len);
	if (net != addr) {
		char buf[16];
		moat_net_addr_format(net, buf, sizeof(buf));
		return moat_err_set(err, MOAT_EINVAL,
				    "'%.64s': host bits set (the network is %s/%u)", text, buf,
				    len);
	}
	out->addr = net;
	out->prefix = len;
	return 0;
}

bool moat_net_subnet_contains(const struct moat_net_subnet *s, uint32_t addr)
{
	return (addr & prefix_mask(s->prefix)) == s->addr;
}

bool moat_net_subnets_overlap(const struct moat_net_subnet *a, const struct moat_net_subnet *b)
{
	uint32_t mask = prefix_mask(a->prefix < b->prefix ? a->prefix : b->prefix);
	return (a->addr & mask) == (b->addr & mask);
}

void moat_net_addr_format(uint32_t addr, char *buf, size_t size)
{
	snprintf(buf, size, "%u.%u.%u.%u", (unsigned)(addr >> 24), (unsigned)((addr >> 16) & 255),
		 (unsigned)((addr >> 8) & 255), (unsigned)(addr & 255));
}

/* Whether the first bits of a and b agree. */
static bool bits_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	size_t whole = bits / 8;
	if (memcmp(a, b, whole) != 0) {
		return false;
	}
	unsigned rest = bits % 8;
	uint8_t mask = (uint8_t)(0xffu << (8 - rest));
	return rest == 0 || ((a[whole] ^ b[whole]) & mask) == 0;
}

int moat_net_parse_prefix6(const char *text, struct moat_net_prefix6 *out, struct moat_err *err)
{
	const char *slash = strchr(text, '/');
	char a[48];
	size_t alen = slash ? (size_t)(slash - text) : 0;
	struct in6_addr in6;
	if (!slash || alen == 0 || alen >= sizeof(a) || strchr(text, '%')) {
		return moat_err_set(err, MOAT_EINVAL, "'%.64s': not an IPv6 prefix (x:x::/len)",
				    text);
	}
	memcpy(a, text, alen);
	a[alen] = '\0';
	const char *p = slash + 1;
	unsigned len = 0;
	int digits = 0;
	while (*p >= '0' && *p <= '9' && digits < 4) {
		len = len * 10 + (unsigned)(*p - '0');
		p++;
		digits++;
	}
	if (inet_pton(AF_INET6, a, &in6) != 1 || strchr(a, '.') || digits == 0 || *p != '\0' ||
	    (digits > 1 && slash[1] == '0')) {
		return moat_err_set(err, MOAT_EINVAL, "'%.64s': not an IPv6 prefix (x:x::/len)",
				    text);
	}
	if (len < MOAT_NET_PREFIX6_MIN || len > MOAT_NET_PREFIX6_MAX) {
		return moat_err_set(err, MOAT_EINVAL,
				    "'%.64s': IPv6 prefix length must be between /%d and /%d", text,
				    MOAT_NET_PREFIX6_MIN, MOAT_NET_PREFIX6_MAX);
	}
	uint8_t net[16] = {0};
	memcpy(net, in6.s6_addr, len / 8);
	if (len % 8) {
		net[len / 8] = (uint8_t)(in6.s6_addr[len / 8] & (0xffu << (8 - len % 8)));
	}
	if (memcmp(net, in6.s6_addr, 16) != 0) {
		char buf[48];
		moat_net_addr6_format(net, buf, sizeof(buf));
		return moat_err_set(err, MOAT_EINVAL,
				    "'%.64s': host bits set (the network is %s/%u)", text, buf,
				    len);
	}
	/* Link-local, multicast and the like are no zone's network. */
	if (net[0] == 0xff || (net[0] == 0xfe && (net[1] & 0xc0) == 0x80) ||
	    bits_equal(net, (const uint8_t[16]){0}, 16)) {
		return moat_err_set(err, MOAT_EINVAL,
				    "'%.64s': not a unicast network (use a ULA fd00::/8 or a "
				    "global prefix)",
				    text);
	}
	memcpy(out->addr, net, 16);
	out->prefix = len;
	return 0;
}

bool moat_net_prefix6_contains(const struct moat_net_prefix6 *s, const uint8_t addr[16])
{
	return bits_equal(s->addr, addr, s->prefix);
}

bool moat_net_prefixes6_overlap(const struct moat_net_prefix6 *a, const struct moat_net_prefix6 *b)
{
	return bits_equal(a->addr, b->addr, a->prefix < b->prefix ? a->prefix : b->prefix);
}

void moat_net_addr6_format(const uint8_t addr[16], char *buf, size_t size)
{
	char tmp[INET6_ADDRSTRLEN];
	if (!inet_ntop(AF_INET6, addr, tmp, sizeof(tmp))) {
		tmp[0] = '\0';
	}
	snprintf(buf, size, "%s", tmp);
}

int moat_net_zone_of6(const struct moat_net_policy *p, const uint8_t addr[16])
{
	for (size_t z = 0; z < p->zone_count; z++) {
		for (size_t s = 0; s < p->zones[z].prefix6_count; s++) {
			if (moat_net_prefix6_contains(&p->zones[z].prefixes6[s], addr)) {
				return (int)z;
			}
		}
	}
	return -1;
}

bool moat_net_addr6_for(const struct moat_net_policy *p, uint32_t v4, uint8_t out[16])
{
	int z = moat_net_zone_of(p, v4);
	if (z < 0 || p->zones[z].prefix6_count == 0) {
		return false;
	}
	const struct moat_net_zone *zn = &p->zones[z];
	uint32_t host = 0;
	for (size_t s = 0; s < zn->subnet_count; s++) {
		if (moat_net_subnet_contains(&zn->subnets[s], v4)) {
			host = v4 & ~prefix_mask(zn->subnets[s].prefix);
		}
	}
	memcpy(out, zn->prefixes6[0].addr, 16);
	out[12] = (uint8_t)(host >> 24);
	out[13] = (uint8_t)(host >> 16);
	out[14] = (uint8_t)(host >> 8);
	out[15] = (uint8_t)host;
	return true;
}

int moat_net_zone_of(const struct moat_net_policy *p, uint32_t addr)
{
	for (size_t z = 0; z < p->zone_count; z++) {
		for (size_t s = 0; s < p->zones[z].subnet_count; s++) {
			if (moat_net_subnet_contains(&p->zones[z].subnets[s], addr)) {
				return (int)z;
			}
		}
	}
	return -1;
}

int moat_net_zone_of_text(const struct moat_net_policy *p, const char *text)
{
	struct in_addr v4;
	struct in6_addr v6;
	if (inet_pton(AF_INET, text, &v4) == 1) {
		return moat_net_zone_of(p, ntohl(v4.s_addr));
	}
	if (inet_pton(AF_INET6, text, &v6) != 1) {
		return MOAT_NET_NOT_AN_ADDRESS;
	}
	if (IN6_IS_ADDR_V4MAPPED(&v6)) {
		uint32_t a;
		memcpy(&a, &v6.s6_addr[12], 4);
		return moat_net_zone_of(p, ntohl(a));
	}
	return moat_net_zone_of6(p, v6.s6_addr);
}

/* "moat.conf:12: [network] iot" for a key that is present, "moat.conf: [network] iot
 * (default)" for one that is not: every message says where the value came from. */
static void where(const struct moat_config *cfg, const char *section, const char *key, char *buf,
		  size_t size)
{
	const struct moat_config_entry *e = moat_config_find(cfg, section, key);
	if (e) {
		snprintf(buf, size, "%s:%d: [%s] %s", cfg->path, e->line, section, key);
	} else {
		snprintf(buf, size, "%s: [%s] %s (default)", cfg->path, section, key);
	}
}

static bool valid_zone_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MOAT_NET_ZONE_NAME_MAX_LEN || s[0] < 'a' || s[0] > 'z') {
		return false;
	}
	for (size_t i = 1; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
			return false;
		}
	}
	return true;
}

static int find_zone(const struct moat_net_policy *p, const char *name)
{
	for (size_t z = 0; z < p->zone_count; z++) {
		if (strcmp(p->zones[z].name, name) == 0) {
			return (int)z;
		}
	}
	return -1;
}

/* Splits the [network] list v (loc says where it came from) and calls each on its items in
 * order, stopping at the first failure. each gets ctx, the item, its index, the number of
 * items (for limits checked before the first item is taken) and loc for its messages. */
static int foreach_item(const char *v, const char *loc,
			int (*each)(void *ctx, const char *item, size_t i, size_t n,
				    const char *loc, struct moat_err *err),
			void *ctx, struct moat_err *err)
{
	char **items = NULL;
	size_t n = 0;
	int rc = moat_config_split_list(v, &items, &n, err);
	if (rc != 0) {
		moat_err_prefix(err, "%s", loc);
		return rc;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = each(ctx, items[i], i, n, loc, err);
	}
	moat_config_list_free(items, n);
	return rc;
}

/* One name of extra_zones: a new isolated zone. */
static int add_extra_zone(void *ctx, const char *name, size_t i, size_t n, const char *loc,
			  struct moat_err *err)
{
	struct moat_net_policy *p = ctx;
	(void)i;
	(void)n;
	bool reserved = false;
	for (size_t k = 0; fixed_keys[k]; k++) {
		reserved = reserved || strcmp(name, fixed_keys[k]) == 0;
	}
	if (!valid_zone_name(name)) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: '%.64s' is not a zone name ([a-z][a-z0-9_], at most "
				    "%d characters)",
				    loc, name, MOAT_NET_ZONE_NAME_MAX_LEN);
	}
	if (reserved || find_zone(p, name) >= 0) {
		return moat_err_set(err, MOAT_EINVAL, "%s: zone '%s' is %s", loc, name,
				    reserved ? "a reserved key name" : "listed twice or standard");
	}
	if (p->zone_count >= MOAT_NET_ZONES_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "%s: more than %d zones", loc,
				    MOAT_NET_ZONES_MAX);
	}
	struct moat_net_zone *z = &p->zones[p->zone_count++];
	snprintf(z->name, sizeof(z->name), "%s", name);
	z->kind = MOAT_NET_ZONE_ISOLATED;
	return 0;
}

static int read_extra_zones(const struct moat_config *cfg, struct moat_net_policy *p,
			    struct moat_err *err)
{
	char loc[160];
	const char *v = moat_config_get(cfg, "network", "extra_zones");
	if (!v) {
		return 0;
	}
	where(cfg, "network", "extra_zones", loc, sizeof(loc));
	return foreach_item(v, loc, add_extra_zone, p, err);
}

/* Every key of [network] is a fixed key or a zone: anything else is a typo that would
 * otherwise silently leave a network unprotected. */
static int check_keys(const struct moat_config *cfg, const struct moat_net_policy *p,
		      struct moat_err *err)
{
	for (size_t i = 0; i < cfg->count; i++) {
		const struct moat_config_entry *e = &cfg->entries[i];
		if (strcmp(e->section, "network") != 0) {
			continue;
		}
		bool known = find_zone(p, e->key) >= 0;
		for (size_t k = 0; fixed_keys[k] && !known; k++) {
			known = strcmp(e->key, fixed_keys[k]) == 0;
		}
		if (!known) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s:%d: unknown key '%.64s' in [network] (a zone other "
					    "than iot, management and guest must be listed in "
					    "extra_zones)",
					    cfg->path, e->line, e->key);
		}
	}
	return 0;
}

/* One subnet of a zone's list. */
static int add_subnet(void *ctx, const char *item, size_t i, size_t n, const char *loc,
		      struct moat_err *err)
{
	struct moat_net_zone *z = ctx;
	(void)i;
	if (n > MOAT_NET_SUBNETS_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "%s: more than %d subnets", loc,
				    MOAT_NET_SUBNETS_MAX);
	}
	int rc;
	if (strchr(item, ':')) {
		rc = moat_net_parse_prefix6(item, &z->prefixes6[z->prefix6_count], err);
		z->prefix6_count += rc == 0;
	} else {
		rc = moat_net_parse_subnet(item, &z->subnets[z->subnet_count], err);
		z->subnet_count += rc == 0;
	}
	if (rc != 0) {
		moat_err_prefix(err, "%s", loc);
	}
	return rc;
}

static int read_zone_subnets(const struct moat_config *cfg, struct moat_net_policy *p, size_t zi,
			     struct moat_err *err)
{
	struct moat_net_zone *z = &p->zones[zi];
	char loc[160];
	where(cfg, "network", z->name, loc, sizeof(loc));
	const char *v = moat_config_get(cfg, "network", z->name);
	if (!v) {
		if (zi >= 3) {
			char eloc[160];
			where(cfg, "network", "extra_zones", eloc, sizeof(eloc));
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: zone '%s' has no subnets (add %s = a.b.c.d/len)",
					    eloc, z->name, z->name);
		}
		v = std_defaults[zi];
	}
	if (strcmp(v, "none") == 0) {
		if (zi == ZONE_MGMT) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: the management zone needs a subnet", loc);
		}
		return 0;
	}
	int rc = foreach_item(v, loc, add_subnet, z, err);
	if (rc == 0 && z->prefix6_count > 0 && z->subnet_count == 0) {
		/* IPv6 addresses are derived from the IPv4 ones (moat_net_addr6_for). */
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: an IPv6 prefix needs an IPv4 subnet in the same zone",
				    loc);
	}
	p->has_v6 = p->has_v6 || z->prefix6_count > 0;
	return rc;
}

/* The IPv6 prefixes: no two overlap, within a zone or across zones. */
static int check_overlaps6(const struct moat_config *cfg, const struct moat_net_policy *p,
			   struct moat_err *err)
{
	for (size_t za = 0; za < p->zone_count; za++) {
		const struct moat_net_zone *a = &p->zones[za];
		for (size_t sa = 0; sa < a->prefix6_count; sa++) {
			for (size_t zb = 0; zb <= za; zb++) {
				const struct moat_net_zone *b = &p->zones[zb];
				size_t limit = zb == za ? sa : b->prefix6_count;
				for (size_t sb = 0; sb < limit; sb++) {
					if (!moat_net_prefixes6_overlap(&a->prefixes6[sa],
									&b->prefixes6[sb])) {
						continue;
					}
					char loc[160];
					char xa[48];
					char ya[48];
					where(cfg, "network", a->name, loc, sizeof(loc));
					moat_net_addr6_format(a->prefixes6[sa].addr, xa,
							      sizeof(xa));
					moat_net_addr6_format(b->prefixes6[sb].addr, ya,
							      sizeof(ya));
					return moat_err_set(err, MOAT_EINVAL,
							    "%s: prefix %s/%u overlaps %s/%u of "
							    "zone %s",
							    loc, xa, a->prefixes6[sa].prefix, ya,
							    b->prefixes6[sb].prefix, b->name);
				}
			}
		}
	}
	return 0;
}

/* Overlapping subnets would put one host in two zones; the first zone would win silently. */
static int check_overlaps(const struct moat_config *cfg, const struct moat_net_policy *p,
			  struct moat_err *err)
{
	for (size_t za = 0; za < p->zone_count; za++) {
		const struct moat_net_zone *a = &p->zones[za];
		for (size_t sa = 0; sa < a->subnet_count; sa++) {
			for (size_t zb = 0; zb <= za; zb++) {
				const struct moat_net_zone *b = &p->zones[zb];
				size_t limit = zb == za ? sa : b->subnet_count;
				for (size_t sb = 0; sb < limit; sb++) {
					if (!moat_net_subnets_overlap(&a->subnets[sa],
								      &b->subnets[sb])) {
						continue;
					}
					/* Blame the value the operator wrote, not a default. */
					const struct moat_net_zone *x = a;
					const struct moat_net_subnet *xs = &a->subnets[sa];
					const struct moat_net_zone *y = b;
					const struct moat_net_subnet *ys = &b->subnets[sb];
					if (!moat_config_find(cfg, "network", a->name) &&
					    moat_config_find(cfg, "network", b->name)) {
						x = b;
						xs = &b->subnets[sb];
						y = a;
						ys = &a->subnets[sa];
					}
					char loc[160];
					char xa[16];
					char ya[16];
					where(cfg, "network", x->name, loc, sizeof(loc));
					moat_net_addr_format(xs->addr, xa, sizeof(xa));
					moat_net_addr_format(ys->addr, ya, sizeof(ya));
					return moat_err_set(err, MOAT_EINVAL,
							    "%s: subnet %s/%u overlaps %s/%u of "
							    "zone %s",
							    loc, xa, xs->prefix, ya, ys->prefix,
							    y->name);
				}
			}
		}
	}
	return 0;
}

/* One name of device_zones: that zone holds devices. */
static int mark_device_zone(void *ctx, const char *name, size_t i, size_t n, const char *loc,
			    struct moat_err *err)
{
	struct moat_net_policy *p = ctx;
	(void)i;
	(void)n;
	int z = find_zone(p, name);
	if (z < 0) {
		return moat_err_set(err, MOAT_EINVAL, "%s: unknown zone '%.64s'", loc, name);
	}
	if (z == ZONE_MGMT) {
		return moat_err_set(err, MOAT_EINVAL, "%s: the management zone cannot hold devices",
				    loc);
	}
	p->zones[z].kind = MOAT_NET_ZONE_DEVICE;
	return 0;
}

static int read_device_zones(const struct moat_config *cfg, struct moat_net_policy *p,
			     struct moat_err *err)
{
	char loc[160];
	where(cfg, "network", "device_zones", loc, sizeof(loc));
	const char *v = moat_config_get(cfg, "network", "device_zones");
	return foreach_item(v ? v : "iot", loc, mark_device_zone, p, err);
}

/* A service address must be a usable host of the management zone. */
static int read_service_addr(const struct moat_config *cfg, const struct moat_net_policy *p,
			     const char *key, const char *def, uint32_t *out, struct moat_err *err)
{
	char loc[160];
	where(cfg, "network", key, loc, sizeof(loc));
	const char *v = moat_config_get(cfg, "network", key);
	int rc = moat_net_parse_addr(v ? v : def, out, err);
	if (rc != 0) {
		moat_err_prefix(err, "%s", loc);
		return rc;
	}
	const struct moat_net_zone *m = &p->zones[ZONE_MGMT];
	for (size_t s = 0; s < m->subnet_count; s++) {
		const struct moat_net_subnet *sn = &m->subnets[s];
		if (!moat_net_subnet_contains(sn, *out)) {
			continue;
		}
		uint32_t bcast = sn->addr | ~prefix_mask(sn->prefix);
		if (*out == sn->addr || *out == bcast) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: %s is the %s address of its subnet", loc,
					    v ? v : def,
					    *out == sn->addr ? "network" : "broadcast");
		}
		return 0;
	}
	return moat_err_set(err, MOAT_EINVAL, "%s: %.64s is not inside the management zone", loc,
			    v ? v : def);
}

/* The update server defaults to the broker's address: moatd runs beside the broker and the
 * agents' update URL names the broker's host (moat_agent_conf_for), so a separate default
 * would firewall OTA off on the documented day-one layout. */
static int read_server_addr(const struct moat_config *cfg, struct moat_net_policy *p,
			    struct moat_err *err)
{
	char def[16];
	moat_net_addr_format(p->broker_addr, def, sizeof(def));
	return read_service_addr(cfg, p, "server_address", def, &p->server_addr, err);
}

int moat_net_parse_ifname(const char *text, struct moat_err *err)
{
	size_t n = strlen(text);
	bool ok = n > 0 && n <= MOAT_NET_IFNAME_MAX_LEN && strcmp(text, ".") != 0 &&
		  strcmp(text, "..") != 0;
	for (size_t i = 0; i < n && ok; i++) {
		char c = text[i];
		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		     c == '_' || c == '.' || c == '-';
	}
	if (!ok) {
		return moat_err_set(err, MOAT_EINVAL,
				    "'%.64s': not an interface name (1 to %d of A-Z a-z 0-9 _ . -)",
				    text, MOAT_NET_IFNAME_MAX_LEN);
	}
	return 0;
}

struct vlan_ctx {
	struct moat_net_policy *p;
	const char *trunk;
};

/* One "zone:id[@parent]" item of vlans. */
static int add_vlan(void *ctx, const char *item, size_t i, size_t n, const char *loc,
		    struct moat_err *err)
{
	struct vlan_ctx *c = ctx;
	struct moat_net_policy *p = c->p;
	(void)i;
	(void)n;
	char name[MOAT_NET_ZONE_NAME_MAX_LEN + 1];
	const char *colon = strchr(item, ':');
	size_t name_len = colon ? (size_t)(colon - item) : 0;
	if (!colon || name_len == 0 || name_len >= sizeof(name)) {
		return moat_err_set(err, MOAT_EINVAL, "%s: '%.64s': expected zone:id[@parent]", loc,
				    item);
	}
	memcpy(name, item, name_len);
	name[name_len] = '\0';
	int z = find_zone(p, name);
	if (z < 0) {
		return moat_err_set(err, MOAT_EINVAL, "%s: unknown zone '%s'", loc, name);
	}
	const char *d = colon + 1;
	unsigned id = 0;
	int digits = 0;
	while (*d >= '0' && *d <= '9' && digits < 5) {
		id = id * 10 + (unsigned)(*d - '0');
		d++;
		digits++;
	}
	if (digits == 0 || colon[1] == '0' || (*d != '\0' && *d != '@') || id < 1 ||
	    id > MOAT_NET_VLAN_ID_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "%s: '%.64s': VLAN id must be 1 to %d", loc,
				    item, MOAT_NET_VLAN_ID_MAX);
	}
	const char *parent = *d == '@' ? d + 1 : c->trunk;
	int rc = moat_net_parse_ifname(parent, err);
	if (rc != 0) {
		moat_err_prefix(err, "%s", loc);
		return rc;
	}
	/* The sub-interface is named "parent.id", which must fit an interface name too. */
	if (strlen(parent) + 1 + (size_t)digits > MOAT_NET_IFNAME_MAX_LEN) {
		return moat_err_set(err, MOAT_EINVAL, "%s: '%s.%u' is longer than %d characters",
				    loc, parent, id, MOAT_NET_IFNAME_MAX_LEN);
	}
	if (p->zones[z].vlan) {
		return moat_err_set(err, MOAT_EINVAL, "%s: zone '%s' listed twice", loc, name);
	}
	for (size_t k = 0; k < p->zone_count; k++) {
		if (p->zones[k].vlan == id && strcmp(p->zones[k].parent, parent) == 0) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: VLAN %u on %s is already zone %s's", loc, id,
					    parent, p->zones[k].name);
		}
	}
	p->zones[z].vlan = (uint16_t)id;
	snprintf(p->zones[z].parent, sizeof(p->zones[z].parent), "%s", parent);
	return 0;
}

static int read_vlans(const struct moat_config *cfg, struct moat_net_policy *p,
		      struct moat_err *err)
{
	char loc[160];
	struct vlan_ctx c = {.p = p, .trunk = moat_config_get(cfg, "network", "trunk")};
	if (!c.trunk) {
		c.trunk = MOAT_NET_DEFAULT_TRUNK;
	} else if (moat_net_parse_ifname(c.trunk, err) != 0) {
		where(cfg, "network", "trunk", loc, sizeof(loc));
		moat_err_prefix(err, "%s", loc);
		return MOAT_EINVAL;
	}
	where(cfg, "network", "vlans", loc, sizeof(loc));
	const char *v = moat_config_get(cfg, "network", "vlans");
	if (v && strcmp(v, "none") == 0) {
		return 0;
	}
	return foreach_item(v ? v : MOAT_NET_DEFAULT_VLANS, loc, add_vlan, &c, err);
}

/* One "zone:ifname" item of bridge_ports: a port of a gateway bridge facing the hosts of a
 * device or isolated zone (management reaches everything, so its ports are not closed). */
static int add_port(void *ctx, const char *item, size_t i, size_t n, const char *loc,
		    struct moat_err *err)
{
	struct moat_net_policy *p = ctx;
	(void)i;
	if (n > MOAT_NET_PORTS_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "%s: more than %d ports", loc,
				    MOAT_NET_PORTS_MAX);
	}
	char name[MOAT_NET_ZONE_NAME_MAX_LEN + 1];
	const char *colon = strchr(item, ':');
	size_t name_len = colon ? (size_t)(colon - item) : 0;
	if (!colon || name_len == 0 || name_len >= sizeof(name)) {
		return moat_err_set(err, MOAT_EINVAL, "%s: '%.64s': expected zone:ifname", loc,
				    item);
	}
	memcpy(name, item, name_len);
	name[name_len] = '\0';
	int z = find_zone(p, name);
	if (z < 0) {
		return moat_err_set(err, MOAT_EINVAL, "%s: unknown zone '%s'", loc, name);
	}
	if (p->zones[z].kind == MOAT_NET_ZONE_MANAGEMENT) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: zone '%s' is management, which reaches everything: only "
				    "device and isolated zones have their ports closed",
				    loc, name);
	}
	int rc = moat_net_parse_ifname(colon + 1, err);
	if (rc != 0) {
		moat_err_prefix(err, "%s", loc);
		return rc;
	}
	for (size_t k = 0; k < p->port_count; k++) {
		if (strcmp(p->ports[k].name, colon + 1) == 0) {
			return moat_err_set(err, MOAT_EINVAL, "%s: port %s listed twice", loc,
					    colon + 1);
		}
	}
	struct moat_net_port *port = &p->ports[p->port_count++];
	snprintf(port->name, sizeof(port->name), "%s", colon + 1);
	port->zone = (size_t)z;
	return 0;
}

static int read_ports(const struct moat_config *cfg, struct moat_net_policy *p,
		      struct moat_err *err)
{
	char loc[160];
	const char *v = moat_config_get(cfg, "network", "bridge_ports");
	if (!v || strcmp(v, "none") == 0) {
		return 0;
	}
	where(cfg, "network", "bridge_ports", loc, sizeof(loc));
	return foreach_item(v, loc, add_port, p, err);
}

struct servers_ctx {
	struct moat_net_policy *p;
	uint32_t *addrs;
	size_t *count;
};

/* One address of dns or ntp: a server any zone's hosts may reach, never inside a device
 * zone (devices never reach each other, so a server there would be out of reach). */
static int add_server(void *ctx, const char *item, size_t i, size_t n, const char *loc,
		      struct moat_err *err)
{
	struct servers_ctx *c = ctx;
	(void)i;
	if (n > MOAT_NET_SERVERS_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "%s: more than %d servers", loc,
				    MOAT_NET_SERVERS_MAX);
	}
	uint32_t a = 0;
	int rc = moat_net_parse_addr(item, &a, err);
	if (rc != 0) {
		moat_err_prefix(err, "%s", loc);
		return rc;
	}
	int z = moat_net_zone_of(c->p, a);
	if (z >= 0 && c->p->zones[z].kind == MOAT_NET_ZONE_DEVICE) {
		return moat_err_set(err, MOAT_EINVAL, "%s: %s is in device zone %s", loc, item,
				    c->p->zones[z].name);
	}
	for (size_t k = 0; k < *c->count; k++) {
		if (c->addrs[k] == a) {
			return moat_err_set(err, MOAT_EINVAL, "%s: %s listed twice", loc, item);
		}
	}
	c->addrs[(*c->count)++] = a;
	return 0;
}

/* dns, ntp: "gateway" (the default), "none" or addresses. */
static int read_servers(const struct moat_config *cfg, struct moat_net_policy *p, const char *key,
			bool *gateway, uint32_t *addrs, size_t *count, struct moat_err *err)
{
	char loc[160];
	where(cfg, "network", key, loc, sizeof(loc));
	const char *v = moat_config_get(cfg, "network", key);
	*gateway = !v || strcmp(v, "gateway") == 0;
	if (*gateway || strcmp(v, "none") == 0) {
		return 0;
	}
	struct servers_ctx c = {.p = p, .addrs = addrs, .count = count};
	return foreach_item(v, loc, add_server, &c, err);
}

/* A key whose value is one of two words. */
static int read_choice(const struct moat_config *cfg, const char *key, const char *yes,
		       const char *no, bool *out, struct moat_err *err)
{
	const struct moat_config_entry *e = moat_config_find(cfg, "network", key);
	*out = !e || strcmp(e->value, yes) == 0;
	if (e && !*out && strcmp(e->value, no) != 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s:%d: [network] %s: '%.32s': expected %s or %s", cfg->path,
				    e->line, key, e->value, yes, no);
	}
	return 0;
}

static int read_gateway(const struct moat_config *cfg, struct moat_net_policy *p,
			struct moat_err *err)
{
	int rc;
	if ((rc = read_choice(cfg, "gateway_input", "drop", "accept", &p->input_filter, err)) !=
		    0 ||
	    (rc = read_choice(cfg, "dhcp", "gateway", "none", &p->dhcp_gateway, err)) != 0 ||
	    (rc = read_servers(cfg, p, "dns", &p->dns_gateway, p->dns_addrs, &p->dns_count, err)) !=
		    0) {
		return rc;
	}
	return read_servers(cfg, p, "ntp", &p->ntp_gateway, p->ntp_addrs, &p->ntp_count, err);
}

uint32_t moat_net_gateway_addr(const struct moat_net_policy *p, size_t z, size_t s)
{
	const struct moat_net_subnet *sn = &p->zones[z].subnets[s];
	uint32_t bcast = sn->addr | ~prefix_mask(sn->prefix);
	for (uint32_t a = sn->addr + 1; a < bcast; a++) {
		if (a != p->broker_addr && a != p->server_addr) {
			return a;
		}
	}
	return 0;
}

static void add_rule(struct moat_net_policy *p, enum moat_net_action action,
		     struct moat_net_sel src, struct moat_net_sel dst, uint16_t dport, bool bridged,
		     const char *why)
{
	/* The rule count is bounded by construction: 20 + 3 per zone <= MOAT_NET_RULES_MAX. */
	struct moat_net_rule *r = &p->rules[p->rule_count++];
	r->action = action;
	r->src = src;
	r->dst = dst;
	r->tcp_dport = dport;
	r->bridged = bridged;
	snprintf(r->why, sizeof(r->why), "%s", why);
}

/* Appends a rule of the gateway's input chain, whose policy is drop (loopback, replies and
 * IPv6 neighbour discovery are accepted by the renderers before these rules). */
static void add_input(struct moat_net_policy *p, struct moat_net_sel src, uint16_t tcp,
		      uint16_t udp, const char *why)
{
	const struct moat_net_sel any = {.kind = MOAT_NET_SEL_ANY};
	add_rule(p, MOAT_NET_ACCEPT, src, any, tcp, false, why);
	p->rules[p->rule_count - 1].udp_dport = udp;
	p->rules[p->rule_count - 1].input = true;
}

static void build_input_rules(struct moat_net_policy *p)
{
	const struct moat_net_sel any = {.kind = MOAT_NET_SEL_ANY};
	const struct moat_net_sel internal = {.kind = MOAT_NET_SEL_INTERNAL};
	const struct moat_net_sel mgmt = {.kind = MOAT_NET_SEL_ZONE, .zone = ZONE_MGMT};
	add_input(p, mgmt, 0, 0, "management reaches the gateway");
	if (p->dns_gateway) {
		add_input(p, internal, MOAT_NET_DNS_PORT, MOAT_NET_DNS_PORT, "DNS on the gateway");
	}
	if (p->ntp_gateway) {
		add_input(p, internal, 0, MOAT_NET_NTP_PORT,
			  "NTP on the gateway: devices need time");
	}
	if (p->dhcp_gateway) {
		/* A client without an address yet sends from 0.0.0.0: any source. */
		add_input(p, any, 0, MOAT_NET_DHCP_PORT, "DHCP on the gateway");
	}
}

static void build_rules(struct moat_net_policy *p)
{
	const struct moat_net_sel any = {.kind = MOAT_NET_SEL_ANY};
	const struct moat_net_sel devices = {.kind = MOAT_NET_SEL_DEVICES};
	const struct moat_net_sel internal = {.kind = MOAT_NET_SEL_INTERNAL};
	const struct moat_net_sel external = {.kind = MOAT_NET_SEL_EXTERNAL};
	struct moat_net_sel broker = {.kind = MOAT_NET_SEL_ADDR, .addr = p->broker_addr};
	struct moat_net_sel server = {.kind = MOAT_NET_SEL_ADDR, .addr = p->server_addr};
	const struct moat_net_sel mgmt = {.kind = MOAT_NET_SEL_ZONE, .zone = ZONE_MGMT};
	broker.has6 = server.has6 = p->services6;
	memcpy(broker.addr6, p->broker_addr6, 16);
	memcpy(server.addr6, p->server_addr6, 16);

	p->rule_count = 0;
	add_rule(p, MOAT_NET_ACCEPT_ESTABLISHED, any, any, 0, false,
		 "replies to allowed connections");
	add_rule(p, MOAT_NET_DROP_INVALID, any, any, 0, false, "conntrack state invalid");
	/* A zone on a VLAN is reachable only through its sub-interface: a frame sent untagged
	 * on the trunk, or with another zone's tag, cannot pose as one of the zone's hosts. */
	for (size_t z = 0; z < p->zone_count; z++) {
		const struct moat_net_zone *zn = &p->zones[z];
		if (!zn->vlan || zn->subnet_count == 0) {
			continue;
		}
		struct moat_net_sel zs = {.kind = MOAT_NET_SEL_ZONE, .zone = z};
		char why[64];
		snprintf(why, sizeof(why), "%s only from its VLAN", zn->name);
		add_rule(p, MOAT_NET_DROP, zs, any, 0, false, why);
		snprintf(p->rules[p->rule_count - 1].iif_not,
			 sizeof(p->rules[p->rule_count - 1].iif_not), "%s.%u", zn->parent,
			 (unsigned)zn->vlan);
	}
	/* Before the rate limit, so device-to-device attempts do not use up a host's budget. */
	add_rule(p, MOAT_NET_DROP, devices, devices, 0, true, "devices never reach each other");
	add_rule(p, MOAT_NET_LIMIT_NEW, devices, any, 0, false,
		 "new connections per device host over conn_rate");
	add_rule(p, MOAT_NET_ACCEPT, devices, broker, p->broker_port, false,
		 "devices reach the broker");
	add_rule(p, MOAT_NET_ACCEPT, devices, server, p->server_port, false,
		 "devices reach the update server");
	for (size_t i = 0; i < p->dns_count; i++) {
		struct moat_net_sel d = {.kind = MOAT_NET_SEL_ADDR, .addr = p->dns_addrs[i]};
		add_rule(p, MOAT_NET_ACCEPT, internal, d, MOAT_NET_DNS_PORT, false, "DNS");
		p->rules[p->rule_count - 1].udp_dport = MOAT_NET_DNS_PORT;
	}
	for (size_t i = 0; i < p->ntp_count; i++) {
		struct moat_net_sel d = {.kind = MOAT_NET_SEL_ADDR, .addr = p->ntp_addrs[i]};
		add_rule(p, MOAT_NET_ACCEPT, internal, d, 0, false, "NTP: devices need time");
		p->rules[p->rule_count - 1].udp_dport = MOAT_NET_NTP_PORT;
	}
	add_rule(p, MOAT_NET_DROP, devices, any, 0, false, "devices reach nothing else");
	add_rule(p, MOAT_NET_ACCEPT, mgmt, any, 0, false, "management reaches everything");
	for (size_t z = 0; z < p->zone_count; z++) {
		if (p->zones[z].kind != MOAT_NET_ZONE_ISOLATED) {
			continue;
		}
		struct moat_net_sel zs = {.kind = MOAT_NET_SEL_ZONE, .zone = z};
		char why[64];
		snprintf(why, sizeof(why), "%s never reaches a zone", p->zones[z].name);
		add_rule(p, MOAT_NET_DROP, zs, internal, 0, true, why);
		snprintf(why, sizeof(why), "%s reaches only the outside", p->zones[z].name);
		add_rule(p, MOAT_NET_ACCEPT, zs, external, 0, false, why);
	}
	if (p->input_filter) {
		build_input_rules(p);
	}
}

int moat_net_policy_from_config(const struct moat_config *cfg, struct moat_net_policy *out,
				struct moat_err *err)
{
	int rc = 0;
	int64_t v = 0;
	memset(out, 0, sizeof(*out));
	for (size_t z = 0; z < 3; z++) {
		snprintf(out->zones[z].name, sizeof(out->zones[z].name), "%s", std_zones[z]);
		out->zones[z].kind = z == ZONE_MGMT ? MOAT_NET_ZONE_MANAGEMENT
						    : MOAT_NET_ZONE_ISOLATED;
	}
	out->zone_count = 3;
	if ((rc = read_extra_zones(cfg, out, err)) != 0 || (rc = check_keys(cfg, out, err)) != 0) {
		goto out;
	}
	for (size_t z = 0; z < out->zone_count; z++) {
		if ((rc = read_zone_subnets(cfg, out, z, err)) != 0) {
			goto out;
		}
	}
	if ((rc = check_overlaps(cfg, out, err)) != 0 ||
	    (rc = check_overlaps6(cfg, out, err)) != 0 ||
	    (rc = read_device_zones(cfg, out, err)) != 0 ||
	    (rc = read_service_addr(cfg, out, "broker_address", MOAT_NET_DEFAULT_BROKER_ADDRESS,
				    &out->broker_addr, err)) != 0 ||
	    (rc = read_server_addr(cfg, out, err)) != 0 || (rc = read_vlans(cfg, out, err)) != 0 ||
	    (rc = read_ports(cfg, out, err)) != 0 || (rc = read_gateway(cfg, out, err)) != 0) {
		goto out;
	}
	if ((rc = moat_config_get_int(cfg, "broker", "port", MOAT_NET_DEFAULT_BROKER_PORT, 1, 65535,
				      &v, err)) != 0) {
		goto out;
	}
	out->broker_port = (uint16_t)v;
	if ((rc = moat_config_get_int(cfg, "server", "port", MOAT_NET_DEFAULT_SERVER_PORT, 1, 65535,
				      &v, err)) != 0) {
		goto out;
	}
	out->server_port = (uint16_t)v;
	if ((rc = moat_config_get_int(cfg, "network", "conn_rate", MOAT_NET_DEFAULT_CONN_RATE, 1,
				      MOAT_NET_RATE_MAX, &v, err)) != 0) {
		goto out;
	}
	out->conn_rate = (unsigned)v;
	if ((rc = moat_config_get_int(cfg, "network", "log_rate", MOAT_NET_DEFAULT_LOG_RATE, 1,
				      MOAT_NET_RATE_MAX, &v, err)) != 0) {
		goto out;
	}
	out->log_rate = (unsigned)v;
	out->services6 = moat_net_addr6_for(out, out->broker_addr, out->broker_addr6) &&
			 moat_net_addr6_for(out, out->server_addr, out->server_addr6);
	build_rules(out);
out:
	if (rc != 0) {
		memset(out, 0, sizeof(*out));
	}
	return rc;
}

/* Whether the packet's source (src true) or destination matches s. */
static bool sel_match(const struct moat_net_policy *p, const struct moat_net_sel *s,
		      const struct moat_net_pkt *k, bool src)
{
	uint32_t addr = src ? k->src : k->dst;
	const uint8_t *addr6 = src ? k->src6 : k->dst6;
	int z = k->v6 ? moat_net_zone_of6(p, addr6) : moat_net_zone_of(p, addr);
	if (s->kind == MOAT_NET_SEL_ADDR && k->v6) {
		return s->has6 && memcmp(addr6, s->addr6, 16) == 0;
	}
	switch (s->kind) {
	case MOAT_NET_SEL_ANY:
		return true;
	case MOAT_NET_SEL_ZONE:
		return z >= 0 && (size_t)z == s->zone;
	case MOAT_NET_SEL_DEVICES:
		return z >= 0 && p->zones[z].kind == MOAT_NET_ZONE_DEVICE;
	case MOAT_NET_SEL_INTERNAL:
		return z >= 0;
	case MOAT_NET_SEL_EXTERNAL:
		return z < 0;
	case MOAT_NET_SEL_ADDR:
		return addr == s->addr;
	}
	return false;
}

static bool port_match(const struct moat_net_rule *r, const struct moat_net_pkt *k)
{
	if (r->tcp_dport == 0 && r->udp_dport == 0) {
		return true;
	}
	return (k->proto == MOAT_NET_PROTO_TCP && r->tcp_dport && r->tcp_dport == k->dport) ||
	       (k->proto == MOAT_NET_PROTO_UDP && r->udp_dport && r->udp_dport == k->dport);
}

bool moat_net_decide_pkt(const struct moat_net_policy *p, const struct moat_net_pkt *k)
{
	if (k->to_gateway && !p->input_filter) {
		return true; /* no input chain */
	}
	for (size_t i = 0; i < p->rule_count; i++) {
		const struct moat_net_rule *r = &p->rules[i];
		if ((r->action != MOAT_NET_ACCEPT && r->action != MOAT_NET_DROP) || r->iif_not[0] ||
		    r->input != k->to_gateway) {
			continue; /* state, rate and interface rules: outside what decide models
				   * (its packets come in where their source address belongs) */
		}
		if (port_match(r, k) && sel_match(p, &r->src, k, true) &&
		    sel_match(p, &r->dst, k, false)) {
			return r->action == MOAT_NET_ACCEPT;
		}
	}
	return false; /* the chain's policy */
}

bool moat_net_decide(const struct moat_net_policy *p, uint32_t src, uint32_t dst, uint16_t dport)
{
	struct moat_net_pkt k = {.src = src,
				 .dst = dst,
				 .proto = dport ? MOAT_NET_PROTO_TCP : MOAT_NET_PROTO_OTHER,
				 .dport = dport};
	return moat_net_decide_pkt(p, &k);
}

static bool in_list(const uint32_t *a, size_t n, uint32_t x)
{
	for (size_t i = 0; i < n; i++) {
		if (a[i] == x) {
			return true;
		}
	}
	return false;
}

/* The gateway's own services, as [network] describes them. */
static bool expect_gateway(const struct moat_net_policy *p, const struct moat_net_pkt *k, int sz)
{
	bool udp = k->proto == MOAT_NET_PROTO_UDP;
	bool tcp = k->proto == MOAT_NET_PROTO_TCP;
	if (!p->input_filter || (udp && k->dport == MOAT_NET_DHCP_PORT && p->dhcp_gateway)) {
		return true;
	}
	if (sz < 0) {
		return false;
	}
	if (p->zones[sz].kind == MOAT_NET_ZONE_MANAGEMENT) {
		return true;
	}
	return (p->dns_gateway && (udp || tcp) && k->dport == MOAT_NET_DNS_PORT) ||
	       (p->ntp_gateway && udp && k->dport == MOAT_NET_NTP_PORT);
}

/* The design in one place, deliberately not derived from the rule list. */
bool moat_net_expect_pkt(const struct moat_net_policy *p, const struct moat_net_pkt *k)
{
	/* IPv6 as IPv4: zones by their prefixes, the services at their IPv6 counterparts, the
	 * dns and ntp lists (IPv4 addresses) never. */
	int sz = k->v6 ? moat_net_zone_of6(p, k->src6) : moat_net_zone_of(p, k->src);
	int dz = k->v6 ? moat_net_zone_of6(p, k->dst6) : moat_net_zone_of(p, k->dst);
	bool to_broker = k->v6 ? p->services6 && memcmp(k->dst6, p->broker_addr6, 16) == 0
			       : k->dst == p->broker_addr;
	bool to_server = k->v6 ? p->services6 && memcmp(k->dst6, p->server_addr6, 16) == 0
			       : k->dst == p->server_addr;
	if (k->to_gateway) {
		return expect_gateway(p, k, sz);
	}
	if (sz < 0) {
		return false; /* nothing from outside starts a connection inward or through */
	}
	bool udp = k->proto == MOAT_NET_PROTO_UDP;
	bool tcp = k->proto == MOAT_NET_PROTO_TCP;
	/* The name and time servers: from every zone (none sits in a device zone). */
	if (!k->v6 && (((udp || tcp) && k->dport == MOAT_NET_DNS_PORT &&
			in_list(p->dns_addrs, p->dns_count, k->dst)) ||
		       (udp && k->dport == MOAT_NET_NTP_PORT &&
			in_list(p->ntp_addrs, p->ntp_count, k->dst)))) {
		return true;
	}
	switch (p->zones[sz].kind) {
	case MOAT_NET_ZONE_MANAGEMENT:
		return true;
	case MOAT_NET_ZONE_DEVICE:
		return tcp && ((to_broker && k->dport == p->broker_port) ||
			       (to_server && k->dport == p->server_port));
	case MOAT_NET_ZONE_ISOLATED:
		return dz < 0;
	}
	return false;
}

bool moat_net_expect(const struct moat_net_policy *p, uint32_t src, uint32_t dst, uint16_t dport)
{
	struct moat_net_pkt k = {.src = src,
				 .dst = dst,
				 .proto = dport ? MOAT_NET_PROTO_TCP : MOAT_NET_PROTO_OTHER,
				 .dport = dport};
	return moat_net_expect_pkt(p, &k);
}

int moat_net_format_parse(const char *text, enum moat_net_format *out, struct moat_err *err)
{
	if (strcmp(text, "nft") == 0) {
		*out = MOAT_NET_FORMAT_NFT;
		return 0;
	}
	if (strcmp(text, "iptables") == 0) {
		*out = MOAT_NET_FORMAT_IPTABLES;
		return 0;
	}
	return moat_err_set(err, MOAT_EINVAL, "unknown format '%.32s' (nft or iptables)", text);
}

const char *moat_net_observed_name(enum moat_net_observed o)
{
	switch (o) {
	case MOAT_NET_OBS_OPEN:
		return "open";
	case MOAT_NET_OBS_BLOCKED:
		return "blocked";
	case MOAT_NET_OBS_REFUSED:
		return "refused";
	case MOAT_NET_OBS_ERROR:
		return "error";
	case MOAT_NET_OBS_LIMITED:
		return "limited";
	}
	return "?";
}
