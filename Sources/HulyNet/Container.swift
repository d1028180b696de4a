import HulyNetCore

/// A service instance hosted by an agent. Requests may arrive concurrently from many clients.
public protocol Container: AnyObject, Sendable {
    /// Handles a request; `client` is the caller's id on a connection, nil through the coordinator.
    /// A thrown error is answered to the caller as responseError with its description.
    func request(operation: String, data: JSONValue, client: ClientUUID?) async throws -> JSONValue
    /// A client connected; `events` sends data to that client until it disconnects.
    func connect(client: ClientUUID, events: EventSink)
    func disconnect(client: ClientUUID)
    /// The container is being stopped (unused, or another agent owns its uuid).
    func terminate() async
}

extension Container {
    public func connect(client: ClientUUID, events: EventSink) {}
    public func disconnect(client: ClientUUID) {}
    public func terminate() async {}
}

/// A container that takes each request's data as the JSON text the caller wrote and answers
/// through a callback: the agent calls it on its I/O thread, and `reply` may be called at once
/// (the fast path: no task, no thread hop) or later, from any thread, exactly once. It must not
/// block: slow work goes elsewhere and replies when done. What it replies reaches the caller as
/// the same bytes (key order, number spelling and layout kept); nothing on the way parses it.
/// `request(operation:data:client:)` with values is still used by direct calls (`Agent.request`);
/// the default here bridges it to this one.
public protocol CallbackContainer: Container {
    func request(operation: String, data: JSONText, client: ClientUUID?,
                 reply: @escaping @Sendable (Result<JSONText, any Error>) -> Void)
}

extension CallbackContainer {
    public func request(operation: String, data: JSONValue, client: ClientUUID?) async throws -> JSONValue {
        let answer = try await withCheckedThrowingContinuation { continuation in
            request(operation: operation, data: JSONText(encoding: data), client: client) { continuation.resume(with: $0) }
        }
        return try answer.value()
    }
}

/// A container whose connect runs elsewhere (a C callback on its own thread): the agent answers
/// the client's connect once `done` is called, so that the container has taken the client in
/// (and may have sent it events) before the client's connect returns, without the agent's I/O
/// thread waiting for it.
public protocol DeferredConnectContainer: Container {
    func connect(client: ClientUUID, events: EventSink, done: @escaping @Sendable () -> Void)
}

/// Hands a request to a container and its answer to `reply`: on the calling thread at once when
/// the container answers at once, else from a task or a thread of the container's. The data is
/// parsed here only for a container that takes values.
func dispatchRequest(to container: any Container, operation: String, data: JSONText, client: ClientUUID?,
                     reply: @escaping @Sendable (Result<JSONText, any Error>) -> Void) {
    if let fast = container as? CallbackContainer {
        fast.request(operation: operation, data: data, client: client, reply: reply)
        return
    }
    Task {
        do {
            let value = try await container.request(operation: operation, data: try data.value(), client: client)
            reply(.success(JSONText(encoding: value)))
        } catch {
            reply(.failure(error))
        }
    }
}

/// A container kind as a Swift type: the agent makes one instance per container it starts.
public protocol ContainerType: Container {
    static var kind: ContainerKind { get }
    /// Starts a container. `uuid` is the one asked for, or a fresh one.
    init(uuid: ContainerUUID, options: GetOptions) async throws
}

/// Sends events to one connected client. Cheap to copy; safe from any thread. Text is sent as
/// it is; a value is written once.
public struct EventSink: Sendable {
    let deliver: @Sendable (JSONText) -> Void
    public init(_ deliver: @escaping @Sendable (JSONText) -> Void) { self.deliver = deliver }
    public func send(_ data: JSONText) { deliver(data) }
    public func send(_ data: JSONValue) { deliver(JSONText(encoding: data)) }
    public func callAsFunction(_ data: JSONText) { deliver(data) }
    public func callAsFunction(_ data: JSONValue) { deliver(JSONText(encoding: data)) }
}

/// What a container factory returns.
public struct StartedContainer: Sendable {
    public var uuid: ContainerUUID
    public var container: any Container
    /// How clients connect to it: `.routed` through the agent's endpoint (the usual), or
    /// `.direct` on an endpoint of its own that the agent opens for it.
    public var connection: ConnectionMode

    public enum ConnectionMode: Sendable, Equatable {
        case routed
        /// `host` is what clients dial; `port` 0 picks a free port.
        case direct(host: String, port: Int)
    }

    public init(uuid: ContainerUUID, container: any Container, connection: ConnectionMode = .routed) {
        self.uuid = uuid
        self.container = container
        self.connection = connection
    }
}

/// Starts a container of one kind for a get-or-start.
public typealias ContainerFactory = @Sendable (_ options: GetOptions) async throws -> StartedContainer

/// A container's answer when a request names something it does not handle.
public struct ContainerError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
