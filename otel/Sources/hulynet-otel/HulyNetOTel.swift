import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import HulyNet
import HulyNetCore
import Logging
import OTel
import ServiceLifecycle

/// `hulynet-otel server|agent`: `hulynet server` and `hulynet agent` with the process's spans
/// exported over OTLP/HTTP, configured by the standard variables (OTEL_EXPORTER_OTLP_ENDPOINT,
/// OTEL_EXPORTER_OTLP_PROTOCOL http/protobuf or http/json, OTEL_SERVICE_NAME, ...), as the Huly
/// platform sets them for its network pod. Metrics and logs are not exported here: the
/// coordinator serves its metrics itself (docs/OBSERVABILITY.md).
@main
struct HulyNetOTelTool: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hulynet-otel",
        abstract: "A hulynet coordinator or agent whose spans are exported over OTLP/HTTP.",
        subcommands: [ServerCommand.self, AgentCommand.self])
}

/// Bootstraps the tracer (before any hulynet object exists, so that they trace) and runs `body`
/// beside the exporter until SIGINT or SIGTERM; the spans still queued are flushed on the way out.
func runTraced(serviceName: String, _ body: @escaping @Sendable () async throws -> Void) async throws {
    var configuration = OTel.Configuration.default
    configuration.serviceName = serviceName
    configuration.metrics.enabled = false
    configuration.logs.enabled = false
    configuration.traces.batchSpanProcessor.scheduleDelay = .milliseconds(500)
    let observability = try OTel.bootstrap(configuration: configuration)
    let logger = Logger(label: "hulynet-otel")
    let group = ServiceGroup(
        configuration: .init(services: [.init(service: observability), .init(service: Body(body), successTerminationBehavior: .gracefullyShutdownGroup)],
                             gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await group.run()
}

/// The program's own work as a service: runs until the group shuts down.
struct Body: Service {
    let body: @Sendable () async throws -> Void
    init(_ body: @escaping @Sendable () async throws -> Void) { self.body = body }
    func run() async throws {
        try await body()
        try await gracefulShutdown()
    }
}

struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "server", abstract: "Run a network coordinator.")

    @Option(help: "Address to bind.") var host = "0.0.0.0"
    @Option(help: "Port to bind (0 picks one).") var port = 3737

    func run() async throws {
        let (host, port) = (self.host, self.port)
        try await runTraced(serviceName: "hulynet-coordinator") {
            var logger = Logger(label: "hulynet.server")
            logger.logLevel = .info
            let server = try NetworkServer(.init(host: host, port: port, logger: logger))
            print("hulynet-otel server \(server.serverId) listening on \(host):\(server.port)")
            fflush(nil) // read through a pipe or a file by scripts
            await waitForShutdown()
            server.stop()
        }
    }
}

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "agent", abstract: "Run an agent of the echo kind.")

    @Option(help: "The network coordinator, HOST:PORT.") var network = "127.0.0.1:3737"

    func run() async throws {
        let network = self.network
        try await runTraced(serviceName: "hulynet-agent") {
            let client = try NetworkClient(address: network)
            try await client.waitForConnection(timeoutMs: 10_000)
            let agent = Agent(factories: ["echo": { options in
                let uuid = options.uuid ?? makeUUID()
                return StartedContainer(uuid: uuid, container: try await EchoContainer(uuid: uuid, options: options))
            }])
            try await client.serve(agent)
            print("agent \(agent.uuid) serving")
            fflush(nil)
            await waitForShutdown()
            await client.close()
        }
    }
}

/// Until the service group shuts down (a signal).
func waitForShutdown() async {
    try? await gracefulShutdown()
    while !Task.isCancelled, !Task.isShuttingDownGracefully {
        try? await Task.sleep(nanoseconds: 100_000_000)
    }
}
