/// What one client key may do on a secured network, from its allow list line:
/// `KEY NAME [agents=K1,K2] [kinds=K1,K2] [tenant=LABEL] [rate=N] [burst=N]`. A rule not given
/// does not restrict.
///
/// - `agents=`: the kinds it may register agents for (`agents=` with nothing: none).
/// - `kinds=`: the kinds it may get, list, request and connect to.
/// - `tenant=`: it sees only containers carrying this label (lists, events, requests), and each of
///   its gets must carry the label, so that what it starts is its tenant's.
/// - `rate=`, `burst=`: requests a second and the burst above it; past them it is told to retry,
///   as with the in-flight limit.
public struct AccessPolicy: Sendable, Equatable {
    public var name: String
    public var agentKinds: Set<ContainerKind>?
    public var kinds: Set<ContainerKind>?
    public var tenant: String?
    public var requestsPerSecond: Double?
    public var burst: Int?

    public init(name: String, agentKinds: Set<ContainerKind>? = nil, kinds: Set<ContainerKind>? = nil,
                tenant: String? = nil, requestsPerSecond: Double? = nil, burst: Int? = nil) {
        self.name = name
        self.agentKinds = agentKinds
        self.kinds = kinds
        self.tenant = tenant
        self.requestsPerSecond = requestsPerSecond
        self.burst = burst
    }

    /// Whether no rule is given (the key may do everything).
    public var isUnrestricted: Bool {
        agentKinds == nil && kinds == nil && tenant == nil && requestsPerSecond == nil
    }

    /// Whether it limits what the key sees (lists and events are then filtered for it).
    public var restrictsSight: Bool { kinds != nil || tenant != nil }

    /// Parses the rules after `KEY NAME`; throws the first one that is not understood.
    public init(name: String, rules: [Substring]) throws(AccessPolicyError) {
        self.init(name: name)
        for rule in rules {
            guard let equals = rule.firstIndex(of: "=") else { throw AccessPolicyError("'\(rule)' is not NAME=VALUE") }
            let key = rule[..<equals], value = rule[rule.index(after: equals)...]
            func list() -> Set<ContainerKind> { Set(value.split(separator: ",").map(String.init)) }
            switch key {
            case "agents": agentKinds = list()
            case "kinds": kinds = list()
            case "tenant":
                guard !value.isEmpty else { throw AccessPolicyError("tenant= needs a label") }
                tenant = String(value)
            case "rate":
                guard let number = Double(value), number.isFinite, number > 0, number <= 1e9 else {
                    throw AccessPolicyError("rate= needs requests a second above 0")
                }
                requestsPerSecond = number
            case "burst":
                guard let number = Int(value), (1...1_000_000_000).contains(number) else {
                    throw AccessPolicyError("burst= needs a number of requests from 1")
                }
                burst = number
            default:
                throw AccessPolicyError("unknown rule '\(key)' (agents, kinds, tenant, rate, burst)")
            }
        }
        if burst != nil, requestsPerSecond == nil { throw AccessPolicyError("burst= needs rate=") }
    }

    // MARK: - Decisions (nil: allowed; otherwise why not, naming the rule)

    public func refusesRegistering(kinds offered: [ContainerKind]) -> String? {
        guard let agentKinds else { return nil }
        guard let kind = offered.first(where: { !agentKinds.contains($0) }) else { return nil }
        return "key \(name) may not register agents of kind \(kind) (rule agents=\(agentKinds.sorted().joined(separator: ",")))"
    }

    public func refusesUsing(kind: ContainerKind) -> String? {
        guard let kinds, !kinds.contains(kind) else { return nil }
        return "key \(name) may not use containers of kind \(kind) (rule kinds=\(kinds.sorted().joined(separator: ",")))"
    }

    /// A get: its kind, and (for a tenant) the label it must carry.
    public func refusesGetting(kind: ContainerKind, labels: [String]?) -> String? {
        if let refusal = refusesUsing(kind: kind) { return refusal }
        guard let tenant, !(labels ?? []).contains(tenant) else { return nil }
        return "key \(name) must get containers with its tenant's label \(tenant) (rule tenant=\(tenant))"
    }

    /// Whether it may see (list, hear of, request, connect to) this container.
    public func refusesSeeing(kind: ContainerKind, labels: [String]?) -> String? {
        if let refusal = refusesUsing(kind: kind) { return refusal }
        guard let tenant, !(labels ?? []).contains(tenant) else { return nil }
        return "key \(name) may not use another tenant's container (rule tenant=\(tenant))"
    }

    public func sees(_ record: ContainerRecord) -> Bool { refusesSeeing(kind: record.kind, labels: record.labels) == nil }
}

public struct AccessPolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Requests a second with a burst (a token bucket), on the caller's clock.
public struct RateLimit: Sendable, Equatable {
    public let perSecond: Double
    public let burst: Double
    private var tokens: Double
    private var updated: Int64

    public init(perSecond: Double, burst: Int?, now: Int64) {
        self.perSecond = perSecond
        self.burst = Double(burst ?? max(1, Int(perSecond.rounded(.up))))
        tokens = self.burst
        updated = now
    }

    /// Takes one request's token; false when the key must wait.
    public mutating func take(now: Int64) -> Bool {
        refill(now: now)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    /// Milliseconds until a token is due.
    public mutating func waitMs(now: Int64) -> Int {
        refill(now: now)
        return tokens >= 1 ? 0 : Int(((1 - tokens) * 1000 / perSecond).rounded(.up))
    }

    private mutating func refill(now: Int64) {
        guard now > updated else { return }
        tokens = min(burst, tokens + Double(now - updated) * perSecond / 1000)
        updated = now
    }
}
