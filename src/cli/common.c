/* common.c: what every `moat` group shares: global options, the group help, error printing,
 * opening the deployment, the CA passphrase and interrupt handling. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "moat/fsutil.h"
#include "moat/registry.h"
#include "moat/secevent.h"
#include "moat/signals.h"
#include "moat/text.h"
#include "moat/timeutil.h"

struct cli_globals cli_globals;

int cli_fail(const struct moat_err *err)
{
	fprintf(stderr, "moat: %s\n", err && err->msg[0] ? err->msg : "failed");
	return CLI_FAIL;
}

int cli_usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "moat: %s\n", msg);
	return CLI_USAGE;
}

const struct moat_opt cli_common_opts[] = {
	{.name = "dir", .kind = MOAT_OPT_STRING, .dst = &cli_globals.dir},
	{.name = "passphrase-file", .kind = MOAT_OPT_STRING, .dst = &cli_globals.passphrase_file},
	{.name = "json", .kind = MOAT_OPT_FLAG, .dst = &cli_globals.json},
	{0},
};

int cli_opt_key_type(void *dst, const char *value, struct moat_err *err)
{
	if (moat_key_type_parse(value, dst, err) != 0) {
		moat_err_prefix(err, "--key-type");
		return MOAT_EINVAL;
	}
	return 0;
}

int cli_opt_refuse(void *dst, const char *value, struct moat_err *err)
{
	(void)dst;
	(void)value;
	moat_err_clear(err);
	return MOAT_EINVAL;
}

int cli_group_help(int argc, char **argv, const char *usage, bool help_word)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    (help_word && strcmp(argv[1], "help") == 0)) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	return MOAT_OPTS_CONTINUE;
}

int cli_open(int mode, struct moat_deploy **out, struct moat_err *err)
{
	char dir[PATH_MAX];
	int rc = moat_deploy_locate(cli_globals.dir, dir, sizeof(dir), err);
	if (rc != 0) {
		return rc;
	}
	rc = moat_deploy_open(dir, mode, out, err);
	if (rc == 0 && moat_deploy_recovered(*out) > 0) {
		fprintf(stderr, "moat: removed %zu identities left by an interrupted change\n",
			moat_deploy_recovered(*out));
	}
	return rc;
}

int cli_unlock_root(struct moat_deploy *d, struct moat_err *err)
{
	char pass[MOAT_PASSPHRASE_MAX_LEN + 2];
	int rc = cli_passphrase(pass, sizeof(pass), false, err);
	if (rc == 0) {
		rc = moat_deploy_unlock(d, pass, err);
	}
	OPENSSL_cleanse(pass, sizeof(pass));
	return rc;
}

/* Opens for writing; unlocks the root unless root_if_needed and an issuing CA signs. */
static int open_signing(bool root_if_needed, struct moat_deploy **out, struct moat_err *err)
{
	struct moat_deploy *d = NULL;
	int rc = cli_open(MOAT_DEPLOY_WRITE, &d, err);
	if (rc != 0) {
		return rc;
	}
	if (!(root_if_needed && moat_deploy_has_issuer(d)) && (rc = cli_unlock_root(d, err)) != 0) {
		moat_deploy_close(d);
		return rc;
	}
	*out = d; /* with an issuing CA it signs: no passphrase */
	return 0;
}

int cli_open_unlocked(struct moat_deploy **out, struct moat_err *err)
{
	return open_signing(true, out, err);
}

int cli_open_root(struct moat_deploy **out, struct moat_err *err)
{
	return open_signing(false, out, err);
}

/* Reads a passphrase from the terminal without echo. */
static int prompt(const char *question, char *buf, size_t size, struct moat_err *err)
{
	FILE *tty = fopen("/dev/tty", "r+");
	if (!tty) {
		return moat_err_errno(err, MOAT_EINVAL, errno,
				      "no CA passphrase (use "
				      "--passphrase-file or MOAT_CA_PASSPHRASE) and no terminal");
	}
	struct termios old;
	struct termios noecho;
	bool restore = tcgetattr(fileno(tty), &old) == 0;
	if (restore) {
		noecho = old;
		noecho.c_lflag &= (tcflag_t)~ECHO;
		tcsetattr(fileno(tty), TCSAFLUSH, &noecho);
	}
	fprintf(tty, "%s", question);
	fflush(tty);
	char *line = fgets(buf, (int)size, tty);
	if (restore) {
		tcsetattr(fileno(tty), TCSAFLUSH, &old);
	}
	fprintf(tty, "\n");
	fclose(tty);
	if (!line) {
		return moat_err_set(err, MOAT_EINVAL, "no passphrase entered");
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

static int check_length(const char *pass, const char *source, struct moat_err *err)
{
	size_t len = strlen(pass);
	if (len < MOAT_PASSPHRASE_MIN_LEN) {
		return moat_err_set(err, MOAT_EINVAL, "%s: passphrase shorter than %d characters",
				    source, MOAT_PASSPHRASE_MIN_LEN);
	}
	if (len > MOAT_PASSPHRASE_MAX_LEN) {
		return moat_err_set(err, MOAT_EINVAL, "%s: passphrase longer than %d characters",
				    source, MOAT_PASSPHRASE_MAX_LEN);
	}
	return 0;
}

int cli_passphrase(char *buf, size_t size, bool confirm, struct moat_err *err)
{
	int rc;
	if (cli_globals.passphrase_file) {
		const char *path = cli_globals.passphrase_file;
		struct stat st;
		char *text = NULL;
		size_t len = 0;
		if (stat(path, &st) != 0) {
			return moat_err_errno(err, MOAT_ENOENT, errno, "%s", path);
		}
		if (S_ISREG(st.st_mode) && (st.st_mode & 0077)) {
			return moat_err_set(err, MOAT_EDENIED,
					    "%s: passphrase file readable by others (chmod 600 it)",
					    path);
		}
		if ((rc = moat_fs_read_all(path, MOAT_PASSPHRASE_MAX_LEN + 2, &text, &len, err)) !=
		    0) {
			return rc;
		}
		text[strcspn(text, "\r\n")] = '\0';
		if (strlen(text) + 1 > size) {
			rc = moat_err_set(err, MOAT_EINVAL, "%s: passphrase too long", path);
		} else {
			memcpy(buf, text, strlen(text) + 1);
			rc = check_length(buf, path, err);
		}
		OPENSSL_cleanse(text, len);
		free(text);
		return rc;
	}
	const char *env = getenv("MOAT_CA_PASSPHRASE");
	if (env && *env) {
		if (strlen(env) + 1 > size) {
			return moat_err_set(err, MOAT_EINVAL, "MOAT_CA_PASSPHRASE: too long");
		}
		memcpy(buf, env, strlen(env) + 1);
		return check_length(buf, "MOAT_CA_PASSPHRASE", err);
	}
	if (!isatty(STDIN_FILENO)) {
		return moat_err_set(err, MOAT_EINVAL,
				    "no CA passphrase: use --passphrase-file FILE or "
				    "MOAT_CA_PASSPHRASE, or run on a terminal");
	}
	if ((rc = prompt("CA passphrase: ", buf, size, err)) != 0 ||
	    (rc = check_length(buf, "passphrase", err)) != 0) {
		return rc;
	}
	if (confirm) {
		char again[MOAT_PASSPHRASE_MAX_LEN + 2];
		rc = prompt("again: ", again, sizeof(again), err);
		if (rc == 0 && strcmp(again, buf) != 0) {
			rc = moat_err_set(err, MOAT_EINVAL, "the passphrases differ");
		}
		OPENSSL_cleanse(again, sizeof(again));
	}
	return rc;
}

static void on_interrupt(int sig)
{
	(void)sig;
	moat_deploy_interrupted = 1;
}

void cli_catch_interrupts(void)
{
	moat_signals_catch(on_interrupt, SIGHUP);
}

void cli_json_string(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s);

	fputc('"', out);
	for (size_t i = 0; i < len;) {
		uint32_t cp = 0;
		size_t n = moat_utf8_decode(p + i, len - i, &cp);
		if (n == 0) {
			fputs("\\ufffd", out); /* JSON text is UTF-8: a stray byte is replaced */
			i++;
			continue;
		}
		if (cp == '"' || cp == '\\') {
			fputc('\\', out);
			fputc((int)cp, out);
		} else if (cp == '\n') {
			fputs("\\n", out);
		} else if (cp == '\r') {
			fputs("\\r", out);
		} else if (cp == '\t') {
			fputs("\\t", out);
		} else if (moat_text_cp_is_control(cp)) {
			/* C0, DEL, C1 and bidi controls reach no terminal raw, JSON or not */
			fprintf(out, "\\u%04x", (unsigned)cp);
		} else {
			fwrite(p + i, 1, n, out);
		}
		i += n;
	}
	fputc('"', out);
}

const char *cli_plural(long long n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

int cli_opt_seconds(const char *opt, const char *value, int64_t min_s, int64_t max_s,
		    int64_t *out_s, struct moat_err *err)
{
	int64_t ms = 0;
	char lo[32], hi[32];

	if (moat_duration_ms_parse(value, &ms, err) != 0) {
		moat_err_prefix(err, "%s", opt);
		return MOAT_EINVAL;
	}
	if (ms % 1000 != 0 || ms / 1000 < min_s || ms / 1000 > max_s) {
		return moat_err_set(err, MOAT_EINVAL, "%s: '%s' is not whole seconds from %s to %s",
				    opt, value, cli_duration_words(min_s, lo, sizeof(lo)),
				    cli_duration_words(max_s, hi, sizeof(hi)));
	}
	*out_s = ms / 1000;
	return 0;
}

const char *cli_duration_words(int64_t seconds, char *buf, size_t size)
{
	static const struct {
		int64_t secs;
		const char *one;
		const char *many;
	} units[] = {{86400, "day", "days"},
		     {3600, "hour", "hours"},
		     {60, "minute", "minutes"},
		     {1, "second", "seconds"}};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (seconds % units[i].secs == 0) {
			long long n = (long long)(seconds / units[i].secs);
			snprintf(buf, size, "%lld %s", n,
				 cli_plural(n, units[i].one, units[i].many));
			break;
		}
	}
	return buf;
}

void cli_print_text(FILE *out, const char *s, size_t len)
{
	char buf[1024];
	size_t used = 0;

	while (len > 0) {
		size_t n = moat_text_escape(buf, sizeof(buf), s, len, 0, &used);
		fwrite(buf, 1, n, out);
		if (used == 0) {
			break; /* cannot happen: one unit always fits */
		}
		s += used;
		len -= used;
	}
}

void cli_print_json_raw(FILE *out, const char *json, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = json[i];
		/* whitespace between tokens; a parsed document has no raw control in a string */
		fputc(c == '\n' || c == '\r' || c == '\t' ? ' ' : c, out);
	}
}

const char *cli_session_suffix(const char *tool)
{
	static char buf[MOAT_CLIENT_SUFFIX_MAX_LEN + 1];
	int n = snprintf(buf, sizeof(buf), "%s-%ld", tool, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		buf[0] = '\0'; /* cannot happen for moat's short tool names */
	}
	return buf;
}

static void diag_append(char *buf, size_t size, size_t *used, const char *s)
{
	size_t n = strlen(s);
	if (*used + n + 1 <= size) {
		memcpy(buf + *used, s, n + 1);
		*used += n;
	}
}

static void diag_field(const char *name, const char *value, bool number, void *ctx)
{
	struct cli_diag *o = ctx;
	char piece[320];
	snprintf(piece, sizeof(piece), "%s%s %.200s", o->text_used ? ", " : "", name, value);
	diag_append(o->text, sizeof(o->text), &o->text_used, piece);
	/* text values are quoted by the one JSON string writer */
	char *quoted = NULL;
	size_t qlen = 0;
	FILE *m = number ? NULL : open_memstream(&quoted, &qlen);
	if (m) {
		cli_json_string(m, value);
		fclose(m);
	}
	snprintf(piece, sizeof(piece), "%s\"%s\":%.280s",
		 o->json[o->json_used - 1] == '{' ? "" : ",", name,
		 number ? value : (quoted ? quoted : "null"));
	free(quoted);
	diag_append(o->json, sizeof(o->json), &o->json_used, piece);
}

int cli_last_diagnostics(struct moat_registry *reg, const char *id, struct cli_diag *out,
			 struct moat_err *err)
{
	char report[MOAT_REGISTRY_DIAGNOSTICS_MAX_BYTES + 1];
	size_t len = 0;
	int64_t at_ms = 0;
	struct moat_diag_summary ds;
	memset(out, 0, sizeof(*out));
	snprintf(out->json, sizeof(out->json), "null");
	int rc = moat_registry_diagnostics_get(reg, id, &at_ms, report, sizeof(report), &len, err);
	if (rc == MOAT_ENOENT) {
		return 0;
	}
	if (rc != 0 || (rc = moat_diag_summary_parse(report, len, &ds, err)) != 0) {
		return rc;
	}
	out->found = true;
	moat_time_iso(at_ms / 1000, out->received);
	snprintf(out->json, sizeof(out->json),
		 "{\"received\":\"%s\",\"received_ms\":%lld,\"fields\":{", out->received,
		 (long long)at_ms);
	out->json_used = strlen(out->json);
	moat_diag_summary_foreach(&ds, diag_field, out);
	diag_append(out->json, sizeof(out->json), &out->json_used, "}}");
	if (!out->text_used) {
		snprintf(out->text, sizeof(out->text), "no fields");
	}
	return 0;
}
