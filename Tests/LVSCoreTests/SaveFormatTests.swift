import Testing
@testable import LVSCore

@Suite struct SaveFormatTests {
    /// `ipvsadm -Sn` of the reference's test table, captured from the real ipvsadm (reference §5.8).
    static let saved = """
        -A -t 10.0.0.1:0 -s lc -p 3600 -M 255.255.0.0
        -a -t 10.0.0.1:0 -r 192.168.1.13:0 -g -w 1
        -A -t 10.0.0.1:80 -s wlc
        -a -t 10.0.0.1:80 -r 127.0.0.1:80 -g -w 1
        -a -t 10.0.0.1:80 -r 192.168.1.10:80 -i -w 0 --tun-type ipip
        -a -t 10.0.0.1:80 -r 192.168.1.11:80 -g -w 1
        -a -t 10.0.0.1:80 -r 192.168.1.12:8080 -m -w 3
        -A -t 10.0.0.3:443 -s wrr -p 300 --pe sip
        -a -t 10.0.0.3:443 -r 192.168.2.1:443 -i -w 5 --tun-type gre --tun-csum
        -a -t 10.0.0.3:443 -r 192.168.2.2:443 -i -w 5 --tun-type gue --tun-port 6081 --tun-nocsum
        -a -t 10.0.0.3:443 -r 192.168.2.3:443 -i -w 5 --tun-type gre --tun-csum
        -a -t 10.0.0.3:443 -r [2001:db8::99]:443 -i -w 5 --tun-type ipip
        -A -u 10.0.0.1:53 -s rr -p 360 -M 255.255.255.0 -o
        -a -u 10.0.0.1:53 -r 192.168.1.10:53 -m -w 1
        -a -u 10.0.0.1:53 -r 192.168.1.11:53 -m -w 2
        -A --sctp-service 10.0.0.2:5000 -s sed
        -A -t [2001:db8::1]:443 -s wrr
        -a -t [2001:db8::1]:443 -r [2001:db8:1::1]:443 -g -w 2
        -a -t [2001:db8::1]:443 -r [2001:db8:1::2]:8443 -m -w 1
        -a -t [2001:db8::1]:443 -r [2001:db8:1:ffff:ffff:ffff:ffff:fffe]:8443 -m -w 1
        -A -f 5 -s sh -b sh-fallback,sh-port
        -a -f 5 -r 192.168.3.1:0 -g -w 1
        -a -f 5 -r 192.168.3.2:0 -m -w 1
        -A -f 6 -6 -s mh -p 600 -M 64 -b mh-fallback
        -a -f 6 -6 -r [2001:db8:1::10]:0 -g -w 1

        """

    func restore(_ text: String, order: [Int]? = nil) throws -> IPVS {
        var t = IPVS()
        let parser = IPVSAdmParser()
        var lines = SaveFormat.restoreLines(text)
        if let order { lines = order.map { lines[$0] } }
        for words in lines { try t.apply(try parser.parse(words)) }
        return t
    }

    @Test func saveRestoreRoundTripIsExact() throws {
        let t = try restore(SaveFormatTests.saved)
        #expect(SaveFormat.render(ListingOrder.sorted(t.serviceSnapshots)) == SaveFormatTests.saved)
        // And once more through its own output.
        let u = try restore(SaveFormat.render(ListingOrder.sorted(t.serviceSnapshots)))
        #expect(u.serviceSnapshots == t.serviceSnapshots)
    }

    @Test func restoreDropsTheWordIpvsadmAndBlankLines() throws {
        let lines = SaveFormat.restoreLines("ipvsadm -A -t 1.2.3.4:80\n\n  \t\n-a\t-t 1.2.3.4:80 -r 5.6.7.8 ipvsadm\n")
        #expect(lines == [["-A", "-t", "1.2.3.4:80"], ["-a", "-t", "1.2.3.4:80", "-r", "5.6.7.8"]])
        #expect(throws: IPVSAdmError.self) { try IPVSAdmParser().parse(["#", "comment"]) }
        #expect(throws: IPVSAdmError("unexpected argument #")) { try IPVSAdmParser().parse(["-C", "#", "comment"]) }
    }

    @Test func listingOrderReproducesIpvsadmsSignedDifferences() {
        let a = tcp("192.168.0.1:80"), b = tcp("10.0.0.1:80"), c = tcp("100.0.0.1:80")
        // The comparator is not transitive: 192.168.0.1 < 10.0.0.1 < 100.0.0.1 < 192.168.0.1.
        #expect(ListingOrder.compareServices(a, b) < 0)
        #expect(ListingOrder.compareServices(b, c) < 0)
        #expect(ListingOrder.compareServices(c, a) < 0)
        let sorted = ListingOrder.mergeSort([a, b, c]) { ListingOrder.compareServices($0, $1) }
        #expect(sorted == [a, b, c])
        let v6a = VirtualService.Key.address(.tcp, IPAddress("ff00::1")!, 80)
        let v6b = VirtualService.Key.address(.tcp, IPAddress("2001:db8::1")!, 80)
        #expect(ListingOrder.compareServices(v6a, v6b) < 0)
        let big = VirtualService.Key.fwmark(3_000_000_000, .inet)
        #expect(ListingOrder.compareServices(big, b) < 0)
        #expect(ListingOrder.compareServices(.fwmark(5, .inet), b) > 0)
        #expect(SaveFormat.serviceOption(big) == "-f -1294967296")
    }

    @Test func savedServicesAreSortedWhateverTheCreationOrder() throws {
        let count = SaveFormat.restoreLines(SaveFormatTests.saved).count
        let restored = try restore(SaveFormatTests.saved, order: Array((0..<count)))
        #expect(SaveFormat.render(ListingOrder.sorted(restored.serviceSnapshots)) == SaveFormatTests.saved)
        // --nosort shows kernel order: real servers newest first.
        let first = restored.serviceSnapshots[1]
        #expect(first.servers.map { "\($0.config.endpoint)" } == ["192.168.1.12:8080", "192.168.1.11:80", "192.168.1.10:80", "127.0.0.1:80"])
    }
}
