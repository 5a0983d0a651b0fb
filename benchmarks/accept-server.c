// The backends of bench:vip: accept each connection on port 80 and close it, nothing else.
// Written in C so a backend costs the shared 2-core machine a few microseconds per connection:
// with node's accept server, 4 busy backend processes took more of the CPU from the client than
// 1 did (the VIP arm paid for its backends' count, not for the VIP), and a backend descheduled
// for ~0.2 s overflowed its accept queue (SYNs dropped, 1 s retransmits). A deep queue (4096;
// the namespace's somaxconn) rides out such pauses. Prints "ready" once listening.
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(80), .sin_addr = { htonl(INADDR_ANY) } };
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0) {
    perror("accept-server: listening on port 80");
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    int c = accept(fd, NULL, NULL);
    if (c >= 0) close(c);
  }
}
