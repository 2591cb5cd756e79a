/* net.c: `moat net plan|apply|remove|verify`, network segmentation derived from the
 * deployment's moat.conf ([network], [broker] port, [server] port). plan prints the ruleset,
 * apply loads it (or only checks it with --dry-run), remove deletes moat's tables, verify
 * proves the policy in throwaway network namespaces and prints the probe matrix. --config
 * reads a moat.conf directly (a gateway holding only a copy of it) instead of a deployment. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "moat/net.h"
#include "moat/signals.h"

static const char usage[] =
	"usage: moat net plan [--format nft|iptables]   print the ruleset\n"
	"       moat net plan --interfaces [--format networkd|ifupdown]\n"
	"                                               the gateway's VLAN sub-interfaces\n"
	"       moat net apply [--dry-run]              load it here (nft -f; --dry-run: nft -c)\n"
	"       moat net apply --interfaces [--root DIR]\n"
	"                                               install the networkd files into\n"
	"                                               DIR/etc/systemd/network (default /)\n"
	"       moat net remove                         delete moat's nft tables, nothing else\n"
	"       moat net verify                         prove it in throwaway network namespaces\n"
	"options: --config FILE (a moat.conf instead of the deployment), --dir DIR, --json\n";

static int load_policy(const char *config_path, struct moat_net_policy *p, struct moat_err *err)
{
	struct moat_config *cfg = NULL;
	struct moat_deploy *d = NULL;
	int rc = 0;
	if (config_path) {
		rc = moat_config_load(config_path, &cfg, err);
		if (rc == 0) {
			rc = moat_net_policy_from_config(cfg, p, err);
		}
		moat_config_free(cfg);
		return rc;
	}
	rc = cli_open(MOAT_DEPLOY_READ, &d, err);
	if (rc == 0) {
		rc = moat_net_policy_from_config(moat_deploy_config(d), p, err);
	}
	moat_deploy_close(d);
	return rc;
}

static const char *kind_name(enum moat_net_zone_kind k)
{
	return k == MOAT_NET_ZONE_MANAGEMENT ? "management"
	       : k == MOAT_NET_ZONE_DEVICE   ? "devices"
					     : "isolated";
}

static void json_addr(const char *key, uint32_t addr)
{
	char a[16];
	moat_net_addr_format(addr, a, sizeof(a));
	printf("\"%s\":\"%s\"", key, a);
}

/* The policy's summary as JSON members (no braces): zones, services, rates. */
static void json_policy(const struct moat_net_policy *p)
{
	printf("\"zones\":[");
	for (size_t z = 0; z < p->zone_count; z++) {
		const struct moat_net_zone *zn = &p->zones[z];
		printf("%s{\"name\":\"%s\",\"kind\":\"%s\",\"subnets\":[", z ? "," : "", zn->name,
		       kind_name(zn->kind));
		for (size_t s = 0; s < zn->subnet_count; s++) {
			char a[16];
			moat_net_addr_format(zn->subnets[s].addr, a, sizeof(a));
			printf("%s\"%s/%u\"", s ? "," : "", a, zn->subnets[s].prefix);
		}
		printf("],\"prefixes6\":[");
		for (size_t s = 0; s < zn->prefix6_count; s++) {
			char a[48];
			moat_net_addr6_format(zn->prefixes6[s].addr, a, sizeof(a));
			printf("%s\"%s/%u\"", s ? "," : "", a, zn->prefixes6[s].prefix);
		}
		printf("]");
		if (zn->vlan) {
			printf(",\"vlan\":%u,\"parent\":", (unsigned)zn->vlan);
			cli_json_string(stdout, zn->parent);
		}
		printf("}");
	}
	printf("],");
	json_addr("broker_address", p->broker_addr);
	printf(",\"broker_port\":%u,", (unsigned)p->broker_port);
	json_addr("server_address", p->server_addr);
	printf(",\"server_port\":%u,\"conn_rate\":%u,\"log_rate\":%u", (unsigned)p->server_port,
	       p->conn_rate, p->log_rate);
	printf(",\"bridge_ports\":[");
	for (size_t i = 0; i < p->port_count; i++) {
		printf("%s{\"zone\":\"%s\",\"port\":\"%s\"}", i ? "," : "",
		       p->zones[p->ports[i].zone].name, p->ports[i].name);
	}
	printf("]");
	if (p->services6) {
		char a[48];
		moat_net_addr6_format(p->broker_addr6, a, sizeof(a));
		printf(",\"broker_address6\":\"%s\"", a);
		moat_net_addr6_format(p->server_addr6, a, sizeof(a));
		printf(",\"server_address6\":\"%s\"", a);
	}
}

static int write_out(const char *text, size_t len)
{
	if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
		fprintf(stderr, "moat: net plan: cannot write to stdout\n");
		return CLI_FAIL;
	}
	return CLI_OK;
}

static int plan_ruleset(const struct moat_net_policy *p, enum moat_net_format fmt,
			const char *fmt_name)
{
	struct moat_err err = {0};
	char *text = NULL;
	size_t len = 0;
	if (moat_net_render(p, fmt, &text, &len, &err) != 0) {
		return cli_fail(&err);
	}
	int status = CLI_OK;
	if (cli_globals.json) {
		printf("{\"format\":\"%s\",", fmt_name);
		json_policy(p);
		printf(",\"ruleset\":");
		cli_json_string(stdout, text);
		printf("}\n");
		status = write_out("", 0);
	} else {
		status = write_out(text, len);
	}
	free(text);
	return status;
}

/* networkd files as "# file NAME" blocks (or JSON), or the ifupdown stanzas. */
static int plan_interfaces(const struct moat_net_policy *p, const char *format)
{
	struct moat_err err = {0};
	int status = CLI_OK;
	if (format && strcmp(format, "ifupdown") == 0) {
		char *text = NULL;
		size_t len = 0;
		if (moat_net_render_ifupdown(p, &text, &len, &err) != 0) {
			return cli_fail(&err);
		}
		if (cli_globals.json) {
			printf("{\"format\":\"ifupdown\",\"text\":");
			cli_json_string(stdout, text);
			printf("}\n");
			status = write_out("", 0);
		} else {
			status = write_out(text, len);
		}
		free(text);
		return status;
	}
	struct moat_net_files *f = calloc(1, sizeof(*f));
	if (!f) {
		fprintf(stderr, "moat: out of memory\n");
		return CLI_FAIL;
	}
	if (moat_net_render_networkd(p, f, &err) != 0) {
		free(f);
		return cli_fail(&err);
	}
	if (cli_globals.json) {
		printf("{\"format\":\"networkd\",\"directory\":\"/etc/systemd/network\","
		       "\"files\":[");
	}
	for (size_t i = 0; i < f->count; i++) {
		if (cli_globals.json) {
			printf("%s{\"name\":", i ? "," : "");
			cli_json_string(stdout, f->files[i].name);
			printf(",\"text\":");
			cli_json_string(stdout, f->files[i].text);
			printf("}");
		} else {
			printf("%s# file /etc/systemd/network/%s\n", i ? "\n" : "",
			       f->files[i].name);
			status = write_out(f->files[i].text, f->files[i].len);
		}
	}
	if (cli_globals.json) {
		printf("]}\n");
	} else if (f->count == 0) {
		printf("# no zone has a VLAN ([network] vlans)\n");
	}
	if (status == CLI_OK) {
		status = write_out("", 0);
	}
	moat_net_files_free(f);
	free(f);
	return status;
}

static int apply_interfaces(const struct moat_net_policy *p, const char *root)
{
	struct moat_err err = {0};
	char dir[PATH_MAX];
	if (moat_net_install_networkd(p, root, dir, sizeof(dir), &err) != 0) {
		return cli_fail(&err);
	}
	if (cli_globals.json) {
		printf("{\"directory\":");
		cli_json_string(stdout, dir);
		printf(",\"next\":\"networkctl reload\"}\n");
	} else {
		printf("installed the VLAN interfaces in %s; run `networkctl reload` to bring them "
		       "up\n",
		       dir);
	}
	return CLI_OK;
}

static void on_signal(int sig)
{
	(void)sig;
	moat_net_interrupted = 1;
}

static void print_text(const struct moat_net_verify_report *r)
{
	printf("%-17s %-17s %-4s %-27s %-9s %-9s %s\n", "FROM", "TO", "IP", "ADDRESS", "EXPECTED",
	       "OBSERVED", "RESULT");
	for (size_t i = 0; i < r->probe_count; i++) {
		const struct moat_net_probe *pr = &r->probes[i];
		char a[48];
		char dst[64];
		if (pr->v6) {
			moat_net_addr6_format(pr->dst6, a, sizeof(a));
			snprintf(dst, sizeof(dst), "[%s]:%u%s", a, (unsigned)pr->port,
				 pr->udp ? "/udp" : "");
		} else {
			moat_net_addr_format(pr->dst, a, sizeof(a));
			snprintf(dst, sizeof(dst), "%s:%u%s", a, (unsigned)pr->port,
				 pr->udp ? "/udp" : "");
		}
		const char *expected = pr->flood ? "limited" : pr->expect_open ? "open" : "blocked";
		printf("%-17s %-17s %-4s %-27s %-9s %-9s %s%s\n", pr->from, pr->to,
		       pr->v6 ? "v6" : "v4", dst, expected, moat_net_observed_name(pr->observed),
		       pr->ok ? "ok" : "MISMATCH",
		       pr->flood	? " (connection flood)"
		       : pr->link_local ? " (link-local)"
		       : pr->peer	? " (address of no zone)"
					: "");
	}
	printf("%zu probes, %zu mismatches, %llu drops logged\n", r->probe_count, r->mismatches,
	       (unsigned long long)r->logged_drops);
}

static void print_json(const struct moat_net_verify_report *r)
{
	printf("{\"probes\":[");
	for (size_t i = 0; i < r->probe_count; i++) {
		const struct moat_net_probe *pr = &r->probes[i];
		char src[48];
		char dst[48];
		if (pr->v6) {
			moat_net_addr6_format(pr->src6, src, sizeof(src));
			moat_net_addr6_format(pr->dst6, dst, sizeof(dst));
		} else {
			moat_net_addr_format(pr->src, src, sizeof(src));
			moat_net_addr_format(pr->dst, dst, sizeof(dst));
		}
		printf("%s{\"from\":", i ? "," : "");
		cli_json_string(stdout, pr->from);
		printf(",\"to\":");
		cli_json_string(stdout, pr->to);
		printf(",\"family\":\"%s\",\"protocol\":\"%s\",\"gateway\":%s,\"peer\":%s",
		       pr->v6 ? "ipv6" : "ipv4", pr->udp ? "udp" : "tcp",
		       pr->to_gateway ? "true" : "false", pr->peer ? "true" : "false");
		printf(",\"src\":\"%s\",\"dst\":\"%s\",\"port\":%u,\"flood\":%s,\"expected\":\"%s\","
		       "\"observed\":\"%s\",\"ok\":%s}",
		       src, dst, (unsigned)pr->port, pr->flood ? "true" : "false",
		       pr->flood	 ? "limited"
		       : pr->expect_open ? "open"
					 : "blocked",
		       moat_net_observed_name(pr->observed), pr->ok ? "true" : "false");
	}
	printf("],\"mismatches\":%zu,\"logged_drops\":%llu,\"tagged\":%s}\n", r->mismatches,
	       (unsigned long long)r->logged_drops, r->tagged ? "true" : "false");
}

static int do_verify(const struct moat_net_policy *p)
{
	struct moat_err err = {0};
	struct moat_net_verify_report *r = calloc(1, sizeof(*r));
	if (!r) {
		fprintf(stderr, "moat: out of memory\n");
		return CLI_FAIL;
	}
	moat_signals_catch(on_signal, SIGHUP); /* verify cleans up at once */
	int rc = moat_net_verify(p, r, &err);
	int status = CLI_OK;
	if (rc != 0) {
		status = cli_fail(&err);
	} else {
		bool flood = false;
		for (size_t i = 0; i < r->probe_count; i++) {
			flood = flood || r->probes[i].flood;
		}
		if (cli_globals.json) {
			print_json(r);
		} else {
			print_text(r);
			if (!r->tagged) {
				printf("note: this kernel makes no 802.1Q devices "
				       "(CONFIG_VLAN_8021Q): zones were plain bridges, so tagging "
				       "itself is not proven; untagged frames on a trunk are\n");
			}
			if (!flood) {
				printf("note: no connection-flood row (needs a device host and "
				       "conn_rate <= %d; conn_rate is %u)\n",
				       MOAT_NET_FLOOD_RATE_MAX, p->conn_rate);
			}
		}
		if (r->mismatches > 0) {
			fprintf(stderr,
				"moat: net verify: %zu of %zu probes did not match the policy\n",
				r->mismatches, r->probe_count);
			status = CLI_FAIL;
		}
	}
	free(r);
	return status;
}

int net_main(int argc, char **argv)
{
	int st = cli_group_help(argc, argv, usage, false);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	const char *cmd = argv[1];
	const char *format = NULL;
	const char *config_path = NULL;
	const char *root = NULL;
	bool dry_run = false;
	bool interfaces = false;
	const struct moat_opt opts[] = {
		{.name = "interfaces", .kind = MOAT_OPT_FLAG, .dst = &interfaces},
		{.name = "root", .kind = MOAT_OPT_STRING, .dst = &root},
		{.name = "format", .kind = MOAT_OPT_STRING, .dst = &format},
		{.name = "dry-run", .kind = MOAT_OPT_FLAG, .dst = &dry_run},
		{.name = "config", .kind = MOAT_OPT_STRING, .dst = &config_path},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = usage, .opts = opts,
					    .error_line = "net: see moat net --help"};
	int next;
	st = moat_opts_parse(&spec, argc, argv, 2, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	if (next != argc) {
		return cli_usage_error("net %s: unexpected argument '%s'", cmd, argv[next]);
	}
	bool is_plan = strcmp(cmd, "plan") == 0;
	bool is_apply = strcmp(cmd, "apply") == 0;
	if (!is_plan && !is_apply && strcmp(cmd, "remove") != 0 && strcmp(cmd, "verify") != 0) {
		return cli_usage_error("net: unknown command '%s' (plan, apply, remove, verify)",
				       cmd);
	}
	if (format && !is_plan) {
		return cli_usage_error("net %s: --format is for plan", cmd);
	}
	if (dry_run && !is_apply) {
		return cli_usage_error("net %s: --dry-run is for apply", cmd);
	}
	if (interfaces && !is_plan && !is_apply) {
		return cli_usage_error("net %s: --interfaces is for plan and apply", cmd);
	}
	if (root && !(is_apply && interfaces)) {
		return cli_usage_error("net %s: --root is for apply --interfaces", cmd);
	}
	if (interfaces && dry_run) {
		return cli_usage_error("net apply: --dry-run is for the ruleset; see the files "
				       "with moat net plan --interfaces");
	}
	if (interfaces && format && strcmp(format, "networkd") != 0 &&
	    strcmp(format, "ifupdown") != 0) {
		return cli_usage_error("net plan: unknown interfaces format '%s' (networkd or "
				       "ifupdown)",
				       format);
	}

	struct moat_err err = {0};
	if (strcmp(cmd, "remove") == 0) {
		if (moat_net_remove(&err) != 0) {
			return cli_fail(&err);
		}
		if (cli_globals.json) {
			printf("{\"removed\":[\"inet %s\",\"bridge %s\"]}\n", MOAT_NET_TABLE,
			       MOAT_NET_TABLE);
		} else {
			printf("removed the nft tables inet %s and bridge %s\n", MOAT_NET_TABLE,
			       MOAT_NET_TABLE);
		}
		return CLI_OK;
	}
	enum moat_net_format fmt = MOAT_NET_FORMAT_NFT;
	if (format && !interfaces && moat_net_format_parse(format, &fmt, &err) != 0) {
		return cli_usage_error("net plan: %s", err.msg);
	}
	struct moat_net_policy *p = calloc(1, sizeof(*p));
	if (!p) {
		fprintf(stderr, "moat: out of memory\n");
		return CLI_FAIL;
	}
	int status = CLI_OK;
	if (load_policy(config_path, p, &err) != 0) {
		status = cli_fail(&err);
		goto out;
	}
	if (is_plan && interfaces) {
		status = plan_interfaces(p, format);
	} else if (is_plan) {
		status = plan_ruleset(p, fmt, format ? format : "nft");
	} else if (is_apply && interfaces) {
		status = apply_interfaces(p, root);
	} else if (is_apply) {
		/* The ports first: a mistyped one fails before anything changes. */
		int rc = moat_net_isolate_ports(p, true, &err);
		if (rc == 0) {
			rc = dry_run ? moat_net_check(p, &err) : moat_net_apply(p, &err);
		}
		if (rc == 0 && !dry_run) {
			rc = moat_net_isolate_ports(p, false, &err);
		}
		if (rc != 0) {
			status = cli_fail(&err);
			goto out;
		}
		if (cli_globals.json) {
			printf("{\"%s\":[\"inet %s\",\"bridge %s\"]",
			       dry_run ? "checked" : "loaded", MOAT_NET_TABLE, MOAT_NET_TABLE);
			for (size_t i = 0; i < p->port_count; i++) {
				printf("%s\"%s\"", i ? "," : ",\"isolated_ports\":[",
				       p->ports[i].name);
			}
			printf("%s}\n", p->port_count ? "]" : "");
		} else if (dry_run) {
			printf("the ruleset is valid (nft -c)%s; nothing changed\n",
			       p->port_count ? " and every bridge port exists" : "");
		} else {
			printf("loaded the nft tables inet %s and bridge %s\n", MOAT_NET_TABLE,
			       MOAT_NET_TABLE);
			for (size_t i = 0; i < p->port_count; i++) {
				printf("isolated bridge port %s (zone %s)\n", p->ports[i].name,
				       p->zones[p->ports[i].zone].name);
			}
		}
	} else {
		status = do_verify(p);
	}
out:
	free(p);
	return status;
}
