import LVSCore

/// The PROXY protocol version 2 header (haproxy's proxy-protocol.txt §2.2) that tells a real server
/// the original client and destination of a relayed connection.
public enum ProxyProtocolV2 {
    public static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    /// The header for a connection from `source` to `destination` (same address family).
    public static func header(source: Endpoint, destination: Endpoint, protocol proto: IPProtocol) -> [UInt8] {
        let v6 = source.address.isV6 || destination.address.isV6
        var out = signature
        out.append(0x21)  // version 2, PROXY command
        let transport: UInt8 = proto == .udp ? 0x2 : 0x1
        out.append((v6 ? 0x20 : 0x10) | transport)
        let length: UInt16 = v6 ? 36 : 12
        out += [UInt8(length >> 8), UInt8(length & 0xFF)]
        func address(_ a: IPAddress) -> [UInt8] {
            if v6 {
                let g = a.isV6 ? a.groups : [0, 0, 0, 0, 0, 0xFFFF, UInt16(a.v4 >> 16), UInt16(a.v4 & 0xFFFF)]
                return g.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
            }
            let v = a.v4
            return [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
        }
        out += address(source.address) + address(destination.address)
        out += [UInt8(source.port >> 8), UInt8(source.port & 0xFF), UInt8(destination.port >> 8), UInt8(destination.port & 0xFF)]
        return out
    }
}
