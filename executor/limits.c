// The limits verb (limits.go): `spawnd limits [-cpu N] [-as N] [-nofile N]
// [-nproc N] [-fsize N] [-nnp] -- COMMAND ARG...`. It runs as a
// constructor, before the Go runtime starts, so that the verb costs an
// exec and no runtime start-up, and so that the command gets the signal
// dispositions and mask the executor left (SIGPIPE and SIGXFSZ ignored,
// nothing blocked), which the runtime would change. glibc passes argc,
// argv and envp to constructors of the main program; other C libraries
// need not, so elsewhere the constructor is left out and the verb exits
// 126 from main (cmd/spawnd). Any other command line returns at once and
// the Go program starts as usual.
//
// It runs as the service's user and writes nothing: descriptors 0 to 2
// are the client's. Exit 126: a bad option, or a limit that cannot be
// set; 127: the command cannot be executed.

#include <errno.h>
#include <stdlib.h> // defines __GLIBC__ with glibc

#if defined(__GLIBC__)
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

static const struct {
	const char *opt;
	int res;
} spawnd_rlimits[] = {
	{"-cpu", RLIMIT_CPU},     {"-as", RLIMIT_AS},       {"-nofile", RLIMIT_NOFILE},
	{"-nproc", RLIMIT_NPROC}, {"-fsize", RLIMIT_FSIZE},
};

__attribute__((constructor)) static void spawnd_limits(int argc, char **argv, char **envp) {
	if (argc < 2 || strcmp(argv[1], "limits") != 0)
		return;
	int i = 2, nnp = 0;
	while (i < argc && strcmp(argv[i], "--") != 0) {
		if (strcmp(argv[i], "-nnp") == 0) {
			nnp = 1, i++;
			continue;
		}
		size_t k = 0, n = sizeof spawnd_rlimits / sizeof spawnd_rlimits[0];
		while (k < n && strcmp(spawnd_rlimits[k].opt, argv[i]) != 0)
			k++;
		if (k == n || i + 1 >= argc)
			_exit(126);
		// Decimal digits only, above 0, below RLIM_INFINITY.
		const char *s = argv[i + 1];
		char *end;
		errno = 0;
		unsigned long long v = strtoull(s, &end, 10);
		if (s[0] < '0' || s[0] > '9' || *end != 0 || errno != 0 || v == 0 || v >= RLIM_INFINITY - 1)
			_exit(126);
		// Each limit is soft and hard, or the inherited hard limit where
		// that is lower; CPU's hard limit is a second later, so that the
		// command gets SIGXCPU before SIGKILL.
		struct rlimit lim;
		if (getrlimit(spawnd_rlimits[k].res, &lim) != 0)
			_exit(126);
		rlim_t hard = spawnd_rlimits[k].res == RLIMIT_CPU ? v + 1 : v;
		lim.rlim_cur = v < lim.rlim_max ? v : lim.rlim_max;
		lim.rlim_max = hard < lim.rlim_max ? hard : lim.rlim_max;
		if (setrlimit(spawnd_rlimits[k].res, &lim) != 0)
			_exit(126);
		i += 2;
	}
	if (i + 1 >= argc)
		_exit(126);
	if (nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		_exit(126);
	execve(argv[i + 1], argv + i + 1, envp);
	_exit(127);
}
#endif
