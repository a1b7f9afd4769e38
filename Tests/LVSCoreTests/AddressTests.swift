import Testing
@testable import LVSCore

@Suite struct AddressTests {
    @Test func dottedQuadRoundTrips() {
        for text in ["0.0.0.0", "1.2.3.4", "255.255.255.255", "10.0.0.100"] {
            #expect(IPAddress(text)?.description == text)
        }
        for bad in ["1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1..2.3", "", "a.b.c.d", "1.2.3.4 "] {
            #expect(IPAddress.parseDottedQuad(bad) == nil, "\(bad)")
        }
    }

    @Test func inetAtonAcceptsEveryClassicForm() {
        #expect(IPAddress.parseInetAton("1.2.3.4") == 0x0102_0304)
        #expect(IPAddress.parseInetAton("0x01020304") == 0x0102_0304)
        #expect(IPAddress.parseInetAton("16909060") == 0x0102_0304)
        #expect(IPAddress.parseInetAton("1.2.3") == 0x0102_0003)
        #expect(IPAddress.parseInetAton("1.2") == 0x0100_0002)
        #expect(IPAddress.parseInetAton("010.0.0.1") == 0x0800_0001)
        #expect(IPAddress.parseInetAton("24") == 24)
        #expect(IPAddress.parseInetAton("1.2.3.256") == nil)
        #expect(IPAddress.parseInetAton("bad..addr") == nil)
        #expect(IPAddress.parseInetAton("09") == nil)
    }

    @Test func ipv6ParsesAndPrintsLikeGlibc() {
        let cases: [(String, String)] = [
            ("2001:db8::1", "2001:db8::1"),
            ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
            ("::", "::"),
            ("::1", "::1"),
            ("ff00::1", "ff00::1"),
            ("2001:db8:1:ffff:ffff:ffff:ffff:fffe", "2001:db8:1:ffff:ffff:ffff:ffff:fffe"),
            ("2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"),
            ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),
            ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("::1.2.3.4", "::1.2.3.4"),
            ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
            ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),
        ]
        for (input, output) in cases {
            #expect(IPAddress(input)?.description == output, "\(input)")
            #expect(IPAddress(input)?.isV6 == true)
        }
        for bad in [":::", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::1", ":1", "1:", "[::1]"] {
            #expect(IPAddress.parseV6(bad) == nil, "\(bad)")
        }
    }

    @Test func foldAndMasks() {
        #expect(v4("10.1.2.3").folded == 0x0A01_0203)
        let a = IPAddress("2001:db8::1")!
        #expect(a.folded == 0x2001_0DB8 ^ 0 ^ 0 ^ 1)
        #expect(v4("192.168.7.9").masked(v4Mask: 0xFFFF_FF00) == v4("192.168.7.0"))
        #expect(IPAddress("2001:db8:aaaa:bbbb:cccc::1")!.masked(prefixLength: 48) == IPAddress("2001:db8:aaaa::")!)
        #expect(IPAddress("2001:db8::1")!.uncompressedV6Text == "2001:0db8:0000:0000:0000:0000:0000:0001")
        #expect(Endpoint(IPAddress("2001:db8::1")!, 443).description == "[2001:db8::1]:443")
    }
}
