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
        return UnixDatagram.send(Array(state.utf8), to: path)
    }

    public static func currentEnvironment() -> [String: String] {
        guard let v = getenv("NOTIFY_SOCKET") else { return [:] }
        return ["NOTIFY_SOCKET": String(cString: v)]
    }
}
