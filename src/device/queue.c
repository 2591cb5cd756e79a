/* queue.c: the device's bounded telemetry queue, kept in memory and mirrored to an
 * append-only file while the broker is out of reach.
 *
 * The file is one telemetry JSON document per line (the builder never emits a newline).
 * Records are appended when produced while disconnected, and at the moment a connection
 * is lost every record not yet in the file is appended, in order, so the file always holds
 * every record that has not been acknowledged, oldest first (acknowledged ones may remain
 * until the queue drains: the file is truncated when the queue becomes empty). A crash
 * mid-append leaves an incomplete last line, which the loader drops and then rewrites the
 * file without. The file is compacted when it holds twice the bound, so it stays bounded
 * however long the broker is away.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "moat/fsutil.h"
#include "moat/messages.h"

#include "queue_internal.h"

static void rec_free(struct moat_queue_rec *r)
{
	free(r->payload);
	memset(r, 0, sizeof(*r));
}

struct moat_queue_rec *moat_queue_at(struct moat_queue *q, size_t i)
{
	if (i >= q->count) {
		return NULL;
	}
	return &q->recs[(q->head + i) % q->cap];
}

static int grow(struct moat_queue *q, struct moat_err *err)
{
	size_t ncap = q->cap ? q->cap * 2 : 16;
	if (ncap > q->max) {
		ncap = q->max;
	}
	struct moat_queue_rec *n = calloc(ncap, sizeof(*n));
	if (!n) {
		return moat_err_set(err, MOAT_ENOMEM, "queue: out of memory");
	}
	for (size_t i = 0; i < q->count; i++) {
		n[i] = q->recs[(q->head + i) % q->cap];
	}
	free(q->recs);
	q->recs = n;
	q->cap = ncap;
	q->head = 0;
	return 0;
}

static void pop_head(struct moat_queue *q)
{
	rec_free(&q->recs[q->head]);
	q->head = (q->head + 1) % q->cap;
	q->count--;
}

/* Adds a record to memory only; takes ownership of payload. */
static int mem_push(struct moat_queue *q, int64_t seq, char *payload, size_t len, bool on_disk,
		    struct moat_err *err)
{
	int rc;
	if (q->count == q->max) {
		pop_head(q);
		q->dropped++;
	}
	if (q->count == q->cap && (rc = grow(q, err)) != 0) {
		free(payload);
		return rc;
	}
	struct moat_queue_rec *r = &q->recs[(q->head + q->count) % q->cap];
	memset(r, 0, sizeof(*r));
	r->seq = seq;
	r->payload = payload;
	r->len = len;
	r->on_disk = on_disk;
	q->count++;
	return 0;
}

static int write_all(int fd, const char *path, const char *payload, size_t len,
		     struct moat_err *err)
{
	char nl = '\n';
	struct iovec iov[2] = {{(void *)payload, len}, {&nl, 1}};
	size_t total = len + 1, done = 0;
	/* O_APPEND: a short write is continued; a crash in between leaves a partial line that
	 * the loader discards. */
	while (done < total) {
		ssize_t n;
		if (done < len) {
			iov[0].iov_base = (char *)payload + done;
			iov[0].iov_len = len - done;
			n = writev(fd, iov, 2);
		} else {
			n = write(fd, &nl, 1);
		}
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return moat_err_errno(err, MOAT_EIO, errno, "%s: append", path);
		}
		done += (size_t)n;
	}
	return 0;
}

static int sync_file(struct moat_queue *q, struct moat_err *err)
{
	if (!q->no_fsync && fdatasync(q->fd) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s: fdatasync", q->path);
	}
	return 0;
}

/* Rewrites the file from memory (atomically) and reopens it for appending. */
static int compact(struct moat_queue *q, struct moat_err *err)
{
	size_t total = 0;
	for (size_t i = 0; i < q->count; i++) {
		total += moat_queue_at(q, i)->len + 1;
	}
	char *buf = malloc(total ? total : 1);
	if (!buf) {
		return moat_err_set(err, MOAT_ENOMEM, "queue: out of memory");
	}
	size_t off = 0;
	for (size_t i = 0; i < q->count; i++) {
		struct moat_queue_rec *r = moat_queue_at(q, i);
		memcpy(buf + off, r->payload, r->len);
		off += r->len;
		buf[off++] = '\n';
	}
	struct moat_fs_opts opts = {.no_fsync = q->no_fsync};
	int rc = moat_fs_write_atomic_opts(q->path, buf, off, 0600, &opts, err);
	free(buf);
	if (rc != 0) {
		return rc;
	}
	if (q->fd >= 0) {
		close(q->fd);
	}
	q->fd = open(q->path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (q->fd < 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "%s: open", q->path);
	}
	for (size_t i = 0; i < q->count; i++) {
		moat_queue_at(q, i)->on_disk = true;
	}
	q->disk_recs = q->count;
	return 0;
}

/* A line is a record when it is telemetry with a sequence number. */
static bool line_ok(const char *line, size_t len, int64_t *out_seq)
{
	struct moat_msg_telemetry t;
	if (moat_msg_telemetry_parse(line, len, &t, NULL) != 0 || !t.has_seq) {
		return false;
	}
	*out_seq = t.seq;
	return true;
}

static int load(struct moat_queue *q, struct moat_err *err)
{
	FILE *f = fopen(q->path, "re");
	if (!f) {
		if (errno == ENOENT) {
			return 0;
		}
		return moat_err_errno(err, MOAT_EIO, errno, "%s", q->path);
	}
	size_t size = MOAT_MSG_TELEMETRY_MAX_BYTES + 2;
	char *line = malloc(size);
	if (!line) {
		fclose(f);
		return moat_err_set(err, MOAT_ENOMEM, "queue: out of memory");
	}
	int rc = 0;
	bool dirty = false;
	size_t len = 0;
	bool overlong = false;
	int c;
	while ((c = getc(f)) != EOF) {
		if (c != '\n') {
			if (len < size - 1) {
				line[len++] = (char)c;
			} else {
				overlong = true;
			}
			continue;
		}
		int64_t seq = 0;
		if (!overlong && line_ok(line, len, &seq)) {
			char *copy = malloc(len + 1);
			if (!copy) {
				rc = moat_err_set(err, MOAT_ENOMEM, "queue: out of memory");
				break;
			}
			memcpy(copy, line, len);
			copy[len] = '\0';
			if ((rc = mem_push(q, seq, copy, len, true, err)) != 0) {
				break;
			}
		} else {
			dirty = true;
		}
		len = 0;
		overlong = false;
	}
	if (len > 0 || overlong) {
		dirty = true; /* an incomplete last line: a crash mid-append */
	}
	if (ferror(f) && rc == 0) {
		rc = moat_err_errno(err, MOAT_EIO, errno, "%s: read", q->path);
	}
	fclose(f);
	free(line);
	if (rc == 0 && q->dropped > 0) {
		dirty = true;
	}
	q->disk_recs = q->count;
	if (rc == 0 && dirty) {
		rc = compact(q, err);
	}
	return rc;
}

int moat_queue_open(struct moat_queue *q, const char *path, size_t max, bool no_fsync,
		    struct moat_err *err)
{
	int rc;
	memset(q, 0, sizeof(*q));
	q->fd = -1;
	q->max = max ? max : 1;
	q->no_fsync = no_fsync;
	if (!path) {
		return 0;
	}
	int n = snprintf(q->path, sizeof(q->path), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(q->path)) {
		return moat_err_set(err, MOAT_EINVAL, "queue path too long");
	}
	if ((rc = load(q, err)) != 0) {
		moat_queue_close(q);
		return rc;
	}
	if (q->fd < 0) {
		q->fd = open(q->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (q->fd < 0) {
			rc = moat_err_errno(err, MOAT_EIO, errno, "%s: open", q->path);
			moat_queue_close(q);
			return rc;
		}
	}
	return 0;
}

void moat_queue_close(struct moat_queue *q)
{
	while (q->count > 0) {
		pop_head(q);
	}
	free(q->recs);
	q->recs = NULL;
	q->cap = 0;
	if (q->fd >= 0) {
		close(q->fd);
		q->fd = -1;
	}
}

int moat_queue_push(struct moat_queue *q, int64_t seq, const char *payload, size_t len,
		    bool to_disk, struct moat_err *err)
{
	int rc;
	char *copy = malloc(len + 1);
	if (!copy) {
		return moat_err_set(err, MOAT_ENOMEM, "queue: out of memory");
	}
	memcpy(copy, payload, len);
	copy[len] = '\0';
	bool disk = to_disk && q->fd >= 0;
	if ((rc = mem_push(q, seq, copy, len, disk, err)) != 0) {
		return rc;
	}
	if (!disk) {
		return 0;
	}
	if (q->disk_recs + 1 > 2 * q->max) {
		return compact(q, err);
	}
	if ((rc = write_all(q->fd, q->path, payload, len, err)) != 0) {
		moat_queue_at(q, q->count - 1)->on_disk = false;
		return rc;
	}
	q->disk_recs++;
	return sync_file(q, err);
}

/* The record in flight with mid. Records are sent from the head in order, but one that
 * was refused goes back to "not in flight" while later ones may still be: scan them all. */
static struct moat_queue_rec *in_flight(struct moat_queue *q, int mid)
{
	if (mid == 0) {
		return NULL;
	}
	for (size_t i = 0; i < q->count; i++) {
		struct moat_queue_rec *r = moat_queue_at(q, i);
		if (r->mid == mid && !r->acked) {
			return r;
		}
	}
	return NULL;
}

struct moat_queue_rec *moat_queue_refused(struct moat_queue *q, int mid)
{
	struct moat_queue_rec *r = in_flight(q, mid);
	if (r) {
		r->mid = 0;
		r->refusals++;
	}
	return r;
}

bool moat_queue_ack(struct moat_queue *q, int mid, struct moat_err *err)
{
	bool found = false;
	struct moat_queue_rec *r = in_flight(q, mid);
	if (r) {
		r->acked = true;
		r->mid = 0;
		found = true;
	}
	while (q->count > 0 && q->recs[q->head].acked) {
		pop_head(q);
	}
	if (q->count == 0 && q->fd >= 0 && q->disk_recs > 0) {
		if (ftruncate(q->fd, 0) != 0) {
			moat_err_errno(err, MOAT_EIO, errno, "%s: truncate", q->path);
		} else {
			q->disk_recs = 0;
		}
	}
	return found;
}

int moat_queue_spill(struct moat_queue *q, struct moat_err *err)
{
	int rc;
	bool wrote = false;
	for (size_t i = 0; i < q->count; i++) {
		moat_queue_at(q, i)->mid = 0;
	}
	if (q->fd < 0) {
		return 0;
	}
	for (size_t i = 0; i < q->count; i++) {
		struct moat_queue_rec *r = moat_queue_at(q, i);
		if (r->on_disk || r->acked) {
			continue;
		}
		if (q->disk_recs + 1 > 2 * q->max) {
			return compact(q, err);
		}
		if ((rc = write_all(q->fd, q->path, r->payload, r->len, err)) != 0) {
			return rc;
		}
		r->on_disk = true;
		q->disk_recs++;
		wrote = true;
	}
	return wrote ? sync_file(q, err) : 0;
}

int64_t moat_queue_max_seq(const struct moat_queue *q)
{
	int64_t m = -1;
	for (size_t i = 0; i < q->count; i++) {
		const struct moat_queue_rec *r = &q->recs[(q->head + i) % q->cap];
		if (r->seq > m) {
			m = r->seq;
		}
	}
	return m;
}
