/* monitor.c: the monitoring tables of migration 7: device_state, security_events,
 * telemetry and telemetry_agg (and migration 11's device_diagnostics). Telemetry is kept raw for
 * its retention, then folded into minute and hour aggregates (count, min, max, sum per device and
 * metric) by SQL over the stored JSON (json_each of its "telemetry" object), so a year of a fleet
 * costs rows per hour, not per message. The insert of a telemetry message is the hot path of
 * ingest: its statement is prepared once per handle. On the statement layer (db.h): one
 * SQL text for SQLite and PostgreSQL, except the fold (fold_pg_sql: JSON functions differ). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry_internal.h"

static const char *const conn_names[] = {"unknown", "online", "offline"};

const char *moat_conn_state_name(enum moat_conn_state s)
{
	return (unsigned)s < 3 ? conn_names[s] : "unknown";
}

/* ---- device_state ---- */

/* ---- device_diagnostics ---- */

int moat_registry_diagnostics_put(struct moat_registry *reg, const char *device, int64_t at_ms,
				  const void *payload, size_t len, struct moat_err *err)
{
	if (len > MOAT_REGISTRY_DIAGNOSTICS_MAX_BYTES) {
		return moat_err_set(err, MOAT_EINVAL, "diagnostics of %s: %zu bytes, over %d",
				    device, len, MOAT_REGISTRY_DIAGNOSTICS_MAX_BYTES);
	}
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"INSERT INTO device_diagnostics(device, at_ms, report) VALUES (?1, ?2, ?3) "
			"ON CONFLICT(device) DO UPDATE SET at_ms = excluded.at_ms, "
			"report = excluded.report",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "record diagnostics");
	}
	rdb_bind_text(st, 1, device);
	rdb_bind_int64(st, 2, at_ms);
	rdb_bind_text_n(st, 3, payload, len);
	int rc = rdb_step(st) == RDB_DONE ? 0 : reg_db_fail_table(reg, err, "record diagnostics");
	rdb_finalize(st);
	return rc;
}

int moat_registry_diagnostics_get(struct moat_registry *reg, const char *device, int64_t *out_at_ms,
				  char *buf, size_t size, size_t *out_len, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"SELECT at_ms, report FROM device_diagnostics WHERE device = ?1",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "diagnostics");
	}
	rdb_bind_text(st, 1, device);
	int s = rdb_step(st);
	int rc = 0;
	if (s == RDB_ROW) {
		const char *text = rdb_column_text(st, 1);
		size_t n = rdb_column_bytes(st, 1);
		if (!text || n + 1 > size) {
			rc = moat_err_set(err, MOAT_EINVAL,
					  "diagnostics of %s: %zu bytes, over %zu", device, n,
					  size ? size - 1 : 0);
		} else {
			memcpy(buf, text, n);
			buf[n] = '\0';
			*out_len = n;
			*out_at_ms = rdb_column_int64(st, 0);
		}
	} else if (s == RDB_DONE) {
		rc = moat_err_set(err, MOAT_ENOENT, "%s: no diagnostics report received", device);
	} else {
		rc = reg_db_fail_table(reg, err, "diagnostics");
	}
	rdb_finalize(st);
	return rc;
}

#define STATE_COLUMNS                                                                         \
	"device, state, state_at_ms, offline_by_will, last_seen_ms, address, agent_version, " \
	"running, cert_days_left, interval_s, last_command, last_command_status, "            \
	"last_command_at_ms, telemetry_messages"

static void state_row(struct rdb_stmt *st, struct moat_device_state *s)
{
	memset(s, 0, sizeof(*s));
	rdb_column_copy(st, 0, s->device, sizeof(s->device));
	int state = (int)rdb_column_int64(st, 1);
	s->state = state >= 0 && state <= 2 ? (enum moat_conn_state)state : MOAT_CONN_UNKNOWN;
	s->state_at_ms = rdb_column_int64(st, 2);
	s->offline_by_will = (int)rdb_column_int64(st, 3) != 0;
	s->last_seen_ms = rdb_column_int64(st, 4);
	rdb_column_copy(st, 5, s->address, sizeof(s->address));
	rdb_column_copy(st, 6, s->agent_version, sizeof(s->agent_version));
	rdb_column_copy(st, 7, s->running, sizeof(s->running));
	s->has_cert_days = !rdb_column_is_null(st, 8);
	s->cert_days_left = rdb_column_int64(st, 8);
	s->interval_s = rdb_column_int64(st, 9);
	rdb_column_copy(st, 10, s->last_command, sizeof(s->last_command));
	rdb_column_copy(st, 11, s->last_command_status, sizeof(s->last_command_status));
	s->last_command_at_ms = rdb_column_int64(st, 12);
	s->telemetry_messages = rdb_column_int64(st, 13);
}

/* One writer's view merged into the row (registry.h). Every SET reads the row as it was;
 * ?15 is the writer's MOAT_DEVICE_STATE_* bits, ?14 the telemetry messages it added. */
/* clang-format off */
static const char state_merge_sql[] =
	"INSERT INTO device_state(" STATE_COLUMNS ") "
	"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) "
	"ON CONFLICT(device) DO UPDATE SET "
	"state = CASE WHEN excluded.state_at_ms >= device_state.state_at_ms "
		"THEN excluded.state ELSE device_state.state END, "
	"offline_by_will = CASE WHEN excluded.state_at_ms >= device_state.state_at_ms "
		"THEN excluded.offline_by_will ELSE device_state.offline_by_will END, "
	"state_at_ms = MAX(excluded.state_at_ms, device_state.state_at_ms), "
	"last_seen_ms = MAX(excluded.last_seen_ms, device_state.last_seen_ms), "
	"address = CASE WHEN (?15 & 1) != 0 THEN excluded.address ELSE device_state.address END, "
	"agent_version = CASE WHEN (?15 & 2) != 0 "
		"THEN excluded.agent_version ELSE device_state.agent_version END, "
	"running = CASE WHEN (?15 & 4) != 0 THEN excluded.running ELSE device_state.running END, "
	"cert_days_left = CASE WHEN (?15 & 8) != 0 "
		"THEN excluded.cert_days_left ELSE device_state.cert_days_left END, "
	"interval_s = CASE WHEN (?15 & 16) != 0 "
		"THEN excluded.interval_s ELSE device_state.interval_s END, "
	"last_command = CASE WHEN excluded.last_command_at_ms >= device_state.last_command_at_ms "
		"THEN excluded.last_command ELSE device_state.last_command END, "
	"last_command_status = CASE WHEN excluded.last_command_at_ms >= "
		"device_state.last_command_at_ms "
		"THEN excluded.last_command_status ELSE device_state.last_command_status END, "
	"last_command_at_ms = MAX(excluded.last_command_at_ms, device_state.last_command_at_ms), "
	"telemetry_messages = device_state.telemetry_messages + excluded.telemetry_messages "
	"RETURNING " STATE_COLUMNS;
/* clang-format on */

int moat_registry_device_state_merge(struct moat_registry *reg, struct moat_device_state *s,
				     unsigned changed, int64_t telemetry_added,
				     struct moat_err *err)
{
	_Static_assert(MOAT_DEVICE_STATE_ADDRESS == 1 && MOAT_DEVICE_STATE_AGENT_VERSION == 2 &&
			       MOAT_DEVICE_STATE_RUNNING == 4 && MOAT_DEVICE_STATE_CERT_DAYS == 8 &&
			       MOAT_DEVICE_STATE_INTERVAL == 16,
		       "the bits state_merge_sql tests");
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), state_merge_sql, &st) != 0) {
		return reg_db_fail_table(reg, err, "record device state");
	}
	rdb_bind_text(st, 1, s->device);
	rdb_bind_int64(st, 2, (int)s->state);
	rdb_bind_int64(st, 3, s->state_at_ms);
	rdb_bind_int64(st, 4, s->offline_by_will ? 1 : 0);
	rdb_bind_int64(st, 5, s->last_seen_ms);
	rdb_bind_text(st, 6, s->address);
	rdb_bind_text(st, 7, s->agent_version);
	rdb_bind_text(st, 8, s->running);
	if (s->has_cert_days) {
		rdb_bind_int64(st, 9, s->cert_days_left);
	} else {
		rdb_bind_null(st, 9);
	}
	rdb_bind_int64(st, 10, s->interval_s);
	rdb_bind_text(st, 11, s->last_command);
	rdb_bind_text(st, 12, s->last_command_status);
	rdb_bind_int64(st, 13, s->last_command_at_ms);
	rdb_bind_int64(st, 14, telemetry_added);
	rdb_bind_int64(st, 15, (int)changed);
	int rc = 0;
	if (rdb_step(st) == RDB_ROW) {
		state_row(st, s);
		rc = rdb_step(st) == RDB_DONE ? 0
					      : reg_db_fail_table(reg, err, "record device state");
	} else {
		rc = reg_db_fail_table(reg, err, "record device state");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_device_state_get(struct moat_registry *reg, const char *device,
				   struct moat_device_state *out, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), "SELECT " STATE_COLUMNS " FROM device_state WHERE device = ?1",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "device state");
	}
	rdb_bind_text(st, 1, device);
	int s = rdb_step(st);
	int rc = 0;
	if (s == RDB_ROW) {
		state_row(st, out);
	} else if (s == RDB_DONE) {
		rc = moat_err_set(err, MOAT_ENOENT, "%s: never seen by moatd's ingest", device);
	} else {
		rc = reg_db_fail_table(reg, err, "device state");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_device_state_foreach(struct moat_registry *reg, moat_device_state_cb cb,
				       void *ctx, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), "SELECT " STATE_COLUMNS " FROM device_state ORDER BY device",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "device states");
	}
	int rc = 0, s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		struct moat_device_state row;
		state_row(st, &row);
		if ((rc = cb(&row, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != RDB_DONE) {
		rc = reg_db_fail_table(reg, err, "device states");
	}
	rdb_finalize(st);
	return rc;
}

/* ---- security_events ---- */

int moat_registry_security_event_add(struct moat_registry *reg, struct moat_security_event *ev,
				     const char *origin, bool *out_new, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (out_new) {
		*out_new = false;
	}
	if (rdb_prepare(
		    reg_db(reg),
		    "INSERT INTO security_events(at_ms, kind, severity, source, identity, "
		    "address, rule, evidence, run_id, origin) VALUES "
		    "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10) ON CONFLICT(origin) DO NOTHING RETURNING seq",
		    &st) != 0) {
		return reg_db_fail_table(reg, err, "record security event");
	}
	rdb_bind_int64(st, 1, ev->time_ms);
	rdb_bind_text(st, 2, ev->kind);
	rdb_bind_int64(st, 3, (int)ev->severity);
	rdb_bind_text(st, 4, ev->source);
	rdb_bind_text(st, 5, ev->identity);
	rdb_bind_text(st, 6, ev->address);
	rdb_bind_text(st, 7, ev->rule);
	rdb_bind_text(st, 8, ev->evidence);
	rdb_bind_text(st, 9, ev->run_id);
	rdb_bind_text(st, 10, origin); /* NULL: none, never a clash */
	int rc = 0;
	int s = rdb_step(st);
	if (s == RDB_ROW) { /* inserted: its seq; a clash on origin returns no row */
		ev->seq = rdb_column_int64(st, 0);
		if (out_new) {
			*out_new = true;
		}
		s = rdb_step(st);
	}
	if (s != RDB_DONE) {
		rc = reg_db_fail_table(reg, err, "record security event");
	}
	rdb_finalize(st);
	return rc;
}

/* The WHERE clause of f; parameters ?1..?6 and ?8, bound by bind_filter with ?7, the limit
 * (bound, typed, even where unused: PostgreSQL refuses a parameter it cannot type). */
#define FILTER_WHERE                                                                           \
	" WHERE seq > ?1 AND at_ms >= ?2 AND (?3 = 0 OR at_ms < ?3) AND (CAST(?4 AS TEXT) IS " \
	"NULL OR kind = ?4) AND (CAST(?5 AS TEXT) IS NULL OR identity = ?5) AND (CAST(?6 AS "  \
	"TEXT) IS NULL OR rule = ?6) AND severity >= ?8"

static void bind_filter(struct rdb_stmt *st, const struct moat_event_filter *f)
{
	rdb_bind_int64(st, 1, f->after_seq);
	rdb_bind_int64(st, 2, f->since_ms);
	rdb_bind_int64(st, 3, f->until_ms);
	rdb_bind_text(st, 4, f->kind); /* NULL: any */
	rdb_bind_text(st, 5, f->identity);
	rdb_bind_text(st, 6, f->rule);
	rdb_bind_int64(st, 7, f->limit > 0 ? f->limit : INT64_MAX); /* PostgreSQL: no LIMIT -1 */
	rdb_bind_int64(st, 8, f->min_severity);
}

int moat_registry_security_event_foreach(struct moat_registry *reg,
					 const struct moat_event_filter *f,
					 moat_security_event_cb cb, void *ctx, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	/* the newest limit, returned oldest first; or the oldest limit (a range scan of the
	 * primary key from after_seq that stops at the limit) */
	if (rdb_prepare(reg_db(reg),
			f->oldest
				? "SELECT seq, at_ms, kind, severity, source, identity, "
				  "address, rule, evidence, run_id FROM security_events" FILTER_WHERE
				  " ORDER BY seq LIMIT ?7"
				: "SELECT * FROM (SELECT seq, at_ms, kind, severity, source, "
				  "identity, address, rule, evidence, run_id FROM "
				  "security_events" FILTER_WHERE
				  " ORDER BY seq DESC LIMIT ?7) AS e ORDER BY seq",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "security events");
	}
	bind_filter(st, f);
	int rc = 0, s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		struct moat_security_event ev;
		memset(&ev, 0, sizeof(ev));
		ev.seq = rdb_column_int64(st, 0);
		ev.time_ms = rdb_column_int64(st, 1);
		rdb_column_copy(st, 2, ev.kind, sizeof(ev.kind));
		int sev = (int)rdb_column_int64(st, 3);
		ev.severity = sev >= 0 && sev < MOAT_SEV_COUNT ? (enum moat_severity)sev
							       : MOAT_SEV_MEDIUM;
		rdb_column_copy(st, 4, ev.source, sizeof(ev.source));
		rdb_column_copy(st, 5, ev.identity, sizeof(ev.identity));
		rdb_column_copy(st, 6, ev.address, sizeof(ev.address));
		rdb_column_copy(st, 7, ev.rule, sizeof(ev.rule));
		rdb_column_copy(st, 8, ev.evidence, sizeof(ev.evidence));
		rdb_column_copy(st, 9, ev.run_id, sizeof(ev.run_id));
		if ((rc = cb(&ev, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != RDB_DONE) {
		rc = reg_db_fail_table(reg, err, "security events");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_security_event_last_seq(struct moat_registry *reg, int64_t *out,
					  struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	*out = 0;
	if (rdb_prepare(reg_db(reg), "SELECT COALESCE(MAX(seq), 0) FROM security_events", &st) !=
	    0) {
		return reg_db_fail_table(reg, err, "last security event");
	}
	int rc = 0;
	if (rdb_step(st) == RDB_ROW) {
		*out = rdb_column_int64(st, 0);
	} else {
		rc = reg_db_fail_table(reg, err, "last security event");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_security_event_count(struct moat_registry *reg, const struct moat_event_filter *f,
				       int64_t *out, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	*out = 0;
	if (rdb_prepare(reg_db(reg), "SELECT count(*) FROM security_events" FILTER_WHERE, &st) !=
	    0) {
		return reg_db_fail_table(reg, err, "count security events");
	}
	bind_filter(st, f);
	int rc = 0;
	if (rdb_step(st) == RDB_ROW) {
		*out = rdb_column_int64(st, 0);
	} else {
		rc = reg_db_fail_table(reg, err, "count security events");
	}
	rdb_finalize(st);
	return rc;
}

/* ---- telemetry ---- */

int moat_registry_telemetry_add(struct moat_registry *reg, const char *device, int64_t at_ms,
				const void *payload, size_t len, struct moat_err *err)
{
	if (!reg->telemetry_insert &&
	    rdb_prepare(reg_db(reg),
			"INSERT INTO telemetry(device, at_ms, payload) VALUES (?1, ?2, ?3)",
			&reg->telemetry_insert) != 0) {
		return reg_db_fail_table(reg, err, "record telemetry");
	}
	struct rdb_stmt *st = reg->telemetry_insert;
	rdb_bind_text(st, 1, device);
	rdb_bind_int64(st, 2, at_ms);
	rdb_bind_text_n(st, 3, payload, len);
	int rc = rdb_step(st) == RDB_DONE ? 0 : reg_db_fail_table(reg, err, "record telemetry");
	rdb_reset(st);
	return rc;
}

/* Runs sql (pg_sql on PostgreSQL when the dialects differ, else NULL) with ?1 = a, ?2 = b;
 * the rows it changed in *changes. */
static int exec_changes(struct moat_registry *reg, const char *sql, const char *pg_sql, int64_t a,
			int64_t b, int64_t *changes, const char *what, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare2(reg_db(reg), sql, pg_sql, &st) != 0) {
		return reg_db_fail_table(reg, err, what);
	}
	rdb_bind_int64(st, 1, a);
	rdb_bind_int64(st, 2, b);
	int rc = rdb_step(st) == RDB_DONE ? 0 : reg_db_fail_table(reg, err, what);
	if (rc == 0 && changes) {
		*changes = rdb_changes(st);
	}
	rdb_finalize(st);
	return rc;
}

/* Folds the raw rows with at_ms <= ?2 (all older than the cutoff) into aggregates of
 * period ?1 seconds, merging with what is there. */
static const char fold_sql[] =
	"INSERT INTO telemetry_agg(device, metric, period_s, bucket_ms, n, min, max, sum) "
	"SELECT t.device, j.key, ?1, (t.at_ms / (?1 * 1000)) * (?1 * 1000), count(*), "
	"min(j.value), max(j.value), total(j.value) "
	"FROM telemetry AS t, json_each(t.payload, '$.telemetry') AS j "
	"WHERE t.at_ms <= ?2 AND json_valid(t.payload) AND j.type IN ('integer', 'real') "
	"GROUP BY 1, 2, 4 "
	"ON CONFLICT(device, metric, period_s, bucket_ms) DO UPDATE SET n = n + excluded.n, "
	"min = min(min, excluded.min), max = max(max, excluded.max), sum = sum + excluded.sum";

/* fold_sql on PostgreSQL: SQLite's JSON functions (json_each over a path, json_valid, the
 * value's SQL type) have no common spelling, so this text is PostgreSQL's own (rdb_prepare2).
 * The same rows: the numbers of the payload's "telemetry" object (PostgreSQL's JSON numbers
 * are one type, so "integer or real" is "number"). Ingest stores only telemetry
 * moat_msg_telemetry_parse accepted (valid JSON, "telemetry" an object), so no json_valid is
 * needed; a row written by hand with invalid JSON would fail the fold here where SQLite
 * skips it, and a non-object "telemetry" folds nothing here where SQLite's json_each would
 * walk an array. The existing row is named in DO UPDATE. A reading's text goes through
 * numeric, rounded to 300 places, before float8: float8 refuses text that underflows a
 * double (1e-400, which moat's parser reads as 0), and one such reading would stop every
 * later compaction. */
static const char fold_pg_sql[] =
	"INSERT INTO telemetry_agg(device, metric, period_s, bucket_ms, n, min, max, sum) "
	"SELECT t.device, j.key, $1, (t.at_ms / ($1 * 1000)) * ($1 * 1000), count(*), "
	"min(round((j.value #>> '{}')::numeric, 300)::float8), "
	"max(round((j.value #>> '{}')::numeric, 300)::float8), "
	"sum(round((j.value #>> '{}')::numeric, 300)::float8) "
	"FROM telemetry AS t, jsonb_each(CASE WHEN jsonb_typeof(t.payload::jsonb -> 'telemetry') "
	"= 'object' THEN t.payload::jsonb -> 'telemetry' ELSE '{}'::jsonb END) AS j "
	"WHERE t.at_ms <= $2 AND jsonb_typeof(j.value) = 'number' "
	"GROUP BY 1, 2, 4 "
	"ON CONFLICT(device, metric, period_s, bucket_ms) DO UPDATE SET "
	"n = telemetry_agg.n + excluded.n, min = LEAST(telemetry_agg.min, excluded.min), "
	"max = GREATEST(telemetry_agg.max, excluded.max), sum = telemetry_agg.sum + excluded.sum";

int moat_registry_telemetry_compact(struct moat_registry *reg, int64_t now_ms,
				    const struct moat_retention *r, int64_t max_rows,
				    struct moat_compact_stats *out, struct moat_err *err)
{
	int rc;
	memset(out, 0, sizeof(*out));
	bool own_tx = reg->tx_depth == 0;
	if (own_tx && (rc = moat_registry_begin(reg, err)) != 0) {
		return rc;
	}
	/* The newest time to fold: that of the last of the oldest max_rows rows before the
	 * cutoff (rows at that same time go too), found by the at_ms index. */
	int64_t last = -1;
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"SELECT max(at_ms) FROM (SELECT at_ms FROM telemetry WHERE at_ms < ?1 "
			"ORDER BY at_ms LIMIT ?2) AS oldest",
			&st) != 0) {
		rc = reg_db_fail_table(reg, err, "compact telemetry");
		goto fail;
	}
	rdb_bind_int64(st, 1, now_ms - r->raw_ms);
	rdb_bind_int64(st, 2, max_rows > 0 ? max_rows : INT64_MAX); /* PostgreSQL: no LIMIT -1 */
	if (rdb_step(st) == RDB_ROW && !rdb_column_is_null(st, 0)) {
		last = rdb_column_int64(st, 0);
	}
	rdb_finalize(st);
	if (last >= 0 &&
	    ((rc = exec_changes(reg, fold_sql, fold_pg_sql, 60, last, NULL, "fold telemetry",
				err)) != 0 ||
	     (rc = exec_changes(reg, fold_sql, fold_pg_sql, 3600, last, NULL, "fold telemetry",
				err)) != 0 ||
	     (rc = exec_changes(reg, "DELETE FROM telemetry WHERE at_ms <= ?2", NULL, 0, last,
				&out->raw_folded, "compact telemetry", err)) != 0)) {
		goto fail;
	}
	if ((rc = exec_changes(reg,
			       "DELETE FROM telemetry_agg WHERE period_s = ?1 AND bucket_ms < ?2",
			       NULL, 60, now_ms - r->minute_ms, &out->minutes_dropped,
			       "compact telemetry", err)) != 0 ||
	    (rc = exec_changes(reg,
			       "DELETE FROM telemetry_agg WHERE period_s = ?1 AND bucket_ms < ?2",
			       NULL, 3600, now_ms - r->hour_ms, &out->hours_dropped,
			       "compact telemetry", err)) != 0 ||
	    (rc = exec_changes(reg, "DELETE FROM security_events WHERE at_ms < ?2", NULL, 0,
			       now_ms - r->event_ms, &out->events_dropped,
			       "compact security events", err)) != 0) {
		goto fail;
	}
	return own_tx ? moat_registry_commit(reg, err) : 0;
fail:
	if (own_tx) {
		moat_registry_rollback(reg);
	}
	return rc;
}

int moat_registry_telemetry_agg_foreach(struct moat_registry *reg, const char *device, int period_s,
					moat_telemetry_agg_cb cb, void *ctx, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"SELECT device, metric, period_s, bucket_ms, n, min, max, sum "
			"FROM telemetry_agg WHERE (CAST(?1 AS TEXT) IS NULL OR device = ?1) AND "
			"(?2 = 0 OR period_s = ?2) ORDER BY device, metric, period_s, bucket_ms",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "telemetry aggregates");
	}
	rdb_bind_text(st, 1, device); /* NULL: every device */
	rdb_bind_int64(st, 2, period_s);
	int rc = 0, s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		struct moat_telemetry_agg a;
		memset(&a, 0, sizeof(a));
		rdb_column_copy(st, 0, a.device, sizeof(a.device));
		rdb_column_copy(st, 1, a.metric, sizeof(a.metric));
		a.period_s = (int)rdb_column_int64(st, 2);
		a.bucket_ms = rdb_column_int64(st, 3);
		a.count = rdb_column_int64(st, 4);
		a.min = rdb_column_double(st, 5);
		a.max = rdb_column_double(st, 6);
		a.mean = a.count > 0 ? rdb_column_double(st, 7) / (double)a.count : 0;
		if ((rc = cb(&a, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != RDB_DONE) {
		rc = reg_db_fail_table(reg, err, "telemetry aggregates");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_telemetry_count(struct moat_registry *reg, const char *device, int64_t *out,
				  struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	*out = 0;
	if (rdb_prepare(
		    reg_db(reg),
		    "SELECT count(*) FROM telemetry WHERE CAST(?1 AS TEXT) IS NULL OR device = ?1",
		    &st) != 0) {
		return reg_db_fail_table(reg, err, "count telemetry");
	}
	rdb_bind_text(st, 1, device); /* NULL: every device */
	int rc = 0;
	if (rdb_step(st) == RDB_ROW) {
		*out = rdb_column_int64(st, 0);
	} else {
		rc = reg_db_fail_table(reg, err, "count telemetry");
	}
	rdb_finalize(st);
	return rc;
}
