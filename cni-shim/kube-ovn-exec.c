/*
 * kube-ovn-exec: the agent's process launcher. The agent starts it once and sends it every external command it
 * runs (iptables-save/-restore, ipset) over a pipe, instead of spawning each one itself.
 *
 * Why: Node's spawn() forks the whole agent (page tables of ~100 MB) and then waits on the event loop's thread
 * until the child has exec'd; on a busy 2-vCPU node that is 11-14 ms at the median and up to 100 ms per command,
 * and a netfilter pass runs several. This small static process spawns with posix_spawn (clone(CLONE_VFORK), no
 * page-table copy) off the agent's event loop.
 *
 * Protocol on stdin/stdout, one request at a time, answers in order; integers are 32-bit host order:
 *   request:  u32 frame length (bytes after this field), u32 timeout ms, u32 argc, argc x (u32 len, bytes),
 *             u32 stdin length, bytes
 *   answer:   u32 frame length, i32 exit status (-1 when killed or not started), i32 signal, i32 spawn errno,
 *             u32 stdout length, bytes, u32 stderr length, bytes
 * The command gets the environment of this process, default signal dispositions and an empty signal mask. It is
 * killed with SIGKILL after its timeout, also when it has closed its outputs (a grandchild that keeps the pipes
 * open is given up 2 s later). EOF on stdin
 * (the agent stopped or died) ends this process, and so does the agent's death (PR_SET_PDEATHSIG). A malformed
 * request ends it with status 2; the agent then fails what was pending and starts a new one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_FRAME (64u << 20)  /* a request: argv and stdin */
#define MAX_OUT (1u << 30)     /* each of stdout, stderr (iptables-save of a kube-proxy node can be tens of MB) */
#define MAX_ARGC 4096u

static int read_full(int fd, void *p, size_t n) {
	char *c = p;
	while (n > 0) {
		ssize_t r = read(fd, c, n);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const void *p, size_t n) {
	const char *c = p;
	while (n > 0) {
		ssize_t r = write(fd, c, n);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

struct buf {
	char *p;
	size_t len, cap;
};

static int buf_add(struct buf *b, const void *p, size_t n) {
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n) cap *= 2;
		char *q = realloc(b->p, cap);
		if (!q) return -1;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static int take_u32(const char **p, const char *end, uint32_t *v) {
	if ((size_t)(end - *p) < 4) return -1;
	memcpy(v, *p, 4);
	*p += 4;
	return 0;
}

static long long now_ms(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Runs one command: feeds `in`, collects stdout/stderr, kills it at the deadline. */
static void run(char **argv, const char *in, size_t in_len, uint32_t timeout_ms, int32_t res[3], struct buf *out,
		struct buf *err) {
	int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
	res[0] = -1, res[1] = 0, res[2] = 0;
	if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC)) {
		res[2] = errno;
		int *all[] = {pin, pout, perr};
		for (int i = 0; i < 3; i++) for (int j = 0; j < 2; j++) if (all[i][j] >= 0) close(all[i][j]);
		return;
	}
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
	posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
	posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE); /* ignored here, and an ignored signal stays ignored across exec */
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	pid_t pid;
	int e = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	if (e != 0) {
		res[2] = e;
		close(pin[1]);
		close(pout[0]);
		close(perr[0]);
		return;
	}
	fcntl(pin[1], F_SETFL, O_NONBLOCK);
	/* the child's exit as a readable fd, so the deadline holds also for a command that closed its outputs and hangs
	   (without pidfd_open, kernel < 5.3: a blocking waitpid once the outputs are closed) */
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	size_t sent = 0;
	int win = pin[1], rout = pout[0], rerr = perr[0], exited = 0;
	if (in_len == 0) close(win), win = -1;
	long long deadline = now_ms() + timeout_ms;
	int killed = 0;
	char chunk[65536];
	while (rout >= 0 || rerr >= 0 || (pidfd >= 0 && !exited)) {
		struct pollfd p[4] = {{rout, POLLIN, 0}, {rerr, POLLIN, 0}, {win, POLLOUT, 0}, {exited ? -1 : pidfd, POLLIN, 0}};
		long long left = deadline - now_ms();
		if (left <= 0 && !killed) kill(pid, SIGKILL), killed = 1, deadline = now_ms() + 2000, left = 2000;
		else if (left <= 0) break; /* killed 2 s ago and the pipes are still open: a grandchild holds them */
		int r = poll(p, 4, (int)(left > 1000000 ? 1000000 : left));
		if (r < 0 && errno != EINTR) break;
		if (r <= 0) continue;
		if (p[3].revents) exited = 1;
		if (win >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t w = write(win, in + sent, in_len - sent);
			if (w > 0) sent += (size_t)w;
			if ((w < 0 && errno != EAGAIN && errno != EINTR) || sent == in_len) close(win), win = -1;
		}
		int *fds[2] = {&rout, &rerr};
		struct buf *bufs[2] = {out, err};
		for (int i = 0; i < 2; i++) {
			if (*fds[i] < 0 || !(p[i].revents & (POLLIN | POLLERR | POLLHUP))) continue;
			ssize_t n = read(*fds[i], chunk, sizeof chunk);
			if (n > 0) {
				if (bufs[i]->len + (size_t)n > MAX_OUT || buf_add(bufs[i], chunk, (size_t)n)) kill(pid, SIGKILL), killed = 1;
			} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
				close(*fds[i]);
				*fds[i] = -1;
			}
		}
	}
	if (win >= 0) close(win);
	if (rout >= 0) close(rout);
	if (rerr >= 0) close(rerr);
	if (pidfd >= 0) close(pidfd);
	int st;
	if (!exited && pidfd >= 0) kill(pid, SIGKILL); /* given up above: do not leave it running */
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
	if (WIFEXITED(st)) res[0] = WEXITSTATUS(st);
	else if (WIFSIGNALED(st)) res[1] = WTERMSIG(st);
}

int main(void) {
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGTERM); /* (the agent may itself be PID 1 in its container: no getppid() test) */
	for (;;) {
		uint32_t len;
		if (read_full(0, &len, 4)) return 0; /* EOF: the agent closed the pipe */
		if (len > MAX_FRAME) return 2;
		char *frame = malloc(len ? len : 1);
		if (!frame || read_full(0, frame, len)) return 2;
		const char *p = frame, *end = frame + len;
		uint32_t timeout_ms, argc, in_len;
		if (take_u32(&p, end, &timeout_ms) || take_u32(&p, end, &argc) || argc == 0 || argc > MAX_ARGC) return 2;
		char **argv = calloc(argc + 1, sizeof *argv);
		if (!argv) return 2;
		for (uint32_t i = 0; i < argc; i++) {
			uint32_t n;
			if (take_u32(&p, end, &n) || (size_t)(end - p) < n) return 2;
			argv[i] = strndup(p, n);
			if (!argv[i]) return 2;
			p += n;
		}
		if (take_u32(&p, end, &in_len) || (size_t)(end - p) != in_len) return 2;
		int32_t res[3];
		struct buf out = {0}, err = {0};
		run(argv, p, in_len, timeout_ms, res, &out, &err);
		uint32_t head[5];
		head[0] = (uint32_t)(4 * 3 + 4 + out.len + 4 + err.len);
		memcpy(&head[1], res, sizeof res);
		head[4] = (uint32_t)out.len;
		if (write_full(1, head, 5 * 4) || (out.len && write_full(1, out.p, out.len)) ||
		    write_full(1, &(uint32_t){(uint32_t)err.len}, 4) || (err.len && write_full(1, err.p, err.len)))
			return 0; /* the agent is gone */
		for (uint32_t i = 0; i < argc; i++) free(argv[i]);
		free(argv);
		free(frame);
		free(out.p);
		free(err.p);
	}
}
