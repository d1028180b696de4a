import HulyNetCore
import HulyNetSync
import HulyNetZMQ
import Logging

/// Who may reach which container through a secured agent or container endpoint. The endpoint
/// knows the key each client connected with (its ZAP handler admits any CURVE key and names the
/// connection by it); the coordinator knows which key each client id belongs to, what its rules
/// let it see and whether it holds a reference to the container. So on a client's first `cc` or
/// `cs` for a container the endpoint asks the coordinator ("ca"), and remembers the answer for
/// that client and container while the client stays connected. Requests wait for the answer.
///
/// Confined to the endpoint's loop thread.
final class EndpointAccess {
    typealias Ask = (_ client: ClientUUID, _ key: String, _ container: ContainerUUID,
                     _ answer: @escaping (Result<Void, RemoteError>) -> Void) -> Void

    private struct Pair: Hashable {
        let client: ClientUUID
        let container: ContainerUUID
    }

    private let ask: Ask
    private let logger: Logger
    private var allowed: Set<Pair> = []
    private var waiting: [Pair: [(Result<Void, RemoteError>) -> Void]] = [:]
    private(set) var refused = 0

    init(ask: @escaping Ask, logger: Logger) {
        self.ask = ask
        self.logger = logger
    }

    /// Calls `then` once the client may use the container (at once if it was allowed before), or
    /// with why not. `key` nil: the connection named no key (a plain endpoint): refused.
    func check(client: ClientUUID, key: String?, container: ContainerUUID,
               then: @escaping (Result<Void, RemoteError>) -> Void) {
        let pair = Pair(client: client, container: container)
        if allowed.contains(pair) { return then(.success(())) }
        guard let key else { return then(.failure(RemoteError("no key on this connection", code: .forbidden))) }
        if waiting[pair] != nil {
            waiting[pair]?.append(then)
            return
        }
        waiting[pair] = [then]
        ask(client, key, container) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success: allowed.insert(pair)
            case .failure(let error):
                refused += 1
                logger.warning("endpoint: client \(client) refused for container \(container): \(error.message)")
            }
            for waiter in waiting.removeValue(forKey: pair) ?? [] { waiter(result) }
        }
    }

    /// The client went: what it was allowed is asked again if it comes back.
    func forget(client: ClientUUID) {
        allowed = allowed.filter { $0.client != client }
    }
}

/// The ZAP handler of the process's shared ZeroMQ context, where agent and container endpoints
/// live: it admits any CURVE key and names each connection by its key, for `EndpointAccess`.
/// Started with the first secured endpoint, on a loop of its own; it lives as long as the process.
enum EndpointZAP {
    private static let lock = Lock()
    nonisolated(unsafe) private static var handler: (IOLoop, ZAPHandler)?

    static func ensureRunning(logger: Logger) throws {
        try lock.withLock {
            guard handler == nil else { return }
            let loop = IOLoop(name: "hulynet-endpoint-zap")
            loop.start()
            let made: Result<ZAPHandler, any Error>? = loop.sync {
                Result { try ZAPHandler(loop: loop, context: .shared, allowListPath: nil, logger: logger) }
            }
            guard let made else { throw NetworkError.closed }
            handler = (loop, try made.get())
        }
    }
}
