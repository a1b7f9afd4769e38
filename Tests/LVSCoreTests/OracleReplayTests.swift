import Foundation
import Testing
@testable import LVSCore

/// Replays what the real kernel did (Oracle/golden/*.txt, captured with Oracle/run-oracle.sh in a VM
/// running Linux 6.1's IPVS and ipvsadm 1.31) against LVSCore: every ipvsadm command goes through our
/// parser and table, every connection through our connection logic, and each must reach the real
/// server the kernel's did; listings must show the kernel's connection counts.
@Suite struct OracleReplayTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Oracle/golden")

    /// One golden file per scenario script in Oracle/scenarios.
    static var goldenNames: [String] {
        let scenarios = directory.deletingLastPathComponent().appendingPathComponent("scenarios")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: scenarios.path)) ?? []
        return files.filter { $0.hasSuffix(".sh") }.map { String($0.dropLast(3)) }.sorted()
    }

    struct Replay {
        var ipvs = IPVS()
        let parser = IPVSAdmParser()
        var now: Int64 = 1_000_000_000
        var nextPort: UInt16 = 30000
        var scenario = ""
        var mismatches: [String] = []
        var connections = 0
        var listedServers = 0
        /// `ipvsadm -Lnc` rows the kernel printed: pro, expire, state, source, virtual, destination.
        var kernelEntries: [[String]] = []

        /// Persistence templates must match the kernel's exactly (their client port is 0, so nothing
        /// about them depends on the ephemeral ports the kernel's clients used).
        mutating func compareTemplates() {
            let theirs = Set(kernelEntries.filter { $0.count == 6 && $0[3].hasSuffix(":0") }
                .map { "\($0[0]) \($0[2]) \($0[3]) \($0[4]) \($0[5])" })
            guard !theirs.isEmpty else { return }
            let listed = Set(theirs.map { $0.split(separator: " ")[3] })
            let ours = Set(ipvs.connectionSnapshots(now: now).filter { $0.isTemplate && listed.contains(Substring("\($0.virtual)")) }
                .map { "\($0.protocolName) \($0.stateName) \($0.client) \($0.virtual) \($0.destination)" })
            if ours != theirs {
                mismatches.append("templates: kernel \(theirs.sorted()), LVSCore \(ours.sorted())")
            }
        }

        mutating func run(_ text: String) {
            for line in text.split(separator: "\n").map(String.init) {
                if line.hasPrefix("# scenario: ") {
                    scenario = String(line.dropFirst(12))
                } else if line.hasPrefix("cmd: ") {
                    command(String(line.dropFirst(5)))
                } else if line.hasPrefix("conn: ") {
                    connection(line.dropFirst(6).split(separator: " ").map(String.init))
                } else if line.hasPrefix("list: ") {
                    listing(String(line.dropFirst(6)))
                } else if line.hasPrefix("conns: ") {
                    kernelEntries.append(line.dropFirst(7).split(separator: " ").map(String.init))
                }
            }
        }

        mutating func command(_ args: String) {
            do {
                try ipvs.apply(try parser.parse(args.split(separator: " ").map(String.init)))
            } catch {
                mismatches.append("[\(scenario)] ipvsadm \(args): \(error)")
            }
        }

        mutating func connection(_ f: [String]) {
            // MODE SRC SPORT VIP:PORT rsN
            guard f.count == 5 else { return }
            connections += 1
            now += 100_000_000
            var port = UInt16(f[2]) ?? 0
            if port == 0 {
                port = nextPort
                nextPort += 1
            }
            let client = Endpoint(IPAddress(f[1])!, port)
            let vip = ep(f[3])
            let expected = f[4] == "-" ? nil : "172.16.0.\(f[4].dropFirst(2))"
            let reached: Endpoint?
            if f[0] == "close" {
                reached = connectAndClose(&ipvs, from: client, to: vip, now: now)
            } else {
                reached = open(&ipvs, from: client, to: vip, now: now)
                if let server = reached {
                    _ = ipvs.outbound(PacketSummary(protocolNumber: 6, source: server.address, sourcePort: server.port,
                                                    destination: client.address, destinationPort: client.port,
                                                    tcpFlags: [.syn, .ack], length: 60), now: now)
                    _ = ipvs.inbound(.tcp(from: client, to: vip, flags: .ack), now: now)
                }
            }
            let got = reached.map { "\($0.address)" }
            if got != expected {
                mismatches.append("[\(scenario)] connection #\(connections) from \(client) to \(vip): kernel \(expected ?? "none"), LVSCore \(got ?? "none")")
            }
        }

        var listedService: VirtualService.Key?
        var persistentFormat = false

        mutating func listing(_ line: String) {
            let words = line.split(separator: " ").map(String.init)
            if line.hasPrefix("Prot ") {
                persistentFormat = line.contains("PersistConn")
                return
            }
            if words.first == "TCP", words.count > 1 {
                listedService = tcp(words[1])
                return
            }
            guard words.first == "->", words.count >= 5, let key = listedService,
                  let server = ipvs.serviceSnapshot(key)?.servers.first(where: { "\($0.config.endpoint)" == words[1] })
            else { return }
            listedServers += 1
            let ours: [String]
            let theirs: [String]
            if persistentFormat {
                ours = ["\(server.config.weight)", "\(server.persistentConnections)", "\(server.activeConnections)",
                        "\(server.inactiveConnections)"]
                theirs = Array(words[2...5])
            } else {
                ours = [server.config.forwarding.listingName, "\(server.config.weight)", "\(server.activeConnections)",
                        "\(server.inactiveConnections)"]
                theirs = Array(words[2...5])
            }
            if ours != theirs {
                mismatches.append("[\(scenario)] \(words[1]): kernel lists \(theirs), LVSCore has \(ours)")
            }
        }
    }

    @Test(arguments: goldenNames)
    func kernelDecisionsAreReproduced(_ name: String) throws {
        let text = try String(contentsOf: OracleReplayTests.directory.appendingPathComponent("\(name).txt"), encoding: .utf8)
        var replay = Replay()
        replay.run(text)
        replay.compareTemplates()
        #expect(replay.connections > 0, "no connections recorded in \(name)")
        for m in replay.mismatches { Issue.record(Comment(rawValue: m)) }
    }

    @Test func timeoutsAndDefaultPersistenceMatchTheKernel() throws {
        let text = try String(contentsOf: OracleReplayTests.directory.appendingPathComponent("persistence.txt"), encoding: .utf8)
        let out = text.split(separator: "\n").filter { $0.hasPrefix("out: ") }.map { String($0.dropFirst(5)) }
        try #require(out.count == 3)
        var t = IPVS()
        func listed(_ t: IPVS) -> String {
            let v = t.timeouts.listed
            return "Timeout (tcp tcpfin udp): \(v.tcp) \(v.tcpFin) \(v.udp)"
        }
        #expect(listed(t) == out[0])
        try t.apply(try IPVSAdmParser().parse(["--set", "100", "20", "50"]))
        #expect(listed(t) == out[1])
        try t.apply(try IPVSAdmParser().parse(["-A", "-t", "10.9.9.9:80", "-p"]))
        #expect(SaveFormat.serviceLine(t.serviceSnapshots[0].config) == out[2])
    }

    @Test func goldenFilesArePresent() {
        #expect(OracleReplayTests.goldenNames.count >= 4)
    }
}
