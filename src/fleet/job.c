/* job.c: a job's run (moat/job.h): one MQTT session for the whole job, the devices'
 * retained statuses first, then one command per online device at a steady pace, responses
 * matched by id, results recorded in the registry in batches as they come.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "moat/deploy.h"
#include "moat/job.h"
#include "moat/messages.h"
#include "moat/opclient.h"
#include "moat/timeutil.h"
#include "moat/topic.h"

#define JOB_CONNECT_TIMEOUT_MS 10000
#define JOB_FLUSH_MS 200 /* results reach the registry at least this often */
#define JOB_STATUS_FILTER "devices/+/status"
#define JOB_RESPONSE_FILTER "devices/+/command_responses"

struct job_dev {
	const char *id;
	int online; /* -1 no status seen, 0 offline, 1 online */
	bool sent;
	bool dirty; /* result not yet written */
	int64_t deadline_ms;
	enum moat_job_result result;
	char detail[MOAT_MSG_DETAIL_MAX_LEN + 1];
	char cmd_id[MOAT_MSG_CMD_ID_MAX_LEN + 1];
};

struct job_run {
	struct moat_deploy *d;
	const struct moat_job_req *req;
	struct moat_opclient *cl;
	struct job_dev *devs; /* sorted by id */
	size_t count;
	struct moat_job_progress prog;
	struct moat_job_result_row *batch;
};

static int dev_cmp(const void *a, const void *b)
{
	return strcmp(((const struct job_dev *)a)->id, ((const struct job_dev *)b)->id);
}

static struct job_dev *find_dev(struct job_run *r, const char *id)
{
	struct job_dev key = {.id = id};
	return bsearch(&key, r->devs, r->count, sizeof(key), dev_cmp);
}

static void set_result(struct job_run *r, struct job_dev *dv, enum moat_job_result res,
		       const char *detail)
{
	if (dv->result != MOAT_JOB_PENDING) {
		return;
	}
	dv->result = res;
	size_t len = detail ? strnlen(detail, sizeof(dv->detail) - 1) : 0;
	memcpy(dv->detail, detail ? detail : "", len);
	dv->detail[len] = '\0';
	dv->dirty = true;
	r->prog.counts[MOAT_JOB_PENDING]--;
	r->prog.counts[res]++;
}

static int flush(struct job_run *r, struct moat_err *err)
{
	size_t n = 0;
	int64_t now = moat_time_now();
	for (size_t i = 0; i < r->count; i++) {
		struct job_dev *dv = &r->devs[i];
		if (dv->dirty) {
			r->batch[n++] =
				(struct moat_job_result_row){dv->id, dv->result, dv->detail, now};
			dv->dirty = false;
		}
	}
	if (n == 0) {
		return 0;
	}
	return moat_registry_job_results_set(moat_deploy_registry(r->d), r->prog.job_id, r->batch,
					     n, err);
}

/* A status or a response for one of the job's devices. */
static void on_message(struct job_run *r, const char *topic, const void *p, size_t len)
{
	struct moat_topic t;
	if (moat_topic_parse(topic, &t, NULL) != 0) {
		return;
	}
	struct job_dev *dv = find_dev(r, t.id);
	if (!dv) {
		return;
	}
	if (t.kind == MOAT_TOPIC_STATUS) {
		struct moat_msg_status st;
		if (len == 0) {
			dv->online = 0;
		} else if (moat_msg_status_parse(p, len, &st, NULL) == 0) {
			dv->online = st.online ? 1 : 0;
		}
		if (dv->sent && dv->online == 0) {
			set_result(r, dv, MOAT_JOB_OFFLINE, "went offline before it answered");
		}
		return;
	}
	struct moat_msg_response resp;
	if (t.kind != MOAT_TOPIC_COMMAND_RESPONSES || !dv->sent ||
	    moat_msg_response_parse(p, len, &resp, NULL) != 0) {
		return;
	}
	/* with an id only ours counts; firmware that sends none is matched by command */
	if (resp.id[0] ? strcmp(resp.id, dv->cmd_id) != 0
		       : strcmp(resp.command, r->req->cmd->name) != 0) {
		return;
	}
	/* "status: detail", cut to fit */
	char detail[sizeof(dv->detail) + sizeof(resp.status) + 2];
	snprintf(detail, sizeof(detail), "%s%s%s", resp.status, resp.detail[0] ? ": " : "",
		 resp.detail);
	set_result(r, dv, moat_job_result_of_status(resp.status), detail);
}

static int send_one(struct job_run *r, struct job_dev *dv, const char *prefix, size_t index,
		    struct moat_err *err)
{
	struct moat_msg_command cmd = *r->req->cmd;
	char topic[MOAT_TOPIC_BUF_LEN];
	char payload[MOAT_MSG_COMMAND_MAX_BYTES];
	size_t len = 0;
	snprintf(dv->cmd_id, sizeof(dv->cmd_id), "%s-%zu", prefix, index);
	snprintf(cmd.id, sizeof(cmd.id), "%s", dv->cmd_id);
	int rc = moat_msg_command_build(&cmd, payload, sizeof(payload), &len, err);
	if (rc == 0) {
		rc = moat_topic_build(MOAT_TOPIC_COMMAND, dv->id, cmd.name, topic, sizeof(topic),
				      err);
	}
	if (rc == 0) {
		rc = moat_opclient_publish(r->cl, topic, payload, len, JOB_CONNECT_TIMEOUT_MS, err);
	}
	if (rc == 0) {
		dv->sent = true;
		dv->deadline_ms = moat_time_mono_ms() + r->req->timeout_ms;
		r->prog.sent++;
	}
	return rc;
}

/* Reads what arrives for up to wait_ms; 0 when the wait ended (timeout), else the error. */
static int pump(struct job_run *r, int64_t wait_ms, struct moat_err *err)
{
	int64_t end = moat_time_mono_ms() + (wait_ms > 0 ? wait_ms : 0);
	for (;;) {
		const char *t;
		const void *p;
		size_t len;
		int64_t left = end - moat_time_mono_ms();
		int rc = moat_opclient_next(r->cl, left > 0 ? left : 0, r->req->stop, &t, &p, &len,
					    err);
		if (rc == MOAT_ETIMEOUT) {
			return 0;
		}
		if (rc != 0) {
			return rc;
		}
		on_message(r, t, p, len);
	}
}

static int run(struct job_run *r, moat_job_progress_cb progress, void *ctx, struct moat_err *err)
{
	const char *filters_status[1] = {JOB_STATUS_FILTER};
	const char *filters_resp[1] = {JOB_RESPONSE_FILTER};
	/* the retained statuses are queued before the second SUBACK (as for moat cmd) */
	int rc = moat_opclient_subscribe(r->cl, filters_status, 1, JOB_CONNECT_TIMEOUT_MS, err);
	if (rc == 0) {
		rc = moat_opclient_subscribe(r->cl, filters_resp, 1, JOB_CONNECT_TIMEOUT_MS, err);
	}
	if (rc == 0) {
		rc = pump(r, 0, err);
	}
	if (rc != 0) {
		return rc;
	}
	unsigned char rnd[6];
	char prefix[32];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		return moat_err_set(err, MOAT_ECRYPTO, "no randomness for the command ids");
	}
	snprintf(prefix, sizeof(prefix), "job%lld-%02x%02x%02x%02x%02x%02x",
		 (long long)r->prog.job_id, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
	size_t next = 0;
	int64_t next_send_us = moat_time_mono_ms() * 1000;
	int64_t next_flush = moat_time_mono_ms() + JOB_FLUSH_MS;
	for (;;) {
		int64_t now_ms = moat_time_mono_ms();
		/* send what is due */
		while (next < r->count && now_ms * 1000 >= next_send_us) {
			struct job_dev *dv = &r->devs[next];
			size_t index = next++;
			if (dv->online != 1) {
				set_result(r, dv, MOAT_JOB_OFFLINE,
					   dv->online < 0 ? "no status since the broker started"
							  : "offline");
				continue; /* nothing sent: no pause */
			}
			if ((rc = send_one(r, dv, prefix, index, err)) != 0) {
				return rc;
			}
			next_send_us += r->prog.interval_us;
			if (next_send_us < now_ms * 1000 - r->prog.interval_us) {
				next_send_us = now_ms * 1000; /* never catch up in a burst */
			}
		}
		/* time out what waited too long */
		for (size_t i = 0; i < next; i++) {
			struct job_dev *dv = &r->devs[i];
			if (dv->sent && dv->result == MOAT_JOB_PENDING &&
			    now_ms >= dv->deadline_ms) {
				set_result(r, dv, MOAT_JOB_TIMEOUT, "no answer in time");
			}
		}
		if (now_ms >= next_flush || r->prog.counts[MOAT_JOB_PENDING] == 0) {
			if ((rc = flush(r, err)) != 0) {
				return rc;
			}
			if (progress) {
				progress(&r->prog, false, ctx);
			}
			next_flush = now_ms + JOB_FLUSH_MS;
		}
		if (r->prog.counts[MOAT_JOB_PENDING] == 0) {
			return 0;
		}
		int64_t wait = JOB_FLUSH_MS;
		if (next < r->count) {
			int64_t until_send = next_send_us / 1000 - now_ms;
			wait = until_send < wait ? until_send : wait;
		}
		if ((rc = pump(r, wait > 0 ? wait : 0, err)) != 0) {
			return rc;
		}
	}
}

int moat_job_run(struct moat_deploy *d, const struct moat_job_req *req,
		 moat_job_progress_cb progress, void *ctx, struct moat_job_progress *out,
		 struct moat_err *err)
{
	struct job_run r = {.d = d, .req = req, .count = req->count};
	char as[MOAT_ID_BUF_LEN] = "";
	char suffix[32];
	int rc;
	memset(out, 0, sizeof(*out));
	if (req->count == 0 || req->interval_us <= 0 || req->timeout_ms <= 0) {
		return moat_err_set(err, MOAT_EINVAL, "job: no devices, rate or timeout");
	}
	r.devs = calloc(req->count, sizeof(*r.devs));
	r.batch = calloc(req->count, sizeof(*r.batch));
	if (!r.devs || !r.batch) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < req->count; i++) {
		r.devs[i].id = req->devices[i];
		r.devs[i].online = -1;
	}
	qsort(r.devs, r.count, sizeof(*r.devs), dev_cmp);
	for (size_t i = 1; i < r.count; i++) {
		if (strcmp(r.devs[i - 1].id, r.devs[i].id) == 0) {
			rc = moat_err_set(err, MOAT_EINVAL, "job: device %s named twice",
					  r.devs[i].id);
			goto out;
		}
	}
	enum moat_role role;
	if ((rc = moat_opclient_identity(d, req->as, as, &role, err)) != 0) {
		goto out;
	}
	/* above the ceiling the broker would drop commands (rate_limited): refuse now */
	uint32_t cap = req->role_ceiling_per_s[role];
	if (cap > 0 && req->interval_us * (int64_t)cap < 1000000) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "job: --rate is above the %u/s the broker takes from %s %s for "
				  "devices ([policy] %s)",
				  cap, moat_role_name(role), as,
				  role == MOAT_ROLE_OPERATOR ? "job_rate" : "service_msgs_per_s");
		goto out;
	}
	snprintf(suffix, sizeof(suffix), "job-%ld", (long)getpid());
	if ((rc = moat_opclient_connect(d, as, suffix, req->host, JOB_CONNECT_TIMEOUT_MS, &r.cl,
					NULL, err)) != 0) {
		goto out;
	}
	r.prog.total = req->count;
	r.prog.counts[MOAT_JOB_PENDING] = req->count;
	r.prog.interval_us = req->interval_us;
	struct moat_job_row row = {.created_at = moat_time_now()};
	snprintf(row.command, sizeof(row.command), "%s", req->cmd->name);
	snprintf(row.target, sizeof(row.target), "%s", req->target ? req->target : "");
	snprintf(row.as, sizeof(row.as), "%s", as);
	if ((rc = moat_registry_job_insert(moat_deploy_registry(d), &row, req->devices, req->count,
					   err)) != 0) {
		goto out;
	}
	r.prog.job_id = row.id;
	rc = run(&r, progress, ctx, err);
	struct moat_err ferr = {0};
	/* what arrived is recorded whatever ended the run */
	int frc = flush(&r, &ferr);
	if (frc == 0 && rc == 0) {
		frc = moat_registry_job_finish(moat_deploy_registry(d), row.id, moat_time_now(),
					       &ferr);
	}
	if (rc == 0 && frc != 0) {
		*err = ferr;
		rc = frc;
	}
	if (progress) {
		progress(&r.prog, true, ctx);
	}
	*out = r.prog;
out:
	moat_opclient_close(r.cl);
	free(r.devs);
	free(r.batch);
	return rc;
}
