import HulyNetCore
import HulyNetSync
import HulyNetZMQ
import Logging
import Tracing

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
        /// CURVE: this client's key pair and the coordinator's public key (docs/SECURITY.md). The
        /// endpoints of the agents it serves are secured with the same key pair. nil: the
        /// reference's plain wire.
        public var security: ClientSecurity?

        public init(timeouts: Timeouts = .reference, aliveTimeoutSeconds: Double? = nil, getTimeoutMs: Int64 = 60_000,
                    endpointLimits: PeerLimits = PeerLimits(), logger: Logger = Logger(label: "hulynet.client"),
                    security: ClientSecurity? = nil) {
            self.timeouts = timeouts
            self.aliveTimeoutSeconds = aliveTimeoutSeconds
            self.getTimeoutMs = getTimeoutMs
            self.endpointLimits = endpointLimits
            self.logger = logger
            self.security = security
        }

        /// Throws `NetworkError.invalid` naming the first setting out of range.
        public func validate() throws(NetworkError) {
            try timeouts.check()
            if let seconds = aliveTimeoutSeconds, !(seconds > 0 && seconds <= Double(Timeouts.maxMs / 1000)) {
                throw NetworkError.invalid("alive timeout \(seconds) s is out of range (above 0 to \(Timeouts.maxMs / 1000))")
            }
            try checkRange(Int(getTimeoutMs), 1...Int(Timeouts.maxMs), "get timeout (ms)")
            try endpointLimits.validate()
            if let security, !Curve.isKey(security.serverKey) {
                throw NetworkError.invalid("the coordinator's public key is not a Z85 CURVE key")
            }
        }
    }

    public let clientId: ClientUUID
    /// The coordinators this client was given: one, or several that stand in for each other
    /// (it talks to the one serving).
    public let addresses: [NetworkAddress]
    /// The first coordinator given.
    public var host: String { addresses[0].host }
    public var port: Int { addresses[0].port }
    public let options: Options
    let loop: IOLoop
    var logger: Logger { options.logger }

    // Loop-thread state.
    private(set) var rpc: RPCClient!
    /// The client's own rules above the connection: restores, references that follow their
    /// container, claims of stateless containers.
    let machine: NetworkClientMachine
    let outputs = OutputQueue<NetworkClientOutput>()
    private var machineTimer: IOLoop.TimerID?
    private var agents: [AgentUUID: Agent] = [:]
    private var agentServers: [AgentUUID: AgentEndpointServer] = [:]
    private var listeners: [Int: @Sendable (NetworkEvent) -> Void] = [:]
    private var nextListener = 0
    private(set) var references: [ReferenceID: ContainerReference] = [:]
    private var nextReference: ReferenceID = 0
    /// Requests made through references, until answered.
    var referenceCalls: [ReferenceCallID: ReferenceCall] = [:]
    /// Connections to agent endpoints and direct container endpoints, by "host:port".
    private var endpointClients: [String: EndpointClient] = [:]
    /// Answers of requests the coordinator forwarded to this client's agents, by origin, so
    /// that a resend runs once.
    var recentAnswers = RecentAnswers<[UInt8]>()
    private var isClosed = false
    /// The process's tracer when one was bootstrapped: spans of the requests its agents run.
    private let tracer = Traces.tracer
    /// Calls waiting on the loop, to fail when the client closes.
    private var outstanding: [ObjectIdentifier: () -> Void] = [:]

    /// Connects to the coordinator at `host:port` (in the background: see `waitForConnection`).
    public convenience init(host: String, port: Int, options: Options = Options()) throws {
        try checkHost(host)
        try checkPort(port, allowZero: false)
        try self.init(addresses: [NetworkAddress(host: host, port: port)], options: options)
    }

    /// Connects to whichever of these coordinators serves (several stand in for each other
    /// under `ElectedCoordinator`): the client tries each in turn until one greets it, stays
    /// while it answers, and moves on when it stops (see `LeaderFollower`), restoring its state
    /// on the next as after a restart.
    public init(addresses: [NetworkAddress], options: Options = Options()) throws {
        guard !addresses.isEmpty else { throw NetworkError.invalid("no coordinator address given") }
        for address in addresses {
            try checkHost(address.host)
            try checkPort(address.port, allowZero: false)
        }
        try options.validate()
        clientId = makeUUID()
        self.addresses = addresses
        self.options = options
        machine = NetworkClientMachine(timeouts: options.timeouts)
        loop = IOLoop(name: "hulynet-client")
        loop.start()
        let error: ZMQError? = loop.sync { [self] () -> ZMQError? in
            do throws(ZMQError) {
                rpc = try RPCClient(loop: loop, clientId: clientId, addresses: addresses, timeouts: options.timeouts,
                                    aliveTimeoutSeconds: options.aliveTimeoutSeconds,
                                    curve: options.security,
                                    logger: options.logger)
                rpc.delegate = self
                machineTimer = loop.every(milliseconds: Int(options.timeouts.tickMs)) { [unowned self] in
                    machine.tick(now: MonotonicClock.nowMs(), into: &outputs.items)
                    runMachine()
                }
                return nil
            } catch { return error }
        } ?? ZMQError(code: 0, context: "loop stopped")
        if let error {
            loop.stop()
            throw NetworkError.invalid("cannot connect to \(addresses.map(\.description).joined(separator: ",")): \(error)")
        }
    }

    /// Connects to "host:port", or to whichever serves of "host1:port1,host2:port2,...".
    public convenience init(address: String, options: Options = Options()) throws {
        try self.init(addresses: try NetworkAddress.parseList(address), options: options)
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

    func call(_ method: String, _ params: JSONValue, timeoutMs: Int64? = nil, restores: Bool = false) async throws(NetworkError) -> JSONValue {
        try await awaitCompletion { call(method, params, timeoutMs: timeoutMs, restores: restores, completion: $0) }
    }

    /// Sends a request to the coordinator; `completion` runs once, on the client's I/O thread (or
    /// on the calling thread when the client is closed).
    func call(_ method: String, _ params: JSONValue, timeoutMs: Int64? = nil, restores: Bool = false,
              completion: @escaping (Result<JSONValue, NetworkError>) -> Void) {
        send(PayloadText.call(method, params: JSONText(encoding: params)), timeoutMs: timeoutMs, restores: restores) {
            completion(decodeAnswer($0, of: method))
        }
    }

    /// Sends a request payload to the coordinator; `completion` gets the answer's bytes.
    private func send(_ payload: [UInt8], timeoutMs: Int64?, restores: Bool = false,
                      completion: @escaping (Result<[UInt8], NetworkError>) -> Void) {
        let queued = loop.executeUnchecked { [self] in
            guard !isClosed else { completion(.failure(.closed)); return }
            rpc.request(payload: payload, timeoutMs: timeoutMs, restores: restores) { result in
                completion(result.mapError(NetworkError.init))
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
            let address = addresses.map(\.description).joined(separator: ",")
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
                let why = self.rpc.handshakeFailure.map { ": \($0)" } ?? ""
                done(.failure(.timeout("no connection to \(address) within \(timeoutMs) ms\(why)")))
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

    /// A request to a container through the coordinator. (A request through a reference follows
    /// the container when it moves; this one names a uuid and does not.)
    public func request(_ target: ContainerUUID, operation: String, data: JSONValue = .null,
                        timeoutMs: Int64? = nil) async throws(NetworkError) -> JSONValue {
        try await awaitCompletion { completion in
            send(PayloadText.containerRequest(target: target, operation: operation, data: JSONText(encoding: data)), timeoutMs: timeoutMs) {
                completion(decodeAnswer($0, of: operation))
            }
        }
    }

    /// The same with the data as JSON text, sent as it is; the answer is the text the container
    /// wrote.
    public func request(_ target: ContainerUUID, operation: String, json data: JSONText,
                        timeoutMs: Int64? = nil) async throws(NetworkError) -> JSONText {
        try await awaitCompletion { request(target, operation: operation, json: data, timeoutMs: timeoutMs, completion: $0) }
    }

    /// The same, for callers that are not async (foreign-language bindings): `completion` runs
    /// once, on the client's I/O thread; keep it short.
    public func request(_ target: ContainerUUID, operation: String, json data: JSONText, timeoutMs: Int64? = nil,
                        completion: @escaping @Sendable (Result<JSONText, NetworkError>) -> Void) {
        send(PayloadText.containerRequest(target: target, operation: operation, data: data), timeoutMs: timeoutMs) {
            completion(answerText($0, of: operation))
        }
    }

    /// Get-or-start a container; retried until an agent offering `kind` appears, for at most
    /// `timeoutMs` in all (default `options.getTimeoutMs`). The reference holds the container
    /// until released, and follows it when it moves to another agent.
    public func get(kind: ContainerKind, options getOptions: GetOptions = GetOptions(),
                    timeoutMs: Int64? = nil) async throws(NetworkError) -> ContainerReference {
        let (uuid, endpoint) = try await getContainer(kind: kind, options: getOptions, timeoutMs: timeoutMs)
        return try await onLoop { [self] done in
            nextReference += 1
            let reference = ContainerReference(client: self, id: nextReference, uuid: uuid, endpoint: endpoint,
                                               kind: kind, options: getOptions)
            references[reference.id] = reference
            machine.referenceAdded(reference.id, kind: kind, options: getOptions, uuid: uuid, endpoint: endpoint)
            done(.success(reference))
        }
    }

    func getContainer(kind: ContainerKind, options getOptions: GetOptions, timeoutMs: Int64? = nil) async throws(NetworkError) -> (ContainerUUID, String) {
        let deadline = MonotonicClock.nowMs() + (timeoutMs ?? options.getTimeoutMs)
        var delayMs: Int64 = 50
        while true {
            do throws(NetworkError) {
                let left = deadline - MonotonicClock.nowMs()
                guard left > 0 else { throw NetworkError.timeout("no container of kind \(kind) within \(timeoutMs ?? options.getTimeoutMs) ms") }
                let answer = try await call(Method.getContainer, .object(["kind": .string(kind), "request": getOptions.json]),
                                            timeoutMs: min(left, options.timeouts.requestMs))
                return try Self.getAnswer(answer)
            } catch {
                let left = deadline - MonotonicClock.nowMs()
                guard error.code == .noAgent, left > 0 else { throw error }
                // No agent offers the kind yet: retry when one registers, or after a growing delay.
                await waitForAgent(offering: kind, atMostMs: Int(min(delayMs, left)))
                delayMs = min(delayMs * 2, 1000)
            }
        }
    }

    /// `[uuid, endpoint]`, the answer to `gg`.
    static func getAnswer(_ answer: JSONValue) throws(NetworkError) -> (ContainerUUID, String) {
        guard case .array(let pair) = answer, pair.count >= 2, let uuid = pair[0].stringValue,
              let endpoint = pair[1].stringValue else {
            throw NetworkError.invalid("gg answered \(answer)")
        }
        return (uuid, endpoint)
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
            let result: Result<Set<ContainerUUID>, NetworkError> = await withCheckedContinuation { continuation in
                let queued = loop.executeUnchecked { [self] in
                    sendRegistration(agent, timeoutMs: max(1, left), restores: false) { continuation.resume(returning: $0) }
                }
                if !queued { continuation.resume(returning: .failure(.closed)) }
            }
            do throws(NetworkError) {
                _ = try result.get()
                return
            } catch {
                guard error.code == .forbidden, left > delayMs else { throw error }
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
                let curve = options.security?.keys
                let access = curve == nil ? nil : endpointAccess()
                let server = try AgentEndpointServer(loop: loop, agent: agent, host: bindHost, port: port,
                                                     timeouts: options.timeouts, limits: options.endpointLimits, logger: logger,
                                                     curve: curve, access: access)
                agentServers[agent.uuid] = server
                agent.attach(endpoint: .agent(host: advertisedHost, port: server.rpc.port, agentId: agent.uuid,
                                              publicKey: curve?.publicKey),
                             loop: loop, timeouts: options.timeouts, limits: options.endpointLimits, logger: logger, curve: curve,
                             access: access)
                done(.success(true))
            } catch {
                done(.failure(.bindFailed("\(bindHost):\(port): \(error)")))
            }
        }
        try await register(agent, timeoutMs: timeoutMs)
    }

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
            machine.agentUnregistered(agent.uuid)
            agentServers.removeValue(forKey: agent.uuid)?.close()
            done(.success(true))
        }
        await agent.terminateAll()
        if let failure { throw failure }
    }

    /// Sends `ar` with the agent's registration as it is now. The network answers the uuids of
    /// containers another agent owns: a stateless one stays here on standby, to be claimed when
    /// that agent goes; any other is stopped. Loop thread.
    private func sendRegistration(_ agent: Agent, timeoutMs: Int64? = nil, restores: Bool,
                                  completion: @escaping (Result<Set<ContainerUUID>, NetworkError>) -> Void) {
        let payload = JSONValue.array([.string(Method.registerAgent), agent.registration().json]).serialized()
        rpc.request(payload: payload, timeoutMs: timeoutMs, restores: restores) { [self] result in
            let answer = decodeAnswer(result.mapError(NetworkError.init), of: Method.registerAgent)
            guard case .success(let value) = answer else {
                if case .failure(let error) = answer { completion(.failure(error)) }
                return
            }
            let rejected = value.arrayValue?.compactMap(\.stringValue) ?? []
            agent.accepted(except: rejected)
            let standby = Set(rejected.filter(agent.isStateless))
            if agents[agent.uuid] != nil { machine.agentRegistered(agent.uuid, standby: standby) }
            let refused = rejected.filter { !standby.contains($0) }
            if !refused.isEmpty { Task { for uuid in refused { await agent.terminate(uuid) } } }
            completion(.success(standby))
        }
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
            if let machineTimer { loop.cancel(machineTimer) }
            // References and agents point back at this client: let go of them.
            for id in Array(references.keys) { machine.referenceReleased(id, into: &outputs.items) }
            runMachine()
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

    // MARK: - The machine's outputs (loop thread)

    /// Carries out what the machine asked, including what that adds.
    func runMachine() {
        outputs.drain(carryOut)
    }

    private func carryOut(_ output: NetworkClientOutput) {
        switch output {
        case .register(let agentId, let restores):
            guard let agent = agents[agentId] else {
                machine.registered(agentId, restores: restores, result: .failure(.closed), into: &outputs.items)
                return
            }
            sendRegistration(agent, restores: restores) { [self] result in
                machine.registered(agentId, restores: restores, result: result.mapError { .remote(RemoteError("\($0)")) },
                                   into: &outputs.items)
                runMachine()
            }
        case .get(let id, let kind, let getOptions, let restores, let attempt):
            var params: [String: JSONValue] = ["kind": .string(kind), "request": getOptions.json]
            if restores { params["restore"] = true }
            let payload = JSONValue.array([.string(Method.getContainer), .object(params)]).serialized()
            rpc.request(payload: payload, restores: restores) { [self] result in
                let answer = result.flatMap { bytes -> Result<(ContainerUUID, String), RPCFailure> in
                    guard let value = try? JSONValue.parse(bytes), let pair = try? Self.getAnswer(value) else {
                        return .failure(.remote(RemoteError("gg answered \(String(decoding: bytes.prefix(200), as: UTF8.self))", code: .invalid)))
                    }
                    return .success(pair)
                }
                machine.gotten(id, attempt: attempt, result: answer, now: MonotonicClock.nowMs(), into: &outputs.items)
                runMachine()
            }
        case .release(let uuid):
            rpc.request(method: Method.releaseContainer, params: .object(["uuid": .string(uuid)])) { _ in }
        case .resendPending:
            rpc.resendPending()
        case .abandonContainers(let agentId):
            guard let agent = agents[agentId] else { return }
            let abandoned = agent.abandonContainers()
            if !abandoned.isEmpty {
                logger.warning("the network dropped this client (silent too long) and gave agent \(agentId)'s \(abandoned.count) containers to others: stopping them here")
                Task { await Agent.stop(abandoned) }
            }
        case .moved(let id, let uuid, let endpoint):
            // Requests out on its connections go again where it is now (the machine sends them
            // next): drop those attempts first, so that closing the old endpoint does not fail them.
            for (callId, call) in referenceCalls where call.reference.id == id && call.connection != nil {
                call.attempt?.cancel()
                referenceCalls[callId]?.attempt = nil
            }
            references[id]?.moved(uuid: uuid, endpoint: endpoint)
        case .send(let callId, let timeoutMs):
            sendReferenceCall(callId, timeoutMs: timeoutMs)
        case .fail(let callId, let failure):
            guard let call = referenceCalls.removeValue(forKey: callId) else { return }
            call.attempt?.cancel()
            call.completion(.failure(NetworkError(failure)))
        case .wake(let delay):
            loop.after(milliseconds: delay) { [weak self] in
                guard let self, !isClosed else { return }
                machine.tick(now: MonotonicClock.nowMs(), into: &outputs.items)
                runMachine()
            }
        case .log(let level, let message):
            logger.log(level: level.swiftLogLevel, "\(message)")
        }
    }

    // MARK: - Requests through references (loop thread)

    /// Starts a request through a reference: through the coordinator, or over `connection`.
    func startReferenceCall(_ reference: ContainerReference, connection: ContainerConnection?, operation: String,
                            data: JSONText, timeoutMs: Int64?,
                            completion: @escaping (Result<[UInt8], NetworkError>) -> Void) {
        guard !isClosed else { completion(.failure(.closed)); return }
        let callId = machine.startCall(reference: reference.id, timeoutMs: timeoutMs ?? options.timeouts.requestMs,
                                       viaConnection: connection != nil, now: MonotonicClock.nowMs(), into: &outputs.items)
        referenceCalls[callId] = ReferenceCall(reference: reference, connection: connection, operation: operation,
                                               data: data, completion: completion)
        runMachine()
    }

    private func sendReferenceCall(_ callId: ReferenceCallID, timeoutMs: Int64) {
        guard let call = referenceCalls[callId] else { return }
        call.attempt?.cancel()
        let completion: RPCClient.Completion = { [self] result in
            switch result {
            case .success(let payload):
                guard let call = referenceCalls.removeValue(forKey: callId) else { return }
                machine.callSucceeded(callId)
                call.completion(.success(payload))
            case .failure(let failure):
                referenceCalls[callId]?.attempt = nil
                machine.callFailed(callId, failure, now: MonotonicClock.nowMs(), into: &outputs.items)
                runMachine()
            }
        }
        let uuid = call.reference.uuid
        if let connection = call.connection {
            guard let endpointClient = connection.endpointClient else {
                let failure: RPCFailure = connection.isClosed
                    ? .closed : .remote(RemoteError("container \(uuid) has no connection endpoint", code: .invalid))
                machine.callFailed(callId, failure, now: MonotonicClock.nowMs(), into: &outputs.items)
                return
            }
            // Direct: [operation, data] to the container itself; routed: cs through the agent.
            let message = endpointClient.direct
                ? PayloadText.directRequest(operation: call.operation, data: call.data)
                : PayloadText.containerRequest(target: uuid, operation: call.operation, data: call.data)
            let key = endpointClient.rpc.request(payload: message, timeoutMs: timeoutMs, completion: completion)
            referenceCalls[callId]?.attempt = Attempt(rpc: endpointClient.rpc, key: key)
        } else {
            let message = PayloadText.containerRequest(target: uuid, operation: call.operation, data: call.data)
            let key = rpc.request(payload: message, timeoutMs: timeoutMs, completion: completion)
            referenceCalls[callId]?.attempt = Attempt(rpc: rpc, key: key)
        }
    }

    /// A connection closes: its requests end.
    func endCalls(of connection: ContainerConnection) {
        for (callId, call) in referenceCalls where call.connection === connection {
            referenceCalls.removeValue(forKey: callId)
            call.attempt?.cancel()
            machine.callCancelled(callId)
            call.completion(.failure(.closed))
        }
    }

    // MARK: - References and connections (loop thread)

    func forget(_ reference: ContainerReference) {
        loop.executeUnchecked { [self] in
            references.removeValue(forKey: reference.id)
            machine.referenceReleased(reference.id, into: &outputs.items)
            runMachine()
        }
    }

    /// The connection to an agent's or a container's endpoint, shared by its users.
    /// The access check of this client's secured endpoints: asks the coordinator ("ca").
    func endpointAccess() -> EndpointAccess {
        EndpointAccess(ask: { [weak self] client, key, container, answer in
            guard let self else { return answer(.failure(RemoteError("closed", code: .forbidden))) }
            call(Method.checkAccess, ["client": .string(client), "key": .string(key), "uuid": .string(container)]) { result in
                switch result {
                case .success(.bool(true)): answer(.success(()))
                case .success(let other): answer(.failure(RemoteError("unexpected answer \(other)", code: .forbidden)))
                case .failure(.remote(let error)): answer(.failure(error))
                case .failure(let error): answer(.failure(RemoteError("cannot ask the coordinator: \(error)", code: .retryLater)))
                }
            }
        }, logger: logger)
    }

    /// `publicKey`: the endpoint's CURVE key, when its reference carries one.
    func endpointClient(host: String, port: Int, direct: Bool, publicKey: String? = nil) throws(NetworkError) -> EndpointClient {
        let key = "\(direct ? "d" : "r"):\(host):\(port)"
        if let existing = endpointClients[key], !existing.rpc.closed { return existing }
        do {
            var curve: CurveClientKeys?
            if let publicKey {
                guard Curve.isKey(publicKey) else { throw NetworkError.invalid("endpoint \(host):\(port): its key is not a Z85 CURVE key") }
                // A client without keys of its own still connects to a secured endpoint, encrypted,
                // with a key pair made for the purpose.
                curve = CurveClientKeys(keys: try options.security?.keys ?? CurveKeyPair.generate(), serverKey: publicKey)
            }
            let rpc = try RPCClient(loop: loop, clientId: clientId, host: host, port: port,
                                    timeouts: options.timeouts, curve: curve, logger: logger)
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

/// A request made through a reference, kept until answered so that it can go again. Loop thread.
struct ReferenceCall {
    let reference: ContainerReference
    /// Over this connection; through the coordinator when nil.
    let connection: ContainerConnection?
    let operation: String
    let data: JSONText
    let completion: (Result<[UInt8], NetworkError>) -> Void
    /// The attempt out now, to drop when the call goes again elsewhere.
    var attempt: Attempt?

    init(reference: ContainerReference, connection: ContainerConnection?, operation: String, data: JSONText,
         completion: @escaping (Result<[UInt8], NetworkError>) -> Void) {
        self.reference = reference
        self.connection = connection
        self.operation = operation
        self.data = data
        self.completion = completion
    }
}

/// One attempt of a reference's request on one RPC connection.
struct Attempt {
    let rpc: RPCClient
    let key: RPCRequestKey
    func cancel() { rpc.cancel(key) }
}

extension NetworkClient: RPCClientDelegate {
    func rpcClient(_ client: RPCClient, connectedTo serverId: String, _ greeting: Greeting) {
        machine.connected(greeting, now: MonotonicClock.nowMs(), into: &outputs.items)
        runMachine()
    }

    func rpcClient(_ client: RPCClient, event payload: [UInt8]) {
        guard let value = try? JSONValue.parse(payload), let event = try? NetworkEvent(json: value) else {
            logger.warning("malformed network event: dropped")
            return
        }
        for listener in listeners.values { listener(event) }
        machine.networkEvent(event, now: MonotonicClock.nowMs(), into: &outputs.items)
        runMachine()
    }

    func rpcClient(_ client: RPCClient, request call: IncomingCall, reqId: [UInt8]) {
        let method = call.method
        if method == Method.sendContainer {
            // Read in one pass that validates it: the data reaches the container as the bytes
            // its caller wrote.
            guard let forwarded = ForwardedRequest(in: call.payload, at: call.paramsRange) else {
                client.respond(reqId, .failure(RemoteError("cs: params must be [agent, [target, operation, data], origin]", code: .invalid)))
                return
            }
            guard let agent = agents[forwarded.agentId] else {
                client.respond(reqId, .failure(RemoteError("Agent \(forwarded.agentId) not found", code: .agentGone)))
                return
            }
            var origin: RequestOrigin?
            var trace: [String: String]?
            if let extra = forwarded.extra {
                origin = RequestOrigin(in: call.payload, at: extra)
                // Trace headers, the origin's third element, only when this process traces.
                if tracer != nil, let items = JSONScanner.elementsOfValidArray(call.payload, in: extra), items.count > 2 {
                    trace = Traces.headers(try? JSONValue.parse(call.payload[items[2]]))
                }
            }
            forwardedRequest(agent: agent, target: forwarded.target, operation: forwarded.operation, data: forwarded.data,
                             origin: origin, trace: trace, reqId: reqId)
            return
        }
        // ["<agentId>", args, extra?]
        let items = (try? call.params())?.arrayValue ?? []
        guard let agentId = items.first?.stringValue, let agent = agents[agentId] else {
            client.respond(reqId, .failure(RemoteError("Agent \(items.first?.stringValue ?? "?") not found", code: .agentGone)))
            return
        }
        // A get's trace headers.
        let extra = items.count > 2 ? items[2] : nil
        let args = items.count > 1 ? (items[1].arrayValue ?? []) : []
        let loop = self.loop
        nonisolated(unsafe) let rpc = client
        var span: (any Span)?
        if let tracer, method == Method.getContainer {
            span = Traces.start(tracer, "hulynet.agent.start", kind: .server,
                                parent: Traces.headers(extra),
                                attributes: [("hulynet.agent", agentId), ("hulynet.kind", args.first?.stringValue ?? "")])
        }
        let startSpan = span
        Task {
            let result: Result<[UInt8], RemoteError>
            do {
                let value: JSONValue
                switch method {
                case Method.getContainer:
                    guard let kind = args.first?.stringValue else { throw RemoteError("gg: kind missing", code: .invalid) }
                    let options = try GetOptions(json: args.count > 1 ? args[1] : .null)
                    let (uuid, endpoint) = try await agent.get(kind: kind, options: options)
                    value = .array([.string(uuid), .string(endpoint)])
                case Method.listContainers:
                    value = .array(agent.list(kind: args.first?.stringValue).map(\.json))
                case Method.terminate:
                    guard let uuid = args.first?.stringValue else { throw RemoteError("ct: uuid missing", code: .invalid) }
                    await agent.terminate(uuid)
                    value = ""
                default:
                    throw RemoteError("Unknown method \(method)", code: .invalid)
                }
                result = .success(value.serialized())
            } catch {
                result = .failure(RemoteError(error))
            }
            if let startSpan {
                if case .failure(let error) = result { Traces.end(startSpan, error: error) } else { Traces.end(startSpan, error: nil) }
            }
            loop.executeUnchecked { rpc.respond(reqId, result) }
        }
    }

    /// `cs` from the coordinator for one of this client's agents: straight to the container,
    /// answered at once when it answers at once. A request the coordinator says it forwarded
    /// before (a client resent it to a new coordinator) runs once: a resend joins the first run,
    /// or gets its answer again.
    private func forwardedRequest(agent: Agent, target: ContainerUUID, operation: String, data: JSONText,
                                  origin: RequestOrigin?, trace: [String: String]? = nil, reqId: [UInt8]) {
        let key = origin?.key
        if let key {
            switch recentAnswers.admit(key, waiter: reqId, now: MonotonicClock.nowMs()) {
            case .run: break
            case .joined: return
            case .answered(let result):
                rpc.respond(reqId, result)
                return
            }
        }
        let loop = self.loop
        var span: (any Span)?
        if let tracer {
            span = Traces.start(tracer, "hulynet.agent.request", kind: .server, parent: trace,
                                attributes: [("hulynet.container", target), ("hulynet.operation", operation)])
        }
        let requestSpan = span
        agent.request(target, operation: operation, data: data, client: nil) { [weak self] result in
            let answer: Result<[UInt8], RemoteError> = result.map(\.bytes).mapError { RemoteError($0) }
            if let requestSpan {
                if case .failure(let error) = answer { Traces.end(requestSpan, error: error) } else { Traces.end(requestSpan, error: nil) }
            }
            let respond = { [weak self] in
                guard let self else { return }
                rpc.respond(reqId, answer)
                guard let key else { return }
                for waiter in recentAnswers.finish(key, answer, now: MonotonicClock.nowMs()) { rpc.respond(waiter, answer) }
            }
            if loop.inLoop { respond() } else { loop.executeUnchecked(respond) }
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


/// The keys a client secures its connections with: its own key pair, and the coordinator's
/// public key (Z85).
public typealias ClientSecurity = HulyNetZMQ.CurveClientKeys

/// A CURVE key pair (see HulyNetZMQ); `CurveKeyPair.generate()` makes one, `init(secretKey:)`
/// reads one back.
public typealias CurveKeyPair = HulyNetZMQ.CurveKeyPair

/// A coordinator's host and port.
public struct NetworkAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    var endpoint: String { "tcp://\(host):\(port)" }
    public var description: String { "\(host):\(port)" }

    /// "host:port" or a list of coordinators that stand in for each other,
    /// "host1:port1,host2:port2,...", each checked (a port is required past the first form's
    /// default, none is 0, none repeats).
    public static func parseList(_ text: String, defaultPort: Int = 3737) throws(NetworkError) -> [NetworkAddress] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        guard !parts.isEmpty, parts.count <= 64 else { throw NetworkError.invalid("1 to 64 coordinator addresses expected, got \(parts.count)") }
        var addresses: [NetworkAddress] = []
        for part in parts {
            let (host, port) = try parseAddress(part.trimmingSpaces, defaultPort: defaultPort)
            guard port > 0 else { throw NetworkError.invalid("invalid address \(part): port 0") }
            let address = NetworkAddress(host: host, port: port)
            guard !addresses.contains(address) else { throw NetworkError.invalid("address \(address) is listed twice") }
            addresses.append(address)
        }
        return addresses
    }
}

extension StringProtocol {
    /// Without the spaces it begins and ends with.
    var trimmingSpaces: String {
        var text = Substring(self)
        while text.first == " " { text = text.dropFirst() }
        while text.last == " " { text = text.dropLast() }
        return String(text)
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

/// Awaits a call that reports its outcome once to a completion (the async face of the
/// completion-taking request functions).
func awaitCompletion<T: Sendable>(_ start: (@escaping @Sendable (Result<T, NetworkError>) -> Void) -> Void) async throws(NetworkError) -> T {
    let result: Result<T, NetworkError> = await withCheckedContinuation { continuation in
        start { continuation.resume(returning: $0) }
    }
    return try result.get()
}

/// An answer's JSON text decoded, or why it could not be.
func decodeAnswer(_ result: Result<[UInt8], NetworkError>, of what: String) -> Result<JSONValue, NetworkError> {
    result.flatMap { bytes in
        do throws(JSONError) { return .success(try JSONValue.parse(bytes)) } catch {
            return .failure(.invalid("answer to \(what) is not JSON: \(error.message)"))
        }
    }
}

/// An answer as the text its container wrote, validated where it enters (it comes from a peer).
func answerText(_ result: Result<[UInt8], NetworkError>, of what: String) -> Result<JSONText, NetworkError> {
    result.flatMap { bytes in
        do throws(JSONError) { return .success(try JSONText(validating: bytes)) } catch {
            return .failure(.invalid("answer to \(what) is not JSON: \(error.message)"))
        }
    }
}
