import CZeroMQ
import HulyNetCore
import HulyNetSync
import HulyNetZMQ
import Logging

/// What an `RPCClient` tells its owner, on the loop thread.
protocol RPCClientDelegate: AnyObject {
    /// The server answered hello. When `greeting.mustRestore`, the requests left pending are held
    /// until the owner has restored its state and calls `resendPending()`.
    func rpcClient(_ client: RPCClient, connectedTo serverId: String, _ greeting: Greeting)
    func rpcClient(_ client: RPCClient, event payload: [UInt8])
    /// A request from the server; answer with `respond`.
    func rpcClient(_ client: RPCClient, request call: IncomingCall, reqId: [UInt8])
}

/// The client side of the back-RPC protocol on a DEALER socket: the I/O shell of an
/// `RPCClientMachine`, which holds every rule; this connects and watches the socket, runs the
/// machine's timer, keeps the completions of requests and carries out what the machine asks.
///
/// Lives on one `IOLoop`; every method must be called on that loop's thread.
final class RPCClient {
    typealias Completion = (Result<[UInt8], RPCFailure>) -> Void

    let loop: IOLoop
    /// The coordinators this client may talk to (one, or several that stand in for each other),
    /// and which of them it talks to now.
    let addresses: [NetworkAddress]
    private var follower: LeaderFollower
    /// Moves since a coordinator last greeted this client: during an election every address
    /// refuses for a while, and only the first move and the arrival are worth an info line.
    private var movesSinceGreeting = 0
    var host: String { addresses[follower.current].host }
    var port: Int { addresses[follower.current].port }
    let logger: Logger
    weak var delegate: RPCClientDelegate?

    let machine: RPCClientMachine
    private let socket: ZMQSocket
    private let monitor: ZMQMonitor
    private var timer: IOLoop.TimerID?
    private var connectionWaiters: [(Result<Void, NetworkError>) -> Void] = []
    /// Why the last security handshake failed, until a server greets this client.
    private(set) var handshakeFailure: String?
    private var completions: [RPCRequestKey: Completion] = [:]
    private let outputs = OutputQueue<RPCClientOutput>()

    var clientId: ClientUUID { machine.clientId }

    convenience init(loop: IOLoop, clientId: ClientUUID, host: String, port: Int, timeouts: Timeouts,
                     aliveTimeoutSeconds: Double? = nil, curve: CurveClientKeys? = nil, logger: Logger) throws(ZMQError) {
        try self.init(loop: loop, clientId: clientId, addresses: [NetworkAddress(host: host, port: port)],
                      timeouts: timeouts, aliveTimeoutSeconds: aliveTimeoutSeconds, curve: curve, logger: logger)
    }

    /// `addresses`: at least one. With several, the client moves to the next when the one it
    /// talks to refuses, does not greet, or falls silent (see `LeaderFollower`).
    /// `curve`: connect encrypted, as a CURVE client of the server with that public key.
    init(loop: IOLoop, clientId: ClientUUID, addresses: [NetworkAddress], timeouts: Timeouts,
         aliveTimeoutSeconds: Double? = nil, curve: CurveClientKeys? = nil, logger: Logger) throws(ZMQError) {
        precondition(!addresses.isEmpty, "RPCClient needs an address")
        self.loop = loop
        self.addresses = addresses
        // Silent for three pings: paused or cut off (a coordinator answers every ping).
        follower = LeaderFollower(count: addresses.count, silenceTimeoutMs: 3 * timeouts.pingIntervalMs,
                                  now: MonotonicClock.nowMs())
        self.logger = logger
        machine = RPCClientMachine(clientId: clientId, timeouts: timeouts, aliveTimeoutSeconds: aliveTimeoutSeconds)
        socket = try ZMQSocket(type: .dealer)
        try socket.setOption(ZMQ_TCP_KEEPALIVE, 1)
        try socket.setOption(ZMQ_SNDHWM, 100_000)
        try socket.setOption(ZMQ_RCVHWM, 100_000)
        // A server (or an agent's endpoint) cannot make this client buffer an oversize frame.
        try socket.setOption64(ZMQ_MAXMSGSIZE, Int64(defaultMaxMessageBytes))
        try socket.setOption(ZMQ_RECONNECT_IVL, 100)
        try socket.setOption(ZMQ_RECONNECT_IVL_MAX, 1000)
        if let curve { try socket.makeCurveClient(curve.keys, serverKey: curve.serverKey) }
        monitor = try socket.monitor(events: ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CONNECT_RETRIED
                                     | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                                     | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        try socket.connect(addresses[0].endpoint)
        loop.register(socket) { [unowned self] in readAll() }
        loop.register(monitor.socket) { [unowned self] in readMonitor() }
        timer = loop.every(milliseconds: Int(min(timeouts.tickMs, timeouts.pingIntervalMs))) { [unowned self] in
            let now = MonotonicClock.nowMs()
            moveIfDue(now: now)
            machine.tick(now: now, into: &outputs.items)
            run()
        }
    }

    var isConnected: Bool { machine.isConnected }
    var closed: Bool { machine.closed }

    /// Calls `completion` once hello has been answered (at once if it has been).
    func whenConnected(_ completion: @escaping (Result<Void, NetworkError>) -> Void) {
        if machine.closed { completion(.failure(.closed)); return }
        if machine.isConnected { completion(.success(())); return }
        connectionWaiters.append(completion)
    }

    /// Sends `[method, params]` (JSON text) and calls `completion` with the answer's JSON text.
    /// `restores`: a request that restores state on a new server, sent even while others wait.
    @discardableResult
    func request(payload: [UInt8], timeoutMs: Int64? = nil, restores: Bool = false,
                 completion: @escaping Completion) -> RPCRequestKey {
        let key = machine.request(payload: payload, timeoutMs: timeoutMs, restores: restores,
                                  now: MonotonicClock.nowMs(), into: &outputs.items)
        completions[key] = completion
        run()
        return key
    }

    func request(method: String, params: JSONValue, timeoutMs: Int64? = nil, completion: @escaping Completion) {
        request(payload: JSONValue.array([.string(method), params]).serialized(), timeoutMs: timeoutMs, completion: completion)
    }

    /// Forgets a request: its completion is not called, its answer ignored.
    func cancel(_ key: RPCRequestKey) {
        machine.cancel(key)
        completions.removeValue(forKey: key)
    }

    func respond(_ reqId: [UInt8], _ result: Result<[UInt8], RemoteError>) {
        machine.respond(reqId, result, into: &outputs.items)
        run()
    }

    /// Ends a restore: the held requests go to the server.
    func resendPending() {
        machine.resendPending(into: &outputs.items)
        run()
    }

    /// Sends close, fails what is pending and closes the socket; idempotent.
    func close() {
        guard !machine.closed else { return }
        machine.close(into: &outputs.items)
        run()
        if let timer { loop.cancel(timer) }
        loop.unregister(socket)
        loop.unregister(monitor.socket)
        socket.close() // stops the monitor before its reader goes
        monitor.close()
        let waiters = connectionWaiters
        connectionWaiters.removeAll()
        for waiter in waiters { waiter(.failure(.closed)) }
    }

    // MARK: - The socket

    private func send(_ frames: [[UInt8]]) {
        guard socket.handle != nil else { return }
        do {
            // Before a greeting (no connection completed yet) a ping finds no queue: not news.
            if try !socket.send(frames) {
                logger.log(level: machine.isConnected ? .warning : .debug, "send queue to \(host):\(port) full: message dropped")
            }
        } catch {
            logger.warning("send to \(host):\(port) failed: \(error)")
        }
    }

    private func readMonitor() {
        while let event = try? monitor.next() {
            // After a move, what the socket still says of the address it left is not news.
            if addresses.count > 1, event.endpoint != addresses[follower.current].endpoint { continue }
            if event.isConnected {
                logger.debug("connected to \(host):\(port)")
                machine.socketConnected(into: &outputs.items)
            } else if event.isDisconnected {
                logger.debug("disconnected from \(host):\(port)")
                follower.disconnected(now: MonotonicClock.nowMs())
                machine.socketDisconnected()
            } else if event.isConnectRetried {
                follower.refused(now: MonotonicClock.nowMs())
            } else if let failure = event.handshakeFailure {
                if handshakeFailure != failure { logger.warning("\(host):\(port): \(failure)") }
                handshakeFailure = failure
            }
        }
        run()
    }

    private func readAll() {
        for _ in 0..<1024 {
            guard !machine.closed, let received = try? socket.receive(dontWait: true, maxFrames: 16, maxBytes: defaultMaxMessageBytes) else { return }
            guard case .message(let frames) = received else {
                logger.warning("oversize message from \(host):\(port): dropped")
                continue
            }
            switch ServerMessage.decode(frames[...]) {
            case .success(let message):
                let now = MonotonicClock.nowMs()
                follower.heard(now: now)
                machine.receive(message, now: now, into: &outputs.items)
            case .failure(let malformed):
                logger.warning("malformed message from \(host):\(port): \(malformed.detail)")
            }
            run()
        }
    }

    /// Moves to the next coordinator when the one talked to is not (or no longer) serving: what
    /// was queued for it is dropped, and the machine greets the next one as a new server
    /// (restore, then resend what is pending, each request under its own id).
    private func moveIfDue(now: Int64) {
        guard !machine.closed, let why = follower.moveDue(now: now) else { return }
        let from = addresses[follower.current]
        let to = addresses[follower.move(now: now)]
        movesSinceGreeting += 1
        logger.log(level: movesSinceGreeting == 1 ? .info : .debug,
                   "coordinator \(from.host):\(from.port): \(why); trying \(to.host):\(to.port)")
        do {
            try socket.disconnect(from.endpoint)
            try socket.connect(to.endpoint)
        } catch {
            logger.warning("cannot move to \(to.host):\(to.port): \(error)")
        }
        machine.socketDisconnected()
    }

    /// Carries out the machine's outputs, including those its owner's reactions add.
    private func run() {
        outputs.drain { output in
            switch output {
            case .send(let frames):
                send(frames)
            case .connected(let serverId, let greeting):
                follower.greeted(now: MonotonicClock.nowMs())
                handshakeFailure = nil
                if movesSinceGreeting > 0 {
                    logger.info("coordinator \(host):\(port) serves (found after \(movesSinceGreeting) moves)")
                    movesSinceGreeting = 0
                }
                let waiters = connectionWaiters
                connectionWaiters.removeAll()
                for waiter in waiters { waiter(.success(())) }
                delegate?.rpcClient(self, connectedTo: serverId, greeting)
            case .complete(let key, let result):
                guard let completion = completions.removeValue(forKey: key) else { return }
                if case .failure(.timeout(let text)) = result {
                    completion(.failure(.timeout("\(text) from \(host):\(port)")))
                } else {
                    completion(result)
                }
            case .event(let payload):
                delegate?.rpcClient(self, event: payload)
            case .request(let call, let reqId):
                delegate?.rpcClient(self, request: call, reqId: reqId)
            case .wake(let delay):
                loop.after(milliseconds: delay) { [weak self] in
                    guard let self, !machine.closed else { return }
                    machine.tick(now: MonotonicClock.nowMs(), into: &outputs.items)
                    run()
                }
            case .log(let level, let message):
                logger.log(level: level.swiftLogLevel, "\(message)")
            }
        }
    }
}
