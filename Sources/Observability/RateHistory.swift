import LVSCore
import NIOConcurrencyHelpers

/// The dashboard's sparklines: new connections per second for every virtual service and real
/// server, sampled every `interval` seconds and kept for `length` samples, so a page opened now
/// shows the last minutes at once. Keys are the ones the dashboard builds
/// (`TCP|10.0.0.1|80`, `FWM|7`, and `service>address:port` for a real server).
public final class RateHistory: Sendable {
    public let interval: Double
    public let length: Int

    struct Store {
        var times: [Double] = []
        var last: [String: UInt64] = [:]
        var lastTime: Double?
        var series: [String: [Double]] = [:]
    }

    private let store = NIOLockedValueBox(Store())

    public init(interval: Double = 2, length: Int = 150) {
        precondition(interval > 0 && length > 0)
        self.interval = interval
        self.length = length
    }

    public static func key(_ service: VirtualService.Key) -> String {
        switch service {
        case .address(let p, let a, let port): return "\(p.name)|\(a)|\(port)"
        case .fwmark(let mark, let family): return family == .inet6 ? "FWM6|\(mark)" : "FWM|\(mark)"
        }
    }

    public static func key(_ service: VirtualService.Key, _ server: Endpoint) -> String {
        let address = "\(server.address)"
        return key(service) + ">" + (address.contains(":") ? "[\(address)]:\(server.port)" : "\(address):\(server.port)")
    }

    /// Takes a sample of `view` at `time` (Unix seconds). The first sample only sets the baseline.
    public func record(_ view: DirectorView, at unrounded: Double) {
        // Times go out to the millisecond; the cursor a client sends back must match them.
        let time = (unrounded * 1000).rounded() / 1000
        var now: [String: UInt64] = [:]
        now.reserveCapacity(view.services.count * 8)
        for s in view.services {
            now[Self.key(s.config.key)] = s.totals.connections
            for r in s.servers { now[Self.key(s.config.key, r.config.endpoint)] = r.totals.connections }
        }
        store.withLockedValue { st in
            defer {
                st.last = now
                st.lastTime = time
            }
            guard let previous = st.lastTime, time > previous else { return }
            let dt = time - previous
            st.times.append(time)
            if st.times.count > length { st.times.removeFirst(st.times.count - length) }
            var next: [String: [Double]] = [:]
            next.reserveCapacity(now.count)
            for (k, connections) in now {
                var series = st.series[k] ?? []
                let before = st.last[k] ?? connections
                // A real server removed and added again starts from zero: never a negative rate.
                series.append(connections >= before ? Double(connections - before) / dt : 0)
                if series.count > length { series.removeFirst(series.count - length) }
                next[k] = series
            }
            st.series = next
        }
    }

    /// The samples taken after `time`: their times, and each key's values for them (a key that
    /// appeared later has fewer, the newest last).
    public func samples(after time: Double) -> (times: [Double], series: [String: [Double]]) {
        store.withLockedValue { st in
            let count = st.times.reversed().prefix { $0 > time }.count
            guard count > 0 else { return ([], [:]) }
            return (Array(st.times.suffix(count)), st.series.mapValues { Array($0.suffix(count)) })
        }
    }
}
