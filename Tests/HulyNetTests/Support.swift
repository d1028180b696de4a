import Foundation
import HulyNet
import HulyNetCore
import HulyNetSync
import HulyNetZMQ
import Logging
import XCTest

// Helpers of the socket-level tests: servers and clients on 127.0.0.1 with short timeouts, a
// condition poller, a raw DEALER peer that speaks the frames by hand, and a test container kind
// ("probe") that records what happens to it.

// MARK: - Timeouts and loggers

/// Short timeouts so that every timing rule is crossed within a second or two.
let testTimeouts = Timeouts(aliveMs: 800, unusedContainerMs: 600, pingIntervalMs: 200, requestMs: 5000, tickMs: 50)

/// A logger that stays quiet unless something is badly wrong (set HULYNET_TEST_LOG=1 to see all).
func testLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = ProcessInfo.processInfo.environment["HULYNET_TEST_LOG"] == nil ? .critical : .debug
    return logger
}

func nowMs() -> Int64 { MonotonicClock.nowMs() }

// MARK: - Waiting for conditions

/// Polls `condition` every 20 ms until it holds or `timeout` seconds pass; on timeout the test
/// fails with `message`. A condition that throws counts as not (yet) holding.
@discardableResult
func eventually(_ message: @autoclosure () -> String, timeout: Double = 3.0,
                file: StaticString = #filePath, line: UInt = #line,
                _ condition: () async throws -> Bool) async -> Bool {
    let deadline = nowMs() + Int64(timeout * 1000)
    while true {
        if (try? await condition()) == true { return true }
        if nowMs() >= deadline {
            XCTFail("not within \(timeout) s: \(message())", file: file, line: line)
            return false
        }
        try? await Task.sleep(nanoseconds: 20_000_000)
    }
}

/// Runs `body` expecting `NetworkError.remote`; returns its message (nil and a failure otherwise).
func remoteErrorMessage<T>(file: StaticString = #filePath, line: UInt = #line,
                           _ body: () async throws -> T) async -> String? {
    do {
        let value = try await body()
        XCTFail("expected NetworkError.remote, got the answer \(value)", file: file, line: line)
        return nil
    } catch let error as NetworkError {
        guard case .remote(let remote) = error else {
            XCTFail("expected NetworkError.remote, got \(error)", file: file, line: line)
            return nil
        }
        return remote.message
    } catch {
        XCTFail("expected NetworkError.remote, got \(error)", file: file, line: line)
        return nil
    }
}

/// Runs an async body with a bound: fails the test (and throws) when it does not finish in time.
/// The body keeps running in the background then; the test goes on at once.
func withBound<T: Sendable>(_ seconds: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line,
                            _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let outcome: Result<T, any Error>? = await withCheckedContinuation { continuation in
        let once = ResumeOnce(continuation)
        Task {
            do { once.resume(.success(try await body())) } catch { once.resume(.failure(error)) }
        }
        Task {
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            once.resume(nil)
        }
    }
    guard let outcome else {
        XCTFail("\(what): not finished within \(seconds) s", file: file, line: line)
        throw NetworkError.timeout(what)
    }
    return try outcome.get()
}

// MARK: - Servers and clients

/// What a test opened, closed when it ends: clients first (they may still talk to a server),
/// then raw peers, then servers.
final class Cleanup: @unchecked Sendable {
    private let lock = NSLock()
    private var clients: [NetworkClient] = []
    private var peers: [RawPeer] = []
    private var servers: [NetworkServer] = []
    private var gates: [Gate] = []

    func add(_ client: NetworkClient) { lock.withLock { clients.append(client) } }
    func add(_ peer: RawPeer) { lock.withLock { peers.append(peer) } }
    func add(_ server: NetworkServer) { lock.withLock { servers.append(server) } }
    func add(_ gate: Gate) { lock.withLock { gates.append(gate) } }

    func run() async {
        let (clients, peers, servers, gates) = lock.withLock { () -> ([NetworkClient], [RawPeer], [NetworkServer], [Gate]) in
            defer {
                self.clients.removeAll()
                self.peers.removeAll()
                self.servers.removeAll()
                self.gates.removeAll()
            }
            return (self.clients, self.peers, self.servers, self.gates)
        }
        // Requests still blocked in test containers are let go, so nothing waits on them.
        for gate in gates { gate.open() }
        for client in clients.reversed() { await client.close() }
        for peer in peers { peer.close() }
        for server in servers.reversed() { server.stop() }
    }
}

/// The base of the socket-level tests: servers, clients and raw peers made through it are closed
/// when the test ends, in an order that never leaves a client talking to a stopped server.
class IntegrationTestCase: XCTestCase {
    let cleanup = Cleanup()

    override func setUp() {
        super.setUp()
        let cleanup = self.cleanup
        addTeardownBlock { await cleanup.run() }
    }

    /// A coordinator on 127.0.0.1 (`port` 0 picks one). A port just freed by a stopped server
    /// may take a moment to be released: binding is retried for up to 3 s.
    func startServer(port: Int = 0, timeouts: Timeouts = testTimeouts, inFlightLimit: Int = defaultInFlightLimit,
                     maxMessageBytes: Int = defaultMaxMessageBytes, maxClients: Int = defaultMaxClients,
                     file: StaticString = #filePath, line: UInt = #line) async throws -> NetworkServer {
        let configuration = NetworkServer.Configuration(host: "127.0.0.1", port: port, timeouts: timeouts,
                                                        inFlightLimit: inFlightLimit, maxMessageBytes: maxMessageBytes,
                                                        maxClients: maxClients, logger: testLogger("test.server"))
        let deadline = nowMs() + 3000
        while true {
            do {
                let server = try NetworkServer(configuration)
                cleanup.add(server)
                return server
            } catch {
                if port == 0 || nowMs() >= deadline {
                    XCTFail("cannot start a server on 127.0.0.1:\(port): \(error)", file: file, line: line)
                    throw error
                }
                try await Task.sleep(nanoseconds: 20_000_000)
            }
        }
    }

    /// A client of the coordinator on `port`, connected (hello answered).
    func makeClient(port: Int, connect: Bool = true) async throws -> NetworkClient {
        let client = try NetworkClient(host: "127.0.0.1", port: port,
                                       options: .init(timeouts: testTimeouts, getTimeoutMs: 10_000,
                                                      logger: testLogger("test.client")))
        cleanup.add(client)
        if connect { try await client.waitForConnection(timeoutMs: 3000) }
        return client
    }

    /// A raw DEALER to `port`.
    func makeRawPeer(port: Int, clientId: String = "raw-" + makeUUID()) throws -> RawPeer {
        let peer = try RawPeer(port: port, clientId: clientId)
        cleanup.add(peer)
        return peer
    }

    /// A probe recorder whose gate is opened when the test ends.
    func makeRecorder() -> ProbeRecorder {
        let recorder = ProbeRecorder()
        cleanup.add(recorder.gate)
        return recorder
    }

    /// A coordinator, an agent of "probe" containers served by a client of its own, and a client.
    func probeNetwork() async throws -> (server: NetworkServer, agentSide: NetworkClient, agent: Agent,
                                         recorder: ProbeRecorder, client: NetworkClient) {
        let server = try await startServer()
        let agentSide = try await makeClient(port: server.port)
        let recorder = makeRecorder()
        let agent = Agent(factories: ["probe": recorder.factory()])
        try await agentSide.serve(agent)
        return (server, agentSide, agent, recorder, try await makeClient(port: server.port))
    }
}

/// A factory of the built-in "echo" kind.
func echoFactory() -> ContainerFactory {
    { options in
        let uuid = options.uuid ?? makeUUID()
        return StartedContainer(uuid: uuid, container: try await EchoContainer(uuid: uuid, options: options))
    }
}

// MARK: - Network events

/// Collects the events an `onUpdate` listener sees.
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [NetworkEvent] = []

    func append(_ event: NetworkEvent) {
        lock.lock()
        events.append(event)
        lock.unlock()
    }

    var all: [NetworkEvent] {
        lock.lock()
        defer { lock.unlock() }
        return events
    }

    /// Every change of agent `id`, in order.
    func agentChanges(_ id: AgentUUID) -> [NetworkEventKind] {
        all.flatMap { $0.agents.filter { $0.id == id }.map(\.event) }
    }

    /// Every change of container `uuid`, in order.
    func containerChanges(_ uuid: ContainerUUID) -> [NetworkEvent.ContainerChange] {
        all.flatMap { $0.containers.filter { $0.container.uuid == uuid } }
    }

    func hasAgent(_ id: AgentUUID, _ kind: NetworkEventKind) -> Bool { agentChanges(id).contains(kind) }

    func hasContainer(_ uuid: ContainerUUID, _ kind: NetworkEventKind) -> Bool {
        containerChanges(uuid).contains { $0.event == kind }
    }

    /// Subscribes to `client`'s updates.
    @discardableResult
    func follow(_ client: NetworkClient) -> Subscription {
        client.onUpdate { [self] event in append(event) }
    }
}

extension EventLog {
    /// Collects what `onMoved` handlers are told.
    final class Moves: @unchecked Sendable {
        private let lock = NSLock()
        private var moves: [(uuid: ContainerUUID, endpoint: String)] = []
        func append(_ uuid: ContainerUUID, _ endpoint: String) { lock.withLock { moves.append((uuid, endpoint)) } }
        var count: Int { lock.withLock { moves.count } }
    }
}

extension EndpointRef {
    static func agentId(of endpoint: String) -> AgentUUID? { try? EndpointRef(parsing: endpoint).agentId }
}

/// Collects the events a container connection receives.
final class Inbox: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [JSONValue] = []

    func append(_ value: JSONValue) {
        lock.lock()
        items.append(value)
        lock.unlock()
    }

    var all: [JSONValue] {
        lock.lock()
        defer { lock.unlock() }
        return items
    }
}

/// A counter shared between tasks.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    /// Adds one; returns the new value.
    func increment() -> Int { lock.withLock { count += 1; return count } }
    var value: Int { lock.withLock { count } }
}

// MARK: - A gate that blocks requests until opened

/// Requests wait here until `open`; counts how many wait now and at most.
final class Gate: @unchecked Sendable {
    private let lock = NSLock()
    private var isOpen = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var _maxWaiting = 0

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            lock.lock()
            if isOpen {
                lock.unlock()
                continuation.resume()
                return
            }
            waiters.append(continuation)
            _maxWaiting = max(_maxWaiting, waiters.count)
            lock.unlock()
        }
    }

    var waiting: Int {
        lock.lock()
        defer { lock.unlock() }
        return waiters.count
    }

    var maxWaiting: Int {
        lock.lock()
        defer { lock.unlock() }
        return _maxWaiting
    }

    func open() {
        lock.lock()
        isOpen = true
        let released = waiters
        waiters.removeAll()
        lock.unlock()
        for waiter in released { waiter.resume() }
    }

    /// Closes it again (later requests wait); resets the maximum.
    func close() {
        lock.lock()
        isOpen = false
        _maxWaiting = waiters.count
        lock.unlock()
    }
}

// MARK: - The probe container kind

/// What happened to the probe containers of one agent.
final class ProbeRecorder: @unchecked Sendable {
    struct Link: Equatable {
        let container: ContainerUUID
        let client: ClientUUID
    }

    private let lock = NSLock()
    private var _started: [ContainerUUID] = []
    private var _connects: [Link] = []
    private var _disconnects: [Link] = []
    private var _terminated: [ContainerUUID] = []
    private var _runs: [String: Int] = [:]
    private var _containers: [ContainerUUID: ProbeContainer] = [:]
    let gate = Gate()

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    var started: [ContainerUUID] { locked { _started } }
    var connects: [Link] { locked { _connects } }
    var disconnects: [Link] { locked { _disconnects } }
    var terminated: [ContainerUUID] { locked { _terminated } }
    func container(_ uuid: ContainerUUID) -> ProbeContainer? { locked { _containers[uuid] } }
    /// How many times a "block" request with this marker ran.
    func runs(_ marker: String) -> Int { locked { _runs[marker] ?? 0 } }

    func didStart(_ container: ProbeContainer) {
        locked {
            _started.append(container.uuid)
            _containers[container.uuid] = container
        }
    }

    func didConnect(_ uuid: ContainerUUID, _ client: ClientUUID) { locked { _connects.append(Link(container: uuid, client: client)) } }
    func didDisconnect(_ uuid: ContainerUUID, _ client: ClientUUID) { locked { _disconnects.append(Link(container: uuid, client: client)) } }
    func didTerminate(_ uuid: ContainerUUID) { locked { _terminated.append(uuid) } }
    func didRun(_ marker: String) { locked { _runs[marker, default: 0] += 1 } }

    /// A factory of probe containers reporting here; `connection` is how clients reach them.
    func factory(connection: StartedContainer.ConnectionMode = .routed) -> ContainerFactory {
        { [self] options in
            let uuid = options.uuid ?? makeUUID()
            let container = ProbeContainer(uuid: uuid, recorder: self)
            didStart(container)
            return StartedContainer(uuid: uuid, container: container, connection: connection)
        }
    }
}

/// The test container kind. Operations:
/// - "echo" (and anything unknown): answers the data;
/// - "fail": throws `ContainerError` with the data as its message;
/// - "broadcast": sends the data to every connected client, answers how many;
/// - "whoami": answers the caller's client id (null through the coordinator);
/// - "block": counts a run of the data (a marker), waits for the recorder's gate, answers the data.
final class ProbeContainer: Container, @unchecked Sendable {
    let uuid: ContainerUUID
    private let recorder: ProbeRecorder
    private let lock = NSLock()
    private var sinks: [ClientUUID: EventSink] = [:]

    init(uuid: ContainerUUID, recorder: ProbeRecorder) {
        self.uuid = uuid
        self.recorder = recorder
    }

    func request(operation: String, data: JSONValue, client: ClientUUID?) async throws -> JSONValue {
        switch operation {
        case "fail":
            throw ContainerError(data.stringValue ?? "probe failure")
        case "broadcast":
            let targets = lock.withLock { Array(sinks.values) }
            for sink in targets { sink.send(data) }
            return .number(Double(targets.count))
        case "whoami":
            return client.map { .string($0) } ?? .null
        case "block":
            recorder.didRun(data.stringValue ?? "")
            await recorder.gate.wait()
            return data
        default:
            return data
        }
    }

    func connect(client: ClientUUID, events: EventSink) {
        lock.lock()
        sinks[client] = events
        lock.unlock()
        recorder.didConnect(uuid, client)
    }

    func disconnect(client: ClientUUID) {
        lock.lock()
        sinks.removeValue(forKey: client)
        lock.unlock()
        recorder.didDisconnect(uuid, client)
    }

    func terminate() async {
        lock.withLock { sinks.removeAll() }
        recorder.didTerminate(uuid)
    }

    var connectedClients: Int {
        lock.lock()
        defer { lock.unlock() }
        return sinks.count
    }
}

// MARK: - A raw DEALER peer

/// A DEALER socket driven by hand: sends frames as text, receives with a bounded poll. Used from
/// one test at a time (never concurrently).
final class RawPeer: @unchecked Sendable {
    let socket: ZMQSocket
    let clientId: String
    private var counter = 0

    init(port: Int, clientId: String) throws {
        self.clientId = clientId
        socket = try ZMQSocket(type: .dealer)
        try socket.connect("tcp://127.0.0.1:\(port)")
    }

    func close() { socket.close() }

    func send(_ frames: [String]) throws {
        try sendBytes(frames.map { Array($0.utf8) })
    }

    func sendBytes(_ frames: [[UInt8]]) throws {
        guard try socket.send(frames, dontWait: true) else { throw ZMQError(code: EAGAIN, context: "raw send would block") }
    }

    /// A fresh request id: clientId-counter.
    func nextReqId() -> String {
        counter += 1
        return "\(clientId)-\(counter)"
    }

    /// Sends `["1", reqId, "[method, params]"]` and returns the reqId.
    @discardableResult
    func request(_ method: String, _ params: JSONValue) throws -> String {
        let reqId = nextReqId()
        try send(["1", reqId, JSONValue.array([.string(method), params]).serializedString()])
        return reqId
    }

    /// The next message (as text frames), or nil when none comes within `timeoutMs`.
    func receive(timeoutMs: Int = 3000) async throws -> [String]? {
        let deadline = nowMs() + Int64(timeoutMs)
        while true {
            if case .message(let frames)? = try socket.receive(dontWait: true) {
                return frames.map(\.frameText)
            }
            let left = deadline - nowMs()
            if left <= 0 { return nil }
            var poller = ZMQPoller()
            poller.add(socket)
            // Short slices: never hold a thread of the cooperative pool for long.
            _ = try poller.poll(timeoutMs: Int(min(left, 10)))
            await Task.yield()
        }
    }

    /// The next message that is not a network event (op 4) nor a pong (op 6), or nil on timeout.
    func receiveAnswer(timeoutMs: Int = 3000) async throws -> [String]? {
        let deadline = nowMs() + Int64(timeoutMs)
        while true {
            let left = Int(deadline - nowMs())
            guard left > 0, let frames = try await receive(timeoutMs: left) else { return nil }
            if frames.first == "4" || frames.first == "6" { continue }
            return frames
        }
    }

    /// Says hello; returns the server id of the answer.
    func hello(aliveTimeoutSeconds: Int = 30, file: StaticString = #filePath, line: UInt = #line) async throws -> String {
        try send(["0", clientId, "{\"aliveTimeout\":\(aliveTimeoutSeconds)}", ""])
        guard let answer = try await receiveAnswer() else {
            XCTFail("no answer to hello", file: file, line: line)
            throw NetworkError.timeout("hello")
        }
        XCTAssertEqual(answer.first, "0", "hello answered with \(answer)", file: file, line: line)
        return answer.count > 1 ? answer[1] : ""
    }
}

/// An endpoint reference string parsed (JSON key order is not significant), nil if it does not parse.
func endpointRef(_ text: String?) -> EndpointRef? {
    guard let text else { return nil }
    return try? EndpointRef(parsing: text)
}

/// Asserts that two endpoint references (JSON text) both parse and name the same endpoint.
func assertSameEndpoint(_ actual: String?, _ expected: String?, _ message: String = "",
                        file: StaticString = #filePath, line: UInt = #line) {
    guard let parsed = endpointRef(actual) else {
        XCTFail("endpoint \(actual.map { "'\($0)'" } ?? "nil") is not an endpoint reference. \(message)", file: file, line: line)
        return
    }
    guard let wanted = endpointRef(expected) else {
        XCTFail("expected endpoint \(expected.map { "'\($0)'" } ?? "nil") is not an endpoint reference. \(message)", file: file, line: line)
        return
    }
    XCTAssertEqual(parsed, wanted, message, file: file, line: line)
}

/// The message text of a responseError payload.
func errorText(_ payload: String) -> String {
    (try? JSONValue.parse(payload))?.member("message")?.stringValue ?? payload
}
