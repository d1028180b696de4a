/// Which of several coordinator addresses a client talks to, when coordinators stand in for
/// each other (one leads, the others stand by and bind nothing).
///
/// It stays on an address while the coordinator there answers, and moves on to the next one,
/// round the list, when that address refuses connections (a standby, a dead host's port), when no
/// greeting comes within `greetTimeoutMs` (a host that drops packets), or when a greeted
/// coordinator falls silent for `silenceTimeoutMs` (paused, cut off, or fenced without closing).
/// Moving is then the same as a coordinator restart for the client: it greets the next one and
/// restores its state there. With one address it never moves: the connection retries it forever,
/// as the reference's client does.
///
/// Pure: the shell reports socket events with the time, asks `moveDue`, and when it is moves the
/// socket to `current`.
public struct LeaderFollower: Sendable, Equatable {
    public let count: Int
    /// The index of the address connected to now.
    public private(set) var current = 0
    public let greetTimeoutMs: Int64
    public let silenceTimeoutMs: Int64
    /// The least time on an address before a refusal moves on: with every address refusing (all
    /// standing by during an election), the client tries each about this often, not in a spin.
    public let minDwellMs: Int64

    private var since: Int64
    private var lastHeard: Int64
    private var greeted = false
    private var refusedSince: Int64?

    public init(count: Int, greetTimeoutMs: Int64 = 2000, silenceTimeoutMs: Int64 = 3000, minDwellMs: Int64 = 100,
                now: Int64) {
        self.count = max(count, 1)
        self.greetTimeoutMs = greetTimeoutMs
        self.silenceTimeoutMs = silenceTimeoutMs
        self.minDwellMs = minDwellMs
        since = now
        lastHeard = now
    }

    /// A connection attempt to the current address failed (refused, unreachable).
    public mutating func refused(now: Int64) {
        if refusedSince == nil { refusedSince = now }
    }

    /// The coordinator answered hello.
    public mutating func greeted(now: Int64) {
        greeted = true
        refusedSince = nil
        lastHeard = now
    }

    /// Any message came from the coordinator (pongs every ping interval while idle).
    public mutating func heard(now: Int64) {
        lastHeard = now
    }

    /// The connection to the current address was lost: the coordinator must greet again (the
    /// socket retries the same address; a refusal then moves on).
    public mutating func disconnected(now: Int64) {
        if greeted { since = now }
        greeted = false
    }

    /// Whether the client should move to the next address now, and why.
    public func moveDue(now: Int64) -> String? {
        guard count > 1 else { return nil }
        let dwell = now - since
        if let refusedSince, dwell >= minDwellMs, refusedSince >= since { return "connection refused" }
        if !greeted, dwell >= greetTimeoutMs { return "no greeting within \(greetTimeoutMs) ms" }
        if greeted, now - lastHeard >= silenceTimeoutMs { return "silent for \(now - lastHeard) ms" }
        return nil
    }

    /// When `moveDue` may next say yes if nothing else happens (nil: never).
    public func nextCheck(now: Int64) -> Int64? {
        guard count > 1 else { return nil }
        if refusedSince != nil { return max(now, since + minDwellMs) }
        return greeted ? lastHeard + silenceTimeoutMs : since + greetTimeoutMs
    }

    /// Moves to the next address; returns its index.
    @discardableResult
    public mutating func move(now: Int64) -> Int {
        current = (current + 1) % count
        since = now
        lastHeard = now
        greeted = false
        refusedSince = nil
        return current
    }
}
