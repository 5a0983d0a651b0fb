// The pause process of the benchmark's containerd pods (what Kubernetes' pause image runs):
// pid 1 of the pod, reaps orphans, ends on SIGTERM/SIGINT. Built statically by the benchmark.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }

int main(void) {
  signal(SIGTERM, stop);
  signal(SIGINT, stop);
  signal(SIGCHLD, reap);
  for (;;) pause();
}
