import CHulyNet
import HulyNet
import HulyNetCore
import HulyNetSync

// MARK: - Client

final class CClient: @unchecked Sendable {
    let client: NetworkClient
    let id: OwnedCString
    private let lock = Lock()
    private var listeners: [UInt64: (Subscription, CallbackSlot<EventHandler>)] = [:]
    /// The network events of all its listeners, in order, one at a time.
    let listenerLane = CallbackLane()
    private var nextListener: UInt64 = 1
    private(set) var closed = false

    init(_ client: NetworkClient) {
        self.client = client
        id = OwnedCString(client.clientId)
    }

    var requestMs: Int64 { client.options.timeouts.requestMs }

    func addListener(_ subscription: Subscription, _ slot: CallbackSlot<EventHandler>) -> UInt64 {
        lock.withLock {
            let id = nextListener
            nextListener += 1
            listeners[id] = (subscription, slot)
            return id
        }
    }

    /// Once this returns the listener's function is not called again (see CallbackSlot.set).
    func removeListener(_ id: UInt64) -> Bool {
        guard let (subscription, slot) = lock.withLock({ listeners.removeValue(forKey: id) }) else { return false }
        subscription.cancel()
        slot.set(nil)
        return true
    }

    func check() throws(CFailure) {
        if lock.withLock({ closed }) { throw .closed }
    }

    /// Marks the client closed: calls on it and on what it made answer HULYNET_ECLOSED.
    func markClosed() {
        let subscriptions = lock.withLock { () -> [(Subscription, CallbackSlot<EventHandler>)] in
            closed = true
            defer { listeners.removeAll() }
            return Array(listeners.values)
        }
        for (subscription, slot) in subscriptions {
            subscription.cancel()
            slot.set(nil)
        }
    }
}

@_cdecl("hulynet_client_connect")
public func hulynet_client_connect(_ host: UnsafePointer<CChar>?, _ port: Int32, _ timeouts: UnsafePointer<hulynet_timeouts>?,
                                   _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    cCall {
        guard let out else { throw CFailure.invalid("out is NULL") }
        out.pointee = nil
        let host = try cHost(host, "host")
        let options = NetworkClient.Options(timeouts: try cTimeouts(timeouts), logger: CLogSink.logger("hulynet.client"))
        let port = try cPort(port, allowZero: false)
        let client: NetworkClient
        do { client = try NetworkClient(host: host, port: port, options: options) } catch {
            throw CFailure(status: HULYNET_ECONNECT, message: "\(error)")
        }
        out.pointee = Handles.make(CClient(client))
    }
}

@_cdecl("hulynet_client_connect_with")
public func hulynet_client_connect_with(_ network: UnsafePointer<CChar>?, _ timeouts: UnsafePointer<hulynet_timeouts>?,
                                        _ security: UnsafePointer<hulynet_security>?,
                                        _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    cCall {
        guard let out else { throw CFailure.invalid("out is NULL") }
        out.pointee = nil
        let text = try cString(network, "network")
        let addresses: [NetworkAddress]
        do { addresses = try NetworkAddress.parseList(text) } catch { throw CFailure(error) }
        var options = NetworkClient.Options(timeouts: try cTimeouts(timeouts), logger: CLogSink.logger("hulynet.client"))
        if let security = try cSecurity(security) {
            guard let serverKey = security.serverKey else { throw CFailure.invalid("security->server_key is NULL: a client needs the coordinator's key") }
            let keys: CurveKeyPair
            do { keys = try security.secretKey ?? CurveKeyPair.generate() } catch { throw CFailure(status: HULYNET_EINTERNAL, message: "\(error)") }
            options.security = ClientSecurity(keys: keys, serverKey: serverKey)
        }
        let client: NetworkClient
        do { client = try NetworkClient(addresses: addresses, options: options) } catch {
            throw CFailure(status: HULYNET_ECONNECT, message: "\(error)")
        }
        out.pointee = Handles.make(CClient(client))
    }
}

func liveClient(_ handle: OpaquePointer?) throws(CFailure) -> CClient {
    let client = try Handles.get(handle, CClient.self, "client")
    try client.check()
    return client
}

@_cdecl("hulynet_client_wait")
public func hulynet_client_wait(_ handle: OpaquePointer?, _ timeoutMs: Int64) -> Int32 {
    cCall {
        let client = try liveClient(handle)
        let ms = try timeout(timeoutMs, default: client.requestMs)
        try blocking { try await client.client.waitForConnection(timeoutMs: ms) }
    }
}

@_cdecl("hulynet_client_id")
public func hulynet_client_id(_ handle: OpaquePointer?) -> UnsafePointer<CChar>? {
    (try? Handles.get(handle, CClient.self, "client"))?.id.constPointer
}

@_cdecl("hulynet_client_agents")
public func hulynet_client_agents(_ handle: OpaquePointer?, _ timeoutMs: Int64,
                                  _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    cCall {
        out?.pointee = nil
        let client = try liveClient(handle)
        let ms = try timeout(timeoutMs, default: client.requestMs)
        let agents = try blocking { try await client.client.agentList(timeoutMs: ms) }
        try setOut(out, .array(agents.map(\.json)))
    }
}

@_cdecl("hulynet_client_kinds")
public func hulynet_client_kinds(_ handle: OpaquePointer?, _ timeoutMs: Int64,
                                 _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    cCall {
        out?.pointee = nil
        let client = try liveClient(handle)
        let ms = try timeout(timeoutMs, default: client.requestMs)
        let kinds = try blocking { try await client.client.kinds(timeoutMs: ms) }
        try setOut(out, .array(kinds.map { .string($0) }))
    }
}

@_cdecl("hulynet_client_list")
public func hulynet_client_list(_ handle: OpaquePointer?, _ kind: UnsafePointer<CChar>?, _ timeoutMs: Int64,
                                _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    cCall {
        out?.pointee = nil
        let client = try liveClient(handle)
        let kind = try optionalCString(kind, "kind")
        let ms = try timeout(timeoutMs, default: client.requestMs)
        let records = try blocking { try await client.client.list(kind: kind, timeoutMs: ms) }
        try setOut(out, .array(records.map(\.json)))
    }
}

func cGetOptions(_ pointer: UnsafePointer<CChar>?) throws(CFailure) -> GetOptions {
    let json = try cJSON(pointer, "options_json")
    do { return try GetOptions(json: json) } catch { throw .invalid("options_json: \(error.message)") }
}

@_cdecl("hulynet_client_get")
public func hulynet_client_get(_ handle: OpaquePointer?, _ kind: UnsafePointer<CChar>?, _ optionsJSON: UnsafePointer<CChar>?,
                               _ timeoutMs: Int64, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    cCall {
        guard let out else { throw CFailure.invalid("out is NULL") }
        out.pointee = nil
        let client = try liveClient(handle)
        let kind = try cString(kind, "kind")
        let options = try cGetOptions(optionsJSON)
        let ms = try timeout(timeoutMs, default: client.requestMs)
        let reference = try blocking { try await client.client.get(kind: kind, options: options, timeoutMs: ms) }
        out.pointee = makeReference(reference, client: client)
    }
}

func makeReference(_ reference: ContainerReference, client: CClient) -> OpaquePointer {
    Handles.make(CReference(reference, client: client))
}

@_cdecl("hulynet_client_get_async")
public func hulynet_client_get_async(_ handle: OpaquePointer?, _ kind: UnsafePointer<CChar>?, _ optionsJSON: UnsafePointer<CChar>?,
                                     _ timeoutMs: Int64, _ done: hulynet_reference_fn?, _ user: UnsafeMutableRawPointer?) -> Int32 {
    cCall {
        let client = try liveClient(handle)
        let kind = try cString(kind, "kind")
        let options = try cGetOptions(optionsJSON)
        guard let done else { throw CFailure.invalid("done is NULL") }
        let user = UserPointer(raw: user)
        let ms = try timeout(timeoutMs, default: client.requestMs)
        Task {
            do {
                let reference = try await client.client.get(kind: kind, options: options, timeoutMs: ms)
                nonisolated(unsafe) let handle = makeReference(reference, client: client) // a number, not memory
                CallbackPool.shared.submit { CallbackThread.run { done(user.raw, HULYNET_OK, handle, nil) } }
            } catch {
                let failure = CFailure(error)
                CallbackPool.shared.submit {
                    failure.message.withCString { text in CallbackThread.run { done(user.raw, failure.status, nil, text) } }
                }
            }
        }
    }
}

/// Completes a C result callback with a JSON value or a failure.
/// The completion of an asynchronous request: calls C's `done(user, status, json)` once. Throws
/// EINVAL for a NULL `done`.
func resultCompletion(_ done: hulynet_result_fn?, _ user: UnsafeMutableRawPointer?) throws(CFailure)
    -> @Sendable (Result<JSONText, NetworkError>) -> Void {
    guard let done else { throw CFailure.invalid("done is NULL") }
    let user = UserPointer(raw: user)
    return { result in complete(done, user, result.mapError { $0 }) }
}

/// Calls `done` on a callback thread (CallbackPool), never on the I/O thread that completed it.
func complete(_ done: hulynet_result_fn, _ user: UserPointer, _ result: Result<JSONText, any Error>) {
    switch result {
    case .success(let answer):
        CallbackPool.shared.submit {
            answer.withCString { pointer in CallbackThread.run { done(user.raw, HULYNET_OK, pointer) } }
        }
    case .failure(let error):
        // The message, not JSON: the callback's text is JSON only with HULYNET_OK.
        let failure = CFailure(error)
        CallbackPool.shared.submit {
            failure.message.withCString { pointer in CallbackThread.run { done(user.raw, failure.status, pointer) } }
        }
    }
}

@_cdecl("hulynet_client_request")
public func hulynet_client_request(_ handle: OpaquePointer?, _ uuid: UnsafePointer<CChar>?, _ operation: UnsafePointer<CChar>?,
                                   _ dataJSON: UnsafePointer<CChar>?, _ timeoutMs: Int64,
                                   _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    cCall {
        out?.pointee = nil
        let client = try liveClient(handle)
        let uuid = try cString(uuid, "uuid")
        let operation = try cString(operation, "operation")
        let data = try cJSONText(dataJSON, "data_json")
        guard out != nil else { throw CFailure.invalid("json_out is NULL") }
        let ms = try timeout(timeoutMs, default: client.requestMs)
        let answer = try blockingCompletion { done in
            client.client.request(uuid, operation: operation, json: data, timeoutMs: ms, completion: done)
        }
        try setOut(out, answer)
    }
}

@_cdecl("hulynet_client_request_async")
public func hulynet_client_request_async(_ handle: OpaquePointer?, _ uuid: UnsafePointer<CChar>?, _ operation: UnsafePointer<CChar>?,
                                         _ dataJSON: UnsafePointer<CChar>?, _ timeoutMs: Int64,
                                         _ done: hulynet_result_fn?, _ user: UnsafeMutableRawPointer?) -> Int32 {
    cCall {
        let client = try liveClient(handle)
        let uuid = try cString(uuid, "uuid")
        let operation = try cString(operation, "operation")
        let data = try cJSONText(dataJSON, "data_json")
        let completion = try resultCompletion(done, user)
        let ms = try timeout(timeoutMs, default: client.requestMs)
        client.client.request(uuid, operation: operation, json: data, timeoutMs: ms, completion: completion)
    }
}

@_cdecl("hulynet_client_add_listener")
public func hulynet_client_add_listener(_ handle: OpaquePointer?, _ fn: hulynet_event_fn?, _ user: UnsafeMutableRawPointer?,
                                        _ subscription: UnsafeMutablePointer<UInt64>?) -> Int32 {
    hulynet_client_add_listener_v2(handle, fn, user, nil, subscription)
}

@_cdecl("hulynet_client_add_listener_v2")
public func hulynet_client_add_listener_v2(_ handle: OpaquePointer?, _ fn: hulynet_event_fn?, _ user: UnsafeMutableRawPointer?,
                                           _ destroy: hulynet_destroy_fn?,
                                           _ subscription: UnsafeMutablePointer<UInt64>?) -> Int32 {
    cCall {
        let client = try liveClient(handle)
        guard let fn else { throw CFailure.invalid("fn is NULL") }
        guard let subscription else { throw CFailure.invalid("subscription is NULL") }
        let slot = CallbackSlot(EventHandler(fn: fn, user: UserPointer(raw: user), destroy: destroy))
        let lane = client.listenerLane
        let token = client.client.onUpdate { event in
            let text = JSONText(encoding: event.json)
            slot.deliver(on: lane) { $0.call(text) }
        }
        subscription.pointee = client.addListener(token, slot)
    }
}

@_cdecl("hulynet_client_remove_listener")
public func hulynet_client_remove_listener(_ handle: OpaquePointer?, _ subscription: UInt64) -> Int32 {
    cCall {
        let client = try liveClient(handle)
        guard client.removeListener(subscription) else {
            throw CFailure(status: HULYNET_ENOTFOUND, message: "no listener \(subscription)")
        }
    }
}

@_cdecl("hulynet_client_destroy")
public func hulynet_client_destroy(_ handle: OpaquePointer?) {
    guard let client = Handles.take(handle, CClient.self) else { return }
    // Its references and connections stay valid handles answering HULYNET_ECLOSED until destroyed.
    client.markClosed()
    let network = client.client
    if CallbackThread.isInside {
        // Called from a callback on the client's own thread: close without waiting for it.
        Task { await network.close() }
    } else {
        try? blocking { await network.close() }
    }
}

// MARK: - References

final class CReference: @unchecked Sendable {
    let reference: ContainerReference
    let client: CClient
    private let lock = Lock()
    /// Every text handed out, kept until the handle is destroyed (the header promises that).
    private var uuids: [OwnedCString]
    private var endpoints: [OwnedCString]
    /// The C moved handler's calls, in order, on the callback threads.
    let moved = CallbackSlot<MovedHandler>()
    private let movedLane = CallbackLane()
    private var movedInstalled = false

    init(_ reference: ContainerReference, client: CClient) {
        self.reference = reference
        self.client = client
        uuids = [OwnedCString(reference.uuid)]
        endpoints = [OwnedCString(reference.endpoint)]
    }

    private static func current(_ texts: inout [OwnedCString], _ value: String) -> UnsafePointer<CChar>? {
        if let last = texts.last, last.text == value { return last.constPointer }
        texts.append(OwnedCString(value))
        return texts.last?.constPointer
    }

    var uuid: UnsafePointer<CChar>? {
        let value = reference.uuid
        return lock.withLock { Self.current(&uuids, value) }
    }

    var endpoint: UnsafePointer<CChar>? {
        let value = reference.endpoint
        return lock.withLock { Self.current(&endpoints, value) }
    }

    func setMoved(_ handler: MovedHandler?) {
        moved.set(handler)
        let install = lock.withLock { () -> Bool in
            defer { movedInstalled = true }
            return !movedInstalled
        }
        guard install else { return }
        let (slot, lane) = (moved, movedLane)
        reference.onMoved { uuid, endpoint in
            slot.deliver(on: lane) { $0.call(uuid, endpoint) }
        }
    }

    func drop(release: Bool) {
        // Once destroy returns, the caller's moved function must not be called again (the
        // release below completes later, and a move may finish meanwhile).
        reference.onMoved { _, _ in }
        moved.set(nil)
        guard release, (try? client.check()) != nil else { return }
        let reference = self.reference
        Task { try? await reference.release() }
    }
}

func liveReference(_ handle: OpaquePointer?) throws(CFailure) -> CReference {
    let reference = try Handles.get(handle, CReference.self, "reference")
    try reference.client.check()
    return reference
}

@_cdecl("hulynet_reference_uuid")
public func hulynet_reference_uuid(_ handle: OpaquePointer?) -> UnsafePointer<CChar>? {
    (try? Handles.get(handle, CReference.self, "reference"))?.uuid
}

@_cdecl("hulynet_reference_endpoint")
public func hulynet_reference_endpoint(_ handle: OpaquePointer?) -> UnsafePointer<CChar>? {
    (try? Handles.get(handle, CReference.self, "reference"))?.endpoint
}

@_cdecl("hulynet_reference_set_moved_handler")
public func hulynet_reference_set_moved_handler(_ handle: OpaquePointer?, _ fn: hulynet_moved_fn?,
                                                _ user: UnsafeMutableRawPointer?) -> Int32 {
    hulynet_reference_set_moved_handler_v2(handle, fn, user, nil)
}

@_cdecl("hulynet_reference_set_moved_handler_v2")
public func hulynet_reference_set_moved_handler_v2(_ handle: OpaquePointer?, _ fn: hulynet_moved_fn?,
                                                   _ user: UnsafeMutableRawPointer?, _ destroy: hulynet_destroy_fn?) -> Int32 {
    cCall {
        let reference = try liveReference(handle)
        reference.setMoved(fn.map { MovedHandler(fn: $0, user: UserPointer(raw: user), destroy: destroy) })
    }
}

@_cdecl("hulynet_reference_request")
public func hulynet_reference_request(_ handle: OpaquePointer?, _ operation: UnsafePointer<CChar>?, _ dataJSON: UnsafePointer<CChar>?,
                                      _ timeoutMs: Int64, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    cCall {
        out?.pointee = nil
        let reference = try liveReference(handle)
        let operation = try cString(operation, "operation")
        let data = try cJSONText(dataJSON, "data_json")
        guard out != nil else { throw CFailure.invalid("json_out is NULL") }
        let ms = try timeout(timeoutMs, default: reference.client.requestMs)
        let answer = try blockingCompletion { done in
            reference.reference.request(operation, json: data, timeoutMs: ms, completion: done)
        }
        try setOut(out, answer)
    }
}

@_cdecl("hulynet_reference_request_async")
public func hulynet_reference_request_async(_ handle: OpaquePointer?, _ operation: UnsafePointer<CChar>?,
                                            _ dataJSON: UnsafePointer<CChar>?, _ timeoutMs: Int64,
                                            _ done: hulynet_result_fn?, _ user: UnsafeMutableRawPointer?) -> Int32 {
    cCall {
        let reference = try liveReference(handle)
        let operation = try cString(operation, "operation")
        let data = try cJSONText(dataJSON, "data_json")
        let completion = try resultCompletion(done, user)
        let ms = try timeout(timeoutMs, default: reference.client.requestMs)
        reference.reference.request(operation, json: data, timeoutMs: ms, completion: completion)
    }
}

@_cdecl("hulynet_reference_connect")
public func hulynet_reference_connect(_ handle: OpaquePointer?, _ timeoutMs: Int64, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    cCall {
        guard let out else { throw CFailure.invalid("out is NULL") }
        out.pointee = nil
        let reference = try liveReference(handle)
        let ms = try timeout(timeoutMs, default: reference.client.requestMs)
        let connection = try blocking { try await reference.reference.connect(timeoutMs: ms) }
        let wrapped = CConnection(connection, client: reference.client)
        out.pointee = Handles.make(wrapped)
    }
}

@_cdecl("hulynet_reference_release")
public func hulynet_reference_release(_ handle: OpaquePointer?, _ timeoutMs: Int64) -> Int32 {
    cCall {
        let reference = try liveReference(handle)
        let ms = try timeout(timeoutMs, default: reference.client.requestMs)
        try blocking { try await reference.reference.release(timeoutMs: ms) }
    }
}

@_cdecl("hulynet_reference_destroy")
public func hulynet_reference_destroy(_ handle: OpaquePointer?) {
    Handles.take(handle, CReference.self)?.drop(release: true)
}

// MARK: - Connections

final class CConnection: @unchecked Sendable {
    let connection: ContainerConnection
    let client: CClient
    /// The C event handler's calls, in order, on the callback threads.
    let events = CallbackSlot<EventHandler>()
    /// The event function's calls, and after them the answers to requests on this connection:
    /// an event sent before an answer is handed over before it.
    let lane = CallbackLane()
    private let lock = Lock()
    private var installed = false

    init(_ connection: ContainerConnection, client: CClient) {
        self.connection = connection
        self.client = client
    }

    /// The first call installs the forwarding to the lane (events that came before it go to the
    /// first handler set, as the header says); later ones only swap the C handler.
    func setHandler(_ handler: EventHandler?) {
        events.set(handler)
        let install = lock.withLock { () -> Bool in
            defer { installed = true }
            return !installed
        }
        guard install else { return }
        let (slot, lane) = (events, self.lane)
        connection.onEventText { event in
            slot.deliver(on: lane) { $0.call(event) }
        }
    }

    func drop() {
        events.set(nil)
        guard (try? client.check()) != nil else { return }
        let connection = self.connection
        connection.onEventText { _ in }
        Task { await connection.close() }
    }
}

func liveConnection(_ handle: OpaquePointer?) throws(CFailure) -> CConnection {
    let connection = try Handles.get(handle, CConnection.self, "connection")
    try connection.client.check()
    return connection
}

@_cdecl("hulynet_connection_set_event_handler")
public func hulynet_connection_set_event_handler(_ handle: OpaquePointer?, _ fn: hulynet_event_fn?,
                                                 _ user: UnsafeMutableRawPointer?) -> Int32 {
    hulynet_connection_set_event_handler_v2(handle, fn, user, nil)
}

@_cdecl("hulynet_connection_set_event_handler_v2")
public func hulynet_connection_set_event_handler_v2(_ handle: OpaquePointer?, _ fn: hulynet_event_fn?,
                                                    _ user: UnsafeMutableRawPointer?, _ destroy: hulynet_destroy_fn?) -> Int32 {
    cCall {
        let connection = try liveConnection(handle)
        connection.setHandler(fn.map { EventHandler(fn: $0, user: UserPointer(raw: user), destroy: destroy) })
    }
}

@_cdecl("hulynet_connection_request")
public func hulynet_connection_request(_ handle: OpaquePointer?, _ operation: UnsafePointer<CChar>?, _ dataJSON: UnsafePointer<CChar>?,
                                       _ timeoutMs: Int64, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    cCall {
        out?.pointee = nil
        let connection = try liveConnection(handle)
        let operation = try cString(operation, "operation")
        let data = try cJSONText(dataJSON, "data_json")
        guard out != nil else { throw CFailure.invalid("json_out is NULL") }
        let ms = try timeout(timeoutMs, default: connection.client.requestMs)
        // After the events that came before the answer have been handed to the event function.
        let lane = connection.lane
        let answer = try blockingCompletion { done in
            connection.connection.request(operation, json: data, timeoutMs: ms) { result in lane.afterPending { done(result) } }
        }
        try setOut(out, answer)
    }
}

@_cdecl("hulynet_connection_request_async")
public func hulynet_connection_request_async(_ handle: OpaquePointer?, _ operation: UnsafePointer<CChar>?,
                                             _ dataJSON: UnsafePointer<CChar>?, _ timeoutMs: Int64,
                                             _ done: hulynet_result_fn?, _ user: UnsafeMutableRawPointer?) -> Int32 {
    cCall {
        let connection = try liveConnection(handle)
        let operation = try cString(operation, "operation")
        let data = try cJSONText(dataJSON, "data_json")
        let completion = try resultCompletion(done, user)
        let ms = try timeout(timeoutMs, default: connection.client.requestMs)
        let lane = connection.lane
        connection.connection.request(operation, json: data, timeoutMs: ms) { result in lane.afterPending { completion(result) } }
    }
}

@_cdecl("hulynet_connection_destroy")
public func hulynet_connection_destroy(_ handle: OpaquePointer?) {
    Handles.take(handle, CConnection.self)?.drop()
}

// MARK: - C handlers

/// A C event function with its user pointer and destroy notification.
struct EventHandler: CHandler, @unchecked Sendable {
    let fn: hulynet_event_fn
    let user: UserPointer
    var destroy: hulynet_destroy_fn? = nil
    func call(_ text: JSONText) { text.withCString { pointer in CallbackThread.run { fn(user.raw, pointer) } } }
    func destroyed() { if let destroy { CallbackThread.run { destroy(user.raw) } } }
}

/// A C moved function with its user pointer and destroy notification.
struct MovedHandler: CHandler, @unchecked Sendable {
    let fn: hulynet_moved_fn
    let user: UserPointer
    var destroy: hulynet_destroy_fn? = nil
    func call(_ uuid: String, _ endpoint: String) {
        uuid.withCString { uuidText in
            endpoint.withCString { endpointText in CallbackThread.run { fn(user.raw, uuidText, endpointText) } }
        }
    }
    func destroyed() { if let destroy { CallbackThread.run { destroy(user.raw) } } }
}
