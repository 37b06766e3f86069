/* The respawn benchmark's floor: the least a supervisor can do. For every service directory given on the command
 * line it forks and execs ./run there; then it blocks in waitpid(2) and re-forks a child the moment it is reaped.
 * No configuration, no logging, no policy: what is left is the kernel's fork, exec and wait, and the scheduler's
 * wake-up of a blocked parent, which vary with the machine from day to day. Every other supervisor's figure is read
 * against this one from the same run. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t start(const char *directory) {
    pid_t pid = fork();
    if (pid == 0) {
        if (chdir(directory) != 0) _exit(111);
        execl("./run", "run", (char *)NULL);
        _exit(127);
    }
    return pid;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: floor SERVICE-DIRECTORY...\n");
        return 2;
    }
    pid_t *pids = calloc((size_t)argc, sizeof *pids);
    for (int i = 1; i < argc; i++) pids[i] = start(argv[i]);
    for (;;) {
        pid_t gone = waitpid(-1, NULL, 0);
        if (gone < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        for (int i = 1; i < argc; i++) {
            if (pids[i] == gone) {
                pids[i] = start(argv[i]);
                break;
            }
        }
    }
}
