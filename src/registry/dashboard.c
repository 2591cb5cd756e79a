/* dashboard.c: the dashboard's tables (migration 9) and the paged reads its pages make
 * (registry.h, "the dashboard"). Links are spent by one conditional UPDATE, so two requests
 * with one link cannot both open a session. */
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

/* Runs one statement with up to two int64 and two text parameters (text first). */
static int exec_bound(struct moat_registry *reg, const char *sql, const char *t1, const char *t2,
		      const int64_t *i3, const int64_t *i4, const int64_t *i5, const char *what,
		      struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db, sql, -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, what);
	}
	if (t1) {
		sqlite3_bind_text(st, 1, t1, -1, SQLITE_STATIC);
	}
	if (t2) {
		sqlite3_bind_text(st, 2, t2, -1, SQLITE_STATIC);
	}
	if (i3) {
		sqlite3_bind_int64(st, 3, *i3);
	}
	if (i4) {
		sqlite3_bind_int64(st, 4, *i4);
	}
	if (i5) {
		sqlite3_bind_int64(st, 5, *i5);
	}
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : reg_fail(reg, err, what);
	sqlite3_finalize(st);
	return rc;
}

static int prune(struct moat_registry *reg, int64_t now_ms, struct moat_err *err)
{
	int64_t before = now_ms - DASH_PRUNE_AFTER_MS;
	int rc = exec_bound(reg, "DELETE FROM dashboard_links WHERE expires_ms < ?3", NULL, NULL,
			    &before, NULL, NULL, "prune dashboard links", err);
	if (rc == 0) {
		rc = exec_bound(reg, "DELETE FROM dashboard_sessions WHERE expires_ms < ?3", NULL,
				NULL, &before, NULL, NULL, "prune dashboard sessions", err);
	}
	return rc;
}

int moat_registry_dash_link_add(struct moat_registry *reg, const char *token_sha256,
				const char *operator_id, int64_t now_ms, int64_t expires_ms,
				int64_t session_ms, struct moat_err *err)
{
	int rc = prune(reg, now_ms, err);
	if (rc == 0) {
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(
			    reg->db,
			    "INSERT INTO dashboard_links(token_sha256, operator, "
			    "created_ms, expires_ms, session_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
			    -1, &st, NULL) != SQLITE_OK) {
			return reg_fail(reg, err, "add dashboard link");
		}
		sqlite3_bind_text(st, 1, token_sha256, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, operator_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, now_ms);
		sqlite3_bind_int64(st, 4, expires_ms);
		sqlite3_bind_int64(st, 5, session_ms);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : reg_fail(reg, err, "add dashboard link");
		sqlite3_finalize(st);
	}
	return rc;
}

/* Why a token did not match: unknown, used (links) or expired. */
static int classify(struct moat_registry *reg, const char *sql, const char *token_sha256,
		    int64_t now_ms, enum moat_dash_token *out, struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db, sql, -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "read dashboard token");
	}
	sqlite3_bind_text(st, 1, token_sha256, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	int rc = 0;
	*out = MOAT_DASH_TOKEN_UNKNOWN;
	if (s == SQLITE_ROW) {
		if (sqlite3_column_int(st, 0)) {
			*out = MOAT_DASH_TOKEN_USED;
		} else if (sqlite3_column_int64(st, 1) <= now_ms) {
			*out = MOAT_DASH_TOKEN_EXPIRED;
		} else {
			*out = MOAT_DASH_TOKEN_OK;
		}
	} else if (s != SQLITE_DONE) {
		rc = reg_fail(reg, err, "read dashboard token");
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_dash_link_use(struct moat_registry *reg, const char *token_sha256, int64_t now_ms,
				char operator_id[MOAT_ID_BUF_LEN], int64_t *session_ms,
				enum moat_dash_token *out, struct moat_err *err)
{
	operator_id[0] = '\0';
	*session_ms = 0;
	*out = MOAT_DASH_TOKEN_UNKNOWN;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(
		    reg->db,
		    "UPDATE dashboard_links SET used_ms = ?2 WHERE token_sha256 = ?1 "
		    "AND used_ms IS NULL AND expires_ms > ?2 RETURNING operator, session_ms",
		    -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "use dashboard link");
	}
	sqlite3_bind_text(st, 1, token_sha256, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	int s = sqlite3_step(st);
	bool spent = false;
	if (s == SQLITE_ROW) {
		reg_column_text(st, 0, operator_id, MOAT_ID_BUF_LEN);
		*session_ms = sqlite3_column_int64(st, 1);
		spent = true;
		s = sqlite3_step(st);
	}
	int rc = s == SQLITE_DONE ? 0 : reg_fail(reg, err, "use dashboard link");
	sqlite3_finalize(st);
	if (rc != 0) {
		return rc;
	}
	if (spent) {
		*out = MOAT_DASH_TOKEN_OK;
		return 0;
	}
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
		rc = exec_bound(reg,
				"INSERT INTO dashboard_sessions(token_sha256, operator, created_ms, "
				"expires_ms) VALUES (?1, ?2, ?3, ?4)",
				token_sha256, operator_id, &now_ms, &expires_ms, NULL,
				"add dashboard session", err);
	}
	return rc;
}

int moat_registry_dash_session_get(struct moat_registry *reg, const char *token_sha256,
				   int64_t now_ms, char operator_id[MOAT_ID_BUF_LEN],
				   enum moat_dash_token *out, struct moat_err *err)
{
	operator_id[0] = '\0';
	*out = MOAT_DASH_TOKEN_UNKNOWN;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db,
			       "SELECT operator, expires_ms FROM dashboard_sessions "
			       "WHERE token_sha256 = ?1",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "read dashboard session");
	}
	sqlite3_bind_text(st, 1, token_sha256, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	int rc = 0;
	if (s == SQLITE_ROW) {
		if (sqlite3_column_int64(st, 1) > now_ms) {
			reg_column_text(st, 0, operator_id, MOAT_ID_BUF_LEN);
			*out = MOAT_DASH_TOKEN_OK;
		} else {
			*out = MOAT_DASH_TOKEN_EXPIRED;
		}
	} else if (s != SQLITE_DONE) {
		rc = reg_fail(reg, err, "read dashboard session");
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_dash_session_end(struct moat_registry *reg, const char *token_sha256,
				   struct moat_err *err)
{
	return exec_bound(reg, "DELETE FROM dashboard_sessions WHERE token_sha256 = ?1",
			  token_sha256, NULL, NULL, NULL, NULL, "end dashboard session", err);
}

/* The WHERE clause of the device table; parameters ?1..?6 as bound by bind_filter. */
#define DASH_DEVICES_FROM                                                                  \
	" FROM identities i LEFT JOIN device_firmware f ON f.device = i.id"                \
	" LEFT JOIN device_state s ON s.device = i.id WHERE i.role = 'device'"             \
	" AND (?1 IS NULL OR instr(i.id, ?1) > 0) AND (?2 IS NULL OR i.device_type = ?2)"  \
	" AND (?3 IS NULL OR i.status = ?3) AND (?4 IS NULL OR COALESCE(s.state, 0) = ?4)" \
	" AND (?5 IS NULL OR f.version = ?5) AND (?6 IS NULL OR EXISTS (SELECT 1 FROM"     \
	" device_tags t WHERE t.device = i.id AND t.tag = ?6))"                            \
	" AND (?9 IS NULL OR i.id IN (SELECT value FROM json_each(?9)))"

static void bind_opt(sqlite3_stmt *st, int col, const char *v)
{
	if (v && v[0]) {
		sqlite3_bind_text(st, col, v, -1, SQLITE_STATIC);
	}
}

static void bind_filter(sqlite3_stmt *st, const struct moat_dash_device_filter *f)
{
	bind_opt(st, 1, f->search);
	bind_opt(st, 2, f->type);
	bind_opt(st, 3, f->status);
	if (f->conn && f->conn[0]) {
		int c = strcmp(f->conn, "online") == 0	  ? MOAT_CONN_ONLINE
			: strcmp(f->conn, "offline") == 0 ? MOAT_CONN_OFFLINE
			: strcmp(f->conn, "unknown") == 0 ? MOAT_CONN_UNKNOWN
							  : -1;
		sqlite3_bind_int(st, 4, c);
	}
	bind_opt(st, 5, f->release);
	bind_opt(st, 6, f->tag);
	if (f->only_json) {
		sqlite3_bind_text(st, 9, f->only_json, -1, SQLITE_STATIC);
	}
}

int moat_registry_dash_devices(struct moat_registry *reg, const struct moat_dash_device_filter *f,
			       moat_dash_device_cb cb, void *ctx, int64_t *out_total,
			       struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (out_total) {
		if (sqlite3_prepare_v2(reg->db, "SELECT COUNT(*)" DASH_DEVICES_FROM, -1, &st,
				       NULL) != SQLITE_OK) {
			return reg_fail(reg, err, "count devices");
		}
		bind_filter(st, f);
		if (sqlite3_step(st) != SQLITE_ROW) {
			int rc = reg_fail(reg, err, "count devices");
			sqlite3_finalize(st);
			return rc;
		}
		*out_total = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	if (!cb) {
		return 0; /* the count alone */
	}
	if (sqlite3_prepare_v2(reg->db,
			       "SELECT i.id, i.device_type, i.status, COALESCE(f.version, ''),"
			       " COALESCE(s.state, 0), COALESCE(s.last_seen_ms, 0),"
			       " (SELECT MAX(c.not_after) FROM certificates c WHERE"
			       " c.identity = i.id AND c.revoked_at IS NULL)" DASH_DEVICES_FROM
			       " ORDER BY i.id LIMIT ?7 OFFSET ?8",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "list devices");
	}
	bind_filter(st, f);
	sqlite3_bind_int64(st, 7, f->limit > 0 ? f->limit : -1);
	sqlite3_bind_int64(st, 8, f->offset > 0 ? f->offset : 0);
	int rc = 0;
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		struct moat_dash_device d = {
			.id = (const char *)sqlite3_column_text(st, 0),
			.type = (const char *)sqlite3_column_text(st, 1),
			.status = (const char *)sqlite3_column_text(st, 2),
			.release = (const char *)sqlite3_column_text(st, 3),
			.conn = (enum moat_conn_state)sqlite3_column_int(st, 4),
			.last_seen_ms = sqlite3_column_int64(st, 5),
			.cert_not_after = sqlite3_column_int64(st, 6),
		};
		if ((rc = cb(&d, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != SQLITE_DONE) {
		rc = reg_fail(reg, err, "list devices");
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_tag_foreach(struct moat_registry *reg, const char *device, moat_tag_cb cb,
			      void *ctx, struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db,
			       "SELECT tag FROM device_tags WHERE device = ?1 ORDER BY tag", -1,
			       &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "list tags");
	}
	sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
	int rc = 0;
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = cb((const char *)sqlite3_column_text(st, 0), ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != SQLITE_DONE) {
		rc = reg_fail(reg, err, "list tags");
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_telemetry_foreach(struct moat_registry *reg, const char *device, int64_t since_ms,
				    int64_t limit, moat_telemetry_raw_cb cb, void *ctx,
				    struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db,
			       "SELECT at_ms, payload FROM (SELECT rowid AS r, at_ms, payload FROM "
			       "telemetry WHERE device = ?1 AND at_ms >= ?2 ORDER BY at_ms DESC, "
			       "rowid DESC LIMIT ?3) ORDER BY at_ms, r",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "read telemetry");
	}
	sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, since_ms);
	sqlite3_bind_int64(st, 3, limit > 0 ? limit : -1);
	int rc = 0;
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *p = (const char *)sqlite3_column_text(st, 1);
		size_t n = (size_t)sqlite3_column_bytes(st, 1);
		if ((rc = cb(sqlite3_column_int64(st, 0), p ? p : "", n, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != SQLITE_DONE) {
		rc = reg_fail(reg, err, "read telemetry");
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_cert_foreach_of(struct moat_registry *reg, const char *identity, moat_cert_cb cb,
				  void *ctx, struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db,
			       "SELECT serial, identity, not_before, not_after, revoked_at, reason "
			       "FROM certificates WHERE identity = ?1 ORDER BY not_before, serial",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail(reg, err, "certificate list");
	}
	sqlite3_bind_text(st, 1, identity, -1, SQLITE_STATIC);
	return reg_cert_rows(reg, st, cb, ctx, err);
}
