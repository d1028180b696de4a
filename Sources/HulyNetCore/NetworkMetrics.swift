import CoreMetrics

/// The metrics of one network coordinator (its RPC server machine and its `Coordinator`), as
/// swift-metrics handlers made once from one `MetricsFactory`. The hot path only increments
/// handlers it already holds: no name is formatted and no handler looked up per request (the
/// per-method ones sit in arrays indexed by a small fixed set of methods). It calls the handlers
/// (`CounterHandler`, `RecorderHandler`, `MeterHandler`) rather than swift-metrics' `Counter`,
/// `Recorder` and `Meter` wrappers: their generic methods ran unspecialised here, and a recorded
/// duration cost about 700 instructions more a request under callgrind.
/// docs/OBSERVABILITY.md describes each metric; `MetricName.help` holds the same help texts.
///
/// The handles are thread-safe; the per-kind container gauges are kept by the coordinator's
/// own thread only.
public final class NetworkMetrics: @unchecked Sendable {
    /// The methods counted under their own label; any other method is counted as "other" (a
    /// peer cannot grow the label set).
    public static let methodLabels: [String] = [
        Method.sendContainer, Method.getContainer, Method.releaseContainer, Method.registerAgent,
        Method.unregisterAgent, Method.listAgents, Method.kinds, Method.listContainers, "other",
    ]

    /// The index of a method's handles in `methodLabels`.
    @inlinable
    public static func methodIndex(_ method: String) -> UInt8 {
        switch method {
        case Method.sendContainer: 0
        case Method.getContainer: 1
        case Method.releaseContainer: 2
        case Method.registerAgent: 3
        case Method.unregisterAgent: 4
        case Method.listAgents: 5
        case Method.kinds: 6
        case Method.listContainers: 7
        default: 8
        }
    }

    public enum Refusal: Int, CaseIterable, Sendable {
        /// A hello refused: as many clients as allowed are connected and live.
        case clientsLimit
        /// A connection closed on arrival: over the connection cap.
        case connectionsLimit
        /// `ar` or `au` for an agent another connected client registered.
        case agentOwner
        /// A secured network: a connection whose key is not on the allow list (ZAP).
        case keyNotAllowed
        /// A secured network: a request past its key's rules (kinds, tenant, agents).
        case forbidden
        /// A secured network: a hello with a client id another key holds, or on a connection
        /// whose key was removed from the allow list.
        case helloRefused

        public var label: String {
            switch self {
            case .clientsLimit: "clients_limit"
            case .connectionsLimit: "connections_limit"
            case .agentOwner: "agent_owner"
            case .keyNotAllowed: "key_not_allowed"
            case .forbidden: "forbidden"
            case .helloRefused: "hello_refused"
            }
        }
    }

    public enum Malformed: Int, CaseIterable, Sendable {
        /// Frames that are not a message of the protocol.
        case frames
        /// A request whose payload is not the JSON `[method, params]`.
        case payload
        /// A message over the size or frame limit.
        case oversize

        public var label: String {
            switch self {
            case .frames: "frames"
            case .payload: "payload"
            case .oversize: "oversize"
            }
        }
    }

    public enum Retry: Int, CaseIterable, Sendable {
        /// The client has as many requests in flight as allowed.
        case inFlight
        /// A request from a connection that has not said hello (yet, or again).
        case beforeHello
        /// A secured network: the key's requests a second (`rate=`, `burst=`) are spent.
        case rateLimit

        public var label: String {
            switch self {
            case .inFlight: "in_flight"
            case .beforeHello: "before_hello"
            case .rateLimit: "rate_limit"
            }
        }
    }

    /// How a get-or-start (`gg`) went at the coordinator.
    public enum GetOutcome: Int, CaseIterable, Sendable {
        /// The container runs: answered at once.
        case found
        /// A start of it was under way: it waits for that one.
        case joined
        /// Sent to an agent, which starts it (or, for a get by labels, may answer with one of its
        /// running containers whose labels fit).
        case toAgent
        /// Held while the coordinator settles after its start (counted again when it goes on).
        case parked
        /// No agent offers the kind.
        case noAgent

        public var label: String {
            switch self {
            case .found: "found"
            case .joined: "joined"
            case .toAgent: "to_agent"
            case .parked: "parked"
            case .noAgent: "no_agent"
            }
        }
    }

    /// The most distinct `kind` labels of the container gauge; later kinds are counted as
    /// "other" (kinds come from peers: their number must not grow the registry without bound).
    public static let maxKindLabels = 64

    let factory: any MetricsFactory
    /// A monotonic clock in nanoseconds, for the request durations (the core reads no clock).
    public let nowNs: @Sendable () -> UInt64

    public let clients: any MeterHandler
    public let agents: any MeterHandler
    let requests: [any CounterHandler]
    let errors: [any CounterHandler]
    /// Seconds, as aggregating recorders (histograms): cheaper to record than a `Timer`'s
    /// `Duration`s (docs/PERFORMANCE.md, "Metrics").
    let durations: [any RecorderHandler]
    let retries: [any CounterHandler]
    let malformed: [any CounterHandler]
    let refusals: [any CounterHandler]
    let gets: [any CounterHandler]
    public let eventsSent: any CounterHandler
    public let deadAgents: any CounterHandler
    public let failovers: any CounterHandler

    /// Containers per kind, and their gauges (coordinator thread only).
    private var containerGauges: [ContainerKind: any MeterHandler] = [:]
    private var containerCounts: [ContainerKind: Int] = [:]

    public init(factory: any MetricsFactory, nowNs: @escaping @Sendable () -> UInt64) {
        self.factory = factory
        self.nowNs = nowNs
        clients = factory.makeMeter(label: MetricName.clients, dimensions: [])
        agents = factory.makeMeter(label: MetricName.agents, dimensions: [])
        requests = Self.methodLabels.map { factory.makeCounter(label: MetricName.requests, dimensions: [("method", $0)]) }
        errors = Self.methodLabels.map { factory.makeCounter(label: MetricName.requestErrors, dimensions: [("method", $0)]) }
        durations = Self.methodLabels.map {
            factory.makeRecorder(label: MetricName.requestDuration, dimensions: [("method", $0)], aggregate: true)
        }
        retries = Retry.allCases.map { factory.makeCounter(label: MetricName.retries, dimensions: [("reason", $0.label)]) }
        malformed = Malformed.allCases.map {
            factory.makeCounter(label: MetricName.malformed, dimensions: [("reason", $0.label)])
        }
        refusals = Refusal.allCases.map { factory.makeCounter(label: MetricName.refusals, dimensions: [("reason", $0.label)]) }
        gets = GetOutcome.allCases.map { factory.makeCounter(label: MetricName.getOrStart, dimensions: [("outcome", $0.label)]) }
        eventsSent = factory.makeCounter(label: MetricName.eventsSent, dimensions: [])
        deadAgents = factory.makeCounter(label: MetricName.deadAgents, dimensions: [])
        failovers = factory.makeCounter(label: MetricName.failovers, dimensions: [])
        clients.set(Int64(0))
        agents.set(Int64(0))
    }

    // MARK: - Recording

    public func requestReceived(method: UInt8) { requests[Int(method)].increment(by: 1) }

    /// A request answered (`failed`: with an error) `startedNs` after it arrived.
    public func requestAnswered(method: UInt8, startedNs: UInt64, failed: Bool) {
        durations[Int(method)].record(Double(nowNs() &- startedNs) / 1e9)
        if failed { errors[Int(method)].increment(by: 1) }
    }

    public func retried(_ reason: Retry) { retries[reason.rawValue].increment(by: 1) }
    public func malformed(_ reason: Malformed) { malformed[reason.rawValue].increment(by: 1) }
    public func refused(_ reason: Refusal) { refusals[reason.rawValue].increment(by: 1) }
    public func got(_ outcome: GetOutcome) { gets[outcome.rawValue].increment(by: 1) }

    /// A container of this kind was added (+1) or removed (-1) (coordinator thread only).
    public func containerChanged(kind: ContainerKind, by delta: Int) {
        var label = kind
        if containerGauges[kind] == nil {
            if containerGauges.count >= Self.maxKindLabels { label = "other" }
            if containerGauges[label] == nil {
                containerGauges[label] = factory.makeMeter(label: MetricName.containers, dimensions: [("kind", label)])
            }
        }
        let count = max(0, containerCounts[label, default: 0] + delta)
        containerCounts[label] = count
        containerGauges[label]?.set(Int64(count))
    }
}

/// The metrics of one `Agent`: requests its containers handled, by kind (the agent's own kinds,
/// fixed when it is made), and how long they took.
public final class AgentMetrics: @unchecked Sendable {
    public final class Kind: @unchecked Sendable {
        public let requests: any CounterHandler
        public let errors: any CounterHandler
        public let duration: any RecorderHandler
        public let containers: any MeterHandler

        init(kind: ContainerKind, factory: any MetricsFactory) {
            requests = factory.makeCounter(label: MetricName.agentRequests, dimensions: [("kind", kind)])
            errors = factory.makeCounter(label: MetricName.agentRequestErrors, dimensions: [("kind", kind)])
            duration = factory.makeRecorder(label: MetricName.agentRequestDuration, dimensions: [("kind", kind)], aggregate: true)
            containers = factory.makeMeter(label: MetricName.agentContainers, dimensions: [("kind", kind)])
            containers.set(Int64(0))
        }

        /// A request handled (`failed`: with an error) that began at `startedNs`.
        public func handled(startedNs: UInt64, nowNs: UInt64, failed: Bool) {
            requests.increment(by: 1)
            duration.record(Double(nowNs &- startedNs) / 1e9)
            if failed { errors.increment(by: 1) }
        }
    }

    public let kinds: [ContainerKind: Kind]

    public init(kinds: [ContainerKind], factory: any MetricsFactory) {
        var byKind: [ContainerKind: Kind] = [:]
        for kind in kinds { byKind[kind] = Kind(kind: kind, factory: factory) }
        self.kinds = byKind
    }
}

/// The names of hulynet's metrics (all begin with `hulynet_`).
public enum MetricName {
    public static let clients = "hulynet_clients"
    public static let agents = "hulynet_agents"
    public static let containers = "hulynet_containers"
    public static let getOrStart = "hulynet_get_or_start_total"
    public static let requests = "hulynet_requests_total"
    public static let requestErrors = "hulynet_request_errors_total"
    public static let requestDuration = "hulynet_request_duration_seconds"
    public static let eventsSent = "hulynet_events_sent_total"
    public static let retries = "hulynet_retries_total"
    public static let deadAgents = "hulynet_dead_agents_total"
    public static let failovers = "hulynet_failovers_total"
    public static let refusals = "hulynet_refusals_total"
    public static let malformed = "hulynet_malformed_messages_total"
    public static let agentRequests = "hulynet_agent_requests_total"
    public static let agentRequestErrors = "hulynet_agent_request_errors_total"
    public static let agentRequestDuration = "hulynet_agent_request_duration_seconds"
    public static let agentContainers = "hulynet_agent_containers"

    /// Each metric's one-line help (the `# HELP` line of the Prometheus text).
    public static let help: [String: String] = [
        clients: "Clients connected to the coordinator (said hello, not gone).",
        agents: "Agents registered with the coordinator.",
        containers: "Containers the coordinator knows, by kind.",
        getOrStart: "Get-or-start requests (gg) at the coordinator, by outcome.",
        requests: "Requests received by the coordinator, by method.",
        requestErrors: "Requests the coordinator answered with an error, by method.",
        requestDuration: "Time from a request's arrival at the coordinator to its answer, by method (cs: through the agent and back).",
        eventsSent: "Network events sent by the coordinator to clients (one per client reached).",
        retries: "Requests answered with retry, by reason.",
        deadAgents: "Agents removed because they, or the client that registered them, went silent.",
        failovers: "Containers of a removed agent started again on another agent.",
        refusals: "Peers or requests refused, by reason.",
        malformed: "Messages that are not the protocol's, by reason.",
        agentRequests: "Requests handled by the agent's containers, by kind.",
        agentRequestErrors: "Requests the agent's containers answered with an error, by kind.",
        agentRequestDuration: "Time the agent's containers took to answer a request, by kind.",
        agentContainers: "Containers the agent hosts, by kind.",
    ]

    /// The histogram buckets of the request durations, in seconds: a `cs` on loopback takes tens
    /// of microseconds, a get-or-start up to the request timeout.
    public static let durationBuckets: [Double] = [
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
    ]
}
