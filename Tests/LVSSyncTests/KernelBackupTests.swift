import ControlAPI
import Foundation
import LVSCore
import Testing

@testable import LVSSync

/// The golden from the real kernel (Tests/LVSSyncTests/Oracle): a kernel IPVS backup fed the
/// messages an lvsd master sent. An lvsd backup fed the same bytes must end with the same table.
@Suite struct KernelBackupTests {
    static let oracle = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Oracle")

    static func messages() throws -> [[UInt8]] {
        let text = try String(contentsOf: oracle.appendingPathComponent("messages.hex"), encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            guard let hex = line.split(separator: " ").last else { return nil }
            var bytes: [UInt8] = []
            var i = hex.startIndex
            while i < hex.endIndex {
                let j = hex.index(i, offsetBy: 2)
                bytes.append(UInt8(hex[i..<j], radix: 16)!)
                i = j
            }
            return bytes
        }
    }

    /// The golden's section after `== title`, up to the next one.
    static func section(_ title: String) throws -> [String] {
        let text = try String(contentsOf: oracle.appendingPathComponent("kernel-backup.golden"), encoding: .utf8)
        var out: [String] = []
        var inside = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("== ") {
                inside = line == "== \(title)"
                continue
            }
            if inside { out.append(String(line)) }
        }
        while out.last == "" { out.removeLast() }
        return out
    }

    /// Connection rows without the expire column, sorted (the kernel lists in hash order).
    static func rows(_ lines: [String]) -> [String] {
        lines.dropFirst(2).map { line in
            var words = line.split(separator: " ").map(String.init)
            words.remove(at: 1)
            return words.joined(separator: " ")
        }.sorted()
    }

    @Test func anLVSDBackupEndsWhereTheKernelDid() throws {
        let session = IPVSAdmSession()
        var backup = IPVS()
        for line in ["-A -t 10.0.0.100:80 -s rr", "-a -t 10.0.0.100:80 -r 10.0.0.21:80 -g", "-a -t 10.0.0.100:80 -r 10.0.0.22:80 -g",
                     "-A -t 192.168.0.100:80 -s rr", "-a -t 192.168.0.100:80 -r 172.16.0.2:8080 -m"] {
            #expect(session.run(["ipvsadm"] + line.split(separator: " ").map(String.init), on: &backup, now: 0).exitCode == 0)
        }
        let messages = try Self.messages()
        #expect(messages.count == 2)
        for (m, title) in zip(messages, ["-Lnc after v1", "-Lnc after v0"]) {
            let d = SyncMessage.decode(m)
            #expect(d.refused == nil && d.skipped.isEmpty)
            for e in d.entries { backup.applySynced(e, now: 0) }
            let listed = session.run(["ipvsadm", "-Lnc"], on: &backup, now: 0).stdout.split(separator: "\n").map(String.init)
            #expect(Self.rows(listed) == Self.rows(try Self.section("ipvsadm \(title)")))
        }
        let table = session.run(["ipvsadm", "-Ln"], on: &backup, now: 0).stdout
        #expect(table == (try Self.section("ipvsadm -Ln")).joined(separator: "\n") + "\n")
        let stats = session.run(["ipvsadm", "-Ln", "--stats"], on: &backup, now: 0).stdout
        #expect(stats == (try Self.section("ipvsadm -Ln --stats")).joined(separator: "\n") + "\n")
    }
}
