/* url.c: the collector and webhook URLs of [monitor]: tcp://, tls://, https:// with a
 * host name or address and a port; nothing else (no user info, no fragment, no spaces). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "moat/monitor_export.h"

static bool host_name_ok(const char *h, size_t n)
{
	if (n == 0 || n > MOAT_EXPORT_HOST_MAX_LEN || h[0] == '.' || h[0] == '-' ||
	    h[n - 1] == '.' || h[n - 1] == '-') {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		char c = h[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '.';
		if (!ok || (c == '.' && i + 1 < n && h[i + 1] == '.')) {
			return false;
		}
	}
	return true;
}

static int parse_port(const char *s, size_t n, int *out)
{
	if (n == 0 || n > 5) {
		return -1;
	}
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return -1;
		}
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > 65535) {
		return -1;
	}
	*out = v;
	return 0;
}

int moat_export_url_parse(const char *s, struct moat_export_url *out, struct moat_err *err)
{
	struct moat_export_url u;
	memset(&u, 0, sizeof(u));
	memset(out, 0, sizeof(*out));
	if (!s) {
		return moat_err_set(err, MOAT_EINVAL, "URL missing");
	}
	size_t len = strnlen(s, MOAT_EXPORT_URL_MAX_LEN + 1);
	if (len > MOAT_EXPORT_URL_MAX_LEN) {
		return moat_err_set(err, MOAT_EINVAL, "URL longer than %d bytes",
				    MOAT_EXPORT_URL_MAX_LEN);
	}
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
			return moat_err_set(err, MOAT_EINVAL,
					    "URL: a space, control or non-ASCII byte");
		}
	}
	const char *p;
	if (strncmp(s, "tcp://", 6) == 0) {
		u.scheme = MOAT_EXPORT_TCP;
		p = s + 6;
	} else if (strncmp(s, "tls://", 6) == 0) {
		u.scheme = MOAT_EXPORT_TLS;
		p = s + 6;
	} else if (strncmp(s, "https://", 8) == 0) {
		u.scheme = MOAT_EXPORT_HTTPS;
		p = s + 8;
	} else {
		return moat_err_set(err, MOAT_EINVAL,
				    "URL: scheme must be tcp://, tls:// or https://");
	}
	if (strchr(p, '#')) {
		return moat_err_set(err, MOAT_EINVAL, "URL: a fragment (#) is not allowed");
	}
	size_t auth_len = strcspn(p, "/?");
	const char *rest = p + auth_len;
	if (memchr(p, '@', auth_len)) {
		return moat_err_set(err, MOAT_EINVAL, "URL: user information (@) is not allowed");
	}
	const char *host = p;
	size_t host_len;
	const char *port = NULL;
	size_t port_len = 0;
	if (auth_len > 0 && p[0] == '[') {
		const char *close = memchr(p, ']', auth_len);
		if (!close) {
			return moat_err_set(err, MOAT_EINVAL, "URL: '[' without ']'");
		}
		host = p + 1;
		host_len = (size_t)(close - host);
		const char *after = close + 1;
		if (after < p + auth_len) {
			if (*after != ':') {
				return moat_err_set(err, MOAT_EINVAL, "URL: junk after ']'");
			}
			port = after + 1;
			port_len = (size_t)(p + auth_len - port);
		}
		char tmp[INET6_ADDRSTRLEN];
		struct in6_addr a6;
		if (host_len == 0 || host_len >= sizeof(tmp)) {
			return moat_err_set(err, MOAT_EINVAL, "URL: bad IPv6 address");
		}
		memcpy(tmp, host, host_len);
		tmp[host_len] = '\0';
		if (inet_pton(AF_INET6, tmp, &a6) != 1) {
			return moat_err_set(err, MOAT_EINVAL, "URL: bad IPv6 address");
		}
		u.host_is_ip = true;
	} else {
		const char *colon = memchr(p, ':', auth_len);
		host_len = colon ? (size_t)(colon - p) : auth_len;
		if (colon) {
			port = colon + 1;
			port_len = (size_t)(p + auth_len - port);
		}
		if (!host_name_ok(host, host_len)) {
			return moat_err_set(err, MOAT_EINVAL, "URL: bad host name");
		}
		char tmp[MOAT_EXPORT_HOST_MAX_LEN + 1];
		struct in_addr a4;
		memcpy(tmp, host, host_len);
		tmp[host_len] = '\0';
		u.host_is_ip = inet_pton(AF_INET, tmp, &a4) == 1;
	}
	memcpy(u.host, host, host_len);
	u.host[host_len] = '\0';
	if (port) {
		if (parse_port(port, port_len, &u.port) != 0) {
			return moat_err_set(err, MOAT_EINVAL, "URL: port must be 1..65535");
		}
	} else if (u.scheme == MOAT_EXPORT_HTTPS) {
		u.port = 443;
	} else {
		return moat_err_set(err, MOAT_EINVAL,
				    "URL: a port is required for tcp:// and tls://");
	}
	if (u.scheme != MOAT_EXPORT_HTTPS) {
		if (*rest && strcmp(rest, "/") != 0) {
			return moat_err_set(err, MOAT_EINVAL,
					    "URL: tcp:// and tls:// take no path or query");
		}
	} else if (!*rest) {
		snprintf(u.path, sizeof(u.path), "/");
	} else if (*rest == '?') {
		snprintf(u.path, sizeof(u.path), "/%s", rest);
	} else {
		snprintf(u.path, sizeof(u.path), "%s", rest);
	}
	*out = u;
	return 0;
}
