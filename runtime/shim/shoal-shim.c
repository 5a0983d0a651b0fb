// shoal-shim: the runtime's host helper for the pod/container start path, and each container's
// monitor (the job CRI-O's conmon does). Why C: a pod start needs a few syscalls (unshare,
// mount, mkfifo, fork), and doing them from one small resident process costs microseconds,
// where a shell costs a fork and an exec of dynamic programs per step.
//
// `shoal-shim serve` reads requests on stdin and answers on stdout. A request is a 32-bit
// little-endian length, then that many bytes: NUL-separated fields, the first the request id,
// the second the operation. An answer is one line: "<id> <status> <text>" (status 0 = done).
//   ns NETFILE IPCFILE UTSFILE   new network/IPC/UTS namespaces (empty name: not wanted),
//                                 each bind-mounted on its file; loopback up in the network one
//   overlay DIR OPTIONS [FIFO...] the bundle directory, rootfs/upper/work, the overlay root and
//                                 the three FIFOs (stdout, stderr, collect), plus any FIFO named
//                                 (stdin.fifo and ctl.fifo for a container with stdin or a tty)
//   start DIR RUNC ARGS...        starts a monitor for the container whose bundle is DIR; the
//                                 monitor answers "<monitor pid> <container pid> <start ns>
//                                 <ns runc took>"
//                                 once runc has started the container
//   start-io DIR MODE RUNC ARGS   as start, for a container with stdin ("i"), a terminal ("t")
//                                 or both ("it"): see "Containers with stdin or a terminal" below
//   umount PATH                   unmounts PATH (lazily if busy)
//   infra DIR                     a pod's infra process (like a pause container): pid 1 of a new
//                                 PID namespace the pod's containers join, named "shoal-pause",
//                                 working in DIR; answers its (host) pid
// One-shot modes (a process per stream, started by the runtime's streaming server):
//   shoal-shim portfwd NETNS PORT       connects to 127.0.0.1:PORT inside the network namespace
//                                       NETNS and relays stdin/stdout to it (PortForward)
//   shoal-shim tty-exec DIR RUNC ARGS   runs `RUNC ARGS` (a `runc exec -d --tty` whose
//                                       --console-socket is DIR/console.sock), takes the pty
//                                       master runc sends, relays stdin/stdout to it, applies
//                                       "COLS ROWS" lines from fd 3 as window sizes, and exits
//                                       with the exec'd process's status
// Answers to `start` come from the monitor, so they may overtake later requests' answers.
//
// The monitor: its own session, a child subreaper (so the container process becomes its
// child when `runc run -d` exits), named "shoal-monitor" with DIR as its working directory
// (how the runtime finds it again after a restart). It holds both log FIFOs open read-write
// (the container never gets SIGPIPE while the runtime is away), writes the container's exit
// status to DIR/exitcode (tmp + rename), then waits until the runtime has collected the exit
// (opens DIR/collect.fifo) before it lets go of the pipes.
//
// Containers with stdin or a terminal (start-io): the monitor also holds DIR/stdin.fifo open
// read-write (so the container never reads end-of-file while no client is attached; the
// runtime writes what attached clients type into it) and reads commands from DIR/ctl.fifo, one
// per line: "w COLS ROWS" sets the terminal's size, "c" closes stdin for good (stdin_once: the
// monitor lets go of stdin.fifo and removes it; the process reads end-of-file, and on a terminal
// the terminal hangs up). Without a terminal, the container's stdin is the FIFO itself. With one,
// runc sends the pty master to DIR/console.sock; the monitor keeps it, copies stdin.fifo to it
// and its output to stdout.fifo. All of it lives in the monitor, so a restarted runtime attaches
// again simply by opening the FIFOs.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/un.h>
#include <termios.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_REQUEST (1 << 20)
#define MAX_FIELDS 4096

static int host_ns[3] = {-1, -1, -1};
static const char *const ns_name[3] = {"net", "ipc", "uts"};
static const int ns_flag[3] = {CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS};

// One answer line, written with a single write() of at most PIPE_BUF bytes so answers from
// several monitors sharing the pipe never interleave.
static void answer(const char *id, int status, const char *fmt, ...) {
  char buf[4000];
  int n = snprintf(buf, sizeof buf, "%s %d ", id, status);
  if (n < 0 || n >= (int)sizeof buf - 2) n = 0;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
  va_end(ap);
  if (m < 0) m = 0;
  if (n + m > (int)sizeof buf - 2) m = (int)sizeof buf - 2 - n;
  for (int i = n; i < n + m; i++) if (buf[i] == '\n') buf[i] = ' ';
  buf[n + m] = '\n';
  ssize_t w;
  do w = write(1, buf, (size_t)(n + m + 1)); while (w < 0 && errno == EINTR);
}

static int read_full(int fd, void *p, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t r = read(fd, (char *)p + got, len - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

static void op_ns(const char *id, char **a, int n) {
  if (n != 3) { answer(id, 1, "ns needs 3 arguments, got %d", n); return; }
  int flags = 0;
  for (int i = 0; i < 3; i++) {
    if (!a[i][0]) continue;
    int fd = open(a[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) { answer(id, 1, "cannot create %s: %s", a[i], strerror(errno)); return; }
    close(fd);
    flags |= ns_flag[i];
  }
  if (!flags) { answer(id, 0, ""); return; }
  // The new namespaces are entered by this process itself and left again below: no fork.
  if (unshare(flags) < 0) { answer(id, 1, "unshare: %s", strerror(errno)); return; }
  char err[600] = "";
  for (int i = 0; i < 3 && !err[0]; i++) {
    if (!a[i][0]) continue;
    char src[64];
    snprintf(src, sizeof src, "/proc/self/ns/%s", ns_name[i]);
    if (mount(src, a[i], NULL, MS_BIND, NULL) < 0) snprintf(err, sizeof err, "bind-mount %s namespace on %s: %s", ns_name[i], a[i], strerror(errno));
  }
  if (!err[0] && a[0][0]) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0) snprintf(err, sizeof err, "loopback flags: %s", strerror(errno));
    else {
      ifr.ifr_flags |= IFF_UP;
      if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) snprintf(err, sizeof err, "loopback up: %s", strerror(errno));
    }
    if (s >= 0) close(s);
  }
  for (int i = 0; i < 3; i++) {
    if (!(flags & ns_flag[i])) continue;
    // Staying in a pod's namespace would put the next pod's work in the wrong place.
    if (setns(host_ns[i], ns_flag[i]) < 0) { fprintf(stderr, "shoal-shim: cannot return to the host %s namespace: %s\n", ns_name[i], strerror(errno)); _exit(3); }
  }
  if (err[0]) answer(id, 1, "%s", err); else answer(id, 0, "");
}

static void op_overlay(const char *id, char **a, int n) {
  if (n < 2) { answer(id, 1, "overlay needs at least 2 arguments, got %d", n); return; }
  const char *dir = a[0];
  char p[4][4200];
  const char *sub[4] = {"rootfs", "upper", "work", ""};
  if (strlen(dir) > 4000) { answer(id, 1, "directory name too long"); return; }
  for (int i = 2; i < n; i++) if (!a[i][0] || strchr(a[i], '/') || strlen(a[i]) > 100) { answer(id, 1, "FIFO name %s must be a plain file name", a[i]); return; }
  if (mkdir(dir, 0711) < 0) { answer(id, 1, "mkdir %s: %s", dir, strerror(errno)); return; }
  for (int i = 0; i < 3; i++) {
    snprintf(p[i], sizeof p[i], "%s/%s", dir, sub[i]);
    if (mkdir(p[i], 0755) < 0) { answer(id, 1, "mkdir %s: %s", p[i], strerror(errno)); return; }
  }
  if (mount("overlay", p[0], "overlay", 0, a[1]) < 0) { answer(id, 1, "mount overlay on %s: %s", p[0], strerror(errno)); return; }
  const char *fifo[3] = {"stdout.fifo", "stderr.fifo", "collect.fifo"};
  for (int i = 0; i < 3; i++) {
    snprintf(p[3], sizeof p[3], "%s/%s", dir, fifo[i]);
    if (mkfifo(p[3], 0600) < 0) { answer(id, 1, "mkfifo %s: %s", p[3], strerror(errno)); return; }
  }
  for (int i = 2; i < n; i++) {
    snprintf(p[3], sizeof p[3], "%s/%s", dir, a[i]);
    if (mkfifo(p[3], 0600) < 0) { answer(id, 1, "mkfifo %s: %s", p[3], strerror(errno)); return; }
  }
  answer(id, 0, "");
}

static void op_umount(const char *id, char **a, int n) {
  if (n != 1) { answer(id, 1, "umount needs 1 argument, got %d", n); return; }
  if (umount2(a[0], 0) == 0 || errno == EINVAL || errno == ENOENT) { answer(id, 0, ""); return; }
  if (errno == EBUSY && umount2(a[0], MNT_DETACH) == 0) { answer(id, 0, "detached"); return; }
  answer(id, 1, "umount %s: %s", a[0], strerror(errno));
}

// The infra process: pid 1 of the pod's PID namespace. It reaps what falls to it and ends on
// SIGTERM/SIGINT (with it, the kernel ends every process left in the namespace).
static volatile sig_atomic_t infra_stop = 0;
static void infra_term(int sig) { (void)sig; infra_stop = 1; }
static void infra_chld(int sig) { (void)sig; }

static void op_infra(const char *id, char **a, int n) {
  if (n != 1) { answer(id, 1, "infra needs 1 argument, got %d", n); return; }
  pid_t p = fork();
  if (p < 0) { answer(id, 1, "fork: %s", strerror(errno)); return; }
  if (p == 0) {
    if (unshare(CLONE_NEWPID) < 0) { answer(id, 1, "unshare pid namespace: %s", strerror(errno)); _exit(1); }
    // The pid is answered only once the infra process is named and in its directory: the
    // runtime recognises it by both, and a CreateContainer right after RunPodSandbox found a
    // process still named after the shim ("the infra process ... is gone").
    int ready[2];
    if (pipe(ready) < 0) { answer(id, 1, "pipe: %s", strerror(errno)); _exit(1); }
    pid_t b = fork();
    if (b < 0) { answer(id, 1, "fork: %s", strerror(errno)); _exit(1); }
    if (b == 0) {
      close(ready[0]);
      setsid();
      prctl(PR_SET_NAME, "shoal-pause");
      for (int i = 0; i < 3; i++) if (host_ns[i] >= 0) close(host_ns[i]);
      int null = open("/dev/null", O_RDWR);
      if (null >= 0) { dup2(null, 0); dup2(null, 1); dup2(null, 2); if (null > 2) close(null); }
      if (chdir(a[0]) < 0) _exit(1);
      if (write(ready[1], "1", 1) != 1) _exit(1);
      close(ready[1]);
      struct sigaction sa;
      memset(&sa, 0, sizeof sa);
      sa.sa_handler = infra_term;
      sigaction(SIGTERM, &sa, NULL);
      sigaction(SIGINT, &sa, NULL);
      sa.sa_handler = infra_chld;
      sigaction(SIGCHLD, &sa, NULL);
      signal(SIGPIPE, SIG_IGN);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, NULL);
      while (!infra_stop) {
        pause();
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
      }
      _exit(0);
    }
    close(ready[1]);
    char c;
    ssize_t r;
    while ((r = read(ready[0], &c, 1)) < 0 && errno == EINTR) {}
    if (r != 1) { answer(id, 1, "the infra process did not start in %s (chdir failed?)", a[0]); _exit(1); }
    answer(id, 0, "%d", (int)b);
    _exit(0);
  }
  int st;
  while (waitpid(p, &st, 0) < 0 && errno == EINTR) {}
}

static void write_exitcode(int code) {
  int fd = open("exitcode.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  char b[16];
  int n = snprintf(b, sizeof b, "%d\n", code);
  if (write(fd, b, (size_t)n) != n) { close(fd); return; }
  close(fd);
  rename("exitcode.tmp", "exitcode");
}

static int status_code(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return 255;
}

#define MODE_STDIN 1
#define MODE_TTY 2
#define IO_BUF 65536

// Receives the pty master runc sends to the console socket (already connected: runc has exited).
static int recv_master(int ls) {
  int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (c < 0) return -1;
  int master = -1;
  char name[512];
  struct iovec iov = {.iov_base = name, .iov_len = sizeof name};
  union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  if (recvmsg(c, &m, MSG_CMSG_CLOEXEC) > 0) {
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    if (cm && cm->cmsg_type == SCM_RIGHTS) memcpy(&master, CMSG_DATA(cm), sizeof(int));
  }
  close(c);
  return master;
}

static void set_nonblock(int fd, int on) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

// Writes all of buf to fd (made blocking): used once the container is gone.
static void write_all(int fd, const char *buf, size_t len) {
  set_nonblock(fd, 0);
  while (len > 0) {
    ssize_t w = write(fd, buf, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    buf += w;
    len -= (size_t)w;
  }
}

// The monitor's loop for a container with stdin or a terminal (see the top of this file):
// returns the container's exit status once it has been reaped and its terminal output copied.
static int io_loop(int mode, pid_t cpid, int sigfd, int ctl, int hold_in, int master, int out) {
  static char in_buf[IO_BUF], out_buf[IO_BUF];
  size_t in_len = 0, out_len = 0;
  char cbuf[256];
  size_t clen = 0;
  if (master >= 0) { set_nonblock(master, 1); set_nonblock(out, 1); }
  int code = -1;
  while (code < 0) {
    struct pollfd p[5];
    int n = 0, si, ci = -1, ii = -1, mi = -1, oi = -1;
    p[n].fd = sigfd; p[n].events = POLLIN; si = n++;
    if (ctl >= 0) { p[n].fd = ctl; p[n].events = POLLIN; ci = n++; }
    if (master >= 0) {
      // Backpressure both ways: read a side only when what was read before has been written.
      if (in_len == 0 && hold_in >= 0) { p[n].fd = hold_in; p[n].events = POLLIN; ii = n++; }
      p[n].fd = master; p[n].events = (short)((out_len == 0 ? POLLIN : 0) | (in_len > 0 ? POLLOUT : 0)); mi = n++;
      if (out_len > 0) { p[n].fd = out; p[n].events = POLLOUT; oi = n++; }
    }
    if (poll(p, (nfds_t)n, -1) < 0) { if (errno == EINTR) continue; break; }
    if (p[si].revents) {
      struct signalfd_siginfo si_info;
      while (read(sigfd, &si_info, sizeof si_info) > 0) {}
      int st;
      pid_t w;
      // Orphans that fall to the monitor (it is a subreaper) are reaped too.
      while ((w = waitpid(-1, &st, WNOHANG)) > 0) if (w == cpid) code = status_code(st);
      if (w < 0 && errno == ECHILD && code < 0 && kill(cpid, 0) < 0 && errno == ESRCH) code = 255;
    }
    if (ci >= 0 && p[ci].revents & POLLIN) {
      ssize_t k = read(ctl, cbuf + clen, sizeof cbuf - clen - 1);
      if (k > 0) {
        clen += (size_t)k;
        cbuf[clen] = 0;
        char *nl;
        while ((nl = strchr(cbuf, '\n'))) {
          *nl = 0;
          unsigned cols = 0, rows = 0;
          if (sscanf(cbuf, "w %u %u", &cols, &rows) == 2 && master >= 0 && cols > 0 && rows > 0 && cols < 65536 && rows < 65536) {
            struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
            ioctl(master, TIOCSWINSZ, &ws);
          } else if (!strcmp(cbuf, "c") && hold_in >= 0) {
            close(hold_in);
            hold_in = -1;
            unlink("stdin.fifo");
            in_len = 0;
            // A terminal's input cannot end on its own: closing the master hangs it up.
            if (master >= 0) { close(master); master = -1; }
          }
          size_t used = (size_t)(nl - cbuf) + 1;
          memmove(cbuf, nl + 1, clen - used + 1);
          clen -= used;
        }
        if (clen >= sizeof cbuf - 1) clen = 0;
      }
    }
    if (ii >= 0 && p[ii].revents & POLLIN) {
      ssize_t k = read(hold_in, in_buf, sizeof in_buf);
      if (k > 0) in_len = (size_t)k;
    }
    if (mi >= 0 && master >= 0 && p[mi].revents) {
      if (in_len > 0 && (p[mi].revents & POLLOUT)) {
        ssize_t w = write(master, in_buf, in_len);
        if (w > 0) { memmove(in_buf, in_buf + w, in_len - (size_t)w); in_len -= (size_t)w; }
        else if (w < 0 && errno != EAGAIN && errno != EINTR) in_len = 0;
      }
      if (out_len == 0 && (p[mi].revents & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t k = read(master, out_buf, sizeof out_buf);
        if (k > 0) out_len = (size_t)k;
        // EIO: every process holding the terminal is gone; what is left waits for the exit.
        else if (k == 0 || (errno != EAGAIN && errno != EINTR)) { close(master); master = -1; }
      }
    }
    if (oi >= 0 && p[oi].revents) {
      ssize_t w = write(out, out_buf, out_len);
      if (w > 0) { memmove(out_buf, out_buf + w, out_len - (size_t)w); out_len -= (size_t)w; }
      else if (w < 0 && errno != EAGAIN && errno != EINTR) out_len = 0;
    }
  }
  // The container is gone: what it wrote to the terminal goes to the log before the exit counts.
  if (out_len > 0) write_all(out, out_buf, out_len);
  if (master >= 0) {
    ssize_t k;
    while ((k = read(master, out_buf, sizeof out_buf)) > 0) write_all(out, out_buf, (size_t)k);
    close(master);
  }
  return code < 0 ? 255 : code;
}

static void monitor(const char *id, const char *dir, int mode, char **argv) {
  setsid();
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  prctl(PR_SET_NAME, "shoal-monitor");
  for (int i = 0; i < 3; i++) if (host_ns[i] >= 0) close(host_ns[i]);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0 || dup2(null, 0) < 0) { answer(id, 1, "cannot open /dev/null: %s", strerror(errno)); _exit(1); }
  if (chdir(dir) < 0) { answer(id, 1, "cannot enter %s: %s", dir, strerror(errno)); _exit(1); }
  // Held read-write for the container's lifetime: there is always a reader, and output the
  // runtime has not read yet stays in the pipe.
  int hold_out = open("stdout.fifo", O_RDWR | O_CLOEXEC);
  int hold_err = open("stderr.fifo", O_RDWR | O_CLOEXEC);
  if (hold_out < 0 || hold_err < 0) { write_exitcode(127); answer(id, 2, "cannot open the log FIFOs in %s: %s", dir, strerror(errno)); _exit(1); }
  int hold_in = -1, ctl = -1, ls = -1, sigfd = -1;
  if (mode) {
    hold_in = open("stdin.fifo", O_RDWR | O_CLOEXEC);
    ctl = open("ctl.fifo", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (hold_in < 0 || ctl < 0) { write_exitcode(127); answer(id, 2, "cannot open stdin.fifo/ctl.fifo in %s: %s", dir, strerror(errno)); _exit(1); }
    // SIGCHLD through a descriptor, blocked from before the fork so no exit is missed.
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd < 0) { write_exitcode(127); answer(id, 2, "signalfd: %s", strerror(errno)); _exit(1); }
  }
  if (mode & MODE_TTY) {
    // runc is given the relative path: it runs in the bundle, and a bundle path may be longer
    // than a socket address can be.
    unlink("console.sock");
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    strcpy(un.sun_path, "console.sock");
    ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (ls < 0 || bind(ls, (struct sockaddr *)&un, sizeof un) < 0 || listen(ls, 1) < 0) { write_exitcode(127); answer(id, 2, "console socket in %s: %s", dir, strerror(errno)); _exit(1); }
  }
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t runc = fork();
  if (runc < 0) { write_exitcode(127); answer(id, 2, "fork: %s", strerror(errno)); _exit(1); }
  if (runc == 0) {
    int o = open("stdout.fifo", O_WRONLY), e = open("stderr.fifo", O_WRONLY);
    if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) _exit(127);
    close(o);
    close(e);
    if ((mode & MODE_STDIN) && !(mode & MODE_TTY)) {
      // The container's stdin is the FIFO (the monitor's read-write hold keeps a writer).
      int i = open("stdin.fifo", O_RDONLY);
      if (i < 0 || dup2(i, 0) < 0) _exit(127);
      close(i);
    }
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvp(argv[0], argv);
    _exit(127);
  }
  int st;
  while (waitpid(runc, &st, 0) < 0) if (errno != EINTR) { st = 255 << 8; break; }
  int rc = status_code(st);
  if (rc != 0) {
    // runc failed before the container started; its log says why.
    if (ls >= 0) unlink("console.sock");
    write_exitcode(rc);
    answer(id, 2, "runc exited with status %d", rc);
    _exit(0);
  }
  char buf[64] = "";
  int pf = open("pid", O_RDONLY | O_CLOEXEC);
  ssize_t r = pf >= 0 ? read(pf, buf, sizeof buf - 1) : -1;
  if (pf >= 0) close(pf);
  pid_t cpid = r > 0 ? (pid_t)atoi(buf) : 0;
  if (cpid <= 0) { write_exitcode(255); answer(id, 2, "runc started the container but left no pid file"); _exit(0); }
  int master = -1;
  if (ls >= 0) {
    master = recv_master(ls);
    close(ls);
    unlink("console.sock");
    if (master < 0) {
      // A container whose terminal nobody holds cannot be used: it is ended, and says why.
      kill(cpid, SIGKILL);
      while (waitpid(cpid, &st, 0) < 0 && errno == EINTR) {}
      write_exitcode(255);
      answer(id, 2, "runc started the container but sent no terminal to the console socket");
      _exit(0);
    }
  }
  struct timespec now, t1;
  clock_gettime(CLOCK_REALTIME, &now);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  answer(id, 0, "%d %d %lld %lld", (int)getpid(), (int)cpid, (long long)now.tv_sec * 1000000000LL + now.tv_nsec,
         (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
  dup2(null, 1);
  dup2(null, 2);
  int code = 255;
  if (mode) code = io_loop(mode, cpid, sigfd, ctl, hold_in, master, hold_out);
  else for (;;) {
    pid_t p = waitpid(-1, &st, 0);
    if (p == cpid) { code = status_code(st); break; }
    if (p < 0 && errno == ECHILD) {
      // Not our child (cannot happen while runc makes its parent a subreaper): wait for it to
      // be gone; the status is unknown.
      while (kill(cpid, 0) == 0 || errno != ESRCH) usleep(100000);
      break;
    }
  }
  write_exitcode(code);
  int c = open("collect.fifo", O_RDONLY | O_CLOEXEC);
  if (c >= 0) { char x; while (read(c, &x, 1) > 0) {} }
  _exit(0);
}

static void op_start(const char *id, char **a, int n, int with_mode) {
  if (n < (with_mode ? 3 : 2)) { answer(id, 1, "%s needs a directory%s and a command", with_mode ? "start-io" : "start", with_mode ? ", a mode" : ""); return; }
  int mode = 0;
  if (with_mode) {
    for (const char *m = a[1]; *m; m++) {
      if (*m == 'i') mode |= MODE_STDIN;
      else if (*m == 't') mode |= MODE_TTY;
      else { answer(id, 1, "start-io mode %s: use i (stdin), t (terminal) or it", a[1]); return; }
    }
    if (!mode) { answer(id, 1, "start-io needs a mode: i (stdin), t (terminal) or it"); return; }
  }
  // Two forks: the monitor is orphaned at once, so the helper never has to reap it and the
  // monitor outlives a helper (and runtime) restart.
  pid_t p = fork();
  if (p < 0) { answer(id, 1, "fork: %s", strerror(errno)); return; }
  if (p == 0) {
    pid_t m = fork();
    if (m < 0) { answer(id, 1, "fork: %s", strerror(errno)); _exit(1); }
    if (m == 0) monitor(id, a[0], mode, a + (with_mode ? 2 : 1));
    _exit(0);
  }
  int st;
  while (waitpid(p, &st, 0) < 0 && errno == EINTR) {}
}

static int serve(void) {
  signal(SIGPIPE, SIG_IGN);
  umask(022);
  for (int i = 0; i < 3; i++) {
    char p[64];
    snprintf(p, sizeof p, "/proc/self/ns/%s", ns_name[i]);
    host_ns[i] = open(p, O_RDONLY | O_CLOEXEC);
    if (host_ns[i] < 0) { fprintf(stderr, "shoal-shim: cannot open %s: %s\n", p, strerror(errno)); return 1; }
  }
  char *req = malloc(MAX_REQUEST + 1);
  char **f = malloc(sizeof(char *) * MAX_FIELDS);
  if (!req || !f) return 1;
  for (;;) {
    uint8_t h[4];
    if (read_full(0, h, 4) < 0) return 0; // the runtime went away
    uint32_t len = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
    if (len == 0 || len > MAX_REQUEST) { fprintf(stderr, "shoal-shim: request of %u bytes refused (limit %d)\n", len, MAX_REQUEST); return 2; }
    if (read_full(0, req, len) < 0) return 2;
    req[len] = 0;
    // Fields are separated by NUL; an empty last field ("x\0") counts.
    int n = 0;
    f[n++] = req;
    for (uint32_t i = 0; i < len && n < MAX_FIELDS - 1; i++) if (!req[i]) f[n++] = req + i + 1;
    f[n] = NULL;
    if (n < 2) { answer(n ? f[0] : "?", 1, "request without an operation"); continue; }
    const char *id = f[0], *op = f[1];
    if (!strcmp(op, "ns")) op_ns(id, f + 2, n - 2);
    else if (!strcmp(op, "overlay")) op_overlay(id, f + 2, n - 2);
    else if (!strcmp(op, "start")) op_start(id, f + 2, n - 2, 0);
    else if (!strcmp(op, "start-io")) op_start(id, f + 2, n - 2, 1);
    else if (!strcmp(op, "umount")) op_umount(id, f + 2, n - 2);
    else if (!strcmp(op, "infra")) op_infra(id, f + 2, n - 2);
    else answer(id, 1, "unknown operation %s", op);
  }
}

// Copies between two fd pairs until `out_src` ends; a closed `in_src` half-closes `in_dst`
// (shutdown for a socket). Returns when out_src reaches end-of-file or an error.
static void relay(int in_src, int in_dst, int out_src, int out_dst, int ctl, int ctl_target, pid_t child, int *child_status) {
  char buf[32768];
  int in_open = 1, ctl_open = ctl >= 0;
  char cbuf[256];
  size_t clen = 0;
  for (;;) {
    struct pollfd p[3];
    int n = 0, ii = -1, oi, ci = -1;
    if (in_open) { p[n].fd = in_src; p[n].events = POLLIN; ii = n++; }
    p[n].fd = out_src; p[n].events = POLLIN; oi = n++;
    if (ctl_open) { p[n].fd = ctl; p[n].events = POLLIN; ci = n++; }
    int r = poll(p, (nfds_t)n, child > 0 ? 200 : -1);
    if (r < 0 && errno != EINTR) return;
    if (child > 0 && *child_status < 0) {
      int st;
      if (waitpid(child, &st, WNOHANG) == child) *child_status = st;
    }
    if (r <= 0) {
      if (child > 0 && *child_status >= 0) {
        // The process is gone: what is left in the pty is read, then we are done.
        int fl = fcntl(out_src, F_GETFL);
        fcntl(out_src, F_SETFL, fl | O_NONBLOCK);
        ssize_t k;
        while ((k = read(out_src, buf, sizeof buf)) > 0) if (write(out_dst, buf, (size_t)k) < 0) break;
        return;
      }
      continue;
    }
    // Window sizes first: the client sent a resize before the input that follows it.
    if (ci >= 0 && p[ci].revents) {
      ssize_t k = read(ctl, cbuf + clen, sizeof cbuf - clen - 1);
      if (k <= 0) ctl_open = 0;
      else {
        clen += (size_t)k;
        cbuf[clen] = 0;
        char *nl;
        while ((nl = strchr(cbuf, '\n'))) {
          *nl = 0;
          unsigned cols = 0, rows = 0;
          if (sscanf(cbuf, "%u %u", &cols, &rows) == 2 && ctl_target >= 0) {
            struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
            ioctl(ctl_target, TIOCSWINSZ, &ws);
          }
          size_t used = (size_t)(nl - cbuf) + 1;
          memmove(cbuf, nl + 1, clen - used + 1);
          clen -= used;
        }
        if (clen >= sizeof cbuf - 1) clen = 0;
      }
    }
    if (ii >= 0 && p[ii].revents) {
      ssize_t k = read(in_src, buf, sizeof buf);
      if (k <= 0) { in_open = 0; if (shutdown(in_dst, SHUT_WR) < 0 && errno == ENOTSOCK) { /* a pty: stays open */ } }
      else { ssize_t w = 0; while (w < k) { ssize_t x = write(in_dst, buf + w, (size_t)(k - w)); if (x <= 0) break; w += x; } }
    }
    if (p[oi].revents) {
      ssize_t k = read(out_src, buf, sizeof buf);
      if (k <= 0) {
        if (child > 0 && *child_status < 0) { int st; if (waitpid(child, &st, 0) == child) *child_status = st; }
        return;
      }
      ssize_t w = 0;
      while (w < k) { ssize_t x = write(out_dst, buf + w, (size_t)(k - w)); if (x <= 0) return; w += x; }
    }
  }
}

static int portfwd(const char *netns, const char *port) {
  signal(SIGPIPE, SIG_IGN);
  int fd = open(netns, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { fprintf(stderr, "cannot open network namespace %s: %s\n", netns, strerror(errno)); return 1; }
  if (setns(fd, CLONE_NEWNET) < 0) { fprintf(stderr, "cannot enter network namespace %s: %s\n", netns, strerror(errno)); return 1; }
  close(fd);
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)atoi(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) { fprintf(stderr, "cannot connect to port %s in the pod: %s\n", port, strerror(errno)); return 1; }
  int none = -1;
  relay(0, s, s, 1, -1, -1, 0, &none);
  return 0;
}

static int tty_exec(const char *dir, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  char path[300];
  snprintf(path, sizeof path, "%s/console.sock", dir);
  unlink(path);
  int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un un;
  memset(&un, 0, sizeof un);
  un.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof un.sun_path) { fprintf(stderr, "console socket path too long: %s\n", path); return 255; }
  strcpy(un.sun_path, path);
  if (ls < 0 || bind(ls, (struct sockaddr *)&un, sizeof un) < 0 || listen(ls, 1) < 0) { fprintf(stderr, "console socket %s: %s\n", path, strerror(errno)); return 255; }
  pid_t runc = fork();
  if (runc < 0) { fprintf(stderr, "fork: %s\n", strerror(errno)); return 255; }
  if (runc == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0); dup2(null, 1);
    execvp(argv[0], argv);
    fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  // runc connects once it has made the pty; if it fails first, it exits without connecting.
  int master = -1;
  for (;;) {
    struct pollfd p = {.fd = ls, .events = POLLIN};
    int r = poll(&p, 1, 100);
    if (r > 0) {
      int c = accept(ls, NULL, NULL);
      if (c < 0) break;
      char name[512];
      struct iovec iov = {.iov_base = name, .iov_len = sizeof name};
      union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
      struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
      if (recvmsg(c, &m, 0) > 0) {
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
        if (cm && cm->cmsg_type == SCM_RIGHTS) memcpy(&master, CMSG_DATA(cm), sizeof(int));
      }
      close(c);
      break;
    }
    int st;
    if (waitpid(runc, &st, WNOHANG) == runc) { unlink(path); fprintf(stderr, "runc exec failed (status %d)\n", status_code(st)); return 255; }
  }
  close(ls);
  unlink(path);
  int st;
  while (waitpid(runc, &st, 0) < 0 && errno == EINTR) {}
  if (master < 0 || status_code(st) != 0) { fprintf(stderr, "runc exec failed (status %d)\n", status_code(st)); return 255; }
  // runc wrote the exec'd process's pid (--pid-file DIR/exec.pid); it is our child now.
  char pf[320], b[32] = "";
  snprintf(pf, sizeof pf, "%s/exec.pid", dir);
  int f = open(pf, O_RDONLY);
  ssize_t k = f >= 0 ? read(f, b, sizeof b - 1) : -1;
  if (f >= 0) close(f);
  pid_t pid = k > 0 ? (pid_t)atoi(b) : 0;
  int status = -1;
  relay(0, master, master, 1, 3, master, pid, &status);
  if (status < 0 && pid > 0) while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  return status < 0 ? 255 : status_code(status);
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "serve")) return serve();
  if (argc == 4 && !strcmp(argv[1], "portfwd")) return portfwd(argv[2], argv[3]);
  if (argc >= 4 && !strcmp(argv[1], "tty-exec")) return tty_exec(argv[2], argv + 3);
  fprintf(stderr, "usage: shoal-shim serve (started by shoal-runtime)\n");
  return 2;
}
