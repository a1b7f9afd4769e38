#ifndef LVS_CLINUX_H
#define LVS_CLINUX_H
/* The Linux calls Swift's Glibc module leaves out (epoll, eventfd, accept4), as thin wrappers.
   struct epoll_event is packed on x86-64, so its fields are read here rather than from Swift.
   No _GNU_SOURCE here (the headers would then differ from the Glibc module's): the calls that need
   it are defined in CLinux.c. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

enum {
    LVS_EPOLLIN = EPOLLIN,
    LVS_EPOLLOUT = EPOLLOUT,
    LVS_EPOLLERR = EPOLLERR,
    LVS_EPOLLHUP = EPOLLHUP,
    LVS_EPOLLRDHUP = EPOLLRDHUP,
    LVS_EPOLLET = EPOLLET,
    LVS_EPOLLEXCLUSIVE = EPOLLEXCLUSIVE,
};

/// A 32-bit counter several threads read and write (relaxed: a hint, not a lock).
static inline int32_t lvs_atomic_load32(const int32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void lvs_atomic_store32(int32_t *p, int32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline void lvs_atomic_add32(int32_t *p, int32_t v) { __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
/// A 32-bit word shared with another thread or a BPF program, where what is written before it
/// must be seen before it (acquire and release).
static inline uint32_t lvs_atomic_acquire32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void lvs_atomic_release32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
/// Stores `desired` where `*p` is `expected`; whether it did.
static inline int lvs_atomic_cas32(uint32_t *p, uint32_t expected, uint32_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static inline int lvs_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

static inline int lvs_epoll_add(int epfd, int fd, uint32_t events, uint64_t data) {
    struct epoll_event e;
    e.events = events;
    e.data.u64 = data;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e);
}

static inline int lvs_epoll_delete(int epfd, int fd) { return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL); }

/// Room for `count` events, for lvs_epoll_wait; free() it.
static inline struct epoll_event *lvs_epoll_events(int count) {
    return (struct epoll_event *)calloc((size_t)count, sizeof(struct epoll_event));
}

static inline int lvs_epoll_wait(int epfd, struct epoll_event *events, int count, int timeout_ms) {
    return epoll_wait(epfd, events, count, timeout_ms);
}

static inline uint32_t lvs_epoll_event_flags(const struct epoll_event *events, int i) { return events[i].events; }
static inline uint64_t lvs_epoll_event_data(const struct epoll_event *events, int i) { return events[i].data.u64; }

static inline int lvs_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

static inline void lvs_eventfd_signal(int fd) {
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);
    (void)n;
}

static inline void lvs_eventfd_drain(int fd) {
    uint64_t value;
    ssize_t n = read(fd, &value, sizeof value);
    (void)n;
}

/// A non-blocking TCP socket of `family` (AF_INET or AF_INET6).
static inline int lvs_tcp_socket(int family) { return socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }

/// Accepts one connection, non-blocking; the peer's address goes to `peer` (room for IPv4 and IPv6).
int lvs_accept(int fd, struct sockaddr_in6 *peer);

/// Names the calling thread (at most 15 characters are kept).
void lvs_name_thread(const char *name);

/// Puts the calling thread under SCHED_BATCH (no preemption on wake-up); 0 or errno.
int lvs_schedule_batch(void);

static inline int lvs_set_int_option(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof value);
}

/// Makes close() send a reset instead of a FIN (SO_LINGER with a zero timeout).
static inline void lvs_abort_on_close(int fd) {
    struct linger option = { .l_onoff = 1, .l_linger = 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, sizeof option);
}

static inline int lvs_socket_error(int fd) {
    int value = 0;
    socklen_t length = sizeof value;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length) != 0) return errno;
    return value;
}

static inline ssize_t lvs_recv(int fd, void *buffer, size_t length) { return recv(fd, buffer, length, 0); }
static inline ssize_t lvs_send(int fd, const void *buffer, size_t length) { return send(fd, buffer, length, MSG_NOSIGNAL); }

/// Raises the soft open-files limit to the hard one (each relayed connection holds two descriptors).
static inline void lvs_raise_file_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

/// Starts `path` (no PATH search) with standard input, output and error on /dev/null, in a process
/// group of its own, as `uid`:`gid` (with `gid` its only supplementary group) when they differ from
/// ours. The child's pid, or -1 with `*error` set to why the program could not be started.
pid_t lvs_spawn_as(const char *path, char *const argv[], char *const envp[], uid_t uid, gid_t gid, int *error);

/// The virtio_net_hdr each frame of a packet socket carries in front (PACKET_VNET_HDR).
enum { LVS_VNET_HEADER = 10 };

/// An AF_PACKET socket: `receive` bound to `ifindex` for every protocol, without the frames this
/// host sends; otherwise one that only sends (to any interface). Both carry a virtio_net_hdr
/// before each frame. The descriptor, or -errno.
int lvs_packet_socket(int ifindex, int receive);

/// Receives up to `count` (at most 64) frames, frame i at `base + i * stride + headroom` (its
/// virtio_net_hdr in the 10 bytes before); fills in their lengths (without the header) and flags (1: truncated, 2: checksum left to the NIC, 4: outgoing, 8: broadcast or
/// multicast, 16: for another host). The number received (0 when none waits), or -errno.
int lvs_packet_receive(int fd, uint8_t *base, int stride, int headroom, int count, int32_t *lengths, uint32_t *flags);

/// Sends `count` (at most 64) frames, each `frames[i]` starting with its virtio_net_hdr (counted in
/// `lengths[i]`), out of interface `ifindexes[i]`; `*failures` is how many
/// the kernel refused (a full queue, an interface gone). Returns `count`.
int lvs_packet_send(int fd, uint8_t *const *frames, const int32_t *lengths, const int32_t *ifindexes, int count, int *failures);

/// Gives the calling thread the nice value (negative: ahead of ordinary work); 0 or errno.
int lvs_raise_thread_priority(int nice_value);

/// Attaches (or replaces) a classic BPF socket filter: `count` instructions, each a struct
/// sock_filter (code, jt, jf, k) in its memory layout; 0 or errno.
int lvs_attach_filter(int fd, const uint64_t *program, int count);

/// Joins the packet socket to fanout group `group` (flows spread by hash over the group's sockets,
/// each flow always to the same one); 0 or errno.
int lvs_packet_fanout(int fd, int group);

/// if_nametoindex (0 when there is no such interface).
int lvs_interface_index(const char *name);

/// A raw socket for IP protocol `protocol` (VRRP: 112) of `family` (AF_INET: IP_HDRINCL, sends
/// carry their own IPv4 header; AF_INET6: hop limit and destination reported on receive,
/// multicast hop limit 255, traffic class 0xC0), bound to interface `ifname` when given,
/// non-blocking, multicast not looped back. The descriptor, or -errno.
int lvs_raw_ip_socket(int family, int protocol, const char *ifname);

/// Joins (`join` 1) or leaves (0) multicast `group` (4 or 16 bytes by family) on interface
/// `ifindex`, and sends multicast out of it; `join` 2 only sends multicast out of it (no
/// membership, so no IGMP/MLD report). 0 or errno.
int lvs_multicast_membership(int fd, int family, const uint8_t *group, int ifindex, int join);

/// Receives one datagram from a raw socket into `buffer`. IPv4: the packet with its header
/// (`*header_length` bytes), read for the source, destination, TTL and protocol; IPv6: the
/// payload only, the hop limit and destination from ancillary data. Addresses are 16 bytes (IPv4
/// in the first 4). The length received, or -errno (-EAGAIN: none waiting, -EBADMSG: a
/// malformed IPv4 header).
int lvs_raw_ip_receive(int fd, int family, uint8_t *buffer, int length, uint8_t *source, uint8_t *destination,
                       int *ttl, int *next_protocol, int *header_length);

/// Sends a whole IPv4 packet (header included) to `destination` (4 bytes); `dont_route` for
/// multicast (MSG_DONTROUTE). 0 or errno.
int lvs_raw_ip4_send(int fd, const uint8_t *packet, int length, const uint8_t *destination, int dont_route);

/// Sends an IPv6 payload from `source` (16 bytes; IPV6_PKTINFO) out of `ifindex` to
/// `destination` with hop limit `hops`. 0 or errno.
int lvs_raw_ip6_send(int fd, const uint8_t *payload, int length, const uint8_t *source, const uint8_t *destination,
                     int ifindex, int hops);

/// A route-netlink socket that hears the kernel's link (and, with `addresses`, address)
/// notifications; non-blocking. The descriptor, or -errno.
int lvs_netlink_monitor(int addresses);

/// A UDP socket for IPVS connection sync on interface `ifindex` (name `ifname`), non-blocking.
/// Sender (`sender` 1): multicast out of the interface, not looped back, TTL/hop limit `ttl`, no
/// path-MTU discovery (messages may be fragmented), bound to `source` (4 or 16 bytes, or NULL) and
/// connected to `group` (4 or 16 bytes by family) port `port`. Receiver (0): address reuse, bound
/// to the device and to group:port, a member of the group on the interface. `buffer` sets SO_SNDBUF
/// or SO_RCVBUF when positive. The descriptor, or -errno.
int lvs_sync_socket(int family, const uint8_t *group, int port, int ifindex, const char *ifname, const uint8_t *source,
                    int ttl, int sender, int buffer);

static inline int lvs_errno(void) { return errno; }

/// eBPF (bpf(2)): a map (returns its fd, or -errno); update/lookup/delete one element (0 or errno).
int lvs_bpf_map_create(int type, int key_size, int value_size, int max_entries, int flags);
/// A BPF_F_MMAPABLE array's values, mapped shared (NULL on failure, errno set).
void *lvs_bpf_map_mmap(int fd, uint64_t size);
void lvs_bpf_map_munmap(void *base, uint64_t size);
int lvs_bpf_map_update(int fd, const void *key, const void *value, int flags);
int lvs_bpf_map_lookup(int fd, const void *key, void *value);
int lvs_bpf_map_delete(int fd, const void *key);
/// Copies an element's value and removes it, in one step (hash maps, kernel 5.14 and later).
int lvs_bpf_map_lookup_and_delete(int fd, const void *key, void *value);
/// Loads a program (its fd, or -errno), the verifier's log in `log` when given.
int lvs_bpf_prog_load(int type, int expected_attach_type, const uint64_t *insns, int count, char *log, int log_size);
/// Attaches a program to an interface (tcx); the link's fd (closing it detaches), or -errno.
int lvs_bpf_link_create(int prog_fd, int ifindex, int attach_type);
/// Puts an eBPF program on a socket as its filter (SO_ATTACH_BPF); 0 or errno.
int lvs_attach_bpf(int fd, int prog_fd);
/// Runs a program once on `data` (BPF_PROG_TEST_RUN): the frame as it left in `out`, its
/// return value in `result`; 0 or errno.
int lvs_bpf_prog_test_run(int prog_fd, const void *data, int length, void *out, int *out_length, uint32_t *result);

/// A BPF ring buffer (BPF_MAP_TYPE_RINGBUF) mapped for reading: its consumer and producer
/// positions and its data area (`size` bytes, a power of two, mapped twice in a row).
typedef struct lvs_ringbuf {
    void *consumer;
    void *producer;
    const uint8_t *data;
    uint64_t size;
} lvs_ringbuf;
/// Maps the ring buffer `fd` of `size` bytes; 0 or errno.
int lvs_ringbuf_map(int fd, uint64_t size, lvs_ringbuf *ring);
void lvs_ringbuf_unmap(lvs_ringbuf *ring);
/// Copies up to `count` committed records of exactly `record_size` bytes into `out` (records of
/// another size, and discarded ones, are skipped) and frees their room; how many were copied.
int lvs_ringbuf_read(lvs_ringbuf *ring, void *out, int count, int record_size);

#endif
