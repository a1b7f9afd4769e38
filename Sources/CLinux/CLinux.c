// The calls that need _GNU_SOURCE, which the header must not define (see CLinux.h).
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include "CLinux.h"

int lvs_accept(int fd, struct sockaddr_in6 *peer) {
    socklen_t length = sizeof *peer;
    return accept4(fd, (struct sockaddr *)peer, &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

void lvs_name_thread(const char *name) {
    char truncated[16];
    strncpy(truncated, name, sizeof truncated - 1);
    truncated[sizeof truncated - 1] = 0;
    pthread_setname_np(pthread_self(), truncated);
}

int lvs_schedule_batch(void) {
    struct sched_param param = { .sched_priority = 0 };
    return sched_setscheduler(0, SCHED_BATCH, &param) == 0 ? 0 : errno;
}

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>

pid_t lvs_spawn_as(const char *path, char *const argv[], char *const envp[], uid_t uid, gid_t gid, int *error) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        *error = errno;
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        *error = errno;
        close(report[0]);
        close(report[1]);
        return -1;
    }
    if (pid == 0) {
        // Only async-signal-safe calls from here to exec: the parent has other threads.
        int code = 0;
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        for (int fd = 0; fd <= 2 && code == 0; fd++) {
            int null = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
            if (null < 0 || (null != fd && dup2(null, fd) < 0)) code = errno;
            if (null > 2) close(null);
        }
        if (code == 0 && setpgid(0, 0) != 0) code = errno;
        if (code == 0 && gid != getgid() && setgid(gid) != 0) code = errno;
        if (code == 0 && uid != getuid() && setgroups(1, &gid) != 0) code = errno;
        if (code == 0 && uid != getuid() && setuid(uid) != 0) code = errno;
        if (code == 0) {
            execve(path, argv, envp);
            code = errno;
        }
        ssize_t n = write(report[1], &code, sizeof code);
        (void)n;
        _exit(127);
    }
    close(report[1]);
    int code = 0;
    ssize_t n;
    do { n = read(report[0], &code, sizeof code); } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == sizeof code) {
        // The child could not become the script: it has exited; collect it.
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        *error = code;
        return -1;
    }
    return pid;
}
