/* sandbox_internal.h: the allow-list tables of src/sandbox/syscalls.c as sandbox.c reads
 * them; not part of the contract. */
#ifndef MOAT_SANDBOX_INTERNAL_H
#define MOAT_SANDBOX_INTERNAL_H

#include "moat/sandbox.h"

/* A call allowed only with some arguments, as the filter can see them (registers, never
 * memory behind a pointer). */
enum sandbox_arg_rule {
	SANDBOX_CLONE_THREADS,	/* clone: only with CLONE_THREAD (a thread, never a process) */
	SANDBOX_SOCKET_DOMAINS, /* socket: AF_UNIX, AF_INET, AF_INET6, AF_NETLINK only */
};

struct sandbox_arg_call {
	const char *name;
	enum sandbox_arg_rule rule;
};

struct sandbox_profile {
	const char *name;			  /* as logged: "moatd", "moat-agent" */
	const char *const *calls;		  /* allowed with any arguments; NULL-terminated */
	const struct sandbox_arg_call *arg_calls; /* allowed with some; name NULL ends it */
	size_t arg_call_count;
};

/* The profile's table (syscalls.c). */
const struct sandbox_profile *sandbox_profile_get(enum moat_sandbox_profile p);
/* Calls only sanitizer builds allow, NULL-terminated; an empty list in other builds. */
const char *const *sandbox_sanitizer_calls(void);

#endif
