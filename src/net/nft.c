/* nft.c: the adapter to the packet filter. It runs nft(8) (and, for verify, ip(8)) as child
 * processes (moat/spawn.h) with argument vectors, never through a shell, feeds the ruleset
 * on stdin and keeps the first line of stderr for the error message. Only moat's own
 * tables are ever named: apply and check load the rendered file, whose first lines replace
 * "inet moat" and "bridge moat"; remove deletes those two and nothing else. */
#include "moat/net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "moat/spawn.h"

#include "net_internal.h"

static void first_line(char *s)
{
	char *nl = strchr(s, '\n');
	if (nl) {
		*nl = '\0';
	}
}

int net_run(const char *const *argv, const char *input, char *out_buf, size_t out_size,
	    struct moat_err *err)
{
	struct moat_spawn sp = {
		.argv = (char *const *)argv,
		.flags = MOAT_SPAWN_SIGDEFAULT | MOAT_SPAWN_IGNORE_SIGINT | MOAT_SPAWN_SEARCH_PATH,
	};
	char errbuf[512] = "";
	struct moat_spawn_capture out = {.buf = out_buf, .size = out_size};
	struct moat_spawn_capture errout = {.buf = errbuf, .size = sizeof(errbuf)};
	int status = 0;
	int rc = moat_spawn_run(&sp, input, input ? strlen(input) : 0, &out, &errout, &status, err);

	if (rc == MOAT_ENOENT) {
		return moat_err_set(err, MOAT_ENOENT, "%s: not found in PATH", argv[0]);
	}
	if (rc != 0) {
		moat_err_prefix(err, "%s", argv[0]);
		return rc;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		return 0;
	}
	first_line(errbuf);
	if (WIFSIGNALED(status)) {
		return moat_err_set(err, MOAT_EIO, "%s: killed by signal %d", argv[0],
				    WTERMSIG(status));
	}
	return moat_err_set(err, MOAT_EIO, "%s failed (exit %d)%s%s", argv[0], WEXITSTATUS(status),
			    errbuf[0] ? ": " : "", errbuf);
}

static int load(const struct moat_net_policy *p, bool check_only, struct moat_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc = moat_net_render(p, MOAT_NET_FORMAT_NFT, &text, &len, err);
	if (rc != 0) {
		return rc;
	}
	const char *apply_argv[] = {"nft", "-f", "-", NULL};
	const char *check_argv[] = {"nft", "-c", "-f", "-", NULL};
	rc = net_run(check_only ? check_argv : apply_argv, text, NULL, 0, err);
	free(text);
	return rc;
}

int moat_net_apply(const struct moat_net_policy *p, struct moat_err *err)
{
	return load(p, false, err);
}

int moat_net_check(const struct moat_net_policy *p, struct moat_err *err)
{
	return load(p, true, err);
}

int moat_net_remove(struct moat_err *err)
{
	/* Declaring a table before deleting it makes an absent table no error, in the same
	 * transaction; nothing outside these two tables is named. */
	const char *text = "table inet " MOAT_NET_TABLE "\n"
			   "delete table inet " MOAT_NET_TABLE "\n"
			   "table bridge " MOAT_NET_TABLE "\n"
			   "delete table bridge " MOAT_NET_TABLE "\n";
	const char *argv[] = {"nft", "-f", "-", NULL};
	return net_run(argv, text, NULL, 0, err);
}

int moat_net_isolate_ports(const struct moat_net_policy *p, bool check_only, struct moat_err *err)
{
	for (size_t i = 0; i < p->port_count; i++) {
		const char *name = p->ports[i].name;
		/* A bridge port has a brport directory: anything else would take "isolated"
		 * as an error, or mean the operator named the wrong interface. */
		char path[64];
		snprintf(path, sizeof(path), "/sys/class/net/%s/brport", name);
		if (access(path, F_OK) != 0) {
			return moat_err_set(err, MOAT_ESTATE,
					    "bridge_ports: %s (zone %s) is not a bridge port here",
					    name, p->zones[p->ports[i].zone].name);
		}
		if (check_only) {
			continue;
		}
		const char *argv[] = {"ip",   "link",	      "set",	  "dev", name,
				      "type", "bridge_slave", "isolated", "on",	 NULL};
		int rc = net_run(argv, NULL, NULL, 0, err);
		if (rc != 0) {
			moat_err_prefix(err, "bridge_ports: isolating %s", name);
			return rc;
		}
	}
	return 0;
}
