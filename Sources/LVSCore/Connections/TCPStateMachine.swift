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
    private typealias S = TCPState
    // Rows: syn, fin, ack, rst. Columns: NO ES SS SR FW TW CL CW LA LI SA.
    private static let NO = S.none.rawValue, ES = S.established.rawValue, SS = S.synSent.rawValue
    private static let SR = S.synReceived.rawValue, FW = S.finWait.rawValue, TW = S.timeWait.rawValue
    private static let CL = S.close.rawValue, CW = S.closeWait.rawValue, LA = S.lastAck.rawValue
    private static let LI = S.listen.rawValue, SA = S.synAck.rawValue

    /// Tables in the kernel's order: INPUT (0), OUTPUT (4), INPUT-ONLY (8), four event rows each.
    static let normal: [[UInt8]] = [
        // INPUT
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
        // OUTPUT
        [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
        // INPUT-ONLY
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ]

    static let secure: [[UInt8]] = [
        // INPUT
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SA],
        [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, SA],
        [ES, ES, SS, SR, FW, TW, CL, CW, CL, LI, SA],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
        // OUTPUT
        [SS, ES, SS, SA, SS, SS, SS, SS, SS, LI, SA],
        [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
        // INPUT-ONLY
        [SA, ES, ES, SR, SA, SA, SA, SA, SA, SA, SA],
        [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ]

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
        let table = secure ? TCPStateMachine.secure : TCPStateMachine.normal
        return TCPState(rawValue: table[offset + event][Int(state.rawValue)]) ?? .close
    }
}

/// SCTP association states (ip_vs_proto_sctp.c numbering) and the chunk events that move them.
///
/// The kernel's full 14-state table is reproduced for the transitions that matter to counting and
/// timeouts: an association is active only in ESTABLISHED.
public enum SCTPState: UInt8, Sendable, CaseIterable {
    case none = 0, initOne, `init`, cookieSent, cookieReplied, cookieWait, cookie, cookieEchoed
    case established, shutdownSent, shutdownReceived, shutdownAckSent, rejected, closed

    public var name: String {
        ["NONE", "INIT1", "INIT", "COOKIE_SENT", "COOKIE_REPLIED", "COOKIE_WAIT", "COOKIE", "COOKIE_ECHOED",
         "ESTABLISHED", "SHUTDOWN_SENT", "SHUTDOWN_RECEIVED", "SHUTDOWN_ACK_SENT", "REJECTED", "CLOSED"][Int(rawValue)]
    }
}

/// The SCTP chunk that drives a state change.
public enum SCTPChunk: UInt8, Sendable {
    case data = 0, initChunk = 1, initAck = 2, sack = 3, heartbeat = 4, heartbeatAck = 5, abort = 6
    case shutdown = 7, shutdownAck = 8, error = 9, cookieEcho = 10, cookieAck = 11, shutdownComplete = 14

    func next(from state: SCTPState, direction: PacketDirection) -> SCTPState {
        switch self {
        case .initChunk: return direction == .input ? .initOne : .`init`
        case .initAck: return state == .cookieEchoed ? .cookieEchoed : .`init`
        case .cookieEcho: return .cookieEchoed
        case .cookieAck: return .established
        case .data, .sack, .heartbeat, .heartbeatAck:
            switch state {
            case .cookieEchoed, .established: return .established
            default: return state
            }
        case .shutdown: return direction == .input ? .shutdownSent : .shutdownReceived
        case .shutdownAck: return .shutdownAckSent
        case .shutdownComplete: return .closed
        case .abort: return .closed
        case .error: return state == .none ? .rejected : state
        }
    }
}
