/* sandbox.h: what a moat daemon gives up once it has started (src/sandbox/): its user (when
 * started as root), every capability, the right to gain privileges again, and every system
 * call outside its allow-list (a seccomp filter, libseccomp). Used only by the daemons'
 * mains: moatd and moat-agent.
 *
 * The order a daemon follows (docs/ARCHITECTURE.md, "Privileges"):
 *   1. moat_sandbox_user_lookup while the user database is reachable (first thing).
 *   2. Everything that needs the starting user: private keys only it may read, binding
 *      sockets, dlopen of a PKCS#11 module, starting threads.
 *   3. moat_sandbox_switch_user (a no-op unless started as root with a user).
 *   4. What must already run as that user (it proves at start what later reconnects need).
 *   5. moat_sandbox_lock: no capabilities, no_new_privs, the filter on every thread. From
 *      here on a system call outside the profile kills the whole process (SIGSYS), so
 *      nothing that needs one may follow (no dlopen, no exec unless the profile allows it).
 *
 * Contract: every function returns 0 or a negative MOAT_E code with err filled; a failure
 * leaves the process as privileged as before the call or less, never more, and the caller
 * MUST exit (a daemon never runs half-locked). Nothing here prints or logs: the caller logs
 * struct moat_sandbox_report once, as its security log's record of the profile in force.
 */
#ifndef MOAT_SANDBOX_H
#define MOAT_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "moat/err.h"

#define MOAT_SANDBOX_USER_MAX_LEN 32

/* One allow-list per daemon (src/sandbox/syscalls.c). */
enum moat_sandbox_profile {
	MOAT_SANDBOX_MOATD, /* moatd: threads, TLS, SQLite, files, sockets; no exec, no fork */
	MOAT_SANDBOX_AGENT, /* moat-agent and what it starts: moat-update, a sensor command,
			       its own re-exec on reboot (the filter is inherited by children) */
};

/* Who the daemon will run as. */
struct moat_sandbox_user {
	bool do_switch; /* started as root: switch to uid/gid */
	uid_t uid;
	gid_t gid;
	char name[MOAT_SANDBOX_USER_MAX_LEN + 1]; /* the account's name, or "uid N" */
};

/* Started as root (euid 0) with a non-empty name: the account name must exist and not be
 * uid 0 (MOAT_ENOENT / MOAT_EINVAL naming it), and do_switch is set. As root without a
 * name, or not as root (a developer's run: no other user can be taken), do_switch is false
 * and out names the current user. */
MOAT_MUST_CHECK int moat_sandbox_user_lookup(const char *name, struct moat_sandbox_user *out,
					     struct moat_err *err);

/* With u->do_switch: drops the capability bounding set, sets the supplementary groups to
 * u->gid alone, then the real, effective and saved gid and uid (every thread: glibc applies
 * set*id process-wide), and checks that uid 0 cannot be taken back. Without: does nothing.
 * Files opened before stay open. */
MOAT_MUST_CHECK int moat_sandbox_switch_user(const struct moat_sandbox_user *u,
					     struct moat_err *err);

/* What moat_sandbox_lock put in force. */
struct moat_sandbox_report {
	const char *profile; /* "moatd" or "moat-agent" */
	size_t syscalls;     /* system calls the filter allows on this architecture */
	bool sanitizer;	     /* the sanitizer allowance is included (sanitizer builds) */
	bool inherited;	     /* a filter was already in force (inherited: agent re-exec) */
};

/* Drops every capability (when the process still has CAP_SETPCAP: the bounding set, and
 * the securebits that stop uid 0 regaining capabilities at exec, locked; always: ambient,
 * inheritable, permitted, effective), sets no_new_privs and installs the profile's seccomp
 * filter on every thread of the process (SECCOMP_FILTER_FLAG_TSYNC). The filter's default
 * action is SCMP_ACT_KILL_PROCESS: a call outside the list kills the process with SIGSYS,
 * visibly to its parent. clone3 fails with ENOSYS instead (glibc then uses clone, whose
 * flags a filter can read). When a filter is already in force it adds none (a re-executed
 * agent keeps the one it inherited; filters cannot be removed). */
MOAT_MUST_CHECK int moat_sandbox_lock(enum moat_sandbox_profile profile,
				      struct moat_sandbox_report *out, struct moat_err *err);

/* The names of every system call the profile allows (with any arguments or some), the
 * sanitizer allowance included in sanitizer builds, into out (up to max); returns how many
 * there are (more than max: out holds the first max). For tests and documentation. */
size_t moat_sandbox_names(enum moat_sandbox_profile profile, const char **out, size_t max);

#if defined(MOAT_FAILPOINTS)
/* Test builds only: makes a system call no profile allows (personality(0xffffffff), a
 * harmless query when no filter is in force). Async-signal-safe. Returns only when no
 * filter stopped it. */
void moat_sandbox_failpoint_forbidden(void);
#endif

#endif
