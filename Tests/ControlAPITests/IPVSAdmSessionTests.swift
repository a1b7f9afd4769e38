import ControlAPI
import Foundation
import LVSCore
import Testing

/// ipvsadm sessions checked against what the real ipvsadm 1.31 printed and returned
/// (Tests/LVSCoreTests/Oracle/ipvsadm/errors.sh → golden/errors.txt).
@Suite struct IPVSAdmSessionTests {
    static let oracle = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../LVSCoreTests/Oracle/ipvsadm").standardized

    /// The VM's interfaces: lo and a dummy d0 with MTU 9000.
    static let session = IPVSAdmSession(interfaceMTU: { ["lo": 65536, "d0": 9000, "eth0": 1500][$0] })

    func run(_ line: String, _ ipvs: inout IPVS, stdin: String = "") -> IPVSAdmOutput {
        IPVSAdmSessionTests.session.run(["ipvsadm"] + line.split(separator: " ").map(String.init), stdin: stdin, on: &ipvs, now: 0)
    }

    /// Blocks of the golden file: arguments, merged output, exit status.
    static func blocks(_ file: String = "errors") throws -> [(args: String, output: String, rc: Int32)] {
        let text = try String(contentsOf: oracle.appendingPathComponent("golden/\(file).txt"), encoding: .utf8)
        var out: [(String, String, Int32)] = []
        var current: String?
        var body = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("=== rc="), let c = current {
                out.append((c, body, Int32(line.dropFirst(7))!))
                current = nil
            } else if line.hasPrefix("=== ipvsadm ") {
                current = String(line.dropFirst(12))
                body = ""
            } else if current != nil {
                body += line + "\n"
            }
        }
        return out
    }

    /// Tests/LVSCoreTests/Oracle/ipvsadm/daemons.sh: starting, listing and stopping sync daemons.
    @Test func syncDaemonsAsTheKernelKeepsThem() throws {
        var ipvs = IPVS()
        let blocks = try IPVSAdmSessionTests.blocks("daemons")
        #expect(blocks.count == 15)
        for (args, expected, rc) in blocks {
            let r = run(args, &ipvs)
            #expect(r.stdout + r.stderr == expected, "ipvsadm \(args)")
            #expect(r.exitCode == rc, "ipvsadm \(args)")
        }
    }

    @Test func everyRefusalMatchesIpvsadm() throws {
        var ipvs = IPVS()
        _ = run("-A -t 10.0.0.1:80 -s rr", &ipvs)
        _ = run("-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m", &ipvs)
        let stdins = [
            "-R < r.txt": "-A -t 10.0.0.7:80 -s rr\n# comment\n-a -t 10.0.0.7:80 -r 10.0.0.8 -m\n-A -t 10.0.0.7:80\n",
            "-R < r2.txt": "ipvsadm -A -t 10.0.0.8:80\n-A -t 10.0.0.8:80\n-a -t 10.0.0.8:80 -r 10.0.0.9:80 -m -w 5\n",
        ]
        var compared = 0
        for (args, expected, rc) in try IPVSAdmSessionTests.blocks() {
            // Our own usage text (-h) is the known difference.
            if args == "-h" { continue }
            let r: IPVSAdmOutput
            if let input = stdins[args] {
                r = run("-R", &ipvs, stdin: input)
            } else {
                r = run(args, &ipvs)
            }
            #expect(r.stdout + r.stderr == expected, "ipvsadm \(args)")
            #expect(r.exitCode == rc, "ipvsadm \(args)")
            compared += 1
        }
        #expect(compared > 30)
        // What the kernel's table held at the end.
        #expect(run("-Sn", &ipvs).stdout == """
            -A -t 10.0.0.1:80 -s rr
            -a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1
            -A -t 10.0.0.7:80 -s rr
            -A -t 10.0.0.8:80 -s wlc
            -a -t 10.0.0.8:80 -r 10.0.0.9:80 -m -w 5

            """)
    }

    @Test func noArgumentsListsTheTable() {
        var ipvs = IPVS()
        let r = IPVSAdmSession().run(["ipvsadm"], on: &ipvs, now: 0)
        #expect(r.stdout == "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
        #expect(r.exitCode == 0)
    }

    @Test func namesComeFromHostsAndServices() {
        let names = FileNames(hostsText: "127.0.0.1 localhost\n10.0.0.1 web1 web1.example\n",
                              servicesText: "http 80/tcp www\ndomain 53/udp\n")
        var ipvs = IPVS()
        let session = IPVSAdmSession(resolver: names, names: names)
        #expect(session.run(["ipvsadm", "-A", "-t", "web1:www"], on: &ipvs, now: 0).exitCode == 0)
        #expect(session.run(["ipvsadm", "-a", "-t", "web1:http", "-r", "localhost"], on: &ipvs, now: 0).exitCode == 0)
        #expect(session.run(["ipvsadm", "-S"], on: &ipvs, now: 0).stdout
            == "-A -t web1:http -s wlc\n-a -t web1:http -r localhost:http -g -w 1\n")
        #expect(session.run(["ipvsadm", "-L"], on: &ipvs, now: 0).stdout.contains("TCP  web1:http wlc\n  -> localhost:http"))
        #expect(session.run(["ipvsadm", "-Sn"], on: &ipvs, now: 0).stdout
            == "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 127.0.0.1:80 -g -w 1\n")
    }

    @Test func jsonListingIsAnExtension() throws {
        var ipvs = IPVS()
        _ = run("-A -t 10.0.0.1:80 -s wrr", &ipvs)
        _ = run("-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -m -w 3", &ipvs)
        let r = run("-Ln --json", &ipvs)
        #expect(r.exitCode == 0)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let services = object?["services"] as? [[String: Any]]
        #expect(services?.first?["scheduler"] as? String == "wrr")
        let servers = services?.first?["servers"] as? [[String: Any]]
        #expect(servers?.first?["weight"] as? Int == 3)
        #expect(servers?.first?["forward"] as? String == "Masq")
    }
}
