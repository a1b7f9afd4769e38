import CLinux
import LVSCore

#if canImport(Glibc)
import Glibc
#endif

/// A raw IP socket for one protocol on one interface (VRRP's 112): IPv4 packets go out with the
/// header the caller built and come in with theirs read; IPv6 ones carry their source and hop
/// limit as ancillary data.
public final class RawIPSocket {
    public let fd: Int32
    public let isV6: Bool
    public let interface: Int32

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// A packet as received.
    public struct Datagram: Sendable {
        public var source: IPAddress
        public var destination: IPAddress
        /// TTL or hop limit (-1 when the kernel did not say).
        public var ttl: Int
        /// IPv4: the header's protocol (51 for AH); IPv6: the socket's.
        public var nextProtocol: Int
        /// IPv4: the IP header as received (empty for IPv6).
        public var header: [UInt8]
        public var payload: [UInt8]
    }

    public init(v6: Bool, protocolNumber: Int32, interfaceName: String, interfaceIndex: Int32) throws {
        let fd = lvs_raw_ip_socket(v6 ? AF_INET6 : AF_INET, protocolNumber, interfaceName)
        guard fd >= 0 else { throw Failure(description: "raw socket on \(interfaceName): \(String(cString: strerror(-fd)))") }
        self.fd = fd
        isV6 = v6
        interface = interfaceIndex
    }

    deinit { close(fd) }

    /// Receives nothing (a socket kept for sending only: its queue never fills).
    public func sendOnly() {
        var dropAll: [UInt64] = [SocketFilter.instruction(SocketFilter.ret, 0, 0, 0)]
        _ = lvs_attach_filter(fd, &dropAll, 1)
    }

    public func join(_ group: IPAddress) throws {
        let code = group.networkBytes.withUnsafeBufferPointer { lvs_multicast_membership(fd, isV6 ? AF_INET6 : AF_INET, $0.baseAddress, interface, 1) }
        if code != 0 { throw Failure(description: "joining \(group): \(String(cString: strerror(code)))") }
    }

    /// Sends multicast out of the socket's interface without joining anything.
    public func sendMulticast(via group: IPAddress) throws {
        let code = group.networkBytes.withUnsafeBufferPointer { lvs_multicast_membership(fd, isV6 ? AF_INET6 : AF_INET, $0.baseAddress, interface, 2) }
        if code != 0 { throw Failure(description: "multicast interface: \(String(cString: strerror(code)))") }
    }

    /// The next waiting packet; nil when none is. Malformed IPv4 headers are skipped.
    public func receive(into buffer: inout [UInt8]) throws -> Datagram? {
        var source = [UInt8](repeating: 0, count: 16)
        var destination = [UInt8](repeating: 0, count: 16)
        var ttl: Int32 = -1
        var next: Int32 = -1
        var headerLength: Int32 = 0
        while true {
            let n = buffer.withUnsafeMutableBufferPointer { b in
                lvs_raw_ip_receive(fd, isV6 ? AF_INET6 : AF_INET, b.baseAddress, Int32(b.count), &source, &destination, &ttl, &next, &headerLength)
            }
            if n == -EAGAIN || n == -EWOULDBLOCK { return nil }
            if n == -EBADMSG || n == -EINTR { continue }
            guard n >= 0 else { throw Failure(description: "receive: \(String(cString: strerror(-n)))") }
            let size = isV6 ? 16 : 4
            guard let s = IPAddress(networkBytes: source[..<size]), let d = IPAddress(networkBytes: destination[..<size]) else { continue }
            let h = Int(headerLength)
            return Datagram(source: s, destination: d, ttl: Int(ttl), nextProtocol: Int(next), header: Array(buffer[..<h]), payload: Array(buffer[h..<Int(n)]))
        }
    }

    /// IPv4: a whole packet, header included.
    public func send(packet: [UInt8], to destination: IPAddress) throws {
        let multicast = destination.networkBytes[0] >= 224 && destination.networkBytes[0] < 240
        let code = packet.withUnsafeBufferPointer { p in
            destination.networkBytes.withUnsafeBufferPointer { lvs_raw_ip4_send(fd, p.baseAddress, Int32(p.count), $0.baseAddress, multicast ? 1 : 0) }
        }
        if code != 0 { throw Failure(description: "send to \(destination): \(String(cString: strerror(code)))") }
    }

    /// IPv6: the payload, from `source`.
    public func send(payload: [UInt8], from source: IPAddress, to destination: IPAddress, hopLimit: Int32 = 255) throws {
        let code = payload.withUnsafeBufferPointer { p in
            source.networkBytes.withUnsafeBufferPointer { s in
                destination.networkBytes.withUnsafeBufferPointer { d in
                    lvs_raw_ip6_send(fd, p.baseAddress, Int32(p.count), s.baseAddress, d.baseAddress, interface, hopLimit)
                }
            }
        }
        if code != 0 { throw Failure(description: "send to \(destination): \(String(cString: strerror(code)))") }
    }
}

/// Hears the kernel's link (and address) notifications on a route-netlink socket: a descriptor
/// to wait on and a drain; what changed is then asked with `RouteNetlink`.
public final class LinkMonitor {
    public let fd: Int32

    public init(addresses: Bool = false) throws {
        let fd = lvs_netlink_monitor(addresses ? 1 : 0)
        guard fd >= 0 else { throw RawIPSocket.Failure(description: "netlink monitor: \(String(cString: strerror(-fd)))") }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Reads every waiting notification; whether there was any.
    public func drain() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16384)
        var any = false
        while buffer.withUnsafeMutableBytes({ recv(fd, $0.baseAddress, $0.count, 0) }) > 0 { any = true }
        // An overrun (ENOBUFS) also means "something changed".
        return any || errno == ENOBUFS
    }
}
