import Testing
@testable import LVSCore

/// Every cell of the kernel's SCTP tables, and an association's life through the connection table.
@Suite struct SCTPStateMachineTests {
    static let columns = ["NO", "I1", "IN", "CS", "CR", "CW", "CO", "CE", "ES", "SS", "SR", "SA", "RJ", "CL"]
    static let chunks: [String: SCTPChunk] = [
        "data": .data, "init": .initChunk, "init-ack": .initAck, "cookie-echo": .cookieEcho, "cookie-ack": .cookieAck,
        "shutdown": .shutdown, "shutdown-ack": .shutdownAck, "shutdown-complete": .shutdownComplete, "error": .error,
        "abort": .abort,
    ]

    static let input = """
        data ES I1 IN CS CR CW CO CE ES SS SR SA RJ CL
        init I1 IN IN CS CR CW CO CE ES SS SR SA IN IN
        init-ack CW CW CW CS CR CO CO CE ES SS SR SA RJ CL
        cookie-echo CR IN IN CR CR CW CO CE ES SS SR SA RJ CL
        cookie-ack ES I1 IN CS CR CW CO ES ES SS SR SA RJ CL
        shutdown SR I1 IN CS CR CW CO CE SR SS SR SA RJ CL
        shutdown-ack CL IN IN CS CR CW CO CE ES CL SR CL RJ CL
        shutdown-complete CL CL CL CS CR CW CO CE ES SS SR CL RJ CL
        error CL I1 IN CS CR CW CO CL ES SS SR SA RJ CL
        abort CL CL CL CL CL RJ CL CL CL CL CL CL CL CL
        """
    static let output = """
        data ES I1 IN CS CR CW CO CE ES SS SR SA RJ CL
        init CW CW CW CW CW CW CW CW ES CW CW CW CW CW
        init-ack CS CS CS CS CR CW CO CE ES SS SR SA RJ CL
        cookie-echo CE CE CE CE CE CE CE CE ES SS SR SA RJ CL
        cookie-ack ES ES ES ES ES ES ES ES ES SS SR SA RJ CL
        shutdown SS SS SS SS SS SS SS SS SS SS SR SA RJ CL
        shutdown-ack SA SA SA SA SA CW CO CE ES SA SA SA RJ CL
        shutdown-complete CL I1 IN CS CR CW CO CE ES SS SR SA RJ CL
        error CL CL CL CL CL CW CO CE ES SS SR SA RJ CL
        abort CL RJ CL CL CL CL CL CL CL CL CL CL CL CL
        """
    static let inputOnly = """
        data ES I1 IN CS CR ES CO CE ES SS SR SA RJ CL
        init I1 IN IN IN IN IN CO CE ES SS SR SA IN IN
        init-ack CE CE CE CE CE CE CO CE ES SS SR SA RJ CL
        cookie-echo ES ES ES ES ES ES CO CE ES SS SR SA RJ CL
        cookie-ack ES I1 IN ES ES CW ES ES ES SS SR SA RJ CL
        shutdown SR I1 IN CS CR CW CO CE SR SS SR SA RJ CL
        shutdown-ack CL IN IN CS CR CW CO CE CL CL SR CL RJ CL
        shutdown-complete CL CL CL CL CL CW CO CE ES SS CL CL RJ CL
        error CL I1 IN CS CR CW CO CE ES SS SR SA RJ CL
        abort CL CL CL CL CL RJ CL CL CL CL CL CL CL CL
        """

    func check(_ table: String, _ direction: PacketDirection, inputOnly: Bool) {
        for line in table.split(separator: "\n") {
            let cells = line.split(separator: " ").map(String.init)
            let chunk = SCTPStateMachineTests.chunks[cells[0]]!
            for (col, expected) in cells.dropFirst().enumerated() {
                let from = SCTPState(rawValue: UInt8(col))!
                let want = SCTPState(rawValue: UInt8(SCTPStateMachineTests.columns.firstIndex(of: expected)!))!
                #expect(SCTPStateMachine.next(from: from, chunk: chunk, direction: direction, inputOnly: inputOnly) == want,
                        "\(cells[0]) from \(from.name)")
            }
        }
    }

    @Test func inputTable() { check(SCTPStateMachineTests.input, .input, inputOnly: false) }
    @Test func outputTable() { check(SCTPStateMachineTests.output, .output, inputOnly: false) }
    @Test func inputOnlyTable() { check(SCTPStateMachineTests.inputOnly, .input, inputOnly: true) }

    @Test func otherChunksCountAsData() {
        for c in [SCTPChunk.sack, .heartbeat, .heartbeatAck, .ecnEcho, .congestionWindowReduced] {
            #expect(c.event == SCTPChunk.data.event)
        }
    }

    @Test func associationLifecycleThroughTheTable() throws {
        let key = VirtualService.Key.address(.sctp, v4("10.0.0.100"), 5000)
        var t = IPVS()
        try t.addService(VirtualService.Config(key: key, scheduler: "rr"))
        try t.addServer(RealServerConfig(ep("172.16.0.2:5000"), forwarding: .masquerade), to: key)
        let client = ep("192.168.0.5:7000")
        let server = ep("172.16.0.2:5000")
        func c2s(_ chunk: SCTPChunk) -> InboundVerdict {
            t.inbound(PacketSummary(protocolNumber: 132, source: client.address, sourcePort: client.port,
                                    destination: v4("10.0.0.100"), destinationPort: 5000, sctpChunk: chunk, length: 100), now: 0)
        }
        func s2c(_ chunk: SCTPChunk) {
            _ = t.outbound(PacketSummary(protocolNumber: 132, source: server.address, sourcePort: server.port,
                                         destination: client.address, destinationPort: client.port, sctpChunk: chunk,
                                         length: 100), now: 0)
        }
        func state() -> String { t.connectionSnapshots(now: 0).first?.stateName ?? "-" }
        #expect(c2s(.data) == .pass)
        #expect(c2s(.abort) == .pass)
        guard case .forward = c2s(.initChunk) else { Issue.record("INIT not scheduled"); return }
        #expect(state() == "INIT1")
        #expect(t.connectionSnapshots(now: 0).first?.expiresIn == 4000)
        s2c(.initAck)
        #expect(state() == "C-SENT")
        _ = c2s(.cookieEcho)
        #expect(state() == "C-REPLIED")
        s2c(.cookieAck)
        #expect(state() == "ESTABLISHED")
        #expect(t.server(key, "172.16.0.2")?.activeConnections == 1)
        _ = c2s(.data)
        #expect(t.connectionSnapshots(now: 0).first?.expiresIn == 900_000)
        _ = c2s(.shutdown)
        #expect(state() == "S-RECEIVED")
        #expect(t.server(key, "172.16.0.2")?.activeConnections == 0)
        #expect(t.server(key, "172.16.0.2")?.inactiveConnections == 1)
        s2c(.shutdownAck)
        #expect(state() == "S-ACK-SENT")
        _ = c2s(.shutdownComplete)
        #expect(state() == "CLOSED")
    }
}
