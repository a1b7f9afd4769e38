import CLinux
import Glibc
import LVSCore

/// A socket address (IPv4 or IPv6) built from an endpoint's numbers, with no name resolution and no
/// allocation, for the system calls of the TCP relay.
struct RawSocketAddress {
    /// Big enough for either family; a `sockaddr_in` when `family` is AF_INET.
    var storage = sockaddr_in6()

    init() {}

    init(_ endpoint: Endpoint) {
        if endpoint.address.isV6 {
            storage.sin6_family = sa_family_t(AF_INET6)
            storage.sin6_port = endpoint.port.bigEndian
            withUnsafeMutableBytes(of: &storage.sin6_addr) { bytes in
                bytes.storeBytes(of: endpoint.address.high.bigEndian, toByteOffset: 0, as: UInt64.self)
                bytes.storeBytes(of: endpoint.address.low.bigEndian, toByteOffset: 8, as: UInt64.self)
            }
        } else {
            withUnsafeMutableBytes(of: &storage) { bytes in
                let v4 = bytes.bindMemory(to: sockaddr_in.self).baseAddress!
                v4.pointee.sin_family = sa_family_t(AF_INET)
                v4.pointee.sin_port = endpoint.port.bigEndian
                v4.pointee.sin_addr.s_addr = endpoint.address.v4.bigEndian
            }
        }
    }

    var family: Int32 { Int32(storage.sin6_family) }

    var length: socklen_t {
        socklen_t(family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
    }

    /// The endpoint this address names; nil for a family other than IPv4 and IPv6.
    var endpoint: Endpoint? {
        switch family {
        case AF_INET:
            return withUnsafeBytes(of: storage) { bytes in
                let v4 = bytes.load(as: sockaddr_in.self)
                return Endpoint(IPAddress(v4: UInt32(bigEndian: v4.sin_addr.s_addr)), UInt16(bigEndian: v4.sin_port))
            }
        case AF_INET6:
            let (high, low) = withUnsafeBytes(of: storage.sin6_addr) { bytes in
                (UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                 UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
            }
            return Endpoint(IPAddress(v6High: high, low: low), UInt16(bigEndian: storage.sin6_port))
        default:
            return nil
        }
    }

    /// Calls `body` with the address as a `sockaddr` pointer and its length.
    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafeBytes(of: storage) { bytes in
            body(bytes.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }
}

/// The system calls around a TCP socket's life that the relay makes outside its hot loop.
enum TCPSocket {
    /// The text of an errno value, as the C library words it.
    static func reason(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// A listening socket on `endpoint`: non-blocking, TCP_NODELAY (inherited by every accepted
    /// connection). Fails with errno.
    static func listen(on endpoint: Endpoint, backlog: Int32 = 4096) -> Result<Int32, SocketError> {
        let address = RawSocketAddress(endpoint)
        let fd = lvs_tcp_socket(address.family)
        guard fd >= 0 else { return .failure(SocketError(code: lvs_errno())) }
        _ = lvs_set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        _ = lvs_set_int_option(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        if address.family == AF_INET6 { _ = lvs_set_int_option(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1) }
        let bound = address.withSockaddr { bind(fd, $0, $1) }
        guard bound == 0, Glibc.listen(fd, backlog) == 0 else {
            let code = lvs_errno()
            close(fd)
            return .failure(SocketError(code: code))
        }
        return .success(fd)
    }

    /// Starts a non-blocking connection to `endpoint`; the descriptor, or errno when the socket could
    /// not be made or the connection failed at once.
    static func connect(to endpoint: Endpoint) -> Result<Int32, SocketError> {
        let address = RawSocketAddress(endpoint)
        let fd = lvs_tcp_socket(address.family)
        guard fd >= 0 else { return .failure(SocketError(code: lvs_errno())) }
        _ = lvs_set_int_option(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        let result = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        if result != 0 {
            let code = lvs_errno()
            if code != EINPROGRESS && code != EINTR {
                close(fd)
                return .failure(SocketError(code: code))
            }
        }
        return .success(fd)
    }
}

/// A failed system call's errno, with the C library's text as its description.
struct SocketError: Error, CustomStringConvertible {
    var code: Int32
    var description: String { TCPSocket.reason(code) }
}
