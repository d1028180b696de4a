import CZeroMQ
import Dispatch
import HulyNetCore
import HulyNetZMQ

/// The raw ZeroMQ limits a routed request is measured against, in the same run: plain libzmq
/// sockets, no protocol logic, each role on its own thread.
///
/// - relay: client DEALER -> ROUTER -> worker DEALER and back, the hops of a request through the
///   coordinator: the broker reads the client's `[op, id, json]` and passes it to the worker with
///   the client's identity in front; the worker answers with the same frames.
/// - echo: client DEALER -> ROUTER that answers itself, the hop of a direct connection.
enum RawBaseline {
    /// Requests per second with `depth` in flight for `seconds`.
    static func relay(seconds: Double, bytes: Int, depth: Int) throws -> Double {
        let context = ZMQContext()
        defer { context.terminate() }
        let (broker, port) = try boundRouter(context)
        nonisolated(unsafe) let brokerSocket = broker // handed over to the broker thread
        let stop = StopFlag()

        // The worker: says hello so the broker learns its identity, then echoes what it gets.
        let workerDone = DispatchSemaphore(value: 0)
        Thread.start {
            defer { workerDone.signal() }
            guard let worker = try? ZMQSocket(context: context, type: .dealer) else { return }
            defer { worker.close() }
            try? worker.setOption(ZMQ_RCVTIMEO, 100)
            try? worker.connect("tcp://127.0.0.1:\(port)")
            _ = try? worker.send([Array("worker".utf8)], dontWait: false)
            while !stop.isSet {
                guard case .message(let frames)? = try? worker.receive(dontWait: false) else { continue }
                _ = try? worker.send(frames, dontWait: false)
            }
        }
        // The broker: from the client, [client, op, id, json] goes to the worker as
        // [worker, client, op, id, json]; from the worker, back with the client's identity first.
        let brokerDone = DispatchSemaphore(value: 0)
        Thread.start {
            defer { brokerDone.signal() }
            let broker = brokerSocket
            defer { broker.close() }
            try? broker.setOption(ZMQ_RCVTIMEO, 100)
            var workerId: [UInt8]?
            while !stop.isSet {
                guard case .message(var frames)? = try? broker.receive(dontWait: false), frames.count >= 2 else { continue }
                if frames[1] == Array("worker".utf8) { workerId = frames[0]; continue }
                guard let workerId else { continue }
                if frames[0] == workerId {
                    frames.removeFirst()
                    _ = try? broker.send(frames, dontWait: false)
                } else {
                    frames.insert(workerId, at: 0)
                    _ = try? broker.send(frames, dontWait: false)
                }
            }
        }
        let rate = try client(context: context, port: port, seconds: seconds, bytes: bytes, depth: depth, warmup: true)
        stop.set()
        workerDone.wait()
        brokerDone.wait()
        return rate
    }

    static func echo(seconds: Double, bytes: Int, depth: Int) throws -> Double {
        let context = ZMQContext()
        defer { context.terminate() }
        let (server, port) = try boundRouter(context)
        nonisolated(unsafe) let serverSocket = server // handed over to the server thread
        let stop = StopFlag()
        let serverDone = DispatchSemaphore(value: 0)
        Thread.start {
            defer { serverDone.signal() }
            let server = serverSocket
            defer { server.close() }
            try? server.setOption(ZMQ_RCVTIMEO, 100)
            while !stop.isSet {
                guard case .message(let frames)? = try? server.receive(dontWait: false) else { continue }
                _ = try? server.send(frames, dontWait: false)
            }
        }
        let rate = try client(context: context, port: port, seconds: seconds, bytes: bytes, depth: depth, warmup: false)
        stop.set()
        serverDone.wait()
        return rate
    }

    private static func boundRouter(_ context: ZMQContext) throws -> (ZMQSocket, Int) {
        let router = try ZMQSocket(context: context, type: .router)
        try router.setOption(ZMQ_SNDHWM, 100_000)
        try router.setOption(ZMQ_RCVHWM, 100_000)
        try router.bind("tcp://127.0.0.1:0")
        return (router, try router.boundPort())
    }

    /// Sends `[op, id, json]` requests keeping `depth` in flight; answers are counted.
    private static func client(context: ZMQContext, port: Int, seconds: Double, bytes: Int, depth: Int,
                               warmup: Bool) throws -> Double {
        let socket = try ZMQSocket(context: context, type: .dealer)
        defer { socket.close() }
        try socket.setOption(ZMQ_SNDHWM, 100_000)
        try socket.setOption(ZMQ_RCVHWM, 100_000)
        try socket.connect("tcp://127.0.0.1:\(port)")
        let body = JSONValue.array([.string("cs"), .array([.string("uuid"), .string("op"),
                                                           .string(String(repeating: "x", count: max(0, bytes - 2)))])]).serialized()
        let op = RPCOp.request.frame
        var counter = 0
        func send() throws {
            counter += 1
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
        try socket.setOption(ZMQ_RCVTIMEO, 1000)
        let started = MonotonicClock.nowMs()
        let deadline = started + Int64(seconds * 1000)
        var done = 0
        for _ in 0..<depth { try send() }
        var inFlight = depth
        while inFlight > 0 {
            guard case .message? = try socket.receive(dontWait: false) else {
                throw ZMQError(code: ETIMEDOUT, context: "raw baseline: an answer was lost")
            }
            done += 1
            inFlight -= 1
            if MonotonicClock.nowMs() < deadline {
                try send()
                inFlight += 1
            }
        }
        return Double(done) / (Double(MonotonicClock.nowMs() - started) / 1000)
    }
}

/// A flag set once, read by other threads.
final class StopFlag: @unchecked Sendable {
    private let lock = Lock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// Runs a blocking body on a thread of its own.
enum Thread {
    static func start(_ body: @escaping @Sendable () -> Void) {
        DispatchQueue.global().async(execute: body)
    }
}
