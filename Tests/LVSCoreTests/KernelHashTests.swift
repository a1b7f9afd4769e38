import Testing
@testable import LVSCore

@Suite struct KernelHashTests {
    @Test func hash32MatchesReferenceNumbers() {
        #expect(KernelHash.hash32(v4("10.1.2.3").folded, bits: 8) == 2)
        #expect(KernelHash.hash32(v4("10.1.2.3").folded, bits: 10) == 10)
        #expect(SourceHashing.bucket(source: v4("192.168.1.100").folded, port: 0, offset: 0) == 89)
        #expect(SourceHashing.bucket(source: v4("192.168.1.100").folded, port: 12345, offset: 0) == 184)
    }

    @Test func hsiphashMatchesReferenceVectors() {
        #expect(KernelHash.hsiphash(0, key: KernelHash.maglevKey1) == 0x1d5a_77c2)
        #expect(KernelHash.hsiphash(0, key: KernelHash.maglevKey2) == 0xf882_433f)
    }

    @Test func maglevPermutationsMatchWorkedExample() {
        #expect(Maglev.permutation(of: ep("10.0.0.3:80"), size: 4093) == (1631, 3453))
        #expect(Maglev.permutation(of: ep("10.0.0.2:80"), size: 4093) == (1231, 3544))
        #expect(Maglev.permutation(of: ep("10.0.0.1:80"), size: 4093) == (3167, 700))
    }
}
