import Testing
@testable import LVSPacket

/// The fuzzer's corpus (Tests/LVSPacketTests/Corpus, with every input that once found a fault)
/// and the builder's frames, through the fuzzer's checks.
@Suite struct CorpusTests {
    static let directory: String = {
        var path = #filePath
        while let last = path.last, last != "/" { path.removeLast() }
        return path + "Corpus"
    }()

    static func corpus() -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if !name.hasPrefix(".") { names.append(name) }
        }
        return names.sorted()
    }

    @Test func theCorpusIsThere() {
        #expect(CorpusTests.corpus().count >= 14)
    }

    @Test(arguments: corpus()) func corpusInputPassesTheFuzzersChecks(_ name: String) throws {
        guard let f = fopen(CorpusTests.directory + "/" + name, "rb") else {
            Issue.record("cannot open \(name)")
            return
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while case let n = fread(&chunk, 1, chunk.count, f), n > 0 { bytes += chunk[..<n] }
        fclose(f)
        bytes.withUnsafeBytes { PacketFuzzing.exercise($0) }
        // And every prefix of it (truncation is the commonest fault).
        for n in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 64)) {
            Array(bytes[..<n]).withUnsafeBytes { PacketFuzzing.exercise($0) }
        }
    }

    @Test(arguments: RewriteTests.builders) func builtFramesPassTheFuzzersChecks(_ b: PacketBuilder) {
        b.frame().withUnsafeBytes { PacketFuzzing.exercise($0) }
    }
}

#if canImport(Glibc)
import Glibc
#endif
