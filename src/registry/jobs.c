/* jobs.c: the job tables of migration 6: jobs (a command sent to many devices: what, to
 * whom, as whom, when it started and finished) and job_results (each device's result).
 * Results are written in batches, each batch one transaction, so a job's record is never
 * half a batch. Bound parameters only.
 */
#include <stdio.h>
#include <string.h>

#include "registry_internal.h"

static int prepare(struct moat_registry *reg, const char *sql, const char *what, sqlite3_stmt **st,
		   struct moat_err *err)
{
	if (sqlite3_prepare_v2(reg->db, sql, -1, st, NULL) != SQLITE_OK) {
		return reg_fail_table(reg, err, what);
	}
	return 0;
}

static int insert_rows(struct moat_registry *reg, struct moat_job_row *j, char *const *devices,
		       size_t count, struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = prepare(reg,
			 "INSERT INTO jobs(command, target, as_identity, created_at) "
			 "VALUES (?1, ?2, ?3, ?4)",
			 "insert job", &st, err);
	if (rc != 0) {
		return rc;
	}
	sqlite3_bind_text(st, 1, j->command, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, j->target, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, j->as, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, j->created_at);
	int s = sqlite3_step(st);
	sqlite3_finalize(st);
	if (s != SQLITE_DONE) {
		return reg_fail_table(reg, err, "insert job");
	}
	j->id = sqlite3_last_insert_rowid(reg->db);
	if ((rc = prepare(reg,
			  "INSERT INTO job_results(job, device, result, at) "
			  "VALUES (?1, ?2, 'pending', ?3)",
			  "insert job device", &st, err)) != 0) {
		return rc;
	}
	for (size_t i = 0; i < count && rc == 0; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, j->id);
		sqlite3_bind_text(st, 2, devices[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, j->created_at);
		s = sqlite3_step(st);
		if (s == SQLITE_CONSTRAINT) {
			rc = moat_err_set(err, MOAT_EINVAL, "job: device %s twice or unknown",
					  devices[i]);
		} else if (s != SQLITE_DONE) {
			rc = reg_fail_table(reg, err, "insert job device");
		}
	}
	sqlite3_finalize(st);
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
	sqlite3_stmt *st = NULL;
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
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_text(st, 2, rows[i].device, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, moat_job_result_name(rows[i].result), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, rows[i].detail ? rows[i].detail : "", -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, rows[i].at);
		if (sqlite3_step(st) != SQLITE_DONE) {
			rc = reg_fail_table(reg, err, "record job result");
		}
	}
	sqlite3_finalize(st);
	if (rc != 0) {
		moat_registry_rollback(reg);
		return rc;
	}
	return moat_registry_commit(reg, err);
}

int moat_registry_job_finish(struct moat_registry *reg, int64_t id, int64_t at,
			     struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = prepare(reg, "UPDATE jobs SET finished_at = ?2 WHERE id = ?1", "finish job", &st,
			 err);
	if (rc != 0) {
		return rc;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, at);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : reg_fail_table(reg, err, "finish job");
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_job_get(struct moat_registry *reg, int64_t id, struct moat_job_row *out,
			  struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	memset(out, 0, sizeof(*out));
	int rc = prepare(reg,
			 "SELECT id, command, target, as_identity, created_at, "
			 "COALESCE(finished_at, 0) FROM jobs WHERE id = ?1",
			 "job lookup", &st, err);
	if (rc != 0) {
		return rc;
	}
	sqlite3_bind_int64(st, 1, id);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		out->id = sqlite3_column_int64(st, 0);
		reg_column_text(st, 1, out->command, sizeof(out->command));
		reg_column_text(st, 2, out->target, sizeof(out->target));
		reg_column_text(st, 3, out->as, sizeof(out->as));
		out->created_at = sqlite3_column_int64(st, 4);
		out->finished_at = sqlite3_column_int64(st, 5);
	} else if (s == SQLITE_DONE) {
		rc = moat_err_set(err, MOAT_ENOENT, "no job %lld", (long long)id);
	} else {
		rc = reg_fail_table(reg, err, "job lookup");
	}
	sqlite3_finalize(st);
	if (rc != 0) {
		return rc;
	}
	if ((rc = prepare(reg,
			  "SELECT result, count(*) FROM job_results WHERE job = ?1 GROUP BY result",
			  "job lookup", &st, err)) != 0) {
		return rc;
	}
	sqlite3_bind_int64(st, 1, id);
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		char name[32];
		enum moat_job_result r;
		reg_column_text(st, 0, name, sizeof(name));
		if (moat_job_result_parse(name, &r) == 0) {
			out->counts[r] = (size_t)sqlite3_column_int64(st, 1);
			out->devices += out->counts[r];
		}
	}
	sqlite3_finalize(st);
	return s == SQLITE_DONE ? 0 : reg_fail_table(reg, err, "job lookup");
}

int moat_registry_job_foreach(struct moat_registry *reg, moat_job_cb cb, void *ctx,
			      struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	int64_t ids[100];
	size_t n = 0;
	int rc = prepare(reg, "SELECT id FROM jobs ORDER BY id DESC LIMIT 100", "list jobs", &st,
			 err);
	if (rc != 0) {
		return rc;
	}
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW && n < 100) {
		ids[n++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	if (s != SQLITE_DONE && s != SQLITE_ROW) {
		return reg_fail_table(reg, err, "list jobs");
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
	sqlite3_stmt *st = NULL;
	int rc = prepare(reg,
			 "SELECT device, result, detail, at FROM job_results WHERE job = ?1 "
			 "ORDER BY device",
			 "job results", &st, err);
	if (rc != 0) {
		return rc;
	}
	sqlite3_bind_int64(st, 1, id);
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		char device[MOAT_ID_BUF_LEN], name[32], detail[MOAT_ERR_MSG_MAX];
		reg_column_text(st, 0, device, sizeof(device));
		reg_column_text(st, 1, name, sizeof(name));
		reg_column_text(st, 2, detail, sizeof(detail));
		struct moat_job_result_row r = {.device = device,
						.detail = detail,
						.at = sqlite3_column_int64(st, 3)};
		if (moat_job_result_parse(name, &r.result) != 0) {
			rc = moat_err_set(err, MOAT_EDB, "registry: job_results: bad result");
			break;
		}
		if ((rc = cb(&r, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != SQLITE_DONE) {
		rc = reg_fail_table(reg, err, "job results");
	}
	sqlite3_finalize(st);
	return rc;
}
