/* updater.c: one update check of a device: ask moatd for the newest envelope, decide with
 * the shared rules (moat_fw_decide), download the image into the inactive slot while
 * hashing it, verify, and stage the slot as trial for moat-boot. The order of the writes is
 * what makes a crash at any point harmless: *.part files first, renames into the inactive
 * slot next, and the single atomic boot.state write that names the trial last.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "failpoint.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"
#include "moat/update.h"
#include "update_internal.h"

#define REHASH_BUF_BYTES (256u * 1024u)

struct paths {
	char env_part[4096];
	char img_part[4096];
	char env[4096];
	char img[4096];
	char slot_dir[4096];
};

static int make_paths(const char *dir, char slot, struct paths *p, struct moat_err *err)
{
	int rc = moat_slots_path(p->env_part, sizeof(p->env_part), dir, slot, "envelope.part", err);

	if (rc == 0) {
		rc = moat_slots_path(p->img_part, sizeof(p->img_part), dir, slot, "image.part",
				     err);
	}
	if (rc == 0) {
		rc = moat_slots_path(p->env, sizeof(p->env), dir, slot, "envelope.json", err);
	}
	if (rc == 0) {
		rc = moat_slots_path(p->img, sizeof(p->img), dir, slot, "image", err);
	}
	if (rc == 0) {
		rc = moat_path_join(p->slot_dir, sizeof(p->slot_dir), err, "%s/slots/%c", dir,
				    slot);
	}
	return rc;
}

/* True when the partial download belongs to this very envelope (byte for byte). */
static bool same_envelope(const char *path, const char *json, size_t len)
{
	char *old = NULL;
	size_t old_len = 0;
	bool same;

	if (moat_fs_read_all(path, MOAT_ENVELOPE_MAX_BYTES, &old, &old_len, NULL) != 0) {
		return false;
	}
	same = old_len == len && memcmp(old, json, len) == 0;
	free(old);
	return same;
}

/* Opens image.part and hashes the bytes a previous check left (at most the manifest's
 * size), so the stream covers the whole image when the download resumes. */
static int open_partial(const struct paths *p, bool resume, struct moat_fw_stream *s, int *out_fd,
			uint64_t *out_offset, struct moat_err *err)
{
	unsigned char *buf = NULL;
	struct stat sb;
	uint64_t have = 0;
	int fd;
	int rc = 0;

	*out_fd = -1;
	*out_offset = 0;
	fd = open(p->img_part, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0700);
	if (fd < 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", p->img_part);
	}
	if (fstat(fd, &sb) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", p->img_part);
		goto out;
	}
	if (resume && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size <= s->dev.expected_size) {
		have = (uint64_t)sb.st_size;
	}
	buf = malloc(REHASH_BUF_BYTES);
	if (buf == NULL) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	for (uint64_t done = 0; done < have;) {
		size_t want = have - done < REHASH_BUF_BYTES ? (size_t)(have - done)
							     : REHASH_BUF_BYTES;
		ssize_t n = read(fd, buf, want);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			have = done; /* shorter than it said: keep what was read */
			break;
		}
		rc = moat_fw_stream_update(s, buf, (size_t)n, err);
		if (rc != 0) {
			goto out;
		}
		done += (uint64_t)n;
	}
	if (ftruncate(fd, (off_t)have) != 0 || lseek(fd, (off_t)have, SEEK_SET) < 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", p->img_part);
		goto out;
	}
	*out_fd = fd;
	*out_offset = have;
	fd = -1;
out:
	free(buf);
	if (fd >= 0) {
		close(fd);
	}
	return rc;
}

static void discard_partial(const struct paths *p)
{
	(void)unlink(p->img_part);
	(void)unlink(p->env_part);
}

static void refuse(struct moat_update_result *out, enum moat_fw_verdict v, const char *why)
{
	out->outcome = MOAT_UPDATE_REFUSED;
	out->verdict = v;
	snprintf(out->msg, sizeof(out->msg), "refused (%s): %.400s", moat_fw_verdict_name(v), why);
}

/* Moves the verified download into place and names the slot as trial, in that order. */
static int commit(const char *dir, const struct paths *p, struct moat_boot_state *st, char slot,
		  const struct moat_manifest *m, struct moat_err *err)
{
	int rc;

	MOAT_FAILPOINT("rename image");
	if (rename(p->img_part, p->img) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", p->img);
	}
	MOAT_FAILPOINT("rename envelope");
	if (rename(p->env_part, p->env) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s", p->env);
	}
	rc = moat_fs_sync_dir(p->slot_dir, err);
	if (rc == 0) {
		rc = moat_boot_stage(st, slot, m, err);
	}
	if (rc == 0) {
		rc = moat_slots_save(dir, st, err);
	}
	return rc;
}

/* Asks the server for its newest envelope and decides on it (running version, stored
 * floor and issued_at, device type, trust). 0 with *out_offered when m is to be downloaded;
 * 0 with out's outcome (up to date, refused, reverted here before) otherwise. *env (the
 * caller frees it) holds the envelope; trust is filled for the caller to free. */
static int check_offer(const struct moat_update_conf *conf, struct moat_update_http *http,
		       const struct moat_boot_state *st, struct moat_fw_trust *trust,
		       struct moat_manifest *running, char **env, size_t *env_len,
		       struct moat_manifest *m, bool *out_offered, struct moat_update_result *out,
		       struct moat_err *err)
{
	const char *dir = conf->state_dir;
	struct moat_fw_decision d;
	long status = 0;
	int rc;

	*out_offered = false;
	rc = moat_slots_trust(dir, trust, err);
	if (rc == 0) {
		/* What runs is what the active slot's verified manifest says. */
		rc = moat_slots_verify(dir, st, st->active, NULL, running, err);
	}
	if (rc == 0) {
		rc = moat_update_fetch_envelope(conf, http, running->version, env, env_len, &status,
						err);
	}
	if (rc != 0) {
		return rc;
	}
	if (status == 204) {
		out->outcome = MOAT_UPDATE_UP_TO_DATE;
		snprintf(out->msg, sizeof(out->msg), "up to date (%s)", running->version);
		return 0;
	}
	struct moat_fw_policy pol = {
		.purpose = MOAT_FW_FOR_INSTALL,
		.device_type = st->device_type,
		.current_version = running->version,
		.security_floor = st->floor,
		.now = conf->now > 0 ? conf->now : moat_time_now(),
		.last_issued_at = st->last_issued_at,
	};
	if (moat_fw_decide(*env, *env_len, trust, &pol, m, &d) != MOAT_FW_ACCEPT) {
		refuse(out, d.verdict, d.msg);
		return 0;
	}
	snprintf(out->version, sizeof(out->version), "%s", m->version);
	if (m->issued_at <= st->reverted_issued_at) {
		/* This very release (or an older one) already failed its trial here: staging it
		 * again would only loop trial -> revert. Nothing is downloaded and a partial
		 * download of something else stays as it is. */
		out->outcome = MOAT_UPDATE_UP_TO_DATE;
		snprintf(out->msg, sizeof(out->msg),
			 "version %s was reverted on this device; waiting for a newer release "
			 "(running %s)",
			 m->version, running->version);
		return 0;
	}
	*out_offered = true;
	return 0;
}

/* Downloads m's image (envelope env) into the inactive slot while hashing it, resuming a
 * partial download of the same envelope, verifies it and stages the slot as the trial. */
static int fetch_and_stage(const struct moat_update_conf *conf, struct moat_update_http *http,
			   struct moat_boot_state *st, const struct moat_manifest *m,
			   const char *env, size_t env_len, const char *running_version,
			   struct moat_update_result *out, struct moat_err *err)
{
	const char *dir = conf->state_dir;
	struct moat_fw_decision d;
	struct moat_fw_stream s;
	struct paths p;
	uint64_t offset = 0;
	int fd = -1;
	char slot = moat_boot_other(st->active);
	int rc;

	memset(&s, 0, sizeof(s));
	out->slot = slot;
	rc = make_paths(dir, slot, &p, err);
	if (rc != 0) {
		goto out;
	}
	bool resume = same_envelope(p.env_part, env, env_len);
	if (!resume) {
		MOAT_FAILPOINT("envelope.part");
		(void)unlink(p.img_part);
		rc = moat_fs_write_atomic(p.env_part, env, env_len, 0644, err);
		if (rc != 0) {
			goto out;
		}
	}
	rc = moat_fw_stream_init(&s, m, err);
	if (rc == 0) {
		rc = open_partial(&p, resume, &s, &fd, &offset, err);
	}
	if (rc != 0) {
		goto out;
	}
	out->resumed_from = offset;
	if (offset < m->size) {
		if (conf->on_download != NULL) {
			conf->on_download(conf->on_download_ctx, m, offset);
		}
		rc = moat_update_fetch_image(conf, http, m, fd, offset, &s, err);
		if (rc != 0) {
			/* Interrupted: the partial file stays for the next check to resume. */
			goto out;
		}
	}
	if (moat_fw_stream_decide(&s, &d) != MOAT_FW_ACCEPT) {
		/* Nothing of a bad download is kept: the next check starts over. */
		close(fd);
		fd = -1;
		discard_partial(&p);
		refuse(out, d.verdict, d.msg);
		goto out;
	}
	if (fsync(fd) != 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s", p.img_part);
		goto out;
	}
	close(fd);
	fd = -1;
	rc = commit(dir, &p, st, slot, m, err);
	if (rc != 0) {
		goto out;
	}
	out->outcome = MOAT_UPDATE_STAGED;
	snprintf(out->msg, sizeof(out->msg), "version %s staged in slot %c (trial); was %s",
		 m->version, slot, running_version);
out:
	if (fd >= 0) {
		close(fd);
	}
	moat_fw_stream_free(&s);
	return rc;
}

int moat_update_check(const struct moat_update_conf *conf, struct moat_update_result *out,
		      struct moat_err *err)
{
	const char *dir = conf->state_dir;
	struct moat_boot_state st;
	struct moat_fw_trust trust;
	struct moat_manifest running;
	struct moat_manifest m;
	char *env = NULL;
	size_t env_len = 0;
	bool offered = false;
	struct moat_update_http http = {0};
	int lock = -1;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&trust, 0, sizeof(trust));
	rc = moat_slots_lock(dir, &lock, err);
	if (rc == 0) {
		rc = moat_slots_load(dir, &st, err);
	}
	if (rc != 0) {
		goto out;
	}
	if (st.trial != 0) {
		out->outcome = MOAT_UPDATE_TRIAL_PENDING;
		snprintf(out->msg, sizeof(out->msg), "slot %c is on trial; confirm it first",
			 st.trial);
		goto out;
	}
	/* the envelope and the image over one keep-alive TLS connection */
	rc = check_offer(conf, &http, &st, &trust, &running, &env, &env_len, &m, &offered, out,
			 err);
	if (rc == 0 && offered) {
		rc = fetch_and_stage(conf, &http, &st, &m, env, env_len, running.version, out, err);
	}
out:
	moat_update_http_close(&http);
	moat_fw_trust_free(&trust);
	free(env);
	moat_slots_unlock(lock);
	return rc;
}
