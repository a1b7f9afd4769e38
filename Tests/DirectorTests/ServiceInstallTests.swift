import Logging
import NIOConcurrencyHelpers
import Testing
#if canImport(Glibc)
import Glibc
#endif

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

    @Test func syslogLinesCarryFacilityAndTag() {
        let lines = NIOLockedValueBox<[String]>([])
        let handler = SyslogLogHandler(local: 3, tag: "lvsd[42]") { bytes in lines.withLockedValue { $0.append(String(decoding: bytes, as: UTF8.self)) } }
        let logger = Logger(label: "t") { _ in handler }
        logger.info("TCP connection to [10.0.0.2]:tcp:80 failed.", metadata: ["reason": "timeout"])
        logger.error("bad")
        // LOCAL3 is facility 19: 19 * 8 + 6 (info), + 3 (err).
        #expect(lines.withLockedValue { $0 } == ["<158>lvsd[42]: TCP connection to [10.0.0.2]:tcp:80 failed. reason=timeout", "<155>lvsd[42]: bad"])
    }

    @Test func datagramsReachTheirSocket() throws {
        let path = "/tmp/lvsd-test-\(getpid()).sock"
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd); unlink(path) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        #expect(bound == 0)
        #expect(SystemdNotify.send("READY=1", environment: ["NOTIFY_SOCKET": path]))
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        #expect(n == 7 && String(decoding: buffer[0..<max(0, n)], as: UTF8.self) == "READY=1")
    }

    @Test func notifyWithoutASocketDoesNothing() {
        #expect(!SystemdNotify.send("READY=1", environment: [:]))
        #expect(!SystemdNotify.send("READY=1", environment: ["NOTIFY_SOCKET": "/nonexistent/notify"]))
    }
}
