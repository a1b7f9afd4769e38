import Dispatch
import LVSCore
import LVSPacketEngine
import Logging

#if canImport(Glibc)
import Glibc
#endif

let realServerUsage = """
    Usage: lvsd realserver start|stop|run --vip VIP[,VIP...] [--dev DEV] [--interface IF[,IF...]]
                                          [--gue-port PORT]
      start   put each VIP on DEV (default lo) as a /32 (/128) this host answers no ARP for,
              set arp_ignore=1 and arp_announce=2 (all and DEV) and, on the interfaces the
              director's packets arrive on (--interface), rp_filter=0
      stop    undo what start did (the VIPs it added, the settings it changed)
      run     start, then take the director's tunnelled packets (IPIP, IPv6-in-IPv4, GRE, and GUE
              to --gue-port) off the --interface interfaces and deliver what is inside to this
              host (for kernels without ipip/gre/fou); on SIGTERM or SIGINT, stop

    """

func realServerCommand(_ arguments: [String]) -> Never {
    var args = arguments[...]
    guard let action = args.popFirst(), ["start", "stop", "run"].contains(action) else {
        print(realServerUsage, terminator: "")
        exit(2)
    }
    var vips: [IPAddress] = []
    var device = "lo"
    var interfaces: [String] = []
    var guePort: UInt16?
    while let arg = args.popFirst() {
        guard let value = args.popFirst() else { fail("option \(arg) needs a value") }
        switch arg {
        case "--vip":
            for text in value.split(separator: ",") {
                guard let a = IPAddress(text) else { fail("--vip: '\(text)' is not an address") }
                vips.append(a)
            }
        case "--dev": device = value
        case "--interface": interfaces += value.split(separator: ",").map(String.init)
        case "--gue-port":
            guard let p = UInt16(value), p > 0 else { fail("--gue-port takes a port number") }
            guePort = p
        default: fail("unknown option \(arg)\n\(realServerUsage)")
        }
    }
    guard !vips.isEmpty else { fail("realserver needs --vip VIP[,VIP...]") }
    let setup = RealServerSetup(vips: vips, device: device, interfaces: interfaces)
    func stopAll() {
        do {
            for line in try setup.stop() { print("lvsd realserver: \(line)") }
        } catch {
            fail("\(error)", code: 1)
        }
    }
    switch action {
    case "stop":
        stopAll()
        exit(0)
    default:
        do {
            for line in try setup.start() { print("lvsd realserver: \(line)") }
        } catch {
            fail("\(error)", code: 1)
        }
        guard action == "run" else { exit(0) }
    }
    fflush(nil)
    guard !interfaces.isEmpty else { fail("realserver run needs --interface IF[,IF...] to take tunnelled packets from") }
    let logger = Logger(label: "lvsd-realserver")
    let decapsulator: Decapsulator
    do {
        decapsulator = try Decapsulator(interfaces: interfaces, guePort: guePort, logger: logger)
    } catch {
        stopAll()
        fail("\(error)", code: 1)
    }
    decapsulator.start()
    print("lvsd realserver: delivering tunnelled packets from \(interfaces.joined(separator: ","))")
    fflush(nil)
    var sources: [DispatchSourceSignal] = []
    for sig in [SIGINT, SIGTERM] {
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .main)
        source.setEventHandler {
            decapsulator.stop()
            print("lvsd realserver: \(decapsulator.count) tunnelled packets delivered")
            stopAll()
            exit(0)
        }
        source.resume()
        sources.append(source)
    }
    withExtendedLifetime(sources) { dispatchMain() }
}
