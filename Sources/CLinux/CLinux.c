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

#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/uio.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

int lvs_packet_socket(int ifindex, int receive) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, receive ? htons(ETH_P_ALL) : 0);
    if (fd < 0) return -errno;
    int one = 1;
    // Each frame with a virtio_net_hdr: a GRO/TSO super-packet is forwarded whole (the kernel or
    // the NIC segments it on the way out) and a partial checksum is finished there too.
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (!receive) {
        // Straight to the driver: the frames were queued once already, on the way in.
        setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
        return fd;
    }
    // The checksum status of each frame (a local sender's may be partial), and not our own sends.
    if (setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct sockaddr_ll address = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = ifindex };
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    int size = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    return fd;
}

enum { LVS_BATCH_MAX = 64 };

int lvs_packet_receive(int fd, uint8_t *base, int stride, int headroom, int count, int32_t *lengths, uint32_t *flags) {
    if (count > LVS_BATCH_MAX) count = LVS_BATCH_MAX;
    struct mmsghdr messages[LVS_BATCH_MAX];
    struct iovec vectors[LVS_BATCH_MAX];
    union { struct cmsghdr align; char bytes[CMSG_SPACE(sizeof(struct tpacket_auxdata))]; } control[LVS_BATCH_MAX];
    struct sockaddr_ll from[LVS_BATCH_MAX];
    for (int i = 0; i < count; i++) {
        // The 10-byte virtio_net_hdr goes just before the frame.
        vectors[i].iov_base = base + (size_t)i * stride + headroom - LVS_VNET_HEADER;
        vectors[i].iov_len = (size_t)(stride - headroom + LVS_VNET_HEADER);
        memset(&messages[i].msg_hdr, 0, sizeof messages[i].msg_hdr);
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_control = &control[i];
        messages[i].msg_hdr.msg_controllen = sizeof control[i];
        messages[i].msg_hdr.msg_name = &from[i];
        messages[i].msg_hdr.msg_namelen = sizeof from[i];
    }
    int n = recvmmsg(fd, messages, (unsigned)count, MSG_DONTWAIT, NULL);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        uint32_t f = 0;
        if (messages[i].msg_hdr.msg_flags & MSG_TRUNC) f |= 1u;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&messages[i].msg_hdr); c; c = CMSG_NXTHDR(&messages[i].msg_hdr, c)) {
            if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA) {
                struct tpacket_auxdata aux;
                memcpy(&aux, CMSG_DATA(c), sizeof aux);
                if (aux.tp_status & TP_STATUS_CSUMNOTREADY) f |= 2u;
                // A VLAN tag the NIC took off is not put back: the frame is forwarded untagged.
            }
        }
        if (from[i].sll_pkttype == PACKET_OUTGOING) f |= 4u;
        if (from[i].sll_pkttype == PACKET_BROADCAST || from[i].sll_pkttype == PACKET_MULTICAST) f |= 8u;
        if (from[i].sll_pkttype == PACKET_OTHERHOST) f |= 16u;
        lengths[i] = (int32_t)messages[i].msg_len - LVS_VNET_HEADER;
        flags[i] = f;
    }
    return n;
}

int lvs_packet_send(int fd, uint8_t *const *frames, const int32_t *lengths, const int32_t *ifindexes, int count, int *failures) {
    if (count > LVS_BATCH_MAX) count = LVS_BATCH_MAX;
    struct mmsghdr messages[LVS_BATCH_MAX];
    struct iovec vectors[LVS_BATCH_MAX];
    struct sockaddr_ll to[LVS_BATCH_MAX];
    for (int i = 0; i < count; i++) {
        vectors[i].iov_base = frames[i];
        vectors[i].iov_len = (size_t)lengths[i];
        memset(&to[i], 0, sizeof to[i]);
        to[i].sll_family = AF_PACKET;
        to[i].sll_ifindex = ifindexes[i];
        to[i].sll_halen = ETH_ALEN;
        memcpy(to[i].sll_addr, frames[i] + LVS_VNET_HEADER, ETH_ALEN);
        memset(&messages[i].msg_hdr, 0, sizeof messages[i].msg_hdr);
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_name = &to[i];
        messages[i].msg_hdr.msg_namelen = sizeof to[i];
    }
    int sent = 0;
    *failures = 0;
    while (sent < count) {
        int n = sendmmsg(fd, messages + sent, (unsigned)(count - sent), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            // The frame that failed is skipped (and counted); the rest go.
            *failures += 1;
            sent += 1;
            continue;
        }
        sent += n;
    }
    return sent;
}

#include <sys/resource.h>
#include <sys/syscall.h>

int lvs_raise_thread_priority(int nice_value) {
    pid_t tid = (pid_t)syscall(SYS_gettid);
    return setpriority(PRIO_PROCESS, (id_t)tid, nice_value) == 0 ? 0 : errno;
}

int lvs_interface_index(const char *name) { return (int)if_nametoindex(name); }

#include <linux/filter.h>

int lvs_attach_filter(int fd, const uint64_t *program, int count) {
    struct sock_fprog fprog = { .len = (unsigned short)count, .filter = (struct sock_filter *)program };
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog) == 0 ? 0 : errno;
}

int lvs_packet_fanout(int fd, int group) {
    int value = (group & 0xFFFF) | (PACKET_FANOUT_HASH << 16);
    return setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &value, sizeof value) == 0 ? 0 : errno;
}
