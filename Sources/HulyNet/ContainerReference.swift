import HulyNetCore
import HulyNetSync
import HulyNetZMQ

/// A client's hold on a container: while it is held the network keeps the container running.
///
/// It follows its container: after a coordinator restart the client acquires it again, and when
/// the container's agent dies or leaves the client gets it again on a live agent (the same uuid
/// for a uuid get; the same kind, labels and extra otherwise). Requests made meanwhile wait and
/// go again, each within its own timeout; connections reopen where the container went, with
/// their event handlers; `onMoved` tells the holder.
public final class ContainerReference: @unchecked Sendable {
    public let kind: ContainerKind
    public let options: GetOptions
    let id: ReferenceID
    private let client: NetworkClient
    private let lock = Lock()
    private var _uuid: ContainerUUID
    private var _endpoint: String
    private var released = false
    private var movedHandler: (@Sendable (ContainerUUID, String) -> Void)?
    // Loop-thread state. Weak: a connection its holder dropped is not kept alive by this.
    private var connections: [ObjectIdentifier: WeakConnection] = [:]

    init(client: NetworkClient, id: ReferenceID, uuid: ContainerUUID, endpoint: String, kind: ContainerKind,
         options: GetOptions) {
        self.client = client
        self.id = id
        _uuid = uuid
        _endpoint = endpoint
        self.kind = kind
        self.options = options
    }

    /// The container's uuid (a new one after a move, unless it was asked for by uuid).
    public var uuid: ContainerUUID { lock.withLock { _uuid } }
    /// The container's endpoint reference (JSON text).
    public var endpoint: String { lock.withLock { _endpoint } }

    /// Sets the function told when the container moved (its new uuid and endpoint), on the
    /// client's I/O thread: keep it short. Once this returns, the previous one is not called again.
    public func onMoved(_ handler: @escaping @Sendable (_ uuid: ContainerUUID, _ endpoint: String) -> Void) {
        // Moves are told on the loop thread: swapping there means none is mid-delivery.
        let swap = { [self] in lock.withLock { movedHandler = handler } }
        if client.loop.sync(swap) == nil { swap() }
    }

    /// A request through the coordinator.
    public func request(_ operation: String, _ data: JSONValue = .null, timeoutMs: Int64? = nil) async throws(NetworkError) -> JSONValue {
        try await awaitCompletion { request(operation, data, timeoutMs: timeoutMs, completion: $0) }
    }

    /// The same for callers that are not async: `completion` runs once, on the client's I/O thread.
    public func request(_ operation: String, _ data: JSONValue = .null, timeoutMs: Int64? = nil,
                        completion: @escaping @Sendable (Result<JSONValue, NetworkError>) -> Void) {
        call(connection: nil, operation: operation, data: JSONText(encoding: data), timeoutMs: timeoutMs) {
            completion(decodeAnswer($0, of: operation))
        }
    }

    /// A request whose data is JSON text, sent as it is; the answer is the text the container
    /// wrote (key order, number spelling and layout kept).
    public func request(_ operation: String, json data: JSONText, timeoutMs: Int64? = nil) async throws(NetworkError) -> JSONText {
        try await awaitCompletion { request(operation, json: data, timeoutMs: timeoutMs, completion: $0) }
    }

    /// The same for callers that are not async: `completion` runs once, on the client's I/O thread.
    public func request(_ operation: String, json data: JSONText, timeoutMs: Int64? = nil,
                        completion: @escaping @Sendable (Result<JSONText, NetworkError>) -> Void) {
        call(connection: nil, operation: operation, data: data, timeoutMs: timeoutMs) {
            completion(answerText($0, of: operation))
        }
    }

    /// Sends a request through the coordinator (`connection` nil) or over a connection;
    /// `completion` gets the answer's bytes, to be checked as text or parsed into a value (one
    /// pass over them either way).
    func call(connection: ContainerConnection?, operation: String, data: JSONText, timeoutMs: Int64?,
              completion: @escaping @Sendable (Result<[UInt8], NetworkError>) -> Void) {
        let queued = client.loop.executeUnchecked { [self, client] in
            client.startReferenceCall(self, connection: connection, operation: operation, data: data, timeoutMs: timeoutMs,
                                      completion: completion)
        }
        if !queued { completion(.failure(.closed)) }
    }

    /// A connection through the container's agent (routed) or to the container itself (direct),
    /// as its endpoint says; it receives the container's events, and follows the container.
    public func connect(timeoutMs: Int64? = nil) async throws(NetworkError) -> ContainerConnection {
        let connection = ContainerConnection(client: client, reference: self)
        let _: Bool = try await client.onLoop { [self] done in
            do throws(NetworkError) {
                try connection.open(uuid: uuid, endpoint: endpoint)
                connections[ObjectIdentifier(connection)] = WeakConnection(connection)
                done(.success(true))
            } catch {
                done(.failure(error))
            }
        }
        do {
            try await connection.connectRouted(timeoutMs: timeoutMs)
        } catch {
            await connection.close()
            throw error
        }
        return connection
    }

    func connectionClosed(_ connection: ContainerConnection) {
        connections.removeValue(forKey: ObjectIdentifier(connection))
    }

    /// Gives the container back; once nobody holds it, it stops after the unused timeout. Idempotent.
    public func release(timeoutMs: Int64? = nil) async throws(NetworkError) {
        let first = lock.withLock { () -> Bool in
            defer { released = true }
            return !released
        }
        guard first else { return }
        client.forget(self)
        _ = try await client.call(Method.releaseContainer, .object(["uuid": .string(uuid)]), timeoutMs: timeoutMs)
    }

    /// The network now runs the container here: reopen connections there, tell the holder.
    /// Loop thread.
    func moved(uuid: ContainerUUID, endpoint: String) {
        let handler = lock.withLock { () -> (@Sendable (ContainerUUID, String) -> Void)? in
            _uuid = uuid
            _endpoint = endpoint
            return movedHandler
        }
        for weak in connections.values { weak.connection?.reopen(uuid: uuid, endpoint: endpoint) }
        handler?(uuid, endpoint)
    }
}

struct WeakConnection {
    weak var connection: ContainerConnection?
    init(_ connection: ContainerConnection) { self.connection = connection }
}

/// A connection to one container: requests, and the events it sends to this client. It follows
/// its reference's container when it moves.
public final class ContainerConnection: @unchecked Sendable {
    private let client: NetworkClient
    let reference: ContainerReference
    private let lock = Lock()
    private var _uuid: ContainerUUID
    private var handler: (@Sendable (JSONText) -> Void)?
    private var buffered: [JSONText] = []
    // Loop-thread state.
    private(set) var endpointClient: EndpointClient?
    private var closed = false
    var isClosed: Bool { closed }

    init(client: NetworkClient, reference: ContainerReference) {
        self.client = client
        self.reference = reference
        _uuid = reference.uuid
    }

    public var uuid: ContainerUUID { lock.withLock { _uuid } }

    /// Sets the function that receives the container's events (on the client's I/O thread; keep
    /// it short). Events that came before a handler was set are delivered to it at once. Once
    /// this returns, the previous handler is not called again.
    public func onEvent(_ handler: @escaping @Sendable (JSONValue) -> Void) {
        onEventText { text in
            // Validated when it came in; only a limit (depth) can fail here.
            if let value = try? text.value() { handler(value) }
        }
    }

    /// The same with each event as the JSON text the container sent.
    public func onEventText(_ handler: @escaping @Sendable (JSONText) -> Void) {
        // Events are delivered on the loop thread: swapping there means none is mid-delivery.
        let swap: () -> Void = { [self] in
            let early = lock.withLock { () -> [JSONText] in
                self.handler = handler
                defer { buffered.removeAll() }
                return buffered
            }
            for event in early { handler(event) }
        }
        if client.loop.sync(swap) == nil { swap() }
    }

    /// The container's events as an async sequence (replaces any handler).
    public func events() -> AsyncStream<JSONValue> {
        AsyncStream { continuation in
            onEvent { continuation.yield($0) }
        }
    }

    /// The same as JSON texts.
    public func eventTexts() -> AsyncStream<JSONText> {
        AsyncStream { continuation in
            onEventText { continuation.yield($0) }
        }
    }

    func deliver(_ event: JSONText) {
        let handler = lock.withLock { () -> (@Sendable (JSONText) -> Void)? in
            if self.handler == nil, buffered.count < 10_000 { buffered.append(event) }
            return self.handler
        }
        handler?(event)
    }

    /// Attaches to the endpoint's connection (opening it if needed). Loop thread.
    func open(uuid: ContainerUUID, endpoint: String) throws(NetworkError) {
        let ref: EndpointRef
        do { ref = try EndpointRef(parsing: endpoint) } catch { throw NetworkError.invalid("container \(uuid): \(error.message)") }
        guard ref.kind != .noConnection else {
            throw NetworkError.invalid("container \(uuid) has no connection endpoint: use request through the network")
        }
        let endpointClient = try client.endpointClient(host: ref.host, port: ref.port, direct: ref.kind == .direct,
                                                       publicKey: ref.publicKey)
        lock.withLock { _uuid = uuid }
        self.endpointClient = endpointClient
        endpointClient.attach(self, uuid: uuid)
    }

    /// On a routed connection, `cc`: the agent sends this client the container's events.
    func connectRouted(timeoutMs: Int64? = nil) async throws(NetworkError) {
        let uuid = self.uuid
        let direct: Bool = try await client.onLoop { [self] done in
            guard let endpointClient, !closed else { done(.failure(.closed)); return }
            done(.success(endpointClient.direct))
        }
        guard !direct else { return }
        // The answer is the number of containers connected; the reference's agents always answer
        // 0, so it cannot tell a missing container apart and is not checked.
        _ = try await send(Method.connect, .object(["uuid": .string(uuid)]), timeoutMs: timeoutMs)
    }

    /// The container moved: attach where it is now and connect there. Loop thread.
    func reopen(uuid newUuid: ContainerUUID, endpoint: String) {
        guard !closed else { return }
        endpointClient?.detach(self)
        endpointClient = nil
        do {
            try open(uuid: newUuid, endpoint: endpoint)
        } catch {
            client.logger.warning("connection to container \(newUuid) cannot reopen: \(error)")
            return
        }
        if let endpointClient, !endpointClient.direct {
            endpointClient.rpc.request(method: Method.connect, params: .object(["uuid": .string(newUuid)])) { _ in }
        }
    }

    private func send(_ method: String, _ params: JSONValue, timeoutMs: Int64? = nil) async throws(NetworkError) -> JSONValue {
        let payload = JSONValue.array([.string(method), params]).serialized()
        let bytes: [UInt8] = try await client.onLoop { [self] done in
            guard let endpointClient, !closed else { done(.failure(.closed)); return }
            endpointClient.rpc.request(payload: payload, timeoutMs: timeoutMs) { done($0.mapError(NetworkError.init)) }
        }
        do { return try JSONValue.parse(bytes) } catch { throw NetworkError.invalid("answer is not JSON: \(error.message)") }
    }

    /// A request to the container over this connection.
    public func request(_ operation: String, _ data: JSONValue = .null, timeoutMs: Int64? = nil) async throws(NetworkError) -> JSONValue {
        try await awaitCompletion { request(operation, data, timeoutMs: timeoutMs, completion: $0) }
    }

    /// The same for callers that are not async: `completion` runs once, on the client's I/O thread.
    public func request(_ operation: String, _ data: JSONValue = .null, timeoutMs: Int64? = nil,
                        completion: @escaping @Sendable (Result<JSONValue, NetworkError>) -> Void) {
        reference.call(connection: self, operation: operation, data: JSONText(encoding: data), timeoutMs: timeoutMs) {
            completion(decodeAnswer($0, of: operation))
        }
    }

    /// A request whose data is JSON text, sent as it is; the answer is the text the container wrote.
    public func request(_ operation: String, json data: JSONText, timeoutMs: Int64? = nil) async throws(NetworkError) -> JSONText {
        try await awaitCompletion { request(operation, json: data, timeoutMs: timeoutMs, completion: $0) }
    }

    /// The same for callers that are not async: `completion` runs once, on the client's I/O thread.
    public func request(_ operation: String, json data: JSONText, timeoutMs: Int64? = nil,
                        completion: @escaping @Sendable (Result<JSONText, NetworkError>) -> Void) {
        reference.call(connection: self, operation: operation, data: data, timeoutMs: timeoutMs) {
            completion(answerText($0, of: operation))
        }
    }

    /// Disconnects from the container; idempotent.
    public func close() async {
        let direct: Bool? = try? await client.onLoop { [self] done in
            guard let endpointClient, !closed else { done(.failure(.closed)); return }
            done(.success(endpointClient.direct))
        }
        guard let direct else { return }
        if !direct { _ = try? await send(Method.disconnect, .object(["uuid": .string(uuid)]), timeoutMs: 2000) }
        let _: Bool? = try? await client.onLoop { [self, client] done in
            closed = true
            client.endCalls(of: self)
            endpointClient?.detach(self)
            endpointClient = nil
            reference.connectionClosed(self)
            done(.success(true))
        }
    }
}

/// One RPC connection to an agent's endpoint (routed) or a container's endpoint (direct),
/// shared by the container connections that use it. Loop-thread only.
final class EndpointClient: RPCClientDelegate {
    let rpc: RPCClient
    let direct: Bool
    private var users: [ObjectIdentifier: (connection: ContainerConnection, uuid: ContainerUUID)] = [:]

    init(rpc: RPCClient, direct: Bool) {
        self.rpc = rpc
        self.direct = direct
        rpc.delegate = self
    }

    func attach(_ connection: ContainerConnection, uuid: ContainerUUID) {
        users[ObjectIdentifier(connection)] = (connection, uuid)
    }

    func detach(_ connection: ContainerConnection) {
        users.removeValue(forKey: ObjectIdentifier(connection))
        if users.isEmpty { rpc.close() }
    }

    func close() {
        users.removeAll()
        rpc.close()
    }

    func rpcClient(_ client: RPCClient, connectedTo serverId: String, _ greeting: Greeting) {
        guard greeting.mustRestore else { return }
        // A restarted endpoint forgot our connections: connect them again, then resend.
        if !direct {
            for (_, user) in users {
                client.request(method: Method.connect, params: .object(["uuid": .string(user.uuid)])) { _ in }
            }
        }
        client.resendPending()
    }

    func rpcClient(_ client: RPCClient, event payload: [UInt8]) {
        if direct {
            guard let text = try? JSONText(validating: payload) else { return }
            for (_, user) in users { user.connection.deliver(text) }
            return
        }
        guard let (uuid, data) = PayloadText.routedEvent(payload) else { return }
        for (_, user) in users where user.uuid == uuid { user.connection.deliver(data) }
    }

    func rpcClient(_ client: RPCClient, request call: IncomingCall, reqId: [UInt8]) {
        client.respond(reqId, .failure(RemoteError("no requests are served on a container connection", code: .invalid)))
    }
}
