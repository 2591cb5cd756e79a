/* groups.c: the tables of migration 6 that describe devices: device_tags (a device's tags)
 * and device_groups (named --where filters, stored as written; src/core/rollout.c parses
 * them where they are used, never into SQL), and the rows a filter is evaluated against.
 * Every value reaches SQLite as a bound parameter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry_internal.h"

/* Steps st to its end and finalizes it; *changes (when asked) is the rows it changed. */
static int step_done(struct moat_registry *reg, struct rdb_stmt *st, const char *what,
		     int64_t *changes, struct moat_err *err)
{
	int s = rdb_step(st);
	int rc = s == RDB_DONE ? 0 : reg_db_fail_table(reg, err, what);
	if (changes) {
		*changes = rdb_changes(st);
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_tag_add(struct moat_registry *reg, const char *device, const char *tag,
			  struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	bool exists = false;
	int rc = moat_registry_identity_exists(reg, device, &exists, err);
	if (rc != 0) {
		return rc;
	}
	if (!exists) {
		return moat_err_set(err, MOAT_ENOENT, "no device '%s'", device);
	}
	if (rdb_prepare(reg_db(reg),
			"INSERT OR IGNORE INTO device_tags(device, tag) SELECT ?1, ?2 "
			"WHERE (SELECT count(*) FROM device_tags WHERE device = ?1 "
			"AND tag != ?2) < ?3",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "add tag");
	}
	rdb_bind_text(st, 1, device);
	rdb_bind_text(st, 2, tag);
	rdb_bind_int64(st, 3, MOAT_TAGS_PER_DEVICE_MAX);
	if ((rc = step_done(reg, st, "add tag", NULL, err)) != 0) {
		return rc;
	}
	/* neither inserted nor already there: the device has its maximum of tags */
	if (rdb_prepare(reg_db(reg), "SELECT 1 FROM device_tags WHERE device = ?1 AND tag = ?2",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "add tag");
	}
	rdb_bind_text(st, 1, device);
	rdb_bind_text(st, 2, tag);
	int s = rdb_step(st);
	rdb_finalize(st);
	if (s == RDB_DONE) {
		return moat_err_set(err, MOAT_EINVAL, "device '%s' has %d tags already", device,
				    MOAT_TAGS_PER_DEVICE_MAX);
	}
	return s == RDB_ROW ? 0 : reg_db_fail_table(reg, err, "add tag");
}

int moat_registry_tag_remove(struct moat_registry *reg, const char *device, const char *tag,
			     struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), "DELETE FROM device_tags WHERE device = ?1 AND tag = ?2",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "remove tag");
	}
	rdb_bind_text(st, 1, device);
	rdb_bind_text(st, 2, tag);
	int64_t changes = 0;
	int rc = step_done(reg, st, "remove tag", &changes, err);
	if (rc == 0 && changes == 0) {
		rc = moat_err_set(err, MOAT_ENOENT, "device '%s' has no tag '%s'", device, tag);
	}
	return rc;
}

int moat_registry_group_insert(struct moat_registry *reg, const struct moat_group *g,
			       struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg),
			"INSERT INTO device_groups(name, where_expr, created_at) "
			"VALUES (?1, ?2, ?3)",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "add group");
	}
	rdb_bind_text(st, 1, g->name);
	rdb_bind_text(st, 2, g->where);
	rdb_bind_int64(st, 3, g->created_at);
	int s = rdb_step(st);
	rdb_finalize(st);
	if (rdb_is_constraint(s)) {
		return moat_err_set(err, MOAT_EEXIST, "group '%s' exists", g->name);
	}
	return s == RDB_DONE ? 0 : reg_db_fail_table(reg, err, "add group");
}

static void row_to_group(struct rdb_stmt *st, struct moat_group *g)
{
	memset(g, 0, sizeof(*g));
	rdb_column_copy(st, 0, g->name, sizeof(g->name));
	rdb_column_copy(st, 1, g->where, sizeof(g->where));
	g->created_at = rdb_column_int64(st, 2);
}

int moat_registry_group_get(struct moat_registry *reg, const char *name, struct moat_group *out,
			    struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	memset(out, 0, sizeof(*out));
	if (rdb_prepare(reg_db(reg),
			"SELECT name, where_expr, created_at FROM device_groups "
			"WHERE name = ?1",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "group lookup");
	}
	rdb_bind_text(st, 1, name);
	int s = rdb_step(st);
	int rc = 0;
	if (s == RDB_ROW) {
		row_to_group(st, out);
	} else if (s == RDB_DONE) {
		rc = moat_err_set(err, MOAT_ENOENT, "no group '%s'", name);
	} else {
		rc = reg_db_fail_table(reg, err, "group lookup");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_group_remove(struct moat_registry *reg, const char *name, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	if (rdb_prepare(reg_db(reg), "DELETE FROM device_groups WHERE name = ?1", &st) != 0) {
		return reg_db_fail_table(reg, err, "remove group");
	}
	rdb_bind_text(st, 1, name);
	int64_t changes = 0;
	int rc = step_done(reg, st, "remove group", &changes, err);
	if (rc == 0 && changes == 0) {
		rc = moat_err_set(err, MOAT_ENOENT, "no group '%s'", name);
	}
	return rc;
}

int moat_registry_group_foreach(struct moat_registry *reg, moat_group_cb cb, void *ctx,
				struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc = 0;
	if (rdb_prepare(reg_db(reg),
			"SELECT name, where_expr, created_at FROM device_groups ORDER BY name",
			&st) != 0) {
		return reg_db_fail_table(reg, err, "list groups");
	}
	int s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		struct moat_group g;
		row_to_group(st, &g);
		if ((rc = cb(&g, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != RDB_DONE) {
		rc = reg_db_fail_table(reg, err, "list groups");
	}
	rdb_finalize(st);
	return rc;
}

int moat_registry_device_rows(struct moat_registry *reg, const char *only, moat_device_row_cb cb,
			      void *ctx, struct moat_err *err)
{
	struct rdb_stmt *st = NULL;
	int rc = 0;
	if (rdb_prepare(
		    reg_db(reg),
		    "SELECT i.id, i.device_type, COALESCE(f.version, ''), "
		    "COALESCE((SELECT max(c.not_before) FROM certificates c "
		    "WHERE c.identity = i.id AND c.revoked_at IS NULL), -1), "
		    "COALESCE((SELECT group_concat(t.tag, ',') FROM "
		    "(SELECT tag FROM device_tags WHERE device = i.id ORDER BY tag) t), '') "
		    "FROM identities i LEFT JOIN device_firmware f ON f.device = i.id "
		    "WHERE i.role = 'device' AND "
		    "((CAST(?1 AS TEXT) IS NULL AND i.status = 'active') OR i.id = ?1) ORDER BY i.id",
		    &st) != 0) {
		return reg_db_fail_table(reg, err, "list devices");
	}
	if (only) {
		rdb_bind_text(st, 1, only);
	}
	int s;
	while ((s = rdb_step(st)) == RDB_ROW) {
		char id[MOAT_ID_BUF_LEN], type[MOAT_DEVICE_TYPE_MAX_LEN + 1];
		char release[MOAT_FW_VERSION_MAX_LEN + 1];
		char tagbuf[(MOAT_TAG_MAX_LEN + 1) * MOAT_TAGS_PER_DEVICE_MAX + 1];
		const char *tags[MOAT_TAGS_PER_DEVICE_MAX];
		size_t ntags = 0;
		rdb_column_copy(st, 0, id, sizeof(id));
		rdb_column_copy(st, 1, type, sizeof(type));
		rdb_column_copy(st, 2, release, sizeof(release));
		rdb_column_copy(st, 4, tagbuf, sizeof(tagbuf));
		char *save = NULL;
		for (char *t = strtok_r(tagbuf, ",", &save); t && ntags < MOAT_TAGS_PER_DEVICE_MAX;
		     t = strtok_r(NULL, ",", &save)) {
			tags[ntags++] = t;
		}
		struct moat_device_row row = {
			.id = id,
			.type = type,
			.release = release,
			.cert_not_before = rdb_column_int64(st, 3),
			.tags = tags,
			.tag_count = ntags,
		};
		if ((rc = cb(&row, ctx)) != 0) {
			break;
		}
	}
	if (rc == 0 && s != RDB_DONE) {
		rc = reg_db_fail_table(reg, err, "list devices");
	}
	rdb_finalize(st);
	return rc;
}
