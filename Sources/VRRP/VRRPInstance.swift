import LVSCore

/// One vrrp_instance as the VRRP layer runs it: its settings, the checks on what it receives
/// (keepalived's vrrp_check_packet), its counters, its gratuitous ARP schedule and its state
/// machine. Pure: the router feeds it packets and the time.
public struct VRRPInstance: Sendable {
    /// One virtual_ipaddress (or virtual_ipaddress_excluded) entry.
    public struct Address: Sendable, Hashable {
        public var address: IPAddress
        public var prefixLength: UInt8
        /// The interface it goes on (the instance's when nil).
        public var device: String?
        /// `host`, `link`, `site`, `global` (default) or a number.
        public var scope: String?
        public var broadcast: IPAddress?
        public var label: String?
        /// virtual_ipaddress_excluded: owned and announced, never listed in adverts.
        public var excluded: Bool

        public init(_ address: IPAddress, prefixLength: UInt8? = nil, device: String? = nil, scope: String? = nil,
                    broadcast: IPAddress? = nil, label: String? = nil, excluded: Bool = false) {
            self.address = address
            self.prefixLength = prefixLength ?? (address.isV6 ? 128 : 32)
            self.device = device
            self.scope = scope
            self.broadcast = broadcast
            self.label = label
            self.excluded = excluded
        }
    }

    /// garp_master_delay / _repeat / _refresh / _refresh_repeat, nanoseconds and counts.
    public struct AnnouncementTiming: Sendable, Hashable {
        public var delay: Int64 = 5_000_000_000
        public var repeatCount = 5
        /// 0: no refresh.
        public var refresh: Int64 = 0
        public var refreshRepeat = 1

        public init() {}
    }

    public struct Settings: Sendable, Hashable {
        public var name: String
        public var interface: String
        public var isV6: Bool
        public var version: UInt8
        public var virtualRouterID: UInt8
        /// The configured priority (tracking moves the effective one).
        public var priority: UInt8
        public var advertisementInterval: Int64
        public var preempt: Bool
        public var preemptDelay: Int64
        public var authentication: VRRPAdvertisement.Authentication
        /// AH's HMAC key (auth_pass, 8 bytes).
        public var authenticationKey: [UInt8] = []
        public var addresses: [Address]
        /// The source of adverts and the tie-break address (unicast_src_ip, mcast_src_ip, or the
        /// interface's own; link-local for IPv6).
        public var sourceAddress: IPAddress
        /// Empty: multicast to 224.0.0.18 / ff02::12.
        public var unicastPeers: [IPAddress]
        public var multicastGroup: IPAddress?
        public var announcements: AnnouncementTiming
        public var trackedInterfaces: [String: VRRPTracking.Weight]
        public var trackedScripts: [String: VRRPTracking.Weight]
        public var trackedFiles: [String: VRRPTracking.Weight]
        /// check_unicast_src: unicast adverts only from the unicast_peer list.
        public var checkUnicastSource: Bool
        /// vrrp_skip_check_adv_addr: the address list is not compared.
        public var skipAddressCheck: Bool
        /// dont_track_primary: the instance's own interface going down is not a fault.
        public var trackPrimaryInterface: Bool
        /// use_vmac: the macvlan (00:00:5E:00:01:VRID) that holds the addresses and sends the
        /// adverts and announcements; nil without.
        public var virtualMACInterface: String?

        public init(name: String, interface: String, isV6: Bool = false, version: UInt8 = 2, virtualRouterID: UInt8, priority: UInt8 = 100,
                    advertisementInterval: Int64 = 1_000_000_000, preempt: Bool = true, preemptDelay: Int64 = 0,
                    authentication: VRRPAdvertisement.Authentication = .none, addresses: [Address] = [], sourceAddress: IPAddress,
                    unicastPeers: [IPAddress] = [], multicastGroup: IPAddress? = nil, announcements: AnnouncementTiming = AnnouncementTiming(),
                    trackedInterfaces: [String: VRRPTracking.Weight] = [:], trackedScripts: [String: VRRPTracking.Weight] = [:],
                    trackedFiles: [String: VRRPTracking.Weight] = [:], checkUnicastSource: Bool = false, skipAddressCheck: Bool = false,
                    trackPrimaryInterface: Bool = true, virtualMACInterface: String? = nil) {
            self.name = name
            self.interface = interface
            self.isV6 = isV6
            self.version = version
            self.virtualRouterID = virtualRouterID
            self.priority = priority
            self.advertisementInterval = advertisementInterval
            self.preempt = preempt
            self.preemptDelay = preemptDelay
            self.authentication = authentication
            self.addresses = addresses
            self.sourceAddress = sourceAddress
            self.unicastPeers = unicastPeers
            self.multicastGroup = multicastGroup
            self.announcements = announcements
            self.trackedInterfaces = trackedInterfaces
            self.trackedScripts = trackedScripts
            self.trackedFiles = trackedFiles
            self.checkUnicastSource = checkUnicastSource
            self.skipAddressCheck = skipAddressCheck
            self.trackPrimaryInterface = trackPrimaryInterface
            self.virtualMACInterface = virtualMACInterface
        }

        /// Where adverts go.
        public var destinations: [IPAddress] {
            if !unicastPeers.isEmpty { return unicastPeers }
            return [multicastGroup ?? (isV6 ? VRRPInstance.group6 : VRRPInstance.group4)]
        }

        /// The addresses adverts list.
        public var advertisedAddresses: [IPAddress] {
            addresses.filter { !$0.excluded && $0.address.isV6 == isV6 }.map(\.address)
        }
    }

    public static let group4 = IPAddress("224.0.0.18")!
    public static let group6 = IPAddress("ff02::12")!

    /// keepalived's per-instance statistics (SIGUSR2's /tmp/keepalived.stats), plus the checksum
    /// and version errors it counts under other names.
    public struct Statistics: Sendable, Hashable, Codable {
        public var advertisementsReceived = 0
        public var advertisementsSent = 0
        public var becameMaster = 0
        public var releasedMaster = 0
        public var packetLengthErrors = 0
        public var intervalErrors = 0
        public var ttlErrors = 0
        public var invalidType = 0
        public var versionErrors = 0
        public var checksumErrors = 0
        public var addressListErrors = 0
        public var invalidAuthenticationType = 0
        public var authenticationTypeMismatch = 0
        public var authenticationFailures = 0
        public var unknownPeer = 0
        public var priorityZeroReceived = 0
        public var priorityZeroSent = 0

        public init() {}

        /// Adverts dropped by the checks, whatever the reason.
        public var dropped: Int {
            packetLengthErrors + intervalErrors + ttlErrors + invalidType + versionErrors + checksumErrors + invalidAuthenticationType
                + authenticationTypeMismatch + authenticationFailures + unknownPeer + addressListErrors
        }
    }

    /// A received VRRP packet as the socket saw it: the IP header's fields and the VRRP bytes.
    public struct Received: Sendable, Hashable {
        public var source: IPAddress
        public var destination: IPAddress
        /// TTL / hop limit.
        public var ttl: UInt8
        public var bytes: [UInt8]
        /// An AH-authenticated advert (IP protocol 51): the IP header as received and the AH
        /// header before the message.
        public var ipHeader: [UInt8]?
        public var authenticationHeader: [UInt8]?

        public init(source: IPAddress, destination: IPAddress, ttl: UInt8, bytes: [UInt8], ipHeader: [UInt8]? = nil,
                    authenticationHeader: [UInt8]? = nil) {
            self.source = source
            self.destination = destination
            self.ttl = ttl
            self.bytes = bytes
            self.ipHeader = ipHeader
            self.authenticationHeader = authenticationHeader
        }
    }

    /// What running the instance asks of the I/O and the director.
    public enum Effect: Sendable, Hashable {
        /// Send this advert from `source` to each destination (a v3 checksum differs by destination);
        /// with AH, under this sequence number.
        case send(VRRPAdvertisement, source: IPAddress, destinations: [IPAddress], sequence: UInt32)
        /// Own the addresses (add them, their routes) and send the first announcements.
        case takeAddresses
        /// Give the addresses up.
        case releaseAddresses
        /// `count` gratuitous ARPs / unsolicited NAs for each address.
        case announce(count: Int)
        case transition(from: VRRPStateMachine.State, to: VRRPStateMachine.State)
        case log(VRRPLogLevel, String)
    }

    public let settings: Settings
    public private(set) var machine: VRRPStateMachine
    public private(set) var statistics = Statistics()
    /// AH: the last sequence number sent or accepted (one counter both ways, as keepalived keeps it).
    public private(set) var ahSequence: UInt32 = 0
    /// The next announcements: the repeat after garp_master_delay, then each refresh.
    private var announcementDeadline: Int64?
    private var refreshing = false

    public init(_ settings: Settings) {
        self.settings = settings
        machine = VRRPStateMachine(.init(version: settings.version, virtualRouterID: settings.virtualRouterID, priority: settings.priority,
                                         advertisementInterval: settings.advertisementInterval, preempt: settings.preempt,
                                         preemptDelay: settings.preemptDelay, primaryAddress: settings.sourceAddress))
    }

    public var name: String { settings.name }
    public var state: VRRPStateMachine.State { machine.state }

    public var nextDeadline: Int64? {
        [machine.nextDeadline, state == .master ? announcementDeadline : nil].compactMap { $0 }.min()
    }

    // MARK: Events

    public mutating func start(at now: Int64, resumingMaster: Bool = false) -> [Effect] {
        run(machine.start(at: now, resumingMaster: resumingMaster), at: now)
    }

    /// A reload keeps this master: no priority-0 advert, its addresses stay.
    public mutating func abandon() {
        machine.abandon()
        announcementDeadline = nil
    }

    public mutating func tick(at now: Int64) -> [Effect] {
        var effects = run(machine.tick(at: now), at: now)
        if state == .master, let d = announcementDeadline, now >= d {
            let a = settings.announcements
            effects.append(.announce(count: refreshing ? a.refreshRepeat : a.repeatCount))
            refreshing = true
            announcementDeadline = a.refresh > 0 ? now + a.refresh : nil
        }
        return effects
    }

    /// Whether this backup's master-down timer has run out (a sync group goes master only when
    /// every member's has).
    public func masterDownExpired(at now: Int64) -> Bool {
        state == .backup && (machine.nextDeadline.map { now >= $0 } ?? false)
    }

    public mutating func shutdown(at now: Int64) -> [Effect] {
        run(machine.shutdown(at: now), at: now)
    }

    public mutating func fault(_ failed: Bool, reason: String, at now: Int64) -> [Effect] {
        let before = state
        var effects = run(machine.fault(failed, at: now), at: now)
        if failed, before != .fault, state == .fault {
            effects.insert(.log(.info, "(\(name)) \(reason)"), at: 0)
        }
        return effects
    }

    public mutating func setPriority(_ p: UInt8, at now: Int64) -> [Effect] {
        guard p != machine.priority else { return [] }
        let old = machine.priority
        var effects = run(machine.setPriority(p, at: now), at: now)
        effects.insert(.log(.info, "(\(name)) Changing effective priority from \(old) to \(p)"), at: 0)
        return effects
    }

    /// A sync group moves this member with the others.
    public mutating func follow(_ target: VRRPStateMachine.State, at now: Int64) -> [Effect] {
        run(machine.follow(target, at: now), at: now)
    }

    /// An advert for this instance's VRID: checked, counted, then handed to the state machine
    /// (keepalived's vrrp_state_backup / vrrp_state_master_rx). In FAULT and INIT it is ignored.
    public mutating func receive(_ packet: Received, at now: Int64) -> [Effect] {
        guard state == .backup || state == .master else { return [] }
        switch check(packet) {
        case .failure(let why):
            return why.message.map { [.log(.info, "(\(name)) \($0)")] } ?? []
        case .success(let advert):
            statistics.advertisementsReceived += 1
            if advert.priority == 0 { statistics.priorityZeroReceived += 1 }
            var effects: [Effect] = []
            let ours = machine.priority
            if state == .master {
                if advert.priority == 255, ours == 255 {
                    effects.append(.log(.warning, "(\(name)) CONFIGURATION ERROR: local instance and a remote instance are both configured as address owner, please fix - reducing local priority"))
                    effects += run(machine.setPriority(254, at: now), at: now)
                }
                let mine = machine.priority
                if advert.priority == 0 {
                    effects.append(.log(.debug, "(\(name)) Master received priority 0 message"))
                } else if advert.priority > mine {
                    effects.append(.log(.info, "(\(name)) Master received advert from \(packet.source) with higher priority \(advert.priority), ours \(mine)"))
                } else if advert.priority == mine, packet.source == settings.sourceAddress {
                    effects.append(.log(.warning, "(\(name)) WARNING - equal priority advert received from remote host with our IP address."))
                } else if advert.priority == mine, VRRPStateMachine.greater(packet.source, settings.sourceAddress) {
                    effects.append(.log(.info, "(\(name)) Master received advert from \(packet.source) with same priority \(mine) but higher IP address than ours"))
                } else {
                    // A lower master: answered at once and the addresses announced again.
                    effects.append(.log(.info, "(\(name)) Received advert from \(packet.source) with lower priority \(advert.priority), ours \(mine), forcing new election"))
                    if let ah = packet.authenticationHeader.flatMap(VRRPAuthenticationHeader.Fields.init), ah.sequence >= ahSequence {
                        effects.append(.log(.debug, "(\(name)) IPSEC-AH : Syncing seq_num - Increment seq"))
                        ahSequence = ah.sequence < 0xFFFF_FFFE ? ah.sequence + 1 : ah.sequence
                    }
                    effects.append(.announce(count: settings.announcements.repeatCount))
                    if settings.announcements.delay > 0 {
                        announcementDeadline = min(announcementDeadline ?? .max, now + settings.announcements.delay)
                    }
                }
            } else if advert.priority == 0 {
                effects.append(.log(.debug, "(\(name)) Backup received priority 0 advertisement"))
            } else if advert.priority < ours, machine.mayPreempt(at: now) {
                effects.append(.log(.info, "(\(name)) received lower priority (\(advert.priority)) advert from \(packet.source) - discarding"))
            }
            return effects + run(machine.received(advert, from: packet.source, at: now), at: now)
        }
    }

    /// keepalived's vrrp_check_packet, in its order. A failure's text is nil when it is not logged.
    mutating func check(_ packet: Received) -> Result<VRRPAdvertisement, Rejection> {
        let wantsAH = settings.version == 2 && settings.authentication == .ah
        if packet.authenticationHeader != nil, !wantsAH {
            statistics.authenticationTypeMismatch += 1
            return .failure(Rejection("Received AH header but auth type not AH"))
        }
        if packet.authenticationHeader == nil, wantsAH {
            statistics.authenticationTypeMismatch += 1
            return .failure(Rejection("No AH header but auth type is AH"))
        }
        // Unicast adverts may cross routers: their TTL is not checked.
        if settings.unicastPeers.isEmpty, packet.ttl != 255 {
            statistics.ttlErrors += 1
            return .failure(Rejection("invalid TTL/HL. Received \(packet.ttl) and expect 255"))
        }
        // AH is checked before the message itself (keepalived's order: a changed byte is a bad digest).
        if wantsAH, packet.bytes.first.map({ $0 >> 4 }) == 2, let why = checkAH(packet) { return .failure(why) }
        let decoded = VRRPAdvertisement.decode(packet.bytes, v6: settings.isV6, source: packet.source, destination: packet.destination)
        let advert: VRRPAdvertisement
        switch decoded {
        case .failure(let error):
            switch error {
            case .badVersion(let v):
                statistics.versionErrors += 1
                return .failure(Rejection("wrong version. Received \(v) and expect \(settings.version)"))
            case .badType(let t):
                statistics.invalidType += 1
                return .failure(Rejection("Invalid packet type. \(t) and expect 1"))
            case .badChecksum:
                statistics.checksumErrors += 1
                return .failure(Rejection("Invalid VRRPv\(packet.bytes[0] >> 4) checksum"))
            case .badAuthenticationType(let t):
                statistics.invalidAuthenticationType += 1
                return .failure(Rejection("Invalid auth type: \(t)"))
            default:
                statistics.packetLengthErrors += 1
                return .failure(Rejection("vrrp packet too short, length \(packet.bytes.count)"))
            }
        case .success(let a):
            advert = a
        }
        if advert.version != settings.version {
            statistics.versionErrors += 1
            return .failure(Rejection("wrong version. Received \(advert.version) and expect \(settings.version)"))
        }
        if settings.version == 2 {
            switch (advert.authentication, settings.authentication) {
            case (.none, .none): break
            case (.ah, .ah): break
            case (.password(let got), .password(let want)):
                if got != Array(want.prefix(8)) {
                    statistics.authenticationFailures += 1
                    return .failure(Rejection("received an invalid passwd!"))
                }
            default:
                statistics.authenticationTypeMismatch += 1
                return .failure(Rejection("received a \(Self.authType(advert.authentication)) auth, expecting \(Self.authType(settings.authentication))!"))
            }
            // RFC 3768 §7.1: an advert whose interval differs from ours is dropped (v3 learns it).
            let mine = settings.advertisementInterval / 1_000_000_000
            if Int64(advert.interval) != mine {
                statistics.intervalErrors += 1
                return .failure(Rejection("advertisement interval mismatch mine=\(mine) sec rcv'd=\(advert.interval) sec"))
            }
        }
        // The address list: always as master; as backup unless vrrp_skip_check_adv_addr and the
        // advert is from the master already known.
        let skip = settings.skipAddressCheck && state == .backup && machine.masterAddress == packet.source
        if !skip {
            let wanted = settings.advertisedAddresses
            if advert.addresses.count != wanted.count {
                statistics.addressListErrors += 1
                return .failure(Rejection("received an unexpected ip number count \(advert.addresses.count), expected \(wanted.count)!"))
            }
            if let missing = wanted.first(where: { !advert.addresses.contains($0) }) {
                statistics.addressListErrors += 1
                return .failure(Rejection("ip address associated with VRID \(settings.virtualRouterID) not present in MASTER advert: \(missing)"))
            }
            if settings.checkUnicastSource, !settings.unicastPeers.isEmpty, !settings.unicastPeers.contains(packet.source) {
                statistics.unknownPeer += 1
                return .failure(Rejection("unicast source address \(packet.source) not a unicast peer"))
            }
        }
        return .success(advert)
    }

    /// The AH header's checks in keepalived's order: next header (silently), digest, SPI, then a
    /// sequence number above the last one (which it becomes).
    private mutating func checkAH(_ packet: Received) -> Rejection? {
        guard let raw = packet.authenticationHeader, let ip = packet.ipHeader, let ah = VRRPAuthenticationHeader.Fields(raw) else {
            statistics.packetLengthErrors += 1
            return Rejection("vrrp packet too short, length \(packet.bytes.count)")
        }
        guard ah.nextHeader == 112 else {
            statistics.invalidType += 1
            return Rejection(nil)
        }
        let expected = VRRPAuthenticationHeader.digest(ipHeader: ip, ah: raw, message: packet.bytes, key: settings.authenticationKey,
                                                       unicast: !settings.unicastPeers.isEmpty)
        // Compared in full whatever differs first (no early exit to time).
        var difference: UInt8 = expected.count == ah.icv.count ? 0 : 1
        for (a, b) in zip(expected, ah.icv) { difference |= a ^ b }
        guard difference == 0 else {
            statistics.authenticationFailures += 1
            return Rejection("IPSEC-AH : invalid IPSEC HMAC-MD5 value. Due to fields mutation or bad password !")
        }
        guard ah.spi == packet.source.networkBytes else {
            statistics.authenticationFailures += 1
            let value = { (b: [UInt8]) in b.reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
            return Rejection("IPSEC AH : invalid IPSEC SPI value. \(value(ah.spi)) and expect \(value(packet.source.networkBytes))")
        }
        guard ah.sequence > ahSequence else {
            statistics.authenticationFailures += 1
            return Rejection("IPSEC-AH : sequence number \(ah.sequence) already processed. Packet dropped. Local(\(ahSequence))")
        }
        ahSequence = ah.sequence
        return nil
    }

    struct Rejection: Error {
        var message: String?
        init(_ message: String?) { self.message = message }
    }

    static func authType(_ a: VRRPAdvertisement.Authentication) -> Int {
        switch a {
        case .none: return 0
        case .password: return 1
        case .ah: return 2
        }
    }

    /// The advert this instance sends with `priority` (0 when leaving).
    public func advertisement(priority: UInt8) -> VRRPAdvertisement {
        VRRPAdvertisement(version: settings.version, virtualRouterID: settings.virtualRouterID, priority: priority,
                          interval: UInt16(settings.version == 3 ? settings.advertisementInterval / 10_000_000
                                                               : settings.advertisementInterval / 1_000_000_000),
                          addresses: settings.advertisedAddresses, authentication: settings.version == 2 ? settings.authentication : .none)
    }

    /// The state machine's actions as effects, with the announcements and counters that go with them.
    private mutating func run(_ actions: [VRRPStateMachine.Action], at now: Int64) -> [Effect] {
        var effects: [Effect] = []
        for action in actions {
            switch action {
            case .advertise(let priority):
                statistics.advertisementsSent += 1
                if priority == 0 { statistics.priorityZeroSent += 1 }
                // keepalived stops counting just short of the end.
                if ahSequence < 0xFFFF_FFFE { ahSequence += 1 }
                effects.append(.send(advertisement(priority: priority), source: settings.sourceAddress, destinations: settings.destinations,
                                     sequence: ahSequence))
            case .transition(let from, let to):
                if to == .master {
                    statistics.becameMaster += 1
                    effects.append(.log(.info, "(\(name)) Entering MASTER STATE"))
                    effects.append(.takeAddresses)
                    effects.append(.announce(count: settings.announcements.repeatCount))
                    refreshing = false
                    announcementDeadline = settings.announcements.delay > 0 ? now + settings.announcements.delay
                        : (settings.announcements.refresh > 0 ? now + settings.announcements.refresh : nil)
                    if settings.announcements.delay == 0 { refreshing = true }
                } else {
                    if from == .master {
                        statistics.releasedMaster += 1
                        effects.append(.releaseAddresses)
                    }
                    announcementDeadline = nil
                    switch to {
                    case .backup: effects.append(.log(.info, "(\(name)) Entering BACKUP STATE\(from == .initialize ? " (init)" : "")"))
                    case .fault: effects.append(.log(.info, "(\(name)) Entering FAULT STATE"))
                    case .initialize: break
                    case .master: break
                    }
                }
                effects.append(.transition(from: from, to: to))
            }
        }
        return effects
    }
}

public enum VRRPLogLevel: String, Sendable, Hashable {
    case debug, info, warning, error
}
