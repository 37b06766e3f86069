/*
 * hbload: one process that plays N heartbeat clients against apphbd (AppHb protocol v1, docs/protocol.md) or
 * Linux-HA's apphbd (clplumbing IPC framing: int32 length + 0xabcd magic, then the apphb_cs.h structs). Both sides
 * get the same client: same syscalls, same pacing, so the daemon is what differs.
 *
 *   hbload PROTO SOCKET CLIENTS INTERVAL_MS WARN_MS MODE ARG SECONDS
 *     PROTO   apphb | linuxha
 *     MODE    rate  ARG=aggregate beats/s, open loop, for SECONDS
 *             max   ARG ignored, as fast as the sockets accept, for SECONDS
 *             stall ARG=microseconds between clients' beats; one beat each, then silence for SECONDS (prints beat times)
 * Output: key=value lines. After the load a drain barrier (a request with a reply on every connection, answered
 * only after every beat queued before it) gives the time the daemon actually finished processing; a second barrier,
 * with nothing queued, measures the barrier's own cost, which is subtracted (processed_s).
 * Timestamps are CLOCK_MONOTONIC nanoseconds, comparable with .NET's Stopwatch on Linux.
 *
 * Each client connects and registers from a process of its own (Linux-HA's apphbd keys clients by pid, and both
 * daemons read the pid from the socket's credentials), then hands its socket to this process with SCM_RIGHTS and
 * sleeps; this process does all the beating. The children die with the parent (PR_SET_PDEATHSIG).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/time.h>

static int linuxha;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what) { perror(what); exit(2); }

static void write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) { if (errno == EINTR) continue; die("write"); }
        p += n; len -= (size_t)n;
    }
}

static void read_all(int fd, void *buf, size_t len) {
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n == 0) { fprintf(stderr, "hbload: daemon closed the connection\n"); exit(3); }
        if (n < 0) { if (errno == EINTR) continue; die("read"); }
        p += n; len -= (size_t)n;
    }
}

/* ---- AppHb v1 ---- */
static size_t apphb_frame(uint8_t *out, uint8_t type, uint16_t flags, uint32_t seq, const uint8_t *payload, size_t plen) {
    uint32_t len = htonl((uint32_t)(8 + plen));
    uint16_t f = htons(flags);
    uint32_t s = htonl(seq);
    memcpy(out, &len, 4); out[4] = 1; out[5] = type; memcpy(out + 6, &f, 2); memcpy(out + 8, &s, 4);
    if (plen) memcpy(out + 12, payload, plen);
    return 12 + plen;
}

static void apphb_expect(int fd, uint8_t type) {
    uint8_t head[12];
    read_all(fd, head, 12);
    uint32_t len; memcpy(&len, head, 4); len = ntohl(len);
    uint8_t rest[256];
    if (len - 8 > sizeof rest) { fprintf(stderr, "hbload: reply too long\n"); exit(3); }
    read_all(fd, rest, len - 8);
    if (head[5] != type) { fprintf(stderr, "hbload: expected reply 0x%02x, got 0x%02x\n", type, head[5]); exit(3); }
}

static size_t put_str(uint8_t *p, const char *s) {
    uint16_t n = (uint16_t)strlen(s), be = htons(n);
    memcpy(p, &be, 2); memcpy(p + 2, s, n);
    return 2 + n;
}

/* ---- Linux-HA clplumbing + apphb_cs.h ---- */
struct lha_head { int32_t len; uint32_t magic; };

static void lha_send(int fd, const void *body, int32_t len) {
    uint8_t buf[1024];
    struct lha_head h = { len, 0xabcd };
    memcpy(buf, &h, sizeof h); memcpy(buf + sizeof h, body, (size_t)len);
    write_all(fd, buf, sizeof h + (size_t)len);
}

static int lha_rc(int fd) {
    uint8_t buf[12];
    read_all(fd, buf, 12);
    int32_t rc; memcpy(&rc, buf + 8, 4);
    return rc;
}

static void lha_msms(int fd, const char *type, unsigned long ms) {
    struct { char t[8]; unsigned long ms; } m;
    memset(&m, 0, sizeof m); memcpy(m.t, type, strlen(type)); m.ms = ms;
    lha_send(fd, &m, sizeof m);
    if (lha_rc(fd) != 0) { fprintf(stderr, "hbload: %s refused\n", type); exit(3); }
}

static int connect_to(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
    int size = 64 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    return fd;
}

static void register_client(int fd, int i, unsigned interval, unsigned warn) {
    char name[32], inst[32];
    snprintf(name, sizeof name, "load");
    snprintf(inst, sizeof inst, "%d", i);
    if (!linuxha) {
        uint8_t payload[128], frame[160];
        size_t n = put_str(payload, name);
        n += put_str(payload + n, inst);
        uint32_t iv = htonl(interval), wv = htonl(warn);
        memcpy(payload + n, &iv, 4); memcpy(payload + n + 4, &wv, 4); n += 8;
        write_all(fd, frame, apphb_frame(frame, 0x01, 0, 1, payload, n));
        apphb_expect(fd, 0x81);
    } else {
        struct { char t[8]; char app[256]; char inst[256]; char dir[256]; pid_t pid; uid_t uid; gid_t gid; } m;
        memset(&m, 0, sizeof m);
        strcpy(m.t, "reg"); strcpy(m.app, name); strcpy(m.inst, inst); strcpy(m.dir, "/");
        m.pid = getpid(); m.uid = getuid(); m.gid = getgid();
        lha_send(fd, &m, sizeof m);
        if (lha_rc(fd) != 0) { fprintf(stderr, "hbload: registration %d refused\n", i); exit(3); }
        lha_msms(fd, "setint", interval);
        if (warn) lha_msms(fd, "setwarn", warn);
    }
}

static void send_fd(int channel, int fd, int index) {
    struct iovec iov = { &index, sizeof index };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } control;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    if (sendmsg(channel, &msg, 0) != (ssize_t)sizeof index) die("sendmsg");
}

static int receive_fd(int channel, int *index) {
    struct iovec iov = { index, sizeof *index };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } control;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf };
    if (recvmsg(channel, &msg, 0) != (ssize_t)sizeof *index) die("recvmsg (a client failed to register within 60 s)");
    int fd; memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof fd);
    return fd;
}

/* Forks a client process that connects and registers under its own pid, passes its index and socket back over
 * the shared channel, and sleeps. Up to `window` registrations are in flight at once. */
static void spawn_clients(const char *path, int clients, unsigned interval, unsigned warn, int *fds, pid_t *children, int window) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair) < 0) die("socketpair");
    /* A client that dies before handing over its socket must end the run, not hang it. */
    struct timeval patience = { 60, 0 };
    setsockopt(pair[0], SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
    int started = 0, received = 0;
    while (received < clients) {
        while (started < clients && started - received < window) {
            pid_t pid = fork();
            if (pid < 0) die("fork");
            if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                /* Keep only stdio and the channel: inheriting every earlier client's socket would make each fork
                 * slower than the last and hold N^2/2 descriptors across the children. */
                if (dup2(pair[1], 3) < 0) die("dup2");
                close_range(4, ~0U, 0);
                int fd = connect_to(path);
                register_client(fd, started, interval, warn);
                send_fd(3, fd, started);
                for (;;) pause();
            }
            children[started++] = pid;
        }
        int index;
        int fd = receive_fd(pair[0], &index);
        fds[index] = fd;
        received++;
    }
    close(pair[0]);
    close(pair[1]);
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: hbload apphb|linuxha SOCKET CLIENTS INTERVAL_MS WARN_MS rate|max|stall ARG SECONDS\n");
        return 2;
    }
    linuxha = strcmp(argv[1], "linuxha") == 0;
    const char *path = argv[2];
    int clients = atoi(argv[3]);
    unsigned interval = (unsigned)atoi(argv[4]), warn = (unsigned)atoi(argv[5]);
    const char *mode = argv[6];
    double rate = atof(argv[7]), seconds = atof(argv[8]);

    int *fds = calloc((size_t)clients, sizeof *fds);
    pid_t *children = calloc((size_t)clients, sizeof *children);
    int64_t t0 = now_ns();
    signal(SIGCHLD, SIG_IGN);
    spawn_clients(path, clients, interval, warn, fds, children, 64);
    printf("registered=%d register_ms=%.1f\n", clients, (now_ns() - t0) / 1e6);
    fflush(stdout);

    uint8_t beat[16];
    size_t beat_len;
    if (!linuxha) beat_len = apphb_frame(beat, 0x02, 0, 0, NULL, 0);
    else { struct lha_head h = { 8, 0xabcd }; memset(beat, 0, 16); memcpy(beat, &h, 8); strcpy((char *)beat + 8, "hb"); beat_len = 16; }
    for (int i = 0; i < clients; i++) fcntl(fds[i], F_SETFL, O_NONBLOCK);

    long long sent = 0, blocked = 0;
    int64_t start = now_ns(), end = start + (int64_t)(seconds * 1e9);
    int next = 0;
    if (strcmp(mode, "stall") == 0) {
        /* ARG is the spacing between two clients' beats in microseconds, so their deadlines do not coincide. */
        for (int i = 0; i < clients; i++) {
            write_all(fds[i], beat, beat_len);
            printf("beat %d %lld\n", i, (long long)now_ns());
            sent++;
            struct timespec gap = { 0, (long)(rate * 1000) };
            if (rate > 0) nanosleep(&gap, NULL);
        }
        fflush(stdout);
        struct timespec ts = { (time_t)seconds, (long)((seconds - (long)seconds) * 1e9) };
        nanosleep(&ts, NULL);
    } else {
        int max = strcmp(mode, "max") == 0;
        for (;;) {
            int64_t now = now_ns();
            if (now >= end) break;
            long long due = max ? sent + clients : (long long)((now - start) / 1e9 * rate);
            while (sent < due) {
                ssize_t n = send(fds[next], beat, beat_len, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n == (ssize_t)beat_len) sent++;
                else { blocked++; if (max) break; due--; }  /* not written: not a beat, and not owed again */
                if (++next == clients) next = 0;
            }
            if (!max) { struct timespec ts = { 0, 200000 }; nanosleep(&ts, NULL); }
        }
    }
    int64_t load_end = now_ns();

    /* Drain barrier: every connection answers a request only after every beat sent before it. */
    for (int i = 0; i < clients; i++) fcntl(fds[i], F_SETFL, 0);
    for (int i = 0; i < clients; i++) {
        if (!linuxha) { uint8_t f[12]; write_all(fds[i], f, apphb_frame(f, 0x02, 0x0001, 2, NULL, 0)); }
        else { struct { char t[8]; unsigned long ms; } m; memset(&m, 0, sizeof m); strcpy(m.t, "setint"); m.ms = interval; lha_send(fds[i], &m, sizeof m); }
    }
    for (int i = 0; i < clients; i++) {
        if (!linuxha) apphb_expect(fds[i], 0x80); else lha_rc(fds[i]);
    }
    int64_t drained = now_ns();
    /* The barrier's own cost (N round trips) is not processing time: time a second one with nothing queued. */
    for (int i = 0; i < clients; i++) {
        if (!linuxha) { uint8_t f[12]; write_all(fds[i], f, apphb_frame(f, 0x02, 0x0001, 2, NULL, 0)); }
        else { struct { char t[8]; unsigned long ms; } m; memset(&m, 0, sizeof m); strcpy(m.t, "setint"); m.ms = interval; lha_send(fds[i], &m, sizeof m); }
    }
    for (int i = 0; i < clients; i++) {
        if (!linuxha) apphb_expect(fds[i], 0x80); else lha_rc(fds[i]);
    }
    int64_t barrier = now_ns() - drained;
    printf("sent=%lld blocked=%lld load_s=%.3f processed_s=%.3f barrier_s=%.3f\n", sent, blocked, (load_end - start) / 1e9,
        (drained - start - barrier) / 1e9, barrier / 1e9);
    fflush(stdout);
    for (int i = 0; i < clients; i++) {
        if (!linuxha) { uint8_t f[12]; write_all(fds[i], f, apphb_frame(f, 0x05, 0, 3, NULL, 0)); apphb_expect(fds[i], 0x80); }
        /* Linux-HA 3.0.6's apphbd removes an unregistering client twice and then crashes (GLib "Source ID was not
         * found", then a reset connection): for it, closing is the only clean way out. */
        close(fds[i]);
    }
    /* The children still hold their copies of the sockets; ending them closes the connections. */
    for (int i = 0; i < clients; i++) kill(children[i], SIGKILL);
    return 0;
}
