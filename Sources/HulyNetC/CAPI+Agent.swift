import CHulyNet
import HulyNet
import HulyNetCore
import HulyNetSync
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Container kinds implemented in C

/// One entry of a C container-kind table, with its strings copied.
struct CKind: @unchecked Sendable {
    let name: String
    let kindUser: UnsafeMutableRawPointer?
    let start: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, UnsafePointer<CChar>?,
                               UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32
    let request: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, UnsafePointer<CChar>?,
                                 UnsafePointer<CChar>?) -> Void
    let connect: (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?) -> Void)?
    let disconnect: (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?) -> Void)?
    let terminate: (@convention(c) (UnsafeMutableRawPointer?) -> Void)?
    /// kind_user's destroy notification (0.2).
    let destroy: hulynet_destroy_fn?
    /// HULYNET_REQUESTS_INLINE: request callbacks run on the I/O thread that received them.
    let runsInline = KindFlag()
    /// hulynet_agent_set_direct: containers started from now on get an endpoint of their own.
    let isDirect = KindFlag()
}

/// A flag of a kind set after the kind table was copied (hulynet_agent_set_request_mode,
/// hulynet_agent_set_direct).
final class KindFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isOn: Bool { flag.load(ordering: .relaxed) }
    func set(_ value: Bool) { flag.store(value, ordering: .relaxed) }
}

/// A container whose behaviour is a C kind's callbacks. Its handle (`hulynet_container *`) lives
/// from before `start` until `terminate` has returned.
final class CContainer: CallbackContainer, DeferredConnectContainer, @unchecked Sendable {
    let kind: CKind
    let uuid: ContainerUUID
    let uuidText: OwnedCString
    private let lock = Lock()
    private var user: UnsafeMutableRawPointer?
    private var sinks: [ClientUUID: EventSink] = [:]
    private var terminated = false
    private(set) var handle: OpaquePointer?
    /// While `start` runs: the message hulynet_container_start_error gave, if any.
    private var starting = true
    private var startMessage: String?

    init(kind: CKind, uuid: ContainerUUID, user: UnsafeMutableRawPointer? = nil) {
        self.kind = kind
        self.uuid = uuid
        uuidText = OwnedCString(uuid)
        self.user = user
    }

    func register() -> OpaquePointer {
        let handle = Handles.make(self)
        self.handle = handle
        return handle
    }

    func setUser(_ user: UnsafeMutableRawPointer?) { lock.withLock { self.user = user } }

    /// Records start's error message; false once start has returned.
    func setStartError(_ message: String) -> Bool {
        lock.withLock {
            guard starting else { return false }
            startMessage = message
            return true
        }
    }

    var startError: String? { lock.withLock { startMessage } }
    func startFinished() { lock.withLock { starting = false } }
    private var currentUser: UnsafeMutableRawPointer? { lock.withLock { user } }

    /// Connect, disconnect and terminate callbacks, in order, one at a time, on the pool.
    private let lane = CallbackLane()

    /// Calls the C request callback on a callback thread (CallbackPool), so that a slow callback
    /// delays only itself, unless the kind asked for inline requests; the C code answers through
    /// hulynet_request_reply / _fail, inside the callback or later from any thread.
    func request(operation: String, data: JSONText, client: ClientUUID?,
                 reply: @escaping @Sendable (Result<JSONText, any Error>) -> Void) {
        if kind.runsInline.isOn {
            invoke(operation: operation, data: data, client: client, reply: reply)
        } else {
            CallbackPool.shared.submit { self.invoke(operation: operation, data: data, client: client, reply: reply) }
        }
    }

    private var isTerminated: Bool { lock.withLock { terminated } }

    private func invoke(operation: String, data: JSONText, client: ClientUUID?,
                        reply: @escaping @Sendable (Result<JSONText, any Error>) -> Void) {
        // The header promises no request callback starts once terminate has.
        if isTerminated {
            reply(.failure(ContainerError("container \(uuid) is stopping")))
            return
        }
        let user = currentUser
        let kind = self.kind
        let requestHandle = Handles.make(CRequest(reply))
        operation.withCString { op in
            data.withCString { json in
                if let client {
                    client.withCString { id in CallbackThread.run { kind.request(user, requestHandle, op, json, id) } }
                } else {
                    CallbackThread.run { kind.request(user, requestHandle, op, json, nil) }
                }
            }
        }
    }

    func connect(client: ClientUUID, events: EventSink) {
        connect(client: client, events: events) {}
    }

    /// The sink is there at once (emit reaches the client from now on); the callback follows on
    /// the container's lane, and the client's connect is answered after it (`done`).
    func connect(client: ClientUUID, events: EventSink, done: @escaping @Sendable () -> Void) {
        lock.withLock { sinks[client] = events }
        guard let fn = kind.connect else {
            done()
            return
        }
        lane.submit { [self] in
            defer { done() }
            guard !isTerminated else { return }
            let user = currentUser
            client.withCString { id in CallbackThread.run { fn(user, id) } }
        }
    }

    func disconnect(client: ClientUUID) {
        _ = lock.withLock { sinks.removeValue(forKey: client) }
        guard let fn = kind.disconnect else { return }
        lane.submit { [self] in
            guard !isTerminated else { return }
            let user = currentUser
            client.withCString { id in CallbackThread.run { fn(user, id) } }
        }
    }

    func terminate() async {
        let first = lock.withLock { () -> Bool in
            defer { terminated = true; sinks.removeAll() }
            return !terminated
        }
        guard first else { return }
        if let fn = kind.terminate {
            let user = currentUser
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                lane.submit {
                    CallbackThread.run { fn(user) }
                    continuation.resume()
                }
            }
        }
        _ = Handles.take(handle, CContainer.self)
    }

    func emit(to client: ClientUUID?, _ data: JSONText) -> Int {
        let targets: [EventSink] = lock.withLock {
            if let client { return sinks[client].map { [$0] } ?? [] }
            return Array(sinks.values)
        }
        for sink in targets { sink.send(data) }
        return targets.count
    }
}

/// A request waiting for the C container's answer.
final class CRequest: @unchecked Sendable {
    private let lock = Lock()
    private var reply: (@Sendable (Result<JSONText, any Error>) -> Void)?

    init(_ reply: @escaping @Sendable (Result<JSONText, any Error>) -> Void) {
        self.reply = reply
    }

    func finish(_ result: Result<JSONText, any Error>) {
        let reply = lock.withLock { () -> (@Sendable (Result<JSONText, any Error>) -> Void)? in
            defer { self.reply = nil }
            return self.reply
        }
        reply?(result)
    }
}

@_cdecl("hulynet_request_reply")
public func hulynet_request_reply(_ handle: OpaquePointer?, _ json: UnsafePointer<CChar>?) -> Int32 {
    cCall {
        _ = try Handles.get(handle, CRequest.self, "request")
        let value: JSONText
        do throws(CFailure) {
            value = try cJSONText(json, "json")
        } catch {
            // An answer that is not JSON still ends the request, as an error, so nobody waits forever.
            Handles.take(handle, CRequest.self)?.finish(.failure(ContainerError("the container answered invalid JSON: \(error.message)")))
            throw error
        }
        Handles.take(handle, CRequest.self)?.finish(.success(value))
    }
}

@_cdecl("hulynet_request_fail")
public func hulynet_request_fail(_ handle: OpaquePointer?, _ message: UnsafePointer<CChar>?) -> Int32 {
    cCall {
        _ = try Handles.get(handle, CRequest.self, "request")
        let text: String?
        do throws(CFailure) {
            text = try optionalCString(message, "message")
        } catch {
            // Still end the request, so nobody waits forever, and tell the caller.
            Handles.take(handle, CRequest.self)?.finish(.failure(ContainerError("request failed (its message was not UTF-8)")))
            throw error
        }
        Handles.take(handle, CRequest.self)?.finish(.failure(ContainerError(text ?? "request failed")))
    }
}

@_cdecl("hulynet_request_fail_status")
public func hulynet_request_fail_status(_ handle: OpaquePointer?, _ status: Int32, _ message: UnsafePointer<CChar>?) -> Int32 {
    cCall {
        _ = try Handles.get(handle, CRequest.self, "request")
        let code: NetworkErrorCode?
        switch status {
        case HULYNET_EREMOTE: code = nil
        case HULYNET_EAGAIN: code = .retryLater
        case HULYNET_ELIMIT: code = .limit
        default:
            Handles.take(handle, CRequest.self)?.finish(.failure(ContainerError("request failed (with status \(status))")))
            throw CFailure.invalid("status \(status) is none of HULYNET_EREMOTE, HULYNET_EAGAIN, HULYNET_ELIMIT")
        }
        let text: String?
        do throws(CFailure) {
            text = try optionalCString(message, "message")
        } catch {
            Handles.take(handle, CRequest.self)?.finish(.failure(RemoteError("request failed (its message was not UTF-8)", code: code)))
            throw error
        }
        // The code travels in the error's JSON, so the caller's library decides by it, not by text.
        Handles.take(handle, CRequest.self)?.finish(.failure(RemoteError(text ?? "request failed", code: code)))
    }
}

@_cdecl("hulynet_container_uuid")
public func hulynet_container_uuid(_ handle: OpaquePointer?) -> UnsafePointer<CChar>? {
    (try? Handles.get(handle, CContainer.self, "container"))?.uuidText.constPointer
}

@_cdecl("hulynet_container_start_error")
public func hulynet_container_start_error(_ handle: OpaquePointer?, _ message: UnsafePointer<CChar>?) -> Int32 {
    cCall {
        let container = try Handles.get(handle, CContainer.self, "container")
        let text = try cString(message, "message")
        guard container.setStartError(text) else {
            throw CFailure.invalid("hulynet_container_start_error outside the container's start")
        }
    }
}

@_cdecl("hulynet_container_emit")
public func hulynet_container_emit(_ handle: OpaquePointer?, _ clientId: UnsafePointer<CChar>?, _ json: UnsafePointer<CChar>?,
                                   _ delivered: UnsafeMutablePointer<Int32>?) -> Int32 {
    cCall {
        delivered?.pointee = 0
        let container = try Handles.get(handle, CContainer.self, "container")
        let client = try optionalCString(clientId, "client_id")
        let data = try cJSONText(json, "json", nullable: false)
        let count = container.emit(to: client, data)
        delivered?.pointee = Int32(count)
        if let client, count == 0 {
            throw CFailure(status: HULYNET_ENOTFOUND, message: "client \(client) is not connected to container \(container.uuid)")
        }
    }
}

// MARK: - Agents

/// The kinds' kind_user pointers while starts use them: their destroy notifications come once
/// the agent is destroyed and no start is under way (a start may still run on a callback thread
/// when the agent's containers have all terminated).
final class KindUsers: @unchecked Sendable {
    private let lock = Lock()
    private var running = 0
    private var closed = false
    private var notify: (() -> Void)?

    /// A start begins; false once the agent is destroyed.
    func begin() -> Bool {
        lock.withLock {
            if closed { return false }
            running += 1
            return true
        }
    }

    func end() {
        let last = lock.withLock { () -> (() -> Void)? in
            running -= 1
            guard closed, running == 0 else { return nil }
            defer { notify = nil }
            return notify
        }
        last?()
    }

    /// The agent is destroyed: `destroyed` runs now, or when the last start under way ends.
    func close(_ destroyed: @escaping () -> Void) {
        let now = lock.withLock { () -> Bool in
            closed = true
            if running == 0 { return true }
            notify = destroyed
            return false
        }
        if now { destroyed() }
    }
}

/// The host an agent's endpoint is advertised as, set when it is served: its direct containers'
/// endpoints are advertised on the same host.
final class AdvertisedHost: @unchecked Sendable {
    private let lock = Lock()
    private var host: String?
    var value: String? { lock.withLock { host } }
    func set(_ value: String?) { lock.withLock { host = value } }
}

final class CAgent: @unchecked Sendable {
    let agent: Agent
    let uuidText: OwnedCString
    let kinds: [String: CKind]
    let advertised: AdvertisedHost
    let kindUsers: KindUsers
    private let lock = Lock()
    private var servedBy: CClient?

    init(agent: Agent, kinds: [String: CKind], advertised: AdvertisedHost, kindUsers: KindUsers) {
        self.agent = agent
        self.kinds = kinds
        self.advertised = advertised
        self.kindUsers = kindUsers
        uuidText = OwnedCString(agent.uuid)
    }

    private var statelessContainers: [ContainerUUID: CContainer] = [:]

    func addStateless(_ container: CContainer) { lock.withLock { statelessContainers[container.uuid] = container } }
    func stateless(_ uuid: ContainerUUID) -> CContainer? { lock.withLock { statelessContainers[uuid] } }

    /// Gives the agent back after a serve or register that failed.
    func unclaim() { lock.withLock { servedBy = nil } }

    /// Claims the agent for one client.
    func claim(by client: CClient) throws(CFailure) {
        let claimed = lock.withLock { () -> Bool in
            if servedBy != nil { return false }
            servedBy = client
            return true
        }
        if !claimed { throw .invalid("the agent is served by a client already") }
    }

    var client: CClient? { lock.withLock { servedBy } }
}

/// Entry `index` of a C kind table, in the 0.2 layout whichever the caller used: the table's
/// stride is its entries' size (the first entry's `size`, or the 0.1 layout's seven pointers).
func cKindEntry(_ table: UnsafePointer<hulynet_container_kind>, _ index: Int) throws(CFailure) -> hulynet_container_kind {
    let base = UnsafeRawPointer(table)
    let known = MemoryLayout<hulynet_container_kind>.size
    let first = try StructLayout.of(base, known: known, "kinds[0]")
    var entry = hulynet_container_kind()
    switch first {
    case .v0_1:
        // kind, kind_user, start, request, connect, disconnect, terminate: seven pointers.
        let stride = 7 * MemoryLayout<UnsafeRawPointer>.size
        let raw = base + index * stride
        // The same fields one word later in the 0.2 layout (after `size`).
        withUnsafeMutableBytes(of: &entry) { bytes in
            UnsafeMutableRawBufferPointer(rebasing: bytes[8..<(8 + stride)])
                .copyMemory(from: UnsafeRawBufferPointer(start: raw, count: stride))
        }
    case .sized(let size):
        let raw = base + index * size
        if index > 0 {
            guard case .sized(size) = try StructLayout.of(raw, known: known, "kinds[\(index)]") else {
                throw .invalid("kinds[\(index)].size differs from kinds[0].size")
            }
        }
        withUnsafeMutableBytes(of: &entry) { bytes in
            bytes.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: min(size, known)))
        }
    }
    return entry
}

@_cdecl("hulynet_agent_create")
public func hulynet_agent_create(_ uuid: UnsafePointer<CChar>?, _ table: UnsafePointer<hulynet_container_kind>?, _ count: Int,
                                 _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    cCall {
        guard let out else { throw CFailure.invalid("out is NULL") }
        out.pointee = nil
        let uuid = try optionalCString(uuid, "uuid") ?? makeUUID()
        guard !uuid.isEmpty else { throw CFailure.invalid("uuid is empty") }
        guard count >= 0, count <= 10_000 else { throw CFailure.invalid("count \(count) is out of range") }
        guard count == 0 || table != nil else { throw CFailure.invalid("kinds is NULL") }
        var kinds: [String: CKind] = [:]
        for index in 0..<count {
            let entry = try cKindEntry(table!, index)
            if entry.size == 0, entry.kind == nil {
                // Most likely a 0.2 struct filled without its INIT macro, read in the 0.1 layout.
                throw CFailure.invalid("kinds[\(index)].kind is NULL (initialise hulynet_container_kind with HULYNET_CONTAINER_KIND_INIT)")
            }
            let name = try cString(entry.kind, "kinds[\(index)].kind")
            guard !name.isEmpty else { throw CFailure.invalid("kinds[\(index)].kind is empty") }
            guard kinds[name] == nil else { throw CFailure.invalid("kind \(name) appears twice") }
            guard let start = entry.start else { throw CFailure.invalid("kinds[\(index)].start is NULL") }
            guard let request = entry.request else { throw CFailure.invalid("kinds[\(index)].request is NULL") }
            kinds[name] = CKind(name: name, kindUser: entry.kind_user, start: start, request: request,
                                connect: entry.connect, disconnect: entry.disconnect, terminate: entry.terminate,
                                destroy: entry.kind_user_destroy)
        }
        var factories: [ContainerKind: ContainerFactory] = [:]
        let advertised = AdvertisedHost()
        let kindUsers = KindUsers()
        for (name, kind) in kinds {
            factories[name] = { options in
                guard kindUsers.begin() else { throw RemoteError("the agent is closing", code: .agentGone) }
                let uuid = options.uuid ?? makeUUID()
                let container = CContainer(kind: kind, uuid: uuid)
                let handle = container.register()
                let optionsText = options.json.serializedString()
                nonisolated(unsafe) let containerHandle = handle // a number (see Handles), not memory
                // On a callback thread: a slow start must not hold Swift's cooperative pool.
                let (status, user) = await withCheckedContinuation { (continuation: CheckedContinuation<(Int32, UserPointer), Never>) in
                    CallbackPool.shared.submit {
                        var user: UnsafeMutableRawPointer?
                        let status = uuid.withCString { id in
                            optionsText.withCString { json in
                                CallbackThread.run { kind.start(kind.kindUser, containerHandle, id, json, &user) }
                            }
                        }
                        kindUsers.end()
                        continuation.resume(returning: (status, UserPointer(raw: user)))
                    }
                }
                guard status == HULYNET_OK else {
                    _ = Handles.take(handle, CContainer.self)
                    // The kind's own message (hulynet_container_start_error) and, for EAGAIN and
                    // ELIMIT, the code the client's get then receives.
                    let message = container.startError ?? "container kind \(name) failed to start \(uuid): status \(status)"
                    let code: NetworkErrorCode? = status == HULYNET_EAGAIN ? .retryLater : status == HULYNET_ELIMIT ? .limit : nil
                    throw RemoteError(message, code: code)
                }
                container.startFinished()
                container.setUser(user.raw)
                // A direct container without a served agent fails in the agent, with a message.
                let connection: StartedContainer.ConnectionMode =
                    kind.isDirect.isOn ? .direct(host: advertised.value ?? "127.0.0.1", port: 0) : .routed
                return StartedContainer(uuid: uuid, container: container, connection: connection)
            }
        }
        out.pointee = Handles.make(CAgent(agent: Agent(uuid: uuid, factories: factories), kinds: kinds, advertised: advertised,
                                              kindUsers: kindUsers))
    }
}

@_cdecl("hulynet_agent_uuid")
public func hulynet_agent_uuid(_ handle: OpaquePointer?) -> UnsafePointer<CChar>? {
    (try? Handles.get(handle, CAgent.self, "agent"))?.uuidText.constPointer
}

@_cdecl("hulynet_agent_add_stateless")
public func hulynet_agent_add_stateless(_ handle: OpaquePointer?, _ uuid: UnsafePointer<CChar>?, _ kind: UnsafePointer<CChar>?,
                                        _ user: UnsafeMutableRawPointer?) -> Int32 {
    cCall {
        let agent = try Handles.get(handle, CAgent.self, "agent")
        let uuid = try cString(uuid, "uuid")
        let kindName = try cString(kind, "kind")
        guard let kind = agent.kinds[kindName] else {
            throw CFailure(status: HULYNET_ENOTFOUND, message: "the agent has no container kind \(kindName)")
        }
        let container = CContainer(kind: kind, uuid: uuid, user: user)
        container.startFinished() // it has no start
        _ = container.register()
        agent.addStateless(container)
        agent.agent.addStatelessContainer(uuid: uuid, kind: kindName, container: container)
    }
}

@_cdecl("hulynet_agent_set_request_mode")
public func hulynet_agent_set_request_mode(_ handle: OpaquePointer?, _ kind: UnsafePointer<CChar>?, _ mode: Int32) -> Int32 {
    cCall {
        let agent = try Handles.get(handle, CAgent.self, "agent")
        let kindName = try cString(kind, "kind")
        guard mode == HULYNET_REQUESTS_ON_CALLBACK_THREAD || mode == HULYNET_REQUESTS_INLINE else {
            throw CFailure.invalid("mode \(mode) is neither HULYNET_REQUESTS_ON_CALLBACK_THREAD nor HULYNET_REQUESTS_INLINE")
        }
        guard let found = agent.kinds[kindName] else {
            throw CFailure(status: HULYNET_ENOTFOUND, message: "the agent has no container kind \(kindName)")
        }
        found.runsInline.set(mode == HULYNET_REQUESTS_INLINE)
    }
}

@_cdecl("hulynet_agent_set_direct")
public func hulynet_agent_set_direct(_ handle: OpaquePointer?, _ kind: UnsafePointer<CChar>?, _ direct: Int32) -> Int32 {
    cCall {
        let agent = try Handles.get(handle, CAgent.self, "agent")
        let kindName = try cString(kind, "kind")
        guard direct == 0 || direct == 1 else { throw CFailure.invalid("direct \(direct) is neither 0 nor 1") }
        guard let found = agent.kinds[kindName] else {
            throw CFailure(status: HULYNET_ENOTFOUND, message: "the agent has no container kind \(kindName)")
        }
        found.isDirect.set(direct == 1)
    }
}

@_cdecl("hulynet_agent_stateless_container")
public func hulynet_agent_stateless_container(_ handle: OpaquePointer?, _ uuid: UnsafePointer<CChar>?) -> OpaquePointer? {
    var result: OpaquePointer?
    _ = cCall {
        let agent = try Handles.get(handle, CAgent.self, "agent")
        let uuid = try cString(uuid, "uuid")
        guard let container = agent.stateless(uuid) else {
            throw CFailure(status: HULYNET_ENOTFOUND, message: "the agent has no stateless container \(uuid)")
        }
        result = container.handle
    }
    return result
}

@_cdecl("hulynet_client_serve_agent")
public func hulynet_client_serve_agent(_ clientHandle: OpaquePointer?, _ agentHandle: OpaquePointer?,
                                       _ advertisedHost: UnsafePointer<CChar>?, _ port: Int32, _ timeoutMs: Int64) -> Int32 {
    cCall {
        let client = try liveClient(clientHandle)
        let agent = try Handles.get(agentHandle, CAgent.self, "agent")
        let host = advertisedHost == nil ? "127.0.0.1" : try cHost(advertisedHost, "advertised_host")
        let port = try cPort(port)
        let ms = try timeout(timeoutMs, default: client.requestMs) // checked before the agent is claimed
        try agent.claim(by: client)
        agent.advertised.set(host)
        do throws(CFailure) {
            try blocking { try await client.client.serve(agent.agent, advertisedHost: host, port: port, timeoutMs: ms) }
        } catch {
            agent.unclaim()
            throw error
        }
    }
}

@_cdecl("hulynet_client_register_agent")
public func hulynet_client_register_agent(_ clientHandle: OpaquePointer?, _ agentHandle: OpaquePointer?, _ timeoutMs: Int64) -> Int32 {
    cCall {
        let client = try liveClient(clientHandle)
        let agent = try Handles.get(agentHandle, CAgent.self, "agent")
        let ms = try timeout(timeoutMs, default: client.requestMs) // checked before the agent is claimed
        try agent.claim(by: client)
        do throws(CFailure) {
            try blocking { try await client.client.register(agent.agent, timeoutMs: ms) }
        } catch {
            agent.unclaim()
            throw error
        }
    }
}

@_cdecl("hulynet_agent_destroy")
public func hulynet_agent_destroy(_ handle: OpaquePointer?) {
    guard let agent = Handles.take(handle, CAgent.self) else { return }
    let network = agent.client.flatMap { client in (try? client.check()).map { client.client } }
    // Its containers stop whether or not the network can be told (briefly) that it is gone.
    let body: @Sendable () async -> Void = {
        if let network { try? await network.unregister(agent.agent, timeoutMs: 2000) }
        await agent.agent.terminateAll()
        // Every container has terminated; once no start is under way either, kind_user is free.
        let kinds = Array(agent.kinds.values)
        agent.kindUsers.close {
            for kind in kinds {
                if let destroy = kind.destroy {
                    let user = UserPointer(raw: kind.kindUser)
                    CallbackThread.run { destroy(user.raw) }
                }
            }
        }
    }
    if CallbackThread.isInside {
        Task { await body() }
    } else {
        try? blocking { await body() }
    }
}
