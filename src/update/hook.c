/* hook.c: what moat-agent plugs into its check_update command and its first connection:
 * moat_update_agent_hook runs one moat_update_check and answers the command; when a release
 * was staged it asks the agent to restart, which under moat-boot starts the trial.
 * moat_update_confirm_trial confirms a trial once the agent has reached the broker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/agent.h"
#include "moat/update.h"

void moat_update_agent_hook(struct moat_device *dev, const struct moat_msg_command *cmd,
			    struct moat_msg_response *resp, void *ctx)
{
	const struct moat_update_conf *conf = ctx;
	struct moat_update_result res;
	struct moat_err err;

	(void)cmd;
	if (conf == NULL || moat_update_check(conf, &res, &err) != 0) {
		snprintf(resp->status, sizeof(resp->status), "failed");
		snprintf(resp->detail, sizeof(resp->detail), "%.*s", MOAT_MSG_DETAIL_MAX_LEN,
			 conf == NULL ? "no update client configured" : err.msg);
		return;
	}
	switch (res.outcome) {
	case MOAT_UPDATE_STAGED:
		snprintf(resp->status, sizeof(resp->status), "accepted");
		dev->reboot_requested = true; /* moat-boot starts the trial */
		break;
	case MOAT_UPDATE_REFUSED:
		snprintf(resp->status, sizeof(resp->status), "refused");
		break;
	case MOAT_UPDATE_TRIAL_PENDING:
	case MOAT_UPDATE_UP_TO_DATE:
	default:
		snprintf(resp->status, sizeof(resp->status), "completed");
		break;
	}
	snprintf(resp->detail, sizeof(resp->detail), "%.*s", MOAT_MSG_DETAIL_MAX_LEN, res.msg);
}

int moat_update_confirm_trial(bool *out_confirmed, struct moat_err *err)
{
	const char *trial = getenv("MOAT_BOOT_TRIAL");
	const char *dir = getenv("MOAT_BOOT_STATE");

	*out_confirmed = false;
	if (trial == NULL || strcmp(trial, "1") != 0 || dir == NULL || dir[0] == '\0') {
		return 0;
	}
	int rc = moat_slots_confirm(dir, NULL, err);
	if (rc == MOAT_ESTATE) {
		return 0; /* already confirmed by an earlier connection of this process */
	}
	if (rc == 0) {
		*out_confirmed = true;
	}
	return rc;
}
