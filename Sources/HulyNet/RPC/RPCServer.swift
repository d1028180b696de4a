import CZeroMQ
import HulyNetCore
import HulyNetZMQ
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// A request a client sent to an `RPCServer`, handed to its delegate on the loop thread.
struct IncomingRequest {
    let client: ClientUUID
    let token: RequestToken
    let method: String
    /// The whole `[method, params]` JSON text and where `params` lies in it.
    let payload: [UInt8]
    let paramsRange: Range<Int>

    var rawParams: [UInt8] { Array(payload[paramsRange]) }

    func params() throws(JSONError) -> JSONValue {
        if paramsRange.isEmpty { return .null }
        return try JSONValue.parse(payload[paramsRange])
    }
}

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
    func rpcServer(_ server: RPCServer, callAnswered id: CallID, result: Result<[UInt8], RPCRemoteError>)
}

/// An error answered by the other side of an RPC connection (responseError), or a local failure
/// standing for one (timeout, peer gone).
public struct RPCRemoteError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The server side of the back-RPC protocol on a ROUTER socket: hello / ping / pong / askHello /
/// retry / close, per-client alive timeouts, the in-flight limit, duplicate request ids,
/// requests from the server to a client, and events.
///
/// Lives on one `IOLoop`; every method must be called on that loop's thread.
final class RPCServer {
    let loop: IOLoop
    let serverId: String
    let logger: Logger
    let timeouts: Timeouts
    var inFlightLimit = defaultInFlightLimit
    let limits: PeerLimits
    var maxMessageBytes: Int { limits.maxMessageBytes }
    weak var delegate: RPCServerDelegate?

    private let socket: ZMQSocket
    /// Connections accepted and closed, for the cap on connections.
    private let monitor: ZMQMonitor
    private var connectionCap: ConnectionCap
    /// What peers sent that was dropped or refused, logged as one line per interval.
    private var droppedInput = LogSummary()
    private(set) var port: Int = 0

    final class Peer {
        let clientId: ClientUUID
        var identity: [UInt8]
        var lastSeen: Int64
        var aliveMs: Int64
        var inFlight: Set<FrameKey> = []
        /// "<clientId>-", the start of the ids of the calls made to this client.
        private(set) lazy var callIdPrefix: [UInt8] = Array("\(clientId)-".utf8)
        init(clientId: ClientUUID, identity: [UInt8], lastSeen: Int64, aliveMs: Int64) {
            self.clientId = clientId
            self.identity = identity
            self.lastSeen = lastSeen
            self.aliveMs = aliveMs
        }
    }

    private var peersByIdentity: [FrameKey: Peer] = [:]
    private var peersByClient: [ClientUUID: Peer] = [:]
    private var pending: [RequestToken: (peer: Peer, reqId: [UInt8], deadline: Int64)] = [:]
    private var nextToken: RequestToken = 1
    /// Calls this server made, by request id, with the peer that alone may answer them.
    private var calls: [FrameKey: (peer: Peer, id: CallID)] = [:]
    private var callCounter = 0
    private var tickTimer: IOLoop.TimerID?

    struct Stats: Sendable {
        var requests = 0
        var responses = 0
        var hellos = 0
        var pings = 0
        var malformed = 0
    }
    private(set) var stats = Stats()

    var clientCount: Int { peersByClient.count }
    /// The most connections accepted at once (`limits.maxClients` lowered to the file limit).
    var connectionLimit: Int { connectionCap.limit }

    /// Binds `tcp://host:port` (port 0 picks a free one). Must run on the loop thread.
    init(loop: IOLoop, host: String, port: Int, timeouts: Timeouts, limits: PeerLimits = PeerLimits(), logger: Logger,
         context: ZMQContext = .shared) throws(ZMQError) {
        self.loop = loop
        self.timeouts = timeouts
        self.limits = limits
        self.logger = logger
        self.serverId = makeUUID()
        connectionCap = ConnectionCap(limit: limits.effectiveMaxClients)
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
        tickTimer = loop.every(milliseconds: Int(timeouts.tickMs)) { [unowned self] in self.checkAlive() }
    }

    func close() {
        if let tickTimer { loop.cancel(tickTimer) }
        tickTimer = nil
        loop.unregister(socket)
        loop.unregister(monitor.socket)
        socket.close() // stops the monitor before its reader goes
        monitor.close()
        // Requests the server made can no longer be answered.
        let open = calls
        calls.removeAll()
        for (_, (_, id)) in open { delegate?.rpcServer(self, callAnswered: id, result: .failure(RPCRemoteError("server closed"))) }
    }

    var isClosed: Bool { socket.handle == nil }

    // MARK: sending

    private func send(_ frames: [[UInt8]]) {
        guard socket.handle != nil else { return }
        do {
            if try !socket.send(frames) {
                droppedInput.record("answer dropped, the peer's send queue is full")
            }
        } catch let error {
            if !error.isHostUnreachable { logger.warning("send failed: \(error)") }
        }
    }

    /// Answers a request with JSON text.
    func replyRaw(_ token: RequestToken, _ payload: [UInt8]) {
        guard let (peer, reqId, _) = pending.removeValue(forKey: token) else { return }
        peer.inFlight.remove(FrameKey(reqId))
        stats.responses += 1
        send([peer.identity, RPCOp.response.frame, reqId, payload])
    }

    func reply(_ token: RequestToken, _ value: JSONValue) { replyRaw(token, value.serialized()) }

    func fail(_ token: RequestToken, _ message: String) {
        guard let (peer, reqId, _) = pending.removeValue(forKey: token) else { return }
        peer.inFlight.remove(FrameKey(reqId))
        send([peer.identity, RPCOp.responseError.frame, reqId, errorPayload(message)])
    }

    /// Sends a request (`payload` = `[method, params]` JSON text) to a client. Returns false
    /// when the client is not connected; otherwise the answer comes to the delegate.
    @discardableResult
    func call(_ client: ClientUUID, id: CallID, payload: [UInt8]) -> Bool {
        guard let peer = peersByClient[client] else { return false }
        callCounter += 1
        // The reference's shape, "<clientId>-<counter>".
        var reqId = peer.callIdPrefix
        reqId.append(contentsOf: String(callCounter).utf8)
        calls[FrameKey(reqId)] = (peer, id)
        send([peer.identity, RPCOp.request.frame, reqId, payload])
        return true
    }

    /// Sends an event to one client.
    func event(_ client: ClientUUID, payload: [UInt8]) {
        guard let peer = peersByClient[client] else { return }
        send([peer.identity, RPCOp.event.frame, [], payload])
    }

    /// Sends an event to every connected client.
    func broadcast(payload: [UInt8]) {
        for peer in peersByClient.values {
            send([peer.identity, RPCOp.event.frame, [], payload])
        }
    }

    func isConnected(_ client: ClientUUID) -> Bool { peersByClient[client] != nil }

    // MARK: receiving

    private func readAll() {
        // Connections accepted are known before their first message is read.
        readMonitor()
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
                handle(frames)
            case .oversize(let head, let total):
                // Frames each within ZMQ_MAXMSGSIZE but too many or too large together.
                malformedInput("message over the size or frame limit", head.count > 1 ? head[1] : [])
                if head.count >= 3, RPCOp(frame: head[1]) == .request {
                    send([head[0], RPCOp.responseError.frame, head[2],
                          errorPayload("message of \(total) bytes exceeds the limit of \(maxMessageBytes) bytes")])
                }
            }
        }
    }

    private func handle(_ frames: [[UInt8]]) {
        guard frames.count >= 2, let op = RPCOp(frame: frames[1]) else {
            malformedInput("unknown or missing op", frames.count > 1 ? frames[1] : [])
            return
        }
        let identity = frames[0]
        let now = MonotonicClock.nowMs()
        let peer = peersByIdentity[FrameKey(identity)]
        peer?.lastSeen = now
        switch op {
        case .hello:
            guard frames.count >= 3, !frames[2].isEmpty else {
                malformedInput("hello without a client id")
                return
            }
            // Client ids are uuids: printable, short. Anything else is refused here, so that no
            // peer's bytes reach a log line, a map key or an event.
            guard frames[2].count <= 128, frames[2].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                malformedInput("hello with a client id that is not printable ASCII of at most 128 bytes", frames[2])
                return
            }
            hello(identity: identity, clientId: frames[2].frameText, payload: frames.count > 3 ? frames[3] : [], now: now)
        case .ping:
            stats.pings += 1
            send([identity, RPCOp.pong.frame, Array(serverId.utf8), []])
            if let peer {
                delegate?.rpcServer(self, ping: peer.clientId)
            } else {
                send([identity, RPCOp.askHello.frame, Array(serverId.utf8), []])
            }
        case .close:
            if let peer { drop(peer, timedOut: false) }
        case .request:
            stats.requests += 1
            guard frames.count >= 4 else {
                if frames.count == 3 {
                    malformedInput("request without a payload", frames[2])
                    send([identity, RPCOp.responseError.frame, frames[2], errorPayload("request without a payload")])
                } else {
                    malformedInput("request without a request id")
                }
                return
            }
            request(peer: peer, identity: identity, reqId: frames[2], payload: frames[3], now: now)
        case .response, .responseError:
            let key = FrameKey(frames.count >= 3 ? frames[2] : [])
            guard frames.count >= 4, let call = calls.removeValue(forKey: key) else { return }
            guard call.peer === peer else {
                calls[key] = call // not the client the call went to: ignored
                return
            }
            let id = call.id
            stats.responses += 1
            let result: Result<[UInt8], RPCRemoteError> = op == .response
                ? .success(frames[3]) : .failure(RPCRemoteError(errorMessage(fromPayload: frames[3])))
            delegate?.rpcServer(self, callAnswered: id, result: result)
        case .event:
            break // The reference server ignores client events too.
        case .pong, .retry, .askHello:
            malformedInput("a server's op from a client")
        }
    }

    /// Counts a message that breaks the protocol, for the statistics and the periodic log line.
    private func malformedInput(_ reason: String, _ input: [UInt8] = []) {
        stats.malformed += 1
        droppedInput.record(reason, input: input)
    }

    /// Keeps the connections within the cap: past it, the one waiting longest without saying
    /// hello is closed (shutdown makes libzmq see the end of the stream and close it itself).
    private func readMonitor() {
        while let event = try? monitor.next() {
            let fd = Int32(bitPattern: event.value)
            if event.isAccepted {
                if let victim = connectionCap.accepted(fd) {
                    droppedInput.record("connection closed over the limit of \(connectionCap.limit)")
                    shutdown(victim, Int32(SHUT_RDWR))
                }
            } else if event.isDisconnected {
                connectionCap.closed(fd)
            }
        }
    }

    private func hello(identity: [UInt8], clientId: ClientUUID, payload: [UInt8], now: Int64) {
        stats.hellos += 1
        var aliveMs = timeouts.aliveMs
        if let value = try? JSONValue.parse(payload), let seconds = value.member("aliveTimeout")?.doubleValue,
           seconds.isFinite, seconds > 0 {
            aliveMs = Int64(min(seconds, 86_400) * 1000)
        }
        let isNew: Bool
        if let existing = peersByClient[clientId] {
            // The same client on a new connection: move it, keeping its requests in flight.
            if existing.identity != identity {
                peersByIdentity.removeValue(forKey: FrameKey(existing.identity))
                existing.identity = identity
            }
            existing.aliveMs = aliveMs
            existing.lastSeen = now
            peersByIdentity[FrameKey(identity)] = existing
            isNew = false
        } else {
            if let stale = peersByIdentity[FrameKey(identity)] {
                // One socket saying hello with another client id: the old id is gone.
                drop(stale, timedOut: false)
            }
            guard peersByClient.count < connectionCap.limit || evictSilentClient(now: now) else {
                droppedInput.record("hello refused, \(connectionCap.limit) clients connected")
                return
            }
            let peer = Peer(clientId: clientId, identity: identity, lastSeen: now, aliveMs: aliveMs)
            peersByIdentity[FrameKey(identity)] = peer
            peersByClient[clientId] = peer
            isNew = true
        }
        // The connection carries a client now: never closed to make room for a newcomer.
        connectionCap.greeted(socket.lastSourceFD)
        send([identity, RPCOp.hello.frame, Array(serverId.utf8), []])
        if isNew { delegate?.rpcServer(self, clientConnected: clientId) }
    }

    private func request(peer: Peer?, identity: [UInt8], reqId: [UInt8], payload: [UInt8], now: Int64) {
        guard let peer else {
            // Requests are possible only after hello.
            send([identity, RPCOp.retry.frame, reqId, Array("1".utf8)])
            return
        }
        // One hash for the common case: inserted unless it is still being answered (never run twice).
        let requestKey = FrameKey(reqId)
        guard peer.inFlight.insert(requestKey).inserted else { return }
        if peer.inFlight.count > inFlightLimit {
            peer.inFlight.remove(requestKey)
            send([identity, RPCOp.retry.frame, reqId, Array(String(peer.inFlight.count).utf8)])
            return
        }
        let elements: [Range<Int>]
        do {
            elements = try JSONScanner.topLevelArrayElements(payload)
        } catch {
            peer.inFlight.remove(requestKey)
            malformedInput("request payload not valid JSON", payload)
            send([identity, RPCOp.responseError.frame, reqId, errorPayload("request payload is not valid JSON: \(error.message)")])
            return
        }
        guard elements.count >= 1, let method = JSONScanner.stringValue(payload, in: elements[0]) else {
            peer.inFlight.remove(requestKey)
            malformedInput("request payload not [method, params]", payload)
            send([identity, RPCOp.responseError.frame, reqId, errorPayload("request payload must be [method, params]")])
            return
        }
        let paramsRange = elements.count >= 2 ? elements[1] : payload.endIndex..<payload.endIndex
        let token = nextToken
        nextToken &+= 1
        pending[token] = (peer, reqId, now + timeouts.requestMs)
        delegate?.rpcServer(self, request: IncomingRequest(client: peer.clientId, token: token, method: method,
                                                          payload: payload, paramsRange: paramsRange))
    }

    private func drop(_ peer: Peer, timedOut: Bool) {
        peersByIdentity.removeValue(forKey: FrameKey(peer.identity))
        guard peersByClient[peer.clientId] === peer else { return }
        peersByClient.removeValue(forKey: peer.clientId)
        if timedOut {
            logger.info("client \(peer.clientId) silent for more than \(peer.aliveMs) ms: dropped")
        }
        delegate?.rpcServer(self, clientGone: peer.clientId, timedOut: timedOut)
    }

    /// At the client limit: drops the client silent longest if it has missed pings (gone
    /// without a word, its connection closed), to make room. False when every client is live.
    private func evictSilentClient(now: Int64) -> Bool {
        guard let oldest = peersByClient.values.min(by: { $0.lastSeen < $1.lastSeen }),
              now - oldest.lastSeen > 2 * timeouts.pingIntervalMs else { return false }
        droppedInput.record("silent client dropped for a new one")
        drop(oldest, timedOut: false)
        return true
    }

    private func checkAlive() {
        let now = MonotonicClock.nowMs()
        if let line = droppedInput.line(now: now, what: "input from peers refused") {
            logger.warning("\(line)")
        }
        for peer in peersByClient.values where now - peer.lastSeen > peer.aliveMs {
            drop(peer, timedOut: true)
        }
        // A handler that never answers must not hold a place of the in-flight limit forever.
        for (token, entry) in pending where entry.deadline <= now {
            fail(token, "timed out after \(timeouts.requestMs) ms without an answer")
        }
    }
}
