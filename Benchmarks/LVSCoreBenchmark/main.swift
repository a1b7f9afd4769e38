// LVSCore micro-benchmarks: scheduling decisions, connection-table lookups and inserts at 1 M live
// connections, memory per entry, Maglev table builds, and heap allocations on the hot paths.
//
//   swift run -c release LVSCoreBenchmark            # full run (1 M connections)
//   swift run -c release LVSCoreBenchmark --quick    # smaller table, fewer iterations
//
// Every figure is printed next to the target it is held to, with the ratio (measured / target).
// There is no kernel IPVS on this machine to run beside it, so the targets stand in for the peer.

import CMallocCounter
import LVSCore

#if canImport(Glibc)
import Glibc
#endif

let quick = CommandLine.arguments.contains("--quick")

func nowNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func residentBytes() -> Int {
    guard let f = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(f) }
    var buffer = [UInt8](repeating: 0, count: 128)
    let n = fread(&buffer, 1, buffer.count - 1, f)
    let fields = String(decoding: buffer[0..<n], as: UTF8.self).split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

func hugePageKilobytes() -> Int {
    guard let f = fopen("/proc/self/smaps_rollup", "r") else { return 0 }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, 256, f) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix("AnonHugePages:") {
            return Int(text.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
    }
    return 0
}

struct Row {
    var name: String
    var value: Double
    var unit: String
    var target: Double?
    var allocationsPerOp: Double?
}

var rows: [Row] = []
var sink: Int64 = 0

/// `value` with `decimals` digits after the point, right-aligned in `width`.
func fixed(_ value: Double, _ decimals: Int, width: Int = 0) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = Int64((abs(value) * scale).rounded())
    var text = String(scaled / Int64(scale))
    if decimals > 0 {
        let fraction = String(scaled % Int64(scale))
        text += "." + String(repeating: "0", count: decimals - fraction.count) + fraction
    }
    if value < 0 { text = "-" + text }
    return pad(text, width, left: true)
}

func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - text.count))
    return left ? fill + text : text + fill
}

@MainActor
func report(_ row: Row) {
    rows.append(row)
    var line = pad(row.name, 46)
    line += fixed(row.value, 1, width: 10) + " " + pad(row.unit, 3)
    if let t = row.target {
        line += "  target " + fixed(t, 0, width: 4) + "  ratio " + fixed(row.value / t, 2, width: 5)
        line += row.value <= t ? "  ok  " : "  OVER"
    } else {
        line += String(repeating: " ", count: 32)
    }
    if let a = row.allocationsPerOp { line += "  allocs/op " + fixed(a, 3) }
    print(line)
}

@MainActor
/// Runs `body` `iterations` times (after a warm-up) and reports ns per call and allocations per call.
func measure(_ name: String, iterations: Int, target: Double? = nil, _ body: (Int) -> Int64) {
    for i in 0..<min(iterations, 10_000) { sink &+= body(i) }
    let allocsBefore = lvs_malloc_count()
    let start = nowNanoseconds()
    for i in 0..<iterations { sink &+= body(i) }
    let elapsed = nowNanoseconds() - start
    let allocs = lvs_malloc_count() - allocsBefore
    report(Row(name: name, value: Double(elapsed) / Double(iterations), unit: "ns", target: target,
               allocationsPerOp: Double(allocs) / Double(iterations)))
}

func address(_ i: Int) -> IPAddress { IPAddress(v4: 0x0A00_0000 &+ UInt32(truncatingIfNeeded: i)) }

// MARK: Scheduling decisions

let decisionTargets: [String: Double] = ["rr": 50, "wrr": 50, "wlc": 50, "sh": 50, "mh": 50]
let flows: [FlowKey] = (0..<4096).map { i in
    FlowKey(protocolNumber: 6, source: IPAddress(v4: 0xC0A8_0000 &+ UInt32(i &* 7919)), sourcePort: UInt16(1024 + i),
            destination: IPAddress(v4: 0x0A64_0064), destinationPort: 80)
}

print("SwiftLVS LVSCore benchmark (\(quick ? "quick" : "full") run)")
print("")
print("Scheduling decision (pick only, no connection), ns per decision")
@MainActor
func schedulingBenchmark() {
    for servers in [8, 256] {
        for scheduler in ["rr", "wrr", "lc", "wlc", "sed", "nq", "fo", "ovf", "twos", "dh", "sh", "mh", "lblc", "lblcr"] {
            var ipvs = IPVS()
            let key = VirtualService.Key.address(.tcp, IPAddress(v4: 0x0A64_0064), 80)
            try! ipvs.addService(VirtualService.Config(key: key, scheduler: scheduler))
            for s in 0..<servers {
                // Varied weights: 1…8 (so wrr walks real levels).
                try! ipvs.addServer(RealServerConfig(Endpoint(address(s + 1), 80), weight: Int32(1 + s % 8)), to: key)
            }
            let handle = ipvs.serviceHandle(for: key)!
            let iterations = quick ? 200_000 : 2_000_000
            measure("\(scheduler) x\(servers)", iterations: iterations, target: servers == 256 ? decisionTargets[scheduler] : nil) { i in
                Int64(ipvs.pick(service: handle, flow: flows[i & 4095]) ?? -1)
            }
        }
    }

}
if !CommandLine.arguments.contains("--connections-only") { schedulingBenchmark() }

// MARK: Connection table at scale

@MainActor
func connectionTableBenchmark() {
    var liveConnections = quick ? 100_000 : 1_000_000
    if let i = CommandLine.arguments.firstIndex(of: "--connections"), i + 1 < CommandLine.arguments.count,
       let n = Int(CommandLine.arguments[i + 1]) {
        liveConnections = n
    }
    print("")
    print("Connection table with \(liveConnections) live connections (direct routing, wlc over 256 servers)")
    let vip = Endpoint(IPAddress(v4: 0x0A64_0064), 80)

    func client(_ i: Int) -> Endpoint {
        // Spread clients over addresses and ports like real traffic.
        let mixed = UInt32(truncatingIfNeeded: i &* 2_654_435_761)
        return Endpoint(IPAddress(v4: 0x6400_0000 | (mixed >> 12)), UInt16(1024 + (i % 60_000)))
    }
    let clients = (0..<liveConnections).map(client)
    var synPackets = clients.map { PacketSummary.tcp(from: $0, to: vip, flags: .syn, length: 60) }
    // Table memory is measured from before the table exists (its index is touched at creation).
    let rssBefore = residentBytes()
    var settings = IPVSSettings()
    settings.maxConnections = liveConnections + 1024
    let hugePages = !CommandLine.arguments.contains("--no-huge-pages")
    var ipvs = IPVS(settings: settings, prepareMemory: hugePages ? { region in
        // What lvsd does: back the table with transparent huge pages where the kernel allows it.
        _ = madvise(region.baseAddress, region.count, MADV_HUGEPAGE)
    } : nil)
    print("  transparent huge pages requested: \(hugePages)")
    let key = VirtualService.Key.address(.tcp, vip.address, vip.port)
    try! ipvs.addService(VirtualService.Config(key: key, scheduler: "wlc"))
    for s in 0..<256 { try! ipvs.addServer(RealServerConfig(Endpoint(address(s + 1), 80), weight: 1), to: key) }
    let insertStart = nowNanoseconds()
    let insertAllocs = lvs_malloc_count()
    for p in synPackets {
        if case .forward(let f) = ipvs.inbound(p, now: 1_000_000_000) { sink &+= Int64(f.server) }
    }
    let insertElapsed = nowNanoseconds() - insertStart
    let insertAllocCount = lvs_malloc_count() - insertAllocs
    let rssAfter = residentBytes()
    synPackets = []
    report(Row(name: "new connection (schedule + insert), wlc x256", value: Double(insertElapsed) / Double(liveConnections),
               unit: "ns", target: nil, allocationsPerOp: Double(insertAllocCount) / Double(liveConnections)))
    print("  live entries: \(ipvs.connectionCount), huge pages in use: \(hugePageKilobytes() / 1024) MiB")

    // Lookups in an order unrelated to insertion.
    var order = Array(0..<liveConnections)
    var rng = SystemRandomNumberGenerator()
    order.shuffle(using: &rng)
    let ackPackets = (0..<(1 << 20)).map { order[$0 % order.count] }.map { PacketSummary.tcp(from: clients[$0], to: vip, flags: .ack, length: 52) }
    measure("lookup + state + counters (ACK)", iterations: ackPackets.count, target: 100) { i in
        if case .forward(let f) = ipvs.inbound(ackPackets[i], now: 2_000_000_000) { return Int64(f.connection.index) }
        return -1
    }
    // The same lookups in bursts of 32, as a packet engine receives them.
    var verdicts: [InboundVerdict] = []
    verdicts.reserveCapacity(64)
    ackPackets.withUnsafeBufferPointer { all in
        let burst = 32
        let bursts = all.count / burst
        let allocsBefore = lvs_malloc_count()
        let start = nowNanoseconds()
        for b in 0..<bursts {
            ipvs.inbound(burst: UnsafeBufferPointer(rebasing: all[(b * burst)..<(b * burst + burst)]), now: 3_000_000_000,
                         into: &verdicts)
            sink &+= Int64(verdicts.count)
        }
        let elapsed = nowNanoseconds() - start
        let allocs = lvs_malloc_count() - allocsBefore
        report(Row(name: "lookup + state + counters, bursts of 32", value: Double(elapsed) / Double(bursts * burst),
                   unit: "ns", target: 100, allocationsPerOp: Double(allocs) / Double(bursts * burst)))
    }
    let missPackets = (0..<(1 << 16)).map { i in PacketSummary.tcp(from: Endpoint(IPAddress(v4: 0xAC10_0000 + UInt32(i)), 999), to: vip, flags: .ack) }
    measure("lookup miss (non-SYN, no entry)", iterations: quick ? 200_000 : 2_000_000, target: 100) { i in
        ipvs.inbound(missPackets[i & 0xFFFF], now: 2_000_000_000) == .pass ? 1 : 0
    }

    let entryBytes = IPVS.connectionEntryBytes(capacity: settings.maxConnections)
    report(Row(name: "bytes per connection entry (entry + index)", value: Double(entryBytes), unit: "B", target: 128))
    // Huge pages are mapped 2 MiB at a time, so small tables over-count; the target applies at 1 M.
    report(Row(name: "resident memory per connection (measured)", value: Double(rssAfter - rssBefore) / Double(liveConnections),
               unit: "B", target: liveConnections >= 1_000_000 ? 128 : nil))

    // Expiry of the whole table (timer wheel), per entry.
    let expireStart = nowNanoseconds()
    ipvs.expire(now: 10_000_000_000_000)
    let expireElapsed = nowNanoseconds() - expireStart
    report(Row(name: "expire, per entry", value: Double(expireElapsed) / Double(liveConnections), unit: "ns"))
    print("  live entries after expiry: \(ipvs.connectionCount)")

}
connectionTableBenchmark()

// MARK: Machine context

/// The latency of one dependent load from memory on this machine (pointer chasing over 128 MiB with
/// huge pages): the floor for any lookup that must read a table entry it has not seen recently.
@MainActor
func memoryLatencyBenchmark() {
    let count = (128 << 20) / 8
    let raw = UnsafeMutableRawPointer.allocate(byteCount: count * 8, alignment: 2 << 20)
    defer { raw.deallocate() }
    _ = madvise(raw, count * 8, MADV_HUGEPAGE)
    let a = raw.bindMemory(to: Int.self, capacity: count)
    for i in 0..<count { a[i] = i }
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    var i = count - 1
    while i > 0 {  // Sattolo's shuffle: one cycle through every element
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        let j = Int(state % UInt64(i))
        (a[i], a[j]) = (a[j], a[i])
        i -= 1
    }
    let steps = quick ? 200_000 : 2_000_000
    var p = 0
    let start = nowNanoseconds()
    for _ in 0..<steps { p = a[p] }
    let elapsed = nowNanoseconds() - start
    sink &+= Int64(p)
    report(Row(name: "memory latency, one dependent load", value: Double(elapsed) / Double(steps), unit: "ns"))
}

print("")
print("Machine")
memoryLatencyBenchmark()

// MARK: Maglev build

print("")
print("Maglev table (M = 4093) rebuild")
var mh = IPVS()
let mhKey = VirtualService.Key.address(.tcp, IPAddress(v4: 0x0A64_0064), 443)
try! mh.addService(VirtualService.Config(key: mhKey, scheduler: "mh"))
for s in 0..<256 { try! mh.addServer(RealServerConfig(Endpoint(address(s + 1), 443), weight: Int32(1 + s % 4)), to: mhKey) }
let rebuilds = quick ? 50 : 500
let mhStart = nowNanoseconds()
for r in 0..<rebuilds {
    try! mh.editServer(RealServerConfig(Endpoint(address(1), 443), weight: Int32(1 + r % 2)), in: mhKey)
}
let mhElapsed = Double(nowNanoseconds() - mhStart) / Double(rebuilds)
report(Row(name: "build for 256 servers", value: mhElapsed / 1000, unit: "us"))

print("")
let over = rows.filter { $0.target != nil && $0.value > $0.target! }
let allocating = rows.filter { ($0.allocationsPerOp ?? 0) > 0.001 && $0.name.contains("x256") || ($0.name.hasPrefix("lookup") && ($0.allocationsPerOp ?? 0) > 0.001) }
print("targets met: \(rows.filter { $0.target != nil }.count - over.count) of \(rows.filter { $0.target != nil }.count)")
if !over.isEmpty { print("over target: " + over.map(\.name).joined(separator: ", ")) }
if !allocating.isEmpty { print("allocating: " + allocating.map(\.name).joined(separator: ", ")) }
if sink == 42 { print("") }
