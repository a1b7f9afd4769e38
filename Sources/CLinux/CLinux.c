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

#include <net/if.h>
#include <netinet/ip.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

int lvs_raw_ip_socket(int family, int protocol, const char *ifname) {
    int fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd < 0) return -errno;
    int on = 1, off = 0, hops = 255, tclass = 0xC0;
    int ok = 0;
    if (family == AF_INET) {
        ok |= setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &on, sizeof on);
        ok |= setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &off, sizeof off);
    } else {
        ok |= setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &on, sizeof on);
        ok |= setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);
        ok |= setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops);
        ok |= setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &off, sizeof off);
        ok |= setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tclass, sizeof tclass);
    }
    if (ok == 0 && ifname && *ifname) ok |= setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname));
    if (ok != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int lvs_multicast_membership(int fd, int family, const uint8_t *group, int ifindex, int join) {
    if (family == AF_INET) {
        struct ip_mreqn m;
        memset(&m, 0, sizeof m);
        memcpy(&m.imr_multiaddr, group, 4);
        m.imr_ifindex = ifindex;
        if (join == 2) return setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof m) == 0 ? 0 : errno;
        if (setsockopt(fd, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &m, sizeof m) != 0) return errno;
        if (join && setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof m) != 0) return errno;
        return 0;
    }
    struct ipv6_mreq m;
    memset(&m, 0, sizeof m);
    memcpy(&m.ipv6mr_multiaddr, group, 16);
    m.ipv6mr_interface = (unsigned)ifindex;
    if (join == 2) return setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex) == 0 ? 0 : errno;
    if (setsockopt(fd, IPPROTO_IPV6, join ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP, &m, sizeof m) != 0) return errno;
    if (join && setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex) != 0) return errno;
    return 0;
}

int lvs_raw_ip_receive(int fd, int family, uint8_t *buffer, int length, uint8_t *source, uint8_t *destination,
                       int *ttl, int *next_protocol, int *header_length) {
    *header_length = 0;
    memset(source, 0, 16);
    memset(destination, 0, 16);
    *ttl = -1;
    *next_protocol = -1;
    if (family == AF_INET) {
        ssize_t n = recv(fd, buffer, (size_t)length, 0);
        if (n < 0) return -errno;
        if (n < 20 || (buffer[0] >> 4) != 4) return -EBADMSG;
        int header = (buffer[0] & 0x0F) * 4;
        int total = (buffer[2] << 8) | buffer[3];
        if (header < 20 || header > n || total < header || total > n) return -EBADMSG;
        *ttl = buffer[8];
        *next_protocol = buffer[9];
        memcpy(source, buffer + 12, 4);
        memcpy(destination, buffer + 16, 4);
        *header_length = header;
        return total;
    }
    struct sockaddr_in6 from;
    char control[256];
    struct iovec io = { .iov_base = buffer, .iov_len = (size_t)length };
    struct msghdr m = { .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &io, .msg_iovlen = 1,
                        .msg_control = control, .msg_controllen = sizeof control };
    ssize_t n = recvmsg(fd, &m, 0);
    if (n < 0) return -errno;
    memcpy(source, &from.sin6_addr, 16);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != IPPROTO_IPV6) continue;
        if (c->cmsg_type == IPV6_HOPLIMIT) memcpy(ttl, CMSG_DATA(c), sizeof(int));
        if (c->cmsg_type == IPV6_PKTINFO) memcpy(destination, &((struct in6_pktinfo *)CMSG_DATA(c))->ipi6_addr, 16);
    }
    *next_protocol = 112;
    return (int)n;
}

int lvs_raw_ip4_send(int fd, const uint8_t *packet, int length, const uint8_t *destination, int dont_route) {
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    memcpy(&to.sin_addr, destination, 4);
    ssize_t n = sendto(fd, packet, (size_t)length, dont_route ? MSG_DONTROUTE : 0, (struct sockaddr *)&to, sizeof to);
    return n == length ? 0 : (n < 0 ? errno : EMSGSIZE);
}

int lvs_raw_ip6_send(int fd, const uint8_t *payload, int length, const uint8_t *source, const uint8_t *destination,
                     int ifindex, int hops) {
    struct sockaddr_in6 to;
    memset(&to, 0, sizeof to);
    to.sin6_family = AF_INET6;
    memcpy(&to.sin6_addr, destination, 16);
    if (destination[0] == 0xFF || (destination[0] == 0xFE && (destination[1] & 0xC0) == 0x80)) to.sin6_scope_id = (uint32_t)ifindex;
    char control[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(int))];
    memset(control, 0, sizeof control);
    struct iovec io = { .iov_base = (void *)payload, .iov_len = (size_t)length };
    struct msghdr m = { .msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &io, .msg_iovlen = 1,
                        .msg_control = control, .msg_controllen = sizeof control };
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
    struct in6_pktinfo info;
    memset(&info, 0, sizeof info);
    memcpy(&info.ipi6_addr, source, 16);
    info.ipi6_ifindex = (unsigned)ifindex;
    memcpy(CMSG_DATA(c), &info, sizeof info);
    c = CMSG_NXTHDR(&m, c);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_HOPLIMIT;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &hops, sizeof hops);
    ssize_t n = sendmsg(fd, &m, 0);
    return n == length ? 0 : (n < 0 ? errno : EMSGSIZE);
}

int lvs_netlink_monitor(int addresses) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return -errno;
    struct sockaddr_nl local;
    memset(&local, 0, sizeof local);
    local.nl_family = AF_NETLINK;
    local.nl_groups = RTMGRP_LINK | (addresses ? (RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR) : 0);
    if (bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int lvs_sync_socket(int family, const uint8_t *group, int port, int ifindex, const char *ifname, const uint8_t *source,
                    int ttl, int sender, int buffer) {
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd < 0) return -errno;
    int ok = 0, on = 1, off = 0;
    struct sockaddr_storage address;
    socklen_t address_length;
    memset(&address, 0, sizeof address);
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&address;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        memcpy(&a->sin_addr, group, 4);
        address_length = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&address;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        memcpy(&a->sin6_addr, group, 16);
        a->sin6_scope_id = (uint32_t)ifindex;
        address_length = sizeof *a;
    }
    // As root past net.core.[rw]mem_max (the kernel sizes its own sync sockets directly).
    if (buffer > 0 && setsockopt(fd, SOL_SOCKET, sender ? SO_SNDBUFFORCE : SO_RCVBUFFORCE, &buffer, sizeof buffer) != 0)
        ok |= setsockopt(fd, SOL_SOCKET, sender ? SO_SNDBUF : SO_RCVBUF, &buffer, sizeof buffer);
    if (sender) {
        int pmtu = family == AF_INET ? IP_PMTUDISC_DONT : IPV6_PMTUDISC_DONT;
        if (family == AF_INET) {
            struct ip_mreqn m;
            memset(&m, 0, sizeof m);
            m.imr_ifindex = ifindex;
            ok |= setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof m);
            ok |= setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &off, sizeof off);
            ok |= setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl);
            ok |= setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
        } else {
            ok |= setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex);
            ok |= setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &off, sizeof off);
            ok |= setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &ttl, sizeof ttl);
            ok |= setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &pmtu, sizeof pmtu);
        }
        if (ok == 0 && source) {
            struct sockaddr_storage local;
            memset(&local, 0, sizeof local);
            if (family == AF_INET) {
                struct sockaddr_in *a = (struct sockaddr_in *)&local;
                a->sin_family = AF_INET;
                memcpy(&a->sin_addr, source, 4);
            } else {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)&local;
                a->sin6_family = AF_INET6;
                memcpy(&a->sin6_addr, source, 16);
                a->sin6_scope_id = (uint32_t)ifindex;
            }
            ok |= bind(fd, (struct sockaddr *)&local, address_length);
        }
        if (ok == 0) ok |= connect(fd, (struct sockaddr *)&address, address_length);
    } else {
        ok |= setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        if (ok == 0 && ifname && *ifname) ok |= setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname));
        if (ok == 0) ok |= bind(fd, (struct sockaddr *)&address, address_length);
        if (ok == 0) ok |= lvs_multicast_membership(fd, family, group, ifindex, 1) == 0 ? 0 : -1;
    }
    if (ok != 0) {
        int e = errno;
        close(fd);
        return -(e ? e : EINVAL);
    }
    return fd;
}

// MARK: eBPF (the packet engine's in-kernel path for established flows)

#include <linux/bpf.h>
#include <sys/mman.h>
#include <sys/syscall.h>

static long lvs_bpf(int cmd, union bpf_attr *attr) { return syscall(SYS_bpf, cmd, attr, sizeof *attr); }

int lvs_bpf_map_create(int type, int key_size, int value_size, int max_entries, int flags) {
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.map_type = (uint32_t)type;
    a.key_size = (uint32_t)key_size;
    a.value_size = (uint32_t)value_size;
    a.max_entries = (uint32_t)max_entries;
    a.map_flags = (uint32_t)flags;
    int fd = (int)lvs_bpf(BPF_MAP_CREATE, &a);
    return fd >= 0 ? fd : -errno;
}

void *lvs_bpf_map_mmap(int fd, uint64_t size) {
    void *base = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return base == MAP_FAILED ? NULL : base;
}

void lvs_bpf_map_munmap(void *base, uint64_t size) {
    if (base) munmap(base, (size_t)size);
}

/// One element operation (BPF_MAP_*_ELEM): 0 or errno.
static int lvs_bpf_map_element(int cmd, int fd, const void *key, const void *value, int flags) {
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.map_fd = (uint32_t)fd;
    a.key = (uint64_t)(uintptr_t)key;
    a.value = (uint64_t)(uintptr_t)value;
    a.flags = (uint64_t)flags;
    return lvs_bpf(cmd, &a) == 0 ? 0 : errno;
}

int lvs_bpf_map_update(int fd, const void *key, const void *value, int flags) {
    return lvs_bpf_map_element(BPF_MAP_UPDATE_ELEM, fd, key, value, flags);
}

int lvs_bpf_map_lookup(int fd, const void *key, void *value) { return lvs_bpf_map_element(BPF_MAP_LOOKUP_ELEM, fd, key, value, 0); }

int lvs_bpf_map_delete(int fd, const void *key) { return lvs_bpf_map_element(BPF_MAP_DELETE_ELEM, fd, key, NULL, 0); }

int lvs_bpf_map_lookup_and_delete(int fd, const void *key, void *value) {
    return lvs_bpf_map_element(BPF_MAP_LOOKUP_AND_DELETE_ELEM, fd, key, value, 0);
}

int lvs_bpf_prog_load(int type, int expected_attach_type, const uint64_t *insns, int count, char *log, int log_size) {
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.prog_type = (uint32_t)type;
    a.expected_attach_type = (uint32_t)expected_attach_type;
    a.insns = (uint64_t)(uintptr_t)insns;
    a.insn_cnt = (uint32_t)count;
    a.license = (uint64_t)(uintptr_t)"GPL";
    if (log != NULL && log_size > 0) {
        log[0] = 0;
        a.log_buf = (uint64_t)(uintptr_t)log;
        a.log_size = (uint32_t)log_size;
        a.log_level = 1;
    }
    int fd = (int)lvs_bpf(BPF_PROG_LOAD, &a);
    if (fd < 0 && errno == ENOSPC && log != NULL) {
        // The log did not fit; load again without it for the error alone.
        a.log_buf = 0;
        a.log_size = 0;
        a.log_level = 0;
        fd = (int)lvs_bpf(BPF_PROG_LOAD, &a);
    }
    return fd >= 0 ? fd : -errno;
}

int lvs_bpf_link_create(int prog_fd, int ifindex, int attach_type) {
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.link_create.prog_fd = (uint32_t)prog_fd;
    a.link_create.target_ifindex = (uint32_t)ifindex;
    a.link_create.attach_type = (uint32_t)attach_type;
    int fd = (int)lvs_bpf(BPF_LINK_CREATE, &a);
    return fd >= 0 ? fd : -errno;
}

int lvs_attach_bpf(int fd, int prog_fd) {
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &prog_fd, sizeof prog_fd) == 0 ? 0 : errno;
}

int lvs_bpf_prog_test_run(int prog_fd, const void *data, int length, void *out, int *out_length, uint32_t *result) {
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.test.prog_fd = (uint32_t)prog_fd;
    a.test.data_in = (uint64_t)(uintptr_t)data;
    a.test.data_size_in = (uint32_t)length;
    a.test.data_out = (uint64_t)(uintptr_t)out;
    a.test.data_size_out = (uint32_t)*out_length;
    a.test.repeat = 1;
    if (lvs_bpf(BPF_PROG_TEST_RUN, &a) != 0) return errno;
    *out_length = (int)a.test.data_size_out;
    *result = a.test.retval;
    return 0;
}

#include <sys/mman.h>

int lvs_ringbuf_map(int fd, uint64_t size, lvs_ringbuf *ring) {
    long page = sysconf(_SC_PAGESIZE);
    void *consumer = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (consumer == MAP_FAILED) return errno;
    // The producer's page, then the data twice (a record that wraps reads on in the second copy).
    void *producer = mmap(NULL, (size_t)page + 2 * size, PROT_READ, MAP_SHARED, fd, page);
    if (producer == MAP_FAILED) {
        int code = errno;
        munmap(consumer, (size_t)page);
        return code;
    }
    ring->consumer = consumer;
    ring->producer = producer;
    ring->data = (const uint8_t *)producer + page;
    ring->size = size;
    return 0;
}

void lvs_ringbuf_unmap(lvs_ringbuf *ring) {
    long page = sysconf(_SC_PAGESIZE);
    if (ring->consumer) munmap(ring->consumer, (size_t)page);
    if (ring->producer) munmap(ring->producer, (size_t)page + 2 * ring->size);
    ring->consumer = ring->producer = NULL;
}

int lvs_ringbuf_read(lvs_ringbuf *ring, void *out, int count, int record_size) {
    const uint32_t busy = 1u << 31, discarded = 1u << 30;
    unsigned long *consumer = (unsigned long *)ring->consumer;
    unsigned long position = __atomic_load_n(consumer, __ATOMIC_RELAXED);
    unsigned long produced = __atomic_load_n((unsigned long *)ring->producer, __ATOMIC_ACQUIRE);
    int copied = 0;
    while (copied < count && position < produced) {
        const uint8_t *header = ring->data + (position & (ring->size - 1));
        uint32_t length = __atomic_load_n((const uint32_t *)header, __ATOMIC_ACQUIRE);
        if (length & busy) break;  // reserved, not committed yet: the records after it wait
        uint32_t bytes = length & ~(busy | discarded);
        if (!(length & discarded) && (int)bytes == record_size) {
            memcpy((uint8_t *)out + (size_t)copied * (size_t)record_size, header + 8, bytes);
            copied++;
        }
        position += (8 + bytes + 7) & ~7ul;
        __atomic_store_n(consumer, position, __ATOMIC_RELEASE);
    }
    return copied;
}
