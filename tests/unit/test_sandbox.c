/* test_sandbox.c: pins the contract of sandbox.h: every name in the allow-lists is a real
 * system call of this architecture and appears once per profile; moatd's profile holds no
 * way to start a program; a locked process has no capability, no_new_privs and a filter,
 * keeps working within its list (threads included: clone3 fails over to clone) and is
 * killed by SIGSYS outside it (personality, fork and a packet socket in moatd's); switching
 * user as root leaves no way back; every refusal of moat_sandbox_user_lookup. Each locked
 * process is a forked child, so the test itself stays unlocked. */
#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <seccomp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "moat/sandbox.h"
#include "testutil.h"

#define NAMES_MAX 512

static const enum moat_sandbox_profile profiles[] = {MOAT_SANDBOX_MOATD, MOAT_SANDBOX_AGENT};

static bool sanitizer_build(void)
{
	const char *names[NAMES_MAX];
	size_t n = moat_sandbox_names(MOAT_SANDBOX_MOATD, names, NAMES_MAX);
	for (size_t i = 0; i < n && i < NAMES_MAX; i++) {
		if (strcmp(names[i], "ptrace") == 0) {
			return true; /* only the sanitizer allowance has it */
		}
	}
	return false;
}

static void test_names_resolve_and_unique(void **state)
{
	(void)state;
	for (size_t p = 0; p < sizeof(profiles) / sizeof(profiles[0]); p++) {
		const char *names[NAMES_MAX];
		size_t n = moat_sandbox_names(profiles[p], names, NAMES_MAX);
		assert_true(n > 50 && n <= NAMES_MAX);
		for (size_t i = 0; i < n; i++) {
#if defined(__x86_64__)
			/* the tables are written for x86_64 first; another architecture skips
			 * the names it does not have */
			if (seccomp_syscall_resolve_name(names[i]) < 0) {
				fail_msg("profile %zu: '%s' is not a system call", p, names[i]);
			}
#endif
			for (size_t k = 0; k < i; k++) {
				if (strcmp(names[i], names[k]) == 0) {
					fail_msg("profile %zu: '%s' listed twice", p, names[i]);
				}
			}
		}
	}
}

static bool has_name(enum moat_sandbox_profile p, const char *name)
{
	const char *names[NAMES_MAX];
	size_t n = moat_sandbox_names(p, names, NAMES_MAX);
	for (size_t i = 0; i < n && i < NAMES_MAX; i++) {
		if (strcmp(names[i], name) == 0) {
			return true;
		}
	}
	return false;
}

static void test_moatd_cannot_start_programs(void **state)
{
	(void)state;
	static const char *const never[] = {"execveat", "vfork",       "fork",	     "ptrace",
					    "mount",	"personality", "setuid",     "setresuid",
					    "bpf",	"init_module", "kexec_load", "unshare",
					    "setns"};
	bool san = sanitizer_build();
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
		if (san && strcmp(never[i], "ptrace") == 0) {
			continue; /* LeakSanitizer's, in sanitizer builds only */
		}
		if (has_name(MOAT_SANDBOX_MOATD, never[i])) {
			fail_msg("moatd's profile allows %s", never[i]);
		}
	}
	if (!san) {
		assert_false(has_name(MOAT_SANDBOX_MOATD, "execve"));
	}
	/* the agent starts moat-update, but never gains privileges or loads modules */
	assert_true(has_name(MOAT_SANDBOX_AGENT, "execve"));
	assert_false(has_name(MOAT_SANDBOX_AGENT, "personality"));
	assert_false(has_name(MOAT_SANDBOX_AGENT, "mount"));
	assert_false(has_name(MOAT_SANDBOX_AGENT, "setuid"));
}

enum after_lock {
	AFTER_NOTHING,
	AFTER_PERSONALITY,
	AFTER_FORK,
	AFTER_PACKET_SOCKET,
	AFTER_THREAD,
	AFTER_CLONE3,
	AFTER_CHECK_STATE,
};

static void *thread_main(void *arg)
{
	(void)arg;
	return (void *)(uintptr_t)getpid();
}

/* In a child: locks with profile, then does what; exits 0 when it went as expected, 2 when
 * locking failed, 3 when the call survived or misbehaved. */
static int child(enum moat_sandbox_profile profile, enum after_lock what)
{
	struct moat_sandbox_report sb;
	struct moat_err err = {0};
	if (moat_sandbox_lock(profile, &sb, &err) != 0) {
		fprintf(stderr, "lock: %s\n", err.msg);
		return 2;
	}
	switch (what) {
	case AFTER_NOTHING:
		return getpid() > 0 ? 0 : 3;
	case AFTER_PERSONALITY:
		(void)syscall(SYS_personality, 0xffffffffUL);
		return 3;
	case AFTER_FORK: {
		pid_t pid = fork();
		if (pid == 0) {
			_exit(0);
		}
		return 3;
	}
	case AFTER_PACKET_SOCKET:
		(void)socket(AF_PACKET, SOCK_RAW, 0);
		return 3;
	case AFTER_THREAD: {
		pthread_t t;
		void *ret = NULL;
		if (pthread_create(&t, NULL, thread_main, NULL) != 0 ||
		    pthread_join(t, &ret) != 0) {
			return 3;
		}
		return (pid_t)(uintptr_t)ret == getpid() ? 0 : 3;
	}
	case AFTER_CLONE3:
		return syscall(SYS_clone3, NULL, 0) == -1 && errno == ENOSYS ? 0 : 3;
	case AFTER_CHECK_STATE: {
		struct moat_sandbox_report again;
		if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1 ||
		    prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 2 || sb.syscalls < 50 || sb.inherited) {
			return 3;
		}
		/* a second lock adds no filter: it reports the one in force as inherited */
		if (moat_sandbox_lock(profile, &again, &err) != 0 || !again.inherited) {
			return 3;
		}
		return 0;
	}
	}
	return 3;
}

/* The wait status of a child that runs child(profile, what). */
static int run_child(enum moat_sandbox_profile profile, enum after_lock what)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		_exit(child(profile, what)); /* _exit: no LeakSanitizer pass in the child */
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void expect_exit0(enum moat_sandbox_profile p, enum after_lock what)
{
	int st = run_child(p, what);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fail_msg("profile %d, case %d: status 0x%x, expected exit 0", (int)p, (int)what,
			 st);
	}
}

static void expect_sigsys(enum moat_sandbox_profile p, enum after_lock what)
{
	int st = run_child(p, what);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS) {
		fail_msg("profile %d, case %d: status 0x%x, expected death by SIGSYS", (int)p,
			 (int)what, st);
	}
}

static void test_locked_process_works_within_its_list(void **state)
{
	(void)state;
	for (size_t p = 0; p < sizeof(profiles) / sizeof(profiles[0]); p++) {
		expect_exit0(profiles[p], AFTER_NOTHING);
		expect_exit0(profiles[p], AFTER_THREAD);
		expect_exit0(profiles[p], AFTER_CLONE3);
		expect_exit0(profiles[p], AFTER_CHECK_STATE);
	}
}

static void test_outside_the_list_is_killed(void **state)
{
	(void)state;
	for (size_t p = 0; p < sizeof(profiles) / sizeof(profiles[0]); p++) {
		expect_sigsys(profiles[p], AFTER_PERSONALITY);
	}
	expect_sigsys(MOAT_SANDBOX_MOATD, AFTER_PACKET_SOCKET);
	if (!sanitizer_build()) {
		/* moatd starts threads, never processes (sanitizer builds allow clone) */
		expect_sigsys(MOAT_SANDBOX_MOATD, AFTER_FORK);
	}
}

static void test_capabilities_dropped(void **state)
{
	(void)state;
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct moat_sandbox_report sb;
		struct moat_err err = {0};
		if (moat_sandbox_lock(MOAT_SANDBOX_AGENT, &sb, &err) != 0) {
			_exit(2);
		}
		/* as root: the bounding set is empty too, so no exec can bring one back */
		if (geteuid() == 0 && prctl(PR_CAPBSET_READ, 0 /* CAP_CHOWN */, 0, 0, 0) != 0) {
			_exit(3);
		}
		FILE *f = fopen("/proc/self/status", "r");
		char line[256];
		bool zero = false;
		while (f && fgets(line, sizeof(line), f)) {
			if (strncmp(line, "CapEff:", 7) == 0) {
				zero = strstr(line, "0000000000000000") != NULL;
			}
		}
		if (f) {
			fclose(f);
		}
		_exit(zero ? 0 : 4);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_user_lookup_refusals(void **state)
{
	(void)state;
	struct moat_sandbox_user u;
	struct moat_err err = {0};
	/* no name: stay who we are */
	assert_int_equal(moat_sandbox_user_lookup(NULL, &u, &err), 0);
	assert_false(u.do_switch);
	assert_int_equal(u.uid, getuid());
	assert_int_equal(moat_sandbox_user_lookup("", &u, &err), 0);
	assert_false(u.do_switch);
	if (geteuid() != 0) {
		/* not root: a name changes nothing, there is no one else to become */
		assert_int_equal(moat_sandbox_user_lookup("nobody", &u, &err), 0);
		assert_false(u.do_switch);
		return;
	}
	assert_int_equal(moat_sandbox_user_lookup("no-such-user-moat-test", &u, &err), MOAT_ENOENT);
	assert_non_null(strstr(err.msg, "no-such-user-moat-test"));
	assert_int_equal(moat_sandbox_user_lookup("root", &u, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "root"));
	char longname[64];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(moat_sandbox_user_lookup(longname, &u, &err), MOAT_EINVAL);
}

static void test_switch_user_has_no_way_back(void **state)
{
	(void)state;
	struct passwd *pw = getpwnam("nobody");
	if (geteuid() != 0 || !pw) {
		skip(); /* only root can switch; Debian always has nobody */
	}
	struct moat_sandbox_user u;
	struct moat_err err = {0};
	assert_int_equal(moat_sandbox_user_lookup("nobody", &u, &err), 0);
	assert_true(u.do_switch);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (moat_sandbox_switch_user(&u, &err) != 0) {
			_exit(2);
		}
		gid_t groups[4];
		int ng = getgroups(4, groups);
		bool ok = getuid() == pw->pw_uid && geteuid() == pw->pw_uid &&
			  getgid() == pw->pw_gid && ng == 1 && groups[0] == pw->pw_gid &&
			  setuid(0) != 0 && setgid(0) != 0;
		_exit(ok ? 0 : 3);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_switch_without_user_is_a_no_op(void **state)
{
	(void)state;
	struct moat_sandbox_user u = {.do_switch = false};
	struct moat_err err = {0};
	uid_t before = getuid();
	assert_int_equal(moat_sandbox_switch_user(&u, &err), 0);
	assert_int_equal(getuid(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_resolve_and_unique),
		cmocka_unit_test(test_moatd_cannot_start_programs),
		cmocka_unit_test(test_locked_process_works_within_its_list),
		cmocka_unit_test(test_outside_the_list_is_killed),
		cmocka_unit_test(test_capabilities_dropped),
		cmocka_unit_test(test_user_lookup_refusals),
		cmocka_unit_test(test_switch_user_has_no_way_back),
		cmocka_unit_test(test_switch_without_user_is_a_no_op),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
