// The frames of the back-RPC protocol decoded into messages and encoded back (docs/PROTOCOL.md).
// Extra trailing frames are tolerated and ignored, as the reference does.

/// What a client (DEALER) sent; the frames after the ROUTER's routing identity.
public enum ClientMessage: Sendable, Equatable {
    case hello(clientId: ClientUUID, aliveTimeoutMs: Int64?)
    case request(reqId: [UInt8], payload: [UInt8])
    case response(reqId: [UInt8], payload: [UInt8])
    case responseError(reqId: [UInt8], payload: [UInt8])
    case event(payload: [UInt8])
    case ping
    case close
}

/// What a server (ROUTER) sent, as the DEALER sees it.
public enum ServerMessage: Sendable, Equatable {
    /// `newClient`: a hulynet server says whether it met the client id first with this hello (so a
    /// client that reconnects learns whether the server dropped it meanwhile); nil from a server
    /// that does not say (the reference's hello answer has an empty third frame).
    case hello(serverId: String, newClient: Bool? = nil)
    case request(reqId: [UInt8], payload: [UInt8])
    case response(reqId: [UInt8], payload: [UInt8])
    case responseError(reqId: [UInt8], payload: [UInt8])
    case event(payload: [UInt8])
    case pong(serverId: String)
    case retry(reqId: [UInt8], inFlight: Int)
    case askHello(serverId: String)
}

/// Frames that are not a message of the protocol.
public struct MalformedMessage: Error, Sendable, Equatable {
    public enum Reason: String, Sendable, CaseIterable {
        case noFrames, badOp, wrongSideOp, missingFrames, emptyClientId, badClientId, emptyRequestId

        /// What a log summary counts it as.
        public var summary: String {
            switch self {
            case .noFrames: "message without frames"
            case .badOp: "unknown or missing op"
            case .wrongSideOp: "an op of the other side"
            case .missingFrames: "message missing frames"
            case .emptyClientId: "hello without a client id"
            case .badClientId: "hello with a client id that is not printable ASCII of at most 128 bytes"
            case .emptyRequestId: "message without a request id"
            }
        }
    }

    public var reason: Reason
    /// Short, and safe to log: never more than a few dozen bytes of the peer's input, escaped.
    public var detail: String
    /// The request id of a request that could not be read whole, to answer it with an error.
    public var reqId: [UInt8]?

    public init(_ reason: Reason, _ detail: String, reqId: [UInt8]? = nil) {
        self.reason = reason
        self.detail = detail
        self.reqId = reqId
    }
}

/// The longest client alive timeout a hello may ask for: a day.
private let maxAliveTimeoutMs: Int64 = 86_400_000

extension ClientMessage {
    public static func decode(_ frames: ArraySlice<[UInt8]>) -> Result<ClientMessage, MalformedMessage> {
        guard let first = frames.first else { return .failure(MalformedMessage(.noFrames, "no frames")) }
        guard let op = RPCOp(frame: first) else {
            return .failure(MalformedMessage(.badOp, "op \(printable(first))"))
        }
        let rest = frames.dropFirst()
        switch op {
        case .hello:
            guard let id = rest.first, !id.isEmpty else { return .failure(MalformedMessage(.emptyClientId, "hello without a client id")) }
            // Client ids are uuids: printable, short. Anything else is refused here, so that no
            // peer's bytes reach a log line, a map key or an event.
            guard id.count <= 128, id.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                return .failure(MalformedMessage(.badClientId, "hello with client id \(printable(id))"))
            }
            var aliveMs: Int64?
            if let payload = rest.dropFirst().first, let value = try? JSONValue.parse(payload),
               let seconds = value.member("aliveTimeout")?.doubleValue, seconds.isFinite, seconds > 0 {
                aliveMs = min(Int64(min(seconds, 86_400) * 1000), maxAliveTimeoutMs)
            }
            return .success(.hello(clientId: id.frameText, aliveTimeoutMs: aliveMs))
        case .request, .response, .responseError:
            guard let reqId = rest.first else {
                return .failure(MalformedMessage(.missingFrames, "\(op) without a request id"))
            }
            guard rest.count >= 2 else {
                return .failure(MalformedMessage(.missingFrames, "\(op) without a payload", reqId: op == .request ? reqId : nil))
            }
            let payload = rest[rest.startIndex + 1]
            switch op {
            case .request: return .success(.request(reqId: reqId, payload: payload))
            case .response: return .success(.response(reqId: reqId, payload: payload))
            default: return .success(.responseError(reqId: reqId, payload: payload))
            }
        case .event:
            return .success(.event(payload: rest.count >= 2 ? rest[rest.startIndex + 1] : []))
        case .ping:
            return .success(.ping)
        case .close:
            return .success(.close)
        case .pong, .retry, .askHello:
            return .failure(MalformedMessage(.wrongSideOp, "server op \(op) from a client"))
        }
    }

    /// The frames a DEALER sends.
    public var frames: [[UInt8]] {
        switch self {
        case .hello(let clientId, let aliveMs):
            let seconds = Double(aliveMs ?? 3000) / 1000
            return [RPCOp.hello.frame, Array(clientId.utf8), JSONValue.object(["aliveTimeout": .number(seconds)]).serialized(), []]
        case .request(let reqId, let payload): return [RPCOp.request.frame, reqId, payload]
        case .response(let reqId, let payload): return [RPCOp.response.frame, reqId, payload]
        case .responseError(let reqId, let payload): return [RPCOp.responseError.frame, reqId, payload]
        case .event(let payload): return [RPCOp.event.frame, [], payload, []]
        case .ping: return [RPCOp.ping.frame, [], [], []]
        case .close: return [RPCOp.close.frame, [], [], []]
        }
    }
}

extension ServerMessage {
    public static func decode(_ frames: ArraySlice<[UInt8]>) -> Result<ServerMessage, MalformedMessage> {
        guard let first = frames.first else { return .failure(MalformedMessage(.noFrames, "no frames")) }
        guard let op = RPCOp(frame: first) else {
            return .failure(MalformedMessage(.badOp, "op \(printable(first))"))
        }
        let rest = frames.dropFirst()
        let second = rest.first ?? []
        let third = rest.count >= 2 ? rest[rest.startIndex + 1] : []
        switch op {
        case .hello:
            let newClient = (try? JSONValue.parse(third))?.member("new")?.boolValue
            return .success(.hello(serverId: second.frameText, newClient: newClient))
        case .pong: return .success(.pong(serverId: second.frameText))
        case .askHello: return .success(.askHello(serverId: second.frameText))
        case .request, .response, .responseError:
            guard !second.isEmpty else { return .failure(MalformedMessage(.emptyRequestId, "\(op) without a request id")) }
            switch op {
            case .request: return .success(.request(reqId: second, payload: third))
            case .response: return .success(.response(reqId: second, payload: third))
            default: return .success(.responseError(reqId: second, payload: third))
            }
        case .retry:
            guard !second.isEmpty else { return .failure(MalformedMessage(.emptyRequestId, "retry without a request id")) }
            return .success(.retry(reqId: second, inFlight: (try? JSONValue.parse(third))?.intValue ?? 1))
        case .event:
            return .success(.event(payload: third))
        case .ping, .close:
            return .failure(MalformedMessage(.wrongSideOp, "client op \(op) from a server"))
        }
    }

    /// The frames a ROUTER sends (after the routing identity).
    public var frames: [[UInt8]] {
        switch self {
        case .hello(let id, let newClient):
            return [RPCOp.hello.frame, Array(id.utf8), newClient.map { helloPayload(newClient: $0) } ?? []]
        case .pong(let id): return [RPCOp.pong.frame, Array(id.utf8), []]
        case .askHello(let id): return [RPCOp.askHello.frame, Array(id.utf8), []]
        case .request(let reqId, let payload): return [RPCOp.request.frame, reqId, payload]
        case .response(let reqId, let payload): return [RPCOp.response.frame, reqId, payload]
        case .responseError(let reqId, let payload): return [RPCOp.responseError.frame, reqId, payload]
        case .retry(let reqId, let inFlight): return [RPCOp.retry.frame, reqId, Array(String(inFlight).utf8)]
        case .event(let payload): return [RPCOp.event.frame, [], payload]
        }
    }
}

/// The third frame of a hulynet server's hello answer.
public func helloPayload(newClient: Bool) -> [UInt8] { Array((newClient ? #"{"new":true}"# : #"{"new":false}"#).utf8) }

/// At most 32 bytes of peer input, escaped, for a log line.
func printable(_ bytes: [UInt8]) -> String {
    var text = ""
    for byte in bytes.prefix(32) {
        if byte >= 0x20, byte < 0x7F, byte != 0x5C { text.unicodeScalars.append(UnicodeScalar(byte)) } else {
            text += "\\x" + String(byte, radix: 16).leftPad(2)
        }
    }
    return bytes.count > 32 ? "\"\(text)\"... (\(bytes.count) bytes)" : "\"\(text)\""
}

private extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
