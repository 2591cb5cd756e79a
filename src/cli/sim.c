/* sim.c: `moat sim --devices N [--prefix P] [--interval 10s] [--duration 5m]` (or `moat sim
 * ID...` for named devices, such as the tutorial's three in `make run`): N simulated
 * devices in one process, each the same device code as moat-agent (src/device), connecting
 * to moat.conf's [client] host (or --host). Devices the registry has are reused; devices it
 * lacks are an error (a typo must not make a real identity), unless --create: then they
 * are provisioned first (as `moat device add --prefix P --count N` would, which needs the
 * CA passphrase) and marked simulated in the registry. On a terminal a status line shows
 * creation, then connected devices, messages/s and errors live; elsewhere only the
 * summary is printed. Exit status 1 when devices could not connect: when every device
 * has failed SIM_GIVE_UP_ATTEMPTS times without ever connecting the run stops at once,
 * and at the end any device that tried and never connected is named with the reason.
 * With --firmware IMAGE --envelope FILE (one pair per device type) every device runs
 * signed updates from moatd on virtual A/B slots, provisioned on first use with the
 * release of its type; SIGUSR1 makes every device check for an update now. --fail-trial V
 * simulates a bad release: a trial of version V crashes on every device, which restarts
 * and reverts it by the boot's own rule (to try --halt-on-failure for real). --trial-hold D
 * keeps every device that boots a trial on it, unconfirmed, for D before its health check
 * decides (confirms, or crashes with --fail-trial): a rollout can be paused or aborted while
 * devices are on trial.
 * With --enroll the devices make their own keys and enroll over EST through moatd, as
 * moat-agent does: missing ones are registered as `moat device add ID --enroll` would (no
 * passphrase), their tokens kept in memory; --enroll-only stops once every device is
 * enrolled without connecting to the broker, and the summary gives enrollments/s.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "moat/broker.h"
#include "moat/deploy.h"
#include "moat/est_client.h"
#include "moat/fsutil.h"
#include "moat/log.h"
#include "moat/manifest.h"
#include "moat/registry.h"
#include "moat/session.h"
#include "moat/signals.h"
#include "moat/sim.h"
#include "moat/timeutil.h"

#define SIM_DEVICES_MAX 100000
/* Failed attempts of every device, none ever connected: the run gives up. */
#define SIM_GIVE_UP_ATTEMPTS 3

static volatile int sim_stop;
static volatile sig_atomic_t sim_check_now;

static void on_signal(int sig)
{
	if (sig == SIGUSR1) {
		sim_check_now = 1;
		return;
	}
	sim_stop = 1;
}

struct view {
	struct moat_session **sessions;
	size_t count;
	bool tty;
	bool json;
	int64_t started_ms;
	int64_t deadline_ms; /* 0: until interrupted */
	int64_t last_print_ms;
	uint64_t last_sent;
	size_t peak_up;
	struct moat_loop_stats last;
	struct moat_enroll_pool *enroll; /* NULL: devices do not enroll */
	size_t to_enroll;		 /* devices without an identity at the start */
	bool enroll_only;		 /* stop once they all enrolled */
	bool gave_up;			 /* no device could connect: stopped */
};

/* true when every device has failed SIM_GIVE_UP_ATTEMPTS times and none ever connected. */
static bool none_can_connect(const struct view *v)
{
	for (size_t i = 0; i < v->count; i++) {
		if (moat_session_ever_up(v->sessions[i]) ||
		    moat_session_failures(v->sessions[i]) < SIM_GIVE_UP_ATTEMPTS) {
			return false;
		}
	}
	return v->count > 0;
}

static bool on_tick(const struct moat_loop_stats *st, void *ctx)
{
	struct view *v = ctx;
	int64_t now = moat_time_mono_ms();
	if (sim_check_now) {
		sim_check_now = 0;
		for (size_t i = 0; i < v->count; i++) {
			struct moat_agent_update *u = moat_session_update(v->sessions[i]);
			if (u) {
				moat_agent_update_check_soon(u);
			}
		}
	}
	v->last = *st;
	v->peak_up = st->up_peak;
	/* progress on a terminal only: a log or a pipe gets the summary */
	if (v->tty && !v->json && now - v->last_print_ms >= 1000) {
		double secs = (double)(now - v->last_print_ms) / 1000.0;
		double rate = v->last_print_ms ? (double)(st->telemetry_sent - v->last_sent) / secs
					       : 0.0;
		printf("\r\033[Kconnected %zu/%zu  published %zu  messages/s %.1f  total %llu  "
		       "errors %llu",
		       st->up, st->sessions, st->published, rate,
		       (unsigned long long)st->telemetry_sent, (unsigned long long)st->errors);
		fflush(stdout);
		v->last_print_ms = now;
		v->last_sent = st->telemetry_sent;
	}
	if (v->enroll_only && v->enroll->enrolled >= v->to_enroll) {
		return false;
	}
	if (!v->enroll_only && st->up_peak == 0 && none_can_connect(v)) {
		v->gave_up = true;
		return false;
	}
	return v->deadline_ms == 0 || now < v->deadline_ms;
}

/* How many of ids the registry lacks (*out_missing); without create, any is an error
 * naming the first, so a typo never makes an identity. */
static int check_missing(struct moat_deploy *d, char (*ids)[MOAT_ID_BUF_LEN], size_t n, bool create,
			 size_t *out_missing, struct moat_err *err)
{
	size_t missing = 0;
	const char *first = NULL;
	for (size_t i = 0; i < n; i++) {
		bool exists = false;
		int rc = moat_registry_identity_exists(moat_deploy_registry(d), ids[i], &exists,
						       err);
		if (rc != 0) {
			return rc;
		}
		if (!exists) {
			first = first ? first : ids[i];
			missing++;
		}
	}
	*out_missing = missing;
	if (missing > 0 && !create) {
		return moat_err_set(err, MOAT_ENOENT,
				    "no device %s in the registry%s; moat sim --create makes "
				    "simulated devices (marked so in the registry)",
				    first, missing > 1 ? " (nor some others)" : "");
	}
	return 0;
}

/* Bulk creation's progress, on a terminal only. */
static void create_progress(size_t done, size_t total, void *ctx)
{
	(void)ctx;
	if (done == total || done % 100 == 0) {
		fprintf(stderr, "\r\033[Kmoat: creating simulated devices %zu/%zu", done, total);
		if (done == total) {
			fprintf(stderr, "\n");
		}
	}
}

/* Provisions the ids the registry lacks (all or none), marked simulated; only with
 * create (check_missing). */
static int provision_missing(char (*ids)[MOAT_ID_BUF_LEN], size_t n, const char *type, bool create,
			     struct moat_err *err)
{
	struct moat_deploy *d = NULL;
	struct moat_provision_req *reqs = NULL;
	size_t missing = 0;
	int rc;
	if ((rc = cli_open(MOAT_DEPLOY_READ, &d, err)) != 0 ||
	    (rc = check_missing(d, ids, n, create, &missing, err)) != 0 || missing == 0) {
		goto out;
	}
	reqs = calloc(missing, sizeof(*reqs));
	if (!reqs) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	missing = 0;
	for (size_t i = 0; i < n; i++) {
		bool exists = false;
		if ((rc = moat_registry_identity_exists(moat_deploy_registry(d), ids[i], &exists,
							err)) != 0) {
			goto out;
		}
		if (!exists) {
			reqs[missing++] = (struct moat_provision_req){
				.id = ids[i],
				.role = MOAT_ROLE_DEVICE,
				.device_type = type,
				.key_type = moat_deploy_settings(d)->key_type,
				.simulated = true,
			};
		}
	}
	moat_deploy_close(d);
	d = NULL;
	fprintf(stderr, "moat: creating %zu of %zu simulated devices\n", missing, n);
	if ((rc = cli_open_unlocked(&d, err)) != 0) {
		goto out;
	}
	cli_catch_interrupts();
	if ((rc = moat_deploy_provision(d, reqs, missing,
					isatty(STDERR_FILENO) ? create_progress : NULL, NULL,
					err)) != 0) {
		goto out;
	}
	if ((rc = moat_broker_sync(d, err)) != 0) {
		moat_err_prefix(err, "created, but regenerating the broker policy failed");
	}
out:
	free(reqs);
	moat_deploy_close(d);
	return rc;
}

/* --enroll: registers the ids the registry lacks as devices that enroll themselves, each
 * with a token kept in tokens[i] (in memory only); an existing one must have enrolled in
 * an earlier run (its identity under state_root). *out_missing: how many will enroll. */
static int enroll_missing(char (*ids)[MOAT_ID_BUF_LEN], size_t n, const char *type, bool create,
			  const char *state_root, char (*tokens)[MOAT_ENROLL_TOKEN_BUF_LEN],
			  size_t *out_missing, struct moat_err *err)
{
	struct moat_deploy *d = NULL;
	size_t missing = 0;
	int rc;
	*out_missing = 0;
	if ((rc = cli_open(MOAT_DEPLOY_WRITE, &d, err)) != 0 ||
	    (rc = check_missing(d, ids, n, create, &missing, err)) != 0) {
		moat_deploy_close(d);
		return rc;
	}
	missing = 0;
	cli_catch_interrupts();
	for (size_t i = 0; i < n && rc == 0; i++) {
		bool exists = false;
		char cur[PATH_MAX];
		if ((rc = moat_registry_identity_exists(moat_deploy_registry(d), ids[i], &exists,
							err)) != 0) {
			break;
		}
		if (exists) {
			if ((rc = moat_path_join(cur, sizeof(cur), err, "%s/%s/identity/current",
						 state_root, ids[i])) == 0 &&
			    !moat_fs_exists(cur)) {
				rc = moat_err_set(err, MOAT_ESTATE,
						  "%s exists but has not enrolled in an earlier run "
						  "(its token is gone): use another --prefix",
						  ids[i]);
			}
			continue;
		}
		if (missing == 0) {
			fprintf(stderr, "moat: registering simulated devices to enroll\n");
		}
		struct moat_enroll_add_req req = {.id = ids[i],
						  .device_type = type,
						  .token = true,
						  .simulated = true};
		rc = moat_deploy_enroll_add(d, &req, tokens[i], err);
		missing++;
		if (moat_deploy_interrupted) {
			rc = moat_err_set(err, MOAT_EINTR, "interrupted");
		}
	}
	if (rc == 0 && missing > 0 && (rc = moat_broker_sync(d, err)) != 0) {
		moat_err_prefix(err, "registered, but regenerating the broker policy failed");
	}
	moat_deploy_close(d);
	*out_missing = missing;
	return rc;
}

/* The devices are named (names[0..named-1]) or numbered (prefix-000001.. *n): checks the
 * names, or the longest numbered one; *n becomes the device count. CLI_OK or the usage
 * error's code. */
static int check_devices(char **names, size_t named, const char *prefix, const char *usage,
			 int64_t *n)
{
	struct moat_err err = {0};
	if ((named == 0) == (*n == 0)) {
		return cli_usage_error("%s", usage);
	}
	if (named > 0) {
		if (named > SIM_DEVICES_MAX) {
			return cli_usage_error("at most %d devices", SIM_DEVICES_MAX);
		}
		for (size_t i = 0; i < named; i++) {
			if (moat_identity_name_check(names[i], &err) != 0) {
				return cli_usage_error("%s", err.msg);
			}
		}
		*n = (int64_t)named;
	} else {
		char longest[MOAT_ID_BUF_LEN + 16];
		snprintf(longest, sizeof(longest), "%s-%06lld", prefix, (long long)*n);
		if (moat_identity_name_check(longest, &err) != 0) {
			return cli_usage_error("--prefix: %s", err.msg);
		}
	}
	return CLI_OK;
}

/* What one run simulates, from the command line (checked). */
struct sim_run {
	char **names; /* count names, or NULL: prefix-000001... */
	size_t count;
	const char *prefix;
	const char *type; /* for devices the registry lacks; NULL: the default */
	int64_t interval_s, duration_s;
	const struct moat_sim_firmware *fw; /* NULL: no updates */
	bool enroll, enroll_only;
	int64_t enroll_jobs;
	bool create;	  /* devices the registry lacks are created (simulated) */
	const char *host; /* NULL: moat.conf's [client] host */
};

/* After the run: devices that tried and never connected fail it, naming the first and
 * why. CLI_OK, or CLI_FAIL having said so. */
static int connect_verdict(const struct view *v, char (*ids)[MOAT_ID_BUF_LEN])
{
	size_t never = 0, first = 0;
	for (size_t i = 0; i < v->count; i++) {
		const struct moat_session *s = v->sessions[i];
		if (!moat_session_ever_up(s) && moat_session_failure(s)[0]) {
			first = never == 0 ? i : first;
			never++;
		}
	}
	if (never == 0 || v->enroll_only) {
		return CLI_OK;
	}
	fprintf(stderr, "moat: sim: %s%zu of %zu devices could not connect; %s: %s\n",
		v->gave_up ? "stopped: " : "", never, v->count, ids[first],
		moat_session_failure(v->sessions[first]));
	return CLI_FAIL;
}

/* The device ids of the run (names checked by check_devices, so they fit). */
static void fill_ids(const struct sim_run *r, char (*ids)[MOAT_ID_BUF_LEN])
{
	for (size_t i = 0; i < r->count; i++) {
		char name[MOAT_ID_BUF_LEN + 32];
		if (r->names) {
			snprintf(name, sizeof(name), "%s", r->names[i]);
		} else {
			snprintf(name, sizeof(name), "%s-%06lld", r->prefix, (long long)(i + 1));
		}
		snprintf(ids[i], sizeof(ids[i]), "%.*s", MOAT_ID_MAX_LEN, name);
	}
}

/* The final numbers, after the devices said offline. */
static void print_summary(const struct view *v, struct moat_session **ss, size_t n)
{
	uint64_t sent = 0, errors = 0;
	size_t published = 0;
	for (size_t i = 0; i < n; i++) {
		const struct moat_device_stats *ds = moat_session_device_stats(ss[i]);
		sent += ds->telemetry_sent;
		errors += ds->errors + moat_session_failures(ss[i]);
		published += ds->telemetry_sent > 0;
	}
	double secs = (double)(moat_time_mono_ms() - v->started_ms) / 1000.0;
	const struct moat_enroll_pool *ep = v->enroll;
	double esecs = ep && ep->last_ms > ep->first_ms
			       ? (double)(ep->last_ms - ep->first_ms) / 1000.0
			       : 0.0;
	double erate = esecs > 0 ? (double)ep->enrolled / esecs : 0.0;
	if (ep && v->json) {
		printf("{\"devices\":%lld,\"enrolled\":%llu,\"enroll_failed\":%llu,"
		       "\"renewed\":%llu,\"enroll_seconds\":%.3f,\"enrollments_per_s\":%.1f,"
		       "\"connected_peak\":%zu,\"published\":%zu,\"messages\":%llu,"
		       "\"errors\":%llu,\"seconds\":%.1f}\n",
		       (long long)n, (unsigned long long)ep->enrolled,
		       (unsigned long long)ep->failed, (unsigned long long)ep->renewed, esecs,
		       erate, v->peak_up, published, (unsigned long long)sent,
		       (unsigned long long)errors, secs);
		return;
	}
	if (ep) {
		printf("%ssim: %llu devices enrolled over EST in %.3f s (%.1f/s), %llu failed "
		       "attempts, %llu renewed\n",
		       v->tty ? "\r\033[K" : "", (unsigned long long)ep->enrolled, esecs, erate,
		       (unsigned long long)ep->failed, (unsigned long long)ep->renewed);
	}
	if (v->json) {
		printf("{\"devices\":%lld,\"connected_peak\":%zu,\"published\":%zu,"
		       "\"messages\":%llu,\"errors\":%llu,\"seconds\":%.1f}\n",
		       (long long)n, v->peak_up, published, (unsigned long long)sent,
		       (unsigned long long)errors, secs);
	} else {
		printf("%ssim: %lld devices, %zu connected at peak, %zu published, %llu messages "
		       "acknowledged, %llu errors, %.1f s\n",
		       v->tty ? "\r\033[K" : "", (long long)n, v->peak_up, published,
		       (unsigned long long)sent, (unsigned long long)errors, secs);
	}
}

/* Provisions what the registry lacks, creates the sessions and runs them until the
 * duration is over or the user interrupts; prints the summary. */
static int run_sim(const struct sim_run *r, struct moat_agent_update_pool *pool)
{
	struct moat_err err = {0};
	char(*ids)[MOAT_ID_BUF_LEN] = calloc(r->count, sizeof(*ids));
	struct moat_session **ss = NULL;
	struct moat_deploy *d = NULL;
	char(*tokens)[MOAT_ENROLL_TOKEN_BUF_LEN] = NULL;
	const char **token_ptrs = NULL;
	int rc = -1; /* -1: failed, err says why */
	if (!ids) {
		moat_err_set(&err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	fill_ids(r, ids);
	char state_root[PATH_MAX];
	struct moat_enroll_pool epool = {.max = (unsigned)r->enroll_jobs};
	size_t to_enroll = 0;
	if (r->enroll) {
		if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0 ||
		    moat_deploy_path(d, state_root, sizeof(state_root), "run/sim", &err) != 0) {
			goto out;
		}
		moat_deploy_close(d);
		d = NULL;
		tokens = calloc(r->count, sizeof(*tokens));
		token_ptrs = calloc(r->count, sizeof(*token_ptrs));
		if (!tokens || !token_ptrs) {
			moat_err_set(&err, MOAT_ENOMEM, "out of memory");
			goto out;
		}
		if (enroll_missing(ids, r->count, r->type, r->create, state_root, tokens,
				   &to_enroll, &err) != 0) {
			goto out;
		}
		for (size_t i = 0; i < r->count; i++) {
			token_ptrs[i] = tokens[i][0] ? tokens[i] : NULL;
		}
	} else if (provision_missing(ids, r->count, r->type, r->create, &err) != 0) {
		goto out;
	}
	const struct moat_sim_enroll en = {
		.tokens = (const char *const *)token_ptrs,
		.pool = &epool,
		.no_connect = r->enroll_only,
	};

	/* before the devices are created (which takes a while for many): a SIGUSR1 meant
	 * for them must not end the simulator */
	moat_signals_catch(on_signal, SIGUSR1);

	moat_log_init("moat-sim", MOAT_LOG_WARN, false);
	moat_session_lib_init();
	if (cli_open(MOAT_DEPLOY_READ, &d, &err) != 0 ||
	    moat_deploy_path(d, state_root, sizeof(state_root), "run/sim", &err) != 0 ||
	    moat_sim_create(d, ids, r->count, r->host, r->interval_s * 1000, state_root, r->fw,
			    pool, r->enroll ? &en : NULL, &ss, &err) != 0) {
		goto out;
	}
	moat_deploy_close(d);
	d = NULL;

	struct view v = {
		.sessions = ss,
		.count = r->count,
		.tty = isatty(STDOUT_FILENO),
		.json = cli_globals.json,
		.started_ms = moat_time_mono_ms(),
		.enroll = r->enroll ? &epool : NULL,
		.to_enroll = to_enroll,
		.enroll_only = r->enroll_only,
	};
	if (r->duration_s > 0) {
		v.deadline_ms = v.started_ms + r->duration_s * 1000;
	}
	if (moat_loop_run(ss, r->count, &sim_stop, on_tick, &v, NULL, &err) != 0) {
		goto out;
	}
	print_summary(&v, ss, r->count);
	rc = connect_verdict(&v, ids);
out:
	if (rc < 0) {
		rc = cli_fail(&err);
	}
	moat_sim_free(ss, ss ? r->count : 0);
	moat_deploy_close(d);
	if (tokens) {
		OPENSSL_cleanse(tokens, r->count * sizeof(*tokens));
	}
	free(tokens);
	free(token_ptrs);
	free(ids);
	moat_est_cleanup();
	return rc;
}

static int parse_interval(void *dst, const char *value, struct moat_err *err)
{
	return cli_opt_seconds("--interval", value, MOAT_MSG_UPDATE_INTERVAL_MIN,
			       MOAT_MSG_UPDATE_INTERVAL_MAX, dst, err);
}

static int parse_duration(void *dst, const char *value, struct moat_err *err)
{
	return cli_opt_seconds("--duration", value, 1, INT32_MAX, dst, err);
}

static int parse_trial_hold(void *dst, const char *value, struct moat_err *err)
{
	int64_t ms = 0;
	if (moat_duration_ms_parse(value, &ms, err) != 0) {
		moat_err_prefix(err, "--trial-hold");
		return MOAT_EINVAL;
	}
	if (ms < 1 || ms > MOAT_AGENT_TRIAL_HOLD_MAX_MS) {
		return moat_err_set(err, MOAT_EINVAL,
				    "--trial-hold: '%s' is not from 1ms to %ds (a trial's "
				    "deadline is %ds)",
				    value, MOAT_AGENT_TRIAL_HOLD_MAX_MS / 1000,
				    MOAT_BOOT_TRIAL_SECONDS_DEFAULT);
	}
	*(int64_t *)dst = ms;
	return 0;
}

static int parse_type(void *dst, const char *value, struct moat_err *err)
{
	if (moat_device_type_check(value, err) != 0) {
		moat_err_prefix(err, "--type");
		return MOAT_EINVAL;
	}
	*(const char **)dst = value;
	return 0;
}

int sim_main(int argc, char **argv)
{
	const char *usage = "usage: moat sim --devices N [--prefix P] | ID... ; [--create] "
			    "[--interval 10s] [--duration D] [--type T] [--host H] [--json]\n"
			    "       [--firmware IMAGE --envelope FILE]... [--update-jobs 4] "
			    "[--fail-trial VERSION] [--trial-hold 5s]\n"
			    "       [--enroll [--enroll-only] [--enroll-jobs 16]]";
	int64_t n = 0, interval_s = 10, duration_s = 0;
	const char *prefix = "sim";
	const char *type = NULL;
	struct moat_sim_firmware fw = {0};
	struct moat_agent_update_pool pool = {0};
	int64_t jobs = MOAT_SIM_MAX_CHECKS_DEFAULT, enroll_jobs = 16;
	bool enroll = false, enroll_only = false, create = false;
	const char *host = NULL;
	struct moat_opt_list images = {.items = fw.image, .max = MOAT_SIM_FIRMWARE_MAX};
	struct moat_opt_list envelopes = {.items = fw.envelope, .max = MOAT_SIM_FIRMWARE_MAX};
	const struct moat_opt opts[] = {
		{.name = "devices",
		 .kind = MOAT_OPT_INT,
		 .dst = &n,
		 .min = 1,
		 .max = SIM_DEVICES_MAX},
		{.name = "prefix", .kind = MOAT_OPT_STRING, .dst = &prefix},
		{.name = "interval", .kind = MOAT_OPT_FN, .dst = &interval_s, .fn = parse_interval},
		{.name = "duration", .kind = MOAT_OPT_FN, .dst = &duration_s, .fn = parse_duration},
		{.name = "type", .kind = MOAT_OPT_FN, .dst = &type, .fn = parse_type},
		{.name = "firmware", .kind = MOAT_OPT_LIST, .dst = &images},
		{.name = "envelope", .kind = MOAT_OPT_LIST, .dst = &envelopes},
		{.name = "update-jobs", .kind = MOAT_OPT_INT, .dst = &jobs, .min = 1, .max = 64},
		{.name = "fail-trial", .kind = MOAT_OPT_STRING, .dst = &fw.fail_trial},
		{.name = "trial-hold",
		 .kind = MOAT_OPT_FN,
		 .dst = &fw.trial_hold_ms,
		 .fn = parse_trial_hold},
		{.name = "enroll", .kind = MOAT_OPT_FLAG, .dst = &enroll},
		{.name = "create", .kind = MOAT_OPT_FLAG, .dst = &create},
		{.name = "host", .kind = MOAT_OPT_STRING, .dst = &host},
		{.name = "enroll-only", .kind = MOAT_OPT_FLAG, .dst = &enroll_only},
		{.name = "enroll-jobs",
		 .kind = MOAT_OPT_INT,
		 .dst = &enroll_jobs,
		 .min = 1,
		 .max = 1024},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = usage, .opts = opts,
					    .error_line = usage};
	int next;
	int ost = moat_opts_parse(&spec, argc, argv, 1, &next);
	if (ost != MOAT_OPTS_CONTINUE) {
		return ost;
	}
	size_t n_images = images.count, n_envelopes = envelopes.count;
	if (n_images != n_envelopes) {
		return cli_usage_error("--firmware and --envelope go together, one of each per "
				       "device type");
	}
	fw.count = n_images;
	fw.max_checks = (unsigned)jobs;
	if (fw.fail_trial) {
		struct moat_err err = {0};
		if (n_images == 0) {
			return cli_usage_error("--fail-trial goes with --firmware and --envelope");
		}
		if (moat_semver_check(fw.fail_trial, &err) != 0) {
			return cli_usage_error("--fail-trial: %s", err.msg);
		}
	}
	if (fw.trial_hold_ms > 0 && n_images == 0) {
		return cli_usage_error("--trial-hold goes with --firmware and --envelope");
	}
	/* Devices are either named (moat sim ID...) or numbered (--devices N: P-000001...). */
	size_t named = (size_t)(argc - next);
	int rc = check_devices(argv + next, named, prefix, usage, &n);
	if (rc != CLI_OK) {
		return rc;
	}
	const struct sim_run run = {
		.names = named > 0 ? argv + next : NULL,
		.count = (size_t)n,
		.prefix = prefix,
		.type = type,
		.interval_s = interval_s,
		.duration_s = duration_s,
		.fw = fw.count ? &fw : NULL,
		.enroll = enroll || enroll_only,
		.enroll_only = enroll_only,
		.enroll_jobs = enroll_jobs,
		.create = create,
		.host = host,
	};
	return run_sim(&run, &pool);
}
