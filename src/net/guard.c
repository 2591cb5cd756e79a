/* guard.c: the connection guard of the broker host (include/moat/net.h): [guard] of
 * moat.conf into nftables rules on the broker's and moatd's ports, in a table of its own.
 *
 * Before a daemon knows who a client is, the client costs it a socket, a TLS session and
 * buffers; the kernel can bound that per source without knowing anything else. `ct count`
 * keyed by the source address counts open connections (conntrack drops closed ones), a
 * `limit rate` keyed the same way bounds how fast a source opens them, and a plain
 * `ct count` on the broker port bounds them all, which Mosquitto 2.0.11's own
 * max_connections does not (it counts each disconnect twice). Every refusal is a TCP reset,
 * so a client learns at once, and passes through a chain that counts it and logs it
 * (rate-limited: a flood must not become a flood of log lines). */
#include "moat/net.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/buf.h"

#include "net_internal.h"

#define GUARD_LOG_PER_S 5

int moat_net_guard_from_config(const struct moat_config *cfg, struct moat_net_guard *out,
			       struct moat_err *err)
{
	static const char *const keys[] = {
		"enabled", "broker_per_source", "server_per_source", "new_per_source", "exempt",
		NULL};
	int64_t v = 0;
	int rc;
	memset(out, 0, sizeof(*out));
	if ((rc = moat_config_check_keys(cfg, "guard", keys, err)) != 0) {
		goto out;
	}
	const struct moat_config_entry *e = moat_config_find(cfg, "guard", "enabled");
	if (!e || strcmp(e->value, "auto") == 0) {
		out->mode = MOAT_NET_GUARD_AUTO;
	} else {
		bool on = false;
		if ((rc = moat_config_get_bool(cfg, "guard", "enabled", false, &on, err)) != 0) {
			moat_err_set(err, MOAT_EINVAL,
				     "%s:%d: [guard] enabled: '%.32s': expected "
				     "auto, yes or no",
				     cfg->path, e->line, e->value);
			goto out;
		}
		out->mode = on ? MOAT_NET_GUARD_ON : MOAT_NET_GUARD_OFF;
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
	/* the broker module checks this key's range; here -1 (unlimited) means no bound */
	if ((rc = moat_config_get_int(cfg, "broker", "max_connections", 10000, -1, 1000000, &v,
				      err)) != 0) {
		goto out;
	}
	out->broker_max = v > 0 ? (unsigned)v : 0;
	if ((rc = moat_config_get_int(cfg, "guard", "broker_per_source",
				      MOAT_NET_GUARD_BROKER_PER_SOURCE, 1,
				      MOAT_NET_GUARD_PER_SOURCE_MAX, &v, err)) != 0) {
		goto out;
	}
	out->broker_per_source = (unsigned)v;
	if ((rc = moat_config_get_int(cfg, "guard", "server_per_source",
				      MOAT_NET_GUARD_SERVER_PER_SOURCE, 1,
				      MOAT_NET_GUARD_PER_SOURCE_MAX, &v, err)) != 0) {
		goto out;
	}
	out->server_per_source = (unsigned)v;
	if ((rc = moat_config_get_int(cfg, "guard", "new_per_source", MOAT_NET_GUARD_NEW_PER_SOURCE,
				      1, MOAT_NET_RATE_MAX, &v, err)) != 0) {
		goto out;
	}
	out->new_per_source = (unsigned)v;

	e = moat_config_find(cfg, "guard", "exempt");
	const char *list = e ? e->value : "127.0.0.1, ::1";
	if (strcmp(list, "none") == 0) {
		goto out;
	}
	char **items = NULL;
	size_t count = 0;
	if ((rc = moat_config_split_list(list, &items, &count, err)) != 0) {
		moat_err_prefix(err, "%s:%d: [guard] exempt", cfg->path, e ? e->line : 0);
		goto out;
	}
	for (size_t i = 0; i < count && rc == 0; i++) {
		unsigned char a[16];
		if (i >= MOAT_NET_GUARD_EXEMPT_MAX) {
			rc = moat_err_set(err, MOAT_EINVAL, "%s:%d: [guard] exempt: more than %d",
					  cfg->path, e ? e->line : 0, MOAT_NET_GUARD_EXEMPT_MAX);
		} else if (strlen(items[i]) >= sizeof(out->exempt[0]) ||
			   (inet_pton(AF_INET, items[i], a) != 1 &&
			    inet_pton(AF_INET6, items[i], a) != 1)) {
			rc = moat_err_set(err, MOAT_EINVAL,
					  "%s:%d: [guard] exempt: '%.64s' is not an IP address",
					  cfg->path, e ? e->line : 0, items[i]);
		} else {
			snprintf(out->exempt[i], sizeof(out->exempt[i]), "%s", items[i]);
			out->exempt_count++;
		}
	}
	moat_config_list_free(items, count);
out:
	if (rc != 0) {
		memset(out, 0, sizeof(*out));
	}
	return rc;
}

static bool is_v4(const char *a)
{
	unsigned char b[4];
	return inet_pton(AF_INET, a, b) == 1;
}

static void exempt_set(struct moat_buf *b, const struct moat_net_guard *g, bool v4)
{
	bool first = true;
	for (size_t i = 0; i < g->exempt_count; i++) {
		if (is_v4(g->exempt[i]) != v4) {
			continue;
		}
		if (first) {
			moat_buf_printf(b, "\tset exempt%c {\n\t\ttype %s\n\t\telements = { ",
					v4 ? '4' : '6', v4 ? "ipv4_addr" : "ipv6_addr");
		}
		moat_buf_printf(b, "%s%s", first ? "" : ", ", g->exempt[i]);
		first = false;
	}
	if (!first) {
		moat_buf_printf(b, " }\n\t}\n");
	}
}

static bool has_exempt(const struct moat_net_guard *g, bool v4)
{
	for (size_t i = 0; i < g->exempt_count; i++) {
		if (is_v4(g->exempt[i]) == v4) {
			return true;
		}
	}
	return false;
}

/* A chain every refusal of one reason jumps to: counted, logged (rate-limited), reset. */
static void refuse_chain(struct moat_buf *b, const char *reason)
{
	moat_buf_printf(b,
			"\tchain refuse_%s {\n"
			"\t\tlimit rate %d/second burst %d packets log prefix \"%sreason=%s \" "
			"level warn\n"
			"\t\tcounter name %s\n"
			"\t\treject with tcp reset\n"
			"\t}\n",
			reason, GUARD_LOG_PER_S, 2 * GUARD_LOG_PER_S, MOAT_NET_GUARD_LOG_PREFIX,
			reason, reason);
}

static void count_rules(struct moat_buf *b, const char *set, unsigned port, unsigned limit)
{
	moat_buf_printf(b,
			"\t\ttcp dport %u add @%s4 { ip saddr ct count over %u } "
			"jump refuse_source_connections\n"
			"\t\ttcp dport %u add @%s6 { ip6 saddr & ffff:ffff:ffff:ffff:: ct count "
			"over %u } jump refuse_source_connections\n",
			port, set, limit, port, set, limit);
}

int moat_net_guard_render(const struct moat_net_guard *g, char **out_text, size_t *out_len,
			  struct moat_err *err)
{
	struct moat_buf b;
	moat_buf_init(&b, MOAT_NET_RENDER_MAX_BYTES);
	unsigned bp = g->broker_port;
	unsigned sp = g->server_port;
	moat_buf_printf(&b,
			"# moat connection guard: written by moat up, removed by moat down.\n"
			"# per source (IPv4 address or IPv6 /64): %u connections to the broker "
			"(tcp/%u), %u to moatd (tcp/%u), %u new per second (burst %u); broker "
			"connections in all: ",
			g->broker_per_source, bp, g->server_per_source, sp, g->new_per_source,
			2 * g->new_per_source);
	if (g->broker_max) {
		moat_buf_printf(&b, "%u\n", g->broker_max);
	} else {
		moat_buf_printf(&b, "unbounded\n");
	}
	moat_buf_printf(&b, "table inet %s%u\ndelete table inet %s%u\ntable inet %s%u {\n",
			MOAT_NET_GUARD_TABLE_PREFIX, bp, MOAT_NET_GUARD_TABLE_PREFIX, bp,
			MOAT_NET_GUARD_TABLE_PREFIX, bp);
	exempt_set(&b, g, true);
	exempt_set(&b, g, false);
	static const char *const count_sets[] = {"broker", "server"};
	for (int i = 0; i < 2; i++) {
		for (int v = 4; v <= 6; v += 2) {
			moat_buf_printf(&b,
					"\tset %s%d {\n\t\ttype %s\n\t\tsize 65535\n"
					"\t\tflags dynamic\n\t}\n",
					count_sets[i], v, v == 4 ? "ipv4_addr" : "ipv6_addr");
		}
	}
	for (int v = 4; v <= 6; v += 2) {
		moat_buf_printf(&b,
				"\tset rate%d {\n\t\ttype %s\n\t\tsize 65535\n"
				"\t\tflags dynamic,timeout\n\t\ttimeout 60s\n\t}\n",
				v, v == 4 ? "ipv4_addr" : "ipv6_addr");
	}
	moat_buf_printf(&b, "\tcounter source_connections {\n\t}\n\tcounter source_rate {\n\t}\n"
			    "\tcounter total_connections {\n\t}\n");
	refuse_chain(&b, "source_connections");
	refuse_chain(&b, "source_rate");
	refuse_chain(&b, "total_connections");
	moat_buf_printf(&b, "\tchain input {\n"
			    "\t\ttype filter hook input priority filter - 10; policy accept;\n"
			    "\t\tct state != new return\n");
	if (g->broker_max) {
		/* the broker's capacity: every source counts, exempt ones too */
		moat_buf_printf(&b,
				"\t\ttcp dport %u ct count over %u jump refuse_total_connections\n",
				bp, g->broker_max);
	}
	if (has_exempt(g, true)) {
		moat_buf_printf(&b, "\t\tip saddr @exempt4 return\n");
	}
	if (has_exempt(g, false)) {
		moat_buf_printf(&b, "\t\tip6 saddr @exempt6 return\n");
	}
	moat_buf_printf(&b,
			"\t\ttcp dport { %u, %u } update @rate4 { ip saddr limit rate over "
			"%u/second burst %u packets } jump refuse_source_rate\n"
			"\t\ttcp dport { %u, %u } update @rate6 { ip6 saddr & ffff:ffff:ffff:ffff:: "
			"limit rate over %u/second burst %u packets } jump refuse_source_rate\n",
			bp, sp, g->new_per_source, 2 * g->new_per_source, bp, sp, g->new_per_source,
			2 * g->new_per_source);
	count_rules(&b, "broker", bp, g->broker_per_source);
	count_rules(&b, "server", sp, g->server_per_source);
	moat_buf_printf(&b, "\t}\n}\n");
	if (moat_buf_take(&b, out_text, out_len) != 0) {
		return moat_err_set(err, MOAT_ENOMEM, "guard ruleset: rendering failed");
	}
	return 0;
}

int moat_net_guard_apply(const struct moat_net_guard *g, struct moat_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc = moat_net_guard_render(g, &text, &len, err);
	if (rc != 0) {
		return rc;
	}
	const char *argv[] = {"nft", "-f", "-", NULL};
	rc = net_run(argv, text, NULL, 0, err);
	free(text);
	return rc;
}

int moat_net_guard_remove(uint16_t broker_port, struct moat_err *err)
{
	char text[160];
	snprintf(text, sizeof(text), "table inet %s%u\ndelete table inet %s%u\n",
		 MOAT_NET_GUARD_TABLE_PREFIX, (unsigned)broker_port, MOAT_NET_GUARD_TABLE_PREFIX,
		 (unsigned)broker_port);
	const char *argv[] = {"nft", "-f", "-", NULL};
	return net_run(argv, text, NULL, 0, err);
}
