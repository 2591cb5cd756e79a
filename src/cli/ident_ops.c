/* ident_ops.c: add, list, show, revoke, renew and export of identities, for `moat device`
 * and `moat identity` (see ident_ops.h). The deployment module does the work; this file
 * parses options, prints results and calls moat_broker_sync after every change. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "ident_ops.h"
#include "moat/broker.h"
#include "moat/fsutil.h"
#include "moat/registry.h"
#include "moat/release.h"
#include "moat/secevent.h"
#include "moat/timeutil.h"

/* Room for the longest usage line ("moat identity revoke ID [--reason ...]", 100 bytes). */
#define USAGE_LINE_MAX 160

/* The options of every subcommand; parse_opts refuses those a subcommand does not take. */
struct ident_opts {
	const char *type;
	const char *prefix;
	const char *reason;
	const char *out;
	const char *format;
	const char *password_file;
	const char *role;
	bool force;
	const char *csr;
	const char *claim_cn;
	bool enroll;
	int64_t token_ttl;
	int64_t count;
	int64_t days;
	bool key_type_set;
	enum moat_key_type key_type;
	int next; /* argv index of the first operand */
};

static int parse_token_ttl(void *dst, const char *value, struct moat_err *err)
{
	int64_t v = 0;
	int rc = moat_duration_parse(value, 3600, &v, err);
	if (rc != 0) {
		return rc;
	}
	if (v < 60 || v > MOAT_ENROLL_TOKEN_TTL_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "1 minute to %d days",
				    MOAT_ENROLL_TOKEN_TTL_MAX / 86400);
	}
	*(int64_t *)dst = v;
	return 0;
}

static int parse_key_type(void *dst, const char *value, struct moat_err *err)
{
	struct ident_opts *o = dst;
	if (cli_opt_key_type(&o->key_type, value, err) != 0) {
		return MOAT_EINVAL;
	}
	o->key_type_set = true;
	return 0;
}

/* Parses the options of a subcommand taking those whose letter is in allowed (t: type,
 * p: prefix, c: count, d: days, k: key-type, r: reason, o: out, f: format, P: password-file,
 * R: role, F: force, s: csr, e: enroll, T: token-ttl, C: claim-cn); any other is a usage
 * error. Returns 0, -1 after --help (exit 0), or a usage status. */
static int parse_opts(int argc, char **argv, const char *allowed, struct ident_opts *o,
		      const char *usage_line)
{
	const struct {
		char code;
		struct moat_opt opt;
	} all[] = {
		{'t', {.name = "type", .kind = MOAT_OPT_STRING, .dst = &o->type}},
		{'p', {.name = "prefix", .kind = MOAT_OPT_STRING, .dst = &o->prefix}},
		{'c',
		 {.name = "count",
		  .kind = MOAT_OPT_INT,
		  .dst = &o->count,
		  .min = 1,
		  .max = MOAT_BULK_MAX}},
		{'d',
		 {.name = "days", .kind = MOAT_OPT_INT, .dst = &o->days, .min = 1, .max = 36500}},
		{'k', {.name = "key-type", .kind = MOAT_OPT_FN, .dst = o, .fn = parse_key_type}},
		{'r', {.name = "reason", .kind = MOAT_OPT_STRING, .dst = &o->reason}},
		{'o', {.name = "out", .kind = MOAT_OPT_STRING, .dst = &o->out}},
		{'f', {.name = "format", .kind = MOAT_OPT_STRING, .dst = &o->format}},
		{'P', {.name = "password-file", .kind = MOAT_OPT_STRING, .dst = &o->password_file}},
		{'R', {.name = "role", .kind = MOAT_OPT_STRING, .dst = &o->role}},
		{'F', {.name = "force", .kind = MOAT_OPT_FLAG, .dst = &o->force}},
		{'s', {.name = "csr", .kind = MOAT_OPT_STRING, .dst = &o->csr}},
		{'e', {.name = "enroll", .kind = MOAT_OPT_FLAG, .dst = &o->enroll}},
		{'T',
		 {.name = "token-ttl",
		  .kind = MOAT_OPT_FN,
		  .dst = &o->token_ttl,
		  .fn = parse_token_ttl}},
		{'C', {.name = "claim-cn", .kind = MOAT_OPT_STRING, .dst = &o->claim_cn}},
	};
	enum { N_OPTS = sizeof(all) / sizeof(all[0]) };
	struct moat_opt opts[N_OPTS + 2];
	char usage[256];
	memset(o, 0, sizeof(*o));
	memset(opts, 0, sizeof(opts));
	for (size_t i = 0; i < N_OPTS; i++) {
		opts[i] = all[i].opt;
		if (!strchr(allowed, all[i].code)) {
			/* still known to getopt, so refused with the usage line alone */
			opts[i].kind = all[i].opt.kind == MOAT_OPT_FLAG ? MOAT_OPT_FN_FLAG
									: MOAT_OPT_FN;
			opts[i].fn = cli_opt_refuse;
		}
	}
	opts[N_OPTS] = (struct moat_opt){.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'};
	snprintf(usage, sizeof(usage), "usage: %s", usage_line);
	/* device add's usage is two lines, both printed for bad usage */
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = usage, .opts = opts,
					    .error_line = usage};
	int st = moat_opts_parse(&spec, argc, argv, 1, &o->next);
	if (st == MOAT_OPTS_CONTINUE) {
		return 0;
	}
	return st == CLI_OK ? -1 : st;
}

/* The one positional argument ID; anything else is a usage error. */
static int one_id(int argc, char **argv, int next, const char *usage_line, const char **out_id)
{
	if (next != argc - 1) {
		return cli_usage_error("usage: %s", usage_line);
	}
	*out_id = argv[next];
	return 0;
}

/* Loads id and checks that it belongs to the scope (device commands act on devices only). */
static int scoped_identity(const struct ident_scope *scope, struct moat_deploy *d, const char *id,
			   struct moat_identity *out, struct moat_err *err)
{
	int rc = moat_identity_name_check(id, err);
	if (rc != 0) {
		return rc;
	}
	rc = moat_registry_identity_get(moat_deploy_registry(d), id, out, err);
	if (rc == MOAT_ENOENT) {
		struct moat_deletion del;
		if (moat_registry_deletion_last(moat_deploy_registry(d), id, &del, NULL) == 0) {
			char at[MOAT_TIME_ISO_LEN];
			moat_time_iso(del.deleted_at, at);
			return moat_err_set(err, MOAT_ENOENT,
					    "%s '%s' not found: deleted %s (certificate %s revoked, "
					    "kept in the CRL%s)",
					    scope->group, id, at,
					    del.last_serial_hex[0] ? del.last_serial_hex : "-",
					    moat_identity_reserved(id)
						    ? "; a throwaway identity of moat audit --live"
						    : "");
		}
		return moat_err_set(err, MOAT_ENOENT, "%s '%s' not found", scope->group, id);
	}
	if (rc != 0) {
		return rc;
	}
	if (scope->role >= 0 && (int)out->role != scope->role) {
		return moat_err_set(err, MOAT_EINVAL, "'%s' is a %s, not a %s (use moat identity)",
				    id, moat_role_name(out->role), moat_role_name(scope->role));
	}
	return 0;
}

/* A command on one identity (show, revoke, renew, export): its options and ID, then the
 * open deployment and the identity's row. */
struct one_ident {
	struct ident_opts o;
	const char *id;
	struct moat_deploy *d;
	struct moat_identity ident;
	struct moat_err err;
};

/* Starts a command on one identity: parses the options in allowed and the one ID, runs check
 * (usage checks of the options before anything is opened: 0 or a usage status; NULL: none;
 * check_ctx is passed on), opens the deployment (unlocked: for writing, with the CA key) and
 * loads the identity in scope. Returns MOAT_OPTS_CONTINUE with c->d open, or the exit status
 * to return now with nothing open. */
static int one_begin(const struct ident_scope *scope, int argc, char **argv, const char *allowed,
		     const char *usage_line, bool unlocked,
		     int (*check)(const struct ident_opts *o, void *ctx), void *check_ctx,
		     struct one_ident *c)
{
	memset(c, 0, sizeof(*c));
	int rc = parse_opts(argc, argv, allowed, &c->o, usage_line);
	if (rc == 0) {
		rc = one_id(argc, argv, c->o.next, usage_line, &c->id);
	}
	if (rc == 0 && check) {
		rc = check(&c->o, check_ctx);
	}
	if (rc != 0) {
		return rc < 0 ? CLI_OK : rc;
	}
	rc = unlocked ? cli_open_unlocked(&c->d, &c->err)
		      : cli_open(MOAT_DEPLOY_READ, &c->d, &c->err);
	if (rc == 0 && (rc = scoped_identity(scope, c->d, c->id, &c->ident, &c->err)) == 0 &&
	    unlocked) {
		/* a certificate the root signed (before the issuing CA) is revoked in the
		 * root's CRL: that takes the passphrase */
		bool needs = false;
		if ((rc = moat_deploy_revoking_needs_root(c->d, c->id, &needs, &c->err)) == 0 &&
		    needs) {
			rc = cli_unlock_root(c->d, &c->err);
		}
	}
	if (rc != 0 && c->d) {
		moat_deploy_close(c->d);
		c->d = NULL;
	}
	return rc != 0 ? cli_fail(&c->err) : MOAT_OPTS_CONTINUE;
}

/* Ends a command on one identity: closes the deployment; the exit status for rc (the error
 * printed when it is not 0). */
static int one_end(struct one_ident *c, int rc)
{
	moat_deploy_close(c->d);
	c->d = NULL;
	return rc != 0 ? cli_fail(&c->err) : CLI_OK;
}

/* After a change on the deployment: regenerates the broker's policy; on failure the message
 * says what was done (done_prefix) and what failed. */
static int sync_after(struct one_ident *c, const char *done_prefix)
{
	int rc = moat_broker_sync(c->d, &c->err);
	if (rc != 0) {
		moat_err_prefix(&c->err, "%s", done_prefix);
	}
	return rc;
}

/* The --json answer of a change on one identity: {"result": done, "id": id, ...}; extra
 * (may be NULL) is more members, already JSON, from moat's own values. */
static void result_json(const char *done, const char *id, const char *extra)
{
	printf("{\"result\":\"%s\",\"id\":", done);
	cli_json_string(stdout, id);
	printf("%s%s}\n", extra && *extra ? "," : "", extra ? extra : "");
}

struct progress_state {
	bool tty;
	int last_percent;
	int64_t started_ms;
};

static void on_progress(size_t done, size_t total, void *ctx)
{
	struct progress_state *p = ctx;
	if (!p->tty) {
		return;
	}
	int percent = (int)(done * 100 / total);
	if (percent == p->last_percent && done != total) {
		return;
	}
	p->last_percent = percent;
	int width = 40;
	int filled = percent * width / 100;
	double secs = (double)(moat_time_mono_ms() - p->started_ms) / 1000.0;
	fprintf(stderr, "\r[%.*s%*s] %3d%% %zu/%zu %.0f/s", filled,
		"########################################", width - filled, "", percent, done,
		total, secs > 0 ? (double)done / secs : 0.0);
	if (done == total) {
		fputc('\n', stderr);
	}
	fflush(stderr);
}

/* Reads and checks the CSR of path (PEM or DER): the one-line error names the file. */
static int read_csr(const char *path, struct moat_csr **out, struct moat_err *err)
{
	char *data = NULL;
	size_t len = 0;
	int rc = moat_fs_read_all(path, MOAT_CSR_MAX_BYTES, &data, &len, err);
	if (rc == 0) {
		rc = moat_csr_parse((const unsigned char *)data, len, out, err);
	}
	free(data);
	if (rc != 0) {
		moat_err_prefix(err, "%s", path);
	}
	return rc;
}

/* `moat device add ID --enroll|--claim-cn CN`: a device that enrolls itself over EST. No
 * passphrase: nothing is signed until it enrolls. */
static int enroll_add(const struct ident_opts *o, const char *id)
{
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	char token[MOAT_ENROLL_TOKEN_BUF_LEN] = "";
	struct moat_enroll_add_req req = {
		.id = id,
		.device_type = o->type,
		.token = o->enroll,
		.token_ttl = o->token_ttl,
		.claim_cn = o->claim_cn,
	};
	int64_t ttl = o->token_ttl ? o->token_ttl : MOAT_ENROLL_TOKEN_TTL_DEFAULT;
	int64_t expires = moat_time_now() + ttl;
	if (cli_open(MOAT_DEPLOY_WRITE, &d, &err) != 0 ||
	    moat_deploy_enroll_add(d, &req, token, &err) != 0) {
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	int rc = moat_broker_sync(d, &err);
	moat_deploy_close(d);
	if (rc != 0) {
		moat_err_prefix(&err, "added, but regenerating the broker policy failed");
		OPENSSL_cleanse(token, sizeof(token));
		return cli_fail(&err);
	}
	char exp_iso[MOAT_TIME_ISO_LEN];
	moat_time_iso(expires, exp_iso);
	if (cli_globals.json) {
		printf("{\"id\":");
		cli_json_string(stdout, id);
		printf(",\"token\":");
		if (token[0]) {
			cli_json_string(stdout, token);
			printf(",\"expires_at\":\"%s\"", exp_iso);
		} else {
			printf("null");
		}
		if (o->claim_cn) {
			printf(",\"claim_cn\":");
			cli_json_string(stdout, o->claim_cn);
		}
		printf("}\n");
	} else {
		printf("added device %s: it enrolls itself over EST (no key or certificate made here)\n",
		       id);
		if (token[0]) {
			printf("enrollment token (shown once, single use, expires %s):\n%s\n",
			       exp_iso, token);
		}
		if (o->claim_cn) {
			printf("claim certificate CN: %s\n", o->claim_cn);
		}
	}
	OPENSSL_cleanse(token, sizeof(token));
	return CLI_OK;
}

/* --json of an add: {"added": [{id, role, serial, not_after}, ...]}, read back from the
 * registry. */
static void add_json(struct moat_deploy *d, char (*names)[MOAT_ID_BUF_LEN], size_t count,
		     enum moat_role role)
{
	printf("{\"role\":\"%s\",\"added\":[", moat_role_name(role));
	for (size_t i = 0; i < count; i++) {
		struct moat_identity ident;
		char na[MOAT_TIME_ISO_LEN] = "";
		if (moat_registry_identity_get(moat_deploy_registry(d), names[i], &ident, NULL) ==
		    0) {
			moat_time_iso(ident.not_after, na);
		} else {
			memset(&ident, 0, sizeof(ident));
		}
		printf("%s{\"id\":", i ? ",\n " : "");
		cli_json_string(stdout, names[i]);
		printf(",\"serial\":\"%s\",\"not_after\":\"%s\"}", ident.serial_hex, na);
	}
	printf("]}\n");
}

int ident_add(const struct ident_scope *scope, int argc, char **argv)
{
	const char *usage_line =
		scope->role == MOAT_ROLE_DEVICE
			? "moat device add ID [--type T] [--days N] [--key-type K | --csr FILE]\n"
			  "       moat device add ID --enroll [--token-ttl D] [--claim-cn CN] [--type T]\n"
			  "       moat device add --prefix P --count N [--type T] [--days N] [--key-type K]"
			: "moat identity add NAME --role service|operator [--days N] "
			  "[--key-type K | --csr FILE]";
	struct moat_csr *csr = NULL;
	struct ident_opts o;
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	struct moat_provision_req *reqs = NULL;
	char(*names)[MOAT_ID_BUF_LEN] = NULL;
	int rc = parse_opts(argc, argv, scope->role == MOAT_ROLE_DEVICE ? "tpcdkseTC" : "dkRs", &o,
			    usage_line);
	if (rc != 0) {
		return rc < 0 ? CLI_OK : rc;
	}
	enum moat_role role = MOAT_ROLE_DEVICE;
	if (scope->role < 0) {
		if (!o.role) {
			return cli_usage_error("identity add: --role service|operator is required");
		}
		if (moat_role_parse(o.role, &role, &err) != 0) {
			return cli_usage_error("--role: %s", err.msg);
		}
		if (role == MOAT_ROLE_DEVICE) {
			return cli_usage_error(
				"identity add: devices are added with moat device add");
		}
	}
	size_t count = 1;
	if (o.prefix || o.count) {
		if (!o.prefix || !o.count) {
			return cli_usage_error("--prefix and --count go together");
		}
		if (o.next != argc) {
			return cli_usage_error("device add: an ID or --prefix/--count, not both");
		}
		/* P-000001 must be a valid name: check the longest one */
		char longest[MOAT_ID_BUF_LEN + 16];
		snprintf(longest, sizeof(longest), "%s-%06lld", o.prefix, (long long)o.count);
		if (moat_identity_name_check(longest, &err) != 0) {
			return cli_usage_error("--prefix: %s", err.msg);
		}
		count = (size_t)o.count;
	} else if (o.next != argc - 1) {
		return cli_usage_error("usage: %s", usage_line);
	}
	if (o.type && (rc = moat_device_type_check(o.type, &err)) != 0) {
		return cli_usage_error("--type: %s", err.msg);
	}
	bool enrolls = o.enroll || o.claim_cn;
	if (o.token_ttl && !o.enroll) {
		return cli_usage_error("--token-ttl goes with --enroll");
	}
	if (enrolls && (o.prefix || o.days || o.key_type_set || o.csr)) {
		return cli_usage_error("--enroll and --claim-cn take an ID and --type only: the "
				       "device makes its key and asks over EST");
	}
	if (o.csr && (o.prefix || o.key_type_set)) {
		return cli_usage_error("--csr certifies one key: not with --prefix/--count or "
				       "--key-type");
	}
	if (enrolls) {
		if (strlen(argv[o.next]) > MOAT_ID_MAX_LEN) {
			return cli_usage_error("'%.64s...': longer than %d characters",
					       argv[o.next], MOAT_ID_MAX_LEN);
		}
		return enroll_add(&o, argv[o.next]);
	}
	if (o.csr && read_csr(o.csr, &csr, &err) != 0) {
		return cli_fail(&err);
	}
	if ((rc = cli_open_unlocked(&d, &err)) != 0) {
		moat_csr_free(csr);
		return cli_fail(&err);
	}
	reqs = calloc(count, sizeof(*reqs));
	names = calloc(count, sizeof(*names));
	if (!reqs || !names) {
		moat_err_set(&err, MOAT_ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < count; i++) {
		if (o.prefix) {
			snprintf(names[i], sizeof(names[i]), "%s-%06zu", o.prefix, i + 1);
		} else {
			snprintf(names[i], sizeof(names[i]), "%.*s", MOAT_ID_MAX_LEN, argv[o.next]);
			if (strlen(argv[o.next]) > MOAT_ID_MAX_LEN) {
				moat_err_set(&err, MOAT_EINVAL,
					     "'%.64s...': longer than %d characters", argv[o.next],
					     MOAT_ID_MAX_LEN);
				goto fail;
			}
		}
		reqs[i] = (struct moat_provision_req){
			.id = names[i],
			.role = role,
			.device_type = role == MOAT_ROLE_DEVICE ? o.type : NULL,
			.days = o.days,
			.key_type = o.key_type_set ? o.key_type : moat_deploy_settings(d)->key_type,
			.csr = csr,
		};
	}
	struct progress_state ps = {.tty = isatty(STDERR_FILENO) && count > 1,
				    .last_percent = -1,
				    .started_ms = moat_time_mono_ms()};
	cli_catch_interrupts();
	if ((rc = moat_deploy_provision(d, reqs, count, on_progress, &ps, &err)) != 0) {
		goto fail;
	}
	if ((rc = moat_broker_sync(d, &err)) != 0) {
		moat_err_prefix(&err, "added, but regenerating the broker policy failed");
		goto fail;
	}
	if (cli_globals.json) {
		add_json(d, names, count, role);
	} else if (count == 1) {
		printf("added %s %s%s\n", moat_role_name(role), names[0],
		       csr ? " (certificate for the CSR's key; no key.pem)" : "");
	} else {
		double secs = (double)(moat_time_mono_ms() - ps.started_ms) / 1000.0;
		printf("added %zu devices %s … %s in %.2f s\n", count, names[0], names[count - 1],
		       secs);
	}
	free(reqs);
	free(names);
	moat_csr_free(csr);
	moat_deploy_close(d);
	return CLI_OK;
fail:
	free(reqs);
	free(names);
	moat_csr_free(csr);
	moat_deploy_close(d);
	return cli_fail(&err);
}

struct list_ctx {
	bool json;
	size_t n;
};

static void print_identity_json(const struct moat_identity *id)
{
	char nb[MOAT_TIME_ISO_LEN];
	char na[MOAT_TIME_ISO_LEN];
	moat_time_iso(id->not_before, nb);
	moat_time_iso(id->not_after, na);
	printf("{\"id\":");
	cli_json_string(stdout, id->id);
	printf(",\"role\":\"%s\",\"device_type\":", moat_role_name(id->role));
	cli_json_string(stdout, id->device_type);
	printf(",\"status\":\"%s\",\"serial\":\"%s\",\"not_before\":\"%s\",\"not_after\":\"%s\","
	       "\"cert_revoked\":%s,\"simulated\":%s}",
	       moat_identity_status_name(id->status), id->serial_hex, nb, na,
	       id->cert_revoked ? "true" : "false", id->simulated ? "true" : "false");
}

static int list_one(const struct moat_identity *id, void *ctx)
{
	struct list_ctx *l = ctx;
	if (l->json) {
		printf("%s", l->n ? ",\n " : "");
		print_identity_json(id);
	} else {
		char na[MOAT_TIME_ISO_LEN];
		moat_time_iso(id->not_after, na);
		if (!id->serial_hex[0]) {
			snprintf(na, sizeof(na), "-"); /* enrolls itself; no certificate yet */
		}
		/* a simulated device (moat sim --create) says so at the end of its line */
		printf("%-32s %-9s %-20s %-9s %s%s\n", id->id, moat_role_name(id->role),
		       id->device_type[0] ? id->device_type : "-",
		       moat_identity_status_name(id->status), na,
		       id->simulated ? "  simulated" : "");
	}
	l->n++;
	return 0;
}

int ident_list(const struct ident_scope *scope, int argc, char **argv)
{
	char usage_line[USAGE_LINE_MAX];
	snprintf(usage_line, sizeof(usage_line), "moat %s list [--json]%s", scope->group,
		 scope->role < 0 ? " [--role R]" : "");
	struct ident_opts o;
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	int rc = parse_opts(argc, argv, scope->role < 0 ? "R" : "", &o, usage_line);
	if (rc != 0) {
		return rc < 0 ? CLI_OK : rc;
	}
	if (o.next != argc) {
		return cli_usage_error("usage: %s", usage_line);
	}
	int role = scope->role;
	if (o.role) {
		enum moat_role r;
		if (moat_role_parse(o.role, &r, &err) != 0) {
			return cli_usage_error("--role: %s", err.msg);
		}
		role = (int)r;
	}
	if ((rc = cli_open(MOAT_DEPLOY_READ, &d, &err)) != 0) {
		return cli_fail(&err);
	}
	struct list_ctx l = {.json = cli_globals.json};
	if (l.json) {
		printf("[");
	} else {
		printf("%-32s %-9s %-20s %-9s %s\n", "ID", "ROLE", "TYPE", "STATUS", "EXPIRES");
	}
	rc = moat_registry_identity_foreach(moat_deploy_registry(d), role, list_one, &l, &err);
	if (l.json) {
		printf("]\n");
	}
	moat_deploy_close(d);
	return rc != 0 ? cli_fail(&err) : CLI_OK;
}

struct cert_hist {
	const char *id;
	bool json;
	size_t n;
};

static int show_cert(const struct moat_cert_row *row, void *ctx)
{
	struct cert_hist *h = ctx;
	if (strcmp(row->identity, h->id) != 0) {
		return 0;
	}
	char nb[MOAT_TIME_ISO_LEN];
	char na[MOAT_TIME_ISO_LEN];
	moat_time_iso(row->not_before, nb);
	moat_time_iso(row->not_after, na);
	if (h->json) {
		printf("%s{\"serial\":\"%s\",\"not_before\":\"%s\",\"not_after\":\"%s\","
		       "\"revoked\":%s,\"reason\":\"%s\"}",
		       h->n ? "," : "", row->serial_hex, nb, na, row->revoked ? "true" : "false",
		       row->revoked ? moat_pki_reason_name(row->reason) : "");
	} else {
		printf("  certificate %s  %s .. %s%s%s\n", row->serial_hex, nb, na,
		       row->revoked ? "  revoked: " : "",
		       row->revoked ? moat_pki_reason_name(row->reason) : "");
	}
	h->n++;
	return 0;
}

struct tags_out {
	char tags[(MOAT_TAG_MAX_LEN + 2) * MOAT_TAGS_PER_DEVICE_MAX + 1];
};

static int collect_tags(const struct moat_device_row *row, void *ctx)
{
	struct tags_out *t = ctx;
	size_t off = 0;
	for (size_t i = 0; i < row->tag_count; i++) {
		int n = snprintf(t->tags + off, sizeof(t->tags) - off, "%s%s", i ? ", " : "",
				 row->tags[i]);
		if (n < 0 || (size_t)n >= sizeof(t->tags) - off) {
			break;
		}
		off += (size_t)n;
	}
	return 0;
}

/* ", "-separated names as a JSON array */
static void print_name_list_json(const char *list)
{
	printf("[");
	const char *p = list;
	bool first = true;
	while (*p) {
		size_t n = strcspn(p, ",");
		char name[MOAT_TAG_MAX_LEN + 1];
		snprintf(name, sizeof(name), "%.*s", (int)n, p);
		printf("%s", first ? "" : ",");
		cli_json_string(stdout, name);
		first = false;
		p += n;
		while (*p == ',' || *p == ' ') {
			p++;
		}
	}
	printf("]");
}

/* A device's tags and the groups it is in (device show). */
static int device_membership(struct moat_deploy *d, const char *id, struct tags_out *t,
			     char *groups, size_t size, struct moat_err *err)
{
	t->tags[0] = '\0';
	int rc = moat_registry_device_rows(moat_deploy_registry(d), id, collect_tags, t, err);
	if (rc == 0) {
		rc = moat_group_names_of(moat_deploy_registry(d), id, moat_time_now(), groups, size,
					 err);
	}
	return rc;
}

#define SHOW_RECENT_EVENTS 10

struct show_events {
	bool json;
	size_t n;
};

static int show_event(const struct moat_security_event *ev, void *ctx)
{
	struct show_events *se = ctx;
	if (se->json) {
		char buf[2048];
		struct moat_err err = {0};
		if (moat_security_event_json(ev, buf, sizeof(buf), &err) == 0) {
			printf("%s%s", se->n ? "," : "", buf);
		}
	} else {
		char when[MOAT_TIME_ISO_LEN];
		moat_time_iso(ev->time_ms / 1000, when);
		printf("  %s %-8s %s%s%s ", when, moat_severity_name(ev->severity), ev->kind,
		       ev->rule[0] ? " rule=" : "", ev->rule);
		cli_print_text(stdout, ev->evidence, strlen(ev->evidence));
		printf("\n");
	}
	se->n++;
	return 0;
}

static int count_agg(const struct moat_telemetry_agg *a, void *ctx)
{
	int64_t *n = ctx;
	n[a->period_s == 60 ? 0 : 1]++;
	return 0;
}

/* What moatd's ingest recorded of a device: its state and its newest security events. */
static int show_monitoring(struct moat_registry *reg, const char *id, bool json,
			   struct moat_err *err)
{
	struct moat_device_state s;
	int rc = moat_registry_device_state_get(reg, id, &s, err);
	if (rc == MOAT_ENOENT) {
		memset(&s, 0, sizeof(s));
	} else if (rc != 0) {
		return rc;
	}
	/* what retention has left: raw messages, minute and hour aggregate rows */
	int64_t raw = 0, agg[2] = {0, 0};
	struct cli_diag diag;
	if ((rc = cli_last_diagnostics(reg, id, &diag, err)) != 0 ||
	    (rc = moat_registry_telemetry_count(reg, id, &raw, err)) != 0 ||
	    (rc = moat_registry_telemetry_agg_foreach(reg, id, 0, count_agg, agg, err)) != 0) {
		return rc;
	}
	char seen[MOAT_TIME_ISO_LEN] = "never";
	if (s.last_seen_ms) {
		moat_time_iso(s.last_seen_ms / 1000, seen);
	}
	if (json) {
		printf(",\"state\":\"%s\",\"offline_by_will\":%s,\"last_seen\":\"%s\","
		       "\"last_seen_ms\":%lld,\"address\":",
		       moat_conn_state_name(s.state), s.offline_by_will ? "true" : "false", seen,
		       (long long)s.last_seen_ms);
		cli_json_string(stdout, s.address);
		printf(",\"agent_version\":");
		cli_json_string(stdout, s.agent_version);
		printf(",\"running\":");
		cli_json_string(stdout, s.running);
		if (s.has_cert_days) {
			printf(",\"cert_days_left\":%lld", (long long)s.cert_days_left);
		} else {
			printf(",\"cert_days_left\":null");
		}
		printf(",\"interval_s\":%lld,\"telemetry_messages\":%lld,"
		       "\"telemetry_kept\":{\"raw\":%lld,\"minute\":%lld,\"hour\":%lld},"
		       "\"last_command\":",
		       (long long)s.interval_s, (long long)s.telemetry_messages, (long long)raw,
		       (long long)agg[0], (long long)agg[1]);
		cli_json_string(stdout, s.last_command);
		printf(",\"last_command_status\":");
		cli_json_string(stdout, s.last_command_status);
		printf(",\"last_diagnostics\":%s,\"events\":[", diag.json);
	} else {
		printf("state:       %s%s\nlast seen:   %s\n", moat_conn_state_name(s.state),
		       s.offline_by_will ? " (last will)" : "", seen);
		if (s.address[0]) {
			printf("address:     %s\n", s.address);
		}
		if (s.agent_version[0]) {
			printf("agent:       ");
			cli_print_text(stdout, s.agent_version, strlen(s.agent_version));
			printf("\n");
		}
		printf("release:     ");
		cli_print_text(stdout, s.running[0] ? s.running : "unknown",
			       strlen(s.running[0] ? s.running : "unknown"));
		printf("\n");
		if (s.has_cert_days) {
			printf("cert days:   %lld (its diagnostics)\n",
			       (long long)s.cert_days_left);
		}
		if (s.interval_s) {
			printf("interval:    %llds\n", (long long)s.interval_s);
		}
		printf("telemetry:   %lld messages recorded; kept: %lld raw, %lld minute and %lld "
		       "hour aggregates\n",
		       (long long)s.telemetry_messages, (long long)raw, (long long)agg[0],
		       (long long)agg[1]);
		if (s.last_command[0]) {
			printf("last command: %s %s\n", s.last_command, s.last_command_status);
		}
		if (diag.found) {
			printf("diagnostics: received at %s: ", diag.received);
			cli_print_text(stdout, diag.text, strlen(diag.text));
			printf("\n");
		} else {
			printf("diagnostics: none received\n");
		}
		printf("recent events:\n");
	}
	struct moat_event_filter f = {.identity = id, .limit = SHOW_RECENT_EVENTS};
	struct show_events se = {.json = json};
	rc = moat_registry_security_event_foreach(reg, &f, show_event, &se, err);
	if (json) {
		printf("]");
	} else if (se.n == 0) {
		printf("  (none)\n");
	}
	return rc;
}

int ident_show(const struct ident_scope *scope, int argc, char **argv)
{
	char usage_line[USAGE_LINE_MAX];
	snprintf(usage_line, sizeof(usage_line), "moat %s show ID [--json]", scope->group);
	struct one_ident c;
	int st = one_begin(scope, argc, argv, "", usage_line, false, NULL, NULL, &c);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	char dir[PATH_MAX];
	int rc = moat_deploy_identity_path(c.d, c.id, NULL, dir, sizeof(dir), &c.err);
	if (rc != 0) {
		return one_end(&c, rc);
	}
	struct cert_hist h = {.id = c.id, .json = cli_globals.json};
	struct tags_out tags = {0};
	char groups[1024] = "";
	if (c.ident.role == MOAT_ROLE_DEVICE &&
	    (rc = device_membership(c.d, c.id, &tags, groups, sizeof(groups), &c.err)) != 0) {
		return one_end(&c, rc);
	}
	if (h.json) {
		printf("{\"identity\":");
		print_identity_json(&c.ident);
		if (c.ident.role == MOAT_ROLE_DEVICE) {
			printf(",\"tags\":");
			print_name_list_json(tags.tags);
			printf(",\"groups\":");
			print_name_list_json(groups);
		}
		printf(",\"files\":");
		cli_json_string(stdout, dir);
		printf(",\"certificates\":[");
	} else {
		char created[MOAT_TIME_ISO_LEN];
		moat_time_iso(c.ident.created_at, created);
		printf("id:          %s\nrole:        %s\n", c.ident.id,
		       moat_role_name(c.ident.role));
		if (c.ident.device_type[0]) {
			printf("device type: %s\n", c.ident.device_type);
		}
		if (c.ident.simulated) {
			printf("simulated:   yes (made by moat sim --create)\n");
		}
		if (c.ident.role == MOAT_ROLE_DEVICE) {
			printf("tags:        %s\ngroups:      %s\n", tags.tags[0] ? tags.tags : "-",
			       groups[0] ? groups : "-");
		}
		printf("status:      %s\ncreated:     %s\nfiles:       %s\ncertificates:\n",
		       moat_identity_status_name(c.ident.status), created, dir);
	}
	rc = moat_registry_cert_foreach(moat_deploy_registry(c.d), false, show_cert, &h, &c.err);
	if (h.json) {
		printf("]");
	}
	if (rc == 0 && c.ident.role == MOAT_ROLE_DEVICE) {
		rc = show_monitoring(moat_deploy_registry(c.d), c.id, h.json, &c.err);
	}
	if (h.json) {
		printf("}\n");
	}
	return one_end(&c, rc);
}

/* --reason into the int at ctx. */
static int revoke_check(const struct ident_opts *o, void *ctx)
{
	struct moat_err err = {0};
	if (o->reason && moat_pki_reason_parse(o->reason, ctx, &err) != 0) {
		return cli_usage_error("--reason: %s", err.msg);
	}
	return 0;
}

int ident_revoke(const struct ident_scope *scope, int argc, char **argv)
{
	char usage_line[USAGE_LINE_MAX];
	snprintf(usage_line, sizeof(usage_line),
		 "moat %s revoke ID [--reason unspecified|key-compromise|superseded|"
		 "cessation-of-operation|...]",
		 scope->group);
	struct one_ident c;
	int reason = 0;
	int st = one_begin(scope, argc, argv, "r", usage_line, true, revoke_check, &reason, &c);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	int rc = moat_deploy_revoke(c.d, c.id, reason, &c.err);
	if (rc == 0 &&
	    (rc = sync_after(&c, "revoked and CRL written, but updating the broker failed")) == 0) {
		if (cli_globals.json) {
			char extra[128];
			snprintf(extra, sizeof(extra), "\"serial\":\"%s\",\"reason\":\"%s\"",
				 c.ident.serial_hex, moat_pki_reason_name(reason));
			result_json("revoked", c.id, extra);
		} else {
			printf("revoked %s (certificate %s); pki/crl.pem updated\n", c.id,
			       c.ident.serial_hex);
		}
	}
	return one_end(&c, rc);
}

/* Lifts a flapping ban: the broker's policy is written with an unban line (policy.h); the
 * registry is not changed, so the deployment is opened for reading only. */
int ident_unban(const struct ident_scope *scope, int argc, char **argv)
{
	char usage_line[USAGE_LINE_MAX];
	snprintf(usage_line, sizeof(usage_line), "moat %s unban ID", scope->group);
	struct one_ident c;
	int st = one_begin(scope, argc, argv, "", usage_line, false, NULL, NULL, &c);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	int rc = moat_broker_unban(c.d, c.id, &c.err);
	if (rc == 0 && cli_globals.json) {
		result_json("unbanned", c.id, NULL);
	} else if (rc == 0) {
		printf("unbanned %s: a flapping ban that began before now is lifted\n", c.id);
	}
	return one_end(&c, rc);
}

int ident_renew(const struct ident_scope *scope, int argc, char **argv)
{
	char usage_line[USAGE_LINE_MAX];
	snprintf(usage_line, sizeof(usage_line), "moat %s renew ID [--days N] [--force]",
		 scope->group);
	struct one_ident c;
	int st = one_begin(scope, argc, argv, "dF", usage_line, true, NULL, NULL, &c);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	bool compromised = moat_deploy_compromised(&c.ident);
	int rc = c.o.force ? moat_deploy_renew_forced(c.d, c.id, c.o.days, &c.err)
			   : moat_deploy_renew(c.d, c.id, c.o.days, &c.err);
	if (rc == 0 && compromised) {
		/* the operator asked for it with --force: say what it means for the device */
		fprintf(stderr,
			"moat: warning: %s was revoked for %s; --force renews it with a new key. "
			"Re-provision the device (moat %s export): its old key stays revoked\n",
			c.id, moat_pki_reason_name(c.ident.revoked_reason), scope->group);
	}
	if (rc == 0) {
		rc = moat_registry_identity_get(moat_deploy_registry(c.d), c.id, &c.ident, &c.err);
	}
	if (rc == 0 && (rc = sync_after(&c, "renewed, but updating the broker failed")) == 0) {
		char na[MOAT_TIME_ISO_LEN];
		moat_time_iso(c.ident.not_after, na);
		if (cli_globals.json) {
			char extra[160];
			snprintf(extra, sizeof(extra), "\"serial\":\"%s\",\"not_after\":\"%s\"",
				 c.ident.serial_hex, na);
			result_json("renewed", c.id, extra);
		} else {
			printf("renewed %s: certificate %s valid until %s; the old one is revoked\n",
			       c.id, c.ident.serial_hex, na);
		}
	}
	return one_end(&c, rc);
}

/* disable or enable: the registry's status, then the broker's policy (which kicks a
 * disabled client that is connected). No CA key: nothing is signed. */
static int set_disabled(const struct ident_scope *scope, int argc, char **argv, bool disabled)
{
	char usage_line[USAGE_LINE_MAX];
	snprintf(usage_line, sizeof(usage_line), "moat %s %s ID", scope->group,
		 disabled ? "disable" : "enable");
	struct one_ident c;
	int st = one_begin(scope, argc, argv, "", usage_line, false, NULL, NULL, &c);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	/* one_begin opened for reading (no lock): the change needs the writer's lock */
	moat_deploy_close(c.d);
	int rc = cli_open(MOAT_DEPLOY_WRITE, &c.d, &c.err);
	if (rc == 0) {
		rc = moat_deploy_set_disabled(c.d, c.id, disabled, &c.err);
	}
	if (rc == 0 &&
	    (rc = sync_after(&c, disabled ? "disabled, but updating the broker failed"
					  : "enabled, but updating the broker failed")) == 0 &&
	    cli_globals.json) {
		result_json(disabled ? "disabled" : "enabled", c.id, NULL);
	} else if (rc == 0) {
		printf(disabled ? "disabled %s: the broker and moatd refuse it; its certificate "
				  "stays valid (moat %s enable %s)\n"
				: "enabled %s: the broker and moatd accept its certificate again "
				  "(moat %s disable %s)\n",
		       c.id, scope->group, c.id);
	}
	return one_end(&c, rc);
}

int ident_disable(const struct ident_scope *scope, int argc, char **argv)
{
	return set_disabled(scope, argc, argv, true);
}

int ident_enable(const struct ident_scope *scope, int argc, char **argv)
{
	return set_disabled(scope, argc, argv, false);
}

/* --reason into the int at ctx, cessation-of-operation when absent. */
static int delete_check(const struct ident_opts *o, void *ctx)
{
	*(int *)ctx = 5; /* cessationOfOperation */
	return revoke_check(o, ctx);
}

int ident_delete(const struct ident_scope *scope, int argc, char **argv)
{
	char usage_line[USAGE_LINE_MAX];
	snprintf(usage_line, sizeof(usage_line), "moat %s delete ID [--reason R]", scope->group);
	struct one_ident c;
	int reason = 0;
	int st = one_begin(scope, argc, argv, "r", usage_line, true, delete_check, &reason, &c);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	int rc = moat_deploy_delete(c.d, c.id, reason, &c.err);
	if (rc == 0) {
		rc = sync_after(&c, "deleted and CRL written, but updating the broker failed");
	}
	if (rc == 0 && cli_globals.json) {
		char extra[128];
		snprintf(extra, sizeof(extra), "\"serial\":\"%s\",\"reason\":\"%s\"",
			 c.ident.serial_hex, moat_pki_reason_name(reason));
		result_json("deleted", c.id, extra);
	} else if (rc == 0 && !c.ident.serial_hex[0]) {
		printf("deleted %s: it had not enrolled (no certificate); its enrollment and registry "
		       "rows are gone, the deletion is recorded\n",
		       c.id);
	} else if (rc == 0) {
		printf("deleted %s: certificate %s revoked%s and kept in pki/crl.pem; its files and "
		       "registry rows are gone, the deletion is recorded\n",
		       c.id, c.ident.serial_hex, c.ident.cert_revoked ? " (already)" : "");
	}
	return one_end(&c, rc);
}

/* A password for a PKCS#12 file: --password-file, else $MOAT_EXPORT_PASSWORD; asked for
 * before anything is opened or created. */
static int export_password(const char *file, char *buf, size_t size, struct moat_err *err)
{
	const char *saved = cli_globals.passphrase_file;
	int rc;
	if (file) {
		cli_globals.passphrase_file = file;
		rc = cli_passphrase(buf, size, false, err);
		cli_globals.passphrase_file = saved;
		return rc;
	}
	const char *env = getenv("MOAT_EXPORT_PASSWORD");
	if (env && *env) {
		if (strlen(env) < MOAT_PASSPHRASE_MIN_LEN || strlen(env) + 1 > size) {
			return moat_err_set(err, MOAT_EINVAL,
					    "MOAT_EXPORT_PASSWORD: %d to %d characters",
					    MOAT_PASSPHRASE_MIN_LEN, MOAT_PASSPHRASE_MAX_LEN);
		}
		memcpy(buf, env, strlen(env) + 1);
		return 0;
	}
	return moat_err_set(err, MOAT_EINVAL,
			    "--format p12 needs a password: --password-file F or "
			    "MOAT_EXPORT_PASSWORD (nothing written)");
}

/* What export checks before opening anything: --out, --format, and p12's password. */
struct export_args {
	char pass[MOAT_PASSPHRASE_MAX_LEN + 2];
	const char *format;
};

static int export_check(const struct ident_opts *o, void *ctx)
{
	struct export_args *a = ctx;
	struct moat_err err = {0};
	a->format = o->format ? o->format : "pem";
	if (!o->out) {
		return cli_usage_error("export: --out DIR is required");
	}
	if (strcmp(a->format, "pem") != 0 && strcmp(a->format, "p12") != 0 &&
	    strcmp(a->format, "c-header") != 0 && strcmp(a->format, "agent") != 0) {
		return cli_usage_error("--format: '%s' is not pem, p12, c-header or agent",
				       a->format);
	}
	if (o->password_file && strcmp(a->format, "p12") != 0) {
		return cli_usage_error("--password-file goes with --format p12");
	}
	if (strcmp(a->format, "p12") == 0 &&
	    export_password(o->password_file, a->pass, sizeof(a->pass), &err) != 0) {
		return cli_fail(&err);
	}
	return 0;
}

/* One identity exported into dir: prepared whole, then written all or nothing. */
static int export_one(struct moat_deploy *d, const char *id, const struct export_args *a,
		      const char *dir, bool force, bool *out_enrolling, struct moat_err *err)
{
	struct cli_export x;
	int rc = cli_export_prepare(d, id, a->format, a->pass, &x, err);
	if (rc == 0) {
		rc = cli_export_write(&x, dir, force, err);
		*out_enrolling = x.enrolling;
		cli_export_free(&x);
	}
	return rc;
}

struct id_list {
	char (*ids)[MOAT_ID_BUF_LEN];
	size_t count;
	size_t cap;
	int role;
};

static int collect_active(const struct moat_identity *id, void *ctx)
{
	struct id_list *l = ctx;
	if (id->status != MOAT_ID_ACTIVE || (l->role >= 0 && (int)id->role != l->role)) {
		return 0;
	}
	if (l->count == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		void *p = realloc(l->ids, cap * sizeof(*l->ids));
		if (!p) {
			return MOAT_ENOMEM;
		}
		l->ids = p;
		l->cap = cap;
	}
	snprintf(l->ids[l->count++], MOAT_ID_BUF_LEN, "%s", id->id);
	return 0;
}

/* `export --all --out DIR`: every active identity of the scope into DIR/ID/. Every target
 * is checked first, so a refusal writes nothing; progress on a terminal. */
static int export_all(const struct ident_scope *scope, const struct ident_opts *o,
		      const struct export_args *a)
{
	struct moat_err err = {0};
	struct moat_deploy *d = NULL;
	struct id_list l = {.role = scope->role};
	char dir[PATH_MAX];
	bool enrolling = false;
	int rc = cli_open(MOAT_DEPLOY_READ, &d, &err);
	if (rc == 0) {
		rc = moat_registry_identity_foreach(moat_deploy_registry(d), scope->role,
						    collect_active, &l, &err);
		if (rc == MOAT_ENOMEM && !err.msg[0]) {
			moat_err_set(&err, rc, "out of memory");
		}
	}
	for (size_t i = 0; rc == 0 && i < l.count && !o->force; i++) {
		struct cli_export x;
		if ((rc = moat_path_join(dir, sizeof(dir), &err, "%s/%s", o->out, l.ids[i])) == 0 &&
		    (rc = cli_export_prepare(d, l.ids[i], a->format, a->pass, &x, &err)) == 0) {
			rc = cli_export_check(&x, dir, false, &err);
			cli_export_free(&x);
		}
	}
	struct progress_state ps = {.tty = isatty(STDERR_FILENO) && l.count > 1,
				    .last_percent = -1,
				    .started_ms = moat_time_mono_ms()};
	for (size_t i = 0; rc == 0 && i < l.count; i++) {
		if ((rc = moat_path_join(dir, sizeof(dir), &err, "%s/%s", o->out, l.ids[i])) == 0) {
			rc = export_one(d, l.ids[i], a, dir, o->force, &enrolling, &err);
		}
		if (rc != 0) {
			moat_err_prefix(&err, "%s (%zu of %zu exported)", l.ids[i], i, l.count);
		} else {
			on_progress(i + 1, l.count, &ps);
		}
	}
	moat_deploy_close(d);
	free(l.ids);
	if (rc != 0) {
		return cli_fail(&err);
	}
	if (cli_globals.json) {
		printf("{\"result\":\"exported\",\"count\":%zu,\"format\":\"%s\",\"out\":", l.count,
		       a->format);
		cli_json_string(stdout, o->out);
		printf("}\n");
	} else {
		bool dev = scope->role == MOAT_ROLE_DEVICE;
		printf("exported %zu %s (%s) to %s/ID/\n", l.count,
		       cli_plural((long long)l.count, dev ? "device" : "identity",
				  dev ? "devices" : "identities"),
		       a->format, o->out);
	}
	return CLI_OK;
}

int ident_export(const struct ident_scope *scope, int argc, char **argv)
{
	char usage_line[USAGE_LINE_MAX];
	snprintf(usage_line, sizeof(usage_line),
		 "moat %s export ID|--all --out DIR [--format pem|p12|c-header|agent] "
		 "[--password-file F] [--force]",
		 scope->group);
	struct export_args a;
	memset(&a, 0, sizeof(a));
	if (argc >= 2 && strcmp(argv[1], "--all") == 0) {
		struct ident_opts o;
		int rc = parse_opts(argc - 1, argv + 1, "ofPF", &o, usage_line);
		if (rc == 0 && o.next != argc - 1) {
			rc = cli_usage_error("usage: %s", usage_line);
		}
		if (rc == 0) {
			rc = export_check(&o, &a);
		}
		if (rc == 0) {
			rc = export_all(scope, &o, &a);
		}
		OPENSSL_cleanse(a.pass, sizeof(a.pass));
		return rc < 0 ? CLI_OK : rc;
	}
	struct one_ident c;
	int st = one_begin(scope, argc, argv, "ofPF", usage_line, false, export_check, &a, &c);
	if (st != MOAT_OPTS_CONTINUE) {
		OPENSSL_cleanse(a.pass, sizeof(a.pass));
		return st;
	}
	bool enrolling = false;
	int rc = 0;
	if (c.ident.status != MOAT_ID_ACTIVE) {
		rc = moat_err_set(&c.err, MOAT_ESTATE, "%s is %s: nothing valid to export", c.id,
				  moat_identity_status_name(c.ident.status));
	}
	if (rc == 0) {
		rc = export_one(c.d, c.id, &a, c.o.out, c.o.force, &enrolling, &c.err);
	}
	OPENSSL_cleanse(a.pass, sizeof(a.pass));
	st = one_end(&c, rc);
	if (st == CLI_OK && cli_globals.json) {
		printf("{\"result\":\"exported\",\"id\":");
		cli_json_string(stdout, c.id);
		printf(",\"format\":\"%s\",\"out\":", a.format);
		cli_json_string(stdout, c.o.out);
		printf(",\"enrolls\":%s}\n", enrolling ? "true" : "false");
	} else if (st == CLI_OK) {
		printf("exported %s (%s) to %s\n", c.id, a.format, c.o.out);
		if (enrolling) {
			printf("%s enrolls itself: no key was exported; put its enrollment token in "
			       "%s/enroll.token (or its claim certificate and key in claim.crt and "
			       "claim.key)\n",
			       c.id, c.o.out);
		}
	}
	return st;
}

int ident_dispatch(const struct ident_scope *scope, int argc, char **argv, const char *usage)
{
	static const struct {
		const char *name;
		int (*fn)(const struct ident_scope *, int, char **);
	} subs[] = {
		{"add", ident_add},	  {"list", ident_list},	      {"show", ident_show},
		{"revoke", ident_revoke}, {"renew", ident_renew},     {"export", ident_export},
		{"unban", ident_unban},	  {"disable", ident_disable}, {"enable", ident_enable},
		{"delete", ident_delete},
	};
	int st = cli_group_help(argc, argv, usage, true);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (strcmp(argv[1], subs[i].name) == 0) {
			return subs[i].fn(scope, argc - 1, argv + 1);
		}
	}
	return cli_usage_error("%s: unknown subcommand '%s' (see moat %s --help)", scope->group,
			       argv[1], scope->group);
}
