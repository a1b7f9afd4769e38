// The packet fuzzer: libFuzzer drives LVSPacket's reading and rewriting (PacketFuzzing.exercise)
// VRRP's receive checks (VRRPFuzzing.exercise), the sync decoder (SyncFuzzing.exercise) and the
// fwmark path's NFLOG reading and forwarding (MarkedPacketFuzzing.exercise) with every input.
//   scripts/fuzz-packets [SECONDS]    builds it with -sanitize=fuzzer and runs it on the corpus
// Built without FUZZING (as `swift build` does), it is a regression runner: each file given (or
// every file of Tests/LVSPacketTests/Corpus) is put through the same checks.
import LVSPacket
import LVSPacketEngine
import LVSSync
import VRRP

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    PacketFuzzing.exercise(UnsafeRawBufferPointer(start: data, count: size))
    VRRPFuzzing.exercise(UnsafeRawBufferPointer(start: data, count: size))
    SyncFuzzing.exercise(UnsafeRawBufferPointer(start: data, count: size))
    MarkedPacketFuzzing.exercise(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> Int32) -> Int32

/// SwiftPM links an executable's entry point as `<target>_main`: hand the process to libFuzzer.
@_cdecl("PacketFuzzer_main")
public func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { data, size in fuzzOne(data, size) }
}
#else
#if canImport(Glibc)
import Glibc
#endif

@main
struct PacketFuzzerRegression {
    static func main() {
        var paths = Array(CommandLine.arguments.dropFirst())
        if paths.isEmpty, let dir = opendir("Tests/LVSPacketTests/Corpus") {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if !name.hasPrefix(".") { paths.append("Tests/LVSPacketTests/Corpus/" + name) }
            }
            closedir(dir)
        }
        for path in paths.sorted() {
            guard let f = fopen(path, "rb") else { continue }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while case let n = fread(&chunk, 1, chunk.count, f), n > 0 { bytes += chunk[..<n] }
            fclose(f)
            bytes.withUnsafeBytes {
                PacketFuzzing.exercise($0)
                VRRPFuzzing.exercise($0)
                SyncFuzzing.exercise($0)
                MarkedPacketFuzzing.exercise($0)
            }
        }
        print("packet fuzzer regression: \(paths.count) inputs")
    }
}
#endif
