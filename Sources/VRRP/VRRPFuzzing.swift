import LVSCore

/// What the fuzzer (Fuzz/PacketFuzzer) checks of VRRP with arbitrary bytes as a received advert:
/// nothing traps, and an advert the checks refuse changes no instance's state, master or timers
/// (RFC 3768 §7.1: it is discarded); every packet is counted once, taken or dropped.
public enum VRRPFuzzing {
    public static func exercise(_ input: UnsafeRawBufferPointer) {
        guard input.count >= 3 else { return }
        let control = input[0]
        let bytes = Array(input[1...])
        let v6 = control & 1 != 0
        let source = v6 ? IPAddress(v6High: 0xFE80_0000_0000_0000, low: UInt64(control)) : IPAddress(v4: 0x0A00_0000 | UInt32(control))
        let me = v6 ? IPAddress(v6High: 0xFE80_0000_0000_0000, low: 0x1_0000) : IPAddress(v4: 0x0A00_FF01)
        let vip = v6 ? IPAddress(v6High: 0x2001_0DB8_0000_0000, low: 1) : IPAddress(v4: 0x0A00_0064)
        let vrid = bytes.count > 1 ? bytes[1] : 1
        for version in [UInt8(2), 3] where !(v6 && version == 2) {
            for owner in [false, true] {
                let settings = VRRPInstance.Settings(
                    name: "F", interface: "eth0", isV6: v6, version: version, virtualRouterID: vrid, priority: owner ? 255 : 100,
                    advertisementInterval: version == 3 ? 100_000_000 : 1_000_000_000,
                    authentication: control & 2 != 0 && version == 2 ? .password(Array("secret".utf8)) : .none,
                    addresses: [.init(vip)], sourceAddress: me, skipAddressCheck: control & 4 != 0)
                var router = VRRPRouter(instances: [VRRPInstance(settings)])
                _ = router.handle(.start(), at: 0)
                let before = router.instances[0]
                let ttl: UInt8 = control & 8 != 0 ? control : 255
                let packet = VRRPInstance.Received(source: source, destination: v6 ? VRRPInstance.group6 : VRRPInstance.group4, ttl: ttl, bytes: bytes)
                _ = router.handle(.received(interface: "eth0", packet), at: 1_000)
                let after = router.instances[0]
                let taken = after.statistics.advertisementsReceived - before.statistics.advertisementsReceived
                let dropped = after.statistics.dropped - before.statistics.dropped
                precondition(taken + dropped == 1, "a packet is counted once, taken or dropped")
                if taken == 0 {
                    precondition(after.state == before.state && after.machine.masterAddress == before.machine.masterAddress
                                 && after.nextDeadline == before.nextDeadline, "a refused advert changed the instance")
                }
            }
        }
    }
}
