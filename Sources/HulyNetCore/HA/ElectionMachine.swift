/// Leadership of one coordinator among several, settled through etcd, without I/O or clocks.
///
/// The leader is the coordinator whose lease holds the leadership key: a campaign is a
/// transaction that creates the key with the campaigner's lease only if the key does not exist,
/// so at most one lease holds it; the key goes when its lease expires (the leader died, paused or
/// lost etcd) or is revoked (the leader stopped). A leader renews its lease every third of the
/// TTL and checks after each renewal that the key is still its own.
///
/// Fencing: the lease is alive at etcd for the TTL after etcd took a renewal, which is after the
/// renewal was sent. So a leader may serve until it sent its last successful renewal plus the TTL
/// minus a margin (for clock rates and the time between checking and acting), and it stops
/// serving at that deadline if no renewal succeeded meanwhile, before any other coordinator can
/// win the key. A leader that was paused past its deadline finds the deadline passed when it
/// wakes, before it handles anything (the server checks it per message), and stands by.
///
/// The shell runs one `nextStep` at a time, each a blocking etcd call with a timeout shorter than
/// the TTL's third, reports its outcome, and applies the changes returned.
public struct ElectionMachine: Sendable {
    public struct Settings: Sendable, Equatable {
        /// The lease's time to live: how long a dead leader holds the key.
        public var ttlMs: Int64
        /// How often a standby looks whether the key is free.
        public var pollMs: Int64
        /// How long before the lease could expire at etcd the leader stops serving.
        public var marginMs: Int64
        /// How soon a failed renewal is tried again.
        public var retryMs: Int64

        public init(ttlMs: Int64 = 3000, pollMs: Int64? = nil, marginMs: Int64? = nil, retryMs: Int64? = nil) {
            self.ttlMs = ttlMs
            self.pollMs = pollMs ?? max(50, min(250, ttlMs / 8))
            self.marginMs = marginMs ?? max(100, ttlMs / 5)
            self.retryMs = retryMs ?? max(50, min(200, ttlMs / 10))
        }

        /// etcd's lease TTLs are whole seconds, at least 1 (the request's value, rounded up).
        public var ttlSeconds: Int { Int((ttlMs + 999) / 1000) }
        public var renewEveryMs: Int64 { max(50, ttlMs / 3) }
        /// The longest an etcd call may take: a renewal must be answered (or given up) in time
        /// for another before the deadline.
        public var callTimeoutMs: Int64 { max(50, min(1000, ttlMs / 4)) }

        /// Throws a description of the first setting out of range.
        public func check() throws(ElectionSettingsError) {
            guard ttlMs >= 1000, ttlMs <= 300_000, ttlMs % 1000 == 0 else {
                throw ElectionSettingsError("lease TTL \(ttlMs) ms is out of range (whole seconds, 1 to 300)")
            }
            guard marginMs > 0, marginMs < ttlMs - renewEveryMs else {
                throw ElectionSettingsError("fencing margin \(marginMs) ms must be above 0 and leave room for a renewal")
            }
            guard pollMs > 0, pollMs <= ttlMs, retryMs > 0, retryMs < ttlMs else {
                throw ElectionSettingsError("poll \(pollMs) ms and retry \(retryMs) ms must be above 0 and below the TTL")
            }
        }
    }

    /// An etcd call to make now, or how long to wait.
    public enum Step: Sendable, Equatable {
        case grantLease(ttlSeconds: Int)
        /// Create the key with this lease if it does not exist.
        case campaign(lease: Int64)
        case readKey
        case keepAlive(lease: Int64)
        /// Give the key up at once (a leader stopping), so that a standby need not wait the TTL.
        case revoke(lease: Int64)
        case wait(untilMs: Int64)
    }

    /// What the shell must do with the coordinator.
    public enum Change: Sendable, Equatable {
        /// Bind and serve until `untilMs` unless extended.
        case startServing(untilMs: Int64)
        case extend(untilMs: Int64)
        case stopServing(reason: String)
        /// Who leads (the key's value), as a standby sees it; nil: nobody.
        case leaderSeen(String?)
    }

    public enum Role: Sendable, Equatable {
        case standby
        case leader(servingUntilMs: Int64)
    }

    /// The key's holder as read from etcd.
    public struct Holder: Sendable, Equatable {
        public var value: String
        public var lease: Int64
        public init(value: String, lease: Int64) {
            self.value = value
            self.lease = lease
        }
    }

    public let settings: Settings
    public private(set) var role: Role = .standby
    private var lease: Int64?
    /// Until when the lease is surely alive at etcd, by this process's clock (minus the margin).
    private var leaseGoodUntil: Int64 = .min
    private var nextRenewAt: Int64 = .min
    /// After a renewal, the leader reads the key to check it is still its own.
    private var confirmDue = false
    private var nextPollAt: Int64 = .min
    /// A standby found the key free: campaign (granting a lease first if need be).
    private var keyFree = false
    private var lastLeaderSeen: String??
    public private(set) var stopping = false
    /// The lease must be given up (this coordinator won but could not serve).
    private var revokeDue = false

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    public var isLeader: Bool {
        if case .leader = role { return true }
        return false
    }

    // MARK: - What to do

    public func nextStep(now: Int64) -> Step {
        if stopping || revokeDue, let lease { return .revoke(lease: lease) }
        if stopping { return .wait(untilMs: .max) }
        switch role {
        case .leader(let until):
            if confirmDue { return .readKey }
            if now >= nextRenewAt, let lease { return .keepAlive(lease: lease) }
            return .wait(untilMs: min(nextRenewAt, until))
        case .standby:
            guard now >= nextPollAt else { return .wait(untilMs: nextPollAt) }
            guard keyFree else { return .readKey }
            if let lease, now < leaseGoodUntil - settings.renewEveryMs { return .campaign(lease: lease) }
            return .grantLease(ttlSeconds: settings.ttlSeconds)
        }
    }

    /// Fences a leader whose deadline has passed.
    public mutating func tick(now: Int64) -> [Change] {
        if case .leader(let until) = role, now >= until {
            return stepDown("could not renew the etcd lease within its TTL; stopped serving before it could expire")
        }
        return []
    }

    /// Stop: a leader gives the key up, then nothing more is asked.
    public mutating func stop() -> [Change] {
        stopping = true
        if isLeader {
            role = .standby
            return [.stopServing(reason: "stopping")]
        }
        return []
    }

    // MARK: - Outcomes (`sentAt`: when the call was sent)

    public mutating func leaseGranted(_ id: Int64, ttlSeconds: Int, sentAt: Int64) -> [Change] {
        lease = id
        leaseGoodUntil = sentAt + Int64(ttlSeconds) * 1000 - settings.marginMs
        return []
    }

    public mutating func campaigned(won: Bool, holder: Holder?, sentAt: Int64, now: Int64) -> [Change] {
        keyFree = false
        guard won, lease != nil else {
            nextPollAt = now + settings.pollMs
            return seen(holder?.value)
        }
        // Serving ends at the lease's deadline unless a renewal extends it; `tick` fences at once
        // if the campaign itself took that long.
        role = .leader(servingUntilMs: leaseGoodUntil)
        nextRenewAt = now + settings.renewEveryMs
        confirmDue = false
        lastLeaderSeen = nil
        return [.startServing(untilMs: leaseGoodUntil)]
    }

    public mutating func keyRead(_ holder: Holder?, now: Int64) -> [Change] {
        switch role {
        case .leader:
            confirmDue = false
            if holder?.lease != lease {
                return stepDown("the leadership key is no longer held by this coordinator's lease")
            }
            return []
        case .standby:
            keyFree = holder == nil
            if !keyFree { nextPollAt = now + settings.pollMs }
            return seen(holder?.value)
        }
    }

    /// `ttlSeconds`: what etcd says is left (nil or 0: the lease is gone).
    public mutating func keptAlive(ttlSeconds: Int?, sentAt: Int64, now: Int64) -> [Change] {
        guard case .leader = role else { return [] }
        guard let ttl = ttlSeconds, ttl > 0 else {
            lease = nil
            return stepDown("etcd says the lease expired")
        }
        leaseGoodUntil = sentAt + Int64(ttl) * 1000 - settings.marginMs
        role = .leader(servingUntilMs: leaseGoodUntil)
        nextRenewAt = now + settings.renewEveryMs
        confirmDue = true
        return [.extend(untilMs: leaseGoodUntil)]
    }

    public mutating func revoked() {
        lease = nil
        revokeDue = false
    }

    /// The leader could not start serving (its port is taken, say): it gives the key up so that
    /// another can lead, and campaigns again after a poll interval.
    public mutating func couldNotServe(now: Int64) {
        role = .standby
        revokeDue = true
        keyFree = false
        nextPollAt = now + settings.pollMs
    }

    /// A call failed (etcd unreachable, timed out, answered nonsense). A leader retries its
    /// renewal soon and is fenced by `tick` if none succeeds in time; a standby looks again later.
    public mutating func failed(_ step: Step, now: Int64) -> [Change] {
        switch step {
        case .revoke:
            lease = nil
            revokeDue = false
        case .keepAlive, .readKey:
            if isLeader {
                confirmDue = false
                nextRenewAt = now + settings.retryMs
            } else {
                keyFree = false
                nextPollAt = now + settings.pollMs
            }
        default:
            keyFree = false
            nextPollAt = now + settings.pollMs
        }
        return tick(now: now)
    }

    // MARK: -

    private mutating func stepDown(_ reason: String) -> [Change] {
        role = .standby
        confirmDue = false
        keyFree = false
        nextPollAt = .min
        return [.stopServing(reason: reason)]
    }

    private mutating func seen(_ leader: String?) -> [Change] {
        guard lastLeaderSeen != .some(leader) else { return [] }
        lastLeaderSeen = .some(leader)
        return [.leaderSeen(leader)]
    }
}

public struct ElectionSettingsError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
