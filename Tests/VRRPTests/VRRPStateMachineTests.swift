import LVSCore
import Testing
@testable import VRRP

/// The VRRP state machine on a fake clock (nanoseconds).
@Suite struct VRRPStateMachineTests {
    static let s: Int64 = 1_000_000_000
    static let me = IPAddress("192.168.122.30")!
    static let peer = IPAddress("192.168.122.31")!

    func machine(priority: UInt8 = 100, version: UInt8 = 2, interval: Int64 = s, preempt: Bool = true, delay: Int64 = 0) -> VRRPStateMachine {
        VRRPStateMachine(.init(version: version, virtualRouterID: 51, priority: priority, advertisementInterval: interval,
                               preempt: preempt, preemptDelay: delay, primaryAddress: Self.me))
    }

    func advert(_ priority: UInt8, interval: UInt16 = 1, version: UInt8 = 2) -> VRRPAdvertisement {
        VRRPAdvertisement(version: version, virtualRouterID: 51, priority: priority, interval: interval, addresses: [IPAddress("192.168.122.50")!])
    }

    @Test func aBackupBecomesMasterAfterMasterDownInterval() {
        var m = machine()
        #expect(m.start(at: 0) == [.transition(from: .initialize, to: .backup)])
        // Master_Down_Interval = 3 x 1 s + (256 - 100) / 256 s.
        #expect(m.masterDownInterval == 3 * Self.s + 156 * Self.s / 256)
        #expect(m.tick(at: m.masterDownInterval - 1) == [])
        #expect(m.tick(at: m.masterDownInterval) == [.advertise(priority: 100), .transition(from: .backup, to: .master)])
        #expect(m.nextDeadline == m.masterDownInterval + Self.s)
        #expect(m.tick(at: m.masterDownInterval + Self.s) == [.advertise(priority: 100)])
    }

    @Test func theAddressOwnerIsMasterAtOnce() {
        var m = machine(priority: 255)
        #expect(m.start(at: 0) == [.advertise(priority: 255), .transition(from: .initialize, to: .master)])
    }

    @Test func aBackupHearingItsMasterStaysBackup() {
        var m = machine(priority: 100)
        _ = m.start(at: 0)
        for t in 1...20 { #expect(m.received(advert(150), from: Self.peer, at: Int64(t) * Self.s) == []) }
        #expect(m.tick(at: 20 * Self.s + m.masterDownInterval - 1) == [])
        #expect(m.state == .backup && m.masterAddress == Self.peer)
    }

    @Test func aHigherBackupPreemptsUnlessTold() {
        var m = machine(priority: 200)
        _ = m.start(at: 0)
        for t in 1...3 { _ = m.received(advert(100), from: Self.peer, at: Int64(t) * Self.s) }
        // The lower master's adverts do not reset the timer: it runs out from the start.
        #expect(m.tick(at: m.masterDownInterval).contains(.transition(from: .backup, to: .master)))

        var quiet = machine(priority: 200, preempt: false)
        _ = quiet.start(at: 0)
        for t in 1...10 { _ = quiet.received(advert(100), from: Self.peer, at: Int64(t) * Self.s) }
        #expect(quiet.tick(at: 10 * Self.s + 1) == [] && quiet.state == .backup, "nopreempt")
    }

    @Test func preemptDelayHoldsTheTakeOver() {
        var m = machine(priority: 200, delay: 5 * Self.s)
        _ = m.start(at: 0)
        var t: Int64 = 0
        while t < 5 * Self.s {
            t += Self.s / 2
            _ = m.received(advert(100), from: Self.peer, at: t)
            #expect(m.tick(at: t) == [])
        }
        // From 5 s on the lower master's adverts are let go: 5 s + Master_Down_Interval later it is ours.
        for k in 1...3 { _ = m.received(advert(100), from: Self.peer, at: t + Int64(k) * Self.s) }
        #expect(m.state == .backup)
        #expect(m.tick(at: t + m.masterDownInterval).contains(.transition(from: .backup, to: .master)))
    }

    @Test func priorityZeroHandsOverAfterSkewTime() {
        var m = machine(priority: 100)
        _ = m.start(at: 0)
        _ = m.received(advert(150), from: Self.peer, at: Self.s)
        _ = m.received(advert(0), from: Self.peer, at: 2 * Self.s)
        #expect(m.tick(at: 2 * Self.s + m.skewTime - 1) == [])
        #expect(m.tick(at: 2 * Self.s + m.skewTime).contains(.transition(from: .backup, to: .master)))
    }

    @Test func aMasterYieldsToHigherPriorityOrHigherAddress() {
        var m = machine(priority: 255)
        _ = m.start(at: 0)
        _ = m.setPriority(100, at: 0)
        #expect(m.received(advert(90), from: Self.peer, at: Self.s) == [.advertise(priority: 100)], "a lower master hears us at once")
        #expect(m.received(advert(100), from: IPAddress("192.168.122.29")!, at: Self.s) == [.advertise(priority: 100)], "equal priority, lower address")
        #expect(m.received(advert(0), from: Self.peer, at: Self.s) == [.advertise(priority: 100)], "a leaving peer: advertise at once")
        #expect(m.received(advert(100), from: Self.peer, at: 2 * Self.s) == [.transition(from: .master, to: .backup)])
        var n = machine(priority: 100)
        _ = n.start(at: 0)
        _ = n.tick(at: n.masterDownInterval)
        #expect(n.received(advert(101), from: IPAddress("192.168.122.2")!, at: 10 * Self.s) == [.transition(from: .master, to: .backup)])
    }

    @Test func shutdownSendsPriorityZero() {
        var m = machine(priority: 255)
        _ = m.start(at: 0)
        #expect(m.shutdown(at: Self.s) == [.advertise(priority: 0), .transition(from: .master, to: .initialize)])
        var b = machine()
        _ = b.start(at: 0)
        #expect(b.shutdown(at: Self.s) == [.transition(from: .backup, to: .initialize)])
    }

    @Test func faultAndRecovery() {
        var m = machine(priority: 255)
        _ = m.start(at: 0)
        #expect(m.fault(true, at: Self.s) == [.advertise(priority: 0), .transition(from: .master, to: .fault)])
        #expect(m.tick(at: 100 * Self.s) == [] && m.fault(true, at: 101 * Self.s) == [])
        #expect(m.fault(false, at: 102 * Self.s) == [.advertise(priority: 255), .transition(from: .initialize, to: .master)])
    }

    @Test func version3LearnsTheMastersIntervalInCentiseconds() {
        var m = machine(version: 3, interval: Self.s / 10)
        _ = m.start(at: 0)
        #expect(m.masterDownInterval == 3 * Self.s / 10 + 156 * (Self.s / 10) / 256)
        _ = m.received(advert(150, interval: 50, version: 3), from: Self.peer, at: Self.s)
        #expect(m.masterAdvertisementInterval == Self.s / 2)
        #expect(m.masterDownInterval == 3 * Self.s / 2 + 156 * (Self.s / 2) / 256)
    }

    /// Two routers wired back to back: each one's adverts are the other's input.
    @Test func twoRoutersElectTheHigherAndFailOver() {
        var a = VRRPStateMachine(.init(virtualRouterID: 51, priority: 150, primaryAddress: Self.me))
        var b = VRRPStateMachine(.init(virtualRouterID: 51, priority: 100, primaryAddress: Self.peer))
        var pending: [(to: Int, priority: UInt8)] = []
        func deliver(_ actions: [VRRPStateMachine.Action], from: Int) {
            for case .advertise(let p) in actions { pending.append((1 - from, p)) }
        }
        deliver(a.start(at: 0), from: 0)
        deliver(b.start(at: 0), from: 1)
        var aAlive = true
        var t: Int64 = 0
        while t < 20 * Self.s {
            t += Self.s / 10
            if t == 10 * Self.s { deliver(a.shutdown(at: t), from: 0); aAlive = false }
            let due = pending
            pending = []
            for m in due {
                if m.to == 0, aAlive { deliver(a.received(advert(m.priority), from: Self.peer, at: t), from: 0) }
                if m.to == 1 { deliver(b.received(advert(m.priority), from: Self.me, at: t), from: 1) }
            }
            if aAlive { deliver(a.tick(at: t), from: 0) }
            deliver(b.tick(at: t), from: 1)
            if t == 9 * Self.s { #expect(a.state == .master && b.state == .backup) }
        }
        #expect(b.state == .master, "b took over after a's priority 0")
        #expect(b.transitions == 2)
    }
}
