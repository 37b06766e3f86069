/* The pair benchmarks' service: answers every TCP connection on port 8080 with its node's name (argv[1]) and a
 * newline, as the suite's answer.py does. Compiled so that a failover's time holds apphbd's work (detection, fence,
 * address, spawning the group) and not a Python interpreter's start (~35 ms here), which would be the service's. */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: answer NAME\n");
        return 2;
    }
    char reply[256];
    int length = snprintf(reply, sizeof reply, "%s\n", argv[1]);
    if (length < 0 || (size_t)length >= sizeof reply) return 2;
    int server = socket(AF_INET, SOCK_STREAM, 0);
    int on = 1;
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(8080), .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (server < 0 || bind(server, (struct sockaddr *)&address, sizeof address) != 0 || listen(server, 16) != 0) {
        perror("answer: cannot listen on port 8080");
        return 1;
    }
    for (;;) {
        int connection = accept(server, NULL, NULL);
        if (connection < 0) continue;
        /* Best effort, as answer.py's sendall on a connection the client may already have given up on. */
        ssize_t written = write(connection, reply, (size_t)length);
        (void)written;
        close(connection);
    }
}
