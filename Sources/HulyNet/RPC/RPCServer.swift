import CZeroMQ
import HulyNetCore
import HulyNetZMQ
import Logging

/// What an `RPCServer` tells its owner, on the loop thread.
protocol RPCServerDelegate: AnyObject {
    /// A client id said hello for the first time.
    func rpcServer(_ server: RPCServer, clientConnected client: ClientUUID)
    /// A client closed (`timedOut` false) or stayed silent past its alive timeout.
    func rpcServer(_ server: RPCServer, clientGone client: ClientUUID, timedOut: Bool)
    func rpcServer(_ server: RPCServer, ping client: ClientUUID)
    /// Answer it with `reply`, `replyRaw` or `fail` and its token, now or later.
    func rpcServer(_ server: RPCServer, request: IncomingRequest)
    /// The answer to a request the server sent with `call`.
    func rpcServer(_ server: RPCServer, callAnswered id: CallID, result: Result<[UInt8], RemoteError>)
}

/// The server side of the back-RPC protocol on a ROUTER socket: the I/O shell of an
/// `RPCServerMachine`, which holds every rule; this reads and writes the socket, runs the
/// machine's timer and carries out what it asks.
///
/// Lives on one `IOLoop`; every method must be called on that loop's thread.
final class RPCServer {
    let loop: IOLoop
    let logger: Logger
    var maxMessageBytes = defaultMaxMessageBytes
    weak var delegate: RPCServerDelegate?

    let machine: RPCServerMachine
    private let socket: ZMQSocket
    private(set) var port: Int = 0
    private var tickTimer: IOLoop.TimerID?
    /// The machine's outputs, reused from message to message.
    private var outputs: [RPCServerOutput] = []
    private var running = false

    var serverId: String { machine.serverId }
    var stats: RPCServerMachine.Stats { machine.stats }
    var clientCount: Int { machine.clientCount }
    var inFlightLimit: Int {
        get { machine.inFlightLimit }
        set { machine.inFlightLimit = newValue }
    }

    /// Binds `tcp://host:port` (port 0 picks a free one). Must run on the loop thread.
    init(loop: IOLoop, host: String, port: Int, timeouts: Timeouts, logger: Logger,
         context: ZMQContext = .shared) throws(ZMQError) {
        self.loop = loop
        self.logger = logger
        machine = RPCServerMachine(timeouts: timeouts)
        socket = try ZMQSocket(context: context, type: .router)
        try socket.setOption(ZMQ_ROUTER_MANDATORY, 1)
        try socket.setOption(ZMQ_TCP_KEEPALIVE, 1)
        try socket.setOption(ZMQ_SNDHWM, 100_000)
        try socket.setOption(ZMQ_RCVHWM, 100_000)
        let bindHost = (host == "0.0.0.0" || host.isEmpty) ? "*" : host
        do {
            try socket.bind("tcp://\(bindHost):\(port)")
        } catch {
            socket.close()
            throw error
        }
        self.port = try socket.boundPort()
        loop.register(socket) { [unowned self] in self.readAll() }
        tickTimer = loop.every(milliseconds: Int(timeouts.tickMs)) { [unowned self] in
            machine.tick(now: MonotonicClock.nowMs(), into: &outputs)
            run()
        }
    }

    func close() {
        if let tickTimer { loop.cancel(tickTimer) }
        tickTimer = nil
        loop.unregister(socket)
        socket.close()
        machine.close(into: &outputs)
        run()
    }

    var isClosed: Bool { socket.handle == nil }

    // MARK: - What the owner sends

    /// Answers a request with JSON text.
    func replyRaw(_ token: RequestToken, _ payload: [UInt8]) {
        machine.reply(token, payload, into: &outputs)
        run()
    }

    func reply(_ token: RequestToken, _ value: JSONValue) { replyRaw(token, value.serialized()) }

    func fail(_ token: RequestToken, _ error: RemoteError) {
        machine.fail(token, error, into: &outputs)
        run()
    }

    /// Sends a request (`payload` = `[method, params]` JSON text) to a client. Returns false
    /// when the client is not connected; otherwise the answer comes to the delegate.
    @discardableResult
    func call(_ client: ClientUUID, id: CallID, payload: [UInt8]) -> Bool {
        let sent = machine.call(client, id: id, payload: payload, now: MonotonicClock.nowMs(), into: &outputs)
        run()
        return sent
    }

    /// Sends an event to one client.
    func event(_ client: ClientUUID, payload: [UInt8]) {
        machine.event(client, payload: payload, into: &outputs)
        run()
    }

    /// Sends an event to every connected client.
    func broadcast(payload: [UInt8]) {
        machine.broadcast(payload: payload, into: &outputs)
        run()
    }

    func isConnected(_ client: ClientUUID) -> Bool { machine.isConnected(client) }

    // MARK: - The socket

    private func readAll() {
        // A bounded batch keeps timers and other sockets of the loop served under load.
        for _ in 0..<1024 {
            let received: ZMQReceived?
            do {
                received = try socket.receive(dontWait: true, maxFrames: 16, maxBytes: maxMessageBytes)
            } catch {
                logger.error("receive failed: \(error)")
                return
            }
            guard let received else { return }
            switch received {
            case .message(let frames):
                guard frames.count >= 1 else { continue }
                let identity = frames[0]
                switch ClientMessage.decode(frames[1...]) {
                case .success(let message):
                    machine.receive(identity: identity, message, now: MonotonicClock.nowMs(), into: &outputs)
                case .failure(let malformed):
                    logger.debug("malformed message: \(malformed.detail)")
                    machine.malformed(identity: identity, malformed, into: &outputs)
                }
            case .oversize(let head, let total):
                logger.warning("message of \(total) bytes exceeds the limit of \(maxMessageBytes): dropped")
                guard head.count >= 1 else { continue }
                let reqId = head.count >= 3 && RPCOp(frame: head[1]) == .request ? head[2] : nil
                machine.oversize(identity: head[0], reqId: reqId, bytes: total, limit: maxMessageBytes, into: &outputs)
            }
            run()
        }
    }

    private func send(_ frames: [[UInt8]]) {
        guard socket.handle != nil else { return }
        do {
            if try !socket.send(frames) {
                logger.warning("send queue full for a client: message dropped")
            }
        } catch let error {
            if !error.isHostUnreachable { logger.warning("send failed: \(error)") }
        }
    }

    /// Carries out the machine's outputs, including those its owner's reactions add (the owner
    /// calls back in while this runs: those calls only append, and this loop takes them).
    private func run() {
        guard !running else { return }
        running = true
        defer { running = false }
        var index = 0
        while index < outputs.count {
            let output = outputs[index]
            index += 1
            switch output {
            case .send(let frames):
                send(frames)
            case .clientConnected(let client):
                delegate?.rpcServer(self, clientConnected: client)
            case .clientGone(let client, let timedOut):
                delegate?.rpcServer(self, clientGone: client, timedOut: timedOut)
            case .ping(let client):
                delegate?.rpcServer(self, ping: client)
            case .request(let request):
                delegate?.rpcServer(self, request: request)
            case .callAnswered(let id, let result):
                delegate?.rpcServer(self, callAnswered: id, result: result)
            case .log(let level, let message):
                logger.log(level: level.swiftLogLevel, "\(message)")
            }
        }
        outputs.removeAll(keepingCapacity: true)
    }
}
