/* signals.c: one way to catch the stop signals (see moat/signals.h): sigaction with no
 * SA_RESTART and an empty mask, and SIGPIPE ignored. */
#include "moat/signals.h"

#include <signal.h>
#include <string.h>

void moat_signals_catch(void (*handler)(int), int extra)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler; /* no SA_RESTART: a wait in progress returns at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (extra != 0) {
		sigaction(extra, &sa, NULL);
	}
	sa.sa_handler = SIG_IGN; /* a peer that goes away is an error, not a signal */
	sigaction(SIGPIPE, &sa, NULL);
}
