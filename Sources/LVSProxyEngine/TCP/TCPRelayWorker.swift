import CLinux
import Glibc
import LVSCore
import LVSState
import LinuxNet
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// What the control plane asks a relay worker to do.
enum RelayCommand: Sendable {
    /// Accept connections for `virtual` on the listening descriptor `fd` (the worker owns it from now
    /// on); `shared` when other workers hold descriptors of the same socket.
    case listen(fd: Int32, key: VirtualService.Key, virtual: Endpoint, shared: Bool)
    case stopListening(VirtualService.Key)
    /// Serve a connection another worker accepted (it had more to serve than this one).
    case adopt(fd: Int32, client: Endpoint, virtual: Endpoint)
    /// Close every listener and connection and end the thread; `done` is completed then.
    case stop(done: EventLoopPromise<Void>)
}

/// One thread relaying TCP connections on its own epoll instance: it accepts on its listeners,
/// schedules each connection with LVSCore, connects to the real server (another one if that fails or
/// times out) and relays both ways.
///
/// The hot loop makes only the system calls a relay cannot do without: each side is registered once,
/// edge-triggered, for input, output and the peer's FIN, and never modified; data is read into one
/// scratch buffer and written straight to the other side, so a connection holds a buffer only while
/// the other side cannot take more (and then stops reading: back-pressure). A short read means the
/// socket is drained (epoll(7)), and a FIN already announced by the event needs no read of its own.
/// A FIN is passed on as a half-close; a reset or error on either side closes both. Every chunk and
/// close is reported to LVSCore as the segment it stands for, so the table's states and counters are live.
final class TCPRelayWorker: @unchecked Sendable {
    // @unchecked Sendable: every stored property but `inbox` is used only on the worker's own thread
    // (inside `run`, from `start` on); `inbox` is behind its lock, and `wakeFD` is only written to from
    // outside (the eventfd stays open until deinit, after the thread has ended).
    let state: LoadBalancerState
    let logger: Logger
    let name: String
    /// How long a real server may take to accept a connection before another one is tried.
    let connectTimeout: Int64
    /// This worker runs the table's clocks (`LoadBalancerState.tick`).
    let runsClock: Bool
    /// Run under SCHED_BATCH (see `ProxyEngine.Options.batchScheduling`).
    let batchScheduling: Bool
    private var nextTick: Int64 = 0
    /// Where the next look for connections whose table entry has expired starts, and when.
    private var sweepCursor = 0
    private var nextSweep: Int64 = 0
    private var expired: [Int32] = []
    /// Table reports not handed over yet (see `account`).
    private var updates: [TableUpdate] = []
    private static let updatesPerHandover = 1024

    private struct TableUpdate {
        var connection: ConnectionID
        var direction: PacketDirection
        var flags: TCPFlags
        var bytes: Int
    }
    private let inbox = NIOLockedValueBox<[RelayCommand]>([])
    /// Connections this worker serves or has been handed, for the others to read
    /// (`lessLoadedPeer`): counted when accepted, uncounted when their slot is released.
    private let load = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    /// Every worker of the engine, this one included; set before the threads start.
    var peers: [Peer] = []

    struct Peer {
        unowned let worker: TCPRelayWorker
    }

    var currentLoad: Int { Int(lvs_atomic_load32(load)) }
    private let epollFD: Int32
    private let wakeFD: Int32

    private var slots: RelaySlotStore
    private var pool: RelayBufferPool
    /// Bytes read at once; also the size of a pending buffer, which holds at most one read's remainder.
    private let chunk: Int
    private let scratch: UnsafeMutableRawPointer
    private var listeners: [Listener] = []
    /// Real servers that failed a connection still being set up, by slot (rare: only after a failure).
    private var failedServers: [Int32: [Int32]] = [:]
    private var connectingHead: Int32 = -1
    private var connectingTail: Int32 = -1
    /// Sides with more to read after their turn, served after the current batch of events (fairness).
    private var again: [UInt64] = []
    private var againNext: [UInt64] = []
    /// Real servers whose FIN came with their last bytes: passed on after the next look at the
    /// events, so that a client that closes as soon as it has the answer closes first (and the
    /// TIME_WAIT socket is its, not the director's).
    private var endsLater: [UInt64] = []
    private var endsNow: [UInt64] = []
    /// Kept open so that, out of descriptors, a connection can still be accepted and closed at once.
    private var reserveFD: Int32 = -1
    /// Whether reading at accept and sending at connect pay off here (they cost a system call when not).
    private var readAtAccept = Speculation()
    private var sendAtConnect = Speculation()
    private var now: Int64 = 0
    private var running = true
    private var stopped: EventLoopPromise<Void>?

    private struct Listener {
        var fd: Int32
        var key: VirtualService.Key
        var virtual: Endpoint
    }

    /// Epoll data: generation << 32 | index << 2 | tag.
    private enum Tag: UInt64 {
        case client = 0, server = 1, listener = 2, wake = 3
    }

    /// Each side of a connection, once: edge-triggered input, output and the peer's FIN.
    private static let relayEvents = UInt32(LVS_EPOLLIN | LVS_EPOLLOUT | LVS_EPOLLRDHUP | LVS_EPOLLET)
    private static let batch: Int32 = 256
    /// Reads one side makes in a row before the others get their turn.
    private static let roundsPerTurn = 16
    private static let acceptsPerTurn = 64
    /// Slots looked at per sweep for expired entries (every `LoadBalancerState.tickInterval`).
    private static let sweepBatch = 4096

    init(state: LoadBalancerState, logger: Logger, name: String, connectTimeout: Int64, runsClock: Bool,
         batchScheduling: Bool, chunk: Int = 64 * 1024, maximumConnections: Int = 1 << 18) {
        self.state = state
        self.runsClock = runsClock
        self.batchScheduling = batchScheduling
        self.logger = logger
        self.name = name
        self.connectTimeout = connectTimeout
        self.chunk = chunk
        epollFD = lvs_epoll_create()
        wakeFD = lvs_eventfd()
        precondition(epollFD >= 0 && wakeFD >= 0, "epoll or eventfd unavailable: \(TCPSocket.reason(lvs_errno()))")
        _ = lvs_epoll_add(epollFD, wakeFD, UInt32(LVS_EPOLLIN), Tag.wake.rawValue)
        slots = RelaySlotStore(limit: maximumConnections)
        updates.reserveCapacity(TCPRelayWorker.updatesPerHandover)
        pool = RelayBufferPool(size: chunk, kept: 256)
        scratch = .allocate(byteCount: chunk, alignment: 64)
        reserveFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
        load.initialize(to: 0)
    }

    deinit {
        load.deallocate()
        close(epollFD)
        close(wakeFD)
    }

    /// Starts the worker's thread.
    func start() {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { raw in
            let worker = Unmanaged<TCPRelayWorker>.fromOpaque(raw!).takeRetainedValue()
            worker.run()
            return nil
        }, context)
        precondition(created == 0, "cannot start a relay thread: \(TCPSocket.reason(created))")
        pthread_detach(thread)
    }

    /// Hands a command to the worker's thread.
    func submit(_ command: RelayCommand) {
        inbox.withLockedValue { $0.append(command) }
        lvs_eventfd_signal(wakeFD)
    }

    // MARK: The loop

    private func run() {
        lvs_name_thread(name)
        if batchScheduling, case let code = lvs_schedule_batch(), code != 0 {
            logger.warning("relay thread keeps the default scheduling policy", metadata: ["error": "\(TCPSocket.reason(code))"])
        }
        let events = lvs_epoll_events(TCPRelayWorker.batch)!
        defer { free(events) }
        now = state.now
        while running {
            let n = lvs_epoll_wait(epollFD, events, TCPRelayWorker.batch, nextTimeout())
            now = state.now
            if n < 0 {
                if lvs_errno() == EINTR { continue }
                logger.error("relay worker stops: epoll_wait failed", metadata: ["error": "\(TCPSocket.reason(lvs_errno()))"])
                break
            }
            swap(&endsLater, &endsNow)
            for k in 0..<Int32(n) {
                dispatch(lvs_epoll_event_data(events, k), lvs_epoll_event_flags(events, k))
            }
            if !endsNow.isEmpty {
                for data in endsNow { endLater(data) }
                endsNow.removeAll(keepingCapacity: true)
            }
            if !again.isEmpty {
                swap(&again, &againNext)
                for data in againNext { resume(data) }
                againNext.removeAll(keepingCapacity: true)
            }
            expireConnects()
            handOverUpdates()
            if runsClock && now >= nextTick {
                state.tick(now: now)
                nextTick = now + LoadBalancerState.tickInterval
            }
            if slots.live > 0 && now >= nextSweep {
                closeExpired()
                nextSweep = now + LoadBalancerState.tickInterval
            }
        }
        tearDown()
    }

    private func nextTimeout() -> Int32 {
        if !again.isEmpty || !endsLater.isEmpty { return 0 }
        var deadline = runsClock ? nextTick : Int64.max
        if slots.live > 0 { deadline = min(deadline, nextSweep) }
        if connectingHead >= 0 { deadline = min(deadline, slots.base[Int(connectingHead)].deadline) }
        guard deadline != .max else { return -1 }
        let wait = deadline - state.now
        return wait <= 0 ? 0 : Int32(min(wait / 1_000_000 + 1, 60_000))
    }

    private func dispatch(_ data: UInt64, _ flags: UInt32) {
        let index = Int32(truncatingIfNeeded: (data >> 2) & 0x3FFF_FFFF)
        switch Tag(rawValue: data & 3)! {
        case .wake:
            lvs_eventfd_drain(wakeFD)
            runCommands()
        case .listener:
            accept(on: Int(index))
        case .client, .server:
            guard let slot = live(index, generation: UInt32(truncatingIfNeeded: data >> 32)) else { return }
            handle(slot, index, data & 1 == 0 ? .client : .server, flags)
        }
    }

    /// The slot an event names, if that connection is still the one the event was registered for.
    @inline(__always)
    private func live(_ index: Int32, generation: UInt32) -> UnsafeMutablePointer<RelaySlot>? {
        guard Int(index) < slots.capacity else { return nil }
        let slot = slots.base + Int(index)
        return slot.pointee.inUse && slot.pointee.generation == generation ? slot : nil
    }

    @inline(__always)
    private func tag(_ slot: UnsafeMutablePointer<RelaySlot>, _ index: Int32, _ side: RelaySide) -> UInt64 {
        UInt64(slot.pointee.generation) << 32 | UInt64(index) << 2 | UInt64(side.rawValue)
    }

    /// A deferred end of a real server (see `endsLater`), if the connection is still there.
    private func endLater(_ data: UInt64) {
        let index = Int32(truncatingIfNeeded: (data >> 2) & 0x3FFF_FFFF)
        guard let slot = live(index, generation: UInt32(truncatingIfNeeded: data >> 32)),
              !slot.pointee.side.server.contains(.ended) else { return }
        _ = ended(slot, index, .server)
    }

    private func resume(_ data: UInt64) {
        let index = Int32(truncatingIfNeeded: (data >> 2) & 0x3FFF_FFFF)
        guard let slot = live(index, generation: UInt32(truncatingIfNeeded: data >> 32)) else { return }
        _ = pump(slot, index, from: data & 1 == 0 ? .client : .server)
    }

    // MARK: Events on a connection

    private func handle(_ slot: UnsafeMutablePointer<RelaySlot>, _ index: Int32, _ side: RelaySide, _ flags: UInt32) {
        let hangUp = flags & UInt32(LVS_EPOLLRDHUP | LVS_EPOLLHUP) != 0
        if flags & UInt32(LVS_EPOLLIN | LVS_EPOLLRDHUP | LVS_EPOLLHUP) != 0 { slot.pointee.side[side].insert(.readable) }
        if hangUp { slot.pointee.side[side].insert(.hangUp) }
        let failed = flags & UInt32(LVS_EPOLLERR) != 0
        if slot.pointee.connecting {
            if side == .client {
                // The client went away before its real server answered.
                if failed { reset(slot, index, by: .client) }
                return
            }
            if failed || flags & UInt32(LVS_EPOLLHUP) != 0 {
                connectFailed(slot, index, code: lvs_socket_error(slot.pointee.fd.server))
                return
            }
            guard flags & UInt32(LVS_EPOLLOUT) != 0 else { return }
            guard connected(slot, index) else { return }
        }
        if flags & UInt32(LVS_EPOLLOUT) != 0 && !slot.pointee.pending[side].isEmpty {
            guard flush(slot, index, toward: side) else { return }
        }
        guard pump(slot, index, from: side) else { return }
        // An error with nothing left to read (or no room to put it): the connection is over.
        if failed { reset(slot, index, by: side) }
    }

    /// Reads from `source` and writes to the other side until `source` is drained, the other side is
    /// full, or this side's turn is over. False once the connection is closed.
    private func pump(_ slot: UnsafeMutablePointer<RelaySlot>, _ index: Int32, from source: RelaySide) -> Bool {
        let target = source.other
        var rounds = 0
        while true {
            let current = slot.pointee.side[source]
            guard current.contains(.readable), !current.contains(.ended), slot.pointee.pending[target].isEmpty else { return true }
            let n = lvs_recv(slot.pointee.fd[source], scratch, chunk)
            if n > 0 {
                account(slot, source.direction, .ack, n)
                let drained = n < chunk
                if drained { slot.pointee.side[source].remove(.readable) }
                guard send(slot, index, toward: target, scratch, n) else { return false }
                if drained {
                    // The FIN the event announced is next in the queue.
                    guard current.contains(.hangUp) else { return true }
                    if source == .server && !slot.pointee.side.client.contains(.ended) {
                        endsLater.append(tag(slot, index, source))
                        return true
                    }
                    return ended(slot, index, source)
                }
                rounds += 1
                if rounds == TCPRelayWorker.roundsPerTurn {
                    again.append(tag(slot, index, source))
                    return true
                }
            } else if n == 0 {
                return ended(slot, index, source)
            } else {
                let code = lvs_errno()
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK {
                    slot.pointee.side[source].remove(.readable)
                    return true
                }
                reset(slot, index, by: source)
                return false
            }
        }
    }

    /// Writes as much of `count` bytes toward `target` as its socket takes now (stopping at a short
    /// write or EAGAIN: the buffer is full); nil after an error, once the connection is reset.
    private func write(_ slot: UnsafeMutablePointer<RelaySlot>, _ index: Int32, toward target: RelaySide,
                       _ bytes: UnsafeRawPointer, _ count: Int) -> Int? {
        var sent = 0
        while sent < count {
            let n = lvs_send(slot.pointee.fd[target], bytes + sent, count - sent)
            if n > 0 {
                sent += n
                if sent < count { break }
            } else {
                let code = lvs_errno()
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK { break }
                reset(slot, index, by: target)
                return nil
            }
        }
        return sent
    }

    /// Writes `count` bytes toward `target`; what it cannot take now waits in a pending buffer.
    private func send(_ slot: UnsafeMutablePointer<RelaySlot>, _ index: Int32, toward target: RelaySide,
                      _ bytes: UnsafeRawPointer, _ count: Int) -> Bool {
        guard let sent = write(slot, index, toward: target, bytes, count) else { return false }
        if sent < count {
            let buffer = pool.take()
            buffer.copyMemory(from: bytes + sent, byteCount: count - sent)
            slot.pointee.pending[target] = PendingBytes(buffer: buffer, start: 0, end: count - sent)
        }
        return true
    }

    /// Writes what waits for `target`; once it is all out, passes on a FIN that came meanwhile and
    /// reads again from the other side.
    private func flush(_ slot: UnsafeMutablePointer<RelaySlot>, _ index: Int32, toward target: RelaySide) -> Bool {
        var pending = slot.pointee.pending[target]
        guard let sent = write(slot, index, toward: target, pending.buffer! + pending.start, pending.count) else { return false }
        pending.start += sent
        guard pending.isEmpty else {
            slot.pointee.pending[target] = pending
            return true
        }
        pool.give(pending.buffer!)
        slot.pointee.pending[target] = PendingBytes()
        guard passOnEnd(slot, index, toward: target) else { return false }
        return pump(slot, index, from: target.other)
    }

    /// `source` sent its FIN and it has been read.
    private func ended(_ slot: UnsafeMutablePointer<RelaySlot>, _ index: Int32, _ source: RelaySide) -> Bool {
        slot.pointee.side[source].remove(.readable)
        slot.pointee.side[source].insert(.ended)
        account(slot, source.direction, [.fin, .ack], 0)
        return passOnEnd(slot, index, toward: source.other)
    }

    /// Once the side opposite `target` has ended and everything it sent is written, tells `target`
    /// (a half-close); when both sides have ended and all is written, closes the connection.
    private func passOnEnd(_ slot: UnsafeMutablePointer<RelaySlot>, _ index: Int32, toward target: RelaySide) -> Bool {
        let source = target.other
        guard slot.pointee.side[source].contains(.ended), slot.pointee.pending[target].isEmpty,
              !slot.pointee.side[target].contains(.shut) else { return true }
        if slot.pointee.side[target].contains(.ended) {
            // Both ways are finished once what waits for `source` is out too (its flush comes back here).
            guard slot.pointee.pending[source].isEmpty else { return true }
            finish(slot, index)
            return false
        }
        shutdown(slot.pointee.fd[target], Int32(SHUT_WR))
        slot.pointee.side[target].insert(.shut)
        return true
    }

    /// A reset or an error on `side`: reported as an RST from that side; both sockets are closed.
    private func reset(_ slot: UnsafeMutablePointer<RelaySlot>, _ index: Int32, by side: RelaySide) {
        account(slot, side.direction, .rst, 0)
        finish(slot, index)
    }

    /// Closes both sockets and frees the slot.
    private func finish(_ slot: UnsafeMutablePointer<RelaySlot>, _ index: Int32) {
        if slot.pointee.connecting { unlinkConnecting(slot, index) }
        release(slot, .client)
        release(slot, .server)
        if slot.pointee.hasFailed { failedServers[index] = nil }
        slots.release(index)
        lvs_atomic_add32(load, -1)
    }

    private func release(_ slot: UnsafeMutablePointer<RelaySlot>, _ side: RelaySide) {
        if slot.pointee.fd[side] >= 0 { close(slot.pointee.fd[side]) }
        if let buffer = slot.pointee.pending[side].buffer { pool.give(buffer) }
    }

    /// Reports a chunk or a close to the table. Reports are kept in order and handed over together
    /// once per batch of events (or when `updatesPerHandover` are waiting), so the table's lock is
    /// taken once per batch rather than once per chunk: the workers do not queue behind each other.
    @inline(__always)
    private func account(_ slot: UnsafeMutablePointer<RelaySlot>, _ direction: PacketDirection, _ flags: TCPFlags, _ bytes: Int) {
        updates.append(TableUpdate(connection: slot.pointee.connection, direction: direction, flags: flags, bytes: bytes))
        if updates.count == TCPRelayWorker.updatesPerHandover { handOverUpdates() }
    }

    private func handOverUpdates() {
        guard !updates.isEmpty else { return }
        let now = self.now
        state.withTable { table in
            for u in updates { table.update(connection: u.connection, direction: u.direction, tcpFlags: u.flags, bytes: u.bytes, now: now) }
        }
        updates.removeAll(keepingCapacity: true)
    }

    // MARK: Connections to real servers

    /// New client connections: each served here, or by a worker with at least two fewer (the
    /// kernel wakes whichever worker waits first, so one would otherwise take a burst of
    /// connections, such as a client's pool opening at once, and serve them all on one core).
    private func accept(on listenerIndex: Int) {
        guard listenerIndex < listeners.count, listeners[listenerIndex].fd >= 0 else { return }
        let listenFD = listeners[listenerIndex].fd
        let virtual = listeners[listenerIndex].virtual
        for _ in 0..<TCPRelayWorker.acceptsPerTurn {
            var peer = RawSocketAddress()
            let fd = lvs_accept(listenFD, &peer.storage)
            if fd < 0 {
                let code = lvs_errno()
                if code == EINTR || code == ECONNABORTED { continue }
                if code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM { shed(listenFD) }
                return
            }
            guard let client = peer.endpoint else {
                close(fd)
                continue
            }
            if let other = lessLoadedPeer() {
                other.submit(.adopt(fd: fd, client: client, virtual: virtual))
                continue
            }
            lvs_atomic_add32(load, 1)
            adopt(fd, client: client, virtual: virtual)
        }
    }

    /// The least loaded other worker if it serves at least two connections fewer than this one
    /// (the connection is counted as its at once, so that a burst spreads).
    private func lessLoadedPeer() -> TCPRelayWorker? {
        guard peers.count > 1 else { return nil }
        let mine = lvs_atomic_load32(load)
        var best: TCPRelayWorker?
        var least = mine - 1
        for p in peers where p.worker !== self {
            let l = lvs_atomic_load32(p.worker.load)
            if l < least {
                least = l
                best = p.worker
            }
        }
        if let best { lvs_atomic_add32(best.load, 1) }
        return best
    }

    /// A client connection this worker serves (counted in its load already): scheduled, given a
    /// slot, and connected onward.
    private func adopt(_ fd: Int32, client: Endpoint, virtual: Endpoint) {
        guard let (forwarding, proxyProtocol) = schedule(client, virtual) else {
            lvs_atomic_add32(load, -1)
            close(fd)  // no real server available: LVSCore counted it
            return
        }
        guard let index = slots.allocate() else {
            lvs_atomic_add32(load, -1)
            let connection = forwarding.connection
            state.withTable { $0.forget(connection: connection) }
            state.countDroppedConnection()
            close(fd)
            return
        }
        let slot = slots.base + Int(index)
        slot.pointee.fd.client = fd
        slot.pointee.client = client
        slot.pointee.virtual = virtual
        slot.pointee.connection = forwarding.connection
        // Most clients speak first and have done so by now: their request is read before the
        // socket is watched (so no event comes for it), and goes out with the connection.
        if !proxyProtocol && readAtAccept.shouldTry { readEarly(slot) }
        guard lvs_epoll_add(epollFD, fd, TCPRelayWorker.relayEvents, tag(slot, index, .client)) == 0 else {
            reset(slot, index, by: .client)
            return
        }
        connect(slot, index, forwarding, proxyProtocol: proxyProtocol)
        if slot.pointee.inUse && slot.pointee.connecting && !slot.pointee.pending.server.isEmpty && sendAtConnect.shouldTry {
            sendEarly(slot, index)
        }
    }

    /// Reads what a just-accepted client has already sent; it waits for the real server in a pending
    /// buffer, and is reported to the table once the handshake is.
    private func readEarly(_ slot: UnsafeMutablePointer<RelaySlot>) {
        let n = lvs_recv(slot.pointee.fd.client, scratch, chunk)
        readAtAccept.record(hit: n != -1)
        if n > 0 {
            let buffer = pool.take()
            buffer.copyMemory(from: scratch, byteCount: n)
            slot.pointee.pending.server = PendingBytes(buffer: buffer, start: 0, end: n)
            slot.pointee.earlyBytes = n
            if n == chunk { slot.pointee.side.client.insert(.readable) }
        } else if n == 0 {
            slot.pointee.side.client.insert([.readable, .hangUp])  // read again (the end stays) once connected
        }
    }

    /// On loopback and fast networks the connection is usually up as soon as connect() returns:
    /// the client's first bytes are sent at once, without waiting for the event.
    private func sendEarly(_ slot: UnsafeMutablePointer<RelaySlot>, _ index: Int32) {
        var pending = slot.pointee.pending.server
        let n = lvs_send(slot.pointee.fd.server, pending.buffer! + pending.start, pending.count)
        if n > 0 {
            sendAtConnect.record(hit: true)
            pending.start += n
            if pending.isEmpty {
                pool.give(pending.buffer!)
                pending = PendingBytes()
            }
            slot.pointee.pending.server = pending
            _ = connected(slot, index)
            return
        }
        let code = lvs_errno()
        if code == EAGAIN || code == EWOULDBLOCK || code == EINTR {
            sendAtConnect.record(hit: false)
            return
        }
        connectFailed(slot, index, code: code)
    }

    /// Out of descriptors: takes the oldest waiting connection off the queue and closes it at once,
    /// so the listener does not stay ready forever.
    private func shed(_ listenFD: Int32) {
        state.countDroppedConnection()
        if reserveFD >= 0 { close(reserveFD) }
        var peer = RawSocketAddress()
        let fd = lvs_accept(listenFD, &peer.storage)
        if fd >= 0 { close(fd) }
        reserveFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
        logger.warning("out of file descriptors: a new connection was closed", metadata: ["worker": "\(name)"])
    }

    private func schedule(_ client: Endpoint, _ virtual: Endpoint) -> (Forwarding, Bool)? {
        let now = self.now
        return state.withTable { table in
            guard case .forward(let f) = table.inbound(.tcp(from: client, to: virtual, flags: .syn, length: 60), now: now) else {
                return nil
            }
            return (f, table.realServer(f.server).config.proxyProtocol)
        }
    }

    private func connect(_ slot: UnsafeMutablePointer<RelaySlot>, _ index: Int32, _ forwarding: Forwarding, proxyProtocol: Bool) {
        slot.pointee.connection = forwarding.connection
        slot.pointee.server = forwarding.server
        slot.pointee.destination = forwarding.destination
        slot.pointee.proxyProtocol = proxyProtocol
        switch TCPSocket.connect(to: forwarding.destination) {
        case .success(let fd):
            slot.pointee.fd.server = fd
            slot.pointee.connecting = true
            slot.pointee.deadline = now + connectTimeout
            linkConnecting(slot, index)
            if lvs_epoll_add(epollFD, fd, TCPRelayWorker.relayEvents, tag(slot, index, .server)) != 0 {
                connectFailed(slot, index, code: lvs_errno())
            }
        case .failure(let error):
            connectFailed(slot, index, code: error.code)
        }
    }

    /// The real server accepted: the table sees the handshake, and relaying starts.
    private func connected(_ slot: UnsafeMutablePointer<RelaySlot>, _ index: Int32) -> Bool {
        unlinkConnecting(slot, index)
        slot.pointee.connecting = false
        if slot.pointee.hasFailed {
            failedServers[index] = nil
            slot.pointee.hasFailed = false
        }
        // The handshake the table would have seen: SYN-ACK from the server, ACK from the client.
        account(slot, .output, [.syn, .ack], 0)
        account(slot, .input, .ack, 0)
        if slot.pointee.earlyBytes > 0 {
            account(slot, .input, .ack, slot.pointee.earlyBytes)
            slot.pointee.earlyBytes = 0
        }
        if slot.pointee.proxyProtocol {
            // Nothing was read before the header (see accept).
            let header = ProxyProtocolV2.header(source: slot.pointee.client, destination: slot.pointee.virtual, protocol: .tcp)
            let sent = header.withUnsafeBytes { send(slot, index, toward: .server, $0.baseAddress!, $0.count) }
            guard sent else { return false }
        }
        if !slot.pointee.pending.server.isEmpty { return flush(slot, index, toward: .server) }
        return pump(slot, index, from: .client)
    }

    /// The real server refused, failed or did not answer in time: the attempt's connection entry is
    /// dropped and the client is scheduled again, on a server that has not failed it yet.
    private func connectFailed(_ slot: UnsafeMutablePointer<RelaySlot>, _ index: Int32, code: Int32) {
        logger.debug("real server did not answer", metadata: [
            "rip": "\(slot.pointee.destination)", "error": "\(TCPSocket.reason(code))",
        ])
        unlinkConnecting(slot, index)
        slot.pointee.connecting = false
        if slot.pointee.fd.server >= 0 {
            close(slot.pointee.fd.server)
            slot.pointee.fd.server = -1
        }
        var tried = failedServers[index] ?? []
        tried.append(slot.pointee.server)
        slot.pointee.hasFailed = true
        failedServers[index] = tried
        handOverUpdates()
        let connection = slot.pointee.connection
        let now = self.now
        state.countRealServerFailure()
        state.withTable {
            $0.update(connection: connection, direction: .input, tcpFlags: .rst, bytes: 0, now: now)
            $0.forget(connection: connection)
        }
        slot.pointee.connection = .none
        guard let (next, proxyProtocol) = schedule(slot.pointee.client, slot.pointee.virtual) else {
            finish(slot, index)
            return
        }
        if tried.contains(next.server) {
            let connection = next.connection
            state.withTable { $0.forget(connection: connection) }
            finish(slot, index)
            return
        }
        connect(slot, index, next, proxyProtocol: proxyProtocol)
    }

    private func linkConnecting(_ slot: UnsafeMutablePointer<RelaySlot>, _ index: Int32) {
        slot.pointee.previousConnecting = connectingTail
        slot.pointee.nextConnecting = -1
        if connectingTail >= 0 { slots.base[Int(connectingTail)].nextConnecting = index } else { connectingHead = index }
        connectingTail = index
    }

    private func unlinkConnecting(_ slot: UnsafeMutablePointer<RelaySlot>, _ index: Int32) {
        guard slot.pointee.connecting else { return }
        let previous = slot.pointee.previousConnecting
        let next = slot.pointee.nextConnecting
        if previous >= 0 { slots.base[Int(previous)].nextConnecting = next } else { connectingHead = next }
        if next >= 0 { slots.base[Int(next)].previousConnecting = previous } else { connectingTail = previous }
        slot.pointee.previousConnecting = -1
        slot.pointee.nextConnecting = -1
    }

    /// Connection attempts past their deadline fail (and move on to another real server).
    private func expireConnects() {
        while connectingHead >= 0 {
            let index = connectingHead
            let slot = slots.base + Int(index)
            guard slot.pointee.deadline <= now else { return }
            connectFailed(slot, index, code: ETIMEDOUT)
        }
    }

    /// Closes, with a reset both ways, relayed connections whose table entry has expired: an idle
    /// connection past its state's timeout (900 s established by default, `ipvsadm --set`) is over,
    /// as it is for the kernel, which drops its packets once the entry is gone. A part of the slots
    /// is looked at each time, so a full table costs little per tick.
    private func closeExpired() {
        handOverUpdates()
        let end = min(sweepCursor + TCPRelayWorker.sweepBatch, slots.capacity)
        let base = slots.base
        let range = sweepCursor..<end
        sweepCursor = end == slots.capacity ? 0 : end
        state.withTable { table in
            for i in range where base[i].inUse && !base[i].connecting && !table.isLive(connection: base[i].connection) {
                expired.append(Int32(i))
            }
        }
        for index in expired {
            let slot = base + Int(index)
            for fd in [slot.pointee.fd.client, slot.pointee.fd.server] where fd >= 0 { lvs_abort_on_close(fd) }
            finish(slot, index)
        }
        expired.removeAll(keepingCapacity: true)
    }

    // MARK: Commands

    private func runCommands() {
        let commands = inbox.withLockedValue { queued -> [RelayCommand] in
            defer { queued = [] }
            return queued
        }
        for command in commands {
            switch command {
            case .listen(let fd, let key, let virtual, let shared):
                let index = listeners.firstIndex { $0.fd < 0 } ?? listeners.count
                let listener = Listener(fd: fd, key: key, virtual: virtual)
                if index == listeners.count { listeners.append(listener) } else { listeners[index] = listener }
                let events = UInt32(LVS_EPOLLIN) | (shared ? UInt32(LVS_EPOLLEXCLUSIVE) : 0)
                if lvs_epoll_add(epollFD, fd, events, UInt64(index) << 2 | Tag.listener.rawValue) != 0 {
                    logger.error("cannot watch a listener", metadata: ["vip": "\(key)", "error": "\(TCPSocket.reason(lvs_errno()))"])
                }
            case .stopListening(let key):
                for i in listeners.indices where listeners[i].fd >= 0 && listeners[i].key == key {
                    close(listeners[i].fd)  // closing also takes it out of the epoll set
                    listeners[i].fd = -1
                }
            case .adopt(let fd, let client, let virtual):
                if running {
                    adopt(fd, client: client, virtual: virtual)
                } else {
                    lvs_atomic_add32(load, -1)
                    close(fd)
                }
            case .stop(let done):
                running = false
                stopped = done
            }
        }
    }

    private func tearDown() {
        handOverUpdates()
        for listener in listeners where listener.fd >= 0 { close(listener.fd) }
        listeners = []
        for i in 0..<Int32(slots.capacity) where slots.base[Int(i)].inUse {
            finish(slots.base + Int(i), i)
        }
        slots.deallocate()
        pool.deallocate()
        scratch.deallocate()
        if reserveFD >= 0 { close(reserveFD) }
        // Commands that came after the stop: their listeners are closed too.
        for case .listen(let fd, _, _, _) in inbox.withLockedValue({ $0 }) { close(fd) }
        stopped?.succeed(())
    }
}
