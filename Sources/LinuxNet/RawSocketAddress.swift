import LVSCore

#if canImport(Glibc)
import Glibc
#endif

/// A socket address (IPv4 or IPv6) built from an endpoint's numbers, with no name resolution and no
/// allocation, for system calls that take a `sockaddr` (the TCP relay's, the packet engine's).
public struct RawSocketAddress {
    /// Big enough for either family; a `sockaddr_in` when `family` is AF_INET.
    public var storage = sockaddr_in6()

    public init() {}

    public init(_ endpoint: Endpoint) {
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

    public var family: Int32 { Int32(storage.sin6_family) }

    public var length: socklen_t {
        socklen_t(family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
    }

    /// The endpoint this address names; nil for a family other than IPv4 and IPv6.
    public var endpoint: Endpoint? {
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
    public func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafeBytes(of: storage) { bytes in
            body(bytes.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }
}
