// Decoding and encoding of the back-RPC frame sets (docs/PROTOCOL.md, "Frames"), free of I/O so
// the shells over ZeroMQ share one definition of what is well formed and the decoders can be
// fuzzed (fuzz/). Decoding never traps and never echoes much of the peer's input.
//
// Tolerance follows the reference: trailing frames beyond an op's shape are ignored, and the
// frames the DEALER side reads are defaulted to empty when missing.

/// What a client (DEALER) sent; the frames after the ROUTER's routing identity.
public enum ClientMessage: Sendable, Equatable {
    /// `aliveTimeoutMs`: the payload's `{"aliveTimeout": seconds}` in milliseconds, clamped to
    /// `ClientMessage.aliveTimeoutRangeMs`; nil when absent or not a positive number.
    case hello(clientId: ClientUUID, aliveTimeoutMs: Int64?)
    case request(reqId: [UInt8], payload: [UInt8])
    case response(reqId: [UInt8], payload: [UInt8])
    case responseError(reqId: [UInt8], payload: [UInt8])
    case event(payload: [UInt8])
    case ping
    case close

    /// The alive timeouts a client may ask for: at least 1 ms (a positive request never means
    /// "drop at once"), at most a day.
    public static let aliveTimeoutRangeMs: ClosedRange<Int64> = 1...Timeouts.maxMs

    public static func decode(_ frames: ArraySlice<[UInt8]>) -> Result<ClientMessage, MalformedMessage> {
        guard let opFrame = frames.first else {
            return .failure(MalformedMessage(.noFrames, "no frames after the routing identity"))
        }
        guard let op = RPCOp(frame: opFrame) else { return .failure(.badOp(opFrame)) }
        // Frames after the op, by position (the slice's indices need not start at 0).
        let fields = frames.dropFirst()
        func field(_ i: Int) -> [UInt8]? {
            i < fields.count ? fields[fields.startIndex + i] : nil
        }
        switch op {
        case .hello:
            guard let id = field(0) else {
                return .failure(MalformedMessage(.missingFrames, "hello without a client id"))
            }
            guard !id.isEmpty else { return .failure(MalformedMessage(.emptyClientId, "hello with an empty client id")) }
            // Client ids are uuids: printable, short. Anything else is refused here, so that no
            // peer's bytes reach a log line, a map key or an event.
            guard id.count <= 128, id.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                return .failure(MalformedMessage(.badClientId, "hello with client id \(MalformedMessage.quoted(id))"))
            }
            return .success(.hello(clientId: id.frameText, aliveTimeoutMs: aliveTimeoutMs(fromHelloPayload: field(1) ?? [])))
        case .request, .response, .responseError:
            guard let reqId = field(0) else {
                return .failure(MalformedMessage(.missingFrames, "\(op.name) without a request id"))
            }
            guard !reqId.isEmpty else {
                return .failure(MalformedMessage(.emptyRequestId, "\(op.name) with an empty request id", reqId: reqId))
            }
            guard let payload = field(1) else {
                return .failure(MalformedMessage(.missingFrames, "\(op.name) without a payload", reqId: reqId))
            }
            switch op {
            case .request: return .success(.request(reqId: reqId, payload: payload))
            case .response: return .success(.response(reqId: reqId, payload: payload))
            default: return .success(.responseError(reqId: reqId, payload: payload))
            }
        case .event:
            // The server ignores events, so a short one is no error.
            return .success(.event(payload: field(1) ?? []))
        case .ping:
            return .success(.ping)
        case .close:
            return .success(.close)
        case .pong, .retry, .askHello:
            return .failure(MalformedMessage(.wrongSideOp, "server-side op \(op.name) sent by a client"))
        }
    }

    public var op: RPCOp {
        switch self {
        case .hello: .hello
        case .request: .request
        case .response: .response
        case .responseError: .responseError
        case .event: .event
        case .ping: .ping
        case .close: .close
        }
    }

    /// The frames to send (the DEALER sends them as they are; the ROUTER sees its identity first).
    public var frames: [[UInt8]] {
        switch self {
        case .hello(let clientId, let aliveTimeoutMs):
            var payload: [String: JSONValue] = [:]
            if let aliveTimeoutMs { payload["aliveTimeout"] = .number(Double(aliveTimeoutMs) / 1000) }
            return [RPCOp.hello.frame, Array(clientId.utf8), JSONValue.object(payload).serialized(), []]
        case .request(let reqId, let payload), .response(let reqId, let payload), .responseError(let reqId, let payload):
            return [op.frame, reqId, payload]
        case .event(let payload):
            return [RPCOp.event.frame, [], payload, []]
        case .ping:
            return [RPCOp.ping.frame, [], [], []]
        case .close:
            return [RPCOp.close.frame, [], [], []]
        }
    }

    /// `{"aliveTimeout": seconds}` in milliseconds (rounded, clamped), nil unless a positive number.
    static func aliveTimeoutMs(fromHelloPayload payload: [UInt8]) -> Int64? {
        guard let value = try? JSONValue.parse(payload), let seconds = value.member("aliveTimeout")?.doubleValue,
              seconds > 0 else { return nil }  // JSON numbers are finite
        let range = aliveTimeoutRangeMs
        let limit = Double(range.upperBound) / 1000
        // +0.5 and truncation round to the nearest ms (no libm), so ms -> s -> ms is exact.
        let ms = Int64(min(seconds, limit) * 1000 + 0.5)
        return min(max(ms, range.lowerBound), range.upperBound)
    }
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
    /// `inFlight`: the payload's JSON number when it is an integer, else 1.
    case retry(reqId: [UInt8], inFlight: Int)
    case askHello(serverId: String)

    public static func decode(_ frames: ArraySlice<[UInt8]>) -> Result<ServerMessage, MalformedMessage> {
        guard let opFrame = frames.first else { return .failure(MalformedMessage(.noFrames, "no frames")) }
        guard let op = RPCOp(frame: opFrame) else { return .failure(.badOp(opFrame)) }
        // Missing frames read as empty, as the client always has.
        let fields = frames.dropFirst()
        func field(_ i: Int) -> [UInt8] {
            i < fields.count ? fields[fields.startIndex + i] : []
        }
        let first = field(0)
        let second = field(1)
        switch op {
        case .hello:
            let newClient = (try? JSONValue.parse(second))?.member("new")?.boolValue
            return .success(.hello(serverId: first.frameText, newClient: newClient))
        case .pong:
            return .success(.pong(serverId: first.frameText))
        case .askHello:
            return .success(.askHello(serverId: first.frameText))
        case .event:
            return .success(.event(payload: second))
        case .request, .response, .responseError, .retry:
            // An empty id matches nothing this client sent, and cannot be answered usefully.
            guard !first.isEmpty else {
                return .failure(MalformedMessage(.emptyRequestId, "\(op.name) with an empty request id", reqId: first))
            }
            switch op {
            case .request: return .success(.request(reqId: first, payload: second))
            case .response: return .success(.response(reqId: first, payload: second))
            case .responseError: return .success(.responseError(reqId: first, payload: second))
            default: return .success(.retry(reqId: first, inFlight: (try? JSONValue.parse(second))?.intValue ?? 1))
            }
        case .ping, .close:
            return .failure(MalformedMessage(.wrongSideOp, "client-side op \(op.name) sent by a server"))
        }
    }

    public var op: RPCOp {
        switch self {
        case .hello: .hello
        case .request: .request
        case .response: .response
        case .responseError: .responseError
        case .event: .event
        case .pong: .pong
        case .retry: .retry
        case .askHello: .askHello
        }
    }

    /// The frames after the routing identity (the ROUTER puts the identity first).
    public var frames: [[UInt8]] {
        switch self {
        case .hello(let serverId, let newClient):
            return [RPCOp.hello.frame, Array(serverId.utf8), newClient.map { helloPayload(newClient: $0) } ?? []]
        case .request(let reqId, let payload), .response(let reqId, let payload), .responseError(let reqId, let payload):
            return [op.frame, reqId, payload]
        case .event(let payload):
            return [RPCOp.event.frame, [], payload]
        case .pong(let serverId):
            return [RPCOp.pong.frame, Array(serverId.utf8), []]
        case .retry(let reqId, let inFlight):
            return [RPCOp.retry.frame, reqId, Array(String(inFlight).utf8)]
        case .askHello(let serverId):
            return [RPCOp.askHello.frame, Array(serverId.utf8), []]
        }
    }
}

/// A frame set that is not a well-formed message.
public struct MalformedMessage: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: String, Sendable, CaseIterable {
        /// Nothing but (at most) the routing identity.
        case noFrames
        /// The op frame is not one of "0" ... "9".
        case badOp
        /// An op only the other side sends.
        case wrongSideOp
        /// Fewer frames than the op needs.
        case missingFrames
        case emptyClientId
        /// Not printable ASCII of at most 128 bytes.
        case badClientId
        case emptyRequestId

        /// What a log summary counts it as (hulynet's words, never the peer's bytes).
        public var summary: String {
            switch self {
            case .noFrames: "message without frames"
            case .badOp: "unknown or missing op"
            case .wrongSideOp: "an op of the other side"
            case .missingFrames: "message missing frames"
            case .emptyClientId: "hello without a client id"
            case .badClientId: "hello with a client id that is not printable ASCII of at most 128 bytes"
            case .emptyRequestId: "message with an empty request id"
            }
        }
    }

    /// Counted per reason by the server (metrics, log summaries).
    public var reason: Reason
    /// Short and safe to log: at most `MalformedMessage.maxEchoedBytes` of peer input, escaped.
    public var detail: String
    /// The request id when the message had one, so a request can still be answered with an error.
    public var reqId: [UInt8]?

    public init(_ reason: Reason, _ detail: String, reqId: [UInt8]? = nil) {
        self.reason = reason
        self.detail = detail
        self.reqId = reqId
    }

    public var description: String { "\(reason.rawValue): \(detail)" }

    /// How much of a peer's frame a detail may quote.
    public static let maxEchoedBytes = 32

    static func badOp(_ frame: [UInt8]) -> MalformedMessage {
        MalformedMessage(.badOp, "op frame \(quoted(frame)) is not 0-9")
    }

    /// `bytes` as a quoted, printable-ASCII excerpt: `"ab\x00c"`, or `"abc"... (1234 bytes)` when longer
    /// than `maxEchoedBytes`.
    public static func quoted(_ bytes: [UInt8]) -> String {
        var text = "\""
        for byte in bytes.prefix(maxEchoedBytes) {
            switch byte {
            case 0x22: text += "\\\""
            case 0x5C: text += "\\\\"
            case 0x20..<0x7F: text.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16)
                text += byte < 0x10 ? "\\x0\(hex)" : "\\x\(hex)"
            }
        }
        text += "\""
        if bytes.count > maxEchoedBytes { text += "... (\(bytes.count) bytes)" }
        return text
    }
}

/// The third frame of a hulynet server's hello answer: whether the client id is new to it.
public func helloPayload(newClient: Bool) -> [UInt8] { Array((newClient ? #"{"new":true}"# : #"{"new":false}"#).utf8) }

extension RPCOp {
    /// The op's name as PROTOCOL.md writes it, for messages.
    public var name: String {
        switch self {
        case .hello: "hello"
        case .request: "request"
        case .response: "response"
        case .responseError: "responseError"
        case .event: "event"
        case .ping: "ping"
        case .pong: "pong"
        case .retry: "retry"
        case .close: "close"
        case .askHello: "askHello"
        }
    }
}
