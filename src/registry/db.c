/* db.c: the statement layer of db.h. SQLite: each call is the sqlite3_* call the registry's
 * files made before. PostgreSQL (MOAT_HAVE_LIBPQ): a statement is its translated text and
 * its parameters until the first step runs it with PQexecParams; rows are read from the
 * result in text form. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

#ifdef MOAT_HAVE_LIBPQ
#include <libpq-fe.h>
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_TEXT 25
#define OID_FLOAT8 701
#endif

struct rdb_stmt {
	struct rdb *c;
	sqlite3_stmt *lite;
	/* PostgreSQL */
	char *sql;
	int nparams;
	char **values;
	int *lengths;
	int *formats;
	unsigned int *types;
	struct pg_result *res;
	int row, rows;
	int64_t changes;
	unsigned char *blob; /* the last column_blob's bytes, freed at the next step */
};

/* ---- SQLite ---- */

static int lite_code(sqlite3 *db, int rc)
{
	switch (rc) {
	case SQLITE_ROW:
		return RDB_ROW;
	case SQLITE_DONE:
	case SQLITE_OK:
		return RDB_DONE;
	case SQLITE_FULL:
		return RDB_E_FULL;
	case SQLITE_CONSTRAINT:
		switch (sqlite3_extended_errcode(db)) {
		case SQLITE_CONSTRAINT_PRIMARYKEY:
			return RDB_E_PRIMARYKEY;
		case SQLITE_CONSTRAINT_UNIQUE:
			return RDB_E_UNIQUE;
		default:
			return RDB_E_CONSTRAINT;
		}
	default:
		return RDB_E_ERROR;
	}
}

void rdb_attach_sqlite(struct rdb *c, sqlite3 *db)
{
	memset(c, 0, sizeof(*c));
	c->backend = RDB_SQLITE;
	c->lite = db;
}

/* ---- URLs ---- */

/* The query parameters a registry URL may carry: TLS and connection tuning. Not host=,
 * hostaddr=, port=, dbname=, user=, service= (they would send the connection elsewhere
 * than the URL's text names, in every message too), nor password=. */
static const char *const url_params[] = {
	"sslmode",
	"sslrootcert",
	"sslcert",
	"sslkey",
	"sslcrl",
	"sslcrldir",
	"sslsni",
	"ssl_min_protocol_version",
	"channel_binding",
	"connect_timeout",
	"application_name",
	"target_session_attrs",
	"keepalives",
	"keepalives_idle",
	"keepalives_interval",
	"keepalives_count",
	"tcp_user_timeout",
	NULL,
};

static int hex_digit(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

/* n bytes at s percent-decoded into out (as libpq decodes them); false when malformed, when
 * they decode to a NUL, or when they do not fit. */
static bool url_decode(const char *s, size_t n, char *out, size_t size)
{
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			if (i + 2 >= n) {
				return false;
			}
			int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
			if (hi < 0 || lo < 0) {
				return false;
			}
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (c == '\0' || j + 1 >= size) {
			return false;
		}
		out[j++] = c;
	}
	out[j] = '\0';
	return true;
}

/* Whether the host text (between // or @ and the port or /) is this machine: localhost,
 * 127.0.0.0/8, [::1], or a Unix socket's directory (percent-encoded, starting with /). */
static bool url_host_local(const char *host, size_t n)
{
	char h[256];
	if (!url_decode(host, n, h, sizeof(h))) {
		return false;
	}
	if (h[0] == '[') {
		char *rb = strchr(h, ']');
		if (rb) {
			rb[1] = '\0'; /* the port after it is not the host */
		}
	}
	if (strcmp(h, "localhost") == 0 || strcmp(h, "[::1]") == 0 || h[0] == '/') {
		return true;
	}
	if (strncmp(h, "127.", 4) != 0) {
		return false;
	}
	for (const char *p = h; *p; p++) {
		if (!isdigit((unsigned char)*p) && *p != '.') {
			return false;
		}
	}
	return true;
}

/* The query (after '?'): every parameter one of url_params, names and values decoded as
 * libpq decodes them; *verified: sslmode is verify-full or verify-ca. */
static int url_query_check(const char *q, bool *verified, const char **why)
{
	*verified = false;
	while (*q) {
		size_t n = strcspn(q, "&");
		const char *eq = memchr(q, '=', n);
		char name[64], value[1100]; /* a URL holds at most 1024 characters */
		if (!eq || eq == q || !url_decode(q, (size_t)(eq - q), name, sizeof(name)) ||
		    !url_decode(eq + 1, n - (size_t)(eq + 1 - q), value, sizeof(value))) {
			*why = "has a malformed query parameter";
			return -1;
		}
		if (strcmp(name, "password") == 0) {
			*why = "holds a password parameter: put it in ~/.pgpass (or PGPASSFILE) of "
			       "the account moat runs as, not in moat.conf";
			return -1;
		}
		bool known = false;
		for (size_t i = 0; url_params[i]; i++) {
			known = known || strcmp(name, url_params[i]) == 0;
		}
		if (!known) {
			*why = "has a query parameter moat does not accept (only ssl*, "
			       "channel_binding, connect_timeout, application_name, "
			       "target_session_attrs, keepalives*, tcp_user_timeout)";
			return -1;
		}
		if (strcmp(name, "sslmode") == 0) {
			*verified = strcmp(value, "verify-full") == 0 ||
				    strcmp(value, "verify-ca") == 0;
		}
		q += n;
		if (*q == '&') {
			q++;
		}
	}
	return 0;
}

int rdb_url_check(const char *url, const char **why)
{
	const char *p;
	*why = NULL;
	if (strncmp(url, "postgresql://", 13) == 0) {
		p = url + 13;
	} else if (strncmp(url, "postgres://", 11) == 0) {
		p = url + 11;
	} else {
		*why = "must start with postgresql://";
		return -1;
	}
	if (strlen(url) > 1024) {
		*why = "longer than 1024 characters";
		return -1;
	}
	for (const char *s = url; *s; s++) {
		if ((unsigned char)*s <= ' ' || *s == 0x7f) {
			*why = "holds a space or a control character";
			return -1;
		}
	}
	const char *slash = strchr(p, '/');
	if (!slash) {
		*why = "names no database (postgresql://host[:port]/dbname)";
		return -1;
	}
	const char *at = memchr(p, '@', (size_t)(slash - p));
	const char *host = at ? at + 1 : p;
	if (at && at == p) {
		*why = "has an empty user name";
		return -1;
	}
	const char *host_end = slash;
	const char *colon = NULL;
	if (*host == '[') { /* [IPv6] */
		const char *rb = memchr(host, ']', (size_t)(slash - host));
		if (!rb || rb == host + 1) {
			*why = "has a malformed [IPv6] host";
			return -1;
		}
		if (rb + 1 < slash) {
			if (rb[1] != ':') {
				*why = "has text after the [IPv6] host";
				return -1;
			}
			colon = rb + 1;
		}
	} else {
		colon = memchr(host, ':', (size_t)(slash - host));
		if (colon) {
			host_end = colon;
		}
	}
	if (host_end == host) {
		*why = "names no host";
		return -1;
	}
	if (colon) {
		long port = 0;
		const char *d = colon + 1;
		if (d == slash) {
			*why = "has an empty port";
			return -1;
		}
		for (; d < slash; d++) {
			if (!isdigit((unsigned char)*d) || port > 65535) {
				*why = "has a port that is not 1-65535";
				return -1;
			}
			port = port * 10 + (*d - '0');
		}
		if (port < 1 || port > 65535) {
			*why = "has a port that is not 1-65535";
			return -1;
		}
	}
	const char *db = slash + 1;
	if (*db == '\0' || *db == '?') {
		*why = "names no database (postgresql://host[:port]/dbname)";
		return -1;
	}
	const char *query = strchr(db, '?');
	bool verified = false;
	if (query && url_query_check(query + 1, &verified, why) != 0) {
		return -1;
	}
	if (!verified && !url_host_local(host, (size_t)(host_end - host))) {
		*why = "names a host other than this machine without sslmode=verify-full (or "
		       "verify-ca): the registry never goes over a connection whose server is "
		       "not verified";
		return -1;
	}
	return 0;
}

/* ---- PostgreSQL ---- */

#ifdef MOAT_HAVE_LIBPQ
#define PG(c) ((PGconn *)(c)->pg)

bool rdb_pg_available(void)
{
	return true;
}

static void pg_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg; /* NOTICEs ("relation exists, skipping"...) are not errors: not printed */
}

static void pg_msg(struct rdb *c, const char *msg)
{
	snprintf(c->errmsg, sizeof(c->errmsg), "%s", msg ? msg : "unknown error");
	size_t n = strlen(c->errmsg);
	while (n > 0 && (c->errmsg[n - 1] == '\n' || c->errmsg[n - 1] == ' ')) {
		c->errmsg[--n] = '\0'; /* libpq's messages end with a newline */
	}
	/* and may hold several lines ("connection ... failed: ...\n\tIs the server running"):
	 * one line, as every error moat prints */
	for (char *p = c->errmsg; *p; p++) {
		if (*p == '\n' || *p == '\t' || *p == '\r') {
			*p = ' ';
		}
	}
}

int rdb_connect_pg(struct rdb *c, const char *url)
{
	memset(c, 0, sizeof(*c));
	c->backend = RDB_POSTGRES;
	const char *why = NULL;
	if (rdb_url_check(url, &why) != 0) {
		snprintf(c->errmsg, sizeof(c->errmsg), "registry URL %s", why);
		return -1;
	}
	/* a default connect_timeout (an unreachable host would block every command for TCP's
	 * own two minutes); a connect_timeout of the URL comes later and wins */
	/* and, after the URL so they win, UTF-8 on the wire whatever PGCLIENTENCODING says
	 * (a conversion would garble text on the way in and back again unseen) and floats
	 * written with every digit */
	const char *const keys[] = {"connect_timeout", "dbname", "client_encoding", "options",
				    NULL};
	const char *const values[] = {"10", url, "UTF8", "-c extra_float_digits=3", NULL};
	PGconn *conn = PQconnectdbParams(keys, values, 1);
	if (!conn) {
		snprintf(c->errmsg, sizeof(c->errmsg), "out of memory");
		return -1;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		pg_msg(c, PQerrorMessage(conn));
		PQfinish(conn);
		return -1;
	}
	PQsetNoticeProcessor(conn, pg_notice, NULL);
	c->pg = (struct pg_conn *)conn;
	return 0;
}

/* The RDB_E* code of a failed result: SQLSTATE class 23 is a constraint, 53100 a full
 * disk; a primary key is told from another unique constraint by its name. */
static int pg_code(struct rdb *c, PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	pg_msg(c, res ? PQresultErrorMessage(res) : PQerrorMessage(PG(c)));
	int code = RDB_E_ERROR;
	if (state && strcmp(state, "23505") == 0) {
		const char *name = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
		size_t n = name ? strlen(name) : 0;
		code = (n > 5 && strcmp(name + n - 5, "_pkey") == 0) ? RDB_E_PRIMARYKEY
								     : RDB_E_UNIQUE;
	} else if (state && strncmp(state, "23", 2) == 0) {
		code = RDB_E_CONSTRAINT;
	} else if (state && strcmp(state, "53100") == 0) {
		code = RDB_E_FULL;
	}
	c->errcode = code;
	return code;
}

static int pg_exec(struct rdb *c, const char *sql)
{
	PGresult *res = PQexec(PG(c), sql);
	ExecStatusType s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	int rc = (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) ? RDB_DONE : pg_code(c, res);
	PQclear(res);
	return rc;
}

static void pg_clear(struct rdb_stmt *st)
{
	PQclear((PGresult *)st->res);
	st->res = NULL;
	st->row = st->rows = 0;
	PQfreemem(st->blob);
	st->blob = NULL;
}

static int pg_step(struct rdb_stmt *st)
{
	struct rdb *c = st->c;
	PQfreemem(st->blob);
	st->blob = NULL;
	if (st->res) {
		return ++st->row < st->rows ? RDB_ROW : RDB_DONE;
	}
	PGresult *res = PQexecParams(PG(c), st->sql, st->nparams, st->types,
				     (const char *const *)st->values, st->lengths, st->formats, 0);
	ExecStatusType s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
		int rc = pg_code(c, res);
		PQclear(res);
		return rc;
	}
	st->res = (struct pg_result *)res;
	st->rows = PQntuples(res);
	st->row = 0;
	const char *n = PQcmdTuples(res);
	st->changes = (n && *n) ? strtoll(n, NULL, 10) : 0;
	return st->rows > 0 ? RDB_ROW : RDB_DONE;
}

static const char *pg_value(struct rdb_stmt *st, int col)
{
	PGresult *res = (PGresult *)st->res;
	if (!res || st->row >= st->rows || col < 0 || col >= PQnfields(res) ||
	    PQgetisnull(res, st->row, col)) {
		return NULL;
	}
	return PQgetvalue(res, st->row, col);
}

#else
bool rdb_pg_available(void)
{
	return false;
}

int rdb_connect_pg(struct rdb *c, const char *url)
{
	(void)url;
	memset(c, 0, sizeof(*c));
	snprintf(c->errmsg, sizeof(c->errmsg),
		 "this moat was built without PostgreSQL support (libpq): use a SQLite "
		 "registry, or rebuild with libpq-dev installed");
	return -1;
}
#endif

void rdb_disconnect(struct rdb *c)
{
	for (int i = 0; i < c->cache_n; i++) {
		sqlite3_finalize(c->cache[i]->lite);
		free(c->cache[i]->sql);
		free(c->cache[i]);
	}
	c->cache_n = 0;
#ifdef MOAT_HAVE_LIBPQ
	if (c->backend == RDB_POSTGRES && c->pg) {
		PQfinish(PG(c));
	}
#endif
	c->pg = NULL;
}

/* ---- statements ---- */

static int pg_stmt_init(struct rdb_stmt *st, const char *pg_sql, bool translate)
{
	size_t size = strlen(pg_sql) * 4 + 64; /* a bare ? becomes up to $999 */
	if (!(st->sql = malloc(size))) {
		return -1;
	}
	int n = 0;
	if (translate) {
		if (rdb_translate(pg_sql, st->sql, size, &n) != 0) {
			return -1;
		}
	} else {
		snprintf(st->sql, size, "%s", pg_sql);
		/* the highest $N of a text written for PostgreSQL */
		for (const char *p = st->sql; (p = strchr(p, '$')) != NULL; p++) {
			int v = (int)strtol(p + 1, NULL, 10);
			n = v > n ? v : n;
		}
	}
	st->nparams = n;
	if (n > 0) {
		st->values = calloc((size_t)n, sizeof(*st->values));
		st->lengths = calloc((size_t)n, sizeof(*st->lengths));
		st->formats = calloc((size_t)n, sizeof(*st->formats));
		st->types = calloc((size_t)n, sizeof(*st->types));
		if (!st->values || !st->lengths || !st->formats || !st->types) {
			return -1;
		}
	}
	return 0;
}

/* SQLite: the newest idle statement of this text from the cache, else a new one (its text
 * kept, so rdb_finalize can cache it). */
static int lite_prepare(struct rdb *c, const char *sql, struct rdb_stmt **out)
{
	for (int i = c->cache_n - 1; i >= 0; i--) {
		struct rdb_stmt *st = c->cache[i];
		if (strcmp(st->sql, sql) == 0) {
			memmove(&c->cache[i], &c->cache[i + 1],
				(size_t)(c->cache_n - i - 1) * sizeof(c->cache[0]));
			c->cache_n--;
			*out = st;
			return 0;
		}
	}
	struct rdb_stmt *st = calloc(1, sizeof(*st));
	if (!st) {
		return RDB_E_ERROR;
	}
	st->c = c;
	st->sql = strdup(sql); /* NULL (out of memory): the statement is simply not cached */
	if (sqlite3_prepare_v2(c->lite, sql, -1, &st->lite, NULL) != SQLITE_OK) {
		free(st->sql);
		free(st);
		return RDB_E_ERROR;
	}
	*out = st;
	return 0;
}

/* SQLite: keeps st compiled for the next rdb_prepare of its text (the oldest idle one
 * finalized when the cache is full); false when it cannot be kept. */
static bool lite_keep(struct rdb_stmt *st)
{
	struct rdb *c = st->c;
	if (!st->sql || c->backend != RDB_SQLITE) {
		return false;
	}
	sqlite3_reset(st->lite); /* ends its read, whatever its last step said */
	sqlite3_clear_bindings(st->lite);
	if (c->cache_n == RDB_STMT_CACHE_MAX) {
		struct rdb_stmt *old = c->cache[0];
		memmove(&c->cache[0], &c->cache[1], (size_t)(c->cache_n - 1) * sizeof(c->cache[0]));
		c->cache_n--;
		sqlite3_finalize(old->lite);
		free(old->sql);
		free(old);
	}
	c->cache[c->cache_n++] = st;
	return true;
}

int rdb_prepare2(struct rdb *c, const char *sqlite_sql, const char *pg_sql, struct rdb_stmt **out)
{
	*out = NULL;
	struct rdb_stmt *st = calloc(1, sizeof(*st));
	if (!st) {
		return RDB_E_ERROR;
	}
	st->c = c;
	if (c->backend == RDB_SQLITE) {
		free(st);
		return lite_prepare(c, sqlite_sql, out);
	}
	if (c->backend != RDB_POSTGRES ||
	    pg_stmt_init(st, pg_sql ? pg_sql : sqlite_sql, pg_sql == NULL) != 0) {
		snprintf(c->errmsg, sizeof(c->errmsg), "cannot prepare: %.200s", sqlite_sql);
		c->errcode = RDB_E_ERROR;
		rdb_finalize(st);
		return RDB_E_ERROR;
	}
	*out = st;
	return 0;
}

int rdb_prepare(struct rdb *c, const char *sql, struct rdb_stmt **out)
{
	return rdb_prepare2(c, sql, NULL, out);
}

static void pg_set(struct rdb_stmt *st, int idx, char *value, int len, int format,
		   unsigned int type)
{
	if (idx < 1 || idx > st->nparams) {
		free(value);
		return; /* as sqlite3_bind_*: an index out of range binds nothing */
	}
	free(st->values[idx - 1]);
	st->values[idx - 1] = value;
	st->lengths[idx - 1] = len;
	st->formats[idx - 1] = format;
	st->types[idx - 1] = type;
}

void rdb_bind_text(struct rdb_stmt *st, int idx, const char *v)
{
	if (st->lite) {
		sqlite3_bind_text(st->lite, idx, v, -1, SQLITE_STATIC);
		return;
	}
#ifdef MOAT_HAVE_LIBPQ
	char *copy = v ? strdup(v) : NULL;
	pg_set(st, idx, copy, 0, 0, v ? OID_TEXT : 0);
#endif
}

void rdb_bind_text_n(struct rdb_stmt *st, int idx, const char *v, size_t n)
{
	if (st->lite) {
		sqlite3_bind_text64(st->lite, idx, v, n, SQLITE_STATIC, SQLITE_UTF8);
		return;
	}
#ifdef MOAT_HAVE_LIBPQ
	char *copy = v ? strndup(v, n) : NULL;
	pg_set(st, idx, copy, 0, 0, v ? OID_TEXT : 0);
#endif
}

void rdb_bind_int64(struct rdb_stmt *st, int idx, int64_t v)
{
	if (st->lite) {
		sqlite3_bind_int64(st->lite, idx, v);
		return;
	}
#ifdef MOAT_HAVE_LIBPQ
	char num[24];
	snprintf(num, sizeof(num), "%lld", (long long)v);
	pg_set(st, idx, strdup(num), 0, 0, OID_INT8);
#endif
}

void rdb_bind_double(struct rdb_stmt *st, int idx, double v)
{
	if (st->lite) {
		sqlite3_bind_double(st->lite, idx, v);
		return;
	}
#ifdef MOAT_HAVE_LIBPQ
	/* 17 significant digits: PostgreSQL's float8 input reads back the same double */
	char num[40];
	snprintf(num, sizeof(num), "%.17g", v);
	pg_set(st, idx, strdup(num), 0, 0, OID_FLOAT8);
#endif
}

void rdb_bind_blob(struct rdb_stmt *st, int idx, const void *v, size_t n)
{
	if (st->lite) {
		sqlite3_bind_blob64(st->lite, idx, v, n, SQLITE_STATIC);
		return;
	}
#ifdef MOAT_HAVE_LIBPQ
	char *copy = malloc(n ? n : 1);
	if (copy && n) {
		memcpy(copy, v, n);
	}
	pg_set(st, idx, copy, (int)n, 1, OID_BYTEA);
#endif
}

void rdb_bind_null(struct rdb_stmt *st, int idx)
{
	if (st->lite) {
		sqlite3_bind_null(st->lite, idx);
		return;
	}
#ifdef MOAT_HAVE_LIBPQ
	pg_set(st, idx, NULL, 0, 0, 0);
#endif
}

int rdb_param_count(struct rdb_stmt *st)
{
	return st->lite ? sqlite3_bind_parameter_count(st->lite) : st->nparams;
}

int rdb_step(struct rdb_stmt *st)
{
	if (st->lite) {
		return lite_code(st->c->lite, sqlite3_step(st->lite));
	}
#ifdef MOAT_HAVE_LIBPQ
	return pg_step(st);
#else
	return RDB_E_ERROR;
#endif
}

void rdb_reset(struct rdb_stmt *st)
{
	if (st->lite) {
		sqlite3_reset(st->lite);
		return;
	}
#ifdef MOAT_HAVE_LIBPQ
	pg_clear(st); /* the bound values stay, as SQLite's do */
#endif
}

void rdb_finalize(struct rdb_stmt *st)
{
	if (!st) {
		return;
	}
	if (st->lite && lite_keep(st)) {
		return;
	}
	if (st->lite) {
		sqlite3_finalize(st->lite);
	}
#ifdef MOAT_HAVE_LIBPQ
	pg_clear(st);
#endif
	for (int i = 0; st->values && i < st->nparams; i++) {
		free(st->values[i]);
	}
	free(st->values);
	free(st->lengths);
	free(st->formats);
	free(st->types);
	free(st->sql);
	free(st);
}

int64_t rdb_changes(struct rdb_stmt *st)
{
	return st->lite ? sqlite3_changes(st->c->lite) : st->changes;
}

bool rdb_column_is_null(struct rdb_stmt *st, int col)
{
	if (st->lite) {
		return sqlite3_column_type(st->lite, col) == SQLITE_NULL;
	}
#ifdef MOAT_HAVE_LIBPQ
	return pg_value(st, col) == NULL;
#else
	return true;
#endif
}

int64_t rdb_column_int64(struct rdb_stmt *st, int col)
{
	if (st->lite) {
		return sqlite3_column_int64(st->lite, col);
	}
#ifdef MOAT_HAVE_LIBPQ
	const char *v = pg_value(st, col);
	if (!v) {
		return 0;
	}
	if (v[0] == 't' && v[1] == '\0') { /* a boolean, as SQLite's 1 */
		return 1;
	}
	return strtoll(v, NULL, 10);
#else
	return 0;
#endif
}

double rdb_column_double(struct rdb_stmt *st, int col)
{
	if (st->lite) {
		return sqlite3_column_double(st->lite, col);
	}
#ifdef MOAT_HAVE_LIBPQ
	const char *v = pg_value(st, col);
	return v ? strtod(v, NULL) : 0.0;
#else
	return 0.0;
#endif
}

const char *rdb_column_text(struct rdb_stmt *st, int col)
{
	if (st->lite) {
		return (const char *)sqlite3_column_text(st->lite, col);
	}
#ifdef MOAT_HAVE_LIBPQ
	return pg_value(st, col);
#else
	return NULL;
#endif
}

size_t rdb_column_bytes(struct rdb_stmt *st, int col)
{
	if (st->lite) {
		return (size_t)sqlite3_column_bytes(st->lite, col);
	}
#ifdef MOAT_HAVE_LIBPQ
	PGresult *res = (PGresult *)st->res;
	if (!pg_value(st, col)) {
		return 0;
	}
	return (size_t)PQgetlength(res, st->row, col);
#else
	return 0;
#endif
}

void rdb_column_copy(struct rdb_stmt *st, int col, char *buf, size_t size)
{
	const char *t = rdb_column_text(st, col);
	snprintf(buf, size, "%s", t ? t : "");
}

const void *rdb_column_blob(struct rdb_stmt *st, int col, size_t *n)
{
	if (st->lite) {
		*n = (size_t)sqlite3_column_bytes(st->lite, col);
		return sqlite3_column_blob(st->lite, col);
	}
	*n = 0;
#ifdef MOAT_HAVE_LIBPQ
	const char *v = pg_value(st, col);
	if (!v) {
		return NULL;
	}
	PQfreemem(st->blob);
	st->blob = PQunescapeBytea((const unsigned char *)v, n);
	return st->blob;
#else
	return NULL;
#endif
}

/* ---- transactions ---- */

int rdb_exec(struct rdb *c, const char *sql)
{
	if (c->backend == RDB_SQLITE) {
		return lite_code(c->lite, sqlite3_exec(c->lite, sql, NULL, NULL, NULL));
	}
#ifdef MOAT_HAVE_LIBPQ
	return pg_exec(c, sql);
#else
	return RDB_E_ERROR;
#endif
}

int rdb_begin(struct rdb *c)
{
	if (c->backend == RDB_SQLITE) {
		return rdb_exec(c, "BEGIN IMMEDIATE");
	}
	/* PostgreSQL only warns at a BEGIN inside a transaction and carries on in the outer one:
	 * refused as SQLite refuses it, so a caller's transaction is never silently joined */
	if (c->pg_in_tx || c->pg_savepoints > 0) {
		snprintf(c->errmsg, sizeof(c->errmsg),
			 "cannot start a transaction within a transaction");
		c->errcode = RDB_E_ERROR;
		return RDB_E_ERROR;
	}
	int rc = rdb_exec(c, "BEGIN");
	c->pg_in_tx = rc == 0;
	return rc;
}

int rdb_commit(struct rdb *c)
{
	/* PostgreSQL only warns at a COMMIT outside a transaction: refused as SQLite refuses
	 * it, so a caller that lost its transaction hears of it */
	if (c->backend == RDB_POSTGRES && !c->pg_in_tx) {
		snprintf(c->errmsg, sizeof(c->errmsg), "cannot commit - no transaction is active");
		c->errcode = RDB_E_ERROR;
		return RDB_E_ERROR;
	}
	if (c->backend != RDB_POSTGRES) {
		return rdb_exec(c, "COMMIT");
	}
	c->pg_in_tx = false; /* a failed COMMIT ends the transaction too */
#ifdef MOAT_HAVE_LIBPQ
	/* a transaction in which a statement failed is aborted: PostgreSQL answers its COMMIT
	 * with the tag ROLLBACK and no error, which must not pass for a commit */
	PGresult *res = PQexec(PG(c), "COMMIT");
	ExecStatusType s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	int rc = s == PGRES_COMMAND_OK ? RDB_DONE : pg_code(c, res);
	if (rc == RDB_DONE && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
		snprintf(c->errmsg, sizeof(c->errmsg),
			 "the transaction was rolled back: a statement in it had failed");
		c->errcode = RDB_E_ERROR;
		rc = RDB_E_ERROR;
	}
	PQclear(res);
	return rc;
#else
	return RDB_E_ERROR;
#endif
}

void rdb_rollback(struct rdb *c)
{
	rdb_exec(c, "ROLLBACK");
	c->pg_in_tx = false;
}

/* Names are the caller's constants, never outside text. On PostgreSQL a savepoint needs a
 * transaction: outside one, the outermost savepoint opens its own and its release or
 * rollback ends it. */
int rdb_savepoint(struct rdb *c, const char *name)
{
	char sql[96];
	snprintf(sql, sizeof(sql), "SAVEPOINT %s", name);
	if (c->backend != RDB_POSTGRES) {
		return rdb_exec(c, sql);
	}
	/* counted only once it exists; a transaction opened for it ends with it when it
	 * cannot be made */
	bool opened = false;
	if (c->pg_savepoints == 0 && !c->pg_in_tx) {
		int rc = rdb_exec(c, "BEGIN");
		if (rc != 0) {
			return rc;
		}
		opened = true;
	}
	int rc = rdb_exec(c, sql);
	if (rc != 0) {
		if (opened) {
			char keep[sizeof(c->errmsg)];
			snprintf(keep, sizeof(keep), "%s", c->errmsg);
			int code = c->errcode;
			rdb_exec(c, "ROLLBACK");
			snprintf(c->errmsg, sizeof(c->errmsg), "%s", keep);
			c->errcode = code;
		}
		return rc;
	}
	if (opened || c->pg_savepoints > 0) {
		c->pg_savepoints++;
	}
	return 0;
}

/* The end of a savepoint on PostgreSQL: the last one of a transaction it opened ends it. */
static int pg_savepoint_end(struct rdb *c, bool keep)
{
	if (c->backend != RDB_POSTGRES || c->pg_savepoints == 0 || --c->pg_savepoints > 0) {
		return 0;
	}
	return rdb_exec(c, keep ? "COMMIT" : "ROLLBACK");
}

int rdb_release(struct rdb *c, const char *name)
{
	char sql[96];
	snprintf(sql, sizeof(sql), "RELEASE %s", name);
	int rc = rdb_exec(c, sql);
	int end = pg_savepoint_end(c, rc == 0);
	return rc != 0 ? rc : end;
}

void rdb_rollback_to(struct rdb *c, const char *name)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "ROLLBACK TO %s; RELEASE %s", name, name);
	rdb_exec(c, sql);
	pg_savepoint_end(c, false);
}

int rdb_errcode(struct rdb *c)
{
	if (c->backend == RDB_SQLITE) {
		return lite_code(c->lite, sqlite3_errcode(c->lite));
	}
	return c->errcode;
}

const char *rdb_errmsg(struct rdb *c)
{
	if (c->backend == RDB_SQLITE) {
		return sqlite3_errmsg(c->lite);
	}
	return c->errmsg[0] ? c->errmsg : "unknown error";
}
