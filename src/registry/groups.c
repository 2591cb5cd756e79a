/* groups.c: the tables of migration 6 that describe devices: device_tags (a device's tags)
 * and device_groups (named --where filters, stored as written; src/core/rollout.c parses
 * them where they are used, never into SQL), and the rows a filter is evaluated against.
 * Every value reaches SQLite as a bound parameter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry_internal.h"

static int step_done(struct moat_registry *reg, sqlite3_stmt *st, const char *what,
		     struct moat_err *err)
{
	int s = sqlite3_step(st);
	int rc = s == SQLITE_DONE ? 0 : reg_fail_table(reg, err, what);
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_tag_add(struct moat_registry *reg, const char *device, const char *tag,
			  struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	bool exists = false;
	int rc = moat_registry_identity_exists(reg, device, &exists, err);
	if (rc != 0) {
		return rc;
	}
	if (!exists) {
		return moat_err_set(err, MOAT_ENOENT, "no device '%s'", device);
	}
	if (sqlite3_prepare_v2(reg->db,
			       "INSERT OR IGNORE INTO device_tags(device, tag) SELECT ?1, ?2 "
			       "WHERE (SELECT count(*) FROM device_tags WHERE device = ?1 "
			       "AND tag != ?2) < ?3",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail_table(reg, err, "add tag");
	}
	sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, tag, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, MOAT_TAGS_PER_DEVICE_MAX);
	if ((rc = step_done(reg, st, "add tag", err)) != 0) {
		return rc;
	}
	/* neither inserted nor already there: the device has its maximum of tags */
	if (sqlite3_prepare_v2(reg->db, "SELECT 1 FROM device_tags WHERE device = ?1 AND tag = ?2",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail_table(reg, err, "add tag");
	}
	sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, tag, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	sqlite3_finalize(st);
	if (s == SQLITE_DONE) {
		return moat_err_set(err, MOAT_EINVAL, "device '%s' has %d tags already", device,
				    MOAT_TAGS_PER_DEVICE_MAX);
	}
	return s == SQLITE_ROW ? 0 : reg_fail_table(reg, err, "add tag");
}

int moat_registry_tag_remove(struct moat_registry *reg, const char *device, const char *tag,
			     struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db, "DELETE FROM device_tags WHERE device = ?1 AND tag = ?2",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail_table(reg, err, "remove tag");
	}
	sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, tag, -1, SQLITE_STATIC);
	int rc = step_done(reg, st, "remove tag", err);
	if (rc == 0 && sqlite3_changes(reg->db) == 0) {
		rc = moat_err_set(err, MOAT_ENOENT, "device '%s' has no tag '%s'", device, tag);
	}
	return rc;
}

int moat_registry_group_insert(struct moat_registry *reg, const struct moat_group *g,
			       struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db,
			       "INSERT INTO device_groups(name, where_expr, created_at) "
			       "VALUES (?1, ?2, ?3)",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail_table(reg, err, "add group");
	}
	sqlite3_bind_text(st, 1, g->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, g->where, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, g->created_at);
	int s = sqlite3_step(st);
	sqlite3_finalize(st);
	if (s == SQLITE_CONSTRAINT) {
		return moat_err_set(err, MOAT_EEXIST, "group '%s' exists", g->name);
	}
	return s == SQLITE_DONE ? 0 : reg_fail_table(reg, err, "add group");
}

static void row_to_group(sqlite3_stmt *st, struct moat_group *g)
{
	memset(g, 0, sizeof(*g));
	reg_column_text(st, 0, g->name, sizeof(g->name));
	reg_column_text(st, 1, g->where, sizeof(g->where));
	g->created_at = sqlite3_column_int64(st, 2);
}

int moat_registry_group_get(struct moat_registry *reg, const char *name, struct moat_group *out,
			    struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	memset(out, 0, sizeof(*out));
	if (sqlite3_prepare_v2(reg->db,
			       "SELECT name, where_expr, created_at FROM device_groups "
			       "WHERE name = ?1",
			       -1, &st, NULL) != SQLITE_OK) {
		return reg_fail_table(reg, err, "group lookup");
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	int rc = 0;
	if (s == SQLITE_ROW) {
		row_to_group(st, out);
	} else if (s == SQLITE_DONE) {
		rc = moat_err_set(err, MOAT_ENOENT, "no group '%s'", name);
	} else {
		rc = reg_fail_table(reg, err, "group lookup");
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_group_remove(struct moat_registry *reg, const char *name, struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(reg->db, "DELETE FROM device_groups WHERE name = ?1", -1, &st,
			       NULL) != SQLITE_OK) {
		return reg_fail_table(reg, err, "remove group");
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = step_done(reg, st, "remove group", err);
	if (rc == 0 && sqlite3_changes(reg->db) == 0) {
		rc = moat_err_set(err, MOAT_ENOENT, "no group '%s'", name);
	}
	return rc;
}

int moat_registry_group_foreach(struct moat_registry *reg, moat_group_cb cb, void *ctx,
				struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(
		    reg->db, "SELECT name, where_expr, created_at FROM device_groups ORDER BY name",
		    -1, &st, NULL) != SQLITE_OK) {
		return reg_fail_table(reg, err, "list groups");
	}
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		struct moat_group g;
		row_to_group(st, &g);
		if ((rc = cb(&g, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != SQLITE_DONE) {
		rc = reg_fail_table(reg, err, "list groups");
	}
	sqlite3_finalize(st);
	return rc;
}

int moat_registry_device_rows(struct moat_registry *reg, const char *only, moat_device_row_cb cb,
			      void *ctx, struct moat_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(
		    reg->db,
		    "SELECT i.id, i.device_type, COALESCE(f.version, ''), "
		    "COALESCE((SELECT max(c.not_before) FROM certificates c "
		    "WHERE c.identity = i.id AND c.revoked_at IS NULL), -1), "
		    "COALESCE((SELECT group_concat(t.tag, ',') FROM "
		    "(SELECT tag FROM device_tags WHERE device = i.id ORDER BY tag) t), '') "
		    "FROM identities i LEFT JOIN device_firmware f ON f.device = i.id "
		    "WHERE i.role = 'device' AND "
		    "((?1 IS NULL AND i.status = 'active') OR i.id = ?1) ORDER BY i.id",
		    -1, &st, NULL) != SQLITE_OK) {
		return reg_fail_table(reg, err, "list devices");
	}
	if (only) {
		sqlite3_bind_text(st, 1, only, -1, SQLITE_STATIC);
	}
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		char id[MOAT_ID_BUF_LEN], type[MOAT_DEVICE_TYPE_MAX_LEN + 1];
		char release[MOAT_FW_VERSION_MAX_LEN + 1];
		char tagbuf[(MOAT_TAG_MAX_LEN + 1) * MOAT_TAGS_PER_DEVICE_MAX + 1];
		const char *tags[MOAT_TAGS_PER_DEVICE_MAX];
		size_t ntags = 0;
		reg_column_text(st, 0, id, sizeof(id));
		reg_column_text(st, 1, type, sizeof(type));
		reg_column_text(st, 2, release, sizeof(release));
		reg_column_text(st, 4, tagbuf, sizeof(tagbuf));
		char *save = NULL;
		for (char *t = strtok_r(tagbuf, ",", &save); t && ntags < MOAT_TAGS_PER_DEVICE_MAX;
		     t = strtok_r(NULL, ",", &save)) {
			tags[ntags++] = t;
		}
		struct moat_device_row row = {
			.id = id,
			.type = type,
			.release = release,
			.cert_not_before = sqlite3_column_int64(st, 3),
			.tags = tags,
			.tag_count = ntags,
		};
		if ((rc = cb(&row, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != SQLITE_DONE) {
		rc = reg_fail_table(reg, err, "list devices");
	}
	sqlite3_finalize(st);
	return rc;
}
