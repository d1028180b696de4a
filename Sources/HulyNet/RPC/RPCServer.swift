import CZeroMQ
import HulyNetCore
import HulyNetSync
import HulyNetZMQ
import Logging

#if canImport(Glibc)
import Glibc
#endif

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
/// machine's timer and carries out what it asks. It also keeps what peers can do to the process
/// itself bounded (`PeerLimits`): frames over the size limit are refused by libzmq before they
/// are buffered, connections must finish their handshake in time and stay under a cap, and
/// what peers send that is refused is logged as a periodic summary, never a line a message.
///
/// Lives on one `IOLoop`; every method must be called on that loop's thread.
/// Its state is confined to the loop thread: the properties a message touches skip run-time
/// exclusivity checks.
final class RPCServer {
    let loop: IOLoop
    let logger: Logger
    let limits: PeerLimits
    var maxMessageBytes: Int { limits.maxMessageBytes }
    @exclusivity(unchecked) weak var delegate: RPCServerDelegate?

    let machine: RPCServerMachine
    private let socket: ZMQSocket
    /// Connections accepted and closed, for the cap on connections.
    private let monitor: ZMQMonitor
    @exclusivity(unchecked) private var connectionCap: ConnectionCap
    /// What peers sent that was dropped or refused, logged as one line per interval.
    @exclusivity(unchecked) private var droppedInput = LogSummary()
    private(set) var port: Int = 0
    private var tickTimer: IOLoop.TimerID?
    /// The machine's outputs, reused from message to message.
    private let outputs = OutputQueue<RPCServerOutput>()
    /// The frames of the message being read, storage reused from message to message.
    @exclusivity(unchecked) private var frames: [[UInt8]] = []

    var serverId: String { machine.serverId }
    var stats: RPCServerMachine.Stats { machine.stats }
    var clientCount: Int { machine.clientCount }
    var inFlightLimit: Int {
        get { machine.inFlightLimit }
        set { machine.inFlightLimit = newValue }
    }
    /// The most connections accepted at once (`limits.maxClients` lowered to the file limit).
    var connectionLimit: Int { connectionCap.limit }
    /// On a server authenticating its clients (CURVE and ZAP): the key each client id said hello
    /// with. A client id belongs to the key that first said hello with it while it is connected:
    /// another key's hello with it is dropped, so no key can take over another's session.
    private var principals: [ClientUUID: String] = [:]
    /// Hellos dropped because another key holds their client id.
    private(set) var helloTheftsRefused = 0

    /// The connection (file descriptor) each authenticated client said hello on, to cut it.
    private var clientFDs: [ClientUUID: Int32] = [:]
    /// Whether a key may still say hello (it may have been revoked after its connection was
    /// admitted); nil: any admitted key may.
    var admitsKey: ((String) -> Bool)?

    /// The public key a client connected with (on an authenticating server).
    func principal(of client: ClientUUID) -> String? { principals[client] }

    /// The clients connected with `key`.
    func clients(withKey key: String) -> [ClientUUID] { principals.filter { $0.value == key }.map(\.key) }

    /// Drops a client and closes its connection (its key was revoked): it is gone at once, and a
    /// new connection of its key is refused by the ZAP handler.
    func cut(_ client: ClientUUID) {
        if let fd = clientFDs.removeValue(forKey: client) { shutdown(fd, Int32(SHUT_RDWR)) }
        machine.drop(client, into: &outputs.items)
        run()
    }

    func setRateLimit(_ limit: RateLimit?, for client: ClientUUID) { machine.setRateLimit(limit, for: client) }

    /// When set, the server handles nothing once it lapses: it closes and calls `onFenced`.
    @exclusivity(unchecked) var lease: ServingLease?
    var onFenced: (() -> Void)?

    /// Binds `tcp://host:port` (port 0 picks a free one). Must run on the loop thread.
    /// `curve`: serve encrypted, as a CURVE server with these keys; `zapDomain`: ask the ZAP
    /// handler of `context` about each client connecting (see `ZAPHandler`).
    init(loop: IOLoop, host: String, port: Int, timeouts: Timeouts, limits: PeerLimits = PeerLimits(), logger: Logger,
         context: ZMQContext = .shared, curve: CurveKeyPair? = nil, zapDomain: String? = nil) throws(ZMQError) {
        self.loop = loop
        self.logger = logger
        self.limits = limits
        connectionCap = ConnectionCap(limit: limits.effectiveMaxClients)
        machine = RPCServerMachine(timeouts: timeouts, maxClients: connectionCap.limit)
        socket = try ZMQSocket(context: context, type: .router)
        do {
            try socket.setOption(ZMQ_ROUTER_MANDATORY, 1)
            try socket.setOption(ZMQ_TCP_KEEPALIVE, 1)
            try socket.setOption(ZMQ_SNDHWM, 100_000)
            try socket.setOption(ZMQ_RCVHWM, 100_000)
            // Refused by libzmq from the frame's header, before a byte of it is buffered.
            try socket.setOption64(ZMQ_MAXMSGSIZE, Int64(limits.maxMessageBytes))
            try socket.setOption(ZMQ_HANDSHAKE_IVL, Int32(limits.handshakeTimeoutMs))
            // A burst of connections waits in the kernel's queue (capped by somaxconn) instead of
            // having its SYNs dropped and retried a second or more later, a real client's too.
            try socket.setOption(ZMQ_BACKLOG, 4096)
            // Only a hello needs to know its connection (the cap on connections, cutting a client).
            socket.sourceFDSecondFrame = RPCOp.hello.frame
            if let curve {
                try socket.makeCurveServer(curve, zapDomain: zapDomain)
                socket.readsUserId = zapDomain != nil
            }
            monitor = try socket.monitor(events: ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED, context: context)
            let bindHost = (host == "0.0.0.0" || host.isEmpty) ? "*" : host
            try socket.bind("tcp://\(bindHost):\(port)")
            self.port = try socket.boundPort()
        } catch {
            socket.close()
            throw error
        }
        loop.register(socket) { [unowned self] in self.readAll() }
        loop.register(monitor.socket) { [unowned self] in self.readMonitor() }
        tickTimer = loop.every(milliseconds: Int(timeouts.tickMs)) { [unowned self] in
            let now = MonotonicClock.nowMs()
            guard stillLeased(now: now) else { return }
            if let line = droppedInput.line(now: now, what: "input from peers refused") { logger.warning("\(line)") }
            machine.tick(now: now, into: &outputs.items)
            run()
        }
    }

    func close() {
        if let tickTimer { loop.cancel(tickTimer) }
        tickTimer = nil
        loop.unregister(socket)
        loop.unregister(monitor.socket)
        socket.close() // stops the monitor before its reader goes
        monitor.close()
        machine.close(into: &outputs.items)
        run()
    }

    var isClosed: Bool { socket.handle == nil }

    // MARK: - What the owner sends

    /// Answers a request with JSON text.
    func replyRaw(_ token: RequestToken, _ payload: [UInt8]) {
        machine.reply(token, payload, into: &outputs.items)
        run()
    }

    func reply(_ token: RequestToken, _ value: JSONValue) { replyRaw(token, value.serialized()) }

    func fail(_ token: RequestToken, _ error: RemoteError) {
        machine.fail(token, error, into: &outputs.items)
        run()
    }

    /// Sends a request (`payload` = `[method, params]` JSON text) to a client. Returns false
    /// when the client is not connected; otherwise the answer comes to the delegate.
    @discardableResult
    func call(_ client: ClientUUID, id: CallID, payload: [UInt8]) -> Bool {
        let sent = machine.call(client, id: id, payload: payload, now: MonotonicClock.nowMs(), into: &outputs.items)
        run()
        return sent
    }

    /// Sends an event to one client.
    func event(_ client: ClientUUID, payload: [UInt8]) {
        machine.event(client, payload: payload, into: &outputs.items)
        run()
    }

    /// Sends an event to every connected client.
    func broadcast(payload: [UInt8]) {
        machine.broadcast(payload: payload, into: &outputs.items)
        run()
    }

    func isConnected(_ client: ClientUUID) -> Bool { machine.isConnected(client) }

    // MARK: - The socket

    private func readAll() {
        // A bounded batch keeps timers and other sockets of the loop served under load.
        for _ in 0..<1024 {
            let received: ZMQSocket.ReceiveStatus
            do {
                received = try socket.receive(into: &frames, dontWait: true, maxFrames: 16, maxBytes: maxMessageBytes)
            } catch {
                logger.error("receive failed: \(error)")
                return
            }
            switch received {
            case .none:
                return
            case .message:
                guard frames.count >= 1 else { continue }
                let now = MonotonicClock.nowMs()
                guard stillLeased(now: now) else { return }
                let identity = frames[0]
                switch ClientMessage.decode(frames[1...]) {
                case .success(let message):
                    if socket.readsUserId, case .hello(let clientId, _) = message, !ownsClientId(clientId) { continue }
                    machine.receive(identity: identity, message, now: now, into: &outputs.items)
                    // The connection carries a client now: never closed to make room for a newcomer
                    // (its accepted event is taken first, so that the cap knows the connection).
                    if case .hello(let clientId, _) = message, machine.isConnected(clientId) {
                        readMonitor()
                        connectionCap.greeted(socket.lastSourceFD)
                    }
                case .failure(let malformed):
                    droppedInput.record(malformed.reason.summary, input: frames.count > 1 ? frames[frames.count > 2 ? 2 : 1] : [])
                    machine.malformed(identity: identity, malformed, into: &outputs.items)
                }
            case .oversize(let total):
                // Frames each within ZMQ_MAXMSGSIZE, but too many or too large together.
                let head = frames
                droppedInput.record("message over the size or frame limit (\(total) bytes)")
                guard head.count >= 1 else { continue }
                let reqId = head.count >= 3 && RPCOp(frame: head[1]) == .request ? head[2] : nil
                machine.oversize(identity: head[0], reqId: reqId, bytes: total, limit: maxMessageBytes, into: &outputs.items)
            }
            run()
        }
    }

    /// Whether the key of the message just received may say hello as `clientId` (and records it).
    private func ownsClientId(_ clientId: ClientUUID) -> Bool {
        let key = socket.lastUserId ?? ""
        if let admitsKey, !admitsKey(key) {
            droppedInput.record("hello on a connection whose key was revoked")
            machine.metrics?.refused(.helloRefused)
            shutdown(socket.lastSourceFD, Int32(SHUT_RDWR))
            return false
        }
        if let owner = principals[clientId], owner != key {
            helloTheftsRefused += 1
            machine.metrics?.refused(.helloRefused)
            droppedInput.record("hello with a client id that another key holds")
            return false
        }
        principals[clientId] = key
        clientFDs[clientId] = socket.lastSourceFD
        return true
    }

    /// False, after closing the server, once its lease has lapsed: a coordinator that is no
    /// longer sure to lead must not answer or call anyone.
    private func stillLeased(now: Int64) -> Bool {
        guard let lease, !lease.holds(now: now) else { return true }
        guard !isClosed else { return false }
        close()
        onFenced?()
        return false
    }

    private func send(_ message: OutgoingMessage) {
        guard socket.handle != nil else { return }
        do {
            if try !socket.send(message.identity, message.op.frame, message.id, message.payload) {
                droppedInput.record("answer dropped, the peer's send queue is full")
            }
        } catch let error {
            if !error.isHostUnreachable { logger.warning("send failed: \(error)") }
        }
    }

    /// Keeps the connections within the cap: past it, the one waiting longest without saying
    /// hello is closed (shutdown makes libzmq see the end of the stream and close it itself).
    private func readMonitor() {
        while let event = try? monitor.next() {
            let fd = Int32(bitPattern: event.value)
            if event.isAccepted {
                if let victim = connectionCap.accepted(fd) {
                    machine.metrics?.refused(.connectionsLimit)
                    droppedInput.record("connection closed over the limit of \(connectionCap.limit)")
                    shutdown(victim, Int32(SHUT_RDWR))
                }
            } else if event.isDisconnected {
                connectionCap.closed(fd)
            }
        }
    }

    /// Carries out the machine's outputs, including those its owner's reactions add (the owner
    /// calls back in while this runs: those calls only append, and this loop takes them).
    private func run() {
        outputs.drain { output in
            switch output {
            case .send(let message):
                send(message)
            case .clientConnected(let client):
                delegate?.rpcServer(self, clientConnected: client)
            case .clientGone(let client, let timedOut):
                principals.removeValue(forKey: client)
                clientFDs.removeValue(forKey: client)
                delegate?.rpcServer(self, clientGone: client, timedOut: timedOut)
            case .ping(let client):
                delegate?.rpcServer(self, ping: client)
            case .request(let request):
                delegate?.rpcServer(self, request: request)
            case .callAnswered(let id, let result):
                delegate?.rpcServer(self, callAnswered: id, result: result)
            case .dropped(let reason):
                droppedInput.record(reason)
            case .log(let level, let message):
                logger.log(level: level.swiftLogLevel, "\(message)")
            }
        }
    }
}
