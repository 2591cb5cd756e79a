/* failpoint.c: the test hook of failpoint.h. Without MOAT_FAILPOINTS this file compiles to
 * nothing, so production builds never read MOAT_UPDATE_KILL_AT.
 */
#include "failpoint.h"

#if defined(MOAT_FAILPOINTS)

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>

#include "moat/timeutil.h"

void moat_update_failpoint(const char *what)
{
	static int64_t steps;
	const char *at = getenv("MOAT_UPDATE_KILL_AT");
	int64_t k = 0;

	(void)what;
	if (at == NULL || moat_int_parse(at, 1, 1000000, &k, NULL) != 0) {
		return;
	}
	if (++steps == k) {
		raise(SIGKILL);
	}
}

#endif
