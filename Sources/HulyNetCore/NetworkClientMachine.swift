/// A container reference of a client, as its `NetworkClientMachine` knows it.
public typealias ReferenceID = Int
/// A request made through a reference (through the coordinator, or over a connection of it),
/// kept until it is answered so that it can be sent again after its container moved.
public typealias ReferenceCallID = Int

/// What a `NetworkClientMachine` asks its shell to do.
public enum NetworkClientOutput: Sendable, Equatable {
    /// Send `ar` for this agent (its registration as it is now); report with `registered`.
    /// `restores`: part of a restore, sent while other requests wait.
    case register(AgentUUID, restores: Bool)
    /// Send `gg` for this reference; report with `gotten` and the same attempt.
    case get(ReferenceID, kind: ContainerKind, options: GetOptions, restores: Bool, attempt: Int)
    /// Give back a reference the network gave for an attempt nobody wants any more.
    case release(ContainerUUID)
    /// The requests held for a restore may go now.
    case resendPending
    /// Stop the agent's containers (not its stateless ones) before it registers again: the
    /// network dropped this client and gave them to other agents; their holders have followed.
    case abandonContainers(AgentUUID)
    /// The reference now names this container at this endpoint (tell its holder; reopen its
    /// connections there).
    case moved(ReferenceID, uuid: ContainerUUID, endpoint: String)
    /// Send this call (again, dropping any attempt still out) with the reference's current uuid
    /// and endpoint, allowing it `timeoutMs`.
    case send(ReferenceCallID, timeoutMs: Int64)
    /// The call is over with this failure.
    case fail(ReferenceCallID, RPCFailure)
    /// Call `tick` again after this many milliseconds.
    case wake(afterMs: Int)
    case log(LogLevel, String)
}

/// A network client's own rules above the RPC connection, without I/O or clocks: which agents to
/// register again and which references to acquire again when the coordinator is new; references
/// that follow their container when it moves (its agent died or left, or the network stopped it),
/// with the calls made meanwhile held and sent again, each bounded by its own deadline; and
/// highly available ("stateless") containers claimed when their owner goes.
///
/// Not thread-safe: one thread (the client's I/O loop) owns it.
public final class NetworkClientMachine {
    public let timeouts: Timeouts
    /// The first retry of a failed get waits this long; each next one twice as long, up to `maxRetryMs`.
    public var firstRetryMs: Int64 = 50
    public var maxRetryMs: Int64 = 1000

    public struct Reference: Sendable, Equatable {
        public let kind: ContainerKind
        /// What the holder asked for: a failover gets the same again (same uuid for a uuid get).
        public let options: GetOptions
        public var uuid: ContainerUUID
        public var endpoint: String
        /// Bumped by every move, so that a call knows whether it was sent before one.
        public var generation = 0
        public var moving = false
        /// The get in flight for this reference, if any.
        var attempt = 0
        var getInFlight = false
        var getRestores = false
        var nextGetAt: Int64?
        var retryMs: Int64 = 0
        /// Why the last get failed, to tell callers whose time ran out while it moved.
        var lastGetFailure: RPCFailure?
    }

    struct Call {
        let reference: ReferenceID
        let deadline: Int64
        let viaConnection: Bool
        /// The generation it was last sent at; nil while waiting for a move to finish.
        var sentAt: Int?
    }

    struct Restore {
        var outstanding: Int
        let deadline: Int64
    }

    public private(set) var references: [ReferenceID: Reference] = [:]
    private var calls: [ReferenceCallID: Call] = [:]
    private var nextCall: ReferenceCallID = 0
    /// Registered agents, with the stateless containers each offers but another agent owns.
    public private(set) var agents: [AgentUUID: Set<ContainerUUID>] = [:]
    private var restore: Restore?

    public init(timeouts: Timeouts) {
        self.timeouts = timeouts
    }

    public var isRestoring: Bool { restore != nil }
    public var callCount: Int { calls.count }

    // MARK: - Agents

    /// An agent was registered (first time or again); `standby`: its stateless containers that
    /// another agent owns, to claim when that one goes.
    public func agentRegistered(_ agent: AgentUUID, standby: Set<ContainerUUID>) {
        agents[agent] = standby
    }

    public func agentUnregistered(_ agent: AgentUUID) {
        agents.removeValue(forKey: agent)
    }

    /// The answer to a `register` output. A failed restore registration is logged; the agent
    /// is registered again at the next restore.
    public func registered(_ agent: AgentUUID, restores: Bool, result: Result<Set<ContainerUUID>, RPCFailure>,
                           into out: inout [NetworkClientOutput]) {
        switch result {
        case .success(let standby):
            if agents[agent] != nil { agents[agent] = standby }
        case .failure(let failure):
            out.append(.log(.warning, "registering agent \(agent) again failed: \(failure)"))
        }
        if restores { restoreStepDone(into: &out) }
    }

    // MARK: - References

    public func referenceAdded(_ id: ReferenceID, kind: ContainerKind, options: GetOptions, uuid: ContainerUUID,
                               endpoint: String) {
        references[id] = Reference(kind: kind, options: options, uuid: uuid, endpoint: endpoint)
    }

    /// The holder released it: calls waiting for it fail.
    public func referenceReleased(_ id: ReferenceID, into out: inout [NetworkClientOutput]) {
        guard references.removeValue(forKey: id) != nil else { return }
        for (callId, call) in calls where call.reference == id {
            calls.removeValue(forKey: callId)
            out.append(.fail(callId, .closed))
        }
    }

    public func reference(_ id: ReferenceID) -> Reference? { references[id] }

    /// The answer to a `get` output.
    public func gotten(_ id: ReferenceID, attempt: Int, result: Result<(ContainerUUID, String), RPCFailure>,
                       now: Int64, into out: inout [NetworkClientOutput]) {
        guard var reference = references[id], reference.attempt == attempt, reference.getInFlight else {
            // Released meanwhile (or an attempt overtaken): give back what the network gave.
            if case .success(let (uuid, _)) = result { out.append(.release(uuid)) }
            return
        }
        let restores = reference.getRestores
        reference.getInFlight = false
        switch result {
        case .success(let (uuid, endpoint)):
            let changed = uuid != reference.uuid || endpoint != reference.endpoint
            // A move (the container was gone, or is elsewhere) strands what went to where it
            // was; a restore that finds it in place strands nothing.
            if changed || reference.moving { reference.generation += 1 }
            reference.uuid = uuid
            reference.endpoint = endpoint
            reference.moving = false
            reference.nextGetAt = nil
            reference.retryMs = 0
            reference.lastGetFailure = nil
            references[id] = reference
            if changed {
                out.append(.log(.info, "reference to a \(reference.kind) container moved to \(uuid) at \(endpoint)"))
                out.append(.moved(id, uuid: uuid, endpoint: endpoint))
            }
            sendHeldCalls(of: id, now: now, into: &out)
        case .failure(let failure):
            // Nothing to follow yet (no agent of the kind, say): try again, later and later; the
            // calls waiting meanwhile fail at their own deadlines.
            reference.moving = true
            reference.lastGetFailure = failure
            reference.retryMs = reference.retryMs == 0 ? firstRetryMs : min(reference.retryMs * 2, maxRetryMs)
            reference.nextGetAt = now + reference.retryMs
            references[id] = reference
            out.append(.log(.debug, "get of a \(reference.kind) container failed (\(failure)); again in \(reference.retryMs) ms"))
            out.append(.wake(afterMs: Int(reference.retryMs)))
        }
        if restores { restoreStepDone(into: &out) }
    }

    /// The container is gone from the network (or answers that it is): look for it again.
    private func beginMove(_ id: ReferenceID, now: Int64, into out: inout [NetworkClientOutput]) {
        guard var reference = references[id], !reference.moving else { return }
        reference.moving = true
        references[id] = reference
        out.append(.log(.info, "container \(reference.uuid) of kind \(reference.kind) is gone: getting it again"))
        issueGet(id, restores: false, into: &out)
    }

    private func issueGet(_ id: ReferenceID, restores: Bool, into out: inout [NetworkClientOutput]) {
        guard var reference = references[id] else { return }
        // A get that replaces a restore step still out is that step: sent during the restore
        // (not held behind it), and its answer counts towards the restore's end.
        let restores = restores || (reference.getInFlight && reference.getRestores)
        reference.attempt += 1
        reference.getInFlight = true
        reference.getRestores = restores
        reference.nextGetAt = nil
        references[id] = reference
        var options = reference.options
        // After a coordinator restart the container still runs: ask for that one. A moving
        // reference asks for what its holder asked for (a uuid get keeps its uuid).
        if restores, !reference.moving { options.uuid = reference.uuid }
        out.append(.get(id, kind: reference.kind, options: options, restores: restores, attempt: reference.attempt))
    }

    // MARK: - Calls

    /// A call through reference `id`: sent at once (a `send` output) unless its container is
    /// moving, then when it has moved.
    @discardableResult
    public func startCall(reference id: ReferenceID, timeoutMs: Int64, viaConnection: Bool, now: Int64,
                          into out: inout [NetworkClientOutput]) -> ReferenceCallID {
        nextCall += 1
        let callId = nextCall
        guard let reference = references[id] else {
            out.append(.fail(callId, .closed))
            return callId
        }
        var call = Call(reference: id, deadline: now + timeoutMs, viaConnection: viaConnection)
        if !reference.moving {
            call.sentAt = reference.generation
            out.append(.send(callId, timeoutMs: timeoutMs))
        }
        calls[callId] = call
        return callId
    }

    /// The call was answered; it is over.
    public func callSucceeded(_ callId: ReferenceCallID) {
        calls.removeValue(forKey: callId)
    }

    /// The call's attempt failed. A failure that means the container moved (not found, agent
    /// gone) holds the call until the reference follows the container, then sends it again, or
    /// at once when it has moved since the attempt went out. Any other failure is an answer: it
    /// ends the call.
    public func callFailed(_ callId: ReferenceCallID, _ failure: RPCFailure, now: Int64,
                           into out: inout [NetworkClientOutput]) {
        guard var call = calls[callId] else { return }
        let left = call.deadline - now
        if case .timeout = failure, let reference = references[call.reference], reference.moving {
            // Sent to where the container was just before it went: its time ran out while it moved.
            calls.removeValue(forKey: callId)
            out.append(.fail(callId, movingTooLong(reference)))
            return
        }
        guard let reference = references[call.reference], left > 0,
              case .remote(let error) = failure, error.code?.meansMoved == true else {
            calls.removeValue(forKey: callId)
            out.append(.fail(callId, failure))
            return
        }
        if !reference.moving, let sentAt = call.sentAt, sentAt < reference.generation {
            call.sentAt = reference.generation
            calls[callId] = call
            out.append(.send(callId, timeoutMs: left))
            return
        }
        call.sentAt = nil
        calls[callId] = call
        beginMove(call.reference, now: now, into: &out)
    }

    /// The holder gave up on a call (its connection closed, say).
    public func callCancelled(_ callId: ReferenceCallID) {
        calls.removeValue(forKey: callId)
    }

    private func sendHeldCalls(of id: ReferenceID, now: Int64, into out: inout [NetworkClientOutput]) {
        guard let reference = references[id] else { return }
        for callId in calls.keys.sorted() {
            guard var call = calls[callId], call.reference == id else { continue }
            // Held ones, and ones over a connection that went to where the container was: an
            // agent that died answers nothing. Ones through the coordinator end there on their own.
            let held = call.sentAt == nil
            let stranded = !held && call.viaConnection && call.sentAt! < reference.generation
            guard held || stranded else { continue }
            let left = call.deadline - now
            guard left > 0 else {
                calls.removeValue(forKey: callId)
                out.append(.fail(callId, movingTooLong(reference)))
                continue
            }
            call.sentAt = reference.generation
            calls[callId] = call
            out.append(.send(callId, timeoutMs: left))
        }
    }

    // MARK: - The network

    /// The RPC connection was greeted. After a coordinator restart, or one that forgot this
    /// client, agents are registered again and references acquired again, while other requests
    /// wait (bounded by the alive timeout); then `resendPending`. A coordinator that forgot this
    /// client gave its agents' containers to others: those copies stop first, so that no
    /// container runs twice.
    public func connected(_ greeting: Greeting, now: Int64, into out: inout [NetworkClientOutput]) {
        guard greeting.mustRestore else { return }
        if greeting == .forgotten {
            for agent in agents.keys.sorted() { out.append(.abandonContainers(agent)) }
        }
        let steps = agents.count + references.count
        guard steps > 0 else {
            out.append(.resendPending)
            return
        }
        out.append(.log(.info, "the network does not know this client: registering \(agents.count) agents and acquiring \(references.count) references again"))
        restore = Restore(outstanding: steps, deadline: now + timeouts.aliveMs)
        // Agents first: a reference may name a container of this client's own agents.
        for agent in agents.keys.sorted() { out.append(.register(agent, restores: true)) }
        for id in references.keys.sorted() {
            if references[id]!.getInFlight {
                // Its answer will not come from the server that is gone: ask again.
                references[id]!.getInFlight = false
            }
            issueGet(id, restores: true, into: &out)
        }
        out.append(.wake(afterMs: Int(timeouts.aliveMs)))
    }

    private func restoreStepDone(into out: inout [NetworkClientOutput]) {
        guard var restore else { return }
        restore.outstanding -= 1
        if restore.outstanding <= 0 {
            self.restore = nil
            out.append(.resendPending)
        } else {
            self.restore = restore
        }
    }

    /// A network event: references whose container was removed follow it; agents with a
    /// stateless copy of a removed container register again to claim it; moving references whose
    /// kind an agent now offers try again at once.
    public func networkEvent(_ event: NetworkEvent, now: Int64, into out: inout [NetworkClientOutput]) {
        var removed = Set<ContainerUUID>()
        for change in event.containers where change.event == .removed { removed.insert(change.container.uuid) }
        if !removed.isEmpty {
            for id in references.keys.sorted() where removed.contains(references[id]!.uuid) {
                beginMove(id, now: now, into: &out)
            }
            for agent in agents.keys.sorted() where !agents[agent]!.isDisjoint(with: removed) {
                out.append(.register(agent, restores: false))
            }
        }
        let offered = Set(event.agents.filter { $0.event != .removed }.flatMap(\.kinds))
        guard !offered.isEmpty else { return }
        for id in references.keys.sorted() {
            let reference = references[id]!
            if reference.moving, !reference.getInFlight, offered.contains(reference.kind) {
                issueGet(id, restores: false, into: &out)
            }
        }
    }

    /// The failure of a call whose time ran out while its container moved: the network's
    /// reason when it gave one (no agent offers the kind, say), else a timeout.
    private func movingTooLong(_ reference: Reference) -> RPCFailure {
        let what = "the \(reference.kind) container moved and no agent took it within the request's time"
        if case .remote(let error)? = reference.lastGetFailure {
            return .remote(RemoteError("\(error.message) (\(what))", code: error.code))
        }
        return .timeout(what)
    }

    // MARK: - Time

    /// Gets due for another try, calls past their deadline while held, and a restore that took
    /// too long (the held requests go anyway).
    public func tick(now: Int64, into out: inout [NetworkClientOutput]) {
        for id in references.keys.sorted() {
            guard let reference = references[id], let at = reference.nextGetAt, at <= now, !reference.getInFlight else { continue }
            issueGet(id, restores: false, into: &out)
        }
        for callId in calls.keys.sorted() {
            guard let call = calls[callId], call.sentAt == nil, call.deadline <= now else { continue }
            calls.removeValue(forKey: callId)
            out.append(.fail(callId, references[call.reference].map(movingTooLong) ?? .closed))
        }
        if let restore, restore.deadline <= now {
            self.restore = nil
            out.append(.log(.warning, "restore not finished within \(timeouts.aliveMs) ms: sending the held requests"))
            out.append(.resendPending)
        }
    }
}
