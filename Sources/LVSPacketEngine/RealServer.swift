import CLinux
import LVSCore
import LVSPacket
import LinuxNet
import Logging
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// What the seeds do by hand on a real server for DR and TUN: the VIP on `lo` (or another device)
/// as a host address that this host does not answer ARP for, `arp_ignore=1` and `arp_announce=2`,
/// and reverse-path filtering off where the director's packets arrive (they come from the
/// clients, whose route back is not that interface). `stop` puts back what `start` found.
public struct RealServerSetup: Sendable {
    public var vips: [IPAddress]
    public var device: String
    /// The interfaces the director's packets arrive on.
    public var interfaces: [String]
    /// Where `start` keeps what it changed, for `stop`.
    public var statePath: String

    public init(vips: [IPAddress], device: String = "lo", interfaces: [String] = [], statePath: String = RealServerSetup.defaultStatePath) {
        self.vips = vips
        self.device = device
        self.interfaces = interfaces
        self.statePath = statePath
    }

    public static var defaultStatePath: String { getuid() == 0 ? "/run/lvsd-realserver.state" : "/tmp/lvsd-realserver-\(getuid()).state" }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The sysctls and their values while serving.
    var settings: [(String, String)] {
        var s: [(String, String)] = [
            ("net.ipv4.conf.all.arp_ignore", "1"), ("net.ipv4.conf.all.arp_announce", "2"),
            ("net.ipv4.conf.\(device).arp_ignore", "1"), ("net.ipv4.conf.\(device).arp_announce", "2"),
        ]
        if !interfaces.isEmpty {
            s.append(("net.ipv4.conf.all.rp_filter", "0"))
            s.append(("net.ipv4.conf.lo.rp_filter", "0"))
            for i in interfaces { s.append(("net.ipv4.conf.\(i).rp_filter", "0")) }
        }
        var seen = Set<String>()
        return s.filter { seen.insert($0.0).inserted }
    }

    /// Applies the set-up; returns what was done, for the log.
    public func start() throws -> [String] {
        guard let index = interfaceIndex(device) else { throw Failure(description: "no interface \(device)") }
        let netlink = try RouteNetlink()
        var done: [String] = []
        var previous: [String] = []
        for (name, value) in settings {
            let old = Sysctl.read(name) ?? "0"
            if let error = Sysctl.write(name, value) { throw Failure(description: "cannot set \(error)") }
            previous.append("\(name) \(old)")
            done.append("\(name) = \(value)")
        }
        let present = Set(try netlink.addresses(on: index).map(\.address))
        for vip in vips where !present.contains(vip) {
            try netlink.setAddress(vip, prefix: vip.isV6 ? 128 : 32, on: index, label: device == "lo" && !vip.isV6 ? "lo:0" : nil)
            previous.append("address \(vip)")
            done.append("\(vip)/\(vip.isV6 ? 128 : 32) on \(device)")
        }
        if let f = fopen(statePath, "w") {
            fputs(previous.joined(separator: "\n") + "\n", f)
            fclose(f)
        }
        return done
    }

    /// Undoes `start`: the VIPs it added go, the sysctls it changed get their old values back
    /// (without its record, the VIPs go and the ARP settings return to the kernel's defaults, as
    /// the seeds' stop does).
    public func stop() throws -> [String] {
        guard let index = interfaceIndex(device) else { throw Failure(description: "no interface \(device)") }
        let netlink = try RouteNetlink()
        var done: [String] = []
        var restore: [(String, String)] = settings.filter { $0.0.contains("arp_") }.map { ($0.0, "0") }
        var added = Set(vips)
        if let f = fopen(statePath, "r") {
            restore = []
            added = []
            var line = [CChar](repeating: 0, count: 512)
            while fgets(&line, Int32(line.count), f) != nil {
                let text = String(decoding: line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                let parts = text.split(separator: " ", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { continue }
                if parts[0] == "address" { if let a = IPAddress(parts[1]) { added.insert(a) } } else { restore.append((parts[0], parts[1])) }
            }
            fclose(f)
            unlink(statePath)
        }
        let present = Set(try netlink.addresses(on: index).map(\.address))
        for vip in vips where added.contains(vip) && present.contains(vip) {
            try netlink.setAddress(vip, prefix: vip.isV6 ? 128 : 32, on: index, delete: true)
            done.append("\(vip) removed from \(device)")
        }
        for (name, value) in restore.reversed() {
            Sysctl.write(name, value)
            done.append("\(name) = \(value)")
        }
        return done
    }
}

/// The real server's end of TUN on a kernel without the ipip, gre or fou modules: it takes the
/// tunnelled packets addressed to this host off the given interfaces (an nftables rule keeps the
/// kernel from answering them with "protocol unreachable"), and hands each inner datagram to the
/// local stack as if it had arrived on `lo`.
public final class Decapsulator: @unchecked Sendable {
    // @unchecked Sendable: the sockets and buffers are used by the decapsulating thread only,
    // `running` is behind its lock.
    let interfaces: [String]
    let guePort: UInt16?
    let logger: Logger
    private var receivers: [PacketSocket] = []
    private let sender: PacketSocket
    private let loopback: Int32
    private let running = NIOLockedValueBox(true)
    private let finished = NIOLockedValueBox(false)
    private let delivered = NIOLockedValueBox<UInt64>(0)
    static let table = "lvsd_realserver"

    public init(interfaces: [String], guePort: UInt16? = nil, logger: Logger) throws {
        self.interfaces = interfaces
        self.guePort = guePort
        self.logger = logger
        guard let lo = interfaceIndex("lo") else { throw RealServerSetup.Failure(description: "no loopback interface") }
        loopback = lo
        sender = try PacketSocket()
        for name in interfaces {
            guard let i = interfaceIndex(name) else { throw RealServerSetup.Failure(description: "no interface \(name)") }
            receivers.append(try PacketSocket(receivingOn: i))
        }
        var rules = "add table netdev \(Self.table)\ndelete table netdev \(Self.table)\ntable netdev \(Self.table) {\n"
        for (i, name) in interfaces.enumerated() {
            rules += "    chain ingress\(i) {\n        type filter hook ingress device \"\(name)\" priority -500; policy accept;\n"
            rules += "        ip protocol { 4, 41, 47 } drop\n"
            if let guePort { rules += "        udp dport \(guePort) drop\n" }
            rules += "    }\n"
        }
        rules += "}\n"
        let result = Command.run(["nft", "-f", "-"], input: rules)
        guard result.status == 0 else { throw RealServerSetup.Failure(description: "nft: \(result.output)") }
    }

    /// Inner datagrams handed to the local stack so far.
    public var count: UInt64 { delivered.withLockedValue { $0 } }

    public func start() {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        _ = pthread_create(&thread, nil, { raw in
            let d = Unmanaged<Decapsulator>.fromOpaque(raw!).takeRetainedValue()
            d.run()
            return nil
        }, context)
        pthread_detach(thread)
    }

    public func stop() {
        running.withLockedValue { $0 = false }
        for _ in 0..<100 where !finished.withLockedValue({ $0 }) { usleep(5000) }
        _ = Command.run(["nft", "-f", "-"], input: "add table netdev \(Self.table)\ndelete table netdev \(Self.table)\n")
    }

    private func run() {
        lvs_name_thread("lvsd-decap")
        let batch = FrameBatch(count: 64, stride: 69632, headroom: 128)
        var polls = receivers.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        defer { finished.withLockedValue { $0 = true } }
        while running.withLockedValue({ $0 }) {
            _ = poll(&polls, nfds_t(polls.count), 100)
            for receiver in receivers {
                guard let got = try? batch.receive(from: receiver), got > 0 else { continue }
                var sent = 0
                for i in 0..<got {
                    let slot = batch.slot(i)
                    let frameBytes = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(slot)[batch.headroom..<(batch.headroom + Int(batch.lengths[i]))])
                    guard case .success(let outer) = Frame.parse(frameBytes),
                          let inner = Tunnel.innerOffset(frameBytes, outer, guePort: guePort),
                          case .success(let innerFrame) = Frame.parseIP(frameBytes, at: inner) else { continue }
                    // A fresh Ethernet header (to nobody: lo takes anything) and virtio_net_hdr before the inner datagram.
                    let start = batch.headroom + inner - 14
                    for k in 0..<12 { slot[start + k] = 0 }
                    slot.setU16(start + 12, innerFrame.isV6 ? EtherType.ipv6 : EtherType.ipv4)
                    VirtioHeader().write(to: slot, at: start - VirtioHeader.size)
                    batch.queue(slot: slot, start: start, length: 14 + innerFrame.ipLength, interface: loopback, via: sender)
                    sent += 1
                }
                batch.flush(via: sender)
                delivered.withLockedValue { $0 += UInt64(sent) }
            }
        }
    }
}
