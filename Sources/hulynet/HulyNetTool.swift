import ArgumentParser
import Dispatch
import HulyNet
import HulyNetCore
import HulyNetZMQ
import Logging

#if canImport(Glibc)
import Glibc
#endif

@main
struct HulyNetTool: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hulynet",
        abstract: "The Huly virtual network: a coordinator, agents and clients over ZeroMQ.",
        subcommands: [Server.self, AgentCommand.self, Agents.self, Containers.self, Request.self, Demo.self, Bench.self]
    )
}

/// Options shared by the commands that talk to a network.
struct NetworkOptions: ParsableArguments {
    @Option(name: .long, help: "The network coordinator, HOST:PORT.")
    var network: String = "127.0.0.1:3737"

    @Option(name: .long, help: "Seconds to wait for the connection.")
    var timeout: Double = 10

    func connect() async throws -> NetworkClient {
        let client = try NetworkClient(address: network)
        try await client.waitForConnection(timeoutMs: Int64(timeout * 1000))
        return client
    }
}

/// Waits for SIGINT or SIGTERM.
func waitForTermination() async -> Int32 {
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    return await withCheckedContinuation { continuation in
        let once = Once()
        for sig in [SIGINT, SIGTERM] {
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                if once.first() { continuation.resume(returning: sig) }
            }
            source.resume()
            Once.keep(source as AnyObject)
        }
    }
}

final class Once: @unchecked Sendable {
    private var done = false
    private let lock = Lock()
    nonisolated(unsafe) private static var kept: [AnyObject] = []
    func first() -> Bool { lock.withLock { defer { done = true }; return !done } }
    static func keep(_ object: AnyObject) { kept.append(object) }
}

struct Server: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a network coordinator until SIGINT or SIGTERM.")

    @Option(help: "Address to bind (default: $HOST, else 0.0.0.0).")
    var host: String?

    @Option(help: "Port to bind (default: $PORT, else 3737).")
    var port: Int?

    @Option(help: "Seconds between printed counts (0: never).")
    var statsInterval: Double = 5

    func run() async throws {
        let environment = ProcessEnvironment()
        let host = host ?? environment["HOST"] ?? "0.0.0.0"
        let port = try port ?? environment["PORT"].map { text in
            guard let value = Int(text) else { throw ValidationError("PORT must be a number, got \(text)") }
            return value
        } ?? 3737
        let server: NetworkServer
        do {
            server = try NetworkServer(.init(host: host, port: port))
        } catch {
            print("hulynet server: \(error)")
            throw ExitCode(2)
        }
        print("hulynet server \(server.serverId) listening on \(host):\(server.port)")
        let statsTask = Task {
            guard statsInterval > 0 else { return }
            while !Task.isCancelled {
                try await Task.sleep(nanoseconds: UInt64(statsInterval * 1e9))
                let stats = server.stats()
                print("clients \(stats.clients), agents \(stats.agents), containers \(stats.containers), requests \(stats.requests)")
            }
        }
        let sig = await waitForTermination()
        statsTask.cancel()
        print("signal \(sig): stopping")
        server.stop()
    }
}

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "agent",
        abstract: "Run an agent hosting the built-in echo container kind until SIGINT or SIGTERM.")

    @OptionGroup var network: NetworkOptions

    @Option(help: "The agent's endpoint HOST:PORT (HOST is what clients dial; port 0 picks one).")
    var endpoint: String = "127.0.0.1:0"

    @Option(name: .customLong("kind"), help: "A container kind to host (an echo container); repeatable.")
    var kinds: [String] = ["echo"]

    func run() async throws {
        let (host, port) = try parseAddress(endpoint, defaultPort: 0)
        let client = try await network.connect()
        var factories: [ContainerKind: ContainerFactory] = [:]
        for kind in kinds {
            factories[kind] = { options in
                let uuid = options.uuid ?? makeUUID()
                return StartedContainer(uuid: uuid, container: try await EchoContainer(uuid: uuid, options: options))
            }
        }
        let agent = Agent(factories: factories)
        try await client.serve(agent, advertisedHost: host, port: port)
        print("agent \(agent.uuid) serving \(kinds.joined(separator: ", ")) at \(agent.endpoint ?? "-")")
        _ = await waitForTermination()
        await client.close()
    }
}

struct Agents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the network's agents.")
    @OptionGroup var network: NetworkOptions

    func run() async throws {
        let client = try await network.connect()
        for agent in try await client.agentList() {
            print("\(agent.agentId)\tkinds: \(agent.kinds.joined(separator: ","))\tcontainers: \(agent.containers)\tendpoint: \(agent.endpoint ?? "-")")
        }
        await client.close()
    }
}

struct Containers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the network's containers.")
    @OptionGroup var network: NetworkOptions
    @Option(help: "Only containers of this kind.")
    var kind: String?

    func run() async throws {
        let client = try await network.connect()
        for record in try await client.list(kind: kind) {
            print("\(record.uuid)\tkind: \(record.kind)\tagent: \(record.agentId)\tlabels: \((record.labels ?? []).joined(separator: ","))\tendpoint: \(record.endpoint)")
        }
        await client.close()
    }
}

struct Request: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send a request to a container through the network.")
    @OptionGroup var network: NetworkOptions
    @Argument(help: "The container's uuid.") var uuid: String
    @Argument(help: "The operation.") var operation: String
    @Argument(help: "The data, as JSON.") var json: String = "null"

    func run() async throws {
        let data: JSONValue
        do { data = try JSONValue.parse(json) } catch { throw ValidationError("JSON argument: \(error)") }
        let client = try await network.connect()
        defer { Task { await client.close() } }
        do {
            print(try await client.request(uuid, operation: operation, data: data))
        } catch {
            print("error: \(error)")
            await client.close()
            throw ExitCode(1)
        }
        await client.close()
    }
}

/// The README's demo: a server, an agent and a client on loopback, in one process.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a server, an agent and a client on loopback and exit.")

    @Option(help: "Port for the server (0 picks a free one).")
    var port: Int = 0

    func run() async throws {
        var logger = Logger(label: "demo")
        logger.logLevel = .warning
        let server = try NetworkServer(.init(host: "127.0.0.1", port: port, logger: logger))
        print("1. network coordinator listening on 127.0.0.1:\(server.port)")

        let agentSide = try NetworkClient(host: "127.0.0.1", port: server.port, options: .init(logger: logger))
        let agent = Agent(containerTypes: [EchoContainer.self])
        try await agentSide.serve(agent)
        print("2. agent \(agent.uuid) serves kind 'echo' at \(agent.endpoint ?? "-")")

        let client = try NetworkClient(host: "127.0.0.1", port: server.port, options: .init(logger: logger))
        try await client.waitForConnection()
        let reference = try await client.get(kind: "echo", options: GetOptions(labels: ["demo"]))
        print("3. client got container \(reference.uuid)")

        let answer = try await reference.request("hello", ["text": "hi from the client"])
        print("4. request through the coordinator answered: \(answer)")

        let connection = try await reference.connect()
        let events = connection.events()
        let reached = try await connection.request("broadcast", ["news": "an event"])
        var iterator = events.makeAsyncIterator()
        let event = await iterator.next()
        print("5. routed connection: broadcast reached \(reached) client(s); event received: \(event.map { "\($0)" } ?? "none")")

        await connection.close()
        try await reference.release()
        await client.close()
        await agentSide.close()
        server.stop()
        print("6. all stopped")
    }
}

/// The process environment without Foundation.
struct ProcessEnvironment {
    subscript(name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }
}

/// Requests per second through the coordinator (`cs`), one client, synchronous and pipelined,
/// each with its ratio to the raw ZeroMQ relay (the same hops, no protocol) measured in the same run.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure requests through the coordinator against raw ZeroMQ, all in this process.")

    @Option(help: "Seconds per case.")
    var seconds: Double = 3

    @Option(help: "Bytes of data per request.")
    var bytes: Int = 100

    @Option(help: "Requests in flight for the pipelined cases.")
    var depth: Int = 25

    @Flag(help: "Only the coordinator cases (no raw baseline).")
    var noBaseline = false

    @Option(help: "Distinct containers for the get-or-start case (0: skip it).")
    var containers: Int = 10_000

    @Option(help: "Clients receiving a container's broadcasts in the fan-out case (0: skip it).")
    var fanout: Int = 100

    @Option(help: "Run only the request case of this name (e.g. \"cs sync\").")
    var only: String?

    func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        var rows: [(name: String, rate: Double, baseline: String?)] = []
        var baselines: [String: Double] = [:]
        if !noBaseline {
            for (name, inFlight) in [("raw relay sync", 1), ("raw relay \(depth) in flight", depth)] {
                let rate = try RawBaseline.relay(seconds: seconds, bytes: bytes, depth: inFlight)
                baselines[name] = rate
                rows.append((name, rate, nil))
                print("\(name)\t\(Int(rate)) requests/s")
            }
            for (name, inFlight) in [("raw echo sync", 1), ("raw echo \(depth) in flight", depth)] {
                let rate = try RawBaseline.echo(seconds: seconds, bytes: bytes, depth: inFlight)
                baselines[name] = rate
                rows.append((name, rate, nil))
                print("\(name)\t\(Int(rate)) requests/s")
            }
        }

        let server = try NetworkServer(.init(host: "127.0.0.1", port: 0, logger: logger))
        let agentSide = try NetworkClient(host: "127.0.0.1", port: server.port, options: .init(logger: logger))
        // "echo" is reached through the agent's endpoint; "echo-direct" on an endpoint of its own.
        let agent = Agent(factories: [
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
        try await agentSide.serve(agent)
        let client = try NetworkClient(host: "127.0.0.1", port: server.port, options: .init(logger: logger))
        try await client.waitForConnection()
        let reference = try await client.get(kind: "echo")
        let data = JSONValue.string(String(repeating: "x", count: max(0, bytes - 2)))
        let uuid = reference.uuid

        func measure(depth: Int, _ call: @escaping @Sendable () async throws -> Void) async throws -> Double {
            let deadline = MonotonicClock.nowMs() + Int64(seconds * 1000)
            let started = MonotonicClock.nowMs()
            let count = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<depth {
                    group.addTask {
                        var done = 0
                        while MonotonicClock.nowMs() < deadline {
                            try await call()
                            done += 1
                        }
                        return done
                    }
                }
                return try await group.reduce(0, +)
            }
            return Double(count) / (Double(MonotonicClock.nowMs() - started) / 1000)
        }
        let connection = try await reference.connect()
        let directReference = try await client.get(kind: "echo-direct")
        let direct = try await directReference.connect()
        let cases: [(String, Int, String, @Sendable () async throws -> Void)] = [
            ("cs sync", 1, "raw relay sync", { _ = try await client.request(uuid, operation: "echo", data: data) }),
            ("cs \(depth) in flight", depth, "raw relay \(depth) in flight",
             { _ = try await client.request(uuid, operation: "echo", data: data) }),
            ("routed connection sync", 1, "raw echo sync", { _ = try await connection.request("echo", data) }),
            ("routed connection \(depth) in flight", depth, "raw echo \(depth) in flight",
             { _ = try await connection.request("echo", data) }),
            ("direct connection sync", 1, "raw echo sync", { _ = try await direct.request("echo", data) }),
            ("direct connection \(depth) in flight", depth, "raw echo \(depth) in flight",
             { _ = try await direct.request("echo", data) }),
        ]
        for (name, inFlight, baseline, call) in cases where only == nil || only == name {
            let rate = try await measure(depth: inFlight, call)
            rows.append((name, rate, baselines[baseline] == nil ? nil : baseline))
            print("\(name)\t\(Int(rate)) requests/s")
        }
        await direct.close()

        // Get-or-start of many distinct containers, `depth` at a time; the process's resident
        // memory grows by the coordinator's records plus the agent's and client's (an upper bound).
        let starts = containers
        if starts > 0 {
        let residentBefore = residentBytes()
        let startedAt = MonotonicClock.nowMs()
        let next = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<depth {
                group.addTask {
                    while let index = next.take(below: starts) {
                        _ = try await client.get(kind: "echo", options: GetOptions(uuid: "bench-\(index)"))
                    }
                }
            }
            try await group.waitForAll()
        }
        let startSeconds = Double(MonotonicClock.nowMs() - startedAt) / 1000
        let perRecord = Double(residentBytes() - residentBefore) / Double(max(1, starts))
        let listed = try await client.list(kind: "echo").count
        rows.append(("get-or-start of \(starts) containers", Double(starts) / startSeconds, nil))
        print("get-or-start of \(starts) containers\t\(String(Int(startSeconds * 1000))) ms, \(Int(Double(starts) / startSeconds)) per second, \(listed) listed, at most \(Int(perRecord)) bytes per container (whole process)")
        }

        if fanout > 0 {
            // Event fan-out: one container broadcasting to `fanout` connected clients, `depth`
            // broadcasts in flight; counted when every client has every event.
            let quiet = logger
            let listeners = try await withThrowingTaskGroup(of: (NetworkClient, ContainerConnection).self) { group in
                for _ in 0..<fanout {
                    group.addTask {
                        let listener = try NetworkClient(host: "127.0.0.1", port: server.port, options: .init(logger: quiet))
                        try await listener.waitForConnection()
                        let held = try await listener.get(kind: "echo", options: GetOptions(uuid: uuid))
                        return (listener, try await held.connect())
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let delivered = Counter()
            for (_, connection) in listeners { connection.onEvent { _ in _ = delivered.take(below: Int.max) } }
            let broadcasts = Counter()
            let started = MonotonicClock.nowMs()
            let deadline = started + Int64(seconds * 1000)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<depth {
                    group.addTask {
                        while MonotonicClock.nowMs() < deadline {
                            _ = try await connection.request("broadcast", data)
                            _ = broadcasts.take(below: Int.max)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let expected = broadcasts.value * fanout
            let waitUntil = MonotonicClock.nowMs() + 10_000
            while delivered.value < expected, MonotonicClock.nowMs() < waitUntil { try await Task.sleep(nanoseconds: 1_000_000) }
            let elapsed = Double(MonotonicClock.nowMs() - started) / 1000
            let name = "events fanned out to \(fanout) clients"
            rows.append((name, Double(delivered.value) / elapsed, nil))
            print("\(name)\t\(Int(Double(delivered.value) / elapsed)) events/s (\(delivered.value) of \(expected) delivered)")
            for (listener, connection) in listeners {
                await connection.close()
                await listener.close()
            }
        }
        await connection.close()

        try await reference.release()
        try await directReference.release()
        await client.close()
        await agentSide.close()
        server.stop()

        print("")
        print("case (\(bytes)-byte data, \(seconds) s each)\trequests/s\tus/request\tratio to baseline")
        for row in rows {
            var ratio = ""
            if let baseline = row.baseline, let base = baselines[baseline] {
                ratio = "\(Int((row.rate / base * 100).rounded())) % of \(baseline)"
            }
            print("\(row.name)\t\(Int(row.rate))\t\(Int(1e6 / row.rate))\t\(ratio)")
        }
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

/// The process's resident memory, from /proc/self/statm.
func residentBytes() -> Int {
    guard let file = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(file) }
    var size = 0, resident = 0
    guard withUnsafeMutablePointer(to: &size, { sizePointer in
        withUnsafeMutablePointer(to: &resident) { residentPointer in
            withVaList([sizePointer, residentPointer]) { vfscanf(file, "%ld %ld", $0) }
        }
    }) == 2 else { return 0 }
    return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
}
