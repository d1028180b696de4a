import XCTest
@testable import HulyNetCore

// Unit tests of the network coordinator's state machine (Sources/HulyNetCore/Coordinator.swift).
// Everything runs on a fake clock: no sleeps, no I/O. Each test states one rule of PROTOCOL.md
// ("Coordinator behaviour" and "Defects of the reference that hulynet must not copy") with
// concrete values that would change if the rule broke.

// MARK: - Harness

/// Small timeouts so the timing rules are easy to cross with a fake clock.
private let coordTestTimeouts = Timeouts(aliveMs: 3000, unusedContainerMs: 5000, pingIntervalMs: 1000,
                                         requestMs: 10000, tickMs: 100)

/// A request the coordinator sent to a client (the owner of an agent).
private struct CoordSentCall {
    let to: ClientUUID
    let id: CallID
    let payload: [UInt8]
    /// The payload parsed: `[method, params]` (`.null` if it is not JSON).
    let json: JSONValue

    var method: String? { json[0]?.stringValue }
    var params: JSONValue? { json[1] }
    /// `params[0]`: the agent the call is for.
    var agentId: String? { json[1]?[0]?.stringValue }
    /// `params[1]`: the arguments.
    var args: JSONValue? { json[1]?[1] }
}

/// Drives a `Coordinator`: sends requests with fresh tokens, keeps every directive it emitted,
/// finds the calls it sends to agents' owners and answers them, and moves a fake clock.
private final class CoordHarness {
    let coordinator: Coordinator
    let timeouts: Timeouts
    var now: Int64 = 100_000
    /// Every directive ever emitted, in order.
    private(set) var directives: [CoordinatorDirective] = []
    /// Clients that ping on every step of `advance`.
    var live: Set<ClientUUID> = []
    private var nextToken: RequestToken = 1
    private var answered: Set<CallID> = []
    private var broadcastCursor = 0

    /// `startedAt`: the coordinator settles from then (see `Coordinator.init`); nil: it does not.
    init(timeouts: Timeouts = coordTestTimeouts, startedAt: Int64? = nil, takesOver: Bool = false) {
        self.timeouts = timeouts
        coordinator = Coordinator(timeouts: timeouts, startedAt: startedAt, takesOver: takesOver)
    }

    // Clients

    /// The client said hello; it pings from now on (see `advance`).
    func connect(_ client: ClientUUID) {
        coordinator.clientConnected(client)
        live.insert(client)
    }

    func gone(_ client: ClientUUID) {
        live.remove(client)
        coordinator.clientGone(client, now: now, into: &directives)
    }

    func ping(_ client: ClientUUID) { coordinator.ping(client, now: now) }

    // Requests

    @discardableResult
    func request(_ client: ClientUUID, _ method: String, _ params: JSONValue) -> RequestToken {
        let token = nextToken
        nextToken += 1
        coordinator.handle(client: client, token: token, method: method, params: params, now: now, into: &directives)
        return token
    }

    /// `cs` through the raw path: `raw` is the JSON text `[target, operation, data]` as sent;
    /// `origin` the client's own request id.
    @discardableResult
    func forward(_ client: ClientUUID, target: ContainerUUID, raw: [UInt8], origin: String? = nil) -> RequestToken {
        let token = nextToken
        nextToken += 1
        coordinator.forward(client: client, token: token, target: target, rawParams: raw[...], origin: origin.map { Array($0.utf8) }, now: now,
                            into: &directives)
        return token
    }

    /// `ar`; returns the reply (the containers the agent must terminate), nil if it failed.
    @discardableResult
    func register(_ agent: AgentUUID, by client: ClientUUID, kinds: [ContainerKind],
                  containers: [ContainerRecord] = [], endpoint: String? = nil) -> JSONValue? {
        connect(client)
        let registration = AgentRegistration(uuid: agent, containers: containers, kinds: kinds, endpoint: endpoint)
        return reply(request(client, Method.registerAgent, registration.json))
    }

    /// `gg`.
    @discardableResult
    func get(_ client: ClientUUID, kind: ContainerKind = "k", uuid: ContainerUUID? = nil, labels: [String]? = nil,
             extra: [String: JSONValue]? = nil) -> RequestToken {
        connect(client)
        let options = GetOptions(uuid: uuid, labels: labels, extra: extra)
        return request(client, Method.getContainer, ["kind": .string(kind), "request": options.json])
    }

    /// `gg` of a client restoring its reference after a coordinator restart.
    @discardableResult
    func restoringGet(_ client: ClientUUID, kind: ContainerKind = "k", uuid: ContainerUUID) -> RequestToken {
        connect(client)
        return request(client, Method.getContainer,
                       ["kind": .string(kind), "request": GetOptions(uuid: uuid).json, "restore": true])
    }

    /// `cr`.
    @discardableResult
    func release(_ client: ClientUUID, _ uuid: ContainerUUID) -> RequestToken {
        request(client, Method.releaseContainer, ["uuid": .string(uuid)])
    }

    // Answers to a client's requests

    func answers(_ token: RequestToken) -> [CoordinatorDirective] {
        directives.filter {
            switch $0 {
            case .reply(let t, _), .replyRaw(let t, _), .fail(let t, _): return t == token
            default: return false
            }
        }
    }

    func reply(_ token: RequestToken) -> JSONValue? {
        for case .reply(let t, let value) in directives where t == token { return value }
        return nil
    }

    func rawReply(_ token: RequestToken) -> [UInt8]? {
        for case .replyRaw(let t, let bytes) in directives where t == token { return bytes }
        return nil
    }

    func failure(_ token: RequestToken) -> String? { error(token)?.message }

    func error(_ token: RequestToken) -> RemoteError? {
        for case .fail(let t, let error) in directives where t == token { return error }
        return nil
    }

    /// Where the first answer to `token` is among the directives.
    func answerIndex(_ token: RequestToken) -> Int? {
        directives.firstIndex {
            switch $0 {
            case .reply(let t, _), .replyRaw(let t, _), .fail(let t, _): return t == token
            default: return false
            }
        }
    }

    // Calls to agents' owners

    var calls: [CoordSentCall] {
        directives.compactMap {
            guard case .call(let to, let id, let payload) = $0 else { return nil }
            return CoordSentCall(to: to, id: id, payload: payload, json: (try? JSONValue.parse(payload)) ?? .null)
        }
    }

    func calls(_ method: String) -> [CoordSentCall] { calls.filter { $0.method == method } }

    /// Calls of `method` not answered through this harness yet.
    func openCalls(_ method: String) -> [CoordSentCall] { calls(method).filter { !answered.contains($0.id) } }

    func succeed(_ call: CoordSentCall, _ result: JSONValue) { succeedRaw(call, result.serialized()) }

    func succeedRaw(_ call: CoordSentCall, _ payload: [UInt8]) {
        answered.insert(call.id)
        coordinator.callSucceeded(call.id, payload: payload, now: now, into: &directives)
    }

    func fail(_ call: CoordSentCall, _ message: String) { fail(call, RemoteError(message)) }

    func fail(_ call: CoordSentCall, _ error: RemoteError) {
        answered.insert(call.id)
        coordinator.callFailed(call.id, error, now: now, into: &directives)
    }

    /// Answers the agent's `gg` call with `[uuid, endpoint]`.
    func started(_ call: CoordSentCall, uuid: ContainerUUID, endpoint: String) {
        succeed(call, [.string(uuid), .string(endpoint)])
    }

    // Time

    func tick() { coordinator.tick(now: now, into: &directives) }

    /// Moves the clock by `ms` in steps; at each step every `live` client pings, then the coordinator ticks.
    func advance(by ms: Int64, step: Int64 = 250) {
        var left = ms
        while left > 0 {
            let delta = min(step, left)
            now += delta
            left -= delta
            for client in live.sorted() { coordinator.ping(client, now: now) }
            tick()
        }
    }

    // Events

    var broadcasts: [NetworkEvent] {
        directives.compactMap { if case .broadcast(let event) = $0 { return event } else { return nil } }
    }

    /// Broadcasts emitted since the last call.
    func newBroadcasts() -> [NetworkEvent] {
        let all = broadcasts
        defer { broadcastCursor = all.count }
        return Array(all[broadcastCursor...])
    }

    /// Ticks once and returns the broadcasts that tick (and anything before it not yet taken) emitted.
    func tickEvents() -> [NetworkEvent] {
        tick()
        return newBroadcasts()
    }

    /// `cl` with these params, decoded.
    func listContainers(_ params: JSONValue) -> [ContainerRecord]? {
        guard let list = reply(request("lister", Method.listContainers, params))?.arrayValue else { return nil }
        return list.compactMap { try? ContainerRecord(json: $0) }
    }
}

/// An endpoint reference as an agent would report it (opaque text to the coordinator).
private func coordEndpoint(_ uuid: String, port: Int = 7000) -> String {
    #"{"host":"10.0.0.1","port":\#(port),"kind":0,"agentId":"agent","uuid":"\#(uuid)"}"#
}

private func coordRecord(_ uuid: ContainerUUID, kind: ContainerKind = "k", endpoint: String? = nil,
                         agent: AgentUUID = "somebody-else", labels: [String]? = nil) -> ContainerRecord {
    ContainerRecord(agentId: agent, uuid: uuid, kind: kind, endpoint: endpoint ?? coordEndpoint(uuid),
                    lastVisit: 1, labels: labels)
}

private extension NetworkEvent {
    func container(_ uuid: ContainerUUID) -> ContainerChange? { containers.first { $0.container.uuid == uuid } }
    func agent(_ id: AgentUUID) -> AgentChange? { agents.first { $0.id == id } }
}

private extension Array where Element == NetworkEvent {
    /// Every container change in these events, in order.
    var containerChanges: [NetworkEvent.ContainerChange] { flatMap(\.containers) }
    var agentChanges: [NetworkEvent.AgentChange] { flatMap(\.agents) }
}

private extension Array where Element == UInt8 {
    init(coordText text: String) { self = Array(text.utf8) }
}

// MARK: - Tests

final class CoordinatorTests: XCTestCase {

    // MARK: ar / al / ak / cl

    func testRegisterAddsListedContainersKindsAndEndpoint() throws {
        let h = CoordHarness()
        let terminate = h.register("A1", by: "o1", kinds: ["k1", "k2"],
                                   containers: [coordRecord("u1", kind: "k1"), coordRecord("u2", kind: "k2")],
                                   endpoint: "tcp://a1:5000")
        XCTAssertEqual(terminate, [])
        XCTAssertEqual(h.coordinator.agentCount, 1)
        XCTAssertEqual(h.coordinator.containerCount, 2)
        // The records belong to the registering agent, whatever agentId the agent wrote in them.
        let records = h.coordinator.containerList(kind: nil).sorted { $0.uuid < $1.uuid }
        XCTAssertEqual(records.map(\.uuid), ["u1", "u2"])
        XCTAssertEqual(records.map(\.agentId), ["A1", "A1"])
        XCTAssertEqual(records.map(\.kind), ["k1", "k2"])
        XCTAssertEqual(records.map(\.endpoint), [coordEndpoint("u1"), coordEndpoint("u2")])
        XCTAssertEqual(h.coordinator.agentList(),
                       [AgentInfo(agentId: "A1", endpoint: "tcp://a1:5000", kinds: ["k1", "k2"], containers: 2)])

        let events = h.tickEvents()
        XCTAssertEqual(events.count, 1)
        let event = try XCTUnwrap(events.first)
        XCTAssertEqual(event.agents, [NetworkEvent.AgentChange(id: "A1", kinds: ["k1", "k2"], event: .added)])
        XCTAssertEqual(Set(event.containers.map(\.container.uuid)), ["u1", "u2"])
        XCTAssertEqual(event.container("u1")?.event, .added)
        XCTAssertEqual(event.container("u2")?.event, .added)
        XCTAssertEqual(event.container("u1")?.container.agentId, "A1")
        XCTAssertEqual(event.container("u2")?.container.endpoint, coordEndpoint("u2"))
    }

    func testListAgentsReplyHasIdEndpointKindsAndContainerCount() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k1", "k2"], containers: [coordRecord("u1"), coordRecord("u2")],
                   endpoint: "tcp://a1:5000")
        h.register("A2", by: "o2", kinds: ["k2"])
        let list = h.reply(h.request("c", Method.listAgents, [:]))
        let expected: JSONValue = [
            ["agentId": "A1", "endpoint": "tcp://a1:5000", "kinds": ["k1", "k2"], "containers": 2],
            ["agentId": "A2", "endpoint": nil, "kinds": ["k2"], "containers": 0],
        ]
        XCTAssertEqual(list, expected)
    }

    func testKindsAreDeduplicated() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k1", "k2"])
        h.register("A2", by: "o2", kinds: ["k2", "k3", "k1"])
        h.register("A3", by: "o3", kinds: ["k3"])
        XCTAssertEqual(h.reply(h.request("c", Method.kinds, [:])), ["k1", "k2", "k3"])
        XCTAssertEqual(h.coordinator.kindList(), ["k1", "k2", "k3"])
    }

    func testListContainersFilteredByKind() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["x", "y"],
                   containers: [coordRecord("u1", kind: "x"), coordRecord("u2", kind: "y"), coordRecord("u3", kind: "x")])
        XCTAssertEqual(h.listContainers(["kind": "x"]).map { Set($0.map(\.uuid)) }, ["u1", "u3"])
        XCTAssertEqual(h.listContainers(["kind": "y"]).map { Set($0.map(\.uuid)) }, ["u2"])
        XCTAssertEqual(h.listContainers(["kind": "nothing"])?.count, 0)
        // Each listed record is the full ContainerRecord.
        let u2 = h.listContainers(["kind": "y"])?.first
        XCTAssertEqual(u2?.agentId, "A1")
        XCTAssertEqual(u2?.kind, "y")
        XCTAssertEqual(u2?.endpoint, coordEndpoint("u2"))
    }

    func testListContainersWithoutKindListsAll() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["x", "y"], containers: [coordRecord("u1", kind: "x"), coordRecord("u2", kind: "y")])
        h.register("A2", by: "o2", kinds: ["z"], containers: [coordRecord("u3", kind: "z")])
        XCTAssertEqual(h.listContainers([:]).map { Set($0.map(\.uuid)) }, ["u1", "u2", "u3"])
    }

    /// The reference client sends `cl` with no kind as `{"kind":null}`; that must list everything.
    func testListContainersWithNullKindListsAll() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["x", "y"], containers: [coordRecord("u1", kind: "x"), coordRecord("u2", kind: "y")])
        h.register("A2", by: "o2", kinds: ["z"], containers: [coordRecord("u3", kind: "z")])
        XCTAssertEqual(h.listContainers(["kind": nil]).map { Set($0.map(\.uuid)) }, ["u1", "u2", "u3"])
        XCTAssertEqual(h.listContainers(nil).map { Set($0.map(\.uuid)) }, ["u1", "u2", "u3"])
    }

    func testReRegisterSameAgentKeepsContainersAndReportsChangedEndpointAsUpdated() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1"), coordRecord("u2")])
        h.get("c", uuid: "u1")
        XCTAssertEqual(h.coordinator.references(of: "u1"), ["c": 1])
        _ = h.tickEvents()

        let moved = coordEndpoint("u1", port: 7001)
        let terminate = h.register("A1", by: "o1", kinds: ["k"],
                                   containers: [coordRecord("u1", endpoint: moved), coordRecord("u2")])
        XCTAssertEqual(terminate, [], "its own containers are not 'owned by another agent'")
        XCTAssertEqual(h.coordinator.agentList().first?.containers, 2, "the new agent record keeps its containers")
        XCTAssertEqual(h.coordinator.containerCount, 2)
        XCTAssertEqual(h.coordinator.references(of: "u1"), ["c": 1], "holders survive a re-registration")
        XCTAssertEqual(h.coordinator.containerList(kind: nil).first { $0.uuid == "u1" }?.endpoint, moved)

        let events = h.tickEvents()
        XCTAssertEqual(events.count, 1)
        let event = try XCTUnwrap(events.first)
        XCTAssertEqual(event.agents, [NetworkEvent.AgentChange(id: "A1", kinds: ["k"], event: .updated)])
        XCTAssertEqual(event.containers.count, 1, "only the container whose endpoint changed is reported")
        XCTAssertEqual(event.container("u1")?.event, .updated)
        XCTAssertEqual(event.container("u1")?.container.endpoint, moved)

        // The containers still work after the re-registration: a request reaches the agent.
        let token = h.forward("c", target: "u2", raw: Array(coordText: #"["u2","op",1]"#))
        XCTAssertNil(h.failure(token))
        XCTAssertEqual(h.openCalls("cs").last?.to, "o1")
    }

    func testReRegisterDropsContainersTheAgentNoLongerLists() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1"), coordRecord("u2")])
        _ = h.tickEvents()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        XCTAssertEqual(h.coordinator.containerList(kind: nil).map(\.uuid), ["u1"])
        XCTAssertEqual(h.coordinator.agentList().first?.containers, 1)
        let event = try XCTUnwrap(h.tickEvents().first)
        XCTAssertEqual(event.container("u2")?.event, .removed)
        XCTAssertNil(event.container("u1"))
    }

    func testContainerListedBySecondAgentStaysWithFirstAndIsReturnedForTermination() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("ha", endpoint: "ep-from-A1")])
        _ = h.tickEvents()
        let terminate = h.register("A2", by: "o2", kinds: ["k"],
                                   containers: [coordRecord("ha", endpoint: "ep-from-A2"), coordRecord("own")])
        XCTAssertEqual(terminate, ["ha"])
        let ha = try XCTUnwrap(h.coordinator.containerList(kind: nil).first { $0.uuid == "ha" })
        XCTAssertEqual(ha.agentId, "A1")
        XCTAssertEqual(ha.endpoint, "ep-from-A1")
        XCTAssertEqual(h.coordinator.agentList().map(\.containers), [1, 1])
        XCTAssertEqual(h.coordinator.containerList(kind: nil).first { $0.uuid == "own" }?.agentId, "A2")

        let event = try XCTUnwrap(h.tickEvents().first)
        XCTAssertNil(event.container("ha"), "the first agent's container did not change")
        XCTAssertEqual(event.container("own")?.event, .added)

        // Requests for it still go to the first agent.
        let got = h.get("c", uuid: "ha")
        XCTAssertEqual(h.reply(got), ["ha", "ep-from-A1"])
        h.forward("c", target: "ha", raw: Array(coordText: #"["ha","op",null]"#))
        XCTAssertEqual(h.openCalls("cs").map(\.to), ["o1"])
        XCTAssertEqual(h.openCalls("cs").first?.agentId, "A1")
    }

    /// When a highly available container's owner goes, a get of its uuid goes to an agent that
    /// offered it on standby, not to the next agent of the kind in turn (which would start a
    /// fresh copy and leave the standby's unused).
    func testGetOfARemovedHighlyAvailableContainerGoesToItsStandby() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("ha")])
        h.register("A2", by: "o2", kinds: ["k"])
        h.register("A3", by: "o3", kinds: ["k"], containers: [coordRecord("ha")])
        h.register("A4", by: "o4", kinds: ["k"])
        h.gone("o1")
        for round in 0..<3 {
            h.get("c", uuid: "filler-\(round)") // moves the round robin on
            h.get("c", uuid: "ha")
            let start = try XCTUnwrap(h.openCalls("gg").last)
            XCTAssertEqual(start.agentId, "A3", "the standby, every time")
            h.started(start, uuid: "ha", endpoint: "ep-A3")
            h.release("c", "ha")
            h.advance(by: 6000)
            for call in h.openCalls("ct") { h.succeed(call, "") }
        }
        // A standby that registers again without the container offers it no more: the get goes
        // to the agents in turn.
        h.register("A3", by: "o3", kinds: ["k"])
        var picked = Set<AgentUUID>()
        for round in 0..<3 {
            h.get("c", uuid: "ha-\(round)")
            picked.insert(try XCTUnwrap(h.openCalls("gg").last?.agentId))
        }
        XCTAssertEqual(picked, ["A2", "A3", "A4"])
        h.get("c", uuid: "ha")
        XCTAssertEqual(h.openCalls("gg").filter { $0.args?[1] == ["uuid": "ha"] }.count, 1, "started in turn, not on standby")
    }

    func testUnregisterRemovesAgentAndItsContainersWithRemovedEvents() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1"), coordRecord("u2")])
        h.register("A2", by: "o2", kinds: ["k"], containers: [coordRecord("u3")])
        _ = h.tickEvents()
        XCTAssertEqual(h.reply(h.request("o1", Method.unregisterAgent, ["uuid": "A1"])), "ok")
        XCTAssertEqual(h.coordinator.agentList().map(\.agentId), ["A2"])
        XCTAssertEqual(h.coordinator.containerList(kind: nil).map(\.uuid), ["u3"])
        let events = h.tickEvents()
        XCTAssertEqual(events.count, 1)
        let event = try XCTUnwrap(events.first)
        XCTAssertEqual(event.agents, [NetworkEvent.AgentChange(id: "A1", kinds: ["k"], event: .removed)])
        XCTAssertEqual(Set(event.containers.map(\.container.uuid)), ["u1", "u2"])
        XCTAssertEqual(event.containers.map(\.event), [.removed, .removed])
        // A removed agent no longer takes starts.
        h.get("c", kind: "k", labels: ["x"])
        XCTAssertEqual(h.openCalls("gg").map(\.to), ["o2"])
    }

    func testUnregisterOfAgentWithoutContainersStillEmitsAgentRemoved() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        _ = h.tickEvents()
        XCTAssertEqual(h.reply(h.request("o1", Method.unregisterAgent, ["uuid": "A1"])), "ok")
        XCTAssertEqual(h.coordinator.agentCount, 0)
        let events = h.tickEvents()
        XCTAssertEqual(events, [NetworkEvent(agents: [.init(id: "A1", kinds: ["k"], event: .removed)], containers: [])])
    }

    func testUnregisterOfUnknownAgentAnswersOkAndChangesNothing() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        _ = h.tickEvents()
        XCTAssertEqual(h.reply(h.request("o1", Method.unregisterAgent, ["uuid": "nobody"])), "ok")
        XCTAssertEqual(h.coordinator.agentCount, 1)
        XCTAssertEqual(h.tickEvents(), [])
    }

    // MARK: agent ownership

    func testRegisterOfAgentOwnedByAnotherLiveClientFailsAndLeavesItUntouched() throws {
        let h = CoordHarness()
        h.register("A1", by: "owner", kinds: ["k"], containers: [coordRecord("u1")], endpoint: "ep-owner")
        _ = h.tickEvents()
        h.connect("thief")
        let hijack = AgentRegistration(uuid: "A1", containers: [], kinds: ["evil"], endpoint: "ep-thief")
        let token = h.request("thief", Method.registerAgent, hijack.json)
        XCTAssertEqual(h.failure(token), "Agent A1 is registered by another client")
        XCTAssertEqual(h.coordinator.agentList(), [AgentInfo(agentId: "A1", endpoint: "ep-owner", kinds: ["k"], containers: 1)])
        XCTAssertEqual(h.coordinator.containerList(kind: nil).map(\.uuid), ["u1"])
        XCTAssertEqual(h.tickEvents(), [], "nothing changed, nothing announced")
        // Requests for its container still go to the owner.
        h.forward("c", target: "u1", raw: Array(coordText: #"["u1","op",1]"#))
        XCTAssertEqual(h.openCalls("cs").map(\.to), ["owner"])
        // The thief going away later does not touch the owner's agent either.
        h.gone("thief")
        XCTAssertEqual(h.coordinator.agentCount, 1)
    }

    func testUnregisterOfAgentOwnedByAnotherLiveClientFailsAndLeavesItUntouched() {
        let h = CoordHarness()
        h.register("A1", by: "owner", kinds: ["k"], containers: [coordRecord("u1")])
        _ = h.tickEvents()
        h.connect("thief")
        let token = h.request("thief", Method.unregisterAgent, ["uuid": "A1"])
        XCTAssertEqual(h.failure(token), "Agent A1 is registered by another client")
        XCTAssertEqual(h.coordinator.agentList().map(\.agentId), ["A1"])
        XCTAssertEqual(h.coordinator.containerList(kind: nil).map(\.uuid), ["u1"])
        XCTAssertEqual(h.tickEvents(), [])
    }

    func testOwnerReRegistersAndUnregistersItsOwnAgent() {
        let h = CoordHarness()
        h.register("A1", by: "owner", kinds: ["k"])
        XCTAssertEqual(h.register("A1", by: "owner", kinds: ["k", "k2"]), [])
        XCTAssertEqual(h.coordinator.agentList().first?.kinds, ["k", "k2"])
        XCTAssertEqual(h.reply(h.request("owner", Method.unregisterAgent, ["uuid": "A1"])), "ok")
        XCTAssertEqual(h.coordinator.agentCount, 0)
    }

    func testAgentUuidIsFreeForAnotherClientOnceTheOwnerIsGone() {
        let h = CoordHarness()
        h.register("A1", by: "old-process", kinds: ["k"], containers: [coordRecord("u1")])
        h.connect("new-process")
        XCTAssertNil(h.register("A1", by: "new-process", kinds: ["k"]), "refused while the owner is live")
        h.gone("old-process")
        XCTAssertEqual(h.register("A1", by: "new-process", kinds: ["k"], containers: [coordRecord("u1")]), [])
        XCTAssertEqual(h.coordinator.agentList().map(\.agentId), ["A1"])
        XCTAssertEqual(h.coordinator.containerList(kind: nil).map(\.agentId), ["A1"])
        h.get("c", kind: "k", labels: ["x"])
        XCTAssertEqual(h.openCalls("gg").map(\.to), ["new-process"], "starts go to the new owner")
    }

    func testAgentOfSilentOwnerIsFreeAfterTheAliveTimeout() {
        let h = CoordHarness()
        h.register("A1", by: "old-process", kinds: ["k"])
        h.live.remove("old-process") // killed: it pings no more
        h.connect("new-process")
        XCTAssertNil(h.register("A1", by: "new-process", kinds: ["k"]))
        h.advance(by: h.timeouts.aliveMs + 500)
        XCTAssertEqual(h.coordinator.agentCount, 0, "the silent owner's agent is removed")
        XCTAssertEqual(h.register("A1", by: "new-process", kinds: ["k"]), [])
    }

    // MARK: gg

    func testGetByUuidOfExistingContainerRepliesAtOnceAndAddsReference() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        let token = h.get("c", uuid: "u1")
        XCTAssertEqual(h.reply(token), ["u1", .string(coordEndpoint("u1"))])
        XCTAssertEqual(h.calls.count, 0, "no agent is asked")
        XCTAssertEqual(h.coordinator.references(of: "u1"), ["c": 1])
        XCTAssertEqual(h.coordinator.containerList(kind: nil).first?.lastVisit, Double(h.now))
    }

    func testGetStartAsksOneAgentWithKindAndOptions() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        let token = h.get("c", kind: "k", uuid: "u9", labels: ["l"], extra: ["x": 1])
        XCTAssertTrue(h.answers(token).isEmpty, "answered only once the agent answers")
        let call = try XCTUnwrap(h.openCalls("gg").first)
        XCTAssertEqual(call.to, "o1")
        XCTAssertEqual(call.json, ["gg", ["A1", ["k", ["uuid": "u9", "labels": ["l"], "extra": ["x": 1]]]]])
        h.started(call, uuid: "u9", endpoint: coordEndpoint("u9"))
        XCTAssertEqual(h.reply(token), ["u9", .string(coordEndpoint("u9"))])
        XCTAssertEqual(h.answers(token).count, 1)
    }

    func testGetByUuidJoinsStartUnderWay() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        h.register("A2", by: "o2", kinds: ["k"])
        let first = h.get("c1", uuid: "u9")
        let second = h.get("c2", uuid: "u9")
        let third = h.get("c1", uuid: "u9")
        XCTAssertEqual(h.calls("gg").count, 1, "one start for one uuid")
        let call = try XCTUnwrap(h.openCalls("gg").first)
        h.started(call, uuid: "u9", endpoint: coordEndpoint("u9"))
        let answer: JSONValue = ["u9", .string(coordEndpoint("u9"))]
        XCTAssertEqual(h.reply(first), answer)
        XCTAssertEqual(h.reply(second), answer)
        XCTAssertEqual(h.reply(third), answer)
        XCTAssertEqual(h.coordinator.references(of: "u9"), ["c1": 2, "c2": 1])
        XCTAssertEqual(h.coordinator.containerCount, 1)
        XCTAssertEqual(h.coordinator.pendingCallCount, 0)
    }

    func testGetByKindJoinsStartUnderWayWithSupersetOfLabels() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        h.register("A2", by: "o2", kinds: ["k"])
        let first = h.get("c1", kind: "k", labels: ["a", "b"])
        let subset = h.get("c2", kind: "k", labels: ["b"])
        let noLabels = h.get("c3", kind: "k")
        XCTAssertEqual(h.calls("gg").count, 1, "both join the start under way")
        let call = try XCTUnwrap(h.openCalls("gg").first)
        h.started(call, uuid: "s1", endpoint: coordEndpoint("s1"))
        let answer: JSONValue = ["s1", .string(coordEndpoint("s1"))]
        XCTAssertEqual(h.reply(first), answer)
        XCTAssertEqual(h.reply(subset), answer)
        XCTAssertEqual(h.reply(noLabels), answer)
        XCTAssertEqual(h.coordinator.references(of: "s1"), ["c1": 1, "c2": 1, "c3": 1])
    }

    func testGetByKindWithLabelsNotCoveredByStartUnderWayStartsAnother() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        let a = h.get("c1", kind: "k", labels: ["a"])
        let b = h.get("c2", kind: "k", labels: ["b"])          // different label
        let ac = h.get("c3", kind: "k", labels: ["a", "c"])    // more labels than the start has
        XCTAssertEqual(h.calls("gg").count, 3)
        let labels = h.calls("gg").map { $0.args?[1]?["labels"] }
        XCTAssertEqual(labels, [["a"], ["b"], ["a", "c"]])
        // A start of another kind is never joined either.
        h.register("B1", by: "o4", kinds: ["other"])
        h.get("c4", kind: "other", labels: ["a"])
        XCTAssertEqual(h.calls("gg").count, 4)
        // Each start answers its own waiter only.
        let open = h.openCalls("gg")
        for (index, call) in open.enumerated() { h.started(call, uuid: "s\(index)", endpoint: "e\(index)") }
        XCTAssertEqual(h.reply(a), ["s0", "e0"])
        XCTAssertEqual(h.reply(b), ["s1", "e1"])
        XCTAssertEqual(h.reply(ac), ["s2", "e2"])
    }

    func testGetWithLabelsDoesNotJoinUnlabelledStart() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        h.get("c1", kind: "k")
        h.get("c2", kind: "k", labels: ["a"])
        XCTAssertEqual(h.calls("gg").count, 2)
    }

    func testGetByUuidDoesNotJoinAStartOfTheKindWithoutUuid() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        h.get("c1", kind: "k")
        h.get("c2", kind: "k", uuid: "wanted")
        XCTAssertEqual(h.calls("gg").count, 2)
        XCTAssertEqual(h.calls("gg").last?.args?[1]?["uuid"], "wanted")
    }

    /// Starts under way are found by uuid or by labels among many: each get joins the start it
    /// fits, and a finished or failed start is joined no more.
    func testManyStartsUnderWayAreEachJoinedByTheGetsThatFitThem() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        let count = 300
        let labelled = (0..<count).map { h.get("a\($0)", kind: "k", labels: ["shared", "own-\($0)"]) }
        let identified = (0..<count).map { h.get("b\($0)", kind: "k", uuid: "u\($0)", labels: ["shared"]) }
        let starts = h.openCalls("gg")
        XCTAssertEqual(starts.count, 2 * count)

        let joiningLabels = (0..<count).map { h.get("c\($0)", kind: "k", labels: ["own-\($0)"]) }
        let joiningUuid = (0..<count).map { h.get("d\($0)", kind: "k", uuid: "u\($0)") }
        // Only the starts without a uuid are joined by labels, and any of them has "shared".
        let anyShared = h.get("e", kind: "k", labels: ["shared"])
        XCTAssertEqual(h.calls("gg").count, 2 * count, "every get above joined a start")
        h.get("f", kind: "k", labels: ["own-1", "own-2"])
        h.get("g", kind: "j2", labels: ["own-1"])
        XCTAssertEqual(h.calls("gg").count, 2 * count + 1, "no start has both labels: a start of its own; no agent has kind j2")

        // Answered in reverse order, each start answers its own waiters.
        for call in starts.reversed() {
            let options = try XCTUnwrap(call.args?[1])
            let uuid = options["uuid"]?.stringValue ?? "started-" + (options["labels"]?[1]?.stringValue ?? "?")
            h.started(call, uuid: uuid, endpoint: "e-\(uuid)")
        }
        for i in 0..<count {
            XCTAssertEqual(h.reply(labelled[i])?[0], .string("started-own-\(i)"))
            XCTAssertEqual(h.reply(joiningLabels[i])?[0], .string("started-own-\(i)"))
            XCTAssertEqual(h.reply(identified[i])?[0], .string("u\(i)"))
            XCTAssertEqual(h.reply(joiningUuid[i])?[0], .string("u\(i)"))
        }
        XCTAssertEqual(h.reply(anyShared)?[0]?.stringValue?.hasPrefix("started-own-"), true)

        // Finished starts are joined no more: labels go to the agent again, a uuid is answered at once.
        let again = h.get("a0", kind: "k", labels: ["shared", "own-0"])
        XCTAssertEqual(h.openCalls("gg").count, 2, "the start of f and a new one for the same labels")
        XCTAssertTrue(h.answers(again).isEmpty)
        XCTAssertEqual(h.reply(h.get("b0", kind: "k", uuid: "u0"))?[0], "u0")
        // A failed start is joined no more either.
        for call in h.openCalls("gg") { h.fail(call, "no") }
        XCTAssertNotNil(h.failure(again))
        h.get("a0", kind: "k", labels: ["shared", "own-0"])
        XCTAssertEqual(h.openCalls("gg").count, 1)
    }

    func testAgentsOfAKindFollowRegistrationsAndRemovals() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        h.get("c", kind: "k", labels: ["1"])
        XCTAssertEqual(h.calls("gg").last?.to, "o1")
        // A1 registers again without k: no agent offers it now.
        h.register("A1", by: "o1", kinds: ["j"])
        XCTAssertEqual(h.failure(h.get("c", kind: "k", labels: ["2"])), "No suitable agents found for container k")
        // An agent naming a kind twice is one agent of that kind.
        h.register("A2", by: "o2", kinds: ["k", "k"])
        h.register("A3", by: "o3", kinds: ["k"])
        for i in 3..<7 { h.get("c", kind: "k", labels: ["\(i)"]) }
        XCTAssertEqual(h.calls("gg").suffix(4).map(\.to).sorted(), ["o2", "o2", "o3", "o3"])
        h.request("o2", Method.unregisterAgent, ["uuid": "A2"])
        h.gone("o3")
        XCTAssertEqual(h.failure(h.get("c", kind: "k", labels: ["7"])), "No suitable agents found for container k")
        h.register("A4", by: "o4", kinds: ["j", "k"])
        h.get("c", kind: "k", labels: ["8"])
        XCTAssertEqual(h.calls("gg").last?.to, "o4")
    }

    func testRoundRobinAcrossThreeAgentsOfAKind() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        h.register("A2", by: "o2", kinds: ["other", "k"])
        h.register("A3", by: "o3", kinds: ["k"])
        h.register("B", by: "o4", kinds: ["other"])
        for i in 0..<6 { h.get("c", kind: "k", labels: ["l\(i)"]) }
        let calls = h.calls("gg")
        XCTAssertEqual(calls.count, 6)
        let owners = calls.map(\.to)
        XCTAssertEqual(Set(owners.prefix(3)), ["o1", "o2", "o3"], "three starts go to three different agents")
        XCTAssertEqual(Array(owners.prefix(3)), Array(owners.suffix(3)), "then the same cycle again")
        XCTAssertFalse(owners.contains("o4"), "an agent without the kind is never asked")
        // Each call names the agent of the client it is sent to.
        let agentOfOwner = ["o1": "A1", "o2": "A2", "o3": "A3"]
        XCTAssertEqual(calls.map(\.agentId), owners.map { agentOfOwner[$0] })
    }

    func testRoundRobinAlternatesBetweenTwoAgentsForSuccessiveGets() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        h.register("A2", by: "o2", kinds: ["k"])
        var owners: [ClientUUID] = []
        for i in 0..<4 {
            // Sequential: each start is over before the next get, so nothing is joined.
            let token = h.get("c", kind: "k")
            let call = try XCTUnwrap(h.openCalls("gg").first)
            owners.append(call.to)
            h.started(call, uuid: "s\(i)", endpoint: "e\(i)")
            XCTAssertEqual(h.reply(token), [.string("s\(i)"), .string("e\(i)")])
        }
        XCTAssertNotEqual(owners[0], owners[1])
        XCTAssertEqual(owners[0], owners[2])
        XCTAssertEqual(owners[1], owners[3])
    }

    func testGetWithNoSuitableAgentFails() {
        let h = CoordHarness()
        let none = h.get("c", kind: "nobody-runs-this")
        XCTAssertEqual(h.failure(none), "No suitable agents found for container nobody-runs-this")
        h.register("A1", by: "o1", kinds: ["k"])
        let wrongKind = h.get("c", kind: "kx")
        XCTAssertEqual(h.failure(wrongKind), "No suitable agents found for container kx")
        let byUuid = h.get("c", kind: "kx", uuid: "u1")
        XCTAssertEqual(h.failure(byUuid), "No suitable agents found for container kx")
        XCTAssertEqual(h.calls.count, 0)
        XCTAssertEqual(h.answers(none).count, 1)
    }

    func testAgentErrorFailsAllWaitersAndLaterGetStartsAfresh() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        let first = h.get("c1", kind: "k")
        let joined = h.get("c2", kind: "k")
        let call = try XCTUnwrap(h.openCalls("gg").first)
        XCTAssertEqual(h.calls("gg").count, 1)
        h.fail(call, "factory exploded")
        let firstError = try XCTUnwrap(h.failure(first))
        XCTAssertTrue(firstError.contains("factory exploded"), firstError)
        XCTAssertTrue(firstError.contains("k"), firstError)
        XCTAssertEqual(h.failure(joined), firstError)
        XCTAssertEqual(h.coordinator.pendingCallCount, 0)
        XCTAssertEqual(h.coordinator.containerCount, 0)

        // No stale pending start: the next get asks the agent again and is answered.
        let later = h.get("c3", kind: "k")
        XCTAssertEqual(h.calls("gg").count, 2)
        let second = try XCTUnwrap(h.openCalls("gg").first)
        h.started(second, uuid: "s1", endpoint: "e1")
        XCTAssertEqual(h.reply(later), ["s1", "e1"])
        XCTAssertEqual(h.answers(first).count, 1, "the failed waiters are not answered twice")
    }

    func testMalformedAgentAnswerFailsWaitersAndLaterGetStartsAfresh() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        let first = h.get("c1", kind: "k")
        h.succeedRaw(try XCTUnwrap(h.openCalls("gg").first), Array(coordText: #"{"not":"a pair"}"#))
        XCTAssertNotNil(h.failure(first))
        XCTAssertEqual(h.coordinator.containerCount, 0)
        let later = h.get("c1", kind: "k")
        XCTAssertEqual(h.calls("gg").count, 2)
        h.started(try XCTUnwrap(h.openCalls("gg").first), uuid: "s1", endpoint: "e1")
        XCTAssertEqual(h.reply(later), ["s1", "e1"])
    }

    func testStartThatTimesOutFailsWaitersAndLaterGetStartsAfresh() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        let first = h.get("c1", kind: "k", uuid: "u1")
        h.advance(by: coordTestTimeouts.requestMs - 500)
        XCTAssertTrue(h.answers(first).isEmpty)
        h.advance(by: 1000)
        let message = try XCTUnwrap(h.failure(first))
        XCTAssertTrue(message.contains("timed out"), message)
        XCTAssertEqual(h.coordinator.pendingCallCount, 0)
        let later = h.get("c1", kind: "k", uuid: "u1")
        XCTAssertEqual(h.calls("gg").count, 2)
        // The late answer of the first call is ignored; the second one counts.
        h.started(h.calls("gg")[0], uuid: "u1", endpoint: "late")
        XCTAssertTrue(h.answers(later).isEmpty)
        h.started(h.calls("gg")[1], uuid: "u1", endpoint: "e1")
        XCTAssertEqual(h.reply(later), ["u1", "e1"])
    }

    func testAgentRemovedDuringStartFailsWaitersAtOnce() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        let first = h.get("c1", kind: "k")
        let joined = h.get("c2", kind: "k")
        h.request("o1", Method.unregisterAgent, ["uuid": "A1"])
        XCTAssertNotNil(h.failure(first))
        XCTAssertNotNil(h.failure(joined))
        XCTAssertEqual(h.coordinator.pendingCallCount, 0)
        // A new agent of the kind gets the next get.
        h.register("A2", by: "o2", kinds: ["k"])
        let later = h.get("c1", kind: "k")
        let call = try XCTUnwrap(h.openCalls("gg").last)
        XCTAssertEqual(call.to, "o2")
        h.started(call, uuid: "s2", endpoint: "e2")
        XCTAssertEqual(h.reply(later), ["s2", "e2"])
    }

    /// The reference lets a get without uuid take over a container another client holds
    /// (and later terminate it while in use). hulynet keeps the record and its other holder.
    func testAgentAnsweringKnownUuidKeepsExistingRecordAndItsOtherHolder() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1", labels: ["blue"])])
        let holderToken = h.get("holder", uuid: "u1")
        XCTAssertEqual(h.reply(holderToken), ["u1", .string(coordEndpoint("u1"))])
        _ = h.tickEvents()

        // Another client asks for any "k" labelled blue; the agent reuses u1.
        let other = h.get("other", kind: "k", labels: ["blue"])
        h.started(try XCTUnwrap(h.openCalls("gg").first), uuid: "u1", endpoint: coordEndpoint("u1"))
        XCTAssertEqual(h.reply(other), ["u1", .string(coordEndpoint("u1"))])
        XCTAssertEqual(h.coordinator.containerCount, 1)
        XCTAssertEqual(h.coordinator.references(of: "u1"), ["holder": 1, "other": 1])
        let record = try XCTUnwrap(h.coordinator.containerList(kind: nil).first)
        XCTAssertEqual(record.agentId, "A1")
        XCTAssertEqual(record.labels, ["blue"])
        XCTAssertEqual(h.coordinator.agentList().first?.containers, 1)
        XCTAssertEqual(h.tickEvents().containerChanges.filter { $0.event == .added }.count, 0,
                       "a known container is not announced as added again")

        // The newcomer releases it: the first holder still has it, so it is never terminated.
        h.release("other", "u1")
        h.advance(by: coordTestTimeouts.unusedContainerMs * 2)
        XCTAssertEqual(h.calls(Method.terminate).count, 0)
        XCTAssertEqual(h.coordinator.references(of: "u1"), ["holder": 1])
        XCTAssertEqual(h.coordinator.containerCount, 1)
    }

    func testAgentAnsweringUuidOwnedByAnotherAgentKeepsTheOwner() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1", endpoint: "ep-A1")])
        h.get("holder", uuid: "u1")
        h.register("A2", by: "o2", kinds: ["k"])
        // Start requests until one reaches A2, which answers with A1's uuid.
        var token: RequestToken = 0
        for i in 0..<2 {
            token = h.get("other", kind: "k", labels: ["l\(i)"])
            if h.calls("gg").last?.to == "o2" { break }
        }
        let call = try XCTUnwrap(h.openCalls("gg").first { $0.to == "o2" })
        h.started(call, uuid: "u1", endpoint: "ep-A2")
        XCTAssertEqual(h.reply(token), ["u1", "ep-A1"])
        let record = try XCTUnwrap(h.coordinator.containerList(kind: nil).first { $0.uuid == "u1" })
        XCTAssertEqual(record.agentId, "A1")
        XCTAssertEqual(record.endpoint, "ep-A1")
        XCTAssertEqual(h.coordinator.references(of: "u1")["holder"], 1)
        // The newcomer is told to drop its copy, as `ar` tells a newcomer listing an owned uuid.
        let terminate = try XCTUnwrap(h.calls("ct").last)
        XCTAssertEqual(terminate.to, "o2")
        XCTAssertEqual(terminate.params, ["A2", ["u1"]])
    }

    /// Gets of another kind in between must not skew a kind's round-robin.
    func testRoundRobinIsPerKind() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        h.register("A2", by: "o2", kinds: ["k"])
        h.register("B", by: "o3", kinds: ["j"])
        for i in 0..<6 {
            h.get("c", kind: "k", labels: ["k\(i)"])
            h.get("c", kind: "j", labels: ["j\(i)"])
        }
        let owners = h.calls("gg").filter { $0.args?[0] == "k" }.map(\.to)
        XCTAssertEqual(owners.count, 6)
        XCTAssertEqual(owners.filter { $0 == "o1" }.count, 3, "kind k alternates between its agents: \(owners)")
        XCTAssertEqual(owners.filter { $0 == "o2" }.count, 3, "kind k alternates between its agents: \(owners)")
    }

    /// The reference records '' as the endpoint of a container started through gg.
    func testStartedContainerRecordsRealEndpointLabelsAndExtra() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], endpoint: "tcp://a1")
        _ = h.tickEvents()
        let token = h.get("c", kind: "k", labels: ["gpu", "eu"], extra: ["model": "m1", "size": 3])
        h.now += 40
        let endpoint = coordEndpoint("s1", port: 7100)
        h.started(try XCTUnwrap(h.openCalls("gg").first), uuid: "s1", endpoint: endpoint)
        XCTAssertEqual(h.reply(token), ["s1", .string(endpoint)])

        let expected = ContainerRecord(agentId: "A1", uuid: "s1", kind: "k", endpoint: endpoint,
                                       lastVisit: Double(h.now), extra: ["model": "m1", "size": 3],
                                       labels: ["gpu", "eu"])
        XCTAssertEqual(h.coordinator.containerList(kind: "k"), [expected])
        XCTAssertEqual(h.listContainers(["kind": "k"]), [expected], "cl carries the real endpoint")
        XCTAssertEqual(h.coordinator.agentList().first?.containers, 1)
        XCTAssertEqual(h.coordinator.references(of: "s1"), ["c": 1])
        let events = h.tickEvents()
        XCTAssertEqual(events.count, 1)
        XCTAssertEqual(events.first?.containers, [NetworkEvent.ContainerChange(container: expected, event: .added)])
        // A later get by uuid answers with the same real endpoint.
        XCTAssertEqual(h.reply(h.get("c2", uuid: "s1")), ["s1", .string(endpoint)])
    }

    func testStartWhoseWaitersAllLeftIsRecordedUnusedAndTerminatedLater() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        let token = h.get("c", kind: "k")
        h.gone("c")
        h.started(try XCTUnwrap(h.openCalls("gg").first), uuid: "s1", endpoint: "e1")
        XCTAssertTrue(h.answers(token).isEmpty, "the gone client's waiter is dropped")
        XCTAssertEqual(h.coordinator.references(of: "s1"), [:])
        XCTAssertEqual(h.coordinator.containerCount, 1)
        h.advance(by: coordTestTimeouts.unusedContainerMs + 500)
        XCTAssertEqual(h.calls(Method.terminate).map(\.json), [["ct", ["A1", ["s1"]]]])
        XCTAssertEqual(h.coordinator.containerCount, 0)
    }

    // MARK: References

    func testReferencesAreCountedPerClient() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        h.get("c", uuid: "u1")
        h.get("c", uuid: "u1")
        h.get("d", uuid: "u1")
        XCTAssertEqual(h.coordinator.references(of: "u1"), ["c": 2, "d": 1])
        XCTAssertEqual(h.reply(h.release("d", "u1")), "ok")
        XCTAssertEqual(h.reply(h.release("c", "u1")), "ok")
        XCTAssertEqual(h.coordinator.references(of: "u1"), ["c": 1])
        h.advance(by: coordTestTimeouts.unusedContainerMs + 1000)
        XCTAssertEqual(h.calls(Method.terminate).count, 0, "still held once by c")
        XCTAssertEqual(h.coordinator.containerCount, 1)
        h.release("c", "u1")
        XCTAssertEqual(h.coordinator.references(of: "u1"), [:])
        h.advance(by: coordTestTimeouts.unusedContainerMs + 500)
        XCTAssertEqual(h.calls(Method.terminate).count, 1)
        XCTAssertEqual(h.coordinator.containerCount, 0)
    }

    func testReleaseOfContainerNotHeldChangesNothing() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        h.get("c", uuid: "u1")
        XCTAssertEqual(h.reply(h.release("stranger", "u1")), "ok")
        XCTAssertEqual(h.reply(h.release("c", "no-such-container")), "ok")
        XCTAssertEqual(h.coordinator.references(of: "u1"), ["c": 1])
        h.advance(by: coordTestTimeouts.unusedContainerMs + 500)
        XCTAssertEqual(h.calls(Method.terminate).count, 0)
    }

    func testUnusedContainerIsTerminatedWithCtToItsAgentAndRemovedEvent() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1"), coordRecord("u2")])
        h.get("c", uuid: "u1")
        h.get("c", uuid: "u2")
        _ = h.tickEvents()
        h.release("c", "u1")
        h.advance(by: coordTestTimeouts.unusedContainerMs - 500)
        XCTAssertEqual(h.calls(Method.terminate).count, 0, "not before unusedContainerMs")
        XCTAssertEqual(h.coordinator.containerCount, 2)
        XCTAssertTrue(h.newBroadcasts().containerChanges.isEmpty)

        h.advance(by: 1000)
        let ct = h.calls(Method.terminate)
        XCTAssertEqual(ct.count, 1)
        XCTAssertEqual(ct.first?.to, "o1")
        XCTAssertEqual(ct.first?.json, ["ct", ["A1", ["u1"]]])
        XCTAssertEqual(h.coordinator.containerList(kind: nil).map(\.uuid), ["u2"])
        XCTAssertEqual(h.coordinator.agentList().first?.containers, 1)
        let changes = h.newBroadcasts().containerChanges
        XCTAssertEqual(changes.map(\.container.uuid), ["u1"])
        XCTAssertEqual(changes.map(\.event), [.removed])

        // The agent's answer ("") needs no reply; nothing else happens afterwards.
        let before = h.directives.count
        h.succeed(try XCTUnwrap(ct.first), "")
        XCTAssertEqual(h.directives.count, before)
        h.advance(by: coordTestTimeouts.unusedContainerMs * 2)
        XCTAssertEqual(h.calls(Method.terminate).count, 1, "terminated once")
        // A get by uuid now must start it again.
        h.get("c", uuid: "u1")
        XCTAssertEqual(h.openCalls("gg").count, 1)
    }

    func testNewGetBeforeTimeoutCancelsTermination() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        h.get("c", uuid: "u1")
        h.release("c", "u1")
        h.advance(by: 3000)
        XCTAssertEqual(h.reply(h.get("d", uuid: "u1")), ["u1", .string(coordEndpoint("u1"))])
        h.advance(by: coordTestTimeouts.unusedContainerMs * 2)
        XCTAssertEqual(h.calls(Method.terminate).count, 0)
        XCTAssertEqual(h.coordinator.references(of: "u1"), ["d": 1])

        // Its unused time starts again at the next release, not at the first one.
        h.release("d", "u1")
        h.advance(by: coordTestTimeouts.unusedContainerMs - 1000)
        XCTAssertEqual(h.calls(Method.terminate).count, 0)
        h.advance(by: 1500)
        XCTAssertEqual(h.calls(Method.terminate).count, 1)
    }

    func testClientGoneReleasesAllItsReferences() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1"), coordRecord("u2"), coordRecord("u3")])
        h.get("c", uuid: "u1")
        h.get("c", uuid: "u1")
        h.get("c", uuid: "u2")
        h.get("d", uuid: "u2")
        h.get("d", uuid: "u3")
        h.gone("c")
        XCTAssertEqual(h.coordinator.references(of: "u1"), [:])
        XCTAssertEqual(h.coordinator.references(of: "u2"), ["d": 1])
        XCTAssertEqual(h.coordinator.references(of: "u3"), ["d": 1])
        h.advance(by: coordTestTimeouts.unusedContainerMs + 500)
        XCTAssertEqual(h.calls(Method.terminate).map(\.json), [["ct", ["A1", ["u1"]]]])
        XCTAssertEqual(Set(h.coordinator.containerList(kind: nil).map(\.uuid)), ["u2", "u3"])
        // A second clientGone of the same client is harmless.
        h.gone("c")
        XCTAssertEqual(h.coordinator.references(of: "u2"), ["d": 1])
    }

    // MARK: cs

    func testForwardWrapsRawParamsByteForByte() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        // Odd spacing, escapes, a float with trailing zeros and key order the coordinator must not touch.
        let raw = Array(coordText: #"[ "u1" ,"op\u00e9", {"z":1.50,"a":[true,null,"\/x"] ,"é":"ü"} ]"#)
        let token = h.forward("c", target: "u1", raw: raw)
        XCTAssertTrue(h.answers(token).isEmpty)
        let call = try XCTUnwrap(h.calls("cs").first)
        XCTAssertEqual(call.to, "o1")
        XCTAssertEqual(call.payload, Array(coordText: #"["cs",["A1","#) + raw + Array(coordText: "]]"))
        XCTAssertEqual(call.json, ["cs", ["A1", ["u1", "opé", ["z": 1.5, "a": [true, nil, "/x"], "é": "ü"]]]])
    }

    func testForwardRelaysAgentAnswerBytesUnchanged() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        let token = h.forward("c", target: "u1", raw: Array(coordText: #"["u1","op",{}]"#))
        let answer = Array(coordText: #"{ "b" : [1.0, 2e3], "a": "\u0041" }"#)
        h.succeedRaw(try XCTUnwrap(h.calls("cs").first), answer)
        XCTAssertEqual(h.answers(token), [.replyRaw(token, answer)])
        XCTAssertEqual(h.coordinator.pendingCallCount, 0)
    }

    func testForwardAgentErrorFailsTheRequest() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        let token = h.forward("c", target: "u1", raw: Array(coordText: #"["u1","op",1]"#))
        h.fail(try XCTUnwrap(h.calls("cs").first), "operation op failed")
        XCTAssertEqual(h.answers(token), [.fail(token, RemoteError("operation op failed"))])
    }

    func testForwardToUnknownContainerFails() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        let token = h.forward("c", target: "nope", raw: Array(coordText: #"["nope","op",1]"#))
        XCTAssertEqual(h.answers(token), [.fail(token, RemoteError("Container nope not found", code: .containerNotFound))])
        XCTAssertEqual(h.calls.count, 0)
        XCTAssertEqual(h.coordinator.pendingCallCount, 0)
    }

    func testForwardPastRequestTimeoutFailsOnTick() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        let token = h.forward("c", target: "u1", raw: Array(coordText: #"["u1","slow",1]"#))
        h.advance(by: coordTestTimeouts.requestMs - 500)
        XCTAssertTrue(h.answers(token).isEmpty, "not before requestMs")
        XCTAssertEqual(h.coordinator.agentCount, 1, "the pinging owner is alive")
        h.advance(by: 1000)
        XCTAssertEqual(h.answers(token).count, 1)
        let message = try XCTUnwrap(h.failure(token))
        XCTAssertTrue(message.contains("timed out"), message)
        XCTAssertEqual(h.coordinator.pendingCallCount, 0)
        // A late answer is dropped.
        h.succeedRaw(try XCTUnwrap(h.calls("cs").first), Array(coordText: "1"))
        XCTAssertNil(h.rawReply(token))
        XCTAssertEqual(h.answers(token).count, 1)
    }

    func testAgentRemovedWhileForwardInFlightFailsItAtOnce() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        let token = h.forward("c", target: "u1", raw: Array(coordText: #"["u1","op",1]"#))
        h.request("o1", Method.unregisterAgent, ["uuid": "A1"])
        XCTAssertEqual(h.answers(token).count, 1)
        XCTAssertNotNil(h.failure(token))
        XCTAssertEqual(h.coordinator.pendingCallCount, 0)
    }

    func testCsThroughHandleIsForwardedWithItsParams() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        let token = h.request("c", Method.sendContainer, ["u1", "op", ["a": 1]])
        let call = try XCTUnwrap(h.calls("cs").first)
        XCTAssertEqual(call.to, "o1")
        XCTAssertEqual(call.json, ["cs", ["A1", ["u1", "op", ["a": 1]]]])
        h.succeedRaw(call, Array(coordText: #"{"ok":true}"#))
        XCTAssertEqual(h.rawReply(token), Array(coordText: #"{"ok":true}"#))
    }

    // MARK: Dead agents

    func testSilentAgentIsRemovedWithItsContainersWhilePingingOneStays() throws {
        let h = CoordHarness()
        h.register("A1", by: "silent", kinds: ["k"], containers: [coordRecord("u1"), coordRecord("u2")])
        h.register("A2", by: "pinger", kinds: ["k"], containers: [coordRecord("u3")])
        h.get("c", uuid: "u1")
        h.live.remove("silent")
        _ = h.tickEvents()

        h.advance(by: coordTestTimeouts.aliveMs - 500)
        XCTAssertEqual(h.coordinator.agentCount, 2, "not before aliveMs")
        XCTAssertTrue(h.newBroadcasts().isEmpty)
        h.advance(by: 1000)
        XCTAssertEqual(h.coordinator.agentList().map(\.agentId), ["A2"])
        XCTAssertEqual(h.coordinator.containerList(kind: nil).map(\.uuid), ["u3"])
        XCTAssertEqual(h.coordinator.references(of: "u1"), [:])

        let events = h.newBroadcasts()
        XCTAssertEqual(events.count, 1)
        let event = try XCTUnwrap(events.first)
        XCTAssertEqual(event.agents, [NetworkEvent.AgentChange(id: "A1", kinds: ["k"], event: .removed)])
        XCTAssertEqual(Set(event.containers.map(\.container.uuid)), ["u1", "u2"])
        XCTAssertEqual(event.containers.map(\.event), [.removed, .removed])

        // The pinging agent stays for good.
        h.advance(by: coordTestTimeouts.aliveMs * 3)
        XCTAssertEqual(h.coordinator.agentList().map(\.agentId), ["A2"])

        // The client gets the container again, on the live agent.
        let again = h.get("c", kind: "k", uuid: "u1")
        let call = try XCTUnwrap(h.openCalls("gg").first)
        XCTAssertEqual(call.to, "pinger")
        h.started(call, uuid: "u1", endpoint: "ep-on-A2")
        XCTAssertEqual(h.reply(again), ["u1", "ep-on-A2"])
        XCTAssertEqual(h.coordinator.containerList(kind: nil).first { $0.uuid == "u1" }?.agentId, "A2")
    }

    func testClientGoneOfOwnerRemovesItsAgents() throws {
        let h = CoordHarness()
        h.register("A1", by: "owner", kinds: ["k"], containers: [coordRecord("u1")])
        h.register("A3", by: "owner", kinds: ["k3"])
        h.register("A2", by: "other", kinds: ["k"], containers: [coordRecord("u2")])
        _ = h.tickEvents()
        let inFlight = h.forward("c", target: "u1", raw: Array(coordText: #"["u1","op",1]"#))
        h.gone("owner")
        XCTAssertNotNil(h.failure(inFlight), "a request the gone client was answering fails at once")
        XCTAssertEqual(h.coordinator.agentList().map(\.agentId), ["A2"])
        XCTAssertEqual(h.coordinator.containerList(kind: nil).map(\.uuid), ["u2"])
        let event = try XCTUnwrap(h.tickEvents().first)
        XCTAssertEqual(Set(event.agents), [NetworkEvent.AgentChange(id: "A1", kinds: ["k"], event: .removed),
                                           NetworkEvent.AgentChange(id: "A3", kinds: ["k3"], event: .removed)])
        XCTAssertEqual(event.containers.map(\.container.uuid), ["u1"])
        XCTAssertEqual(event.containers.map(\.event), [.removed])
    }

    // MARK: Events

    func testEventsOfOneWindowLeaveAsOneBroadcast() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        h.register("A2", by: "o2", kinds: ["k"], containers: [coordRecord("u2")])
        h.get("c", kind: "k")
        h.started(try XCTUnwrap(h.openCalls("gg").first), uuid: "s1", endpoint: "e1")
        XCTAssertTrue(h.broadcasts.isEmpty, "nothing leaves before the tick")
        let events = h.tickEvents()
        XCTAssertEqual(events.count, 1)
        let event = try XCTUnwrap(events.first)
        XCTAssertEqual(event.agents.map(\.id), ["A1", "A2"])
        XCTAssertEqual(event.agents.map(\.event), [.added, .added])
        XCTAssertEqual(event.containers.map(\.container.uuid).sorted(), ["s1", "u1", "u2"])
        XCTAssertEqual(Set(event.containers.map(\.event)), [.added])
        XCTAssertEqual(event.container("s1")?.container.endpoint, "e1")
        XCTAssertEqual(h.tickEvents(), [], "the window is empty after the flush")
    }

    func testNothingBroadcastWhenNothingHappened() {
        let h = CoordHarness()
        XCTAssertEqual(h.tickEvents(), [])
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        XCTAssertEqual(h.tickEvents().count, 1)
        // Requests that change nothing queue nothing.
        h.request("c", Method.listAgents, [:])
        h.request("c", Method.kinds, [:])
        h.request("c", Method.listContainers, [:])
        h.get("c", uuid: "u1")
        h.release("c", "u1")
        h.advance(by: 2000)
        var out: [CoordinatorDirective] = []
        h.coordinator.flushEvents(into: &out)
        XCTAssertEqual(out, [])
        XCTAssertEqual(h.newBroadcasts(), [])
    }

    func testFlushEventsSendsTheQueuedEventAtOnce() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        var out: [CoordinatorDirective] = []
        h.coordinator.flushEvents(into: &out)
        XCTAssertEqual(out, [.broadcast(NetworkEvent(agents: [.init(id: "A1", kinds: ["k"], event: .added)]))])
        XCTAssertEqual(h.tickEvents(), [])
    }

    func testMergeAddedThenUpdatedStaysAddedWithNewestRecord() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1", endpoint: "ep1")])
        h.register("A1", by: "o1", kinds: ["k", "k2"], containers: [coordRecord("u1", endpoint: "ep2")])
        let events = h.tickEvents()
        XCTAssertEqual(events.count, 1)
        let event = try XCTUnwrap(events.first)
        XCTAssertEqual(event.agents, [NetworkEvent.AgentChange(id: "A1", kinds: ["k", "k2"], event: .added)])
        XCTAssertEqual(event.containers.count, 1)
        XCTAssertEqual(event.container("u1")?.event, .added)
        XCTAssertEqual(event.container("u1")?.container.endpoint, "ep2")
    }

    func testMergeAnythingThenRemovedIsRemoved() throws {
        let h = CoordHarness()
        // added then removed
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        h.request("o1", Method.unregisterAgent, ["uuid": "A1"])
        var event = try XCTUnwrap(h.tickEvents().first)
        XCTAssertEqual(event.agents, [NetworkEvent.AgentChange(id: "A1", kinds: ["k"], event: .removed)])
        XCTAssertEqual(event.containers.map(\.event), [.removed])
        XCTAssertEqual(event.containers.map(\.container.uuid), ["u1"])

        // updated then removed
        h.register("A2", by: "o2", kinds: ["k"], containers: [coordRecord("u2", endpoint: "ep1")])
        _ = h.tickEvents()
        h.register("A2", by: "o2", kinds: ["k"], containers: [coordRecord("u2", endpoint: "ep2")])
        h.request("o2", Method.unregisterAgent, ["uuid": "A2"])
        event = try XCTUnwrap(h.tickEvents().first)
        XCTAssertEqual(event.agents.map(\.event), [.removed])
        XCTAssertEqual(event.containers.map(\.event), [.removed])
    }

    /// The reference sends a removal then re-add in one window as a removal only.
    func testMergeRemovedThenAddedIsUpdatedWithNewestRecord() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1", endpoint: "ep1")])
        _ = h.tickEvents()
        h.request("o1", Method.unregisterAgent, ["uuid": "A1"])
        h.register("A1", by: "o1", kinds: ["k", "k2"], containers: [coordRecord("u1", endpoint: "ep2")])
        let events = h.tickEvents()
        XCTAssertEqual(events.count, 1)
        let event = try XCTUnwrap(events.first)
        XCTAssertEqual(event.agents, [NetworkEvent.AgentChange(id: "A1", kinds: ["k", "k2"], event: .updated)])
        XCTAssertEqual(event.containers.count, 1)
        XCTAssertEqual(event.container("u1")?.event, .updated)
        XCTAssertEqual(event.container("u1")?.container.endpoint, "ep2")
        XCTAssertEqual(event.container("u1")?.container.agentId, "A1")
    }

    func testMergeTable() {
        XCTAssertEqual(Coordinator.merge(.added, .updated), .added)
        XCTAssertEqual(Coordinator.merge(.added, .removed), .removed)
        XCTAssertEqual(Coordinator.merge(.updated, .removed), .removed)
        XCTAssertEqual(Coordinator.merge(.removed, .removed), .removed)
        XCTAssertEqual(Coordinator.merge(.removed, .added), .updated)
        XCTAssertEqual(Coordinator.merge(.removed, .updated), .updated)
        XCTAssertEqual(Coordinator.merge(.updated, .updated), .updated)
    }

    // MARK: Bad params

    func testGetWithoutKindFails() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        for params: JSONValue in [[:], ["request": [:]], ["kind": nil], ["kind": 5], "k", nil] {
            let token = h.request("c", Method.getContainer, params)
            XCTAssertEqual(h.answers(token), [.fail(token, RemoteError("gg: 'kind' must be a string", code: .invalid))], "params \(params)")
        }
        XCTAssertEqual(h.calls.count, 0)
        XCTAssertEqual(h.coordinator.pendingCallCount, 0)
    }

    func testGetWithRequestNotAnObjectFails() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        for request: JSONValue in ["u1", 3, [1, 2], true] {
            let token = h.request("c", Method.getContainer, ["kind": "k", "request": request])
            let message = try XCTUnwrap(h.failure(token), "request \(request)")
            XCTAssertTrue(message.contains("must be an object"), message)
            XCTAssertEqual(h.answers(token).count, 1)
        }
        for request: JSONValue in [["uuid": 5], ["labels": "a"], ["labels": [1]], ["extra": "x"]] {
            let token = h.request("c", Method.getContainer, ["kind": "k", "request": request])
            XCTAssertNotNil(h.failure(token), "request \(request)")
        }
        XCTAssertEqual(h.calls.count, 0)
        // A null request is like an absent one.
        h.request("c", Method.getContainer, ["kind": "k", "request": nil])
        XCTAssertEqual(h.calls("gg").count, 1)
        XCTAssertEqual(h.calls("gg").first?.args, ["k", [:]])
    }

    func testRegisterWithNonStringUuidFails() throws {
        let h = CoordHarness()
        let bad: [JSONValue] = [
            ["uuid": 5, "kinds": ["k"], "containers": []],
            ["kinds": ["k"]],
            ["uuid": nil, "kinds": ["k"]],
            ["uuid": "A1", "kinds": "k"],
            ["uuid": "A1", "kinds": ["k"], "containers": "u1"],
            ["uuid": "A1", "kinds": ["k"], "containers": [["kind": "k"]]],
            "A1",
            nil,
        ]
        for params in bad {
            h.connect("o1")
            let token = h.request("o1", Method.registerAgent, params)
            let message = try XCTUnwrap(h.failure(token), "params \(params)")
            XCTAssertFalse(message.isEmpty)
            XCTAssertEqual(h.answers(token).count, 1)
        }
        let token = h.request("o1", Method.registerAgent, ["uuid": 5, "kinds": ["k"]])
        XCTAssertTrue(h.failure(token)?.contains("uuid") == true, h.failure(token) ?? "")
        XCTAssertEqual(h.coordinator.agentCount, 0)
        XCTAssertEqual(h.coordinator.containerCount, 0)
        XCTAssertEqual(h.tickEvents(), [])
    }

    func testUnregisterWithoutUuidFails() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"])
        for params: JSONValue in [[:], ["uuid": nil], ["uuid": 1], nil] {
            let token = h.request("o1", Method.unregisterAgent, params)
            XCTAssertEqual(h.answers(token), [.fail(token, RemoteError("au: 'uuid' must be a string", code: .invalid))], "params \(params)")
        }
        XCTAssertEqual(h.coordinator.agentCount, 1)
    }

    func testReleaseWithoutUuidFails() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        h.get("c", uuid: "u1")
        for params: JSONValue in [[:], ["uuid": nil], ["uuid": ["u1"]], "u1"] {
            let token = h.request("c", Method.releaseContainer, params)
            XCTAssertEqual(h.answers(token), [.fail(token, RemoteError("cr: 'uuid' must be a string", code: .invalid))], "params \(params)")
        }
        XCTAssertEqual(h.coordinator.references(of: "u1"), ["c": 1])
    }

    func testCsThroughHandleWithBadParamsFails() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        for params: JSONValue in [[:], ["u1"], [1, "op"], "u1", nil] {
            let token = h.request("c", Method.sendContainer, params)
            XCTAssertEqual(h.answers(token).count, 1, "params \(params)")
            XCTAssertNotNil(h.failure(token), "params \(params)")
        }
        XCTAssertEqual(h.calls.count, 0)
    }

    func testUnknownMethodFails() {
        let h = CoordHarness()
        for method in ["zz", "", "GG", Method.terminate, Method.containerUpdate] {
            let token = h.request("c", method, [:])
            XCTAssertEqual(h.answers(token), [.fail(token, RemoteError("Unknown method \(method)", code: .invalid))])
        }
        XCTAssertEqual(h.calls.count, 0)
    }

    func testAnswerToUnknownCallIsIgnored() {
        let h = CoordHarness()
        var out: [CoordinatorDirective] = []
        h.coordinator.callSucceeded(424242, payload: Array(coordText: "1"), now: h.now, into: &out)
        h.coordinator.callFailed(424243, RemoteError("x"), now: h.now, into: &out)
        XCTAssertEqual(out, [])
    }

    // MARK: Forwarded cs carry their origin

    /// The origin (client, its request id) rides as a third element of the forwarded params, so
    /// that the agent runs a resend once; a TypeScript agent reads the first two only.
    func testForwardedCsCarriesItsOriginAsAThirdElement() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        h.forward("c", target: "u1", raw: Array(coordText: #"["u1","op",1]"#), origin: #"c-"7""#)
        let call = try XCTUnwrap(h.calls("cs").first)
        XCTAssertEqual(call.to, "o1")
        XCTAssertEqual(call.json, ["cs", ["A1", ["u1", "op", 1], ["c", #"c-"7""#]]])
        XCTAssertEqual(RequestOrigin(json: call.params?[2]), RequestOrigin(client: "c", request: #"c-"7""#))
    }

    func testForwardedCsWithoutOriginHasTwoElements() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        h.forward("c", target: "u1", raw: Array(coordText: #"["u1","op",1]"#))
        XCTAssertEqual(try XCTUnwrap(h.calls("cs").first).json, ["cs", ["A1", ["u1", "op", 1]]])
    }

    // MARK: Settling after a start

    /// Just after its start, a restoring `gg` for a uuid nobody registered waits for the agent
    /// that runs it (instead of starting a second copy); the agent's `ar` is answered first.
    func testSettlingParksARestoringGetUntilTheAgentRegistersItsUuid() throws {
        let h = CoordHarness(startedAt: 100_000)
        h.register("A2", by: "o2", kinds: ["k"])
        let get = h.restoringGet("c", uuid: "u1")
        XCTAssertEqual(h.answers(get), [])
        XCTAssertEqual(h.calls("gg").count, 0, "no second copy is started")
        h.now += 1000
        h.connect("o1")
        let registration = AgentRegistration(uuid: "A1", containers: [coordRecord("u1")], kinds: ["k"], endpoint: nil)
        let ar = h.request("o1", Method.registerAgent, registration.json)
        XCTAssertEqual(h.reply(get), ["u1", .string(coordEndpoint("u1"))])
        XCTAssertLessThan(try XCTUnwrap(h.answerIndex(ar)), try XCTUnwrap(h.answerIndex(get)), "the agent is answered first")
        XCTAssertEqual(h.coordinator.references(of: "u1"), ["c": 1])
        XCTAssertEqual(h.calls("gg").count, 0)
    }

    /// Only restoring gets wait while the coordinator settles: a request for an unknown
    /// container fails at once (a fresh network answers "not found" without delay; a hulynet
    /// client holds its requests until its references are restored anyway).
    func testSettlingDoesNotHoldARequestForAnUnknownContainer() throws {
        let h = CoordHarness(startedAt: 100_000)
        h.connect("c")
        let token = h.forward("c", target: "u1", raw: Array(coordText: #"["u1","op",2]"#), origin: "c-3")
        XCTAssertEqual(h.error(token), RemoteError("Container u1 not found", code: .containerNotFound))
    }

    /// The window is an alive timeout and a ping interval (3000 + 1000 here): then a parked get
    /// starts as any other.
    func testWhenTheSettleWindowEndsParkedGetsStart() throws {
        let start: Int64 = 100_000
        let h = CoordHarness(startedAt: start)
        h.register("A2", by: "o2", kinds: ["k"])
        let get = h.restoringGet("c", uuid: "u1")
        h.advance(by: 3999)
        XCTAssertEqual(h.answers(get), [])
        XCTAssertEqual(h.calls.count, 0)
        h.advance(by: 1)
        let started = try XCTUnwrap(h.openCalls("gg").first)
        XCTAssertEqual(started.to, "o2")
        XCTAssertEqual(started.args, ["k", ["uuid": "u1"]])
        h.started(started, uuid: "u1", endpoint: "ep")
        XCTAssertEqual(h.reply(get), ["u1", "ep"])
    }

    func testAGetThatDoesNotRestoreIsNotParked() throws {
        let h = CoordHarness(startedAt: 100_000)
        h.register("A2", by: "o2", kinds: ["k"])
        h.get("c", uuid: "u1")
        XCTAssertEqual(try XCTUnwrap(h.openCalls("gg").first).args, ["k", ["uuid": "u1"]])
        let none = h.get("c", kind: "nobody-offers", uuid: "u2")
        XCTAssertEqual(h.error(none), RemoteError("No suitable agents found for container nobody-offers", code: .noAgent))
    }

    /// A coordinator elected to take over parks every get by uuid while it settles, a new
    /// client's too: the container may run on an agent that has not registered again yet.
    func testATakingOverCoordinatorParksEveryGetByUuidWhileSettling() throws {
        let h = CoordHarness(startedAt: 100_000, takesOver: true)
        h.register("A2", by: "o2", kinds: ["k"])
        let get = h.get("c", uuid: "u1")
        XCTAssertEqual(h.answers(get), [])
        XCTAssertEqual(h.calls("gg").count, 0, "no second copy is started")
        h.connect("o1")
        let registration = AgentRegistration(uuid: "A1", containers: [coordRecord("u1")], kinds: ["k"], endpoint: nil)
        _ = h.request("o1", Method.registerAgent, registration.json)
        XCTAssertEqual(h.reply(get), ["u1", .string(coordEndpoint("u1"))])
        XCTAssertEqual(h.calls("gg").count, 0)
        // A get by labels starts at once (it names no one container).
        h.get("c", labels: ["x"])
        XCTAssertEqual(h.openCalls("gg").count, 1)
    }

    func testARestoringGetAfterTheSettleWindowIsNotParked() throws {
        let h = CoordHarness(startedAt: 100_000 - 4000)
        h.register("A2", by: "o2", kinds: ["k"])
        h.restoringGet("c", uuid: "u1")
        XCTAssertEqual(try XCTUnwrap(h.openCalls("gg").first).args, ["k", ["uuid": "u1"]])
    }

    func testWithoutAStartTimeNothingIsParked() {
        let h = CoordHarness()
        let cs = h.forward("c", target: "u9", raw: Array(coordText: #"["u9","op",1]"#))
        XCTAssertEqual(h.error(cs)?.code, .containerNotFound)
    }

    func testAClientGoneDropsWhatItParked() throws {
        let h = CoordHarness(startedAt: 100_000)
        h.register("A2", by: "o2", kinds: ["k"])
        let get = h.restoringGet("c", uuid: "u1")
        let kept = h.restoringGet("d", uuid: "u1")
        h.gone("c")
        h.connect("c") // back with the same id: what it parked before is still not its to get
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        XCTAssertEqual(h.answers(get), [])
        XCTAssertEqual(h.reply(kept), ["u1", .string(coordEndpoint("u1"))], "another client's parked get is answered")
        XCTAssertEqual(h.coordinator.references(of: "u1"), ["d": 1])
        h.gone("c")
        h.advance(by: 5000)
        XCTAssertEqual(h.answers(get), [])
        XCTAssertEqual(h.calls("gg").count, 0)
    }

    // MARK: Error codes

    func testTheCoordinatorsFailuresCarryTheirCodes() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1"), coordRecord("u2")])
        XCTAssertEqual(h.error(h.get("c", kind: "none"))?.code, .noAgent)
        XCTAssertEqual(h.error(h.forward("c", target: "nope", raw: Array(coordText: #"["nope","op",1]"#)))?.code, .containerNotFound)
        XCTAssertEqual(h.error(h.request("c", Method.getContainer, ["request": [:]]))?.code, .invalid)
        XCTAssertEqual(h.error(h.request("c", "zz", [:]))?.code, .invalid)

        let slow = h.forward("c", target: "u1", raw: Array(coordText: #"["u1","slow",1]"#))
        h.advance(by: coordTestTimeouts.requestMs)
        XCTAssertEqual(h.error(slow)?.code, .timeout)

        let stranded = h.forward("c", target: "u2", raw: Array(coordText: #"["u2","op",1]"#))
        h.request("o1", Method.unregisterAgent, ["uuid": "A1"])
        XCTAssertEqual(h.error(stranded)?.code, .agentGone, "a removed agent's calls fail as agent gone")
    }

    func testCallsOfAnOwnerThatIsGoneFailAsAgentGone() {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        let token = h.forward("c", target: "u1", raw: Array(coordText: #"["u1","op",1]"#))
        h.gone("o1")
        XCTAssertEqual(h.error(token)?.code, .agentGone)
    }

    /// A forwarded request's failure reaches the caller as the agent sent it, code included; a
    /// container's own error (no code) stays one.
    func testAnAgentsErrorIsRelayedWithItsCode() throws {
        let h = CoordHarness()
        h.register("A1", by: "o1", kinds: ["k"], containers: [coordRecord("u1")])
        let first = h.forward("c", target: "u1", raw: Array(coordText: #"["u1","op",1]"#))
        let second = h.forward("c", target: "u1", raw: Array(coordText: #"["u1","op",2]"#))
        let calls = h.calls("cs")
        h.fail(calls[0], RemoteError("Container u1 not found", code: .containerNotFound))
        h.fail(calls[1], RemoteError("bad input"))
        XCTAssertEqual(h.error(first), RemoteError("Container u1 not found", code: .containerNotFound))
        XCTAssertEqual(h.error(second), RemoteError("bad input"))
    }
}

// MARK: - Access policies of a secured network

final class CoordinatorPolicyTests: XCTestCase {
    private let t1 = AccessPolicy(name: "t1-app", kinds: ["k"], tenant: "t1")
    private let t2 = AccessPolicy(name: "t2-app", kinds: ["k"], tenant: "t2")

    /// Agents of kinds k and other, a container of tenant t1 and one of t2 (registered by the
    /// agent's owner, who may do everything).
    private func network() -> CoordHarness {
        let h = CoordHarness()
        h.register("A", by: "owner", kinds: ["k", "other"], containers: [
            coordRecord("u1", agent: "A", labels: ["t1"]), coordRecord("u2", agent: "A", labels: ["t2"]),
            coordRecord("o1", kind: "other", agent: "A"),
        ])
        for (client, policy) in [("c1", t1), ("c2", t2)] {
            h.connect(client)
            h.coordinator.setPolicy(policy, for: client)
        }
        _ = h.tickEvents()
        return h
    }

    func testListsShowOnlyWhatTheKeyMaySee() throws {
        let h = network()
        let listed = try XCTUnwrap(h.reply(h.request("c1", Method.listContainers, [:]))?.arrayValue)
        XCTAssertEqual(listed.compactMap { try? ContainerRecord(json: $0).uuid }, ["u1"])
        let agents = try XCTUnwrap(h.reply(h.request("c1", Method.listAgents, [:]))?.arrayValue)
        XCTAssertEqual(agents.compactMap { try? AgentInfo(json: $0).kinds }, [["k"]], "only the kinds it may use")
        XCTAssertEqual(h.reply(h.request("c1", Method.kinds, [:])), ["k"])
        // The owner, unrestricted, sees everything.
        XCTAssertEqual(h.reply(h.request("owner", Method.listContainers, [:]))?.arrayValue?.count, 3)
    }

    func testAnotherTenantsContainerIsRefusedNamingTheRule() throws {
        let h = network()
        let byUUID = h.get("c2", uuid: "u1", labels: ["t2"])
        XCTAssertEqual(h.error(byUUID), RemoteError("key t2-app may not use another tenant's container (rule tenant=t2)",
                                                    code: .forbidden))
        let request = h.forward("c2", target: "u1", raw: Array(coordText: #"["u1","op",1]"#))
        XCTAssertEqual(h.error(request)?.code, .forbidden)
        let unlabelled = h.get("c1", labels: ["x"])
        XCTAssertEqual(h.error(unlabelled)?.message, "key t1-app must get containers with its tenant's label t1 (rule tenant=t1)")
        let otherKind = h.get("c1", kind: "other", labels: ["t1"])
        XCTAssertEqual(h.error(otherKind)?.code, .forbidden)
        let register = h.request("c1", Method.registerAgent,
                                 AgentRegistration(uuid: "B", containers: [], kinds: ["k"], endpoint: nil).json)
        XCTAssertNil(h.error(register), "no agents= rule: it may register")
        h.coordinator.setPolicy(AccessPolicy(name: "t1-app", agentKinds: ["other"], kinds: ["k"], tenant: "t1"), for: "c1")
        let refused = h.request("c1", Method.registerAgent,
                                AgentRegistration(uuid: "C", containers: [], kinds: ["k"], endpoint: nil).json)
        XCTAssertEqual(h.error(refused)?.message, "key t1-app may not register agents of kind k (rule agents=other)")
        // Its own tenant's container, by uuid and through `cs`, is fine.
        XCTAssertEqual(h.reply(h.get("c1", uuid: "u1", labels: ["t1"]))?.arrayValue?.first, "u1")
        let own = h.forward("c1", target: "u1", raw: Array(coordText: #"["u1","op",1]"#))
        XCTAssertNil(h.error(own))
    }

    func testEventsReachOnlyTheClientsThatMaySeeThem() throws {
        let h = network()
        h.register("A", by: "owner", kinds: ["k", "other"], containers: [
            coordRecord("u1", agent: "A", labels: ["t1"]), coordRecord("u2", agent: "A", labels: ["t2"]),
            coordRecord("o1", kind: "other", agent: "A"), coordRecord("u3", agent: "A", labels: ["t1"]),
        ])
        h.tick()
        var heard: [ClientUUID: [ContainerUUID]] = [:]
        for case .event(let client, let event) in h.directives {
            heard[client, default: []] += event.containers.map(\.container.uuid)
        }
        // Registering again reports every container of the agent: each tenant hears of its own.
        XCTAssertEqual(heard["c1"], ["u1", "u3"], "tenant t1 hears of its containers only")
        XCTAssertEqual(heard["c2"], ["u2"], "tenant t2 hears of its container only")
        XCTAssertEqual(heard["owner"], ["u1", "u2", "o1", "u3"], "the unrestricted owner hears everything")
        XCTAssertEqual(h.broadcasts.count, 0, "no broadcast to everyone while some keys are restricted")
    }
}
