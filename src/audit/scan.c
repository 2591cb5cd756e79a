/* scan.c: the readers of the broker's files as they are on disk (mosquitto.conf and
 * acl.conf, which anyone with access to the host may have edited): pure, bounded, every
 * line cut at a fixed length; fuzzed by tests/fuzz/fuzz_audit_scan.c. */
#include <string.h>

#include "audit_internal.h"

const char *const audit_conf_limit_keys[AUDIT_CONF_LIMITS] = {"message_size_limit",
							      "max_inflight_messages",
							      "max_queued_messages",
							      "max_keepalive"};

#define SCAN_LINE_MAX 1024

void audit_conf_scan(const char *text, size_t len, struct audit_conf_view *v)
{
	memset(v, 0, sizeof(*v));
	v->allow_anonymous = -1;
	struct audit_listener *cur = NULL;
	size_t pos = 0;
	int lineno = 0;
	while (pos < len) {
		const char *s = text + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos;
		pos += n + (nl ? 1 : 0);
		lineno++;
		char line[SCAN_LINE_MAX];
		if (n >= sizeof(line)) {
			n = sizeof(line) - 1;
		}
		memcpy(line, s, n);
		line[n] = '\0';
		char *save = NULL;
		char *key = strtok_r(line, " \t\r", &save);
		char *val = strtok_r(NULL, "\r", &save);
		while (val && (*val == ' ' || *val == '\t')) {
			val++;
		}
		if (!key || key[0] == '#') {
			continue;
		}
		if (!val) {
			val = line + n; /* "" */
		}
		if (strcmp(key, "listener") == 0) {
			/* past the last slot, later settings land in it: a finding either way */
			if (v->n < AUDIT_LISTENERS_MAX) {
				cur = &v->l[v->n++];
				cur->line = lineno;
				snprintf(cur->name, sizeof(cur->name), "listener %.80s", val);
			}
		} else if (strcmp(key, "port") == 0) {
			v->port_line = lineno;
		} else if (strcmp(key, "allow_anonymous") == 0) {
			v->allow_anonymous = strcmp(val, "false") == 0 ? 0 : 1;
			v->anon_line = lineno;
		} else if (strcmp(key, "persistence") == 0) {
			v->persistence = strcmp(val, "true") == 0;
		} else if (strcmp(key, "log_dest") == 0) {
			v->log_file = v->log_file || strncmp(val, "file ", 5) == 0 ||
				      strcmp(val, "syslog") == 0;
		} else if (strcmp(key, "connection_messages") == 0) {
			v->connection_messages_off = strcmp(val, "false") == 0;
		} else if (strcmp(key, "plugin") == 0 || strcmp(key, "auth_plugin") == 0) {
			v->plugin = true;
		} else if (strcmp(key, "acl_file") == 0) {
			v->acl_file = true;
		}
		for (size_t i = 0; i < AUDIT_CONF_LIMITS; i++) {
			if (strcmp(key, audit_conf_limit_keys[i]) == 0 && strcmp(val, "0") != 0) {
				v->limit[i] = true;
			}
		}
		if (!cur) {
			continue;
		}
		if (strcmp(key, "certfile") == 0) {
			cur->certfile = true;
		} else if (strcmp(key, "keyfile") == 0) {
			cur->keyfile = true;
		} else if (strcmp(key, "require_certificate") == 0) {
			cur->require_cert = strcmp(val, "true") == 0;
		} else if (strcmp(key, "tls_version") == 0) {
			cur->tls_version_set = true;
			snprintf(cur->tls_version, sizeof(cur->tls_version), "%s", val);
		} else if (strcmp(key, "ciphers") == 0) {
			snprintf(cur->ciphers, sizeof(cur->ciphers), "%s", val);
			cur->ciphers_line = lineno;
		} else if (strcmp(key, "max_connections") == 0) {
			cur->max_connections = strcmp(val, "-1") != 0;
		}
	}
}

const char *audit_acl_judge(const char *line, char *user, size_t user_size,
			    bool (*is_device)(const char *user, void *ctx), void *ctx)
{
	char copy[SCAN_LINE_MAX];
	snprintf(copy, sizeof(copy), "%s", line);
	char *save = NULL;
	char *key = strtok_r(copy, " \t\r", &save);
	if (!key || key[0] == '#') {
		return NULL;
	}
	if (strcmp(key, "user") == 0) {
		char *u = strtok_r(NULL, " \t\r", &save);
		snprintf(user, user_size, "%s", u ? u : "");
		return NULL;
	}
	bool pattern = strcmp(key, "pattern") == 0;
	if (!pattern && strcmp(key, "topic") != 0) {
		return NULL;
	}
	char *f1 = strtok_r(NULL, " \t\r", &save);
	char *f2 = strtok_r(NULL, " \t\r", &save);
	char *filter = f2 ? f2 : f1; /* "topic [read|write|readwrite|deny] filter" */
	if (!filter || (f1 && f2 && strcmp(f1, "deny") == 0)) {
		return NULL;
	}
	if (filter[0] == '#' || (filter[0] == '+' && (filter[1] == '\0' || strstr(filter, "/#")))) {
		return "grants '#' (every topic)";
	}
	if (pattern && !strstr(filter, "%u") && !strstr(filter, "%c")) {
		return "grants every identity the same topics, not its own";
	}
	if (!pattern && !user[0]) {
		return "grants every client (it is outside any user block)";
	}
	if (!pattern && strncmp(filter, "devices/", 8) == 0) {
		size_t ul = strlen(user);
		bool own = strncmp(filter + 8, user, ul) == 0 && filter[8 + ul] == '/';
		if (!own && is_device(user, ctx)) {
			return "grants a device another identity's topics";
		}
	}
	return NULL;
}

/* One DER tag-length-value at *p (before end): its tag (low tag numbers only, as in every
 * certificate), its contents, and *p moved past it. Definite lengths of up to 4 bytes. */
static bool der_tlv(const unsigned char **p, const unsigned char *end, unsigned char *tag,
		    const unsigned char **val, size_t *vlen)
{
	if (*p >= end || end - *p < 2) {
		return false;
	}
	const unsigned char *q = *p;
	*tag = q[0];
	if ((*tag & 0x1f) == 0x1f) {
		return false;
	}
	size_t l = q[1];
	q += 2;
	if (l & 0x80) {
		size_t n = l & 0x7f;
		if (n == 0 || n > 4 || (size_t)(end - q) < n) {
			return false;
		}
		l = 0;
		for (size_t i = 0; i < n; i++) {
			l = (l << 8) | q[i];
		}
		q += n;
	}
	if ((size_t)(end - q) < l) {
		return false;
	}
	*val = q;
	*vlen = l;
	*p = q + l;
	return true;
}

bool audit_cert_scan(const unsigned char *der, size_t len, struct audit_cert_view *out)
{
	const unsigned char *p = der, *end = der + len, *v, *tbs_end;
	unsigned char tag;
	size_t vl;
	memset(out, 0, sizeof(*out));
	/* Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature } */
	if (!der_tlv(&p, end, &tag, &v, &vl) || tag != 0x30) {
		return false;
	}
	p = v;
	end = v + vl;
	if (!der_tlv(&p, end, &tag, &v, &vl) || tag != 0x30) {
		return false;
	}
	p = v;
	tbs_end = v + vl;
	/* [0] version (optional), serialNumber, signature, issuer, validity, subject, SPKI */
	if (!der_tlv(&p, tbs_end, &tag, &v, &vl)) {
		return false;
	}
	if (tag == 0xa0 && !der_tlv(&p, tbs_end, &tag, &v, &vl)) {
		return false;
	}
	if (tag != 0x02) {
		return false;
	}
	const unsigned char *start = p;
	if (!der_tlv(&p, tbs_end, &tag, &v, &vl) || tag != 0x30) { /* signature */
		return false;
	}
	start = p;
	if (!der_tlv(&p, tbs_end, &tag, &v, &vl) || tag != 0x30) { /* issuer */
		return false;
	}
	out->issuer = start;
	out->issuer_len = (size_t)(p - start);
	if (!der_tlv(&p, tbs_end, &tag, &v, &vl) || tag != 0x30 || /* validity */
	    !der_tlv(&p, tbs_end, &tag, &v, &vl) || tag != 0x30) { /* subject */
		return false;
	}
	start = p;
	if (!der_tlv(&p, tbs_end, &tag, &v, &vl) || tag != 0x30) { /* SPKI */
		return false;
	}
	out->spki = start;
	out->spki_len = (size_t)(p - start);
	const unsigned char *s = v, *s_end = v + vl;
	if (!der_tlv(&s, s_end, &tag, &v, &vl) || tag != 0x30) { /* AlgorithmIdentifier */
		return false;
	}
	const unsigned char *a = v, *a_end = v + vl;
	if (!der_tlv(&a, a_end, &tag, &v, &vl) || tag != 0x06) {
		return false;
	}
	out->alg_oid = v;
	out->alg_oid_len = vl;
	if (a < a_end) {
		start = a;
		if (!der_tlv(&a, a_end, &tag, &v, &vl)) {
			return false;
		}
		out->param = start; /* the whole TLV, for d2i_ASN1_OBJECT */
		out->param_len = (size_t)(a - start);
		out->param_tag = tag;
	}
	if (!der_tlv(&s, s_end, &tag, &v, &vl) || tag != 0x03 || vl < 1) { /* subjectPublicKey */
		return false;
	}
	out->key_bits = v;
	out->key_bits_len = vl;
	return true;
}
