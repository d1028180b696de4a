import CZeroMQ
import HulyNet
import HulyNetCore
import HulyNetSync
import HulyNetZMQ
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The scale cases: `clients` clients holding `containers` containers between them, on one
/// coordinator in a process of its own, the bench's agent hosting the containers. One scenario
/// per run gives all their figures:
/// 1. the bench's client sends synchronous `cs` for `seconds`: the latency with the network idle;
/// 2. the clients say hello: the coordinator's resident growth per client;
/// 3. each client gets its share of the containers, by two labels (its own and a slot's), one
///    after another, all clients at once: the time to start them all, and the growth per container;
/// 4. while every client pings once a second and sends one `cs` a second to one of its
///    containers: the coordinator's CPU share for that traffic alone, then the latency again.
/// The clients are raw DEALER sockets on one thread (`RawClientFleet`): a thousand
/// `NetworkClient`s would run a thousand I/O threads, each decoding every network event.
func scaleCases(clients: Int, containers: Int, seconds: Double, logger: Logger) -> [BenchCase] {
    let loaded = "\(clients) clients and \(containers) containers"
    let perClient = "scale: coordinator bytes per client, \(clients) clients"
    let perContainer = "scale: coordinator bytes per container, \(containers) containers for \(clients) clients"
    let start = "scale: \(containers) containers started for \(clients) clients"
    let idleP50 = "scale: cs latency p50, network idle", loadedP50 = "scale: cs latency p50, \(loaded)"
    let idleP99 = "scale: cs latency p99, network idle", loadedP99 = "scale: cs latency p99, \(loaded)"

    let scenario = SharedMeasurement {
        try raiseOpenFileLimit(atLeast: 2 * clients + 512)
        return try await onCoordinatorProcess(logger: logger) { server, network in
            let (client, uuid) = (network.client, network.reference.uuid)
            let data = JSONValue.string(String(repeating: "x", count: 98))
            let request: @Sendable () async throws -> Void = { _ = try await client.request(uuid, operation: "echo", data: data) }
            for _ in 0..<200 { try await request() }
            let idle = try await latencies(seconds: seconds, request)

            let fleet = try RawClientFleet(clients: clients, port: network.port)
            defer { fleet.close() }
            let beforeClients = (server.residentBytes() ?? 0)
            try await fleet.sayHello(timeoutMs: 60_000)
            try await settle()
            let afterClients = (server.residentBytes() ?? 0)
            let started = try await fleet.getContainers(containers, kind: "echo", timeoutMs: 600_000)
            try await settle()
            let afterContainers = (server.residentBytes() ?? 0)

            // The clients' traffic alone first: what holding them costs the coordinator.
            fleet.sendRequests(true)
            let (requestsBefore, cpuBefore, quietSince) = (fleet.requestsAnswered, server.cpuNanoseconds(), MonotonicClock.nowNs())
            try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            let quietFor = Double(MonotonicClock.nowNs() - quietSince)
            let background = Double(fleet.requestsAnswered - requestsBefore) / (quietFor / 1e9)
            let coordinatorCPU = Double(server.cpuNanoseconds() - cpuBefore) / quietFor * 100
            let busy = try await latencies(seconds: seconds, request)
            fleet.sendRequests(false)
            if let failure = fleet.failure { throw BenchError("scale: \(failure)") }
            let listed = try await client.list(kind: "echo").count
            guard listed == containers + 1 else { throw BenchError("scale: \(listed) containers listed, expected \(containers + 1)") }

            let startSeconds = Double(started.nanoseconds) / 1e9
            return [
                perClient: BenchSample(value: Double(afterClients - beforeClients) / Double(clients)),
                perContainer: BenchSample(value: Double(afterContainers - afterClients) / Double(max(1, containers))),
                start: BenchSample(value: Double(containers) / startSeconds, notes: [("ms in all", startSeconds * 1000)]),
                idleP50: BenchSample(value: percentile(idle, 0.5)),
                idleP99: BenchSample(value: percentile(idle, 0.99)),
                loadedP50: BenchSample(value: percentile(busy, 0.5),
                                       notes: [("clients' cs/s", background), ("coordinator CPU % for the clients alone", coordinatorCPU)]),
                loadedP99: BenchSample(value: percentile(busy, 0.99)),
            ]
        }
    }
    func figure(_ name: String, unit: String, kind: BenchCase.Kind = .cost, baseline: String? = nil) -> BenchCase {
        BenchCase(name: name, unit: unit, kind: kind, baseline: baseline) { try await scenario.take(name) }
    }
    return [
        figure(perClient, unit: "bytes/client"),
        figure(perContainer, unit: "bytes/container"),
        figure(start, unit: "starts/s", kind: .rate),
        figure(idleP50, unit: "us"),
        figure(loadedP50, unit: "us", baseline: idleP50),
        figure(idleP99, unit: "us"),
        figure(loadedP99, unit: "us", baseline: idleP99),
    ]
}

/// Figures of several cases drawn from one costly scenario: the first of them measured in a run
/// runs it, the others take their figure from that same run.
final class SharedMeasurement: @unchecked Sendable {
    private let scenario: @Sendable () async throws -> [String: BenchSample]
    private let figures = Locked<[String: BenchSample]>([:])

    init(_ scenario: @escaping @Sendable () async throws -> [String: BenchSample]) { self.scenario = scenario }

    func take(_ name: String) async throws -> BenchSample {
        if let figure = figures.withLock({ $0.removeValue(forKey: name) }) { return figure }
        var fresh = try await scenario()
        guard let figure = fresh.removeValue(forKey: name) else { throw BenchError("no figure for \(name)") }
        figures.withLock { $0 = fresh }
        return figure
    }
}

/// The time of each `call`, made one after another for `seconds`, in nanoseconds.
func latencies(seconds: Double, _ call: @Sendable () async throws -> Void) async throws -> [UInt64] {
    let deadline = MonotonicClock.nowNs() + UInt64(seconds * 1e9)
    var times: [UInt64] = []
    while MonotonicClock.nowNs() < deadline {
        let started = MonotonicClock.nowNs()
        try await call()
        times.append(MonotonicClock.nowNs() - started)
    }
    return times
}

/// The `fraction` percentile of nanosecond times, in microseconds.
func percentile(_ times: [UInt64], _ fraction: Double) -> Double {
    guard !times.isEmpty else { return 0 }
    let sorted = times.sorted()
    return Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]) / 1000
}

/// Lets the coordinator send the events it queued (it flushes every tick) before its memory is read.
private func settle() async throws {
    try await Task.sleep(nanoseconds: 500_000_000)
}

/// The clients and the coordinator, which inherits this process's limits, each need a descriptor
/// per connection.
private func raiseOpenFileLimit(atLeast needed: Int) throws {
    var limit = rlimit()
    guard getrlimit(RLIMIT_NOFILE_RESOURCE, &limit) == 0 else { return }
    guard limit.rlim_cur < rlim_t(needed) else { return }
    limit.rlim_cur = min(limit.rlim_max, rlim_t(needed))
    guard setrlimit(RLIMIT_NOFILE_RESOURCE, &limit) == 0, limit.rlim_cur >= rlim_t(needed) else {
        throw BenchError("scale: \(needed) open files needed, the limit is \(limit.rlim_cur) (ulimit -n)")
    }
}

private let RLIMIT_NOFILE_RESOURCE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)

/// Many protocol clients on one thread: plain DEALER sockets speaking the frames of
/// docs/PROTOCOL.md by hand. Each says hello, pings once a second, gets containers one after
/// another and, when asked, sends one `cs` a second to the first of them. Network events are
/// read and dropped unparsed. Their hello announces an alive timeout of 30 s, so that a stall of
/// this process does not get them dropped.
final class RawClientFleet: @unchecked Sendable {
    private final class Member {
        let number: Int
        let clientId: String
        let socket: ZMQSocket
        var counter = 0
        var helloAnswered = false
        /// The indexes of the containers it has still to get.
        var toGet: [Int] = []
        var containers: [ContainerUUID] = []
        var requests: [String: Request] = [:]

        init(number: Int, socket: ZMQSocket) {
            self.number = number
            self.socket = socket
            clientId = "fleet-\(number)-\(makeUUID())"
        }
    }

    private struct Request {
        /// The container's index for a get-or-start; nil for a `cs`.
        let getting: Int?
        let payload: [UInt8]
    }

    /// A wait for `remaining` more steps, with the continuation it resumes.
    private final class Wait {
        var remaining: Int
        let done: (Result<Void, BenchError>) -> Void
        init(remaining: Int, done: @escaping (Result<Void, BenchError>) -> Void) {
            self.remaining = remaining
            self.done = done
        }
    }

    /// Members are paced in slices, one slice per tick, so that each is served once a second.
    private static let slices = 100
    private static let tickMs = 10

    private let context: ZMQContext
    private let loop = IOLoop(name: "bench-fleet")
    private let closed = Locked(false)

    // Loop-thread state.
    private var members: [Member] = []
    private var kind: ContainerKind = ""
    private var wait: Wait?
    private var sending = false
    private var turn = 0
    private var started = Set<ContainerUUID>()
    private var answered = 0
    private var firstFailure: String?

    /// Connects `clients` DEALERs to the coordinator at 127.0.0.1:`port` (hello comes later).
    init(clients: Int, port: Int) throws {
        context = ZMQContext(ioThreads: 1, maxSockets: Int32(clients + 16))
        loop.start()
        let error: (any Error)? = loop.sync { [self] in
            do {
                for number in 0..<clients {
                    let socket = try ZMQSocket(context: context, type: .dealer)
                    try socket.connect("tcp://127.0.0.1:\(port)")
                    let member = Member(number: number, socket: socket)
                    members.append(member)
                    loop.register(socket) { [unowned self] in drain(member) }
                }
                loop.every(milliseconds: Self.tickMs) { [unowned self] in pace() }
                return nil
            } catch { return error }
        } ?? BenchError("fleet: loop stopped")
        if let error {
            close()
            throw error
        }
    }

    /// Every client says hello; returns when each has its answer.
    func sayHello(timeoutMs: Int) async throws {
        try await waitFor("hello", steps: members.count, timeoutMs: timeoutMs) { [self] in
            for member in members {
                send(member, [RPCOp.hello.frame, Array(member.clientId.utf8), Array(#"{"aliveTimeout":30}"#.utf8), []])
            }
        }
    }

    /// Gets `count` containers of `kind`, container k by client k % clients, each client one after
    /// another; returns when all are started, each a container of its own.
    func getContainers(_ count: Int, kind: ContainerKind, timeoutMs: Int) async throws -> BenchCount {
        let begun = MonotonicClock.nowNs()
        try await waitFor("get-or-start", steps: count, timeoutMs: timeoutMs) { [self] in
            self.kind = kind
            for index in 0..<count { members[index % members.count].toGet.append(index) }
            for member in members { getNext(member) }
        }
        let took = MonotonicClock.nowNs() - begun
        let distinct = loop.sync { [self] in started.count } ?? 0
        guard distinct == count else { throw BenchError("fleet: \(count) gets started \(distinct) distinct containers") }
        return BenchCount(done: count, nanoseconds: took)
    }

    /// Turns the clients' `cs` (one a second each) on or off.
    func sendRequests(_ on: Bool) { loop.execute { [self] in sending = on } }

    var requestsAnswered: Int { loop.sync { [self] in answered } ?? 0 }

    /// The first request that failed, if one did.
    var failure: String? { loop.sync { [self] in firstFailure } ?? nil }

    /// Says close for every client and stops; idempotent.
    func close() {
        guard closed.withLock({ closed in defer { closed = true }; return !closed }) else { return }
        _ = loop.sync { [self] in
            for member in members {
                send(member, [RPCOp.close.frame, [], [], []])
                loop.unregister(member.socket)
                try? member.socket.setOption(ZMQ_LINGER, 100) // let the close frames leave
                member.socket.close()
            }
            members.removeAll()
        }
        loop.stop()
        context.terminate()
    }

    deinit { close() }

    // MARK: loop thread

    private func waitFor(_ what: String, steps: Int, timeoutMs: Int, start: @escaping () -> Void) async throws {
        let result: Result<Void, BenchError> = await withCheckedContinuation { continuation in
            let queued = loop.executeUnchecked { [self] in
                guard steps > 0 else { return continuation.resume(returning: .success(())) }
                let timer = loop.after(milliseconds: timeoutMs) { [self] in
                    finish(.failure(BenchError("fleet: \(what): \(wait?.remaining ?? 0) of \(steps) steps left after \(timeoutMs) ms")))
                }
                wait = Wait(remaining: steps) { [loop] result in
                    loop.cancel(timer)
                    continuation.resume(returning: result)
                }
                start()
            }
            if !queued { continuation.resume(returning: .failure(BenchError("fleet: closed"))) }
        }
        try result.get()
    }

    private func step() {
        guard let wait else { return }
        wait.remaining -= 1
        if wait.remaining == 0 { finish(.success(())) }
    }

    private func finish(_ result: Result<Void, BenchError>) {
        guard let current = wait else { return }
        wait = nil
        current.done(result)
    }

    private func fail(_ message: String) {
        if firstFailure == nil { firstFailure = message }
        finish(.failure(BenchError("fleet: \(message)")))
    }

    private func send(_ member: Member, _ frames: [[UInt8]]) {
        do {
            guard try member.socket.send(frames) else { return fail("client \(member.number): send queue full") }
        } catch {
            fail("client \(member.number): \(error)")
        }
    }

    private func request(_ member: Member, getting index: Int? = nil, payload: [UInt8]) {
        member.counter += 1
        let reqId = "\(member.clientId)-\(member.counter)"
        member.requests[reqId] = Request(getting: index, payload: payload)
        send(member, [RPCOp.request.frame, Array(reqId.utf8), payload])
    }

    private func getNext(_ member: Member) {
        guard let index = member.toGet.popLast() else { return }
        let labels: JSONValue = [.string("scale-client-\(member.number)"), .string("scale-slot-\(index / members.count)")]
        let payload = JSONValue.array([.string(Method.getContainer),
                                       .object(["kind": .string(kind), "request": .object(["labels": labels])])]).serialized()
        request(member, getting: index, payload: payload)
    }

    /// One slice of the clients pings, and sends its `cs` when that is on.
    private func pace() {
        turn += 1
        for index in stride(from: turn % Self.slices, to: members.count, by: Self.slices) {
            let member = members[index]
            guard member.helloAnswered else { continue }
            send(member, [RPCOp.ping.frame, [], [], []])
            if sending, let target = member.containers.first {
                let payload = JSONValue.array([.string(Method.sendContainer), [.string(target), "echo", "x"]]).serialized()
                request(member, payload: payload)
            }
        }
    }

    private func drain(_ member: Member) {
        while true {
            let received: ZMQReceived?
            do {
                // Events larger than this are read to their end without being kept.
                received = try member.socket.receive(dontWait: true, maxFrames: 8, maxBytes: 4096)
            } catch {
                return fail("client \(member.number): \(error)")
            }
            guard let received else { return }
            guard case .message(let frames) = received, let first = frames.first, let op = RPCOp(frame: first) else { continue }
            switch op {
            case .hello:
                if !member.helloAnswered {
                    member.helloAnswered = true
                    step()
                }
            case .response, .responseError:
                guard frames.count >= 3 else { continue }
                answer(member, reqId: frames[1].frameText, payload: frames[2], succeeded: op == .response)
            case .retry:
                // Over the in-flight limit: the same request again, a little later.
                guard frames.count >= 2, let payload = member.requests[frames[1].frameText]?.payload else { continue }
                let reqId = frames[1]
                loop.after(milliseconds: 20) { [self] in send(member, [RPCOp.request.frame, reqId, payload]) }
            case .askHello:
                fail("client \(member.number) was dropped by the coordinator")
            case .event, .pong, .request, .ping, .close:
                break
            }
        }
    }

    private func answer(_ member: Member, reqId: String, payload: [UInt8], succeeded: Bool) {
        guard let request = member.requests.removeValue(forKey: reqId) else { return }
        guard let index = request.getting else {
            guard succeeded else { return fail("cs answered \(RemoteError(payload: payload).message)") }
            answered += 1
            return
        }
        guard succeeded, let pair = (try? JSONValue.parse(payload))?.arrayValue, pair.count == 2,
              let uuid = pair[0].stringValue else {
            return fail("get-or-start \(index) (\(request.payload.frameText)) answered \(payload.frameText)")
        }
        member.containers.append(uuid)
        started.insert(uuid)
        step()
        getNext(member)
    }
}
