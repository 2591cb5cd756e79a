/* test_dashboard.c: the dashboard's parsers (dash_parse.c) with every rejection path, and
 * its registry tables (links single-use and expiring, sessions expiring, the paged device
 * table with its filters). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "moat/dashboard.h"
#include "moat/registry.h"
#include "testutil.h"
#include "testutil_registry.h"

static void test_cookie(void **state)
{
	(void)state;
	char v[70];
	assert_int_equal(moat_dash_cookie_get("a=1; moat_session=abc; b=2", "moat_session", v,
					      sizeof(v)),
			 0);
	assert_string_equal(v, "abc");
	assert_int_equal(moat_dash_cookie_get("moat_session=\"q\"", "moat_session", v, sizeof(v)),
			 0);
	assert_string_equal(v, "q");
	assert_int_equal(moat_dash_cookie_get("a=1;;", "moat_session", v, sizeof(v)), MOAT_ENOENT);
	assert_int_equal(moat_dash_cookie_get("", "moat_session", v, sizeof(v)), MOAT_ENOENT);
	/* rejections: the name twice, no '=', an empty name, a control byte, too long */
	assert_int_equal(moat_dash_cookie_get("moat_session=1; moat_session=2", "moat_session", v,
					      sizeof(v)),
			 MOAT_EINVAL);
	assert_int_equal(moat_dash_cookie_get("flag; moat_session=1", "moat_session", v, sizeof(v)),
			 MOAT_EINVAL);
	assert_int_equal(moat_dash_cookie_get("=1", "moat_session", v, sizeof(v)), MOAT_EINVAL);
	assert_int_equal(moat_dash_cookie_get("moat_session=a\x01", "moat_session", v, sizeof(v)),
			 MOAT_EINVAL);
	char big[200];
	snprintf(big, sizeof(big), "moat_session=%0100d", 0);
	assert_int_equal(moat_dash_cookie_get(big, "moat_session", v, sizeof(v)), MOAT_EINVAL);
}

static void test_form(void **state)
{
	(void)state;
	char v[64];
	const char *f = "csrf=ab&action=revoke&reason=key%2Dcompromise+x";
	assert_int_equal(moat_dash_form_get(f, strlen(f), "reason", v, sizeof(v)), 0);
	assert_string_equal(v, "key-compromise x");
	assert_int_equal(moat_dash_form_get(f, strlen(f), "confirm", v, sizeof(v)), MOAT_ENOENT);
	/* only len bytes are read */
	assert_int_equal(moat_dash_form_get(f, 7, "action", v, sizeof(v)), MOAT_ENOENT);
	/* rejections: a bad or short escape, %00, a control byte, no '=', twice, too long */
	const char *bad[] = {"a=%zz",  "a=%4",	      "a=%00",	 "a=%0a",
			     "a=\x01", "novalue&a=1", "a=1&a=2", "%3D=1&a&b=2"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(moat_dash_form_get(bad[i], strlen(bad[i]), "a", v, sizeof(v)),
				 MOAT_EINVAL);
	}
	char big[300];
	snprintf(big, sizeof(big), "a=%0200d", 0);
	assert_int_equal(moat_dash_form_get(big, strlen(big), "a", v, sizeof(v)), MOAT_EINVAL);
}

static void test_checks(void **state)
{
	(void)state;
	char t[65], h[65], h2[65];
	struct moat_err err = {0};
	assert_int_equal(moat_dash_token_new(t, h, &err), 0);
	assert_true(moat_dash_token_ok(t));
	assert_true(moat_dash_token_ok(h));
	moat_dash_token_hash(t, h2);
	assert_string_equal(h, h2);
	assert_string_not_equal(t, h);
	assert_false(moat_dash_token_ok("ABC"));
	t[63] = 'G';
	assert_false(moat_dash_token_ok(t));
	assert_false(moat_dash_token_ok(NULL));
	assert_true(moat_dash_value_ok("lab-1"));
	assert_true(moat_dash_value_ok(NULL));
	assert_false(moat_dash_value_ok("a\tb"));
	assert_false(moat_dash_value_ok("caf\xc3\xa9"));
	assert_int_equal(moat_dash_window_ms("1h"), 3600000);
	assert_int_equal(moat_dash_window_ms("7d"), 7LL * 86400000);
	assert_int_equal(moat_dash_window_ms("2h"), 0);
}

struct store {
	char dir[TU_TMPDIR_MAX]; /* first: tu_state_make */
	char path[TU_TMPDIR_MAX + 16];
	struct moat_registry *reg;
};

static int setup(void **state)
{
	struct moat_err err = {0};
	if (tu_state_make(state, sizeof(struct store), "dash") != 0) {
		return -1;
	}
	struct store *s = *state;
	tu_path(s->path, sizeof(s->path), s->dir, "registry.db");
	if (moat_registry_open(s->path, true, &s->reg, &err) != 0) {
		return -1;
	}
	char id[32];
	for (int i = 0; i < 120; i++) {
		snprintf(id, sizeof(id), "%s-%03d", i % 3 ? "node" : "lamp", i);
		if (moat_registry_identity_insert(s->reg, id, MOAT_ROLE_DEVICE,
						  i % 2 ? "sensor" : "camera", 1, &err) != 0) {
			return -1;
		}
	}
	if (moat_registry_identity_insert(s->reg, "op", MOAT_ROLE_OPERATOR, "", 1, &err) != 0 ||
	    moat_registry_tag_add(s->reg, "node-001", "lab", &err) != 0 ||
	    moat_registry_identity_set_status(s->reg, "node-002", MOAT_ID_DISABLED, &err) != 0) {
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	struct store *s = *state;
	moat_registry_close(s->reg);
	assert_int_equal(tu_state_free(state), 0);
	return 0;
}

static void test_links(void **state)
{
	struct store *s = *state;
	struct moat_err err = {0};
	char op[MOAT_ID_BUF_LEN];
	int64_t sess = 0;
	enum moat_dash_token t;
	const char *h1 = "1111111111111111111111111111111111111111111111111111111111111111";
	const char *h2 = "2222222222222222222222222222222222222222222222222222222222222222";
	assert_int_equal(moat_registry_dash_link_add(s->reg, h1, "op", 1000, 2000, 5000, &err), 0);
	assert_int_equal(moat_registry_dash_link_add(s->reg, h2, "op", 1000, 2000, 5000, &err), 0);
	assert_int_equal(moat_registry_dash_link_use(s->reg, h1, 1500, op, &sess, &t, &err), 0);
	assert_int_equal(t, MOAT_DASH_TOKEN_OK);
	assert_string_equal(op, "op");
	assert_int_equal(sess, 5000);
	/* single use */
	assert_int_equal(moat_registry_dash_link_use(s->reg, h1, 1600, op, &sess, &t, &err), 0);
	assert_int_equal(t, MOAT_DASH_TOKEN_USED);
	assert_string_equal(op, "");
	/* expired */
	assert_int_equal(moat_registry_dash_link_use(s->reg, h2, 2000, op, &sess, &t, &err), 0);
	assert_int_equal(t, MOAT_DASH_TOKEN_EXPIRED);
	assert_int_equal(moat_registry_dash_link_use(s->reg, "ff", 1500, op, &sess, &t, &err), 0);
	assert_int_equal(t, MOAT_DASH_TOKEN_UNKNOWN);
	/* sessions */
	assert_int_equal(moat_registry_dash_session_add(s->reg, h1, "op", 1500, 6500, &err), 0);
	assert_int_equal(moat_registry_dash_session_get(s->reg, h1, 6499, op, &t, &err), 0);
	assert_int_equal(t, MOAT_DASH_TOKEN_OK);
	assert_int_equal(moat_registry_dash_session_get(s->reg, h1, 6500, op, &t, &err), 0);
	assert_int_equal(t, MOAT_DASH_TOKEN_EXPIRED);
	assert_string_equal(op, "");
	assert_int_equal(moat_registry_dash_session_end(s->reg, h1, &err), 0);
	assert_int_equal(moat_registry_dash_session_get(s->reg, h1, 6000, op, &t, &err), 0);
	assert_int_equal(t, MOAT_DASH_TOKEN_UNKNOWN);
}

struct seen {
	char first[MOAT_ID_BUF_LEN];
	int n;
};

static int seen_cb(const struct moat_dash_device *d, void *ctx)
{
	struct seen *s = ctx;
	if (s->n++ == 0) {
		snprintf(s->first, sizeof(s->first), "%s", d->id);
	}
	return 0;
}

static void test_devices(void **state)
{
	struct store *s = *state;
	struct moat_err err = {0};
	int64_t total = 0;
	struct seen seen = {0};
	struct moat_dash_device_filter f = {.limit = 50, .offset = 100};
	assert_int_equal(moat_registry_dash_devices(s->reg, &f, seen_cb, &seen, &total, &err), 0);
	assert_int_equal(total, 120); /* devices only: not the operator */
	assert_int_equal(seen.n, 20);
	memset(&seen, 0, sizeof(seen));
	f = (struct moat_dash_device_filter){.search = "lamp", .type = "camera", .limit = 5};
	assert_int_equal(moat_registry_dash_devices(s->reg, &f, seen_cb, &seen, &total, &err), 0);
	assert_int_equal(total, 20); /* i % 6 == 0 */
	assert_string_equal(seen.first, "lamp-000");
	memset(&seen, 0, sizeof(seen));
	f = (struct moat_dash_device_filter){.tag = "lab"};
	assert_int_equal(moat_registry_dash_devices(s->reg, &f, seen_cb, &seen, &total, &err), 0);
	assert_int_equal(total, 1);
	assert_string_equal(seen.first, "node-001");
	f = (struct moat_dash_device_filter){.status = "disabled"};
	assert_int_equal(moat_registry_dash_devices(s->reg, &f, NULL, NULL, &total, &err), 0);
	assert_int_equal(total, 1);
	memset(&seen, 0, sizeof(seen));
	f = (struct moat_dash_device_filter){.only_json = "[\"node-004\",\"lamp-003\",\"nobody\"]"};
	assert_int_equal(moat_registry_dash_devices(s->reg, &f, seen_cb, &seen, &total, &err), 0);
	assert_int_equal(total, 2);
	assert_string_equal(seen.first, "lamp-003");
	f.only_json = "[]";
	assert_int_equal(moat_registry_dash_devices(s->reg, &f, NULL, NULL, &total, &err), 0);
	assert_int_equal(total, 0);
	f = (struct moat_dash_device_filter){.conn = "unknown", .release = "1.0.0"};
	assert_int_equal(moat_registry_dash_devices(s->reg, &f, NULL, NULL, &total, &err), 0);
	assert_int_equal(total, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cookie),
		cmocka_unit_test(test_form),
		cmocka_unit_test(test_checks),
		cmocka_unit_test_setup_teardown(test_links, setup, teardown),
		cmocka_unit_test_setup_teardown(test_devices, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
