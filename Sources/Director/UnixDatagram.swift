#if canImport(Glibc)
import Glibc
#endif

/// One datagram to a Unix socket by path (`@name`: an abstract socket), what sd_notify and
/// syslog's /dev/log take. Failures are returned, never thrown: a log or a notification that
/// cannot be delivered must not stop lvsd.
enum UnixDatagram {
    @discardableResult
    static func send(_ message: [UInt8], to path: String) -> Bool {
        var bytes = Array(path.utf8)
        guard !bytes.isEmpty else { return false }
        if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes[0] == 0 ? 0 : 1))
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let sent = withUnsafePointer(to: &address) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT), sa, length) }
            }
        }
        return sent == message.count
    }
}
