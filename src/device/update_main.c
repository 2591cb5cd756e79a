/* update_main.c: moat-update, one update check from the command line, and the child that
 * moat-agent and moat sim run for theirs (--report): moat_update_check with the device's
 * certificate.
 *
 *   moat-update --state DIR --server https://HOST:PORT --ca CA --cert CERT --key KEY
 *               [--timeout SECONDS] [--now EPOCH-SECONDS] [--report [--probe]]
 * (--now sets the device's clock for the decision, as a device with a wrong clock would)
 * --probe checks only that this updater can serve the device (it speaks --report, the
 * state directory and trust file load, the certificate and key are readable) and reports
 * up_to_date without contacting the server: a new agent image on trial runs it before it
 * confirms, so an image that could not update itself again is reverted.
 * In --report mode moat-update ends when the process that started it ends.
 *
 * Exit 0 when up to date, staged (then restart through moat-boot) or a trial is pending;
 * 1 when the update was refused or the check failed: without --report with one line on
 * stderr, with --report as the outcome line. --report prints the lines of
 * moat_update_report_format on stdout (a "downloading" line when the image download
 * starts, then the outcome line, each flushed: stdout is usually a pipe).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "moat/log.h"
#include "moat/opts.h"
#include "moat/timeutil.h"
#include "moat/update.h"

static const char *const outcome_names[] = {"up_to_date", "staged", "refused", "trial_pending"};

/* Makes s printable for a report line: control bytes and anything that is not plain ASCII
 * become '?' (messages come from libraries, paths and the server). */
static void plain(char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c >= 0x7f) {
			*s = '?';
		}
	}
}

/* Prints r as one report line and flushes. A message that does not fit the line (escaped
 * quotes can double it) is shortened until it does. */
static int print_report(struct moat_update_report *r)
{
	char line[MOAT_UPDATE_REPORT_MAX_BYTES + 1];
	struct moat_err err;
	size_t len = 0;

	plain(r->res.msg);
	plain(r->res.version);
	for (;;) {
		if (moat_update_report_format(r, line, sizeof(line), &len, &err) == 0) {
			break;
		}
		size_t n = strlen(r->res.msg);
		if (n == 0) {
			fprintf(stderr, "moat-update: %s\n", err.msg);
			return -1;
		}
		r->res.msg[n / 2] = '\0';
	}
	if (fwrite(line, 1, len, stdout) != len || fflush(stdout) != 0) {
		return -1;
	}
	return 0;
}

static void on_download(void *ctx, const struct moat_manifest *m, uint64_t offset)
{
	struct moat_update_report r;

	(void)ctx;
	memset(&r, 0, sizeof(r));
	r.kind = MOAT_UPDATE_REPORT_DOWNLOADING;
	snprintf(r.res.version, sizeof(r.res.version), "%s", m->version);
	r.offset = offset;
	r.size = m->size;
	(void)print_report(&r);
}

/* The outcome as the last report line; the exit status as without --report. */
static int report_outcome(int rc, const struct moat_update_result *res, const struct moat_err *err)
{
	struct moat_update_report r;

	memset(&r, 0, sizeof(r));
	if (rc != 0) {
		r.kind = MOAT_UPDATE_REPORT_FAILED;
		snprintf(r.res.msg, sizeof(r.res.msg), "%s", err->msg);
	} else {
		r.kind = MOAT_UPDATE_REPORT_OUTCOME;
		r.res = *res;
	}
	if (print_report(&r) != 0) {
		return 1;
	}
	return rc != 0 || res->outcome == MOAT_UPDATE_REFUSED ? 1 : 0;
}

/* --probe: what a check needs locally, without the server. */
static int probe(const struct moat_update_conf *conf, struct moat_update_result *res,
		 struct moat_err *err)
{
	struct moat_boot_state st;
	struct moat_fw_trust trust;
	int rc = moat_slots_load(conf->state_dir, &st, err);

	memset(res, 0, sizeof(*res));
	if (rc == 0) {
		rc = moat_slots_trust(conf->state_dir, &trust, err);
		if (rc == 0) {
			moat_fw_trust_free(&trust);
		}
	}
	const char *files[] = {conf->ca_file, conf->cert_file, conf->key_file};
	for (size_t i = 0; rc == 0 && i < sizeof(files) / sizeof(files[0]); i++) {
		int fd = open(files[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "%s", files[i]);
		} else {
			close(fd);
		}
	}
	if (rc == 0) {
		res->outcome = MOAT_UPDATE_UP_TO_DATE;
		snprintf(res->msg, sizeof(res->msg), "moat-update %s: ready", MOAT_VERSION);
	}
	return rc;
}

static const char usage[] =
	"usage: moat-update --state DIR --server https://HOST:PORT --ca CA --cert CERT --key KEY\n"
	"                   [--timeout S] [--now T] [--report [--probe]]\n"
	"One update check: asks moatd at --server (mutual TLS with the device's certificate)\n"
	"for the device's release, and stages a verified image in the A/B slots of --state\n"
	"for moat-boot to start on trial. Exit 0 when up to date, staged or a trial is\n"
	"pending, 1 when the update was refused or the check failed, 2 on bad usage.\n"
	"  --state DIR       the slots' state directory (moat-boot --state)\n"
	"  --server URL      moatd's https:// URL\n"
	"  --ca CA           the deployment CA that moatd's certificate must chain to\n"
	"  --cert CERT       the device's certificate;  --key KEY  its key\n"
	"  --timeout S       bound on the whole check (a duration, 1s..1d)\n"
	"  --now T           the device's clock for the decision (epoch seconds)\n"
	"  --report          the agent's mode: report lines on stdout\n"
	"  --probe           with --report: check only that this updater can serve the device\n"
	"  --help            this text;  --version  the version\n";

static int parse_timeout(void *dst, const char *value, struct moat_err *err)
{
	int64_t v = 0;
	if (moat_duration_parse(value, 1, &v, err) != 0 || v < 1 || v > 86400) {
		return moat_err_set(err, MOAT_EINVAL, "--timeout: 1s..1d");
	}
	*(long *)dst = (long)v;
	return 0;
}

int main(int argc, char **argv)
{
	bool report = false;
	bool probe_only = false;
	struct moat_update_conf conf;
	struct moat_update_result res;
	struct moat_err err;

	memset(&conf, 0, sizeof(conf));
	const struct moat_opt opts[] = {
		{.name = "state", .kind = MOAT_OPT_STRING, .dst = &conf.state_dir},
		{.name = "server", .kind = MOAT_OPT_STRING, .dst = &conf.server_url},
		{.name = "ca", .kind = MOAT_OPT_STRING, .dst = &conf.ca_file},
		{.name = "cert", .kind = MOAT_OPT_STRING, .dst = &conf.cert_file},
		{.name = "key", .kind = MOAT_OPT_STRING, .dst = &conf.key_file},
		{.name = "timeout",
		 .kind = MOAT_OPT_FN,
		 .dst = &conf.timeout_seconds,
		 .fn = parse_timeout},
		{.name = "now",
		 .kind = MOAT_OPT_INT,
		 .dst = &conf.now,
		 .min = 1,
		 .max = MOAT_FW_INT_MAX},
		{.name = "report", .kind = MOAT_OPT_FLAG, .dst = &report},
		{.name = "probe", .kind = MOAT_OPT_FLAG, .dst = &probe_only},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{.name = "version", .kind = MOAT_OPT_HELP, .text = "moat-update " MOAT_VERSION "\n"},
		{0},
	};
	const struct moat_opts_spec spec = {.prog = "moat-update",
					    .usage = usage,
					    .opts = opts,
					    .on_error = MOAT_OPTS_ERROR_QUIET};
	int next;

	moat_log_init("moat-update", MOAT_LOG_INFO, false);
	int st = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	if (next != argc || (probe_only && !report) || conf.state_dir == NULL ||
	    conf.server_url == NULL || conf.ca_file == NULL || conf.cert_file == NULL ||
	    conf.key_file == NULL) {
		fputs(usage, stderr);
		return 2;
	}
	if (strncmp(conf.server_url, "https://", 8) != 0 ||
	    strlen(conf.server_url) > MOAT_UPDATE_URL_MAX_LEN) {
		fprintf(stderr, "moat-update: --server: an https:// URL is required\n");
		return 2;
	}
	if (report) {
		/* a check whose agent is gone holds the state lock for nothing */
		pid_t parent = getppid();
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) {
			return 1;
		}
		conf.on_download = on_download;
		int rc = probe_only ? probe(&conf, &res, &err)
				    : moat_update_check(&conf, &res, &err);
		return report_outcome(rc, &res, &err);
	}
	if (moat_update_check(&conf, &res, &err) != 0) {
		fprintf(stderr, "moat-update: %s\n", err.msg);
		return 1;
	}
	if (res.outcome == MOAT_UPDATE_REFUSED) {
		fprintf(stderr, "moat-update: %s\n", res.msg);
		return 1;
	}
	printf("%s: %s\n", outcome_names[res.outcome], res.msg);
	return 0;
}
