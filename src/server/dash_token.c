/* dash_token.c: the dashboard's tokens (dashboard.h): random, and kept only hashed. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "moat/codec.h"
#include "moat/dashboard.h"
#include "moat/registry.h"
#include "moat/timeutil.h"

int moat_dash_token_new(char token[MOAT_DASH_TOKEN_HEX_LEN + 1],
			char sha256[MOAT_DASH_TOKEN_HEX_LEN + 1], struct moat_err *err)
{
	uint8_t raw[MOAT_DASH_TOKEN_BYTES];
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		return moat_err_set(err, MOAT_ECRYPTO, "dashboard: no random bytes for a token");
	}
	moat_hex_encode(raw, sizeof(raw), token);
	OPENSSL_cleanse(raw, sizeof(raw));
	moat_dash_token_hash(token, sha256);
	return 0;
}

void moat_dash_token_hash(const char *token, char sha256[MOAT_DASH_TOKEN_HEX_LEN + 1])
{
	uint8_t md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)token, strlen(token), md);
	moat_hex_encode(md, sizeof(md), sha256);
}

int moat_dash_link_create(struct moat_registry *reg, const char *operator_id, const char *host,
			  int port, int64_t link_s, int64_t session_s, char url[MOAT_DASH_URL_MAX],
			  struct moat_err *err)
{
	struct moat_identity ident;
	int rc = moat_registry_identity_get(reg, operator_id, &ident, err);
	if (rc == MOAT_ENOENT) {
		return moat_err_set(err, MOAT_ENOENT, "%s: no such operator", operator_id);
	}
	if (rc != 0) {
		return rc;
	}
	if (ident.role != MOAT_ROLE_OPERATOR || ident.status != MOAT_ID_ACTIVE) {
		return moat_err_set(err, MOAT_EINVAL, "%s: not an active operator", operator_id);
	}
	char token[MOAT_DASH_TOKEN_HEX_LEN + 1];
	char hash[MOAT_DASH_TOKEN_HEX_LEN + 1];
	if ((rc = moat_dash_token_new(token, hash, err)) != 0) {
		return rc;
	}
	int64_t now = moat_time_wall_ms();
	rc = moat_registry_dash_link_add(reg, hash, operator_id, now, now + link_s * 1000,
					 session_s * 1000, err);
	if (rc == 0) {
		bool v6 = strchr(host, ':') != NULL;
		int n = snprintf(url, MOAT_DASH_URL_MAX, "https://%s%s%s:%d%s/signin?token=%s",
				 v6 ? "[" : "", host, v6 ? "]" : "", port, MOAT_DASH_PREFIX, token);
		if (n < 0 || n >= MOAT_DASH_URL_MAX) {
			rc = moat_err_set(err, MOAT_EINVAL, "%s: host name too long", host);
		}
	}
	OPENSSL_cleanse(token, sizeof(token));
	return rc;
}
