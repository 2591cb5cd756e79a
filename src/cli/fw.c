/* fw.c: `moat fw`: firmware signing keys, the deployment's trust list, signing an image
 * into an envelope, and `fw verify`, which answers what a device would decide, and why.
 *
 *   moat fw keygen [--type ec-p256|ed25519|rsa-3072]
 *   moat fw trust [--threshold N]              show the trust list, or set its threshold
 *   moat fw key revoke KEYID [--threshold N]   take a key out of trust (rotation, compromise);
 *                                              the threshold is lowered only with --threshold
 *   moat fw key add --pkcs11-uri URI [--pkcs11-module PATH] [--pin-file FILE]
 *                                              trust a key kept in a PKCS#11 token
 *   moat fw sign IMAGE --type T --version V --security-version N [--expires 90d]
 *                [--key KEYID]... [--key-uri URI]... [--out FILE]
 *   moat fw verify IMAGE ENVELOPE [--device-type T] [--floor N] [--current-version V]
 *                [--trust FILE] [--now T] [--last-issued-at T] [--boot]
 *
 * Key passphrase: $MOAT_FW_PASSPHRASE, else the CA passphrase rules (--passphrase-file,
 * $MOAT_CA_PASSPHRASE, a prompt). A key in a token signs there, never leaving it; its PIN
 * comes from --pin-file or $MOAT_PKCS11_PIN, its module from --pkcs11-module, moat.conf's
 * [pki] pkcs11_module or the URI's module-path. `fw verify` exits 0 on accept and 1 on refusal with
 * the verdict and reason on one line.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "cli.h"
#include "fw_release.h"
#include "moat/firmware.h"
#include "moat/fsutil.h"
#include "moat/manifest.h"
#include "moat/pkcs11.h"
#include "moat/timeutil.h"

#define FW_MAX_SIGN_KEYS MOAT_ENVELOPE_MAX_SIGS
#define FW_DEFAULT_EXPIRY_SECONDS (90 * 86400)

static const char usage[] =
	"usage: moat fw <command> [options]\n\n"
	"  keygen [--type ec-p256|ed25519|rsa-3072]   new signing key, added to the trust list\n"
	"  trust [--threshold N]                      show the trust list / set how many keys "
	"must sign\n"
	"  key revoke KEYID [--threshold N]           remove a key from the trust list; refused\n"
	"                                             when fewer keys than the threshold would\n"
	"                                             be left, unless --threshold N lowers it\n"
	"  key add --pkcs11-uri URI [--pkcs11-module PATH] [--pin-file FILE]\n"
	"                                             trust a signing key kept in a PKCS#11 "
	"token\n"
	"  sign IMAGE --type DEVICE_TYPE --version V --security-version N\n"
	"       [--expires 90d] [--key KEYID]... [--key-uri URI]... [--out FILE]\n"
	"                                             signed envelope (stdout without --out)\n"
	"  verify IMAGE ENVELOPE [--device-type T] [--floor N] [--current-version V]\n"
	"       [--trust FILE] [--now T] [--last-issued-at T] [--boot]\n"
	"                                             what a device would decide: exit 0 "
	"accept, 1 refuse\n"
	"       (without --device-type the manifest's own type is used: mix-and-match is not\n"
	"       checked; --trust defaults to the deployment's firmware/keys/trust.json)\n"
	"  publish ENVELOPE IMAGE [--rollout PERCENT | --devices ID,...]\n"
	"                                             offer a verified release to devices "
	"through\n"
	"                                             moatd (default --rollout 100)\n"
	"  list [--type DEVICE_TYPE] [--json]         published releases and their rollouts\n"
	"  rollout create|status|pause|resume|abort   phased rollouts over a group, advanced\n"
	"                                             by moatd (moat fw rollout --help)\n"
	"  status [DEVICE] [--json]                   what each device runs, what moatd offers "
	"it,\n"
	"                                             its last update events\n\n"
	"Keys live in firmware/keys/ of the deployment, encrypted under $MOAT_FW_PASSPHRASE\n"
	"(else --passphrase-file, $MOAT_CA_PASSPHRASE or a prompt), or in a PKCS#11 token\n"
	"(RFC 7512 URI, e.g. pkcs11:token=moat;object=fw1;type=private; PIN from --pin-file\n"
	"or $MOAT_PKCS11_PIN; module from --pkcs11-module, [pki] pkcs11_module in moat.conf\n"
	"or module-path= in the URI, e.g. /usr/lib/softhsm/libsofthsm2.so for SoftHSM2).\n";

/* The signing-key passphrase: $MOAT_FW_PASSPHRASE, else the CA passphrase rules. */
static int key_passphrase(char *buf, size_t size, bool confirm, struct moat_err *err)
{
	const char *env = getenv("MOAT_FW_PASSPHRASE");
	if (env && *env) {
		size_t len = strlen(env);
		if (len + 1 > size) {
			return moat_err_set(err, MOAT_EINVAL, "MOAT_FW_PASSPHRASE: too long");
		}
		if (len < MOAT_PASSPHRASE_MIN_LEN) {
			return moat_err_set(err, MOAT_EINVAL,
					    "MOAT_FW_PASSPHRASE: shorter than %d characters",
					    MOAT_PASSPHRASE_MIN_LEN);
		}
		memcpy(buf, env, len + 1);
		return 0;
	}
	return cli_passphrase(buf, size, confirm, err);
}

static int keys_dir_of(const struct moat_deploy *d, char *buf, size_t size, struct moat_err *err)
{
	return moat_deploy_path(d, buf, size, MOAT_FW_KEYS_DIR, err);
}

/* Whether keyid's private half is here: in a file (<keyid>.key) or a token (<keyid>.uri). */
static bool has_private(const char *dir, const char *keyid, bool *out_token)
{
	char path[PATH_MAX];
	*out_token = moat_path_join(path, sizeof(path), NULL, "%s/%s.uri", dir, keyid) == 0 &&
		     moat_fs_exists(path);
	return *out_token ||
	       (moat_path_join(path, sizeof(path), NULL, "%s/%s.key", dir, keyid) == 0 &&
		moat_fs_exists(path));
}

/* Every option of every subcommand; only() refuses those a subcommand does not take. */
struct fw_opts {
	const char *type;
	const char *version;
	const char *security_version;
	const char *expires;
	const char *out;
	const char *keys[FW_MAX_SIGN_KEYS];
	size_t key_count;
	const char *device_type;
	const char *floor;
	const char *current_version;
	const char *trust;
	const char *now;
	const char *last_issued_at;
	const char *threshold;
	const char *pkcs11_uri;
	const char *pkcs11_module;
	const char *pin_file;
	const char *key_uris[FW_MAX_SIGN_KEYS];
	size_t key_uri_count;
	bool boot;
	int argc; /* positional arguments after the subcommand */
	char **argv;
};

static int add_key(void *dst, const char *value, struct moat_err *err)
{
	struct fw_opts *o = dst;
	if (o->key_count == FW_MAX_SIGN_KEYS) {
		return moat_err_set(err, MOAT_EINVAL, "fw: at most %d --key options",
				    FW_MAX_SIGN_KEYS);
	}
	o->keys[o->key_count++] = value;
	return 0;
}

static int add_key_uri(void *dst, const char *value, struct moat_err *err)
{
	struct fw_opts *o = dst;
	if (o->key_uri_count == FW_MAX_SIGN_KEYS) {
		return moat_err_set(err, MOAT_EINVAL, "fw: at most %d --key-uri options",
				    FW_MAX_SIGN_KEYS);
	}
	o->key_uris[o->key_uri_count++] = value;
	return 0;
}

/* Parses the options after the subcommand; returns -1 to go on, else an exit status. */
static int parse_opts(int argc, char **argv, int first, struct fw_opts *o)
{
	const struct moat_opt opts[] = {
		{.name = "type", .kind = MOAT_OPT_STRING, .dst = &o->type},
		{.name = "version", .kind = MOAT_OPT_STRING, .dst = &o->version},
		{.name = "security-version", .kind = MOAT_OPT_STRING, .dst = &o->security_version},
		{.name = "expires", .kind = MOAT_OPT_STRING, .dst = &o->expires},
		{.name = "out", .kind = MOAT_OPT_STRING, .dst = &o->out},
		{.name = "key", .kind = MOAT_OPT_FN, .dst = o, .fn = add_key},
		{.name = "device-type", .kind = MOAT_OPT_STRING, .dst = &o->device_type},
		{.name = "floor", .kind = MOAT_OPT_STRING, .dst = &o->floor},
		{.name = "current-version", .kind = MOAT_OPT_STRING, .dst = &o->current_version},
		{.name = "trust", .kind = MOAT_OPT_STRING, .dst = &o->trust},
		{.name = "now", .kind = MOAT_OPT_STRING, .dst = &o->now},
		{.name = "last-issued-at", .kind = MOAT_OPT_STRING, .dst = &o->last_issued_at},
		{.name = "threshold", .kind = MOAT_OPT_STRING, .dst = &o->threshold},
		{.name = "pkcs11-uri", .kind = MOAT_OPT_STRING, .dst = &o->pkcs11_uri},
		{.name = "pkcs11-module", .kind = MOAT_OPT_STRING, .dst = &o->pkcs11_module},
		{.name = "pin-file", .kind = MOAT_OPT_STRING, .dst = &o->pin_file},
		{.name = "key-uri", .kind = MOAT_OPT_FN, .dst = o, .fn = add_key_uri},
		{.name = "boot", .kind = MOAT_OPT_FLAG, .dst = &o->boot},
		{.name = "help", .kind = MOAT_OPT_HELP, .letter = 'h'},
		{0},
	};
	const struct moat_opts_spec spec = {CLI_OPTS, .usage = usage, .opts = opts,
					    .error_line = "fw: see moat fw --help"};
	memset(o, 0, sizeof(*o));
	int next;
	int st = moat_opts_parse(&spec, argc, argv, first, &next);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	o->argc = argc - next;
	o->argv = argv + next;
	return -1;
}

/* Options that a subcommand does not take are refused rather than ignored. */
static int only(const char *cmd, const struct fw_opts *o, const char *allowed)
{
	struct {
		const char *name;
		bool set;
	} all[] = {
		{"type", o->type != NULL},
		{"version", o->version != NULL},
		{"security-version", o->security_version != NULL},
		{"expires", o->expires != NULL},
		{"out", o->out != NULL},
		{"key", o->key_count > 0},
		{"device-type", o->device_type != NULL},
		{"floor", o->floor != NULL},
		{"current-version", o->current_version != NULL},
		{"trust", o->trust != NULL},
		{"now", o->now != NULL},
		{"last-issued-at", o->last_issued_at != NULL},
		{"threshold", o->threshold != NULL},
		{"pkcs11-uri", o->pkcs11_uri != NULL},
		{"pkcs11-module", o->pkcs11_module != NULL},
		{"pin-file", o->pin_file != NULL},
		{"key-uri", o->key_uri_count > 0},
		{"boot", o->boot},
	};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		char word[32];
		snprintf(word, sizeof(word), " %s ", all[i].name);
		if (all[i].set && !strstr(allowed, word)) {
			return cli_usage_error("fw %s: --%s does not apply here", cmd, all[i].name);
		}
	}
	return -1;
}

static int cmd_keygen(const struct fw_opts *o)
{
	struct moat_err err = {0};
	enum moat_key_type type = MOAT_KEY_EC_P256;
	if (o->argc != 0) {
		return cli_usage_error("fw keygen: unexpected argument '%s'", o->argv[0]);
	}
	if (o->type && moat_fw_key_type_parse(o->type, &type, &err) != 0) {
		return cli_usage_error("fw keygen: %s", err.msg);
	}
	struct moat_deploy *d = NULL;
	char dir[PATH_MAX], tpath[PATH_MAX];
	char pass[MOAT_PASSPHRASE_MAX_LEN + 2];
	char keyid[MOAT_FW_KEYID_HEX_LEN + 1];
	struct moat_fw_trust trust;
	memset(&trust, 0, sizeof(trust));
	int rc = cli_open(MOAT_DEPLOY_WRITE, &d, &err);
	if (rc == 0) {
		rc = keys_dir_of(d, dir, sizeof(dir), &err);
	}
	if (rc == 0) {
		rc = key_passphrase(pass, sizeof(pass), true, &err);
	}
	if (rc == 0) {
		rc = moat_fwkeys_generate(dir, type, pass, keyid, &err);
		OPENSSL_cleanse(pass, sizeof(pass));
	}
	if (rc == 0) {
		rc = moat_path_join(tpath, sizeof(tpath), &err, "%s/%s", dir, MOAT_FW_TRUST_FILE);
	}
	if (rc == 0) {
		rc = moat_fwtrust_load(tpath, &trust, &err);
	}
	moat_deploy_close(d);
	if (rc != 0) {
		return cli_fail(&err);
	}
	if (cli_globals.json) {
		printf("{\"keyid\":\"%s\",\"type\":\"%s\",\"trusted\":%zu,\"threshold\":%d}\n",
		       keyid, moat_key_type_name(type), trust.count, trust.threshold);
	} else {
		printf("%s\n", keyid);
		fprintf(stderr, "moat: %s key %.16s added to %s (threshold %d of %zu)\n",
			moat_key_type_name(type), keyid, MOAT_FW_KEYS_DIR "/" MOAT_FW_TRUST_FILE,
			trust.threshold, trust.count);
	}
	moat_fw_trust_free(&trust);
	return CLI_OK;
}

static int cmd_trust(const struct fw_opts *o)
{
	struct moat_err err = {0};
	if (o->argc != 0) {
		return cli_usage_error("fw trust: unexpected argument '%s'", o->argv[0]);
	}
	int64_t threshold = 0;
	if (o->threshold &&
	    moat_int_parse(o->threshold, 1, MOAT_FW_TRUST_MAX_KEYS, &threshold, &err) != 0) {
		return cli_usage_error("fw trust: --threshold: %s", err.msg);
	}
	struct moat_deploy *d = NULL;
	char dir[PATH_MAX], tpath[PATH_MAX];
	struct moat_fw_trust trust;
	memset(&trust, 0, sizeof(trust));
	int rc = cli_open(o->threshold ? MOAT_DEPLOY_WRITE : MOAT_DEPLOY_READ, &d, &err);
	if (rc == 0) {
		rc = keys_dir_of(d, dir, sizeof(dir), &err);
	}
	if (rc == 0 && o->threshold) {
		rc = moat_fwkeys_set_threshold(dir, (int)threshold, &err);
	}
	if (rc == 0) {
		rc = moat_path_join(tpath, sizeof(tpath), &err, "%s/%s", dir, MOAT_FW_TRUST_FILE);
	}
	if (rc == 0) {
		rc = moat_fwtrust_load(tpath, &trust, &err);
	}
	if (rc != 0) {
		moat_deploy_close(d);
		return cli_fail(&err);
	}
	if (cli_globals.json) {
		printf("{\"threshold\":%d,\"keys\":[", trust.threshold);
	} else {
		printf("threshold %d of %zu\n", trust.threshold, trust.count);
	}
	for (size_t i = 0; i < trust.count; i++) {
		enum moat_key_type type = MOAT_KEY_EC_P256;
		bool token = false;
		bool private_here = has_private(dir, trust.keys[i].keyid, &token);
		const char *tname = moat_fw_key_check(trust.keys[i].pkey, &type, NULL) == 0
					    ? moat_key_type_name(type)
					    : "?";
		if (cli_globals.json) {
			printf("%s{\"keyid\":\"%s\",\"type\":\"%s\",\"private_key\":%s,"
			       "\"token\":%s}",
			       i ? "," : "", trust.keys[i].keyid, tname,
			       private_here ? "true" : "false", token ? "true" : "false");
		} else {
			printf("%s  %-8s %s\n", trust.keys[i].keyid, tname,
			       token ? "(in a PKCS#11 token)"
				     : (private_here ? "" : "(public only)"));
		}
	}
	if (cli_globals.json) {
		printf("]}\n");
	}
	moat_fw_trust_free(&trust);
	moat_deploy_close(d);
	return CLI_OK;
}

static int cmd_key_revoke(const struct fw_opts *o)
{
	struct moat_err err = {0};
	if (o->pkcs11_uri || o->pkcs11_module || o->pin_file) {
		return cli_usage_error("fw key revoke: takes a KEYID and --threshold N only");
	}
	struct moat_deploy *d = NULL;
	char dir[PATH_MAX];
	char keyid[MOAT_FW_KEYID_HEX_LEN + 1];
	int threshold = 0;
	int64_t wanted = 0;
	if (o->threshold &&
	    moat_int_parse(o->threshold, 1, MOAT_FW_TRUST_MAX_KEYS, &wanted, &err) != 0) {
		return cli_usage_error("fw key revoke: --threshold: %s", err.msg);
	}
	int rc = cli_open(MOAT_DEPLOY_WRITE, &d, &err);
	if (rc == 0) {
		rc = keys_dir_of(d, dir, sizeof(dir), &err);
	}
	if (rc == 0) {
		rc = moat_fwkeys_resolve(dir, o->argv[1], keyid, &err);
	}
	if (rc == 0) {
		rc = moat_fwkeys_revoke(dir, keyid, (int)wanted, &threshold, &err);
	}
	moat_deploy_close(d);
	if (rc != 0) {
		return cli_fail(&err);
	}
	if (cli_globals.json) {
		printf("{\"revoked\":\"%s\",\"threshold\":%d}\n", keyid, threshold);
	} else {
		printf("revoked %s; threshold now %d\n", keyid, threshold);
	}
	return CLI_OK;
}

/* `fw key add --pkcs11-uri URI`: the key is loaded from its token (which proves it signs
 * and that the PIN opens it) and only its public half is recorded, with the URI. */
static int cmd_key_add(const struct fw_opts *o)
{
	struct moat_err err = {0};
	if (!o->pkcs11_uri) {
		return cli_usage_error("fw key add: --pkcs11-uri URI is required (moat fw keygen "
				       "makes a key kept in a file)");
	}
	struct moat_pkcs11_uri parsed;
	if (moat_pkcs11_uri_parse(o->pkcs11_uri, &parsed, &err) != 0) {
		return cli_usage_error("fw key add: %s", err.msg);
	}
	struct moat_deploy *d = NULL;
	char dir[PATH_MAX];
	char keyid[MOAT_FW_KEYID_HEX_LEN + 1];
	char *record = NULL;
	EVP_PKEY *key = NULL;
	enum moat_key_type type = MOAT_KEY_EC_P256;
	struct moat_fw_trust trust;
	memset(&trust, 0, sizeof(trust));
	int rc = cli_open(MOAT_DEPLOY_WRITE, &d, &err);
	if (rc == 0) {
		rc = keys_dir_of(d, dir, sizeof(dir), &err);
	}
	if (rc == 0) {
		rc = cli_token_key_load(d, o->pkcs11_uri, o->pkcs11_module, o->pin_file, &key,
					&err);
	}
	if (rc == 0) {
		rc = moat_fw_key_check(key, &type, &err);
	}
	/* A module named only on this command line goes into the recorded URI, so that
	 * signing later finds it; one from moat.conf stays there. */
	if (rc == 0 && o->pkcs11_module && !parsed.has_module_path) {
		rc = moat_pkcs11_uri_with_module(o->pkcs11_uri, o->pkcs11_module, &record, &err);
	}
	if (rc == 0) {
		rc = moat_fwkeys_add_token(dir, key, record ? record : o->pkcs11_uri, keyid, &err);
	}
	if (rc == 0) {
		char tpath[PATH_MAX];
		rc = moat_path_join(tpath, sizeof(tpath), &err, "%s/%s", dir, MOAT_FW_TRUST_FILE);
		if (rc == 0) {
			rc = moat_fwtrust_load(tpath, &trust, &err);
		}
	}
	EVP_PKEY_free(key);
	free(record);
	moat_deploy_close(d);
	if (rc != 0) {
		return cli_fail(&err);
	}
	if (cli_globals.json) {
		printf("{\"keyid\":\"%s\",\"type\":\"%s\",\"token\":true,\"trusted\":%zu,"
		       "\"threshold\":%d}\n",
		       keyid, moat_key_type_name(type), trust.count, trust.threshold);
	} else {
		printf("%s\n", keyid);
		fprintf(stderr,
			"moat: %s key %.16s in a PKCS#11 token added to %s (threshold %d of %zu)\n",
			moat_key_type_name(type), keyid, MOAT_FW_KEYS_DIR "/" MOAT_FW_TRUST_FILE,
			trust.threshold, trust.count);
	}
	moat_fw_trust_free(&trust);
	return CLI_OK;
}

static int cmd_key(const struct fw_opts *o)
{
	if (o->argc == 2 && strcmp(o->argv[0], "revoke") == 0) {
		return cmd_key_revoke(o);
	}
	if (o->argc == 1 && strcmp(o->argv[0], "add") == 0) {
		if (o->threshold) {
			return cli_usage_error("fw key add: --threshold belongs to key revoke and "
					       "trust");
		}
		return cmd_key_add(o);
	}
	return cli_usage_error("fw key: usage: moat fw key revoke KEYID | moat fw key add "
			       "--pkcs11-uri URI");
}

static int check_unique(char (*ids)[MOAT_FW_KEYID_HEX_LEN + 1], size_t n, const char *what,
			struct moat_err *err)
{
	for (size_t j = 0; j < n; j++) {
		if (strcmp(ids[j], ids[n]) == 0) {
			return moat_err_set(err, MOAT_EINVAL, "%s: key %.16s named twice", what,
					    ids[n]);
		}
	}
	return 0;
}

/* The ids of the keys to sign with into ids[]: those --key names (each once), or, without
 * --key and --key-uri, every trusted key whose private half is here (file or token). */
static int pick_keys(const struct fw_opts *o, const char *dir, const struct moat_fw_trust *trust,
		     char (*ids)[MOAT_FW_KEYID_HEX_LEN + 1], size_t *out_count,
		     struct moat_err *err)
{
	size_t nkeys = 0;
	int rc = 0;
	if (o->key_count > 0 || o->key_uri_count > 0) {
		for (size_t i = 0; i < o->key_count && rc == 0; i++) {
			rc = moat_fwkeys_resolve(dir, o->keys[i], ids[nkeys], err);
			if (rc == 0) {
				rc = check_unique(ids, nkeys, o->keys[i], err);
			}
			nkeys++;
		}
	} else {
		/* Every trusted key whose private half is here: enough for any threshold. */
		for (size_t i = 0; i < trust->count && nkeys < FW_MAX_SIGN_KEYS; i++) {
			bool token = false;
			if (has_private(dir, trust->keys[i].keyid, &token)) {
				memcpy(ids[nkeys++], trust->keys[i].keyid,
				       MOAT_FW_KEYID_HEX_LEN + 1);
			}
		}
		if (nkeys == 0) {
			rc = moat_err_set(err, MOAT_ENOENT,
					  "no trusted key with a private key in %s", dir);
		}
	}
	*out_count = nkeys;
	return rc;
}

/* A key from a token, which must be the trusted key expect (when not NULL) or, for a
 * --key-uri, any key of the trust list; its id into out_id. */
static int load_token_key(const struct moat_deploy *d, const struct fw_opts *o, const char *uri,
			  const struct moat_fw_trust *trust, const char *expect, EVP_PKEY **out,
			  char out_id[MOAT_FW_KEYID_HEX_LEN + 1], struct moat_err *err)
{
	int rc = cli_token_key_load(d, uri, o->pkcs11_module, o->pin_file, out, err);
	if (rc == 0) {
		rc = moat_fw_keyid(*out, out_id, err);
	}
	if (rc == 0 && expect && strcmp(out_id, expect) != 0) {
		rc = moat_err_set(err, MOAT_EVERIFY,
				  "%s: the token holds key %.16s, not the trusted %.16s it was "
				  "registered as",
				  uri, out_id, expect);
	}
	if (rc == 0 && !expect) {
		bool trusted = false;
		for (size_t i = 0; i < trust->count; i++) {
			trusted = trusted || strcmp(trust->keys[i].keyid, out_id) == 0;
		}
		if (!trusted) {
			rc = moat_err_set(err, MOAT_EDENIED,
					  "%s: key %.16s is not in the trust list (moat fw key add "
					  "--pkcs11-uri first)",
					  uri, out_id);
		}
	}
	if (rc != 0) {
		EVP_PKEY_free(*out);
		*out = NULL;
	}
	return rc;
}

/* The private keys of ids[0..count) into keys[] (files unlocked with the key passphrase,
 * asked only when one is a file; token keys through their recorded URI), then those of
 * --key-uri; *io_count grows by the latter. */
static int load_keys(const struct moat_deploy *d, const struct fw_opts *o, const char *dir,
		     const struct moat_fw_trust *trust, char (*ids)[MOAT_FW_KEYID_HEX_LEN + 1],
		     size_t *io_count, EVP_PKEY **keys, struct moat_err *err)
{
	char pass[MOAT_PASSPHRASE_MAX_LEN + 2] = "";
	bool have_pass = false;
	int rc = 0;
	size_t count = *io_count;
	for (size_t i = 0; rc == 0 && i < count; i++) {
		bool token = false;
		if (has_private(dir, ids[i], &token) && token) {
			char *uri = NULL;
			char id[MOAT_FW_KEYID_HEX_LEN + 1];
			rc = moat_fwkeys_token_uri(dir, ids[i], &uri, err);
			if (rc == 0) {
				rc = load_token_key(d, o, uri, trust, ids[i], &keys[i], id, err);
			}
			free(uri);
			continue;
		}
		if (!have_pass) {
			rc = key_passphrase(pass, sizeof(pass), false, err);
			have_pass = rc == 0;
		}
		if (rc == 0) {
			rc = moat_fwkeys_load_private(dir, ids[i], pass, &keys[i], err);
		}
	}
	OPENSSL_cleanse(pass, sizeof(pass));
	for (size_t i = 0; rc == 0 && i < o->key_uri_count; i++) {
		if (count == FW_MAX_SIGN_KEYS) {
			return moat_err_set(err, MOAT_EINVAL, "at most %d signing keys",
					    FW_MAX_SIGN_KEYS);
		}
		rc = load_token_key(d, o, o->key_uris[i], trust, NULL, &keys[count], ids[count],
				    err);
		if (rc == 0 && (rc = check_unique(ids, count, o->key_uris[i], err)) != 0) {
			EVP_PKEY_free(keys[count]);
			keys[count] = NULL;
		}
		if (rc == 0) {
			count++;
		}
	}
	*io_count = count;
	return rc;
}

static int cmd_sign(const struct fw_opts *o)
{
	struct moat_err err = {0};
	if (o->argc != 1) {
		return cli_usage_error("fw sign: usage: moat fw sign IMAGE --type DEVICE_TYPE "
				       "--version V --security-version N");
	}
	if (!o->type || !o->version || !o->security_version) {
		return cli_usage_error("fw sign: --type, --version and --security-version are "
				       "required");
	}
	int64_t secver = 0, expiry = FW_DEFAULT_EXPIRY_SECONDS;
	if (moat_device_type_check(o->type, &err) != 0 ||
	    moat_semver_check(o->version, &err) != 0 ||
	    moat_int_parse(o->security_version, 0, MOAT_FW_INT_MAX, &secver, &err) != 0 ||
	    (o->expires && moat_duration_parse(o->expires, 86400, &expiry, &err) != 0)) {
		return cli_usage_error("fw sign: %s", err.msg);
	}
	if (expiry < 1) {
		return cli_usage_error("fw sign: --expires must be positive");
	}

	struct moat_deploy *d = NULL;
	char dir[PATH_MAX], tpath[PATH_MAX];
	char ids[FW_MAX_SIGN_KEYS][MOAT_FW_KEYID_HEX_LEN + 1];
	EVP_PKEY *keys[FW_MAX_SIGN_KEYS] = {NULL};
	size_t nkeys = 0;
	char *json = NULL;
	size_t len = 0;
	struct moat_fw_trust trust;
	struct moat_manifest m;
	memset(&trust, 0, sizeof(trust));
	int rc = cli_open(MOAT_DEPLOY_READ, &d, &err);
	if (rc == 0) {
		rc = keys_dir_of(d, dir, sizeof(dir), &err);
	}
	if (rc == 0) {
		rc = moat_path_join(tpath, sizeof(tpath), &err, "%s/%s", dir, MOAT_FW_TRUST_FILE);
	}
	if (rc == 0) {
		rc = moat_fwtrust_load(tpath, &trust, &err);
	}
	if (rc != 0) {
		goto out;
	}
	if ((rc = pick_keys(o, dir, &trust, ids, &nkeys, &err)) != 0) {
		goto out;
	}
	if ((rc = load_keys(d, o, dir, &trust, ids, &nkeys, keys, &err)) != 0) {
		goto out;
	}
	if (nkeys < (size_t)trust.threshold) {
		/* Still signed, so keys held by different people can sign in turn later; said. */
		fprintf(stderr, "moat: warning: %zu signature%s, the trust list requires %d\n",
			nkeys, nkeys == 1 ? "" : "s", trust.threshold);
	}
	int64_t now = moat_time_now();
	struct moat_fw_sign_req req = {
		.image_path = o->argv[0],
		.device_type = o->type,
		.version = o->version,
		.security_version = secver,
		.issued_at = now,
		.expires_at = now + expiry,
	};
	rc = moat_fw_sign_image(&req, keys, nkeys, &m, &json, &len, &err);
	if (rc == 0 && o->out) {
		rc = moat_fs_write_atomic(o->out, json, len, 0644, &err);
	} else if (rc == 0 && fwrite(json, 1, len, stdout) != len) {
		rc = moat_err_set(&err, MOAT_EIO, "writing the envelope to stdout failed");
	}
	if (rc == 0 && o->out && cli_globals.json) {
		char sha[MOAT_SHA256_HEX_LEN + 1];
		moat_hex_encode(m.sha256, sizeof(m.sha256), sha);
		printf("{\"envelope\":");
		cli_json_string(stdout, o->out);
		printf(",\"device_type\":\"%s\",\"version\":\"%s\",\"security_version\":%lld,"
		       "\"size\":%llu,\"sha256\":\"%s\",\"signatures\":%zu}\n",
		       m.device_type, m.version, (long long)m.security_version,
		       (unsigned long long)m.size, sha, nkeys);
	} else if (rc == 0 && o->out) {
		char sha[MOAT_SHA256_HEX_LEN + 1];
		moat_hex_encode(m.sha256, sizeof(m.sha256), sha);
		fprintf(stderr,
			"moat: %s %s for %s (%llu bytes, sha256 %.16s..., security_version "
			"%lld) signed by %zu key%s\n",
			o->out, m.version, m.device_type, (unsigned long long)m.size, sha,
			(long long)m.security_version, nkeys, nkeys == 1 ? "" : "s");
	}
out:
	for (size_t i = 0; i < FW_MAX_SIGN_KEYS; i++) {
		EVP_PKEY_free(keys[i]);
	}
	free(json);
	moat_fw_trust_free(&trust);
	moat_deploy_close(d);
	return rc == 0 ? CLI_OK : cli_fail(&err);
}

/* The device type a manifest claims, read before verification only to stand in for a
 * device type the caller did not give (then mix-and-match is not being checked). */
static int claimed_type(const char *json, size_t len, char *out, size_t size)
{
	struct moat_envelope *env = malloc(sizeof(*env));
	struct moat_manifest m;
	int rc = -1;
	if (env && moat_envelope_parse(json, len, env, NULL) == 0 &&
	    moat_manifest_parse(env->payload, env->payload_len, &m, NULL) == 0) {
		snprintf(out, size, "%s", m.device_type);
		rc = 0;
	}
	free(env);
	return rc;
}

static int cmd_verify(const struct fw_opts *o)
{
	struct moat_err err = {0};
	if (o->argc != 2) {
		return cli_usage_error("fw verify: usage: moat fw verify IMAGE ENVELOPE");
	}
	/* A missing file is a mistake on the command line, not a verdict on the image. */
	for (int i = 0; i < 2; i++) {
		struct stat st;
		if (stat(o->argv[i], &st) != 0) {
			moat_err_errno(&err, MOAT_ENOENT, errno, "fw verify: %s %s",
				       i == 0 ? "image" : "envelope", o->argv[i]);
			return cli_fail(&err);
		}
	}
	struct moat_fw_policy policy = {
		.purpose = o->boot ? MOAT_FW_FOR_BOOT : MOAT_FW_FOR_INSTALL,
		.device_type = o->device_type,
		.current_version = o->current_version,
		.now = moat_time_now(),
	};
	if ((o->floor &&
	     moat_int_parse(o->floor, 0, MOAT_FW_INT_MAX, &policy.security_floor, &err) != 0) ||
	    (o->now && moat_int_parse(o->now, 0, MOAT_FW_INT_MAX, &policy.now, &err) != 0) ||
	    (o->last_issued_at && moat_int_parse(o->last_issued_at, 0, MOAT_FW_INT_MAX,
						 &policy.last_issued_at, &err) != 0) ||
	    (o->device_type && moat_device_type_check(o->device_type, &err) != 0) ||
	    (o->current_version && moat_semver_check(o->current_version, &err) != 0)) {
		return cli_usage_error("fw verify: %s", err.msg);
	}

	char tpath[PATH_MAX];
	char *json = NULL;
	size_t len = 0;
	char type[MOAT_DEVICE_TYPE_MAX_LEN + 1];
	struct moat_fw_trust trust;
	memset(&trust, 0, sizeof(trust));
	int rc = 0;
	if (o->trust) {
		rc = moat_path_join(tpath, sizeof(tpath), &err, "%s", o->trust);
	} else {
		char dir[PATH_MAX];
		rc = moat_deploy_locate(cli_globals.dir, dir, sizeof(dir), &err);
		if (rc == 0) {
			rc = moat_path_join(tpath, sizeof(tpath), &err, "%s/%s/%s", dir,
					    MOAT_FW_KEYS_DIR, MOAT_FW_TRUST_FILE);
		}
	}
	if (rc == 0) {
		rc = moat_fwtrust_load(tpath, &trust, &err);
	}
	if (rc == 0) {
		/* One byte over the limit, so an oversize envelope is refused as such. */
		rc = moat_fs_read_all(o->argv[1], MOAT_ENVELOPE_MAX_BYTES + 1, &json, &len, &err);
		if (rc == MOAT_EINVAL && moat_fs_exists(o->argv[1])) {
			rc = moat_err_set(&err, MOAT_EINVAL, "%s: envelope larger than %u bytes",
					  o->argv[1], MOAT_ENVELOPE_MAX_BYTES);
		}
	}
	if (rc != 0) {
		moat_fw_trust_free(&trust);
		free(json);
		return cli_fail(&err);
	}
	if (!policy.device_type) {
		policy.device_type = claimed_type(json, len, type, sizeof(type)) == 0 ? type : "-";
	}
	struct moat_fw_decision dec;
	struct moat_manifest m;
	enum moat_fw_verdict v =
		moat_fw_verify_image(o->argv[0], json, len, &trust, &policy, &m, &dec);
	if (cli_globals.json) {
		printf("{\"verdict\":\"%s\",\"reason\":", moat_fw_verdict_name(v));
		cli_json_string(stdout, dec.msg);
		printf("}\n");
	} else if (v == MOAT_FW_ACCEPT) {
		printf("accept: %s\n", dec.msg);
	}
	if (v != MOAT_FW_ACCEPT) {
		fprintf(stderr, "moat: refused (%s): %s\n", moat_fw_verdict_name(v), dec.msg);
	}
	moat_fw_trust_free(&trust);
	free(json);
	return v == MOAT_FW_ACCEPT ? CLI_OK : CLI_FAIL;
}

int fw_main(int argc, char **argv)
{
	int st = cli_group_help(argc, argv, usage, true);
	if (st != MOAT_OPTS_CONTINUE) {
		return st;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "publish") == 0 || strcmp(cmd, "list") == 0 || strcmp(cmd, "status") == 0) {
		return fw_release_main(argc - 1, argv + 1);
	}
	if (strcmp(cmd, "rollout") == 0) {
		return fw_rollout_main(argc - 1, argv + 1);
	}
	struct fw_opts o;
	st = parse_opts(argc, argv, 2, &o);
	if (st >= 0) {
		return st;
	}
	if (strcmp(cmd, "keygen") == 0) {
		st = only(cmd, &o, " type ");
		return st >= 0 ? st : cmd_keygen(&o);
	}
	if (strcmp(cmd, "trust") == 0) {
		st = only(cmd, &o, " threshold ");
		return st >= 0 ? st : cmd_trust(&o);
	}
	if (strcmp(cmd, "key") == 0) {
		st = only(cmd, &o, " pkcs11-uri pkcs11-module pin-file threshold ");
		return st >= 0 ? st : cmd_key(&o);
	}
	if (strcmp(cmd, "sign") == 0) {
		st = only(cmd, &o,
			  " type version security-version expires out key key-uri pkcs11-module "
			  "pin-file ");
		return st >= 0 ? st : cmd_sign(&o);
	}
	if (strcmp(cmd, "verify") == 0) {
		st = only(cmd, &o,
			  " device-type floor current-version trust now last-issued-at boot ");
		return st >= 0 ? st : cmd_verify(&o);
	}
	return cli_usage_error(
		"fw: unknown command '%s' (keygen, trust, key, sign, verify, publish, "
		"list, status, rollout)",
		cmd);
}
