import Testing
@testable import LVSCore

@Suite struct StatisticsTests {
    @Test func rateEstimatorConvergesAndDecaysLikeTheKernel() {
        var e = RateEstimator()
        var c = Counters()
        var shown: [UInt64] = []
        for _ in 0..<10 {
            c.connections += 200  // 100 connections per second over a 2 s sample
            e.sample(c)
            shown.append(e.rates.connectionsPerSecond)
        }
        #expect(shown == [25, 44, 58, 68, 76, 82, 87, 90, 92, 94])
        // From a steady 100/s, stopping decays 75, 56, 42, 32, 24, 18, 13, 10, 8, 6, 4.
        var steady = RateEstimator()
        var d = Counters()
        for _ in 0..<200 {
            d.connections += 200
            steady.sample(d)
        }
        #expect(steady.rates.connectionsPerSecond == 100)
        var decay: [UInt64] = []
        for _ in 0..<11 {
            steady.sample(d)
            decay.append(steady.rates.connectionsPerSecond)
        }
        #expect(decay == [75, 56, 42, 32, 24, 18, 13, 10, 8, 6, 4])
    }

    @Test func byteRatesAreBytesPerSecond() {
        var e = RateEstimator()
        var c = Counters()
        for _ in 0..<100 {
            c.inBytes += 2_000_000
            c.inPackets += 2000
            e.sample(c)
        }
        #expect(e.rates.inBytesPerSecond == 1_000_000)
        #expect(e.rates.inPacketsPerSecond == 1000)
    }

    @Test func zeroResetsCountersAndRates() {
        var s = Statistics()
        s.add(Counters(connections: 10, inPackets: 20, outPackets: 30, inBytes: 40, outBytes: 50))
        s.sampleRates()
        #expect(s.rates.connectionsPerSecond > 0)
        s.zero()
        #expect(s.counters == Counters())
        #expect(s.rates == Rates())
        s.countConnection()
        #expect(s.counters.connections == 1)
        #expect(s.totals.connections == 11)
    }
}
