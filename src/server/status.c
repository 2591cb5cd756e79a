/* status.c: is moatd serving (server.h): where to find it and one verified TLS handshake,
 * for `moat up` (which waits until moatd accepts before it says the deployment is up) and
 * `moat status`.
 *
 * The probe presents no client certificate: moatd's EST paths take such connections, so
 * the handshake completes and moatd records no refused client for it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/broker.h"
#include "moat/deploy.h"
#include "moat/fsutil.h"
#include "moat/server.h"
#include "moat/timeutil.h"

#define PID_FILE_MAX_BYTES 64

int moat_server_endpoint_get(const struct moat_deploy *d, const char *verify_name,
			     struct moat_server_endpoint *out, struct moat_err *err)
{
	int rc;
	memset(out, 0, sizeof(*out));
	const char *listen = moat_config_get(moat_deploy_config(d), "server", "listen");
	if (!listen) {
		listen = "127.0.0.1";
	}
	unsigned char a[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, listen, a) == 1) {
		/* moatd on every IPv4 address answers on loopback too */
		listen = strcmp(listen, "0.0.0.0") == 0 ? "127.0.0.1" : listen;
	} else if (inet_pton(AF_INET6, listen, a) == 1) {
		listen = strcmp(listen, "::") == 0 ? "::1" : listen;
	} else {
		return moat_err_set(err, MOAT_EINVAL,
				    "[server] listen: '%.64s' is not a numeric IP address", listen);
	}
	snprintf(out->addr, sizeof(out->addr), "%s", listen);
	snprintf(out->verify_name, sizeof(out->verify_name), "%s", verify_name);
	out->port = moat_deploy_settings(d)->server_port;
	if ((rc = moat_deploy_path(d, out->cafile, sizeof(out->cafile), "pki/ca.crt", err)) != 0) {
		return rc;
	}
	return 0;
}

int moat_server_probe(const struct moat_server_endpoint *e, int timeout_ms, struct moat_err *err)
{
	return moat_broker_probe(e->addr, e->port, e->cafile, e->verify_name, timeout_ms, err);
}

pid_t moat_server_pid(const char *dir)
{
	char path[PATH_MAX];
	char *text = NULL;
	size_t len = 0;
	int64_t v = 0;
	if (moat_path_join(path, sizeof(path), NULL, "%s/%s", dir, MOAT_MOATD_PID_FILE) != 0 ||
	    moat_fs_read_all(path, PID_FILE_MAX_BYTES, &text, &len, NULL) != 0) {
		return 0;
	}
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ')) {
		text[--len] = '\0';
	}
	pid_t pid = 0;
	/* EPERM: alive, as another account (moatd's own, seen by a non-root moat status) */
	if (moat_int_parse(text, 2, INT32_MAX, &v, NULL) == 0 &&
	    (kill((pid_t)v, 0) == 0 || errno == EPERM)) {
		pid = (pid_t)v;
	}
	free(text);
	return pid;
}
