import Testing

@testable import LVSPacketEngine

/// The inline one-or-two collection a handed-over connection keeps per flow.
@Suite struct FlowPairTests {
    @Test func oneFlowOrTwo() {
        let one = FlowPair(7)
        #expect(Array(one) == [7])
        #expect(one.count == 1)
        let two = FlowPair(7, 9)
        #expect(Array(two) == [7, 9])
        #expect(two.count == 2)
        #expect(Array(FlowPair([3])) == [3])
        #expect(Array(FlowPair([3, 4].lazy.map { $0 * 2 })) == [6, 8])
        #expect(Array(FlowPair(repeating: 0, count: 2)) == [0, 0])
        #expect(Array(FlowPair(repeating: 5, count: 1)) == [5])
    }

    @Test func elementsChangeInPlaceAndMapKeepsTheShape() {
        var pair = FlowPair(repeating: (packets: UInt64(0), bytes: UInt64(0)), count: 2)
        pair[1] = (3, 300)
        pair[0].packets = 1
        #expect(pair[0] == (1, 0))
        #expect(pair[1] == (3, 300))
        #expect(Array(pair.mapPair { $0.bytes }) == [0, 300])
        var single = FlowPair("a")
        single[0] = "b"
        #expect(Array(single.mapPair { $0 + "!" }) == ["b!"])
        #expect(Array(single.enumerated().map { $0.offset }) == [0])
    }
}
