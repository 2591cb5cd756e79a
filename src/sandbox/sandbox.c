/* sandbox.c: the mechanics of sandbox.h: switching user, dropping capabilities,
 * no_new_privs, and building the seccomp filter from a table of syscalls.c (libseccomp).
 */
#include "moat/sandbox.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox_internal.h"

#define SANDBOX_MAX_CAP 63 /* the highest capability number probed (the kernel's is lower) */
#define SANDBOX_PWBUF_LEN 4096

int moat_sandbox_user_lookup(const char *name, struct moat_sandbox_user *out, struct moat_err *err)
{
	memset(out, 0, sizeof(*out));
	out->uid = getuid();
	out->gid = getgid();
	if (geteuid() != 0 || !name || !name[0]) {
		struct passwd pw;
		struct passwd *res = NULL;
		char buf[SANDBOX_PWBUF_LEN];
		if (getpwuid_r(out->uid, &pw, buf, sizeof(buf), &res) == 0 && res &&
		    strlen(res->pw_name) <= MOAT_SANDBOX_USER_MAX_LEN) {
			snprintf(out->name, sizeof(out->name), "%s", res->pw_name);
		} else {
			snprintf(out->name, sizeof(out->name), "uid %u", (unsigned)out->uid);
		}
		return 0;
	}
	if (strlen(name) > MOAT_SANDBOX_USER_MAX_LEN) {
		return moat_err_set(err, MOAT_EINVAL, "user '%.32s...': name too long", name);
	}
	struct passwd pw;
	struct passwd *res = NULL;
	char buf[SANDBOX_PWBUF_LEN];
	int e = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
	if (e != 0 || !res) {
		return moat_err_set(err, MOAT_ENOENT, "user '%s' does not exist%s%s", name,
				    e ? ": " : "", e ? strerror(e) : "");
	}
	if (res->pw_uid == 0 || res->pw_gid == 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "user '%s' has uid or gid 0: a daemon must not keep root",
				    name);
	}
	out->do_switch = true;
	out->uid = res->pw_uid;
	out->gid = res->pw_gid;
	snprintf(out->name, sizeof(out->name), "%s", name);
	return 0;
}

/* Drops every capability from this thread's bounding set (needs CAP_SETPCAP). */
static int drop_bounding(struct moat_err *err)
{
	for (int cap = 0; cap <= SANDBOX_MAX_CAP; cap++) {
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0) {
			break; /* past the kernel's last capability */
		}
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
			return moat_err_errno(err, MOAT_EIO, errno, "dropping capability %d", cap);
		}
	}
	return 0;
}

static int caps_get(struct __user_cap_data_struct data[2])
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	memset(data, 0, 2 * sizeof(*data));
	return (int)syscall(SYS_capget, &hdr, data);
}

static bool has_setpcap(void)
{
	struct __user_cap_data_struct data[2];
	return caps_get(data) == 0 && (data[0].effective & (1u << CAP_SETPCAP)) != 0;
}

int moat_sandbox_switch_user(const struct moat_sandbox_user *u, struct moat_err *err)
{
	if (!u->do_switch) {
		return 0;
	}
	int rc;
	if ((rc = drop_bounding(err)) != 0) {
		return rc;
	}
	gid_t groups[1] = {u->gid};
	if (setgroups(1, groups) != 0 || setresgid(u->gid, u->gid, u->gid) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "switching to group %u of user %s",
				      (unsigned)u->gid, u->name);
	}
	if (setresuid(u->uid, u->uid, u->uid) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "switching to user %s", u->name);
	}
	uid_t r = 0;
	uid_t e = 0;
	uid_t s = 0;
	if (getresuid(&r, &e, &s) != 0 || r != u->uid || e != u->uid || s != u->uid ||
	    setuid(0) == 0) {
		return moat_err_set(err, MOAT_EIO, "user %s: root could be taken back", u->name);
	}
#if defined(MOAT_SANITIZER_BUILD) || defined(__SANITIZE_ADDRESS__)
	/* LeakSanitizer ptraces this process's threads at exit, which a process that changed
	 * its credentials forbids (not dumpable). Sanitizer builds only. */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
	return 0;
}

/* Every capability set of this thread emptied; with CAP_SETPCAP first the bounding set and
 * the securebits that keep uid 0 from regaining capabilities at exec. */
static int drop_caps(struct moat_err *err)
{
	int rc;
	if (has_setpcap()) {
		if ((rc = drop_bounding(err)) != 0) {
			return rc;
		}
		unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
				     SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
				     SECBIT_NO_CAP_AMBIENT_RAISE |
				     SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
		if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) != 0) {
			return moat_err_errno(err, MOAT_EIO, errno, "securebits");
		}
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
		return moat_err_errno(err, MOAT_EIO, errno, "clearing ambient capabilities");
	}
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) != 0) {
		return moat_err_errno(err, MOAT_EIO, errno, "dropping capabilities");
	}
	if (caps_get(data) != 0 || data[0].effective || data[1].effective || data[0].permitted ||
	    data[1].permitted) {
		return moat_err_set(err, MOAT_EIO, "capabilities still held after dropping them");
	}
	return 0;
}

/* The number of call, or -1 for a name this architecture does not have. */
static int resolve(const char *name)
{
	int nr = seccomp_syscall_resolve_name(name);
	return nr == __NR_SCMP_ERROR || nr < 0 ? -1 : nr;
}

static int allow(scmp_filter_ctx ctx, const char *name, size_t *count, struct moat_err *err)
{
	int nr = resolve(name);
	if (nr < 0) {
		return 0;
	}
	int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
	if (rc != 0 && rc != -EEXIST) {
		return moat_err_errno(err, MOAT_EIO, -rc, "seccomp: allowing %s", name);
	}
	(*count)++;
	return 0;
}

static bool in_list(const char *const *list, const char *name)
{
	for (size_t i = 0; list[i]; i++) {
		if (strcmp(list[i], name) == 0) {
			return true;
		}
	}
	return false;
}

static bool profile_has(const struct sandbox_profile *p, const char *name)
{
	for (size_t i = 0; i < p->arg_call_count; i++) {
		if (strcmp(p->arg_calls[i].name, name) == 0) {
			return true;
		}
	}
	return in_list(p->calls, name);
}

static int allow_with_args(scmp_filter_ctx ctx, const struct sandbox_arg_call *c, size_t *count,
			   struct moat_err *err)
{
	int nr = resolve(c->name);
	int rc = 0;
	if (nr < 0) {
		return 0;
	}
	switch (c->rule) {
	case SANDBOX_CLONE_THREADS:
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
				      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
		break;
	case SANDBOX_SOCKET_DOMAINS: {
		static const int domains[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};
		for (size_t i = 0; rc == 0 && i < sizeof(domains) / sizeof(domains[0]); i++) {
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)domains[i]));
		}
		break;
	}
	}
	if (rc != 0) {
		return moat_err_errno(err, MOAT_EIO, -rc, "seccomp: allowing %s", c->name);
	}
	(*count)++;
	return 0;
}

static int build(const struct sandbox_profile *p, scmp_filter_ctx ctx, size_t *count,
		 struct moat_err *err)
{
	const char *const *extra = sandbox_sanitizer_calls();
	int rc;
	for (size_t i = 0; p->calls[i]; i++) {
		if ((rc = allow(ctx, p->calls[i], count, err)) != 0) {
			return rc;
		}
	}
	for (size_t i = 0; extra[i]; i++) {
		if (!in_list(p->calls, extra[i]) && (rc = allow(ctx, extra[i], count, err)) != 0) {
			return rc;
		}
	}
	for (size_t i = 0; i < p->arg_call_count; i++) {
		/* a sanitizer build may allow the call outright */
		if (!in_list(extra, p->arg_calls[i].name) &&
		    (rc = allow_with_args(ctx, &p->arg_calls[i], count, err)) != 0) {
			return rc;
		}
	}
	/* glibc creates threads with clone3 when it can, whose flags sit in memory a filter
	 * cannot read: make it fall back to clone. */
	int nr = resolve("clone3");
	if (nr >= 0 && (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0)) != 0) {
		return moat_err_errno(err, MOAT_EIO, -rc, "seccomp: clone3");
	}
	return 0;
}

int moat_sandbox_lock(enum moat_sandbox_profile profile, struct moat_sandbox_report *out,
		      struct moat_err *err)
{
	const struct sandbox_profile *p = sandbox_profile_get(profile);
	int rc;
	memset(out, 0, sizeof(*out));
	if (!p) {
		return moat_err_set(err, MOAT_EINVAL, "unknown sandbox profile %d", (int)profile);
	}
	out->profile = p->name;
	out->sanitizer = sandbox_sanitizer_calls()[0] != NULL;
	if ((rc = drop_caps(err)) != 0) {
		return rc;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
		return moat_err_errno(err, MOAT_EIO, errno, "no_new_privs");
	}
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2) {
		/* inherited (the agent re-executed by its reboot command): keep it, stacking
		 * another copy at every reboot would only slow every call down */
		out->inherited = true;
		return 0;
	}
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx) {
		return moat_err_set(err, MOAT_ENOMEM, "seccomp: out of memory");
	}
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (rc != 0) {
		rc = moat_err_errno(err, MOAT_EIO, -rc, "seccomp: thread synchronisation");
		goto out;
	}
	if ((rc = build(p, ctx, &out->syscalls, err)) != 0) {
		goto out;
	}
	rc = seccomp_load(ctx);
	if (rc != 0) {
		rc = moat_err_errno(err, MOAT_EIO, -rc, "seccomp: installing the %s filter",
				    p->name);
		goto out;
	}
out:
	seccomp_release(ctx);
	return rc;
}

size_t moat_sandbox_names(enum moat_sandbox_profile profile, const char **out, size_t max)
{
	const struct sandbox_profile *p = sandbox_profile_get(profile);
	const char *const *extra = sandbox_sanitizer_calls();
	size_t n = 0;
	if (!p) {
		return 0;
	}
	for (size_t i = 0; p->calls[i]; i++, n++) {
		if (n < max) {
			out[n] = p->calls[i];
		}
	}
	for (size_t i = 0; i < p->arg_call_count; i++, n++) {
		if (n < max) {
			out[n] = p->arg_calls[i].name;
		}
	}
	for (size_t i = 0; extra[i]; i++) {
		if (!profile_has(p, extra[i])) {
			if (n < max) {
				out[n] = extra[i];
			}
			n++;
		}
	}
	return n;
}

#if defined(MOAT_FAILPOINTS)
void moat_sandbox_failpoint_forbidden(void)
{
	/* a query that changes nothing when no filter stops it */
	(void)syscall(SYS_personality, 0xffffffffUL);
}
#endif
