/* update_main.c: moat-update, one update check from the command line (what the agent's
 * check_update hook does in process): moat_update_check with the device's certificate.
 *
 *   moat-update --state DIR --server https://HOST:PORT --ca CA --cert CERT --key KEY
 *               [--timeout SECONDS] [--now EPOCH-SECONDS]
 * (--now sets the device's clock for the decision, as a device with a wrong clock would)
 *
 * Exit 0 when up to date, staged (then restart through moat-boot) or a trial is pending;
 * 1 with one line on stderr when the update was refused or the check failed.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "moat/log.h"
#include "moat/timeutil.h"
#include "moat/update.h"

static const char *const outcome_names[] = {"up_to_date", "staged", "refused", "trial_pending"};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"state", required_argument, NULL, 's'}, {"server", required_argument, NULL, 'u'},
		{"ca", required_argument, NULL, 'c'},	 {"cert", required_argument, NULL, 'e'},
		{"key", required_argument, NULL, 'k'},	 {"timeout", required_argument, NULL, 't'},
		{"now", required_argument, NULL, 'n'},	 {NULL, 0, NULL, 0},
	};
	struct moat_update_conf conf;
	struct moat_update_result res;
	struct moat_err err;
	int64_t v = 0;
	int c;

	memset(&conf, 0, sizeof(conf));
	moat_log_init("moat-update", MOAT_LOG_INFO, false);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			conf.state_dir = optarg;
			break;
		case 'u':
			conf.server_url = optarg;
			break;
		case 'c':
			conf.ca_file = optarg;
			break;
		case 'e':
			conf.cert_file = optarg;
			break;
		case 'k':
			conf.key_file = optarg;
			break;
		case 't':
			if (moat_duration_parse(optarg, 1, &v, &err) != 0 || v < 1 || v > 86400) {
				fprintf(stderr, "moat-update: --timeout: 1s..1d\n");
				return 2;
			}
			conf.timeout_seconds = (long)v;
			break;
		case 'n':
			if (moat_int_parse(optarg, 1, MOAT_FW_INT_MAX, &conf.now, &err) != 0) {
				fprintf(stderr, "moat-update: --now: %s\n", err.msg);
				return 2;
			}
			break;
		default:
			return 2;
		}
	}
	if (optind != argc || conf.state_dir == NULL || conf.server_url == NULL ||
	    conf.ca_file == NULL || conf.cert_file == NULL || conf.key_file == NULL) {
		fprintf(stderr, "usage: moat-update --state DIR --server https://HOST:PORT --ca CA "
				"--cert CERT --key KEY [--timeout S] [--now T]\n");
		return 2;
	}
	if (strncmp(conf.server_url, "https://", 8) != 0 ||
	    strlen(conf.server_url) > MOAT_UPDATE_URL_MAX_LEN) {
		fprintf(stderr, "moat-update: --server: an https:// URL is required\n");
		return 2;
	}
	if (moat_update_check(&conf, &res, &err) != 0) {
		fprintf(stderr, "moat-update: %s\n", err.msg);
		return 1;
	}
	if (res.outcome == MOAT_UPDATE_REFUSED) {
		fprintf(stderr, "moat-update: %s\n", res.msg);
		return 1;
	}
	printf("%s: %s\n", outcome_names[res.outcome], res.msg);
	return 0;
}
