import Foundation
import LVSCore

#if canImport(Glibc)
import Glibc
#endif

/// One request on lvsd's control socket: an ipvsadm command line and, for `-R`, its standard input;
/// or a daemon action (`reload`: read the configuration file again), with an empty command line.
public struct ControlRequest: Codable, Sendable, Hashable {
    public var argv: [String]
    public var stdin: String
    public var action: String?

    public init(argv: [String], stdin: String = "", action: String? = nil) {
        self.argv = argv
        self.stdin = stdin
        self.action = action
    }

    public static let reload = ControlRequest(argv: [], action: "reload")
}

/// The control socket's framing: each message is a 4-byte big-endian length and that many bytes of
/// JSON. Anything larger than `maximumFrame` is refused (the connection is closed).
public enum ControlFraming {
    public static let maximumFrame = 16 << 20

    public static func frame(_ payload: [UInt8]) -> [UInt8] {
        let n = UInt32(payload.count)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + payload
    }

    /// The length announced by a frame header, or nil when it is over the limit.
    public static func length(_ header: some Collection<UInt8>) -> Int? {
        guard header.count >= 4 else { return nil }
        let b = Array(header.prefix(4))
        let n = Int(b[0]) << 24 | Int(b[1]) << 16 | Int(b[2]) << 8 | Int(b[3])
        return n <= maximumFrame ? n : nil
    }

    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        frame(Array(try JSONEncoder().encode(value)))
    }

    public static func decode<T: Decodable>(_ type: T.Type, from payload: [UInt8]) throws -> T {
        try JSONDecoder().decode(type, from: Data(payload))
    }
}

/// Where lvsd listens and ipvsadm connects: `LVSD_SOCKET` if set, else `/run/lvsd.sock` for root,
/// else `$XDG_RUNTIME_DIR/lvsd.sock`, else `/tmp/lvsd-<uid>.sock`.
public enum ControlSocketPath {
    public static func resolve(environment: [String: String] = ProcessInfo.processInfo.environment,
                               uid: UInt32 = getuid()) -> String {
        if let path = environment["LVSD_SOCKET"], !path.isEmpty { return path }
        if uid == 0 { return "/run/lvsd.sock" }
        if let dir = environment["XDG_RUNTIME_DIR"], !dir.isEmpty { return dir + "/lvsd.sock" }
        return "/tmp/lvsd-\(uid).sock"
    }
}

/// Blocking Unix-domain stream sockets.
public enum UnixSocket {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// A connected socket descriptor (the caller closes it), or why not (the errno text).
    public static func connect(_ path: String) -> Result<Int32, Failure> {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return .failure(Failure(description: String(cString: strerror(errno)))) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            return .failure(Failure(description: "socket path too long: \(path)"))
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            return .failure(Failure(description: why))
        }
        return .success(fd)
    }
}

/// A blocking client for the control socket (what the ipvsadm command uses).
public enum ControlClient {
    public enum Failure: Error, CustomStringConvertible {
        /// Could not reach lvsd: the errno text (`No such file or directory`, `Connection refused`).
        case unreachable(String)
        case protocolError(String)

        public var description: String {
            switch self {
            case .unreachable(let why): return why
            case .protocolError(let why): return why
            }
        }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }

    public static func send(_ request: ControlRequest, to path: String, timeoutSeconds: Int = 60) throws(Failure) -> IPVSAdmOutput {
        let fd: Int32
        switch UnixSocket.connect(path) {
        case .success(let descriptor): fd = descriptor
        case .failure(let why): throw .unreachable(why.description)
        }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let message: [UInt8]
        do {
            message = try ControlFraming.encode(request)
        } catch {
            throw .protocolError("cannot encode the request: \(error)")
        }
        var sent = 0
        while sent < message.count {
            let n = message[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw .protocolError("lvsd closed the connection: \(errnoText())") }
            sent += n
        }
        func readExactly(_ count: Int) throws(Failure) -> [UInt8] {
            var buffer = [UInt8](repeating: 0, count: count)
            var got = 0
            while got < count {
                let n = buffer[got...].withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                guard n > 0 else { throw .protocolError("lvsd closed the connection without an answer") }
                got += n
            }
            return buffer
        }
        let header = try readExactly(4)
        guard let length = ControlFraming.length(header) else { throw .protocolError("answer too large") }
        let payload = try readExactly(length)
        do {
            return try ControlFraming.decode(IPVSAdmOutput.self, from: payload)
        } catch {
            throw .protocolError("cannot decode lvsd's answer: \(error)")
        }
    }
}
