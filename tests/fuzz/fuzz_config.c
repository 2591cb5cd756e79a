/* fuzz_config.c: moat.conf parser (config.c over inih) and everything that reads a parsed
 * config: typed getters, key and section checks, list splitting. Checks the invariants a
 * caller relies on: entries are bounded, every entry has a positive line number, and a
 * value that parsed as an integer lies in the range asked for. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_config *cfg = NULL;
	struct moat_err err;
	moat_err_clear(&err);
	if (moat_config_parse("fuzz.conf", (const char *)data, size, &cfg, &err) != 0) {
		if (cfg != NULL || err.msg[0] == '\0') {
			abort(); /* a failure hands nothing back and always says why */
		}
		return 0;
	}
	static const char *const sections[] = {"deployment", "broker", "server", NULL};
	static const char *const keys[] = {"name", "hosts", "port", NULL};
	if (moat_config_check_sections(cfg, sections, &err) != 0 && err.msg[0] == '\0') {
		abort();
	}
	for (size_t i = 0; i < cfg->count; i++) {
		const struct moat_config_entry *e = &cfg->entries[i];
		if (e->line <= 0 || strlen(e->value) > MOAT_CONFIG_VALUE_MAX ||
		    moat_config_find(cfg, e->section, e->key) != e) {
			abort();
		}
		if (moat_config_check_keys(cfg, e->section, keys, &err) != 0 &&
		    err.msg[0] == '\0') {
			abort();
		}
		int64_t v = 0;
		if (moat_config_get_int(cfg, e->section, e->key, 0, -5, 70000, &v, &err) == 0 &&
		    (v < -5 || v > 70000)) {
			abort();
		}
		if (moat_config_get_duration(cfg, e->section, e->key, 0, 1, 400LL * 86400, &v,
					     &err) == 0 &&
		    (v < 1 || v > 400LL * 86400)) {
			abort();
		}
		bool b = false;
		if (moat_config_get_bool(cfg, e->section, e->key, false, &b, &err) != 0 &&
		    err.msg[0] == '\0') {
			abort();
		}
		char **items = NULL;
		size_t count = 0;
		if (moat_config_split_list(e->value, &items, &count, &err) == 0) {
			for (size_t j = 0; j < count; j++) {
				if (items[j][0] == '\0') {
					abort();
				}
			}
			moat_config_list_free(items, count);
		}
	}
	/* moat config check's rewriting of an error into "<path>:<line>: ...", over messages
	 * naming what the file holds and the input itself */
	char where[256];
	char msg[sizeof(err.msg)];
	size_t n = size < sizeof(msg) - 1 ? size : sizeof(msg) - 1;
	memcpy(msg, data, n);
	msg[n] = '\0';
	const char *msgs[] = {err.msg, msg, "fuzz.conf: [broker] port: bad", "[x] y"};
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		int line = moat_config_error_where(cfg, msgs[i], where, sizeof(where));
		if (line < 0 || strlen(where) >= sizeof(where) ||
		    strncmp(where, "fuzz.conf:", 10) != 0) {
			abort();
		}
	}
	moat_config_free(cfg);
	return 0;
}
