import HulyNetCore
import HulyNetZMQ
import Logging

/// A connection to a network coordinator: ask it for containers, send them requests, follow the
/// network's changes, and register or serve agents.
///
/// All methods may be called from any task or thread. Each client runs one I/O thread of its
/// own, which also serves the endpoints of the agents it serves.
public final class NetworkClient: @unchecked Sendable {
    public struct Options: Sendable {
        public var timeouts: Timeouts
        /// This client's alive timeout announced in hello (seconds); the network drops it after
        /// that long without a message. Default: `timeouts.aliveMs`.
        public var aliveTimeoutSeconds: Double?
        /// How long `get` keeps retrying while no agent offers the kind.
        public var getTimeoutMs: Int64
        /// What the endpoints this client opens (its agents' endpoints, direct containers) allow
        /// each peer.
        public var endpointLimits: PeerLimits
        public var logger: Logger

        public init(timeouts: Timeouts = .reference, aliveTimeoutSeconds: Double? = nil, getTimeoutMs: Int64 = 60_000,
                    endpointLimits: PeerLimits = PeerLimits(), logger: Logger = Logger(label: "hulynet.client")) {
            self.timeouts = timeouts
            self.aliveTimeoutSeconds = aliveTimeoutSeconds
            self.getTimeoutMs = getTimeoutMs
            self.endpointLimits = endpointLimits
            self.logger = logger
        }

        /// Throws `NetworkError.invalid` naming the first setting out of range.
        public func validate() throws(NetworkError) {
            try timeouts.check()
            if let seconds = aliveTimeoutSeconds, !(seconds > 0 && seconds <= Double(Timeouts.maxMs / 1000)) {
                throw NetworkError.invalid("alive timeout \(seconds) s is out of range (above 0 to \(Timeouts.maxMs / 1000))")
            }
            try checkRange(Int(getTimeoutMs), 1...Int(Timeouts.maxMs), "get timeout (ms)")
            try endpointLimits.validate()
        }
    }

    public let clientId: ClientUUID
    public let host: String
    public let port: Int
    public let options: Options
    let loop: IOLoop
    var logger: Logger { options.logger }

    // Loop-thread state.
    private var rpc: RPCClient!
    private var agents: [AgentUUID: Agent] = [:]
    private var agentServers: [AgentUUID: AgentEndpointServer] = [:]
    private var listeners: [Int: @Sendable (NetworkEvent) -> Void] = [:]
    private var nextListener = 0
    private var references: [ObjectIdentifier: ContainerReference] = [:]
    /// Connections to agent endpoints and direct container endpoints, by "host:port".
    private var endpointClients: [String: EndpointClient] = [:]
    private var isClosed = false
    /// Calls waiting on the loop, to fail when the client closes.
    private var outstanding: [ObjectIdentifier: () -> Void] = [:]

    /// Connects to the coordinator at `host:port` (in the background: see `waitForConnection`).
    public init(host: String, port: Int, options: Options = Options()) throws {
        try checkHost(host)
        try checkPort(port, allowZero: false)
        try options.validate()
        clientId = makeUUID()
        self.host = host
        self.port = port
        self.options = options
        loop = IOLoop(name: "hulynet-client")
        loop.start()
        let error: ZMQError? = loop.sync { [self] () -> ZMQError? in
            do throws(ZMQError) {
                rpc = try RPCClient(loop: loop, clientId: clientId, host: host, port: port, timeouts: options.timeouts,
                                    aliveTimeoutSeconds: options.aliveTimeoutSeconds, logger: options.logger)
                rpc.delegate = self
                return nil
            } catch { return error }
        } ?? ZMQError(code: 0, context: "loop stopped")
        if let error {
            loop.stop()
            throw NetworkError.invalid("cannot connect to \(host):\(port): \(error)")
        }
    }

    /// Connects to "host:port".
    public convenience init(address: String, options: Options = Options()) throws {
        let (host, port) = try parseAddress(address, defaultPort: 3737)
        try self.init(host: host, port: port, options: options)
    }

    deinit {
        loop.stop()
    }

    // MARK: - Loop bridging

    /// Runs `body` on the loop thread and resumes with the result it reports.
    func onLoop<T: Sendable>(_ body: @escaping (@escaping (Result<T, NetworkError>) -> Void) -> Void) async throws(NetworkError) -> T {
        let result: Result<T, NetworkError> = await withCheckedContinuation { continuation in
            let once = ResumeOnce(continuation)
            let key = ObjectIdentifier(once)
            let queued = loop.executeUnchecked { [self] in
                if isClosed { once.resume(.failure(.closed)); return }
                // Whatever the body waits for (a timer, an event) ends with the client: fail it then.
                outstanding[key] = { once.resume(.failure(.closed)) }
                body { [self] result in
                    outstanding.removeValue(forKey: key)
                    once.resume(result)
                }
            }
            if !queued { once.resume(.failure(.closed)) }
        }
        return try result.get()
    }

    func call(_ method: String, _ params: JSONValue, timeoutMs: Int64? = nil, restoring: Bool = false) async throws(NetworkError) -> JSONValue {
        let result: Result<JSONValue, NetworkError> = await withCheckedContinuation { continuation in
            call(method, params, timeoutMs: timeoutMs, restoring: restoring) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Sends a request to the coordinator; `completion` runs once, on the client's I/O thread (or
    /// on the calling thread when the client is closed).
    func call(_ method: String, _ params: JSONValue, timeoutMs: Int64? = nil, restoring: Bool = false,
              completion: @escaping (Result<JSONValue, NetworkError>) -> Void) {
        let payload = JSONValue.array([.string(method), params]).serialized()
        let queued = loop.executeUnchecked { [self] in
            guard !isClosed else { completion(.failure(.closed)); return }
            rpc.request(payload: payload, timeoutMs: timeoutMs, restoring: restoring) { result in
                completion(decodeAnswer(result, of: method))
            }
        }
        if !queued { completion(.failure(.closed)) }
    }

    // MARK: - Public API

    /// The client's I/O thread as a task executor. Code that sends request after request and
    /// does little in between runs fastest there, with no thread crossed per request:
    /// `try await withTaskExecutorPreference(client.executor) { ... }`. Such code must not block
    /// or compute for long: while it runs, the client's sockets wait.
    public var executor: any TaskExecutor { loop }

    /// Waits until the coordinator has answered hello.
    public func waitForConnection(timeoutMs: Int64 = 10_000) async throws(NetworkError) {
        let _: Bool = try await onLoop { [self] done in
            let finished = Box(false)
            let timer = Box<IOLoop.TimerID?>(nil)
            let address = "\(host):\(port)"
            rpc.whenConnected { [loop] result in
                guard !finished.value else { return }
                finished.value = true
                if let id = timer.value { loop.cancel(id) }
                done(result.map { true })
            }
            guard !finished.value else { return }
            timer.value = loop.after(milliseconds: Int(timeoutMs)) {
                guard !finished.value else { return }
                finished.value = true
                done(.failure(.timeout("no connection to \(address) within \(timeoutMs) ms")))
            }
        }
    }

    public var isConnected: Bool { loop.sync { [self] in rpc.isConnected } ?? false }

    // Every call takes an optional `timeoutMs`; nil means `options.timeouts.requestMs`.

    public func agentList(timeoutMs: Int64? = nil) async throws(NetworkError) -> [AgentInfo] {
        try decodeArray(try await call(Method.listAgents, .object([:]), timeoutMs: timeoutMs), AgentInfo.init(json:))
    }

    public func kinds(timeoutMs: Int64? = nil) async throws(NetworkError) -> [ContainerKind] {
        (try await call(Method.kinds, .object([:]), timeoutMs: timeoutMs)).arrayValue?.compactMap(\.stringValue) ?? []
    }

    public func list(kind: ContainerKind? = nil, timeoutMs: Int64? = nil) async throws(NetworkError) -> [ContainerRecord] {
        try decodeArray(try await call(Method.listContainers, .object(kind.map { ["kind": .string($0)] } ?? [:]),
                                       timeoutMs: timeoutMs),
                        ContainerRecord.init(json:))
    }

    /// A request to a container through the coordinator.
    public func request(_ target: ContainerUUID, operation: String, data: JSONValue = .null,
                        timeoutMs: Int64? = nil) async throws(NetworkError) -> JSONValue {
        try await call(Method.sendContainer, .array([.string(target), .string(operation), data]), timeoutMs: timeoutMs)
    }

    /// The same, for callers that are not async (foreign-language bindings): `completion` runs
    /// once, on the client's I/O thread; keep it short.
    public func request(_ target: ContainerUUID, operation: String, data: JSONValue = .null, timeoutMs: Int64? = nil,
                        completion: @escaping @Sendable (Result<JSONValue, NetworkError>) -> Void) {
        call(Method.sendContainer, .array([.string(target), .string(operation), data]), timeoutMs: timeoutMs,
             completion: completion)
    }

    /// Get-or-start a container; retried until an agent offering `kind` appears, for at most
    /// `timeoutMs` in all (default `options.getTimeoutMs`). The reference holds the container
    /// until released.
    public func get(kind: ContainerKind, options getOptions: GetOptions = GetOptions(),
                    timeoutMs: Int64? = nil) async throws(NetworkError) -> ContainerReference {
        let (uuid, endpoint) = try await getContainer(kind: kind, options: getOptions, timeoutMs: timeoutMs)
        let reference = ContainerReference(client: self, uuid: uuid, endpoint: endpoint, kind: kind, options: getOptions)
        let _: Bool = try await onLoop { [self] done in
            references[ObjectIdentifier(reference)] = reference
            done(.success(true))
        }
        return reference
    }

    func getContainer(kind: ContainerKind, options getOptions: GetOptions, timeoutMs: Int64? = nil,
                      restoring: Bool = false) async throws(NetworkError) -> (ContainerUUID, String) {
        let deadline = MonotonicClock.nowMs() + (timeoutMs ?? options.getTimeoutMs)
        var delayMs: Int64 = 50
        while true {
            do throws(NetworkError) {
                let left = deadline - MonotonicClock.nowMs()
                guard left > 0 else { throw NetworkError.timeout("no container of kind \(kind) within \(timeoutMs ?? options.getTimeoutMs) ms") }
                let answer = try await call(Method.getContainer, .object(["kind": .string(kind), "request": getOptions.json]),
                                            timeoutMs: min(left, options.timeouts.requestMs), restoring: restoring)
                guard case .array(let pair) = answer, pair.count >= 2, let uuid = pair[0].stringValue,
                      let endpoint = pair[1].stringValue else {
                    throw NetworkError.invalid("gg answered \(answer)")
                }
                return (uuid, endpoint)
            } catch {
                let left = deadline - MonotonicClock.nowMs()
                guard case .remote(let message) = error, message.hasPrefix("No suitable agents"), left > 0 else { throw error }
                // No agent offers the kind yet: retry when one registers, or after a growing delay.
                await waitForAgent(offering: kind, atMostMs: Int(min(delayMs, left)))
                delayMs = min(delayMs * 2, 1000)
            }
        }
    }

    /// Returns when an event says an agent offering `kind` registered, or after `atMostMs`.
    private func waitForAgent(offering kind: ContainerKind, atMostMs: Int) async {
        let _: Bool? = try? await onLoop { [self] done in
            let finished = Box(false)
            nextListener += 1
            let id = nextListener
            let finish = { [self] in
                guard !finished.value else { return }
                finished.value = true
                listeners.removeValue(forKey: id)
                done(.success(true))
            }
            nonisolated(unsafe) let finishOnLoop = finish
            listeners[id] = { event in
                if event.agents.contains(where: { $0.event != .removed && $0.kinds.contains(kind) }) { finishOnLoop() }
            }
            loop.after(milliseconds: atMostMs, finish)
        }
    }

    /// Listens to the network's changes; returns a subscription to cancel.
    @discardableResult
    public func onUpdate(_ listener: @escaping @Sendable (NetworkEvent) -> Void) -> Subscription {
        let id: Int = loop.sync { [self] in
            nextListener += 1
            listeners[nextListener] = listener
            return nextListener
        } ?? -1
        // Synchronous: once cancel returns the listener is not called again (listeners run on the
        // loop thread, so a cancel from inside one runs at once).
        return Subscription { [weak self] in
            guard let self else { return }
            _ = self.loop.sync { self.listeners.removeValue(forKey: id) }
        }
    }

    /// Registers an agent with the network (again after every server restart). Its containers
    /// are reached through the coordinator only; use `serve` to give it an endpoint.
    public func register(_ agent: Agent, timeoutMs: Int64? = nil) async throws(NetworkError) {
        let _: Bool = try await onLoop { [self] done in
            agents[agent.uuid] = agent
            if agent.endpoint == nil {
                agent.attach(endpoint: nil, loop: loop, timeouts: options.timeouts, limits: options.endpointLimits, logger: logger)
            }
            done(.success(true))
        }
        let started = MonotonicClock.nowMs()
        let total = timeoutMs ?? options.timeouts.requestMs
        try await waitForConnection(timeoutMs: total)
        // An agent belongs to the client that registered it while that client lives. A restarted
        // agent process with a fixed uuid has a new client: until the old one is gone (it closed,
        // or its alive timeout passed) the uuid is refused, so wait for that within the timeout.
        var delayMs: Int64 = 50
        while true {
            let left = total - (MonotonicClock.nowMs() - started)
            do throws(NetworkError) {
                try await registerNow(agent, timeoutMs: max(1, left))
                return
            } catch {
                guard case .remote(let message) = error, message == agentOwnedByAnotherClient(agent.uuid),
                      left > delayMs else { throw error }
                try? await Task.sleep(nanoseconds: UInt64(delayMs) * 1_000_000)
                delayMs = min(delayMs * 2, 500)
            }
        }
    }

    /// Opens the agent's endpoint on `bindHost:port` (port 0 picks one), advertised to clients as
    /// `advertisedHost`, then registers the agent.
    public func serve(_ agent: Agent, advertisedHost: String = "127.0.0.1", bindHost: String = "*", port: Int = 0,
                      timeoutMs: Int64? = nil) async throws(NetworkError) {
        try checkHost(advertisedHost, "advertised host")
        try checkHost(bindHost, "bind host")
        try checkPort(port, allowZero: true)
        let _: Bool = try await onLoop { [self] done in
            do {
                let server = try AgentEndpointServer(loop: loop, agent: agent, host: bindHost, port: port,
                                                     timeouts: options.timeouts, limits: options.endpointLimits, logger: logger)
                agentServers[agent.uuid] = server
                agent.attach(endpoint: .agent(host: advertisedHost, port: server.rpc.port, agentId: agent.uuid), loop: loop,
                             timeouts: options.timeouts, limits: options.endpointLimits, logger: logger)
                done(.success(true))
            } catch {
                done(.failure(.bindFailed("\(bindHost):\(port): \(error)")))
            }
        }
        try await register(agent, timeoutMs: timeoutMs)
    }

    /// Unregisters an agent and stops its endpoint and containers.
    /// Unregisters an agent and stops its endpoint and containers. They stop even when the
    /// network cannot be told (the error is thrown after).
    public func unregister(_ agent: Agent, timeoutMs: Int64? = nil) async throws(NetworkError) {
        var failure: NetworkError?
        do throws(NetworkError) {
            _ = try await call(Method.unregisterAgent, .object(["uuid": .string(agent.uuid)]), timeoutMs: timeoutMs)
        } catch {
            failure = error
        }
        let _: Bool? = try? await onLoop { [self] done in
            agents.removeValue(forKey: agent.uuid)
            agentServers.removeValue(forKey: agent.uuid)?.close()
            done(.success(true))
        }
        await agent.terminateAll()
        if let failure { throw failure }
    }

    private func registerNow(_ agent: Agent, timeoutMs: Int64? = nil, restoring: Bool = false) async throws(NetworkError) {
        let answer = try await call(Method.registerAgent, agent.registration().json, timeoutMs: timeoutMs, restoring: restoring)
        let rejected = answer.arrayValue?.compactMap(\.stringValue) ?? []
        agent.accepted(except: rejected)
        // A stateless container another agent owns stays here on standby, to be claimed when
        // that agent goes; any other container the network refuses is stopped.
        for uuid in rejected where !agent.isStateless(uuid) { await agent.terminate(uuid) }
    }

    /// Releases every reference, closes connections, unregisters agents and disconnects; idempotent.
    public func close() async {
        let state: ([ContainerReference], [Agent])? = loop.sync { [self] in
            if isClosed { return nil }
            return (Array(references.values), Array(agents.values))
        } ?? nil
        guard let (refs, ownAgents) = state else { return }
        // Tell the network, all at once and briefly: it drops what a silent client held anyway.
        let farewellMs = min(options.timeouts.requestMs, 2000)
        let connected = isConnected
        await withTaskGroup(of: Void.self) { group in
            for reference in refs {
                group.addTask {
                    if connected { try? await reference.release(timeoutMs: farewellMs) }
                }
            }
            for agent in ownAgents {
                group.addTask { [self] in
                    if connected { try? await unregister(agent, timeoutMs: farewellMs) }
                }
            }
        }
        loop.sync { [self] in
            isClosed = true
            // References and agents point back at this client: let go of them.
            references.removeAll()
            agents.removeAll()
            listeners.removeAll()
            for client in endpointClients.values { client.close() }
            endpointClients.removeAll()
            for server in agentServers.values { server.close() }
            agentServers.removeAll()
            rpc.close()
            let waiting = outstanding
            outstanding.removeAll()
            for fail in waiting.values { fail() }
        }
        for agent in ownAgents { await agent.terminateAll() }
        loop.stop()
    }

    // MARK: - References and connections (loop thread)

    func forget(_ reference: ContainerReference) {
        loop.executeUnchecked { [self] in references.removeValue(forKey: ObjectIdentifier(reference)) }
    }

    /// The connection to an agent's or a container's endpoint, shared by its users.
    func endpointClient(host: String, port: Int, direct: Bool) throws(NetworkError) -> EndpointClient {
        let key = "\(direct ? "d" : "r"):\(host):\(port)"
        if let existing = endpointClients[key], !existing.rpc.closed { return existing }
        do {
            let rpc = try RPCClient(loop: loop, clientId: clientId, host: host, port: port,
                                    timeouts: options.timeouts, logger: logger)
            let client = EndpointClient(rpc: rpc, direct: direct)
            endpointClients[key] = client
            return client
        } catch {
            throw NetworkError.invalid("cannot connect to \(host):\(port): \(error)")
        }
    }

    private func decodeArray<T>(_ value: JSONValue, _ decode: (JSONValue) throws(ProtocolError) -> T) throws(NetworkError) -> [T] {
        guard let items = value.arrayValue else { throw NetworkError.invalid("expected an array, got \(value)") }
        var result: [T] = []
        for item in items {
            do { result.append(try decode(item)) } catch { throw NetworkError.invalid(error.message) }
        }
        return result
    }
}

extension NetworkClient: RPCClientDelegate {
    func rpcClient(_ client: RPCClient, connectedTo serverId: String, isFirst: Bool, restarted: Bool) -> Bool {
        guard restarted else { return false }
        let agentsNow = Array(agents.values)
        let refs = Array(references.values)
        guard !agentsNow.isEmpty || !refs.isEmpty else { return false }
        logger.info("network \(serverId) does not know this client: registering agents and references again")
        // Requests left pending wait until the new coordinator knows our agents and containers;
        // sent before, a request for a held container would find it missing.
        let loop = self.loop
        nonisolated(unsafe) let rpc = client
        Task { [self] in
            for agent in agentsNow { try? await registerNow(agent, restoring: true) }
            for reference in refs { await reference.reacquire() }
            loop.executeUnchecked { rpc.resendPending() }
        }
        // A container whose agent does not come back must not hold everything else for long.
        loop.after(milliseconds: Int(options.timeouts.aliveMs)) { rpc.resendPending() }
        return true
    }

    func rpcClient(_ client: RPCClient, event payload: [UInt8]) {
        guard let value = try? JSONValue.parse(payload), let event = try? NetworkEvent(json: value) else {
            logger.warning("malformed network event: dropped")
            return
        }
        for listener in listeners.values { listener(event) }
        // Highly available containers: when the owner of one of ours goes, claim it again.
        if event.containers.contains(where: { $0.event == .removed }) {
            for agent in agents.values where agent.hasStateless {
                let claim = event.containers.contains { $0.event == .removed && agent.isStateless($0.container.uuid) }
                if claim { Task { [self] in try? await registerNow(agent) } }
            }
        }
    }

    func rpcClient(_ client: RPCClient, request method: String, params: JSONValue, reqId: [UInt8]) {
        guard case .array(let items) = params, let agentId = items.first?.stringValue, let agent = agents[agentId] else {
            client.respond(reqId, .failure(RPCRemoteError("Agent \(params[0]?.stringValue ?? "?") not found")))
            return
        }
        let args = items.count > 1 ? (items[1].arrayValue ?? []) : []
        let loop = self.loop
        nonisolated(unsafe) let rpc = client
        if method == Method.sendContainer {
            // The hot path: straight to the container, answered at once when it answers at once.
            guard args.count >= 2, let target = args[0].stringValue, let operation = args[1].stringValue else {
                client.respond(reqId, .failure(RPCRemoteError("cs: params must be [target, operation, data]")))
                return
            }
            agent.request(target, operation: operation, data: args.count > 2 ? args[2] : .null, client: nil) { result in
                let answer: Result<[UInt8], RPCRemoteError> = result.map { $0.serialized() }.mapError { RPCRemoteError("\($0)") }
                if loop.inLoop { rpc.respond(reqId, answer) } else { loop.executeUnchecked { rpc.respond(reqId, answer) } }
            }
            return
        }
        Task {
            let result: Result<[UInt8], RPCRemoteError>
            do {
                let value: JSONValue
                switch method {
                case Method.getContainer:
                    guard let kind = args.first?.stringValue else { throw ContainerError("gg: kind missing") }
                    let options = try GetOptions(json: args.count > 1 ? args[1] : .null)
                    let (uuid, endpoint) = try await agent.get(kind: kind, options: options)
                    value = .array([.string(uuid), .string(endpoint)])
                case Method.listContainers:
                    value = .array(agent.list(kind: args.first?.stringValue).map(\.json))
                case Method.terminate:
                    guard let uuid = args.first?.stringValue else { throw ContainerError("ct: uuid missing") }
                    await agent.terminate(uuid)
                    value = ""
                default:
                    throw ContainerError("Unknown method \(method)")
                }
                result = .success(value.serialized())
            } catch {
                result = .failure(RPCRemoteError("\(error)"))
            }
            loop.executeUnchecked { rpc.respond(reqId, result) }
        }
    }
}

/// A cancellable registration (an update listener, an event handler).
public final class Subscription: Sendable {
    private let cancelBody: @Sendable () -> Void
    init(_ cancel: @escaping @Sendable () -> Void) { cancelBody = cancel }
    public func cancel() { cancelBody() }
}

/// A mutable box for loop-thread state captured by closures.
final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

/// Resumes a continuation once, whichever path gets there first.
final class ResumeOnce<T: Sendable>: @unchecked Sendable {
    private var continuation: CheckedContinuation<T, Never>?
    private let lock = Lock()
    init(_ continuation: CheckedContinuation<T, Never>) { self.continuation = continuation }
    func resume(_ value: T) {
        let continuation = lock.withLock { () -> CheckedContinuation<T, Never>? in
            defer { self.continuation = nil }
            return self.continuation
        }
        continuation?.resume(returning: value)
    }
}

/// Splits "host:port".
public func parseAddress(_ address: String, defaultPort: Int) throws(NetworkError) -> (String, Int) {
    guard let colon = address.lastIndex(of: ":") else {
        try checkHost(address)
        return (address, defaultPort)
    }
    let host = String(address[..<colon])
    guard let port = Int(address[address.index(after: colon)...]) else {
        throw NetworkError.invalid("invalid address \(address): expected host:port")
    }
    try checkHost(host)
    try checkPort(port, allowZero: true)
    return (host, port)
}

/// An answer's JSON text decoded, or why it could not be.
func decodeAnswer(_ result: Result<[UInt8], NetworkError>, of what: String) -> Result<JSONValue, NetworkError> {
    result.flatMap { bytes in
        do throws(JSONError) { return .success(try JSONValue.parse(bytes)) } catch {
            return .failure(.invalid("answer to \(what) is not JSON: \(error.message)"))
        }
    }
}
