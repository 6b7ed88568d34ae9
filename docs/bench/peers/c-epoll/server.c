/*
 * c-epoll: a reference Launcelot server, the practical limit.
 *
 * It is in this repository as the yardstick for lancelot's own design: the
 * same pre-fork model written in C, with nothing between the program and the
 * system calls. If lancelot comes close to it, what is left is the kernel.
 *
 * The model: one process per worker (fork), each with its own SO_REUSEPORT
 * listening socket, so the kernel spreads connections over the workers; each
 * worker runs one level-triggered epoll loop over non-blocking sockets. Every
 * read is framed at once: whitespace (space, tab, CR, LF) before a question is
 * skipped, a question ends at '?', and the answers to all complete questions
 * of one read go out in one write(). A partial question is kept per
 * connection (pipelined and split questions both work). An unknown question,
 * or a fragment longer than the longest question, gets the earlier answers,
 * then the connection is closed. Should a write be short, the rest is kept and
 * reading that connection pauses until it has been sent (EPOLLOUT).
 *
 * usage: c-epoll HOST PORT [WORKERS]   (WORKERS defaults to the online CPUs)
 * build: gcc -O2 -Wall -Wextra -o c-epoll server.c
 *
 * The parent raises the open-files soft limit to the hard limit, forks the
 * workers and waits. SIGTERM or SIGINT to the parent stops every worker; a
 * worker that dies stops the others too. Workers die with the parent
 * (PR_SET_PDEATHSIG).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define NQA 3
#define LONGEST 28 /* strlen("What is your favorite color?") */
#define SHORTEST 18 /* strlen("What is your name?") */
#define ANSWER_MAX 35 /* strlen("My name is Sir Lancelot of Camelot.") */
#define READ_SIZE 65536
#define MAX_EVENTS 256

static const struct {
	const char *q, *a;
} table[NQA] = {
	{"What is your name?", "My name is Sir Lancelot of Camelot."},
	{"What is your quest?", "To seek the Holy Grail."},
	{"What is your favorite color?", "Blue."},
};

/* One connection, indexed by its fd. An idle connection costs only this. */
struct conn {
	char part[LONGEST]; /* a question not complete yet */
	unsigned char partlen;
	unsigned char closing; /* close once out is sent */
	char *out; /* answers a short write left over */
	size_t outlen, outoff;
};

/* A worker's state, passed around rather than kept in globals. */
struct worker {
	int ep, lfd;
	int paused; /* out of fds: the listener is out of the epoll set */
	struct conn *conns; /* one per possible fd */
	size_t nconns;
	char in[LONGEST + READ_SIZE];
	char out[(LONGEST + READ_SIZE) / SHORTEST * ANSWER_MAX + ANSWER_MAX];
};

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* answer returns the answer to the question p[0:n], or NULL. */
static const char *answer(const char *p, size_t n)
{
	for (int i = 0; i < NQA; i++)
		if (strlen(table[i].q) == n && memcmp(p, table[i].q, n) == 0)
			return table[i].a;
	return NULL;
}

static void conn_close(struct worker *w, int fd)
{
	struct conn *c = &w->conns[fd];
	free(c->out);
	memset(c, 0, sizeof *c);
	close(fd); /* also leaves the epoll set */
}

static void set_events(struct worker *w, int fd, unsigned events)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};
	epoll_ctl(w->ep, EPOLL_CTL_MOD, fd, &ev);
}

/* send_some writes what the socket takes: bytes written, or -1 on error. */
static ssize_t send_some(int fd, const char *p, size_t n)
{
	size_t off = 0;
	while (off < n) {
		ssize_t k = write(fd, p + off, n - off);
		if (k >= 0)
			off += (size_t)k;
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		else if (errno != EINTR)
			return -1;
	}
	return (ssize_t)off;
}

/* on_writable sends what a short write left; reading resumes when done. */
static void on_writable(struct worker *w, int fd)
{
	struct conn *c = &w->conns[fd];
	ssize_t k = send_some(fd, c->out + c->outoff, c->outlen - c->outoff);
	if (k < 0) {
		conn_close(w, fd);
		return;
	}
	c->outoff += (size_t)k;
	if (c->outoff < c->outlen)
		return;
	free(c->out);
	c->out = NULL;
	c->outlen = c->outoff = 0;
	if (c->closing)
		conn_close(w, fd);
	else
		set_events(w, fd, EPOLLIN);
}

/* reply writes n bytes of answers; it keeps what the socket did not take
 * and reports whether the connection can go on. */
static int reply(struct worker *w, int fd, size_t n)
{
	struct conn *c = &w->conns[fd];
	ssize_t k = send_some(fd, w->out, n);
	if (k < 0)
		return 0;
	if ((size_t)k == n)
		return 1;
	c->outlen = n - (size_t)k;
	c->out = malloc(c->outlen);
	if (c->out == NULL)
		return 0;
	memcpy(c->out, w->out + k, c->outlen);
	set_events(w, fd, EPOLLOUT);
	return 1;
}

/* on_readable reads once, answers every complete question in one write and
 * keeps the partial question, if any. */
static void on_readable(struct worker *w, int fd)
{
	struct conn *c = &w->conns[fd];
	size_t have = c->partlen, start = 0, nout = 0;
	ssize_t n;
	int ok = 1;

	memcpy(w->in, c->part, have);
	do
		n = read(fd, w->in + have, READ_SIZE);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		conn_close(w, fd);
		return;
	}
	size_t end = have + (size_t)n;
	for (;;) {
		while (start < end && is_space(w->in[start]))
			start++;
		char *q = memchr(w->in + start, '?', end - start);
		if (q == NULL)
			break;
		size_t qlen = (size_t)(q - (w->in + start)) + 1;
		const char *a = answer(w->in + start, qlen);
		if (a == NULL) {
			ok = 0;
			break;
		}
		size_t alen = strlen(a);
		memcpy(w->out + nout, a, alen);
		nout += alen;
		start += qlen;
	}
	size_t rest = end - start;
	if (ok && rest >= LONGEST) /* can no longer become a question */
		ok = 0;
	c->partlen = ok ? (unsigned char)rest : 0;
	if (ok)
		memcpy(c->part, w->in + start, rest);
	if (nout > 0 && !reply(w, fd, nout)) {
		conn_close(w, fd);
		return;
	}
	if (!ok) {
		if (c->out != NULL)
			c->closing = 1; /* close once the answers are out */
		else
			conn_close(w, fd);
	}
}

static void on_accept(struct worker *w)
{
	for (;;) {
		int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				/* Out of fds (EMFILE...): the listener would stay
				 * readable and spin the loop, so leave it out of the
				 * set and try again later (see run_worker). */
				epoll_ctl(w->ep, EPOLL_CTL_DEL, w->lfd, NULL);
				w->paused = 1;
			}
			return;
		}
		if ((size_t)fd >= w->nconns) {
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
		if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			close(fd);
	}
}

/* listen_on returns a non-blocking SO_REUSEPORT listener, or -1. */
static int listen_on(const char *host, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1, fd;

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		errno = EINVAL;
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4096) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void run_worker(const char *host, int port)
{
	struct epoll_event evs[MAX_EVENTS];
	struct rlimit rl;
	struct worker *w = calloc(1, sizeof *w);

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	if (w == NULL || getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		perror("c-epoll: worker");
		_exit(1);
	}
	w->nconns = rl.rlim_cur;
	w->conns = calloc(w->nconns, sizeof *w->conns); /* pages cost RSS once touched */
	w->lfd = listen_on(host, port);
	w->ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = w->lfd};
	if (w->conns == NULL || w->lfd < 0 || w->ep < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, w->lfd, &ev) < 0) {
		perror("c-epoll: worker");
		_exit(1);
	}
	for (;;) {
		int n = epoll_wait(w->ep, evs, MAX_EVENTS, w->paused ? 100 : -1);
		if (n < 0 && errno != EINTR) {
			perror("c-epoll: epoll_wait");
			_exit(1);
		}
		if (n == 0 && w->paused) {
			ev.events = EPOLLIN;
			ev.data.fd = w->lfd;
			epoll_ctl(w->ep, EPOLL_CTL_ADD, w->lfd, &ev);
			w->paused = 0;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == w->lfd)
				on_accept(w);
			else if (w->conns[fd].out != NULL)
				on_writable(w, fd); /* EPOLLOUT, or an error write reports */
			else
				on_readable(w, fd); /* EPOLLIN, EPOLLHUP, EPOLLERR */
		}
	}
}

/* stop_all sends SIGTERM to the workers still running. */
static void stop_all(pid_t *kids, long n)
{
	for (long i = 0; i < n; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGTERM);
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: %s HOST PORT [WORKERS]\n", argv[0]);
		return 2;
	}
	const char *host = argv[1];
	int port = atoi(argv[2]);
	long nworkers = argc > 3 ? atol(argv[3]) : sysconf(_SC_NPROCESSORS_ONLN);
	if (port <= 0 || port > 65535 || nworkers < 1) {
		fprintf(stderr, "c-epoll: bad PORT or WORKERS\n");
		return 2;
	}

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	int probe = listen_on(host, port); /* fail here, not in every worker */
	if (probe < 0) {
		perror("c-epoll: listen");
		return 1;
	}
	close(probe);

	/* The parent takes its signals synchronously (sigwaitinfo), so none
	 * can slip in between a check and a wait. Workers get the old mask. */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &old);
	pid_t *kids = calloc((size_t)nworkers, sizeof *kids);
	if (kids == NULL) {
		perror("c-epoll");
		return 1;
	}
	long alive = 0;
	for (long i = 0; i < nworkers; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("c-epoll: fork");
			break;
		}
		if (pid == 0) {
			sigprocmask(SIG_SETMASK, &old, NULL);
			run_worker(host, port);
		}
		kids[i] = pid;
		alive++;
	}
	printf("listening on %s port %d, %ld workers\n", host, port, alive);
	fflush(stdout);
	if (alive < nworkers)
		stop_all(kids, nworkers);

	int stopping = alive < nworkers;
	while (alive > 0) {
		int sig = sigwaitinfo(&set, NULL);
		if (sig == SIGTERM || sig == SIGINT) {
			stopping = 1;
			stop_all(kids, nworkers);
			continue;
		}
		pid_t pid;
		while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
			for (long i = 0; i < nworkers; i++)
				if (kids[i] == pid) {
					kids[i] = 0;
					alive--;
				}
			if (!stopping) {
				fprintf(stderr, "c-epoll: worker %d exited; stopping\n", (int)pid);
				stopping = 1;
				stop_all(kids, nworkers);
			}
		}
	}
	return 0;
}
