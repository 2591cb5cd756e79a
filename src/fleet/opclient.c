/* opclient.c: the operator side's MQTT session (moat cmd, moat watch) on libmosquitto.
 * Blocking and simple: one connection, mosquitto_loop with short timeouts, received
 * messages copied into a bounded FIFO. TLS as the devices have it (moat_mqtt_tls_setup,
 * mqtt_tls.h): the deployment CA, SSL_VERIFY_PEER, moat's TLS policy, the broker's host name
 * checked by libmosquitto.
 * Each tool has its own session, client id "<identity>:<suffix>" (identity.h), so watch,
 * cmd and moatd's ingest of one identity never take each other's sessions. MQTT 5, so a
 * refused CONNECT has a reason code; the broker's reason (banned, disabled, revoked...) is
 * in the plugin's security event for this client id, which the deployment's events file
 * holds when the CLI runs where the broker runs: a refusal quotes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <cjson/cJSON.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "moat/deploy.h"
#include "moat/mqtt_tls.h"
#include "moat/opclient.h"
#include "moat/policy.h"
#include "moat/registry.h"
#include "moat/session.h"
#include "moat/timeutil.h"

struct msg {
	struct msg *next;
	char *topic;
	void *payload;
	size_t len;
};

/* How much of the end of the events file a refusal looks through for its event. */
#define EVENTS_TAIL_BYTES (256 * 1024)
/* Longest reason quoted from an event: the plugin cuts its fields shorter. */
#define REFUSAL_MAX_LEN 300

struct moat_opclient {
	struct mosquitto *mosq;
	enum moat_role role;
	bool connected;
	bool session_present; /* CONNACK: the broker had kept our session */
	int connack;
	bool lost;
	int pending_mid; /* a SUBACK or PUBACK waited for */
	bool pending_done;
	struct msg *head, *tail;
	size_t queued;
	uint64_t dropped;    /* the oldest, dropped when the queue was full */
	struct msg *current; /* returned by the last next() */
	char log_error[256];
};

static void msg_free(struct msg *m)
{
	if (m) {
		free(m->topic);
		free(m->payload);
		free(m);
	}
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
		       const mosquitto_property *props)
{
	struct moat_opclient *c = obj;
	(void)mosq;
	(void)props;
	c->connack = rc;
	c->connected = rc == 0;
	c->session_present = rc == 0 && (flags & 0x01) != 0;
	if (rc != 0) {
		c->lost = true;
	}
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
	struct moat_opclient *c = obj;
	(void)mosq;
	(void)rc;
	c->connected = false;
	c->lost = true;
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int n, const int *granted)
{
	struct moat_opclient *c = obj;
	(void)mosq;
	if (mid == c->pending_mid) {
		c->pending_done = true;
		for (int i = 0; i < n; i++) {
			if (granted[i] > 2) {
				c->pending_mid = -1; /* refused by the broker's policy */
			}
		}
	}
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid)
{
	struct moat_opclient *c = obj;
	(void)mosq;
	if (mid == c->pending_mid) {
		c->pending_done = true;
	}
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m)
{
	struct moat_opclient *c = obj;
	(void)mosq;
	if (!m->topic || m->payloadlen < 0) {
		return;
	}
	if (c->queued >= MOAT_OPCLIENT_QUEUE_MAX) {
		struct msg *old = c->head;
		c->head = old->next;
		if (!c->head) {
			c->tail = NULL;
		}
		msg_free(old);
		c->queued--;
		c->dropped++;
	}
	struct msg *n = calloc(1, sizeof(*n));
	if (!n) {
		return;
	}
	n->topic = strdup(m->topic);
	n->len = (size_t)m->payloadlen;
	n->payload = malloc(n->len + 1);
	if (!n->topic || !n->payload) {
		msg_free(n);
		return;
	}
	if (n->len) {
		memcpy(n->payload, m->payload, n->len);
	}
	((char *)n->payload)[n->len] = '\0';
	if (c->tail) {
		c->tail->next = n;
	} else {
		c->head = n;
	}
	c->tail = n;
	c->queued++;
}

static void on_log(struct mosquitto *mosq, void *obj, int level, const char *str)
{
	struct moat_opclient *c = obj;
	(void)mosq;
	if (level == MOSQ_LOG_ERR && str && !c->log_error[0]) {
		snprintf(c->log_error, sizeof(c->log_error), "%s", str);
	}
}

/* A CONNACK reason code as 3.1.1 named it ("not authorised", which the tests and the
 * users know) where the two agree, else MQTT 5's name. */
static const char *connack_name(int rc)
{
	if (rc == MQTT_RC_NOT_AUTHORIZED || rc == MQTT_RC_BAD_USERNAME_OR_PASSWORD) {
		return mosquitto_connack_string(CONNACK_REFUSED_NOT_AUTHORIZED);
	}
	if (rc == MQTT_RC_BANNED) {
		return "banned";
	}
	return mosquitto_reason_string(rc);
}

struct pick {
	char name[MOAT_ID_BUF_LEN];
};

static int pick_cb(const struct moat_identity *ident, void *ctx)
{
	struct pick *p = ctx;
	if (ident->status == MOAT_ID_ACTIVE) {
		snprintf(p->name, sizeof(p->name), "%s", ident->id);
		return 1; /* stop at the first */
	}
	return 0;
}

int moat_opclient_identity(struct moat_deploy *d, const char *as, char out[MOAT_ID_BUF_LEN],
			   enum moat_role *out_role, struct moat_err *err)
{
	int rc;
	if (as) {
		struct moat_identity ident;
		if ((rc = moat_registry_identity_get(moat_deploy_registry(d), as, &ident, err)) !=
		    0) {
			return rc;
		}
		if (ident.role == MOAT_ROLE_DEVICE) {
			return moat_err_set(err, MOAT_EINVAL,
					    "%s is a device; use an operator or service identity",
					    as);
		}
		if (ident.status != MOAT_ID_ACTIVE) {
			return moat_err_set(err, MOAT_ESTATE, "%s is %s", as,
					    moat_identity_status_name(ident.status));
		}
		snprintf(out, MOAT_ID_BUF_LEN, "%s", as);
		*out_role = ident.role;
		return 0;
	}
	struct pick p = {{0}};
	int roles[2] = {MOAT_ROLE_OPERATOR, MOAT_ROLE_SERVICE};
	for (int i = 0; i < 2 && !p.name[0]; i++) {
		rc = moat_registry_identity_foreach(moat_deploy_registry(d), roles[i], pick_cb, &p,
						    err);
		if (rc < 0) {
			return rc;
		}
		*out_role = (enum moat_role)roles[i];
	}
	if (!p.name[0]) {
		return moat_err_set(err, MOAT_ENOENT,
				    "no operator identity: add one with moat identity add NAME "
				    "--role operator");
	}
	snprintf(out, MOAT_ID_BUF_LEN, "%s", p.name);
	return 0;
}

/* Runs the network loop until *flag, loss, or the deadline. */
static int wait_until(struct moat_opclient *c, bool *flag, int64_t timeout_ms, const char *what,
		      struct moat_err *err)
{
	int64_t deadline = moat_time_mono_ms() + timeout_ms;
	while (!*flag) {
		if (c->lost) {
			return moat_err_set(err, MOAT_EIO, "%s: connection lost%s%s", what,
					    c->log_error[0] ? ": " : "", c->log_error);
		}
		int64_t left = deadline - moat_time_mono_ms();
		if (left <= 0) {
			return moat_err_set(err, MOAT_ETIMEOUT, "%s: no answer from the broker",
					    what);
		}
		int rc = mosquitto_loop(c->mosq, left > 100 ? 100 : (int)left, 1);
		if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
			c->lost = true;
			if (!c->log_error[0]) {
				snprintf(c->log_error, sizeof(c->log_error), "%s",
					 mosquitto_strerror(rc));
			}
		}
	}
	return 0;
}

/* The reason and detail of the last auth_refused event for client_id in the deployment's
 * events file, as " (reason: detail)" into out; "" when there is none or it cannot be read
 * (another host, no permission: the reason code alone is reported then). */
static void refusal_reason(struct moat_deploy *d, const char *client_id, char *out, size_t size)
{
	char path[PATH_MAX];
	char needle[MOAT_CLIENT_ID_BUF_LEN + 16];
	char *buf = NULL;
	cJSON *ev = NULL;
	int fd = -1;
	out[0] = '\0';
	if (moat_deploy_path(d, path, sizeof(path), MOAT_PLUGIN_EVENTS_FILE_NAME, NULL) != 0 ||
	    snprintf(needle, sizeof(needle), "\"client_id\":\"%s\"", client_id) < 0 ||
	    (fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		goto out;
	}
	off_t end = lseek(fd, 0, SEEK_END);
	off_t start = end > EVENTS_TAIL_BYTES ? end - EVENTS_TAIL_BYTES : 0;
	buf = malloc(EVENTS_TAIL_BYTES + 1);
	ssize_t n = buf && end > 0 ? pread(fd, buf, (size_t)(end - start), start) : -1;
	if (n <= 0) {
		goto out;
	}
	buf[n] = '\0';
	const char *found = NULL;
	for (char *line = buf; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl) {
			*nl = '\0';
		}
		if (strstr(line, "\"kind\":\"auth_refused\"") && strstr(line, needle)) {
			found = line;
		}
		line = nl ? nl + 1 : NULL;
	}
	ev = found ? cJSON_Parse(found) : NULL;
	const char *reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "reason"));
	const char *detail = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "detail"));
	if (reason) {
		snprintf(out, size, " (%s%s%s)", reason, detail ? ": " : "", detail ? detail : "");
	}
out:
	cJSON_Delete(ev);
	free(buf);
	if (fd >= 0) {
		close(fd);
	}
}

void moat_opclient_instance_suffix(const char *what, int port, char *buf, size_t size)
{
	char host[256];
	if (gethostname(host, sizeof(host)) != 0) {
		host[0] = '\0';
	}
	host[sizeof(host) - 1] = '\0';
	char digits[8];
	int nd = snprintf(digits, sizeof(digits), "%d", port);
	/* what, '-', host, '-', port */
	int room = MOAT_CLIENT_SUFFIX_MAX_LEN - (int)strlen(what) - 2 - nd;
	size_t n = 0;
	for (; host[n] && host[n] != '.' && (int)n < room; n++) {
		char c = host[n];
		c = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
		host[n] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '-';
	}
	if (n == 0) {
		snprintf(buf, size, "%s-%s", what, digits);
		return;
	}
	snprintf(buf, size, "%s-%.*s-%s", what, (int)n, host, digits);
}

int moat_opclient_connect(struct moat_deploy *d, const char *as, const char *suffix,
			  const char *host, int64_t timeout_ms, struct moat_opclient **out,
			  char out_as[MOAT_ID_BUF_LEN], struct moat_err *err)
{
	return moat_opclient_connect_session(d, as, suffix, host, timeout_ms, 0, out, out_as, err);
}

bool moat_opclient_session_present(const struct moat_opclient *c)
{
	return c && c->session_present;
}

int moat_opclient_connect_session(struct moat_deploy *d, const char *as, const char *suffix,
				  const char *host, int64_t timeout_ms, uint32_t session_expiry_s,
				  struct moat_opclient **out, char out_as[MOAT_ID_BUF_LEN],
				  struct moat_err *err)
{
	char name[MOAT_ID_BUF_LEN];
	char client_id[MOAT_CLIENT_ID_BUF_LEN];
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	struct moat_opclient *c = NULL;
	enum moat_role role = MOAT_ROLE_OPERATOR;
	int rc;
	*out = NULL;
	if ((rc = moat_opclient_identity(d, as, name, &role, err)) != 0 ||
	    (rc = moat_client_id_build(name, suffix, client_id, sizeof(client_id), err)) != 0 ||
	    (rc = moat_deploy_identity_path(d, name, "ca.crt", ca, sizeof(ca), err)) != 0 ||
	    (rc = moat_deploy_identity_path(d, name, "cert.pem", cert, sizeof(cert), err)) != 0 ||
	    (rc = moat_deploy_identity_path(d, name, "key.pem", key, sizeof(key), err)) != 0) {
		return rc;
	}
	/* libmosquitto says only that TLS setup failed: name the file and why first (a
	 * service identity never created is the usual cause, e.g. moatd's ingest) */
	const char *const files[] = {cert, key};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (access(files[i], R_OK) != 0) {
			int e = errno;
			return moat_err_set(err, e == ENOENT ? MOAT_ENOENT : MOAT_EIO,
					    "%s: %s: %s%s", name, files[i], strerror(e),
					    e == ENOENT ? " (moat identity add creates an identity)"
							: "");
		}
	}
	if (!host || !host[0]) {
		host = moat_deploy_settings(d)->client_host;
	}
	if (!host[0]) {
		return moat_err_set(err, MOAT_EINVAL, "moat.conf: [broker] hosts is empty");
	}
	mosquitto_lib_init();
	c = calloc(1, sizeof(*c));
	if (!c) {
		return moat_err_set(err, MOAT_ENOMEM, "out of memory");
	}
	c->role = role;
	/* a kept session needs clean start 0; its expiry goes in CONNECT's properties */
	c->mosq = mosquitto_new(client_id, session_expiry_s == 0, c);
	if (!c->mosq) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_connect_v5_callback_set(c->mosq, on_connect);
	mosquitto_disconnect_callback_set(c->mosq, on_disconnect);
	mosquitto_subscribe_callback_set(c->mosq, on_subscribe);
	mosquitto_publish_callback_set(c->mosq, on_publish);
	mosquitto_message_callback_set(c->mosq, on_message);
	mosquitto_log_callback_set(c->mosq, on_log);
	if (moat_mqtt_tls_setup(c->mosq, ca, cert, key, NULL) != 0) {
		rc = moat_err_set(err, MOAT_EINVAL, "%s: TLS setup failed", name);
		goto out;
	}
	mosquitto_property *props = NULL;
	if (session_expiry_s > 0 &&
	    mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
					 session_expiry_s) != MOSQ_ERR_SUCCESS) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	rc = mosquitto_connect_bind_v5(c->mosq, host, moat_deploy_settings(d)->broker_port, 30,
				       NULL, props);
	mosquitto_property_free_all(&props);
	if (rc != MOSQ_ERR_SUCCESS) {
		rc = moat_err_set(err, MOAT_EIO, "connecting to %s:%d as %s: %s", host,
				  moat_deploy_settings(d)->broker_port, name,
				  c->log_error[0] ? c->log_error : mosquitto_strerror(rc));
		goto out;
	}
	if ((rc = wait_until(c, &c->connected, timeout_ms, "connect", err)) != 0) {
		if (c->connack > 0) {
			char why[2 * REFUSAL_MAX_LEN];
			refusal_reason(d, client_id, why, sizeof(why));
			rc = moat_err_set(err, MOAT_EDENIED, "the broker refused %s: %s%s", name,
					  connack_name(c->connack), why);
		}
		goto out;
	}
	if (out_as) {
		snprintf(out_as, MOAT_ID_BUF_LEN, "%s", name);
	}
	*out = c;
	c = NULL;
	rc = 0;
out:
	moat_opclient_close(c);
	return rc;
}

int moat_opclient_subscribe(struct moat_opclient *c, const char *const *filters, size_t count,
			    int64_t timeout_ms, struct moat_err *err)
{
	int mid = 0;
	int rc = mosquitto_subscribe_multiple(c->mosq, &mid, (int)count,
					      (char *const *const)filters, 1, 0, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		return moat_err_set(err, MOAT_EIO, "subscribe: %s", mosquitto_strerror(rc));
	}
	c->pending_mid = mid;
	c->pending_done = false;
	if ((rc = wait_until(c, &c->pending_done, timeout_ms, "subscribe", err)) != 0) {
		return rc;
	}
	if (c->pending_mid == -1) {
		return moat_err_set(err, MOAT_EDENIED, "the broker refused the subscription to %s",
				    filters[0]);
	}
	return 0;
}

int moat_opclient_publish(struct moat_opclient *c, const char *topic, const void *payload,
			  size_t len, int64_t timeout_ms, struct moat_err *err)
{
	int mid = 0;
	int rc = mosquitto_publish(c->mosq, &mid, topic, (int)len, payload, 1, false);
	if (rc != MOSQ_ERR_SUCCESS) {
		return moat_err_set(err, MOAT_EIO, "publish %s: %s", topic, mosquitto_strerror(rc));
	}
	c->pending_mid = mid;
	c->pending_done = false;
	return wait_until(c, &c->pending_done, timeout_ms, "publish", err);
}

int moat_opclient_next(struct moat_opclient *c, int64_t timeout_ms, volatile int *stop,
		       const char **out_topic, const void **out_payload, size_t *out_len,
		       struct moat_err *err)
{
	msg_free(c->current);
	c->current = NULL;
	int64_t deadline = timeout_ms < 0 ? INT64_MAX : moat_time_mono_ms() + timeout_ms;
	while (!c->head) {
		if (stop && *stop) {
			return moat_err_set(err, MOAT_EINTR, "interrupted");
		}
		if (c->lost) {
			return moat_err_set(err, MOAT_EIO, "connection to the broker lost%s%s",
					    c->log_error[0] ? ": " : "", c->log_error);
		}
		int64_t left = deadline - moat_time_mono_ms();
		if (left <= 0) {
			return moat_err_set(err, MOAT_ETIMEOUT, "timed out");
		}
		int rc = mosquitto_loop(c->mosq, left > 100 ? 100 : (int)left, 1);
		if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN && rc != MOSQ_ERR_ERRNO) {
			c->lost = true;
		} else if (rc == MOSQ_ERR_ERRNO && !(stop && *stop)) {
			/* EINTR from a signal: loop again and look at *stop */
			continue;
		}
	}
	c->current = c->head;
	c->head = c->head->next;
	if (!c->head) {
		c->tail = NULL;
	}
	c->queued--;
	*out_topic = c->current->topic;
	*out_payload = c->current->payload;
	*out_len = c->current->len;
	return 0;
}

uint64_t moat_opclient_dropped(const struct moat_opclient *c)
{
	return c->dropped;
}

static void close_with(struct moat_opclient *c, bool end_session)
{
	if (!c) {
		return;
	}
	if (c->mosq) {
		if (c->connected) {
			/* DISCONNECT with a Session Expiry Interval of 0 ends a kept session */
			mosquitto_property *props = NULL;
			if (end_session) {
				(void)mosquitto_property_add_int32(
					&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 0);
			}
			mosquitto_disconnect_v5(c->mosq, MQTT_RC_NORMAL_DISCONNECTION, props);
			mosquitto_property_free_all(&props);
			mosquitto_loop(c->mosq, 100, 1);
		}
		mosquitto_destroy(c->mosq);
	}
	msg_free(c->current);
	while (c->head) {
		struct msg *n = c->head->next;
		msg_free(c->head);
		c->head = n;
	}
	free(c);
	mosquitto_lib_cleanup();
}

void moat_opclient_close(struct moat_opclient *c)
{
	close_with(c, false);
}

void moat_opclient_end(struct moat_opclient *c)
{
	close_with(c, true);
}

enum moat_role moat_opclient_role(const struct moat_opclient *c)
{
	return c->role;
}
