import Foundation
@testable import HulyNet
import HulyNetCore
import HulyNetSync
import HulyNetZMQ
import XCTest

// End-to-end tests over real ZeroMQ sockets on 127.0.0.1: a coordinator, agents served by
// NetworkClients, and clients using the public API. Each test has its own server on a free port,
// short timeouts (see Support.swift), waits for conditions rather than for time, and closes
// everything it opened.

final class NetworkIntegrationTests: IntegrationTestCase {

    // MARK: 1. Methods of the network

    func testNetworkMethodsAgainstAServedAgent() async throws {
        let server = try await startServer()
        let agentSide = try await makeClient(port: server.port)
        let recorder = makeRecorder()
        let agent = Agent(factories: ["echo": echoFactory(), "probe": recorder.factory()])
        try await agentSide.serve(agent)
        let agentEndpoint = try XCTUnwrap(agent.endpoint)
        let agentRef = try EndpointRef(parsing: agentEndpoint)
        XCTAssertEqual(agentRef.host, "127.0.0.1")
        XCTAssertNotEqual(agentRef.port, 0)

        let client = try await makeClient(port: server.port)

        // al: the agent, its endpoint and kinds, no containers yet.
        let agents = try await client.agentList()
        XCTAssertEqual(agents.map(\.agentId), [agent.uuid])
        assertSameEndpoint(agents.first?.endpoint, agentRef.encoded)
        XCTAssertEqual(agents.first?.kinds.sorted(), ["echo", "probe"])
        XCTAssertEqual(agents.first?.containers, 0)

        // gg by kind and labels: the labels are kept; the same labels find the same container.
        let echo = try await client.get(kind: "echo", options: GetOptions(labels: ["a", "b"]))
        let probe = try await client.get(kind: "probe", options: GetOptions(labels: ["p"]))
        XCTAssertNotEqual(echo.uuid, probe.uuid)
        let probeAgain = try await client.get(kind: "probe", options: GetOptions(labels: ["p"]))
        XCTAssertEqual(probeAgain.uuid, probe.uuid, "a labelled get must reuse the container with those labels")
        XCTAssertEqual(recorder.started, [probe.uuid], "one probe container started")
        let echoSubset = try await client.get(kind: "echo", options: GetOptions(labels: ["b"]))
        XCTAssertEqual(echoSubset.uuid, echo.uuid, "labels [b] are included in [a, b]")

        // gg by uuid: the same container, twice.
        let byUuid1 = try await client.get(kind: "echo", options: GetOptions(uuid: echo.uuid))
        let byUuid2 = try await client.get(kind: "echo", options: GetOptions(uuid: echo.uuid))
        XCTAssertEqual(byUuid1.uuid, echo.uuid)
        XCTAssertEqual(byUuid2.uuid, echo.uuid)
        assertSameEndpoint(byUuid1.endpoint, echo.endpoint)

        // cl with and without kind.
        let all = try await client.list()
        XCTAssertEqual(Set(all.map(\.uuid)), [echo.uuid, probe.uuid])
        let echoes = try await client.list(kind: "echo")
        XCTAssertEqual(echoes.map(\.uuid), [echo.uuid])
        XCTAssertEqual(echoes.first?.kind, "echo")
        XCTAssertEqual(echoes.first?.agentId, agent.uuid)
        XCTAssertEqual(echoes.first?.labels, ["a", "b"])
        assertSameEndpoint(echoes.first?.endpoint, echo.endpoint, "cl must carry the real endpoint")
        XCTAssertNotEqual(echoes.first?.endpoint, "")
        let probes = try await client.list(kind: "probe")
        XCTAssertEqual(probes.map(\.uuid), [probe.uuid])
        let none = try await client.list(kind: "no-such-kind")
        XCTAssertEqual(none, [])
        let agentsNow = try await client.agentList()
        XCTAssertEqual(agentsNow.first?.containers, 2)

        // cs through the coordinator.
        let data: JSONValue = ["text": "hi", "n": 3, "list": [1, 2, .null]]
        let echoed = try await client.request(echo.uuid, operation: "hello", data: data)
        XCTAssertEqual(echoed, data)
        let viaReference = try await probe.request("echo", "through the reference")
        XCTAssertEqual(viaReference, "through the reference")
        let caller = try await probe.request("whoami")
        XCTAssertEqual(caller, .null, "a request through the coordinator has no caller id")

        // cs to an unknown container.
        let unknown = makeUUID()
        let notFound = await remoteErrorMessage { try await client.request(unknown, operation: "x") }
        XCTAssertTrue(notFound?.contains("not found") == true, "got \(notFound ?? "nil")")
        XCTAssertTrue(notFound?.contains(unknown) == true, "got \(notFound ?? "nil")")

        // A container that throws: its message comes back as a remote error.
        let thrown = await remoteErrorMessage { try await probe.request("fail", "probe says no: 42") }
        XCTAssertTrue(thrown?.contains("probe says no: 42") == true, "got \(thrown ?? "nil")")
        let echoThrown = await remoteErrorMessage { try await client.request(echo.uuid, operation: "fail", data: "echo failed") }
        XCTAssertTrue(echoThrown?.contains("echo failed") == true, "got \(echoThrown ?? "nil")")
        // The client is still fine after errors.
        let after = try await client.request(echo.uuid, operation: "x", data: 7)
        XCTAssertEqual(after, 7)

        // ak: kinds of all agents, each once, also when two agents offer the same kind.
        let second = Agent(factories: ["echo": echoFactory(), "extra": echoFactory()])
        try await agentSide.serve(second)
        let kinds = try await client.kinds()
        XCTAssertEqual(kinds.sorted(), ["echo", "extra", "probe"], "kinds must be de-duplicated")
        let twoAgents = try await client.agentList()
        XCTAssertEqual(Set(twoAgents.map(\.agentId)), [agent.uuid, second.uuid])

        // Two new containers of a kind two agents offer: one on each (round-robin).
        let x = try await client.get(kind: "echo", options: GetOptions(labels: ["x"]))
        let y = try await client.get(kind: "echo", options: GetOptions(labels: ["y"]))
        XCTAssertNotEqual(x.uuid, y.uuid)
        let owners = try await client.list(kind: "echo").filter { [x.uuid, y.uuid].contains($0.uuid) }.map(\.agentId)
        XCTAssertEqual(Set(owners), [agent.uuid, second.uuid], "gets of one kind must alternate between its agents")
    }

    func testConcurrentGetsJoinAStartUnderWay() async throws {
        let server = try await startServer()
        let agentSide = try await makeClient(port: server.port)
        let recorder = makeRecorder()
        let gate = Gate()
        cleanup.add(gate)
        let probeFactory = recorder.factory()
        let agent = Agent(factories: ["slow": { options in
            await gate.wait()
            return try await probeFactory(options)
        }])
        try await agentSide.serve(agent)
        let a = try await makeClient(port: server.port)
        let b = try await makeClient(port: server.port)
        let c = try await makeClient(port: server.port)

        let before = server.stats().requests
        let first = Task { try await a.get(kind: "slow", options: GetOptions(labels: ["x", "y"])) }
        await eventually("the first start is under way") { gate.waiting == 1 }
        // Labels included in those of the start under way: joins it. Other labels: a start of its own.
        let joining = Task { try await b.get(kind: "slow", options: GetOptions(labels: ["x"])) }
        let other = Task { try await c.get(kind: "slow", options: GetOptions(labels: ["z"])) }
        await eventually("all three gets reached the coordinator; two starts wait") {
            server.stats().requests - before >= 3 && gate.waiting == 2
        }
        gate.open()
        let refFirst = try await withBound(3, "first get") { try await first.value }
        let refJoining = try await withBound(3, "joining get") { try await joining.value }
        let refOther = try await withBound(3, "other get") { try await other.value }
        XCTAssertEqual(refJoining.uuid, refFirst.uuid, "a get whose labels the start under way has must join it")
        XCTAssertNotEqual(refOther.uuid, refFirst.uuid)
        XCTAssertEqual(Set(recorder.started), [refFirst.uuid, refOther.uuid])
        XCTAssertEqual(recorder.started.count, 2)
        let labels = try await a.list(kind: "slow").first { $0.uuid == refFirst.uuid }?.labels
        XCTAssertEqual(labels, ["x", "y"])
    }

    func testFailedStartDoesNotBlockLaterGets() async throws {
        let server = try await startServer()
        let agentSide = try await makeClient(port: server.port)
        let recorder = makeRecorder()
        let attempts = Counter()
        let probeFactory = recorder.factory()
        let agent = Agent(factories: ["flaky": { options in
            if attempts.increment() == 1 { throw ContainerError("the first start fails") }
            return try await probeFactory(options)
        }])
        try await agentSide.serve(agent)
        let client = try await makeClient(port: server.port)

        let failure = await remoteErrorMessage { try await client.get(kind: "flaky") }
        XCTAssertTrue(failure?.contains("the first start fails") == true, "got \(failure ?? "nil")")
        let reference = try await withBound(3, "a get after a failed start") { try await client.get(kind: "flaky") }
        XCTAssertEqual(attempts.value, 2)
        XCTAssertEqual(recorder.started, [reference.uuid])
        let answer = try await reference.request("echo", "second start")
        XCTAssertEqual(answer, "second start")
    }

    func testRequestToAContainerThatNeverAnswersIsBounded() async throws {
        var timeouts = testTimeouts
        timeouts.requestMs = 400
        let server = try await startServer(timeouts: timeouts)
        let agentSide = try await makeClient(port: server.port)
        let recorder = makeRecorder()
        try await agentSide.serve(Agent(factories: ["probe": recorder.factory()]))
        let client = try await makeClient(port: server.port)  // its own request timeout: 5 s
        let reference = try await client.get(kind: "probe")

        let started = nowMs()
        let message = await remoteErrorMessage { try await reference.request("block", "never answered") }
        let elapsed = nowMs() - started
        XCTAssertEqual(recorder.runs("never answered"), 1)
        XCTAssertTrue(message?.contains("timed out") == true, "the coordinator must answer with an error: \(message ?? "nil")")
        XCTAssertGreaterThanOrEqual(elapsed, 350)
        XCTAssertLessThan(elapsed, 3000, "bounded by the server's request timeout (400 ms), took \(elapsed) ms")
        let after = try await reference.request("echo", "still served")
        XCTAssertEqual(after, "still served")
    }

    func testGetWaitsForAnAgentOfTheKindToAppear() async throws {
        let server = try await startServer()
        let client = try await makeClient(port: server.port)
        let before = server.stats().requests
        let pending = Task { try await client.get(kind: "late") }
        // The get has reached the coordinator (and been told there is no agent) before the agent exists.
        await eventually("the get reached the coordinator") { server.stats().requests > before }
        let agents = try await client.agentList()
        XCTAssertEqual(agents, [])

        let agentSide = try await makeClient(port: server.port)
        let recorder = makeRecorder()
        let agent = Agent(factories: ["late": recorder.factory()])
        try await agentSide.serve(agent)

        let reference = try await withBound(5, "get of a kind whose agent came later") { try await pending.value }
        XCTAssertEqual(recorder.started, [reference.uuid])
        let record = try await client.list(kind: "late")
        XCTAssertEqual(record.map(\.agentId), [agent.uuid])
        let answer = try await reference.request("echo", "late but here")
        XCTAssertEqual(answer, "late but here")
    }

    // MARK: 2. Events

    func testUpdateEventsForAgentsAndContainers() async throws {
        let server = try await startServer()
        let client = try await makeClient(port: server.port)
        let log = EventLog()
        log.follow(client)

        let agentSide = try await makeClient(port: server.port)
        let recorder = makeRecorder()
        let agent = Agent(factories: ["probe": recorder.factory()])
        try await agentSide.serve(agent)
        await eventually("agent added event") { log.hasAgent(agent.uuid, .added) }
        let agentChange = log.all.flatMap(\.agents).first { $0.id == agent.uuid }
        XCTAssertEqual(agentChange?.kinds, ["probe"])

        let reference = try await client.get(kind: "probe")
        await eventually("container added event") { log.hasContainer(reference.uuid, .added) }
        let added = log.containerChanges(reference.uuid).first { $0.event == .added }?.container
        assertSameEndpoint(added?.endpoint, reference.endpoint, "the added event carries the real endpoint")
        XCTAssertNotEqual(added?.endpoint, "")
        let endpoint = try EndpointRef(parsing: added?.endpoint ?? "")
        XCTAssertEqual(endpoint.kind, .routed)
        XCTAssertEqual(endpoint.uuid, reference.uuid)
        XCTAssertEqual(endpoint.agentId, agent.uuid)
        XCTAssertEqual(endpoint.port, try EndpointRef(parsing: agent.endpoint ?? "").port)
        XCTAssertEqual(added?.agentId, agent.uuid)
        XCTAssertEqual(added?.kind, "probe")

        // Removals: the agent unregisters, taking its container with it.
        try await agentSide.unregister(agent)
        await eventually("agent removed event") { log.hasAgent(agent.uuid, .removed) }
        await eventually("container removed event") { log.hasContainer(reference.uuid, .removed) }
        let agentsAfter = try await client.agentList()
        XCTAssertEqual(agentsAfter, [])
        let containersAfter = try await client.list()
        XCTAssertEqual(containersAfter, [])
        XCTAssertEqual(log.agentChanges(agent.uuid).last, .removed)
        XCTAssertEqual(log.containerChanges(reference.uuid).last?.event, .removed)
        XCTAssertEqual(recorder.terminated, [reference.uuid], "unregistering stops the agent's containers")
    }

    func testAgentEventsWithoutContainersAndLastStateAfterQuickReAdd() async throws {
        let server = try await startServer()
        let client = try await makeClient(port: server.port)
        let log = EventLog()
        log.follow(client)
        let agentSide = try await makeClient(port: server.port)
        let agent = Agent(factories: ["plain": echoFactory()])

        try await agentSide.register(agent)
        await eventually("agent added") { log.hasAgent(agent.uuid, .added) }
        XCTAssertNil(agent.endpoint, "a registered (not served) agent has no endpoint")
        let listed = try await client.agentList()
        XCTAssertEqual(listed.map(\.agentId), [agent.uuid])
        XCTAssertNil(listed.first?.endpoint)

        try await agentSide.unregister(agent)
        await eventually("an agent without containers also gets a removed event") { log.hasAgent(agent.uuid, .removed) }

        // Removed and added again in quick succession: clients must end up with it present.
        try await agentSide.register(agent)
        try await agentSide.unregister(agent)
        try await agentSide.register(agent)
        // Events leave in order: once a later agent's event is seen, the earlier ones have arrived.
        let sentinel = Agent(factories: ["sentinel": echoFactory()])
        try await agentSide.register(sentinel)
        await eventually("the sentinel agent's event") { log.hasAgent(sentinel.uuid, .added) }
        let last = log.agentChanges(agent.uuid).last
        XCTAssertTrue(last == .added || last == .updated,
                      "after remove and re-add the last event must leave the agent present: \(log.agentChanges(agent.uuid))")
        let agents = try await client.agentList()
        XCTAssertEqual(Set(agents.map(\.agentId)), [agent.uuid, sentinel.uuid])
    }

    // MARK: 3. Routed connections

    func testRoutedConnectionRequestsEventsAndClose() async throws {
        let server = try await startServer()
        let agentSide = try await makeClient(port: server.port)
        let recorder = makeRecorder()
        let agent = Agent(factories: ["probe": recorder.factory(), "echo": echoFactory()])
        try await agentSide.serve(agent)
        let client = try await makeClient(port: server.port)

        let reference = try await client.get(kind: "probe")
        XCTAssertEqual(try EndpointRef(parsing: reference.endpoint).kind, .routed)
        let connection = try await reference.connect()
        let inbox = Inbox()
        connection.onEvent { inbox.append($0) }
        XCTAssertEqual(recorder.connects, [.init(container: reference.uuid, client: client.clientId)],
                       "connect reaches the container with the client's id")

        let answer = try await connection.request("echo", ["over": "the agent endpoint"])
        XCTAssertEqual(answer, ["over": "the agent endpoint"])
        let caller = try await connection.request("whoami")
        XCTAssertEqual(caller, .string(client.clientId), "a routed request carries the caller's client id")
        let failure = await remoteErrorMessage { try await connection.request("fail", "routed failure") }
        XCTAssertEqual(failure, "routed failure")

        let reached = try await connection.request("broadcast", ["event": 1])
        XCTAssertEqual(reached, 1)
        await eventually("the broadcast event arrived on the connection") { inbox.all == [["event": 1]] }

        await connection.close()
        await eventually("the container saw the disconnect") {
            recorder.disconnects == [.init(container: reference.uuid, client: client.clientId)]
        }
        let reachedAfterClose = try await reference.request("broadcast", "nobody")
        XCTAssertEqual(reachedAfterClose, 0, "after close no client is connected")
        do {
            _ = try await connection.request("echo")
            XCTFail("a closed connection must refuse requests")
        } catch {
            XCTAssertEqual(error, .closed)
        }

        // EchoContainer: broadcast answers the number of clients reached; each receives the event.
        let other = try await makeClient(port: server.port)
        let echo1 = try await client.get(kind: "echo")
        let echo2 = try await other.get(kind: "echo", options: GetOptions(uuid: echo1.uuid))
        let c1 = try await echo1.connect()
        let c2 = try await echo2.connect()
        let inbox1 = Inbox(), inbox2 = Inbox()
        c1.onEvent { inbox1.append($0) }
        c2.onEvent { inbox2.append($0) }
        let both = try await c1.request("broadcast", "to both")
        XCTAssertEqual(both, 2)
        await eventually("both clients received the broadcast") { inbox1.all == ["to both"] && inbox2.all == ["to both"] }
        await c2.close()
        let one = try await c1.request("broadcast", "to one")
        XCTAssertEqual(one, 1)
        await eventually("the remaining client received it") { inbox1.all == ["to both", "to one"] }
        XCTAssertEqual(inbox2.all, ["to both"], "a closed connection receives no more events")
        await c1.close()
    }

    // MARK: 4. Direct connections

    func testDirectConnectionRequestsEventsAndClose() async throws {
        let server = try await startServer()
        let agentSide = try await makeClient(port: server.port)
        let recorder = makeRecorder()
        let agent = Agent(factories: ["direct": recorder.factory(connection: .direct(host: "127.0.0.1", port: 0))])
        try await agentSide.serve(agent)
        let client = try await makeClient(port: server.port)

        let reference = try await client.get(kind: "direct")
        let endpoint = try EndpointRef(parsing: reference.endpoint)
        XCTAssertEqual(endpoint.kind, .direct)
        XCTAssertEqual(endpoint.host, "127.0.0.1")
        XCTAssertEqual(endpoint.uuid, reference.uuid)
        XCTAssertNotEqual(endpoint.port, 0, "port 0 must be replaced by the port picked")
        XCTAssertNotEqual(endpoint.port, try EndpointRef(parsing: agent.endpoint ?? "").port)
        let listed = try await client.list(kind: "direct")
        assertSameEndpoint(listed.first?.endpoint, reference.endpoint)

        let connection = try await reference.connect()
        let inbox = Inbox()
        connection.onEvent { inbox.append($0) }
        await eventually("the container saw the direct client connect") {
            recorder.connects == [.init(container: reference.uuid, client: client.clientId)]
        }
        let answer = try await connection.request("echo", [1, "two", ["three": 3]])
        XCTAssertEqual(answer, [1, "two", ["three": 3]])
        let caller = try await connection.request("whoami")
        XCTAssertEqual(caller, .string(client.clientId))
        let failure = await remoteErrorMessage { try await connection.request("fail", "direct failure") }
        XCTAssertEqual(failure, "direct failure")

        let reached = try await connection.request("broadcast", ["direct": true])
        XCTAssertEqual(reached, 1)
        await eventually("the direct event arrived (bare data)") { inbox.all == [["direct": true]] }

        // Requests through the coordinator still reach it too.
        let viaNetwork = try await reference.request("echo", "via network")
        XCTAssertEqual(viaNetwork, "via network")

        await connection.close()
        await eventually("the container saw the direct client disconnect") {
            recorder.disconnects == [.init(container: reference.uuid, client: client.clientId)]
        }
        let reachedAfterClose = try await reference.request("broadcast", "nobody")
        XCTAssertEqual(reachedAfterClose, 0)
    }

    // MARK: 5. Release, then termination

    func testReleasedContainerIsTerminatedAfterTheUnusedTimeout() async throws {
        let server = try await startServer()
        let agentSide = try await makeClient(port: server.port)
        let recorder = makeRecorder()
        let agent = Agent(factories: ["probe": recorder.factory()])
        try await agentSide.serve(agent)
        let client = try await makeClient(port: server.port)
        let log = EventLog()
        log.follow(client)

        let reference = try await client.get(kind: "probe")
        let uuid = reference.uuid
        // Held: it survives well past the unused timeout (the request refreshes nothing; holding does).
        let listed = try await client.list(kind: "probe")
        XCTAssertEqual(listed.map(\.uuid), [uuid])

        let released = nowMs()
        try await reference.release()
        try await reference.release() // idempotent
        await eventually("the container was terminated on its agent") { recorder.terminated == [uuid] }
        let elapsed = nowMs() - released
        XCTAssertGreaterThanOrEqual(elapsed, testTimeouts.unusedContainerMs - 100,
                                    "terminated before the unused timeout (\(elapsed) ms)")
        await eventually("a removed event arrived") { log.hasContainer(uuid, .removed) }
        let after = try await client.list()
        XCTAssertEqual(after, [])
        XCTAssertNil(agent.container(uuid), "the agent forgot it")
        let agents = try await client.agentList()
        XCTAssertEqual(agents.first?.containers, 0)
        let gone = await remoteErrorMessage { try await client.request(uuid, operation: "echo") }
        XCTAssertTrue(gone?.contains("not found") == true, "got \(gone ?? "nil")")
    }

    func testReferencesAreCountedPerHolder() async throws {
        let server = try await startServer()
        let agentSide = try await makeClient(port: server.port)
        let recorder = makeRecorder()
        try await agentSide.serve(Agent(factories: ["probe": recorder.factory()]))
        let a = try await makeClient(port: server.port)
        let b = try await makeClient(port: server.port)
        let refA1 = try await a.get(kind: "probe")
        let refA2 = try await a.get(kind: "probe", options: GetOptions(uuid: refA1.uuid))  // a holds it twice
        let refB = try await b.get(kind: "probe")  // no uuid: the agent reuses the running container
        let uuid = refA1.uuid
        XCTAssertEqual(refA2.uuid, uuid)
        XCTAssertEqual(refB.uuid, uuid)
        XCTAssertEqual(recorder.started, [uuid])

        try await refA1.release()
        try await refB.release()
        // a still holds it once. A marker container released after them shows when the unused
        // timeout has passed for them too.
        let marker = try await a.get(kind: "probe", options: GetOptions(uuid: "marker-" + makeUUID()))
        try await marker.release()
        await eventually("the marker container was terminated") { recorder.terminated.contains(marker.uuid) }
        XCTAssertEqual(recorder.terminated, [marker.uuid],
                       "a container still referenced (a's second reference) was terminated")
        let answer = try await refA2.request("echo", "still here")
        XCTAssertEqual(answer, "still here")

        try await refA2.release()
        await eventually("terminated once the last reference is released") { recorder.terminated.contains(uuid) }
    }

    func testStatelessContainerMovesToAnotherAgentWhenItsOwnerGoes() async throws {
        let server = try await startServer()
        let client = try await makeClient(port: server.port)
        let uuid = "stateless-" + makeUUID()
        let recorder1 = makeRecorder(), recorder2 = makeRecorder()
        recorder1.gate.open()
        recorder2.gate.open()
        let side1 = try await makeClient(port: server.port)
        let agent1 = Agent(factories: ["ha": recorder1.factory()])
        agent1.addStatelessContainer(uuid: uuid, kind: "ha", container: ProbeContainer(uuid: uuid, recorder: recorder1))
        try await side1.serve(agent1)
        let side2 = try await makeClient(port: server.port)
        let agent2 = Agent(factories: ["ha": recorder2.factory()])
        agent2.addStatelessContainer(uuid: uuid, kind: "ha", container: ProbeContainer(uuid: uuid, recorder: recorder2))
        try await side2.serve(agent2)

        let listed = try await client.list(kind: "ha")
        XCTAssertEqual(listed.map(\.uuid), [uuid])
        XCTAssertEqual(listed.first?.agentId, agent1.uuid, "the first agent keeps the uuid")
        XCTAssertEqual(recorder2.terminated, [], "the second agent keeps its copy on standby")
        _ = try await client.request(uuid, operation: "block", data: "first")
        XCTAssertEqual(recorder1.runs("first"), 1)
        XCTAssertEqual(recorder2.runs("first"), 0)

        await side1.close()
        XCTAssertEqual(recorder1.terminated, [uuid])
        await eventually("the standby agent took the container over") {
            try await client.list(kind: "ha").map(\.agentId) == [agent2.uuid]
        }
        _ = try await client.request(uuid, operation: "block", data: "second")
        XCTAssertEqual(recorder2.runs("second"), 1)
        XCTAssertEqual(recorder1.runs("second"), 0)
    }

    // MARK: 6. An agent that stops pinging

    func testSilentAgentIsRemovedWithItsContainers() async throws {
        let server = try await startServer()
        let client = try await makeClient(port: server.port)
        let log = EventLog()
        log.follow(client)

        let peer = try makeRawPeer(port: server.port)
        let serverId = try await peer.hello(aliveTimeoutSeconds: 30)
        XCTAssertEqual(serverId, server.serverId)
        let agentId = "silent-agent-" + makeUUID()
        let containerId = "silent-container-" + makeUUID()
        let record = ContainerRecord(agentId: agentId, uuid: containerId, kind: "silent", endpoint: "", lastVisit: 0)
        let registration = AgentRegistration(uuid: agentId, containers: [record], kinds: ["silent"], endpoint: nil)
        let reqId = try peer.request("ar", registration.json)
        let answer = try await peer.receiveAnswer()
        let registered = nowMs()
        XCTAssertEqual(answer, ["2", reqId, "[]"])

        await eventually("agent and container added events") {
            log.hasAgent(agentId, .added) && log.hasContainer(containerId, .added)
        }
        await eventually("the silent agent and its container were removed",
                         timeout: Double(testTimeouts.aliveMs + 2000) / 1000) {
            let agents = try await client.agentList()
            let containers = try await client.list()
            return !agents.contains { $0.agentId == agentId } && !containers.contains { $0.uuid == containerId }
        }
        let elapsed = nowMs() - registered
        XCTAssertGreaterThanOrEqual(elapsed, testTimeouts.aliveMs - 200, "removed before its alive timeout (\(elapsed) ms)")
        XCTAssertLessThanOrEqual(elapsed, testTimeouts.aliveMs + 1500, "removed too late (\(elapsed) ms)")
        await eventually("removal events") { log.hasAgent(agentId, .removed) && log.hasContainer(containerId, .removed) }
        let removed = log.containerChanges(containerId).last
        XCTAssertEqual(removed?.event, .removed)
        XCTAssertEqual(removed?.container.agentId, agentId)
        // The raw client itself (alive timeout 30 s) is still known: only the agent went.
        let lateReq = try peer.request("al", [:])
        let late = try await peer.receiveAnswer()
        XCTAssertEqual(late, ["2", lateReq, "[]"], "the raw client must still be served, with no agents left")
    }

    // MARK: 7. A server restarted on the same port

    func testClientsAndAgentsRecoverAfterServerRestart() async throws {
        let probeServer = try await startServer()
        let port = probeServer.port
        probeServer.stop()

        let first = try await startServer(port: port)
        XCTAssertEqual(first.port, port)
        let agentSide = try await makeClient(port: port)
        let recorder = makeRecorder()
        let agent = Agent(factories: ["probe": recorder.factory(), "echo": echoFactory()])
        try await agentSide.serve(agent)
        let client = try await makeClient(port: port)
        let reference = try await client.get(kind: "probe")
        let uuid = reference.uuid
        let before = try await reference.request("echo", "before")
        XCTAssertEqual(before, "before")

        first.stop()
        // Requests made while no server runs stay pending and are sent to the new one.
        let pendingAgents = Task { try await client.agentList() }
        let pendingGet = Task { try await client.get(kind: "echo") }

        let restarted = nowMs()
        let second = try await startServer(port: port)
        XCTAssertNotEqual(second.serverId, first.serverId)

        await eventually("the agent registered again", timeout: 5) {
            try await client.agentList().contains { $0.agentId == agent.uuid }
        }
        let agents = try await client.agentList()
        assertSameEndpoint(agents.first?.endpoint, agent.endpoint)
        await eventually("the agent's container is known again", timeout: 5) {
            try await client.list(kind: "probe").map(\.uuid) == [uuid]
        }
        // The same reference object answers again, for the same container instance.
        let again = try await reference.request("echo", "after restart")
        XCTAssertEqual(again, "after restart")
        XCTAssertEqual(reference.uuid, uuid)
        XCTAssertEqual(recorder.started, [uuid], "the container was not started again")
        let connection = try await reference.connect()
        let viaConnection = try await connection.request("echo", "connected after restart")
        XCTAssertEqual(viaConnection, "connected after restart")
        await connection.close()

        // The pending requests were resent and answered.
        let pendingAgentList = try await withBound(5, "agentList pending over the restart") { try await pendingAgents.value }
        XCTAssertTrue(pendingAgentList.allSatisfy { $0.agentId == agent.uuid })
        let echo = try await withBound(8, "get pending over the restart") { try await pendingGet.value }
        let echoAnswer = try await echo.request("echo", 5)
        XCTAssertEqual(echoAnswer, 5)

        // The reference was acquired again on the new server (gg stamps lastVisit) ...
        await eventually("the reference was acquired again", timeout: 5) {
            try await client.list(kind: "probe").first.map { $0.lastVisit >= Double(restarted) } ?? false
        }
        // ... so releasing it lets the new server terminate the container.
        try await reference.release()
        await eventually("the re-acquired container is terminated after release") { recorder.terminated == [uuid] }
    }

    /// A request made through a reference while the coordinator is down must not be lost to the
    /// race between its resending and the agent's registering again: the reference is re-acquired
    /// (waiting for an agent of its kind), so a request pending on it should be answered once the
    /// agent is back. The agent here is a raw peer, so it comes back strictly after the client.
    func testRequestPendingOverARestartSucceedsOnceTheAgentIsBack() async throws {
        let probeServer = try await startServer()
        let port = probeServer.port
        probeServer.stop()
        let first = try await startServer(port: port)

        let agentPeer = try makeRawPeer(port: port)
        let agentId = "raw-agent-" + makeUUID()
        let containerId = "raw-container-" + makeUUID()
        let endpoint = EndpointRef(kind: .noConnection, host: "", port: 0, agentId: agentId, uuid: containerId)
        let registration = AgentRegistration(uuid: agentId, containers: [
            ContainerRecord(agentId: agentId, uuid: containerId, kind: "rk", endpoint: endpoint.encoded, lastVisit: 0),
        ], kinds: ["rk"], endpoint: nil)
        _ = try await agentPeer.hello()
        let registerId = try agentPeer.request("ar", registration.json)
        let registered = try await agentPeer.receiveAnswer()
        XCTAssertEqual(registered, ["2", registerId, "[]"])

        let client = try await makeClient(port: port)
        let reference = try await client.get(kind: "rk", options: GetOptions(uuid: containerId))
        XCTAssertEqual(reference.uuid, containerId)

        first.stop()
        let settled = Counter()
        let pending = Task { () -> Result<JSONValue, NetworkError> in
            defer { _ = settled.increment() }
            do throws(NetworkError) {
                return .success(try await reference.request("op", "made while the coordinator was down"))
            } catch {
                return .failure(error)
            }
        }
        let second = try await startServer(port: port)
        // The client is back (its pending request and its re-acquiring get have reached the new server) ...
        await eventually("the client reconnected to the new server", timeout: 5) { second.stats().requests >= 2 }
        // ... and only then does the agent register again.
        _ = try await agentPeer.hello()
        let againId = try agentPeer.request("ar", registration.json)
        let again = try await agentPeer.receiveAnswer()
        XCTAssertEqual(again, ["2", againId, "[]"])

        // Serve what the coordinator asks (pinging meanwhile) until the pending request is settled.
        let deadline = nowMs() + 4000
        var served = false
        while nowMs() < deadline, settled.value == 0 {
            try agentPeer.send(["5", "", "", ""])
            if let message = try await agentPeer.receiveAnswer(timeoutMs: 100), message.first == "1", message.count == 3 {
                let call = try JSONValue.parse(message[2])
                if call[0] == "cs", call[1]?[1]?[1] == "op" {
                    try agentPeer.send(["2", message[1], #""answered after the restart""#])
                    served = true
                    break
                }
                try agentPeer.send(["3", message[1], #"{"message":"unexpected call","stack":""}"#])
            }
            if served { break }
        }
        let result = try await withBound(6, "the request pending over the restart") { await pending.value }
        switch result {
        case .success(let answer):
            XCTAssertEqual(answer, "answered after the restart")
        case .failure(let error):
            XCTFail("a request pending on a reference over a coordinator restart failed: \(error)")
        }
        XCTAssertTrue(served, "the pending request never reached the agent after it came back")
    }

    func testClientDroppedForSilenceSaysHelloAgainAndReRegisters() async throws {
        let server = try await startServer()
        let observer = try await makeClient(port: server.port)
        let log = EventLog()
        log.follow(observer)
        // Announces an alive timeout (100 ms) shorter than its ping interval (200 ms): the server
        // drops it between pings, answers its next ping with askHello, and it says hello again.
        let flaky = try NetworkClient(host: "127.0.0.1", port: server.port,
                                      options: .init(timeouts: testTimeouts, aliveTimeoutSeconds: 0.1, getTimeoutMs: 10_000,
                                                     logger: testLogger("test.flaky")))
        cleanup.add(flaky)
        try await flaky.waitForConnection(timeoutMs: 3000)
        let agent = Agent(factories: ["plain": echoFactory()])
        try await flaky.register(agent)
        await eventually("dropped, then registered again after askHello", timeout: 5) {
            let changes = log.agentChanges(agent.uuid)
            guard let removed = changes.firstIndex(of: .removed) else { return false }
            return changes[(removed + 1)...].contains { $0 == .added || $0 == .updated }
        }
    }

    // MARK: 8. The in-flight limit

    func testInFlightLimitRetriesAndDuplicates() async throws {
        let server = try await startServer()
        XCTAssertEqual(server.configuration.inFlightLimit, 25)
        let agentSide = try await makeClient(port: server.port)
        let recorder = makeRecorder()
        let gate = recorder.gate
        try await agentSide.serve(Agent(factories: ["probe": recorder.factory()]))
        let client = try await makeClient(port: server.port)
        let reference = try await client.get(kind: "probe")
        let uuid = reference.uuid

        // 40 concurrent requests from one client: 25 run, the rest are told to retry until there is room.
        let requestsBefore = server.stats().requests
        let all = Task {
            try await withThrowingTaskGroup(of: (Int, JSONValue).self) { group in
                for index in 0..<40 {
                    group.addTask { (index, try await client.request(uuid, operation: "block", data: .string("c\(index)"))) }
                }
                var answers: [Int: JSONValue] = [:]
                for try await (index, answer) in group { answers[index] = answer }
                return answers
            }
        }
        await eventually("25 requests running and the others refused at least once") {
            gate.waiting == 25 && server.stats().requests - requestsBefore > 40
        }
        XCTAssertEqual(gate.waiting, 25, "at most 25 requests of one client may be in flight")
        gate.open()
        let answers = try await withBound(8, "40 requests through the in-flight limit") { try await all.value }
        XCTAssertEqual(answers.count, 40)
        for index in 0..<40 { XCTAssertEqual(answers[index], .string("c\(index)")) }
        XCTAssertEqual(gate.maxWaiting, 25)
        for index in 0..<40 { XCTAssertEqual(recorder.runs("c\(index)"), 1, "c\(index) ran \(recorder.runs("c\(index)")) times") }

        // A raw client sends 30 at once: the last 5 are answered retry with the in-flight count;
        // a duplicate of a request in flight is not run again.
        gate.close()
        let peer = try makeRawPeer(port: server.port)
        _ = try await peer.hello()
        var ids: [String] = []
        for index in 1...30 {
            ids.append(try peer.request("cs", [.string(uuid), "block", .string("r\(index)")]))
        }
        var retries: [[String]] = []
        var others: [[String]] = []
        let deadline = nowMs() + 3000
        while retries.count < 5, nowMs() < deadline {
            guard let message = try await peer.receiveAnswer(timeoutMs: Int(deadline - nowMs())) else { break }
            if message.first == "7" { retries.append(message) } else { others.append(message) }
        }
        XCTAssertEqual(others, [], "nothing but retries may be answered while requests are blocked")
        XCTAssertEqual(retries.count, 5, "30 requests with a limit of 25: \(retries)")
        XCTAssertEqual(retries.map { $0.count > 1 ? $0[1] : "" }, Array(ids[25...]), "the requests past the limit are refused")
        XCTAssertEqual(retries.map { $0.last ?? "" }, Array(repeating: "25", count: retries.count),
                       "retry carries the number of requests in flight")
        await eventually("25 raw requests are running") { gate.waiting == 25 }

        // The same reqId again while it is in flight: ignored (no retry, no second run).
        try peer.send(["1", ids[0], JSONValue.array(["cs", [.string(uuid), "block", "r1"]]).serializedString()])
        // A request past the limit, sent after the duplicate: its retry shows the duplicate was handled.
        let probeId = try peer.request("cs", [.string(uuid), "echo", "x"])
        let probeRetry = try await peer.receiveAnswer()
        XCTAssertEqual(probeRetry, ["7", probeId, "25"], "the duplicate must not be answered nor counted")
        XCTAssertEqual(recorder.runs("r1"), 1)

        gate.open()
        var answered: [String: Int] = [:]
        while answered.count < 25 {
            guard let message = try await peer.receiveAnswer() else { break }
            guard message.first == "2" else {
                XCTFail("expected the answers of the 25 requests, got \(message)")
                break
            }
            answered[message.count > 1 ? message[1] : "", default: 0] += 1
        }
        XCTAssertEqual(Set(answered.keys), Set(ids[..<25]))
        // A sentinel request: everything sent before it has been answered by the time its answer comes.
        let sentinel = try peer.request("al", [:])
        while let message = try await peer.receiveAnswer() {
            if message.count > 1, message[1] == sentinel { break }
            answered[message.count > 1 ? message[1] : "", default: 0] += 1
        }
        XCTAssertEqual(answered[ids[0]], 1, "the duplicated request was answered \(answered[ids[0]] ?? 0) times")
        XCTAssertTrue(answered.values.allSatisfy { $0 == 1 }, "\(answered)")
        XCTAssertEqual(recorder.runs("r1"), 1, "a duplicate reqId must run once")
        for index in 26...30 { XCTAssertEqual(recorder.runs("r\(index)"), 0, "a refused request ran") }
    }
}

/// A callback container answering at once or later, from another thread.
private final class DeferringContainer: CallbackContainer, @unchecked Sendable {
    func request(operation: String, data: JSONText, client: ClientUUID?,
                 reply: @escaping @Sendable (Result<JSONText, any Error>) -> Void) {
        switch operation {
        case "now": reply(.success(data))
        case "later":
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(30)) {
                reply(.success(JSONText(unchecked: Array(#"{"later":"#.utf8) + data.bytes + [0x7D])))
            }
        case "fail later":
            DispatchQueue.global().async { reply(.failure(ContainerError("failed later: \(data)"))) }
        default: reply(.failure(ContainerError("unknown operation \(operation)")))
        }
    }
}

final class CallbackContainerTests: IntegrationTestCase {
    /// Callback containers are answered on the agent's I/O thread at once, or later from any
    /// thread, through the coordinator, over a routed connection, and by direct calls.
    func testAnswersAtOnceAndLaterOnEveryPath() async throws {
        let server = try await startServer()
        let agentSide = try await makeClient(port: server.port)
        let agent = Agent(factories: ["deferring": { options in
            StartedContainer(uuid: options.uuid ?? makeUUID(), container: DeferringContainer())
        }])
        try await agentSide.serve(agent)
        let client = try await makeClient(port: server.port)
        let reference = try await client.get(kind: "deferring")

        let now = try await reference.request("now", 1)
        XCTAssertEqual(now, 1)
        let later = try await reference.request("later", 2)
        XCTAssertEqual(later, ["later": 2])
        let failure = await remoteErrorMessage { try await reference.request("fail later", 3) }
        XCTAssertEqual(failure, "failed later: 3")

        let connection = try await reference.connect()
        // Many at once: answers later from other threads must each reach their own request.
        let answers = try await withThrowingTaskGroup(of: (Int, JSONValue).self) { group in
            for index in 0..<40 {
                group.addTask { (index, try await connection.request(index % 2 == 0 ? "now" : "later", .number(Double(index)))) }
            }
            return try await group.reduce(into: [Int: JSONValue]()) { $0[$1.0] = $1.1 }
        }
        for index in 0..<40 {
            XCTAssertEqual(answers[index], index % 2 == 0 ? .number(Double(index)) : ["later": .number(Double(index))])
        }
        await connection.close()

        // The async bridge for direct calls on the agent.
        let direct = try await agent.request(reference.uuid, operation: "later", data: "x")
        XCTAssertEqual(direct, ["later": "x"])
        try await reference.release()
    }
}

// MARK: - References that follow their container

final class FailoverIntegrationTests: IntegrationTestCase {
    /// Two agents of a kind; the one running a referenced container leaves. The reference gets
    /// it again on the other (same uuid for a uuid get; same labels otherwise), a call made while
    /// it moves waits and succeeds, the connection reopens there with its event handler, and the
    /// holder is told once.
    func testReferenceFollowsItsContainerWhenItsAgentLeaves() async throws {
        let server = try await startServer()
        let recorderA = makeRecorder(), recorderB = makeRecorder()
        let hostA = try await makeClient(port: server.port), hostB = try await makeClient(port: server.port)
        let agentA = Agent(factories: ["probe": recorderA.factory()])
        let agentB = Agent(factories: ["probe": recorderB.factory()])
        try await hostA.serve(agentA)
        let client = try await makeClient(port: server.port)
        let byUuid = try await client.get(kind: "probe", options: GetOptions(uuid: "follow-" + makeUUID()))
        let byLabel = try await client.get(kind: "probe", options: GetOptions(labels: ["tenant-1"], extra: ["x": 1]))
        try await hostB.serve(agentB)
        XCTAssertEqual(recorderA.started.sorted(), [byUuid.uuid, byLabel.uuid].sorted(), "both run on agent A")
        let oldLabelled = byLabel.uuid
        let moves = EventLog.Moves()
        byUuid.onMoved { uuid, endpoint in moves.append(uuid, endpoint) }
        byLabel.onMoved { uuid, endpoint in moves.append(uuid, endpoint) }
        let connection = try await byUuid.connect()
        let inbox = Inbox()
        connection.onEvent { inbox.append($0) }

        // A's client closes: its agent is unregistered and its containers removed.
        await hostA.close()
        let duringMove = Task { try await byUuid.request("echo", "sent while moving") }
        let answered = try await withBound(5, "a request made while the container moves") { try await duringMove.value }
        XCTAssertEqual(answered, "sent while moving")
        await eventually("both references were told they moved") { moves.count == 2 }
        XCTAssertEqual(recorderB.started.count, 2, "agent B runs both now")
        XCTAssertTrue(recorderB.started.contains(byUuid.uuid), "a uuid reference keeps its uuid")
        XCTAssertNotEqual(byLabel.uuid, oldLabelled, "a labelled reference holds a new container of the same labels")
        let relisted = try await client.list(kind: "probe").first { $0.uuid == byLabel.uuid }
        XCTAssertEqual(relisted?.labels, ["tenant-1"])
        XCTAssertEqual(relisted?.extra, ["x": 1])
        XCTAssertEqual(EndpointRef.agentId(of: byUuid.endpoint), agentB.uuid)
        let labelledAnswer = try await byLabel.request("echo", 2)
        XCTAssertEqual(labelledAnswer, 2)

        // The same connection object works there, events included.
        let overConnection = try await connection.request("echo", "over the reopened connection")
        XCTAssertEqual(overConnection, "over the reopened connection")
        let reached = try await connection.request("broadcast", ["after": "move"])
        XCTAssertEqual(reached, 1)
        await eventually("the event reached the same handler") { inbox.all == [["after": "move"]] }
    }

    /// A client the network dropped for silence comes back: the containers its agent ran were
    /// given to others meanwhile, so its copies stop instead of registering again (no container
    /// runs twice), and their holders follow them.
    func testAgentDroppedForSilenceStopsItsCopiesAndHoldersFollow() async throws {
        let server = try await startServer()
        let recorder = makeRecorder()
        // An alive timeout (100 ms) shorter than its ping interval (200 ms): dropped between pings.
        let flaky = try NetworkClient(host: "127.0.0.1", port: server.port,
                                      options: .init(timeouts: testTimeouts, aliveTimeoutSeconds: 0.1, getTimeoutMs: 10_000,
                                                     logger: testLogger("test.flaky")))
        cleanup.add(flaky)
        let agent = Agent(factories: ["probe": recorder.factory()])
        try await flaky.serve(agent)
        let client = try await makeClient(port: server.port)
        let reference = try await client.get(kind: "probe", options: GetOptions(labels: ["l"]))
        let first = reference.uuid
        await eventually("the first copy is stopped once the network dropped its agent", timeout: 5) {
            recorder.terminated.contains(first)
        }
        await eventually("the reference follows to a new copy", timeout: 5) { reference.uuid != first }
        let answer = try await reference.request("echo", 1)
        XCTAssertEqual(answer, 1)
        let listed = try await client.list(kind: "probe")
        XCTAssertFalse(listed.contains { $0.uuid == first }, "the dropped copy is not registered again")
        // The agent forgot the dropped copy in its label index too (a stale entry could hide the
        // copy that runs now from a labelled get, which would then start another).
        XCTAssertEqual(agent.indexedCount, agent.list().count)
        XCTAssertEqual(agent.indexedCount, 1)
    }
}
