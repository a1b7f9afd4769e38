import CLinux
import LVSCore
import LVSState
import LinuxNet
import Logging
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// One sync daemon on the wire, as the kernel runs them (ip_vs_sync.c), on a thread of its own.
///
/// A master takes what the table queued for sync (the engines' packets decide that, in
/// `LVSCore`) every 20 ms, packs it into messages of `maxLength` bytes, sends each full message
/// at once and a partly filled one when it is 2 seconds old. A backup reads every message,
/// refuses what the kernel refuses (counted by reason), and applies the entries to the table in
/// one locked batch per read burst.
public final class SyncDaemon: @unchecked Sendable {
    // @unchecked Sendable: the socket, writer and buffers belong to the daemon's thread; the
    // statistics and flags are behind locks.
    public let status: SyncDaemonStatus
    private let state: LoadBalancerState
    private let logger: Logger
    private let socket: MulticastUDPSocket
    private let wake: Int32
    private let stopping = NIOLockedValueBox(false)
    private let finished = NIOLockedValueBox(false)
    private let counters = NIOLockedValueBox(Statistics())
    private let version: UInt8

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// What the daemon did on the wire.
    public struct Statistics: Sendable, Hashable {
        public var messagesSent: UInt64 = 0
        public var entriesSent: UInt64 = 0
        /// Messages the kernel would not take (a full socket buffer): their entries are lost.
        public var sendFailures: UInt64 = 0
        /// Entries version 0 cannot carry (IPv6).
        public var omitted: UInt64 = 0
        public var messagesReceived: UInt64 = 0
        public var entriesReceived: UInt64 = 0
        /// Messages refused from some point on, and single entries skipped, by reason.
        public var refused: [String: UInt64] = [:]
        public var skipped: [String: UInt64] = [:]

        public init() {}
    }

    /// How often a master collects what was queued (the kernel wakes its thread after 20 ms).
    public static let collectInterval: Int64 = 20_000_000
    /// A partly filled message goes out when it is this old (IPVS_SYNC_FLUSH_TIME).
    public static let flushAge: Int64 = 2_000_000_000
    /// The socket buffers (the kernel's sync_sock_size default leaves them to the system; a
    /// backup that applies in bursts needs room for the bursts).
    public static let socketBuffer = 4 << 20

    /// Opens the daemon's socket: a master sends from the interface's primary IPv4 address (for
    /// an IPv4 group) to group:port; a backup listens on group:port on the interface.
    public init(status: SyncDaemonStatus, state: LoadBalancerState, version: UInt8 = 1, logger: Logger) throws {
        self.status = status
        self.state = state
        self.logger = logger
        self.version = version
        do {
            if status.isMaster {
                var source: IPAddress?
                if !status.group.isV6, let index = interfaceIndex(status.interface), let netlink = try? RouteNetlink() {
                    source = (try? netlink.addresses(on: index))?.first { !$0.address.isV6 }?.address
                }
                socket = try MulticastUDPSocket(sendingTo: status.group, port: status.port, interface: status.interface, source: source,
                                                ttl: Int(status.ttl), buffer: Self.socketBuffer)
            } else {
                socket = try MulticastUDPSocket(receivingFrom: status.group, port: status.port, interface: status.interface,
                                                buffer: Self.socketBuffer)
            }
        } catch {
            throw Failure(description: "\(error)")
        }
        wake = lvs_eventfd()
        guard wake >= 0 else { throw Failure(description: "eventfd: \(String(cString: strerror(errno)))") }
    }

    deinit { close(wake) }

    public var statistics: Statistics { counters.withLockedValue { $0 } }

    public func start() {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { raw in
            let daemon = Unmanaged<SyncDaemon>.fromOpaque(raw!).takeRetainedValue()
            daemon.run()
            return nil
        }, context)
        precondition(created == 0, "cannot start the sync thread")
        pthread_detach(thread)
    }

    /// Stops the thread (a master sends what it holds first); returns when it ended (a second at most).
    public func stop() {
        stopping.withLockedValue { $0 = true }
        lvs_eventfd_signal(wake)
        for _ in 0..<200 where !finished.withLockedValue({ $0 }) { usleep(5000) }
    }

    private func run() {
        lvs_name_thread(status.isMaster ? "lvsd-sync-m" : "lvsd-sync-b")
        defer { finished.withLockedValue { $0 = true } }
        if status.isMaster { runMaster() } else { runBackup() }
    }

    // MARK: Master

    private func runMaster() {
        var writer = SyncMessageWriter(version: version, syncID: status.syncID, maxLength: Int(status.maxLength))
        var batch: [SyncedConnection] = []
        batch.reserveCapacity(4096)
        var startedAt: Int64 = 0
        var sent = Statistics()
        func send(_ message: [UInt8]) {
            let entries = UInt64(version == 0 ? message[0] : message[4])
            if socket.send(message) {
                sent.messagesSent &+= 1
                sent.entriesSent &+= entries
            } else {
                sent.sendFailures &+= 1
            }
        }
        while true {
            let done = stopping.withLockedValue { $0 }
            state.withTable { $0.takeSyncQueue(into: &batch) }
            let now = state.now
            for s in batch {
                if writer.isEmpty { startedAt = now }
                if let full = writer.append(s) {
                    send(full)
                    startedAt = now
                }
            }
            if !writer.isEmpty, done || now - startedAt >= Self.flushAge, let m = writer.finish() { send(m) }
            sent.omitted = writer.omitted
            let snapshot = sent
            counters.withLockedValue { $0 = snapshot }
            if done { return }
            var fds = [pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 1, Int32(Self.collectInterval / 1_000_000))
            if fds[0].revents != 0 { lvs_eventfd_drain(wake) }
        }
    }

    // MARK: Backup

    private func runBackup() {
        let capacity = 65536
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 8)
        defer { buffer.deallocate() }
        var entries: [SyncedConnection] = []
        entries.reserveCapacity(4096)
        var local = Statistics()
        let ownID = status.syncID
        while !stopping.withLockedValue({ $0 }) {
            var fds = [pollfd(fd: wake, events: Int16(POLLIN), revents: 0), pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 2, 1000)
            if fds[0].revents != 0 { lvs_eventfd_drain(wake) }
            guard fds[1].revents != 0 else { continue }
            // Read what is waiting (a bounded burst), then apply it under one lock.
            entries.removeAll(keepingCapacity: true)
            for _ in 0..<256 {
                guard let n = socket.receive(into: buffer) else { break }
                local.messagesReceived &+= 1
                let d = SyncMessage.decode(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), ownSyncID: ownID)
                if let why = d.refused { local.refused[why.rawValue, default: 0] &+= 1 }
                for why in d.skipped { local.skipped[why.rawValue, default: 0] &+= 1 }
                local.entriesReceived &+= UInt64(d.entries.count)
                entries += d.entries
            }
            if !entries.isEmpty {
                let now = state.now
                state.withTable { table in
                    for e in entries { table.applySynced(e, now: now) }
                }
            }
            let snapshot = local
            counters.withLockedValue { $0 = snapshot }
        }
    }
}
