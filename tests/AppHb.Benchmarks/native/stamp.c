/* The supervised child of the respawn benchmark: the same binary for every supervisor.
 * At start it sends "<service> <pid> <CLOCK_MONOTONIC ns>" to the datagram socket named by $STAMP_SOCKET, where
 * <service> is the name of its working directory (each supervisor starts it in the service's directory) or
 * $STAMP_NAME, then
 * waits for a signal. The benchmark kills it and measures until the replacement's datagram. */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    const char *path = getenv("STAMP_SOCKET");
    char cwd[PATH_MAX];
    if (path == NULL || getcwd(cwd, sizeof cwd) == NULL) return 111;
    /* cl_respawn daemonizes into "/": its instances are named by $STAMP_NAME instead. */
    const char *name = getenv("STAMP_NAME");
    if (name == NULL) {
        name = strrchr(cwd, '/');
        name = name ? name + 1 : cwd;
    }
    char message[512];
    int length = snprintf(message, sizeof message, "%s %d %lld", name, (int)getpid(),
                          (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    strncpy(address.sun_path, path, sizeof address.sun_path - 1);
    sendto(fd, message, (size_t)length, 0, (struct sockaddr *)&address, sizeof address);
    close(fd);
    for (;;) pause();
}
