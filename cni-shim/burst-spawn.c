/*
 * burst-spawn: load-test helper (not shipped). Starts N runs of one executable at once, the way a container runtime
 * under a burst does (posix_spawn, i.e. clone(CLONE_VFORK) + exec, as Go's os/exec does in kubelet and containerd),
 * and reports when each one started and ended. A Node.js test driver cannot do this: its spawn() forks the whole
 * test process and waits for the exec on its event loop (10-15 ms each on a busy 2-vCPU machine), so 500 runs take
 * seconds just to start and their exits are read late; that is the driver's cost, not the agent's.
 *
 * usage: burst-spawn DIR N EXE
 *   run i (0..N-1) gets the environment in DIR/i.env (entries separated by NUL), stdin from DIR/i.in, stdout to
 *   DIR/i.out and stderr to DIR/i.err. Prints one line per run when all have ended: "i start_us end_us status",
 *   times from CLOCK_MONOTONIC, status = exit status or 128 + signal. Exit status 0 once all were reaped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static char *slurp(const char *path, size_t *len) {
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0) return NULL;
	if (fstat(fd, &st)) {
		close(fd);
		return NULL;
	}
	char *p = malloc((size_t)st.st_size + 2);
	size_t got = 0;
	while (p && got < (size_t)st.st_size) {
		ssize_t r = read(fd, p + got, (size_t)st.st_size - got);
		if (r <= 0) break;
		got += (size_t)r;
	}
	close(fd);
	if (p) p[got] = p[got + 1] = 0;
	*len = got;
	return p;
}

/* NUL-separated entries -> a NULL-terminated array pointing into `p` */
static char **split_env(char *p, size_t len) {
	size_t n = 0;
	for (size_t i = 0; i < len; i++) if (p[i] == 0) n++;
	char **env = calloc(n + 2, sizeof *env);
	size_t k = 0;
	for (size_t i = 0; i < len && env;) {
		env[k++] = p + i;
		i += strlen(p + i) + 1;
	}
	return env;
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: burst-spawn DIR N EXE\n");
		return 2;
	}
	const char *dir = argv[1], *exe = argv[3];
	int n = atoi(argv[2]);
	if (n <= 0) return 2;
	pid_t *pids = calloc((size_t)n, sizeof *pids);
	long long *start = calloc((size_t)n, sizeof *start), *end = calloc((size_t)n, sizeof *end);
	int *status = calloc((size_t)n, sizeof *status);
	char ***envs = calloc((size_t)n, sizeof *envs);
	if (!pids || !start || !end || !status || !envs) return 2;
	char path[4096];
	/* everything read before the first spawn: the runs start back to back */
	for (int i = 0; i < n; i++) {
		size_t len;
		snprintf(path, sizeof path, "%s/%d.env", dir, i);
		char *e = slurp(path, &len);
		if (!e || !(envs[i] = split_env(e, len))) {
			fprintf(stderr, "burst-spawn: %s: %s\n", path, strerror(errno));
			return 2;
		}
	}
	char *args[] = {(char *)exe, NULL};
	int started = 0;
	for (int i = 0; i < n; i++) {
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		snprintf(path, sizeof path, "%s/%d.in", dir, i);
		posix_spawn_file_actions_addopen(&fa, 0, path, O_RDONLY, 0);
		snprintf(path, sizeof path, "%s/%d.out", dir, i);
		posix_spawn_file_actions_addopen(&fa, 1, path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		snprintf(path, sizeof path, "%s/%d.err", dir, i);
		posix_spawn_file_actions_addopen(&fa, 2, path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		start[i] = now_us();
		int e = posix_spawn(&pids[i], exe, &fa, NULL, args, envs[i]);
		posix_spawn_file_actions_destroy(&fa);
		if (e != 0) {
			fprintf(stderr, "burst-spawn: run %d: %s\n", i, strerror(e));
			pids[i] = 0;
			end[i] = start[i];
			status[i] = 127;
			continue;
		}
		started++;
	}
	for (int reaped = 0; reaped < started;) {
		int st;
		pid_t p = wait(&st);
		long long t = now_us();
		if (p < 0) {
			if (errno == EINTR) continue;
			break;
		}
		for (int i = 0; i < n; i++) {
			if (pids[i] != p) continue;
			end[i] = t;
			status[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			reaped++;
			break;
		}
	}
	for (int i = 0; i < n; i++) printf("%d %lld %lld %d\n", i, start[i], end[i], status[i]);
	return 0;
}
