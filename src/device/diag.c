/* diag.c: what a Linux device can say about itself, for the diagnostics command (real
 * values, where the tutorial sent ESP.getFreeHeap() and friends), and the certificate
 * check moat-agent makes before it ever connects: a clock before notBefore is the most
 * common field failure, and it deserves an error that names the clock rather than a TLS
 * alert from the broker.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <time.h>

#include "moat/agent_conf.h"
#include "moat/certinfo.h"
#include "moat/timeutil.h"

#include "device_internal.h"

int moat_agent_check_cert(const char *cert_path, int64_t now, int64_t *out_not_after,
			  struct moat_err *err)
{
	struct moat_cert_info info;
	char a[MOAT_TIME_ISO_LEN], b[MOAT_TIME_ISO_LEN];
	int rc = moat_cert_info_file(cert_path, &info, err);
	if (rc != 0) {
		return rc;
	}
	if (out_not_after) {
		*out_not_after = info.not_after;
	}
	if (now < info.not_before) {
		moat_time_iso(now, a);
		moat_time_iso(info.not_before, b);
		return moat_err_set(err, MOAT_ESTATE,
				    "the system clock (%s) is before the certificate's notBefore "
				    "(%s): set the clock (NTP) and start again",
				    a, b);
	}
	if (now > info.not_after) {
		moat_time_iso(info.not_after, b);
		return moat_err_set(
			err, MOAT_ESTATE,
			"%s: the certificate expired on %s: renew it (moat device renew)",
			cert_path, b);
	}
	return 0;
}

/* The number after key (e.g. "VmRSS:" in "VmRSS:   1234 kB") in the /proc file path, or -1
 * when the file or the key is missing. */
static int64_t proc_number(const char *path, const char *key)
{
	FILE *f = fopen(path, "re");
	char line[256];
	size_t key_len = strlen(key);
	long long v = -1;
	if (!f) {
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, key_len) == 0) {
			char *end = NULL;
			v = strtoll(line + key_len, &end, 10);
			if (end == line + key_len) {
				v = -1;
			}
			break;
		}
	}
	fclose(f);
	return v;
}

static int64_t rss_kb(void)
{
	return proc_number("/proc/self/status", "VmRSS:");
}

/* In bytes: /proc/meminfo counts kB. */
static int64_t mem_available(void)
{
	int64_t kb = proc_number("/proc/meminfo", "MemAvailable:");
	return kb < 0 ? -1 : kb * 1024;
}

/* The MAC of the interface that holds addr ("" when none, e.g. no connection yet). */
static void mac_of(const char *addr, char *buf, size_t size)
{
	struct ifaddrs *ifs = NULL, *i;
	char ifname[IF_NAMESIZE + 1] = "";
	buf[0] = '\0';
	if (!addr[0] || getifaddrs(&ifs) != 0) {
		return;
	}
	for (i = ifs; i; i = i->ifa_next) {
		char text[INET6_ADDRSTRLEN] = "";
		if (!i->ifa_addr) {
			continue;
		}
		if (i->ifa_addr->sa_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr,
				  text, sizeof(text));
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			inet_ntop(AF_INET6,
				  &((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr, text,
				  sizeof(text));
		}
		if (text[0] && strcmp(text, addr) == 0) {
			snprintf(ifname, sizeof(ifname), "%s", i->ifa_name);
			break;
		}
	}
	for (i = ifs; ifname[0] && i; i = i->ifa_next) {
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_PACKET &&
		    strcmp(i->ifa_name, ifname) == 0) {
			struct sockaddr_ll *ll = (struct sockaddr_ll *)(void *)i->ifa_addr;
			if (ll->sll_halen == 6) {
				snprintf(buf, size, "%02x:%02x:%02x:%02x:%02x:%02x",
					 ll->sll_addr[0], ll->sll_addr[1], ll->sll_addr[2],
					 ll->sll_addr[3], ll->sll_addr[4], ll->sll_addr[5]);
			}
			break;
		}
	}
	freeifaddrs(ifs);
}

void moat_diag_collect(const struct moat_device *dev, struct moat_msg_diagnostics *d)
{
	struct timespec ts;
	struct sysinfo si;
	struct utsname u;
	memset(d, 0, sizeof(*d));
	snprintf(d->device_id, sizeof(d->device_id), "%s", dev->conf.id);
	clock_gettime(CLOCK_REALTIME, &ts);
	d->timestamp_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	d->uptime_ms = moat_time_mono_ms() - dev->start_mono_ms;
	if (sysinfo(&si) == 0) {
		d->system_uptime_s = si.uptime;
	}
	d->rss_kb = rss_kb();
	d->free_heap = mem_available();
	if (getloadavg(d->load, 3) != 3) {
		d->load[0] = d->load[1] = d->load[2] = 0;
	}
	if (dev->io.local_addr) {
		dev->io.local_addr(dev->io.ctx, d->ip_address, sizeof(d->ip_address));
	}
	mac_of(d->ip_address, d->mac_address, sizeof(d->mac_address));
	if (uname(&u) == 0) {
		char k[3 * sizeof(u.release) + 3];
		snprintf(k, sizeof(k), "%s %s %s", u.sysname, u.release, u.machine);
		memcpy(d->kernel, k, sizeof(d->kernel) - 1);
		d->kernel[sizeof(d->kernel) - 1] = '\0';
	}
	snprintf(d->agent_version, sizeof(d->agent_version), "%s", MOAT_VERSION);
	if (dev->cert_not_after > 0) {
		char iso[MOAT_TIME_ISO_LEN];
		moat_time_iso(dev->cert_not_after, iso);
		snprintf(d->cert_not_after, sizeof(d->cert_not_after), "%s", iso);
		d->cert_days_left = (dev->cert_not_after - moat_time_now()) / 86400;
	}
	d->interval_s = dev->interval_ms / 1000;
	d->seq = dev->next_seq - 1;
	d->queued = (int64_t)dev->queue.count;
}
