import CLinux
import Glibc
import LVSCore
import LinuxNet

/// The system calls around a TCP socket's life that the relay makes outside its hot loop.
enum TCPSocket {
    /// The text of an errno value, as the C library words it.
    static func reason(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// A listening socket on `endpoint`: non-blocking, TCP_NODELAY (inherited by every accepted
    /// connection). Fails with errno.
    static func listen(on endpoint: Endpoint, backlog: Int32 = 4096, freeBind: Bool = false) -> Result<Int32, SocketError> {
        let address = RawSocketAddress(endpoint)
        let fd = lvs_tcp_socket(address.family)
        guard fd >= 0 else { return .failure(SocketError(code: lvs_errno())) }
        _ = lvs_set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        _ = lvs_set_int_option(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        if address.family == AF_INET6 { _ = lvs_set_int_option(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1) }
        if freeBind {
            if address.family == AF_INET6 {
                _ = lvs_set_int_option(fd, Int32(IPPROTO_IPV6), 76 /* IPV6_FREEBIND */, 1)
            } else {
                _ = lvs_set_int_option(fd, Int32(IPPROTO_IP), 15 /* IP_FREEBIND */, 1)
            }
        }
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
