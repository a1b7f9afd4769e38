#if canImport(Glibc)
import Glibc
#endif

/// sd_notify(3) without libsystemd: under a `Type=notify` unit, lvsd says when it is ready
/// (the control socket answers and the configuration is applied), reloading, and stopping, by a
/// datagram to `$NOTIFY_SOCKET`. Without that variable every call does nothing.
public enum SystemdNotify {
    @discardableResult
    public static func send(_ state: String, environment: [String: String] = currentEnvironment()) -> Bool {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty else { return false }
        var bytes = Array(path.utf8)
        // "@name" is an abstract socket: a NUL where the path would start.
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == 0 ? 0 : 1))
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let message = Array(state.utf8)
        let sent = withUnsafePointer(to: &address) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sa, length) }
            }
        }
        return sent == message.count
    }

    public static func currentEnvironment() -> [String: String] {
        var out: [String: String] = [:]
        for key in ["NOTIFY_SOCKET"] {
            if let v = getenv(key) { out[key] = String(cString: v) }
        }
        return out
    }
}
