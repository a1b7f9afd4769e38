import Foundation
import Testing
@testable import KeepalivedConfig

/// Mutations of the checked-in corpus (Corpus/*.conf): whatever the bytes, reading ends, within its
/// bounds, with findings rather than a crash. Deterministic (a fixed seed); FUZZ_ROUNDS runs longer.
@Suite struct FuzzTests {
    static let corpus: [String] = {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Corpus")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.sorted().compactMap { try? String(contentsOf: directory.appendingPathComponent($0), encoding: .utf8) }
    }()

    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
    }

    static let fragments = ["{", "}", "\"", "#", "!", "\\", "$X=", "${X}", "$X", "~SEQ(i, 1, 3)", "~LST(v, a)", "@lb1 ", "@^", "include ",
                            "include *.conf", "virtual_server ", "real_server ", "10.0.0.", "-", "/", "999999999999", "\n", " ", "\t",
                            "weight ", "lb_algo ", "TCP_CHECK", "url {", "\u{00}", "é"]

    static func mutate(_ text: String, _ g: inout Generator) -> String {
        var bytes = Array(text.utf8)
        for _ in 0...g.below(8) {
            switch g.below(4) {
            case 0 where !bytes.isEmpty: bytes.remove(at: g.below(bytes.count))
            case 1: bytes.insert(contentsOf: Array(fragments[g.below(fragments.count)].utf8), at: g.below(bytes.count + 1))
            case 2 where !bytes.isEmpty: bytes[g.below(bytes.count)] = UInt8(truncatingIfNeeded: g.next())
            default:
                guard bytes.count > 2 else { continue }
                let start = g.below(bytes.count), length = g.below(min(64, bytes.count - start))
                bytes.insert(contentsOf: bytes[start..<(start + length)], at: g.below(bytes.count + 1))
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func mutatedConfigurationsNeverCrashOrHang() {
        #expect(FuzzTests.corpus.count >= 8)
        let rounds = Int(ProcessInfo.processInfo.environment["FUZZ_ROUNDS"] ?? "") ?? 300
        var g = Generator(state: 0xC0FFEE)
        var options = ConfigReader.Options(configID: "lb1")
        options.maximumLines = 20_000
        for (n, original) in FuzzTests.corpus.enumerated() {
            for _ in 0..<rounds {
                let text = FuzzTests.mutate(original, &g)
                let files = InMemoryFileSystem(["/etc/k/keepalived.conf": text, "/etc/k/a.conf": text])
                let loaded = KeepalivedConfiguration.load("/etc/k/keepalived.conf", fileSystem: files, readerOptions: options)
                #expect(loaded.lines.count <= options.maximumLines, "corpus file \(n)")
                _ = TablePlan(loaded.configuration)
                _ = ConfigurationDump.text(of: loaded)
            }
        }
    }
}
