/* The sandbox ("pause") container of the real-node test bed: holds the pod's namespaces and does nothing else.
 * As PID 1 of the sandbox it reaps adopted children, and it exits on SIGTERM or SIGINT (the runtime stops it). */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) { _exit(sig == SIGTERM ? 0 : 2); }

static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, 0, WNOHANG) > 0) {}
}

int main(void) {
  struct sigaction stop = { .sa_handler = on_stop }, child = { .sa_handler = on_child, .sa_flags = SA_NOCLDSTOP };
  sigaction(SIGTERM, &stop, 0);
  sigaction(SIGINT, &stop, 0);
  sigaction(SIGCHLD, &child, 0);
  for (;;) pause();
}
