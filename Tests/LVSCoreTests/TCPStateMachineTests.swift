import Testing
@testable import LVSCore

/// Every transition of the three IPVS TCP tables (reference §2.3), written out as the reference
/// prints them and checked cell by cell.
@Suite struct TCPStateMachineTests {
    static let columns = ["NO", "ES", "SS", "SR", "FW", "TW", "CL", "CW", "LA", "LI", "SA"]
    static let abbreviation: [String: TCPState] = [
        "NO": .none, "ES": .established, "SS": .synSent, "SR": .synReceived, "FW": .finWait, "TW": .timeWait,
        "CL": .close, "CW": .closeWait, "LA": .lastAck, "LI": .listen, "SA": .synAck,
    ]
    static let events: [(String, TCPFlags)] = [("syn", .syn), ("fin", .fin), ("ack", .ack), ("rst", .rst)]

    static let input = """
        syn SR ES ES SR SR SR SR SR SR SR SR
        fin CL CW SS TW TW TW CL CW LA LI TW
        ack ES ES SS ES FW TW CL CW CL LI ES
        rst CL CL CL SR CL CL CL CL LA LI SR
        """
    static let output = """
        syn SS ES SS SR SS SS SS SS SS LI SR
        fin TW FW SS TW FW TW CL TW LA LI TW
        ack ES ES SS ES FW TW CL CW LA ES ES
        rst CL CL SS CL CL TW CL CL CL CL CL
        """
    static let inputOnly = """
        syn SR ES ES SR SR SR SR SR SR SR SR
        fin CL FW SS TW FW TW CL CW LA LI TW
        ack ES ES SS ES FW TW CL CW CL LI ES
        rst CL CL CL SR CL CL CL CL LA LI CL
        """

    func check(_ table: String, direction: PacketDirection, inputOnly: Bool, secure: Bool = false) {
        for (row, line) in table.split(separator: "\n").enumerated() {
            let cells = line.split(separator: " ").map(String.init)
            let (name, flags) = TCPStateMachineTests.events[row]
            #expect(cells[0] == name)
            for (col, expected) in cells.dropFirst().enumerated() {
                let from = TCPStateMachineTests.abbreviation[TCPStateMachineTests.columns[col]]!
                let got = TCPStateMachine.next(from: from, flags: flags, direction: direction, inputOnly: inputOnly, secure: secure)
                #expect(got == TCPStateMachineTests.abbreviation[expected], "\(name) from \(from.name)")
            }
        }
    }

    @Test func inputTable() { check(TCPStateMachineTests.input, direction: .input, inputOnly: false) }
    @Test func outputTable() { check(TCPStateMachineTests.output, direction: .output, inputOnly: false) }
    @Test func inputOnlyTable() { check(TCPStateMachineTests.inputOnly, direction: .input, inputOnly: true) }

    @Test func secureTablesDifferOnlyWhereTheKernelsDo() {
        func cell(_ d: PacketDirection, _ only: Bool, _ f: TCPFlags, _ s: TCPState) -> TCPState {
            TCPStateMachine.next(from: s, flags: f, direction: d, inputOnly: only, secure: true)
        }
        #expect(cell(.input, false, .syn, .synAck) == .synAck)
        #expect(cell(.input, false, .fin, .synAck) == .synAck)
        #expect(cell(.input, false, .ack, .synReceived) == .synReceived)
        #expect(cell(.input, false, .ack, .synAck) == .synAck)
        #expect(cell(.input, false, .rst, .synAck) == .close)
        #expect(cell(.output, false, .syn, .synReceived) == .synAck)
        #expect(cell(.output, false, .syn, .synAck) == .synAck)
        for s in [TCPState.none, .finWait, .timeWait, .close, .closeWait, .lastAck, .listen, .synAck] {
            #expect(cell(.input, true, .syn, s) == .synAck)
        }
        var differences = 0
        for d in [(PacketDirection.input, false), (.output, false), (.input, true)] {
            for (_, f) in TCPStateMachineTests.events {
                for s in TCPState.allCases {
                    let a = TCPStateMachine.next(from: s, flags: f, direction: d.0, inputOnly: d.1, secure: false)
                    let b = TCPStateMachine.next(from: s, flags: f, direction: d.0, inputOnly: d.1, secure: true)
                    if a != b { differences += 1 }
                }
            }
        }
        // INPUT: 5 cells, OUTPUT: 2, INPUT-ONLY: 8.
        #expect(differences == 5 + 2 + 8)
    }

    @Test func eventPriorityAndFlaglessSegments() {
        #expect(TCPStateMachine.eventIndex([.syn, .rst]) == 3)
        #expect(TCPStateMachine.eventIndex([.syn, .fin, .ack]) == 0)
        #expect(TCPStateMachine.eventIndex([.fin, .ack]) == 1)
        #expect(TCPStateMachine.eventIndex(.psh) == nil)
        #expect(TCPStateMachine.next(from: .established, flags: .psh, direction: .input, inputOnly: false) == .close)
    }

    @Test func namesAndActivity() {
        #expect(TCPState.allCases.map(\.name) == ["NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT",
                                                  "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "SYNACK"])
        #expect(TCPState.allCases.filter(\.isActive) == [.established, .synSent, .synReceived, .synAck])
        #expect(Timeouts().tcp.map { $0 / 1000 } == [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120])
    }
}
