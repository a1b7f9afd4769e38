import Foundation
import Logging

/// keepalived's `-S N` / `--log-facility N`: every log line also goes to syslog (/dev/log) with
/// facility LOCAL0 ... LOCAL7, tagged `lvsd[PID]:`, in the message words keepalived uses.
public struct SyslogLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    /// The syslog facility code (LOCAL0 is 16).
    let facility: Int
    let tag: String
    let write: @Sendable ([UInt8]) -> Void

    /// - Parameter local: 0 ... 7, as keepalived's -S takes it.
    public init(local: Int, tag: String = "lvsd[\(getpid())]", socket: String = "/dev/log",
                write: (@Sendable ([UInt8]) -> Void)? = nil) {
        facility = 16 + local
        self.tag = tag
        self.write = write ?? { UnixDatagram.send($0, to: socket) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        write(Array("<\(facility * 8 + JournalLogHandler.priority(event.level))>\(tag): \(JournalLogHandler.line(event, metadata: metadata))".utf8))
    }
}
