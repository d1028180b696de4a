import Synchronization

/// Until when a coordinator may serve, on the monotonic clock in milliseconds: set by the
/// leader election as it renews its etcd lease, read by the server before it handles each
/// message and on each tick. Past it the server closes its socket at once, whatever woke it
/// (a process paused past its lease wakes with the deadline long gone).
public final class ServingLease: Sendable {
    private let deadline: Atomic<Int64>

    public init(untilMs: Int64 = .min) {
        deadline = Atomic(untilMs)
    }

    public var untilMs: Int64 {
        get { deadline.load(ordering: .acquiring) }
    }

    public func extend(untilMs: Int64) {
        deadline.store(untilMs, ordering: .releasing)
    }

    /// Ends it now (the election stepped down).
    public func revoke() {
        deadline.store(.min, ordering: .releasing)
    }

    public func holds(now: Int64) -> Bool { now < deadline.load(ordering: .acquiring) }
}
