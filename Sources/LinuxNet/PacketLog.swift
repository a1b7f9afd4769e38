import CLinux

#if canImport(Glibc)
import Glibc
#endif

/// nfnetlink_log (NFLOG): packets an nftables `log group N` rule copies to user space, with the
/// firewall mark, input interface and link-layer header the kernel had for them. The packet
/// engine uses it for fwmark services: the mark is set in the IP layer's prerouting hook, after
/// the frames AF_PACKET and netdev ingress see, so marked packets are taken there instead.
public final class PacketLogSocket {
    public let fd: Int32
    public let group: UInt16

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Binds `group`, copies whole packets, and has the kernel send each packet at once (queue
    /// threshold 1) instead of batching them for up to a second.
    public init(group: UInt16, receiveBuffer: Int = 4 << 20) throws {
        self.group = group
        fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), PacketLogMessage.netlinkNetfilter)
        guard fd >= 0 else { throw Failure(description: "netlink socket: \(String(cString: strerror(errno)))") }
        var size = Int32(receiveBuffer)
        if setsockopt(fd, SOL_SOCKET, 33 /* SO_RCVBUFFORCE */, &size, 4) != 0 { _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, 4) }
        // The socket is bound to a port of its own by its first send (as every netlink socket is).
        do {
            for (i, message) in PacketLogMessage.configuration(group: group).enumerated() {
                try request(message, sequence: UInt32(i + 1))
            }
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// Sends one configuration message and waits for its acknowledgement.
    private func request(_ message: [UInt8], sequence: UInt32) throws {
        var m = message
        m.withUnsafeMutableBytes { $0.storeBytes(of: sequence, toByteOffset: 8, as: UInt32.self) }
        guard m.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == m.count else {
            throw Failure(description: "NFLOG configuration: \(String(cString: strerror(errno)))")
        }
        var answer = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<200 {
            let n = answer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR {
                    usleep(5000)
                    continue
                }
                throw Failure(description: "NFLOG configuration: \(String(cString: strerror(errno)))")
            }
            let code = answer.withUnsafeBytes { PacketLogMessage.acknowledgement(UnsafeRawBufferPointer(rebasing: $0[0..<n]), sequence: sequence) }
            guard let code else { continue }
            guard code == 0 else {
                throw Failure(description: "NFLOG group \(group): \(String(cString: strerror(-code)))\(code == -EBUSY ? " (another process has it)" : "")")
            }
            return
        }
        throw Failure(description: "NFLOG configuration: no answer from the kernel")
    }

    /// Reads one datagram (several packets' messages) into `buffer`; 0 when there is none.
    public func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let n = recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
        return max(n, 0)
    }
}

/// One packet of an NFLOG message, as views into the datagram it came in.
public struct LoggedPacket {
    /// AF_INET or AF_INET6.
    public var family: UInt8
    public var mark: UInt32
    public var inputInterface: Int32
    /// The link-layer header (an Ethernet header on Ethernet, 14 bytes), empty if the kernel had none.
    public var hardwareHeader: UnsafeRawBufferPointer
    /// The IP packet.
    public var payload: UnsafeRawBufferPointer
}

/// The NFLOG wire format (nfnetlink_log.h): configuration requests and packet messages. Pure.
public enum PacketLogMessage {
    public static let netlinkNetfilter: Int32 = 12
    static let subsystem: UInt16 = 4  // NFNL_SUBSYS_ULOG
    static let packetType: UInt16 = subsystem << 8 | 0
    static let configType: UInt16 = subsystem << 8 | 1
    static let error: UInt16 = 2  // NLMSG_ERROR
    static let flagsRequestAck: UInt16 = 0x1 | 0x4

    enum Attribute {
        static let packetHeader: UInt16 = 1, mark: UInt16 = 2, inputInterface: UInt16 = 4, payload: UInt16 = 9
        static let hardwareHeader: UInt16 = 16
        static let configCommand: UInt16 = 1, configMode: UInt16 = 2, configTimeout: UInt16 = 4, configQueueThreshold: UInt16 = 5
    }

    /// Bind the group, copy whole packets, send each at once, no flush timer.
    public static func configuration(group: UInt16) -> [[UInt8]] {
        [
            config(group: group, attributes: [(Attribute.configCommand, [1])]),  // NFULNL_CFG_CMD_BIND
            config(group: group, attributes: [(Attribute.configMode, bigEndian(UInt32(0xFFFF)) + [2, 0])]),  // NFULNL_COPY_PACKET
            config(group: group, attributes: [(Attribute.configQueueThreshold, bigEndian(UInt32(1))), (Attribute.configTimeout, bigEndian(UInt32(0)))]),
        ]
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    static func config(group: UInt16, attributes: [(UInt16, [UInt8])]) -> [UInt8] {
        var body: [UInt8] = [0, 0, UInt8(group >> 8), UInt8(group & 0xFF)]  // nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id (big-endian)
        for (type, value) in attributes { body += RouteNetlink.attribute(type, value) }
        let total = 16 + body.count
        var header = [UInt8](repeating: 0, count: 16)
        header.withUnsafeMutableBytes { h in
            h.storeBytes(of: UInt32(total), toByteOffset: 0, as: UInt32.self)
            h.storeBytes(of: configType, toByteOffset: 4, as: UInt16.self)
            h.storeBytes(of: flagsRequestAck, toByteOffset: 6, as: UInt16.self)
        }
        return header + body
    }

    /// The error code of the NLMSG_ERROR answering `sequence` in `datagram` (0: an acknowledgement),
    /// or nil if there is none.
    public static func acknowledgement(_ datagram: UnsafeRawBufferPointer, sequence: UInt32) -> Int32? {
        var o = 0
        while o + 16 <= datagram.count {
            let length = Int(datagram.loadUnaligned(fromByteOffset: o, as: UInt32.self))
            guard length >= 16, o + length <= datagram.count else { return nil }
            let type = datagram.loadUnaligned(fromByteOffset: o + 4, as: UInt16.self)
            let seq = datagram.loadUnaligned(fromByteOffset: o + 8, as: UInt32.self)
            if type == error, seq == sequence, length >= 20 { return datagram.loadUnaligned(fromByteOffset: o + 16, as: Int32.self) }
            o += (length + 3) & ~3
        }
        return nil
    }

    /// Calls `each` for every packet message in `datagram`; returns how many messages were not
    /// packets or were malformed (they are skipped; nothing is read past the datagram).
    @discardableResult
    public static func packets(in datagram: UnsafeRawBufferPointer, _ each: (LoggedPacket) -> Void) -> Int {
        var skipped = 0
        var o = 0
        while o + 16 <= datagram.count {
            let length = Int(datagram.loadUnaligned(fromByteOffset: o, as: UInt32.self))
            guard length >= 16, o + length <= datagram.count else { return skipped + 1 }
            let type = datagram.loadUnaligned(fromByteOffset: o + 4, as: UInt16.self)
            defer { o += (length + 3) & ~3 }
            guard type == packetType, length >= 20 else {
                skipped += 1
                continue
            }
            var packet = LoggedPacket(family: datagram[o + 16], mark: 0, inputInterface: 0,
                                      hardwareHeader: UnsafeRawBufferPointer(rebasing: datagram[0..<0]),
                                      payload: UnsafeRawBufferPointer(rebasing: datagram[0..<0]))
            var a = o + 20
            var hasPayload = false
            while a + 4 <= o + length {
                let attributeLength = Int(datagram.loadUnaligned(fromByteOffset: a, as: UInt16.self))
                let attributeType = datagram.loadUnaligned(fromByteOffset: a + 2, as: UInt16.self) & 0x3FFF
                guard attributeLength >= 4, a + attributeLength <= o + length else { break }
                let value = UnsafeRawBufferPointer(rebasing: datagram[(a + 4)..<(a + attributeLength)])
                switch attributeType {
                case Attribute.mark where value.count >= 4: packet.mark = UInt32(bigEndian: value.loadUnaligned(as: UInt32.self))
                case Attribute.inputInterface where value.count >= 4:
                    packet.inputInterface = Int32(bitPattern: UInt32(bigEndian: value.loadUnaligned(as: UInt32.self)))
                case Attribute.hardwareHeader: packet.hardwareHeader = value
                case Attribute.payload:
                    packet.payload = value
                    hasPayload = true
                default: break
                }
                a += (attributeLength + 3) & ~3
            }
            if hasPayload { each(packet) } else { skipped += 1 }
        }
        return skipped
    }
}
