import HulyNetCore

#if canImport(Glibc)
import Glibc
#endif

/// What an endpoint that accepts peers (the coordinator, an agent's endpoint, a container's
/// direct endpoint) allows each of them, so that no peer can make it buffer, hold or log without
/// bound.
public struct PeerLimits: Sendable, Equatable {
    /// The largest frame a peer may send; libzmq closes the connection of a peer that announces
    /// a larger one before buffering it (ZMQ_MAXMSGSIZE). A message's frames together may not
    /// exceed it either (answered with an error).
    public var maxMessageBytes: Int
    /// A connection that has not completed the ZeroMQ handshake within this is closed
    /// (ZMQ_HANDSHAKE_IVL).
    public var handshakeTimeoutMs: Int
    /// The most connections open at once (and clients greeted at once); past it the connection
    /// waiting longest without saying hello is closed. Lowered at run time to what the file
    /// descriptor limit leaves room for (see `effectiveMaxClients`).
    public var maxClients: Int

    public init(maxMessageBytes: Int = defaultMaxMessageBytes, handshakeTimeoutMs: Int = defaultHandshakeTimeoutMs,
                maxClients: Int = defaultMaxClients) {
        self.maxMessageBytes = maxMessageBytes
        self.handshakeTimeoutMs = handshakeTimeoutMs
        self.maxClients = maxClients
    }

    public static let maxMessageBytesRange = 64...(1 << 30)
    public static let handshakeTimeoutRange = 1...3_600_000
    public static let maxClientsRange = 1...1_000_000

    public func validate() throws(NetworkError) {
        try checkRange(maxMessageBytes, Self.maxMessageBytesRange, "max message bytes")
        try checkRange(handshakeTimeoutMs, Self.handshakeTimeoutRange, "handshake timeout (ms)")
        try checkRange(maxClients, Self.maxClientsRange, "max clients")
    }

    /// `maxClients`, lowered so that the connections leave file descriptors for everything else
    /// the process opens: past the limit libzmq could accept nobody, the lock-out this prevents.
    public var effectiveMaxClients: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return maxClients }
        let descriptors = Int(clamping: limit.rlim_cur)
        let reserve = max(32, descriptors / 8)
        return max(1, min(maxClients, descriptors - reserve))
    }
}

/// A host to bind or connect to: a name, an IPv4 or IPv6 address, or "*" (every address).
/// Empty, over-long or odd text (spaces, slashes, control characters) is refused here rather
/// than handed to libzmq, whose errors do not say what was wrong.
public func checkHost(_ host: String, _ name: String = "host") throws(NetworkError) {
    guard !host.isEmpty else { throw NetworkError.invalid("\(name) is empty") }
    guard host.utf8.count <= 253 else { throw NetworkError.invalid("\(name) is longer than 253 bytes") }
    if host == "*" { return }
    let allowed = host.utf8.allSatisfy { byte in
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"),
             UInt8(ascii: ":"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "%"):
            return true
        default:
            return false
        }
    }
    guard allowed else {
        throw NetworkError.invalid("\(name) '\(LogSummary.escaped(host.utf8, limit: 64))' is not a host name or address")
    }
}

/// A TCP port; 0 (pick a free one) only where binding.
public func checkPort(_ port: Int, allowZero: Bool, _ name: String = "port") throws(NetworkError) {
    try checkRange(port, (allowZero ? 0 : 1)...65535, name)
}

func checkRange(_ value: Int, _ range: ClosedRange<Int>, _ name: String) throws(NetworkError) {
    guard range.contains(value) else {
        throw NetworkError.invalid("\(name) \(value) is out of range (\(range.lowerBound) to \(range.upperBound))")
    }
}

extension Timeouts {
    /// `validate` with the network's error type.
    func check() throws(NetworkError) {
        do { try validate() } catch { throw NetworkError.invalid(error.message) }
    }
}
