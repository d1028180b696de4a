// The frames of the huly.net back-RPC protocol (see PROTOCOL.md at the top of the repository).

/// The op frame: the first frame after the routing identity, sent as decimal text.
public enum RPCOp: UInt8, Sendable {
    case hello = 0
    case request = 1
    case response = 2
    case responseError = 3
    case event = 4
    case ping = 5
    case pong = 6
    case retry = 7
    case close = 8
    case askHello = 9

    /// The op frame's text ("0" ... "9"), shared: sending it allocates nothing.
    public var frame: [UInt8] { Self.frames[Int(rawValue)] }

    private static let frames: [[UInt8]] = (0...9).map { [0x30 + UInt8($0)] }

    /// Parses an op frame; nil when it is not one of the ten ops.
    @inlinable
    public init?(frame: [UInt8]) {
        guard frame.count == 1, frame[0] >= 0x30, frame[0] <= 0x39 else { return nil }
        self.init(rawValue: frame[0] - 0x30)
    }
}

/// Method names of the network, of agents (called back by the coordinator) and of agent endpoints.
public enum Method {
    public static let registerAgent = "ar"
    public static let unregisterAgent = "au"
    public static let listAgents = "al"
    public static let kinds = "ak"
    public static let listContainers = "cl"
    public static let getContainer = "gg"
    public static let releaseContainer = "cr"
    public static let sendContainer = "cs"
    public static let terminate = "ct"
    public static let connect = "cc"
    public static let disconnect = "cd"
    /// hulynet's own, on secured networks: an agent asks whether a client (by id and the key it
    /// connected to the agent's endpoint with) may use a container of the agent.
    public static let checkAccess = "ca"
    /// The reference client declares it but no server handles it.
    public static let containerUpdate = "cu"
}

/// The default limit of requests in flight per client (past it the server answers retry).
public let defaultInFlightLimit = 25

/// The largest message hulynet accepts; larger ones are refused with an error, never buffered.
public let defaultMaxMessageBytes = 16 << 20

/// How long a new connection may take to complete the ZeroMQ handshake before it is closed:
/// long enough for any real peer, short enough that silent connections do not hold sockets.
public let defaultHandshakeTimeoutMs = 3000

/// The most peers (TCP connections) an endpoint accepts at once; lowered at run time to what the
/// process's file descriptor limit allows.
public let defaultMaxClients = 10_000

/// The answer to `ar` or `au` naming an agent that another live client registered.
public func agentOwnedByAnotherClient(_ uuid: AgentUUID) -> RemoteError {
    RemoteError("Agent \(uuid) is registered by another client", code: .forbidden)
}

extension Array where Element == UInt8 {
    /// Appends `value` in decimal, without a String in between (request ids on the hot path).
    @inlinable
    public mutating func appendDecimal(_ value: Int) {
        guard value >= 0 else {
            append(contentsOf: String(value).utf8)
            return
        }
        appendDecimal(UInt64(value))
    }

    @inlinable
    public mutating func appendDecimal(_ value: UInt64) {
        var digits = 1
        var left = value / 10
        while left > 0 {
            digits += 1
            left /= 10
        }
        append(contentsOf: repeatElement(0x30, count: digits))
        var rest = value
        var index = count - 1
        while rest > 0 {
            self[index] = 0x30 &+ UInt8(truncatingIfNeeded: rest % 10)
            rest /= 10
            index -= 1
        }
    }

    /// Frame text as UTF-8 bytes.
    @inlinable
    public init(frameText text: String) { self = Array(text.utf8) }

    @inlinable
    public var frameText: String { String(decoding: self, as: UTF8.self) }
}
