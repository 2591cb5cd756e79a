/* test_json.c: the one strict JSON reader (src/core/json.c). Every refusal has a case that
 * shows it refuses, with its fault kind and its message: size, NUL, the stricter byte rules
 * (ASCII, escapes, control bytes), "\u0000", strings that are not UTF-8 text, numbers
 * outside JSON's syntax, depth, syntax, trailing bytes, a value that is not an object, and
 * duplicate keys at every depth and in objects large enough for the hash table. Then the
 * member helpers of fixed-shape objects and the UTF-8 text check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "moat/json.h"

static const struct moat_json_limits plain = {.max_bytes = 256, .max_depth = MOAT_JSON_DEPTH_MAX};

static void refused_len(const struct moat_json_limits *lim, const char *text, size_t len,
			enum moat_json_fault_kind kind, const char *want)
{
	struct moat_json_fault f;
	struct moat_err err = {0};
	cJSON *root = (cJSON *)&f; /* must be cleared */

	int rc = moat_json_parse("doc", text, len, lim, &root, &f, &err);
	if (rc == 0) {
		fail_msg("accepted: %s", text);
	}
	assert_null(root);
	if (f.kind != kind) {
		fail_msg("fault %d, wanted %d: %s", (int)f.kind, (int)kind, text);
	}
	if (strncmp(err.msg, "doc: ", 5) != 0 || !strstr(err.msg, want)) {
		fail_msg("message '%s' lacks '%s': %s", err.msg, want, text);
	}
	/* out_fault may be NULL */
	assert_int_equal(moat_json_parse("doc", text, len, lim, &root, NULL, &err), rc);
	assert_null(root);
}

static void refused(const struct moat_json_limits *lim, const char *text,
		    enum moat_json_fault_kind kind, const char *want)
{
	refused_len(lim, text, strlen(text), kind, want);
}

/* One refused document of a table: text, the fault kind, a part of the message. */
struct refusal {
	const char *text;
	enum moat_json_fault_kind kind;
	const char *want;
};

static void refused_rows(const struct moat_json_limits *lim, const struct refusal *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		refused(lim, rows[i].text, rows[i].kind, rows[i].want);
	}
}

#define ROWS(a) (a), sizeof(a) / sizeof((a)[0])

static cJSON *accepted_len(const struct moat_json_limits *lim, const char *text, size_t len)
{
	struct moat_json_fault f;
	struct moat_err err = {0};
	cJSON *root = NULL;

	if (moat_json_parse("doc", text, len, lim, &root, &f, &err) != 0) {
		fail_msg("refused (%s): %s", err.msg, text);
	}
	assert_non_null(root);
	assert_int_equal(f.kind, MOAT_JSON_OK);
	return root;
}

static void accepted(const struct moat_json_limits *lim, const char *text)
{
	cJSON_Delete(accepted_len(lim, text, strlen(text)));
}

static void test_accepts(void **state)
{
	(void)state;
	accepted(&plain, "{}");
	accepted(&plain, " \t\r\n{\"a\":1} \t\r\n");
	accepted(&plain, "{\"a\":[1,-2,0.5,-0,1e3,1E+3,2.5e-3,0,10],\"b\":{\"c\":null}}");
	accepted(&plain, "{\"t\":\"caf\\u00e9 \xe2\x82\xac \xf0\x9f\x98\x80 \\\"q\\\"\"}");
	/* an escaped backslash followed by the text u0000 is no NUL */
	accepted(&plain, "{\"s\":\"a\\\\u0000\"}");
	/* the same key in two objects is no duplicate */
	accepted(&plain, "{\"a\":{\"k\":1},\"b\":{\"k\":1},\"k\":[{\"k\":1},{\"k\":2}]}");
	/* exactly the depth limit: 8 levels below the top */
	accepted(&plain, "{\"a\":[[[[[[[[1]]]]]]]]}");
	/* exactly the size limit; and only len bytes of a larger buffer are read */
	char big[257];
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"a\":1}", 7);
	cJSON_Delete(accepted_len(&plain, big, 256));
	cJSON *root = accepted_len(&plain, "{\"a\":7}GARBAGE", 7);
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(root, "a")->valueint, 7);
	cJSON_Delete(root);
	/* numbers out of range are the schema's to refuse: 1e999 reads as a number */
	accepted(&plain, "{\"x\":1e999}");
}

static void test_size(void **state)
{
	(void)state;
	refused_len(&plain, "{}", 0, MOAT_JSON_EMPTY, "empty");
	refused_len(&plain, NULL, 5, MOAT_JSON_EMPTY, "empty");
	char big[258];
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"a\":1}", 7);
	refused_len(&plain, big, 257, MOAT_JSON_TOO_BIG, "257 bytes is over the limit of 256");
}

static void test_bytes(void **state)
{
	(void)state;
	const char nul[] = "{\"a\":\"x\0y\"}";
	refused_len(&plain, nul, sizeof(nul) - 1, MOAT_JSON_NUL, "NUL byte");
	const char nul_end[] = "{}\0";
	refused_len(&plain, nul_end, sizeof(nul_end) - 1, MOAT_JSON_NUL, "NUL byte");

	const struct moat_json_limits ascii = {.max_bytes = 256, .flags = MOAT_JSON_ASCII};
	accepted(&ascii, "{\"a\":\"x\\ny\"}\n");
	refused(&ascii, "{\"a\":\"\xc3\xa9\"}", MOAT_JSON_NOT_ASCII,
		"byte 0xc3 at offset 6 is not printable ASCII");
	refused(&ascii, "{\"a\":\"\x7f\"}", MOAT_JSON_NOT_ASCII, "byte 0x7f");
	refused(&ascii, "{\"a\":\"\x01\"}", MOAT_JSON_NOT_ASCII, "byte 0x01");

	const struct moat_json_limits no_esc = {.max_bytes = 256, .flags = MOAT_JSON_NO_ESCAPES};
	refused(&no_esc, "{\"a\":\"x\\ny\"}", MOAT_JSON_ESCAPE,
		"escape at offset 7 (no field needs one)");

	const struct moat_json_limits one_line = {.max_bytes = 256, .flags = MOAT_JSON_NO_CONTROLS};
	accepted(&one_line, "{ \"a\" : 1 }");
	refused(&one_line, "{\"a\":1}\n", MOAT_JSON_CONTROL, "control character at byte 7");
	refused(&one_line, "{\t\"a\":1}", MOAT_JSON_CONTROL, "control character at byte 1");
	refused(&one_line, "{\"a\":\"\x7f\"}", MOAT_JSON_CONTROL, "control character at byte 6");
	refused_len(&one_line, nul, sizeof(nul) - 1, MOAT_JSON_CONTROL, "control character");
}

static void test_strings(void **state)
{
	(void)state;
	static const struct refusal rows[] = {
		/* cJSON would cut the string at an escaped NUL */
		{"{\"a\":\"reboot\\u0000x\"}", MOAT_JSON_ESCAPED_NUL, "escaped NUL"},
		{"{\"a\\u0000b\":1}", MOAT_JSON_ESCAPED_NUL, "\\u0000"},
		{"{\"s\":\"\\\\\\u0000\"}", MOAT_JSON_ESCAPED_NUL, "escaped NUL"},
		/* raw control characters and invalid UTF-8, in values and keys */
		{"{\"a\":\"x\ty\"}", MOAT_JSON_BAD_TEXT, "offset 7 is not printable"},
		{"{\"a\":\"x\ny\"}", MOAT_JSON_BAD_TEXT, "not printable"},
		{"{\"a\xff\":1}", MOAT_JSON_BAD_TEXT, "invalid UTF-8"},
		{"{\"a\":\"bad \xff\"}", MOAT_JSON_BAD_TEXT, "invalid UTF-8"},
		{"{\"a\":\"overlong \xc0\xaf\"}", MOAT_JSON_BAD_TEXT, "invalid UTF-8"},
		{"{\"a\":\"overlong \xe0\x80\xaf\"}", MOAT_JSON_BAD_TEXT, "invalid UTF-8"},
		{"{\"a\":\"surrogate \xed\xa0\x80\"}", MOAT_JSON_BAD_TEXT, "invalid UTF-8"},
		{"{\"a\":\"too high \xf4\x90\x80\x80\"}", MOAT_JSON_BAD_TEXT, "invalid UTF-8"},
		{"{\"a\":\"cut \xe2\x82\"}", MOAT_JSON_BAD_TEXT, "invalid UTF-8"},
		{"{\"a\":\"continuation \x80\"}", MOAT_JSON_BAD_TEXT, "invalid UTF-8"},
	};
	refused_rows(&plain, ROWS(rows));
	/* a cut sequence at the very end of the input */
	refused_len(&plain, "{\"a\":\"\xe2\x82", 8, MOAT_JSON_BAD_TEXT, "invalid UTF-8");
}

/* cJSON 1.7.15 reads a \u escape whose digits are not hex as U+0000 and cuts the string
 * there, as it does for \u0000: "reboot\uZZZZx" read as "reboot". */
static void test_escapes(void **state)
{
	(void)state;
	static const struct refusal rows[] = {
		{"{\"a\":\"reboot\\uZZZZx\"}", MOAT_JSON_BAD_ESCAPE,
		 "invalid escape at offset 12 (\\u needs 4 hex digits"},
		{"{\"a\":\"reboot\\u12G4x\"}", MOAT_JSON_BAD_ESCAPE, "offset 12"},
		{"{\"a\":\"\\u00e\"}", MOAT_JSON_BAD_ESCAPE, "offset 6"},
		{"{\"a\":\"\\u-123\"}", MOAT_JSON_BAD_ESCAPE, "offset 6"},
		{"{\"a\\uZZZZb\":1}", MOAT_JSON_BAD_ESCAPE, "offset 3"}, /* in a key */
		{"{\"a\":\"\\U0041\"}", MOAT_JSON_BAD_ESCAPE, "offset 6"},
		{"{\"a\":\"\\u\"}", MOAT_JSON_BAD_ESCAPE, "offset 6"},
		/* surrogates: a high one then at once a low one, nothing else */
		{"{\"a\":\"\\ud800\"}", MOAT_JSON_BAD_ESCAPE, "offset 6"},
		{"{\"a\":\"\\ud800x\\udc00\"}", MOAT_JSON_BAD_ESCAPE, "offset 6"},
		{"{\"a\":\"\\udbff\\ud800\"}", MOAT_JSON_BAD_ESCAPE, "offset 6"},
		{"{\"a\":\"\\ud800\\uZZZZ\"}", MOAT_JSON_BAD_ESCAPE, "offset 6"},
		{"{\"a\":\"\\ud800\\n\"}", MOAT_JSON_BAD_ESCAPE, "offset 6"},
		{"{\"a\":\"\\udc00\"}", MOAT_JSON_BAD_ESCAPE, "offset 6"},
		{"{\"a\":\"x\\udfff\\ud800\"}", MOAT_JSON_BAD_ESCAPE, "offset 7"},
		{"{\"a\":\"\\ud800\\u0000\"}", MOAT_JSON_BAD_ESCAPE, "offset 6"},
		/* U+0000 however it is spelt */
		{"{\"a\":\"\\u0000\"}", MOAT_JSON_ESCAPED_NUL, "escaped NUL"},
	};
	refused_rows(&plain, ROWS(rows));
	/* a \u cut by the end of the input, and a backslash as the last byte */
	refused_len(&plain, "{\"a\":\"\\u00", 10, MOAT_JSON_BAD_ESCAPE, "offset 6");
	refused_len(&plain, "{\"a\":\"\\", 7, MOAT_JSON_SYNTAX, "invalid JSON");
	/* what is valid still reads as itself */
	const char *valid = "{\"a\":\"\\uD83D\\uDE00\\u00E9\\/\\b\\f\\n\\r\\t\"}";
	cJSON *root = accepted_len(&plain, valid, strlen(valid));
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "a")->valuestring,
			    "\xf0\x9f\x98\x80\xc3\xa9/\b\f\n\r\t");
	cJSON_Delete(root);
	accepted(&plain, "{\"a\":\"\\udbff\\udfff \\uffff \\u0001\"}");
}

/* cJSON skips every byte up to 0x20 between tokens; RFC 8259 allows space, tab, LF, CR. */
static void test_whitespace(void **state)
{
	(void)state;
	static const struct refusal rows[] = {
		{"{\x01\"a\":1}", MOAT_JSON_SYNTAX, "invalid JSON (byte 0x01 at offset 1)"},
		{"{\"a\":\0371}", MOAT_JSON_SYNTAX, "byte 0x1f at offset 5"},
		{"{\"a\"\x0b:1}", MOAT_JSON_SYNTAX, "byte 0x0b at offset 4"},
		{"\x0c{\"a\":1}", MOAT_JSON_SYNTAX, "byte 0x0c at offset 0"},
		{"{\"a\":[1,\0102]}", MOAT_JSON_SYNTAX, "byte 0x08 at offset 8"},
		{"{\"a\":1}\x0c", MOAT_JSON_SYNTAX, "byte 0x0c at offset 7"},
		{"{\"a\":1\x1b}", MOAT_JSON_SYNTAX, "byte 0x1b at offset 6"},
	};
	refused_rows(&plain, ROWS(rows));
	accepted(&plain, " \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n[ 1 ,\t2\n]\r} \t\r\n");
}

static void test_numbers(void **state)
{
	(void)state;
	const char *bad[] = {"01", "-01", "1.",	   "-.5",  ".5",  "+1", "-",
			     "1e", "1e+", "1.2.3", "1ee2", "1-2", "00"};
	char doc[64];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(doc, sizeof(doc), "{\"n\":%s}", bad[i]);
		if (bad[i][0] == '.' || bad[i][0] == '+') {
			refused(&plain, doc, MOAT_JSON_SYNTAX, "invalid JSON"); /* not a number */
		} else {
			refused(&plain, doc, MOAT_JSON_BAD_NUMBER,
				"number at offset 5 is not in JSON number syntax");
		}
	}
	/* NaN and Infinity are no JSON */
	refused(&plain, "{\"n\":0x10}", MOAT_JSON_SYNTAX, "invalid JSON");
	refused(&plain, "{\"n\":NaN}", MOAT_JSON_SYNTAX, "invalid JSON");
	refused(&plain, "{\"n\":Infinity}", MOAT_JSON_SYNTAX, "invalid JSON");
	refused(&plain, "{\"n\":-Infinity}", MOAT_JSON_BAD_NUMBER, "number");

	const struct moat_json_limits uints = {.max_bytes = 256, .flags = MOAT_JSON_UINTS};
	accepted(&uints, "{\"n\":0,\"m\":9999999999999999,\"s\":\"-1.5e3 in text\"}");
	const char *not_uint[] = {"-1", "-0", "1.5", "1.0", "1e3", "1E3", "12345678901234567"};
	for (size_t i = 0; i < sizeof(not_uint) / sizeof(not_uint[0]); i++) {
		snprintf(doc, sizeof(doc), "{\"n\":%s}", not_uint[i]);
		refused(&uints, doc, MOAT_JSON_BAD_NUMBER, "number at offset 5");
	}
}

static void test_depth(void **state)
{
	(void)state;
	refused(&plain, "{\"a\":[[[[[[[[[1]]]]]]]]]}", MOAT_JSON_TOO_DEEP,
		"nested deeper than 8 levels");
	refused(&plain,
		"{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":{}}}}}}}}}}",
		MOAT_JSON_TOO_DEEP, "nested deeper");
	/* refused before cJSON recurses, even when never closed */
	char deep[201];
	memset(deep, '[', sizeof(deep) - 1);
	deep[0] = '{';
	deep[sizeof(deep) - 1] = '\0';
	refused(&plain, deep, MOAT_JSON_TOO_DEEP, "nested deeper");
	/* a smaller bound of the caller's */
	const struct moat_json_limits flat = {.max_bytes = 256, .max_depth = 0};
	accepted(&flat, "{\"a\":1}");
	refused(&flat, "{\"a\":[]}", MOAT_JSON_TOO_DEEP, "nested deeper than 0 levels");
	/* brackets inside strings are text */
	accepted(&flat, "{\"a\":\"[[[[{{{{\"}");
}

static void test_syntax_trailing_type(void **state)
{
	(void)state;
	static const struct refusal rows[] = {
		{"{", MOAT_JSON_SYNTAX, "invalid JSON"},
		{"{\"a\":1,}", MOAT_JSON_SYNTAX, "invalid JSON"},
		{"{'a':1}", MOAT_JSON_SYNTAX, "invalid JSON"},
		{"{\"a\":\"unterminated}", MOAT_JSON_SYNTAX, "invalid JSON"},
		{"{\"a\":\"\\x\"}", MOAT_JSON_BAD_ESCAPE, "invalid escape at offset 6"},
		{"\xef\xbb\xbf{}", MOAT_JSON_SYNTAX, "invalid JSON"}, /* a BOM */

		{"{} {}", MOAT_JSON_TRAILING, "data after the object"},
		{"{}x", MOAT_JSON_TRAILING, "data after the object"},
		{"{}\n}", MOAT_JSON_TRAILING, "data after the object"},

		{"[1]", MOAT_JSON_NOT_OBJECT, "not a JSON object"},
		{"\"a\"", MOAT_JSON_NOT_OBJECT, "not a JSON object"},
		{"42", MOAT_JSON_NOT_OBJECT, "not a JSON object"},
		{"null", MOAT_JSON_NOT_OBJECT, "not a JSON object"},
		{"true", MOAT_JSON_NOT_OBJECT, "not a JSON object"},
	};
	refused_rows(&plain, ROWS(rows));
}

static void test_duplicates(void **state)
{
	(void)state;
	struct moat_json_fault f;
	struct moat_err err;
	cJSON *root;

	static const struct refusal rows[] = {
		{"{\"a\":1,\"a\":2}", MOAT_JSON_DUPLICATE, "duplicate key \"a\""},
		{"{\"x\":{\"b\":1,\"c\":2,\"b\":3}}", MOAT_JSON_DUPLICATE, "duplicate key \"b\""},
		{"{\"x\":[{\"k\":1},{\"k\":1,\"k\":1}]}", MOAT_JSON_DUPLICATE,
		 "duplicate key \"k\""},
		/* keys compare after unescaping: "\u0061" is "a" */
		{"{\"a\":1,\"\\u0061\":2}", MOAT_JSON_DUPLICATE, "duplicate key \"a\""},
	};
	refused_rows(&plain, ROWS(rows));
	/* the key is kept raw in the fault, shown escaped in the message */
	assert_int_equal(moat_json_parse("doc", "{\"\\u001b[1m\":1,\"\\u001b[1m\":2}", 29, &plain,
					 &root, &f, &err),
			 MOAT_EINVAL);
	assert_string_equal(f.key, "\x1b[1m");
	assert_non_null(strstr(err.msg, "duplicate key \"?[1m\""));

	/* objects over the pairwise bound go through the hash table: first, last, middle keys */
	const struct moat_json_limits wide = {.max_bytes = 4096, .max_depth = 1};
	char doc[4096];
	size_t n = 0;
	n += (size_t)snprintf(doc + n, sizeof(doc) - n, "{");
	for (int i = 0; i < 100; i++) {
		n += (size_t)snprintf(doc + n, sizeof(doc) - n, "%s\"k%d\":%d", i ? "," : "", i, i);
	}
	snprintf(doc + n, sizeof(doc) - n, "}");
	accepted(&wide, doc);
	static const char *const again[] = {"k0", "k99", "k50"};
	for (size_t i = 0; i < sizeof(again) / sizeof(again[0]); i++) {
		char want[32];
		snprintf(doc + n, sizeof(doc) - n, ",\"%s\":0}", again[i]);
		snprintf(want, sizeof(want), "duplicate key \"%s\"", again[i]);
		refused(&wide, doc, MOAT_JSON_DUPLICATE, want);
	}
}

static void test_members(void **state)
{
	(void)state;
	static const char *const names[] = {"n", "s"};
	const cJSON *items[2];
	struct moat_err err;
	int64_t v = 0;
	const char *s = NULL;
	size_t len = 0;
	cJSON *root = accepted_len(&plain, "{\"s\":\"hi\",\"n\":3}", 16);

	assert_int_equal(moat_json_fields("doc", root, names, 2, items, &err), 0);
	assert_int_equal(moat_json_int("doc", "n", items[0], 0, 3, &v, &err), 0);
	assert_int_equal(v, 3);
	assert_int_equal(moat_json_int("doc", "n", items[0], 0, 2, &v, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "doc: 'n' is outside 0..2"));
	assert_int_equal(moat_json_int("doc", "s", items[1], 0, 2, &v, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "'s' is not a number"));
	assert_int_equal(moat_json_str("doc", "s", items[1], 2, &s, &len, &err), 0);
	assert_string_equal(s, "hi");
	assert_int_equal(len, 2);
	assert_int_equal(moat_json_str("doc", "s", items[1], 1, &s, &len, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "'s' is longer than 1 bytes"));
	assert_int_equal(moat_json_str("doc", "n", items[0], 9, &s, &len, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "'n' is not a string"));
	static const char *const three[] = {"n", "s", "t"};
	const cJSON *items3[3];
	assert_int_equal(moat_json_fields("doc", root, three, 3, items3, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "missing field 't'"));
	assert_int_equal(moat_json_fields("doc", root, names, 1, items, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "unknown field 's'"));
	cJSON_Delete(root);

	root = accepted_len(&plain, "{\"f\":1.5,\"e\":\"\"}", 16);
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "f");
	assert_int_equal(moat_json_int("doc", "f", f, 0, 9, &v, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "'f' is not a whole number"));
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "e");
	assert_int_equal(moat_json_str("doc", "e", e, 9, &s, &len, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "'e' is empty"));
	cJSON_Delete(root);
}

static void test_text_ok(void **state)
{
	(void)state;
	assert_true(moat_json_text_ok("", 0, true));
	assert_true(moat_json_text_ok("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, true));
	assert_false(moat_json_text_ok("a\tb", 3, false));
	assert_false(moat_json_text_ok("a\x7f", 2, false));
	assert_true(moat_json_text_ok("\xc2\x85", 2, false)); /* C1, allowed */
	assert_false(moat_json_text_ok("\xc2\x85", 2, true));
	assert_true(moat_json_text_ok("\xc2\xa0", 2, true)); /* the first after C1 */
	/* bidi overrides and isolates: only strict refuses them */
	assert_true(moat_json_text_ok("\xe2\x80\xae", 3, false));
	assert_false(moat_json_text_ok("\xe2\x80\xae", 3, true));
	assert_false(moat_json_text_ok("\xe2\x80\xaa", 3, true));
	assert_false(moat_json_text_ok("\xe2\x81\xa9", 3, true));
	assert_true(moat_json_text_ok("\xe2\x80\xaf", 3, true)); /* U+202F, a space */
	assert_false(moat_json_text_ok("\xe2\x82", 2, false));
	assert_false(moat_json_text_ok("\xc0\xaf", 2, false));
	assert_false(moat_json_text_ok("\xed\xa0\x80", 3, false));
	assert_false(moat_json_text_ok("\xf4\x90\x80\x80", 4, false));
	assert_false(moat_json_text_ok("\xff", 1, false));
}

/* The quick pass decides text (true) and the reader accepts it too. */
static void quick_yes(const struct moat_json_limits *lim, const char *text)
{
	cJSON *root = NULL;
	assert_true(moat_json_object_quick(text, strlen(text), lim, NULL));
	assert_int_equal(moat_json_parse("t", text, strlen(text), lim, &root, NULL, NULL), 0);
	cJSON_Delete(root);
}

/* The quick pass leaves text to the reader (false), whatever the reader then says. */
static void quick_no(const struct moat_json_limits *lim, const char *text, size_t len)
{
	assert_false(moat_json_object_quick(text, len, lim, NULL));
}
#define QUICK_NO(lim, s) quick_no((lim), (s), sizeof(s) - 1)

static void test_quick(void **state)
{
	(void)state;
	const struct moat_json_limits lim = {.max_bytes = 4096, .max_depth = 8};
	const struct moat_json_limits shallow = {.max_bytes = 4096, .max_depth = 1};
	const struct moat_json_limits small = {.max_bytes = 8, .max_depth = 8};
	const struct moat_json_limits ascii = {.max_bytes = 4096,
					       .max_depth = 8,
					       .flags = MOAT_JSON_ASCII};

	quick_yes(&lim, "{}");
	quick_yes(&lim,
		  " {\"a\":[1,-0.5e+3,true,false,null,\"x\\n\\u00e9\xc3\xa9\"],\"o\":{}}\r\n");
	quick_yes(&lim, "{\"a\":{\"a\":{\"a\":1}},\"b\":[{\"a\":1},{\"a\":2}]}");
	quick_yes(&shallow, "{\"a\":{\"b\":1}}");
	/* left to the reader: what it refuses ... */
	quick_no(&lim, "", 0);
	QUICK_NO(&small, "{\"ab\":12}");
	QUICK_NO(&lim, "[1]");
	QUICK_NO(&lim, "{\"a\":1,\"a\":2}");
	QUICK_NO(&lim, "{\"a\":[{\"k\":1,\"k\":2}]}");
	QUICK_NO(&lim, "{\"a\":\"x\\u0000\"}");
	QUICK_NO(&lim, "{\"a\":\"\\uZZZZ\"}");
	QUICK_NO(&lim, "{\"a\":\"\\x\"}");
	QUICK_NO(&lim, "{\"a\":\"\x01\"}");
	QUICK_NO(&lim, "{\"a\":\"\xc3\x28\"}");
	QUICK_NO(&lim, "{\"a\":01}");
	QUICK_NO(&lim, "{\"a\":1.}");
	QUICK_NO(&lim, "{\"a\":tru}");
	QUICK_NO(&lim, "{\"a\":1,}");
	QUICK_NO(&lim, "{\"a\":1} x");
	QUICK_NO(&lim, "{\"a\":1}\x00");
	QUICK_NO(&lim, "\xef\xbb\xbf{}");
	QUICK_NO(&lim, "{\"a\":\"abc");
	QUICK_NO(&shallow, "{\"a\":{\"b\":{}}}");
	/* ... and what the pass does not read itself, though the reader may accept it */
	QUICK_NO(&ascii, "{}");
	QUICK_NO(&lim, "{\"\\u0061\":1}");
	QUICK_NO(&lim, "{\"a\":\"\\ud83d\\ude00\"}");
	QUICK_NO(&lim, "{\"a\":123456789012345678901234567890123}");
	QUICK_NO(&lim, "{\x01\"a\":1}");
	char many[512] = "{";
	for (int i = 0; i < MOAT_JSON_QUICK_KEYS + 1; i++) {
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s\"k%d\":1",
			 i ? "," : "", i);
	}
	snprintf(many + strlen(many), sizeof(many) - strlen(many), "}");
	quick_no(&lim, many, strlen(many));

	/* the field: found, a string without escapes, its bytes */
	struct moat_json_quick_field f = {.key = "device_id"};
	const char *t = "{\"x\":{\"device_id\":\"no\"},\"device_id\":\"dev-1\"}";
	assert_true(moat_json_object_quick(t, strlen(t), &lim, &f));
	assert_true(f.found && f.is_string);
	assert_int_equal(f.value_len, 5);
	assert_memory_equal(f.value, "dev-1", 5);
	t = "{\"device_id\":7}";
	assert_true(moat_json_object_quick(t, strlen(t), &lim, &f));
	assert_true(f.found && !f.is_string);
	t = "{\"x\":{\"device_id\":\"no\"}}";
	assert_true(moat_json_object_quick(t, strlen(t), &lim, &f));
	assert_false(f.found);
	t = "{\"device_id\":\"dev-\\u0031\"}"; /* escaped: the reader compares */
	assert_false(moat_json_object_quick(t, strlen(t), &lim, &f));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_bytes),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_whitespace),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_syntax_trailing_type),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_members),
		cmocka_unit_test(test_text_ok),
		cmocka_unit_test(test_quick),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
