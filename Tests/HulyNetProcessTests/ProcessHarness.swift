import CZeroMQ
import HulyNet
import HulyNetCore
import HulyNetProcess
import HulyNetSync
import HulyNetZMQ
import Logging
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The base of the multi-process tests: runs the built `hulynet` executable as child processes
/// (`ChildProcess`: output to files, /proc measures, signals, deadlines) and kills and reaps every
/// one of them in tearDown, whether the test passed, failed or threw.
///
/// Deadlines are short and scaled by HULYNET_TEST_TIMEOUT_SCALE (default 1; a slow machine or a
/// sanitizer build sets 3, say). HULYNET_BIN names the executable; by default it is `hulynet`
/// beside the test bundle (`swift build --build-tests` builds both into .build/debug).
class ProcessTestCase: XCTestCase {
    /// The multiplier of every deadline of these tests.
    static let timeoutScale: Double = {
        guard let text = getenv("HULYNET_TEST_TIMEOUT_SCALE").map({ String(cString: $0) }), let value = Double(text),
              value.isFinite, value > 0 else { return 1 }
        return value
    }()

    /// `milliseconds` times the scale.
    static func scaled(_ milliseconds: Int) -> Int { Int(Double(milliseconds) * timeoutScale) }
    func scaled(_ milliseconds: Int) -> Int { Self.scaled(milliseconds) }

    /// The `hulynet` executable under test.
    static func hulynetExecutable() throws -> String {
        if let path = getenv("HULYNET_BIN").map({ String(cString: $0) }), !path.isEmpty { return path }
        let own = try ChildProcess.ownExecutable()
        // .build/debug/hulynetPackageTests.xctest, or a bundle directory inside .build/debug.
        var directory = own
        while let slash = directory.lastIndex(of: "/") {
            directory = String(directory[..<slash])
            let candidate = directory + "/hulynet"
            if access(candidate, X_OK) == 0, !candidate.hasSuffix(".xctest/hulynet") { return candidate }
            if directory.hasSuffix("/.build") || directory.isEmpty { break }
        }
        throw ChildProcessError("no hulynet executable beside \(own): run `swift build --build-tests`, or set HULYNET_BIN")
    }

    private var children: [ChildProcess] = []
    private var cleanups: [() async -> Void] = []

    /// Starts `hulynet <arguments>`; it is killed in tearDown unless the test stopped it.
    func startHulynet(_ arguments: [String], environment: [String: String] = [:], fileLimit: Int? = nil) throws -> ChildProcess {
        let child = try ChildProcess(executable: try Self.hulynetExecutable(), arguments: arguments,
                                     environment: environment, fileLimit: fileLimit)
        children.append(child)
        return child
    }

    /// Starts another program the test needs (etcd, say); it is killed in tearDown likewise.
    func startProcess(_ executable: String, _ arguments: [String]) throws -> ChildProcess {
        let child = try ChildProcess(executable: executable, arguments: arguments)
        children.append(child)
        return child
    }

    /// `hulynet server` on 127.0.0.1 and a free port, once it listens; returns it and its port.
    func startServer(_ extraArguments: [String] = [], fileLimit: Int? = nil,
                     logLevel: String = "info") throws -> (ChildProcess, Int) {
        let server = try startHulynet(["server", "--host", "127.0.0.1", "--port", "0", "--stats-interval", "0",
                                       "--log-level", logLevel] + extraArguments, fileLimit: fileLimit)
        return (server, try server.waitForListeningPort(timeoutMs: scaled(10_000)))
    }

    /// Runs `body` in tearDown (after the test, before the children are killed), last added first.
    func addAsyncCleanup(_ body: @escaping () async -> Void) { cleanups.append(body) }

    /// A network client of the test process, connected; closed in tearDown.
    func connectClient(port: Int) async throws -> NetworkClient {
        var logger = Logger(label: "test.client")
        logger.logLevel = .critical
        let client = try NetworkClient(host: "127.0.0.1", port: port, options: .init(logger: logger))
        addAsyncCleanup { await client.close() }
        try await client.waitForConnection(timeoutMs: Int64(scaled(10_000)))
        return client
    }

    override func tearDown() async throws {
        for cleanup in cleanups.reversed() { await cleanup() }
        cleanups.removeAll()
        let failed = (testRun?.failureCount ?? 0) + (testRun?.unexpectedExceptionCount ?? 0) > 0
        for child in children {
            if failed {
                // What the children said is the best clue to a failure.
                print("--- \(child.executable) \(child.arguments.joined(separator: " ")) (\(child.status.map { "\($0)" } ?? "running"))")
                print(String(child.output(.stdout).suffix(4000)))
                print(String(child.output(.stderr).suffix(4000)))
            }
            child.kill()
        }
        children.removeAll()
        try await super.tearDown()
    }

    /// Polls `condition` until it holds; fails the test (and returns false) after `timeoutMs`.
    @discardableResult
    func eventually(_ what: String, timeoutMs: Int, pollMs: Int = 20, file: StaticString = #filePath, line: UInt = #line,
                    _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = ChildProcess.nowMs() + Int64(timeoutMs)
        while true {
            if try await condition() { return true }
            if ChildProcess.nowMs() >= deadline {
                XCTFail("\(what): not within \(timeoutMs) ms", file: file, line: line)
                return false
            }
            try? await Task.sleep(nanoseconds: UInt64(pollMs) * 1_000_000)
        }
    }

    /// Raises this process's soft limit of open files to at least `wanted` (up to the hard limit).
    func ensureOwnFileLimit(_ wanted: Int) throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        guard limit.rlim_cur < rlim_t(wanted) else { return }
        guard limit.rlim_max >= rlim_t(wanted) else {
            throw XCTSkip("this test opens \(wanted) sockets; the hard limit of open files is \(limit.rlim_max)")
        }
        limit.rlim_cur = rlim_t(wanted)
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}

/// A DEALER socket of the test process that speaks raw frames to a server, as a hostile peer
/// would. Confined to the task that made it.
final class RawDealer {
    let socket: ZMQSocket
    private let monitor: ZMQMonitor

    init(port: Int, context: ZMQContext = .shared) throws {
        socket = try ZMQSocket(context: context, type: .dealer)
        monitor = try socket.monitor(events: ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED, context: context)
        try socket.connect("tcp://127.0.0.1:\(port)")
    }

    deinit {
        socket.close()
        monitor.close()
    }

    /// Sends a message, waiting (with a deadline) while the send queue is full.
    func send(_ frames: [[UInt8]], timeoutMs: Int) throws {
        let deadline = ChildProcess.nowMs() + Int64(timeoutMs)
        while try !socket.send(frames, dontWait: true) {
            guard ChildProcess.nowMs() < deadline else { throw ZMQError(code: EAGAIN, context: "raw send stayed blocked") }
            drain()
            usleep(1000)
        }
    }

    /// Reads and drops whatever the server sent; returns how many messages.
    @discardableResult
    func drain() -> Int {
        var count = 0
        while case .some = try? socket.receive(dontWait: true) { count += 1 }
        return count
    }

    /// The next message within `timeoutMs`, or nil.
    func receive(timeoutMs: Int) throws -> [[UInt8]]? {
        let deadline = ChildProcess.nowMs() + Int64(timeoutMs)
        while true {
            if case .message(let frames)? = try socket.receive(dontWait: true) { return frames }
            let left = deadline - ChildProcess.nowMs()
            if left <= 0 { return nil }
            var poller = ZMQPoller()
            poller.add(socket)
            _ = try poller.poll(timeoutMs: Int(min(left, 50)))
        }
    }

    /// Whether the monitor reported `disconnected` since the last call (reads its events).
    func sawDisconnect() -> Bool {
        var seen = false
        while let event = try? monitor.next() { if event.isDisconnected { seen = true } }
        return seen
    }
}
