/* stats.c: grouped counts of the registry for moatd's /metrics: read-only queries, one
 * per count, over the tables of migrations 1-6. */
#include <stdio.h>
#include <string.h>

#include "registry_internal.h"

struct stat_query {
	enum moat_registry_stat stat;
	int labels; /* columns before the value */
	const char *sql;
};

static const struct stat_query queries[] = {
	{MOAT_STAT_DEVICES, 2,
	 "SELECT status, device_type, COUNT(*) FROM identities WHERE role = 'device' "
	 "GROUP BY status, device_type ORDER BY status, device_type"},
	{MOAT_STAT_IDENTITIES, 2,
	 "SELECT role, status, COUNT(*) FROM identities GROUP BY role, status ORDER BY role, "
	 "status"},
	{MOAT_STAT_CERT_NEXT_EXPIRY, 1,
	 "SELECT i.role, MIN(c.not_after) FROM certificates c JOIN identities i ON i.id = "
	 "c.identity WHERE c.revoked_at IS NULL AND i.status = 'active' GROUP BY i.role "
	 "ORDER BY i.role"},
	{MOAT_STAT_CERTS_EXPIRING, 1,
	 "SELECT '7d', COUNT(*) FROM certificates c JOIN identities i ON i.id = c.identity "
	 "WHERE c.revoked_at IS NULL AND i.status = 'active' AND c.not_after <= ?1 + 604800 "
	 "UNION ALL "
	 "SELECT '30d', COUNT(*) FROM certificates c JOIN identities i ON i.id = c.identity "
	 "WHERE c.revoked_at IS NULL AND i.status = 'active' AND c.not_after <= ?1 + 2592000"},
	{MOAT_STAT_ENROLLMENTS, 1,
	 "SELECT CASE WHEN used_at IS NOT NULL THEN 'enrolled' WHEN expires_at < ?1 THEN "
	 "'expired' ELSE 'pending' END AS state, COUNT(*) FROM enrollments GROUP BY state "
	 "ORDER BY state"},
	/* a release with a phased rollout is for the devices of its started phases (none once
	 * aborted); one without, for its publish's --devices or --rollout share */
	{MOAT_STAT_ROLLOUT_TARGETS, 2,
	 "SELECT r.device_type, r.version, CASE WHEN o.id IS NOT NULL THEN (CASE WHEN "
	 "o.state = 'aborted' THEN 0 ELSE (SELECT COUNT(*) FROM rollout_devices d WHERE "
	 "d.rollout = o.id AND d.phase <= o.phase) END) WHEN r.rollout_percent < 0 THEN (SELECT "
	 "COUNT(*) FROM release_devices d WHERE d.sha256 = r.sha256) ELSE (SELECT COUNT(*) "
	 "FROM identities i WHERE i.role = 'device' AND i.status = 'active' AND "
	 "i.device_type = r.device_type) * r.rollout_percent / 100 END FROM releases r "
	 "LEFT JOIN rollouts o ON o.sha256 = r.sha256 ORDER BY r.device_type, r.version"},
	{MOAT_STAT_ROLLOUT_RUNNING, 2,
	 "SELECT r.device_type, r.version, (SELECT COUNT(*) FROM device_firmware f JOIN "
	 "identities i ON i.id = f.device WHERE i.device_type = r.device_type AND f.version = "
	 "r.version) FROM releases r ORDER BY r.device_type, r.version"},
	{MOAT_STAT_UPDATE_EVENTS, 1,
	 "SELECT stage, COUNT(*) FROM update_events GROUP BY stage ORDER BY stage"},
	{MOAT_STAT_CONN_STATE, 1,
	 "SELECT CASE state WHEN 1 THEN 'online' WHEN 2 THEN 'offline' ELSE 'unknown' END AS s, "
	 "COUNT(*) FROM device_state GROUP BY s ORDER BY s"},
	{MOAT_STAT_TELEMETRY_MESSAGES, 0,
	 "SELECT COALESCE(SUM(telemetry_messages), 0) FROM device_state"},
	{MOAT_STAT_LAST_MESSAGE, 0, "SELECT MAX(last_seen_ms) / 1000.0 FROM device_state"},
	{MOAT_STAT_SECURITY_EVENTS, 2,
	 "SELECT kind, CASE severity WHEN 0 THEN 'info' WHEN 1 THEN 'low' WHEN 2 THEN 'medium' "
	 "WHEN 3 THEN 'high' ELSE 'critical' END, COUNT(*) FROM security_events GROUP BY kind, "
	 "severity ORDER BY kind, severity"},
	{MOAT_STAT_ANOMALIES, 1,
	 "SELECT rule, COUNT(*) FROM security_events WHERE kind = 'anomaly' GROUP BY rule "
	 "ORDER BY rule"},
};

int moat_registry_stats(struct moat_registry *reg, int64_t now, moat_registry_stat_cb cb, void *ctx,
			struct moat_err *err)
{
	for (size_t q = 0; q < sizeof(queries) / sizeof(queries[0]); q++) {
		struct rdb_stmt *st = NULL;
		if (rdb_prepare(reg_db(reg), queries[q].sql, &st) != 0) {
			return reg_db_fail_table(reg, err, "stats");
		}
		if (rdb_param_count(st) > 0) {
			rdb_bind_int64(st, 1, now);
		}
		int rc;
		while ((rc = rdb_step(st)) == RDB_ROW) {
			char a[128] = "", b[128] = "";
			int labels = queries[q].labels;
			if (labels > 0) {
				rdb_column_copy(st, 0, a, sizeof(a));
			}
			if (labels > 1) {
				rdb_column_copy(st, 1, b, sizeof(b));
			}
			if (rdb_column_is_null(st, labels)) {
				continue; /* MIN over no rows */
			}
			cb(ctx, queries[q].stat, a, b, rdb_column_double(st, labels));
		}
		rdb_finalize(st);
		if (rc != RDB_DONE) {
			return reg_db_fail_table(reg, err, "stats");
		}
	}
	return 0;
}
