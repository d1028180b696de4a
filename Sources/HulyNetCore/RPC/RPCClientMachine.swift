/// A request of an `RPCClientMachine`'s owner, until it is completed.
public typealias RPCRequestKey = Int

/// Why a request of the client side ended without an answer.
public enum RPCFailure: Error, Sendable, Equatable {
    /// The server answered responseError.
    case remote(RemoteError)
    /// No answer within the request's time.
    case timeout(String)
    /// The client closed, or the request was cancelled.
    case closed
}

/// How a server's hello answer relates to the servers this client met before.
public enum Greeting: Sendable, Equatable {
    /// The first server this client met.
    case first
    /// The same server again after a reconnect: it still knows this client.
    case same
    /// Another server (the coordinator restarted, or another took over): it knows nothing of
    /// this client, and the agents and containers it knew come back as their owners register.
    case newServer
    /// The same server, which dropped this client (silent past its alive timeout): it removed
    /// this client's agents with their containers and gave those to others.
    case forgotten

    /// The server must be told this client's state again (and requests held until it has been).
    public var mustRestore: Bool { self == .newServer || self == .forgotten }
}

/// A `[method, params]` request a server sent, and where its params lie in it. The params are
/// not validated yet: `params()` parses them, scanners validate what they read.
public struct IncomingCall: Sendable {
    public let method: String
    public let payload: [UInt8]
    /// Empty when the request has no params.
    public let paramsRange: Range<Int>

    public init(method: String, payload: [UInt8], paramsRange: Range<Int>) {
        self.method = method
        self.payload = payload
        self.paramsRange = paramsRange
    }

    /// The params, parsed now (`null` when absent).
    public func params() throws(JSONError) -> JSONValue {
        paramsRange.isEmpty ? .null : try JSONValue.parse(payload[paramsRange])
    }
}

/// What an `RPCClientMachine` asks its shell to do, and tells its owner.
public enum RPCClientOutput: Sendable {
    /// Send these frames on the DEALER socket.
    case send([[UInt8]])
    /// The server answered hello. When the greeting says it must be restored, the requests left
    /// pending are held until the owner has restored its state and calls `resendPending`.
    case connected(serverId: String, Greeting)
    case complete(RPCRequestKey, Result<[UInt8], RPCFailure>)
    case event([UInt8])
    /// The server asks this client something; answer with `respond`.
    case request(IncomingCall, reqId: [UInt8])
    /// Call `tick` again after this many milliseconds (a retry comes due before the next tick).
    case wake(afterMs: Int)
    case log(LogLevel, String)
}

/// The client side of the back-RPC protocol on one DEALER connection, without I/O or clocks:
/// hello on every (re)connect, pings, requests with deadlines, retry with back-off, and after a
/// new server (or one that forgot this client) the pending requests held until the owner has
/// restored its state, then resent with their ids unchanged, so that the network can recognise
/// them as resends.
///
/// Not thread-safe: one thread (the socket's I/O loop) owns it.
public final class RPCClientMachine {
    public let clientId: ClientUUID
    public let timeouts: Timeouts
    public let aliveTimeoutSeconds: Double

    /// The server's id while connected and greeted; nil while requests must wait.
    public private(set) var serverId: String?
    /// The id of the last server that answered hello, kept across disconnects.
    private var knownServerId: String?
    /// The server asked for hello again: it dropped this client and forgot its state.
    private var forgotten = false
    /// While the owner restores its state on a new server, other requests wait.
    public private(set) var restoring = false
    private var everConnected = false
    private var lastPing: Int64 = .min
    public private(set) var closed = false

    struct Pending {
        let payload: [UInt8]
        let reqId: [UInt8]
        let deadline: Int64
        let timeoutMs: Int64
        /// Sent even while other requests wait for a restore (it is part of the restore).
        let restores: Bool
        /// The server it was last sent to (nil: not sent yet).
        var sentTo: String?
        var resendAt: Int64?
    }

    private var pending: [RPCRequestKey: Pending] = [:]
    private var counter = 0
    private let idPrefix: [UInt8]

    public init(clientId: ClientUUID, timeouts: Timeouts, aliveTimeoutSeconds: Double? = nil) {
        self.clientId = clientId
        self.timeouts = timeouts
        self.aliveTimeoutSeconds = aliveTimeoutSeconds ?? Double(timeouts.aliveMs) / 1000
        idPrefix = Array("\(clientId)-".utf8)
    }

    public var isConnected: Bool { serverId != nil && !closed }
    public var pendingCount: Int { pending.count }

    // MARK: - The owner's requests

    /// Sends `[method, params]` (JSON text); its answer comes as `complete` with the key returned.
    /// `restores`: a request that restores state on a new server, sent even while others wait.
    @discardableResult
    public func request(payload: [UInt8], timeoutMs: Int64? = nil, restores: Bool = false, now: Int64,
                        into out: inout [RPCClientOutput]) -> RPCRequestKey {
        counter += 1
        let key = counter
        guard !closed else {
            out.append(.complete(key, .failure(.closed)))
            return key
        }
        var reqId = idPrefix
        reqId.appendDecimal(key)
        let timeoutMs = timeoutMs ?? timeouts.requestMs
        var entry = Pending(payload: payload, reqId: reqId, deadline: now + timeoutMs, timeoutMs: timeoutMs,
                            restores: restores)
        // Until hello is answered requests wait here; they go out with the answer.
        if let serverId, !restoring || restores {
            out.append(.send([RPCOp.request.frame, reqId, payload]))
            entry.sentTo = serverId
        }
        pending[key] = entry
        return key
    }

    /// Forgets a request without completing it (its answer, if one comes, is ignored).
    public func cancel(_ key: RPCRequestKey) {
        pending.removeValue(forKey: key)
    }

    /// Answers a request the server made.
    public func respond(_ reqId: [UInt8], _ result: Result<[UInt8], RemoteError>, into out: inout [RPCClientOutput]) {
        guard !closed else { return }
        switch result {
        case .success(let payload): out.append(.send([RPCOp.response.frame, reqId, payload]))
        case .failure(let error): out.append(.send([RPCOp.responseError.frame, reqId, error.payload]))
        }
    }

    /// Sends every pending request the current server has not been sent yet, and ends a restore.
    public func resendPending(into out: inout [RPCClientOutput]) {
        restoring = false
        guard !closed, let serverId else { return }
        for key in pending.keys.sorted() {
            guard let entry = pending[key], entry.sentTo != serverId else { continue }
            send(key, entry, to: serverId, into: &out)
        }
    }

    /// Sends close and fails what is pending; idempotent.
    public func close(into out: inout [RPCClientOutput]) {
        guard !closed else { return }
        closed = true
        out.append(.send([RPCOp.close.frame, [], [], []]))
        let open = pending
        pending.removeAll()
        for key in open.keys.sorted() { out.append(.complete(key, .failure(.closed))) }
    }

    private func send(_ key: RPCRequestKey, _ entry: Pending, to serverId: String, into out: inout [RPCClientOutput]) {
        pending[key]?.resendAt = nil
        pending[key]?.sentTo = serverId
        out.append(.send([RPCOp.request.frame, entry.reqId, entry.payload]))
    }

    // MARK: - The connection

    /// The socket connected (first time or again): say hello.
    public func socketConnected(into out: inout [RPCClientOutput]) {
        guard !closed else { return }
        sendHello(into: &out)
    }

    /// The socket lost its connection: hold requests until a server greets us again; a new one
    /// must first learn our state.
    public func socketDisconnected() {
        serverId = nil
    }

    private func sendHello(into out: inout [RPCClientOutput]) {
        let payload = JSONValue.object(["aliveTimeout": .number(aliveTimeoutSeconds)]).serialized()
        out.append(.send([RPCOp.hello.frame, Array(clientId.utf8), payload, []]))
    }

    /// A message from the server.
    public func receive(_ message: ServerMessage, now: Int64, into out: inout [RPCClientOutput]) {
        guard !closed else { return }
        switch message {
        case .hello(let id, let newClient):
            guard id != serverId else { return } // one answer per hello sent; later ones repeat it
            // Whether the server dropped this client meanwhile: a hulynet server says so in its
            // answer; of another, only an askHello while greeted tells.
            let dropped = newClient ?? forgotten
            let greeting: Greeting = !everConnected ? .first
                : id != knownServerId ? .newServer
                : dropped ? .forgotten : .same
            serverId = id
            knownServerId = id
            forgotten = false
            everConnected = true
            out.append(.connected(serverId: id, greeting))
            if greeting.mustRestore {
                restoring = true
            } else if restoring {
                // Back on the same server in the middle of a restore: the restore goes on, and
                // only its own requests go now.
                for key in pending.keys.sorted() {
                    guard let entry = pending[key], entry.restores, entry.sentTo != id else { continue }
                    send(key, entry, to: id, into: &out)
                }
            } else {
                resendPending(into: &out)
            }
        case .response(let reqId, let payload):
            guard let key = ownKey(reqId) else { return }
            pending.removeValue(forKey: key)
            out.append(.complete(key, .success(payload)))
        case .responseError(let reqId, let payload):
            guard let key = ownKey(reqId) else { return }
            pending.removeValue(forKey: key)
            out.append(.complete(key, .failure(.remote(RemoteError(payload: payload)))))
        case .retry(let reqId, let inFlight):
            guard let key = ownKey(reqId) else { return }
            // Back off in proportion to how busy the server says it is.
            let delay = min(max(inFlight, 1), 100) * 2
            pending[key]?.resendAt = now + Int64(delay)
            out.append(.wake(afterMs: delay))
        case .event(let payload):
            out.append(.event(payload))
        case .request(let reqId, let payload):
            // Split, not parsed: the owner validates the params as it reads them (one pass over a
            // forwarded request's data, which stays the bytes written).
            guard let (method, paramsRange) = try? JSONScanner.methodAndParams(payload) else {
                respond(reqId, .failure(RemoteError("request payload must be [method, params]", code: .invalid)), into: &out)
                return
            }
            out.append(.request(IncomingCall(method: method, payload: payload, paramsRange: paramsRange), reqId: reqId))
        case .askHello:
            // The server forgot us (we were silent too long): say hello and restore again. Not
            // greeted yet, a hello is on its way already: this answers a ping that overtook it
            // on a new connection, and says nothing of whether the server still knows us.
            guard serverId != nil else { return }
            serverId = nil
            forgotten = true
            sendHello(into: &out)
        case .pong:
            break // nothing waits on a pong
        }
    }

    /// The key of one of our pending requests named by `reqId` ("<clientId>-<key>").
    private func ownKey(_ reqId: [UInt8]) -> RPCRequestKey? {
        guard reqId.count > idPrefix.count, reqId.starts(with: idPrefix) else { return nil }
        var value = 0
        for byte in reqId[idPrefix.count...] {
            guard byte >= 0x30, byte <= 0x39, value < Int.max / 10 - 10 else { return nil }
            value = value * 10 + Int(byte - 0x30)
        }
        return pending[value] != nil ? value : nil
    }

    // MARK: - Time

    /// Pings every ping interval, resends what a retry answer made wait, and fails requests past
    /// their deadline.
    public func tick(now: Int64, into out: inout [RPCClientOutput]) {
        guard !closed else { return }
        if lastPing == .min || now - lastPing >= timeouts.pingIntervalMs {
            lastPing = now
            out.append(.send([RPCOp.ping.frame, [], [], []]))
        }
        guard !pending.isEmpty else { return }
        var expired: [RPCRequestKey] = []
        for (key, entry) in pending {
            if entry.deadline <= now {
                expired.append(key)
            } else if let serverId, !restoring || entry.restores, let at = entry.resendAt, at <= now {
                send(key, entry, to: serverId, into: &out)
            }
        }
        for key in expired.sorted() {
            guard let entry = pending.removeValue(forKey: key) else { continue }
            out.append(.complete(key, .failure(.timeout("no answer within \(entry.timeoutMs) ms"))))
        }
    }
}
