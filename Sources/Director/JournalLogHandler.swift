import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Log lines for systemd's journal (stderr connected to it, `$JOURNAL_STREAM` set): no timestamp
/// (the journal keeps its own), the level as an sd-daemon(3) `<N>` prefix so `journalctl -p`
/// filters work, then the message as keepalived words it, and the metadata.
public struct JournalLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let write: @Sendable (String) -> Void

    public init(write: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Whether stderr is the journal's stream: `$JOURNAL_STREAM` (DEVICE:INODE, set by systemd) names
    /// the file on descriptor 2 (children inherit the variable with other stderrs).
    public static func standardErrorIsTheJournal(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard let value = environment["JOURNAL_STREAM"] else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(2, &st) == 0 else { return false }
        return UInt64(st.st_dev) == device && UInt64(st.st_ino) == inode
    }

    /// syslog priorities: err 3, warning 4, notice 5, info 6, debug 7.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    public func log(event: LogEvent) {
        write("<\(Self.priority(event.level))>\(Self.line(event, metadata: metadata))\n")
    }

    /// The message and then the metadata (`key=value`, sorted), on one line: a message with
    /// newlines is folded, since each line is an entry of its own (in the journal and in syslog).
    static func line(_ event: LogEvent, metadata: Logger.Metadata) -> String {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        let tail = all.isEmpty ? "" : " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        return "\(event.message)".replacingOccurrences(of: "\n", with: " | ") + tail
    }
}
