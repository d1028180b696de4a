import ArgumentParser
import HulyNet
import HulyNetCore
import HulyNetProcess
import HulyNetSync
import HulyNetZMQ
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The benchmark suite: every path of a request measured against the raw ZeroMQ limit of the
/// same hops in the same run, over several runs, with medians and spread (docs/PERFORMANCE.md).
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure hulynet against raw ZeroMQ on 127.0.0.1: requests, CPU and memory of the coordinator, fan-out.",
        discussion: """
            Progress goes to standard error; the table (or, with --json, one JSON object) to standard output.
            Each rate is compared with its raw baseline of the same run; the table gives the median
            over the runs and the spread.
            """)

    @Option(help: "Seconds per case.")
    var seconds: Double = 2

    @Option(help: "Runs of the whole suite; medians and spread are taken over them.")
    var runs: Int = 3

    @Option(help: "Bytes of data per request, a comma-separated list.")
    var bytes: String = "100,65536"

    @Option(help: "Requests in flight for the pipelined cases (the protocol allows 25 per client).")
    var depth: Int = 25

    @Option(help: "Clients of the many-clients case (1: skip it).")
    var clients: Int = 4

    @Option(help: "Distinct containers for the get-or-start cases, by uuid and by labels (0: skip them).")
    var containers: Int = 10_000

    @Option(help: "Clients receiving a container's broadcasts in the fan-out case (0: skip it).")
    var fanout: Int = 100

    @Option(help: "Clients of the scale case, raw sockets on one thread (0: skip it).")
    var scaleClients: Int = 1000

    @Option(help: "Containers the scale case's clients get between them.")
    var scaleContainers: Int = 10_000

    @Flag(help: "Skip the cases that run the coordinator in a process of its own (CPU and memory per request and record, get-or-start, scale).")
    var noProcesses = false

    @Flag(help: "Skip the raw ZeroMQ baselines.")
    var noBaseline = false

    @Option(help: "Run only the cases whose name contains this text (and their baselines), e.g. \"cs sync\".")
    var only: String?

    @Flag(help: "Also run the request cases with CURVE on every connection, each compared with the same case without it.")
    var curve = false

    @Flag(help: "Print the results as one JSON object instead of a table.")
    var json = false

    @Option(help: "Also write the results as JSON to this file.")
    var jsonFile: String?

    func validate() throws {
        guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600]") }
        guard (1...100).contains(runs) else { throw ValidationError("--runs must be 1 to 100") }
        guard (1...10_000).contains(depth) else { throw ValidationError("--depth must be 1 to 10000") }
        guard (1...64).contains(clients) else { throw ValidationError("--clients must be 1 to 64") }
        guard (0...1_000_000).contains(containers) else { throw ValidationError("--containers must be 0 to 1000000") }
        guard (0...1000).contains(fanout) else { throw ValidationError("--fanout must be 0 to 1000") }
        guard (0...5000).contains(scaleClients) else { throw ValidationError("--scale-clients must be 0 to 5000") }
        guard (1...1_000_000).contains(scaleContainers) else { throw ValidationError("--scale-containers must be 1 to 1000000") }
        _ = try sizes()
    }

    private func sizes() throws -> [Int] {
        let sizes = bytes.split(separator: ",").map { Int($0.filter { $0 != " " }) }
        guard !sizes.isEmpty, sizes.allSatisfy({ ($0 ?? 0) >= 2 && ($0 ?? 0) <= 8 << 20 }) else {
            throw ValidationError("--bytes must list sizes from 2 to 8388608, got \(bytes)")
        }
        return sizes.map { $0! }
    }

    func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let sizes = try sizes()
        // Opened first, so that a path that cannot be written fails now, not after the runs.
        let jsonOutput = try jsonFile.map { path in
            guard let file = fopen(path, "w") else { throw BenchError("cannot write \(path): \(String(cString: strerror(errno)))") }
            return file
        }
        let network = try await InProcessNetwork(clients: clients, logger: logger)
        let secured = curve ? try await InProcessNetwork(clients: clients, logger: logger, curve: true) : nil

        var suite: [BenchCase] = []
        for size in sizes {
            suite += rawCases(bytes: size)
            suite += network.requestCases(bytes: size, depth: depth, seconds: seconds)
            suite += secured?.requestCases(bytes: size, depth: depth, seconds: seconds) ?? []
        }
        if !noProcesses { suite += processCases(logger: logger) }
        if !noProcesses, scaleClients > 0 {
            suite += scaleCases(clients: scaleClients, containers: scaleContainers, seconds: seconds, logger: logger)
        }
        if fanout > 0 { suite.append(network.fanOutCase(fanout: fanout, depth: depth, seconds: seconds)) }
        suite.append(network.coldStartCase(seconds: seconds))
        suite = selected(suite)

        var results = BenchResults()
        let total = suite.count * runs
        var step = 0
        for run in 1...runs {
            for benchCase in suite {
                step += 1
                let sample = try await benchCase.measure()
                results.add(benchCase, sample)
                var line = "[\(step)/\(total)] run \(run)/\(runs) \(benchCase.key): "
                line += "\(format(sample.value, decimals: benchCase.kind == .cost ? 2 : 0)) \(benchCase.unit)"
                if let ratio = results.latestRatio(benchCase) { line += ", " + BenchResults.ratioText(ratio, benchCase) }
                for note in sample.notes { line += ", \(note.name) \(format(note.value, decimals: 0))" }
                progress(line)
            }
        }
        await network.close()
        await secured?.close()

        let machineReadable = results.json(runs: runs, seconds: seconds, settings: [
            "depth": .number(Double(depth)), "clients": .number(Double(clients)),
            "bytes": .array(sizes.map { .number(Double($0)) }),
        ])
        if let jsonFile, let jsonOutput {
            let written = fputs(machineReadable + "\n", jsonOutput)
            guard fclose(jsonOutput) == 0, written >= 0 else { throw BenchError("cannot write \(jsonFile)") }
        }
        print(json ? machineReadable : results.table(runs: runs, seconds: seconds))
    }

    /// The cases chosen by --only and --no-baseline, with the baselines they are compared with.
    private func selected(_ suite: [BenchCase]) -> [BenchCase] {
        let chosen = suite.filter { only.map($0.key.contains) ?? true }
        let needed = Set(chosen.compactMap(\.baseline))
        return suite.filter { benchCase in
            let isBaseline = suite.contains { $0.baseline == benchCase.key }
            if isBaseline && noBaseline { return false }
            return chosen.contains { $0.key == benchCase.key } || needed.contains(benchCase.key)
        }
    }

    /// The raw ZeroMQ baselines for `bytes` of data.
    private func rawCases(bytes: Int) -> [BenchCase] {
        let (seconds, depth, clients) = (self.seconds, self.depth, self.clients)
        func raw(_ name: String, _ measure: @escaping @Sendable () throws -> BenchCount) -> BenchCase {
            BenchCase(name: name, bytes: bytes, unit: "requests/s") { try measure().sample }
        }
        var cases = [
            raw("raw relay sync") { try RawBaseline.relay(seconds: seconds, bytes: bytes, depth: 1) },
            raw("raw relay \(depth) in flight") { try RawBaseline.relay(seconds: seconds, bytes: bytes, depth: depth) },
        ]
        if clients > 1 {
            cases.append(raw("raw relay \(clients) clients x \(depth) in flight") {
                try RawBaseline.relay(seconds: seconds, bytes: bytes, depth: depth, clients: clients)
            })
        }
        cases += [
            raw("raw echo sync") { try RawBaseline.echo(seconds: seconds, bytes: bytes, depth: 1) },
            raw("raw echo \(depth) in flight") { try RawBaseline.echo(seconds: seconds, bytes: bytes, depth: depth) },
        ]
        return cases
    }

    /// The coordinator alone in a process (`hulynet server`), measured from outside: the CPU time
    /// it spends per forwarded `cs` against a raw broker process (`hulynet raw-broker`) relaying
    /// the same frames, and its resident memory per container record.
    private func processCases(logger: Logger) -> [BenchCase] {
        let (seconds, containers) = (self.seconds, self.containers)
        var cases: [BenchCase] = []
        for depth in [1, self.depth] {
            let shape = depth == 1 ? "sync" : "\(depth) in flight"
            let rawName = "raw broker CPU per request, \(shape)"
            cases.append(BenchCase(name: rawName, unit: "us CPU/request", kind: .cost) {
                let (broker, brokerPort) = try startHulynet(["raw-broker"])
                defer { broker.stop() }
                let before = broker.cpuNanoseconds()
                let count = try RawBaseline.relay(seconds: seconds, bytes: 100, depth: depth, brokerPort: brokerPort)
                let cpu = broker.cpuNanoseconds() - before
                return BenchSample(value: Double(cpu) / 1000 / Double(max(1, count.done)),
                                   notes: [("requests/s", count.perSecond)])
            })
            cases.append(BenchCase(name: "coordinator CPU per cs request, \(shape)", unit: "us CPU/request", kind: .cost,
                                   baseline: rawName) {
                try await onCoordinatorProcess(logger: logger) { server, network in
                    let (client, uuid) = (network.client, network.reference.uuid)
                    let data = JSONValue.string(String(repeating: "x", count: 98))
                    for _ in 0..<200 { _ = try await client.request(uuid, operation: "echo", data: data) }
                    let before = server.cpuNanoseconds()
                    let count = try await measureCalls(tasks: depth, seconds: seconds) { _ in
                        _ = try await client.request(uuid, operation: "echo", data: data)
                    }
                    let cpu = server.cpuNanoseconds() - before
                    return BenchSample(value: Double(cpu) / 1000 / Double(max(1, count.done)),
                                       notes: [("requests/s", count.perSecond)])
                }
            })
        }
        if containers > 0 {
            let byUuid = "get-or-start of \(containers) containers by uuid, \(depth) at a time"
            cases.append(getOrStartCase(byUuid, logger: logger) { GetOptions(uuid: "bench-\($0)") })
            // One label every container has and one of its own, of a realistic length (longer
            // than the 15 bytes Swift keeps inline): the lookup must not scan the containers that
            // share the first.
            cases.append(getOrStartCase("get-or-start of \(containers) containers by labels, \(depth) at a time",
                                        baseline: byUuid, logger: logger) {
                GetOptions(labels: ["bench-workspace-0001", "bench-user-\($0)-of-workspace-0001"])
            })
        }
        return cases
    }

    /// `containers` get-or-starts with the options `options(index)`, `depth` at a time, against a
    /// coordinator process; then the same gets again, which must find the containers started.
    private func getOrStartCase(_ name: String, baseline: String? = nil, logger: Logger,
                                options: @escaping @Sendable (Int) -> GetOptions) -> BenchCase {
        let (containers, depth) = (self.containers, self.depth)
        return BenchCase(name: name, unit: "starts/s", baseline: baseline) {
            try await onCoordinatorProcess(logger: logger) { server, network in
                let client = network.client
                let residentBefore = server.residentBytes() ?? 0
                let started = Locked([ContainerUUID](repeating: "", count: containers))
                let starts = try await forEachIndex(below: containers, concurrency: depth) { index in
                    let uuid = try await client.get(kind: "echo", options: options(index)).uuid
                    started.withLock { $0[index] = uuid }
                }
                let perRecord = Double((server.residentBytes() ?? 0) - residentBefore) / Double(containers)
                let again = try await forEachIndex(below: containers, concurrency: depth) { index in
                    let uuid = try await client.get(kind: "echo", options: options(index)).uuid
                    let first = started.withLock { $0[index] }
                    guard uuid == first else { throw BenchError("get-or-start \(index) again: container \(uuid), not \(first)") }
                }
                let distinct = started.withLock { Set($0).count }
                let listed = try await client.list(kind: "echo").count
                guard distinct == containers, listed == containers + 1 else {
                    throw BenchError("get-or-start: \(distinct) distinct containers started, \(listed) listed; expected \(containers) and \(containers + 1)")
                }
                let elapsed = Double(starts.nanoseconds) / 1e9
                return BenchSample(value: Double(containers) / elapsed,
                                   notes: [("ms in all", elapsed * 1000), ("coordinator bytes per record", perRecord),
                                           ("gets of started ones/s", again.perSecond)])
            }
        }
    }
}

/// `hulynet <arguments>` (this executable) as a child process measured from outside, once it
/// printed the port it listens on.
func startHulynet(_ arguments: [String]) throws -> (ChildProcess, Int) {
    let child = try ChildProcess(executable: ChildProcess.ownExecutable(), arguments: arguments)
    do {
        return (child, try child.waitForListeningPort(timeoutMs: 10_000))
    } catch {
        child.kill()
        throw error
    }
}

/// Runs `body` against a coordinator of its own process, with the bench's agent and client.
func onCoordinatorProcess<T: Sendable>(logger: Logger,
                                       _ body: (ChildProcess, BenchNetwork) async throws -> T) async throws -> T {
    let (server, port) = try startHulynet(["server", "--host", "127.0.0.1", "--port", "0", "--stats-interval", "0",
                                           "--log-level", "warning"])
    defer { server.stop() }
    let network = try await BenchNetwork(port: port, logger: logger)
    do {
        let result = try await body(server, network)
        await network.close()
        return result
    } catch {
        await network.close()
        throw error
    }
}

/// A plain ZeroMQ broker in a process of its own, for the CPU baseline of `hulynet bench`: it
/// relays `[op, id, json]` between clients and one worker and does nothing else.
struct RawBroker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "raw-broker", shouldDisplay: false)

    @Option(help: "Port to bind on 127.0.0.1 (0 picks one).")
    var port: Int = 0

    func run() async throws {
        let context = ZMQContext()
        let (broker, bound) = try RawBaseline.boundRouter(context, port: port)
        print("raw broker listening on 127.0.0.1:\(bound)")
        fflush(nil) // the parent reads the port through a pipe
        nonisolated(unsafe) let socket = broker // handed over to the broker thread
        let stop = StopFlag()
        let done = Thread.start { RawBaseline.runBroker(socket, until: stop) }
        _ = await waitForTermination()
        stop.set()
        done.wait()
        context.terminate()
    }
}

/// Load for a coordinator or raw broker run elsewhere (under a profiler, by
/// scripts/profile-coordinator.sh): `requests` requests of 100 bytes, `depth` in flight, from an
/// echo agent and a client of this process; for a raw broker, from a raw worker and client.
struct BenchLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-load", shouldDisplay: false)

    @Option(help: "The coordinator's (or raw broker's) port on 127.0.0.1.")
    var port: Int

    @Option(help: "Requests to send.")
    var requests: Int = 10_000

    @Option(help: "Requests in flight.")
    var depth: Int = 25

    @Flag(help: "The other side is `hulynet raw-broker`.")
    var raw = false

    func run() async throws {
        let count: BenchCount
        if raw {
            count = try RawBaseline.relay(seconds: 600, bytes: 100, depth: depth, brokerPort: port, requests: requests)
        } else {
            var logger = Logger(label: "bench-load")
            logger.logLevel = .error
            let network = try await BenchNetwork(port: port, logger: logger)
            let (client, uuid) = (network.client, network.reference.uuid)
            let data = JSONValue.string(String(repeating: "x", count: 98))
            count = try await forEachIndex(below: requests, concurrency: depth) { _ in
                _ = try await client.request(uuid, operation: "echo", data: data, timeoutMs: 120_000)
            }
            await network.close()
        }
        print("\(count.done) requests in \(format(Double(count.nanoseconds) / 1e9, decimals: 2)) s")
    }
}
