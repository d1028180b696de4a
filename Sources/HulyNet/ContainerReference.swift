import HulyNetCore
import HulyNetZMQ

/// A client's hold on a container: while it is held the network keeps the container running.
/// After a coordinator restart the client acquires it again and this object keeps working.
public final class ContainerReference: @unchecked Sendable {
    public let kind: ContainerKind
    public let options: GetOptions
    private let client: NetworkClient
    private let lock = Lock()
    private var _uuid: ContainerUUID
    private var _endpoint: String
    private var released = false
    private var connections: [ContainerConnection] = []

    init(client: NetworkClient, uuid: ContainerUUID, endpoint: String, kind: ContainerKind, options: GetOptions) {
        self.client = client
        _uuid = uuid
        _endpoint = endpoint
        self.kind = kind
        self.options = options
    }

    public var uuid: ContainerUUID { lock.withLock { _uuid } }
    /// The container's endpoint reference (JSON text).
    public var endpoint: String { lock.withLock { _endpoint } }

    /// A request through the coordinator.
    public func request(_ operation: String, _ data: JSONValue = .null, timeoutMs: Int64? = nil) async throws(NetworkError) -> JSONValue {
        try await client.request(uuid, operation: operation, data: data, timeoutMs: timeoutMs)
    }

    /// The same for callers that are not async: `completion` runs once, on the client's I/O thread.
    public func request(_ operation: String, _ data: JSONValue = .null, timeoutMs: Int64? = nil,
                        completion: @escaping @Sendable (Result<JSONValue, NetworkError>) -> Void) {
        client.request(uuid, operation: operation, data: data, timeoutMs: timeoutMs, completion: completion)
    }

    /// A connection through the container's agent (routed) or to the container itself (direct),
    /// as its endpoint says; it receives the container's events.
    public func connect(timeoutMs: Int64? = nil) async throws(NetworkError) -> ContainerConnection {
        let connection = ContainerConnection(client: client, uuid: uuid)
        try await connection.open(endpoint: endpoint, timeoutMs: timeoutMs)
        lock.withLock { connections.append(connection) }
        return connection
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

    /// After a new coordinator: get the same container again and follow its endpoint.
    func reacquire() async {
        var again = options
        again.uuid = uuid
        guard let (newUuid, newEndpoint) = try? await client.getContainer(kind: kind, options: again, restoring: true) else { return }
        let (changed, conns) = lock.withLock { () -> (Bool, [ContainerConnection]) in
            let changed = newEndpoint != _endpoint || newUuid != _uuid
            _uuid = newUuid
            _endpoint = newEndpoint
            return (changed, connections)
        }
        if changed {
            for connection in conns { try? await connection.reopen(uuid: newUuid, endpoint: newEndpoint) }
        }
    }
}

/// A connection to one container: requests, and the events it sends to this client.
public final class ContainerConnection: @unchecked Sendable {
    private let client: NetworkClient
    private let lock = Lock()
    private var _uuid: ContainerUUID
    private var handler: (@Sendable (JSONValue) -> Void)?
    private var buffered: [JSONValue] = []
    // Loop-thread state.
    private var endpointClient: EndpointClient?
    private var closed = false

    init(client: NetworkClient, uuid: ContainerUUID) {
        self.client = client
        _uuid = uuid
    }

    public var uuid: ContainerUUID { lock.withLock { _uuid } }

    /// Sets the function that receives the container's events (on the client's I/O thread; keep
    /// it short). Events that came before a handler was set are delivered to it at once. Once
    /// this returns, the previous handler is not called again.
    public func onEvent(_ handler: @escaping @Sendable (JSONValue) -> Void) {
        // Events are delivered on the loop thread: swapping there means none is mid-delivery.
        let swap: () -> Void = { [self] in
            let early = lock.withLock { () -> [JSONValue] in
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

    func deliver(_ event: JSONValue) {
        let handler = lock.withLock { () -> (@Sendable (JSONValue) -> Void)? in
            if self.handler == nil, buffered.count < 10_000 { buffered.append(event) }
            return self.handler
        }
        handler?(event)
    }

    func open(endpoint: String, timeoutMs: Int64? = nil) async throws(NetworkError) {
        let ref: EndpointRef
        do { ref = try EndpointRef(parsing: endpoint) } catch { throw NetworkError.invalid("container \(uuid): \(error.message)") }
        guard ref.kind != .noConnection else {
            throw NetworkError.invalid("container \(uuid) has no connection endpoint: use request through the network")
        }
        let uuid = self.uuid
        let direct = ref.kind == .direct
        let _: Bool = try await client.onLoop { [self, client] done in
            do throws(NetworkError) {
                let endpointClient = try client.endpointClient(host: ref.host, port: ref.port, direct: direct)
                self.endpointClient = endpointClient
                endpointClient.attach(self, uuid: uuid)
                done(.success(true))
            } catch {
                done(.failure(error))
            }
        }
        if !direct {
            // The answer is the number of containers connected; the reference's agents always
            // answer 0, so it cannot tell a missing container apart and is not checked.
            _ = try await send(Method.connect, .object(["uuid": .string(uuid)]), timeoutMs: timeoutMs)
        }
    }

    func reopen(uuid newUuid: ContainerUUID, endpoint: String) async throws(NetworkError) {
        let _: Bool = try await client.onLoop { [self] done in
            endpointClient?.detach(self)
            endpointClient = nil
            done(.success(true))
        }
        lock.withLock { _uuid = newUuid }
        try await open(endpoint: endpoint)
    }

    private func send(_ method: String, _ params: JSONValue, timeoutMs: Int64? = nil) async throws(NetworkError) -> JSONValue {
        let payload = JSONValue.array([.string(method), params]).serialized()
        let bytes: [UInt8] = try await client.onLoop { [self] done in
            guard let endpointClient, !closed else { done(.failure(.closed)); return }
            endpointClient.rpc.request(payload: payload, timeoutMs: timeoutMs, completion: done)
        }
        do { return try JSONValue.parse(bytes) } catch { throw NetworkError.invalid("answer is not JSON: \(error.message)") }
    }

    /// A request to the container over this connection.
    public func request(_ operation: String, _ data: JSONValue = .null, timeoutMs: Int64? = nil) async throws(NetworkError) -> JSONValue {
        let result: Result<JSONValue, NetworkError> = await withCheckedContinuation { continuation in
            request(operation, data, timeoutMs: timeoutMs) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// The same for callers that are not async: `completion` runs once, on the client's I/O thread.
    public func request(_ operation: String, _ data: JSONValue = .null, timeoutMs: Int64? = nil,
                        completion: @escaping @Sendable (Result<JSONValue, NetworkError>) -> Void) {
        let uuid = self.uuid
        let queued = client.loop.executeUnchecked { [self] in
            guard let endpointClient, !closed else { completion(.failure(.closed)); return }
            // Direct: [operation, data] to the container itself; routed: cs through the agent.
            let message: JSONValue = endpointClient.direct
                ? .array([.string(operation), data])
                : .array([.string(Method.sendContainer), .array([.string(uuid), .string(operation), data])])
            endpointClient.rpc.request(payload: message.serialized(), timeoutMs: timeoutMs) { result in
                completion(decodeAnswer(result, of: operation))
            }
        }
        if !queued { completion(.failure(.closed)) }
    }

    /// Disconnects from the container; idempotent.
    public func close() async {
        let direct: Bool? = try? await client.onLoop { [self] done in
            guard let endpointClient, !closed else { done(.failure(.closed)); return }
            done(.success(endpointClient.direct))
        }
        guard let direct else { return }
        if !direct { _ = try? await send(Method.disconnect, .object(["uuid": .string(uuid)]), timeoutMs: 2000) }
        let _: Bool? = try? await client.onLoop { [self] done in
            closed = true
            endpointClient?.detach(self)
            endpointClient = nil
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

    func rpcClient(_ client: RPCClient, connectedTo serverId: String, isFirst: Bool, restarted: Bool) -> Bool {
        guard restarted, !direct else { return false }
        // A restarted agent endpoint forgot our connections: connect them again.
        for (_, user) in users {
            rpc.request(method: Method.connect, params: .object(["uuid": .string(user.uuid)])) { _ in }
        }
        return false
    }

    func rpcClient(_ client: RPCClient, event payload: [UInt8]) {
        guard let value = try? JSONValue.parse(payload) else { return }
        if direct {
            for (_, user) in users { user.connection.deliver(value) }
            return
        }
        guard case .array(let pair) = value, pair.count >= 1, let uuid = pair[0].stringValue else { return }
        let data = pair.count > 1 ? pair[1] : .null
        for (_, user) in users where user.uuid == uuid { user.connection.deliver(data) }
    }

    func rpcClient(_ client: RPCClient, request method: String, params: JSONValue, reqId: [UInt8]) {
        client.respond(reqId, .failure(RPCRemoteError("no requests are served on a container connection")))
    }
}
