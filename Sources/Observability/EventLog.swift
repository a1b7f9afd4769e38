import Foundation
import NIOConcurrencyHelpers

/// What happened to the director, for the dashboard and `/api/v1/events`: health transitions,
/// VRRP transitions, configuration loads, sync daemons. The last `capacity` events are kept;
/// each has a sequence number so a reader asks only for what is new.
public final class EventLog: Sendable {
    public enum Kind: String, Codable, Sendable {
        case health, vrrp, config, sync, engine
    }

    public struct Event: Codable, Sendable, Hashable {
        public var sequence: UInt64
        /// Unix time in seconds.
        public var time: Double
        public var kind: Kind
        public var message: String
    }

    public let capacity: Int
    private let storage: NIOLockedValueBox<(events: [Event], next: UInt64)>
    private let clock: @Sendable () -> Double

    public init(capacity: Int = 1000, clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.clock = clock
        storage = NIOLockedValueBox((events: [], next: 1))
    }

    public func record(_ kind: Kind, _ message: String) {
        let time = clock()
        storage.withLockedValue { s in
            s.events.append(Event(sequence: s.next, time: time, kind: kind, message: message))
            s.next += 1
            if s.events.count > capacity { s.events.removeFirst(s.events.count - capacity) }
        }
    }

    /// The events after `sequence` (0: all kept), oldest first, at most `limit`; and the
    /// sequence number the next event will have.
    public func events(after sequence: UInt64 = 0, limit: Int = .max) -> (events: [Event], next: UInt64) {
        storage.withLockedValue { s in
            let start = s.events.firstIndex { $0.sequence > sequence } ?? s.events.endIndex
            let end = start + min(limit, s.events.endIndex - start)
            return (Array(s.events[start..<end]), s.next)
        }
    }
}
