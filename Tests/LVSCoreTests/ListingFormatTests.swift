import Foundation
import Testing
@testable import LVSCore

/// ipvsadm 1.31's listings, compared byte for byte with what the real ipvsadm printed for the same
/// table (Oracle/ipvsadm/listing.sh → golden/listing.txt), and with the reference's [bin] examples
/// for the number formats the kernel capture cannot reach.
@Suite struct ListingFormatTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Oracle/ipvsadm")

    /// The table listing.sh builds, through our parser.
    static func table() throws -> IPVS {
        let script = try String(contentsOf: directory.appendingPathComponent("listing.sh"), encoding: .utf8)
        var t = IPVS()
        for line in script.split(separator: "\n") where line.hasPrefix("$I ") {
            try t.apply(try IPVSAdmParser().parse(line.dropFirst(3).split(separator: " ").map(String.init)))
        }
        return t
    }

    /// The golden output as blocks: the ipvsadm arguments and what it printed.
    static func blocks() throws -> [(args: String, output: String)] {
        let text = try String(contentsOf: directory.appendingPathComponent("golden/listing.txt"), encoding: .utf8)
        var blocks: [(String, String)] = []
        var current: String?
        var output = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("=== rc=") {
                if let c = current { blocks.append((c, output)) }
                current = nil
            } else if line.hasPrefix("=== ipvsadm ") {
                current = String(line.dropFirst(12))
                output = ""
            } else if current != nil {
                output += line + "\n"
            }
        }
        return blocks
    }

    /// Services in the order the kernel dumped them (its --nosort listing).
    static func kernelOrder(_ t: IPVS, _ blocks: [(args: String, output: String)]) -> [ServiceSnapshot] {
        let nosort = blocks.first { $0.args == "-L -n --nosort" }!.output
        let f = ListingFormat()
        var ordered: [ServiceSnapshot] = []
        for line in nosort.split(separator: "\n") where !line.hasPrefix(" ") && !line.hasPrefix("IP ") && !line.hasPrefix("Prot") {
            if let s = t.serviceSnapshots.first(where: { line.hasPrefix(f.serviceName($0.config.key) + " ") }) {
                ordered.append(s)
            }
        }
        return ordered
    }

    @Test func everyListingMatchesIpvsadm() throws {
        let t = try ListingFormatTests.table()
        let blocks = try ListingFormatTests.blocks()
        let kernel = ListingFormatTests.kernelOrder(t, blocks)
        #expect(kernel.count == t.serviceCount)
        var compared = 0
        for (args, expected) in blocks {
            guard case .list(let request) = try IPVSAdmParser().parse(args.split(separator: " ").map(String.init)),
                  request.numeric else { continue }
            let f = ListingFormat(exact: request.exact)
            let got: String
            switch request.subject {
            case .table:
                got = f.table(ListingOrder.sorted(kernel, sort: request.sort), format: request.format)
            case .service(let key):
                guard let s = t.serviceSnapshot(key) else {
                    // ipvsadm says so on stderr (captured with stdout) and exits 1.
                    #expect(expected == ServiceTableError.noSuchService(key).description + "\n", "\(args)")
                    continue
                }
                got = f.table(ListingOrder.sorted([s]), format: request.format, header: false)
            case .timeouts:
                got = ListingFormat.timeouts(t.timeouts)
            case .connections:
                got = f.connections(t.connectionSnapshots(now: 0))
            case .daemons:
                got = ""
            }
            #expect(got == expected, "ipvsadm \(args)")
            compared += 1
        }
        #expect(compared >= 12)
    }

    @Test func saveMatchesIpvsadm() throws {
        let t = try ListingFormatTests.table()
        let blocks = try ListingFormatTests.blocks()
        let kernel = ListingFormatTests.kernelOrder(t, blocks)
        let expected = blocks.first { $0.args == "-Sn" }!.output
        #expect(SaveFormat.render(ListingOrder.sorted(kernel)) == expected)
    }

    @Test func largeNumbersAbbreviateLikeIpvsadm() {
        let f = ListingFormat()
        #expect(f.largeNumber(123_456_789) == "  123456K")
        #expect(f.largeNumber(1_000_000_000) == "    1000M")
        #expect(f.largeNumber(99_999_999) == " 99999999")
        #expect(f.largeNumber(123_456_789_012) == "     123G")
        #expect(f.largeNumber(100_000_000_000_000) == "     100T")
        let x = ListingFormat(exact: true)
        #expect(x.largeNumber(123_456_789) == " 123456789")
        #expect(x.largeNumber(5) == "        5")
        #expect(x.largeNumber(100_000_000_000_000) == " 100000000000000")
    }

    @Test func statsLineFromTheReference() {
        // The reference's [bin] line: UDP 10.0.0.1:53 with 123456789 conns, 1e9 in-packets, …
        var s = ServiceSnapshot(config: VirtualService.Config(key: udp("10.0.0.1:53")), counters: Counters(), rates: Rates(), totals: Counters(), servers: [])
        s.counters = Counters(connections: 123_456_789, inPackets: 1_000_000_000, outPackets: 99_999_999,
                              inBytes: 123_456_789_012, outBytes: 100_000_000_000_000)
        #expect(ListingFormat().serviceLine(s, .stats)
            == "UDP  10.0.0.1:53                   123456K    1000M 99999999     123G     100T\n")
        #expect(ListingFormat(exact: true).serviceLine(s, .stats)
            == "UDP  10.0.0.1:53                  123456789 1000000000 99999999 123456789012 100000000000000\n")
        // A real server with 5000000000 connections shows it modulo 2^32, as ipvsadm 1.31 does.
        var r = RealServerSnapshot(config: RealServerConfig(ep("192.168.1.10:53")), activeConnections: 0, inactiveConnections: 0,
                                   persistentConnections: 0, isOverloaded: false, counters: Counters(), rates: Rates(), totals: Counters())
        r.counters.connections = 5_000_000_000
        #expect(ListingFormat().serverLine(r, of: udp("10.0.0.1:53"), .stats).hasPrefix("  -> 192.168.1.10:53               705032K"))
    }

    @Test func connectionListing() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:8080", 1)])
        _ = open(&t, from: ep("192.168.1.100:54321"), to: ep("10.0.0.100:80"), now: 0)
        let text = ListingFormat().connections(t.connectionSnapshots(now: 1 * second))
        #expect(text == """
            IPVS connection entries
            pro expire state       source             virtual            destination
            TCP 00:59  SYN_RECV    192.168.1.100:54321 10.0.0.100:80      172.16.0.2:8080

            """)
    }
}
