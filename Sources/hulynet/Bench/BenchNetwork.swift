import HulyNet
import HulyNetCore
import HulyNetSync
import HulyNetZMQ
import Logging

/// The echo kinds the bench's agent serves: "echo" is reached through the agent's endpoint,
/// "echo-direct" on an endpoint of its own.
func benchAgent() -> Agent {
    Agent(factories: [
        "echo": { options in
            let uuid = options.uuid ?? makeUUID()
            return StartedContainer(uuid: uuid, container: try await EchoContainer(uuid: uuid, options: options))
        },
        "echo-direct": { options in
            let uuid = options.uuid ?? makeUUID()
            return StartedContainer(uuid: uuid, container: try await EchoContainer(uuid: uuid, options: options),
                                    connection: .direct(host: "127.0.0.1", port: 0))
        },
    ])
}

/// A client, an agent serving the echo kinds (on a client of its own) and an echo container the
/// client holds, against a coordinator at `port`.
final class BenchNetwork: @unchecked Sendable {
    let port: Int
    let agentSide: NetworkClient
    let client: NetworkClient
    let reference: ContainerReference

    /// `serverKey`: connect with CURVE to a coordinator with that public key (each client with a
    /// key pair of its own).
    init(port: Int, logger: Logger, serverKey: String? = nil) async throws {
        self.port = port
        agentSide = try NetworkClient(host: "127.0.0.1", port: port, options: try benchOptions(logger, serverKey))
        try await agentSide.serve(benchAgent())
        client = try NetworkClient(host: "127.0.0.1", port: port, options: try benchOptions(logger, serverKey))
        try await client.waitForConnection()
        reference = try await client.get(kind: "echo")
    }

    func close() async {
        try? await reference.release()
        await client.close()
        await agentSide.close()
    }
}

/// A bench client's options: plain, or CURVE with a fresh key pair.
func benchOptions(_ logger: Logger, _ serverKey: String?) throws -> NetworkClient.Options {
    var options = NetworkClient.Options(logger: logger)
    if let serverKey { options.security = ClientSecurity(keys: try CurveKeyPair.generate(), serverKey: serverKey) }
    return options
}

/// Runs `call` from `tasks` concurrent tasks until `seconds` have passed; counts the calls.
/// With `executor` the tasks run there (a client's I/O thread) rather than on the global pool.
func measureCalls(tasks: Int, seconds: Double, on executor: (any TaskExecutor)? = nil,
                  _ call: @escaping @Sendable (Int) async throws -> Void) async throws -> BenchCount {
    let started = MonotonicClock.nowNs()
    let deadline = started + UInt64(seconds * 1e9)
    let latencies = try await withThrowingTaskGroup(of: [UInt64].self) { group in
        for task in 0..<tasks {
            group.addTask(executorPreference: executor) {
                var latencies: [UInt64] = []
                latencies.reserveCapacity(1 << 16)
                var now = MonotonicClock.nowNs()
                while now < deadline {
                    try await call(task)
                    let end = MonotonicClock.nowNs()
                    latencies.append(end - now)
                    now = end
                }
                return latencies
            }
        }
        return try await group.reduce(into: [UInt64]()) { $0 += $1 }
    }
    return BenchCount(done: latencies.count, nanoseconds: MonotonicClock.nowNs() - started, latencies: latencies)
}

/// Runs `body` once for each index below `count`, `concurrency` at a time; counts them all.
func forEachIndex(below count: Int, concurrency: Int,
                  _ body: @escaping @Sendable (Int) async throws -> Void) async throws -> BenchCount {
    let next = Counter()
    let started = MonotonicClock.nowNs()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<concurrency {
            group.addTask {
                while let index = next.take(below: count) { try await body(index) }
            }
        }
        try await group.waitForAll()
    }
    return BenchCount(done: count, nanoseconds: MonotonicClock.nowNs() - started)
}

/// Everything in this process, each role with its own I/O thread: the coordinator, the agent's
/// client, the client (and `clients - 1` more for the many-clients case), a routed and a direct
/// connection to echo containers, and, on first use, `fanout` listening clients.
final class InProcessNetwork: @unchecked Sendable {
    let server: NetworkServer
    let network: BenchNetwork
    let moreClients: [NetworkClient]
    let routed: ContainerConnection
    let directReference: ContainerReference
    let direct: ContainerConnection
    private let logger: Logger
    private var listeners: [(NetworkClient, ContainerConnection)] = []

    /// Whether every connection uses CURVE (the coordinator's, the agent's endpoint, the direct one).
    let curve: Bool

    init(clients: Int, logger: Logger, curve: Bool = false) async throws {
        self.logger = logger
        self.curve = curve
        var configuration = NetworkServer.Configuration(host: "127.0.0.1", port: 0, logger: logger)
        if curve { configuration.security = ServerSecurity(keys: try CurveKeyPair.generate(), allowListPath: nil) }
        server = try NetworkServer(configuration)
        let serverKey = configuration.security?.keys.publicKey
        network = try await BenchNetwork(port: server.port, logger: logger, serverKey: serverKey)
        var more: [NetworkClient] = []
        for _ in 1..<max(1, clients) {
            let extra = try NetworkClient(host: "127.0.0.1", port: server.port, options: try benchOptions(logger, serverKey))
            try await extra.waitForConnection()
            more.append(extra)
        }
        moreClients = more
        routed = try await network.reference.connect()
        directReference = try await network.client.get(kind: "echo-direct")
        direct = try await directReference.connect()
    }

    /// The request cases for `bytes` of data, each named after the raw case it is compared with.
    func requestCases(bytes: Int, depth: Int, seconds: Double) -> [BenchCase] {
        // The data as JSON text, sent and answered as bytes: what C, C++ and Python send, and what
        // the raw baselines move (a Swift value would add one write and one parse per request).
        let data = JSONText(encoding: .string(String(repeating: "x", count: max(0, bytes - 2))))
        let uuid = network.reference.uuid
        let clients = [network.client] + moreClients
        let (routed, direct) = (self.routed, self.direct)
        let onClient = network.client.executor
        let curve = self.curve
        // With CURVE each case is compared with the same case without it, run for run.
        func rate(_ name: String, _ baseline: String, tasks: Int, on executor: (any TaskExecutor)? = nil,
                  _ call: @escaping @Sendable (Int) async throws -> Void) -> BenchCase {
            BenchCase(name: curve ? "\(name), CURVE" : name, bytes: bytes, unit: "requests/s",
                      baseline: curve ? "\(name) [\(bytes) B]" : "\(baseline) [\(bytes) B]") {
                try await measureCalls(tasks: tasks, seconds: seconds, on: executor, call).sample
            }
        }
        var cases = [
            rate("cs sync", "raw relay sync", tasks: 1) { _ in _ = try await clients[0].request(uuid, operation: "echo", json: data) },
            rate("cs \(depth) in flight", "raw relay \(depth) in flight", tasks: depth) { _ in
                _ = try await clients[0].request(uuid, operation: "echo", json: data)
            },
            rate("cs sync, on the client's executor", "raw relay sync", tasks: 1, on: onClient) { _ in
                _ = try await clients[0].request(uuid, operation: "echo", json: data)
            },
            rate("cs \(depth) in flight, on the client's executor", "raw relay \(depth) in flight", tasks: depth, on: onClient) { _ in
                _ = try await clients[0].request(uuid, operation: "echo", json: data)
            },
        ]
        if clients.count > 1 {
            cases.append(rate("cs \(clients.count) clients x \(depth) in flight", "raw relay \(clients.count) clients x \(depth) in flight",
                              tasks: depth * clients.count) { task in
                _ = try await clients[task % clients.count].request(uuid, operation: "echo", json: data)
            })
        }
        cases += [
            rate("routed connection sync", "raw echo sync", tasks: 1) { _ in _ = try await routed.request("echo", json: data) },
            rate("routed connection \(depth) in flight", "raw echo \(depth) in flight", tasks: depth) { _ in
                _ = try await routed.request("echo", json: data)
            },
            rate("direct connection sync", "raw echo sync", tasks: 1) { _ in _ = try await direct.request("echo", json: data) },
            rate("direct connection \(depth) in flight", "raw echo \(depth) in flight", tasks: depth) { _ in
                _ = try await direct.request("echo", json: data)
            },
            rate("direct connection sync, on the client's executor", "raw echo sync", tasks: 1, on: onClient) { _ in
                _ = try await direct.request("echo", json: data)
            },
            rate("direct connection \(depth) in flight, on the client's executor", "raw echo \(depth) in flight",
                 tasks: depth, on: onClient) { _ in
                _ = try await direct.request("echo", json: data)
            },
        ]
        return cases
    }

    /// Cold start: `get` of a container nobody runs yet (a fresh uuid) and its first answer
    /// through the coordinator, one after another; each is released after. The figure is the
    /// median time in microseconds, with the percentiles.
    func coldStartCase(seconds: Double) -> BenchCase {
        BenchCase(name: "cold start: get of a new container to its first answer", unit: "us", kind: .cost) { [self] in
            let client = network.client
            var latencies: [UInt64] = []
            let deadline = MonotonicClock.nowNs() + UInt64(seconds * 1e9)
            while MonotonicClock.nowNs() < deadline, latencies.count < 2000 {
                let started = MonotonicClock.nowNs()
                let reference = try await client.get(kind: "echo", options: GetOptions(uuid: "cold-\(makeUUID())"))
                _ = try await reference.request("echo", "first")
                latencies.append(MonotonicClock.nowNs() - started)
                try await reference.release()
            }
            let count = BenchCount(done: latencies.count, nanoseconds: 1, latencies: latencies)
            let notes = count.latencyNotes
            return BenchSample(value: notes.first?.value ?? 0, notes: notes + [("starts", Double(latencies.count))])
        }
    }

    /// Event fan-out: the routed connection's container broadcasts to `fanout` connected clients,
    /// `depth` broadcasts in flight; counted when every client has every event.
    func fanOutCase(fanout: Int, depth: Int, seconds: Double) -> BenchCase {
        BenchCase(name: "events fanned out to \(fanout) clients", unit: "events/s") { [self] in
            let listeners = try await listening(fanout)
            let delivered = Counter()
            for (_, connection) in listeners { connection.onEvent { _ in _ = delivered.take(below: Int.max) } }
            defer { for (_, connection) in listeners { connection.onEvent { _ in } } }
            let routed = self.routed
            let data = JSONValue.string(String(repeating: "x", count: 98))
            let started = MonotonicClock.nowNs()
            let broadcasts = try await measureCalls(tasks: depth, seconds: seconds) { _ in _ = try await routed.request("broadcast", data) }
            let expected = broadcasts.done * fanout
            let waitUntil = MonotonicClock.nowMs() + 10_000
            while delivered.value < expected, MonotonicClock.nowMs() < waitUntil { try await Task.sleep(nanoseconds: 1_000_000) }
            guard delivered.value == expected else { throw BenchError("fan-out: \(delivered.value) of \(expected) events delivered") }
            return BenchSample(value: Double(expected) / (Double(MonotonicClock.nowNs() - started) / 1e9))
        }
    }

    private func listening(_ count: Int) async throws -> [(NetworkClient, ContainerConnection)] {
        if listeners.count == count { return listeners }
        let quiet = logger
        let port = server.port
        let uuid = network.reference.uuid
        listeners = try await withThrowingTaskGroup(of: (NetworkClient, ContainerConnection).self) { group in
            for _ in 0..<count {
                group.addTask {
                    let listener = try NetworkClient(host: "127.0.0.1", port: port, options: .init(logger: quiet))
                    try await listener.waitForConnection()
                    let held = try await listener.get(kind: "echo", options: GetOptions(uuid: uuid))
                    return (listener, try await held.connect())
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        return listeners
    }

    func close() async {
        for (listener, connection) in listeners {
            await connection.close()
            await listener.close()
        }
        await routed.close()
        await direct.close()
        try? await directReference.release()
        for extra in moreClients { await extra.close() }
        await network.close()
        server.stop()
    }
}

/// Hands out 0, 1, 2, ... to concurrent tasks.
final class Counter: @unchecked Sendable {
    private let lock = Lock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func take(below limit: Int) -> Int? {
        lock.withLock {
            guard count < limit else { return nil }
            defer { count += 1 }
            return count
        }
    }
}
