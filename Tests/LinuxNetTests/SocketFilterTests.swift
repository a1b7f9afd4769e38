import LVSCore
import Testing
@testable import LinuxNet

/// The packet socket's filter, run by a small classic-BPF interpreter over built frames.
@Suite struct SocketFilterTests {
    /// Runs the subset of classic BPF the filter uses (ldh/ld absolute, jeq, ret).
    static func run(_ program: [UInt64], on frame: [UInt8]) -> UInt32 {
        var a: UInt32 = 0
        var pc = 0
        while pc < program.count {
            let i = program[pc]
            let code = UInt16(i & 0xFFFF), jt = Int((i >> 16) & 0xFF), jf = Int((i >> 24) & 0xFF), k = UInt32(i >> 32)
            switch code {
            case 0x28:
                guard Int(k) + 2 <= frame.count else { return 0 }
                a = UInt32(frame[Int(k)]) << 8 | UInt32(frame[Int(k) + 1])
            case 0x20:
                guard Int(k) + 4 <= frame.count else { return 0 }
                a = (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(frame[Int(k) + $1]) }
            case 0x15:
                pc += a == k ? jt : jf
            case 0x06:
                return k
            default:
                Issue.record("unexpected instruction \(code)")
                return 0
            }
            pc += 1
        }
        Issue.record("fell off the end")
        return 0
    }

    static func frame(type: UInt16, source: String = "10.0.0.2", destination: String) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: 12) + [UInt8(type >> 8), UInt8(type & 0xFF)]
        f += [0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0]
        for text in [source, destination] { f += text.split(separator: ".").map { UInt8($0)! } }
        return f
    }

    @Test func onlyServicesAndNATRepliesGetThrough() {
        let p = SocketFilter.program(destinations: [IPAddress("10.9.9.9")!, IPAddress("10.9.9.10")!],
                                     sources: [IPAddress("172.16.0.2")!], acceptIPv6: false)
        #expect(Self.run(p, on: Self.frame(type: 0x0800, destination: "10.9.9.9")) > 0)
        #expect(Self.run(p, on: Self.frame(type: 0x0800, destination: "10.9.9.10")) > 0)
        #expect(Self.run(p, on: Self.frame(type: 0x0800, source: "172.16.0.2", destination: "10.0.0.2")) > 0)
        #expect(Self.run(p, on: Self.frame(type: 0x0800, source: "172.16.0.3", destination: "10.0.0.2")) == 0)
        #expect(Self.run(p, on: Self.frame(type: 0x0800, destination: "10.9.9.11")) == 0)
        #expect(Self.run(p, on: Self.frame(type: 0x0806, destination: "10.9.9.9")) == 0, "ARP")
        #expect(Self.run(p, on: Self.frame(type: 0x86DD, destination: "10.9.9.9")) == 0, "IPv6 when no IPv6 service")
        #expect(Self.run(p, on: Self.frame(type: 0x8100, destination: "10.9.9.9")) > 0, "a tagged frame is for the engine to read")
        let six = SocketFilter.program(destinations: [], sources: [], acceptIPv6: true)
        #expect(Self.run(six, on: Self.frame(type: 0x86DD, destination: "1.2.3.4")) > 0)
        #expect(Self.run(six, on: Self.frame(type: 0x0800, destination: "1.2.3.4")) == 0)
    }

    @Test func manyAddressesLetAllIPv4Through() {
        let many = (0..<200).map { IPAddress(v4: 0x0A00_0000 + UInt32($0)) }
        let p = SocketFilter.program(destinations: many, sources: [], acceptIPv6: false)
        #expect(Self.run(p, on: Self.frame(type: 0x0800, destination: "192.168.1.1")) > 0)
        #expect(Self.run(p, on: Self.frame(type: 0x0806, destination: "192.168.1.1")) == 0)
        let edge = (0..<SocketFilter.maximumAddresses).map { IPAddress(v4: 0x0A00_0000 + UInt32($0)) }
        let q = SocketFilter.program(destinations: edge, sources: [], acceptIPv6: false)
        #expect(Self.run(q, on: Self.frame(type: 0x0800, destination: "10.0.0.0")) > 0)
        #expect(Self.run(q, on: Self.frame(type: 0x0800, destination: "10.0.0.119")) > 0)
        #expect(Self.run(q, on: Self.frame(type: 0x0800, destination: "10.0.0.120")) == 0)
    }
}
