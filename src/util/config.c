/* config.c: moat.conf through inih, kept as a flat list of entries that each module
 * validates for its own section. Debian's inih is built without INI_HANDLER_LINENO, so the
 * text is fed through ini_parse_stream with a line reader that counts lines itself. */
#include "moat/config.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "moat/buf.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"

struct parse_ctx {
	struct moat_config *cfg;
	struct moat_err *err;
	int failed;
	size_t cap;
	const char *next;  /* reader position in the NUL-terminated text */
	int lineno;	   /* lines handed to inih so far */
	bool continuation; /* the line just read starts with white space: inih's multi-line value */
};

/* ini_reader: copies the next line (at most num - 1 bytes, newline included) into str. */
static char *read_line(char *str, int num, void *stream)
{
	struct parse_ctx *ctx = stream;
	if (*ctx->next == '\0' || num < 2) {
		return NULL;
	}
	size_t n = 0;
	while (ctx->next[n] != '\0' && n < (size_t)num - 1) {
		if (ctx->next[n++] == '\n') {
			break;
		}
	}
	if (n == (size_t)num - 1 && ctx->next[n] != '\0' && ctx->next[n - 1] != '\n') {
		/* inih would silently split the line and parse its tail as a new line */
		moat_err_set(ctx->err, MOAT_EINVAL, "%s:%d: line longer than %d bytes",
			     ctx->cfg->path, ctx->lineno + 1, num - 2);
		ctx->failed = 1;
		return NULL;
	}
	/* inih hands an indented line to the handler as a continuation of the previous key
	 * (INI_ALLOW_MULTILINE): long lists can be split over lines that way. */
	ctx->continuation = n > 0 && (ctx->next[0] == ' ' || ctx->next[0] == '\t');
	memcpy(str, ctx->next, n);
	str[n] = '\0';
	if (n > 0 && str[n - 1] == '\n') {
		ctx->lineno++;
	} else if (ctx->next[n] == '\0') {
		ctx->lineno++; /* last line without a newline */
	}
	ctx->next += n;
	return str;
}

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *ctx = user;
	struct moat_config *cfg = ctx->cfg;
	int lineno = ctx->lineno;
	if (ctx->failed) {
		return 0;
	}
	if (!name) {
		return 1; /* a bare [section] header */
	}
	if (section[0] == '\0') {
		moat_err_set(ctx->err, MOAT_EINVAL, "%s:%d: key '%s' outside any [section]",
			     cfg->path, lineno, name);
		goto fail;
	}
	if (strlen(value) > MOAT_CONFIG_VALUE_MAX) {
		moat_err_set(ctx->err, MOAT_EINVAL, "%s:%d: value of '%s' longer than %d bytes",
			     cfg->path, lineno, name, MOAT_CONFIG_VALUE_MAX);
		goto fail;
	}
	if (ctx->continuation && cfg->count > 0 &&
	    strcmp(cfg->entries[cfg->count - 1].section, section) == 0 &&
	    strcmp(cfg->entries[cfg->count - 1].key, name) == 0) {
		/* inih hands a multi-line value over line by line: joined with spaces */
		struct moat_config_entry *last = &cfg->entries[cfg->count - 1];
		struct moat_buf joined;
		char *text = NULL;
		moat_buf_init(&joined, MOAT_CONFIG_VALUE_MAX + 1);
		moat_buf_printf(&joined, "%s %s", last->value, value);
		int rc = moat_buf_take(&joined, &text, NULL);
		if (rc == MOAT_EINVAL) {
			moat_err_set(ctx->err, MOAT_EINVAL,
				     "%s:%d: value of '%s' longer than %d bytes", cfg->path, lineno,
				     name, MOAT_CONFIG_VALUE_MAX);
			goto fail;
		}
		if (rc != 0) {
			moat_err_set(ctx->err, MOAT_ENOMEM, "%s: out of memory", cfg->path);
			goto fail;
		}
		free(last->value);
		last->value = text;
		return 1;
	}
	if (moat_config_find(cfg, section, name)) {
		moat_err_set(ctx->err, MOAT_EINVAL, "%s:%d: duplicate key '%s' in [%s]", cfg->path,
			     lineno, name, section);
		goto fail;
	}
	if (cfg->count == MOAT_CONFIG_MAX_ENTRIES) {
		moat_err_set(ctx->err, MOAT_EINVAL, "%s:%d: more than %d entries", cfg->path,
			     lineno, MOAT_CONFIG_MAX_ENTRIES);
		goto fail;
	}
	if (cfg->count == ctx->cap) {
		size_t ncap = ctx->cap ? ctx->cap * 2 : 32;
		struct moat_config_entry *n = realloc(cfg->entries, ncap * sizeof(*n));
		if (!n) {
			moat_err_set(ctx->err, MOAT_ENOMEM, "%s: out of memory", cfg->path);
			goto fail;
		}
		cfg->entries = n;
		ctx->cap = ncap;
	}
	struct moat_config_entry *e = &cfg->entries[cfg->count];
	e->section = strdup(section);
	e->key = strdup(name);
	e->value = strdup(value);
	e->line = lineno;
	if (!e->section || !e->key || !e->value) {
		free(e->section);
		free(e->key);
		free(e->value);
		moat_err_set(ctx->err, MOAT_ENOMEM, "%s: out of memory", cfg->path);
		goto fail;
	}
	cfg->count++;
	return 1;
fail:
	ctx->failed = 1;
	return 0;
}

int moat_config_parse(const char *name, const char *text, size_t len, struct moat_config **out_cfg,
		      struct moat_err *err)
{
	int rc = MOAT_ENOMEM;
	char *copy = NULL;
	struct moat_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg || !(cfg->path = strdup(name))) {
		rc = moat_err_set(err, MOAT_ENOMEM, "%s: out of memory", name);
		goto out;
	}
	if (memchr(text, '\0', len)) {
		rc = moat_err_set(err, MOAT_EINVAL, "%s: contains a NUL byte", name);
		goto out;
	}
	copy = malloc(len + 1);
	if (!copy) {
		rc = moat_err_set(err, MOAT_ENOMEM, "%s: out of memory", name);
		goto out;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	struct parse_ctx ctx = {.cfg = cfg, .err = err, .next = copy};
	int line = ini_parse_stream(read_line, &ctx, on_entry, &ctx);
	if (ctx.failed) {
		rc = err ? err->code : MOAT_EINVAL;
		goto out;
	}
	if (line != 0) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "%s:%d: syntax error (expected [section] or key = value)", name,
				  line);
		goto out;
	}
	*out_cfg = cfg;
	cfg = NULL;
	rc = 0;
out:
	free(copy);
	moat_config_free(cfg);
	return rc;
}

int moat_config_load(const char *path, struct moat_config **out_cfg, struct moat_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc = moat_fs_read_all(path, 1024 * 1024, &text, &len, err);
	if (rc != 0) {
		return rc;
	}
	rc = moat_config_parse(path, text, len, out_cfg, err);
	free(text);
	return rc;
}

void moat_config_free(struct moat_config *cfg)
{
	if (!cfg) {
		return;
	}
	for (size_t i = 0; i < cfg->count; i++) {
		free(cfg->entries[i].section);
		free(cfg->entries[i].key);
		free(cfg->entries[i].value);
	}
	free(cfg->entries);
	free(cfg->path);
	free(cfg);
}

const struct moat_config_entry *moat_config_find(const struct moat_config *cfg, const char *section,
						 const char *key)
{
	for (size_t i = 0; i < cfg->count; i++) {
		if (strcmp(cfg->entries[i].section, section) == 0 &&
		    strcmp(cfg->entries[i].key, key) == 0) {
			return &cfg->entries[i];
		}
	}
	return NULL;
}

const char *moat_config_get(const struct moat_config *cfg, const char *section, const char *key)
{
	const struct moat_config_entry *e = moat_config_find(cfg, section, key);
	return e ? e->value : NULL;
}

int moat_config_get_int(const struct moat_config *cfg, const char *section, const char *key,
			int64_t def, int64_t min, int64_t max, int64_t *out, struct moat_err *err)
{
	const struct moat_config_entry *e = moat_config_find(cfg, section, key);
	if (!e) {
		*out = def;
		return 0;
	}
	int rc = moat_int_parse(e->value, min, max, out, err);
	if (rc != 0) {
		moat_err_prefix(err, "%s:%d: [%s] %s", cfg->path, e->line, section, key);
	}
	return rc;
}

int moat_config_get_duration(const struct moat_config *cfg, const char *section, const char *key,
			     int64_t def, int64_t min, int64_t max, int64_t *out,
			     struct moat_err *err)
{
	const struct moat_config_entry *e = moat_config_find(cfg, section, key);
	if (!e) {
		*out = def;
		return 0;
	}
	int64_t v = 0;
	int rc = 0;
	/* A bare number's unit can only be guessed by the reader (see moat_duration_ms_parse);
	 * 0 is the one number that means the same in every unit. */
	if (e->value[0] && strspn(e->value, "0123456789") == strlen(e->value) &&
	    strspn(e->value, "0") != strlen(e->value)) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "'%s': a duration needs a unit (s, m, h, d, w), e.g. %ss",
				  e->value, e->value);
	} else {
		rc = moat_duration_parse(e->value, 1, &v, err);
	}
	if (rc == 0 && (v < min || v > max)) {
		rc = moat_err_set(err, MOAT_EINVAL, "'%s': out of range", e->value);
	}
	if (rc != 0) {
		moat_err_prefix(err, "%s:%d: [%s] %s", cfg->path, e->line, section, key);
		return rc;
	}
	*out = v;
	return 0;
}

int moat_config_get_bool(const struct moat_config *cfg, const char *section, const char *key,
			 bool def, bool *out, struct moat_err *err)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	const struct moat_config_entry *e = moat_config_find(cfg, section, key);
	if (!e) {
		*out = def;
		return 0;
	}
	for (size_t i = 0; i < 4; i++) {
		if (strcmp(e->value, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(e->value, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return moat_err_set(err, MOAT_EINVAL, "%s:%d: [%s] %s: '%s' is not true or false",
			    cfg->path, e->line, section, key, e->value);
}

static bool in_list(const char *s, const char *const *list)
{
	for (; *list; list++) {
		if (strcmp(s, *list) == 0) {
			return true;
		}
	}
	return false;
}

int moat_config_check_keys(const struct moat_config *cfg, const char *section,
			   const char *const *allowed, struct moat_err *err)
{
	for (size_t i = 0; i < cfg->count; i++) {
		const struct moat_config_entry *e = &cfg->entries[i];
		if (strcmp(e->section, section) == 0 && !in_list(e->key, allowed)) {
			return moat_err_set(err, MOAT_EINVAL, "%s:%d: unknown key '%s' in [%s]",
					    cfg->path, e->line, e->key, section);
		}
	}
	return 0;
}

int moat_config_check_sections(const struct moat_config *cfg, const char *const *allowed,
			       struct moat_err *err)
{
	for (size_t i = 0; i < cfg->count; i++) {
		const struct moat_config_entry *e = &cfg->entries[i];
		if (!in_list(e->section, allowed)) {
			return moat_err_set(err, MOAT_EINVAL, "%s:%d: unknown section [%s]",
					    cfg->path, e->line, e->section);
		}
	}
	return 0;
}

int moat_config_split_list(const char *value, char ***out_items, size_t *out_count,
			   struct moat_err *err)
{
	size_t n = 1;
	for (const char *p = value; *p; p++) {
		n += *p == ',';
	}
	char **items = calloc(n, sizeof(*items));
	if (!items) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	size_t count = 0;
	const char *start = value;
	for (;;) {
		const char *end = strchr(start, ',');
		if (!end) {
			end = start + strlen(start);
		}
		const char *a = start;
		const char *b = end;
		while (a < b && isspace((unsigned char)*a)) {
			a++;
		}
		while (b > a && isspace((unsigned char)b[-1])) {
			b--;
		}
		if (a == b) {
			moat_config_list_free(items, count);
			return moat_err_set(err, MOAT_EINVAL, "'%s': empty item in list", value);
		}
		items[count] = strndup(a, (size_t)(b - a));
		if (!items[count]) {
			moat_config_list_free(items, count);
			return moat_err_set(err, MOAT_ENOMEM, "out of memory");
		}
		count++;
		if (*end == '\0') {
			break;
		}
		start = end + 1;
	}
	*out_items = items;
	*out_count = count;
	return 0;
}

/* The line when s begins with "<path>:<digits>:", else 0. */
static int has_line(const char *s, const char *path)
{
	size_t n = strlen(path);
	if (strncmp(s, path, n) != 0 || s[n] != ':' || s[n + 1] < '1' || s[n + 1] > '9') {
		return 0;
	}
	int line = 0;
	const char *p = s + n + 1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (line > 100000000) {
			return 0;
		}
		line = line * 10 + (*p - '0');
	}
	return *p == ':' ? line : 0;
}

/* The line of the entry msg names as "[section] key" (longest match), else of the first
 * entry of a "[section]" it names; 0 for none. */
static int named_line(const struct moat_config *cfg, const char *msg)
{
	int line = 0;
	size_t best = 0;
	char name[2 * MOAT_CONFIG_VALUE_MAX];
	for (size_t i = 0; i < cfg->count; i++) {
		const struct moat_config_entry *e = &cfg->entries[i];
		int n = snprintf(name, sizeof(name), "[%s] %s", e->section, e->key);
		if (n > 0 && (size_t)n < sizeof(name) && (size_t)n > best && strstr(msg, name)) {
			const char *at = strstr(msg, name);
			char next = at[n];
			/* "[broker] host" must not match "[broker] hosts" */
			if (!((next >= 'a' && next <= 'z') || (next >= '0' && next <= '9') ||
			      next == '_')) {
				best = (size_t)n;
				line = e->line;
			}
		}
	}
	for (size_t i = 0; i < cfg->count && line == 0; i++) {
		const struct moat_config_entry *e = &cfg->entries[i];
		int n = snprintf(name, sizeof(name), "[%s]", e->section);
		if (n > 0 && (size_t)n < sizeof(name) && strstr(msg, name)) {
			line = e->line;
		}
	}
	return line;
}

int moat_config_error_where(const struct moat_config *cfg, const char *msg, char *out, size_t size)
{
	const char *path = cfg->path ? cfg->path : "";
	size_t n = strlen(path);
	if (size == 0) {
		return 0;
	}
	int known = has_line(msg, path);
	if (known > 0) {
		snprintf(out, size, "%s", msg);
		return known;
	}
	if (strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ') {
		msg += n + 2;
	}
	int line = named_line(cfg, msg);
	if (line > 0) {
		snprintf(out, size, "%s:%d: %s", path, line, msg);
	} else {
		snprintf(out, size, "%s: %s", path, msg);
	}
	return line;
}

void moat_config_list_free(char **items, size_t count)
{
	if (!items) {
		return;
	}
	for (size_t i = 0; i < count; i++) {
		free(items[i]);
	}
	free(items);
}
