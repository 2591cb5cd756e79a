/* dashboard.c: the dashboard's tables (migration 9) and the paged reads its pages make
 * (registry.h, "the dashboard"). Links are spent by one conditional UPDATE, so two requests
 * with one link cannot both open a session. On the statement layer (db.h): the same SQL on
 * SQLite and PostgreSQL but for the device table's group filter (JSON, dash_prepare). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "registry_internal.h"

#define DASH_PRUNE_AFTER_MS (24LL * 3600 * 1000)

const char *moat_dash_token_name(enum moat_dash_token t)
{
	switch (t) {
	case MOAT_DASH_TOKEN_OK:
		return "ok";
	case MOAT_DASH_TOKEN_USED:
		return "used";
	case MOAT_DASH_TOKEN_EXPIRED:
		return "expired";
	case MOAT_DASH_TOKEN_UNKNOWN:
	default:
		return "unknown";
	}
}

/* Runs one statement: text parameters ?1 and ?2 (NULL: not in the text), then int64 ones
 * from ?3 (or from ?1 when there is no text parameter), n of them. Every parameter the text
 * names is bound (db.h). */
static int exec_bound(struct moat_registry *reg, const char *sql, const char *t1, const char *t2,
		      const int64_t *ints, int n, const char *what, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), sql, &st) != 0) {
		return reg_db_fail(reg, err, what);
	}
	int idx = 1;
	if (t1) {
		rdb_bind_text(st, idx++, t1);
	}
	if (t2) {
		rdb_bind_text(st, idx++, t2);
	}
	for (int i = 0; i < n; i++) {
		rdb_bind_int64(st, idx++, ints[i]);
	}
	int rc = rdb_step(st) == RDB_DONE ? 0 : reg_db_fail(reg, err, what);
	rdb_finalize(st);
	return rc;
}

static int prune(struct moat_registry *reg, int64_t now_ms, struct moat_err *err)
{
	int64_t before = now_ms - DASH_PRUNE_AFTER_MS;
	int rc = exec_bound(reg, "DELETE FROM dashboard_links WHERE expires_ms < ?1", NULL, NULL,
			    &before, 1, "prune dashboard links", err);
	if (rc == 0) {
		rc = exec_bound(reg, "DELETE FROM dashboard_sessions WHERE expires_ms < ?1", NULL,
				NULL, &before, 1, "prune dashboard sessions", err);
	}
	return rc;
}

int moat_registry_dash_link_add(struct moat_registry *reg, const char *token_sha256,
				const char *operator_id, int64_t now_ms, int64_t expires_ms,
				int64_t session_ms, struct moat_err *err)
{
	int rc = prune(reg, now_ms, err);
	if (rc == 0) {
		int64_t ints[] = {now_ms, expires_ms, session_ms};
		rc = exec_bound(reg,
				"INSERT INTO dashboard_links(token_sha256, operator, "
				"created_ms, expires_ms, session_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
				token_sha256, operator_id, ints, 3, "add dashboard link", err);
	}
	return rc;
}

/* Why a token did not match: unknown, used (links) or expired. */
static int classify(struct moat_registry *reg, const char *sql, const char *token_sha256,
		    int64_t now_ms, enum moat_dash_token *out, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), sql, &st) != 0) {
		return reg_db_fail(reg, err, "read dashboard token");
	}
	rdb_bind_text(st, 1, token_sha256);
	int s = rdb_step(st);
	int rc = 0;
	*out = MOAT_DASH_TOKEN_UNKNOWN;
	if (s == RDB_ROW) {
		if (rdb_column_int64(st, 0) != 0) {
			*out = MOAT_DASH_TOKEN_USED;
		} else if (rdb_column_int64(st, 1) <= now_ms) {
			*out = MOAT_DASH_TOKEN_EXPIRED;
		} else {
			*out = MOAT_DASH_TOKEN_OK;
		}
	} else if (s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "read dashboard token");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_dash_link_use(struct moat_registry *reg, const char *token_sha256, int64_t now_ms,
				char operator_id[MOAT_ID_BUF_LEN], int64_t *session_ms,
				enum moat_dash_token *out, struct moat_err *err)
{
	operator_id[0] = '\0';
	*session_ms = 0;
	*out = MOAT_DASH_TOKEN_UNKNOWN;
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"UPDATE dashboard_links SET used_ms = ?2 WHERE token_sha256 = ?1 "
			"AND used_ms IS NULL AND expires_ms > ?2 RETURNING operator, session_ms",
			&st) != 0) {
		return reg_db_fail(reg, err, "use dashboard link");
	}
	rdb_bind_text(st, 1, token_sha256);
	rdb_bind_int64(st, 2, now_ms);
	int s = rdb_step(st);
	bool spent = false;
	if (s == RDB_ROW) {
		rdb_column_copy(st, 0, operator_id, MOAT_ID_BUF_LEN);
		*session_ms = rdb_column_int64(st, 1);
		spent = true;
		s = rdb_step(st);
	}
	int rc = s == RDB_DONE ? 0 : reg_db_fail(reg, err, "use dashboard link");
	rdb_finalize(st);
	if (rc != 0) {
		return rc;
	}
	if (spent) {
		*out = MOAT_DASH_TOKEN_OK;
		return 0;
	}
	/* a comparison read as a column: 1 or 0 on SQLite, true or false on PostgreSQL */
	return classify(reg,
			"SELECT used_ms IS NOT NULL, expires_ms FROM dashboard_links "
			"WHERE token_sha256 = ?1",
			token_sha256, now_ms, out, err);
}

int moat_registry_dash_session_add(struct moat_registry *reg, const char *token_sha256,
				   const char *operator_id, int64_t now_ms, int64_t expires_ms,
				   struct moat_err *err)
{
	int rc = prune(reg, now_ms, err);
	if (rc == 0) {
		int64_t ints[] = {now_ms, expires_ms};
		rc = exec_bound(reg,
				"INSERT INTO dashboard_sessions(token_sha256, operator, created_ms, "
				"expires_ms) VALUES (?1, ?2, ?3, ?4)",
				token_sha256, operator_id, ints, 2, "add dashboard session", err);
	}
	return rc;
}

int moat_registry_dash_session_get(struct moat_registry *reg, const char *token_sha256,
				   int64_t now_ms, char operator_id[MOAT_ID_BUF_LEN],
				   enum moat_dash_token *out, struct moat_err *err)
{
	operator_id[0] = '\0';
	*out = MOAT_DASH_TOKEN_UNKNOWN;
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"SELECT operator, expires_ms FROM dashboard_sessions "
			"WHERE token_sha256 = ?1",
			&st) != 0) {
		return reg_db_fail(reg, err, "read dashboard session");
	}
	rdb_bind_text(st, 1, token_sha256);
	int s = rdb_step(st);
	int rc = 0;
	if (s == RDB_ROW) {
		if (rdb_column_int64(st, 1) > now_ms) {
			rdb_column_copy(st, 0, operator_id, MOAT_ID_BUF_LEN);
			*out = MOAT_DASH_TOKEN_OK;
		} else {
			*out = MOAT_DASH_TOKEN_EXPIRED;
		}
	} else if (s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "read dashboard session");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_dash_session_end(struct moat_registry *reg, const char *token_sha256,
				   struct moat_err *err)
{
	return exec_bound(reg, "DELETE FROM dashboard_sessions WHERE token_sha256 = ?1",
			  token_sha256, NULL, NULL, 0, "end dashboard session", err);
}

/* The device table's FROM and WHERE; parameters ?1..?7 as bound by bind_filter (a NULL one
 * filters nothing: CAST(?N AS ...) IS NULL, so PostgreSQL can type it). ONLY is the group's
 * members from the JSON array ?7, in each dialect's JSON (see dash_prepare). */
#define DASH_DEVICES_FROM(ONLY)                                                              \
	" FROM identities i LEFT JOIN device_firmware f ON f.device = i.id"                  \
	" LEFT JOIN device_state s ON s.device = i.id WHERE i.role = 'device'"               \
	" AND (CAST(?1 AS TEXT) IS NULL OR instr(i.id, ?1) > 0)"                             \
	" AND (CAST(?2 AS TEXT) IS NULL OR i.device_type = ?2)"                              \
	" AND (CAST(?3 AS TEXT) IS NULL OR i.status = ?3)"                                   \
	" AND (CAST(?4 AS BIGINT) IS NULL OR COALESCE(s.state, 0) = ?4)"                     \
	" AND (CAST(?5 AS TEXT) IS NULL OR f.version = ?5) AND (CAST(?6 AS TEXT) IS NULL OR" \
	" EXISTS (SELECT 1 FROM device_tags t WHERE t.device = i.id AND t.tag = ?6))"        \
	" AND (CAST(?7 AS TEXT) IS NULL OR i.id IN (" ONLY "))"
#define DASH_ONLY_SQLITE "SELECT value FROM json_each(?7)"
#define DASH_ONLY_PG "SELECT jsonb_array_elements_text(CAST(?7 AS JSONB))"

#define DASH_DEVICES_COLS                                                \
	"SELECT i.id, i.device_type, i.status, COALESCE(f.version, '')," \
	" COALESCE(s.state, 0), COALESCE(s.last_seen_ms, 0),"            \
	" (SELECT MAX(c.not_after) FROM certificates c WHERE"            \
	" c.identity = i.id AND c.revoked_at IS NULL)"
#define DASH_DEVICES_PAGE " ORDER BY i.id LIMIT ?8 OFFSET ?9"

/* A device-table statement: one text but for the group filter, whose JSON array has no
 * common spelling (SQLite's json_each, PostgreSQL's jsonb_array_elements_text), so each
 * dialect gets its own text (rdb_prepare2); PostgreSQL's is the translation of pg_text, the
 * same text with its own membership subquery. */
static int dash_prepare(struct moat_registry *reg, const char *sqlite_text, const char *pg_text,
			struct rdb_stmt **out)
{
	struct rdb *c = reg_db(reg);
	if (c->backend != RDB_POSTGRES) {
		return rdb_prepare2(c, sqlite_text, NULL, out);
	}
	char pg[2048];
	if (rdb_translate(pg_text, pg, sizeof(pg), NULL) != 0) {
		snprintf(c->errmsg, sizeof(c->errmsg), "cannot translate: %.200s", pg_text);
		c->errcode = RDB_E_ERROR;
		return RDB_E_ERROR;
	}
	return rdb_prepare2(c, sqlite_text, pg, out);
}

static void bind_opt(struct rdb_stmt *st, int col, const char *v)
{
	rdb_bind_text(st, col, v && v[0] ? v : NULL);
}

static void bind_filter(struct rdb_stmt *st, const struct moat_dash_device_filter *f)
{
	bind_opt(st, 1, f->search);
	bind_opt(st, 2, f->type);
	bind_opt(st, 3, f->status);
	if (f->conn && f->conn[0]) {
		int c = strcmp(f->conn, "online") == 0	  ? MOAT_CONN_ONLINE
			: strcmp(f->conn, "offline") == 0 ? MOAT_CONN_OFFLINE
			: strcmp(f->conn, "unknown") == 0 ? MOAT_CONN_UNKNOWN
							  : -1;
		rdb_bind_int64(st, 4, c);
	} else {
		rdb_bind_null(st, 4);
	}
	bind_opt(st, 5, f->release);
	bind_opt(st, 6, f->tag);
	rdb_bind_text(st, 7, f->only_json); /* NULL: every device */
}

int moat_registry_dash_devices(struct moat_registry *reg, const struct moat_dash_device_filter *f,
			       moat_dash_device_cb cb, void *ctx, int64_t *out_total,
			       struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (out_total) {
		if (dash_prepare(reg, "SELECT COUNT(*)" DASH_DEVICES_FROM(DASH_ONLY_SQLITE),
				 "SELECT COUNT(*)" DASH_DEVICES_FROM(DASH_ONLY_PG), &st) != 0) {
			return reg_db_fail(reg, err, "count devices");
		}
		bind_filter(st, f);
		if (rdb_step(st) != RDB_ROW) {
			int rc = reg_db_fail(reg, err, "count devices");
			rdb_finalize(st);
			return rc;
		}
		*out_total = rdb_column_int64(st, 0);
		rdb_finalize(st);
	}
	if (!cb) {
		return 0; /* the count alone */
	}
	if (dash_prepare(reg,
			 DASH_DEVICES_COLS DASH_DEVICES_FROM(DASH_ONLY_SQLITE) DASH_DEVICES_PAGE,
			 DASH_DEVICES_COLS DASH_DEVICES_FROM(DASH_ONLY_PG) DASH_DEVICES_PAGE,
			 &st) != 0) {
		return reg_db_fail(reg, err, "list devices");
	}
	bind_filter(st, f);
	rdb_bind_int64(st, 8, f->limit > 0 ? f->limit : INT64_MAX); /* no LIMIT -1 (db.h) */
	rdb_bind_int64(st, 9, f->offset > 0 ? f->offset : 0);
	int rc = 0;
	int s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		struct moat_dash_device d = {
			.id = rdb_column_text(st, 0),
			.type = rdb_column_text(st, 1),
			.status = rdb_column_text(st, 2),
			.release = rdb_column_text(st, 3),
			.conn = (enum moat_conn_state)rdb_column_int64(st, 4),
			.last_seen_ms = rdb_column_int64(st, 5),
			.cert_not_after = rdb_column_int64(st, 6),
		};
		if ((rc = cb(&d, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "list devices");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_tag_foreach(struct moat_registry *reg, const char *device, moat_tag_cb cb,
			      void *ctx, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), "SELECT tag FROM device_tags WHERE device = ?1 ORDER BY tag",
			&st) != 0) {
		return reg_db_fail(reg, err, "list tags");
	}
	rdb_bind_text(st, 1, device);
	int rc = 0;
	int s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		if ((rc = cb(rdb_column_text(st, 0), ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "list tags");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_telemetry_foreach(struct moat_registry *reg, const char *device, int64_t since_ms,
				    int64_t limit, moat_telemetry_raw_cb cb, void *ctx,
				    struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	/* the newest limit rows, oldest first; rows of one millisecond in insertion order
	 * (rowid; ctid on PostgreSQL: see db.h's known gaps) */
	if (rdb_prepare(reg_db(reg),
			"SELECT at_ms, payload FROM (SELECT rowid AS r, at_ms, payload FROM "
			"telemetry WHERE device = ?1 AND at_ms >= ?2 ORDER BY at_ms DESC, "
			"rowid DESC LIMIT ?3) AS newest ORDER BY at_ms, r",
			&st) != 0) {
		return reg_db_fail(reg, err, "read telemetry");
	}
	rdb_bind_text(st, 1, device);
	rdb_bind_int64(st, 2, since_ms);
	rdb_bind_int64(st, 3, limit > 0 ? limit : INT64_MAX);
	int rc = 0;
	int s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		const char *p = rdb_column_text(st, 1);
		size_t n = rdb_column_bytes(st, 1);
		if ((rc = cb(rdb_column_int64(st, 0), p ? p : "", n, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != RDB_DONE) {
		rc = reg_db_fail(reg, err, "read telemetry");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_cert_foreach_of(struct moat_registry *reg, const char *identity, moat_cert_cb cb,
				  void *ctx, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"SELECT serial, identity, not_before, not_after, revoked_at, reason "
			"FROM certificates WHERE identity = ?1 ORDER BY not_before, serial",
			&st) != 0) {
		return reg_db_fail(reg, err, "certificate list");
	}
	rdb_bind_text(st, 1, identity);
	return reg_cert_rows(reg, st, cb, ctx, err);
}
