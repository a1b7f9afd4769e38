// Connection sync at a given rate: a master table gets new DR connections (SYN, ACK, ACK: the
// third packet makes each one due for sync) at --rate per second for --seconds; its sync daemon
// sends them over --master-if, the backup daemon on --backup-if applies them to a second table.
// Prints what was queued, sent, received and installed, the loss, and the CPU the two daemon
// threads and the generator used. Run by scripts/bench-sync (which makes the veth pair); asserts
// no timing.
import Foundation
import LVSCore
import LVSState
import LVSSync
import Logging
import NIOCore
import NIOPosix

let arguments = CommandLine.arguments
func option(_ name: String) -> String? { arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil } }
let rate = option("--rate").flatMap(Int.init) ?? 100_000
let seconds = option("--seconds").flatMap(Double.init) ?? 5
let masterInterface = option("--master-if") ?? "sync0"
let backupInterface = option("--backup-if") ?? "sync1"
let version = option("--version").flatMap(UInt8.init) ?? 1

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let logger = Logger(label: "sync-bench")
let vip = Endpoint(IPAddress("10.0.0.100")!, 80)
let key = VirtualService.Key.address(.tcp, vip.address, vip.port)

func table() -> LoadBalancerState {
    var settings = IPVSSettings()
    settings.maxConnections = max(1 << 20, Int(Double(rate) * seconds * 1.2))
    settings.sync.version = version
    var ipvs = IPVS(settings: settings, now: Int64(NIODeadline.now().uptimeNanoseconds))
    try! ipvs.addService(VirtualService.Config(key: key, scheduler: "rr"))
    for i in 1...4 {
        try! ipvs.addServer(RealServerConfig(Endpoint(IPAddress(v4: 0x0A00_0014 + UInt32(i)), 80), forwarding: .gatewaying, weight: 1), to: key)
    }
    return LoadBalancerState(loops: [group.next()], ipvs: ipvs)
}

let master = table()
let backup = table()
func start(_ state: LoadBalancerState, _ role: SyncDaemonState, _ interface: String) -> SyncDaemon {
    var c = SyncDaemonConfig(state: role)
    c.interface = interface
    c.syncID = 7
    let status = SyncDaemonStatus(c, interfaceMTU: 1500)
    try! state.withTable { try $0.startSyncDaemon(status) }
    let d = try! SyncDaemon(status: status, state: state, version: version, logger: logger)
    d.start()
    return d
}
let receiver = start(backup, .backup, backupInterface)
let sender = start(master, .master, masterInterface)

func threadCPU() -> [String: Double] {
    var out: [String: Double] = [:]
    let base = "/proc/self/task"
    for task in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] {
        guard let name = try? String(contentsOfFile: "\(base)/\(task)/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
              let stat = try? String(contentsOfFile: "\(base)/\(task)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { continue }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        let ticks = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)
        out[name, default: 0] += ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
    return out
}

// The generator: every millisecond, the connections due by then, 64 per lock.
let total = Int(Double(rate) * seconds)
let startCPU = threadCPU()
let started = DispatchTime.now().uptimeNanoseconds
var made = 0
var client: UInt32 = 0x0B00_0000
while made < total {
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    let due = min(total, Int(elapsed * Double(rate)))
    while made < due {
        let n = min(64, due - made)
        let now = master.now
        master.withTable { t in
            for _ in 0..<n {
                client &+= 1
                let c = Endpoint(IPAddress(v4: client), UInt16(truncatingIfNeeded: 1024 + client % 60000))
                for flags in [TCPFlags.syn, .ack, .ack] { _ = t.inbound(.tcp(from: c, to: vip, flags: flags), now: now) }
            }
        }
        made += n
    }
    usleep(1000)
}
let generated = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
// A partly filled message waits up to 2 s; then the backup has had its chance.
Thread.sleep(forTimeInterval: 2.5)
let endCPU = threadCPU()
sender.stop()
Thread.sleep(forTimeInterval: 0.5)
receiver.stop()

let queued = master.withTable { $0.syncCounters }
let applied = backup.withTable { $0.syncCounters }
let installed = backup.withTable { $0.connectionCount }
let s = sender.statistics
let r = receiver.statistics
func cpu(_ name: String) -> Double { (endCPU[name] ?? 0) - (startCPU[name] ?? 0) }
let lost = Int(queued.queued) - Int(applied.created + applied.updated)
print(String(format: "sync: %d connections in %.2f s (%.0f/s offered), version %d, maxlen 1472", total, generated, Double(total) / generated, version))
print("  master: queued \(queued.queued) (overflow \(queued.queueOverflow)), sent \(s.entriesSent) entries in \(s.messagesSent) messages, send failures \(s.sendFailures)")
print("  backup: received \(r.entriesReceived) entries in \(r.messagesReceived) messages; created \(applied.created), updated \(applied.updated), table \(installed)")
print(String(format: "  loss: %d of %d entries (%.3f%%)", lost, Int(queued.queued), queued.queued > 0 ? 100 * Double(lost) / Double(queued.queued) : 0))
print(String(format: "  CPU: master sync thread %.2f s, backup sync thread %.2f s (%.1f%% of a core at this rate), generator %.2f s",
             cpu("lvsd-sync-m"), cpu("lvsd-sync-b"), 100 * cpu("lvsd-sync-b") / generated, cpu("sync-bench") + cpu("SyncBenchmark")))
try? group.syncShutdownGracefully()
