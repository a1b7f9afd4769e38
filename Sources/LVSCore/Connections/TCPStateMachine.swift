/// The IPVS TCP connection states, numbered as the kernel numbers them.
public enum TCPState: UInt8, Sendable, CaseIterable {
    case none = 0
    case established = 1
    case synSent = 2
    case synReceived = 3
    case finWait = 4
    case timeWait = 5
    case close = 6
    case closeWait = 7
    case lastAck = 8
    case listen = 9
    case synAck = 10

    /// The name `ipvsadm -Lc` prints.
    public var name: String {
        switch self {
        case .none: return "NONE"
        case .established: return "ESTABLISHED"
        case .synSent: return "SYN_SENT"
        case .synReceived: return "SYN_RECV"
        case .finWait: return "FIN_WAIT"
        case .timeWait: return "TIME_WAIT"
        case .close: return "CLOSE"
        case .closeWait: return "CLOSE_WAIT"
        case .lastAck: return "LAST_ACK"
        case .listen: return "LISTEN"
        case .synAck: return "SYNACK"
        }
    }

    /// States counted in ActiveConn; all others count as InActConn.
    public var isActive: Bool {
        switch self {
        case .established, .synSent, .synReceived, .synAck: return true
        default: return false
        }
    }
}

/// TCP header flags as the state machine reads them.
public struct TCPFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
}

/// Which way a packet travels relative to the connection.
public enum PacketDirection: Sendable {
    /// Client to real server (through the VIP).
    case input
    /// Real server to client (only seen for NAT).
    case output
}

/// The kernel's TCP transition tables (ip_vs_proto_tcp.c), normal and secure_tcp variants.
public enum TCPStateMachine {
    // Each table row (one event) packs the next state for the 11 current states, 4 bits each, state 0 in
    // the low bits. Rows in the kernel's order: INPUT (0-3), OUTPUT (4-7), INPUT-ONLY (8-11), events
    // syn, fin, ack, rst. Built from the reference tables by `pack`; checked cell by cell by the tests.
    @inline(__always)
    static func row(_ index: Int, secure: Bool) -> UInt64 {
        switch (index, secure) {
        case (0, false): return 0x33333333113  // SR ES ES SR SR SR SR SR SR SR SR
        case (0, true): return 0xA3333333113  // SR ES ES SR SR SR SR SR SR SR SA
        case (1, false): return 0x59876555276  // CL CW SS TW TW TW CL CW LA LI TW
        case (1, true): return 0xA9876555276  // CL CW SS TW TW TW CL CW LA LI SA
        case (2, false): return 0x19676541211  // ES ES SS ES FW TW CL CW CL LI ES
        case (2, true): return 0xA9676543211  // ES ES SS SR FW TW CL CW CL LI SA
        case (3, false): return 0x39866663666  // CL CL CL SR CL CL CL CL LA LI SR
        case (3, true): return 0x69866663666  // CL CL CL SR CL CL CL CL LA LI CL
        case (4, false): return 0x39222223212  // SS ES SS SR SS SS SS SS SS LI SR
        case (4, true): return 0xA922222A212  // SS ES SS SA SS SS SS SS SS LI SA
        case (5, _): return 0x59856545245  // TW FW SS TW FW TW CL TW LA LI TW
        case (6, _): return 0x11876541211  // ES ES SS ES FW TW CL CW LA ES ES
        case (7, _): return 0x66666566266  // CL CL SS CL CL TW CL CL CL CL CL
        case (8, false): return 0x33333333113  // SR ES ES SR SR SR SR SR SR SR SR
        case (8, true): return 0xAAAAAAA311A  // SA ES ES SR SA SA SA SA SA SA SA
        case (9, _): return 0x59876545246  // CL FW SS TW FW TW CL CW LA LI TW
        case (10, _): return 0x19676541211  // ES ES SS ES FW TW CL CW CL LI ES
        case (11, _): return 0x69866663666  // CL CL CL SR CL CL CL CL LA LI CL
        default: return 0x66_6666_6666
        }
    }

    /// Packs a row written as eleven next states (for tests and for checking the constants above).
    static func pack(_ states: [TCPState]) -> UInt64 {
        var v: UInt64 = 0
        for (i, s) in states.enumerated() { v |= UInt64(s.rawValue) << UInt64(4 * i) }
        return v
    }

    /// The event row a segment selects: RST, else SYN, else FIN, else ACK; nil if none of them is set.
    @inlinable
    public static func eventIndex(_ flags: TCPFlags) -> Int? {
        if flags.contains(.rst) { return 3 }
        if flags.contains(.syn) { return 0 }
        if flags.contains(.fin) { return 1 }
        if flags.contains(.ack) { return 2 }
        return nil
    }

    /// The next state for a segment. `inputOnly` is true for connections whose replies are not seen
    /// (direct routing, tunnelling, local) as long as no output packet has been seen.
    public static func next(
        from state: TCPState, flags: TCPFlags, direction: PacketDirection, inputOnly: Bool, secure: Bool = false
    ) -> TCPState {
        // A segment with none of SYN/FIN/ACK/RST moves the connection to CLOSE.
        guard let event = eventIndex(flags) else { return .close }
        let offset: Int
        switch direction {
        case .input: offset = inputOnly ? 8 : 0
        case .output: offset = 4
        }
        let next = (row(offset + event, secure: secure) >> UInt64(4 * Int(state.rawValue))) & 0xF
        return TCPState(rawValue: UInt8(next)) ?? .close
    }
}

/// SCTP association states as IPVS tracks them (ip_vs_proto_sctp.c numbering). Only ESTABLISHED
/// counts as an active connection.
public enum SCTPState: UInt8, Sendable, CaseIterable {
    case none = 0, initOne, `init`, cookieSent, cookieReplied, cookieWait, cookie, cookieEchoed
    case established, shutdownSent, shutdownReceived, shutdownAckSent, rejected, closed

    /// The name `ipvsadm -Lc` prints.
    public var name: String {
        ["NONE", "INIT1", "INIT", "C-SENT", "C-REPLIED", "C-WAIT", "COOKIE", "C-ECHOED", "ESTABLISHED", "S-SENT",
         "S-RECEIVED", "S-ACK-SENT", "REJECTED", "CLOSED"][Int(rawValue)]
    }
}

/// The SCTP chunk type that drives a state change (RFC 4960 numbering). An engine reports the first
/// chunk of a packet, or ABORT when a COOKIE ECHO or COOKIE ACK is followed by one, and `.data` for
/// any chunk type not listed here.
public enum SCTPChunk: UInt8, Sendable {
    case data = 0, initChunk = 1, initAck = 2, sack = 3, heartbeat = 4, heartbeatAck = 5, abort = 6
    case shutdown = 7, shutdownAck = 8, error = 9, cookieEcho = 10, cookieAck = 11, ecnEcho = 12, congestionWindowReduced = 13
    case shutdownComplete = 14

    /// The row of the transition tables this chunk selects.
    var event: Int {
        switch self {
        case .data, .sack, .heartbeat, .heartbeatAck, .ecnEcho, .congestionWindowReduced: return 0
        case .initChunk: return 1
        case .initAck: return 2
        case .cookieEcho: return 3
        case .cookieAck: return 4
        case .shutdown: return 5
        case .shutdownAck: return 6
        case .shutdownComplete: return 7
        case .error: return 8
        case .abort: return 9
        }
    }
}

/// The kernel's SCTP transition tables: INPUT, OUTPUT and INPUT-ONLY, ten events each (data, init,
/// init-ack, cookie-echo, cookie-ack, shutdown, shutdown-ack, shutdown-complete, error, abort). Each
/// row packs the next state for the 14 current states, 4 bits each, state 0 in the low bits.
public enum SCTPStateMachine {
    static let rows: [UInt64] = [
        // INPUT
        0xDCBA9876543218,  // data: ES I1 IN CS CR CW CO CE ES SS SR SA RJ CL
        0x22BA9876543221,  // init: I1 IN IN CS CR CW CO CE ES SS SR SA IN IN
        0xDCBA9876643555,  // init-ack: CW CW CW CS CR CO CO CE ES SS SR SA RJ CL
        0xDCBA9876544224,  // cookie-echo: CR IN IN CR CR CW CO CE ES SS SR SA RJ CL
        0xDCBA9886543218,  // cookie-ack: ES I1 IN CS CR CW CO ES ES SS SR SA RJ CL
        0xDCBA9A7654321A,  // shutdown: SR I1 IN CS CR CW CO CE SR SS SR SA RJ CL
        0xDCDAD87654322D,  // shutdown-ack: CL IN IN CS CR CW CO CE ES CL SR CL RJ CL
        0xDCDA9876543DDD,  // shutdown-complete: CL CL CL CS CR CW CO CE ES SS SR CL RJ CL
        0xDCBA98D654321D,  // error: CL I1 IN CS CR CW CO CL ES SS SR SA RJ CL
        0xDDDDDDDDCDDDDD,  // abort: CL CL CL CL CL RJ CL CL CL CL CL CL CL CL
        // OUTPUT
        0xDCBA9876543218,  // data: ES I1 IN CS CR CW CO CE ES SS SR SA RJ CL
        0x55555855555555,  // init: CW CW CW CW CW CW CW CW ES CW CW CW CW CW
        0xDCBA9876543333,  // init-ack: CS CS CS CS CR CW CO CE ES SS SR SA RJ CL
        0xDCBA9877777777,  // cookie-echo: CE CE CE CE CE CE CE CE ES SS SR SA RJ CL
        0xDCBA9888888888,  // cookie-ack: ES ES ES ES ES ES ES ES ES SS SR SA RJ CL
        0xDCBA9999999999,  // shutdown: SS SS SS SS SS SS SS SS SS SS SR SA RJ CL
        0xDCBBB8765BBBBB,  // shutdown-ack: SA SA SA SA SA CW CO CE ES SA SA SA RJ CL
        0xDCBA987654321D,  // shutdown-complete: CL I1 IN CS CR CW CO CE ES SS SR SA RJ CL
        0xDCBA98765DDDDD,  // error: CL CL CL CL CL CW CO CE ES SS SR SA RJ CL
        0xDDDDDDDDDDDDCD,  // abort: CL RJ CL CL CL CL CL CL CL CL CL CL CL CL
        // INPUT-ONLY
        0xDCBA9876843218,  // data: ES I1 IN CS CR ES CO CE ES SS SR SA RJ CL
        0x22BA9876222221,  // init: I1 IN IN IN IN IN CO CE ES SS SR SA IN IN
        0xDCBA9876777777,  // init-ack: CE CE CE CE CE CE CO CE ES SS SR SA RJ CL
        0xDCBA9876888888,  // cookie-echo: ES ES ES ES ES ES CO CE ES SS SR SA RJ CL
        0xDCBA9888588218,  // cookie-ack: ES I1 IN ES ES CW ES ES ES SS SR SA RJ CL
        0xDCBA9A7654321A,  // shutdown: SR I1 IN CS CR CW CO CE SR SS SR SA RJ CL
        0xDCDADD7654322D,  // shutdown-ack: CL IN IN CS CR CW CO CE CL CL SR CL RJ CL
        0xDCDD98765DDDDD,  // shutdown-complete: CL CL CL CL CL CW CO CE ES SS CL CL RJ CL
        0xDCBA987654321D,  // error: CL I1 IN CS CR CW CO CE ES SS SR SA RJ CL
        0xDDDDDDDDCDDDDD,  // abort: CL CL CL CL CL RJ CL CL CL CL CL CL CL CL
    ]

    public static func next(
        from state: SCTPState, chunk: SCTPChunk, direction: PacketDirection, inputOnly: Bool
    ) -> SCTPState {
        let table: Int
        switch direction {
        case .input: table = inputOnly ? 2 : 0
        case .output: table = 1
        }
        let row = rows[table * 10 + chunk.event]
        return SCTPState(rawValue: UInt8((row >> UInt64(4 * Int(state.rawValue))) & 0xF)) ?? .closed
    }
}
