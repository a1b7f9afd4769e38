import CLinux
import LinuxNet
import LVSCore
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// Runs a `VRRPRouter` on the wire, on a thread of its own: raw protocol-112 sockets per
/// interface (multicast joined, or unicast), the virtual addresses and routes through rtnetlink,
/// gratuitous ARPs and unsolicited NAs through AF_PACKET, interface state from netlink
/// notifications, tracked files read each second. Script results come in through `post`;
/// transitions, group changes and log lines go out through the handler.
public final class VRRPHost: @unchecked Sendable {
    // @unchecked Sendable: the router, the sockets and the netlink socket belong to the VRRP
    // thread alone; other threads touch only `inbox`, `published` and `finished` (locked) and
    // the wake-up descriptor.

    /// A virtual_routes entry.
    public struct Route: Sendable, Hashable {
        public var destination: IPAddress?
        public var prefixLength: Int
        public var isV6: Bool
        public var gateway: IPAddress?
        public var device: String?
        public var source: IPAddress?
        public var metric: UInt32?
        public var table: UInt32?
        /// rtnetlink numbers: 0 universe, 253 link, 254 host.
        public var scope: UInt8
        /// 1 unicast, 6 blackhole, 7 unreachable, 8 prohibit.
        public var type: UInt8

        public init(destination: IPAddress?, prefixLength: Int, isV6: Bool, gateway: IPAddress? = nil, device: String? = nil,
                    source: IPAddress? = nil, metric: UInt32? = nil, table: UInt32? = nil, scope: UInt8 = 0, type: UInt8 = 1) {
            self.destination = destination
            self.prefixLength = prefixLength
            self.isV6 = isV6
            self.gateway = gateway
            self.device = device
            self.source = source
            self.metric = metric
            self.table = table
            self.scope = scope
            self.type = type
        }
    }

    public struct InstanceSetup: Sendable {
        /// `sourceAddress` is taken as given unless `resolveSource` (then it is the interface's
        /// first IPv4 address, or its link-local IPv6 one).
        public var settings: VRRPInstance.Settings
        public var resolveSource: Bool
        public var routes: [Route]

        public init(settings: VRRPInstance.Settings, resolveSource: Bool, routes: [Route] = []) {
            self.settings = settings
            self.resolveSource = resolveSource
            self.routes = routes
        }
    }

    public enum Event: Sendable {
        case transition(instance: String, from: VRRPStateMachine.State, to: VRRPStateMachine.State, priority: UInt8)
        case group(name: String, to: VRRPStateMachine.State)
        case log(VRRPLogLevel, String)
    }

    /// One instance as `lvsd status` shows it.
    public struct Status: Sendable, Hashable, Codable {
        public var name: String
        public var interface: String
        public var virtualRouterID: Int
        public var version: Int
        public var family: String
        public var state: String
        public var priority: Int
        public var configuredPriority: Int
        public var master: String?
        public var advertisementInterval: Double
        public var addresses: [String]
        public var group: String?
        public var transitions: Int
        public var statistics: VRRPInstance.Statistics
        /// Adverts the checks dropped, all reasons together.
        public var dropped: Int
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    private var router: VRRPRouter
    private let routes: [[Route]]
    private let groupNames: [Int: String]
    private let filePaths: [String: String]
    private let handler: @Sendable (Event) -> Void
    private let netlink: RouteNetlink
    private let monitor: LinkMonitor?
    private let frames: PacketSocket?
    /// One socket per interface, family and protocol (112, or 51 for AH-authenticated adverts).
    private struct SocketKey: Hashable {
        var interface: String
        var v6: Bool
        var ah: Bool

        init(_ s: VRRPInstance.Settings) {
            interface = s.interface
            v6 = s.isV6
            ah = VRRPHost.usesAH(s)
        }

        var protocolNumber: Int32 { ah ? 51 : 112 }
    }

    static func usesAH(_ s: VRRPInstance.Settings) -> Bool { !s.isV6 && s.version == 2 && s.authentication == .ah }
    private var sockets: [SocketKey: RawIPSocket] = [:]
    /// use_vmac: each such instance's macvlan and the socket its adverts leave by.
    private var vmacs: [Int: (name: String, socket: RawIPSocket?)] = [:]
    private var identification: UInt16 = 0
    private let wake: Int32
    private let inbox = NIOLockedValueBox<[VRRPRouter.Event]>([])
    private let stopping = NIOLockedValueBox(false)
    private let finished = NIOLockedValueBox(false)
    private let published = NIOLockedValueBox<[Status]>([])
    private let ownAddresses: Set<IPAddress>
    private let resuming: Set<String>
    /// Masters a reload keeps, with what their successors hold (set before `stop`).
    private let successors = NIOLockedValueBox<[String: Successor]>([:])

    /// What the new configuration's instance of the same name holds.
    public struct Successor: Sendable {
        public var addresses: Set<IPAddress>
        public var routes: [Route]
        public var virtualMACInterface: String?

        public init(addresses: Set<IPAddress>, routes: [Route], virtualMACInterface: String?) {
            self.addresses = addresses
            self.routes = routes
            self.virtualMACInterface = virtualMACInterface
        }
    }

    /// Resolves the interfaces and source addresses; opens nothing on the wire yet.
    /// `resuming`: instances that were master before a reload and start as master.
    public init(instances: [InstanceSetup], groups: [(name: String, members: [String])], scripts: [String: VRRPTracking.ScriptStatus],
                files: [String: String], resuming: Set<String> = [], handler: @escaping @Sendable (Event) -> Void) throws {
        self.resuming = resuming
        netlink = try RouteNetlink()
        var resolved: [VRRPInstance] = []
        for setup in instances {
            var s = setup.settings
            if setup.resolveSource {
                let index = lvs_interface_index(s.interface)
                let found = index > 0 ? try? netlink.addresses(on: index).map(\.address).first(where: { a in
                    s.isV6 ? a.isV6 && a.networkBytes[0] == 0xFE && a.networkBytes[1] & 0xC0 == 0x80 : !a.isV6
                }) : nil
                if let found {
                    s.sourceAddress = found
                } else {
                    handler(.log(.warning, "(\(s.name)) no \(s.isV6 ? "link-local IPv6" : "IPv4") address on \(s.interface): adverts will not be sent until it has one"))
                }
            }
            resolved.append(VRRPInstance(s))
        }
        let names = resolved.map(\.name)
        var routerGroups: [VRRPRouter.Group] = []
        var groupNames: [Int: String] = [:]
        for (g, group) in groups.enumerated() {
            routerGroups.append(.init(name: group.name, members: group.members.compactMap { names.firstIndex(of: $0) }))
            groupNames[g] = group.name
        }
        router = VRRPRouter(instances: resolved, groups: routerGroups, scripts: scripts)
        routes = instances.map(\.routes)
        self.groupNames = groupNames
        filePaths = files
        self.handler = handler
        ownAddresses = Set(resolved.map(\.settings.sourceAddress))
        monitor = try? LinkMonitor()
        frames = try? PacketSocket()
        wake = lvs_eventfd()
        guard wake >= 0 else { throw Failure(description: "eventfd: \(String(cString: strerror(errno)))") }
    }

    deinit { close(wake) }

    public var status: [Status] { published.withLockedValue { $0 } }

    /// Starts the VRRP thread: sockets open, the instances start.
    public func start() {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { raw in
            let host = Unmanaged<VRRPHost>.fromOpaque(raw!).takeRetainedValue()
            host.run()
            return nil
        }, context)
        precondition(created == 0, "cannot start the VRRP thread")
        pthread_detach(thread)
    }

    /// An event from another thread (a vrrp_script's result).
    public func post(_ event: VRRPRouter.Event) {
        inbox.withLockedValue { $0.append(event) }
        lvs_eventfd_signal(wake)
    }

    /// Masters send priority 0 and give their addresses up, except those a reload keeps
    /// (`keeping`): they leave silently and give up only what their successors do not hold.
    /// Returns when done (two seconds at most).
    public func stop(keeping: [String: Successor] = [:]) {
        successors.withLockedValue { $0 = keeping }
        stopping.withLockedValue { $0 = true }
        lvs_eventfd_signal(wake)
        for _ in 0..<400 where !finished.withLockedValue({ $0 }) { usleep(5000) }
    }

    // MARK: The thread

    static func now() -> Int64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec)
    }

    private func run() {
        lvs_name_thread("lvsd-vrrp")
        defer { finished.withLockedValue { $0 = true } }
        createVirtualMACs()
        openSockets()
        var links: [String: Bool] = [:]
        refreshLinks(&links, at: Self.now())
        var nextFiles: Int64 = 0
        execute(router.handle(.start(resuming: resuming), at: Self.now()))
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !stopping.withLockedValue({ $0 }) {
            let now = Self.now()
            if now >= nextFiles {
                readFiles(at: now)
                nextFiles = now + 1_000_000_000
            }
            let deadline = min(router.nextDeadline ?? .max, nextFiles)
            let waitMs = Int32(max(0, min(1000, (deadline - Self.now() + 999_999) / 1_000_000)))
            var fds = [pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
            let keys = Array(sockets.keys)
            for k in keys { fds.append(pollfd(fd: sockets[k]!.fd, events: Int16(POLLIN), revents: 0)) }
            if let monitor { fds.append(pollfd(fd: monitor.fd, events: Int16(POLLIN), revents: 0)) }
            _ = poll(&fds, nfds_t(fds.count), waitMs)
            if fds[0].revents != 0 {
                lvs_eventfd_drain(wake)
                let events = inbox.withLockedValue { e -> [VRRPRouter.Event] in defer { e = [] }; return e }
                for e in events { execute(router.handle(e, at: Self.now())) }
            }
            for (i, k) in keys.enumerated() where fds[i + 1].revents != 0 {
                receive(on: k, into: &buffer)
            }
            if let monitor, fds.last!.revents != 0, monitor.drain() {
                refreshLinks(&links, at: Self.now())
                openSockets()
            }
            execute(router.handle(.tick, at: Self.now()))
            publish()
        }
        let keeping = successors.withLockedValue { $0 }
        let kept = Set(router.instances.enumerated().filter { keeping[$0.element.name] != nil && $0.element.state == .master }.map(\.offset))
        execute(router.handle(.shutdown(keeping: Set(keeping.keys)), at: Self.now()))
        for i in kept {
            let s = router.instances[i].settings
            let next = keeping[s.name]!
            for r in routes[i] where !next.routes.contains(r) { setRoute(r, of: s, delete: true) }
            for a in s.addresses where !next.addresses.contains(a.address) || next.virtualMACInterface != s.virtualMACInterface {
                setAddress(a, of: s, delete: true)
            }
        }
        publish()
        for (i, vmac) in vmacs where !(kept.contains(i) && keeping[router.instances[i].name]?.virtualMACInterface == vmac.name) {
            let index = lvs_interface_index(vmac.name)
            if index > 0 { try? netlink.deleteLink(index) }
        }
    }

    /// use_vmac (keepalived's vrrp_vmac.c): a private-mode macvlan with the virtual router MAC on
    /// the instance's interface; the base interface stops answering ARP for addresses it does not
    /// hold itself (arp_ignore 1, arp_filter 1), so the VIPs are answered with the virtual MAC only.
    /// Two routers share the virtual MAC: the macvlan makes no IPv6 link-local of its own (that
    /// one would fail DAD against the other router's).
    private func createVirtualMACs() {
        for (i, instance) in router.instances.enumerated() {
            let s = instance.settings
            guard let name = s.virtualMACInterface else { continue }
            let base = lvs_interface_index(s.interface)
            guard base > 0 else {
                handler(.log(.error, "(\(s.name)) cannot create \(name): no interface \(s.interface)"))
                continue
            }
            do {
                let index = try netlink.createMacvlan(named: name, on: base, mac: VRRPFrames.virtualMAC(vrid: s.virtualRouterID, v6: s.isV6))
                // arp_announce 2: the base's own ARP requests name its own address, never a VIP it
                // would otherwise tie to its own MAC in its neighbours' caches.
                for (device, key, value) in [(s.interface, "arp_ignore", "1"), (s.interface, "arp_filter", "1"), (s.interface, "arp_announce", "2"),
                                             (name, "arp_ignore", "1")] {
                    Sysctl.write(interface: device, family: "ipv4", key, value)
                }
                let socket = try RawIPSocket(v6: s.isV6, protocolNumber: SocketKey(s).protocolNumber, interfaceName: name, interfaceIndex: index)
                socket.sendOnly()
                // Sending only, and joining nothing: a backup's macvlan must never speak, or the
                // switches would learn the virtual MAC at the backup's port.
                if s.unicastPeers.isEmpty, let d = s.destinations.first { try socket.sendMulticast(via: d) }
                vmacs[i] = (name, socket)
                handler(.log(.info, "(\(s.name)) \(name) added on \(s.interface) with \(VRRPFrames.virtualMAC(vrid: s.virtualRouterID, v6: s.isV6).map { String($0, radix: 16) }.joined(separator: ":"))"))
            } catch {
                handler(.log(.error, "(\(s.name)) cannot create \(name) on \(s.interface): \(error)"))
                vmacs[i] = (name, nil)
            }
        }
    }

    private func receive(on key: SocketKey, into buffer: inout [UInt8]) {
        guard let socket = sockets[key] else { return }
        // Bounded: a flood cannot hold the thread past its timers.
        for _ in 0..<256 {
            guard let d = try? socket.receive(into: &buffer) else { return }
            if ownAddresses.contains(d.source) { continue }
            var packet = VRRPInstance.Received(source: d.source, destination: d.destination, ttl: UInt8(clamping: max(0, d.ttl)), bytes: d.payload)
            if d.nextProtocol == 51 {
                // AH: the header before the message, and the IP header its digest covers.
                let split = min(d.payload.count, VRRPAuthenticationHeader.length)
                packet.authenticationHeader = Array(d.payload[..<split])
                packet.ipHeader = d.header
                packet.bytes = Array(d.payload[split...])
            }
            execute(router.handle(.received(interface: key.interface, packet), at: Self.now()))
        }
    }

    /// One socket per interface and family the instances use (again after a link change, for
    /// interfaces that were missing).
    private func openSockets() {
        for instance in router.instances {
            let s = instance.settings
            let key = SocketKey(s)
            guard sockets[key] == nil else { continue }
            let index = lvs_interface_index(s.interface)
            guard index > 0 else { continue }
            do {
                let socket = try RawIPSocket(v6: s.isV6, protocolNumber: key.protocolNumber, interfaceName: s.interface, interfaceIndex: index)
                // Each group once per socket, however many instances share it.
                var groups = Set<IPAddress>()
                for instance in router.instances where SocketKey(instance.settings) == key && instance.settings.unicastPeers.isEmpty {
                    groups.formUnion(instance.settings.destinations)
                }
                for g in groups.sorted(by: { $0.description < $1.description }) { try socket.join(g) }
                sockets[key] = socket
            } catch {
                handler(.log(.error, "(\(s.name)) cannot open the VRRP socket on \(s.interface): \(error)"))
            }
        }
    }

    /// Every interface an instance uses or tracks: up and running, or not (missing is down).
    private func refreshLinks(_ links: inout [String: Bool], at now: Int64) {
        var names = Set<String>()
        for instance in router.instances {
            names.insert(instance.settings.interface)
            names.formUnion(instance.settings.trackedInterfaces.keys)
        }
        for name in names.sorted() {
            let index = lvs_interface_index(name)
            let link = index > 0 ? try? netlink.link(index) : nil
            let up = link.map { $0.isUp && $0.isRunning } ?? false
            if links[name] != up {
                links[name] = up
                execute(router.handle(.interface(name: name, up: up), at: now))
            }
        }
    }

    /// track_file: the first number in the file (keepalived reads it with strtol); anything else is 0.
    private func readFiles(at now: Int64) {
        for (name, path) in filePaths.sorted(by: { $0.key < $1.key }) {
            execute(router.handle(.file(name: name, value: Self.fileValue(path)), at: now))
        }
    }

    static func fileValue(_ path: String) -> Int64 {
        guard let f = fopen(path, "r") else { return 0 }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 64)
        guard fgets(&line, 64, f) != nil else { return 0 }
        return Int64(strtol(line, nil, 0))
    }

    // MARK: Effects

    private func execute(_ effects: [VRRPRouter.Effect]) {
        for effect in effects {
            switch effect {
            case .log(let level, let message):
                handler(.log(level, message))
            case .group(let g, let to):
                handler(.group(name: groupNames[g] ?? "?", to: to))
            case .instance(let i, let e):
                perform(e, for: i)
            }
        }
    }

    private func perform(_ effect: VRRPInstance.Effect, for i: Int) {
        let instance = router.instances[i]
        let s = instance.settings
        switch effect {
        case .log(let level, let message):
            handler(.log(level, message))
        case .transition(let from, let to):
            // Starting as backup: addresses left behind by an earlier run go (keepalived does the same).
            if from == .initialize, to != .master {
                for a in s.addresses { setAddress(a, of: s, delete: true) }
            }
            handler(.transition(instance: s.name, from: from, to: to, priority: instance.machine.priority))
        case .send(let advert, let source, let destinations, let sequence):
            guard let socket = vmacs[i]?.socket ?? sockets[SocketKey(s)], source != IPAddress.anyV4, source != IPAddress.anyV6 else { return }
            identification = identification == .max ? 1 : identification + 1
            for d in destinations {
                let message = advert.encode(source: source, destination: d)
                do {
                    if s.isV6 {
                        try socket.send(payload: message, from: source, to: d)
                    } else if Self.usesAH(s) {
                        try socket.send(packet: VRRPAuthenticationHeader.seal(message, source: source, destination: d, identification: identification,
                                                                              sequence: sequence, key: s.authenticationKey,
                                                                              unicast: !s.unicastPeers.isEmpty), to: d)
                    } else {
                        try socket.send(packet: VRRPFrames.ipv4Packet(message, source: source, destination: d, identification: identification), to: d)
                    }
                } catch {
                    handler(.log(.debug, "(\(s.name)) \(error)"))
                }
            }
        case .takeAddresses:
            for a in s.addresses { setAddress(a, of: s, delete: false) }
            for r in routes[i] { setRoute(r, of: s, delete: false) }
        case .releaseAddresses:
            for r in routes[i] { setRoute(r, of: s, delete: true) }
            for a in s.addresses { setAddress(a, of: s, delete: true) }
        case .announce(let count):
            announce(s, rounds: count)
        }
    }

    /// Where an address goes: its own `dev`, else the instance's macvlan, else its interface.
    static func device(_ a: VRRPInstance.Address, of s: VRRPInstance.Settings) -> String {
        a.device ?? s.virtualMACInterface ?? s.interface
    }

    private func setAddress(_ a: VRRPInstance.Address, of s: VRRPInstance.Settings, delete: Bool) {
        let device = Self.device(a, of: s)
        let index = lvs_interface_index(device)
        guard index > 0 else {
            handler(.log(.error, "(\(s.name)) cannot \(delete ? "remove" : "add") \(a.address): no interface \(device)"))
            return
        }
        do {
            try netlink.setAddress(a.address, prefix: Int(a.prefixLength), on: index, label: a.label, scope: Self.scope(a.scope),
                                   broadcast: a.broadcast, noDAD: a.address.isV6, delete: delete)
        } catch {
            // Removing what is not there (a backup at start) is not worth a word.
            if !delete { handler(.log(.error, "(\(s.name)) cannot add \(a.address)/\(a.prefixLength) on \(device): \(error)")) }
        }
    }

    private func setRoute(_ r: Route, of s: VRRPInstance.Settings, delete: Bool) {
        // Without a gateway the route is on the instance's interface unless it names another.
        let index = (r.device ?? (r.gateway == nil && r.type == 1 ? s.interface : nil)).map { lvs_interface_index($0) }
        do {
            try netlink.setRoute(r.destination, prefix: r.prefixLength, v6: r.isV6, gateway: r.gateway, interface: index.flatMap { $0 > 0 ? $0 : nil },
                                 source: r.source, metric: r.metric, table: r.table, scope: r.scope, type: r.type, delete: delete)
        } catch {
            if !delete { handler(.log(.error, "(\(s.name)) cannot add route \(r.destination.map { "\($0)/\(r.prefixLength)" } ?? "default"): \(error)")) }
        }
    }

    /// keepalived's scope names (iproute2's numbers).
    public static func scope(_ name: String?) -> UInt8 {
        switch name {
        case nil, "global", "universe": return 0
        case "site": return 200
        case "link": return 253
        case "host": return 254
        case "nowhere": return 255
        case let n?: return UInt8(n) ?? 0
        }
    }

    /// `rounds` gratuitous ARPs / NAs for every address, one address after the other each round.
    private func announce(_ s: VRRPInstance.Settings, rounds: Int) {
        guard let frames, rounds > 0 else { return }
        var macs: [String: (Int32, [UInt8], Bool)] = [:]
        var batch: [[UInt8]] = []
        var interfaces: [Int32] = []
        for _ in 0..<rounds {
            for a in s.addresses {
                let device = Self.device(a, of: s)
                if macs[device] == nil {
                    let index = lvs_interface_index(device)
                    let mac = (index > 0 ? try? netlink.link(index).mac : nil) ?? []
                    macs[device] = (index, mac, Self.forwards(device))
                }
                guard let (index, mac, router) = macs[device], index > 0, mac.count == 6 else { continue }
                let frame = a.address.isV6 ? VRRPFrames.unsolicitedNeighbourAdvertisement(mac: mac, address: a.address, router: router)
                    : VRRPFrames.gratuitousARP(mac: mac, address: a.address)
                batch.append([UInt8](repeating: 0, count: Int(LVS_VNET_HEADER)) + frame)
                interfaces.append(index)
            }
        }
        var start = 0
        while start < batch.count {
            let end = min(batch.count, start + 64)
            var pointers: [UnsafeMutablePointer<UInt8>?] = []
            var lengths: [Int32] = []
            for f in batch[start..<end] {
                let p = UnsafeMutablePointer<UInt8>.allocate(capacity: f.count)
                p.initialize(from: f, count: f.count)
                pointers.append(p)
                lengths.append(Int32(f.count))
            }
            _ = frames.send(pointers, lengths: lengths, interfaces: Array(interfaces[start..<end]), count: end - start)
            for p in pointers { p?.deallocate() }
            start = end
        }
    }

    /// net.ipv6.conf.IF.forwarding (the NA's router flag).
    static func forwards(_ device: String) -> Bool {
        (Sysctl.read(interface: device, family: "ipv6", "forwarding") ?? "0") != "0"
    }

    private func publish() {
        var groupOf: [Int: String] = [:]
        for (g, group) in router.groups.enumerated() { for m in group.members { groupOf[m] = groupNames[g] } }
        let list = router.instances.enumerated().map { i, instance -> Status in
            let s = instance.settings
            return Status(name: s.name, interface: s.interface, virtualRouterID: Int(s.virtualRouterID), version: Int(s.version),
                          family: s.isV6 ? "inet6" : "inet", state: instance.state.rawValue, priority: Int(instance.machine.priority),
                          configuredPriority: Int(s.priority), master: instance.machine.masterAddress?.description,
                          advertisementInterval: Double(instance.machine.masterAdvertisementInterval) / 1e9,
                          addresses: s.addresses.map { "\($0.address)/\($0.prefixLength)" }, group: groupOf[i],
                          transitions: instance.machine.transitions, statistics: instance.statistics, dropped: instance.statistics.dropped)
        }
        published.withLockedValue { $0 = list }
    }
}
