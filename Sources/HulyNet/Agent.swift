import HulyNetCore
import HulyNetSync
import HulyNetZMQ
import Logging

/// A worker that hosts containers of the kinds it has factories for. Register it with a
/// `NetworkClient` (`serve` gives it an endpoint of its own for routed connections).
///
/// Thread-safe: its state is behind a lock and container work runs in Swift tasks.
public final class Agent: @unchecked Sendable {
    public let uuid: AgentUUID
    public let kinds: [ContainerKind]
    private let factories: [ContainerKind: ContainerFactory]
    private let lock = Lock()

    struct Hosted {
        let uuid: ContainerUUID
        let kind: ContainerKind
        let container: any Container
        var endpoint: String
        let labels: [String]?
        let extra: [String: JSONValue]?
        var lastVisit: Double
        /// The container's own endpoint server, for direct connections.
        var directServer: DirectContainerServer?
        /// Offered by this agent under a fixed uuid (`addStatelessContainer`), not started for a get.
        var offered = false
        /// Its kind's metrics handles, found once when it is hosted (nil: no metrics).
        var metrics: AgentMetrics.Kind?
    }

    /// Change `hosted` only through `host`, `unhost` and `unhostAll`, which keep `hostedByLabels`
    /// in step.
    private var hosted: [ContainerUUID: Hosted] = [:]
    private var hostedByLabels = LabelIndex<ContainerUUID>()
    private var stateless: [ContainerUUID: Hosted] = [:]
    /// Starts under way, found by uuid or (those without one) by kind and labels.
    private var starts: [Int: Task<Hosted, any Error>] = [:]
    private var startsByUUID: [ContainerUUID: Int] = [:]
    private var startsByLabels = LabelIndex<Int>()
    private var nextStart = 0
    /// The agent's endpoint (set when it is served), and the loop its servers live on.
    private var endpointRef: EndpointRef?
    private var loop: IOLoop?
    private var timeouts = Timeouts.reference
    private var limits = PeerLimits()
    private var curve: CurveKeyPair?
    nonisolated(unsafe) private var access: EndpointAccess?
    var logger = Logger(label: "hulynet.agent")
    /// Where the requests its containers handle are counted and timed (nil: nowhere).
    public let metrics: MetricsRegistry?
    private let agentMetrics: AgentMetrics?

    /// An agent with a factory per container kind. `metrics`: where to record its metrics
    /// (docs/OBSERVABILITY.md); nil records none.
    public init(uuid: AgentUUID = makeUUID(), factories: [ContainerKind: ContainerFactory], metrics: MetricsRegistry? = nil) {
        self.uuid = uuid
        self.factories = factories
        self.kinds = factories.keys.sorted()
        self.metrics = metrics
        agentMetrics = metrics?.agentMetrics(kinds: kinds)
    }

    /// An agent hosting container kinds written as Swift types.
    public convenience init(uuid: AgentUUID = makeUUID(), containerTypes: [any ContainerType.Type],
                            metrics: MetricsRegistry? = nil) {
        var factories: [ContainerKind: ContainerFactory] = [:]
        for type in containerTypes {
            factories[type.kind] = { options in
                let uuid = options.uuid ?? makeUUID()
                return StartedContainer(uuid: uuid, container: try await type.init(uuid: uuid, options: options))
            }
        }
        self.init(uuid: uuid, factories: factories, metrics: metrics)
    }

    /// The endpoint reference this agent registers with (nil until served).
    public var endpoint: String? { lock.withLock { endpointRef?.encoded } }

    /// `curve`: the keys its endpoints serve with (its client's, when the network is secured).
    func attach(endpoint: EndpointRef?, loop: IOLoop, timeouts: Timeouts, limits: PeerLimits, logger: Logger,
                curve: CurveKeyPair? = nil, access: EndpointAccess? = nil) {
        lock.withLock {
            endpointRef = endpoint
            self.curve = curve
            self.access = access
            self.loop = loop
            self.timeouts = timeouts
            self.limits = limits
            self.logger = logger
            // Stateless containers added before the agent had an endpoint are reached through it now.
            let agentRef = endpoint ?? .agentWithoutConnection(uuid)
            for key in stateless.keys {
                stateless[key]?.endpoint = EndpointRef.container(key, onAgent: agentRef).encoded
            }
        }
    }

    /// Adds a pre-existing ("stateless", highly available) container that this agent offers under a
    /// fixed uuid. If another agent already has that uuid, the network tells this one to drop it.
    public func addStatelessContainer(uuid: ContainerUUID, kind: ContainerKind, container: any Container) {
        lock.withLock {
            let endpoint = EndpointRef.container(uuid, onAgent: endpointRef ?? .agentWithoutConnection(self.uuid)).encoded
            stateless[uuid] = Hosted(uuid: uuid, kind: kind, container: container, endpoint: endpoint,
                                     labels: nil, extra: nil, lastVisit: Double(MonotonicClock.nowMs()), offered: true,
                                     metrics: agentMetrics?.kinds[kind])
        }
    }

    /// The containers running here, of one kind or all.
    public func list(kind: ContainerKind? = nil) -> [ContainerRecord] {
        lock.withLock {
            (Array(hosted.values) + Array(stateless.values))
                .filter { kind == nil || $0.kind == kind }
                .map { ContainerRecord(agentId: uuid, uuid: $0.uuid, kind: $0.kind, endpoint: $0.endpoint,
                                       lastVisit: $0.lastVisit, extra: $0.extra, labels: $0.labels) }
        }
    }

    public func container(_ uuid: ContainerUUID) -> (any Container)? {
        lock.withLock { hosted[uuid]?.container ?? stateless[uuid]?.container }
    }

    var hasStateless: Bool { lock.withLock { !stateless.isEmpty } }

    func isStateless(_ uuid: ContainerUUID) -> Bool { lock.withLock { stateless[uuid] != nil } }

    /// Called after registration: stateless containers the network accepted become ordinary ones.
    func accepted(except rejected: [ContainerUUID]) {
        let rejected = Set(rejected)
        lock.withLock {
            for (uuid, record) in stateless where !rejected.contains(uuid) {
                host(record)
            }
            stateless = stateless.filter { rejected.contains($0.key) }
        }
    }

    // `hosted` and its index change together (call with the lock held).
    private func host(_ record: Hosted) {
        var record = record
        record.metrics = agentMetrics?.kinds[record.kind]
        if let previous = hosted.updateValue(record, forKey: record.uuid) {
            previous.metrics?.containers.decrement(by: 1)
        }
        record.metrics?.containers.increment(by: 1)
        hostedByLabels.insert(record.uuid, kind: record.kind, labels: record.labels)
    }

    private func unhost(_ uuid: ContainerUUID) -> Hosted? {
        hostedByLabels.remove(uuid)
        let record = hosted.removeValue(forKey: uuid)
        record?.metrics?.containers.decrement(by: 1)
        return record
    }

    /// Containers in the label index, which must be the ones hosted (for tests).
    var indexedCount: Int { lock.withLock { hostedByLabels.count } }

    private func unhostAll() {
        for record in hosted.values { record.metrics?.containers.decrement(by: 1) }
        hosted.removeAll()
        hostedByLabels.removeAll()
    }

    /// Get-or-start: the container with that uuid, or one of the kind whose labels include those
    /// asked for; a start under way that fits is joined.
    public func get(kind: ContainerKind, options: GetOptions) async throws -> (uuid: ContainerUUID, endpoint: String) {
        enum Step { case found(Hosted), join(Task<Hosted, any Error>), start(Int, Task<Hosted, any Error>) }
        guard let factory = factories[kind] else {
            throw ContainerError("agent \(uuid) has no container kind \(kind)")
        }
        let step: Step = lock.withLock {
            if let wanted = options.uuid {
                if let found = hosted[wanted] ?? stateless[wanted] { return .found(found) }
                if let id = startsByUUID[wanted], let task = starts[id] { return .join(task) }
            } else {
                if let uuid = hostedByLabels.first(kind: kind, labels: options.labels), let found = hosted[uuid] {
                    return .found(found)
                }
                if let id = startsByLabels.first(kind: kind, labels: options.labels), let task = starts[id] {
                    return .join(task)
                }
            }
            let id = nextStart
            nextStart += 1
            let task = Task { try await self.start(kind: kind, options: options, factory: factory) }
            starts[id] = task
            if let uuid = options.uuid {
                startsByUUID[uuid] = id
            } else {
                startsByLabels.insert(id, kind: kind, labels: options.labels)
            }
            return .start(id, task)
        }
        switch step {
        case .found(let found):
            return (found.uuid, found.endpoint)
        case .join(let task):
            let started = try await task.value
            return (started.uuid, started.endpoint)
        case .start(let id, let task):
            do {
                let started = try await task.value
                lock.withLock {
                    startFinished(id, options: options)
                    host(started)
                }
                return (started.uuid, started.endpoint)
            } catch {
                // A failed start leaves nothing behind for later gets to wait on.
                lock.withLock { startFinished(id, options: options) }
                throw error
            }
        }
    }

    private func startFinished(_ id: Int, options: GetOptions) {
        starts.removeValue(forKey: id)
        if let uuid = options.uuid {
            startsByUUID.removeValue(forKey: uuid)
        } else {
            startsByLabels.remove(id)
        }
    }

    private func start(kind: ContainerKind, options: GetOptions, factory: ContainerFactory) async throws -> Hosted {
        let started = try await factory(options)
        let (agentRef, loop, timeouts, limits, logger, curve) = lock.withLock {
            (endpointRef, self.loop, self.timeouts, self.limits, self.logger, self.curve)
        }
        nonisolated(unsafe) let access = lock.withLock { self.access }
        var hosted = Hosted(uuid: started.uuid, kind: kind, container: started.container, endpoint: "",
                            labels: options.labels, extra: options.extra, lastVisit: Double(MonotonicClock.nowMs()))
        switch started.connection {
        case .routed:
            hosted.endpoint = EndpointRef.container(started.uuid, onAgent: agentRef ?? .agentWithoutConnection(uuid)).encoded
        case .direct(let host, let port):
            guard let loop else { throw ContainerError("a direct container needs an agent served with an endpoint") }
            let server = try await DirectContainerServer.start(loop: loop, container: started.container, uuid: started.uuid,
                                                               port: port, timeouts: timeouts, limits: limits, logger: logger,
                                                               curve: curve, access: access)
            hosted.directServer = server
            hosted.endpoint = EndpointRef.direct(host: host, port: server.port, container: started.uuid, agentId: uuid,
                                                 publicKey: curve?.publicKey).encoded
        }
        return hosted
    }

    /// Stops a container and forgets it.
    public func terminate(_ uuid: ContainerUUID) async {
        guard let record = lock.withLock({ unhost(uuid) ?? stateless.removeValue(forKey: uuid) }) else { return }
        await Self.stop([record])
    }

    /// The network gave this agent's containers to other agents: forgets the ones started for
    /// gets and returns them, to stop with `stop`; the stateless ones it offers go back on
    /// standby, to be offered again.
    func abandonContainers() -> [Hosted] {
        lock.withLock {
            var abandoned: [Hosted] = []
            for (uuid, record) in hosted {
                if record.offered { stateless[uuid] = record } else { abandoned.append(record) }
            }
            unhostAll()
            return abandoned
        }
    }

    /// Stops containers this agent no longer hosts (their endpoints, then the containers).
    static func stop(_ containers: [Hosted]) async {
        for record in containers {
            record.directServer?.stop()
            await record.container.terminate()
        }
    }

    /// Stops every container (the agent is closing).
    public func terminateAll() async {
        let all = lock.withLock { () -> [Hosted] in
            let all = Array(hosted.values) + Array(stateless.values)
            unhostAll()
            stateless.removeAll()
            return all
        }
        await Self.stop(all)
    }

    /// The container with that uuid and its kind's metrics handles (a second lookup only with
    /// metrics: copying the whole record would cost more).
    private func target(_ uuid: ContainerUUID) -> (any Container, AgentMetrics.Kind?)? {
        lock.withLock {
            if let container = hosted[uuid]?.container { return (container, agentMetrics == nil ? nil : hosted[uuid]?.metrics) }
            if let container = stateless[uuid]?.container { return (container, stateless[uuid]?.metrics) }
            return nil
        }
    }

    /// A request for one of this agent's containers.
    public func request(_ target: ContainerUUID, operation: String, data: JSONValue, client: ClientUUID? = nil) async throws -> JSONValue {
        guard let (container, metrics) = self.target(target) else {
            throw RemoteError("Container \(target) not found", code: .containerNotFound)
        }
        guard let metrics else { return try await container.request(operation: operation, data: data, client: client) }
        let started = MonotonicClock.nowNs()
        do {
            let answer = try await container.request(operation: operation, data: data, client: client)
            metrics.handled(startedNs: started, nowNs: MonotonicClock.nowNs(), failed: false)
            return answer
        } catch {
            metrics.handled(startedNs: started, nowNs: MonotonicClock.nowNs(), failed: true)
            throw error
        }
    }

    /// The same with the data as text, answered through `reply`: at once, on the calling thread,
    /// when the container answers at once (a `CallbackContainer`); else later, from another thread.
    func request(_ target: ContainerUUID, operation: String, data: JSONText, client: ClientUUID?,
                 reply: @escaping @Sendable (Result<JSONText, any Error>) -> Void) {
        guard let (container, metrics) = self.target(target) else {
            reply(.failure(RemoteError("Container \(target) not found", code: .containerNotFound)))
            return
        }
        guard let metrics else {
            dispatchRequest(to: container, operation: operation, data: data, client: client, reply: reply)
            return
        }
        let started = MonotonicClock.nowNs()
        dispatchRequest(to: container, operation: operation, data: data, client: client) { result in
            if case .failure = result {
                metrics.handled(startedNs: started, nowNs: MonotonicClock.nowNs(), failed: true)
            } else {
                metrics.handled(startedNs: started, nowNs: MonotonicClock.nowNs(), failed: false)
            }
            reply(result)
        }
    }

    /// This agent's metrics in the Prometheus text format ("" when it records none).
    public func metricsText() -> String { metrics?.prometheusText() ?? "" }

    func registration() -> AgentRegistration {
        AgentRegistration(uuid: uuid, containers: list(), kinds: kinds, endpoint: endpoint)
    }
}
