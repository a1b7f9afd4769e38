import Logging
import NIOConcurrencyHelpers
import Testing

@testable import Director

/// What lvsd does for a service manager: the configuration it reads without -f, and its log lines
/// for the journal.
@Suite struct ServiceInstallTests {
    @Test func theDefaultConfigurationIsKeepalivedsThenSwiftLVSs() {
        let both: (String) -> Bool = { _ in true }
        let onlyOurs: (String) -> Bool = { $0 == "/etc/swiftlvs/keepalived.conf" }
        let none: (String) -> Bool = { _ in false }
        #expect(DefaultConfiguration.find(environment: [:], exists: both) == "/etc/keepalived/keepalived.conf")
        #expect(DefaultConfiguration.find(environment: [:], exists: onlyOurs) == "/etc/swiftlvs/keepalived.conf")
        #expect(DefaultConfiguration.find(environment: [:], exists: none) == nil)
        #expect(DefaultConfiguration.find(environment: ["LVSD_CONFIG": "/srv/lb.conf"], exists: none) == "/srv/lb.conf")
        #expect(DefaultConfiguration.find(environment: ["LVSD_CONFIG": ""], exists: both) == nil, "empty: no file")
    }

    @Test func journalLinesCarryThePriorityAndNoTimestamp() {
        let lines = NIOLockedValueBox<[String]>([])
        var handler = JournalLogHandler { line in lines.withLockedValue { $0.append(line) } }
        handler.logLevel = .debug
        handler[metadataKey: "vip"] = "10.0.0.1:80"
        let logger = Logger(label: "t") { _ in handler }
        logger.info("(VI_1) Entering MASTER STATE")
        logger.warning("two\nlines", metadata: ["a": "1"])
        logger.error("failed")
        logger.debug("detail")
        #expect(lines.withLockedValue { $0 } == [
            "<6>(VI_1) Entering MASTER STATE vip=10.0.0.1:80\n",
            "<4>two | lines a=1 vip=10.0.0.1:80\n",
            "<3>failed vip=10.0.0.1:80\n",
            "<7>detail vip=10.0.0.1:80\n",
        ])
    }

    @Test func notifyWithoutASocketDoesNothing() {
        #expect(!SystemdNotify.send("READY=1", environment: [:]))
        #expect(!SystemdNotify.send("READY=1", environment: ["NOTIFY_SOCKET": "/nonexistent/notify"]))
    }
}
