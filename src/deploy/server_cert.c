/* server_cert.c: reissuing pki/server.crt and pki/server.key (moat_deploy_server_cert), the
 * certificate the broker and moatd present, for the names of moat.conf's [broker] hosts
 * and its [client] host, and adding names there (the hosts line of moat.conf rewritten in place,
 * comments and everything else kept).
 *
 * Order: the new key and certificate are issued in memory and moat.conf's new text is
 * parsed back before anything is written; then server.key, server.crt and moat.conf are each
 * replaced atomically, in that order. An interruption between them leaves a key without its
 * certificate (a pair the broker and moatd cannot load: untested what Mosquitto does then) or
 * a host in moat.conf the certificate lacks; running the command again repairs both. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deploy_internal.h"
#include "moat/fsutil.h"
#include "moat/timeutil.h"

/* inih's longest line is 198 bytes (config.h): the hosts line wraps before that. */
#define HOSTS_LINE_WRAP 160

/* The hosts value "a, b, c" as moat.conf lines: "hosts = a, b," then indented continuation
 * lines, each shorter than inih's limit. The caller frees *out. */
static int hosts_lines(char hosts[][MOAT_HOST_MAX_LEN + 1], size_t count, char **out,
		       struct moat_err *err)
{
	size_t cap = 16 + count * (MOAT_HOST_MAX_LEN + 8);
	char *text = malloc(cap);
	if (!text) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	size_t used = (size_t)snprintf(text, cap, "hosts =");
	size_t line_start = 0;
	for (size_t i = 0; i < count; i++) {
		size_t item = strlen(hosts[i]) + 2; /* " name," */
		if (i > 0 && used - line_start + item > HOSTS_LINE_WRAP) {
			line_start = used + 1;
			used += (size_t)snprintf(text + used, cap - used, "\n ");
		}
		used += (size_t)snprintf(text + used, cap - used, " %s%s", hosts[i],
					 i + 1 < count ? "," : "");
	}
	*out = text;
	return 0;
}

int deploy_conf_replace_key(const char *text, size_t len, int line, const char *lines, char **out,
			    size_t *out_len, struct moat_err *err)
{
	/* find the start of line `line` (1-based) */
	size_t pos = 0;
	for (int l = 1; l < line; l++) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		if (!nl) {
			return moat_err_set(err, MOAT_EINVAL, "moat.conf: no line %d", line);
		}
		pos = (size_t)(nl - text) + 1;
	}
	if (line < 1 || pos >= len) {
		return moat_err_set(err, MOAT_EINVAL, "moat.conf: no line %d", line);
	}
	/* the key's line, then its continuation lines (indented and not blank: config.h) */
	size_t end = pos;
	do {
		const char *nl = memchr(text + end, '\n', len - end);
		end = nl ? (size_t)(nl - text) + 1 : len;
	} while (end < len && (text[end] == ' ' || text[end] == '\t') &&
		 strspn(text + end, " \t") < strcspn(text + end, "\r\n"));
	size_t add = strlen(lines);
	size_t n = pos + add + 1 + (len - end);
	char *o = malloc(n + 1);
	if (!o) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	memcpy(o, text, pos);
	memcpy(o + pos, lines, add);
	o[pos + add] = '\n';
	memcpy(o + pos + add + 1, text + end, len - end);
	o[n] = '\0';
	*out = o;
	*out_len = n;
	return 0;
}

/* Is host among the first count of hosts? DNS names compare without case. */
static bool host_listed(char hosts[][MOAT_HOST_MAX_LEN + 1], size_t count, const char *host)
{
	for (size_t i = 0; i < count; i++) {
		if (strcasecmp(hosts[i], host) == 0) {
			return true;
		}
	}
	return false;
}

/* moat.conf with its hosts line listing hosts, checked by parsing it back. */
static int new_conf_text(struct moat_deploy *d, char hosts[][MOAT_HOST_MAX_LEN + 1], size_t count,
			 char **out, size_t *out_len, struct moat_err *err)
{
	const struct moat_config_entry *e = moat_config_find(d->cfg, "broker", "hosts");
	char path[PATH_MAX];
	char *old = NULL;
	char *lines = NULL;
	size_t old_len = 0;
	struct moat_config *cfg = NULL;
	struct moat_deploy_conf conf;
	int rc;
	if (!e) {
		return moat_err_set(err, MOAT_EINVAL, "moat.conf: [broker] hosts is missing");
	}
	if ((rc = moat_deploy_path(d, path, sizeof(path), "moat.conf", err)) != 0 ||
	    (rc = moat_fs_read_all(path, MOAT_FILE_MAX_BYTES, &old, &old_len, err)) != 0 ||
	    (rc = hosts_lines(hosts, count, &lines, err)) != 0 ||
	    (rc = deploy_conf_replace_key(old, old_len, e->line, lines, out, out_len, err)) != 0) {
		goto out;
	}
	/* what will be written must read back as these hosts, and the rest unchanged */
	if ((rc = moat_config_parse(path, *out, *out_len, &cfg, err)) != 0 ||
	    (rc = deploy_conf_parse(cfg, &conf, err)) != 0) {
		moat_err_prefix(err, "moat.conf with the new hosts");
		goto out;
	}
	if (conf.broker_host_count != count) {
		rc = moat_err_set(err, MOAT_EINVAL, "moat.conf: the hosts line did not read back");
	}
	for (size_t i = 0; rc == 0 && i < count; i++) {
		if (strcmp(conf.broker_hosts[i], hosts[i]) != 0) {
			rc = moat_err_set(err, MOAT_EINVAL,
					  "moat.conf: the hosts line did not read back");
		}
	}
out:
	if (rc != 0) {
		free(*out);
		*out = NULL;
	}
	moat_config_free(cfg);
	free(lines);
	free(old);
	return rc;
}

int moat_deploy_server_cert(struct moat_deploy *d, const char *const *add_hosts, size_t add_count,
			    int64_t days, struct moat_server_cert *out, struct moat_err *err)
{
	char hosts[MOAT_HOSTS_MAX][MOAT_HOST_MAX_LEN + 1];
	size_t count = d->conf.broker_host_count;
	struct moat_issued issued = {0};
	char *conf_text = NULL;
	size_t conf_len = 0;
	int rc;
	const struct moat_ca *signer = NULL;
	const char *chain = NULL;
	size_t chain_len = 0;
	char *cert_pem = NULL;
	if ((rc = moat_deploy_signer(d, &signer, err)) != 0 ||
	    (rc = deploy_signer_chain(d, &chain, &chain_len, err)) != 0) {
		return rc;
	}
	if (days < 0 || days > 36500) {
		return moat_err_set(err, MOAT_EINVAL, "validity must be 1 to 36500 days");
	}
	memcpy(hosts, d->conf.broker_hosts, sizeof(hosts));
	for (size_t i = 0; i < add_count; i++) {
		if ((rc = deploy_host_check(add_hosts[i], err)) != 0) {
			moat_err_prefix(err, "--add-host");
			return rc;
		}
		if (host_listed(hosts, count, add_hosts[i])) {
			return moat_err_set(err, MOAT_EEXIST,
					    "--add-host: '%s' is already a name of the server "
					    "certificate ([broker] hosts)",
					    add_hosts[i]);
		}
		if (count == MOAT_HOSTS_MAX) {
			return moat_err_set(err, MOAT_EINVAL, "--add-host: more than %d hosts",
					    MOAT_HOSTS_MAX);
		}
		snprintf(hosts[count++], sizeof(hosts[0]), "%s", add_hosts[i]);
	}
	/* every host, and the [client] host moat's own tools connect by */
	const char *dns[MOAT_HOSTS_MAX + 1];
	const char *ips[MOAT_HOSTS_MAX + 1];
	size_t ndns = 0;
	size_t nips = 0;
	for (size_t i = 0; i < count; i++) {
		if (deploy_host_is_ip(hosts[i])) {
			ips[nips++] = hosts[i];
		} else {
			dns[ndns++] = hosts[i];
		}
	}
	const char *cn = ndns ? dns[0] : ips[0];
	const char *client = d->conf.client_host;
	if (client[0] && !host_listed(hosts, count, client)) {
		if (deploy_host_is_ip(client)) {
			ips[nips++] = client;
		} else {
			dns[ndns++] = client;
		}
	}
	int64_t now = moat_time_now();
	struct moat_issue_req req = {
		.cn = cn,
		.kind = MOAT_CERT_SERVER,
		.key_type = d->conf.key_type,
		.not_before = now - 300, /* tolerate small clock skew on devices */
		.not_after = now + (days ? days : d->conf.server_days) * 86400,
		.san_dns = dns,
		.san_dns_count = ndns,
		.san_ip = ips,
		.san_ip_count = nips,
	};
	uint8_t serial[MOAT_SERIAL_BYTES];
	char serial_hex[MOAT_SERIAL_HEX_LEN];
	char p[PATH_MAX];
	if ((rc = moat_pki_random_serial(serial, serial_hex, err)) != 0 ||
	    (rc = moat_pki_issue(signer, &req, serial, &issued, err)) != 0 ||
	    (add_count && (rc = new_conf_text(d, hosts, count, &conf_text, &conf_len, err)) != 0)) {
		goto out;
	}
	/* the leaf then the issuing CA, so clients trusting only the root build the path */
	size_t cert_len = issued.cert_pem_len + chain_len;
	if (!(cert_pem = malloc(cert_len + 1))) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(cert_pem, issued.cert_pem, issued.cert_pem_len);
	if (chain_len) {
		memcpy(cert_pem + issued.cert_pem_len, chain, chain_len);
	}
	cert_pem[cert_len] = '\0';
	if ((rc = moat_deploy_path(d, p, sizeof(p), "pki/server.key", err)) != 0 ||
	    (rc = moat_fs_write_atomic(p, issued.key_pem, issued.key_pem_len, 0600, err)) != 0 ||
	    (rc = moat_deploy_path(d, p, sizeof(p), "pki/server.crt", err)) != 0 ||
	    (rc = moat_fs_write_atomic(p, cert_pem, cert_len, 0644, err)) != 0) {
		goto out;
	}
	if (add_count) {
		struct moat_config *cfg = NULL;
		if ((rc = moat_deploy_path(d, p, sizeof(p), "moat.conf", err)) != 0 ||
		    (rc = moat_fs_write_atomic(p, conf_text, conf_len, 0644, err)) != 0 ||
		    (rc = moat_config_parse(p, conf_text, conf_len, &cfg, err)) != 0) {
			goto out;
		}
		/* the open deployment reads the new moat.conf from now on */
		moat_config_free(d->cfg);
		d->cfg = cfg;
		if ((rc = deploy_conf_parse(d->cfg, &d->conf, err)) != 0) {
			goto out;
		}
	}
	if (out) {
		memset(out, 0, sizeof(*out));
		snprintf(out->serial_hex, sizeof(out->serial_hex), "%s", issued.serial_hex);
		out->not_after = issued.not_after;
		out->host_count = count;
		out->ip_added = false;
		for (size_t i = 0; i < add_count; i++) {
			out->ip_added |= deploy_host_is_ip(add_hosts[i]);
		}
	}
out:
	moat_pki_issued_free(&issued);
	free(cert_pem);
	free(conf_text);
	return rc;
}
