/* tick.c: TICK and RELOAD, live changes without a broker restart.
 *
 * Every MP_RELOAD_CHECK_MS the plugin stats the policy file and the CRL; when one changed
 * (inode, size, mtime or ctime: `moat` replaces them by rename) it is parsed again and,
 * if it parses, replaces the one in force. A file that does not parse is reported once and
 * the previous one stays: half a policy is never applied. After a change, every connected
 * client whose identity is now unknown or not active, or whose certificate serial is now
 * in the CRL, is kicked (without its will: it is no longer trusted to speak) and reported
 * as revoked_kicked. Mosquitto's own crlfile only covers new handshakes after a SIGHUP,
 * so this is what makes revocation take effect for sessions that are already open.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "moat/fsutil.h"
#include "moat/timeutil.h"
#include "plugin_internal.h"

static struct mp_file_stamp stamp_of(const struct stat *sb)
{
	return (struct mp_file_stamp){
		.valid = true,
		.dev = sb->st_dev,
		.ino = sb->st_ino,
		.size = sb->st_size,
		.mtime_ns = (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec,
		.ctime_ns = (int64_t)sb->st_ctim.tv_sec * 1000000000 + sb->st_ctim.tv_nsec,
	};
}

static bool stamp_same(const struct mp_file_stamp *a, const struct mp_file_stamp *b)
{
	return a->valid && b->valid && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

/* 1 = changed (stamp updated), 0 = unchanged, MOAT_ENOENT = cannot stat. */
static int check_stamp(const char *path, struct mp_file_stamp *stamp, bool force,
		       struct moat_err *err)
{
	struct stat sb;
	if (stat(path, &sb) < 0) {
		int e = errno;
		stamp->valid = false;
		return moat_err_errno(err, MOAT_ENOENT, e, "%s", path);
	}
	struct mp_file_stamp now = stamp_of(&sb);
	if (!force && stamp_same(&now, stamp)) {
		return 0;
	}
	/* Remembered before parsing, so a file that does not parse is reported once, not on
	 * every tick; the next change is looked at again. */
	*stamp = now;
	return 1;
}

int moat_plugin_load_policy(struct mp_state *st, bool force, struct moat_err *err)
{
	int rc = check_stamp(st->policy_path, &st->policy_stamp, force, err);
	if (rc <= 0) {
		return rc;
	}
	char *data = NULL;
	size_t len = 0;
	rc = moat_fs_read_all(st->policy_path, MOAT_POLICY_MAX_BYTES, &data, &len, err);
	if (rc < 0) {
		return rc;
	}
	struct moat_policy fresh;
	rc = moat_policy_parse(data, len, &fresh, err);
	free(data);
	if (rc < 0) {
		moat_policy_free(&fresh);
		moat_err_prefix(err, "%s", st->policy_path);
		return rc;
	}
	moat_policy_free(&st->policy);
	st->policy = fresh;
	return 1;
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_list(char **list, size_t count)
{
	for (size_t i = 0; list && i < count; i++) {
		mosquitto_free(list[i]);
	}
	mosquitto_free(list);
}

void moat_plugin_free_crl(struct mp_state *st)
{
	free_list(st->revoked, st->revoked_count);
	st->revoked = NULL;
	st->revoked_count = 0;
}

bool moat_plugin_serial_revoked(const struct mp_state *st, const char *serial_hex)
{
	if (st->revoked_count == 0) {
		return false;
	}
	return bsearch(&serial_hex, st->revoked, st->revoked_count, sizeof(st->revoked[0]),
		       cmp_strp) != NULL;
}

int moat_plugin_load_crl(struct mp_state *st, bool force, struct moat_err *err)
{
	int rc = check_stamp(st->crl_path, &st->crl_stamp, force, err);
	if (rc <= 0) {
		return rc;
	}
	char *data = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	X509_CRL *crl = NULL;
	char **list = NULL;
	size_t count = 0;

	rc = moat_fs_read_all(st->crl_path, MOAT_FILE_MAX_BYTES, &data, &len, err);
	if (rc < 0) {
		goto out;
	}
	rc = MOAT_EINVAL;
	bio = BIO_new_mem_buf(data, (int)len);
	if (!bio) {
		rc = moat_err_ssl(err, MOAT_ENOMEM, "%s", st->crl_path);
		goto out;
	}
	crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
	if (!crl) {
		rc = moat_err_ssl(err, MOAT_EINVAL, "%s: not a PEM CRL", st->crl_path);
		goto out;
	}
	STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
	int n = revs ? sk_X509_REVOKED_num(revs) : 0;
	if (n < 0 || (unsigned)n > MP_CRL_MAX_ENTRIES) {
		rc = moat_err_set(err, MOAT_EINVAL, "%s: more than %u revoked serials",
				  st->crl_path, MP_CRL_MAX_ENTRIES);
		goto out;
	}
	if (n > 0) {
		list = mosquitto_calloc((size_t)n, sizeof(*list));
		if (!list) {
			rc = moat_err_set(err, MOAT_ENOMEM, "%s: out of memory", st->crl_path);
			goto out;
		}
	}
	for (int i = 0; i < n; i++) {
		char hex[MP_SERIAL_HEX_MAX];
		const X509_REVOKED *r = sk_X509_REVOKED_value(revs, i);
		if (!moat_plugin_serial_hex(X509_REVOKED_get0_serialNumber(r), hex)) {
			rc = moat_err_set(err, MOAT_EINVAL, "%s: entry %d: unreadable serial",
					  st->crl_path, i + 1);
			goto out;
		}
		list[count] = mosquitto_strdup(hex);
		if (!list[count]) {
			rc = moat_err_set(err, MOAT_ENOMEM, "%s: out of memory", st->crl_path);
			goto out;
		}
		count++;
	}
	if (count > 1) {
		qsort(list, count, sizeof(*list), cmp_strp);
	}
	moat_plugin_free_crl(st);
	st->revoked = list;
	st->revoked_count = count;
	list = NULL;
	count = 0;
	rc = 1;
out:
	free_list(list, count);
	X509_CRL_free(crl);
	BIO_free(bio);
	free(data);
	return rc;
}

/* Why the client of c may no longer stay connected, or NULL. */
static const char *no_longer_allowed(const struct mp_state *st, const struct mp_conn *c)
{
	if (moat_plugin_serial_revoked(st, c->serial)) {
		return "certificate_revoked";
	}
	const struct moat_policy_identity *pi = moat_policy_find(&st->policy, c->identity);
	if (!pi) {
		return "unknown_identity";
	}
	if (pi->status == MOAT_POLICY_DISABLED) {
		return "disabled";
	}
	if (pi->status == MOAT_POLICY_REVOKED) {
		return "revoked";
	}
	return NULL;
}

static void kick_refused(struct mp_state *st)
{
	size_t total = 0;
	for (size_t b = 0; b < MP_CONN_BUCKETS; b++) {
		for (const struct mp_conn *c = st->conns[b]; c; c = c->next) {
			total += c->authed;
		}
	}
	if (total == 0) {
		return;
	}
	/* Kicking runs DISCONNECT, which edits the table: collect the names first. */
	char(*names)[MOAT_ID_BUF_LEN] = mosquitto_calloc(total, sizeof(*names));
	if (!names) {
		mosquitto_log_printf(MOSQ_LOG_ERR,
				     "moat: out of memory: cannot kick revoked clients");
		return;
	}
	size_t count = 0;
	for (size_t b = 0; b < MP_CONN_BUCKETS; b++) {
		for (const struct mp_conn *c = st->conns[b]; c && count < total; c = c->next) {
			const char *why = c->authed ? no_longer_allowed(st, c) : NULL;
			if (!why) {
				continue;
			}
			char detail[160];
			snprintf(detail, sizeof(detail), "disconnected: %s (certificate serial %s)",
				 why, c->serial);
			struct mp_event ev = {
				.kind = MP_EV_REVOKED_KICKED,
				.identity = c->identity,
				.client_id = mosquitto_client_id(c->client),
				.address = mosquitto_client_address(c->client),
				.reason = why,
				.detail = detail,
			};
			moat_plugin_event(st, &ev);
			memcpy(names[count++], c->identity, MOAT_ID_BUF_LEN);
		}
	}
	for (size_t i = 0; i < count; i++) {
		mosquitto_kick_client_by_username(names[i], false);
	}
	mosquitto_free(names);
}

/* Reloads what changed; reports a failure once per change of the file. */
static void reload(struct mp_state *st, bool force)
{
	struct moat_err err = {0};
	bool changed = false;
	bool was_valid = st->policy_stamp.valid;
	int rc = moat_plugin_load_policy(st, force, &err);
	if (rc > 0) {
		changed = true;
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "moat: policy reloaded: %zu identities",
				     st->policy.identity_count);
	} else if (rc < 0 && (rc != MOAT_ENOENT || was_valid)) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "moat: %s (keeping the previous policy)",
				     err.msg);
	}
	was_valid = st->crl_stamp.valid;
	rc = moat_plugin_load_crl(st, force, &err);
	if (rc > 0) {
		changed = true;
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "moat: CRL reloaded: %zu revoked serials",
				     st->revoked_count);
	} else if (rc < 0 && (rc != MOAT_ENOENT || was_valid)) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "moat: %s (keeping the previous CRL)", err.msg);
	}
	if (changed) {
		kick_refused(st);
	}
}

int moat_plugin_tick(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)event_data;
	struct mp_state *st = userdata;
	int64_t now_ms = moat_time_mono_ms();
	if (now_ms >= st->next_check_ms) {
		st->next_check_ms = now_ms + MP_RELOAD_CHECK_MS;
		reload(st, false);
	}
	return MOSQ_ERR_SUCCESS;
}

int moat_plugin_reload_event(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)event_data;
	reload(userdata, true);
	return MOSQ_ERR_SUCCESS;
}
