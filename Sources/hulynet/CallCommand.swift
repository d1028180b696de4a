import ArgumentParser
import HulyNet
import HulyNetCore
import HulyNetSync
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// A probe for failover drills: gets one reference, then calls it (a steady rate of small calls,
/// or a batch of slow ones at once) and prints every outcome as a JSON line, with the times on
/// the monotonic clock that every process of the machine shares. The fault tests run it as a
/// child process, so that it can be paused or cut off like any other peer.
struct CallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "Call a container repeatedly and print each outcome as a JSON line (for failover drills).",
        discussion: """
        Lines: {"event":"ready",...} once the reference is held; {"event":"call","i":N,"start":MS,"end":MS,"ok":true|false,\
        "answer"|"error":...} per call; {"event":"moved","uuid":...,"endpoint":...,"at":MS} when the container moved; \
        {"event":"done","calls":N,"errors":N,"max_ms":N} at the end. MS: CLOCK_MONOTONIC milliseconds.
        """)

    @OptionGroup var network: NetworkOptions

    @Option(help: "The container kind to get.")
    var kind: String = "echo"

    @Option(help: "Get the container with this uuid.")
    var uuid: String?

    @Option(name: .customLong("label"), help: "Get a container with this label; repeatable.")
    var labels: [String] = []

    @Option(help: "Calls per second, one at a time (each waits for the previous one).")
    var rate: Double = 100

    @Option(help: "Seconds to keep calling at --rate (0: until SIGINT or SIGTERM).")
    var duration: Double = 10

    @Option(help: "Instead of --rate: this many slow calls at once (operation 'slow', keys k0, k1, ...).")
    var slow: Int = 0

    @Option(help: "Milliseconds each slow call takes in the container.")
    var slowMs: Int = 2000

    @Flag(help: "Call over a connection (routed through the agent, or direct) instead of through the coordinator.")
    var connection = false

    @Option(help: "Each call's timeout in milliseconds (default: the client's request timeout).")
    var timeoutMs: Int64?

    func validate() throws {
        guard rate > 0, rate <= 100_000 else { throw ValidationError("--rate must be in (0, 100000]") }
        try checkSeconds(duration, "--duration", allowZero: true)
        guard (0...10_000).contains(slow) else { throw ValidationError("--slow must be in [0, 10000]") }
        guard (0...60_000).contains(slowMs) else { throw ValidationError("--slow-ms must be in [0, 60000]") }
        if let timeoutMs, !(1...Timeouts.maxMs).contains(timeoutMs) { throw ValidationError("--timeout-ms must be in [1, \(Timeouts.maxMs)]") }
    }

    func run() async throws {
        let client = try await network.connect()
        let options = GetOptions(uuid: uuid, labels: labels.isEmpty ? nil : labels)
        let reference = try await client.get(kind: kind, options: options)
        let out = LineWriter()
        reference.onMoved { uuid, endpoint in
            out.write(["event": "moved", "uuid": .string(uuid), "endpoint": .string(endpoint), "at": now()])
        }
        let conn = connection ? try await reference.connect() : nil
        out.write(["event": "ready", "uuid": .string(reference.uuid), "endpoint": .string(reference.endpoint),
                   "client": .string(client.clientId)])

        let stats = CallStats()
        let timeoutMs = timeoutMs
        @Sendable func call(_ index: Int, _ operation: String, _ data: JSONValue) async {
            let start = MonotonicClock.nowMs()
            let result: Result<JSONValue, NetworkError>
            do throws(NetworkError) {
                result = .success(conn != nil
                    ? try await conn!.request(operation, data, timeoutMs: timeoutMs)
                    : try await reference.request(operation, data, timeoutMs: timeoutMs))
            } catch {
                result = .failure(error)
            }
            let end = MonotonicClock.nowMs()
            stats.record(ms: end - start, ok: (try? result.get()) != nil)
            var line: [String: JSONValue] = ["event": "call", "i": .number(Double(index)),
                                             "start": .number(Double(start)), "end": .number(Double(end))]
            switch result {
            case .success(let answer):
                line["ok"] = true
                line["answer"] = answer
            case .failure(let error):
                line["ok"] = false
                line["error"] = .string("\(error)")
            }
            out.write(line)
        }

        if slow > 0 {
            await withTaskGroup(of: Void.self) { group in
                for index in 0..<slow {
                    group.addTask { await call(index, "slow", ["key": .string("k\(index)"), "ms": .number(Double(slowMs))]) }
                }
            }
        } else {
            let stop = Box(false)
            let stopper = Task {
                if duration > 0 { try? await Task.sleep(nanoseconds: UInt64(duration * 1e9)) } else { _ = await waitForTermination() }
                stop.value = true
            }
            let interval = Int64(1000 / rate)
            var index = 0
            var next = MonotonicClock.nowMs()
            while !stop.value {
                await call(index, "echo", ["i": .number(Double(index))])
                index += 1
                next += interval
                let wait = next - MonotonicClock.nowMs()
                if wait > 0 { try? await Task.sleep(nanoseconds: UInt64(wait) * 1_000_000) } else { next = MonotonicClock.nowMs() }
            }
            stopper.cancel()
        }
        let (calls, errors, maxMs) = stats.summary
        out.write(["event": "done", "calls": .number(Double(calls)), "errors": .number(Double(errors)),
                   "max_ms": .number(Double(maxMs))])
        await conn?.close()
        await client.close()
        if errors > 0 { throw ExitCode(1) }
    }
}

private func now() -> JSONValue { .number(Double(MonotonicClock.nowMs())) }

/// Writes whole JSON lines to standard output, one writer at a time, flushed at once (a test
/// reads them while the probe runs).
final class LineWriter: @unchecked Sendable {
    private let lock = Lock()
    func write(_ object: [String: JSONValue]) {
        let text = JSONValue.object(object).serializedString()
        lock.withLock {
            print(text)
            fflush(nil)
        }
    }
}

final class CallStats: @unchecked Sendable {
    private let lock = Lock()
    private var calls = 0
    private var errors = 0
    private var maxMs: Int64 = 0
    func record(ms: Int64, ok: Bool) {
        lock.withLock {
            calls += 1
            if !ok { errors += 1 }
            maxMs = max(maxMs, ms)
        }
    }
    var summary: (Int, Int, Int64) { lock.withLock { (calls, errors, maxMs) } }
}

final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
