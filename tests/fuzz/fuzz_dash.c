/* fuzz_dash.c: libFuzzer harness for the dashboard's parsers (src/server/dash_parse.c).
 *
 * Input: byte 0 picks the parser (even: Cookie header, odd: urlencoded form), the rest is
 * the text (NUL-terminated for the Cookie header, as MHD hands it over; the form is given
 * as bytes). Invariants besides crashes: a value found fits its buffer, holds no control
 * byte and, for the form, no NUL; the token and value checks agree with their definition.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/dashboard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TEXT_MAX 8192

static void no_control(const char *v)
{
	for (const char *p = v; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size - 1 > TEXT_MAX) {
		return 0;
	}
	char text[TEXT_MAX + 1];
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	char out[MOAT_DASH_TOKEN_HEX_LEN + 2];
	if (data[0] % 2 == 0) {
		if (moat_dash_cookie_get(text, MOAT_DASH_COOKIE, out, sizeof(out)) == 0) {
			if (strlen(out) >= sizeof(out)) {
				abort();
			}
			no_control(out);
			if (moat_dash_token_ok(out) && strlen(out) != MOAT_DASH_TOKEN_HEX_LEN) {
				abort();
			}
		}
	} else {
		char v[MOAT_DASH_FIELD_MAX_LEN + 1];
		const char *names[] = {MOAT_DASH_CSRF_FIELD, "action", "reason", "confirm"};
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			if (moat_dash_form_get((const char *)data + 1, size - 1, names[i], v,
					       sizeof(v)) == 0) {
				no_control(v);
				if (!moat_dash_value_ok(v) &&
				    strlen(v) <= MOAT_DASH_FIELD_MAX_LEN) {
					/* only non-ASCII bytes make an accepted value fail the
					 * check */
					bool high = false;
					for (const char *p = v; *p; p++) {
						high |= (unsigned char)*p > 0x7e;
					}
					if (!high) {
						abort();
					}
				}
			}
		}
		(void)moat_dash_window_ms(text);
	}
	return 0;
}
