/// A frame's bytes as a dictionary key (routing identities, request ids). `[UInt8]` hashes byte
/// by byte; this hashes the whole buffer at once, which matters on the coordinator's hot path,
/// where each forwarded request looks up several such keys.
public struct FrameKey: Hashable, Sendable {
    public let bytes: [UInt8]

    @inlinable
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    @inlinable
    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    @inlinable
    public static func == (lhs: FrameKey, rhs: FrameKey) -> Bool { lhs.bytes == rhs.bytes }
}

/// A request a client sent, handed to the server's owner.
public struct IncomingRequest: Sendable {
    public let client: ClientUUID
    public let token: RequestToken
    /// The client's own id for it (unique for that client, kept when it resends).
    public let requestId: [UInt8]
    public let method: String
    /// The whole `[method, params]` JSON text and where `params` lies in it.
    public let payload: [UInt8]
    public let paramsRange: Range<Int>

    public init(client: ClientUUID, token: RequestToken, requestId: [UInt8], method: String, payload: [UInt8],
                paramsRange: Range<Int>) {
        self.client = client
        self.token = token
        self.requestId = requestId
        self.method = method
        self.payload = payload
        self.paramsRange = paramsRange
    }

    public var rawParams: [UInt8] { Array(payload[paramsRange]) }

    public func params() throws(JSONError) -> JSONValue {
        if paramsRange.isEmpty { return .null }
        return try JSONValue.parse(payload[paramsRange])
    }
}

/// A message the server sends: `[identity, op, id, payload]`, the shape of every one of them,
/// kept apart so that sending one builds no array of frames.
public struct OutgoingMessage: Sendable, Equatable {
    /// The peer's routing identity.
    public let identity: [UInt8]
    public let op: RPCOp
    public let id: [UInt8]
    public let payload: [UInt8]

    public init(to identity: [UInt8], _ op: RPCOp, _ id: [UInt8], _ payload: [UInt8]) {
        self.identity = identity
        self.op = op
        self.id = id
        self.payload = payload
    }

    public var frames: [[UInt8]] { [identity, op.frame, id, payload] }
}

/// What an `RPCServerMachine` asks its shell to do, and tells its owner.
public enum RPCServerOutput: Sendable {
    case send(OutgoingMessage)
    /// A client id said hello for the first time.
    case clientConnected(ClientUUID)
    /// A client closed (`timedOut` false) or stayed silent past its alive timeout.
    case clientGone(ClientUUID, timedOut: Bool)
    case ping(ClientUUID)
    /// Answer it with `reply` or `fail` and its token, now or later.
    case request(IncomingRequest)
    /// The answer to a request the server sent with `call`.
    case callAnswered(CallID, Result<[UInt8], RemoteError>)
    /// A peer's message was refused or dropped: count it into the periodic summary (`reason`
    /// is hulynet's own text, never the peer's bytes).
    case dropped(String)
    case log(LogLevel, String)
}

/// The server side of the back-RPC protocol, for every client of one ROUTER socket, without I/O
/// or clocks: hello / ping / pong / askHello / retry / close, per-client alive timeouts, the
/// in-flight limit, duplicate request ids, request deadlines, and the server's own calls to
/// clients, whose ids are unique across server runs.
///
/// Not thread-safe: one thread (the socket's I/O loop) owns it.
public final class RPCServerMachine {
    public let serverId: String
    public let timeouts: Timeouts
    public var inFlightLimit: Int
    /// The most clients greeted at once: past it, a hello replaces a client that has missed two
    /// pings, or is refused.
    public let maxClients: Int

    /// Confined to the machine's thread like the machine: no run-time exclusivity checks.
    final class Peer {
        let clientId: ClientUUID
        @exclusivity(unchecked) var identity: [UInt8]
        @exclusivity(unchecked) var lastSeen: Int64
        @exclusivity(unchecked) var aliveMs: Int64
        @exclusivity(unchecked) var inFlight: Set<FrameKey> = []
        /// Requests a second its key may send (a secured network's policy), if limited.
        @exclusivity(unchecked) var rateLimit: RateLimit?
        /// "<clientId>-<run>-", the start of the ids of the calls made to this client.
        let callIdPrefix: [UInt8]

        init(clientId: ClientUUID, identity: [UInt8], lastSeen: Int64, aliveMs: Int64, run: String) {
            self.clientId = clientId
            self.identity = identity
            self.lastSeen = lastSeen
            self.aliveMs = aliveMs
            callIdPrefix = Array("\(clientId)-\(run)-".utf8)
        }
    }

    struct Pending {
        let peer: Peer
        let reqId: [UInt8]
        let deadline: Int64
        /// For the metrics (zero without them): the method's index in `NetworkMetrics.methodLabels`
        /// and when the request arrived.
        let method: UInt8
        let startedNs: UInt64
    }

    /// A call this server made, with the peer that alone may answer it.
    struct Call {
        let peer: Peer
        let id: CallID
        let deadline: Int64
    }

    @exclusivity(unchecked) private var peersByIdentity: [FrameKey: Peer] = [:]
    @exclusivity(unchecked) private var peersByClient: [ClientUUID: Peer] = [:]
    /// Requests being answered, by token (the slab's key).
    @exclusivity(unchecked) private var pending = Slab<Pending>()
    /// Calls this server made: a call's request id is the client's call-id prefix followed by
    /// the call's key here, in decimal.
    @exclusivity(unchecked) private var calls = Slab<Call>()
    /// Part of every call id: a late answer to a call of an earlier run of this server (same
    /// client, same counter) can never be taken for the answer to one of this run.
    private let run: String
    private let serverIdFrame: [UInt8]

    public struct Stats: Sendable, Equatable {
        public var requests = 0
        public var responses = 0
        public var hellos = 0
        public var pings = 0
        public var malformed = 0
        /// Requests told to retry because their key's rate limit was reached.
        public var rateLimited = 0
    }
    @exclusivity(unchecked) public private(set) var stats = Stats()
    /// Where requests, answers, retries, refusals and malformed messages are counted (nil: nowhere).
    @exclusivity(unchecked) public var metrics: NetworkMetrics? // set once, before use; loop-confined

    public init(serverId: String = makeUUID(), timeouts: Timeouts, inFlightLimit: Int = defaultInFlightLimit,
                maxClients: Int = defaultMaxClients) {
        self.serverId = serverId
        self.timeouts = timeouts
        self.inFlightLimit = inFlightLimit
        self.maxClients = max(1, maxClients)
        serverIdFrame = Array(serverId.utf8)
        // 32 bits of the server's random id: short, so the ids hash fast on the hot path.
        run = String(serverId.filter(\.isHexDigit).prefix(8))
    }

    public var clientCount: Int { peersByClient.count }
    public var pendingCount: Int { pending.count }
    /// Calls made and not answered yet.
    public var callCount: Int { calls.count }
    public func isConnected(_ client: ClientUUID) -> Bool { peersByClient[client] != nil }

    /// Drops a connected client at once (its key was revoked, say): it is gone as if it had
    /// closed; if its connection says anything more it is a stranger that must say hello.
    public func drop(_ client: ClientUUID, into out: inout [RPCServerOutput]) {
        guard let peer = peersByClient[client] else { return }
        drop(peer, timedOut: false, into: &out)
    }

    /// Limits the requests a second of a connected client (nil: no limit).
    public func setRateLimit(_ limit: RateLimit?, for client: ClientUUID) {
        peersByClient[client]?.rateLimit = limit
    }

    // MARK: - What a client sent

    /// A message from the peer with this routing identity.
    public func receive(identity: [UInt8], _ message: ClientMessage, now: Int64, into out: inout [RPCServerOutput]) {
        let peer = peersByIdentity[FrameKey(identity)]
        peer?.lastSeen = now
        switch message {
        case .hello(let clientId, let aliveTimeoutMs):
            hello(identity: identity, clientId: clientId, aliveMs: aliveTimeoutMs ?? timeouts.aliveMs, now: now, into: &out)
        case .ping:
            stats.pings += 1
            out.append(.send(OutgoingMessage(to: identity, .pong, serverIdFrame, [])))
            if let peer {
                out.append(.ping(peer.clientId))
            } else {
                out.append(.send(OutgoingMessage(to: identity, .askHello, serverIdFrame, [])))
            }
        case .close:
            if let peer { drop(peer, timedOut: false, into: &out) }
        case .request(let reqId, let payload):
            stats.requests += 1
            request(peer: peer, identity: identity, reqId: reqId, payload: payload, now: now, into: &out)
        case .response(let reqId, let payload):
            answer(from: peer, reqId: reqId, .success(payload), into: &out)
        case .responseError(let reqId, let payload):
            answer(from: peer, reqId: reqId, .failure(RemoteError(payload: payload)), into: &out)
        case .event:
            break // The reference server ignores client events too.
        }
    }

    /// A message that is not one of the protocol's: counted, and a request whose id could be read
    /// is answered with an error so that its sender does not wait.
    public func malformed(identity: [UInt8], _ error: MalformedMessage, into out: inout [RPCServerOutput]) {
        stats.malformed += 1
        metrics?.malformed(.frames)
        if let reqId = error.reqId {
            out.append(.send(OutgoingMessage(to: identity, .responseError, reqId,
                              RemoteError(error.detail, code: .invalid).payload)))
        }
    }

    /// A message over the size limit, refused before it was read whole.
    public func oversize(identity: [UInt8], reqId: [UInt8]?, bytes: Int, limit: Int, into out: inout [RPCServerOutput]) {
        stats.malformed += 1
        metrics?.malformed(.oversize)
        if let reqId {
            out.append(.send(OutgoingMessage(to: identity, .responseError, reqId,
                              RemoteError("message of \(bytes) bytes exceeds the limit of \(limit) bytes", code: .limit).payload)))
        }
    }

    private func hello(identity: [UInt8], clientId: ClientUUID, aliveMs: Int64, now: Int64, into out: inout [RPCServerOutput]) {
        stats.hellos += 1
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
                drop(stale, timedOut: false, into: &out)
            }
            guard peersByClient.count < maxClients || evictSilentClient(now: now, into: &out) else {
                metrics?.refused(.clientsLimit)
                out.append(.dropped("hello refused, \(maxClients) clients connected"))
                return
            }
            let peer = Peer(clientId: clientId, identity: identity, lastSeen: now, aliveMs: aliveMs, run: run)
            peersByIdentity[FrameKey(identity)] = peer
            peersByClient[clientId] = peer
            metrics?.clients.set(Int64(peersByClient.count))
            isNew = true
        }
        // Tells a client that reconnects whether this server dropped it meanwhile (a TypeScript
        // client reads only the server id).
        out.append(.send(OutgoingMessage(to: identity, .hello, serverIdFrame, helloPayload(newClient: isNew))))
        if isNew {
            out.append(.log(.debug, "client \(clientId) said hello"))
            out.append(.clientConnected(clientId))
        }
    }

    private func request(peer: Peer?, identity: [UInt8], reqId: [UInt8], payload: [UInt8], now: Int64,
                         into out: inout [RPCServerOutput]) {
        guard let peer else {
            // Requests are possible only after hello.
            metrics?.retried(.beforeHello)
            out.append(.send(OutgoingMessage(to: identity, .retry, reqId, Self.one)))
            return
        }
        // One hash for the common case: inserted unless it is still being answered (never run twice).
        let requestKey = FrameKey(reqId)
        guard peer.inFlight.insert(requestKey).inserted else { return }
        if peer.inFlight.count > inFlightLimit {
            peer.inFlight.remove(requestKey)
            metrics?.retried(.inFlight)
            out.append(.send(OutgoingMessage(to: identity, .retry, reqId, Array(String(peer.inFlight.count).utf8))))
            return
        }
        if peer.rateLimit != nil, peer.rateLimit?.take(now: now) == false {
            // Told to retry as with the in-flight limit; the number sets its back-off (2 ms each)
            // to about when its next request is allowed.
            peer.inFlight.remove(requestKey)
            stats.rateLimited += 1
            metrics?.retried(.rateLimit)
            let waitMs = peer.rateLimit?.waitMs(now: now) ?? 1
            out.append(.send(OutgoingMessage(to: identity, .retry, reqId, Array(String(max(1, (waitMs + 1) / 2)).utf8))))
            return
        }
        let elements: [Range<Int>]
        do {
            elements = try JSONScanner.topLevelArrayElements(payload)
        } catch {
            peer.inFlight.remove(requestKey)
            stats.malformed += 1
            metrics?.malformed(.payload)
            out.append(.dropped("request payload not valid JSON"))
            out.append(.send(OutgoingMessage(to: identity, .responseError, reqId,
                              RemoteError("request payload is not valid JSON: \(error.message)", code: .invalid).payload)))
            return
        }
        guard elements.count >= 1, let method = JSONScanner.stringValue(payload, in: elements[0]) else {
            peer.inFlight.remove(requestKey)
            stats.malformed += 1
            metrics?.malformed(.payload)
            out.append(.dropped("request payload not [method, params]"))
            out.append(.send(OutgoingMessage(to: identity, .responseError, reqId,
                              RemoteError("request payload must be [method, params]", code: .invalid).payload)))
            return
        }
        let paramsRange = elements.count >= 2 ? elements[1] : payload.endIndex..<payload.endIndex
        var methodIndex: UInt8 = 0
        var startedNs: UInt64 = 0
        if let metrics {
            methodIndex = NetworkMetrics.methodIndex(method)
            startedNs = metrics.nowNs()
            metrics.requestReceived(method: methodIndex)
        }
        let token = pending.insert(Pending(peer: peer, reqId: reqId, deadline: now + timeouts.requestMs,
                                           method: methodIndex, startedNs: startedNs))
        out.append(.request(IncomingRequest(client: peer.clientId, token: token, requestId: reqId, method: method,
                                            payload: payload, paramsRange: paramsRange)))
    }

    private static let one: [UInt8] = Array("1".utf8)

    private func answer(from peer: Peer?, reqId: [UInt8], _ result: Result<[UInt8], RemoteError>,
                        into out: inout [RPCServerOutput]) {
        // Only the client a call went to may answer it; anyone else's answer, or an answer to an
        // id this server never gave, is ignored.
        guard let peer, let key = Self.callKey(reqId, prefix: peer.callIdPrefix), calls[key]?.peer === peer,
              let call = calls.removeValue(forKey: key) else { return }
        stats.responses += 1
        out.append(.callAnswered(call.id, result))
    }

    /// The key of a call from its request id: `prefix` followed by the key in decimal; nil for
    /// anything else (at most 20 digits, no sign, no leading zero).
    static func callKey(_ reqId: [UInt8], prefix: [UInt8]) -> UInt64? {
        let digits = reqId.count - prefix.count
        guard digits >= 1, digits <= 20, Self.startsWith(reqId, prefix), reqId[prefix.count] != 0x30 else { return nil }
        var key: UInt64 = 0
        for byte in reqId[prefix.count...] {
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            let (times10, overflow1) = key.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(byte - 0x30))
            guard !overflow1, !overflow2 else { return nil }
            key = sum
        }
        return key
    }

    /// Whether `bytes` starts with `prefix`, compared eight bytes a step.
    private static func startsWith(_ bytes: [UInt8], _ prefix: [UInt8]) -> Bool {
        guard bytes.count >= prefix.count else { return false }
        return bytes.withUnsafeBytes { b in
            prefix.withUnsafeBytes { p in
                var index = 0
                while index &+ 8 <= p.count {
                    if b.loadUnaligned(fromByteOffset: index, as: UInt64.self) != p.loadUnaligned(fromByteOffset: index, as: UInt64.self) {
                        return false
                    }
                    index &+= 8
                }
                while index < p.count {
                    if b[index] != p[index] { return false }
                    index &+= 1
                }
                return true
            }
        }
    }

    // MARK: - What the owner sends

    /// Answers a request with JSON text.
    public func reply(_ token: RequestToken, _ payload: [UInt8], into out: inout [RPCServerOutput]) {
        guard let entry = pending.removeValue(forKey: token) else { return }
        entry.peer.inFlight.remove(FrameKey(entry.reqId))
        stats.responses += 1
        metrics?.requestAnswered(method: entry.method, startedNs: entry.startedNs, failed: false)
        out.append(.send(OutgoingMessage(to: entry.peer.identity, .response, entry.reqId, payload)))
    }

    /// Answers a request with responseError.
    public func fail(_ token: RequestToken, _ error: RemoteError, into out: inout [RPCServerOutput]) {
        guard let entry = pending.removeValue(forKey: token) else { return }
        entry.peer.inFlight.remove(FrameKey(entry.reqId))
        metrics?.requestAnswered(method: entry.method, startedNs: entry.startedNs, failed: true)
        out.append(.send(OutgoingMessage(to: entry.peer.identity, .responseError, entry.reqId, error.payload)))
    }

    /// Sends a request (`payload` = `[method, params]` JSON text) to a client. Returns false when
    /// the client is not connected; otherwise its answer comes as `callAnswered` with this id:
    /// the client's, or a failure when the client goes (agent gone) or does not answer within
    /// `timeouts.requestMs` (timeout).
    @discardableResult
    public func call(_ client: ClientUUID, id: CallID, payload: [UInt8], now: Int64, into out: inout [RPCServerOutput]) -> Bool {
        guard let peer = peersByClient[client] else { return false }
        var reqId = peer.callIdPrefix
        reqId.appendDecimal(calls.insert(Call(peer: peer, id: id, deadline: now + timeouts.requestMs)))
        out.append(.send(OutgoingMessage(to: peer.identity, .request, reqId, payload)))
        return true
    }

    /// Sends an event to one client.
    public func event(_ client: ClientUUID, payload: [UInt8], into out: inout [RPCServerOutput]) {
        guard let peer = peersByClient[client] else { return }
        out.append(.send(OutgoingMessage(to: peer.identity, .event, [], payload)))
    }

    /// Sends an event to every connected client.
    public func broadcast(payload: [UInt8], into out: inout [RPCServerOutput]) {
        for peer in peersByClient.values {
            out.append(.send(OutgoingMessage(to: peer.identity, .event, [], payload)))
        }
    }

    // MARK: - Time and the end

    /// Drops clients silent past their alive timeout and fails requests past their deadline (a
    /// handler that never answers must not hold a place of the in-flight limit forever), and
    /// calls a client left unanswered as long.
    public func tick(now: Int64, into out: inout [RPCServerOutput]) {
        for peer in Array(peersByClient.values) where now - peer.lastSeen > peer.aliveMs {
            drop(peer, timedOut: true, into: &out)
        }
        for (token, entry) in pending where entry.deadline <= now {
            fail(token, RemoteError("timed out after \(timeouts.requestMs) ms without an answer", code: .timeout), into: &out)
        }
        for (key, call) in calls where call.deadline <= now {
            calls.removeValue(forKey: key)
            let error = RemoteError("client \(call.peer.clientId) did not answer within \(timeouts.requestMs) ms", code: .timeout)
            out.append(.callAnswered(call.id, .failure(error)))
        }
    }

    /// The socket is closing: calls made can no longer be answered.
    public func close(into out: inout [RPCServerOutput]) {
        let open = calls
        calls.removeAll()
        for (_, call) in open {
            out.append(.callAnswered(call.id, .failure(RemoteError("server closed", code: .agentGone))))
        }
    }

    /// At the client limit: drops the client silent longest if it has missed two pings (gone
    /// without a word, its connection closed), to make room. False when every client is live.
    private func evictSilentClient(now: Int64, into out: inout [RPCServerOutput]) -> Bool {
        guard let oldest = peersByClient.values.min(by: { $0.lastSeen < $1.lastSeen }),
              now - oldest.lastSeen > 2 * timeouts.pingIntervalMs else { return false }
        out.append(.dropped("silent client dropped for a new one"))
        drop(oldest, timedOut: false, into: &out)
        return true
    }

    private func drop(_ peer: Peer, timedOut: Bool, into out: inout [RPCServerOutput]) {
        peersByIdentity.removeValue(forKey: FrameKey(peer.identity))
        guard peersByClient[peer.clientId] === peer else { return }
        peersByClient.removeValue(forKey: peer.clientId)
        metrics?.clients.set(Int64(peersByClient.count))
        if timedOut {
            out.append(.log(.info, "client \(peer.clientId) silent for more than \(peer.aliveMs) ms: dropped"))
        }
        out.append(.clientGone(peer.clientId, timedOut: timedOut))
        // It can answer nothing more (if it comes back, it is another peer): its calls end here.
        for (key, call) in calls where call.peer === peer {
            calls.removeValue(forKey: key)
            out.append(.callAnswered(call.id, .failure(RemoteError("client \(peer.clientId) is gone", code: .agentGone))))
        }
    }
}
