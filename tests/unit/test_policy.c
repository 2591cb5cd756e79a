/* test_policy.c: the broker policy file format (src/core/policy.c).
 *
 * Every rejection path of the parser has a row in the `bad` table, with the line number
 * and a piece of the message it must report, so a file refused for the wrong reason (or
 * blamed on the wrong line) fails too. The rest: defaults, a full file, the sorted
 * identity table, and render → parse round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "moat/policy.h"

#define HEAD "moat-policy 1\n"
#define END0 "end identities=0\n"

struct bad_row {
	const char *text;
	const char *want; /* substring of the error message, line number included */
};

static const struct bad_row bad[] = {
	/* the first line */
	{"", "policy:1: empty file"},
	{"moat-policy 2\n" END0, "policy:1: unsupported version '2'"},
	{"moat-policy\n" END0, "policy:1: not a moat policy"},
	{"# comment\n" HEAD END0, "policy:1: not a moat policy"},
	{"moat-policy 1 \n" END0, "policy:1: unsupported version"},
	/* framing */
	{HEAD "end identities=0", "policy:2: no newline at the end"},
	{HEAD, "policy:2: missing the end line"},
	{HEAD "# only a comment\n", "policy:3: missing the end line"},
	{HEAD END0 "\n", "policy:3: text after the end line"},
	{HEAD END0 "# late comment\n", "policy:3: text after the end line"},
	{HEAD END0 "identity a device active\n", "policy:3: text after the end line"},
	{HEAD "operator_write_commands yes\r\n" END0, "policy:2: invalid byte 0x0d at column 28"},
	{HEAD "operator_write_commands\tyes\n" END0, "policy:2: invalid byte 0x09 at column 24"},
	{HEAD "# caf\xc3\xa9\n" END0, "policy:2: invalid byte 0xc3 at column 6"},
	{HEAD "x\x7f\n" END0, "policy:2: invalid byte 0x7f"},
	{HEAD " operator_write_commands yes\n" END0, "policy:2: empty field"},
	{HEAD "operator_write_commands  yes\n" END0, "policy:2: empty field"},
	{HEAD "operator_write_commands yes \n" END0, "policy:2: empty field"},
	{HEAD "identity a device active x y z\n" END0, "policy:2: too many fields"},
	{HEAD "identities a device active\n" END0, "policy:2: unknown setting 'identities'"},
	{HEAD "Identity a device active\n" END0, "policy:2: unknown setting"},
	/* operator_write_commands */
	{HEAD "operator_write_commands\n" END0,
	 "policy:2: operator_write_commands needs yes or no"},
	{HEAD "operator_write_commands true\n" END0, "policy:2: operator_write_commands needs yes"},
	{HEAD "operator_write_commands yes no\n" END0, "policy:2: operator_write_commands needs"},
	{HEAD "operator_write_commands yes\noperator_write_commands no\n" END0,
	 "policy:3: operator_write_commands given twice"},
	/* limits */
	{HEAD "limits device msgs_per_s=1 bytes_per_s=1 burst=1\n" END0, "policy:2: limits needs"},
	{HEAD "limits msgs_per_s=1 bytes_per_s=1 burst=1 max_payload=1\n" END0,
	 "policy:2: limits needs"},
	{HEAD "limits robot msgs_per_s=1 bytes_per_s=1 burst=1 max_payload=1\n" END0, "policy:2: "},
	{HEAD "limits device msgs_per_s=1 bytes_per_s=1 burst=1 max_payload=1\n"
	      "limits device msgs_per_s=1 bytes_per_s=1 burst=1 max_payload=1\n" END0,
	 "policy:3: limits for device given twice"},
	{HEAD "limits device msgs_per_s=1 bytes_per_s=1 burst=1 max_bytes=1\n" END0,
	 "policy:2: unknown limits key 'max_bytes'"},
	{HEAD "limits device msgs_per_s=1 msgs_per_s=1 burst=1 max_payload=1\n" END0,
	 "policy:2: msgs_per_s given twice"},
	{HEAD "limits device msgs_per_s 1 burst=1 max_payload=1\n" END0,
	 "policy:2: expected key=value, got 'msgs_per_s'"},
	{HEAD "limits device =1 bytes_per_s=1 burst=1 max_payload=1\n" END0,
	 "policy:2: expected key=value"},
	{HEAD "limits device msgs_per_s= bytes_per_s=1 burst=1 max_payload=1\n" END0,
	 "policy:2: msgs_per_s has no value"},
	{HEAD "limits device msgs_per_s=01 bytes_per_s=1 burst=1 max_payload=1\n" END0,
	 "policy:2: msgs_per_s=01 is not a plain decimal number"},
	{HEAD "limits device msgs_per_s=+1 bytes_per_s=1 burst=1 max_payload=1\n" END0,
	 "policy:2: msgs_per_s=+1 is not a plain decimal number"},
	{HEAD "limits device msgs_per_s=-1 bytes_per_s=1 burst=1 max_payload=1\n" END0,
	 "policy:2: msgs_per_s=-1 is not"},
	{HEAD "limits device msgs_per_s=1x bytes_per_s=1 burst=1 max_payload=1\n" END0,
	 "policy:2: msgs_per_s=1x is not"},
	{HEAD "limits device msgs_per_s=1 bytes_per_s=99999999999 burst=1 max_payload=1\n" END0,
	 "policy:2: bytes_per_s=99999999999 is not"},
	{HEAD "limits device msgs_per_s=1 bytes_per_s=4294967295 burst=1 max_payload=1\n" END0,
	 "policy:2: bytes_per_s=4294967295 is out of range"},
	{HEAD "limits device msgs_per_s=100000001 bytes_per_s=1 burst=1 max_payload=1\n" END0,
	 "policy:2: msgs_per_s=100000001 is out of range"},
	{HEAD "limits device msgs_per_s=1 bytes_per_s=1 burst=0 max_payload=1\n" END0,
	 "policy:2: burst=0 is out of range"},
	{HEAD "limits device msgs_per_s=1 bytes_per_s=1 burst=1000001 max_payload=1\n" END0,
	 "policy:2: burst=1000001 is out of range"},
	{HEAD "limits device msgs_per_s=1 bytes_per_s=1 burst=1 max_payload=0\n" END0,
	 "policy:2: max_payload=0 is out of range"},
	{HEAD "limits device msgs_per_s=1 bytes_per_s=1 burst=1 max_payload=268435456\n" END0,
	 "policy:2: max_payload=268435456 is out of range"},
	/* flapping */
	{HEAD "flapping connects=3 window_s=60\n" END0, "policy:2: flapping needs"},
	{HEAD
	 "flapping connects=3 window_s=60 ban_s=60\nflapping connects=3 window_s=60 ban_s=60\n" END0,
	 "policy:3: flapping given twice"},
	{HEAD "flapping connects=3 window=60 ban_s=60\n" END0,
	 "policy:2: unknown flapping key 'window'"},
	{HEAD "flapping connects=3 connects=3 ban_s=60\n" END0, "policy:2: connects given twice"},
	{HEAD "flapping connects=3 window_s ban_s=60\n" END0, "policy:2: expected key=value"},
	{HEAD "flapping connects=32 window_s=60 ban_s=60\n" END0,
	 "policy:2: connects=32 is out of range"},
	{HEAD "flapping connects=3 window_s=0 ban_s=60\n" END0,
	 "policy:2: window_s=0 is out of range"},
	{HEAD "flapping connects=3 window_s=86401 ban_s=60\n" END0,
	 "policy:2: window_s=86401 is out"},
	{HEAD "flapping connects=3 window_s=60 ban_s=0\n" END0,
	 "policy:2: ban_s=0 is out of range"},
	{HEAD "flapping connects=3 window_s=60 ban_s=604801\n" END0,
	 "policy:2: ban_s=604801 is out"},
	{HEAD "flapping connects=3 window_s=6o ban_s=60\n" END0, "policy:2: window_s=6o is not"},
	{HEAD "flapping robot connects=3 window_s=60 ban_s=60\n" END0, "policy:2: unknown role"},
	{HEAD "flapping operator connects=3 window_s=60 ban_s=60\n"
	      "flapping operator connects=3 window_s=60 ban_s=60\n" END0,
	 "policy:3: flapping operator given twice"},
	{HEAD "flapping connects=3 window_s=60 ban_s=60\n"
	      "flapping device connects=3 window_s=60 ban_s=60\n" END0,
	 "policy:3: flapping given twice"},
	{HEAD "flapping service connects=3 window_s=60\n" END0, "policy:2: flapping needs"},
	{HEAD "flapping service connects=3 window_s=60 ban_s=0\n" END0,
	 "policy:2: ban_s=0 is out of range"},
	/* jobs */
	{HEAD "jobs\n" END0, "policy:2: jobs needs msgs_per_s="},
	{HEAD "jobs msgs_per_s=0\n" END0, "policy:2: jobs: msgs_per_s=0 is out of range"},
	{HEAD "jobs msgs_per_s=10001\n" END0, "policy:2: jobs: msgs_per_s=10001 is out of range"},
	{HEAD "jobs burst=5\n" END0, "policy:2: jobs: unknown jobs key 'burst'"},
	{HEAD "jobs msgs_per_s=5 msgs_per_s=6\n" END0, "policy:2: jobs needs msgs_per_s="},
	{HEAD "jobs msgs_per_s=5\njobs msgs_per_s=6\n" END0, "policy:3: jobs given twice"},
	/* unban */
	{HEAD "unban dev-1\n" END0, "policy:2: unban needs a name and a Unix time"},
	{HEAD "unban Dev 100\n" END0, "policy:2: identity name 'Dev' is invalid"},
	{HEAD "unban dev-1 0\n" END0, "policy:2: unban time=0 is out of range"},
	{HEAD "unban dev-1 4294967296\n" END0, "policy:2: unban time=4294967296 is out"},
	{HEAD "unban dev-1 -5\n" END0, "policy:2: unban time=-5 is not a plain decimal"},
	{HEAD "unban dev-1 5\nunban dev-1 6\n" END0, "policy:3: unban dev-1 given twice"},
	/* subscriptions */
	{HEAD "subscriptions device per_client=5\n" END0, "policy:2: subscriptions needs"},
	{HEAD "subscriptions robot per_client=5 per_packet=2\n" END0, "policy:2: "},
	{HEAD "subscriptions device per_client=5 per_packet=2\n"
	      "subscriptions device per_client=5 per_packet=2\n" END0,
	 "policy:3: subscriptions for device given twice"},
	{HEAD "subscriptions device per_client=5 per_client=2\n" END0,
	 "policy:2: per_client given twice"},
	{HEAD "subscriptions device per_client=5 max=2\n" END0,
	 "policy:2: unknown subscriptions key 'max'"},
	{HEAD "subscriptions device per_client=0 per_packet=2\n" END0,
	 "policy:2: per_client=0 is out of range"},
	{HEAD "subscriptions device per_client=5 per_packet=100001\n" END0,
	 "policy:2: per_packet=100001 is out of range"},
	/* identity */
	{HEAD "identity a device\n" END0, "policy:2: identity needs a name, a role and a status"},
	{HEAD "identity Sensor device active\nend identities=1\n",
	 "policy:2: identity name 'Sensor' is invalid"},
	{HEAD "identity -a device active\nend identities=1\n",
	 "policy:2: identity name '-a' is invalid"},
	{HEAD "identity a/b device active\nend identities=1\n",
	 "policy:2: identity name 'a/b' is invalid"},
	{HEAD "identity a+ device active\nend identities=1\n",
	 "policy:2: identity name 'a+' is invalid"},
	{HEAD "identity a# device active\nend identities=1\n",
	 "policy:2: identity name 'a#' is invalid"},
	{HEAD "identity "
	      "a1234567890123456789012345678901234567890123456789012345678901234"
	      " device active\nend identities=1\n",
	 "policy:2: identity name 'a1234567890123456789...' is longer than 64"},
	{HEAD "identity a robot active\nend identities=1\n", "policy:2: "},
	{HEAD "identity a device enabled\nend identities=1\n",
	 "policy:2: unknown status 'enabled'"},
	{HEAD "identity b device active\nidentity a device active\nend identities=2\n",
	 "policy:3: identity 'a' is out of order or listed twice"},
	{HEAD "identity a device active\nidentity a service active\nend identities=2\n",
	 "policy:3: identity 'a' is out of order or listed twice"},
	/* end */
	{HEAD "end\n", "policy:2: end needs identities=<count>"},
	{HEAD "end identities=0 x\n", "policy:2: end needs identities=<count>"},
	{HEAD "end count=0\n", "policy:2: end needs identities=<count>"},
	{HEAD "end identities=\n", "policy:2: identities has no value"},
	{HEAD "end identities=1\n", "policy:2: end says 1 identities but 0 were listed"},
	{HEAD "identity a device active\nend identities=0\n",
	 "policy:3: end says 0 identities but 1"},
	{HEAD "end identities=200001\n", "policy:2: identities=200001 is out of range"},
};

static void test_rejections(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct moat_policy p;
		struct moat_err err = {0};
		size_t len = strlen(bad[i].text);
		/* an exact-size copy, so ASan catches a read past the end */
		char *copy = malloc(len ? len : 1);
		assert_non_null(copy);
		memcpy(copy, bad[i].text, len);
		int rc = moat_policy_parse(copy, len, &p, &err);
		free(copy);
		if (rc != MOAT_EINVAL || !strstr(err.msg, bad[i].want)) {
			print_error("row %zu: rc=%d msg='%s' want '%s'\n", i, rc, err.msg,
				    bad[i].want);
			fail();
		}
		/* nothing of a refused file is returned */
		assert_int_equal(p.identity_count, 0);
		assert_null(p.identities);
		moat_policy_free(&p);
	}
}

static void test_embedded_nul(void **state)
{
	(void)state;
	static const char text[] = HEAD "operator_write_commands yes\0\n" END0;
	struct moat_policy p;
	struct moat_err err = {0};
	assert_int_equal(moat_policy_parse(text, sizeof(text) - 1, &p, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "policy:2: invalid byte 0x00 at column 28"));
	moat_policy_free(&p);
}

static void test_long_line(void **state)
{
	(void)state;
	char text[600];
	int n = snprintf(text, sizeof(text), HEAD "# %0*d\n" END0, MOAT_POLICY_LINE_MAX_LEN - 2, 0);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	struct moat_policy p;
	struct moat_err err = {0};
	/* exactly the maximum is fine */
	assert_int_equal(moat_policy_parse(text, (size_t)n, &p, &err), 0);
	moat_policy_free(&p);
	n = snprintf(text, sizeof(text), HEAD "# %0*d\n" END0, MOAT_POLICY_LINE_MAX_LEN - 1, 0);
	assert_int_equal(moat_policy_parse(text, (size_t)n, &p, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "policy:2: line longer than 256 bytes"));
	moat_policy_free(&p);
}

static void test_too_large(void **state)
{
	(void)state;
	size_t len = MOAT_POLICY_MAX_BYTES + 1;
	char *big = calloc(1, len);
	assert_non_null(big);
	struct moat_policy p;
	struct moat_err err = {0};
	assert_int_equal(moat_policy_parse(big, len, &p, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "larger than"));
	free(big);
	moat_policy_free(&p);
	assert_int_equal(moat_policy_parse(NULL, 3, &p, &err), MOAT_EINVAL);
	moat_policy_free(&p);
}

static void test_minimal_is_defaults(void **state)
{
	(void)state;
	static const char text[] = HEAD END0;
	struct moat_policy p, def;
	struct moat_err err = {0};
	assert_int_equal(moat_policy_parse(text, sizeof(text) - 1, &p, &err), 0);
	moat_policy_init(&def);
	assert_true(p.operator_write_commands);
	assert_memory_equal(p.limits, def.limits, sizeof(def.limits));
	assert_memory_equal(&p.flapping, &def.flapping, sizeof(def.flapping));
	assert_int_equal(p.job_msgs_per_s, MOAT_POLICY_JOB_RATE_DEFAULT);
	assert_int_equal(p.identity_count, 0);
	assert_int_equal(moat_policy_validate(&def, &err), 0);
	moat_policy_free(&p);
}

static void test_full_file(void **state)
{
	(void)state;
	static const char text[] = HEAD
		"# comment\n"
		"\n"
		"operator_write_commands no\n"
		"limits device max_payload=256 burst=5 bytes_per_s=0 msgs_per_s=2\n"
		"limits operator msgs_per_s=0 bytes_per_s=100000000 burst=1000000 max_payload=268435455\n"
		"flapping ban_s=604800 window_s=1 connects=31\n"
		"identity a device active\n"
		"identity a.b-c_d service disabled\n"
		"identity z9 operator revoked\n"
		"end identities=3\n";
	struct moat_policy p;
	struct moat_err err = {0};
	assert_int_equal(moat_policy_parse(text, sizeof(text) - 1, &p, &err), 0);
	assert_false(p.operator_write_commands);
	assert_int_equal(p.limits[MOAT_ROLE_DEVICE].msgs_per_s, 2);
	assert_int_equal(p.limits[MOAT_ROLE_DEVICE].bytes_per_s, 0);
	assert_int_equal(p.limits[MOAT_ROLE_DEVICE].burst, 5);
	assert_int_equal(p.limits[MOAT_ROLE_DEVICE].max_payload, 256);
	assert_int_equal(p.limits[MOAT_ROLE_OPERATOR].max_payload, MOAT_POLICY_PAYLOAD_MAX_BYTES);
	struct moat_policy def;
	moat_policy_init(&def);
	assert_memory_equal(&p.limits[MOAT_ROLE_SERVICE], &def.limits[MOAT_ROLE_SERVICE],
			    sizeof(def.limits[0]));
	assert_int_equal(p.flapping[MOAT_ROLE_DEVICE].connects, 31);
	assert_int_equal(p.flapping[MOAT_ROLE_DEVICE].window_s, 1);
	assert_int_equal(p.flapping[MOAT_ROLE_DEVICE].ban_s, 604800);
	assert_int_equal(p.identity_count, 3);
	const struct moat_policy_identity *id = moat_policy_find(&p, "a.b-c_d");
	assert_non_null(id);
	assert_int_equal(id->role, MOAT_ROLE_SERVICE);
	assert_int_equal(id->status, MOAT_POLICY_DISABLED);
	id = moat_policy_find(&p, "z9");
	assert_non_null(id);
	assert_int_equal(id->status, MOAT_POLICY_REVOKED);
	assert_null(moat_policy_find(&p, "b"));
	assert_null(moat_policy_find(&p, ""));
	assert_null(moat_policy_find(&p, NULL));
	moat_policy_free(&p);
	assert_null(moat_policy_find(&p, "a"));
}

static void test_add_identity(void **state)
{
	(void)state;
	struct moat_policy p;
	struct moat_err err = {0};
	moat_policy_init(&p);
	/* out of order on purpose: the table stays sorted */
	static const char *names[] = {"m", "c", "x", "a", "n", "b"};
	for (size_t i = 0; i < 6; i++) {
		assert_int_equal(moat_policy_add_identity(&p, names[i], MOAT_ROLE_DEVICE,
							  MOAT_POLICY_ACTIVE, &err),
				 0);
	}
	for (size_t i = 1; i < p.identity_count; i++) {
		assert_true(strcmp(p.identities[i - 1].name, p.identities[i].name) < 0);
	}
	for (size_t i = 0; i < 6; i++) {
		assert_non_null(moat_policy_find(&p, names[i]));
	}
	assert_int_equal(moat_policy_add_identity(&p, "c", MOAT_ROLE_SERVICE, MOAT_POLICY_ACTIVE,
						  &err),
			 MOAT_EEXIST);
	assert_non_null(strstr(err.msg, "'c' is listed twice"));
	assert_int_equal(moat_policy_add_identity(&p, "Bad", MOAT_ROLE_DEVICE, MOAT_POLICY_ACTIVE,
						  &err),
			 MOAT_EINVAL);
	assert_int_equal(moat_policy_add_identity(&p, "d", (enum moat_role)7, MOAT_POLICY_ACTIVE,
						  &err),
			 MOAT_EINVAL);
	assert_int_equal(moat_policy_add_identity(&p, "d", MOAT_ROLE_DEVICE,
						  (enum moat_policy_status)9, &err),
			 MOAT_EINVAL);
	assert_int_equal(p.identity_count, 6);
	/* many, to cross several reallocations */
	for (int i = 0; i < 1000; i++) {
		char name[16];
		snprintf(name, sizeof(name), "dev-%04d", (i * 7919) % 1000);
		assert_int_equal(moat_policy_add_identity(&p, name, MOAT_ROLE_DEVICE,
							  MOAT_POLICY_ACTIVE, &err),
				 0);
	}
	assert_int_equal(p.identity_count, 1006);
	assert_non_null(moat_policy_find(&p, "dev-0999"));
	moat_policy_free(&p);
}

static void test_round_trip(void **state)
{
	(void)state;
	struct moat_policy p, back;
	struct moat_err err = {0};
	moat_policy_init(&p);
	p.operator_write_commands = false;
	p.limits[MOAT_ROLE_DEVICE] = (struct moat_policy_limits){3, 1000, 7, 512};
	p.flapping[MOAT_ROLE_DEVICE] = (struct moat_policy_flapping){0, 10, 20};
	p.flapping[MOAT_ROLE_OPERATOR] = (struct moat_policy_flapping){5, 30, 40};
	assert_int_equal(moat_policy_add_unban(&p, "dev-1", 1795629600, &err), 0);
	p.subs[MOAT_ROLE_SERVICE] = (struct moat_policy_subs){7, 3};
	assert_int_equal(moat_policy_add_identity(&p, "svc", MOAT_ROLE_SERVICE, MOAT_POLICY_ACTIVE,
						  &err),
			 0);
	assert_int_equal(moat_policy_add_identity(&p, "dev-1", MOAT_ROLE_DEVICE,
						  MOAT_POLICY_DISABLED, &err),
			 0);
	assert_int_equal(moat_policy_add_identity(&p, "op", MOAT_ROLE_OPERATOR, MOAT_POLICY_REVOKED,
						  &err),
			 0);
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(moat_policy_render_alloc(&p, &text, &len, &err), 0);
	assert_int_equal(strlen(text), len);
	assert_int_equal(moat_policy_render_size(&p), len + 1);
	assert_non_null(strstr(text, "identity dev-1 device disabled\n"));
	assert_non_null(strstr(text, "end identities=3\n"));
	/* only the subscription bounds that differ from the defaults are written */
	assert_non_null(strstr(text, "\nsubscriptions service per_client=7 per_packet=3\n"));
	assert_null(strstr(text, "subscriptions device"));
	/* likewise the flapping lines of services and operators; unbans follow identities */
	assert_non_null(strstr(text, "\nflapping connects=0 window_s=10 ban_s=20\n"));
	assert_non_null(strstr(text, "\nflapping operator connects=5 window_s=30 ban_s=40\n"));
	assert_null(strstr(text, "flapping service"));
	/* the jobs line only when it is not the default */
	assert_null(strstr(text, "jobs "));
	free(text);
	p.job_msgs_per_s = 200;
	assert_int_equal(moat_policy_render_alloc(&p, &text, &len, &err), 0);
	assert_non_null(strstr(text, "\njobs msgs_per_s=200\nidentity "));
	assert_non_null(strstr(text, "\nunban dev-1 1795629600\nend identities=3\n"));
	assert_int_equal(moat_policy_parse(text, len, &back, &err), 0);
	assert_int_equal(back.operator_write_commands, p.operator_write_commands);
	assert_memory_equal(back.limits, p.limits, sizeof(p.limits));
	assert_memory_equal(&back.flapping, &p.flapping, sizeof(p.flapping));
	assert_memory_equal(back.subs, p.subs, sizeof(p.subs));
	assert_int_equal(back.job_msgs_per_s, 200);
	assert_int_equal(back.unban_count, 1);
	assert_memory_equal(back.unbans, p.unbans, sizeof(p.unbans[0]));
	assert_int_equal(back.identity_count, p.identity_count);
	assert_memory_equal(back.identities, p.identities,
			    p.identity_count * sizeof(p.identities[0]));

	/* into a caller buffer: exact size works, one byte less does not and leaves "" */
	char *buf = malloc(len + 1);
	assert_non_null(buf);
	size_t out_len = 0;
	assert_int_equal(moat_policy_render(&p, buf, len + 1, &out_len, &err), 0);
	assert_int_equal(out_len, len);
	assert_string_equal(buf, text);
	assert_int_equal(moat_policy_render(&p, buf, len, &out_len, &err), MOAT_EINVAL);
	assert_string_equal(buf, "");
	assert_non_null(strstr(err.msg, "buffer too small"));
	assert_int_equal(moat_policy_render(&p, NULL, 0, NULL, &err), MOAT_EINVAL);
	free(buf);
	free(text);
	moat_policy_free(&back);
	moat_policy_free(&p);
}

static void test_render_validates(void **state)
{
	(void)state;
	struct moat_policy p;
	struct moat_err err = {0};
	char buf[4096];
	char *text = NULL;
	moat_policy_init(&p);
	p.limits[MOAT_ROLE_SERVICE].burst = 0;
	assert_int_equal(moat_policy_render(&p, buf, sizeof(buf), NULL, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "limits service: burst=0 is out of range"));
	assert_int_equal(moat_policy_render_alloc(&p, &text, NULL, &err), MOAT_EINVAL);
	assert_null(text);
	moat_policy_init(&p);
	p.flapping[MOAT_ROLE_DEVICE].connects = MOAT_POLICY_FLAP_CONNECTS_MAX + 1;
	assert_int_equal(moat_policy_validate(&p, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "flapping: connects="));
	moat_policy_init(&p);
	p.job_msgs_per_s = 0;
	assert_int_equal(moat_policy_validate(&p, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "policy: jobs: msgs_per_s=0 is out of range"));
	moat_policy_init(&p);
	p.flapping[MOAT_ROLE_SERVICE].ban_s = 0;
	assert_int_equal(moat_policy_validate(&p, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "flapping service: ban_s=0"));
	moat_policy_init(&p);
	p.unban_count = 1;
	assert_int_equal(moat_policy_validate(&p, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "unban 0 is invalid"));
	moat_policy_init(&p);
	p.limits[MOAT_ROLE_DEVICE].max_payload = 0;
	assert_int_equal(moat_policy_validate(&p, &err), MOAT_EINVAL);
	/* a hand-made identity table that is out of order is refused, not rendered */
	struct moat_policy_identity ids[2] = {{"b", MOAT_ROLE_DEVICE, MOAT_POLICY_ACTIVE},
					      {"a", MOAT_ROLE_DEVICE, MOAT_POLICY_ACTIVE}};
	moat_policy_init(&p);
	p.identities = ids;
	p.identity_count = 2;
	assert_int_equal(moat_policy_render(&p, buf, sizeof(buf), NULL, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "out of order"));
	ids[1].role = (enum moat_role)5;
	p.identity_count = 2;
	assert_int_equal(moat_policy_validate(&p, &err), MOAT_EINVAL);
	memcpy(ids[0].name, "B", 2);
	assert_int_equal(moat_policy_validate(&p, &err), MOAT_EINVAL);
}

static void test_status_names(void **state)
{
	(void)state;
	enum moat_policy_status st;
	struct moat_err err = {0};
	assert_string_equal(moat_policy_status_name(MOAT_POLICY_ACTIVE), "active");
	assert_string_equal(moat_policy_status_name(MOAT_POLICY_REVOKED), "revoked");
	assert_string_equal(moat_policy_status_name(MOAT_POLICY_DISABLED), "disabled");
	assert_string_equal(moat_policy_status_name((enum moat_policy_status)3), "?");
	assert_int_equal(moat_policy_status_parse("disabled", &st, &err), 0);
	assert_int_equal(st, MOAT_POLICY_DISABLED);
	assert_int_equal(moat_policy_status_parse("Active", &st, &err), MOAT_EINVAL);
	assert_int_equal(moat_policy_status_parse(NULL, &st, &err), MOAT_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rejections),	    cmocka_unit_test(test_embedded_nul),
		cmocka_unit_test(test_long_line),	    cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_minimal_is_defaults), cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_add_identity),	    cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_render_validates),    cmocka_unit_test(test_status_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
