import LVSCore
import Testing
@testable import HealthCheck

/// keepalived's checker timing and its retry rule, on a fake clock (seconds as nanoseconds).
@Suite struct CheckerStateTests {
    let s: Instant = 1_000_000_000
    var timing: CheckTiming { CheckTiming(delayLoop: 6 * s, retry: 3, delayBeforeRetry: 2 * s, warmup: 10 * s, timeout: 3 * s) }

    @Test func firstProbeFallsInTheWarmup() {
        #expect(CheckerState(timing: timing, alpha: false, now: 100 * s, warmupFraction: 0.5).nextProbe == 105 * s)
        #expect(CheckerState(timing: timing, alpha: false, now: 0, warmupFraction: 0).nextProbe == 0)
    }

    @Test func aServerGoesDownOnlyAfterItsRetries() {
        var c = CheckerState(timing: timing, alpha: false, now: 0)
        #expect(c.isUp)
        var now: Instant = 0
        for attempt in 1...3 {
            #expect(c.record(.failure("connection refused"), at: now) == nil, "failure \(attempt) is retried")
            #expect(c.nextProbe == now + 2 * s)
            now = c.nextProbe
        }
        #expect(c.record(.failure("connection refused"), at: now) == .down("connection refused"))
        #expect(!c.isUp && c.nextProbe == now + 6 * s)
        // Down, it is probed every delay_loop and stays down silently.
        now = c.nextProbe
        #expect(c.record(.failure("timeout"), at: now) == nil)
        #expect(c.nextProbe == now + 6 * s)
        now = c.nextProbe
        #expect(c.record(.success, at: now) == .up)
        #expect(c.isUp && c.failures == 0 && c.nextProbe == now + 6 * s)
    }

    @Test func probesFailuresAndTransitionsAreCounted() {
        var c = CheckerState(timing: CheckTiming(delayLoop: 6 * s, retry: 1, delayBeforeRetry: s, warmup: 0, timeout: s), alpha: false, now: 0)
        #expect(c.probes == 0 && c.lastProbe == nil)
        let results: [ProbeResult] = [.success, .failure("refused"), .failure("refused"), .failure("refused"), .success, .success]
        for (i, r) in results.enumerated() { _ = c.record(r, at: Instant(i) * s) }
        #expect(c.probes == 6)
        #expect(c.failedProbes == 3)
        #expect(c.transitions == 2, "down once (after the retry), up once")
        #expect(c.lastProbe == 5 * s)
    }

    @Test func aSuccessBetweenFailuresStartsTheCountAgain() {
        var c = CheckerState(timing: CheckTiming(delayLoop: 6 * s, retry: 1, delayBeforeRetry: s), alpha: false, now: 0)
        #expect(c.record(.failure("x"), at: 0) == nil)
        #expect(c.record(.success, at: s) == nil)
        #expect(c.record(.failure("x"), at: 7 * s) == nil)
        #expect(c.record(.failure("x"), at: 8 * s) == .down("x"))
    }

    @Test func retryZeroGoesDownAtTheFirstFailure() {
        var c = CheckerState(timing: CheckTiming(delayLoop: 6 * s, retry: 0), alpha: false, now: 0)
        #expect(c.record(.failure("x"), at: 0) == .down("x"))
    }

    @Test func alphaStartsDownAndComesUpOnTheFirstSuccess() {
        var c = CheckerState(timing: timing, alpha: true, now: 0)
        #expect(!c.isUp)
        #expect(c.record(.failure("x"), at: 0) == nil)
        #expect(c.record(.success, at: 6 * s) == .up)
    }

    @Test func miscDynamicWeights() {
        var c = CheckerState(timing: timing, alpha: false, now: 0)
        #expect(c.record(.successWithWeight(5), at: 0) == .weight(5))
        #expect(c.record(.successWithWeight(5), at: 6 * s) == nil)
        #expect(c.record(.successWithWeight(9), at: 12 * s) == .weight(9))
    }
}

/// Real servers combine their checkers; services keep quorum with hysteresis.
@Suite struct ServiceHealthTests {
    func service(_ weights: [Int32], checkers: Int = 1, inhibit: Bool = false, quorum: UInt32 = 1, hysteresis: UInt32 = 0) -> ServiceHealth {
        ServiceHealth(servers: weights.map { ServiceHealth.Server(weight: $0, inhibitOnFailure: inhibit, checkerCount: checkers) },
                      quorum: quorum, hysteresis: hysteresis)
    }

    @Test func aServerIsUpOnlyWhileAllItsCheckersAre() {
        var h = service([1], checkers: 2)
        #expect(h.checker(0, of: 0, .down("x")) == [.withdraw(server: 0, inhibit: false), .quorumLost])
        #expect(h.checker(1, of: 0, .down("x")).isEmpty)
        #expect(h.checker(0, of: 0, .up).isEmpty)
        #expect(h.checker(1, of: 0, .up) == [.serve(server: 0, weight: 1), .quorumRegained])
    }

    @Test func inhibitOnFailureKeepsTheServerAtWeightZero() {
        var h = service([3, 1], inhibit: true)
        #expect(h.checker(0, of: 0, .down("x")) == [.withdraw(server: 0, inhibit: true)])
    }

    @Test func quorumWithHysteresis() {
        // quorum 4, hysteresis 1: lost below 3, regained at 5 or more.
        var h = service([2, 2, 2], quorum: 4, hysteresis: 1)
        #expect(h.hasQuorum && h.liveWeight == 6)
        #expect(h.checker(0, of: 0, .down("x")) == [.withdraw(server: 0, inhibit: false)])
        #expect(h.checker(0, of: 1, .down("x")) == [.withdraw(server: 1, inhibit: false), .quorumLost])
        #expect(h.checker(0, of: 0, .up) == [.serve(server: 0, weight: 2)])
        #expect(!h.hasQuorum, "4 is not 5: still lost")
        #expect(h.checker(0, of: 1, .up) == [.serve(server: 1, weight: 2), .quorumRegained])
    }

    @Test func dynamicWeightCountsForQuorum() {
        var h = service([1], quorum: 3)
        #expect(!h.hasQuorum)
        #expect(h.checker(0, of: 0, .weight(5)) == [.serve(server: 0, weight: 5), .quorumRegained])
    }
}

@Suite struct MD5Tests {
    @Test func rfc1321TestSuite() {
        #expect(MD5.hex(Array("".utf8)) == "d41d8cd98f00b204e9800998ecf8427e")
        #expect(MD5.hex(Array("a".utf8)) == "0cc175b9c0f1b6a831c399e269772661")
        #expect(MD5.hex(Array("abc".utf8)) == "900150983cd24fb0d6963f7d28e17f72")
        // RFC 2104's test vectors.
        #expect(MD5.hmac(key: [UInt8](repeating: 0x0B, count: 16), message: Array("Hi There".utf8)).map { String(format2: $0) }.joined()
                    == "9294727a3638bb1c13f48ef8158bfc9d")
        #expect(MD5.hmac(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)).map { String(format2: $0) }.joined()
                    == "750c783e6ab0b503eaa86e310a5db738")
        #expect(MD5.hex(Array("message digest".utf8)) == "f96b697d7cb7938d525a2f31aaf161d0")
        #expect(MD5.hex(Array("12345678901234567890123456789012345678901234567890123456789012345678901234567890".utf8)) == "57edf4a22be3c955ac49da2e2107b67a")
    }

    @Test func httpAnswerParsing() {
        let answer = HTTPAnswerCollector.parse(Array("HTTP/1.1 503 Service Unavailable\r\nA: b\r\n\r\nbody".utf8))
        #expect(answer.status == 503 && answer.body == Array("body".utf8))
        #expect(HTTPAnswerCollector.parse(Array("garbage".utf8)).status == nil)
    }
}

extension String {
    init(format2 byte: UInt8) {
        let digits = Array("0123456789abcdef")
        self = String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }
}
