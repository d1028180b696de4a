import CZeroMQ
import HulyNetCore
import HulyNetZMQ
import Logging

/// What an `RPCClient` tells its owner, on the loop thread.
protocol RPCClientDelegate: AnyObject {
    /// The server answered hello. `restarted`: it is not the server this client last talked to,
    /// or that server forgot this client, so agents and references must be restored. Return true
    /// to hold the requests left pending until the delegate has restored its state and calls
    /// `resendPending()`; false to resend them at once.
    func rpcClient(_ client: RPCClient, connectedTo serverId: String, isFirst: Bool, restarted: Bool) -> Bool
    func rpcClient(_ client: RPCClient, event payload: [UInt8])
    /// A request from the server; answer with `respond`.
    func rpcClient(_ client: RPCClient, request method: String, params: JSONValue, reqId: [UInt8])
}

/// The client side of the back-RPC protocol on a DEALER socket: hello on every (re)connect,
/// pings, requests with retry and timeouts, resending what is pending after a server restart.
///
/// Lives on one `IOLoop`; every method must be called on that loop's thread.
final class RPCClient {
    let loop: IOLoop
    let clientId: ClientUUID
    let host: String
    let port: Int
    let timeouts: Timeouts
    let aliveTimeoutSeconds: Double
    let logger: Logger
    weak var delegate: RPCClientDelegate?

    private let socket: ZMQSocket
    private let monitor: ZMQMonitor
    /// The server's id while connected and greeted; nil while requests must wait.
    private(set) var serverId: String?
    /// The id of the last server that answered hello, kept across disconnects.
    private var knownServerId: String?
    /// The server asked for hello again: it dropped this client and forgot its state.
    private var forgotten = false
    /// While the delegate restores its state on a new server, other requests wait.
    private(set) var restoring = false
    private var everConnected = false
    private var timer: IOLoop.TimerID?
    private var lastPing: Int64 = 0
    private var connectionWaiters: [(Result<Void, NetworkError>) -> Void] = []
    private(set) var closed = false

    struct Pending {
        let payload: [UInt8]
        let reqId: [UInt8]
        let completion: (Result<[UInt8], NetworkError>) -> Void
        let deadline: Int64
        let timeoutMs: Int64
        /// The server it was last sent to (nil: not sent yet).
        var sentTo: String?
        var resendAt: Int64?
    }

    private var pending: [Int: Pending] = [:]
    private var counter = 0


    init(loop: IOLoop, clientId: ClientUUID, host: String, port: Int, timeouts: Timeouts,
         aliveTimeoutSeconds: Double? = nil, logger: Logger) throws(ZMQError) {
        self.loop = loop
        self.clientId = clientId
        self.host = host
        self.port = port
        self.timeouts = timeouts
        self.aliveTimeoutSeconds = aliveTimeoutSeconds ?? Double(timeouts.aliveMs) / 1000
        self.logger = logger
        socket = try ZMQSocket(type: .dealer)
        try socket.setOption(ZMQ_TCP_KEEPALIVE, 1)
        try socket.setOption(ZMQ_SNDHWM, 100_000)
        try socket.setOption(ZMQ_RCVHWM, 100_000)
        // A server (or an agent's endpoint) cannot make this client buffer an oversize frame.
        try socket.setOption64(ZMQ_MAXMSGSIZE, Int64(defaultMaxMessageBytes))
        try socket.setOption(ZMQ_RECONNECT_IVL, 100)
        try socket.setOption(ZMQ_RECONNECT_IVL_MAX, 1000)
        monitor = try socket.monitor(events: ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED)
        try socket.connect("tcp://\(host):\(port)")
        loop.register(socket) { [unowned self] in readAll() }
        loop.register(monitor.socket) { [unowned self] in readMonitor() }
        timer = loop.every(milliseconds: Int(min(timeouts.tickMs, timeouts.pingIntervalMs))) { [unowned self] in tick() }
    }

    var isConnected: Bool { serverId != nil && !closed }

    /// Calls `completion` once hello has been answered (at once if it has been).
    func whenConnected(_ completion: @escaping (Result<Void, NetworkError>) -> Void) {
        if closed { completion(.failure(.closed)); return }
        if serverId != nil { completion(.success(())); return }
        connectionWaiters.append(completion)
    }

    /// Sends `[method, params]` (JSON text) and calls `completion` with the answer's JSON text.
    /// `restoring`: a request that restores state on a new server, sent even while others wait.
    func request(payload: [UInt8], timeoutMs: Int64? = nil, restoring isRestoring: Bool = false,
                 completion: @escaping (Result<[UInt8], NetworkError>) -> Void) {
        guard !closed else { completion(.failure(.closed)); return }
        counter += 1
        let reqId = Array("\(clientId)-\(counter)".utf8)
        let timeoutMs = timeoutMs ?? timeouts.requestMs
        var entry = Pending(payload: payload, reqId: reqId, completion: completion,
                            deadline: MonotonicClock.nowMs() + timeoutMs, timeoutMs: timeoutMs, sentTo: nil)
        // Until hello is answered requests wait here; they go out with the answer.
        if let serverId, !restoring || isRestoring, send([RPCOp.request.frame, reqId, payload]) {
            entry.sentTo = serverId
        }
        pending[counter] = entry
    }

    func request(method: String, params: JSONValue, timeoutMs: Int64? = nil,
                 completion: @escaping (Result<[UInt8], NetworkError>) -> Void) {
        request(payload: JSONValue.array([.string(method), params]).serialized(), timeoutMs: timeoutMs, completion: completion)
    }

    func respond(_ reqId: [UInt8], _ result: Result<[UInt8], RPCRemoteError>) {
        switch result {
        case .success(let payload):
            send([RPCOp.response.frame, reqId, payload])
        case .failure(let error):
            send([RPCOp.responseError.frame, reqId, errorPayload(error.message)])
        }
    }

    /// Sends close, fails what is pending and closes the socket; idempotent.
    func close() {
        guard !closed else { return }
        closed = true
        send([RPCOp.close.frame, [], [], []])
        if let timer { loop.cancel(timer) }
        loop.unregister(socket)
        loop.unregister(monitor.socket)
        socket.close() // stops the monitor before its reader goes
        monitor.close()
        let open = pending
        pending.removeAll()
        for key in open.keys.sorted() { open[key]!.completion(.failure(.closed)) }
        let waiters = connectionWaiters
        connectionWaiters.removeAll()
        for waiter in waiters { waiter(.failure(.closed)) }
    }

    // MARK: internals

    @discardableResult
    private func send(_ frames: [[UInt8]]) -> Bool {
        guard socket.handle != nil else { return false }
        do {
            return try socket.send(frames)
        } catch {
            logger.warning("send to \(host):\(port) failed: \(error)")
            return false
        }
    }

    private func sendHello() {
        let payload = JSONValue.object(["aliveTimeout": .number(aliveTimeoutSeconds)]).serialized()
        send([RPCOp.hello.frame, Array(clientId.utf8), payload, []])
    }

    private func readMonitor() {
        while let event = try? monitor.next() {
            if event.isConnected {
                logger.debug("connected to \(host):\(port)")
                sendHello()
            } else if event.isDisconnected {
                // Hold requests until a server greets us again: a new one must first learn our state.
                logger.debug("disconnected from \(host):\(port)")
                serverId = nil
            }
        }
    }

    private func readAll() {
        for _ in 0..<1024 {
            guard !closed, let received = try? socket.receive(dontWait: true, maxFrames: 16, maxBytes: defaultMaxMessageBytes) else { return }
            guard case .message(let frames) = received else {
                logger.warning("oversize message from \(host):\(port): dropped")
                continue
            }
            handle(frames)
        }
    }

    private func pendingKey(_ reqId: [UInt8]) -> Int? {
        // Our ids are "<clientId>-<counter>".
        guard let dash = reqId.lastIndex(of: UInt8(ascii: "-")) else { return nil }
        var value = 0
        for byte in reqId[(dash + 1)...] {
            guard byte >= 0x30, byte <= 0x39, value < Int.max / 10 - 10 else { return nil }
            value = value * 10 + Int(byte - 0x30)
        }
        return value
    }

    private func handle(_ frames: [[UInt8]]) {
        guard let first = frames.first, let op = RPCOp(frame: first) else {
            logger.warning("malformed message from \(host):\(port): dropped")
            return
        }
        let reqId = frames.count > 1 ? frames[1] : []
        let payload = frames.count > 2 ? frames[2] : []
        switch op {
        case .hello:
            let id = reqId.frameText
            guard id != serverId else { return } // one answer per hello sent; later ones repeat it
            let isFirst = !everConnected
            let restarted = !isFirst && (id != knownServerId || forgotten)
            serverId = id
            knownServerId = id
            forgotten = false
            everConnected = true
            let waiters = connectionWaiters
            connectionWaiters.removeAll()
            for waiter in waiters { waiter(.success(())) }
            restoring = delegate?.rpcClient(self, connectedTo: id, isFirst: isFirst, restarted: restarted) ?? false
            if !restoring { resendPending() }
        case .response, .responseError:
            guard let key = pendingKey(reqId), let entry = pending.removeValue(forKey: key), entry.reqId == reqId else { return }
            if op == .response {
                entry.completion(.success(payload))
            } else {
                entry.completion(.failure(.remote(errorMessage(fromPayload: payload))))
            }
        case .retry:
            guard let key = pendingKey(reqId), pending[key] != nil else { return }
            let count = (try? JSONValue.parse(payload))?.intValue ?? 1
            // Back off in proportion to how busy the server says it is.
            let delay = min(max(count, 1), 100) * 2
            pending[key]?.resendAt = MonotonicClock.nowMs() + Int64(delay)
            loop.after(milliseconds: delay) { [weak self] in self?.resendIfDue(key) }
        case .event:
            delegate?.rpcClient(self, event: payload)
        case .request:
            guard let value = try? JSONValue.parse(payload), case .array(let items) = value, let method = items.first?.stringValue else {
                respond(reqId, .failure(RPCRemoteError("request payload must be [method, params]")))
                return
            }
            delegate?.rpcClient(self, request: method, params: items.count > 1 ? items[1] : .null, reqId: reqId)
        case .askHello:
            // The server forgot us (we were silent too long): say hello and register again.
            guard serverId != nil || !forgotten else { return }
            serverId = nil
            forgotten = true
            sendHello()
        case .pong, .ping, .close:
            break // nothing waits on a pong; ping and close are a client's ops
        }
    }

    private func resendIfDue(_ key: Int) {
        guard !closed, let serverId, !restoring, let entry = pending[key], let at = entry.resendAt, at <= MonotonicClock.nowMs() else { return }
        pending[key]?.resendAt = nil
        pending[key]?.sentTo = send([RPCOp.request.frame, entry.reqId, entry.payload]) ? serverId : nil
    }

    /// Sends every pending request the current server has not been sent yet (after a new server
    /// greeted us, they may run twice: at-least-once).
    func resendPending() {
        restoring = false
        guard !closed, let serverId else { return }
        for key in pending.keys.sorted() {
            guard let entry = pending[key], entry.sentTo != serverId else { continue }
            pending[key]?.resendAt = nil
            pending[key]?.sentTo = send([RPCOp.request.frame, entry.reqId, entry.payload]) ? serverId : nil
        }
    }

    private func tick() {
        let now = MonotonicClock.nowMs()
        if now - lastPing >= timeouts.pingIntervalMs {
            lastPing = now
            send([RPCOp.ping.frame, [], [], []])
        }
        guard !pending.isEmpty else { return }
        var expired: [Int] = []
        for (key, entry) in pending {
            if entry.deadline <= now {
                expired.append(key)
            } else if let serverId, !restoring, let at = entry.resendAt, at <= now {
                pending[key]?.resendAt = nil
                pending[key]?.sentTo = send([RPCOp.request.frame, entry.reqId, entry.payload]) ? serverId : nil
            }
        }
        for key in expired.sorted() {
            if let entry = pending.removeValue(forKey: key) {
                entry.completion(.failure(.timeout("no answer from \(host):\(port) within \(entry.timeoutMs) ms")))
            }
        }
    }
}
