/* fuzz_http.c: libFuzzer harness for moatd's request parsing (src/server/http_parse.c).
 *
 * Input: byte 0 picks the parser (even: request path, odd: Range header), bytes 1..8 the
 * image size for Range (big-endian, 0 mapped to 1), the rest the text (NUL-terminated
 * here, since MHD hands over C strings). A path is decoded first, as moatd's unescape
 * callback does. Invariants besides crashes: the decoder never lengthens the text nor makes
 * a NUL byte (MHD's own turns %00 into the end of the string), a decoded path holding %00
 * is refused, a download route round-trips to the same lower-case digest, and a
 * satisfiable range lies inside the image.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TEXT_MAX 1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[TEXT_MAX + 1];
	if (size < 9 || size - 9 > TEXT_MAX) {
		return 0;
	}
	uint64_t img = 0;
	for (int i = 1; i <= 8; i++) {
		img = (img << 8) | data[i];
	}
	img %= MOAT_FW_IMAGE_MAX_BYTES;
	if (img == 0) {
		img = 1;
	}
	memcpy(text, data + 9, size - 9);
	text[size - 9] = '\0';

	if ((data[0] & 1) == 0) {
		size_t raw = strlen(text);
		size_t n = moat_http_unescape(text);
		if (n > raw || n != strlen(text)) {
			abort();
		}
		uint8_t sha[MOAT_SHA256_BYTES];
		enum moat_http_route route = moat_http_route_parse(text, sha);
		if (strstr(text, "%00") && n <= MOAT_HTTP_URL_MAX_LEN && route != MOAT_ROUTE_BAD) {
			abort();
		}
		if (route == MOAT_ROUTE_DOWNLOAD) {
			char hex[MOAT_SHA256_HEX_LEN + 1];
			moat_hex_encode(sha, sizeof(sha), hex);
			size_t len = strlen(text);
			if (len < MOAT_SHA256_HEX_LEN ||
			    strcmp(text + len - MOAT_SHA256_HEX_LEN, hex) != 0) {
				abort();
			}
		}
		return 0;
	}
	uint64_t start = 0;
	uint64_t len = 0;
	enum moat_range_result r = moat_http_range_parse(text, img, &start, &len);
	if (r == MOAT_RANGE_OK && (len == 0 || start >= img || len > img - start)) {
		abort();
	}
	if (r != MOAT_RANGE_OK && (start != 0 || len != img)) {
		abort();
	}
	return 0;
}
