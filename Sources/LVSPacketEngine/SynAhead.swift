import CLinux
import LVSCore
import LVSPacket
import LinuxNet

/// The kernel's SYN path for direct-routing services under rr or wrr: a new connection's SYN
/// need not cross to user space to be scheduled, as the choice it would get is known before it
/// comes (`IPVS.decideAhead`). For each such service the engine keeps a queue of the scheduler's
/// next choices in a BPF array it shares with the kernel (each: the real server's out interface
/// and MACs, what a DR flow needs), and the services' keys in a hash map. The packet sockets'
/// filter, which sees a frame before the tcx program, takes the next choice for a SYN that has
/// no flow, puts the flow into the map, and the tcx program forwards the SYN and reports it with
/// the choice's sequence number; the engine then makes the connection with that choice
/// (`IPVS.admitDecided`): the same real servers, in the same order, as if each SYN had come
/// through the engine, and the table, counters and sync as they would be.
///
/// The rules:
/// - Only services whose every real server is DR, IPv4, with a resolved next hop (not this
///   host) that takes the engine's interfaces' MTU, and only while `decidesAhead` holds (no
///   persistence, no thresholds). Others keep the SYN's way through the engine.
/// - Any change to the services or real servers (`IPVS.generation`) voids the choices not yet
///   taken: the epoch moves at once, and the engine claims them itself before making new ones
///   from a fresh copy of the scheduler. A choice taken just before a change is admitted if its
///   real server still serves; otherwise its flow is taken back and its connection is not made
///   (counted).
/// - When a service's queue is empty, its SYNs go to the engine as before.
/// - Only the first packet thread uses it (with the table's lock held, where the table is used),
///   but for `tableChanged`, which the table's observer calls on whichever thread changed it:
///   it moves the epoch, and until the engine has made its queues again in the new one, the
///   filter takes no choice (the SYNs come to the engine).
final class SynAhead: @unchecked Sendable {
    // @unchecked Sendable: all but `tableChanged` (an atomic store in the shared array) is used
    // by the first packet thread only.
    let services: EBPFHashMap
    let decisions: EBPFSharedArray
    static let capacity = 256

    /// A service deciding ahead: its queue in the array, and the copy of its scheduler that the
    /// queue's choices come from.
    struct Service {
        var index: Int
        var cursor: AheadCursor
    }

    /// A choice in a queue, until its SYN reports (or it is voided).
    struct Choice {
        var handle: Int32
        var server: Int32
        var hop: NextHop
        var made: Int64
    }

    struct Pending: Hashable {
        var service: FastPathLayout.Key
        var sequence: UInt32
    }

    /// Services deciding ahead, by their key (no client).
    private var entries: [FastPathLayout.Key: Service] = [:]
    private var pending: [Pending: Choice] = [:]
    /// Element 0 is the epoch's.
    private var freeIndexes = Array((1..<SynAhead.capacity).reversed())
    private var generation: UInt64?
    /// Whether a service was left out for want of a next hop (tried again at the next review).
    private var waiting = false
    /// Whether a refused SYN left a cursor out of step with its table's scheduler.
    private var resync = false

    /// A connection made outside the queue's order (the table's scheduler moved for it): the
    /// copies are taken again.
    func scheduledOutOfTurn() { resync = true }

    init() throws {
        services = try EBPFHashMap(keySize: FastPathLayout.keySize, valueSize: 4, capacity: SynAhead.capacity)
        decisions = try EBPFSharedArray(valueSize: FastPathLayout.aheadValueSize, count: SynAhead.capacity)
    }

    static func serviceKey(address: UInt32, port: UInt16) -> FastPathLayout.Key {
        FastPathLayout.Key(protocolNumber: 6, source: 0, sourcePort: 0, destination: address, destinationPort: port)
    }

    private var epoch: UnsafeMutablePointer<UInt32> { decisions.element(0).assumingMemoryBound(to: UInt32.self) }

    /// The table changed: from now on no queue is used until the engine has made it again
    /// (`refresh`). Any thread; quick (the table's observer).
    func tableChanged() {
        let e = lvs_atomic_acquire32(epoch)
        lvs_atomic_release32(epoch, e &+ 1)
    }

    private func claimed(_ index: Int) -> UnsafeMutablePointer<UInt32> {
        (decisions.element(index) + FastPathLayout.aheadClaimedOffset).assumingMemoryBound(to: UInt32.self)
    }

    private func madeCount(_ index: Int) -> UnsafeMutablePointer<UInt32> {
        (decisions.element(index) + FastPathLayout.aheadMadeOffset).assumingMemoryBound(to: UInt32.self)
    }

    /// Claims every choice not yet taken in queue `index` (the program can then take none), and
    /// forgets them; returns how many the program had taken whose SYN has not reported yet.
    @discardableResult
    private func void(_ key: FastPathLayout.Key, index: Int) -> Int {
        let made = lvs_atomic_acquire32(madeCount(index))
        var head: UInt32
        repeat {
            head = lvs_atomic_acquire32(claimed(index))
        } while head != made && lvs_atomic_cas32(claimed(index), head, made) == 0
        var s = head
        while s != made {
            pending[Pending(service: key, sequence: s)] = nil
            s &+= 1
        }
        return pending.keys.reduce(0) { $0 + ($1.service == key ? 1 : 0) }
    }

    /// Brings the services and their queues up to the table: on a change, the queues are voided
    /// and the services chosen again; then every queue is filled. `mtu`: the largest of the
    /// engine's interfaces' (a real server's next hop must take it).
    /// Called with the table's lock held (which the epoch moves under).
    func refresh(table: IPVS, hops: [IPAddress: NextHop], mtu: Int, now: Int64) {
        if generation != table.generation || waiting || resync {
            generation = table.generation
            choose(table: table, hops: hops, mtu: mtu, now: now)
        }
        let current = lvs_atomic_acquire32(epoch)
        for (key, entry) in entries {
            fill(key, table: table, hops: hops, now: now)
            lvs_atomic_release32((decisions.element(entry.index) + FastPathLayout.aheadEpochOffset).assumingMemoryBound(to: UInt32.self),
                                 current)
        }
        // Choices the program took whose flow it could not put in never report.
        if pending.count > 2 * FastPathLayout.aheadSlots * (entries.count + 1) {
            pending = pending.filter { now - $0.value.made < 2_000_000_000 }
        }
    }

    private func choose(table: IPVS, hops: [IPAddress: NextHop], mtu: Int, now: Int64) {
        waiting = false
        resync = false
        var wanted: [FastPathLayout.Key: Int32] = [:]
        for (serviceKey, handle) in table.serviceHandles {
            guard case .address(.tcp, let vip, let port) = serviceKey, !vip.isV6, table.decidesAhead(service: handle) else { continue }
            let members = table.members(service: handle)
            guard !members.isEmpty else { continue }
            var usable = true
            for m in members {
                let r = table.realServer(m)
                guard r.config.forwarding == .gatewaying, !r.endpoint.address.isV6 else {
                    usable = false
                    break
                }
                guard let hop = hops[r.endpoint.address], !hop.isLocal, hop.mtu >= mtu else {
                    usable = false
                    waiting = true
                    break
                }
            }
            if usable { wanted[SynAhead.serviceKey(address: vip.v4, port: port)] = handle }
        }
        // Every queue is voided (services no longer wanted leave the map first), and each kept
        // service's scheduler copied again, moved on by the choices still to report.
        var kept: [FastPathLayout.Key: Service] = [:]
        for (key, entry) in entries {
            if wanted[key] != entry.cursor.handle {
                var k = key.bytes
                withUnsafeBytes(of: &k) { _ = services.delete(key: $0.baseAddress!) }
            }
            let inFlight = void(key, index: entry.index)
            if let handle = wanted[key], handle == entry.cursor.handle, var cursor = table.aheadCursor(service: handle) {
                for _ in 0..<inFlight { _ = table.decideAhead(&cursor, now: now) }
                kept[key] = Service(index: entry.index, cursor: cursor)
            } else {
                freeIndexes.append(entry.index)
            }
        }
        for (key, handle) in wanted where kept[key] == nil {
            guard let cursor = table.aheadCursor(service: handle), let index = freeIndexes.popLast() else { continue }
            void(key, index: index)
            var k = key.bytes
            var i = UInt32(index)
            let code = withUnsafeBytes(of: &k) { kp in withUnsafeBytes(of: &i) { services.update(key: kp.baseAddress!, value: $0.baseAddress!) } }
            guard code == 0 else {
                freeIndexes.append(index)
                continue
            }
            kept[key] = Service(index: index, cursor: cursor)
        }
        entries = kept
    }

    private func fill(_ key: FastPathLayout.Key, table: IPVS, hops: [IPAddress: NextHop], now: Int64) {
        guard var entry = entries[key] else { return }
        defer { entries[key] = entry }
        let index = entry.index
        var made = lvs_atomic_acquire32(madeCount(index))
        let head = lvs_atomic_acquire32(claimed(index))
        while made &- head < UInt32(FastPathLayout.aheadSlots) {
            var cursor = entry.cursor
            guard let server = table.decideAhead(&cursor, now: now) else { break }
            guard let hop = hops[table.realServer(server).endpoint.address] else {
                // Tried again at the next review (the cursor stays where it was).
                waiting = true
                break
            }
            entry.cursor = cursor
            let slot = decisions.element(index) + FastPathLayout.aheadSlotsOffset
                + Int(made % UInt32(FastPathLayout.aheadSlots)) * FastPathLayout.aheadSlotSize
            slot.storeBytes(of: UInt32(bitPattern: hop.interface), as: UInt32.self)
            withUnsafeBytes(of: hop.destinationMAC.bytes) { for k in 0..<6 { slot.storeBytes(of: $0[k], toByteOffset: 4 + k, as: UInt8.self) } }
            withUnsafeBytes(of: hop.sourceMAC.bytes) { for k in 0..<6 { slot.storeBytes(of: $0[k], toByteOffset: 10 + k, as: UInt8.self) } }
            pending[Pending(service: key, sequence: made)] = Choice(handle: entry.cursor.handle, server: server, hop: hop, made: now)
            made &+= 1
            lvs_atomic_release32(madeCount(index), made)
        }
    }

    /// The connection of SYN `p` (its flow `key`), which the kernel forwarded with choice `sequence`
    /// of its service: made in the table, or nil when the choice is unknown or no longer stands
    /// (the caller takes the flow back).
    func admit(_ p: PacketSummary, key: FastPathLayout.Key, sequence: UInt32, table: inout IPVS, now: Int64) -> (Forwarding, NextHop)? {
        let serviceKey = SynAhead.serviceKey(address: key.destination, port: key.destinationPort)
        guard let choice = pending.removeValue(forKey: Pending(service: serviceKey, sequence: sequence)) else { return nil }
        guard let forwarding = table.admitDecided(p, service: choice.handle, server: choice.server, replacing: true, now: now) else {
            // The table's scheduler did not move for it: the copies are taken again.
            resync = true
            return nil
        }
        return (forwarding, choice.hop)
    }
}
