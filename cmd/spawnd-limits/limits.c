/*
 * spawnd-limits [-cpu N] [-as N] [-nofile N] [-nproc N] [-fsize N] [-nnp]
 * -- COMMAND ARG...
 *
 * The executor's child executes this in place of the command of a service
 * that sets resource limits or no_new_privileges, already as the
 * service's user with its groups (commandLine, in executor/spawn.go,
 * builds the command line from the policy). It sets each limit on itself,
 * then no_new_privs, and executes COMMAND, which keeps the pid, the
 * session, the descriptors, the parent-death signal, and the signal
 * dispositions and mask the executor left. It is not root code: it runs
 * with no privilege to lose, and a command line the executor did not
 * build can only make it fail.
 *
 * It writes nothing (descriptors 0 to 2 are the client's). Exit 126: a bad
 * option, or a limit that cannot be set; 127: COMMAND cannot be executed.
 *
 * On x86-64 and arm64 it is built without a C library (the Makefile), so
 * that it costs one exec and no library start-up: its only system calls
 * are prlimit64, prctl, execve and exit_group, through sys() below (the
 * fifth argument is always 0: prctl wants it so). Elsewhere, or with
 * -DSPAWND_LIMITS_LIBC, it uses the C library's syscall(2) and main.
 */

#include <linux/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

static void limits(int argc, char **argv, char **envp) __attribute__((noreturn));

#if defined(__x86_64__) && !defined(SPAWND_LIMITS_LIBC)
static long sys(long n, long a, long b, long c, long d) {
	register long r10 __asm__("r10") = d, r8 __asm__("r8") = 0;
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
	return r;
}
__asm__(".globl _start\n_start:\n\txor %ebp, %ebp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall start\n\thlt\n");
#elif defined(__aarch64__) && !defined(SPAWND_LIMITS_LIBC)
static long sys(long n, long a, long b, long c, long d) {
	register long x8 __asm__("x8") = n, x0 __asm__("x0") = a, x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c, x3 __asm__("x3") = d, x4 __asm__("x4") = 0;
	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
	return x0;
}
__asm__(".globl _start\n_start:\n\tmov x0, sp\n\tbl start\n\tbrk #0\n");
#else
#undef SPAWND_LIMITS_LIBC
#define SPAWND_LIMITS_LIBC
#include <unistd.h>
#define sys(n, a, b, c, d) syscall(n, a, b, c, d, 0L)
int main(int argc, char **argv, char **envp) { limits(argc, argv, envp); }
#endif

#if !defined(SPAWND_LIMITS_LIBC)
/* The kernel's initial stack: argc, argv..., NULL, envp..., NULL. */
__attribute__((used, noreturn)) void start(long *sp) {
	limits((int)sp[0], (char **)(sp + 1), (char **)(sp + 1) + sp[0] + 1);
}
#endif

static void die(int status) __attribute__((noreturn));
static void die(int status) {
	for (;;)
		sys(SYS_exit_group, status, 0, 0, 0);
}

static int equal(const char *a, const char *b) {
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static const struct {
	const char *opt;
	int res;
} rlimits[] = {
	{"-cpu", RLIMIT_CPU},     {"-as", RLIMIT_AS},       {"-nofile", RLIMIT_NOFILE},
	{"-nproc", RLIMIT_NPROC}, {"-fsize", RLIMIT_FSIZE},
};

static void limits(int argc, char **argv, char **envp) {
	int i = 1, nnp = 0;
	while (i < argc && !equal(argv[i], "--")) {
		if (equal(argv[i], "-nnp")) {
			nnp = 1, i++;
			continue;
		}
		unsigned k = 0, n = sizeof rlimits / sizeof rlimits[0];
		while (k < n && !equal(rlimits[k].opt, argv[i]))
			k++;
		if (k == n || i + 1 >= argc)
			die(126);
		/* Decimal digits only, above 0, below RLIM_INFINITY - 1. */
		const char *s = argv[i + 1];
		rlim_t v = 0;
		do {
			if (*s < '0' || *s > '9' || v > (RLIM_INFINITY - 2 - (rlim_t)(*s - '0')) / 10)
				die(126);
			v = v * 10 + (rlim_t)(*s - '0');
		} while (*++s);
		if (v == 0)
			die(126);
		/*
		 * Each limit is soft and hard, or the inherited hard limit where
		 * that is lower; CPU's hard limit is a second later, so that the
		 * command gets SIGXCPU before SIGKILL.
		 */
		struct rlimit lim;
		if (sys(SYS_prlimit64, 0, rlimits[k].res, 0, (long)&lim) != 0)
			die(126);
		rlim_t hard = rlimits[k].res == RLIMIT_CPU ? v + 1 : v;
		lim.rlim_cur = v < lim.rlim_max ? v : lim.rlim_max;
		lim.rlim_max = hard < lim.rlim_max ? hard : lim.rlim_max;
		if (sys(SYS_prlimit64, 0, rlimits[k].res, (long)&lim, 0) != 0)
			die(126);
		i += 2;
	}
	if (i + 1 >= argc)
		die(126);
	if (nnp && sys(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0) != 0)
		die(126);
	sys(SYS_execve, (long)argv[i + 1], (long)(argv + i + 1), (long)envp, 0);
	die(127);
}
