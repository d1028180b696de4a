import Dispatch
import HulyNetCore
import HulyNetSync
import HulyNetZMQ

/// The built-in container kind "echo": answers a request with its data. Operations:
/// - "broadcast" also sends the data as an event to every connected client and answers the number
///   of clients it reached;
/// - "fail" answers an error with the data as its message;
/// - "slow" with `{"ms": N, "key": K}` answers `{"key": K, "run": n}` after N ms (at most a
///   minute), n being how many times a request with that key has run here, this one included;
/// - "runs" answers those counts and how many slow requests are running: `{"done": {K: n, ...},
///   "running": m}`.
/// Used by the command-line tool, the demo and tests (the last two count what ran twice).
public final class EchoContainer: ContainerType, CallbackContainer, @unchecked Sendable {
    public static let kind: ContainerKind = "echo"
    public let uuid: ContainerUUID
    private let lock = Lock()
    private var sinks: [ClientUUID: EventSink] = [:]
    private var terminated = false
    private var runs: [String: Int] = [:]
    private var running = 0

    public init(uuid: ContainerUUID, options: GetOptions) async throws {
        self.uuid = uuid
    }

    /// Answers at once, on the agent's I/O thread; the data comes back as the bytes it came in.
    public func request(operation: String, data: JSONText, client: ClientUUID?,
                        reply: @escaping @Sendable (Result<JSONText, any Error>) -> Void) {
        switch operation {
        case "broadcast":
            let targets = lock.withLock { Array(sinks.values) }
            for sink in targets { sink.send(data) }
            reply(.success(JSONText(encoding: .number(Double(targets.count)))))
        case "fail":
            reply(.failure(ContainerError((try? data.value())?.stringValue ?? "failed on request")))
        case "slow":
            let value = try? data.value()
            let key = value?.member("key")?.stringValue ?? ""
            let ms = min(max(value?.member("ms")?.intValue ?? 0, 0), 60_000)
            lock.withLock { running += 1 }
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(ms)) { [self] in
                let run = lock.withLock { () -> Int in
                    running -= 1
                    runs[key, default: 0] += 1
                    return runs[key]!
                }
                reply(.success(JSONText(encoding: ["key": .string(key), "run": .number(Double(run))])))
            }
        case "runs":
            reply(.success(JSONText(encoding: lock.withLock { () -> JSONValue in
                ["done": .object(runs.mapValues { .number(Double($0)) }), "running": .number(Double(running))]
            })))
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
