// genhash: the MD5 digest of a page's body, for HTTP_GET/SSL_GET `digest` lines, with keepalived's
// genhash(1) options and output. Argument parsing and output only.
import Foundation
import HealthCheck
import LVSCore
import NIOCore
import NIOPosix

let usage = """
    Usage: genhash COMMAND [OPTIONS]
    Commands:
       -s server-address -p port -u url
       -S -s server-address -p port -u url
       -h

    Options:
    Either long or short options are allowed.
       --use-ssl         -S       Use SSL connection to remote server.
       --use-sni         -I       Use SNI during SSL handshake (uses virtualhost setting; see -V).
       --server          -s       Use the specified remote server address.
       --port            -p       Use the specified remote server port.
       --url             -u       Use the specified remote server url.
       --use-virtualhost -V       Use the specified virtualhost in GET query.
       --verbose         -v       Use verbose mode output.
       --help            -h       Display this short inlined help screen.
       --fwmark          -m       Use the specified FW mark.
       --protocol        -P       Use the specified HTTP protocol - '1.0', 1.0c', '1.1'.
                                    1.0c means 1.0 with 'Connection: close'
       --timeout         -t       Timeout in seconds

    """

func usageExit() -> Never {
    FileHandle.standardError.write(Data(usage.utf8))
    exit(1)
}

var server: String?
var port: UInt16?
var url: String?
var virtualhost: String?
var verbose = false
var ssl = false
var sni = false
var timeout: Double = 5
var args = Array(CommandLine.arguments.dropFirst())[...]
let withValue: [String: String] = ["-s": "server", "--server": "server", "-p": "port", "--port": "port", "-u": "url", "--url": "url",
                                   "-V": "vhost", "--use-virtualhost": "vhost", "-m": "fwmark", "--fwmark": "fwmark",
                                   "-P": "protocol", "--protocol": "protocol", "-t": "timeout", "--timeout": "timeout"]
while let arg = args.popFirst() {
    if let name = withValue[arg] {
        guard let value = args.popFirst() else { usageExit() }
        switch name {
        case "server": server = value
        case "port": guard let p = UInt16(value) else { usageExit() }; port = p
        case "url": url = value
        case "vhost": virtualhost = value
        case "timeout": guard let t = Double(value), t > 0 else { usageExit() }; timeout = t
        default: break
        }
        continue
    }
    switch arg {
    case "-v", "--verbose": verbose = true
    case "-S", "--use-ssl": ssl = true
    case "-I", "--use-sni": sni = true
    case "-h", "--help": usageExit()
    default: usageExit()
    }
}
guard let server, let port, let url, let address = IPAddress(server) else { usageExit() }

/// genhash's dump: offset, 16 bytes in hex with a `-` after the eighth, and the printable bytes.
func dump(_ bytes: [UInt8]) -> String {
    var out = ""
    var offset = 0
    while offset < bytes.count {
        let line = bytes[offset..<min(offset + 16, bytes.count)]
        var hex = ""
        var text = ""
        for i in 0..<16 {
            if i < line.count {
                let b = line[line.startIndex + i]
                hex += String(format: "%02x ", b)
                text.append(b >= 0x20 && b < 0x7F ? Character(UnicodeScalar(b)) : ".")
            } else {
                hex += "   "
                text += " "
            }
            if i == 7 { hex += "- " }
        }
        out += String(format: "%04d  ", offset) + hex + "  " + text + "\n"
        offset += 16
    }
    return out
}

func section(_ title: String) -> String {
    "-----------------------[" + title + "]-----------------------\n"
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let started = DispatchTime.now().uptimeNanoseconds
let target = Endpoint(address, port)
do {
    let (header, body) = try Prober.fetch(target, path: url, virtualhost: virtualhost,
                                         tls: ssl ? TLSOptions(serverName: sni ? virtualhost : nil) : nil, timeout: Instant(timeout * 1e9), on: group.next()).wait()
    var md5 = MD5()
    md5.update(body)
    let digest = md5.finish()
    let hex = digest.map { String(format: "%02x", $0) }.joined()
    if verbose {
        var out = section("    HTTP Header Buffer    ") + dump(header)
        out += section(" HTTP Header Ascii Buffer ") + String(decoding: header, as: UTF8.self) + "\n"
        // genhash dumps the body as it reads it, 4095 bytes at a time (the first read also held the
        // header), each read's dump counting from 0.
        // (no body, no section: genhash only heads the dump of something it read)
        if !body.isEmpty { out += section("        HTML Buffer        ") }
        var start = 0
        var size = max(0, 4095 - header.count)
        while start < body.count {
            out += dump(Array(body[start..<min(start + size, body.count)]))
            start += size
            size = 4095
        }
        out += "\n"
        out += section("    HTML hash resulting    ") + dump(digest)
        out += section(" HTML hash final resulting ") + hex + "\n\n"
        out += "Global response time for [\(url)] = \((DispatchTime.now().uptimeNanoseconds - started) / 1000) usecs\n"
        FileHandle.standardOutput.write(Data(out.utf8))
    } else {
        print(hex)
    }
} catch {
    print("Connection failed")
}
try? group.syncShutdownGracefully()
