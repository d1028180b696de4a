import HulyNetCore
import HulyNetZMQ
import Logging

/// The reply for a request to a container: answers the RPC request, at once when it comes on the
/// loop thread (a container that answered at once), else through the loop.
private func replier(_ rpc: RPCServer, _ token: RequestToken, loop: IOLoop) -> @Sendable (Result<JSONValue, any Error>) -> Void {
    nonisolated(unsafe) let rpc = rpc
    return { result in
        let send = {
            switch result {
            case .success(let value): rpc.reply(token, value)
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

    init(loop: IOLoop, agent: Agent, host: String, port: Int, timeouts: Timeouts, limits: PeerLimits,
         logger: Logger, curve: CurveKeyPair? = nil) throws {
        self.loop = loop
        self.agent = agent
        rpc = try RPCServer(loop: loop, host: host, port: port, timeouts: timeouts, limits: limits, logger: logger,
                            curve: curve)
        rpc.delegate = self
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
        for uuid in connections.removeValue(forKey: client) ?? [] {
            agent.container(uuid)?.disconnect(client: client)
        }
    }

    func rpcServer(_ server: RPCServer, ping client: ClientUUID) {}

    func rpcServer(_ server: RPCServer, callAnswered id: CallID, result: Result<[UInt8], RemoteError>) {}

    func rpcServer(_ server: RPCServer, request: IncomingRequest) {
        let params: JSONValue
        do { params = try request.params() } catch {
            rpc.fail(request.token, RemoteError("invalid params: \(error.message)", code: .invalid))
            return
        }
        let client = request.client
        switch request.method {
        case Method.connect:
            let uuids: [JSONValue]
            switch params.member("uuid") {
            case .array(let list)?: uuids = list
            case let one?: uuids = [one]
            case nil: uuids = []
            }
            var connected = 0
            for case .string(let uuid) in uuids {
                guard let container = agent.container(uuid) else { continue }
                let sink = eventSink(client: client, container: uuid)
                container.connect(client: client, events: sink)
                connections[client, default: []].insert(uuid)
                connected += 1
            }
            rpc.reply(request.token, .number(Double(connected)))
        case Method.disconnect:
            guard let uuid = params.member("uuid")?.stringValue, let container = agent.container(uuid) else {
                rpc.fail(request.token, RemoteError("Container \(params.member("uuid")?.stringValue ?? "?") not found", code: .containerNotFound))
                return
            }
            container.disconnect(client: client)
            connections[client]?.remove(uuid)
            rpc.reply(request.token, "ok")
        case Method.sendContainer:
            guard case .array(let items) = params, items.count >= 2, let target = items[0].stringValue,
                  let operation = items[1].stringValue else {
                rpc.fail(request.token, RemoteError("cs: params must be [target, operation, data]", code: .invalid))
                return
            }
            agent.request(target, operation: operation, data: items.count > 2 ? items[2] : .null, client: client,
                          reply: replier(rpc, request.token, loop: loop))
        default:
            rpc.fail(request.token, RemoteError("Unknown method \(request.method)", code: .invalid))
        }
    }

    private func eventSink(client: ClientUUID, container uuid: ContainerUUID) -> EventSink {
        let loop = self.loop
        nonisolated(unsafe) let rpc = self.rpc
        return EventSink { data in
            let payload = JSONValue.array([.string(uuid), data]).serialized()
            loop.executeUnchecked { rpc.event(client, payload: payload) }
        }
    }
}

/// A container's own endpoint, for direct connections: requests are `[operation, data]`, events
/// are the bare data; a client is connected from its hello until it closes or goes silent.
final class DirectContainerServer: RPCServerDelegate, @unchecked Sendable {
    let rpc: RPCServer
    let container: any Container
    let loop: IOLoop
    var port: Int { rpc.port }

    private init(loop: IOLoop, container: any Container, port: Int, timeouts: Timeouts, limits: PeerLimits,
                 logger: Logger, curve: CurveKeyPair?) throws {
        self.loop = loop
        self.container = container
        rpc = try RPCServer(loop: loop, host: "*", port: port, timeouts: timeouts, limits: limits, logger: logger,
                            curve: curve)
        rpc.delegate = self
    }

    static func start(loop: IOLoop, container: any Container, port: Int, timeouts: Timeouts, limits: PeerLimits,
                      logger: Logger, curve: CurveKeyPair? = nil) async throws -> DirectContainerServer {
        let result: Result<DirectContainerServer, any Error>? = loop.sync {
            Result {
                try DirectContainerServer(loop: loop, container: container, port: port, timeouts: timeouts, limits: limits,
                                          logger: logger, curve: curve)
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
        container.connect(client: client, events: EventSink { data in
            let payload = data.serialized()
            loop.executeUnchecked { rpc.event(client, payload: payload) }
        })
    }

    func rpcServer(_ server: RPCServer, clientGone client: ClientUUID, timedOut: Bool) {
        container.disconnect(client: client)
    }

    func rpcServer(_ server: RPCServer, ping client: ClientUUID) {}

    func rpcServer(_ server: RPCServer, callAnswered id: CallID, result: Result<[UInt8], RemoteError>) {}

    func rpcServer(_ server: RPCServer, request: IncomingRequest) {
        let data: JSONValue
        do { data = try request.params() } catch {
            rpc.fail(request.token, RemoteError("invalid params: \(error.message)", code: .invalid))
            return
        }
        dispatchRequest(to: container, operation: request.method, data: data, client: request.client,
                        reply: replier(rpc, request.token, loop: loop))
    }
}
