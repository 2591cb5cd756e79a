/* jobs.c: the job tables of migration 6: jobs (a command sent to many devices: what, to
 * whom, as whom, when it started and finished) and job_results (each device's result).
 * Results are written in batches, each batch one transaction, so a job's record is never
 * half a batch. Bound parameters only.
 */
#include <stdio.h>
#include <string.h>

#include "registry_internal.h"

static int prepare(struct moat_registry *reg, const char *sql, const char *what,
		   struct rdb_stmt **st, struct moat_err *err)
{
	if (rdb_prepare(reg_db(reg), sql, st) != 0) {
		return reg_db_fail_table(reg, err, what);
	}
	return 0;
}

static int insert_rows(struct moat_registry *reg, struct moat_job_row *j, char *const *devices,
		       size_t count, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc = prepare(reg,
			 "INSERT INTO jobs(command, target, as_identity, created_at) "
			 "VALUES (?1, ?2, ?3, ?4) RETURNING id",
			 "insert job", &st, err);
	if (rc != 0) {
		return rc;
	}
	rdb_bind_text(st, 1, j->command);
	rdb_bind_text(st, 2, j->target);
	rdb_bind_text(st, 3, j->as);
	rdb_bind_int64(st, 4, j->created_at);
	int s = rdb_step(st);
	if (s == RDB_ROW) {
		j->id = rdb_column_int64(st, 0);
	}
	rdb_finalize(st);
	if (s != RDB_ROW) {
		return reg_db_fail_table(reg, err, "insert job");
	}
	if ((rc = prepare(reg,
			  "INSERT INTO job_results(job, device, result, at) "
			  "VALUES (?1, ?2, 'pending', ?3)",
			  "insert job device", &st, err)) != 0) {
		return rc;
	}
	for (size_t i = 0; i < count && rc == 0; i++) {
		rdb_reset(st);
		rdb_bind_int64(st, 1, j->id);
		rdb_bind_text(st, 2, devices[i]);
		rdb_bind_int64(st, 3, j->created_at);
		s = rdb_step(st);
		if (rdb_is_constraint(s)) {
			rc = moat_err_set(err, MOAT_EINVAL, "job: device %s twice or unknown",
					  devices[i]);
		} else if (s != RDB_DONE) {
			rc = reg_db_fail_table(reg, err, "insert job device");
		}
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_job_insert(struct moat_registry *reg, struct moat_job_row *j,
			     char *const *devices, size_t count, struct moat_err *err)
{
	int rc = moat_registry_begin(reg, err);
	if (rc != 0) {
		return rc;
	}
	if ((rc = insert_rows(reg, j, devices, count, err)) != 0) {
		moat_registry_rollback(reg);
		return rc;
	}
	return moat_registry_commit(reg, err);
}

int moat_registry_job_results_set(struct moat_registry *reg, int64_t id,
				  const struct moat_job_result_row *rows, size_t count,
				  struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc = moat_registry_begin(reg, err);
	if (rc != 0) {
		return rc;
	}
	if ((rc = prepare(reg,
			  "UPDATE job_results SET result = ?3, detail = ?4, at = ?5 "
			  "WHERE job = ?1 AND device = ?2",
			  "record job result", &st, err)) != 0) {
		moat_registry_rollback(reg);
		return rc;
	}
	for (size_t i = 0; i < count && rc == 0; i++) {
		rdb_reset(st);
		rdb_bind_int64(st, 1, id);
		rdb_bind_text(st, 2, rows[i].device);
		rdb_bind_text(st, 3, moat_job_result_name(rows[i].result));
		rdb_bind_text(st, 4, rows[i].detail ? rows[i].detail : "");
		rdb_bind_int64(st, 5, rows[i].at);
		if (rdb_step(st) != RDB_DONE) {
			rc = reg_db_fail_table(reg, err, "record job result");
		}
	}
	rdb_finalize(st);
	if (rc != 0) {
		moat_registry_rollback(reg);
		return rc;
	}
	return moat_registry_commit(reg, err);
}

int moat_registry_job_finish(struct moat_registry *reg, int64_t id, int64_t at,
			     struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc = prepare(reg, "UPDATE jobs SET finished_at = ?2 WHERE id = ?1", "finish job", &st,
			 err);
	if (rc != 0) {
		return rc;
	}
	rdb_bind_int64(st, 1, id);
	rdb_bind_int64(st, 2, at);
	rc = rdb_step(st) == RDB_DONE ? 0 : reg_db_fail_table(reg, err, "finish job");
	rdb_finalize(st);
	return rc;
}

int moat_registry_job_get(struct moat_registry *reg, int64_t id, struct moat_job_row *out,
			  struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	memset(out, 0, sizeof(*out));
	int rc = prepare(reg,
			 "SELECT id, command, target, as_identity, created_at, "
			 "COALESCE(finished_at, 0) FROM jobs WHERE id = ?1",
			 "job lookup", &st, err);
	if (rc != 0) {
		return rc;
	}
	rdb_bind_int64(st, 1, id);
	int s = rdb_step(st);
	if (s == RDB_ROW) {
		out->id = rdb_column_int64(st, 0);
		rdb_column_copy(st, 1, out->command, sizeof(out->command));
		rdb_column_copy(st, 2, out->target, sizeof(out->target));
		rdb_column_copy(st, 3, out->as, sizeof(out->as));
		out->created_at = rdb_column_int64(st, 4);
		out->finished_at = rdb_column_int64(st, 5);
	} else if (s == RDB_DONE) {
		rc = moat_err_set(err, MOAT_ENOENT, "no job %lld", (long long)id);
	} else {
		rc = reg_db_fail_table(reg, err, "job lookup");
	}
	rdb_finalize(st);
	if (rc != 0) {
		return rc;
	}
	if ((rc = prepare(reg,
			  "SELECT result, count(*) FROM job_results WHERE job = ?1 GROUP BY result",
			  "job lookup", &st, err)) != 0) {
		return rc;
	}
	rdb_bind_int64(st, 1, id);
	while ((s = rdb_step(st)) == RDB_ROW) {
		char name[32];
		enum moat_job_result r;
		rdb_column_copy(st, 0, name, sizeof(name));
		if (moat_job_result_parse(name, &r) == 0) {
			out->counts[r] = (size_t)rdb_column_int64(st, 1);
			out->devices += out->counts[r];
		}
	}
	rdb_finalize(st);
	return s == RDB_DONE ? 0 : reg_db_fail_table(reg, err, "job lookup");
}

int moat_registry_job_foreach(struct moat_registry *reg, moat_job_cb cb, void *ctx,
			      struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int64_t ids[100];
	size_t n = 0;
	int rc = prepare(reg, "SELECT id FROM jobs ORDER BY id DESC LIMIT 100", "list jobs", &st,
			 err);
	if (rc != 0) {
		return rc;
	}
	int s;
	while ((s = rdb_step(st)) == RDB_ROW && n < 100) {
		ids[n++] = rdb_column_int64(st, 0);
	}
	rdb_finalize(st);
	if (s != RDB_DONE && s != RDB_ROW) {
		return reg_db_fail_table(reg, err, "list jobs");
	}
	for (size_t i = n; i-- > 0 && rc == 0;) {
		struct moat_job_row j;
		if ((rc = moat_registry_job_get(reg, ids[i], &j, err)) == 0) {
			rc = cb(&j, ctx);
		}
	}
	return rc;
}

int moat_registry_job_results_foreach(struct moat_registry *reg, int64_t id, moat_job_result_cb cb,
				      void *ctx, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc = prepare(reg,
			 "SELECT device, result, detail, at FROM job_results WHERE job = ?1 "
			 "ORDER BY device",
			 "job results", &st, err);
	if (rc != 0) {
		return rc;
	}
	rdb_bind_int64(st, 1, id);
	int s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		char device[MOAT_ID_BUF_LEN], name[32], detail[MOAT_ERR_MSG_MAX];
		rdb_column_copy(st, 0, device, sizeof(device));
		rdb_column_copy(st, 1, name, sizeof(name));
		rdb_column_copy(st, 2, detail, sizeof(detail));
		struct moat_job_result_row r = {.device = device,
						.detail = detail,
						.at = rdb_column_int64(st, 3)};
		if (moat_job_result_parse(name, &r.result) != 0) {
			rc = moat_err_set(err, MOAT_EDB, "registry: job_results: bad result");
			break;
		}
		if ((rc = cb(&r, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != RDB_DONE) {
		rc = reg_db_fail_table(reg, err, "job results");
	}
	rdb_finalize(st);
	return rc;
}
