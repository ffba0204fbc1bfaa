/*
 * bench-spawn: benchmark helper (not shipped). Runs argv N times the way a container runtime does (posix_spawn,
 * i.e. clone(CLONE_VFORK) + exec, stdin from a file, stdout to /dev/null), and prints one line per run:
 * "<wall ms> <peak RSS KiB> <exit status>". The wall time is spawn-to-reap; the RSS is wait4's ru_maxrss of that
 * child. Node's spawnSync adds ~1.2 ms of its own per call (forking a large process), which is not the
 * executable's cost, so the CNI bench measures through this helper. Usage: bench-spawn N STDIN_FILE ARGV...
 *
 * With --rss, the peak RSS is read instead from /proc/<pid>/status VmHWM at the child's exit stop under ptrace
 * (PTRACE_O_TRACEEXIT): ru_maxrss also folds in the pre-exec image inherited from the launcher, VmHWM is the
 * executable's own memory only. (Wall times in this mode include ptrace overhead; use the plain mode for time.)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <unistd.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static long vmhwm(pid_t pid) {
	char path[64], line[256];
	long kb = -1;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f) return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "VmHWM:", 6)) kb = atol(line + 6);
	fclose(f);
	return kb;
}

/* fork + PTRACE_TRACEME + exec; reads VmHWM at the exit stop. Prints "<ms> <VmHWM KiB> <status>". */
static int traced(char *in, char **args) {
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(in, O_RDONLY), nul = open("/dev/null", O_WRONLY);
		dup2(fd, 0), dup2(nul, 1);
		ptrace(PTRACE_TRACEME, 0, NULL, NULL);
		execv(args[0], args);
		_exit(127);
	}
	int st;
	long kb = -1;
	waitpid(pid, &st, 0); /* SIGTRAP after exec */
	ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)PTRACE_O_TRACEEXIT);
	ptrace(PTRACE_CONT, pid, NULL, NULL);
	for (;;) {
		if (waitpid(pid, &st, 0) < 0) return perror("waitpid"), 1;
		if (WIFEXITED(st) || WIFSIGNALED(st)) break;
		if (WIFSTOPPED(st) && (st >> 8) == (SIGTRAP | (PTRACE_EVENT_EXIT << 8))) kb = vmhwm(pid);
		ptrace(PTRACE_CONT, pid, NULL, WIFSTOPPED(st) && WSTOPSIG(st) != SIGTRAP ? (void *)(long)WSTOPSIG(st) : NULL);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.4f %ld %d\n", (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6, kb, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return 0;
}

int main(int argc, char **argv) {
	if (argc > 1 && !strcmp(argv[1], "--rss")) {
		if (argc < 5) return 2;
		for (int i = 0, n = atoi(argv[2]); i < n; i++) if (traced(argv[3], argv + 4)) return 1;
		return 0;
	}
	if (argc < 4) { fputs("usage: bench-spawn [--rss] N STDIN_FILE ARGV...\n", stderr); return 2; }
	int n = atoi(argv[1]);
	for (int i = 0; i < n; i++) {
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, 0, argv[2], O_RDONLY, 0);
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
		struct timespec a, b;
		struct rusage ru;
		int st = 0;
		pid_t pid;
		clock_gettime(CLOCK_MONOTONIC, &a);
		if (posix_spawn(&pid, argv[3], &fa, NULL, argv + 3, environ)) { perror("posix_spawn"); return 1; }
		if (wait4(pid, &st, 0, &ru) < 0) { perror("wait4"); return 1; }
		clock_gettime(CLOCK_MONOTONIC, &b);
		posix_spawn_file_actions_destroy(&fa);
		printf("%.4f %ld %d\n", (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6, ru.ru_maxrss, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
	return 0;
}
