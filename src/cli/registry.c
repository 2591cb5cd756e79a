/* registry.c: `moat registry migrate --to URL`: a stopped deployment's registry.db copied
 * into PostgreSQL, proven table by table, then moat.conf pointed at it
 * (moat_deploy_registry_migrate). The one check deploy cannot make is here: that neither
 * `moat up` nor a moatd it started runs. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cli.h"
#include "moat/broker_supervisor.h"
#include "moat/fsutil.h"
#include "moat/server.h"
#include "moat/timeutil.h"

static const char registry_usage[] =
	"usage: moat registry migrate --to postgresql://[user@]host[:port]/dbname[?params]\n\n"
	"Copies the deployment's registry.db into an empty PostgreSQL database and proves the\n"
	"copy: for every table, the row count, a SHA-256 over its rows in primary-key order\n"
	"and, where ids are handed out (security events, update events, rollouts, jobs,\n"
	"deletions), the last id, equal on both sides (printed per table; --json). Only then\n"
	"is [registry] url written to moat.conf, and registry.db kept as\n"
	"registry.db.migrated-<UTC time> (0600). The deployment must be stopped (moat down;\n"
	"a moatd started by systemd: stop its unit; every moatd holds run/moatd.lock, which\n"
	"the command takes) and the database must hold no table.\n"
	"The password goes in ~/.pgpass or PGPASSFILE, never in the URL; moatd's account\n"
	"needs it too. On any failure moat.conf and registry.db are left as they were.\n";

/* Whether the deployment runs: `moat up`'s supervisor, or any moatd of it (each holds
 * MOAT_MOATD_LOCK_FILE shared; taken here exclusively, into *ctx, and kept until the
 * command ends, so no moatd starts meanwhile either). */
static int deployment_stopped(const char *dir, void *ctx, struct moat_err *err)
{
	struct moat_broker_state st;
	int rc = moat_broker_state(dir, &st, err);
	if (rc != 0) {
		return rc;
	}
	if (st.running) {
		return moat_err_set(
			err, MOAT_ESTATE,
			"the deployment is running (moat up, supervisor pid %d): stop it "
			"first (moat down)",
			(int)st.supervisor_pid);
	}
	int *lock_fd = ctx;
	if (*lock_fd < 0) {
		char path[PATH_MAX];
		if ((rc = moat_path_join(path, sizeof(path), err, "%s/%s", dir,
					 MOAT_MOATD_LOCK_FILE)) != 0) {
			return rc;
		}
		int fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0) {
			return moat_err_errno(err, MOAT_EIO, errno, "%s", path);
		}
		if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			int e = errno;
			close(fd);
			return e == EWOULDBLOCK
				       ? moat_err_set(err, MOAT_ESTATE,
						      "a moatd of this deployment is running (it "
						      "holds %s): stop it first (moat down, or its "
						      "systemd unit)",
						      MOAT_MOATD_LOCK_FILE)
				       : moat_err_errno(err, MOAT_EIO, e, "%s", path);
		}
		*lock_fd = fd;
	}
	pid_t moatd = moat_server_pid(dir);
	char comm[PATH_MAX];
	char name[32] = "";
	FILE *f = NULL;
	if (moatd > 0 && snprintf(comm, sizeof(comm), "/proc/%d/comm", (int)moatd) > 0 &&
	    (f = fopen(comm, "r")) != NULL) {
		if (!fgets(name, sizeof(name), f)) {
			name[0] = '\0';
		}
		fclose(f);
	}
	if (strncmp(name, "moatd", 5) == 0) {
		return moat_err_set(err, MOAT_ESTATE,
				    "moatd is running (pid %d, %s): stop it first", (int)moatd,
				    MOAT_MOATD_PID_FILE);
	}
	return 0;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static void print_report(const char *url, const struct moat_deploy_migration *m)
{
	const struct moat_registry_sums *a = &m->report.src;
	const struct moat_registry_sums *b = &m->report.dst;
	int64_t rows = 0;
	char ha[65];
	char hb[65];
	if (cli_globals.json) {
		printf("{\"to\":");
		cli_json_string(stdout, url);
		printf(",\"kept\":");
		cli_json_string(stdout, m->kept);
		printf(",\"tables\":[");
	} else {
		printf("%-24s %10s %10s  %-16s  %s\n", "table", "rows", "copied", "sha256",
		       "last id");
	}
	for (size_t i = 0; i < a->count; i++) {
		const struct moat_registry_table_sum *x = &a->tables[i];
		const struct moat_registry_table_sum *y = &b->tables[i];
		hex(x->sha256, sizeof(x->sha256), ha);
		hex(y->sha256, sizeof(y->sha256), hb);
		rows += x->rows;
		if (cli_globals.json) {
			printf("%s{\"table\":", i ? "," : "");
			cli_json_string(stdout, x->table);
			printf(",\"rows\":%lld,\"rows_copy\":%lld,\"sha256\":\"%s\","
			       "\"sha256_copy\":\"%s\"",
			       (long long)x->rows, (long long)y->rows, ha, hb);
			if (x->has_seq) {
				printf(",\"last_id\":%lld,\"last_id_copy\":%lld", (long long)x->seq,
				       (long long)y->seq);
			}
			bool equal = x->rows == y->rows && strcmp(ha, hb) == 0 && x->seq == y->seq;
			printf(",\"equal\":%s}", equal ? "true" : "false");
		} else {
			char seq[48] = "-";
			if (x->has_seq) {
				snprintf(seq, sizeof(seq), "%lld = %lld", (long long)x->seq,
					 (long long)y->seq);
			}
			printf("%-24s %10lld %10lld  %.16s  %s%s\n", x->table, (long long)x->rows,
			       (long long)y->rows, ha, seq, strcmp(ha, hb) == 0 ? "" : "  DIFFERS");
		}
	}
	if (cli_globals.json) {
		printf("],\"rows\":%lld}\n", (long long)rows);
		return;
	}
	printf("registry copied to %s and proven: %zu tables, %lld rows, counts, checksums and "
	       "last ids equal\n",
	       url, a->count, (long long)rows);
	printf("moat.conf: [registry] url = %s\n", url);
	printf("registry.db kept as %s\n", m->kept);
}

static int cmd_migrate(const char *url)
{
	struct moat_err err = {0};
	char dir[PATH_MAX];
	struct moat_deploy_migration *m = calloc(1, sizeof(*m));
	if (!m) {
		moat_err_set(&err, MOAT_ENOMEM, "out of memory");
		return cli_fail(&err);
	}
	int lock_fd = -1; /* run/moatd.lock, exclusive until the end (deployment_stopped) */
	int rc = moat_deploy_locate(cli_globals.dir, dir, sizeof(dir), &err);
	if (rc == 0) {
		rc = moat_deploy_registry_migrate(dir, url, moat_time_now(), deployment_stopped,
						  &lock_fd, m, &err);
	}
	if (lock_fd >= 0) {
		close(lock_fd);
	}
	if (rc != 0) {
		free(m);
		return cli_fail(&err);
	}
	print_report(url, m);
	free(m);
	return CLI_OK;
}

int registry_main(int argc, char **argv)
{
	int st = cli_group_help(argc, argv, registry_usage, true);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	const char *to = NULL;
	const struct moat_opt opts[] = {
		{.name = "to", .kind = MOAT_OPT_STRING, .dst = &to},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = registry_usage, .opts = opts};
	int next = 0;
	st = moat_opts_parse(&spec, argc, argv, 2, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	if (strcmp(argv[1], "migrate") != 0 || next != argc) {
		return cli_usage_error("registry: '%s': usage: moat registry migrate --to URL",
				       argv[1]);
	}
	if (!to) {
		return cli_usage_error("registry migrate: --to URL is required");
	}
	return cmd_migrate(to);
}
