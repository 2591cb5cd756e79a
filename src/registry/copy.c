/* copy.c: a SQLite registry copied into a new PostgreSQL one, and the proof that the copy
 * holds what the original holds (`moat registry migrate`, registry.h).
 *
 * Both sides are described from their own catalog (SQLite's sqlite_master and
 * pragma_table_info; PostgreSQL's pg_tables and information_schema), so the copy also
 * proves the two schemas agree: the same tables, columns, types, primary keys and
 * AUTOINCREMENT (identity) columns. The target's schema is made by open_pg.c's create path
 * in a transaction that stays open: the rows, the sequences and the proof happen in it and
 * it commits only when every table's count, checksum and sequence are equal, so a failure
 * leaves the target database as it was (empty).
 *
 * A table's checksum is SHA-256 over its name, its columns and then its rows in primary-key
 * order (then every other column: a table without a key, telemetry, is ordered by all of
 * them), each value rendered by its declared type, not as the engine prints it: an integer
 * as 8 bytes, a real as its IEEE-754 bits, text and blobs with their length. Text orders by
 * bytes on both (PostgreSQL: COLLATE "C", as SQLite's BINARY). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "registry_internal.h"

#define COLS_MAX 32
#define NAME_MAX_LEN MOAT_REGISTRY_TABLE_NAME_MAX
#define SQL_MAX 8192
#define PARAMS_MAX 999 /* the highest ?N the statement layer translates */
#define BATCH_ROWS_MAX 100

struct column {
	char name[NAME_MAX_LEN + 1];
	char type; /* 'I' integer, 'R' real, 'T' text, 'B' blob */
	int pk;	   /* position in the primary key, 1-based; 0: not in it */
};

struct table {
	char name[NAME_MAX_LEN + 1];
	int ncols;
	struct column cols[COLS_MAX];
	bool autoinc;	    /* its one INTEGER key hands out ids (AUTOINCREMENT, identity) */
	bool without_rowid; /* SQLite: a WITHOUT ROWID table */
	bool done;	    /* copied (the foreign-key order) */
};

struct shape {
	size_t count;
	struct table t[MOAT_REGISTRY_TABLES_MAX];
};

static int fail(struct moat_registry *reg, struct moat_err *err, const char *what)
{
	return reg_db_fail(reg, err, what);
}

/* Only names our schema uses: nothing read from a catalog is ever spliced into SQL
 * unless it is made of these. */
static bool plain_name(const char *s)
{
	if (!s || !*s || strlen(s) > NAME_MAX_LEN) {
		return false;
	}
	for (; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) {
			return false;
		}
	}
	return true;
}

static char type_of(bool pg, const char *declared)
{
	static const char *const lite[] = {"INTEGER", "REAL", "TEXT", "BLOB"};
	static const char *const post[] = {"bigint", "double precision", "text", "bytea"};
	static const char code[] = {'I', 'R', 'T', 'B'};
	for (size_t i = 0; declared && i < sizeof(code); i++) {
		if (strcmp(declared, pg ? post[i] : lite[i]) == 0) {
			return code[i];
		}
	}
	return 0;
}

static int cmp_table(const void *a, const void *b)
{
	return strcmp(((const struct table *)a)->name, ((const struct table *)b)->name);
}

static int read_columns(struct moat_registry *reg, bool pg, struct table *t, struct moat_err *err)
{
	struct rdb *c = reg_db(reg);
	struct rdb_stmt *st = NULL;
	if (rdb_prepare2(
		    c, "SELECT name, upper(type), pk FROM pragma_table_info(?1) ORDER BY cid",
		    "SELECT c.column_name::text, c.data_type::text, COALESCE(("
		    "SELECT k.ordinal_position FROM information_schema.table_constraints tc "
		    "JOIN information_schema.key_column_usage k ON k.constraint_name = "
		    "tc.constraint_name AND k.table_schema = tc.table_schema AND k.table_name = "
		    "tc.table_name WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema "
		    "= c.table_schema AND tc.table_name = c.table_name AND k.column_name = "
		    "c.column_name), 0) FROM information_schema.columns c WHERE c.table_schema "
		    "= current_schema() AND c.table_name::text = $1 ORDER BY c.ordinal_position",
		    &st) != 0) {
		return fail(reg, err, "columns");
	}
	rdb_bind_text(st, 1, t->name);
	int s;
	int rc = 0;
	t->ncols = 0;
	while ((s = rdb_step(st)) == RDB_ROW) {
		const char *name = rdb_column_text(st, 0);
		char type = type_of(pg, rdb_column_text(st, 1));
		if (t->ncols == COLS_MAX || !plain_name(name) || !type) {
			rc = moat_err_set(
				err, MOAT_EINVAL,
				"%s: table %s: column %s of type %s: not one a registry has",
				reg->path, t->name, name ? name : "?",
				rdb_column_text(st, 1) ? rdb_column_text(st, 1) : "?");
			break;
		}
		struct column *col = &t->cols[t->ncols++];
		snprintf(col->name, sizeof(col->name), "%s", name);
		col->type = type;
		col->pk = (int)rdb_column_int64(st, 2);
	}
	rdb_finalize(st);
	if (rc == 0 && s != RDB_DONE) {
		rc = fail(reg, err, "columns");
	}
	return rc;
}

/* The one INTEGER column of a single-column key, or NULL. */
static const struct column *int_key(const struct table *t)
{
	const struct column *key = NULL;
	for (int i = 0; i < t->ncols; i++) {
		if (t->cols[i].pk > 0) {
			if (key || t->cols[i].type != 'I') {
				return NULL;
			}
			key = &t->cols[i];
		}
	}
	return key;
}

static int read_autoinc(struct moat_registry *reg, struct table *t, struct moat_err *err)
{
	const struct column *key = int_key(t);
	struct rdb_stmt *st = NULL;
	if (!key && reg_db(reg)->backend == RDB_POSTGRES) {
		return 0; /* no one integer key: no sequence */
	}
	if (rdb_prepare2(reg_db(reg),
			 "SELECT ?2 IS NOT NULL AND sql LIKE '%AUTOINCREMENT%', sql LIKE '%WITHOUT "
			 "ROWID%' FROM sqlite_master WHERE type = 'table' AND name = ?1",
			 "SELECT pg_get_serial_sequence($1, $2) IS NOT NULL, false", &st) != 0) {
		return fail(reg, err, "sequences");
	}
	rdb_bind_text(st, 1, t->name);
	if (key) {
		rdb_bind_text(st, 2, key->name);
	} else {
		rdb_bind_null(st, 2);
	}
	int s = rdb_step(st);
	if (s == RDB_ROW) {
		t->autoinc = key && rdb_column_int64(st, 0) != 0;
		t->without_rowid = rdb_column_int64(st, 1) != 0;
	}
	rdb_finalize(st);
	if (s != RDB_ROW) {
		return fail(reg, err, "sequences");
	}
	return 0;
}

/* Every table of reg (not SQLite's own, not moat_schema), sorted by name. */
static int read_shape(struct moat_registry *reg, struct shape *out, struct moat_err *err)
{
	struct rdb *c = reg_db(reg);
	bool pg = c->backend == RDB_POSTGRES;
	struct rdb_stmt *st = NULL;
	memset(out, 0, sizeof(*out));
	if (rdb_prepare2(c,
			 "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
			 "'sqlite!_%' ESCAPE '!'",
			 "SELECT tablename::text FROM pg_catalog.pg_tables WHERE schemaname = "
			 "current_schema() AND tablename <> 'moat_schema'",
			 &st) != 0) {
		return fail(reg, err, "tables");
	}
	int s;
	int rc = 0;
	while ((s = rdb_step(st)) == RDB_ROW) {
		const char *name = rdb_column_text(st, 0);
		if (out->count == MOAT_REGISTRY_TABLES_MAX || !plain_name(name)) {
			rc = moat_err_set(err, MOAT_EINVAL, "%s: table %s: not one a registry has",
					  reg->path, name ? name : "?");
			break;
		}
		snprintf(out->t[out->count++].name, NAME_MAX_LEN + 1, "%s", name);
	}
	rdb_finalize(st);
	if (rc == 0 && s != RDB_DONE) {
		rc = fail(reg, err, "tables");
	}
	if (rc != 0) {
		return rc;
	}
	qsort(out->t, out->count, sizeof(out->t[0]), cmp_table);
	for (size_t i = 0; i < out->count; i++) {
		if ((rc = read_columns(reg, pg, &out->t[i], err)) != 0 ||
		    (rc = read_autoinc(reg, &out->t[i], err)) != 0) {
			return rc;
		}
	}
	return 0;
}

/* Whether a and b describe the same tables; what differs in why when not. */
static bool same_shape(const struct shape *a, const struct shape *b, char *why, size_t size)
{
	for (size_t i = 0; i < a->count || i < b->count; i++) {
		const struct table *x = i < a->count ? &a->t[i] : NULL;
		const struct table *y = i < b->count ? &b->t[i] : NULL;
		if (!x || !y || strcmp(x->name, y->name) != 0) {
			snprintf(why, size, "table %s is on one side only", x ? x->name : y->name);
			return false;
		}
		bool same = x->ncols == y->ncols && x->autoinc == y->autoinc;
		for (int k = 0; same && k < x->ncols; k++) {
			same = strcmp(x->cols[k].name, y->cols[k].name) == 0 &&
			       x->cols[k].type == y->cols[k].type && x->cols[k].pk == y->cols[k].pk;
		}
		if (!same) {
			snprintf(why, size, "table %s: columns, types or keys differ", x->name);
			return false;
		}
	}
	return true;
}

/* Appends printf output to sql; -1 when it does not fit. */
static int sql_add(char *sql, size_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int sql_add(char *sql, size_t *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(sql + *n, SQL_MAX - *n, fmt, ap);
	va_end(ap);
	if (m < 0 || (size_t)m >= SQL_MAX - *n) {
		return -1;
	}
	*n += (size_t)m;
	return 0;
}

/* SELECT of every column in the checksum's order: the key's columns, then the others; text
 * by bytes on PostgreSQL too. */
static int order_sql(const struct table *t, bool pg, char *sql)
{
	size_t n = 0;
	int rc = sql_add(sql, &n, "SELECT ");
	for (int k = 0; k < t->ncols; k++) {
		rc |= sql_add(sql, &n, "%s%s", k ? ", " : "", t->cols[k].name);
	}
	rc |= sql_add(sql, &n, " FROM %s ORDER BY ", t->name);
	bool first = true;
	for (int pass = 0; pass < 2; pass++) {
		for (int pos = 1; pos <= COLS_MAX; pos++) {
			for (int k = 0; k < t->ncols; k++) {
				const struct column *col = &t->cols[k];
				bool take = pass == 0 ? col->pk == pos : col->pk == 0 && pos == 1;
				if (!take) {
					continue;
				}
				rc |= sql_add(sql, &n, "%s%s%s", first ? "" : ", ", col->name,
					      pg && col->type == 'T' ? " COLLATE \"C\"" : "");
				first = false;
			}
		}
	}
	return rc;
}

static void put_u64(EVP_MD_CTX *md, uint64_t v)
{
	unsigned char b[8];
	for (int i = 7; i >= 0; i--) {
		b[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
	EVP_DigestUpdate(md, b, sizeof(b));
}

static void put_value(EVP_MD_CTX *md, struct rdb_stmt *st, int k, char type)
{
	if (rdb_column_is_null(st, k)) {
		EVP_DigestUpdate(md, "N", 1);
		return;
	}
	EVP_DigestUpdate(md, &type, 1);
	if (type == 'I') {
		put_u64(md, (uint64_t)rdb_column_int64(st, k));
	} else if (type == 'R') {
		double d = rdb_column_double(st, k);
		uint64_t bits;
		memcpy(&bits, &d, sizeof(bits));
		put_u64(md, bits);
	} else if (type == 'T') {
		const char *s = rdb_column_text(st, k);
		size_t len = rdb_column_bytes(st, k);
		put_u64(md, len);
		EVP_DigestUpdate(md, s, len);
	} else {
		size_t len = 0;
		const void *b = rdb_column_blob(st, k, &len);
		put_u64(md, len);
		if (len) {
			EVP_DigestUpdate(md, b, len);
		}
	}
}

static int table_seq(struct moat_registry *reg, const struct table *t, int64_t *out,
		     struct moat_err *err)
{
	const struct column *key = int_key(t);
	char lite[256];
	char pg[320];
	snprintf(lite, sizeof(lite),
		 "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = ?1), 0), "
		 "COALESCE((SELECT MAX(%s) FROM %s), 0))",
		 key->name, t->name);
	snprintf(pg, sizeof(pg),
		 "SELECT GREATEST(COALESCE(pg_sequence_last_value(pg_get_serial_sequence($1, "
		 "$2)::regclass), 0), COALESCE((SELECT MAX(%s) FROM %s), 0))",
		 key->name, t->name);
	struct rdb_stmt *st = NULL;
	if (rdb_prepare2(reg_db(reg), lite, pg, &st) != 0) {
		return fail(reg, err, "sequence");
	}
	rdb_bind_text(st, 1, t->name);
	rdb_bind_text(st, 2, key->name);
	int s = rdb_step(st);
	*out = s == RDB_ROW ? rdb_column_int64(st, 0) : 0;
	rdb_finalize(st);
	return s == RDB_ROW ? 0 : fail(reg, err, "sequence");
}

static int table_sum(struct moat_registry *reg, const struct table *t,
		     struct moat_registry_table_sum *out, struct moat_err *err)
{
	char lite[SQL_MAX];
	char pg[SQL_MAX];
	if (order_sql(t, false, lite) != 0 || order_sql(t, true, pg) != 0) {
		return moat_err_set(err, MOAT_EINVAL, "table %s: too many columns", t->name);
	}
	memset(out, 0, sizeof(*out));
	snprintf(out->table, sizeof(out->table), "%s", t->name);
	struct rdb_stmt *st = NULL;
	if (rdb_prepare2(reg_db(reg), lite, pg, &st) != 0) {
		return fail(reg, err, t->name);
	}
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		rdb_finalize(st);
		return moat_err_set(err, MOAT_ECRYPTO, "SHA-256 unavailable");
	}
	EVP_DigestUpdate(md, t->name, strlen(t->name) + 1);
	for (int k = 0; k < t->ncols; k++) {
		EVP_DigestUpdate(md, t->cols[k].name, strlen(t->cols[k].name) + 1);
		EVP_DigestUpdate(md, &t->cols[k].type, 1);
	}
	int s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		for (int k = 0; k < t->ncols; k++) {
			put_value(md, st, k, t->cols[k].type);
		}
		out->rows++;
	}
	rdb_finalize(st);
	unsigned int len = 0;
	int ok = EVP_DigestFinal_ex(md, out->sha256, &len);
	EVP_MD_CTX_free(md);
	if (s != RDB_DONE) {
		return fail(reg, err, t->name);
	}
	if (ok != 1 || len != sizeof(out->sha256)) {
		return moat_err_set(err, MOAT_ECRYPTO, "SHA-256 failed");
	}
	out->has_seq = t->autoinc;
	return t->autoinc ? table_seq(reg, t, &out->seq, err) : 0;
}

static int sums_of(struct moat_registry *reg, const struct shape *sh,
		   struct moat_registry_sums *out, struct moat_err *err)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < sh->count; i++) {
		int rc = table_sum(reg, &sh->t[i], &out->tables[i], err);
		if (rc != 0) {
			return rc;
		}
		out->count++;
	}
	return 0;
}

int moat_registry_sums(struct moat_registry *reg, struct moat_registry_sums *out,
		       struct moat_err *err)
{
	struct shape *sh = malloc(sizeof(*sh));
	if (!sh) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	int rc = read_shape(reg, sh, err);
	if (rc == 0) {
		rc = sums_of(reg, sh, out, err);
	}
	free(sh);
	return rc;
}

int moat_registry_sums_diff(const struct moat_registry_sums *a, const struct moat_registry_sums *b)
{
	size_t n = a->count > b->count ? a->count : b->count;
	for (size_t i = 0; i < n; i++) {
		if (i >= a->count || i >= b->count) {
			return (int)i;
		}
		const struct moat_registry_table_sum *x = &a->tables[i];
		const struct moat_registry_table_sum *y = &b->tables[i];
		if (strcmp(x->table, y->table) != 0 || x->rows != y->rows ||
		    memcmp(x->sha256, y->sha256, sizeof(x->sha256)) != 0 ||
		    x->has_seq != y->has_seq || x->seq != y->seq) {
			return (int)i;
		}
	}
	return -1;
}

/* ---- the copy ---- */

/* Values a column of the declared type may hold in SQLite, whose columns take any. */
static const char *lite_types(char type)
{
	switch (type) {
	case 'I':
		return "'integer'";
	case 'R':
		return "'real'";
	case 'T':
		return "'text'";
	default:
		return "'blob'";
	}
}

/* Refuses a SQLite table holding a value its column's type does not say (SQLite stores
 * what it is given): it would not copy as it is. */
static int check_types(struct moat_registry *src, const struct table *t, struct moat_err *err)
{
	char sql[SQL_MAX];
	size_t n = 0;
	int rc = sql_add(sql, &n, "SELECT COUNT(*) FROM %s WHERE 0", t->name);
	for (int k = 0; k < t->ncols; k++) {
		rc |= sql_add(sql, &n, " OR typeof(%s) NOT IN ('null', %s)", t->cols[k].name,
			      lite_types(t->cols[k].type));
	}
	if (rc != 0) {
		return moat_err_set(err, MOAT_EINVAL, "table %s: too many columns", t->name);
	}
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(src), sql, &st) != 0) {
		return fail(src, err, t->name);
	}
	int s = rdb_step(st);
	int64_t bad = s == RDB_ROW ? rdb_column_int64(st, 0) : 0;
	rdb_finalize(st);
	if (s != RDB_ROW) {
		return fail(src, err, t->name);
	}
	if (bad > 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: table %s: %lld rows hold a value of another type than "
				    "their column's: not copied",
				    src->path, t->name, (long long)bad);
	}
	return 0;
}

/* refs[i]: whether t references sh->t[i] (SQLite's foreign keys; itself excluded). */
static int references(struct moat_registry *src, const struct shape *sh, const struct table *t,
		      bool refs[MOAT_REGISTRY_TABLES_MAX], struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	memset(refs, 0, MOAT_REGISTRY_TABLES_MAX * sizeof(refs[0]));
	if (rdb_prepare(reg_db(src), "SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?1)",
			&st) != 0) {
		return fail(src, err, "foreign keys");
	}
	rdb_bind_text(st, 1, t->name);
	int s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		const char *name = rdb_column_text(st, 0);
		for (size_t i = 0; name && i < sh->count; i++) {
			if (strcmp(sh->t[i].name, name) == 0 && &sh->t[i] != t) {
				refs[i] = true;
			}
		}
	}
	rdb_finalize(st);
	return s == RDB_DONE ? 0 : fail(src, err, "foreign keys");
}

/* Tables in an order where each comes after those it references. */
static int copy_order(struct moat_registry *src, struct shape *sh, size_t order[],
		      struct moat_err *err)
{
	bool refs[MOAT_REGISTRY_TABLES_MAX][MOAT_REGISTRY_TABLES_MAX];
	int rc;
	for (size_t i = 0; i < sh->count; i++) {
		if ((rc = references(src, sh, &sh->t[i], refs[i], err)) != 0) {
			return rc;
		}
		sh->t[i].done = false;
	}
	for (size_t placed = 0; placed < sh->count;) {
		size_t before = placed;
		for (size_t i = 0; i < sh->count; i++) {
			bool ready = !sh->t[i].done;
			for (size_t j = 0; ready && j < sh->count; j++) {
				ready = !refs[i][j] || sh->t[j].done;
			}
			if (ready) {
				sh->t[i].done = true;
				order[placed++] = i;
			}
		}
		if (placed == before) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: the tables' foreign keys form a cycle", src->path);
		}
	}
	return 0;
}

/* INSERT of rows rows of t (?1.. in row order). */
static int insert_sql(const struct table *t, int rows, char *sql)
{
	size_t n = 0;
	int rc = sql_add(sql, &n, "INSERT INTO %s (", t->name);
	for (int k = 0; k < t->ncols; k++) {
		rc |= sql_add(sql, &n, "%s%s", k ? ", " : "", t->cols[k].name);
	}
	rc |= sql_add(sql, &n, ") VALUES ");
	int p = 1;
	for (int r = 0; r < rows; r++) {
		rc |= sql_add(sql, &n, "%s(", r ? ", " : "");
		for (int k = 0; k < t->ncols; k++) {
			rc |= sql_add(sql, &n, "%s?%d", k ? ", " : "", p++);
		}
		rc |= sql_add(sql, &n, ")");
	}
	return rc;
}

static void bind_value(struct rdb_stmt *dst, int idx, struct rdb_stmt *src, int k, char type)
{
	if (rdb_column_is_null(src, k)) {
		rdb_bind_null(dst, idx);
	} else if (type == 'I') {
		rdb_bind_int64(dst, idx, rdb_column_int64(src, k));
	} else if (type == 'R') {
		rdb_bind_double(dst, idx, rdb_column_double(src, k));
	} else if (type == 'T') {
		rdb_bind_text_n(dst, idx, rdb_column_text(src, k), rdb_column_bytes(src, k));
	} else {
		size_t len = 0;
		const void *b = rdb_column_blob(src, k, &len);
		rdb_bind_blob(dst, idx, b, len);
	}
}

static int row_count(struct moat_registry *src, const struct table *t, int64_t *out,
		     struct moat_err *err)
{
	char sql[NAME_MAX_LEN + 32];
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", t->name);
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(src), sql, &st) != 0) {
		return fail(src, err, t->name);
	}
	int s = rdb_step(st);
	*out = s == RDB_ROW ? rdb_column_int64(st, 0) : 0;
	rdb_finalize(st);
	return s == RDB_ROW ? 0 : fail(src, err, t->name);
}

/* Copies t's rows, in SQLite's insertion (rowid) order where it has one, so rows that
 * tie in every order the registry reads (certificates, telemetry) keep theirs. Rows go
 * in multi-row INSERTs of per rows (one round trip each on PostgreSQL), the last ones in
 * a statement of their own; a batch's rows are bound as they are read (PostgreSQL's
 * parameters are copies). The source is read in one snapshot (moat_registry_copy). */
static int copy_table(struct moat_registry *src, struct moat_registry *dst, const struct table *t,
		      struct moat_err *err)
{
	int64_t total = 0;
	int rc = row_count(src, t, &total, err);
	if (rc != 0 || total == 0) {
		return rc;
	}
	char *sql = malloc(SQL_MAX * 8);
	if (!sql) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	int per = PARAMS_MAX / t->ncols;
	per = per > BATCH_ROWS_MAX ? BATCH_ROWS_MAX : per;
	int64_t in_full = total - total % per; /* rows that go in full batches */
	size_t n = 0;
	rc = sql_add(sql, &n, "SELECT ");
	for (int k = 0; k < t->ncols; k++) {
		rc |= sql_add(sql, &n, "%s%s", k ? ", " : "", t->cols[k].name);
	}
	rc |= sql_add(sql, &n, " FROM %s%s", t->name, t->without_rowid ? "" : " ORDER BY rowid");
	struct rdb_stmt *rd = NULL;
	struct rdb_stmt *ins[2] = {NULL, NULL}; /* full batches, the last rows */
	if (rc != 0) {
		rc = moat_err_set(err, MOAT_EINVAL, "table %s: too many columns", t->name);
	} else if (rdb_prepare(reg_db(src), sql, &rd) != 0) {
		rc = fail(src, err, t->name);
	} else if (in_full > 0 &&
		   (insert_sql(t, per, sql) != 0 || rdb_prepare(reg_db(dst), sql, &ins[0]) != 0)) {
		rc = fail(dst, err, t->name);
	} else if (total > in_full && (insert_sql(t, (int)(total - in_full), sql) != 0 ||
				       rdb_prepare(reg_db(dst), sql, &ins[1]) != 0)) {
		rc = fail(dst, err, t->name);
	}
	int64_t row = 0;
	int s = RDB_DONE;
	while (rc == 0 && (s = rdb_step(rd)) == RDB_ROW) {
		if (row == total) {
			rc = moat_err_set(err, MOAT_ESTATE, "%s: table %s changed while copied",
					  src->path, t->name);
			break;
		}
		struct rdb_stmt *st = row < in_full ? ins[0] : ins[1];
		int pos = (int)(row < in_full ? row % per : row - in_full);
		int rows = row < in_full ? per : (int)(total - in_full);
		for (int k = 0; k < t->ncols; k++) {
			bind_value(st, pos * t->ncols + k + 1, rd, k, t->cols[k].type);
		}
		row++;
		if (pos + 1 == rows) {
			int done = rdb_step(st);
			rdb_reset(st);
			if (done != RDB_DONE) {
				rc = fail(dst, err, t->name);
			}
		}
	}
	if (rc == 0 && s != RDB_DONE) {
		rc = fail(src, err, t->name);
	}
	if (rc == 0 && row != total) {
		rc = moat_err_set(err, MOAT_ESTATE, "%s: table %s changed while copied", src->path,
				  t->name);
	}
	rdb_finalize(rd);
	rdb_finalize(ins[0]);
	rdb_finalize(ins[1]);
	free(sql);
	return rc;
}

/* The target's sequences continue from the source's: a new row never reuses an id. */
static int copy_seq(struct moat_registry *src, struct moat_registry *dst, const struct table *t,
		    struct moat_err *err)
{
	int64_t seq = 0;
	int rc = table_seq(src, t, &seq, err);
	if (rc != 0 || seq <= 0) {
		return rc; /* no id handed out yet: the sequence starts at 1 on both */
	}
	static const char sql[] = "SELECT setval(pg_get_serial_sequence($1, $2), $3, true)";
	struct rdb_stmt *st = NULL;
	if (rdb_prepare2(reg_db(dst), sql, sql, &st) != 0) {
		return fail(dst, err, "sequence");
	}
	rdb_bind_text(st, 1, t->name);
	rdb_bind_text(st, 2, int_key(t)->name);
	rdb_bind_int64(st, 3, seq);
	int s = rdb_step(st);
	rdb_finalize(st);
	return s == RDB_ROW ? 0 : fail(dst, err, "sequence");
}

/* Rows the target's migrations wrote (meta's crl_number): the copy brings the source's. */
static int empty_tables(struct moat_registry *dst, const struct shape *sh, const size_t order[],
			struct moat_err *err)
{
	for (size_t i = sh->count; i-- > 0;) {
		char sql[NAME_MAX_LEN + 16];
		snprintf(sql, sizeof(sql), "DELETE FROM %s", sh->t[order[i]].name);
		if (rdb_exec(reg_db(dst), sql) != 0) {
			return fail(dst, err, sh->t[order[i]].name);
		}
	}
	return 0;
}

static int copy_all(struct moat_registry *src, struct moat_registry *dst,
		    struct moat_registry_copy_report *out, struct moat_err *err)
{
	struct shape *sh = malloc(2 * sizeof(*sh));
	size_t *order = malloc(MOAT_REGISTRY_TABLES_MAX * sizeof(*order));
	if (!sh || !order) {
		free(sh);
		free(order);
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	struct shape *target = sh + 1;
	char why[160];
	int rc = read_shape(src, sh, err);
	if (rc == 0 && (rc = read_shape(dst, target, err)) == 0 &&
	    !same_shape(sh, target, why, sizeof(why))) {
		rc = moat_err_set(err, MOAT_ESTATE,
				  "%s and %s: the schemas differ (%s): is the source this moat's "
				  "version?",
				  src->path, dst->path, why);
	}
	for (size_t i = 0; rc == 0 && i < sh->count; i++) {
		rc = check_types(src, &sh->t[i], err);
	}
	if (rc == 0 && (rc = copy_order(src, sh, order, err)) == 0) {
		rc = empty_tables(dst, sh, order, err);
	}
	for (size_t i = 0; rc == 0 && i < sh->count; i++) {
		const struct table *t = &sh->t[order[i]];
		if ((rc = copy_table(src, dst, t, err)) == 0 && t->autoinc) {
			rc = copy_seq(src, dst, t, err);
		}
	}
#if defined(MOAT_FAILPOINTS)
	/* a copy that lost a revocation: the proof below must catch it (e2e) */
	const char *tamper = getenv("MOAT_REGISTRY_COPY_TAMPER");
	if (rc == 0 && tamper && strcmp(tamper, "revocation") == 0) {
		rdb_exec(reg_db(dst), "UPDATE identities SET status = 'active' WHERE status = "
				      "'revoked'");
	}
#endif
	if (rc == 0 && (rc = sums_of(src, sh, &out->src, err)) == 0) {
		rc = sums_of(dst, target, &out->dst, err);
	}
	free(sh);
	free(order);
	return rc;
}

int moat_registry_copy(struct moat_registry *src, const char *url,
		       struct moat_registry_copy_report *out, struct moat_err *err)
{
	memset(out, 0, sizeof(*out));
	if (reg_db(src)->backend != RDB_SQLITE) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: the registry to copy must be a SQLite file", src->path);
	}
	if (!moat_registry_is_url(url)) {
		return moat_err_set(err, MOAT_EINVAL, "%s: not a postgresql:// URL", url);
	}
	/* one snapshot of the source for the copy and its proof */
	if (rdb_exec(reg_db(src), "BEGIN") != 0) {
		return fail(src, err, "begin");
	}
	struct moat_registry *dst = NULL;
	int rc = reg_open_postgres_create_tx(url, &dst, err);
	if (rc == 0 && (rc = copy_all(src, dst, out, err)) == 0) {
		int bad = moat_registry_sums_diff(&out->src, &out->dst);
		if (bad >= 0) {
			const struct moat_registry_table_sum *a = &out->src.tables[bad];
			const struct moat_registry_table_sum *b = &out->dst.tables[bad];
			char seq[64] = "";
			if (a->has_seq || b->has_seq) {
				snprintf(seq, sizeof(seq), ", last id %lld and %lld",
					 (long long)a->seq, (long long)b->seq);
			}
			rc = moat_err_set(
				err, MOAT_EVERIFY,
				"%s: the copy differs from %s in table %s (rows %lld and %lld, "
				"checksums %s%s): nothing was committed",
				dst->path, src->path, a->table, (long long)a->rows,
				(long long)b->rows,
				memcmp(a->sha256, b->sha256, sizeof(a->sha256)) ? "differ"
										: "equal",
				seq);
		}
	}
	if (rc == 0 && rdb_commit(reg_db(dst)) != 0) {
		rc = fail(dst, err, "commit");
	}
	if (rc != 0 && dst) {
		rdb_rollback(reg_db(dst));
	}
	moat_registry_close(dst);
	rdb_exec(reg_db(src), "ROLLBACK");
	return rc;
}
