import ArgumentParser
import Dispatch
import HulyNet
import HulyNetCore
import HulyNetSync
import Logging

#if canImport(Glibc)
import Glibc
#endif

@main
struct HulyNetTool: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hulynet",
        abstract: "The Huly virtual network: a coordinator, agents and clients over ZeroMQ.",
        version: hulynetVersion,
        subcommands: [Server.self, AgentCommand.self, Agents.self, Containers.self, Request.self, CallCommand.self, Demo.self,
                      Keygen.self, Bench.self, RawBroker.self, BenchLoad.self]
    )
}

/// Options shared by the commands that talk to a network.
struct NetworkOptions: ParsableArguments {
    @Option(name: .long, help: "The network coordinator, HOST:PORT, or several that stand in for each other, HOST:PORT,HOST:PORT,...")
    var network: String = "127.0.0.1:3737"

    @Option(name: .long, parsing: .unconditional, help: "Seconds to wait for the connection.")
    var timeout: Double = 10

    @Option(help: "The coordinator's public key file (NAME.pub of `hulynet keygen`): connect with CURVE encryption.")
    var serverKey: String?

    @Option(help: "With --server-key: this client's secret key file (NAME.key of `hulynet keygen`); default: a key made for this run.")
    var key: String?

    func validate() throws {
        try checkSeconds(timeout, "--timeout", allowZero: false)
        if key != nil, serverKey == nil { throw ValidationError("--key needs --server-key") }
    }

    /// The client options these arguments ask for.
    func options(logger: Logger = Logger(label: "hulynet.client")) throws -> NetworkClient.Options {
        var options = NetworkClient.Options(logger: logger)
        if let serverKey {
            let keys = try key.map(KeyFiles.readSecret) ?? CurveKeyPair.generate()
            options.security = ClientSecurity(keys: keys, serverKey: try KeyFiles.readPublic(serverKey))
        }
        return options
    }

    func connect() async throws -> NetworkClient {
        let client = try NetworkClient(address: network, options: try options())
        try await client.waitForConnection(timeoutMs: Int64(timeout * 1000))
        return client
    }
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a CURVE key pair: NAME.key (the secret key, readable by you only) and NAME.pub (the public key and NAME, a line for an allow list).")

    @Argument(help: "The key's name (the allow list shows it; refusals and logs name keys by fingerprint).")
    var name: String

    @Option(help: "The directory to write the files in.")
    var directory: String = "."

    func run() throws {
        do {
            let keys = try KeyFiles.generate(name: name, directory: directory)
            print("wrote \(directory)/\(name).key (secret) and \(directory)/\(name).pub (public key \(keys.publicKey))")
        } catch {
            printError("hulynet keygen: \(error)")
            throw ExitCode(2)
        }
    }
}

/// A number of seconds from the command line: finite, not negative (nor zero unless allowed),
/// at most a day.
func checkSeconds(_ value: Double, _ name: String, allowZero: Bool) throws {
    guard value.isFinite, allowZero ? value >= 0 : value > 0, value <= Double(Timeouts.maxMs / 1000) else {
        throw ValidationError("\(name) \(value) is out of range (\(allowZero ? "0" : "above 0") to \(Timeouts.maxMs / 1000) seconds)")
    }
}

/// The signal sources waitForTermination made: kept for the process's life (a source that goes
/// away stops watching).
nonisolated(unsafe) private var signalSources: [AnyObject] = []

/// Waits for SIGINT or SIGTERM.
func waitForTermination() async -> Int32 {
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    return await withCheckedContinuation { continuation in
        let once = ResumeOnce(continuation)
        for sig in [SIGINT, SIGTERM] {
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { once.resume(sig) }
            source.resume()
            signalSources.append(source as AnyObject)
        }
    }
}

struct Server: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a network coordinator until SIGINT or SIGTERM.")

    @Option(help: "Address to bind (default: $HOST, else 0.0.0.0).")
    var host: String?

    @Option(parsing: .unconditional, help: "Port to bind (default: $PORT, else 3737).")
    var port: Int?

    @Option(parsing: .unconditional, help: "Seconds between printed counts (0: never).")
    var statsInterval: Double = 5

    @Option(help: "Least level of the log lines on standard error: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(parsing: .unconditional, help: "The most connections open at once; past it the one silent longest is closed (lowered to what the file descriptor limit allows).")
    var maxClients: Int = defaultMaxClients

    @Option(parsing: .unconditional, help: "Milliseconds a new connection has to complete the ZeroMQ handshake.")
    var handshakeTimeoutMs: Int = defaultHandshakeTimeoutMs

    @Option(parsing: .unconditional, help: "The largest message accepted, in bytes; a peer sending a larger frame is disconnected before it is buffered.")
    var maxMessageBytes: Int = defaultMaxMessageBytes

    @Option(help: "This coordinator's secret key file (NAME.key of `hulynet keygen`): serve with CURVE encryption; clients need NAME.pub.")
    var secretKey: String?

    @Option(help: "With --secret-key: the allow list of client keys (lines `Z85-PUBLIC-KEY NAME`, # comments), read again when it changes. Without it any client that knows the public key is admitted.")
    var allow: String?

    @Option(help: "etcd client URLs, URL[,URL...]: campaign for leadership with the other coordinators of the network through etcd, and serve only while leading.")
    var etcd: String?

    @Option(parsing: .unconditional, help: "With --etcd: seconds the leadership lease lives without renewal (whole seconds): a dead leader is replaced within about this long.")
    var leaseTtl: Int = 3

    @Option(help: "With --etcd: the key the coordinators of one network campaign for.")
    var etcdKey: String = "hulynet/leader"

    @Option(help: "With --etcd: this coordinator's address as others see it, HOST:PORT (default: --host and --port).")
    var advertise: String?
    @Option(parsing: .unconditional, help: "Serve GET /metrics (Prometheus text) and GET /health over HTTP on this port (0 picks one; default: none).")
    var metricsPort: Int?

    @Option(help: "The address of the metrics port.")
    var metricsHost: String = "127.0.0.1"

    func validate() throws {
        try checkSeconds(statsInterval, "--stats-interval", allowZero: true)
        if allow != nil, secretKey == nil { throw ValidationError("--allow needs --secret-key") }
        if etcd == nil, advertise != nil || etcdKey != "hulynet/leader" || leaseTtl != 3 {
            throw ValidationError("--lease-ttl, --etcd-key and --advertise need --etcd")
        }
        guard (1...300).contains(leaseTtl) else { throw ValidationError("--lease-ttl \(leaseTtl) is out of range (1 to 300 seconds)") }
    }

    func run() async throws {
        let environment = ProcessEnvironment()
        let host = host ?? environment["HOST"].flatMap { $0.isEmpty ? nil : $0 } ?? "0.0.0.0"
        let port = try port ?? environment["PORT"].map { text in
            guard let value = Int(text) else { throw ValidationError("PORT must be a number, got \(text)") }
            return value
        } ?? 3737
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("unknown --log-level \(logLevel)") }
        var logger = Logger(label: "hulynet.server")
        logger.logLevel = level
        ProcessMemory.mapLargeAllocations()
        if let endpoint = environment["OTEL_EXPORTER_OTLP_ENDPOINT"], !endpoint.isEmpty {
            logger.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set (\(endpoint)) but this build exports no traces: run hulynet-otel server (otel/, docs/OBSERVABILITY.md)")
        }
        var configuration = NetworkServer.Configuration(host: host, port: port, maxMessageBytes: maxMessageBytes,
                                                        handshakeTimeoutMs: handshakeTimeoutMs, maxClients: maxClients,
                                                        logger: logger)
        if let secretKey {
            do {
                configuration.security = ServerSecurity(keys: try KeyFiles.readSecret(secretKey), allowListPath: allow)
            } catch {
                printError("hulynet server: \(error)")
                throw ExitCode(2)
            }
        }
        configuration.metricsPort = metricsPort
        configuration.metricsHost = metricsHost
        if let etcd {
            // The elected coordinator serves /metrics and /health itself: a standby answers too.
            try await runElected(configuration, etcd: etcd)
            return
        }
        let server: NetworkServer
        do {
            // Every setting is checked there (a port past 65535, an empty host, ...), with a clear message.
            server = try NetworkServer(configuration)
        } catch {
            printError("hulynet server: \(error)")
            throw ExitCode(2)
        }
        print("hulynet server \(server.serverId) listening on \(host):\(server.port)")
        if let port = server.metricsPort { print("metrics on http://\(metricsHost):\(port)/metrics") }
        fflush(nil) // read through a pipe by supervisors and by `hulynet bench`
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

    /// One of several coordinators: serves while elected, stands by otherwise; each change of
    /// role is a line on standard output.
    private func runElected(_ server: NetworkServer.Configuration, etcd: String) async throws {
        let elected: ElectedCoordinator
        do {
            elected = try ElectedCoordinator(.init(
                server: server, etcd: etcd.split(separator: ",").map(String.init), key: etcdKey,
                election: .init(ttlMs: Int64(leaseTtl) * 1000), advertisedAddress: advertise
            )) { role, reason in
                switch role {
                case .leader(let serverId):
                    print("leading: hulynet server \(serverId) listening on \(server.host):\(server.port)")
                case .standby(let leader):
                    print("standing by (\(leader.map { "leader \($0)" } ?? "no leader")): \(reason)")
                case .stopped:
                    print("stopped")
                }
                fflush(nil)
            }
        } catch {
            printError("hulynet server: \(error)")
            throw ExitCode(2)
        }
        let statsTask = Task {
            guard statsInterval > 0 else { return }
            while !Task.isCancelled {
                try await Task.sleep(nanoseconds: UInt64(statsInterval * 1e9))
                guard let stats = elected.server?.stats() else { continue }
                print("clients \(stats.clients), agents \(stats.agents), containers \(stats.containers), requests \(stats.requests)")
            }
        }
        let sig = await waitForTermination()
        statsTask.cancel()
        print("signal \(sig): stopping")
        elected.stop()
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

    @Option(help: "The agent's uuid (default: a new one). A restarted agent with the same uuid takes its record back once the old process's client is gone.")
    var uuid: String?

    @Option(name: .customLong("stateless"),
            help: "KIND:UUID, a highly available echo container this agent offers under a fixed uuid (another agent may offer it too; one runs it at a time); repeatable.")
    var stateless: [String] = []

    @Flag(help: "Serve each container on an endpoint of its own (on the endpoint's HOST, a free port): clients connect to it directly, not through the agent.")
    var direct = false

    func validate() throws {
        for item in stateless {
            let parts = item.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw ValidationError("--stateless takes KIND:UUID, got '\(item)'") }
        }
        if let uuid, uuid.isEmpty { throw ValidationError("--uuid must not be empty") }
    }

    func run() async throws {
        let (host, port) = try parseAddress(endpoint, defaultPort: 0)
        let client = try await network.connect()
        var factories: [ContainerKind: ContainerFactory] = [:]
        for kind in kinds {
            let connection: StartedContainer.ConnectionMode = direct ? .direct(host: host, port: 0) : .routed
            factories[kind] = { options in
                let uuid = options.uuid ?? makeUUID()
                return StartedContainer(uuid: uuid, container: try await EchoContainer(uuid: uuid, options: options),
                                        connection: connection)
            }
        }
        let agent = Agent(uuid: uuid ?? makeUUID(), factories: factories)
        for item in stateless {
            let parts = item.split(separator: ":", maxSplits: 1).map(String.init)
            agent.addStatelessContainer(uuid: parts[1], kind: parts[0],
                                        container: try await EchoContainer(uuid: parts[1], options: GetOptions(uuid: parts[1])))
        }
        try await client.serve(agent, advertisedHost: host, port: port)
        print("agent \(agent.uuid) serving \(kinds.joined(separator: ", ")) at \(agent.endpoint ?? "-")\(direct ? " (containers on direct endpoints)" : "")")
        fflush(nil) // read through a pipe or a file by supervisors and tests
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

/// A line on standard error.
func printError(_ text: String) {
    let line = text + "\n"
    line.withCString { _ = write(2, $0, strlen($0)) }
}

/// The process environment without Foundation.
struct ProcessEnvironment {
    subscript(name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }
}
