import LVSCore
import Testing
@testable import VRRP

/// Tracking, priorities and sync groups across instances, on a fake clock.
@Suite struct VRRPRouterTests {
    static let s: Int64 = 1_000_000_000
    static let me = IPAddress("10.0.0.2")!
    static let peer = IPAddress("10.0.0.3")!

    static func instance(_ name: String, vrid: UInt8, interface: String = "eth0", priority: UInt8 = 100,
                         scripts: [String: VRRPTracking.Weight] = [:], interfaces: [String: VRRPTracking.Weight] = [:],
                         files: [String: VRRPTracking.Weight] = [:]) -> VRRPInstance {
        VRRPInstance(.init(name: name, interface: interface, virtualRouterID: vrid, priority: priority,
                           addresses: [.init(IPAddress("10.0.0.\(vrid)")!)], sourceAddress: me,
                           trackedInterfaces: interfaces, trackedScripts: scripts, trackedFiles: files))
    }

    static func advert(vrid: UInt8, priority: UInt8) -> VRRPInstance.Received {
        let a = VRRPAdvertisement(version: 2, virtualRouterID: vrid, priority: priority, interval: 1, addresses: [IPAddress("10.0.0.\(vrid)")!])
        return VRRPInstance.Received(source: peer, destination: VRRPInstance.group4, ttl: 255, bytes: a.encode())
    }

    static func transitions(_ effects: [VRRPRouter.Effect]) -> [String] {
        effects.compactMap {
            switch $0 {
            case .instance(let i, .transition(_, let to)): return "\(i):\(to.rawValue)"
            case .group(let g, let to): return "g\(g):\(to.rawValue)"
            default: return nil
            }
        }
    }

    static func advertised(_ effects: [VRRPRouter.Effect]) -> [UInt8] {
        effects.compactMap { if case .instance(_, .send(let a, _, _, _)) = $0 { return a.priority }; return nil }
    }

    @Test func scriptWeightsMoveThePriorityBothWays() {
        var r = VRRPRouter(instances: [Self.instance("VI_1", vrid: 1, priority: 100, scripts: ["up": .init(20), "down": .init(-30)])],
                           scripts: ["up": .init(rise: 2, fall: 1), "down": .init(rise: 1, fall: 2)])
        _ = r.handle(.start(), at: 0)
        // Neither has a result yet: nothing moves.
        #expect(r.instances[0].machine.priority == 100)
        _ = r.handle(.script(name: "up", success: true), at: Self.s / 2)
        _ = r.handle(.script(name: "down", success: true), at: Self.s / 2)
        #expect(r.instances[0].machine.priority == 120, "+20 while good")
        _ = r.handle(.script(name: "up", success: false), at: Self.s)
        #expect(r.instances[0].machine.priority == 100)
        _ = r.handle(.script(name: "down", success: false), at: Self.s)
        #expect(r.instances[0].machine.priority == 100, "fall 2: one failure is not enough")
        _ = r.handle(.script(name: "down", success: false), at: 2 * Self.s)
        #expect(r.instances[0].machine.priority == 70)
        _ = r.handle(.script(name: "up", success: true), at: 3 * Self.s)
        #expect(r.instances[0].machine.priority == 70, "rise 2")
        _ = r.handle(.script(name: "up", success: true), at: 4 * Self.s)
        #expect(r.instances[0].machine.priority == 90)
    }

    @Test func aMasterWhosePriorityFallsIsPreemptedByItsPeer() {
        var r = VRRPRouter(instances: [Self.instance("VI_1", vrid: 1, priority: 150, scripts: ["chk": .init(-60)])], scripts: ["chk": .init()])
        _ = r.handle(.start(), at: 0)
        _ = r.handle(.tick, at: 4 * Self.s)
        #expect(r.instances[0].state == .master)
        let lowered = r.handle(.script(name: "chk", success: false), at: 5 * Self.s)
        // The new priority goes out at once.
        #expect(Self.advertised(lowered) == [90])
        let effects = r.handle(.received(interface: "eth0", Self.advert(vrid: 1, priority: 100)), at: 5 * Self.s + 1)
        #expect(Self.transitions(effects) == ["0:BACKUP"])
    }

    @Test func aWeightZeroScriptOrADownInterfaceIsAFaultAndRecovers() {
        var r = VRRPRouter(instances: [Self.instance("VI_1", vrid: 1, scripts: ["chk": .init(0)], interfaces: ["eth1": .init(0)])],
                           scripts: ["chk": .init()])
        // A weight-0 script without a result yet: FAULT from the start.
        #expect(Self.transitions(r.handle(.start(), at: 0)) == ["0:FAULT"])
        #expect(Self.transitions(r.handle(.script(name: "chk", success: true), at: Self.s / 2)) == ["0:BACKUP"])
        #expect(Self.transitions(r.handle(.script(name: "chk", success: false), at: Self.s)) == ["0:FAULT"])
        #expect(Self.transitions(r.handle(.script(name: "chk", success: true), at: 2 * Self.s)) == ["0:BACKUP"])
        #expect(Self.transitions(r.handle(.interface(name: "eth1", up: false), at: 3 * Self.s)) == ["0:FAULT"])
        #expect(Self.transitions(r.handle(.interface(name: "eth1", up: true), at: 4 * Self.s)) == ["0:BACKUP"])
        // Its own interface too.
        #expect(Self.transitions(r.handle(.interface(name: "eth0", up: false), at: 5 * Self.s)) == ["0:FAULT"])
        // Adverts received in FAULT change nothing.
        #expect(Self.transitions(r.handle(.received(interface: "eth0", Self.advert(vrid: 1, priority: 50)), at: 6 * Self.s)) == [])
        #expect(r.handle(.tick, at: 60 * Self.s).isEmpty)
    }

    @Test func aFaultyMasterHandsOverWithPriorityZero() {
        var r = VRRPRouter(instances: [Self.instance("VI_1", vrid: 1, priority: 255, interfaces: ["eth1": .init(0)])])
        _ = r.handle(.start(), at: 0)
        let effects = r.handle(.interface(name: "eth1", up: false), at: Self.s)
        #expect(Self.advertised(effects) == [0] && effects.contains(.instance(0, .releaseAddresses)))
    }

    @Test func interfaceAndFileWeights() {
        var r = VRRPRouter(instances: [Self.instance("VI_1", vrid: 1, priority: 100, interfaces: ["eth1": .init(-25), "eth2": .init(10, reverse: true)],
                                                     files: ["f": .init(3)])])
        _ = r.handle(.start(), at: 0)
        #expect(r.instances[0].machine.priority == 100)
        _ = r.handle(.interface(name: "eth1", up: false), at: Self.s)
        #expect(r.instances[0].machine.priority == 75)
        _ = r.handle(.interface(name: "eth2", up: false), at: Self.s)
        #expect(r.instances[0].machine.priority == 85, "reverse: +10 while down")
        _ = r.handle(.file(name: "f", value: 5), at: Self.s)
        #expect(r.instances[0].machine.priority == 100)
        _ = r.handle(.file(name: "f", value: 100), at: Self.s)
        #expect(r.instances[0].machine.priority == 254, "kept below the owner's 255")
        _ = r.handle(.file(name: "f", value: -100), at: Self.s)
        #expect(r.instances[0].state == .fault, "a file value of -254 or less is a fault")
    }

    @Test func syncGroupMembersMoveTogether() {
        var r = VRRPRouter(instances: [Self.instance("VI_1", vrid: 1), Self.instance("VI_2", vrid: 2, interface: "eth1", interfaces: [:])],
                           groups: [.init(name: "G", members: [0, 1])])
        _ = r.handle(.start(), at: 0)
        // VI_2 hears a master on its link; VI_1 hears none. The group stays backup.
        var t: Int64 = 0
        var seen: [String] = []
        while t < 10 * Self.s {
            seen += Self.transitions(r.handle(.received(interface: "eth1", Self.advert(vrid: 2, priority: 150)), at: t))
            seen += Self.transitions(r.handle(.tick, at: t + Self.s / 2))
            t += Self.s
        }
        #expect(seen == [] && r.instances.allSatisfy { $0.state == .backup })
        // The master goes: both become master together, the group once.
        let later = r.handle(.tick, at: t + 5 * Self.s)
        #expect(Self.transitions(later) == ["0:MASTER", "1:MASTER", "g0:MASTER"])
        // One member hears a better master: both step down.
        #expect(Self.transitions(r.handle(.received(interface: "eth0", Self.advert(vrid: 1, priority: 200)), at: t + 6 * Self.s))
                    == ["0:BACKUP", "1:BACKUP", "g0:BACKUP"])
        // One member's interface fails: both are in FAULT, and both come back.
        #expect(Self.transitions(r.handle(.interface(name: "eth1", up: false), at: t + 7 * Self.s)) == ["0:FAULT", "1:FAULT", "g0:FAULT"])
        #expect(Self.transitions(r.handle(.interface(name: "eth1", up: true), at: t + 8 * Self.s)) == ["0:BACKUP", "1:BACKUP", "g0:BACKUP"])
    }

    @Test func aReloadKeepsItsMastersWithoutAWord() {
        var old = VRRPRouter(instances: [Self.instance("VI_1", vrid: 1), Self.instance("VI_2", vrid: 2)])
        _ = old.handle(.start(), at: 0)
        _ = old.handle(.tick, at: 4 * Self.s)
        #expect(old.instances.allSatisfy { $0.state == .master })
        // VI_1 stays in the new configuration; VI_2 does not.
        let leaving = old.handle(.shutdown(keeping: ["VI_1"]), at: 5 * Self.s)
        #expect(!leaving.contains { if case .instance(0, _) = $0 { return true }; return false }, "VI_1 leaves silently")
        #expect(Self.advertised(leaving) == [0] && leaving.contains(.instance(1, .releaseAddresses)))
        var new = VRRPRouter(instances: [Self.instance("VI_1", vrid: 1)])
        let starting = new.handle(.start(resuming: ["VI_1"]), at: 5 * Self.s)
        #expect(Self.transitions(starting) == ["0:MASTER"] && Self.advertised(starting) == [100])
        // It yields as usual to a better master.
        #expect(Self.transitions(new.handle(.received(interface: "eth0", Self.advert(vrid: 1, priority: 200)), at: 6 * Self.s)) == ["0:BACKUP"])
    }

    @Test func unknownVRIDsAreCountedPerInterface() {
        var r = VRRPRouter(instances: [Self.instance("VI_1", vrid: 1)])
        _ = r.handle(.start(), at: 0)
        #expect(r.handle(.received(interface: "eth0", Self.advert(vrid: 9, priority: 100)), at: 1).isEmpty)
        #expect(r.handle(.received(interface: "eth3", Self.advert(vrid: 1, priority: 100)), at: 1).isEmpty)
        #expect(r.unknownVRID == ["eth0": 1, "eth3": 1])
    }

    @Test func scriptStatusCountsRiseAndFall() {
        var st = VRRPTracking.ScriptStatus(rise: 3, fall: 2)
        #expect(!st.isKnown)
        // The first result decides at once, whatever rise and fall say.
        #expect(st.record(success: true) && st.isGood)
        #expect(!st.record(success: false) && st.isGood)
        #expect(st.record(success: false) && !st.isGood)
        #expect(!st.record(success: true) && !st.record(success: true))
        #expect(st.record(success: true) && st.isGood)
        // A failure between successes starts the rise again.
        var f = VRRPTracking.ScriptStatus(rise: 2, fall: 1, initFail: true)
        #expect(!f.isGood)
        _ = f.record(success: true)
        _ = f.record(success: false)
        _ = f.record(success: true)
        #expect(!f.isGood)
        #expect(f.record(success: true) && f.isGood)
    }
}
