import HulyNetCore
import HulyNetZMQ

/// The built-in container kind "echo": answers a request with its data; the operation
/// "broadcast" also sends the data as an event to every connected client and answers the number
/// of clients it reached. Used by the command-line tool, the demo and tests.
public final class EchoContainer: ContainerType, CallbackContainer, @unchecked Sendable {
    public static let kind: ContainerKind = "echo"
    public let uuid: ContainerUUID
    private let lock = Lock()
    private var sinks: [ClientUUID: EventSink] = [:]
    private var terminated = false

    public init(uuid: ContainerUUID, options: GetOptions) async throws {
        self.uuid = uuid
    }

    /// Answers at once, on the agent's I/O thread.
    public func request(operation: String, data: JSONValue, client: ClientUUID?,
                        reply: @escaping @Sendable (Result<JSONValue, any Error>) -> Void) {
        switch operation {
        case "broadcast":
            let targets = lock.withLock { Array(sinks.values) }
            for sink in targets { sink.send(data) }
            reply(.success(.number(Double(targets.count))))
        case "fail":
            reply(.failure(ContainerError(data.stringValue ?? "failed on request")))
        default:
            reply(.success(data))
        }
    }

    public func connect(client: ClientUUID, events: EventSink) {
        lock.withLock { sinks[client] = events }
    }

    public func disconnect(client: ClientUUID) {
        _ = lock.withLock { sinks.removeValue(forKey: client) }
    }

    public func terminate() async {
        lock.withLock {
            terminated = true
            sinks.removeAll()
        }
    }

    public var connectedClients: Int { lock.withLock { sinks.count } }
    public var isTerminated: Bool { lock.withLock { terminated } }
}
