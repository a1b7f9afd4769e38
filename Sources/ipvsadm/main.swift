// ipvsadm for SwiftLVS: sends the command line to lvsd over its control socket and prints the answer.
import ControlAPI
import Foundation

#if canImport(Glibc)
import Glibc
#endif

let argv = CommandLine.arguments
let path = ControlSocketPath.resolve()
// -R reads the rules from standard input, wherever it stands among bundled short options.
let restoring = argv.dropFirst().contains { $0 == "-R" || $0 == "--restore" || ($0.hasPrefix("-") && !$0.hasPrefix("--") && $0.contains("R")) }
var input = ""
if restoring, let data = try? FileHandle.standardInput.readToEnd() {
    input = String(decoding: data, as: UTF8.self)
}

do {
    let output = try ControlClient.send(ControlRequest(argv: argv, stdin: input), to: path)
    FileHandle.standardOutput.write(Data(output.stdout.utf8))
    FileHandle.standardError.write(Data(output.stderr.utf8))
    exit(output.exitCode)
} catch .unreachable(let why) {
    // As ipvsadm reports a kernel without IPVS: nothing can be done without the director.
    FileHandle.standardError.write(Data("Can't initialize ipvs: \(why)\nAre you sure that lvsd is running? (control socket \(path))\n".utf8))
    exit(2)
} catch {
    FileHandle.standardError.write(Data("ipvsadm: \(error)\n".utf8))
    exit(2)
}
