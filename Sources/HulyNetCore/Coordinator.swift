/// A request of a client that the coordinator answers later; the I/O shell maps it to the
/// client's routing identity and request id.
public typealias RequestToken = UInt64
/// A request the coordinator sends to a client (an agent's owner) and waits for.
public typealias CallID = UInt64

/// What the coordinator asks its I/O shell to do.
public enum CoordinatorDirective: Sendable, Equatable {
    /// Answer a client's request.
    case reply(RequestToken, JSONValue)
    /// Answer a client's request with JSON text passed through as it came.
    case replyRaw(RequestToken, [UInt8])
    /// Answer a client's request with responseError.
    case fail(RequestToken, RemoteError)
    /// Send a request (`payload` is the JSON text `[method, params]`) to a client; its answer
    /// comes back through `callSucceeded` or `callFailed` with the same id.
    case call(to: ClientUUID, id: CallID, payload: [UInt8])
    /// Send this event to every connected client.
    case broadcast(NetworkEvent)
    /// Send this event to one client (a secured network filters events per client's policy).
    case event(to: ClientUUID, NetworkEvent)
    /// A log line: a short message and the ids it is about as fields (client, agent, container,
    /// kind, ...), which a shell logs as structured metadata. Never an `extra` value.
    case log(LogLevel, String, fields: [LogField] = [])
}

/// One field of a log line: the name of what it is (`agent`, `container`, ...) and its value,
/// which may come from a peer (a shell escapes and bounds it).
public struct LogField: Sendable, Equatable {
    public let name: String
    public let value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

public enum LogLevel: Int, Sendable, Comparable {
    case trace = 0, debug, info, notice, warning, error, critical
    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The network coordinator's rules as a state machine without I/O or clocks: the shell feeds it
/// what clients did and the time, and carries out the directives it returns.
///
/// Not thread-safe: one thread (the server's I/O loop) owns it.
public final class Coordinator {
    public let timeouts: Timeouts

    struct AgentState {
        let id: AgentUUID
        var owner: ClientUUID
        var endpoint: String?
        var kinds: [ContainerKind]
        var containers: Set<ContainerUUID> = []
        var lastSeen: Int64
    }

    struct ContainerState {
        var record: ContainerRecord
        /// Reference counts per client: each `gg` adds one, each `cr` removes one.
        var clients: [ClientUUID: Int] = [:]
        /// Since when nobody references it; nil while referenced or never referenced.
        var unusedSince: Int64?
    }

    struct ClientState {
        var references: Set<ContainerUUID> = []
        var agents: Set<AgentUUID> = []
    }

    struct Waiter {
        let client: ClientUUID
        let token: RequestToken
    }

    struct PendingStart {
        let id: Int
        let kind: ContainerKind
        let options: GetOptions
        let agentId: AgentUUID
        var waiters: [Waiter]
    }

    /// A request held while the coordinator settles after its start (see `isSettling`).
    struct ParkedGet {
        let client: ClientUUID
        let token: RequestToken
        let kind: ContainerKind
        let options: GetOptions
    }

    enum CallPurpose {
        case forward(RequestToken)
        case start(Int)
        case terminate(ContainerUUID)
    }

    struct PendingCall {
        let purpose: CallPurpose
        let client: ClientUUID
        let agentId: AgentUUID
        let deadline: Int64
    }

    // The tables a forwarded request touches skip Swift's run-time exclusivity checks (about 70
    // instructions an access, 5 % of a request): the coordinator is confined to one thread and
    // no access to them overlaps another.
    @exclusivity(unchecked) private(set) var agents: [AgentUUID: AgentState] = [:]
    /// Registration order, for stable listings and round-robin.
    private var agentOrder: [AgentUUID] = []
    /// The agents offering each kind, in registration order; nil after agents changed, until
    /// the next get needs it.
    private var agentsByKind: [ContainerKind: [AgentUUID]]?
    /// Agents that offer a container another agent runs (highly available, "stateless" ones),
    /// by uuid: when the container has to start again, one of them has a copy on standby.
    private var standbys: [ContainerUUID: [AgentUUID]] = [:]
    @exclusivity(unchecked) private(set) var containers: [ContainerUUID: ContainerState] = [:]
    @exclusivity(unchecked) private(set) var clients: [ClientUUID: ClientState] = [:]
    /// Starts under way, found by uuid or (those without one) by kind and labels; changed only
    /// through `addStart` and `removeStart`.
    private var starts: [Int: PendingStart] = [:]
    private var startsByUUID: [ContainerUUID: Int] = [:]
    private var startsByLabels = LabelIndex<Int>()
    private var nextStartId = 1
    /// Calls to agents being answered, by id (the slab's key).
    @exclusivity(unchecked) private var calls = Slab<PendingCall>()
    /// Round-robin position per kind, so interleaved gets of other kinds do not skew it.
    private var roundRobin: [ContainerKind: Int] = [:]
    private var queuedAgentEvents: [AgentUUID: NetworkEvent.AgentChange] = [:]
    private var queuedAgentOrder: [AgentUUID] = []
    private var queuedContainerEvents: [ContainerUUID: NetworkEvent.ContainerChange] = [:]
    private var queuedContainerOrder: [ContainerUUID] = []
    /// Until then the coordinator is settling: it has just started, and the agents and clients
    /// of an earlier run come back. Meanwhile a client's get that restores its reference to a
    /// container nobody registered yet waits for the container's agent instead of starting a
    /// second copy elsewhere. (A hulynet client holds its other requests until its references
    /// are restored, so only these gets need to wait.)
    private let settleUntil: Int64
    /// While settling, any get by uuid of a container nobody registered yet waits, not only a
    /// restoring one: a coordinator taking over from another (elected through etcd) knows the
    /// network ran before it, and a new client's get must not start a copy of a container whose
    /// agent has not registered again yet.
    private let parksEveryGetWhileSettling: Bool
    private var parkedGets: [ContainerUUID: [ParkedGet]] = [:]
    /// What each client's key may do on a secured network (`AccessPolicy`); a client without an
    /// entry may do everything, as on an open network.
    @exclusivity(unchecked) private var policies: [ClientUUID: AccessPolicy] = [:]
    /// How many policies limit what their client sees (lists and events are filtered then).
    private var sightRestricted = 0
    /// On a secured network, the public key each client connected with.
    private var principals: [ClientUUID: String] = [:]
    /// Where agents, containers, get-or-starts, dead agents and failovers are counted (nil: nowhere).
    @exclusivity(unchecked) public var metrics: NetworkMetrics? // set once, before use; loop-confined
    /// With metrics: containers of removed agents, with the agent and when, so that a start of
    /// one elsewhere counts as a failover; forgotten after `lostWindowMs`.
    private var lostContainers: [ContainerUUID: (agent: AgentUUID, at: Int64)] = [:]
    private var lostWindowMs: Int64 { timeouts.requestMs + timeouts.aliveMs }
    private var nextLostSweep: Int64 = 0

    /// `startedAt`: the time of the coordinator's start, from which it settles for an alive
    /// timeout and a ping interval (agents of an earlier run reconnect within that); nil: no
    /// settling (a coordinator nobody used before, as in tests).
    /// `takesOver`: see `parksEveryGetWhileSettling`.
    public init(timeouts: Timeouts = .reference, startedAt: Int64? = nil, takesOver: Bool = false) {
        self.timeouts = timeouts
        settleUntil = startedAt.map { $0 + timeouts.aliveMs + timeouts.pingIntervalMs } ?? .min
        parksEveryGetWhileSettling = takesOver
    }

    func isSettling(now: Int64) -> Bool { now < settleUntil }

    // MARK: - Read-only views

    public var agentCount: Int { agents.count }
    public var containerCount: Int { containers.count }
    public var clientCount: Int { clients.count }
    public var pendingCallCount: Int { calls.count }

    public func agentList() -> [AgentInfo] {
        agentOrder.compactMap { id in
            agents[id].map { AgentInfo(agentId: $0.id, endpoint: $0.endpoint, kinds: $0.kinds, containers: $0.containers.count) }
        }
    }

    /// Every kind some agent offers, each once, in registration order.
    public func kindList() -> [ContainerKind] {
        var seen = Set<ContainerKind>()
        var kinds: [ContainerKind] = []
        for id in agentOrder {
            for kind in agents[id]?.kinds ?? [] where seen.insert(kind).inserted { kinds.append(kind) }
        }
        return kinds
    }

    public func containerList(kind: ContainerKind?) -> [ContainerRecord] {
        containers.values.filter { kind == nil || $0.record.kind == kind }.map(\.record)
    }

    public func references(of uuid: ContainerUUID) -> [ClientUUID: Int] {
        containers[uuid]?.clients ?? [:]
    }

    // MARK: - Clients

    /// A client said hello for the first time.
    public func clientConnected(_ client: ClientUUID) {
        if clients[client] == nil { clients[client] = ClientState() }
    }

    /// The policy of the key a client connected with (nil: unrestricted).
    public func setPolicy(_ policy: AccessPolicy?, for client: ClientUUID) {
        if policies[client]?.restrictsSight == true { sightRestricted -= 1 }
        policies[client] = policy
        if policy?.restrictsSight == true { sightRestricted += 1 }
    }

    public func policy(of client: ClientUUID) -> AccessPolicy? { policies[client] }

    /// Refuses a request past its key's rules, naming the rule.
    private func refuse(_ token: RequestToken, _ refusal: String, into out: inout [CoordinatorDirective]) {
        metrics?.refused(.forbidden)
        out.append(.fail(token, RemoteError(refusal, code: .forbidden)))
    }

    /// The public key a client connected with (a secured network).
    public func setPrincipal(_ key: String?, for client: ClientUUID) { principals[client] = key }

    /// A client closed or went silent: its references are released and its agents removed.
    /// `timedOut`: it went silent (its agents count as dead ones), rather than closing.
    public func clientGone(_ client: ClientUUID, timedOut: Bool = false, now: Int64, into out: inout [CoordinatorDirective]) {
        if policies[client] != nil { setPolicy(nil, for: client) }
        principals.removeValue(forKey: client)
        guard let state = clients.removeValue(forKey: client) else { return }
        for uuid in state.references { dropReferences(of: client, to: uuid, all: true, now: now) }
        for agentId in state.agents where agents[agentId]?.owner == client {
            if timedOut { metrics?.deadAgents.increment(by: 1) }
            removeAgent(agentId, reason: "its client \(client) is gone", now: now, into: &out)
        }
        // Requests a gone client was answering can never be answered.
        for (id, call) in calls where call.client == client {
            failCall(id, RemoteError("client \(client) is gone", code: .agentGone), now: now, into: &out)
        }
        // Its place in starts under way, and what it parked, is given up.
        for (id, start) in starts {
            starts[id]?.waiters = start.waiters.filter { $0.client != client }
        }
        for (uuid, parked) in parkedGets { parkedGets[uuid] = parked.filter { $0.client != client } }
    }

    /// A client pinged: it and the agents it registered are alive.
    public func ping(_ client: ClientUUID, now: Int64) {
        guard let state = clients[client] else { return }
        for agentId in state.agents { agents[agentId]?.lastSeen = now }
    }

    // MARK: - Requests

    /// A request of a network method other than `cs` (see `forward` for that one).
    /// `trace`: trace propagation headers passed on to the agent asked to start a container
    /// (hulynet's own trailing element; a TypeScript agent reads only the first two).
    public func handle(client: ClientUUID, token: RequestToken, method: String, params: JSONValue,
                       trace: [String: String]? = nil, now: Int64, into out: inout [CoordinatorDirective]) {
        clientConnected(client)
        switch method {
        case Method.registerAgent:
            do {
                let registration = try AgentRegistration(json: params)
                if let refusal = policies[client]?.refusesRegistering(kinds: registration.kinds) {
                    refuse(token, refusal, into: &out)
                    return
                }
                if isOwnedByAnother(registration.uuid, client) {
                    metrics?.refused(.agentOwner)
                    out.append(.fail(token, agentOwnedByAnotherClient(registration.uuid)))
                    return
                }
                let terminate = register(registration, owner: client, now: now, into: &out)
                out.append(.reply(token, .array(terminate.map { .string($0) })))
                // What waited for its containers goes now, after the agent has its answer.
                for uuid in agents[registration.uuid]?.containers ?? [] where parkedGets[uuid] != nil {
                    unpark(uuid, now: now, into: &out)
                }
            } catch {
                out.append(.fail(token, RemoteError(error.message, code: .invalid)))
            }
        case Method.unregisterAgent:
            guard let uuid = params.member("uuid")?.stringValue else {
                out.append(.fail(token, RemoteError("au: 'uuid' must be a string", code: .invalid)))
                return
            }
            if isOwnedByAnother(uuid, client) {
                metrics?.refused(.agentOwner)
                out.append(.fail(token, agentOwnedByAnotherClient(uuid)))
                return
            }
            if agents[uuid] != nil {
                removeAgent(uuid, reason: "unregistered", now: now, into: &out)
            }
            clients[client]?.agents.remove(uuid)
            out.append(.reply(token, "ok"))
        case Method.listAgents:
            var list = agentList()
            if let policy = policies[client], let kinds = policy.kinds {
                // A key sees the agents of the kinds it may use, and only those kinds.
                list = list.compactMap { info in
                    var visible = info
                    visible.kinds = info.kinds.filter(kinds.contains)
                    return visible.kinds.isEmpty ? nil : visible
                }
            }
            out.append(.reply(token, .array(list.map(\.json))))
        case Method.kinds:
            let kinds = policies[client]?.kinds
            out.append(.reply(token, .array(kindList().filter { kinds?.contains($0) ?? true }.map { .string($0) })))
        case Method.listContainers:
            let kind = params.member("kind")?.stringValue
            var list = containerList(kind: kind)
            if let policy = policies[client], policy.restrictsSight { list = list.filter(policy.sees) }
            out.append(.reply(token, .array(list.map(\.json))))
        case Method.getContainer:
            guard let kind = params.member("kind")?.stringValue else {
                out.append(.fail(token, RemoteError("gg: 'kind' must be a string", code: .invalid)))
                return
            }
            do {
                let options = try GetOptions(json: params.member("request") ?? .null)
                if let refusal = policies[client]?.refusesGetting(kind: kind, labels: options.labels) {
                    refuse(token, refusal, into: &out)
                    return
                }
                // hulynet's clients mark the gets that restore a reference after a coordinator
                // restart (a TypeScript coordinator ignores the field).
                let restores = params.member("restore")?.boolValue == true
                getOrStart(client: client, token: token, kind: kind, options: options, restores: restores,
                           trace: trace, now: now, into: &out)
            } catch {
                out.append(.fail(token, RemoteError(error.message, code: .invalid)))
            }
        case Method.releaseContainer:
            guard let uuid = params.member("uuid")?.stringValue else {
                out.append(.fail(token, RemoteError("cr: 'uuid' must be a string", code: .invalid)))
                return
            }
            release(client: client, uuid: uuid, now: now)
            out.append(.reply(token, "ok"))
        case Method.sendContainer:
            // Reached only when the shell did not take the raw path; same rules.
            guard case .array(let items) = params, items.count >= 2, let target = items[0].stringValue else {
                out.append(.fail(token, RemoteError("cs: params must be [target, operation, data]", code: .invalid)))
                return
            }
            forward(client: client, token: token, target: target, rawParams: params.serialized()[...], origin: nil,
                    now: now, into: &out)
        case Method.checkAccess:
            out.append(checkAccess(asker: client, token: token, params: params))
        default:
            out.append(.fail(token, RemoteError("Unknown method \(method)", code: .invalid)))
        }
    }

    /// `ca`: may `client`, connected to an agent's endpoint with `key`, use `uuid`? Only the
    /// owner of the agent running the container may ask. Yes when the client connected here with
    /// the same key, its rules let it see the container, and it holds a reference to it.
    private func checkAccess(asker: ClientUUID, token: RequestToken, params: JSONValue) -> CoordinatorDirective {
        guard let client = params.member("client")?.stringValue, let key = params.member("key")?.stringValue,
              let uuid = params.member("uuid")?.stringValue else {
            return .fail(token, RemoteError("ca: params must be {client, key, uuid}", code: .invalid))
        }
        guard let container = containers[uuid], let agent = agents[container.record.agentId] else {
            return .fail(token, RemoteError("Container \(uuid) not found", code: .containerNotFound))
        }
        guard agent.owner == asker else {
            return .fail(token, RemoteError("only the owner of agent \(agent.id) may ask about its containers", code: .forbidden))
        }
        guard let principal = principals[client], principal == key else {
            return .fail(token, RemoteError("client \(client) is not connected to the coordinator with this key", code: .forbidden))
        }
        if let refusal = policies[client]?.refusesSeeing(kind: container.record.kind, labels: container.record.labels) {
            metrics?.refused(.forbidden)
            return .fail(token, RemoteError(refusal, code: .forbidden))
        }
        guard container.clients[client] != nil else {
            return .fail(token, RemoteError("client \(client) holds no reference to container \(uuid)", code: .forbidden))
        }
        return .reply(token, true)
    }

    /// `cs`: a request for a container, passed to its agent without decoding `rawParams`
    /// (the JSON text `[target, operation, data]` as the client sent it). `origin` (the client's
    /// own request id) goes with it, so that the agent runs a resend of it only once.
    /// `trace`: trace propagation headers for the agent, as the origin's third element.
    public func forward(client: ClientUUID, token: RequestToken, target: ContainerUUID, rawParams: ArraySlice<UInt8>,
                        origin: [UInt8]?, trace: [String: String]? = nil, now: Int64, into out: inout [CoordinatorDirective]) {
        guard let container = containers[target], let agent = agents[container.record.agentId] else {
            out.append(.fail(token, RemoteError("Container \(target) not found", code: .containerNotFound)))
            return
        }
        if !policies.isEmpty, let policy = policies[client],
           let refusal = policy.refusesSeeing(kind: container.record.kind, labels: container.record.labels) {
            refuse(token, refusal, into: &out)
            return
        }
        // ["cs", ["<agentId>", <rawParams>, ["<client>", "<origin>"]]]
        var payload: [UInt8] = []
        payload.reserveCapacity(rawParams.count + agent.id.utf8.count + client.utf8.count + (origin?.count ?? 0) + 48)
        payload.append(contentsOf: Self.forwardPrefix)
        JSONValue.appendString(agent.id, to: &payload)
        payload.append(UInt8(ascii: ","))
        payload.append(contentsOf: rawParams)
        if let origin {
            payload.append(JSONByte.comma)
            payload.append(JSONByte.openBracket)
            JSONValue.appendString(client, to: &payload)
            payload.append(UInt8(ascii: ","))
            JSONValue.appendString(origin, to: &payload)
            if let trace {
                payload.append(UInt8(ascii: ","))
                payload.append(contentsOf: JSONValue.object(trace.mapValues(JSONValue.string)).serialized())
            }
            payload.append(UInt8(ascii: "]"))
        }
        payload.append(JSONByte.closeBracket)
        payload.append(JSONByte.closeBracket)
        let id = newCall(.forward(token), to: agent.owner, agentId: agent.id, now: now)
        out.append(.call(to: agent.owner, id: id, payload: payload))
    }

    private static let forwardPrefix: [UInt8] = Array(#"["cs",["#.utf8)

    // MARK: - Answers to the coordinator's own calls

    public func callSucceeded(_ id: CallID, payload: [UInt8], now: Int64, into out: inout [CoordinatorDirective]) {
        guard let call = calls.removeValue(forKey: id) else { return }
        touch(call.agentId, now: now)
        switch call.purpose {
        case .forward(let token):
            out.append(.replyRaw(token, payload))
        case .start(let startId):
            finishStart(startId, payload: payload, now: now, into: &out)
        case .terminate:
            break
        }
    }

    /// A call failed: the agent's error (relayed to a forwarded request's caller as it is, code
    /// included), or the coordinator's own (timeout, agent gone).
    public func callFailed(_ id: CallID, _ error: RemoteError, now: Int64, into out: inout [CoordinatorDirective]) {
        failCall(id, error, now: now, into: &out)
    }

    private func failCall(_ id: CallID, _ error: RemoteError, now: Int64, into out: inout [CoordinatorDirective]) {
        guard let call = calls.removeValue(forKey: id) else { return }
        switch call.purpose {
        case .forward(let token):
            out.append(.fail(token, error))
        case .start(let startId):
            guard let start = removeStart(startId) else { return }
            // The reference's wording; the code stays the agent's (a start that failed in the
            // container's factory is the container's business).
            let failure = RemoteError("Failed to get endpoint for container \(start.kind): \(error.message)", code: error.code)
            for waiter in start.waiters { out.append(.fail(waiter.token, failure)) }
        case .terminate(let uuid):
            out.append(.log(.warning, "terminate failed: \(error.message)",
                            fields: [LogField("container", uuid), LogField("agent", call.agentId)]))
        }
    }

    /// An answer is a sign of life: the agent's `lastSeen` moves on, once a millisecond at most
    /// (a lookup by its uuid was a tenth of a forwarded request's cost under load).
    private func touch(_ agentId: AgentUUID, now: Int64) {
        if now == lastTouch.at, agentId == lastTouch.agent { return }
        agents[agentId]?.lastSeen = now
        lastTouch = (agentId, now)
    }

    @exclusivity(unchecked) private var lastTouch: (agent: AgentUUID, at: Int64) = ("", -1)

    private func newCall(_ purpose: CallPurpose, to client: ClientUUID, agentId: AgentUUID, now: Int64) -> CallID {
        calls.insert(PendingCall(purpose: purpose, client: client, agentId: agentId, deadline: now + timeouts.requestMs))
    }

    // MARK: - Time

    /// Runs the timing rules: dead agents, unused containers, calls past their deadline; then
    /// sends the queued events as one merged event.
    public func tick(now: Int64, into out: inout [CoordinatorDirective]) {
        for id in agentOrder {
            if let agent = agents[id], now - agent.lastSeen > timeouts.aliveMs {
                metrics?.deadAgents.increment(by: 1)
                removeAgent(id, reason: "silent for \(now - agent.lastSeen) ms", now: now, into: &out)
            }
        }
        for (uuid, container) in containers {
            if let since = container.unusedSince, now - since >= timeouts.unusedContainerMs {
                terminate(uuid, now: now, into: &out)
            }
        }
        if !isSettling(now: now), !parkedGets.isEmpty { unpark(now: now, into: &out) }
        if !lostContainers.isEmpty, now >= nextLostSweep {
            nextLostSweep = now + 1000
            lostContainers = lostContainers.filter { now - $0.value.at < lostWindowMs }
        }
        for (id, call) in calls where call.deadline <= now {
            failCall(id, RemoteError("timed out after \(timeouts.requestMs) ms waiting for agent \(call.agentId)", code: .timeout), now: now, into: &out)
        }
        flushEvents(into: &out)
    }

    /// Sends the queued events now (the shell calls `tick` every `timeouts.tickMs`).
    public func flushEvents(into out: inout [CoordinatorDirective]) {
        guard !queuedAgentOrder.isEmpty || !queuedContainerOrder.isEmpty else { return }
        let event = NetworkEvent(agents: queuedAgentOrder.compactMap { queuedAgentEvents[$0] },
                                 containers: queuedContainerOrder.compactMap { queuedContainerEvents[$0] })
        queuedAgentEvents.removeAll(keepingCapacity: true)
        queuedAgentOrder.removeAll(keepingCapacity: true)
        queuedContainerEvents.removeAll(keepingCapacity: true)
        queuedContainerOrder.removeAll(keepingCapacity: true)
        guard sightRestricted > 0 else {
            out.append(.broadcast(event))
            return
        }
        // A secured network with restricted keys: each client hears only what it may see.
        for client in clients.keys.sorted() {
            guard let policy = policies[client], policy.restrictsSight else {
                out.append(.event(to: client, event))
                continue
            }
            let visible = NetworkEvent(
                agents: event.agents.compactMap { change in
                    guard let kinds = policy.kinds else { return change }
                    var seen = change
                    seen.kinds = change.kinds.filter(kinds.contains)
                    return seen.kinds.isEmpty ? nil : seen
                },
                containers: event.containers.filter { policy.sees($0.container) })
            if !visible.isEmpty { out.append(.event(to: client, visible)) }
        }
    }

    // MARK: - Agents

    /// An agent belongs to the client that registered it while that client is connected: no
    /// other client may take its record over or remove it. Once the owner is gone (closed or
    /// silent past its alive timeout) its agents are removed and the uuid is free again.
    private func isOwnedByAnother(_ id: AgentUUID, _ client: ClientUUID) -> Bool {
        guard let owner = agents[id]?.owner else { return false }
        return owner != client && clients[owner] != nil
    }

    private func register(_ registration: AgentRegistration, owner: ClientUUID, now: Int64,
                          into out: inout [CoordinatorDirective]) -> [ContainerUUID] {
        let previous = agents[registration.uuid]
        var agent = AgentState(id: registration.uuid, owner: owner, endpoint: registration.endpoint,
                               kinds: registration.kinds, lastSeen: now)
        if let previous, previous.owner != owner {
            clients[previous.owner]?.agents.remove(registration.uuid)
        }
        if previous == nil { agentOrder.append(registration.uuid) }
        agentsByKind = nil
        let listed = Set(registration.containers.map(\.uuid))
        // Containers the agent had and no longer lists are gone.
        for uuid in previous?.containers ?? [] where !listed.contains(uuid) {
            if let removed = containers.removeValue(forKey: uuid) {
                queueContainer(removed.record, .removed)
            }
        }
        var terminate: [ContainerUUID] = []
        forgetStandby(registration.uuid)
        for var record in registration.containers {
            record.agentId = registration.uuid
            if let existing = containers[record.uuid] {
                if existing.record.agentId != registration.uuid {
                    // Highly available containers: the first agent keeps the uuid.
                    terminate.append(record.uuid)
                    standbys[record.uuid, default: []].append(registration.uuid)
                    out.append(.log(.info, "container already runs on another agent: this one is told to terminate it",
                                    fields: [LogField("container", record.uuid), LogField("agent", registration.uuid),
                                             LogField("runsOn", existing.record.agentId)]))
                    continue
                }
                agent.containers.insert(record.uuid)
                if existing.record.endpoint != record.endpoint {
                    containers[record.uuid]?.record.endpoint = record.endpoint
                    queueContainer(containers[record.uuid]!.record, .updated)
                }
            } else {
                containers[record.uuid] = ContainerState(record: record)
                agent.containers.insert(record.uuid)
                queueContainer(record, .added)
            }
        }
        agents[registration.uuid] = agent
        metrics?.agents.set(Int64(agents.count))
        clients[owner, default: ClientState()].agents.insert(registration.uuid)

        queueAgent(NetworkEvent.AgentChange(id: registration.uuid, kinds: registration.kinds,
                                            event: previous == nil ? .added : .updated))
        out.append(.log(.info, "agent registered",
                        fields: [LogField("agent", registration.uuid), LogField("client", owner),
                                 LogField("kinds", registration.kinds.joined(separator: ",")),
                                 LogField("containers", String(agent.containers.count))]))
        return terminate
    }

    private func removeAgent(_ id: AgentUUID, reason: String, now: Int64, into out: inout [CoordinatorDirective]) {
        guard let agent = agents.removeValue(forKey: id) else { return }
        metrics?.agents.set(Int64(agents.count))
        agentOrder.removeAll { $0 == id }
        agentsByKind = nil
        forgetStandby(id)
        clients[agent.owner]?.agents.remove(id)
        out.append(.log(.info, "agent removed: \(reason)",
                        fields: [LogField("agent", id), LogField("client", agent.owner),
                                 LogField("containers", String(agent.containers.count))]))
        for uuid in agent.containers {
            if let removed = containers.removeValue(forKey: uuid) {
                for client in removed.clients.keys { clients[client]?.references.remove(uuid) }
                if metrics != nil { lostContainers[uuid] = (id, now) }
                queueContainer(removed.record, .removed)
            }
        }
        queueAgent(NetworkEvent.AgentChange(id: id, kinds: agent.kinds, event: .removed))
        // Starts and requests under way on it can no longer finish.
        for (callId, call) in calls where call.agentId == id {
            failCall(callId, RemoteError("agent \(id) is gone", code: .agentGone), now: now, into: &out)
        }
    }

    /// Answers what waited for this container (it registered, or the coordinator has settled).
    private func unpark(_ uuid: ContainerUUID, now: Int64, into out: inout [CoordinatorDirective]) {
        for get in parkedGets.removeValue(forKey: uuid) ?? [] where clients[get.client] != nil {
            getOrStart(client: get.client, token: get.token, kind: get.kind, options: get.options, now: now, into: &out)
        }
    }

    private func unpark(now: Int64, into out: inout [CoordinatorDirective]) {
        let uuids = parkedGets.keys.sorted()
        out.append(.log(.info, "settled: \(uuids.count) containers asked for while settling were not registered again"))
        for uuid in uuids { unpark(uuid, now: now, into: &out) }
    }

    /// The agent no longer offers anything on standby (it registers again, or it is gone).
    private func forgetStandby(_ agent: AgentUUID) {
        guard !standbys.isEmpty else { return }
        for (uuid, offering) in standbys where offering.contains(agent) {
            let left = offering.filter { $0 != agent }
            standbys[uuid] = left.isEmpty ? nil : left
        }
    }

    private func agents(offering kind: ContainerKind) -> [AgentUUID] {
        if agentsByKind == nil {
            var byKind: [ContainerKind: [AgentUUID]] = [:]
            for id in agentOrder {
                for offered in Set(agents[id]?.kinds ?? []) { byKind[offered, default: []].append(id) }
            }
            agentsByKind = byKind
        }
        return agentsByKind?[kind] ?? []
    }

    // MARK: - Containers

    private func getOrStart(client: ClientUUID, token: RequestToken, kind: ContainerKind, options: GetOptions,
                            restores: Bool = false, trace: [String: String]? = nil, now: Int64,
                            into out: inout [CoordinatorDirective]) {
        let waiter = Waiter(client: client, token: token)
        if let uuid = options.uuid {
            if let existing = containers[uuid], let policy = policies[client],
               let refusal = policy.refusesSeeing(kind: existing.record.kind, labels: existing.record.labels) {
                refuse(token, refusal, into: &out)
                return
            }
            if containers[uuid] != nil {
                metrics?.got(.found)
                addReference(client: client, uuid: uuid, now: now)
                out.append(.reply(token, answer(for: uuid)))
                return
            }
            if let startId = startsByUUID[uuid] {
                metrics?.got(.joined)
                starts[startId]?.waiters.append(waiter)
                return
            }
            if restores || parksEveryGetWhileSettling, isSettling(now: now) {
                // It most likely still runs on an agent that has not registered again yet.
                metrics?.got(.parked)
                parkedGets[uuid, default: []].append(ParkedGet(client: client, token: token, kind: kind, options: options))
                return
            }
        } else if let startId = startsByLabels.first(kind: kind, labels: options.labels) {
            metrics?.got(.joined)
            starts[startId]?.waiters.append(waiter)
            return
        }
        let suitable = agents(offering: kind)
        let turn = roundRobin[kind, default: 0] &+ 1
        // A copy on standby is taken over rather than a fresh one started elsewhere.
        let standby = options.uuid.flatMap { uuid in
            standbys[uuid]?.lazy.compactMap { self.agents[$0] }.first { $0.kinds.contains(kind) }
        }
        guard let agent = standby ?? (suitable.isEmpty ? nil : agents[suitable[turn % suitable.count]]) else {
            metrics?.got(.noAgent)
            out.append(.fail(token, RemoteError("No suitable agents found for container \(kind)", code: .noAgent)))
            return
        }
        if standby == nil { roundRobin[kind] = turn }
        metrics?.got(.toAgent)
        let startId = nextStartId
        nextStartId += 1
        addStart(PendingStart(id: startId, kind: kind, options: options, agentId: agent.id, waiters: [waiter]))
        var params: JSONValue = .array([.string(agent.id), .array([.string(kind), options.json])])
        if let trace, case .array(var items) = params {
            items.append(.object(trace.mapValues(JSONValue.string)))
            params = .array(items)
        }
        let id = newCall(.start(startId), to: agent.owner, agentId: agent.id, now: now)
        out.append(.call(to: agent.owner, id: id, payload: JSONValue.array([.string(Method.getContainer), params]).serialized()))
    }

    private func addStart(_ start: PendingStart) {
        starts[start.id] = start
        if let uuid = start.options.uuid {
            startsByUUID[uuid] = start.id
        } else {
            startsByLabels.insert(start.id, kind: start.kind, labels: start.options.labels)
        }
    }

    private func removeStart(_ id: Int) -> PendingStart? {
        guard let start = starts.removeValue(forKey: id) else { return nil }
        if let uuid = start.options.uuid {
            startsByUUID.removeValue(forKey: uuid)
        } else {
            startsByLabels.remove(id)
        }
        return start
    }

    private func finishStart(_ startId: Int, payload: [UInt8], now: Int64, into out: inout [CoordinatorDirective]) {
        guard let start = removeStart(startId) else { return }
        guard let value = try? JSONValue.parse(payload), case .array(let pair) = value, pair.count >= 2,
              let uuid = pair[0].stringValue, let endpoint = pair[1].stringValue else {
            let failure = RemoteError("Failed to get endpoint for container \(start.kind): agent \(start.agentId) answered \(String(decoding: payload.prefix(200), as: UTF8.self))", code: .invalid)
            for waiter in start.waiters { out.append(.fail(waiter.token, failure)) }
            return
        }
        guard agents[start.agentId] != nil else {
            for waiter in start.waiters { out.append(.fail(waiter.token, RemoteError("agent \(start.agentId) is gone", code: .agentGone))) }
            return
        }
        if let existing = containers[uuid] {
            // The agent reused a container we know: keep it and its other holders.
            if existing.record.agentId == start.agentId {
                if existing.record.endpoint != endpoint {
                    containers[uuid]?.record.endpoint = endpoint
                    queueContainer(containers[uuid]!.record, .updated)
                }
            } else if let duplicate = agents[start.agentId] {
                // Another agent owns the uuid: the first keeps it, this one drops its copy.
                out.append(.log(.info, "container already runs on another agent: this one is told to terminate its copy",
                                fields: [LogField("container", uuid), LogField("agent", duplicate.id),
                                         LogField("runsOn", existing.record.agentId)]))
                sendTerminate(uuid, on: duplicate, now: now, into: &out)
            }
        } else {
            let record = ContainerRecord(agentId: start.agentId, uuid: uuid, kind: start.kind, endpoint: endpoint,
                                         lastVisit: Double(now), extra: start.options.extra, labels: start.options.labels)
            containers[uuid] = ContainerState(record: record)
            agents[start.agentId]?.containers.insert(uuid)
            if let lost = lostContainers.removeValue(forKey: uuid), lost.agent != start.agentId {
                metrics?.failovers.increment(by: 1)
            }
            queueContainer(record, .added)
        }
        let reply = answer(for: uuid)
        for waiter in start.waiters {
            if clients[waiter.client] != nil { addReference(client: waiter.client, uuid: uuid, now: now) }
            out.append(.reply(waiter.token, reply))
        }
        // Nobody is left waiting (every waiter went away): it is unused from now on.
        if containers[uuid]?.clients.isEmpty == true, containers[uuid]?.unusedSince == nil {
            containers[uuid]?.unusedSince = now
        }
    }

    private func answer(for uuid: ContainerUUID) -> JSONValue {
        .array([.string(uuid), .string(containers[uuid]?.record.endpoint ?? "")])
    }

    private func addReference(client: ClientUUID, uuid: ContainerUUID, now: Int64) {
        containers[uuid]?.clients[client, default: 0] += 1
        containers[uuid]?.unusedSince = nil
        containers[uuid]?.record.lastVisit = Double(now)
        clients[client, default: ClientState()].references.insert(uuid)
    }

    private func release(client: ClientUUID, uuid: ContainerUUID, now: Int64) {
        dropReferences(of: client, to: uuid, all: false, now: now)
    }

    private func dropReferences(of client: ClientUUID, to uuid: ContainerUUID, all: Bool, now: Int64) {
        guard var container = containers[uuid], let count = container.clients[client] else { return }
        if all || count <= 1 {
            container.clients.removeValue(forKey: client)
            clients[client]?.references.remove(uuid)
        } else {
            container.clients[client] = count - 1
        }
        if container.clients.isEmpty { container.unusedSince = now }
        containers[uuid] = container
    }

    private func terminate(_ uuid: ContainerUUID, now: Int64, into out: inout [CoordinatorDirective]) {
        guard let container = containers.removeValue(forKey: uuid) else { return }
        queueContainer(container.record, .removed)
        guard var agent = agents[container.record.agentId] else { return }
        agent.containers.remove(uuid)
        agents[agent.id] = agent
        out.append(.log(.info, "container unused for \(timeouts.unusedContainerMs) ms: terminating it",
                        fields: [LogField("container", uuid), LogField("kind", container.record.kind), LogField("agent", agent.id)]))
        sendTerminate(uuid, on: agent, now: now, into: &out)
    }

    private func sendTerminate(_ uuid: ContainerUUID, on agent: AgentState, now: Int64, into out: inout [CoordinatorDirective]) {
        let id = newCall(.terminate(uuid), to: agent.owner, agentId: agent.id, now: now)
        let params: JSONValue = .array([.string(agent.id), .array([.string(uuid)])])
        out.append(.call(to: agent.owner, id: id, payload: JSONValue.array([.string(Method.terminate), params]).serialized()))
    }

    // MARK: - Events

    private func queueAgent(_ change: NetworkEvent.AgentChange) {
        if let previous = queuedAgentEvents[change.id] {
            var merged = change
            merged.event = Self.merge(previous.event, change.event)
            queuedAgentEvents[change.id] = merged
        } else {
            queuedAgentEvents[change.id] = change
            queuedAgentOrder.append(change.id)
        }
    }

    /// Every change of `containers` passes here, which keeps the per-kind gauge in step.
    private func queueContainer(_ record: ContainerRecord, _ kind: NetworkEventKind) {
        if let metrics, kind != .updated { metrics.containerChanged(kind: record.kind, by: kind == .added ? 1 : -1) }
        if let previous = queuedContainerEvents[record.uuid] {
            queuedContainerEvents[record.uuid] = .init(container: record, event: Self.merge(previous.event, kind))
        } else {
            queuedContainerEvents[record.uuid] = .init(container: record, event: kind)
            queuedContainerOrder.append(record.uuid)
        }
    }

    /// Two changes in one window become the one that leaves clients with the right last state:
    /// added then updated is still "added"; anything then removed is "removed"; removed then added
    /// again is "updated" (it exists, with the newest record).
    static func merge(_ first: NetworkEventKind, _ second: NetworkEventKind) -> NetworkEventKind {
        switch (first, second) {
        case (_, .removed): return .removed
        case (.added, _): return .added
        case (.removed, _): return .updated
        case (.updated, _): return .updated
        }
    }
}
