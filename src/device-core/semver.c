/* semver.c: semantic versions (semver.org 2.0): validation and precedence, so "newer than
 * what runs" means the same thing on every device, in moat-boot and in `moat fw verify`
 * (src/core/semver.c delegates here). Numbers are compared as digit strings, so no
 * identifier can overflow. Pure. */
#include <stdbool.h>
#include <string.h>

#include "moat_device.h"

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_ident_char(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

/* A numeric identifier: digits, no leading zero unless it is "0". Returns its length. */
static size_t numeric_len(const char *p)
{
	size_t n = 0;
	while (is_digit(p[n])) {
		n++;
	}
	if (n > 1 && p[0] == '0') {
		return 0;
	}
	return n;
}

/* Dot-separated non-empty identifiers up to '+' or the end. prerelease: numeric ones have
 * no leading zeros. Returns the length consumed, 0 when invalid. */
static size_t idents_len(const char *p, bool prerelease)
{
	size_t i = 0;
	for (;;) {
		size_t start = i;
		bool all_digits = true;
		while (is_ident_char(p[i])) {
			all_digits = all_digits && is_digit(p[i]);
			i++;
		}
		if (i == start) {
			return 0;
		}
		if (prerelease && all_digits && i - start > 1 && p[start] == '0') {
			return 0;
		}
		if (p[i] != '.') {
			return i;
		}
		i++;
	}
}

bool mdev_semver_valid(const char *v)
{
	if (v == NULL || *v == '\0') {
		return false;
	}
	size_t len = 0;
	while (len <= MDEV_FW_VERSION_MAX_LEN && v[len] != '\0') {
		len++;
	}
	if (len > MDEV_FW_VERSION_MAX_LEN) {
		return false;
	}
	const char *p = v;
	for (int part = 0; part < 3; part++) {
		size_t n = numeric_len(p);
		if (n == 0) {
			return false;
		}
		p += n;
		if (part < 2) {
			if (*p != '.') {
				return false;
			}
			p++;
		}
	}
	if (*p == '-') {
		size_t n = idents_len(p + 1, true);
		if (n == 0) {
			return false;
		}
		p += 1 + n;
	}
	if (*p == '+') {
		size_t n = idents_len(p + 1, false);
		if (n == 0) {
			return false;
		}
		p += 1 + n;
	}
	return *p == '\0';
}

/* Compares two digit strings without leading zeros by value. */
static int cmp_numeric(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen) {
		return alen < blen ? -1 : 1;
	}
	int c = memcmp(a, b, alen);
	return (c > 0) - (c < 0);
}

static size_t span_until(const char *p, const char *stops)
{
	size_t n = 0;
	while (p[n] && !strchr(stops, p[n])) {
		n++;
	}
	return n;
}

static bool all_digits(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(p[i])) {
			return false;
		}
	}
	return true;
}

/* Pre-release precedence (semver 2.0 §11.4): identifier by identifier. */
static int cmp_prerelease(const char *a, const char *b)
{
	for (;;) {
		size_t alen = span_until(a, ".+");
		size_t blen = span_until(b, ".+");
		bool anum = all_digits(a, alen);
		bool bnum = all_digits(b, blen);
		int c;
		if (anum && bnum) {
			c = cmp_numeric(a, alen, b, blen);
		} else if (anum != bnum) {
			c = anum ? -1 : 1; /* numeric identifiers sort first */
		} else {
			size_t m = alen < blen ? alen : blen;
			c = memcmp(a, b, m);
			c = (c > 0) - (c < 0);
			if (c == 0 && alen != blen) {
				c = alen < blen ? -1 : 1;
			}
		}
		if (c != 0) {
			return c;
		}
		a += alen;
		b += blen;
		bool amore = *a == '.';
		bool bmore = *b == '.';
		if (!amore || !bmore) {
			/* A larger set of identifiers has higher precedence when all before are
			 * equal. */
			return amore - bmore;
		}
		a++;
		b++;
	}
}

int mdev_semver_compare(const char *a, const char *b, int *out_cmp)
{
	if (!mdev_semver_valid(a) || !mdev_semver_valid(b)) {
		return -1;
	}
	for (int part = 0; part < 3; part++) {
		size_t alen = span_until(a, ".-+");
		size_t blen = span_until(b, ".-+");
		int c = cmp_numeric(a, alen, b, blen);
		if (c != 0) {
			*out_cmp = c;
			return 0;
		}
		a += alen;
		b += blen;
		if (part < 2) {
			a++;
			b++;
		}
	}
	bool apre = *a == '-';
	bool bpre = *b == '-';
	if (apre && bpre) {
		*out_cmp = cmp_prerelease(a + 1, b + 1);
	} else {
		/* A pre-release precedes its release. */
		*out_cmp = (int)bpre - (int)apre;
	}
	return 0;
}
