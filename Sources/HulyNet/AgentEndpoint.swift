import HulyNetCore
import HulyNetSync
import HulyNetZMQ
import Logging

/// The reply for a request to a container: answers the RPC request, at once when it comes on the
/// loop thread (a container that answered at once), else through the loop.
private func replier(_ rpc: RPCServer, _ token: RequestToken, loop: IOLoop) -> @Sendable (Result<JSONText, any Error>) -> Void {
    nonisolated(unsafe) let rpc = rpc
    return { result in
        let send = {
            switch result {
            case .success(let text): rpc.replyRaw(token, text.bytes)
            case .failure(let error): rpc.fail(token, RemoteError(error))
            }
        }
        if loop.inLoop { send() } else { loop.executeUnchecked(send) }
    }
}

/// An agent's own endpoint for routed container connections: `cc` connect, `cd` disconnect,
/// `cs` request; a container's events reach connected clients as `[containerUuid, data]`.
/// Confined to its loop thread.
final class AgentEndpointServer: RPCServerDelegate {
    let rpc: RPCServer
    let agent: Agent
    let loop: IOLoop
    /// The containers each client connected to, to disconnect them when the client goes.
    private var connections: [ClientUUID: Set<ContainerUUID>] = [:]
    /// On a secured endpoint: who may use which container (asked of the coordinator).
    private let access: EndpointAccess?

    /// `access`: with `curve`, the check of each client's first use of a container.
    init(loop: IOLoop, agent: Agent, host: String, port: Int, timeouts: Timeouts, limits: PeerLimits,
         logger: Logger, curve: CurveKeyPair? = nil, access: EndpointAccess? = nil) throws {
        self.loop = loop
        self.agent = agent
        self.access = curve == nil ? nil : access
        if curve != nil, access != nil { try EndpointZAP.ensureRunning(logger: logger) }
        rpc = try RPCServer(loop: loop, host: host, port: port, timeouts: timeouts, limits: limits, logger: logger,
                            curve: curve, zapDomain: curve != nil && access != nil ? ZAPHandler.domain : nil)
        rpc.delegate = self
    }

    /// Runs `body` once `client` may use `container` (at once on an open endpoint), or fails the
    /// request with why not.
    private func whenAllowed(_ client: ClientUUID, _ container: ContainerUUID, token: RequestToken,
                             _ body: @escaping () -> Void) {
        guard let access else { return body() }
        access.check(client: client, key: rpc.principal(of: client), container: container) { [weak self] result in
            switch result {
            case .success: body()
            case .failure(let error): self?.rpc.fail(token, error)
            }
        }
    }

    func close() {
        for (client, uuids) in connections {
            for uuid in uuids { agent.container(uuid)?.disconnect(client: client) }
        }
        connections.removeAll()
        rpc.close()
    }

    func rpcServer(_ server: RPCServer, clientConnected client: ClientUUID) {}

    func rpcServer(_ server: RPCServer, clientGone client: ClientUUID, timedOut: Bool) {
        access?.forget(client: client)
        for uuid in connections.removeValue(forKey: client) ?? [] {
            agent.container(uuid)?.disconnect(client: client)
        }
    }

    func rpcServer(_ server: RPCServer, ping client: ClientUUID) {}

    func rpcServer(_ server: RPCServer, callAnswered id: CallID, result: Result<[UInt8], RemoteError>) {}

    func rpcServer(_ server: RPCServer, request: IncomingRequest) {
        let client = request.client
        if request.method == Method.sendContainer {
            // The data goes to the container as the bytes the client wrote.
            guard let (target, operation, data) = PayloadText.containerRequest(in: request.payload, at: request.paramsRange) else {
                rpc.fail(request.token, RemoteError("cs: params must be [target, operation, data]", code: .invalid))
                return
            }
            whenAllowed(client, target, token: request.token) { [self] in
                agent.request(target, operation: operation, data: data, client: client,
                              reply: replier(rpc, request.token, loop: loop))
            }
            return
        }
        let params: JSONValue
        do { params = try request.params() } catch {
            rpc.fail(request.token, RemoteError("invalid params: \(error.message)", code: .invalid))
            return
        }
        switch request.method {
        case Method.connect:
            let uuids: [JSONValue]
            switch params.member("uuid") {
            case .array(let list)?: uuids = list
            case let one?: uuids = [one]
            case nil: uuids = []
            }
            let known = uuids.compactMap { $0.stringValue }.filter { agent.container($0) != nil }
            guard access != nil else {
                connect(client, to: known, answering: request.token)
                return
            }
            // Each container checked first; the answer once all are (a refusal fails the whole call).
            var left = known.count
            var failed = false
            guard left > 0 else { return rpc.reply(request.token, 0) }
            for uuid in known {
                access?.check(client: client, key: rpc.principal(of: client), container: uuid) { [weak self] result in
                    guard let self, !failed else { return }
                    if case .failure(let error) = result {
                        failed = true
                        return rpc.fail(request.token, error)
                    }
                    left -= 1
                    if left == 0 { connect(client, to: known, answering: request.token) }
                }
            }
        case Method.disconnect:
            guard let uuid = params.member("uuid")?.stringValue, let container = agent.container(uuid) else {
                rpc.fail(request.token, RemoteError("Container \(params.member("uuid")?.stringValue ?? "?") not found", code: .containerNotFound))
                return
            }
            container.disconnect(client: client)
            connections[client]?.remove(uuid)
            rpc.reply(request.token, "ok")
        default:
            rpc.fail(request.token, RemoteError("Unknown method \(request.method)", code: .invalid))
        }
    }

    /// Connects the client to each container still running; returns how many.
    /// Connects `client` to the containers and answers `token` with how many, once every one has
    /// taken the client in: a container whose connect runs elsewhere (DeferredConnectContainer, a
    /// C callback) is waited for without holding this thread.
    private func connect(_ client: ClientUUID, to uuids: [ContainerUUID], answering token: RequestToken) {
        var connected = 0
        var deferred: [(DeferredConnectContainer, EventSink)] = []
        for uuid in uuids {
            guard let container = agent.container(uuid) else { continue }
            let sink = eventSink(client: client, container: uuid)
            if let slow = container as? DeferredConnectContainer {
                deferred.append((slow, sink))
            } else {
                container.connect(client: client, events: sink)
            }
            connections[client, default: []].insert(uuid)
            connected += 1
        }
        guard !deferred.isEmpty else {
            rpc.reply(token, .number(Double(connected)))
            return
        }
        let reply = replier(rpc, token, loop: loop)
        let answer = JSONText(encoding: .number(Double(connected)))
        let left = Box(deferred.count)
        let lock = Lock()
        for (container, sink) in deferred {
            container.connect(client: client, events: sink) {
                let last = lock.withLock { () -> Bool in
                    left.value -= 1
                    return left.value == 0
                }
                if last { reply(.success(answer)) }
            }
        }
    }

    private func eventSink(client: ClientUUID, container uuid: ContainerUUID) -> EventSink {
        let loop = self.loop
        nonisolated(unsafe) let rpc = self.rpc
        return EventSink { data in
            let payload = PayloadText.routedEvent(container: uuid, data: data)
            loop.executeUnchecked { rpc.event(client, payload: payload) }
        }
    }
}

/// A container's own endpoint, for direct connections: requests are `[operation, data]`, events
/// are the bare data; a client is connected from its hello until it closes or goes silent.
final class DirectContainerServer: RPCServerDelegate, @unchecked Sendable {
    let rpc: RPCServer
    let container: any Container
    let uuid: ContainerUUID
    let loop: IOLoop
    var port: Int { rpc.port }
    /// On a secured endpoint: whether each client may use the container (asked of the coordinator).
    private let access: EndpointAccess?

    private init(loop: IOLoop, container: any Container, uuid: ContainerUUID, port: Int, timeouts: Timeouts,
                 limits: PeerLimits, logger: Logger, curve: CurveKeyPair?, access: EndpointAccess?) throws {
        self.loop = loop
        self.container = container
        self.uuid = uuid
        self.access = curve == nil ? nil : access
        if curve != nil, access != nil { try EndpointZAP.ensureRunning(logger: logger) }
        rpc = try RPCServer(loop: loop, host: "*", port: port, timeouts: timeouts, limits: limits, logger: logger,
                            curve: curve, zapDomain: curve != nil && access != nil ? ZAPHandler.domain : nil)
        rpc.delegate = self
    }

    static func start(loop: IOLoop, container: any Container, uuid: ContainerUUID, port: Int, timeouts: Timeouts,
                      limits: PeerLimits, logger: Logger, curve: CurveKeyPair? = nil,
                      access: EndpointAccess? = nil) async throws -> DirectContainerServer {
        let result: Result<DirectContainerServer, any Error>? = loop.sync {
            Result {
                try DirectContainerServer(loop: loop, container: container, uuid: uuid, port: port, timeouts: timeouts,
                                          limits: limits, logger: logger, curve: curve, access: access)
            }
        }
        guard let result else { throw NetworkError.closed }
        return try result.get()
    }

    func stop() {
        loop.executeUnchecked { [self] in rpc.close() }
    }

    func rpcServer(_ server: RPCServer, clientConnected client: ClientUUID) {
        let loop = self.loop
        nonisolated(unsafe) let rpc = self.rpc
        let connect = { [container] in
            container.connect(client: client, events: EventSink { data in
                loop.executeUnchecked { rpc.event(client, payload: data.bytes) }
            })
        }
        guard let access else { return connect() }
        // Its events only once the coordinator says it may use the container.
        access.check(client: client, key: rpc.principal(of: client), container: uuid) { result in
            if case .success = result, rpc.isConnected(client) { connect() }
        }
    }

    func rpcServer(_ server: RPCServer, clientGone client: ClientUUID, timedOut: Bool) {
        access?.forget(client: client)
        container.disconnect(client: client)
    }

    func rpcServer(_ server: RPCServer, ping client: ClientUUID) {}

    func rpcServer(_ server: RPCServer, callAnswered id: CallID, result: Result<[UInt8], RemoteError>) {}

    func rpcServer(_ server: RPCServer, request: IncomingRequest) {
        // [operation, data]: the data as the client wrote it (validated whole by the server).
        let data = PayloadText.text(request.payload, request.paramsRange)
        let dispatch = { [self] in
            dispatchRequest(to: container, operation: request.method, data: data, client: request.client,
                            reply: replier(rpc, request.token, loop: loop))
        }
        guard let access else { return dispatch() }
        access.check(client: request.client, key: rpc.principal(of: request.client), container: uuid) { [rpc] result in
            switch result {
            case .success: dispatch()
            case .failure(let error): rpc.fail(request.token, error)
            }
        }
    }
}
