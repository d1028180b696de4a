import HulyNet
import HulyNetCore
import HulyNetProcess
import XCTest

#if canImport(Glibc)
import Glibc
#endif

// The network's promise, on real processes: an agent killed (-9), a highly available container's
// owner killed, a coordinator killed and restarted with slow requests in flight, in either order
// of return. The callers are `hulynet call` probes (child processes, so that they can be paused
// like any peer); each prints every call's outcome, and the test reads what the caller saw.
// Default timeouts throughout (alive 3 s, ping 1 s, request 30 s), as in production.
//
// Each test prints a FIGURE line with what it measured; docs/RELIABILITY.md quotes them.

final class FailoverTests: ProcessTestCase {

    // MARK: - An agent killed

    /// kill -9 of the agent that runs referenced containers, another agent of the kind up, a
    /// caller at 100 requests a second through the coordinator (a labelled reference) and another
    /// over a routed connection (a uuid reference): the references follow their containers, no
    /// caller sees an error, no call takes longer than the request timeout, and each container
    /// runs once.
    func testAgentKilledReferencesFollowTheirContainer() async throws {
        let (_, port) = try startServer()
        let victim = try startAgent(port: port)
        let label = "failover-\(makeUUID().prefix(8))"
        let uuid = "failover-\(makeUUID())"
        let viaNetwork = try startProbe(port: port, ["--label", label, "--rate", "100", "--duration", "9"])
        let viaConnection = try startProbe(port: port, ["--uuid", uuid, "--rate", "100", "--duration", "9", "--connection"])
        // Both containers run on the first agent; the second comes up to take them.
        XCTAssertEqual(try ProbeReport(viaNetwork.output()).agentId, victim.uuid)
        XCTAssertEqual(try ProbeReport(viaConnection.output()).agentId, victim.uuid)
        let survivor = try startAgent(port: port)
        try waitForCalls(viaNetwork, atLeast: 50)

        let killedAt = ChildProcess.nowMs()
        victim.process.send(SIGKILL)

        for (probe, path) in [(viaNetwork, "through the coordinator"), (viaConnection, "over a routed connection")] {
            let report = try waitForDone(probe)
            XCTAssertEqual(report.errors.count, 0, "\(path): errors \(report.errors.prefix(3))")
            XCTAssertLessThan(report.maxCallMs, 30_000, "\(path): a call took longer than the request timeout")
            XCTAssertEqual(report.moves.count, 1, "\(path): the caller was told once that its container moved")
            XCTAssertEqual(report.moves.first.flatMap { agentId(ofEndpoint: $0.endpoint) }, survivor.uuid, path)
            let outage = try XCTUnwrap(report.outage(around: killedAt), path)
            print("FIGURE failover.agent_kill path=\(path == "over a routed connection" ? "connection" : "coordinator") "
                  + "first_success_after_kill_ms=\(outage.endedAt - killedAt) longest_wait_ms=\(outage.ms) "
                  + "errors=\(report.errors.count) calls=\(report.calls.count) max_call_ms=\(report.maxCallMs)")
        }
        let client = try await connectClient(port: port)
        let containers = try await client.list(kind: "echo")
        XCTAssertEqual(containers.filter { $0.labels?.contains(label) == true }.map(\.agentId), [survivor.uuid],
                       "the labelled container runs once, on the survivor")
        XCTAssertEqual(containers.filter { $0.uuid == uuid }.map(\.agentId), [survivor.uuid],
                       "the uuid container runs once, on the survivor")
    }

    /// The same for a highly available ("stateless") container that both agents offer under one
    /// uuid: the survivor takes it over and the caller sees no error.
    func testHighlyAvailableContainerTakenOverWithoutErrors() async throws {
        let (_, port) = try startServer()
        let uuid = "ha-\(makeUUID())"
        let first = try startAgent(port: port, ["--stateless", "echo:\(uuid)"])
        let client = try await connectClient(port: port)
        try await eventuallyAsync("the first agent owns \(uuid)") {
            try await client.list(kind: "echo").first { $0.uuid == uuid }?.agentId == first.uuid
        }
        let second = try startAgent(port: port, ["--stateless", "echo:\(uuid)"])
        let probe = try startProbe(port: port, ["--uuid", uuid, "--rate", "100", "--duration", "9"])
        XCTAssertEqual(try ProbeReport(probe.output()).agentId, first.uuid)
        try waitForCalls(probe, atLeast: 50)

        let killedAt = ChildProcess.nowMs()
        first.process.send(SIGKILL)
        let report = try waitForDone(probe)
        XCTAssertEqual(report.errors.count, 0, "errors \(report.errors.prefix(3))")
        XCTAssertLessThan(report.maxCallMs, 30_000)
        XCTAssertEqual(report.moves.first?.uuid, uuid, "a uuid reference keeps its uuid")
        let outage = try XCTUnwrap(report.outage(around: killedAt))
        print("FIGURE failover.ha_takeover first_success_after_kill_ms=\(outage.endedAt - killedAt) longest_wait_ms=\(outage.ms) "
              + "errors=\(report.errors.count) calls=\(report.calls.count) max_call_ms=\(report.maxCallMs)")
        let owners = try await client.list(kind: "echo").filter { $0.uuid == uuid }.map(\.agentId)
        XCTAssertEqual(owners, [second.uuid], "the survivor runs it, once")
    }

    // MARK: - The coordinator killed and restarted

    /// kill -9 of the coordinator with 5 slow requests in flight, a new one on the same port 1 s
    /// later; the agent comes back before the caller: all 5 answered with their own result, none
    /// ran twice. The requests (3 s) still run when their resends arrive: the resends join them.
    func testCoordinatorRestartWithRequestsInFlightAgentsFirst() async throws {
        try await coordinatorRestart(agentsFirst: true, slowMs: 3000)
    }

    /// The same when the caller comes back first (its restoring get waits for the agent).
    func testCoordinatorRestartWithRequestsInFlightClientsFirst() async throws {
        try await coordinatorRestart(agentsFirst: false, slowMs: 3000)
    }

    /// Requests (1.2 s) done before the new coordinator starts: their resends are answered from
    /// the agent's memory, and the time to the last answer is the network's recovery.
    func testCoordinatorRestartRequestsAnsweredFromMemoryAgentsFirst() async throws {
        try await coordinatorRestart(agentsFirst: true, slowMs: 1200)
    }

    func testCoordinatorRestartRequestsAnsweredFromMemoryClientsFirst() async throws {
        try await coordinatorRestart(agentsFirst: false, slowMs: 1200)
    }

    private func coordinatorRestart(agentsFirst: Bool, slowMs: Int, file: StaticString = #filePath, line: UInt = #line) async throws {
        var (server, port) = try startServer(logLevel: "debug")
        let agent = try startAgent(port: port)
        let label = "restart-\(makeUUID().prefix(8))"
        let probe = try startProbe(port: port, ["--label", label, "--slow", "5", "--slow-ms", "\(slowMs)"])
        let uuid = try ProbeReport(probe.output()).uuid
        let watcher = try await connectClient(port: port)
        try await eventuallyAsync("the 5 slow requests run in the container") {
            try await watcher.request(uuid, operation: "runs").member("running") == 5
        }
        await watcher.close()

        let (paused, other) = agentsFirst ? (probe, agent.process) : (agent.process, probe)
        paused.send(SIGSTOP)
        server.send(SIGKILL)
        _ = server.waitForExit(timeoutMs: scaled(5000))
        try await Task.sleep(nanoseconds: 1_000_000_000)
        let restartedAt = ChildProcess.nowMs()
        (server, _) = try startServer(["--port", "\(port)"], logLevel: "debug")
        // The one not paused comes back first: the agent registers again, or the caller greets.
        if agentsFirst {
            let client = try await connectClient(port: port)
            try await eventuallyAsync("the agent registered again with its container") {
                try await client.list(kind: "echo").contains { $0.uuid == uuid }
            }
        } else {
            let callerId = try ProbeReport(probe.output()).clientId
            try server.waitForLine(containing: "client \(callerId) said hello", in: .stderr, timeoutMs: scaled(10_000))
        }
        _ = other
        paused.send(SIGCONT)

        let report = try waitForDone(probe)
        XCTAssertEqual(report.errors.count, 0, "errors \(report.errors)", file: file, line: line)
        XCTAssertEqual(report.calls.count, 5, file: file, line: line)
        for call in report.calls {
            XCTAssertEqual(call.answer?.member("key"), .string("k\(call.index)"), "call \(call.index) got its own answer",
                           file: file, line: line)
            XCTAssertEqual(call.answer?.member("run"), 1, "call \(call.index) ran once before it was answered", file: file, line: line)
        }
        let client = try await connectClient(port: port)
        let runs = try await client.request(uuid, operation: "runs")
        XCTAssertEqual(runs.member("done"), .object((0..<5).reduce(into: [:]) { $0["k\($1)"] = 1 }),
                       "each request ran exactly once", file: file, line: line)
        let lastAnswer = report.calls.map(\.end).max() ?? restartedAt
        print("FIGURE restart.\(agentsFirst ? "agents_first" : "clients_first").\(slowMs > 2000 ? "joined" : "from_memory") "
              + "answered=\(report.calls.count - report.errors.count)/5 "
              + "ran_twice=\(runs.member("done")?.objectValue?.values.filter { $0 != 1 }.count ?? -1) "
              + "last_answer_after_restart_ms=\(lastAnswer - restartedAt) slow_ms=\(slowMs)")
    }
}
