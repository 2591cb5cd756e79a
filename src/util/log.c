/* log.c: one key=value line per event on stderr or syslog (log.h).
 *
 * The line is formatted here, not by vsnprintf, because the arguments are data that may
 * come from the network: the format's literal text is copied, numbers are printed, and
 * every %s/%c value goes through moat_text_escape and is quoted when it is not plain, so
 * a value can never end its field, start another or break the line. The format's own
 * quotes are tracked, so error=\"%s\" is escaped without a second pair of quotes.
 */
#include "moat/log.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <syslog.h>

#include "moat/text.h"
#include "moat/timeutil.h"

static const char *log_prog = "moat";
static enum moat_log_level log_min = MOAT_LOG_INFO;
static bool log_syslog;

void moat_log_init(const char *prog, enum moat_log_level min_level, bool use_syslog)
{
	log_prog = prog;
	log_min = min_level;
	log_syslog = use_syslog;
	if (use_syslog) {
		openlog(prog, LOG_PID, LOG_DAEMON);
	}
}

/* The line being built: buf[0..len) and a NUL, never more than size bytes. */
struct line {
	char *buf;
	size_t size;
	size_t len;
	size_t field; /* where the current field starts: its leading space, or 0 */
	bool quoted;  /* inside a pair of quotes of the format */
};

static void put(struct line *l, const char *s, size_t n)
{
	if (n > l->size - 1 - l->len) {
		n = l->size - 1 - l->len;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	l->buf[l->len] = '\0';
}

/* Printable ASCII without space, '=', '"' or '\': needs no quotes. */
static bool plain(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || c == '=' || c == '"' || c == '\\') {
			return false;
		}
	}
	return true;
}

static void put_value(struct line *l, const char *s, size_t n)
{
	bool quote = !l->quoted && !plain(s, n);
	if (quote) {
		if (l->size - l->len < 3) {
			return; /* no room for "" and the NUL: the value is left out whole */
		}
		put(l, "\"", 1);
	}
	/* with quotes, one byte stays for the closing one */
	size_t esize = l->size - l->len - (quote ? 1 : 0);
	l->len += moat_text_escape(l->buf + l->len, esize, s, n, MOAT_TEXT_QUOTED, NULL);
	if (quote) {
		put(l, "\"", 1);
	}
}

/* A NULL value: the field it belongs to goes, from its leading space; *fmt is moved past
 * the rest of the field in the format. */
static void drop_field(struct line *l, const char **fmt)
{
	bool first = l->field == 0;
	l->len = l->field;
	l->buf[l->len] = '\0';
	while (**fmt && **fmt != ' ') {
		(*fmt)++;
	}
	if (first && **fmt == ' ') {
		(*fmt)++; /* no leading space for what follows */
	}
	l->quoted = false;
}

/* A conversion's flags, width, precision and length, as far as log formats use them. */
struct spec {
	bool left, zero;
	int width;
	int prec; /* -1: none */
	char len; /* 0, 'H' (hh), 'h', 'l', 'L' (ll), 'z', 'j', 't', 'D' (long double) */
	char conv;
};

static int parse_num(const char **p, va_list *ap)
{
	int v = 0;
	if (**p == '*') {
		(*p)++;
		return va_arg(*ap, int);
	}
	while (**p >= '0' && **p <= '9' && v < 10000) {
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	return v;
}

static void parse_spec(const char **p, va_list *ap, struct spec *sp)
{
	memset(sp, 0, sizeof(*sp));
	sp->prec = -1;
	for (;; (*p)++) {
		if (**p == '-') {
			sp->left = true;
		} else if (**p == '0') {
			sp->zero = true;
		} else if (**p != '+' && **p != ' ' && **p != '#') {
			break;
		}
	}
	sp->width = parse_num(p, ap);
	if (sp->width < 0) {
		sp->left = true;
		sp->width = -sp->width;
	}
	if (**p == '.') {
		(*p)++;
		sp->prec = parse_num(p, ap);
	}
	static const char mods[] = "hlzjtL";
	while (**p && strchr(mods, **p)) {
		char m = **p;
		(*p)++;
		sp->len = (m == 'h' && sp->len == 'h')	 ? 'H'
			  : (m == 'l' && sp->len == 'l') ? 'L'
			  : m == 'L'			 ? 'D'
							 : m;
	}
	sp->conv = **p;
	if (**p) {
		(*p)++;
	}
}

static long long arg_signed(const struct spec *sp, va_list *ap)
{
	switch (sp->len) {
	case 'l':
		return va_arg(*ap, long);
	case 'L':
		return va_arg(*ap, long long);
	case 'z':
		return va_arg(*ap, ssize_t);
	case 'j':
		return (long long)va_arg(*ap, intmax_t);
	case 't':
		return va_arg(*ap, ptrdiff_t);
	default:
		return va_arg(*ap, int); /* hh and h are promoted to int */
	}
}

static unsigned long long arg_unsigned(const struct spec *sp, va_list *ap)
{
	switch (sp->len) {
	case 'l':
		return va_arg(*ap, unsigned long);
	case 'L':
		return va_arg(*ap, unsigned long long);
	case 'z':
		return va_arg(*ap, size_t);
	case 'j':
		return (unsigned long long)va_arg(*ap, uintmax_t);
	case 't':
		return (unsigned long long)va_arg(*ap, ptrdiff_t);
	case 'H':
		return (unsigned char)va_arg(*ap, unsigned);
	case 'h':
		return (unsigned short)va_arg(*ap, unsigned);
	default:
		return va_arg(*ap, unsigned);
	}
}

/* A number (digits in text, n bytes) padded to the spec's width. */
static void put_padded(struct line *l, const struct spec *sp, const char *text, size_t n)
{
	size_t width = (size_t)sp->width;
	size_t sign = (sp->zero && n > 0 && text[0] == '-') ? 1 : 0;
	if (sign) {
		put(l, text, 1);
	}
	for (size_t i = n; !sp->left && i < width; i++) {
		put(l, sp->zero ? "0" : " ", 1);
	}
	put(l, text + sign, n - sign);
	for (size_t i = n; sp->left && i < width; i++) {
		put(l, " ", 1);
	}
}

/* One conversion at *fmt (just past its '%'). */
static void convert(struct line *l, const char **fmt, va_list *ap)
{
	struct spec sp;
	char num[64];
	int n = 0;

	parse_spec(fmt, ap, &sp);
	switch (sp.conv) {
	case 's': {
		const char *s = va_arg(*ap, const char *);
		if (!s) {
			drop_field(l, fmt);
			return;
		}
		put_value(l, s, sp.prec >= 0 ? strnlen(s, (size_t)sp.prec) : strlen(s));
		return;
	}
	case 'c': {
		char c = (char)va_arg(*ap, int);
		put_value(l, &c, 1);
		return;
	}
	case '%':
		put(l, "%", 1);
		return;
	case 'd':
	case 'i':
		n = snprintf(num, sizeof(num), "%lld", arg_signed(&sp, ap));
		break;
	case 'u':
		n = snprintf(num, sizeof(num), "%llu", arg_unsigned(&sp, ap));
		break;
	case 'x':
		n = snprintf(num, sizeof(num), "%llx", arg_unsigned(&sp, ap));
		break;
	case 'X':
		n = snprintf(num, sizeof(num), "%llX", arg_unsigned(&sp, ap));
		break;
	case 'o':
		n = snprintf(num, sizeof(num), "%llo", arg_unsigned(&sp, ap));
		break;
	case 'p':
		n = snprintf(num, sizeof(num), "%p", va_arg(*ap, void *));
		break;
	case 'f':
	case 'g':
	case 'e': {
		double v = sp.len == 'D' ? (double)va_arg(*ap, long double) : va_arg(*ap, double);
		int prec = sp.prec >= 0 ? sp.prec : 6;
		n = sp.conv == 'f'   ? snprintf(num, sizeof(num), "%.*f", prec, v)
		    : sp.conv == 'g' ? snprintf(num, sizeof(num), "%.*g", prec, v)
				     : snprintf(num, sizeof(num), "%.*e", prec, v);
		break;
	}
	default:
		/* not a conversion log formats use: the compiler's format check names it */
		put(l, "?", 1);
		return;
	}
	if (n > 0) {
		put_padded(l, &sp, num, (size_t)n < sizeof(num) ? (size_t)n : sizeof(num) - 1);
	}
}

static void format(struct line *l, const char *fmt, va_list *ap)
{
	while (*fmt) {
		if (*fmt == '%') {
			fmt++;
			convert(l, &fmt, ap);
			continue;
		}
		if (*fmt == '"') {
			l->quoted = !l->quoted;
		} else if (*fmt == ' ' && !l->quoted) {
			l->field = l->len;
		}
		put(l, fmt, 1);
		fmt++;
	}
}

size_t moat_log_vformat(char *out, size_t size, const char *fmt, va_list ap)
{
	struct line l = {.buf = out, .size = size};
	va_list cp;

	out[0] = '\0';
	va_copy(cp, ap);
	format(&l, fmt, &cp);
	va_end(cp);
	return l.len;
}

static void emit(enum moat_log_level level, const char *line)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
	if (log_syslog) {
		syslog(prio[level], "level=%s %s", names[level], line);
		return;
	}
	char ts[MOAT_TIME_ISO_LEN];
	moat_time_iso(moat_time_now(), ts);
	fprintf(stderr, "%s level=%s prog=%s %s\n", ts, names[level], log_prog, line);
}

void moat_vlog(enum moat_log_level level, const char *id, const char *fmt, va_list ap)
{
	if (level < log_min) {
		return;
	}
	char buf[MOAT_LOG_LINE_MAX];
	struct line l = {.buf = buf, .size = sizeof(buf)};
	va_list cp;

	buf[0] = '\0';
	if (id) {
		put(&l, "id=", 3);
		put_value(&l, id, strlen(id));
		l.field = l.len;
		put(&l, " ", 1);
	}
	va_copy(cp, ap);
	format(&l, fmt, &cp);
	va_end(cp);
	emit(level, buf);
}

void moat_log_formatted(enum moat_log_level level, const char *fields)
{
	if (level >= log_min) {
		emit(level, fields);
	}
}

void moat_log(enum moat_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	moat_vlog(level, NULL, fmt, ap);
	va_end(ap);
}
