import Dispatch
import LVSCore
import LVSPacket
import LinuxNet
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// How to put a frame on the wire toward an address: the interface, the Ethernet addresses and the
/// MTU, and the address the director sends from on that path (a tunnel's outer source).
public struct NextHop: Sendable, Hashable {
    public var interface: Int32
    public var destinationMAC: MACAddress
    public var sourceMAC: MACAddress
    public var mtu: Int
    public var source: IPAddress
    /// The kernel routes the address to this host.
    public var isLocal: Bool

    public init(interface: Int32, destinationMAC: MACAddress, sourceMAC: MACAddress, mtu: Int, source: IPAddress, isLocal: Bool = false) {
        self.interface = interface
        self.destinationMAC = destinationMAC
        self.sourceMAC = sourceMAC
        self.mtu = mtu
        self.source = source
        self.isLocal = isLocal
    }
}

/// The next hops of the real servers (and of any other address the packet path asks for), found
/// through the kernel's routing and neighbour tables, off the packet path: the packet thread reads
/// a snapshot, and asks for what it is missing. A neighbour the kernel does not know yet is made
/// to resolve it (a datagram to the discard port makes the kernel send ARP or neighbour
/// solicitation), and asked again until it answers.
public final class NextHops: @unchecked Sendable {
    // @unchecked Sendable: `known`, `wanted` and `pending` are only touched under `lock`; the
    // netlink socket only on `queue`.
    private let lock = NIOLock()
    private var known: [IPAddress: NextHop] = [:]
    private var wanted: Set<IPAddress> = []
    private var pending: Set<IPAddress> = []
    private var scheduled = false
    private let queue = DispatchQueue(label: "lvsd-next-hops")
    private let netlink: RouteNetlink?
    private var links: [Int32: RouteNetlink.Link] = [:]
    private var stopped = false

    public init() {
        netlink = try? RouteNetlink()
    }

    /// What the packet thread sees.
    public var snapshot: [IPAddress: NextHop] { lock.withLock { known } }

    /// Keeps these addresses resolved (the real servers of the table), forgetting others.
    public func track(_ addresses: Set<IPAddress>) {
        lock.withLock {
            wanted = addresses
            pending.formUnion(addresses.subtracting(known.keys))
            known = known.filter { addresses.contains($0.key) }
        }
        kick()
    }

    /// The packet path met an address it has no next hop for.
    public func ask(_ address: IPAddress) {
        let fresh = lock.withLock { () -> Bool in
            guard known[address] == nil, !pending.contains(address), pending.count < 4096 else { return false }
            pending.insert(address)
            return true
        }
        if fresh { kick() }
    }

    /// Resolves every tracked address now (at start and after a table change), then returns.
    public func resolveNow() {
        queue.sync { self.resolvePending() }
    }

    public func stop() {
        lock.withLock { stopped = true }
    }

    private func kick() {
        let start = lock.withLock { () -> Bool in
            guard !scheduled, !stopped else { return false }
            scheduled = true
            return true
        }
        if start { queue.async { self.round(attempt: 0) } }
    }

    /// Resolves what is pending; what is still missing is tried again shortly (faster at first),
    /// and every known next hop is refreshed every few seconds (a neighbour may change its MAC).
    private func round(attempt: Int) {
        resolvePending()
        let more = lock.withLock { () -> Bool in
            if pending.isEmpty || stopped {
                scheduled = false
                return false
            }
            return true
        }
        if more {
            queue.asyncAfter(deadline: .now() + .milliseconds(attempt < 10 ? 100 : 1000)) { self.round(attempt: attempt + 1) }
        }
    }

    private func resolvePending() {
        guard let netlink else { return }
        let addresses = lock.withLock { pending }
        for address in addresses {
            guard let hop = resolve(address, netlink) else {
                probe(address)
                continue
            }
            lock.withLock {
                pending.remove(address)
                // An address asked for by the packet path is kept only while the table is small.
                if wanted.contains(address) || known.count < 65536 { known[address] = hop }
            }
        }
    }

    /// Refreshes every known next hop (a new MAC after a real server's NIC changed, a route change).
    public func refresh() {
        queue.async {
            guard let netlink = self.netlink else { return }
            self.links = [:]
            for address in self.lock.withLock({ Array(self.known.keys) }) {
                let hop = self.resolve(address, netlink)
                self.lock.withLock {
                    if let hop { self.known[address] = hop } else { self.known[address] = nil; self.pending.insert(address) }
                }
            }
            self.kick()
        }
    }

    private func resolve(_ address: IPAddress, _ netlink: RouteNetlink) -> NextHop? {
        guard let route = try? netlink.route(to: address) else { return nil }
        let link: RouteNetlink.Link
        if let l = links[route.interface] {
            link = l
        } else {
            guard let l = try? netlink.link(route.interface) else { return nil }
            links[route.interface] = l
            link = l
        }
        let source = route.preferredSource ?? (address.isV6 ? .anyV6 : .anyV4)
        let ourMAC = MACAddress(link.mac) ?? .zero
        if route.isLocal {
            return NextHop(interface: route.interface, destinationMAC: ourMAC, sourceMAC: ourMAC, mtu: link.mtu, source: source, isLocal: true)
        }
        let neighbour = route.gateway ?? address
        guard let macBytes = try? netlink.neighbour(neighbour, on: route.interface), let mac = MACAddress(macBytes) else { return nil }
        return NextHop(interface: route.interface, destinationMAC: mac, sourceMAC: ourMAC, mtu: route.mtu ?? link.mtu, source: source)
    }

    /// Makes the kernel resolve `address` (or its gateway): one empty datagram to its discard port.
    private func probe(_ address: IPAddress) {
        let fd = socket(address.isV6 ? AF_INET6 : AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = RawSocketAddress(Endpoint(address, 9)).withSockaddr { sendto(fd, nil, 0, Int32(MSG_DONTWAIT), $0, $1) }
    }
}
