/*
 * cserver: the smallest accept+fork+exec server, the ceiling reference of
 * the spawnd benchmark.
 *
 *   cserver -p port -u user -- command [args...]
 *
 * Binds 127.0.0.1:port, and for every connection forks a child that takes
 * the user's uid and gid (supplementary groups: the gid only), starts a new
 * session, puts the connection on fds 0, 1 and 2 and execs the command
 * (an absolute path, no PATH search). The parent closes its copy and goes
 * back to accept; exited children are reaped from a SIGCHLD handler.
 * No limits, no logging: this is what the kernel costs, nothing more.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

static void usage(void)
{
	fprintf(stderr, "usage: cserver -p port -u user -- command [args...]\n");
	exit(2);
}

static void reap(int sig)
{
	int saved = errno;

	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

int main(int argc, char **argv)
{
	const char *user = NULL;
	struct sockaddr_in sin;
	struct sigaction sa;
	struct passwd *pw;
	int port = 0, one = 1, fd, c, opt;
	uid_t uid;
	gid_t gid;

	while ((opt = getopt(argc, argv, "p:u:")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'u':
			user = optarg;
			break;
		default:
			usage();
		}
	}
	if (port <= 0 || port > 65535 || user == NULL || optind >= argc)
		usage();
	if ((pw = getpwnam(user)) == NULL) {
		fprintf(stderr, "cserver: unknown user: %s\n", user);
		return 1;
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = reap;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGCHLD, &sa, NULL) < 0) {
		perror("cserver: sigaction");
		return 1;
	}

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		perror("cserver: socket");
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		fprintf(stderr, "cserver: bind 127.0.0.1:%d: %s\n", port, strerror(errno));
		return 1;
	}
	if (listen(fd, 1024) < 0) {
		perror("cserver: listen");
		return 1;
	}

	for (;;) {
		c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("cserver: accept");
			sleep(1);
			continue;
		}
		switch (fork()) {
		case -1:
			perror("cserver: fork");
			break;
		case 0:
			if (setgid(gid) < 0 || setgroups(1, &gid) < 0 || setuid(uid) < 0) {
				perror("cserver: child: credentials");
				_exit(1);
			}
			setsid();
			/* dup2 clears close-on-exec on 0, 1, 2; the original c closes on exec. */
			if (dup2(c, 0) < 0 || dup2(c, 1) < 0 || dup2(c, 2) < 0)
				_exit(1);
			execv(argv[optind], argv + optind);
			_exit(127);
		}
		close(c);
	}
}
