import CLinux
import LVSCore

#if canImport(Glibc)
import Glibc
#endif

/// A non-blocking UDP socket for multicast on one interface: a sender connected to the group, or
/// a receiver bound to it (the IPVS sync daemons' sockets).
public final class MulticastUDPSocket {
    public let fd: Int32

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// - Parameters:
    ///   - source: the sender's address (a master binds its interface's primary address).
    ///   - buffer: SO_SNDBUF or SO_RCVBUF in bytes, 0 for the system's default.
    public init(sendingTo group: IPAddress, port: UInt16, interface: String, source: IPAddress?, ttl: Int, buffer: Int = 0) throws {
        fd = try Self.open(group, port: port, interface: interface, source: source, ttl: ttl, sender: true, buffer: buffer)
    }

    public init(receivingFrom group: IPAddress, port: UInt16, interface: String, buffer: Int = 0) throws {
        fd = try Self.open(group, port: port, interface: interface, source: nil, ttl: 1, sender: false, buffer: buffer)
    }

    private static func open(_ group: IPAddress, port: UInt16, interface: String, source: IPAddress?, ttl: Int, sender: Bool,
                             buffer: Int) throws -> Int32 {
        guard group.isMulticast else { throw Failure(description: "\(group) is not a multicast group") }
        let index = lvs_interface_index(interface)
        guard index > 0 else { throw Failure(description: "no interface \(interface)") }
        let family = group.isV6 ? AF_INET6 : AF_INET
        let groupBytes = group.networkBytes
        let sourceBytes = source?.networkBytes
        let fd = groupBytes.withUnsafeBufferPointer { g in
            if let sourceBytes {
                return sourceBytes.withUnsafeBufferPointer { s in
                    lvs_sync_socket(family, g.baseAddress, Int32(port), index, interface, s.baseAddress, Int32(ttl), sender ? 1 : 0, Int32(buffer))
                }
            }
            return lvs_sync_socket(family, g.baseAddress, Int32(port), index, interface, nil, Int32(ttl), sender ? 1 : 0, Int32(buffer))
        }
        guard fd >= 0 else {
            throw Failure(description: "\(sender ? "sending to" : "receiving from") \(group):\(port) on \(interface): \(String(cString: strerror(-fd)))")
        }
        return fd
    }

    deinit { close(fd) }

    /// Sends one datagram to the group. While the socket's buffer is full it waits for room (up to
    /// `patience` milliseconds in all), as the kernel's sync thread does; false if it was refused.
    @discardableResult
    public func send(_ bytes: [UInt8], patience: Int32 = 1000) -> Bool {
        var waited: Int32 = 0
        while true {
            if bytes.withUnsafeBytes({ lvs_send(fd, $0.baseAddress, $0.count) }) == bytes.count { return true }
            let e = lvs_errno()
            guard e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS, waited < patience else { return false }
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&p, 1, 10)
            waited += 10
        }
    }

    /// Receives one datagram into `buffer`; its length, or nil when none is waiting.
    public func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        let n = lvs_recv(fd, buffer.baseAddress, buffer.count)
        return n >= 0 ? n : nil
    }
}
