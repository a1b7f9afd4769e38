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
