/* failpoint.h: the power-fail test hook of the update code, shared inside src/device only
 * and compiled in only when the build defines MOAT_FAILPOINTS (CMake option
 * MOAT_FAILPOINTS, which scripts/check turns on for its test builds; a production build
 * leaves it off, and then MOAT_FAILPOINT expands to nothing and no code reads the
 * environment).
 *
 * With failpoints, when the environment has MOAT_UPDATE_KILL_AT=k, the k-th step (state
 * write, rename, downloaded chunk) of this process raises SIGKILL
 * (tests/e2e/test_update_powerfail.sh). The update code calls MOAT_FAILPOINT before each
 * step.
 */
#ifndef MOAT_FAILPOINT_H
#define MOAT_FAILPOINT_H

#if defined(MOAT_FAILPOINTS)
void moat_update_failpoint(const char *what);
#define MOAT_FAILPOINT(what) moat_update_failpoint(what)
#else
#define MOAT_FAILPOINT(what) ((void)0)
#endif

#endif
