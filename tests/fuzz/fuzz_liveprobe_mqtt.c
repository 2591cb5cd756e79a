/* fuzz_liveprobe_mqtt.c: libFuzzer harness for the MQTT 5 reader of the live probes
 * (lp_mqtt_read, lp_mqtt_expect, lp_mqtt_suback_codes in src/audit/liveprobe.c), which reads
 * what a broker, or whatever answers on its port, sends to `moat audit --live` and
 * `moat doctor --connect`. The input is the byte stream, fed through a socket pair.
 * Invariants: a packet read is at most LP_PACKET_MAX bytes, SUBACK codes never come from
 * beyond its body, a leaked topic is a NUL-terminated string within its buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "moat/liveprobe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	if (size > 100000 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
		return 0;
	}
	int buf = 262144;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	size_t off = 0;
	while (off < size) {
		ssize_t n = write(sv[1], data + off, size - off);
		if (n <= 0) {
			break;
		}
		off += (size_t)n;
	}
	shutdown(sv[1], SHUT_WR);
	struct lp_conn c;
	memset(&c, 0, sizeof(c));
	c.fd = sv[0];
	c.timeout_ms = 100;
	c.stage = LP_STAGE_OPEN;
	/* the first half as single packets, the rest through expect (PUBLISH topics kept) */
	for (int i = 0; i < 4; i++) {
		struct lp_packet p;
		if (lp_mqtt_read(&c, &p, 100) != 0) {
			break;
		}
		if (p.len > LP_PACKET_MAX) {
			abort();
		}
		uint8_t rcs[64];
		size_t n = lp_mqtt_suback_codes(&p, rcs, sizeof(rcs));
		if (n > p.len) {
			abort();
		}
		free(p.body);
	}
	char leak[32] = "";
	int rc = 0;
	while (lp_mqtt_expect(&c, LP_MQTT_SUBACK, 100, &rc, leak, sizeof(leak)) == 0) {
		if (strnlen(leak, sizeof(leak)) >= sizeof(leak)) {
			abort();
		}
	}
	close(sv[0]);
	close(sv[1]);
	return 0;
}
