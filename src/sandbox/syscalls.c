/* syscalls.c: the seccomp allow-list of each daemon, one table per daemon, in one place.
 *
 * To extend one: add the call's name (as in syscalls(2); a name this architecture does not
 * have is skipped) to the group it belongs to, with the reason in the group's comment if
 * it is a new one. tests/unit/test_sandbox.c checks that every name is a real system call
 * and appears once; tests/e2e/test_privileges.sh and every moatd and agent e2e test run the
 * daemons under their filter, where a missing call is a SIGSYS kill naming nothing: find it
 * with `strace -f -c` on the daemon, or from the kernel's audit line (dmesg: "type=1326 ...
 * syscall=N") which names its number.
 *
 * Everything a daemon does before moat_sandbox_lock (reading its configuration, loading
 * keys, dlopen of a PKCS#11 module, binding its listener, resolving its user) needs no entry
 * here; only what runs after it, for the daemon's whole life, does.
 */
#include <stddef.h>

#include "sandbox_internal.h"

/* moatd: two to four threads (main, libmicrohttpd's, the MQTT ingest, more to come such as
 * a connection reaper), serving HTTPS with GnuTLS, talking MQTT over OpenSSL (libmosquitto),
 * reading and writing the deployment directory and SQLite. It never starts a process. */
static const char *const moatd_calls[] = {
	/* memory: malloc, thread stacks, SQLite's -shm mapping and its page cache */
	"brk",
	"mmap",
	"munmap",
	"mremap",
	"mprotect",
	"madvise",
	/* threads (created with clone, see moatd_arg_calls): each new thread registers its
	 * robust futex list and rseq area; futexes for every lock */
	"futex",
	"set_robust_list",
	"get_robust_list",
	"rseq",
	"gettid",
	"sched_yield",
	"sched_getaffinity",
	"exit",
	"exit_group",
	/* signals: sigwait on SIGTERM/SIGHUP in main, masks per thread, abort() and
	 * pthread_kill (tgkill) */
	"rt_sigprocmask",
	"rt_sigaction",
	"rt_sigreturn",
	"rt_sigtimedwait",
	"sigaltstack",
	"tgkill",
	"getpid",
	/* the kernel's resumption of a timed wait (ingest's writer waits on a condition with
	 * a timeout) that SIGSTOP/SIGCONT interrupted: it resumes only a call allowed here */
	"restart_syscall",
	/* time: timeouts, back-offs, deadlines (usually the vDSO, which makes no call) */
	"clock_gettime",
	"clock_getres",
	"gettimeofday",
	"time",
	"nanosleep",
	"clock_nanosleep",
	/* files: reading the deployment (moat.conf, certificates, CRL, releases), writing it
	 * atomically (temporary name, fsync, rename: the CRL, identities' certificates),
	 * directory walks */
	"openat",
	"open",
	"close",
	"read",
	"pread64",
	"readv",
	"write",
	"pwrite64",
	"writev",
	"lseek",
	"fstat",
	"newfstatat",
	"stat",
	"lstat",
	"statx",
	"access",
	"faccessat",
	"faccessat2",
	"readlink",
	"readlinkat",
	"getdents64",
	"getcwd",
	"rename",
	"renameat",
	"renameat2",
	"link",
	"linkat",
	"unlink",
	"unlinkat",
	"mkdir",
	"mkdirat",
	"rmdir",
	"fsync",
	"fdatasync",
	"ftruncate",
	"fallocate",
	"fchmod",
	"fchmodat",
	"chmod",
	"umask",
	"dup",
	"dup2",
	"dup3",
	/* SQLite: fcntl record locks (and WAL's -shm locks), fchown of new -wal/-shm files
	 * (a no-op unless root), its -shm mapping (mmap above); fcntl also for O_NONBLOCK */
	"fcntl",
	"flock",
	"fchown",
	"geteuid",
	"getuid",
	"getegid",
	"getgid",
	/* randomness: OpenSSL's and GnuTLS's DRBG seeding, SQLite's temporary names */
	"getrandom",
	/* sockets: the HTTPS listener's accepted connections, the MQTT client, name lookups
	 * (socket: see moatd_arg_calls) */
	"accept",
	"accept4",
	"bind",
	"listen",
	"connect",
	"getsockname",
	"getpeername",
	"setsockopt",
	"getsockopt",
	"sendto",
	"recvfrom",
	"sendmsg",
	"recvmsg",
	"sendmmsg",
	"shutdown",
	"socketpair", /* libmosquitto's wake-up channel, made at each connect */
	"ioctl",      /* FIONREAD on sockets, TCGETS from isatty() */
	/* waiting: libmicrohttpd's epoll/poll loop, libmosquitto's select/poll, wake-up
	 * pipes and eventfds */
	"poll",
	"ppoll",
	"select",
	"pselect6",
	"epoll_create",
	"epoll_create1",
	"epoll_ctl",
	"epoll_wait",
	"epoll_pwait",
	"epoll_pwait2",
	"eventfd2",
	"pipe",
	"pipe2",
	/* timers a thread may wait on (a connection reaper's deadlines) */
	"timerfd_create",
	"timerfd_settime",
	"timerfd_gettime",
	/* process facts libraries ask for: limits (libmicrohttpd sizes its descriptors),
	 * memory and CPU counts, the host name, thread names */
	"prlimit64",
	"getrlimit",
	"uname",
	"sysinfo",
	"prctl",
	/* capabilities: read back, and lowered again by a second moat_sandbox_lock (none are
	 * held: without CAP_SETPCAP capset can only lower them) */
	"capget",
	"capset",
	NULL,
};

static const struct sandbox_arg_call moatd_arg_calls[] = {
	/* new threads only: moatd never forks (and without fork, no exec either) */
	{"clone", SANDBOX_CLONE_THREADS},
	/* the address families moatd uses: TCP over IPv4/IPv6, netlink for getaddrinfo's
	 * AI_ADDRCONFIG, unix sockets for name service lookups */
	{"socket", SANDBOX_SOCKET_DOMAINS},
};

/* moat-agent: one thread (libmosquitto's client, OpenSSL), the device's state directory,
 * syslog. A filter is inherited by every process the agent starts, so this list also
 * holds what those need: moat-update (libcurl, the A/B slots, memfd images), a sensor
 * command run by /bin/sh, and the agent itself re-executed by the reboot command. Each of
 * them starts through the dynamic loader, which is why the loader's calls are here too. */
static const char *const agent_calls[] = {
	/* memory */
	"brk",
	"mmap",
	"munmap",
	"mremap",
	"mprotect",
	"madvise",
	/* threads (libcurl's resolver, OpenSSL) and locks */
	"futex",
	"set_robust_list",
	"get_robust_list",
	"rseq",
	"gettid",
	"sched_yield",
	"sched_getaffinity",
	"exit",
	"exit_group",
	/* signals: the stop handler, children's deaths, kill of a child that overran */
	"rt_sigprocmask",
	"rt_sigaction",
	"rt_sigreturn",
	"rt_sigtimedwait",
	"rt_sigsuspend",
	"sigaltstack",
	"tgkill",
	"kill",
	"getpid",
	"getppid",
	"getpgrp",
	"setpgid",
	"getpgid",
	"setsid",
	"getsid",
	/* time */
	"clock_gettime",
	"clock_getres",
	"gettimeofday",
	"time",
	"nanosleep",
	"clock_nanosleep",
	"alarm",
	"setitimer",
	"getitimer",
	/* files: configuration, certificates, the offline queue and state written atomically,
	 * the A/B slots (flock) and boot state, sensor files, the enrolled identity's
	 * generations (current and next are symbolic links replaced by rename) */
	"openat",
	"open",
	"close",
	"close_range",
	"read",
	"pread64",
	"readv",
	"write",
	"pwrite64",
	"writev",
	"lseek",
	"fstat",
	"newfstatat",
	"stat",
	"lstat",
	"statx",
	"statfs",
	"fstatfs",
	"access",
	"faccessat",
	"faccessat2",
	"readlink",
	"readlinkat",
	"getdents64",
	"getcwd",
	"chdir",
	"fchdir",
	"rename",
	"renameat",
	"renameat2",
	"link",
	"linkat",
	"symlink",
	"symlinkat",
	"unlink",
	"unlinkat",
	"mkdir",
	"mkdirat",
	"rmdir",
	"fsync",
	"fdatasync",
	"sync_file_range",
	"ftruncate",
	"fallocate",
	"fchmod",
	"fchmodat",
	"chmod",
	"utimensat",
	"umask",
	"dup",
	"dup2",
	"dup3",
	"fcntl",
	"flock",
	"memfd_create", /* a verified image held sealed in memory, then executed */
	"sendfile",
	"copy_file_range",
	/* who am I: /bin/sh and libraries ask */
	"geteuid",
	"getuid",
	"getegid",
	"getgid",
	"getresuid",
	"getresgid",
	"getgroups",
	/* randomness: OpenSSL seeding, MQTT message ids, jitter */
	"getrandom",
	/* sockets: MQTT over TLS, moat-update's HTTPS, syslog's unix socket, name lookups */
	"connect",
	"getsockname",
	"getpeername",
	"setsockopt",
	"getsockopt",
	"sendto",
	"recvfrom",
	"sendmsg",
	"recvmsg",
	"sendmmsg",
	"shutdown",
	"socketpair", /* spawn.c's stdin channel to a child */
	"bind",	      /* getaddrinfo's netlink socket */
	"ioctl",
	/* waiting */
	"poll",
	"ppoll",
	"select",
	"pselect6",
	"epoll_create",
	"epoll_create1",
	"epoll_ctl",
	"epoll_wait",
	"epoll_pwait",
	"eventfd2",
	"pipe",
	"pipe2",
	/* children: moat-update, the sensor command (fork is clone without CLONE_THREAD),
	 * reaping them, and the reboot command's re-exec of the agent */
	"clone",
	"vfork",
	"execve",
	"execveat",
	"wait4",
	"waitid",
	/* starting a program: the dynamic loader and libc's start-up in every child */
	"arch_prctl",
	"set_tid_address",
	"prlimit64",
	"getrlimit",
	"setrlimit",
	"uname",
	"sysinfo",
	"prctl",
	/* capabilities: the agent re-executed by its reboot command drops them again (it holds
	 * none: without CAP_SETPCAP capset can only lower them) */
	"capget",
	"capset",
	NULL,
};

static const struct sandbox_arg_call agent_arg_calls[] = {
	/* TCP, netlink (getaddrinfo), unix (syslog, name service) */
	{"socket", SANDBOX_SOCKET_DOMAINS},
};

/* Sanitizer builds only (MOAT_SANITIZE: AddressSanitizer, UndefinedBehaviorSanitizer).
 * None of this is in a production build's filter. */
static const char *const sanitizer_calls[] = {
	/* LeakSanitizer's exit check: a helper task it clones (without CLONE_THREAD) lists the
	 * threads (getdents) and ptraces each to read its registers and stack */
	"clone",
	"ptrace",
	"process_vm_readv",
	"wait4",
	"waitid",
	"sched_yield",
	"getdents",
	"getdents64",
	"getppid",
	"kill",
	/* reports: /proc/self/maps and the executable's path, an alternate signal stack, a
	 * symbolizer started when one is installed */
	"readlink",
	"readlinkat",
	"sigaltstack",
	"execve",
	NULL,
};

static const struct sandbox_profile profiles[] = {
	[MOAT_SANDBOX_MOATD] = {.name = "moatd",
				.calls = moatd_calls,
				.arg_calls = moatd_arg_calls,
				.arg_call_count =
					sizeof(moatd_arg_calls) / sizeof(moatd_arg_calls[0])},
	[MOAT_SANDBOX_AGENT] = {.name = "moat-agent",
				.calls = agent_calls,
				.arg_calls = agent_arg_calls,
				.arg_call_count =
					sizeof(agent_arg_calls) / sizeof(agent_arg_calls[0])},
};

const struct sandbox_profile *sandbox_profile_get(enum moat_sandbox_profile p)
{
	if ((size_t)p >= sizeof(profiles) / sizeof(profiles[0])) {
		return NULL;
	}
	return &profiles[p];
}

const char *const *sandbox_sanitizer_calls(void)
{
#if defined(MOAT_SANITIZER_BUILD) || defined(__SANITIZE_ADDRESS__)
	return sanitizer_calls;
#else
	static const char *const none[] = {NULL};
	(void)sanitizer_calls;
	return none;
#endif
}
