import CLinux

#if canImport(Glibc)
import Glibc
#endif

/// AF_PACKET sockets: one bound to an interface that receives every frame arriving on it (in
/// batches, into a caller's buffer), and one that sends frames out of any interface.
public final class PacketSocket {
    public let fd: Int32

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Receives on interface `index`.
    public init(receivingOn index: Int32) throws {
        let fd = lvs_packet_socket(index, 1)
        guard fd >= 0 else { throw Failure(description: "packet socket: \(String(cString: strerror(-fd)))") }
        self.fd = fd
    }

    /// Sends only.
    public init() throws {
        let fd = lvs_packet_socket(0, 0)
        guard fd >= 0 else { throw Failure(description: "packet socket: \(String(cString: strerror(-fd)))") }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Shares the interface's frames with the other sockets of fanout `group`, flow by flow.
    public func joinFanout(_ group: UInt16) throws {
        let code = lvs_packet_fanout(fd, Int32(group))
        if code != 0 { throw Failure(description: "packet fanout: \(String(cString: strerror(code)))") }
    }

    /// Flags of a received frame.
    public struct Flags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let truncated = Flags(rawValue: 1)
        /// Sent by a local process with the transport checksum left to the NIC.
        public static let checksumPartial = Flags(rawValue: 2)
        public static let outgoing = Flags(rawValue: 4)
        public static let broadcast = Flags(rawValue: 8)
        public static let otherHost = Flags(rawValue: 16)
    }

    /// Up to `count` frames into `buffer` (frame i at `i * stride + headroom`); their lengths and
    /// flags into the arrays. The number received; 0 when none is waiting.
    public func receive(into buffer: UnsafeMutableRawPointer, stride: Int, headroom: Int, count: Int,
                        lengths: UnsafeMutablePointer<Int32>, flags: UnsafeMutablePointer<UInt32>) throws -> Int {
        let n = lvs_packet_receive(fd, buffer.assumingMemoryBound(to: UInt8.self), Int32(stride), Int32(headroom), Int32(count), lengths, flags)
        guard n >= 0 else { throw Failure(description: "packet receive: \(String(cString: strerror(-n)))") }
        return Int(n)
    }

    /// Sends frames (starting at `frames[i]`, `lengths[i]` bytes, out of `interfaces[i]`); returns
    /// how many the kernel refused.
    public func send(_ frames: UnsafePointer<UnsafeMutablePointer<UInt8>?>, lengths: UnsafePointer<Int32>, interfaces: UnsafePointer<Int32>, count: Int) -> Int {
        var failures: Int32 = 0
        _ = lvs_packet_send(fd, frames, lengths, interfaces, Int32(count), &failures)
        return Int(failures)
    }
}
