/* msg_linux.c: what only a Linux device sends (moat_device.h, "host builds only"):
 * diagnostics with the Linux fields (system uptime, RSS, load, kernel, the client
 * certificate's expiry), and the update stages' names that moat's parsers read back. Compiled into
 * the host libraries (moat-agent's messages), never into an MCU firmware (tests/mcu/build.sh, the
 * ESP-IDF component), whose diagnostics are msg.c's mdev_msg_diagnostics.
 */
#include <stddef.h>
#include <string.h>

#include "jwrite.h"
#include "moat_device.h"

/* Diagnostics' members after device_id, in the order written: one table for the checks
 * and the writing (smaller on an MCU than a call per field). */
enum { F_COUNTER, F_DAYS, F_LOAD, F_IP, F_TEXT };
#define DIAG(key, kind, max, field)                                      \
	{                                                                \
		key, kind, max, offsetof(struct mdev_diagnostics, field) \
	}
static const struct {
	const char *key;
	unsigned char kind;
	unsigned char max; /* F_TEXT: bytes */
	unsigned short off;
} diag_fields[] = {
	DIAG("timestamp", F_COUNTER, 0, timestamp_ms),
	DIAG("uptime_ms", F_COUNTER, 0, uptime_ms),
	DIAG("system_uptime_s", F_COUNTER, 0, system_uptime_s),
	DIAG("rss_kb", F_COUNTER, 0, rss_kb),
	DIAG("free_heap", F_COUNTER, 0, free_heap),
	DIAG("load", F_LOAD, 0, load),
	DIAG("ip_address", F_IP, 0, ip_address),
	DIAG("mac_address", F_TEXT, 23, mac_address),
	DIAG("kernel", F_TEXT, 127, kernel),
	DIAG("agent_version", F_TEXT, 31, firmware_version),
	DIAG("cert_not_after", F_TEXT, 31, cert_not_after),
	DIAG("cert_days_left", F_DAYS, 0, cert_days_left), /* only with cert_not_after */
	DIAG("interval_s", F_COUNTER, 0, interval_s),
	DIAG("seq", F_COUNTER, 0, seq),
	DIAG("queued", F_COUNTER, 0, queued),
};

int mdev_msg_diagnostics_linux(const struct mdev_diagnostics *d, char *buf, size_t size,
			       size_t *out_len)
{
	struct jw w;
	const char *base = (const char *)d;
	jw_start(&w, buf, size);
	*out_len = 0;
	if (!mdev_name_ok(d->device_id, MDEV_ID_MAX_LEN)) {
		return -1;
	}
	/* pass 0 checks every field, pass 1 writes */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			jw_open(&w, NULL);
			jw_text(&w, "device_id", d->device_id);
		}
		for (size_t i = 0; i < sizeof(diag_fields) / sizeof(diag_fields[0]); i++) {
			const char *key = diag_fields[i].key;
			const void *p = base + diag_fields[i].off;
			int64_t v = 0;
			const char *text = NULL;
			bool ok = true;
			switch (diag_fields[i].kind) {
			case F_COUNTER:
			case F_DAYS:
				memcpy(&v, p, sizeof(v));
				ok = diag_fields[i].kind == F_COUNTER
					     ? counter_ok(v)
					     : v >= -MDEV_INT_MAX && v <= MDEV_INT_MAX;
				if (pass == 1 && (diag_fields[i].kind == F_COUNTER ||
						  given(d->cert_not_after))) {
					jw_int(&w, key, v);
				}
				break;
			case F_LOAD:
				for (int k = 0; k < 3; k++) {
					ok = ok && finite(d->load[k]) && d->load[k] >= 0;
				}
				if (pass == 1) {
					jw_key(&w, key);
					for (int k = 0; k < 3; k++) {
						jw_lit(&w, k == 0 ? "[" : ",");
						jw_number(&w, d->load[k]);
					}
					jw_lit(&w, "]");
				}
				break;
			default: /* F_IP, F_TEXT */
				memcpy(&text, p, sizeof(text));
				ok = diag_fields[i].kind == F_IP
					     ? ip_syntax_ok(text)
					     : opt_text_ok(text, diag_fields[i].max);
				if (pass == 1) {
					jw_opt_text(&w, key, text);
				}
				break;
			}
			if (!ok) {
				return -1;
			}
		}
	}
	jw_close(&w);
	return jw_finish(&w, out_len);
}

const char *mdev_update_stage_name(enum mdev_update_stage st)
{
	return (unsigned)st < MDEV_UPD_STAGE_COUNT ? mdev_stage_names[st] : "unknown";
}
