import CZeroMQ
import Dispatch
import HulyNetCore
import HulyNetSync
import HulyNetZMQ

/// The raw ZeroMQ limits the other cases are measured against, in the same run: plain libzmq
/// sockets, no protocol logic, each role on its own thread.
///
/// - relay: client DEALER -> broker ROUTER -> worker DEALER and back, the hops of a request
///   through the coordinator (clients and agents both dial the coordinator's one ROUTER): the
///   broker reads the client's `[op, id, json]` and passes it to the worker with the client's
///   identity in front; the worker answers with the same frames. The broker has a ZeroMQ context
///   (an I/O thread) of its own, as the coordinator has; client and worker share one, as the
///   bench's client and agent do.
/// - echo: client DEALER -> ROUTER that answers itself, the hop of a connection to an agent.
enum RawBaseline {
    /// The first frame a worker sends, so that the broker learns its identity.
    static let workerHello = Array("worker".utf8)

    /// Requests per second of `clients` clients, each keeping `depth` in flight for `seconds` (or
    /// until it has sent `requests`). With `brokerPort` the broker is an outside process
    /// (`hulynet raw-broker`), else a thread.
    static func relay(seconds: Double, bytes: Int, depth: Int, clients: Int = 1, brokerPort: Int? = nil,
                      requests: Int = .max) throws -> BenchCount {
        let context = ZMQContext()
        defer { context.terminate() }
        let brokerContext = ZMQContext()
        defer { brokerContext.terminate() }
        let stop = StopFlag()
        var threads: [DispatchSemaphore] = []
        defer {
            stop.set()
            for done in threads { done.wait() }
        }
        let port: Int
        if let brokerPort {
            port = brokerPort
        } else {
            let (broker, bound) = try boundRouter(brokerContext)
            port = bound
            nonisolated(unsafe) let brokerSocket = broker // handed over to the broker thread
            threads.append(Thread.start { runBroker(brokerSocket, until: stop) })
        }
        threads.append(Thread.start {
            guard let worker = try? ZMQSocket(context: context, type: .dealer) else { return }
            defer { worker.close() }
            try? worker.setOption(ZMQ_LINGER, 0)
            try? worker.setOption(ZMQ_RCVTIMEO, 100)
            try? worker.connect("tcp://127.0.0.1:\(port)")
            _ = try? worker.send([workerHello], dontWait: false)
            while !stop.isSet {
                guard case .message(let frames)? = try? worker.receive(dontWait: false) else { continue }
                _ = try? worker.send(frames, dontWait: false)
            }
        })
        return try concurrentClients(clients) {
            try client(context: context, port: port, seconds: seconds, bytes: bytes, depth: depth, requests: requests)
        }
    }

    static func echo(seconds: Double, bytes: Int, depth: Int, clients: Int = 1) throws -> BenchCount {
        let context = ZMQContext()
        defer { context.terminate() }
        let (server, port) = try boundRouter(context)
        nonisolated(unsafe) let serverSocket = server // handed over to the server thread
        let stop = StopFlag()
        let serverDone = Thread.start {
            let server = serverSocket
            defer { server.close() }
            try? server.setOption(ZMQ_RCVTIMEO, 100)
            while !stop.isSet {
                guard case .message(let frames)? = try? server.receive(dontWait: false) else { continue }
                _ = try? server.send(frames, dontWait: false)
            }
        }
        defer {
            stop.set()
            serverDone.wait()
        }
        return try concurrentClients(clients) {
            try client(context: context, port: port, seconds: seconds, bytes: bytes, depth: depth)
        }
    }

    /// The broker's loop: from a client, `[client, op, id, json]` goes to the worker as
    /// `[worker, client, op, id, json]`; from the worker, back with the client's identity first.
    /// Closes the socket when `stop` is set.
    static func runBroker(_ broker: ZMQSocket, until stop: StopFlag) {
        defer { broker.close() }
        try? broker.setOption(ZMQ_RCVTIMEO, 100)
        var workerId: [UInt8]?
        while !stop.isSet {
            guard case .message(var frames)? = try? broker.receive(dontWait: false), frames.count >= 2 else { continue }
            if frames.count == 2, frames[1] == workerHello { workerId = frames[0]; continue }
            guard let workerId else { continue }
            if frames[0] == workerId {
                frames.removeFirst()
            } else {
                frames.insert(workerId, at: 0)
            }
            _ = try? broker.send(frames, dontWait: false)
        }
    }

    static func boundRouter(_ context: ZMQContext, port: Int = 0) throws -> (ZMQSocket, Int) {
        let router = try ZMQSocket(context: context, type: .router)
        try router.setOption(ZMQ_LINGER, 0)
        try router.setOption(ZMQ_SNDHWM, 100_000)
        try router.setOption(ZMQ_RCVHWM, 100_000)
        try router.bind("tcp://127.0.0.1:\(port)")
        return (router, try router.boundPort())
    }

    /// Runs `count` clients on threads of their own and adds up what they did.
    private static func concurrentClients(_ count: Int, _ body: @escaping @Sendable () throws -> BenchCount) throws -> BenchCount {
        if count == 1 { return try body() }
        let results = Locked<[Result<BenchCount, any Error>]>([])
        let done = (0..<count).map { _ in
            Thread.start {
                let result = Result { try body() }
                results.withLock { $0.append(result) }
            }
        }
        for thread in done { thread.wait() }
        return try results.withLock { $0 }.reduce(BenchCount()) { sum, result in sum + (try result.get()) }
    }

    /// Sends `[op, id, json]` requests keeping `depth` in flight; answers are counted.
    private static func client(context: ZMQContext, port: Int, seconds: Double, bytes: Int, depth: Int,
                               requests: Int = .max) throws -> BenchCount {
        let socket = try ZMQSocket(context: context, type: .dealer)
        defer { socket.close() }
        try socket.setOption(ZMQ_LINGER, 0)
        try socket.setOption(ZMQ_SNDHWM, 100_000)
        try socket.setOption(ZMQ_RCVHWM, 100_000)
        try socket.connect("tcp://127.0.0.1:\(port)")
        let body = JSONValue.array([.string("cs"), .array([.string("uuid"), .string("op"),
                                                           .string(String(repeating: "x", count: max(0, bytes - 2)))])]).serialized()
        let op = RPCOp.request.frame
        var counter = 0
        // Answers come back in the order sent (one path each way): send times in a ring.
        var sentAt = [UInt64](repeating: 0, count: max(1, depth))
        var (head, tail) = (0, 0)
        var latencies: [UInt64] = []
        latencies.reserveCapacity(1 << 16)
        func send() throws {
            counter += 1
            sentAt[tail % sentAt.count] = MonotonicClock.nowNs()
            tail += 1
            try socket.send([op, Array("client-\(counter)".utf8), body], dontWait: false)
        }
        // Until the worker has said hello the broker drops requests: wait for a first answer.
        try socket.setOption(ZMQ_RCVTIMEO, 50)
        var connected = false
        for _ in 0..<200 where !connected {
            try send()
            if case .message? = try socket.receive(dontWait: false) { connected = true }
        }
        guard connected else { throw ZMQError(code: ETIMEDOUT, context: "raw baseline: no answer") }
        // Drain the answers still coming for the warm-up, which would otherwise add to the depth.
        while case .message? = try socket.receive(dontWait: false) {}
        (head, tail) = (0, 0)
        try socket.setOption(ZMQ_RCVTIMEO, 1000)
        let started = MonotonicClock.nowNs()
        let deadline = started + UInt64(seconds * 1e9)
        var done = 0
        var sent = min(depth, requests)
        for _ in 0..<sent { try send() }
        var inFlight = sent
        while inFlight > 0 {
            guard case .message? = try socket.receive(dontWait: false) else {
                throw ZMQError(code: ETIMEDOUT, context: "raw baseline: an answer was lost")
            }
            done += 1
            inFlight -= 1
            if head < tail {
                latencies.append(MonotonicClock.nowNs() - sentAt[head % sentAt.count])
                head += 1
            }
            if sent < requests, MonotonicClock.nowNs() < deadline {
                try send()
                sent += 1
                inFlight += 1
            }
        }
        return BenchCount(done: done, nanoseconds: MonotonicClock.nowNs() - started, latencies: latencies)
    }
}

/// A flag set once, read by other threads.
final class StopFlag: @unchecked Sendable {
    private let lock = Lock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// A value behind a lock.
final class Locked<Value>: @unchecked Sendable {
    private let lock = Lock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T { try lock.withLock { try body(&value) } }
}

/// Runs a blocking body on a thread of its own; the semaphore is signalled when it returns.
enum Thread {
    @discardableResult
    static func start(_ body: @escaping @Sendable () -> Void) -> DispatchSemaphore {
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            body()
            done.signal()
        }
        return done
    }
}
