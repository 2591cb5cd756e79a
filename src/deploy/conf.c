/* conf.c: the core sections of moat.conf ([deployment], [broker] hosts and port, [server]
 * port, [pki]) parsed into struct moat_deploy_conf, and the host name and address rules
 * that both moat.conf and `moat init --broker-host` follow. Reads a loaded config only: no
 * files, no registry. Other modules read their own sections from the same config. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "deploy_internal.h"
#include "moat/pkcs11.h"
#include "moat/registry.h"
#include "moat/timeutil.h"

static const char *const known_sections[] = {
	"deployment", "broker",	 "server", "pki",   "network", "firmware", "policy",   "plugin",
	"agent",      "monitor", "sim",	   "guard", "est",     "client",   "registry", NULL,
};

/* Sections moat.conf may hold that no module reads yet: a key there would be ignored
 * silently, so it is refused. */
static const char *const reserved_sections[] = {"firmware", "plugin", "agent", "sim", NULL};

int moat_deploy_conf_load(const struct moat_config *cfg, struct moat_deploy_conf *out,
			  struct moat_err *err)
{
	return deploy_conf_parse(cfg, out, err);
}

int deploy_conf_parse(const struct moat_config *cfg, struct moat_deploy_conf *conf,
		      struct moat_err *err)
{
	static const char *const no_keys[] = {NULL};
	static const char *const deployment_keys[] = {"format", "name", NULL};
	static const char *const pki_keys[] = {"key_type",
					       "ca_days",
					       "identity_days",
					       "server_days",
					       "crl_days",
					       "crl_validity",
					       "pkcs11_module",
					       "issuer_pkcs11_uri",
					       "issuer_pin_file",
					       "expiry_warning",
					       NULL};
	int rc;
	memset(conf, 0, sizeof(*conf));
	if ((rc = moat_config_check_sections(cfg, known_sections, err)) != 0 ||
	    (rc = moat_config_check_keys(cfg, "deployment", deployment_keys, err)) != 0 ||
	    (rc = moat_config_check_keys(cfg, "pki", pki_keys, err)) != 0) {
		return rc;
	}
	for (size_t i = 0; reserved_sections[i]; i++) {
		if ((rc = moat_config_check_keys(cfg, reserved_sections[i], no_keys, err)) != 0) {
			return rc;
		}
	}
	const char *format = moat_config_get(cfg, "deployment", "format");
	if (!format || strcmp(format, MOAT_CONF_FORMAT) != 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "%s: not a moat deployment ([deployment] format = %s missing)",
				    cfg->path, MOAT_CONF_FORMAT);
	}
	const char *name = moat_config_get(cfg, "deployment", "name");
	if ((rc = moat_identity_name_check(name, err)) != 0) {
		moat_err_prefix(err, "%s: [deployment] name", cfg->path);
		return rc;
	}
	snprintf(conf->name, sizeof(conf->name), "%s", name);

	const char *hosts = moat_config_get(cfg, "broker", "hosts");
	char **items = NULL;
	size_t count = 0;
	if (!hosts) {
		return moat_err_set(err, MOAT_EINVAL, "%s: [broker] hosts is missing", cfg->path);
	}
	if ((rc = moat_config_split_list(hosts, &items, &count, err)) != 0) {
		moat_err_prefix(err, "%s: [broker] hosts", cfg->path);
		return rc;
	}
	if (count > MOAT_HOSTS_MAX) {
		moat_config_list_free(items, count);
		return moat_err_set(err, MOAT_EINVAL, "%s: [broker] hosts: more than %d", cfg->path,
				    MOAT_HOSTS_MAX);
	}
	for (size_t i = 0; i < count; i++) {
		if ((rc = deploy_host_check(items[i], err)) != 0) {
			moat_config_list_free(items, count);
			moat_err_prefix(err, "%s: [broker] hosts", cfg->path);
			return rc;
		}
		snprintf(conf->broker_hosts[i], sizeof(conf->broker_hosts[i]), "%s", items[i]);
	}
	conf->broker_host_count = count;
	moat_config_list_free(items, count);
	static const char *const client_keys[] = {"host", NULL};
	const char *client = moat_config_get(cfg, "client", "host");
	if ((rc = moat_config_check_keys(cfg, "client", client_keys, err)) != 0) {
		return rc;
	}
	if (client) {
		if ((rc = deploy_host_check(client, err)) != 0) {
			moat_err_prefix(err, "%s: [client] host", cfg->path);
			return rc;
		}
		snprintf(conf->client_host, sizeof(conf->client_host), "%s", client);
	} else {
		const char *list[MOAT_HOSTS_MAX];
		for (size_t i = 0; i < count; i++) {
			list[i] = conf->broker_hosts[i];
		}
		const char *pick = deploy_client_host_default(list, count);
		snprintf(conf->client_host, sizeof(conf->client_host), "%s",
			 pick ? pick : conf->broker_hosts[0]);
	}

	int64_t v = 0;
	if ((rc = moat_config_get_int(cfg, "broker", "port", MOAT_BROKER_PORT_DEFAULT, 1, 65535, &v,
				      err)) != 0) {
		return rc;
	}
	conf->broker_port = (int)v;
	if ((rc = moat_config_get_int(cfg, "server", "port", MOAT_SERVER_PORT_DEFAULT, 1, 65535, &v,
				      err)) != 0) {
		return rc;
	}
	conf->server_port = (int)v;
	if (conf->server_port == conf->broker_port) {
		return moat_err_set(err, MOAT_EINVAL, "%s: [server] port equals [broker] port",
				    cfg->path);
	}
	const char *kt = moat_config_get(cfg, "pki", "key_type");
	conf->key_type = MOAT_KEY_EC_P256;
	if (kt && (rc = moat_key_type_parse(kt, &conf->key_type, err)) != 0) {
		moat_err_prefix(err, "%s: [pki] key_type", cfg->path);
		return rc;
	}
	if ((rc = moat_config_get_int(cfg, "pki", "ca_days", MOAT_CA_DAYS_DEFAULT, 1, 36500,
				      &conf->ca_days, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "pki", "identity_days", MOAT_IDENTITY_DAYS_DEFAULT, 1,
				      36500, &conf->identity_days, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "pki", "server_days", MOAT_SERVER_DAYS_DEFAULT, 1, 36500,
				      &conf->server_days, err)) != 0 ||
	    (rc = moat_config_get_int(cfg, "pki", "crl_days", MOAT_CRL_DAYS_DEFAULT, 1, 3650,
				      &conf->crl_days, err)) != 0) {
		return rc;
	}
	/* crl_validity (a duration; a bare number is days) wins over crl_days: minutes are
	 * allowed, so a test can watch moatd refresh the CRL */
	conf->crl_validity = conf->crl_days * 86400;
	const char *cv = moat_config_get(cfg, "pki", "crl_validity");
	if (cv) {
		if ((rc = moat_duration_parse(cv, 86400, &conf->crl_validity, err)) != 0) {
			moat_err_prefix(err, "%s: [pki] crl_validity", cfg->path);
			return rc;
		}
		if (conf->crl_validity < MOAT_CRL_VALIDITY_MIN_S ||
		    conf->crl_validity > 3650 * 86400LL) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: [pki] crl_validity: %ds to 3650 days", cfg->path,
					    MOAT_CRL_VALIDITY_MIN_S);
		}
	}
	/* expiry_warning: a duration with its unit (moat_duration_ms_parse), 1 s..365 days */
	conf->expiry_warning = MOAT_EXPIRY_WARNING_DEFAULT_S;
	const char *ew = moat_config_get(cfg, "pki", "expiry_warning");
	if (ew) {
		int64_t ms = 0;
		if ((rc = moat_duration_ms_parse(ew, &ms, err)) != 0) {
			moat_err_prefix(err, "%s: [pki] expiry_warning", cfg->path);
			return rc;
		}
		if (ms < 1000 || ms > MOAT_EXPIRY_WARNING_MAX_S * 1000) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s: [pki] expiry_warning: 1s to 365 days", cfg->path);
		}
		conf->expiry_warning = ms / 1000;
	}
	/* The issuing CA's key in a token: the URI must parse here, so a typo in moat.conf is
	 * named when the deployment opens, not at the first signature. */
	const char *uri = moat_config_get(cfg, "pki", "issuer_pkcs11_uri");
	struct moat_pkcs11_uri parsed;
	if (uri && (rc = moat_pkcs11_uri_parse(uri, &parsed, err)) != 0) {
		moat_err_prefix(err, "%s: [pki] issuer_pkcs11_uri", cfg->path);
		return rc;
	}
	/* [registry] url: a registry on PostgreSQL, which moat_deploy_open then opens */
	static const char *const registry_keys[] = {"url", NULL};
	if ((rc = moat_config_check_keys(cfg, "registry", registry_keys, err)) != 0) {
		return rc;
	}
	const char *url = moat_config_get(cfg, "registry", "url");
	if (url && (rc = moat_registry_url_check(url, err)) != 0) {
		moat_err_prefix(err, "%s: [registry] url", cfg->path);
		return rc;
	}
	/* issuer_pin_file may stay without issuer_pkcs11_uri: after rotating from a token to
	 * a key file, it unlocks the retired issuing CA's key that stays in the token */
	return 0;
}

/* A name or address that always means this machine. */
static bool host_is_loopback(const char *host)
{
	unsigned char a[16];
	static const unsigned char v6_loopback[16] = {[15] = 1};
	if (strcasecmp(host, "localhost") == 0) {
		return true;
	}
	if (inet_pton(AF_INET, host, a) == 1) {
		return a[0] == 127;
	}
	return inet_pton(AF_INET6, host, a) == 1 && memcmp(a, v6_loopback, 16) == 0;
}

const char *deploy_client_host_default(const char *const *hosts, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (host_is_loopback(hosts[i])) {
			return hosts[i];
		}
	}
	for (size_t i = 0; i < count; i++) {
		if (deploy_host_is_ip(hosts[i])) {
			return hosts[i];
		}
	}
	return NULL;
}

bool deploy_host_is_ip(const char *host)
{
	unsigned char addr[16];
	return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

int deploy_host_check(const char *host, struct moat_err *err)
{
	size_t len = strlen(host);
	if (len == 0 || len > MOAT_HOST_MAX_LEN) {
		return moat_err_set(err, MOAT_EINVAL, "'%s': not a host name or address", host);
	}
	if (deploy_host_is_ip(host)) {
		return 0;
	}
	/* RFC 1123 labels: letters, digits, hyphens; no leading/trailing hyphen or dot */
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		char c = host[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9');
		if (c == '.') {
			if (label == 0 || host[i - 1] == '-') {
				return moat_err_set(err, MOAT_EINVAL,
						    "'%s': not a host name or address", host);
			}
			label = 0;
			continue;
		}
		if (!alnum && !(c == '-' && label > 0)) {
			return moat_err_set(err, MOAT_EINVAL, "'%s': not a host name or address",
					    host);
		}
		if (++label > 63) {
			return moat_err_set(err, MOAT_EINVAL, "'%s': label longer than 63", host);
		}
	}
	if (label == 0 || host[len - 1] == '-') {
		return moat_err_set(err, MOAT_EINVAL, "'%s': not a host name or address", host);
	}
	return 0;
}
