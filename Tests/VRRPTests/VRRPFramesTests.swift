import LVSCore
import LVSPacket
import Testing
@testable import VRRP

/// What a master sends besides adverts, byte by byte.
@Suite struct VRRPFramesTests {
    static let mac: [UInt8] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55]

    @Test func anAdvertsIPv4HeaderIsInternetworkControlTTL255WithoutDF() {
        let message = VRRPAdvertisement(version: 2, virtualRouterID: 51, priority: 100, interval: 1, addresses: [IPAddress("10.0.0.100")!]).encode()
        let p = VRRPFrames.ipv4Packet(message, source: IPAddress("10.0.0.2")!, destination: VRRPInstance.group4, identification: 7)
        #expect(Array(p[0..<10]) == [0x45, 0xC0, 0, 40, 0, 7, 0, 0, 255, 112])
        #expect(Array(p[12..<20]) == [10, 0, 0, 2, 224, 0, 0, 18])
        #expect(p.withUnsafeBytes { Checksum.fold(Checksum.sum($0, from: 0, count: 20)) } == 0xFFFF, "header checksum verifies")
        #expect(Array(p[20...]) == message)
    }

    @Test func aGratuitousARPIsABroadcastRequestForTheAddressItself() {
        let f = VRRPFrames.gratuitousARP(mac: Self.mac, address: IPAddress("10.0.0.100")!)
        #expect(f.count == 42)
        #expect(Array(f[0..<6]) == [UInt8](repeating: 0xFF, count: 6) && Array(f[6..<12]) == Self.mac && f[12] == 0x08 && f[13] == 0x06)
        #expect(Array(f[14..<22]) == [0, 1, 8, 0, 6, 4, 0, 1], "Ethernet/IPv4 request")
        #expect(Array(f[22..<28]) == Self.mac && Array(f[28..<32]) == [10, 0, 0, 100])
        #expect(Array(f[32..<38]) == [UInt8](repeating: 0xFF, count: 6) && Array(f[38..<42]) == [10, 0, 0, 100])
    }

    @Test func anUnsolicitedNeighbourAdvertisementOverridesFromTheAddress() {
        let vip = IPAddress("2001:db8::100")!
        let f = VRRPFrames.unsolicitedNeighbourAdvertisement(mac: Self.mac, address: vip, router: true)
        #expect(Array(f[0..<6]) == [0x33, 0x33, 0, 0, 0, 1] && f[12] == 0x86 && f[13] == 0xDD)
        #expect(f[14] == 0x60 && f[20] == 58 && f[21] == 255 && Array(f[22..<38]) == vip.networkBytes)
        #expect(Array(f[38..<54]) == IPAddress("ff02::1")!.networkBytes)
        let icmp = Array(f[54...])
        #expect(icmp.count == 32 && icmp[0] == 136 && icmp[4] == 0xA0, "router and override, not solicited")
        #expect(Array(icmp[8..<24]) == vip.networkBytes && Array(icmp[24..<32]) == [2, 1] + Self.mac)
        let pseudo = Checksum.pseudoHeader(source: vip, destination: IPAddress("ff02::1")!, protocolNumber: 58, length: 32)
        #expect(icmp.withUnsafeBytes { Checksum.fold(Checksum.sum($0, from: 0, count: 32, initial: pseudo)) } == 0xFFFF)
        #expect(VRRPFrames.unsolicitedNeighbourAdvertisement(mac: Self.mac, address: vip, router: false)[58] == 0x20)
    }

    @Test func theVirtualMACCarriesTheVRID() {
        #expect(VRRPFrames.virtualMAC(vrid: 51, v6: false) == [0, 0, 0x5E, 0, 1, 51])
        #expect(VRRPFrames.virtualMAC(vrid: 7, v6: true) == [0, 0, 0x5E, 0, 2, 7])
    }
}
