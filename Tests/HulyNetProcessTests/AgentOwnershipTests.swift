import HulyNet
import HulyNetCore
import HulyNetProcess
import HulyNetSync
import HulyNetZMQ
import XCTest

#if canImport(Glibc)
import Glibc
#endif

// Agents belong to the client that registered them: against a real `hulynet server` process and
// a real `hulynet agent` process, another client can neither take an agent's record over (`ar`)
// nor remove it (`au`); a restarted agent process with the same uuid gets it back once the old
// process's client is gone.

final class AgentOwnershipTests: ProcessTestCase {
    func testHijackAttemptsAreRefusedAndARestartedAgentTakesItsUuidBack() async throws {
        let (_, port) = try startServer()
        let agentId = "fixed-agent-\(makeUUID())"
        let owner = try startAgent(port: port, uuid: agentId)

        let client = try await connectClient(port: port)
        let reference = try await client.get(kind: "echo", options: GetOptions(labels: ["victim"]))
        let before = try await reference.request("echo", "before")
        XCTAssertEqual(before, "before")

        // A raw client names the owner's agent in `ar` and in `au`.
        let thief = try RawDealer(port: port)
        try thief.send([Array("0".utf8), Array("thief-\(makeUUID())".utf8), Array(#"{"aliveTimeout":30}"#.utf8), []],
                       timeoutMs: scaled(5000))
        XCTAssertEqual(try answer(thief)?.first, "0", "hello answered")
        let takeOver = JSONValue.array(["ar", AgentRegistration(uuid: agentId, containers: [], kinds: ["evil"],
                                                                endpoint: nil).json]).serialized()
        try thief.send([Array("1".utf8), Array("t-1".utf8), takeOver], timeoutMs: scaled(5000))
        let refusedTakeOver = try answer(thief)
        XCTAssertEqual(refusedTakeOver?.first, "3", "ar naming another client's agent: \(refusedTakeOver ?? [])")
        XCTAssertEqual(refusedTakeOver.map { RemoteError(payload: Array($0[2].utf8)) },
                       agentOwnedByAnotherClient(agentId))
        let remove = JSONValue.array(["au", ["uuid": .string(agentId)]]).serialized()
        try thief.send([Array("1".utf8), Array("t-2".utf8), remove], timeoutMs: scaled(5000))
        let refusedRemove = try answer(thief)
        XCTAssertEqual(refusedRemove?.first, "3", "au naming another client's agent: \(refusedRemove ?? [])")

        // The victim and its container are untouched.
        let agents = try await client.agentList()
        XCTAssertEqual(agents.map(\.agentId), [agentId])
        XCTAssertEqual(agents.first?.kinds, ["echo"])
        XCTAssertEqual(agents.first?.containers, 1)
        let after = try await reference.request("echo", "after")
        XCTAssertEqual(after, "after")

        // The owner process is killed (no goodbye); a new process with the same uuid registers
        // as soon as the old one's client is dropped (its alive timeout, 3 s by default).
        owner.send(SIGKILL)
        let killedAt = ChildProcess.nowMs()
        let restarted = try startAgent(port: port, uuid: agentId)
        let restartMs = ChildProcess.nowMs() - killedAt
        print("figure: hijack: ar and au from another client refused; a restarted agent process with the same uuid registered \(restartMs) ms after the old one was killed")
        XCTAssertLessThan(restartMs, Int64(scaled(10_000)))
        let listed = try await client.agentList()
        XCTAssertEqual(listed.map(\.agentId), [agentId])
        let again = try await client.get(kind: "echo", options: GetOptions(labels: ["again"]))
        let served = try await again.request("echo", "served by the restarted agent")
        XCTAssertEqual(served, "served by the restarted agent")
        XCTAssertTrue(restarted.isRunning)
    }

    /// A client re-registering its own agent (as on every coordinator restart) is not refused.
    func testOwnerReRegistersItsOwnAgent() async throws {
        let (_, port) = try startServer()
        let owner = try await connectClient(port: port)
        let agent = Agent(containerTypes: [EchoContainer.self])
        try await owner.serve(agent)
        try await owner.register(agent)
        let client = try await connectClient(port: port)
        let listed = try await client.agentList()
        XCTAssertEqual(listed.map(\.agentId), [agent.uuid])
        try await owner.unregister(agent)
        let left = try await client.agentList()
        XCTAssertEqual(left, [])
    }

    private func startAgent(port: Int, uuid: String) throws -> ChildProcess {
        let agent = try startHulynet(["agent", "--network", "127.0.0.1:\(port)", "--uuid", uuid, "--kind", "echo"])
        try agent.waitForLine(containing: "agent \(uuid) serving", timeoutMs: scaled(15_000))
        return agent
    }

    /// The next answer that is not an event nor a pong, as text frames.
    private func answer(_ peer: RawDealer) throws -> [String]? {
        let deadline = ChildProcess.nowMs() + Int64(scaled(5000))
        while ChildProcess.nowMs() < deadline {
            guard let frames = try peer.receive(timeoutMs: scaled(5000)) else { return nil }
            let text = frames.map(\.frameText)
            if text.first == "4" || text.first == "6" { continue }
            return text
        }
        return nil
    }
}
